/*
 * builtin.c - what every server has: the HTTP metrics families and the
 * /healthz and /metrics routes.
 *
 * /metrics renders the context's whole registry (so the process, graph
 * and wasm metrics appear next to the server's own) in the Prometheus text
 * format, on the pool: rendering walks every family under its lock.
 */
#include <string.h>

#include "server_int.h"

int tw__server_metrics_init(tw_server *srv, tw_err *err) {
  tw_metrics *m = tw_ctx_metrics(srv->ctx);
  static const char *const req_labels[3] = {"method", "route", "status"};
  /* Request durations from 0.5 ms to about 16 s, doubling. */
  double bounds[16];
  int rc = tw_metrics_exponential_buckets(0.0005, 2.0, 16, bounds);
  if (rc == TW_OK)
    rc = tw_metrics_family(m, TW_METRIC_COUNTER, "http_requests_total",
                           "HTTP requests answered, by method, route and "
                           "status (499: the client went away first).",
                           req_labels, 3, NULL, 0, &srv->m_requests, err);
  if (rc == TW_OK)
    rc = tw_metrics_family(m, TW_METRIC_HISTOGRAM,
                           "http_request_duration_seconds",
                           "Time from a request's headers to the end of its "
                           "response.",
                           req_labels, 3, bounds, 16, &srv->m_duration, err);
  if (rc == TW_OK)
    rc = tw_metrics_gauge(m, "http_requests_in_flight",
                          "HTTP requests received and not yet answered.",
                          &srv->m_inflight, err);
  if (rc == TW_OK)
    rc = tw_metrics_gauge(m, "http_websocket_connections",
                          "Open WebSocket connections.", &srv->m_ws, err);
  return rc;
}

static int healthz(tw_server_req *req, void *ud) {
  (void)ud;
  static const char body[] = "{\"status\":\"ok\"}\n";
  return tw_server_req_respond(req, 200, "application/json", body,
                               sizeof body - 1);
}

static int metrics(tw_server_req *req, void *ud) {
  (void)ud;
  tw_buf b = TW_BUF_INIT;
  int rc = tw_metrics_render(
      tw_ctx_metrics(tw_server_ctx(tw_server_req_server(req))), &b);
  if (rc != TW_OK) {
    tw_buf_fini(&b);
    return rc;
  }
  return tw_server_req_respond_buf(
      req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

int tw__server_builtin_add(tw_server *srv, tw_err *err) {
  tw_server_route r;
  memset(&r, 0, sizeof r);
  r.method = "GET";
  r.pattern = "/healthz";
  r.flags = TW_SERVER_ROUTE_FAST;
  r.on_end = healthz;
  int rc = tw_server_route_add(srv, &r, err);
  if (rc != TW_OK)
    return rc;
  memset(&r, 0, sizeof r);
  r.method = "GET";
  r.pattern = "/metrics";
  r.on_end = metrics;
  return tw_server_route_add(srv, &r, err);
}
