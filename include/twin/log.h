/*
 * log.h - leveled, structured logging into a sink the host installs.
 *
 * The library never writes to stderr by itself: a log line is formatted
 * (text or JSON lines) and handed to the sink of the tw_ctx; with no sink
 * the line is dropped. The CLI installs a stderr sink; the Python SDK routes
 * lines to the logging module; the server writes JSON lines.
 *
 * Text:  2026-11-30T03:10:00.123Z info  graph: run finished ticks=1000
 * JSON:  {"ts":"2026-11-30T03:10:00.123Z","level":"info","sub":"graph",
 *         "msg":"run finished","ticks":1000}
 *
 * Formatting uses a fixed stack buffer (TW_LOG_LINE_MAX), so logging never
 * allocates and works while memory is exhausted; longer lines are truncated
 * and marked with "...". Text fields are key=value with values quoted when
 * they contain spaces, quotes or '='.
 *
 * Thread safety: logging functions may be called from any thread; the sink
 * is called on the logging thread and must itself be thread-safe. The
 * setters must not race with logging (set them up before starting work).
 */
#ifndef TWIN_LOG_H
#define TWIN_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "twin/common.h"

TW_EXTERN_C_BEGIN

typedef struct tw_ctx tw_ctx;

typedef enum tw_log_level {
  TW_LOG_TRACE = 0,
  TW_LOG_DEBUG = 1,
  TW_LOG_INFO = 2,
  TW_LOG_WARN = 3,
  TW_LOG_ERROR = 4,
  TW_LOG_OFF = 5
} tw_log_level;

typedef enum tw_log_format { TW_LOG_TEXT = 0, TW_LOG_JSON = 1 } tw_log_format;

#define TW_LOG_LINE_MAX 4096

/* Receives one complete line, ending in '\n', len bytes long (without a
 * terminator guarantee beyond len; line[len] is '\0'). The line is borrowed
 * for the duration of the call. */
typedef void (*tw_log_sink_fn)(void *ud, tw_log_level level, const char *line,
                               size_t len);

/* A structured field for tw_log_fields. */
typedef enum tw_log_field_type {
  TW_LOG_FIELD_STR,
  TW_LOG_FIELD_INT,
  TW_LOG_FIELD_UINT,
  TW_LOG_FIELD_F64,
  TW_LOG_FIELD_BOOL
} tw_log_field_type;

typedef struct tw_log_field {
  const char *key;
  tw_log_field_type type;
  union {
    const char *s;
    int64_t i;
    uint64_t u;
    double f;
    bool b;
  } v;
} tw_log_field;

#define TW_LOG_STR(k, x) ((tw_log_field){(k), TW_LOG_FIELD_STR, {.s = (x)}})
#define TW_LOG_INT(k, x) ((tw_log_field){(k), TW_LOG_FIELD_INT, {.i = (x)}})
#define TW_LOG_UINT(k, x) ((tw_log_field){(k), TW_LOG_FIELD_UINT, {.u = (x)}})
#define TW_LOG_F64(k, x) ((tw_log_field){(k), TW_LOG_FIELD_F64, {.f = (x)}})
#define TW_LOG_BOOL(k, x) ((tw_log_field){(k), TW_LOG_FIELD_BOOL, {.b = (x)}})

/* Installs the sink (NULL drops every line). */
TW_API void tw_log_set_sink(tw_ctx *ctx, tw_log_sink_fn fn, void *ud);
/* Lines below level are not formatted. Default TW_LOG_INFO. */
TW_API void tw_log_set_level(tw_ctx *ctx, tw_log_level level);
TW_API void tw_log_set_format(tw_ctx *ctx, tw_log_format format);

/* True when a line at level would reach a sink. */
TW_API bool tw_log_enabled(const tw_ctx *ctx, tw_log_level level);

/* Logs a printf-formatted message for subsystem sub ("graph", "wasm"). */
TW_API void tw_log(tw_ctx *ctx, tw_log_level level, const char *sub,
                   const char *fmt, ...) TW_PRINTF(4, 5);
TW_API void tw_logv(tw_ctx *ctx, tw_log_level level, const char *sub,
                    const char *fmt, va_list ap) TW_PRINTF(4, 0);

/* Logs a fixed message with n structured fields. */
TW_API void tw_log_fields(tw_ctx *ctx, tw_log_level level, const char *sub,
                          const char *msg, const tw_log_field *fields,
                          size_t n);

/* Lower-case level name ("info"), and its inverse (returns -1 if unknown). */
TW_API const char *tw_log_level_name(tw_log_level level);
TW_API int tw_log_level_parse(const char *name);

/* A ready-made sink writing to the FILE * passed as ud (e.g. stderr), for
 * hosts that want one; it locks the stream so lines never interleave. */
TW_API void tw_log_sink_file(void *ud, tw_log_level level, const char *line,
                             size_t len);

TW_EXTERN_C_END

#endif /* TWIN_LOG_H */
