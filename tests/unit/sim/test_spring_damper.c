/*
 * test_spring_damper.c - the builtin damped oscillator: description and
 * defaults, bad parameters, trajectories against the closed forms (the
 * undamped cosine to each integrator's order, the exact invariant of
 * semi-implicit Euler, the damped solution, the steady state under a
 * constant force), the step's VJP and a rollout's gradient against central
 * differences for every parameter, input and state component, the same
 * through a graph that closes a loop through the outputs, and allocation
 * failures.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dyn_check.h"
#include "twin/graph.h"

enum { NX = 2, NU = 2, NTH = 5 };

static const tw_integrator methods[3] = {TW_EULER, TW_SEMI_IMPLICIT, TW_RK4};

static tw_block *make(tw_integrator m, const char *name) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_spring_damper_block(m, name, &b, &err), TW_OK);
  return b;
}

static void step(tw_block *b, double dt, const double *x, const double *u,
                 const double *th, double *xn, double *y) {
  tw_err err;
  tw_err_init(&err);
  tw_step_args a = {0, dt, 0, x, u, th, xn, y};
  assert_int_equal(tw_block_step(b, &a, &err), TW_OK);
}

/* Runs n steps from (x0, v0) with constant inputs u (may be NULL); the
 * trajectory x[0..n] into xs and vs (n + 1 values each, may be NULL). */
static void run(tw_block *b, double dt, const double *th, const double *u,
                int n, double *xs, double *vs) {
  double x[NX] = {th[3], th[4]}, xn[NX];
  for (int k = 0; k <= n; k++) {
    if (xs != NULL)
      xs[k] = x[0];
    if (vs != NULL)
      vs[k] = x[1];
    if (k == n)
      break;
    step(b, dt, x, u, th, xn, NULL);
    memcpy(x, xn, sizeof x);
  }
}

static void test_describe(void **state) {
  (void)state;
  tw_block *b = make(TW_SEMI_IMPLICIT, "plant");
  const tw_block_desc *d = tw_block_describe(b);
  assert_string_equal(tw_block_name(b), "plant");
  assert_string_equal(d->kind, "spring_damper");
  assert_int_equal(d->nx, NX);
  assert_int_equal(d->nu, NU);
  assert_int_equal(d->ny, NX);
  assert_int_equal(d->ntheta, NTH);
  assert_true(d->differentiable);
  assert_true(d->feedthrough_none);
  static const char *const sn[] = {"x", "v"}, *const su[] = {"m", "m/s"};
  static const char *const in[] = {"F", "F_extra"};
  static const char *const pn[] = {"m", "k", "c", "x0", "v0"};
  static const char *const pu[] = {"kg", "N/m", "N*s/m", "m", "m/s"};
  assert_int_equal(d->nstate, 2);
  assert_int_equal(d->noutputs, 2);
  assert_int_equal(d->ninputs, 2);
  assert_int_equal(d->nparams, 5);
  for (int i = 0; i < 2; i++) {
    assert_string_equal(d->state[i].name, sn[i]);
    assert_string_equal(d->state[i].unit, su[i]);
    assert_string_equal(d->outputs[i].name, sn[i]);
    assert_string_equal(d->outputs[i].unit, su[i]);
    assert_string_equal(d->inputs[i].name, in[i]);
    assert_string_equal(d->inputs[i].unit, "N");
  }
  for (int i = 0; i < 5; i++) {
    assert_string_equal(d->params[i].name, pn[i]);
    assert_string_equal(d->params[i].unit, pu[i]);
    assert_int_equal(d->params[i].size, 1);
  }
  double th[NTH], x0[NX] = {7, 7};
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_block_default_params(b, th, &err), TW_OK);
  assert_true(th[0] == 1 && th[1] == 1 && th[2] == 0.1 && th[3] == 1 &&
              th[4] == 0);
  assert_int_equal(tw_block_init(b, th, x0, &err), TW_OK);
  assert_true(x0[0] == 1 && x0[1] == 0);
  th[3] = -0.25;
  th[4] = 3.5;
  assert_int_equal(tw_block_init(b, th, x0, &err), TW_OK);
  assert_true(x0[0] == -0.25 && x0[1] == 3.5);
  /* Outputs are the state at the start of the step, whatever the inputs. */
  double u[NU] = {100, -40}, xn[NX], y[NX];
  step(b, 0.1, x0, u, th, xn, y);
  assert_true(y[0] == x0[0] && y[1] == x0[1]);
  tw_block_free(b);

  b = make(TW_RK4, NULL);
  assert_string_equal(tw_block_name(b), "spring_damper");
  tw_block_free(b);
}

static void test_bad_parameters(void **state) {
  (void)state;
  tw_block *b = make(TW_SEMI_IMPLICIT, "plant");
  double th[NTH], x0[NX] = {7, 7};
  static const double masses[] = {0, -1.5, NAN, INFINITY, -0.0};
  static const char *const shown[] = {"m = 0 ", "m = -1.5 ", "m = nan ",
                                      "m = inf ", "m = -0 "};
  for (size_t i = 0; i < sizeof masses / sizeof masses[0]; i++) {
    (void)tw_block_default_params(b, th, NULL);
    th[0] = masses[i];
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_block_init(b, th, x0, &err), TW_EINVAL);
    assert_non_null(strstr(err.msg, "spring_damper 'plant': mass"));
    if (strstr(err.msg, shown[i]) == NULL)
      print_error("message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, shown[i]));
    assert_true(x0[0] == 7 && x0[1] == 7); /* untouched */
    /* Stepping with such a mass (an x[0] from elsewhere) fails too. */
    double xn[NX];
    tw_err_init(&err);
    tw_step_args a = {0, 0.01, 0, x0, NULL, th, xn, NULL};
    assert_int_equal(tw_block_step(b, &a, &err), TW_EINVAL);
    assert_non_null(strstr(err.msg, "'plant': mass"));
    tw_vjp_args va = {0, 0.01, 0, x0, NULL, th, x0, NULL, xn, NULL, NULL, NULL};
    tw_err_init(&err);
    assert_int_equal(tw_block_step_vjp(b, &va, &err), TW_EINVAL);
  }
  for (int p = 1; p < NTH; p++) {
    (void)tw_block_default_params(b, th, NULL);
    th[p] = p % 2 ? NAN : -INFINITY;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_block_init(b, th, x0, &err), TW_EINVAL);
    static const char *const pn[] = {"m", "k", "c", "x0", "v0"};
    char want[64];
    (void)snprintf(want, sizeof want, "parameter %s = %s is not finite", pn[p],
                   p % 2 ? "nan" : "-inf");
    if (strstr(err.msg, want) == NULL)
      print_error("message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, want));
  }
  tw_block_free(b);

  tw_block *bad = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_sim_spring_damper_block((tw_integrator)7, "p", &bad, &err), TW_EINVAL);
  assert_null(bad);
  assert_non_null(strstr(err.msg, "unknown method 7"));
}

/* c = 0, F = 0: x = x0 cos(w t) + v0 / w sin(w t), w = sqrt(k / m). The
 * largest error over [0, 2] s at dt and dt / 2 shrinks by 2 for the
 * first-order schemes and by 16 for RK4; semi-implicit Euler keeps
 * (k/m) x^2 + v^2 - dt (k/m) x v exactly (it is symplectic), so the energy
 * stays within O(dt) of its start forever, where explicit Euler's grows by
 * (1 + dt^2 k/m) a step. */
static void test_undamped_closed_form(void **state) {
  (void)state;
  const double th[NTH] = {2, 8, 0, 0.7, -0.4}; /* w = 2 */
  const double w = 2, x0 = th[3], v0 = th[4];
  enum { N = 4000 };
  static double xs[2 * N + 1], vs[2 * N + 1];
  static const double order[3] = {2, 2, 16};
  static const double err_max[3] = {0.05, 0.02, 1e-9};
  for (int mi = 0; mi < 3; mi++) {
    tw_block *b = make(methods[mi], NULL);
    double e[2];
    for (int r = 0; r < 2; r++) {
      int n = 200 << r; /* dt = 0.01, 0.005 over 2 s */
      double dt = 2.0 / n;
      run(b, dt, th, NULL, n, xs, vs);
      e[r] = 0;
      for (int k = 0; k <= n; k++) {
        double t = k * dt;
        double want = x0 * cos(w * t) + v0 / w * sin(w * t);
        e[r] = fmax(e[r], fabs(xs[k] - want));
      }
    }
    double ratio = e[0] / e[1];
    if (!(fabs(ratio - order[mi]) <= 0.1 * order[mi]) || !(e[1] < err_max[mi]))
      print_error("%s: errors %.3g, %.3g (ratio %.3f)\n",
                  tw_integrator_name(methods[mi]), e[0], e[1], ratio);
    assert_true(fabs(ratio - order[mi]) <= 0.1 * order[mi]);
    assert_true(e[1] < err_max[mi]);

    /* Energy over 2N steps of dt = 0.01 (about 13 periods). */
    const double dt = 0.01, w2 = th[1] / th[0];
    run(b, dt, th, NULL, 2 * N, xs, vs);
    double E0 = 0.5 * th[0] * v0 * v0 + 0.5 * th[1] * x0 * x0;
    double I0 = w2 * x0 * x0 + v0 * v0 - dt * w2 * x0 * v0;
    double emin = E0, emax = E0;
    for (int k = 0; k <= 2 * N; k++) {
      double E = 0.5 * th[0] * vs[k] * vs[k] + 0.5 * th[1] * xs[k] * xs[k];
      emin = fmin(emin, E);
      emax = fmax(emax, E);
      if (methods[mi] == TW_SEMI_IMPLICIT) {
        double I = w2 * xs[k] * xs[k] + vs[k] * vs[k] - dt * w2 * xs[k] * vs[k];
        dyn_assert_close(I, I0, 1e-12 * I0);
      }
    }
    if (methods[mi] == TW_EULER) {
      double grow = pow(1 + dt * dt * w2, 2 * N);
      dyn_assert_close(emax / E0, grow, 1e-9 * grow);
    } else {
      double tol = methods[mi] == TW_RK4 ? 1e-6 : 2 * dt * w;
      assert_true(emax <= E0 * (1 + tol) && emin >= E0 * (1 - tol));
    }
    tw_block_free(b);
  }
}

/* c > 0: the underdamped solution, against RK4 at a small step. */
static void test_damped_closed_form(void **state) {
  (void)state;
  const double m = 2, k = 8, c = 0.4, x0 = 0.5, v0 = -1;
  const double th[NTH] = {m, k, c, x0, v0};
  const double w0 = sqrt(k / m), z = c / (2 * sqrt(k * m));
  const double wd = w0 * sqrt(1 - z * z), s = z * w0;
  const double B = (v0 + s * x0) / wd;
  enum { N = 3000 };
  static double xs[N + 1], vs[N + 1];
  tw_block *b = make(TW_RK4, NULL);
  const double dt = 0.001;
  run(b, dt, th, NULL, N, xs, vs);
  for (int j = 0; j <= N; j++) {
    double t = j * dt, e = exp(-s * t), C = cos(wd * t), S = sin(wd * t);
    double x = e * (x0 * C + B * S);
    double v = -s * x + e * wd * (-x0 * S + B * C);
    dyn_assert_close(xs[j], x, 1e-11);
    dyn_assert_close(vs[j], v, 1e-11);
  }
  assert_true(fabs(xs[N]) < 0.5 && fabs(vs[N]) > 0.01); /* still moving */
  tw_block_free(b);
}

/* A constant force: x -> F / k, v -> 0, with F split over both inputs or
 * on either alone; no inputs (u NULL) is no force. */
static void test_steady_state(void **state) {
  (void)state;
  const double th[NTH] = {1, 4, 1.5, -0.3, 2};
  static const double forces[3][NU] = {{2, 1}, {3, 0}, {0, 3}};
  static double xs[20001], vs[20001];
  for (int mi = 0; mi < 3; mi++) {
    tw_block *b = make(methods[mi], NULL);
    for (int f = 0; f < 3; f++) {
      run(b, 0.002, th, forces[f], 20000, xs, vs);
      dyn_assert_close(xs[20000], 0.75, 1e-9);
      dyn_assert_close(vs[20000], 0, 1e-9);
    }
    run(b, 0.002, th, NULL, 20000, xs, vs);
    dyn_assert_close(xs[20000], 0, 1e-9);
    tw_block_free(b);
  }
}

/* Central differences at step h carry a truncation error O(h^2) and a
 * rounding error of about eps |L| / h: with h = eps^(1/3) |z| both are
 * near eps^(2/3), so the gradient must match to 1e-6 relative, above the
 * rounding floor of the loss L. */
static bool fd_agrees(double grad, double fd, double L, double h) {
  return fabs(grad - fd) <= 1e-6 * fabs(fd) + 16 * DBL_EPSILON * fabs(L) / h;
}

/* L = gxn . x_next + gy . y for one step, the scalar whose gradient the
 * step's VJP gives. */
static double step_loss(tw_block *b, double dt, const double *x,
                        const double *u, const double *th, const double *gxn,
                        const double *gy) {
  double xn[NX], y[NX];
  step(b, dt, x, u, th, xn, y);
  return gxn[0] * xn[0] + gxn[1] * xn[1] + gy[0] * y[0] + gy[1] * y[1];
}

static void test_step_vjp(void **state) {
  (void)state;
  const double h0 = cbrt(DBL_EPSILON);
  for (int mi = 0; mi < 3; mi++) {
    tw_block *b = make(methods[mi], NULL);
    for (int trial = 0; trial < 20; trial++) {
      double z[NX + NU + NTH], gxn[NX], gy[NX];
      for (int i = 0; i < NX + NU; i++)
        z[i] = dyn_uniform(-2, 2);
      double *x = z, *u = z + NX, *th = z + NX + NU;
      th[0] = dyn_uniform(0.3, 3);
      th[1] = dyn_uniform(0.1, 20);
      th[2] = dyn_uniform(0, 2);
      th[3] = dyn_uniform(-1, 1);
      th[4] = dyn_uniform(-1, 1);
      for (int i = 0; i < NX; i++) {
        gxn[i] = dyn_uniform(-1, 1);
        gy[i] = dyn_uniform(-1, 1);
      }
      double dt = dyn_uniform(0.01, 0.1);
      double gx[NX] = {9, 9}, gu[NU] = {9, 9},
             gth[NTH] = {0.5, 0.5, 0.5, 0.5, 0.5};
      tw_err err;
      tw_err_init(&err);
      tw_vjp_args a = {0, dt, 0, x, u, th, gxn, gy, gx, gu, gth, NULL};
      assert_int_equal(tw_block_step_vjp(b, &a, &err), TW_OK);
      double g[NX + NU + NTH];
      memcpy(g, gx, sizeof gx);
      memcpy(g + NX, gu, sizeof gu);
      for (int i = 0; i < NTH; i++)
        g[NX + NU + i] = gth[i] - 0.5; /* accumulated onto 0.5 */
      for (int i = 0; i < NX + NU + NTH; i++) {
        double keep = z[i], h = h0 * fmax(1, fabs(keep));
        z[i] = keep + h;
        double lp = step_loss(b, dt, x, u, th, gxn, gy);
        z[i] = keep - h;
        double lm = step_loss(b, dt, x, u, th, gxn, gy);
        z[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (!(fabs(fd - g[i]) <= 1e-8 * fmax(1, fabs(fd))))
          print_error("%s trial %d, component %d: vjp %.17g, fd %.17g\n",
                      tw_integrator_name(methods[mi]), trial, i, g[i], fd);
        assert_true(fabs(fd - g[i]) <= 1e-8 * fmax(1, fabs(fd)));
      }
      /* x0 and v0 do not enter the step. */
      assert_true(g[NX + NU + 3] == 0 && g[NX + NU + 4] == 0);

      /* u NULL is zero force: the same gx, and gu is written. */
      double gx2[NX], gu2[NU] = {9, 9}, u0[NU] = {0, 0}, gx3[NX];
      tw_vjp_args an = {0, dt, 0, x, NULL, th, gxn, gy, gx2, gu2, NULL, NULL};
      assert_int_equal(tw_block_step_vjp(b, &an, &err), TW_OK);
      tw_vjp_args a0 = {0, dt, 0, x, u0, th, gxn, gy, gx3, NULL, NULL, NULL};
      assert_int_equal(tw_block_step_vjp(b, &a0, &err), TW_OK);
      assert_memory_equal(gx2, gx3, sizeof gx2);
      assert_true(gu2[0] == gu2[1] && gu2[0] == gu[0]);

      /* want: only k; the other parameter gradients stay untouched. */
      bool want[NTH] = {false, true, false, false, false};
      double gw[NTH] = {0, 0, 0, 0, 0}, gall[NTH] = {0, 0, 0, 0, 0};
      tw_vjp_args aw = {0, dt, 0, x, u, th, gxn, gy, NULL, NULL, gw, want};
      assert_int_equal(tw_block_step_vjp(b, &aw, &err), TW_OK);
      aw.gtheta = gall;
      aw.want = NULL;
      assert_int_equal(tw_block_step_vjp(b, &aw, &err), TW_OK);
      assert_true(gw[0] == 0 && gw[2] == 0 && gw[1] == gall[1]);
      assert_true(gall[0] != 0 && gall[2] != 0);
    }
    tw_block_free(b);
  }
}

/* A tracking loss over a rollout: sum_k (x[k+1] - r_k)^2 / 2 + v[k]^2 / 4
 * (v[k] from the outputs). */
static int track(void *ud, int64_t k, int64_t steps, const double *xn,
                 const double *y, double *value, double *gxn, double *gy,
                 tw_err *err) {
  (void)ud, (void)steps, (void)err;
  double r = 0.3 * sin(0.05 * (double)k), d = xn[0] - r;
  *value = 0.5 * d * d + 0.25 * y[1] * y[1];
  if (gxn != NULL) {
    gxn[0] = d;
    gy[1] = 0.5 * y[1];
  }
  return TW_OK;
}

enum { T = 150 };

static tw_rollout_opts ropts(const char *schedule) {
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = T;
  o.dt = 0.02;
  o.check_finite = true;
  assert_int_equal(tw_ckpt_spec_parse(schedule, &o.schedule, NULL), TW_OK);
  return o;
}

/* The loss of a run from init(theta), as a calibration sees it. */
static double rollout_loss(tw_block *b, const double *th, const double *u) {
  tw_rollout_opts o = ropts("all");
  tw_loss loss = {track, false, NULL};
  double x0[NX], L = 0;
  assert_int_equal(tw_block_init(b, th, x0, NULL), TW_OK);
  assert_int_equal(
      tw_sim_forward(b, &o, x0, th, u, &loss, NULL, NULL, &L, NULL), TW_OK);
  return L;
}

/* tw_sim_grad against central differences of the loss for every
 * parameter (x0 and v0 through gx0, init being the identity on them),
 * every input of a few steps, under every integrator and schedule. */
static void test_rollout_gradient(void **state) {
  (void)state;
  static double u[T * NU], gu[T * NU];
  for (int i = 0; i < T * NU; i++)
    u[i] = dyn_uniform(-1, 1);
  for (int mi = 0; mi < 3; mi++) {
    tw_block *b = make(methods[mi], NULL);
    double th[NTH] = {1.3, 5, 0.3, 0.8, -0.2}, x0[NX], gth[NTH], gx0[NX];
    assert_int_equal(tw_block_init(b, th, x0, NULL), TW_OK);
    tw_loss loss = {track, false, NULL};
    tw_rollout_opts o = ropts("all");
    tw_rollout_stats st;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(
        tw_sim_grad(b, &o, x0, th, u, &loss, gth, gx0, gu, &st, &err), TW_OK);
    dyn_assert_close(st.loss, rollout_loss(b, th, u), 1e-14 * st.loss);
    assert_true(gth[3] == 0 && gth[4] == 0);
    double total[NTH];
    memcpy(total, gth, sizeof total);
    total[3] += gx0[0];
    total[4] += gx0[1];
    for (int i = 0; i < NTH; i++) {
      double keep = th[i], h = cbrt(DBL_EPSILON) * fmax(1, fabs(keep));
      th[i] = keep + h;
      double lp = rollout_loss(b, th, u);
      th[i] = keep - h;
      double lm = rollout_loss(b, th, u);
      th[i] = keep;
      double fd = (lp - lm) / (2 * h);
      if (!fd_agrees(total[i], fd, st.loss, h))
        print_error("%s: parameter %d: grad %.12g, fd %.12g\n",
                    tw_integrator_name(methods[mi]), i, total[i], fd);
      assert_true(fd_agrees(total[i], fd, st.loss, h));
      assert_true(fabs(total[i]) > 1e-6); /* each one matters */
    }
    static const int rows[] = {0, 1, 70, T - 2, T - 1};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
      for (int j = 0; j < NU; j++) {
        size_t i = (size_t)rows[r] * NU + (size_t)j;
        double keep = u[i], h = cbrt(DBL_EPSILON) * fmax(1, fabs(keep));
        u[i] = keep + h;
        double lp = rollout_loss(b, th, u);
        u[i] = keep - h;
        double lm = rollout_loss(b, th, u);
        u[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (!fd_agrees(gu[i], fd, st.loss, h))
          print_error("%s: u[%zu]: grad %.12g, fd %.12g\n",
                      tw_integrator_name(methods[mi]), i, gu[i], fd);
        assert_true(fd_agrees(gu[i], fd, st.loss, h));
      }
      /* F and F_extra enter as their sum. */
      assert_true(gu[(size_t)rows[r] * NU] == gu[(size_t)rows[r] * NU + 1]);
    }
    /* The same bits under the other schedules. */
    static const char *const sched[] = {"periodic:7", "revolve:4"};
    for (int s = 0; s < 2; s++) {
      double g2[NTH], gx2[NX];
      tw_rollout_opts o2 = ropts(sched[s]);
      assert_int_equal(
          tw_sim_grad(b, &o2, x0, th, u, &loss, g2, gx2, NULL, NULL, &err),
          TW_OK);
      assert_memory_equal(g2, gth, sizeof g2);
      assert_memory_equal(gx2, gx0, sizeof gx2);
    }
    tw_block_free(b);
  }
}

/* --- Through a graph ------------------------------------------------- */

/* plant driven by the graph input F, with fb feeding k_fb * v back into
 * F_extra: a loop closed through an output that does not feed through. */
static const char graph_fmt[] =
    "{\"graph\": 1, \"dt\": 0.02, \"inputs\": {\"F\": {\"unit\": \"N\"}},"
    " \"blocks\": {"
    "  \"plant\": {\"model\": \"builtin:spring_damper\"%s,"
    "   \"params\": {\"m\": %s, \"k\": 4, \"c\": 0.2, \"x0\": 0.8,"
    "                \"v0\": 0.3}},"
    "  \"fb\": {\"model\": \"builtin:gain\", \"params\": {\"k\": -0.5}}},"
    " \"connections\": [{\"from\": \"inputs.F\", \"to\": \"plant.F\"},"
    "   {\"from\": \"plant.v\", \"to\": \"fb.u\"},"
    "   {\"from\": \"fb.y\", \"to\": \"plant.F_extra\"}],"
    " \"outputs\": {\"x\": \"plant.x\", \"v\": \"plant.v\"}}";

static int graph_parse(const char *integrator, const char *mass, tw_buf *diags,
                       tw_graph **g, tw_err *err) {
  char opt[64] = "", text[1024];
  if (integrator != NULL)
    (void)snprintf(opt, sizeof opt, ", \"integrator\": \"%s\"", integrator);
  (void)snprintf(text, sizeof text, graph_fmt, opt, mass);
  return tw_graph_parse(text, strlen(text), "sd.json", ".", NULL, diags, g,
                        err);
}

/* L = sum_k x[k]^2 / 2 + v[k]^2 / 8 over the graph's outputs. */
static int out_loss(void *ud, int64_t k, int64_t steps, const double *xn,
                    const double *y, double *value, double *gxn, double *gy,
                    tw_err *err) {
  (void)ud, (void)k, (void)steps, (void)xn, (void)gxn, (void)err;
  *value = 0.5 * y[0] * y[0] + 0.125 * y[1] * y[1];
  if (gy != NULL) {
    gy[0] = y[0];
    gy[1] = 0.25 * y[1];
  }
  return TW_OK;
}

enum { GT = 60 };

static double graph_loss(tw_graph *g, const double *in) {
  double out[GT * 2], L = 0, v;
  assert_int_equal(tw_graph_run(g, GT, in, out, NULL), TW_OK);
  for (int k = 0; k < GT; k++) {
    (void)out_loss(NULL, k, GT, NULL, out + 2 * k, &v, NULL, NULL, NULL);
    L += v;
  }
  return L;
}

static void test_graph(void **state) {
  (void)state;
  static const char *const integ[] = {NULL, "euler", "rk4"};
  static const tw_integrator im[] = {TW_SEMI_IMPLICIT, TW_EULER, TW_RK4};
  double in[GT];
  for (int k = 0; k < GT; k++)
    in[k] = cos(0.2 * k);
  for (int ii = 0; ii < 3; ii++) {
    tw_graph *g = NULL;
    tw_buf diags;
    tw_buf_init(&diags);
    tw_err err;
    tw_err_init(&err);
    int rc = graph_parse(integ[ii], "1.5", &diags, &g, &err);
    if (rc != TW_OK)
      print_error("%s\n%s\n", err.msg, diags.data != NULL ? diags.data : "");
    assert_int_equal(rc, TW_OK);
    tw_buf_fini(&diags);

    /* The loop is the block from (x0, v0) driven by F and by
     * F_extra = -0.5 v[k], held over the step: the same operations, so the
     * same bits. */
    double out[GT * 2];
    assert_int_equal(tw_graph_run(g, GT, in, out, &err), TW_OK);
    tw_block *b = make(im[ii], NULL);
    double th[NTH] = {1.5, 4, 0.2, 0.8, 0.3}, x[NX] = {0.8, 0.3}, xn[NX];
    for (int k = 0; k < GT; k++) {
      assert_true(out[2 * k] == x[0] && out[2 * k + 1] == x[1]);
      double u[NU] = {in[k], -0.5 * x[1]};
      step(b, 0.02, x, u, th, xn, NULL);
      memcpy(x, xn, sizeof x);
    }
    tw_block_free(b);

    /* tw_graph_grad against central differences. */
    size_t nth = tw_graph_nparams(g);
    assert_int_equal(nth, NTH + 1);
    tw_loss loss = {out_loss, false, NULL};
    double grad[NTH + 1], L;
    assert_int_equal(
        tw_graph_grad(g, GT, in, &loss, NULL, 0, "revolve:5", &L, grad, &err),
        TW_OK);
    dyn_assert_close(L, graph_loss(g, in), 1e-13 * L);
    double p[NTH + 1];
    tw_graph_get_params(g, p);
    for (size_t i = 0; i < nth; i++) {
      const char *name = NULL;
      for (size_t q = 0; q < tw_graph_nparam_ports(g); q++) {
        size_t off;
        const char *n = tw_graph_param_name(g, q, NULL, &off);
        if (off == i)
          name = n;
      }
      assert_non_null(name);
      double keep = p[i], h = cbrt(DBL_EPSILON) * fmax(1, fabs(keep));
      p[i] = keep + h;
      tw_graph_set_params(g, p);
      double lp = graph_loss(g, in);
      p[i] = keep - h;
      tw_graph_set_params(g, p);
      double lm = graph_loss(g, in);
      p[i] = keep;
      tw_graph_set_params(g, p);
      double fd = (lp - lm) / (2 * h);
      assert_true(fabs(fd) > 1e-4); /* every parameter moves the loss */
      if (!fd_agrees(grad[i], fd, L, h))
        print_error("%s: grad %.12g, fd %.12g\n", name, grad[i], fd);
      assert_true(fd_agrees(grad[i], fd, L, h));
    }
    tw_graph_free(g);
  }
}

static void test_graph_errors(void **state) {
  (void)state;
  tw_graph *g = NULL;
  tw_buf diags;
  tw_buf_init(&diags);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(graph_parse("leapfrog", "1", &diags, &g, &err),
                   TW_EVALIDATE);
  assert_null(g);
  assert_non_null(diags.data);
  assert_non_null(strstr(diags.data, "error: block 'plant': integrator must "
                                     "be euler, semi-implicit or rk4"));
  tw_buf_fini(&diags);

  /* A graph with a bad mass loads (the value is a parameter, which can be
   * set later) and refuses to run, naming the block and the value. */
  tw_err_init(&err);
  assert_int_equal(graph_parse(NULL, "-2", NULL, &g, &err), TW_OK);
  double out[4];
  assert_int_equal(tw_graph_run(g, 2, NULL, out, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "spring_damper 'plant': mass m = -2 "));
  double p[NTH + 1];
  tw_graph_get_params(g, p);
  p[0] = 1;
  tw_graph_set_params(g, p);
  tw_err_init(&err);
  assert_int_equal(tw_graph_run(g, 2, NULL, out, &err), TW_OK);
  assert_true(out[0] == 0.8 && out[1] == 0.3);
  tw_graph_free(g);
}

/* --- Allocation failures --------------------------------------------- */

static int block_round(void) {
  tw_err err;
  tw_err_init(&err);
  for (int mi = 0; mi < 3; mi++) {
    tw_block *b = NULL;
    int rc = tw_sim_spring_damper_block(methods[mi], "plant", &b, &err);
    if (rc != TW_OK) {
      assert_int_equal(rc, TW_ENOMEM);
      assert_null(b);
      return rc;
    }
    tw_block_free(b);
  }
  return TW_OK;
}

static int grad_round(void) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sim_spring_damper_block(TW_RK4, NULL, &b, &err);
  if (rc != TW_OK)
    return rc;
  double th[NTH] = {1, 2, 0.1, 1, 0}, x0[NX] = {1, 0}, gth[NTH], gx0[NX];
  tw_loss loss = {track, false, NULL};
  tw_rollout_opts o = ropts("revolve:3");
  rc = tw_sim_grad(b, &o, x0, th, NULL, &loss, gth, gx0, NULL, NULL, &err);
  tw_block_free(b);
  return rc;
}

static int graph_round(void) {
  tw_graph *g = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = graph_parse("rk4", "1", NULL, &g, &err);
  if (rc != TW_OK)
    return rc;
  double out[8], grad[NTH + 1];
  tw_loss loss = {out_loss, false, NULL};
  rc = tw_graph_run(g, 4, NULL, out, &err);
  if (rc == TW_OK)
    rc = tw_graph_grad(g, 4, NULL, &loss, NULL, 0, "all", NULL, grad, &err);
  tw_graph_free(g);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(block_round());
  TW_TEST_ALLOC_FAILURES(grad_round());
  TW_TEST_ALLOC_FAILURES(graph_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_describe),
      TW_TEST(test_bad_parameters),
      TW_TEST(test_undamped_closed_form),
      TW_TEST(test_damped_closed_form),
      TW_TEST(test_steady_state),
      TW_TEST(test_step_vjp),
      TW_TEST(test_rollout_gradient),
      TW_TEST(test_graph),
      TW_TEST(test_graph_errors),
      TW_TEST(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
