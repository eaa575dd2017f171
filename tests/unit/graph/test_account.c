/*
 * test_account.c - runs piece by piece (tw_graph_reset / tw_graph_advance)
 * and the accounting of runs and gradients: per-block steps, VJPs, time,
 * memory and fuel; the CPU and memory budgets; the twin_graph_* metrics.
 */
#include "tw_test.h"
#include "wasm_test.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char chain[] =
    "{\"graph\": 1, \"name\": \"c\", \"dt\": 0.5,"
    " \"inputs\": {\"u\": {\"size\": 1}},"
    " \"blocks\": {\"g\": {\"model\": \"builtin:gain\", \"params\": {\"k\": "
    "3}},"
    "   \"i\": {\"model\": \"builtin:integrator\", \"every\": 2},"
    "   \"m\": {\"model\": \"builtin:mlp\", \"sizes\": [1, 4, 1],"
    "     \"activations\": [\"tanh\", \"none\"], \"seed\": 3}},"
    " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"g.u\"},"
    "   {\"from\": \"g.y\", \"to\": \"i.u\"}, {\"from\": \"i.y\", \"to\": "
    "\"m.in\"}],"
    " \"outputs\": {\"gy\": \"g.y\", \"my\": \"m.out\"}}";

static tw_graph *parse_with(const char *text, const tw_graph_opts *o) {
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_graph_parse(text, strlen(text), "t.json", ".", o, &diags, &g, &err);
  if (rc != TW_OK)
    print_error("%s\n%s", err.msg, diags.data != NULL ? diags.data : "");
  assert_int_equal(rc, TW_OK);
  tw_buf_fini(&diags);
  return g;
}

/* reset + advance(3) + advance(0) + advance(7) is the same run as run(10),
 * to the bit; advancing needs a reset first and after a failure. */
static void advance_continues_a_run(void **state) {
  (void)state;
  tw_graph *g = parse_with(chain, NULL);
  double in[10], whole[20], parts[20];
  for (int k = 0; k < 10; k++)
    in[k] = 0.3 * k - 1;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_graph_tick(g), 0);
  assert_int_equal(tw_graph_advance(g, 1, in, parts, &err), TW_ESTATE);
  assert_non_null(strstr(err.msg, "no run started"));
  assert_int_equal(tw_graph_run(g, 10, in, whole, NULL), TW_OK);
  assert_int_equal(tw_graph_tick(g), 10);
  assert_int_equal(tw_graph_reset(g, NULL), TW_OK);
  assert_int_equal(tw_graph_tick(g), 0);
  assert_int_equal(tw_graph_advance(g, 3, in, parts, NULL), TW_OK);
  assert_int_equal(tw_graph_advance(g, 0, in + 3, parts + 6, NULL), TW_OK);
  assert_int_equal(tw_graph_advance(g, 7, in + 3, parts + 6, NULL), TW_OK);
  assert_int_equal(tw_graph_tick(g), 10);
  assert_memory_equal(whole, parts, sizeof whole);
  assert_int_equal(tw_graph_advance(g, -1, in, parts, &err), TW_EINVAL);
  /* A budget stop ends the run: advancing again is refused. */
  tw_graph_set_budget(g, 0, 1);
  tw_err_init(&err);
  assert_int_equal(tw_graph_advance(g, 1, in, parts, &err), TW_ELIMIT);
  if (strstr(err.msg, "memory budget exceeded at tick 10") == NULL)
    fail_msg("%s", err.msg);
  tw_graph_set_budget(g, 0, 0);
  tw_err_init(&err);
  assert_int_equal(tw_graph_advance(g, 1, in, parts, &err), TW_ESTATE);
  assert_non_null(strstr(err.msg, "reset"));
  assert_int_equal(tw_graph_reset(g, NULL), TW_OK);
  assert_int_equal(tw_graph_advance(g, 10, in, parts, NULL), TW_OK);
  assert_memory_equal(whole, parts, sizeof whole);
  tw_graph_free(g);
}

static const tw_graph_block_stats *find(const tw_graph_block_stats *st,
                                        size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(st[i].name, name) == 0)
      return &st[i];
  fail_msg("no block %s", name);
  return NULL;
}

static int sq_loss(void *ud, int64_t k, int64_t steps, const double *xn,
                   const double *y, double *value, double *gxn, double *gy,
                   tw_err *err) {
  (void)ud, (void)k, (void)steps, (void)xn, (void)gxn, (void)err;
  *value = 0.5 * y[1] * y[1];
  if (gy != NULL) {
    gy[0] = 0;
    gy[1] = y[1];
  }
  return TW_OK;
}

/* Steps per block honour the rates; VJPs are counted by gradients; CPU time
 * is measured only when asked for; memory covers the blocks' vectors and
 * the MLP's tape. */
static void block_accounting(void **state) {
  (void)state;
  tw_graph *g = parse_with(chain, NULL);
  double in[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  tw_graph_block_stats st[3];
  tw_graph_run_stats run;
  assert_int_equal(tw_graph_run(g, 10, in, NULL, NULL), TW_OK);
  assert_int_equal(tw_graph_stats(g, st, 3, &run), 3);
  assert_int_equal(run.ticks, 10);
  assert_true(run.wall_ms >= 0 && run.cpu_ms >= 0);
  assert_int_equal(find(st, 3, "g")->steps, 10);
  assert_int_equal(find(st, 3, "i")->steps, 5);
  assert_int_equal(find(st, 3, "m")->steps, 10);
  assert_true(find(st, 3, "g")->cpu_ms == -1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(st[i].vjps, 0);
    assert_true(st[i].memory_bytes > 0);
    assert_int_equal(st[i].fuel, 0);
  }
  assert_true(run.memory_bytes >=
              find(st, 3, "m")->memory_bytes + find(st, 3, "g")->memory_bytes);

  tw_graph_set_accounting(g, true);
  tw_loss loss = {sq_loss, false, NULL};
  double L, grad[64];
  assert_true(tw_graph_nparams(g) <= 64);
  assert_int_equal(
      tw_graph_grad(g, 10, in, &loss, NULL, 0, "revolve:2", &L, grad, NULL),
      TW_OK);
  assert_int_equal(tw_graph_stats(g, st, 3, &run), 3);
  assert_int_equal(run.ticks, 10);
  assert_true(run.checkpoint_bytes > 0);
  const tw_graph_block_stats *m = find(st, 3, "m");
  assert_int_equal(m->vjps, 10);
  assert_true(m->steps >= 10); /* recomputation included */
  assert_true(m->cpu_ms >= 0);
  /* The integrator steps at 5 ticks; its output, read before it steps,
   * gets a second (linear) VJP call for the late cotangent. */
  assert_true(find(st, 3, "i")->vjps >= 5 && find(st, 3, "i")->vjps <= 10);
  tw_graph_free(g);
}

/* A gradient whose checkpoints would not fit the memory budget fails before
 * it starts, naming the schedule; one with fewer slots runs. */
static void gradient_memory_budget(void **state) {
  (void)state;
  tw_graph *g = parse_with(chain, NULL);
  tw_loss loss = {sq_loss, false, NULL};
  double L, grad[64];
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_graph_grad(g, 4000, NULL, &loss, NULL, 0, "all", &L, grad, NULL),
      TW_OK);
  tw_graph_run_stats run;
  (void)tw_graph_stats(g, NULL, 0, &run);
  size_t all = run.memory_bytes;
  assert_true(run.checkpoint_bytes >= 4000 * sizeof(double));
  tw_graph_set_budget(g, 0, all - run.checkpoint_bytes / 2);
  assert_int_equal(
      tw_graph_grad(g, 4000, NULL, &loss, NULL, 0, "all", &L, grad, &err),
      TW_ELIMIT);
  assert_non_null(strstr(err.msg, "schedule all needs"));
  assert_int_equal(
      tw_graph_grad(g, 4000, NULL, &loss, NULL, 0, "revolve:8", &L, grad, NULL),
      TW_OK);
  tw_graph_free(g);
}

/* leaky.wat whose step grows its linear memory by one page per call (up to
 * its maximum of 16 pages). */
static wasm_byte_vec_t grower(void) {
  char path[512];
  (void)snprintf(path, sizeof path, "%sleaky.wat", TW_WAT_DIR);
  tw_buf text = TW_BUF_INIT;
  assert_int_equal(tw_file_read_all(path, 0, &text, NULL), TW_OK);
  const char *at = strstr(text.data, ";; log once");
  assert_non_null(at);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&b, "%.*s(drop (memory.grow (i32.const 1)))%s",
                                 (int)(at - text.data), text.data, at),
                   TW_OK);
  wasm_byte_vec_t w = wt_wat_text(b.data, b.len);
  tw_buf_fini(&b);
  tw_buf_fini(&text);
  return w;
}

/* A wasm model's linear memory and fuel are accounted; a model that keeps
 * growing its memory is stopped by the budget at the tick it crosses. */
static void wasm_memory_and_fuel(void **state) {
  (void)state;
  char path[256], text[1024];
  (void)snprintf(path, sizeof path, "/tmp/tw-test-account-%ld.wasm",
                 (long)getpid());
  wasm_byte_vec_t w = grower();
  assert_int_equal(tw_file_write_atomic(path, w.data, w.size, NULL), TW_OK);
  wasm_byte_vec_delete(&w);
  (void)snprintf(text, sizeof text,
                 "{\"graph\": 1, \"name\": \"grow\", \"dt\": 0.1,"
                 " \"blocks\": {\"m\": {\"model\": \"wasm:%s\"}},"
                 " \"outputs\": {\"x\": \"m.y\"}}",
                 path);
  tw_graph *g = parse_with(text, NULL);
  tw_graph_block_stats st;
  tw_graph_run_stats run;
  assert_int_equal(tw_graph_run(g, 4, NULL, NULL, NULL), TW_OK);
  (void)tw_graph_stats(g, &st, 1, &run);
  assert_true(st.fuel > 0);
  assert_int_equal(run.fuel, st.fuel);
  assert_int_equal(st.wasm_memory, 5 * 65536); /* 1 page + 4 grown */
  assert_true(run.memory_bytes >= 5 * 65536);
  /* The budget: a fresh run (new instance state) crossing 10 pages. */
  tw_graph_free(g);
  g = parse_with(text, NULL);
  tw_graph_set_budget(g, 0, 10 * 65536);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_graph_run(g, 20, NULL, NULL, &err), TW_ELIMIT);
  assert_non_null(strstr(err.msg, "graph 'grow': memory budget exceeded"));
  (void)tw_graph_stats(g, &st, 1, &run);
  assert_true(run.ticks < 10);
  assert_true(run.memory_bytes > 10 * 65536);
  tw_graph_free(g);
  unlink(path);
}

/* Runs and gradients publish twin_graph_* counters in the context's
 * registry: deltas, so two advances add up to one run. */
static void metrics_exported(void **state) {
  (void)state;
  tw_ctx *ctx = NULL;
  assert_int_equal(tw_ctx_new(NULL, &ctx, NULL), TW_OK);
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.ctx = ctx;
  tw_graph *g = parse_with(chain, &o);
  assert_int_equal(tw_graph_reset(g, NULL), TW_OK);
  assert_int_equal(tw_graph_advance(g, 4, NULL, NULL, NULL), TW_OK);
  assert_int_equal(tw_graph_advance(g, 6, NULL, NULL, NULL), TW_OK);
  tw_graph_set_budget(g, 0, 1);
  assert_int_equal(tw_graph_run(g, 3, NULL, NULL, NULL), TW_ELIMIT);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_metrics_render(tw_ctx_metrics(ctx), &b), TW_OK);
  static const char *const want[] = {
      "twin_graph_runs_total{graph=\"c\"} 2\n",
      "twin_graph_ticks_total{graph=\"c\"} 10\n",
      "twin_graph_block_steps_total{graph=\"c\",block=\"g\"} 11\n",
      "twin_graph_block_steps_total{graph=\"c\",block=\"i\"} 6\n",
      "twin_graph_budget_stops_total{graph=\"c\",resource=\"memory\"} 1\n",
      "# TYPE twin_graph_block_seconds_total counter\n",
      "# TYPE twin_graph_memory_bytes gauge\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (strstr(b.data, want[i]) == NULL)
      fail_msg("missing %s in\n%s", want[i], b.data);
  tw_buf_fini(&b);
  tw_graph_free(g);
  tw_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(advance_continues_a_run), TW_TEST(block_accounting),
      TW_TEST(gradient_memory_budget),  TW_TEST(wasm_memory_and_fuel),
      TW_TEST(metrics_exported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
