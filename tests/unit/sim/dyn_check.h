/*
 * dyn_check.h - the independent check every tw_dyn_ops VJP must pass.
 *
 * For random q, u, theta, random tangents (dq, du, dtheta) and a random
 * cotangent w of qdot = g(q, u, theta):
 *
 *  1. finite differences: with per-component steps h_i = eps^(1/3) *
 *     max(1, |z_i|) (the STYLE.md rule) and e_i = h_i dz_i, the central
 *     difference (w.g(z + e) - w.g(z - e)) / 2 must match
 *     <gq, eq> + <gu, eu> + <gtheta, etheta> from deriv_vjp to 1e-6
 *     relative, for the q, u and theta directions alone and all together;
 *  2. NULL handling: deriv_vjp with only one of gq, gu, gtheta non-NULL
 *     gives that output exactly as the full call does;
 *  3. accumulation: outputs are added to (+=), not overwritten.
 *
 * q and u are uniform in [q_lo, q_hi] and [u_lo, u_hi]; theta is the
 * default scaled by U(0.5, 1.5) plus U(-theta_abs, theta_abs); adjust (if
 * set) may then change any of them, e.g. to keep contacts away from a kink.
 * The generator is a fixed xorshift, so a failure reproduces exactly.
 */
#ifndef TW_DYN_CHECK_H
#define TW_DYN_CHECK_H

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tw_test.h"
#include "twin/sim.h"

typedef struct dyn_case {
  const char *name;
  const tw_dyn_ops *ops;
  void *self;
  double q_lo, q_hi, u_lo, u_hi, theta_abs;
  void (*adjust)(void *ud, double *q, double *u, double *theta);
  void *ud;
  unsigned trials; /* 0 = 10 */
} dyn_case;

static uint64_t dyn_rng_state = 0x9e3779b97f4a7c15u;

static inline double dyn_uniform(double lo, double hi) {
  uint64_t x = dyn_rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  dyn_rng_state = x;
  return lo + (hi - lo) * ((double)(x >> 11) * 0x1.0p-53);
}

/* |a - b| <= tol, reporting both values (this cmocka has no
 * assert_double_equal). */
#define dyn_assert_close(a, b, tol)                                            \
  dyn_assert_close_at((a), (b), (tol), #a, __FILE__, __LINE__)

static inline void dyn_assert_close_at(double a, double b, double tol,
                                       const char *what, const char *file,
                                       int line) {
  if (!(fabs(a - b) <= tol)) {
    print_error("%s:%d: %s = %.17g, want %.17g (tolerance %.3g)\n", file, line,
                what, a, b, tol);
    fail();
  }
}

static inline double *dyn_alloc(size_t n) {
  double *p = calloc(n + 1, sizeof(double));
  assert_non_null(p);
  return p;
}

/* w . g(q, u, theta). */
static inline double dyn_wg(const dyn_case *c, size_t nq, const double *q,
                            const double *u, const double *th, const double *w,
                            double *qdot) {
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(c->ops->deriv(c->self, 0.25, q, u, th, qdot, &err), TW_OK);
  double s = 0;
  for (size_t i = 0; i < nq; i++) {
    assert_true(isfinite(qdot[i]));
    s += w[i] * qdot[i];
  }
  return s;
}

/* Adds sign * h_i * d_i to z_i (h_i from base_i) into out. */
static inline void dyn_shift(size_t n, const double *base, const double *d,
                             double sign, bool on, double *out) {
  const double h0 = cbrt(DBL_EPSILON);
  for (size_t i = 0; i < n; i++) {
    double h = h0 * fmax(1.0, fabs(base[i]));
    out[i] = base[i] + (on ? sign * h * d[i] : 0.0);
  }
}

static inline double dyn_dot_scaled(size_t n, const double *g,
                                    const double *base, const double *d,
                                    double *sumabs) {
  const double h0 = cbrt(DBL_EPSILON);
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double term = g[i] * h0 * fmax(1.0, fabs(base[i])) * d[i];
    s += term;
    *sumabs += fabs(term);
  }
  return s;
}

static inline void dyn_check(const dyn_case *c) {
  tw_dyn_desc desc;
  c->ops->describe(c->self, &desc);
  const size_t nq = desc.nq, nu = desc.nu, nt = desc.ntheta;
  double *q = dyn_alloc(nq), *u = dyn_alloc(nu), *th = dyn_alloc(nt);
  double *th0 = dyn_alloc(nt), *w = dyn_alloc(nq), *qdot = dyn_alloc(nq);
  double *dq = dyn_alloc(nq), *du = dyn_alloc(nu), *dth = dyn_alloc(nt);
  double *qs = dyn_alloc(nq), *us = dyn_alloc(nu), *ths = dyn_alloc(nt);
  double *gq = dyn_alloc(nq), *gu = dyn_alloc(nu), *gth = dyn_alloc(nt);
  double *gq1 = dyn_alloc(nq), *gu1 = dyn_alloc(nu), *gth1 = dyn_alloc(nt);
  c->ops->default_params(c->self, th0);
  unsigned trials = c->trials != 0 ? c->trials : 10;
  for (unsigned trial = 0; trial < trials; trial++) {
    for (size_t i = 0; i < nq; i++) {
      q[i] = dyn_uniform(c->q_lo, c->q_hi);
      w[i] = dyn_uniform(-1, 1);
      dq[i] = dyn_uniform(-1, 1);
    }
    for (size_t i = 0; i < nu; i++) {
      u[i] = dyn_uniform(c->u_lo, c->u_hi);
      du[i] = dyn_uniform(-1, 1);
    }
    for (size_t i = 0; i < nt; i++) {
      th[i] = th0[i] * dyn_uniform(0.5, 1.5) +
              dyn_uniform(-c->theta_abs, c->theta_abs);
      dth[i] = dyn_uniform(-1, 1);
    }
    if (c->adjust != NULL)
      c->adjust(c->ud, q, u, th);

    tw_err err;
    tw_err_init(&err);
    memset(gq, 0, nq * sizeof *gq);
    memset(gu, 0, nu * sizeof *gu);
    memset(gth, 0, nt * sizeof *gth);
    assert_int_equal(
        c->ops->deriv_vjp(c->self, 0.25, q, u, th, w, gq, gu, gth, NULL, &err),
        TW_OK);

    /* 1. Finite differences along q, u, theta alone and together. */
    for (int dir = 0; dir < 4; dir++) {
      bool onq = dir == 0 || dir == 3, onu = dir == 1 || dir == 3;
      bool ont = dir == 2 || dir == 3;
      double vals[2];
      for (int k = 0; k < 2; k++) {
        double sign = k == 0 ? 1.0 : -1.0;
        dyn_shift(nq, q, dq, sign, onq, qs);
        dyn_shift(nu, u, du, sign, onu, us);
        dyn_shift(nt, th, dth, sign, ont, ths);
        vals[k] = dyn_wg(c, nq, qs, us, ths, w, qdot);
      }
      double fd = (vals[0] - vals[1]) / 2, sumabs = 0, ad = 0;
      if (onq)
        ad += dyn_dot_scaled(nq, gq, q, dq, &sumabs);
      if (onu)
        ad += dyn_dot_scaled(nu, gu, u, du, &sumabs);
      if (ont)
        ad += dyn_dot_scaled(nt, gth, th, dth, &sumabs);
      double scale = fmax(fmax(fabs(fd), fabs(ad)), sumabs);
      if (!(fabs(fd - ad) <= 1e-6 * scale)) {
        static const char *const names[] = {"q", "u", "theta", "all"};
        print_error("%s: trial %u, direction %s: finite difference %.17g, "
                    "vjp %.17g (scale %.3g)\n",
                    c->name, trial, names[dir], fd, ad, scale);
        fail();
      }
    }

    /* 2. Each output alone equals the full call's. */
    for (int only = 0; only < 3; only++) {
      memset(gq1, 0, nq * sizeof *gq1);
      memset(gu1, 0, nu * sizeof *gu1);
      memset(gth1, 0, nt * sizeof *gth1);
      assert_int_equal(c->ops->deriv_vjp(c->self, 0.25, q, u, th, w,
                                         only == 0 ? gq1 : NULL,
                                         only == 1 ? gu1 : NULL,
                                         only == 2 ? gth1 : NULL, NULL, &err),
                       TW_OK);
      const double *got = only == 0 ? gq1 : only == 1 ? gu1 : gth1;
      const double *want = only == 0 ? gq : only == 1 ? gu : gth;
      size_t n = only == 0 ? nq : only == 1 ? nu : nt;
      for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
          print_error("%s: output %d alone, [%zu]: %.17g, full call %.17g\n",
                      c->name, only, i, got[i], want[i]);
          fail();
        }
      }
    }

    /* 3. Accumulation: start from 1.5 everywhere. */
    for (size_t i = 0; i < nq; i++)
      gq1[i] = 1.5;
    for (size_t i = 0; i < nu; i++)
      gu1[i] = 1.5;
    for (size_t i = 0; i < nt; i++)
      gth1[i] = 1.5;
    assert_int_equal(c->ops->deriv_vjp(c->self, 0.25, q, u, th, w, gq1, gu1,
                                       gth1, NULL, &err),
                     TW_OK);
    for (size_t i = 0; i < nq + nu + nt; i++) {
      double got = i < nq        ? gq1[i]
                   : i < nq + nu ? gu1[i - nq]
                                 : gth1[i - nq - nu];
      double g = i < nq ? gq[i] : i < nq + nu ? gu[i - nq] : gth[i - nq - nu];
      if (!(fabs(got - (1.5 + g)) <= 1e-12 * (1.5 + fabs(g)))) {
        print_error("%s: accumulation, output %zu: %.17g, want 1.5 + %.17g\n",
                    c->name, i, got, g);
        fail();
      }
    }
  }
  double *bufs[] = {q,  u,  th,  th0, w,  qdot, dq,  du,  dth,
                    qs, us, ths, gq,  gu, gth,  gq1, gu1, gth1};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
    free(bufs[i]);
}

#endif /* TW_DYN_CHECK_H */
