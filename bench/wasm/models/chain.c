/*
 * chain.c - benchmark model: a chain of N masses joined by springs with
 * damping, SUB semi-implicit Euler substeps per step (pure arithmetic).
 */
#define N 64
#define SUB 8
/* clang-format off */
static const char descriptor[] =
    "{\"abi\":1,\"name\":\"chain64\",\"version\":\"1\","
    "\"state\":[{\"name\":\"x\",\"unit\":\"m\",\"size\":64},"
    "{\"name\":\"v\",\"unit\":\"m/s\",\"size\":64}],"
    "\"inputs\":[{\"name\":\"f\",\"unit\":\"N\",\"size\":1,\"default\":0}],"
    "\"outputs\":[{\"name\":\"tip\",\"unit\":\"m\",\"size\":1}],"
    "\"params\":[{\"name\":\"k\",\"unit\":\"N/m\",\"size\":64,\"default\":100},"
    "{\"name\":\"c\",\"unit\":\"N*s/m\",\"size\":1,\"default\":0.5}],"
    "\"differentiable\":false}";
/* clang-format on */
#include "model.h"

int32_t API(tw_init)(const double *p, double *xo);
int32_t API(tw_init)(const double *p, double *xo) {
  (void)p;
  for (int i = 0; i < N; i++) {
    xo[i] = (i + 1) * (1.0 + 0.01 * (i % 7));
    xo[N + i] = 0;
  }
  return 0;
}

int32_t API(tw_step)(double t, double dt, const double *x, const double *u,
                     const double *p, double *xo, double *y);
int32_t API(tw_step)(double t, double dt, const double *x, const double *u,
                     const double *p, double *xo, double *y) {
  (void)t;
  const double *k = p, c = p[N];
  double h = dt / SUB, xs[N], vs[N], f[N + 1];
  for (int i = 0; i < N; i++) {
    xs[i] = x[i];
    vs[i] = x[N + i];
  }
  for (int s = 0; s < SUB; s++) {
    f[0] = k[0] * (xs[0] - 1.0);
    for (int i = 1; i < N; i++)
      f[i] = k[i] * (xs[i] - xs[i - 1] - 1.0);
    f[N] = -u[0];
    for (int i = 0; i < N; i++) {
      vs[i] += h * (f[i + 1] - f[i] - c * vs[i]);
      xs[i] += h * vs[i];
    }
  }
  for (int i = 0; i < N; i++) {
    xo[i] = xs[i];
    xo[N + i] = vs[i];
  }
  y[0] = xs[N - 1];
  return 0;
}
