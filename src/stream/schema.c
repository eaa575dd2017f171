/*
 * schema.c - schema enforcement of live records (twin/stream.h): the
 * fields a twin reads, the writer's schema bound to them (JSON Schema by
 * a registry id, or Kafka Connect's inline struct schema) with the unit
 * conversion of each field, and the decoding of one record with every
 * value checked.
 *
 * Invariants: a record decodes whole or fails naming the first field at
 * fault; values are written in the schema's field order, so a connector
 * can hand the array to the graph's inputs without a map; nothing here
 * allocates per value (one parse of the record, one walk of the fields).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/json.h"
#include "twin/stream.h"
#include "twin/units.h"

#define NAME_MAX_LEN 128

typedef struct field {
  char *name;
  tw_dtype dtype;
  size_t size;
  size_t off;
  char *unit; /* NULL: none */
  tw_unit u;
  double min, max;
} field;

struct tw_stream_schema {
  field *f;
  size_t n;
  size_t width;
  char *time_field; /* NULL: none */
  tw_stream_time_unit time_unit;
  bool time_required;
  bool nested; /* a field is a JSON Pointer: no flat fast path */
};

/* How each field of a schema reads a writer's values: x * scale + shift. */
struct tw_stream_binding {
  size_t n;
  double *scale;
  double *shift;
};

/* --- Schemas --------------------------------------------------------------
 */

void tw_stream_schema_free(tw_stream_schema *s) {
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n; i++) {
    tw_free(s->f[i].name);
    tw_free(s->f[i].unit);
  }
  tw_free(s->f);
  tw_free(s->time_field);
  tw_free(s);
}

static int check_field(const tw_stream_field *in, size_t i, tw_err *err) {
  size_t len = in->name != NULL ? strlen(in->name) : 0;
  if (len == 0 || len > NAME_MAX_LEN)
    return tw_err_set(err, TW_EINVAL,
                      "stream field %zu: a name of 1 to %d bytes is needed", i,
                      NAME_MAX_LEN);
  if (in->size == 0 || in->size > TW_STREAM_SIZE_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "stream field '%s': size %zu, not 1 to %d", in->name,
                      in->size, TW_STREAM_SIZE_MAX);
  if ((unsigned)in->dtype >= TW_DTYPE_COUNT)
    return tw_err_set(err, TW_EINVAL, "stream field '%s': unknown dtype %d",
                      in->name, (int)in->dtype);
  if (!isnan(in->min) && !isnan(in->max) && in->min > in->max)
    return tw_err_set(err, TW_EINVAL,
                      "stream field '%s': range [%g, %g] is empty", in->name,
                      in->min, in->max);
  return TW_OK;
}

int tw_stream_schema_new(const tw_stream_field *fields, size_t n,
                         const tw_stream_schema_opts *opts,
                         tw_stream_schema **out, tw_err *err) {
  *out = NULL;
  if (n == 0 || n > TW_STREAM_FIELDS_MAX || fields == NULL)
    return tw_err_set(err, TW_EINVAL, "stream schema: %zu fields, not 1 to %d",
                      n, TW_STREAM_FIELDS_MAX);
  for (size_t i = 0; i < n; i++) {
    int rc = check_field(&fields[i], i, err);
    if (rc != TW_OK)
      return rc;
    for (size_t j = 0; j < i; j++)
      if (strcmp(fields[i].name, fields[j].name) == 0)
        return tw_err_set(err, TW_EINVAL, "stream field '%s': given twice",
                          fields[i].name);
  }
  tw_stream_schema *s = tw_calloc(1, sizeof *s);
  if (s == NULL || (s->f = tw_calloc(n, sizeof *s->f)) == NULL) {
    tw_free(s);
    return tw_err_set(err, TW_ENOMEM, "stream schema: out of memory");
  }
  int rc = TW_OK;
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    const tw_stream_field *in = &fields[i];
    field *f = &s->f[i];
    s->n = i + 1;
    f->dtype = in->dtype;
    f->size = in->size;
    f->off = s->width;
    f->min = in->min;
    f->max = in->max;
    s->width += in->size;
    if ((f->name = tw_strdup(in->name)) == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "stream schema: out of memory");
    if (rc == TW_OK && in->unit != NULL && in->unit[0] != '\0') {
      tw_err uerr;
      tw_err_init(&uerr);
      if ((f->unit = tw_strdup(in->unit)) == NULL)
        rc = tw_err_set(err, TW_ENOMEM, "stream schema: out of memory");
      else if (tw_unit_parse(in->unit, &f->u, &uerr) != TW_OK)
        rc = tw_err_set(err, TW_EINVAL, "stream field '%s': %s", in->name,
                        tw_err_msg(&uerr));
    }
  }
  if (rc == TW_OK && opts != NULL) {
    s->time_unit = opts->time_unit;
    s->time_required = opts->time_required;
    if ((unsigned)opts->time_unit > TW_STREAM_TIME_S)
      rc = tw_err_set(err, TW_EINVAL, "stream schema: unknown time unit %d",
                      (int)opts->time_unit);
    else if (opts->time_field != NULL &&
             (s->time_field = tw_strdup(opts->time_field)) == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "stream schema: out of memory");
    else if (opts->time_required && opts->time_field == NULL)
      rc = tw_err_set(err, TW_EINVAL,
                      "stream schema: a time is required but no time field "
                      "is named");
  }
  if (rc != TW_OK) {
    tw_stream_schema_free(s);
    return rc;
  }
  for (size_t i = 0; i < s->n; i++)
    s->nested |= s->f[i].name[0] == '/';
  *out = s;
  return TW_OK;
}

size_t tw_stream_schema_width(const tw_stream_schema *s) { return s->width; }

size_t tw_stream_schema_nfields(const tw_stream_schema *s) { return s->n; }

size_t tw_stream_schema_offset(const tw_stream_schema *s, size_t i) {
  return i < s->n ? s->f[i].off : s->width;
}

/* --- Bindings --------------------------------------------------------------
 */

void tw_stream_binding_free(tw_stream_binding *b) {
  if (b == NULL)
    return;
  tw_free(b->scale);
  tw_free(b->shift);
  tw_free(b);
}

/* The kinds of value a writer's schema may declare. */
typedef enum vkind { VK_NONE, VK_NUMBER, VK_INTEGER, VK_BOOL } vkind;

static bool kind_fits(vkind k, tw_dtype t) {
  switch (t) {
  case TW_F64:
  case TW_F32:
    return k == VK_NUMBER || k == VK_INTEGER;
  case TW_I64:
  case TW_I32:
    return k == VK_INTEGER;
  case TW_BOOL:
    return k == VK_BOOL;
  }
  return false;
}

static const char *kind_name(tw_dtype t) {
  switch (t) {
  case TW_F64:
  case TW_F32:
    return "a number";
  case TW_I64:
  case TW_I32:
    return "an integer";
  case TW_BOOL:
    return "a boolean";
  }
  return "?";
}

static vkind json_schema_kind(const json_t *prop) {
  const char *t = json_string_value(json_object_get(prop, "type"));
  if (t == NULL)
    return VK_NONE;
  if (strcmp(t, "number") == 0)
    return VK_NUMBER;
  if (strcmp(t, "integer") == 0)
    return VK_INTEGER;
  if (strcmp(t, "boolean") == 0)
    return VK_BOOL;
  return VK_NONE;
}

static vkind connect_kind(const json_t *f) {
  const char *t = json_string_value(json_object_get(f, "type"));
  if (t == NULL)
    return VK_NONE;
  if (strcmp(t, "double") == 0 || strcmp(t, "float") == 0 ||
      strcmp(t, "float64") == 0 || strcmp(t, "float32") == 0)
    return VK_NUMBER;
  if (strcmp(t, "int8") == 0 || strcmp(t, "int16") == 0 ||
      strcmp(t, "int32") == 0 || strcmp(t, "int64") == 0)
    return VK_INTEGER;
  if (strcmp(t, "boolean") == 0)
    return VK_BOOL;
  return VK_NONE;
}

/* The conversion of field f from a writer's unit (NULL: the field's). */
static int bind_unit(const field *f, const char *unit, double *scale,
                     double *shift, tw_err *err) {
  *scale = 1;
  *shift = 0;
  if (unit == NULL)
    return TW_OK;
  tw_unit u;
  tw_err uerr;
  tw_err_init(&uerr);
  if (tw_unit_parse(unit, &u, &uerr) != TW_OK)
    return tw_err_set(err, TW_EVALIDATE, "field '%s': the writer's %s", f->name,
                      tw_err_msg(&uerr));
  if (f->unit == NULL) {
    const tw_unit one = TW_UNIT_ONE;
    if (tw_unit_same_dimension(&u, &one) && u.factor == 1 && u.offset == 0)
      return TW_OK;
    return tw_err_set(err, TW_EVALIDATE,
                      "field '%s': the writer's unit is '%s', the twin's "
                      "port has none",
                      f->name, unit);
  }
  tw_err cerr;
  tw_err_init(&cerr);
  if (tw_unit_conversion_named(&u, unit, &f->u, f->unit, scale, shift, &cerr) !=
      TW_OK)
    return tw_err_set(err, TW_EVALIDATE, "field '%s': %s", f->name,
                      tw_err_msg(&cerr));
  return TW_OK;
}

/* Checks the writer's description of field f: its kind and size (a
 * scalar, or an array of items whose count, when size_min/size_max give
 * one, is the field's size). */
static int bind_shape(const field *f, vkind k, bool array, long long nmin,
                      long long nmax, tw_err *err) {
  if (f->size == 1 && array)
    return tw_err_set(err, TW_EVALIDATE,
                      "field '%s': the writer's schema has an array, the "
                      "port a scalar",
                      f->name);
  if (f->size > 1 && !array)
    return tw_err_set(err, TW_EVALIDATE,
                      "field '%s': the writer's schema has a scalar, the "
                      "port an array of %zu",
                      f->name, f->size);
  if (f->size > 1 && ((nmin >= 0 && (size_t)nmin != f->size) ||
                      (nmax >= 0 && (size_t)nmax != f->size)))
    return tw_err_set(err, TW_EVALIDATE,
                      "field '%s': the writer's arrays hold %lld to %lld "
                      "items, the port %zu",
                      f->name, nmin, nmax, f->size);
  if (!kind_fits(k, f->dtype))
    return tw_err_set(err, TW_EVALIDATE,
                      "field '%s': the writer's schema does not give %s "
                      "(the port is %s)",
                      f->name, kind_name(f->dtype), tw_dtype_name(f->dtype));
  return TW_OK;
}

static long long int_member(const json_t *o, const char *key) {
  const json_t *v = json_object_get(o, key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static const json_t *connect_field(const json_t *fields, const char *name) {
  size_t i;
  const json_t *f;
  json_array_foreach(fields, i, f) {
    const char *n = json_string_value(json_object_get(f, "field"));
    if (n != NULL && strcmp(n, name) == 0)
      return f;
  }
  return NULL;
}

/* Where a field lives. A name starting with '/' is a JSON Pointer (RFC
 * 6901) into nested objects: "/outputs/force" is the member "force" of
 * the member "outputs" ("~1" stands for '/', "~0" for '~'); any other
 * name is a member of the top object. AT_VALUE walks a record,
 * AT_JSON_SCHEMA the "properties" of a JSON Schema, AT_CONNECT the
 * "fields" of a Connect struct schema. */
enum { AT_VALUE, AT_JSON_SCHEMA, AT_CONNECT };

static const json_t *step(const json_t *cur, const char *seg, int how) {
  switch (how) {
  case AT_JSON_SCHEMA:
    return json_object_get(json_object_get(cur, "properties"), seg);
  case AT_CONNECT:
    return connect_field(json_object_get(cur, "fields"), seg);
  default:
    return json_object_get(cur, seg);
  }
}

static const json_t *field_at(const json_t *root, const char *name, int how) {
  if (name[0] != '/')
    return step(root, name, how);
  const json_t *cur = root;
  const char *p = name;
  while (cur != NULL && *p == '/') {
    char seg[160];
    size_t n = 0;
    for (p++; *p != '\0' && *p != '/'; p++) {
      char c = *p;
      if (c == '~' && (p[1] == '0' || p[1] == '1'))
        c = *++p == '0' ? '~' : '/';
      if (n + 1 >= sizeof seg)
        return NULL;
      seg[n++] = c;
    }
    seg[n] = '\0';
    cur = step(cur, seg, how);
  }
  return cur;
}

static int bind_json_schema(const tw_stream_schema *s, const json_t *root,
                            tw_stream_binding *b, tw_err *err) {
  const char *type = json_string_value(json_object_get(root, "type"));
  const json_t *props = json_object_get(root, "properties");
  if (type == NULL || strcmp(type, "object") != 0 || !json_is_object(props))
    return tw_err_set(err, TW_EVALIDATE,
                      "the writer's JSON Schema does not describe an object "
                      "with properties");
  for (size_t i = 0; i < s->n; i++) {
    const field *f = &s->f[i];
    const json_t *p = field_at(root, f->name, AT_JSON_SCHEMA);
    if (!json_is_object(p))
      return tw_err_set(err, TW_EVALIDATE,
                        "field '%s': not a property of the writer's schema",
                        f->name);
    const char *t = json_string_value(json_object_get(p, "type"));
    bool array = t != NULL && strcmp(t, "array") == 0;
    const json_t *item = array ? json_object_get(p, "items") : p;
    int rc =
        bind_shape(f, json_schema_kind(item), array, int_member(p, "minItems"),
                   int_member(p, "maxItems"), err);
    if (rc == TW_OK && array &&
        (int_member(p, "minItems") < 0 || int_member(p, "maxItems") < 0))
      rc = tw_err_set(err, TW_EVALIDATE,
                      "field '%s': the writer's schema does not fix the "
                      "array's length (minItems = maxItems = %zu)",
                      f->name, f->size);
    const char *unit = json_string_value(json_object_get(p, "unit"));
    if (unit == NULL)
      unit = json_string_value(json_object_get(p, "x-unit"));
    if (rc == TW_OK)
      rc = bind_unit(f, unit, &b->scale[i], &b->shift[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

static int bind_connect(const tw_stream_schema *s, const json_t *root,
                        tw_stream_binding *b, tw_err *err) {
  const char *type = json_string_value(json_object_get(root, "type"));
  const json_t *fields = json_object_get(root, "fields");
  if (type == NULL || strcmp(type, "struct") != 0 || !json_is_array(fields))
    return tw_err_set(err, TW_EVALIDATE,
                      "the writer's Connect schema is not a struct with "
                      "fields");
  for (size_t i = 0; i < s->n; i++) {
    const field *f = &s->f[i];
    const json_t *c = field_at(root, f->name, AT_CONNECT);
    if (c == NULL)
      return tw_err_set(err, TW_EVALIDATE,
                        "field '%s': not a field of the writer's schema",
                        f->name);
    const char *t = json_string_value(json_object_get(c, "type"));
    bool array = t != NULL && strcmp(t, "array") == 0;
    const json_t *item = array ? json_object_get(c, "items") : c;
    int rc = bind_shape(f, connect_kind(item), array, -1, -1, err);
    const char *unit = json_string_value(
        json_object_get(json_object_get(c, "parameters"), "unit"));
    if (rc == TW_OK)
      rc = bind_unit(f, unit, &b->scale[i], &b->shift[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

static int binding_of(const tw_stream_schema *s, tw_stream_schema_kind kind,
                      const json_t *root, tw_stream_binding **out,
                      tw_err *err) {
  tw_stream_binding *b = tw_calloc(1, sizeof *b);
  if (b == NULL || (b->scale = tw_calloc(s->n, sizeof *b->scale)) == NULL ||
      (b->shift = tw_calloc(s->n, sizeof *b->shift)) == NULL) {
    tw_stream_binding_free(b);
    return tw_err_set(err, TW_ENOMEM, "stream schema: out of memory");
  }
  b->n = s->n;
  int rc = kind == TW_STREAM_CONNECT ? bind_connect(s, root, b, err)
                                     : bind_json_schema(s, root, b, err);
  if (rc != TW_OK) {
    tw_stream_binding_free(b);
    return rc;
  }
  *out = b;
  return TW_OK;
}

int tw_stream_binding_new(const tw_stream_schema *s, tw_stream_schema_kind kind,
                          const char *text, size_t len, tw_stream_binding **out,
                          tw_err *err) {
  *out = NULL;
  if (kind != TW_STREAM_JSON_SCHEMA && kind != TW_STREAM_CONNECT)
    return tw_err_set(err, TW_EINVAL, "stream schema: unknown kind %d",
                      (int)kind);
  json_t *root = NULL;
  int rc = tw_json_parse(text, len, "the writer's schema", &root, err);
  if (rc != TW_OK)
    return rc;
  rc = binding_of(s, kind, root, out, err);
  json_decref(root);
  return rc;
}

/* --- Records -----------------------------------------------------------------
 */

int tw_stream_wire_split(const void *data, size_t len, uint32_t *schema_id,
                         const void **payload, size_t *payload_len,
                         tw_err *err) {
  const unsigned char *p = data;
  if (len < 5)
    return tw_err_set(err, TW_EPARSE,
                      "record: %zu bytes, shorter than the wire format's "
                      "5-byte header",
                      len);
  if (p[0] != 0)
    return tw_err_set(err, TW_EPARSE,
                      "record: magic byte %u, not 0 (not the Confluent "
                      "wire format)",
                      p[0]);
  *schema_id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 8 | (uint32_t)p[4];
  *payload = p + 5;
  *payload_len = len - 5;
  return TW_OK;
}

static int read_time(const tw_stream_schema *s, const json_t *obj,
                     tw_stream_meta *meta, tw_err *err) {
  meta->has_time = false;
  meta->time_ns = 0;
  if (s->time_field == NULL)
    return TW_OK;
  const json_t *t = json_object_get(obj, s->time_field);
  if (t == NULL)
    return s->time_required ? tw_err_set(err, TW_EVALIDATE,
                                         "record: no time '%s'", s->time_field)
                            : TW_OK;
  static const double per_ns[] = {1, 1e3, 1e6, 1e9};
  static const int64_t per_ns_int[] = {1, 1000, 1000000, 1000000000};
  double x;
  if (json_is_integer(t)) {
    /* Exactly, in integers: a double has no nanoseconds left at 2^53. */
    int64_t v = (int64_t)json_integer_value(t), k = per_ns_int[s->time_unit];
    if (v > INT64_MAX / k || v < INT64_MIN / k)
      return tw_err_set(err, TW_EVALIDATE,
                        "record: time '%s' is out of range (%lld)",
                        s->time_field, (long long)v);
    meta->time_ns = v * k;
    meta->has_time = true;
    return TW_OK;
  }
  if (!json_is_number(t))
    return tw_err_set(err, TW_EVALIDATE, "record: time '%s' is not a number",
                      s->time_field);
  x = json_number_value(t) * per_ns[s->time_unit];
  if (!(x >= -9.2e18 && x <= 9.2e18))
    return tw_err_set(err, TW_EVALIDATE,
                      "record: time '%s' is out of range (%g ns)",
                      s->time_field, x);
  meta->time_ns = (int64_t)llround(x);
  meta->has_time = true;
  return TW_OK;
}

/* Where value k of field f is, for messages: "name" or "name[k]". */
static const char *place_of(const field *f, size_t k, char *at, size_t cap) {
  if (f->size > 1)
    (void)snprintf(at, cap, "%s[%zu]", f->name, k);
  else
    (void)snprintf(at, cap, "%s", f->name);
  return at;
}

/* One value of field f at index k: kind, dtype, range, after conversion. */
static int read_value(const field *f, size_t k, const json_t *v, double scale,
                      double shift, double *out, tw_err *err) {
  char at[NAME_MAX_LEN + 32];
  double x;
  if (f->dtype == TW_BOOL) {
    if (!json_is_boolean(v))
      return tw_err_set(err, TW_EVALIDATE, "record: '%s' is not a boolean",
                        place_of(f, k, at, sizeof at));
    *out = json_is_true(v) ? 1 : 0;
    return TW_OK;
  }
  if (!json_is_number(v))
    return tw_err_set(err, TW_EVALIDATE, "record: '%s' is not a number",
                      place_of(f, k, at, sizeof at));
  x = json_number_value(v) * scale + shift;
  if (!isfinite(x) || !tw_dtype_holds(f->dtype, x))
    return tw_err_set(err, TW_EVALIDATE, "record: '%s' = %.17g is not an %s",
                      place_of(f, k, at, sizeof at), x,
                      tw_dtype_name(f->dtype));
  if ((!isnan(f->min) && x < f->min) || (!isnan(f->max) && x > f->max))
    return tw_err_set(err, TW_EVALIDATE,
                      "record: '%s' = %.17g is outside [%g, %g]%s%s",
                      place_of(f, k, at, sizeof at), x, f->min, f->max,
                      f->unit ? " " : "", f->unit ? f->unit : "");
  *out = x;
  return TW_OK;
}

/* --- The flat fast path ----------------------------------------------------
 *
 * Most telemetry records are flat objects of numbers. tw_json_scan_flat
 * reads those without allocating; this decodes them with the same rules
 * as the full path below. Anything else - and every record the full path
 * would refuse - goes to the full path, which words the errors: the fast
 * path only ever succeeds where the full path succeeds, with the same
 * values. */

#define FLAT_MEMBERS 64
#define FLAT_ITEMS 1024

static const tw_json_flat_value *flat_get(const tw_json_flat_member *m,
                                          size_t n, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < n; i++)
    if (m[i].key_len == kl && memcmp(m[i].key, key, kl) == 0)
      return &m[i].v;
  return NULL;
}

static bool flat_value(const field *f, const tw_json_flat_value *v,
                       double scale, double shift, double *out) {
  if (f->dtype == TW_BOOL) {
    if (v->type != TW_JSON_FLAT_TRUE && v->type != TW_JSON_FLAT_FALSE)
      return false;
    *out = v->type == TW_JSON_FLAT_TRUE ? 1 : 0;
    return true;
  }
  if (v->type != TW_JSON_FLAT_INT && v->type != TW_JSON_FLAT_REAL)
    return false;
  double x = v->d * scale + shift;
  if (!isfinite(x) || !tw_dtype_holds(f->dtype, x) ||
      (!isnan(f->min) && x < f->min) || (!isnan(f->max) && x > f->max))
    return false;
  *out = x;
  return true;
}

/* True when the record was decoded; false: use the full path. */
static bool decode_flat(const tw_stream_schema *s, const tw_stream_binding *b,
                        const void *payload, size_t len, double *values,
                        tw_stream_meta *meta) {
  tw_json_flat_member m[FLAT_MEMBERS];
  tw_json_flat_value items[FLAT_ITEMS];
  size_t nm = 0;
  if (s->nested || tw_json_scan_flat(payload, len, m, FLAT_MEMBERS, &nm, items,
                                     FLAT_ITEMS) != TW_OK)
    return false;
  tw_stream_meta tm = {false, 0};
  if (s->time_field != NULL) {
    const tw_json_flat_value *t = flat_get(m, nm, s->time_field);
    static const double per_ns[] = {1, 1e3, 1e6, 1e9};
    static const int64_t per_ns_int[] = {1, 1000, 1000000, 1000000000};
    if (t == NULL) {
      if (s->time_required)
        return false;
    } else if (t->type == TW_JSON_FLAT_INT) {
      int64_t k = per_ns_int[s->time_unit];
      if (t->i > INT64_MAX / k || t->i < INT64_MIN / k)
        return false;
      tm.time_ns = t->i * k;
      tm.has_time = true;
    } else if (t->type == TW_JSON_FLAT_REAL) {
      double x = t->d * per_ns[s->time_unit];
      if (!(x >= -9.2e18 && x <= 9.2e18))
        return false;
      tm.time_ns = (int64_t)llround(x);
      tm.has_time = true;
    } else {
      return false;
    }
  }
  for (size_t i = 0; i < s->n; i++) {
    const field *f = &s->f[i];
    double scale = b ? b->scale[i] : 1, shift = b ? b->shift[i] : 0;
    const tw_json_flat_value *v = flat_get(m, nm, f->name);
    if (v == NULL)
      return false;
    if (f->size == 1) {
      if (!flat_value(f, v, scale, shift, &values[f->off]))
        return false;
      continue;
    }
    if (v->type != TW_JSON_FLAT_ARRAY || v->n != f->size)
      return false;
    for (size_t k = 0; k < f->size; k++)
      if (!flat_value(f, &items[v->first + k], scale, shift,
                      &values[f->off + k]))
        return false;
  }
  if (meta != NULL)
    *meta = tm;
  return true;
}

static int read_fields(const tw_stream_schema *s, const tw_stream_binding *b,
                       const json_t *obj, double *values, tw_err *err) {
  for (size_t i = 0; i < s->n; i++) {
    const field *f = &s->f[i];
    double scale = b ? b->scale[i] : 1, shift = b ? b->shift[i] : 0;
    const json_t *v = field_at(obj, f->name, AT_VALUE);
    if (v == NULL)
      return tw_err_set(err, TW_EVALIDATE, "record: no field '%s'", f->name);
    if (f->size == 1) {
      int rc = read_value(f, 0, v, scale, shift, &values[f->off], err);
      if (rc != TW_OK)
        return rc;
      continue;
    }
    if (!json_is_array(v) || json_array_size(v) != f->size)
      return tw_err_set(err, TW_EVALIDATE,
                        "record: '%s' is not an array of %zu values", f->name,
                        f->size);
    for (size_t k = 0; k < f->size; k++) {
      int rc = read_value(f, k, json_array_get(v, k), scale, shift,
                          &values[f->off + k], err);
      if (rc != TW_OK)
        return rc;
    }
  }
  return TW_OK;
}

int tw_stream_decode(const tw_stream_schema *s, const tw_stream_binding *b,
                     const void *payload, size_t len, double *values,
                     tw_stream_meta *meta, tw_err *err) {
  tw_stream_meta m;
  if (decode_flat(s, b, payload, len, values, meta))
    return TW_OK;
  json_t *root = NULL;
  int rc = tw_json_parse(payload, len, "record", &root, err);
  if (rc != TW_OK)
    return rc;
  tw_stream_binding *own = NULL;
  const json_t *obj = root;
  if (!json_is_object(root)) {
    rc = tw_err_set(err, TW_EVALIDATE, "record: not a JSON object");
  } else if (b == NULL && json_object_size(root) == 2 &&
             json_is_object(json_object_get(root, "schema")) &&
             json_object_get(root, "payload") != NULL) {
    /* Kafka Connect's envelope: the schema travels with the record. */
    rc = binding_of(s, TW_STREAM_CONNECT, json_object_get(root, "schema"), &own,
                    err);
    obj = json_object_get(root, "payload");
    b = own;
    if (rc == TW_OK && !json_is_object(obj))
      rc = tw_err_set(err, TW_EVALIDATE,
                      "record: the payload is not an "
                      "object");
  }
  if (rc == TW_OK)
    rc = read_time(s, obj, &m, err);
  if (rc == TW_OK)
    rc = read_fields(s, b, obj, values, err);
  if (rc == TW_OK && meta != NULL)
    *meta = m;
  tw_stream_binding_free(own);
  json_decref(root);
  return rc;
}
