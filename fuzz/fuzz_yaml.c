/*
 * fuzz_yaml.c - libFuzzer target for the YAML front end (twin/yaml.h).
 *
 * For every input: tw_yaml_parse_doc either fails with a located message
 * ("fuzz:LINE:COL: error: ...", TW_EPARSE or TW_ELIMIT) or yields a
 * document whose tree
 *   - holds at most max_nodes values and nests at most max_depth deep;
 *   - shares nothing: every object, array, string and number has exactly
 *     one reference (aliases and merges were copied or moved);
 *   - is located everywhere: every value other than true/false/null, every
 *     member key, member value and array item has a place, within the text;
 *   - dumps, and the dump parses back as JSON to an equal value.
 * Small inputs are parsed once more with one allocation failing, to drive
 * the out-of-memory paths: the outcome must be the normal one or
 * TW_ENOMEM, and nothing may leak. The limits are lowered to keep alias
 * bombs cheap per input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/json.h"
#include "twin/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_yaml: check failed at line %d: %s\n", __LINE__,    \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const tw_yaml_opts opts = {.max_nodes = 20000, .max_depth = 64};

static bool is_singleton(const json_t *v) {
  return json_is_true(v) || json_is_false(v) || json_is_null(v);
}

/* Checks a where function's answer (called before, as argument order
 * is unspecified). */
static void check_place(bool found, const unsigned *line, const unsigned *col,
                        unsigned lines) {
  CHECK(found);
  CHECK(*line >= 1 && *line <= lines && *col >= 1);
}

/* Walks v at depth (collections around it) and counts its values. */
static size_t walk(const tw_json_doc *d, const json_t *v, unsigned depth,
                   unsigned lines) {
  unsigned l = 0, c = 0;
  if (is_singleton(v)) {
    CHECK(!tw_json_doc_where(d, v, &l, &c));
    return 1;
  }
  CHECK(v->refcount == 1);
  bool found = tw_json_doc_where(d, v, &l, &c);
  check_place(found, &l, &c, lines);
  size_t n = 1;
  if (json_is_object(v) || json_is_array(v))
    CHECK(depth < opts.max_depth);
  if (json_is_object(v)) {
    const char *key;
    json_t *m;
    // NOLINTNEXTLINE(performance-no-int-to-ptr)
    json_object_foreach((json_t *)(uintptr_t)v, key, m) {
      found = tw_json_doc_where_key(d, v, key, &l, &c);
      check_place(found, &l, &c, lines);
      found = tw_json_doc_where_member(d, v, key, &l, &c);
      check_place(found, &l, &c, lines);
      n += walk(d, m, depth + 1, lines);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      found = tw_json_doc_where_item(d, v, i, &l, &c);
      check_place(found, &l, &c, lines);
      n += walk(d, json_array_get(v, i), depth + 1, lines);
    }
  }
  return n;
}

/* Parses with allocation n failing: the outcome is the normal one (ok
 * says whether the input parses) or TW_ENOMEM, and nothing leaks. */
static void run_with_failure(const uint8_t *data, size_t size, unsigned long n,
                             int normal) {
  long live = tw_alloc_live();
  tw_json_doc *d = NULL;
  tw_err err;
  tw_err_init(&err);
  tw_alloc_fail_at(n, false);
  int rc = tw_yaml_parse_doc((const char *)data, size, "fuzz", &opts, &d, &err);
  bool fired = tw_alloc_failure_fired();
  tw_alloc_fail_at(0, false);
  if (!(fired && rc == TW_ENOMEM))
    CHECK(rc == normal);
  tw_json_doc_free(d);
  CHECK(tw_alloc_live() == live);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  tw_json_doc *d = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_yaml_parse_doc((const char *)data, size, "fuzz", &opts, &d, &err);
  if (rc != TW_OK) {
    CHECK(rc == TW_EPARSE || rc == TW_ELIMIT);
    CHECK(d == NULL && err.code == rc);
    CHECK(strncmp(err.msg, "fuzz:", 5) == 0);
    CHECK(strstr(err.msg, ": error: ") != NULL);
  } else {
    unsigned lines = 1;
    for (size_t i = 0; i < size; i++)
      lines += data[i] == '\n';
    json_t *root = tw_json_doc_root(d);
    CHECK(walk(d, root, 0, lines) <= opts.max_nodes);

    tw_buf b = TW_BUF_INIT;
    CHECK(tw_json_dump(root, TW_JSON_SORT_KEYS, &b) == TW_OK);
    json_t *back = NULL;
    tw_err_init(&err);
    if (tw_json_parse(b.data, b.len, "dump", &back, &err) != TW_OK) {
      fprintf(stderr, "dump does not parse: %s\n", err.msg);
      abort();
    }
    CHECK(json_equal(root, back));
    json_decref(back);
    tw_buf_fini(&b);
    tw_json_doc_free(d);
  }
  if (size > 0 && size <= 4096)
    run_with_failure(data, size, 1 + data[size - 1] % 64u, rc);
  CHECK(tw_alloc_live() == live);
  return 0;
}
