/* test_tape.c - tensors, the tape's bookkeeping and the reverse driver. */
#include <math.h>
#include <string.h>

#include "tw_test.h"
#include "twin/ad.h"

static void tensors_have_row_major_layout(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tensor *a;
  size_t shape[3] = {2, 3, 4};
  assert_int_equal(tw_tensor_new(t, TW_F32, 3, shape, &a, &err), TW_OK);
  assert_int_equal(a->size, 24);
  assert_int_equal(a->strides[0], 12);
  assert_int_equal(a->strides[1], 4);
  assert_int_equal(a->strides[2], 1);
  for (size_t i = 0; i < a->size; i++)
    assert_true(((float *)a->data)[i] == 0.0f);
  tw_tensor *s;
  assert_int_equal(tw_tensor_scalar(t, TW_F64, 2.5, &s, &err), TW_OK);
  assert_int_equal(s->ndim, 0);
  assert_int_equal(s->size, 1);
  assert_true(tw_tensor_get(s, 0) == 2.5);
  assert_string_equal(tw_dtype_name(TW_F32), "f32");
  assert_int_equal(tw_dtype_size(TW_F64), 8);
  tw_tape_free(t);
}

static void bad_shapes_are_refused(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  assert_int_equal(tw_tape_new(0, &t, NULL), TW_OK);
  tw_tensor *a = NULL;
  size_t empty[2] = {3, 0};
  tw_err_init(&err);
  assert_int_equal(tw_tensor_new(t, TW_F64, 2, empty, &a, &err), TW_EINVAL);
  assert_string_equal(err.msg, "tensor: dimension 1 is 0 (empty tensors are "
                               "not allowed)");
  size_t five[5] = {1, 1, 1, 1, 1};
  tw_err_init(&err);
  assert_int_equal(tw_tensor_new(t, TW_F64, 5, five, &a, &err), TW_EINVAL);
  size_t huge[2] = {SIZE_MAX / 4, 8};
  tw_err_init(&err);
  assert_int_equal(tw_tensor_new(t, TW_F64, 2, huge, &a, &err), TW_EOVERFLOW);
  tw_err_init(&err);
  assert_int_equal(tw_tensor_new(t, (tw_dtype)7, 0, NULL, &a, &err), TW_ETYPE);
  assert_null(a);
  tw_err_init(&err);
  assert_int_equal(tw_tensor_from(t, TW_F64, 0, NULL, NULL, false, &a, &err),
                   TW_EINVAL);
  tw_tape_free(t);
}

static void reshape_shares_data_and_routes_adjoints(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  double v[6] = {1, 2, 3, 4, 5, 6};
  size_t s6[1] = {6}, s23[2] = {2, 3}, s4[1] = {4};
  tw_tensor *a, *b;
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s6, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_ad_reshape(t, a, 2, s23, &b, &err), TW_OK);
  assert_ptr_equal(a->data, b->data);
  assert_int_equal(b->node, 1);
  assert_true(b->requires_grad);
  double *g = tw_tensor_grad(t, b, &err);
  for (int i = 0; i < 6; i++)
    g[i] = i + 10;
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  for (int i = 0; i < 6; i++)
    assert_true(((double *)a->grad)[i] == i + 10);
  tw_err_init(&err);
  assert_int_equal(tw_ad_reshape(t, a, 1, s4, &b, &err), TW_EINVAL);
  assert_string_equal(err.msg, "reshape: cannot view [6] as [4]");
  tw_tape_free(t);
}

static void wrapped_parameters_accumulate(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  double theta[3] = {1, 2, 3}, grad[3] = {100, 100, 100};
  size_t s3[1] = {3};
  for (int step = 0; step < 2; step++) {
    tw_tensor *p, *v;
    assert_int_equal(tw_tensor_wrap(t, TW_F64, 1, s3, theta, grad, &p, &err),
                     TW_OK);
    assert_true(p->requires_grad);
    assert_int_equal(tw_ad_reshape(t, p, 1, s3, &v, &err), TW_OK);
    double *g = tw_tensor_grad(t, v, &err);
    g[0] = 1;
    g[1] = 2;
    g[2] = 3;
    assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
    tw_tape_reset(t);
    assert_int_equal(tw_tape_nodes(t), 0);
  }
  assert_true(grad[0] == 102 && grad[1] == 104 && grad[2] == 106);
  tw_tape_free(t);
}

static void recording_off_records_nothing(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tape_set_recording(t, false);
  double v[2] = {1, 2};
  size_t s2[1] = {2};
  tw_tensor *a, *b;
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s2, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_ad_reshape(t, a, 1, s2, &b, &err), TW_OK);
  assert_int_equal(tw_tape_nodes(t), 0);
  assert_int_equal(b->node, 0);
  tw_tape_free(t);
}

static void backward_needs_a_scalar_that_depends_on_something(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tensor *s, *v;
  size_t s2[1] = {2};
  assert_int_equal(tw_tensor_scalar(t, TW_F64, 1, &s, &err), TW_OK);
  assert_int_equal(tw_tape_backward(t, s, &err), TW_EINVAL);
  assert_string_equal(err.msg, "backward: the loss does not depend on any "
                               "tensor that requires grad");
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s2, &v, &err), TW_OK);
  tw_err_init(&err);
  assert_int_equal(tw_tape_backward(t, v, &err), TW_EINVAL);
  assert_string_equal(err.msg, "backward: the loss must be a scalar tensor");
  tw_tape_free(t);
}

static void reset_reuses_memory(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(4096, &t, &err), TW_OK);
  size_t s[1] = {100};
  double v[100] = {0};
  for (int step = 0; step < 5; step++) {
    unsigned long calls = tw_alloc_calls();
    for (int i = 0; i < 20; i++) {
      tw_tensor *a, *b;
      assert_int_equal(tw_tensor_from(t, TW_F64, 1, s, v, true, &a, &err),
                       TW_OK);
      assert_int_equal(tw_ad_reshape(t, a, 1, s, &b, &err), TW_OK);
    }
    if (step > 1) /* warmed up: the arena and node array are reused */
      assert_int_equal(tw_alloc_calls(), calls);
    assert_true(tw_tape_bytes(t) > 20 * 800);
    tw_tape_reset(t);
    assert_int_equal(tw_tape_bytes(t), 0);
  }
  assert_true(tw_tape_peak_bytes(t) >= 20 * 800);
  tw_tape_free(t);
}

static void check_finite_names_context(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  tw_tape_set_check_finite(t, true);
  tw_tape_set_context(t, "spring", 17);
  double v[3] = {1, NAN, 3};
  size_t s3[1] = {3};
  tw_tensor *a, *b;
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s3, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_ad_reshape(t, a, 1, s3, &b, &err), TW_ENUMERIC);
  assert_string_equal(err.msg,
                      "reshape: NaN value at element 1 (block 'spring', step "
                      "17)");
  tw_tape_free(t);
}

static int alloc_round(void) {
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_tape_new(256, &t, &err);
  if (rc != TW_OK)
    return rc;
  double v[40] = {0};
  size_t s[1] = {40};
  tw_tensor *a = NULL, *b = NULL;
  for (int i = 0; i < 300 && rc == TW_OK; i++) {
    rc = tw_tensor_from(t, TW_F64, 1, s, v, true, &a, &err);
    if (rc == TW_OK)
      rc = tw_ad_reshape(t, a, 1, s, &b, &err);
  }
  if (rc == TW_OK && tw_tensor_grad(t, b, &err) == NULL)
    rc = TW_ENOMEM;
  if (rc == TW_OK)
    rc = tw_tape_reverse(t, &err);
  tw_tape_free(t);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(tensors_have_row_major_layout),
      TW_TEST(bad_shapes_are_refused),
      TW_TEST(reshape_shares_data_and_routes_adjoints),
      TW_TEST(wrapped_parameters_accumulate),
      TW_TEST(recording_off_records_nothing),
      TW_TEST(backward_needs_a_scalar_that_depends_on_something),
      TW_TEST(reset_reuses_memory),
      TW_TEST(check_finite_names_context),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
