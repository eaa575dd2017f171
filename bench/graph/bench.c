/*
 * bench.c - execution-graph benchmarks (bench/graph/run builds and runs
 * this): one JSON line per measurement, medians of 7 after a warm-up.
 *
 *   graph_overhead  ns per block per tick of tw_graph_run on 100 trivial
 *                   gain blocks (a chain of 100 levels, and one level of
 *                   100), against the floor: the same blocks stepped by a
 *                   plain loop of tw_block_step calls.
 *   graph_parallel  ms per run of a graph of 8 independent heavy blocks
 *                   (spring chains of 8192 masses, one level) with 1 and 2
 *                   worker threads, and the speedup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

#define REPS 7

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v) {
  qsort(v, REPS, sizeof *v, cmp_d);
  return v[REPS / 2];
}

static void die(const char *what, const tw_err *err) {
  fprintf(stderr, "bench: %s: %s\n", what, err->msg);
  exit(1);
}

static tw_graph *parse(const char *text, tw_ctx *ctx) {
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.ctx = ctx;
  tw_graph *g = NULL;
  tw_buf d = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  if (tw_graph_parse(text, strlen(text), "bench.json", ".", &o, &d, &g, &err) !=
      TW_OK) {
    fprintf(stderr, "%s", d.data != NULL ? d.data : "");
    die("graph", &err);
  }
  tw_buf_fini(&d);
  return g;
}

/* 100 gains: chained (each reads the previous) or all reading the input. */
static char *gains(bool chain) {
  tw_buf b = TW_BUF_INIT;
  (void)tw_buf_printf(&b, "{\"graph\": 1, \"dt\": 0.001, \"inputs\": "
                          "{\"u\": {}}, \"blocks\": {");
  for (int i = 0; i < 100; i++)
    (void)tw_buf_printf(&b,
                        "%s\"g%d\": {\"model\": \"builtin:gain\", "
                        "\"params\": {\"k\": 1.0001}}",
                        i ? ", " : "", i);
  (void)tw_buf_printf(&b, "}, \"connections\": [");
  for (int i = 0; i < 100; i++) {
    if (chain && i > 0)
      (void)tw_buf_printf(&b, ", {\"from\": \"g%d.y\", \"to\": \"g%d.u\"}",
                          i - 1, i);
    else
      (void)tw_buf_printf(&b, "%s{\"from\": \"inputs.u\", \"to\": \"g%d.u\"}",
                          i ? ", " : "", i);
  }
  (void)tw_buf_printf(&b, "], \"outputs\": {\"y\": \"g99.y\"}}");
  return tw_buf_take(&b, NULL);
}

static void overhead(bool chain) {
  enum { T = 20000 };
  char *text = gains(chain);
  tw_graph *g = parse(text, NULL);
  double *in = calloc(T, sizeof(double)), *out = calloc(T, sizeof(double));
  for (int k = 0; k < T; k++)
    in[k] = 1.0 + 1e-3 * k;
  double rg[REPS], rf[REPS], rc[REPS];
  tw_err err;
  tw_err_init(&err);
  /* The floor: the same kind of blocks stepped by a plain loop. */
  tw_block *blocks[100];
  for (int i = 0; i < 100; i++)
    if (tw_sim_gain_block(1, 1.0001, "g", &blocks[i], &err) != TW_OK)
      die("gain", &err);
  double k = 1.0001, u, y[100];
  for (int rep = -1; rep < REPS; rep++) {
    uint64_t t0 = tw_clock_mono_ns();
    if (tw_graph_run(g, T, in, out, &err) != TW_OK)
      die("run", &err);
    uint64_t t1 = tw_clock_mono_ns();
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < 100; i++) {
        u = chain && i > 0 ? y[i - 1] : in[t];
        tw_step_args a = {t * 1e-3, 1e-3, t, NULL, &u, &k, NULL, &y[i]};
        (void)tw_block_step(blocks[i], &a, NULL);
      }
    }
    uint64_t t2 = tw_clock_mono_ns();
    /* With per-block thread CPU time (--stats). */
    tw_graph_set_accounting(g, true);
    if (tw_graph_run(g, T, in, out, &err) != TW_OK)
      die("run", &err);
    tw_graph_set_accounting(g, false);
    uint64_t t3 = tw_clock_mono_ns();
    if (rep >= 0) {
      rg[rep] = (double)(t1 - t0) / (T * 100.0);
      rf[rep] = (double)(t2 - t1) / (T * 100.0);
      rc[rep] = (double)(t3 - t2) / (T * 100.0);
    }
  }
  double mg = median(rg), mf = median(rf), mc = median(rc);
  printf("{\"bench\":\"graph_overhead\",\"graph\":\"%s\",\"blocks\":100,"
         "\"ticks\":%d,\"impl\":\"twin\",\"ns_per_block_tick\":%.1f}\n",
         chain ? "chain of 100 gains" : "100 gains in one level", T, mg);
  printf("{\"bench\":\"graph_overhead\",\"graph\":\"%s\",\"blocks\":100,"
         "\"ticks\":%d,\"impl\":\"twin\",\"accounting\":\"per-block CPU "
         "time\",\"ns_per_block_tick\":%.1f}\n",
         chain ? "chain of 100 gains" : "100 gains in one level", T, mc);
  printf("{\"bench\":\"graph_overhead\",\"graph\":\"%s\",\"blocks\":100,"
         "\"ticks\":%d,\"impl\":\"floor\",\"what\":\"tw_block_step in a "
         "plain loop\",\"ns_per_block_tick\":%.1f,\"scheduler_ns\":%.1f}\n",
         chain ? "chain of 100 gains" : "100 gains in one level", T, mf,
         mg - mf);
  (void)y;
  for (int i = 0; i < 100; i++)
    tw_block_free(blocks[i]);
  free(in);
  free(out);
  tw_graph_free(g);
  tw_free(text);
}

static void parallel(void) {
  enum { T = 400 };
  tw_buf b = TW_BUF_INIT;
  (void)tw_buf_printf(&b, "{\"graph\": 1, \"dt\": 0.001, \"inputs\": {\"u\": "
                          "{\"size\": 64}}, \"blocks\": {");
  for (int i = 0; i < 8; i++)
    (void)tw_buf_printf(&b,
                        "%s\"m%d\": {\"model\": \"builtin:chain1d\", "
                        "\"size\": 8192}",
                        i ? ", " : "", i);
  (void)tw_buf_printf(&b, "}, \"outputs\": {\"y\": \"m7.position\"}}");
  double ms[2];
  enum { W = 8192 };
  double *in = calloc(T * 64, sizeof(double)), *out[2];
  for (int i = 0; i < T * 64; i++)
    in[i] = 0.01 * (i % 97);
  for (int th = 1; th <= 2; th++) {
    tw_ctx_options co;
    tw_ctx_options_init(&co);
    co.threads = (unsigned)th;
    tw_ctx *ctx = NULL;
    tw_err err;
    tw_err_init(&err);
    if (tw_ctx_new(&co, &ctx, &err) != TW_OK)
      die("ctx", &err);
    tw_graph *g = parse(b.data, ctx);
    out[th - 1] = calloc(T * W, sizeof(double));
    double r[REPS];
    for (int rep = -1; rep < REPS; rep++) {
      uint64_t t0 = tw_clock_mono_ns();
      if (tw_graph_run(g, T, in, out[th - 1], &err) != TW_OK)
        die("run", &err);
      if (rep >= 0)
        r[rep] = (double)(tw_clock_mono_ns() - t0) / 1e6;
    }
    ms[th - 1] = median(r);
    printf("{\"bench\":\"graph_parallel\",\"graph\":\"8 independent "
           "spring chains of 8192 "
           "masses\",\"ticks\":%d,\"impl\":\"twin\",\"threads\":%d,"
           "\"ms\":%.3f%s",
           T, th, ms[th - 1], th == 1 ? "}\n" : "");
    if (th == 2)
      printf(",\"speedup\":%.3f,\"same_bits\":%s}\n", ms[0] / ms[1],
             memcmp(out[0], out[1], T * W * sizeof(double)) == 0 ? "true"
                                                                 : "false");
    tw_graph_free(g);
    tw_ctx_free(ctx);
  }
  free(out[0]);
  free(out[1]);
  free(in);
  tw_buf_fini(&b);
}

int main(void) {
  overhead(true);
  overhead(false);
  parallel();
  return 0;
}
