/*
 * test_runtime.c - the sandboxed model runtime on a good model
 * (wat/leaky.wat: x' = x + dt (k u - x), y = x, with its VJP): the
 * descriptor, init/step/VJP values, the VJP against finite differences
 * and, as a block, through a checkpointed rollout; fuel accounting is
 * deterministic; instances on two threads agree; bad limits are refused;
 * allocation failures leak nothing.
 */
#include "tw_test.h"
#include "wasm_test.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static wasm_byte_vec_t leaky_wasm(void) { return wt_wat("leaky.wat"); }

static tw_wasm_engine *engine(unsigned meters) {
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  o.meters = meters;
  o.max_memory = (size_t)4 << 20;
  o.pool_size = 8;
  return wt_engine(&o);
}

static tw_wasm_module *load(tw_wasm_engine *e, const wasm_byte_vec_t *w) {
  tw_wasm_module *m = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_wasm_module_load(e, w->data, w->size, NULL, &m, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return m;
}

static void descriptor(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(0);
  tw_wasm_module *m = load(e, &w);
  const tw_wasm_desc *d = tw_wasm_module_desc(m);
  assert_string_equal(d->name, "leaky");
  assert_string_equal(d->version, "1.0");
  assert_int_equal(d->nx, 1);
  assert_int_equal(d->nu, 1);
  assert_int_equal(d->ny, 1);
  assert_int_equal(d->ntheta, 1);
  assert_true(d->differentiable);
  assert_string_equal(d->inputs[0].unit, "m/s");
  assert_true(d->inputs[0].default_[0] == 0.5);
  assert_true(d->params[0].min[0] == 0 && d->params[0].max[0] == 10);
  assert_false(d->outputs[0].feedthrough_all);
  assert_int_equal(d->outputs[0].nfeedthrough, 0);
  /* The digest is the SHA-256 of the bytes. */
  char hex[TW_SHA256_HEX_LEN + 1];
  assert_int_equal(tw_sha256_hex(w.data, w.size, hex), TW_OK);
  assert_string_equal(tw_wasm_module_digest(m) + 7, hex);
  assert_int_equal(tw_wasm_module_size(m), w.size);
  const tw_wasm_extern *x;
  assert_int_equal(tw_wasm_module_imports(m, &x), 1);
  assert_string_equal(x[0].module, "tw_host");
  assert_string_equal(x[0].signature, "(i32, i32, i32) -> ()");
  /* A second load of the same bytes comes from the cache. */
  tw_wasm_module *m2 = load(e, &w);
  assert_string_equal(tw_wasm_module_digest(m2), tw_wasm_module_digest(m));
  tw_wasm_module_free(m2);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

static void step_and_vjp(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(0);
  tw_wasm_module *m = load(e, &w);
  tw_wasm_instance *in = NULL;
  tw_wasm_limits lim = {1000000, 5000, 0};
  assert_int_equal(tw_wasm_instance_new(m, &lim, &in, NULL), TW_OK);
  double th = 2, x0, x1, y;
  assert_int_equal(tw_wasm_init(in, &th, &x0, NULL), TW_OK);
  assert_true(x0 == 0.25);
  /* u NULL: the input's default 0.5. */
  assert_int_equal(tw_wasm_step(in, 0, 0.01, &x0, NULL, &th, &x1, &y, NULL),
                   TW_OK);
  assert_true(x1 == 0.25 + 0.01 * (2 * 0.5 - 0.25));
  assert_true(y == 0.25);
  double u = 0.8, gxn = 1.5, gy = -0.5, gx, gu, gth = 10;
  assert_int_equal(tw_wasm_step_vjp(in, 0, 0.01, &x0, &u, &th, &gxn, &gy, &gx,
                                    &gu, &gth, NULL),
                   TW_OK);
  assert_true(fabs(gx - (1.5 * 0.99 - 0.5)) < 1e-15);
  assert_true(fabs(gu - 1.5 * 0.01 * 2) < 1e-15);
  assert_true(fabs(gth - (10 + 1.5 * 0.01 * 0.8)) < 1e-15); /* added */
  tw_wasm_usage us;
  tw_wasm_instance_usage(in, &us);
  assert_true(us.calls >= 3);
  assert_true(us.fuel_used > 0);
  assert_true(us.peak_memory >= 65536);
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

/* L = 0.5 * x_T^2 */
static int final_sq(void *ud, int64_t k, int64_t steps, const double *xn,
                    const double *y, double *value, double *gxn, double *gy,
                    tw_err *err) {
  (void)ud, (void)k, (void)steps, (void)y, (void)err;
  *value = 0.5 * xn[0] * xn[0];
  if (gxn != NULL)
    gxn[0] = xn[0];
  if (gy != NULL)
    gy[0] = 0;
  return TW_OK;
}

static double rollout_loss(tw_block *b, const tw_rollout_opts *o, double k) {
  double x0 = 0.25, L = 0;
  assert_int_equal(tw_sim_forward(b, o, &x0, &k, NULL,
                                  &(tw_loss){final_sq, true, NULL}, NULL, NULL,
                                  &L, NULL),
                   TW_OK);
  return L;
}

static void block_gradient(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(0);
  tw_wasm_module *m = load(e, &w);
  tw_block *b = NULL;
  assert_int_equal(tw_sim_wasm_block(m, NULL, NULL, &b, NULL), TW_OK);
  const tw_block_desc *d = tw_block_describe(b);
  assert_string_equal(d->kind, "wasm");
  assert_string_equal(tw_block_name(b), "leaky");
  assert_true(d->differentiable);
  double th;
  assert_int_equal(tw_block_default_params(b, &th, NULL), TW_OK);
  assert_true(th == 2);
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = 200;
  o.dt = 0.01;
  double g[2];
  const char *specs[2] = {"all", "revolve:3"};
  for (int s = 0; s < 2; s++) {
    assert_int_equal(tw_ckpt_spec_parse(specs[s], &o.schedule, NULL), TW_OK);
    double x0 = 0.25;
    assert_int_equal(tw_sim_grad(b, &o, &x0, &th, NULL,
                                 &(tw_loss){final_sq, true, NULL}, &g[s], NULL,
                                 NULL, NULL, NULL),
                     TW_OK);
  }
  assert_memory_equal(&g[0], &g[1], sizeof g[0]); /* schedules agree */
  double h = 1e-5;
  double fd =
      (rollout_loss(b, &o, th + h) - rollout_loss(b, &o, th - h)) / (2 * h);
  assert_true(fabs(fd - g[0]) <= 1e-6 * fabs(g[0]));
  tw_block_free(b);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

/* Fuel counts instructions: the same calls cost the same fuel. */
static void fuel_is_deterministic(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(TW_WASM_FUEL);
  tw_wasm_module *m = load(e, &w);
  uint64_t used[2];
  for (int r = 0; r < 2; r++) {
    tw_wasm_instance *in = NULL;
    tw_wasm_limits lim = {100000, 0, 0};
    assert_int_equal(tw_wasm_instance_new(m, &lim, &in, NULL), TW_OK);
    tw_wasm_usage u0, u1;
    tw_wasm_instance_usage(in, &u0);
    double th = 2, x = 0.25, xn;
    for (int k = 0; k < 100; k++) {
      assert_int_equal(
          tw_wasm_step(in, k * 0.01, 0.01, &x, NULL, &th, &xn, NULL, NULL),
          TW_OK);
      x = xn;
    }
    tw_wasm_instance_usage(in, &u1);
    used[r] = u1.fuel_used - u0.fuel_used;
    tw_wasm_instance_free(in);
  }
  assert_true(used[0] > 0);
  assert_true(used[0] == used[1]);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

typedef struct run_arg {
  tw_wasm_module *m;
  double x;
  int rc;
} run_arg;

static void *run_thread(void *p) {
  run_arg *a = p;
  tw_wasm_instance *in = NULL;
  a->rc = tw_wasm_instance_new(a->m, NULL, &in, NULL);
  double th = 3, x = 0.25, xn, u = 0.1;
  for (int k = 0; a->rc == TW_OK && k < 20000; k++) {
    a->rc = tw_wasm_step(in, k * 1e-3, 1e-3, &x, &u, &th, &xn, NULL, NULL);
    x = xn;
  }
  a->x = x;
  tw_wasm_instance_free(in);
  return NULL;
}

static void two_threads_agree(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(0);
  tw_wasm_module *m = load(e, &w);
  run_arg a[2] = {{m, 0, -1}, {m, 0, -1}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&t[i], NULL, run_thread, &a[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(a[0].rc, TW_OK);
  assert_int_equal(a[1].rc, TW_OK);
  assert_memory_equal(&a[0].x, &a[1].x, sizeof a[0].x);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

static void bad_limits(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(TW_WASM_EPOCH);
  tw_wasm_module *m = load(e, &w);
  tw_wasm_instance *in = NULL;
  tw_err err;
  tw_err_init(&err);
  tw_wasm_limits fuel = {1000, 0, 0};
  assert_int_equal(tw_wasm_instance_new(m, &fuel, &in, &err), TW_ENOTSUP);
  assert_non_null(strstr(err.msg, "fuel limit needs"));
  tw_err_init(&err);
  tw_wasm_limits big = {0, 0, (size_t)1 << 30};
  assert_int_equal(tw_wasm_instance_new(m, &big, &in, &err), TW_ERANGE);
  assert_null(in);
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  o.meters = 8;
  tw_wasm_engine *e2 = NULL;
  tw_err_init(&err);
  assert_int_equal(tw_wasm_engine_new(NULL, &o, &e2, &err), TW_EINVAL);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

static int load_round(tw_wasm_engine *e, const wasm_byte_vec_t *w) {
  tw_wasm_module *m = NULL;
  tw_wasm_instance *in = NULL;
  int rc = tw_wasm_module_load(e, w->data, w->size, NULL, &m, NULL);
  if (rc == TW_OK)
    rc = tw_wasm_instance_new(m, NULL, &in, NULL);
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  wasm_byte_vec_t w = leaky_wasm();
  tw_wasm_engine *e = engine(0);
  /* Compiled code stays in the engine's cache until the engine goes:
   * warm it, so every round starts from the same live count. */
  assert_int_equal(load_round(e, &w), TW_OK);
  TW_TEST_ALLOC_FAILURES(load_round(e, &w));
  tw_wasm_engine_free(e);
  wasm_byte_vec_delete(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(descriptor),          TW_TEST(step_and_vjp),
      TW_TEST(block_gradient),      TW_TEST(fuel_is_deterministic),
      TW_TEST(two_threads_agree),   TW_TEST(bad_limits),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
