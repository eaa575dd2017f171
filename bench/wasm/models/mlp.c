/*
 * mlp.c - benchmark model: a 16-64-16 tanh network applied to its state
 * (a learned residual's cost profile: dense loops and libm tanh).
 */
#define NI 16
#define NH 64
/* clang-format off */
static const char descriptor[] =
    "{\"abi\":1,\"name\":\"mlp16\",\"version\":\"1\","
    "\"state\":[{\"name\":\"h\",\"unit\":\"\",\"size\":16}],"
    "\"inputs\":[{\"name\":\"in\",\"unit\":\"\",\"size\":16,\"default\":0}],"
    "\"outputs\":[{\"name\":\"out\",\"unit\":\"\",\"size\":16}],"
    "\"params\":[{\"name\":\"W1\",\"unit\":\"\",\"size\":1024,\"default\":0.05},"
    "{\"name\":\"W2\",\"unit\":\"\",\"size\":1024,\"default\":-0.03}],"
    "\"differentiable\":false}";
/* clang-format on */
#include <math.h>

#include "model.h"

int32_t API(tw_init)(const double *p, double *xo);
int32_t API(tw_init)(const double *p, double *xo) {
  (void)p;
  for (int i = 0; i < NI; i++)
    xo[i] = 0.1 * (i - 8);
  return 0;
}

int32_t API(tw_step)(double t, double dt, const double *x, const double *u,
                     const double *p, double *xo, double *y);
int32_t API(tw_step)(double t, double dt, const double *x, const double *u,
                     const double *p, double *xo, double *y) {
  (void)t;
  const double *w1 = p, *w2 = p + NI * NH;
  double h[NH];
  for (int j = 0; j < NH; j++) {
    double z = 0;
    for (int i = 0; i < NI; i++)
      z += w1[j * NI + i] * (x[i] + u[i]);
    h[j] = tanh(z + 0.01 * j);
  }
  for (int i = 0; i < NI; i++) {
    double z = 0;
    for (int j = 0; j < NH; j++)
      z += w2[i * NH + j] * h[j];
    y[i] = tanh(z);
    xo[i] = x[i] + dt * (y[i] - x[i]);
  }
  return 0;
}
