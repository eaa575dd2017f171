/*
 * engine.c - the wasmtime engine with Twin's sandbox settings, its module
 * cache and the epoch ticker; the mapping of wasmtime errors and traps to
 * tw_err.
 *
 * Settings (ADR 0002): cranelift at speed optimisation; fuel and/or epoch
 * interruption compiled in; every instance's linear memory reserved at the
 * cap (memory_reservation = cap, may not move or grow past it, a 64 KiB
 * guard), so no 4 GiB reservation per instance and accesses are bounds
 * checked; wasm stack limited; pooling allocator with pool_size slots of
 * cap bytes each, so instantiation is a few microseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "twin/alloc.h"
#include "twin/log.h"
#include "wasm_int.h"

#define DEFAULT_MAX_MEMORY ((size_t)64 << 20)
#define DEFAULT_MAX_STACK ((size_t)512 << 10)
#define DEFAULT_MAX_MODULE ((size_t)32 << 20)
#define DEFAULT_POOL 64
#define DEFAULT_TICK_US 1000
#define GUARD_BYTES ((uint64_t)64 << 10)
#define WASM_PAGE ((size_t)64 << 10)

static void *ticker_main(void *arg) {
  tw_wasm_engine *e = arg;
  /* Ticks on an absolute schedule, so late wake-ups do not add up; after a
   * long stall (a suspended process) it catches up one tick at a time. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t next = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  pthread_mutex_lock(&e->lock);
  while (!e->stopping) {
    next += (uint64_t)e->opts.epoch_tick_us * 1000;
    ts.tv_sec = (time_t)(next / 1000000000u);
    ts.tv_nsec = (long)(next % 1000000000u);
    int rc = pthread_cond_timedwait(&e->stop_cond, &e->lock, &ts);
    if (rc == ETIMEDOUT)
      wasmtime_engine_increment_epoch(e->engine);
  }
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

static int check_opts(tw_wasm_engine_opts *o, tw_err *err) {
  if (o->meters == 0)
    o->meters = TW_WASM_FUEL | TW_WASM_EPOCH;
  if (o->meters == TW_WASM_UNMETERED)
    o->meters = 0;
  else if ((o->meters & ~(unsigned)(TW_WASM_FUEL | TW_WASM_EPOCH)) != 0)
    return tw_err_set(err, TW_EINVAL,
                      "wasm: meter flags 0x%x are not FUEL|EPOCH or UNMETERED",
                      o->meters);
  if (o->max_memory == 0)
    o->max_memory = DEFAULT_MAX_MEMORY;
  if (o->max_stack == 0)
    o->max_stack = DEFAULT_MAX_STACK;
  if (o->max_module_size == 0)
    o->max_module_size = DEFAULT_MAX_MODULE;
  if (o->pool_size == 0)
    o->pool_size = DEFAULT_POOL;
  if (o->max_function_size == 0)
    o->max_function_size = (size_t)256 << 10;
  if (o->max_functions == 0)
    o->max_functions = 100000;
  if (o->epoch_tick_us == 0)
    o->epoch_tick_us = DEFAULT_TICK_US;
  if (o->max_memory < WASM_PAGE || o->max_memory > ((size_t)4 << 30))
    return tw_err_set(err, TW_ERANGE,
                      "wasm: max_memory %zu is outside 64 KiB..4 GiB",
                      o->max_memory);
  if (o->max_stack < ((size_t)16 << 10) || o->max_stack > ((size_t)64 << 20))
    return tw_err_set(err, TW_ERANGE,
                      "wasm: max_stack %zu is outside 16 KiB..64 MiB",
                      o->max_stack);
  if (o->pool_size > 100000)
    return tw_err_set(err, TW_ERANGE, "wasm: pool_size %" PRIu32 " > 100000",
                      o->pool_size);
  o->max_memory = (o->max_memory + WASM_PAGE - 1) / WASM_PAGE * WASM_PAGE;
  return TW_OK;
}

int tw_wasm_engine_new(tw_ctx *ctx, const tw_wasm_engine_opts *opts,
                       tw_wasm_engine **out, tw_err *err) {
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  if (opts != NULL)
    o = *opts;
  int rc = check_opts(&o, err);
  if (rc != TW_OK)
    return rc;
  tw_wasm_engine *e = tw_calloc(1, sizeof *e);
  if (e == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  e->ctx = ctx;
  e->opts = o;
  wasm_config_t *cfg = wasm_config_new();
  wasmtime_pooling_allocation_config_t *pool =
      wasmtime_pooling_allocation_config_new();
  if (cfg == NULL || pool == NULL) {
    if (cfg != NULL)
      wasm_config_delete(cfg);
    if (pool != NULL)
      wasmtime_pooling_allocation_config_delete(pool);
    tw_free(e);
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  }
  wasmtime_config_strategy_set(cfg, WASMTIME_STRATEGY_CRANELIFT);
  wasmtime_config_cranelift_opt_level_set(cfg, WASMTIME_OPT_LEVEL_SPEED);
  wasmtime_config_consume_fuel_set(cfg, (o.meters & TW_WASM_FUEL) != 0);
  wasmtime_config_epoch_interruption_set(cfg, (o.meters & TW_WASM_EPOCH) != 0);
  wasmtime_config_max_wasm_stack_set(cfg, o.max_stack);
  wasmtime_config_memory_reservation_set(cfg, o.max_memory);
  wasmtime_config_memory_reservation_for_growth_set(cfg, 0);
  wasmtime_config_memory_guard_size_set(cfg, GUARD_BYTES);
  wasmtime_config_memory_may_move_set(cfg, false);
  wasmtime_pooling_allocation_config_total_core_instances_set(pool,
                                                              o.pool_size);
  wasmtime_pooling_allocation_config_total_memories_set(pool, o.pool_size);
  wasmtime_pooling_allocation_config_total_tables_set(pool, o.pool_size);
  wasmtime_pooling_allocation_config_max_memory_size_set(pool, o.max_memory);
  wasmtime_pooling_allocation_config_max_memories_per_module_set(pool, 1);
  wasmtime_pooling_allocation_config_max_tables_per_module_set(pool, 1);
  wasmtime_pooling_allocation_config_table_elements_set(pool,
                                                        TW__WASM_MAX_TABLE);
  wasmtime_pooling_allocation_config_max_unused_warm_slots_set(
      pool, o.pool_size < 16 ? o.pool_size : 16);
  wasmtime_pooling_allocation_strategy_set(cfg, pool);
  wasmtime_pooling_allocation_config_delete(pool);
  e->engine = wasm_engine_new_with_config(cfg); /* takes cfg */
  if (e->engine == NULL) {
    tw_free(e);
    return tw_err_set(err, TW_EINTERNAL,
                      "wasm: wasmtime rejected the engine configuration");
  }
  pthread_mutex_init(&e->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->stop_cond, &ca);
  pthread_condattr_destroy(&ca);
  if ((o.meters & TW_WASM_EPOCH) != 0) {
    int prc = pthread_create(&e->ticker, NULL, ticker_main, e);
    if (prc != 0) {
      tw_wasm_engine_free(e);
      return tw_err_set(err, TW_ENOMEM,
                        "wasm: cannot start the epoch ticker thread: %s",
                        strerror(prc));
    }
    e->ticker_running = true;
  }
  *out = e;
  return TW_OK;
}

void tw_wasm_engine_free(tw_wasm_engine *e) {
  if (e == NULL)
    return;
  if (e->ticker_running) {
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_signal(&e->stop_cond);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->ticker, NULL);
  }
  tw__wasm_code *c = e->cache;
  while (c != NULL) {
    tw__wasm_code *next = c->next;
    tw__wasm_free_code(c);
    c = next;
  }
  wasm_engine_delete(e->engine);
  pthread_cond_destroy(&e->stop_cond);
  pthread_mutex_destroy(&e->lock);
  tw_free(e);
}

/* --- Errors and traps ------------------------------------------------ */

static const char *trap_text(wasmtime_trap_code_t code, int *tw_code) {
  *tw_code = TW_ETRAP;
  switch (code) {
  case WASMTIME_TRAP_CODE_STACK_OVERFLOW:
    return "stack overflow";
  case WASMTIME_TRAP_CODE_MEMORY_OUT_OF_BOUNDS:
    return "out-of-bounds memory access";
  case WASMTIME_TRAP_CODE_HEAP_MISALIGNED:
    return "misaligned memory access";
  case WASMTIME_TRAP_CODE_TABLE_OUT_OF_BOUNDS:
    return "out-of-bounds table access";
  case WASMTIME_TRAP_CODE_INDIRECT_CALL_TO_NULL:
    return "indirect call to null";
  case WASMTIME_TRAP_CODE_BAD_SIGNATURE:
    return "indirect call signature mismatch";
  case WASMTIME_TRAP_CODE_INTEGER_OVERFLOW:
    return "integer overflow";
  case WASMTIME_TRAP_CODE_INTEGER_DIVISION_BY_ZERO:
    return "integer division by zero";
  case WASMTIME_TRAP_CODE_BAD_CONVERSION_TO_INTEGER:
    return "invalid conversion to integer";
  case WASMTIME_TRAP_CODE_UNREACHABLE_CODE_REACHED:
    return "unreachable";
  case WASMTIME_TRAP_CODE_INTERRUPT:
    *tw_code = TW_ETIMEDOUT;
    return "deadline exceeded";
  case WASMTIME_TRAP_CODE_OUT_OF_FUEL:
    *tw_code = TW_ELIMIT;
    return "out of fuel";
  case WASMTIME_TRAP_CODE_ALLOCATION_TOO_LARGE:
    *tw_code = TW_ELIMIT;
    return "memory limit";
  default:
    return "trap";
  }
}

/* The most telling line of a wasmtime message, at most cap - 1 bytes: the
 * first line after "Caused by:" when there is one (wasmtime puts the
 * cause of a host-side failure there, after a backtrace), else the first
 * line. Control bytes are replaced. */
static void main_line(const wasm_name_t *msg, char *out, size_t cap) {
  const char *s = msg->data, *end = s + msg->size;
  static const char caused[] = "Caused by:";
  for (const char *p = s; p + sizeof caused - 1 <= end; p++)
    if (memcmp(p, caused, sizeof caused - 1) == 0) {
      s = p + sizeof caused - 1;
      while (s < end && (*s == '\n' || *s == ' ' || *s == '\r'))
        s++;
      if (s + 3 <= end && s[0] >= '0' && s[0] <= '9' && s[1] == ':')
        s += 2; /* "0: cause" */
      while (s < end && *s == ' ')
        s++;
      break;
    }
  size_t n = 0;
  while (s + n < end && s[n] != '\n' && n + 1 < cap)
    n++;
  for (size_t i = 0; i < n; i++)
    out[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
  out[n] = '\0';
}

int tw__wasm_fail(const char *name, const char *what, wasmtime_error_t *e,
                  wasm_trap_t *trap, unsigned flags, tw_err *err) {
  char detail[512] = "";
  int code = TW_ETRAP;
  const char *kind = NULL;
  wasmtime_trap_code_t tc;
  wasm_name_t msg = {0, NULL};
  int exit_status = 0;
  bool exited = false;
  if (trap != NULL) {
    kind = "trap";
    if (wasmtime_trap_code(trap, &tc))
      kind = trap_text(tc, &code);
    wasm_trap_message(trap, &msg);
    wasm_trap_delete(trap);
  } else if (e != NULL) {
    exited = wasmtime_error_exit_status(e, &exit_status);
    wasmtime_error_message(e, &msg);
    wasmtime_error_delete(e);
    code = (flags & TW__FAIL_CALL) != 0      ? TW_ETRAP
           : (flags & TW__FAIL_COMPILE) != 0 ? TW_EPARSE
                                             : TW_EVALIDATE;
  }
  bool pooling = false;
  for (size_t i = 0; msg.data != NULL && i + 17 <= msg.size; i++)
    if (memcmp(msg.data + i, "pooling allocator", 17) == 0)
      pooling = true;
  if (msg.data != NULL) {
    main_line(&msg, detail, sizeof detail);
    wasm_byte_vec_delete(&msg);
  }
  if (exited)
    return tw_err_set(err, TW_ETRAP,
                      "model '%s': %s: the model exited "
                      "(WASI proc_exit(%d))",
                      name, what, exit_status);
  if (kind == NULL) {
    if ((flags & TW__FAIL_COMPILE) != 0 && !pooling)
      return tw_err_set(err, TW_EPARSE, "invalid WebAssembly module: %s",
                        detail);
    if (pooling ||
        (strstr(detail, "memory") != NULL &&
         (strstr(detail, "limit") != NULL || strstr(detail, "exceed") != NULL ||
          strstr(detail, "minimum") != NULL)))
      return tw_err_set(
          err, TW_ELIMIT, "model '%s': %s: %s (%s)", name, what,
          strstr(detail, "memor") != NULL ? "memory limit" : "limit", detail);
    if (strstr(detail, "concurrent") != NULL)
      return tw_err_set(err, TW_ELIMIT,
                        "model '%s': %s: instance pool exhausted (%s)", name,
                        what, detail);
    return tw_err_set(err, code, "model '%s': %s: %s", name, what, detail);
  }
  if ((flags & TW__FAIL_MEM_FULL) != 0 && code == TW_ETRAP)
    return tw_err_set(err, TW_ELIMIT,
                      "model '%s': %s: memory limit (linear memory at its "
                      "cap, then: %s)",
                      name, what, kind);
  return tw_err_set(err, code, "model '%s': %s: %s", name, what, kind);
}

void tw__wasm_functype_str(const wasm_functype_t *ft, char *out, size_t cap) {
  static const char *const names[] = {"i32", "i64", "f32", "f64"};
  const wasm_valtype_vec_t *p = wasm_functype_params(ft);
  const wasm_valtype_vec_t *r = wasm_functype_results(ft);
  size_t len = 0;
  const wasm_valtype_vec_t *v[2] = {p, r};
  for (int k = 0; k < 2; k++) {
    if (len < cap)
      len += (size_t)snprintf(out + len, cap - len, k == 0 ? "(" : " -> ");
    if (k == 1 && v[1]->size != 1 && len < cap)
      len += (size_t)snprintf(out + len, cap - len, "(");
    for (size_t i = 0; i < v[k]->size; i++) {
      wasm_valkind_t kd = wasm_valtype_kind(v[k]->data[i]);
      const char *nm = kd <= WASM_F64 ? names[kd] : "ref";
      if (len < cap)
        len +=
            (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", nm);
    }
    if ((k == 0 || v[1]->size != 1) && len < cap)
      len += (size_t)snprintf(out + len, cap - len, ")");
  }
}
