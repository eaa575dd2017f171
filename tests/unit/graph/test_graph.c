/*
 * test_graph.c - execution graphs from their JSON IR: values of small
 * graphs against hand-computed ones (a chain with a graph input, a loop
 * broken by an integrator, a block at half the rate, a wasm model), every
 * diagnostic of a broken graph with its position, algebraic loops, and
 * allocation failures.
 */
#include "tw_test.h"
#include "wasm_test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tw_graph *parse(const char *text) {
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_graph_parse(text, strlen(text), "t.json", ".", NULL, &diags, &g, &err);
  if (rc != TW_OK)
    print_error("%s\n%s", err.msg, diags.data != NULL ? diags.data : "");
  assert_int_equal(rc, TW_OK);
  tw_buf_fini(&diags);
  return g;
}

/* u -> gain(k=3) -> integrator: y_int[k] = sum_{j<k} dt * 3 u[j]. */
static void chain_with_input(void **state) {
  (void)state;
  tw_graph *g = parse(
      "{\"graph\": 1, \"name\": \"c\", \"dt\": 0.5,"
      " \"inputs\": {\"u\": {\"size\": 1}},"
      " \"blocks\": {\"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": "
      "3}},"
      "              \"i\": {\"model\": \"builtin:integrator\"}},"
      " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"g.u\"},"
      "                   {\"from\": \"g.y\", \"to\": \"i.u\"}],"
      " \"outputs\": {\"gy\": \"g.y\", \"iy\": \"i.y\"}}");
  assert_string_equal(tw_graph_name(g), "c");
  assert_int_equal(tw_graph_input_width(g), 1);
  assert_int_equal(tw_graph_output_width(g), 2);
  double in[4] = {1, 2, -1, 0.5}, out[8];
  assert_int_equal(tw_graph_run(g, 4, in, out, NULL), TW_OK);
  double acc = 0;
  for (int k = 0; k < 4; k++) {
    assert_true(out[2 * k] == 3 * in[k]);
    assert_true(out[2 * k + 1] == acc);
    acc += 0.5 * 3 * in[k];
  }
  /* Runs start over. */
  double out2[8];
  assert_int_equal(tw_graph_run(g, 4, in, out2, NULL), TW_OK);
  assert_memory_equal(out, out2, sizeof out);
  tw_graph_free(g);
}

/* Writes wat/leaky.wat as a module in a temporary file; returns its path. */
static void leaky_file(char *path, size_t cap) {
  wasm_byte_vec_t w = wt_wat("leaky.wat");
  (void)snprintf(path, cap, "/tmp/tw-test-graph-%ld.wasm", (long)getpid());
  assert_int_equal(tw_file_write_atomic(path, w.data, w.size, NULL), TW_OK);
  wasm_byte_vec_delete(&w);
}

/* A wasm model in a loop: leaky (x0 = 0.25, y = x, no feedthrough) feeds a
 * gain of 2 that feeds leaky's input: x' = x + dt (2 * 2x - x). The loop
 * is broken by leaky's state: its output is evaluated first. */
static void wasm_model_in_a_loop(void **state) {
  (void)state;
  char path[256], text[1024];
  leaky_file(path, sizeof path);
  (void)snprintf(
      text, sizeof text,
      "{\"graph\": 1, \"dt\": 0.1,"
      " \"blocks\": {\"m\": {\"model\": \"wasm:%s\"},"
      "   \"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": 2}}},"
      " \"connections\": [{\"from\": \"g.y\", \"to\": \"m.u\"},"
      "   {\"from\": \"m.y\", \"to\": \"g.u\"}],"
      " \"outputs\": {\"x\": \"m.y\"}}",
      path);
  tw_graph *g = parse(text);
  double out[5];
  assert_int_equal(tw_graph_run(g, 5, NULL, out, NULL), TW_OK);
  double x = 0.25;
  for (int k = 0; k < 5; k++) {
    assert_true(fabs(out[k] - x) < 1e-15);
    x = x + 0.1 * (2 * (2 * x) - x);
  }
  tw_graph_free(g);
  unlink(path);
}

/* A model named by digest comes from the local store (opts.store), the
 * same model as by path; malformed digests, absent and corrupted blobs
 * are diagnostics at the model string. */
static void models_by_digest(void **state) {
  (void)state;
  char path[256], store[64], text[1024];
  leaky_file(path, sizeof path);
  (void)snprintf(store, sizeof store, "/tmp/tw-test-graph-store-XXXXXX");
  assert_non_null(mkdtemp(store));
  tw_store *s = NULL;
  char d[TW_STORE_DIGEST_LEN + 1];
  assert_int_equal(tw_store_open(store, true, &s, NULL), TW_OK);
  assert_int_equal(tw_store_add_file(s, path, d, NULL), TW_OK);
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.store = store;
  double out[2][4];
  for (int by_digest = 0; by_digest < 2; by_digest++) {
    (void)snprintf(text, sizeof text,
                   "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"m\": "
                   "{\"model\": \"wasm:%s\"}}, \"outputs\": {\"x\": \"m.y\"}}",
                   by_digest ? d : path);
    tw_graph *g = NULL;
    assert_int_equal(
        tw_graph_parse(text, strlen(text), "d.json", ".", &o, NULL, &g, NULL),
        TW_OK);
    assert_int_equal(tw_graph_run(g, 4, NULL, out[by_digest], NULL), TW_OK);
    tw_graph_free(g);
  }
  assert_memory_equal(out[0], out[1], sizeof out[0]);
  char other[TW_STORE_DIGEST_LEN + 1];
  memcpy(other, d, sizeof other);
  other[TW_STORE_DIGEST_LEN - 1] =
      other[TW_STORE_DIGEST_LEN - 1] == '0' ? '1' : '0';
  (void)snprintf(text, sizeof text,
                 "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\n"
                 "  \"a\": {\"model\": \"wasm:sha256:abc\"},\n"
                 "  \"b\": {\"model\": \"wasm:sha512:00\"},\n"
                 "  \"c\": {\"model\": \"wasm:%s\"},\n"
                 "  \"e\": {\"model\": \"wasm:SHA256:00\"}}}",
                 other);
  tw_buf diags = TW_BUF_INIT;
  tw_graph *g = NULL;
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "d.json", ".", &o, &diags, &g, NULL),
      TW_EVALIDATE);
  static const char *const want[] = {
      "d.json:2:18: error: block 'a': digest 'sha256:abc': 3 hex digits",
      "d.json:3:18: error: block 'b': digest 'sha512:00': algorithm 'sha512' "
      "is not supported",
      "is not in the model store",
      "d.json:5:18: error: block 'e': digest 'SHA256:00': algorithm 'SHA256'",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    if (strstr(diags.data, want[i]) == NULL)
      print_error("missing: %s\nin:\n%s", want[i], diags.data);
    assert_non_null(strstr(diags.data, want[i]));
  }
  /* A blob changed on disk: a clear error, not a different model. */
  tw_buf blob = TW_BUF_INIT;
  assert_int_equal(tw_store_blob_path(s, d, &blob, NULL), TW_OK);
  assert_int_equal(tw_file_write_atomic(blob.data, "\0asm\1\0\0\0", 8, NULL),
                   TW_OK);
  (void)snprintf(text, sizeof text,
                 "{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"m\": "
                 "{\"model\": \"wasm:%s\"}}}",
                 d);
  tw_buf_reset(&diags);
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "d.json", ".", &o, &diags, &g, NULL),
      TW_EVALIDATE);
  assert_non_null(strstr(diags.data, "d.json:1:51: error: block 'm': model "
                                     "store "));
  assert_non_null(strstr(diags.data, "is corrupt: its content hashes to"));
  /* No store at all. */
  char none[128];
  (void)snprintf(none, sizeof none, "%s/none", store);
  o.store = none;
  tw_buf_reset(&diags);
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "d.json", ".", &o, &diags, &g, NULL),
      TW_EVALIDATE);
  assert_non_null(strstr(diags.data, "none does not exist"));
  tw_buf_fini(&blob);
  tw_buf_fini(&diags);
  tw_store_close(s);
  unlink(path);
  (void)snprintf(text, sizeof text, "rm -rf '%s'", store);
  assert_int_equal(system(text), 0);
}

/* A block stepping every 2 ticks holds its output in between and steps
 * with dt 2 * dt. */
static void multirate(void **state) {
  (void)state;
  tw_graph *g =
      parse("{\"graph\": 1, \"dt\": 0.25, \"inputs\": {\"u\": {}},"
            " \"blocks\": {\"slow\": {\"model\": \"builtin:integrator\", "
            "\"period\": 0.5},"
            "   \"fast\": {\"model\": \"builtin:integrator\"}},"
            " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"slow.u\"},"
            "   {\"from\": \"inputs.u\", \"to\": \"fast.u\"}],"
            " \"outputs\": {\"s\": \"slow.y\", \"f\": \"fast.y\"}}");
  double in[6] = {1, 1, 1, 1, 1, 1}, out[12];
  assert_int_equal(tw_graph_run(g, 6, in, out, NULL), TW_OK);
  /* fast: 0, .25, .5, ...; slow steps at ticks 0, 2, 4 with dt 0.5:
   * y = 0 (k=0,1), 0.5 (k=2,3), 1.0 (k=4,5). */
  static const double s[6] = {0, 0, 0.5, 0.5, 1.0, 1.0};
  for (int k = 0; k < 6; k++) {
    assert_true(out[2 * k] == s[k]);
    assert_true(out[2 * k + 1] == 0.25 * k);
  }
  tw_graph_free(g);
}

/* Every problem, each with its line and column. */
static void diagnostics(void **state) {
  (void)state;
  static const char text[] =
      "{\n"
      "  \"graph\": 1,\n"
      "  \"dt\": 0.01,\n"
      "  \"blocks\": {\n"
      "    \"a\": {\"model\": \"builtin:gain\", \"size\": 2},\n"
      "    \"b\": {\"model\": \"builtin:gain\"},\n"
      "    \"c\": {\"model\": \"builtin:frob\"},\n"
      "    \"d\": {\"model\": \"builtin:integrator\", \"period\": 0.015},\n"
      "    \"e\": {\"model\": \"builtin:gain\", \"colour\": \"red\"}\n"
      "  },\n"
      "  \"connections\": [\n"
      "    {\"from\": \"a.y\", \"to\": \"b.u\"},\n"
      "    {\"from\": \"b.y\", \"to\": \"nope.u\"},\n"
      "    {\"from\": \"b.u\", \"to\": \"e.u\"}\n"
      "  ],\n"
      "  \"outputs\": {\"o\": \"b.z\"}\n"
      "}\n";
  tw_graph *g = NULL;
  tw_buf d = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "g.json", ".", NULL, &d, &g, &err),
      TW_EVALIDATE);
  assert_null(g);
  assert_string_equal(err.msg, "g.json: 7 errors");
  static const char *const want[] = {
      "g.json:7:20: error: block 'c': unknown model 'builtin:frob'",
      "g.json:8:52: error: block 'd': period 0.015 s is not a positive "
      "multiple of dt = 0.01 s",
      "g.json:9:46: error: block 'e': unknown field 'colour'",
      "g.json:12:27: error: size mismatch: a.y has 2 values, b.u has 1",
      "g.json:13:27: error: to: unknown block 'nope'",
      "g.json:14:14: error: from: 'u' is an input of block 'b', not an "
      "output",
      "g.json:16:20: error: output: block 'b' (gain) has no output port 'z'",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    if (strstr(d.data, want[i]) == NULL)
      print_error("missing: %s\nin:\n%s", want[i], d.data);
    assert_non_null(strstr(d.data, want[i]));
  }
  tw_buf_fini(&d);
  /* Not JSON: the parser's located error. */
  tw_err_init(&err);
  assert_int_equal(
      tw_graph_parse("{\"graph\": 1,", 12, "h.json", ".", NULL, NULL, &g, &err),
      TW_EPARSE);
  assert_non_null(strstr(err.msg, "h.json:1:13: error:"));
}

static void algebraic_loop(void **state) {
  (void)state;
  static const char text[] =
      "{\"graph\": 1, \"dt\": 1, \"blocks\": {"
      "\"p\": {\"model\": \"builtin:gain\"}, \"q\": {\"model\": "
      "\"builtin:gain\"}, \"r\": {\"model\": \"builtin:integrator\"}},"
      "\"connections\": [{\"from\": \"p.y\", \"to\": \"q.u\"},"
      "{\"from\": \"q.y\", \"to\": \"p.u\"}, {\"from\": \"q.y\", \"to\": "
      "\"r.u\"}]}";
  tw_graph *g = NULL;
  tw_buf d = TW_BUF_INIT;
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "l.json", ".", NULL, &d, &g, NULL),
      TW_EVALIDATE);
  assert_non_null(strstr(d.data, "algebraic loop: blocks 'p', 'q' depend"));
  tw_buf_fini(&d);
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

static double loss_at(tw_graph *g, const double *in, int64_t ticks,
                      const tw_loss *loss) {
  size_t w = tw_graph_output_width(g);
  double out[512];
  assert_true((size_t)ticks * w <= 512);
  assert_int_equal(tw_graph_run(g, ticks, in, out, NULL), TW_OK);
  double L = 0, v;
  for (int64_t k = 0; k < ticks; k++) {
    (void)loss->term(loss->ud, k, ticks, NULL, out + (size_t)k * w, &v, NULL,
                     NULL, NULL);
    L += v;
  }
  return L;
}

/* A hybrid graph: a wasm model in a loop with a gain (prepass), an MLP
 * stepping every 2 ticks (held outputs in the state), an integrator; the
 * gradient of every parameter against central differences, and the same
 * bits under every checkpoint schedule. */
static void gradient_matches_finite_differences(void **state) {
  (void)state;
  char path[256], text[2048];
  leaky_file(path, sizeof path);
  (void)snprintf(
      text, sizeof text,
      "{\"graph\": 1, \"dt\": 0.05, \"inputs\": {\"f\": {}},"
      " \"blocks\": {\"m\": {\"model\": \"wasm:%s\", \"params\": {\"k\": 1.5}},"
      "   \"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": 0.7}},"
      "   \"n\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 4, 1],"
      "          \"activations\": [\"tanh\", \"none\"], \"seed\": 3,"
      "          \"every\": 2},"
      "   \"i\": {\"model\": \"builtin:integrator\"}},"
      " \"connections\": [{\"from\": \"g.y\", \"to\": \"m.u\"},"
      "   {\"from\": \"m.y\", \"to\": \"n.in\"},"
      "   {\"from\": \"n.out\", \"to\": \"i.u\"},"
      "   {\"from\": \"inputs.f\", \"to\": \"g.u\"}],"
      " \"outputs\": {\"x\": \"m.y\", \"z\": \"i.y\", \"h\": \"n.out\"}}",
      path);
  tw_graph *g = parse(text);
  size_t nth = tw_graph_nparams(g), w = tw_graph_output_width(g);
  assert_int_equal(w, 3);
  assert_true(nth == 1 + 1 + (4 + 4 + 4 + 1));
  tw_loss loss = {sum_sq, false, &w};
  double in[40];
  for (int k = 0; k < 40; k++)
    in[k] = sin(0.3 * k);
  double grad[3][32], L[3];
  const char *sched[3] = {"all", "periodic:7", "revolve:3"};
  for (int s = 0; s < 3; s++)
    assert_int_equal(tw_graph_grad(g, 40, in, &loss, NULL, 0, sched[s], &L[s],
                                   grad[s], NULL),
                     TW_OK);
  assert_memory_equal(grad[0], grad[1], nth * sizeof(double));
  assert_memory_equal(grad[0], grad[2], nth * sizeof(double));
  assert_true(fabs(L[0] - loss_at(g, in, 40, &loss)) <= 1e-12 * L[0]);
  /* Every parameter port gets a gradient: the test checks something. */
  for (size_t p = 0; p < tw_graph_nparam_ports(g); p++) {
    size_t sz, off;
    const char *name = tw_graph_param_name(g, p, &sz, &off);
    double mx = 0;
    for (size_t j = 0; j < sz; j++)
      mx = fmax(mx, fabs(grad[0][off + j]));
    if (!(mx > 1e-8) && strcmp(name, "n.b2") != 0)
      print_error("no gradient for %s\n", name);
    assert_true(mx > 1e-8);
  }
  double th[32];
  tw_graph_get_params(g, th);
  for (size_t i = 0; i < nth; i++) {
    double keep = th[i], h = 1e-6 * fmax(1, fabs(keep));
    th[i] = keep + h;
    tw_graph_set_params(g, th);
    double lp = loss_at(g, in, 40, &loss);
    th[i] = keep - h;
    tw_graph_set_params(g, th);
    double lm = loss_at(g, in, 40, &loss);
    th[i] = keep;
    tw_graph_set_params(g, th);
    double fd = (lp - lm) / (2 * h);
    double tol = 1e-6 * fmax(fabs(fd), 1e-3);
    if (fabs(fd - grad[0][i]) > tol)
      print_error("param %zu (%s...): grad %.12g fd %.12g\n", i,
                  tw_graph_param_name(g, 0, NULL, NULL), grad[0][i], fd);
    assert_true(fabs(fd - grad[0][i]) <= tol);
  }
  /* wrt: only the gain's k; the others 0. */
  const char *wrt[1] = {"g.k"};
  double gw[32];
  assert_int_equal(
      tw_graph_grad(g, 40, in, &loss, wrt, 1, "all", NULL, gw, NULL), TW_OK);
  size_t sz, off;
  for (size_t p = 0; p < tw_graph_nparam_ports(g); p++) {
    const char *name = tw_graph_param_name(g, p, &sz, &off);
    for (size_t j = 0; j < sz; j++)
      assert_true(strcmp(name, "g.k") == 0 ? gw[off + j] == grad[0][off + j]
                                           : gw[off + j] == 0);
  }
  tw_err err;
  tw_err_init(&err);
  const char *bad[1] = {"g.q"};
  assert_int_equal(
      tw_graph_grad(g, 40, in, &loss, bad, 1, "all", NULL, gw, &err),
      TW_EINVAL);
  assert_non_null(strstr(err.msg, "no parameter 'g.q'"));
  tw_graph_free(g);
  unlink(path);
}

/* Four independent MLPs (one level) and a sum after them: outputs and
 * gradients are the same bits with 1 and with 2 worker threads. */
static void same_bits_on_1_and_2_threads(void **state) {
  (void)state;
  static const char text[] =
      "{\"graph\": 1, \"dt\": 0.1, \"inputs\": {\"u\": {}},"
      " \"blocks\": {"
      "  \"a\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 16, 1],"
      "         \"activations\": [\"tanh\", \"none\"], \"seed\": 1},"
      "  \"b\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 16, 1],"
      "         \"activations\": [\"tanh\", \"none\"], \"seed\": 2},"
      "  \"c\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 16, 1],"
      "         \"activations\": [\"softplus\", \"none\"], \"seed\": 3},"
      "  \"d\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 16, 1],"
      "         \"activations\": [\"sigmoid\", \"none\"], \"seed\": 4},"
      "  \"i\": {\"model\": \"builtin:integrator\", \"size\": 4}},"
      " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"a.in\"},"
      "  {\"from\": \"inputs.u\", \"to\": \"b.in\"},"
      "  {\"from\": \"inputs.u\", \"to\": \"c.in\"},"
      "  {\"from\": \"inputs.u\", \"to\": \"d.in\"}],"
      " \"outputs\": {\"a\": \"a.out\", \"b\": \"b.out\", \"c\": \"c.out\","
      "   \"d\": \"d.out\", \"i\": \"i.y\"}}";
  double out[2][25 * 8], grad[2][4 * 49];
  for (int threads = 1; threads <= 2; threads++) {
    tw_ctx_options co;
    tw_ctx_options_init(&co);
    co.threads = (unsigned)threads;
    tw_ctx *ctx = NULL;
    assert_int_equal(tw_ctx_new(&co, &ctx, NULL), TW_OK);
    tw_graph_opts go;
    memset(&go, 0, sizeof go);
    go.ctx = ctx;
    tw_graph *g = NULL;
    assert_int_equal(
        tw_graph_parse(text, strlen(text), "p.json", ".", &go, NULL, &g, NULL),
        TW_OK);
    double in[25];
    for (int k = 0; k < 25; k++)
      in[k] = cos(0.2 * k);
    assert_int_equal(tw_graph_run(g, 25, in, out[threads - 1], NULL), TW_OK);
    size_t w = tw_graph_output_width(g);
    tw_loss loss = {sum_sq, false, &w};
    assert_int_equal(tw_graph_grad(g, 25, in, &loss, NULL, 0, "revolve:4", NULL,
                                   grad[threads - 1], NULL),
                     TW_OK);
    assert_int_equal(tw_graph_nparams(g), 4 * 49);
    tw_graph_free(g);
    tw_ctx_free(ctx);
  }
  assert_memory_equal(out[0], out[1], 25 * 8 * sizeof(double));
  assert_memory_equal(grad[0], grad[1], sizeof grad[0]);
}

static int parse_round(void) {
  static const char text[] =
      "{\"graph\": 1, \"dt\": 0.5, \"inputs\": {\"u\": {\"size\": 1}},"
      " \"blocks\": {\"g\": {\"model\": \"builtin:gain\"},"
      " \"m\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 3, 1],"
      " \"activations\": [\"tanh\", \"none\"]}},"
      " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"g.u\"},"
      " {\"from\": \"g.y\", \"to\": \"m.in\"}], \"outputs\": {\"y\": "
      "\"m.out\"}}";
  tw_graph *g = NULL;
  int rc =
      tw_graph_parse(text, strlen(text), "a.json", ".", NULL, NULL, &g, NULL);
  double in[2] = {1, 2}, out[2];
  if (rc == TW_OK)
    rc = tw_graph_run(g, 2, in, out, NULL);
  tw_graph_free(g);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(parse_round());
}

/* leaky.wat with its input u declared as an i32 port, in a temporary
 * file. */
static void leaky_i32_file(char *path, size_t cap) {
  char src[512];
  (void)snprintf(src, sizeof src, "%sleaky.wat", TW_WAT_DIR);
  tw_buf text = TW_BUF_INIT;
  assert_int_equal(tw_file_read_all(src, 0, &text, NULL), TW_OK);
  static const char from[] = "\\\"size\\\":1,\\\"default\\\":0.5}";
  static const char to[] = "\\\"size\\\":1,\\\"dtype\\\":\\\"i32\\\"}";
  char *at = strstr(text.data, from);
  assert_non_null(at);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&b, "%.*s%s%s", (int)(at - text.data),
                                 text.data, to, at + strlen(from)),
                   TW_OK);
  /* Both spellings are 23 bytes: the length in tw_describe holds. */
  wasm_byte_vec_t w = wt_wat_text(b.data, b.len);
  (void)snprintf(path, cap, "/tmp/tw-test-graph-i32-%ld.wasm", (long)getpid());
  assert_int_equal(tw_file_write_atomic(path, w.data, w.size, NULL), TW_OK);
  wasm_byte_vec_delete(&w);
  tw_buf_fini(&b);
  tw_buf_fini(&text);
}

/* Dtypes: connections need equal ones; runs refuse input values outside
 * an input's dtype; no cotangent flows back through an integer port. */
static void dtypes(void **state) {
  (void)state;
  char path[256], text[1024];
  leaky_i32_file(path, sizeof path);
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  static const char bad[] =
      "{\"graph\": 1, \"dt\": 0.1,\n"
      " \"inputs\": {\"mode\": {\"dtype\": \"i32\"}, \"f\": {\"dtype\": "
      "\"f16\"}},\n"
      " \"blocks\": {\"g\": {\"model\": \"builtin:gain\"}},\n"
      " \"connections\": [{\"from\": \"inputs.mode\", \"to\": \"g.u\"}]}";
  assert_int_equal(
      tw_graph_parse(bad, strlen(bad), "d.json", ".", NULL, &diags, &g, NULL),
      TW_EVALIDATE);
  assert_non_null(strstr(diags.data,
                         "d.json:2:54: error: input 'f': dtype must be f64, "
                         "f32, i64, i32 or bool"));
  assert_non_null(strstr(diags.data, "d.json:4:48: error: dtype mismatch: "
                                     "inputs.mode is i32, g.u is f64"));
  tw_buf_fini(&diags);
  (void)snprintf(text, sizeof text,
                 "{\"graph\": 1, \"name\": \"typed\", \"dt\": 0.1,"
                 " \"inputs\": {\"mode\": {\"dtype\": \"i32\"}},"
                 " \"blocks\": {\"m\": {\"model\": \"wasm:%s\"}},"
                 " \"connections\": [{\"from\": \"inputs.mode\", \"to\": "
                 "\"m.u\"}],"
                 " \"outputs\": {\"x\": \"m.y\"}}",
                 path);
  g = parse(text);
  assert_int_equal(tw_graph_input_dtype(g, 0), TW_I32);
  assert_int_equal(tw_graph_output_dtype(g, 0), TW_F64);
  double in[3] = {1, -2, 3}, out[3];
  assert_int_equal(tw_graph_run(g, 3, in, out, NULL), TW_OK);
  in[2] = 2.5;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_graph_run(g, 3, in, out, &err), TW_EINVAL);
  assert_string_equal(err.msg, "graph 'typed': input 'mode'[0] at tick 2 is "
                               "2.5, not a value of its dtype i32");
  tw_graph_free(g);
  unlink(path);
}

/* A wasm model stopped by a limit (a trap too) fails the run, and the
 * next run starts on a fresh instance: it meets the limit again, not
 * TW_ESTATE. (Fuel, not a trapping instruction: cmocka's signal handlers
 * would take the signal wasmtime turns into a trap.) */
static void runs_after_a_trap(void **state) {
  (void)state;
  wasm_byte_vec_t w = wt_wat("hostile/loop_step.wat");
  char path[256], text[512];
  (void)snprintf(path, sizeof path, "/tmp/tw-test-graph-trap-%ld.wasm",
                 (long)getpid());
  assert_int_equal(tw_file_write_atomic(path, w.data, w.size, NULL), TW_OK);
  wasm_byte_vec_delete(&w);
  (void)snprintf(text, sizeof text,
                 "{\"graph\": 1, \"dt\": 0.1,"
                 " \"blocks\": {\"m\": {\"model\": \"wasm:%s\"}},"
                 " \"outputs\": {\"y\": \"m.y\"}}",
                 path);
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.limits.fuel = 100000;
  tw_graph *g = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_graph_parse(text, strlen(text), "t.json", ".", &o, NULL, &g, &err),
      TW_OK);
  double out[3];
  for (int run = 0; run < 3; run++) {
    tw_err_init(&err);
    assert_int_equal(tw_graph_run(g, 3, NULL, out, &err), TW_ELIMIT);
    assert_non_null(strstr(err.msg, "out of fuel"));
  }
  tw_graph_free(g);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(chain_with_input),
      TW_TEST(wasm_model_in_a_loop),
      TW_TEST(multirate),
      TW_TEST(models_by_digest),
      TW_TEST(diagnostics),
      TW_TEST(algebraic_loop),
      TW_TEST(allocation_failures),
      TW_TEST(gradient_matches_finite_differences),
      TW_TEST(same_bits_on_1_and_2_threads),
      TW_TEST(dtypes),
      TW_TEST(runs_after_a_trap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
