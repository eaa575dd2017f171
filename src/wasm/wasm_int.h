/*
 * wasm_int.h - internals shared by the files of src/wasm.
 *
 * Ownership: the engine owns the module cache (compiled code keyed by the
 * module digest; engine settings are the engine's own, so the key is the
 * pair). A tw_wasm_module holds a counted reference to a cache entry plus
 * its parsed descriptor; an instance holds a reference to its module.
 */
#ifndef TW_WASM_INT_H
#define TW_WASM_INT_H

#include <pthread.h>
#include <wasmtime.h>

#include "twin/buf.h"
#include "twin/wasm.h"

/* The ABI exports, in call order of the table below. */
enum {
  TW__WX_ABI_VERSION,
  TW__WX_DESCRIBE,
  TW__WX_ALLOC,
  TW__WX_INIT,
  TW__WX_STEP,
  TW__WX_STEP_VJP,   /* optional */
  TW__WX_INITIALIZE, /* optional: the WASI reactor's _initialize, called
                        once after instantiation */
  TW__WX_COUNT
};

/* A compiled module in the engine's cache. */
typedef struct tw__wasm_code {
  struct tw__wasm_code *next;
  char digest[72]; /* "sha256:" + 64 hex */
  bool allow_wasi;
  wasmtime_module_t *module;
  wasmtime_linker_t *linker;
  wasmtime_instance_pre_t *pre;
  unsigned refs; /* under the engine's lock */
} tw__wasm_code;

struct tw_wasm_engine {
  tw_ctx *ctx;
  tw_wasm_engine_opts opts;
  wasm_engine_t *engine;
  pthread_mutex_t lock; /* the cache and the counters below */
  tw__wasm_code *cache;
  unsigned nmodules; /* live tw_wasm_module handles */
  uint64_t cache_hits, cache_misses;
  /* The epoch ticker (TW_WASM_EPOCH). */
  pthread_t ticker;
  bool ticker_running, stopping;
  pthread_cond_t stop_cond;
};

struct tw_wasm_module {
  tw_wasm_engine *engine;
  tw__wasm_code *code;
  char *name;
  char short_digest[24]; /* "sha256:" + 12 hex: the name until the
                            descriptor gives one */
  size_t size;
  tw_wasm_desc desc;
  bool has_vjp;
  /* Storage behind desc and the extern lists. */
  void *desc_store;
  tw_wasm_extern *imports, *exports;
  size_t nimports, nexports;
  char *extern_store;
};

/* Guest buffers, one per ABI array (byte offsets into memory). */
enum {
  TW__WB_X,
  TW__WB_U,
  TW__WB_THETA,
  TW__WB_XN,
  TW__WB_Y,
  TW__WB_GXN,
  TW__WB_GY,
  TW__WB_GX,
  TW__WB_GU,
  TW__WB_GTHETA,
  TW__WB_COUNT
};

struct tw_wasm_instance {
  tw_wasm_module *module;
  tw_wasm_limits limits;
  wasmtime_store_t *store;
  wasmtime_context_t *cx;
  wasmtime_instance_t inst;
  wasmtime_memory_t memory;
  wasmtime_func_t fn[TW__WX_COUNT];
  bool has_fn[TW__WX_COUNT];
  uint32_t buf[TW__WB_COUNT];
  bool poisoned; /* a call trapped: reset before the next */
  tw_wasm_usage usage;
  double *u_default; /* nu: the inputs' defaults (0 where none) */
};

/* The name of ABI export i (TW__WX_*). */
const char *tw__wasm_export_name(unsigned i);

/* Reads and checks the descriptor through a probe instance under bounded
 * limits (instance.c). */
int tw__wasm_probe(tw_wasm_module *m, tw_err *err);

/* Frees a cache entry (its module, linker and pre-instance). */
void tw__wasm_free_code(tw__wasm_code *c);

/* Turns a wasmtime error or trap (exactly one non-NULL; both are deleted)
 * into err for what ("tw_step", "instantiation") of the model named name.
 * Flags: TW__FAIL_CALL when guest code was running (a wasmtime error is
 * then a trap raised by the host side, TW_ETRAP, rather than a link or
 * configuration failure, TW_EVALIDATE); TW__FAIL_MEM_FULL when linear
 * memory sat at its cap; TW__FAIL_COMPILE for wasmtime_module_new (an
 * invalid module: TW_EPARSE). */
enum { TW__FAIL_CALL = 1u, TW__FAIL_MEM_FULL = 2u, TW__FAIL_COMPILE = 4u };
int tw__wasm_fail(const char *name, const char *what, wasmtime_error_t *e,
                  wasm_trap_t *trap, unsigned flags, tw_err *err);

/* Parses and checks the descriptor JSON; fills m->desc (storage in
 * m->desc_store). */
int tw__wasm_parse_desc(tw_wasm_module *m, const char *json, size_t len,
                        tw_err *err);
void tw__wasm_free_desc(tw_wasm_module *m);

/* The host functions of module tw_host, defined into linker. */
int tw__wasm_define_host(tw_wasm_engine *e, wasmtime_linker_t *linker,
                         tw_err *err);

/* Table elements an instance may have (pooling allocator slots). */
#define TW__WASM_MAX_TABLE 65536

/* What tw__wasm_scan holds a module to. */
typedef struct tw__wasm_caps {
  size_t max_body, max_functions; /* function bodies: bytes, count */
  size_t max_memory;              /* initial linear memory, bytes */
  size_t max_table;               /* initial table elements */
} tw__wasm_caps;

/* Checks section framing, function body sizes and count, and that the
 * module's own memory and table fit the caps (one of each at most), before
 * anything is compiled (scan.c). */
int tw__wasm_scan(const uint8_t *b, size_t len, const tw__wasm_caps *caps,
                  tw_err *err);

/* WASI preview 1 into linker, with poll_oneoff (which would block in the
 * host, past every limit) replaced by one that returns ENOTSUP. */
int tw__wasm_define_wasi(wasmtime_linker_t *linker, tw_err *err);

/* Signature text "(f64, i32) -> i32" of a function type into out. */
void tw__wasm_functype_str(const wasm_functype_t *ft, char *out, size_t cap);

#endif
