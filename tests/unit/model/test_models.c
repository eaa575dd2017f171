/* test_models.c - one example model (TW_TEST_MODEL, linked in natively with
 * the model SDK): its descriptor is valid JSON that matches the model, its
 * steps run, and its tw_step_vjp matches central finite differences of the
 * step to 1e-6 relative, overwriting gx and gu and adding into gtheta as
 * the ABI says. The cart-pole is also checked against Twin's builtin
 * cart-pole (RK4), whose VJP is hand-written. */
#include <math.h>
#include <string.h>

#include "tw_test.h"
#include "twin_model.h"

#define MAXN 128

typedef struct point {
  size_t nx, nu, ny, nt;
  double t, dt;
  double x[MAXN], u[MAXN], theta[MAXN];
  double gxn[MAXN], gy[MAXN]; /* cotangents */
} point;

static uint64_t rng = 0x9E3779B97F4A7C15u;

/* Uniform in [-1, 1) (xorshift64*: deterministic across runs). */
static double uniform(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (double)((rng * 2685821657736338717u) >> 11) / 4503599627370496.0 -
         1.0;
}

/* The descriptor's params defaults (checked by descriptor_is_valid). */
static void default_params(double *theta) {
  const tw_model_def *d = tw__model_def();
  size_t at = 0;
  for (size_t i = 0; i < d->nparams; i++) {
    const tw_model_port *p = &d->params[i];
    for (size_t j = 0; j < p->size; j++)
      theta[at + j] = p->default_.n == 0   ? 0.0
                      : p->default_.n == 1 ? p->default_.v[0]
                                           : p->default_.v[j];
    at += p->size;
  }
}

/* A random point near the model's defaults, inside its bounds. */
static void make_point(point *p) {
  memset(p, 0, sizeof *p);
  tw_model_sizes(&p->nx, &p->nu, &p->ny, &p->nt);
  assert_true(p->nx < MAXN && p->nu < MAXN && p->ny < MAXN && p->nt < MAXN);
  p->t = 0.5;
  p->dt = 0.02;
  default_params(p->theta);
  for (size_t i = 0; i < p->nt; i++)
    p->theta[i] *= 1 + 0.1 * uniform();
  assert_int_equal(tw_model_init(p->theta, p->x), TW_OK);
  for (size_t i = 0; i < p->nx; i++)
    p->x[i] += 0.3 * uniform();
  for (size_t i = 0; i < p->nu; i++)
    p->u[i] = uniform();
  for (size_t i = 0; i < p->nx; i++)
    p->gxn[i] = uniform();
  for (size_t i = 0; i < p->ny; i++)
    p->gy[i] = uniform();
}

/* <gx_next, x_next> + <gy, y> at p. */
static double objective(const point *p) {
  double xn[MAXN], y[MAXN];
  assert_int_equal(tw_model_step(p->t, p->dt, p->x, p->u, p->theta, xn, y),
                   TW_OK);
  double f = 0;
  for (size_t i = 0; i < p->nx; i++)
    f += p->gxn[i] * xn[i];
  for (size_t i = 0; i < p->ny; i++)
    f += p->gy[i] * y[i];
  return f;
}

static void descriptor_is_valid(void **state) {
  (void)state;
  const tw_model_def *d = tw__model_def();
  size_t len = 0;
  const char *text = tw_model_describe(&len);
  assert_non_null(text);
  assert_int_equal(strlen(text), len);
  json_t *root = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_json_parse(text, len, "descriptor", &root, &err), TW_OK);
  assert_int_equal(json_integer_value(json_object_get(root, "abi")), 1);
  assert_string_equal(json_string_value(json_object_get(root, "name")),
                      TW_TEST_MODEL);
  assert_string_equal(json_string_value(json_object_get(root, "name")),
                      d->name);
  assert_non_null(json_string_value(json_object_get(root, "version")));
  assert_true(json_is_true(json_object_get(root, "differentiable")));
  static const char *const kinds[] = {"state", "inputs", "outputs", "params"};
  const tw_model_port *tables[] = {d->state, d->inputs, d->outputs, d->params};
  const size_t counts[] = {d->nstate, d->ninputs, d->noutputs, d->nparams};
  size_t sums[4] = {0, 0, 0, 0}, sizes[4];
  tw_model_sizes(&sizes[0], &sizes[1], &sizes[2], &sizes[3]);
  for (int k = 0; k < 4; k++) {
    json_t *ports = json_object_get(root, kinds[k]);
    assert_true(json_is_array(ports));
    assert_int_equal(json_array_size(ports), counts[k]);
    for (size_t i = 0; i < counts[k]; i++) {
      json_t *port = json_array_get(ports, i);
      assert_string_equal(json_string_value(json_object_get(port, "name")),
                          tables[k][i].name);
      assert_non_null(json_string_value(json_object_get(port, "unit")));
      size_t size = (size_t)json_integer_value(json_object_get(port, "size"));
      assert_int_equal(size, tables[k][i].size);
      sums[k] += size;
      /* Params always carry a default; a number or size numbers. */
      json_t *def = json_object_get(port, "default");
      if (k == 3)
        assert_non_null(def);
      if (def != NULL)
        assert_true(json_is_number(def) ||
                    (json_is_array(def) && json_array_size(def) == size));
      json_t *ft = json_object_get(port, "feedthrough");
      for (size_t j = 0; ft != NULL && j < json_array_size(ft); j++) {
        const char *in = json_string_value(json_array_get(ft, j));
        bool found = false;
        for (size_t q = 0; q < d->ninputs; q++)
          found = found || strcmp(d->inputs[q].name, in) == 0;
        assert_true(found);
      }
    }
    assert_int_equal(sums[k], sizes[k]);
  }
  /* Every number reads back as the default it came from. */
  json_t *params = json_object_get(root, "params");
  double theta[MAXN];
  default_params(theta);
  size_t at = 0;
  for (size_t i = 0; i < json_array_size(params); i++) {
    json_t *def = json_object_get(json_array_get(params, i), "default");
    size_t size = d->params[i].size;
    for (size_t j = 0; j < size; j++) {
      json_t *v = json_is_array(def) ? json_array_get(def, j) : def;
      assert_true(json_number_value(v) == theta[at + j]);
    }
    at += size;
  }
  json_decref(root);
}

static void steps_run(void **state) {
  (void)state;
  point p;
  make_point(&p);
  double x[MAXN], xn[MAXN], y[MAXN];
  memcpy(x, p.x, sizeof x);
  for (int k = 0; k < 100; k++) {
    assert_int_equal(tw_model_step(k * p.dt, p.dt, x, p.u, p.theta, xn, y),
                     TW_OK);
    for (size_t i = 0; i < p.nx; i++)
      assert_true(isfinite(xn[i]));
    for (size_t i = 0; i < p.ny; i++)
      assert_true(isfinite(y[i]));
    memcpy(x, xn, sizeof x);
  }
  /* The same step twice gives the same bits. */
  double xn2[MAXN], y2[MAXN];
  assert_int_equal(tw_model_step(p.t, p.dt, p.x, p.u, p.theta, xn, y), TW_OK);
  assert_int_equal(tw_model_step(p.t, p.dt, p.x, p.u, p.theta, xn2, y2), TW_OK);
  assert_memory_equal(xn, xn2, p.nx * sizeof(double));
  assert_memory_equal(y, y2, p.ny * sizeof(double));
}

/* Compares an adjoint with the central difference of the objective along
 * coordinate v[j]; h = eps^(1/3) max(1, |v|). */
static void check_coordinate(point *p, double *v, size_t j, double ad,
                             double scale, const char *what) {
  double keep = v[j];
  double h = 6.0554544523933395e-06 * fmax(1.0, fabs(keep));
  v[j] = keep + h;
  double fp = objective(p);
  v[j] = keep - h;
  double fm = objective(p);
  v[j] = keep;
  double fd = (fp - fm) / (2 * h);
  double tol = 1e-6 * fmax(fmax(fabs(ad), fabs(fd)), 1e-3 * scale);
  if (!(fabs(ad - fd) <= tol))
    fail_msg("%s: d/d %s[%zu]: vjp %.17g, finite differences %.17g (tol %g)",
             TW_TEST_MODEL, what, j, ad, fd, tol);
}

static void vjp_matches_finite_differences(void **state) {
  (void)state;
  for (int trial = 0; trial < 5; trial++) {
    point p;
    make_point(&p);
    double gx[MAXN], gu[MAXN], gt[MAXN];
    memset(gt, 0, sizeof gt);
    assert_int_equal(tw_model_step_vjp(p.t, p.dt, p.x, p.u, p.theta, p.gxn,
                                       p.gy, gx, gu, gt),
                     TW_OK);
    double scale = 0;
    for (size_t i = 0; i < p.nx; i++)
      scale = fmax(scale, fabs(gx[i]));
    for (size_t i = 0; i < p.nu; i++)
      scale = fmax(scale, fabs(gu[i]));
    for (size_t i = 0; i < p.nt; i++)
      scale = fmax(scale, fabs(gt[i]));
    assert_true(scale > 0);
    for (size_t i = 0; i < p.nx; i++)
      check_coordinate(&p, p.x, i, gx[i], scale, "x");
    for (size_t i = 0; i < p.nu; i++)
      check_coordinate(&p, p.u, i, gu[i], scale, "u");
    for (size_t i = 0; i < p.nt; i++)
      check_coordinate(&p, p.theta, i, gt[i], scale, "theta");
  }
}

static void vjp_overwrites_gx_gu_and_adds_into_gtheta(void **state) {
  (void)state;
  point p;
  make_point(&p);
  double gx[MAXN], gu[MAXN], gt[MAXN];
  memset(gt, 0, sizeof gt);
  assert_int_equal(
      tw_model_step_vjp(p.t, p.dt, p.x, p.u, p.theta, p.gxn, p.gy, gx, gu, gt),
      TW_OK);
  double gx2[MAXN], gu2[MAXN], gt2[MAXN];
  for (size_t i = 0; i < MAXN; i++) {
    gx2[i] = NAN;
    gu2[i] = NAN;
    gt2[i] = 1.0;
  }
  assert_int_equal(tw_model_step_vjp(p.t, p.dt, p.x, p.u, p.theta, p.gxn, p.gy,
                                     gx2, gu2, gt2),
                   TW_OK);
  assert_memory_equal(gx, gx2, p.nx * sizeof(double));
  assert_memory_equal(gu, gu2, p.nu * sizeof(double));
  for (size_t i = 0; i < p.nt; i++)
    assert_true(fabs(gt2[i] - (1.0 + gt[i])) <= 1e-12 * fmax(1.0, fabs(gt[i])));
  /* Zero cotangents give zero adjoints. */
  memset(p.gxn, 0, sizeof p.gxn);
  memset(p.gy, 0, sizeof p.gy);
  memset(gt, 0, sizeof gt);
  assert_int_equal(
      tw_model_step_vjp(p.t, p.dt, p.x, p.u, p.theta, p.gxn, p.gy, gx, gu, gt),
      TW_OK);
  for (size_t i = 0; i < p.nx; i++)
    assert_true(gx[i] == 0);
  for (size_t i = 0; i < p.nu; i++)
    assert_true(gu[i] == 0);
  for (size_t i = 0; i < p.nt; i++)
    assert_true(gt[i] == 0);
}

/* The cart-pole model against tw_sim_cartpole under RK4: the same
 * equations, written independently (tape here, hand-written there). */
static void cartpole_matches_builtin(void **state) {
  (void)state;
  if (strcmp(TW_TEST_MODEL, "cartpole") != 0)
    skip();
  tw_err err;
  tw_err_init(&err);
  const tw_dyn_ops *ops;
  void *self;
  tw_block *b = NULL;
  assert_int_equal(tw_sim_cartpole(&ops, &self, &err), TW_OK);
  assert_int_equal(
      tw_sim_integrated_block(ops, self, TW_RK4, "cartpole", &b, &err), TW_OK);
  for (int trial = 0; trial < 3; trial++) {
    point p;
    make_point(&p);
    double xn[MAXN], y[MAXN], bxn[4], by[4];
    assert_int_equal(tw_model_step(p.t, p.dt, p.x, p.u, p.theta, xn, y), TW_OK);
    tw_step_args sa = {p.t, p.dt, 0, p.x, p.u, p.theta, bxn, by};
    assert_int_equal(tw_block_step(b, &sa, &err), TW_OK);
    for (int i = 0; i < 4; i++)
      assert_true(fabs(xn[i] - bxn[i]) <= 1e-13 * fmax(1.0, fabs(bxn[i])));
    /* VJP of the state only: the builtin's outputs are the whole state,
     * the model's x and theta. */
    double zero[MAXN] = {0};
    double gx[MAXN], gu[MAXN], gt[MAXN] = {0}, bgx[4], bgu[1], bgt[4] = {0};
    assert_int_equal(tw_model_step_vjp(p.t, p.dt, p.x, p.u, p.theta, p.gxn,
                                       zero, gx, gu, gt),
                     TW_OK);
    tw_vjp_args va = {p.t,   p.dt, 0,   p.x, p.u, p.theta,
                      p.gxn, zero, bgx, bgu, bgt, NULL};
    assert_int_equal(tw_block_step_vjp(b, &va, &err), TW_OK);
    for (int i = 0; i < 4; i++) {
      assert_true(fabs(gx[i] - bgx[i]) <= 1e-11 * fmax(1.0, fabs(bgx[i])));
      assert_true(fabs(gt[i] - bgt[i]) <= 1e-11 * fmax(1.0, fabs(bgt[i])));
    }
    assert_true(fabs(gu[0] - bgu[0]) <= 1e-11 * fmax(1.0, fabs(bgu[0])));
  }
  tw_block_free(b);
}

int main(void) {
  /* The SDK sets up its runtime (descriptor, views, tape) on first use and
   * keeps it for the module's life: warm it up before the leak checks. */
  point p;
  make_point(&p);
  double xn[MAXN], y[MAXN], gx[MAXN], gu[MAXN], gt[MAXN] = {0};
  if (tw_model_step(p.t, p.dt, p.x, p.u, p.theta, xn, y) != TW_OK ||
      tw_model_step_vjp(p.t, p.dt, p.x, p.u, p.theta, p.gxn, p.gy, gx, gu,
                        gt) != TW_OK)
    return 1;
  const struct CMUnitTest tests[] = {
      TW_TEST(descriptor_is_valid),
      TW_TEST(steps_run),
      TW_TEST(vjp_matches_finite_differences),
      TW_TEST(vjp_overwrites_gx_gu_and_adds_into_gtheta),
      TW_TEST(cartpole_matches_builtin),
  };
  return cmocka_run_group_tests_name(TW_TEST_MODEL, tests, NULL, NULL);
}
