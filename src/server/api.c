/*
 * api.c - the model registry's REST API under /api/v1/: registered
 * models, their versions, tags, aliases, lineage and search (MLflow's
 * model registry, resource-shaped), over a metadata store (twin/meta.h)
 * and the OCI registry (twin/registry.h). docs/openapi.yaml is the
 * contract, docs/adr/0014-registry-api.md the decisions.
 *
 * Invariants:
 *  - Every request is parsed whole (path, query, body) before anything is
 *    changed; an unknown query parameter or body member is refused, so a
 *    misspelt filter never silently widens a search.
 *  - A version uploaded as a .wasm is stored in the order artifact, then
 *    version, then the OCI tag "v<N>": a failure after the artifact
 *    leaves only blobs that no version names (garbage collection takes
 *    them), never a version whose artifact is missing.
 *  - Errors are {"error":{"code":CODE,"message":...}} with MLflow's codes:
 *    RESOURCE_DOES_NOT_EXIST (404), RESOURCE_ALREADY_EXISTS (409),
 *    INVALID_PARAMETER_VALUE (400), REQUEST_LIMIT_EXCEEDED (413),
 *    UNSUPPORTED_MEDIA_TYPE (415), TEMPORARILY_UNAVAILABLE (503),
 *    INTERNAL_ERROR (500).
 */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/arena.h"
#include "twin/json.h"
#include "twin/meta.h"
#include "twin/registry.h"
#include "twin/server.h"
#include "twin/wasm.h"

struct tw_server_api {
  tw_reg *reg;
  tw_meta *meta;
  tw_wasm_engine *engine;
};

/* Largest JSON request body; a .wasm upload may be as large as the
 * loader accepts by default. */
#define API_JSON_MAX ((size_t)2 << 20)
#define API_WASM_MAX ((size_t)32 << 20)
/* Query parameters in one request. libwebsockets 4.1 holds about 90
 * header and query fragments per request and closes the connection
 * beyond, so the API's own limit sits below that. */
#define API_QUERY_MAX 64

/* --- Errors ----------------------------------------------------------------
 */

static int reply_status(tw_server_req *req, int rc, const char *msg) {
  int status;
  const char *code;
  switch (rc) {
  case TW_ENOENT:
    status = 404, code = "RESOURCE_DOES_NOT_EXIST";
    break;
  case TW_EEXIST:
    status = 409, code = "RESOURCE_ALREADY_EXISTS";
    break;
  case TW_EINVAL:
  case TW_EPARSE:
  case TW_EVALIDATE:
  case TW_ETYPE:
  case TW_ERANGE:
  case TW_EDIGEST:
  case TW_EUNIT:
  case TW_EUSAGE:
    status = 400, code = "INVALID_PARAMETER_VALUE";
    break;
  case TW_ELIMIT:
    status = 413, code = "REQUEST_LIMIT_EXCEEDED";
    break;
  case TW_ECONN:
  case TW_EBUSY:
  case TW_ETIMEDOUT:
    status = 503, code = "TEMPORARILY_UNAVAILABLE";
    break;
  default:
    status = 500, code = "INTERNAL_ERROR";
    break;
  }
  return tw_server_req_respond_error(req, status, code, "%s",
                                     msg != NULL ? msg : tw_strerror(rc));
}

static int reply_err(tw_server_req *req, int rc, const tw_err *err) {
  const char *msg = tw_err_msg(err);
  return reply_status(req, rc, msg[0] != '\0' ? msg : NULL);
}

static int reply_bad(tw_server_req *req, const char *fmt, ...) TW_PRINTF(2, 3);
static int reply_bad(tw_server_req *req, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return reply_status(req, TW_EINVAL, msg);
}

/* A registry failure: its 404s are RESOURCE_DOES_NOT_EXIST, its other
 * client errors INVALID_PARAMETER_VALUE (413 kept), the rest 500. */
static int reply_reg(tw_server_req *req, tw_reg_err *e) {
  tw_reg_err_finish(e);
  int rc = e->status == 404   ? TW_ENOENT
           : e->status == 413 ? TW_ELIMIT
           : e->status < 500  ? TW_EINVAL
                              : TW_EINTERNAL;
  return reply_err(req, rc, &e->err);
}

/* --- JSON out ----------------------------------------------------------------
 */

/* Sets key of o to v (taken); a NULL v (a failed json_* constructor)
 * clears *ok. */
static void put(json_t *o, const char *key, json_t *v, bool *ok) {
  if (v == NULL || json_object_set_new(o, key, v) != 0)
    *ok = false;
}

static json_t *str_or_null(const char *s) {
  return s != NULL ? json_string(s) : json_null();
}

static json_t *tags_json(const tw_meta_tag *t, size_t n, bool *ok) {
  json_t *o = json_object();
  for (size_t i = 0; o != NULL && i < n; i++)
    put(o, t[i].key, json_string(t[i].value), ok);
  return o;
}

static json_t *model_json(const tw_meta_model *m) {
  bool ok = true;
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  put(o, "name", json_string(m->name), &ok);
  put(o, "description", json_string(m->description ? m->description : ""), &ok);
  put(o, "tags", tags_json(m->tags, m->n_tags, &ok), &ok);
  json_t *al = json_object();
  for (size_t i = 0; al != NULL && i < m->n_aliases; i++)
    put(al, m->aliases[i].alias, json_integer(m->aliases[i].version), &ok);
  put(o, "aliases", al, &ok);
  put(o, "latest_version",
      m->latest_version > 0 ? json_integer(m->latest_version) : json_null(),
      &ok);
  put(o, "created_ms", json_integer(m->created_ms), &ok);
  put(o, "updated_ms", json_integer(m->updated_ms), &ok);
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static json_t *version_json(const tw_meta_version *v) {
  bool ok = true;
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  put(o, "model", json_string(v->model), &ok);
  put(o, "version", json_integer(v->version), &ok);
  put(o, "description", json_string(v->description ? v->description : ""), &ok);
  put(o, "status", json_string(tw_meta_status_name(v->status)), &ok);
  json_t *a = json_object();
  if (a != NULL) {
    const tw_meta_artifact *art = &v->artifact;
    put(a, "repository", str_or_null(art->repository), &ok);
    put(a, "manifest_digest", str_or_null(art->manifest_digest), &ok);
    put(a, "wasm_digest", str_or_null(art->wasm_digest), &ok);
    put(a, "size", art->size >= 0 ? json_integer(art->size) : json_null(), &ok);
    json_t *d = NULL;
    if (art->descriptor != NULL)
      d = json_loads(art->descriptor, 0, NULL);
    put(a, "descriptor", d != NULL ? d : json_null(), &ok);
  }
  put(o, "artifact", a, &ok);
  put(o, "tags", tags_json(v->tags, v->n_tags, &ok), &ok);
  json_t *runs = json_array();
  for (size_t i = 0; runs != NULL && i < v->n_run_ids; i++)
    if (json_array_append_new(runs, json_string(v->run_ids[i])) != 0)
      ok = false;
  put(o, "run_ids", runs, &ok);
  json_t *par = json_array();
  for (size_t i = 0; par != NULL && i < v->n_parents; i++) {
    json_t *p = json_object();
    if (p != NULL) {
      put(p, "model", json_string(v->parents[i].model), &ok);
      put(p, "version", json_integer(v->parents[i].version), &ok);
    }
    if (p == NULL || json_array_append_new(par, p) != 0)
      ok = false;
  }
  put(o, "parents", par, &ok);
  json_t *al = json_array();
  for (size_t i = 0; al != NULL && i < v->n_aliases; i++)
    if (json_array_append_new(al, json_string(v->aliases[i])) != 0)
      ok = false;
  put(o, "aliases", al, &ok);
  put(o, "created_ms", json_integer(v->created_ms), &ok);
  put(o, "updated_ms", json_integer(v->updated_ms), &ok);
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* Answers with v (taken; NULL: out of memory). */
static int reply_json(tw_server_req *req, int status, json_t *v) {
  tw_buf b = TW_BUF_INIT;
  if (v == NULL || tw_json_dump(v, 0, &b) != TW_OK) {
    json_decref(v);
    tw_buf_fini(&b);
    return reply_status(req, TW_ENOMEM, NULL);
  }
  json_decref(v);
  return tw_server_req_respond_buf(req, status, "application/json", &b);
}

static json_t *model_at(const void *items, size_t i) {
  return model_json(&((const tw_meta_model *)items)[i]);
}

static json_t *version_at(const void *items, size_t i) {
  return version_json(&((const tw_meta_version *)items)[i]);
}

/* Answers a search page: {"KEY":[item(items, 0..n)],"next_page_token"}. */
static int reply_page(tw_server_req *req, const char *key, const void *items,
                      size_t n, json_t *(*item)(const void *, size_t),
                      const char *token) {
  json_t *o = json_object(), *arr = json_array();
  bool ok = o != NULL && arr != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    json_t *v = item(items, i);
    ok = v != NULL && json_array_append_new(arr, v) == 0;
  }
  if (o != NULL) {
    put(o, key, arr, &ok);
    arr = NULL;
    if (token != NULL)
      put(o, "next_page_token", json_string(token), &ok);
  }
  json_decref(arr);
  if (!ok) {
    json_decref(o);
    o = NULL;
  }
  return reply_json(req, 200, o);
}

/* Location of a model or a version (version 0: the model). */
static void add_location(tw_server_req *req, const char *model,
                         int64_t version) {
  char loc[512];
  if (version > 0)
    (void)snprintf(loc, sizeof loc, "/api/v1/models/%s/versions/%" PRId64,
                   model, version);
  else
    (void)snprintf(loc, sizeof loc, "/api/v1/models/%s", model);
  (void)tw_server_req_header_add(req, "Location", loc);
}

/* --- Requests in -------------------------------------------------------------
 */

/* Parses a version number: decimal, 1 to INT64_MAX. */
static bool parse_version(const char *s, int64_t *out) {
  if (s == NULL || *s == '\0' || strlen(s) > 19)
    return false;
  int64_t v = 0;
  for (const char *c = s; *c != '\0'; c++) {
    if (*c < '0' || *c > '9')
      return false;
    if (v > (INT64_MAX - (*c - '0')) / 10)
      return false;
    v = v * 10 + (*c - '0');
  }
  if (v < 1)
    return false;
  *out = v;
  return true;
}

/* The {version} of the route, or 0 after answering. */
static int64_t req_version(tw_server_req *req) {
  const char *s = tw_server_req_param(req, "version");
  int64_t v = 0;
  if (!parse_version(s, &v)) {
    (void)reply_bad(req, "version '%.64s': not a version number (1, 2, ...)",
                    s ? s : "");
    return 0;
  }
  return v;
}

/* Whether the Content-Type's media type (parameters aside) is mt. */
static bool ctype_is(tw_server_req *req, const char *mt) {
  const char *ct = tw_server_req_header(req, "Content-Type");
  if (ct == NULL)
    return false;
  size_t n = strlen(mt);
  if (strncasecmp(ct, mt, n) != 0)
    return false;
  const char *rest = ct + n;
  while (*rest == ' ' || *rest == '\t')
    rest++;
  return *rest == '\0' || *rest == ';';
}

/* Refuses (answering) a member of o not in allowed: unlike
 * tw_json_check_keys, "x-" members too, so a request never carries data
 * the server drops. */
static bool keys_ok(tw_server_req *req, json_t *o, const char *where,
                    const char *const *allowed) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    bool known = false;
    for (const char *const *a = allowed; *a != NULL && !known; a++)
      known = strcmp(*a, k) == 0;
    if (!known) {
      (void)reply_bad(req, "%s: unknown field '%.64s'", where, k);
      return false;
    }
  }
  return true;
}

/* Reads member key of o, a whole number in [1, INT64_MAX] (JSON's 3 and
 * 3.0 alike), into *out. false after answering. */
static bool get_count(tw_server_req *req, const json_t *o, const char *where,
                      const char *key, int64_t *out) {
  json_t *v = json_object_get(o, key);
  double d = json_is_real(v) ? json_real_value(v) : 0;
  if (json_is_integer(v) && json_integer_value(v) >= 1) {
    *out = json_integer_value(v);
    return true;
  }
  if (json_is_real(v) && d >= 1 && d < 9007199254740992.0 &&
      d == (double)(int64_t)d) {
    *out = (int64_t)d;
    return true;
  }
  (void)reply_bad(req, "%s: '%s' must be a version number (1, 2, ...)", where,
                  key);
  return false;
}

/* The request body as a JSON object (*out, owned), or NULL after
 * answering. allowed: the members it may have. */
static json_t *req_object(tw_server_req *req, const char *const *allowed) {
  const tw_buf *b = tw_server_req_body(req);
  if (!ctype_is(req, "application/json")) {
    (void)tw_server_req_respond_error(
        req, 415, "UNSUPPORTED_MEDIA_TYPE",
        "the body must be a JSON object (Content-Type: application/json)");
    return NULL;
  }
  if (b == NULL || b->len == 0) {
    (void)reply_bad(req, "the body must be a JSON object; it is empty");
    return NULL;
  }
  if (b->len > API_JSON_MAX) {
    (void)reply_status(req, TW_ELIMIT, "JSON body larger than 2 MiB");
    return NULL;
  }
  tw_err err;
  tw_err_init(&err);
  json_t *v = NULL;
  if (tw_json_parse(b->data, b->len, "body", &v, &err) != TW_OK) {
    (void)reply_err(req, TW_EINVAL, &err);
    return NULL;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    (void)reply_bad(req, "the body must be a JSON object");
    return NULL;
  }
  if (!keys_ok(req, v, "body", allowed)) {
    json_decref(v);
    return NULL;
  }
  return v;
}

/* Reads the optional string member key of o into *out (untouched when
 * absent; null is not a string). false after answering. */
static bool opt_str(tw_server_req *req, const json_t *o, const char *key,
                    const char **out) {
  json_t *v = json_object_get(o, key);
  if (v == NULL)
    return true;
  if (!json_is_string(v)) {
    (void)reply_bad(req, "body: '%s' must be a string", key);
    return false;
  }
  *out = json_string_value(v);
  return true;
}

/* Reads {"k":"v",...} member key of o into arena-held tags. */
static bool opt_tags(tw_server_req *req, const json_t *o, const char *key,
                     tw_arena *a, const tw_meta_tag **out, size_t *n) {
  json_t *v = json_object_get(o, key);
  if (v == NULL)
    return true;
  if (!json_is_object(v)) {
    (void)reply_bad(req, "body: '%s' must be an object of strings", key);
    return false;
  }
  size_t cnt = json_object_size(v);
  if (cnt > TW_META_LIST_MAX) {
    (void)reply_bad(req, "body: more than %d %s", TW_META_LIST_MAX, key);
    return false;
  }
  tw_meta_tag *t = tw_arena_calloc(a, cnt ? cnt : 1, sizeof *t);
  if (t == NULL) {
    (void)reply_status(req, TW_ENOMEM, NULL);
    return false;
  }
  size_t i = 0;
  const char *k;
  json_t *val;
  json_object_foreach(v, k, val) {
    if (!json_is_string(val)) {
      (void)reply_bad(req, "body: %s['%.64s'] must be a string", key, k);
      return false;
    }
    t[i].key = k;
    t[i].value = json_string_value(val);
    i++;
  }
  *out = t;
  *n = cnt;
  return true;
}

/* --- Query parameters --------------------------------------------------------
 */

/* The query's parameters must be among allowed (NULL-terminated);
 * those in repeatable may appear more than once. */
static bool query_check(tw_server_req *req, const char *const *allowed,
                        const char *const *repeatable) {
  size_t n = tw_server_req_query_count(req);
  if (n > API_QUERY_MAX) {
    (void)reply_bad(req, "%zu query parameters, more than %d", n,
                    API_QUERY_MAX);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    tw_server_kv kv = tw_server_req_query_at(req, i);
    bool known = false, rep = false;
    for (const char *const *a = allowed; *a != NULL; a++)
      known = known || strcmp(*a, kv.name) == 0;
    for (const char *const *a = repeatable; a && *a != NULL; a++)
      rep = rep || strcmp(*a, kv.name) == 0;
    if (!known) {
      (void)reply_bad(req, "unknown query parameter '%.64s'", kv.name);
      return false;
    }
    for (size_t j = 0; !rep && j < i; j++)
      if (strcmp(tw_server_req_query_at(req, j).name, kv.name) == 0) {
        (void)reply_bad(req, "query parameter '%.64s' given twice", kv.name);
        return false;
      }
  }
  return true;
}

/* The request has no query parameters (answers and returns false if it
 * has). */
static bool no_query(tw_server_req *req) {
  static const char *const none[] = {NULL};
  return query_check(req, none, NULL);
}

/* Answers a DELETE: 204, or the failure rc recorded in err. */
static int reply_deleted(tw_server_req *req, int rc, const tw_err *err) {
  if (rc != TW_OK)
    return reply_err(req, rc, err);
  return tw_server_req_respond(req, 204, NULL, NULL, 0);
}

/* Collects the repeated "KEY=VALUE" parameter name into arena tags. */
static bool query_pairs(tw_server_req *req, const char *name, tw_arena *a,
                        const tw_meta_tag **out, size_t *nout) {
  size_t n = tw_server_req_query_count(req), cnt = 0;
  for (size_t i = 0; i < n; i++)
    cnt += strcmp(tw_server_req_query_at(req, i).name, name) == 0;
  if (cnt == 0)
    return true;
  tw_meta_tag *t = tw_arena_calloc(a, cnt, sizeof *t);
  if (t == NULL) {
    (void)reply_status(req, TW_ENOMEM, NULL);
    return false;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    tw_server_kv kv = tw_server_req_query_at(req, i);
    if (strcmp(kv.name, name) != 0)
      continue;
    const char *eq = strchr(kv.value, '=');
    if (eq == NULL || eq == kv.value) {
      (void)reply_bad(req, "%s '%.64s': expected KEY=VALUE", name, kv.value);
      return false;
    }
    t[k].key = tw_arena_strndup(a, kv.value, (size_t)(eq - kv.value));
    t[k].value = eq + 1;
    if (t[k].key == NULL) {
      (void)reply_status(req, TW_ENOMEM, NULL);
      return false;
    }
    k++;
  }
  *out = t;
  *nout = cnt;
  return true;
}

static bool query_int(tw_server_req *req, const char *name, int64_t max,
                      int64_t *out) {
  const char *s = tw_server_req_query(req, name);
  if (s == NULL)
    return true;
  int64_t v = 0;
  if (strcmp(s, "0") == 0)
    v = 0;
  else if (!parse_version(s, &v) || v > max) {
    (void)reply_bad(req, "%s '%.64s': expected an integer from 0 to %" PRId64,
                    name, s, max);
    return false;
  }
  *out = v;
  return true;
}

/* "MODEL/VERSION" of a lineage parent. */
static bool parse_parent(tw_server_req *req, const char *s, tw_arena *a,
                         tw_meta_parent *out) {
  const char *slash = s != NULL ? strrchr(s, '/') : NULL;
  int64_t v;
  if (slash == NULL || slash == s || !parse_version(slash + 1, &v)) {
    (void)reply_bad(req, "parent '%.64s': expected MODEL/VERSION", s ? s : "");
    return false;
  }
  out->model = tw_arena_strndup(a, s, (size_t)(slash - s));
  out->version = v;
  if (out->model == NULL) {
    (void)reply_status(req, TW_ENOMEM, NULL);
    return false;
  }
  return true;
}

/* Whether id is a run id (1 to TW_META_RUN_ID_MAX printable ASCII
 * characters without spaces, as the store requires); answers if not. */
static bool run_id_ok(tw_server_req *req, const char *id) {
  size_t n = strlen(id);
  bool ok = n >= 1 && n <= TW_META_RUN_ID_MAX;
  for (size_t k = 0; ok && k < n; k++)
    ok = id[k] > ' ' && id[k] <= '~';
  if (!ok)
    (void)reply_bad(req,
                    "run_id '%.64s': not 1 to %d printable ASCII characters "
                    "without spaces",
                    id, TW_META_RUN_ID_MAX);
  return ok;
}

/* Fills the filters common to both searches. */
static bool query_common(tw_server_req *req, tw_arena *a, tw_meta_query *q) {
  q->name_prefix = tw_server_req_query(req, "name_prefix");
  q->name_contains = tw_server_req_query(req, "name_contains");
  q->alias = tw_server_req_query(req, "alias");
  q->page_token = tw_server_req_query(req, "page_token");
  const char *ha = tw_server_req_query(req, "has_alias");
  if (ha != NULL) {
    if (strcmp(ha, "true") != 0 && strcmp(ha, "false") != 0)
      return reply_bad(req, "has_alias '%.16s': expected true or false", ha),
             false;
    q->has_alias = strcmp(ha, "true") == 0;
  }
  int64_t ps = 0, after = 0, before = 0;
  if (!query_int(req, "page_size", TW_META_PAGE_MAX, &ps) ||
      !query_int(req, "created_after_ms", INT64_MAX, &after) ||
      !query_int(req, "created_before_ms", INT64_MAX, &before) ||
      !query_pairs(req, "tag", a, &q->tags, &q->n_tags))
    return false;
  q->page_size = (size_t)ps;
  q->created_after_ms = after;
  q->created_before_ms = before;
  return true;
}

/* --- Models ------------------------------------------------------------------
 */

static int models_search(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  static const char *const allowed[] = {"name_prefix",
                                        "name_contains",
                                        "tag",
                                        "alias",
                                        "has_alias",
                                        "created_after_ms",
                                        "created_before_ms",
                                        "page_size",
                                        "page_token",
                                        NULL};
  static const char *const rep[] = {"tag", NULL};
  if (!query_check(req, allowed, rep))
    return TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_query q;
  memset(&q, 0, sizeof q);
  int rc = TW_OK;
  if (query_common(req, &a, &q)) {
    tw_meta_model_page page;
    tw_err err;
    tw_err_init(&err);
    if (tw_meta_model_search(api->meta, &q, &a, &page, &err) != TW_OK) {
      rc = reply_err(req, err.code, &err);
    } else {
      rc = reply_page(req, "models", page.items, page.n, model_at,
                      page.next_page_token);
    }
  }
  tw_arena_fini(&a);
  return rc;
}

/* Answers with model name as it now is. */
static int reply_model(tw_server_req *req, tw_server_api *api, const char *name,
                       int status) {
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model m;
  tw_err err;
  tw_err_init(&err);
  int rc;
  if (tw_meta_model_get(api->meta, name, &a, &m, &err) != TW_OK)
    rc = reply_err(req, err.code, &err);
  else
    rc = reply_json(req, status, model_json(&m));
  tw_arena_fini(&a);
  return rc;
}

static int model_create(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  static const char *const keys[] = {"name", "description", "tags", NULL};
  if (!no_query(req))
    return TW_OK;
  json_t *body = req_object(req, keys);
  if (body == NULL)
    return TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model spec;
  memset(&spec, 0, sizeof spec);
  int rc = TW_OK;
  if (opt_str(req, body, "name", &spec.name) &&
      opt_str(req, body, "description", &spec.description) &&
      opt_tags(req, body, "tags", &a, &spec.tags, &spec.n_tags)) {
    tw_err err;
    tw_err_init(&err);
    if (spec.name == NULL) {
      rc = reply_bad(req, "body: missing required field 'name'");
    } else if (tw_meta_model_create(api->meta, &spec, &err) != TW_OK) {
      rc = reply_err(req, err.code, &err);
    } else {
      add_location(req, spec.name, 0);
      rc = reply_model(req, api, spec.name, 201);
    }
  }
  tw_arena_fini(&a);
  json_decref(body);
  return rc;
}

static int model_get(tw_server_req *req, void *ud) {
  if (!no_query(req))
    return TW_OK;
  return reply_model(req, ud, tw_server_req_param(req, "model"), 200);
}

static int model_update(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  static const char *const keys[] = {"description", NULL};
  const char *name = tw_server_req_param(req, "model");
  if (!no_query(req))
    return TW_OK;
  json_t *body = req_object(req, keys);
  if (body == NULL)
    return TW_OK;
  const char *desc = NULL;
  int rc = TW_OK;
  if (opt_str(req, body, "description", &desc)) {
    tw_err err;
    tw_err_init(&err);
    if (desc == NULL)
      rc = reply_bad(req, "body: nothing to change (description)");
    else if (tw_meta_model_update(api->meta, name, desc, &err) != TW_OK)
      rc = reply_err(req, err.code, &err);
    else
      rc = reply_model(req, api, name, 200);
  }
  json_decref(body);
  return rc;
}

static int model_delete(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_meta_model_delete(api->meta, tw_server_req_param(req, "model"), &err);
  return reply_deleted(req, rc, &err);
}

/* The "value" of a tag PUT, or NULL after answering; *body owns it. */
static const char *tag_value(tw_server_req *req, json_t **body) {
  static const char *const keys[] = {"value", NULL};
  if (!no_query(req))
    return NULL;
  *body = req_object(req, keys);
  if (*body == NULL)
    return NULL;
  const char *value = NULL;
  if (!opt_str(req, *body, "value", &value))
    return NULL;
  if (value == NULL)
    (void)reply_bad(req, "body: missing required field 'value'");
  return value;
}

static int model_tag_set(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  const char *name = tw_server_req_param(req, "model");
  json_t *body = NULL;
  const char *value = tag_value(req, &body);
  int rc = TW_OK;
  if (value != NULL) {
    tw_err err;
    tw_err_init(&err);
    if (tw_meta_model_tag_set(api->meta, name, tw_server_req_param(req, "key"),
                              value, &err) != TW_OK)
      rc = reply_err(req, err.code, &err);
    else
      rc = reply_model(req, api, name, 200);
  }
  json_decref(body);
  return rc;
}

static int model_tag_delete(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_meta_model_tag_delete(api->meta, tw_server_req_param(req, "model"),
                               tw_server_req_param(req, "key"), &err);
  return reply_deleted(req, rc, &err);
}

/* --- Versions ----------------------------------------------------------------
 */

static int versions_search_common(tw_server_req *req, tw_server_api *api,
                                  const char *model) {
  static const char *const allowed_all[] = {"model",
                                            "name_prefix",
                                            "name_contains",
                                            "tag",
                                            "alias",
                                            "has_alias",
                                            "created_after_ms",
                                            "created_before_ms",
                                            "status",
                                            "run_id",
                                            "parent",
                                            "descriptor",
                                            "page_size",
                                            "page_token",
                                            NULL};
  static const char *const rep[] = {"tag", "descriptor", NULL};
  /* Under /models/{model}/versions the model is the path's. */
  const char *const *allowed = model != NULL ? allowed_all + 1 : allowed_all;
  if (!query_check(req, allowed, rep))
    return TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_query q;
  memset(&q, 0, sizeof q);
  tw_meta_parent parent;
  int rc = TW_OK;
  bool ok = query_common(req, &a, &q) &&
            query_pairs(req, "descriptor", &a, &q.descriptor, &q.n_descriptor);
  if (ok) {
    q.model = model != NULL ? model : tw_server_req_query(req, "model");
    q.status = tw_server_req_query(req, "status");
    q.run_id = tw_server_req_query(req, "run_id");
    ok = q.run_id == NULL || run_id_ok(req, q.run_id);
    const char *p = tw_server_req_query(req, "parent");
    if (ok && p != NULL) {
      ok = parse_parent(req, p, &a, &parent);
      q.parent = &parent;
    }
  }
  if (ok) {
    tw_meta_version_page page;
    tw_err err;
    tw_err_init(&err);
    if (model != NULL) {
      /* A model that does not exist is a 404, not an empty list. */
      tw_meta_model m;
      if (tw_meta_model_get(api->meta, model, &a, &m, &err) != TW_OK) {
        rc = reply_err(req, err.code, &err);
        goto out;
      }
    }
    if (tw_meta_version_search(api->meta, &q, &a, &page, &err) != TW_OK) {
      rc = reply_err(req, err.code, &err);
    } else {
      rc = reply_page(req, "versions", page.items, page.n, version_at,
                      page.next_page_token);
    }
  }
out:
  tw_arena_fini(&a);
  return rc;
}

static int versions_search(tw_server_req *req, void *ud) {
  return versions_search_common(req, ud, NULL);
}

static int model_versions(tw_server_req *req, void *ud) {
  return versions_search_common(req, ud, tw_server_req_param(req, "model"));
}

static int reply_version(tw_server_req *req, tw_server_api *api,
                         const char *model, int64_t version, int status) {
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version v;
  tw_err err;
  tw_err_init(&err);
  int rc;
  if (tw_meta_version_get(api->meta, model, version, &a, &v, &err) != TW_OK)
    rc = reply_err(req, err.code, &err);
  else
    rc = reply_json(req, status, version_json(&v));
  tw_arena_fini(&a);
  return rc;
}

/* The default repository of a model's uploads: "models/" + its name in
 * lower case, when that is a valid repository name. */
static bool default_repository(const char *model, char *out, size_t cap) {
  int n = snprintf(out, cap, "models/%s", model);
  if (n < 0 || (size_t)n >= cap)
    return false;
  for (char *c = out; *c != '\0'; c++)
    *c = (char)tolower((unsigned char)*c);
  tw_err err;
  tw_err_init(&err);
  return tw_reg_name_check(out, strlen(out), &err) == TW_OK;
}

/* Lineage and description of a version from the upload's query. */
static bool upload_query(tw_server_req *req, tw_arena *a,
                         tw_meta_version *spec) {
  size_t n = tw_server_req_query_count(req), runs = 0, parents = 0;
  for (size_t i = 0; i < n; i++) {
    const char *k = tw_server_req_query_at(req, i).name;
    runs += strcmp(k, "run_id") == 0;
    parents += strcmp(k, "parent") == 0;
  }
  const char **r = tw_arena_calloc(a, runs + 1, sizeof *r);
  tw_meta_parent *p = tw_arena_calloc(a, parents + 1, sizeof *p);
  if (r == NULL || p == NULL) {
    (void)reply_status(req, TW_ENOMEM, NULL);
    return false;
  }
  size_t ir = 0, ip = 0;
  for (size_t i = 0; i < n; i++) {
    tw_server_kv kv = tw_server_req_query_at(req, i);
    if (strcmp(kv.name, "run_id") == 0)
      r[ir++] = kv.value;
    else if (strcmp(kv.name, "parent") == 0 &&
             !parse_parent(req, kv.value, a, &p[ip++]))
      return false;
  }
  spec->run_ids = r;
  spec->n_run_ids = runs;
  spec->parents = p;
  spec->n_parents = parents;
  spec->description = tw_server_req_query(req, "description");
  return true;
}

/* POST .../versions with a .wasm body: validate, store the artifact,
 * create the version, tag the artifact "v<N>" (and ?tag=). */
static int version_upload(tw_server_req *req, tw_server_api *api,
                          const char *model) {
  static const char *const allowed[] = {"repository", "tag",    "description",
                                        "run_id",     "parent", NULL};
  static const char *const rep[] = {"run_id", "parent", NULL};
  if (!query_check(req, allowed, rep))
    return TW_OK;
  const tw_buf *body = tw_server_req_body(req);
  if (body == NULL || body->len == 0)
    return reply_bad(req, "the body must be a .wasm module; it is empty");
  char repo[TW_META_REPOSITORY_MAX + 1];
  const char *qrepo = tw_server_req_query(req, "repository");
  const char *tag = tw_server_req_query(req, "tag");
  tw_err err;
  tw_err_init(&err);
  if (qrepo != NULL) {
    if (tw_reg_name_check(qrepo, strlen(qrepo), &err) != TW_OK)
      return reply_err(req, TW_EINVAL, &err);
    (void)snprintf(repo, sizeof repo, "%s", qrepo);
  } else if (!default_repository(model, repo, sizeof repo)) {
    return reply_bad(req,
                     "model '%.128s' has no valid default repository "
                     "(models/<name in lower case>): give ?repository=",
                     model);
  }
  if (tag != NULL && tw_reg_tag_check(tag, strlen(tag), &err) != TW_OK)
    return reply_err(req, TW_EINVAL, &err);

  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version spec;
  memset(&spec, 0, sizeof spec);
  tw_meta_model mm;
  tw_reg_model built;
  bool have_built = false;
  int rc = TW_OK;
  if (!upload_query(req, &a, &spec))
    goto out;
  /* The model must exist before the module is worth compiling. */
  if (tw_meta_model_get(api->meta, model, &a, &mm, &err) != TW_OK) {
    rc = reply_err(req, err.code, &err);
    goto out;
  }
  /* Lineage checked before anything is stored (the store checks it
   * again, in the version's transaction). */
  for (size_t i = 0; i < spec.n_parents; i++) {
    tw_meta_version pv;
    if (tw_meta_version_get(api->meta, spec.parents[i].model,
                            spec.parents[i].version, &a, &pv, &err) != TW_OK) {
      rc = reply_err(req, err.code, &err);
      goto out;
    }
  }
  for (size_t i = 0; i < spec.n_run_ids; i++)
    if (!run_id_ok(req, spec.run_ids[i])) {
      rc = TW_OK;
      goto out;
    }
  if (tw_reg_model_build(api->engine, body->data, body->len, true, &built,
                         &err) != TW_OK) {
    rc = reply_err(req, err.code == TW_ENOMEM ? TW_ENOMEM : TW_EVALIDATE, &err);
    goto out;
  }
  have_built = true;
  tw_reg_err re;
  tw_reg_err_init(&re);
  tw_reg_put_result res;
  if (tw_reg_model_push(api->reg, repo, NULL, &built, &res, &re) != TW_OK) {
    rc = reply_reg(req, &re);
    goto out;
  }
  if (tw_buf_putc(&built.config, '\0') != TW_OK) {
    rc = reply_status(req, TW_ENOMEM, NULL);
    goto out;
  }
  spec.model = model;
  spec.status = TW_META_STATUS_READY;
  spec.artifact.repository = repo;
  spec.artifact.manifest_digest = built.manifest_digest;
  spec.artifact.wasm_digest = built.wasm_digest;
  spec.artifact.size = (int64_t)built.wasm_size;
  spec.artifact.descriptor = built.config.data;
  int64_t version = 0;
  if (tw_meta_version_create(api->meta, &spec, &version, &err) != TW_OK) {
    rc = reply_err(req, err.code, &err);
    goto out;
  }
  char vtag[32];
  (void)snprintf(vtag, sizeof vtag, "v%" PRId64, version);
  const char *tags[2] = {vtag, tag};
  for (size_t i = 0; i < 2 && tags[i] != NULL; i++) {
    tw_reg_err_init(&re);
    if (tw_reg_manifest_put(api->reg, repo, tags[i], TW_REG_MT_MANIFEST,
                            built.manifest.data, built.manifest.len, &res,
                            &re) != TW_OK) {
      rc = reply_reg(req, &re);
      goto out;
    }
  }
  add_location(req, model, version);
  rc = reply_version(req, api, model, version, 201);
out:
  if (have_built)
    tw_reg_model_fini(&built);
  tw_arena_fini(&a);
  return rc;
}

/* Reads the members of a JSON version registration's "artifact":
 * {"repository":..., "manifest_digest" or "reference":...}, filling the
 * rest from the registry. */
static bool artifact_from_registry(tw_server_req *req, tw_server_api *api,
                                   json_t *art, tw_arena *a,
                                   tw_meta_artifact *out) {
  static const char *const keys[] = {"repository", "manifest_digest",
                                     "reference", NULL};
  tw_err err;
  tw_err_init(&err);
  if (!json_is_object(art))
    return reply_bad(req, "body: 'artifact' must be an object"), false;
  if (!keys_ok(req, art, "artifact", keys))
    return false;
  const char *repo = NULL, *digest = NULL, *ref = NULL;
  if (!opt_str(req, art, "repository", &repo) ||
      !opt_str(req, art, "manifest_digest", &digest) ||
      !opt_str(req, art, "reference", &ref))
    return false;
  if (repo == NULL || (digest == NULL) == (ref == NULL))
    return reply_bad(req, "body: 'artifact' needs 'repository' and one of "
                          "'manifest_digest' or 'reference'"),
           false;
  if (tw_reg_name_check(repo, strlen(repo), &err) != TW_OK)
    return reply_err(req, TW_EINVAL, &err), false;
  bool is_digest = false;
  const char *r = digest != NULL ? digest : ref;
  if (tw_reg_reference_check(r, strlen(r), &is_digest, &err) != TW_OK ||
      (digest != NULL && !is_digest))
    return reply_bad(req, "artifact: '%.80s' is not a %s", r,
                     digest != NULL ? "digest" : "tag or digest"),
           false;
  tw_reg_model_info info;
  memset(&info, 0, sizeof info);
  tw_buf_init(&info.descriptor);
  tw_reg_err re;
  tw_reg_err_init(&re);
  bool ok = true;
  if (tw_reg_model_info_get(api->reg, repo, r, &info, &re) != TW_OK ||
      tw_buf_putc(&info.descriptor, '\0') != TW_OK) {
    if (re.err.code == TW_OK)
      (void)reply_status(req, TW_ENOMEM, NULL);
    else
      (void)reply_reg(req, &re);
    ok = false;
  } else {
    out->repository = tw_arena_strdup(a, repo);
    out->manifest_digest = tw_arena_strdup(a, info.manifest_digest);
    out->wasm_digest = tw_arena_strdup(a, info.ref.wasm_digest);
    out->size = info.ref.wasm_size;
    out->descriptor = tw_arena_strdup(a, info.descriptor.data);
    if (out->repository == NULL || out->manifest_digest == NULL ||
        out->wasm_digest == NULL || out->descriptor == NULL) {
      (void)reply_status(req, TW_ENOMEM, NULL);
      ok = false;
    }
  }
  tw_buf_fini(&info.descriptor);
  return ok;
}

/* POST .../versions with a JSON body: registers an artifact already in
 * the registry (or none yet). */
static int version_register(tw_server_req *req, tw_server_api *api,
                            const char *model) {
  static const char *const keys[] = {
      "description", "status", "artifact", "tags", "run_ids", "parents", NULL};
  if (!no_query(req))
    return TW_OK;
  json_t *body = req_object(req, keys);
  if (body == NULL)
    return TW_OK;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version spec;
  memset(&spec, 0, sizeof spec);
  spec.model = model;
  spec.artifact.size = -1;
  int rc = TW_OK;
  const char *status = NULL;
  tw_err err;
  tw_err_init(&err);
  if (!opt_str(req, body, "description", &spec.description) ||
      !opt_str(req, body, "status", &status) ||
      !opt_tags(req, body, "tags", &a, &spec.tags, &spec.n_tags))
    goto out;
  if (status != NULL &&
      tw_meta_status_parse(status, &spec.status, &err) != TW_OK) {
    rc = reply_err(req, TW_EINVAL, &err);
    goto out;
  }
  json_t *runs = json_object_get(body, "run_ids");
  if (runs != NULL) {
    size_t n = json_is_array(runs) ? json_array_size(runs) : 0;
    const char **r = tw_arena_calloc(&a, n + 1, sizeof *r);
    if (!json_is_array(runs) || r == NULL) {
      rc = r == NULL ? reply_status(req, TW_ENOMEM, NULL)
                     : reply_bad(req, "body: 'run_ids' must be an array");
      goto out;
    }
    for (size_t i = 0; i < n; i++) {
      json_t *s = json_array_get(runs, i);
      if (!json_is_string(s)) {
        rc = reply_bad(req, "body: run_ids[%zu] must be a string", i);
        goto out;
      }
      r[i] = json_string_value(s);
    }
    spec.run_ids = r;
    spec.n_run_ids = n;
  }
  json_t *pars = json_object_get(body, "parents");
  if (pars != NULL) {
    size_t n = json_is_array(pars) ? json_array_size(pars) : 0;
    tw_meta_parent *p = tw_arena_calloc(&a, n + 1, sizeof *p);
    if (!json_is_array(pars) || p == NULL) {
      rc = p == NULL ? reply_status(req, TW_ENOMEM, NULL)
                     : reply_bad(req, "body: 'parents' must be an array");
      goto out;
    }
    static const char *const pkeys[] = {"model", "version", NULL};
    for (size_t i = 0; i < n; i++) {
      json_t *o = json_array_get(pars, i);
      int64_t v = 0;
      if (!json_is_object(o)) {
        rc = reply_bad(req, "body: parents[%zu] must be an object", i);
        goto out;
      }
      if (!keys_ok(req, o, "parent", pkeys))
        goto out;
      if (tw_json_get_str(o, "parent", "model", true, &p[i].model, &err) !=
          TW_OK) {
        rc = reply_err(req, TW_EINVAL, &err);
        goto out;
      }
      if (!get_count(req, o, "parent", "version", &v))
        goto out;
      p[i].version = v;
    }
    spec.parents = p;
    spec.n_parents = n;
  }
  json_t *art = json_object_get(body, "artifact");
  if (art != NULL && !artifact_from_registry(req, api, art, &a, &spec.artifact))
    goto out;
  int64_t version = 0;
  if (tw_meta_version_create(api->meta, &spec, &version, &err) != TW_OK) {
    rc = reply_err(req, err.code, &err);
    goto out;
  }
  add_location(req, model, version);
  rc = reply_version(req, api, model, version, 201);
out:
  tw_arena_fini(&a);
  json_decref(body);
  return rc;
}

static int version_create(tw_server_req *req, void *ud) {
  const char *model = tw_server_req_param(req, "model");
  if (ctype_is(req, "application/wasm"))
    return version_upload(req, ud, model);
  if (ctype_is(req, "application/json"))
    return version_register(req, ud, model);
  return tw_server_req_respond_error(
      req, 415, "UNSUPPORTED_MEDIA_TYPE",
      "a version is created from a module (Content-Type: application/wasm) "
      "or a JSON registration (application/json)");
}

static int version_get(tw_server_req *req, void *ud) {
  if (!no_query(req))
    return TW_OK;
  int64_t v = req_version(req);
  if (v == 0)
    return TW_OK;
  return reply_version(req, ud, tw_server_req_param(req, "model"), v, 200);
}

static int version_update(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  static const char *const keys[] = {"description", "status", NULL};
  const char *model = tw_server_req_param(req, "model");
  if (!no_query(req))
    return TW_OK;
  int64_t ver = req_version(req);
  if (ver == 0)
    return TW_OK;
  json_t *body = req_object(req, keys);
  if (body == NULL)
    return TW_OK;
  const char *desc = NULL, *status = NULL;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_err err;
  tw_err_init(&err);
  int rc = TW_OK;
  tw_meta_version cur;
  tw_meta_status st;
  if (!opt_str(req, body, "description", &desc) ||
      !opt_str(req, body, "status", &status))
    goto out;
  if (desc == NULL && status == NULL) {
    rc = reply_bad(req, "body: nothing to change (description, status)");
    goto out;
  }
  if (status != NULL && tw_meta_status_parse(status, &st, &err) != TW_OK) {
    rc = reply_err(req, TW_EINVAL, &err);
    goto out;
  }
  if (status == NULL) {
    if (tw_meta_version_get(api->meta, model, ver, &a, &cur, &err) != TW_OK) {
      rc = reply_err(req, err.code, &err);
      goto out;
    }
    st = cur.status;
  }
  if (tw_meta_version_update(api->meta, model, ver, desc, st, &err) != TW_OK)
    rc = reply_err(req, err.code, &err);
  else
    rc = reply_version(req, api, model, ver, 200);
out:
  tw_arena_fini(&a);
  json_decref(body);
  return rc;
}

static int version_delete(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  int64_t v = req_version(req);
  if (v == 0)
    return TW_OK;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_meta_version_delete(api->meta, tw_server_req_param(req, "model"),
                                  v, &err);
  return reply_deleted(req, rc, &err);
}

/* GET .../versions/{version}/wasm: the module, streamed from the blob. */
static int version_wasm(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  int64_t ver = req_version(req);
  if (ver == 0)
    return TW_OK;
  const char *model = tw_server_req_param(req, "model");
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version v;
  tw_err err;
  tw_err_init(&err);
  int rc;
  if (tw_meta_version_get(api->meta, model, ver, &a, &v, &err) != TW_OK) {
    rc = reply_err(req, err.code, &err);
  } else if (v.artifact.repository == NULL || v.artifact.wasm_digest == NULL) {
    rc = reply_status(req, TW_ENOENT,
                      "this version has no module (no artifact registered)");
  } else {
    tw_reg_err re;
    tw_reg_err_init(&re);
    tw_buf path = TW_BUF_INIT;
    int64_t size = 0;
    int fd = -1;
    if (tw_reg_blob_stat(api->reg, v.artifact.repository,
                         v.artifact.wasm_digest, &size, &path, &re) == TW_OK &&
        (fd = open(path.data, O_RDONLY | O_CLOEXEC)) < 0)
      (void)tw_reg_err_set(&re, TW_REG_BLOB_UNKNOWN, 0, TW_ENOENT,
                           "the module %s is gone", v.artifact.wasm_digest);
    tw_buf_fini(&path);
    if (fd < 0) {
      rc = reply_reg(req, &re);
    } else {
      char disp[300];
      (void)snprintf(disp, sizeof disp,
                     "attachment; filename=\"%s-%" PRId64 ".wasm\"", model,
                     ver);
      (void)tw_server_req_header_add(req, "Content-Disposition", disp);
      (void)tw_server_req_header_add(req, "Docker-Content-Digest",
                                     v.artifact.wasm_digest);
      rc = tw_server_req_respond_file(req, 200, "application/wasm", fd, 0,
                                      (uint64_t)size, TW_SERVER_FILE_RANGES);
    }
  }
  tw_arena_fini(&a);
  return rc;
}

static int version_tag_set(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  const char *model = tw_server_req_param(req, "model");
  int64_t ver = req_version(req);
  if (ver == 0)
    return TW_OK;
  json_t *body = NULL;
  const char *value = tag_value(req, &body);
  int rc = TW_OK;
  if (value != NULL) {
    tw_err err;
    tw_err_init(&err);
    if (tw_meta_version_tag_set(api->meta, model, ver,
                                tw_server_req_param(req, "key"), value,
                                &err) != TW_OK)
      rc = reply_err(req, err.code, &err);
    else
      rc = reply_version(req, api, model, ver, 200);
  }
  json_decref(body);
  return rc;
}

static int version_tag_delete(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  int64_t ver = req_version(req);
  if (ver == 0)
    return TW_OK;
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_meta_version_tag_delete(api->meta, tw_server_req_param(req, "model"),
                                 ver, tw_server_req_param(req, "key"), &err);
  return reply_deleted(req, rc, &err);
}

/* --- Aliases -----------------------------------------------------------------
 */

static int alias_get(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  const char *model = tw_server_req_param(req, "model");
  const char *alias = tw_server_req_param(req, "alias");
  tw_err err;
  tw_err_init(&err);
  if (tw_meta_name_check(model, &err) != TW_OK)
    return reply_err(req, TW_EINVAL, &err);
  if (strcmp(alias, "latest") != 0 && tw_meta_alias_check(alias, &err) != TW_OK)
    return reply_err(req, TW_EINVAL, &err);
  tw_buf ref = TW_BUF_INIT;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version v;
  int rc;
  if (tw_buf_printf(&ref, "%s@%s", model, alias) != TW_OK)
    rc = reply_status(req, TW_ENOMEM, NULL);
  else if (tw_meta_version_resolve(api->meta, ref.data, &a, &v, &err) != TW_OK)
    rc = reply_err(req, err.code, &err);
  else
    rc = reply_json(req, 200, version_json(&v));
  tw_buf_fini(&ref);
  tw_arena_fini(&a);
  return rc;
}

static int alias_set(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  static const char *const keys[] = {"version", NULL};
  if (!no_query(req))
    return TW_OK;
  json_t *body = req_object(req, keys);
  if (body == NULL)
    return TW_OK;
  const char *model = tw_server_req_param(req, "model");
  const char *alias = tw_server_req_param(req, "alias");
  tw_err err;
  tw_err_init(&err);
  int64_t v = 0;
  int rc = TW_OK;
  if (!get_count(req, body, "body", "version", &v)) {
    /* answered */
  } else if (tw_meta_alias_set(api->meta, model, alias, v, &err) != TW_OK) {
    rc = reply_err(req, err.code, &err);
  } else {
    json_t *o =
        json_pack("{s:s,s:I}", "alias", alias, "version", (json_int_t)v);
    rc = reply_json(req, 200, o);
  }
  json_decref(body);
  return rc;
}

static int alias_delete(tw_server_req *req, void *ud) {
  tw_server_api *api = ud;
  if (!no_query(req))
    return TW_OK;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_meta_alias_delete(api->meta, tw_server_req_param(req, "model"),
                                tw_server_req_param(req, "alias"), &err);
  return reply_deleted(req, rc, &err);
}

/* --- Routes ------------------------------------------------------------------
 */

int tw_server_api_add(tw_server *srv, tw_reg *reg, tw_meta *meta,
                      tw_wasm_engine *e, tw_server_api **out, tw_err *err) {
  *out = NULL;
  tw_server_api *api = tw_calloc(1, sizeof *api);
  if (api == NULL)
    return tw_err_set(err, TW_ENOMEM, "api: out of memory");
  api->reg = reg;
  api->meta = meta;
  api->engine = e;
  *out = api;
  const unsigned BUF = TW_SERVER_ROUTE_BUFFER_BODY;
  const uint64_t none = 0, json = API_JSON_MAX, wasm = API_WASM_MAX;
#define M "/api/v1/models/{model}"
#define V M "/versions/{version}"
  const tw_server_route routes[] = {
      {"GET", "/api/v1/models", "api.models", 0, none, NULL, NULL, NULL,
       models_search, NULL, api},
      {"POST", "/api/v1/models", "api.model.create", BUF, json, NULL, NULL,
       NULL, model_create, NULL, api},
      {"GET", M, "api.model", 0, none, NULL, NULL, NULL, model_get, NULL, api},
      {"PATCH", M, "api.model.update", BUF, json, NULL, NULL, NULL,
       model_update, NULL, api},
      {"DELETE", M, "api.model.delete", 0, none, NULL, NULL, NULL, model_delete,
       NULL, api},
      {"PUT", M "/tags/{key...}", "api.model.tag", BUF, json, NULL, NULL, NULL,
       model_tag_set, NULL, api},
      {"DELETE", M "/tags/{key...}", "api.model.tag.delete", 0, none, NULL,
       NULL, NULL, model_tag_delete, NULL, api},
      {"GET", M "/versions", "api.versions", 0, none, NULL, NULL, NULL,
       model_versions, NULL, api},
      {"POST", M "/versions", "api.version.create", BUF, wasm, NULL, NULL, NULL,
       version_create, NULL, api},
      {"GET", V, "api.version", 0, none, NULL, NULL, NULL, version_get, NULL,
       api},
      {"PATCH", V, "api.version.update", BUF, json, NULL, NULL, NULL,
       version_update, NULL, api},
      {"DELETE", V, "api.version.delete", 0, none, NULL, NULL, NULL,
       version_delete, NULL, api},
      {"GET", V "/wasm", "api.version.wasm", 0, none, NULL, NULL, NULL,
       version_wasm, NULL, api},
      {"PUT", V "/tags/{key...}", "api.version.tag", BUF, json, NULL, NULL,
       NULL, version_tag_set, NULL, api},
      {"DELETE", V "/tags/{key...}", "api.version.tag.delete", 0, none, NULL,
       NULL, NULL, version_tag_delete, NULL, api},
      {"GET", M "/aliases/{alias}", "api.alias", 0, none, NULL, NULL, NULL,
       alias_get, NULL, api},
      {"PUT", M "/aliases/{alias}", "api.alias.set", BUF, json, NULL, NULL,
       NULL, alias_set, NULL, api},
      {"DELETE", M "/aliases/{alias}", "api.alias.delete", 0, none, NULL, NULL,
       NULL, alias_delete, NULL, api},
      {"GET", "/api/v1/versions", "api.versions.search", 0, none, NULL, NULL,
       NULL, versions_search, NULL, api},
  };
#undef M
#undef V
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    int rc = tw_server_route_add(srv, &routes[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

void tw_server_api_free(tw_server_api *a) { tw_free(a); }
