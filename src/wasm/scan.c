/*
 * scan.c - a pre-compilation scan of a module's bytes: section framing and
 * the size of every function body, so that a module whose compilation
 * would take seconds and hundreds of megabytes (cranelift's cost grows
 * with a function's size: 1 MiB of one function measured 5 s and 511 MB
 * here) is refused before wasmtime sees it. Validation proper is
 * wasmtime's; this reads only what it needs and treats every length as
 * hostile.
 */
#include <stdio.h>
#include <string.h>

#include "wasm_int.h"

/* Reads an unsigned LEB128 of at most 32 bits at *pos < end. */
static bool leb_u32(const uint8_t *b, size_t end, size_t *pos, uint32_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 35; shift += 7) {
    if (*pos >= end)
      return false;
    uint8_t byte = b[(*pos)++];
    v |= (uint64_t)(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      if (v > UINT32_MAX)
        return false;
      *out = (uint32_t)v;
      return true;
    }
  }
  return false;
}

/* Reads limits (flags, min, max?) of a memory or table type. */
static bool limits(const uint8_t *b, size_t end, size_t *pos, uint8_t *flags,
                   uint64_t *min) {
  if (*pos >= end)
    return false;
  *flags = b[(*pos)++];
  uint32_t lo, hi;
  if ((*flags & 0x04) != 0) { /* 64-bit memory: refused later by the ABI */
    *min = UINT64_MAX;
    return true;
  }
  if (!leb_u32(b, end, pos, &lo))
    return false;
  *min = lo;
  if ((*flags & 0x01) != 0 && !leb_u32(b, end, pos, &hi))
    return false;
  return true;
}

/* Memory (id 5) and table (id 4) sections against the caps. */
static int check_memtab(uint8_t id, const uint8_t *b, size_t pos, size_t end,
                        const tw__wasm_caps *caps, tw_err *err) {
  uint32_t count;
  if (!leb_u32(b, end, &pos, &count))
    return tw_err_set(err, TW_EPARSE,
                      "invalid WebAssembly module: bad %s "
                      "section",
                      id == 5 ? "memory" : "table");
  if (count > 1)
    return tw_err_set(err, TW_ELIMIT,
                      "module defines %u %s, more than the limit of 1", count,
                      id == 5 ? "memories" : "tables");
  if (count == 0)
    return TW_OK;
  if (id == 4) {
    if (pos >= end)
      return tw_err_set(err, TW_EPARSE,
                        "invalid WebAssembly module: bad "
                        "table section");
    pos++; /* reference type */
  }
  uint8_t flags;
  uint64_t min;
  if (!limits(b, end, &pos, &flags, &min))
    return tw_err_set(err, TW_EPARSE,
                      "invalid WebAssembly module: bad %s "
                      "limits",
                      id == 5 ? "memory" : "table");
  if (id == 5 && min != UINT64_MAX && min * 65536 > caps->max_memory)
    return tw_err_set(err, TW_ELIMIT,
                      "memory limit: the module's initial memory is %llu "
                      "bytes, the cap is %zu",
                      (unsigned long long)min * 65536, caps->max_memory);
  if (id == 4 && min > caps->max_table)
    return tw_err_set(err, TW_ELIMIT,
                      "the module's table has %llu elements, more than the "
                      "limit of %zu",
                      (unsigned long long)min, caps->max_table);
  return TW_OK;
}

int tw__wasm_scan(const uint8_t *b, size_t len, const tw__wasm_caps *caps,
                  tw_err *err) {
  size_t max_body = caps->max_body, max_functions = caps->max_functions;
  size_t pos = 8; /* magic and version, checked by the caller */
  if (len < 8)
    return tw_err_set(err, TW_EPARSE, "not a WebAssembly module: %zu bytes",
                      len);
  while (pos < len) {
    size_t at = pos;
    uint8_t id = b[pos++];
    uint32_t size;
    if (!leb_u32(b, len, &pos, &size) || size > len - pos)
      return tw_err_set(err, TW_EPARSE,
                        "invalid WebAssembly module: section %u at offset "
                        "%zu runs past the end",
                        id, at);
    size_t end = pos + size;
    if (id == 4 || id == 5) {
      int rc = check_memtab(id, b, pos, end, caps, err);
      if (rc != TW_OK)
        return rc;
    }
    if (id == 10) { /* code */
      uint32_t count;
      if (!leb_u32(b, end, &pos, &count))
        return tw_err_set(err, TW_EPARSE,
                          "invalid WebAssembly module: bad code section");
      if (count > max_functions)
        return tw_err_set(err, TW_ELIMIT,
                          "module has %u functions, more than the limit of "
                          "%zu",
                          count, max_functions);
      for (uint32_t i = 0; i < count; i++) {
        uint32_t body;
        if (!leb_u32(b, end, &pos, &body) || body > end - pos)
          return tw_err_set(err, TW_EPARSE,
                            "invalid WebAssembly module: function body %u "
                            "runs past its section",
                            i);
        if (body > max_body)
          return tw_err_set(err, TW_ELIMIT,
                            "function body %u is %u bytes, more than the "
                            "limit of %zu (compiling it would take too long)",
                            i, body, max_body);
        pos += body;
      }
    }
    pos = end;
  }
  return TW_OK;
}
