/*
 * ctx.c - the library context: logger state, metrics registry, lazy pool.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/ctx.h"

void tw_ctx_options_init(tw_ctx_options *opts) {
  memset(opts, 0, sizeof *opts);
  opts->log_level = TW_LOG_INFO;
  opts->log_format = TW_LOG_TEXT;
}

static double process_cpu_seconds(void *ud) {
  (void)ud;
  return (double)tw_clock_process_cpu_ns() / 1e9;
}

/* Resident set size from /proc/self/statm (pages -> bytes); 0 if absent. */
static double process_resident_bytes(void *ud) {
  (void)ud;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  (void)fclose(f); /* read-only: nothing to lose */
  if (n != 2)
    return 0;
  return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double process_start_seconds(void *ud) {
  const tw_ctx *ctx = ud;
  return (double)ctx->start_wall_ns / 1e9;
}

int tw__ctx_register_process_metrics(tw_ctx *ctx, tw_err *err) {
  int rc = tw_metrics_counter_fn(ctx->metrics, "process_cpu_seconds_total",
                                 "Total user and system CPU time spent in "
                                 "seconds.",
                                 process_cpu_seconds, ctx, err);
  if (rc == TW_OK)
    rc = tw_metrics_gauge_fn(ctx->metrics, "process_resident_memory_bytes",
                             "Resident memory size in bytes.",
                             process_resident_bytes, ctx, err);
  if (rc == TW_OK)
    rc = tw_metrics_gauge_fn(ctx->metrics, "process_start_time_seconds",
                             "Start time of the process since unix epoch in "
                             "seconds.",
                             process_start_seconds, ctx, err);
  return rc;
}

int tw_ctx_new(const tw_ctx_options *opts, tw_ctx **out, tw_err *err) {
  tw_ctx_options defaults;
  if (opts == NULL) {
    tw_ctx_options_init(&defaults);
    opts = &defaults;
  }
  if ((unsigned)opts->log_level > TW_LOG_OFF ||
      (opts->log_format != TW_LOG_TEXT && opts->log_format != TW_LOG_JSON))
    return tw_err_set(err, TW_EINVAL, "tw_ctx_new: invalid log options");
  tw_ctx *ctx = tw_calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return tw_err_set(err, TW_ENOMEM, "tw_ctx_new: out of memory");
  atomic_init(&ctx->log.level, (int)opts->log_level);
  atomic_init(&ctx->log.format, (int)opts->log_format);
  ctx->log.sink = opts->log_sink;
  ctx->log.sink_ud = opts->log_ud;
  ctx->threads = opts->threads;
  ctx->start_wall_ns = tw_clock_wall_ns();
  if (pthread_mutex_init(&ctx->pool_mu, NULL) != 0) {
    tw_free(ctx);
    return tw_err_set(err, TW_EIO, "tw_ctx_new: cannot create a mutex");
  }
  int rc = tw_metrics_new(&ctx->metrics, err);
  if (rc == TW_OK)
    rc = tw__ctx_register_process_metrics(ctx, err);
  if (rc != TW_OK) {
    tw_ctx_free(ctx);
    return rc;
  }
  *out = ctx;
  return TW_OK;
}

void tw_ctx_free(tw_ctx *ctx) {
  if (ctx == NULL)
    return;
  tw_pool_free(ctx->pool);
  tw_metrics_free(ctx->metrics);
  pthread_mutex_destroy(&ctx->pool_mu);
  tw_free(ctx);
}

tw_metrics *tw_ctx_metrics(tw_ctx *ctx) { return ctx->metrics; }

int tw_ctx_pool(tw_ctx *ctx, tw_pool **out, tw_err *err) {
  int rc = TW_OK;
  pthread_mutex_lock(&ctx->pool_mu);
  if (ctx->pool == NULL)
    rc = tw_pool_new(ctx->threads, &ctx->pool, err);
  if (rc == TW_OK)
    *out = ctx->pool;
  pthread_mutex_unlock(&ctx->pool_mu);
  return rc;
}
