/*
 * http.c - the HTTP client of the registry commands, on one libcurl easy
 * handle (see http.h).
 *
 * libcurl allocates through twin/alloc.h (curl_global_init_mem), as the
 * rest of the program does. The handle is reset before each request, so
 * no option of one request leaks into the next, while its connection and
 * DNS caches are kept. The callbacks never let an error escape through
 * libcurl's codes alone: they record why they stopped the transfer in the
 * cli_http, and that message wins over libcurl's "write error".
 */
#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http.h"

#define CONNECT_TIMEOUT_S 10L
#define STALL_TIME_S 30L
#define MAX_REDIRS 5L
#define DEFAULT_MAX_BODY ((size_t)1 << 20)
#define MAX_HEADERS ((size_t)256 << 10)
#define API_MAX_BODY ((size_t)64 << 20)

struct cli_http {
  CURL *curl;
  char errbuf[CURL_ERROR_SIZE];
  /* The request in flight. */
  const cli_http_req *req;
  cli_http_resp *resp;
  size_t sent;     /* bytes of the request body handed to libcurl */
  long cur_status; /* status of the answer being received */
  tw_err cb_err;   /* why a callback stopped the transfer, if it did */
};

void cli_http_req_init(cli_http_req *req, const char *method, const char *url) {
  memset(req, 0, sizeof *req);
  req->method = method;
  req->url = url;
  req->body_fd = -1;
}

void cli_http_resp_init(cli_http_resp *r) {
  r->status = 0;
  tw_buf_init(&r->body);
  tw_buf_init(&r->headers);
}

void cli_http_resp_fini(cli_http_resp *r) {
  tw_buf_fini(&r->body);
  tw_buf_fini(&r->headers);
}

int cli_http_open(cli_http **out, tw_err *err) {
  /* Reference-counted by libcurl: one per open client. */
  if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, tw_alloc, tw_free, tw_realloc,
                           tw_strdup, tw_calloc) != CURLE_OK)
    return tw_err_set(err, TW_EINTERNAL, "cannot initialise libcurl");
  cli_http *h = tw_calloc(1, sizeof *h);
  CURL *c = h != NULL ? curl_easy_init() : NULL;
  if (c == NULL) {
    tw_free(h);
    curl_global_cleanup();
    return tw_err_set(err, TW_ENOMEM, "cannot create an HTTP client");
  }
  h->curl = c;
  *out = h;
  return TW_OK;
}

void cli_http_close(cli_http *h) {
  if (h == NULL)
    return;
  curl_easy_cleanup(h->curl);
  tw_free(h);
  curl_global_cleanup();
}

/* The status of a status line "HTTP/1.1 200 OK" ("HTTP/2 200"), or 0. */
static long parse_status(const char *p, size_t len) {
  size_t i = 5;
  while (i < len && p[i] != ' ')
    i++;
  long st = 0;
  int digits = 0;
  for (i++; i < len && p[i] >= '0' && p[i] <= '9' && digits < 3; i++) {
    st = st * 10 + (p[i] - '0');
    digits++;
  }
  return digits == 3 ? st : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  cli_http *h = ud;
  size_t len = size * n;
  /* Each answer (a 100 Continue, a redirect, the final one) starts with
   * its status line: only the last answer's headers are kept. */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    tw_buf_reset(&h->resp->headers);
    h->cur_status = parse_status(p, len);
    return len;
  }
  if (h->resp->headers.len + len > MAX_HEADERS) {
    tw_err_set(&h->cb_err, TW_ELIMIT, "%s %s: headers larger than %zu bytes",
               h->req->method, h->req->url, MAX_HEADERS);
    return 0;
  }
  if (tw_buf_append(&h->resp->headers, p, len) != TW_OK) {
    tw_err_set(&h->cb_err, TW_ENOMEM, "%s %s: out of memory", h->req->method,
               h->req->url);
    return 0;
  }
  return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  cli_http *h = ud;
  const cli_http_req *req = h->req;
  size_t len = size * n;
  if (req->sink != NULL && h->cur_status >= 200 && h->cur_status < 300) {
    if (req->sink(req->sink_ud, p, len, &h->cb_err) != TW_OK) {
      if (h->cb_err.code == TW_OK)
        tw_err_set(&h->cb_err, TW_EIO, "%s %s: cannot store the body",
                   req->method, req->url);
      return 0;
    }
    return len;
  }
  size_t cap = req->max_body != 0 ? req->max_body : DEFAULT_MAX_BODY;
  if (len > cap - h->resp->body.len) {
    tw_err_set(&h->cb_err, TW_ELIMIT,
               "%s %s: the answer is larger than %zu bytes", req->method,
               req->url, cap);
    return 0;
  }
  if (tw_buf_append(&h->resp->body, p, len) != TW_OK) {
    tw_err_set(&h->cb_err, TW_ENOMEM, "%s %s: out of memory", req->method,
               req->url);
    return 0;
  }
  return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud) {
  cli_http *h = ud;
  const cli_http_req *req = h->req;
  size_t want = size * n, left = req->body_len - h->sent;
  if (want > left)
    want = left;
  if (want == 0)
    return 0;
  if (req->body_fd < 0) {
    memcpy(p, (const char *)req->body + h->sent, want);
    h->sent += want;
    return want;
  }
  ssize_t got;
  do
    got = read(req->body_fd, p, want);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    tw_err_sys(&h->cb_err, errno, "%s %s: cannot read the body", req->method,
               req->url);
    return CURL_READFUNC_ABORT;
  }
  if (got == 0) {
    tw_err_set(&h->cb_err, TW_EIO,
               "%s %s: the body ended after %zu of %zu bytes", req->method,
               req->url, h->sent, req->body_len);
    return CURL_READFUNC_ABORT;
  }
  h->sent += (size_t)got;
  return (size_t)got;
}

/* libcurl rewinds a body it must send again (after a redirect); a body in
 * memory can be, one from a descriptor is sent once. */
static int on_seek(void *ud, curl_off_t offset, int origin) {
  cli_http *h = ud;
  if (h->req->body_fd >= 0 || origin != SEEK_SET || offset < 0 ||
      (uint64_t)offset > h->req->body_len)
    return CURL_SEEKFUNC_CANTSEEK;
  h->sent = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

static int code_of_curl(CURLcode cc) {
  switch (cc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
    return TW_ECONN;
  case CURLE_OPERATION_TIMEDOUT:
    return TW_ETIMEDOUT;
  case CURLE_OUT_OF_MEMORY:
    return TW_ENOMEM;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_TOO_MANY_REDIRECTS:
    return TW_EPROTO;
  default:
    return TW_EIO;
  }
}

int cli_http_do(cli_http *h, const cli_http_req *req, cli_http_resp *resp,
                tw_err *err) {
  CURL *c = h->curl;
  curl_easy_reset(c);
  tw_buf_reset(&resp->body);
  tw_buf_reset(&resp->headers);
  resp->status = 0;
  h->req = req;
  h->resp = resp;
  h->sent = 0;
  h->cur_status = 0;
  h->errbuf[0] = '\0';
  tw_err_init(&h->cb_err);

  bool is_get = strcmp(req->method, "GET") == 0;
  bool is_head = strcmp(req->method, "HEAD") == 0;
  bool is_post = strcmp(req->method, "POST") == 0;
  bool is_put = strcmp(req->method, "PUT") == 0;
  bool upload = is_post || is_put;
  struct curl_slist *hdrs = NULL;
  bool nomem = false;
  for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
    struct curl_slist *l = curl_slist_append(hdrs, req->headers[i]);
    nomem |= l == NULL;
    hdrs = l != NULL ? l : hdrs;
  }
  if (upload) {
    /* Send the body at once: some servers never answer 100 Continue. */
    struct curl_slist *l = curl_slist_append(hdrs, "Expect:");
    nomem |= l == NULL;
    hdrs = l != NULL ? l : hdrs;
  }
  if (nomem) {
    curl_slist_free_all(hdrs);
    return tw_err_set(err, TW_ENOMEM, "%s %s: out of memory", req->method,
                      req->url);
  }

  CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                          \
  do {                                                                         \
    if (cc == CURLE_OK)                                                        \
      cc = curl_easy_setopt(c, opt, val);                                      \
  } while (0)
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_ERRORBUFFER, h->errbuf);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
  SET(CURLOPT_LOW_SPEED_TIME, STALL_TIME_S);
  SET(CURLOPT_USERAGENT, "twin/" TW_VERSION_STRING);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, h);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, h);
  if (hdrs != NULL)
    SET(CURLOPT_HTTPHEADER, hdrs);
  if (req->follow) {
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, MAX_REDIRS);
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  if (upload) {
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, h);
    SET(CURLOPT_SEEKFUNCTION, on_seek);
    SET(CURLOPT_SEEKDATA, h);
  }
  if (is_get) {
    SET(CURLOPT_HTTPGET, 1L);
  } else if (is_head) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (is_post) {
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  } else if (is_put) {
    SET(CURLOPT_UPLOAD, 1L);
    SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
  } else {
    SET(CURLOPT_CUSTOMREQUEST, req->method);
  }
#undef SET
  if (cc == CURLE_OK)
    cc = curl_easy_perform(c);
  curl_slist_free_all(hdrs);
  h->req = NULL;
  h->resp = NULL;

  if (h->cb_err.code != TW_OK)
    return tw_err_copy(err, &h->cb_err);
  if (cc != CURLE_OK) {
    const char *why = h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(cc);
    bool tls =
        cc == CURLE_SSL_CONNECT_ERROR && strncmp(req->url, "https:", 6) == 0;
    return tw_err_set(err, code_of_curl(cc), "%s %s: %s%s", req->method,
                      req->url, why,
                      tls ? " (a plain HTTP server? see --plain-http)" : "");
  }
  long status = 0;
  (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  resp->status = status;
  return TW_OK;
}

bool cli_http_header(const cli_http_resp *r, const char *name, tw_buf *value) {
  size_t nlen = strlen(name);
  const char *p = r->headers.data, *end = p + r->headers.len;
  const char *found = NULL, *found_end = NULL;
  while (p != NULL && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol != NULL ? eol : end;
    if ((size_t)(line_end - p) > nlen && p[nlen] == ':' &&
        strncasecmp(p, name, nlen) == 0) {
      const char *v = p + nlen + 1, *ve = line_end;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      found = v;
      found_end = ve;
    }
    p = eol != NULL ? eol + 1 : end;
  }
  tw_buf_reset(value);
  if (found == NULL)
    return false;
  return tw_buf_append(value, found, (size_t)(found_end - found)) == TW_OK &&
         tw_buf_reserve(value, 0) == TW_OK;
}

/* An error code of either API, or failing that the status, as a Twin
 * code. */
static int code_of(const char *name, long status) {
  if (name != NULL) {
    size_t n = strlen(name);
    if (strcmp(name, "RESOURCE_DOES_NOT_EXIST") == 0 ||
        (n > 8 && strcmp(name + n - 8, "_UNKNOWN") == 0))
      return TW_ENOENT;
    if (strcmp(name, "RESOURCE_ALREADY_EXISTS") == 0)
      return TW_EEXIST;
    if (strcmp(name, "INVALID_PARAMETER_VALUE") == 0)
      return TW_EINVAL;
    if (strcmp(name, "DIGEST_INVALID") == 0)
      return TW_EDIGEST;
    if (strcmp(name, "UNAUTHORIZED") == 0 ||
        strcmp(name, "UNAUTHENTICATED") == 0)
      return TW_EAUTH;
    if (strcmp(name, "DENIED") == 0 || strcmp(name, "PERMISSION_DENIED") == 0)
      return TW_EPERM;
  }
  switch (status) {
  case 400:
  case 422:
    return TW_EINVAL;
  case 401:
    return TW_EAUTH;
  case 403:
    return TW_EPERM;
  case 404:
    return TW_ENOENT;
  case 409:
    return TW_EEXIST;
  case 413:
    return TW_ELIMIT;
  default:
    return TW_EPROTO;
  }
}

/* The first line of a body that is not an error document, printable
 * ASCII only and at most 200 bytes, for the message. */
static void body_excerpt(const tw_buf *body, char *out, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < body->len && n + 1 < size && n < 200; i++) {
    char ch = body->data[i];
    if (ch == '\n' || ch == '\r')
      break;
    out[n++] = ch >= 0x20 && ch < 0x7f ? ch : '?';
  }
  out[n] = '\0';
}

int cli_http_fail(const cli_http_req *req, const cli_http_resp *resp,
                  const char *what, tw_err *err) {
  char whatbuf[768];
  if (what == NULL) {
    (void)snprintf(whatbuf, sizeof whatbuf, "%s %.700s", req->method, req->url);
    what = whatbuf;
  }
  json_t *v = NULL;
  int rc = TW_OK;
  if (resp->body.len > 0 &&
      tw_json_parse(resp->body.data, resp->body.len, NULL, &v, NULL) == TW_OK &&
      json_is_object(v)) {
    json_t *errs = json_object_get(v, "errors");
    json_t *first = json_is_array(errs) ? json_array_get(errs, 0) : NULL;
    json_t *api = json_object_get(v, "error");
    if (json_is_object(first)) {
      /* The OCI distribution spec's body. */
      const char *c = json_string_value(json_object_get(first, "code"));
      const char *m = json_string_value(json_object_get(first, "message"));
      json_t *dj = json_object_get(first, "detail");
      tw_buf d = TW_BUF_INIT;
      if (json_is_string(dj))
        (void)tw_buf_puts(&d, json_string_value(dj));
      else if (dj != NULL && !json_is_null(dj))
        (void)tw_json_dump(dj, 0, &d);
      rc = tw_err_set(err, code_of(c, resp->status), "%s: %s%s%s%s%s", what,
                      c != NULL ? c : "error", m != NULL ? ": " : "",
                      m != NULL ? m : "", d.len > 0 ? ": " : "",
                      d.len > 0 ? d.data : "");
      tw_buf_fini(&d);
    } else if (json_is_object(api)) {
      /* The metadata API's body: its message names what it is about. */
      const char *c = json_string_value(json_object_get(api, "code"));
      const char *m = json_string_value(json_object_get(api, "message"));
      if (m != NULL && m[0] != '\0')
        rc = tw_err_set(err, code_of(c, resp->status), "%s", m);
      else if (c != NULL)
        rc = tw_err_set(err, code_of(c, resp->status), "%s: HTTP %ld %s", what,
                        resp->status, c);
    }
  }
  json_decref(v);
  if (rc != TW_OK)
    return rc;
  char excerpt[256];
  body_excerpt(&resp->body, excerpt, sizeof excerpt);
  return tw_err_set(err, code_of(NULL, resp->status), "%s: HTTP %ld%s%s", what,
                    resp->status, excerpt[0] != '\0' ? ": " : "", excerpt);
}

void cli_http_api_code(const cli_http_resp *resp, char *code, size_t size) {
  if (size == 0)
    return;
  code[0] = '\0';
  json_t *v = NULL;
  if (resp->body.len == 0 ||
      tw_json_parse(resp->body.data, resp->body.len, NULL, &v, NULL) != TW_OK)
    return;
  json_t *api = json_is_object(v) ? json_object_get(v, "error") : NULL;
  const char *c = json_is_object(api)
                      ? json_string_value(json_object_get(api, "code"))
                      : NULL;
  if (c != NULL)
    (void)snprintf(code, size, "%s", c);
  json_decref(v);
}

int cli_http_api(cli_http *h, const char *method, const char *url,
                 const tw_buf *body, json_t **out,
                 char api_code[CLI_HTTP_API_CODE_MAX], tw_err *err) {
  static const char *const with_body[] = {"Content-Type: application/json",
                                          "Accept: application/json", NULL};
  static const char *const without[] = {"Accept: application/json", NULL};
  if (api_code != NULL)
    api_code[0] = '\0';
  cli_http_req req;
  cli_http_req_init(&req, method, url);
  req.headers = body != NULL ? with_body : without;
  if (body != NULL) {
    req.body = body->data;
    req.body_len = body->len;
  }
  req.max_body = API_MAX_BODY;
  cli_http_resp resp;
  cli_http_resp_init(&resp);
  int rc = cli_http_do(h, &req, &resp, err);
  if (rc == TW_OK && (resp.status < 200 || resp.status >= 300)) {
    if (api_code != NULL)
      cli_http_api_code(&resp, api_code, CLI_HTTP_API_CODE_MAX);
    rc = cli_http_fail(&req, &resp, NULL, err);
  } else if (rc == TW_OK && out != NULL) {
    *out = NULL;
    if (resp.body.len > 0) {
      char source[768];
      (void)snprintf(source, sizeof source, "%s %.700s", method, url);
      rc = tw_json_parse(resp.body.data, resp.body.len, source, out, err);
    }
  }
  cli_http_resp_fini(&resp);
  return rc;
}

int cli_http_escape(tw_buf *out, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    int rc;
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
        (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
        *p == '~') {
      rc = tw_buf_putc(out, (char)*p);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = tw_buf_append(out, e, 3);
    }
    if (rc != TW_OK)
      return rc;
  }
  return tw_buf_reserve(out, 0);
}

int cli_http_resolve(const char *base, const char *ref, tw_buf *out,
                     tw_err *err) {
  CURLU *u = curl_url();
  char *s = NULL;
  int rc = TW_OK;
  if (u == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
      curl_url_set(u, CURLUPART_URL, ref, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
    rc = tw_err_set(err, TW_EPROTO, "%.700s: bad Location '%.200s'", base, ref);
  tw_buf_reset(out);
  if (rc == TW_OK && tw_buf_puts(out, s) != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  curl_free(s);
  curl_url_cleanup(u);
  return rc;
}

int cli_http_add_query(tw_buf *url, const char *name, const char *value) {
  const char *sep = "";
  if (url->len == 0 || memchr(url->data, '?', url->len) == NULL)
    sep = "?";
  else if (url->data[url->len - 1] != '?' && url->data[url->len - 1] != '&')
    sep = "&";
  return tw_buf_printf(url, "%s%s=%s", sep, name, value);
}
