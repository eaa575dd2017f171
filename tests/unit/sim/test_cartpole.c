/*
 * test_cartpole.c - the builtin cart-pole: description and defaults, the
 * dynamics against the classic-control formulation written independently,
 * physical sanity, the VJP against finite differences (dyn_check.h) and
 * allocation failures.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dyn_check.h"

typedef struct cp {
  const tw_dyn_ops *ops;
  void *self;
} cp;

static cp cp_make(void) {
  cp c;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_cartpole(&c.ops, &c.self, &err), TW_OK);
  return c;
}

static void cp_deriv(const cp *c, const double *q, double F, const double *th,
                     double *qdot) {
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(c->ops->deriv(c->self, 0, q, &F, th, qdot, &err), TW_OK);
}

static void test_describe(void **state) {
  (void)state;
  cp c = cp_make();
  tw_dyn_desc d;
  c.ops->describe(c.self, &d);
  assert_string_equal(c.ops->kind, "cartpole");
  assert_string_equal(d.kind, "cartpole");
  assert_true(d.second_order);
  assert_int_equal(d.nq, 4);
  assert_int_equal(d.nu, 1);
  assert_int_equal(d.ntheta, 4);
  static const char *const sn[] = {"x", "theta", "x_dot", "theta_dot"};
  static const char *const su[] = {"m", "rad", "m/s", "rad/s"};
  static const char *const pn[] = {"cart_mass", "pole_mass", "half_length",
                                   "gravity"};
  static const char *const pu[] = {"kg", "kg", "m", "m/s^2"};
  size_t sum = 0;
  assert_int_equal(d.nstate, 4);
  assert_int_equal(d.nparams, 4);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(d.state[i].name, sn[i]);
    assert_string_equal(d.state[i].unit, su[i]);
    assert_string_equal(d.params[i].name, pn[i]);
    assert_string_equal(d.params[i].unit, pu[i]);
    sum += d.state[i].size + d.params[i].size;
  }
  assert_int_equal(sum, 8);
  assert_int_equal(d.ninputs, 1);
  assert_string_equal(d.inputs[0].name, "force");
  assert_string_equal(d.inputs[0].unit, "N");
  assert_int_equal(d.inputs[0].size, 1);
  assert_null(c.ops->project);
  assert_null(c.ops->project_vjp);

  double th[4], q0[4] = {1, 1, 1, 1};
  c.ops->default_params(c.self, th);
  assert_true(th[0] == 1.0 && th[1] == 0.1 && th[2] == 0.5 && th[3] == 9.8);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(c.ops->init(c.self, th, q0, &err), TW_OK);
  for (int i = 0; i < 4; i++)
    assert_true(q0[i] == 0);
  c.ops->free(c.self);
}

/* The classic-control (OpenAI gym) form of the same equations. */
static void reference(const double *q, double F, const double *th,
                      double *qdot) {
  double mc = th[0], mp = th[1], l = th[2], g = th[3];
  double total = mc + mp, pml = mp * l;
  double s = sin(q[1]), c = cos(q[1]);
  double temp = (F + pml * q[3] * q[3] * s) / total;
  double thacc = (g * s - c * temp) / (l * (4.0 / 3.0 - mp * c * c / total));
  double xacc = temp - pml * thacc * c / total;
  qdot[0] = q[2];
  qdot[1] = q[3];
  qdot[2] = xacc;
  qdot[3] = thacc;
}

static void test_values(void **state) {
  (void)state;
  cp c = cp_make();
  static const double states[][4] = {
      {0, 0, 0, 0},    {0.5, 0.1, -0.3, 0.2}, {-1, 3.0, 1, -4},
      {2, -1.2, 0, 7}, {0, M_PI / 2, 0.5, 0}, {0.1, -2.5, -2, 1}};
  static const double forces[] = {0, 10, -10, 3.7};
  static const double params[][4] = {{1, 0.1, 0.5, 9.8}, {2.5, 0.7, 1.3, 3}};
  for (size_t k = 0; k < sizeof params / sizeof params[0]; k++) {
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
      for (size_t f = 0; f < sizeof forces / sizeof forces[0]; f++) {
        double got[4], want[4];
        cp_deriv(&c, states[i], forces[f], params[k], got);
        reference(states[i], forces[f], params[k], want);
        for (int j = 0; j < 4; j++)
          dyn_assert_close(got[j], want[j], 1e-13 * (1 + fabs(want[j])));
      }
    }
  }

  /* Physics: upright at rest stays; pushing right accelerates the cart
   * right and tips the pole left (theta_dd < 0); without force, a tilted
   * pole falls further and the cart recoils the other way. */
  double th[4], qdot[4];
  c.ops->default_params(c.self, th);
  double up[4] = {0, 0, 0, 0};
  cp_deriv(&c, up, 0, th, qdot);
  for (int j = 0; j < 4; j++)
    assert_true(qdot[j] == 0);
  cp_deriv(&c, up, 10, th, qdot);
  assert_true(qdot[2] > 0 && qdot[3] < 0);
  double tilted[4] = {0, 0.2, 0, 0};
  cp_deriv(&c, tilted, 0, th, qdot);
  assert_true(qdot[3] > 0 && qdot[2] < 0);
  /* A massless pole leaves the cart alone: x_dd = F / m_c. */
  double light[4] = {2, 0, 0.5, 9.8};
  cp_deriv(&c, tilted, 3, light, qdot);
  dyn_assert_close(qdot[2], 1.5, 1e-15);
  /* u == NULL means no force. */
  double a[4], b[4];
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(c.ops->deriv(c.self, 0, tilted, NULL, th, a, &err), TW_OK);
  cp_deriv(&c, tilted, 0, th, b);
  assert_memory_equal(a, b, sizeof a);
  c.ops->free(c.self);
}

/* Cycles through named regions of the state space: near upright, hanging,
 * horizontal, spinning fast, anywhere. */
static void adjust_state(void *ud, double *q, double *u, double *th) {
  (void)u;
  (void)th;
  unsigned *count = ud;
  static const double centres[] = {0, M_PI, M_PI / 2, -1.0, 2.5};
  unsigned k = (*count)++ % 5;
  q[1] = centres[k] + dyn_uniform(-0.3, 0.3);
  if (k == 3)
    q[3] = dyn_uniform(-20, 20);
}

static void test_grad(void **state) {
  (void)state;
  cp c = cp_make();
  unsigned count = 0;
  dyn_case dc = {.name = "cartpole",
                 .ops = c.ops,
                 .self = c.self,
                 .q_lo = -3,
                 .q_hi = 3,
                 .u_lo = -15,
                 .u_hi = 15,
                 .theta_abs = 0.01,
                 .adjust = adjust_state,
                 .ud = &count,
                 .trials = 40};
  dyn_check(&dc);
  assert_int_equal(count, 40);
  c.ops->free(c.self);
}

static int make_and_free(void) {
  const tw_dyn_ops *ops;
  void *self;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sim_cartpole(&ops, &self, &err);
  if (rc != TW_OK) {
    assert_string_equal(tw_err_msg(&err), "cartpole: out of memory");
    return rc;
  }
  ops->free(self);
  return TW_OK;
}

static void test_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(make_and_free());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_describe),
      TW_TEST(test_values),
      TW_TEST(test_grad),
      TW_TEST(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
