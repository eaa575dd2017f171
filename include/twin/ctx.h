/*
 * ctx.h - the library context: the one place process-level state hangs off.
 *
 * There are no hidden globals in Twin (except the allocator hooks, see
 * alloc.h): the logger, the metrics registry and the worker pool belong to a
 * tw_ctx that the host creates and passes down. A host may create several.
 *
 * Thread safety: tw_ctx_new/tw_ctx_free from one thread; the accessors may
 * be called from any thread while the context lives.
 */
#ifndef TWIN_CTX_H
#define TWIN_CTX_H

#include "twin/common.h"
#include "twin/error.h"
#include "twin/log.h"
#include "twin/metrics.h"
#include "twin/pool.h"

TW_EXTERN_C_BEGIN

typedef struct tw_ctx_options {
  unsigned threads; /* worker parallelism; 0 = online CPUs */
  tw_log_level log_level;
  tw_log_format log_format;
  tw_log_sink_fn log_sink; /* NULL: lines are dropped */
  void *log_ud;
} tw_ctx_options;

/* Fills opts with the defaults: threads 0, TW_LOG_INFO, text, no sink. */
TW_API void tw_ctx_options_init(tw_ctx_options *opts);

/* Creates a context (opts NULL = defaults). The metrics registry is created
 * at once and carries the process metrics (CPU seconds, resident memory,
 * start time); the pool is created on first use. */
TW_API int tw_ctx_new(const tw_ctx_options *opts, tw_ctx **out, tw_err *err);

/* Frees the context, its pool and registry. NULL is a no-op. */
TW_API void tw_ctx_free(tw_ctx *ctx);

/* The registry; borrowed, lives as long as ctx. */
TW_API tw_metrics *tw_ctx_metrics(tw_ctx *ctx);

/* The pool, created on first call with the configured thread count.
 * Borrowed, lives as long as ctx. */
TW_API int tw_ctx_pool(tw_ctx *ctx, tw_pool **out, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_CTX_H */
