/*
 * port.c - port channels: the schema generated from a port, and the two
 * encodings of a sample (ADR 0005).
 *
 * JSON: {"t":T,"value":[V0,...]} with each number printed by "%.17g",
 * which reads back as the same double (one snprintf per number, about 4x
 * faster than searching for the shortest form), '.' as the decimal point
 * whatever LC_NUMERIC says, -0.0 for negative zero (parsers read "-0" as
 * the integer 0), and null for a non-finite value (JSON has no NaN or
 * infinity; JavaScript's JSON.stringify does the same).
 *
 * CDR: the XCDR1 little-endian serialisation of the ros2msg
 * "float64 t / float64[] value": the 4-byte encapsulation header
 * 00 01 00 00, t at offset 4, the sequence length (uint32) at 12, four
 * bytes of padding so the doubles are 8-aligned relative to the end of the
 * header, then the values: 20 + 8n bytes, bit-exact.
 *
 * The schemas depend only on the encoding, unit and size, so the writer
 * shares one among all ports that agree on them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trace_int.h"
#include "twin/json.h"

#define CDR_HEADER 20      /* encapsulation, t, length, padding */
#define JSON_NUMBER_MAX 26 /* "%.17g" of any double, and a comma */

int tw__trace_port_schema(const char *unit, size_t size,
                          tw_trace_encoding encoding, tw_buf *schema,
                          const char **name, const char **schema_encoding,
                          const char **message_encoding) {
  const char *shown = unit[0] != '\0' ? unit : "dimensionless";
  if (encoding == TW_TRACE_ENCODING_CDR) {
    *name = "twin_msgs/msg/PortSample";
    *schema_encoding = TW_TRACE_SCHEMA_ROS2MSG;
    *message_encoding = TW_TRACE_MESSAGE_CDR;
    /* A newline in the unit would end the comment early. */
    for (const char *c = unit; *c != '\0'; c++)
      if (*c == '\n' || *c == '\r')
        shown = "(unit with a line break)";
    return tw_buf_printf(schema,
                         "# A sample of a Twin port: %zu values in %s.\n"
                         "float64 t # seconds\n"
                         "float64[] value\n",
                         size, shown) == TW_OK
               ? TW_OK
               : TW_ENOMEM;
  }
  *name = "twin.PortSample";
  *schema_encoding = TW_TRACE_SCHEMA_JSONSCHEMA;
  *message_encoding = TW_TRACE_MESSAGE_JSON;
  tw_buf desc = TW_BUF_INIT;
  int rc = tw_buf_printf(&desc,
                         "The %zu values, in %s; null stands for a "
                         "non-finite value.",
                         size, shown);
  if (rc == TW_OK)
    rc = tw_buf_puts(schema, "{\"title\":\"twin.PortSample\","
                             "\"description\":\"A sample of a Twin port.\","
                             "\"type\":\"object\",\"properties\":{"
                             "\"t\":{\"type\":\"number\",\"description\":"
                             "\"Time of the sample in seconds.\"},"
                             "\"value\":{\"type\":\"array\",\"items\":"
                             "{\"type\":[\"number\",\"null\"]},");
  if (rc == TW_OK)
    rc =
        tw_buf_printf(schema, "\"minItems\":%zu,\"maxItems\":%zu,", size, size);
  if (rc == TW_OK)
    rc = tw_buf_puts(schema, "\"description\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(schema, desc.data, desc.len);
  if (rc == TW_OK)
    rc = tw_buf_puts(schema, "}},\"required\":[\"t\",\"value\"]}");
  tw_buf_fini(&desc);
  return rc == TW_OK ? TW_OK : TW_ENOMEM;
}

size_t tw__trace_port_body_max(tw_trace_encoding encoding, size_t size) {
  if (encoding == TW_TRACE_ENCODING_CDR)
    return CDR_HEADER + 8 * size;
  return 16 + JSON_NUMBER_MAX * (size + 1);
}

/* Copies n bytes and returns the end: the pieces of a sample are not
 * NUL-terminated strings. */
static char *put_bytes(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

/* Writes v as a JSON number (or null) at p; returns its length (at most
 * 24). */
static size_t put_number(double v, char *p) {
  if (!isfinite(v)) {
    put_bytes(p, "null", 4);
    return 4;
  }
  if (v == 0 && signbit(v)) { /* "-0" would read back as the integer 0 */
    put_bytes(p, "-0.0", 4);
    return 4;
  }
  char tmp[48];
  int n = snprintf(tmp, sizeof tmp, "%.17g", v);
  size_t len = n > 0 && (size_t)n < sizeof tmp ? (size_t)n : 0;
  /* A locale's decimal separator (a comma, or several bytes) becomes '.';
   * nothing else in "%.17g" output is not a digit, a sign or 'e'. */
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    char c = tmp[i];
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
      p[o++] = c;
      i++;
      continue;
    }
    p[o++] = '.';
    while (i < len && !(tmp[i] >= '0' && tmp[i] <= '9') && tmp[i] != 'e')
      i++;
  }
  return o;
}

size_t tw__trace_port_encode(tw_trace_encoding encoding, double t,
                             const double *value, size_t n, uint8_t *out) {
  if (encoding == TW_TRACE_ENCODING_CDR) {
    uint64_t bits;
    put_bytes((char *)out, "\x00\x01\x00\x00", 4);
    memcpy(&bits, &t, 8);
    tw__put_u64(out + 4, bits);
    tw__put_u32(out + 12, (uint32_t)n);
    memset(out + 16, 0, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out + CDR_HEADER, value, 8 * n);
#else
    for (size_t i = 0; i < n; i++) {
      memcpy(&bits, &value[i], 8);
      tw__put_u64(out + CDR_HEADER + 8 * i, bits);
    }
#endif
    return CDR_HEADER + 8 * n;
  }
  char *p = (char *)out;
  p = put_bytes(p, "{\"t\":", 5);
  p += put_number(t, p);
  p = put_bytes(p, ",\"value\":[", 10);
  for (size_t i = 0; i < n; i++) {
    if (i != 0)
      *p++ = ',';
    p += put_number(value[i], p);
  }
  p = put_bytes(p, "]}", 2);
  return (size_t)(p - (char *)out);
}

/* --- Decoding ----------------------------------------------------------------
 */

static int decode_cdr(const uint8_t *d, size_t len, double *t, double *value,
                      size_t cap, size_t *n, tw_err *err) {
  if (len < CDR_HEADER || d[0] != 0 || d[1] != 1)
    return tw_err_set(err, TW_EPARSE,
                      "port sample: not little-endian CDR of %d+ bytes",
                      CDR_HEADER);
  uint64_t count = tw__get_u32(d + 12);
  if (count != (len - CDR_HEADER) / 8 || (len - CDR_HEADER) % 8 != 0)
    return tw_err_set(err, TW_EPARSE,
                      "port sample: %llu values do not fill %zu bytes",
                      (unsigned long long)count, len);
  *n = (size_t)count;
  if (count > cap)
    return tw_err_set(err, TW_ERANGE, "port sample: %llu values, room for %zu",
                      (unsigned long long)count, cap);
  uint64_t bits = tw__get_u64(d + 4);
  memcpy(t, &bits, 8);
  for (size_t i = 0; i < count; i++) {
    bits = tw__get_u64(d + CDR_HEADER + 8 * i);
    memcpy(&value[i], &bits, 8);
  }
  return TW_OK;
}

static int decode_json(const uint8_t *d, size_t len, double *t, double *value,
                       size_t cap, size_t *n, tw_err *err) {
  json_t *root = NULL;
  tw_err perr;
  tw_err_init(&perr);
  int rc = tw_json_parse((const char *)d, len, "port sample", &root, &perr);
  if (rc != TW_OK) {
    tw_err_copy(err, &perr);
    return rc;
  }
  const json_t *jt = json_object_get(root, "t");
  const json_t *arr = json_object_get(root, "value");
  if (!json_is_number(jt) || !json_is_array(arr)) {
    json_decref(root);
    return tw_err_set(err, TW_EPARSE,
                      "port sample: not an object with a number 't' and an "
                      "array 'value'");
  }
  size_t count = json_array_size(arr);
  *n = count;
  rc = TW_OK;
  if (count > cap)
    rc = tw_err_set(err, TW_ERANGE, "port sample: %zu values, room for %zu",
                    count, cap);
  for (size_t i = 0; rc == TW_OK && i < count; i++) {
    const json_t *v = json_array_get(arr, i);
    if (json_is_number(v))
      value[i] = json_number_value(v);
    else if (json_is_null(v))
      value[i] = NAN;
    else
      rc = tw_err_set(err, TW_EPARSE, "port sample: value[%zu] is not a number",
                      i);
  }
  if (rc == TW_OK)
    *t = json_number_value(jt);
  json_decref(root);
  return rc;
}

int tw_trace_port_decode(const tw_trace_channel *ch, const void *data,
                         size_t len, double *t, double *value, size_t cap,
                         size_t *n, tw_err *err) {
  if (strcmp(ch->message_encoding, TW_TRACE_MESSAGE_CDR) == 0)
    return decode_cdr(data, len, t, value, cap, n, err);
  if (strcmp(ch->message_encoding, TW_TRACE_MESSAGE_JSON) == 0)
    return decode_json(data, len, t, value, cap, n, err);
  return tw_err_set(err, TW_ENOTSUP,
                    "channel '%s': message encoding '%s' is not a port's",
                    ch->topic, ch->message_encoding);
}
