/*
 * log.c - leveled, structured log lines handed to the context's sink.
 *
 * A line is rendered into a fixed buffer on the logging thread's stack and
 * passed to the sink; nothing here allocates, so logging works while
 * memory is exhausted (and tests assert it). Level and format are atomics
 * in ctx->log; a line below the level, or with no sink, costs one load.
 *
 * Rendering goes through a line_writer whose puts are all-or-nothing per
 * unit (a UTF-8 sequence, an escape, a number) so truncation never splits
 * one. A line that does not fit is rendered a second time with room kept
 * for the truncation mark: text lines end in "...\n"; JSON lines cut the
 * message with "...", drop the fields that do not fit, and end in
 * ,"truncated":true}\n, so every JSON line stays one valid object.
 *
 * Text lines escape control bytes everywhere (a message can never forge a
 * second line) and quote field values that need it. JSON strings are
 * escaped per RFC 8259; bytes that are not valid UTF-8 become \ufffd, so
 * the output is valid JSON for any input.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_int.h"
#include "twin/clock.h"
#include "twin/log.h"

/* --- Sink, level and format --- */

static const char *const level_names[] = {"trace", "debug", "info",
                                          "warn",  "error", "off"};

const char *tw_log_level_name(tw_log_level level) {
  if ((unsigned)level > TW_LOG_OFF)
    return "unknown";
  return level_names[level];
}

/* ASCII-only case folding: the locale must not change what parses. */
static bool ascii_ieq(const char *a, const char *b) {
  for (;; a++, b++) {
    char ca = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
    if (ca != *b)
      return false;
    if (ca == '\0')
      return true;
  }
}

int tw_log_level_parse(const char *name) {
  if (name == NULL)
    return -1;
  for (int i = TW_LOG_TRACE; i <= TW_LOG_OFF; i++)
    if (ascii_ieq(name, level_names[i]))
      return i;
  if (ascii_ieq(name, "warning"))
    return TW_LOG_WARN;
  return -1;
}

void tw_log_set_sink(tw_ctx *ctx, tw_log_sink_fn fn, void *ud) {
  ctx->log.sink = fn;
  ctx->log.sink_ud = ud;
}

/* Out-of-range values are ignored rather than stored, so the logger never
 * holds a level or format it cannot interpret. */
void tw_log_set_level(tw_ctx *ctx, tw_log_level level) {
  if ((unsigned)level <= TW_LOG_OFF)
    atomic_store_explicit(&ctx->log.level, (int)level, memory_order_relaxed);
}

void tw_log_set_format(tw_ctx *ctx, tw_log_format format) {
  if (format == TW_LOG_TEXT || format == TW_LOG_JSON)
    atomic_store_explicit(&ctx->log.format, (int)format, memory_order_relaxed);
}

bool tw_log_enabled(const tw_ctx *ctx, tw_log_level level) {
  if (ctx == NULL || ctx->log.sink == NULL || (unsigned)level >= TW_LOG_OFF)
    return false;
  return (int)level >=
         atomic_load_explicit(&ctx->log.level, memory_order_relaxed);
}

void tw_log_sink_file(void *ud, tw_log_level level, const char *line,
                      size_t len) {
  (void)level;
  FILE *f = ud;
  if (f == NULL)
    return;
  flockfile(f);
  (void)fwrite(line, 1, len, f);
  (void)fflush(f);
  funlockfile(f);
}

/* --- The line writer --- */

typedef struct line_writer {
  char *p;
  size_t len;
  size_t limit; /* len never exceeds it */
  bool full;    /* a unit did not fit; every later put is ignored */
} line_writer;

/* Appends one unit, whole or not at all. */
static void put(line_writer *w, const char *s, size_t n) {
  if (w->full)
    return;
  if (n > w->limit - w->len) {
    w->full = true;
    return;
  }
  memcpy(w->p + w->len, s, n);
  w->len += n;
}

static void put_str(line_writer *w, const char *s) { put(w, s, strlen(s)); }

/* Appends a run of single-byte units: as much of it as fits. */
static void put_run(line_writer *w, const char *s, size_t n) {
  if (w->full)
    return;
  size_t room = w->limit - w->len;
  if (n > room) {
    n = room;
    w->full = true;
  }
  memcpy(w->p + w->len, s, n);
  w->len += n;
}

static const char hex_digits[] = "0123456789abcdef";

/* Formats a field that is not a non-NULL string: numbers, booleans, and
 * null for a NULL string. JSON has no NaN or infinity, so there a
 * non-finite value is null too. */
static void format_scalar(const tw_log_field *f, bool json, char *num,
                          size_t cap) {
  switch (f->type) {
  case TW_LOG_FIELD_INT:
    (void)snprintf(num, cap, "%" PRId64, f->v.i);
    return;
  case TW_LOG_FIELD_UINT:
    (void)snprintf(num, cap, "%" PRIu64, f->v.u);
    return;
  case TW_LOG_FIELD_F64:
    if (json && !isfinite(f->v.f))
      (void)snprintf(num, cap, "null");
    else
      tw__format_f64(f->v.f, num, cap);
    return;
  case TW_LOG_FIELD_BOOL:
    (void)snprintf(num, cap, "%s", f->v.b ? "true" : "false");
    return;
  case TW_LOG_FIELD_STR: /* only NULL strings reach here */
    break;
  }
  (void)snprintf(num, cap, "%s",
                 json || f->type == TW_LOG_FIELD_STR ? "null" : "?");
}

/* --- Text lines --- */

static bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* Escapes a control byte as \n, \t, \r or \xNN. */
static void text_put_ctl(line_writer *w, unsigned char c) {
  switch (c) {
  case '\n':
    put(w, "\\n", 2);
    break;
  case '\t':
    put(w, "\\t", 2);
    break;
  case '\r':
    put(w, "\\r", 2);
    break;
  default: {
    char esc[4] = {'\\', 'x', hex_digits[c >> 4], hex_digits[c & 15]};
    put(w, esc, 4);
  }
  }
}

/* Writes s with control bytes escaped; inside quotes also '"' and '\'.
 * Other bytes pass through (valid UTF-8 sequences as one unit). */
static void text_put(line_writer *w, const char *s, bool quoted) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s), i = 0;
  while (i < n && !w->full) {
    size_t run = i;
    while (run < n && p[run] < 0x80 && !is_ctl(p[run]) &&
           !(quoted && (p[run] == '"' || p[run] == '\\')))
      run++;
    if (run > i) {
      put_run(w, s + i, run - i);
      i = run;
    } else if (p[i] >= 0x80) {
      size_t len = tw__utf8_seq_len(p + i, n - i);
      len = len ? len : 1;
      put(w, s + i, len);
      i += len;
    } else if (p[i] == '"' || p[i] == '\\') {
      char esc[2] = {'\\', (char)p[i]};
      put(w, esc, 2);
      i++;
    } else {
      text_put_ctl(w, p[i]);
      i++;
    }
  }
}

/* A value is quoted when it would otherwise read ambiguously. */
static bool text_needs_quotes(const char *s) {
  if (*s == '\0')
    return true;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || is_ctl(*p))
      return true;
  return false;
}

static void text_put_value(line_writer *w, const tw_log_field *f) {
  if (f->type == TW_LOG_FIELD_STR && f->v.s != NULL) {
    bool quote = text_needs_quotes(f->v.s);
    if (quote)
      put(w, "\"", 1);
    text_put(w, f->v.s, quote);
    if (quote)
      put(w, "\"", 1);
    return;
  }
  char num[40];
  format_scalar(f, false, num, sizeof num);
  put_str(w, num);
}

static void text_render(line_writer *w, const char *ts, tw_log_level level,
                        const char *sub, const char *msg,
                        const tw_log_field *fields, size_t n) {
  put_str(w, ts);
  put(w, " ", 1);
  /* Level names are padded to five columns so messages line up. */
  const char *name = tw_log_level_name(level);
  put_str(w, name);
  for (size_t i = strlen(name); i < 5; i++)
    put(w, " ", 1);
  put(w, " ", 1);
  if (sub != NULL) {
    text_put(w, sub, false);
    put(w, ": ", 2);
  }
  text_put(w, msg, false);
  for (size_t i = 0; i < n; i++) {
    put(w, " ", 1);
    text_put(w, fields[i].key ? fields[i].key : "", false);
    put(w, "=", 1);
    text_put_value(w, &fields[i]);
  }
}

static size_t text_line(char *out, size_t cap, const char *ts,
                        tw_log_level level, const char *sub, const char *msg,
                        const tw_log_field *fields, size_t n) {
  line_writer w = {out, 0, cap - 2, false}; /* room for '\n' and NUL */
  text_render(&w, ts, level, sub, msg, fields, n);
  if (w.full) {
    /* Render again, keeping room for the "...\n" mark. */
    if (cap < 5) {
      out[0] = '\n';
      out[1] = '\0';
      return 1;
    }
    w = (line_writer){out, 0, cap - 5, false};
    text_render(&w, ts, level, sub, msg, fields, n);
    memcpy(out + w.len, "...", 3);
    w.len += 3;
  }
  out[w.len++] = '\n';
  out[w.len] = '\0';
  return w.len;
}

/* --- JSON lines --- */

/* Escapes s[0..n) as the inside of a JSON string. */
static void json_escape(line_writer *w, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n && !w->full) {
    size_t run = i;
    while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
           p[run] != '\\')
      run++;
    if (run > i) {
      put_run(w, s + i, run - i);
      i = run;
      continue;
    }
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      put(w, esc, 2);
      i++;
    } else if (c == '\n') {
      put(w, "\\n", 2);
      i++;
    } else if (c == '\r') {
      put(w, "\\r", 2);
      i++;
    } else if (c == '\t') {
      put(w, "\\t", 2);
      i++;
    } else if (c < 0x20) {
      char esc[6] = {
          '\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 15]};
      put(w, esc, 6);
      i++;
    } else {
      size_t len = tw__utf8_seq_len(p + i, n - i);
      if (len == 0) {
        put(w, "\\ufffd", 6);
        i++;
      } else {
        put(w, s + i, len);
        i += len;
      }
    }
  }
}

/* Writes s as a JSON string. When cut is non-NULL the string may be cut
 * short: it then ends in ..." and *cut is set (the writer stays full, as
 * nothing more fits). */
static void json_string(line_writer *w, const char *s, bool *cut) {
  if (cut == NULL) {
    put(w, "\"", 1);
    json_escape(w, s, strlen(s));
    put(w, "\"", 1);
    return;
  }
  /* Room for the opening quote and the '..."' that ends a cut string. */
  if (w->full || w->limit - w->len < 5) {
    w->full = true;
    return;
  }
  w->limit -= 4;
  put(w, "\"", 1);
  json_escape(w, s, strlen(s));
  w->limit += 4;
  if (w->full) {
    w->full = false;
    put(w, "...\"", 4);
    w->full = true;
    *cut = true;
  } else {
    put(w, "\"", 1);
  }
}

/* Field keys that would collide with the line's own members are written as
 * "field.<key>": JSON leaves duplicate keys undefined, and a consumer must
 * never mistake a field for the message or the level. */
static bool json_key_reserved(const char *key) {
  return strcmp(key, "ts") == 0 || strcmp(key, "level") == 0 ||
         strcmp(key, "sub") == 0 || strcmp(key, "msg") == 0 ||
         strcmp(key, "truncated") == 0;
}

static void json_put_value(line_writer *w, const tw_log_field *f) {
  if (f->type == TW_LOG_FIELD_STR && f->v.s != NULL) {
    json_string(w, f->v.s, NULL);
    return;
  }
  char num[40];
  format_scalar(f, true, num, sizeof num);
  put_str(w, num);
}

/* Renders the object without its closing brace. With truncate, members
 * that do not fit are cut (sub, msg) or dropped (fields, from the first
 * that does not fit); returns false if not even ts and level fit. */
static bool json_render(line_writer *w, const char *ts, tw_log_level level,
                        const char *sub, const char *msg,
                        const tw_log_field *fields, size_t n, bool truncate) {
  put_str(w, "{\"ts\":\"");
  put_str(w, ts);
  put_str(w, "\",\"level\":\"");
  put_str(w, tw_log_level_name(level));
  put(w, "\"", 1);
  if (w->full)
    return false;
  bool cut = false;
  bool *cutp = truncate ? &cut : NULL;
  if (sub != NULL) {
    size_t mark = w->len;
    put_str(w, ",\"sub\":");
    json_string(w, sub, cutp);
    if (w->full && !cut)
      w->len = mark;
  }
  size_t mark = w->len;
  put_str(w, ",\"msg\":");
  json_string(w, msg, cutp);
  if (w->full && !cut)
    w->len = mark;
  for (size_t i = 0; i < n && !w->full; i++) {
    const char *key = fields[i].key ? fields[i].key : "";
    mark = w->len;
    put_str(w, json_key_reserved(key) ? ",\"field." : ",\"");
    json_escape(w, key, strlen(key));
    put_str(w, "\":");
    json_put_value(w, &fields[i]);
    if (w->full)
      w->len = mark;
  }
  return true;
}

#define JSON_TRUNCATED_TAIL ",\"truncated\":true}\n"

static size_t json_line(char *out, size_t cap, const char *ts,
                        tw_log_level level, const char *sub, const char *msg,
                        const tw_log_field *fields, size_t n) {
  line_writer w = {out, 0, cap - 1, false}; /* room for the NUL */
  json_render(&w, ts, level, sub, msg, fields, n, false);
  put_str(&w, "}\n");
  if (!w.full) {
    out[w.len] = '\0';
    return w.len;
  }
  /* Render again, cutting to leave room for the truncation tail. */
  size_t tail = strlen(JSON_TRUNCATED_TAIL);
  w = (line_writer){out, 0, cap - 1 - tail, false};
  if (cap - 1 < tail ||
      !json_render(&w, ts, level, sub, msg, fields, n, true)) {
    /* Too small for any useful line; still valid JSON when possible. */
    const char *s = cap >= 4 ? "{}\n" : "\n";
    size_t len = strlen(s);
    memcpy(out, s, len + 1);
    return len;
  }
  memcpy(out + w.len, JSON_TRUNCATED_TAIL, tail + 1);
  return w.len + tail;
}

size_t tw__log_format_line(char *out, size_t cap, tw_log_format format,
                           int64_t wall_ns, tw_log_level level, const char *sub,
                           const char *msg, const tw_log_field *fields,
                           size_t n) {
  if (cap < 2) {
    if (cap == 1)
      out[0] = '\0';
    return 0;
  }
  char ts[TW_CLOCK_RFC3339_LEN];
  tw_clock_format_rfc3339(wall_ns, ts);
  if (msg == NULL)
    msg = "";
  if (format == TW_LOG_JSON)
    return json_line(out, cap, ts, level, sub, msg, fields, n);
  return text_line(out, cap, ts, level, sub, msg, fields, n);
}

/* --- Logging --- */

static void emit(tw_ctx *ctx, tw_log_level level, const char *sub,
                 const char *msg, const tw_log_field *fields, size_t n) {
  tw_log_sink_fn sink = ctx->log.sink;
  if (sink == NULL)
    return;
  char line[TW_LOG_LINE_MAX + 1]; /* lines up to TW_LOG_LINE_MAX bytes */
  tw_log_format format = (tw_log_format)atomic_load_explicit(
      &ctx->log.format, memory_order_relaxed);
  size_t len =
      tw__log_format_line(line, sizeof line, format, tw_clock_wall_ns(), level,
                          sub, msg, fields, n);
  sink(ctx->log.sink_ud, level, line, len);
}

void tw_logv(tw_ctx *ctx, tw_log_level level, const char *sub, const char *fmt,
             va_list ap) {
  if (!tw_log_enabled(ctx, level))
    return;
  /* A message this long makes the line overflow, so the line gets the
   * truncation mark even when vsnprintf cut the message. */
  char msg[TW_LOG_LINE_MAX];
  if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
    msg[0] = '\0';
  emit(ctx, level, sub, msg, NULL, 0);
}

void tw_log(tw_ctx *ctx, tw_log_level level, const char *sub, const char *fmt,
            ...) {
  if (!tw_log_enabled(ctx, level))
    return;
  va_list ap;
  va_start(ap, fmt);
  tw_logv(ctx, level, sub, fmt, ap);
  va_end(ap);
}

void tw_log_fields(tw_ctx *ctx, tw_log_level level, const char *sub,
                   const char *msg, const tw_log_field *fields, size_t n) {
  if (!tw_log_enabled(ctx, level))
    return;
  emit(ctx, level, sub, msg, fields, n);
}
