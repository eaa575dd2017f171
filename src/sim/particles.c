/*
 * particles.c - the builtin particle system (tw_sim_particles): n point
 * masses in 1, 2 or 3 dimensions, springs between two particles or between
 * a particle and a fixed anchor, linear drag, uniform gravity, external
 * forces and ground contact, with the hand-written VJP of its dynamics.
 *
 * Layout (sim.h): q = [x (n*dim), v (n*dim)]; u = [actuation (nsprings),
 * force (n*dim)]; theta = [stiffness, rest_length, spring_damping
 * (nsprings each), drag (n), gravity (dim)]. deriv writes qdot = [v, a]:
 *
 *   a_p = (f_p - drag_p v_p) * (1 / m_p) + gravity,
 *   f_p = force_p + spring forces + penalty contact,
 *
 * accumulated in that order (springs in spec order; 1 / m_p is computed
 * once, as a product is much cheaper than a division), which a test checks
 * bitwise against an independent loop for benchmark B1 (unit masses).
 *
 * Springs. Spring s joins end i (spring_i) and end j (spring_j); an end
 * given as -1 is the fixed point anchor[s] with velocity 0 (either end may
 * be the anchor, not both). Its rest length under actuation is L_eff =
 * L * (1 + actuation_strength * actuation).
 * - 1-D, signed: e = (x_j - x_i) - L_eff, F = k e + c (v_j - v_i); end i
 *   gets +F, end j gets -F. A stretched spring (e > 0) pulls i up and j
 *   down. The default rest length is the initial x_j - x_i (negative when j
 *   starts below i). B1's chain (spring s joins mass s-1, or the wall at 0,
 *   to mass s with force k_s (x_s - x_{s-1} - L)) is spring_i = s-1 (-1 and
 *   anchor 0 for the wall), spring_j = s, rest length L. The same wall with
 *   the anchor as end j needs rest length -L.
 * - 2-D/3-D: d = p_j - p_i, r = |d|, n = d / r, F = k (r - L_eff) +
 *   c ((v_j - v_i) . n); end i gets +F n, end j gets -F n. When r == 0 (or
 *   r^2 underflows) the direction is undefined: the spring then exerts no
 *   force and its VJP is zero, so coincident ends never produce a NaN.
 *
 * Contact with the plane "coordinate dim-1 = ground":
 * - penalty: while depth = ground - h > 0, f_h += k_c depth - c_c v_h
 *   (depth == 0 counts as no contact: the one-sided derivative);
 * - projection: project() runs after each step (see particles_project).
 * There are two operation tables: project and project_vjp are NULL unless
 * the mode is TW_CONTACT_PROJECTION, so integrators skip them otherwise.
 *
 * Invariants once tw_sim_particles succeeds: self owns copies of every
 * spec array; spring ends are valid particle indices or -1, never both -1,
 * never equal; inc[inc_start[p] .. inc_start[p+1]) lists the spring ends
 * at particle p in spec order, as 2 s + (1 if end j). deriv and deriv_vjp
 * allocate nothing (their scratch lives in self), so an instance serves
 * one thread at a time; their outputs must not alias their inputs.
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

#if defined(__GNUC__) || defined(__clang__)
#define PARTICLES_KERNEL static inline __attribute__((always_inline))
#else
#define PARTICLES_KERNEL static inline
#endif

/* Largest n or nsprings accepted: every buffer size below fits size_t. */
#define PARTICLES_MAX (SIZE_MAX / sizeof(double) / 64)

typedef struct particles {
  unsigned dim;
  tw_contact_mode contact;
  bool friction;
  size_t n, ns, npos, nu, ntheta;
  double ground, contact_k, contact_c;
  int32_t *ei, *ej;  /* ns spring ends as given; -1 = anchor */
  size_t *inc_start; /* n + 1: where each particle's ends start in inc */
  size_t *inc;       /* spring ends by particle: 2 s + (end j ? 1 : 0) */
  double *inv_mass;  /* n: 1 / mass */
  double *anchor;    /* ns*dim, 0 where a spring has no anchor */
  double *alpha;     /* ns actuation strengths */
  double *q0;        /* 2*npos */
  double *theta0;    /* ntheta */
  double *zeros;     /* nu zeros: the inputs when u is NULL */
  double *gf;        /* npos scratch: cotangent of the forces */
  double *fs;        /* ns*dim scratch: each spring's force on end i */
  double *gs;        /* 2*ns*dim scratch: cotangents of each d and dv */
  double *sink;      /* 2*npos + nu + ntheta: stands in for NULL outputs */
  bool chain;        /* 1-D chain topology: the fast path (see below) */
  bool has_alpha;    /* some actuation strength is non-zero */
  tw_port state[2], inputs[2], params[5];
} particles;

/* --- Forward --------------------------------------------------------- */

/* Force on end i of a spring with d = p_j - p_i and dv = v_j - v_i in dim
 * dimensions (2 or 3); all zero when |d| = 0. */
PARTICLES_KERNEL void spring_nd(unsigned dim, const double *d, const double *dv,
                                double k, double le, double c, double *fi) {
  double r2 = 0;
  for (unsigned a = 0; a < dim; a++)
    r2 += d[a] * d[a];
  if (r2 == 0) { /* a NaN falls through and propagates */
    for (unsigned a = 0; a < dim; a++)
      fi[a] = 0;
    return;
  }
  double r = sqrt(r2), inv = 1.0 / r, w = 0, nrm[3];
  for (unsigned a = 0; a < dim; a++) {
    nrm[a] = d[a] * inv;
    w += dv[a] * nrm[a];
  }
  double F = k * (r - le) + c * w;
  for (unsigned a = 0; a < dim; a++)
    fi[a] = F * nrm[a];
}

/* d = p_j - p_i and dv = v_j - v_i of spring s, the anchor standing in
 * for a -1 end. */
PARTICLES_KERNEL void spring_delta(const particles *P, unsigned dim, size_t s,
                                   const double *x, const double *v, double *d,
                                   double *dv) {
  int32_t i = P->ei[s], j = P->ej[s];
  if (i >= 0 && j >= 0) {
    const double *xi = x + (size_t)i * dim, *xj = x + (size_t)j * dim;
    const double *vi = v + (size_t)i * dim, *vj = v + (size_t)j * dim;
    for (unsigned a = 0; a < dim; a++) {
      d[a] = xj[a] - xi[a];
      dv[a] = vj[a] - vi[a];
    }
  } else {
    const double *an = P->anchor + s * dim;
    bool pj = i < 0; /* the particle is end j */
    size_t p = (size_t)(pj ? j : i) * dim;
    for (unsigned a = 0; a < dim; a++) {
      d[a] = pj ? x[p + a] - an[a] : an[a] - x[p + a];
      dv[a] = pj ? v[p + a] : -v[p + a];
    }
  }
}

/* Writes the accelerations to acc. Two passes: every spring's force on its
 * end i into P->fs (no scatter, so no store-to-load chain between springs
 * sharing a particle), then per particle the gather of its springs' forces
 * (in spec order), contact, drag, mass and gravity. dim is a constant
 * after inlining. */
PARTICLES_KERNEL void
forward(const particles *P, unsigned dim, const double *restrict x,
        const double *restrict v, const double *restrict act,
        const double *restrict fext, const double *restrict theta,
        double *restrict acc) {
  const size_t ns = P->ns, n = P->n;
  const double *k = theta, *L = theta + ns, *c = theta + 2 * ns;
  const double *drag = theta + 3 * ns, *g = theta + 3 * ns + n;
  const double *alpha = P->alpha, *im = P->inv_mass;
  double *restrict fs = P->fs;

  for (size_t s = 0; s < ns; s++) {
    double le = L[s] * (1.0 + alpha[s] * act[s]), d[3], dv[3];
    spring_delta(P, dim, s, x, v, d, dv);
    if (dim == 1)
      fs[s] = k[s] * (d[0] - le) + c[s] * dv[0];
    else
      spring_nd(dim, d, dv, k[s], le, c[s], fs + s * dim);
  }

  const size_t *start = P->inc_start, *inc = P->inc;
  const bool penalty = P->contact == TW_CONTACT_PENALTY;
  for (size_t p = 0; p < n; p++) {
    double f[3];
    for (unsigned a = 0; a < dim; a++)
      f[a] = fext[p * dim + a];
    for (size_t e = start[p]; e < start[p + 1]; e++) {
      /* End i gets +F, end j gets -F; x + (-1 * F) == x - F exactly. */
      size_t s = inc[e] >> 1;
      double sg = (inc[e] & 1) != 0 ? -1.0 : 1.0;
      for (unsigned a = 0; a < dim; a++)
        f[a] += sg * fs[s * dim + a];
    }
    if (penalty) {
      size_t h = p * dim + dim - 1;
      double depth = P->ground - x[h];
      if (depth > 0)
        f[dim - 1] += P->contact_k * depth - P->contact_c * v[h];
    }
    for (unsigned a = 0; a < dim; a++) {
      size_t q = p * dim + a;
      acc[q] = (f[a] - drag[p] * v[q]) * im[p] + g[a];
    }
  }
}

/* The chain fast path. A 1-D system whose spring s joins particle s-1 (the
 * anchor for s = 0) to particle s, one spring per particle and no penalty
 * contact - a rope, a cable, a lumped beam, benchmark B1 - needs no
 * incidence lists: particle p feels -F_p and +F_{p+1}. These loops have no
 * indirection, so the compiler vectorises them. They perform the same
 * floating-point operations in the same order as the general kernels
 * (f = force - F_p + F_{p+1}, then (f - drag v) / m + g), so results are
 * bitwise identical to the general path. */
/* Spring forces of the chain into F (F[s] acts +on s-1, -on s). */
/* Spring forces of the chain into F (F[s] acts +on s-1, -on s). With
 * use_act false the actuation term is left out: exact when every actuation
 * strength is 0 (L (1 + 0 act) == L for finite act). */
PARTICLES_KERNEL void chain_forces(const particles *P, const double *restrict x,
                                   const double *restrict v,
                                   const double *restrict act,
                                   const double *restrict theta,
                                   double *restrict F, bool use_act) {
  const size_t n = P->n;
  const double *restrict k = theta, *restrict L = theta + n;
  const double *restrict c = theta + 2 * n, *restrict alpha = P->alpha;
#define CHAIN_LE(s) (use_act ? L[s] * (1.0 + alpha[s] * act[s]) : L[s])
  F[0] = k[0] * ((x[0] - P->anchor[0]) - CHAIN_LE(0)) + c[0] * v[0];
  for (size_t s = 1; s < n; s++)
    F[s] = k[s] * ((x[s] - x[s - 1]) - CHAIN_LE(s)) + c[s] * (v[s] - v[s - 1]);
#undef CHAIN_LE
}

/* Acceleration of particle p from the chain forces; with use_fext false the
 * external force is the constant 0.0 (the same bits as a loaded zero). */
#define CHAIN_ACC(p, Fnext)                                                    \
  (((((use_fext ? fext[p] : 0.0) + -1.0 * F[p]) + (Fnext)) - drag[p] * v[p]) * \
       im[p] +                                                                 \
   g)

PARTICLES_KERNEL void
chain_forward_core(const particles *P, const double *restrict x,
                   const double *restrict v, const double *restrict act,
                   const double *restrict fext, const double *restrict theta,
                   double *restrict acc, bool use_act, bool use_fext) {
  const size_t n = P->n;
  const double *restrict drag = theta + 3 * n, *restrict im = P->inv_mass;
  const double g = theta[4 * n];
  double *restrict F = P->fs;
  chain_forces(P, x, v, act, theta, F, use_act);
  for (size_t p = 0; p + 1 < n; p++)
    acc[p] = CHAIN_ACC(p, F[p + 1]);
  acc[n - 1] = CHAIN_ACC(n - 1, 0.0);
}

TW_KERNEL_CLONES
static void chain_forward(const particles *P, const double *restrict x,
                          const double *restrict v, const double *restrict act,
                          const double *restrict fext,
                          const double *restrict theta, double *restrict acc) {
  chain_forward_core(P, x, v, act, fext, theta, acc, true, true);
}

/* One semi-implicit Euler step of the chain, fused: v' = v + h a,
 * x' = x + h v', the integrator's arithmetic exactly. */
PARTICLES_KERNEL void
chain_step_core(const particles *P, double h, const double *restrict x,
                const double *restrict v, const double *restrict act,
                const double *restrict fext, const double *restrict theta,
                double *restrict xn, double *restrict vn, bool use_act,
                bool use_fext) {
  const size_t n = P->n;
  const double *restrict drag = theta + 3 * n, *restrict im = P->inv_mass;
  const double g = theta[4 * n];
  double *restrict F = P->fs;
  chain_forces(P, x, v, act, theta, F, use_act);
  for (size_t p = 0; p + 1 < n; p++) {
    vn[p] = v[p] + h * CHAIN_ACC(p, F[p + 1]);
    xn[p] = x[p] + h * vn[p];
  }
  vn[n - 1] = v[n - 1] + h * CHAIN_ACC(n - 1, 0.0);
  xn[n - 1] = x[n - 1] + h * vn[n - 1];
}

/* Dispatches to a core specialised for what the inputs can hold: u NULL
 * means no actuation and no external force. */
TW_KERNEL_CLONES
static void chain_step(const particles *P, double h, const double *restrict x,
                       const double *restrict v, const double *restrict u,
                       const double *restrict theta, double *restrict xn,
                       double *restrict vn) {
  if (u == NULL)
    chain_step_core(P, h, x, v, NULL, NULL, theta, xn, vn, false, false);
  else if (!P->has_alpha)
    chain_step_core(P, h, x, v, u, u + P->n, theta, xn, vn, false, true);
  else
    chain_step_core(P, h, x, v, u, u + P->n, theta, xn, vn, true, true);
}

static int particles_chain_step(void *self, double t, double h, const double *q,
                                const double *u, const double *theta,
                                double *q_next, tw_err *err) {
  (void)t;
  (void)err;
  const particles *P = self;
  const size_t n = P->n;
  chain_step(P, h, q, q + n, u, theta, q_next, q_next + n);
  return TW_OK;
}

static int particles_deriv(void *self, double t, const double *q,
                           const double *u, const double *theta, double *qdot,
                           tw_err *err) {
  (void)t;
  (void)err;
  const particles *P = self;
  const size_t np = P->npos;
  if (u == NULL)
    u = P->zeros;
  memcpy(qdot, q + np, np * sizeof *qdot);
  const double *x = q, *v = q + np, *act = u, *fext = u + P->ns;
  if (P->chain) {
    chain_forward(P, x, v, act, fext, theta, qdot + np);
    return TW_OK;
  }
  switch (P->dim) {
  case 1:
    forward(P, 1, x, v, act, fext, theta, qdot + np);
    break;
  case 2:
    forward(P, 2, x, v, act, fext, theta, qdot + np);
    break;
  default:
    forward(P, 3, x, v, act, fext, theta, qdot + np);
    break;
  }
  return TW_OK;
}

/* --- Reverse --------------------------------------------------------- */

/* The VJP of spring_nd for the cotangent g of fi: writes gd, gdv
 * (cotangents of d, dv) and gp = {gk, gle, gc}. All zero when |d| = 0,
 * matching the forward convention. */
PARTICLES_KERNEL void spring_nd_vjp(unsigned dim, const double *d,
                                    const double *dv, double k, double le,
                                    double c, const double *g, double *gd,
                                    double *gdv, double *gp) {
  double r2 = 0;
  for (unsigned a = 0; a < dim; a++)
    r2 += d[a] * d[a];
  if (r2 == 0) {
    for (unsigned a = 0; a < dim; a++)
      gd[a] = gdv[a] = 0;
    gp[0] = gp[1] = gp[2] = 0;
    return;
  }
  double r = sqrt(r2), inv = 1.0 / r, w = 0, gF = 0, nrm[3];
  for (unsigned a = 0; a < dim; a++) {
    nrm[a] = d[a] * inv;
    w += dv[a] * nrm[a];
    gF += g[a] * nrm[a];
  }
  double e = r - le, F = k * e + c * w;
  double ge = gF * k, gw = gF * c, gn[3], gnn = 0;
  for (unsigned a = 0; a < dim; a++) {
    gn[a] = F * g[a] + gw * dv[a];
    gnn += gn[a] * nrm[a];
  }
  /* n = d / r: dn/dd = (I - n n^T) / r; r = |d|: dr/dd = n^T. */
  for (unsigned a = 0; a < dim; a++) {
    gd[a] = (gn[a] - gnn * nrm[a]) * inv + ge * nrm[a];
    gdv[a] = gw * nrm[a];
  }
  gp[0] = gF * e;
  gp[1] = -ge;
  gp[2] = gF * w;
}

/* Accumulates the cotangents of x, v, actuation, force and theta for the
 * cotangents wx (of xdot = v) and wa (of a). No output is NULL here. Three
 * passes, none scattering: particles (gf = wa / m, drag, gravity,
 * contact), springs (their parameters, and the cotangents of d and dv into
 * P->gs), particles again (gathering the springs' gs). */
PARTICLES_KERNEL void
reverse(const particles *P, unsigned dim, const double *restrict x,
        const double *restrict v, const double *restrict act,
        const double *restrict theta, const double *restrict wx,
        const double *restrict wa, double *restrict gx, double *restrict gv,
        double *restrict gact, double *restrict gforce, double *restrict gth) {
  const size_t ns = P->ns, n = P->n;
  const double *k = theta, *L = theta + ns, *c = theta + 2 * ns;
  const double *drag = theta + 3 * ns;
  const double *alpha = P->alpha, *im = P->inv_mass;
  double *restrict gf = P->gf, *restrict gs = P->gs;
  double *gk = gth, *gL = gth + ns, *gc = gth + 2 * ns;
  double *gdrag = gth + 3 * ns, *gg = gth + 3 * ns + n;

  /* a = (f - drag v) / m + g; f_h += k_c depth - c_c v_h in contact. */
  const bool penalty = P->contact == TW_CONTACT_PENALTY;
  double ggsum[3] = {0, 0, 0};
  for (size_t p = 0; p < n; p++) {
    double gdr = 0;
    for (unsigned a = 0; a < dim; a++) {
      size_t q = p * dim + a;
      double gfq = wa[q] * im[p];
      gf[q] = gfq;
      ggsum[a] += wa[q];
      gforce[q] += gfq;
      gv[q] += wx[q] - drag[p] * gfq;
      gdr += gfq * v[q];
    }
    gdrag[p] -= gdr;
    if (penalty) {
      size_t h = p * dim + dim - 1;
      if (P->ground - x[h] > 0) {
        gx[h] -= P->contact_k * gf[h];
        gv[h] -= P->contact_c * gf[h];
      }
    }
  }
  for (unsigned a = 0; a < dim; a++)
    gg[a] += ggsum[a];

  /* Springs: gs[s] = [cotangent of d (dim), of dv (dim)]. */
  for (size_t s = 0; s < ns; s++) {
    int32_t i = P->ei[s], j = P->ej[s];
    double fac = 1.0 + alpha[s] * act[s], le = L[s] * fac;
    double d[3], dv[3], g[3], gp[3];
    double *gd = gs + s * 2 * dim, *gdv = gd + dim;
    spring_delta(P, dim, s, x, v, d, dv);
    for (unsigned a = 0; a < dim; a++) {
      double gi = i >= 0 ? gf[(size_t)i * dim + a] : 0.0;
      double gj = j >= 0 ? gf[(size_t)j * dim + a] : 0.0;
      g[a] = gi - gj;
    }
    if (dim == 1) {
      double ge = g[0] * k[s];
      gd[0] = ge;
      gdv[0] = g[0] * c[s];
      gp[0] = g[0] * (d[0] - le);
      gp[1] = -ge;
      gp[2] = g[0] * dv[0];
    } else {
      spring_nd_vjp(dim, d, dv, k[s], le, c[s], g, gd, gdv, gp);
    }
    gk[s] += gp[0];
    gL[s] += gp[1] * fac;
    gc[s] += gp[2];
    gact[s] += gp[1] * L[s] * alpha[s];
  }

  /* d = p_j - p_i: end j gets +gd, end i gets -gd (likewise dv). */
  const size_t *start = P->inc_start, *inc = P->inc;
  for (size_t p = 0; p < n; p++) {
    double sx[3] = {0, 0, 0}, sv[3] = {0, 0, 0};
    for (size_t e = start[p]; e < start[p + 1]; e++) {
      const double *gd = gs + (inc[e] >> 1) * 2 * dim;
      double sg = (inc[e] & 1) != 0 ? 1.0 : -1.0;
      for (unsigned a = 0; a < dim; a++) {
        sx[a] += sg * gd[a];
        sv[a] += sg * gd[dim + a];
      }
    }
    for (unsigned a = 0; a < dim; a++) {
      gx[p * dim + a] += sx[a];
      gv[p * dim + a] += sv[a];
    }
  }
}

/* The chain fast path of reverse(): the same three passes with the
 * incidence lists unrolled (particle p: spring p as end j, spring p+1 as
 * end i), in the same order of operations. */
/* The passes of the chain's reverse after the particle pass (which set gf
 * and the parts of gv it owns): drag, force, gravity, springs and the
 * spring-to-particle gather. ggsum is the sum of the acceleration
 * cotangents (the gravity gradient). */
PARTICLES_KERNEL void
chain_reverse_rest(const particles *P, const double *restrict x,
                   const double *restrict v, const double *restrict act,
                   const double *restrict theta, double ggsum,
                   double *restrict gx, double *restrict gv,
                   double *restrict gact, double *restrict gforce,
                   double *restrict gth, const bool *want, bool use_act) {
  const size_t n = P->n;
  const double *restrict k = theta, *restrict L = theta + n;
  const double *restrict c = theta + 2 * n;
  const double *restrict alpha = P->alpha;
  const double *restrict gf = P->gf;
  double *restrict gk = gth, *restrict gL = gth + n, *restrict gc = gth + 2 * n;
  double *restrict gdrag = gth + 3 * n;
  /* Ports: stiffness, rest_length, spring_damping, drag, gravity. */
  const bool wk = want == NULL || want[0], wl = want == NULL || want[1];
  const bool wc = want == NULL || want[2], wd = want == NULL || want[3];
  const bool wg = want == NULL || want[4];
  if (wd)
    for (size_t p = 0; p < n; p++)
      gdrag[p] -= gf[p] * v[p];
  if (gforce != NULL)
    for (size_t p = 0; p < n; p++)
      gforce[p] += gf[p];
  if (wg)
    gth[4 * n] += ggsum;
    /* The cotangent of spring s's force is g_s = gf[s-1] - gf[s] (gf[-1] = 0
     * at the anchor). Its cotangents of d and dv, gd_s = g_s k_s and
     * gdv_s = g_s c_s, reach particle p as gd_p - gd_{p+1}. Recomputing
     * g_{p+1} instead of reading last iteration's result keeps the main loop
     * free of loop-carried dependences, so it vectorises; the operations and
     * their order are those of the general kernel. */
#define CHAIN_G(s) ((s) > 0 ? gf[(s)-1] - gf[s] : 0.0 - gf[0])
  {
    double fac = 1.0 + alpha[0] * act[0], le = L[0] * fac;
    double g = 0.0 - gf[0], ge = g * k[0];
    if (wk)
      gk[0] += g * ((x[0] - P->anchor[0]) - le);
    if (wl)
      gL[0] += -ge * fac;
    if (wc)
      gc[0] += g * v[0];
    if (gact != NULL)
      gact[0] += -ge * L[0] * alpha[0];
  }
  if (n > 1) {
    double g0 = 0.0 - gf[0], g1 = gf[0] - gf[1];
    gx[0] += (0.0 + g0 * k[0]) + -1.0 * (g1 * k[1]);
    gv[0] += (0.0 + g0 * c[0]) + -1.0 * (g1 * c[1]);
  }
  for (size_t p = 1; p + 1 < n; p++) {
    double g = gf[p - 1] - gf[p], gn = gf[p] - gf[p + 1];
    if (wk)
      gk[p] += g * ((x[p] - x[p - 1]) -
                    (use_act ? L[p] * (1.0 + alpha[p] * act[p]) : L[p]));
    gx[p] += (0.0 + g * k[p]) + -1.0 * (gn * k[p + 1]);
    gv[p] += (0.0 + g * c[p]) + -1.0 * (gn * c[p + 1]);
  }
  {
    size_t p = n - 1;
    double g = CHAIN_G(p);
    if (wk && p > 0)
      gk[p] += g * ((x[p] - x[p - 1]) -
                    (use_act ? L[p] * (1.0 + alpha[p] * act[p]) : L[p]));
    gx[p] += 0.0 + g * k[p];
    gv[p] += 0.0 + g * c[p];
  }
  if (wl)
    for (size_t s = 1; s < n; s++)
      gL[s] += -(CHAIN_G(s) * k[s]) * (1.0 + alpha[s] * act[s]);
  if (wc)
    for (size_t s = 1; s < n; s++)
      gc[s] += CHAIN_G(s) * (v[s] - v[s - 1]);
  if (gact != NULL)
    for (size_t s = 1; s < n; s++)
      gact[s] += -(CHAIN_G(s) * k[s]) * L[s] * alpha[s];
#undef CHAIN_G
}

TW_KERNEL_CLONES
static void chain_reverse(const particles *P, const double *restrict x,
                          const double *restrict v, const double *restrict act,
                          const double *restrict theta,
                          const double *restrict wx, const double *restrict wa,
                          double *restrict gx, double *restrict gv,
                          double *restrict gact, double *restrict gforce,
                          double *restrict gth, const bool *want) {
  const size_t n = P->n;
  const double *restrict drag = theta + 3 * n, *restrict im = P->inv_mass;
  double *restrict gf = P->gf;
  for (size_t p = 0; p < n; p++) {
    double gfq = wa[p] * im[p];
    gf[p] = gfq;
    gv[p] += wx[p] - drag[p] * gfq;
  }
  /* The gravity gradient is a sequential sum (fixed order, so it cannot
   * vectorise): only when it is wanted. */
  double ggsum = 0;
  if (want == NULL || want[4])
    for (size_t p = 0; p < n; p++)
      ggsum += wa[p];
  chain_reverse_rest(P, x, v, act, theta, ggsum, gx, gv, gact, gforce, gth,
                     want, true);
}

/* The fused VJP of chain_step: the integrator's prologue (x' = x + h v',
 * v' = v + h a) folded into the particle pass, then the same passes. The
 * velocity half of g's cotangent is zero in the scheme, which the generic
 * path adds explicitly: (0.0 - drag gf) keeps its bits. */
TW_KERNEL_CLONES
static void
chain_step_reverse(const particles *P, double h, const double *restrict x,
                   const double *restrict v, const double *restrict act,
                   const double *restrict theta, const double *restrict Gx,
                   const double *restrict Gv, double *restrict gx,
                   double *restrict gv, double *restrict gact,
                   double *restrict gforce, double *restrict gth,
                   const bool *want) {
  const size_t n = P->n;
  const double *restrict drag = theta + 3 * n, *restrict im = P->inv_mass;
  double *restrict gf = P->gf;
  for (size_t p = 0; p < n; p++) {
    double gvt = Gv[p] + h * Gx[p], wa = h * gvt, gfq = wa * im[p];
    gx[p] = Gx[p];
    gf[p] = gfq;
    gv[p] = gvt + (0.0 - drag[p] * gfq);
  }
  double ggsum = 0; /* sequential: only when wanted */
  if (want == NULL || want[4])
    for (size_t p = 0; p < n; p++)
      ggsum += h * (Gv[p] + h * Gx[p]);
  /* Without actuation strength the actuation terms are exact no-ops. */
  if (P->has_alpha)
    chain_reverse_rest(P, x, v, act, theta, ggsum, gx, gv, gact, gforce, gth,
                       want, true);
  else
    chain_reverse_rest(P, x, v, act, theta, ggsum, gx, gv, gact, gforce, gth,
                       want, false);
}

static int particles_chain_step_vjp(void *self, double t, double h,
                                    const double *q, const double *u,
                                    const double *theta, const double *G,
                                    double *gq, double *gu, double *gtheta,
                                    const bool *want, tw_err *err) {
  (void)t;
  (void)err;
  particles *P = self;
  const size_t n = P->n;
  if (u == NULL)
    u = P->zeros;
  double *sink = P->sink;
  if (gq == NULL)
    gq = sink;
  if (gtheta == NULL) {
    gtheta = sink + 2 * n + P->nu;
    memset(gtheta, 0, P->ntheta * sizeof *gtheta);
  }
  chain_step_reverse(P, h, q, q + n, u, theta, G, G + n, gq, gq + n, gu,
                     gu != NULL ? gu + n : NULL, gtheta, want);
  return TW_OK;
}

static int particles_deriv_vjp(void *self, double t, const double *q,
                               const double *u, const double *theta,
                               const double *gqdot, double *gq, double *gu,
                               double *gtheta, const bool *want, tw_err *err) {
  (void)t;
  (void)err;
  particles *P = self;
  const size_t np = P->npos;
  if (gqdot == NULL || (gq == NULL && gu == NULL && gtheta == NULL))
    return TW_OK;
  if (u == NULL)
    u = P->zeros;
  /* Unwanted outputs go to zeroed scratch, so the kernels never test for
   * NULL. */
  double *sink = P->sink;
  if (gq == NULL) {
    gq = sink;
    memset(gq, 0, 2 * np * sizeof *gq);
  }
  if (gu == NULL && !P->chain) { /* the chain path skips gu instead */
    gu = sink + 2 * np;
    memset(gu, 0, P->nu * sizeof *gu);
  }
  if (gtheta == NULL) {
    gtheta = sink + 2 * np + P->nu;
    memset(gtheta, 0, P->ntheta * sizeof *gtheta);
  }
  const double *x = q, *v = q + np, *wx = gqdot, *wa = gqdot + np;
  double *gx = gq, *gv = gq + np;
  double *gact = gu, *gforce = gu != NULL ? gu + P->ns : NULL;
  if (P->chain) {
    chain_reverse(P, x, v, u, theta, wx, wa, gx, gv, gact, gforce, gtheta,
                  want);
    return TW_OK;
  }
  switch (P->dim) {
  case 1:
    reverse(P, 1, x, v, u, theta, wx, wa, gx, gv, gact, gforce, gtheta);
    break;
  case 2:
    reverse(P, 2, x, v, u, theta, wx, wa, gx, gv, gact, gforce, gtheta);
    break;
  default:
    reverse(P, 3, x, v, u, theta, wx, wa, gx, gv, gact, gforce, gtheta);
    break;
  }
  return TW_OK;
}

/* --- Projection contact ---------------------------------------------- */

/* The contact set: particle p is projected when it is below the ground and
 * moving down. project and project_vjp share this test. */
static bool in_contact(const particles *P, const double *q, size_t p) {
  size_t h = p * P->dim + P->dim - 1;
  return q[h] < P->ground && q[P->npos + h] < 0;
}

/* For each particle below the ground and moving down: height := ground,
 * vertical velocity := 0 and, with friction, tangential velocity := 0. */
static int particles_project(void *self, double *q, tw_err *err) {
  (void)err;
  const particles *P = self;
  const unsigned dim = P->dim;
  for (size_t p = 0; p < P->n; p++) {
    if (!in_contact(P, q, p))
      continue;
    size_t h = p * dim + dim - 1;
    q[h] = P->ground;
    q[P->npos + h] = 0;
    if (P->friction) {
      for (unsigned a = 0; a + 1 < dim; a++)
        q[P->npos + p * dim + a] = 0;
    }
  }
  return TW_OK;
}

/* Every component project() overwrote with a constant passes no gradient
 * to its pre-projection value; the rest pass it unchanged. */
static int particles_project_vjp(void *self, const double *q_pre, double *g,
                                 tw_err *err) {
  (void)err;
  const particles *P = self;
  const unsigned dim = P->dim;
  for (size_t p = 0; p < P->n; p++) {
    if (!in_contact(P, q_pre, p))
      continue;
    size_t h = p * dim + dim - 1;
    g[h] = 0;
    g[P->npos + h] = 0;
    if (P->friction) {
      for (unsigned a = 0; a + 1 < dim; a++)
        g[P->npos + p * dim + a] = 0;
    }
  }
  return TW_OK;
}

/* --- Description, defaults, lifetime --------------------------------- */

static void particles_describe(const void *self, tw_dyn_desc *out) {
  const particles *P = self;
  memset(out, 0, sizeof *out);
  out->kind = "particles";
  out->state = P->state;
  out->nstate = 2;
  out->inputs = P->inputs;
  out->ninputs = 2;
  out->params = P->params;
  out->nparams = 5;
  out->nq = 2 * P->npos;
  out->nu = P->nu;
  out->ntheta = P->ntheta;
  out->second_order = true;
}

static void particles_default_params(const void *self, double *theta) {
  const particles *P = self;
  memcpy(theta, P->theta0, P->ntheta * sizeof *theta);
}

/* Names parameter index idx of theta for messages. */
static const char *param_name(const particles *P, size_t idx, size_t *at) {
  for (size_t k = 0; k < 5; k++) {
    if (idx < P->params[k].size) {
      *at = idx;
      return P->params[k].name;
    }
    idx -= P->params[k].size;
  }
  *at = idx;
  return "?";
}

/* q0 does not depend on theta; theta (may be NULL) is only checked to be
 * finite, so a bad parameter is reported before a rollout starts. */
static int particles_init(void *self, const double *theta, double *q0,
                          tw_err *err) {
  const particles *P = self;
  if (theta != NULL) {
    for (size_t i = 0; i < P->ntheta; i++) {
      if (!isfinite(theta[i])) {
        size_t at;
        const char *name = param_name(P, i, &at);
        return tw_err_set(err, TW_ENUMERIC,
                          "particles: parameter %s[%zu] is not finite (%g)",
                          name, at, theta[i]);
      }
    }
  }
  memcpy(q0, P->q0, 2 * P->npos * sizeof *q0);
  return TW_OK;
}

static void particles_free(void *self) {
  particles *P = self;
  if (P == NULL)
    return;
  tw_free(P->ei);
  tw_free(P->inc_start);
  tw_free(P->inv_mass);
  tw_free(P);
}

static const tw_dyn_ops particles_ops = {
    .kind = "particles",
    .describe = particles_describe,
    .default_params = particles_default_params,
    .init = particles_init,
    .deriv = particles_deriv,
    .deriv_vjp = particles_deriv_vjp,
    .project = NULL,
    .project_vjp = NULL,
    .free = particles_free,
};

/* The chain topology adds the fused semi-implicit step. */
static const tw_dyn_ops particles_chain_ops = {
    .kind = "particles",
    .describe = particles_describe,
    .default_params = particles_default_params,
    .init = particles_init,
    .deriv = particles_deriv,
    .deriv_vjp = particles_deriv_vjp,
    .step_semi_implicit = particles_chain_step,
    .step_semi_implicit_vjp = particles_chain_step_vjp,
    .free = particles_free,
};

static const tw_dyn_ops particles_projection_ops = {
    .kind = "particles",
    .describe = particles_describe,
    .default_params = particles_default_params,
    .init = particles_init,
    .deriv = particles_deriv,
    .deriv_vjp = particles_deriv_vjp,
    .project = particles_project,
    .project_vjp = particles_project_vjp,
    .free = particles_free,
};

/* --- Validation ------------------------------------------------------ */

enum { ANY_FINITE, NON_NEGATIVE, POSITIVE };

/* Checks every a[i] is finite and obeys rule, naming name[i] otherwise. */
static int check_values(const double *a, size_t n, const char *name, int rule,
                        tw_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i]))
      return tw_err_set(err, TW_EINVAL, "particles: %s[%zu] is not finite (%g)",
                        name, i, a[i]);
    if (rule == POSITIVE && !(a[i] > 0))
      return tw_err_set(err, TW_EINVAL,
                        "particles: %s[%zu] must be > 0, got %g", name, i,
                        a[i]);
    if (rule == NON_NEGATIVE && a[i] < 0)
      return tw_err_set(err, TW_EINVAL,
                        "particles: %s[%zu] must be >= 0, got %g", name, i,
                        a[i]);
  }
  return TW_OK;
}

static int check_scalar(double x, const char *name, bool non_negative,
                        tw_err *err) {
  if (!isfinite(x))
    return tw_err_set(err, TW_EINVAL, "particles: %s is not finite (%g)", name,
                      x);
  if (non_negative && x < 0)
    return tw_err_set(err, TW_EINVAL, "particles: %s must be >= 0, got %g",
                      name, x);
  return TW_OK;
}

static int check_end(size_t s, int32_t idx, const char *field, size_t n,
                     tw_err *err) {
  if (idx < -1 || (idx >= 0 && (size_t)idx >= n))
    return tw_err_set(err, TW_EINVAL,
                      "particles: spring %zu: index %d out of range for %zu "
                      "particles (%s)",
                      s, (int)idx, n, field);
  return TW_OK;
}

static int validate(const tw_particles_spec *sp, tw_err *err) {
  if (sp == NULL)
    return tw_err_set(err, TW_EINVAL, "particles: spec is NULL");
  if (sp->dim < 1 || sp->dim > 3)
    return tw_err_set(err, TW_EINVAL,
                      "particles: dim must be 1, 2 or 3, got %u", sp->dim);
  if (sp->n == 0)
    return tw_err_set(err, TW_EINVAL, "particles: n must be > 0, got 0");
  if (sp->n > PARTICLES_MAX || sp->nsprings > PARTICLES_MAX)
    return tw_err_set(err, TW_EOVERFLOW,
                      "particles: %zu particles and %zu springs are too many",
                      sp->n, sp->nsprings);
  if (sp->mass == NULL || sp->position == NULL)
    return tw_err_set(err, TW_EINVAL, "particles: %s is NULL",
                      sp->mass == NULL ? "mass" : "position");
  if (sp->nsprings > 0 &&
      (sp->spring_i == NULL || sp->spring_j == NULL || sp->stiffness == NULL))
    return tw_err_set(err, TW_EINVAL, "particles: %zu springs but %s is NULL",
                      sp->nsprings,
                      sp->spring_i == NULL   ? "spring_i"
                      : sp->spring_j == NULL ? "spring_j"
                                             : "stiffness");
  if (sp->contact != TW_CONTACT_NONE && sp->contact != TW_CONTACT_PENALTY &&
      sp->contact != TW_CONTACT_PROJECTION)
    return tw_err_set(err, TW_EINVAL, "particles: unknown contact mode %d",
                      (int)sp->contact);

  const size_t n = sp->n, ns = sp->nsprings, dim = sp->dim;
  int rc;
  if ((rc = check_values(sp->mass, n, "mass", POSITIVE, err)) < 0 ||
      (rc = check_values(sp->position, n * dim, "position", ANY_FINITE, err)) <
          0)
    return rc;
  for (size_t p = 0; p < n; p++) {
    if (!isfinite(1.0 / sp->mass[p]))
      return tw_err_set(err, TW_EINVAL,
                        "particles: mass[%zu] is too small (%g)", p,
                        sp->mass[p]);
  }
  if (sp->velocity != NULL &&
      (rc = check_values(sp->velocity, n * dim, "velocity", ANY_FINITE, err)) <
          0)
    return rc;
  for (size_t s = 0; s < ns; s++) {
    int32_t i = sp->spring_i[s], j = sp->spring_j[s];
    if ((rc = check_end(s, i, "spring_i", n, err)) < 0 ||
        (rc = check_end(s, j, "spring_j", n, err)) < 0)
      return rc;
    if (i == -1 && j == -1)
      return tw_err_set(err, TW_EINVAL,
                        "particles: spring %zu: both ends are anchors (-1)", s);
    if (i == j)
      return tw_err_set(err, TW_EINVAL,
                        "particles: spring %zu: joins particle %d to itself", s,
                        (int)i);
    if (i != -1 && j != -1)
      continue;
    if (sp->anchor == NULL)
      return tw_err_set(err, TW_EINVAL,
                        "particles: spring %zu: has an anchor end (-1) but "
                        "anchor is NULL",
                        s);
    for (size_t a = 0; a < dim; a++) {
      if (!isfinite(sp->anchor[s * dim + a]))
        return tw_err_set(err, TW_EINVAL,
                          "particles: anchor[%zu] is not finite (%g)",
                          s * dim + a, sp->anchor[s * dim + a]);
    }
  }
  if (ns > 0) {
    if ((rc = check_values(sp->stiffness, ns, "stiffness", NON_NEGATIVE, err)) <
        0)
      return rc;
    if (sp->rest_length != NULL &&
        (rc = check_values(sp->rest_length, ns, "rest_length",
                           dim == 1 ? ANY_FINITE : NON_NEGATIVE, err)) < 0)
      return rc;
    if (sp->spring_damping != NULL &&
        (rc = check_values(sp->spring_damping, ns, "spring_damping",
                           NON_NEGATIVE, err)) < 0)
      return rc;
    if (sp->actuation_strength != NULL &&
        (rc = check_values(sp->actuation_strength, ns, "actuation_strength",
                           ANY_FINITE, err)) < 0)
      return rc;
  }
  if (sp->drag != NULL &&
      (rc = check_values(sp->drag, n, "drag", NON_NEGATIVE, err)) < 0)
    return rc;
  if (sp->gravity != NULL &&
      (rc = check_values(sp->gravity, dim, "gravity", ANY_FINITE, err)) < 0)
    return rc;
  if (sp->contact != TW_CONTACT_NONE &&
      (rc = check_scalar(sp->ground, "ground", false, err)) < 0)
    return rc;
  if (sp->contact == TW_CONTACT_PENALTY &&
      ((rc = check_scalar(sp->contact_stiffness, "contact_stiffness", true,
                          err)) < 0 ||
       (rc = check_scalar(sp->contact_damping, "contact_damping", true, err)) <
           0))
    return rc;
  return TW_OK;
}

/* --- Construction ---------------------------------------------------- */

/* Copies an optional array (NULL = zeros). */
static void copy_or_zero(double *dst, const double *src, size_t n) {
  if (src != NULL)
    memcpy(dst, src, n * sizeof *dst);
  else
    memset(dst, 0, n * sizeof *dst);
}

/* The initial rest length of spring s: signed x_j - x_i in 1-D, |p_j - p_i|
 * otherwise, with the anchor standing in for a -1 end. */
static double initial_length(const particles *P, const double *pos, size_t s) {
  const unsigned dim = P->dim;
  const double *pi =
      P->ei[s] >= 0 ? pos + (size_t)P->ei[s] * dim : P->anchor + s * dim;
  const double *pj =
      P->ej[s] >= 0 ? pos + (size_t)P->ej[s] * dim : P->anchor + s * dim;
  if (dim == 1)
    return pj[0] - pi[0];
  double r2 = 0;
  for (unsigned a = 0; a < dim; a++)
    r2 += (pj[a] - pi[a]) * (pj[a] - pi[a]);
  return sqrt(r2);
}

int tw_sim_particles(const tw_particles_spec *spec, tw_dyn_ops const **ops,
                     void **self, tw_err *err) {
  int rc = validate(spec, err);
  if (rc < 0)
    return rc;
  const unsigned dim = spec->dim;
  const size_t n = spec->n, ns = spec->nsprings, npos = n * dim;
  const size_t nu = ns + npos, ntheta = 3 * ns + n + dim;

  particles *P = tw_calloc(1, sizeof *P);
  if (P == NULL)
    return tw_err_set(err, TW_ENOMEM, "particles: out of memory");
  /* One block of doubles, one of spring ends, one of incidence lists. */
  size_t ndouble = n + ns * dim + ns + 2 * npos + ntheta + nu + npos +
                   3 * ns * dim + (2 * npos + nu + ntheta);
  P->inv_mass = tw_calloc(ndouble, sizeof(double));
  P->ei = tw_calloc(2 * ns + 1, sizeof(int32_t));
  P->inc_start = tw_calloc(n + 1 + 2 * ns, sizeof(size_t));
  if (P->inv_mass == NULL || P->ei == NULL || P->inc_start == NULL) {
    particles_free(P);
    return tw_err_set(err, TW_ENOMEM, "particles: out of memory");
  }
  P->dim = dim;
  P->contact = spec->contact;
  P->friction = spec->friction;
  P->n = n;
  P->ns = ns;
  P->npos = npos;
  P->nu = nu;
  P->ntheta = ntheta;
  P->ground = spec->contact != TW_CONTACT_NONE ? spec->ground : 0;
  if (spec->contact == TW_CONTACT_PENALTY) {
    P->contact_k = spec->contact_stiffness;
    P->contact_c = spec->contact_damping;
  }
  P->ej = P->ei + ns;
  P->inc = P->inc_start + n + 1;
  P->anchor = P->inv_mass + n;
  P->alpha = P->anchor + ns * dim;
  P->q0 = P->alpha + ns;
  P->theta0 = P->q0 + 2 * npos;
  P->zeros = P->theta0 + ntheta;
  P->gf = P->zeros + nu;
  P->fs = P->gf + npos;
  P->gs = P->fs + ns * dim;
  P->sink = P->gs + 2 * ns * dim;

  for (size_t p = 0; p < n; p++)
    P->inv_mass[p] = 1.0 / spec->mass[p];
  memcpy(P->q0, spec->position, npos * sizeof(double));
  copy_or_zero(P->q0 + npos, spec->velocity, npos);
  /* Incidence lists: count the ends at each particle, then fill them in
   * spec order (inc_start[p + 1] is the fill cursor of particle p). */
  for (size_t s = 0; s < ns; s++) {
    int32_t i = spec->spring_i[s], j = spec->spring_j[s];
    P->ei[s] = i;
    P->ej[s] = j;
    if (i < 0 || j < 0)
      memcpy(P->anchor + s * dim, spec->anchor + s * dim, dim * sizeof(double));
    if (i >= 0)
      P->inc_start[i + 1]++;
    if (j >= 0)
      P->inc_start[j + 1]++;
  }
  for (size_t p = 0; p < n; p++)
    P->inc_start[p + 1] += P->inc_start[p];
  for (size_t p = n; p > 0; p--)
    P->inc_start[p] = P->inc_start[p - 1];
  for (size_t s = 0; s < ns; s++) {
    if (P->ei[s] >= 0)
      P->inc[P->inc_start[P->ei[s] + 1]++] = 2 * s;
    if (P->ej[s] >= 0)
      P->inc[P->inc_start[P->ej[s] + 1]++] = 2 * s + 1;
  }
  copy_or_zero(P->alpha, spec->actuation_strength, ns);
  for (size_t s = 0; s < ns; s++)
    P->has_alpha = P->has_alpha || P->alpha[s] != 0;
  P->chain = dim == 1 && ns == n && spec->contact != TW_CONTACT_PENALTY;
  for (size_t s = 0; P->chain && s < ns; s++)
    P->chain = P->ei[s] == (int32_t)s - 1 && P->ej[s] == (int32_t)s;

  double *th = P->theta0;
  copy_or_zero(th, spec->stiffness, ns);
  if (spec->rest_length != NULL) {
    memcpy(th + ns, spec->rest_length, ns * sizeof(double));
  } else {
    for (size_t s = 0; s < ns; s++) {
      th[ns + s] = initial_length(P, spec->position, s);
      if (!isfinite(th[ns + s])) {
        particles_free(P);
        return tw_err_set(err, TW_EINVAL,
                          "particles: spring %zu: initial length is not "
                          "finite",
                          s);
      }
    }
  }
  copy_or_zero(th + 2 * ns, spec->spring_damping, ns);
  copy_or_zero(th + 3 * ns, spec->drag, n);
  copy_or_zero(th + 3 * ns + n, spec->gravity, dim);

  P->state[0] = (tw_port){"position", "m", npos, TW_F64};
  P->state[1] = (tw_port){"velocity", "m/s", npos, TW_F64};
  P->inputs[0] = (tw_port){"actuation", "", ns, TW_F64};
  P->inputs[1] = (tw_port){"force", "N", npos, TW_F64};
  P->params[0] = (tw_port){"stiffness", "N/m", ns, TW_F64};
  P->params[1] = (tw_port){"rest_length", "m", ns, TW_F64};
  P->params[2] = (tw_port){"spring_damping", "N*s/m", ns, TW_F64};
  P->params[3] = (tw_port){"drag", "N*s/m", n, TW_F64};
  P->params[4] = (tw_port){"gravity", "m/s^2", dim, TW_F64};

  *ops = spec->contact == TW_CONTACT_PROJECTION ? &particles_projection_ops
         : P->chain                             ? &particles_chain_ops
                                                : &particles_ops;
  *self = P;
  return TW_OK;
}
