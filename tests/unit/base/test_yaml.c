/*
 * test_yaml.c - the YAML front end of tw_json_doc: scalar resolution,
 * tags, keys, anchors, aliases and merges, limits (billion laughs, depth),
 * places of keys, members and items (booleans and nulls too, and the same
 * on JSON documents), syntax and encoding errors (golden messages), and
 * allocation failure on every allocation.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tw_test.h"
#include "twin/yaml.h"

/* A document the loader never returns, to see that *out stays untouched. */
static tw_json_doc *const UNTOUCHED = (tw_json_doc *)(uintptr_t)0x5A5A5A5A;

/* Parses len bytes from a heap copy of exactly that size, so ASan sees any
 * read past the end. */
static int parse_n(const char *text, size_t len, const tw_yaml_opts *opts,
                   tw_json_doc **d, tw_err *err) {
  char *copy = malloc(len ? len : 1);
  assert_non_null(copy);
  memcpy(copy, text, len);
  tw_err_init(err);
  int rc = tw_yaml_parse_doc(copy, len, "t.yaml", opts, d, err);
  free(copy);
  return rc;
}

static tw_json_doc *load_ok(const char *text) {
  tw_json_doc *d = NULL;
  tw_err err;
  int rc = parse_n(text, strlen(text), NULL, &d, &err);
  if (rc != TW_OK)
    print_error("unexpected failure: %s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_non_null(d);
  return d;
}

static void expect_error_n(const char *text, size_t len,
                           const tw_yaml_opts *opts, int code,
                           const char *msg) {
  tw_json_doc *d = UNTOUCHED;
  tw_err err;
  int rc = parse_n(text, len, opts, &d, &err);
  if (rc == TW_OK || strcmp(err.msg, msg) != 0)
    print_error("for %s\n  got: %s\n want: %s\n", text,
                rc == TW_OK ? "success" : err.msg, msg);
  assert_int_equal(rc, code);
  assert_int_equal(err.code, code);
  assert_ptr_equal(d, UNTOUCHED);
  assert_string_equal(err.msg, msg);
}

static void expect_error(const char *text, const char *msg) {
  expect_error_n(text, strlen(text), NULL, TW_EPARSE, msg);
}

/* The compact dump of the document's root, compared with want. */
static void expect_json(const char *text, const char *want) {
  tw_json_doc *d = load_ok(text);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_json_dump(tw_json_doc_root(d), 0, &b), TW_OK);
  assert_int_equal(tw_buf_putc(&b, '\0'), TW_OK);
  if (strcmp(b.data, want) != 0)
    print_error("for %s\n  got: %s\n want: %s\n", text, b.data, want);
  assert_string_equal(b.data, want);
  tw_buf_fini(&b);
  tw_json_doc_free(d);
}

static void expect_place(bool found, unsigned line, unsigned col,
                         unsigned want_line, unsigned want_col) {
  assert_true(found);
  if (line != want_line || col != want_col)
    print_error("place %u:%u, want %u:%u\n", line, col, want_line, want_col);
  assert_int_equal(line, want_line);
  assert_int_equal(col, want_col);
}

static void key_at(const tw_json_doc *d, const json_t *obj, const char *key,
                   unsigned l, unsigned c) {
  unsigned line = 0, col = 0;
  bool found = tw_json_doc_where_key(d, obj, key, &line, &col);
  expect_place(found, line, col, l, c);
}

static void member_at(const tw_json_doc *d, const json_t *obj, const char *key,
                      unsigned l, unsigned c) {
  unsigned line = 0, col = 0;
  bool found = tw_json_doc_where_member(d, obj, key, &line, &col);
  expect_place(found, line, col, l, c);
}

static void item_at(const tw_json_doc *d, const json_t *arr, size_t i,
                    unsigned l, unsigned c) {
  unsigned line = 0, col = 0;
  bool found = tw_json_doc_where_item(d, arr, i, &line, &col);
  expect_place(found, line, col, l, c);
}

static void value_at(const tw_json_doc *d, const json_t *v, unsigned l,
                     unsigned c) {
  unsigned line = 0, col = 0;
  bool found = tw_json_doc_where(d, v, &line, &col);
  expect_place(found, line, col, l, c);
}

/* --- Scalars --------------------------------------------------------- */

static void test_scalars_core_schema(void **state) {
  (void)state;
  expect_json("[null, Null, NULL, ~, '', \"\"]",
              "[null,null,null,null,\"\",\"\"]");
  expect_json("a:\nb: ~\n", "{\"a\":null,\"b\":null}");
  expect_json("[true, True, TRUE, false, False, FALSE, tRUE, 'true']",
              "[true,true,true,false,false,false,\"tRUE\",\"true\"]");
  expect_json("[0, -17, +42, 012, 0o17, 0x1F, 0xff, 0xFF, "
              "9223372036854775807, -9223372036854775808]",
              "[0,-17,42,12,15,31,255,255,9223372036854775807,"
              "-9223372036854775808]");
  /* YAML 1.1 forms and near misses stay strings. */
  expect_json("[yes, no, on, off, y, n, Yes, NO, 1_000, 0b101, -0x1F, +0o7, "
              "0o, 0x, 0o8, 0xg, 1.2.3, 12:30, 2001-12-14, '123', \"0x1F\", "
              ".5.5, 1e, e3, ., -, +, 0x1F!, ' 1']",
              "[\"yes\",\"no\",\"on\",\"off\",\"y\",\"n\",\"Yes\",\"NO\","
              "\"1_000\",\"0b101\",\"-0x1F\",\"+0o7\",\"0o\",\"0x\",\"0o8\","
              "\"0xg\",\"1.2.3\",\"12:30\",\"2001-12-14\",\"123\",\"0x1F\","
              "\".5.5\",\"1e\",\"e3\",\".\",\"-\",\"+\",\"0x1F!\",\" 1\"]");
  /* The country code of Norway is not false. */
  expect_json("countries: [GB, NO, SE]",
              "{\"countries\":[\"GB\",\"NO\",\"SE\"]}");

  tw_json_doc *d =
      load_ok("[1.5, .5, 1., 1e3, -2.5E-3, +1.0e+2, 0.0, -0.0, 1.e2, 007.5]");
  const double want[] = {1.5,   0.5, 1.0,  1000.0, -2.5e-3,
                         100.0, 0.0, -0.0, 100.0,  7.5};
  json_t *a = tw_json_doc_root(d);
  assert_int_equal(json_array_size(a), 10);
  for (size_t i = 0; i < 10; i++) {
    assert_true(json_is_real(json_array_get(a, i)));
    assert_true(json_real_value(json_array_get(a, i)) == want[i]);
  }
  assert_true(signbit(json_real_value(json_array_get(a, 7))));
  tw_json_doc_free(d);

  /* Out of range, and the floats Twin documents cannot hold. */
  expect_error("a: 9223372036854775808", "t.yaml:1:4: error: integer "
                                         "'9223372036854775808' does not fit "
                                         "in 64 bits");
  expect_error("a: -9223372036854775809", "t.yaml:1:4: error: integer "
                                          "'-9223372036854775809' does not "
                                          "fit in 64 bits");
  expect_error("a: 0x8000000000000000", "t.yaml:1:4: error: integer "
                                        "'0x8000000000000000' does not fit "
                                        "in 64 bits");
  expect_error("a: [1, 1e999]",
               "t.yaml:1:8: error: number '1e999' is out of range");
  static const char *const special[] = {".inf", "-.inf", "+.Inf", ".INF",
                                        ".nan", ".NaN",  ".NAN"};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
    char text[64], msg[160];
    (void)snprintf(text, sizeof text, "a: %s", special[i]);
    (void)snprintf(msg, sizeof msg,
                   "t.yaml:1:4: error: '%s' is not a finite number (Twin "
                   "documents hold finite numbers only)",
                   special[i]);
    expect_error(text, msg);
  }
  /* Quoted, they are strings like any other. */
  expect_json("['.inf', \".nan\"]", "[\".inf\",\".nan\"]");
}

static void test_block_scalars_and_comments(void **state) {
  (void)state;
  expect_json(
      "# a comment\n"
      "lit: |\n"
      "  line 1\n"
      "  line 2\n"
      "fold: >\n"
      "  folded\n"
      "  text\n"
      "\n"
      "  para\n"
      "strip: |-\n"
      "  x\n"
      "keep: |+\n"
      "  y\n"
      "\n"
      "n: 1 # trailing\n"
      "s: a # not part of it\n"
      "h: 'a # part of it'\n"
      "# the end\n",
      "{\"lit\":\"line 1\\nline 2\\n\",\"fold\":\"folded text\\npara\\n\","
      "\"strip\":\"x\",\"keep\":\"y\\n\\n\",\"n\":1,\"s\":\"a\",\"h\":"
      "\"a # part of it\"}");
  /* Block scalars are strings, whatever their text. */
  expect_json("a: |\n  123\nb: >-\n  true\n",
              "{\"a\":\"123\\n\",\"b\":\"true\"}");
  /* Escapes of double-quoted scalars, multi-line plain scalars. */
  expect_json("a: \"x\\ty\\u00e9\\x41\"\nb: one\n  two\n",
              "{\"a\":\"x\\tyéA\",\"b\":\"one two\"}");
}

static void test_flow_style(void **state) {
  (void)state;
  expect_json("{a: 1, b: [1, 2]}", "{\"a\":1,\"b\":[1,2]}");
  expect_json("[{a: b}, [], {}, [[x]], {c: {d: [null, true]}}]",
              "[{\"a\":\"b\"},[],{},[[\"x\"]],{\"c\":{\"d\":[null,true]}}]");
  /* Block and flow mixed; members keep file order. */
  expect_json("z: 1\ny: {b: 2, a: 3}\nx:\n  - q\n  - {r: s}\n",
              "{\"z\":1,\"y\":{\"b\":2,\"a\":3},\"x\":[\"q\",{\"r\":\"s\"}]}");
  /* A scalar at the root is a document too. */
  expect_json("hello", "\"hello\"");
  expect_json("--- 42\n...\n", "42");
  expect_json("---\n", "null");
}

static void test_tags(void **state) {
  (void)state;
  expect_json("[!!str 123, !!str true, !!int '42', !!int 0x10, !!float 1, "
              "!!float '2.5', !!float 0x10, !!bool True, !!bool 'false', "
              "!!null '', !!null ~, ! 123, !!map {a: 1}, !!seq [1], "
              "! {b: 2}, ! [3]]",
              "[\"123\",\"true\",42,16,1.0,2.5,16.0,true,false,null,null,"
              "\"123\",{\"a\":1},[1],{\"b\":2},[3]]");
  /* A %TAG directive that names the core schema works like "!!". */
  expect_json("%TAG !c! tag:yaml.org,2002:\n---\nv: !c!int 5", "{\"v\":5}");
  expect_json("!!str key: !!str 1", "{\"key\":\"1\"}");

  expect_error("v: !foo x", "t.yaml:1:4: error: unsupported tag '!foo'");
  expect_error("v: !!binary aGVsbG8=",
               "t.yaml:1:4: error: unsupported tag '!!binary'");
  expect_error("v: !!timestamp 2001-12-14",
               "t.yaml:1:4: error: unsupported tag '!!timestamp'");
  expect_error("v: !<tag:example.com,2000:x> 1",
               "t.yaml:1:4: error: unsupported tag 'tag:example.com,2000:x'");
  expect_error("v: !!set {a: 1}", "t.yaml:1:4: error: unsupported tag '!!set'");
  expect_error("v: !local {a: 1}",
               "t.yaml:1:4: error: unsupported tag '!local'");
  expect_error("v: !!map x", "t.yaml:1:4: error: tag '!!map' on a scalar");
  expect_error("v: !!seq x", "t.yaml:1:4: error: tag '!!seq' on a scalar");
  expect_error("v: !!str [1]", "t.yaml:1:4: error: tag '!!str' on a sequence");
  expect_error("v: !!seq {a: 1}",
               "t.yaml:1:4: error: tag '!!seq' on a mapping");
  expect_error("v: !!int abc", "t.yaml:1:4: error: 'abc' is not an integer");
  expect_error("v: !!int 1.5", "t.yaml:1:4: error: '1.5' is not an integer");
  expect_error("v: !!float x", "t.yaml:1:4: error: 'x' is not a float");
  expect_error("v: !!bool yes", "t.yaml:1:4: error: 'yes' is not a boolean");
  expect_error("v: !!null 0", "t.yaml:1:4: error: '0' is not a null");
  expect_error("!!int 1: x", "t.yaml:1:1: error: tag '!!int' on a mapping key "
                             "(keys are strings)");
}

/* --- Keys ------------------------------------------------------------ */

static void test_keys(void **state) {
  (void)state;
  /* Scalar keys are taken as strings, as written. */
  expect_json("1: a\n0x1F: b\ntrue: c\n~: d\nnull: e\n\"\": f\n'q': g\n"
              "? explicit\n: h\n",
              "{\"1\":\"a\",\"0x1F\":\"b\",\"true\":\"c\",\"~\":\"d\","
              "\"null\":\"e\",\"\":\"f\",\"q\":\"g\",\"explicit\":\"h\"}");
  expect_error("? [a, b]\n: 1", "t.yaml:1:3: error: a mapping key must be a "
                                "scalar, not a sequence");
  expect_error("{a: 1}: x", "t.yaml:1:1: error: a mapping key must be a "
                            "scalar, not a mapping");
  expect_error("a:\n  ? {b: 1}\n  : 2", "t.yaml:2:5: error: a mapping key "
                                        "must be a scalar, not a mapping");
}

static void test_duplicate_keys(void **state) {
  (void)state;
  expect_error("a: 1\nb: 2\na: 3\n",
               "t.yaml:3:1: error: duplicate key 'a' (first at 1:1)");
  expect_error("x:\n  k: 1\n  'k': 2\n",
               "t.yaml:3:3: error: duplicate key 'k' (first at 2:3)");
  expect_error("{a: 1, b: true, b: false}",
               "t.yaml:1:17: error: duplicate key 'b' (first at 1:8)");
  /* Keys equal after resolution: both are the string "1". */
  expect_error("1: a\n\"1\": b\n",
               "t.yaml:2:1: error: duplicate key '1' (first at 1:1)");
  /* A duplicate key right after a merge is still one. */
  expect_error("a: &a {k: 1}\nb:\n  <<: *a\n  y: 1\n  y: 2\n",
               "t.yaml:5:3: error: duplicate key 'y' (first at 4:3)");
  expect_error("a: {<<: {x: 1}, <<: {y: 1}}",
               "t.yaml:1:17: error: duplicate key '<<' (first at 1:5)");
  /* Same keys in different mappings are fine. */
  expect_json("a: {k: 1}\nb: {k: 2}\n", "{\"a\":{\"k\":1},\"b\":{\"k\":2}}");
}

/* --- Anchors, aliases, merges ---------------------------------------- */

static void test_anchors_aliases(void **state) {
  (void)state;
  static const char text[] = "base: &b {x: 1, y: [true, z]}\n"
                             "copy: *b\n"
                             "list: [*b, &s str, *s]\n";
  tw_json_doc *d = load_ok(text);
  json_t *root = tw_json_doc_root(d);
  json_t *base = json_object_get(root, "base");
  json_t *copy = json_object_get(root, "copy");
  json_t *list = json_object_get(root, "list");
  assert_true(json_equal(base, copy));
  assert_true(json_equal(base, json_array_get(list, 0)));
  assert_string_equal(json_string_value(json_array_get(list, 2)), "str");
  /* Deep copies: the tree shares nothing. */
  assert_ptr_not_equal(base, copy);
  assert_ptr_not_equal(json_object_get(base, "y"), json_object_get(copy, "y"));
  assert_int_equal(copy->refcount, 1);
  /* The copy is placed at its alias, its parts where they were written. */
  value_at(d, copy, 2, 7);
  member_at(d, root, "copy", 2, 7);
  value_at(d, json_array_get(list, 0), 3, 8);
  item_at(d, list, 2, 3, 20);
  key_at(d, copy, "y", 1, 17);
  member_at(d, copy, "x", 1, 14);
  item_at(d, json_object_get(copy, "y"), 0, 1, 21);
  value_at(d, json_object_get(copy, "y"), 1, 20);
  tw_json_doc_free(d);

  /* A later anchor of the same name hides the earlier one. */
  expect_json("a: &x 1\nb: &x 2\nc: *x\n", "{\"a\":1,\"b\":2,\"c\":2}");
  /* An anchored key names its text. */
  expect_json("&k key: v\nb: *k\n", "{\"key\":\"v\",\"b\":\"key\"}");
  expect_json("a: &n name\n*n : x\n", "{\"a\":\"name\",\"name\":\"x\"}");
  expect_error("&k key: v\n*k : w\n",
               "t.yaml:2:1: error: duplicate key 'key' (first at 1:1)");
  expect_error("a: &n 1\n*n : x\n", "t.yaml:2:1: error: alias '*n' is used "
                                    "as a key but does not name a string");
  expect_error("a: *x", "t.yaml:1:4: error: undefined alias '*x'");
  expect_error("a: &x [1, *x]",
               "t.yaml:1:11: error: alias '*x' refers to a node that "
               "contains it");
  expect_error("a: &x {b: {c: *x}}",
               "t.yaml:1:15: error: alias '*x' refers to a node that "
               "contains it");
}

static void test_merge_keys(void **state) {
  (void)state;
  static const char text[] = "x-base: &base\n"
                             "  image: alpine\n"
                             "  restart: always\n"
                             "  ok: true\n"
                             "svc:\n"
                             "  restart: \"no\"\n"
                             "  <<: *base\n"
                             "  name: web\n";
  tw_json_doc *d = load_ok(text);
  json_t *root = tw_json_doc_root(d);
  json_t *svc = json_object_get(root, "svc");
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_json_dump(svc, 0, &b), TW_OK);
  assert_int_equal(tw_buf_putc(&b, '\0'), TW_OK);
  /* Explicit keys win and come first; merged ones follow. */
  assert_string_equal(b.data, "{\"restart\":\"no\",\"name\":\"web\","
                              "\"image\":\"alpine\",\"ok\":true}");
  tw_buf_fini(&b);
  assert_null(json_object_get(svc, "<<"));
  key_at(d, svc, "restart", 6, 3);
  member_at(d, svc, "restart", 6, 12);
  /* Merged members keep the places of the mapping they came from. */
  key_at(d, svc, "image", 2, 3);
  member_at(d, svc, "image", 2, 10);
  member_at(d, svc, "ok", 4, 7);
  tw_json_doc_free(d);

  /* A list: earlier mappings win over later ones. */
  expect_json("a: &a {k: 1, j: 1}\nb: &b {k: 2, m: 2}\n"
              "c: {<<: [*a, *b], z: 0}\n",
              "{\"a\":{\"k\":1,\"j\":1},\"b\":{\"k\":2,\"m\":2},"
              "\"c\":{\"z\":0,\"k\":1,\"j\":1,\"m\":2}}");
  /* Inline mappings, nested merges, a merge in an anchored mapping. */
  expect_json("a: {<<: {x: 1}, y: 2}", "{\"a\":{\"y\":2,\"x\":1}}");
  expect_json("a: {<<: [{x: 1}, {x: 2, w: 3}]}", "{\"a\":{\"x\":1,\"w\":3}}");
  expect_json("a: &a {p: 1}\nb: &b {<<: *a, q: 2}\nc: {<<: *b, r: 3}\n",
              "{\"a\":{\"p\":1},\"b\":{\"q\":2,\"p\":1},"
              "\"c\":{\"r\":3,\"q\":2,\"p\":1}}");
  expect_json("a: {<<: &m {x: 1}}\nb: *m\n",
              "{\"a\":{\"x\":1},\"b\":{\"x\":1}}");
  /* A quoted '<<' is an ordinary key. */
  expect_json("a: {'<<': 1}", "{\"a\":{\"<<\":1}}");

  expect_error("a: {<<: 1}", "t.yaml:1:9: error: the value of a merge key "
                             "'<<' must be a mapping or a sequence of "
                             "mappings");
  expect_error("a: &a {k: 1}\nb: {<<: [*a, 1]}",
               "t.yaml:2:14: error: the value of a merge key '<<' must be a "
               "mapping or a sequence of mappings");
  expect_error("a: &a [1]\nb: {<<: *a}",
               "t.yaml:2:9: error: the value of a merge key '<<' must be a "
               "mapping or a sequence of mappings");
  expect_error("a: {<<: [[{x: 1}]]}",
               "t.yaml:1:10: error: the value of a merge key '<<' must be a "
               "mapping or a sequence of mappings");
}

/* --- Limits ---------------------------------------------------------- */

static char *billion_laughs(void) {
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_puts(&b, "a: &a [lol, lol, lol, lol, lol, lol, "
                                   "lol, lol, lol]\n"),
                   TW_OK);
  for (char c = 'b'; c <= 'i'; c++) {
    assert_int_equal(tw_buf_printf(&b, "%c: &%c [", c, c), TW_OK);
    for (int i = 0; i < 9; i++)
      assert_int_equal(tw_buf_printf(&b, "%s*%c", i ? ", " : "", c - 1), TW_OK);
    assert_int_equal(tw_buf_puts(&b, "]\n"), TW_OK);
  }
  return tw_buf_take(&b, NULL);
}

static void test_billion_laughs(void **state) {
  (void)state;
  char *text = billion_laughs();
  /* a..f hold about 670,000 values; the first *f of g passes 1,000,000. */
  expect_error_n(text, strlen(text), NULL, TW_ELIMIT,
                 "t.yaml:7:8: error: the document expands to more than "
                 "1000000 values (aliases included)");
  tw_yaml_opts opts = {.max_nodes = 1000};
  expect_error_n(text, strlen(text), &opts, TW_ELIMIT,
                 "t.yaml:4:8: error: the document expands to more than 1000 "
                 "values (aliases included)");
  tw_free(text);
  /* The limit counts every value, copies included: 1 + 1 + 2 + 2. */
  opts.max_nodes = 6;
  tw_json_doc *d = NULL;
  tw_err err;
  assert_int_equal(parse_n("[a, &x [b], *x]", 15, &opts, &d, &err), TW_OK);
  tw_json_doc_free(d);
  expect_error_n("[a, &x [b], *x, c]", 18, &opts, TW_ELIMIT,
                 "t.yaml:1:17: error: the document expands to more than 6 "
                 "values (aliases included)");
}

static void test_depth_limit(void **state) {
  (void)state;
  size_t n = 100000;
  char *deep = malloc(2 * n);
  assert_non_null(deep);
  memset(deep, '[', n);
  memset(deep + n, ']', n);
  expect_error_n(deep, 2 * n, NULL, TW_ELIMIT,
                 "t.yaml:1:257: error: nesting deeper than 256");
  /* 256 levels are fine. */
  tw_json_doc *d = NULL;
  tw_err err;
  memcpy(deep + 256, deep + n, 256);
  assert_int_equal(parse_n(deep, 512, NULL, &d, &err), TW_OK);
  tw_json_doc_free(d);
  free(deep);

  /* Block nesting: one more level per line. */
  tw_buf b = TW_BUF_INIT;
  for (int i = 0; i < 300; i++)
    assert_int_equal(tw_buf_printf(&b, "%*sk:\n", i, ""), TW_OK);
  expect_error_n(b.data, b.len, NULL, TW_ELIMIT,
                 "t.yaml:257:257: error: nesting deeper than 256");
  tw_buf_fini(&b);

  tw_yaml_opts opts = {.max_depth = 4};
  assert_int_equal(parse_n("[[[[1]]]]", 9, &opts, &d, &err), TW_OK);
  tw_json_doc_free(d);
  expect_error_n("[[[[[1]]]]]", 11, &opts, TW_ELIMIT,
                 "t.yaml:1:5: error: nesting deeper than 4");
  /* Aliases count with the depth of what they copy. */
  static const char alias[] = "a: &a [[1]]\nb: [*a]\nc: [[*a]]\n";
  expect_error_n(alias, strlen(alias), &opts, TW_ELIMIT,
                 "t.yaml:3:6: error: nesting deeper than 4 (through alias "
                 "'*a')");
  /* A limit above the largest is the largest. */
  opts.max_depth = 100000;
  deep = malloc(600);
  assert_non_null(deep);
  memset(deep, '[', 300);
  memset(deep + 300, ']', 300);
  expect_error_n(deep, 600, &opts, TW_ELIMIT,
                 "t.yaml:1:257: error: nesting deeper than 256");
  free(deep);
}

/* --- Documents, syntax, encodings ------------------------------------ */

static void test_documents(void **state) {
  (void)state;
  expect_error("", "t.yaml:1:1: error: no YAML document (the input is empty "
                   "or holds only comments)");
  expect_error("# nothing\n\n", "t.yaml:1:1: error: no YAML document (the "
                                "input is empty or holds only comments)");
  expect_error("a: 1\n---\nb: 2\n", "t.yaml:2:1: error: a second document "
                                    "starts here; a file holds one document");
  expect_error("a: 1\n...\n--- b\n", "t.yaml:3:1: error: a second document "
                                     "starts here; a file holds one document");
  expect_json("---\na: 1\n...\n", "{\"a\":1}");
  expect_json("%YAML 1.2\n---\na: 1\n", "{\"a\":1}");
  /* A NULL or empty source name. */
  tw_json_doc *d = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_yaml_parse_doc("[", 1, NULL, NULL, &d, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "<input>:"));
  tw_err_init(&err);
  assert_int_equal(tw_yaml_parse_doc(NULL, 0, "", NULL, &d, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "<input>:1:1: error: no YAML document"));
  /* len, not a NUL, ends the text. */
  assert_int_equal(tw_yaml_parse_doc("a: 1junk", 4, "t", NULL, &d, NULL),
                   TW_OK);
  assert_int_equal(
      json_integer_value(json_object_get(tw_json_doc_root(d), "a")), 1);
  tw_json_doc_free(d);
}

static void test_syntax_errors(void **state) {
  (void)state;
  expect_error("a: [1, 2\nb: 3\n",
               "t.yaml:2:2: error: did not find expected ',' or ']' (while "
               "parsing a flow sequence at 1:4)");
  expect_error("a: b: c",
               "t.yaml:1:5: error: mapping values are not allowed in this "
               "context");
  expect_error("a:\n\tb: 1\n", "t.yaml:2:1: error: found character that "
                               "cannot start any token (while scanning for "
                               "the next token)");
  expect_error("a: 'x\n", "t.yaml:2:1: error: found unexpected end of stream "
                          "(while scanning a quoted scalar at 1:4)");
  expect_error("- a\nb: 1\n", "t.yaml:2:1: error: did not find expected '-' "
                              "indicator (while parsing a block collection "
                              "at 1:1)");
  expect_error("a: &\n", "t.yaml:1:5: error: did not find expected "
                         "alphabetic or numeric character (while scanning "
                         "an anchor at 1:4)");
  expect_error("%YAML 2.0\n---\na\n",
               "t.yaml:1:1: error: found incompatible YAML document");
  /* Columns count characters, not bytes. */
  expect_error("é: ü: x", "t.yaml:1:5: error: mapping values are not allowed "
                          "in this context");
}

static void test_encodings(void **state) {
  (void)state;
  expect_error("a: \xff\n", "t.yaml:1:4: error: invalid UTF-8 byte 0xff");
  expect_error("a: é\nb: \xc3(\n",
               "t.yaml:2:4: error: invalid UTF-8 byte 0xc3");
  expect_error("a: \xed\xa0\x80\n", /* an encoded surrogate */
               "t.yaml:1:4: error: invalid UTF-8 byte 0xed");
  expect_error("\xff\xfe"
               "a\0:\0",
               "t.yaml:1:1: error: the input is UTF-16 (it starts with a "
               "UTF-16 byte order mark); YAML files must be UTF-8");
  expect_error_n("a: \0\n", 5, NULL, TW_EPARSE,
                 "t.yaml:1:4: error: control characters are not allowed "
                 "(U+0000)");
  expect_error("a: x\x01y", "t.yaml:1:5: error: control characters are not "
                            "allowed (U+0001)");
  expect_error("a: \"x\\0y\"", "t.yaml:1:4: error: a string holds a NUL byte");
  expect_error("\"k\\0\": 1", "t.yaml:1:1: error: a string holds a NUL byte");

  /* A byte order mark is not part of the text: columns start after it. */
  tw_json_doc *d = load_ok("\xef\xbb\xbf"
                           "a: 1\nb: x\n");
  json_t *root = tw_json_doc_root(d);
  key_at(d, root, "a", 1, 1);
  member_at(d, root, "b", 2, 4);
  tw_json_doc_free(d);
  expect_error("\xef\xbb\xbf"
               "a: [",
               "t.yaml:1:5: error: did not find expected node content (while "
               "parsing a flow node)");

  /* CRLF line endings. */
  d = load_ok("a: 1\r\nb: true\r\nc: |\r\n  x\r\n  y\r\nd: [p,\r\n  q]\r\n");
  root = tw_json_doc_root(d);
  assert_int_equal(json_integer_value(json_object_get(root, "a")), 1);
  assert_true(json_is_true(json_object_get(root, "b")));
  assert_string_equal(json_string_value(json_object_get(root, "c")), "x\ny\n");
  key_at(d, root, "b", 2, 1);
  member_at(d, root, "b", 2, 4);
  member_at(d, root, "c", 3, 4);
  item_at(d, json_object_get(root, "d"), 1, 7, 3);
  tw_json_doc_free(d);
}

/* --- Places ---------------------------------------------------------- */

static void test_places(void **state) {
  (void)state;
  static const char text[] = "name: pump\n"
                             "on: true\n"
                             "off:\n"
                             "params:\n"
                             "  - null\n"
                             "  - false\n"
                             "  - {k: 1.5, é: ~}\n"
                             "  - 'q'\n"
                             "flow: {a: 1, b: [1, 2]}\n"
                             "x: !!int 7\n";
  tw_json_doc *d = load_ok(text);
  json_t *root = tw_json_doc_root(d);
  value_at(d, root, 1, 1);
  key_at(d, root, "name", 1, 1);
  member_at(d, root, "name", 1, 7);
  value_at(d, json_object_get(root, "name"), 1, 7);
  /* Booleans and nulls have no place of their own, but their member has. */
  unsigned l = 0, c = 0;
  assert_false(tw_json_doc_where(d, json_object_get(root, "on"), &l, &c));
  assert_true(l == 0 && c == 0);
  key_at(d, root, "on", 2, 1);
  member_at(d, root, "on", 2, 5);
  key_at(d, root, "off", 3, 1);
  member_at(d, root, "off", 3, 5); /* an empty value: where it would be */
  json_t *params = json_object_get(root, "params");
  value_at(d, params, 5, 3);
  item_at(d, params, 0, 5, 5);
  item_at(d, params, 1, 6, 5);
  item_at(d, params, 2, 7, 5);
  json_t *third = json_array_get(params, 2);
  key_at(d, third, "é", 7, 14);
  member_at(d, third, "é", 7, 17);
  member_at(d, third, "k", 7, 9);
  item_at(d, params, 3, 8, 5);
  json_t *flow = json_object_get(root, "flow");
  value_at(d, flow, 9, 7);
  key_at(d, flow, "b", 9, 14);
  member_at(d, flow, "b", 9, 17);
  item_at(d, json_object_get(flow, "b"), 1, 9, 21);
  member_at(d, root, "x", 10, 4); /* the node starts at its tag */
  /* Nothing for what is not there. */
  l = c = 0;
  assert_false(tw_json_doc_where_key(d, root, "nope", &l, &c));
  assert_false(tw_json_doc_where_member(d, root, "nope", &l, &c));
  assert_false(tw_json_doc_where_item(d, params, 4, &l, &c));
  assert_false(tw_json_doc_where_key(d, params, "name", &l, &c));
  assert_false(tw_json_doc_where_item(d, root, 0, &l, &c));
  assert_true(l == 0 && c == 0);
  json_t *other = json_integer(1);
  assert_false(tw_json_doc_where(d, other, &l, &c));
  json_decref(other);
  assert_string_equal(tw_json_doc_source(d), "t.yaml");
  tw_json_doc_free(d);
}

/* JSON documents record the same places, so one validator serves both. */
static void test_json_doc_places(void **state) {
  (void)state;
  static const char text[] = "{\n  \"on\": true,\n  \"list\": [null, false, "
                             "{\"k\": 1}],\n  \"é\": \"v\"\n}";
  tw_json_doc *d = NULL;
  assert_int_equal(tw_json_parse_doc(text, strlen(text), "t.json", &d, NULL),
                   TW_OK);
  json_t *root = tw_json_doc_root(d);
  key_at(d, root, "on", 2, 3);
  member_at(d, root, "on", 2, 9);
  json_t *list = json_object_get(root, "list");
  value_at(d, list, 3, 11);
  item_at(d, list, 0, 3, 12);
  item_at(d, list, 1, 3, 18);
  item_at(d, list, 2, 3, 25);
  key_at(d, json_array_get(list, 2), "k", 3, 26);
  key_at(d, root, "é", 4, 3);
  member_at(d, root, "é", 4, 8);

  /* Copies keep places; update_missing carries them over. */
  json_t *copy = NULL;
  assert_int_equal(tw_json_doc_dup(d, list, 7, &copy), TW_OK);
  value_at(d, copy, 2, 6); /* offset 7 */
  item_at(d, copy, 1, 3, 18);
  key_at(d, json_array_get(copy, 2), "k", 3, 26);
  json_t *obj = json_object();
  assert_int_equal(json_object_set_new(obj, "on", json_false()), 0);
  assert_int_equal(tw_json_doc_update_missing(d, obj, root), TW_OK);
  assert_true(json_is_false(json_object_get(obj, "on")));
  unsigned l = 0, c = 0;
  assert_false(tw_json_doc_where_key(d, obj, "on", &l, &c));
  key_at(d, obj, "list", 3, 3);
  member_at(d, obj, "é", 4, 8);
  assert_ptr_equal(json_object_get(obj, "list"), list); /* shared */
  json_decref(obj);
  json_decref(copy);

  /* Builders may record places for members and items by hand. */
  assert_int_equal(tw_json_doc_mark_member(d, root, "absent", 0, 0), TW_EINVAL);
  assert_int_equal(tw_json_doc_mark_item(d, list, 3, 0), TW_EINVAL);
  assert_int_equal(tw_json_doc_mark_item(d, list, 0, 0), TW_OK);
  item_at(d, list, 0, 1, 1);
  assert_int_equal(tw_json_doc_mark(d, json_true(), 0), TW_OK);
  assert_false(tw_json_doc_where(d, json_true(), &l, &c));
  tw_json_doc_free(d);
}

/* --- Files and allocation failures ----------------------------------- */

static const char alloc_doc[] = "x-base: &base\n"
                                "  image: alpine\n"
                                "  env: {A: 1, B: [x, y]}\n"
                                "  ok: true\n"
                                "svc:\n"
                                "  web:\n"
                                "    <<: *base\n"
                                "    ports: [80, 443]\n"
                                "  db:\n"
                                "    <<: [*base, {extra: 2.5}]\n"
                                "    text: |\n"
                                "      long enough to grow a buffer\n"
                                "list: [*base, &s str, *s, null, ~]\n";

static int yaml_round(void) {
  tw_json_doc *d = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_yaml_parse_doc(alloc_doc, strlen(alloc_doc), "m.yaml", NULL, &d, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_string_equal(err.msg, "m.yaml: out of memory parsing YAML");
    return rc;
  }
  json_t *web =
      json_object_get(json_object_get(tw_json_doc_root(d), "svc"), "web");
  key_at(d, web, "image", 2, 3);
  tw_json_doc_free(d);
  return TW_OK;
}

/* A failing document under allocation failure: its error or ENOMEM. */
static int yaml_error_round(void) {
  static const char text[] = "a: &a {k: [1, 2]}\nb: {<<: *a, k: 1, k: 2}\n";
  tw_json_doc *d = UNTOUCHED;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_yaml_parse_doc(text, strlen(text), "e.yaml", NULL, &d, &err);
  assert_ptr_equal(d, UNTOUCHED);
  if (rc == TW_ENOMEM)
    return rc;
  assert_int_equal(rc, TW_EPARSE);
  assert_string_equal(err.msg,
                      "e.yaml:2:19: error: duplicate key 'k' (first at 2:13)");
  return TW_OK;
}

static int json_doc_round(void) {
  static const char text[] = "{\"a\": [true, {\"b\": null}], \"c\": \"d\"}";
  tw_json_doc *d = NULL;
  int rc = tw_json_parse_doc(text, strlen(text), "m.json", &d, NULL);
  if (rc != TW_OK)
    return rc;
  json_t *copy = NULL;
  rc = tw_json_doc_dup(d, tw_json_doc_root(d), 0, &copy);
  json_t *obj = rc == TW_OK ? json_object() : NULL;
  if (rc == TW_OK && obj == NULL)
    rc = TW_ENOMEM;
  if (rc == TW_OK)
    rc = tw_json_doc_update_missing(d, obj, copy);
  json_decref(obj);
  json_decref(copy);
  tw_json_doc_free(d);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(yaml_round());
  TW_TEST_ALLOC_FAILURES(yaml_error_round());
  TW_TEST_ALLOC_FAILURES(json_doc_round());
}

static void test_load_doc(void **state) {
  (void)state;
  char path[] = "/tmp/tw_test_yaml_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  static const char text[] = "a: [1, 2]\nb: {c: true\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  tw_json_doc *d = UNTOUCHED;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_yaml_load_doc(path, NULL, &d, &err), TW_EPARSE);
  char want[256];
  (void)snprintf(want, sizeof want,
                 "%s:3:1: error: did not find expected ',' or '}' (while "
                 "parsing a flow mapping at 2:4)",
                 path);
  assert_string_equal(err.msg, want);
  fd = open(path, O_WRONLY | O_TRUNC);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "a: 1\n", 5), 5);
  close(fd);
  assert_int_equal(tw_yaml_load_doc(path, NULL, &d, &err), TW_OK);
  assert_string_equal(tw_json_doc_source(d), path);
  tw_json_doc_free(d);
  unlink(path);
  tw_err_init(&err);
  d = UNTOUCHED;
  assert_int_equal(tw_yaml_load_doc(path, NULL, &d, &err), TW_ENOENT);
  assert_ptr_equal(d, UNTOUCHED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_scalars_core_schema),
      TW_TEST(test_block_scalars_and_comments),
      TW_TEST(test_flow_style),
      TW_TEST(test_tags),
      TW_TEST(test_keys),
      TW_TEST(test_duplicate_keys),
      TW_TEST(test_anchors_aliases),
      TW_TEST(test_merge_keys),
      TW_TEST(test_billion_laughs),
      TW_TEST(test_depth_limit),
      TW_TEST(test_documents),
      TW_TEST(test_syntax_errors),
      TW_TEST(test_encodings),
      TW_TEST(test_places),
      TW_TEST(test_json_doc_places),
      TW_TEST(test_alloc_failures),
      TW_TEST(test_load_doc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
