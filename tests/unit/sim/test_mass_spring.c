/*
 * test_mass_spring.c - the DiffTaichi mass-spring block: its description
 * and defaults, one step against a hand-written DiffTaichi loop (every
 * projection case), the VJP against central finite differences through
 * tw_sim_grad on short rollouts (free, on the ground, at the wall),
 * schedules giving the same bits, spec validation and allocation failures.
 */
#include <math.h>
#include <string.h>

#include "tw_test.h"
#include "twin/sim.h"

#define MAXN 8
#define MAXS 16

/* A spec with room for its arrays. */
typedef struct sys {
  double mass[MAXN], pos[2 * MAXN], vel[2 * MAXN];
  double rest[MAXS], k[MAXS], alpha[MAXS];
  int32_t a[MAXS], b[MAXS];
  tw_mass_spring_spec spec;
} sys;

static void add_spring(sys *s, int32_t a, int32_t b, double k, double alpha) {
  size_t i = s->spec.nsprings++;
  assert_true(i < MAXS);
  s->a[i] = a;
  s->b[i] = b;
  s->k[i] = k;
  s->alpha[i] = alpha;
}

static void sys_init(sys *s, size_t n, const double *pos) {
  memset(s, 0, sizeof *s);
  assert_true(n <= MAXN);
  memcpy(s->pos, pos, 2 * n * sizeof(double));
  for (size_t i = 0; i < n; i++)
    s->mass[i] = 1;
  s->spec.n = n;
  s->spec.mass = s->mass;
  s->spec.position = s->pos;
  s->spec.velocity = s->vel;
  s->spec.spring_a = s->a;
  s->spec.spring_b = s->b;
  s->spec.stiffness = s->k;
  s->spec.actuation_strength = s->alpha;
  s->spec.length_eps = 1e-4;
}

/* A square of 4 masses with both diagonals, moving, no contact. */
static void free_square(sys *s) {
  static const double pos[8] = {0, 0, 0.1, 0, 0.1, 0.12, 0, 0.1};
  sys_init(s, 4, pos);
  const double m[4] = {1, 1.5, 0.8, 1.2};
  const double v[8] = {0.3, -0.2, 0.1, 0.4, -0.5, 0.2, 0.25, -0.1};
  memcpy(s->mass, m, sizeof m);
  memcpy(s->vel, v, sizeof v);
  add_spring(s, 0, 1, 30, 0.2);
  add_spring(s, 1, 2, 25, -0.1);
  add_spring(s, 2, 3, 35, 0.15);
  add_spring(s, 3, 0, 28, 0.1);
  add_spring(s, 0, 2, 20, 0);
  add_spring(s, 1, 3, 22, 0.3);
  s->spec.damping = 2;
  s->spec.gravity[0] = 0.3;
  s->spec.gravity[1] = -1;
}

/* DiffTaichi's robotA, its bottom row sunk into the ground and held there
 * by a strong gravity: masses 0, 1, 2 are stopped at every step, the
 * others never reach the ground (the active set never switches). */
static void robot(sys *s) {
  static const double pos[12] = {0.2, 0.05, 0.3, 0.08, 0.4, 0.05,
                                 0.2, 0.15, 0.3, 0.15, 0.4, 0.15};
  static const int32_t a[11] = {0, 1, 3, 4, 0, 2, 0, 1, 2, 3, 5};
  static const int32_t b[11] = {1, 2, 4, 5, 3, 5, 4, 4, 4, 1, 1};
  sys_init(s, 6, pos);
  for (int i = 0; i < 11; i++)
    add_spring(s, a[i], b[i], 300, 0.1);
  s->vel[1] = -0.2;
  s->spec.damping = 15;
  s->spec.gravity[1] = -10;
  s->spec.ground = true;
  s->spec.ground_height = 0.1;
}

/* B2's triangle pushed into the wall by a sideways gravity. */
static void wall_triangle(sys *s) {
  static const double pos[6] = {0.3, 0.5, 0.38, 0.4, 0.42, 0.45};
  sys_init(s, 3, pos);
  const double v[6] = {0.5, 0.3, 0.4, -0.3, 0.2, 0.6};
  memcpy(s->vel, v, sizeof v);
  add_spring(s, 0, 1, 10, 0);
  add_spring(s, 1, 2, 12, 0.2);
  add_spring(s, 2, 0, 9, 0);
  s->rest[0] = 0.1;
  s->rest[1] = 0.1;
  s->rest[2] = 0.12;
  s->spec.rest_length = s->rest;
  s->spec.damping = 20;
  s->spec.gravity[0] = 2;
  s->spec.gravity[1] = -1;
  s->spec.wall = true;
  s->spec.wall_x = 0.4;
  s->spec.wall_friction = 0.3;
}

static tw_block *make(const sys *s) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sim_mass_spring(&s->spec, "ms", &b, &err);
  if (rc != TW_OK)
    print_error("tw_sim_mass_spring: %s\n", tw_err_msg(&err));
  assert_int_equal(rc, TW_OK);
  return b;
}

/* --- Description and defaults ---------------------------------------- */

static void layout_and_defaults(void **state) {
  (void)state;
  sys s;
  free_square(&s);
  tw_block *b = make(&s);
  const tw_block_desc *d = tw_block_describe(b);
  assert_string_equal(d->kind, "mass_spring");
  assert_int_equal(d->nx, 16);
  assert_int_equal(d->nu, 6);
  assert_int_equal(d->ny, 0);
  assert_int_equal(d->ntheta, 2 * 6 + 3);
  assert_int_equal(d->nparams, 4);
  assert_string_equal(d->params[0].name, "rest_length");
  assert_string_equal(d->params[1].name, "stiffness");
  assert_string_equal(d->params[2].name, "damping");
  assert_string_equal(d->params[3].name, "gravity");
  assert_int_equal(d->params[3].size, 2);
  assert_string_equal(d->inputs[0].name, "actuation");
  assert_true(d->differentiable);
  double th[15], x0[16];
  assert_int_equal(tw_block_default_params(b, th, NULL), TW_OK);
  /* rest_length NULL: the initial distances. */
  assert_true(th[0] == 0.1);
  assert_true(th[4] == sqrt(0.1 * 0.1 + 0.12 * 0.12));
  assert_true(th[6] == 30 && th[11] == 22);
  assert_true(th[12] == 2 && th[13] == 0.3 && th[14] == -1);
  assert_int_equal(tw_block_init(b, th, x0, NULL), TW_OK);
  assert_memory_equal(x0, s.pos, 8 * sizeof(double));
  assert_memory_equal(x0 + 8, s.vel, 8 * sizeof(double));
  tw_block_free(b);
}

/* A block without its own linearize/pullback: the pair falls back to step
 * and step_vjp, the same bits. */
static void pullback_falls_back_to_the_vjp(void **state) {
  (void)state;
  sys s;
  free_square(&s);
  tw_block *b = make(&s);
  double th[15], x0[16], x1[16], x2[16], u[6] = {0.1, -0.2, 0.3, 0, 0.5, -1};
  double gxn[16], g1[16], g2[16], gu1[6], gu2[6], gt1[15] = {0}, gt2[15] = {0};
  assert_int_equal(tw_block_default_params(b, th, NULL), TW_OK);
  assert_int_equal(tw_block_init(b, th, x0, NULL), TW_OK);
  for (int i = 0; i < 16; i++)
    gxn[i] = 0.1 * i - 0.7;
  tw_step_args a = {0, 1e-3, 0, x0, u, th, x1, NULL};
  assert_int_equal(tw_block_step(b, &a, NULL), TW_OK);
  tw_vjp_args v = {0, 1e-3, 0, x0, u, th, gxn, NULL, g1, gu1, gt1, NULL};
  assert_int_equal(tw_block_step_vjp(b, &v, NULL), TW_OK);
  a.x_next = x2;
  assert_int_equal(tw_block_linearize(b, &a, NULL), TW_OK);
  assert_memory_equal(x1, x2, sizeof x1);
  v.gx = g2;
  v.gu = gu2;
  v.gtheta = gt2;
  assert_int_equal(tw_block_pullback(b, &v, NULL), TW_OK);
  assert_memory_equal(g1, g2, sizeof g1);
  assert_memory_equal(gu1, gu2, sizeof gu1);
  assert_memory_equal(gt1, gt2, sizeof gt1);
  tw_block_free(b);
}

/* --- One step against DiffTaichi's loop ------------------------------ */

/* The update as DiffTaichi writes it (mass_spring_simple.py's
 * apply_spring_force + time_integrate, mass_spring.py's advance_no_toi),
 * spring by spring with atomic adds in spring order. */
static void reference_step(const sys *s, const double *x, const double *u,
                           double dt, double *xn) {
  const tw_mass_spring_spec *sp = &s->spec;
  const size_t n = sp->n;
  const double *rest = sp->rest_length;
  double f[2 * MAXN] = {0};
  for (size_t i = 0; i < sp->nsprings; i++) {
    const double *xa = x + 2 * s->a[i], *xb = x + 2 * s->b[i];
    double d[2] = {xa[0] - xb[0], xa[1] - xb[1]};
    double len = sqrt(d[0] * d[0] + d[1] * d[1]) + sp->length_eps;
    double r0 = rest != NULL
                    ? rest[i]
                    : hypot(s->pos[2 * s->a[i]] - s->pos[2 * s->b[i]],
                            s->pos[2 * s->a[i] + 1] - s->pos[2 * s->b[i] + 1]);
    double target = r0 * (1 + s->alpha[i] * u[i]);
    for (int c = 0; c < 2; c++) {
      double F = (len - target) * s->k[i] * d[c] / len;
      f[2 * s->a[i] + c] -= F;
      f[2 * s->b[i] + c] += F;
    }
  }
  double sc = exp(-dt * sp->damping);
  for (size_t i = 0; i < n; i++) {
    double v[2];
    for (int c = 0; c < 2; c++)
      v[c] = sc * x[2 * n + 2 * i + c] +
             dt * (f[2 * i + c] / s->mass[i] + sp->gravity[c]);
    if (sp->ground && x[2 * i + 1] < sp->ground_height && v[1] < 0)
      v[0] = v[1] = 0;
    double p[2] = {x[2 * i] + dt * v[0], x[2 * i + 1] + dt * v[1]};
    if (sp->wall && p[0] > sp->wall_x && v[0] > 0) {
      double mu = sp->wall_friction * v[0];
      if (v[1] > 0)
        v[1] -= fmin(v[1], mu);
      if (v[1] < 0)
        v[1] += fmin(-v[1], mu);
      v[0] = 0;
    }
    xn[2 * i] = p[0];
    xn[2 * i + 1] = p[1];
    xn[2 * n + 2 * i] = v[0];
    xn[2 * n + 2 * i + 1] = v[1];
  }
}

static void check_one_step(const sys *s, const double *u, double dt,
                           double *xn) {
  tw_block *b = make(s);
  const tw_block_desc *d = tw_block_describe(b);
  double th[2 * MAXS + 3], x0[4 * MAXN], ref[4 * MAXN];
  tw_block_default_params(b, th, NULL);
  tw_block_init(b, th, x0, NULL);
  tw_step_args a = {0, dt, 0, x0, u, th, xn, NULL};
  assert_int_equal(tw_block_step(b, &a, NULL), TW_OK);
  reference_step(s, x0, u, dt, ref);
  for (size_t i = 0; i < d->nx; i++) {
    if (fabs(xn[i] - ref[i]) > 1e-15 * fmax(1, fabs(ref[i])))
      print_error("x_next[%zu] = %.17g, reference %.17g\n", i, xn[i], ref[i]);
    assert_true(fabs(xn[i] - ref[i]) <= 1e-15 * fmax(1, fabs(ref[i])));
  }
  tw_block_free(b);
}

static void one_step_matches_difftaichi(void **state) {
  (void)state;
  sys s;
  double xn[4 * MAXN];
  free_square(&s);
  const double u[6] = {0.5, -1, 0.3, 0.8, -0.2, 1};
  check_one_step(&s, u, 0.01, xn);

  /* Ground: mass 0 is in the ground moving down and stops (x' = x); mass
   * 2 is in it but moving up; mass 3 is above it moving down. */
  robot(&s);
  s.vel[5] = 0.5;
  s.vel[7] = -3;
  const double ur[11] = {0.1, -0.4, 0.9, 0.2, -0.7, 0.5, 0, 0.3, -1, 0.6, 0.4};
  check_one_step(&s, ur, 0.004, xn);
  assert_true(xn[12] == 0 && xn[13] == 0);
  assert_true(xn[0] == s.pos[0] && xn[1] == s.pos[1]);
  assert_true(xn[17] > 0);
  assert_true(xn[19] < 0);

  /* Wall, one mass per friction case: 0 stopped (|v.y| < mu v.x), 1
   * sliding up, 2 sliding down, 3 with v.y = 0, 4 moving away, 5 short of
   * the wall. No springs, so the velocities are easy to predict. */
  static const double pw[12] = {0.45, 0, 0.45, 1, 0.45, 2,
                                0.45, 3, 0.45, 4, 0.3,  5};
  sys_init(&s, 6, pw);
  const double vw[12] = {1, 0.2, 1, 2, 1, -2, 1, 0, -1, 1, 1, 1};
  memcpy(s.vel, vw, sizeof vw);
  s.spec.nsprings = 0;
  s.spec.wall = true;
  s.spec.wall_x = 0.4;
  s.spec.wall_friction = 0.5;
  check_one_step(&s, NULL, 0.01, xn);
  const double *v = xn + 12;
  assert_true(v[0] == 0 && v[1] == 0);
  assert_true(v[2] == 0 && v[3] == 2 - 0.5);
  assert_true(v[4] == 0 && v[5] == -2 + 0.5);
  assert_true(v[6] == 0 && v[7] == 0);
  assert_true(v[8] == -1 && v[9] == 1);
  assert_true(v[10] == 1 && v[11] == 1);
  assert_true(xn[0] == 0.45 + 0.01 && xn[8] == 0.45 - 0.01); /* x' before */
}

/* --- Gradients against finite differences ---------------------------- */

/* Loss: sum_i w_i x_i of the final state, or of every state. */
typedef struct lin {
  size_t nx;
} lin;

static double weight(size_t i) { return sin(1.3 * (double)i + 0.4); }

static int lin_term(void *ud, int64_t k, int64_t steps, const double *xn,
                    const double *y, double *value, double *gxn, double *gy,
                    tw_err *err) {
  (void)k;
  (void)steps;
  (void)y;
  (void)gy;
  (void)err;
  const lin *l = ud;
  double s = 0;
  for (size_t i = 0; i < l->nx; i++) {
    s += weight(i) * xn[i];
    if (gxn != NULL)
      gxn[i] = weight(i);
  }
  *value = s;
  return TW_OK;
}

static double loss_at(tw_block *b, const tw_rollout_opts *o, const double *x0,
                      const double *th, const double *u, const tw_loss *l) {
  double v = 0;
  assert_int_equal(tw_sim_forward(b, o, x0, th, u, l, NULL, NULL, &v, NULL),
                   TW_OK);
  return v;
}

static void expect_close(const char *what, size_t i, double fd, double g) {
  bool ok = fabs(fd - g) <= 1e-6 * fmax(fabs(g), 1e-3);
  if (!ok)
    print_error("%s[%zu]: finite difference %.12g, VJP %.12g\n", what, i, fd,
                g);
  assert_true(ok);
}

/* Counts the projections a rollout from x0 goes through: masses stopped
 * by the ground (v' = 0 from below it) and stopped at the wall (v'.x = 0
 * beyond it). */
static int count_projections(tw_block *b, const sys *s, const double *x0,
                             const double *th, const double *u, int64_t steps,
                             double dt) {
  const tw_block_desc *d = tw_block_describe(b);
  const size_t n = s->spec.n;
  double x[4 * MAXN], xn[4 * MAXN];
  memcpy(x, x0, d->nx * sizeof(double));
  int count = 0;
  for (int64_t k = 0; k < steps; k++) {
    tw_step_args a = {0, dt, k, x, u + (size_t)k * d->nu, th, xn, NULL};
    assert_int_equal(tw_block_step(b, &a, NULL), TW_OK);
    for (size_t i = 0; i < n; i++) {
      double *v = xn + 2 * n + 2 * i;
      if (s->spec.ground && x[2 * i + 1] < s->spec.ground_height && v[0] == 0 &&
          v[1] == 0)
        count++;
      if (s->spec.wall && xn[2 * i] > s->spec.wall_x && v[0] == 0)
        count++;
    }
    memcpy(x, xn, sizeof x);
  }
  return count;
}

/* The rollout problem finite differences perturb in place. */
typedef struct fd_problem {
  tw_block *b;
  const tw_rollout_opts *o;
  double *x0, *th, *u;
  const tw_loss *l;
  double h_rel;
} fd_problem;

/* dL/dv for v, one of p's values, by the fourth-order central difference
 * (8 (L(v+h) - L(v-h)) - (L(v+2h) - L(v-2h))) / 12h with
 * h = h_rel max(1, |v|). Not the second-order one at h = eps^(1/3) |v|:
 * tens of stiff steps amplify the loss's rounding noise, which reached
 * 1e-9 in the actuation derivatives at that h (measured); the fourth-order
 * stencil allows a larger h with a truncation error still far below the
 * tolerance. h must also keep every perturbed rollout on the same side of
 * every projection test. */
static double central_difference(const fd_problem *p, double *v) {
  const double keep = *v, h = p->h_rel * fmax(1, fabs(keep));
  double l[4];
  const double at[4] = {keep + h, keep - h, keep + 2 * h, keep - 2 * h};
  for (int i = 0; i < 4; i++) {
    *v = at[i];
    l[i] = loss_at(p->b, p->o, p->x0, p->th, p->u, p->l);
  }
  *v = keep;
  return (8 * (l[0] - l[1]) - (l[2] - l[3])) / (12 * h);
}

/* tw_sim_grad's gradients with respect to every parameter, a sample of the
 * actuations and the initial state, against central differences. */
static void grad_case(const sys *s, int64_t steps, double dt, bool final_only,
                      bool expect_projections, double h_rel) {
  tw_block *b = make(s);
  const tw_block_desc *d = tw_block_describe(b);
  const size_t nx = d->nx, nu = d->nu, nth = d->ntheta;
  lin l0 = {nx};
  tw_loss l = {lin_term, final_only, &l0};
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = steps;
  o.dt = dt;
  double th[2 * MAXS + 3], x0[4 * MAXN], u[200 * MAXS];
  assert_true(steps <= 200);
  tw_block_default_params(b, th, NULL);
  tw_block_init(b, th, x0, NULL);
  for (size_t i = 0; i < (size_t)steps * nu; i++)
    u[i] = 0.8 * sin(0.37 * (double)i);
  if (expect_projections)
    assert_true(count_projections(b, s, x0, th, u, steps, dt) > 0);
  double g[2 * MAXS + 3], gx0[4 * MAXN], gu[200 * MAXS];
  tw_rollout_stats st;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_grad(b, &o, x0, th, u, &l, g, gx0, gu, &st, &err),
                   TW_OK);
  assert_true(st.loss == loss_at(b, &o, x0, th, u, &l)); /* bitwise */
  fd_problem p = {b, &o, x0, th, u, &l, h_rel};
  for (size_t i = 0; i < nth; i++)
    expect_close("theta", i, central_difference(&p, &th[i]), g[i]);
  for (size_t i = 0; i < nx; i++)
    expect_close("x0", i, central_difference(&p, &x0[i]), gx0[i]);
  for (size_t i = 0; i < (size_t)steps * nu; i += 7)
    expect_close("u", i, central_difference(&p, &u[i]), gu[i]);
  /* wrt: only the rest lengths, as B2 asks; the same values there. */
  const bool wrt[4] = {true, false, false, false};
  double g2[2 * MAXS + 3];
  o.wrt = wrt;
  assert_int_equal(
      tw_sim_grad(b, &o, x0, th, u, &l, g2, NULL, NULL, NULL, &err), TW_OK);
  for (size_t i = 0; i < nth; i++)
    assert_true(g2[i] == (i < s->spec.nsprings ? g[i] : 0));
  tw_block_free(b);
}

static void vjp_matches_finite_differences_free(void **state) {
  (void)state;
  sys s;
  free_square(&s);
  grad_case(&s, 60, 0.01, true, false, 1e-4);
  grad_case(&s, 60, 0.01, false, false, 1e-4);
}

static void vjp_matches_finite_differences_ground(void **state) {
  (void)state;
  sys s;
  robot(&s);
  grad_case(&s, 80, 0.004, true, true, 1e-4);
  grad_case(&s, 80, 0.004, false, true, 1e-4);
}

static void vjp_matches_finite_differences_wall(void **state) {
  (void)state;
  sys s;
  wall_triangle(&s);
  /* Masses move ~5e-4 per step here, so h = 3e-5 already moves the step
   * at which one crosses the wall (a jump in the loss, measured); 1e-5
   * does not. */
  grad_case(&s, 100, 1e-3, true, true, 1e-5);
  grad_case(&s, 100, 1e-3, false, true, 1e-5);
}

static void schedules_give_the_same_bits(void **state) {
  (void)state;
  sys s;
  robot(&s);
  tw_block *b = make(&s);
  lin l0 = {tw_block_describe(b)->nx};
  tw_loss l = {lin_term, true, &l0};
  double th[25], x0[24], g[2][25], gx[2][24];
  tw_block_default_params(b, th, NULL);
  tw_block_init(b, th, x0, NULL);
  const char *specs[2] = {"all", "revolve:3"};
  for (int i = 0; i < 2; i++) {
    tw_rollout_opts o;
    memset(&o, 0, sizeof o);
    o.steps = 97;
    o.dt = 0.004;
    assert_int_equal(tw_ckpt_spec_parse(specs[i], &o.schedule, NULL), TW_OK);
    assert_int_equal(
        tw_sim_grad(b, &o, x0, th, NULL, &l, g[i], gx[i], NULL, NULL, NULL),
        TW_OK);
  }
  assert_memory_equal(g[0], g[1], sizeof g[0]);
  assert_memory_equal(gx[0], gx[1], sizeof gx[0]);
  tw_block_free(b);
}

/* --- Validation ------------------------------------------------------ */

static void expect_invalid(const sys *s, int code, const char *msg) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_mass_spring(&s->spec, "ms", &b, &err), code);
  assert_string_equal(err.msg, msg);
  assert_null(b);
}

static void validation_names_the_field(void **state) {
  (void)state;
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_mass_spring(NULL, "ms", &b, &err), TW_EINVAL);
  assert_string_equal(err.msg, "mass_spring: spec is NULL");
  sys s;
  wall_triangle(&s);
  s.spec.n = 0;
  expect_invalid(&s, TW_EINVAL, "mass_spring: n must be > 0, got 0");
  wall_triangle(&s);
  s.mass[1] = 0;
  expect_invalid(&s, TW_EINVAL, "mass_spring: mass[1] must be > 0, got 0");
  wall_triangle(&s);
  s.mass[2] = 1e-310;
  expect_invalid(&s, TW_EINVAL, "mass_spring: mass[2] is too small (1e-310)");
  wall_triangle(&s);
  s.pos[3] = NAN;
  expect_invalid(&s, TW_EINVAL, "mass_spring: position[3] is not finite (nan)");
  wall_triangle(&s);
  s.spec.position = NULL;
  expect_invalid(&s, TW_EINVAL, "mass_spring: position is NULL");
  wall_triangle(&s);
  s.spec.spring_a = NULL;
  expect_invalid(&s, TW_EINVAL, "mass_spring: 3 springs but spring_a is NULL");
  wall_triangle(&s);
  s.b[2] = 7;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: spring 2: index 7 out of range for 3 masses "
                 "(spring_b)");
  wall_triangle(&s);
  s.a[1] = -1;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: spring 1: index -1 out of range for 3 masses "
                 "(spring_a)");
  wall_triangle(&s);
  s.a[0] = 1;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: spring 0: joins mass 1 to itself");
  wall_triangle(&s);
  s.k[0] = -1;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: stiffness[0] must be >= 0, got -1");
  wall_triangle(&s);
  s.rest[2] = INFINITY;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: rest_length[2] is not finite (inf)");
  wall_triangle(&s);
  s.spec.damping = -0.5;
  expect_invalid(&s, TW_EINVAL, "mass_spring: damping must be >= 0, got -0.5");
  wall_triangle(&s);
  s.spec.length_eps = 0;
  expect_invalid(&s, TW_EINVAL, "mass_spring: length_eps must be > 0, got 0");
  wall_triangle(&s);
  s.spec.wall_friction = -0.1;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: wall_friction must be >= 0, got -0.1");
  s.spec.wall = false; /* ignored without a wall */
  b = make(&s);
  tw_block_free(b);
  robot(&s);
  s.spec.ground_height = NAN;
  expect_invalid(&s, TW_EINVAL,
                 "mass_spring: ground_height is not finite (nan)");
  robot(&s);
  s.spec.n = (size_t)1 << 40;
  expect_invalid(&s, TW_EOVERFLOW,
                 "mass_spring: 1099511627776 masses and 11 springs are too "
                 "many");
}

/* --- Allocation failures --------------------------------------------- */

static int grad_round(void) {
  sys s;
  robot(&s);
  tw_block *b = NULL;
  int rc = tw_sim_mass_spring(&s.spec, "ms", &b, NULL);
  if (rc != TW_OK)
    return rc;
  lin l0 = {24};
  tw_loss l = {lin_term, false, &l0};
  double th[25], x0[24], g[25];
  tw_block_default_params(b, th, NULL);
  tw_block_init(b, th, x0, NULL);
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = 20;
  o.dt = 0.004;
  o.schedule.kind = TW_CKPT_REVOLVE;
  o.schedule.param = 3;
  rc = tw_sim_grad(b, &o, x0, th, NULL, &l, g, NULL, NULL, NULL, NULL);
  tw_block_free(b);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(grad_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(layout_and_defaults),
      TW_TEST(pullback_falls_back_to_the_vjp),
      TW_TEST(one_step_matches_difftaichi),
      TW_TEST(vjp_matches_finite_differences_free),
      TW_TEST(vjp_matches_finite_differences_ground),
      TW_TEST(vjp_matches_finite_differences_wall),
      TW_TEST(schedules_give_the_same_bits),
      TW_TEST(validation_names_the_field),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
