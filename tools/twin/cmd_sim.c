/*
 * cmd_sim.c - `twin sim bench`: the differentiable-simulation benchmarks
 * of BENCHMARKS.md run on the builtin blocks, printing the JSON-lines
 * fields every peer prints (bench/ad/run puts them side by side).
 *
 * B1 chain1d: N unit masses in a 1-D chain anchored to a wall at 0, springs
 * k_i = 100 + 10 cos(0.3 i) with rest length 1 joining mass i-1 (or the
 * wall) and mass i, drag 0.5 on every mass, semi-implicit Euler with
 * dt = 1e-3 for T steps, loss 1/2 sum (x_T,i - (i+1))^2, gradient with
 * respect to every k_i (and only them, as the peers compute it). Timings are
 * the median of --repeat runs after one warm-up run. B2 and B3 (the
 * DiffTaichi mass-spring benchmarks) live in cmd_sim_b23.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_sim.h"
#include "commands.h"

typedef struct chain_size {
  const char *name;
  size_t n;
  int64_t steps;
} chain_size;

static const chain_size chain_sizes[] = {
    {"S", 64, 1024}, {"M", 256, 4096}, {"L", 1024, 10000}};

/* Final-state loss 1/2 sum (x_i - (i+1))^2 over the positions. */
typedef struct chain_loss {
  size_t n;
} chain_loss;

static int chain_term(void *ud, int64_t k, int64_t steps, const double *xn,
                      const double *y, double *value, double *gxn, double *gy,
                      tw_err *err) {
  (void)k;
  (void)steps;
  (void)y;
  (void)gy;
  (void)err;
  const chain_loss *l = ud;
  double s = 0;
  for (size_t i = 0; i < l->n; i++) {
    double r = xn[i] - (double)(i + 1);
    s += 0.5 * r * r;
    if (gxn != NULL) {
      gxn[i] = r;
      gxn[l->n + i] = 0; /* velocities */
    }
  }
  *value = s;
  return TW_OK;
}

/* The B1 chain (tw_sim_chain1d_block) with its default parameters in
 * theta and its start state in x0. */
static int make_chain(size_t n, tw_block **out, double **theta, double **x0,
                      tw_err *err) {
  int rc = tw_sim_chain1d_block(n, "chain1d", out, err);
  if (rc != TW_OK)
    return rc;
  const tw_block_desc *d = tw_block_describe(*out);
  *theta = tw_calloc(d->ntheta, sizeof(double));
  *x0 = tw_calloc(d->nx, sizeof(double));
  if (*theta == NULL || *x0 == NULL) {
    rc = tw_err_set(err, TW_ENOMEM, "chain1d: out of memory");
  } else {
    rc = tw_block_default_params(*out, *theta, err);
    if (rc == TW_OK)
      rc = tw_block_init(*out, *theta, *x0, err);
  }
  if (rc != TW_OK) {
    tw_free(*theta);
    tw_free(*x0);
    tw_block_free(*out);
  }
  return rc;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double sim_bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int run_bench(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *cmd = cli->cmd;
  const char *which = args->pos[0];
  if (strcmp(which, "mass_spring_simple") == 0)
    return sim_bench_mass_spring_simple(cli, args);
  if (strcmp(which, "mass_spring") == 0)
    return sim_bench_mass_spring(cli, args);
  if (strcmp(which, "chain1d") != 0)
    return cli_usage_error(
        cli, cmd,
        "unknown benchmark '%s' (chain1d, mass_spring_simple, mass_spring)",
        which);
  const char *size_txt = cli_opt_value(cmd, args, "size");
  const chain_size *sz = &chain_sizes[1];
  if (size_txt != NULL) {
    sz = NULL;
    for (size_t i = 0; i < 3; i++)
      if (strcmp(size_txt, chain_sizes[i].name) == 0)
        sz = &chain_sizes[i];
    if (sz == NULL)
      return cli_usage_error(cli, cmd, "unknown size '%s' (S, M or L)",
                             size_txt);
  }
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = sz->steps;
  o.dt = 1e-3;
  /* B1 differentiates with respect to the stiffnesses, the first of the
   * particle system's parameter ports (stiffness, rest_length,
   * spring_damping, drag, gravity). */
  static const bool wrt_k[5] = {true, false, false, false, false};
  o.wrt = wrt_k;
  tw_err err;
  tw_err_init(&err);
  const char *sched = cli_opt_value(cmd, args, "schedule");
  if (sched == NULL)
    sched = "all";
  if (tw_ckpt_spec_parse(sched, &o.schedule, &err) != TW_OK)
    return cli_usage_error(cli, cmd, "%s", tw_err_msg(&err));
  unsigned long repeat = 5;
  const char *rep = cli_opt_value(cmd, args, "repeat");
  if (rep != NULL &&
      cli_parse_uint(cli, "repeat", rep, 1000, &repeat) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  if (repeat == 0)
    return cli_usage_error(cli, cmd, "--repeat must be at least 1");

  tw_block *b = NULL;
  double *theta = NULL, *x0 = NULL, *g = NULL;
  double fwd[1000], grd[1000];
  int code = CLI_EXIT_OK;
  if (make_chain(sz->n, &b, &theta, &x0, &err) != TW_OK)
    return cli_fail(cli, &err);
  const tw_block_desc *d = tw_block_describe(b);
  g = tw_calloc(d->ntheta, sizeof(double));
  chain_loss cl = {sz->n};
  tw_loss loss = {chain_term, true, &cl};
  double fl = 0;
  tw_rollout_stats st;
  int rc = g == NULL ? tw_err_set(&err, TW_ENOMEM, "out of memory") : TW_OK;
  /* One warm-up of each, then the timed repetitions. */
  for (unsigned long r = 0; rc == TW_OK && r <= repeat; r++) {
    uint64_t t0 = tw_clock_mono_ns();
    rc = tw_sim_forward(b, &o, x0, theta, NULL, &loss, NULL, NULL, &fl, &err);
    uint64_t t1 = tw_clock_mono_ns();
    if (rc == TW_OK)
      rc = tw_sim_grad(b, &o, x0, theta, NULL, &loss, g, NULL, NULL, &st, &err);
    uint64_t t2 = tw_clock_mono_ns();
    if (r > 0) {
      fwd[r - 1] = (double)(t1 - t0) / 1e6;
      grd[r - 1] = (double)(t2 - t1) / 1e6;
    }
  }
  if (rc != TW_OK) {
    code = cli_fail(cli, &err);
  } else {
    double fm = sim_bench_median(fwd, (int)repeat);
    double gm = sim_bench_median(grd, (int)repeat);
    char spec[32];
    tw_ckpt_spec_format(&o.schedule, spec, sizeof spec);
    tw_buf out = TW_BUF_INIT;
    if (cli->json)
      rc = tw_buf_printf(
          &out,
          "{\"bench\":\"chain1d\",\"size\":\"%s\",\"impl\":\"twin\","
          "\"dtype\":\"f64\",\"n\":%zu,\"steps\":%lld,\"schedule\":\"%s\","
          "\"forward_ms\":%.4f,\"grad_ms\":%.4f,\"ratio\":%.3f,"
          "\"peak_bytes\":%zu,\"advance_steps\":%lld,\"loss\":%.17g,"
          "\"dL_dk0\":%.17g,\"repeat\":%lu}\n",
          sz->name, sz->n, (long long)sz->steps, spec, fm, gm, gm / fm,
          st.checkpoint_bytes, (long long)st.advance_steps, st.loss, g[0],
          repeat);
    else
      rc = tw_buf_printf(&out,
                         "chain1d %s (N=%zu, T=%lld), schedule %s\n"
                         "  forward   %10.3f ms\n"
                         "  gradient  %10.3f ms (ratio %.2f)\n"
                         "  checkpoints %zu bytes, %lld forward steps "
                         "recomputed\n"
                         "  loss      %.12g\n"
                         "  dL/dk0    %.12e\n",
                         sz->name, sz->n, (long long)sz->steps, spec, fm, gm,
                         gm / fm, st.checkpoint_bytes,
                         (long long)st.advance_steps, st.loss, g[0]);
    if (st.loss != fl) {
      tw_err_set(&err, TW_EINTERNAL,
                 "forward and gradient runs disagree on the loss");
      code = cli_fail(cli, &err);
    } else {
      code = rc == TW_OK ? cli_write_out(cli, &out) : CLI_EXIT_FAIL;
    }
    tw_buf_fini(&out);
  }
  tw_free(g);
  tw_free(theta);
  tw_free(x0);
  tw_block_free(b);
  return code;
}

static const cli_opt bench_opts[] = {
    {"size", 0, "S|M|L", "chain1d's problem size (default M)"},
    {"schedule", 0, "SPEC", "all | periodic:C | revolve:K (default all)"},
    {"repeat", 0, "N",
     "timed repetitions after a warm-up (default 5; mass_spring*: at least "
     "N, more until 1 s)"},
    {"json", 0, NULL, "print one JSON line (BENCHMARKS.md fields)"},
    {NULL, 0, NULL, NULL}};

const cli_cmd cmd_sim_bench = {
    "sim",
    "bench",
    "BENCH",
    1,
    1,
    "Run a differentiable-simulation benchmark (chain1d, "
    "mass_spring_simple, mass_spring).",
    "Times the forward rollout and the gradient (forward + reverse under the\n"
    "checkpoint schedule) of a benchmark from BENCHMARKS.md (B1 chain1d, B2\n"
    "mass_spring_simple, B3 mass_spring; bench/ad/SPEC.md) on the builtin\n"
    "blocks, and prints the loss and gradient values peers are checked "
    "against.",
    bench_opts,
    run_bench};
