/*
 * server.c - the server's life and its event loop: options, route table,
 * the listening socket, the libwebsockets context and callback, the
 * wake-up queue from handler threads, graceful stop.
 *
 * The listening socket is ours, not libwebsockets': we bind it (so a bind
 * error is reported exactly and port 0 resolves at once), watch it as a
 * raw descriptor in the loop, accept connections and adopt them into the
 * loop as HTTP connections. Stopping closes it at once, which is how new
 * connections are refused while in-flight requests finish.
 *
 * Threads: everything here runs on the loop thread except the public
 * functions, which say otherwise in server.h. Handler threads reach the
 * loop only through tw__server_wake_req / tw__server_ws_wake, which queue
 * the object under srv->mu and call lws_cancel_service; the loop drains
 * the queue on LWS_CALLBACK_EVENT_WAIT_CANCELLED.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/log.h"

void tw_server_options_init(tw_server_options *opts) {
  memset(opts, 0, sizeof *opts);
  opts->listen = "127.0.0.1:8080";
  opts->max_header_bytes = 65535;
  opts->idle_timeout_s = 60;
  opts->body_timeout_s = 30;
  opts->handler_timeout_s = 300;
  opts->write_timeout_s = 60;
  opts->shutdown_grace_ms = 10000;
}

tw_ctx *tw_server_ctx(const tw_server *srv) { return srv->ctx; }

int tw_server_port(const tw_server *srv) {
  return srv->port; /* written before the loop thread starts */
}

static void route_free(tw__route *r) {
  if (r == NULL)
    return;
  tw_free(r->method);
  tw_free(r->name);
  tw__server_pattern_fini(&r->pat);
  if (r->headers != NULL)
    for (char **h = r->headers; *h != NULL; h++)
      tw_free(*h);
  tw_free(r->headers);
  tw_free(r->static_dir);
  if (r->static_fd >= 0)
    close(r->static_fd);
  tw_free(r);
}

int tw_server_new(tw_ctx *ctx, const tw_server_options *opts, tw_server **out,
                  tw_err *err) {
  tw_server_options def;
  if (opts == NULL) {
    tw_server_options_init(&def);
    opts = &def;
  }
  tw_server *srv = tw_calloc(1, sizeof *srv);
  if (srv == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  srv->ctx = ctx;
  srv->opts = *opts;
  srv->listen_fd = -1;
  tw_server_options d;
  tw_server_options_init(&d);
  if (srv->opts.listen == NULL)
    srv->opts.listen = d.listen;
#define TW__DEFAULT(f)                                                         \
  if (srv->opts.f == 0)                                                        \
  srv->opts.f = d.f
  TW__DEFAULT(max_header_bytes);
  TW__DEFAULT(idle_timeout_s);
  TW__DEFAULT(body_timeout_s);
  TW__DEFAULT(handler_timeout_s);
  TW__DEFAULT(write_timeout_s);
#undef TW__DEFAULT
  if (srv->opts.max_header_bytes > 65535)
    srv->opts.max_header_bytes = 65535;
  int rc = tw__server_listen_parse(srv->opts.listen, srv->host,
                                   sizeof srv->host, &srv->port_req, err);
  if (rc != TW_OK) {
    tw_free(srv);
    return rc;
  }
  srv->listen_spec = tw_strdup(srv->opts.listen);
  if (srv->listen_spec == NULL) {
    tw_free(srv);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  srv->opts.listen = srv->listen_spec;
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cv, NULL);
  srv->pool = opts->pool;
  if (srv->pool == NULL)
    rc = tw_ctx_pool(ctx, &srv->pool, err);
  if (rc == TW_OK)
    rc = tw__server_metrics_init(srv, err);
  if (rc == TW_OK)
    rc = tw__server_builtin_add(srv, err);
  if (rc != TW_OK) {
    tw_server_free(srv);
    return rc;
  }
  *out = srv;
  return TW_OK;
}

/* --- Routes ------------------------------------------------------------- */

static int route_insert(tw_server *srv, tw__route *r, tw_err *err) {
  if (srv->started) {
    route_free(r);
    return tw_err_set(err, TW_ESTATE, "routes are added before the start");
  }
  for (size_t i = 0; i < srv->nroutes; i++) {
    const tw__route *o = srv->routes[i];
    bool same_method = (o->method == NULL && r->method == NULL) ||
                       (o->method != NULL && r->method != NULL &&
                        strcmp(o->method, r->method) == 0);
    if (same_method && strcmp(o->pat.source, r->pat.source) == 0) {
      int e = tw_err_set(err, TW_EINVAL, "route %s %s exists already",
                         r->method ? r->method : "*", r->pat.source);
      route_free(r);
      return e;
    }
  }
  tw__route **grown =
      tw_reallocarray(srv->routes, srv->nroutes + 1, sizeof(tw__route *));
  if (grown == NULL) {
    route_free(r);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  srv->routes = grown;
  srv->routes[srv->nroutes++] = r;
  return TW_OK;
}

static tw__route *route_make(const char *method, const char *pattern,
                             const char *name, tw_err *err, int *rc) {
  tw__route *r = tw_calloc(1, sizeof *r);
  if (r == NULL) {
    *rc = tw_err_set(err, TW_ENOMEM, "out of memory");
    return NULL;
  }
  r->static_fd = -1;
  r->pat.rest_at = -1;
  *rc = tw__server_pattern_compile(pattern, &r->pat, err);
  if (*rc != TW_OK) {
    route_free(r);
    return NULL;
  }
  r->method = method ? tw_strdup(method) : NULL;
  r->name = tw_strdup(name ? name : pattern);
  if ((method != NULL && r->method == NULL) || r->name == NULL) {
    route_free(r);
    *rc = tw_err_set(err, TW_ENOMEM, "out of memory");
    return NULL;
  }
  return r;
}

int tw_server_route_add(tw_server *srv, const tw_server_route *route,
                        tw_err *err) {
  if (route == NULL || route->on_end == NULL)
    return tw_err_set(err, TW_EINVAL, "route %s: on_end is required",
                      route && route->pattern ? route->pattern : "(null)");
  int rc;
  tw__route *r =
      route_make(route->method, route->pattern, route->name, err, &rc);
  if (r == NULL)
    return rc;
  r->kind = TW__ROUTE_HTTP;
  r->http = *route;
  r->http.method = r->method;
  r->http.pattern = r->pat.source;
  r->http.name = r->name;
  size_t nh = 0;
  while (route->headers != NULL && route->headers[nh] != NULL)
    nh++;
  r->headers = tw_calloc(nh + 1, sizeof *r->headers);
  if (r->headers == NULL) {
    route_free(r);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < nh; i++) {
    r->headers[i] = tw_strdup(route->headers[i]);
    if (r->headers[i] == NULL) {
      route_free(r);
      return tw_err_set(err, TW_ENOMEM, "out of memory");
    }
    for (char *c = r->headers[i]; *c; c++)
      if (*c >= 'A' && *c <= 'Z')
        *c = (char)(*c - 'A' + 'a');
  }
  r->http.headers = (const char *const *)r->headers;
  return route_insert(srv, r, err);
}

int tw_server_ws_route_add(tw_server *srv, const tw_server_ws_route *route,
                           tw_err *err) {
  int rc;
  tw__route *r = route_make("GET", route->pattern, route->name, err, &rc);
  if (r == NULL)
    return rc;
  r->kind = TW__ROUTE_WS;
  r->ws = *route;
  r->ws.pattern = r->pat.source;
  r->ws.name = r->name;
  if (r->ws.max_message == 0)
    r->ws.max_message = 1u << 20;
  if (r->ws.max_queue == 0)
    r->ws.max_queue = 8u << 20;
  return route_insert(srv, r, err);
}

int tw_server_static_add(tw_server *srv, const char *prefix, const char *dir,
                         tw_err *err) {
  char pattern[512];
  size_t plen = prefix ? strlen(prefix) : 0;
  if (plen == 0 || prefix[0] != '/' || plen > 400)
    return tw_err_set(err, TW_EINVAL, "static prefix '%s' must start with '/'",
                      prefix ? prefix : "(null)");
  while (plen > 1 && prefix[plen - 1] == '/')
    plen--;
  for (int k = 0; k < 2; k++) {
    /* "/ui" serves "/ui/" and "/ui/{path...}"; "/" serves "/" and
     * "/{path...}". */
    (void)snprintf(pattern, sizeof pattern, "%.*s/%s",
                   (int)(plen == 1 ? 0 : plen), prefix,
                   k == 0 ? "{path...}" : "");
    int rc;
    tw__route *r = route_make("GET", pattern, "static", err, &rc);
    if (r == NULL)
      return rc;
    r->kind = TW__ROUTE_STATIC;
    r->http = tw__server_static_route;
    r->http.method = r->method;
    r->http.pattern = r->pat.source;
    r->http.name = r->name;
    r->http.ud = r;
    rc = tw__server_static_open(r, dir, err);
    if (rc != TW_OK) {
      route_free(r);
      return rc;
    }
    rc = route_insert(srv, r, err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* The best route for path and method: most literal segments, then no
 * catch-all, then first added. *other_methods tells whether the path
 * matched with some other method (405). */
static const tw__route *route_find(tw_server *srv, const char *method,
                                   const tw__path *path, bool ws,
                                   tw__param *params, bool *other_methods) {
  const tw__route *best = NULL;
  tw__param tmp[TW__SERVER_MAX_PARAMS];
  *other_methods = false;
  for (size_t i = 0; i < srv->nroutes; i++) {
    const tw__route *r = srv->routes[i];
    if ((r->kind == TW__ROUTE_WS) != ws)
      continue;
    if (!tw__server_pattern_match(&r->pat, path, tmp))
      continue;
    bool method_ok =
        r->method == NULL || strcmp(r->method, method) == 0 ||
        (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
    if (!method_ok) {
      *other_methods = true;
      continue;
    }
    if (best == NULL || r->pat.nliterals > best->pat.nliterals ||
        (r->pat.nliterals == best->pat.nliterals && best->pat.rest_at >= 0 &&
         r->pat.rest_at < 0)) {
      best = r;
      memcpy(params, tmp, sizeof tmp);
    }
  }
  return best;
}

/* The Allow header for a path that matched other methods. */
static void allow_header(tw_server *srv, const tw__path *path, char *out,
                         size_t cap) {
  tw__param tmp[TW__SERVER_MAX_PARAMS];
  out[0] = '\0';
  for (size_t i = 0; i < srv->nroutes; i++) {
    const tw__route *r = srv->routes[i];
    if (r->kind == TW__ROUTE_WS || r->method == NULL ||
        !tw__server_pattern_match(&r->pat, path, tmp) ||
        strstr(out, r->method) != NULL)
      continue;
    size_t n = strlen(out);
    (void)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", r->method);
  }
}

/* --- Metrics and the access log ------------------------------------------ */

void tw__server_access_log(tw_server *srv, tw_server_req *req, int status,
                           uint64_t bytes) {
  double secs = (double)(tw_clock_mono_ns() - req->t0) / 1e9;
  char st[16];
  (void)snprintf(st, sizeof st, "%d", status);
  const char *route = req->route_name ? req->route_name : "unmatched";
  const char *labels[3] = {req->method, route, st};
  tw_metric *m;
  if (tw_metric_family_child(srv->m_requests, labels, &m, NULL) == TW_OK)
    tw_metric_inc(m);
  if (tw_metric_family_child(srv->m_duration, labels, &m, NULL) == TW_OK)
    (void)tw_metric_observe(m, secs);
  if (!tw_log_enabled(srv->ctx, TW_LOG_INFO))
    return;
  tw_log_field f[7] = {
      TW_LOG_STR("method", req->method),
      TW_LOG_STR("path", req->path),
      TW_LOG_INT("status", status),
      TW_LOG_UINT("bytes", bytes),
      TW_LOG_F64("duration_ms", secs * 1e3),
      TW_LOG_STR("remote", req->remote ? req->remote : ""),
      TW_LOG_STR("route", route),
  };
  tw_log_fields(srv->ctx, TW_LOG_INFO, "server", "request", f, 7);
}

/* --- Requests on the loop ------------------------------------------------ */

static const struct {
  enum lws_token_indexes tok;
  const char *name;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},         {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},         {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},       {WSI_TOKEN_PATCH_URI, "PATCH"},
    {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
};

/* Copies header token tok (all of its fragments) into the arena. */
static char *hdr_dup(tw_arena *a, struct lws *wsi, int tok) {
  int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)tok);
  if (len <= 0)
    return NULL;
  char *s = tw_arena_alloc(a, (size_t)len + 1);
  if (s == NULL)
    return NULL;
  if (lws_hdr_copy(wsi, s, len + 1, (enum lws_token_indexes)tok) < 0)
    return NULL;
  return s;
}

static bool skip_token(int tok) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if ((int)methods[i].tok == tok)
      return true;
  return tok == WSI_TOKEN_HTTP_URI_ARGS || tok == WSI_TOKEN_HTTP ||
         tok == WSI_TOKEN_CONNECT;
}

/* Fills the request's strings from the connection. */
static int req_fill(tw_server_req *req, struct lws *wsi, const char *method,
                    int uri_tok, const tw__route *route) {
  tw_arena *a = &req->arena;
  req->method = method;
  req->head = strcmp(method, "HEAD") == 0;
  char *path = hdr_dup(a, wsi, uri_tok);
  req->path = path ? path : "/";
  tw_buf raw = TW_BUF_INIT;
  int rc = tw__server_path_encode(req->path, strlen(req->path), &raw);
  req->raw_path = rc == TW_OK ? tw_arena_strdup(a, raw.data) : NULL;
  tw_buf_fini(&raw);
  char peer[64] = "";
  (void)lws_get_peer_simple(wsi, peer, sizeof peer);
  req->remote = tw_arena_strdup(a, peer);
  if (req->raw_path == NULL || req->remote == NULL)
    return TW_ENOMEM;

  /* Query fragments, decoded by libwebsockets. */
  size_t nq = 0;
  while (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, (int)nq) > 0)
    nq++;
  req->query = tw_arena_calloc(a, nq ? nq : 1, sizeof *req->query);
  if (req->query == NULL)
    return TW_ENOMEM;
  for (size_t i = 0; i < nq; i++) {
    int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, (int)i);
    char *frag = tw_arena_alloc(a, (size_t)fl + 1);
    if (frag == NULL)
      return TW_ENOMEM;
    int got = lws_hdr_copy_fragment(wsi, frag, fl + 1, WSI_TOKEN_HTTP_URI_ARGS,
                                    (int)i);
    if (got < 0)
      continue;
    size_t klen;
    const char *val;
    tw__server_query_split(frag, (size_t)got, &klen, &val);
    frag[klen] = '\0';
    req->query[req->nquery].name = frag;
    req->query[req->nquery].value = val;
    req->nquery++;
  }

  /* Headers: the standard ones libwebsockets parsed, then the route's. */
  size_t cap = 16, nh = 0;
  if (route != NULL && route->headers != NULL)
    for (char **h = route->headers; *h; h++)
      cap++;
  tw_server_kv *hs = tw_arena_calloc(a, WSI_TOKEN_COUNT + cap, sizeof *hs);
  if (hs == NULL)
    return TW_ENOMEM;
  for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
    if (skip_token(t) || lws_hdr_total_length(wsi, t) <= 0)
      continue;
    const char *n = (const char *)lws_token_to_string(t);
    if (n == NULL || n[0] == ':' || strchr(n, ' ') != NULL)
      continue;
    size_t nlen = strlen(n);
    if (nlen > 0 && n[nlen - 1] == ':')
      nlen--;
    hs[nh].name = tw_arena_strndup(a, n, nlen);
    hs[nh].value = hdr_dup(a, wsi, t);
    if (hs[nh].name == NULL || hs[nh].value == NULL)
      return TW_ENOMEM;
    nh++;
  }
  if (route != NULL && route->headers != NULL)
    for (char **h = route->headers; *h; h++) {
      char key[128];
      int kl = snprintf(key, sizeof key, "%s:", *h);
      if (kl <= 0 || (size_t)kl >= sizeof key)
        continue;
      int vl = lws_hdr_custom_length(wsi, key, kl);
      if (vl < 0)
        continue;
      char *v = tw_arena_alloc(a, (size_t)vl + 1);
      if (v == NULL)
        return TW_ENOMEM;
      if (lws_hdr_custom_copy(wsi, v, vl + 1, key, kl) < 0)
        continue;
      hs[nh].name = *h;
      hs[nh].value = v;
      nh++;
    }
  req->headers = hs;
  req->nheaders = nh;
  return TW_OK;
}

/* Parses a Content-Length value strictly. */
static bool parse_length(const char *s, int64_t *out) {
  uint64_t v = 0;
  if (s == NULL || *s == '\0')
    return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > (uint64_t)INT64_MAX / 10)
      return false;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (v > (uint64_t)INT64_MAX)
    return false;
  *out = (int64_t)v;
  return true;
}

/* True when a Transfer-Encoding value is exactly "chunked" (any case,
 * with optional white space around it). */
static bool is_chunked(const char *te) {
  while (*te == ' ' || *te == '\t')
    te++;
  size_t n = strlen(te);
  while (n > 0 && (te[n - 1] == ' ' || te[n - 1] == '\t'))
    n--;
  return n == 7 && strncasecmp(te, "chunked", 7) == 0;
}

/* Why a request with a Transfer-Encoding cannot be read (with the status
 * to answer in *status), NULL when it can. Both framings at once is how
 * requests are smuggled past a proxy (RFC 9112 section 6.3);
 * libwebsockets reads a body without a length only for POST, PUT and
 * PATCH. */
static const char *chunked_refusal(const char *method, const char *cl,
                                   const char *te, int *status) {
  *status = 400;
  if (cl != NULL)
    return "both Content-Length and Transfer-Encoding given";
  if (!is_chunked(te)) {
    *status = 501;
    return "only the chunked transfer coding is supported";
  }
  if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 &&
      strcmp(method, "PATCH") != 0)
    return "a chunked body is accepted on POST, PUT and PATCH only";
  return NULL;
}

static void post(tw_server_req *req, int kind) {
  tw__ev *ev = tw__server_ev_new(kind, NULL, 0);
  if (ev == NULL) {
    tw__server_req_reject(req, 503, "EBUSY", "out of memory");
    return;
  }
  tw__server_exec_post(&req->exec, ev);
}

static int on_http(tw_server *srv, struct lws *wsi, tw__conn *conn) {
  const char *method = NULL;
  int uri_tok = -1;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (lws_hdr_total_length(wsi, methods[i].tok) > 0) {
      method = methods[i].name;
      uri_tok = (int)methods[i].tok;
      break;
    }
  if (method == NULL)
    return -1; /* CONNECT or nothing: not served */
  tw_server_req *req;
  if (tw__server_req_new(srv, NULL, &req) != TW_OK)
    return -1;
  req->t0 = tw_clock_mono_ns();
  req->wsi = wsi;
  req->conn = conn;
  conn->req = req;
  srv->inflight++;
  tw_metric_add(srv->m_inflight, 1);

  /* The route first (its extra headers are part of the request). */
  char *path = hdr_dup(&req->arena, wsi, uri_tok);
  tw__path *segs = tw_alloc(sizeof *segs);
  tw__param params[TW__SERVER_MAX_PARAMS];
  const tw__route *route = NULL;
  bool other = false;
  int split = TW_ENOMEM;
  if (segs != NULL && path != NULL) {
    split = tw__server_path_split(path, strlen(path), segs);
    if (split == TW_OK)
      route = route_find(srv, method, segs, false, params, &other);
  }
  req->route = route;
  req->exec.fast = route == NULL || (route->http.flags & TW_SERVER_ROUTE_FAST);
  req->route_name = route ? route->name : NULL;
  if (req_fill(req, wsi, method, uri_tok, route) != TW_OK) {
    tw_free(segs);
    tw__server_req_reject(req, 503, "EBUSY", "out of memory");
    return 0;
  }
  bool oom = false;
  size_t np = route != NULL ? route->pat.nparams : 0;
  for (size_t i = 0; i < np && !oom; i++) {
    req->params[i].name = params[i].name;
    req->params[i].value =
        tw_arena_strndup(&req->arena, path + params[i].off, params[i].len);
    oom = req->params[i].value == NULL;
    req->nparams = i + 1;
  }
  if (oom) {
    tw_free(segs);
    tw__server_req_reject(req, 503, "EBUSY", "out of memory");
    return 0;
  }

  /* A request line cut short: libwebsockets 4.1 ends the URI at a %0A
   * or %0D it decodes and reads the rest of the line as a header, so the
   * HTTP version never arrives and the path and query seen are a prefix
   * of those sent ("/models/a%0Ab" would act on "/models/a"). */
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0) {
    tw_free(segs);
    tw__server_req_reject(req, 400, "BAD_REQUEST",
                          "malformed request line (a control character in "
                          "the URI?)");
    req->close_after = true;
    return 0;
  }

  /* The body announced. */
  const char *cl = tw_server_req_header(req, "content-length");
  const char *te = tw_server_req_header(req, "transfer-encoding");
  if (cl != NULL && !parse_length(cl, &req->content_length)) {
    tw_free(segs);
    tw__server_req_reject(req, 400, "BAD_REQUEST", "malformed Content-Length");
    req->close_after = true;
    return 0;
  }
  if (te != NULL) {
    int status;
    const char *why = chunked_refusal(method, cl, te, &status);
    if (why != NULL) {
      tw_free(segs);
      tw__server_req_reject(
          req, status, status == 501 ? "NOT_IMPLEMENTED" : "BAD_REQUEST", why);
      req->close_after = true;
      return 0;
    }
    /* libwebsockets hands the raw framing to the body callback; bytes
     * after the body are lost to it, so the connection ends after the
     * response. */
    req->chunked = true;
    req->close_after = true;
    tw__server_chunked_init(&req->chunk);
  }
  req->body_expected = req->content_length > 0 || te != NULL;
  req->body_done = !req->body_expected;
  if (route != NULL)
    req->max_body = (route->http.on_body != NULL ||
                     (route->http.flags & TW_SERVER_ROUTE_BUFFER_BODY))
                        ? route->http.max_body
                        : 0;

  if (srv->stopping) {
    req->close_after = true;
    tw__server_req_reject(req, 503, "UNAVAILABLE", "the server is stopping");
  } else if (split == TW_ELIMIT) {
    tw__server_req_reject(req, 414, "URI_TOO_LONG", "too many path segments");
  } else if (route == NULL && other) {
    char allow[128];
    allow_header(srv, segs, allow, sizeof allow);
    (void)tw_server_req_header_add(req, "Allow", allow);
    tw__server_req_reject(req, 405, "METHOD_NOT_ALLOWED",
                          "method not allowed here");
  } else if (route == NULL) {
    tw__server_req_reject(req, 404, "NOT_FOUND", "no such resource");
  } else if (req->content_length > 0 &&
             (uint64_t)req->content_length > req->max_body) {
    tw__server_req_reject(req, 413, "PAYLOAD_TOO_LARGE",
                          "the body is larger than this resource accepts");
  } else {
    const char *expect = tw_server_req_header(req, "expect");
    if (req->body_expected && expect != NULL &&
        strcasecmp(expect, "100-continue") == 0) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      unsigned char buf[LWS_PRE + sizeof cont];
      memcpy(buf + LWS_PRE, cont, sizeof cont - 1);
      if (lws_write(wsi, buf + LWS_PRE, sizeof cont - 1, LWS_WRITE_HTTP) < 0) {
        tw_free(segs);
        return -1;
      }
    }
    post(req, TW__EV_HEADERS);
    if (!req->body_expected)
      post(req, TW__EV_END);
  }
  tw_free(segs);
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                  (int)(req->body_expected ? srv->opts.body_timeout_s
                                           : srv->opts.handler_timeout_s));
  return 0;
}

/* Passes len bytes of body (decoded) to the route. */
static int body_bytes(tw_server *srv, struct lws *wsi, tw_server_req *req,
                      const void *in, size_t len) {
  req->body_seen += len;
  pthread_mutex_lock(&req->mu);
  bool answered = req->responded || req->failed;
  pthread_mutex_unlock(&req->mu);
  if (answered || req->route == NULL)
    return 0; /* the rest is dropped; the connection closes after */
  if (req->body_seen > req->max_body) {
    tw__server_req_reject(req, 413, "PAYLOAD_TOO_LARGE",
                          "the body is larger than this resource accepts");
    return 0;
  }
  tw__ev *ev = tw__server_ev_new(TW__EV_BODY, in, len);
  if (ev == NULL) {
    tw__server_req_reject(req, 503, "EBUSY", "out of memory");
    return 0;
  }
  pthread_mutex_lock(&req->mu);
  req->queued += len;
  bool full = req->queued > TW_SERVER_BODY_WINDOW;
  if (full)
    req->want_resume = false;
  pthread_mutex_unlock(&req->mu);
  if (full && !req->rx_paused) {
    req->rx_paused = true;
    lws_rx_flow_control(wsi, 0);
  }
  tw__server_exec_post(&req->exec, ev);
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                  (int)(req->rx_paused ? srv->opts.handler_timeout_s
                                       : srv->opts.body_timeout_s));
  return 0;
}

static void on_body_done(tw_server *srv, struct lws *wsi, tw_server_req *req) {
  req->body_done = true;
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                  (int)srv->opts.handler_timeout_s);
  pthread_mutex_lock(&req->mu);
  bool answered = req->responded || req->failed;
  pthread_mutex_unlock(&req->mu);
  if (!answered && req->route != NULL)
    post(req, TW__EV_END);
}

/* Raw bytes of a chunked body: decoded, and the body passed on. The body
 * ends with the last chunk and the trailers; what follows is not read
 * (the connection closes after the response). */
static int on_body_chunked(tw_server *srv, struct lws *wsi, tw_server_req *req,
                           const void *in, size_t len) {
  if (req->body_done || req->chunk.error != NULL)
    return 0;
  unsigned char *out = tw_alloc(len > 0 ? len : 1);
  if (out == NULL) {
    tw__server_req_reject(req, 503, "EBUSY", "out of memory");
    return 0;
  }
  size_t outlen = 0, used = 0;
  int rc = tw__server_chunked_decode(&req->chunk, in, len, out, &outlen, &used);
  if (rc != TW__CHUNKED_BAD && outlen > 0)
    (void)body_bytes(srv, wsi, req, out, outlen);
  tw_free(out);
  if (rc == TW__CHUNKED_BAD) {
    char msg[192];
    (void)snprintf(msg, sizeof msg, "malformed chunked body at byte %llu: %s",
                   (unsigned long long)req->chunk.consumed, req->chunk.error);
    tw__server_req_reject(req, 400, "BAD_REQUEST", msg);
  } else if (rc == TW__CHUNKED_DONE) {
    on_body_done(srv, wsi, req);
    /* libwebsockets still counts the request as receiving its body and
     * resets the timeout to the body's after this callback: the timer
     * puts the handler's back. */
    lws_set_timer_usecs(wsi, 1);
  }
  return 0;
}

/* libwebsockets ends a body without a Content-Length after 100 MiB of
 * it, framing included, and would then take the rest for a new request:
 * a chunked body that has not ended by then is refused and reading
 * stops for good. */
static void on_lws_body_done(tw_server *srv, struct lws *wsi,
                             tw_server_req *req) {
  if (!req->chunked) {
    on_body_done(srv, wsi, req);
    return;
  }
  if (req->body_done || req->rx_stopped)
    return;
  req->rx_stopped = true;
  req->rx_paused = true;
  lws_rx_flow_control(wsi, 0);
  tw__server_req_reject(req, 413, "PAYLOAD_TOO_LARGE",
                        "a chunked body may be at most 100 MiB with its "
                        "framing; send larger ones with a Content-Length");
}

/* Drains the wake-up queue on the loop thread. */
static void drain_wakeups(tw_server *srv) {
  pthread_mutex_lock(&srv->mu);
  tw_server_req *list = srv->wake_head;
  srv->wake_head = NULL;
  tw_server_ws *wsl = srv->ws_wake_head;
  srv->ws_wake_head = NULL;
  for (tw_server_req *r = list; r; r = r->wake_next)
    r->wake_queued = false;
  for (tw_server_ws *w = wsl; w; w = w->wake_next)
    w->wake_queued = false;
  pthread_mutex_unlock(&srv->mu);
  while (list != NULL) {
    tw_server_req *req = list;
    list = req->wake_next;
    if (req->wsi != NULL) {
      pthread_mutex_lock(&req->mu);
      bool resume = req->want_resume;
      bool write = req->responded;
      pthread_mutex_unlock(&req->mu);
      if (resume && req->rx_paused && !req->rx_stopped) {
        req->rx_paused = false;
        lws_rx_flow_control(req->wsi, 1);
        lws_set_timeout(req->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                        (int)srv->opts.body_timeout_s);
      }
      if (write)
        lws_callback_on_writable(req->wsi);
    }
    tw__server_req_unref(req);
  }
  while (wsl != NULL) {
    tw_server_ws *ws = wsl;
    wsl = ws->wake_next;
    tw__server_ws_wake(ws);
  }
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len) {
  struct lws_context *lc = lws_get_context(wsi);
  tw_server *srv = lc ? lws_context_user(lc) : NULL;
  tw__conn *conn = user;
  if (srv == NULL)
    return 0;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    if (conn == NULL)
      return -1;
    return on_http(srv, wsi, conn);
  case LWS_CALLBACK_HTTP_BODY:
    if (conn != NULL && conn->req != NULL)
      return conn->req->chunked ? on_body_chunked(srv, wsi, conn->req, in, len)
                                : body_bytes(srv, wsi, conn->req, in, len);
    return 0;
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    if (conn != NULL && conn->req != NULL)
      on_lws_body_done(srv, wsi, conn->req);
    return 0;
  case LWS_CALLBACK_TIMER:
    if (conn != NULL && conn->req != NULL && conn->req->body_done &&
        !conn->req->started)
      lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                      (int)srv->opts.handler_timeout_s);
    return 0;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (conn != NULL && conn->req != NULL) {
      tw_server_req *req = conn->req;
      pthread_mutex_lock(&req->mu);
      bool ready = req->responded;
      pthread_mutex_unlock(&req->mu);
      if (ready && !req->finished)
        return tw__server_req_writable(req);
    }
    return 0;
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (conn != NULL && conn->req != NULL)
      tw__server_req_detach(conn->req, false);
    return 0;
  case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    drain_wakeups(srv);
    return 0;
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
  case LWS_CALLBACK_ESTABLISHED:
  case LWS_CALLBACK_RECEIVE:
  case LWS_CALLBACK_SERVER_WRITEABLE:
  case LWS_CALLBACK_CLOSED:
    return tw__server_ws_callback(srv, wsi, (int)reason, in, len);
  default:
    return 0;
  }
}

const tw__route *tw__server_ws_route_find(tw_server *srv, const char *path,
                                          tw__param *params) {
  tw__path *segs = tw_alloc(sizeof *segs);
  const tw__route *r = NULL;
  bool other;
  if (segs != NULL && tw__server_path_split(path, strlen(path), segs) == TW_OK)
    r = route_find(srv, "GET", segs, true, params, &other);
  tw_free(segs);
  return r;
}

/* --- The listening socket ----------------------------------------------- */

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason,
                           void *user, void *in, size_t len) {
  struct lws_context *lc = lws_get_context(wsi);
  tw_server *srv = lc ? lws_context_user(lc) : NULL;
  if (srv == NULL)
    return 0;
  switch (reason) {
  case LWS_CALLBACK_RAW_RX_FILE:
    for (int i = 0; i < 64; i++) {
      int fd =
          accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE)
          tw_log(srv->ctx, TW_LOG_WARN, "server",
                 "cannot accept a connection: %s", strerror(errno));
        break;
      }
      if (srv->stopping) {
        close(fd);
        continue;
      }
      /* Without it a response's head and body, written separately, wait
       * for the client's delayed ACK (40 ms) on a kept-alive connection. */
      int one = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      (void)lws_adopt_socket_vhost(srv->vhost, fd); /* closes fd on failure */
    }
    return 0;
  case LWS_CALLBACK_RAW_CLOSE_FILE:
    srv->listener = NULL;
    srv->listen_fd = -1; /* closed by libwebsockets */
    return 0;
  default:
    return 0;
  }
}

static int bind_socket(tw_server *srv, tw_err *err) {
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  const char *host =
      strcmp(srv->host, "localhost") == 0 ? "127.0.0.1" : srv->host;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)srv->port_req);
    sl = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)srv->port_req);
    sl = sizeof *a6;
  } else {
    return tw_err_set(err, TW_EINVAL,
                      "listen address '%s': '%s' is not an IP address",
                      srv->listen_spec, srv->host);
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return tw_err_sys(err, errno, "cannot listen on %s", srv->listen_spec);
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 511) != 0) {
    int e = errno;
    close(fd);
    tw_err_sys(err, e, "cannot listen on %s", srv->listen_spec);
    return TW_EIO;
  }
  sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    srv->port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
  srv->listen_fd = fd;
  return TW_OK;
}

/* --- The loop ------------------------------------------------------------ */

static const struct lws_protocols protocols[] = {
    {"twin-http", http_callback, sizeof(tw__conn), 0, 0, NULL, 0},
    {"twin-listen", listen_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static void tick(lws_sorted_usec_list_t *sul) { (void)sul; }

/* Starts stopping: called on the loop thread once stop_requested. */
static void begin_stop(tw_server *srv) {
  srv->stopping = true;
  if (srv->listener != NULL) {
    if (srv->listen_fd >= 0)
      (void)shutdown(srv->listen_fd, SHUT_RDWR);
    lws_set_timeout(srv->listener, PENDING_TIMEOUT_CLOSE_SEND,
                    LWS_TO_KILL_ASYNC);
  }
  tw__server_ws_stop_all(srv);
}

static void *loop_main(void *arg) {
  tw_server *srv = arg;
  lws_sorted_usec_list_t sul;
  memset(&sul, 0, sizeof sul);
  for (;;) {
    if (lws_service(srv->lws, 0) < 0)
      break;
    pthread_mutex_lock(&srv->mu);
    bool stop = srv->stop_requested;
    uint64_t deadline = srv->deadline_ns;
    pthread_mutex_unlock(&srv->mu);
    if (!stop)
      continue;
    if (!srv->stopping)
      begin_stop(srv);
    if (srv->inflight == 0 && srv->nws == 0)
      break;
    if (tw_clock_mono_ns() >= deadline) {
      srv->cut = true;
      break;
    }
    /* Come back in 20 ms to look at the deadline again. */
    lws_sul_schedule(srv->lws, 0, &sul, tick, 20 * LWS_US_PER_MS);
  }
  lws_sul_cancel(&sul);
  pthread_mutex_lock(&srv->mu);
  srv->loop_dead = true;
  pthread_mutex_unlock(&srv->mu);
  /* Closing the context closes every connection: their requests detach
   * (cancelled) and their on_close calls are queued. */
  lws_context_destroy(srv->lws);
  srv->lws = NULL;
  drain_wakeups(srv);
  return NULL;
}

int tw_server_start(tw_server *srv, tw_err *err) {
  if (srv->started)
    return tw_err_set(err, TW_ESTATE, "the server runs already");
  int rc = bind_socket(srv, err);
  if (rc != TW_OK)
    return rc;
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  info.protocols = protocols;
  info.user = srv;
  info.max_http_header_data = (unsigned short)srv->opts.max_header_bytes;
  info.keepalive_timeout = (int)srv->opts.idle_timeout_s;
  info.timeout_secs = srv->opts.body_timeout_s;
  info.pt_serv_buf_size = 64 * 1024;
  info.vhost_name = "twin";
  srv->lws = lws_create_context(&info);
  if (srv->lws == NULL) {
    close(srv->listen_fd);
    srv->listen_fd = -1;
    return tw_err_set(err, TW_EIO, "cannot start the event loop");
  }
  srv->vhost = lws_get_vhost_by_name(srv->lws, "twin");
  lws_sock_file_fd_type sock;
  sock.filefd = srv->listen_fd;
  if (srv->vhost != NULL)
    srv->listener = lws_adopt_descriptor_vhost(
        srv->vhost, LWS_ADOPT_RAW_FILE_DESC, sock, "twin-listen", NULL);
  if (srv->listener == NULL) {
    lws_context_destroy(srv->lws);
    srv->lws = NULL;
    close(srv->listen_fd);
    srv->listen_fd = -1;
    return tw_err_set(err, TW_EIO, "cannot watch the listening socket");
  }
  srv->started = true;
  if (pthread_create(&srv->thread, NULL, loop_main, srv) != 0) {
    srv->started = false;
    lws_context_destroy(srv->lws);
    srv->lws = NULL;
    return tw_err_set(err, TW_EIO, "cannot start the loop thread");
  }
  tw_log(srv->ctx, TW_LOG_INFO, "server", "listening on %s (port %d)",
         srv->listen_spec, tw_server_port(srv));
  return TW_OK;
}

void tw_server_stop(tw_server *srv, unsigned grace_ms) {
  uint64_t deadline = tw_clock_mono_ns() + (uint64_t)grace_ms * 1000000u;
  pthread_mutex_lock(&srv->mu);
  if (!srv->stop_requested || deadline < srv->deadline_ns)
    srv->deadline_ns = deadline;
  srv->stop_requested = true;
  if (!srv->loop_dead && srv->lws != NULL)
    lws_cancel_service(srv->lws);
  pthread_mutex_unlock(&srv->mu);
}

int tw_server_wait(tw_server *srv) {
  if (!srv->started)
    return TW_OK;
  if (!srv->joined) {
    pthread_join(srv->thread, NULL);
    srv->joined = true;
  }
  pthread_mutex_lock(&srv->mu);
  while (srv->live > 0)
    pthread_cond_wait(&srv->cv, &srv->mu);
  pthread_mutex_unlock(&srv->mu);
  return srv->cut ? TW_ETIMEDOUT : TW_OK;
}

void tw_server_free(tw_server *srv) {
  if (srv == NULL)
    return;
  if (srv->started && !srv->joined) {
    tw_server_stop(srv, 0);
    (void)tw_server_wait(srv);
  } else if (srv->started) {
    (void)tw_server_wait(srv);
  }
  if (srv->listen_fd >= 0 && !srv->started)
    close(srv->listen_fd);
  for (size_t i = 0; i < srv->nroutes; i++)
    route_free(srv->routes[i]);
  tw_free(srv->routes);
  tw_free(srv->listen_spec);
  pthread_mutex_destroy(&srv->mu);
  pthread_cond_destroy(&srv->cv);
  tw_free(srv);
}
