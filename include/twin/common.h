/*
 * common.h - definitions every public Twin header shares.
 *
 * TW_API marks a function as part of the exported ABI of libtwin.so. The
 * library is compiled with hidden visibility by default, so anything not
 * marked TW_API stays internal to the shared object even when it is not
 * static (internal cross-file helpers are named tw__<sub>_*).
 */
#ifndef TWIN_COMMON_H
#define TWIN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define TW_API __attribute__((visibility("default")))
#define TW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define TW_NODISCARD __attribute__((warn_unused_result))
#else
#define TW_API
#define TW_PRINTF(fmt, args)
#define TW_NODISCARD
#endif

#ifdef __cplusplus
#define TW_EXTERN_C_BEGIN extern "C" {
#define TW_EXTERN_C_END }
#else
#define TW_EXTERN_C_BEGIN
#define TW_EXTERN_C_END
#endif

#endif /* TWIN_COMMON_H */
