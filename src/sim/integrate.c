/*
 * integrate.c - integrators that turn dynamics q' = g(q, u, theta, t) into
 * a block, with the exact VJP of the discrete scheme.
 *
 * Inputs are held constant over a step (zero-order hold). The block's
 * output y[k] is q[k], the state at the start of the step.
 *
 * VJPs, with G the cotangent of q[k+1] and h = dt:
 *   Euler           q' = q + h g(q):      gq = G + (dg/dq)^T (h G)
 *   semi-implicit   v' = v + h a(x, v), x' = x + h v':
 *                   Gv' <- Gv' + h Gx';   gx = Gx', gv = Gv',
 *                   then += (da/d(x,v))^T (h Gv')
 *   RK4             back through the four stages, recomputed from q
 * and (dg/du)^T, (dg/dtheta)^T accumulate with the same weights. A
 * projection (contact) is undone first: the step is recomputed to get the
 * unprojected q[k+1], and project_vjp maps G through the projection.
 *
 * All scratch vectors are allocated once with the block, so stepping never
 * allocates.
 */
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

/* Scratch vectors, each nq long. */
enum { S_QDOT, S_K1, S_K2, S_K3, S_K4, S_STAGE, S_GS, S_W, S_QPRE, S_G, S_N };

typedef struct integ {
  const tw_dyn_ops *dyn;
  void *dyn_self;
  tw_dyn_desc dd;
  tw_integrator method;
  double *scratch[S_N];
  double *gu_tmp; /* nu */
  double *zeros;  /* nq zeros: gx_next when it is NULL */
} integ;

static void integ_free(void *p) {
  integ *s = p;
  if (s == NULL)
    return;
  if (s->dyn->free != NULL)
    s->dyn->free(s->dyn_self);
  for (int i = 0; i < S_N; i++)
    tw_free(s->scratch[i]);
  tw_free(s->gu_tmp);
  tw_free(s->zeros);
  tw_free(s);
}

static void integ_describe(const void *p, tw_block_desc *out) {
  const integ *s = p;
  memset(out, 0, sizeof *out);
  out->kind = s->dd.kind;
  out->state = s->dd.state;
  out->nstate = s->dd.nstate;
  out->outputs = s->dd.state; /* y[k] = q[k]: no input feeds through */
  out->feedthrough_none = true;
  out->noutputs = s->dd.nstate;
  out->inputs = s->dd.inputs;
  out->ninputs = s->dd.ninputs;
  out->params = s->dd.params;
  out->nparams = s->dd.nparams;
  out->nx = s->dd.nq;
  out->ny = s->dd.nq;
  out->nu = s->dd.nu;
  out->ntheta = s->dd.ntheta;
  out->differentiable = s->dyn->deriv_vjp != NULL;
}

static void integ_default_params(const void *p, double *theta) {
  const integ *s = p;
  s->dyn->default_params(s->dyn_self, theta);
}

static int integ_init(void *p, const double *theta, double *x0, tw_err *err) {
  integ *s = p;
  return s->dyn->init(s->dyn_self, theta, x0, err);
}

static int integ_init_vjp(void *p, const double *theta, const double *gx0,
                          double *gtheta, tw_err *err) {
  integ *s = p;
  if (s->dyn->init_vjp == NULL)
    return TW_OK;
  return s->dyn->init_vjp(s->dyn_self, theta, gx0, gtheta, err);
}

/* out = q + c * k, elementwise. */
static void axpy_into(double *restrict out, const double *restrict q, double c,
                      const double *restrict k, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = q[i] + c * k[i];
}

/* One step without projection: q_next from q. */
static int advance(integ *s, const tw_step_args *a, double *q_next,
                   tw_err *err) {
  size_t nq = s->dd.nq;
  double h = a->dt, t = a->t;
  const double *q = a->x;
  int rc;
  switch (s->method) {
  case TW_EULER: {
    double *qd = s->scratch[S_QDOT];
    rc = s->dyn->deriv(s->dyn_self, t, q, a->u, a->theta, qd, err);
    if (rc == TW_OK)
      axpy_into(q_next, q, h, qd, nq);
    return rc;
  }
  case TW_SEMI_IMPLICIT: {
    if (s->dyn->step_semi_implicit != NULL)
      return s->dyn->step_semi_implicit(s->dyn_self, t, h, q, a->u, a->theta,
                                        q_next, err);
    size_t n = nq / 2;
    double *qd = s->scratch[S_QDOT];
    rc = s->dyn->deriv(s->dyn_self, t, q, a->u, a->theta, qd, err);
    if (rc != TW_OK)
      return rc;
    const double *x = q, *v = q + n, *acc = qd + n;
    double *restrict xn = q_next, *restrict vn = q_next + n;
    for (size_t i = 0; i < n; i++) {
      vn[i] = v[i] + h * acc[i];
      xn[i] = x[i] + h * vn[i];
    }
    return TW_OK;
  }
  case TW_RK4: {
    double *k1 = s->scratch[S_K1], *k2 = s->scratch[S_K2];
    double *k3 = s->scratch[S_K3], *k4 = s->scratch[S_K4];
    double *st = s->scratch[S_STAGE];
    rc = s->dyn->deriv(s->dyn_self, t, q, a->u, a->theta, k1, err);
    if (rc == TW_OK) {
      axpy_into(st, q, h / 2, k1, nq);
      rc = s->dyn->deriv(s->dyn_self, t + h / 2, st, a->u, a->theta, k2, err);
    }
    if (rc == TW_OK) {
      axpy_into(st, q, h / 2, k2, nq);
      rc = s->dyn->deriv(s->dyn_self, t + h / 2, st, a->u, a->theta, k3, err);
    }
    if (rc == TW_OK) {
      axpy_into(st, q, h, k3, nq);
      rc = s->dyn->deriv(s->dyn_self, t + h, st, a->u, a->theta, k4, err);
    }
    if (rc == TW_OK)
      for (size_t i = 0; i < nq; i++)
        q_next[i] = q[i] + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
    return rc;
  }
  }
  return tw_err_set(err, TW_EINTERNAL, "integrator: unknown method");
}

static int integ_step(void *p, const tw_step_args *a, tw_err *err) {
  integ *s = p;
  int rc = advance(s, a, a->x_next, err);
  if (rc == TW_OK && s->dyn->project != NULL)
    rc = s->dyn->project(s->dyn_self, a->x_next, err);
  if (rc == TW_OK && a->y != NULL)
    memcpy(a->y, a->x, s->dd.nq * sizeof(double));
  return rc;
}

/* Accumulates the VJP of g at (t, q) with cotangent w into gq (+=), and
 * into the caller's gu / gtheta (+=). */
static int dvjp(integ *s, const tw_vjp_args *a, double t, const double *q,
                const double *w, double *gq, double *gu, tw_err *err) {
  return s->dyn->deriv_vjp(s->dyn_self, t, q, a->u, a->theta, w, gq, gu,
                           a->gtheta, a->want, err);
}

static int integ_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  integ *s = p;
  size_t nq = s->dd.nq, nu = s->dd.nu;
  double h = a->dt, t = a->t;
  const double *q = a->x;
  int rc = TW_OK;

  /* The cotangent of the unprojected q[k+1]: gx_next itself unless a
   * projection has to be undone (then a copy mapped through it). */
  const double *G = a->gx_next != NULL ? a->gx_next : s->zeros;
  if (s->dyn->project != NULL) {
    double *Gp = s->scratch[S_G];
    memcpy(Gp, G, nq * sizeof(double));
    tw_step_args fa = {
        a->t, a->dt, a->k, a->x, a->u, a->theta, s->scratch[S_QPRE], NULL};
    rc = advance(s, &fa, s->scratch[S_QPRE], err);
    if (rc == TW_OK)
      rc = s->dyn->project_vjp(s->dyn_self, s->scratch[S_QPRE], Gp, err);
    if (rc != TW_OK)
      return rc;
    G = Gp;
  }

  /* gq accumulates straight into the caller's gx (which never aliases
   * gx_next, per sim.h), or into scratch when gx is not wanted. */
  double *gq = a->gx != NULL ? a->gx : s->scratch[S_GS];
  double *gu = a->gu != NULL && nu > 0 ? s->gu_tmp : NULL;
  if (gu != NULL)
    memset(gu, 0, nu * sizeof(double));
  double *w = s->scratch[S_W];

  switch (s->method) {
  case TW_EULER:
    memcpy(gq, G, nq * sizeof(double));
    for (size_t i = 0; i < nq; i++)
      w[i] = h * G[i];
    rc = dvjp(s, a, t, q, w, gq, gu, err);
    break;
  case TW_SEMI_IMPLICIT: {
    if (s->dyn->step_semi_implicit_vjp != NULL) {
      rc = s->dyn->step_semi_implicit_vjp(s->dyn_self, t, h, q, a->u, a->theta,
                                          G, gq, gu, a->gtheta, a->want, err);
      break;
    }
    /* w's first half (the cotangent of g's velocity half, unused by the
     * scheme) stays zero from creation on. */
    size_t n = nq / 2;
    const double *restrict Gx = G, *restrict Gv = G + n;
    double *restrict gx = gq, *restrict gv = gq + n, *restrict wa = w + n;
    for (size_t i = 0; i < n; i++) {
      double gvt = Gv[i] + h * Gx[i]; /* x' = x + h v' */
      gx[i] = Gx[i];
      gv[i] = gvt;
      wa[i] = h * gvt; /* v' = v + h a */
    }
    rc = dvjp(s, a, t, q, w, gq, gu, err);
    break;
  }
  case TW_RK4: {
    double *k1 = s->scratch[S_K1], *k2 = s->scratch[S_K2];
    double *k3 = s->scratch[S_K3];
    double *st = s->scratch[S_STAGE], *gs = s->scratch[S_QDOT];
    /* Recompute the stages k1..k3 (k4 is not needed backwards). */
    rc = s->dyn->deriv(s->dyn_self, t, q, a->u, a->theta, k1, err);
    if (rc == TW_OK) {
      axpy_into(st, q, h / 2, k1, nq);
      rc = s->dyn->deriv(s->dyn_self, t + h / 2, st, a->u, a->theta, k2, err);
    }
    if (rc == TW_OK) {
      axpy_into(st, q, h / 2, k2, nq);
      rc = s->dyn->deriv(s->dyn_self, t + h / 2, st, a->u, a->theta, k3, err);
    }
    if (rc != TW_OK)
      return rc;
    /* Back through the stages, last first. Stage i runs g at
     * q + c_i h k_{i-1} (time t + c_i h); its cotangent is
     * gk_i = (h / bw_i) G + c_{i+1} h gs_{i+1}, where gs_{i+1} is the
     * cotangent the later stage sent to its stage point (which also goes
     * to q). gk reuses k4's memory, as k4 is not needed backwards. */
    static const double bw[4] = {6, 3, 3, 6};     /* b_i = 1 / bw_i */
    static const double cs[4] = {0, 0.5, 0.5, 1}; /* c_i */
    const double *kprev[4] = {NULL, k1, k2, k3};
    double *gk = s->scratch[S_K4];
    memcpy(gq, G, nq * sizeof(double));
    for (int i = 3; i >= 0 && rc == TW_OK; i--) {
      for (size_t j = 0; j < nq; j++)
        gk[j] = i == 3 ? h / bw[i] * G[j]
                       : h / bw[i] * G[j] + h * cs[i + 1] * gs[j];
      if (i < 3)
        for (size_t j = 0; j < nq; j++)
          gq[j] += gs[j];
      if (i == 0) { /* stage 1 is at q itself: straight into gq */
        rc = dvjp(s, a, t, q, gk, gq, gu, err);
        break;
      }
      axpy_into(st, q, h * cs[i], kprev[i], nq);
      memset(gs, 0, nq * sizeof(double));
      rc = dvjp(s, a, t + h * cs[i], st, gk, gs, gu, err);
    }
    break;
  }
  }
  if (rc != TW_OK)
    return rc;
  if (a->gy != NULL) /* y[k] = q[k] */
    for (size_t i = 0; i < nq; i++)
      gq[i] += a->gy[i];
  if (gu != NULL)
    memcpy(a->gu, gu, nu * sizeof(double));
  else if (a->gu != NULL && nu > 0)
    memset(a->gu, 0, nu * sizeof(double));
  return TW_OK;
}

static const tw_block_ops integ_ops = {
    .kind = "integrated",
    .describe = integ_describe,
    .default_params = integ_default_params,
    .init = integ_init,
    .step = integ_step,
    .step_vjp = integ_vjp,
    .free = integ_free,
    .init_vjp = integ_init_vjp,
};

int tw_integrator_parse(const char *text, tw_integrator *out, tw_err *err) {
  if (strcmp(text, "euler") == 0)
    *out = TW_EULER;
  else if (strcmp(text, "semi-implicit") == 0)
    *out = TW_SEMI_IMPLICIT;
  else if (strcmp(text, "rk4") == 0)
    *out = TW_RK4;
  else
    return tw_err_set(err, TW_EINVAL,
                      "unknown integrator '%s' (euler, semi-implicit, rk4)",
                      text);
  return TW_OK;
}

const char *tw_integrator_name(tw_integrator m) {
  switch (m) {
  case TW_EULER:
    return "euler";
  case TW_SEMI_IMPLICIT:
    return "semi-implicit";
  case TW_RK4:
    return "rk4";
  }
  return "unknown";
}

int tw_sim_integrated_block(const tw_dyn_ops *dyn, void *dyn_self,
                            tw_integrator method, const char *name,
                            tw_block **out, tw_err *err) {
  if (dyn == NULL || dyn->deriv == NULL || dyn->describe == NULL ||
      dyn->init == NULL || dyn->default_params == NULL) {
    if (dyn != NULL && dyn->free != NULL)
      dyn->free(dyn_self);
    return tw_err_set(err, TW_EINVAL, "integrator: incomplete dynamics");
  }
  integ *s = tw_calloc(1, sizeof *s);
  if (s == NULL) {
    if (dyn->free != NULL)
      dyn->free(dyn_self);
    return tw_err_set(err, TW_ENOMEM, "integrator: out of memory");
  }
  s->dyn = dyn;
  s->dyn_self = dyn_self;
  s->method = method;
  dyn->describe(dyn_self, &s->dd);
  if (method != TW_EULER && method != TW_SEMI_IMPLICIT && method != TW_RK4) {
    integ_free(s);
    return tw_err_set(err, TW_EINVAL, "integrator: unknown method %d",
                      (int)method);
  }
  if (method == TW_SEMI_IMPLICIT && (!s->dd.second_order || s->dd.nq % 2)) {
    const char *kind = s->dd.kind;
    integ_free(s);
    return tw_err_set(err, TW_EINVAL,
                      "integrator: semi-implicit Euler needs a second-order "
                      "system; '%s' is not one",
                      kind);
  }
  size_t nq = s->dd.nq ? s->dd.nq : 1;
  for (int i = 0; i < S_N; i++)
    if ((s->scratch[i] = tw_calloc(nq, sizeof(double))) == NULL)
      break;
  if (s->dd.nu > 0)
    s->gu_tmp = tw_calloc(s->dd.nu, sizeof(double));
  s->zeros = tw_calloc(nq, sizeof(double));
  if (s->scratch[S_N - 1] == NULL || s->zeros == NULL ||
      (s->dd.nu > 0 && s->gu_tmp == NULL)) {
    integ_free(s);
    return tw_err_set(err, TW_ENOMEM, "integrator: out of memory");
  }
  return tw_block_new(&integ_ops, s, name, out, err);
}
