/*
 * test_calibrate.c - calibration jobs (twin/calibrate.h) end to end on a
 * recording made here: a spring-damper run with known stiffness and
 * damping is recorded (its force and position as port channels, the
 * position only every other tick), and a twin starting from wrong values
 * gets them back with L-BFGS and Adam; the validation loss is reported;
 * and each bad input gets its clear error: no calibrate: section, a
 * missing recording or channel, samples of the wrong size, a parameter
 * without bounds for L-BFGS, a run that diverges (the best point kept).
 */
#include "tw_test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICKS 400

static char dir[64];

static int setup(void **state) {
  (void)state;
  return tw_test_mkdtemp(dir, sizeof dir, "tw-test-calib");
}

static int teardown(void **state) {
  (void)state;
  return tw_test_rmtree(dir);
}

/* A twin over rec.mcap: plant parameters, then a calibrate section. */
static tw_compose *twin(const char *params, const char *calib, int want) {
  char text[4096];
  (void)snprintf(text, sizeof text,
                 "twin: cal\n"
                 "version: 1\n"
                 "dt: 10 ms\n"
                 "components:\n"
                 "  plant:\n"
                 "    model: builtin:spring_damper\n"
                 "    options: {integrator: rk4}\n"
                 "    parameters: {%s}\n"
                 "sources:\n"
                 "  rig: {kind: mcap, path: rec.mcap, topics: {/f: {unit: "
                 "N}}}\n"
                 "connections:\n"
                 "  - {from: rig./f, to: plant.F}\n"
                 "outputs: [plant.x, plant.v]\n"
                 "%s",
                 params, calib);
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  tw_compose *c = NULL;
  int rc =
      tw_compose_parse(text, strlen(text), "t.yaml", dir, NULL, &d, &c, NULL);
  if (rc != want) {
    tw_buf b = TW_BUF_INIT;
    (void)tw_compose_diags_format(&d, false, &b);
    print_error("%s", b.data != NULL ? b.data : "(none)\n");
    tw_buf_fini(&b);
  }
  assert_int_equal(rc, want);
  tw_compose_diags_fini(&d);
  return c;
}

/* Records name: the force /f on every tick and the true twin's position
 * on /measured/x every other tick (size `xsize`), from the true plant
 * (k 4, c 0.3). */
static void record(const char *name, double phase, size_t xsize) {
  double f[TICKS], y[2 * TICKS];
  for (int k = 0; k < TICKS; k++)
    f[k] = sin(0.05 * k + phase) + 0.5 * sin(0.17 * k);
  tw_compose *c = twin("k: 4, c: 0.3, x0: 0.5", "", TW_OK);
  assert_int_equal(tw_graph_run(tw_compose_graph(c), TICKS, f, y, NULL), TW_OK);
  tw_compose_free(c);
  char path[256];
  (void)snprintf(path, sizeof path, "%s/%s", dir, name);
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.no_sync = true;
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_OK);
  uint16_t cf, cx;
  tw_trace_port pf = {"/f", "N", 1}, px = {"/measured/x", "m", xsize};
  assert_int_equal(
      tw_trace_writer_add_port(w, &pf, TW_TRACE_ENCODING_CDR, &cf, NULL),
      TW_OK);
  assert_int_equal(
      tw_trace_writer_add_port(w, &px, TW_TRACE_ENCODING_JSON, &cx, NULL),
      TW_OK);
  for (int k = 0; k < TICKS; k++) {
    double t = 0.01 * k;
    uint64_t ns = (uint64_t)k * 10000000u;
    assert_int_equal(tw_trace_writer_write_port(w, cf, ns, t, &f[k], 1, NULL),
                     TW_OK);
    double xv[2] = {y[2 * k], y[2 * k]};
    if (k % 2 == 0)
      assert_int_equal(
          tw_trace_writer_write_port(w, cx, ns, t, xv, xsize, NULL), TW_OK);
  }
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);
}

/* tw_calibrate with a fresh error (the first error recorded wins). */
static int calibrate(tw_compose *c, const tw_calib_opts *o, tw_calib_result *r,
                     tw_err *err) {
  tw_err_init(err);
  return tw_calibrate(c, o, r, err);
}

typedef struct seen {
  uint64_t last;
  int calls;
} seen;

static int on_progress(void *ud, const tw_optim_progress *p) {
  seen *s = ud;
  assert_true(p->iteration > s->last);
  s->last = p->iteration;
  s->calls++;
  return 0;
}

static const char fit_k_c[] =
    "calibrate:\n"
    "  data: rec.mcap\n"
    "  validation: val.mcap\n"
    "  parameters:\n"
    "    plant.k: {min: 0.5, max: 20}\n"
    "    plant.c: {min: 0, max: 5}\n"
    "  loss: [{output: plant.x, channel: /measured/x}]\n"
    "  truth: {plant.k: 4 N/m}\n"
    "  iterations: 200\n";

static void fits(void **state) {
  (void)state;
  record("rec.mcap", 0, 1);
  record("val.mcap", 1.3, 1);
  tw_compose *c = twin("k: 2, c: 1, x0: 0.5", fit_k_c, TW_OK);
  seen s = {0, 0};
  tw_calib_opts o = {0};
  o.progress = on_progress;
  o.progress_ud = &s;
  o.schedule = "revolve:8";
  tw_calib_result r;
  tw_err err;
  tw_err_init(&err);
  int rc = calibrate(c, &o, &r, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_string_equal(r.method, "lbfgs");
  assert_int_equal(r.nparams, 2);
  assert_string_equal(r.params[0].name, "plant.k");
  assert_true(r.params[0].initial[0] == 2 && r.params[1].initial[0] == 1);
  assert_true(fabs(r.params[0].fitted[0] - 4) < 1e-3);
  assert_true(fabs(r.params[1].fitted[0] - 0.3) < 1e-3);
  assert_true(r.params[0].has_truth && r.params[0].truth == 4);
  assert_false(r.params[1].has_truth);
  assert_int_equal(r.ticks, TICKS - 1); /* the last sample at tick 398 */
  assert_true(r.loss < 1e-9 * r.loss_initial);
  assert_true(r.has_validation && r.val_ticks == TICKS - 1);
  assert_true(r.val_loss < 1e-6 * r.val_initial);
  assert_true(s.calls > 0 && (uint64_t)s.calls == r.opt.iterations);
  assert_int_equal(r.ncurve, r.opt.iterations);
  assert_true(r.curve[r.ncurve - 1] <= r.curve[0]);
  /* Measured on every other tick; the fitted run follows it. */
  assert_true(isnan(r.measured[1 * r.ny]) && !isnan(r.measured[2 * r.ny]));
  assert_true(fabs(r.y_fitted[100 * r.ny] - r.measured[100 * r.ny]) < 1e-4);
  /* The graph keeps the fitted values. */
  double theta[8];
  assert_true(tw_graph_nparams(tw_compose_graph(c)) <= 8);
  tw_graph_get_params(tw_compose_graph(c), theta);
  tw_calib_result_free(&r);
  tw_compose_free(c);

  /* Adam from the same start reduces the loss too (a few iterations). */
  c = twin("k: 2, c: 1, x0: 0.5", fit_k_c, TW_OK);
  o.optimizer = "adam";
  o.iterations = 30;
  o.progress = NULL;
  assert_int_equal(calibrate(c, &o, &r, &err), TW_OK);
  assert_string_equal(r.method, "adam");
  assert_int_equal(r.opt.iterations, 30);
  assert_true(r.loss < r.loss_initial);
  tw_calib_result_free(&r);
  tw_compose_free(c);
}

static void bad_input(void **state) {
  (void)state;
  record("rec.mcap", 0, 1);
  record("wide.mcap", 0, 2);
  tw_err err;
  tw_err_init(&err);
  tw_calib_result r;
  /* No calibrate: section. */
  tw_compose *c = twin("k: 2", "", TW_OK);
  assert_int_equal(calibrate(c, NULL, &r, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "has no calibrate: section"));
  tw_calib_result_free(&r);
  tw_compose_free(c);
  /* No recording named. */
  c = twin("k: 2",
           "calibrate:\n"
           "  parameters: {plant.k: {min: 1, max: 9}}\n"
           "  loss: [{output: plant.x, channel: /measured/x}]\n",
           TW_OK);
  assert_int_equal(calibrate(c, NULL, &r, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "no recording to fit"));
  tw_calib_result_free(&r);
  /* A missing file, a missing channel, samples of the wrong size. */
  tw_calib_opts o = {0};
  char path[256];
  (void)snprintf(path, sizeof path, "%s/none.mcap", dir);
  o.data = path;
  assert_int_equal(calibrate(c, &o, &r, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "none.mcap"));
  tw_calib_result_free(&r);
  tw_compose_free(c);
  c = twin("k: 2",
           "calibrate:\n"
           "  data: rec.mcap\n"
           "  parameters: {plant.k: {min: 1, max: 9}}\n"
           "  loss: [{output: plant.x, channel: /measured/y}]\n",
           TW_OK);
  assert_int_equal(calibrate(c, NULL, &r, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "has no channel '/measured/y'"));
  tw_calib_result_free(&r);
  tw_compose_free(c);
  c = twin("k: 2",
           "calibrate:\n"
           "  data: wide.mcap\n"
           "  parameters: {plant.k: {min: 1, max: 9}}\n"
           "  loss: [{output: plant.x, channel: /measured/x}]\n",
           TW_OK);
  assert_int_equal(calibrate(c, NULL, &r, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "samples of 2 values, output plant.x has 1"));
  tw_calib_result_free(&r);
  tw_compose_free(c);
  /* L-BFGS needs bounds; Adam does not. */
  c = twin("k: 2",
           "calibrate:\n"
           "  data: rec.mcap\n"
           "  parameters: {plant.k: {min: 1, max: 9}, plant.c: {}}\n"
           "  loss: [{output: plant.x, channel: /measured/x}]\n",
           TW_OK);
  assert_int_equal(calibrate(c, NULL, &r, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "plant.c has no bounds"));
  tw_calib_result_free(&r);
  o.data = NULL;
  o.optimizer = "adam";
  o.iterations = 3;
  assert_int_equal(calibrate(c, &o, &r, &err), TW_OK);
  tw_calib_result_free(&r);
  o.optimizer = "newton";
  assert_int_equal(calibrate(c, &o, &r, &err), TW_EINVAL);
  tw_calib_result_free(&r);
  tw_compose_free(c);
}

/* Gradient descent with a huge step sends the stiffness where the
 * explicit integrator blows up: the run stops as diverged, with the best
 * parameters so far kept in the result and the graph. */
static void diverges(void **state) {
  (void)state;
  record("rec.mcap", 0, 1);
  tw_compose *c = twin("k: 2, c: 1, x0: 0.5",
                       "calibrate:\n"
                       "  data: rec.mcap\n"
                       "  parameters: {plant.k: {min: 0, max: 1e12}}\n"
                       "  loss: [{output: plant.x, channel: /measured/x}]\n"
                       "  optimizer: gd\n"
                       "  learning_rate: 1e9\n"
                       "  iterations: 50\n",
                       TW_OK);
  tw_calib_result r;
  tw_err err;
  tw_err_init(&err);
  int rc = calibrate(c, NULL, &r, &err);
  assert_int_equal(rc, TW_ENUMERIC);
  assert_int_equal(r.opt.reason, TW_OPTIM_STOP_DIVERGED);
  assert_true(isfinite(r.loss) && r.loss <= r.loss_initial);
  assert_true(isfinite(r.params[0].fitted[0]));
  double theta[8];
  tw_graph_get_params(tw_compose_graph(c), theta);
  bool found = false;
  for (size_t i = 0; i < tw_graph_nparams(tw_compose_graph(c)); i++)
    found = found || theta[i] == r.params[0].fitted[0];
  assert_true(found);
  tw_calib_result_free(&r);
  tw_compose_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(fits),
      TW_TEST(bad_input),
      TW_TEST(diverges),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
