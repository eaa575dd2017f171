/*
 * bench.c - the wasm runtime benchmarks (bench/wasm/run builds and runs
 * this): one JSON line per measurement.
 *
 *   wasm_step   ns per step of the same model C code, native (gcc -O2,
 *               called directly) and in wasmtime through tw_wasm_step
 *               (marshalling included) under each metering: none, fuel,
 *               epoch, both. ratio = wasm / native.
 *   wasm_call   ns per tw_wasm_step of the no-op model (the host-to-guest
 *               call, limits armed, 4 values copied) against a native call
 *               through a function pointer.
 *   wasm_instantiate  us per tw_wasm_instance_new + free (pooled
 *               allocator, module compiled), and per module load (cache hit).
 *
 * Medians of REPS repetitions after a warm-up.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "twin/twin.h"

typedef int32_t (*step_fn)(double, double, const double *, const double *,
                           const double *, double *, double *);
typedef int32_t (*init_fn)(const double *, double *);

#define DECL(m)                                                                \
  int32_t m##_tw_init(const double *, double *);                               \
  int32_t m##_tw_step(double, double, const double *, const double *,          \
                      const double *, double *, double *);
DECL(chain)
DECL(mlp)
DECL(noop)

#define REPS 7

static double now_ns(void) { return (double)tw_clock_mono_ns(); }

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

static void die(const char *what, const tw_err *err) {
  fprintf(stderr, "bench: %s: %s\n", what, err->msg);
  exit(1);
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n);
  if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n) {
    perror(path);
    exit(1);
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

typedef struct model {
  const char *name, *path;
  init_fn init;
  step_fn step;
  long steps; /* per repetition */
} model;

/* Default parameters and inputs of the descriptor. */
static void defaults(const tw_wasm_desc *d, double *u, double *th) {
  size_t off = 0;
  for (size_t i = 0; i < d->ninputs; i++) {
    for (size_t j = 0; j < d->inputs[i].size; j++)
      u[off + j] = d->inputs[i].default_ ? d->inputs[i].default_[j] : 0;
    off += d->inputs[i].size;
  }
  off = 0;
  for (size_t i = 0; i < d->nparams; i++) {
    for (size_t j = 0; j < d->params[i].size; j++)
      th[off + j] = d->params[i].default_[j];
    off += d->params[i].size;
  }
}

static double native_ns(const model *m, const tw_wasm_desc *d, double *check) {
  double *x = calloc(d->nx + 1, 8), *xn = calloc(d->nx + 1, 8);
  double *u = calloc(d->nu + 1, 8), *th = calloc(d->ntheta + 1, 8);
  double *y = calloc(d->ny + 1, 8);
  defaults(d, u, th);
  double r[REPS];
  volatile step_fn step = m->step; /* a real call, as a host would make */
  for (int rep = -1; rep < REPS; rep++) {
    m->init(th, x);
    double t0 = now_ns();
    for (long k = 0; k < m->steps; k++) {
      step((double)k * 1e-3, 1e-3, x, u, th, xn, y);
      double *tmp = x;
      x = xn;
      xn = tmp;
    }
    if (rep >= 0)
      r[rep] = (now_ns() - t0) / (double)m->steps;
  }
  *check = x[0];
  free(x), free(xn), free(u), free(th), free(y);
  return median(r, REPS);
}

static double wasm_ns(tw_wasm_module *mod, double *check, uint64_t *fuel) {
  const tw_wasm_desc *d = tw_wasm_module_desc(mod);
  tw_err err;
  tw_err_init(&err);
  tw_wasm_instance *in = NULL;
  if (tw_wasm_instance_new(mod, NULL, &in, &err) != TW_OK)
    die("instance", &err);
  double *x = calloc(d->nx + 1, 8), *xn = calloc(d->nx + 1, 8);
  double *u = calloc(d->nu + 1, 8), *th = calloc(d->ntheta + 1, 8);
  double *y = calloc(d->ny + 1, 8);
  defaults(d, u, th);
  long steps = 0;
  double r[REPS];
  for (int rep = -1; rep < REPS; rep++) {
    if (tw_wasm_init(in, th, x, &err) != TW_OK)
      die("init", &err);
    if (steps == 0) { /* size the repetition to ~20 ms */
      double t0 = now_ns();
      long n = 0;
      while (now_ns() - t0 < 2e6) {
        if (tw_wasm_step(in, 0, 1e-3, x, u, th, xn, y, &err) != TW_OK)
          die("step", &err);
        n++;
      }
      steps = n * 10;
      continue;
    }
    tw_wasm_usage u0, u1;
    tw_wasm_instance_usage(in, &u0);
    double t0 = now_ns();
    for (long k = 0; k < steps; k++) {
      if (tw_wasm_step(in, (double)k * 1e-3, 1e-3, x, u, th, xn, y, &err) !=
          TW_OK)
        die("step", &err);
      double *tmp = x;
      x = xn;
      xn = tmp;
    }
    r[rep] = (now_ns() - t0) / (double)steps;
    tw_wasm_instance_usage(in, &u1);
    *fuel = (u1.fuel_used - u0.fuel_used) / (uint64_t)steps;
  }
  *check = x[0];
  tw_wasm_instance_free(in);
  free(x), free(xn), free(u), free(th), free(y);
  return median(r, REPS);
}

/* Largest relative difference of the state after 1000 steps, native
 * against wasm (0: the same bits; libm functions may differ in the last
 * bits between glibc and wasi-libc). */
static double compare(const model *m, tw_wasm_module *mod) {
  const tw_wasm_desc *d = tw_wasm_module_desc(mod);
  tw_err err;
  tw_err_init(&err);
  tw_wasm_instance *in = NULL;
  if (tw_wasm_instance_new(mod, NULL, &in, &err) != TW_OK)
    die("instance", &err);
  double *a = calloc(d->nx + 1, 8), *an = calloc(d->nx + 1, 8);
  double *b = calloc(d->nx + 1, 8), *bn = calloc(d->nx + 1, 8);
  double *u = calloc(d->nu + 1, 8), *th = calloc(d->ntheta + 1, 8);
  double *y = calloc(d->ny + 1, 8);
  defaults(d, u, th);
  m->init(th, a);
  if (tw_wasm_init(in, th, b, &err) != TW_OK)
    die("init", &err);
  for (int k = 0; k < 1000; k++) {
    m->step(k * 1e-3, 1e-3, a, u, th, an, y);
    if (tw_wasm_step(in, k * 1e-3, 1e-3, b, u, th, bn, y, &err) != TW_OK)
      die("step", &err);
    memcpy(a, an, d->nx * 8);
    memcpy(b, bn, d->nx * 8);
  }
  double worst = 0;
  for (size_t i = 0; i < d->nx; i++) {
    double r = a[i] == b[i] ? 0 : fabs(a[i] - b[i]) / fmax(fabs(a[i]), 1e-300);
    worst = r > worst ? r : worst;
  }
  tw_wasm_instance_free(in);
  free(a), free(an), free(b), free(bn), free(u), free(th), free(y);
  return worst;
}

static tw_wasm_engine *engine(unsigned meters) {
  tw_wasm_engine_opts o;
  memset(&o, 0, sizeof o);
  o.meters = meters;
  o.pool_size = 16;
  tw_wasm_engine *e = NULL;
  tw_err err;
  tw_err_init(&err);
  if (tw_wasm_engine_new(NULL, &o, &e, &err) != TW_OK)
    die("engine", &err);
  return e;
}

static tw_wasm_module *load(tw_wasm_engine *e, const unsigned char *b,
                            size_t n) {
  tw_wasm_module *m = NULL;
  tw_err err;
  tw_err_init(&err);
  if (tw_wasm_module_load(e, b, n, NULL, &m, &err) != TW_OK)
    die("load", &err);
  return m;
}

static const struct {
  const char *name;
  unsigned flags;
} meters[] = {{"none", TW_WASM_UNMETERED},
              {"fuel", TW_WASM_FUEL},
              {"epoch", TW_WASM_EPOCH},
              {"fuel+epoch", TW_WASM_FUEL | TW_WASM_EPOCH}};

/* engine() and compare() are defined above; bench_step uses both. */
static void bench_step(const model *m, const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.wasm", dir, m->name);
  size_t len;
  unsigned char *bytes = slurp(path, &len);
  tw_wasm_engine *e0 = engine(TW_WASM_UNMETERED);
  tw_wasm_module *mod0 = load(e0, bytes, len);
  double nat_check, nat = native_ns(m, tw_wasm_module_desc(mod0), &nat_check);
  (void)nat_check;
  printf("{\"bench\":\"wasm_step\",\"model\":\"%s\",\"impl\":\"native\","
         "\"compiler\":\"gcc -O2\",\"step_ns\":%.1f}\n",
         tw_wasm_module_desc(mod0)->name, nat);
  for (size_t i = 0; i < sizeof meters / sizeof meters[0]; i++) {
    tw_wasm_engine *e = i == 0 ? e0 : engine(meters[i].flags);
    tw_wasm_module *mod = i == 0 ? mod0 : load(e, bytes, len);
    double check;
    uint64_t fuel = 0;
    double w = wasm_ns(mod, &check, &fuel);
    printf("{\"bench\":\"wasm_step\",\"model\":\"%s\",\"impl\":\"wasm\","
           "\"meter\":\"%s\",\"step_ns\":%.1f,\"ratio\":%.3f,"
           "\"fuel_per_step\":%llu,\"max_rel_diff_vs_native\":%.3g}\n",
           tw_wasm_module_desc(mod)->name, meters[i].name, w, w / nat,
           (unsigned long long)fuel, compare(m, mod));
    fflush(stdout);
    if (i != 0) {
      tw_wasm_module_free(mod);
      tw_wasm_engine_free(e);
    }
  }
  tw_wasm_module_free(mod0);
  tw_wasm_engine_free(e0);
  free(bytes);
}

static void bench_call(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/noop.wasm", dir);
  size_t len;
  unsigned char *bytes = slurp(path, &len);
  model nm = {"noop", NULL, noop_tw_init, noop_tw_step, 10000000};
  tw_wasm_engine *e0 = engine(TW_WASM_UNMETERED);
  tw_wasm_module *m0 = load(e0, bytes, len);
  double check, nat = native_ns(&nm, tw_wasm_module_desc(m0), &check);
  printf("{\"bench\":\"wasm_call\",\"impl\":\"native\",\"what\":\"call "
         "through a function pointer\",\"call_ns\":%.2f}\n",
         nat);
  tw_wasm_module_free(m0);
  tw_wasm_engine_free(e0);
  for (size_t i = 0; i < sizeof meters / sizeof meters[0]; i++) {
    tw_wasm_engine *e = engine(meters[i].flags);
    tw_wasm_module *m = load(e, bytes, len);
    uint64_t fuel;
    double w = wasm_ns(m, &check, &fuel);
    printf("{\"bench\":\"wasm_call\",\"impl\":\"wasm\",\"meter\":\"%s\","
           "\"what\":\"tw_wasm_step of a no-op model\",\"call_ns\":%.1f}\n",
           meters[i].name, w);
    fflush(stdout);
    tw_wasm_module_free(m);
    tw_wasm_engine_free(e);
  }
  /* Instantiation (pooled) and module load from the cache. */
  tw_wasm_engine *e = engine(TW_WASM_FUEL | TW_WASM_EPOCH);
  tw_wasm_module *m = load(e, bytes, len);
  double ri[REPS], rl[REPS];
  tw_err err;
  tw_err_init(&err);
  for (int rep = -1; rep < REPS; rep++) {
    const int n = 2000;
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
      tw_wasm_instance *in = NULL;
      if (tw_wasm_instance_new(m, NULL, &in, &err) != TW_OK)
        die("instance", &err);
      tw_wasm_instance_free(in);
    }
    double t1 = now_ns();
    for (int i = 0; i < n / 10; i++) {
      tw_wasm_module *m2 = load(e, bytes, len);
      tw_wasm_module_free(m2);
    }
    double t2 = now_ns();
    if (rep >= 0) {
      ri[rep] = (t1 - t0) / n / 1e3;
      rl[rep] = (t2 - t1) / (n / 10) / 1e3;
    }
  }
  printf(
      "{\"bench\":\"wasm_instantiate\",\"impl\":\"wasm\",\"pooled\":true,"
      "\"what\":\"tw_wasm_instance_new + free (store, instance, _initialize, "
      "5 guest tw_alloc calls)\",\"us\":%.2f}\n",
      median(ri, REPS));
  printf("{\"bench\":\"wasm_load_cached\",\"impl\":\"wasm\",\"what\":"
         "\"tw_wasm_module_load of a cached module (hash, checks, probe "
         "instance, descriptor parse)\",\"us\":%.2f}\n",
         median(rl, REPS));
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  free(bytes);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: bench WASM_DIR\n");
    return 2;
  }
  const model models[] = {
      {"chain", NULL, chain_tw_init, chain_tw_step, 200000},
      {"mlp", NULL, mlp_tw_init, mlp_tw_step, 100000},
  };
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
    bench_step(&models[i], argv[1]);
  bench_call(argv[1]);
  return 0;
}
