/*
 * test_metrics.c - metrics registry: exposition text, validation,
 * re-registration, update semantics, concurrency and allocation failures.
 *
 * `test_base_metrics --exposition` prints a realistic registry instead of
 * running the tests, for `promtool check metrics` (promtool_check.cmake).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tw_test.h"

/* Renders m into a fresh string the caller frees with tw_free. */
static char *render(tw_metrics *m) {
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_metrics_render(m, &b), TW_OK);
  char *s = tw_buf_take(&b, NULL);
  assert_non_null(s);
  return s;
}

static tw_metrics *new_registry(void) {
  tw_metrics *m = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_metrics_new(&m, &err), TW_OK);
  assert_non_null(m);
  return m;
}

static tw_metric *child2(tw_metric_family *f, const char *a, const char *b) {
  const char *values[] = {a, b};
  tw_metric *c = NULL;
  assert_int_equal(tw_metric_family_child(f, values, &c, NULL), TW_OK);
  return c;
}

static tw_metric *child1(tw_metric_family *f, const char *a) {
  const char *values[] = {a};
  tw_metric *c = NULL;
  assert_int_equal(tw_metric_family_child(f, values, &c, NULL), TW_OK);
  return c;
}

/* --- Golden exposition --------------------------------------------------- */

static void golden_exposition(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const req_labels[] = {"method", "code"};
  static const char *const stage_labels[] = {"stage"};
  static const double tick_bounds[] = {0.005, 0.01, 0.1, 1};
  static const double stage_bounds[] = {0.5, 2.5};
  tw_metric_family *req, *stage;
  tw_metric *depth, *tick;

  /* Registered out of order: rendering sorts. */
  assert_int_equal(tw_metrics_histogram(m, "twin_tick_seconds",
                                        "Duration of one graph tick.",
                                        tick_bounds, 4, &tick, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "twin_queue_depth",
                                    "Jobs waiting in the queue.", &depth, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_family(m, TW_METRIC_COUNTER,
                                     "twin_http_requests_total",
                                     "HTTP requests served.", req_labels, 2,
                                     NULL, 0, &req, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_family(m, TW_METRIC_HISTOGRAM,
                                     "twin_stage_seconds", "Stage duration.",
                                     stage_labels, 1, stage_bounds, 2, &stage,
                                     NULL),
                   TW_OK);

  tw_metric *get200 = child2(req, "GET", "200");
  tw_metric_inc(get200);
  tw_metric_inc(get200);
  assert_int_equal(tw_metric_add(get200, 1), TW_OK);
  assert_int_equal(tw_metric_add(child2(req, "POST", "500"), 1), TW_OK);
  assert_int_equal(tw_metric_add(child2(req, "GET", "404"), 2.5), TW_OK);
  assert_int_equal(tw_metric_set(depth, 7), TW_OK);
  assert_int_equal(tw_metric_observe(tick, 0.0625), TW_OK);
  assert_int_equal(tw_metric_observe(tick, 0.5), TW_OK);
  assert_int_equal(tw_metric_observe(tick, 3), TW_OK);
  assert_int_equal(tw_metric_observe(child1(stage, "solve"), 1.5), TW_OK);
  (void)child1(stage, "load"); /* exists, never observed */

  char *text = render(m);
  assert_string_equal(
      text, "# HELP twin_http_requests_total HTTP requests served.\n"
            "# TYPE twin_http_requests_total counter\n"
            "twin_http_requests_total{method=\"GET\",code=\"200\"} 3\n"
            "twin_http_requests_total{method=\"GET\",code=\"404\"} 2.5\n"
            "twin_http_requests_total{method=\"POST\",code=\"500\"} 1\n"
            "# HELP twin_queue_depth Jobs waiting in the queue.\n"
            "# TYPE twin_queue_depth gauge\n"
            "twin_queue_depth 7\n"
            "# HELP twin_stage_seconds Stage duration.\n"
            "# TYPE twin_stage_seconds histogram\n"
            "twin_stage_seconds_bucket{stage=\"load\",le=\"0.5\"} 0\n"
            "twin_stage_seconds_bucket{stage=\"load\",le=\"2.5\"} 0\n"
            "twin_stage_seconds_bucket{stage=\"load\",le=\"+Inf\"} 0\n"
            "twin_stage_seconds_sum{stage=\"load\"} 0\n"
            "twin_stage_seconds_count{stage=\"load\"} 0\n"
            "twin_stage_seconds_bucket{stage=\"solve\",le=\"0.5\"} 0\n"
            "twin_stage_seconds_bucket{stage=\"solve\",le=\"2.5\"} 1\n"
            "twin_stage_seconds_bucket{stage=\"solve\",le=\"+Inf\"} 1\n"
            "twin_stage_seconds_sum{stage=\"solve\"} 1.5\n"
            "twin_stage_seconds_count{stage=\"solve\"} 1\n"
            "# HELP twin_tick_seconds Duration of one graph tick.\n"
            "# TYPE twin_tick_seconds histogram\n"
            "twin_tick_seconds_bucket{le=\"0.005\"} 0\n"
            "twin_tick_seconds_bucket{le=\"0.01\"} 0\n"
            "twin_tick_seconds_bucket{le=\"0.1\"} 1\n"
            "twin_tick_seconds_bucket{le=\"1\"} 2\n"
            "twin_tick_seconds_bucket{le=\"+Inf\"} 3\n"
            "twin_tick_seconds_sum 3.5625\n"
            "twin_tick_seconds_count 3\n");
  tw_free(text);
  tw_metrics_free(m);
}

static void empty_registry_renders_nothing(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_metrics_render(m, &b), TW_OK);
  assert_int_equal(b.len, 0);
  tw_buf_fini(&b);
  tw_metrics_free(m);
  tw_metrics_free(NULL);
}

/* --- Escaping and numbers ------------------------------------------------ */

static void escaping(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const labels[] = {"path"};
  tw_metric_family *f;
  assert_int_equal(tw_metrics_family(m, TW_METRIC_GAUGE, "twin_escape",
                                     "Back\\slash, \"quotes\"\nand newline.",
                                     labels, 1, NULL, 0, &f, NULL),
                   TW_OK);
  assert_int_equal(tw_metric_set(child1(f, "a\\b\"c\nd \xc3\xa9"), 1), TW_OK);
  assert_int_equal(tw_metric_set(child1(f, ""), 2), TW_OK);
  char *text = render(m);
  assert_string_equal(text,
                      "# HELP twin_escape Back\\\\slash, \"quotes\"\\nand "
                      "newline.\n"
                      "# TYPE twin_escape gauge\n"
                      "twin_escape{path=\"\"} 2\n"
                      "twin_escape{path=\"a\\\\b\\\"c\\nd \xc3\xa9\"} 1\n");
  tw_free(text);
  tw_metrics_free(m);
}

/* The sample value a gauge set to v renders as. */
static void check_number(double v, const char *want) {
  tw_metrics *m = new_registry();
  tw_metric *g;
  assert_int_equal(tw_metrics_gauge(m, "x", "X.", &g, NULL), TW_OK);
  assert_int_equal(tw_metric_set(g, v), TW_OK);
  char *text = render(m);
  const char *line = strstr(text, "\nx ");
  assert_non_null(line);
  char got[64];
  assert_int_equal(sscanf(line + 3, "%63s", got), 1);
  assert_string_equal(got, want);
  tw_free(text);
  tw_metrics_free(m);
}

static void number_format(void **state) {
  (void)state;
  check_number(0, "0");
  check_number(42, "42");
  check_number(-17, "-17");
  check_number(0.1, "0.1");
  check_number(0.005, "0.005");
  check_number(1.0 / 3.0, "0.3333333333333333");
  check_number(0.1 + 0.2, "0.30000000000000004");
  check_number(123456789012.0, "123456789012");
  check_number(9007199254740992.0, "9007199254740992"); /* 2^53 */
  check_number(1e21, "1e+21");
  check_number(1e-7, "1e-07");
  check_number(INFINITY, "+Inf");
  check_number(-INFINITY, "-Inf");
  check_number(NAN, "NaN");
}

/* --- Validation ---------------------------------------------------------- */

/* Registers a family expecting code, and a message naming what to name. */
static void expect_family_error(tw_metric_type type, const char *name,
                                const char *help, const char *const *labels,
                                size_t nlabels, const double *bounds,
                                size_t nbounds, int code, const char *mention) {
  tw_metrics *m = new_registry();
  tw_err err;
  tw_err_init(&err);
  tw_metric_family *f = (tw_metric_family *)&err; /* must stay untouched */
  assert_int_equal(tw_metrics_family(m, type, name, help, labels, nlabels,
                                     bounds, nbounds, &f, &err),
                   code);
  assert_int_equal(err.code, code);
  assert_ptr_equal(f, (tw_metric_family *)&err);
  if (strstr(err.msg, mention) == NULL)
    fail_msg("message '%s' does not mention '%s'", err.msg, mention);
  char *text = render(m);
  assert_string_equal(text, "");
  tw_free(text);
  tw_metrics_free(m);
}

static void name_validation(void **state) {
  (void)state;
  const int C = TW_METRIC_COUNTER, G = TW_METRIC_GAUGE;
  expect_family_error(G, NULL, "h", NULL, 0, NULL, 0, TW_EINVAL, "NULL");
  expect_family_error(G, "", "h", NULL, 0, NULL, 0, TW_EINVAL, "''");
  expect_family_error(G, "1abc", "h", NULL, 0, NULL, 0, TW_EINVAL, "'1abc'");
  expect_family_error(G, "a-b", "h", NULL, 0, NULL, 0, TW_EINVAL, "'a-b'");
  expect_family_error(G, "a b", "h", NULL, 0, NULL, 0, TW_EINVAL, "'a b'");
  expect_family_error(G, "caf\xc3\xa9", "h", NULL, 0, NULL, 0, TW_EINVAL,
                      "invalid metric name");
  expect_family_error(C, "twin_requests", "h", NULL, 0, NULL, 0, TW_EINVAL,
                      "'twin_requests' must end in \"_total\"");
  expect_family_error(C, "twin_total_requests", "h", NULL, 0, NULL, 0,
                      TW_EINVAL, "_total");
  expect_family_error((tw_metric_type)42, "x", "h", NULL, 0, NULL, 0, TW_EINVAL,
                      "type 42");
  /* Colons and digits are allowed where the regex allows them. */
  tw_metrics *m = new_registry();
  tw_metric *c;
  assert_int_equal(tw_metrics_gauge(m, ":a:b_9", "h", &c, NULL), TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "_", "h", &c, NULL), TW_OK);
  assert_int_equal(tw_metrics_counter(m, "_total", "h", &c, NULL), TW_OK);
  tw_metrics_free(m);
}

static void help_validation(void **state) {
  (void)state;
  const int G = TW_METRIC_GAUGE;
  expect_family_error(G, "g", NULL, NULL, 0, NULL, 0, TW_EINVAL,
                      "'g' needs help");
  expect_family_error(G, "g", "", NULL, 0, NULL, 0, TW_EINVAL,
                      "'g' needs help");
  expect_family_error(G, "g", "bad \xff byte", NULL, 0, NULL, 0, TW_EINVAL,
                      "'g': help text is not valid UTF-8");
}

static void label_name_validation(void **state) {
  (void)state;
  const int G = TW_METRIC_GAUGE, H = TW_METRIC_HISTOGRAM;
  static const double b[] = {1};
  const char *bad_char[] = {"ok", "a:b"};
  expect_family_error(G, "g", "h", bad_char, 2, NULL, 0, TW_EINVAL,
                      "'g': invalid label name 'a:b'");
  const char *digit[] = {"9a"};
  expect_family_error(G, "g", "h", digit, 1, NULL, 0, TW_EINVAL, "'9a'");
  const char *empty[] = {""};
  expect_family_error(G, "g", "h", empty, 1, NULL, 0, TW_EINVAL,
                      "invalid label name ''");
  const char *reserved[] = {"__name"};
  expect_family_error(G, "g", "h", reserved, 1, NULL, 0, TW_EINVAL,
                      "'__name' is reserved");
  const char *le[] = {"stage", "le"};
  expect_family_error(H, "h_seconds", "h", le, 2, b, 1, TW_EINVAL,
                      "histogram 'h_seconds' cannot use the label \"le\"");
  const char *dup[] = {"a", "b", "a"};
  expect_family_error(G, "g", "h", dup, 3, NULL, 0, TW_EINVAL,
                      "'g': label name 'a' appears twice");
  const char *null_name[] = {"a", NULL};
  expect_family_error(G, "g", "h", null_name, 2, NULL, 0, TW_EINVAL,
                      "label name 1 is NULL");
  expect_family_error(G, "g", "h", NULL, 1, NULL, 0, TW_EINVAL, "NULL");

  /* "le" is only reserved for histograms; "_x" and "a_" are fine. */
  tw_metrics *m = new_registry();
  const char *fine[] = {"le", "_x", "a_", "A9"};
  tw_metric_family *f;
  assert_int_equal(
      tw_metrics_family(m, G, "g", "h", fine, 4, NULL, 0, &f, NULL), TW_OK);
  tw_metrics_free(m);
}

static void bounds_validation(void **state) {
  (void)state;
  const int C = TW_METRIC_COUNTER, H = TW_METRIC_HISTOGRAM;
  static const double one[] = {1};
  static const double flat[] = {1, 2, 2};
  static const double down[] = {1, 0.5};
  static const double inf[] = {1, INFINITY};
  static const double nan[] = {NAN};
  expect_family_error(H, "h", "h", NULL, 0, NULL, 0, TW_EINVAL,
                      "histogram 'h' needs at least one bucket bound");
  expect_family_error(H, "h", "h", NULL, 0, one, 0, TW_EINVAL, "at least one");
  expect_family_error(H, "h", "h", NULL, 0, NULL, 3, TW_EINVAL, "at least one");
  expect_family_error(H, "h", "h", NULL, 0, flat, 3, TW_EINVAL,
                      "histogram 'h': bounds must be strictly increasing");
  expect_family_error(H, "h", "h", NULL, 0, down, 2, TW_EINVAL,
                      "strictly increasing");
  expect_family_error(H, "h", "h", NULL, 0, inf, 2, TW_EINVAL,
                      "bound 1 is not finite");
  expect_family_error(H, "h", "h", NULL, 0, nan, 1, TW_EINVAL,
                      "bound 0 is not finite");
  expect_family_error(C, "c_total", "h", NULL, 0, one, 1, TW_EINVAL,
                      "counter 'c_total' takes no bucket bounds");
  expect_family_error(TW_METRIC_GAUGE, "g", "h", NULL, 0, NULL, 1, TW_EINVAL,
                      "gauge 'g' takes no bucket bounds");
}

static void label_value_validation(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const labels[] = {"a", "b"};
  tw_metric_family *f;
  assert_int_equal(tw_metrics_family(m, TW_METRIC_GAUGE, "twin_g", "h", labels,
                                     2, NULL, 0, &f, NULL),
                   TW_OK);
  static const struct {
    const char *value;
    const char *mention;
  } cases[] = {
      {"\xff", "'twin_g': value of label 'b' is not valid UTF-8"},
      {"\x80", "not valid UTF-8"},             /* stray continuation */
      {"\xc0\xaf", "not valid UTF-8"},         /* overlong '/' */
      {"\xe0\x80\xaf", "not valid UTF-8"},     /* overlong, 3 bytes */
      {"\xed\xa0\x80", "not valid UTF-8"},     /* surrogate */
      {"\xf4\x90\x80\x80", "not valid UTF-8"}, /* above U+10FFFF */
      {"ab\xc3", "not valid UTF-8"},           /* truncated */
      {NULL, "value of label 'b' is NULL"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tw_err err;
    tw_err_init(&err);
    const char *values[] = {"ok", cases[i].value};
    tw_metric *c = (tw_metric *)&err;
    assert_int_equal(tw_metric_family_child(f, values, &c, &err), TW_EINVAL);
    assert_ptr_equal(c, (tw_metric *)&err);
    if (strstr(err.msg, cases[i].mention) == NULL)
      fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg,
               cases[i].mention);
  }
  tw_err err;
  tw_err_init(&err);
  tw_metric *c;
  assert_int_equal(tw_metric_family_child(f, NULL, &c, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "'twin_g': 2 label values needed"));

  /* Any valid UTF-8 is accepted: 2-, 3- and 4-byte sequences. */
  (void)child2(f, "caf\xc3\xa9", "\xe6\x97\xa5\xf0\x9f\x99\x82");
  char *text = render(m);
  assert_string_equal(text, "# HELP twin_g h\n# TYPE twin_g gauge\n"
                            "twin_g{a=\"caf\xc3\xa9\",b=\"\xe6\x97\xa5\xf0\x9f"
                            "\x99\x82\"} 0\n");
  tw_free(text);
  tw_metrics_free(m);
}

/* --- Re-registration ----------------------------------------------------- */

static void reregistration(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const ab[] = {"a", "b"};
  static const char *const ba[] = {"b", "a"};
  static const double b1[] = {1, 2};
  static const double b2[] = {1, 3};
  const int C = TW_METRIC_COUNTER, G = TW_METRIC_GAUGE, H = TW_METRIC_HISTOGRAM;
  tw_metric_family *f1, *f2, *h1, *h2;
  tw_err err;

  assert_int_equal(
      tw_metrics_family(m, C, "x_total", "X.", ab, 2, NULL, 0, &f1, NULL),
      TW_OK);
  /* Identical arguments (different copies of the strings) return it. */
  char help[] = "X.";
  const char *ab_copy[] = {"a", "b"};
  assert_int_equal(
      tw_metrics_family(m, C, "x_total", help, ab_copy, 2, NULL, 0, &f2, NULL),
      TW_OK);
  assert_ptr_equal(f1, f2);

  tw_err_init(&err);
  assert_int_equal(
      tw_metrics_family(m, C, "x_total", "Y.", ab, 2, NULL, 0, &f2, &err),
      TW_EEXIST);
  assert_non_null(strstr(err.msg, "'x_total' is already registered"));
  assert_int_equal(
      tw_metrics_family(m, C, "x_total", "X.", ba, 2, NULL, 0, &f2, NULL),
      TW_EEXIST);
  assert_int_equal(
      tw_metrics_family(m, C, "x_total", "X.", ab, 1, NULL, 0, &f2, NULL),
      TW_EEXIST);
  tw_err_init(&err);
  assert_int_equal(
      tw_metrics_family(m, G, "x_total", "X.", ab, 2, NULL, 0, &f2, &err),
      TW_EEXIST);
  assert_non_null(strstr(err.msg, "registered as a counter"));
  /* The shorthand wants no labels, so it differs too. */
  tw_metric *c;
  assert_int_equal(tw_metrics_counter(m, "x_total", "X.", &c, NULL), TW_EEXIST);

  assert_int_equal(
      tw_metrics_family(m, H, "h", "H.", NULL, 0, b1, 2, &h1, NULL), TW_OK);
  assert_int_equal(
      tw_metrics_family(m, H, "h", "H.", NULL, 0, b1, 2, &h2, NULL), TW_OK);
  assert_ptr_equal(h1, h2);
  assert_int_equal(
      tw_metrics_family(m, H, "h", "H.", NULL, 0, b2, 2, &h2, NULL), TW_EEXIST);
  assert_int_equal(
      tw_metrics_family(m, H, "h", "H.", NULL, 0, b1, 1, &h2, NULL), TW_EEXIST);

  /* Shorthands return the same child each time. */
  tw_metric *g1, *g2, *hc1, *hc2;
  assert_int_equal(tw_metrics_gauge(m, "g", "G.", &g1, NULL), TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "g", "G.", &g2, NULL), TW_OK);
  assert_ptr_equal(g1, g2);
  assert_int_equal(tw_metrics_histogram(m, "h", "H.", b1, 2, &hc1, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_histogram(m, "h", "H.", b1, 2, &hc2, NULL),
                   TW_OK);
  assert_ptr_equal(hc1, hc2);
  assert_int_equal(tw_metrics_gauge(m, "g", "Other.", &g2, NULL), TW_EEXIST);

  /* A histogram's series names are taken, in both orders. */
  tw_err_init(&err);
  assert_int_equal(tw_metrics_gauge(m, "h_sum", "S.", &g2, &err), TW_EEXIST);
  assert_non_null(strstr(err.msg, "'h_sum' clashes with a series of "
                                  "histogram 'h'"));
  assert_int_equal(tw_metrics_gauge(m, "h_count", "S.", &g2, NULL), TW_EEXIST);
  assert_int_equal(tw_metrics_gauge(m, "h_bucket", "S.", &g2, NULL), TW_EEXIST);
  assert_int_equal(tw_metrics_gauge(m, "h_max", "S.", &g2, NULL), TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "y_count", "S.", &g2, NULL), TW_OK);
  tw_err_init(&err);
  assert_int_equal(tw_metrics_histogram(m, "y", "Y.", b1, 2, &hc1, &err),
                   TW_EEXIST);
  assert_non_null(strstr(err.msg, "histogram 'y' would write a series named "
                                  "'y_count'"));

  char *text = render(m);
  assert_non_null(strstr(text, "# TYPE x_total counter\n"));
  assert_null(strstr(text, "Y."));
  tw_free(text);
  tw_metrics_free(m);
}

static double constant_fn(void *ud) { return *(const double *)ud; }

static void reregistration_callback(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  double one = 1, two = 2;
  tw_err err;
  assert_int_equal(tw_metrics_gauge_fn(m, "cb", "Cb.", constant_fn, &one, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_gauge_fn(m, "cb", "Cb.", constant_fn, &one, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_gauge_fn(m, "cb", "Cb.", constant_fn, &two, NULL),
                   TW_EEXIST);
  tw_err_init(&err);
  tw_metric *g;
  assert_int_equal(tw_metrics_gauge(m, "cb", "Cb.", &g, &err), TW_EEXIST);
  assert_non_null(strstr(err.msg, "registered as a callback gauge"));
  assert_int_equal(tw_metrics_gauge(m, "plain", "P.", &g, NULL), TW_OK);
  assert_int_equal(
      tw_metrics_gauge_fn(m, "plain", "P.", constant_fn, &one, NULL),
      TW_EEXIST);
  /* Validation applies to callbacks as well. */
  tw_err_init(&err);
  assert_int_equal(tw_metrics_gauge_fn(m, "nofn", "N.", NULL, NULL, &err),
                   TW_EINVAL);
  assert_non_null(strstr(err.msg, "'nofn': callback is NULL"));
  assert_int_equal(
      tw_metrics_gauge_fn(m, "bad-name", "N.", constant_fn, &one, NULL),
      TW_EINVAL);
  assert_int_equal(
      tw_metrics_gauge_fn(m, "nohelp", "", constant_fn, &one, NULL), TW_EINVAL);
  char *text = render(m);
  assert_string_equal(text, "# HELP cb Cb.\n# TYPE cb gauge\ncb 1\n"
                            "# HELP plain P.\n# TYPE plain gauge\nplain 0\n");
  tw_free(text);
  tw_metrics_free(m);
}

/* --- Updates ------------------------------------------------------------- */

static void counter_semantics(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  tw_metric *c;
  assert_int_equal(tw_metrics_counter(m, "c_total", "C.", &c, NULL), TW_OK);
  assert_true(tw_metric_value(c) == 0);
  tw_metric_inc(c);
  assert_int_equal(tw_metric_add(c, 2.5), TW_OK);
  assert_int_equal(tw_metric_add(c, 0), TW_OK);
  assert_true(tw_metric_value(c) == 3.5);
  assert_int_equal(tw_metric_add(c, -1), TW_EINVAL);
  assert_int_equal(tw_metric_add(c, -0.0), TW_OK); /* zero, not negative */
  assert_int_equal(tw_metric_add(c, NAN), TW_EINVAL);
  assert_int_equal(tw_metric_add(c, INFINITY), TW_EINVAL);
  assert_int_equal(tw_metric_add(c, -INFINITY), TW_EINVAL);
  assert_int_equal(tw_metric_set(c, 100), TW_EINVAL);
  assert_int_equal(tw_metric_observe(c, 1), TW_EINVAL);
  assert_true(tw_metric_value(c) == 3.5);
  tw_metrics_free(m);
}

static void gauge_semantics(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  tw_metric *g;
  assert_int_equal(tw_metrics_gauge(m, "g", "G.", &g, NULL), TW_OK);
  tw_metric_inc(g);
  assert_int_equal(tw_metric_add(g, -3.5), TW_OK);
  assert_true(tw_metric_value(g) == -2.5);
  assert_int_equal(tw_metric_add(g, NAN), TW_EINVAL);
  assert_int_equal(tw_metric_add(g, INFINITY), TW_EINVAL);
  assert_true(tw_metric_value(g) == -2.5);
  assert_int_equal(tw_metric_set(g, 10), TW_OK);
  assert_true(tw_metric_value(g) == 10);
  assert_int_equal(tw_metric_observe(g, 1), TW_EINVAL);
  assert_true(tw_metric_value(g) == 10);
  /* set takes any value; the exposition has spellings for all of them. */
  assert_int_equal(tw_metric_set(g, NAN), TW_OK);
  assert_true(isnan(tw_metric_value(g)));
  tw_metrics_free(m);
}

static void histogram_semantics(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const double b[] = {1, 2};
  tw_metric *h;
  assert_int_equal(tw_metrics_histogram(m, "h", "H.", b, 2, &h, NULL), TW_OK);
  assert_int_equal(tw_metric_observe(h, 1), TW_OK); /* le is inclusive */
  assert_int_equal(tw_metric_observe(h, 1.5), TW_OK);
  assert_int_equal(tw_metric_observe(h, 2.5), TW_OK);
  assert_int_equal(tw_metric_observe(h, -4), TW_OK);
  assert_int_equal(tw_metric_observe(h, NAN), TW_EINVAL);
  assert_int_equal(tw_metric_add(h, 1), TW_EINVAL);
  assert_int_equal(tw_metric_set(h, 1), TW_EINVAL);
  tw_metric_inc(h); /* nothing to increment: ignored */
  assert_true(tw_metric_value(h) == 4);
  char *text = render(m);
  assert_string_equal(text, "# HELP h H.\n# TYPE h histogram\n"
                            "h_bucket{le=\"1\"} 2\n"
                            "h_bucket{le=\"2\"} 3\n"
                            "h_bucket{le=\"+Inf\"} 4\n"
                            "h_sum 1\n"
                            "h_count 4\n");
  tw_free(text);
  assert_int_equal(tw_metric_observe(h, INFINITY), TW_OK);
  text = render(m);
  assert_non_null(strstr(text, "h_bucket{le=\"2\"} 3\n"
                               "h_bucket{le=\"+Inf\"} 5\n"
                               "h_sum +Inf\n"
                               "h_count 5\n"));
  tw_free(text);
  tw_metrics_free(m);
}

static void children_are_stable(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const labels[] = {"id"};
  tw_metric_family *f;
  assert_int_equal(tw_metrics_family(m, TW_METRIC_COUNTER, "c_total", "C.",
                                     labels, 1, NULL, 0, &f, NULL),
                   TW_OK);
  tw_metric *first = child1(f, "0");
  tw_metric_inc(first);
  /* Many more children force the child array to move; pointers do not. */
  char id[16];
  for (int i = 1; i < 200; i++) {
    (void)snprintf(id, sizeof id, "%d", i);
    tw_metric_inc(child1(f, id));
  }
  assert_ptr_equal(child1(f, "0"), first);
  assert_int_equal(tw_metric_add(first, 1), TW_OK);
  assert_true(tw_metric_value(first) == 2);
  assert_true(tw_metric_value(child1(f, "199")) == 1);
  tw_metrics_free(m);
}

static void exponential_buckets(void **state) {
  (void)state;
  double out[4] = {-1, -1, -1, -1};
  assert_int_equal(tw_metrics_exponential_buckets(0.5, 2, 4, out), TW_OK);
  assert_true(out[0] == 0.5 && out[1] == 1 && out[2] == 2 && out[3] == 4);
  double keep[3] = {7, 7, 7};
  assert_int_equal(tw_metrics_exponential_buckets(0, 2, 3, keep), TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(-1, 2, 3, keep), TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(1, 1, 3, keep), TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(1, NAN, 3, keep), TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(INFINITY, 2, 3, keep),
                   TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(1, 2, 0, keep), TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(1, 2, 3, NULL), TW_EINVAL);
  assert_int_equal(tw_metrics_exponential_buckets(1e300, 1e10, 3, keep),
                   TW_EINVAL); /* overflows to +Inf */
  assert_true(keep[0] == 7 && keep[1] == 7 && keep[2] == 7);
}

/* --- Ordering and callbacks ---------------------------------------------- */

static void render_ordering(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const labels[] = {"x", "y"};
  tw_metric_family *f;
  tw_metric *g;
  assert_int_equal(tw_metrics_gauge(m, "zeta", "Z.", &g, NULL), TW_OK);
  assert_int_equal(tw_metrics_family(m, TW_METRIC_GAUGE, "beta", "B.", labels,
                                     2, NULL, 0, &f, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "alpha", "A.", &g, NULL), TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "Beta", "B.", &g, NULL), TW_OK);
  (void)child2(f, "b", "a");
  (void)child2(f, "a", "z");
  (void)child2(f, "a", "b");
  (void)child2(f, "", "q");
  (void)child2(f, "a", "");

  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_puts(&b, "previous\n"), TW_OK);
  assert_int_equal(tw_metrics_render(m, &b), TW_OK);
  assert_string_equal(b.data, "previous\n"
                              "# HELP Beta B.\n# TYPE Beta gauge\nBeta 0\n"
                              "# HELP alpha A.\n# TYPE alpha gauge\nalpha 0\n"
                              "# HELP beta B.\n# TYPE beta gauge\n"
                              "beta{x=\"\",y=\"q\"} 0\n"
                              "beta{x=\"a\",y=\"\"} 0\n"
                              "beta{x=\"a\",y=\"b\"} 0\n"
                              "beta{x=\"a\",y=\"z\"} 0\n"
                              "beta{x=\"b\",y=\"a\"} 0\n"
                              "# HELP zeta Z.\n# TYPE zeta gauge\nzeta 0\n");
  tw_buf_fini(&b);
  tw_metrics_free(m);
}

static double counting_fn(void *ud) {
  int *calls = ud;
  return ++*calls;
}

static void callback_gauge(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  int calls = 0;
  assert_int_equal(tw_metrics_gauge_fn(m, "twin_scrapes", "Renders so far.",
                                       counting_fn, &calls, NULL),
                   TW_OK);
  assert_int_equal(calls, 0); /* not called at registration */
  char *text = render(m);
  assert_string_equal(text, "# HELP twin_scrapes Renders so far.\n"
                            "# TYPE twin_scrapes gauge\ntwin_scrapes 1\n");
  tw_free(text);
  text = render(m);
  assert_non_null(strstr(text, "twin_scrapes 2\n"));
  tw_free(text);
  assert_int_equal(calls, 2);
  /* A callback counter renders as a counter and keeps the counter rules. */
  assert_int_equal(tw_metrics_counter_fn(m, "twin_reads_total", "Reads.",
                                         counting_fn, &calls, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_counter_fn(m, "twin_reads", "Reads.", counting_fn,
                                         &calls, NULL),
                   TW_EINVAL);
  assert_int_equal(
      tw_metrics_counter_fn(m, "twin_null_total", "Reads.", NULL, NULL, NULL),
      TW_EINVAL);
  assert_int_equal(tw_metrics_gauge_fn(m, "twin_reads_total", "Reads.",
                                       counting_fn, &calls, NULL),
                   TW_EEXIST);
  text = render(m);
  assert_non_null(strstr(text, "# TYPE twin_reads_total counter\n"
                               "twin_reads_total 3\n"));
  tw_free(text);
  tw_metrics_free(m);
}

/* --- Concurrency --------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 100000

typedef struct worker {
  tw_metric_family *counters; /* label "who" */
  tw_metric *gauge;
  tw_metric *hist;
  tw_metric *shared; /* out: the child every thread asked for */
  int id;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  char own[16];
  (void)snprintf(own, sizeof own, "t%d", w->id);
  const char *shared_v[] = {"all"};
  const char *own_v[] = {own};
  tw_metric *shared, *mine;
  if (tw_metric_family_child(w->counters, shared_v, &shared, NULL) != TW_OK ||
      tw_metric_family_child(w->counters, own_v, &mine, NULL) != TW_OK)
    return NULL;
  w->shared = shared;
  static const double obs[] = {0.25, 1, 4};
  for (int i = 0; i < ROUNDS; i++) {
    tw_metric_inc(shared);
    tw_metric_inc(mine);
    (void)tw_metric_add(w->gauge, 0.5);
    (void)tw_metric_observe(w->hist, obs[i % 3]);
  }
  return NULL;
}

static void concurrent_updates(void **state) {
  (void)state;
  tw_metrics *m = new_registry();
  static const char *const who[] = {"who"};
  static const double b[] = {0.5, 2};
  tw_metric_family *f;
  tw_metric *g, *h;
  assert_int_equal(tw_metrics_family(m, TW_METRIC_COUNTER, "ops_total", "O.",
                                     who, 1, NULL, 0, &f, NULL),
                   TW_OK);
  assert_int_equal(tw_metrics_gauge(m, "level", "L.", &g, NULL), TW_OK);
  assert_int_equal(tw_metrics_histogram(m, "size_bytes", "S.", b, 2, &h, NULL),
                   TW_OK);
  pthread_t th[THREADS];
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){f, g, h, NULL, i};
    assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
  }
  /* Render concurrently with the updates: it must not block or crash. */
  for (int i = 0; i < 20; i++)
    tw_free(render(m));
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);

  for (int i = 0; i < THREADS; i++) {
    assert_ptr_equal(w[i].shared, w[0].shared);
    char own[16];
    (void)snprintf(own, sizeof own, "t%d", i);
    assert_true(tw_metric_value(child1(f, own)) == ROUNDS);
  }
  assert_true(tw_metric_value(w[0].shared) == (double)THREADS * ROUNDS);
  assert_true(tw_metric_value(g) == 0.5 * THREADS * ROUNDS);
  assert_true(tw_metric_value(h) == (double)THREADS * ROUNDS);
  char *text = render(m);
  /* ROUNDS = 3k + 1: the first observation value gets one extra, so each
   * thread adds k * (0.25 + 1 + 4) + 0.25 to the sum. */
  char want[256];
  (void)snprintf(want, sizeof want,
                 "size_bytes_bucket{le=\"0.5\"} %d\n"
                 "size_bytes_bucket{le=\"2\"} %d\n"
                 "size_bytes_bucket{le=\"+Inf\"} %d\n"
                 "size_bytes_sum %d\n"
                 "size_bytes_count %d\n",
                 THREADS * (ROUNDS / 3 + 1), THREADS * (2 * (ROUNDS / 3) + 1),
                 THREADS * ROUNDS, THREADS * ((ROUNDS / 3) * 21 + 1) / 4,
                 THREADS * ROUNDS);
  if (strstr(text, want) == NULL)
    fail_msg("want\n%s\nin\n%s", want, text);
  tw_free(text);
  tw_metrics_free(m);
}

/* --- Allocation failures ------------------------------------------------- */

static int new_round(void) {
  static char sentinel;
  tw_metrics *m = (tw_metrics *)&sentinel; /* untouched on failure */
  tw_err err;
  tw_err_init(&err);
  int rc = tw_metrics_new(&m, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_int_equal(err.code, TW_ENOMEM);
    assert_ptr_equal(m, (tw_metrics *)&sentinel);
    return rc;
  }
  tw_metrics_free(m);
  return TW_OK;
}

static void alloc_failures_new(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(new_round());
}

/* The registry under test and a buffer big enough that rendering into it
 * needs no allocation, so a round can check the registry is unchanged. */
static tw_metrics *oom_reg;
static tw_buf oom_scratch;
static char *oom_before;

static void oom_setup(void) {
  oom_reg = new_registry();
  tw_buf_init(&oom_scratch);
  assert_int_equal(tw_buf_reserve(&oom_scratch, 1 << 16), TW_OK);
}

static void oom_snapshot(void) {
  tw_free(oom_before);
  oom_before = render(oom_reg);
}

static void oom_check_unchanged(void) {
  tw_buf_reset(&oom_scratch);
  assert_int_equal(tw_metrics_render(oom_reg, &oom_scratch), TW_OK);
  assert_string_equal(oom_scratch.data, oom_before);
}

static void oom_teardown(void) {
  tw_free(oom_before);
  oom_before = NULL;
  tw_buf_fini(&oom_scratch);
  tw_metrics_free(oom_reg);
  oom_reg = NULL;
}

static int family_round(tw_metric_type type, const char *name, size_t nlabels,
                        size_t nbounds) {
  static const char *const labels[] = {"method", "code", "route"};
  static const double bounds[] = {0.1, 1, 10};
  tw_metric_family *f = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_metrics_family(oom_reg, type, name, "Help text.", labels, nlabels,
                             nbounds ? bounds : NULL, nbounds, &f, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_non_null(strstr(err.msg, name));
    assert_null(f);
    oom_check_unchanged();
  }
  return rc;
}

static int gauge_fn_round(void) {
  static double v = 3;
  int rc = tw_metrics_gauge_fn(oom_reg, "cb", "Cb.", constant_fn, &v, NULL);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    oom_check_unchanged();
  }
  return rc;
}

static int shorthand_round(void) {
  static const double bounds[] = {1, 2};
  tw_metric *h = NULL;
  int rc =
      tw_metrics_histogram(oom_reg, "lat_seconds", "L.", bounds, 2, &h, NULL);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_null(h);
    oom_check_unchanged();
    return rc;
  }
  return tw_metric_observe(h, 1.5);
}

static void alloc_failures_family(void **state) {
  (void)state;
  oom_setup();
  /* The first family also allocates the registry's family array. */
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(family_round(TW_METRIC_COUNTER, "a_total", 2, 0));
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(family_round(TW_METRIC_HISTOGRAM, "b_seconds", 3, 3));
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(family_round(TW_METRIC_GAUGE, "c", 0, 0));
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(family_round(TW_METRIC_HISTOGRAM, "d", 0, 1));
  /* The fifth family makes the array grow. */
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(family_round(TW_METRIC_GAUGE, "e", 1, 0));
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(gauge_fn_round());
  oom_snapshot();
  TW_TEST_ALLOC_FAILURES(shorthand_round());
  char *text = render(oom_reg);
  assert_non_null(strstr(text, "# TYPE a_total counter\n"));
  assert_non_null(strstr(text, "\ncb 3\n"));
  assert_non_null(strstr(text, "\nlat_seconds_count 1\n"));
  tw_free(text);
  oom_teardown();
}

static tw_metric_family *oom_family;

static int child_round(const char *v) {
  const char *values[] = {"fixed", v};
  tw_metric *c = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_metric_family_child(oom_family, values, &c, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_non_null(strstr(err.msg, "'kids'"));
    assert_null(c);
    oom_check_unchanged();
    return rc;
  }
  return tw_metric_observe(c, 5);
}

static void alloc_failures_child(void **state) {
  (void)state;
  oom_setup();
  static const char *const labels[] = {"a", "b"};
  static const double bounds[] = {1, 10};
  assert_int_equal(tw_metrics_family(oom_reg, TW_METRIC_HISTOGRAM, "kids", "K.",
                                     labels, 2, bounds, 2, &oom_family, NULL),
                   TW_OK);
  /* Enough children to cover both a first allocation of the child array and
   * its growth. */
  char v[16];
  for (int i = 0; i < 6; i++) {
    (void)snprintf(v, sizeof v, "v%d", i);
    oom_snapshot();
    TW_TEST_ALLOC_FAILURES(child_round(v));
  }
  char *text = render(oom_reg);
  assert_non_null(strstr(text, "kids_count{a=\"fixed\",b=\"v5\"} 1\n"));
  tw_free(text);
  oom_family = NULL;
  oom_teardown();
}

static const char *render_expected;

static int render_round(void) {
  tw_buf b = TW_BUF_INIT;
  int rc = tw_buf_puts(&b, "keep me\n");
  if (rc == TW_OK) {
    rc = tw_metrics_render(oom_reg, &b);
    if (rc != TW_OK) {
      assert_int_equal(rc, TW_ENOMEM);
      assert_string_equal(b.data, "keep me\n");
      assert_int_equal(b.len, 8);
    } else {
      assert_string_equal(b.data + 8, render_expected);
    }
  }
  tw_buf_fini(&b);
  return rc;
}

static void alloc_failures_render(void **state) {
  (void)state;
  oom_setup();
  static const char *const labels[] = {"path"};
  tw_metric_family *f;
  assert_int_equal(tw_metrics_family(oom_reg, TW_METRIC_COUNTER, "hits_total",
                                     "Hits.", labels, 1, NULL, 0, &f, NULL),
                   TW_OK);
  char path[32];
  for (int i = 0; i < 50; i++) {
    (void)snprintf(path, sizeof path, "/some/long/path/%d", i);
    tw_metric_inc(child1(f, path));
  }
  oom_snapshot();
  render_expected = oom_before;
  assert_true(strlen(render_expected) > 1000); /* several buffer growths */
  TW_TEST_ALLOC_FAILURES(render_round());
  render_expected = NULL;
  oom_teardown();
}

/* --- promtool sample ----------------------------------------------------- */

static double queue_depth(void *ud) {
  (void)ud;
  return 3;
}

/* Builds a registry like a running twin would have and prints it. */
static int print_exposition(void) {
  tw_metrics *m = NULL;
  tw_err err;
  tw_err_init(&err);
  static const char *const http_labels[] = {"method", "code"};
  static const char *const ingest_labels[] = {"source"};
  static const char *const graph_labels[] = {"graph"};
  double tick_bounds[12];
  tw_metric_family *http, *ingest, *ticks;
  tw_metric *nodes;
  int rc = tw_metrics_new(&m, &err);
  if (rc == TW_OK)
    rc = tw_metrics_family(m, TW_METRIC_COUNTER, "twin_http_requests_total",
                           "HTTP requests served, by method and status code.",
                           http_labels, 2, NULL, 0, &http, &err);
  if (rc == TW_OK)
    rc = tw_metrics_family(m, TW_METRIC_COUNTER, "twin_ingest_bytes_total",
                           "Bytes of telemetry ingested, by source.",
                           ingest_labels, 1, NULL, 0, &ingest, &err);
  if (rc == TW_OK)
    rc = tw_metrics_gauge(m, "twin_graph_nodes", "Nodes in the loaded graph.",
                          &nodes, &err);
  if (rc == TW_OK)
    rc = tw_metrics_exponential_buckets(0.0005, 2, 12, tick_bounds);
  if (rc == TW_OK)
    rc = tw_metrics_family(m, TW_METRIC_HISTOGRAM, "twin_graph_tick_seconds",
                           "Wall time of one graph tick, by graph.",
                           graph_labels, 1, tick_bounds, 12, &ticks, &err);
  if (rc == TW_OK)
    rc =
        tw_metrics_gauge_fn(m, "twin_queue_depth", "Jobs waiting for a worker.",
                            queue_depth, NULL, &err);
  const char *get200[] = {"GET", "200"}, *post400[] = {"POST", "400"};
  const char *mqtt[] = {"mqtt"}, *csv[] = {"csv \"upload\"\n"};
  const char *plant[] = {"plant"}, *grid[] = {"grid"};
  tw_metric *c;
  if (rc == TW_OK &&
      (rc = tw_metric_family_child(http, get200, &c, &err)) == TW_OK)
    rc = tw_metric_add(c, 1234);
  if (rc == TW_OK &&
      (rc = tw_metric_family_child(http, post400, &c, &err)) == TW_OK)
    tw_metric_inc(c);
  if (rc == TW_OK &&
      (rc = tw_metric_family_child(ingest, mqtt, &c, &err)) == TW_OK)
    rc = tw_metric_add(c, 1048576);
  if (rc == TW_OK &&
      (rc = tw_metric_family_child(ingest, csv, &c, &err)) == TW_OK)
    rc = tw_metric_add(c, 512);
  if (rc == TW_OK)
    rc = tw_metric_set(nodes, 42);
  if (rc == TW_OK &&
      (rc = tw_metric_family_child(ticks, plant, &c, &err)) == TW_OK) {
    static const double obs[] = {0.0004, 0.0021, 0.013, 0.2, 1.7};
    for (size_t i = 0; i < 5 && rc == TW_OK; i++)
      rc = tw_metric_observe(c, obs[i]);
  }
  if (rc == TW_OK)
    rc = tw_metric_family_child(ticks, grid, &c, &err);
  tw_buf out = TW_BUF_INIT;
  if (rc == TW_OK)
    rc = tw_metrics_render(m, &out);
  if (rc == TW_OK &&
      (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0))
    rc = TW_EIO;
  tw_buf_fini(&out);
  tw_metrics_free(m);
  if (rc != TW_OK) {
    (void)fprintf(stderr, "test_base_metrics: %s\n",
                  err.code != TW_OK ? tw_err_msg(&err) : tw_strerror(rc));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--exposition") == 0)
    return print_exposition();
  const struct CMUnitTest tests[] = {
      TW_TEST(golden_exposition),
      TW_TEST(empty_registry_renders_nothing),
      TW_TEST(escaping),
      TW_TEST(number_format),
      TW_TEST(name_validation),
      TW_TEST(help_validation),
      TW_TEST(label_name_validation),
      TW_TEST(bounds_validation),
      TW_TEST(label_value_validation),
      TW_TEST(reregistration),
      TW_TEST(reregistration_callback),
      TW_TEST(counter_semantics),
      TW_TEST(gauge_semantics),
      TW_TEST(histogram_semantics),
      TW_TEST(children_are_stable),
      TW_TEST(exponential_buckets),
      TW_TEST(render_ordering),
      TW_TEST(callback_gauge),
      TW_TEST(concurrent_updates),
      TW_TEST(alloc_failures_new),
      TW_TEST(alloc_failures_family),
      TW_TEST(alloc_failures_child),
      TW_TEST(alloc_failures_render),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
