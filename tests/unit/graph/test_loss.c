/*
 * test_loss.c - the squared-error loss computed in C (tw_graph_sqerr):
 * its terms against hand-computed values (weights, missing samples, no
 * targets), a tick past the targets, and its gradient through a graph
 * against central differences of the loss of plain runs.
 */
#include "tw_test.h"
#include <math.h>
#include <string.h>

static void terms(void **state) {
  (void)state;
  const double target[2 * 3] = {1, 2, NAN, 0, -1, 4};
  const double weight[3] = {0.5, 0, 2};
  tw_graph_sqerr s = {3, 2, target, weight};
  tw_loss loss;
  memset(&loss, 0xff, sizeof loss);
  tw_graph_sqerr_loss(&s, &loss);
  assert_false(loss.final_only);
  assert_ptr_equal(loss.ud, &s);
  const double y[3] = {3, 5, 7};
  double v = -1, gy[3] = {9, 9, 9};
  /* Tick 0: 0.5 (3-1)^2 + 0 (column out) + 2 (7-NaN: missing) = 2. */
  assert_int_equal(loss.term(loss.ud, 0, 2, NULL, y, &v, NULL, gy, NULL),
                   TW_OK);
  assert_true(v == 2.0);
  assert_true(gy[0] == 2.0 && gy[1] == 0.0 && gy[2] == 0.0);
  /* Tick 1, targets (0, -1, 4): 0.5 (3-0)^2 + 0 + 2 (7-4)^2. */
  assert_int_equal(loss.term(loss.ud, 1, 2, NULL, y, &v, NULL, gy, NULL),
                   TW_OK);
  assert_true(v == 0.5 * 9 + 2 * 9);
  assert_true(gy[0] == 3.0 && gy[1] == 0.0 && gy[2] == 12.0);
  /* Only the value (forward runs). */
  assert_int_equal(loss.term(loss.ud, 1, 2, NULL, y, &v, NULL, NULL, NULL),
                   TW_OK);
  assert_true(v == 22.5);
  /* Past the targets: an error naming the tick, no value written. */
  tw_err err;
  tw_err_init(&err);
  v = -1;
  assert_int_equal(loss.term(loss.ud, 2, 3, NULL, y, &v, NULL, gy, &err),
                   TW_ERANGE);
  assert_non_null(strstr(err.msg, "tick 2"));
  assert_true(v == -1);
  /* No targets, no weights: |y|^2. */
  tw_graph_sqerr z = {3, 1, NULL, NULL};
  tw_graph_sqerr_loss(&z, &loss);
  assert_int_equal(loss.term(loss.ud, 0, 1, NULL, y, &v, NULL, gy, NULL),
                   TW_OK);
  assert_true(v == 9 + 25 + 49);
  assert_true(gy[0] == 6 && gy[1] == 10 && gy[2] == 14);
}

#define TICKS 60

static const char graph_json[] =
    "{\"graph\": 1, \"dt\": 0.01,"
    " \"blocks\": {\"p\": {\"model\": \"builtin:spring_damper\","
    "   \"params\": {\"m\": 1.3, \"k\": 4, \"c\": 0.2, \"x0\": 1, \"v0\": "
    "0.5}}},"
    " \"outputs\": {\"x\": \"p.x\", \"v\": \"p.v\"}}";

static double loss_of_run(tw_graph *g, const tw_graph_sqerr *s) {
  double out[2 * TICKS];
  assert_int_equal(tw_graph_run(g, TICKS, NULL, out, NULL), TW_OK);
  double L = 0;
  for (int k = 0; k < TICKS; k++)
    for (int j = 0; j < 2; j++) {
      double t = s->target[2 * k + j];
      if (!isnan(t))
        L += s->weight[j] * (out[2 * k + j] - t) * (out[2 * k + j] - t);
    }
  return L;
}

static void gradient(void **state) {
  (void)state;
  tw_graph *g = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_parse(graph_json, strlen(graph_json), "t.json", ".", NULL,
                          NULL, &g, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_int_equal(tw_graph_output_width(g), 2);
  /* Targets: a slower, differently damped oscillator, every third
   * velocity sample missing. */
  double target[2 * TICKS];
  for (int k = 0; k < TICKS; k++) {
    double t = 0.01 * k;
    target[2 * k] = exp(-0.2 * t) * cos(1.7 * t);
    target[2 * k + 1] = k % 3 == 0 ? NAN : -1.7 * sin(1.7 * t);
  }
  const double weight[2] = {1.0, 0.25};
  tw_graph_sqerr s = {2, TICKS, target, weight};
  tw_loss loss;
  tw_graph_sqerr_loss(&s, &loss);
  size_t nth = tw_graph_nparams(g);
  assert_int_equal(nth, 5);
  double grad[5], L = 0;
  assert_int_equal(tw_graph_grad(g, TICKS, NULL, &loss, NULL, 0, "revolve:4",
                                 &L, grad, &err),
                   TW_OK);
  assert_true(fabs(L - loss_of_run(g, &s)) <= 1e-12 * L);
  double th[5];
  tw_graph_get_params(g, th);
  for (size_t i = 0; i < nth; i++) {
    double keep = th[i], h = 1e-6 * fmax(1, fabs(keep));
    th[i] = keep + h;
    tw_graph_set_params(g, th);
    double lp = loss_of_run(g, &s);
    th[i] = keep - h;
    tw_graph_set_params(g, th);
    double lm = loss_of_run(g, &s);
    th[i] = keep;
    tw_graph_set_params(g, th);
    double fd = (lp - lm) / (2 * h);
    if (fabs(fd - grad[i]) > 1e-6 * fmax(fabs(fd), 1e-3))
      print_error("param %zu: grad %.12g fd %.12g\n", i, grad[i], fd);
    assert_true(fabs(fd - grad[i]) <= 1e-6 * fmax(fabs(fd), 1e-3));
    assert_true(fabs(grad[i]) > 1e-6);
  }
  /* A gradient over more ticks than the targets hold fails. */
  tw_err_init(&err);
  assert_int_equal(
      tw_graph_grad(g, TICKS + 1, NULL, &loss, NULL, 0, NULL, &L, grad, &err),
      TW_ERANGE);
  tw_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(terms),
      TW_TEST(gradient),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
