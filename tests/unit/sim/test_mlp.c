/* test_mlp.c - the MLP block: layout, deterministic defaults, values
 * against a hand-written network, and its VJP against finite
 * differences. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "tw_test.h"
#include "twin/sim.h"

static tw_block *make(size_t nl, const size_t *sizes, const tw_activation *a) {
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sim_mlp_block(nl, sizes, a, 42, "ctrl", &b, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return b;
}

static void layout_and_defaults(void **state) {
  (void)state;
  size_t sizes[3] = {4, 3, 2};
  tw_activation acts[2] = {TW_ACT_TANH, TW_ACT_NONE};
  tw_block *b = make(2, sizes, acts);
  const tw_block_desc *d = tw_block_describe(b);
  assert_string_equal(d->kind, "mlp");
  assert_int_equal(d->nu, 4);
  assert_int_equal(d->ny, 2);
  assert_int_equal(d->nx, 0);
  assert_int_equal(d->ntheta, 4 * 3 + 3 + 3 * 2 + 2);
  assert_int_equal(d->nparams, 4);
  assert_string_equal(d->params[0].name, "W1");
  assert_int_equal(d->params[0].size, 12);
  assert_string_equal(d->params[3].name, "b2");
  assert_true(d->differentiable);
  double t1[23], t2[23];
  assert_int_equal(tw_block_default_params(b, t1, NULL), TW_OK);
  tw_block *b2 = make(2, sizes, acts);
  assert_int_equal(tw_block_default_params(b2, t2, NULL), TW_OK);
  assert_memory_equal(t1, t2, sizeof t1); /* deterministic */
  double limit = sqrt(6.0 / 7.0);
  for (int i = 0; i < 12; i++)
    assert_true(fabs(t1[i]) <= limit && t1[i] != 0);
  for (int i = 12; i < 15; i++)
    assert_true(t1[i] == 0); /* biases */
  tw_block_free(b);
  tw_block_free(b2);
}

/* The same network written out by hand. */
static double act(tw_activation a, double z) {
  switch (a) {
  case TW_ACT_TANH:
    return tanh(z);
  case TW_ACT_RELU:
    return z > 0 ? z : 0;
  case TW_ACT_SIGMOID:
    return 1 / (1 + exp(-z));
  case TW_ACT_SOFTPLUS:
    return log1p(exp(z));
  case TW_ACT_NONE:
    break;
  }
  return z;
}

static void values_match_a_hand_written_network(void **state) {
  (void)state;
  const tw_activation all[] = {TW_ACT_TANH, TW_ACT_RELU, TW_ACT_SIGMOID,
                               TW_ACT_SOFTPLUS};
  for (int ai = 0; ai < 4; ai++) {
    size_t sizes[3] = {3, 5, 2};
    tw_activation acts[2] = {all[ai], TW_ACT_NONE};
    tw_block *b = make(2, sizes, acts);
    double th[3 * 5 + 5 + 5 * 2 + 2];
    tw_block_default_params(b, th, NULL);
    for (int i = 15; i < 20; i++)
      th[i] = 0.1 * (i - 17); /* non-zero biases */
    double u[3] = {0.3, -0.7, 1.1}, y[2];
    tw_step_args a = {0, 0.01, 0, NULL, u, th, NULL, y};
    assert_int_equal(tw_block_step(b, &a, NULL), TW_OK);
    double h[5];
    for (int i = 0; i < 5; i++) {
      double z = th[15 + i];
      for (int j = 0; j < 3; j++)
        z += th[i * 3 + j] * u[j];
      h[i] = act(all[ai], z);
    }
    for (int i = 0; i < 2; i++) {
      double z = th[20 + 10 + i];
      for (int j = 0; j < 5; j++)
        z += th[20 + i * 5 + j] * h[j];
      assert_true(fabs(y[i] - z) <= 1e-14 * fmax(1, fabs(z)));
    }
    tw_block_free(b);
  }
}

/* <gy, y(theta + h d) - y(theta - h d)> / 2h against the VJP. */
static void vjp_matches_finite_differences(void **state) {
  (void)state;
  size_t sizes[4] = {4, 6, 5, 3};
  tw_activation acts[3] = {TW_ACT_TANH, TW_ACT_SOFTPLUS, TW_ACT_SIGMOID};
  tw_block *b = make(3, sizes, acts);
  const tw_block_desc *d = tw_block_describe(b);
  double th[256], gth[256], gu[4], u[4] = {0.5, -0.2, 0.9, -1.3};
  double gy[3] = {0.7, -1.1, 0.4};
  assert_true(d->ntheta <= 256);
  tw_block_default_params(b, th, NULL);
  for (size_t i = 0; i < d->ntheta; i++)
    gth[i] = 0.25; /* the VJP must add to what is there */
  tw_vjp_args v = {0, 0.01, 0, NULL, u, th, NULL, gy, NULL, gu, gth, NULL};
  assert_int_equal(tw_block_step_vjp(b, &v, NULL), TW_OK);
  for (size_t i = 0; i < d->ntheta; i += 7) {
    double h = cbrt(DBL_EPSILON) * fmax(1, fabs(th[i]));
    double keep = th[i], yp[3], ym[3];
    th[i] = keep + h;
    tw_step_args a = {0, 0.01, 0, NULL, u, th, NULL, yp};
    tw_block_step(b, &a, NULL);
    th[i] = keep - h;
    a.y = ym;
    tw_block_step(b, &a, NULL);
    th[i] = keep;
    double fd = 0;
    for (int k = 0; k < 3; k++)
      fd += gy[k] * (yp[k] - ym[k]) / (2 * h);
    double g = gth[i] - 0.25;
    assert_true(fabs(fd - g) <= 1e-6 * fmax(fabs(g), 1e-4));
  }
  for (int i = 0; i < 4; i++) {
    double h = cbrt(DBL_EPSILON), keep = u[i], yp[3], ym[3];
    u[i] = keep + h;
    tw_step_args a = {0, 0.01, 0, NULL, u, th, NULL, yp};
    tw_block_step(b, &a, NULL);
    u[i] = keep - h;
    a.y = ym;
    tw_block_step(b, &a, NULL);
    u[i] = keep;
    double fd = 0;
    for (int k = 0; k < 3; k++)
      fd += gy[k] * (yp[k] - ym[k]) / (2 * h);
    assert_true(fabs(fd - gu[i]) <= 1e-6 * fmax(fabs(gu[i]), 1e-4));
  }
  tw_block_free(b);
}

static void bad_arguments(void **state) {
  (void)state;
  size_t sizes[3] = {4, 0, 2};
  tw_activation acts[2] = {TW_ACT_TANH, (tw_activation)9};
  tw_block *b = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_mlp_block(2, sizes, acts, 1, "x", &b, &err),
                   TW_EINVAL);
  assert_string_equal(err.msg, "mlp: layer size 1 is 0 (must be 1..16777216)");
  sizes[1] = 3;
  tw_err_init(&err);
  assert_int_equal(tw_sim_mlp_block(2, sizes, acts, 1, "x", &b, &err),
                   TW_EINVAL);
  assert_string_equal(err.msg, "mlp: layer 1: unknown activation 9");
  tw_err_init(&err);
  assert_int_equal(tw_sim_mlp_block(0, sizes, acts, 1, "x", &b, &err),
                   TW_EINVAL);
  assert_null(b);
}

/* linearize + pullback is step_vjp at the same point, to the bit, for the
 * MLP (which keeps its recorded network) and for a block without the pair
 * (the fallback); misuse is an error, not a stale gradient. */
static void linearize_then_pullback(void **state) {
  (void)state;
  size_t sizes[3] = {4, 5, 3};
  tw_activation acts[2] = {TW_ACT_TANH, TW_ACT_TANH};
  tw_block *b = make(2, sizes, acts);
  const tw_block_desc *d = tw_block_describe(b);
  double th[64], u[4] = {0.3, -0.7, 1.1, 0.2}, gy[3] = {0.5, -2, 0.25};
  double y1[3], y2[3], g1[64], g2[64], gu1[4], gu2[4];
  assert_true(d->ntheta <= 64);
  tw_block_default_params(b, th, NULL);
  for (size_t i = 0; i < d->ntheta; i++)
    g1[i] = g2[i] = 0.5;
  tw_step_args a = {0.1, 0.01, 7, NULL, u, th, NULL, y1};
  assert_int_equal(tw_block_step(b, &a, NULL), TW_OK);
  tw_vjp_args v = {0.1, 0.01, 7, NULL, u, th, NULL, gy, NULL, gu1, g1, NULL};
  assert_int_equal(tw_block_step_vjp(b, &v, NULL), TW_OK);
  a.y = y2;
  assert_int_equal(tw_block_linearize(b, &a, NULL), TW_OK);
  assert_memory_equal(y1, y2, sizeof y1);
  v.gu = gu2;
  v.gtheta = g2;
  assert_int_equal(tw_block_pullback(b, &v, NULL), TW_OK);
  assert_memory_equal(gu1, gu2, sizeof gu1);
  assert_memory_equal(g1, g2, d->ntheta * sizeof(double));

  tw_err err;
  tw_err_init(&err); /* used up by the pullback */
  assert_int_equal(tw_block_pullback(b, &v, &err), TW_ESTATE);
  assert_non_null(strstr(err.msg, "'ctrl': pullback without a linearisation"));
  assert_int_equal(tw_block_linearize(b, &a, NULL), TW_OK);
  v.k = 8; /* another step */
  tw_err_init(&err);
  assert_int_equal(tw_block_pullback(b, &v, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "not at the linearised point (step 7)"));
  v.k = 7;
  assert_int_equal(tw_block_linearize(b, &a, NULL), TW_OK);
  assert_int_equal(tw_block_step(b, &a, NULL), TW_OK); /* forgets it */
  assert_int_equal(tw_block_pullback(b, &v, NULL), TW_ESTATE);
  tw_block_free(b);
}

static int make_round(void) {
  size_t sizes[3] = {3, 4, 2};
  tw_activation acts[2] = {TW_ACT_RELU, TW_ACT_NONE};
  tw_block *b = NULL;
  int rc = tw_sim_mlp_block(2, sizes, acts, 3, "m", &b, NULL);
  if (rc != TW_OK)
    return rc;
  double th[3 * 4 + 4 + 4 * 2 + 2], u[3] = {1, 2, 3}, y[2], gy[2] = {1, 1};
  double gth[26] = {0}, gu[3];
  tw_block_default_params(b, th, NULL);
  tw_step_args a = {0, 0.1, 0, NULL, u, th, NULL, y};
  rc = tw_block_step(b, &a, NULL);
  tw_vjp_args v = {0, 0.1, 0, NULL, u, th, NULL, gy, NULL, gu, gth, NULL};
  if (rc == TW_OK)
    rc = tw_block_step_vjp(b, &v, NULL);
  tw_block_free(b);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(make_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(layout_and_defaults),
      TW_TEST(values_match_a_hand_written_network),
      TW_TEST(vjp_matches_finite_differences),
      TW_TEST(linearize_then_pullback),
      TW_TEST(bad_arguments),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
