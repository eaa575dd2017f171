/*
 * instance.c - instances of a model: a wasmtime store per instance, with
 * the memory cap (store limiter), per-call fuel and epoch deadline, the
 * guest buffers of the ABI, the calls, and the tw_host imports.
 *
 * Guest pointers (from tw_alloc and tw_describe) are checked for bounds
 * and 8-byte alignment before the host touches them; the memory base and
 * size are re-read after every guest call, since a call can grow memory.
 * Buffers are allocated once per instance and reused by every call.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/log.h"
#include "wasm_int.h"

#define WASM_PAGE ((size_t)64 << 10)
#define MAX_LOG_LINE 1024
#define MAX_DESCRIPTOR ((size_t)1 << 20)
/* Limits of the probe that reads a descriptor, whatever the caller's. */
#define PROBE_FUEL ((uint64_t)1 << 30)
#define PROBE_TIMEOUT_MS 10000

static const char *model_name(const tw_wasm_module *m) {
  if (m->name != NULL)
    return m->name;
  return m->desc.name != NULL ? m->desc.name : m->short_digest;
}

/* --- tw_host ------------------------------------------------------------ */

static wasm_trap_t *host_trap(const char *msg) {
  return wasmtime_trap_new(msg, strlen(msg));
}

/* tw_host.log(level, ptr, len): one line into the context's logger, with
 * non-printable bytes replaced and long lines cut. */
static wasm_trap_t *host_log(void *env, wasmtime_caller_t *caller,
                             const wasmtime_val_t *args, size_t nargs,
                             wasmtime_val_t *results, size_t nresults) {
  (void)results;
  (void)nresults;
  tw_wasm_engine *e = env;
  if (nargs != 3)
    return host_trap("tw_host.log: bad arity");
  int32_t level = args[0].of.i32;
  uint32_t ptr = (uint32_t)args[1].of.i32, len = (uint32_t)args[2].of.i32;
  wasmtime_extern_t mem;
  if (!wasmtime_caller_export_get(caller, "memory", 6, &mem) ||
      mem.kind != WASMTIME_EXTERN_MEMORY)
    return host_trap("tw_host.log: the module has no memory");
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  size_t size = wasmtime_memory_data_size(cx, &mem.of.memory);
  if ((uint64_t)ptr + len > size)
    return host_trap("tw_host.log: message outside linear memory");
  tw_wasm_instance *in = wasmtime_context_get_data(cx);
  if (e->ctx == NULL)
    return NULL;
  const uint8_t *p = wasmtime_memory_data(cx, &mem.of.memory) + ptr;
  char line[MAX_LOG_LINE + 1];
  size_t n = len < MAX_LOG_LINE ? len : MAX_LOG_LINE;
  for (size_t i = 0; i < n; i++)
    line[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
  line[n] = '\0';
  tw_log_level lv = level <= 0   ? TW_LOG_DEBUG
                    : level == 1 ? TW_LOG_INFO
                    : level == 2 ? TW_LOG_WARN
                                 : TW_LOG_ERROR;
  tw_log(e->ctx, lv, "wasm", "model '%s': %s%s",
         in != NULL ? model_name(in->module) : "?", line,
         len > MAX_LOG_LINE ? " [cut]" : "");
  return NULL;
}

/* WASI's poll_oneoff blocks in the host, where no fuel or epoch deadline
 * can stop it (a guest could sleep past any limit): granted modules get
 * this one instead, which returns ENOTSUP (58). */
static wasm_trap_t *host_poll_oneoff(void *env, wasmtime_caller_t *caller,
                                     const wasmtime_val_t *args, size_t nargs,
                                     wasmtime_val_t *results, size_t nresults) {
  (void)env, (void)caller, (void)args, (void)nargs;
  if (nresults == 1) {
    results[0].kind = WASMTIME_I32;
    results[0].of.i32 = 58;
  }
  return NULL;
}

int tw__wasm_define_wasi(wasmtime_linker_t *linker, tw_err *err) {
  wasmtime_error_t *we = wasmtime_linker_define_wasi(linker);
  if (we != NULL)
    return tw__wasm_fail("?", "linking WASI", we, NULL, 0, err);
  wasmtime_linker_allow_shadowing(linker, true);
  wasm_valtype_vec_t params, results;
  wasm_valtype_t *ps[4] = {
      wasm_valtype_new(WASM_I32), wasm_valtype_new(WASM_I32),
      wasm_valtype_new(WASM_I32), wasm_valtype_new(WASM_I32)};
  wasm_valtype_t *rs[1] = {wasm_valtype_new(WASM_I32)};
  wasm_valtype_vec_new(&params, 4, ps);
  wasm_valtype_vec_new(&results, 1, rs);
  wasm_functype_t *ft = wasm_functype_new(&params, &results);
  we = wasmtime_linker_define_func(linker, "wasi_snapshot_preview1", 22,
                                   "poll_oneoff", 11, ft, host_poll_oneoff,
                                   NULL, NULL);
  wasm_functype_delete(ft);
  wasmtime_linker_allow_shadowing(linker, false);
  if (we != NULL)
    return tw__wasm_fail("?", "linking WASI", we, NULL, 0, err);
  return TW_OK;
}

int tw__wasm_define_host(tw_wasm_engine *e, wasmtime_linker_t *linker,
                         tw_err *err) {
  wasm_valtype_vec_t params, results;
  wasm_valtype_t *ps[3] = {wasm_valtype_new(WASM_I32),
                           wasm_valtype_new(WASM_I32),
                           wasm_valtype_new(WASM_I32)};
  wasm_valtype_vec_new(&params, 3, ps);
  wasm_valtype_vec_new_empty(&results);
  wasm_functype_t *ft = wasm_functype_new(&params, &results);
  wasmtime_error_t *we = wasmtime_linker_define_func(
      linker, "tw_host", 7, "log", 3, ft, host_log, e, NULL);
  wasm_functype_delete(ft);
  if (we != NULL)
    return tw__wasm_fail("?", "defining tw_host.log", we, NULL, 0, err);
  return TW_OK;
}

/* --- Memory access ------------------------------------------------------ */

static size_t mem_size(tw_wasm_instance *in) {
  return wasmtime_memory_data_size(in->cx, &in->memory);
}

static bool mem_full(tw_wasm_instance *in) {
  size_t cap = in->limits.max_memory;
  return mem_size(in) + WASM_PAGE > cap;
}

static void note_memory(tw_wasm_instance *in) {
  size_t s = mem_size(in);
  in->usage.memory_bytes = s;
  if (s > in->usage.peak_memory)
    in->usage.peak_memory = s;
}

/* Checks a guest array of n f64 at ptr; returns its host address. */
static double *guest_array(tw_wasm_instance *in, uint32_t ptr, size_t n) {
  size_t size = mem_size(in);
  if (ptr % 8 != 0 || (uint64_t)ptr + (uint64_t)n * 8 > size)
    return NULL;
  return (double *)(void *)(wasmtime_memory_data(in->cx, &in->memory) + ptr);
}

/* --- Calls -----------------------------------------------------------------
 */

/* Arms the per-call limits. */
static int arm(tw_wasm_instance *in, uint64_t fuel, uint32_t timeout_ms,
               tw_err *err) {
  const tw_wasm_engine *e = in->module->engine;
  if ((e->opts.meters & TW_WASM_FUEL) != 0) {
    wasmtime_error_t *we =
        wasmtime_context_set_fuel(in->cx, fuel ? fuel : UINT64_MAX);
    if (we != NULL)
      return tw__wasm_fail(model_name(in->module), "setting fuel", we, NULL, 0,
                           err);
  }
  if ((e->opts.meters & TW_WASM_EPOCH) != 0) {
    uint64_t ticks = (uint64_t)1 << 40;
    if (timeout_ms != 0)
      ticks = ((uint64_t)timeout_ms * 1000 + e->opts.epoch_tick_us - 1) /
                  e->opts.epoch_tick_us +
              1;
    wasmtime_context_set_epoch_deadline(in->cx, ticks);
  }
  return TW_OK;
}

/* Calls export fn with raw arguments (results overwrite vals[0]); limits
 * from the instance, accounting into its usage. */
static int call(tw_wasm_instance *in, unsigned fn, wasmtime_val_raw_t *vals,
                size_t nvals, tw_err *err) {
  if (in->poisoned)
    return tw_err_set(err, TW_ESTATE,
                      "model '%s': the instance trapped earlier; reset it",
                      model_name(in->module));
  uint64_t fuel = in->limits.fuel;
  int rc = arm(in, fuel, in->limits.timeout_ms, err);
  if (rc != TW_OK)
    return rc;
  uint64_t t0 = tw_clock_mono_ns();
  wasm_trap_t *trap = NULL;
  wasmtime_error_t *we =
      wasmtime_func_call_unchecked(in->cx, &in->fn[fn], vals, nvals, &trap);
  in->usage.wall_ms += (double)(tw_clock_mono_ns() - t0) / 1e6;
  in->usage.calls++;
  if ((in->module->engine->opts.meters & TW_WASM_FUEL) != 0) {
    uint64_t left = 0;
    wasmtime_error_t *fe = wasmtime_context_get_fuel(in->cx, &left);
    if (fe == NULL)
      in->usage.fuel_used += (fuel ? fuel : UINT64_MAX) - left;
    else
      wasmtime_error_delete(fe);
  }
  note_memory(in);
  if (we != NULL || trap != NULL) {
    in->poisoned = true;
    return tw__wasm_fail(
        model_name(in->module), tw__wasm_export_name(fn), we, trap,
        TW__FAIL_CALL | (mem_full(in) ? TW__FAIL_MEM_FULL : 0), err);
  }
  return TW_OK;
}

static int check_status(tw_wasm_instance *in, unsigned fn, int32_t status,
                        tw_err *err) {
  if (status == 0)
    return TW_OK;
  return tw_err_set(err, TW_ETRAP, "model '%s': %s returned error code %d",
                    model_name(in->module), tw__wasm_export_name(fn),
                    (int)status);
}

/* --- Instances ------------------------------------------------------------ */

static int get_exports(tw_wasm_instance *in, tw_err *err) {
  wasmtime_extern_t x;
  if (!wasmtime_instance_export_get(in->cx, &in->inst, "memory", 6, &x) ||
      x.kind != WASMTIME_EXTERN_MEMORY)
    return tw_err_set(err, TW_EVALIDATE, "model '%s': no memory export",
                      model_name(in->module));
  in->memory = x.of.memory;
  for (unsigned k = 0; k < TW__WX_COUNT; k++) {
    const char *nm = tw__wasm_export_name(k);
    if (wasmtime_instance_export_get(in->cx, &in->inst, nm, strlen(nm), &x) &&
        x.kind == WASMTIME_EXTERN_FUNC) {
      in->fn[k] = x.of.func;
      in->has_fn[k] = true;
    }
  }
  return TW_OK;
}

/* Allocates one guest buffer of n f64 through tw_alloc. */
static int guest_alloc(tw_wasm_instance *in, size_t n, uint32_t *out,
                       tw_err *err) {
  size_t bytes = (n ? n : 1) * sizeof(double);
  wasmtime_val_raw_t v[1];
  v[0].i32 = (int32_t)bytes;
  int rc = call(in, TW__WX_ALLOC, v, 1, err);
  if (rc != TW_OK)
    return rc;
  uint32_t p = (uint32_t)v[0].i32;
  if (p == 0) {
    bool cap = mem_size(in) + bytes > in->limits.max_memory;
    return tw_err_set(err, cap ? TW_ELIMIT : TW_ETRAP,
                      "model '%s': tw_alloc(%zu) failed%s",
                      model_name(in->module), bytes,
                      cap ? " (memory limit: it would pass the cap)" : "");
  }
  if (guest_array(in, p, n ? n : 1) == NULL)
    return tw_err_set(err, TW_EVALIDATE,
                      "model '%s': tw_alloc(%zu) returned %" PRIu32
                      ", which is %s",
                      model_name(in->module), bytes, p,
                      p % 8 ? "not 8-byte aligned" : "outside linear memory");
  *out = p;
  return TW_OK;
}

static int instantiate(tw_wasm_instance *in, bool probe, tw_err *err) {
  tw_wasm_module *m = in->module;
  tw_wasm_engine *e = m->engine;
  in->store = wasmtime_store_new(e->engine, in, NULL);
  if (in->store == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  in->cx = wasmtime_store_context(in->store);
  wasmtime_store_limiter(in->store, (int64_t)in->limits.max_memory, 65536, 1, 1,
                         1);
  if (m->code->allow_wasi) {
    wasi_config_t *wc = wasi_config_new();
    if (wc == NULL)
      return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
    wasmtime_error_t *we = wasmtime_context_set_wasi(in->cx, wc);
    if (we != NULL)
      return tw__wasm_fail(model_name(m), "configuring WASI", we, NULL, 0, err);
  }
  uint64_t fuel = probe ? PROBE_FUEL : in->limits.fuel;
  uint32_t tmo = probe ? PROBE_TIMEOUT_MS : in->limits.timeout_ms;
  int rc = arm(in, fuel, tmo, err);
  if (rc != TW_OK)
    return rc;
  wasm_trap_t *trap = NULL;
  wasmtime_error_t *we =
      wasmtime_instance_pre_instantiate(m->code->pre, in->cx, &in->inst, &trap);
  if (we != NULL || trap != NULL)
    return tw__wasm_fail(model_name(m), "instantiation", we, trap,
                         TW__FAIL_CALL, err);
  rc = get_exports(in, err);
  if (rc != TW_OK)
    return rc;
  note_memory(in);
  if (in->has_fn[TW__WX_INITIALIZE]) { /* a WASI reactor's constructors */
    wasmtime_val_raw_t v[1];
    rc = call(in, TW__WX_INITIALIZE, v, 1, err);
  }
  return rc;
}

static int alloc_buffers(tw_wasm_instance *in, tw_err *err) {
  const tw_wasm_desc *d = &in->module->desc;
  const size_t sizes[TW__WB_COUNT] = {d->nx, d->nu,    d->ntheta, d->nx,
                                      d->ny, d->nx,    d->ny,     d->nx,
                                      d->nu, d->ntheta};
  unsigned nb = in->module->has_vjp ? TW__WB_COUNT : TW__WB_Y + 1;
  int rc = TW_OK;
  for (unsigned i = 0; i < nb && rc == TW_OK; i++)
    rc = guest_alloc(in, sizes[i], &in->buf[i], err);
  return rc;
}

static void teardown(tw_wasm_instance *in) {
  if (in->store != NULL)
    wasmtime_store_delete(in->store);
  in->store = NULL;
  in->cx = NULL;
}

int tw__wasm_probe(tw_wasm_module *m, tw_err *err) {
  tw_wasm_instance in;
  memset(&in, 0, sizeof in);
  in.module = m;
  in.limits.fuel = PROBE_FUEL;
  in.limits.timeout_ms = PROBE_TIMEOUT_MS;
  in.limits.max_memory = m->engine->opts.max_memory;
  int rc = instantiate(&in, true, err);
  wasmtime_val_raw_t v[1];
  if (rc == TW_OK)
    rc = call(&in, TW__WX_ABI_VERSION, v, 1, err);
  if (rc == TW_OK && v[0].i32 != TW_WASM_ABI_VERSION)
    rc = tw_err_set(err, TW_EVALIDATE,
                    "model speaks ABI version %d, this host speaks %d",
                    (int)v[0].i32, TW_WASM_ABI_VERSION);
  if (rc == TW_OK)
    rc = call(&in, TW__WX_DESCRIBE, v, 1, err);
  if (rc == TW_OK) {
    uint64_t pl = (uint64_t)v[0].i64;
    uint32_t ptr = (uint32_t)(pl >> 32), len = (uint32_t)pl;
    size_t size = mem_size(&in);
    if (len == 0 || len > MAX_DESCRIPTOR || (uint64_t)ptr + len > size)
      rc = tw_err_set(err, TW_EVALIDATE,
                      "tw_describe returned (ptr %" PRIu32 ", len %" PRIu32
                      "), %s",
                      ptr, len,
                      len == 0               ? "an empty descriptor"
                      : len > MAX_DESCRIPTOR ? "longer than 1 MiB"
                                             : "outside linear memory");
    else
      rc = tw__wasm_parse_desc(
          m, (const char *)wasmtime_memory_data(in.cx, &in.memory) + ptr, len,
          err);
  }
  /* The buffers the descriptor asks for must be obtainable. */
  if (rc == TW_OK)
    rc = alloc_buffers(&in, err);
  teardown(&in);
  return rc;
}

int tw_wasm_instance_new(tw_wasm_module *m, const tw_wasm_limits *limits,
                         tw_wasm_instance **out, tw_err *err) {
  const tw_wasm_engine *e = m->engine;
  tw_wasm_limits lim = {0, 0, 0};
  if (limits != NULL)
    lim = *limits;
  if (lim.max_memory == 0)
    lim.max_memory = e->opts.max_memory;
  if (lim.max_memory > e->opts.max_memory)
    return tw_err_set(err, TW_ERANGE,
                      "wasm: max_memory %zu exceeds the engine's cap %zu",
                      lim.max_memory, e->opts.max_memory);
  if (lim.fuel != 0 && (e->opts.meters & TW_WASM_FUEL) == 0)
    return tw_err_set(err, TW_ENOTSUP,
                      "wasm: a fuel limit needs an engine with TW_WASM_FUEL");
  if (lim.timeout_ms != 0 && (e->opts.meters & TW_WASM_EPOCH) == 0)
    return tw_err_set(err, TW_ENOTSUP,
                      "wasm: a timeout needs an engine with TW_WASM_EPOCH");
  tw_wasm_instance *in = tw_calloc(1, sizeof *in);
  if (in == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  in->module = m;
  in->limits = lim;
  size_t nu = m->desc.nu;
  in->u_default = tw_calloc(nu ? nu : 1, sizeof(double));
  int rc = in->u_default != NULL
               ? TW_OK
               : tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  size_t off = 0;
  for (size_t i = 0; rc == TW_OK && i < m->desc.ninputs; i++) {
    const tw_wasm_port *p = &m->desc.inputs[i];
    if (p->default_ != NULL)
      memcpy(in->u_default + off, p->default_, p->size * sizeof(double));
    off += p->size;
  }
  if (rc == TW_OK)
    rc = instantiate(in, false, err);
  if (rc == TW_OK)
    rc = alloc_buffers(in, err);
  if (rc != TW_OK) {
    tw_wasm_instance_free(in);
    return rc;
  }
  *out = in;
  return TW_OK;
}

void tw_wasm_instance_free(tw_wasm_instance *in) {
  if (in == NULL)
    return;
  teardown(in);
  tw_free(in->u_default);
  tw_free(in);
}

int tw_wasm_instance_reset(tw_wasm_instance *in, tw_err *err) {
  teardown(in);
  in->poisoned = false;
  memset(in->has_fn, 0, sizeof in->has_fn);
  int rc = instantiate(in, false, err);
  if (rc == TW_OK)
    rc = alloc_buffers(in, err);
  if (rc != TW_OK) {
    teardown(in); /* no handle into a half-made store survives */
    in->poisoned = true;
  }
  return rc;
}

const tw_wasm_module *tw_wasm_instance_module(const tw_wasm_instance *in) {
  return in->module;
}

void tw_wasm_instance_usage(const tw_wasm_instance *in, tw_wasm_usage *out) {
  *out = in->usage;
}

/* --- The ABI calls ----------------------------------------------------------
 */

/* Copies n values from src (or zeros / fallback when src is NULL) into
 * guest buffer b. */
static int put(tw_wasm_instance *in, unsigned b, const double *src,
               const double *fallback, size_t n, tw_err *err) {
  if (n == 0)
    return TW_OK;
  double *g = guest_array(in, in->buf[b], n);
  if (g == NULL)
    return tw_err_set(err, TW_EINTERNAL,
                      "model '%s': a guest buffer left linear memory",
                      model_name(in->module));
  if (src == NULL)
    src = fallback;
  if (src != NULL)
    memcpy(g, src, n * sizeof(double));
  else
    memset(g, 0, n * sizeof(double));
  return TW_OK;
}

static int get(tw_wasm_instance *in, unsigned b, double *dst, size_t n,
               bool add, tw_err *err) {
  if (n == 0 || dst == NULL)
    return TW_OK;
  const double *g = guest_array(in, in->buf[b], n);
  if (g == NULL)
    return tw_err_set(err, TW_EINTERNAL,
                      "model '%s': a guest buffer left linear memory",
                      model_name(in->module));
  if (add)
    for (size_t i = 0; i < n; i++)
      dst[i] += g[i];
  else
    memcpy(dst, g, n * sizeof(double));
  return TW_OK;
}

/* A trapped instance (or one whose reset failed) is not touched again:
 * its store may be gone. */
static int usable(const tw_wasm_instance *in, tw_err *err) {
  if (in->poisoned || in->store == NULL)
    return tw_err_set(err, TW_ESTATE,
                      "model '%s': the instance trapped earlier; reset it",
                      model_name(in->module));
  return TW_OK;
}

int tw_wasm_init(tw_wasm_instance *in, const double *theta, double *x0,
                 tw_err *err) {
  const tw_wasm_desc *d = &in->module->desc;
  int rc = usable(in, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_THETA, theta, NULL, d->ntheta, err);
  wasmtime_val_raw_t v[2];
  v[0].i32 = (int32_t)in->buf[TW__WB_THETA];
  v[1].i32 = (int32_t)in->buf[TW__WB_XN];
  if (rc == TW_OK)
    rc = call(in, TW__WX_INIT, v, 2, err);
  if (rc == TW_OK)
    rc = check_status(in, TW__WX_INIT, v[0].i32, err);
  if (rc == TW_OK)
    rc = get(in, TW__WB_XN, x0, d->nx, false, err);
  return rc;
}

/* Puts the point (x, u, theta) of a step or its VJP into the guest. */
static int put_point(tw_wasm_instance *in, const double *x, const double *u,
                     const double *theta, tw_err *err) {
  const tw_wasm_desc *d = &in->module->desc;
  int rc = usable(in, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_X, x, NULL, d->nx, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_U, u, in->u_default, d->nu, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_THETA, theta, NULL, d->ntheta, err);
  return rc;
}

/* Calls fn(t, dt, buffers...) and checks its status. */
static int call_abi(tw_wasm_instance *in, unsigned fn, double t, double dt,
                    const unsigned *bufs, size_t n, tw_err *err) {
  wasmtime_val_raw_t v[2 + TW__WB_COUNT];
  v[0].f64 = t;
  v[1].f64 = dt;
  for (size_t i = 0; i < n; i++)
    v[2 + i].i32 = (int32_t)in->buf[bufs[i]];
  int rc = call(in, fn, v, 2 + n, err);
  return rc == TW_OK ? check_status(in, fn, v[0].i32, err) : rc;
}

int tw_wasm_step(tw_wasm_instance *in, double t, double dt, const double *x,
                 const double *u, const double *theta, double *x_next,
                 double *y, tw_err *err) {
  static const unsigned bufs[] = {TW__WB_X, TW__WB_U, TW__WB_THETA, TW__WB_XN,
                                  TW__WB_Y};
  const tw_wasm_desc *d = &in->module->desc;
  int rc = put_point(in, x, u, theta, err);
  if (rc == TW_OK)
    rc = call_abi(in, TW__WX_STEP, t, dt, bufs, 5, err);
  if (rc == TW_OK)
    rc = get(in, TW__WB_XN, x_next, d->nx, false, err);
  if (rc == TW_OK)
    rc = get(in, TW__WB_Y, y, d->ny, false, err);
  return rc;
}

int tw_wasm_step_vjp(tw_wasm_instance *in, double t, double dt, const double *x,
                     const double *u, const double *theta,
                     const double *gx_next, const double *gy, double *gx,
                     double *gu, double *gtheta, tw_err *err) {
  static const unsigned bufs[] = {TW__WB_X,   TW__WB_U,     TW__WB_THETA,
                                  TW__WB_GXN, TW__WB_GY,    TW__WB_GX,
                                  TW__WB_GU,  TW__WB_GTHETA};
  const tw_wasm_module *m = in->module;
  const tw_wasm_desc *d = &m->desc;
  if (!d->differentiable || !in->has_fn[TW__WX_STEP_VJP])
    return tw_err_set(err, TW_ENOTSUP,
                      "model '%s' is not differentiable (no tw_step_vjp)",
                      model_name(m));
  int rc = put_point(in, x, u, theta, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_GXN, gx_next, NULL, d->nx, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_GY, gy, NULL, d->ny, err);
  if (rc == TW_OK) /* the guest adds into g_params: start from 0 */
    rc = put(in, TW__WB_GTHETA, NULL, NULL, d->ntheta, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_GX, NULL, NULL, d->nx, err);
  if (rc == TW_OK)
    rc = put(in, TW__WB_GU, NULL, NULL, d->nu, err);
  if (rc == TW_OK)
    rc = call_abi(in, TW__WX_STEP_VJP, t, dt, bufs, 8, err);
  if (rc == TW_OK)
    rc = get(in, TW__WB_GX, gx, d->nx, false, err);
  if (rc == TW_OK)
    rc = get(in, TW__WB_GU, gu, d->nu, false, err);
  if (rc == TW_OK)
    rc = get(in, TW__WB_GTHETA, gtheta, d->ntheta, true, err);
  return rc;
}
