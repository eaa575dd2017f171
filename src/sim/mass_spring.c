/*
 * mass_spring.c - DiffTaichi's 2-D mass-spring update as a discrete block
 * (tw_sim_mass_spring), with its hand-written VJP.
 *
 * The update is sim.h's, which transcribes bench/ad/SPEC.md (B2, B3). It
 * is written in the order the SPEC and the peers evaluate it, so B2 (unit
 * masses, no gravity, no actuation) runs the same floating-point
 * operations as the JAX peer: dt * (f / 1 + 0) is dt * f to the bit.
 *
 * Layout: x = [position (2n), velocity (2n)], u = actuation (nsprings),
 * theta = [rest_length (ns), stiffness (ns), damping (1), gravity (2)].
 *
 * The VJP re-runs the step forward into scratch (the per-spring geometry,
 * the per-mass velocities and which projection case each mass took), then
 * walks it backwards: wall, position update, ground, velocity update,
 * springs. The projections' active set is the one the forward step took
 * and is not differentiated (zero-measure switching, as DiffTaichi's own
 * gradients do).
 *
 * Invariants once tw_sim_mass_spring succeeds: self owns copies of every
 * spec array; spring ends are valid, distinct mass indices; the scratch
 * lives in self, so step and VJP allocate nothing and an instance serves
 * one thread at a time. Outputs never alias inputs (the block contract).
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

/* Largest n or nsprings accepted: every buffer size below fits size_t. */
#define MS_MAX ((size_t)1 << 28)

/* What the wall projection did to a mass (the VJP replays it). */
enum {
  WALL_NONE = 0,  /* not at the wall */
  WALL_KEEP,      /* v'.y was 0 and stays 0: passes its cotangent */
  WALL_STOP,      /* friction stopped v'.y: v'.y = 0 */
  WALL_SLIDE_UP,  /* v'.y > 0 slowed: v'.y - friction * v'.x */
  WALL_SLIDE_DOWN /* v'.y < 0 slowed: v'.y + friction * v'.x */
};

typedef struct ms {
  size_t n, ns, nx, ntheta;
  double eps, ground_h, wall_x, friction;
  bool ground, wall;
  int32_t *ia, *ib;     /* ns spring ends */
  unsigned char *wcase; /* n: WALL_* of the last forward run */
  unsigned char *stop;  /* n: 1 if the ground stopped the mass */
  double *mass;         /* n */
  double *alpha;        /* ns */
  double *x0;           /* nx */
  double *theta0;       /* ntheta */
  /* Scratch of the last forward run. */
  double *d;     /* 2 ns: x_a - x_b */
  double *r;     /* ns: |d| */
  double *c;     /* ns: (len - L) * k */
  double *F;     /* 2 ns */
  double *force; /* 2 n; the VJP reuses it for the force cotangent */
  double *xn;    /* nx: x_next when the VJP re-runs the step */
  tw_port state[2], inputs[1], params[4];
} ms;

static void ms_free(void *p) {
  ms *M = p;
  if (M == NULL)
    return;
  tw_free(M->ia);
  tw_free(M->wcase);
  tw_free(M->mass);
  tw_free(M);
}

static void ms_describe(const void *p, tw_block_desc *d) {
  const ms *M = p;
  memset(d, 0, sizeof *d);
  d->kind = "mass_spring";
  d->state = M->state;
  d->nstate = 2;
  d->inputs = M->inputs;
  d->ninputs = 1;
  d->params = M->params;
  d->nparams = 4;
  d->nx = M->nx;
  d->nu = M->ns;
  d->ntheta = M->ntheta;
  d->differentiable = true;
}

static void ms_default_params(const void *p, double *theta) {
  const ms *M = p;
  memcpy(theta, M->theta0, M->ntheta * sizeof(double));
}

static int ms_init(void *p, const double *theta, double *x0, tw_err *err) {
  (void)theta;
  (void)err;
  const ms *M = p;
  memcpy(x0, M->x0, M->nx * sizeof(double));
  return TW_OK;
}

/* One update from x into xn, leaving the scratch the VJP needs. */
static void ms_run(ms *M, const double *x, const double *act,
                   const double *theta, double dt, double *xn) {
  const size_t n = M->n, ns = M->ns;
  const double *rest = theta, *k = theta + ns;
  const double damping = theta[2 * ns], gx = theta[2 * ns + 1],
               gy = theta[2 * ns + 2];
  const double *v = x + 2 * n;
  double *vn = xn + 2 * n;
  for (size_t s = 0; s < ns; s++) {
    size_t a = (size_t)M->ia[s], b = (size_t)M->ib[s];
    double dx = x[2 * a] - x[2 * b], dy = x[2 * a + 1] - x[2 * b + 1];
    double r = sqrt(dx * dx + dy * dy), len = r + M->eps;
    double L = rest[s] * (1.0 + M->alpha[s] * (act != NULL ? act[s] : 0));
    double c = (len - L) * k[s];
    M->d[2 * s] = dx;
    M->d[2 * s + 1] = dy;
    M->r[s] = r;
    M->c[s] = c;
    M->F[2 * s] = c * dx / len;
    M->F[2 * s + 1] = c * dy / len;
  }
  memset(M->force, 0, 2 * n * sizeof(double));
  for (size_t s = 0; s < ns; s++) {
    size_t a = (size_t)M->ia[s];
    M->force[2 * a] -= M->F[2 * s];
    M->force[2 * a + 1] -= M->F[2 * s + 1];
  }
  for (size_t s = 0; s < ns; s++) {
    size_t b = (size_t)M->ib[s];
    M->force[2 * b] += M->F[2 * s];
    M->force[2 * b + 1] += M->F[2 * s + 1];
  }
  const double sc = exp(-dt * damping);
  for (size_t i = 0; i < n; i++) {
    double vx = sc * v[2 * i] + dt * (M->force[2 * i] / M->mass[i] + gx);
    double vy =
        sc * v[2 * i + 1] + dt * (M->force[2 * i + 1] / M->mass[i] + gy);
    M->stop[i] = M->ground && x[2 * i + 1] - M->ground_h < 0 && vy < 0;
    if (M->stop[i])
      vx = vy = 0;
    double px = x[2 * i] + dt * vx, py = x[2 * i + 1] + dt * vy;
    unsigned char wc = WALL_NONE;
    if (M->wall && px > M->wall_x && vx > 0) {
      double f = M->friction * vx;
      wc = WALL_KEEP;
      if (vy > 0) {
        wc = vy < f ? WALL_STOP : WALL_SLIDE_UP;
        vy -= vy < f ? vy : f;
      }
      if (vy < 0) {
        wc = -vy < f ? WALL_STOP : WALL_SLIDE_DOWN;
        vy += -vy < f ? -vy : f;
      }
      vx = 0;
    }
    M->wcase[i] = wc;
    xn[2 * i] = px;
    xn[2 * i + 1] = py;
    vn[2 * i] = vx;
    vn[2 * i + 1] = vy;
  }
}

static int ms_step(void *p, const tw_step_args *a, tw_err *err) {
  (void)err;
  ms_run(p, a->x, a->u, a->theta, a->dt, a->x_next);
  return TW_OK;
}

/* Maps the cotangents (GX, GV) of (x', v'out) of mass i to that of v'
 * before the wall and the position update. */
static void wall_and_position_vjp(const ms *M, size_t i, double dt,
                                  const double *GX, const double *GV,
                                  double *gvx, double *gvy) {
  double tx = GV ? GV[2 * i] : 0, ty = GV ? GV[2 * i + 1] : 0;
  switch (M->wcase[i]) {
  case WALL_NONE:
    break;
  case WALL_KEEP:
    tx = 0;
    break;
  case WALL_STOP:
    tx = ty = 0;
    break;
  case WALL_SLIDE_UP: /* v'.y - friction * v'.x */
    tx = -M->friction * ty;
    break;
  case WALL_SLIDE_DOWN: /* v'.y + friction * v'.x */
    tx = M->friction * ty;
    break;
  default:
    break;
  }
  if (GX != NULL) {
    tx += dt * GX[2 * i];
    ty += dt * GX[2 * i + 1];
  }
  *gvx = tx;
  *gvy = ty;
}

static int ms_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  (void)err;
  ms *M = p;
  const size_t n = M->n, ns = M->ns;
  const double dt = a->dt, *x = a->x, *theta = a->theta;
  const double *act = a->u;
  const double *rest = theta, *k = theta + ns, damping = theta[2 * ns];
  ms_run(M, x, act, theta, dt, M->xn);

  const double *GX = a->gx_next, *GV = GX ? GX + 2 * n : NULL;
  double *gx = a->gx, *gth = a->gtheta;
  bool want[4]; /* parameter ports whose gradient is accumulated */
  for (int q = 0; q < 4; q++)
    want[q] = gth != NULL && (a->want == NULL || a->want[q]);
  const double sc = exp(-dt * damping);
  double gs = 0, ggx = 0, ggy = 0;
  double *gf = M->force; /* the force cotangent, per mass */
  for (size_t i = 0; i < n; i++) {
    double gvx, gvy;
    wall_and_position_vjp(M, i, dt, GX, GV, &gvx, &gvy);
    if (M->stop[i])
      gvx = gvy = 0;
    /* v' = sc * v + dt * (force / m + gravity) */
    gs += x[2 * n + 2 * i] * gvx + x[2 * n + 2 * i + 1] * gvy;
    ggx += dt * gvx;
    ggy += dt * gvy;
    gf[2 * i] = dt * gvx / M->mass[i];
    gf[2 * i + 1] = dt * gvy / M->mass[i];
    if (gx != NULL) {
      gx[2 * i] = GX ? GX[2 * i] : 0;
      gx[2 * i + 1] = GX ? GX[2 * i + 1] : 0;
      gx[2 * n + 2 * i] = sc * gvx;
      gx[2 * n + 2 * i + 1] = sc * gvy;
    }
  }
  if (want[2])
    gth[2 * ns] += gs * (-dt * sc);
  if (want[3]) {
    gth[2 * ns + 1] += ggx;
    gth[2 * ns + 2] += ggy;
  }
  for (size_t s = 0; s < ns; s++) {
    size_t ea = (size_t)M->ia[s], eb = (size_t)M->ib[s];
    double gFx = gf[2 * eb] - gf[2 * ea], gFy = gf[2 * eb + 1] - gf[2 * ea + 1];
    double dx = M->d[2 * s], dy = M->d[2 * s + 1], r = M->r[s], c = M->c[s];
    double len = r + M->eps;
    /* F = c * d / len */
    double gc = (gFx * dx + gFy * dy) / len;
    double glen = -gc * c / len + k[s] * gc; /* and c = (len - L) * k */
    double gL = -k[s] * gc;
    double us = act != NULL ? act[s] : 0;
    double L = rest[s] * (1.0 + M->alpha[s] * us);
    if (want[0])
      gth[s] += gL * (1.0 + M->alpha[s] * us);
    if (want[1])
      gth[ns + s] += (len - L) * gc;
    if (a->gu != NULL)
      a->gu[s] = gL * rest[s] * M->alpha[s];
    if (gx != NULL) {
      /* len = |d| + eps (|d|' = 0 at d = 0), d = x_a - x_b */
      double w = r > 0 ? glen / r : 0;
      double gdx = c / len * gFx + w * dx, gdy = c / len * gFy + w * dy;
      gx[2 * ea] += gdx;
      gx[2 * ea + 1] += gdy;
      gx[2 * eb] -= gdx;
      gx[2 * eb + 1] -= gdy;
    }
  }
  return TW_OK;
}

static const tw_block_ops ms_ops = {
    .kind = "mass_spring",
    .describe = ms_describe,
    .default_params = ms_default_params,
    .init = ms_init,
    .step = ms_step,
    .step_vjp = ms_vjp,
    .free = ms_free,
};

/* --- Validation ------------------------------------------------------ */

enum { ANY_FINITE, NON_NEGATIVE, POSITIVE };

/* Checks every a[i] is finite and obeys rule, naming name[i] otherwise. */
static int check_values(const double *a, size_t n, const char *name, int rule,
                        tw_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i]))
      return tw_err_set(err, TW_EINVAL,
                        "mass_spring: %s[%zu] is not finite (%g)", name, i,
                        a[i]);
    if (rule == POSITIVE && !(a[i] > 0))
      return tw_err_set(err, TW_EINVAL,
                        "mass_spring: %s[%zu] must be > 0, got %g", name, i,
                        a[i]);
    if (rule == NON_NEGATIVE && a[i] < 0)
      return tw_err_set(err, TW_EINVAL,
                        "mass_spring: %s[%zu] must be >= 0, got %g", name, i,
                        a[i]);
  }
  return TW_OK;
}

static int check_scalar(double x, const char *name, int rule, tw_err *err) {
  if (!isfinite(x))
    return tw_err_set(err, TW_EINVAL, "mass_spring: %s is not finite (%g)",
                      name, x);
  if (rule == POSITIVE && !(x > 0))
    return tw_err_set(err, TW_EINVAL, "mass_spring: %s must be > 0, got %g",
                      name, x);
  if (rule == NON_NEGATIVE && x < 0)
    return tw_err_set(err, TW_EINVAL, "mass_spring: %s must be >= 0, got %g",
                      name, x);
  return TW_OK;
}

static int validate(const tw_mass_spring_spec *sp, tw_err *err) {
  if (sp == NULL)
    return tw_err_set(err, TW_EINVAL, "mass_spring: spec is NULL");
  if (sp->n == 0)
    return tw_err_set(err, TW_EINVAL, "mass_spring: n must be > 0, got 0");
  if (sp->n > MS_MAX || sp->nsprings > MS_MAX)
    return tw_err_set(err, TW_EOVERFLOW,
                      "mass_spring: %zu masses and %zu springs are too many",
                      sp->n, sp->nsprings);
  if (sp->mass == NULL || sp->position == NULL)
    return tw_err_set(err, TW_EINVAL, "mass_spring: %s is NULL",
                      sp->mass == NULL ? "mass" : "position");
  if (sp->nsprings > 0 &&
      (sp->spring_a == NULL || sp->spring_b == NULL || sp->stiffness == NULL))
    return tw_err_set(err, TW_EINVAL, "mass_spring: %zu springs but %s is NULL",
                      sp->nsprings,
                      sp->spring_a == NULL   ? "spring_a"
                      : sp->spring_b == NULL ? "spring_b"
                                             : "stiffness");
  const size_t n = sp->n, ns = sp->nsprings;
  int rc;
  if ((rc = check_values(sp->mass, n, "mass", POSITIVE, err)) < 0 ||
      (rc = check_values(sp->position, 2 * n, "position", ANY_FINITE, err)) <
          0 ||
      (sp->velocity != NULL &&
       (rc = check_values(sp->velocity, 2 * n, "velocity", ANY_FINITE, err)) <
           0))
    return rc;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(1.0 / sp->mass[i]))
      return tw_err_set(err, TW_EINVAL,
                        "mass_spring: mass[%zu] is too small (%g)", i,
                        sp->mass[i]);
  }
  for (size_t s = 0; s < ns; s++) {
    int32_t a = sp->spring_a[s], b = sp->spring_b[s];
    if (a < 0 || (size_t)a >= n || b < 0 || (size_t)b >= n)
      return tw_err_set(err, TW_EINVAL,
                        "mass_spring: spring %zu: index %d out of range for "
                        "%zu masses (%s)",
                        s, (int)(a < 0 || (size_t)a >= n ? a : b), n,
                        a < 0 || (size_t)a >= n ? "spring_a" : "spring_b");
    if (a == b)
      return tw_err_set(err, TW_EINVAL,
                        "mass_spring: spring %zu: joins mass %d to itself", s,
                        (int)a);
  }
  if ((rc = check_values(sp->stiffness, ns, "stiffness", NON_NEGATIVE, err)) <
          0 ||
      (sp->rest_length != NULL &&
       (rc = check_values(sp->rest_length, ns, "rest_length", NON_NEGATIVE,
                          err)) < 0) ||
      (sp->actuation_strength != NULL &&
       (rc = check_values(sp->actuation_strength, ns, "actuation_strength",
                          ANY_FINITE, err)) < 0) ||
      (rc = check_scalar(sp->damping, "damping", NON_NEGATIVE, err)) < 0 ||
      (rc = check_values(sp->gravity, 2, "gravity", ANY_FINITE, err)) < 0 ||
      (rc = check_scalar(sp->length_eps, "length_eps", POSITIVE, err)) < 0 ||
      (sp->ground && (rc = check_scalar(sp->ground_height, "ground_height",
                                        ANY_FINITE, err)) < 0) ||
      (sp->wall &&
       ((rc = check_scalar(sp->wall_x, "wall_x", ANY_FINITE, err)) < 0 ||
        (rc = check_scalar(sp->wall_friction, "wall_friction", NON_NEGATIVE,
                           err)) < 0)))
    return rc;
  return TW_OK;
}

/* --- Construction ---------------------------------------------------- */

int tw_sim_mass_spring(const tw_mass_spring_spec *spec, const char *name,
                       tw_block **out, tw_err *err) {
  int rc = validate(spec, err);
  if (rc < 0)
    return rc;
  const size_t n = spec->n, ns = spec->nsprings, nx = 4 * n;
  const size_t ntheta = 2 * ns + 3;
  ms *M = tw_calloc(1, sizeof *M);
  if (M == NULL)
    return tw_err_set(err, TW_ENOMEM, "mass_spring: out of memory");
  /* One block of doubles, one of spring ends, one of projection cases. */
  size_t ndouble =
      n + ns + nx + ntheta + 2 * ns + ns + ns + 2 * ns + 2 * n + nx;
  M->mass = tw_calloc(ndouble, sizeof(double));
  M->ia = tw_calloc(2 * ns + 1, sizeof(int32_t));
  M->wcase = tw_calloc(2 * n, 1);
  if (M->mass == NULL || M->ia == NULL || M->wcase == NULL) {
    ms_free(M);
    return tw_err_set(err, TW_ENOMEM, "mass_spring: out of memory");
  }
  M->n = n;
  M->ns = ns;
  M->nx = nx;
  M->ntheta = ntheta;
  M->eps = spec->length_eps;
  M->ground = spec->ground;
  M->ground_h = spec->ground ? spec->ground_height : 0;
  M->wall = spec->wall;
  M->wall_x = spec->wall ? spec->wall_x : 0;
  M->friction = spec->wall ? spec->wall_friction : 0;
  M->ib = M->ia + ns;
  M->stop = M->wcase + n;
  M->alpha = M->mass + n;
  M->x0 = M->alpha + ns;
  M->theta0 = M->x0 + nx;
  M->d = M->theta0 + ntheta;
  M->r = M->d + 2 * ns;
  M->c = M->r + ns;
  M->F = M->c + ns;
  M->force = M->F + 2 * ns;
  M->xn = M->force + 2 * n;

  memcpy(M->mass, spec->mass, n * sizeof(double));
  memcpy(M->x0, spec->position, 2 * n * sizeof(double));
  if (spec->velocity != NULL)
    memcpy(M->x0 + 2 * n, spec->velocity, 2 * n * sizeof(double));
  if (ns > 0) {
    memcpy(M->ia, spec->spring_a, ns * sizeof(int32_t));
    memcpy(M->ib, spec->spring_b, ns * sizeof(int32_t));
    memcpy(M->theta0 + ns, spec->stiffness, ns * sizeof(double));
  }
  if (spec->actuation_strength != NULL)
    memcpy(M->alpha, spec->actuation_strength, ns * sizeof(double));
  for (size_t s = 0; s < ns; s++) {
    if (spec->rest_length != NULL) {
      M->theta0[s] = spec->rest_length[s];
    } else {
      const double *pa = spec->position + 2 * (size_t)M->ia[s];
      const double *pb = spec->position + 2 * (size_t)M->ib[s];
      double dx = pa[0] - pb[0], dy = pa[1] - pb[1];
      M->theta0[s] = sqrt(dx * dx + dy * dy);
    }
  }
  M->theta0[2 * ns] = spec->damping;
  M->theta0[2 * ns + 1] = spec->gravity[0];
  M->theta0[2 * ns + 2] = spec->gravity[1];

  M->state[0] = (tw_port){"position", "m", 2 * n, TW_F64};
  M->state[1] = (tw_port){"velocity", "m/s", 2 * n, TW_F64};
  M->inputs[0] = (tw_port){"actuation", "", ns, TW_F64};
  M->params[0] = (tw_port){"rest_length", "m", ns, TW_F64};
  M->params[1] = (tw_port){"stiffness", "N/m", ns, TW_F64};
  M->params[2] = (tw_port){"damping", "1/s", 1, TW_F64};
  M->params[3] = (tw_port){"gravity", "m/s^2", 2, TW_F64};
  return tw_block_new(&ms_ops, M, name, out, err);
}
