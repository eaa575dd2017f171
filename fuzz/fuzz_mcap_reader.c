/*
 * fuzz_mcap_reader.c - libFuzzer target for the MCAP reader.
 *
 * Every input is opened in memory under small limits. When it opens:
 * verify runs; all messages are iterated and must come in log-time order
 * on channels the file defines; each of the first channels is iterated
 * alone and the counts must add up to the whole (when every iteration
 * succeeds); a time window must select a subsequence; every attachment is
 * read; port samples are decoded. Failures must carry a code and a
 * message. Small inputs are read once more with one allocation failing:
 * the outcome is the normal one or TW_ENOMEM. Each input is also read
 * with its summary CRC cleared (see below). Any broken invariant, and any
 * tw_alloc memory still live at the end, aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_mcap_reader: check failed at line %d: %s\n",       \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_err(int rc, const tw_err *err) {
  CHECK(rc < 0);
  CHECK(err->code == rc);
  CHECK(err->msg[0] != '\0');
}

static tw_trace_reader_opts limits(void) {
  tw_trace_reader_opts o;
  tw_trace_reader_opts_init(&o);
  o.max_record = (uint64_t)4 << 20;
  o.max_chunk = (uint64_t)4 << 20;
  o.max_loaded = (uint64_t)16 << 20;
  return o;
}

/* Iterates q; returns the number of messages, or -1 after an error (which
 * must be reported properly). Checks order and channels. */
static long iterate(tw_trace_reader *r, const tw_trace_query *q,
                    uint64_t *first, uint64_t *last) {
  tw_trace_iter *it = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_trace_iter_new(r, q, &it, &err);
  if (rc != TW_OK) {
    check_err(rc, &err);
    return -1;
  }
  long n = 0;
  uint64_t prev = 0;
  tw_trace_message m;
  while ((rc = tw_trace_iter_next(it, &m, &err)) == 1) {
    CHECK(n == 0 || m.log_time >= prev);
    prev = m.log_time;
    if (n == 0 && first != NULL)
      *first = m.log_time;
    if (last != NULL)
      *last = m.log_time;
    const tw_trace_channel *c = tw_trace_reader_channel_get(r, m.channel_id);
    CHECK(c != NULL);
    CHECK(m.log_time >= q->start_time && m.log_time <= q->end_time);
    if (q->n_channels == 1)
      CHECK(m.channel_id == q->channels[0]);
    if (m.len > 0)
      CHECK(m.data[0] == m.data[0] && m.data[m.len - 1] == m.data[m.len - 1]);
    double t, v[8];
    size_t nv;
    tw_err derr;
    tw_err_init(&derr);
    int drc = tw_trace_port_decode(c, m.data, m.len, &t, v, 8, &nv, &derr);
    if (drc != TW_OK)
      check_err(drc, &derr);
    n++;
  }
  if (rc != 0) {
    check_err(rc, &err);
    /* The error sticks. */
    tw_err again;
    tw_err_init(&again);
    CHECK(tw_trace_iter_next(it, &m, &again) == rc);
    CHECK(strcmp(again.msg, err.msg) == 0);
    n = -1;
  }
  tw_trace_iter_free(it);
  return n;
}

static void exercise(tw_trace_reader *r) {
  const tw_trace_info *info = tw_trace_reader_info(r);
  CHECK(info->profile != NULL && info->library != NULL);
  size_t ns = tw_trace_reader_schema_count(r);
  for (size_t i = 0; i < ns; i++) {
    const tw_trace_schema *s = tw_trace_reader_schema_at(r, i);
    CHECK(s->id != 0 && tw_trace_reader_schema_get(r, s->id) == s);
    CHECK(i == 0 || tw_trace_reader_schema_at(r, i - 1)->id < s->id);
  }
  size_t nc = tw_trace_reader_channel_count(r);
  for (size_t i = 0; i < nc; i++) {
    const tw_trace_channel *c = tw_trace_reader_channel_at(r, i);
    CHECK(tw_trace_reader_channel_get(r, c->id) == c);
    CHECK(i == 0 || tw_trace_reader_channel_at(r, i - 1)->id < c->id);
    for (size_t k = 0; k < c->n_metadata; k++)
      CHECK(c->metadata[k].key != NULL && c->metadata[k].value != NULL);
    CHECK(tw_trace_reader_channel_find(r, c->topic) != NULL);
  }
  tw_err err;
  tw_err_init(&err);
  int rc = tw_trace_reader_verify(r, &err);
  if (rc != TW_OK)
    check_err(rc, &err);

  tw_trace_query all = TW_TRACE_QUERY_ALL;
  uint64_t first = 0, last = 0;
  long total = iterate(r, &all, &first, &last);
  long sum = 0;
  bool ok = total >= 0;
  for (size_t i = 0; i < nc && i < 4; i++) {
    uint16_t id = tw_trace_reader_channel_at(r, i)->id;
    tw_trace_query one = {&id, 1, 0, UINT64_MAX};
    long n = iterate(r, &one, NULL, NULL);
    ok = ok && n >= 0;
    sum += n;
  }
  if (ok && nc <= 4)
    CHECK(sum == total);
  if (total > 0) {
    tw_trace_query window = {NULL, 0, first + (last - first) / 3,
                             last - (last - first) / 3};
    long n = iterate(r, &window, NULL, NULL);
    CHECK(n <= total);
  }
  for (size_t i = 0; i < tw_trace_reader_metadata_count(r); i++)
    CHECK(tw_trace_reader_metadata_at(r, i)->name != NULL);
  for (size_t i = 0; i < tw_trace_reader_attachment_count(r) && i < 8; i++) {
    tw_buf b = TW_BUF_INIT;
    tw_buf_puts(&b, "x");
    tw_err_init(&err);
    rc = tw_trace_reader_attachment_read(r, i, &b, &err);
    if (rc == TW_OK) {
      CHECK(b.len == 1 + tw_trace_reader_attachment_at(r, i)->size);
    } else {
      check_err(rc, &err);
      CHECK(b.len == 1);
    }
    tw_buf_fini(&b);
  }
}

/* Opens and reads everything with allocation n failing. */
static void with_failure(const uint8_t *data, size_t size, unsigned long n,
                         int normal) {
  long live = tw_alloc_live();
  tw_trace_reader_opts o = limits();
  tw_trace_reader *r = NULL;
  tw_err err;
  tw_err_init(&err);
  tw_alloc_fail_at(n, false);
  int rc = tw_trace_reader_open_mem(data, size, "fuzz", &o, &r, &err);
  bool fired = tw_alloc_failure_fired();
  if (rc == TW_OK) {
    CHECK(normal == TW_OK);
    tw_trace_query all = TW_TRACE_QUERY_ALL;
    tw_trace_iter *it = NULL;
    if (tw_trace_iter_new(r, &all, &it, NULL) == TW_OK) {
      tw_trace_message m;
      while (tw_trace_iter_next(it, &m, NULL) == 1)
        ;
      tw_trace_iter_free(it);
    }
    tw_trace_reader_close(r);
  } else if (!(fired && rc == TW_ENOMEM)) {
    CHECK(rc == normal);
  }
  tw_alloc_fail_at(0, false);
  CHECK(tw_alloc_live() == live);
}

static void run_one(const uint8_t *data, size_t size) {
  tw_trace_reader_opts o = limits();
  tw_trace_reader *r = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_trace_reader_open_mem(data, size, "fuzz", &o, &r, &err);
  if (rc == TW_OK) {
    exercise(r);
    tw_trace_reader_close(r);
  } else {
    check_err(rc, &err);
    CHECK(r == NULL);
    CHECK(strncmp(err.msg, "fuzz", 4) == 0);
  }
  if (size > 0 && size <= 8192)
    with_failure(data, size, 1 + data[size - 1] % 24u, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  run_one(data, size);
  /* The summary CRC guards every byte of the summary, so nearly every
   * mutation there dies at that check: read a copy whose footer says the
   * CRC is not available too, so mutations reach the summary's parser. */
  const size_t crc_at = 12; /* from the end: CRC, then the 8-byte magic */
  if (size >= 64 && memcmp(data + size - crc_at, "\0\0\0\0", 4) != 0) {
    uint8_t *copy = malloc(size);
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    memset(copy + size - crc_at, 0, 4);
    run_one(copy, size);
    free(copy);
  }
  CHECK(tw_alloc_live() == live);
  return 0;
}
