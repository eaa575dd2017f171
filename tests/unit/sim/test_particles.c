/*
 * test_particles.c - the builtin particle system: spec validation, the
 * description and defaults, exact forces (B1 chain, single springs,
 * contact), conservation, coincident ends, projection contact, the VJP
 * against finite differences (dyn_check.h) and allocation failures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dyn_check.h"

#define MAXN 16
#define MAXS 64

/* --- Helpers --------------------------------------------------------- */

typedef struct dyn {
  const tw_dyn_ops *ops;
  void *self;
  tw_dyn_desc d;
} dyn;

static dyn dyn_make(const tw_particles_spec *spec) {
  dyn y;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sim_particles(spec, &y.ops, &y.self, &err);
  if (rc != TW_OK)
    print_error("tw_sim_particles: %s\n", tw_err_msg(&err));
  assert_int_equal(rc, TW_OK);
  y.ops->describe(y.self, &y.d);
  return y;
}

static void dyn_free(dyn *y) { y->ops->free(y->self); }

static void deriv(const dyn *y, const double *q, const double *u,
                  const double *th, double *qdot) {
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(y->ops->deriv(y->self, 0, q, u, th, qdot, &err), TW_OK);
}

/* A spec with room for its arrays. */
typedef struct net {
  double mass[MAXN], pos[3 * MAXN], vel[3 * MAXN], anchor[3 * MAXS];
  double k[MAXS], L[MAXS], cs[MAXS], alpha[MAXS], drag[MAXN], g[3];
  int32_t si[MAXS], sj[MAXS];
  tw_particles_spec spec;
} net;

static void net_add_spring(net *b, int32_t i, int32_t j) {
  size_t s = b->spec.nsprings++;
  assert_true(s < MAXS);
  b->si[s] = i;
  b->sj[s] = j;
  b->k[s] = 40 + 7 * (double)(s % 5);
  b->cs[s] = 0.2 + 0.05 * (double)(s % 3);
  b->alpha[s] = 0.3 * (double)(s % 3) - 0.2;
}

/* A network of n particles on a perturbed unit grid in dim dimensions,
 * springs between particles closer than 1.5 (a chain in 1-D), and with
 * anchors two anchored springs, one anchor on each side. */
static void net_build(net *b, unsigned dim, size_t n, bool anchors) {
  memset(b, 0, sizeof *b);
  assert_true(n <= MAXN);
  for (size_t p = 0; p < n; p++) {
    size_t cell[3] = {p % 3, (p / 3) % 3, p / 9};
    if (dim == 1)
      cell[0] = p + 1;
    for (unsigned a = 0; a < dim; a++)
      b->pos[p * dim + a] = (double)cell[a] + 0.1 * sin(3.0 * (double)p + a);
    b->mass[p] = 0.5 + 0.25 * (double)(p % 4);
    b->drag[p] = 0.05 * (double)(p % 3);
  }
  b->spec = (tw_particles_spec){.dim = dim, .n = n};
  for (size_t i = 0; i < n; i++) {
    for (size_t j = i + 1; j < n; j++) {
      double r2 = 0;
      for (unsigned a = 0; a < dim; a++) {
        double d = b->pos[j * dim + a] - b->pos[i * dim + a];
        r2 += d * d;
      }
      if (r2 < 1.5 * 1.5)
        net_add_spring(b, (int32_t)i, (int32_t)j);
    }
  }
  if (anchors) {
    size_t s = b->spec.nsprings;
    net_add_spring(b, -1, 0); /* anchor as end i */
    for (unsigned a = 0; a < dim; a++)
      b->anchor[s * dim + a] = b->pos[a] - 0.8 + 0.1 * a;
    s = b->spec.nsprings;
    net_add_spring(b, (int32_t)(n - 1), -1); /* anchor as end j */
    for (unsigned a = 0; a < dim; a++)
      b->anchor[s * dim + a] = b->pos[(n - 1) * dim + a] + 0.9 - 0.2 * a;
  }
  b->g[dim - 1] = -9.8;
  b->spec.mass = b->mass;
  b->spec.position = b->pos;
  b->spec.velocity = b->vel;
  b->spec.spring_i = b->si;
  b->spec.spring_j = b->sj;
  b->spec.anchor = b->anchor;
  b->spec.stiffness = b->k;
  b->spec.spring_damping = b->cs;
  b->spec.actuation_strength = b->alpha;
  b->spec.drag = b->drag;
  b->spec.gravity = b->g;
}

/* --- Validation ------------------------------------------------------ */

/* A valid 2-D base: 4 particles, springs (0,1), (1,2), (2, anchor). */
static void base_spec(net *b) {
  memset(b, 0, sizeof *b);
  static const double pos[8] = {0, 0, 1, 0, 1, 1, 0, 1};
  memcpy(b->pos, pos, sizeof pos);
  for (int p = 0; p < 4; p++) {
    b->mass[p] = 1;
    b->drag[p] = 0.1;
  }
  static const int32_t si[3] = {0, 1, 2}, sj[3] = {1, 2, -1};
  memcpy(b->si, si, sizeof si);
  memcpy(b->sj, sj, sizeof sj);
  for (int s = 0; s < 3; s++) {
    b->k[s] = 10;
    b->L[s] = 1;
    b->cs[s] = 0.5;
    b->alpha[s] = 0.1;
  }
  b->anchor[4] = 2;
  b->anchor[5] = 2;
  b->g[1] = -9.8;
  b->spec = (tw_particles_spec){.dim = 2,
                                .n = 4,
                                .mass = b->mass,
                                .position = b->pos,
                                .velocity = b->vel,
                                .nsprings = 3,
                                .spring_i = b->si,
                                .spring_j = b->sj,
                                .anchor = b->anchor,
                                .stiffness = b->k,
                                .rest_length = b->L,
                                .spring_damping = b->cs,
                                .actuation_strength = b->alpha,
                                .drag = b->drag,
                                .gravity = b->g};
}

typedef struct bad_case {
  int code;
  const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
    {TW_EINVAL, "particles: dim must be 1, 2 or 3, got 0"},
    {TW_EINVAL, "particles: dim must be 1, 2 or 3, got 4"},
    {TW_EINVAL, "particles: n must be > 0, got 0"},
    {TW_EINVAL, "particles: mass is NULL"},
    {TW_EINVAL, "particles: position is NULL"},
    {TW_EINVAL, "particles: 3 springs but spring_i is NULL"},
    {TW_EINVAL, "particles: 3 springs but spring_j is NULL"},
    {TW_EINVAL, "particles: 3 springs but stiffness is NULL"},
    {TW_EINVAL, "particles: unknown contact mode 7"},
    {TW_EINVAL, "particles: mass[2] must be > 0, got 0"},
    {TW_EINVAL, "particles: mass[1] must be > 0, got -1"},
    {TW_EINVAL, "particles: mass[3] is not finite (nan)"},
    {TW_EINVAL, "particles: position[5] is not finite (inf)"},
    {TW_EINVAL, "particles: velocity[0] is not finite (nan)"},
    {TW_EINVAL, "particles: spring 1: index 4 out of range for 4 particles "
                "(spring_i)"},
    {TW_EINVAL, "particles: spring 0: index -2 out of range for 4 particles "
                "(spring_j)"},
    {TW_EINVAL, "particles: spring 2: both ends are anchors (-1)"},
    {TW_EINVAL, "particles: spring 1: joins particle 1 to itself"},
    {TW_EINVAL,
     "particles: spring 2: has an anchor end (-1) but anchor is NULL"},
    {TW_EINVAL, "particles: anchor[5] is not finite (nan)"},
    {TW_EINVAL, "particles: stiffness[1] must be >= 0, got -3"},
    {TW_EINVAL, "particles: stiffness[0] is not finite (nan)"},
    {TW_EINVAL, "particles: rest_length[2] must be >= 0, got -0.5"},
    {TW_EINVAL, "particles: rest_length[0] is not finite (inf)"},
    {TW_EINVAL, "particles: spring_damping[1] must be >= 0, got -1"},
    {TW_EINVAL, "particles: actuation_strength[0] is not finite (nan)"},
    {TW_EINVAL, "particles: drag[3] must be >= 0, got -0.1"},
    {TW_EINVAL, "particles: gravity[1] is not finite (nan)"},
    {TW_EINVAL, "particles: contact_stiffness must be >= 0, got -1"},
    {TW_EINVAL, "particles: contact_damping is not finite (nan)"},
    {TW_EINVAL, "particles: ground is not finite (inf)"},
    {TW_EOVERFLOW, "particles: "},
    {TW_EINVAL, "particles: spring 0: index 12 out of range for 10 particles "
                "(spring_j)"},
    {TW_EINVAL, "particles: spring 0: initial length is not finite"},
    {TW_EINVAL, "particles: mass[0] is too small (9.99989e-321)"},
};

static void mutate(net *b, int which) {
  tw_particles_spec *s = &b->spec;
  switch (which) {
  case 0:
    s->dim = 0;
    break;
  case 1:
    s->dim = 4;
    break;
  case 2:
    s->n = 0;
    break;
  case 3:
    s->mass = NULL;
    break;
  case 4:
    s->position = NULL;
    break;
  case 5:
    s->spring_i = NULL;
    break;
  case 6:
    s->spring_j = NULL;
    break;
  case 7:
    s->stiffness = NULL;
    break;
  case 8:
    s->contact = (tw_contact_mode)7;
    break;
  case 9:
    b->mass[2] = 0;
    break;
  case 10:
    b->mass[1] = -1;
    break;
  case 11:
    b->mass[3] = NAN;
    break;
  case 12:
    b->pos[5] = INFINITY;
    break;
  case 13:
    b->vel[0] = NAN;
    break;
  case 14:
    b->si[1] = 4;
    break;
  case 15:
    b->sj[0] = -2;
    break;
  case 16:
    b->si[2] = -1;
    break;
  case 17:
    b->sj[1] = 1;
    break;
  case 18:
    s->anchor = NULL;
    break;
  case 19:
    b->anchor[5] = NAN;
    break;
  case 20:
    b->k[1] = -3;
    break;
  case 21:
    b->k[0] = NAN;
    break;
  case 22:
    b->L[2] = -0.5;
    break;
  case 23:
    b->L[0] = INFINITY;
    break;
  case 24:
    b->cs[1] = -1;
    break;
  case 25:
    b->alpha[0] = NAN;
    break;
  case 26:
    b->drag[3] = -0.1;
    break;
  case 27:
    b->g[1] = NAN;
    break;
  case 28:
    s->contact = TW_CONTACT_PENALTY;
    s->contact_stiffness = -1;
    break;
  case 29:
    s->contact = TW_CONTACT_PENALTY;
    s->contact_stiffness = 100;
    s->contact_damping = NAN;
    break;
  case 30:
    s->contact = TW_CONTACT_PROJECTION;
    s->ground = INFINITY;
    break;
  case 31:
    s->n = SIZE_MAX / 2;
    break;
  case 32:
    s->dim = 1;
    s->n = 10;
    for (int p = 0; p < 10; p++)
      b->mass[p] = 1;
    b->sj[0] = 12;
    break;
  case 33:
    /* Finite positions whose distance overflows. */
    b->pos[0] = -1e308;
    b->pos[2] = 1e308;
    s->rest_length = NULL;
    break;
  case 34:
    b->mass[0] = 1e-320; /* 1 / m overflows */
    break;
  default:
    fail();
  }
}

static void test_validation(void **state) {
  (void)state;
  const tw_dyn_ops *ops = (const tw_dyn_ops *)&ops;
  void *self = &self;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_particles(NULL, &ops, &self, &err), TW_EINVAL);
  assert_string_equal(tw_err_msg(&err), "particles: spec is NULL");
  size_t ncases = sizeof bad_cases / sizeof bad_cases[0];
  for (size_t c = 0; c < ncases; c++) {
    net b;
    base_spec(&b);
    mutate(&b, (int)c);
    tw_err_init(&err);
    int rc = tw_sim_particles(&b.spec, &ops, &self, &err);
    if (rc != bad_cases[c].code || strncmp(tw_err_msg(&err), bad_cases[c].msg,
                                           strlen(bad_cases[c].msg)) != 0) {
      print_error("case %zu: rc %d, message '%s', want '%s'\n", c, rc,
                  tw_err_msg(&err), bad_cases[c].msg);
      fail();
    }
    /* Outputs untouched on failure. */
    assert_ptr_equal(ops, (const tw_dyn_ops *)&ops);
    assert_ptr_equal(self, &self);
  }

  /* Accepted: a negative rest length in 1-D (the signed convention), and
   * garbage contact fields when contact is off. */
  net b;
  base_spec(&b);
  b.spec.dim = 1;
  b.L[0] = -2;
  b.spec.contact_stiffness = -5;
  b.spec.ground = NAN;
  dyn y = dyn_make(&b.spec);
  assert_null(y.ops->project);
  dyn_free(&y);
}

/* --- Description and defaults ---------------------------------------- */

static void test_describe_defaults(void **state) {
  (void)state;
  net b;
  base_spec(&b);
  b.spec.rest_length = NULL;
  b.spec.velocity = NULL;
  b.spec.contact = TW_CONTACT_PENALTY;
  b.spec.contact_stiffness = 1000;
  dyn y = dyn_make(&b.spec);
  const tw_dyn_desc *d = &y.d;
  assert_string_equal(y.ops->kind, "particles");
  assert_string_equal(d->kind, "particles");
  assert_true(d->second_order);
  assert_int_equal(d->nq, 16);
  assert_int_equal(d->nu, 3 + 8);
  assert_int_equal(d->ntheta, 3 * 3 + 4 + 2);
  static const char *const sn[] = {"position", "velocity"};
  static const char *const su[] = {"m", "m/s"};
  static const char *const in[] = {"actuation", "force"};
  static const char *const iu[] = {"", "N"};
  static const size_t isz[] = {3, 8};
  static const char *const pn[] = {"stiffness", "rest_length", "spring_damping",
                                   "drag", "gravity"};
  static const char *const pu[] = {"N/m", "m", "N*s/m", "N*s/m", "m/s^2"};
  static const size_t psz[] = {3, 3, 3, 4, 2};
  assert_int_equal(d->nstate, 2);
  assert_int_equal(d->ninputs, 2);
  assert_int_equal(d->nparams, 5);
  for (int i = 0; i < 2; i++) {
    assert_string_equal(d->state[i].name, sn[i]);
    assert_string_equal(d->state[i].unit, su[i]);
    assert_int_equal(d->state[i].size, 8);
    assert_string_equal(d->inputs[i].name, in[i]);
    assert_string_equal(d->inputs[i].unit, iu[i]);
    assert_int_equal(d->inputs[i].size, isz[i]);
  }
  for (int i = 0; i < 5; i++) {
    assert_string_equal(d->params[i].name, pn[i]);
    assert_string_equal(d->params[i].unit, pu[i]);
    assert_int_equal(d->params[i].size, psz[i]);
  }
  assert_null(y.ops->project);
  assert_null(y.ops->project_vjp);

  /* The spec is copied: scribbling on it afterwards changes nothing. */
  net saved = b;
  memset(b.pos, 0, sizeof b.pos);
  memset(b.k, 0, sizeof b.k);
  double th[15], q0[16];
  y.ops->default_params(y.self, th);
  static const double want[15] = {
      10,  10,  10,                 /* stiffness */
      1,   1,   1.4142135623730951, /* |(2,2) - (1,1)| */
      0.5, 0.5, 0.5,
      0.1, 0.1, 0.1,
      0.1, 0,   -9.8};
  for (int i = 0; i < 15; i++)
    dyn_assert_close(th[i], want[i], 1e-15);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(y.ops->init(y.self, th, q0, &err), TW_OK);
  for (int i = 0; i < 8; i++) {
    assert_true(q0[i] == saved.pos[i]);
    assert_true(q0[8 + i] == 0);
  }
  assert_int_equal(y.ops->init(y.self, NULL, q0, &err), TW_OK);
  th[4] = NAN;
  assert_int_equal(y.ops->init(y.self, th, q0, &err), TW_ENUMERIC);
  assert_string_equal(
      tw_err_msg(&err),
      "particles: parameter rest_length[1] is not finite (nan)");
  dyn_free(&y);
}

/* 1-D default rest lengths are signed x_j - x_i, the anchor standing in. */
static void test_rest_length_1d(void **state) {
  (void)state;
  double mass[3] = {1, 1, 1}, pos[3] = {0, 2, 1}, k[3] = {1, 1, 1};
  double anchor[3] = {0, 3, 5};
  int32_t si[3] = {1, 0, -1}, sj[3] = {2, -1, 2};
  tw_particles_spec spec = {.dim = 1,
                            .n = 3,
                            .mass = mass,
                            .position = pos,
                            .nsprings = 3,
                            .spring_i = si,
                            .spring_j = sj,
                            .anchor = anchor,
                            .stiffness = k};
  dyn y = dyn_make(&spec);
  double th[3 * 3 + 3 + 1];
  y.ops->default_params(y.self, th);
  assert_true(th[3] == 1 - 2);
  assert_true(th[4] == 3 - 0);
  assert_true(th[5] == 1 - 5);
  /* At rest: no spring force anywhere. */
  double q[6] = {0, 2, 1, 0, 0, 0}, u[3 + 3] = {0}, qdot[6];
  deriv(&y, q, u, th, qdot);
  for (int i = 0; i < 6; i++)
    assert_true(qdot[i] == 0);
  /* Stretch spring 0 (particle 2 up by 0.5): e = +0.5 pulls i (particle 1)
   * up, j (particle 2) down; the anchor-as-i spring 2 has e = +0.5 too. */
  q[2] = 1.5;
  deriv(&y, q, u, th, qdot);
  assert_true(qdot[3 + 0] == 0);
  assert_true(qdot[3 + 1] == 0.5);
  assert_true(qdot[3 + 2] == -0.5 - 0.5);
  /* u == NULL means zero inputs. */
  double qdot2[6];
  deriv(&y, q, NULL, th, qdot2);
  assert_memory_equal(qdot, qdot2, sizeof qdot);
  dyn_free(&y);
}

/* --- Exact forces ---------------------------------------------------- */

/* Benchmark B1 (BENCHMARKS.md), written independently: N masses in a 1-D
 * chain on a wall at 0, semi-implicit Euler. Twin's deriv must give the
 * same trajectory bit for bit, with the wall as end i (rest length L) and
 * as end j (rest length -L). */
static void test_b1_chain(void **state) {
  (void)state;
  enum { N = 64, T = 50 };
  const double c = 0.5, L = 1, dt = 1e-3, m = 1;
  double k[N], x[N], v[N], f[N];
  for (int i = 0; i < N; i++) {
    k[i] = 100 + 10 * cos(0.3 * i);
    x[i] = (i + 1) * L * (1 + 0.01 * sin(i));
    v[i] = 0;
  }
  double x0[N];
  memcpy(x0, x, sizeof x);
  for (int step = 0; step < T; step++) {
    for (int i = 0; i < N; i++) {
      double xprev = i > 0 ? x[i - 1] : 0.0;
      f[i] = -k[i] * (x[i] - xprev - L);
      if (i + 1 < N)
        f[i] += k[i + 1] * (x[i + 1] - x[i] - L);
      f[i] -= c * v[i];
    }
    for (int i = 0; i < N; i++) {
      v[i] += dt * f[i] / m;
      x[i] += dt * v[i];
    }
  }

  for (int wall_as_j = 0; wall_as_j < 2; wall_as_j++) {
    double mass[N], drag[N], rest[N], anchor[N] = {0};
    int32_t si[N], sj[N];
    for (int i = 0; i < N; i++) {
      mass[i] = m;
      drag[i] = c;
      rest[i] = L;
      si[i] = i - 1;
      sj[i] = i;
    }
    if (wall_as_j) {
      si[0] = 0;
      sj[0] = -1;
      rest[0] = -L;
    }
    tw_particles_spec spec = {.dim = 1,
                              .n = N,
                              .mass = mass,
                              .position = x0,
                              .nsprings = N,
                              .spring_i = si,
                              .spring_j = sj,
                              .anchor = anchor,
                              .stiffness = k,
                              .rest_length = rest,
                              .drag = drag};
    dyn y = dyn_make(&spec);
    assert_int_equal(y.d.ntheta, 3 * N + N + 1);
    double th[3 * N + N + 1], q[2 * N], u[2 * N] = {0}, qdot[2 * N];
    y.ops->default_params(y.self, th);
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(y.ops->init(y.self, th, q, &err), TW_OK);
    for (int step = 0; step < T; step++) {
      deriv(&y, q, u, th, qdot);
      for (int i = 0; i < N; i++) {
        q[N + i] += dt * qdot[N + i];
        q[i] += dt * q[N + i];
      }
    }
    for (int i = 0; i < N; i++) {
      if (q[i] != x[i] || q[N + i] != v[i]) {
        print_error("wall as %s, mass %d: x %.17g vs %.17g, v %.17g vs "
                    "%.17g\n",
                    wall_as_j ? "j" : "i", i, q[i], x[i], q[N + i], v[i]);
        fail();
      }
    }
    dyn_free(&y);
  }
}

/* One 2-D spring with actuation and damping, by hand: d = (3, 4), r = 5,
 * n = (0.6, 0.8), L_eff = 4 (1 + 0.5 * 0.2) = 4.4, w = (1, 2).n = 2.2,
 * F = 10 * 0.6 + 2 * 2.2 = 10.4. */
static void test_spring_2d_value(void **state) {
  (void)state;
  double mass[2] = {1, 2}, pos[4] = {0, 0, 3, 4}, k[1] = {10}, L[1] = {4};
  double cs[1] = {2}, alpha[1] = {0.5}, drag[2] = {0.25, 0.5};
  double g[2] = {0.5, -9.8};
  int32_t si[1] = {0}, sj[1] = {1};
  tw_particles_spec spec = {.dim = 2,
                            .n = 2,
                            .mass = mass,
                            .position = pos,
                            .nsprings = 1,
                            .spring_i = si,
                            .spring_j = sj,
                            .stiffness = k,
                            .rest_length = L,
                            .spring_damping = cs,
                            .actuation_strength = alpha,
                            .drag = drag,
                            .gravity = g};
  dyn y = dyn_make(&spec);
  double th[3 + 2 + 2], q[8] = {0, 0, 3, 4, 0, 0, 1, 2};
  double u[1 + 4] = {0.2, 1, -1, 0.5, 0.25}, qdot[8];
  y.ops->default_params(y.self, th);
  deriv(&y, q, u, th, qdot);
  const double F = 10.4, fx = F * 0.6, fy = F * 0.8;
  const double want[8] = {0,
                          0,
                          1,
                          2,
                          (1 + fx) / 1 + 0.5,
                          (-1 + fy) / 1 - 9.8,
                          (0.5 - fx - 0.5 * 1) / 2 + 0.5,
                          (0.25 - fy - 0.5 * 2) / 2 - 9.8};
  for (int i = 0; i < 8; i++)
    dyn_assert_close(qdot[i], want[i], 1e-13);
  dyn_free(&y);
}

/* Penalty contact: the force acts only below the ground, on the height. */
static void test_penalty_value(void **state) {
  (void)state;
  double mass[2] = {2, 2}, pos[4] = {0.3, -0.2, 0.3, 0.4};
  double drag[2] = {0.1, 0.1}, g[2] = {0, -9.8};
  tw_particles_spec spec = {.dim = 2,
                            .n = 2,
                            .mass = mass,
                            .position = pos,
                            .drag = drag,
                            .gravity = g,
                            .contact = TW_CONTACT_PENALTY,
                            .ground = 0,
                            .contact_stiffness = 1000,
                            .contact_damping = 10};
  dyn y = dyn_make(&spec);
  double th[2 + 2], q[8] = {0.3, -0.2, 0.3, 0.4, 0.5, -2, 0.5, -2};
  double u[4] = {1, 2, 1, 2}, qdot[8];
  y.ops->default_params(y.self, th);
  deriv(&y, q, u, th, qdot);
  dyn_assert_close(qdot[4], (1 - 0.1 * 0.5) / 2, 1e-14);
  dyn_assert_close(qdot[5], (2 + 1000 * 0.2 - 10 * (-2) - 0.1 * (-2)) / 2 - 9.8,
                   1e-12);
  dyn_assert_close(qdot[6], (1 - 0.1 * 0.5) / 2, 1e-14);
  dyn_assert_close(qdot[7], (2 - 0.1 * (-2)) / 2 - 9.8, 1e-14);
  dyn_free(&y);
}

/* Springs are internal forces: with no drag, gravity, contact or external
 * force, sum_p m_p a_p = 0 (free 2-particle spring, then a 3-D network). */
static void check_momentum(const tw_particles_spec *spec, double *q) {
  dyn y = dyn_make(spec);
  size_t np = y.d.nq / 2;
  double *th = calloc(y.d.ntheta, sizeof *th);
  double *u = calloc(y.d.nu, sizeof *u), *qdot = calloc(y.d.nq, sizeof *qdot);
  assert_non_null(th);
  assert_non_null(u);
  assert_non_null(qdot);
  y.ops->default_params(y.self, th);
  for (size_t s = 0; s < spec->nsprings; s++)
    u[s] = 0.3 * sin((double)s); /* actuation */
  deriv(&y, q, u, th, qdot);
  unsigned dim = spec->dim;
  for (unsigned a = 0; a < dim; a++) {
    double sum = 0, mag = 0;
    for (size_t p = 0; p < spec->n; p++) {
      double fp = spec->mass[p] * qdot[np + p * dim + a];
      sum += fp;
      mag += fabs(fp);
    }
    assert_true(mag > 1);
    assert_true(fabs(sum) <= 1e-13 * mag);
  }
  free(th);
  free(u);
  free(qdot);
  dyn_free(&y);
}

static void test_momentum(void **state) {
  (void)state;
  double mass[2] = {1.5, 0.7}, pos[6] = {0, 0, 0, 1, 2, -0.5};
  double k[1] = {30}, L[1] = {1}, cs[1] = {0.8}, alpha[1] = {0.4};
  int32_t si[1] = {0}, sj[1] = {1};
  tw_particles_spec spec = {.dim = 3,
                            .n = 2,
                            .mass = mass,
                            .position = pos,
                            .nsprings = 1,
                            .spring_i = si,
                            .spring_j = sj,
                            .stiffness = k,
                            .rest_length = L,
                            .spring_damping = cs,
                            .actuation_strength = alpha};
  double q[12] = {0, 0, 0, 1, 2, -0.5, 0.3, -0.1, 0.2, -1, 0.5, 0.7};
  check_momentum(&spec, q);

  net b;
  net_build(&b, 3, 12, false);
  b.spec.drag = NULL;
  b.spec.gravity = NULL;
  double qn[72];
  for (size_t i = 0; i < 36; i++) {
    qn[i] = b.pos[i] + 0.2 * sin(7.0 * (double)i);
    qn[36 + i] = cos(5.0 * (double)i);
  }
  check_momentum(&b.spec, qn);
}

/* Coincident ends (2-D and 3-D, between particles and to an anchor) exert
 * nothing and pass no gradient, instead of producing NaN. */
static void test_coincident(void **state) {
  (void)state;
  for (unsigned dim = 2; dim <= 3; dim++) {
    double mass[3] = {1, 2, 3}, pos[9] = {0}, anchor[6] = {0};
    double k[2] = {10, 20}, L[2] = {1, 1}, cs[2] = {1, 1}, g[3] = {0};
    int32_t si[2] = {0, 2}, sj[2] = {1, -1};
    g[dim - 1] = -9.8;
    for (unsigned a = 0; a < dim; a++) {
      pos[a] = pos[dim + a] = 0.5;             /* particles 0 and 1 coincide */
      pos[2 * dim + a] = anchor[dim + a] = -1; /* particle 2 on its anchor */
    }
    tw_particles_spec spec = {.dim = dim,
                              .n = 3,
                              .mass = mass,
                              .position = pos,
                              .nsprings = 2,
                              .spring_i = si,
                              .spring_j = sj,
                              .anchor = anchor,
                              .stiffness = k,
                              .rest_length = L,
                              .spring_damping = cs,
                              .gravity = g};
    dyn y = dyn_make(&spec);
    double th[6 + 3 + 3], q[18] = {0}, u[2 + 9] = {0.5, -0.5}, qdot[18];
    y.ops->default_params(y.self, th);
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(y.ops->init(y.self, th, q, &err), TW_OK);
    for (unsigned i = 0; i < 3 * dim; i++)
      q[3 * dim + i] = 0.1 * (i + 1); /* moving apart does not matter */
    deriv(&y, q, u, th, qdot);
    for (unsigned i = 0; i < 3 * dim; i++)
      assert_true(qdot[3 * dim + i] == g[i % dim]);
    double w[18], gq[18] = {0}, gu[11] = {0}, gth[12] = {0};
    for (int i = 0; i < 18; i++)
      w[i] = 1.0 + i;
    assert_int_equal(
        y.ops->deriv_vjp(y.self, 0, q, u, th, w, gq, gu, gth, NULL, &err),
        TW_OK);
    for (unsigned i = 0; i < 3 * dim; i++) {
      assert_true(gq[i] == 0);              /* positions */
      assert_true(gq[3 * dim + i] == w[i]); /* velocities: xdot = v */
    }
    for (int i = 0; i < 6; i++)
      assert_true(gth[i] == 0); /* k, L, c of both springs */
    assert_true(gu[0] == 0 && gu[1] == 0);
    dyn_free(&y);
  }
}

/* --- Projection contact ---------------------------------------------- */

static void test_projection(void **state) {
  (void)state;
  for (int friction = 0; friction < 2; friction++) {
    for (unsigned dim = 2; dim <= 3; dim++) {
      double mass[4] = {1, 1, 1, 1}, pos[12] = {0}, g[3] = {0};
      g[dim - 1] = -9.8;
      tw_particles_spec spec = {.dim = dim,
                                .n = 4,
                                .mass = mass,
                                .position = pos,
                                .gravity = g,
                                .contact = TW_CONTACT_PROJECTION,
                                .ground = 0.1,
                                .friction = friction != 0};
      dyn y = dyn_make(&spec);
      assert_non_null(y.ops->project);
      assert_non_null(y.ops->project_vjp);
      /* Heights and vertical velocities: below and falling (projected),
       * below and rising, above and falling, exactly on the ground. */
      const double h[4] = {0.05, 0.05, 0.5, 0.1}, vh[4] = {-1, 1, -1, -1};
      size_t np = (size_t)4 * dim;
      double q[24], pre[24];
      for (size_t p = 0; p < 4; p++) {
        for (unsigned a = 0; a < dim; a++) {
          q[p * dim + a] = a + 1 == dim ? h[p] : 0.3 * (double)(p + a);
          q[np + p * dim + a] = a + 1 == dim ? vh[p] : 0.7 + (double)a;
        }
      }
      memcpy(pre, q, sizeof q);

      /* Projection does not add contact forces to the dynamics. */
      double th[4 + 3], u[12] = {0}, qdot[24];
      y.ops->default_params(y.self, th);
      deriv(&y, q, u, th, qdot);
      for (size_t i = 0; i < np; i++)
        assert_true(qdot[np + i] == g[i % dim]);

      tw_err err;
      tw_err_init(&err);
      assert_int_equal(y.ops->project(y.self, q, &err), TW_OK);
      double gvec[24];
      for (int i = 0; i < 24; i++)
        gvec[i] = 1;
      assert_int_equal(y.ops->project_vjp(y.self, pre, gvec, &err), TW_OK);
      for (size_t i = 0; i < 2 * np; i++) {
        bool vel = i >= np;
        size_t p = (i % np) / dim, a = i % dim;
        bool vertical = a + 1 == dim;
        bool projected = p == 0 && (vertical || (vel && friction));
        double want = pre[i];
        if (projected)
          want = vertical && !vel ? 0.1 : 0.0;
        if (q[i] != want || gvec[i] != (projected ? 0.0 : 1.0)) {
          print_error("friction %d dim %u component %zu: q %g (want %g), g "
                      "%g\n",
                      friction, dim, i, q[i], want, gvec[i]);
          fail();
        }
      }
      dyn_free(&y);
    }
  }
}

/* --- Gradients ------------------------------------------------------- */

typedef struct adjust_ud {
  const net *b;
  double jitter; /* positions: initial + U(-jitter, jitter) */
  double shift;  /* subtracted from every height */
} adjust_ud;

static void adjust_net(void *ud, double *q, double *u, double *th) {
  (void)u;
  (void)th;
  const adjust_ud *a = ud;
  const tw_particles_spec *s = &a->b->spec;
  size_t np = s->n * s->dim;
  for (size_t i = 0; i < np; i++) {
    q[i] = a->b->pos[i] + dyn_uniform(-a->jitter, a->jitter);
    if (i % s->dim == s->dim - 1)
      q[i] -= a->shift;
  }
}

static void grad_case(const char *name, net *b, double jitter, double shift) {
  dyn y = dyn_make(&b->spec);
  adjust_ud ud = {b, jitter, shift};
  dyn_case c = {.name = name,
                .ops = y.ops,
                .self = y.self,
                .q_lo = -1,
                .q_hi = 1,
                .u_lo = -1,
                .u_hi = 1,
                .theta_abs = 0.05,
                .adjust = adjust_net,
                .ud = &ud,
                .trials = 8};
  dyn_check(&c);
  dyn_free(&y);
}

static void test_grad_chain_1d(void **state) {
  (void)state;
  net b;
  net_build(&b, 1, 7, true);
  grad_case("chain 1-D", &b, 0.3, 0);
  b.spec.rest_length = b.L; /* negative rest lengths too */
  for (size_t s = 0; s < b.spec.nsprings; s++)
    b.L[s] = s % 2 ? 1.2 : -0.7;
  grad_case("chain 1-D, signed rest lengths", &b, 0.3, 0);
}

static void test_grad_network_2d(void **state) {
  (void)state;
  net b;
  net_build(&b, 2, 9, true);
  assert_true(b.spec.nsprings >= 20);
  grad_case("network 2-D", &b, 0.15, 0);
}

static void test_grad_network_3d(void **state) {
  (void)state;
  net b;
  net_build(&b, 3, 14, true);
  assert_true(b.spec.nsprings >= 30);
  grad_case("network 3-D", &b, 0.15, 0);
}

/* Penalty contact with the bottom layer 0.15 .. 0.35 below the ground and
 * every other particle at least 0.65 above it: no sample near the kink. */
static void test_grad_penalty(void **state) {
  (void)state;
  static const unsigned dims[3] = {1, 2, 3};
  static const size_t ns[3] = {6, 9, 12};
  for (int k = 0; k < 3; k++) {
    net b;
    net_build(&b, dims[k], ns[k], true);
    b.spec.contact = TW_CONTACT_PENALTY;
    b.spec.contact_stiffness = 2000;
    b.spec.contact_damping = 3;
    double shift;
    if (dims[k] == 1) {
      b.spec.ground = 1.25; /* particle 0 near 1 is in, 1 near 2 is out */
      shift = 0;
    } else {
      b.spec.ground = 0.1;
      shift = 0.25;
    }
    char name[32];
    (void)snprintf(name, sizeof name, "penalty %u-D", dims[k]);
    grad_case(name, &b, 0.1, shift);
  }
}

/* --- Allocation failures --------------------------------------------- */

static int make_and_free(const tw_particles_spec *spec) {
  const tw_dyn_ops *ops;
  void *self;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sim_particles(spec, &ops, &self, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_string_equal(tw_err_msg(&err), "particles: out of memory");
    return rc;
  }
  ops->free(self);
  return TW_OK;
}

static void test_alloc_failures(void **state) {
  (void)state;
  net b;
  net_build(&b, 2, 9, true);
  TW_TEST_ALLOC_FAILURES(make_and_free(&b.spec));
  b.spec.nsprings = 0;
  TW_TEST_ALLOC_FAILURES(make_and_free(&b.spec));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_validation),      TW_TEST(test_describe_defaults),
      TW_TEST(test_rest_length_1d),  TW_TEST(test_b1_chain),
      TW_TEST(test_spring_2d_value), TW_TEST(test_penalty_value),
      TW_TEST(test_momentum),        TW_TEST(test_coincident),
      TW_TEST(test_projection),      TW_TEST(test_grad_chain_1d),
      TW_TEST(test_grad_network_2d), TW_TEST(test_grad_network_3d),
      TW_TEST(test_grad_penalty),    TW_TEST(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
