/*
 * test_log.c - log line formatting (golden lines), escaping, truncation,
 * level filtering, sinks, and logging without allocation.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base_int.h"
#include "tw_test.h"

/* 2026-11-30T03:10:00.123Z, with sub-millisecond digits that must vanish. */
#define WALL INT64_C(1796008200123456789)
#define TS "2026-11-30T03:10:00.123Z"

static char line[TW_LOG_LINE_MAX + 1];

static const char *fmt_line(tw_log_format format, tw_log_level level,
                            const char *sub, const char *msg,
                            const tw_log_field *fields, size_t n) {
  size_t len = tw__log_format_line(line, sizeof line, format, WALL, level, sub,
                                   msg, fields, n);
  assert_int_equal(len, strlen(line));
  return line;
}

static const char *text1(const tw_log_field *f) {
  return fmt_line(TW_LOG_TEXT, TW_LOG_INFO, "t", "m", f, 1);
}

static const char *json1(const tw_log_field *f) {
  return fmt_line(TW_LOG_JSON, TW_LOG_INFO, "t", "m", f, 1);
}

/* Parses a JSON line (which must be one object ending in "\n"). */
static json_t *parse_line(const char *s, size_t len) {
  assert_true(len >= 3);
  assert_int_equal(s[len - 1], '\n');
  assert_int_equal(s[len - 2], '}');
  json_error_t jerr;
  json_t *j = json_loadb(s, len, 0, &jerr);
  if (j == NULL)
    fail_msg("invalid JSON (%s): %s", jerr.text, s);
  assert_true(json_is_object(j));
  return j;
}

/* --- Golden lines --- */

static void test_golden_text(void **state) {
  (void)state;
  tw_log_field f[] = {TW_LOG_INT("ticks", 1000), TW_LOG_STR("name", "a b")};
  assert_string_equal(
      fmt_line(TW_LOG_TEXT, TW_LOG_INFO, "graph", "run finished", f, 2),
      TS " info  graph: run finished ticks=1000 name=\"a b\"\n");
  assert_string_equal(
      fmt_line(TW_LOG_TEXT, TW_LOG_WARN, "disk", "low", NULL, 0),
      TS " warn  disk: low\n");
  assert_string_equal(fmt_line(TW_LOG_TEXT, TW_LOG_ERROR, "x", "y", NULL, 0),
                      TS " error x: y\n");
  assert_string_equal(fmt_line(TW_LOG_TEXT, TW_LOG_DEBUG, "x", "y", NULL, 0),
                      TS " debug x: y\n");
  assert_string_equal(fmt_line(TW_LOG_TEXT, TW_LOG_TRACE, "x", "y", NULL, 0),
                      TS " trace x: y\n");
  /* No subsystem: no "sub: ". NULL message: empty. */
  assert_string_equal(
      fmt_line(TW_LOG_TEXT, TW_LOG_INFO, NULL, "hello", NULL, 0),
      TS " info  hello\n");
  assert_string_equal(fmt_line(TW_LOG_TEXT, TW_LOG_INFO, "s", NULL, NULL, 0),
                      TS " info  s: \n");
  /* Negative wall time. */
  size_t len = tw__log_format_line(line, sizeof line, TW_LOG_TEXT, -1,
                                   TW_LOG_INFO, NULL, "m", NULL, 0);
  assert_string_equal(line, "1969-12-31T23:59:59.999Z info  m\n");
  assert_int_equal(len, strlen(line));
}

static void test_golden_json(void **state) {
  (void)state;
  tw_log_field f[] = {TW_LOG_INT("ticks", 1000), TW_LOG_STR("name", "a b")};
  assert_string_equal(
      fmt_line(TW_LOG_JSON, TW_LOG_INFO, "graph", "run finished", f, 2),
      "{\"ts\":\"" TS "\",\"level\":\"info\",\"sub\":\"graph\","
      "\"msg\":\"run finished\",\"ticks\":1000,\"name\":\"a b\"}\n");
  assert_string_equal(
      fmt_line(TW_LOG_JSON, TW_LOG_ERROR, NULL, "boom", NULL, 0),
      "{\"ts\":\"" TS "\",\"level\":\"error\",\"msg\":\"boom\"}\n");
  tw_log_field all[] = {
      TW_LOG_INT("i", -5),     TW_LOG_UINT("u", UINT64_MAX),
      TW_LOG_F64("f", 0.1),    TW_LOG_BOOL("t", true),
      TW_LOG_BOOL("b", false), TW_LOG_STR("s", NULL),
      TW_LOG_F64("nan", NAN),  TW_LOG_F64("inf", -INFINITY),
  };
  assert_string_equal(
      fmt_line(TW_LOG_JSON, TW_LOG_DEBUG, "x", "y", all, 8),
      "{\"ts\":\"" TS "\",\"level\":\"debug\",\"sub\":\"x\",\"msg\":\"y\","
      "\"i\":-5,\"u\":18446744073709551615,\"f\":0.1,\"t\":true,"
      "\"b\":false,\"s\":null,\"nan\":null,\"inf\":null}\n");
  /* Valid JSON (jansson needs reals for integers beyond int64_t). */
  json_error_t jerr;
  json_t *j = json_loads(line, JSON_DECODE_INT_AS_REAL, &jerr);
  assert_non_null(j);
  assert_true(json_number_value(json_object_get(j, "u")) == 0x1p64);
  json_decref(j);
  assert_string_equal(
      fmt_line(TW_LOG_TEXT, TW_LOG_DEBUG, "x", "y", all, 8),
      TS " debug x: y i=-5 u=18446744073709551615 f=0.1 t=true b=false "
         "s=null nan=nan inf=-inf\n");
}

/* --- Values --- */

static void test_f64_shortest(void **state) {
  (void)state;
  static const struct {
    double v;
    const char *text;
  } cases[] = {
      {0.1, "0.1"},
      {1.0 / 3.0, "0.3333333333333333"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1e300, "1e+300"},
      {-0.0, "-0"},
      {0.0, "0"},
      {1000, "1000"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {-2.5e-7, "-2.5e-07"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tw_log_field f = TW_LOG_F64("v", cases[i].v);
    char want[128];
    snprintf(want, sizeof want, TS " info  t: m v=%s\n", cases[i].text);
    assert_string_equal(text1(&f), want);
    /* JSON carries the same digits, and they read back exactly. */
    const char *got = json1(&f);
    json_t *j = parse_line(got, strlen(got));
    json_t *v = json_object_get(j, "v");
    assert_true(json_is_number(v));
    /* (jansson reads "-0" as the integer 0, hence == not memcmp.) */
    assert_true(json_number_value(v) == cases[i].v);
    json_decref(j);
  }
  tw_log_field f = TW_LOG_F64("v", INFINITY);
  assert_string_equal(text1(&f), TS " info  t: m v=inf\n");
  assert_string_equal(json1(&f), "{\"ts\":\"" TS "\",\"level\":\"info\","
                                 "\"sub\":\"t\",\"msg\":\"m\",\"v\":null}\n");
}

static void test_text_quoting(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"plain", "plain"},
      {"h\xc3\xa9llo", "h\xc3\xa9llo"},
      {"", "\"\""},
      {"a b", "\"a b\""},
      {"a=b", "\"a=b\""},
      {"say \"hi\"", "\"say \\\"hi\\\"\""},
      {"back\\slash", "\"back\\\\slash\""},
      {"line\nbreak", "\"line\\nbreak\""},
      {"tab\there", "\"tab\\there\""},
      {"cr\r", "\"cr\\r\""},
      {"\x01\x1f\x7f", "\"\\x01\\x1f\\x7f\""},
      {"url=x?a=b c", "\"url=x?a=b c\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tw_log_field f = TW_LOG_STR("k", cases[i].in);
    char want[128];
    snprintf(want, sizeof want, TS " info  t: m k=%s\n", cases[i].out);
    assert_string_equal(text1(&f), want);
  }
  /* Messages are not quoted, but control bytes never leave the line. */
  assert_string_equal(
      fmt_line(TW_LOG_TEXT, TW_LOG_INFO, "s\n", "two\nlines\t\x1b[0m", NULL, 0),
      TS " info  s\\n: two\\nlines\\t\\x1b[0m\n");
}

static void test_json_escaping(void **state) {
  (void)state;
  static const struct {
    const char *in, *out, *decoded;
  } cases[] = {
      {"say \"hi\"", "say \\\"hi\\\"", "say \"hi\""},
      {"a\\b", "a\\\\b", "a\\b"},
      {"l\nr\rt\t", "l\\nr\\rt\\t", "l\nr\rt\t"},
      {"\x01\x1f", "\\u0001\\u001f", "\x01\x1f"},
      {"\x7f", "\x7f", "\x7f"},
      {"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
       "h\xc3\xa9 \xe2\x82\xac "
       "\xf0\x9f\x98\x80",
       "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
      /* Invalid UTF-8: stray byte, cut sequence, overlong, surrogate. */
      {"a\xff"
       "b",
       "a\\ufffdb",
       "a\xef\xbf\xbd"
       "b"},
      {"\xc3", "\\ufffd", "\xef\xbf\xbd"},
      {"\xc0\xaf", "\\ufffd\\ufffd", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd",
       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd",
       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char want[256];
    snprintf(want, sizeof want,
             "{\"ts\":\"" TS "\",\"level\":\"info\",\"sub\":\"%s\","
             "\"msg\":\"%s\",\"%s\":\"%s\"}\n",
             cases[i].out, cases[i].out, cases[i].out, cases[i].out);
    tw_log_field f = TW_LOG_STR(cases[i].in, cases[i].in);
    const char *got =
        fmt_line(TW_LOG_JSON, TW_LOG_INFO, cases[i].in, cases[i].in, &f, 1);
    assert_string_equal(got, want);
    json_t *j = parse_line(got, strlen(got));
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        cases[i].decoded);
    assert_string_equal(json_string_value(json_object_get(j, "sub")),
                        cases[i].decoded);
    assert_string_equal(json_string_value(json_object_get(j, cases[i].decoded)),
                        cases[i].decoded);
    json_decref(j);
  }
}

static void test_json_reserved_keys(void **state) {
  (void)state;
  tw_log_field f[] = {
      TW_LOG_STR("msg", "x"),     TW_LOG_STR("level", "y"),
      TW_LOG_INT("ts", 1),        TW_LOG_BOOL("sub", true),
      TW_LOG_INT("truncated", 2), TW_LOG_INT("message", 3),
  };
  assert_string_equal(
      fmt_line(TW_LOG_JSON, TW_LOG_INFO, "s", "m", f, 6),
      "{\"ts\":\"" TS "\",\"level\":\"info\",\"sub\":\"s\",\"msg\":\"m\","
      "\"field.msg\":\"x\",\"field.level\":\"y\",\"field.ts\":1,"
      "\"field.sub\":true,\"field.truncated\":2,\"message\":3}\n");
  /* Text has no reserved keys. */
  assert_string_equal(fmt_line(TW_LOG_TEXT, TW_LOG_INFO, "s", "m", f, 2),
                      TS " info  s: m msg=x level=y\n");
}

/* --- Truncation --- */

/* A UTF-8 text cut at a sequence boundary has no dangling lead byte. */
static void assert_utf8_complete(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    assert_true(i + len <= n);
    for (size_t k = 1; k < len; k++)
      assert_int_equal((unsigned char)s[i + k] & 0xC0, 0x80);
    i += len;
  }
}

static void test_text_truncation(void **state) {
  (void)state;
  char msg[300];
  for (size_t i = 0; i + 2 < sizeof msg; i += 2)
    memcpy(msg + i, "\xc3\xa9", 2); /* é */
  msg[sizeof msg - 2] = '\0';
  char out[256];
  for (size_t cap = 5; cap <= sizeof out; cap++) {
    size_t len = tw__log_format_line(out, cap, TW_LOG_TEXT, WALL, TW_LOG_INFO,
                                     "s", msg, NULL, 0);
    assert_int_equal(len, strlen(out));
    assert_true(len <= cap - 1);
    assert_string_equal(out + len - 4, "...\n");
    if (cap >= 40) {
      /* Only a whole é can be missing before the mark. */
      assert_true(len >= cap - 1 - 1);
      assert_memory_equal(out, TS " info  s: ", 34);
    }
    assert_utf8_complete(out, len - 4);
  }
  /* A line that fits exactly is not marked. */
  const char *full =
      fmt_line(TW_LOG_TEXT, TW_LOG_INFO, "s", "exactly fits", NULL, 0);
  size_t flen = strlen(full);
  size_t len = tw__log_format_line(out, flen + 1, TW_LOG_TEXT, WALL,
                                   TW_LOG_INFO, "s", "exactly fits", NULL, 0);
  assert_int_equal(len, flen);
  assert_string_equal(out, full);
  len = tw__log_format_line(out, flen, TW_LOG_TEXT, WALL, TW_LOG_INFO, "s",
                            "exactly fits", NULL, 0);
  assert_int_equal(len, flen - 1);
  assert_string_equal(out + len - 4, "...\n");
  /* Escapes are units too: never cut in the middle. */
  len = tw__log_format_line(out, 42, TW_LOG_TEXT, WALL, TW_LOG_INFO, NULL,
                            "\x01\x01\x01\x01\x01\x01", NULL, 0);
  assert_string_equal(out, TS " info  \\x01...\n");
  /* Tiny buffers. */
  assert_int_equal(tw__log_format_line(out, 0, TW_LOG_TEXT, WALL, TW_LOG_INFO,
                                       "s", "m", NULL, 0),
                   0);
  out[0] = 'x';
  assert_int_equal(tw__log_format_line(out, 1, TW_LOG_TEXT, WALL, TW_LOG_INFO,
                                       "s", "m", NULL, 0),
                   0);
  assert_int_equal(out[0], '\0');
  for (size_t cap = 2; cap < 5; cap++) {
    assert_int_equal(tw__log_format_line(out, cap, TW_LOG_TEXT, WALL,
                                         TW_LOG_INFO, "s", "m", NULL, 0),
                     1);
    assert_string_equal(out, "\n");
  }
}

static void test_json_truncation(void **state) {
  (void)state;
  /* A message full of escapes and invalid bytes, then fields. */
  char msg[600];
  size_t mlen = 0;
  static const char piece[] = "ab\"\\\x01\xff\xc3\xa9 ";
  while (mlen + sizeof piece < sizeof msg) {
    memcpy(msg + mlen, piece, sizeof piece - 1);
    mlen += sizeof piece - 1;
  }
  msg[mlen] = '\0';
  tw_log_field f[] = {TW_LOG_INT("a", 1), TW_LOG_STR("b", "two words"),
                      TW_LOG_F64("c", 0.5), TW_LOG_BOOL("d", true)};
  const char *full = fmt_line(TW_LOG_JSON, TW_LOG_WARN, "sub", msg, f, 4);
  size_t full_len = strlen(full);
  json_t *whole = parse_line(full, full_len);
  const char *whole_msg = json_string_value(json_object_get(whole, "msg"));

  static char out[2048];
  size_t min_cap = 0;
  for (size_t cap = 2; cap <= full_len + 1; cap++) {
    size_t len = tw__log_format_line(out, cap, TW_LOG_JSON, WALL, TW_LOG_WARN,
                                     "sub", msg, f, 4);
    assert_int_equal(len, strlen(out));
    assert_true(len <= cap - 1);
    if (cap < 4) {
      assert_string_equal(out, "\n");
      continue;
    }
    json_t *j = parse_line(out, len);
    if (cap == full_len + 1) {
      assert_string_equal(out, full);
    } else if (json_object_get(j, "msg") != NULL) {
      if (min_cap == 0)
        min_cap = cap;
      assert_true(json_is_true(json_object_get(j, "truncated")));
      assert_string_equal(json_string_value(json_object_get(j, "level")),
                          "warn");
      /* The kept message is a prefix of the real one, marked "...". */
      const char *m = json_string_value(json_object_get(j, "msg"));
      size_t n = strlen(m);
      if (strcmp(m, whole_msg) != 0) {
        assert_true(n >= 3);
        assert_string_equal(m + n - 3, "...");
        assert_memory_equal(m, whole_msg, n - 3);
        assert_null(json_object_get(j, "a"));
      }
    }
    json_decref(j);
  }
  /* Buffers of modest size already keep a message. */
  assert_true(min_cap > 0 && min_cap < 100);

  /* Fields that do not fit are dropped from the first one on. */
  size_t len = tw__log_format_line(out, full_len - 10, TW_LOG_JSON, WALL,
                                   TW_LOG_WARN, "sub", msg, f, 4);
  json_t *j = parse_line(out, len);
  assert_string_equal(json_string_value(json_object_get(j, "msg")), whole_msg);
  assert_true(json_is_true(json_object_get(j, "truncated")));
  assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
  assert_null(json_object_get(j, "d"));
  json_decref(j);
  json_decref(whole);
}

/* --- Logging through a context --- */

typedef struct capture {
  int count;
  tw_log_level level;
  size_t len;
  char line[TW_LOG_LINE_MAX + 1];
} capture;

static void capture_sink(void *ud, tw_log_level level, const char *s,
                         size_t len) {
  capture *c = ud;
  assert_true(len > 0 && len <= TW_LOG_LINE_MAX);
  assert_int_equal(s[len], '\0');
  assert_int_equal(s[len - 1], '\n');
  c->count++;
  c->level = level;
  c->len = len;
  memcpy(c->line, s, len + 1);
}

static tw_ctx *new_ctx(capture *c, tw_log_level level, tw_log_format format) {
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.threads = 1;
  opts.log_level = level;
  opts.log_format = format;
  opts.log_sink = c ? capture_sink : NULL;
  opts.log_ud = c;
  tw_ctx *ctx = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ctx_new(&opts, &ctx, &err), TW_OK);
  return ctx;
}

static void test_log_text_and_json(void **state) {
  (void)state;
  static capture c;
  memset(&c, 0, sizeof c);
  tw_ctx *ctx = new_ctx(&c, TW_LOG_INFO, TW_LOG_TEXT);
  tw_log(ctx, TW_LOG_INFO, "graph", "ran %d ticks in %s", 1000, "1.5 s");
  assert_int_equal(c.count, 1);
  assert_int_equal(c.level, TW_LOG_INFO);
  assert_int_equal(c.len,
                   24 + strlen(" info  graph: ran 1000 ticks in 1.5 s\n"));
  assert_string_equal(c.line + 24, " info  graph: ran 1000 ticks in 1.5 s\n");
  assert_int_equal(c.line[23], 'Z');

  tw_log_set_format(ctx, TW_LOG_JSON);
  tw_log_field f[] = {TW_LOG_UINT("n", 7)};
  tw_log_fields(ctx, TW_LOG_ERROR, "wasm", "trap", f, 1);
  assert_int_equal(c.count, 2);
  assert_int_equal(c.level, TW_LOG_ERROR);
  json_t *j = parse_line(c.line, c.len);
  assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
  assert_string_equal(json_string_value(json_object_get(j, "sub")), "wasm");
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "trap");
  assert_int_equal(json_integer_value(json_object_get(j, "n")), 7);
  assert_int_equal(strlen(json_string_value(json_object_get(j, "ts"))), 24);
  json_decref(j);
  /* Invalid formats and levels are ignored. */
  tw_log_set_format(ctx, (tw_log_format)7);
  tw_log_set_level(ctx, (tw_log_level)-1);
  tw_log_set_level(ctx, (tw_log_level)9);
  tw_log(ctx, TW_LOG_DEBUG, "x", "hidden");
  assert_int_equal(c.count, 2);
  tw_log(ctx, TW_LOG_INFO, "x", "shown");
  assert_int_equal(c.count, 3);
  assert_int_equal(c.line[0], '{');
  tw_ctx_free(ctx);
}

static void test_log_long_lines(void **state) {
  (void)state;
  static capture c;
  memset(&c, 0, sizeof c);
  static char big[3 * TW_LOG_LINE_MAX];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  tw_ctx *ctx = new_ctx(&c, TW_LOG_INFO, TW_LOG_TEXT);
  tw_log(ctx, TW_LOG_INFO, "s", "%s", big);
  assert_int_equal(c.count, 1);
  assert_int_equal(c.len, TW_LOG_LINE_MAX);
  assert_string_equal(c.line + c.len - 4, "...\n");
  tw_log_fields(ctx, TW_LOG_INFO, "s", big, NULL, 0);
  assert_int_equal(c.len, TW_LOG_LINE_MAX);
  assert_string_equal(c.line + c.len - 4, "...\n");

  /* A line of exactly TW_LOG_LINE_MAX bytes passes whole. */
  size_t room = TW_LOG_LINE_MAX - strlen(TS " info  s: \n");
  big[room] = '\0';
  tw_log_fields(ctx, TW_LOG_INFO, "s", big, NULL, 0);
  assert_int_equal(c.len, TW_LOG_LINE_MAX);
  assert_string_equal(c.line + c.len - 3, "xx\n");
  big[room] = 'x';

  tw_log_set_format(ctx, TW_LOG_JSON);
  tw_log_field f[] = {TW_LOG_STR("big", big)};
  tw_log_fields(ctx, TW_LOG_INFO, "s", "short", f, 1);
  assert_true(c.len <= TW_LOG_LINE_MAX);
  json_t *j = parse_line(c.line, c.len);
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "short");
  assert_null(json_object_get(j, "big"));
  assert_true(json_is_true(json_object_get(j, "truncated")));
  json_decref(j);
  tw_log(ctx, TW_LOG_INFO, "s", "%s", big);
  assert_true(c.len <= TW_LOG_LINE_MAX && c.len > TW_LOG_LINE_MAX - 16);
  json_decref(parse_line(c.line, c.len));
  tw_ctx_free(ctx);
}

static void test_level_filtering(void **state) {
  (void)state;
  static capture c;
  memset(&c, 0, sizeof c);
  tw_ctx *ctx = new_ctx(&c, TW_LOG_WARN, TW_LOG_TEXT);
  assert_false(tw_log_enabled(ctx, TW_LOG_INFO));
  assert_true(tw_log_enabled(ctx, TW_LOG_WARN));
  assert_true(tw_log_enabled(ctx, TW_LOG_ERROR));
  assert_false(tw_log_enabled(ctx, TW_LOG_OFF));
  tw_log(ctx, TW_LOG_TRACE, "s", "no");
  tw_log(ctx, TW_LOG_DEBUG, "s", "no");
  tw_log(ctx, TW_LOG_INFO, "s", "no");
  tw_log_fields(ctx, TW_LOG_INFO, "s", "no", NULL, 0);
  assert_int_equal(c.count, 0);
  tw_log(ctx, TW_LOG_WARN, "s", "yes");
  assert_int_equal(c.count, 1);
  assert_int_equal(c.level, TW_LOG_WARN);
  tw_log(ctx, TW_LOG_ERROR, "s", "yes");
  assert_int_equal(c.count, 2);
  /* OFF is not a level a line can have. */
  tw_log(ctx, TW_LOG_OFF, "s", "no");
  assert_int_equal(c.count, 2);

  tw_log_set_level(ctx, TW_LOG_TRACE);
  assert_true(tw_log_enabled(ctx, TW_LOG_TRACE));
  tw_log(ctx, TW_LOG_TRACE, "s", "yes");
  assert_int_equal(c.count, 3);
  assert_int_equal(c.level, TW_LOG_TRACE);

  tw_log_set_level(ctx, TW_LOG_OFF);
  assert_false(tw_log_enabled(ctx, TW_LOG_ERROR));
  tw_log(ctx, TW_LOG_ERROR, "s", "no");
  assert_int_equal(c.count, 3);

  /* Removing the sink drops everything. */
  tw_log_set_level(ctx, TW_LOG_TRACE);
  tw_log_set_sink(ctx, NULL, NULL);
  assert_false(tw_log_enabled(ctx, TW_LOG_ERROR));
  tw_log(ctx, TW_LOG_ERROR, "s", "no");
  tw_log_fields(ctx, TW_LOG_ERROR, "s", "no", NULL, 0);
  assert_int_equal(c.count, 3);
  tw_log_set_sink(ctx, capture_sink, &c);
  tw_log(ctx, TW_LOG_ERROR, "s", "yes");
  assert_int_equal(c.count, 4);
  tw_ctx_free(ctx);

  assert_false(tw_log_enabled(NULL, TW_LOG_ERROR));
}

static void test_null_sink(void **state) {
  (void)state;
  tw_ctx *ctx = new_ctx(NULL, TW_LOG_TRACE, TW_LOG_JSON);
  assert_false(tw_log_enabled(ctx, TW_LOG_ERROR));
  tw_log(ctx, TW_LOG_ERROR, "s", "dropped %d", 1);
  tw_log_fields(ctx, TW_LOG_ERROR, "s", "dropped", NULL, 0);
  tw_ctx_free(ctx);
}

static void test_no_allocation(void **state) {
  (void)state;
  static capture c;
  memset(&c, 0, sizeof c);
  tw_ctx *ctx = new_ctx(&c, TW_LOG_TRACE, TW_LOG_TEXT);
  tw_log_field f[] = {TW_LOG_STR("k", "v w"), TW_LOG_F64("x", 0.25)};
  for (int format = TW_LOG_TEXT; format <= TW_LOG_JSON; format++) {
    tw_log_set_format(ctx, (tw_log_format)format);
    unsigned long calls = tw_alloc_calls();
    tw_log(ctx, TW_LOG_INFO, "s", "hello %s %d", "world", 42);
    tw_log_fields(ctx, TW_LOG_WARN, "s", "fields", f, 2);
    assert_int_equal(tw_alloc_calls(), calls);
    /* And it works with every allocation failing. */
    tw_alloc_fail_at(1, true);
    tw_log(ctx, TW_LOG_ERROR, "s", "out of memory");
    bool fired = tw_alloc_failure_fired();
    tw_alloc_fail_at(0, false);
    assert_false(fired);
    assert_int_equal(c.count, 3 * (format + 1));
    assert_non_null(strstr(c.line, "out of memory"));
  }
  tw_ctx_free(ctx);
}

static void test_level_names(void **state) {
  (void)state;
  static const char *const names[] = {"trace", "debug", "info",
                                      "warn",  "error", "off"};
  for (int i = TW_LOG_TRACE; i <= TW_LOG_OFF; i++) {
    assert_string_equal(tw_log_level_name((tw_log_level)i), names[i]);
    assert_int_equal(tw_log_level_parse(names[i]), i);
  }
  assert_string_equal(tw_log_level_name((tw_log_level)6), "unknown");
  assert_string_equal(tw_log_level_name((tw_log_level)-1), "unknown");
  assert_int_equal(tw_log_level_parse("INFO"), TW_LOG_INFO);
  assert_int_equal(tw_log_level_parse("Debug"), TW_LOG_DEBUG);
  assert_int_equal(tw_log_level_parse("warning"), TW_LOG_WARN);
  assert_int_equal(tw_log_level_parse("WARNING"), TW_LOG_WARN);
  assert_int_equal(tw_log_level_parse("ErRoR"), TW_LOG_ERROR);
  assert_int_equal(tw_log_level_parse("OFF"), TW_LOG_OFF);
  assert_int_equal(tw_log_level_parse(""), -1);
  assert_int_equal(tw_log_level_parse("inf"), -1);
  assert_int_equal(tw_log_level_parse("infos"), -1);
  assert_int_equal(tw_log_level_parse("fatal"), -1);
  assert_int_equal(tw_log_level_parse(" info"), -1);
  assert_int_equal(tw_log_level_parse(NULL), -1);
}

static void test_sink_file(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.threads = 1;
  opts.log_sink = tw_log_sink_file;
  opts.log_ud = f;
  tw_ctx *ctx = NULL;
  assert_int_equal(tw_ctx_new(&opts, &ctx, NULL), TW_OK);
  tw_log(ctx, TW_LOG_INFO, "a", "one");
  tw_log(ctx, TW_LOG_WARN, NULL, "two");
  tw_ctx_free(ctx);
  rewind(f);
  char buf[256];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  assert_int_equal(n, 2 * 24 + strlen(" info  a: one\n warn  two\n"));
  assert_memory_equal(buf + 24, " info  a: one\n", 14);
  assert_string_equal(buf + 24 + 14 + 24, " warn  two\n");
  tw_log_sink_file(NULL, TW_LOG_INFO, "x\n", 2); /* NULL stream: no-op */
}

int main(void);
int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_golden_text),       TW_TEST(test_golden_json),
      TW_TEST(test_f64_shortest),      TW_TEST(test_text_quoting),
      TW_TEST(test_json_escaping),     TW_TEST(test_json_reserved_keys),
      TW_TEST(test_text_truncation),   TW_TEST(test_json_truncation),
      TW_TEST(test_log_text_and_json), TW_TEST(test_log_long_lines),
      TW_TEST(test_level_filtering),   TW_TEST(test_null_sink),
      TW_TEST(test_no_allocation),     TW_TEST(test_level_names),
      TW_TEST(test_sink_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
