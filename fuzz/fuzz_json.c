/*
 * fuzz_json.c - libFuzzer target for the JSON helpers.
 *
 * For every input: tw_json_parse either fails with a located TW_EPARSE
 * message or yields a value whose sorted dump is canonical, i.e. parsing the
 * dump and dumping again gives the same bytes and an equal value. On
 * objects the typed getters and check_keys must agree with the member
 * types. Small inputs are parsed once more with one allocation failing, to
 * drive the out-of-memory paths. Any broken invariant, and any tw_alloc
 * memory still live at the end, aborts.
 */
#include <float.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_json: check failed at line %d: %s\n", __LINE__,    \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* A failed call must carry its code and a message. */
static void check_err(int rc, const tw_err *err) {
  CHECK(rc != TW_OK);
  CHECK(err->code == rc);
  CHECK(err->msg[0] != '\0');
}

/* Runs every getter on member key of obj and checks the outcome against
 * the member's type. */
static void exercise_member(const json_t *obj, const char *key) {
  const json_t *v = json_object_get(obj, key);
  tw_err err;
  int rc;

  const char *s = NULL;
  tw_err_init(&err);
  rc = tw_json_get_str(obj, "fuzz", key, true, &s, &err);
  if (json_is_string(v) &&
      strlen(json_string_value(v)) == json_string_length(v)) {
    CHECK(rc == TW_OK && s == json_string_value(v));
  } else {
    check_err(rc, &err);
    CHECK(s == NULL);
  }

  int64_t i = 7;
  tw_err_init(&err);
  rc = tw_json_get_int(obj, "", key, true, INT64_MIN, INT64_MAX, &i, &err);
  CHECK((rc == TW_OK) == json_is_integer(v));
  if (rc == TW_OK)
    CHECK(i == json_integer_value(v));
  else
    check_err(rc, &err);
  tw_err_init(&err);
  i = 7;
  rc = tw_json_get_int(obj, NULL, key, true, -1, 1, &i, &err);
  if (rc != TW_OK) {
    check_err(rc, &err);
    CHECK(i == 7);
  }

  double x = 0.5;
  tw_err_init(&err);
  rc = tw_json_get_f64(obj, "fuzz", key, true, -DBL_MAX, DBL_MAX, &x, &err);
  CHECK((rc == TW_OK) == json_is_number(v));
  if (rc != TW_OK)
    check_err(rc, &err);
  tw_err_init(&err);
  rc = tw_json_get_f64(obj, "fuzz", key, true, 0.0, 1.0, &x, &err);
  if (rc == TW_OK)
    CHECK(x >= 0.0 && x <= 1.0);
  else
    check_err(rc, &err);

  bool b = false;
  tw_err_init(&err);
  rc = tw_json_get_bool(obj, "fuzz", key, true, &b, &err);
  CHECK((rc == TW_OK) == json_is_boolean(v));
  if (rc == TW_OK)
    CHECK(b == json_is_true(v));

  json_t *sub = NULL;
  tw_err_init(&err);
  rc = tw_json_get_array(obj, "fuzz", key, true, &sub, &err);
  CHECK((rc == TW_OK) == json_is_array(v));
  CHECK(rc != TW_OK || sub == v);
  sub = NULL;
  tw_err_init(&err);
  rc = tw_json_get_object(obj, "fuzz", key, true, &sub, &err);
  CHECK((rc == TW_OK) == json_is_object(v));
  CHECK(rc != TW_OK || sub == v);
}

static void exercise_object(const json_t *obj) {
  const char *key;
  json_t *v;
  size_t n = 0;
  const char *first = NULL;
  bool other = false;
  json_object_foreach((json_t *)(uintptr_t)obj, key, v) {
    exercise_member(obj, key);
    if (first == NULL)
      first = key;
    else if (strncmp(key, "x-", 2) != 0)
      other = true;
    if (++n == 64)
      break;
  }
  tw_err err;
  tw_err_init(&err);
  const char *allowed[] = {first, NULL};
  int rc = tw_json_check_keys(obj, "fuzz", allowed, &err);
  if (n < 64)
    CHECK((rc == TW_OK) == !other);
  if (rc != TW_OK)
    check_err(rc, &err);

  const char *missing = "";
  tw_err_init(&err);
  if (json_object_get(obj, "\x01missing") == NULL) {
    CHECK(tw_json_get_str(obj, "fuzz", "\x01missing", false, &missing, &err) ==
          TW_OK);
    CHECK(missing[0] == '\0');
    rc = tw_json_get_str(obj, "fuzz", "\x01missing", true, &missing, &err);
    CHECK(rc == TW_EINVAL);
    check_err(rc, &err);
  }
}

static void dump_or_die(const json_t *v, unsigned flags, tw_buf *out) {
  CHECK(tw_json_dump(v, flags, out) == TW_OK);
}

/* Parses and dumps once with allocation n failing: each outcome must be
 * the normal one (canonical is the sorted dump, NULL if the input does not
 * parse) or TW_ENOMEM, and nothing may leak. */
static void run_with_failure(const uint8_t *data, size_t size, unsigned long n,
                             const tw_buf *canonical) {
  long live = tw_alloc_live();
  json_t *v = NULL;
  tw_err err;
  tw_err_init(&err);
  tw_alloc_fail_at(n, false);
  int rc = tw_json_parse((const char *)data, size, "fuzz", &v, &err);
  bool fired = tw_alloc_failure_fired();
  tw_alloc_fail_at(0, false);
  if (fired && rc == TW_ENOMEM)
    CHECK(v == NULL && err.code == TW_ENOMEM);
  else
    CHECK(rc == (canonical != NULL ? TW_OK : TW_EPARSE));
  if (rc == TW_OK) {
    tw_buf b = TW_BUF_INIT;
    tw_alloc_fail_at(n / 2 + 1, false);
    rc = tw_json_dump(v, TW_JSON_SORT_KEYS, &b);
    fired = tw_alloc_failure_fired();
    tw_alloc_fail_at(0, false);
    if (rc == TW_OK)
      CHECK(b.len == canonical->len &&
            memcmp(b.data, canonical->data, b.len) == 0);
    else
      CHECK(fired && rc == TW_ENOMEM && b.len == 0);
    tw_buf_fini(&b);
    json_decref(v);
  }
  CHECK(tw_alloc_live() == live);
}

/* Differential check against jansson's own parser, an independent
 * implementation of the same grammar: both must accept the same documents
 * and build equal values. Our parser is stricter in one documented way: it
 * caps nesting at TW_JSON_MAX_DEPTH (jansson allows 2048), so a rejection
 * for depth is not compared. And jansson accepts a raw NUL byte between
 * tokens as if it were whitespace (`{"":1\0}`), which RFC 8259 does not
 * allow and we reject, so inputs holding a NUL byte are compared only when
 * we accept them. */
static void compare_with_jansson(const uint8_t *data, size_t size, int rc,
                                 const json_t *ours, const tw_err *err) {
  json_error_t jerr;
  json_t *theirs = json_loadb((const char *)data, size,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (rc == TW_OK) {
    if (theirs == NULL) {
      fprintf(stderr, "accepted by us, rejected by jansson: %s\n", jerr.text);
      abort();
    }
    CHECK(json_equal(ours, theirs));
  } else if (strstr(err->msg, "nesting deeper than") == NULL &&
             memchr(data, 0, size) == NULL && theirs != NULL) {
    fprintf(stderr, "rejected by us (%s), accepted by jansson\n", err->msg);
    abort();
  }
  json_decref(theirs);
}

/* The flat fast path accepts only what the parser accepts, with the same
 * values. */
static void check_flat_value(const tw_json_flat_value *f, const json_t *v,
                             const tw_json_flat_value *items) {
  switch (f->type) {
  case TW_JSON_FLAT_NULL:
    CHECK(json_is_null(v));
    break;
  case TW_JSON_FLAT_TRUE:
    CHECK(json_is_true(v));
    break;
  case TW_JSON_FLAT_FALSE:
    CHECK(json_is_false(v));
    break;
  case TW_JSON_FLAT_INT:
    CHECK(json_is_integer(v) && json_integer_value(v) == f->i &&
          f->d == (double)f->i);
    break;
  case TW_JSON_FLAT_REAL:
    CHECK(json_is_real(v) &&
          memcmp(&f->d, &(double){json_real_value(v)}, sizeof f->d) == 0);
    break;
  case TW_JSON_FLAT_STRING:
    CHECK(json_is_string(v));
    break;
  case TW_JSON_FLAT_ARRAY:
    CHECK(json_is_array(v) && json_array_size(v) == f->n);
    for (size_t k = 0; k < f->n; k++)
      check_flat_value(&items[f->first + k], json_array_get(v, k), items);
    break;
  }
}

static void check_flat(const uint8_t *data, size_t size, int rc,
                       const json_t *v) {
  tw_json_flat_member m[16];
  tw_json_flat_value items[64];
  size_t nm = 0;
  if (tw_json_scan_flat((const char *)data, size, m, 16, &nm, items, 64) !=
      TW_OK)
    return;
  CHECK(rc == TW_OK && json_is_object(v) && json_object_size(v) == nm);
  for (size_t i = 0; i < nm; i++) {
    const json_t *mv = json_object_getn(v, m[i].key, m[i].key_len);
    CHECK(mv != NULL);
    check_flat_value(&m[i].v, mv, items);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  json_t *v = NULL;
  tw_err err;
  tw_err_init(&err);
  tw_buf b1 = TW_BUF_INIT;
  int rc = tw_json_parse((const char *)data, size, "fuzz", &v, &err);
  compare_with_jansson(data, size, rc, v, &err);
  check_flat(data, size, rc, v);
  if (rc != TW_OK) {
    CHECK(rc == TW_EPARSE && v == NULL);
    check_err(rc, &err);
    CHECK(strncmp(err.msg, "fuzz:", 5) == 0);
    CHECK(strstr(err.msg, ": error: ") != NULL);
  } else {
    tw_buf b2 = TW_BUF_INIT, pretty = TW_BUF_INIT;
    dump_or_die(v, TW_JSON_SORT_KEYS, &b1);
    json_t *v2 = NULL;
    tw_err_init(&err);
    rc = tw_json_parse(b1.data, b1.len, "dump", &v2, &err);
    if (rc != TW_OK) {
      fprintf(stderr, "dump does not parse: %s\n%s\n", err.msg, b1.data);
      abort();
    }
    dump_or_die(v2, TW_JSON_SORT_KEYS, &b2);
    CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);
    CHECK(json_equal(v, v2));

    dump_or_die(v, TW_JSON_PRETTY, &pretty);
    json_t *v3 = NULL;
    CHECK(tw_json_parse(pretty.data, pretty.len, NULL, &v3, NULL) == TW_OK);
    CHECK(json_equal(v, v3));
    json_decref(v3);

    if (json_is_object(v))
      exercise_object(v);
    json_decref(v2);
    tw_buf_fini(&b2);
    tw_buf_fini(&pretty);
    json_decref(v);
  }
  if (size > 0 && size <= 4096)
    run_with_failure(data, size, 1 + data[size - 1] % 32u,
                     rc == TW_OK ? &b1 : NULL);
  tw_buf_fini(&b1);
  CHECK(tw_alloc_live() == live);
  return 0;
}
