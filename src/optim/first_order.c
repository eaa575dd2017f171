/*
 * first_order.c - Adam (with AdamW's decoupled weight decay) and plain
 * gradient descent, with learning-rate schedules, warm-up, projection onto
 * the bounds and patience on the tolerance tests.
 *
 * The update is torch.optim.Adam's (maximize=False, amsgrad=False):
 *   g  = grad + wd * x                     (L2; not with decoupled_wd)
 *   x *= 1 - lr * wd                       (decoupled_wd: AdamW)
 *   m  = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
 *   x -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * and GD's x -= lr * (grad + wd * x); then x is clamped onto the box.
 *
 * Invariants: iteration t (from 1) is one update and one evaluation, so
 * evaluations == iterations + 1 while the run goes on; the tolerance
 * counters count consecutive iterations that passed their test.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "optim_int.h"

/* The learning rate of iteration t (from 0). */
static double lr_at(const tw_optim_opts *o, uint64_t t) {
  double lr = o->lr;
  switch (o->schedule) {
  case TW_OPTIM_LR_STEP: {
    uint64_t decays = t / o->lr_step_size; /* floor, as StepLR */
    lr *= pow(o->lr_gamma, (double)decays);
    break;
  }
  case TW_OPTIM_LR_EXP:
    lr *= pow(o->lr_gamma, (double)t);
    break;
  case TW_OPTIM_LR_COSINE: {
    double c = t >= o->max_iters ? 1.0 : (double)t / (double)o->max_iters;
    lr = o->lr_min + (o->lr - o->lr_min) * (1 + cos(M_PI * c)) / 2;
    break;
  }
  case TW_OPTIM_LR_CONSTANT:
  default:
    break;
  }
  if (t < o->warmup_iters)
    lr *= (double)(t + 1) / (double)o->warmup_iters;
  return lr;
}

static void project(const tw_optim_opts *o, size_t n, double *x) {
  if (o->lower != NULL)
    for (size_t i = 0; i < n; i++)
      if (x[i] < o->lower[i])
        x[i] = o->lower[i];
  if (o->upper != NULL)
    for (size_t i = 0; i < n; i++)
      if (x[i] > o->upper[i])
        x[i] = o->upper[i];
}

/* Advances a tolerance counter; true once it reaches patience. */
static bool held(unsigned *count, bool ok, unsigned patience) {
  *count = ok ? *count + 1 : 0;
  return *count >= patience;
}

static bool xtol_ok(const tw__optim_run *r, const double *x,
                    const double *xprev) {
  for (size_t i = 0; i < r->n; i++)
    if (fabs(x[i] - xprev[i]) > r->o->xtol_rel * fabs(x[i]))
      return false;
  return true;
}

int tw__optim_first_order(tw__optim_run *r, double *x) {
  const tw_optim_opts *o = r->o;
  const size_t n = r->n;
  const bool adam = o->method == TW_OPTIM_ADAM;
  double *g = r->w0, *m = r->w1, *v = r->w2, *xprev = r->w3;
  double f, gnorm;
  bool improved;
  unsigned cnt_g = 0, cnt_f = 0, cnt_x = 0;

  if (tw__optim_eval(r, x, &f, g, &gnorm, &improved) != TW_OK)
    return r->rc;
  if (o->gtol > 0 && held(&cnt_g, gnorm <= o->gtol, o->patience)) {
    tw__optim_stop(r, TW_OPTIM_STOP_GTOL);
    return r->rc;
  }
  double b1t = 1, b2t = 1; /* beta1^t, beta2^t */
  for (uint64_t t = 0;; t++) {
    if (r->iters >= o->max_iters) {
      tw__optim_stop(r, TW_OPTIM_STOP_MAX_ITERS);
      break;
    }
    if (o->max_evals > 0 && r->evals >= o->max_evals) {
      tw__optim_stop(r, TW_OPTIM_STOP_MAX_EVALS);
      break;
    }
    if (o->max_seconds > 0 && tw__optim_elapsed(r) >= o->max_seconds) {
      tw__optim_stop(r, TW_OPTIM_STOP_TIME);
      break;
    }
    double lr = lr_at(o, t);
    double wd = o->weight_decay;
    memcpy(xprev, x, n * sizeof *x);
    if (adam) {
      b1t *= o->beta1;
      b2t *= o->beta2;
      double step = lr / (1 - b1t);
      double bc2 = sqrt(1 - b2t);
      for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (wd > 0 && !o->decoupled_wd)
          gi += wd * x[i];
        else if (wd > 0)
          x[i] *= 1 - lr * wd;
        m[i] = o->beta1 * m[i] + (1 - o->beta1) * gi;
        v[i] = o->beta2 * v[i] + (1 - o->beta2) * gi * gi;
        x[i] -= step * m[i] / (sqrt(v[i]) / bc2 + o->eps);
      }
    } else {
      for (size_t i = 0; i < n; i++)
        x[i] -= lr * (g[i] + wd * x[i]);
    }
    project(o, n, x);
    double step = 0;
    for (size_t i = 0; i < n; i++) {
      /* A huge gradient times the rate can overflow: the loss never sees
       * a non-finite x. */
      if (!isfinite(x[i])) {
        r->reason = TW_OPTIM_STOP_DIVERGED;
        r->rc = tw_err_set(r->err, TW_ENUMERIC,
                           "optim %s: x[%zu] is %g after the update of "
                           "iteration %" PRIu64 " (rate %g)",
                           r->method, i, x[i], t + 1, lr);
        return r->rc;
      }
      step += (x[i] - xprev[i]) * (x[i] - xprev[i]);
    }
    step = sqrt(step);

    double fprev = f;
    if (tw__optim_eval(r, x, &f, g, &gnorm, &improved) != TW_OK)
      break;
    r->iters = t + 1;
    if (tw__optim_progress(r, x, f, gnorm, step, lr))
      break;
    double df = fabs(f - fprev);
    bool stop_g = held(&cnt_g, o->gtol > 0 && gnorm <= o->gtol, o->patience);
    bool stop_f = held(&cnt_f,
                       (o->ftol_rel > 0 && df <= o->ftol_rel * fabs(f)) ||
                           (o->ftol_abs > 0 && df <= o->ftol_abs),
                       o->patience);
    bool stop_x =
        held(&cnt_x, o->xtol_rel > 0 && xtol_ok(r, x, xprev), o->patience);
    if (stop_g)
      tw__optim_stop(r, TW_OPTIM_STOP_GTOL);
    else if (stop_f)
      tw__optim_stop(r, TW_OPTIM_STOP_FTOL);
    else if (stop_x)
      tw__optim_stop(r, TW_OPTIM_STOP_XTOL);
    if (r->reason != TW_OPTIM_STOP_NONE)
      break;
  }
  return r->rc;
}
