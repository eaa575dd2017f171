/*
 * oci.c - the OCI distribution-spec v1.1 endpoints under /v2/: the HTTP
 * face of a registry (include/twin/registry.h). Handlers parse the
 * request, call the registry and turn its results into responses; every
 * failure is answered with the spec's error body (tw_reg_err_body).
 *
 * Invariants:
 *  - Repository names, digests and references are checked before the
 *    registry is called, so a bad one never reaches the file system.
 *  - Blob bodies (POST, PATCH and PUT of uploads) are streamed to the
 *    upload writer piece by piece and never gathered in memory; only
 *    manifest bodies are, capped at TW_REG_MANIFEST_MAX.
 *  - At most one request works on an upload session at a time: a request
 *    for a session another request holds waits up to SESSION_WAIT_S for
 *    the hold to end (the answered request may still be closing when the
 *    client's next one arrives), then is refused with 409
 *    BLOB_UPLOAD_INVALID (the client retries), so two writers never
 *    append to one session.
 *  - A session created by a POST that then fails (digest mismatch, client
 *    gone mid-body) is removed; a session of a failed PATCH is kept at its
 *    last flushed offset, for the client to resume.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/json.h"
#include "twin/registry.h"
#include "twin/server.h"

/* An upload session known to the server: held by a request (busy), or
 * idle with its handle kept open so the next chunk does not re-hash the
 * bytes received (tw_reg_upload_open does). */
typedef struct oci_session {
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  char *name;        /* the repository of the kept handle */
  tw_reg_upload *up; /* kept handle (idle sessions), or NULL */
  bool busy;
  uint64_t used; /* o->clock when last released, for eviction */
} oci_session;

/* Seconds a request waits for another request's hold on its session. */
#define SESSION_WAIT_S 2

/* Idle handles kept open at most; the least recently used beyond goes. */
#define OCI_KEEP_MAX 64

struct tw_server_oci {
  tw_reg *reg;
  tw_wasm_engine *engine; /* checks pushed models, or NULL */
  pthread_mutex_t mu;
  pthread_cond_t released; /* a session's hold ended (under mu) */
  oci_session *sess;
  size_t nsess, capsess;
  uint64_t clock;
};

/* Per-request state of the upload routes. */
typedef struct oci_req {
  tw_server_oci *o;
  const char *name;
  const char *digest; /* to commit with at the end, or NULL */
  tw_reg_upload *up;
  uint64_t off; /* where the next body byte goes */
  bool held;    /* the request holds the session (session_hold) */
  bool created; /* this request created the session */
  bool keep;    /* the session survives the request */
  bool clean;   /* up's bytes are all flushed: it may be kept open */
  char id[TW_REG_UPLOAD_ID_LEN + 1];
} oci_req;

/* --- Responses ------------------------------------------------------------ */

/* Answers with e's code, status and the spec's error body. */
static int reply_err(tw_server_req *req, tw_reg_err *e) {
  tw_reg_err_finish(e);
  tw_buf b = TW_BUF_INIT;
  if (tw_reg_err_body(e, &b) != TW_OK) {
    tw_buf_fini(&b);
    return tw_server_req_respond_error(req, 500, "UNKNOWN", "out of memory");
  }
  return tw_server_req_respond_buf(req, e->status, "application/json", &b);
}

/* Answers with a fresh error of code (status 0: the code's). */
static int reply_code(tw_server_req *req, tw_reg_code code, int status,
                      const char *fmt, ...) TW_PRINTF(4, 5);
static int reply_code(tw_server_req *req, tw_reg_code code, int status,
                      const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tw_reg_err e;
  tw_reg_err_init(&e);
  (void)tw_reg_err_set(&e, code, status, TW_EINVAL, "%s", msg);
  int rc = reply_err(req, &e);
  return rc;
}

static void header_printf(tw_server_req *req, const char *name, const char *fmt,
                          ...) TW_PRINTF(3, 4);
static void header_printf(tw_server_req *req, const char *name, const char *fmt,
                          ...) {
  char v[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(v, sizeof v, fmt, ap);
  va_end(ap);
  if (n > 0 && (size_t)n < sizeof v)
    (void)tw_server_req_header_add(req, name, v);
}

/* The repository name of the request, or NULL after answering
 * NAME_INVALID. */
static const char *req_name(tw_server_req *req, const char *param) {
  const char *name = tw_server_req_param(req, param);
  tw_err err;
  tw_err_init(&err);
  if (name == NULL || tw_reg_name_check(name, strlen(name), &err) != TW_OK) {
    (void)reply_code(req, TW_REG_NAME_INVALID, 0, "%s", tw_err_msg(&err));
    return NULL;
  }
  return name;
}

/* Checks a digest from the request, answering DIGEST_INVALID if bad.
 * Blobs, manifests and subjects may be named by sha512 digests too. */
static bool digest_ok(tw_server_req *req, const char *digest) {
  tw_err err;
  tw_err_init(&err);
  if (digest == NULL ||
      tw_reg_blob_digest_check(digest, strlen(digest), &err) != TW_OK) {
    (void)reply_code(req, TW_REG_DIGEST_INVALID, 0, "%s", tw_err_msg(&err));
    return false;
  }
  return true;
}

/* --- /v2/ ----------------------------------------------------------------- */

static int v2_base(tw_server_req *req, void *ud) {
  (void)ud;
  (void)tw_server_req_header_add(req, "Docker-Distribution-API-Version",
                                 "registry/2.0");
  return tw_server_req_respond(req, 200, "application/json", "{}", 2);
}

/* --- Blobs ---------------------------------------------------------------- */

static int blob_get(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  const char *digest = tw_server_req_param(req, "digest");
  if (name == NULL || !digest_ok(req, digest))
    return TW_OK;
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_buf path = TW_BUF_INIT;
  int64_t size = 0;
  int rc = tw_reg_blob_stat(o->reg, name, digest, &size, &path, &e);
  int fd = -1;
  if (rc == TW_OK) {
    fd = open(path.data, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      rc = tw_reg_err_set(&e, TW_REG_BLOB_UNKNOWN, 0, TW_ENOENT,
                          "%s: blob %s is gone", name, digest);
  }
  tw_buf_fini(&path);
  if (rc != TW_OK) {
    rc = reply_err(req, &e);
    return rc;
  }
  (void)tw_server_req_header_add(req, "Docker-Content-Digest", digest);
  return tw_server_req_respond_file(req, 200, "application/octet-stream", fd, 0,
                                    (uint64_t)size, TW_SERVER_FILE_RANGES);
}

static int blob_delete(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  const char *digest = tw_server_req_param(req, "digest");
  if (name == NULL || !digest_ok(req, digest))
    return TW_OK;
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc;
  if (tw_reg_blob_delete(o->reg, name, digest, &e) != TW_OK)
    rc = reply_err(req, &e);
  else
    rc = tw_server_req_respond(req, 202, NULL, NULL, 0);
  return rc;
}

/* --- Upload sessions -------------------------------------------------------
 */

static oci_session *session_find(tw_server_oci *o, const char *id) {
  for (size_t i = 0; i < o->nsess; i++)
    if (strcmp(o->sess[i].id, id) == 0)
      return &o->sess[i];
  return NULL;
}

/* Marks session id as held by the calling request, taking the handle kept
 * for it (*up, NULL when none, or one of another repository that the
 * caller must close). TW_EBUSY when another request holds it. */
static int session_hold(tw_server_oci *o, const char *id, tw_reg_upload **up,
                        char **name) {
  int rc = TW_OK;
  *up = NULL;
  *name = NULL;
  pthread_mutex_lock(&o->mu);
  /* A client's next request on a session can arrive while the request
   * that answered it is still closing: wait for that hold to end, a
   * little, before calling the session busy. */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += SESSION_WAIT_S;
  oci_session *s;
  while ((s = session_find(o, id)) != NULL && s->busy &&
         pthread_cond_timedwait(&o->released, &o->mu, &until) == 0)
    ;
  if (s != NULL && s->busy) {
    rc = TW_EBUSY;
  } else if (s != NULL) {
    s->busy = true;
    *up = s->up;
    *name = s->name;
    s->up = NULL;
    s->name = NULL;
  } else {
    if (o->nsess == o->capsess) {
      size_t cap = o->capsess ? o->capsess * 2 : 16;
      oci_session *p = tw_reallocarray(o->sess, cap, sizeof *o->sess);
      if (p == NULL) {
        rc = TW_ENOMEM;
      } else {
        o->sess = p;
        o->capsess = cap;
      }
    }
    if (rc == TW_OK) {
      s = &o->sess[o->nsess++];
      memset(s, 0, sizeof *s);
      (void)snprintf(s->id, sizeof s->id, "%s", id);
      s->busy = true;
    }
  }
  pthread_mutex_unlock(&o->mu);
  return rc;
}

static void session_drop(oci_session *s) {
  tw_reg_upload_close(s->up);
  tw_free(s->name);
}

/* Ends the request's hold on session id: with up (owned, its state
 * flushed) the handle is kept for the next request of name; with NULL the
 * session is forgotten. */
static void session_release(tw_server_oci *o, const char *id, tw_reg_upload *up,
                            const char *name) {
  oci_session evict;
  bool evicted = false;
  char *nm = up != NULL ? tw_strdup(name) : NULL;
  if (up != NULL && nm == NULL) {
    tw_reg_upload_close(up);
    up = NULL;
  }
  pthread_mutex_lock(&o->mu);
  oci_session *s = session_find(o, id);
  if (s != NULL && up != NULL) {
    s->busy = false;
    s->up = up;
    s->name = nm;
    s->used = ++o->clock;
    up = NULL;
    nm = NULL;
    size_t idle = 0, oldest = o->nsess;
    for (size_t i = 0; i < o->nsess; i++) {
      if (o->sess[i].busy)
        continue;
      idle++;
      if (oldest == o->nsess || o->sess[i].used < o->sess[oldest].used)
        oldest = i;
    }
    if (idle > OCI_KEEP_MAX) {
      evict = o->sess[oldest];
      o->sess[oldest] = o->sess[--o->nsess];
      evicted = true;
    }
  } else if (s != NULL) {
    *s = o->sess[--o->nsess];
  }
  pthread_cond_broadcast(&o->released);
  pthread_mutex_unlock(&o->mu);
  /* Closing may touch the disk: outside the lock. */
  if (evicted)
    session_drop(&evict);
  tw_reg_upload_close(up);
  tw_free(nm);
}

/* The Location, Range and Docker-Upload-UUID headers of a session. */
static void upload_headers(tw_server_req *req, const char *name, const char *id,
                           uint64_t off) {
  header_printf(req, "Location", "/v2/%s/blobs/uploads/%s", name, id);
  header_printf(req, "Range", "0-%" PRIu64, off > 0 ? off - 1 : 0);
  (void)tw_server_req_header_add(req, "Docker-Upload-UUID", id);
}

/* Opens session id of the request's route, holding it. Answers and
 * returns false on failure. */
static bool upload_open(tw_server_req *req, oci_req *st) {
  const char *id = tw_server_req_param(req, "id");
  if (id == NULL || strlen(id) != TW_REG_UPLOAD_ID_LEN) {
    (void)reply_code(req, TW_REG_BLOB_UPLOAD_UNKNOWN, 0, "%s: no upload %s",
                     st->name, id ? id : "");
    return false;
  }
  tw_reg_upload *up;
  char *name;
  int rc = session_hold(st->o, id, &up, &name);
  if (rc != TW_OK) {
    (void)reply_code(
        req, rc == TW_EBUSY ? TW_REG_BLOB_UPLOAD_INVALID : TW_REG_UNKNOWN,
        rc == TW_EBUSY ? 409 : 500, "upload %s: %s", id,
        rc == TW_EBUSY ? "busy with another request" : "out of memory");
    return false;
  }
  memcpy(st->id, id, sizeof st->id);
  st->held = true;
  if (up != NULL && strcmp(name, st->name) == 0) {
    st->up = up;
    up = NULL;
  }
  tw_reg_upload_close(up);
  tw_free(name);
  tw_reg_err e;
  tw_reg_err_init(&e);
  if (st->up == NULL &&
      tw_reg_upload_open(st->o->reg, st->name, id, &st->up, &e) != TW_OK) {
    (void)reply_err(req, &e);
    return false;
  }
  st->off = tw_reg_upload_offset(st->up);
  return true;
}

/* Ends the request's part in its session: cancels a session it created
 * and does not keep, and releases its hold (keeping a clean handle open
 * for the next request). Called before the final response, so a client
 * that sends its next request on seeing the response never finds the
 * session still held; and again, harmlessly, when the request closes. */
static void upload_settle(oci_req *st) {
  if (st->up != NULL) {
    if (st->created && !st->keep) {
      tw_reg_err e;
      tw_reg_err_init(&e);
      (void)tw_reg_upload_cancel(st->up, &e);
    }
  }
  tw_reg_upload *kept = NULL;
  if (st->up != NULL && st->clean) {
    kept = st->up;
    st->up = NULL;
  }
  if (st->held)
    session_release(st->o, st->id, kept, st->name);
  else
    tw_reg_upload_close(kept);
  tw_reg_upload_close(st->up);
  st->up = NULL;
  st->held = false;
}

static void upload_state_free(tw_server_req *req, oci_req *st) {
  (void)req;
  upload_settle(st);
  tw_free(st);
}

static oci_req *upload_state_new(tw_server_req *req, tw_server_oci *o) {
  oci_req *st = tw_calloc(1, sizeof *st);
  if (st == NULL)
    return NULL;
  st->o = o;
  tw_server_req_set_data(req, st);
  return st;
}

/* Starts the single-request or chunked upload of POST .../blobs/uploads/,
 * or mounts a blob of another repository. */
static int upload_post_headers(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  oci_req *st = upload_state_new(req, o);
  if (st == NULL)
    return TW_ENOMEM;
  if ((st->name = req_name(req, "name")) == NULL)
    return TW_OK;
  const char *mount = tw_server_req_query(req, "mount");
  const char *from = tw_server_req_query(req, "from");
  const char *digest = tw_server_req_query(req, "digest");
  tw_reg_err e;
  tw_reg_err_init(&e);
  if (mount != NULL && from != NULL) {
    tw_err err;
    tw_err_init(&err);
    int bad = tw_reg_name_check(from, strlen(from), &err);
    if (bad != TW_OK)
      return reply_code(req, TW_REG_NAME_INVALID, 0, "bad 'from' name");
    if (!digest_ok(req, mount))
      return TW_OK;
    if (tw_reg_blob_mount(o->reg, st->name, from, mount, &e) == TW_OK) {
      header_printf(req, "Location", "/v2/%s/blobs/%s", st->name, mount);
      (void)tw_server_req_header_add(req, "Docker-Content-Digest", mount);
      return tw_server_req_respond(req, 201, NULL, NULL, 0);
    }
    if (e.code != TW_REG_BLOB_UNKNOWN) {
      int rc = reply_err(req, &e);
      return rc;
    }
    /* Not in from: an ordinary upload, as the spec says. */
    tw_reg_err_init(&e);
  } else if (digest != NULL) {
    if (!digest_ok(req, digest))
      return TW_OK;
    st->digest = digest;
  }
  if (tw_reg_upload_new(o->reg, st->name, &st->up, &e) != TW_OK) {
    int rc = reply_err(req, &e);
    return rc;
  }
  st->created = true;
  (void)snprintf(st->id, sizeof st->id, "%s", tw_reg_upload_id(st->up));
  tw_reg_upload *none;
  char *nm;
  if (session_hold(o, st->id, &none, &nm) != TW_OK)
    return TW_ENOMEM;
  st->held = true;
  return TW_OK;
}

/* Parses "START-END" (an optional "bytes " or "bytes=" prefix aside). */
static bool parse_range(const char *s, uint64_t *start, uint64_t *end) {
  if (strncmp(s, "bytes", 5) == 0 && (s[5] == ' ' || s[5] == '='))
    s += 6;
  char *p;
  if (*s < '0' || *s > '9')
    return false;
  unsigned long long a = strtoull(s, &p, 10);
  if (*p != '-' || p[1] < '0' || p[1] > '9')
    return false;
  unsigned long long b = strtoull(p + 1, &p, 10);
  if (*p != '\0' || b < a)
    return false;
  *start = a;
  *end = b;
  return true;
}

/* PATCH (a chunk) and PUT (the end, with an optional last chunk) of a
 * session. */
static int upload_chunk_headers(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  oci_req *st = upload_state_new(req, o);
  if (st == NULL)
    return TW_ENOMEM;
  if ((st->name = req_name(req, "name")) == NULL)
    return TW_OK;
  bool put = strcmp(tw_server_req_method(req), "PUT") == 0;
  if (put) {
    st->digest = tw_server_req_query(req, "digest");
    if (!digest_ok(req, st->digest))
      return TW_OK;
  }
  if (!upload_open(req, st))
    return TW_OK;
  const char *cr = tw_server_req_header(req, "Content-Range");
  if (cr != NULL) {
    uint64_t start, end;
    int64_t clen = tw_server_req_content_length(req);
    if (!parse_range(cr, &start, &end) || start != st->off ||
        (clen >= 0 && (uint64_t)clen != end - start + 1)) {
      upload_headers(req, st->name, st->id, st->off);
      return reply_code(req, TW_REG_BLOB_UPLOAD_INVALID, 416,
                        "Content-Range %s does not continue the upload at "
                        "offset %" PRIu64,
                        cr, st->off);
    }
  }
  return TW_OK;
}

static int upload_body(tw_server_req *req, const void *data, size_t len,
                       void *ud) {
  (void)ud;
  oci_req *st = tw_server_req_data(req);
  tw_reg_err e;
  tw_reg_err_init(&e);
  if (tw_reg_upload_append(st->up, st->off, data, len, &e) != TW_OK) {
    if (e.status == 416)
      upload_headers(req, st->name, st->id, st->off);
    int rc = reply_err(req, &e);
    return rc;
  }
  st->off += len;
  return TW_OK;
}

static int upload_end(tw_server_req *req, void *ud) {
  (void)ud;
  oci_req *st = tw_server_req_data(req);
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc;
  if (st->digest != NULL) {
    if (tw_reg_upload_commit(st->up, st->digest, -1, &e) != TW_OK) {
      rc = reply_err(req, &e);
    } else {
      st->keep = true; /* committed: nothing left to cancel */
      upload_settle(st);
      header_printf(req, "Location", "/v2/%s/blobs/%s", st->name, st->digest);
      (void)tw_server_req_header_add(req, "Docker-Content-Digest", st->digest);
      rc = tw_server_req_respond(req, 201, NULL, NULL, 0);
    }
  } else if (tw_reg_upload_flush(st->up, &e) != TW_OK) {
    rc = reply_err(req, &e);
  } else {
    st->keep = true;
    st->clean = true;
    upload_settle(st);
    upload_headers(req, st->name, st->id, st->off);
    rc = tw_server_req_respond(req, 202, NULL, NULL, 0);
  }
  return rc;
}

static void upload_close(tw_server_req *req, bool completed, void *ud) {
  (void)completed;
  (void)ud;
  oci_req *st = tw_server_req_data(req);
  if (st != NULL)
    upload_state_free(req, st);
}

/* GET (status) and DELETE (cancel) of a session. */
static int upload_status(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  oci_req *st = upload_state_new(req, o);
  if (st == NULL)
    return TW_ENOMEM;
  st->keep = true;
  if ((st->name = req_name(req, "name")) == NULL || !upload_open(req, st))
    return TW_OK;
  if (strcmp(tw_server_req_method(req), "DELETE") == 0) {
    tw_reg_err e;
    tw_reg_err_init(&e);
    bool ok = tw_reg_upload_cancel(st->up, &e) == TW_OK;
    upload_settle(st);
    return ok ? tw_server_req_respond(req, 204, NULL, NULL, 0)
              : reply_err(req, &e);
  }
  st->clean = true;
  upload_settle(st);
  upload_headers(req, st->name, st->id, st->off);
  return tw_server_req_respond(req, 204, NULL, NULL, 0);
}

/* --- Manifests ------------------------------------------------------------ */

static int manifest_get(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  if (name == NULL)
    return TW_OK;
  const char *ref = tw_server_req_param(req, "reference");
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_buf body = TW_BUF_INIT, mt = TW_BUF_INIT;
  char digest[TW_STORE_DIGEST_MAX + 1];
  int rc;
  if (tw_reg_manifest_get(o->reg, name, ref, &body, &mt, digest, &e) != TW_OK ||
      tw_buf_putc(&mt, '\0') != TW_OK) {
    rc = reply_err(req, &e);
  } else {
    (void)tw_server_req_header_add(req, "Docker-Content-Digest", digest);
    rc = tw_server_req_respond_buf(req, 200, mt.data, &body);
  }
  tw_buf_fini(&body);
  tw_buf_fini(&mt);
  return rc;
}

static int manifest_put(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  if (name == NULL)
    return TW_OK;
  const char *ref = tw_server_req_param(req, "reference");
  const tw_buf *body = tw_server_req_body(req);
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_reg_put_result res;
  int rc;
  const void *data = body ? body->data : "";
  size_t len = body ? body->len : 0;
  if ((o->engine != NULL &&
       tw_reg_model_check(o->reg, o->engine, name, data, len, &e) != TW_OK) ||
      tw_reg_manifest_put(o->reg, name, ref,
                          tw_server_req_header(req, "Content-Type"), data, len,
                          &res, &e) != TW_OK) {
    rc = reply_err(req, &e);
  } else {
    header_printf(req, "Location", "/v2/%s/manifests/%s", name, res.digest);
    (void)tw_server_req_header_add(req, "Docker-Content-Digest", res.digest);
    if (res.subject[0] != '\0')
      (void)tw_server_req_header_add(req, "OCI-Subject", res.subject);
    rc = tw_server_req_respond(req, 201, NULL, NULL, 0);
  }
  return rc;
}

static int manifest_delete(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  if (name == NULL)
    return TW_OK;
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_manifest_delete(
               o->reg, name, tw_server_req_param(req, "reference"), &e) == TW_OK
               ? tw_server_req_respond(req, 202, NULL, NULL, 0)
               : reply_err(req, &e);
  return rc;
}

/* --- Tags and referrers ---------------------------------------------------
 */

/* The last tag of a tags list body, into out (NUL-terminated). */
static bool last_tag(const tw_buf *list, char *out, size_t cap) {
  json_t *root = NULL;
  if (tw_json_parse(list->data, list->len, NULL, &root, NULL) != TW_OK)
    return false;
  json_t *tags = json_object_get(root, "tags");
  size_t n = json_array_size(tags);
  const char *t = n > 0 ? json_string_value(json_array_get(tags, n - 1)) : NULL;
  bool ok = t != NULL && strlen(t) < cap;
  if (ok)
    memcpy(out, t, strlen(t) + 1);
  json_decref(root);
  return ok;
}

static int tags_list(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  if (name == NULL)
    return TW_OK;
  long n = -1;
  const char *ns = tw_server_req_query(req, "n");
  if (ns != NULL) {
    char *end;
    n = strtol(ns, &end, 10);
    if (*ns < '0' || *ns > '9' || *end != '\0' || n > 100000)
      return reply_code(req, TW_REG_UNSUPPORTED, 400,
                        "n=%s: not a count of tags", ns);
  }
  const char *last = tw_server_req_query(req, "last");
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_buf out = TW_BUF_INIT;
  bool more = false;
  int rc;
  if (tw_reg_tags_list(o->reg, name, n, last, &out, &more, &e) != TW_OK) {
    rc = reply_err(req, &e);
  } else {
    char lt[TW_REG_TAG_MAX + 1];
    if (more && last_tag(&out, lt, sizeof lt))
      header_printf(req, "Link",
                    "</v2/%s/tags/list?n=%ld&last=%s>; "
                    "rel=\"next\"",
                    name, n, lt);
    rc = tw_server_req_respond_buf(req, 200, "application/json", &out);
  }
  tw_buf_fini(&out);
  return rc;
}

static int referrers(tw_server_req *req, void *ud) {
  tw_server_oci *o = ud;
  const char *name = req_name(req, "name");
  const char *digest = tw_server_req_param(req, "digest");
  if (name == NULL || !digest_ok(req, digest))
    return TW_OK;
  const char *at = tw_server_req_query(req, "artifactType");
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_buf out = TW_BUF_INIT;
  bool filtered = false;
  int rc;
  if (tw_reg_referrers(o->reg, name, digest, at && *at ? at : NULL, &out,
                       &filtered, &e) != TW_OK) {
    rc = reply_err(req, &e);
  } else {
    if (filtered)
      (void)tw_server_req_header_add(req, "OCI-Filters-Applied",
                                     "artifactType");
    rc = tw_server_req_respond_buf(req, 200, TW_REG_MT_INDEX, &out);
  }
  tw_buf_fini(&out);
  return rc;
}

/* --- Registration --------------------------------------------------------- */

int tw_server_oci_add(tw_server *srv, tw_reg *reg, tw_server_oci **out,
                      tw_err *err) {
  tw_server_oci *o = tw_calloc(1, sizeof *o);
  if (o == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  o->reg = reg;
  if (pthread_mutex_init(&o->mu, NULL) != 0) {
    tw_free(o);
    return tw_err_set(err, TW_ENOMEM, "cannot create a mutex");
  }
  if (pthread_cond_init(&o->released, NULL) != 0) {
    pthread_mutex_destroy(&o->mu);
    tw_free(o);
    return tw_err_set(err, TW_ENOMEM, "cannot create a condition variable");
  }
  const uint64_t none = 0, any = TW_SERVER_BODY_UNLIMITED;
  const tw_server_route routes[] = {
      {"GET", "/v2/", "oci.base", TW_SERVER_ROUTE_FAST, none, NULL, NULL, NULL,
       v2_base, NULL, o},
      {"GET", "/v2/{name...}/blobs/{digest}", "oci.blob", 0, none, NULL, NULL,
       NULL, blob_get, NULL, o},
      {"DELETE", "/v2/{name...}/blobs/{digest}", "oci.blob.delete", 0, none,
       NULL, NULL, NULL, blob_delete, NULL, o},
      {"POST", "/v2/{name...}/blobs/uploads/", "oci.upload.start", 0, any, NULL,
       upload_post_headers, upload_body, upload_end, upload_close, o},
      {"POST", "/v2/{name...}/blobs/uploads", "oci.upload.start", 0, any, NULL,
       upload_post_headers, upload_body, upload_end, upload_close, o},
      {"PATCH", "/v2/{name...}/blobs/uploads/{id}", "oci.upload.chunk", 0, any,
       NULL, upload_chunk_headers, upload_body, upload_end, upload_close, o},
      {"PUT", "/v2/{name...}/blobs/uploads/{id}", "oci.upload.finish", 0, any,
       NULL, upload_chunk_headers, upload_body, upload_end, upload_close, o},
      {"GET", "/v2/{name...}/blobs/uploads/{id}", "oci.upload.status", 0, none,
       NULL, NULL, NULL, upload_status, upload_close, o},
      {"DELETE", "/v2/{name...}/blobs/uploads/{id}", "oci.upload.cancel", 0,
       none, NULL, NULL, NULL, upload_status, upload_close, o},
      {"GET", "/v2/{name...}/manifests/{reference}", "oci.manifest", 0, none,
       NULL, NULL, NULL, manifest_get, NULL, o},
      {"PUT", "/v2/{name...}/manifests/{reference}", "oci.manifest.put",
       TW_SERVER_ROUTE_BUFFER_BODY, TW_REG_MANIFEST_MAX + 1, NULL, NULL, NULL,
       manifest_put, NULL, o},
      {"DELETE", "/v2/{name...}/manifests/{reference}", "oci.manifest.delete",
       0, none, NULL, NULL, NULL, manifest_delete, NULL, o},
      {"GET", "/v2/{name...}/tags/list", "oci.tags", 0, none, NULL, NULL, NULL,
       tags_list, NULL, o},
      {"GET", "/v2/{name...}/referrers/{digest}", "oci.referrers", 0, none,
       NULL, NULL, NULL, referrers, NULL, o},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    int rc = tw_server_route_add(srv, &routes[i], err);
    if (rc != TW_OK) {
      /* Routes already added keep o as their ud: it must outlive srv, so
       * it is handed out anyway for the caller to free after srv. */
      *out = o;
      return rc;
    }
  }
  *out = o;
  return TW_OK;
}

void tw_server_oci_check_models(tw_server_oci *o, tw_wasm_engine *e) {
  o->engine = e;
}

void tw_server_oci_free(tw_server_oci *o) {
  if (o == NULL)
    return;
  pthread_cond_destroy(&o->released);
  pthread_mutex_destroy(&o->mu);
  for (size_t i = 0; i < o->nsess; i++)
    session_drop(&o->sess[i]);
  tw_free(o->sess);
  tw_free(o);
}
