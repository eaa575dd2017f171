/*
 * test_hostile.c - the sandbox against hostile models: endless loops,
 * memory growth and recursion; traps; imports the host refuses; guest
 * pointers outside linear memory or misaligned; descriptors that lie;
 * broken exports; huge, truncated and random modules. The modules are in
 * wat/hostile/, one per case, each opening with what it does and the error
 * it must produce.
 *
 * Every case asserts the error code, the words of the message a user
 * needs, that the call returned within its limit plus a generous slack
 * (upper bounds only: a loaded machine is slow, never fast), and that the
 * same engine then still loads and steps the good model (leaky.wat)
 * exactly. Also: a trapped instance stays poisoned until reset; hostile
 * instantiations in a row do not exhaust the instance pool; hostile and
 * good models on two threads of one engine.
 *
 * Where the runtime still answers a case differently from what it should,
 * the case lists that answer as "today": accepted with a note on the test
 * output, so the case still guards against crashes, hangs and leaks.
 */
#include "tw_test.h"
#include "wasm_test.h"
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAT_DIR TW_TEST_SOURCE_DIR "/tests/unit/wasm/wat/"
#define CAP ((size_t)4 << 20)        /* the engines' memory cap */
#define MAX_MODULE ((size_t)2 << 20) /* the engines' module size cap */
#define POOL 8
#define TIMEOUT_MS 200
#define FUEL 1000000
/* Upper bound for a call under TIMEOUT_MS or FUEL on a loaded machine. */
#define SLACK_MS 5000.0
/* A module load runs a probe under 10 s of deadline (and fixed fuel). */
#define PROBE_BOUND_MS (10000.0 + SLACK_MS)

/* --- Helpers ----------------------------------------------------------- */

static double ms_since(uint64_t t0) {
  return (double)(tw_clock_mono_ns() - t0) / 1e6;
}

/* WAT text (from a file under wat/, or given) to module bytes. */
static wasm_byte_vec_t wat_text(const char *text, size_t len) {
  return wt_wat_text(text, len);
}

static void read_text(const char *name, tw_buf *text) {
  char path[512];
  (void)snprintf(path, sizeof path, "%s%s", WAT_DIR, name);
  tw_err err;
  tw_err_init(&err);
  int rc = tw_file_read_all(path, 0, text, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
}

static wasm_byte_vec_t wat(const char *name) { return wt_wat(name); }

/* wasmtime turns SIGSEGV, SIGILL, SIGFPE and SIGBUS raised by guest code
 * into traps, with process-wide handlers installed by the first engine.
 * cmocka puts its own handlers, which do not chain, around every test and
 * afterwards restores the previous ones with signal(), dropping
 * SA_SIGINFO. So main saves wasmtime's handlers once and every test puts
 * them back before it runs guest code (engine_with does). */
static const int trap_signals[] = {SIGSEGV, SIGILL, SIGFPE, SIGBUS};
#define NSIG_TRAP (sizeof trap_signals / sizeof trap_signals[0])
static struct sigaction wasmtime_handlers[NSIG_TRAP];

static void save_wasmtime_handlers(void) {
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  o.max_memory = (size_t)64 << 10;
  o.pool_size = 1;
  tw_wasm_engine *e = NULL;
  tw_err err;
  tw_err_init(&err);
  if (tw_wasm_engine_new(NULL, &o, &e, &err) != TW_OK) {
    (void)fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  tw_wasm_engine_free(e);
  for (size_t i = 0; i < NSIG_TRAP; i++)
    sigaction(trap_signals[i], NULL, &wasmtime_handlers[i]);
}

static void restore_wasmtime_handlers(void) {
  for (size_t i = 0; i < NSIG_TRAP; i++)
    sigaction(trap_signals[i], &wasmtime_handlers[i], NULL);
}

static tw_wasm_engine *engine_with(size_t max_memory) {
  restore_wasmtime_handlers();
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  o.max_memory = max_memory;
  o.max_stack = (size_t)128 << 10;
  o.max_module_size = MAX_MODULE;
  o.pool_size = POOL;
  return wt_engine(&o);
}

static tw_wasm_engine *engine(void) { return engine_with(CAP); }

/* An error a case must produce: its code and up to two pieces of its
 * message (NULL: any). */
typedef struct outcome {
  int code;
  const char *sub0, *sub1;
} outcome;

static bool matches(int rc, const tw_err *err, const outcome *w) {
  return rc == w->code && err->code == w->code &&
         (w->sub0 == NULL || strstr(err->msg, w->sub0) != NULL) &&
         (w->sub1 == NULL || strstr(err->msg, w->sub1) != NULL);
}

#define NONE                                                                   \
  { 0, NULL, NULL }

static bool quiet_notes; /* no note (a case checked a second time) */

/* Asserts rc and err match w or, when today is given (today->code != 0),
 * today: the different answer the runtime still gives for that case,
 * accepted with a note so that the case keeps guarding against crashes,
 * hangs and leaks until the answer is w. */
static void expect_case_at(const char *file, int line, const char *name, int rc,
                           const tw_err *err, const outcome *w,
                           const outcome *today) {
  if (matches(rc, err, w))
    return;
  if (today != NULL && today->code != 0 && matches(rc, err, today)) {
    if (!quiet_notes)
      print_message("note: %s: still %s '%s', should be %s with '%s'\n", name,
                    tw_err_name(rc), err->msg, tw_err_name(w->code),
                    w->sub0 ? w->sub0 : "");
    return;
  }
  print_error("%s:%d: %s: got %s '%s', want %s with '%s' and '%s'\n", file,
              line, name, tw_err_name(rc), err->msg, tw_err_name(w->code),
              w->sub0 ? w->sub0 : "", w->sub1 ? w->sub1 : "");
  fail();
}

#define EXPECT_ERR(rc, err, code, sub0, sub1)                                  \
  do {                                                                         \
    const outcome w__ = {(code), (sub0), (sub1)};                              \
    expect_case_at(__FILE__, __LINE__, "", (rc), (err), &w__, NULL);           \
  } while (0)

static void expect_ok_at(const char *file, int line, int rc,
                         const tw_err *err) {
  if (rc != TW_OK) {
    print_error("%s:%d: %s: %s\n", file, line, tw_err_name(rc), err->msg);
    fail();
  }
}
#define EXPECT_OK(rc, err) expect_ok_at(__FILE__, __LINE__, (rc), (err))

static void expect_within_at(const char *file, int line, double ms,
                             double bound) {
  if (!(ms < bound)) {
    print_error("%s:%d: took %.1f ms, bound %.0f ms\n", file, line, ms, bound);
    fail();
  }
}
#define EXPECT_WITHIN(ms, bound)                                               \
  expect_within_at(__FILE__, __LINE__, (ms), (bound))

static wasm_byte_vec_t leaky_bytes;

/* One step of leaky from x0 = 0.25 with k = 2 and the default u = 0.5. */
static int step_leaky(tw_wasm_module *m, double *x1, double *y0, tw_err *err) {
  tw_wasm_limits lim = {FUEL, TIMEOUT_MS * 5, 0};
  tw_wasm_instance *in = NULL;
  double th[1] = {2}, x0[1] = {0};
  int rc = tw_wasm_instance_new(m, &lim, &in, err);
  if (rc == TW_OK)
    rc = tw_wasm_init(in, th, x0, err);
  if (rc == TW_OK)
    rc = tw_wasm_step(in, 0, 0.01, x0, NULL, th, x1, y0, err);
  tw_wasm_instance_free(in);
  return rc;
}

/* The engine still loads and steps the good model, exactly. */
static void check_good_at(const char *file, int line, tw_wasm_engine *e) {
  tw_err err;
  tw_err_init(&err);
  tw_wasm_module *m = NULL;
  int rc = tw_wasm_module_load(e, leaky_bytes.data, leaky_bytes.size, NULL, &m,
                               &err);
  double x1 = 0, y0 = 0;
  if (rc == TW_OK)
    rc = step_leaky(m, &x1, &y0, &err);
  tw_wasm_module_free(m);
  expect_ok_at(file, line, rc, &err);
  if (x1 != 0.25 + 0.01 * (2 * 0.5 - 0.25) || y0 != 0.25) {
    print_error("%s:%d: leaky stepped to x1 %.17g y %.17g\n", file, line, x1,
                y0);
    fail();
  }
  assert_true(fabs(x1 - 0.2575) < 1e-15);
}
#define CHECK_GOOD(e) check_good_at(__FILE__, __LINE__, (e))

static int load_bytes(tw_wasm_engine *e, const wasm_byte_vec_t *w, bool wasi,
                      tw_wasm_module **m, tw_err *err) {
  tw_wasm_module_opts o = {wasi, NULL};
  return tw_wasm_module_load(e, w->data, w->size, &o, m, err);
}

static tw_wasm_module *load_ok(tw_wasm_engine *e, const char *name, bool wasi) {
  wasm_byte_vec_t w = wat(name);
  tw_wasm_module *m = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = load_bytes(e, &w, wasi, &m, &err);
  wasm_byte_vec_delete(&w);
  EXPECT_OK(rc, &err);
  return m;
}

/* An instance of m under the suite's fuel and deadline, or the test
 * fails. */
static tw_wasm_instance *instance_ok(tw_wasm_module *m) {
  tw_wasm_limits lim = {FUEL, TIMEOUT_MS, 0};
  tw_wasm_instance *in = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_wasm_instance_new(m, &lim, &in, &err);
  EXPECT_OK(rc, &err);
  return in;
}

/* --- Modules the loader refuses ---------------------------------------- */

typedef struct load_case {
  const char *wat;
  outcome want, today;
} load_case;

static const load_case load_cases[] = {
    /* Limits met while reading the descriptor. */
    {"hostile/loop_start.wat",
     {TW_ELIMIT, "out of fuel", "instantiation"},
     NONE},
    {"hostile/recurse_start.wat",
     {TW_ETRAP, "stack overflow", "instantiation"},
     NONE},
    {"hostile/loop_initialize.wat",
     {TW_ELIMIT, "_initialize", "out of fuel"},
     NONE},
    /* Refused by the scan of the bytes, before compiling. */
    {"hostile/memory_initial_big.wat",
     {TW_ELIMIT, "memory limit",
      "initial memory is 8388608 bytes, the cap is 4194304"},
     NONE},
    {"hostile/table_huge.wat", {TW_ELIMIT, "table", "65536"}, NONE},
    {"hostile/two_memories.wat", {TW_ELIMIT, "memor", "limit of 1"}, NONE},
    /* tw_alloc fails because the growth would pass the cap. */
    {"hostile/desc_huge_state.wat",
     {TW_ELIMIT, "tw_alloc(8000000)", "memory limit"},
     NONE},
    /* Imports. */
    {"hostile/import_unknown.wat",
     {TW_EVALIDATE, "import 'env.foo'", "not allowed"},
     NONE},
    {"hostile/import_host_other.wat",
     {TW_EVALIDATE, "import 'tw_host.exit'", "not provided"},
     NONE},
    {"hostile/import_wasi.wat",
     {TW_EVALIDATE, "import 'wasi_snapshot_preview1.fd_write'", "not granted"},
     NONE},
    /* Guest pointers. */
    {"hostile/alloc_oob.wat",
     {TW_EVALIDATE, "tw_alloc(8) returned 2147483640", "outside linear memory"},
     NONE},
    {"hostile/alloc_edge.wat",
     {TW_EVALIDATE, "tw_alloc(16) returned 65528", "outside linear memory"},
     NONE},
    {"hostile/alloc_misaligned.wat",
     {TW_EVALIDATE, "returned 4097", "not 8-byte aligned"},
     NONE},
    {"hostile/alloc_null.wat", {TW_ETRAP, "tw_alloc(8) failed", NULL}, NONE},
    {"hostile/describe_oob.wat",
     {TW_EVALIDATE, "ptr 4294967040, len 64", "outside linear memory"},
     NONE},
    {"hostile/describe_straddle.wat",
     {TW_EVALIDATE, "ptr 65000, len 1000", "outside linear memory"},
     NONE},
    {"hostile/describe_empty.wat",
     {TW_EVALIDATE, "len 0), an empty descriptor", NULL},
     NONE},
    {"hostile/describe_huge_len.wat",
     {TW_EVALIDATE, "len 2147483647", "longer than 1 MiB"},
     NONE},
    /* Descriptors and ABI. */
    {"hostile/desc_bad_json.wat",
     {TW_EPARSE, "descriptor:1:54:", "end of input"},
     NONE},
    {"hostile/desc_abi2.wat",
     {TW_EVALIDATE, "descriptor: abi is 2", "this host speaks 1"},
     NONE},
    {"hostile/desc_dtype.wat",
     {TW_EINVAL, "descriptor: state[0].dtype 'f16'",
      "is not f64, f32, i64, i32 or bool"},
     NONE},
    {"hostile/desc_param_dtype.wat", {TW_EINVAL, "params[0]", "dtype"}, NONE},
    {"hostile/abi_v2.wat",
     {TW_EVALIDATE, "model speaks ABI version 2", "this host speaks 1"},
     NONE},
    {"hostile/diff_no_vjp.wat",
     {TW_EVALIDATE, "says differentiable", "does not export tw_step_vjp"},
     NONE},
    /* Exports and memories. */
    {"hostile/missing_export.wat",
     {TW_EVALIDATE, "missing export 'tw_step'", "required by model ABI v1"},
     NONE},
    {"hostile/missing_memory.wat",
     {TW_EVALIDATE, "missing export 'memory'", NULL},
     NONE},
    {"hostile/wrong_sig.wat",
     {TW_EVALIDATE,
      "export 'tw_step' is func (f64, f64, i32, i32, i32, i32) -> i32",
      "needs func (f64, f64, i32, i32, i32, i32, i32) -> i32"},
     NONE},
    {"hostile/initialize_sig.wat",
     {TW_EVALIDATE, "export '_initialize' is func (i32) -> ()",
      "needs func () -> ()"},
     NONE},
    {"hostile/memory64.wat",
     {TW_EVALIDATE, "export 'memory'", "32-bit, unshared"},
     NONE},
};

static void refused_modules(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  for (size_t i = 0; i < sizeof load_cases / sizeof load_cases[0]; i++) {
    const load_case *c = &load_cases[i];
    wasm_byte_vec_t w = wat(c->wat);
    tw_wasm_module *m = NULL;
    tw_err err;
    tw_err_init(&err);
    uint64_t t0 = tw_clock_mono_ns();
    int rc = load_bytes(e, &w, false, &m, &err);
    double ms = ms_since(t0);
    print_message("%-32s %7.1f ms  %s: %s\n", c->wat, ms, tw_err_name(rc),
                  err.msg);
    expect_case_at(__FILE__, __LINE__, c->wat, rc, &err, &c->want, &c->today);
    assert_null(m);
    EXPECT_WITHIN(ms, PROBE_BOUND_MS);
    /* The same bytes again: same answer (the compiled code is cached). */
    tw_err_init(&err);
    rc = load_bytes(e, &w, false, &m, &err);
    quiet_notes = true;
    expect_case_at(__FILE__, __LINE__, c->wat, rc, &err, &c->want, &c->today);
    quiet_notes = false;
    wasm_byte_vec_delete(&w);
    CHECK_GOOD(e);
  }
  tw_wasm_engine_free(e);
}

/* WASI is linked only when granted. */
static void wasi_granted(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_wasm_module *m = load_ok(e, "hostile/import_wasi.wat", true);
  tw_wasm_instance *in = NULL;
  tw_err err;
  tw_err_init(&err);
  tw_wasm_limits lim = {FUEL, TIMEOUT_MS, 0};
  double x[1] = {1}, xn[1] = {0}, y[1] = {0};
  int rc = tw_wasm_instance_new(m, &lim, &in, &err);
  for (int k = 0; rc == TW_OK && k < 3; k++)
    rc = tw_wasm_step(in, k, 0.5, x, NULL, NULL, xn, y, &err);
  EXPECT_OK(rc, &err);
  assert_true(xn[0] == 1.5 && y[0] == 1);
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

/* --- Models that fail when called -------------------------------------- */

enum { AT_INIT, AT_STEP, AT_VJP };

enum {
  POISONS = 1u << 0, /* the instance answers TW_ESTATE afterwards */
  WASI = 1u << 1,    /* load with allow_wasi */
};

typedef struct call_case {
  const char *wat;
  uint64_t fuel;
  uint32_t timeout_ms;
  int at; /* the call that fails; the calls before it succeed */
  outcome want, today;
  unsigned flags;
} call_case;

static const call_case call_cases[] = {
    {"hostile/loop_step.wat",
     FUEL,
     0,
     AT_STEP,
     {TW_ELIMIT, "tw_step", "out of fuel"},
     NONE,
     POISONS},
    {"hostile/loop_step.wat",
     0,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETIMEDOUT, "tw_step", "deadline exceeded"},
     NONE,
     POISONS},
    /* Both meters: the first to run out names the failure. */
    {"hostile/loop_step.wat",
     (uint64_t)1 << 62,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETIMEDOUT, "tw_step", "deadline exceeded"},
     NONE,
     POISONS},
    {"hostile/loop_init.wat",
     0,
     TIMEOUT_MS,
     AT_INIT,
     {TW_ETIMEDOUT, "tw_init", "deadline exceeded"},
     NONE,
     POISONS},
    {"hostile/loop_init.wat",
     FUEL,
     0,
     AT_INIT,
     {TW_ELIMIT, "tw_init", "out of fuel"},
     NONE,
     POISONS},
    {"hostile/loop_vjp.wat",
     FUEL,
     0,
     AT_VJP,
     {TW_ELIMIT, "tw_step_vjp", "out of fuel"},
     NONE,
     POISONS},
    {"hostile/loop_vjp.wat",
     0,
     TIMEOUT_MS,
     AT_VJP,
     {TW_ETIMEDOUT, "tw_step_vjp", "deadline exceeded"},
     NONE,
     POISONS},
    {"hostile/grow_trap.wat",
     FUEL,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ELIMIT, "tw_step", "memory limit"},
     NONE,
     POISONS},
    {"hostile/grow_loop.wat",
     FUEL,
     0,
     AT_STEP,
     {TW_ELIMIT, "tw_step", "out of fuel"},
     NONE,
     POISONS},
    {"hostile/grow_loop.wat",
     0,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETIMEDOUT, "tw_step", "deadline exceeded"},
     NONE,
     POISONS},
    {"hostile/recurse.wat",
     FUEL,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETRAP, "tw_step", "stack overflow"},
     NONE,
     POISONS},
    {"hostile/div_zero.wat",
     FUEL,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETRAP, "tw_step", "integer division by zero"},
     NONE,
     POISONS},
    {"hostile/step_nonzero.wat",
     FUEL,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETRAP, "tw_step returned error code 3", NULL},
     NONE,
     0},
    /* A trap raised by a host function, and WASI's proc_exit, come back
     * from the call as a wasmtime error: reported with their cause. */
    {"hostile/log_oob.wat",
     FUEL,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETRAP, "tw_step", "tw_host.log: message outside linear memory"},
     NONE,
     POISONS},
    {"hostile/wasi_exit.wat",
     FUEL,
     TIMEOUT_MS,
     AT_STEP,
     {TW_ETRAP, "tw_step", "proc_exit(3)"},
     NONE,
     POISONS | WASI},
};

static void failing_calls(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  for (size_t i = 0; i < sizeof call_cases / sizeof call_cases[0]; i++) {
    const call_case *c = &call_cases[i];
    tw_wasm_module *m = load_ok(e, c->wat, (c->flags & WASI) != 0);
    tw_wasm_limits lim = {c->fuel, c->timeout_ms, 0};
    tw_wasm_instance *in = NULL;
    tw_err err;
    tw_err_init(&err);
    double x[1] = {0.25}, xn[1] = {0}, y[1] = {0}, g[1] = {1}, gx[1] = {0};
    int rc = tw_wasm_instance_new(m, &lim, &in, &err);
    EXPECT_OK(rc, &err);
    uint64_t t0 = tw_clock_mono_ns();
    rc = tw_wasm_init(in, NULL, x, &err);
    if (c->at > AT_INIT) {
      EXPECT_OK(rc, &err);
      t0 = tw_clock_mono_ns();
      rc = tw_wasm_step(in, 0, 0.01, x, NULL, NULL, xn, y, &err);
    }
    if (c->at > AT_STEP) {
      EXPECT_OK(rc, &err);
      t0 = tw_clock_mono_ns();
      rc = tw_wasm_step_vjp(in, 0, 0.01, x, NULL, NULL, g, NULL, gx, NULL, NULL,
                            &err);
    }
    double ms = ms_since(t0);
    print_message("%-32s %7.1f ms  %s: %s\n", c->wat, ms, tw_err_name(rc),
                  err.msg);
    expect_case_at(__FILE__, __LINE__, c->wat, rc, &err, &c->want, &c->today);
    EXPECT_WITHIN(ms, SLACK_MS);
    /* Memory never went past the cap; the fuel was all used; a trap
     * poisons the instance, a status code does not. */
    tw_wasm_usage us;
    tw_wasm_instance_usage(in, &us);
    assert_true(us.peak_memory <= CAP);
    if (strcmp(c->want.sub1 ? c->want.sub1 : "", "out of fuel") == 0)
      assert_true(us.fuel_used >= c->fuel);
    tw_err_init(&err);
    rc = tw_wasm_step(in, 0, 0.01, x, NULL, NULL, xn, y, &err);
    if (c->flags & POISONS)
      EXPECT_ERR(rc, &err, TW_ESTATE, "trapped earlier", "reset");
    else
      expect_case_at(__FILE__, __LINE__, c->wat, rc, &err, &c->want, &c->today);
    tw_wasm_instance_free(in);
    tw_wasm_module_free(m);
    CHECK_GOOD(e);
  }
  tw_wasm_engine_free(e);
}

/* A WASI call that would block in the host (poll_oneoff sleeping 1 s)
 * under a 200 ms deadline. The epoch deadline is checked in guest code
 * only, so granted modules get a poll_oneoff that returns ENOTSUP at once:
 * the guest goes on and the call ends well inside its deadline. */
static void wasi_blocking_call(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_wasm_module *m = load_ok(e, "hostile/wasi_sleep.wat", true);
  tw_wasm_instance *in = instance_ok(m);
  tw_err err;
  tw_err_init(&err);
  double x[1] = {0.25}, xn[1] = {0};
  uint64_t t0 = tw_clock_mono_ns();
  int rc = tw_wasm_step(in, 1.0, 0.5, x, NULL, NULL, xn, NULL, &err);
  double ms = ms_since(t0);
  print_message("hostile/wasi_sleep.wat (1 s)     %7.1f ms  %s: %s\n", ms,
                tw_err_name(rc), err.msg);
  EXPECT_OK(rc, &err);
  assert_true(xn[0] == 0.75);
  EXPECT_WITHIN(ms, (double)TIMEOUT_MS + SLACK_MS);
  assert_true(ms < 1000.0); /* it did not sleep */
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

/* grow_trap under an instance cap below the engine's. */
static void instance_memory_cap(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_wasm_module *m = load_ok(e, "hostile/grow_trap.wat", false);
  tw_wasm_limits lim = {FUEL, TIMEOUT_MS, (size_t)1 << 20};
  tw_wasm_instance *in = NULL;
  tw_err err;
  tw_err_init(&err);
  double x[1] = {0}, xn[1] = {0};
  int rc = tw_wasm_instance_new(m, &lim, &in, &err);
  EXPECT_OK(rc, &err);
  rc = tw_wasm_step(in, 0, 0.01, x, NULL, NULL, xn, NULL, &err);
  EXPECT_ERR(rc, &err, TW_ELIMIT, "memory limit", NULL);
  tw_wasm_usage us;
  tw_wasm_instance_usage(in, &us);
  assert_true(us.peak_memory <= lim.max_memory);
  assert_true(us.peak_memory + 65536 > lim.max_memory);
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);

  /* A module whose initial memory fits the engine's cap but not the
   * instance's. */
  tw_wasm_engine *big = engine_with((size_t)16 << 20);
  m = load_ok(big, "hostile/memory_initial_big.wat", false);
  lim.max_memory = (size_t)4 << 20;
  tw_err_init(&err);
  rc = tw_wasm_instance_new(m, &lim, &in, &err);
  EXPECT_ERR(rc, &err, TW_ELIMIT, "memory limit", NULL);
  tw_wasm_module_free(m);
  CHECK_GOOD(big);
  tw_wasm_engine_free(big);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

/* Descriptors larger than what tw_step writes, and a tw_step writing past
 * its buffers: the guest only hurts itself. */
static void lies_hurt_only_the_guest(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  static const char *const names[] = {"hostile/desc_lies_big.wat",
                                      "hostile/step_overrun.wat"};
  for (int i = 0; i < 2; i++) {
    tw_wasm_module *m = load_ok(e, names[i], false);
    const tw_wasm_desc *d = tw_wasm_module_desc(m);
    double x[64] = {0.25}, xn[64] = {0}, y[32] = {0};
    tw_wasm_limits lim = {FUEL, TIMEOUT_MS, 0};
    tw_wasm_instance *in = NULL;
    tw_err err;
    tw_err_init(&err);
    assert_true(d->nx <= 64 && d->ny <= 32);
    int rc = tw_wasm_instance_new(m, &lim, &in, &err);
    for (int k = 0; rc == TW_OK && k < 3; k++)
      rc = tw_wasm_step(in, k, 0.5, x, NULL, NULL, xn, y, &err);
    EXPECT_OK(rc, &err);
    if (i == 0)
      assert_true(xn[0] == 0.75 && y[0] == 0.25);
    else
      assert_true(xn[0] == 7); /* what the overrun wrote */
    tw_wasm_instance_free(in);
    tw_wasm_module_free(m);
    CHECK_GOOD(e);
  }
  tw_wasm_engine_free(e);
}

/* A trap poisons the instance until reset; reset gives a working one. */
static void trapped_until_reset(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_wasm_module *m = load_ok(e, "hostile/unreachable.wat", false);
  tw_wasm_instance *in = instance_ok(m);
  tw_err err;
  double x[1] = {1}, xn[1] = {0}, y[1] = {0};
  for (int round = 0; round < 3; round++) {
    tw_err_init(&err);
    int rc = tw_wasm_step(in, -1, 0.5, x, NULL, NULL, xn, y, &err);
    EXPECT_ERR(rc, &err, TW_ETRAP, "tw_step", "unreachable");
    for (int k = 0; k < 2; k++) {
      tw_err_init(&err);
      rc = tw_wasm_step(in, 0, 0.5, x, NULL, NULL, xn, y, &err);
      EXPECT_ERR(rc, &err, TW_ESTATE, "reset", NULL);
      tw_err_init(&err);
      rc = tw_wasm_init(in, NULL, x, &err);
      EXPECT_ERR(rc, &err, TW_ESTATE, "reset", NULL);
    }
    tw_err_init(&err);
    rc = tw_wasm_instance_reset(in, &err);
    EXPECT_OK(rc, &err);
    xn[0] = 0;
    rc = tw_wasm_step(in, 0, 0.5, x, NULL, NULL, xn, y, &err);
    EXPECT_OK(rc, &err);
    assert_true(xn[0] == 1.5 && y[0] == 1);
  }
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

/* --- Huge, truncated, random and foreign bytes ------------------------- */

/* leaky.wat with pages of memory and a data segment of n bytes at 64 KiB:
 * a model of about n bytes. */
static wasm_byte_vec_t leaky_with_data(unsigned pages, size_t n) {
  tw_buf text = TW_BUF_INIT, big = TW_BUF_INIT;
  read_text("leaky.wat", &text);
  const char *mem = "(memory (export \"memory\") 1 16)";
  const char *at = strstr(text.data, mem);
  assert_non_null(at);
  const char *end = strrchr(text.data, ')');
  assert_non_null(end);
  assert_int_equal(tw_buf_append(&big, text.data, (size_t)(at - text.data)),
                   TW_OK);
  assert_int_equal(
      tw_buf_printf(&big, "(memory (export \"memory\") %u)", pages), TW_OK);
  const char *rest = at + strlen(mem);
  assert_int_equal(tw_buf_append(&big, rest, (size_t)(end - rest)), TW_OK);
  assert_int_equal(tw_buf_printf(&big, "\n  (data (i32.const 65536) \""),
                   TW_OK);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(tw_buf_append(&big, "z", 1), TW_OK);
  assert_int_equal(tw_buf_printf(&big, "\"))\n"), TW_OK);
  wasm_byte_vec_t w = wat_text(big.data, big.len);
  tw_buf_fini(&big);
  tw_buf_fini(&text);
  return w;
}

static void huge_modules(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_err err;
  tw_err_init(&err);
  tw_wasm_module *m = NULL;

  /* Over max_module_size: refused before anything is parsed. */
  wasm_byte_vec_t w = leaky_with_data(64, (size_t)3 << 20);
  assert_true(w.size > MAX_MODULE);
  uint64_t t0 = tw_clock_mono_ns();
  int rc = tw_wasm_module_load(e, w.data, w.size, NULL, &m, &err);
  double ms = ms_since(t0);
  print_message("huge (%zu bytes)                  %7.1f ms  %s: %s\n", w.size,
                ms, tw_err_name(rc), err.msg);
  EXPECT_ERR(rc, &err, TW_ELIMIT, "more than the limit of 2097152", NULL);
  EXPECT_WITHIN(ms, SLACK_MS);
  wasm_byte_vec_delete(&w);
  CHECK_GOOD(e);

  /* Within the cap but large: loads and steps like leaky. */
  w = leaky_with_data(40, (size_t)3 << 19);
  assert_true(w.size > ((size_t)3 << 19) && w.size <= MAX_MODULE);
  t0 = tw_clock_mono_ns();
  rc = tw_wasm_module_load(e, w.data, w.size, NULL, &m, &err);
  ms = ms_since(t0);
  print_message("large (%zu bytes)                 %7.1f ms  %s\n", w.size, ms,
                tw_err_name(rc));
  EXPECT_OK(rc, &err);
  EXPECT_WITHIN(ms, PROBE_BOUND_MS);
  assert_int_equal(tw_wasm_module_size(m), w.size);
  double x1 = 0, y0 = 0;
  rc = step_leaky(m, &x1, &y0, &err);
  EXPECT_OK(rc, &err);
  assert_true(x1 == 0.25 + 0.01 * (2 * 0.5 - 0.25) && y0 == 0.25);
  tw_wasm_module_free(m);
  m = NULL;
  wasm_byte_vec_delete(&w);

  /* Large code within the cap: one function of 10,000 instructions. */
  tw_buf text = TW_BUF_INIT;
  read_text("leaky.wat", &text);
  char *end = strrchr(text.data, ')');
  assert_non_null(end);
  text.len = (size_t)(end - text.data);
  assert_int_equal(tw_buf_printf(&text, "(func $big (param $a i32) (result "
                                        "i32)\n"),
                   TW_OK);
  for (int i = 0; i < 10000; i++)
    assert_int_equal(tw_buf_printf(&text,
                                   "(local.set $a (i32.add (local.get "
                                   "$a) (i32.const %d)))\n",
                                   i),
                     TW_OK);
  assert_int_equal(tw_buf_printf(&text, "(local.get $a)))\n"), TW_OK);
  w = wat_text(text.data, text.len);
  tw_buf_fini(&text);
  t0 = tw_clock_mono_ns();
  rc = tw_wasm_module_load(e, w.data, w.size, NULL, &m, &err);
  ms = ms_since(t0);
  print_message("large code (%zu bytes)             %7.1f ms  %s\n", w.size, ms,
                tw_err_name(rc));
  EXPECT_OK(rc, &err);
  EXPECT_WITHIN(ms, PROBE_BOUND_MS);
  rc = step_leaky(m, &x1, &y0, &err);
  EXPECT_OK(rc, &err);
  assert_true(x1 == 0.25 + 0.01 * (2 * 0.5 - 0.25) && y0 == 0.25);
  tw_wasm_module_free(m);
  m = NULL;
  wasm_byte_vec_delete(&w);

  /* A data segment past the end of memory: instantiation traps. */
  w = leaky_with_data(2, (size_t)200 << 10);
  tw_err_init(&err);
  rc = tw_wasm_module_load(e, w.data, w.size, NULL, &m, &err);
  print_message("data past memory                         %s: %s\n",
                tw_err_name(rc), err.msg);
  EXPECT_ERR(rc, &err, TW_ETRAP, "instantiation", "out-of-bounds");
  wasm_byte_vec_delete(&w);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

static bool is_load_code(int rc) {
  return rc == TW_EPARSE || rc == TW_EVALIDATE;
}

/* Every prefix of leaky.wasm is refused with a parse or ABI error. */
static void truncated(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  const size_t n = leaky_bytes.size;
  int nvalid = 0;
  for (size_t len = 0; len < n; len++) {
    tw_wasm_module *m = NULL;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_wasm_module_load(e, leaky_bytes.data, len, NULL, &m, &err);
    if (rc == TW_OK) {
      /* Only a cut at a section boundary, before custom sections (the
       * names), leaves a module; it must be the model itself. */
      double x1 = 0, y0 = 0;
      rc = step_leaky(m, &x1, &y0, &err);
      EXPECT_OK(rc, &err);
      assert_true(x1 == 0.25 + 0.01 * (2 * 0.5 - 0.25) && y0 == 0.25);
      tw_wasm_module_free(m);
      nvalid++;
      continue;
    }
    if (!is_load_code(rc) || err.code != rc || err.msg[0] == '\0') {
      print_error("prefix of %zu bytes: %s '%s'\n", len, tw_err_name(rc),
                  err.msg);
      fail();
    }
    assert_null(m);
    if (len == 0)
      EXPECT_ERR(rc, &err, TW_EPARSE, "empty", NULL);
    else if (len < 8)
      EXPECT_ERR(rc, &err, TW_EPARSE, "no \\0asm magic", NULL);
    else if (len == 8) /* the empty module is valid WebAssembly */
      EXPECT_ERR(rc, &err, TW_EVALIDATE, "missing export", NULL);
    else if (len == n / 2 || len == 9)
      EXPECT_ERR(rc, &err, TW_EPARSE, "invalid WebAssembly module", NULL);
  }
  assert_true(nvalid <= 1);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64*: the same sequence everywhere */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static void random_bytes(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  static const unsigned char header[8] = {0, 'a', 's', 'm', 1, 0, 0, 0};
  unsigned char buf[4096];
  rng_state = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 300; i++) {
    size_t len = 1 + (size_t)(rng() % sizeof buf);
    for (size_t k = 0; k < len; k++)
      buf[k] = (unsigned char)rng();
    if (i % 2 == 1 && len >= 8) /* half of them look like WebAssembly */
      memcpy(buf, header, sizeof header);
    tw_wasm_module *m = NULL;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_wasm_module_load(e, buf, len, NULL, &m, &err);
    if (!is_load_code(rc) || err.msg[0] == '\0') {
      print_error("random module %d (%zu bytes): %s '%s'\n", i, len,
                  tw_err_name(rc), err.msg);
      fail();
    }
    if (i % 2 == 0 && memcmp(buf, "\0asm", len < 4 ? len : 4) != 0)
      EXPECT_ERR(rc, &err, TW_EPARSE, "not a WebAssembly module", NULL);
  }
  CHECK_GOOD(e);

  /* leaky.wasm with a few bytes changed: whatever loads must then run or
   * fail cleanly within its limits. */
  size_t n = leaky_bytes.size;
  unsigned char *mut = malloc(n);
  assert_non_null(mut);
  int loaded = 0;
  for (int i = 0; i < 300; i++) {
    memcpy(mut, leaky_bytes.data, n);
    int flips = 1 + (int)(rng() % 4);
    for (int f = 0; f < flips; f++)
      mut[8 + rng() % (n - 8)] = (unsigned char)rng();
    tw_wasm_module *m = NULL;
    tw_err err;
    tw_err_init(&err);
    uint64_t t0 = tw_clock_mono_ns();
    int rc = tw_wasm_module_load(e, mut, n, NULL, &m, &err);
    if (rc == TW_OK) {
      loaded++;
      tw_wasm_limits lim = {FUEL, TIMEOUT_MS, 0};
      tw_wasm_instance *in = NULL;
      const tw_wasm_desc *d = tw_wasm_module_desc(m);
      double *v = calloc(2 * d->nx + d->nu + d->ntheta + d->ny + 1, 8);
      assert_non_null(v);
      rc = tw_wasm_instance_new(m, &lim, &in, &err);
      if (rc == TW_OK)
        rc = tw_wasm_init(in, NULL, v, &err);
      if (rc == TW_OK)
        rc = tw_wasm_step(in, 0, 0.01, v, NULL, NULL, v + d->nx, NULL, &err);
      tw_wasm_instance_free(in);
      tw_wasm_module_free(m);
      free(v);
    }
    double ms = ms_since(t0);
    if ((rc != TW_OK && (err.code != rc || err.msg[0] == '\0')) ||
        rc == TW_EINTERNAL || rc == TW_ENOMEM) {
      print_error("mutant %d: %s '%s'\n", i, tw_err_name(rc), err.msg);
      fail();
    }
    EXPECT_WITHIN(ms, PROBE_BOUND_MS + SLACK_MS);
  }
  print_message("mutants of leaky.wasm that loaded: %d of 300\n", loaded);
  free(mut);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

static void component(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  /* The preamble of a component (layer 1, version 0x0d). */
  static const unsigned char comp[] = {0, 'a', 's', 'm', 0x0d, 0, 1, 0};
  tw_wasm_module *m = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_wasm_module_load(e, comp, sizeof comp, NULL, &m, &err);
  EXPECT_ERR(rc, &err, TW_EPARSE, "not a core WebAssembly module",
             "components are not models");
  /* The same preamble followed by a core module's sections. */
  unsigned char *b = malloc(leaky_bytes.size);
  assert_non_null(b);
  memcpy(b, leaky_bytes.data, leaky_bytes.size);
  memcpy(b, comp, sizeof comp);
  tw_err_init(&err);
  rc = tw_wasm_module_load(e, b, leaky_bytes.size, NULL, &m, &err);
  EXPECT_ERR(rc, &err, TW_EPARSE, "components are not models", NULL);
  free(b);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

/* --- The pool and threads ---------------------------------------------- */

static void pool_not_exhausted(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_wasm_module *loop = load_ok(e, "hostile/loop_step.wat", false);
  tw_wasm_module *grow = load_ok(e, "hostile/grow_trap.wat", false);
  wasm_byte_vec_t start = wat("hostile/recurse_start.wat");
  wasm_byte_vec_t alloc = wat("hostile/alloc_oob.wat");
  tw_err err;
  for (int i = 0; i < 200; i++) {
    tw_err_init(&err);
    tw_wasm_limits lim = {10000, TIMEOUT_MS, 0};
    tw_wasm_instance *in = NULL;
    double x[1] = {0}, xn[1] = {0};
    int rc = tw_wasm_instance_new(i % 2 ? loop : grow, &lim, &in, &err);
    EXPECT_OK(rc, &err);
    rc = tw_wasm_step(in, 0, 0.01, x, NULL, NULL, xn, NULL, &err);
    assert_int_equal(rc, TW_ELIMIT);
    tw_wasm_instance_free(in);
    /* Failed loads instantiate too (the probe, or the start function). */
    if (i % 10 == 0) {
      tw_wasm_module *m = NULL;
      tw_err_init(&err);
      rc = load_bytes(e, i % 20 ? &start : &alloc, false, &m, &err);
      assert_true(rc == TW_ETRAP || rc == TW_EVALIDATE);
    }
  }
  CHECK_GOOD(e);

  /* A full pool is a limit, and frees up again. */
  tw_wasm_instance *held[POOL] = {NULL};
  tw_wasm_instance *more = NULL;
  for (int i = 0; i < POOL; i++) {
    tw_err_init(&err);
    EXPECT_OK(tw_wasm_instance_new(loop, NULL, &held[i], &err), &err);
  }
  tw_err_init(&err);
  int rc = tw_wasm_instance_new(loop, NULL, &more, &err);
  EXPECT_ERR(rc, &err, TW_ELIMIT, "instance pool exhausted", NULL);
  assert_null(more);
  tw_wasm_instance_free(held[0]);
  held[0] = NULL;
  CHECK_GOOD(e);
  for (int i = 0; i < POOL; i++)
    tw_wasm_instance_free(held[i]);
  wasm_byte_vec_delete(&start);
  wasm_byte_vec_delete(&alloc);
  tw_wasm_module_free(loop);
  tw_wasm_module_free(grow);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

typedef struct worker {
  tw_wasm_module *const *hostile; /* NULL-terminated */
  tw_wasm_module *good;
  int rounds;
  int bad;                       /* rounds that went wrong */
  char msg[TW_ERR_MSG_MAX + 32]; /* the first of them */
} worker;

static void *hostile_main(void *arg) {
  worker *w = arg;
  int nh = 0;
  while (w->hostile[nh] != NULL)
    nh++;
  for (int r = 0; nh > 0 && r < w->rounds; r++) {
    tw_wasm_module *m = w->hostile[r % nh];
    tw_wasm_limits lim = {FUEL, TIMEOUT_MS, 0};
    tw_wasm_instance *in = NULL;
    tw_err err;
    tw_err_init(&err);
    double x[1] = {0}, xn[1] = {0};
    uint64_t t0 = tw_clock_mono_ns();
    int rc = tw_wasm_instance_new(m, &lim, &in, &err);
    if (rc == TW_OK)
      rc = tw_wasm_step(in, 0, 0.01, x, NULL, NULL, xn, NULL, &err);
    tw_wasm_instance_free(in);
    bool ok = (rc == TW_ELIMIT || rc == TW_ETRAP || rc == TW_ETIMEDOUT) &&
              ms_since(t0) < SLACK_MS;
    if (!ok && w->bad++ == 0)
      (void)snprintf(w->msg, sizeof w->msg, "%s: %s", tw_err_name(rc), err.msg);
  }
  return NULL;
}

static void *good_main(void *arg) {
  worker *w = arg;
  for (int r = 0; r < w->rounds; r++) {
    tw_wasm_limits lim = {FUEL, TIMEOUT_MS * 5, 0};
    tw_wasm_instance *in = NULL;
    tw_err err;
    tw_err_init(&err);
    double th[1] = {2}, x = 0, xn = 0, y = 0, want = 0.25;
    int rc = tw_wasm_instance_new(w->good, &lim, &in, &err);
    if (rc == TW_OK)
      rc = tw_wasm_init(in, th, &x, &err);
    for (int k = 0; rc == TW_OK && k < 50; k++) {
      rc = tw_wasm_step(in, k * 0.01, 0.01, &x, NULL, th, &xn, &y, &err);
      if (rc == TW_OK && (y != want || xn != want + 0.01 * (1.0 - want)))
        rc = tw_err_set(&err, TW_ENUMERIC, "step %d: x %.17g, want %.17g", k,
                        xn, want + 0.01 * (1.0 - want));
      want = want + 0.01 * (1.0 - want);
      x = xn;
    }
    tw_wasm_instance_free(in);
    if (rc != TW_OK && w->bad++ == 0)
      (void)snprintf(w->msg, sizeof w->msg, "%s: %s", tw_err_name(rc), err.msg);
  }
  return NULL;
}

static void threads(void **state) {
  (void)state;
  tw_wasm_engine *e = engine();
  tw_wasm_module *hostile[] = {load_ok(e, "hostile/loop_step.wat", false),
                               load_ok(e, "hostile/grow_loop.wat", false),
                               load_ok(e, "hostile/recurse.wat", false),
                               load_ok(e, "hostile/grow_trap.wat", false),
                               load_ok(e, "hostile/div_zero.wat", false),
                               NULL};
  tw_err err;
  tw_err_init(&err);
  tw_wasm_module *good = NULL;
  EXPECT_OK(tw_wasm_module_load(e, leaky_bytes.data, leaky_bytes.size, NULL,
                                &good, &err),
            &err);
  worker w[3] = {{hostile, good, 20, 0, ""},
                 {hostile + 2, good, 20, 0, ""},
                 {hostile, good, 40, 0, ""}};
  pthread_t t[3];
  assert_int_equal(pthread_create(&t[0], NULL, hostile_main, &w[0]), 0);
  assert_int_equal(pthread_create(&t[1], NULL, hostile_main, &w[1]), 0);
  assert_int_equal(pthread_create(&t[2], NULL, good_main, &w[2]), 0);
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    if (w[i].bad != 0)
      print_error("thread %d: %d bad rounds, first %s\n", i, w[i].bad,
                  w[i].msg);
    assert_int_equal(w[i].bad, 0);
  }
  for (int i = 0; hostile[i] != NULL; i++)
    tw_wasm_module_free(hostile[i]);
  tw_wasm_module_free(good);
  CHECK_GOOD(e);
  tw_wasm_engine_free(e);
}

int main(void) {
  save_wasmtime_handlers();
  leaky_bytes = wat("leaky.wat");
  const struct CMUnitTest tests[] = {
      TW_TEST(refused_modules),
      TW_TEST(wasi_granted),
      TW_TEST(wasi_blocking_call),
      TW_TEST(failing_calls),
      TW_TEST(instance_memory_cap),
      TW_TEST(lies_hurt_only_the_guest),
      TW_TEST(trapped_until_reset),
      TW_TEST(huge_modules),
      TW_TEST(truncated),
      TW_TEST(random_bytes),
      TW_TEST(component),
      TW_TEST(pool_not_exhausted),
      TW_TEST(threads),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  restore_wasmtime_handlers();
  wasm_byte_vec_delete(&leaky_bytes);
  return rc;
}
