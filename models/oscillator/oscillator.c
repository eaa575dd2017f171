/*
 * oscillator.c - a damped spring-mass oscillator as a Twin model, with a
 * hand-written VJP.
 *
 *   m x'' = F - k x - c x'
 *
 * stepped by semi-implicit (symplectic) Euler, which keeps the energy of
 * the undamped oscillator bounded where explicit Euler would pump it up:
 *
 *   a  = (F - k x - c v) / m
 *   v' = v + dt a
 *   x' = x + dt v'
 *   y  = x            (the position, from the state: no feedthrough)
 *
 * The VJP is the transpose of that step's Jacobian, term by term: with
 * the cotangents gx', gv' of (x', v') and gy of y, and
 * gvt = gv' + dt gx' the cotangent reaching v',
 *
 *   gx = gx' + gy - gvt dt k / m      gv = gvt (1 - dt c / m)
 *   gF = gvt dt / m
 *   gm += -gvt dt a / m   gk += -gvt dt x / m   gc += -gvt dt v / m
 */
#include "twin_model.h"

enum { X, V };    /* state ports */
enum { M, K, C }; /* params */

static const tw_model_port state[] = {
    {.name = "x", .unit = "m", .size = 1, .default_ = TW_MODEL_VALUES(1.0)},
    {.name = "v", .unit = "m/s", .size = 1, .default_ = TW_MODEL_VALUES(0.0)},
};
static const tw_model_port inputs[] = {
    {.name = "F", .unit = "N", .size = 1, .default_ = TW_MODEL_VALUES(0.0)},
};
static const tw_model_port outputs[] = {
    {.name = "x", .unit = "m", .size = 1, .feedthrough = ""},
};
static const tw_model_port params[] = {
    {.name = "m",
     .unit = "kg",
     .size = 1,
     .default_ = TW_MODEL_VALUES(1.0),
     .min = TW_MODEL_VALUES(1e-6),
     .max = TW_MODEL_VALUES(1e6)},
    {.name = "k",
     .unit = "N/m",
     .size = 1,
     .default_ = TW_MODEL_VALUES(4.0),
     .min = TW_MODEL_VALUES(0.0),
     .max = TW_MODEL_VALUES(1e6)},
    {.name = "c",
     .unit = "N*s/m",
     .size = 1,
     .default_ = TW_MODEL_VALUES(0.1),
     .min = TW_MODEL_VALUES(0.0),
     .max = TW_MODEL_VALUES(1e6)},
};

static int check_mass(double m) {
  if (!(m > 0))
    return tw_model_fail(TW_ERANGE, "oscillator: mass must be > 0, got %g", m);
  return TW_OK;
}

static int step(const tw_model_call *c) {
  double x = c->x[X], v = c->x[V], F = c->u[0];
  double m = c->theta[M], k = c->theta[K], damp = c->theta[C];
  int rc = check_mass(m);
  if (rc != TW_OK)
    return rc;
  double a = (F - k * x - damp * v) / m;
  double v1 = v + c->dt * a;
  c->x_next[X] = x + c->dt * v1;
  c->x_next[V] = v1;
  c->y[0] = x;
  return TW_OK;
}

static int step_vjp(const tw_model_call *c) {
  double x = c->x[X], v = c->x[V], F = c->u[0], dt = c->dt;
  double m = c->theta[M], k = c->theta[K], damp = c->theta[C];
  int rc = check_mass(m);
  if (rc != TW_OK)
    return rc;
  double a = (F - k * x - damp * v) / m;
  double gvt = c->gx_next[V] + dt * c->gx_next[X];
  double ga = gvt * dt; /* cotangent of a */
  c->gx[X] += c->gx_next[X] + c->gy[0] - ga * k / m;
  c->gx[V] += gvt - ga * damp / m;
  c->gu[0] += ga / m;
  c->gtheta[M] += -ga * a / m;
  c->gtheta[K] += -ga * x / m;
  c->gtheta[C] += -ga * v / m;
  return TW_OK;
}

static const tw_model_def oscillator = {
    .name = "oscillator",
    .version = "1.0.0",
    .state = state,
    .nstate = TW_MODEL_COUNT(state),
    .inputs = inputs,
    .ninputs = TW_MODEL_COUNT(inputs),
    .outputs = outputs,
    .noutputs = TW_MODEL_COUNT(outputs),
    .params = params,
    .nparams = TW_MODEL_COUNT(params),
    .step = step,
    .step_vjp = step_vjp,
};
TW_MODEL(oscillator);
