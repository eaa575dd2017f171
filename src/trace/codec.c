/*
 * codec.c - CRC-32 (zlib) and zstd for MCAP chunks.
 *
 * zlib's crc32_z is the braided implementation (about 6 GB/s here), well
 * above what the writer needs, so Twin keeps no CRC code of its own.
 * zstd contexts take their memory from tw_alloc through ZSTD_customMem, a
 * stable part of zstd's advanced API that libzstd exports; so the leak
 * check and allocation-failure tests see zstd's memory too.
 *
 * Decompression is bounded: the caller gives the exact size the Chunk
 * record declares (itself under a limit), zstd never writes past it, and
 * any other outcome (a frame of another size, trailing garbage, a
 * corrupt frame) is TW_EPARSE, never a partial result.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem */
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "trace_int.h"
#include "twin/alloc.h"

uint32_t tw__trace_crc32(uint32_t crc, const void *p, size_t n) {
  if (n == 0)
    return crc;
  return (uint32_t)crc32_z(crc, p, n);
}

uint32_t tw__trace_crc32_combine(uint32_t crc_a, uint32_t crc_b,
                                 uint64_t len_b) {
  return (uint32_t)crc32_combine64(crc_a, crc_b, (z_off64_t)len_b);
}

static void *zstd_alloc(void *opaque, size_t size) {
  (void)opaque;
  return tw_alloc(size);
}

static void zstd_free(void *opaque, void *address) {
  (void)opaque;
  tw_free(address);
}

static const ZSTD_customMem tw_zstd_mem = {zstd_alloc, zstd_free, NULL};

void *tw__trace_zstd_cctx_new(void) {
  return ZSTD_createCCtx_advanced(tw_zstd_mem);
}

void tw__trace_zstd_cctx_free(void *cctx) { ZSTD_freeCCtx(cctx); }

void *tw__trace_zstd_dctx_new(void) {
  return ZSTD_createDCtx_advanced(tw_zstd_mem);
}

void tw__trace_zstd_dctx_free(void *dctx) { ZSTD_freeDCtx(dctx); }

int tw__trace_zstd_compress(void *cctx, int level, const void *src, size_t n,
                            tw_buf *dst) {
  size_t bound = ZSTD_compressBound(n);
  if (ZSTD_isError(bound))
    return TW_EOVERFLOW;
  dst->len = 0;
  if (tw_buf_reserve(dst, bound) != TW_OK)
    return TW_ENOMEM;
  if (ZSTD_isError(ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)) ||
      ZSTD_isError(
          ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)) ||
      ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)))
    return TW_EINTERNAL;
  size_t got = ZSTD_compress2(cctx, dst->data, bound, src, n);
  if (ZSTD_isError(got))
    return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation
               ? TW_ENOMEM
               : TW_EINTERNAL;
  dst->len = got;
  dst->data[got] = '\0';
  return TW_OK;
}

int tw__trace_zstd_decompress(void *dctx, const void *src, size_t n, void *dst,
                              size_t cap, const char **why) {
  size_t got = ZSTD_decompressDCtx(dctx, dst, cap, src, n);
  if (ZSTD_isError(got)) {
    if (ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation)
      return TW_ENOMEM;
    *why = ZSTD_getErrorName(got);
    return TW_EPARSE;
  }
  if (got != cap) {
    *why = "the chunk decompresses to fewer bytes than it declares";
    return TW_EPARSE;
  }
  return TW_OK;
}
