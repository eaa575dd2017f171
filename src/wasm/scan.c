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

#include "twin/alloc.h"
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

/* Skips a name (a byte vector) at *pos; copies up to cap - 1 printable
 * bytes of it into out. */
static bool name(const uint8_t *b, size_t end, size_t *pos, char *out,
                 size_t cap) {
  uint32_t n;
  if (!leb_u32(b, end, pos, &n) || n > end - *pos)
    return false;
  size_t k = n < cap - 1 ? n : cap - 1;
  for (size_t i = 0; i < k; i++)
    out[i] =
        b[*pos + i] >= 0x20 && b[*pos + i] < 0x7f ? (char)b[*pos + i] : '?';
  out[k] = '\0';
  *pos += n;
  return true;
}

/* The function signatures at the module's boundary (imports, exports) may
 * hold only i32, i64, f32, f64 and references: a v128 there is refused here,
 * by name, because the C API cannot describe it (wasm_valtype_kind aborts
 * the process on v128). Types that do not parse are left to wasmtime's
 * validation. */
typedef struct boundary {
  uint32_t ntypes, nfuncs, nimported;
  uint8_t *v128;   /* per type: 1 if a param or result is v128 */
  uint32_t *ftype; /* per function (imported first): its type */
  uint32_t fcap;   /* room in ftype */
  uint32_t seen;   /* bit i: section i met (each may appear once) */
  bool give_up;    /* a section we do not follow: leave it to wasmtime */
} boundary;

static void parse_types(boundary *bd, const uint8_t *b, size_t pos,
                        size_t end) {
  uint32_t n;
  if (!leb_u32(b, end, &pos, &n) || n > end - pos) {
    bd->give_up = true;
    return;
  }
  bd->v128 = tw_calloc(n ? n : 1, 1);
  if (bd->v128 == NULL) {
    bd->give_up = true;
    return;
  }
  bd->ntypes = n;
  for (uint32_t t = 0; t < n; t++) {
    if (pos >= end || b[pos] != 0x60) { /* rec groups etc.: not ours */
      bd->give_up = true;
      return;
    }
    pos++;
    for (int half = 0; half < 2; half++) {
      uint32_t k;
      if (!leb_u32(b, end, &pos, &k) || k > end - pos) {
        bd->give_up = true;
        return;
      }
      for (uint32_t i = 0; i < k; i++) {
        uint8_t vt = b[pos++];
        if (vt == 0x7b)
          bd->v128[t] = 1;
        else if (vt == 0x63 || vt == 0x64) { /* typed references */
          bd->give_up = true;
          return;
        }
      }
    }
  }
}

/* Records the type of the next function; cap (fixed by the first call)
 * bounds how many there can be. False when out of room or memory. */
static bool add_func(boundary *bd, uint32_t type, uint32_t cap) {
  if (bd->ftype == NULL) {
    bd->fcap = cap ? cap : 1;
    bd->ftype = tw_calloc(bd->fcap, sizeof *bd->ftype);
    if (bd->ftype == NULL)
      return false;
  }
  if (bd->nfuncs >= bd->fcap)
    return false;
  bd->ftype[bd->nfuncs++] = type;
  return true;
}

static int check_imports(boundary *bd, const uint8_t *b, size_t pos, size_t end,
                         size_t len, tw_err *err) {
  uint32_t n;
  if (!leb_u32(b, end, &pos, &n) || n > end - pos) {
    bd->give_up = true;
    return TW_OK;
  }
  for (uint32_t i = 0; i < n && !bd->give_up; i++) {
    char mod[64], field[64];
    uint32_t idx;
    if (!name(b, end, &pos, mod, sizeof mod) ||
        !name(b, end, &pos, field, sizeof field) || pos >= end) {
      bd->give_up = true;
      break;
    }
    uint8_t kind = b[pos++];
    switch (kind) {
    case 0x00: /* func */
      if (!leb_u32(b, end, &pos, &idx) || idx >= bd->ntypes ||
          bd->v128 == NULL) {
        bd->give_up = true;
        break;
      }
      if (bd->v128[idx])
        return tw_err_set(err, TW_EVALIDATE,
                          "import '%s.%s' has v128 in its signature; a "
                          "model's boundary takes i32, i64, f32, f64 only",
                          mod, field);
      if (!add_func(bd, idx, (uint32_t)(len / 2)))
        bd->give_up = true;
      bd->nimported++;
      break;
    case 0x01: { /* table: reftype, limits */
      uint8_t flags;
      uint64_t min;
      if (pos >= end || (pos++, !limits(b, end, &pos, &flags, &min)))
        bd->give_up = true;
      break;
    }
    case 0x02: { /* memory: limits */
      uint8_t flags;
      uint64_t min;
      if (!limits(b, end, &pos, &flags, &min))
        bd->give_up = true;
      break;
    }
    case 0x03: /* global: valtype, mutability */
      if (end - pos < 2)
        bd->give_up = true;
      else
        pos += 2;
      break;
    default: /* tags and what else: left to wasmtime */
      bd->give_up = true;
      break;
    }
  }
  return TW_OK;
}

static void parse_functions(boundary *bd, const uint8_t *b, size_t pos,
                            size_t end, size_t len) {
  uint32_t n, t;
  if (!leb_u32(b, end, &pos, &n) || n > end - pos) {
    bd->give_up = true;
    return;
  }
  for (uint32_t i = 0; i < n; i++)
    if (!leb_u32(b, end, &pos, &t) || !add_func(bd, t, (uint32_t)(len / 2))) {
      bd->give_up = true;
      return;
    }
}

static int check_exports(boundary *bd, const uint8_t *b, size_t pos, size_t end,
                         tw_err *err) {
  uint32_t n;
  if (!leb_u32(b, end, &pos, &n) || n > end - pos)
    return TW_OK;
  for (uint32_t i = 0; i < n; i++) {
    char field[64];
    uint32_t idx;
    if (!name(b, end, &pos, field, sizeof field) || pos >= end)
      return TW_OK;
    uint8_t kind = b[pos++];
    if (!leb_u32(b, end, &pos, &idx))
      return TW_OK;
    if (kind != 0x00 || bd->v128 == NULL || idx >= bd->nfuncs)
      continue;
    uint32_t t = bd->ftype[idx];
    if (t < bd->ntypes && bd->v128[t])
      return tw_err_set(err, TW_EVALIDATE,
                        "export '%s' has v128 in its signature; a model's "
                        "boundary takes i32, i64, f32, f64 only",
                        field);
  }
  return TW_OK;
}

static int scan_sections(const uint8_t *b, size_t len,
                         const tw__wasm_caps *caps, boundary *bd, tw_err *err);

int tw__wasm_scan(const uint8_t *b, size_t len, const tw__wasm_caps *caps,
                  tw_err *err) {
  boundary bd;
  memset(&bd, 0, sizeof bd);
  int rc = scan_sections(b, len, caps, &bd, err);
  tw_free(bd.v128);
  tw_free(bd.ftype);
  return rc;
}

static int scan_sections(const uint8_t *b, size_t len,
                         const tw__wasm_caps *caps, boundary *bd, tw_err *err) {
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
    int brc = TW_OK;
    if (id >= 1 && id <= 12) { /* a repeated section: wasmtime refuses it */
      if ((bd->seen & (1u << id)) != 0)
        bd->give_up = true;
      bd->seen |= 1u << id;
    }
    if (!bd->give_up) {
      if (id == 1)
        parse_types(bd, b, pos, end);
      else if (id == 2)
        brc = check_imports(bd, b, pos, end, len, err);
      else if (id == 3)
        parse_functions(bd, b, pos, end, len);
      else if (id == 7)
        brc = check_exports(bd, b, pos, end, err);
    }
    if (brc != TW_OK)
      return brc;
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
