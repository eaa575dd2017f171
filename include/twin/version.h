/*
 * version.h - library version.
 *
 * TW_VERSION_* describe the headers compiled against; tw_version_string()
 * describes the library actually loaded, so a mismatch can be detected.
 */
#ifndef TWIN_VERSION_H
#define TWIN_VERSION_H

#include "twin/common.h"

TW_EXTERN_C_BEGIN

#define TW_VERSION_MAJOR 0
#define TW_VERSION_MINOR 1
#define TW_VERSION_PATCH 0
#define TW_VERSION_STRING "0.1.0"

/* "0.1.0"; static. */
TW_API const char *tw_version_string(void);
/* (major << 16) | (minor << 8) | patch */
TW_API unsigned tw_version_number(void);

TW_EXTERN_C_END

#endif /* TWIN_VERSION_H */
