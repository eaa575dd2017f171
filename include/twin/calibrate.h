/*
 * twin/calibrate.h - calibration jobs: fitting a twin's parameters to a
 * recording by exact gradients (the main job of `twin calibrate`).
 *
 * A twin-compose file's calibrate: section (twin/compose.h) names the
 * parameters to fit with their bounds, the loss (weighted squared errors
 * between twin outputs and recorded channels) and the recordings. The job
 * reads the recording once: the twin's mcap sources feed its inputs (as
 * `twin compose up` would, from the calibration's recording), and each
 * loss channel's samples are put on the twin's tick grid (sample time t
 * on tick round(t / dt) when within dt / 2; ticks without a sample add
 * nothing). The loss is
 *
 *     L(theta) = sum over loss terms j of weight_j * mean over the ticks
 *                with a sample of |y_j(k) - measured_j(k)|^2
 *              + sum over fitted values of l2 * theta^2
 *
 * and its gradient comes from the graph's discrete adjoint
 * (tw_graph_grad) under the chosen checkpoint schedule. The optimiser
 * (twin/optim.h) runs inside the bounds; its best point is the result.
 * With a validation recording the same loss (without the l2 term) is
 * reported there, for the start and the fitted parameters.
 *
 * Errors name the cause: a twin without a calibrate: section
 * (TW_EINVAL), a recording or a channel missing (TW_ENOENT, naming the
 * file and the topic), a channel whose samples do not match the output's
 * size (TW_EINVAL), L-BFGS asked for with a parameter without bounds
 * (TW_EINVAL naming it), a run that diverges (TW_ENUMERIC: the best
 * parameters so far are kept in the result and in the twin's graph).
 *
 * Thread safety: a job uses the twin's graph; one job per twin at a time.
 */
#ifndef TWIN_CALIBRATE_H
#define TWIN_CALIBRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/compose.h"
#include "twin/error.h"
#include "twin/optim.h"

TW_EXTERN_C_BEGIN

typedef struct tw_calib_opts {
  const char *data;       /* the recording to fit; NULL: the section's */
  const char *validation; /* held-out recording; NULL: the section's */
  const char *optimizer;  /* "lbfgs", "adam", "gd"; NULL: the section's */
  uint64_t iterations;    /* 0: the section's, else the optimiser's */
  const char *schedule;   /* checkpoints: "all", "revolve:K", ...; NULL:
                             "all" */
  double learning_rate;   /* adam, gd; 0: the section's, else default */
  double max_seconds;     /* 0: no limit */
  /* After every iteration (twin/optim.h); may stop the run. */
  tw_optim_progress_fn progress;
  void *progress_ud;
} tw_calib_opts;

/* One fitted parameter port. */
typedef struct tw_calib_param {
  const char *name; /* "plant.k" (borrowed from the twin) */
  size_t size;      /* values */
  double *initial;  /* size values before the fit */
  double *fitted;   /* size values after */
  bool has_truth;   /* calibrate.truth gives it (size 1) */
  double truth;
} tw_calib_param;

typedef struct tw_calib_result {
  tw_calib_param *params;
  size_t nparams;
  size_t nvalues;      /* fitted scalars in all */
  double loss_initial; /* the training loss at the start */
  double loss;         /* at the fitted parameters */
  bool has_validation;
  double val_initial; /* the validation loss at the start */
  double val_loss;    /* at the fitted parameters */
  int64_t ticks;      /* of the training recording */
  int64_t val_ticks;
  tw_optim_result opt;
  const char *method; /* "lbfgs", "adam", "gd" */
  /* The loss after each iteration (opt.iterations values). */
  double *curve;
  size_t ncurve;
  /* The training run, for plots: ticks rows of the twin's outputs
   * (output_width values) at the start and fitted, and the measured
   * values on the same grid (NaN where no sample). */
  size_t ny;
  double *y_initial, *y_fitted, *measured;
  double dt;
} tw_calib_result;

/* Runs the calibration of c. *res is filled (also on TW_ENUMERIC: the
 * best point so far) and freed with tw_calib_result_free; the twin's
 * graph keeps the fitted parameters. */
TW_API int tw_calibrate(tw_compose *c, const tw_calib_opts *opts,
                        tw_calib_result *res, tw_err *err);

TW_API void tw_calib_result_free(tw_calib_result *res);

TW_EXTERN_C_END

#endif /* TWIN_CALIBRATE_H */
