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

/* Marks a hot numeric kernel to be compiled for several x86-64 levels
 * (AVX-512, AVX2, baseline) with the best chosen at load time, so one
 * portable binary uses the machine's vector width. Results do not depend
 * on the level chosen: C11 mode forbids contracting a*b+c into an FMA. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&         \
    !defined(__SANITIZE_ADDRESS__)
#define TW_KERNEL_CLONES                                                       \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TW_KERNEL_CLONES
#endif

#ifdef __cplusplus
#define TW_EXTERN_C_BEGIN extern "C" {
#define TW_EXTERN_C_END }
#else
#define TW_EXTERN_C_BEGIN
#define TW_EXTERN_C_END
#endif

#endif /* TWIN_COMMON_H */
