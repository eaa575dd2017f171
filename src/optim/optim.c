/*
 * optim.c - the driver of tw_optim_minimize (twin/optim.h): defaults,
 * names, the validation of a problem and its options, and the pieces
 * every method shares (evaluation with divergence checks, best-point
 * bookkeeping, the projected gradient norm, progress reports).
 *
 * Invariants: nothing is evaluated and nothing allocated until every
 * option has been checked; after the first evaluation the caller's x
 * receives the best finite point whatever happens, and the scratch memory
 * (one tw_alloc block) is freed before returning.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "optim_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"

/* --- Names and defaults --------------------------------------------------
 */

void tw_optim_opts_init(tw_optim_opts *o, tw_optim_method m) {
  memset(o, 0, sizeof *o);
  o->method = m;
  o->patience = 1;
  o->lr_gamma = 0.1;
  o->lr_step_size = 100;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->memory = 10;
  o->schedule = TW_OPTIM_LR_CONSTANT;
  switch (m) {
  case TW_OPTIM_LBFGS:
    /* SciPy's L-BFGS-B: maxiter, maxfun 15000, gtol 1e-5, factr 1e7. */
    o->max_iters = 15000;
    o->max_evals = 15000;
    o->gtol = 1e-5;
    o->ftol_rel = 1e7 * 2.220446049250313e-16;
    o->lr = 1e-3;
    break;
  case TW_OPTIM_GD:
    o->max_iters = 1000;
    o->lr = 1e-2;
    break;
  case TW_OPTIM_ADAM:
  default:
    o->max_iters = 1000;
    o->lr = 1e-3;
    break;
  }
}

const char *tw_optim_method_name(tw_optim_method m) {
  switch (m) {
  case TW_OPTIM_ADAM:
    return "adam";
  case TW_OPTIM_LBFGS:
    return "lbfgs";
  case TW_OPTIM_GD:
    return "gd";
  }
  return "unknown";
}

int tw_optim_method_parse(const char *name, tw_optim_method *out, tw_err *err) {
  if (name == NULL)
    return tw_err_set(err, TW_EINVAL, "optim: no method name");
  if (strcmp(name, "adam") == 0)
    *out = TW_OPTIM_ADAM;
  else if (strcmp(name, "lbfgs") == 0 || strcmp(name, "l-bfgs") == 0)
    *out = TW_OPTIM_LBFGS;
  else if (strcmp(name, "gd") == 0)
    *out = TW_OPTIM_GD;
  else
    return tw_err_set(err, TW_EINVAL,
                      "optim: unknown method '%.64s' (adam, lbfgs or gd)",
                      name);
  return TW_OK;
}

const char *tw_optim_stop_name(tw_optim_stop reason) {
  switch (reason) {
  case TW_OPTIM_STOP_NONE:
    return "none";
  case TW_OPTIM_STOP_GTOL:
    return "gtol";
  case TW_OPTIM_STOP_FTOL:
    return "ftol";
  case TW_OPTIM_STOP_XTOL:
    return "xtol";
  case TW_OPTIM_STOP_MAX_ITERS:
    return "max_iters";
  case TW_OPTIM_STOP_MAX_EVALS:
    return "max_evals";
  case TW_OPTIM_STOP_TIME:
    return "time";
  case TW_OPTIM_STOP_CALLBACK:
    return "callback";
  case TW_OPTIM_STOP_DIVERGED:
    return "diverged";
  case TW_OPTIM_STOP_ERROR:
    return "error";
  case TW_OPTIM_STOP_CONVERGED:
    return "converged";
  case TW_OPTIM_STOP_NO_PROGRESS:
    return "no_progress";
  }
  return "unknown";
}

/* --- Validation ------------------------------------------------------------
 */

/* A tolerance or limit: finite and >= 0. */
static int check_nonneg(double v, const char *field, const char *method,
                        tw_err *err) {
  if (!(v >= 0) || !isfinite(v))
    return tw_err_set(err, TW_EINVAL,
                      "optim %s: %s is %g, not a finite value >= 0", method,
                      field, v);
  return TW_OK;
}

static int check_bounds(size_t n, const double *x, const tw_optim_opts *o,
                        const char *m, tw_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i]))
      return tw_err_set(err, TW_EINVAL, "optim %s: start x[%zu] is %g", m, i,
                        x[i]);
    double lo = o->lower != NULL ? o->lower[i] : -INFINITY;
    double hi = o->upper != NULL ? o->upper[i] : INFINITY;
    if (isnan(lo))
      return tw_err_set(err, TW_EINVAL, "optim %s: lower[%zu] is NaN", m, i);
    if (isnan(hi))
      return tw_err_set(err, TW_EINVAL, "optim %s: upper[%zu] is NaN", m, i);
    if (lo > hi)
      return tw_err_set(err, TW_EINVAL,
                        "optim %s: lower[%zu] = %g is above upper[%zu] = %g", m,
                        i, lo, i, hi);
    if (x[i] < lo || x[i] > hi)
      return tw_err_set(err, TW_EINVAL,
                        "optim %s: start x[%zu] = %g is outside its bounds "
                        "[%g, %g]",
                        m, i, x[i], lo, hi);
  }
  return TW_OK;
}

static int check_first_order(const tw_optim_opts *o, const char *m,
                             tw_err *err) {
  if (!(o->lr > 0) || !isfinite(o->lr))
    return tw_err_set(err, TW_EINVAL,
                      "optim %s: lr is %g, not a finite value > 0", m, o->lr);
  if (o->patience < 1)
    return tw_err_set(err, TW_EINVAL, "optim %s: patience is 0, not >= 1", m);
  int rc = check_nonneg(o->weight_decay, "weight_decay", m, err);
  if (rc != TW_OK)
    return rc;
  if (o->method == TW_OPTIM_ADAM) {
    if (!(o->beta1 >= 0 && o->beta1 < 1))
      return tw_err_set(err, TW_EINVAL,
                        "optim adam: beta1 is %g, not in [0, 1)", o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1))
      return tw_err_set(err, TW_EINVAL,
                        "optim adam: beta2 is %g, not in [0, 1)", o->beta2);
    rc = check_nonneg(o->eps, "eps", m, err);
    if (rc != TW_OK)
      return rc;
  }
  switch (o->schedule) {
  case TW_OPTIM_LR_CONSTANT:
    break;
  case TW_OPTIM_LR_STEP:
    if (o->lr_step_size < 1)
      return tw_err_set(err, TW_EINVAL,
                        "optim %s: lr_step_size is 0, not >= 1 (step schedule)",
                        m);
    /* fall through */
  case TW_OPTIM_LR_EXP:
    if (!(o->lr_gamma > 0) || !isfinite(o->lr_gamma))
      return tw_err_set(err, TW_EINVAL,
                        "optim %s: lr_gamma is %g, not a finite value > 0", m,
                        o->lr_gamma);
    break;
  case TW_OPTIM_LR_COSINE:
    if (!(o->lr_min >= 0 && o->lr_min <= o->lr))
      return tw_err_set(err, TW_EINVAL,
                        "optim %s: lr_min is %g, not in [0, lr = %g] (cosine "
                        "schedule)",
                        m, o->lr_min, o->lr);
    break;
  default:
    return tw_err_set(err, TW_EINVAL, "optim %s: unknown schedule %d", m,
                      (int)o->schedule);
  }
  return TW_OK;
}

static int check_problem(size_t n, const double *x, tw_optim_fn fn,
                         const tw_optim_opts *o, tw_err *err) {
  if (o == NULL)
    return tw_err_set(err, TW_EINVAL, "optim: no options (opts is NULL)");
  if (o->method != TW_OPTIM_ADAM && o->method != TW_OPTIM_LBFGS &&
      o->method != TW_OPTIM_GD)
    return tw_err_set(err, TW_EINVAL, "optim: unknown method %d",
                      (int)o->method);
  const char *m = tw_optim_method_name(o->method);
  if (n == 0)
    return tw_err_set(err, TW_EINVAL, "optim %s: n is 0 (no parameters)", m);
  if (n > UINT32_MAX)
    return tw_err_set(err, TW_EINVAL, "optim %s: n is %zu, above %" PRIu32, m,
                      n, UINT32_MAX);
  if (x == NULL)
    return tw_err_set(err, TW_EINVAL, "optim %s: x is NULL", m);
  if (fn == NULL)
    return tw_err_set(err, TW_EINVAL, "optim %s: fn (the loss) is NULL", m);
  if (o->max_iters < 1)
    return tw_err_set(err, TW_EINVAL, "optim %s: max_iters is 0, not >= 1", m);
  static const char *const tol_names[] = {"max_seconds", "gtol", "ftol_rel",
                                          "ftol_abs", "xtol_rel"};
  const double tols[] = {o->max_seconds, o->gtol, o->ftol_rel, o->ftol_abs,
                         o->xtol_rel};
  for (size_t i = 0; i < sizeof tols / sizeof tols[0]; i++) {
    int rc = check_nonneg(tols[i], tol_names[i], m, err);
    if (rc != TW_OK)
      return rc;
  }
  int rc = check_bounds(n, x, o, m, err);
  if (rc != TW_OK)
    return rc;
  if (o->method == TW_OPTIM_LBFGS) {
    if (o->memory < 1 || o->memory > 1000)
      return tw_err_set(err, TW_EINVAL,
                        "optim lbfgs: memory is %u, not 1 to 1000", o->memory);
    return TW_OK;
  }
  return check_first_order(o, m, err);
}

/* --- Shared pieces ---------------------------------------------------------
 */

double tw__optim_elapsed(const tw__optim_run *r) {
  return (double)(tw_clock_mono_ns() - r->t0_ns) * 1e-9;
}

double tw__optim_pgnorm(const tw__optim_run *r, const double *x,
                        const double *g) {
  const double *lo = r->o->lower, *hi = r->o->upper;
  double m = 0;
  for (size_t i = 0; i < r->n; i++) {
    double gi = g[i];
    /* A component pushing x out through an active bound cannot move it. */
    if (lo != NULL && x[i] <= lo[i] && gi > 0)
      gi = 0;
    if (hi != NULL && x[i] >= hi[i] && gi < 0)
      gi = 0;
    double a = fabs(gi);
    if (a > m)
      m = a;
  }
  return m;
}

void tw__optim_stop(tw__optim_run *r, tw_optim_stop reason) {
  if (r->reason == TW_OPTIM_STOP_NONE) {
    r->reason = reason;
    r->rc = TW_OK;
  }
}

static int fail(tw__optim_run *r, tw_optim_stop reason, int rc) {
  if (r->reason == TW_OPTIM_STOP_NONE) {
    r->reason = reason;
    r->rc = rc;
  }
  return r->rc;
}

int tw__optim_eval(tw__optim_run *r, const double *x, double *f, double *g,
                   double *gnorm, bool *improved) {
  *improved = false;
  r->evals++;
  *f = NAN;
  int rc = r->fn(r->ud, x, f, g, r->err);
  if (rc > 0)
    return fail(r, TW_OPTIM_STOP_ERROR,
                tw_err_set(r->err, TW_EINVAL,
                           "optim %s: the loss returned %d at evaluation "
                           "%" PRIu64 ", not TW_OK or a TW_E* code",
                           r->method, rc, r->evals));
  if (rc < 0) {
    /* Keeps the loss's own message if it set one (first error wins). */
    tw_err_set(r->err, rc,
               "optim %s: the loss failed at evaluation %" PRIu64 ": %s",
               r->method, r->evals, tw_strerror(rc));
    return fail(r, TW_OPTIM_STOP_ERROR, rc);
  }
  if (!isfinite(*f))
    return fail(r, TW_OPTIM_STOP_DIVERGED,
                tw_err_set(r->err, TW_ENUMERIC,
                           "optim %s: the loss is %g at iteration %" PRIu64
                           " (evaluation %" PRIu64 ")",
                           r->method, *f, r->iters + 1, r->evals));
  for (size_t i = 0; i < r->n; i++)
    if (!isfinite(g[i]))
      return fail(r, TW_OPTIM_STOP_DIVERGED,
                  tw_err_set(r->err, TW_ENUMERIC,
                             "optim %s: gradient[%zu] is %g at iteration "
                             "%" PRIu64 " (evaluation %" PRIu64 ")",
                             r->method, i, g[i], r->iters + 1, r->evals));
  *gnorm = tw__optim_pgnorm(r, x, g);
  if (!r->have_best || *f < r->best_f) {
    r->have_best = true;
    r->best_f = *f;
    r->best_gnorm = *gnorm;
    memcpy(r->best_x, x, r->n * sizeof *x);
    *improved = true;
  }
  return TW_OK;
}

bool tw__optim_progress(tw__optim_run *r, const double *x, double f,
                        double gnorm, double step, double lr) {
  if (r->o->progress == NULL)
    return false;
  tw_optim_progress p = {
      .iteration = r->iters,
      .evaluations = r->evals,
      .loss = f,
      .grad_norm = gnorm,
      .step_norm = step,
      .lr = lr,
      .elapsed_s = tw__optim_elapsed(r),
      .x = x,
      .n = r->n,
  };
  if (r->o->progress(r->o->progress_ud, &p) == 0)
    return false;
  tw__optim_stop(r, TW_OPTIM_STOP_CALLBACK);
  return true;
}

/* --- The driver ------------------------------------------------------------
 */

int tw_optim_minimize(size_t n, double *x, tw_optim_fn fn, void *ud,
                      const tw_optim_opts *opts, tw_optim_result *res,
                      tw_err *err) {
  uint64_t t0 = tw_clock_mono_ns();
  int rc = check_problem(n, x, fn, opts, err);
  if (rc != TW_OK)
    return rc;
  const char *m = tw_optim_method_name(opts->method);
  double *mem = tw_calloc(5 * n, sizeof *mem);
  if (mem == NULL)
    return tw_err_set(err, TW_ENOMEM, "optim %s: no memory for %zu parameters",
                      m, n);
  tw__optim_run r = {
      .n = n,
      .fn = fn,
      .ud = ud,
      .o = opts,
      .err = err,
      .method = m,
      .t0_ns = t0,
      .best_f = NAN,
      .best_gnorm = NAN,
      .best_x = mem,
      .w0 = mem + n,
      .w1 = mem + 2 * n,
      .w2 = mem + 3 * n,
      .w3 = mem + 4 * n,
  };
  if (opts->method == TW_OPTIM_LBFGS)
    rc = tw__optim_lbfgs(&r, x);
  else
    rc = tw__optim_first_order(&r, x);
  if (r.have_best)
    memcpy(x, r.best_x, n * sizeof *x);
  if (res != NULL) {
    res->loss = r.best_f;
    res->iterations = r.iters;
    res->evaluations = r.evals;
    res->reason = r.reason;
    res->grad_norm = r.best_gnorm;
    res->elapsed_s = tw__optim_elapsed(&r);
  }
  tw_free(mem);
  return rc;
}
