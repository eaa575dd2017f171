/* bench/ad/floor/chain1d.c - B1 chain1d by hand in plain C (the floor).
 *
 * forward: the fused forward pass, no tape (forward_ms).
 * grad:    the same forward storing x at every step (store-all), then the
 *          hand-derived adjoint (grad_ms = forward + reverse). v is not
 *          stored: the damping term is linear, so the reverse pass needs only
 *          x (for the springs' stretch).
 * Also a central finite difference of dL/dk_0 (dL_dk0_fd) as an independent
 * check of the adjoint.
 *
 * Definitions: bench/ad/SPEC.md. Spring i joins mass i-1 (the wall at 0 for
 * i = 0) and mass i with tension s_i = k_i (x_i - x_{i-1} - L); it pulls
 * mass i back and mass i-1 on: f_i = -s_i + s_{i+1} - c v_i (s_N = 0).
 *
 *   cc -std=c11 -O2 -o chain1d chain1d.c -lm
 *   ./chain1d [--sizes S,M,L] [--quick]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double M = 1.0, C = 0.5, L = 1.0, DT = 1e-3;

typedef struct {
  int n;
  long t;
  double *k, *x0, *target; /* inputs */
  double *x, *v, *s;       /* state, tensions (n + 1) */
  double *tape;            /* x at the start of each step, t * n */
  double *xb, *vb, *kb;    /* adjoints */
} chain;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    fprintf(stderr, "chain1d: out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

/* One semi-implicit Euler step over all masses: the tensions first (s has
 * n + 1 slots, s[n] = 0 for the free end), then v and x. Two simple loops
 * that the compiler vectorizes. */
static void step(int n, const double *restrict k, double *restrict s,
                 double *restrict x, double *restrict v) {
  s[0] = k[0] * (x[0] - L);
  for (int i = 1; i < n; i++)
    s[i] = k[i] * (x[i] - x[i - 1] - L);
  s[n] = 0.0;
  for (int i = 0; i < n; i++) {
    double f = -s[i] + s[i + 1] - C * v[i];
    v[i] += DT * f / M;
    x[i] += DT * v[i];
  }
}

static double loss_of(const chain *c) {
  double l = 0.0;
  for (int i = 0; i < c->n; i++) {
    double d = c->x[i] - c->target[i];
    l += d * d;
  }
  return 0.5 * l;
}

static double forward(chain *c, const double *k) {
  memcpy(c->x, c->x0, sizeof(double) * (size_t)c->n);
  memset(c->v, 0, sizeof(double) * (size_t)c->n);
  for (long t = 0; t < c->t; t++)
    step(c->n, k, c->s, c->x, c->v);
  return loss_of(c);
}

/* Forward storing x per step, then the adjoint sweep; dL/dk in c->kb. */
static double grad(chain *c) {
  int n = c->n;
  memcpy(c->x, c->x0, sizeof(double) * (size_t)n);
  memset(c->v, 0, sizeof(double) * (size_t)n);
  for (long t = 0; t < c->t; t++) {
    memcpy(c->tape + (size_t)t * (size_t)n, c->x, sizeof(double) * (size_t)n);
    step(n, c->k, c->s, c->x, c->v);
  }
  double l = loss_of(c);

  double *xb = c->xb, *vb = c->vb, *kb = c->kb;
  const double *k = c->k;
  for (int i = 0; i < n; i++) {
    xb[i] = c->x[i] - c->target[i];
    vb[i] = 0.0;
    kb[i] = 0.0;
  }
  const double damp = 1.0 - DT * C / M;
  for (long t = c->t - 1; t >= 0; t--) {
    const double *x = c->tape + (size_t)t * (size_t)n;
    /* x' = x + dt v', v' = v + dt f / m, f_i = -s_i + s_{i+1} - c v_i.
     * fb_i = (vb'_i + dt xb'_i) dt / m; sb_i = fb_{i-1} - fb_i. */
    double fb_prev = 0.0;
    for (int i = 0; i < n; i++) {
      double vt = vb[i] + DT * xb[i];
      double fb = vt * DT / M;
      vb[i] = vt * damp;
      double sb = fb_prev - fb;
      double xprev = i > 0 ? x[i - 1] : 0.0;
      kb[i] += sb * (x[i] - xprev - L);
      xb[i] += sb * k[i];
      if (i > 0)
        xb[i - 1] -= sb * k[i];
      fb_prev = fb;
    }
  }
  return l;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds of fn over >= min_reps runs (and until budget), after a
 * warm-up; the same rule as bench/ad/peers/common.py. */
static double median_time(double (*fn)(chain *), chain *c, int quick,
                          int *reps) {
  double budget = quick ? 0.3 : 1.0;
  int min_reps = quick ? 3 : 5;
  double times[51], spent = 0.0;
  int r = 0;
  volatile double sink = fn(c);
  while (r < min_reps || (spent < budget && r < 51)) {
    double t0 = now();
    sink = fn(c);
    times[r] = now() - t0;
    spent += times[r++];
  }
  (void)sink;
  qsort(times, (size_t)r, sizeof(double), cmp);
  *reps = r;
  return r % 2 ? times[r / 2] : 0.5 * (times[r / 2 - 1] + times[r / 2]);
}

static double forward_k(chain *c) { return forward(c, c->k); }

static void run(const char *size, int n, long T, int quick) {
  chain c;
  c.n = n;
  c.t = T;
  size_t nb = sizeof(double) * (size_t)n;
  c.k = xmalloc(nb);
  c.x0 = xmalloc(nb);
  c.target = xmalloc(nb);
  c.x = xmalloc(nb);
  c.v = xmalloc(nb);
  c.s = xmalloc(nb + sizeof(double));
  c.xb = xmalloc(nb);
  c.vb = xmalloc(nb);
  c.kb = xmalloc(nb);
  size_t tape_bytes = nb * (size_t)T;
  c.tape = xmalloc(tape_bytes);
  for (int i = 0; i < n; i++) {
    c.k[i] = 100.0 + 10.0 * cos(0.3 * i);
    c.x0[i] = (i + 1) * L * (1.0 + 0.01 * sin((double)i));
    c.target[i] = (i + 1) * L;
  }

  int rf, rg;
  double tf = median_time(forward_k, &c, quick, &rf);
  double tg = median_time(grad, &c, quick, &rg);
  double lf = forward(&c, c.k);
  double lg = grad(&c);
  double l2 = 0.0;
  for (int i = 0; i < n; i++)
    l2 += c.kb[i] * c.kb[i];
  l2 = sqrt(l2);

  /* central difference in k_0, h = 1e-4 k_0 */
  double *kp = xmalloc(nb);
  memcpy(kp, c.k, nb);
  double h = 1e-4 * c.k[0];
  kp[0] = c.k[0] + h;
  double lp = forward(&c, kp);
  kp[0] = c.k[0] - h;
  double lm = forward(&c, kp);
  double fd = (lp - lm) / (2.0 * h);
  free(kp);

  printf("{\"bench\": \"chain1d\", \"size\": \"%s\", \"impl\": \"c-floor\", "
         "\"dtype\": \"f64\", \"forward_ms\": %.4f, \"grad_ms\": %.4f, "
         "\"ratio\": %.3f, \"peak_bytes\": %zu, \"loss\": %.17g, "
         "\"dL_dk0\": %.17g, \"dL_dk_l2\": %.17g, \"loss_forward\": %.17g, "
         "\"dL_dk0_fd\": %.17g, \"schedule\": \"store-all (x only)\", "
         "\"reps\": [%d, %d], \"N\": %d, \"T\": %ld, "
         "\"note\": \"hand-written forward and adjoint, cc -O2; peak_bytes = "
         "stored x trajectory\"}\n",
         size, tf * 1e3, tg * 1e3, tg / tf, tape_bytes, lg, c.kb[0], l2, lf, fd,
         rf, rg, n, T);
  fflush(stdout);
  free(c.k);
  free(c.x0);
  free(c.target);
  free(c.x);
  free(c.v);
  free(c.s);
  free(c.xb);
  free(c.vb);
  free(c.kb);
  free(c.tape);
}

int main(int argc, char **argv) {
  const char *sizes = "S,M,L";
  int quick = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
      sizes = argv[++i];
    else {
      fprintf(stderr, "usage: chain1d [--sizes S,M,L] [--quick]\n");
      return 2;
    }
  }
  for (const char *p = sizes; *p; p++) {
    if (*p == 'S')
      run("S", 64, 1024, quick);
    else if (*p == 'M')
      run("M", 256, 4096, quick);
    else if (*p == 'L')
      run("L", 1024, 10000, quick);
    else if (*p != ',') {
      fprintf(stderr, "chain1d: unknown size '%c' (S, M, L)\n", *p);
      return 2;
    }
  }
  return 0;
}
