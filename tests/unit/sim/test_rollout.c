/* test_rollout.c - integrators and the discrete adjoint of rollouts, on
 * small dynamics written here, checked against closed forms, finite
 * differences, and across checkpoint schedules (bitwise). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "tw_test.h"
#include "twin/sim.h"

/* A damped oscillator with a forcing input, second order:
 * x'' = -k x - c x' + u + nl * x^3, params [k, c, nl]. */
typedef struct osc {
  int dummy;
} osc;

static const tw_port osc_state[] = {{"position", "m", 1, TW_F64},
                                    {"velocity", "m/s", 1, TW_F64}};
static const tw_port osc_in[] = {{"force", "N", 1, TW_F64}};
static const tw_port osc_params[] = {{"k", "N/m", 1, TW_F64},
                                     {"c", "N*s/m", 1, TW_F64},
                                     {"nl", "N/m^3", 1, TW_F64}};

static void osc_describe(const void *self, tw_dyn_desc *d) {
  (void)self;
  memset(d, 0, sizeof *d);
  d->kind = "oscillator";
  d->state = osc_state;
  d->nstate = 2;
  d->inputs = osc_in;
  d->ninputs = 1;
  d->params = osc_params;
  d->nparams = 3;
  d->nq = 2;
  d->nu = 1;
  d->ntheta = 3;
  d->second_order = true;
}
static void osc_defaults(const void *self, double *th) {
  (void)self;
  th[0] = 4;
  th[1] = 0.3;
  th[2] = 0.5;
}
static int osc_init(void *self, const double *th, double *q0, tw_err *err) {
  (void)self;
  (void)th;
  (void)err;
  q0[0] = 1;
  q0[1] = 0;
  return TW_OK;
}
static int osc_deriv(void *self, double t, const double *q, const double *u,
                     const double *th, double *qd, tw_err *err) {
  (void)self;
  (void)t;
  (void)err;
  qd[0] = q[1];
  double f = u != NULL ? u[0] : 0.0;
  qd[1] = -th[0] * q[0] - th[1] * q[1] + f + th[2] * q[0] * q[0] * q[0];
  return TW_OK;
}
static int osc_vjp(void *self, double t, const double *q, const double *u,
                   const double *th, const double *w, double *gq, double *gu,
                   double *gth, const bool *want, tw_err *err) {
  (void)want;
  (void)self;
  (void)t;
  (void)u;
  (void)err;
  if (gq != NULL) {
    gq[1] += w[0];
    gq[0] += w[1] * (-th[0] + 3 * th[2] * q[0] * q[0]);
    gq[1] += w[1] * -th[1];
  }
  if (gu != NULL)
    gu[0] += w[1];
  if (gth != NULL) {
    gth[0] += w[1] * -q[0];
    gth[1] += w[1] * -q[1];
    gth[2] += w[1] * q[0] * q[0] * q[0];
  }
  return TW_OK;
}
static void osc_free(void *self) { tw_free(self); }

static const tw_dyn_ops osc_ops = {.kind = "oscillator",
                                   .describe = osc_describe,
                                   .default_params = osc_defaults,
                                   .init = osc_init,
                                   .deriv = osc_deriv,
                                   .deriv_vjp = osc_vjp,
                                   .free = osc_free};

static tw_block *make_osc(tw_integrator m) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  osc *o = tw_calloc(1, sizeof *o);
  assert_int_equal(tw_sim_integrated_block(&osc_ops, o, m, "osc", &b, &err),
                   TW_OK);
  return b;
}

/* Loss: sum over steps of (x[k+1] - target_k)^2 with target sin(0.1 k), or
 * the final position squared. */
typedef struct track {
  bool final_only;
} track;

static int track_term(void *ud, int64_t k, int64_t steps, const double *xn,
                      const double *y, double *value, double *gxn, double *gy,
                      tw_err *err) {
  const track *tr = ud;
  (void)y;
  (void)err;
  double target = tr->final_only ? 0 : sin(0.1 * (double)k);
  (void)steps;
  double r = xn[0] - target;
  *value = r * r;
  if (gxn != NULL) {
    gxn[0] = 2 * r;
    gxn[1] = 0;
  }
  if (gy != NULL)
    gy[0] = gy[1] = 0;
  return TW_OK;
}

static tw_rollout_opts opts(int64_t steps, const char *schedule) {
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = steps;
  o.dt = 0.01;
  o.t0 = 0;
  assert_int_equal(tw_ckpt_spec_parse(schedule, &o.schedule, NULL), TW_OK);
  return o;
}

/* Loss as a function of theta and u, for finite differences. */
static double loss_at(tw_block *b, const tw_rollout_opts *o, const double *th,
                      const double *u, const tw_loss *l) {
  double x0[2] = {1, 0}, v = 0;
  assert_int_equal(tw_sim_forward(b, o, x0, th, u, l, NULL, NULL, &v, NULL),
                   TW_OK);
  return v;
}

static void gradients_match_finite_differences(void **state) {
  (void)state;
  const tw_integrator methods[] = {TW_EULER, TW_SEMI_IMPLICIT, TW_RK4};
  for (int mi = 0; mi < 3; mi++) {
    for (int fo = 0; fo < 2; fo++) {
      tw_block *b = make_osc(methods[mi]);
      track tr = {fo == 1};
      tw_loss l = {track_term, tr.final_only, &tr};
      tw_rollout_opts o = opts(200, "all");
      double th[3] = {4, 0.3, 0.5}, u[200], x0[2] = {1, 0};
      for (int k = 0; k < 200; k++)
        u[k] = 0.5 * cos(0.05 * k);
      double g[3], gx0[2], gu[200];
      tw_rollout_stats st;
      tw_err err;
      tw_err_init(&err);
      assert_int_equal(tw_sim_grad(b, &o, x0, th, u, &l, g, gx0, gu, &st, &err),
                       TW_OK);
      assert_true(st.loss == loss_at(b, &o, th, u, &l)); /* bitwise */
      for (int i = 0; i < 3; i++) {
        double h = cbrt(DBL_EPSILON) * fmax(1, fabs(th[i]));
        double tp[3] = {th[0], th[1], th[2]}, tm[3] = {th[0], th[1], th[2]};
        tp[i] += h;
        tm[i] -= h;
        double fd =
            (loss_at(b, &o, tp, u, &l) - loss_at(b, &o, tm, u, &l)) / (2 * h);
        assert_true(fabs(fd - g[i]) <= 1e-6 * fmax(fabs(g[i]), 1e-3));
      }
      for (int k = 0; k < 200; k += 37) {
        double h = cbrt(DBL_EPSILON);
        double up[200], um[200];
        memcpy(up, u, sizeof u);
        memcpy(um, u, sizeof u);
        up[k] += h;
        um[k] -= h;
        double fd =
            (loss_at(b, &o, th, up, &l) - loss_at(b, &o, th, um, &l)) / (2 * h);
        assert_true(fabs(fd - gu[k]) <= 1e-6 * fmax(fabs(gu[k]), 1e-3));
      }
      tw_block_free(b);
    }
  }
}

static void schedules_give_bitwise_identical_gradients(void **state) {
  (void)state;
  const char *specs[] = {"all",         "periodic:1", "periodic:7",
                         "periodic:31", "revolve:1",  "revolve:3",
                         "revolve:12",  "revolve:500"};
  tw_block *b = make_osc(TW_RK4);
  track tr = {false};
  tw_loss l = {track_term, false, &tr};
  double th[3] = {4, 0.3, 0.5}, x0[2] = {1, 0.2};
  double ref[3], refx[2];
  for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
    tw_rollout_opts o = opts(301, specs[s]);
    double g[3], gx[2];
    tw_rollout_stats st;
    assert_int_equal(
        tw_sim_grad(b, &o, x0, th, NULL, &l, g, gx, NULL, &st, NULL), TW_OK);
    assert_int_equal(st.reverse_steps, 301);
    if (s == 0) {
      memcpy(ref, g, sizeof g);
      memcpy(refx, gx, sizeof gx);
    } else {
      assert_memory_equal(ref, g, sizeof g);
      assert_memory_equal(refx, gx, sizeof gx);
    }
  }
  tw_block_free(b);
}

static void clipping_scales_to_the_norm(void **state) {
  (void)state;
  tw_block *b = make_osc(TW_SEMI_IMPLICIT);
  track tr = {true};
  tw_loss l = {track_term, true, &tr};
  double th[3] = {4, 0.3, 0.5}, x0[2] = {1, 0}, g[3], gc[3];
  tw_rollout_opts o = opts(100, "revolve:4");
  tw_rollout_stats st;
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, NULL, &l, g, NULL, NULL, &st, NULL), TW_OK);
  assert_false(st.clipped);
  o.clip_norm = st.grad_norm / 4;
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, NULL, &l, gc, NULL, NULL, &st, NULL), TW_OK);
  assert_true(st.clipped);
  double n = sqrt(gc[0] * gc[0] + gc[1] * gc[1] + gc[2] * gc[2]);
  assert_true(fabs(n - o.clip_norm) <= 1e-12 * n);
  for (int i = 0; i < 3; i++)
    assert_true(fabs(gc[i] * 4 - g[i]) <= 1e-12 * fabs(g[i]));
  tw_block_free(b);
}

static void non_finite_values_stop_the_run(void **state) {
  (void)state;
  tw_block *b = make_osc(TW_EULER);
  track tr = {true};
  tw_loss l = {track_term, true, &tr};
  /* A huge cubic term blows up within a few hundred steps. */
  double th[3] = {4, 0.3, 1e6}, x0[2] = {1, 0}, g[3] = {7, 7, 7};
  tw_rollout_opts o = opts(5000, "all");
  o.check_finite = true;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, NULL, &l, g, NULL, NULL, NULL, &err),
      TW_ENUMERIC);
  assert_non_null(strstr(err.msg, "block 'osc' (oscillator), forward of step"));
  assert_true(g[0] == 7 && g[1] == 7 && g[2] == 7); /* untouched */
  tw_err_init(&err);
  double xf[2];
  assert_int_equal(
      tw_sim_forward(b, &o, x0, th, NULL, NULL, xf, NULL, NULL, &err),
      TW_ENUMERIC);
  tw_block_free(b);
}

static void bad_arguments_get_clear_errors(void **state) {
  (void)state;
  tw_block *b = make_osc(TW_EULER);
  track tr = {true};
  tw_loss l = {track_term, true, &tr};
  double th[3] = {4, 0.3, 0.5}, x0[2] = {1, 0}, g[3];
  tw_rollout_opts o = opts(0, "all");
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, NULL, &l, g, NULL, NULL, NULL, &err),
      TW_EINVAL);
  assert_string_equal(err.msg,
                      "rollout of 'osc': the step count must be >= 1, got 0");
  o = opts(10, "all");
  o.dt = -1;
  tw_err_init(&err);
  assert_int_equal(
      tw_sim_forward(b, &o, x0, th, NULL, NULL, NULL, NULL, NULL, &err),
      TW_EINVAL);
  o = opts(10, "all");
  o.schedule.kind = TW_CKPT_REVOLVE;
  o.schedule.param = 0;
  tw_err_init(&err);
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, NULL, &l, g, NULL, NULL, NULL, &err),
      TW_EINVAL);
  o = opts(10, "all");
  tw_err_init(&err);
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, NULL, NULL, g, NULL, NULL, NULL, &err),
      TW_EINVAL);
  assert_string_equal(err.msg, "gradient of 'osc': no loss given");
  tw_block_free(b);
  tw_integrator m;
  tw_err_init(&err);
  assert_int_equal(tw_integrator_parse("leapfrog", &m, &err), TW_EINVAL);
  assert_string_equal(
      err.msg, "unknown integrator 'leapfrog' (euler, semi-implicit, rk4)");
  assert_int_equal(tw_integrator_parse("rk4", &m, NULL), TW_OK);
  assert_string_equal(tw_integrator_name(m), "rk4");
}

static void rk4_is_fourth_order(void **state) {
  (void)state;
  /* Linear oscillator (nl = 0, c = 0): x(t) = cos(2t). Halving dt cuts the
   * error by ~16 for RK4, ~2 for Euler. */
  double th[3] = {4, 0, 0}, x0[2] = {1, 0};
  double err4[2], err1[2];
  for (int r = 0; r < 2; r++) {
    double dt = r == 0 ? 0.02 : 0.01;
    int64_t steps = r == 0 ? 100 : 200;
    tw_rollout_opts o = opts(steps, "all");
    o.dt = dt;
    double xf[2];
    tw_block *b = make_osc(TW_RK4);
    assert_int_equal(
        tw_sim_forward(b, &o, x0, th, NULL, NULL, xf, NULL, NULL, NULL), TW_OK);
    err4[r] = fabs(xf[0] - cos(4.0));
    tw_block_free(b);
    b = make_osc(TW_EULER);
    assert_int_equal(
        tw_sim_forward(b, &o, x0, th, NULL, NULL, xf, NULL, NULL, NULL), TW_OK);
    err1[r] = fabs(xf[0] - cos(4.0));
    tw_block_free(b);
  }
  assert_true(err4[0] / err4[1] > 14 && err4[0] / err4[1] < 18);
  assert_true(err1[0] / err1[1] > 1.8 && err1[0] / err1[1] < 2.2);
}

static int grad_round(void) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  osc *s = tw_calloc(1, sizeof *s);
  if (s == NULL)
    return TW_ENOMEM;
  int rc = tw_sim_integrated_block(&osc_ops, s, TW_RK4, "osc", &b, &err);
  if (rc != TW_OK)
    return rc;
  track tr = {false};
  tw_loss l = {track_term, false, &tr};
  double th[3] = {4, 0.3, 0.5}, x0[2] = {1, 0}, g[3];
  tw_rollout_opts o = opts(20, "revolve:3");
  rc = tw_sim_grad(b, &o, x0, th, NULL, &l, g, NULL, NULL, NULL, &err);
  tw_block_free(b);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(grad_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(gradients_match_finite_differences),
      TW_TEST(schedules_give_bitwise_identical_gradients),
      TW_TEST(clipping_scales_to_the_norm),
      TW_TEST(non_finite_values_stop_the_run),
      TW_TEST(bad_arguments_get_clear_errors),
      TW_TEST(rk4_is_fourth_order),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
