/*
 * sr.c - a subset of the Confluent Schema Registry REST API under the
 * server's root (/subjects, /schemas, /config, /compatibility) over the
 * metadata store (twin/meta.h, "Schema registry"), so that Kafka clients
 * and the library's own client (twin/schema_registry.h) resolve the
 * schema ids of Confluent's wire format against `twin serve`.
 * docs/schema-registry.md lists the endpoints, docs/adr/0018 the
 * decisions.
 *
 * Invariants:
 *  - Only JSON Schema is held (schemaType "JSON"); AVRO (the API's default
 *    when schemaType is absent) and PROTOBUF are refused with 42201.
 *  - A schema is stored canonical: parsed, then written compact with its
 *    members sorted, so two texts differing only in spacing or member
 *    order are one schema with one id.
 *  - Errors are {"error_code": N, "message": M} with Confluent's codes;
 *    the HTTP status is the code's first three digits.
 *  - Compatibility is checked in the registering transaction
 *    (tw_meta_sr_register's callback), against the latest live version
 *    or, for the *_TRANSITIVE levels, every live version.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "twin/alloc.h"
#include "twin/arena.h"
#include "twin/json.h"
#include "twin/meta.h"
#include "twin/server.h"

struct tw_server_sr {
  tw_meta *meta;
};

#define SR_CTYPE "application/vnd.schemaregistry.v1+json"
/* Largest request body: a schema of TW_META_SR_SCHEMA_MAX bytes escaped
 * inside a JSON string, with room to spare. */
#define SR_BODY_MAX ((uint64_t)4 << 20)
/* How deep a schema's nesting is checked for compatibility. */
#define SR_DEPTH_MAX 64

/* --- Errors ----------------------------------------------------------------
 */

static int sr_json(tw_server_req *req, int status, json_t *v) {
  tw_buf b = TW_BUF_INIT;
  if (v == NULL || tw_json_dump(v, 0, &b) != TW_OK) {
    json_decref(v);
    tw_buf_fini(&b);
    static const char oom[] =
        "{\"error_code\":50001,\"message\":\"out of memory\"}";
    return tw_server_req_respond(req, 500, SR_CTYPE, oom, sizeof oom - 1);
  }
  json_decref(v);
  return tw_server_req_respond_buf(req, status, SR_CTYPE, &b);
}

static int sr_fail(tw_server_req *req, int code, const char *fmt, ...)
    TW_PRINTF(3, 4);
static int sr_fail(tw_server_req *req, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int status = code;
  while (status >= 1000)
    status /= 10;
  return sr_json(req, status,
                 json_pack("{s:i,s:s}", "error_code", code, "message", msg));
}

/* A store failure: not_found is the code of TW_ENOENT (40401 subject,
 * 40402 version, 40403 schema). */
static int sr_store_fail(tw_server_req *req, int rc, const tw_err *err,
                         int not_found) {
  const char *msg = tw_err_msg(err);
  if (msg[0] == '\0')
    msg = tw_strerror(rc);
  switch (rc) {
  case TW_ENOENT:
    return sr_fail(req, not_found, "%s", msg);
  case TW_EINVAL:
    return sr_fail(req, 42201, "%s", msg);
  case TW_EVALIDATE:
    return sr_fail(req, 409, "%s", msg);
  default:
    return sr_fail(req, 50001, "%s", msg);
  }
}

/* --- Requests in -------------------------------------------------------------
 */

/* A query flag such as ?deleted=true. */
static bool query_true(tw_server_req *req, const char *name) {
  const char *v = tw_server_req_query(req, name);
  return v != NULL && strcasecmp(v, "true") == 0;
}

/* Parses a version: 1 .. 2^31-1, or "latest" / -1 (then *out = -1).
 * false after answering 42202. */
static bool req_version(tw_server_req *req, bool latest_ok, int64_t *out) {
  const char *s = tw_server_req_param(req, "version");
  if (s != NULL && latest_ok &&
      (strcmp(s, "latest") == 0 || strcmp(s, "-1") == 0)) {
    *out = -1;
    return true;
  }
  int64_t v = 0;
  bool ok = s != NULL && *s != '\0' && strlen(s) <= 10;
  for (const char *c = s; ok && *c != '\0'; c++) {
    ok = *c >= '0' && *c <= '9';
    v = v * 10 + (*c - '0');
  }
  if (!ok || v < 1 || v > INT32_MAX) {
    (void)sr_fail(req, 42202,
                  "The specified version '%.64s' is not a valid version id. "
                  "Allowed values are between [1, 2^31-1] and the string "
                  "\"latest\"",
                  s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

static bool ctype_ok(tw_server_req *req) {
  static const char *const ok[] = {"application/vnd.schemaregistry.v1+json",
                                   "application/vnd.schemaregistry+json",
                                   "application/json",
                                   "application/octet-stream", NULL};
  const char *ct = tw_server_req_header(req, "Content-Type");
  if (ct == NULL)
    return true;
  for (const char *const *t = ok; *t != NULL; t++) {
    size_t n = strlen(*t);
    if (strncasecmp(ct, *t, n) == 0 &&
        (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
      return true;
  }
  return false;
}

/* The body as a JSON object, or NULL after answering. */
static json_t *req_object(tw_server_req *req) {
  if (!ctype_ok(req)) {
    (void)sr_fail(req, 415, "Content-Type '%.100s' is not supported",
                  tw_server_req_header(req, "Content-Type"));
    return NULL;
  }
  const tw_buf *b = tw_server_req_body(req);
  if (b == NULL || b->len == 0) {
    (void)sr_fail(req, 422, "the body must be a JSON object; it is empty");
    return NULL;
  }
  tw_err err;
  tw_err_init(&err);
  json_t *v = NULL;
  if (tw_json_parse(b->data, b->len, "body", &v, &err) != TW_OK) {
    (void)sr_fail(req, 422, "%s", tw_err_msg(&err));
    return NULL;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    (void)sr_fail(req, 422, "the body must be a JSON object");
    return NULL;
  }
  return v;
}

/* --- JSON Schema: validity and canonical form --------------------------------
 */

static const char *const json_types[] = {
    "null", "boolean", "object", "array", "number", "string", "integer", NULL};

static bool type_name_ok(const char *t) {
  for (const char *const *k = json_types; *k != NULL; k++)
    if (strcmp(*k, t) == 0)
      return true;
  return false;
}

/* Checks the keywords the registry reads (type, properties, required,
 * items, additionalProperties, enum) where they are, recursively; other
 * keywords are kept as they are. Writes the reason into why. */
static bool schema_ok(const json_t *s, const char *path, int depth, char *why,
                      size_t cap) {
  if (json_is_boolean(s))
    return true;
  if (!json_is_object(s)) {
    (void)snprintf(why, cap, "%s: a schema is an object or a boolean", path);
    return false;
  }
  if (depth > SR_DEPTH_MAX) {
    (void)snprintf(why, cap, "%s: nested more than %d levels", path,
                   SR_DEPTH_MAX);
    return false;
  }
  const json_t *t = json_object_get(s, "type");
  if (t != NULL) {
    bool ok = json_is_string(t) && type_name_ok(json_string_value(t));
    if (json_is_array(t)) {
      size_t i;
      const json_t *e;
      ok = json_array_size(t) > 0;
      json_array_foreach(t, i, e) ok =
          ok && json_is_string(e) && type_name_ok(json_string_value(e));
    }
    if (!ok) {
      (void)snprintf(why, cap,
                     "%s/type: a JSON type name (null, boolean, object, "
                     "array, number, string, integer) or an array of them",
                     path);
      return false;
    }
  }
  const json_t *req = json_object_get(s, "required");
  if (req != NULL) {
    size_t i;
    const json_t *e;
    bool ok = json_is_array(req);
    json_array_foreach(req, i, e) ok = ok && json_is_string(e);
    if (!ok) {
      (void)snprintf(why, cap, "%s/required: an array of property names", path);
      return false;
    }
  }
  const json_t *en = json_object_get(s, "enum");
  if (en != NULL && !json_is_array(en)) {
    (void)snprintf(why, cap, "%s/enum: an array", path);
    return false;
  }
  char sub[512];
  json_t *props = json_object_get(s, "properties");
  if (props != NULL) {
    if (!json_is_object(props)) {
      (void)snprintf(why, cap, "%s/properties: an object of schemas", path);
      return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
      (void)snprintf(sub, sizeof sub, "%s/properties/%s", path, k);
      if (!schema_ok(v, sub, depth + 1, why, cap))
        return false;
    }
  }
  static const char *const subs[] = {"items", "additionalProperties", NULL};
  for (const char *const *k = subs; *k != NULL; k++) {
    const json_t *v = json_object_get(s, *k);
    (void)snprintf(sub, sizeof sub, "%s/%s", path, *k);
    if (v != NULL && !json_is_array(v) &&
        !schema_ok(v, sub, depth + 1, why, cap))
      return false;
  }
  return true;
}

/* Reads {"schema", "schemaType", "references"} of body into the canonical
 * text (*out, heap; free with free()). false after answering 42201. */
static bool req_schema(tw_server_req *req, json_t *body, char **out) {
  const json_t *st = json_object_get(body, "schemaType");
  const char *type = json_is_string(st) ? json_string_value(st) : "AVRO";
  if (st != NULL && !json_is_string(st)) {
    (void)sr_fail(req, 42201, "Invalid schema: 'schemaType' must be a string");
    return false;
  }
  if (strcmp(type, "JSON") != 0) {
    (void)sr_fail(req, 42201,
                  "Invalid schema: schemaType '%.32s' is not supported; this "
                  "registry holds JSON schemas only (schemaType \"JSON\")",
                  type);
    return false;
  }
  const json_t *refs = json_object_get(body, "references");
  if (refs != NULL && !json_is_null(refs) &&
      !(json_is_array(refs) && json_array_size(refs) == 0)) {
    (void)sr_fail(req, 42201,
                  "Invalid schema: schema references are not supported");
    return false;
  }
  static const char *const nullable[] = {"metadata", "ruleSet", NULL};
  for (const char *const *k = nullable; *k != NULL; k++) {
    const json_t *v = json_object_get(body, *k);
    if (v != NULL && !json_is_null(v) &&
        !(json_is_object(v) && json_object_size(v) == 0)) {
      (void)sr_fail(req, 42201, "Invalid schema: '%s' is not supported", *k);
      return false;
    }
  }
  const json_t *s = json_object_get(body, "schema");
  if (!json_is_string(s)) {
    (void)sr_fail(req, 42201, "Invalid schema: 'schema' must be a string");
    return false;
  }
  json_error_t je;
  json_t *doc = json_loadb(json_string_value(s), json_string_length(s),
                           JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
  if (doc == NULL) {
    (void)sr_fail(req, 42201,
                  "Invalid schema: not JSON: %s at line %d, column %d", je.text,
                  je.line, je.column);
    return false;
  }
  char why[768];
  if (!schema_ok(doc, "#", 0, why, sizeof why)) {
    json_decref(doc);
    (void)sr_fail(req, 42201, "Invalid schema: %s", why);
    return false;
  }
  char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
                                   JSON_REAL_PRECISION(17));
  json_decref(doc);
  if (text == NULL) {
    (void)sr_fail(req, 50001, "out of memory");
    return false;
  }
  if (strlen(text) > TW_META_SR_SCHEMA_MAX) {
    free(text);
    (void)sr_fail(req, 42201, "Invalid schema: larger than %zu bytes",
                  TW_META_SR_SCHEMA_MAX);
    return false;
  }
  *out = text;
  return true;
}

/* --- Compatibility
 * -------------------------------------------------------------
 *
 * can_read(reader, writer) holds when every document the writer schema
 * accepts is accepted by the reader schema, as far as the rules below
 * see (a sufficient subset, docs/schema-registry.md):
 *  - true reads anything; false reads only what false writes;
 *  - the reader's types include the writer's ("number" covers
 *    "integer"); no "type" reads every type, and reading a writer
 *    without "type" needs a reader without it;
 *  - the reader requires no property the writer does not require;
 *  - the reader's enum holds every value of the writer's;
 *  - a property the writer declares and a closed reader
 *    (additionalProperties false) lacks is refused; a property both
 *    declare is compared recursively, as are "items" and the schemas of
 *    additionalProperties.
 * BACKWARD is can_read(new, old), FORWARD can_read(old, new), FULL both. */

typedef unsigned typeset;
#define TS_ALL 0x7fu

static typeset type_bit(const char *t) {
  for (unsigned i = 0; json_types[i] != NULL; i++)
    if (strcmp(json_types[i], t) == 0)
      return 1u << i;
  return 0;
}

static typeset types_of(const json_t *s) {
  const json_t *t = json_object_get(s, "type");
  if (json_is_string(t))
    return type_bit(json_string_value(t));
  if (json_is_array(t)) {
    typeset r = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(t, i, e) if (json_is_string(e)) r |=
        type_bit(json_string_value(e));
    return r;
  }
  return TS_ALL;
}

static bool json_in(const json_t *arr, const json_t *v) {
  size_t i;
  const json_t *e;
  json_array_foreach(arr, i, e) if (json_equal(e, v)) return true;
  return false;
}

static bool can_read(const json_t *r, const json_t *w, const char *path,
                     int depth, char *why, size_t cap) {
  if (json_is_true(r) || json_is_false(w))
    return true;
  if (json_is_false(r)) {
    (void)snprintf(why, cap, "%s: the reading schema is false", path);
    return false;
  }
  if (json_is_true(w)) {
    if (json_object_size(r) == 0)
      return true;
    (void)snprintf(why, cap, "%s: the writing schema accepts anything", path);
    return false;
  }
  if (depth > SR_DEPTH_MAX)
    return true;
  typeset tr = types_of(r), tw = types_of(w);
  if (tr & type_bit("number"))
    tr |= type_bit("integer");
  if ((tw & ~tr) != 0) {
    (void)snprintf(why, cap,
                   "%s: type narrowed (the reading schema does not "
                   "accept every type the writing schema allows)",
                   path);
    return false;
  }
  const json_t *rreq = json_object_get(r, "required");
  const json_t *wreq = json_object_get(w, "required");
  size_t i;
  const json_t *e;
  json_array_foreach(rreq, i, e) {
    if (wreq == NULL || !json_in(wreq, e)) {
      (void)snprintf(why, cap, "%s: required property '%s' added", path,
                     json_string_value(e));
      return false;
    }
  }
  const json_t *ren = json_object_get(r, "enum");
  const json_t *wen = json_object_get(w, "enum");
  if (ren != NULL) {
    if (wen == NULL) {
      (void)snprintf(why, cap, "%s: enum added", path);
      return false;
    }
    json_array_foreach(wen, i, e) if (!json_in(ren, e)) {
      (void)snprintf(why, cap, "%s: enum value removed", path);
      return false;
    }
  }
  char sub[512];
  const json_t *rp = json_object_get(r, "properties");
  json_t *wp = json_object_get(w, "properties");
  const json_t *radd = json_object_get(r, "additionalProperties");
  const char *k;
  json_t *wv;
  json_object_foreach(wp, k, wv) {
    const json_t *rv = json_object_get(rp, k);
    (void)snprintf(sub, sizeof sub, "%s/properties/%s", path, k);
    if (rv == NULL && json_is_false(radd)) {
      (void)snprintf(why, cap, "%s: property removed from a closed object",
                     sub);
      return false;
    }
    if (rv == NULL && radd != NULL)
      rv = radd;
    if (rv != NULL && !can_read(rv, wv, sub, depth + 1, why, cap))
      return false;
  }
  const json_t *ri = json_object_get(r, "items");
  const json_t *wi = json_object_get(w, "items");
  if (json_is_object(ri) || json_is_boolean(ri)) {
    (void)snprintf(sub, sizeof sub, "%s/items", path);
    if (!can_read(ri, wi != NULL ? wi : json_true(), sub, depth + 1, why, cap))
      return false;
  }
  const json_t *wadd = json_object_get(w, "additionalProperties");
  if (radd != NULL && !json_is_true(radd)) {
    (void)snprintf(sub, sizeof sub, "%s/additionalProperties", path);
    if (!can_read(radd, wadd != NULL ? wadd : json_true(), sub, depth + 1, why,
                  cap))
      return false;
  }
  return true;
}

typedef enum { LV_NONE, LV_BACKWARD, LV_FORWARD, LV_FULL } sr_level;

static const char *const levels[] = {"NONE",
                                     "BACKWARD",
                                     "BACKWARD_TRANSITIVE",
                                     "FORWARD",
                                     "FORWARD_TRANSITIVE",
                                     "FULL",
                                     "FULL_TRANSITIVE",
                                     NULL};

static bool level_parse(const char *s, sr_level *lv, bool *transitive) {
  if (s == NULL)
    return false;
  for (unsigned i = 0; levels[i] != NULL; i++)
    if (strcmp(levels[i], s) == 0) {
      *lv = i == 0 ? LV_NONE : (sr_level)((i + 1) / 2);
      *transitive = i > 0 && i % 2 == 0;
      return true;
    }
  return false;
}

/* Whether the schema text cand may follow old under level lv: TW_OK, or
 * TW_EVALIDATE with the reason. */
static int compat_one(sr_level lv, const char *cand, const char *old,
                      int64_t old_version, tw_err *err) {
  if (lv == LV_NONE)
    return TW_OK;
  json_t *n = json_loads(cand, JSON_DECODE_ANY, NULL);
  json_t *o = json_loads(old, JSON_DECODE_ANY, NULL);
  int rc = TW_OK;
  char why[768] = "";
  if (n == NULL || o == NULL) {
    rc = tw_err_set(err, TW_ENOMEM, "cannot read a stored schema");
  } else if ((lv == LV_BACKWARD || lv == LV_FULL) &&
             !can_read(n, o, "#", 0, why, sizeof why)) {
    rc = tw_err_set(err, TW_EVALIDATE,
                    "Schema being registered is incompatible with an earlier "
                    "schema (version %lld): BACKWARD: %s",
                    (long long)old_version, why);
  } else if ((lv == LV_FORWARD || lv == LV_FULL) &&
             !can_read(o, n, "#", 0, why, sizeof why)) {
    rc = tw_err_set(err, TW_EVALIDATE,
                    "Schema being registered is incompatible with an earlier "
                    "schema (version %lld): FORWARD: %s",
                    (long long)old_version, why);
  }
  json_decref(n);
  json_decref(o);
  return rc;
}

typedef struct check_ctx {
  const char *schema;
} check_ctx;

static int register_check(void *ud, const char *level,
                          const tw_meta_sr_version *live, size_t n,
                          tw_err *err) {
  const check_ctx *c = ud;
  sr_level lv;
  bool trans;
  if (!level_parse(level, &lv, &trans))
    return tw_err_set(err, TW_EINTERNAL,
                      "stored compatibility level '%s' is unknown", level);
  for (size_t i = n; i-- > 0;) {
    if (strcmp(live[i].type, "JSON") == 0) {
      int rc = compat_one(lv, c->schema, live[i].schema, live[i].version, err);
      if (rc != TW_OK)
        return rc;
    }
    if (!trans)
      break;
  }
  return TW_OK;
}

/* The level in force for subject (NULL: global): its own, the global
 * one, BACKWARD. */
static int level_in_force(tw_meta *m, const char *subject, tw_arena *a,
                          const char **out, tw_err *err) {
  int rc = subject ? tw_meta_sr_config_get(m, subject, a, out, err) : TW_ENOENT;
  if (rc == TW_ENOENT) {
    tw_err_init(err);
    rc = tw_meta_sr_config_get(m, NULL, a, out, err);
  }
  if (rc == TW_ENOENT) {
    tw_err_init(err);
    *out = "BACKWARD";
    rc = TW_OK;
  }
  return rc;
}

/* --- Handlers ----------------------------------------------------------------
 */

static json_t *version_json(const tw_meta_sr_version *v) {
  return json_pack("{s:s,s:I,s:I,s:s,s:s}", "subject", v->subject, "version",
                   (json_int_t)v->version, "id", (json_int_t)v->id,
                   "schemaType", v->type, "schema", v->schema);
}

static int subject_register(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  json_t *body = req_object(req);
  if (body == NULL)
    return TW_OK;
  char *text = NULL;
  int rc = TW_OK;
  if (req_schema(req, body, &text)) {
    const char *subject = tw_server_req_param(req, "subject");
    tw_arena a;
    tw_arena_init(&a, 0);
    tw_err err;
    tw_err_init(&err);
    check_ctx c = {text};
    tw_meta_sr_version v;
    if (tw_meta_sr_register(sr->meta, subject, "JSON", text, register_check, &c,
                            &a, &v, &err) != TW_OK)
      rc = sr_store_fail(req, err.code, &err, 40401);
    else
      rc = sr_json(req, 200, json_pack("{s:I}", "id", (json_int_t)v.id));
    tw_arena_fini(&a);
  }
  free(text);
  json_decref(body);
  return rc;
}

/* Answers 40401 and returns false when subject has no version (live, or
 * any with deleted). */
static bool subject_exists(tw_server_req *req, tw_server_sr *sr,
                           const char *subject, bool deleted) {
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  int64_t *nums = NULL;
  size_t n = 0;
  int rc = tw_meta_sr_versions(sr->meta, subject, deleted, &a, &nums, &n, &err);
  tw_arena_fini(&a);
  if (rc == TW_ENOENT) {
    (void)sr_fail(req, 40401, "Subject '%s' not found.", subject);
    return false;
  }
  if (rc != TW_OK) {
    (void)sr_store_fail(req, rc, &err, 40401);
    return false;
  }
  return true;
}

static int subject_lookup(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  bool deleted = query_true(req, "deleted");
  json_t *body = req_object(req);
  if (body == NULL)
    return TW_OK;
  char *text = NULL;
  int rc = TW_OK;
  if (req_schema(req, body, &text) &&
      subject_exists(req, sr, subject, deleted)) {
    tw_arena a;
    tw_arena_init(&a, 0);
    tw_err err;
    tw_err_init(&err);
    tw_meta_sr_version v;
    int src = tw_meta_sr_lookup(sr->meta, subject, "JSON", text, deleted, &a,
                                &v, &err);
    if (src == TW_ENOENT)
      rc = sr_fail(req, 40403, "Schema not found");
    else if (src != TW_OK)
      rc = sr_store_fail(req, src, &err, 40403);
    else
      rc = sr_json(req, 200, version_json(&v));
    tw_arena_fini(&a);
  }
  free(text);
  json_decref(body);
  return rc;
}

/* The {id} of the route, or false after answering. */
static bool req_id(tw_server_req *req, int64_t *out) {
  const char *s = tw_server_req_param(req, "id");
  int64_t v = 0;
  bool ok = s != NULL && *s != '\0' && strlen(s) <= 10;
  for (const char *c = s; ok && *c != '\0'; c++) {
    ok = *c >= '0' && *c <= '9';
    v = v * 10 + (*c - '0');
  }
  if (!ok || v < 1 || v > INT32_MAX) {
    (void)sr_fail(req, 40403, "Schema %.32s not found", s ? s : "");
    return false;
  }
  *out = v;
  return true;
}

static int schema_by_id(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  int64_t id = 0;
  if (!req_id(req, &id))
    return TW_OK;
  bool raw = strstr(tw_server_req_route(req), ".raw") != NULL;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  tw_meta_sr_version v;
  int rc;
  if (tw_meta_sr_schema_get(sr->meta, id, &a, &v, &err) != TW_OK)
    rc = err.code == TW_ENOENT
             ? sr_fail(req, 40403, "Schema %lld not found", (long long)id)
             : sr_store_fail(req, err.code, &err, 40403);
  else if (raw)
    rc = tw_server_req_respond(req, 200, SR_CTYPE, v.schema, strlen(v.schema));
  else
    rc = sr_json(
        req, 200,
        json_pack("{s:s,s:s}", "schema", v.schema, "schemaType", v.type));
  tw_arena_fini(&a);
  return rc;
}

static int schema_versions(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  int64_t id = 0;
  if (!req_id(req, &id))
    return TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  tw_meta_sr_version *vs = NULL;
  size_t n = 0;
  int rc;
  if (tw_meta_sr_schema_uses(sr->meta, id, query_true(req, "deleted"), &a, &vs,
                             &n, &err) != TW_OK) {
    rc = err.code == TW_ENOENT
             ? sr_fail(req, 40403, "Schema %lld not found", (long long)id)
             : sr_store_fail(req, err.code, &err, 40403);
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
      if (json_array_append_new(
              arr, json_pack("{s:s,s:I}", "subject", vs[i].subject, "version",
                             (json_int_t)vs[i].version)) != 0) {
        json_decref(arr);
        arr = NULL;
      }
    rc = sr_json(req, 200, arr);
  }
  tw_arena_fini(&a);
  return rc;
}

static int schema_types(tw_server_req *req, void *ud) {
  (void)ud;
  return sr_json(req, 200, json_pack("[s]", "JSON"));
}

static int subjects_list(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  const char **names = NULL;
  size_t n = 0;
  const char *prefix = tw_server_req_query(req, "subjectPrefix");
  int rc;
  if (tw_meta_sr_subjects(sr->meta, query_true(req, "deleted"), &a, &names, &n,
                          &err) != TW_OK) {
    rc = sr_store_fail(req, err.code, &err, 40401);
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
      if (prefix != NULL && strncmp(names[i], prefix, strlen(prefix)) != 0)
        continue;
      if (json_array_append_new(arr, json_string(names[i])) != 0) {
        json_decref(arr);
        arr = NULL;
      }
    }
    rc = sr_json(req, 200, arr);
  }
  tw_arena_fini(&a);
  return rc;
}

static int subject_versions(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  int64_t *nums = NULL;
  size_t n = 0;
  int rc;
  if (tw_meta_sr_versions(sr->meta, subject, query_true(req, "deleted"), &a,
                          &nums, &n, &err) != TW_OK) {
    rc = err.code == TW_ENOENT
             ? sr_fail(req, 40401, "Subject '%s' not found.", subject)
             : sr_store_fail(req, err.code, &err, 40401);
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
      if (json_array_append_new(arr, json_integer(nums[i])) != 0) {
        json_decref(arr);
        arr = NULL;
      }
    rc = sr_json(req, 200, arr);
  }
  tw_arena_fini(&a);
  return rc;
}

static int subject_version_get(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  bool deleted = query_true(req, "deleted");
  int64_t ver = 0;
  if (!req_version(req, true, &ver) ||
      !subject_exists(req, sr, subject, deleted))
    return TW_OK;
  bool raw = strstr(tw_server_req_route(req), ".raw") != NULL;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  tw_meta_sr_version v;
  int rc;
  if (tw_meta_sr_version_get(sr->meta, subject, ver, deleted, &a, &v, &err) !=
      TW_OK)
    rc = err.code == TW_ENOENT ? sr_fail(req, 40402, "Version %s not found.",
                                         tw_server_req_param(req, "version"))
                               : sr_store_fail(req, err.code, &err, 40402);
  else if (raw)
    rc = tw_server_req_respond(req, 200, SR_CTYPE, v.schema, strlen(v.schema));
  else
    rc = sr_json(req, 200, version_json(&v));
  tw_arena_fini(&a);
  return rc;
}

static int subject_delete(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  bool permanent = query_true(req, "permanent");
  bool one = tw_server_req_param(req, "version") != NULL;
  int64_t ver = 0;
  if (one && !req_version(req, true, &ver))
    return TW_OK;
  /* A permanent delete works on soft-deleted versions: look at all. */
  if (!subject_exists(req, sr, subject, true))
    return TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  int rc = TW_OK;
  if (ver == -1) {
    tw_meta_sr_version v;
    if (tw_meta_sr_version_get(sr->meta, subject, -1, permanent, &a, &v,
                               &err) != TW_OK) {
      rc = err.code == TW_ENOENT
               ? sr_fail(req, 40402, "Version latest not found.")
               : sr_store_fail(req, err.code, &err, 40402);
      tw_arena_fini(&a);
      return rc;
    }
    ver = v.version;
  }
  int64_t *nums = NULL;
  size_t n = 0;
  int drc = tw_meta_sr_delete(sr->meta, subject, one ? ver : 0, permanent, &a,
                              &nums, &n, &err);
  if (drc == TW_ESTATE && one)
    rc = sr_fail(req, 40407,
                 "Subject '%s' Version %lld was not deleted first before "
                 "being permanently deleted",
                 subject, (long long)ver);
  else if (drc == TW_ESTATE)
    rc = sr_fail(req, 40405,
                 "Subject '%s' was not deleted first before being "
                 "permanently deleted",
                 subject);
  else if (drc == TW_ENOENT && one)
    rc = sr_fail(req, 40402, "Version %lld not found.", (long long)ver);
  else if (drc == TW_ENOENT)
    rc = sr_fail(req, 40404, "Subject '%s' was soft deleted.", subject);
  else if (drc != TW_OK)
    rc = sr_store_fail(req, drc, &err, 40401);
  else if (one)
    rc = sr_json(req, 200, json_integer(nums[0]));
  else {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
      if (json_array_append_new(arr, json_integer(nums[i])) != 0) {
        json_decref(arr);
        arr = NULL;
      }
    rc = sr_json(req, 200, arr);
  }
  tw_arena_fini(&a);
  return rc;
}

static int config_get(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  const char *level = NULL;
  int rc;
  if (subject == NULL || query_true(req, "defaultToGlobal"))
    rc = level_in_force(sr->meta, subject, &a, &level, &err);
  else
    rc = tw_meta_sr_config_get(sr->meta, subject, &a, &level, &err);
  if (rc == TW_ENOENT)
    rc = sr_fail(req, 40408,
                 "Subject '%s' does not have subject-level compatibility "
                 "configured",
                 subject);
  else if (rc != TW_OK)
    rc = sr_store_fail(req, rc, &err, 40401);
  else
    rc = sr_json(req, 200, json_pack("{s:s}", "compatibilityLevel", level));
  tw_arena_fini(&a);
  return rc;
}

static int config_set(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  json_t *body = req_object(req);
  if (body == NULL)
    return TW_OK;
  const json_t *c = json_object_get(body, "compatibility");
  if (c == NULL)
    c = json_object_get(body, "compatibilityLevel");
  sr_level lv;
  bool trans;
  int rc;
  if (!json_is_string(c) || !level_parse(json_string_value(c), &lv, &trans)) {
    rc = sr_fail(req, 42203,
                 "Invalid compatibility level. Valid values are NONE, "
                 "BACKWARD, FORWARD, FULL, BACKWARD_TRANSITIVE, "
                 "FORWARD_TRANSITIVE, and FULL_TRANSITIVE");
  } else {
    tw_err err;
    tw_err_init(&err);
    if (tw_meta_sr_config_set(sr->meta, subject, json_string_value(c), &err) !=
        TW_OK)
      rc = sr_store_fail(req, err.code, &err, 40401);
    else
      rc = sr_json(req, 200,
                   json_pack("{s:s}", "compatibility", json_string_value(c)));
  }
  json_decref(body);
  return rc;
}

static int config_delete(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  const char *level = NULL;
  int rc = tw_meta_sr_config_get(sr->meta, subject, &a, &level, &err);
  if (rc == TW_OK)
    rc = tw_meta_sr_config_set(sr->meta, subject, NULL, &err);
  if (rc == TW_ENOENT)
    rc = sr_fail(req, 40408,
                 "Subject '%s' does not have subject-level compatibility "
                 "configured",
                 subject ? subject : "");
  else if (rc != TW_OK)
    rc = sr_store_fail(req, rc, &err, 40401);
  else
    rc = sr_json(req, 200, json_pack("{s:s}", "compatibilityLevel", level));
  tw_arena_fini(&a);
  return rc;
}

static int compat_check(tw_server_req *req, void *ud) {
  tw_server_sr *sr = ud;
  const char *subject = tw_server_req_param(req, "subject");
  bool one = tw_server_req_param(req, "version") != NULL;
  bool verbose = query_true(req, "verbose");
  int64_t ver = -1;
  if (one && !req_version(req, true, &ver))
    return TW_OK;
  json_t *body = req_object(req);
  if (body == NULL)
    return TW_OK;
  char *text = NULL;
  int rc = TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  if (!req_schema(req, body, &text))
    goto out;
  tw_err err;
  tw_err_init(&err);
  const char *level = NULL;
  sr_level lv = LV_BACKWARD;
  bool trans = false;
  if ((rc = level_in_force(sr->meta, subject, &a, &level, &err)) != TW_OK) {
    rc = sr_store_fail(req, rc, &err, 40401);
    goto out;
  }
  (void)level_parse(level, &lv, &trans);
  tw_meta_sr_version *olds = NULL;
  size_t n = 0;
  tw_meta_sr_version one_v;
  if (one) {
    if (!subject_exists(req, sr, subject, false))
      goto out;
    if (tw_meta_sr_version_get(sr->meta, subject, ver, false, &a, &one_v,
                               &err) != TW_OK) {
      rc = err.code == TW_ENOENT ? sr_fail(req, 40402, "Version %s not found.",
                                           tw_server_req_param(req, "version"))
                                 : sr_store_fail(req, err.code, &err, 40402);
      goto out;
    }
    olds = &one_v;
    n = 1;
    trans = false;
  } else {
    int64_t *nums = NULL;
    size_t cnt = 0;
    int vrc =
        tw_meta_sr_versions(sr->meta, subject, false, &a, &nums, &cnt, &err);
    if (vrc != TW_OK && vrc != TW_ENOENT) {
      rc = sr_store_fail(req, vrc, &err, 40401);
      goto out;
    }
    olds = tw_arena_calloc(&a, cnt ? cnt : 1, sizeof *olds);
    if (olds == NULL) {
      rc = sr_fail(req, 50001, "out of memory");
      goto out;
    }
    for (size_t i = 0; vrc == TW_OK && i < cnt; i++) {
      if (tw_meta_sr_version_get(sr->meta, subject, nums[i], false, &a,
                                 &olds[n], &err) == TW_OK)
        n++;
    }
  }
  tw_err why;
  tw_err_init(&why);
  int crc = TW_OK;
  for (size_t i = n; i-- > 0 && crc == TW_OK;) {
    crc = compat_one(lv, text, olds[i].schema, olds[i].version, &why);
    if (!trans)
      break;
  }
  if (crc != TW_OK && crc != TW_EVALIDATE) {
    rc = sr_store_fail(req, crc, &why, 40401);
    goto out;
  }
  json_t *o = json_pack("{s:b}", "is_compatible", crc == TW_OK);
  if (o != NULL && verbose) {
    json_t *msgs = json_array();
    if (crc != TW_OK && msgs != NULL)
      json_array_append_new(msgs, json_string(tw_err_msg(&why)));
    json_object_set_new(o, "messages", msgs);
  }
  rc = sr_json(req, 200, o);
out:
  tw_arena_fini(&a);
  free(text);
  json_decref(body);
  return rc;
}

/* --- Routes ------------------------------------------------------------------
 */

int tw_server_sr_add(tw_server *srv, tw_meta *meta, tw_server_sr **out,
                     tw_err *err) {
  *out = NULL;
  tw_server_sr *sr = tw_calloc(1, sizeof *sr);
  if (sr == NULL)
    return tw_err_set(err, TW_ENOMEM, "schema registry: out of memory");
  sr->meta = meta;
  *out = sr;
  const unsigned BUF = TW_SERVER_ROUTE_BUFFER_BODY;
  const uint64_t none = 0, body = SR_BODY_MAX;
#define S "/subjects/{subject}"
#define V S "/versions/{version}"
  const tw_server_route routes[] = {
      {"GET", "/schemas/types", "sr.types", 0, none, NULL, NULL, NULL,
       schema_types, NULL, sr},
      {"GET", "/schemas/ids/{id}", "sr.schema", 0, none, NULL, NULL, NULL,
       schema_by_id, NULL, sr},
      {"GET", "/schemas/ids/{id}/schema", "sr.schema.raw", 0, none, NULL, NULL,
       NULL, schema_by_id, NULL, sr},
      {"GET", "/schemas/ids/{id}/versions", "sr.schema.versions", 0, none, NULL,
       NULL, NULL, schema_versions, NULL, sr},
      {"GET", "/subjects", "sr.subjects", 0, none, NULL, NULL, NULL,
       subjects_list, NULL, sr},
      {"POST", S, "sr.subject.lookup", BUF, body, NULL, NULL, NULL,
       subject_lookup, NULL, sr},
      {"DELETE", S, "sr.subject.delete", 0, none, NULL, NULL, NULL,
       subject_delete, NULL, sr},
      {"GET", S "/versions", "sr.versions", 0, none, NULL, NULL, NULL,
       subject_versions, NULL, sr},
      {"POST", S "/versions", "sr.register", BUF, body, NULL, NULL, NULL,
       subject_register, NULL, sr},
      {"GET", V, "sr.version", 0, none, NULL, NULL, NULL, subject_version_get,
       NULL, sr},
      {"GET", V "/schema", "sr.version.raw", 0, none, NULL, NULL, NULL,
       subject_version_get, NULL, sr},
      {"DELETE", V, "sr.version.delete", 0, none, NULL, NULL, NULL,
       subject_delete, NULL, sr},
      {"GET", "/config", "sr.config", 0, none, NULL, NULL, NULL, config_get,
       NULL, sr},
      {"PUT", "/config", "sr.config.set", BUF, body, NULL, NULL, NULL,
       config_set, NULL, sr},
      {"GET", "/config/{subject}", "sr.config.subject", 0, none, NULL, NULL,
       NULL, config_get, NULL, sr},
      {"PUT", "/config/{subject}", "sr.config.subject.set", BUF, body, NULL,
       NULL, NULL, config_set, NULL, sr},
      {"DELETE", "/config/{subject}", "sr.config.subject.delete", 0, none, NULL,
       NULL, NULL, config_delete, NULL, sr},
      {"POST", "/compatibility" V, "sr.compat.version", BUF, body, NULL, NULL,
       NULL, compat_check, NULL, sr},
      {"POST", "/compatibility" S "/versions", "sr.compat", BUF, body, NULL,
       NULL, NULL, compat_check, NULL, sr},
  };
#undef S
#undef V
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    int rc = tw_server_route_add(srv, &routes[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

void tw_server_sr_free(tw_server_sr *sr) { tw_free(sr); }
