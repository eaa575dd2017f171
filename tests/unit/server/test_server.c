/*
 * test_server.c - the HTTP server in-process on an ephemeral loopback
 * port, driven with libcurl (and raw sockets for slow clients and the
 * WebSocket echo).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tw_test.h"

/* --- Fixture ------------------------------------------------------------- */

typedef struct fixture {
  tw_ctx *ctx;
  tw_server *srv;
  int port;
  char base[64];
} fixture;

static void fx_new(fixture *fx, void (*add_routes)(tw_server *srv)) {
  tw_ctx_options o;
  tw_ctx_options_init(&o);
  o.threads = 4; /* three workers whatever the machine */
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ctx_new(&o, &fx->ctx, &err), TW_OK);
  tw_server_options so;
  tw_server_options_init(&so);
  so.listen = "127.0.0.1:0";
  assert_int_equal(tw_server_new(fx->ctx, &so, &fx->srv, &err), TW_OK);
  if (add_routes != NULL)
    add_routes(fx->srv);
  assert_int_equal(tw_server_start(fx->srv, &err), TW_OK);
  fx->port = tw_server_port(fx->srv);
  assert_true(fx->port > 0);
  snprintf(fx->base, sizeof fx->base, "http://127.0.0.1:%d", fx->port);
}

static void fx_free(fixture *fx) {
  tw_server_stop(fx->srv, 2000);
  assert_int_equal(tw_server_wait(fx->srv), TW_OK);
  tw_server_free(fx->srv);
  tw_ctx_free(fx->ctx);
}

/* --- A small client ------------------------------------------------------ */

typedef struct reply {
  long status;
  char body[1 << 16];
  size_t len;
  char headers[4096];
  size_t hlen;
  long connects;
} reply;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  reply *r = ud;
  size_t k = size * n;
  size_t room = sizeof r->body - 1 - r->len;
  memcpy(r->body + r->len, p, k < room ? k : room);
  r->len += k < room ? k : room;
  r->body[r->len] = '\0';
  return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  reply *r = ud;
  size_t k = size * n;
  size_t room = sizeof r->headers - 1 - r->hlen;
  memcpy(r->headers + r->hlen, p, k < room ? k : room);
  r->hlen += k < room ? k : room;
  r->headers[r->hlen] = '\0';
  return k;
}

/* Performs one request on handle h (reused for keep-alive when given). */
static void request(CURL *h, const char *method, const char *url,
                    const void *body, size_t len, const char *header,
                    reply *r) {
  memset(r, 0, sizeof *r);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
  if (body != NULL) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  } else {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  }
  struct curl_slist *hs = NULL;
  if (header != NULL)
    hs = curl_slist_append(hs, header);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK)
    fprintf(stderr, "curl %s %s: %s\n", method, url, curl_easy_strerror(rc));
  assert_int_equal(rc, CURLE_OK);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hs);
}

static void fetch(const fixture *fx, const char *method, const char *path,
                  const void *body, size_t len, const char *header, reply *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", fx->base, path);
  CURL *h = curl_easy_init();
  request(h, method, url, body, len, header, r);
  curl_easy_cleanup(h);
}

/* --- Routes used by the tests -------------------------------------------- */

static int echo_params(tw_server_req *req, void *ud) {
  char out[512];
  const char *q = tw_server_req_query(req, "n");
  snprintf(out, sizeof out, "%s|%s|%s|%s|%s", (const char *)ud,
           tw_server_req_param(req, "name"),
           tw_server_req_param(req, "ref") ? tw_server_req_param(req, "ref")
                                           : "-",
           q ? q : "-", tw_server_req_method(req));
  return tw_server_req_respond(req, 200, "text/plain", out, strlen(out));
}

typedef struct upload {
  tw_sha256_state *h;
  uint64_t bytes;
} upload;

static atomic_int uploads_closed;

static int up_headers(tw_server_req *req, void *ud) {
  (void)ud;
  upload *u = tw_calloc(1, sizeof *u);
  if (u == NULL)
    return TW_ENOMEM;
  if (tw_sha256_new(&u->h) != TW_OK) {
    tw_free(u);
    return TW_ENOMEM;
  }
  tw_server_req_set_data(req, u);
  return TW_OK;
}

static int up_body(tw_server_req *req, const void *data, size_t len, void *ud) {
  (void)ud;
  upload *u = tw_server_req_data(req);
  u->bytes += len;
  return tw_sha256_update(u->h, data, len);
}

static int up_end(tw_server_req *req, void *ud) {
  (void)ud;
  upload *u = tw_server_req_data(req);
  uint8_t d[TW_SHA256_LEN];
  char hex[80] = "sha256:";
  tw_sha256_final(u->h, d);
  tw_hex_encode(d, TW_SHA256_LEN, hex + 7);
  tw_server_req_header_add(req, "Docker-Content-Digest", hex);
  return tw_server_req_respond(req, 201, "text/plain", hex, strlen(hex));
}

static void up_close(tw_server_req *req, bool completed, void *ud) {
  (void)ud;
  (void)completed;
  upload *u = tw_server_req_data(req);
  if (u != NULL) {
    tw_sha256_free(u->h);
    tw_free(u);
  }
  atomic_fetch_add(&uploads_closed, 1);
}

static atomic_int slow_running;

static int slow(tw_server_req *req, void *ud) {
  (void)ud;
  atomic_store(&slow_running, 1);
  usleep(400 * 1000);
  atomic_store(&slow_running, 0);
  return tw_server_req_respond(req, 200, "text/plain", "slow", 4);
}

static char range_path[256];

static int file_range(tw_server_req *req, void *ud) {
  (void)ud;
  int fd = open(range_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return TW_ENOENT;
  struct stat st;
  fstat(fd, &st);
  return tw_server_req_respond_file(req, 200, "application/octet-stream", fd, 0,
                                    (uint64_t)st.st_size,
                                    TW_SERVER_FILE_RANGES);
}

static int fails(tw_server_req *req, void *ud) {
  (void)req;
  (void)ud;
  return TW_ENOENT;
}

static int ws_msg(tw_server_ws *ws, const void *data, size_t len, bool binary,
                  void *ud) {
  (void)ud;
  return tw_server_ws_send(ws, data, len, binary);
}

static void add_routes(tw_server *srv) {
  tw_err err;
  tw_err_init(&err);
  tw_server_route r;
  memset(&r, 0, sizeof r);
  r.method = "GET";
  r.pattern = "/v2/{name...}/manifests/{ref}";
  r.on_end = echo_params;
  r.ud = "manifest";
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  r.method = "DELETE";
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  r.method = "GET";
  r.pattern = "/v2/{name...}/tags/list";
  r.ud = "tags";
  r.flags = TW_SERVER_ROUTE_FAST;
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  r.pattern = "/v2/";
  r.ud = "base";
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  /* The same pattern again is refused; so are malformed ones. */
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_EINVAL);
  tw_err_init(&err);
  r.pattern = "/a/{x...}/{y...}";
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "catch-all"));
  r.flags = 0;

  memset(&r, 0, sizeof r);
  r.method = "POST";
  r.pattern = "/v2/{name...}/blobs/uploads/";
  r.max_body = 64u << 20;
  r.on_headers = up_headers;
  r.on_body = up_body;
  r.on_end = up_end;
  r.on_close = up_close;
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  r.pattern = "/small";
  r.max_body = 1024;
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);

  memset(&r, 0, sizeof r);
  r.method = "GET";
  r.pattern = "/slow";
  r.on_end = slow;
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  r.pattern = "/file";
  r.on_end = file_range;
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);
  r.pattern = "/fails";
  r.on_end = fails;
  assert_int_equal(tw_server_route_add(srv, &r, &err), TW_OK);

  tw_server_ws_route w;
  memset(&w, 0, sizeof w);
  w.pattern = "/ws/echo";
  w.on_message = ws_msg;
  w.max_queue = 1 << 16;
  assert_int_equal(tw_server_ws_route_add(srv, &w, &err), TW_OK);
}

/* --- Tests --------------------------------------------------------------- */

static void test_routing(void **state) {
  (void)state;
  fixture fx;
  fx_new(&fx, add_routes);
  reply r;
  fetch(&fx, "GET", "/healthz", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "{\"status\":\"ok\"}\n");

  fetch(&fx, "GET", "/v2/a/b/c/manifests/latest?n=10&last=x", NULL, 0, NULL,
        &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "manifest|a/b/c|latest|10|GET");
  /* A name whose component is "manifests" still resolves by the suffix. */
  fetch(&fx, "DELETE", "/v2/x/manifests/y/manifests/sha256:00", NULL, 0, NULL,
        &r);
  assert_string_equal(r.body, "manifest|x/manifests/y|sha256:00|-|DELETE");
  fetch(&fx, "GET", "/v2/lib/tags/list", NULL, 0, NULL, &r);
  assert_string_equal(r.body, "tags|lib|-|-|GET");
  fetch(&fx, "GET", "/v2/", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  fetch(&fx, "HEAD", "/v2/a/manifests/t", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 0);
  assert_non_null(strstr(r.headers, "content-length: 19"));

  fetch(&fx, "GET", "/v2/a/nothing", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 404);
  assert_non_null(strstr(r.body, "\"code\":\"NOT_FOUND\""));
  fetch(&fx, "PUT", "/v2/a/manifests/t", "x", 1, NULL, &r);
  assert_int_equal(r.status, 405);
  assert_non_null(strstr(r.headers, "Allow: GET, DELETE"));
  fetch(&fx, "GET", "/fails", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 404);
  assert_non_null(strstr(r.body, "{\"error\":{\"code\":\"ENOENT\""));
  fx_free(&fx);
}

static void test_streamed_body(void **state) {
  (void)state;
  fixture fx;
  fx_new(&fx, add_routes);
  size_t n = 9u << 20; /* past the body window: reading pauses, resumes */
  unsigned char *data = malloc(n);
  for (size_t i = 0; i < n; i++)
    data[i] = (unsigned char)(i * 2654435761u >> 13);
  char want[80] = "sha256:";
  tw_sha256_hex(data, n, want + 7);
  atomic_store(&uploads_closed, 0);
  reply *r = malloc(sizeof *r);
  fetch(&fx, "POST", "/v2/org/model/blobs/uploads/", data, n, NULL, r);
  assert_int_equal(r->status, 201);
  assert_string_equal(r->body, want);
  assert_non_null(strstr(r->headers, want));

  /* Too large: 413 before any byte of the body is read. */
  fetch(&fx, "POST", "/small", data, 4096, NULL, r);
  assert_int_equal(r->status, 413);
  assert_non_null(strstr(r->body, "PAYLOAD_TOO_LARGE"));
  /* A route without a body handler takes none. */
  fetch(&fx, "POST", "/v2/", data, 10, NULL, r);
  assert_int_equal(r->status, 405);
  fx_free(&fx);
  assert_int_equal(atomic_load(&uploads_closed), 2);
  free(r);
  free(data);
}

static void test_range_and_keepalive(void **state) {
  (void)state;
  snprintf(range_path, sizeof range_path, "/tmp/tw_server_range_%d",
           (int)getpid());
  FILE *f = fopen(range_path, "wb");
  for (int i = 0; i < 1000; i++)
    fputc('a' + i % 26, f);
  fclose(f);
  fixture fx;
  fx_new(&fx, add_routes);
  CURL *h = curl_easy_init();
  char url[128];
  snprintf(url, sizeof url, "%s/file", fx.base);
  reply r;
  request(h, "GET", url, NULL, 0, "Range: bytes=26-29", &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "abcd");
  assert_non_null(strstr(r.headers, "Content-Range: bytes 26-29/1000"));
  assert_int_equal(r.connects, 1);
  request(h, "GET", url, NULL, 0, "Range: bytes=-3", &r);
  assert_int_equal(r.status, 206);
  assert_string_equal(r.body, "jkl");
  assert_int_equal(r.connects, 0); /* the same connection, kept alive */
  request(h, "GET", url, NULL, 0, "Range: bytes=5000-", &r);
  assert_int_equal(r.status, 416);
  assert_non_null(strstr(r.headers, "Content-Range: bytes */1000"));
  request(h, "GET", url, NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 1000);
  assert_int_equal(r.connects, 0);
  curl_easy_cleanup(h);
  fx_free(&fx);
  unlink(range_path);
}

/* Opens a TCP connection to the server and sends text (no more). */
static int raw_connect(int port, const char *text) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  if (text != NULL)
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  return fd;
}

typedef struct bg {
  const fixture *fx;
  const char *path;
  reply r;
} bg;

static void *bg_fetch(void *arg) {
  bg *b = arg;
  fetch(b->fx, "GET", b->path, NULL, 0, NULL, &b->r);
  return NULL;
}

static void test_slow_clients_and_pool(void **state) {
  (void)state;
  fixture fx;
  fx_new(&fx, add_routes);
  /* Clients stalled in their headers and in their body. */
  int slow1 = raw_connect(fx.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
  int slow2 = raw_connect(fx.port, "POST /v2/a/blobs/uploads/ HTTP/1.1\r\n"
                                   "Host: x\r\nContent-Length: 100000\r\n\r\n"
                                   "partial");
  assert_true(slow1 >= 0 && slow2 >= 0);
  /* A handler busy on the pool. */
  bg *b = calloc(1, sizeof *b);
  b->fx = &fx;
  b->path = "/slow";
  atomic_store(&slow_running, 0);
  pthread_t t;
  pthread_create(&t, NULL, bg_fetch, b);
  while (!atomic_load(&slow_running))
    usleep(1000);
  reply r;
  for (int i = 0; i < 20; i++) {
    fetch(&fx, "GET", "/healthz", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
  }
  /* All twenty were answered while the slow handler still ran. */
  assert_int_equal(atomic_load(&slow_running), 1);
  pthread_join(t, NULL);
  assert_int_equal(b->r.status, 200);
  assert_string_equal(b->r.body, "slow");
  close(slow1);
  close(slow2);
  free(b);
  fx_free(&fx);
}

static void test_graceful_stop(void **state) {
  (void)state;
  fixture fx;
  fx_new(&fx, add_routes);
  bg *b = calloc(1, sizeof *b);
  b->fx = &fx;
  b->path = "/slow";
  atomic_store(&slow_running, 0);
  pthread_t t;
  pthread_create(&t, NULL, bg_fetch, b);
  while (!atomic_load(&slow_running))
    usleep(1000);
  tw_server_stop(fx.srv, 5000);
  usleep(50 * 1000);
  /* No new connection is accepted... */
  int fd = raw_connect(fx.port, NULL);
  if (fd >= 0) {
    char c;
    assert_true(read(fd, &c, 1) <= 0);
    close(fd);
  }
  /* ...but the request in flight finishes. */
  pthread_join(t, NULL);
  assert_int_equal(b->r.status, 200);
  assert_string_equal(b->r.body, "slow");
  assert_non_null(strstr(b->r.headers, "connection: close"));
  assert_int_equal(tw_server_wait(fx.srv), TW_OK);
  tw_server_free(fx.srv);
  tw_ctx_free(fx.ctx);
  free(b);
}

static void test_static_traversal(void **state) {
  (void)state;
  char root[128], outside[160], path[256];
  snprintf(root, sizeof root, "/tmp/tw_server_static_%d", (int)getpid());
  snprintf(outside, sizeof outside, "%s_secret.txt", root);
  mkdir(root, 0755);
  snprintf(path, sizeof path, "%s/sub", root);
  mkdir(path, 0755);
  FILE *f = fopen(outside, "w");
  fputs("TOPSECRET", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/app.js", root);
  f = fopen(path, "w");
  fputs("let x = 1;", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/sub/index.html", root);
  f = fopen(path, "w");
  fputs("<p>sub</p>", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/escape.txt", root);
  assert_int_equal(symlink(outside, path), 0);

  fixture fx;
  tw_ctx_options o;
  tw_ctx_options_init(&o);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ctx_new(&o, &fx.ctx, &err), TW_OK);
  tw_server_options so;
  tw_server_options_init(&so);
  so.listen = "127.0.0.1:0";
  assert_int_equal(tw_server_new(fx.ctx, &so, &fx.srv, &err), TW_OK);
  assert_int_equal(tw_server_static_add(fx.srv, "/ui", root, &err), TW_OK);
  assert_int_equal(tw_server_start(fx.srv, &err), TW_OK);
  fx.port = tw_server_port(fx.srv);
  snprintf(fx.base, sizeof fx.base, "http://127.0.0.1:%d", fx.port);

  reply r;
  fetch(&fx, "GET", "/ui/app.js", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "let x = 1;");
  assert_non_null(strstr(r.headers, "text/javascript"));
  char *etag = strstr(r.headers, "ETag: ");
  assert_non_null(etag);
  char inm[128];
  snprintf(inm, sizeof inm, "If-None-Match: %.*s", (int)strcspn(etag + 6, "\r"),
           etag + 6);
  fetch(&fx, "GET", "/ui/app.js", NULL, 0, inm, &r);
  assert_int_equal(r.status, 304);
  assert_int_equal(r.len, 0);
  fetch(&fx, "GET", "/ui/sub/", NULL, 0, NULL, &r);
  assert_string_equal(r.body, "<p>sub</p>");
  fetch(&fx, "GET", "/ui/sub", NULL, 0, NULL, &r);
  assert_int_equal(r.status, 301);

  static const char *const attacks[] = {
      "/ui/../tw_server_secret.txt",  "/ui/%2e%2e/%2e%2e/etc/passwd",
      "/ui/..%2f..%2fetc%2fpasswd",   "/ui//etc/passwd",
      "/ui/sub/../../../etc/passwd",  "/ui/escape.txt",
      "/ui/%2fetc%2fpasswd",          "/ui/.%2e/escape.txt",
      "/ui/sub/..%5c..%5cescape.txt",
  };
  for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
    fetch(&fx, "GET", attacks[i], NULL, 0, NULL, &r);
    if (!(r.status == 404 || r.status == 400 || r.status == 403))
      fail_msg("%s: status %ld", attacks[i], r.status);
    assert_null(strstr(r.body, "TOPSECRET"));
    assert_null(strstr(r.body, "root:"));
  }
  fx_free(&fx);
  unlink(path);
  unlink(outside);
  snprintf(path, sizeof path, "rm -rf %s", root);
  assert_int_equal(system(path), 0);
}

static void test_metrics_promtool(void **state) {
  (void)state;
  fixture fx;
  fx_new(&fx, add_routes);
  reply *r = malloc(sizeof *r);
  fetch(&fx, "GET", "/healthz", NULL, 0, NULL, r);
  fetch(&fx, "GET", "/nothing", NULL, 0, NULL, r);
  fetch(&fx, "GET", "/metrics", NULL, 0, NULL, r);
  assert_int_equal(r->status, 200);
  assert_non_null(strstr(r->headers, "text/plain; version=0.0.4"));
  assert_non_null(strstr(
      r->body,
      "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} "
      "1"));
  assert_non_null(
      strstr(r->body, "http_requests_total{method=\"GET\",route=\"unmatched\","
                      "status=\"404\"} 1"));
  assert_non_null(strstr(r->body, "http_requests_in_flight 1"));
  assert_non_null(strstr(r->body, "http_request_duration_seconds_bucket{"));
  char file[64];
  snprintf(file, sizeof file, "/tmp/tw_server_metrics_%d", (int)getpid());
  FILE *f = fopen(file, "w");
  fwrite(r->body, 1, r->len, f);
  fclose(f);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s", file);
  assert_int_equal(system(cmd), 0);
  unlink(file);
  free(r);
  fx_free(&fx);
}

/* WebSocket: a hand-made client (RFC 6455) against the echo route. */
static void ws_frame(int fd, const char *text) {
  unsigned char f[256];
  size_t n = strlen(text);
  unsigned char mask[4] = {1, 2, 3, 4};
  f[0] = 0x81;
  f[1] = (unsigned char)(0x80 | n);
  memcpy(f + 2, mask, 4);
  for (size_t i = 0; i < n; i++)
    f[6 + i] = (unsigned char)(text[i] ^ mask[i % 4]);
  assert_true(write(fd, f, 6 + n) == (ssize_t)(6 + n));
}

static void read_n(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, (char *)buf + got, n - got);
    assert_true(k > 0);
    got += (size_t)k;
  }
}

static void test_ws_echo(void **state) {
  (void)state;
  fixture fx;
  fx_new(&fx, add_routes);
  int fd =
      raw_connect(fx.port, "GET /ws/echo HTTP/1.1\r\nHost: x\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n");
  assert_true(fd >= 0);
  char hs[1024];
  size_t got = 0;
  while (got < sizeof hs - 1 && strstr(hs, "\r\n\r\n") == NULL) {
    ssize_t k = read(fd, hs + got, 1);
    assert_true(k == 1);
    got++;
    hs[got] = '\0';
  }
  assert_non_null(strstr(hs, "101"));
  assert_non_null(strstr(hs, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  const char *msgs[] = {"hello", "twin", "a longer message of some bytes"};
  for (int i = 0; i < 3; i++) {
    ws_frame(fd, msgs[i]);
    unsigned char h2[2];
    read_n(fd, h2, 2);
    assert_int_equal(h2[0], 0x81);
    size_t n = h2[1] & 0x7f;
    assert_int_equal(n, strlen(msgs[i]));
    char body[128];
    read_n(fd, body, n);
    body[n] = '\0';
    assert_string_equal(body, msgs[i]);
  }
  /* A path without a WebSocket route is refused. */
  int bad =
      raw_connect(fx.port, "GET /ws/none HTTP/1.1\r\nHost: x\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n");
  char c[64];
  ssize_t k = read(bad, c, sizeof c - 1);
  assert_true(k <= 0 || strncmp(c, "HTTP/1.1 101", 12) != 0);
  close(bad);
  /* The server closes the WebSocket (1001) when it stops. */
  tw_server_stop(fx.srv, 2000);
  unsigned char h2[2];
  read_n(fd, h2, 2);
  assert_int_equal(h2[0], 0x88);
  close(fd);
  assert_int_equal(tw_server_wait(fx.srv), TW_OK);
  tw_server_free(fx.srv);
  tw_ctx_free(fx.ctx);
}

static void test_bad_options(void **state) {
  (void)state;
  tw_ctx *ctx;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ctx_new(NULL, &ctx, &err), TW_OK);
  tw_server_options so;
  tw_server_options_init(&so);
  tw_server *srv = NULL;
  static const char *const bad[] = {"localhost", "1.2.3.4:70000", ":80",
                                    "::1:80",    "[::1]80",       ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    so.listen = bad[i];
    tw_err_init(&err);
    assert_int_equal(tw_server_new(ctx, &so, &srv, &err), TW_EINVAL);
    assert_null(srv);
  }
  /* A port in use. */
  so.listen = "127.0.0.1:0";
  tw_server *a, *b;
  assert_int_equal(tw_server_new(ctx, &so, &a, &err), TW_OK);
  assert_int_equal(tw_server_start(a, &err), TW_OK);
  char spec[64];
  snprintf(spec, sizeof spec, "127.0.0.1:%d", tw_server_port(a));
  so.listen = spec;
  assert_int_equal(tw_server_new(ctx, &so, &b, &err), TW_OK);
  tw_err_init(&err);
  assert_int_equal(tw_server_start(b, &err), TW_EIO);
  assert_non_null(strstr(err.msg, "cannot listen on"));
  tw_server_free(b);
  tw_server_free(a);
  tw_ctx_free(ctx);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      TW_TEST(test_routing),
      TW_TEST(test_streamed_body),
      TW_TEST(test_range_and_keepalive),
      TW_TEST(test_slow_clients_and_pool),
      TW_TEST(test_graceful_stop),
      TW_TEST(test_static_traversal),
      TW_TEST(test_metrics_promtool),
      TW_TEST(test_ws_echo),
      TW_TEST(test_bad_options),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
