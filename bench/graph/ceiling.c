/*
 * ceiling.c - what two threads can gain on this machine at all, without
 * Twin: the same work done by one thread, then split between two threads
 * that never synchronise while they run (bench/graph/run builds and runs
 * this next to bench.c). One JSON line per measurement, medians of 7 after
 * a warm-up.
 *
 *   compute  8 independent multiply-add chains on registers per thread:
 *            no memory traffic, so the speedup is the cores' own (a VM
 *            whose two vCPUs share a physical core shows it here).
 *   stream   8 "chains" of the graph_parallel shape stepped 400 times:
 *            each reads 4 and writes 2 arrays of 16384 doubles (768 KiB,
 *            like a chain1d block of 8192 masses: state, parameters and
 *            inputs in, next state and outputs out), the state arrays
 *            swapped every step. One thread steps all 8; two threads step
 *            4 each, always the same 4.
 *   dram     the same with chains of 64 MiB (512 MiB in all, beyond even
 *            the 480 MiB L3 the VM reports): the memory bandwidth two
 *            cores share.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 7
#define CHAINS 8

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* One chain: x -> xn and y from x, p, q, u; then x and xn swap. */
typedef struct chain {
  double *x, *xn, *p, *q, *u, *y;
} chain;

typedef struct work {
  int kind; /* 0 compute, 1 stream */
  chain *chains;
  size_t first, count, n; /* chains [first, first + count), n values each */
  long steps;
  double sink;
} work;

static volatile double seed = 1.0000001;

static void compute(work *w) {
  double a = seed, b = 1e-9, s[8];
  for (int k = 0; k < 8; k++)
    s[k] = k;
  for (long i = 0; i < w->steps; i++)
    for (int k = 0; k < 8; k++)
      s[k] = s[k] * a + b;
  w->sink = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void stream(work *w) {
  const double dt = 1e-3;
  for (long t = 0; t < w->steps; t++)
    for (size_t c = w->first; c < w->first + w->count; c++) {
      chain *ch = &w->chains[c];
      for (size_t i = 0; i < w->n; i++) {
        double v = ch->x[i] + dt * (ch->p[i] - ch->q[i] * ch->x[i] + ch->u[i]);
        ch->xn[i] = v;
        ch->y[i] = v;
      }
      double *tmp = ch->x;
      ch->x = ch->xn;
      ch->xn = tmp;
    }
  w->sink = w->chains[w->first].x[0];
}

static void *run(void *arg) {
  work *w = arg;
  if (w->kind == 0)
    compute(w);
  else
    stream(w);
  return NULL;
}

/* Wall time of the work split between nthreads threads (1 or 2). */
static double timed(int kind, chain *chains, size_t n, long steps,
                    int nthreads) {
  work w[2];
  for (int t = 0; t < nthreads; t++) {
    w[t] = (work){kind, chains, 0, 0, n, steps, 0};
    if (kind == 0) { /* the same total: 2 units on 1 thread, 1 on each */
      w[t].steps = nthreads == 1 ? 2 * steps : steps;
    } else {
      w[t].count = CHAINS / (size_t)nthreads;
      w[t].first = (size_t)t * w[t].count;
    }
  }
  uint64_t t0 = now_ns();
  pthread_t th;
  if (nthreads == 2 && pthread_create(&th, NULL, run, &w[1]) != 0) {
    fprintf(stderr, "ceiling: cannot create a thread\n");
    exit(1);
  }
  run(&w[0]);
  if (nthreads == 2)
    pthread_join(th, NULL);
  return (double)(now_ns() - t0) / 1e6;
}

static void measure(const char *name, const char *what, int kind, size_t n,
                    long steps) {
  chain chains[CHAINS];
  memset(chains, 0, sizeof chains);
  if (kind == 1)
    for (size_t c = 0; c < CHAINS; c++) {
      double **a[6] = {&chains[c].x, &chains[c].xn, &chains[c].p,
                       &chains[c].q, &chains[c].u,  &chains[c].y};
      for (int k = 0; k < 6; k++) {
        *a[k] = malloc(n * sizeof(double));
        if (*a[k] == NULL) {
          fprintf(stderr, "ceiling: out of memory\n");
          exit(1);
        }
        for (size_t i = 0; i < n; i++)
          (*a[k])[i] = 1e-3 * (double)((i + (size_t)k) % 101);
      }
    }
  double ms[2];
  for (int th = 1; th <= 2; th++) {
    double r[REPS];
    for (int rep = -1; rep < REPS; rep++) {
      double t = timed(kind, chains, n, steps, th);
      if (rep >= 0)
        r[rep] = t;
    }
    qsort(r, REPS, sizeof r[0], cmp_d);
    ms[th - 1] = r[REPS / 2];
  }
  printf("{\"bench\":\"ceiling\",\"loop\":\"%s\",\"what\":\"%s\","
         "\"ms_1_thread\":%.3f,\"ms_2_threads\":%.3f,\"speedup\":%.3f}\n",
         name, what, ms[0], ms[1], ms[0] / ms[1]);
  if (kind == 1)
    for (size_t c = 0; c < CHAINS; c++) {
      free(chains[c].x);
      free(chains[c].xn);
      free(chains[c].p);
      free(chains[c].q);
      free(chains[c].u);
      free(chains[c].y);
    }
}

int main(void) {
  measure("compute", "8 multiply-add chains on registers", 0, 0, 20000000);
  measure("stream",
          "8 chains of 768 KiB (4 arrays of 16384 doubles read, 2 written), "
          "400 steps",
          1, 16384, 400);
  measure("dram",
          "8 chains of 64 MiB (4 arrays of 1398101 doubles read, 2 "
          "written), 5 steps",
          1, 1398101, 5);
  return 0;
}
