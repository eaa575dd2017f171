/*
 * module.c - loading a model module: size cap, magic, digest, the engine's
 * compiled-code cache, import and export checks against model ABI v1, the
 * host linker, and one probe instantiation that reads the descriptor.
 *
 * Checks happen before any guest code runs: a module importing anything
 * but tw_host (and WASI when granted), or missing an ABI export, or
 * exporting one with another signature, is refused naming the item.
 */
#include <stdio.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/buf.h"
#include "twin/file.h"
#include "twin/hash.h"
#include "wasm_int.h"

/* The ABI v1 exports and their signatures (docs/model-abi.md). */
static const struct {
  const char *name;
  const char *sig;
  bool required;
} abi_exports[TW__WX_COUNT] = {
    [TW__WX_ABI_VERSION] = {"tw_abi_version", "() -> i32", true},
    [TW__WX_DESCRIBE] = {"tw_describe", "() -> i64", true},
    [TW__WX_ALLOC] = {"tw_alloc", "(i32) -> i32", true},
    [TW__WX_INIT] = {"tw_init", "(i32, i32) -> i32", true},
    [TW__WX_STEP] = {"tw_step", "(f64, f64, i32, i32, i32, i32, i32) -> i32",
                     true},
    [TW__WX_STEP_VJP] = {"tw_step_vjp",
                         "(f64, f64, i32, i32, i32, i32, i32, i32, i32, "
                         "i32) -> i32",
                         false},
    [TW__WX_INITIALIZE] = {"_initialize", "() -> ()", false},
};

const char *tw__wasm_export_name(unsigned i) { return abi_exports[i].name; }

static const char *kind_name(wasm_externkind_t k) {
  switch (k) {
  case WASM_EXTERN_FUNC:
    return "func";
  case WASM_EXTERN_GLOBAL:
    return "global";
  case WASM_EXTERN_TABLE:
    return "table";
  case WASM_EXTERN_MEMORY:
    return "memory";
  default:
    return "tag";
  }
}

static void type_str(const wasm_externtype_t *t, char *out, size_t cap) {
  wasm_externkind_t k = wasm_externtype_kind(t);
  if (k == WASM_EXTERN_FUNC) {
    tw__wasm_functype_str(wasm_externtype_as_functype_const(t), out, cap);
  } else if (k == WASM_EXTERN_MEMORY) {
    const wasm_memorytype_t *m = wasm_externtype_as_memorytype_const(t);
    uint64_t max = 0;
    bool has_max = wasmtime_memorytype_maximum(m, &max);
    if (has_max)
      (void)snprintf(out, cap, "%llu..%llu pages",
                     (unsigned long long)wasmtime_memorytype_minimum(m),
                     (unsigned long long)max);
    else
      (void)snprintf(out, cap, "%llu.. pages",
                     (unsigned long long)wasmtime_memorytype_minimum(m));
  } else {
    out[0] = '\0';
  }
}

/* Copies name into a NUL-terminated string of at most cap - 1 bytes,
 * replacing control and non-ASCII bytes (names come from the module). */
static void safe_name(const wasm_name_t *n, char *out, size_t cap) {
  size_t len = n->size < cap - 1 ? n->size : cap - 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)n->data[i];
    out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  out[len] = '\0';
}

static bool name_is(const wasm_name_t *n, const char *s) {
  size_t len = strlen(s);
  return n->size == len && memcmp(n->data, s, len) == 0;
}

/* Records the module's imports and exports for inspection, and checks
 * them against the ABI. */
static int check_externs(tw_wasm_module *m, const wasmtime_module_t *mod,
                         bool allow_wasi, size_t max_memory, tw_err *err) {
  wasm_importtype_vec_t imps;
  wasm_exporttype_vec_t exps;
  wasmtime_module_imports(mod, &imps);
  wasmtime_module_exports(mod, &exps);
  int rc = TW_OK;
  size_t n = imps.size + exps.size;
  /* One block: the extern records, then their strings (<= 512 each). */
  m->extern_store = tw_calloc(n ? n : 1, (size_t)4 * 256);
  m->imports = tw_calloc(imps.size ? imps.size : 1, sizeof *m->imports);
  m->exports = tw_calloc(exps.size ? exps.size : 1, sizeof *m->exports);
  if (m->extern_store == NULL || m->imports == NULL || m->exports == NULL) {
    rc = tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
    goto done;
  }
  char *s = m->extern_store;
  for (size_t i = 0; i < imps.size && rc == TW_OK; i++) {
    const wasm_importtype_t *it = imps.data[i];
    tw_wasm_extern *x = &m->imports[m->nimports++];
    char *mod_s = s, *name_s = s + 256, *sig_s = s + 512;
    s += 1024;
    safe_name(wasm_importtype_module(it), mod_s, 256);
    safe_name(wasm_importtype_name(it), name_s, 256);
    const wasm_externtype_t *t = wasm_importtype_type(it);
    type_str(t, sig_s, 512);
    *x = (tw_wasm_extern){mod_s, name_s, kind_name(wasm_externtype_kind(t)),
                          sig_s};
    const wasm_name_t *im = wasm_importtype_module(it);
    const wasm_name_t *in = wasm_importtype_name(it);
    if (name_is(im, "tw_host")) {
      if (!name_is(in, "log") || strcmp(x->kind, "func") != 0 ||
          strcmp(sig_s, "(i32, i32, i32) -> ()") != 0)
        rc = tw_err_set(err, TW_EVALIDATE,
                        "import 'tw_host.%s' (%s %s) is not provided: "
                        "tw_host has only log: func (i32, i32, i32) -> ()",
                        name_s, x->kind, sig_s);
    } else if (name_is(im, "wasi_snapshot_preview1")) {
      if (!allow_wasi)
        rc = tw_err_set(err, TW_EVALIDATE,
                        "import 'wasi_snapshot_preview1.%s' needs WASI, "
                        "which was not granted",
                        name_s);
    } else {
      rc = tw_err_set(err, TW_EVALIDATE,
                      "import '%s.%s' (%s) is not allowed: a model may "
                      "import only from tw_host (and WASI when granted)",
                      mod_s, name_s, x->kind);
    }
  }
  bool found[TW__WX_COUNT] = {false};
  bool have_memory = false;
  for (size_t i = 0; i < exps.size; i++) {
    const wasm_exporttype_t *et = exps.data[i];
    tw_wasm_extern *x = &m->exports[m->nexports++];
    char *name_s = s, *sig_s = s + 256;
    s += 1024;
    safe_name(wasm_exporttype_name(et), name_s, 256);
    const wasm_externtype_t *t = wasm_exporttype_type(et);
    type_str(t, sig_s, 512);
    *x = (tw_wasm_extern){NULL, name_s, kind_name(wasm_externtype_kind(t)),
                          sig_s};
    if (rc != TW_OK)
      continue;
    const wasm_name_t *en = wasm_exporttype_name(et);
    if (name_is(en, "memory")) {
      if (wasm_externtype_kind(t) != WASM_EXTERN_MEMORY) {
        rc = tw_err_set(err, TW_EVALIDATE,
                        "export 'memory' is a %s, not a "
                        "memory",
                        x->kind);
        continue;
      }
      const wasm_memorytype_t *mt = wasm_externtype_as_memorytype_const(t);
      if (wasmtime_memorytype_is64(mt) || wasmtime_memorytype_isshared(mt))
        rc = tw_err_set(err, TW_EVALIDATE,
                        "export 'memory' must be a 32-bit, unshared memory");
      else if (wasmtime_memorytype_minimum(mt) * 65536 > max_memory)
        rc = tw_err_set(err, TW_ELIMIT,
                        "memory limit: the module's initial memory is %llu "
                        "bytes, the cap is %zu",
                        (unsigned long long)wasmtime_memorytype_minimum(mt) *
                            65536,
                        max_memory);
      have_memory = true;
      continue;
    }
    for (unsigned k = 0; k < TW__WX_COUNT; k++) {
      if (!name_is(en, abi_exports[k].name))
        continue;
      found[k] = true;
      if (wasm_externtype_kind(t) != WASM_EXTERN_FUNC ||
          strcmp(sig_s, abi_exports[k].sig) != 0)
        rc =
            tw_err_set(err, TW_EVALIDATE,
                       "export '%s' is %s %s; model ABI v1 needs func %s",
                       abi_exports[k].name, x->kind, sig_s, abi_exports[k].sig);
    }
  }
  if (rc == TW_OK && !have_memory)
    rc = tw_err_set(err, TW_EVALIDATE,
                    "missing export 'memory' (model ABI v1 needs it)");
  for (unsigned k = 0; rc == TW_OK && k < TW__WX_COUNT; k++)
    if (abi_exports[k].required && !found[k])
      rc = tw_err_set(err, TW_EVALIDATE,
                      "missing export '%s' (func %s), required by model ABI "
                      "v1",
                      abi_exports[k].name, abi_exports[k].sig);
  m->has_vjp = found[TW__WX_STEP_VJP];
done:
  wasm_importtype_vec_delete(&imps);
  wasm_exporttype_vec_delete(&exps);
  return rc;
}

/* The cached code for (digest, wasi), or a new entry compiled from bytes.
 * The engine lock is not held while compiling: two threads compiling the
 * same module both succeed and one result is kept. */
static int get_code(tw_wasm_engine *e, tw_wasm_module *m, const char *digest,
                    const void *bytes, size_t len, bool wasi, tw_err *err) {
  pthread_mutex_lock(&e->lock);
  for (tw__wasm_code *c = e->cache; c != NULL; c = c->next)
    if (c->allow_wasi == wasi && strcmp(c->digest, digest) == 0) {
      c->refs++;
      e->cache_hits++;
      m->code = c;
      pthread_mutex_unlock(&e->lock);
      return check_externs(m, c->module, wasi, e->opts.max_memory, err);
    }
  e->cache_misses++;
  pthread_mutex_unlock(&e->lock);

  wasmtime_module_t *mod = NULL;
  wasmtime_error_t *we = wasmtime_module_new(e->engine, bytes, len, &mod);
  if (we != NULL)
    return tw__wasm_fail(m->short_digest, "compiling", we, NULL,
                         TW__FAIL_COMPILE, err);
  int rc = check_externs(m, mod, wasi, e->opts.max_memory, err);
  wasmtime_linker_t *linker = NULL;
  wasmtime_instance_pre_t *pre = NULL;
  if (rc == TW_OK) {
    linker = wasmtime_linker_new(e->engine);
    if (linker == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  }
  if (rc == TW_OK)
    rc = tw__wasm_define_host(e, linker, err);
  if (rc == TW_OK && wasi)
    rc = tw__wasm_define_wasi(linker, err);
  if (rc == TW_OK) {
    we = wasmtime_linker_instantiate_pre(linker, mod, &pre);
    if (we != NULL)
      rc = tw__wasm_fail("?", "linking", we, NULL, 0, err);
  }
  tw__wasm_code *c = NULL;
  if (rc == TW_OK && (c = tw_calloc(1, sizeof *c)) == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  if (rc != TW_OK) {
    if (pre != NULL)
      wasmtime_instance_pre_delete(pre);
    if (linker != NULL)
      wasmtime_linker_delete(linker);
    wasmtime_module_delete(mod);
    return rc;
  }
  (void)snprintf(c->digest, sizeof c->digest, "%s", digest);
  c->allow_wasi = wasi;
  c->module = mod;
  c->linker = linker;
  c->pre = pre;
  c->refs = 1;
  pthread_mutex_lock(&e->lock);
  c->next = e->cache;
  e->cache = c;
  pthread_mutex_unlock(&e->lock);
  m->code = c;
  return TW_OK;
}

/* Unreferenced compiled modules kept for reuse; older ones are dropped. */
#define CACHE_KEEP 32

void tw__wasm_free_code(tw__wasm_code *c) {
  wasmtime_instance_pre_delete(c->pre);
  wasmtime_linker_delete(c->linker);
  wasmtime_module_delete(c->module);
  tw_free(c);
}

static void release_code(tw_wasm_engine *e, tw__wasm_code *c) {
  if (c == NULL)
    return;
  tw__wasm_code *drop = NULL;
  pthread_mutex_lock(&e->lock);
  c->refs--;
  /* The list is newest first: keep the CACHE_KEEP newest unreferenced
   * entries, unlink the next one found beyond them. */
  unsigned idle = 0;
  for (tw__wasm_code **pp = &e->cache; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->refs == 0 && ++idle > CACHE_KEEP) {
      drop = *pp;
      *pp = drop->next;
      break;
    }
  pthread_mutex_unlock(&e->lock);
  if (drop != NULL)
    tw__wasm_free_code(drop);
}

void tw_wasm_engine_trim(tw_wasm_engine *e) {
  tw__wasm_code *drop = NULL;
  pthread_mutex_lock(&e->lock);
  for (tw__wasm_code **pp = &e->cache; *pp != NULL;) {
    tw__wasm_code *c = *pp;
    if (c->refs == 0) {
      *pp = c->next;
      c->next = drop;
      drop = c;
    } else {
      pp = &c->next;
    }
  }
  pthread_mutex_unlock(&e->lock);
  while (drop != NULL) {
    tw__wasm_code *next = drop->next;
    tw__wasm_free_code(drop);
    drop = next;
  }
}

void tw_wasm_module_free(tw_wasm_module *m) {
  if (m == NULL)
    return;
  release_code(m->engine, m->code);
  tw__wasm_free_desc(m);
  tw_free(m->imports);
  tw_free(m->exports);
  tw_free(m->extern_store);
  tw_free(m->name);
  pthread_mutex_lock(&m->engine->lock);
  m->engine->nmodules--;
  pthread_mutex_unlock(&m->engine->lock);
  tw_free(m);
}

int tw_wasm_module_load(tw_wasm_engine *e, const void *bytes, size_t len,
                        const tw_wasm_module_opts *opts, tw_wasm_module **out,
                        tw_err *err) {
  static const unsigned char magic[4] = {0, 'a', 's', 'm'};
  const unsigned char *b = bytes;
  if (bytes == NULL && len > 0)
    return tw_err_set(err, TW_EINVAL, "wasm: bytes is NULL");
  if (len == 0)
    return tw_err_set(err, TW_EPARSE, "not a WebAssembly module: empty");
  if (len > e->opts.max_module_size)
    return tw_err_set(err, TW_ELIMIT,
                      "module is %zu bytes, more than the limit of %zu", len,
                      e->opts.max_module_size);
  if (len < 8 || memcmp(b, magic, 4) != 0)
    return tw_err_set(err, TW_EPARSE,
                      "not a WebAssembly module (no \\0asm magic)");
  if (b[4] != 1 || b[5] != 0 || b[6] != 0 || b[7] != 0)
    return tw_err_set(err, TW_EPARSE,
                      "not a core WebAssembly module (version bytes %02x "
                      "%02x %02x %02x; components are not models)",
                      b[4], b[5], b[6], b[7]);
  tw__wasm_caps caps = {e->opts.max_function_size, e->opts.max_functions,
                        e->opts.max_memory, TW__WASM_MAX_TABLE};
  int rc = tw__wasm_scan(b, len, &caps, err);
  if (rc != TW_OK)
    return rc;
  char digest[72] = "sha256:";
  rc = tw_sha256_hex(bytes, len, digest + 7);
  if (rc != TW_OK)
    return tw_err_set(err, rc, "wasm: cannot hash the module");
  tw_wasm_module *m = tw_calloc(1, sizeof *m);
  if (m == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  m->engine = e;
  m->size = len;
  (void)snprintf(m->short_digest, sizeof m->short_digest, "%.19s", digest);
  pthread_mutex_lock(&e->lock);
  e->nmodules++;
  pthread_mutex_unlock(&e->lock);
  bool wasi = opts != NULL && opts->allow_wasi;
  rc = get_code(e, m, digest, bytes, len, wasi, err);
  if (rc == TW_OK && opts != NULL && opts->name != NULL &&
      (m->name = tw_strdup(opts->name)) == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  if (rc == TW_OK)
    rc = tw__wasm_probe(m, err);
  if (rc != TW_OK) {
    tw_wasm_module_free(m);
    return rc;
  }
  *out = m;
  return TW_OK;
}

int tw_wasm_module_load_file(tw_wasm_engine *e, const char *path,
                             const tw_wasm_module_opts *opts,
                             tw_wasm_module **out, tw_err *err) {
  tw_buf b;
  tw_buf_init(&b);
  int rc = tw_file_read_all(path, e->opts.max_module_size, &b, err);
  if (rc == TW_OK)
    rc = tw_wasm_module_load(e, b.data, b.len, opts, out, err);
  tw_buf_fini(&b);
  return rc;
}

const tw_wasm_desc *tw_wasm_module_desc(const tw_wasm_module *m) {
  return &m->desc;
}
const char *tw_wasm_module_digest(const tw_wasm_module *m) {
  return m->code->digest;
}
size_t tw_wasm_module_size(const tw_wasm_module *m) { return m->size; }

size_t tw_wasm_module_imports(const tw_wasm_module *m,
                              const tw_wasm_extern **out) {
  *out = m->imports;
  return m->nimports;
}
size_t tw_wasm_module_exports(const tw_wasm_module *m,
                              const tw_wasm_extern **out) {
  *out = m->exports;
  return m->nexports;
}
