/*
 * fuzz_http_chunked.c - libFuzzer target for the decoder of chunked
 * request bodies (src/server/chunked.c).
 *
 * The first byte of the input picks how the rest is cut into pieces; the
 * rest is decoded whole and then piece by piece. Checks: both give the
 * same outcome, the same body, the same number of bytes consumed and the
 * same error; the body is never longer than the input; a decoder that
 * ended or failed consumes nothing more; no call consumes more than it
 * was given. Nothing may leak. Any broken invariant aborts.
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
      fprintf(stderr, "fuzz_http_chunked: check failed at line %d: %s\n",      \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

typedef struct result {
  int rc;
  unsigned char *body;
  size_t len, used;
  const char *error;
} result;

/* Decodes in[0, n) in pieces whose lengths come from the seed. */
static result decode(const uint8_t *in, size_t n, unsigned seed) {
  result r = {TW__CHUNKED_MORE, malloc(n + 1), 0, 0, NULL};
  CHECK(r.body != NULL);
  tw__chunked c;
  tw__server_chunked_init(&c);
  size_t off = 0;
  unsigned s = seed | 1;
  while (off < n && r.rc == TW__CHUNKED_MORE) {
    size_t piece = n - off;
    if (seed != 0) {
      s = s * 1103515245u + 12345u;
      piece = 1 + (s >> 16) % 17;
      if (piece > n - off)
        piece = n - off;
    }
    size_t outlen = 0, used = 0;
    r.rc = tw__server_chunked_decode(&c, in + off, piece, r.body + r.len,
                                     &outlen, &used);
    CHECK(used <= piece && outlen <= used);
    CHECK(r.rc != TW__CHUNKED_MORE || used == piece);
    r.len += outlen;
    off += used;
  }
  r.used = off;
  r.error = c.error;
  CHECK(c.consumed == off);
  CHECK((r.rc == TW__CHUNKED_BAD) == (c.error != NULL));
  if (r.rc != TW__CHUNKED_MORE) {
    /* Ended or failed: nothing more is consumed. */
    size_t outlen = 1, used = 1;
    int again = tw__server_chunked_decode(&c, in + off, n - off, r.body + r.len,
                                          &outlen, &used);
    CHECK(again == r.rc && used == 0 && outlen == 0);
  }
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  if (size == 0)
    return 0;
  unsigned seed = data[0];
  result whole = decode(data + 1, size - 1, 0);
  result split = decode(data + 1, size - 1, seed);
  CHECK(whole.rc == split.rc);
  CHECK(whole.len <= size - 1);
  if (whole.rc != TW__CHUNKED_BAD) {
    CHECK(whole.len == split.len && whole.used == split.used);
    CHECK(memcmp(whole.body, split.body, whole.len) == 0);
  } else {
    CHECK(strcmp(whole.error, split.error) == 0);
    CHECK(whole.used == split.used);
  }
  free(whole.body);
  free(split.body);
  CHECK(tw_alloc_live() == live);
  return 0;
}
