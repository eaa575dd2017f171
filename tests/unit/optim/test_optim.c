/*
 * test_optim.c - the optimisers on real problems with exact gradients:
 * the extended Rosenbrock function (n = 100) unbounded and in the box
 * [-2, 0.8]^n, convex quadratics; every stop reason, the progress
 * callback, the learning-rate schedules, Adam's bias correction and
 * AdamW's decoupled decay, divergence and callback errors for all three
 * methods, bad options, and allocation failures.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tw_test.h"
#include "twin/optim.h"

#define N 100

#define assert_near(a, b, tol)                                                 \
  do {                                                                         \
    double a_ = (a), b_ = (b);                                                 \
    if (!(fabs(a_ - b_) <= (tol)))                                             \
      print_error("%.17g is not within %g of %.17g\n", a_, (double)(tol), b_); \
    assert_true(fabs(a_ - b_) <= (tol));                                       \
  } while (0)

/* --- Problems --------------------------------------------------------------
 */

/* Extended Rosenbrock (Moré, Garbow, Hillstrom): n/2 independent pairs
 * 100 (x2 - x1^2)^2 + (1 - x1)^2. Checks every x it sees against the
 * bounds, if any. */
typedef struct rosen {
  const double *lo, *hi;
  uint64_t evals;
  uint64_t out_of_bounds;
} rosen;

static int rosen_fn(void *ud, const double *x, double *f, double *g,
                    tw_err *err) {
  (void)err;
  rosen *p = ud;
  p->evals++;
  double s = 0;
  for (size_t j = 0; j < N; j += 2) {
    double a = x[j + 1] - x[j] * x[j], b = 1 - x[j];
    s += 100 * a * a + b * b;
    g[j] = -400 * x[j] * a - 2 * b;
    g[j + 1] = 200 * a;
  }
  for (size_t i = 0; i < N && p->lo != NULL; i++)
    if (x[i] < p->lo[i] || x[i] > p->hi[i])
      p->out_of_bounds++;
  *f = s;
  return TW_OK;
}

static void rosen_start(double *x) {
  for (size_t i = 0; i < N; i += 2) {
    x[i] = -1.2;
    x[i + 1] = 1;
  }
}

/* f = 1/2 sum a_i (x_i - c_i)^2 with a_i = 1 + i (mod 10), c_i = 1 + i/4. */
#define QN 8
static double qa(size_t i) { return 1.0 + (double)(i % 10); }
static double qc(size_t i) { return 1.0 + (double)i / 4; }

static int quad_fn(void *ud, const double *x, double *f, double *g,
                   tw_err *err) {
  (void)ud;
  (void)err;
  double s = 0;
  for (size_t i = 0; i < QN; i++) {
    double d = x[i] - qc(i);
    s += 0.5 * qa(i) * d * d;
    g[i] = qa(i) * d;
  }
  *f = s;
  return TW_OK;
}

static tw_optim_result run(size_t n, double *x, tw_optim_fn fn, void *ud,
                           const tw_optim_opts *o, int want_rc) {
  tw_optim_result res;
  memset(&res, 0, sizeof res);
  tw_err err;
  tw_err_init(&err);
  int rc = tw_optim_minimize(n, x, fn, ud, o, &res, &err);
  if (rc != want_rc)
    print_error("%s: rc %s, want %s: %s\n", tw_optim_method_name(o->method),
                tw_err_name(rc), tw_err_name(want_rc), tw_err_msg(&err));
  assert_int_equal(rc, want_rc);
  return res;
}

/* --- Rosenbrock ------------------------------------------------------------
 */

static void lbfgs_rosenbrock(void **state) {
  (void)state;
  double x[N];
  rosen_start(x);
  rosen p = {0};
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  o.gtol = 1e-9;
  o.ftol_rel = 0;
  tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
  print_message("lbfgs rosenbrock: f %.3g after %llu evaluations (%s)\n",
                r.loss, (unsigned long long)r.evaluations,
                tw_optim_stop_name(r.reason));
  assert_true(r.reason == TW_OPTIM_STOP_GTOL ||
              r.reason == TW_OPTIM_STOP_CONVERGED);
  assert_true(r.loss < 1e-10);
  assert_int_equal(r.evaluations, p.evals);
  for (size_t i = 0; i < N; i++)
    assert_true(fabs(x[i] - 1) < 1e-5);
}

/* Adam with a cosine schedule and warm-up on the same problem. Its budget
 * is 20000 iterations and the threshold it must reach is 1e-10. */
#define ADAM_ROSEN_ITERS 20000
#define ADAM_ROSEN_LOSS 1e-10

static void adam_rosen_opts(tw_optim_opts *o) {
  tw_optim_opts_init(o, TW_OPTIM_ADAM);
  o->lr = 1e-2;
  o->schedule = TW_OPTIM_LR_COSINE;
  o->lr_min = 1e-4;
  o->warmup_iters = 100;
  o->max_iters = ADAM_ROSEN_ITERS;
}

static void adam_rosenbrock(void **state) {
  (void)state;
  double x[N];
  rosen_start(x);
  rosen p = {0};
  tw_optim_opts o;
  adam_rosen_opts(&o);
  tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
  print_message("adam rosenbrock: f %.3g after %llu iterations (%s)\n", r.loss,
                (unsigned long long)r.iterations, tw_optim_stop_name(r.reason));
  assert_int_equal(r.reason, TW_OPTIM_STOP_MAX_ITERS);
  assert_int_equal(r.iterations, ADAM_ROSEN_ITERS);
  assert_int_equal(r.evaluations, ADAM_ROSEN_ITERS + 1);
  assert_true(r.loss < ADAM_ROSEN_LOSS);
}

/* Evaluations until the loss first drops below a target: the progress
 * callback stops the run there. */
typedef struct reach {
  double target;
  uint64_t evals;
  uint64_t last_iter;
} reach;

static int reach_cb(void *ud, const tw_optim_progress *p) {
  reach *c = ud;
  assert_true(p->iteration > c->last_iter);
  c->last_iter = p->iteration;
  if (p->loss < c->target) {
    c->evals = p->evaluations;
    return 1;
  }
  return 0;
}

static void lbfgs_fewer_evals_than_adam(void **state) {
  (void)state;
  double x[N];
  rosen p = {0};
  tw_optim_opts o;
  reach la = {1e-2, 0, 0}, ad = {1e-2, 0, 0};

  rosen_start(x);
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  o.progress = reach_cb;
  o.progress_ud = &la;
  tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_CALLBACK);
  assert_true(r.loss < 1e-2);

  rosen_start(x);
  adam_rosen_opts(&o);
  o.progress = reach_cb;
  o.progress_ud = &ad;
  r = run(N, x, rosen_fn, &p, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_CALLBACK);
  assert_true(r.loss < 1e-2);

  print_message("evaluations to f < 1e-2: lbfgs %llu, adam %llu\n",
                (unsigned long long)la.evals, (unsigned long long)ad.evals);
  assert_true(la.evals > 0 && ad.evals > 0);
  assert_true(la.evals < ad.evals);
}

/* --- Bounds ----------------------------------------------------------------
 */

static void box(double *lo, double *hi) {
  for (size_t i = 0; i < N; i++) {
    lo[i] = -2;
    hi[i] = 0.8;
  }
}

static void lbfgs_bounded_rosenbrock(void **state) {
  (void)state;
  double x[N], lo[N], hi[N];
  box(lo, hi);
  rosen_start(x);
  for (size_t i = 0; i < N; i += 2)
    x[i + 1] = 0.5;
  x[0] = -2; /* a start on the boundary is inside */
  rosen p = {lo, hi, 0, 0};
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  o.lower = lo;
  o.upper = hi;
  o.gtol = 1e-10;
  o.ftol_rel = 0;
  tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
  print_message("lbfgs bounded: f - 2 = %.3g after %llu evaluations (%s)\n",
                r.loss - 2, (unsigned long long)r.evaluations,
                tw_optim_stop_name(r.reason));
  assert_int_equal(p.out_of_bounds, 0);
  assert_true(fabs(r.loss - 2.0) < 1e-8);
  for (size_t i = 0; i < N; i += 2) {
    assert_true(fabs(x[i] - 0.8) < 1e-6);
    assert_true(fabs(x[i + 1] - 0.64) < 1e-6);
  }
  /* The projected gradient vanishes at the optimum although the raw
   * gradient's x1 components do not. */
  assert_true(r.grad_norm <= 1e-6);
}

static int bounds_cb(void *ud, const tw_optim_progress *p) {
  const double *hi = ud;
  for (size_t i = 0; i < p->n; i++)
    assert_true(p->x[i] >= -2 && p->x[i] <= hi[i]);
  return 0;
}

static void adam_bounded_rosenbrock(void **state) {
  (void)state;
  double x[N], lo[N], hi[N];
  box(lo, hi);
  rosen_start(x);
  for (size_t i = 0; i < N; i += 2)
    x[i + 1] = 0.8;
  rosen p = {lo, hi, 0, 0};
  tw_optim_opts o;
  adam_rosen_opts(&o);
  o.lower = lo;
  o.upper = hi;
  o.progress = bounds_cb;
  o.progress_ud = hi;
  tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
  print_message("adam bounded: f - 2 = %.3g after %llu iterations\n",
                r.loss - 2, (unsigned long long)r.iterations);
  assert_int_equal(p.out_of_bounds, 0);
  assert_true(r.loss >= 2.0 - 1e-12);
  assert_true(r.loss - 2.0 < 1e-8);
  /* The projection puts the first coordinates exactly on the bound. */
  for (size_t i = 0; i < N; i += 2)
    assert_true(x[i] == 0.8);
}

/* --- Gradient descent on a convex quadratic --------------------------------
 */

typedef struct trace {
  double loss[4096];
  double step[4096];
  double lr[4096];
  uint64_t n;
  uint64_t last_iter, last_evals;
  uint64_t stop_at; /* 0: never stop */
} trace;

static int trace_cb(void *ud, const tw_optim_progress *p) {
  trace *t = ud;
  assert_int_equal(p->iteration, t->last_iter + 1);
  assert_true(p->evaluations > t->last_evals);
  assert_true(p->elapsed_s >= 0);
  t->last_iter = p->iteration;
  t->last_evals = p->evaluations;
  if (t->n < 4096) {
    t->loss[t->n] = p->loss;
    t->step[t->n] = p->step_norm;
    t->lr[t->n] = p->lr;
    t->n++;
  }
  return t->stop_at != 0 && p->iteration >= t->stop_at;
}

static void gd_quadratic(void **state) {
  (void)state;
  double x[QN] = {0};
  static trace t;
  memset(&t, 0, sizeof t);
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_GD);
  o.lr = 0.05; /* below 2 / max a_i = 0.2: monotone */
  o.gtol = 1e-10;
  o.progress = trace_cb;
  o.progress_ud = &t;
  tw_optim_result r = run(QN, x, quad_fn, NULL, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_GTOL);
  assert_true(r.grad_norm <= 1e-10);
  assert_int_equal(r.iterations, t.n);
  for (uint64_t k = 1; k < t.n; k++)
    assert_true(t.loss[k] < t.loss[k - 1]);
  for (size_t i = 0; i < QN; i++)
    assert_true(fabs(x[i] - qc(i)) < 1e-9);
  assert_true(r.loss < 1e-18);
}

/* --- Stop reasons and the progress callback --------------------------------
 */

static void stop_ftol_with_patience(void **state) {
  (void)state;
  static trace t;
  for (unsigned patience = 1; patience <= 4; patience += 3) {
    double x[QN] = {0};
    memset(&t, 0, sizeof t);
    tw_optim_opts o;
    tw_optim_opts_init(&o, TW_OPTIM_GD);
    o.lr = 0.05;
    o.ftol_abs = 1e-6;
    o.patience = patience;
    o.progress = trace_cb;
    o.progress_ud = &t;
    tw_optim_result r = run(QN, x, quad_fn, NULL, &o, TW_OK);
    assert_int_equal(r.reason, TW_OPTIM_STOP_FTOL);
    /* The last `patience` changes passed, and the run stopped at the
     * first such run of iterations: the change before them did not. */
    uint64_t k = t.n;
    assert_true(k > patience + 1);
    for (uint64_t j = k - patience; j < k; j++)
      assert_true(fabs(t.loss[j] - t.loss[j - 1]) <= 1e-6);
    assert_true(fabs(t.loss[k - patience - 1] - t.loss[k - patience - 2]) >
                1e-6);
  }
}

static void stop_xtol_and_gtol_at_start(void **state) {
  (void)state;
  double x[QN] = {0};
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_GD);
  o.lr = 0.05;
  o.xtol_rel = 1e-8;
  tw_optim_result r = run(QN, x, quad_fn, NULL, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_XTOL);
  assert_true(r.iterations > 1 && r.iterations < 1000);

  /* A start at the minimum: stopped by gtol before any iteration, for
   * every method. */
  for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m++) {
    for (size_t i = 0; i < QN; i++)
      x[i] = qc(i);
    tw_optim_opts_init(&o, (tw_optim_method)m);
    o.gtol = 1e-12;
    r = run(QN, x, quad_fn, NULL, &o, TW_OK);
    assert_int_equal(r.reason, TW_OPTIM_STOP_GTOL);
    assert_int_equal(r.iterations, 0);
    assert_int_equal(r.evaluations, 1);
    assert_true(r.loss == 0);
  }
}

static void stop_max_evals_and_iters(void **state) {
  (void)state;
  for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m++) {
    double x[N];
    rosen_start(x);
    rosen p = {0};
    tw_optim_opts o;
    tw_optim_opts_init(&o, (tw_optim_method)m);
    o.lr = 1e-4;
    o.max_evals = 7;
    tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
    assert_int_equal(r.reason, TW_OPTIM_STOP_MAX_EVALS);
    assert_int_equal(r.evaluations, 7);
    assert_int_equal(p.evals, 7);

    rosen_start(x);
    p.evals = 0;
    tw_optim_opts_init(&o, (tw_optim_method)m);
    o.lr = 1e-4;
    o.max_iters = 3;
    r = run(N, x, rosen_fn, &p, &o, TW_OK);
    assert_int_equal(r.reason, TW_OPTIM_STOP_MAX_ITERS);
    assert_int_equal(r.iterations, 3);
    assert_int_equal(r.evaluations, p.evals);
  }
}

/* A loss whose every evaluation takes at least one clock tick, so a
 * budget of 1 ns is always spent by the first evaluation. */
static int slow_quad_fn(void *ud, const double *x, double *f, double *g,
                        tw_err *err) {
  uint64_t t0 = tw_clock_mono_ns();
  while (tw_clock_mono_ns() == t0) {
  }
  return quad_fn(ud, x, f, g, err);
}

static void stop_time(void **state) {
  (void)state;
  for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m++) {
    double x[QN] = {0};
    tw_optim_opts o;
    tw_optim_opts_init(&o, (tw_optim_method)m);
    o.max_seconds = 1e-9;
    tw_optim_result r = run(QN, x, slow_quad_fn, NULL, &o, TW_OK);
    assert_int_equal(r.reason, TW_OPTIM_STOP_TIME);
    assert_true(r.elapsed_s > 0);
    assert_true(r.evaluations >= 1 && r.evaluations <= 2);
  }
}

static void stop_callback(void **state) {
  (void)state;
  static trace t;
  for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m++) {
    double x[N];
    rosen_start(x);
    rosen p = {0};
    memset(&t, 0, sizeof t);
    t.stop_at = 5;
    tw_optim_opts o;
    tw_optim_opts_init(&o, (tw_optim_method)m);
    o.lr = 1e-4;
    o.progress = trace_cb;
    o.progress_ud = &t;
    tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
    assert_int_equal(r.reason, TW_OPTIM_STOP_CALLBACK);
    assert_int_equal(r.iterations, 5);
    assert_int_equal(t.n, 5);
    assert_true(r.loss <= t.loss[4]);
    if (m == TW_OPTIM_LBFGS) {
      /* L-BFGS iterations are improvements: strictly decreasing. */
      assert_true(isnan(t.lr[0]));
      for (int k = 1; k < 5; k++)
        assert_true(t.loss[k] < t.loss[k - 1]);
      assert_true(r.loss == t.loss[4]);
    }
  }
}

/* NLopt's own tolerance tests end L-BFGS with FTOL and XTOL. */
static void lbfgs_nlopt_tolerances(void **state) {
  (void)state;
  double x[N];
  rosen p = {0};
  tw_optim_opts o;
  rosen_start(x);
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  o.gtol = 0;
  o.ftol_rel = 0;
  o.ftol_abs = 1e-4;
  tw_optim_result r = run(N, x, rosen_fn, &p, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_FTOL);

  rosen_start(x);
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  o.gtol = 0;
  o.ftol_rel = 0;
  o.xtol_rel = 1e-3;
  r = run(N, x, rosen_fn, &p, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_XTOL);

  /* With no tolerance of its own, Luksan's internal gradient test ends
   * the run: CONVERGED. */
  rosen_start(x);
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  o.gtol = 0;
  o.ftol_rel = 0;
  r = run(N, x, rosen_fn, &p, &o, TW_OK);
  print_message("lbfgs without tolerances: %s, f %.3g\n",
                tw_optim_stop_name(r.reason), r.loss);
  assert_int_equal(r.reason, TW_OPTIM_STOP_CONVERGED);
  assert_true(r.loss < 1e-10);
}

/* A gradient with the wrong sign: no line search can succeed. */
static int uphill_fn(void *ud, const double *x, double *f, double *g,
                     tw_err *err) {
  int rc = quad_fn(ud, x, f, g, err);
  for (size_t i = 0; i < QN; i++)
    g[i] = -g[i];
  return rc;
}

static void lbfgs_no_progress(void **state) {
  (void)state;
  double x[QN] = {0}, x0[QN] = {0};
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  tw_optim_result r = run(QN, x, uphill_fn, NULL, &o, TW_OK);
  assert_int_equal(r.reason, TW_OPTIM_STOP_NO_PROGRESS);
  /* Nothing better than the start was found: x is the start. */
  double f0, g0[QN];
  quad_fn(NULL, x0, &f0, g0, NULL);
  assert_true(r.loss == f0);
  assert_memory_equal(x, x0, sizeof x);
}

/* --- Schedules and the Adam update -----------------------------------------
 */

static void schedules(void **state) {
  (void)state;
  static trace t;
  const tw_optim_schedule kinds[] = {TW_OPTIM_LR_CONSTANT, TW_OPTIM_LR_STEP,
                                     TW_OPTIM_LR_EXP, TW_OPTIM_LR_COSINE};
  for (size_t s = 0; s < 4; s++) {
    for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m += 2) {
      double x[QN] = {0};
      memset(&t, 0, sizeof t);
      tw_optim_opts o;
      tw_optim_opts_init(&o, (tw_optim_method)m);
      o.lr = 1e-3;
      o.schedule = kinds[s];
      o.lr_gamma = 0.5;
      o.lr_step_size = 10;
      o.lr_min = 1e-4;
      o.warmup_iters = 4;
      o.max_iters = 40;
      o.progress = trace_cb;
      o.progress_ud = &t;
      run(QN, x, quad_fn, NULL, &o, TW_OK);
      assert_int_equal(t.n, 40);
      for (uint64_t k = 0; k < 40; k++) {
        double want = 1e-3;
        if (kinds[s] == TW_OPTIM_LR_STEP)
          want *= pow(0.5, (double)(k / 10));
        else if (kinds[s] == TW_OPTIM_LR_EXP)
          want *= pow(0.5, (double)k);
        else if (kinds[s] == TW_OPTIM_LR_COSINE)
          want = 1e-4 + (1e-3 - 1e-4) * (1 + cos(M_PI * (double)k / 40)) / 2;
        if (k < 4)
          want *= (double)(k + 1) / 4;
        assert_near(t.lr[k], want, 1e-15);
      }
    }
  }
}

/* A loss that is identically zero: only weight decay moves x. */
static int zero_fn(void *ud, const double *x, double *f, double *g,
                   tw_err *err) {
  (void)ud;
  (void)x;
  (void)err;
  *f = 0;
  g[0] = 0;
  return TW_OK;
}

static void adam_update(void **state) {
  (void)state;
  /* Bias correction makes Adam's first step lr * sign(g) (to eps). */
  double x[QN] = {0};
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_ADAM);
  o.lr = 0.01;
  o.max_iters = 1;
  run(QN, x, quad_fn, NULL, &o, TW_OK);
  for (size_t i = 0; i < QN; i++)
    assert_near(x[i], 0.01, 1e-9);

  /* AdamW decays x itself: x_t = x0 (1 - lr wd)^t, no Adam step. */
  double y = 2;
  tw_optim_opts_init(&o, TW_OPTIM_ADAM);
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.decoupled_wd = true;
  o.max_iters = 10;
  tw_optim_result r = run(1, &y, zero_fn, NULL, &o, TW_OK);
  assert_int_equal(r.iterations, 10);
  /* Every point has loss 0, so the best is the start... */
  assert_true(y == 2);
  /* ...and the decay shows in the last iterate, seen by a callback. */
  static trace t;
  memset(&t, 0, sizeof t);
  o.progress = trace_cb;
  o.progress_ud = &t;
  o.max_iters = 1;
  y = 2;
  run(1, &y, zero_fn, NULL, &o, TW_OK);
  assert_near(t.step[0], 2 * 0.1 * 0.5, 1e-15);
  /* Adam's L2 term goes through the moments: a first step of lr. */
  memset(&t, 0, sizeof t);
  o.decoupled_wd = false;
  y = 2;
  run(1, &y, zero_fn, NULL, &o, TW_OK);
  assert_near(t.step[0], 0.1, 1e-9);
}

/* --- Divergence and errors -------------------------------------------------
 */

typedef enum fault { FAULT_NAN_LOSS, FAULT_INF_GRAD, FAULT_ERROR } fault;

/* The quadratic, failing from evaluation k on; remembers the best finite
 * point it returned. */
typedef struct faulty {
  fault kind;
  uint64_t k, evals;
  double best_f;
  double best_x[QN];
} faulty;

static int faulty_fn(void *ud, const double *x, double *f, double *g,
                     tw_err *err) {
  faulty *p = ud;
  p->evals++;
  quad_fn(NULL, x, f, g, err);
  if (p->evals >= p->k) {
    switch (p->kind) {
    case FAULT_NAN_LOSS:
      *f = NAN;
      break;
    case FAULT_INF_GRAD:
      g[3] = INFINITY;
      break;
    case FAULT_ERROR:
      return tw_err_set(err, TW_EIO, "sensor model: replay file truncated");
    }
    return TW_OK;
  }
  if (*f < p->best_f) {
    p->best_f = *f;
    memcpy(p->best_x, x, sizeof p->best_x);
  }
  return TW_OK;
}

static void divergence_and_errors(void **state) {
  (void)state;
  const fault kinds[] = {FAULT_NAN_LOSS, FAULT_INF_GRAD, FAULT_ERROR};
  for (size_t fk = 0; fk < 3; fk++) {
    for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m++) {
      faulty p = {kinds[fk], 6, 0, INFINITY, {0}};
      double x[QN] = {0};
      tw_optim_opts o;
      tw_optim_opts_init(&o, (tw_optim_method)m);
      o.lr = 0.02;
      tw_optim_result res;
      tw_err err;
      tw_err_init(&err);
      int rc = tw_optim_minimize(QN, x, faulty_fn, &p, &o, &res, &err);
      print_message("%s: %s\n", tw_optim_method_name(o.method), err.msg);
      assert_int_equal(res.evaluations, 6);
      assert_true(res.loss == p.best_f);
      assert_memory_equal(x, p.best_x, sizeof x);
      if (kinds[fk] == FAULT_ERROR) {
        assert_int_equal(rc, TW_EIO);
        assert_int_equal(res.reason, TW_OPTIM_STOP_ERROR);
        assert_string_equal(err.msg, "sensor model: replay file truncated");
      } else {
        assert_int_equal(rc, TW_ENUMERIC);
        assert_int_equal(res.reason, TW_OPTIM_STOP_DIVERGED);
        assert_non_null(strstr(err.msg, "evaluation 6"));
        assert_non_null(strstr(err.msg, kinds[fk] == FAULT_NAN_LOSS
                                            ? "loss is nan"
                                            : "gradient[3] is inf"));
      }
    }
  }
  /* Divergence at the very start: no finite point, x is the start. */
  faulty p = {FAULT_NAN_LOSS, 1, 0, INFINITY, {0}};
  double x[QN] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_LBFGS);
  tw_optim_result res = run(QN, x, faulty_fn, &p, &o, TW_ENUMERIC);
  assert_true(isnan(res.loss));
  assert_true(x[0] == 0.5 && x[QN - 1] == 0.5);
}

/* f = 1e308 x: one GD step of rate 10 overflows x itself. */
static int steep_fn(void *ud, const double *x, double *f, double *g,
                    tw_err *err) {
  (void)ud;
  (void)err;
  *f = 1e308 * x[0];
  g[0] = 1e308;
  return TW_OK;
}

static void divergence_of_x(void **state) {
  (void)state;
  double x = 0;
  tw_optim_opts o;
  tw_optim_opts_init(&o, TW_OPTIM_GD);
  o.lr = 10;
  tw_optim_result res;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_optim_minimize(1, &x, steep_fn, NULL, &o, &res, &err),
                   TW_ENUMERIC);
  assert_string_equal(err.msg, "optim gd: x[0] is -inf after the update of "
                               "iteration 1 (rate 10)");
  assert_int_equal(res.reason, TW_OPTIM_STOP_DIVERGED);
  assert_int_equal(res.evaluations, 1);
  assert_true(x == 0 && res.loss == 0);
}

/* --- Bad input -------------------------------------------------------------
 */

static int counting_fn(void *ud, const double *x, double *f, double *g,
                       tw_err *err) {
  (*(int *)ud)++;
  return quad_fn(NULL, x, f, g, err);
}

/* One bad option per case; returns the text the message must hold. */
static const char *spoil(int k, size_t *n, double **x, tw_optim_fn *fn,
                         tw_optim_opts **op) {
  static double lo[QN], hi[QN];
  for (size_t i = 0; i < QN; i++) {
    lo[i] = -1;
    hi[i] = 1;
  }
  tw_optim_opts *o = *op;
  switch (k) {
  case 0:
    *n = 0;
    return "n is 0";
  case 1:
    *x = NULL;
    return "x is NULL";
  case 2:
    *fn = NULL;
    return "fn (the loss) is NULL";
  case 3:
    *op = NULL;
    return "opts is NULL";
  case 4:
    o->lr = 0;
    return "lr is 0";
  case 5:
    o->method = TW_OPTIM_GD;
    o->lr = -1;
    return "optim gd: lr is -1";
  case 6:
    o->beta1 = 1;
    return "beta1 is 1";
  case 7:
    o->beta2 = -0.1;
    return "beta2 is -0.1";
  case 8:
    o->eps = -1;
    return "eps is -1";
  case 9:
    o->weight_decay = -1;
    return "weight_decay is -1";
  case 10:
    o->patience = 0;
    return "patience is 0";
  case 11:
    o->max_iters = 0;
    return "max_iters is 0";
  case 12:
    o->gtol = NAN;
    return "gtol is nan";
  case 13:
    o->ftol_rel = -1;
    return "ftol_rel is -1";
  case 14:
    o->ftol_abs = INFINITY;
    return "ftol_abs is inf";
  case 15:
    o->xtol_rel = -1;
    return "xtol_rel is -1";
  case 16:
    o->max_seconds = -1;
    return "max_seconds is -1";
  case 17:
    lo[5] = 2;
    o->lower = lo;
    o->upper = hi;
    return "lower[5] = 2 is above upper[5] = 1";
  case 18:
    hi[2] = NAN;
    o->method = TW_OPTIM_LBFGS;
    o->lower = lo;
    o->upper = hi;
    return "optim lbfgs: upper[2] is NaN";
  case 19:
    o->method = TW_OPTIM_LBFGS;
    o->lower = lo;
    o->upper = hi;
    (*x)[3] = 1.5;
    return "start x[3] = 1.5 is outside its bounds [-1, 1]";
  case 20:
    (*x)[1] = NAN;
    return "start x[1] is nan";
  case 21:
    o->method = TW_OPTIM_LBFGS;
    o->memory = 0;
    return "memory is 0";
  case 22:
    o->schedule = TW_OPTIM_LR_STEP;
    o->lr_step_size = 0;
    return "lr_step_size is 0";
  case 23:
    o->schedule = TW_OPTIM_LR_EXP;
    o->lr_gamma = 0;
    return "lr_gamma is 0";
  case 24:
    o->schedule = TW_OPTIM_LR_COSINE;
    o->lr_min = 1;
    return "lr_min is 1";
  case 25:
    o->method = (tw_optim_method)7;
    return "unknown method 7";
  case 26:
    o->schedule = (tw_optim_schedule)9;
    return "unknown schedule 9";
  default:
    return NULL;
  }
}

static void bad_options(void **state) {
  (void)state;
  for (int k = 0;; k++) {
    double xs[QN] = {0};
    size_t n = QN;
    double *x = xs;
    tw_optim_fn fn = counting_fn;
    tw_optim_opts opts, *o = &opts;
    tw_optim_opts_init(o, TW_OPTIM_ADAM);
    const char *want = spoil(k, &n, &x, &fn, &o);
    if (want == NULL)
      break;
    double before[QN];
    memcpy(before, xs, sizeof xs);
    int calls = 0;
    tw_optim_result res;
    memset(&res, 0xab, sizeof res);
    tw_optim_result sentinel = res;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_optim_minimize(n, x, fn, &calls, o, &res, &err);
    if (rc != TW_EINVAL || strstr(err.msg, want) == NULL)
      print_error("case %d: rc %s, message '%s', want '%s'\n", k,
                  tw_err_name(rc), err.msg, want);
    assert_int_equal(rc, TW_EINVAL);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(calls, 0);
    assert_memory_equal(&res, &sentinel, sizeof res);
    assert_memory_equal(xs, before, sizeof xs);
  }
}

static void method_names(void **state) {
  (void)state;
  tw_optim_method m = TW_OPTIM_GD;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_optim_method_parse("adam", &m, &err), TW_OK);
  assert_int_equal(m, TW_OPTIM_ADAM);
  assert_int_equal(tw_optim_method_parse("lbfgs", &m, &err), TW_OK);
  assert_int_equal(m, TW_OPTIM_LBFGS);
  assert_int_equal(tw_optim_method_parse("gd", &m, &err), TW_OK);
  assert_int_equal(m, TW_OPTIM_GD);
  assert_int_equal(tw_optim_method_parse("sgd", &m, &err), TW_EINVAL);
  assert_int_equal(m, TW_OPTIM_GD);
  assert_non_null(strstr(err.msg, "'sgd'"));
  for (int k = TW_OPTIM_ADAM; k <= TW_OPTIM_GD; k++) {
    tw_optim_method back;
    assert_int_equal(tw_optim_method_parse(
                         tw_optim_method_name((tw_optim_method)k), &back, NULL),
                     TW_OK);
    assert_int_equal(back, k);
  }
  assert_string_equal(tw_optim_stop_name(TW_OPTIM_STOP_GTOL), "gtol");
  assert_string_equal(tw_optim_stop_name(TW_OPTIM_STOP_DIVERGED), "diverged");
  assert_string_equal(tw_optim_stop_name((tw_optim_stop)99), "unknown");
}

/* --- Allocation failures ---------------------------------------------------
 */

static int alloc_round(void) {
  for (int m = TW_OPTIM_ADAM; m <= TW_OPTIM_GD; m++) {
    double x[QN] = {0};
    tw_optim_opts o;
    tw_optim_opts_init(&o, (tw_optim_method)m);
    o.max_iters = 5;
    tw_optim_result res;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_optim_minimize(QN, x, quad_fn, NULL, &o, &res, &err);
    if (rc != TW_OK) {
      assert_int_equal(rc, TW_ENOMEM);
      /* Refused before any evaluation: x untouched. */
      for (size_t i = 0; i < QN; i++)
        assert_true(x[i] == 0);
      return rc;
    }
  }
  return TW_OK;
}

static void alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(lbfgs_rosenbrock),
      TW_TEST(adam_rosenbrock),
      TW_TEST(lbfgs_fewer_evals_than_adam),
      TW_TEST(lbfgs_bounded_rosenbrock),
      TW_TEST(adam_bounded_rosenbrock),
      TW_TEST(gd_quadratic),
      TW_TEST(stop_ftol_with_patience),
      TW_TEST(stop_xtol_and_gtol_at_start),
      TW_TEST(stop_max_evals_and_iters),
      TW_TEST(stop_time),
      TW_TEST(stop_callback),
      TW_TEST(lbfgs_nlopt_tolerances),
      TW_TEST(lbfgs_no_progress),
      TW_TEST(schedules),
      TW_TEST(adam_update),
      TW_TEST(divergence_and_errors),
      TW_TEST(divergence_of_x),
      TW_TEST(bad_options),
      TW_TEST(method_names),
      TW_TEST(alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
