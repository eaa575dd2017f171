/*
 * ad_check.h - the independent checks every operator's adjoint must pass.
 *
 * For an operator y = f(x_1..x_n) with random inputs x, random input
 * tangents u and a random output cotangent w:
 *
 *  1. forward vs reverse: <w, J u> from forward mode (the tangents the
 *     operator propagates) must equal sum_i <(J^T w)_i, u_i> from the
 *     reverse pass, to 1e-10 relative in f64 (1e-4 in f32);
 *  2. finite differences: (w.f(x + h u) - w.f(x - h u)) / 2h must match
 *     <w, J u> to 1e-6 relative in f64, with h = eps^(1/3) * max(1, |x|)
 *     (the STYLE.md rule), computed on a tape that records nothing;
 *  3. f32 values agree with the f64 values of the same inputs to 1e-5.
 *
 * A test describes the operator with an ad_case and calls ad_check(). The
 * random numbers come from a fixed xorshift generator, so a failure
 * reproduces exactly.
 */
#ifndef TW_AD_CHECK_H
#define TW_AD_CHECK_H

#include <float.h>
#include <math.h>
#include <string.h>

#include "tw_test.h"
#include "twin/ad.h"

#define AD_MAX_IN 3

typedef struct ad_case {
  const char *name;
  unsigned nin;
  unsigned ndim[AD_MAX_IN];
  size_t shape[AD_MAX_IN][TW_AD_MAX_DIMS];
  double lo[AD_MAX_IN], hi[AD_MAX_IN]; /* sampling interval per input */
  /* Builds the operator's output from the inputs. */
  int (*build)(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
               const void *ud);
  const void *ud;
} ad_case;

static uint64_t ad_rng_state;
static double ad_uniform(double lo, double hi) {
  uint64_t x = ad_rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  ad_rng_state = x;
  return lo + (hi - lo) * ((double)(x >> 11) * 0x1.0p-53);
}

static size_t ad_case_size(const ad_case *c, unsigned i) {
  size_t n = 1;
  for (unsigned d = 0; d < c->ndim[i]; d++)
    n *= c->shape[i][d];
  return n;
}

/* Builds the inputs (as dtype, with requires_grad and optional tangents)
 * on tape and runs the operator. x[i] holds input values as doubles. */
static tw_tensor *ad_run(const ad_case *c, tw_tape *t, tw_dtype dtype,
                         double *const *x, double *const *u, bool grad,
                         tw_tensor **in) {
  tw_err err;
  tw_err_init(&err);
  for (unsigned i = 0; i < c->nin; i++) {
    size_t n = ad_case_size(c, i);
    assert_int_equal(
        tw_tensor_new(t, dtype, c->ndim[i], c->shape[i], &in[i], &err), TW_OK);
    in[i]->requires_grad = grad;
    if (u != NULL)
      assert_non_null(tw_tensor_tangent(t, in[i], &err));
    for (size_t k = 0; k < n; k++) {
      if (dtype == TW_F64) {
        ((double *)in[i]->data)[k] = x[i][k];
        if (u != NULL)
          ((double *)in[i]->tangent)[k] = u[i][k];
      } else {
        ((float *)in[i]->data)[k] = (float)x[i][k];
        if (u != NULL)
          ((float *)in[i]->tangent)[k] = (float)u[i][k];
      }
    }
  }
  tw_tensor *out = NULL;
  int rc = c->build(t, in, &out, &err, c->ud);
  if (rc != TW_OK)
    print_error("%s: %s\n", c->name, tw_err_msg(&err));
  assert_int_equal(rc, TW_OK);
  assert_non_null(out);
  return out;
}

static double ad_get(const void *p, tw_dtype dtype, size_t i) {
  return dtype == TW_F64 ? ((const double *)p)[i]
                         : (double)((const float *)p)[i];
}

static void ad_close(const char *name, const char *what, double a, double b,
                     double rel) {
  double scale = fmax(fmax(fabs(a), fabs(b)), 1e-12);
  if (fabs(a - b) > rel * scale) {
    print_error("%s: %s: %.17g vs %.17g (rel %.3g > %.1g)\n", name, what, a, b,
                fabs(a - b) / scale, rel);
    fail();
  }
}

/* Forward-vs-reverse (and, in f64, finite-difference) check of c. */
static void ad_check_dtype(const ad_case *c, tw_dtype dtype, double *const *x,
                           double *const *u) {
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tensor *in[AD_MAX_IN] = {NULL, NULL, NULL};
  tw_tensor *out = ad_run(c, t, dtype, x, u, true, in);
  assert_true(out->requires_grad);
  assert_non_null(out->tangent);
  size_t m = out->size;
  double *w = tw_calloc(m, sizeof *w);
  void *g = tw_tensor_grad(t, out, &err);
  assert_non_null(g);
  double jvp = 0;
  for (size_t k = 0; k < m; k++) {
    w[k] = ad_uniform(-1, 1);
    if (dtype == TW_F64)
      ((double *)g)[k] = w[k];
    else
      ((float *)g)[k] = (float)w[k];
    jvp += w[k] * ad_get(out->tangent, dtype, k);
  }
  int rc = tw_tape_reverse(t, &err);
  if (rc != TW_OK)
    print_error("%s: reverse: %s\n", c->name, tw_err_msg(&err));
  assert_int_equal(rc, TW_OK);
  double vjp = 0;
  for (unsigned i = 0; i < c->nin; i++) {
    assert_non_null(in[i]->grad);
    for (size_t k = 0; k < in[i]->size; k++)
      vjp += ad_get(in[i]->grad, dtype, k) * u[i][k];
  }
  ad_close(c->name,
           dtype == TW_F64 ? "f64 forward vs reverse"
                           : "f32 forward vs reverse",
           jvp, vjp, dtype == TW_F64 ? 1e-10 : 1e-4);

  if (dtype == TW_F64) {
    /* Central differences along u, on a tape that records nothing. */
    double xmax = 1;
    for (unsigned i = 0; i < c->nin; i++)
      for (size_t k = 0; k < ad_case_size(c, i); k++)
        xmax = fmax(xmax, fabs(x[i][k]));
    double h = cbrt(DBL_EPSILON) * xmax;
    double *xp[AD_MAX_IN], *xm[AD_MAX_IN];
    for (unsigned i = 0; i < c->nin; i++) {
      size_t n = ad_case_size(c, i);
      xp[i] = tw_calloc(n, sizeof(double));
      xm[i] = tw_calloc(n, sizeof(double));
      for (size_t k = 0; k < n; k++) {
        xp[i][k] = x[i][k] + h * u[i][k];
        xm[i][k] = x[i][k] - h * u[i][k];
      }
    }
    tw_tape *f;
    assert_int_equal(tw_tape_new(0, &f, &err), TW_OK);
    tw_tape_set_recording(f, false);
    tw_tensor *scratch[AD_MAX_IN];
    tw_tensor *yp = ad_run(c, f, TW_F64, xp, NULL, false, scratch);
    tw_tensor *ym = ad_run(c, f, TW_F64, xm, NULL, false, scratch);
    double fd = 0;
    for (size_t k = 0; k < m; k++)
      fd += w[k] * (ad_get(yp->data, TW_F64, k) - ad_get(ym->data, TW_F64, k));
    fd /= 2 * h;
    ad_close(c->name, "finite differences vs forward", fd, jvp, 1e-6);
    assert_int_equal(tw_tape_nodes(f), 0);
    tw_tape_free(f);
    for (unsigned i = 0; i < c->nin; i++) {
      tw_free(xp[i]);
      tw_free(xm[i]);
    }
  }
  tw_free(w);
  tw_tape_free(t);
}

/* Runs every check of c in f64 and f32. */
static void ad_check(const ad_case *c, uint64_t seed) {
  ad_rng_state = seed ? seed : 0x9E3779B97F4A7C15ull;
  double *x[AD_MAX_IN] = {NULL, NULL, NULL}, *u[AD_MAX_IN] = {NULL, NULL, NULL};
  for (unsigned i = 0; i < c->nin; i++) {
    size_t n = ad_case_size(c, i);
    x[i] = tw_calloc(n, sizeof(double));
    u[i] = tw_calloc(n, sizeof(double));
    for (size_t k = 0; k < n; k++) {
      x[i][k] = ad_uniform(c->lo[i], c->hi[i]);
      u[i][k] = ad_uniform(-1, 1);
    }
  }
  uint64_t rng = ad_rng_state;
  ad_check_dtype(c, TW_F64, x, u);
  ad_rng_state = rng;
  ad_check_dtype(c, TW_F32, x, u);

  /* f32 values agree with f64 values. */
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tensor *scratch[AD_MAX_IN];
  tw_tensor *y64 = ad_run(c, t, TW_F64, x, NULL, false, scratch);
  tw_tensor *y32 = ad_run(c, t, TW_F32, x, NULL, false, scratch);
  assert_int_equal(y64->size, y32->size);
  for (size_t k = 0; k < y64->size; k++)
    ad_close(c->name, "f32 value vs f64 value", ad_get(y32->data, TW_F32, k),
             ad_get(y64->data, TW_F64, k), 1e-4);
  tw_tape_free(t);
  for (unsigned i = 0; i < c->nin; i++) {
    tw_free(x[i]);
    tw_free(u[i]);
  }
}

/* For bad-input tests, with locals t (the tape), err and out in scope:
 * expects call to fail with code and exactly text, leaving out untouched
 * and the tape without new nodes. */
#define EXPECT_ERR(call, code, text)                                           \
  do {                                                                         \
    size_t nodes_ = tw_tape_nodes(t);                                          \
    out = NULL;                                                                \
    tw_err_init(&err);                                                         \
    assert_int_equal((call), (code));                                          \
    assert_string_equal(err.msg, (text));                                      \
    assert_null(out);                                                          \
    assert_int_equal(tw_tape_nodes(t), nodes_);                                \
  } while (0)

#endif /* TW_AD_CHECK_H */
