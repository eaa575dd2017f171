/*
 * twin/stream.h - what live records must be before they reach a twin:
 * schema enforcement for the stream connectors (Kafka, MQTT).
 *
 * A twin declares what it reads from a source as fields: a name, a
 * dtype, a size, a unit and an optional range (the ports of its
 * twin-compose topics). A record is a JSON object carrying those fields
 * (extra members are ignored) and, optionally, its event time. It comes
 * in one of three framings:
 *
 *  - plain JSON: the values are in the fields' own units;
 *  - Kafka Connect's JsonConverter envelope, {"schema": S, "payload": P}
 *    with S a Connect struct schema (fields with types double, float,
 *    int64, int32, int8, int16, boolean or array of those, optional
 *    "parameters": {"unit": U}): S is checked against the fields and P
 *    decoded with it;
 *  - the Confluent wire format: byte 0, a big-endian 32-bit schema id,
 *    then the JSON payload; the id names a JSON Schema held by a schema
 *    registry, which the caller binds once (tw_stream_binding_new) and
 *    passes to tw_stream_decode.
 *
 * A schema's property (JSON Schema) or field (Connect) may declare a unit
 * ("unit" or "x-unit" in JSON Schema, parameters.unit in Connect): values
 * are converted into the field's unit (mm into m, degC into K); a unit of
 * another dimension is refused when the schema is bound. Decoding checks
 * every value: present, of the declared kind, of the field's size, held
 * by its dtype (integers, bool, f32 range) and, after conversion, inside
 * its range. Any failure is TW_EVALIDATE (TW_EPARSE for malformed JSON or
 * framing) with a message naming the field, which connectors put in the
 * dead letter's headers.
 *
 * Thread safety: schemas and bindings are immutable once built and may be
 * shared by threads.
 */
#ifndef TWIN_STREAM_H
#define TWIN_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/dtype.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* The most fields of one schema, and the largest array size. */
#define TW_STREAM_FIELDS_MAX 256
#define TW_STREAM_SIZE_MAX 65536

typedef struct tw_stream_field {
  /* Member of the record object (1 to 128 bytes), or, starting with '/',
   * a JSON Pointer (RFC 6901) into nested objects: "/outputs/force". */
  const char *name;
  tw_dtype dtype;
  size_t size;      /* 1: a scalar; > 1: an array of exactly size values */
  const char *unit; /* the field's unit (twin/units.h); NULL or "": none */
  double min, max;  /* inclusive range of every value; NaN: unbounded */
} tw_stream_field;

typedef enum tw_stream_time_unit {
  TW_STREAM_TIME_NS = 0,
  TW_STREAM_TIME_US,
  TW_STREAM_TIME_MS,
  TW_STREAM_TIME_S
} tw_stream_time_unit;

typedef struct tw_stream_schema_opts {
  /* Member holding the record's event time (NULL: none; records then
   * take their transport's timestamp), a number in time_unit since the
   * Unix epoch. */
  const char *time_field;
  tw_stream_time_unit time_unit;
  /* A record without the time member is an error (else it has none). */
  bool time_required;
} tw_stream_schema_opts;

typedef struct tw_stream_schema tw_stream_schema;

/* Builds a schema of n fields (copied). TW_EINVAL naming the field for
 * an empty, long or repeated name, a size of 0 or beyond
 * TW_STREAM_SIZE_MAX, an unknown dtype, a unit that does not parse, a
 * range with min > max; opts may be NULL. */
TW_API int tw_stream_schema_new(const tw_stream_field *fields, size_t n,
                                const tw_stream_schema_opts *opts,
                                tw_stream_schema **out, tw_err *err);
TW_API void tw_stream_schema_free(tw_stream_schema *s);
/* Values a decoded record fills: the sum of the fields' sizes. */
TW_API size_t tw_stream_schema_width(const tw_stream_schema *s);
/* Number of fields. */
TW_API size_t tw_stream_schema_nfields(const tw_stream_schema *s);
/* Offset of field i's values in a decoded record (the width for i past
 * the last field). */
TW_API size_t tw_stream_schema_offset(const tw_stream_schema *s, size_t i);

/* --- Bindings: a writer's schema checked against the fields ------------- */

typedef enum tw_stream_schema_kind {
  TW_STREAM_JSON_SCHEMA = 0, /* JSON Schema (draft 7 / 2020-12 subset) */
  TW_STREAM_CONNECT          /* Kafka Connect struct schema */
} tw_stream_schema_kind;

typedef struct tw_stream_binding tw_stream_binding;

/* Checks the writer's schema text (kind) against s and records how each
 * field converts: the schema must describe an object (a struct) with
 * every field, of a compatible kind (numbers for f64/f32, integers for
 * i64/i32, booleans for bool; arrays of exactly the field's size when
 * size > 1, as minItems = maxItems in JSON Schema), in a unit of the same
 * dimension when it names one. TW_EVALIDATE naming the field and the
 * reason; TW_EPARSE for text that is not JSON. */
TW_API int tw_stream_binding_new(const tw_stream_schema *s,
                                 tw_stream_schema_kind kind, const char *text,
                                 size_t len, tw_stream_binding **out,
                                 tw_err *err);
TW_API void tw_stream_binding_free(tw_stream_binding *b);

/* --- Records ------------------------------------------------------------- */

/* Splits Confluent's wire format: data[0] == 0, then a big-endian schema
 * id, then the payload. TW_EPARSE when data is shorter than 5 bytes or
 * the magic byte is not 0. */
TW_API int tw_stream_wire_split(const void *data, size_t len,
                                uint32_t *schema_id, const void **payload,
                                size_t *payload_len, tw_err *err);

/* What a decoded record carries besides its values. */
typedef struct tw_stream_meta {
  bool has_time;
  int64_t time_ns; /* event time, when has_time */
} tw_stream_meta;

/* Decodes one record payload (JSON) into values[0 .. width): with b
 * (the writer's schema, from the wire format's id) its units convert;
 * without, a Connect envelope {"schema","payload"} is bound on the fly,
 * and any other object is read in the fields' own units. meta may be
 * NULL. On failure values may be partly written. */
TW_API int tw_stream_decode(const tw_stream_schema *s,
                            const tw_stream_binding *b, const void *payload,
                            size_t len, double *values, tw_stream_meta *meta,
                            tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_STREAM_H */
