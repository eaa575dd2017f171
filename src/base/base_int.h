/*
 * base_int.h - private definitions shared by the files of src/base.
 *
 * Never installed, never included outside src/base and its unit tests.
 */
#ifndef TWIN_BASE_INT_H
#define TWIN_BASE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "twin/ctx.h"
#include "twin/log.h"

/* The logger's state lives in the context. Level and format are atomics so
 * that tw_log_enabled() is a plain load on hot paths. */
typedef struct tw__logger {
  _Atomic int level;
  _Atomic int format;
  tw_log_sink_fn sink;
  void *sink_ud;
} tw__logger;

struct tw_ctx {
  tw__logger log;
  unsigned threads;
  tw_metrics *metrics;
  pthread_mutex_t pool_mu; /* guards lazy creation of pool */
  tw_pool *pool;
  int64_t start_wall_ns;
};

/* Formats one log line (text or JSON, ending in '\n') into out[cap];
 * returns its length. Used by tw_log and exercised directly by tests. */
size_t tw__log_format_line(char *out, size_t cap, tw_log_format format,
                           int64_t wall_ns, tw_log_level level, const char *sub,
                           const char *msg, const tw_log_field *fields,
                           size_t n);

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid
 * (stray continuation byte, truncated, overlong, surrogate, > U+10FFFF). */
size_t tw__utf8_seq_len(const unsigned char *s, size_t n);
/* s[0..n) in single quotes into out[cap] (cap >= 16) for a message: control
 * bytes and invalid UTF-8 as \xNN, text past 40 bytes cut to "..." (text.c). */
void tw__quote_text(const char *s, size_t n, char *out, size_t cap);

/* True if s[0..n) is well-formed UTF-8. */
bool tw__utf8_valid(const char *s, size_t n);

/* Value of the hex digit c (either case), or -1. */
int tw__hex_value(int c);

/* Writes the shortest of %.15g, %.16g, %.17g that reads back as the double
 * v, always with '.' as the decimal point whatever the locale; non-finite
 * values as "inf", "-inf", "nan". cap should be at least TW__F64_MAX. */
#define TW__F64_MAX 32
void tw__format_f64(double v, char *out, size_t cap);

/* Registers the process metrics (CPU, memory, start time) in m. */
int tw__ctx_register_process_metrics(tw_ctx *ctx, tw_err *err);

#endif /* TWIN_BASE_INT_H */
