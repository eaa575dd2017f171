/*
 * spring_damper.c - the builtin damped oscillator
 * (tw_sim_spring_damper_block): one mass on a linear spring and a linear
 * damper, driven by two forces, as dynamics for an integrator.
 *
 *   q = [x, v],  u = [F, F_extra],  theta = [m, k, c, x0, v0]
 *   x' = v,      v' = a = (F + F_extra - k x - c v) / m
 *
 * Both inputs are optional (0 when unconnected or when u is NULL), so a
 * graph can drive the mass with one force and close a loop through the
 * other. The outputs are the state (tw_sim_integrated_block), so they do
 * not feed through. The initial state is (x0, v0) from theta, which lets a
 * caller choose or fit it like any other parameter; a rollout's gradient
 * with respect to x[0] (tw_sim_grad's gx0) is then exactly the gradient
 * with respect to (x0, v0), as init is the identity on them.
 *
 * Invariant: the mass is finite and > 0 whenever the dynamics are
 * evaluated. init checks every parameter (TW_EINVAL naming the block, the
 * parameter and its value), and deriv rechecks the mass, so a caller that
 * skips init and passes its own x[0] still gets the error instead of a run
 * of Inf and NaN.
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

typedef struct spring_damper {
  char *name; /* the block's name, for messages */
} spring_damper;

enum { P_M, P_K, P_C, P_X0, P_V0, P_N };

static const tw_port sd_state[] = {
    {"x", "m", 1, TW_F64},
    {"v", "m/s", 1, TW_F64},
};
static const tw_port sd_inputs[] = {
    {"F", "N", 1, TW_F64},
    {"F_extra", "N", 1, TW_F64},
};
static const tw_port sd_params[P_N] = {
    {"m", "kg", 1, TW_F64}, {"k", "N/m", 1, TW_F64},  {"c", "N*s/m", 1, TW_F64},
    {"x0", "m", 1, TW_F64}, {"v0", "m/s", 1, TW_F64},
};
static const double sd_defaults[P_N] = {1.0, 1.0, 0.1, 1.0, 0.0};

static void sd_describe(const void *self, tw_dyn_desc *out) {
  (void)self;
  memset(out, 0, sizeof *out);
  out->kind = "spring_damper";
  out->state = sd_state;
  out->nstate = 2;
  out->inputs = sd_inputs;
  out->ninputs = 2;
  out->params = sd_params;
  out->nparams = P_N;
  out->nq = 2;
  out->nu = 2;
  out->ntheta = P_N;
  out->second_order = true;
}

static void sd_default_params(const void *self, double *theta) {
  (void)self;
  memcpy(theta, sd_defaults, sizeof sd_defaults);
}

static int bad_mass(const spring_damper *s, double m, tw_err *err) {
  return tw_err_set(err, TW_EINVAL,
                    "spring_damper '%s': mass m = %.17g must be finite and "
                    "> 0",
                    s->name, m);
}

static int sd_init(void *self, const double *theta, double *q0, tw_err *err) {
  const spring_damper *s = self;
  if (!(theta[P_M] > 0) || !isfinite(theta[P_M]))
    return bad_mass(s, theta[P_M], err);
  for (int i = P_K; i < P_N; i++)
    if (!isfinite(theta[i]))
      return tw_err_set(err, TW_EINVAL,
                        "spring_damper '%s': parameter %s = %.17g is not "
                        "finite",
                        s->name, sd_params[i].name, theta[i]);
  q0[0] = theta[P_X0];
  q0[1] = theta[P_V0];
  return TW_OK;
}

static int sd_deriv(void *self, double t, const double *q, const double *u,
                    const double *theta, double *qdot, tw_err *err) {
  (void)t;
  const double m = theta[P_M], k = theta[P_K], c = theta[P_C];
  if (!(m > 0) || !isfinite(m))
    return bad_mass(self, m, err);
  const double F = u != NULL ? u[0] + u[1] : 0.0;
  qdot[0] = q[1];
  qdot[1] = (F - k * q[0] - c * q[1]) / m;
  return TW_OK;
}

/* Reverse mode through sd_deriv. x0 and v0 do not enter the dynamics:
 * their gradient comes only through x[0] (see the file comment). */
static int sd_deriv_vjp(void *self, double t, const double *q, const double *u,
                        const double *theta, const double *gqdot, double *gq,
                        double *gu, double *gtheta, const bool *want,
                        tw_err *err) {
  (void)t;
  const double m = theta[P_M], k = theta[P_K], c = theta[P_C];
  if (!(m > 0) || !isfinite(m))
    return bad_mass(self, m, err);
  if (gqdot == NULL)
    return TW_OK;
  const double F = u != NULL ? u[0] + u[1] : 0.0;
  const double x = q[0], v = q[1];
  const double a = (F - k * x - c * v) / m;
  const double gf = gqdot[1] / m; /* the cotangent of the net force */
  if (gq != NULL) {
    gq[0] -= k * gf;
    gq[1] += gqdot[0] - c * gf;
  }
  if (gu != NULL) {
    gu[0] += gf;
    gu[1] += gf;
  }
  if (gtheta != NULL) {
    if (want == NULL || want[P_M])
      gtheta[P_M] -= gf * a;
    if (want == NULL || want[P_K])
      gtheta[P_K] -= gf * x;
    if (want == NULL || want[P_C])
      gtheta[P_C] -= gf * v;
  }
  return TW_OK;
}

static void sd_free(void *self) {
  spring_damper *s = self;
  if (s == NULL)
    return;
  tw_free(s->name);
  tw_free(s);
}

/* x[0] = (x0, v0): the cotangent of x[0] is theirs. */
static int sd_init_vjp(void *self, const double *theta, const double *gq0,
                       double *gtheta, tw_err *err) {
  (void)self, (void)theta, (void)err;
  gtheta[P_X0] += gq0[0];
  gtheta[P_V0] += gq0[1];
  return TW_OK;
}

static const tw_dyn_ops sd_ops = {
    .kind = "spring_damper",
    .describe = sd_describe,
    .default_params = sd_default_params,
    .init = sd_init,
    .deriv = sd_deriv,
    .deriv_vjp = sd_deriv_vjp,
    .free = sd_free,
    .init_vjp = sd_init_vjp,
};

int tw_sim_spring_damper_block(tw_integrator method, const char *name,
                               tw_block **out, tw_err *err) {
  if (name == NULL)
    name = "spring_damper";
  spring_damper *s = tw_calloc(1, sizeof *s);
  char *copy = tw_strdup(name);
  if (s == NULL || copy == NULL) {
    tw_free(s);
    tw_free(copy);
    return tw_err_set(err, TW_ENOMEM, "spring_damper: out of memory");
  }
  s->name = copy;
  return tw_sim_integrated_block(&sd_ops, s, method, name, out, err);
}
