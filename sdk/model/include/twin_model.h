/*
 * twin_model.h - the model SDK: write a Twin model in C, compile it to
 * wasm32 (`twin model build model.c -o model.wasm`), and the library
 * libtwin_model.a implements the model ABI v1 (docs/model-abi.md) for it.
 *
 * A model is one tw_model_def: its ports (state, inputs, outputs,
 * params, each a named slice of a flat f64 vector, with a unit, a size
 * and, where they apply, defaults and bounds) and its callbacks. The
 * library generates the JSON descriptor from the ports, exports
 * tw_abi_version, tw_describe, tw_alloc, tw_init, tw_step and tw_step_vjp,
 * and calls the callbacks with typed views of the host's buffers:
 *
 *   #include "twin_model.h"
 *
 *   static const tw_model_port state[] = {{.name = "x", .unit = "m",
 *                                          .size = 1}};
 *   static const tw_model_port params[] = {
 *       {.name = "k", .unit = "1/s", .size = 1,
 *        .default_ = TW_MODEL_VALUES(0.5), .min = TW_MODEL_VALUES(0)}};
 *
 *   static int step(const tw_model_call *c) {   // x' = x - dt k x
 *     c->x_next[0] = c->x[0] - c->dt * c->theta[0] * c->x[0];
 *     return TW_OK;
 *   }
 *   static int step_vjp(const tw_model_call *c) {
 *     c->gx[0] += c->gx_next[0] * (1 - c->dt * c->theta[0]);
 *     c->gtheta[0] += c->gx_next[0] * (-c->dt * c->x[0]);
 *     return TW_OK;
 *   }
 *   static const tw_model_def decay = {
 *       .name = "decay", .version = "1.0.0",
 *       .state = state, .nstate = TW_MODEL_COUNT(state),
 *       .params = params, .nparams = TW_MODEL_COUNT(params),
 *       .step = step, .step_vjp = step_vjp};
 *   TW_MODEL(decay);
 *
 * Gradients come either from a hand-written step_vjp (as above) or from
 * the guest's own copy of Twin's kernel-level AD (src/ad, compiled into
 * libtwin_model.a): write step_ad, the forward step on a tape with the
 * tw_model_ad_* helpers below or any tw_ad_* operator of twin/ad.h, and
 * the library runs the recorded tape backward for tw_step_vjp (and the
 * same code without recording for tw_step, unless a step is given too).
 *
 * Return codes. Callbacks return TW_OK (0) or an error: by convention a
 * negative code of include/twin/error.h (TW_EINVAL, TW_ERANGE, ...), after
 * saying why with tw_model_fail or tw_model_log; the host reports a
 * nonzero return as a model error with its code.
 *
 * One model per module. The library keeps the module's state (the
 * descriptor, views, the tape) in the module's own memory: a wasm instance
 * is single-threaded and holds one model, so there is no context to pass.
 * Compiled natively (for tests of a model's gradients), the same holds per
 * process: link one model per executable and use it from one thread.
 */
#ifndef TWIN_MODEL_H
#define TWIN_MODEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/ad.h"
#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* The model ABI this SDK implements. */
#define TW_MODEL_ABI_VERSION 1

/* --- Describing a model -------------------------------------------------- */

/* Numbers of a default, min or max: none (n == 0), one broadcast to the
 * port's size (n == 1), or exactly size values. */
typedef struct tw_model_values {
  const double *v;
  size_t n;
} tw_model_values;

/* TW_MODEL_VALUES(1.0) or TW_MODEL_VALUES(1, 2, 3): a tw_model_values
 * initialiser over a compound literal, for port tables at file scope
 * (where the literal has static storage). */
#define TW_MODEL_VALUES(...)                                                   \
  {                                                                            \
    (const double[]){__VA_ARGS__},                                             \
        sizeof((const double[]){__VA_ARGS__}) / sizeof(double)                 \
  }

/* Element count of a port table. */
#define TW_MODEL_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One port: a named slice of size f64 values. Ports of a kind are laid out
 * one after the other in table order; their sizes add up to the vector's
 * length (nx, nu, ny, ntheta). Values must be finite. */
typedef struct tw_model_port {
  const char *name; /* non-empty, unique within its kind */
  const char *unit; /* "m", "N/m", "" (or NULL) for dimensionless */
  size_t size;      /* >= 1 */
  /* inputs: the value used when nothing is connected; params: the
   * default value (0 when absent); state: the initial state tw_init
   * writes when the model has no init callback (0 when absent). */
  tw_model_values default_;
  tw_model_values min, max; /* params only; absent: unbounded */
  /* outputs only: the inputs this output depends on within one step, as
   * input names separated by spaces or commas. NULL: every input (the
   * descriptor omits the key); "": none (the output is a function of the
   * state and params only, so loops through it need no algebraic solve). */
  const char *feedthrough;
  /* state, inputs, outputs: the values the port holds, TW_F64 (the
   * default), TW_F32, TW_I64, TW_I32 or TW_BOOL (dtype.h); they still
   * travel as doubles. Params are always TW_F64. */
  tw_dtype dtype;
} tw_model_port;

typedef struct tw_model_call tw_model_call;
typedef struct tw_model_ad tw_model_ad;

/* A model. Every string and table is borrowed for the life of the module
 * (static data in practice). */
typedef struct tw_model_def {
  const char *name;    /* non-empty */
  const char *version; /* e.g. "1.0.0"; NULL is "0" */
  const tw_model_port *state, *inputs, *outputs, *params;
  size_t nstate, ninputs, noutputs, nparams; /* port counts */
  /* Writes the initial state c->x_next from c->theta. Optional: without
   * it tw_init writes the state ports' defaults. */
  int (*init)(const tw_model_call *c);
  /* One step: c->x_next and c->y from c->x, c->u, c->theta, c->t, c->dt.
   * Optional when step_ad is given. */
  int (*step)(const tw_model_call *c);
  /* The step's vector-Jacobian product, hand-written: from c->gx_next and
   * c->gy (and the forward arguments) ADD the cotangents into c->gx,
   * c->gu and c->gtheta. The library zeroes gx and gu before the call
   * (the ABI overwrites them) and leaves gtheta as the host gave it (the
   * ABI accumulates into it), so every term is a +=. */
  int (*step_vjp)(const tw_model_call *c);
  /* The step on an AD tape (see tw_model_ad). Gives tw_step when step is
   * NULL and tw_step_vjp when step_vjp is NULL. When both step and
   * step_ad are given they must compute the same function. */
  int (*step_ad)(tw_model_ad *a);
  /* With step_ad: fail with TW_ENUMERIC (naming the operator) when a value
   * or adjoint on the tape is NaN or Inf. */
  bool check_finite;
  void *user; /* passed to the callbacks as c->user / a->user */
} tw_model_def;

/* What init, step and step_vjp see. Vectors are the host's buffers in
 * descriptor order; the per-port arrays point into them (state[i] is x
 * plus the offset of state port i), so a callback can use whichever is
 * clearer. Fields a call does not have are NULL (init has theta, param,
 * x_next, state_next; step adds x, u, state, input, y, output, t, dt;
 * step_vjp adds the g* fields). */
struct tw_model_call {
  double t, dt;
  const double *x, *u, *theta;
  double *x_next, *y;
  const double *gx_next, *gy;
  double *gx, *gu, *gtheta;
  const double *const *state, *const *input, *const *param;
  double *const *state_next, *const *output;
  const double *const *g_state_next, *const *g_output;
  double *const *g_state, *const *g_input, *const *g_param;
  void *user;
};

/* What step_ad sees. The state, input and param tensors are leaves of
 * shape [size] over the host's buffers, one per port; step_ad sets
 * state_next[i] and output[i] to tensors of their ports' sizes (any shape)
 * computed from them on tape. The helpers below record their failure in
 * rc and err (the first one wins) and return NULL, and take NULL inputs
 * as "an earlier step failed", so step_ad can be written without checking
 * each call: the library returns rc after step_ad returns TW_OK. */
struct tw_model_ad {
  tw_tape *tape;
  double t, dt;
  tw_tensor *const *state, *const *input, *const *param;
  tw_tensor **state_next, **output;
  void *user;
  int rc;      /* TW_OK, or the first helper failure */
  tw_err *err; /* its message */
};

/* Makes def the module's model and links the ABI exports into the module:
 * use once, at file scope, in one source file of the model. */
#define TW_MODEL(def)                                                          \
  const tw_model_def *tw__model_def(void) { return &(def); }                   \
  __attribute__((used)) const int *const tw__model_exports_ref =               \
      &tw__model_exports

const tw_model_def *tw__model_def(void);
extern const int tw__model_exports;

/* --- Logging and errors -------------------------------------------------- */

/* Levels of tw_host.log. */
enum {
  TW_MODEL_LOG_DEBUG = 0,
  TW_MODEL_LOG_INFO = 1,
  TW_MODEL_LOG_WARN = 2,
  TW_MODEL_LOG_ERROR = 3
};

/* Formats a message (at most 1023 bytes; longer ones end in "...") and
 * hands it to the host's log (import tw_host.log); compiled natively, to
 * stderr. */
void tw_model_log(int level, const char *fmt, ...) TW_PRINTF(2, 3);
void tw_model_logv(int level, const char *fmt, va_list ap) TW_PRINTF(2, 0);

/* Logs the message at TW_MODEL_LOG_ERROR and evaluates to code (TW_OK is
 * turned into TW_EINTERNAL): `return tw_model_fail(TW_ERANGE, ...)`. */
int tw_model_fail(int code, const char *fmt, ...) TW_PRINTF(2, 3);

/* --- The ABI with native pointers ---------------------------------------- */
/* What the wasm exports call after turning guest addresses into pointers,
 * and what a native harness calls to test a model (tests/unit/model). The
 * first call checks the definition and builds the descriptor; a bad
 * definition makes every call fail with TW_EINVAL after logging why. */

/* The descriptor JSON (borrowed, valid for the life of the module) and its
 * length, or NULL after logging why. */
const char *tw_model_describe(size_t *len);
/* Vector lengths (sums of the port sizes); all 0 for a bad definition. */
void tw_model_sizes(size_t *nx, size_t *nu, size_t *ny, size_t *ntheta);
/* The ABI calls; see docs/model-abi.md. u, y, and the g* vectors have
 * their full lengths (the host always passes every buffer). */
int tw_model_init(const double *theta, double *x0);
int tw_model_step(double t, double dt, const double *x, const double *u,
                  const double *theta, double *x_next, double *y);
int tw_model_step_vjp(double t, double dt, const double *x, const double *u,
                      const double *theta, const double *gx_next,
                      const double *gy, double *gx, double *gu, double *gtheta);

/* --- AD helpers for step_ad ---------------------------------------------- */
/* Each returns a new tensor on a->tape (recorded when an input requires
 * grad) or NULL after recording the failure in a->rc and a->err; a NULL
 * input returns NULL at once. Binary operators accept one operand of size
 * 1 with any shape and broadcast it (a recorded tw_ad_broadcast, whose
 * adjoint sums) to the other's shape; otherwise shapes must be equal, as
 * for the tw_ad_* operators themselves. */

/* A constant of shape [1], or [n] from v[0..n). */
tw_tensor *tw_model_ad_const(tw_model_ad *a, double value);
tw_tensor *tw_model_ad_vec(tw_model_ad *a, size_t n, const double *v);

tw_tensor *tw_model_ad_add(tw_model_ad *a, tw_tensor *x, tw_tensor *y);
tw_tensor *tw_model_ad_sub(tw_model_ad *a, tw_tensor *x, tw_tensor *y);
tw_tensor *tw_model_ad_mul(tw_model_ad *a, tw_tensor *x, tw_tensor *y);
tw_tensor *tw_model_ad_div(tw_model_ad *a, tw_tensor *x, tw_tensor *y);
/* alpha * x + y; alpha * x. */
tw_tensor *tw_model_ad_axpy(tw_model_ad *a, double alpha, tw_tensor *x,
                            tw_tensor *y);
tw_tensor *tw_model_ad_scale(tw_model_ad *a, double alpha, tw_tensor *x);

tw_tensor *tw_model_ad_neg(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_exp(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_log(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_sin(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_cos(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_tanh(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_sqrt(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_abs(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_relu(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_softplus(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_sigmoid(tw_model_ad *a, tw_tensor *x);

/* Reductions to a scalar (ndim 0); dot takes equal shapes. */
tw_tensor *tw_model_ad_sum(tw_model_ad *a, tw_tensor *x);
tw_tensor *tw_model_ad_dot(tw_model_ad *a, tw_tensor *x, tw_tensor *y);

/* x viewed as a [rows, cols] matrix (x->size == rows * cols). */
tw_tensor *tw_model_ad_matrix(tw_model_ad *a, tw_tensor *x, size_t rows,
                              size_t cols);
/* w [m,n] x [n] -> [m] (tw_ad_matvec). */
tw_tensor *tw_model_ad_matvec(tw_model_ad *a, tw_tensor *w, tw_tensor *x);
/* Element i of x (flat order), shape [1]. */
tw_tensor *tw_model_ad_elem(tw_model_ad *a, tw_tensor *x, size_t i);
/* The elements of parts[0..n) one after the other, shape [total]. */
tw_tensor *tw_model_ad_concat(tw_model_ad *a, size_t n,
                              tw_tensor *const *parts);

TW_EXTERN_C_END

#endif /* TWIN_MODEL_H */
