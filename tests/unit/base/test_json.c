/*
 * test_json.c - the JSON helpers: parsing with located errors (golden
 * messages), limits, canonical dumping, typed getters, key checks, and
 * allocation failure on every allocation of parse, load and dump.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tw_test.h"

/* A value the parser never returns, to see that *out stays untouched. */
static json_t *const UNTOUCHED = (json_t *)(uintptr_t)0x5A5A5A5A;

static json_t *parse_ok(const char *text) {
  json_t *v = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_json_parse(text, strlen(text), "t.json", &v, &err);
  if (rc != TW_OK)
    print_error("unexpected parse failure: %s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_non_null(v);
  return v;
}

/* Parses len bytes from a heap copy of exactly that size, so ASan sees any
 * read past the end, and checks the error message. */
static void expect_parse_error_n(const char *text, size_t len,
                                 const char *source, const char *msg) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, text, len);
  json_t *v = UNTOUCHED;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_json_parse(copy, len, source, &v, &err);
  free(copy);
  assert_int_equal(rc, TW_EPARSE);
  assert_int_equal(err.code, TW_EPARSE);
  assert_ptr_equal(v, UNTOUCHED);
  assert_string_equal(err.msg, msg);
}

static void expect_parse_error(const char *text, const char *msg) {
  expect_parse_error_n(text, strlen(text), "g.json", msg);
}

static char *dump(const json_t *v, unsigned flags) {
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_json_dump(v, flags, &b), TW_OK);
  return tw_buf_take(&b, NULL);
}

/* --- Parsing --------------------------------------------------------- */

static void test_parse_values(void **state) {
  (void)state;
  long live = tw_alloc_live();
  json_t *v = parse_ok(" {\"s\": \"h\\u00e9\\n\", \"i\": -42, \"r\": 2.5,"
                       " \"t\": true, \"f\": false, \"n\": null,"
                       " \"a\": [1, [], {}], \"o\": {\"k\": \"v\"}} \n");
  /* jansson's allocations go through tw_alloc. */
  assert_true(tw_alloc_live() > live);
  assert_true(json_is_object(v));
  assert_int_equal(json_object_size(v), 8);
  assert_string_equal(json_string_value(json_object_get(v, "s")),
                      "h\xc3\xa9\n");
  assert_int_equal(json_integer_value(json_object_get(v, "i")), -42);
  assert_true(json_real_value(json_object_get(v, "r")) == 2.5);
  assert_true(json_is_true(json_object_get(v, "t")));
  assert_true(json_is_false(json_object_get(v, "f")));
  assert_true(json_is_null(json_object_get(v, "n")));
  assert_int_equal(json_array_size(json_object_get(v, "a")), 3);
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(v, "o"), "k")), "v");
  json_decref(v);
  assert_int_equal(tw_alloc_live(), live);
}

static void test_parse_scalars_at_top(void **state) {
  (void)state;
  json_t *v = parse_ok("42");
  assert_int_equal(json_integer_value(v), 42);
  json_decref(v);
  v = parse_ok("\"x\"");
  assert_string_equal(json_string_value(v), "x");
  json_decref(v);
  v = parse_ok(" null ");
  assert_true(json_is_null(v));
  json_decref(v);
  v = parse_ok("\t\r\ntrue");
  assert_true(json_is_true(v));
  json_decref(v);
  v = parse_ok("-9223372036854775808");
  assert_true(json_integer_value(v) == INT64_MIN);
  json_decref(v);
  v = parse_ok("\"\\ud83d\\ude00 \\/\\b\\f\\r\\t\\\"\\\\\"");
  assert_string_equal(json_string_value(v), "\xf0\x9f\x98\x80 /\b\f\r\t\"\\");
  json_decref(v);
}

/* Golden diagnostics, jq-test style: input, then the exact message. COL
 * counts characters, so "é" is one column. */
static const char *const error_cases[][2] = {
    {"", "g.json:1:1: error: expected a value, found end of input"},
    {"  ", "g.json:1:3: error: expected a value, found end of input"},
    {"{", "g.json:1:2: error: expected a string key or '}', found end of "
          "input"},
    {"[1,", "g.json:1:4: error: expected a value, found end of input"},
    {"[1 2]", "g.json:1:4: error: expected ',' or ']', found '2'"},
    {"[1,]", "g.json:1:4: error: expected a value, found ']'"},
    {"{\"a\" 1}", "g.json:1:6: error: expected ':', found '1'"},
    {"{\"a\":1,}", "g.json:1:8: error: expected a string key, found '}'"},
    {"{1:2}", "g.json:1:2: error: expected a string key or '}', found '1'"},
    {"{\"a\":1 \"b\":2}", "g.json:1:8: error: expected ',' or '}', found '\"'"},
    {"[\n  1,\n  x\n]", "g.json:3:3: error: invalid literal 'x'"},
    {"tru", "g.json:1:1: error: invalid literal 'tru'"},
    {"[truex]", "g.json:1:2: error: invalid literal 'truex'"},
    {"NaN", "g.json:1:1: error: invalid literal 'NaN'"},
    {"01", "g.json:1:1: error: invalid number '01'"},
    {"[1.]", "g.json:1:2: error: invalid number '1.'"},
    {"-", "g.json:1:1: error: invalid number '-'"},
    {"1e+", "g.json:1:1: error: invalid number '1e+'"},
    {"0x10", "g.json:1:1: error: invalid number '0x10'"},
    {".5", "g.json:1:1: error: expected a value, found '.'"},
    {"+1", "g.json:1:1: error: expected a value, found '+'"},
    {"1e400", "g.json:1:1: error: number '1e400' is out of range"},
    {"[-1e400]", "g.json:1:2: error: number '-1e400' is out of range"},
    {"9223372036854775808",
     "g.json:1:1: error: integer '9223372036854775808' does not fit in 64 "
     "bits"},
    {"-9223372036854775809",
     "g.json:1:1: error: integer '-9223372036854775809' does not fit in 64 "
     "bits"},
    {"\"abc", "g.json:1:1: error: unterminated string"},
    {"[\"a\\", "g.json:1:2: error: unterminated string"},
    {"\"\\u12", "g.json:1:1: error: unterminated string"},
    {"\"\\q\"", "g.json:1:2: error: invalid escape: '\\' followed by 'q'"},
    {"\"\\u12G4\"", "g.json:1:2: error: invalid escape '\\u12G4'"},
    {"\"\\ud800\"", "g.json:1:2: error: unpaired surrogate '\\uD800'"},
    {"\"\\ud800\\u0041\"", "g.json:1:2: error: unpaired surrogate '\\uD800'"},
    {"\"x\\udc00\"", "g.json:1:3: error: unpaired surrogate '\\uDC00'"},
    {"\"a\tb\"", "g.json:1:3: error: control character 0x09 in string"},
    {"\"a\nb\"", "g.json:1:3: error: control character 0x0a in string"},
    {"[\"ok\", \"\xc3\x28\"]",
     "g.json:1:9: error: invalid UTF-8 byte 0xc3 in string"},
    {"\"\xed\xa0\x80\"",
     "g.json:1:2: error: invalid UTF-8 byte 0xed in string"},
    {"\"\xc0\xaf\"", "g.json:1:2: error: invalid UTF-8 byte 0xc0 in string"},
    {"\xef\xbb\xbf{}", "g.json:1:1: error: expected a value, found U+FEFF"},
    {"[\x01]", "g.json:1:2: error: expected a value, found byte 0x01"},
    {"\"\xc3\xa9\" x", "g.json:1:5: error: expected end of input, found 'x'"},
    {"\xc3\xa9", "g.json:1:1: error: expected a value, found U+00E9"},
    {"{\"\xc3\xa9\":1,\"\xc3\xa9\":2}",
     "g.json:1:8: error: duplicate key '\xc3\xa9'"},
    {"{\"k\\u0001\":1,\"k\\u0001\":2}",
     "g.json:1:14: error: duplicate key 'k\\x01'"},
};

static void test_parse_errors_golden(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++)
    expect_parse_error(error_cases[i][0], error_cases[i][1]);
}

static void test_parse_default_source(void **state) {
  (void)state;
  expect_parse_error_n("[", 1, NULL,
                       "<input>:1:2: error: expected a value, found end of "
                       "input");
  expect_parse_error_n("[", 1, "",
                       "<input>:1:2: error: expected a value, found end of "
                       "input");
  json_t *v = UNTOUCHED;
  assert_int_equal(tw_json_parse(NULL, 0, NULL, &v, NULL), TW_EPARSE);
  assert_ptr_equal(v, UNTOUCHED);
}

/* The input need not be NUL-terminated: the parser stops at len, also in
 * the middle of a number it hands to strtod. */
static void test_parse_respects_len(void **state) {
  (void)state;
  const char text[] = "[1.5,2]";
  for (size_t len = 2; len <= 4; len++) {
    char *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, text, len);
    json_t *v = UNTOUCHED;
    assert_int_equal(tw_json_parse(copy, len, NULL, &v, NULL), TW_EPARSE);
    assert_ptr_equal(v, UNTOUCHED);
    free(copy);
  }
  char *num = malloc(3);
  assert_non_null(num);
  memcpy(num, "0.5", 3);
  json_t *v = NULL;
  assert_int_equal(tw_json_parse(num, 3, NULL, &v, NULL), TW_OK);
  assert_true(json_real_value(v) == 0.5);
  json_decref(v);
  memcpy(num, "123", 3);
  assert_int_equal(tw_json_parse(num, 2, NULL, &v, NULL), TW_OK);
  assert_int_equal(json_integer_value(v), 12);
  json_decref(v);
  free(num);
}

static void test_parse_rejects_duplicate_keys(void **state) {
  (void)state;
  expect_parse_error("{\"a\": 1, \"b\": 2, \"a\": 3}",
                     "g.json:1:18: error: duplicate key 'a'");
  /* Equal after unescaping is equal. */
  expect_parse_error("{\"a\":1,\n \"\\u0061\":2}",
                     "g.json:2:2: error: duplicate key 'a'");
  /* The same key in different objects is fine. */
  json_t *v = parse_ok("{\"a\": {\"a\": 1}, \"b\": {\"a\": 2}}");
  json_decref(v);
}

static void test_parse_rejects_trailing_garbage(void **state) {
  (void)state;
  expect_parse_error("{} {}",
                     "g.json:1:4: error: expected end of input, found '{'");
  expect_parse_error("1 2", "g.json:1:3: error: expected end of input, found "
                            "'2'");
  expect_parse_error("[]\n]",
                     "g.json:2:1: error: expected end of input, found ']'");
  expect_parse_error_n("{}\0", 3, "g.json",
                       "g.json:1:3: error: expected end of input, found byte "
                       "0x00");
  json_t *v = parse_ok("[] \n\t\r ");
  json_decref(v);
}

static void test_parse_rejects_nul(void **state) {
  (void)state;
  expect_parse_error("\"a\\u0000b\"",
                     "g.json:1:3: error: \\u0000 (NUL) is not allowed in "
                     "strings");
  expect_parse_error("{\"k\\u0000\": 1}",
                     "g.json:1:4: error: \\u0000 (NUL) is not allowed in "
                     "strings");
  expect_parse_error_n("[\"a\0b\"]", 7, "g.json",
                       "g.json:1:4: error: control character 0x00 in string");
  expect_parse_error_n("[1,\0]", 5, "g.json",
                       "g.json:1:4: error: expected a value, found byte 0x00");
}

/* "[[[...]]]" nested depth levels deep; free() it. */
static char *nested(size_t depth, char open, char close) {
  char *s = malloc(2 * depth + 1);
  assert_non_null(s);
  memset(s, open, depth);
  memset(s + depth, close, depth);
  s[2 * depth] = '\0';
  return s;
}

static void test_parse_depth_limit(void **state) {
  (void)state;
  char *s = nested(TW_JSON_MAX_DEPTH, '[', ']');
  json_t *v = parse_ok(s);
  json_decref(v);
  free(s);

  s = nested(TW_JSON_MAX_DEPTH + 1, '[', ']');
  expect_parse_error(s, "g.json:1:129: error: nesting deeper than 128");
  free(s);

  /* Far beyond jansson's own limit: rejected at the 129th level, without
   * recursing any deeper. */
  s = nested(100000, '[', ']');
  expect_parse_error(s, "g.json:1:129: error: nesting deeper than 128");
  free(s);

  /* Objects count too, one level per line: level i opens at line i,
   * column i. */
  tw_buf b = TW_BUF_INIT;
  for (int i = 0; i < TW_JSON_MAX_DEPTH + 1; i++)
    assert_int_equal(tw_buf_printf(&b, "%*s{\"k\":\n", i, ""), TW_OK);
  assert_int_equal(tw_buf_puts(&b, "1"), TW_OK);
  for (int i = 0; i < TW_JSON_MAX_DEPTH + 1; i++)
    assert_int_equal(tw_buf_putc(&b, '}'), TW_OK);
  expect_parse_error(b.data, "g.json:129:129: error: nesting deeper than 128");
  tw_buf_fini(&b);

  /* Exactly the limit, mixing arrays and objects. */
  for (int i = 0; i < TW_JSON_MAX_DEPTH / 2; i++)
    assert_int_equal(tw_buf_puts(&b, "[{\"k\":"), TW_OK);
  assert_int_equal(tw_buf_puts(&b, "0"), TW_OK);
  for (int i = 0; i < TW_JSON_MAX_DEPTH / 2; i++)
    assert_int_equal(tw_buf_puts(&b, "}]"), TW_OK);
  v = parse_ok(b.data);
  json_decref(v);
  tw_buf_fini(&b);

  /* Brackets inside strings do not nest. */
  s = nested(300, '[', ']');
  b = (tw_buf)TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&b, "[\"%s\"]", s), TW_OK);
  v = parse_ok(b.data);
  json_decref(v);
  tw_buf_fini(&b);
  free(s);
}

/* --- Loading files --------------------------------------------------- */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state) {
  (void)state;
  char path[] = "/tmp/tw_test_json_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);

  write_file(path, "{\"a\": [1, 2],\n \"b\": \"c\"}\n");
  json_t *v = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_json_load_file(path, &v, &err), TW_OK);
  assert_int_equal(json_array_size(json_object_get(v, "a")), 2);
  json_decref(v);

  /* Syntax errors are located in the file. */
  write_file(path, "{\"a\": [1, 2],\n \"b\" \"c\"}\n");
  v = UNTOUCHED;
  assert_int_equal(tw_json_load_file(path, &v, &err), TW_EPARSE);
  assert_ptr_equal(v, UNTOUCHED);
  char want[256];
  snprintf(want, sizeof want, "%s:2:6: error: expected ':', found '\"'", path);
  assert_string_equal(err.msg, want);

  /* A file larger than one read. */
  tw_buf big = TW_BUF_INIT;
  assert_int_equal(tw_buf_putc(&big, '['), TW_OK);
  for (int i = 0; i < 40000; i++)
    assert_int_equal(tw_buf_printf(&big, "%s%d", i ? "," : "", i), TW_OK);
  assert_int_equal(tw_buf_putc(&big, ']'), TW_OK);
  write_file(path, big.data);
  tw_buf_fini(&big);
  tw_err_init(&err);
  assert_int_equal(tw_json_load_file(path, &v, &err), TW_OK);
  assert_int_equal(json_array_size(v), 40000);
  assert_int_equal(json_integer_value(json_array_get(v, 39999)), 39999);
  json_decref(v);
  unlink(path);

  tw_err_init(&err);
  v = UNTOUCHED;
  assert_int_equal(tw_json_load_file(path, &v, &err), TW_ENOENT);
  assert_ptr_equal(v, UNTOUCHED);
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
           path);
  assert_string_equal(err.msg, want);

  tw_err_init(&err);
  assert_int_equal(tw_json_load_file("/tmp", &v, &err), TW_EINVAL);
  assert_string_equal(err.msg, "/tmp: read failed: Is a directory");
  assert_ptr_equal(v, UNTOUCHED);
}

/* --- Dumping --------------------------------------------------------- */

static const char *const sample =
    "{\"b\":1,\"a\":{\"d\":[1,2.5,\"x\"],\"c\":null,\"e\":[],\"f\":{}},"
    "\"\\u00e9\":true}";

static void test_dump_golden(void **state) {
  (void)state;
  json_t *v = parse_ok(sample);
  char *s = dump(v, 0);
  assert_string_equal(
      s, "{\"b\":1,\"a\":{\"d\":[1,2.5,\"x\"],\"c\":null,\"e\":[],\"f\":{}},"
         "\"\xc3\xa9\":true}");
  tw_free(s);
  s = dump(v, TW_JSON_SORT_KEYS);
  assert_string_equal(
      s, "{\"a\":{\"c\":null,\"d\":[1,2.5,\"x\"],\"e\":[],\"f\":{}},\"b\":1,"
         "\"\xc3\xa9\":true}");
  tw_free(s);
  s = dump(v, TW_JSON_SORT_KEYS | TW_JSON_PRETTY);
  assert_string_equal(s, "{\n"
                         "  \"a\": {\n"
                         "    \"c\": null,\n"
                         "    \"d\": [\n"
                         "      1,\n"
                         "      2.5,\n"
                         "      \"x\"\n"
                         "    ],\n"
                         "    \"e\": [],\n"
                         "    \"f\": {}\n"
                         "  },\n"
                         "  \"b\": 1,\n"
                         "  \"\xc3\xa9\": true\n"
                         "}");
  tw_free(s);
  json_decref(v);

  /* Scalars at top level, and appending after existing content. */
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_puts(&b, "v="), TW_OK);
  v = parse_ok("\"a\\u0001\\\"\"");
  assert_int_equal(tw_json_dump(v, 0, &b), TW_OK);
  assert_string_equal(b.data, "v=\"a\\u0001\\\"\"");
  json_decref(v);
  tw_buf_fini(&b);
}

/* Sorted dumps are canonical: insertion order does not matter. */
static void test_dump_canonical(void **state) {
  (void)state;
  json_t *a = parse_ok("{\"x\": 1, \"y\": {\"q\": [true], \"p\": 0.25}}");
  json_t *b = parse_ok("{\"y\": {\"p\": 0.25, \"q\": [true]}, \"x\": 1}");
  char *sa = dump(a, TW_JSON_SORT_KEYS), *sb = dump(b, TW_JSON_SORT_KEYS);
  assert_string_equal(sa, sb);
  assert_string_equal(sa, "{\"x\":1,\"y\":{\"p\":0.25,\"q\":[true]}}");
  char *ua = dump(a, 0), *ub = dump(b, 0);
  assert_string_not_equal(ua, ub);
  tw_free(sa);
  tw_free(sb);
  tw_free(ua);
  tw_free(ub);
  json_decref(a);
  json_decref(b);
}

/* Dumps v, parses the text and returns the new value. */
static json_t *round_trip(json_t *v, const char *want_text) {
  char *s = dump(v, TW_JSON_SORT_KEYS);
  if (want_text != NULL)
    assert_string_equal(s, want_text);
  json_t *back = parse_ok(s);
  tw_free(s);
  return back;
}

static void test_real_round_trip(void **state) {
  (void)state;
  static const struct {
    double x;
    const char *text;
  } reals[] = {
      {0.1, "0.10000000000000001"},
      {1e-300, "1e-300"},
      {1.0, "1.0"},
      {-0.0, "-0.0"},
      {5e-324, "4.9406564584124654e-324"},
      {DBL_MAX, "1.7976931348623157e308"},
      {1.0 / 3.0, "0.33333333333333331"},
  };
  for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
    json_t *v = json_real(reals[i].x);
    json_t *back = round_trip(v, reals[i].text);
    assert_true(json_is_real(back));
    assert_memory_equal(&reals[i].x, &(double){json_real_value(back)},
                        sizeof(double));
    json_decref(back);
    json_decref(v);
  }
  /* 2^53 + 1 is not a double; as an integer it survives exactly. */
  json_t *v = parse_ok("9007199254740993");
  assert_true(json_is_integer(v));
  json_t *back = round_trip(v, "9007199254740993");
  assert_true(json_integer_value(back) == 9007199254740993LL);
  json_decref(back);
  json_decref(v);
  /* Parsed reals read in the C locale and come back bit for bit. */
  v = parse_ok("[0.1, 1e-300, 2.5e10, -1.25E-3, 1e-400]");
  back = round_trip(v, "[0.10000000000000001,1e-300,25000000000.0,"
                       "-0.00125,0.0]");
  assert_true(json_equal(v, back));
  json_decref(back);
  json_decref(v);
}

static void test_dump_failure_keeps_out(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_puts(&b, "keep"), TW_OK);
  /* jansson refuses to encode a string that is not UTF-8. */
  json_t *arr = json_pack("[i, s]", 1, "ok");
  assert_int_equal(json_array_append_new(arr, json_stringn_nocheck("\xff", 1)),
                   0);
  assert_int_equal(tw_json_dump(arr, 0, &b), TW_EINVAL);
  assert_string_equal(b.data, "keep");
  assert_int_equal(b.len, 4);
  json_decref(arr);

  /* A cycle. */
  json_t *x = json_array(), *y = json_array();
  assert_int_equal(json_array_append(x, y), 0);
  assert_int_equal(json_array_append(y, x), 0);
  assert_int_equal(tw_json_dump(x, TW_JSON_SORT_KEYS, &b), TW_EINVAL);
  assert_string_equal(b.data, "keep");
  json_array_clear(y);
  json_decref(y);
  json_decref(x);
  tw_buf_fini(&b);
}

/* --- Getters --------------------------------------------------------- */

static json_t *getter_doc(void) {
  return parse_ok("{\"s\": \"str\", \"i\": 42, \"r\": 2.5, \"b\": true,"
                  " \"a\": [1], \"o\": {}, \"n\": null, \"big\": 1e300,"
                  " \"tenth\": 0.1}");
}

/* Checks rc and, if an error, the message, then resets err. */
static void expect(int rc, int want_rc, tw_err *err, const char *msg) {
  assert_int_equal(rc, want_rc);
  if (want_rc != TW_OK) {
    assert_int_equal(err->code, want_rc);
    assert_string_equal(err->msg, msg);
  } else {
    assert_int_equal(err->code, TW_OK);
  }
  tw_err_init(err);
}

static void test_get_str(void **state) {
  (void)state;
  json_t *o = getter_doc();
  tw_err err;
  tw_err_init(&err);
  const char *s = "default";
  expect(tw_json_get_str(o, "cfg", "s", true, &s, &err), TW_OK, &err, NULL);
  assert_string_equal(s, "str");
  assert_ptr_equal(s, json_string_value(json_object_get(o, "s")));
  s = "default";
  expect(tw_json_get_str(o, "cfg", "nope", false, &s, &err), TW_OK, &err, NULL);
  assert_string_equal(s, "default");
  expect(tw_json_get_str(o, "cfg", "nope", true, &s, &err), TW_EINVAL, &err,
         "cfg: missing required field 'nope'");
  expect(tw_json_get_str(o, NULL, "nope", true, &s, &err), TW_EINVAL, &err,
         "missing required field 'nope'");
  expect(tw_json_get_str(o, "cfg", "a", true, &s, &err), TW_ETYPE, &err,
         "cfg.a: expected a string, got array");
  expect(tw_json_get_str(o, "", "i", false, &s, &err), TW_ETYPE, &err,
         "i: expected a string, got integer");
  expect(tw_json_get_str(o, "params[2]", "n", true, &s, &err), TW_ETYPE, &err,
         "params[2].n: expected a string, got null");
  assert_string_equal(s, "default");

  /* Programmatic values may hide a NUL that a C string would cut at. */
  assert_int_equal(json_object_set_new(o, "z", json_stringn("a\0b", 3)), 0);
  expect(tw_json_get_str(o, "cfg", "z", true, &s, &err), TW_EINVAL, &err,
         "cfg.z: string contains a NUL byte");
  assert_string_equal(s, "default");

  /* The object itself must be one. */
  json_t *arr = json_object_get(o, "a");
  expect(tw_json_get_str(arr, "params[2]", "min", true, &s, &err), TW_ETYPE,
         &err, "params[2]: expected an object, got array");
  expect(tw_json_get_str(arr, NULL, "min", false, &s, &err), TW_ETYPE, &err,
         "expected an object, got array");
  expect(tw_json_get_str(NULL, "root", "min", false, &s, &err), TW_ETYPE, &err,
         "root: expected an object, got nothing");

  /* The first error wins. */
  tw_json_get_str(o, "cfg", "nope", true, &s, &err);
  tw_json_get_str(o, "cfg", "a", true, &s, &err);
  assert_string_equal(err.msg, "cfg: missing required field 'nope'");
  json_decref(o);
}

static void test_get_int(void **state) {
  (void)state;
  json_t *o = getter_doc();
  tw_err err;
  tw_err_init(&err);
  int64_t x = -1;
  expect(tw_json_get_int(o, "cfg", "i", true, INT64_MIN, INT64_MAX, &x, &err),
         TW_OK, &err, NULL);
  assert_int_equal(x, 42);
  x = -1;
  expect(tw_json_get_int(o, "cfg", "i", true, 42, 42, &x, &err), TW_OK, &err,
         NULL);
  assert_int_equal(x, 42);
  x = -1;
  expect(tw_json_get_int(o, "cfg", "nope", false, 0, 1, &x, &err), TW_OK, &err,
         NULL);
  expect(tw_json_get_int(o, "cfg", "nope", true, 0, 1, &x, &err), TW_EINVAL,
         &err, "cfg: missing required field 'nope'");
  expect(tw_json_get_int(o, "cfg", "i", true, 0, 10, &x, &err), TW_ERANGE, &err,
         "cfg.i: 42 is out of range [0, 10]");
  expect(tw_json_get_int(o, NULL, "i", true, 43, INT64_MAX, &x, &err),
         TW_ERANGE, &err, "i: 42 is out of range [43, 9223372036854775807]");
  expect(tw_json_get_int(o, "cfg", "i", true, INT64_MIN, 41, &x, &err),
         TW_ERANGE, &err,
         "cfg.i: 42 is out of range [-9223372036854775808, 41]");
  /* Only JSON integers: 2.5 and even 1e300 are reals. */
  expect(tw_json_get_int(o, "cfg", "r", true, 0, 10, &x, &err), TW_ETYPE, &err,
         "cfg.r: expected an integer, got real");
  expect(tw_json_get_int(o, "cfg", "s", true, 0, 10, &x, &err), TW_ETYPE, &err,
         "cfg.s: expected an integer, got string");
  expect(tw_json_get_int(o, "cfg", "b", true, 0, 10, &x, &err), TW_ETYPE, &err,
         "cfg.b: expected an integer, got boolean");
  assert_int_equal(x, -1);
  json_decref(o);
}

static void test_get_f64(void **state) {
  (void)state;
  json_t *o = getter_doc();
  tw_err err;
  tw_err_init(&err);
  double x = -1;
  expect(tw_json_get_f64(o, "cfg", "r", true, -DBL_MAX, DBL_MAX, &x, &err),
         TW_OK, &err, NULL);
  assert_true(x == 2.5);
  /* Integers are numbers too. */
  expect(tw_json_get_f64(o, "cfg", "i", true, 0, 100, &x, &err), TW_OK, &err,
         NULL);
  assert_true(x == 42.0);
  x = -1;
  expect(tw_json_get_f64(o, "cfg", "nope", false, 0, 1, &x, &err), TW_OK, &err,
         NULL);
  assert_true(x == -1);
  expect(tw_json_get_f64(o, "cfg", "nope", true, 0, 1, &x, &err), TW_EINVAL,
         &err, "cfg: missing required field 'nope'");
  expect(tw_json_get_f64(o, "cfg", "r", true, 0, 1, &x, &err), TW_ERANGE, &err,
         "cfg.r: 2.5 is out of range [0, 1]");
  expect(tw_json_get_f64(o, "cfg", "big", true, -1e10, 1e10, &x, &err),
         TW_ERANGE, &err,
         "cfg.big: 1e+300 is out of range [-10000000000, 10000000000]");
  expect(tw_json_get_f64(o, "cfg", "r", true, -INFINITY, 1, &x, &err),
         TW_ERANGE, &err, "cfg.r: 2.5 is out of range [-inf, 1]");
  /* Bounds and values print in their shortest exact form. */
  expect(
      tw_json_get_f64(o, "", "tenth", true, 0.2, 0.30000000000000004, &x, &err),
      TW_ERANGE, &err, "tenth: 0.1 is out of range [0.2, 0.30000000000000004]");
  expect(tw_json_get_f64(o, "cfg", "i", true, 0, 41.5, &x, &err), TW_ERANGE,
         &err, "cfg.i: 42 is out of range [0, 41.5]");
  expect(tw_json_get_f64(o, "cfg", "s", true, 0, 1, &x, &err), TW_ETYPE, &err,
         "cfg.s: expected a number, got string");
  expect(tw_json_get_f64(o, "cfg", "n", true, 0, 1, &x, &err), TW_ETYPE, &err,
         "cfg.n: expected a number, got null");
  assert_true(x == -1);
  json_decref(o);
}

static void test_get_bool_array_object(void **state) {
  (void)state;
  json_t *o = getter_doc();
  tw_err err;
  tw_err_init(&err);
  bool b = false;
  expect(tw_json_get_bool(o, "cfg", "b", true, &b, &err), TW_OK, &err, NULL);
  assert_true(b);
  b = false;
  expect(tw_json_get_bool(o, "cfg", "nope", false, &b, &err), TW_OK, &err,
         NULL);
  assert_false(b);
  expect(tw_json_get_bool(o, "cfg", "nope", true, &b, &err), TW_EINVAL, &err,
         "cfg: missing required field 'nope'");
  expect(tw_json_get_bool(o, "cfg", "i", true, &b, &err), TW_ETYPE, &err,
         "cfg.i: expected a boolean, got integer");
  assert_false(b);

  json_t *v = NULL;
  expect(tw_json_get_array(o, "cfg", "a", true, &v, &err), TW_OK, &err, NULL);
  assert_ptr_equal(v, json_object_get(o, "a"));
  v = NULL;
  expect(tw_json_get_array(o, "cfg", "nope", false, &v, &err), TW_OK, &err,
         NULL);
  assert_null(v);
  expect(tw_json_get_array(o, "cfg", "nope", true, &v, &err), TW_EINVAL, &err,
         "cfg: missing required field 'nope'");
  expect(tw_json_get_array(o, "cfg", "o", true, &v, &err), TW_ETYPE, &err,
         "cfg.o: expected an array, got object");
  assert_null(v);

  expect(tw_json_get_object(o, "cfg", "o", true, &v, &err), TW_OK, &err, NULL);
  assert_ptr_equal(v, json_object_get(o, "o"));
  v = NULL;
  expect(tw_json_get_object(o, "cfg", "nope", false, &v, &err), TW_OK, &err,
         NULL);
  assert_null(v);
  expect(tw_json_get_object(o, "cfg", "nope", true, &v, &err), TW_EINVAL, &err,
         "cfg: missing required field 'nope'");
  expect(tw_json_get_object(o, "cfg", "a", true, &v, &err), TW_ETYPE, &err,
         "cfg.a: expected an object, got array");
  expect(tw_json_get_object(o, "cfg", "r", true, &v, &err), TW_ETYPE, &err,
         "cfg.r: expected an object, got real");
  assert_null(v);
  json_decref(o);
}

static void test_check_keys(void **state) {
  (void)state;
  static const char *const allowed[] = {"name", "rate", NULL};
  tw_err err;
  tw_err_init(&err);
  json_t *o = parse_ok("{\"name\": 1, \"x-vendor\": 2, \"rate\": 3}");
  expect(tw_json_check_keys(o, "block", allowed, &err), TW_OK, &err, NULL);
  json_decref(o);

  o = parse_ok("{\"name\": 1, \"rat\": 2, \"zzz\": 3}");
  expect(tw_json_check_keys(o, "block", allowed, &err), TW_EINVAL, &err,
         "block: unknown field 'rat'");
  expect(tw_json_check_keys(o, NULL, allowed, &err), TW_EINVAL, &err,
         "unknown field 'rat'");
  json_decref(o);

  /* "x" and "x_" are not extensions; keys from users are shown safely. */
  o = parse_ok("{\"x\": 1}");
  expect(tw_json_check_keys(o, "b", allowed, &err), TW_EINVAL, &err,
         "b: unknown field 'x'");
  json_decref(o);
  o = parse_ok("{\"bad\\u001b[31m\": 1}");
  expect(tw_json_check_keys(o, "b", allowed, &err), TW_EINVAL, &err,
         "b: unknown field 'bad\\x1b[31m'");
  json_decref(o);
  o = parse_ok("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": 1}");
  expect(tw_json_check_keys(o, "b", allowed, &err), TW_EINVAL, &err,
         "b: unknown field 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
  json_decref(o);

  /* No list allows only extensions. */
  o = parse_ok("{\"x-a\": 1}");
  expect(tw_json_check_keys(o, "b", NULL, &err), TW_OK, &err, NULL);
  json_decref(o);
  o = parse_ok("{}");
  expect(tw_json_check_keys(o, "b", allowed, &err), TW_OK, &err, NULL);
  json_decref(o);
  o = parse_ok("[]");
  expect(tw_json_check_keys(o, "b", allowed, &err), TW_ETYPE, &err,
         "b: expected an object, got array");
  json_decref(o);
}

/* --- Allocation failure ---------------------------------------------- */

/* Long strings, long numbers and escaped keys: the tokens on which
 * jansson's own lexer mishandles allocation failure. */
static const char *const alloc_doc =
    "{\"a long key with escapes \\u00e9\\n\": \"a string of more than "
    "sixteen bytes\", \"n\": 123456789012345678, \"r\": "
    "1.2345678901234567890123e-5, \"arr\": [\"abcdefghijklmn\", "
    "\"abcdefghijklmnopqrstuvwxyz0123456789\", {\"k\": [true, null]}],"
    " \"\\u0041\": {\"nested\": {\"deeper\": [1, 2, 3, 4, 5, 6, 7, 8, 9, "
    "10, 11, 12, 13, 14, 15, 16, 17, 18]}}}";

static const char *const alloc_doc_sorted =
    "{\"A\":{\"nested\":{\"deeper\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,"
    "17,18]}},\"a long key with escapes \xc3\xa9\\n\":\"a string of more "
    "than sixteen bytes\",\"arr\":[\"abcdefghijklmn\","
    "\"abcdefghijklmnopqrstuvwxyz0123456789\",{\"k\":[true,null]}],"
    "\"n\":123456789012345678,\"r\":1.2345678901234568e-5}";

/* One round: parse, and on success check the value exactly. */
static int parse_round(void) {
  json_t *v = UNTOUCHED;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_json_parse(alloc_doc, strlen(alloc_doc), "a.json", &v, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_int_equal(err.code, TW_ENOMEM);
    assert_string_equal(err.msg, "a.json: out of memory parsing JSON");
    assert_ptr_equal(v, UNTOUCHED);
    return rc;
  }
  /* The pending failure may hit the dump instead; that is its own test. */
  tw_buf b = TW_BUF_INIT;
  rc = tw_json_dump(v, TW_JSON_SORT_KEYS, &b);
  if (rc == TW_OK)
    assert_string_equal(b.data, alloc_doc_sorted);
  tw_buf_fini(&b);
  json_decref(v);
  return rc;
}

static void test_parse_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(parse_round());
}

static int dump_round(const json_t *v, unsigned flags) {
  tw_buf b = TW_BUF_INIT;
  /* The buffer starts small, so the dump also fails while growing it. */
  int rc = tw_buf_puts(&b, "prefix ");
  if (rc != TW_OK) {
    tw_buf_fini(&b);
    return rc;
  }
  rc = tw_json_dump(v, flags, &b);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_string_equal(b.data, "prefix ");
  } else if (flags == TW_JSON_SORT_KEYS) {
    assert_string_equal(b.data + 7, alloc_doc_sorted);
  }
  tw_buf_fini(&b);
  return rc;
}

static void test_dump_alloc_failures(void **state) {
  (void)state;
  json_t *v = parse_ok(alloc_doc);
  TW_TEST_ALLOC_FAILURES(dump_round(v, TW_JSON_SORT_KEYS));
  TW_TEST_ALLOC_FAILURES(dump_round(v, TW_JSON_SORT_KEYS | TW_JSON_PRETTY));
  TW_TEST_ALLOC_FAILURES(dump_round(v, 0));
  json_decref(v);
}

static int load_round(const char *path) {
  json_t *v = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_json_load_file(path, &v, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_int_equal(err.code, TW_ENOMEM);
    return rc;
  }
  assert_true(json_is_object(v));
  json_decref(v);
  return TW_OK;
}

static void test_load_alloc_failures(void **state) {
  (void)state;
  char path[] = "/tmp/tw_test_json_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_file(path, alloc_doc);
  TW_TEST_ALLOC_FAILURES(load_round(path));
  unlink(path);
}

static int doc_round(void) {
  tw_json_doc *d = NULL;
  static const char text[] = "{\"k\": [1, 2, {\"z\": \"s\"}]}";
  int rc = tw_json_parse_doc(text, strlen(text), "m", &d, NULL);
  tw_json_doc_free(d);
  return rc;
}

/* Documents remember where values start: line and column of objects,
 * arrays, strings and numbers; none for the shared literals. */
static void doc_positions(void **state) {
  (void)state;
  static const char text[] = "{\n  \"a\": [1, \"x\"],\n  \"b\": {\"c\": 2.5, "
                             "\"d\": true}\n}";
  tw_json_doc *d = NULL;
  assert_int_equal(tw_json_parse_doc(text, strlen(text), "g.json", &d, NULL),
                   TW_OK);
  json_t *root = tw_json_doc_root(d);
  assert_string_equal(tw_json_doc_source(d), "g.json");
  unsigned l = 0, c = 0;
  assert_true(tw_json_doc_where(d, root, &l, &c));
  assert_true(l == 1 && c == 1);
  json_t *a = json_object_get(root, "a");
  assert_true(tw_json_doc_where(d, a, &l, &c));
  assert_true(l == 2 && c == 8);
  assert_true(tw_json_doc_where(d, json_array_get(a, 1), &l, &c));
  assert_true(l == 2 && c == 12);
  json_t *b = json_object_get(root, "b");
  assert_true(tw_json_doc_where(d, json_object_get(b, "c"), &l, &c));
  assert_true(l == 3 && c == 14);
  assert_false(tw_json_doc_where(d, json_object_get(b, "d"), &l, &c));
  json_t *other = json_integer(1);
  assert_false(tw_json_doc_where(d, other, &l, &c));
  json_decref(other);
  tw_json_doc_free(d);
  /* Syntax errors are tw_json_parse's. */
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_json_parse_doc("{\"a\":", 5, "g.json", &d, &err),
                   TW_EPARSE);
  assert_non_null(strstr(err.msg, "g.json:1:6: error:"));
  TW_TEST_ALLOC_FAILURES(doc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_parse_values),
      TW_TEST(test_parse_scalars_at_top),
      TW_TEST(test_parse_errors_golden),
      TW_TEST(test_parse_default_source),
      TW_TEST(test_parse_respects_len),
      TW_TEST(test_parse_rejects_duplicate_keys),
      TW_TEST(test_parse_rejects_trailing_garbage),
      TW_TEST(test_parse_rejects_nul),
      TW_TEST(test_parse_depth_limit),
      TW_TEST(test_load_file),
      TW_TEST(test_dump_golden),
      TW_TEST(test_dump_canonical),
      TW_TEST(test_real_round_trip),
      TW_TEST(test_dump_failure_keeps_out),
      TW_TEST(test_get_str),
      TW_TEST(test_get_int),
      TW_TEST(test_get_f64),
      TW_TEST(test_get_bool_array_object),
      TW_TEST(test_check_keys),
      TW_TEST(test_parse_alloc_failures),
      TW_TEST(test_dump_alloc_failures),
      TW_TEST(test_load_alloc_failures),
      TW_TEST(doc_positions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
