/* test_ops_reduce.c - sum, mean, dot, norm and broadcast: adjoints against
 * forward mode and finite differences, values, errors, determinism. */
#include <math.h>
#include <string.h>

#include "ad_check.h"
#include "tw_test.h"
#include "twin/ad.h"

/* Target shape of a broadcast case, passed through ad_case.ud. */
typedef struct target {
  unsigned ndim;
  size_t shape[TW_AD_MAX_DIMS];
} target;

static int build_sum(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                     const void *ud) {
  (void)ud;
  return tw_ad_sum(t, in[0], out, err);
}

static int build_mean(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                      const void *ud) {
  (void)ud;
  return tw_ad_mean(t, in[0], out, err);
}

static int build_dot(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                     const void *ud) {
  (void)ud;
  return tw_ad_dot(t, in[0], in[1], out, err);
}

static int build_dot_self(tw_tape *t, tw_tensor **in, tw_tensor **out,
                          tw_err *err, const void *ud) {
  (void)ud;
  return tw_ad_dot(t, in[0], in[0], out, err);
}

static int build_norm(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                      const void *ud) {
  (void)ud;
  return tw_ad_norm(t, in[0], out, err);
}

static int build_broadcast(tw_tape *t, tw_tensor **in, tw_tensor **out,
                           tw_err *err, const void *ud) {
  const target *to = ud;
  return tw_ad_broadcast(t, in[0], to->ndim, to->shape, out, err);
}

/* A one-input case of shape (ndim, shape) sampled in [lo, hi]. */
static ad_case case1(const char *name, unsigned ndim, const size_t *shape,
                     double lo, double hi,
                     int (*build)(tw_tape *, tw_tensor **, tw_tensor **,
                                  tw_err *, const void *)) {
  ad_case c;
  memset(&c, 0, sizeof c);
  c.name = name;
  c.nin = 1;
  c.ndim[0] = ndim;
  for (unsigned d = 0; d < ndim; d++)
    c.shape[0][d] = shape[d];
  c.lo[0] = lo;
  c.hi[0] = hi;
  c.build = build;
  return c;
}

static const size_t s1[1] = {1}, s7[1] = {7}, s34[2] = {3, 4},
                    s234[3] = {2, 3, 4}, s1111[4] = {1, 1, 1, 1};

static void sum_and_mean_adjoints(void **state) {
  (void)state;
  struct {
    unsigned ndim;
    const size_t *shape;
  } shapes[] = {{0, NULL}, {1, s1}, {1, s7}, {2, s34}, {3, s234}, {4, s1111}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    ad_case c = case1("sum", shapes[i].ndim, shapes[i].shape, -2, 2, build_sum);
    ad_check(&c, 11 + i);
    c = case1("mean", shapes[i].ndim, shapes[i].shape, -2, 2, build_mean);
    ad_check(&c, 31 + i);
  }
}

static void dot_adjoints(void **state) {
  (void)state;
  struct {
    unsigned ndim;
    const size_t *shape;
  } shapes[] = {{0, NULL}, {1, s1}, {1, s7}, {2, s34}, {3, s234}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    ad_case c = case1("dot", shapes[i].ndim, shapes[i].shape, -2, 2, build_dot);
    c.nin = 2;
    c.ndim[1] = c.ndim[0];
    memcpy(c.shape[1], c.shape[0], sizeof c.shape[0]);
    c.lo[1] = -3;
    c.hi[1] = 1;
    ad_check(&c, 51 + i);
    /* dot(a, a): both adjoint terms land in one buffer. */
    c = case1("dot self", shapes[i].ndim, shapes[i].shape, -2, 2,
              build_dot_self);
    ad_check(&c, 71 + i);
  }
}

static void norm_adjoints(void **state) {
  (void)state;
  /* Samples stay away from norm 0, where the norm is not smooth. */
  ad_case c = case1("norm scalar", 0, NULL, 0.5, 2, build_norm);
  ad_check(&c, 91);
  c = case1("norm [1] negative", 1, s1, -2, -0.5, build_norm);
  ad_check(&c, 92);
  c = case1("norm [7]", 1, s7, -2, 2, build_norm);
  ad_check(&c, 93);
  c = case1("norm [3,4]", 2, s34, -2, 2, build_norm);
  ad_check(&c, 94);
  c = case1("norm [2,3,4]", 3, s234, -1, 3, build_norm);
  ad_check(&c, 95);
}

static void norm_gradient_at_zero_is_zero(void **state) {
  (void)state;
  tw_dtype dtypes[2] = {TW_F64, TW_F32};
  for (int i = 0; i < 2; i++) {
    tw_tape *t;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
    tw_tape_set_check_finite(t, true);
    size_t s3[1] = {3};
    tw_tensor *a, *y;
    assert_int_equal(tw_tensor_new(t, dtypes[i], 1, s3, &a, &err), TW_OK);
    a->requires_grad = true;
    void *da = tw_tensor_tangent(t, a, &err);
    assert_non_null(da);
    for (size_t k = 0; k < 3; k++) {
      if (dtypes[i] == TW_F64)
        ((double *)da)[k] = 1.0;
      else
        ((float *)da)[k] = 1.0f;
    }
    assert_int_equal(tw_ad_norm(t, a, &y, &err), TW_OK);
    assert_true(tw_tensor_get(y, 0) == 0.0);
    assert_true((dtypes[i] == TW_F64 ? *(double *)y->tangent
                                     : (double)*(float *)y->tangent) == 0.0);
    assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
    assert_non_null(a->grad);
    for (size_t k = 0; k < 3; k++) {
      double g = dtypes[i] == TW_F64 ? ((double *)a->grad)[k]
                                     : (double)((float *)a->grad)[k];
      assert_true(g == 0.0);
    }
    tw_tape_free(t);
  }
}

static void norm_neither_overflows_nor_underflows(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s2[1] = {2};
  double big[2] = {3e200, -4e200}, tiny[2] = {3e-200, 4e-200},
         sub[2] = {3e-320, 4e-320}, plain[2] = {3, 4};
  tw_tensor *a, *y;
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s2, big, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_ad_norm(t, a, &y, &err), TW_OK);
  assert_true(fabs(tw_tensor_get(y, 0) - 5e200) <= 1e-15 * 5e200);
  assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
  assert_true(fabs(((double *)a->grad)[0] - 0.6) < 1e-15);
  assert_true(fabs(((double *)a->grad)[1] + 0.8) < 1e-15);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s2, tiny, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_ad_norm(t, a, &y, &err), TW_OK);
  assert_true(fabs(tw_tensor_get(y, 0) - 5e-200) <= 1e-15 * 5e-200);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s2, sub, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_ad_norm(t, a, &y, &err), TW_OK);
  assert_true(fabs(tw_tensor_get(y, 0) - 5e-320) <= 1e-3 * 5e-320);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s2, plain, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_ad_norm(t, a, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == 5.0);
  tw_tape_free(t);
}

/* Runs the reverse pass from y twice: a's adjoint must be want after the
 * first and exactly twice want after the second (adjoints add up). */
static void backward_twice(tw_tape *t, tw_tensor *y, const tw_tensor *a,
                           const double *want) {
  tw_err err;
  tw_err_init(&err);
  for (int pass = 1; pass <= 2; pass++) {
    assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
    for (size_t k = 0; k < a->size; k++)
      assert_true(((double *)a->grad)[k] == pass * want[k]);
  }
}

static void values_are_what_they_should_be(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s4[1] = {4};
  const double v[4] = {1, 2, 3, 4}, w[4] = {-1, 0.5, 2, 1},
               ones[4] = {1, 1, 1, 1}, quarters[4] = {0.25, 0.25, 0.25, 0.25},
               nv[4] = {1 / sqrt(30), 2 / sqrt(30), 3 / sqrt(30), 4 / sqrt(30)};
  tw_tensor *a, *b, *y;
  /* One tape per operator, so each reverse pass runs only that node. */
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_ad_sum(t, a, &y, &err), TW_OK);
  assert_int_equal(y->ndim, 0);
  assert_true(tw_tensor_get(y, 0) == 10);
  assert_int_equal(tw_tape_nodes(t), 1);
  backward_twice(t, y, a, ones);
  tw_tape_reset(t);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_ad_mean(t, a, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == 2.5);
  backward_twice(t, y, a, quarters);
  tw_tape_reset(t);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_ad_norm(t, a, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == sqrt(30));
  backward_twice(t, y, a, nv);
  tw_tape_reset(t);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, w, false, &b, &err), TW_OK);
  assert_int_equal(tw_ad_dot(t, a, b, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == -1 + 1 + 6 + 4);
  /* Only a requires grad: b gets no adjoint. */
  backward_twice(t, y, a, w);
  assert_null(b->grad);
  tw_tape_free(t);
}

static void f32_sums_accumulate_in_double(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  /* 1e8 + 1000 ones: a float accumulator stays at 1e8 (its spacing there
   * is 8); a double one gets 100001000, which a float holds exactly. */
  enum { N = 1001 };
  float v[N];
  v[0] = 1e8f;
  for (int i = 1; i < N; i++)
    v[i] = 1.0f;
  size_t s[1] = {N};
  tw_tensor *a, *y;
  assert_int_equal(tw_tensor_from(t, TW_F32, 1, s, v, false, &a, &err), TW_OK);
  assert_int_equal(tw_ad_sum(t, a, &y, &err), TW_OK);
  assert_true(*(float *)y->data == 100001000.0f);
  assert_int_equal(tw_ad_dot(t, a, a, &y, &err), TW_OK);
  assert_true(*(float *)y->data == (float)(1e16 + 1000.0));
  tw_tape_free(t);
}

static void broadcast_adjoints(void **state) {
  (void)state;
  static const struct {
    const char *name;
    unsigned ndim;
    size_t shape[TW_AD_MAX_DIMS];
    target to;
  } cases[] = {
      {"broadcast [3] to [4,3]", 1, {3}, {2, {4, 3}}},
      {"broadcast [4,1] to [4,3]", 2, {4, 1}, {2, {4, 3}}},
      {"broadcast scalar to [2,2]", 0, {0}, {2, {2, 2}}},
      {"broadcast scalar to scalar", 0, {0}, {0, {0}}},
      {"broadcast [1] to [5]", 1, {1}, {1, {5}}},
      {"broadcast [3] to [3]", 1, {3}, {1, {3}}},
      {"broadcast [2,1,3] to [2,4,3]", 3, {2, 1, 3}, {3, {2, 4, 3}}},
      {"broadcast [1,3,1] to [2,2,3,2]", 3, {1, 3, 1}, {4, {2, 2, 3, 2}}},
      {"broadcast [1,1] to [1,3]", 2, {1, 1}, {2, {1, 3}}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ad_case c = case1(cases[i].name, cases[i].ndim, cases[i].shape, -2, 2,
                      build_broadcast);
    c.ud = &cases[i].to;
    ad_check(&c, 101 + i);
  }
}

static void broadcast_copies_and_sums(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s21[2] = {2, 1}, s3[1] = {3}, s23[2] = {2, 3};
  double col[2] = {1, 2}, row[3] = {10, 20, 30};
  tw_tensor *a, *b, *ya, *yb;
  assert_int_equal(tw_tensor_from(t, TW_F64, 2, s21, col, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s3, row, true, &b, &err),
                   TW_OK);
  assert_int_equal(tw_ad_broadcast(t, a, 2, s23, &ya, &err), TW_OK);
  assert_int_equal(tw_ad_broadcast(t, b, 2, s23, &yb, &err), TW_OK);
  const double want_a[6] = {1, 1, 1, 2, 2, 2},
               want_b[6] = {10, 20, 30, 10, 20, 30};
  assert_memory_equal(ya->data, want_a, sizeof want_a);
  assert_memory_equal(yb->data, want_b, sizeof want_b);
  double *ga = tw_tensor_grad(t, ya, &err), *gb = tw_tensor_grad(t, yb, &err);
  for (int k = 0; k < 6; k++)
    ga[k] = gb[k] = k + 1; /* [[1,2,3],[4,5,6]] */
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  const double sum_rows[2] = {6, 15}, sum_cols[3] = {5, 7, 9};
  assert_memory_equal(a->grad, sum_rows, sizeof sum_rows);
  assert_memory_equal(b->grad, sum_cols, sizeof sum_cols);
  /* Adjoints add up: a second pass doubles them. */
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  const double twice_rows[2] = {12, 30}, twice_cols[3] = {10, 14, 18};
  assert_memory_equal(a->grad, twice_rows, sizeof twice_rows);
  assert_memory_equal(b->grad, twice_cols, sizeof twice_cols);
  tw_tape_free(t);
}

static void bad_inputs_are_refused(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s3[1] = {3}, s4[1] = {4}, s24[2] = {2, 4}, s23[2] = {2, 3},
         s203[3] = {2, 0, 3}, s5[5] = {1, 1, 1, 1, 3},
         huge[2] = {SIZE_MAX / 2, 3};
  tw_tensor *a, *b, *c, *out;
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s3, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F32, 1, s3, &b, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s4, &c, &err), TW_OK);
  a->requires_grad = true;

  EXPECT_ERR(tw_ad_sum(t, NULL, &out, &err), TW_EINVAL, "sum: input is NULL");
  EXPECT_ERR(tw_ad_mean(t, NULL, &out, &err), TW_EINVAL, "mean: input is NULL");
  EXPECT_ERR(tw_ad_norm(t, NULL, &out, &err), TW_EINVAL, "norm: input is NULL");
  EXPECT_ERR(tw_ad_dot(t, a, NULL, &out, &err), TW_EINVAL,
             "dot: input is NULL");
  EXPECT_ERR(tw_ad_dot(t, a, b, &out, &err), TW_ETYPE,
             "dot: dtype mismatch: f64 and f32");
  EXPECT_ERR(tw_ad_dot(t, a, c, &out, &err), TW_EINVAL,
             "dot: shape mismatch: [3] and [4]");

  EXPECT_ERR(tw_ad_broadcast(t, NULL, 1, s3, &out, &err), TW_EINVAL,
             "broadcast: input is NULL");
  EXPECT_ERR(tw_ad_broadcast(t, a, 2, s24, &out, &err), TW_EINVAL,
             "broadcast: cannot broadcast [3] to [2,4]");
  EXPECT_ERR(tw_ad_broadcast(t, c, 1, s3, &out, &err), TW_EINVAL,
             "broadcast: cannot broadcast [4] to [3]");
  tw_tensor *m;
  assert_int_equal(tw_tensor_new(t, TW_F64, 2, s23, &m, &err), TW_OK);
  EXPECT_ERR(tw_ad_broadcast(t, m, 1, s3, &out, &err), TW_EINVAL,
             "broadcast: cannot broadcast [2,3] to [3]");
  EXPECT_ERR(tw_ad_broadcast(t, m, 0, NULL, &out, &err), TW_EINVAL,
             "broadcast: cannot broadcast [2,3] to []");
  EXPECT_ERR(tw_ad_broadcast(t, a, 3, s203, &out, &err), TW_EINVAL,
             "broadcast: dimension 1 of [2,0,3] is 0 (empty tensors are not "
             "allowed)");
  EXPECT_ERR(tw_ad_broadcast(t, a, 5, s5, &out, &err), TW_EINVAL,
             "broadcast: 5 dimensions, at most 4");
  EXPECT_ERR(tw_ad_broadcast(t, a, 2, NULL, &out, &err), TW_EINVAL,
             "broadcast: shape is NULL");
  EXPECT_ERR(tw_ad_broadcast(t, a, 2, huge, &out, &err), TW_EOVERFLOW,
             "broadcast: size of [9223372036854775807,3] overflows");
  tw_tape_free(t);
}

/* The gradient of a small graph through every operator of this file:
 * b = broadcast(a, [4,5]), d = <broadcast(norm(b)), b>, e = <mean(b), a>,
 * loss = sum(<broadcast(d, [5]), broadcast(e, [5])>). */
static int grads(tw_tape *t, tw_dtype dtype, const double *x, void *gx,
                 tw_err *err) {
  size_t s5[1] = {5}, s45[2] = {4, 5}, s41[2] = {4, 1};
  tw_tensor *a, *b, *n, *col, *nb, *d, *m, *mb, *e, *db, *eb, *de, *loss;
  int rc = tw_tensor_new(t, dtype, 1, s5, &a, err);
  if (rc != TW_OK)
    return rc;
  for (size_t k = 0; k < 5; k++) {
    if (dtype == TW_F64)
      ((double *)a->data)[k] = x[k];
    else
      ((float *)a->data)[k] = (float)x[k];
  }
  a->requires_grad = true;
  rc = tw_ad_broadcast(t, a, 2, s45, &b, err);
  if (rc == TW_OK)
    rc = tw_ad_norm(t, b, &n, err);
  if (rc == TW_OK)
    rc = tw_ad_broadcast(t, n, 2, s41, &col, err);
  if (rc == TW_OK)
    rc = tw_ad_broadcast(t, col, 2, s45, &nb, err);
  if (rc == TW_OK)
    rc = tw_ad_dot(t, nb, b, &d, err);
  if (rc == TW_OK)
    rc = tw_ad_mean(t, b, &m, err);
  if (rc == TW_OK)
    rc = tw_ad_broadcast(t, m, 1, s5, &mb, err);
  if (rc == TW_OK)
    rc = tw_ad_dot(t, mb, a, &e, err);
  if (rc == TW_OK)
    rc = tw_ad_broadcast(t, d, 1, s5, &db, err);
  if (rc == TW_OK)
    rc = tw_ad_broadcast(t, e, 1, s5, &eb, err);
  if (rc == TW_OK)
    rc = tw_ad_dot(t, db, eb, &de, err);
  if (rc == TW_OK)
    rc = tw_ad_sum(t, de, &loss, err);
  if (rc == TW_OK)
    rc = tw_tape_backward(t, loss, err);
  if (rc == TW_OK && gx != NULL)
    memcpy(gx, a->grad, 5 * tw_dtype_size(dtype));
  return rc;
}

static void results_are_deterministic(void **state) {
  (void)state;
  const double x[5] = {0.3, -1.7, 2.2, 0.01, -0.9};
  tw_dtype dtypes[2] = {TW_F64, TW_F32};
  for (int i = 0; i < 2; i++) {
    double g1[5], g2[5]; /* large enough for either dtype */
    tw_tape *t;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
    assert_int_equal(grads(t, dtypes[i], x, g1, &err), TW_OK);
    tw_tape_reset(t);
    assert_int_equal(grads(t, dtypes[i], x, g2, &err), TW_OK);
    assert_memory_equal(g1, g2, 5 * tw_dtype_size(dtypes[i]));
    tw_tape_free(t);
  }
}

static int alloc_round(void) {
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_tape_new(256, &t, &err);
  if (rc != TW_OK)
    return rc;
  const double x[5] = {0.3, -1.7, 2.2, 0.01, -0.9};
  rc = grads(t, TW_F64, x, NULL, &err);
  tw_tape_free(t);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(sum_and_mean_adjoints),
      TW_TEST(dot_adjoints),
      TW_TEST(norm_adjoints),
      TW_TEST(norm_gradient_at_zero_is_zero),
      TW_TEST(norm_neither_overflows_nor_underflows),
      TW_TEST(values_are_what_they_should_be),
      TW_TEST(f32_sums_accumulate_in_double),
      TW_TEST(broadcast_adjoints),
      TW_TEST(broadcast_copies_and_sums),
      TW_TEST(bad_inputs_are_refused),
      TW_TEST(results_are_deterministic),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
