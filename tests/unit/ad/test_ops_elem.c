/* test_ops_elem.c - the elementwise operators: values, adjoints (checked by
 * ad_check against forward mode and finite differences), derivative
 * conventions at kinks, errors, and allocation failures. */
#include <math.h>
#include <string.h>

#include "ad_check.h"

/* --- Builders for ad_check -------------------------------------------- */

typedef int (*unary_fn)(tw_tape *, tw_tensor *, tw_tensor **, tw_err *);
typedef int (*binary_fn)(tw_tape *, tw_tensor *, tw_tensor *, tw_tensor **,
                         tw_err *);

/* Function pointers cannot travel through a void *; these structs carry
 * them to the builders. */
typedef struct unary_ud {
  unary_fn fn;
} unary_ud;
typedef struct binary_ud {
  binary_fn fn;
} binary_ud;

static int build_unary(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                       const void *ud) {
  return ((const unary_ud *)ud)->fn(t, in[0], out, err);
}

static int build_binary(tw_tape *t, tw_tensor **in, tw_tensor **out,
                        tw_err *err, const void *ud) {
  return ((const binary_ud *)ud)->fn(t, in[0], in[1], out, err);
}

/* The same tensor as both operands: x op x. */
static int build_self(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                      const void *ud) {
  return ((const binary_ud *)ud)->fn(t, in[0], in[0], out, err);
}

static const double alpha_value = -1.75;

static int build_axpy(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                      const void *ud) {
  (void)ud;
  return tw_ad_axpy(t, alpha_value, in[0], in[1], out, err);
}

static int build_scale(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                       const void *ud) {
  (void)ud;
  return tw_ad_scale(t, alpha_value, in[0], out, err);
}

/* The shapes every operator is checked on: [7], [3,4], [2,3,2], scalar. */
#define NSHAPES 4
static const unsigned case_ndim[NSHAPES] = {1, 2, 3, 0};
static const size_t case_shape[NSHAPES][TW_AD_MAX_DIMS] = {
    {7}, {3, 4}, {2, 3, 2}, {0}};

/* ad_check of an operator with nin inputs sampled from [lo[i], hi[i]] on
 * every shape. */
static void check_shapes(const char *name, unsigned nin, const double *lo,
                         const double *hi,
                         int (*build)(tw_tape *, tw_tensor **, tw_tensor **,
                                      tw_err *, const void *),
                         const void *ud) {
  for (unsigned s = 0; s < NSHAPES; s++) {
    ad_case c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.nin = nin;
    for (unsigned i = 0; i < nin; i++) {
      c.ndim[i] = case_ndim[s];
      memcpy(c.shape[i], case_shape[s], sizeof c.shape[i]);
      c.lo[i] = lo[i];
      c.hi[i] = hi[i];
    }
    c.build = build;
    c.ud = ud;
    ad_check(&c, 1000 + s);
  }
}

static void check_unary(const char *name, unary_fn fn, double lo, double hi) {
  unary_ud ud = {fn};
  check_shapes(name, 1, &lo, &hi, build_unary, &ud);
}

static void check_binary(const char *name, binary_fn fn, double lo0, double hi0,
                         double lo1, double hi1) {
  binary_ud ud = {fn};
  double lo[2] = {lo0, lo1}, hi[2] = {hi0, hi1};
  check_shapes(name, 2, lo, hi, build_binary, &ud);
}

/* --- Adjoint checks, one test per operator ---------------------------- */

/* Operand intervals keep results away from cancellation, so f32 and f64
 * values agree to ad_check's relative tolerance. */
static void adjoint_add(void **state) {
  (void)state;
  check_binary("add", tw_ad_add, 0.5, 2, 0.5, 2);
}

static void adjoint_sub(void **state) {
  (void)state;
  check_binary("sub", tw_ad_sub, 0.5, 2, -2, -0.5);
}

static void adjoint_mul(void **state) {
  (void)state;
  check_binary("mul", tw_ad_mul, -2, 2, -2, 2);
}

static void adjoint_div(void **state) {
  (void)state;
  check_binary("div", tw_ad_div, -2, 2, 0.5, 2);
  check_binary("div", tw_ad_div, -2, 2, -2, -0.5);
}

static void adjoint_axpy(void **state) {
  (void)state;
  double lo[2] = {0.5, -2}, hi[2] = {2, -0.5};
  check_shapes("axpy", 2, lo, hi, build_axpy, NULL);
}

static void adjoint_scale(void **state) {
  (void)state;
  double lo = -2, hi = 2;
  check_shapes("scale", 1, &lo, &hi, build_scale, NULL);
}

static void adjoint_neg(void **state) {
  (void)state;
  check_unary("neg", tw_ad_neg, -2, 2);
}

static void adjoint_exp(void **state) {
  (void)state;
  check_unary("exp", tw_ad_exp, -3, 3);
}

static void adjoint_log(void **state) {
  (void)state;
  check_unary("log", tw_ad_log, 0.1, 3);
}

static void adjoint_sin(void **state) {
  (void)state;
  check_unary("sin", tw_ad_sin, -3, 3);
}

static void adjoint_cos(void **state) {
  (void)state;
  check_unary("cos", tw_ad_cos, -1.5, 1.5);
}

static void adjoint_tanh(void **state) {
  (void)state;
  check_unary("tanh", tw_ad_tanh, -3, 3);
}

static void adjoint_sqrt(void **state) {
  (void)state;
  check_unary("sqrt", tw_ad_sqrt, 0.1, 4);
}

static void adjoint_abs(void **state) {
  (void)state;
  check_unary("abs", tw_ad_abs, -2, -0.1);
  check_unary("abs", tw_ad_abs, 0.1, 2);
}

static void adjoint_relu(void **state) {
  (void)state;
  check_unary("relu", tw_ad_relu, -2, -0.1);
  check_unary("relu", tw_ad_relu, 0.1, 2);
}

static void adjoint_softplus(void **state) {
  (void)state;
  check_unary("softplus", tw_ad_softplus, -4, 4);
  check_unary("softplus", tw_ad_softplus, -40, 40);
}

static void adjoint_sigmoid(void **state) {
  (void)state;
  check_unary("sigmoid", tw_ad_sigmoid, -4, 4);
  check_unary("sigmoid", tw_ad_sigmoid, -40, 40);
}

/* x op x through one tensor: both adjoint passes add into one buffer. */
static void adjoint_same_tensor_twice(void **state) {
  (void)state;
  static const binary_ud ud_mul = {tw_ad_mul}, ud_add = {tw_ad_add},
                         ud_div = {tw_ad_div}, ud_sub = {tw_ad_sub};
  double lo = 0.5, hi = 2;
  check_shapes("mul(x, x)", 1, &lo, &hi, build_self, &ud_mul);
  check_shapes("add(x, x)", 1, &lo, &hi, build_self, &ud_add);
  check_shapes("div(x, x)", 1, &lo, &hi, build_self, &ud_div);
  check_shapes("sub(x, x)", 1, &lo, &hi, build_self, &ud_sub);
}

/* sigmoid(axpy(0.5, tanh(a), b)) * softplus(c): nodes chain. */
static int build_chain(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                       const void *ud) {
  (void)ud;
  tw_tensor *u, *v, *w, *z;
  int rc = tw_ad_tanh(t, in[0], &u, err);
  if (rc == TW_OK)
    rc = tw_ad_axpy(t, 0.5, u, in[1], &v, err);
  if (rc == TW_OK)
    rc = tw_ad_sigmoid(t, v, &w, err);
  if (rc == TW_OK)
    rc = tw_ad_softplus(t, in[2], &z, err);
  if (rc == TW_OK)
    rc = tw_ad_mul(t, w, z, out, err);
  return rc;
}

static void adjoint_chain(void **state) {
  (void)state;
  double lo[3] = {-2, -2, -2}, hi[3] = {2, 2, 2};
  check_shapes("chain", 3, lo, hi, build_chain, NULL);
}

/* --- Values ------------------------------------------------------------ */

static tw_tensor *vec(tw_tape *t, tw_dtype dtype, const double *v, size_t n,
                      bool requires_grad) {
  tw_tensor *x;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tensor_new(t, dtype, 1, &n, &x, &err), TW_OK);
  for (size_t i = 0; i < n; i++) {
    if (dtype == TW_F64)
      ((double *)x->data)[i] = v[i];
    else
      ((float *)x->data)[i] = (float)v[i];
  }
  x->requires_grad = requires_grad;
  return x;
}

/* Sets every element of out's adjoint to 1 and runs the reverse pass. */
static void reverse_ones(tw_tape *t, tw_tensor *out) {
  tw_err err;
  tw_err_init(&err);
  void *g = tw_tensor_grad(t, out, &err);
  assert_non_null(g);
  for (size_t i = 0; i < out->size; i++) {
    if (out->dtype == TW_F64)
      ((double *)g)[i] = 1;
    else
      ((float *)g)[i] = 1;
  }
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
}

static double ref_softplus(double x) { return log1p(exp(x)); }
static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }

static void values_match_libm(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  const double xv[4] = {0.3, 1.7, 2.5, 0.9}, yv[4] = {1.1, -0.4, 0.8, 2.0};
  const double sv[4] = {-1.3, 0.6, -0.2, 2.2};
  for (int d = 0; d < 2; d++) {
    tw_dtype dt = d == 0 ? TW_F64 : TW_F32;
    double tol = d == 0 ? 1e-15 : 1e-6;
    tw_tensor *x = vec(t, dt, xv, 4, false), *y = vec(t, dt, yv, 4, false);
    tw_tensor *s = vec(t, dt, sv, 4, false);
    tw_tensor *r[17];
    assert_int_equal(tw_ad_add(t, x, y, &r[0], &err), TW_OK);
    assert_int_equal(tw_ad_sub(t, x, y, &r[1], &err), TW_OK);
    assert_int_equal(tw_ad_mul(t, x, y, &r[2], &err), TW_OK);
    assert_int_equal(tw_ad_div(t, x, y, &r[3], &err), TW_OK);
    assert_int_equal(tw_ad_axpy(t, 0.25, x, y, &r[4], &err), TW_OK);
    assert_int_equal(tw_ad_scale(t, -3, x, &r[5], &err), TW_OK);
    assert_int_equal(tw_ad_neg(t, s, &r[6], &err), TW_OK);
    assert_int_equal(tw_ad_exp(t, s, &r[7], &err), TW_OK);
    assert_int_equal(tw_ad_log(t, x, &r[8], &err), TW_OK);
    assert_int_equal(tw_ad_sin(t, s, &r[9], &err), TW_OK);
    assert_int_equal(tw_ad_cos(t, s, &r[10], &err), TW_OK);
    assert_int_equal(tw_ad_tanh(t, s, &r[11], &err), TW_OK);
    assert_int_equal(tw_ad_sqrt(t, x, &r[12], &err), TW_OK);
    assert_int_equal(tw_ad_abs(t, s, &r[13], &err), TW_OK);
    assert_int_equal(tw_ad_relu(t, s, &r[14], &err), TW_OK);
    assert_int_equal(tw_ad_softplus(t, s, &r[15], &err), TW_OK);
    assert_int_equal(tw_ad_sigmoid(t, s, &r[16], &err), TW_OK);
    for (int i = 0; i < 4; i++) {
      /* The inputs as the dtype holds them. */
      double a = tw_tensor_get(x, i), b = tw_tensor_get(y, i);
      double c = tw_tensor_get(s, i);
      double want[17] = {a + b,
                         a - b,
                         a * b,
                         a / b,
                         0.25 * a + b,
                         -3 * a,
                         -c,
                         exp(c),
                         log(a),
                         sin(c),
                         cos(c),
                         tanh(c),
                         sqrt(a),
                         fabs(c),
                         c > 0 ? c : 0,
                         ref_softplus(c),
                         ref_sigmoid(c)};
      for (int k = 0; k < 17; k++) {
        assert_int_equal(r[k]->dtype, dt);
        assert_int_equal(r[k]->ndim, 1);
        assert_int_equal(r[k]->shape[0], 4);
        assert_int_equal(r[k]->node, 0);
        assert_false(r[k]->requires_grad);
        assert_null(r[k]->tangent);
        ad_close("value", "libm", tw_tensor_get(r[k], i), want[k], tol);
      }
    }
  }
  assert_int_equal(tw_tape_nodes(t), 0);
  tw_tape_free(t);
}

/* Large |x|: finite values and adjoints, the tails to full precision. */
static void softplus_and_sigmoid_are_stable(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tape_set_check_finite(t, true);
  const double xv[6] = {-40, 40, -1000, 1000, -100, 100};
  double tail =
      exp(-40.0); /* softplus(-40) = sigmoid(-40) = e^-40 (1 + O(e^-40)) */
  for (int d = 0; d < 2; d++) {
    tw_dtype dt = d == 0 ? TW_F64 : TW_F32;
    double tol = d == 0 ? 1e-14 : 1e-5;
    tw_tensor *x = vec(t, dt, xv, 6, true), *sp, *sg;
    assert_int_equal(tw_ad_softplus(t, x, &sp, &err), TW_OK);
    assert_int_equal(tw_ad_sigmoid(t, x, &sg, &err), TW_OK);
    ad_close("softplus(-40)", "value", tw_tensor_get(sp, 0), tail, tol);
    ad_close("softplus(40)", "value", tw_tensor_get(sp, 1), 40, tol);
    assert_true(tw_tensor_get(sp, 2) == 0);
    assert_true(tw_tensor_get(sp, 3) == 1000);
    ad_close("sigmoid(-40)", "value", tw_tensor_get(sg, 0), tail, tol);
    ad_close("sigmoid(40)", "value", tw_tensor_get(sg, 1), 1, tol);
    assert_true(tw_tensor_get(sg, 2) == 0);
    assert_true(tw_tensor_get(sg, 3) == 1);
    /* softplus' = sigmoid. */
    reverse_ones(t, sp);
    ad_close("softplus'(-40)", "adjoint", ad_get(x->grad, dt, 0), tail, tol);
    ad_close("softplus'(40)", "adjoint", ad_get(x->grad, dt, 1), 1, tol);
    assert_true(ad_get(x->grad, dt, 2) == 0);
    assert_true(ad_get(x->grad, dt, 3) == 1);
    tw_tape_reset(t);

    x = vec(t, dt, xv, 6, true);
    assert_int_equal(tw_ad_sigmoid(t, x, &sg, &err), TW_OK);
    reverse_ones(t, sg);
    /* sigmoid'(x) = e^-|x| / (1 + e^-|x|)^2: the x < 0 tail is exact; at
     * x = 40 the output has rounded to 1, leaving an absolute error below
     * e^-40. */
    ad_close("sigmoid'(-40)", "adjoint", ad_get(x->grad, dt, 0), tail, tol);
    assert_true(fabs(ad_get(x->grad, dt, 1) - tail) <= tail);
    for (size_t i = 2; i < 6; i++)
      assert_true(ad_get(x->grad, dt, i) >= 0 &&
                  ad_get(x->grad, dt, i) <= 1e-40);
    tw_tape_reset(t);
  }
  tw_tape_free(t);
}

/* --- Conventions at kinks ---------------------------------------------- */

static void scalar_grad_at_zero(unary_fn fn, tw_dtype dt) {
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tensor *x, *y;
  assert_int_equal(tw_tensor_scalar(t, dt, 0, &x, &err), TW_OK);
  x->requires_grad = true;
  assert_non_null(tw_tensor_tangent(t, x, &err));
  if (dt == TW_F64)
    *(double *)x->tangent = 1;
  else
    *(float *)x->tangent = 1;
  assert_int_equal(fn(t, x, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == 0);
  assert_true(ad_get(y->tangent, dt, 0) == 0);
  assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
  assert_non_null(x->grad);
  assert_true(ad_get(x->grad, dt, 0) == 0);
  tw_tape_free(t);
}

static void derivatives_at_zero_follow_conventions(void **state) {
  (void)state;
  for (int d = 0; d < 2; d++) {
    tw_dtype dt = d == 0 ? TW_F64 : TW_F32;
    scalar_grad_at_zero(tw_ad_sqrt, dt);
    scalar_grad_at_zero(tw_ad_abs, dt);
    scalar_grad_at_zero(tw_ad_relu, dt);

    /* In a vector, beside smooth points, and at -0. */
    tw_tape *t;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
    const double v[4] = {0, -0.0, 4, -3};
    tw_tensor *x = vec(t, dt, v, 4, true), *y;
    assert_int_equal(tw_ad_abs(t, x, &y, &err), TW_OK);
    reverse_ones(t, y);
    const double gabs[4] = {0, 0, 1, -1};
    for (size_t i = 0; i < 4; i++)
      assert_true(ad_get(x->grad, dt, i) == gabs[i]);
    tw_tape_reset(t);
    x = vec(t, dt, v, 4, true);
    assert_int_equal(tw_ad_relu(t, x, &y, &err), TW_OK);
    reverse_ones(t, y);
    const double grelu[4] = {0, 0, 1, 0};
    for (size_t i = 0; i < 4; i++) {
      assert_true(ad_get(x->grad, dt, i) == grelu[i]);
      assert_true(tw_tensor_get(y, i) == (i == 2 ? 4 : 0));
    }
    tw_tape_reset(t);
    const double vs[3] = {0, 4, 0.25};
    x = vec(t, dt, vs, 3, true);
    assert_int_equal(tw_ad_sqrt(t, x, &y, &err), TW_OK);
    reverse_ones(t, y);
    const double gsqrt[3] = {0, 0.25, 1};
    for (size_t i = 0; i < 3; i++)
      assert_true(ad_get(x->grad, dt, i) == gsqrt[i]);
    tw_tape_free(t);
  }
}

/* --- Gradient plumbing ------------------------------------------------- */

static void same_tensor_twice_accumulates(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  const double v[3] = {1.5, -2, 0.25};
  tw_tensor *x = vec(t, TW_F64, v, 3, true), *y;
  assert_int_equal(tw_ad_mul(t, x, x, &y, &err), TW_OK);
  reverse_ones(t, y);
  for (size_t i = 0; i < 3; i++) {
    assert_true(tw_tensor_get(y, i) == v[i] * v[i]);
    assert_true(((double *)x->grad)[i] == 2 * v[i]);
  }
  tw_tape_reset(t);
  x = vec(t, TW_F64, v, 3, true);
  assert_int_equal(tw_ad_add(t, x, x, &y, &err), TW_OK);
  reverse_ones(t, y);
  for (size_t i = 0; i < 3; i++)
    assert_true(((double *)x->grad)[i] == 2);
  tw_tape_free(t);
}

static void adjoints_reach_only_inputs_that_require_grad(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  const double av[2] = {2, 3}, cv[2] = {5, -7};
  /* A wrapped parameter: adjoints are added to what its buffer holds. */
  double data[2] = {2, 3}, grad[2] = {100, 200};
  size_t s2[1] = {2};
  tw_tensor *p, *c = vec(t, TW_F64, cv, 2, false), *y, *z;
  assert_int_equal(tw_tensor_wrap(t, TW_F64, 1, s2, data, grad, &p, &err),
                   TW_OK);
  assert_int_equal(tw_ad_mul(t, p, c, &y, &err), TW_OK);
  assert_int_equal(tw_ad_div(t, c, p, &z, &err), TW_OK);
  assert_int_equal(tw_tape_nodes(t), 2);
  assert_true(y->requires_grad && z->requires_grad);
  reverse_ones(t, y);
  assert_null(c->grad);
  assert_true(grad[0] == 105 && grad[1] == 193);
  /* Nothing requires grad: no node. */
  tw_tensor *a = vec(t, TW_F64, av, 2, false);
  assert_int_equal(tw_ad_exp(t, a, &y, &err), TW_OK);
  assert_int_equal(tw_ad_axpy(t, 2, a, c, &y, &err), TW_OK);
  assert_int_equal(tw_tape_nodes(t), 2);
  assert_false(y->requires_grad);
  assert_int_equal(y->node, 0);
  tw_tape_free(t);
}

/* A missing input tangent counts as zero. */
static void missing_tangents_count_as_zero(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  const double av[2] = {2, -3}, bv[2] = {0.5, 4};
  tw_tensor *a = vec(t, TW_F64, av, 2, false),
            *b = vec(t, TW_F64, bv, 2, false);
  double *ta = tw_tensor_tangent(t, a, &err);
  ta[0] = 1;
  ta[1] = -2;
  tw_tensor *y;
  assert_int_equal(tw_ad_mul(t, a, b, &y, &err), TW_OK);
  assert_true(((double *)y->tangent)[0] == 0.5 &&
              ((double *)y->tangent)[1] == -8);
  assert_int_equal(tw_ad_div(t, b, a, &y, &err), TW_OK); /* -b/a^2 ta */
  assert_true(((double *)y->tangent)[0] == -0.125);
  ad_close("div", "tangent", ((double *)y->tangent)[1], 8.0 / 9, 1e-15);
  assert_int_equal(tw_ad_axpy(t, 3, b, a, &y, &err), TW_OK);
  assert_true(((double *)y->tangent)[0] == 1 &&
              ((double *)y->tangent)[1] == -2);
  assert_int_equal(tw_ad_sub(t, b, b, &y, &err), TW_OK);
  assert_null(y->tangent);
  tw_tape_free(t);
}

/* --- Errors ------------------------------------------------------------- */

static void bad_inputs_are_refused(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  const double v[6] = {1, 2, 3, 4, 5, 6};
  tw_tensor *a3 = vec(t, TW_F64, v, 3, true), *a4 = vec(t, TW_F64, v, 4, true);
  tw_tensor *f3 = vec(t, TW_F32, v, 3, true);
  size_t s23[2] = {2, 3}, s32[2] = {3, 2};
  tw_tensor *m23, *m32;
  assert_int_equal(tw_tensor_from(t, TW_F64, 2, s23, v, true, &m23, &err),
                   TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 2, s32, v, true, &m32, &err),
                   TW_OK);
  tw_tensor sentinel, *out = &sentinel;

  assert_int_equal(tw_ad_mul(t, a3, a4, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "mul: shape mismatch: [3] and [4]");
  tw_err_init(&err);
  assert_int_equal(tw_ad_div(t, m23, m32, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "div: shape mismatch: [2,3] and [3,2]");
  tw_err_init(&err);
  assert_int_equal(tw_ad_add(t, a3, f3, &out, &err), TW_ETYPE);
  assert_string_equal(err.msg, "add: dtype mismatch: f64 and f32");
  tw_err_init(&err);
  assert_int_equal(tw_ad_axpy(t, 1, f3, a3, &out, &err), TW_ETYPE);
  assert_string_equal(err.msg, "axpy: dtype mismatch: f32 and f64");
  tw_err_init(&err);
  assert_int_equal(tw_ad_exp(t, NULL, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "exp: input is NULL");
  tw_err_init(&err);
  assert_int_equal(tw_ad_sub(t, a3, NULL, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "sub: input is NULL");
  tw_err_init(&err);
  assert_int_equal(tw_ad_axpy(t, NAN, a3, a3, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "axpy: alpha must be finite, got nan");
  tw_err_init(&err);
  assert_int_equal(tw_ad_scale(t, -INFINITY, a3, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "scale: alpha must be finite, got -inf");
  tw_err_init(&err);
  assert_int_equal(tw_ad_scale(t, 1e300, f3, &out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "scale: alpha 1e+300 overflows f32");
  tw_err_init(&err);
  assert_int_equal(tw_ad_scale(t, 1e300, a3, &out, &err), TW_OK);
  tw_err_init(&err);

  /* Failed calls leave *out alone and record nothing. */
  tw_tape_reset(t);
  a3 = vec(t, TW_F64, v, 3, true);
  a4 = vec(t, TW_F64, v, 4, true);
  out = &sentinel;
  assert_int_equal(tw_ad_mul(t, a3, a4, &out, &err), TW_EINVAL);
  assert_ptr_equal(out, &sentinel);
  assert_int_equal(tw_tape_nodes(t), 0);
  tw_tape_free(t);
}

static void check_finite_names_operator_and_context(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tape_set_check_finite(t, true);
  tw_tape_set_context(t, "pendulum", 3);
  const double v[2] = {1, -1};
  tw_tensor *x = vec(t, TW_F64, v, 2, true), *sentinel = x, *y = sentinel;
  assert_int_equal(tw_ad_log(t, x, &y, &err), TW_ENUMERIC);
  assert_string_equal(err.msg,
                      "log: NaN value at element 1 (block 'pendulum', step 3)");
  assert_ptr_equal(y, sentinel);
  assert_int_equal(tw_tape_nodes(t), 0);

  const double zero[1] = {0};
  tw_tensor *z = vec(t, TW_F32, zero, 1, true);
  tw_err_init(&err);
  assert_int_equal(tw_ad_log(t, z, &y, &err), TW_ENUMERIC);
  assert_string_equal(err.msg,
                      "log: Inf value at element 0 (block 'pendulum', step 3)");

  /* A finite value whose adjoint overflows: log'(1e-310) = 1e310. */
  const double tiny[2] = {1, 1e-310};
  tw_tensor *s = vec(t, TW_F64, tiny, 2, true);
  tw_err_init(&err);
  assert_int_equal(tw_ad_log(t, s, &y, &err), TW_OK);
  assert_non_null(tw_tensor_grad(t, y, &err));
  ((double *)y->grad)[0] = 1;
  ((double *)y->grad)[1] = 1;
  assert_int_equal(tw_tape_reverse(t, &err), TW_ENUMERIC);
  assert_string_equal(
      err.msg, "log: Inf adjoint at element 1 (block 'pendulum', step 3)");

  /* Without check_finite, the NaN is just a value. */
  tw_tape_set_check_finite(t, false);
  tw_err_init(&err);
  assert_int_equal(tw_ad_log(t, x, &y, &err), TW_OK);
  assert_true(isnan(tw_tensor_get(y, 1)));
  tw_tape_free(t);
}

static void recording_off_records_nothing(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tape_set_recording(t, false);
  const double av[2] = {0.5, 2}, bv[2] = {-1, 3};
  tw_tensor *a = vec(t, TW_F64, av, 2, true), *b = vec(t, TW_F64, bv, 2, true);
  double *ta = tw_tensor_tangent(t, a, &err);
  ta[0] = 1;
  ta[1] = 1;
  tw_tensor *y, *z;
  assert_int_equal(tw_ad_mul(t, a, b, &y, &err), TW_OK);
  assert_int_equal(tw_ad_exp(t, y, &z, &err), TW_OK);
  assert_int_equal(tw_tape_nodes(t), 0);
  assert_int_equal(z->node, 0);
  assert_false(z->requires_grad);
  /* Values and tangents are still computed. */
  assert_true(tw_tensor_get(z, 1) == exp(6.0));
  assert_true(((double *)z->tangent)[0] == exp(-0.5) * -1);
  tw_tape_free(t);
}

/* --- Allocation failures ----------------------------------------------- */

static int alloc_round(void) {
  tw_tape *t = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_tape_new(512, &t, &err);
  if (rc != TW_OK)
    return rc;
  double v[16];
  for (int i = 0; i < 16; i++)
    v[i] = 0.1 * (i + 1);
  size_t s[1] = {16};
  tw_tensor *x = NULL, *w = NULL, *y = NULL, *z = NULL, *loss = NULL;
  rc = tw_tensor_from(t, TW_F64, 1, s, v, true, &x, &err);
  if (rc == TW_OK)
    rc = tw_tensor_from(t, TW_F64, 1, s, v, false, &w, &err);
  if (rc == TW_OK && tw_tensor_tangent(t, x, &err) == NULL)
    rc = TW_ENOMEM;
  if (rc == TW_OK)
    rc = tw_ad_mul(t, x, x, &y, &err);
  if (rc == TW_OK)
    rc = tw_ad_axpy(t, 0.5, y, w, &z, &err);
  if (rc == TW_OK)
    rc = tw_ad_softplus(t, z, &y, &err);
  if (rc == TW_OK)
    rc = tw_ad_div(t, y, x, &z, &err);
  if (rc == TW_OK)
    rc = tw_ad_sqrt(t, z, &y, &err);
  if (rc == TW_OK && tw_tensor_grad(t, y, &err) == NULL)
    rc = TW_ENOMEM;
  if (rc == TW_OK)
    rc = tw_tape_reverse(t, &err);
  /* A scalar chain to a loss, through tw_tape_backward. */
  tw_tensor *a = NULL, *b = NULL;
  if (rc == TW_OK)
    rc = tw_tensor_scalar(t, TW_F32, 0.7, &a, &err);
  if (rc == TW_OK) {
    a->requires_grad = true;
    rc = tw_ad_sigmoid(t, a, &b, &err);
  }
  if (rc == TW_OK)
    rc = tw_ad_sub(t, b, a, &loss, &err);
  if (rc == TW_OK)
    rc = tw_ad_tanh(t, loss, &b, &err);
  if (rc == TW_OK)
    rc = tw_ad_scale(t, 3, b, &loss, &err);
  if (rc == TW_OK)
    rc = tw_tape_backward(t, loss, &err);
  tw_tape_free(t);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(adjoint_add),
      TW_TEST(adjoint_sub),
      TW_TEST(adjoint_mul),
      TW_TEST(adjoint_div),
      TW_TEST(adjoint_axpy),
      TW_TEST(adjoint_scale),
      TW_TEST(adjoint_neg),
      TW_TEST(adjoint_exp),
      TW_TEST(adjoint_log),
      TW_TEST(adjoint_sin),
      TW_TEST(adjoint_cos),
      TW_TEST(adjoint_tanh),
      TW_TEST(adjoint_sqrt),
      TW_TEST(adjoint_abs),
      TW_TEST(adjoint_relu),
      TW_TEST(adjoint_softplus),
      TW_TEST(adjoint_sigmoid),
      TW_TEST(adjoint_same_tensor_twice),
      TW_TEST(adjoint_chain),
      TW_TEST(values_match_libm),
      TW_TEST(softplus_and_sigmoid_are_stable),
      TW_TEST(derivatives_at_zero_follow_conventions),
      TW_TEST(same_tensor_twice_accumulates),
      TW_TEST(adjoints_reach_only_inputs_that_require_grad),
      TW_TEST(missing_tangents_count_as_zero),
      TW_TEST(bad_inputs_are_refused),
      TW_TEST(check_finite_names_operator_and_context),
      TW_TEST(recording_off_records_nothing),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
