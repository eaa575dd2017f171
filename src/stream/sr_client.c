/*
 * sr_client.c - a Confluent Schema Registry REST client on libcurl
 * (twin/schema_registry.h), with a cache of schemas by id, and the cache
 * of stream bindings by (stream schema, id) built from it.
 *
 * Invariants:
 *  - A schema entry, once in the id cache, is never changed nor removed
 *    until the client is freed: a registry never changes the schema
 *    behind an id, and callers hold borrowed pointers into entries.
 *  - No lock is held across a request: two threads missing the same id
 *    may both ask; the first insert wins and the second's copy is freed.
 *  - Every response body is bounded (max_response) while it arrives;
 *    beyond it the transfer is aborted.
 *  - Messages name the URL asked (without credentials, which never go
 *    into the URL) and the id or subject.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/buf.h"
#include "twin/clock.h"
#include "twin/json.h"
#include "twin/schema_registry.h"

#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_RESPONSE ((size_t)1 << 20)
#define ID_BUCKETS 256u

typedef struct sr_entry {
  struct sr_entry *next;
  uint32_t id;
  char *type;
  char *text;
} sr_entry;

struct tw_sr_client {
  char *base; /* without a trailing '/' */
  unsigned timeout_ms;
  char *basic_auth;
  char *ca_file;
  size_t max_response;
  pthread_mutex_t mu;
  sr_entry *ids[ID_BUCKETS]; /* mu */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

int tw_sr_client_new(const char *url, const tw_sr_client_opts *opts,
                     tw_sr_client **out, tw_err *err) {
  *out = NULL;
  if (url == NULL ||
      (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
    return tw_err_set(err, TW_EINVAL,
                      "schema registry URL '%s': expected http:// or https://",
                      url ? url : "(null)");
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return tw_err_set(err, TW_EINTERNAL, "libcurl: %s",
                      curl_easy_strerror(curl_init_rc));
  tw_sr_client *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "schema registry client: out of memory");
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/')
    n--;
  c->base = tw_strndup(url, n);
  c->timeout_ms =
      opts && opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
  c->max_response =
      opts && opts->max_response ? opts->max_response : DEFAULT_MAX_RESPONSE;
  pthread_mutex_init(&c->mu, NULL);
  bool oom = c->base == NULL;
  if (opts && opts->basic_auth) {
    c->basic_auth = tw_strdup(opts->basic_auth);
    oom = oom || c->basic_auth == NULL;
  }
  if (opts && opts->ca_file) {
    c->ca_file = tw_strdup(opts->ca_file);
    oom = oom || c->ca_file == NULL;
  }
  if (oom) {
    tw_sr_client_free(c);
    return tw_err_set(err, TW_ENOMEM, "schema registry client: out of memory");
  }
  *out = c;
  return TW_OK;
}

void tw_sr_client_free(tw_sr_client *c) {
  if (c == NULL)
    return;
  for (unsigned b = 0; b < ID_BUCKETS; b++)
    for (sr_entry *e = c->ids[b], *nx; e != NULL; e = nx) {
      nx = e->next;
      tw_free(e->type);
      tw_free(e->text);
      tw_free(e);
    }
  pthread_mutex_destroy(&c->mu);
  tw_free(c->base);
  tw_free(c->basic_auth);
  tw_free(c->ca_file);
  tw_free(c);
}

/* --- Requests ----------------------------------------------------------------
 */

typedef struct sink {
  tw_buf body;
  size_t max;
  bool over;
  bool oom;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  sink *s = ud;
  size_t n = size * nmemb;
  if (s->body.len + n > s->max) {
    s->over = true;
    return 0;
  }
  if (tw_buf_append(&s->body, ptr, n) != TW_OK) {
    s->oom = true;
    return 0;
  }
  return n;
}

/* Appends the percent-encoding of s (every byte but RFC 3986 unreserved
 * ones). */
static int put_escaped(tw_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int rc;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
      rc = tw_buf_putc(b, (char)*p);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = tw_buf_append(b, e, 3);
    }
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* Maps a registry error response to a code and message. what names the
 * object ("schema id 7", "subject 'x'"). */
static int api_error(const char *url, long status, const tw_buf *body,
                     const char *what, tw_err *err) {
  json_t *v = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
  json_t *ec = json_object_get(v, "error_code");
  json_t *em = json_object_get(v, "message");
  long code = json_is_integer(ec) ? (long)json_integer_value(ec) : status;
  char msg[512];
  (void)snprintf(msg, sizeof msg, "%s",
                 json_is_string(em) ? json_string_value(em) : "");
  json_decref(v);
  int rc;
  if (code == 40401 || code == 40403 || code == 40402 || status == 404)
    rc = tw_err_set(err, TW_ENOENT, "%s: %s not found (%ld%s%s)", url, what,
                    code, msg[0] ? ": " : "", msg);
  else if (code == 42201 || code == 409 || code == 42202 || code == 42203 ||
           status == 409 || status == 422)
    rc = tw_err_set(err, TW_EVALIDATE, "%s: %s refused (%ld): %s", url, what,
                    code, msg[0] ? msg : "no message");
  else if (status == 401 || status == 403)
    rc = tw_err_set(err, TW_EAUTH, "%s: HTTP %ld%s%s", url, status,
                    msg[0] ? ": " : "", msg);
  else
    rc = tw_err_set(err, TW_EIO, "%s: %s: HTTP %ld, error %ld%s%s", url, what,
                    status, code, msg[0] ? ": " : "", msg);
  return rc;
}

/* Sends method to base + path (with body as JSON when non-NULL) and
 * parses a 2xx answer into *out (owned). */
static int call(tw_sr_client *c, const char *method, const char *path,
                const char *body, const char *what, json_t **out, tw_err *err) {
  tw_buf url = TW_BUF_INIT;
  sink s = {.body = TW_BUF_INIT, .max = c->max_response};
  if (tw_buf_printf(&url, "%s%s", c->base, path) != TW_OK) {
    tw_buf_fini(&url);
    return tw_err_set(err, TW_ENOMEM, "schema registry: out of memory");
  }
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = NULL;
  hdr = curl_slist_append(
      hdr, "Accept: application/vnd.schemaregistry.v1+json, "
           "application/vnd.schemaregistry+json, application/json");
  if (body != NULL && hdr != NULL) {
    struct curl_slist *h2 = curl_slist_append(
        hdr, "Content-Type: application/vnd.schemaregistry.v1+json");
    if (h2 == NULL) {
      curl_slist_free_all(hdr);
      hdr = NULL;
    } else {
      hdr = h2;
    }
  }
  int rc = TW_OK;
  if (h == NULL || hdr == NULL) {
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", url.data);
    goto done;
  }
  curl_easy_setopt(h, CURLOPT_URL, url.data);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (body != NULL) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  if (c->basic_auth != NULL) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERPWD, c->basic_auth);
  }
  if (c->ca_file != NULL)
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
  CURLcode cc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (s.over) {
    rc = tw_err_set(err, TW_ELIMIT, "%s: response larger than %zu bytes",
                    url.data, c->max_response);
  } else if (s.oom) {
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", url.data);
  } else if (cc == CURLE_OPERATION_TIMEDOUT) {
    rc = tw_err_set(err, TW_ETIMEDOUT, "%s: no answer within %u ms", url.data,
                    c->timeout_ms);
  } else if (cc != CURLE_OK) {
    rc = tw_err_set(err, TW_ECONN, "%s: %s", url.data, curl_easy_strerror(cc));
  } else if (status < 200 || status > 299) {
    rc = api_error(url.data, status, &s.body, what, err);
  } else {
    json_error_t je;
    json_t *v = json_loadb(s.body.data ? s.body.data : "", s.body.len,
                           JSON_DECODE_ANY, &je);
    if (v == NULL)
      rc = tw_err_set(err, TW_EPROTO, "%s: the answer is not JSON: %s",
                      url.data, je.text);
    else
      *out = v;
  }
done:
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  tw_buf_fini(&s.body);
  tw_buf_fini(&url);
  return rc;
}

/* --- The id cache
 * --------------------------------------------------------------
 */

static sr_entry *find_locked(tw_sr_client *c, uint32_t id) {
  for (sr_entry *e = c->ids[id % ID_BUCKETS]; e != NULL; e = e->next)
    if (e->id == id)
      return e;
  return NULL;
}

/* Inserts (id, type, text) unless present; *out gets the entry kept. */
static int remember(tw_sr_client *c, uint32_t id, const char *type,
                    const char *text, const sr_entry **out, tw_err *err) {
  sr_entry *e = tw_calloc(1, sizeof *e);
  if (e != NULL) {
    e->id = id;
    e->type = tw_strdup(type);
    e->text = tw_strdup(text);
  }
  if (e == NULL || e->type == NULL || e->text == NULL) {
    if (e != NULL) {
      tw_free(e->type);
      tw_free(e->text);
      tw_free(e);
    }
    return tw_err_set(err, TW_ENOMEM, "schema id %u: out of memory", id);
  }
  pthread_mutex_lock(&c->mu);
  sr_entry *have = find_locked(c, id);
  if (have == NULL) {
    e->next = c->ids[id % ID_BUCKETS];
    c->ids[id % ID_BUCKETS] = e;
    have = e;
    e = NULL;
  }
  pthread_mutex_unlock(&c->mu);
  if (e != NULL) {
    tw_free(e->type);
    tw_free(e->text);
    tw_free(e);
  }
  *out = have;
  return TW_OK;
}

int tw_sr_get_schema(tw_sr_client *c, uint32_t id, const char **type,
                     const char **text, tw_err *err) {
  pthread_mutex_lock(&c->mu);
  const sr_entry *e = find_locked(c, id);
  pthread_mutex_unlock(&c->mu);
  if (e == NULL) {
    char path[64], what[32];
    (void)snprintf(path, sizeof path, "/schemas/ids/%u", id);
    (void)snprintf(what, sizeof what, "schema id %u", id);
    json_t *v = NULL;
    int rc = call(c, "GET", path, NULL, what, &v, err);
    if (rc != TW_OK)
      return rc;
    json_t *s = json_object_get(v, "schema");
    json_t *t = json_object_get(v, "schemaType");
    if (!json_is_string(s) || (t != NULL && !json_is_string(t))) {
      json_decref(v);
      return tw_err_set(err, TW_EPROTO,
                        "%s%s: the answer has no \"schema\" string", c->base,
                        path);
    }
    /* The API leaves schemaType out for AVRO, its default. */
    rc = remember(c, id, t ? json_string_value(t) : "AVRO",
                  json_string_value(s), &e, err);
    json_decref(v);
    if (rc != TW_OK)
      return rc;
  }
  if (type != NULL)
    *type = e->type;
  if (text != NULL)
    *text = e->text;
  return TW_OK;
}

static int subject_path(const char *subject, const char *suffix, tw_buf *out,
                        tw_err *err) {
  if (subject == NULL || subject[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "schema registry: empty subject");
  if (tw_buf_puts(out, "/subjects/") != TW_OK ||
      put_escaped(out, subject) != TW_OK || tw_buf_puts(out, suffix) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "schema registry: out of memory");
  return TW_OK;
}

/* A JSON integer in [1, UINT32_MAX]. */
static bool id_of(const json_t *v, uint32_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 1 ||
      json_integer_value(v) > (json_int_t)UINT32_MAX)
    return false;
  *out = (uint32_t)json_integer_value(v);
  return true;
}

int tw_sr_register(tw_sr_client *c, const char *subject, const char *type,
                   const char *text, uint32_t *id, tw_err *err) {
  if (type == NULL || text == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "schema registry: registering needs a type and a text");
  tw_buf path = TW_BUF_INIT;
  int rc = subject_path(subject, "/versions", &path, err);
  if (rc != TW_OK) {
    tw_buf_fini(&path);
    return rc;
  }
  json_t *req = json_pack("{s:s,s:s,s:[]}", "schema", text, "schemaType", type,
                          "references");
  char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  json_decref(req);
  char what[320];
  (void)snprintf(what, sizeof what, "schema for subject '%.255s'", subject);
  json_t *v = NULL;
  if (body == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "schema registry: out of memory");
  else
    rc = call(c, "POST", path.data, body, what, &v, err);
  free(body);
  uint32_t got = 0;
  if (rc == TW_OK && !id_of(json_object_get(v, "id"), &got))
    rc = tw_err_set(err, TW_EPROTO, "%s%s: the answer has no schema \"id\"",
                    c->base, path.data);
  if (rc == TW_OK)
    *id = got;
  json_decref(v);
  tw_buf_fini(&path);
  return rc;
}

int tw_sr_latest(tw_sr_client *c, const char *subject, uint32_t *id,
                 int64_t *version, const char **text, tw_err *err) {
  tw_buf path = TW_BUF_INIT;
  int rc = subject_path(subject, "/versions/latest", &path, err);
  if (rc != TW_OK) {
    tw_buf_fini(&path);
    return rc;
  }
  char what[300];
  (void)snprintf(what, sizeof what, "subject '%.255s'", subject);
  json_t *v = NULL;
  rc = call(c, "GET", path.data, NULL, what, &v, err);
  uint32_t got = 0;
  json_t *ver = json_object_get(v, "version");
  json_t *s = json_object_get(v, "schema");
  json_t *t = json_object_get(v, "schemaType");
  if (rc == TW_OK &&
      (!id_of(json_object_get(v, "id"), &got) || !json_is_integer(ver) ||
       !json_is_string(s) || (t != NULL && !json_is_string(t))))
    rc = tw_err_set(err, TW_EPROTO,
                    "%s%s: the answer lacks \"id\", \"version\" or \"schema\"",
                    c->base, path.data);
  const sr_entry *e = NULL;
  if (rc == TW_OK)
    rc = remember(c, got, t ? json_string_value(t) : "AVRO",
                  json_string_value(s), &e, err);
  if (rc == TW_OK) {
    if (id != NULL)
      *id = got;
    if (version != NULL)
      *version = (int64_t)json_integer_value(ver);
    if (text != NULL)
      *text = e->text;
  }
  json_decref(v);
  tw_buf_fini(&path);
  return rc;
}

/* --- Bindings by id ----------------------------------------------------------
 */

typedef struct bind_entry {
  struct bind_entry *next;
  const tw_stream_schema *schema;
  uint32_t id;
  tw_stream_binding *binding; /* NULL: a failure */
  tw_err fail;
  uint64_t until_ns; /* failures: answered from here until then */
  uint64_t seq;      /* failures: insertion order, for eviction */
} bind_entry;

struct tw_stream_bindings {
  pthread_mutex_t mu;
  uint64_t ttl_ns;
  size_t max_failures;
  size_t n_failures; /* mu */
  uint64_t seq;      /* mu */
  bind_entry *b[ID_BUCKETS];
};

int tw_stream_bindings_new(const tw_stream_bindings_opts *opts,
                           tw_stream_bindings **out, tw_err *err) {
  *out = NULL;
  tw_stream_bindings *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "binding cache: out of memory");
  unsigned ttl = opts && opts->failure_ttl_ms ? opts->failure_ttl_ms : 5000;
  c->ttl_ns = (uint64_t)ttl * 1000000u;
  c->max_failures =
      opts && opts->max_failures ? opts->max_failures : (size_t)1024;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return TW_OK;
}

static void entry_free(bind_entry *e) {
  tw_stream_binding_free(e->binding);
  tw_free(e);
}

void tw_stream_bindings_free(tw_stream_bindings *c) {
  if (c == NULL)
    return;
  for (unsigned i = 0; i < ID_BUCKETS; i++)
    for (bind_entry *e = c->b[i], *nx; e != NULL; e = nx) {
      nx = e->next;
      entry_free(e);
    }
  pthread_mutex_destroy(&c->mu);
  tw_free(c);
}

static unsigned bucket_of(const tw_stream_schema *s, uint32_t id) {
  uintptr_t h = (uintptr_t)s >> 4;
  return (unsigned)((h ^ id ^ (id >> 8)) % ID_BUCKETS);
}

/* Unlinks and frees e (a failure) from the table; mu held. */
static void drop_locked(tw_stream_bindings *c, bind_entry *e) {
  for (bind_entry **p = &c->b[bucket_of(e->schema, e->id)]; *p != NULL;
       p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      c->n_failures--;
      entry_free(e);
      return;
    }
}

/* Makes room for one more failure: drops the expired ones, then the
 * oldest while over the limit. mu held. */
static void evict_locked(tw_stream_bindings *c, uint64_t now) {
  for (unsigned i = 0; i < ID_BUCKETS; i++)
    for (bind_entry *e = c->b[i], *nx; e != NULL; e = nx) {
      nx = e->next;
      if (e->binding == NULL && e->until_ns <= now)
        drop_locked(c, e);
    }
  while (c->n_failures >= c->max_failures) {
    bind_entry *old = NULL;
    for (unsigned i = 0; i < ID_BUCKETS; i++)
      for (bind_entry *e = c->b[i]; e != NULL; e = e->next)
        if (e->binding == NULL && (old == NULL || e->seq < old->seq))
          old = e;
    if (old == NULL)
      break;
    drop_locked(c, old);
  }
}

/* Builds the binding of id to s: fetch, check the type, bind. */
static int build(tw_sr_client *sr, const tw_stream_schema *s, uint32_t id,
                 tw_stream_binding **out, tw_err *err) {
  const char *type = NULL, *text = NULL;
  int rc = tw_sr_get_schema(sr, id, &type, &text, err);
  if (rc != TW_OK)
    return rc;
  if (strcmp(type, "JSON") != 0)
    return tw_err_set(err, TW_ENOTSUP,
                      "schema id %u: a %s schema; records must be bound to a "
                      "JSON Schema",
                      id, type);
  tw_err e;
  tw_err_init(&e);
  rc = tw_stream_binding_new(s, TW_STREAM_JSON_SCHEMA, text, strlen(text), out,
                             &e);
  if (rc != TW_OK)
    return tw_err_set(err, rc, "schema id %u: %s", id, tw_err_msg(&e));
  return TW_OK;
}

int tw_stream_bindings_get(tw_stream_bindings *c, tw_sr_client *sr,
                           const tw_stream_schema *s, uint32_t id,
                           const tw_stream_binding **out, tw_err *err) {
  unsigned bk = bucket_of(s, id);
  uint64_t now = tw_clock_mono_ns();
  pthread_mutex_lock(&c->mu);
  bind_entry *hit = NULL;
  for (bind_entry *e = c->b[bk]; e != NULL; e = e->next)
    if (e->schema == s && e->id == id) {
      hit = e;
      break;
    }
  if (hit != NULL && hit->binding != NULL) {
    *out = hit->binding;
    pthread_mutex_unlock(&c->mu);
    return TW_OK;
  }
  if (hit != NULL && hit->until_ns > now) {
    int code = hit->fail.code;
    tw_err copy = hit->fail;
    pthread_mutex_unlock(&c->mu);
    return tw_err_set(err, code, "%s", tw_err_msg(&copy));
  }
  if (hit != NULL)
    drop_locked(c, hit);
  pthread_mutex_unlock(&c->mu);

  bind_entry *ne = tw_calloc(1, sizeof *ne);
  if (ne == NULL)
    return tw_err_set(err, TW_ENOMEM, "schema id %u: out of memory", id);
  ne->schema = s;
  ne->id = id;
  tw_err_init(&ne->fail);
  int rc = build(sr, s, id, &ne->binding, &ne->fail);
  if (rc == TW_ENOMEM) {
    /* Not remembered: memory may be back on the next record. */
    tw_err_set(err, rc, "%s", tw_err_msg(&ne->fail));
    tw_free(ne);
    return rc;
  }
  pthread_mutex_lock(&c->mu);
  bind_entry *have = NULL;
  for (bind_entry *e = c->b[bk]; e != NULL; e = e->next)
    if (e->schema == s && e->id == id) {
      have = e;
      break;
    }
  if (have != NULL && have->binding != NULL) {
    /* Another thread bound it meanwhile: keep its binding. */
    *out = have->binding;
    pthread_mutex_unlock(&c->mu);
    entry_free(ne);
    return TW_OK;
  }
  if (have != NULL)
    drop_locked(c, have);
  if (rc != TW_OK) {
    evict_locked(c, now);
    ne->until_ns = now + c->ttl_ns;
    ne->seq = c->seq++;
    c->n_failures++;
  }
  ne->next = c->b[bk];
  c->b[bk] = ne;
  if (rc == TW_OK)
    *out = ne->binding;
  tw_err copy = ne->fail;
  pthread_mutex_unlock(&c->mu);
  if (rc != TW_OK)
    return tw_err_set(err, rc, "%s", tw_err_msg(&copy));
  return TW_OK;
}
