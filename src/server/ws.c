/*
 * ws.c - WebSocket connections: upgrade matching, the callbacks' executor,
 * the bounded send queue drained on LWS_CALLBACK_SERVER_WRITEABLE.
 *
 * The send queue is the backpressure: a message costs its bytes until the
 * socket has taken it, one message per writable callback, and a sender
 * that would take the queue past the route's max_queue is refused with
 * TW_EBUSY (nothing queued), so a slow reader can never grow the server's
 * memory; the sender chooses to drop, to retry later or to close.
 */
#include <libwebsockets.h>
#include <string.h>

#include "server_int.h"
#include "twin/alloc.h"

static void ws_unref(tw_server_ws *ws) {
  if (atomic_fetch_sub(&ws->refs, 1) != 1)
    return;
  tw_server *srv = ws->srv;
  while (ws->qhead != NULL) {
    tw__wsmsg *m = ws->qhead;
    ws->qhead = m->next;
    tw_free(m);
  }
  tw_free(ws->close_ev);
  tw_buf_fini(&ws->rx);
  tw_arena_fini(&ws->arena);
  pthread_mutex_destroy(&ws->mu);
  tw_free(ws);
  tw__server_dec_live(srv);
}

static void ws_wake_queue(tw_server_ws *ws) {
  tw_server *srv = ws->srv;
  pthread_mutex_lock(&srv->mu);
  if (!srv->loop_dead && !ws->wake_queued) {
    ws->wake_queued = true;
    atomic_fetch_add(&ws->refs, 1);
    ws->wake_next = srv->ws_wake_head;
    srv->ws_wake_head = ws;
    lws_cancel_service(srv->lws);
  }
  pthread_mutex_unlock(&srv->mu);
}

void tw__server_ws_wake(tw_server_ws *ws) {
  if (ws->wsi != NULL)
    lws_callback_on_writable(ws->wsi);
  ws_unref(ws);
}

static bool ws_run(void *owner, tw__ev *ev) {
  tw_server_ws *ws = owner;
  const tw_server_ws_route *rt = &ws->route->ws;
  pthread_mutex_lock(&ws->mu);
  bool closing = ws->closing;
  pthread_mutex_unlock(&ws->mu);
  int rc = TW_OK;
  switch (ev->kind) {
  case TW__EV_OPEN:
    if (rt->on_open != NULL && !closing)
      rc = rt->on_open(ws, rt->ud);
    break;
  case TW__EV_MESSAGE:
    if (rt->on_message != NULL && !closing)
      rc = rt->on_message(ws, ev->data, ev->len, ev->flag, rt->ud);
    break;
  case TW__EV_CLOSE:
    if (rt->on_close != NULL)
      rt->on_close(ws, rt->ud);
    if (ev == ws->close_ev)
      ws->close_ev = NULL;
    ws_unref(ws); /* the executor's reference */
    return true;
  default:
    break;
  }
  if (rc < 0)
    tw_server_ws_close(ws, 1011);
  return false;
}

int tw_server_ws_send(tw_server_ws *ws, const void *data, size_t len,
                      bool binary) {
  pthread_mutex_lock(&ws->mu);
  int rc = TW_OK;
  if (ws->closing)
    rc = TW_ESTATE;
  else if (ws->queued + len > ws->route->ws.max_queue)
    rc = TW_EBUSY;
  pthread_mutex_unlock(&ws->mu);
  if (rc != TW_OK)
    return rc;
  tw__wsmsg *m = tw_alloc(sizeof *m + LWS_PRE + len);
  if (m == NULL)
    return TW_ENOMEM;
  m->next = NULL;
  m->len = len;
  m->binary = binary;
  m->data = m->storage + LWS_PRE;
  if (len > 0)
    memcpy(m->data, data, len);
  pthread_mutex_lock(&ws->mu);
  if (ws->closing || ws->queued + len > ws->route->ws.max_queue) {
    rc = ws->closing ? TW_ESTATE : TW_EBUSY;
    pthread_mutex_unlock(&ws->mu);
    tw_free(m);
    return rc;
  }
  if (ws->qtail != NULL)
    ws->qtail->next = m;
  else
    ws->qhead = m;
  ws->qtail = m;
  ws->queued += len;
  pthread_mutex_unlock(&ws->mu);
  ws_wake_queue(ws);
  return TW_OK;
}

void tw_server_ws_close(tw_server_ws *ws, int code) {
  pthread_mutex_lock(&ws->mu);
  if (!ws->closing) {
    ws->closing = true;
    ws->close_code = code;
  }
  pthread_mutex_unlock(&ws->mu);
  ws_wake_queue(ws);
}

const char *tw_server_ws_param(const tw_server_ws *ws, const char *name) {
  for (size_t i = 0; i < ws->nparams; i++)
    if (strcmp(ws->params[i].name, name) == 0)
      return ws->params[i].value;
  return NULL;
}
const char *tw_server_ws_path(const tw_server_ws *ws) { return ws->path; }
void tw_server_ws_set_data(tw_server_ws *ws, void *data) { ws->data = data; }
void *tw_server_ws_data(const tw_server_ws *ws) { return ws->data; }
size_t tw_server_ws_queued(const tw_server_ws *ws) {
  pthread_mutex_lock(ws->exec.mu);
  size_t n = ws->queued;
  pthread_mutex_unlock(ws->exec.mu);
  return n;
}

void tw__server_ws_stop_all(tw_server *srv) {
  for (tw_server_ws *ws = srv->ws_list; ws != NULL; ws = ws->list_next)
    tw_server_ws_close(ws, 1001); /* going away */
}

/* The path of the upgrade request, or NULL. */
static char *upgrade_path(struct lws *wsi, tw_arena *a) {
  int len = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
  if (len <= 0)
    return NULL;
  char *s = tw_arena_alloc(a, (size_t)len + 1);
  if (s == NULL || lws_hdr_copy(wsi, s, len + 1, WSI_TOKEN_GET_URI) < 0)
    return NULL;
  return s;
}

static int established(tw_server *srv, struct lws *wsi, tw__conn *conn) {
  tw_server_ws *ws = tw_calloc(1, sizeof *ws);
  if (ws == NULL)
    return -1;
  tw_arena_init(&ws->arena, 1024);
  ws->close_ev = tw__server_ev_new(TW__EV_CLOSE, NULL, 0);
  tw__param params[TW__SERVER_MAX_PARAMS];
  const char *path = upgrade_path(wsi, &ws->arena);
  const tw__route *r =
      path ? tw__server_ws_route_find(srv, path, params) : NULL;
  if (r == NULL || ws->close_ev == NULL ||
      pthread_mutex_init(&ws->mu, NULL) != 0) {
    tw_free(ws->close_ev);
    tw_arena_fini(&ws->arena);
    tw_free(ws);
    return -1;
  }
  ws->srv = srv;
  ws->route = r;
  ws->path = path;
  for (size_t i = 0; i < r->pat.nparams; i++) {
    ws->params[i].name = params[i].name;
    ws->params[i].value =
        tw_arena_strndup(&ws->arena, path + params[i].off, params[i].len);
    ws->nparams = i + 1;
  }
  atomic_init(&ws->refs, 2); /* the loop's and the executor's */
  ws->exec.mu = &ws->mu;
  ws->exec.fast = (r->ws.flags & TW_SERVER_ROUTE_FAST) != 0;
  ws->exec.pool = srv->pool;
  ws->exec.run = ws_run;
  ws->exec.owner = ws;
  ws->wsi = wsi;
  pthread_mutex_lock(&srv->mu);
  srv->live++;
  pthread_mutex_unlock(&srv->mu);
  conn->req = NULL;
  conn->ws = ws;
  ws->list_next = srv->ws_list;
  if (srv->ws_list != NULL)
    srv->ws_list->list_prev = ws;
  srv->ws_list = ws;
  srv->nws++;
  tw_metric_add(srv->m_ws, 1);
  if (srv->stopping)
    tw_server_ws_close(ws, 1001);
  tw__ev *ev = tw__server_ev_new(TW__EV_OPEN, NULL, 0);
  if (ev == NULL)
    tw_server_ws_close(ws, 1011);
  else
    tw__server_exec_post(&ws->exec, ev);
  return 0;
}

static void ws_closed(tw_server *srv, tw__conn *conn) {
  tw_server_ws *ws = conn->ws;
  conn->ws = NULL;
  if (ws->list_prev != NULL)
    ws->list_prev->list_next = ws->list_next;
  else
    srv->ws_list = ws->list_next;
  if (ws->list_next != NULL)
    ws->list_next->list_prev = ws->list_prev;
  srv->nws--;
  tw_metric_add(srv->m_ws, -1);
  ws->wsi = NULL;
  pthread_mutex_lock(&ws->mu);
  ws->closing = true;
  pthread_mutex_unlock(&ws->mu);
  tw__server_exec_post(&ws->exec, ws->close_ev);
  ws_unref(ws); /* the loop's reference */
}

static int receive(tw_server_ws *ws, struct lws *wsi, const void *in,
                   size_t len) {
  if (ws->rx.len + len > ws->route->ws.max_message) {
    unsigned char why[] = "message too big";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, why,
                     sizeof why - 1);
    return -1;
  }
  if (tw_buf_append(&ws->rx, in, len) != TW_OK)
    return -1;
  if (!lws_is_final_fragment(wsi))
    return 0;
  tw__ev *ev = tw__server_ev_new(TW__EV_MESSAGE, ws->rx.data, ws->rx.len);
  if (ev == NULL)
    return -1;
  ev->flag = lws_frame_is_binary(wsi) != 0;
  tw_buf_reset(&ws->rx);
  tw__server_exec_post(&ws->exec, ev);
  return 0;
}

static int writable(tw_server_ws *ws, struct lws *wsi) {
  pthread_mutex_lock(&ws->mu);
  tw__wsmsg *m = ws->qhead;
  if (m != NULL) {
    ws->qhead = m->next;
    if (ws->qhead == NULL)
      ws->qtail = NULL;
  }
  bool closing = ws->closing, more = ws->qhead != NULL;
  int code = ws->close_code;
  pthread_mutex_unlock(&ws->mu);
  if (m != NULL) {
    int n = lws_write(wsi, m->data, m->len,
                      m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    pthread_mutex_lock(&ws->mu);
    ws->queued -= m->len;
    pthread_mutex_unlock(&ws->mu);
    bool ok = n >= (int)m->len;
    tw_free(m);
    if (!ok)
      return -1;
    if (more || closing)
      lws_callback_on_writable(wsi);
    return 0;
  }
  if (closing) {
    lws_close_reason(wsi, (enum lws_close_status)(code ? code : 1000), NULL, 0);
    return -1;
  }
  return 0;
}

int tw__server_ws_callback(tw_server *srv, struct lws *wsi, int reason,
                           void *in, size_t len) {
  tw__conn *conn = lws_wsi_user(wsi);
  switch (reason) {
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
    if (in == NULL || strcmp(in, "websocket") != 0 || srv->stopping)
      return 1;
    tw_arena a;
    tw_arena_init(&a, 512);
    tw__param params[TW__SERVER_MAX_PARAMS];
    const char *path = upgrade_path(wsi, &a);
    bool ok =
        path != NULL && tw__server_ws_route_find(srv, path, params) != NULL;
    tw_arena_fini(&a);
    return ok ? 0 : 1;
  }
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    return 0;
  case LWS_CALLBACK_ESTABLISHED:
    return conn != NULL ? established(srv, wsi, conn) : -1;
  case LWS_CALLBACK_RECEIVE:
    if (conn == NULL || conn->ws == NULL)
      return -1;
    return receive(conn->ws, wsi, in, len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (conn == NULL || conn->ws == NULL)
      return 0;
    return writable(conn->ws, wsi);
  case LWS_CALLBACK_CLOSED:
    if (conn != NULL && conn->ws != NULL)
      ws_closed(srv, conn);
    return 0;
  default:
    return 0;
  }
}
