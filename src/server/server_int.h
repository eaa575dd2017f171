/*
 * server_int.h - private structures of the server: routes and their
 * patterns, requests, WebSocket connections, the serial executor that runs
 * one request's callbacks in order, and the wake-up queue from handler
 * threads to the loop thread.
 *
 * Invariants:
 * - Fields marked "loop" are read and written on the loop thread only.
 * - Fields marked "mu" are guarded by the owner's mutex.
 * - A request is freed when its reference count drops to zero. References:
 *   the loop's (while the connection is attached), the executor's (until
 *   on_close has run) and one per entry in the server's wake-up queue.
 * - Route tables are immutable once the server has started.
 */
#ifndef TW_SERVER_INT_H
#define TW_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "twin/arena.h"
#include "twin/server.h"

/* --- Patterns and paths (router.c; pure, fuzzed) ----------------------- */

/* Most segments a path or a pattern may have; longer paths get 414. */
#define TW__SERVER_MAX_SEGS 128
#define TW__SERVER_MAX_PARAMS 16

typedef struct tw__pat_seg {
  char *text; /* literal text, or the parameter's name */
  bool param; /* "{name}" or "{name...}" */
  bool rest;  /* "{name...}" */
} tw__pat_seg;

typedef struct tw__pattern {
  char *source;
  tw__pat_seg *segs;
  size_t nsegs;
  size_t nparams;
  size_t nliterals;
  int rest_at; /* index of the catch-all segment, -1 if none */
} tw__pattern;

/* A path cut at '/': segment i is path[off[i], off[i] + len[i]). "/" has
 * one empty segment; a trailing '/' adds an empty last segment. */
typedef struct tw__path {
  const char *path;
  size_t nsegs;
  size_t off[TW__SERVER_MAX_SEGS];
  size_t len[TW__SERVER_MAX_SEGS];
} tw__path;

/* A matched parameter: its value is path[off, off + len). */
typedef struct tw__param {
  const char *name;
  size_t off, len;
} tw__param;

int tw__server_pattern_compile(const char *pattern, tw__pattern *out,
                               tw_err *err);
void tw__server_pattern_fini(tw__pattern *p);
/* Splits path (which must start with '/'); TW_ELIMIT beyond
 * TW__SERVER_MAX_SEGS segments, TW_EINVAL without the leading '/'. */
int tw__server_path_split(const char *path, size_t len, tw__path *out);
/* Matches; on success fills params[0 .. p->nparams). */
bool tw__server_pattern_match(const tw__pattern *p, const tw__path *path,
                              tw__param *params);
/* Appends the canonical percent-encoding of path[0..len) to out. */
int tw__server_path_encode(const char *path, size_t len, tw_buf *out);
/* Splits one query fragment "k=v" (already decoded) at the first '=':
 * *klen gets the key's length, *val the value (after '=', or the end). */
void tw__server_query_split(const char *frag, size_t len, size_t *klen,
                            const char **val);
/* Parses a Range header for a resource of size bytes: "bytes=A-B",
 * "bytes=A-", "bytes=-N" (one range). Returns 1 with [*first, *last]
 * when satisfiable, 0 when the header is to be ignored (malformed, other
 * unit, several ranges), -1 when it cannot be satisfied (416). */
int tw__server_range_parse(const char *value, uint64_t size, uint64_t *first,
                           uint64_t *last);
/* Parses "HOST:PORT" / "[V6]:PORT" into host (NUL-terminated, at most
 * hostcap bytes) and port; TW_EINVAL with a message otherwise. */
int tw__server_listen_parse(const char *spec, char *host, size_t hostcap,
                            int *port, tw_err *err);
/* True when name is an HTTP token and value has no CR, LF or NUL. */
bool tw__server_header_ok(const char *name, const char *value);

/* --- Chunked request bodies (chunked.c; pure, fuzzed) ------------------- */

/* Longest chunk-size line (with its extensions) or trailer line, and the
 * longest trailer section, in bytes. */
#define TW__CHUNKED_MAX_LINE 8192u
#define TW__CHUNKED_MAX_TRAILERS 65536u
/* Largest chunk size accepted. */
#define TW__CHUNKED_MAX_SIZE (UINT64_C(1) << 62)

enum { TW__CHUNKED_MORE, TW__CHUNKED_DONE, TW__CHUNKED_BAD };

/* The state of one chunked body being decoded; caller-owned storage. */
typedef struct tw__chunked {
  int state;
  unsigned digits;   /* hex digits of the size being read */
  uint64_t size;     /* the size being read, then the data left of it */
  size_t line;       /* bytes of the current size or trailer line */
  size_t trailers;   /* bytes of the trailer section */
  uint64_t total;    /* body bytes decoded */
  uint64_t consumed; /* input bytes consumed */
  const char *error; /* why it failed (static text), NULL before */
} tw__chunked;

void tw__server_chunked_init(tw__chunked *c);
/* Decodes in[0, len) and writes the body bytes it carries to out, which
 * has room for len bytes (out == in is allowed: the body is never longer
 * than its framing). *outlen gets the body bytes written, *used the input
 * bytes consumed. Returns TW__CHUNKED_MORE when all of in was consumed
 * and the body goes on; TW__CHUNKED_DONE when the body ended (the last
 * chunk and the trailer section): bytes of in past *used are not part of
 * it; TW__CHUNKED_BAD when the framing is malformed, with c->error saying
 * why (out may hold body bytes decoded before the fault). After DONE or
 * BAD every call returns the same and consumes nothing. */
int tw__server_chunked_decode(tw__chunked *c, const unsigned char *in,
                              size_t len, unsigned char *out, size_t *outlen,
                              size_t *used);

/* --- Routes ------------------------------------------------------------- */

typedef enum tw__route_kind {
  TW__ROUTE_HTTP,
  TW__ROUTE_WS,
  TW__ROUTE_STATIC
} tw__route_kind;

typedef struct tw__route {
  tw__route_kind kind;
  char *method; /* NULL = any */
  char *name;
  tw__pattern pat;
  tw_server_route http;  /* strings point at the copies here */
  char **headers;        /* lower-case copies, NULL-terminated */
  tw_server_ws_route ws; /* TW__ROUTE_WS */
  char *static_dir;      /* TW__ROUTE_STATIC: the real path of the root */
  int static_fd;         /* an O_PATH descriptor of it */
} tw__route;

/* --- The serial executor ------------------------------------------------ */

enum {
  TW__EV_HEADERS,
  TW__EV_BODY,
  TW__EV_END,
  TW__EV_CLOSE,
  TW__EV_OPEN,
  TW__EV_MESSAGE
};

typedef struct tw__ev {
  struct tw__ev *next;
  int kind;
  bool flag; /* CLOSE: completed; MESSAGE: binary */
  size_t len;
  unsigned char data[]; /* BODY, MESSAGE */
} tw__ev;

/* Runs events one at a time, in order, on the pool (or inline when fast).
 * run returns true when the owner was freed (after the CLOSE event), so
 * the executor stops touching it. */
typedef struct tw__exec {
  pthread_mutex_t *mu; /* the owner's */
  tw__ev *head, *tail; /* mu */
  bool running;        /* mu: a task is queued or draining */
  bool fast;
  tw_pool *pool;
  bool (*run)(void *owner, tw__ev *ev);
  void *owner;
} tw__exec;

tw__ev *tw__server_ev_new(int kind, const void *data, size_t len);
/* Queues ev (taken) and makes sure a drain is scheduled. */
void tw__server_exec_post(tw__exec *x, tw__ev *ev);

/* --- Requests ----------------------------------------------------------- */

typedef enum tw__body_kind {
  TW__BODY_BUF,
  TW__BODY_FILE,
  TW__BODY_STREAM
} tw__body_kind;

typedef struct tw__resp {
  int status;
  char *ctype;
  tw_buf headers; /* "name\0value\0" pairs */
  tw__body_kind kind;
  tw_buf body;
  int fd;
  uint64_t off, len;
  unsigned file_flags;
  int64_t length; /* stream: -1 = chunked */
  tw_server_produce_fn produce;
  void (*done_fn)(void *ud);
  void *ud;
} tw__resp;

struct tw_server_req {
  tw_server *srv;
  const tw__route *route; /* NULL for the server's own 404/405/413 */
  atomic_int refs;
  pthread_mutex_t mu;
  tw__exec exec;
  tw_arena arena; /* the strings below; written before on_headers */

  const char *method;
  const char *path;
  const char *raw_path;
  const char *route_name;
  const char *remote;
  int64_t content_length;
  tw_server_kv *query;
  size_t nquery;
  tw_server_kv *headers;
  size_t nheaders;
  tw_server_kv params[TW__SERVER_MAX_PARAMS];
  size_t nparams;
  tw__ev *close_ev; /* made up front so that detaching cannot fail */
  tw_buf body;      /* BUFFER_BODY routes, exec side */
  void *data;
  bool head; /* a HEAD request: no body is sent */

  /* mu */
  bool responded;
  bool cancelled;
  bool failed;       /* a callback failed: skip the rest */
  bool want_resume;  /* body reading may resume */
  bool stream_ready; /* the producer has more */
  size_t queued;     /* body bytes waiting for on_body */
  tw__resp resp;

  /* loop */
  struct lws *wsi;
  struct tw__conn *conn;
  uint64_t t0;        /* tw_clock_mono_ns at the headers */
  uint64_t body_seen; /* bytes of body received */
  uint64_t max_body;  /* effective limit */
  bool body_expected; /* a body was announced */
  bool body_done;     /* all of it arrived */
  bool chunked;       /* Transfer-Encoding: chunked; decoded by chunk */
  tw__chunked chunk;
  bool rx_paused;
  bool rx_stopped;  /* reading stopped for good */
  bool started;     /* headers written */
  bool finished;    /* the whole response written */
  bool close_after; /* close the connection after the response */
  bool chunked_out;
  bool no_sendfile; /* the file body goes through pread + lws_write */
  uint64_t sent;    /* body bytes written */
  uint64_t to_send; /* body bytes to write (known lengths) */
  int status_sent;
  unsigned char *wbuf;             /* LWS_PRE + TW__SERVER_CHUNK */
  struct tw_server_req *wake_next; /* srv->mu */
  bool wake_queued;                /* srv->mu */
};

/* One HTTP connection's state (libwebsockets per-session data). */
typedef struct tw__conn {
  tw_server_req *req;
  tw_server_ws *ws;
} tw__conn;

#define TW__SERVER_CHUNK ((size_t)256 * 1024)
/* Most body bytes written in one writable callback. */
#define TW__SERVER_WRITE_MAX ((size_t)4 << 20)

/* --- WebSocket connections ---------------------------------------------- */

typedef struct tw__wsmsg {
  struct tw__wsmsg *next;
  size_t len;
  bool binary;
  unsigned char *data; /* LWS_PRE bytes precede it */
  unsigned char storage[];
} tw__wsmsg;

struct tw_server_ws {
  tw_server *srv;
  const tw__route *route;
  atomic_int refs; /* loop (until closed) + exec (until on_close) +
                      wake-up queue entries */
  pthread_mutex_t mu;
  tw__exec exec;
  tw_arena arena;
  const char *path;
  tw_server_kv params[TW__SERVER_MAX_PARAMS];
  size_t nparams;
  tw__ev *close_ev;
  void *data;

  /* mu */
  tw__wsmsg *qhead, *qtail;
  size_t queued;
  bool closing;
  int close_code;

  /* loop */
  struct lws *wsi;
  tw_buf rx;                      /* fragments of the message being received */
  struct tw_server_ws *wake_next; /* srv->mu */
  bool wake_queued;               /* srv->mu */
  struct tw_server_ws *list_prev, *list_next; /* loop */
};

/* --- The server --------------------------------------------------------- */

struct tw_server {
  tw_ctx *ctx;
  tw_pool *pool;
  tw_server_options opts;
  char *listen_spec;
  char host[64];
  int port_req;
  int port; /* written by tw_server_start before the loop thread */

  tw__route **routes;
  size_t nroutes;

  struct lws_context *lws;
  struct lws_vhost *vhost;
  struct lws *listener; /* loop */
  int listen_fd;
  pthread_t thread;
  bool started, joined;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop_requested;        /* mu */
  uint64_t deadline_ns;       /* mu; tw_clock_mono_ns */
  bool loop_dead;             /* mu: no more wake-ups */
  tw_server_req *wake_head;   /* mu */
  tw_server_ws *ws_wake_head; /* mu */
  long live;                  /* mu: requests and ws not yet freed */
  bool cut;                   /* requests were cut at the deadline */

  /* loop */
  bool stopping;
  long inflight; /* requests attached to connections */
  tw_server_ws *ws_list;
  long nws;

  /* metrics */
  tw_metric_family *m_requests;
  tw_metric_family *m_duration;
  tw_metric *m_inflight;
  tw_metric *m_ws;
};

/* request.c */
int tw__server_req_new(tw_server *srv, const tw__route *route,
                       tw_server_req **out);
void tw__server_req_unref(tw_server_req *req);
/* Sets the server's own response (404, 413, ...) on the loop thread. */
void tw__server_req_reject(tw_server_req *req, int status, const char *code,
                           const char *message);
/* Puts req on the wake-up queue (any thread). */
void tw__server_wake_req(tw_server_req *req);
/* Called by the loop on LWS_CALLBACK_HTTP_WRITEABLE; returns -1 to close
 * the connection. */
int tw__server_req_writable(tw_server_req *req);
/* The loop lets go of the request (posts CLOSE). */
void tw__server_req_detach(tw_server_req *req, bool completed);
/* Error code -> HTTP status, for failing callbacks. */
int tw__server_status_of(int code);
void tw__server_dec_live(tw_server *srv);

/* server.c */
void tw__server_access_log(tw_server *srv, tw_server_req *req, int status,
                           uint64_t bytes);

/* builtin.c */
int tw__server_builtin_add(tw_server *srv, tw_err *err);
int tw__server_metrics_init(tw_server *srv, tw_err *err);

/* static.c */
extern const tw_server_route tw__server_static_route;
int tw__server_static_open(tw__route *r, const char *dir, tw_err *err);

/* server.c: the WebSocket route for an upgrade's path, or NULL. */
const tw__route *tw__server_ws_route_find(tw_server *srv, const char *path,
                                          tw__param *params);

/* ws.c */
int tw__server_ws_callback(tw_server *srv, struct lws *wsi, int reason,
                           void *in, size_t len);
void tw__server_ws_wake(tw_server_ws *ws);
void tw__server_ws_stop_all(tw_server *srv);

#endif /* TW_SERVER_INT_H */
