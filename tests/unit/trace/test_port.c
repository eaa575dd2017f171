/*
 * test_port.c - port channels: the generated schemas, both encodings
 * (exact round trips, non-finite values, a decimal-comma locale), the
 * decoder's errors, and port samples through a whole trace.
 */
#include <locale.h>
#include <math.h>

#include "trace_int.h"
#include "trace_test.h"

static void schemas_describe_the_port(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  const char *name, *se, *me;
  assert_int_equal(tw__trace_port_schema("N/m", 3, TW_TRACE_ENCODING_JSON, &b,
                                         &name, &se, &me),
                   TW_OK);
  assert_string_equal(name, "twin.PortSample");
  assert_string_equal(se, "jsonschema");
  assert_string_equal(me, "json");
  json_t *j = NULL;
  assert_int_equal(tw_json_parse(b.data, b.len, "schema", &j, NULL), TW_OK);
  json_t *value = json_object_get(json_object_get(j, "properties"), "value");
  assert_int_equal(json_integer_value(json_object_get(value, "minItems")), 3);
  assert_int_equal(json_integer_value(json_object_get(value, "maxItems")), 3);
  assert_non_null(
      strstr(json_string_value(json_object_get(value, "description")), "N/m"));
  assert_string_equal(json_string_value(json_object_get(j, "type")), "object");
  json_decref(j);

  /* A unit needing JSON escapes stays valid JSON. */
  tw_buf_reset(&b);
  assert_int_equal(tw__trace_port_schema("\"x\"\n", 1, TW_TRACE_ENCODING_JSON,
                                         &b, &name, &se, &me),
                   TW_OK);
  assert_int_equal(tw_json_parse(b.data, b.len, "schema", &j, NULL), TW_OK);
  json_decref(j);

  tw_buf_reset(&b);
  assert_int_equal(
      tw__trace_port_schema("", 2, TW_TRACE_ENCODING_CDR, &b, &name, &se, &me),
      TW_OK);
  assert_string_equal(name, "twin_msgs/msg/PortSample");
  assert_string_equal(se, "ros2msg");
  assert_string_equal(me, "cdr");
  assert_string_equal(b.data, "# A sample of a Twin port: 2 values in "
                              "dimensionless.\n"
                              "float64 t # seconds\n"
                              "float64[] value\n");
  tw_buf_fini(&b);
}

static const double tricky[] = {
    0.0,         -0.0, 0.1,  1.0 / 3.0, 1e308,    -1e-308,  4.9e-324,
    123456789.0, 1e21, -2.5, NAN,       INFINITY, -INFINITY};
#define NTRICKY (sizeof tricky / sizeof tricky[0])

static void encode_decode(tw_trace_encoding enc, const char *menc) {
  uint8_t buf[2048];
  size_t max = tw__trace_port_body_max(enc, NTRICKY);
  assert_true(max <= sizeof buf);
  size_t len = tw__trace_port_encode(enc, 1.25, tricky, NTRICKY, buf);
  assert_true(len <= max);
  tw_trace_channel ch = {1, 1, "/p", menc, NULL, 0, 0, false};
  double t, v[NTRICKY];
  size_t n;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_trace_port_decode(&ch, buf, len, &t, v, NTRICKY, &n, &err), TW_OK);
  assert_int_equal(n, NTRICKY);
  assert_true(t == 1.25);
  for (size_t i = 0; i < NTRICKY; i++) {
    if (isfinite(tricky[i])) {
      assert_memory_equal(&v[i], &tricky[i], 8); /* bit-exact, -0 too */
    } else if (enc == TW_TRACE_ENCODING_CDR) {
      assert_true(isnan(tricky[i]) ? isnan(v[i]) : v[i] == tricky[i]);
    } else {
      assert_true(isnan(v[i])); /* null */
    }
  }
  /* Too little room: ERANGE with the count. */
  tw_err_init(&err);
  assert_int_equal(tw_trace_port_decode(&ch, buf, len, &t, v, 2, &n, &err),
                   TW_ERANGE);
  assert_int_equal(n, NTRICKY);
}

static void encodings_round_trip(void **state) {
  (void)state;
  encode_decode(TW_TRACE_ENCODING_JSON, "json");
  encode_decode(TW_TRACE_ENCODING_CDR, "cdr");
  uint8_t buf[256];
  double v[2] = {0.5, NAN};
  size_t len = tw__trace_port_encode(TW_TRACE_ENCODING_JSON, 2.0, v, 2, buf);
  assert_int_equal(len, strlen("{\"t\":2,\"value\":[0.5,null]}"));
  assert_memory_equal(buf, "{\"t\":2,\"value\":[0.5,null]}", len);
  len = tw__trace_port_encode(TW_TRACE_ENCODING_CDR, 2.0, v, 1, buf);
  assert_int_equal(len, 28);
  assert_memory_equal(buf, "\x00\x01\x00\x00", 4);
  assert_int_equal(tw__get_u32(buf + 12), 1);
}

/* A locale with a decimal comma does not leak into the JSON. */
static void json_ignores_the_locale(void **state) {
  (void)state;
  const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                           "ps_AF.UTF-8"};
  const char *got = NULL;
  for (size_t i = 0; got == NULL && i < 4; i++)
    got = setlocale(LC_NUMERIC, locales[i]);
  if (got == NULL)
    skip(); /* no such locale installed */
  uint8_t buf[256];
  double v[2] = {0.5, -1.25e-7};
  size_t len = tw__trace_port_encode(TW_TRACE_ENCODING_JSON, 1.5, v, 2, buf);
  setlocale(LC_NUMERIC, "C");
  assert_int_equal(len, strlen("{\"t\":1.5,\"value\":[0.5,-1.25e-07]}"));
  assert_memory_equal(buf, "{\"t\":1.5,\"value\":[0.5,-1.25e-07]}", len);
}

static void bad_samples_are_refused(void **state) {
  (void)state;
  tw_trace_channel js = {1, 1, "/p", "json", NULL, 0, 0, false};
  tw_trace_channel cdr = {1, 1, "/p", "cdr", NULL, 0, 0, false};
  tw_trace_channel other = {1, 1, "/p", "protobuf", NULL, 0, 0, false};
  double t, v[4];
  size_t n;
  const char *bad_json[] = {"",
                            "[1]",
                            "{\"t\":1}",
                            "{\"value\":[]}",
                            "{\"t\":\"1\",\"value\":[]}",
                            "{\"t\":1,\"value\":[1,\"x\"]}",
                            "{\"t\":1,\"value\":{}}",
                            "{\"t\":1,"};
  for (size_t i = 0; i < sizeof bad_json / sizeof *bad_json; i++) {
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_trace_port_decode(&js, bad_json[i], strlen(bad_json[i]),
                                          &t, v, 4, &n, &err),
                     TW_EPARSE);
    assert_int_equal(err.code, TW_EPARSE);
  }
  uint8_t buf[64] = {0, 1, 0, 0};
  assert_int_equal(tw_trace_port_decode(&cdr, buf, 19, &t, v, 4, &n, NULL),
                   TW_EPARSE);
  tw__put_u32(buf + 12, 2);
  assert_int_equal(tw_trace_port_decode(&cdr, buf, 28, &t, v, 4, &n, NULL),
                   TW_EPARSE); /* two values announced, one present */
  assert_int_equal(tw_trace_port_decode(&cdr, buf, 36, &t, v, 4, &n, NULL),
                   TW_OK);
  buf[1] = 0; /* big-endian */
  assert_int_equal(tw_trace_port_decode(&cdr, buf, 36, &t, v, 4, &n, NULL),
                   TW_EPARSE);
  assert_int_equal(tw_trace_port_decode(&other, buf, 36, &t, v, 4, &n, NULL),
                   TW_ENOTSUP);
}

static void ports_through_a_trace(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 2048;
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_OK);
  tw_trace_port ports[4] = {
      {"/a/x", "m", 3}, {"/b/x", "m", 3}, {"/a/f", "N", 1}, {"/a/x2", "m", 3}};
  uint16_t ch[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(tw_trace_writer_add_port(w, &ports[i],
                                              i == 3 ? TW_TRACE_ENCODING_CDR
                                                     : TW_TRACE_ENCODING_JSON,
                                              &ch[i], NULL),
                     TW_OK);
  for (int k = 0; k < 500; k++)
    for (int i = 0; i < 4; i++) {
      double v[3] = {k, i, sin(k * 0.1)};
      assert_int_equal(tw_trace_writer_write_port(w, ch[i], (uint64_t)k * 100,
                                                  k * 1e-4, v, ports[i].size,
                                                  NULL),
                       TW_OK);
    }
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);

  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  /* Equal schemas are shared: (m, 3, json), (N, 1, json), (m, 3, cdr). */
  assert_int_equal(tw_trace_reader_schema_count(r), 3);
  const tw_trace_channel *c0 = tw_trace_reader_channel_get(r, ch[0]);
  const tw_trace_channel *c1 = tw_trace_reader_channel_get(r, ch[1]);
  const tw_trace_channel *c3 = tw_trace_reader_channel_get(r, ch[3]);
  assert_int_equal(c0->schema_id, c1->schema_id);
  assert_int_not_equal(c0->schema_id, c3->schema_id);
  assert_string_equal(c0->metadata[0].key, "twin.unit");
  assert_string_equal(c0->metadata[0].value, "m");
  assert_string_equal(c0->metadata[1].key, "twin.size");
  assert_string_equal(c0->metadata[1].value, "3");
  assert_string_equal(c3->message_encoding, "cdr");
  assert_string_equal(tw_trace_reader_schema_get(r, c3->schema_id)->encoding,
                      "ros2msg");
  tw_trace_iter *it = NULL;
  assert_int_equal(tw_trace_iter_new(r, NULL, &it, NULL), TW_OK);
  tw_trace_message m;
  size_t count = 0;
  int got;
  while ((got = tw_trace_iter_next(it, &m, NULL)) == 1) {
    const tw_trace_channel *c = tw_trace_reader_channel_get(r, m.channel_id);
    int i = m.channel_id - ch[0];
    int k = (int)(m.log_time / 100);
    double t, v[3];
    size_t n;
    assert_int_equal(tw_trace_port_decode(c, m.data, m.len, &t, v, 3, &n, NULL),
                     TW_OK);
    assert_int_equal(n, ports[i].size);
    assert_true(t == k * 1e-4);
    assert_true(v[0] == k);
    if (n == 3)
      assert_true(v[1] == i && v[2] == sin(k * 0.1));
    assert_int_equal(m.sequence, k); /* per-channel counter */
    assert_int_equal(m.publish_time, m.log_time);
    count++;
  }
  assert_int_equal(got, 0);
  assert_int_equal(count, 2000);
  tw_trace_iter_free(it);
  tw_trace_reader_close(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(schemas_describe_the_port), TW_TEST(encodings_round_trip),
      TW_TEST(json_ignores_the_locale),   TW_TEST(bad_samples_are_refused),
      TRACE_TEST(ports_through_a_trace),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
