/*
 * test_models.c - the example models (models/NAME.wasm, built with the
 * model SDK by `twin model build`) in the sandbox: their tw_step_vjp against
 * central finite differences of tw_step, on every coordinate of the
 * state, inputs and parameters, at several points; and a rollout of each
 * as a block.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tw_test.h"
#include "wasm_test.h"

#ifndef TW_MODELS_DIR
#error "TW_MODELS_DIR must name the directory of the built example models"
#endif

static tw_wasm_engine *make_engine(void) {
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  o.max_memory = (size_t)16 << 20;
  o.pool_size = 8;
  return wt_engine(&o);
}

static tw_wasm_module *load(tw_wasm_engine *e, const char *name) {
  char path[1024];
  (void)snprintf(path, sizeof path, "%s/%s.wasm", TW_MODELS_DIR, name);
  tw_wasm_module *m = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_wasm_module_load_file(e, path, NULL, &m, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return m;
}

/* A deterministic value in [-1, 1). */
static double noise(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (double)(*s >> 8) / (double)(1u << 23) - 1.0;
}

#define MAXV 128

typedef struct point {
  double x[MAXV], u[MAXV], th[MAXV], gxn[MAXV], gy[MAXV];
} point;

/* <gxn, x'> + <gy, y> at the point, with one coordinate moved. */
static double objective(tw_wasm_instance *in, const tw_wasm_desc *d,
                        const point *p, double dt) {
  double xn[MAXV], y[MAXV];
  int rc = tw_wasm_step(in, 0.3, dt, p->x, p->u, p->th, xn, y, NULL);
  assert_int_equal(rc, TW_OK);
  double s = 0;
  for (size_t i = 0; i < d->nx; i++)
    s += p->gxn[i] * xn[i];
  for (size_t i = 0; i < d->ny; i++)
    s += p->gy[i] * y[i];
  return s;
}

static void check_coord(tw_wasm_instance *in, const tw_wasm_desc *d, point *p,
                        double *v, double g, const char *what, size_t i,
                        double dt) {
  double keep = v[i], h = cbrt(DBL_EPSILON) * fmax(1, fabs(keep));
  v[i] = keep + h;
  double fp = objective(in, d, p, dt);
  v[i] = keep - h;
  double fm = objective(in, d, p, dt);
  v[i] = keep;
  double fd = (fp - fm) / (2 * h);
  double tol = 1e-6 * fmax(fmax(fabs(fd), fabs(g)), 1e-3);
  if (fabs(fd - g) > tol)
    print_error("%s: %s[%zu]: vjp %.12g, central difference %.12g\n", d->name,
                what, i, g, fd);
  assert_true(fabs(fd - g) <= tol);
}

static void check_model(const char *name, double dt) {
  tw_wasm_engine *e = make_engine();
  tw_wasm_module *m = load(e, name);
  const tw_wasm_desc *d = tw_wasm_module_desc(m);
  assert_true(d->differentiable);
  assert_true(d->nx <= MAXV && d->nu <= MAXV && d->ntheta <= MAXV &&
              d->ny <= MAXV);
  tw_wasm_instance *in = NULL;
  tw_wasm_limits lim = {0, 5000, 0};
  assert_int_equal(tw_wasm_instance_new(m, &lim, &in, NULL), TW_OK);
  unsigned seed = 12345;
  for (int trial = 0; trial < 5; trial++) {
    point p;
    memset(&p, 0, sizeof p);
    size_t off = 0;
    for (size_t i = 0; i < d->nparams; i++) { /* defaults, perturbed */
      for (size_t j = 0; j < d->params[i].size; j++) {
        double v = d->params[i].default_[j];
        double lo = d->params[i].min ? d->params[i].min[j] : -INFINITY;
        double hi = d->params[i].max ? d->params[i].max[j] : INFINITY;
        v *= 1 + 0.2 * noise(&seed);
        p.th[off + j] = fmin(fmax(v, lo), hi);
      }
      off += d->params[i].size;
    }
    assert_int_equal(tw_wasm_init(in, p.th, p.x, NULL), TW_OK);
    for (size_t i = 0; i < d->nx; i++)
      p.x[i] += 0.5 * noise(&seed);
    for (size_t i = 0; i < d->nu; i++)
      p.u[i] = noise(&seed);
    for (size_t i = 0; i < d->nx; i++)
      p.gxn[i] = noise(&seed);
    for (size_t i = 0; i < d->ny; i++)
      p.gy[i] = noise(&seed);
    double gx[MAXV], gu[MAXV], gth[MAXV];
    for (size_t i = 0; i < d->ntheta; i++)
      gth[i] = 0;
    assert_int_equal(tw_wasm_step_vjp(in, 0.3, dt, p.x, p.u, p.th, p.gxn, p.gy,
                                      gx, gu, gth, NULL),
                     TW_OK);
    for (size_t i = 0; i < d->nx; i++)
      check_coord(in, d, &p, p.x, gx[i], "x", i, dt);
    for (size_t i = 0; i < d->nu; i++)
      check_coord(in, d, &p, p.u, gu[i], "u", i, dt);
    for (size_t i = 0; i < d->ntheta; i++)
      check_coord(in, d, &p, p.th, gth[i], "theta", i, dt);
  }
  tw_wasm_instance_free(in);

  /* As a block: 100 steps forward from its initial state, finite. */
  tw_block *b = NULL;
  assert_int_equal(tw_sim_wasm_block(m, NULL, NULL, &b, NULL), TW_OK);
  double th[MAXV], x0[MAXV], xf[MAXV];
  assert_int_equal(tw_block_default_params(b, th, NULL), TW_OK);
  assert_int_equal(tw_block_init(b, th, x0, NULL), TW_OK);
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = 100;
  o.dt = dt;
  o.check_finite = true;
  assert_int_equal(
      tw_sim_forward(b, &o, x0, th, NULL, NULL, xf, NULL, NULL, NULL), TW_OK);
  tw_block_free(b);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
}

static void oscillator(void **state) {
  (void)state;
  check_model("oscillator", 0.01);
}
static void mlp_residual(void **state) {
  (void)state;
  check_model("mlp_residual", 0.01);
}
static void cartpole(void **state) {
  (void)state;
  check_model("cartpole", 0.02);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(oscillator),
      TW_TEST(mlp_residual),
      TW_TEST(cartpole),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
