/*
 * twin/wasm.h - sandboxed models: WebAssembly modules run in wasmtime under
 * fuel or epoch deadlines and a memory cap, speaking the model ABI v1
 * (docs/model-abi.md).
 *
 *   engine    one per process (or per configuration): compiler settings,
 *             limits every instance shares, the module cache, the epoch
 *             ticker. Thread-safe.
 *   module    bytes validated, compiled, ABI-checked, descriptor parsed.
 *             Immutable, shared by threads; cached by (digest, engine).
 *   instance  one wasmtime store + instance + guest buffers for one
 *             thread at a time ("one store per worker thread").
 *
 * Every failure is a tw_err naming the model and what went wrong: traps
 * are TW_ETRAP ("unreachable", "out-of-bounds", "stack overflow", ...),
 * fuel and memory limits TW_ELIMIT ("out of fuel", "memory limit"), epoch
 * deadlines TW_ETIMEDOUT ("deadline exceeded"), ABI problems
 * TW_EVALIDATE, bytes that are not WebAssembly TW_EPARSE. After any error
 * the engine and other instances are unaffected; an instance whose call
 * trapped is poisoned (TW_ESTATE) until tw_wasm_instance_reset.
 */
#ifndef TWIN_WASM_H
#define TWIN_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/ctx.h"
#include "twin/dtype.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

#define TW_WASM_ABI_VERSION 1

/* --- Engine ------------------------------------------------------------ */

/* What the compiled code is instrumented with (both may be on; each costs
 * a little on every call, see bench/wasm). */
enum {
  TW_WASM_FUEL = 1u << 0,      /* deterministic instruction budget */
  TW_WASM_EPOCH = 1u << 1,     /* wall-clock deadline, cheap */
  TW_WASM_UNMETERED = 1u << 2, /* neither: no limit can stop a guest that
                                  loops; for benchmarks and trusted code */
};

typedef struct tw_wasm_engine_opts {
  unsigned meters;          /* TW_WASM_FUEL | TW_WASM_EPOCH (0: both), or
                              TW_WASM_UNMETERED */
  size_t max_memory;        /* per-instance linear memory cap, bytes; also the
                               memory reservation (0: 64 MiB) */
  size_t max_stack;         /* wasm stack limit, bytes (0: 512 KiB) */
  size_t max_module_size;   /* bytes accepted by tw_wasm_module_load
                               (0: 32 MiB) */
  size_t max_function_size; /* largest function body accepted, bytes
                               (0: 256 KiB): compile time and memory grow
                               with it */
  size_t max_functions;     /* functions in a module (0: 100000) */
  uint32_t pool_size;       /* pooling-allocator instance slots (0: 64) */
  uint32_t epoch_tick_us;   /* epoch ticker period (0: 1000) */
} tw_wasm_engine_opts;

typedef struct tw_wasm_engine tw_wasm_engine;

/* ctx (may be NULL) receives the guests' log lines and the engine's
 * metrics. opts may be NULL (all defaults). */
TW_API int tw_wasm_engine_new(tw_ctx *ctx, const tw_wasm_engine_opts *opts,
                              tw_wasm_engine **out, tw_err *err);
/* All modules and instances must be freed first. NULL ok. */
TW_API void tw_wasm_engine_free(tw_wasm_engine *e);
/* Drops the compiled code of modules no handle refers to (the cache keeps
 * the 32 most recent otherwise). Thread-safe. */
TW_API void tw_wasm_engine_trim(tw_wasm_engine *e);

/* --- Modules and the model descriptor ----------------------------------- */

/* One port of the descriptor. default_/min/max hold size values (a scalar
 * in the JSON is broadcast) or are NULL when absent. */
typedef struct tw_wasm_port {
  const char *name;
  const char *unit;
  size_t size;
  tw_dtype dtype;          /* "dtype" in the descriptor; f64 by default */
  const double *default_;  /* inputs, params */
  const double *min, *max; /* params */
  /* outputs: the inputs (indices into desc->inputs) this output depends
   * on within one step; feedthrough_all when the key is absent. */
  bool feedthrough_all;
  const size_t *feedthrough;
  size_t nfeedthrough;
} tw_wasm_port;

typedef struct tw_wasm_desc {
  const char *name, *version;
  const tw_wasm_port *state, *inputs, *outputs, *params;
  size_t nstate, ninputs, noutputs, nparams;
  size_t nx, nu, ny, ntheta;
  bool differentiable; /* the descriptor says so and tw_step_vjp exists */
  const char *json;    /* the descriptor as the module returned it */
} tw_wasm_desc;

typedef struct tw_wasm_module_opts {
  bool allow_wasi;  /* link WASI preview 1 (no files, no env, no args) */
  const char *name; /* for messages (0: the descriptor's name) */
} tw_wasm_module_opts;

typedef struct tw_wasm_module tw_wasm_module;

/* Validates, compiles (or finds in the engine's cache) and ABI-checks the
 * module; instantiates it once to read and check its descriptor. opts may
 * be NULL. The module keeps a reference to e. */
TW_API int tw_wasm_module_load(tw_wasm_engine *e, const void *bytes, size_t len,
                               const tw_wasm_module_opts *opts,
                               tw_wasm_module **out, tw_err *err);
TW_API int tw_wasm_module_load_file(tw_wasm_engine *e, const char *path,
                                    const tw_wasm_module_opts *opts,
                                    tw_wasm_module **out, tw_err *err);
/* Drops a reference (the cache may keep the compiled code). NULL ok. */
TW_API void tw_wasm_module_free(tw_wasm_module *m);

TW_API const tw_wasm_desc *tw_wasm_module_desc(const tw_wasm_module *m);
/* "sha256:<64 hex>" of the module bytes. */
TW_API const char *tw_wasm_module_digest(const tw_wasm_module *m);
TW_API size_t tw_wasm_module_size(const tw_wasm_module *m);

/* Imports and exports as "module.name: kind signature" lines, for
 * `twin model inspect`. */
typedef struct tw_wasm_extern {
  const char *module; /* NULL for exports */
  const char *name;
  const char *kind;      /* "func", "memory", "global", "table" */
  const char *signature; /* "(f64, f64, i32) -> i32", "1..16 pages" */
} tw_wasm_extern;
TW_API size_t tw_wasm_module_imports(const tw_wasm_module *m,
                                     const tw_wasm_extern **out);
TW_API size_t tw_wasm_module_exports(const tw_wasm_module *m,
                                     const tw_wasm_extern **out);

/* --- Instances -------------------------------------------------------- */

typedef struct tw_wasm_limits {
  uint64_t fuel;       /* per call (init, step, vjp); 0: unlimited. Needs
                          TW_WASM_FUEL in the engine */
  uint32_t timeout_ms; /* per call; 0: none. Needs TW_WASM_EPOCH */
  size_t max_memory;   /* bytes, <= the engine's; 0: the engine's */
} tw_wasm_limits;

typedef struct tw_wasm_usage {
  uint64_t calls;      /* guest calls made */
  uint64_t fuel_used;  /* total over all calls (0 without fuel) */
  size_t memory_bytes; /* linear memory now */
  size_t peak_memory;  /* largest linear memory seen */
  double wall_ms;      /* total wall time inside the guest */
} tw_wasm_usage;

typedef struct tw_wasm_instance tw_wasm_instance;

/* limits may be NULL (no fuel or time limit, the engine's memory cap). */
TW_API int tw_wasm_instance_new(tw_wasm_module *m, const tw_wasm_limits *limits,
                                tw_wasm_instance **out, tw_err *err);
TW_API void tw_wasm_instance_free(tw_wasm_instance *in);
/* A fresh instance of the same module in place (after a trap). */
TW_API int tw_wasm_instance_reset(tw_wasm_instance *in, tw_err *err);
TW_API const tw_wasm_module *
tw_wasm_instance_module(const tw_wasm_instance *in);
TW_API void tw_wasm_instance_usage(const tw_wasm_instance *in,
                                   tw_wasm_usage *out);

/* The ABI calls. Arrays are f64 in descriptor order with the desc's sizes
 * nx, nu, ny, ntheta; u may be NULL (the inputs' defaults, else 0), y may
 * be NULL (outputs not wanted). step_vjp writes gx and gu (either may be
 * NULL) and adds into gtheta (may be NULL); gx_next, gy may be NULL
 * (zero). TW_ENOTSUP from step_vjp if the model is not differentiable. */
TW_API int tw_wasm_init(tw_wasm_instance *in, const double *theta, double *x0,
                        tw_err *err);
TW_API int tw_wasm_step(tw_wasm_instance *in, double t, double dt,
                        const double *x, const double *u, const double *theta,
                        double *x_next, double *y, tw_err *err);
TW_API int tw_wasm_step_vjp(tw_wasm_instance *in, double t, double dt,
                            const double *x, const double *u,
                            const double *theta, const double *gx_next,
                            const double *gy, double *gx, double *gu,
                            double *gtheta, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_WASM_H */
