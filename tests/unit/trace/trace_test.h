/*
 * trace_test.h - scaffolding shared by the src/trace unit tests: a scratch
 * directory per test, a deterministic sample written through the public
 * writer (remembering what it wrote), and a reader that collects every
 * message so tests can compare both sides.
 */
#ifndef TW_TRACE_TEST_H
#define TW_TRACE_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tw_test.h"

static char dir[64];

static inline int make_dir(void **state) {
  snprintf(dir, sizeof dir, "/tmp/tw-trace-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  return tw_test_setup(state);
}

static inline int remove_dir(void **state) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      unlinkat(dirfd(d), e->d_name, 0);
  if (d != NULL)
    closedir(d);
  rmdir(dir);
  return tw_test_teardown(state);
}

#define TRACE_TEST(fn) cmocka_unit_test_setup_teardown(fn, make_dir, remove_dir)

static inline void path_in_dir(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static inline bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static inline unsigned count_entries(void) {
  unsigned n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  if (d != NULL)
    closedir(d);
  return n;
}

/* Reads a whole file into a malloc'd buffer (test memory, not tw_alloc). */
static inline uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
  assert_non_null(p);
  assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return p;
}

static inline void spit(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  fclose(f);
}

/* One message as a test remembers it (data in test memory). */
typedef struct rec_msg {
  uint16_t channel;
  uint32_t sequence;
  uint64_t log_time, publish_time;
  uint8_t *data;
  size_t len;
} rec_msg;

typedef struct rec_list {
  rec_msg *m;
  size_t n, cap;
} rec_list;

static inline void rec_add(rec_list *l, const tw_trace_message *m) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->m = realloc(l->m, l->cap * sizeof *l->m);
    assert_non_null(l->m);
  }
  rec_msg *r = &l->m[l->n++];
  r->channel = m->channel_id;
  r->sequence = m->sequence;
  r->log_time = m->log_time;
  r->publish_time = m->publish_time;
  r->len = m->len;
  r->data = malloc(m->len ? m->len : 1);
  assert_non_null(r->data);
  if (m->len)
    memcpy(r->data, m->data, m->len);
}

static inline void rec_free(rec_list *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->m[i].data);
  free(l->m);
  memset(l, 0, sizeof *l);
}

static inline int rec_cmp_time(const void *a, const void *b) {
  const rec_msg *x = a, *y = b;
  return x->log_time < y->log_time ? -1 : x->log_time > y->log_time;
}

/* The sample: channels 1..nch ("/ch/I", message encoding "x-test", one
 * shared schema), n messages with unique log times written out of order,
 * sizes 0..max_len bytes, every 97th message big_len bytes. */
typedef struct sample_spec {
  size_t n;
  unsigned nch;
  size_t max_len;
  size_t big_len;
} sample_spec;

static inline uint64_t sample_time(size_t k) {
  return 5000 + 1000 * (uint64_t)k + 977 * ((k * 31) % 11);
}

static inline void sample_message(const sample_spec *s, size_t k, uint8_t *buf,
                                  tw_trace_message *m) {
  size_t len = s->max_len ? (k * 7919) % (s->max_len + 1) : 0;
  if (s->big_len && k % 97 == 5)
    len = s->big_len;
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)(k * 31 + i * 7);
  m->channel_id = (uint16_t)(1 + k % s->nch);
  m->sequence = (uint32_t)k;
  m->log_time = sample_time(k);
  m->publish_time = m->log_time + 1;
  m->data = buf;
  m->len = len;
}

/* Writes the sample to path; records what it wrote in want (may be NULL).
 * Returns the first error; on error the writer is closed (so nothing is
 * left behind), which the alloc-failure tests check. */
static inline int write_sample(const char *path, const tw_trace_writer_opts *o,
                               const sample_spec *s, rec_list *want) {
  tw_trace_writer *w = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_trace_writer_open(path, o, &w, &err);
  if (rc != TW_OK)
    return rc;
  uint16_t schema = 0;
  rc = tw_trace_writer_add_schema(w, "test.Blob", "jsonschema", "{}", 2,
                                  &schema, &err);
  for (unsigned c = 0; rc == TW_OK && c < s->nch; c++) {
    char topic[32];
    snprintf(topic, sizeof topic, "/ch/%u", c);
    tw_trace_kv kv = {"index", topic + 4};
    uint16_t id = 0;
    rc = tw_trace_writer_add_channel(w, topic, "x-test", schema, &kv, 1, &id,
                                     &err);
    if (rc == TW_OK && id != c + 1)
      rc = TW_EINTERNAL;
  }
  uint8_t *buf =
      malloc(s->big_len > s->max_len ? s->big_len + 1 : s->max_len + 1);
  for (size_t k = 0; rc == TW_OK && k < s->n; k++) {
    tw_trace_message m;
    sample_message(s, k, buf, &m);
    rc = tw_trace_writer_write(w, m.channel_id, m.sequence, m.log_time,
                               m.publish_time, m.data, m.len, &err);
    if (rc == TW_OK && want != NULL)
      rec_add(want, &m);
  }
  free(buf);
  if (rc != TW_OK) {
    tw_trace_writer_abort(w);
    return rc;
  }
  return tw_trace_writer_close(w, &err);
}

/* Reads every message selected by q (NULL: all) with an open reader. */
static inline int read_messages(tw_trace_reader *r, const tw_trace_query *q,
                                rec_list *got, tw_err *err) {
  tw_trace_iter *it = NULL;
  int rc = tw_trace_iter_new(r, q, &it, err);
  if (rc != TW_OK)
    return rc;
  tw_trace_message m;
  while ((rc = tw_trace_iter_next(it, &m, err)) == 1)
    if (got != NULL)
      rec_add(got, &m);
  tw_trace_iter_free(it);
  return rc;
}

/* Opens path (or the bytes mem[0..n) when mem is not NULL) and reads all
 * messages. */
static inline int read_all(const char *path, const uint8_t *mem, size_t n,
                           const tw_trace_reader_opts *o, rec_list *got,
                           tw_err *err) {
  tw_trace_reader *r = NULL;
  int rc = mem ? tw_trace_reader_open_mem(mem, n, "mem.mcap", o, &r, err)
               : tw_trace_reader_open(path, o, &r, err);
  if (rc != TW_OK)
    return rc;
  rc = read_messages(r, NULL, got, err);
  tw_trace_reader_close(r);
  return rc;
}

static inline void assert_same_messages(const rec_list *a, const rec_list *b) {
  assert_int_equal(a->n, b->n);
  for (size_t i = 0; i < a->n; i++) {
    const rec_msg *x = &a->m[i], *y = &b->m[i];
    assert_int_equal(x->channel, y->channel);
    assert_int_equal(x->sequence, y->sequence);
    assert_int_equal(x->log_time, y->log_time);
    assert_int_equal(x->publish_time, y->publish_time);
    assert_int_equal(x->len, y->len);
    if (x->len)
      assert_memory_equal(x->data, y->data, x->len);
  }
}

#endif /* TW_TRACE_TEST_H */
