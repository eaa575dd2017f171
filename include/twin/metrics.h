/*
 * metrics.h - registry of counters, gauges and histograms rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * A registry holds metric families; a family has a name, help text, a type
 * and a fixed list of label names; each distinct list of label values is a
 * child holding the numbers. Hot paths look a child up once and then update
 * it with atomic operations, without locks.
 *
 * Names follow Prometheus rules and the conventions promtool enforces:
 * [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in "_total", label names match
 * [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__", histograms may not use
 * the label "le". Help text is required. Registering an existing name again
 * with the same type, labels (and buckets) returns the existing family, so
 * subsystems can register idempotently; any difference is TW_EEXIST.
 *
 * Rendering sorts families by name and children by label values, so the
 * output is deterministic. Label values and help text are escaped as the
 * format requires.
 *
 * Thread safety: all functions may be called from any thread. Children and
 * families live until the registry is freed.
 */
#ifndef TWIN_METRICS_H
#define TWIN_METRICS_H

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

typedef struct tw_metrics tw_metrics;
typedef struct tw_metric_family tw_metric_family;
typedef struct tw_metric tw_metric;

typedef enum tw_metric_type {
  TW_METRIC_COUNTER,
  TW_METRIC_GAUGE,
  TW_METRIC_HISTOGRAM
} tw_metric_type;

TW_API int tw_metrics_new(tw_metrics **out, tw_err *err);
/* NULL is a no-op. */
TW_API void tw_metrics_free(tw_metrics *m);

/* Registers (or finds) a family. label_names has nlabels entries (may be
 * NULL when nlabels is 0); the strings are copied. For histograms, bounds
 * are the nbounds finite, strictly increasing upper bounds; +Inf is
 * implicit. For other types bounds must be NULL. */
TW_API int tw_metrics_family(tw_metrics *m, tw_metric_type type,
                             const char *name, const char *help,
                             const char *const *label_names, size_t nlabels,
                             const double *bounds, size_t nbounds,
                             tw_metric_family **out, tw_err *err);

/* Shorthands for families without labels that return their only child. */
TW_API int tw_metrics_counter(tw_metrics *m, const char *name, const char *help,
                              tw_metric **out, tw_err *err);
TW_API int tw_metrics_gauge(tw_metrics *m, const char *name, const char *help,
                            tw_metric **out, tw_err *err);
TW_API int tw_metrics_histogram(tw_metrics *m, const char *name,
                                const char *help, const double *bounds,
                                size_t nbounds, tw_metric **out, tw_err *err);

/* Finds or creates the child with these label values (one per label name,
 * copied; any UTF-8 text). */
TW_API int tw_metric_family_child(tw_metric_family *f,
                                  const char *const *label_values,
                                  tw_metric **out, tw_err *err);

/* Counter: add v >= 0 (negative or non-finite v is ignored and returns
 * TW_EINVAL). Gauge: add any finite v. Histogram: TW_EINVAL. */
TW_API int tw_metric_add(tw_metric *c, double v);
TW_API void tw_metric_inc(tw_metric *c);
/* Gauge only (TW_EINVAL otherwise). */
TW_API int tw_metric_set(tw_metric *g, double v);
/* Histogram only (TW_EINVAL otherwise). NaN is ignored with TW_EINVAL. */
TW_API int tw_metric_observe(tw_metric *h, double v);

/* Current value of a counter or gauge; a histogram's sample count. */
TW_API double tw_metric_value(const tw_metric *m);

/* Registers a gauge whose value is read by calling fn(ud) at render time
 * (process memory, queue depth). fn must be thread-safe and must not call
 * into the registry. */
TW_API int tw_metrics_gauge_fn(tw_metrics *m, const char *name,
                               const char *help, double (*fn)(void *ud),
                               void *ud, tw_err *err);

/* As tw_metrics_gauge_fn for a counter read at render time (process CPU
 * seconds): the name ends in "_total" and fn must never decrease. */
TW_API int tw_metrics_counter_fn(tw_metrics *m, const char *name,
                                 const char *help, double (*fn)(void *ud),
                                 void *ud, tw_err *err);

/* Appends the whole registry in the Prometheus text format to out. */
TW_API int tw_metrics_render(tw_metrics *m, tw_buf *out);

/* Bucket bounds start, start*factor, ... (count of them) into out. */
TW_API int tw_metrics_exponential_buckets(double start, double factor,
                                          size_t count, double *out);

TW_EXTERN_C_END

#endif /* TWIN_METRICS_H */
