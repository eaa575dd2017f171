/*
 * twin/optim.h - minimising a loss with its gradient: Adam (and AdamW),
 * L-BFGS with bounds (NLopt's NLOPT_LD_LBFGS) and plain gradient descent.
 *
 * The optimiser layer of calibration: the caller supplies f: R^n -> R as a
 * callback returning f(x) and its exact gradient (from src/ad), a start
 * point, optional box bounds and options; tw_optim_minimize runs one method
 * to a stop and leaves the best point it evaluated in the caller's array.
 * A pure library: no I/O, no threads, no hidden state; a run is
 * deterministic for a deterministic callback (the only clock read is for
 * max_seconds and the elapsed time reported).
 *
 * Where behaviour follows whom (docs/internals/optim.md has the details):
 *  - Adam is torch.optim.Adam (Kingma & Ba, bias-corrected, eps added to
 *    the corrected root of v), weight_decay is torch's L2 term added to
 *    the gradient, or with decoupled_wd torch.optim.AdamW (Loshchilov &
 *    Hutter: x *= 1 - lr * weight_decay before the step). Defaults are
 *    torch's: lr 1e-3, betas 0.9 / 0.999, eps 1e-8, weight_decay 0.
 *  - The schedules are torch.optim.lr_scheduler's StepLR, ExponentialLR
 *    and CosineAnnealingLR (T_max = max_iters), stepped once per
 *    iteration, optionally multiplied by a linear warm-up.
 *  - GD is torch.optim.SGD without momentum.
 *  - L-BFGS is NLopt's (Luksan's limited-memory variable metric code with
 *    simple bounds); its options and defaults follow SciPy's
 *    minimize(method="L-BFGS-B"): memory (maxcor) 10, gtol 1e-5 on the
 *    infinity norm of the projected gradient, ftol_rel 2.220446e-9
 *    (factr 1e7 times the machine epsilon), max_iters and max_evals 15000.
 *  - Unlike torch, which leaves the last iterate in the parameters, every
 *    method returns the best point evaluated (for L-BFGS, as SciPy).
 *
 * Stopping. Every run stops: max_iters is required (>= 1). The tests:
 *   gtol      projected gradient's infinity norm <= gtol (the projection
 *             zeroes components that push against an active bound, as
 *             L-BFGS-B's pgtol), tested at the start too;
 *   ftol_rel  |f_k - f_{k-1}| <= ftol_rel * |f_k|;
 *   ftol_abs  |f_k - f_{k-1}| <= ftol_abs;
 *   xtol_rel  |x_k,i - x_{k-1},i| <= xtol_rel * |x_k,i| for every i;
 *   max_evals, max_seconds (wall time since the call).
 * A tolerance of 0 disables its test. For Adam and GD a tolerance test
 * must hold for `patience` consecutive iterations. For L-BFGS, gtol,
 * max_iters, max_evals and max_seconds are checked by Twin after every
 * evaluation; ftol_rel, ftol_abs and xtol_rel are NLopt's own tests.
 *
 * Iterations. For Adam and GD an iteration is one update followed by one
 * evaluation. NLopt does not expose L-BFGS iterations: there an iteration
 * is an evaluation that improves the best loss (nearly always an accepted
 * line-search step), and the progress callback is called after each.
 *
 * Bounds. lower/upper (NULL: unbounded; +-INFINITY entries allowed, NaN
 * refused) must hold the start. L-BFGS handles them natively; Adam and GD
 * project (clamp) each new point onto the box. The callback is never
 * called with an x outside the bounds.
 *
 * Errors. Bad input is TW_EINVAL naming the field or index, before any
 * evaluation, with x and *res untouched. Once the run has started, x
 * always holds the best finite point evaluated (the start if there is
 * none) and *res is filled, whatever the return code:
 *   TW_OK        a normal stop; res->reason says which;
 *   TW_ENUMERIC  a NaN or infinite loss or gradient (reason DIVERGED),
 *                the message names the evaluation and the value;
 *   the callback's own code and message when it fails (reason ERROR);
 *   TW_ENOMEM, or TW_EINTERNAL for an NLopt failure Twin cannot explain.
 *
 * Memory: scratch vectors come from tw_alloc and are freed before the
 * call returns; NLopt allocates its own working memory with malloc.
 *
 * Thread safety: tw_optim_minimize has no shared state; concurrent runs
 * are independent. Callbacks run on the calling thread, inside the call.
 */
#ifndef TWIN_OPTIM_H
#define TWIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* The loss: writes f(x) into *f and its gradient (n values) into grad.
 * Returns TW_OK, or a TW_E* code with err set, which aborts the run. x
 * and grad are valid for the call only; x lies inside the bounds. */
typedef int (*tw_optim_fn)(void *ud, const double *x, double *f, double *grad,
                           tw_err *err);

typedef enum tw_optim_method {
  TW_OPTIM_ADAM = 0,
  TW_OPTIM_LBFGS,
  TW_OPTIM_GD
} tw_optim_method;

/* Learning-rate schedules (Adam, GD); t counts iterations from 0. */
typedef enum tw_optim_schedule {
  TW_OPTIM_LR_CONSTANT = 0, /* lr */
  TW_OPTIM_LR_STEP,         /* lr * gamma^floor(t / step_size) */
  TW_OPTIM_LR_EXP,          /* lr * gamma^t */
  TW_OPTIM_LR_COSINE /* lr_min + (lr - lr_min)(1 + cos(pi t / max_iters))/2 */
} tw_optim_schedule;

typedef enum tw_optim_stop {
  TW_OPTIM_STOP_NONE = 0,  /* not stopped (never in a result) */
  TW_OPTIM_STOP_GTOL,      /* projected gradient norm <= gtol */
  TW_OPTIM_STOP_FTOL,      /* loss change <= ftol_rel / ftol_abs */
  TW_OPTIM_STOP_XTOL,      /* step <= xtol_rel */
  TW_OPTIM_STOP_MAX_ITERS, /* max_iters iterations done */
  TW_OPTIM_STOP_MAX_EVALS, /* max_evals evaluations done */
  TW_OPTIM_STOP_TIME,      /* max_seconds elapsed */
  TW_OPTIM_STOP_CALLBACK,  /* the progress callback asked to stop */
  TW_OPTIM_STOP_DIVERGED,  /* NaN or infinite loss or gradient */
  TW_OPTIM_STOP_ERROR,     /* the loss callback failed, or out of memory */
  /* L-BFGS: NLopt reports convergence by its own test (Luksan's
   * max |g_i| <= 1e-8 on the free variables). */
  TW_OPTIM_STOP_CONVERGED,
  /* L-BFGS: the line search can make no more progress (NLopt's
   * ROUNDOFF_LIMITED or a line-search failure): the best point is
   * returned, as SciPy's ABNORMAL_TERMINATION_IN_LNSRCH. Usually
   * tolerances below the loss's precision, or a gradient that does not
   * match the loss. */
  TW_OPTIM_STOP_NO_PROGRESS
} tw_optim_stop;

/* What the progress callback sees after each iteration. */
typedef struct tw_optim_progress {
  uint64_t iteration;   /* 1, 2, ... */
  uint64_t evaluations; /* loss evaluations so far */
  double loss;          /* at x */
  double grad_norm;     /* infinity norm of the projected gradient at x */
  double step_norm;     /* 2-norm of x minus the previous iterate */
  double lr;            /* Adam, GD: the rate of this step; L-BFGS: NaN */
  double elapsed_s;     /* since tw_optim_minimize was called */
  const double *x;      /* n values, valid during the call only */
  size_t n;
} tw_optim_progress;

/* Returns 0 to go on, non-zero to stop the run (TW_OPTIM_STOP_CALLBACK, a
 * normal stop that returns TW_OK). */
typedef int (*tw_optim_progress_fn)(void *ud, const tw_optim_progress *p);

/* Options. Always start from tw_optim_opts_init, then change fields; the
 * defaults are in brackets (A: Adam, G: GD, L: L-BFGS). */
typedef struct tw_optim_opts {
  tw_optim_method method;

  /* Stopping (see the header comment). */
  uint64_t max_iters; /* >= 1 [A, G: 1000; L: 15000] */
  uint64_t max_evals; /* 0: no limit [A, G: 0; L: 15000] */
  double max_seconds; /* 0: no limit [0] */
  double gtol;        /* [A, G: 0; L: 1e-5] */
  double ftol_rel;    /* [A, G: 0; L: 2.220446049250313e-9] */
  double ftol_abs;    /* [0] */
  double xtol_rel;    /* [0] */
  unsigned patience;  /* Adam, GD: consecutive iterations, >= 1 [1] */

  /* Box bounds, n values each, borrowed for the call; NULL: unbounded. */
  const double *lower;
  const double *upper;

  /* Adam and GD. */
  double lr;           /* > 0 [A: 1e-3; G: 1e-2] */
  double beta1, beta2; /* Adam, in [0, 1) [0.9, 0.999] */
  double eps;          /* Adam, >= 0 [1e-8] */
  double weight_decay; /* >= 0 [0] */
  bool decoupled_wd;   /* AdamW: decay x itself, not the gradient [false] */
  tw_optim_schedule schedule; /* [CONSTANT] */
  double lr_gamma;            /* STEP, EXP: factor > 0 [0.1] */
  uint64_t lr_step_size;      /* STEP: iterations per decay, >= 1 [100] */
  double lr_min;              /* COSINE: final rate, in [0, lr] [0] */
  /* Linear warm-up: iteration t < warmup_iters uses the rate times
   * (t + 1) / warmup_iters. [0] */
  uint64_t warmup_iters;

  /* L-BFGS: corrections kept (SciPy's maxcor), 1 to 1000 [10]. */
  unsigned memory;

  /* Called after every iteration; NULL: none. */
  tw_optim_progress_fn progress;
  void *progress_ud;
} tw_optim_opts;

/* The outcome of a run. */
typedef struct tw_optim_result {
  double loss;          /* best loss (at the x returned); NaN if none */
  uint64_t iterations;  /* iterations done */
  uint64_t evaluations; /* loss evaluations made */
  tw_optim_stop reason;
  double grad_norm; /* projected gradient's infinity norm at x; NaN: none */
  double elapsed_s; /* wall time of the run */
} tw_optim_result;

/* Fills *o with the defaults of method m (above). */
TW_API void tw_optim_opts_init(tw_optim_opts *o, tw_optim_method m);

/* Minimises fn over R^n (or the box) from x (n values, updated in
 * place with the best point). fn, ud and opts are borrowed for the call;
 * res may be NULL. Returns TW_OK for a normal stop, see the header
 * comment for the errors. */
TW_API int tw_optim_minimize(size_t n, double *x, tw_optim_fn fn, void *ud,
                             const tw_optim_opts *opts, tw_optim_result *res,
                             tw_err *err);

/* Parses "adam", "lbfgs" (or "l-bfgs") or "gd" into *out. Returns TW_OK or
 * TW_EINVAL naming the string (out untouched). */
TW_API int tw_optim_method_parse(const char *name, tw_optim_method *out,
                                 tw_err *err);

/* "adam", "lbfgs", "gd"; "unknown" for another value. Static strings. */
TW_API const char *tw_optim_method_name(tw_optim_method m);

/* "gtol", "ftol", "xtol", "max_iters", "max_evals", "time", "callback",
 * "diverged", "error", "converged", "no_progress", "none"; "unknown" for
 * another value. Static strings. */
TW_API const char *tw_optim_stop_name(tw_optim_stop reason);

TW_EXTERN_C_END

#endif /* TWIN_OPTIM_H */
