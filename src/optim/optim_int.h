/*
 * optim_int.h - the state of one tw_optim_minimize run, shared by the
 * driver (optim.c) and the methods (first_order.c, lbfgs.c). Private.
 *
 * Invariants: every loss evaluation goes through tw__optim_eval, which
 * counts it, stops the run on an error or a non-finite value, and keeps
 * the best finite point in best_x; when reason is not NONE the run is
 * over and nothing more is evaluated.
 */
#ifndef TW_OPTIM_INT_H
#define TW_OPTIM_INT_H

#include <stdbool.h>

#include "twin/optim.h"

typedef struct tw__optim_run {
  size_t n;
  tw_optim_fn fn;
  void *ud;
  const tw_optim_opts *o;
  tw_err *err;
  const char *method; /* its name, for messages */
  uint64_t t0_ns;
  uint64_t evals;
  uint64_t iters;
  /* Best finite point evaluated so far. */
  bool have_best;
  double best_f;
  double best_gnorm;
  double *best_x;
  /* Scratch: 4 vectors of n for the methods. */
  double *w0, *w1, *w2, *w3;
  /* Set once the run is over; rc is what tw_optim_minimize returns. */
  tw_optim_stop reason;
  int rc;
} tw__optim_run;

/* Evaluates the loss at x (inside the bounds) into *f and g. Returns TW_OK
 * or the run's error code (reason and rc set). *improved tells whether x
 * became the best point; *gnorm is the projected gradient's norm. */
int tw__optim_eval(tw__optim_run *r, const double *x, double *f, double *g,
                   double *gnorm, bool *improved);

/* Ends the run normally with reason (rc TW_OK) unless it has ended. */
void tw__optim_stop(tw__optim_run *r, tw_optim_stop reason);

/* Seconds since the run started. */
double tw__optim_elapsed(const tw__optim_run *r);

/* Infinity norm of g projected on the box at x. */
double tw__optim_pgnorm(const tw__optim_run *r, const double *x,
                        const double *g);

/* Calls the progress callback; true if it asked to stop (run stopped). */
bool tw__optim_progress(tw__optim_run *r, const double *x, double f,
                        double gnorm, double step, double lr);

/* The methods: run from x (x is theirs to use as scratch) until
 * r->reason is set; return r->rc. */
int tw__optim_first_order(tw__optim_run *r, double *x);
int tw__optim_lbfgs(tw__optim_run *r, double *x);

#endif /* TW_OPTIM_INT_H */
