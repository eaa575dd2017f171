/*
 * cartpole.c - the cart-pole as a Twin model: a cart on a frictionless
 * track pushed by a force, with a pole on a frictionless hinge (Barto,
 * Sutton & Anderson 1983, with the corrected equations of Florian 2007,
 * as Twin's builtin tw_sim_cartpole), stepped by classic RK4.
 *
 * q = [x, theta, x_dot, theta_dot] (theta = 0 upright, positive
 * clockwise), u = [force], params [cart_mass, pole_mass, half_length,
 * gravity]. With M = m_c + m_p, s = sin theta, c = cos theta, w = theta':
 *
 *   A        = -F - m_p l w^2 s
 *   theta''  = (g s + c A / M) / (l (4/3 - m_p c^2 / M))
 *   x''      = (F + m_p l (w^2 s - theta'' c)) / M
 *
 * The outputs are the cart position and the pole angle from the state
 * (no feedthrough). The VJP comes from the guest's AD: step_ad writes the
 * four RK4 stages with the tw_model_ad_* helpers, and the SDK runs the
 * recorded tape backward. The native test checks it against finite
 * differences and against the builtin cart-pole's hand-written VJP.
 */
#include "twin_model.h"

enum { X, THETA, X_DOT, THETA_DOT, NQ }; /* state ports */
enum { CART_MASS, POLE_MASS, HALF_LENGTH, GRAVITY };

static const tw_model_port state[] = {
    {.name = "x", .unit = "m", .size = 1},
    {.name = "theta",
     .unit = "rad",
     .size = 1,
     .default_ = TW_MODEL_VALUES(0.05)},
    {.name = "x_dot", .unit = "m/s", .size = 1},
    {.name = "theta_dot", .unit = "rad/s", .size = 1},
};
static const tw_model_port inputs[] = {
    {.name = "force", .unit = "N", .size = 1, .default_ = TW_MODEL_VALUES(0.0)},
};
static const tw_model_port outputs[] = {
    {.name = "x", .unit = "m", .size = 1, .feedthrough = ""},
    {.name = "theta", .unit = "rad", .size = 1, .feedthrough = ""},
};
static const tw_model_port params[] = {
    {.name = "cart_mass",
     .unit = "kg",
     .size = 1,
     .default_ = TW_MODEL_VALUES(1.0),
     .min = TW_MODEL_VALUES(0.01),
     .max = TW_MODEL_VALUES(100.0)},
    {.name = "pole_mass",
     .unit = "kg",
     .size = 1,
     .default_ = TW_MODEL_VALUES(0.1),
     .min = TW_MODEL_VALUES(0.001),
     .max = TW_MODEL_VALUES(100.0)},
    {.name = "half_length",
     .unit = "m",
     .size = 1,
     .default_ = TW_MODEL_VALUES(0.5),
     .min = TW_MODEL_VALUES(0.01),
     .max = TW_MODEL_VALUES(10.0)},
    {.name = "gravity",
     .unit = "m/s^2",
     .size = 1,
     .default_ = TW_MODEL_VALUES(9.8),
     .min = TW_MODEL_VALUES(0.0),
     .max = TW_MODEL_VALUES(100.0)},
};

/* Short names for the helpers: the equations above, nearly verbatim. */
#define ADD(p, q) tw_model_ad_add(a, p, q)
#define SUB(p, q) tw_model_ad_sub(a, p, q)
#define MUL(p, q) tw_model_ad_mul(a, p, q)
#define DIV(p, q) tw_model_ad_div(a, p, q)
#define SCALE(k, p) tw_model_ad_scale(a, k, p)
#define AXPY(k, p, q) tw_model_ad_axpy(a, k, p, q)

/* qdot = g(q, F) on the tape. */
static void deriv(tw_model_ad *a, tw_tensor *const *q, tw_tensor **qdot) {
  tw_tensor *F = a->input[0];
  tw_tensor *mc = a->param[CART_MASS], *mp = a->param[POLE_MASS];
  tw_tensor *l = a->param[HALF_LENGTH], *g = a->param[GRAVITY];
  tw_tensor *s = tw_model_ad_sin(a, q[THETA]);
  tw_tensor *c = tw_model_ad_cos(a, q[THETA]);
  tw_tensor *w = q[THETA_DOT];
  tw_tensor *M = ADD(mc, mp);
  tw_tensor *mpl = MUL(mp, l);
  tw_tensor *w2s = MUL(MUL(w, w), s);
  tw_tensor *A = SUB(tw_model_ad_neg(a, F), MUL(mpl, w2s));
  tw_tensor *D =
      MUL(l, SUB(tw_model_ad_const(a, 4.0 / 3.0), DIV(MUL(mp, MUL(c, c)), M)));
  tw_tensor *thdd = DIV(ADD(MUL(g, s), DIV(MUL(c, A), M)), D);
  tw_tensor *xdd = DIV(ADD(F, MUL(mpl, SUB(w2s, MUL(thdd, c)))), M);
  qdot[X] = q[X_DOT];
  qdot[THETA] = w;
  qdot[X_DOT] = xdd;
  qdot[THETA_DOT] = thdd;
}

/* Classic RK4: k1 = g(q), k2 = g(q + dt/2 k1), k3 = g(q + dt/2 k2),
 * k4 = g(q + dt k3), q' = q + dt/6 (k1 + 2 k2 + 2 k3 + k4). */
static int step_ad(tw_model_ad *a) {
  tw_tensor *const *q = a->state;
  double h = a->dt;
  tw_tensor *k1[NQ], *k2[NQ], *k3[NQ], *k4[NQ], *qs[NQ];
  deriv(a, q, k1);
  for (int i = 0; i < NQ; i++)
    qs[i] = AXPY(h / 2, k1[i], q[i]);
  deriv(a, qs, k2);
  for (int i = 0; i < NQ; i++)
    qs[i] = AXPY(h / 2, k2[i], q[i]);
  deriv(a, qs, k3);
  for (int i = 0; i < NQ; i++)
    qs[i] = AXPY(h, k3[i], q[i]);
  deriv(a, qs, k4);
  for (int i = 0; i < NQ; i++) {
    tw_tensor *sum = ADD(AXPY(2, ADD(k2[i], k3[i]), k1[i]), k4[i]);
    a->state_next[i] = AXPY(h / 6, sum, q[i]);
  }
  a->output[0] = q[X];
  a->output[1] = q[THETA];
  return TW_OK;
}

static const tw_model_def cartpole = {
    .name = "cartpole",
    .version = "1.0.0",
    .state = state,
    .nstate = TW_MODEL_COUNT(state),
    .inputs = inputs,
    .ninputs = TW_MODEL_COUNT(inputs),
    .outputs = outputs,
    .noutputs = TW_MODEL_COUNT(outputs),
    .params = params,
    .nparams = TW_MODEL_COUNT(params),
    .step_ad = step_ad,
};
TW_MODEL(cartpole);
