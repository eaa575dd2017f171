/*
 * server.h - the HTTP/1.1 and WebSocket server of `twin serve`.
 *
 * One libwebsockets event loop on one thread serves every connection. The
 * loop thread only moves bytes: it parses requests (libwebsockets does),
 * routes them, queues their bodies and writes responses as the sockets
 * become writable. Handlers run on the context's worker pool (or, for a
 * route flagged TW_SERVER_ROUTE_FAST, on the loop thread itself) and post
 * their response back to the loop, which wakes up and writes it. See
 * docs/internals/server.md and docs/adr/0011-http-server.md.
 *
 * Routes. A route is a method and a path pattern. A pattern is a list of
 * '/'-separated segments, each a literal, a parameter "{name}" matching one
 * non-empty segment, or a catch-all "{name...}" matching one or more
 * segments (at most one per pattern). The catch-all need not be last:
 * "/v2/{name...}/blobs/{digest}" matches "/v2/a/b/c/blobs/sha256:..." with
 * name "a/b/c", because the segments after the catch-all are matched
 * against the end of the path. A trailing '/' is a segment of its own
 * ("/v2/" matches "/v2/" but not "/v2"). When several routes match a path,
 * the one with the most literal segments wins, then the one without a
 * catch-all, then the one registered first. A path that matches only with
 * other methods gets 405 with an Allow header; HEAD is served by a GET
 * route (the handler sees "HEAD"; the server sends no body). Nothing
 * matches: 404.
 *
 * Paths. libwebsockets decodes %XX escapes, turns '+' in the query into a
 * space, collapses "//", "/./" and "/../" and refuses malformed escapes
 * (403) before the server sees a request, so the path a handler receives
 * never holds an empty, "." or ".." segment, and the raw request target is
 * not available: tw_server_req_raw_path is the decoded path percent-encoded
 * again in one canonical way.
 *
 * A request's life, with the callbacks of its route (all optional but
 * on_end), which for one request never run concurrently and run in this
 * order, each at most once except on_body:
 *
 *   on_headers  the request line and headers are in; the body is not. May
 *               respond (to refuse early) and set per-request data.
 *   on_body     one piece of the body, in order. Pieces are copies the
 *               callback may not keep. Reading from the client pauses while
 *               more than TW_SERVER_BODY_WINDOW bytes wait for on_body.
 *   on_end      the whole body has arrived (at once when there is none):
 *               respond, now or later from any thread.
 *   on_close    always, last: the response was written (completed true) or
 *               the request ended without one (client gone, timeout, server
 *               stopping; completed false). Release per-request data here.
 *
 * A callback that returns a negative TW_E* code without having responded
 * gets a JSON error response for that code (400 for EINVAL/EPARSE/
 * EVALIDATE, 401 EAUTH, 403 EPERM, 404 ENOENT, 409 EEXIST, 413 ELIMIT, 503
 * EBUSY, 500 otherwise); the remaining on_body/on_end calls are skipped.
 * Responding before the body is complete ends the body: the rest is not
 * read and the connection closes after the response.
 *
 * Bodies. A route accepts at most max_body bytes (413 otherwise, before any
 * callback when Content-Length says so). With on_body NULL and the flag
 * TW_SERVER_ROUTE_BUFFER_BODY, the body is gathered into memory and read in
 * on_end with tw_server_req_body; with neither, a route accepts no body.
 *
 * Lifetimes. A tw_server_req and every string it returns live until its
 * on_close callback returns; after that the pointer is invalid. Strings
 * returned by accessors are NUL-terminated and borrowed from the request.
 *
 * Thread safety. tw_server_new, the *_add functions and tw_server_free are
 * called from one thread, the *_add functions before tw_server_start.
 * tw_server_stop, tw_server_port and tw_server_wait may be called from any
 * thread. A request's accessors may be used from its callbacks and, until
 * on_close, from any thread that the handler hands the request to; the
 * respond functions may be called from any thread, once per request.
 */
#ifndef TWIN_SERVER_H
#define TWIN_SERVER_H

#include <stdbool.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/ctx.h"
#include "twin/error.h"
#include "twin/pool.h"

TW_EXTERN_C_BEGIN

typedef struct tw_server tw_server;
typedef struct tw_server_req tw_server_req;
typedef struct tw_server_ws tw_server_ws;

/* Bytes of request body queued for on_body before reading pauses. */
#define TW_SERVER_BODY_WINDOW (4u << 20)
/* A route's max_body that means no limit. */
#define TW_SERVER_BODY_UNLIMITED UINT64_MAX

typedef struct tw_server_options {
  /* "HOST:PORT", "[IPV6]:PORT"; HOST is an address (no name lookup but
   * "localhost"). Port 0 picks a free port (tw_server_port). Default
   * "127.0.0.1:8080". */
  const char *listen;
  /* Worker pool for handlers; NULL = tw_ctx_pool(ctx). A pool of one
   * thread runs handlers inline on the loop thread. */
  tw_pool *pool;
  unsigned max_header_bytes;  /* request line + headers; default and
                                 most 65535 (libwebsockets closes the
                                 connection beyond, without a response) */
  unsigned idle_timeout_s;    /* keep-alive connection idle; default 60 */
  unsigned body_timeout_s;    /* no body byte for this long: the connection
                                 closes; default 30 */
  unsigned handler_timeout_s; /* no response this long after the body:
                                 closes; default 300 */
  unsigned write_timeout_s;   /* client not reading the response; default
                                 60 */
  unsigned shutdown_grace_ms; /* tw_server_stop default deadline; 10000 */
} tw_server_options;

/* Fills opts with the defaults above. */
TW_API void tw_server_options_init(tw_server_options *opts);

/* Creates a server for ctx (whose logger, metrics registry and pool it
 * uses; ctx must outlive it) with /healthz and /metrics already routed.
 * opts NULL = defaults; strings are copied. Nothing listens until
 * tw_server_start. TW_EINVAL (bad listen address), TW_ENOMEM. */
TW_API int tw_server_new(tw_ctx *ctx, const tw_server_options *opts,
                         tw_server **out, tw_err *err);

/* Stops the server if it runs (deadline 0: in-flight requests are cut),
 * waits for every request's on_close and frees it. NULL is a no-op. */
TW_API void tw_server_free(tw_server *srv);

/* --- HTTP routes ------------------------------------------------------- */

enum {
  /* Run the callbacks on the loop thread. Only for work that never blocks
   * and takes microseconds (/healthz, a lookup in memory). */
  TW_SERVER_ROUTE_FAST = 1u << 0,
  /* Gather the body in memory (up to max_body) for tw_server_req_body. */
  TW_SERVER_ROUTE_BUFFER_BODY = 1u << 1
};

typedef struct tw_server_route {
  const char *method;  /* "GET", "POST", ... (upper case); NULL = any */
  const char *pattern; /* see above, e.g. "/v2/{name...}/tags/list" */
  const char *name;    /* label of the route in metrics and logs;
                          NULL = the pattern */
  unsigned flags;      /* TW_SERVER_ROUTE_* */
  uint64_t max_body;   /* largest body accepted, bytes (413 beyond) */
  /* Request headers outside the standard set (see
   * tw_server_req_header) that handlers read, NULL-terminated; NULL for
   * none. Lower or any case. */
  const char *const *headers;
  int (*on_headers)(tw_server_req *req, void *ud);
  int (*on_body)(tw_server_req *req, const void *data, size_t len, void *ud);
  int (*on_end)(tw_server_req *req, void *ud); /* required */
  void (*on_close)(tw_server_req *req, bool completed, void *ud);
  void *ud; /* passed to the callbacks; must outlive the server */
} tw_server_route;

/* Adds a route (copied, ud borrowed). Before tw_server_start only.
 * TW_EINVAL with a message naming the pattern when it is malformed (no
 * leading '/', an empty or unterminated "{}", two catch-alls, a parameter
 * name used twice), on_end is NULL, or the same method and pattern exist;
 * TW_ESTATE after start. */
TW_API int tw_server_route_add(tw_server *srv, const tw_server_route *route,
                               tw_err *err);

/* Serves the files under dir at prefix ("/" or "/ui"; GET and HEAD):
 * "PREFIX/a/b.js" is DIR/a/b.js, a directory its index.html. Files are
 * opened beneath dir only (a symbolic link out of dir is not followed:
 * 404); Content-Type from the extension, a strong ETag with
 * If-None-Match (304), Range (206/416). TW_ENOENT if dir is not a
 * directory. */
TW_API int tw_server_static_add(tw_server *srv, const char *prefix,
                                const char *dir, tw_err *err);

/* --- The OCI registry ------------------------------------------------------
 *
 * The OCI distribution-spec v1.1 endpoints under /v2/ (pull, push with
 * monolithic, single-POST and chunked uploads, cross-repository mount,
 * tags, manifests, deletes, referrers) over a registry of
 * twin/registry.h; see docs/internals/registry.md. Blob bodies stream to
 * the upload writer; manifests are gathered up to TW_REG_MANIFEST_MAX. One
 * request at a time works on an upload session: another request for the
 * same session waits up to 2 s for it to end, then gets 409
 * BLOB_UPLOAD_INVALID. */

typedef struct tw_reg tw_reg;
typedef struct tw_server_oci tw_server_oci;

/* Adds the /v2/ routes serving reg (borrowed; must outlive srv). Before
 * tw_server_start only. *out receives the routes' shared state, which the
 * caller frees with tw_server_oci_free after tw_server_free; it is set
 * even when the call fails (routes added before the failure use it), and
 * then the server must be freed without being started. Errors as
 * tw_server_route_add, TW_ENOMEM. */
TW_API int tw_server_oci_add(tw_server *srv, tw_reg *reg, tw_server_oci **out,
                             tw_err *err);
/* After tw_server_free. NULL is a no-op. */
TW_API void tw_server_oci_free(tw_server_oci *o);

typedef struct tw_wasm_engine tw_wasm_engine;
/* Makes manifest pushes go through tw_reg_model_check with e (borrowed;
 * must outlive the server): a model artifact whose module the loader
 * refuses, or whose config is not the module's descriptor, is answered
 * MANIFEST_INVALID and not stored. Before tw_server_start. */
TW_API void tw_server_oci_check_models(tw_server_oci *o, tw_wasm_engine *e);

/* --- The model registry's REST API ----------------------------------------
 * /api/v1/models... : registered models, versions, tags, aliases, lineage
 * and search over a metadata store (twin/meta.h), and uploads of a .wasm
 * that become an OCI artifact in reg and a new version in one request.
 * docs/openapi.yaml is the contract, docs/adr/0014-registry-api.md the
 * decisions. */

typedef struct tw_meta tw_meta;
typedef struct tw_server_api tw_server_api;

/* Adds the /api/v1/ routes over reg, meta and e (all borrowed; must
 * outlive srv). *out as with tw_server_oci_add. */
TW_API int tw_server_api_add(tw_server *srv, tw_reg *reg, tw_meta *meta,
                             tw_wasm_engine *e, tw_server_api **out,
                             tw_err *err);
/* After tw_server_free. NULL is a no-op. */
TW_API void tw_server_api_free(tw_server_api *a);

/* --- The schema registry ----------------------------------------------------
 * A subset of the Confluent Schema Registry REST API at the server's root
 * (/subjects, /schemas, /config, /compatibility) over the schema registry
 * of a metadata store: JSON schemas only, compatibility levels NONE,
 * BACKWARD, FORWARD, FULL and their _TRANSITIVE forms.
 * docs/schema-registry.md is the contract, docs/adr/0018-schema-registry.md
 * the decisions. */

typedef struct tw_server_sr tw_server_sr;

/* Adds the schema registry's routes over meta (borrowed; must outlive
 * srv). *out as with tw_server_oci_add. */
TW_API int tw_server_sr_add(tw_server *srv, tw_meta *meta, tw_server_sr **out,
                            tw_err *err);
/* After tw_server_free. NULL is a no-op. */
TW_API void tw_server_sr_free(tw_server_sr *sr);

/* --- Running ------------------------------------------------------------ */

/* Binds the listening socket and starts the loop thread. TW_EIO with
 * "cannot listen on HOST:PORT" when the address cannot be bound,
 * TW_ESTATE if already started. */
TW_API int tw_server_start(tw_server *srv, tw_err *err);

/* The bound port (the real one when 0 was asked), 0 before start. */
TW_API int tw_server_port(const tw_server *srv);

/* Stops: the listening socket closes, idle connections close, in-flight
 * requests get until grace_ms (from now) to finish, with "Connection:
 * close"; then every connection is cut and the loop thread ends.
 * Callable from any thread, more than once (the earliest deadline holds).
 * Not from a signal handler (block the signals and sigwait instead). */
TW_API void tw_server_stop(tw_server *srv, unsigned grace_ms);

/* Waits until the loop thread has ended and every request's on_close has
 * returned. Returns TW_OK, or TW_ETIMEDOUT if in-flight requests had to be
 * cut at the deadline. Not from a handler. */
TW_API int tw_server_wait(tw_server *srv);

/* --- Requests ------------------------------------------------------------ */

typedef struct tw_server_kv {
  const char *name;
  const char *value;
} tw_server_kv;

TW_API const char *tw_server_req_method(const tw_server_req *req);
/* Decoded path, e.g. "/v2/library/ubuntu/manifests/latest". */
TW_API const char *tw_server_req_path(const tw_server_req *req);
/* The path percent-encoded ('/' and RFC 3986 unreserved characters plus
 * "!$&'()*+,;=:@" as they are, every other byte %XX). */
TW_API const char *tw_server_req_raw_path(const tw_server_req *req);
/* Value of route parameter name ("name" for "{name...}"), NULL if the
 * route has none by that name. */
TW_API const char *tw_server_req_param(const tw_server_req *req,
                                       const char *name);
/* First value of query parameter name ("" for "?a" or "?a="), NULL if
 * absent. Repeated parameters: tw_server_req_query_at. */
TW_API const char *tw_server_req_query(const tw_server_req *req,
                                       const char *name);
TW_API size_t tw_server_req_query_count(const tw_server_req *req);
/* Query parameter i (< count), in request order. */
TW_API tw_server_kv tw_server_req_query_at(const tw_server_req *req, size_t i);
/* Request header by name, case-insensitive; repeated headers are joined
 * with ", ". Available: the standard HTTP headers libwebsockets knows
 * (Accept, Authorization, Content-Type, Content-Range, Range, If-None-
 * Match, ...) and the route's extra headers. NULL if absent. */
TW_API const char *tw_server_req_header(const tw_server_req *req,
                                        const char *name);
/* The peer's address ("127.0.0.1"). */
TW_API const char *tw_server_req_remote(const tw_server_req *req);
/* Content-Length of the body, -1 when the request did not give one. */
TW_API int64_t tw_server_req_content_length(const tw_server_req *req);
/* The route's name (see tw_server_route.name). */
TW_API const char *tw_server_req_route(const tw_server_req *req);
/* The gathered body of a TW_SERVER_ROUTE_BUFFER_BODY route (complete in
 * on_end), borrowed. */
TW_API const tw_buf *tw_server_req_body(const tw_server_req *req);
TW_API tw_server *tw_server_req_server(const tw_server_req *req);
TW_API tw_ctx *tw_server_ctx(const tw_server *srv);
/* Per-request data for the handler; the server never touches it. */
TW_API void tw_server_req_set_data(tw_server_req *req, void *data);
TW_API void *tw_server_req_data(const tw_server_req *req);
/* True once the request can no longer be answered (client gone, timeout,
 * server cut it). Long handlers check it to stop early. */
TW_API bool tw_server_req_cancelled(const tw_server_req *req);

/* --- Responses ------------------------------------------------------------
 *
 * tw_server_req_header_add adds response headers before the respond call.
 * Exactly one respond function per request; a second call, or a call after
 * the request was cancelled, returns TW_ESTATE (its ownership transfers
 * still happen: the fd is closed, the buffer freed). Content-Length comes
 * from the body (or "Transfer-Encoding: chunked" for a stream of unknown
 * length); Content-Type from ctype (NULL: none). */

/* Adds a header (name and value copied). TW_EINVAL for a name that is not
 * an HTTP token or a value with CR, LF or NUL; TW_ESTATE after respond. */
TW_API int tw_server_req_header_add(tw_server_req *req, const char *name,
                                    const char *value);

/* Responds with a copy of body[0..len). */
TW_API int tw_server_req_respond(tw_server_req *req, int status,
                                 const char *ctype, const void *body,
                                 size_t len);
/* Responds with body's bytes, taking them (body is left empty). */
TW_API int tw_server_req_respond_buf(tw_server_req *req, int status,
                                     const char *ctype, tw_buf *body);
/* Responds {"error":{"code":CODE,"message":MESSAGE}} (application/json). */
TW_API int tw_server_req_respond_error(tw_server_req *req, int status,
                                       const char *code, const char *fmt, ...)
    TW_PRINTF(4, 5);

enum {
  /* Honour the request's Range header (one range of bytes): 206 with
   * Content-Range, 416 when it cannot be satisfied; Accept-Ranges: bytes. */
  TW_SERVER_FILE_RANGES = 1u << 0
};
/* Responds with len bytes of the open file fd from offset, read as the
 * socket drains (never all in memory). Takes fd (closed when done or on
 * failure). With TW_SERVER_FILE_RANGES and status 200, a Range applies
 * within [offset, offset + len). */
TW_API int tw_server_req_respond_file(tw_server_req *req, int status,
                                      const char *ctype, int fd,
                                      uint64_t offset, uint64_t len,
                                      unsigned flags);

/* Fills buf[0..cap) with the next bytes of a streamed response: sets *len
 * (0 with *eof false = nothing now: call tw_server_req_resume when there
 * is) and *eof at the end. Runs on the loop thread: must not block. A
 * negative return aborts the response (the connection closes). */
typedef int (*tw_server_produce_fn)(void *ud, void *buf, size_t cap,
                                    size_t *len, bool *eof);
/* Responds with the producer's bytes; length is the total when known
 * (Content-Length), -1 otherwise (chunked). done_fn(ud), if given, runs
 * once the producer is no longer used, on whichever thread frees the
 * request (so it must be thread-safe); also when this call fails. */
TW_API int tw_server_req_respond_stream(tw_server_req *req, int status,
                                        const char *ctype, int64_t length,
                                        tw_server_produce_fn fn,
                                        void (*done_fn)(void *ud), void *ud);
/* Wakes a stream producer that returned nothing; any thread. */
TW_API void tw_server_req_resume(tw_server_req *req);

/* The standard reason phrase of status ("Not Found"), "" if unknown. */
TW_API const char *tw_server_status_text(int status);

/* --- WebSocket ------------------------------------------------------------
 *
 * A WebSocket route upgrades GET requests on its path (same patterns as
 * HTTP routes). Its callbacks, for one connection, never run concurrently
 * and run in order: on_open, on_message per complete message (fragments
 * joined, up to max_message bytes, beyond which the connection closes with
 * 1009), on_close last and always. They run on the pool unless the route
 * is TW_SERVER_ROUTE_FAST. Messages are sent with tw_server_ws_send from
 * any thread; each connection queues at most max_queue bytes: a send that
 * would go past it is refused with TW_EBUSY and nothing is queued (the
 * sender decides: drop the message, or tw_server_ws_close a consumer too
 * slow to keep). The queue drains as the socket becomes writable.
 *
 * A tw_server_ws lives until on_close returns. */

typedef struct tw_server_ws_route {
  const char *pattern;
  const char *name;   /* metrics/log label; NULL = pattern */
  unsigned flags;     /* TW_SERVER_ROUTE_FAST */
  size_t max_message; /* default 1 MiB when 0 */
  size_t max_queue;   /* default 8 MiB when 0 */
  int (*on_open)(tw_server_ws *ws, void *ud);
  int (*on_message)(tw_server_ws *ws, const void *data, size_t len, bool binary,
                    void *ud);
  void (*on_close)(tw_server_ws *ws, void *ud);
  void *ud;
} tw_server_ws_route;

/* Adds a WebSocket route; errors as tw_server_route_add. */
TW_API int tw_server_ws_route_add(tw_server *srv,
                                  const tw_server_ws_route *route, tw_err *err);

/* Queues a message (copied). TW_EBUSY when the queue is full, TW_ESTATE
 * once the connection is closing, TW_ENOMEM. Any thread. */
TW_API int tw_server_ws_send(tw_server_ws *ws, const void *data, size_t len,
                             bool binary);
/* Closes the connection with a close code (1000 normal) after the queued
 * messages. Any thread. */
TW_API void tw_server_ws_close(tw_server_ws *ws, int code);
/* Route parameter, path and peer of the upgrade request. */
TW_API const char *tw_server_ws_param(const tw_server_ws *ws, const char *name);
TW_API const char *tw_server_ws_path(const tw_server_ws *ws);
TW_API void tw_server_ws_set_data(tw_server_ws *ws, void *data);
TW_API void *tw_server_ws_data(const tw_server_ws *ws);
/* Bytes queued and not yet written. */
TW_API size_t tw_server_ws_queued(const tw_server_ws *ws);

TW_EXTERN_C_END

#endif /* TWIN_SERVER_H */
