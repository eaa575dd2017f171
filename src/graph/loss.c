/*
 * loss.c - losses of a graph's outputs that run entirely in C: a weighted
 * squared error against target rows, for hosts (the Python SDK) that must
 * not call back into their own runtime at every tick of a gradient.
 *
 * Invariants: the term reads only the arrays its description borrows,
 * writes every gy value it is given, allocates nothing and keeps no state,
 * so one description may serve any number of gradients, one at a time or
 * concurrently.
 */
#include <math.h>

#include "twin/graph.h"

static int sqerr_term(void *ud, int64_t k, int64_t steps, const double *x_next,
                      const double *y, double *value, double *gx_next,
                      double *gy, tw_err *err) {
  (void)steps, (void)x_next, (void)gx_next;
  const tw_graph_sqerr *s = ud;
  if (k < 0 || k >= s->ticks)
    return tw_err_set(err, TW_ERANGE,
                      "squared-error loss: tick %lld is past the %lld rows "
                      "of targets",
                      (long long)k, (long long)s->ticks);
  const double *t = s->target != NULL ? s->target + (size_t)k * s->ny : NULL;
  double v = 0;
  for (size_t j = 0; j < s->ny; j++) {
    double w = s->weight != NULL ? s->weight[j] : 1.0;
    double target = t != NULL ? t[j] : 0.0;
    double r = y[j] - target;
    /* A NaN target is a missing sample; a zero weight leaves the column
     * out. Neither adds to the value or the gradient. */
    bool skip = w == 0.0 || isnan(target);
    if (!skip)
      v += w * r * r;
    if (gy != NULL)
      gy[j] = skip ? 0.0 : 2.0 * w * r;
  }
  *value = v;
  return TW_OK;
}

void tw_graph_sqerr_loss(tw_graph_sqerr *s, tw_loss *loss) {
  loss->term = sqerr_term;
  loss->final_only = false;
  loss->ud = s;
}
