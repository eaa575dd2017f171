/*
 * fuzz_ingest_record.c - libFuzzer target for the bodies of ingest
 * recordings (src/ingest/record.c): CDR records and clock events read
 * back from a recording, which is hostile input like any file.
 *
 * Input byte 0 picks the mode. Odd: the rest is decoded as a record body
 * and as a clock body; a record that decodes is encoded again and must
 * decode to the same fields and the same bytes. Even: the rest builds a
 * message (topic, key, headers and data cut from it), which is encoded
 * and must decode to itself. Nothing may read out of bounds or leak; any
 * broken invariant aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_int.h"
#include "twin/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_ingest_record: check failed at line %d: %s\n",     \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static bool same_bytes(const void *a, size_t na, const void *b, size_t nb) {
  return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static void check_same(const tw__ingest_body *x, const tw__ingest_body *y) {
  CHECK(x->event == y->event && x->ingest_ns == y->ingest_ns);
  const tw_ingest_msg *a = &x->msg, *b = &y->msg;
  CHECK(a->source_ns == b->source_ns && a->partition == b->partition &&
        a->offset == b->offset && a->flags == b->flags);
  CHECK(strcmp(a->topic != NULL ? a->topic : "",
               b->topic != NULL ? b->topic : "") == 0);
  CHECK(same_bytes(a->key, a->key_len, b->key, b->key_len));
  CHECK(same_bytes(a->data, a->len, b->data, b->len));
  CHECK(a->nheaders == b->nheaders);
  for (size_t i = 0; i < a->nheaders; i++) {
    CHECK(strcmp(a->headers[i].name, b->headers[i].name) == 0);
    CHECK(same_bytes(a->headers[i].value, a->headers[i].len,
                     b->headers[i].value, b->headers[i].len));
  }
}

static void roundtrip(const tw__ingest_body *in) {
  tw_buf b = TW_BUF_INIT;
  if (tw__ingest_encode_record(&b, in->event, in->ingest_ns, &in->msg) !=
      TW_OK) {
    tw_buf_fini(&b);
    return; /* out of memory or over a limit */
  }
  tw__ingest_body out;
  tw_ingest_header *h = NULL;
  size_t hcap = 0;
  tw_err err;
  tw_err_init(&err);
  CHECK(tw__ingest_decode_record(b.data, b.len, &out, &h, &hcap, &err) ==
        TW_OK);
  check_same(in, &out);
  /* Encoding what was decoded gives the same bytes. */
  tw_buf c = TW_BUF_INIT;
  CHECK(tw__ingest_encode_record(&c, out.event, out.ingest_ns, &out.msg) ==
        TW_OK);
  CHECK(same_bytes(b.data, b.len, c.data, c.len));
  tw_buf_fini(&c);
  tw_buf_fini(&b);
  tw_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  tw_err err;
  if (data[0] & 1) {
    tw__ingest_body body;
    tw_ingest_header *h = NULL;
    size_t hcap = 0;
    tw_err_init(&err);
    int rc = tw__ingest_decode_record(p, n, &body, &h, &hcap, &err);
    CHECK(rc == TW_OK || (rc < 0 && err.msg[0] != '\0'));
    if (rc == TW_OK) {
      CHECK(body.msg.len <= n && body.msg.key_len <= n);
      roundtrip(&body);
    }
    tw_free(h);
    uint64_t ev;
    int64_t now;
    tw_err_init(&err);
    rc = tw__ingest_decode_clock(p, n, &ev, &now, &err);
    CHECK(rc == TW_OK || rc == TW_EPARSE);
    return 0;
  }
  /* Build a message from the bytes: lengths from the first bytes. */
  if (n < 8)
    return 0;
  tw__ingest_body m;
  memset(&m, 0, sizeof m);
  memcpy(&m.event, p, 8);
  m.ingest_ns = (int64_t)(m.event * 3u);
  m.msg.source_ns = (int64_t)m.event ^ 0x5555;
  m.msg.partition = (int32_t)(m.event & 0xff) - 1;
  m.msg.offset = (int64_t)(m.event >> 8) - 1;
  m.msg.flags = (uint32_t)(m.event >> 40);
  p += 8;
  n -= 8;
  size_t cut[4] = {0};
  for (int i = 0; i < 4 && n > 0; i++) {
    cut[i] = *p % (n > 0 ? n : 1);
    p++;
    n--;
  }
  char topic[64];
  size_t tl = cut[0] < sizeof topic - 1 ? cut[0] : sizeof topic - 1;
  if (tl > n)
    tl = n;
  for (size_t i = 0; i < tl; i++)
    topic[i] = p[i] != 0 ? (char)p[i] : 'x';
  topic[tl] = '\0';
  m.msg.topic = topic;
  size_t kl = cut[1] <= n ? cut[1] : n;
  m.msg.key = p;
  m.msg.key_len = kl;
  tw_ingest_header hd[3];
  char names[3][8];
  size_t nh = cut[2] % 4;
  for (size_t i = 0; i < nh; i++) {
    (void)snprintf(names[i], sizeof names[i], "h%zu", i);
    hd[i].name = names[i];
    hd[i].value = n > i ? p + i : NULL;
    hd[i].len = n > i ? n - i : 0;
  }
  m.msg.headers = hd;
  m.msg.nheaders = nh;
  m.msg.data = n ? p : NULL;
  m.msg.len = n;
  roundtrip(&m);
  return 0;
}
