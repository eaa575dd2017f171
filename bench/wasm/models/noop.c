/*
 * noop.c - benchmark model: one state, input, output and parameter, and a
 * step that only copies: what a host-to-guest call costs.
 */
/* clang-format off */
static const char descriptor[] =
    "{\"abi\":1,\"name\":\"noop\",\"version\":\"1\","
    "\"state\":[{\"name\":\"x\",\"unit\":\"\",\"size\":1}],"
    "\"inputs\":[{\"name\":\"u\",\"unit\":\"\",\"size\":1,\"default\":0}],"
    "\"outputs\":[{\"name\":\"y\",\"unit\":\"\",\"size\":1}],"
    "\"params\":[{\"name\":\"p\",\"unit\":\"\",\"size\":1,\"default\":1}],"
    "\"differentiable\":false}";
/* clang-format on */
#include "model.h"

int32_t API(tw_init)(const double *p, double *xo);
int32_t API(tw_init)(const double *p, double *xo) {
  xo[0] = p[0];
  return 0;
}

int32_t API(tw_step)(double t, double dt, const double *x, const double *u,
                     const double *p, double *xo, double *y);
int32_t API(tw_step)(double t, double dt, const double *x, const double *u,
                     const double *p, double *xo, double *y) {
  (void)t, (void)dt, (void)u, (void)p;
  xo[0] = x[0];
  y[0] = x[0];
  return 0;
}
