/*
 * lbfgs.c - L-BFGS with simple bounds through NLopt's NLOPT_LD_LBFGS
 * (Luksan's limited-memory variable metric code).
 *
 * NLopt owns the iteration; Twin sees only evaluations. The objective
 * wrapper clamps x onto the box (Luksan already evaluates on it; the clamp
 * makes "fn never sees x outside the bounds" a guarantee), evaluates
 * through tw__optim_eval, reports every evaluation that improves the best
 * loss as an iteration, and applies the tests NLopt does not have or that
 * must be exact: gtol on the projected gradient, max_iters, max_evals,
 * max_seconds, the progress callback, errors and non-finite values. Any of
 * those ends the run by nlopt_force_stop.
 *
 * Invariants: Luksan notices a forced stop only between line searches, so
 * once the run has ended the wrapper answers HUGE_VAL with a zero gradient
 * without calling fn (the idiom of NLopt's C++ wrapper on an exception);
 * those calls are not counted. The reason recorded by the wrapper wins
 * over NLopt's return code.
 */
#include <math.h>
#include <nlopt.h>
#include <string.h>

#include "optim_int.h"

typedef struct lbfgs_ctx {
  tw__optim_run *r;
  nlopt_opt opt;
} lbfgs_ctx;

static double objective(unsigned n, const double *x, double *grad, void *data) {
  lbfgs_ctx *c = data;
  tw__optim_run *r = c->r;
  const tw_optim_opts *o = r->o;
  double *xc = r->w0, *g = grad != NULL ? grad : r->w1;
  if (r->reason == TW_OPTIM_STOP_NONE && o->max_evals > 0 &&
      r->evals >= o->max_evals)
    tw__optim_stop(r, TW_OPTIM_STOP_MAX_EVALS);
  if (r->reason != TW_OPTIM_STOP_NONE) {
    nlopt_force_stop(c->opt);
    memset(g, 0, n * sizeof *g);
    return HUGE_VAL;
  }
  memcpy(xc, x, n * sizeof *x);
  for (size_t i = 0; i < n; i++) {
    if (o->lower != NULL && xc[i] < o->lower[i])
      xc[i] = o->lower[i];
    if (o->upper != NULL && xc[i] > o->upper[i])
      xc[i] = o->upper[i];
  }
  /* The step is measured from the best point, before it moves. */
  double step = 0;
  if (r->have_best) {
    for (size_t i = 0; i < n; i++)
      step += (xc[i] - r->best_x[i]) * (xc[i] - r->best_x[i]);
    step = sqrt(step);
  }
  bool first = !r->have_best, improved;
  double f, gnorm;
  if (tw__optim_eval(r, xc, &f, g, &gnorm, &improved) != TW_OK) {
    nlopt_force_stop(c->opt);
    memset(g, 0, n * sizeof *g);
    return HUGE_VAL;
  }
  if (improved && !first) {
    r->iters++;
    tw__optim_progress(r, xc, f, gnorm, step, NAN);
  }
  if (improved && o->gtol > 0 && gnorm <= o->gtol)
    tw__optim_stop(r, TW_OPTIM_STOP_GTOL);
  if (r->iters >= o->max_iters)
    tw__optim_stop(r, TW_OPTIM_STOP_MAX_ITERS);
  if (o->max_seconds > 0 && tw__optim_elapsed(r) >= o->max_seconds)
    tw__optim_stop(r, TW_OPTIM_STOP_TIME);
  if (r->reason != TW_OPTIM_STOP_NONE)
    nlopt_force_stop(c->opt);
  return f;
}

static int fail(tw__optim_run *r, int rc) {
  if (r->reason == TW_OPTIM_STOP_NONE) {
    r->reason = TW_OPTIM_STOP_ERROR;
    r->rc = rc;
  }
  return r->rc;
}

/* Maps NLopt's return code when the wrapper did not end the run. */
static int map_result(tw__optim_run *r, nlopt_opt opt, nlopt_result ret) {
  switch (ret) {
  case NLOPT_SUCCESS:
  case NLOPT_STOPVAL_REACHED:
    tw__optim_stop(r, TW_OPTIM_STOP_CONVERGED);
    break;
  case NLOPT_FTOL_REACHED:
    tw__optim_stop(r, TW_OPTIM_STOP_FTOL);
    break;
  case NLOPT_XTOL_REACHED:
    tw__optim_stop(r, TW_OPTIM_STOP_XTOL);
    break;
  case NLOPT_MAXEVAL_REACHED:
    tw__optim_stop(r, TW_OPTIM_STOP_MAX_EVALS);
    break;
  case NLOPT_MAXTIME_REACHED:
    tw__optim_stop(r, TW_OPTIM_STOP_TIME);
    break;
  case NLOPT_ROUNDOFF_LIMITED:
  case NLOPT_FAILURE:
    /* Luksan's line search gave up. A normal stop at the best point if
     * there is one (SciPy's ABNORMAL_TERMINATION_IN_LNSRCH). */
    if (!r->have_best)
      return fail(r, tw_err_set(r->err, TW_EINTERNAL,
                                "optim lbfgs: NLopt failed before any "
                                "evaluation (code %d)",
                                (int)ret));
    tw__optim_stop(r, TW_OPTIM_STOP_NO_PROGRESS);
    break;
  case NLOPT_INVALID_ARGS: {
    const char *msg = nlopt_get_errmsg(opt);
    return fail(r, tw_err_set(r->err, TW_EINVAL,
                              "optim lbfgs: NLopt refused the problem: %s",
                              msg != NULL ? msg : "invalid arguments"));
  }
  case NLOPT_OUT_OF_MEMORY:
    return fail(r, tw_err_set(r->err, TW_ENOMEM,
                              "optim lbfgs: NLopt is out "
                              "of memory"));
  case NLOPT_FORCED_STOP:
  default:
    return fail(r, tw_err_set(r->err, TW_EINTERNAL,
                              "optim lbfgs: NLopt stopped with code %d and no "
                              "reason recorded",
                              (int)ret));
  }
  return r->rc;
}

int tw__optim_lbfgs(tw__optim_run *r, double *x) {
  const tw_optim_opts *o = r->o;
  nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, (unsigned)r->n);
  if (opt == NULL)
    return fail(r, tw_err_set(r->err, TW_ENOMEM,
                              "optim lbfgs: no memory for the NLopt problem"));
  lbfgs_ctx c = {r, opt};
  nlopt_result ret = nlopt_set_min_objective(opt, objective, &c);
  if (ret >= 0 && o->lower != NULL)
    ret = nlopt_set_lower_bounds(opt, o->lower);
  if (ret >= 0 && o->upper != NULL)
    ret = nlopt_set_upper_bounds(opt, o->upper);
  if (ret >= 0)
    ret = nlopt_set_vector_storage(opt, o->memory);
  if (ret >= 0)
    ret = nlopt_set_ftol_rel(opt, o->ftol_rel);
  if (ret >= 0)
    ret = nlopt_set_ftol_abs(opt, o->ftol_abs);
  if (ret >= 0)
    ret = nlopt_set_xtol_rel(opt, o->xtol_rel);
  if (ret < 0) {
    map_result(r, opt, ret);
    nlopt_destroy(opt);
    return r->rc;
  }
  /* NLopt works on its own copy; x receives the best point at the end. */
  double *xw = r->w2;
  memcpy(xw, x, r->n * sizeof *x);
  double minf = HUGE_VAL;
  ret = nlopt_optimize(opt, xw, &minf);
  if (r->reason == TW_OPTIM_STOP_NONE)
    map_result(r, opt, ret);
  nlopt_destroy(opt);
  return r->rc;
}
