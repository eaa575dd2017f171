/*
 * cartpole.c - the builtin cart-pole (tw_sim_cartpole): a cart on a
 * frictionless track with a pole on a frictionless hinge (Barto, Sutton &
 * Anderson 1983, with the corrected equations of Florian 2007, "Correct
 * equations for the dynamics of the cart-pole system", without friction),
 * and the hand-written VJP of its dynamics.
 *
 * q = [x, theta, x_dot, theta_dot] (theta = 0 upright, positive clockwise
 * as in the classic control benchmark), u = [F], theta_p = [m_c, m_p, l, g]
 * (l is the half-length of the pole). With M = m_c + m_p, s = sin(theta),
 * c = cos(theta), w = theta_dot:
 *
 *   A = -F - m_p l w^2 s
 *   theta_dd = (g s + c A / M) / (l (4/3 - m_p c^2 / M))
 *   x_dd = (F + m_p l (w^2 s - theta_dd c)) / M
 *
 * The defaults are the benchmark's: m_c = 1, m_p = 0.1, l = 0.5, g = 9.8.
 * The initial state is 0 (upright, at rest); a rollout that wants another
 * start passes its own x0. Nothing is checked per call: with positive
 * masses and l the denominators are positive (m_p / M < 1 < 4/3), and a
 * rollout's check_finite catches what nonsense parameters produce.
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

/* Holds nothing yet; it exists so that every dynamics has a self to own. */
typedef struct cartpole {
  int reserved;
} cartpole;

static const tw_port cartpole_state[] = {
    {"x", "m", 1, TW_F64},
    {"theta", "rad", 1, TW_F64},
    {"x_dot", "m/s", 1, TW_F64},
    {"theta_dot", "rad/s", 1, TW_F64},
};
static const tw_port cartpole_inputs[] = {{"force", "N", 1, TW_F64}};
static const tw_port cartpole_params[] = {
    {"cart_mass", "kg", 1, TW_F64},
    {"pole_mass", "kg", 1, TW_F64},
    {"half_length", "m", 1, TW_F64},
    {"gravity", "m/s^2", 1, TW_F64},
};
static const double cartpole_defaults[4] = {1.0, 0.1, 0.5, 9.8};

static void cartpole_describe(const void *self, tw_dyn_desc *out) {
  (void)self;
  memset(out, 0, sizeof *out);
  out->kind = "cartpole";
  out->state = cartpole_state;
  out->nstate = 4;
  out->inputs = cartpole_inputs;
  out->ninputs = 1;
  out->params = cartpole_params;
  out->nparams = 4;
  out->nq = 4;
  out->nu = 1;
  out->ntheta = 4;
  out->second_order = true;
}

static void cartpole_default_params(const void *self, double *theta) {
  (void)self;
  memcpy(theta, cartpole_defaults, sizeof cartpole_defaults);
}

static int cartpole_init(void *self, const double *theta, double *q0,
                         tw_err *err) {
  (void)self;
  (void)theta;
  (void)err;
  q0[0] = q0[1] = q0[2] = q0[3] = 0;
  return TW_OK;
}

static int cartpole_deriv(void *self, double t, const double *q,
                          const double *u, const double *theta, double *qdot,
                          tw_err *err) {
  (void)self;
  (void)t;
  (void)err;
  const double F = u != NULL ? u[0] : 0.0;
  const double mc = theta[0], mp = theta[1], l = theta[2], g = theta[3];
  const double s = sin(q[1]), c = cos(q[1]), w = q[3];
  const double M = mc + mp;
  const double A = -F - mp * l * w * w * s;
  const double D = l * (4.0 / 3.0 - mp * c * c / M);
  const double thdd = (g * s + c * A / M) / D;
  const double xdd = (F + mp * l * (w * w * s - thdd * c)) / M;
  qdot[0] = q[2];
  qdot[1] = w;
  qdot[2] = xdd;
  qdot[3] = thdd;
  return TW_OK;
}

/* Reverse mode through the forward expressions above, line by line. */
static int cartpole_deriv_vjp(void *self, double t, const double *q,
                              const double *u, const double *theta,
                              const double *gqdot, double *gq, double *gu,
                              double *gtheta, const bool *want, tw_err *err) {
  (void)want; /* four parameters: always all of them */
  (void)self;
  (void)t;
  (void)err;
  if (gqdot == NULL)
    return TW_OK;
  const double F = u != NULL ? u[0] : 0.0;
  const double mc = theta[0], mp = theta[1], l = theta[2], g = theta[3];
  const double s = sin(q[1]), c = cos(q[1]), w = q[3];
  const double M = mc + mp, w2 = w * w;
  const double A = -F - mp * l * w2 * s;
  const double N = g * s + c * A / M;
  const double D = l * (4.0 / 3.0 - mp * c * c / M);
  const double thdd = N / D;
  const double B = w2 * s - thdd * c;
  const double xdd = (F + mp * l * B) / M;

  /* xdd = (F + mp l B) / M */
  const double gx = gqdot[2];
  double gF = gx / M;
  double gmp = gx * l * B / M;
  double gl = gx * mp * B / M;
  double gM = -gx * xdd / M;
  const double gB = gx * mp * l / M;
  /* B = w^2 s - thdd c */
  double gw = gB * 2 * w * s;
  double gs = gB * w2;
  double gc = -gB * thdd;
  const double gthdd = gqdot[3] - gB * c;
  /* thdd = N / D */
  const double gN = gthdd / D;
  const double gD = -gthdd * thdd / D;
  /* D = l (4/3 - mp c^2 / M) */
  gl += gD * (4.0 / 3.0 - mp * c * c / M);
  gmp -= gD * l * c * c / M;
  gc -= gD * l * 2 * mp * c / M;
  gM += gD * l * mp * c * c / (M * M);
  /* N = g s + c A / M */
  const double gg = gN * s;
  gs += gN * g;
  gc += gN * A / M;
  const double gA = gN * c / M;
  gM -= gN * c * A / (M * M);
  /* A = -F - mp l w^2 s */
  gF -= gA;
  gmp -= gA * l * w2 * s;
  gl -= gA * mp * w2 * s;
  gw -= gA * mp * l * 2 * w * s;
  gs -= gA * mp * l * w2;

  if (gq != NULL) {
    gq[1] += gs * c - gc * s;
    gq[2] += gqdot[0];
    gq[3] += gqdot[1] + gw;
  }
  if (gu != NULL)
    gu[0] += gF;
  if (gtheta != NULL) {
    gtheta[0] += gM;
    gtheta[1] += gmp + gM;
    gtheta[2] += gl;
    gtheta[3] += gg;
  }
  return TW_OK;
}

static void cartpole_free(void *self) { tw_free(self); }

static const tw_dyn_ops cartpole_ops = {
    .kind = "cartpole",
    .describe = cartpole_describe,
    .default_params = cartpole_default_params,
    .init = cartpole_init,
    .deriv = cartpole_deriv,
    .deriv_vjp = cartpole_deriv_vjp,
    .project = NULL,
    .project_vjp = NULL,
    .free = cartpole_free,
};

int tw_sim_cartpole(tw_dyn_ops const **ops, void **self, tw_err *err) {
  cartpole *cp = tw_calloc(1, sizeof *cp);
  if (cp == NULL)
    return tw_err_set(err, TW_ENOMEM, "cartpole: out of memory");
  *ops = &cartpole_ops;
  *self = cp;
  return TW_OK;
}
