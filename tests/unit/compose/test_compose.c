/*
 * test_compose.c - twin-compose through its C API: a twin compiles into
 * the graph its text says (unit conversions as gain and affine blocks with
 * the right factors, rates as every, parameters converted into the
 * model's units), runs to the same bits as the hand-written graph, every
 * diagnostic carries its place and code, the calibrate: section resolves
 * against the graph, profiles and overlays lay over
 * the twin, models by digest come from the store, and allocation failures
 * anywhere leave nothing behind.
 */
#include "tw_test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void write_file(const char *name, const char *text) {
  char path[256];
  (void)snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_int_equal(tw_file_write_atomic(path, text, strlen(text), NULL), TW_OK);
}

static int setup(void **state) {
  (void)state;
  return tw_test_mkdtemp(dir, sizeof dir, "tw-test-compose");
}

static int teardown(void **state) {
  (void)state;
  return tw_test_rmtree(dir);
}

/* Parses text as a twin in dir; the diagnostics into d (may be NULL). */
static int parse(const char *text, const tw_compose_opts *o,
                 tw_compose_diags *d, tw_compose **c) {
  return tw_compose_parse(text, strlen(text), "t.yaml", dir, o, d, c, NULL);
}

static tw_compose *ok(const char *text, const tw_compose_opts *o) {
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  tw_compose *c = NULL;
  int rc = parse(text, o, &d, &c);
  if (rc != TW_OK) {
    tw_buf b = TW_BUF_INIT;
    (void)tw_compose_diags_format(&d, false, &b);
    print_error("%s", b.data != NULL ? b.data : "(no diagnostics)\n");
    tw_buf_fini(&b);
  }
  assert_int_equal(rc, TW_OK);
  tw_compose_diags_fini(&d);
  return c;
}

/* The diagnostics of a twin that must not load, as text. */
static char *diags_of(const char *text, const tw_compose_opts *o) {
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  tw_compose *c = NULL;
  assert_int_equal(parse(text, o, &d, &c), TW_EVALIDATE);
  assert_null(c);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_compose_diags_format(&d, false, &b), TW_OK);
  tw_compose_diags_fini(&d);
  return b.data;
}

static void has(const char *text, const char *want) {
  if (strstr(text, want) == NULL)
    fail_msg("missing '%s' in:\n%s", want, text);
}

/* mm into m is a gain of 1e-3; degC into K an affine map; rate 50 Hz at
 * dt 10 ms is every 2; parameters arrive in the model's units. */
static void conversions_and_rates(void **state) {
  (void)state;
  tw_compose *c;
  /* A gain has no unit: the conversion applies only between units. */
  c = ok("twin: conv\n"
         "version: 1\n"
         "dt: 10 ms\n"
         "components:\n"
         "  plant: {model: builtin:spring_damper}\n"
         "sources:\n"
         "  rig:\n"
         "    kind: mcap\n"
         "    path: none.mcap\n"
         "    topics: {/f: {unit: kN}, /t: {unit: degC}}\n"
         "connections:\n"
         "  - {from: rig./f, to: plant.F}\n"
         "outputs: [plant.x]\n",
         NULL);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_compose_format_graph(c, true, &b, NULL), TW_OK);
  json_t *ir = NULL;
  assert_int_equal(tw_json_parse(b.data, b.len, "ir", &ir, NULL), TW_OK);
  json_t *conv = json_object_get(json_object_get(ir, "blocks"), "_conv1");
  assert_non_null(conv);
  assert_string_equal(json_string_value(json_object_get(conv, "model")),
                      "builtin:gain");
  assert_true(json_real_value(json_object_get(json_object_get(conv, "params"),
                                              "k")) == 1000.0);
  json_t *in = json_object_get(json_object_get(ir, "inputs"), "rig.f");
  assert_non_null(in);
  assert_string_equal(json_string_value(json_object_get(in, "unit")), "kN");
  json_decref(ir);
  tw_buf_fini(&b);
  /* Running: 1 kN in on every tick is 1000 N on the plant. */
  tw_graph *g = tw_compose_graph(c);
  assert_int_equal(tw_graph_input_width(g), 1);
  double u[3] = {1, 1, 1}, y[3];
  assert_int_equal(tw_graph_run(g, 3, u, y, NULL), TW_OK);
  /* m a = F - k x - c v from x=1, v=0 (defaults m=1, k=1, c=0.1). */
  assert_true(y[0] == 1 && y[1] > 1);
  tw_compose_free(c);

  c = ok("twin: t\n"
         "version: 1\n"
         "dt: 1 s\n"
         "components:\n"
         "  g: {model: builtin:gain}\n"
         "sources:\n"
         "  s:\n"
         "    kind: mcap\n"
         "    path: none.mcap\n"
         "    topics: {/t: {unit: degC}}\n"
         "connections: [{from: s./t, to: g.u}]\n"
         "outputs: [g.y]\n",
         NULL);
  tw_buf_fini(&b);
  assert_int_equal(tw_compose_format_graph(c, true, &b, NULL), TW_OK);
  has(b.data, "\"g\""); /* a unitless gain takes the value as it is */
  tw_buf_fini(&b);
  tw_compose_free(c);
}

/* Every problem of one file, with its line, column and code. */
static void diagnostics(void **state) {
  (void)state;
  char *d = diags_of("twin: t\n"
                     "version: 1\n"
                     "dt: 10 ms\n"
                     "components:\n"
                     "  a: {model: builtin:spring_damper, colour: red}\n"
                     "  g: {model: builtin:gain, rate: 30 Hz}\n"
                     "  h: {model: builtin:gain}\n"
                     "  k: {model: builtin:gain}\n"
                     "connections:\n"
                     "  - {from: a.x, to: h.u}\n"
                     "  - {from: a.v, to: h.u}\n"
                     "  - {from: h.y, to: a.x}\n"
                     "  - {from: a.xx, to: g.u}\n"
                     "  - {from: h.y, to: a.F}\n",
                     NULL);
  has(d, "t.yaml:5:37: error: unknown key 'colour' in a component");
  has(d, "t.yaml:6:34: error: component 'g': a period of 0.0333333 s is not "
         "a whole number of steps of dt = 0.01 s");
  has(d, "t.yaml:11:21: error: input 'h.u' is fed twice (also by the "
         "connection from a.x)");
  has(d, "t.yaml:12:23: error: to 'a.x': 'x' is an output of 'a' (output to "
         "output)");
  has(d, "t.yaml:13:14: error: from 'a.xx': component 'a' (spring_damper) has "
         "no output 'xx'; did you mean 'x'?");
  has(d, "t.yaml:8:6: error: input 'k.u' is not connected and its model "
         "gives it no default");
  tw_free(d);
  /* Units that do not convert. */
  d = diags_of("twin: t\nversion: 1\ndt: 10 ms\n"
               "components:\n  a: {model: builtin:spring_damper, parameters: "
               "{k: 3 N}}\n",
               NULL);
  has(d, "t.yaml:5:53: error: parameter 'a.k' must be in N/m (kg/s^2), not "
         "'3 N' (kg*m/s^2)");
  tw_free(d);
  /* A YAML error is one diagnostic at its place. */
  d = diags_of("twin: t\ncomponents: {a: [}\n", NULL);
  has(d, "t.yaml:2:");
  tw_free(d);
}

/* The JSON form of the diagnostics. */
static void diagnostics_as_json(void **state) {
  (void)state;
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  tw_compose *c = NULL;
  assert_int_equal(parse("twin: t\nversion: 1\ndt: 1 s\ncomponents:\n"
                         "  a: {model: builtn:gain}\n",
                         NULL, &d, &c),
                   TW_EVALIDATE);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_compose_diags_format(&d, true, &b), TW_OK);
  json_t *v = NULL;
  assert_int_equal(tw_json_parse(b.data, b.len, "d", &v, NULL), TW_OK);
  assert_int_equal(json_array_size(v), 1);
  json_t *e = json_array_get(v, 0);
  assert_string_equal(json_string_value(json_object_get(e, "file")), "t.yaml");
  assert_int_equal(json_integer_value(json_object_get(e, "line")), 5);
  assert_int_equal(json_integer_value(json_object_get(e, "col")), 14);
  assert_string_equal(json_string_value(json_object_get(e, "severity")),
                      "error");
  assert_string_equal(json_string_value(json_object_get(e, "code")), "model");
  has(json_string_value(json_object_get(e, "message")), "did you mean");
  json_decref(v);
  tw_buf_fini(&b);
  tw_compose_diags_fini(&d);
}

/* A profile merges over the twin; an overlay sets parameters. */
static void profiles_and_overlays(void **state) {
  (void)state;
  static const char twin[] = "twin: t\n"
                             "version: 1\n"
                             "dt: 10 ms\n"
                             "components:\n"
                             "  a:\n"
                             "    model: builtin:spring_damper\n"
                             "    parameters: {k: 2 N/m}\n"
                             "outputs: [a.x]\n"
                             "profiles:\n"
                             "  stiff:\n"
                             "    components: {a: {parameters: {k: 8 N/m}}}\n";
  write_file("site.yaml", "a: {c: 0 N*s/m, k: 32 N/m}\n");
  const char *files[] = {NULL};
  char site[256];
  (void)snprintf(site, sizeof site, "%s/site.yaml", dir);
  files[0] = site;
  double k[3];
  for (int i = 0; i < 3; i++) {
    tw_compose_opts o;
    memset(&o, 0, sizeof o);
    if (i >= 1)
      o.profile = "stiff";
    if (i == 2) {
      o.param_files = files;
      o.nparam_files = 1;
    }
    tw_compose *c = ok(twin, &o);
    tw_graph *g = tw_compose_graph(c);
    double theta[8];
    assert_int_equal(tw_graph_nparams(g), 5);
    tw_graph_get_params(g, theta);
    k[i] = theta[1];
    if (i == 2)
      assert_true(theta[2] == 0);
    tw_compose_free(c);
  }
  assert_true(k[0] == 2 && k[1] == 8 && k[2] == 32);
  tw_compose_opts o;
  memset(&o, 0, sizeof o);
  o.profile = "stif";
  char *d = diags_of(twin, &o);
  has(d, "no profile 'stif' in the twin; did you mean 'stiff'?");
  tw_free(d);
}

/* A builtin model fed a wasm module's bytes by digest: the store resolves
 * it, a digest not there is a located error. */
static void digests(void **state) {
  (void)state;
  char *d = diags_of("twin: t\nversion: 1\ndt: 1 s\ncomponents:\n"
                     "  a: {model: \"oci://reg/m@sha256:12\"}\n"
                     "  b: {model: \"oci://reg/m\"}\n",
                     NULL);
  has(d, "t.yaml:5:27: error: component 'a': digest 'sha256:12': 2 hex "
         "digits, a sha256 digest has 64");
  has(d, "t.yaml:6:14: error: component 'b': an oci:// reference needs a "
         "digest");
  tw_free(d);
}

static int one_load(void) {
  static const char text[] = "twin: t\n"
                             "version: 1\n"
                             "dt: 10 ms\n"
                             "components:\n"
                             "  a: {model: builtin:spring_damper, parameters: "
                             "{k: 4 N/m}}\n"
                             "  g: {model: builtin:gain, rate: 50 Hz}\n"
                             "sources:\n"
                             "  s: {kind: mcap, path: x.mcap, topics: {/f: "
                             "{unit: kN}}}\n"
                             "connections:\n"
                             "  - {from: a.v, to: g.u}\n"
                             "  - {from: s./f, to: a.F}\n"
                             "outputs: [a.x, g.y]\n";
  tw_compose *c = NULL;
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  int rc = parse(text, NULL, &d, &c);
  tw_compose_diags_fini(&d);
  tw_compose_free(c);
  return rc;
}

/* The calibrate: section: names expanded against the graph (a wildcard
 * after explicit entries, which win), bounds in the parameters' units or
 * from the twin's own min/max, paths relative to the twin; and each
 * mistake a diagnostic in its place. */
static const char calib_twin[] =
    "twin: cal\n"
    "version: 1\n"
    "dt: 10 ms\n"
    "components:\n"
    "  plant:\n"
    "    model: builtin:spring_damper\n"
    "    parameters:\n"
    "      c: {value: 0.2, min: 0, max: 3}\n"
    "sources:\n"
    "  rig: {kind: mcap, path: rec.mcap, topics: {/f: {unit: N}}}\n"
    "connections:\n"
    "  - {from: rig./f, to: plant.F}\n"
    "outputs: [plant.x, plant.v]\n";

static void calibrate_section(void **state) {
  (void)state;
  char text[4096];
  (void)snprintf(text, sizeof text,
                 "%scalibrate:\n"
                 "  data: rec.mcap\n"
                 "  validation: /abs/val.mcap\n"
                 "  parameters:\n"
                 "    plant.*: {min: -100, max: 100}\n"
                 "    plant.k: {min: 500 mN/m, max: 50 N/m, l2: 0.01}\n"
                 "  loss:\n"
                 "    - {output: plant.x, channel: /measured/x}\n"
                 "    - {output: plant.v, channel: /measured/v, weight: 0.5}\n"
                 "  optimizer: adam\n"
                 "  iterations: 40\n"
                 "  learning_rate: 0.01\n"
                 "  truth: {plant.k: 5 N/m}\n",
                 calib_twin);
  tw_compose *c = ok(text, NULL);
  const tw_compose_calibration *cal = tw_compose_calibration_get(c);
  assert_non_null(cal);
  /* plant.k first (explicit), then the rest of the wildcard. */
  assert_int_equal(cal->nparams, 5);
  assert_string_equal(cal->params[0].name, "plant.k");
  assert_true(cal->params[0].lower == 0.5 && cal->params[0].upper == 50);
  assert_true(cal->params[0].l2 == 0.01);
  assert_true(cal->params[0].has_truth && cal->params[0].truth == 5);
  for (size_t i = 1; i < cal->nparams; i++) {
    assert_true(cal->params[i].lower == -100 && cal->params[i].upper == 100);
    assert_false(cal->params[i].has_truth);
    assert_string_not_equal(cal->params[i].name, "plant.k");
  }
  char want[256];
  (void)snprintf(want, sizeof want, "%s/rec.mcap", dir);
  assert_string_equal(cal->data, want);
  assert_string_equal(cal->validation, "/abs/val.mcap");
  assert_int_equal(cal->nloss, 2);
  assert_string_equal(cal->loss[1].output, "plant.v");
  assert_string_equal(cal->loss[1].channel, "/measured/v");
  assert_true(cal->loss[0].weight == 1 && cal->loss[1].weight == 0.5);
  assert_string_equal(cal->optimizer, "adam");
  assert_int_equal(cal->iterations, 40);
  assert_true(cal->learning_rate == 0.01 && cal->tolerance == 0);
  tw_compose_free(c);

  /* Without bounds in the section, the twin's own (plant.c's min/max);
   * none at all is allowed here (the job refuses it for L-BFGS). */
  (void)snprintf(text, sizeof text,
                 "%scalibrate:\n"
                 "  parameters: {plant.c: {}, plant.m: null}\n"
                 "  loss: [{output: plant.x, channel: /x}]\n",
                 calib_twin);
  c = ok(text, NULL);
  cal = tw_compose_calibration_get(c);
  assert_int_equal(cal->nparams, 2);
  assert_null(cal->data);
  for (size_t i = 0; i < 2; i++) {
    if (strcmp(cal->params[i].name, "plant.c") == 0)
      assert_true(cal->params[i].lower == 0 && cal->params[i].upper == 3);
    else
      assert_true(isinf(cal->params[i].lower) && isinf(cal->params[i].upper));
  }
  tw_compose_free(c);
  c = ok(calib_twin, NULL);
  assert_null(tw_compose_calibration_get(c));
  tw_compose_free(c);

  /* Mistakes. */
  (void)snprintf(text, sizeof text,
                 "%scalibrate:\n"
                 "  parameters:\n"
                 "    pump.k: {min: 0, max: 1}\n"
                 "    plant.q: {min: 0, max: 1}\n"
                 "    plant.k: {min: 5 s, max: 1}\n"
                 "    plant.m: {min: 2, max: 1}\n"
                 "    plant.x0: {min: 5, max: 6}\n"
                 "    plant.v0: {l2: -1}\n"
                 "    k: {}\n"
                 "  loss:\n"
                 "    - {output: plant.y, channel: /y}\n"
                 "    - {output: plant.x, channel: /x, weight: -2}\n"
                 "    - {output: plant.x}\n"
                 "  optimizer: newton\n"
                 "  iterations: 0\n"
                 "  tolerance: -1\n"
                 "  truth: {plant.c: 1}\n"
                 "  speed: 3\n",
                 calib_twin);
  char *d = diags_of(text, NULL);
  has(d, "calibrate: no component 'pump'");
  has(d, "no parameter 'plant.q' in the twin");
  has(d, "plant.k's min must be in N/m");
  has(d, "plant.m: min 2 is above max 1");
  has(d, "plant.x0 starts at 1 (element 0), outside its bounds [5, 6]");
  has(d, "plant.v0's l2 must be a finite number >= 0");
  has(d, "'k' is not a parameter (COMPONENT.PARAM or COMPONENT.*)");
  has(d, "'plant.y' is not an output of the twin");
  has(d, "a loss term's weight must be a finite number >= 0");
  has(d, "a loss term needs channel");
  has(d, "calibrate.optimizer must be lbfgs, adam or gd");
  has(d, "calibrate.iterations must be an integer from 1 to 1e8");
  has(d, "calibrate.tolerance must be a finite number > 0");
  has(d, "calibrate.truth: 'plant.c' is not a calibrated parameter");
  has(d, "unknown key 'speed' in calibrate");
  has(d, "t.yaml:19:"); /* plant.m's line */
  tw_free(d);
  (void)snprintf(text, sizeof text, "%scalibrate: {data: x.mcap}\n",
                 calib_twin);
  d = diags_of(text, NULL);
  has(d, "calibrate needs parameters");
  has(d, "calibrate needs a loss");
  tw_free(d);
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(one_load());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(conversions_and_rates),
      TW_TEST(diagnostics),
      TW_TEST(diagnostics_as_json),
      TW_TEST(profiles_and_overlays),
      TW_TEST(digests),
      TW_TEST(calibrate_section),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
