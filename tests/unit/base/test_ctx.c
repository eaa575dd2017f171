/*
 * test_ctx.c - the library context: defaults, options, validation, the
 * metrics registry, the lazy pool, and allocation failures.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "tw_test.h"

typedef struct capture {
  int count;
  char line[TW_LOG_LINE_MAX + 1];
} capture;

static void capture_sink(void *ud, tw_log_level level, const char *s,
                         size_t len) {
  (void)level;
  capture *c = ud;
  c->count++;
  memcpy(c->line, s, len + 1);
}

static void test_options_defaults(void **state) {
  (void)state;
  tw_ctx_options opts;
  memset(&opts, 0xab, sizeof opts);
  tw_ctx_options_init(&opts);
  assert_int_equal(opts.threads, 0);
  assert_int_equal(opts.log_level, TW_LOG_INFO);
  assert_int_equal(opts.log_format, TW_LOG_TEXT);
  assert_null(opts.log_sink);
  assert_null(opts.log_ud);
}

static void test_new_defaults(void **state) {
  (void)state;
  tw_ctx *ctx = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ctx_new(NULL, &ctx, &err), TW_OK);
  assert_non_null(ctx);
  assert_int_equal(err.code, TW_OK);
  /* No sink by default: nothing is enabled, nothing is written. */
  assert_false(tw_log_enabled(ctx, TW_LOG_ERROR));
  tw_log(ctx, TW_LOG_ERROR, "ctx", "dropped");

  tw_metrics *m = tw_ctx_metrics(ctx);
  assert_non_null(m);
  assert_ptr_equal(tw_ctx_metrics(ctx), m);
  tw_buf out = TW_BUF_INIT;
  assert_int_equal(tw_metrics_render(m, &out), TW_OK);
  assert_non_null(out.data);
  assert_non_null(strstr(out.data, "process_cpu_seconds_total"));
  assert_non_null(strstr(out.data, "process_resident_memory_bytes"));
  assert_non_null(strstr(out.data, "process_start_time_seconds"));
  tw_buf_fini(&out);

  /* threads 0: the pool has one thread per online CPU. */
  tw_pool *pool = NULL;
  assert_int_equal(tw_ctx_pool(ctx, &pool, &err), TW_OK);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  assert_int_equal(tw_pool_threads(pool), ncpu < 1 ? 1 : (unsigned)ncpu);
  tw_ctx_free(ctx);
  tw_ctx_free(NULL);
}

static void test_new_options(void **state) {
  (void)state;
  static capture c;
  memset(&c, 0, sizeof c);
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.threads = 3;
  opts.log_level = TW_LOG_DEBUG;
  opts.log_format = TW_LOG_JSON;
  opts.log_sink = capture_sink;
  opts.log_ud = &c;
  tw_ctx *ctx = NULL;
  assert_int_equal(tw_ctx_new(&opts, &ctx, NULL), TW_OK);
  assert_true(tw_log_enabled(ctx, TW_LOG_DEBUG));
  assert_false(tw_log_enabled(ctx, TW_LOG_TRACE));
  tw_log(ctx, TW_LOG_TRACE, "ctx", "hidden");
  assert_int_equal(c.count, 0);
  tw_log(ctx, TW_LOG_DEBUG, "ctx", "n=%d", 5);
  assert_int_equal(c.count, 1);
  assert_memory_equal(c.line, "{\"ts\":\"", 7);
  assert_non_null(strstr(c.line, "\"level\":\"debug\",\"sub\":\"ctx\","
                                 "\"msg\":\"n=5\"}\n"));

  tw_pool *pool = NULL;
  assert_int_equal(tw_ctx_pool(ctx, &pool, NULL), TW_OK);
  assert_int_equal(tw_pool_threads(pool), 3);
  tw_ctx_free(ctx);
}

static void test_new_invalid(void **state) {
  (void)state;
  static const struct {
    int level, format;
  } bad[] = {
      {6, TW_LOG_TEXT}, {-1, TW_LOG_TEXT}, {TW_LOG_INFO, 2}, {TW_LOG_INFO, -1}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_ctx_options opts;
    tw_ctx_options_init(&opts);
    opts.log_level = (tw_log_level)bad[i].level;
    opts.log_format = (tw_log_format)bad[i].format;
    tw_ctx *sentinel = (tw_ctx *)&opts, *ctx = sentinel;
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_ctx_new(&opts, &ctx, &err), TW_EINVAL);
    assert_int_equal(err.code, TW_EINVAL);
    assert_true(strlen(err.msg) > 0);
    assert_ptr_equal(ctx, sentinel); /* output untouched */
  }
  /* TW_LOG_OFF is a valid context level. */
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.log_level = TW_LOG_OFF;
  tw_ctx *ctx = NULL;
  assert_int_equal(tw_ctx_new(&opts, &ctx, NULL), TW_OK);
  tw_ctx_free(ctx);
}

static void test_pool_lazy_once(void **state) {
  (void)state;
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.threads = 2;
  tw_ctx *ctx = NULL;
  assert_int_equal(tw_ctx_new(&opts, &ctx, NULL), TW_OK);
  /* The pool does not exist before first use. */
  long live = tw_alloc_live();
  tw_pool *p1 = NULL, *p2 = NULL;
  assert_int_equal(tw_ctx_pool(ctx, &p1, NULL), TW_OK);
  assert_true(tw_alloc_live() > live);
  live = tw_alloc_live();
  assert_int_equal(tw_ctx_pool(ctx, &p2, NULL), TW_OK);
  assert_ptr_equal(p1, p2);
  assert_int_equal(tw_alloc_live(), live);
  tw_ctx_free(ctx);
}

typedef struct race_arg {
  tw_ctx *ctx;
  tw_pool *pool;
  int rc;
} race_arg;

static void *race_main(void *p) {
  race_arg *a = p;
  a->rc = tw_ctx_pool(a->ctx, &a->pool, NULL);
  return NULL;
}

static void test_pool_concurrent_first_use(void **state) {
  (void)state;
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.threads = 2;
  tw_ctx *ctx = NULL;
  assert_int_equal(tw_ctx_new(&opts, &ctx, NULL), TW_OK);
  race_arg args[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (race_arg){ctx, NULL, -1};
    assert_int_equal(pthread_create(&th[i], NULL, race_main, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(args[i].rc, TW_OK);
    assert_ptr_equal(args[i].pool, args[0].pool);
  }
  tw_ctx_free(ctx);
}

static int ctx_round(unsigned threads) {
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.threads = threads;
  tw_ctx *ctx = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_ctx_new(&opts, &ctx, &err);
  if (rc != TW_OK) {
    assert_int_equal(err.code, rc);
    assert_null(ctx);
    return rc;
  }
  tw_pool *pool = NULL;
  rc = tw_ctx_pool(ctx, &pool, &err);
  if (rc == TW_OK) {
    assert_non_null(pool);
  } else {
    /* A failed first use leaves the context usable and pool-less. */
    assert_int_equal(err.code, rc);
    assert_null(pool);
  }
  tw_ctx_free(ctx);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(ctx_round(1));
  TW_TEST_ALLOC_FAILURES(ctx_round(4));
}

int main(void);
int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_options_defaults), TW_TEST(test_new_defaults),
      TW_TEST(test_new_options),      TW_TEST(test_new_invalid),
      TW_TEST(test_pool_lazy_once),   TW_TEST(test_pool_concurrent_first_use),
      TW_TEST(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
