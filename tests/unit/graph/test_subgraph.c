/*
 * test_subgraph.c - graphs as blocks of other graphs ("graph:PATH"): the
 * same values as the flattened graph (also at a slower rate, with the
 * sub-graph's own multi-rate blocks), feedthrough that keeps loop
 * detection exact, parameters addressed through the block, the .twg form,
 * every diagnostic (the sub-graph's in its own file, dt mismatches,
 * cycles, depth, missing files), gradients against finite differences, and
 * allocation failures.
 */
#include "tw_test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int make_dir(void **state) {
  (void)state;
  (void)snprintf(dir, sizeof dir, "/tmp/tw-test-subgraph-XXXXXX");
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes dir/name and returns its path (static buffer, one at a time). */
static const char *put(const char *name, const char *text) {
  static char path[256];
  (void)snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_int_equal(tw_file_write_atomic(path, text, strlen(text), NULL), TW_OK);
  return path;
}

static int load_rc(const char *name, tw_buf *diags, tw_graph **g, tw_err *err) {
  char path[256];
  (void)snprintf(path, sizeof path, "%s/%s", dir, name);
  return tw_graph_load(path, NULL, diags, g, err);
}

static tw_graph *load(const char *name) {
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc = load_rc(name, &diags, &g, &err);
  if (rc != TW_OK)
    print_error("%s\n%s", err.msg, diags.data != NULL ? diags.data : "");
  assert_int_equal(rc, TW_OK);
  tw_buf_fini(&diags);
  return g;
}

/* Loading fails; returns the diagnostics (caller frees). */
static tw_buf fails(const char *name, int code, tw_err *err) {
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  tw_err_init(err);
  assert_int_equal(load_rc(name, &diags, &g, err), code);
  assert_null(g);
  return diags;
}

static void has(const tw_buf *b, const char *what) {
  if (b->data == NULL || strstr(b->data, what) == NULL)
    print_error("missing: %s\nin:\n%s", what, b->data ? b->data : "");
  assert_non_null(b->data);
  assert_non_null(strstr(b->data, what));
}

/* u -> gain -> integrator, both outputs out; a unit on the input. */
static const char inner[] =
    "{\"graph\": 1, \"name\": \"inner\", \"dt\": 0.1,\n"
    " \"inputs\": {\"u\": {\"size\": 1, \"unit\": \"N\"}},\n"
    " \"blocks\": {\"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": "
    "3}},\n"
    "   \"i\": {\"model\": \"builtin:integrator\"}},\n"
    " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"g.u\"},\n"
    "   {\"from\": \"g.y\", \"to\": \"i.u\"}],\n"
    " \"outputs\": {\"gy\": \"g.y\", \"iy\": \"i.y\"}}\n";

static void run(tw_graph *g, int64_t ticks, const double *in, double *out) {
  assert_int_equal(tw_graph_run(g, ticks, in, out, NULL), TW_OK);
}

/* A sub-graph gives the same bits as its blocks inlined, and its
 * parameters are the block's ("s.g.k"), set from the including file. */
static void same_values_as_flat(void **state) {
  (void)state;
  put("inner.json", inner);
  put("outer.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"f\": {\"unit\": \"N\"}},"
      " \"blocks\": {\"s\": {\"model\": \"graph:inner.json\","
      "                      \"params\": {\"g.k\": 2.5}},"
      "   \"h\": {\"model\": \"builtin:gain\", \"params\": {\"k\": -1}}},"
      " \"connections\": [{\"from\": \"inputs.f\", \"to\": \"s.u\"},"
      "   {\"from\": \"s.iy\", \"to\": \"h.u\"}],"
      " \"outputs\": {\"a\": \"s.gy\", \"b\": \"h.y\"}}");
  put("flat.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"f\": {}},"
      " \"blocks\": {\"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": "
      "2.5}},"
      "   \"i\": {\"model\": \"builtin:integrator\"},"
      "   \"h\": {\"model\": \"builtin:gain\", \"params\": {\"k\": -1}}},"
      " \"connections\": [{\"from\": \"inputs.f\", \"to\": \"g.u\"},"
      "   {\"from\": \"g.y\", \"to\": \"i.u\"}, {\"from\": \"i.y\", \"to\": "
      "\"h.u\"}],"
      " \"outputs\": {\"a\": \"g.y\", \"b\": \"h.y\"}}");
  tw_graph *a = load("outer.json"), *b = load("flat.json");
  assert_int_equal(tw_graph_nparam_ports(a), 2);
  assert_string_equal(tw_graph_param_name(a, 0, NULL, NULL), "s.g.k");
  double in[8], oa[16], ob[16];
  for (int k = 0; k < 8; k++)
    in[k] = sin(0.7 * k) + 0.1;
  run(a, 8, in, oa);
  run(b, 8, in, ob);
  assert_memory_equal(oa, ob, sizeof oa);
  assert_true(oa[2 * 3] == 2.5 * in[3]); /* the params object took */
  /* Runs start over. */
  run(a, 8, in, ob);
  assert_memory_equal(oa, ob, sizeof oa);
  tw_graph_free(a);
  tw_graph_free(b);
}

/* A sub-graph stepping every 2 ticks (its dt is 2 dt), with a block of its
 * own at half its rate: the flat graph with every 2 and every 4. */
static void slower_rate(void **state) {
  (void)state;
  put("slow.json",
      "{\"graph\": 1, \"dt\": 0.2, \"inputs\": {\"u\": {}},"
      " \"blocks\": {\"i\": {\"model\": \"builtin:integrator\"},"
      "   \"j\": {\"model\": \"builtin:integrator\", \"every\": 2}},"
      " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"i.u\"},"
      "   {\"from\": \"inputs.u\", \"to\": \"j.u\"}],"
      " \"outputs\": {\"i\": \"i.y\", \"j\": \"j.y\"}}");
  put("outer2.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"u\": {}},"
      " \"blocks\": {\"s\": {\"model\": \"graph:slow.json\", \"every\": 2},"
      "   \"f\": {\"model\": \"builtin:integrator\"}},"
      " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"s.u\"},"
      "   {\"from\": \"inputs.u\", \"to\": \"f.u\"}],"
      " \"outputs\": {\"i\": \"s.i\", \"j\": \"s.j\", \"f\": \"f.y\"}}");
  put("flat2.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"u\": {}},"
      " \"blocks\": {\"i\": {\"model\": \"builtin:integrator\", \"every\": 2},"
      "   \"j\": {\"model\": \"builtin:integrator\", \"every\": 4},"
      "   \"f\": {\"model\": \"builtin:integrator\"}},"
      " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"i.u\"},"
      "   {\"from\": \"inputs.u\", \"to\": \"j.u\"},"
      "   {\"from\": \"inputs.u\", \"to\": \"f.u\"}],"
      " \"outputs\": {\"i\": \"i.y\", \"j\": \"j.y\", \"f\": \"f.y\"}}");
  tw_graph *a = load("outer2.json"), *b = load("flat2.json");
  double in[12], oa[36], ob[36];
  for (int k = 0; k < 12; k++)
    in[k] = 1 + k;
  run(a, 12, in, oa);
  run(b, 12, in, ob);
  assert_memory_equal(oa, ob, sizeof oa);
  assert_true(oa[3 * 5 + 1] == 0.4 * 1); /* j stepped at tick 0 only */
  tw_graph_free(a);
  tw_graph_free(b);
  /* The sub-graph's dt must be the block's period. */
  put("outer3.json",
      "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"s\": {\"model\": "
      "\"graph:slow.json\"}}}");
  tw_err err;
  tw_buf d = fails("outer3.json", TW_EVALIDATE, &err);
  has(&d, "outer3.json:1:51: error: block 's': sub-graph 'slow.json' has dt "
          "= 0.2 s, but the block steps every 0.1 s (1 x dt); the two must "
          "be equal");
  tw_buf_fini(&d);
}

/* An output computed from an integrator does not feed through, so a loop
 * through it is fine; a loop through a gain is an algebraic loop. */
static void feedthrough_keeps_loops_exact(void **state) {
  (void)state;
  put("inner.json", inner);
  put("loop_ok.json",
      "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"s\": {\"model\": "
      "\"graph:inner.json\"}, \"h\": {\"model\": \"builtin:gain\", "
      "\"params\": {\"k\": -0.5}}},"
      " \"connections\": [{\"from\": \"s.iy\", \"to\": \"h.u\"},"
      "   {\"from\": \"h.y\", \"to\": \"s.u\"}],"
      " \"outputs\": {\"x\": \"s.iy\"}}");
  tw_graph *g = load("loop_ok.json");
  double out[6];
  run(g, 6, NULL, out);
  for (int k = 0; k < 6; k++)
    assert_true(out[k] == 0); /* x0 = 0 and no input: stays 0 */
  tw_graph_free(g);
  put("loop_bad.json",
      "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"s\": {\"model\": "
      "\"graph:inner.json\"}, \"h\": {\"model\": \"builtin:gain\"}},"
      " \"connections\": [{\"from\": \"s.gy\", \"to\": \"h.u\"},"
      "   {\"from\": \"h.y\", \"to\": \"s.u\"}]}");
  tw_err err;
  tw_buf d = fails("loop_bad.json", TW_EVALIDATE, &err);
  has(&d, "algebraic loop: blocks 's', 'h' depend");
  tw_buf_fini(&d);
  /* Units of the sub-graph's ports are checked like any block's. */
  put("units.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"p\": {\"unit\": \"m\"}},"
      " \"blocks\": {\"s\": {\"model\": \"graph:inner.json\"}},"
      " \"connections\": [{\"from\": \"inputs.p\", \"to\": \"s.u\"}]}");
  d = fails("units.json", TW_EVALIDATE, &err);
  has(&d, "unit mismatch: inputs.p is in 'm', s.u in 'N'");
  tw_buf_fini(&d);
}

/* The .twg form: a .twg sub-graph, parameters named through the block. */
static void twg_files(void **state) {
  (void)state;
  put("inner.twg", "graph inner\ndt 0.1\ninput u\n"
                   "block g = builtin:gain\n  param k = 3\n"
                   "connect inputs.u -> g.u\noutput y = g.y\n");
  put("outer.twg", "graph outer\ndt 0.1\ninput u\n"
                   "block s = graph:inner.twg\n  param g.k = 4\n"
                   "connect inputs.u -> s.u\noutput y = s.y\n");
  tw_graph *g = load("outer.twg");
  double in[2] = {1, 2}, out[2];
  run(g, 2, in, out);
  assert_true(out[0] == 4 && out[1] == 8);
  tw_graph_free(g);
  char path[256];
  (void)snprintf(path, sizeof path, "%s/outer.twg", dir);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_graph_format(path, false, &b, NULL), TW_OK);
  has(&b, "block s = graph:inner.twg\n  param g.k = 4\n");
  tw_buf_fini(&b);
  put("bad.twg", "graph outer\ndt 0.1\nblock s = builtin:gain\n"
                 "  param .k = 4\n");
  tw_err err;
  tw_buf d = fails("bad.twg", TW_EPARSE, &err);
  assert_non_null(strstr(err.msg, "bad.twg:4:9: error: expected a parameter"));
  tw_buf_fini(&d);
}

/* The sub-graph's own problems at their place in its file, plus one at the
 * block; every count includes them. */
static void diagnostics(void **state) {
  (void)state;
  put("broken.json", "{\"graph\": 1, \"dt\": 0.1,\n"
                     " \"blocks\": {\"g\": {\"model\": \"builtin:gain\",\n"
                     "   \"params\": {\"q\": 1}}},\n"
                     " \"outputs\": {\"y\": \"g.z\"}}\n");
  put("inner.json", inner);
  put("uses_broken.json",
      "{\"graph\": 1, \"dt\": 0.1,\n"
      " \"blocks\": {\"s\": {\"model\": \"graph:broken.json\"},\n"
      "   \"t\": {\"model\": \"graph:inner.json\", \"params\": {\"g.q\": 1}},\n"
      "   \"m\": {\"model\": \"graph:missing.json\"}}}\n");
  tw_err err;
  tw_buf d = fails("uses_broken.json", TW_EVALIDATE, &err);
  char want[512];
  (void)snprintf(want, sizeof want,
                 "%s/broken.json:3:20: error: block 'g' (gain) has no "
                 "parameter 'q'\n",
                 dir);
  has(&d, want);
  (void)snprintf(want, sizeof want,
                 "%s/broken.json:4:19: error: output: block 'g' (gain) has "
                 "no output port 'z'\n",
                 dir);
  has(&d, want);
  (void)snprintf(want, sizeof want,
                 "%s/uses_broken.json:2:28: error: block 's': sub-graph "
                 "'broken.json' does not load (2 errors in %s/broken.json)\n",
                 dir, dir);
  has(&d, want);
  has(&d, "uses_broken.json:3:57: error: block 't' (graph) has no "
          "parameter 'g.q'");
  has(&d, "uses_broken.json:4:19: error: block 'm': ");
  has(&d, "missing.json: cannot open");
  assert_non_null(strstr(err.msg, "uses_broken.json: 5 errors"));
  tw_buf_fini(&d);
  /* A syntax error in the sub-graph is one of its diagnostics. */
  put("syntax.json", "{\"graph\": 1,\n \"dt\": }\n");
  put("uses_syntax.json", "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"s\": "
                          "{\"model\": \"graph:syntax.json\"}}}");
  d = fails("uses_syntax.json", TW_EVALIDATE, &err);
  (void)snprintf(want, sizeof want, "%s/syntax.json:2:8: error: ", dir);
  has(&d, want);
  has(&d, "does not load (1 error in ");
  assert_non_null(strstr(err.msg, "uses_syntax.json: 2 errors"));
  tw_buf_fini(&d);
  /* Not a regular file. */
  put("dev.json", "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"s\": "
                  "{\"model\": \"graph:/dev/null\"}}}");
  d = fails("dev.json", TW_EVALIDATE, &err);
  has(&d, "block 's': sub-graph '/dev/null': a graph file's name ends in "
          ".json or .twg");
  tw_buf_fini(&d);
  char link[256];
  (void)snprintf(link, sizeof link, "%s/null.json", dir);
  (void)unlink(link);
  assert_int_equal(symlink("/dev/null", link), 0);
  put("devlink.json", "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"s\": "
                      "{\"model\": \"graph:null.json\"}}}");
  d = fails("devlink.json", TW_EVALIDATE, &err);
  has(&d, "null.json: not a regular file");
  tw_buf_fini(&d);
}

/* a includes b includes a: the chain is named. Files nest at most 16
 * deep. */
static void cycles_and_depth(void **state) {
  (void)state;
  put("a.json", "{\"graph\": 1, \"dt\": 1, \"blocks\": {\"b\": {\"model\": "
                "\"graph:b.json\"}}}");
  put("b.json", "{\"graph\": 1, \"dt\": 1, \"blocks\": {\"a\": {\"model\": "
                "\"graph:a.json\"}}}");
  tw_err err;
  tw_buf d = fails("a.json", TW_EVALIDATE, &err);
  char want[512];
  (void)snprintf(want, sizeof want,
                 "%s/b.json:1:49: error: block 'a': sub-graphs include each "
                 "other: %s/a.json -> %s/b.json -> %s/a.json\n",
                 dir, dir, dir, dir);
  has(&d, want);
  tw_buf_fini(&d);
  put("self.json", "{\"graph\": 1, \"dt\": 1, \"blocks\": {\"s\": {\"model\": "
                   "\"graph:self.json\"}}}");
  d = fails("self.json", TW_EVALIDATE, &err);
  has(&d, "sub-graphs include each other");
  tw_buf_fini(&d);
  /* d0 -> d1 -> ... -> d20: too deep at d17. */
  for (int i = 0; i <= 20; i++) {
    char name[32], text[256];
    (void)snprintf(name, sizeof name, "d%d.json", i);
    if (i < 20)
      (void)snprintf(text, sizeof text,
                     "{\"graph\": 1, \"dt\": 1, \"inputs\": {\"u\": {}},"
                     " \"blocks\": {\"s\": {\"model\": \"graph:d%d.json\"}},"
                     " \"connections\": [{\"from\": \"inputs.u\", \"to\": "
                     "\"s.u\"}], \"outputs\": {\"y\": \"s.y\"}}",
                     i + 1);
    else
      (void)snprintf(text, sizeof text,
                     "{\"graph\": 1, \"dt\": 1, \"inputs\": {\"u\": {}},"
                     " \"blocks\": {\"g\": {\"model\": \"builtin:gain\"}},"
                     " \"connections\": [{\"from\": \"inputs.u\", \"to\": "
                     "\"g.u\"}], \"outputs\": {\"y\": \"g.y\"}}");
    put(name, text);
  }
  d = fails("d0.json", TW_EVALIDATE, &err);
  has(&d, "sub-graphs nest more than 16 deep: ");
  has(&d, "d16.json -> ");
  tw_buf_fini(&d);
  /* 16 levels load, and the parameter is named through every block. */
  tw_graph *g = load("d4.json");
  assert_string_equal(tw_graph_param_name(g, 0, NULL, NULL),
                      "s.s.s.s.s.s.s.s.s.s.s.s.s.s.s.s.g.k");
  double in[1] = {1.5}, out[1];
  run(g, 1, in, out);
  assert_true(out[0] == 1.5);
  tw_graph_free(g);
}

/* L = 1/2 sum_k |outputs[k]|^2 */
static int sum_sq(void *ud, int64_t k, int64_t steps, const double *xn,
                  const double *y, double *value, double *gxn, double *gy,
                  tw_err *err) {
  (void)k, (void)steps, (void)xn, (void)gxn, (void)err;
  size_t n = *(const size_t *)ud;
  double v = 0;
  for (size_t i = 0; i < n; i++) {
    v += 0.5 * y[i] * y[i];
    if (gy != NULL)
      gy[i] = y[i];
  }
  *value = v;
  return TW_OK;
}

static double loss_at(tw_graph *g, const double *in, int64_t ticks) {
  size_t w = tw_graph_output_width(g);
  double out[512];
  assert_true((size_t)ticks * w <= 512);
  run(g, ticks, in, out);
  double L = 0;
  for (size_t i = 0; i < (size_t)ticks * w; i++)
    L += 0.5 * out[i] * out[i];
  return L;
}

/* A sub-graph at half the rate, with an MLP (every 2 inside it, so held
 * outputs in its state), in a loop of the including graph broken by its
 * integrator: every parameter's gradient against central differences,
 * the same bits under every checkpoint schedule, and wrt through the
 * block. */
static void gradient_matches_finite_differences(void **state) {
  (void)state;
  put("learned.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"u\": {}, \"f\": {}},"
      " \"blocks\": {\"n\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 3, 1],"
      "     \"activations\": [\"tanh\", \"none\"], \"seed\": 5, \"every\": 2},"
      "   \"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": 0.8}},"
      "   \"i\": {\"model\": \"builtin:integrator\"},"
      "   \"k\": {\"model\": \"builtin:gain\", \"params\": {\"k\": 1.3}}},"
      " \"connections\": [{\"from\": \"inputs.f\", \"to\": \"n.in\"},"
      "   {\"from\": \"n.out\", \"to\": \"g.u\"},"
      "   {\"from\": \"g.y\", \"to\": \"i.u\"},"
      "   {\"from\": \"inputs.u\", \"to\": \"k.u\"}],"
      " \"outputs\": {\"x\": \"i.y\", \"h\": \"g.y\", \"ku\": \"k.y\"}}");
  put("plant.json",
      "{\"graph\": 1, \"dt\": 0.05, \"inputs\": {\"f\": {}},"
      " \"blocks\": {\"s\": {\"model\": \"graph:learned.json\", \"period\": "
      "0.1},"
      "   \"c\": {\"model\": \"builtin:gain\", \"params\": {\"k\": -0.6}},"
      "   \"p\": {\"model\": \"builtin:integrator\"}},"
      " \"connections\": [{\"from\": \"inputs.f\", \"to\": \"s.f\"},"
      "   {\"from\": \"s.x\", \"to\": \"c.u\"},"
      "   {\"from\": \"c.y\", \"to\": \"p.u\"},"
      "   {\"from\": \"p.y\", \"to\": \"s.u\"}],"
      " \"outputs\": {\"x\": \"p.y\", \"h\": \"s.h\", \"ku\": \"s.ku\"}}");
  tw_graph *g = load("plant.json");
  size_t nth = tw_graph_nparams(g), w = tw_graph_output_width(g);
  assert_int_equal(nth, (3 + 3 + 3 + 1) + 1 + 1 + 1);
  tw_loss loss = {sum_sq, false, &w};
  double in[30];
  for (int k = 0; k < 30; k++)
    in[k] = sin(0.4 * k);
  double th[16];
  tw_graph_get_params(g, th);
  double grad[3][16], L[3];
  const char *sched[3] = {"all", "periodic:4", "revolve:2"};
  for (int s = 0; s < 3; s++)
    assert_int_equal(tw_graph_grad(g, 30, in, &loss, NULL, 0, sched[s], &L[s],
                                   grad[s], NULL),
                     TW_OK);
  assert_memory_equal(grad[0], grad[1], nth * sizeof(double));
  assert_memory_equal(grad[0], grad[2], nth * sizeof(double));
  assert_true(fabs(L[0] - loss_at(g, in, 30)) <= 1e-12 * fmax(L[0], 1e-300));
  for (size_t i = 0; i < nth; i++) {
    double keep = th[i], h = 1e-6 * fmax(1, fabs(keep));
    th[i] = keep + h;
    tw_graph_set_params(g, th);
    double lp = loss_at(g, in, 30);
    th[i] = keep - h;
    tw_graph_set_params(g, th);
    double lm = loss_at(g, in, 30);
    th[i] = keep;
    tw_graph_set_params(g, th);
    double fd = (lp - lm) / (2 * h);
    double tol = 1e-6 * fmax(fabs(fd), 1e-3);
    if (fabs(fd - grad[0][i]) > tol)
      print_error("param %zu: grad %.12g fd %.12g\n", i, grad[0][i], fd);
    assert_true(fabs(fd - grad[0][i]) <= tol);
  }
  /* wrt through the block: only the sub-graph's gain gets a gradient. */
  const char *wrt[1] = {"s.g.k"};
  double gw[16];
  assert_int_equal(
      tw_graph_grad(g, 30, in, &loss, wrt, 1, "all", NULL, gw, NULL), TW_OK);
  size_t sz, off;
  bool seen = false;
  for (size_t p = 0; p < tw_graph_nparam_ports(g); p++) {
    const char *name = tw_graph_param_name(g, p, &sz, &off);
    bool want = strcmp(name, "s.g.k") == 0;
    seen = seen || want;
    if (want)
      assert_true(fabs(gw[off]) > 1e-6 && gw[off] == grad[0][off]);
    else
      for (size_t j = 0; j < sz; j++)
        assert_true(gw[off + j] == 0);
  }
  assert_true(seen);
  tw_graph_free(g);
}

static int load_round(void) {
  char path[256];
  (void)snprintf(path, sizeof path, "%s/outer.json", dir);
  tw_graph *g = NULL;
  tw_buf d = TW_BUF_INIT;
  int rc = tw_graph_load(path, NULL, &d, &g, NULL);
  double in[3] = {1, 2, 3}, out[6];
  if (rc == TW_OK)
    rc = tw_graph_run(g, 3, in, out, NULL);
  tw_graph_free(g);
  tw_buf_fini(&d);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  put("inner.json", inner);
  put("outer.json",
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"f\": {}},"
      " \"blocks\": {\"s\": {\"model\": \"graph:inner.json\"}},"
      " \"connections\": [{\"from\": \"inputs.f\", \"to\": \"s.u\"}],"
      " \"outputs\": {\"a\": \"s.gy\", \"b\": \"s.iy\"}}");
  TW_TEST_ALLOC_FAILURES(load_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(same_values_as_flat),
      TW_TEST(slower_rate),
      TW_TEST(feedthrough_keeps_loops_exact),
      TW_TEST(twg_files),
      TW_TEST(diagnostics),
      TW_TEST(cycles_and_depth),
      TW_TEST(gradient_matches_finite_differences),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
