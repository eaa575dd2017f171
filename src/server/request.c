/*
 * request.c - one HTTP request: its executor (the route's callbacks run in
 * order, one at a time, on the pool or inline for fast routes), its
 * accessors, the respond functions any thread may call, and the writer
 * that sends the response from the loop thread as the socket drains.
 *
 * A response is built by the handler side under req->mu and published by
 * setting responded; from then on only the loop thread reads it (except
 * stream_ready, under mu). Writing goes on in a writable callback while
 * the socket takes it (lws_send_pipe_choked, as libwebsockets' own file
 * server does), up to TW__SERVER_WRITE_MAX bytes, so a slow client holds
 * at most one chunk of memory and never blocks the loop: libwebsockets
 * buffers what the socket does not take and calls back when it has
 * drained.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "server_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"

/* --- Executor ------------------------------------------------------------ */

tw__ev *tw__server_ev_new(int kind, const void *data, size_t len) {
  tw__ev *ev = tw_alloc(sizeof *ev + len);
  if (ev == NULL)
    return NULL;
  ev->next = NULL;
  ev->kind = kind;
  ev->flag = false;
  ev->len = len;
  if (len > 0)
    memcpy(ev->data, data, len);
  return ev;
}

static void exec_drain(void *arg) {
  tw__exec *x = arg;
  for (;;) {
    pthread_mutex_lock(x->mu);
    tw__ev *ev = x->head;
    if (ev == NULL) {
      x->running = false;
      pthread_mutex_unlock(x->mu);
      return;
    }
    x->head = ev->next;
    if (x->head == NULL)
      x->tail = NULL;
    pthread_mutex_unlock(x->mu);
    bool gone = x->run(x->owner, ev);
    tw_free(ev);
    if (gone)
      return;
  }
}

void tw__server_exec_post(tw__exec *x, tw__ev *ev) {
  pthread_mutex_lock(x->mu);
  if (x->tail != NULL)
    x->tail->next = ev;
  else
    x->head = ev;
  x->tail = ev;
  bool start = !x->running;
  x->running = true;
  pthread_mutex_unlock(x->mu);
  if (!start)
    return;
  /* Without memory for a pool task the events run here: late, not lost. */
  if (x->fast || tw_pool_submit(x->pool, exec_drain, x) != TW_OK)
    exec_drain(x);
}

/* --- Life ---------------------------------------------------------------- */

void tw__server_dec_live(tw_server *srv) {
  pthread_mutex_lock(&srv->mu);
  srv->live--;
  pthread_cond_broadcast(&srv->cv);
  pthread_mutex_unlock(&srv->mu);
}

static void resp_fini(tw__resp *r) {
  tw_free(r->ctype);
  tw_buf_fini(&r->headers);
  tw_buf_fini(&r->body);
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
  if (r->done_fn != NULL)
    r->done_fn(r->ud);
  r->done_fn = NULL;
}

static bool req_run(void *owner, tw__ev *ev);

int tw__server_req_new(tw_server *srv, const tw__route *route,
                       tw_server_req **out) {
  tw_server_req *req = tw_calloc(1, sizeof *req);
  if (req == NULL)
    return TW_ENOMEM;
  if (pthread_mutex_init(&req->mu, NULL) != 0) {
    tw_free(req);
    return TW_ENOMEM;
  }
  req->close_ev = tw__server_ev_new(TW__EV_CLOSE, NULL, 0);
  if (req->close_ev == NULL) {
    pthread_mutex_destroy(&req->mu);
    tw_free(req);
    return TW_ENOMEM;
  }
  req->srv = srv;
  req->route = route;
  atomic_init(&req->refs, 2); /* the loop's and the executor's */
  tw_arena_init(&req->arena, 4096);
  req->content_length = -1;
  req->resp.fd = -1;
  req->exec.mu = &req->mu;
  req->exec.fast =
      route == NULL || (route->http.flags & TW_SERVER_ROUTE_FAST) != 0;
  req->exec.pool = srv->pool;
  req->exec.run = req_run;
  req->exec.owner = req;
  pthread_mutex_lock(&srv->mu);
  srv->live++;
  pthread_mutex_unlock(&srv->mu);
  *out = req;
  return TW_OK;
}

void tw__server_req_unref(tw_server_req *req) {
  if (atomic_fetch_sub(&req->refs, 1) != 1)
    return;
  tw_server *srv = req->srv;
  resp_fini(&req->resp);
  tw_free(req->close_ev);
  tw_buf_fini(&req->body);
  tw_free(req->wbuf);
  tw_arena_fini(&req->arena);
  pthread_mutex_destroy(&req->mu);
  tw_free(req);
  tw__server_dec_live(srv);
}

/* --- Accessors ----------------------------------------------------------- */

const char *tw_server_req_method(const tw_server_req *req) {
  return req->method;
}
const char *tw_server_req_path(const tw_server_req *req) { return req->path; }
const char *tw_server_req_raw_path(const tw_server_req *req) {
  return req->raw_path;
}
const char *tw_server_req_remote(const tw_server_req *req) {
  return req->remote;
}
int64_t tw_server_req_content_length(const tw_server_req *req) {
  return req->content_length;
}
const char *tw_server_req_route(const tw_server_req *req) {
  return req->route_name;
}
const tw_buf *tw_server_req_body(const tw_server_req *req) {
  return &req->body;
}
tw_server *tw_server_req_server(const tw_server_req *req) { return req->srv; }
void tw_server_req_set_data(tw_server_req *req, void *data) {
  req->data = data;
}
void *tw_server_req_data(const tw_server_req *req) { return req->data; }

bool tw_server_req_cancelled(const tw_server_req *req) {
  pthread_mutex_lock(req->exec.mu);
  bool c = req->cancelled;
  pthread_mutex_unlock(req->exec.mu);
  return c;
}

const char *tw_server_req_param(const tw_server_req *req, const char *name) {
  for (size_t i = 0; i < req->nparams; i++)
    if (strcmp(req->params[i].name, name) == 0)
      return req->params[i].value;
  return NULL;
}

const char *tw_server_req_query(const tw_server_req *req, const char *name) {
  for (size_t i = 0; i < req->nquery; i++)
    if (strcmp(req->query[i].name, name) == 0)
      return req->query[i].value;
  return NULL;
}
size_t tw_server_req_query_count(const tw_server_req *req) {
  return req->nquery;
}
tw_server_kv tw_server_req_query_at(const tw_server_req *req, size_t i) {
  return req->query[i];
}

const char *tw_server_req_header(const tw_server_req *req, const char *name) {
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}

/* --- Responding ---------------------------------------------------------- */

const char *tw_server_status_text(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 206:
    return "Partial Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 429:
    return "Too Many Requests";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  default:
    return "";
  }
}

int tw__server_status_of(int code) {
  switch (code) {
  case TW_EINVAL:
  case TW_EPARSE:
  case TW_EVALIDATE:
  case TW_EDIGEST:
  case TW_ETYPE:
  case TW_ERANGE:
    return 400;
  case TW_EAUTH:
    return 401;
  case TW_EPERM:
    return 403;
  case TW_ENOENT:
    return 404;
  case TW_EEXIST:
    return 409;
  case TW_ELIMIT:
    return 413;
  case TW_EBUSY:
    return 503;
  case TW_ENOTSUP:
    return 501;
  default:
    return 500;
  }
}

int tw_server_req_header_add(tw_server_req *req, const char *name,
                             const char *value) {
  if (!tw__server_header_ok(name, value))
    return TW_EINVAL;
  pthread_mutex_lock(&req->mu);
  int rc = TW_ESTATE;
  if (!req->responded) {
    size_t mark = req->resp.headers.len;
    rc = tw_buf_append(&req->resp.headers, name, strlen(name) + 1);
    if (rc == TW_OK)
      rc = tw_buf_append(&req->resp.headers, value, strlen(value) + 1);
    if (rc != TW_OK)
      tw_buf_truncate(&req->resp.headers, mark);
  }
  pthread_mutex_unlock(&req->mu);
  return rc;
}

/* Publishes a response whose body fields are in r (taken in all cases). */
static int publish(tw_server_req *req, int status, const char *ctype,
                   tw__resp *r) {
  char *ct = ctype != NULL ? tw_strdup(ctype) : NULL;
  pthread_mutex_lock(&req->mu);
  int rc = TW_OK;
  if (req->responded || req->cancelled)
    rc = TW_ESTATE;
  else if (ctype != NULL && ct == NULL)
    rc = TW_ENOMEM;
  if (rc != TW_OK) {
    pthread_mutex_unlock(&req->mu);
    tw_free(ct);
    r->ctype = NULL;
    tw_buf_init(&r->headers);
    resp_fini(r);
    return rc;
  }
  req->resp.status = status;
  req->resp.ctype = ct;
  req->resp.kind = r->kind;
  req->resp.body = r->body;
  req->resp.fd = r->fd;
  req->resp.off = r->off;
  req->resp.len = r->len;
  req->resp.file_flags = r->file_flags;
  req->resp.length = r->length;
  req->resp.produce = r->produce;
  req->resp.done_fn = r->done_fn;
  req->resp.ud = r->ud;
  req->responded = true;
  pthread_mutex_unlock(&req->mu);
  tw__server_wake_req(req);
  return TW_OK;
}

static tw__resp resp_empty(tw__body_kind kind) {
  tw__resp r;
  memset(&r, 0, sizeof r);
  r.kind = kind;
  r.fd = -1;
  return r;
}

int tw_server_req_respond_buf(tw_server_req *req, int status, const char *ctype,
                              tw_buf *body) {
  tw__resp r = resp_empty(TW__BODY_BUF);
  if (body != NULL) {
    r.body = *body;
    tw_buf_init(body);
  }
  return publish(req, status, ctype, &r);
}

int tw_server_req_respond(tw_server_req *req, int status, const char *ctype,
                          const void *body, size_t len) {
  tw_buf b = TW_BUF_INIT;
  if (len > 0 && tw_buf_append(&b, body, len) != TW_OK)
    return TW_ENOMEM;
  return tw_server_req_respond_buf(req, status, ctype, &b);
}

static int error_body(tw_buf *b, const char *code, const char *msg) {
  int rc = tw_buf_puts(b, "{\"error\":{\"code\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, code, strlen(code));
  if (rc == TW_OK)
    rc = tw_buf_puts(b, ",\"message\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, msg, strlen(msg));
  if (rc == TW_OK)
    rc = tw_buf_puts(b, "}}\n");
  return rc;
}

int tw_server_req_respond_error(tw_server_req *req, int status,
                                const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  tw_buf b = TW_BUF_INIT;
  if (error_body(&b, code, msg) != TW_OK) {
    tw_buf_fini(&b);
    return TW_ENOMEM;
  }
  return tw_server_req_respond_buf(req, status, "application/json", &b);
}

int tw_server_req_respond_file(tw_server_req *req, int status,
                               const char *ctype, int fd, uint64_t offset,
                               uint64_t len, unsigned flags) {
  tw__resp r = resp_empty(TW__BODY_FILE);
  r.fd = fd;
  r.off = offset;
  r.len = len;
  r.file_flags = flags;
  return publish(req, status, ctype, &r);
}

int tw_server_req_respond_stream(tw_server_req *req, int status,
                                 const char *ctype, int64_t length,
                                 tw_server_produce_fn fn,
                                 void (*done_fn)(void *ud), void *ud) {
  tw__resp r = resp_empty(TW__BODY_STREAM);
  r.length = length < 0 ? -1 : length;
  r.produce = fn;
  r.done_fn = done_fn;
  r.ud = ud;
  return publish(req, status, ctype, &r);
}

void tw_server_req_resume(tw_server_req *req) {
  pthread_mutex_lock(&req->mu);
  req->stream_ready = true;
  pthread_mutex_unlock(&req->mu);
  tw__server_wake_req(req);
}

void tw__server_req_reject(tw_server_req *req, int status, const char *code,
                           const char *message) {
  req->close_after = req->close_after || req->body_expected;
  if (tw_server_req_respond_error(req, status, code, "%s", message) != TW_OK)
    (void)tw_server_req_respond(req, status, NULL, NULL, 0);
}

/* A callback failed with rc: answer for it unless it already did. */
static void fail(tw_server_req *req, int rc) {
  pthread_mutex_lock(&req->mu);
  req->failed = true;
  bool answered = req->responded;
  pthread_mutex_unlock(&req->mu);
  if (answered)
    return;
  int status = tw__server_status_of(rc);
  (void)tw_server_req_respond_error(req, status, tw_err_name(rc), "%s",
                                    tw_strerror(rc));
}

/* Runs one event of the request on the executor's thread. */
static bool req_run(void *owner, tw__ev *ev) {
  tw_server_req *req = owner;
  const tw_server_route *rt = req->route ? &req->route->http : NULL;
  pthread_mutex_lock(&req->mu);
  bool skip = req->failed || req->responded;
  pthread_mutex_unlock(&req->mu);
  int rc = TW_OK;
  switch (ev->kind) {
  case TW__EV_HEADERS:
    if (rt != NULL && rt->on_headers != NULL && !skip)
      rc = rt->on_headers(req, rt->ud);
    break;
  case TW__EV_BODY:
    if (rt != NULL && !skip) {
      if (rt->on_body != NULL)
        rc = rt->on_body(req, ev->data, ev->len, rt->ud);
      else if (tw_buf_append(&req->body, ev->data, ev->len) != TW_OK)
        rc = TW_ENOMEM;
    }
    pthread_mutex_lock(&req->mu);
    req->queued -= ev->len;
    bool resume = req->queued <= TW_SERVER_BODY_WINDOW / 4 && !req->want_resume;
    if (resume)
      req->want_resume = true;
    pthread_mutex_unlock(&req->mu);
    if (resume)
      tw__server_wake_req(req);
    break;
  case TW__EV_END:
    if (rt != NULL && !skip)
      rc = rt->on_end(req, rt->ud);
    break;
  case TW__EV_CLOSE:
    if (rt != NULL && rt->on_close != NULL)
      rt->on_close(req, ev->flag, rt->ud);
    if (ev == req->close_ev)
      req->close_ev = NULL;    /* freed by the executor after this */
    tw__server_req_unref(req); /* the executor's reference */
    return true;
  default:
    break;
  }
  if (rc < 0)
    fail(req, rc);
  return false;
}

/* --- Wake-ups to the loop ------------------------------------------------ */

void tw__server_wake_req(tw_server_req *req) {
  tw_server *srv = req->srv;
  pthread_mutex_lock(&srv->mu);
  if (!srv->loop_dead && !req->wake_queued) {
    req->wake_queued = true;
    atomic_fetch_add(&req->refs, 1);
    req->wake_next = srv->wake_head;
    srv->wake_head = req;
    lws_cancel_service(srv->lws);
  }
  pthread_mutex_unlock(&srv->mu);
}

/* --- The loop side ------------------------------------------------------- */

void tw__server_req_detach(tw_server_req *req, bool completed) {
  tw_server *srv = req->srv;
  if (!req->finished) {
    tw__server_access_log(srv, req, 499, req->sent);
    req->finished = true;
  }
  if (req->conn != NULL)
    req->conn->req = NULL;
  req->conn = NULL;
  req->wsi = NULL;
  srv->inflight--;
  tw_metric_add(srv->m_inflight, -1);
  pthread_mutex_lock(&req->mu);
  if (!completed)
    req->cancelled = true;
  pthread_mutex_unlock(&req->mu);
  tw__ev *ev = req->close_ev; /* made with the request: cannot fail */
  ev->flag = completed;
  tw__server_exec_post(&req->exec, ev);
  tw__server_req_unref(req); /* the loop's reference */
}

/* Adds "name: value" to the headers being built. */
static int hdr(struct lws *wsi, const char *name, const char *value,
               unsigned char **p, unsigned char *end) {
  char n[128];
  size_t len = strlen(name);
  if (len + 2 > sizeof n)
    return -1;
  memcpy(n, name, len);
  n[len] = ':';
  n[len + 1] = '\0';
  return lws_add_http_header_by_name(wsi, (const unsigned char *)n,
                                     (const unsigned char *)value,
                                     (int)strlen(value), p, end);
}

/* Decides Range for a file response; may change status and lengths. */
static void file_ranges(tw_server_req *req, tw__resp *r) {
  if (!(r->file_flags & TW_SERVER_FILE_RANGES) || r->status != 200)
    return;
  const char *range = tw_server_req_header(req, "range");
  if (range == NULL)
    return;
  uint64_t size = r->len, first, last;
  int k = tw__server_range_parse(range, size, &first, &last);
  if (k > 0) {
    r->status = 206;
    r->off += first;
    r->len = last - first + 1;
    char cr[96];
    (void)snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu",
                   (unsigned long long)first, (unsigned long long)last,
                   (unsigned long long)size);
    (void)tw_buf_append(&r->headers, "Content-Range", 14);
    (void)tw_buf_append(&r->headers, cr, strlen(cr) + 1);
  } else if (k < 0) {
    char cr[64];
    (void)snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
    (void)tw_buf_append(&r->headers, "Content-Range", 14);
    (void)tw_buf_append(&r->headers, cr, strlen(cr) + 1);
    r->status = 416;
    r->len = 0;
  }
}

static int write_headers(tw_server_req *req) {
  tw__resp *r = &req->resp;
  struct lws *wsi = req->wsi;
  if (r->kind == TW__BODY_FILE) {
    file_ranges(req, r);
    if (r->file_flags & TW_SERVER_FILE_RANGES)
      (void)tw_buf_append(&r->headers, "Accept-Ranges\0bytes", 20);
  }
  bool known = true;
  uint64_t len = 0;
  if (r->kind == TW__BODY_BUF)
    len = r->body.len;
  else if (r->kind == TW__BODY_FILE)
    len = r->len;
  else if (r->length >= 0)
    len = (uint64_t)r->length;
  else
    known = false;
  /* No body for HEAD, 1xx, 204 and 304 (Content-Length still says what a
   * GET would carry, except for 204/304 where it is left out). */
  bool bodyless = r->status == 204 || r->status == 304 || r->status < 200;
  req->to_send = (req->head || bodyless) ? 0 : len;
  req->chunked_out = !known && !req->head && !bodyless;
  if (!req->body_done && req->body_expected)
    req->close_after = true; /* the rest of the body stays unread */
  pthread_mutex_lock(&req->srv->mu);
  if (req->srv->stop_requested)
    req->close_after = true;
  pthread_mutex_unlock(&req->srv->mu);

  size_t cap = 1024 + r->headers.len + (r->ctype ? strlen(r->ctype) : 0);
  unsigned char *buf = tw_alloc(LWS_PRE + cap);
  if (buf == NULL)
    return -1;
  unsigned char *start = buf + LWS_PRE, *p = start, *end = start + cap;
  int bad = lws_add_http_header_status(wsi, (unsigned)r->status, &p, end);
  char num[32];
  if (!bad && !bodyless && (known || req->head)) {
    (void)snprintf(num, sizeof num, "%llu", (unsigned long long)len);
    bad = hdr(wsi, "content-length", num, &p, end);
  }
  if (!bad && req->chunked_out)
    bad = hdr(wsi, "transfer-encoding", "chunked", &p, end);
  if (!bad && r->ctype != NULL)
    bad = hdr(wsi, "content-type", r->ctype, &p, end);
  if (!bad && req->close_after)
    bad = hdr(wsi, "connection", "close", &p, end);
  for (size_t o = 0; !bad && o < r->headers.len;) {
    const char *name = r->headers.data + o;
    const char *value = name + strlen(name) + 1;
    o = (size_t)(value - r->headers.data) + strlen(value) + 1;
    bad = hdr(wsi, name, value, &p, end);
  }
  if (!bad)
    bad = lws_finalize_write_http_header(wsi, start, &p, end);
  tw_free(buf);
  req->status_sent = r->status;
  req->started = true;
  return bad ? -1 : 0;
}

/* The next chunk of the body into req->wbuf + LWS_PRE (room for chunked
 * framing around it). Returns the length, 0 when nothing is ready, -1 on
 * error; *eof at the end. */
static int next_chunk(tw_server_req *req, unsigned char *dst, size_t cap,
                      bool *eof) {
  tw__resp *r = &req->resp;
  *eof = false;
  if (r->kind == TW__BODY_BUF) {
    size_t n = r->body.len - (size_t)req->sent;
    if (n > cap)
      n = cap;
    memcpy(dst, r->body.data + req->sent, n);
    *eof = req->sent + n == req->to_send;
    return (int)n;
  }
  if (r->kind == TW__BODY_FILE) {
    uint64_t left = req->to_send - req->sent;
    size_t n = left < cap ? (size_t)left : cap;
    ssize_t got;
    do
      got = pread(r->fd, dst, n, (off_t)(r->off + req->sent));
    while (got < 0 && errno == EINTR);
    if (got <= 0)
      return -1; /* an error or a file that shrank: cut the response */
    *eof = req->sent + (uint64_t)got == req->to_send;
    return (int)got;
  }
  size_t len = 0;
  bool end = false;
  pthread_mutex_lock(&req->mu);
  req->stream_ready = false;
  pthread_mutex_unlock(&req->mu);
  if (r->produce(r->ud, dst, cap, &len, &end) < 0 || len > cap)
    return -1;
  if (!req->chunked_out && req->sent + len > req->to_send)
    return -1;
  *eof = end || (!req->chunked_out && req->sent + len == req->to_send);
  return (int)len;
}

static int finish(tw_server_req *req) {
  struct lws *wsi = req->wsi;
  tw__server_access_log(req->srv, req, req->status_sent, req->sent);
  req->finished = true;
  bool close_after = req->close_after;
  tw__server_req_detach(req, true);
  if (close_after)
    return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Sends a file body from the page cache straight to the socket with
 * sendfile(2), without the copy through user space. Only when
 * libwebsockets holds none of its own output (the caller checked
 * lws_send_pipe_choked): the socket's byte stream is then ours, and
 * libwebsockets does not count body bytes (Content-Length is a header we
 * wrote). Returns as tw__server_req_writable, or 1 when the file cannot be
 * sent this way (the caller goes on with pread + lws_write). */
static int send_direct(tw_server_req *req, struct lws *wsi) {
  tw__resp *r = &req->resp;
  int sock = lws_get_socket_fd(wsi);
  size_t budget = TW__SERVER_WRITE_MAX;
  while (req->sent < req->to_send && budget > 0) {
    uint64_t left = req->to_send - req->sent;
    /* Pieces of TW__SERVER_CHUNK: on loopback they measured faster than
     * one call for the whole budget (the reader starts sooner). */
    size_t n = left < TW__SERVER_CHUNK ? (size_t)left : TW__SERVER_CHUNK;
    if (n > budget)
      n = budget;
    off_t off = (off_t)(r->off + req->sent);
    ssize_t k = sendfile(sock, r->fd, &off, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0 && errno == EAGAIN)
      break;
    if (k < 0 && (errno == EINVAL || errno == ENOSYS)) {
      req->no_sendfile = true;
      return 1;
    }
    if (k <= 0)
      return -1; /* an error, or a file that shrank: cut the response */
    req->sent += (uint64_t)k;
    budget -= (size_t)k;
  }
  if (req->sent == req->to_send)
    return finish(req);
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                  (int)req->srv->opts.write_timeout_s);
  lws_callback_on_writable(wsi);
  return 0;
}

int tw__server_req_writable(tw_server_req *req) {
  struct lws *wsi = req->wsi;
  tw_server *srv = req->srv;
  if (!req->started) {
    if (write_headers(req) != 0)
      return -1;
    if (req->to_send == 0 && !req->chunked_out)
      return finish(req);
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                    (int)srv->opts.write_timeout_s);
    /* The body follows the head in the same callback when the socket
     * takes it: one wake-up, and a small response leaves at once. */
    if (lws_send_pipe_choked(wsi)) {
      lws_callback_on_writable(wsi);
      return 0;
    }
  }
  if (req->resp.kind == TW__BODY_FILE && !req->chunked_out &&
      !req->no_sendfile && !lws_send_pipe_choked(wsi)) {
    int rc = send_direct(req, wsi);
    if (rc != 1)
      return rc;
  }
  if (req->wbuf == NULL) {
    req->wbuf = tw_alloc(LWS_PRE + TW__SERVER_CHUNK + 32);
    if (req->wbuf == NULL)
      return -1;
  }
  /* Chunks while the socket takes them, at most TW__SERVER_WRITE_MAX
   * bytes per callback so one fast reader does not starve the others. */
  for (size_t written = 0;;) {
    /* Chunked framing: room for "XXXXXXXX\r\n" before, "\r\n0\r\n\r\n"
     * after. */
    unsigned char *data = req->wbuf + LWS_PRE + 10;
    bool eof;
    int n = next_chunk(req, data, TW__SERVER_CHUNK - 16, &eof);
    if (n < 0)
      return -1;
    if (n == 0 && !eof) {
      if (req->resp.kind != TW__BODY_STREAM)
        return -1;
      lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                      (int)srv->opts.handler_timeout_s);
      pthread_mutex_lock(&req->mu);
      bool ready = req->stream_ready;
      pthread_mutex_unlock(&req->mu);
      if (ready)
        lws_callback_on_writable(wsi);
      return 0;
    }
    unsigned char *out = data;
    size_t outlen = (size_t)n;
    if (req->chunked_out) {
      char head[12];
      int h = 0;
      if (n > 0) {
        h = snprintf(head, sizeof head, "%x\r\n", (unsigned)n);
        out = data - h;
        memcpy(out, head, (size_t)h);
        data[n] = '\r';
        data[n + 1] = '\n';
        outlen = (size_t)h + (size_t)n + 2;
      }
      if (eof) {
        static const unsigned char last[5] = {'0', '\r', '\n', '\r', '\n'};
        for (size_t i = 0; i < sizeof last; i++)
          out[outlen++] = last[i];
      }
    }
    if (outlen > 0 &&
        lws_write(wsi, out, outlen,
                  eof ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)outlen)
      return -1;
    req->sent += (uint64_t)n;
    if (eof)
      return finish(req);
    written += outlen;
    if (written >= TW__SERVER_WRITE_MAX || lws_send_pipe_choked(wsi))
      break;
  }
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                  (int)srv->opts.write_timeout_s);
  lws_callback_on_writable(wsi);
  return 0;
}
