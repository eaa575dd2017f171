/*
 * test_dsl.c - the .twg text form: every statement, exact round trips
 * (.twg -> JSON -> .twg and JSON -> .twg -> JSON), syntax errors with
 * their line and column, and the loader's diagnostics pointing into the
 * .twg text.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tw_test.h"

static const char twg[] =
    "# a hybrid twin\n"
    "graph rig\n"
    "dt 0.005\n"
    "\n"
    "input F size 2 unit \"N\"\n"
    "input w unit \"rad/s\"\n"
    "\n"
    "block g = builtin:gain size 2\n"
    "  param k = [1.5, -2]\n"
    "\n"
    "block net = builtin:mlp sizes [2, 4, 1] activations [tanh, none] seed 9 "
    "every 4\n"
    "  param b2 = 0.25 min -1 max 1 trainable\n"
    "  param W2 = 1e-3 fixed\n"
    "\n"
    "block i = builtin:integrator period 0.01\n"
    "\n"
    "block m = \"wasm:models with space/m.wasm\"\n"
    "\n"
    "connect inputs.F -> g.u\n"
    "connect g.y -> net.in\n"
    "connect net.out -> i.u\n"
    "\n"
    "output y = i.y\n"
    "output h = net.out\n";

/* Writes text to /tmp/tw-test-dsl-PID-name; the path goes to path (the
 * caller's: each file is removed by name at the end). */
static char *write_tmp(char path[static 256], const char *name,
                       const char *text) {
  (void)snprintf(path, 256, "/tmp/tw-test-dsl-%ld-%s", (long)getpid(), name);
  assert_int_equal(tw_file_write_atomic(path, text, strlen(text), NULL), TW_OK);
  return path;
}

static void round_trips(void **state) {
  (void)state;
  char bp[256], bj[256], bt[256];
  char *p = write_tmp(bp, "a.twg", twg);
  tw_buf json = TW_BUF_INIT, again = TW_BUF_INIT, canon = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_format(p, true, &json, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_non_null(
      strstr(json.data, "\"model\": \"wasm:models with space/m.wasm\""));
  assert_non_null(strstr(json.data, "\"tanh\""));
  assert_non_null(strstr(json.data, "\"period\": 0.01"));
  assert_non_null(strstr(json.data, "\"trainable\": false"));
  /* .twg -> canonical .twg; JSON -> .twg gives the same text. */
  assert_int_equal(tw_graph_format(p, false, &canon, NULL), TW_OK);
  char *pj = write_tmp(bj, "a.json", json.data);
  assert_int_equal(tw_graph_format(pj, false, &again, NULL), TW_OK);
  assert_string_equal(canon.data, again.data);
  /* and back to the same JSON. */
  char *pt = write_tmp(bt, "b.twg", canon.data);
  tw_buf json2 = TW_BUF_INIT;
  assert_int_equal(tw_graph_format(pt, true, &json2, NULL), TW_OK);
  assert_string_equal(json.data, json2.data);
  /* Reals stay reals, integers integers. */
  assert_non_null(strstr(canon.data, "param W2 = 0.001 fixed"));
  assert_non_null(strstr(canon.data, "param k = [1.5, -2]"));
  unlink(pt);
  unlink(pj);
  unlink(p);
  tw_buf_fini(&json);
  tw_buf_fini(&json2);
  tw_buf_fini(&again);
  tw_buf_fini(&canon);
}

static void syntax_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *msg;
  } cases[] = {
      {"graph g\nfrob 1\n", "x.twg:2:1: error: expected a statement"},
      {"block a builtin:gain\n", "x.twg:1:9: error: expected '='"},
      {"param k = 1\n", "x.twg:1:7: error: 'param' must follow a 'block'"},
      {"block a = builtin:gain\n  param k = [1, 2\n",
       "x.twg:2:18: error: expected ',' or ']'"},
      {"block a = \"x\n", "x.twg:1:11: error: unterminated string"},
      {"connect a.y => b.u\n", "x.twg:1:13: error: expected '->', found '='"},
      {"dt 0.1 0.2\n", "x.twg:1:8: error: unexpected '0.2' at the end"},
      {"block a = builtin:gain\nblock a = builtin:gain\n",
       "x.twg:2:7: error: block 'a' defined twice"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tw_graph *g = NULL;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_graph_parse(cases[i].text, strlen(cases[i].text), "x.twg", ".",
                            NULL, NULL, &g, &err);
    if (rc != TW_EPARSE || strstr(err.msg, cases[i].msg) == NULL)
      print_error("case %zu: got %d '%s', want '%s'\n", i, rc, err.msg,
                  cases[i].msg);
    assert_int_equal(rc, TW_EPARSE);
    assert_non_null(strstr(err.msg, cases[i].msg));
  }
}

/* The loader's diagnostics point into the .twg text. */
static void diagnostics_point_into_twg(void **state) {
  (void)state;
  static const char text[] = "graph g\n"
                             "dt 0.1\n"
                             "block a = builtin:gain size 2\n"
                             "block b = builtin:gain\n"
                             "  param q = 1\n"
                             "connect a.y -> b.u\n";
  tw_graph *g = NULL;
  tw_buf d = TW_BUF_INIT;
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "d.twg", ".", NULL, &d, &g, NULL),
      TW_EVALIDATE);
  assert_non_null(strstr(d.data, "d.twg:5:13: error: block 'b' (gain) has no "
                                 "parameter 'q'"));
  assert_non_null(
      strstr(d.data, "d.twg:6:16: error: size mismatch: a.y has 2 values"));
  tw_buf_fini(&d);
}

/* A graph written in .twg runs like its JSON. */
static void runs(void **state) {
  (void)state;
  static const char text[] = "graph c\ndt 0.5\ninput u\n"
                             "block g = builtin:gain\n  param k = 3\n"
                             "block i = builtin:integrator\n"
                             "connect inputs.u -> g.u\nconnect g.y -> i.u\n"
                             "output iy = i.y\n";
  tw_graph *g = NULL;
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "r.twg", ".", NULL, NULL, &g, NULL),
      TW_OK);
  double in[3] = {1, 2, 3}, out[3];
  assert_int_equal(tw_graph_run(g, 3, in, out, NULL), TW_OK);
  assert_true(out[0] == 0 && out[1] == 1.5 && out[2] == 4.5);
  tw_graph_free(g);
}

static int parse_round(void) {
  tw_graph *g = NULL;
  int rc = tw_graph_parse(twg, strlen(twg), "a.twg", "/nonexistent", NULL, NULL,
                          &g, NULL);
  tw_graph_free(g);
  return rc == TW_EVALIDATE ? TW_OK : rc; /* the wasm file is missing */
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(parse_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(round_trips),
      TW_TEST(syntax_errors),
      TW_TEST(diagnostics_point_into_twg),
      TW_TEST(runs),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
