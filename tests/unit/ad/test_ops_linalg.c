/* test_ops_linalg.c - matmul and matvec through cblas: adjoints against
 * forward mode and finite differences, values, errors, determinism. Also
 * built with TW_AD_NO_BLAS (tests/unit/ad/CMakeLists.txt), against the
 * plain loops that replace cblas in the model SDK. */
#ifndef TW_AD_NO_BLAS
#include <cblas.h>
#endif
#include <string.h>

#include "ad_check.h"
#include "tw_test.h"
#include "twin/ad.h"

static int build_matmul(tw_tape *t, tw_tensor **in, tw_tensor **out,
                        tw_err *err, const void *ud) {
  (void)ud;
  return tw_ad_matmul(t, in[0], in[1], out, err);
}

static int build_matmul_self(tw_tape *t, tw_tensor **in, tw_tensor **out,
                             tw_err *err, const void *ud) {
  (void)ud;
  return tw_ad_matmul(t, in[0], in[0], out, err);
}

static int build_matvec(tw_tape *t, tw_tensor **in, tw_tensor **out,
                        tw_err *err, const void *ud) {
  (void)ud;
  return tw_ad_matvec(t, in[0], in[1], out, err);
}

/* A two-input case: a [m,k] and b [k,n], or b [k] when n is 0. */
static ad_case product_case(const char *name, size_t m, size_t k, size_t n,
                            int (*build)(tw_tape *, tw_tensor **, tw_tensor **,
                                         tw_err *, const void *)) {
  ad_case c;
  memset(&c, 0, sizeof c);
  c.name = name;
  c.nin = 2;
  c.ndim[0] = 2;
  c.shape[0][0] = m;
  c.shape[0][1] = k;
  c.ndim[1] = n ? 2 : 1;
  c.shape[1][0] = k;
  c.shape[1][1] = n;
  c.lo[0] = -2;
  c.hi[0] = 2;
  c.lo[1] = -1;
  c.hi[1] = 3;
  c.build = build;
  return c;
}

static void matmul_adjoints(void **state) {
  (void)state;
  static const size_t dims[][3] = {{3, 5, 2}, {1, 1, 1}, {2, 3, 4},
                                   {4, 1, 3}, {1, 4, 1}, {5, 2, 5}};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    ad_case c = product_case("matmul", dims[i][0], dims[i][1], dims[i][2],
                             build_matmul);
    ad_check(&c, 1 + i);
  }
  /* A x A: both adjoint terms accumulate into one buffer. */
  ad_case c = product_case("matmul self", 3, 3, 3, build_matmul_self);
  c.nin = 1;
  ad_check(&c, 20);
}

static void matvec_adjoints(void **state) {
  (void)state;
  static const size_t dims[][2] = {{3, 5}, {1, 1}, {4, 2}, {1, 3}, {3, 1}};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    ad_case c = product_case("matvec", dims[i][0], dims[i][1], 0, build_matvec);
    ad_check(&c, 31 + i);
  }
}

static void values_are_what_they_should_be(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s23[2] = {2, 3}, s32[2] = {3, 2}, s3[1] = {3};
  const float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12},
              xv[3] = {1, 0, -1};
  tw_tensor *a, *b, *x, *y, *v;
  assert_int_equal(tw_tensor_from(t, TW_F32, 2, s23, av, false, &a, &err),
                   TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F32, 2, s32, bv, true, &b, &err),
                   TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F32, 1, s3, xv, false, &x, &err),
                   TW_OK);
  assert_int_equal(tw_ad_matmul(t, a, b, &y, &err), TW_OK);
  assert_int_equal(y->ndim, 2);
  assert_int_equal(y->shape[0], 2);
  assert_int_equal(y->shape[1], 2);
  const float want[4] = {58, 64, 139, 154};
  assert_memory_equal(y->data, want, sizeof want);
  assert_int_equal(tw_ad_matvec(t, a, x, &v, &err), TW_OK);
  assert_int_equal(v->ndim, 1);
  assert_int_equal(v->shape[0], 2);
  assert_true(((float *)v->data)[0] == -2.0f && ((float *)v->data)[1] == -2.0f);
  /* a and x need no adjoint: only the matmul, whose b does, is recorded;
   * its reverse pass leaves a alone. */
  assert_int_equal(tw_tape_nodes(t), 1);
  float *gy = tw_tensor_grad(t, y, &err);
  gy[0] = 1;
  gy[3] = 2;
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  assert_null(a->grad);
  const float want_gb[6] = {1, 8, 2, 10, 3, 12}; /* a^T G */
  assert_memory_equal(b->grad, want_gb, sizeof want_gb);
  /* Adjoints add up (beta = 1): a second pass doubles them. */
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  for (int k = 0; k < 6; k++)
    assert_true(((float *)b->grad)[k] == 2 * want_gb[k]);
  /* matvec's adjoints too, for both operands. */
  tw_tape_reset(t);
  assert_int_equal(tw_tensor_from(t, TW_F32, 2, s23, av, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F32, 1, s3, xv, true, &x, &err), TW_OK);
  assert_int_equal(tw_ad_matvec(t, a, x, &v, &err), TW_OK);
  float *gv = tw_tensor_grad(t, v, &err);
  gv[0] = 1;
  gv[1] = -2;
  const float want_ga[6] = {1, 0, -1, -2, 0, 2}, /* g x^T */
      want_gx[3] = {-7, -8, -9};                 /* a^T g */
  for (int pass = 1; pass <= 2; pass++) {
    assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
    for (int k = 0; k < 6; k++)
      assert_true(((float *)a->grad)[k] == (float)pass * want_ga[k]);
    for (int k = 0; k < 3; k++)
      assert_true(((float *)x->grad)[k] == (float)pass * want_gx[k]);
  }
#ifndef TW_AD_NO_BLAS
  /* BLAS was switched to one thread before the first call. */
  assert_int_equal(openblas_get_num_threads(), 1);
#endif
  tw_tape_free(t);
}

static void bad_inputs_are_refused(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s23[2] = {2, 3}, s45[2] = {4, 5}, s3[1] = {3}, s4[1] = {4},
         s234[3] = {2, 3, 4};
  tw_tensor *a, *b, *a32, *v3, *v4, *c3, *out;
  assert_int_equal(tw_tensor_new(t, TW_F64, 2, s23, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F64, 2, s45, &b, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F32, 2, s23, &a32, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s3, &v3, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s4, &v4, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F64, 3, s234, &c3, &err), TW_OK);
  a->requires_grad = true;

  EXPECT_ERR(tw_ad_matmul(t, a, b, &out, &err), TW_EINVAL,
             "matmul: inner dimensions differ: [2,3] x [4,5]");
  EXPECT_ERR(tw_ad_matmul(t, a, v3, &out, &err), TW_EINVAL,
             "matmul: expected matrices [m,k] x [k,n], got [2,3] x [3]");
  EXPECT_ERR(tw_ad_matmul(t, c3, a, &out, &err), TW_EINVAL,
             "matmul: expected matrices [m,k] x [k,n], got [2,3,4] x [2,3]");
  EXPECT_ERR(tw_ad_matmul(t, a, a32, &out, &err), TW_ETYPE,
             "matmul: dtype mismatch: f64 and f32");
  EXPECT_ERR(tw_ad_matmul(t, NULL, a, &out, &err), TW_EINVAL,
             "matmul: input is NULL");
  EXPECT_ERR(tw_ad_matmul(t, a, NULL, &out, &err), TW_EINVAL,
             "matmul: input is NULL");
  EXPECT_ERR(tw_ad_matvec(t, a, v4, &out, &err), TW_EINVAL,
             "matvec: inner dimensions differ: [2,3] x [4]");
  EXPECT_ERR(tw_ad_matvec(t, a, a, &out, &err), TW_EINVAL,
             "matvec: expected a matrix [m,n] and a vector [n], got [2,3] x "
             "[2,3]");
  EXPECT_ERR(tw_ad_matvec(t, v3, v3, &out, &err), TW_EINVAL,
             "matvec: expected a matrix [m,n] and a vector [n], got [3] x "
             "[3]");
  EXPECT_ERR(tw_ad_matvec(t, a32, v3, &out, &err), TW_ETYPE,
             "matvec: dtype mismatch: f32 and f64");
  EXPECT_ERR(tw_ad_matvec(t, a, NULL, &out, &err), TW_EINVAL,
             "matvec: input is NULL");
  tw_tape_free(t);
}

/* Fills t (f64 or f32) with a fixed pseudo-random pattern. */
static void fill(tw_tensor *t, unsigned seed) {
  for (size_t k = 0; k < t->size; k++) {
    double v = (double)((k * 2654435761u + seed) % 1000) / 500.0 - 1.0;
    if (t->dtype == TW_F64)
      ((double *)t->data)[k] = v;
    else
      ((float *)t->data)[k] = (float)v;
  }
}

/* Gradients of a and x in loss = sum(matvec(matmul(a, b), x)), with
 * matrices large enough for a multithreaded BLAS to split them. */
static int grads(tw_tape *t, tw_dtype dtype, size_t m, void *ga, void *gx,
                 tw_err *err) {
  size_t sa[2] = {m, m + 13}, sb[2] = {m + 13, m + 7}, sx[1] = {m + 7};
  tw_tensor *a, *b, *x, *ab, *y, *loss;
  int rc = tw_tensor_new(t, dtype, 2, sa, &a, err);
  if (rc == TW_OK)
    rc = tw_tensor_new(t, dtype, 2, sb, &b, err);
  if (rc == TW_OK)
    rc = tw_tensor_new(t, dtype, 1, sx, &x, err);
  if (rc != TW_OK)
    return rc;
  fill(a, 1);
  fill(b, 2);
  fill(x, 3);
  a->requires_grad = b->requires_grad = x->requires_grad = true;
  rc = tw_ad_matmul(t, a, b, &ab, err);
  if (rc == TW_OK)
    rc = tw_ad_matvec(t, ab, x, &y, err);
  if (rc == TW_OK)
    rc = tw_ad_sum(t, y, &loss, err);
  if (rc == TW_OK)
    rc = tw_tape_backward(t, loss, err);
  if (rc == TW_OK && ga != NULL)
    memcpy(ga, a->grad, a->size * tw_dtype_size(dtype));
  if (rc == TW_OK && gx != NULL)
    memcpy(gx, x->grad, x->size * tw_dtype_size(dtype));
  return rc;
}

static void results_are_deterministic(void **state) {
  (void)state;
  enum { M = 150 };
  size_t na = (size_t)M * (M + 13), nx = M + 7;
  tw_dtype dtypes[2] = {TW_F64, TW_F32};
  for (int i = 0; i < 2; i++) {
    size_t es = tw_dtype_size(dtypes[i]);
    void *ga1 = tw_alloc(na * es), *ga2 = tw_alloc(na * es),
         *gx1 = tw_alloc(nx * es), *gx2 = tw_alloc(nx * es);
    assert_true(ga1 && ga2 && gx1 && gx2);
    tw_tape *t;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
    assert_int_equal(grads(t, dtypes[i], M, ga1, gx1, &err), TW_OK);
    tw_tape_reset(t);
    assert_int_equal(grads(t, dtypes[i], M, ga2, gx2, &err), TW_OK);
    assert_memory_equal(ga1, ga2, na * es);
    assert_memory_equal(gx1, gx2, nx * es);
    tw_tape_free(t);
    tw_free(ga1);
    tw_free(ga2);
    tw_free(gx1);
    tw_free(gx2);
  }
}

static int alloc_round(void) {
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_tape_new(256, &t, &err);
  if (rc != TW_OK)
    return rc;
  rc = grads(t, TW_F64, 3, NULL, NULL, &err);
  tw_tape_free(t);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(matmul_adjoints),
      TW_TEST(matvec_adjoints),
      TW_TEST(values_are_what_they_should_be),
      TW_TEST(bad_inputs_are_refused),
      TW_TEST(results_are_deterministic),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
