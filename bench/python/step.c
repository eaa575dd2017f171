/*
 * step.c - the C side of bench/python: ns per tw_wasm_step of a model,
 * called in a plain loop as a C host would (the state copied back after
 * each step), under the engine defaults the Python SDK uses (fuel and
 * epoch metering armed, no limit set). One JSON line on stdout; the
 * median of REPS repetitions after a warm-up.
 *
 *     step MODEL.wasm [CALLS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

#define REPS 9

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(const char *what, const tw_err *err) {
  fprintf(stderr, "step: %s: %s\n", what, err->msg);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: step MODEL.wasm [CALLS]\n");
    return 2;
  }
  long calls = argc > 2 ? strtol(argv[2], NULL, 10) : 200000;
  tw_err err;
  tw_err_init(&err);
  tw_wasm_engine *e = NULL;
  tw_wasm_module *m = NULL;
  tw_wasm_instance *in = NULL;
  if (tw_wasm_engine_new(NULL, NULL, &e, &err) != TW_OK)
    die("engine", &err);
  if (tw_wasm_module_load_file(e, argv[1], NULL, &m, &err) != TW_OK)
    die(argv[1], &err);
  if (tw_wasm_instance_new(m, NULL, &in, &err) != TW_OK)
    die("instance", &err);
  const tw_wasm_desc *d = tw_wasm_module_desc(m);
  double *mem = calloc(2 * d->nx + d->nu + d->ntheta + d->ny + 5, sizeof *mem);
  double *x = mem, *xn = x + d->nx + 1, *u = xn + d->nx + 1;
  double *th = u + d->nu + 1, *y = th + d->ntheta + 1;
  for (size_t i = 0, off = 0; i < d->nparams; off += d->params[i++].size)
    memcpy(th + off, d->params[i].default_, d->params[i].size * sizeof *th);
  if (tw_wasm_init(in, th, x, &err) != TW_OK)
    die("init", &err);
  double t[REPS];
  for (int r = -1; r < REPS; r++) {
    uint64_t t0 = tw_clock_mono_ns();
    for (long k = 0; k < calls; k++) {
      if (tw_wasm_step(in, 0.0, 0.01, x, NULL, th, xn, y, &err) != TW_OK)
        die("step", &err);
      memcpy(x, xn, d->nx * sizeof *x);
    }
    if (r >= 0)
      t[r] = (double)(tw_clock_mono_ns() - t0) / (double)calls;
  }
  qsort(t, REPS, sizeof *t, cmp_d);
  printf("{\"bench\":\"model_step\",\"impl\":\"c\",\"model\":\"%s\","
         "\"calls\":%ld,\"ns_per_call\":%.1f}\n",
         d->name, calls, t[REPS / 2]);
  free(mem);
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  return 0;
}
