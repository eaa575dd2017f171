/* test_ops_index.c - gather and scatter_add: adjoints against forward mode
 * and finite differences, repeated indices, errors, determinism. */
#include <string.h>

#include "ad_check.h"
#include "tw_test.h"
#include "twin/ad.h"

/* Indices of a case, passed through ad_case.ud: n of them, and for
 * scatter_add the output size. */
typedef struct indices {
  const uint32_t *idx;
  size_t n;
} indices;

static int build_gather(tw_tape *t, tw_tensor **in, tw_tensor **out,
                        tw_err *err, const void *ud) {
  const indices *ix = ud;
  return tw_ad_gather(t, in[0], ix->idx, ix->n, out, err);
}

static int build_scatter(tw_tape *t, tw_tensor **in, tw_tensor **out,
                         tw_err *err, const void *ud) {
  const indices *ix = ud;
  return tw_ad_scatter_add(t, in[0], ix->idx, ix->n, out, err);
}

/* gather then scatter_add back: a composition of both adjoints. */
static int build_round_trip(tw_tape *t, tw_tensor **in, tw_tensor **out,
                            tw_err *err, const void *ud) {
  const indices *ix = ud;
  tw_tensor *g;
  int rc = tw_ad_gather(t, in[0], ix->idx, ix->n, &g, err);
  if (rc == TW_OK)
    rc = tw_ad_scatter_add(t, g, ix->idx, in[0]->size, out, err);
  return rc;
}

static ad_case index_case(const char *name, unsigned ndim, const size_t *shape,
                          const indices *ix,
                          int (*build)(tw_tape *, tw_tensor **, tw_tensor **,
                                       tw_err *, const void *)) {
  ad_case c;
  memset(&c, 0, sizeof c);
  c.name = name;
  c.nin = 1;
  c.ndim[0] = ndim;
  for (unsigned d = 0; d < ndim; d++)
    c.shape[0][d] = shape[d];
  c.lo[0] = -2;
  c.hi[0] = 2;
  c.build = build;
  c.ud = ix;
  return c;
}

static void gather_adjoints(void **state) {
  (void)state;
  static const uint32_t rep[5] = {2, 0, 2, 4, 2}, one[1] = {0},
                        many[9] = {5, 0, 5, 1, 5, 2, 3, 4, 5},
                        perm[6] = {5, 4, 3, 2, 1, 0};
  const indices i_rep = {rep, 5}, i_one = {one, 1}, i_many = {many, 9},
                i_perm = {perm, 6}, i_zero = {one, 1};
  size_t s5[1] = {5}, s1[1] = {1}, s23[2] = {2, 3};
  ad_case c = index_case("gather repeated", 1, s5, &i_rep, build_gather);
  ad_check(&c, 1);
  c = index_case("gather [1]", 1, s1, &i_one, build_gather);
  ad_check(&c, 2);
  c = index_case("gather scalar", 0, NULL, &i_zero, build_gather);
  ad_check(&c, 3);
  c = index_case("gather [2,3] n > size", 2, s23, &i_many, build_gather);
  ad_check(&c, 4);
  c = index_case("gather permutation", 2, s23, &i_perm, build_gather);
  ad_check(&c, 5);
  c = index_case("gather round trip", 1, s5, &i_rep, build_round_trip);
  ad_check(&c, 6);
}

static void scatter_adjoints(void **state) {
  (void)state;
  static const uint32_t rep[5] = {1, 1, 0, 3, 1}, zero[1] = {0},
                        six[6] = {1, 0, 1, 1, 0, 1},
                        spread[6] = {6, 0, 2, 6, 2, 3};
  const indices i_rep = {rep, 4}, i_one = {zero, 1}, i_two = {six, 2},
                i_wide = {spread, 7}, i_big = {zero, 3};
  size_t s5[1] = {5}, s1[1] = {1}, s23[2] = {2, 3};
  ad_case c = index_case("scatter repeated", 1, s5, &i_rep, build_scatter);
  ad_check(&c, 11);
  c = index_case("scatter [1]", 1, s1, &i_one, build_scatter);
  ad_check(&c, 12);
  c = index_case("scatter scalar to [3]", 0, NULL, &i_big, build_scatter);
  ad_check(&c, 13);
  c = index_case("scatter [2,3] to [2]", 2, s23, &i_two, build_scatter);
  ad_check(&c, 14);
  c = index_case("scatter [2,3] to [7]", 2, s23, &i_wide, build_scatter);
  ad_check(&c, 15);
}

static void repeated_indices_accumulate(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s4[1] = {4};
  double v[4] = {1, 2, 3, 4};
  uint32_t gi[6] = {3, 0, 3, 3, 1, 0}, si[4] = {2, 0, 2, 2};
  tw_tensor *a, *b, *g, *s;
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, v, true, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_from(t, TW_F64, 1, s4, v, true, &b, &err), TW_OK);
  assert_int_equal(tw_ad_gather(t, a, gi, 6, &g, &err), TW_OK);
  assert_int_equal(tw_ad_scatter_add(t, b, si, 3, &s, &err), TW_OK);
  assert_int_equal(g->ndim, 1);
  assert_int_equal(g->shape[0], 6);
  assert_int_equal(s->shape[0], 3);
  const double want_g[6] = {4, 1, 4, 4, 2, 1}, want_s[3] = {2, 0, 8};
  assert_memory_equal(g->data, want_g, sizeof want_g);
  assert_memory_equal(s->data, want_s, sizeof want_s);
  /* The tape keeps its own copy of the indices: the caller's arrays may
   * change right after the call. */
  memset(gi, 0, sizeof gi);
  memset(si, 0, sizeof si);
  double *gg = tw_tensor_grad(t, g, &err), *gs = tw_tensor_grad(t, s, &err);
  for (int k = 0; k < 6; k++)
    gg[k] = k + 1;
  for (int k = 0; k < 3; k++)
    gs[k] = 10 * (k + 1);
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  const double want_ga[4] = {2 + 6, 5, 0, 1 + 3 + 4},
               want_gb[4] = {30, 10, 30, 30};
  assert_memory_equal(a->grad, want_ga, sizeof want_ga);
  assert_memory_equal(b->grad, want_gb, sizeof want_gb);
  /* Adjoints add up: a second pass doubles them. */
  assert_int_equal(tw_tape_reverse(t, &err), TW_OK);
  for (int k = 0; k < 4; k++) {
    assert_true(((double *)a->grad)[k] == 2 * want_ga[k]);
    assert_true(((double *)b->grad)[k] == 2 * want_gb[k]);
  }
  tw_tape_free(t);
}

static void nothing_is_saved_without_a_node(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s4[1] = {4};
  uint32_t idx[2] = {3, 1};
  tw_tensor *a, *g;
  float f[4] = {1, 2, 3, 4};
  assert_int_equal(tw_tensor_from(t, TW_F32, 1, s4, f, false, &a, &err), TW_OK);
  size_t before = tw_tape_bytes(t);
  assert_int_equal(tw_ad_gather(t, a, idx, 2, &g, &err), TW_OK);
  assert_int_equal(tw_tape_nodes(t), 0);
  assert_false(g->requires_grad);
  assert_true(((float *)g->data)[0] == 4.0f && ((float *)g->data)[1] == 2.0f);
  /* Only the output tensor was allocated, no index copy. */
  tw_tensor *h;
  size_t one_gather = tw_tape_bytes(t) - before;
  before = tw_tape_bytes(t);
  a->requires_grad = true;
  assert_int_equal(tw_ad_gather(t, a, idx, 2, &h, &err), TW_OK);
  assert_int_equal(tw_tape_nodes(t), 1);
  assert_true(tw_tape_bytes(t) - before > one_gather);
  tw_tape_free(t);
}

static void bad_inputs_are_refused(void **state) {
  (void)state;
  tw_tape *t;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
  size_t s5[1] = {5}, s4[1] = {4};
  tw_tensor *a, *b, *out;
  assert_int_equal(tw_tensor_new(t, TW_F64, 1, s5, &a, &err), TW_OK);
  assert_int_equal(tw_tensor_new(t, TW_F32, 1, s4, &b, &err), TW_OK);
  a->requires_grad = b->requires_grad = true;
  const uint32_t bad[3] = {0, 4, 9}, bad_s[4] = {0, 7, 1, 2},
                 last[4] = {0, 1, 2, 4};

  EXPECT_ERR(tw_ad_gather(t, a, bad, 3, &out, &err), TW_ERANGE,
             "gather: index 9 at position 2 is out of range for 5 elements");
  EXPECT_ERR(tw_ad_gather(t, a, bad, 0, &out, &err), TW_EINVAL,
             "gather: n is 0 (empty tensors are not allowed)");
  EXPECT_ERR(tw_ad_gather(t, a, NULL, 3, &out, &err), TW_EINVAL,
             "gather: idx is NULL");
  EXPECT_ERR(tw_ad_gather(t, NULL, bad, 3, &out, &err), TW_EINVAL,
             "gather: input is NULL");
  EXPECT_ERR(tw_ad_scatter_add(t, b, bad_s, 5, &out, &err), TW_ERANGE,
             "scatter_add: index 7 at position 1 is out of range for 5 "
             "elements");
  EXPECT_ERR(tw_ad_scatter_add(t, b, last, 4, &out, &err), TW_ERANGE,
             "scatter_add: index 4 at position 3 is out of range for 4 "
             "elements");
  EXPECT_ERR(tw_ad_scatter_add(t, b, last, 0, &out, &err), TW_EINVAL,
             "scatter_add: size is 0 (empty tensors are not allowed)");
  EXPECT_ERR(tw_ad_scatter_add(t, b, NULL, 5, &out, &err), TW_EINVAL,
             "scatter_add: idx is NULL");
  EXPECT_ERR(tw_ad_scatter_add(t, NULL, last, 5, &out, &err), TW_EINVAL,
             "scatter_add: input is NULL");
  /* The boundary itself is fine. */
  assert_int_equal(tw_ad_scatter_add(t, b, last, 5, &out, &err), TW_OK);
  tw_tape_free(t);
}

/* The gradient of loss = <gather(scatter_add(gather(a))), w> with repeated
 * indices at every stage and a fixed weight vector w. */
static int grads(tw_tape *t, tw_dtype dtype, void *gx, tw_err *err) {
  static const uint32_t gi[8] = {0, 3, 3, 1, 3, 2, 0, 3},
                        si[8] = {2, 2, 0, 1, 2, 0, 2, 2}, g2[4] = {2, 2, 0, 1};
  static const double wv[4] = {1.0 / 3, 0.25, -0.2, 1.0 / 7};
  size_t s4[1] = {4};
  tw_tensor *a, *w, *g, *s, *y, *loss;
  int rc = tw_tensor_new(t, dtype, 1, s4, &a, err);
  if (rc == TW_OK)
    rc = tw_tensor_new(t, dtype, 1, s4, &w, err);
  if (rc != TW_OK)
    return rc;
  for (size_t k = 0; k < 4; k++) {
    if (dtype == TW_F64) {
      ((double *)a->data)[k] = 0.1 * (double)k - 0.7;
      ((double *)w->data)[k] = wv[k];
    } else {
      ((float *)a->data)[k] = 0.1f * (float)k - 0.7f;
      ((float *)w->data)[k] = (float)wv[k];
    }
  }
  a->requires_grad = true;
  rc = tw_ad_gather(t, a, gi, 8, &g, err);
  if (rc == TW_OK)
    rc = tw_ad_scatter_add(t, g, si, 3, &s, err);
  if (rc == TW_OK)
    rc = tw_ad_gather(t, s, g2, 4, &y, err);
  if (rc == TW_OK)
    rc = tw_ad_dot(t, y, w, &loss, err);
  if (rc == TW_OK)
    rc = tw_tape_backward(t, loss, err);
  if (rc == TW_OK && gx != NULL)
    memcpy(gx, a->grad, 4 * tw_dtype_size(dtype));
  return rc;
}

static void results_are_deterministic(void **state) {
  (void)state;
  tw_dtype dtypes[2] = {TW_F64, TW_F32};
  for (int i = 0; i < 2; i++) {
    double g1[4], g2[4];
    tw_tape *t;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_tape_new(0, &t, &err), TW_OK);
    assert_int_equal(grads(t, dtypes[i], g1, &err), TW_OK);
    tw_tape_reset(t);
    assert_int_equal(grads(t, dtypes[i], g2, &err), TW_OK);
    assert_memory_equal(g1, g2, 4 * tw_dtype_size(dtypes[i]));
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
  rc = grads(t, TW_F32, NULL, &err);
  tw_tape_free(t);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(gather_adjoints),
      TW_TEST(scatter_adjoints),
      TW_TEST(repeated_indices_accumulate),
      TW_TEST(nothing_is_saved_without_a_node),
      TW_TEST(bad_inputs_are_refused),
      TW_TEST(results_are_deterministic),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
