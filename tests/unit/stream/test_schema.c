/*
 * test_schema.c - schema enforcement of live records: fields built and
 * refused, writers' schemas (JSON Schema, Kafka Connect) bound with their
 * unit conversions or refused naming the field, the Confluent wire
 * format split, records decoded (plain, Connect envelope, bound) with
 * every value checked, and allocation failures.
 */
#include <math.h>
#include <string.h>

#include "tw_test.h"

static const tw_stream_field rig_fields[] = {
    {"force", TW_F64, 1, "N", -1000, 1000},
    {"pos", TW_F64, 3, "m", NAN, NAN},
    {"count", TW_I32, 1, NULL, 0, NAN},
    {"ok", TW_BOOL, 1, NULL, NAN, NAN},
};

static tw_stream_schema *rig(void) {
  tw_stream_schema_opts o = {"t", TW_STREAM_TIME_MS, false};
  tw_stream_schema *s = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_stream_schema_new(rig_fields, 4, &o, &s, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return s;
}

static int decode(tw_stream_schema *s, const tw_stream_binding *b,
                  const char *json, double *v, tw_stream_meta *m, tw_err *err) {
  tw_err_init(err);
  return tw_stream_decode(s, b, json, strlen(json), v, m, err);
}

static void fields(void **state) {
  (void)state;
  tw_stream_schema *s = rig();
  assert_int_equal(tw_stream_schema_width(s), 6);
  assert_int_equal(tw_stream_schema_offset(s, 1), 1);
  assert_int_equal(tw_stream_schema_offset(s, 2), 4);
  tw_stream_schema_free(s);

  struct {
    tw_stream_field f[2];
    size_t n;
    const char *msg;
  } bad[] = {
      {{{"", TW_F64, 1, NULL, NAN, NAN}}, 1, "a name of 1 to"},
      {{{"a", TW_F64, 0, NULL, NAN, NAN}}, 1, "size 0"},
      {{{"a", TW_F64, 1, "furlongs", NAN, NAN}}, 1, "stream field 'a'"},
      {{{"a", TW_F64, 1, NULL, 2, 1}}, 1, "is empty"},
      {{{"a", TW_F64, 1, NULL, NAN, NAN}, {"a", TW_I32, 1, NULL, NAN, NAN}},
       2,
       "given twice"},
      {{{"a", (tw_dtype)9, 1, NULL, NAN, NAN}}, 1, "unknown dtype"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_stream_schema_new(bad[i].f, bad[i].n, NULL, &s, &err),
                     TW_EINVAL);
    assert_null(s);
    if (strstr(err.msg, bad[i].msg) == NULL)
      fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
  }
}

static void plain_records(void **state) {
  (void)state;
  tw_stream_schema *s = rig();
  double v[6];
  tw_stream_meta m;
  tw_err err;
  assert_int_equal(decode(s, NULL,
                          "{\"t\": 1700000000123, \"force\": 2.5, \"pos\": "
                          "[1, 2, 3.5], \"count\": 7, \"ok\": true, "
                          "\"extra\": \"ignored\"}",
                          v, &m, &err),
                   TW_OK);
  assert_true(m.has_time);
  assert_true(m.time_ns == 1700000000123000000LL);
  double want[6] = {2.5, 1, 2, 3.5, 7, 1};
  assert_memory_equal(v, want, sizeof want);
  /* No time: none (it is not required). */
  assert_int_equal(decode(s, NULL,
                          "{\"force\": 0, \"pos\": [0,0,0], \"count\": 0, "
                          "\"ok\": false}",
                          v, &m, &err),
                   TW_OK);
  assert_false(m.has_time);

  struct {
    const char *json;
    int rc;
    const char *msg;
  } bad[] = {
      {"{\"force\": 1", TW_EPARSE, "record:1:"},
      {"[1, 2]", TW_EVALIDATE, "not a JSON object"},
      {"{\"pos\": [0,0,0], \"count\": 0, \"ok\": true}", TW_EVALIDATE,
       "no field 'force'"},
      {"{\"force\": \"1\", \"pos\": [0,0,0], \"count\": 0, \"ok\": true}",
       TW_EVALIDATE, "'force' is not a number"},
      {"{\"force\": 1e6, \"pos\": [0,0,0], \"count\": 0, \"ok\": true}",
       TW_EVALIDATE, "outside [-1000, 1000] N"},
      {"{\"force\": 1, \"pos\": [0,0], \"count\": 0, \"ok\": true}",
       TW_EVALIDATE, "'pos' is not an array of 3"},
      {"{\"force\": 1, \"pos\": [0,null,0], \"count\": 0, \"ok\": true}",
       TW_EVALIDATE, "'pos[1]' is not a number"},
      {"{\"force\": 1, \"pos\": [0,0,0], \"count\": 1.5, \"ok\": true}",
       TW_EVALIDATE, "'count' = 1.5 is not an i32"},
      {"{\"force\": 1, \"pos\": [0,0,0], \"count\": 3000000000, \"ok\": "
       "true}",
       TW_EVALIDATE, "is not an i32"},
      {"{\"force\": 1, \"pos\": [0,0,0], \"count\": -1, \"ok\": true}",
       TW_EVALIDATE, "outside [0, nan]"},
      {"{\"force\": 1, \"pos\": [0,0,0], \"count\": 0, \"ok\": 1}",
       TW_EVALIDATE, "'ok' is not a boolean"},
      {"{\"t\": \"now\", \"force\": 1, \"pos\": [0,0,0], \"count\": 0, "
       "\"ok\": true}",
       TW_EVALIDATE, "time 't' is not a number"},
      {"{\"t\": 1e300, \"force\": 1, \"pos\": [0,0,0], \"count\": 0, "
       "\"ok\": true}",
       TW_EVALIDATE, "out of range"},
      {"{\"force\": 1, \"force\": 2}", TW_EPARSE, "duplicate"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = decode(s, NULL, bad[i].json, v, &m, &err);
    if (rc != bad[i].rc || strstr(err.msg, bad[i].msg) == NULL)
      fail_msg("case %zu: rc %d '%s', wanted %d '%s'", i, rc, err.msg,
               bad[i].rc, bad[i].msg);
  }
  tw_stream_schema_free(s);
}

static void json_schema_binding(void **state) {
  (void)state;
  tw_stream_schema *s = rig();
  const char *good =
      "{\"type\": \"object\", \"properties\": {"
      "\"force\": {\"type\": \"number\", \"unit\": \"kN\"},"
      "\"pos\": {\"type\": \"array\", \"items\": {\"type\": \"number\"},"
      "          \"minItems\": 3, \"maxItems\": 3, \"x-unit\": \"mm\"},"
      "\"count\": {\"type\": \"integer\"},"
      "\"ok\": {\"type\": \"boolean\"}, \"other\": {}}}";
  tw_stream_binding *b = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_stream_binding_new(s, TW_STREAM_JSON_SCHEMA, good,
                                         strlen(good), &b, &err),
                   TW_OK);
  double v[6];
  tw_stream_meta m;
  assert_int_equal(decode(s, b,
                          "{\"force\": 0.5, \"pos\": [1000, 250, -10], "
                          "\"count\": 3, \"ok\": false}",
                          v, &m, &err),
                   TW_OK);
  assert_true(fabs(v[0] - 500) < 1e-12);
  assert_true(fabs(v[1] - 1) < 1e-15 && fabs(v[2] - 0.25) < 1e-15);
  assert_true(fabs(v[3] + 0.01) < 1e-15);
  /* Ranges apply after conversion: 2 kN is 2000 N. */
  assert_int_equal(decode(s, b,
                          "{\"force\": 2, \"pos\": [0,0,0], \"count\": 3, "
                          "\"ok\": false}",
                          v, &m, &err),
                   TW_EVALIDATE);
  assert_non_null(strstr(err.msg, "= 2000 is outside"));
  tw_stream_binding_free(b);

  struct {
    const char *schema;
    const char *msg;
  } bad[] = {
      {"{\"type\": \"array\"}", "does not describe an object"},
      {"{\"type\": \"object\", \"properties\": {}}",
       "field 'force': not a property"},
      {"{\"type\": \"object\", \"properties\": {\"force\": {\"type\": "
       "\"string\"}}}",
       "does not give a number"},
      {"{\"type\": \"object\", \"properties\": {\"force\": {\"type\": "
       "\"number\", \"unit\": \"m\"}}}",
       "field 'force': unit mismatch"},
      {"{\"type\": \"object\", \"properties\": {\"force\": {\"type\": "
       "\"number\"}, \"pos\": {\"type\": \"array\", \"items\": {\"type\": "
       "\"number\"}, \"minItems\": 2, \"maxItems\": 2}}}",
       "hold 2 to 2 items, the port 3"},
      {"{\"type\": \"object\", \"properties\": {\"force\": {\"type\": "
       "\"number\"}, \"pos\": {\"type\": \"array\", \"items\": {\"type\": "
       "\"number\"}}}}",
       "does not fix the array's length"},
      {"{\"type\": \"object\", \"properties\": {\"force\": {\"type\": "
       "\"number\"}, \"pos\": {\"type\": \"array\", \"items\": {\"type\": "
       "\"number\"}, \"minItems\": 3, \"maxItems\": 3}, \"count\": "
       "{\"type\": \"number\"}}}",
       "field 'count': the writer's schema does not give an integer"},
      {"{\"type\": \"object\", \"properties\": {\"force\": {\"type\": "
       "\"number\"}, \"pos\": {\"type\": \"array\", \"items\": {\"type\": "
       "\"number\"}, \"minItems\": 3, \"maxItems\": 3}, \"count\": "
       "{\"type\": \"integer\", \"unit\": \"s\"}}}",
       "the twin's port has none"},
      {"{\"type\": ", "the writer's schema:1:"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_err_init(&err);
    int rc = tw_stream_binding_new(s, TW_STREAM_JSON_SCHEMA, bad[i].schema,
                                   strlen(bad[i].schema), &b, &err);
    assert_true(rc == TW_EVALIDATE || rc == TW_EPARSE);
    assert_null(b);
    if (strstr(err.msg, bad[i].msg) == NULL)
      fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
  }
  tw_stream_schema_free(s);
}

static void connect_envelope(void **state) {
  (void)state;
  tw_stream_schema *s = rig();
  const char *rec =
      "{\"schema\": {\"type\": \"struct\", \"fields\": ["
      "{\"field\": \"force\", \"type\": \"double\", \"parameters\": "
      "{\"unit\": \"kN\"}},"
      "{\"field\": \"pos\", \"type\": \"array\", \"items\": {\"type\": "
      "\"float\"}},"
      "{\"field\": \"count\", \"type\": \"int32\"},"
      "{\"field\": \"ok\", \"type\": \"boolean\"}]},"
      " \"payload\": {\"force\": 0.25, \"pos\": [1, 2, 3], \"count\": 1, "
      "\"ok\": true, \"t\": 5}}";
  double v[6];
  tw_stream_meta m;
  tw_err err;
  assert_int_equal(decode(s, NULL, rec, v, &m, &err), TW_OK);
  assert_true(fabs(v[0] - 250) < 1e-12);
  assert_true(m.has_time && m.time_ns == 5000000);
  /* The same envelope with an int64 where a double is expected is fine;
   * a string type is not. */
  const char *bad = "{\"schema\": {\"type\": \"struct\", \"fields\": ["
                    "{\"field\": \"force\", \"type\": \"string\"}]},"
                    " \"payload\": {\"force\": \"x\"}}";
  assert_int_equal(decode(s, NULL, bad, v, &m, &err), TW_EVALIDATE);
  assert_non_null(strstr(err.msg, "field 'force'"));
  const char *missing = "{\"schema\": {\"type\": \"struct\", \"fields\": []},"
                        " \"payload\": {}}";
  assert_int_equal(decode(s, NULL, missing, v, &m, &err), TW_EVALIDATE);
  assert_non_null(strstr(err.msg, "not a field of the writer's schema"));
  tw_stream_schema_free(s);
}

static void wire_format(void **state) {
  (void)state;
  const unsigned char rec[] = {0, 0, 0, 1, 2, '{', '}'};
  uint32_t id = 0;
  const void *p = NULL;
  size_t n = 0;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_stream_wire_split(rec, sizeof rec, &id, &p, &n, &err),
                   TW_OK);
  assert_int_equal(id, 258);
  assert_int_equal(n, 2);
  assert_ptr_equal(p, rec + 5);
  assert_int_equal(tw_stream_wire_split(rec, 4, &id, &p, &n, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "5-byte header"));
  const unsigned char other[] = {'{', 0, 0, 0, 1, '}'};
  tw_err_init(&err);
  assert_int_equal(tw_stream_wire_split(other, sizeof other, &id, &p, &n, &err),
                   TW_EPARSE);
  assert_non_null(strstr(err.msg, "magic byte 123"));
}

static int build_and_bind(void) {
  tw_stream_schema *s = NULL;
  tw_stream_binding *b = NULL;
  int rc = tw_stream_schema_new(rig_fields, 4, NULL, &s, NULL);
  const char *js =
      "{\"type\": \"object\", \"properties\": {"
      "\"force\": {\"type\": \"number\", \"unit\": \"kN\"},"
      "\"pos\": {\"type\": \"array\", \"items\": {\"type\": \"number\"},"
      "\"minItems\": 3, \"maxItems\": 3},"
      "\"count\": {\"type\": \"integer\"}, \"ok\": {\"type\": \"boolean\"}}}";
  if (rc == TW_OK)
    rc = tw_stream_binding_new(s, TW_STREAM_JSON_SCHEMA, js, strlen(js), &b,
                               NULL);
  double v[6];
  const char *rec = "{\"force\": 0.5, \"pos\": [1, 2, 3], \"count\": 3, "
                    "\"ok\": false}";
  if (rc == TW_OK)
    rc = tw_stream_decode(s, b, rec, strlen(rec), v, NULL, NULL);
  tw_stream_binding_free(b);
  tw_stream_schema_free(s);
  return rc;
}

static void pointer_fields(void **state) {
  (void)state;
  static const tw_stream_field f[] = {
      {"/outputs/force", TW_F64, 1, "N", NAN, NAN},
      {"/a~1b/c~0d", TW_I32, 1, NULL, NAN, NAN},
  };
  tw_stream_schema *s = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_stream_schema_new(f, 2, NULL, &s, &err), TW_OK);
  double v[2];
  assert_int_equal(
      decode(s, NULL,
             "{\"outputs\":{\"force\":2.5},\"a/b\":{\"c~d\":7},\"force\":1}", v,
             NULL, &err),
      TW_OK);
  assert_true(v[0] == 2.5 && v[1] == 7);
  assert_int_equal(decode(s, NULL,
                          "{\"outputs\":{\"f\":1},\"a/b\":{\"c~d\":7}}", v,
                          NULL, &err),
                   TW_EVALIDATE);
  assert_non_null(strstr(err.msg, "no field '/outputs/force'"));
  /* A JSON Schema and a Connect schema with nested objects bind. */
  static const char js[] =
      "{\"type\":\"object\",\"properties\":{\"outputs\":{\"type\":"
      "\"object\",\"properties\":{\"force\":{\"type\":\"number\",\"unit\":"
      "\"kN\"}}},\"a/b\":{\"type\":\"object\",\"properties\":{\"c~d\":{"
      "\"type\":\"integer\"}}}}}";
  tw_stream_binding *b = NULL;
  tw_err_init(&err);
  assert_int_equal(
      tw_stream_binding_new(s, TW_STREAM_JSON_SCHEMA, js, strlen(js), &b, &err),
      TW_OK);
  assert_int_equal(decode(s, b,
                          "{\"outputs\":{\"force\":2.5},\"a/b\":{\"c~d\":7}}",
                          v, NULL, &err),
                   TW_OK);
  assert_true(v[0] == 2500);
  tw_stream_binding_free(b);
  static const char cs[] =
      "{\"type\":\"struct\",\"fields\":[{\"field\":\"outputs\",\"type\":"
      "\"struct\",\"fields\":[{\"field\":\"force\",\"type\":\"double\"}]}"
      ",{\"field\":\"a/b\",\"type\":\"struct\",\"fields\":[{\"field\":"
      "\"c~d\",\"type\":\"int32\"}]}]}";
  tw_err_init(&err);
  assert_int_equal(
      tw_stream_binding_new(s, TW_STREAM_CONNECT, cs, strlen(cs), &b, &err),
      TW_OK);
  tw_stream_binding_free(b);
  tw_stream_schema_free(s);
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(build_and_bind());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(fields),
      TW_TEST(plain_records),
      TW_TEST(json_schema_binding),
      TW_TEST(connect_envelope),
      TW_TEST(wire_format),
      TW_TEST(pointer_fields),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
