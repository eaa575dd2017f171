/*
 * version.c - the version of the library actually loaded.
 */
#include "twin/version.h"

const char *tw_version_string(void) { return TW_VERSION_STRING; }

unsigned tw_version_number(void) {
  return (TW_VERSION_MAJOR << 16) | (TW_VERSION_MINOR << 8) | TW_VERSION_PATCH;
}
