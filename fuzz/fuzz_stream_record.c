/*
 * fuzz_stream_record.c - libFuzzer target for schema enforcement of live
 * records (src/stream/schema.c).
 *
 * The first byte picks what the rest is: 0, a record decoded against a
 * fixed set of fields (plain JSON or a Kafka Connect envelope); 1, a
 * record in the Confluent wire format, split and decoded; 2 and 3, a
 * writer's schema (JSON Schema, Connect) bound to the fields and then
 * used to decode a fixed record. Checks: a decoded record's values are
 * finite, inside their fields' ranges and held by their dtypes; a failure
 * carries a message; nothing leaks. Any broken invariant aborts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_stream_record: check failed at line %d: %s\n",     \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const tw_stream_field fields[] = {
    {"force", TW_F64, 1, "N", -1000, 1000},
    {"pos", TW_F32, 3, "m", NAN, NAN},
    {"count", TW_I32, 1, NULL, 0, NAN},
    {"ok", TW_BOOL, 1, NULL, NAN, NAN},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static void check_values(const double *v) {
  for (size_t i = 0; i < NFIELDS; i++) {
    size_t off = i == 0 ? 0 : i == 1 ? 1 : i == 2 ? 4 : 5;
    for (size_t k = 0; k < fields[i].size; k++) {
      double x = v[off + k];
      CHECK(isfinite(x));
      CHECK(tw_dtype_holds(fields[i].dtype, x));
      CHECK(isnan(fields[i].min) || x >= fields[i].min);
      CHECK(isnan(fields[i].max) || x <= fields[i].max);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  long live = tw_alloc_live();
  tw_stream_schema_opts o = {"t", TW_STREAM_TIME_MS, false};
  tw_stream_schema *s = NULL;
  if (tw_stream_schema_new(fields, NFIELDS, &o, &s, NULL) != TW_OK)
    abort();
  CHECK(tw_stream_schema_width(s) == 6);
  const uint8_t mode = data[0] % 4;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  double v[6];
  tw_stream_meta m;
  tw_err err;
  tw_err_init(&err);
  int rc;
  if (mode == 0) {
    rc = tw_stream_decode(s, NULL, rest, n, v, &m, &err);
  } else if (mode == 1) {
    uint32_t id;
    const void *p;
    size_t pn;
    rc = tw_stream_wire_split(rest, n, &id, &p, &pn, &err);
    if (rc == TW_OK) {
      CHECK(pn == n - 5 && (const char *)p == rest + 5);
      rc = tw_stream_decode(s, NULL, p, pn, v, &m, &err);
    }
  } else {
    tw_stream_binding *b = NULL;
    rc = tw_stream_binding_new(
        s, mode == 2 ? TW_STREAM_JSON_SCHEMA : TW_STREAM_CONNECT, rest, n, &b,
        &err);
    CHECK((rc == TW_OK) == (b != NULL));
    if (rc == TW_OK) {
      static const char rec[] = "{\"force\": 0.5, \"pos\": [1, 2, 3], "
                                "\"count\": 3, \"ok\": false, \"t\": 1}";
      tw_err_init(&err);
      rc = tw_stream_decode(s, b, rec, sizeof rec - 1, v, &m, &err);
    }
    tw_stream_binding_free(b);
  }
  if (rc == TW_OK)
    check_values(v);
  else
    CHECK(err.msg[0] != '\0');
  tw_stream_schema_free(s);
  CHECK(tw_alloc_live() == live);
  return 0;
}
