/*
 * cmd_sim_b23.c - `twin sim bench mass_spring_simple` (B2) and `twin sim
 * bench mass_spring` (B3): DiffTaichi's mass-spring examples exactly as
 * bench/ad/SPEC.md states them, on the builtin mass-spring block, printing
 * the fields the JAX and PyTorch peers print (bench/ad/peers).
 *
 * B2: 3 masses, 3 springs, a wall at x = 0.4 with friction; 1023 updates
 * at dt = 1e-3; loss (triangle area - 0.1)^2 on the last state; 25 steps
 * of plain gradient descent (lr 5) on the rest lengths.
 *
 * B3: robot 0 of DiffTaichi's mass_spring.py (6 masses, 11 actuated
 * springs, ground at y = 0.1) driven by an MLP (36 -> 32 tanh -> 11 tanh)
 * whose inputs are 10 sine features and the state relative to the center;
 * 681 updates at dt = 0.004; loss -x of mass 0 at the end; 20 Adam steps
 * on the MLP's parameters. The closed loop is the composite block below
 * ("robot"): its step runs the controller, then the plant with the
 * controller's outputs as actuation; its VJP chains the plant's VJP, the
 * controller's and that of the input features, so the parameter gradient
 * flows through the actuation and through the state the controller sees.
 * Its parameters are the MLP's; the plant's are fixed.
 *
 * Timings follow SPEC.md: one warm-up, then at least --repeat (default 5)
 * repetitions and more until 1 s has been spent, at most 51 (or --repeat);
 * the median is reported. Only the public API is used.
 */
#include <math.h>
#include <string.h>

#include "cli.h"
#include "cmd_sim.h"
#include "commands.h"

/* --- Options and timing ---------------------------------------------- */

#define BENCH_MAX_REPEAT 1000

typedef struct bench_opts {
  tw_ckpt_spec schedule;
  unsigned long repeat; /* minimum timed repetitions */
} bench_opts;

/* The options B2 and B3 share with chain1d (--size is chain1d's). */
static int parse_opts(cli_ctx *cli, const cli_args *args, bench_opts *bo) {
  const cli_cmd *cmd = cli->cmd;
  if (cli_opt_value(cmd, args, "size") != NULL)
    return cli_usage_error(cli, cmd, "--size applies to chain1d only");
  tw_err err;
  tw_err_init(&err);
  const char *sched = cli_opt_value(cmd, args, "schedule");
  if (tw_ckpt_spec_parse(sched != NULL ? sched : "all", &bo->schedule, &err) !=
      TW_OK)
    return cli_usage_error(cli, cmd, "%s", tw_err_msg(&err));
  bo->repeat = 5;
  const char *rep = cli_opt_value(cmd, args, "repeat");
  if (rep != NULL && cli_parse_uint(cli, "repeat", rep, BENCH_MAX_REPEAT,
                                    &bo->repeat) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  if (bo->repeat == 0)
    return cli_usage_error(cli, cmd, "--repeat must be at least 1");
  return CLI_EXIT_OK;
}

typedef int (*bench_fn)(void *ud, tw_err *err);

/* Median wall time of fn in ms after one warm-up: at least min_reps runs,
 * more until 1 s has been spent, at most max(51, min_reps). */
static int time_median(bench_fn fn, void *ud, unsigned long min_reps,
                       double *ms, int *reps, tw_err *err) {
  double t[BENCH_MAX_REPEAT];
  unsigned long max = min_reps > 51 ? min_reps : 51, n = 0;
  double spent = 0;
  int rc = fn(ud, err);
  while (rc == TW_OK && (n < min_reps || (spent < 1e3 && n < max))) {
    uint64_t t0 = tw_clock_mono_ns();
    rc = fn(ud, err);
    t[n] = (double)(tw_clock_mono_ns() - t0) / 1e6;
    spent += t[n++];
  }
  if (rc == TW_OK) {
    *ms = sim_bench_median(t, (int)n);
    *reps = (int)n;
  }
  return rc;
}

/* One rollout problem: a block, its parameters, its start, its loss. */
typedef struct problem {
  tw_block *b;
  tw_rollout_opts o;
  const double *x0, *theta;
  tw_loss loss;
  double *g;           /* ntheta */
  double value;        /* the last loss */
  tw_rollout_stats st; /* of the last gradient */
} problem;

static int run_forward(void *ud, tw_err *err) {
  problem *p = ud;
  return tw_sim_forward(p->b, &p->o, p->x0, p->theta, NULL, &p->loss, NULL,
                        NULL, &p->value, err);
}

static int run_grad(void *ud, tw_err *err) {
  problem *p = ud;
  return tw_sim_grad(p->b, &p->o, p->x0, p->theta, NULL, &p->loss, p->g, NULL,
                     NULL, &p->st, err);
}

/* Times forward and gradient; the gradient at p->theta stays in p->g, the
 * loss in p->st.loss. */
static int time_problem(problem *p, unsigned long repeat, double *fm,
                        double *gm, int reps[2], tw_err *err) {
  int rc = time_median(run_forward, p, repeat, fm, &reps[0], err);
  if (rc == TW_OK)
    rc = time_median(run_grad, p, repeat, gm, &reps[1], err);
  if (rc == TW_OK && p->st.loss != p->value)
    rc = tw_err_set(err, TW_EINTERNAL,
                    "forward and gradient runs disagree on the loss");
  return rc;
}

/* Appends ,"name":[v0,v1,...] with 17 significant digits. */
static int put_array(tw_buf *out, const char *name, const double *v, size_t n) {
  int rc = tw_buf_printf(out, ",\"%s\":[", name);
  for (size_t i = 0; rc == TW_OK && i < n; i++)
    rc = tw_buf_printf(out, "%s%.17g", i ? "," : "", v[i]);
  if (rc == TW_OK)
    rc = tw_buf_putc(out, ']');
  return rc;
}

/* Writes the row (JSON) or a summary (text) to stdout, or reports rc. */
static int emit(cli_ctx *cli, tw_buf *out, int rc, tw_err *err) {
  if (rc != TW_OK && err->code == TW_OK)
    tw_err_set(err, rc, "cannot format the output");
  if (rc != TW_OK)
    return cli_fail(cli, err);
  return cli_write_out(cli, out);
}

/* --- B2 mass_spring_simple ------------------------------------------- */

#define B2_STEPS 1023 /* 1024 stored states */
#define B2_ITERS 25
#define B2_LR 5.0

/* (area - 0.1)^2 on the final positions, area = |1/2 (a x b)| with
 * a = x_0 - x_1, b = x_0 - x_2. */
static int b2_term(void *ud, int64_t k, int64_t steps, const double *xn,
                   const double *y, double *value, double *gxn, double *gy,
                   tw_err *err) {
  (void)ud;
  (void)k;
  (void)steps;
  (void)y;
  (void)gy;
  (void)err;
  double ax = xn[0] - xn[2], ay = xn[1] - xn[3];
  double bx = xn[0] - xn[4], by = xn[1] - xn[5];
  double cross = ax * by - ay * bx;
  double area = fabs(0.5 * cross), r = area - 0.1;
  *value = r * r;
  if (gxn != NULL) {
    double gc = 2 * r * 0.5 * (cross > 0 ? 1.0 : cross < 0 ? -1.0 : 0.0);
    double gax = gc * by, gay = -gc * bx, gbx = -gc * ay, gby = gc * ax;
    memset(gxn, 0, 12 * sizeof(double));
    gxn[0] = gax + gbx;
    gxn[1] = gay + gby;
    gxn[2] = -gax;
    gxn[3] = -gay;
    gxn[4] = -gbx;
    gxn[5] = -gby;
  }
  return TW_OK;
}

static int b2_make(tw_block **out, tw_err *err) {
  static const double mass[3] = {1, 1, 1};
  static const double pos[6] = {0.3, 0.5, 0.3, 0.4, 0.4, 0.4};
  static const int32_t sa[3] = {0, 1, 2}, sb[3] = {1, 2, 0};
  static const double k[3] = {10, 10, 10};
  double rest[3] = {0.1, 0.1, 0.1 * sqrt(2.0)};
  tw_mass_spring_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.n = 3;
  sp.mass = mass;
  sp.position = pos;
  sp.nsprings = 3;
  sp.spring_a = sa;
  sp.spring_b = sb;
  sp.rest_length = rest;
  sp.stiffness = k;
  sp.damping = 20;
  sp.length_eps = 1e-4;
  sp.wall = true;
  sp.wall_x = 0.4;
  sp.wall_friction = 0.01;
  return tw_sim_mass_spring(&sp, "mass_spring_simple", out, err);
}

int sim_bench_mass_spring_simple(cli_ctx *cli, const cli_args *args) {
  bench_opts bo;
  int code = parse_opts(cli, args, &bo);
  if (code != CLI_EXIT_OK)
    return code;
  /* Only the rest lengths (the first parameter port) are optimised. */
  static const bool wrt_rest[4] = {true, false, false, false};
  tw_err err;
  tw_err_init(&err);
  problem p;
  memset(&p, 0, sizeof p);
  double theta[9], x0[12], g[9], g0[3], losses[B2_ITERS];
  if (b2_make(&p.b, &err) != TW_OK)
    return cli_fail(cli, &err);
  const tw_block_desc *d = tw_block_describe(p.b);
  int rc = d->ntheta == 9 && d->nx == 12
               ? TW_OK
               : tw_err_set(&err, TW_EINTERNAL,
                            "mass_spring_simple: unexpected block layout");
  if (rc == TW_OK)
    rc = tw_block_default_params(p.b, theta, &err);
  if (rc == TW_OK)
    rc = tw_block_init(p.b, theta, x0, &err);
  p.o.steps = B2_STEPS;
  p.o.dt = 1e-3;
  p.o.schedule = bo.schedule;
  p.o.wrt = wrt_rest;
  p.x0 = x0;
  p.theta = theta;
  p.loss = (tw_loss){b2_term, true, NULL};
  p.g = g;
  double fm = 0, gm = 0;
  int reps[2] = {0, 0};
  if (rc == TW_OK)
    rc = time_problem(&p, bo.repeat, &fm, &gm, reps, &err);
  tw_rollout_stats st0 = p.st;
  memcpy(g0, g, sizeof g0);
  /* Plain gradient descent: losses[i] is the loss before update i. */
  for (int it = 0; rc == TW_OK && it < B2_ITERS; it++) {
    rc = run_grad(&p, &err);
    losses[it] = p.st.loss;
    for (int s = 0; rc == TW_OK && s < 3; s++)
      theta[s] = theta[s] - B2_LR * g[s];
  }
  tw_buf out = TW_BUF_INIT;
  char spec[32];
  tw_ckpt_spec_format(&bo.schedule, spec, sizeof spec);
  if (rc == TW_OK && cli->json) {
    rc = tw_buf_printf(
        &out,
        "{\"bench\":\"mass_spring_simple\",\"impl\":\"twin\",\"dtype\":"
        "\"f64\",\"steps\":%d,\"schedule\":\"%s\",\"forward_ms\":%.4f,"
        "\"grad_ms\":%.4f,\"ratio\":%.3f,\"peak_bytes\":%zu,"
        "\"advance_steps\":%lld,\"loss\":%.17g",
        B2_STEPS, spec, fm, gm, gm / fm, st0.checkpoint_bytes,
        (long long)st0.advance_steps, st0.loss);
    if (rc == TW_OK)
      rc = put_array(&out, "dL_drest", g0, 3);
    if (rc == TW_OK)
      rc = put_array(&out, "losses", losses, B2_ITERS);
    if (rc == TW_OK)
      rc = put_array(&out, "rest_final", theta, 3);
    if (rc == TW_OK)
      rc = tw_buf_printf(&out, ",\"reps\":[%d,%d]}\n", reps[0], reps[1]);
  } else if (rc == TW_OK) {
    rc = tw_buf_printf(
        &out,
        "mass_spring_simple (3 masses, T=%d), schedule %s\n"
        "  forward   %10.3f ms\n"
        "  gradient  %10.3f ms (ratio %.2f)\n"
        "  checkpoints %zu bytes\n"
        "  loss      %.12g\n"
        "  dL/drest  %.12e %.12e %.12e\n"
        "  after %d descent steps: loss %.12g, rest %.12g %.12g %.12g\n",
        B2_STEPS, spec, fm, gm, gm / fm, st0.checkpoint_bytes, st0.loss, g0[0],
        g0[1], g0[2], B2_ITERS, losses[B2_ITERS - 1], theta[0], theta[1],
        theta[2]);
  }
  code = emit(cli, &out, rc, &err);
  tw_buf_fini(&out);
  tw_block_free(p.b);
  return code;
}

/* --- B3 mass_spring robot -------------------------------------------- */

#define B3_STEPS 681 /* 2048 // 3 = 682 stored states */
#define B3_DT 0.004
#define B3_N 6
#define B3_NS 11
#define B3_NSIN 10
#define B3_NIN (B3_NSIN + 4 * B3_N + 2)
#define B3_NHID 32
#define B3_OMEGA 10.0
#define B3_SCALE 0.05 /* offsets and velocities enter the MLP times 0.05 */
#define B3_ADAM_ITERS 20

static const double b3_goal[2] = {0.9, 0.2};

/* The closed loop: controller (MLP) then plant (mass-spring). */
typedef struct robot {
  tw_block *ctrl, *plant;
  const tw_block_desc *cd, *pd;
  double ptheta[2 * B3_NS + 3]; /* the plant's parameters, fixed */
  double *sins;                 /* B3_STEPS x B3_NSIN sine features */
  double in[B3_NIN], act[B3_NS], gin[B3_NIN], gact[B3_NS];
  double gx[4 * B3_N]; /* when the caller wants no state cotangent */
} robot;

static void robot_free(void *p) {
  robot *r = p;
  if (r == NULL)
    return;
  tw_block_free(r->ctrl);
  tw_block_free(r->plant);
  tw_free(r->sins);
  tw_free(r);
}

/* State ports are the plant's, parameter ports the controller's (both
 * borrowed from blocks the robot owns). */
static void robot_describe(const void *p, tw_block_desc *d) {
  const robot *r = p;
  memset(d, 0, sizeof *d);
  d->kind = "mass_spring_robot";
  d->state = r->pd->state;
  d->nstate = r->pd->nstate;
  d->nx = r->pd->nx;
  d->params = r->cd->params;
  d->nparams = r->cd->nparams;
  d->ntheta = r->cd->ntheta;
  d->differentiable = true;
}

/* SplitMix64 (Steele, Lea & Flood 2014), as SPEC.md and spec.py. */
static double splitmix_uniform(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

/* SPEC.md's initial weights: uniform with DiffTaichi's standard deviations
 * from SplitMix64 seeded with 0, W1 row by row, then W2; biases 0. */
static void robot_default_params(const void *p, double *theta) {
  (void)p;
  uint64_t s = 0;
  double s1 = sqrt(2.0 / (B3_NHID + B3_NIN)) * 2.0 * sqrt(3.0);
  double s2 = sqrt(2.0 / (B3_NHID + B3_NS)) * 3.0 * sqrt(3.0);
  double *w1 = theta, *b1 = w1 + B3_NHID * B3_NIN, *w2 = b1 + B3_NHID;
  double *b2 = w2 + B3_NS * B3_NHID;
  for (size_t i = 0; i < B3_NHID * B3_NIN; i++)
    w1[i] = s1 * (2.0 * splitmix_uniform(&s) - 1.0);
  for (size_t i = 0; i < B3_NS * B3_NHID; i++)
    w2[i] = s2 * (2.0 * splitmix_uniform(&s) - 1.0);
  memset(b1, 0, B3_NHID * sizeof(double));
  memset(b2, 0, B3_NS * sizeof(double));
}

static int robot_init(void *p, const double *theta, double *x0, tw_err *err) {
  (void)theta;
  robot *r = p;
  return tw_block_init(r->plant, r->ptheta, x0, err);
}

/* sin(omega t dt + 2 pi / 10 j) at step t, evaluated as spec.py does. */
static double sine_feature(int64_t t, double dt, int j) {
  return sin(B3_OMEGA * (double)t * dt + 2 * M_PI / B3_NSIN * j);
}

/* The controller's inputs at step k from the state x (SPEC.md B3). */
static void features(robot *r, int64_t k, double dt, const double *x) {
  const double *v = x + 2 * B3_N;
  for (int j = 0; j < B3_NSIN; j++)
    r->in[j] = k >= 0 && k < B3_STEPS && dt == B3_DT ? r->sins[k * B3_NSIN + j]
                                                     : sine_feature(k, dt, j);
  double cx = 0, cy = 0;
  for (int j = 0; j < B3_N; j++) {
    cx += x[2 * j];
    cy += x[2 * j + 1];
  }
  cx = (1.0 / B3_N) * cx;
  cy = (1.0 / B3_N) * cy;
  for (int j = 0; j < B3_N; j++) {
    double *f = r->in + B3_NSIN + 4 * j;
    f[0] = (x[2 * j] - cx) * B3_SCALE;
    f[1] = (x[2 * j + 1] - cy) * B3_SCALE;
    f[2] = v[2 * j] * B3_SCALE;
    f[3] = v[2 * j + 1] * B3_SCALE;
  }
  r->in[B3_NIN - 2] = b3_goal[0] - cx;
  r->in[B3_NIN - 1] = b3_goal[1] - cy;
}

/* Adds the state cotangent of the features' cotangent r->gin to gx. */
static void features_vjp(const robot *r, double *gx) {
  double gcx = -r->gin[B3_NIN - 2], gcy = -r->gin[B3_NIN - 1];
  for (int j = 0; j < B3_N; j++) {
    const double *g = r->gin + B3_NSIN + 4 * j;
    gx[2 * j] += B3_SCALE * g[0];
    gx[2 * j + 1] += B3_SCALE * g[1];
    gx[2 * B3_N + 2 * j] += B3_SCALE * g[2];
    gx[2 * B3_N + 2 * j + 1] += B3_SCALE * g[3];
    gcx -= B3_SCALE * g[0];
    gcy -= B3_SCALE * g[1];
  }
  for (int j = 0; j < B3_N; j++) {
    gx[2 * j] += (1.0 / B3_N) * gcx;
    gx[2 * j + 1] += (1.0 / B3_N) * gcy;
  }
}

/* Runs the controller at step k: r->in and r->act; linearised for the
 * pullback that follows when lin is true. */
static int control(robot *r, int64_t k, double t, double dt, const double *x,
                   const double *theta, bool lin, tw_err *err) {
  features(r, k, dt, x);
  tw_step_args c = {t, dt, k, NULL, r->in, theta, NULL, r->act};
  return lin ? tw_block_linearize(r->ctrl, &c, err)
             : tw_block_step(r->ctrl, &c, err);
}

static int robot_step(void *p, const tw_step_args *a, tw_err *err) {
  robot *r = p;
  int rc = control(r, a->k, a->t, a->dt, a->x, a->theta, false, err);
  tw_step_args s = {a->t,   a->dt,     a->k,      a->x,
                    r->act, r->ptheta, a->x_next, NULL};
  return rc == TW_OK ? tw_block_step(r->plant, &s, err) : rc;
}

/* x' = plant(x, mlp(features(x))): the controller is linearised (the
 * plant's VJP needs its actuation), the plant's VJP gives the cotangents of
 * x and of the actuation, the controller's pullback turns the latter into
 * those of its parameters and its inputs, and the features' into more of
 * x. */
static int robot_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  robot *r = p;
  double *gx = a->gx != NULL ? a->gx : r->gx;
  int rc = control(r, a->k, a->t, a->dt, a->x, a->theta, true, err);
  tw_vjp_args pv = {a->t,       a->dt, a->k, a->x,    r->act, r->ptheta,
                    a->gx_next, NULL,  gx,   r->gact, NULL,   NULL};
  if (rc == TW_OK)
    rc = tw_block_step_vjp(r->plant, &pv, err);
  tw_vjp_args cv = {a->t, a->dt,   a->k, NULL,   r->in,     a->theta,
                    NULL, r->gact, NULL, r->gin, a->gtheta, a->want};
  if (rc == TW_OK)
    rc = tw_block_pullback(r->ctrl, &cv, err);
  if (rc == TW_OK)
    features_vjp(r, gx);
  return rc;
}

static const tw_block_ops robot_ops = {
    .kind = "mass_spring_robot",
    .describe = robot_describe,
    .default_params = robot_default_params,
    .init = robot_init,
    .step = robot_step,
    .step_vjp = robot_vjp,
    .free = robot_free,
};

/* DiffTaichi's robotA: masses, springs, rest lengths (the initial
 * distances, computed as spec.py does), stiffness 14000, actuation 0.1. */
static int b3_make(tw_block **out, tw_err *err) {
  static const double pos[2 * B3_N] = {0.2, 0.1, 0.3, 0.13, 0.4, 0.1,
                                       0.2, 0.2, 0.3, 0.2,  0.4, 0.2};
  static const int32_t sa[B3_NS] = {0, 1, 3, 4, 0, 2, 0, 1, 2, 3, 5};
  static const int32_t sb[B3_NS] = {1, 2, 4, 5, 3, 5, 4, 4, 4, 1, 1};
  double mass[B3_N], rest[B3_NS], k[B3_NS], alpha[B3_NS];
  for (int i = 0; i < B3_N; i++)
    mass[i] = 1;
  for (int s = 0; s < B3_NS; s++) {
    double dx = pos[2 * sa[s]] - pos[2 * sb[s]];
    double dy = pos[2 * sa[s] + 1] - pos[2 * sb[s] + 1];
    rest[s] = pow(dx * dx + dy * dy, 0.5); /* spec.py: (...) ** 0.5 */
    k[s] = 14000;
    alpha[s] = 0.1;
  }
  tw_mass_spring_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.n = B3_N;
  sp.mass = mass;
  sp.position = pos;
  sp.nsprings = B3_NS;
  sp.spring_a = sa;
  sp.spring_b = sb;
  sp.rest_length = rest;
  sp.stiffness = k;
  sp.actuation_strength = alpha;
  sp.damping = 15;
  sp.gravity[1] = -4.8;
  sp.length_eps = 1e-4;
  sp.ground = true;
  sp.ground_height = 0.1;

  robot *r = tw_calloc(1, sizeof *r);
  if (r == NULL)
    return tw_err_set(err, TW_ENOMEM, "mass_spring: out of memory");
  static const size_t sizes[3] = {B3_NIN, B3_NHID, B3_NS};
  static const tw_activation acts[2] = {TW_ACT_TANH, TW_ACT_TANH};
  int rc = tw_sim_mass_spring(&sp, "robot.plant", &r->plant, err);
  if (rc == TW_OK)
    rc = tw_sim_mlp_block(2, sizes, acts, 0, "robot.controller", &r->ctrl, err);
  if (rc == TW_OK &&
      (r->sins = tw_calloc(B3_STEPS * B3_NSIN, sizeof(double))) == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "mass_spring: out of memory");
  if (rc != TW_OK) {
    robot_free(r);
    return rc;
  }
  r->pd = tw_block_describe(r->plant);
  r->cd = tw_block_describe(r->ctrl);
  if (r->pd->ntheta != sizeof r->ptheta / sizeof r->ptheta[0] ||
      r->pd->nx != 4 * B3_N) {
    robot_free(r);
    return tw_err_set(err, TW_EINTERNAL,
                      "mass_spring: unexpected plant layout");
  }
  for (int t = 0; t < B3_STEPS; t++)
    for (int j = 0; j < B3_NSIN; j++)
      r->sins[t * B3_NSIN + j] = sine_feature(t, B3_DT, j);
  rc = tw_block_default_params(r->plant, r->ptheta, err);
  if (rc != TW_OK) {
    robot_free(r);
    return rc;
  }
  return tw_block_new(&robot_ops, r, "mass_spring_robot", out, err);
}

/* -x of the head (mass 0) at the end. */
static int b3_term(void *ud, int64_t k, int64_t steps, const double *xn,
                   const double *y, double *value, double *gxn, double *gy,
                   tw_err *err) {
  (void)ud;
  (void)k;
  (void)steps;
  (void)y;
  (void)gy;
  (void)err;
  *value = -xn[0];
  if (gxn != NULL) {
    memset(gxn, 0, 4 * B3_N * sizeof(double));
    gxn[0] = -1;
  }
  return TW_OK;
}

/* One Adam step (Kingma & Ba) at iteration it >= 1, written as the peers
 * write it. */
static void adam(double *p, double *m, double *v, const double *g, size_t n,
                 int it) {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const double c1 = 1.0 - pow(b1, it), c2 = 1.0 - pow(b2, it);
  for (size_t i = 0; i < n; i++) {
    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
    v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
    double mh = m[i] / c1, vh = v[i] / c2;
    p[i] = p[i] - lr * mh / (sqrt(vh) + eps);
  }
}

int sim_bench_mass_spring(cli_ctx *cli, const cli_args *args) {
  bench_opts bo;
  int code = parse_opts(cli, args, &bo);
  if (code != CLI_EXIT_OK)
    return code;
  tw_err err;
  tw_err_init(&err);
  problem p;
  memset(&p, 0, sizeof p);
  if (b3_make(&p.b, &err) != TW_OK)
    return cli_fail(cli, &err);
  const tw_block_desc *d = tw_block_describe(p.b);
  const size_t nth = d->ntheta;
  double x0[4 * B3_N], losses[B3_ADAM_ITERS + 1];
  double *theta = tw_calloc(4 * nth, sizeof(double));
  double *g = theta + nth, *m = g + nth, *v = m + nth;
  int rc = theta == NULL ? tw_err_set(&err, TW_ENOMEM, "out of memory") : TW_OK;
  if (rc == TW_OK)
    rc = tw_block_default_params(p.b, theta, &err);
  if (rc == TW_OK)
    rc = tw_block_init(p.b, theta, x0, &err);
  p.o.steps = B3_STEPS;
  p.o.dt = B3_DT;
  p.o.schedule = bo.schedule;
  p.x0 = x0;
  p.theta = theta;
  p.loss = (tw_loss){b3_term, true, NULL};
  p.g = g;
  double fm = 0, gm = 0, gl2 = 0, db2 = 0;
  int reps[2] = {0, 0};
  if (rc == TW_OK)
    rc = time_problem(&p, bo.repeat, &fm, &gm, reps, &err);
  tw_rollout_stats st0 = p.st;
  if (rc == TW_OK) {
    for (size_t i = 0; i < nth; i++)
      gl2 += g[i] * g[i];
    gl2 = sqrt(gl2);
    db2 = g[nth - B3_NS]; /* b2 is the last port */
  }
  /* Adam: losses[j] is the loss before update j + 1, losses[20] after the
   * 20th. */
  for (int it = 1; rc == TW_OK && it <= B3_ADAM_ITERS; it++) {
    rc = run_grad(&p, &err);
    losses[it - 1] = p.st.loss;
    if (rc == TW_OK)
      adam(theta, m, v, g, nth, it);
  }
  if (rc == TW_OK)
    rc = run_forward(&p, &err);
  losses[B3_ADAM_ITERS] = p.value;
  tw_buf out = TW_BUF_INIT;
  char spec[32];
  tw_ckpt_spec_format(&bo.schedule, spec, sizeof spec);
  if (rc == TW_OK && cli->json) {
    rc = tw_buf_printf(
        &out,
        "{\"bench\":\"mass_spring\",\"impl\":\"twin\",\"dtype\":\"f64\","
        "\"steps\":%d,\"schedule\":\"%s\",\"forward_ms\":%.4f,"
        "\"grad_ms\":%.4f,\"ratio\":%.3f,\"peak_bytes\":%zu,"
        "\"advance_steps\":%lld,\"loss\":%.17g,\"grad_l2\":%.17g,"
        "\"dL_db2_0\":%.17g,\"loss_after_20\":%.17g",
        B3_STEPS, spec, fm, gm, gm / fm, st0.checkpoint_bytes,
        (long long)st0.advance_steps, st0.loss, gl2, db2,
        losses[B3_ADAM_ITERS]);
    if (rc == TW_OK)
      rc = put_array(&out, "losses", losses, B3_ADAM_ITERS + 1);
    if (rc == TW_OK)
      rc = tw_buf_printf(&out, ",\"reps\":[%d,%d]}\n", reps[0], reps[1]);
  } else if (rc == TW_OK) {
    rc =
        tw_buf_printf(&out,
                      "mass_spring robot (6 masses, 11 springs, MLP "
                      "36-32-11, T=%d), schedule %s\n"
                      "  forward   %10.3f ms\n"
                      "  gradient  %10.3f ms (ratio %.2f)\n"
                      "  checkpoints %zu bytes\n"
                      "  loss      %.12g\n"
                      "  |grad|    %.12e (dL/db2_0 %.12e)\n"
                      "  after %d Adam steps: loss %.12g\n",
                      B3_STEPS, spec, fm, gm, gm / fm, st0.checkpoint_bytes,
                      st0.loss, gl2, db2, B3_ADAM_ITERS, losses[B3_ADAM_ITERS]);
  }
  code = emit(cli, &out, rc, &err);
  tw_buf_fini(&out);
  tw_free(theta);
  tw_block_free(p.b);
  return code;
}
