/*
 * fuzz_http_path.c - libFuzzer target for the server's request-path
 * parsers (src/server/router.c).
 *
 * The input is split at the first newline: the first line is compiled as
 * a route pattern, the rest is taken as a request path, a query fragment,
 * a Range header and a listen address. Checks: a compiled pattern has at
 * most one catch-all and as many parameters as it says; a match's
 * parameters lie inside the path and are non-empty; a catch-all match
 * covers whole segments; the percent-encoding of the path contains only
 * safe characters and decodes back to the path; Range results lie within
 * the resource; a parsed listen port is 0..65535. Nothing may leak. Any
 * broken invariant aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"
#include "twin/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_http_path: check failed at line %d: %s\n",         \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static void check_encode(const char *path, size_t len) {
  tw_buf b = TW_BUF_INIT;
  CHECK(tw__server_path_encode(path, len, &b) == TW_OK);
  size_t j = 0;
  for (size_t i = 0; i < b.len; i++) {
    char c = b.data[i];
    CHECK(c > 0x20 && c < 0x7f);
    char d;
    if (c == '%') {
      CHECK(i + 2 < b.len);
      int h = hexval(b.data[i + 1]), l = hexval(b.data[i + 2]);
      CHECK(h >= 0 && l >= 0);
      d = (char)(h * 16 + l);
      i += 2;
    } else {
      d = c;
    }
    CHECK(j < len && path[j] == d);
    j++;
  }
  CHECK(j == len);
  tw_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  const char *nl = memchr(data, '\n', size);
  size_t plen = nl ? (size_t)((const uint8_t *)nl - data) : size;
  char *pattern = malloc(plen + 1);
  char *rest = malloc(size - plen + 1);
  CHECK(pattern != NULL && rest != NULL);
  memcpy(pattern, data, plen);
  pattern[plen] = '\0';
  size_t rlen = nl ? size - plen - 1 : 0;
  memcpy(rest, nl ? nl + 1 : (const char *)data + size, rlen);
  rest[rlen] = '\0';
  size_t path_len = strlen(rest); /* up to the first NUL, as C strings go */

  tw__pattern p;
  tw_err err;
  tw_err_init(&err);
  int rc = tw__server_pattern_compile(pattern, &p, &err);
  if (rc == TW_OK) {
    size_t rests = 0, params = 0;
    for (size_t i = 0; i < p.nsegs; i++) {
      rests += p.segs[i].rest;
      params += p.segs[i].param;
    }
    CHECK(rests <= 1 && params == p.nparams);
    CHECK((p.rest_at >= 0) == (rests == 1));
  } else {
    CHECK(rc == TW_EINVAL || rc == TW_ENOMEM);
    CHECK(strncmp(err.msg, "route pattern", 13) == 0);
  }

  tw__path *segs = malloc(sizeof *segs);
  CHECK(segs != NULL);
  int src = tw__server_path_split(rest, path_len, segs);
  if (src == TW_OK) {
    CHECK(segs->nsegs >= 1);
    for (size_t i = 0; i < segs->nsegs; i++)
      CHECK(segs->off[i] + segs->len[i] <= path_len &&
            rest[segs->off[i] - 1] == '/');
    if (rc == TW_OK) {
      tw__param params[TW__SERVER_MAX_PARAMS];
      if (tw__server_pattern_match(&p, segs, params)) {
        for (size_t i = 0; i < p.nparams; i++) {
          CHECK(params[i].len > 0);
          CHECK(params[i].off + params[i].len <= path_len);
          CHECK(rest[params[i].off - 1] == '/');
          size_t end = params[i].off + params[i].len;
          CHECK(end == path_len || rest[end] == '/');
        }
      }
    }
    check_encode(rest, path_len);
  } else {
    CHECK(src == TW_EINVAL || src == TW_ELIMIT);
  }
  if (rc == TW_OK)
    tw__server_pattern_fini(&p);

  size_t klen;
  const char *val;
  tw__server_query_split(rest, path_len, &klen, &val);
  CHECK(klen <= path_len && val >= rest && val <= rest + path_len);

  uint64_t first = 0, last = 0;
  uint64_t sizes[3] = {0, 1, 1000};
  for (int i = 0; i < 3; i++) {
    int k = tw__server_range_parse(rest, sizes[i], &first, &last);
    CHECK(k >= -1 && k <= 1);
    if (k == 1)
      CHECK(first <= last && last < sizes[i]);
  }

  char host[64];
  int port = -1;
  tw_err_init(&err);
  if (tw__server_listen_parse(rest, host, sizeof host, &port, &err) == TW_OK)
    CHECK(port >= 0 && port <= 65535 && strlen(host) > 0);
  (void)tw__server_header_ok(pattern, rest);

  free(segs);
  free(pattern);
  free(rest);
  CHECK(tw_alloc_live() == live);
  return 0;
}
