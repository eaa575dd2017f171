/*
 * http.h - the HTTP client of the commands that talk to a server (`twin
 * push`, `twin pull`, `twin models`), on libcurl.
 *
 * A command opens one cli_http (one libcurl easy handle, so the requests
 * of a command reuse one connection) and sends its requests through it
 * one at a time. Every request has the same limits: 10 s to connect, and
 * a transfer that moves less than one byte a second for 30 s is aborted,
 * so a dead or stalled server is an error, never a hang. Request bodies
 * always carry a Content-Length (never chunked) and no
 * "Expect: 100-continue".
 *
 * A response is any HTTP answer, whatever its status: cli_http_do fails
 * only when no answer came (the server cannot be reached, the connection
 * broke, a limit was hit). Its body is kept in memory up to a cap, or, for
 * a 2xx answer, handed to a sink as it arrives (a blob streamed to a
 * file); the headers of the final answer are kept. cli_http_fail turns an
 * unexpected answer into an error that carries the server's own message:
 * the OCI distribution spec's {"errors":[...]} and the metadata API's
 * {"error":{"code","message"}} bodies are both understood.
 *
 * Thread safety: a cli_http belongs to one thread.
 */
#ifndef TWIN_CLI_HTTP_H
#define TWIN_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "twin/twin.h"

typedef struct cli_http cli_http;

/* Receives n bytes of a 2xx response body. Returns TW_OK, or a failure
 * recorded in err, which aborts the transfer. */
typedef int (*cli_http_sink)(void *ud, const void *data, size_t n, tw_err *err);

typedef struct cli_http_req {
  const char *method;         /* "GET", "HEAD", "POST", "PUT", "DELETE" */
  const char *url;            /* absolute http:// or https:// URL */
  const char *const *headers; /* "Name: value" lines, NULL-terminated;
                                 may be NULL */
  const void *body;           /* POST/PUT body from memory, or */
  int body_fd;                /* from this descriptor (-1: none), read
                                 from its current offset */
  size_t body_len;            /* bytes of either */
  size_t max_body;            /* cap on a body kept in memory (0: 1 MiB);
                                 more is TW_ELIMIT */
  cli_http_sink sink;         /* may be NULL: see above */
  void *sink_ud;
  bool follow; /* follow redirects (blob downloads, which registries
                  often redirect to a storage service) */
} cli_http_req;

/* A GET of url with no body and no headers. */
void cli_http_req_init(cli_http_req *req, const char *method, const char *url);

typedef struct cli_http_resp {
  long status;    /* 0 until an answer came */
  tw_buf body;    /* the body unless a sink took it */
  tw_buf headers; /* the final answer's header lines, "Name: value\r\n" */
} cli_http_resp;

void cli_http_resp_init(cli_http_resp *r);
void cli_http_resp_fini(cli_http_resp *r);

/* Opens a client (initialising libcurl on first use). */
int cli_http_open(cli_http **out, tw_err *err);
/* NULL is a no-op. */
void cli_http_close(cli_http *h);

/* Sends req and fills resp (reset first). TW_OK when an answer came, with
 * any status. Failures name the method and the URL: TW_ECONN (cannot
 * connect, TLS), TW_ETIMEDOUT (connect or stall timeout), TW_EIO (the
 * connection broke), TW_ELIMIT (a body over max_body), or the sink's. */
int cli_http_do(cli_http *h, const cli_http_req *req, cli_http_resp *resp,
                tw_err *err);

/* Copies the value of the last header called name (any case), without
 * surrounding blanks, into value (reset first). False when there is none
 * (or memory ran out). */
bool cli_http_header(const cli_http_resp *r, const char *name, tw_buf *value);

/* Records the failure an unexpected answer means and returns its code.
 * what names the request for the message ("push of models/osc:v1"); NULL
 * means "METHOD URL". An OCI error body gives "WHAT: CODE: message:
 * detail", a metadata API one the server's message alone (it names what
 * it is about), anything else "WHAT: HTTP STATUS" and the start of the
 * body. The code follows the error code or, failing that, the status:
 * ENOENT (404, RESOURCE_DOES_NOT_EXIST, *_UNKNOWN), EEXIST (409,
 * RESOURCE_ALREADY_EXISTS), EINVAL (400, INVALID_PARAMETER_VALUE), EAUTH
 * (401), EPERM (403), EDIGEST (DIGEST_INVALID), ELIMIT (413), EPROTO. */
int cli_http_fail(const cli_http_req *req, const cli_http_resp *resp,
                  const char *what, tw_err *err);

/* The "code" of a metadata API error body ("RESOURCE_DOES_NOT_EXIST"),
 * copied into code[0..size); "" when the body is not one. */
void cli_http_api_code(const cli_http_resp *resp, char *code, size_t size);

/* A request to the metadata REST API (/api/v1/...): body (may be NULL)
 * is sent as application/json; a 2xx answer with a body is parsed into
 * *out (a new reference; out may be NULL, and a 204 gives NULL). Any other
 * answer fails as cli_http_fail says, and its API error code goes to
 * api_code (may be NULL; "" when there is none). */
#define CLI_HTTP_API_CODE_MAX 64
int cli_http_api(cli_http *h, const char *method, const char *url,
                 const tw_buf *body, json_t **out,
                 char api_code[CLI_HTTP_API_CODE_MAX], tw_err *err);

/* Appends s percent-encoded for one path segment or query value: every
 * byte but the unreserved A-Z a-z 0-9 - . _ ~ becomes %XX. */
int cli_http_escape(tw_buf *out, const char *s);

/* Resolves ref (a Location header: absolute, absolute-path or relative)
 * against the URL base, into out (reset first). */
int cli_http_resolve(const char *base, const char *ref, tw_buf *out,
                     tw_err *err);

/* Appends "name=value" to the query of url (with '?' or '&'); value is
 * taken as it is, so it must need no encoding. */
int cli_http_add_query(tw_buf *url, const char *name, const char *value);

#endif /* TWIN_CLI_HTTP_H */
