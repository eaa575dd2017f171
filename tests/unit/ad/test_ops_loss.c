/* test_ops_loss.c - the fused mse and huber losses: adjoints against
 * forward mode and finite differences, values, errors, determinism. */
#include <math.h>
#include <string.h>

#include "ad_check.h"
#include "tw_test.h"
#include "twin/ad.h"

static int build_mse(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                     const void *ud) {
  (void)ud;
  return tw_ad_mse(t, in[0], in[1], out, err);
}

/* ud points to delta. */
static int build_huber(tw_tape *t, tw_tensor **in, tw_tensor **out, tw_err *err,
                       const void *ud) {
  return tw_ad_huber(t, in[0], in[1], *(const double *)ud, out, err);
}

/* Residuals on both sides of delta = 1, of both signs: in[0] (sampled in
 * [1.5, 2.5]) goes to the even positions of p, in[1] (in [-0.6, 0.6]) to
 * the odd positions of q, so p - q = [v0, -w0, v1, -w1, ...] has every
 * |r| at least 0.4 away from delta, far beyond the finite-difference step.
 * ud points to a bool: swap the operands (r = q - p). */
static int build_huber_mixed(tw_tape *t, tw_tensor **in, tw_tensor **out,
                             tw_err *err, const void *ud) {
  static const uint32_t even[3] = {0, 2, 4}, odd[3] = {1, 3, 5};
  bool swap = *(const bool *)ud;
  tw_tensor *p, *q;
  int rc = tw_ad_scatter_add(t, in[0], even, 6, &p, err);
  if (rc == TW_OK)
    rc = tw_ad_scatter_add(t, in[1], odd, 6, &q, err);
  if (rc == TW_OK)
    rc = swap ? tw_ad_huber(t, q, p, 1.0, out, err)
              : tw_ad_huber(t, p, q, 1.0, out, err);
  return rc;
}

/* A two-input case of equal shapes (ndim, shape). */
static ad_case loss_case(const char *name, unsigned ndim, const size_t *shape,
                         double lo0, double hi0, double lo1, double hi1,
                         int (*build)(tw_tape *, tw_tensor **, tw_tensor **,
                                      tw_err *, const void *),
                         const void *ud) {
  ad_case c;
  memset(&c, 0, sizeof c);
  c.name = name;
  c.nin = 2;
  for (unsigned i = 0; i < 2; i++) {
    c.ndim[i] = ndim;
    for (unsigned d = 0; d < ndim; d++)
      c.shape[i][d] = shape[d];
  }
  c.lo[0] = lo0;
  c.hi[0] = hi0;
  c.lo[1] = lo1;
  c.hi[1] = hi1;
  c.build = build;
  c.ud = ud;
  return c;
}

static const size_t s1[1] = {1}, s6[1] = {6}, s23[2] = {2, 3}, s3[1] = {3};

static void mse_adjoints(void **state) {
  (void)state;
  ad_case c = loss_case("mse scalar", 0, NULL, -2, 2, -1, 1, build_mse, NULL);
  ad_check(&c, 1);
  c = loss_case("mse [1]", 1, s1, -2, 2, -1, 1, build_mse, NULL);
  ad_check(&c, 2);
  c = loss_case("mse [6]", 1, s6, -2, 2, -1, 1, build_mse, NULL);
  ad_check(&c, 3);
  c = loss_case("mse [2,3]", 2, s23, -3, 1, -1, 3, build_mse, NULL);
  ad_check(&c, 4);
}

static void huber_adjoints(void **state) {
  (void)state;
  static const double half = 0.5, one = 1.0;
  /* All residuals inside delta (|r| <= 0.4 < 0.5). */
  ad_case c = loss_case("huber inside", 1, s6, -0.2, 0.2, -0.2, 0.2,
                        build_huber, &half);
  ad_check(&c, 11);
  /* All outside, positive (r in [2, 4]) and negative. */
  c = loss_case("huber outside +", 2, s23, 1, 2, -2, -1, build_huber, &half);
  ad_check(&c, 12);
  c = loss_case("huber outside -", 1, s6, -2, -1, 1, 2, build_huber, &one);
  ad_check(&c, 13);
  c = loss_case("huber scalar", 0, NULL, 1, 2, -2, -1, build_huber, &one);
  ad_check(&c, 14);
  c = loss_case("huber [1] inside", 1, s1, -0.2, 0.2, -0.2, 0.2, build_huber,
                &one);
  ad_check(&c, 15);
  /* Both sides of delta in one tensor. */
  static const bool no = false, yes = true;
  c = loss_case("huber mixed", 1, s3, 1.5, 2.5, -0.6, 0.6, build_huber_mixed,
                &no);
  ad_check(&c, 16);
  c = loss_case("huber mixed swapped", 1, s3, 1.5, 2.5, -0.6, 0.6,
                build_huber_mixed, &yes);
  ad_check(&c, 17);
}

static void values_and_gradients_are_exact(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s5[1] = {5}, s3v[1] = {3};
  const double av[5] = {-3, -0.9, 0, 0.5, 3}, zero[5] = {0}, ma[3] = {1, 2, 3},
               mb[3] = {0, 0, 1};
  tw_tensor *a, *b, *y;
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s5, av, true, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s5, zero, true, &b, &err),
                   TW_OK);
  assert_int_equal(tw_ad_huber(t, a, b, 1.0, &y, &err), TW_OK);
  assert_int_equal(y->ndim, 0);
  /* (2.5 + 0.405 + 0 + 0.125 + 2.5) / 5 */
  assert_true(fabs(tw_tensor_get(y, 0) - 1.106) < 1e-15);
  assert_int_equal(tw_tape_nodes(t), 1); /* one fused node */
  /* Adjoints add up: the second pass doubles them. */
  const double want[5] = {-0.2, -0.18, 0, 0.1, 0.2};
  for (int pass = 1; pass <= 2; pass++) {
    assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
    for (int k = 0; k < 5; k++) {
      assert_true(fabs(((double *)a->grad)[k] - pass * want[k]) < 1e-15);
      assert_true(fabs(((double *)b->grad)[k] + pass * want[k]) < 1e-15);
    }
  }
  /* At |r| = delta both branches agree: 0.5 delta^2, slope delta. */
  tw_tape_reset(t);
  const double at[1] = {2}, z1[1] = {0};
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s1, at, true, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s1, z1, false, &b, &err),
                   TW_OK);
  assert_int_equal(tw_ad_huber(t, a, b, 2.0, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == 2.0);
  assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
  assert_true(((double *)a->grad)[0] == 2.0);
  assert_null(b->grad);
  /* mse: r = [1, 2, 2] -> 9 / 3; d/da = 2 r / 3. */
  tw_tape_reset(t);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s3v, ma, true, &a, &err),
                   TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s3v, mb, true, &b, &err),
                   TW_OK);
  assert_int_equal(tw_ad_mse(t, a, b, &y, &err), TW_OK);
  assert_true(tw_tensor_get(y, 0) == 3.0);
  assert_int_equal(tw_tape_nodes(t), 1);
  const double wmse[3] = {2.0 / 3, 4.0 / 3, 4.0 / 3};
  for (int pass = 1; pass <= 2; pass++) {
    assert_int_equal(tw_tape_backward(t, y, &err), TW_OK);
    for (int k = 0; k < 3; k++) {
      assert_true(fabs(((double *)a->grad)[k] - pass * wmse[k]) < 1e-15);
      assert_true(fabs(((double *)b->grad)[k] + pass * wmse[k]) < 1e-15);
    }
  }
  tw_tape_free(t);
}

static void bad_inputs_are_refused(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s4[1] = {4};
  tw_tensor *a, *b, *c, *out;
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s3, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s4, &b, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F32, 1, s3, &c, &err), TW_OK);
  a->requires_grad = true;

  EXPECT_ERR(tw_ad_mse(t, a, b, &out, &err), TW_EINVAL,
             "mse: shape mismatch: [3] and [4]");
  EXPECT_ERR(tw_ad_mse(t, c, a, &out, &err), TW_ETYPE,
             "mse: dtype mismatch: f32 and f64");
  EXPECT_ERR(tw_ad_mse(t, NULL, a, &out, &err), TW_EINVAL,
             "mse: input is NULL");
  EXPECT_ERR(tw_ad_huber(t, a, b, 1.0, &out, &err), TW_EINVAL,
             "huber: shape mismatch: [3] and [4]");
  EXPECT_ERR(tw_ad_huber(t, a, c, 1.0, &out, &err), TW_ETYPE,
             "huber: dtype mismatch: f64 and f32");
  EXPECT_ERR(tw_ad_huber(t, a, NULL, 1.0, &out, &err), TW_EINVAL,
             "huber: input is NULL");
  EXPECT_ERR(tw_ad_huber(t, a, a, 0.0, &out, &err), TW_EINVAL,
             "huber: delta must be positive and finite, got 0");
  EXPECT_ERR(tw_ad_huber(t, a, a, -1.5, &out, &err), TW_EINVAL,
             "huber: delta must be positive and finite, got -1.5");
  EXPECT_ERR(tw_ad_huber(t, a, a, NAN, &out, &err), TW_EINVAL,
             "huber: delta must be positive and finite, got nan");
  EXPECT_ERR(tw_ad_huber(t, a, a, INFINITY, &out, &err), TW_EINVAL,
             "huber: delta must be positive and finite, got inf");
  tw_tape_free(t);
}

/* Gradients of loss = mse([m, 0], [0, h]) = (m^2 + h^2) / 2 with
 * m = mse(a, b) and h = huber(a, b, 0.3), for fixed inputs. */
static int grads(tw_tape *t, tw_dtype dtype, void *ga, void *gb, tw_err *err) {
  static const uint32_t first[1] = {0}, second[1] = {1};
  size_t s7[1] = {7};
  tw_tensor *a, *b, *m, *h, *pm, *ph, *loss;
  int rc = tw_tensor_new(t, dtype, 1, s7, &a, err);
  if (rc == TW_OK)
    rc = tw_tensor_new(t, dtype, 1, s7, &b, err);
  if (rc != TW_OK)
    return rc;
  for (size_t k = 0; k < 7; k++) {
    double va = 0.37 * (double)k - 1.1, vb = 0.5 - 0.21 * (double)(k * k % 5);
    if (dtype == TW_F64) {
      ((double *)a->data)[k] = va;
      ((double *)b->data)[k] = vb;
    } else {
      ((float *)a->data)[k] = (float)va;
      ((float *)b->data)[k] = (float)vb;
    }
  }
  a->requires_grad = b->requires_grad = true;
  rc = tw_ad_mse(t, a, b, &m, err);
  if (rc == TW_OK)
    rc = tw_ad_huber(t, a, b, 0.3, &h, err);
  if (rc == TW_OK)
    rc = tw_ad_scatter_add(t, m, first, 2, &pm, err);
  if (rc == TW_OK)
    rc = tw_ad_scatter_add(t, h, second, 2, &ph, err);
  if (rc == TW_OK)
    rc = tw_ad_mse(t, pm, ph, &loss, err);
  if (rc == TW_OK)
    rc = tw_tape_backward(t, loss, err);
  if (rc == TW_OK && ga != NULL)
    memcpy(ga, a->grad, 7 * tw_dtype_size(dtype));
  if (rc == TW_OK && gb != NULL)
    memcpy(gb, b->grad, 7 * tw_dtype_size(dtype));
  return rc;
}

static void results_are_deterministic(void **state) {
  (void)state;
  tw_dtype dtypes[2] = {TW_F64, TW_F32};
  for (int i = 0; i < 2; i++) {
    double ga1[7], ga2[7], gb1[7], gb2[7];
    tw_tape *t;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
    assert_int_equal(grads(t, dtypes[i], ga1, gb1, &err), TW_OK);
    tw_tape_reset(t);
    assert_int_equal(grads(t, dtypes[i], ga2, gb2, &err), TW_OK);
    assert_memory_equal(ga1, ga2, 7 * tw_dtype_size(dtypes[i]));
    assert_memory_equal(gb1, gb2, 7 * tw_dtype_size(dtypes[i]));
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
  rc = grads(t, TW_F64, NULL, NULL, &err);
  tw_tape_free(t);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(mse_adjoints),
      TW_TEST(huber_adjoints),
      TW_TEST(values_and_gradients_are_exact),
      TW_TEST(bad_inputs_are_refused),
      TW_TEST(results_are_deterministic),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
