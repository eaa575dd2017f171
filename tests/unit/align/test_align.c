/*
 * test_align.c - the aligner: each grid policy on hand-checked cases,
 * approximate-time sets worked through the ROS ApproximateTime algorithm,
 * late records routed and counted, an idle stream not holding the
 * watermark back, per-split watermarks (a partitioned backlog aligned,
 * idle and revoked splits), bounded buffers, configuration errors that name the
 * stream, the same output whatever the arrival order within the lateness
 * bound (a property over random permutations), a clock that jumps losing
 * and duplicating nothing, and allocation failures leaving nothing behind.
 */
#include "tw_test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out_item {
  int64_t t;
  uint32_t stream;
  int status;
  uint64_t id, next_id, set;
  double v[2];
} out_item;

typedef struct capture {
  out_item *items;
  size_t n, cap;
  uint64_t late_ids[64];
  size_t nlate;
  size_t released, unmatched, freed;
  unsigned char seen[4096]; /* release count per id (< 4096) */
} capture;

static void on_emit(void *ud, const tw_align_item *it) {
  capture *c = ud;
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 64;
    c->items = realloc(c->items, c->cap * sizeof *c->items);
    assert_non_null(c->items);
  }
  out_item *o = &c->items[c->n++];
  memset(o, 0, sizeof *o);
  o->t = it->time_ns;
  o->stream = it->stream;
  o->status = (int)it->status;
  o->id = it->record != NULL ? it->record->id : 0;
  o->next_id = it->next != NULL ? it->next->id : 0;
  o->set = it->set;
  for (size_t k = 0; k < it->dims && k < 2; k++)
    o->v[k] = it->values[k];
}

static void on_late(void *ud, const tw_align_record *r) {
  capture *c = ud;
  if (c->nlate < 64)
    c->late_ids[c->nlate] = r->id;
  c->nlate++;
}

static void on_release(void *ud, const tw_align_record *r,
                       tw_align_release_reason why) {
  capture *c = ud;
  c->released++;
  if (why == TW_ALIGN_RELEASE_UNMATCHED)
    c->unmatched++;
  if (why == TW_ALIGN_RELEASE_FREED)
    c->freed++;
  if (r->id < sizeof c->seen)
    c->seen[r->id]++;
}

static tw_align *make(capture *c, int64_t dt, int64_t idle) {
  memset(c, 0, sizeof *c);
  tw_align_opts o = {.grid_start_ns = 0,
                     .grid_dt_ns = dt,
                     .idle_timeout_ns = idle,
                     .emit = on_emit,
                     .late = on_late,
                     .release = on_release,
                     .ud = c};
  tw_align *a = NULL;
  assert_int_equal(tw_align_new(&o, &a, NULL), TW_OK);
  return a;
}

static uint32_t stream(tw_align *a, tw_align_stream_opts o) {
  uint32_t s = 99;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_align_stream_add(a, &o, &s, &err);
  if (rc != TW_OK)
    fail_msg("stream_add: %s", tw_err_msg(&err));
  return s;
}

static void push_v(tw_align *a, uint32_t s, int64_t t, uint64_t id,
                   const double *v, int64_t now) {
  tw_align_record r = {
      .stream = s, .time_ns = t, .seq = id, .id = id, .values = v};
  tw_err err;
  tw_err_init(&err);
  int rc = tw_align_push(a, &r, now, NULL, &err);
  if (rc != TW_OK)
    fail_msg("push %llu: %s", (unsigned long long)id, tw_err_msg(&err));
}

static void push(tw_align *a, uint32_t s, int64_t t, uint64_t id) {
  push_v(a, s, t, id, NULL, 0);
}

static void finish(tw_align *a, capture *c) {
  tw_align_free(a);
  free(c->items);
  c->items = NULL;
}

static const out_item *at(const capture *c, int64_t t, uint32_t s) {
  for (size_t i = 0; i < c->n; i++)
    if (c->items[i].t == t && c->items[i].stream == s)
      return &c->items[i];
  fail_msg("no item at t=%lld stream %u", (long long)t, (unsigned)s);
  return NULL;
}

static void want(const capture *c, int64_t t, uint32_t s, int status,
                 uint64_t id) {
  const out_item *o = at(c, t, s);
  if (o->status != status || o->id != id)
    fail_msg("t=%lld stream %u: status %d id %llu, want %d %llu", (long long)t,
             (unsigned)s, o->status, (unsigned long long)o->id, status,
             (unsigned long long)id);
}

/* Output order is (time, stream, sequence). */
static void check_order(const capture *c) {
  for (size_t i = 1; i < c->n; i++) {
    const out_item *p = &c->items[i - 1], *q = &c->items[i];
    bool ok = p->t < q->t ||
              (p->t == q->t && (p->stream < q->stream ||
                                (p->stream == q->stream && p->id < q->id)));
    if (!ok)
      fail_msg("item %zu out of order", i);
  }
}

/* --- Grid policies -------------------------------------------------------- */

static void test_policies(void **state) {
  (void)state;
  capture c;
  tw_align *a = make(&c, 10, 0);
  uint32_t s0 = stream(
      a, (tw_align_stream_opts){.name = "cam", .policy = TW_ALIGN_EXACT});
  uint32_t s1 = stream(a, (tw_align_stream_opts){.name = "imu",
                                                 .policy = TW_ALIGN_NEAREST,
                                                 .tolerance_ns = 4});
  uint32_t s2 = stream(a, (tw_align_stream_opts){.name = "gps",
                                                 .policy = TW_ALIGN_HOLD_LAST,
                                                 .max_age_ns = 15});
  uint32_t s3 = stream(a, (tw_align_stream_opts){.name = "pos",
                                                 .policy = TW_ALIGN_LINEAR,
                                                 .dims = 2,
                                                 .tolerance_ns = 30});
  push(a, s0, 0, 1);
  push(a, s0, 10, 2);
  push(a, s0, 25, 3);
  push(a, s1, 3, 11);
  push(a, s1, 8, 12);
  push(a, s1, 16, 13);
  push(a, s1, 24, 14);
  push(a, s1, 26, 15);
  push(a, s2, 5, 21);
  push(a, s2, 12, 22);
  double v0[2] = {0, 10}, v1[2] = {10, 0}, v2[2] = {40, 40}, v9[2] = {0, 0};
  push_v(a, s3, 0, 31, v0, 0);
  push_v(a, s3, 10, 32, v1, 0);
  push_v(a, s3, 40, 33, v2, 0);
  assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  assert_int_equal(c.n, 0); /* the watermark is held by nothing yet */
  push(a, s0, 100, 91);
  push(a, s1, 100, 92);
  push(a, s2, 100, 93);
  push_v(a, s3, 100, 94, v9, 0);
  assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), 99);
  /* Ticks up to 99 - 30 (the LINEAR window): 0..60, four items each. */
  assert_int_equal(c.n, 7 * 4);
  assert_int_equal(tw_align_next_tick(a), 70);
  check_order(&c);
  want(&c, 0, s0, TW_ALIGN_RECORD, 1);
  want(&c, 10, s0, TW_ALIGN_RECORD, 2);
  want(&c, 20, s0, TW_ALIGN_MISSING, 0);
  want(&c, 30, s0, TW_ALIGN_MISSING, 0);
  want(&c, 0, s1, TW_ALIGN_RECORD, 11);
  want(&c, 10, s1, TW_ALIGN_RECORD, 12);
  want(&c, 20, s1, TW_ALIGN_RECORD, 13); /* 16 and 24 tie: the earlier */
  want(&c, 30, s1, TW_ALIGN_RECORD, 15);
  want(&c, 40, s1, TW_ALIGN_MISSING, 0);
  want(&c, 0, s2, TW_ALIGN_MISSING, 0);
  want(&c, 10, s2, TW_ALIGN_RECORD, 21);
  want(&c, 20, s2, TW_ALIGN_RECORD, 22);
  want(&c, 30, s2, TW_ALIGN_MISSING, 0); /* 18 old, max age 15 */
  want(&c, 0, s3, TW_ALIGN_RECORD, 31);
  want(&c, 10, s3, TW_ALIGN_RECORD, 32);
  want(&c, 20, s3, TW_ALIGN_INTERPOLATED, 32);
  const out_item *o = at(&c, 20, s3);
  assert_int_equal(o->next_id, 33);
  assert_true(o->v[0] == 20.0 && o->v[1] == 0.0 + 40.0 * (1.0 / 3.0));
  o = at(&c, 30, s3);
  assert_true(o->v[0] == 10.0 + 30.0 * (2.0 / 3.0));
  want(&c, 40, s3, TW_ALIGN_RECORD, 33);
  want(&c, 50, s3, TW_ALIGN_MISSING, 0); /* 40 -> 100 is wider than 30 */
  /* Memory behind the watermark is released. */
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, s1, &st), TW_OK);
  assert_int_equal(st.buffered, 1);
  assert_int_equal(st.released, 5);
  assert_int_equal(st.emitted, 4);
  finish(a, &c);
  assert_int_equal(c.freed, 6);
}

/* --- Late records, idleness, bounds -------------------------------------- */

static void test_late_records(void **state) {
  (void)state;
  capture c;
  tw_align *a = make(&c, 10, 0);
  uint32_t s = stream(a, (tw_align_stream_opts){.name = "lidar",
                                                .policy = TW_ALIGN_EXACT,
                                                .max_out_of_orderness_ns = 5});
  push(a, s, 100, 1);
  assert_int_equal(tw_align_watermark(a), 94);
  bool late = false;
  tw_align_record r = {.stream = s, .time_ns = 94, .seq = 2, .id = 2};
  assert_int_equal(tw_align_push(a, &r, 0, &late, NULL), TW_OK);
  assert_true(late);
  r = (tw_align_record){.stream = s, .time_ns = 95, .seq = 3, .id = 3};
  assert_int_equal(tw_align_push(a, &r, 0, &late, NULL), TW_OK);
  assert_false(late);
  assert_int_equal(c.nlate, 1);
  assert_int_equal(c.late_ids[0], 2);
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, s, &st), TW_OK);
  assert_int_equal(st.pushed, 3);
  assert_int_equal(st.late, 1);
  assert_int_equal(st.accepted, 2);
  finish(a, &c);
}

static void test_idle_stream(void **state) {
  (void)state;
  capture c;
  tw_align *a = make(&c, 10, 1000);
  uint32_t s0 = stream(
      a, (tw_align_stream_opts){.name = "fast", .policy = TW_ALIGN_EXACT});
  uint32_t s1 = stream(
      a, (tw_align_stream_opts){.name = "slow", .policy = TW_ALIGN_EXACT});
  for (int k = 0; k < 50; k++)
    push(a, s0, 10 * k, (uint64_t)k + 1);
  assert_int_equal(tw_align_advance(a, 999, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), INT64_MIN); /* waiting for slow */
  assert_int_equal(c.n, 0);
  /* At 1000 slow has been silent for the timeout: it no longer counts. */
  push_v(a, s0, 500, 51, NULL, 1000);
  assert_int_equal(tw_align_advance(a, 1000, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), 499);
  assert_int_equal(c.n, 2 * 50);
  want(&c, 490, s0, TW_ALIGN_RECORD, 50);
  want(&c, 490, s1, TW_ALIGN_MISSING, 0);
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, s1, &st), TW_OK);
  assert_true(st.idle);
  /* The idle stream comes back behind the watermark: late, not lost. */
  bool late = false;
  tw_align_record r = {.stream = s1, .time_ns = 200, .seq = 1, .id = 100};
  assert_int_equal(tw_align_push(a, &r, 2000, &late, NULL), TW_OK);
  assert_true(late);
  /* It is active again and holds the watermark at its own. */
  push_v(a, s1, 600, 101, NULL, 2000);
  push_v(a, s0, 700, 102, NULL, 2000);
  assert_int_equal(tw_align_watermark(a), 599);
  finish(a, &c);
}

/* Per-split watermarks: three partitions of one stream read one after the
 * other (a Kafka backlog). With the splits declared first, nothing is
 * late and every tick gets its record; the same arrival order without
 * splits makes the later partitions late. An assigned split that never
 * delivers holds the watermark until its idle timeout, or until it is
 * revoked; a split that only delivers late records still moves on. */
static void push_split(tw_align *a, uint32_t s, uint32_t split, int64_t t,
                       uint64_t id, int64_t now, bool *late) {
  tw_align_record r = {
      .stream = s, .time_ns = t, .seq = id, .id = id, .split = split};
  tw_err err;
  tw_err_init(&err);
  int rc = tw_align_push(a, &r, now, late, &err);
  if (rc != TW_OK)
    fail_msg("push %llu: %s", (unsigned long long)id, tw_err_msg(&err));
}

static size_t backlog(bool declare, size_t *late_out) {
  capture c;
  tw_align *a = make(&c, 10, 0);
  uint32_t s = stream(a, (tw_align_stream_opts){.name = "kafka",
                                                .policy = TW_ALIGN_EXACT,
                                                .capacity = 4096});
  for (uint32_t p = 0; declare && p < 3; p++)
    assert_int_equal(tw_align_split_set(a, s, p, true, 0, NULL), TW_OK);
  /* Partition p holds the ticks t = 10 * (3 k + p); each is read whole,
   * with an advance after every batch of 20. */
  uint64_t id = 1;
  for (uint32_t p = 0; p < 3; p++)
    for (int k = 0; k < 100; k++) {
      push_split(a, s, p, 10 * (3 * k + (int)p), id++, 1, NULL);
      if (k % 20 == 19)
        assert_int_equal(tw_align_advance(a, 1, NULL), TW_OK);
    }
  assert_int_equal(tw_align_finish(a, NULL), TW_OK);
  check_order(&c);
  size_t records = 0;
  for (size_t i = 0; i < c.n; i++)
    records += c.items[i].status == TW_ALIGN_RECORD;
  *late_out = c.nlate;
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, s, &st), TW_OK);
  assert_int_equal(st.splits, 3);
  assert_int_equal(st.late, c.nlate);
  assert_int_equal(st.accepted + st.late, 300);
  finish(a, &c);
  return records;
}

static void test_splits(void **state) {
  (void)state;
  size_t late = 0;
  assert_int_equal(backlog(true, &late), 300);
  assert_int_equal(late, 0);
  size_t got = backlog(false, &late);
  assert_int_equal(got, 300 - late);
  assert_true(late >= 190); /* most of partitions 1 and 2 */

  /* An assigned split that never delivers: held until its idle timeout. */
  capture c;
  memset(&c, 0, sizeof c);
  tw_align_opts o = {.grid_dt_ns = 10,
                     .split_idle_timeout_ns = 1000,
                     .emit = on_emit,
                     .late = on_late,
                     .release = on_release,
                     .ud = &c};
  tw_align *a = NULL;
  assert_int_equal(tw_align_new(&o, &a, NULL), TW_OK);
  uint32_t s =
      stream(a, (tw_align_stream_opts){.name = "k", .policy = TW_ALIGN_EXACT});
  /* Assigned at 0, the stream's first record at 500: split 1's wait
   * counts from 500, so it holds until 1500. */
  assert_int_equal(tw_align_split_set(a, s, 0, true, 0, NULL), TW_OK);
  assert_int_equal(tw_align_split_set(a, s, 1, true, 0, NULL), TW_OK);
  for (int k = 0; k < 10; k++)
    push_split(a, s, 0, 10 * k, (uint64_t)k + 1, 500, NULL);
  push_split(a, s, 0, 95, 11, 1400, NULL);
  assert_int_equal(tw_align_advance(a, 1499, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), INT64_MIN);
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, s, &st), TW_OK);
  assert_int_equal(st.splits, 2);
  assert_int_equal(st.splits_active, 2);
  assert_int_equal(tw_align_advance(a, 1500, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), 94); /* split 1 idle */
  assert_int_equal(tw_align_stream_stats_get(a, s, &st), TW_OK);
  assert_int_equal(st.splits_active, 1);
  /* Re-assigned, it holds again from now (the watermark never goes back). */
  assert_int_equal(tw_align_split_set(a, s, 1, true, 1500, NULL), TW_OK);
  push_split(a, s, 0, 200, 20, 1600, NULL);
  assert_int_equal(tw_align_advance(a, 1600, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), 94);
  /* Revoked, it stops counting at once. */
  assert_int_equal(tw_align_split_set(a, s, 1, false, 1600, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), 199);
  /* A split that only delivers late records still moves on: its own
   * largest time counts them. */
  bool was_late = false;
  push_split(a, s, 2, 150, 21, 1700, &was_late);
  assert_true(was_late);
  push_split(a, s, 0, 400, 22, 1700, NULL);
  assert_int_equal(tw_align_watermark(a), 199); /* split 2 at 150 holds */
  push_split(a, s, 2, 180, 23, 1700, &was_late);
  assert_true(was_late);
  push_split(a, s, 2, 300, 24, 1700, &was_late);
  assert_false(was_late);
  assert_int_equal(tw_align_watermark(a), 299);
  /* Bad splits. */
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_align_split_set(a, s, TW_ALIGN_SPLITS_MAX, true, 1700, &err),
      TW_ELIMIT);
  assert_non_null(strstr(tw_err_msg(&err), "split"));
  assert_int_equal(tw_align_split_set(a, 7, 0, true, 1700, &err), TW_EINVAL);
  tw_align_record r = {
      .stream = s, .time_ns = 900, .id = 30, .split = TW_ALIGN_SPLITS_MAX};
  assert_int_equal(tw_align_push(a, &r, 1700, NULL, &err), TW_ELIMIT);
  assert_int_equal(tw_align_stream_stats_get(a, s, &st), TW_OK);
  assert_int_equal(st.refused, 1);
  finish(a, &c);
}

static void test_capacity_and_errors(void **state) {
  (void)state;
  capture c;
  tw_align *a = make(&c, 10, 0);
  tw_err err;
  tw_err_init(&err);
  uint32_t s = 0;
  tw_align_stream_opts bad = {
      .name = "cam0", .policy = TW_ALIGN_LINEAR, .tolerance_ns = 10};
  assert_int_equal(tw_align_stream_add(a, &bad, &s, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "'cam0'"));
  assert_non_null(strstr(err.msg, "never interpolated"));
  uint32_t s0 = stream(a, (tw_align_stream_opts){.name = "imu",
                                                 .policy = TW_ALIGN_HOLD_LAST,
                                                 .capacity = 4});
  for (int k = 0; k < 4; k++)
    push(a, s0, k, (uint64_t)k + 1);
  tw_align_record r = {.stream = s0, .time_ns = 9, .seq = 9, .id = 9};
  tw_err_init(&err);
  assert_int_equal(tw_align_push(a, &r, 0, NULL, &err), TW_ELIMIT);
  assert_non_null(strstr(err.msg, "'imu'"));
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, s0, &st), TW_OK);
  assert_int_equal(st.refused, 1);
  assert_int_equal(st.buffered, 4);
  tw_err_init(&err);
  assert_int_equal(tw_align_stream_add(a, &bad, &s, &err), TW_ESTATE);
  r.stream = 7;
  assert_int_equal(tw_align_push(a, &r, 0, NULL, NULL), TW_EINVAL);
  finish(a, &c);

  /* A grid policy without a grid; a group of one. */
  a = make(&c, 0, 0);
  tw_err_init(&err);
  tw_align_stream_opts ex = {.name = "x", .policy = TW_ALIGN_EXACT};
  assert_int_equal(tw_align_stream_add(a, &ex, &s, &err), TW_EINVAL);
  uint32_t g = 0;
  assert_int_equal(tw_align_group_add(a, NULL, &g, NULL), TW_OK);
  stream(a, (tw_align_stream_opts){
                .name = "only", .policy = TW_ALIGN_APPROXIMATE, .group = g});
  r = (tw_align_record){.stream = 0, .time_ns = 1};
  tw_err_init(&err);
  assert_int_equal(tw_align_push(a, &r, 0, NULL, &err), TW_EVALIDATE);
  finish(a, &c);

  /* Non-finite values are refused. */
  a = make(&c, 10, 0);
  s0 = stream(a, (tw_align_stream_opts){.name = "v",
                                        .policy = TW_ALIGN_LINEAR,
                                        .dims = 1,
                                        .tolerance_ns = 5});
  double nan = strtod("nan", NULL);
  r = (tw_align_record){.stream = s0, .time_ns = 1, .values = &nan};
  assert_int_equal(tw_align_push(a, &r, 0, NULL, NULL), TW_ENUMERIC);
  r.values = NULL;
  assert_int_equal(tw_align_push(a, &r, 0, NULL, NULL), TW_EINVAL);
  finish(a, &c);
}

/* --- Approximate time ---------------------------------------------------- */

static tw_align *make_group(capture *c, int64_t max_interval, double penalty,
                            uint32_t *sa, uint32_t *sb) {
  tw_align *a = make(c, 0, 0);
  uint32_t g = 0;
  tw_align_group_opts go = {
      .queue_size = 8, .max_interval_ns = max_interval, .age_penalty = penalty};
  assert_int_equal(tw_align_group_add(a, &go, &g, NULL), TW_OK);
  *sa = stream(a, (tw_align_stream_opts){.name = "left",
                                         .policy = TW_ALIGN_APPROXIMATE,
                                         .group = g});
  *sb = stream(a, (tw_align_stream_opts){.name = "right",
                                         .policy = TW_ALIGN_APPROXIMATE,
                                         .group = g});
  return a;
}

static void want_set(const capture *c, size_t i, int64_t t, uint64_t ida,
                     uint64_t idb) {
  assert_true(c->n >= 2 * i + 2);
  const out_item *x = &c->items[2 * i], *y = &c->items[2 * i + 1];
  if (x->t != t || y->t != t || x->id != ida || y->id != idb || x->set != i ||
      y->set != i || x->status != TW_ALIGN_SET_MEMBER)
    fail_msg("set %zu: t=%lld (%llu, %llu), want t=%lld (%llu, %llu)", i,
             (long long)x->t, (unsigned long long)x->id,
             (unsigned long long)y->id, (long long)t, (unsigned long long)ida,
             (unsigned long long)idb);
}

/* Equal stamps: each pair is provably optimal as soon as it is complete. */
static void test_approx_perfect(void **state) {
  (void)state;
  capture c;
  uint32_t sa, sb;
  tw_align *a = make_group(&c, 0, -1, &sa, &sb);
  for (int k = 0; k < 3; k++) {
    push(a, sa, 10 * k, (uint64_t)k + 1);
    push(a, sb, 10 * k, (uint64_t)k + 11);
  }
  push(a, sa, 100, 9);
  push(a, sb, 100, 19);
  assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  assert_int_equal(c.n, 6);
  want_set(&c, 0, 0, 1, 11);
  want_set(&c, 1, 10, 2, 12);
  want_set(&c, 2, 20, 3, 13);
  assert_int_equal(tw_align_sets(a), 3);
  finish(a, &c);
}

/* left 0 10 20, right 3 12 26, no age penalty. Worked by the algorithm:
 * (0,3) becomes the candidate with pivot right@3; 10 arriving makes 3 the
 * earliest head, the pivot itself, so (0,3) is published at 3. (10,12)
 * likewise when 20 arrives. (20,26) waits for a later left record. */
static void test_approx_imperfect(void **state) {
  (void)state;
  capture c;
  uint32_t sa, sb;
  tw_align *a = make_group(&c, 0, 0, &sa, &sb);
  push(a, sa, 0, 1);
  push(a, sb, 3, 11);
  push(a, sa, 10, 2);
  push(a, sb, 12, 12);
  push(a, sa, 20, 3);
  push(a, sb, 26, 13);
  push(a, sa, 40, 4);
  push(a, sb, 40, 14);
  assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  assert_int_equal(tw_align_watermark(a), 39);
  assert_int_equal(c.n, 4);
  want_set(&c, 0, 3, 1, 11);
  want_set(&c, 1, 12, 2, 12);
  assert_int_equal(c.unmatched, 0);
  finish(a, &c);
}

/* max interval 3: (0,5) is too wide, left@0 is dropped; (10,5) too, right@5
 * is dropped; (10,10) is a set. */
static void test_approx_max_interval(void **state) {
  (void)state;
  capture c;
  uint32_t sa, sb;
  tw_align *a = make_group(&c, 3, -1, &sa, &sb);
  push(a, sa, 0, 1);
  push(a, sb, 5, 11);
  push(a, sa, 10, 2);
  push(a, sb, 10, 12);
  push(a, sa, 50, 3);
  push(a, sb, 50, 13);
  assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  assert_int_equal(c.n, 2);
  want_set(&c, 0, 10, 2, 12);
  assert_int_equal(c.unmatched, 2);
  assert_int_equal(c.seen[1], 1);
  assert_int_equal(c.seen[11], 1);
  finish(a, &c);
}

/* --- Properties ---------------------------------------------------------- */

typedef struct prec {
  uint32_t stream;
  int64_t t;
  uint64_t id;
  double v[2];
  double key;
} prec;

static int by_key(const void *x, const void *y) {
  const prec *p = x, *q = y;
  if (p->key != q->key)
    return p->key < q->key ? -1 : 1;
  return p->id < q->id ? -1 : p->id > q->id;
}

static uint64_t prng;

static uint64_t next_rand(void) {
  prng = prng * 6364136223846793005u + 1442695040888963407u;
  return prng >> 33;
}

enum { NREC = 600, BOUND = 40 };

/* Grid streams of every policy plus an approximate group, fed the records
 * in the order of p with an advance every few pushes. */
static void run(const prec *p, size_t n, capture *c, unsigned advance_every) {
  tw_align *a = make(c, 10, 0);
  uint32_t g = 0;
  tw_align_group_opts go = {.queue_size = 6, .max_interval_ns = 15};
  assert_int_equal(tw_align_group_add(a, &go, &g, NULL), TW_OK);
  tw_align_stream_opts base = {.max_out_of_orderness_ns = BOUND};
  tw_align_stream_opts o = base;
  o.policy = TW_ALIGN_EXACT;
  stream(a, o);
  o.policy = TW_ALIGN_NEAREST;
  o.tolerance_ns = 4;
  stream(a, o);
  o = base;
  o.policy = TW_ALIGN_HOLD_LAST;
  o.max_age_ns = 25;
  stream(a, o);
  o = base;
  o.policy = TW_ALIGN_LINEAR;
  o.dims = 2;
  o.tolerance_ns = 20;
  stream(a, o);
  o = base;
  o.policy = TW_ALIGN_APPROXIMATE;
  o.group = g;
  stream(a, o);
  stream(a, o);
  for (size_t i = 0; i < n; i++) {
    push_v(a, p[i].stream, p[i].t, p[i].id, p[i].v, 0);
    if (advance_every != 0 && i % advance_every == 0)
      assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  }
  assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  assert_int_equal(c->nlate, 0);
  check_order(c);
  /* Nothing in a set twice, and every record released once at the end. */
  unsigned char inset[NREC + 1] = {0};
  for (size_t i = 0; i < c->n; i++)
    if (c->items[i].status == TW_ALIGN_SET_MEMBER) {
      assert_true(c->items[i].id <= NREC);
      assert_int_equal(inset[c->items[i].id]++, 0);
    }
  tw_align_free(a);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(c->seen[p[i].id], 1);
}

static void same_output(const capture *x, const capture *y) {
  assert_int_equal(x->n, y->n);
  for (size_t i = 0; i < x->n; i++)
    if (memcmp(&x->items[i], &y->items[i], sizeof x->items[i]) != 0)
      fail_msg("outputs differ at item %zu", i);
}

static void test_order_within_bound_is_irrelevant(void **state) {
  (void)state;
  prng = 2026;
  static prec p[NREC];
  int64_t t[6] = {0};
  for (size_t i = 0; i < NREC; i++) {
    uint32_t s = (uint32_t)(next_rand() % 6);
    t[s] += 1 + (int64_t)(next_rand() % (s == 0 ? 3 : 12));
    if (s == 0)
      t[s] = (t[s] + 9) / 10 * 10; /* EXACT hits the grid sometimes */
    p[i] = (prec){s, t[s], i + 1, {(double)(next_rand() % 100), (double)i}, 0};
  }
  /* In event-time order. */
  for (size_t i = 0; i < NREC; i++)
    p[i].key = (double)p[i].t;
  qsort(p, NREC, sizeof *p, by_key);
  capture ref;
  memset(&ref, 0, sizeof ref);
  run(p, NREC, &ref, 0);
  print_message("reference: %zu items\n", ref.n);
  assert_true(ref.n > 200);
  size_t sets = 0;
  for (size_t i = 0; i < ref.n; i++)
    sets += ref.items[i].status == TW_ALIGN_SET_MEMBER;
  print_message("reference: %zu set members\n", sets);
  assert_true(sets > 20);
  /* Random permutations with every record at most BOUND behind the
   * largest time of its stream when it arrives; random advance points. */
  for (int round = 0; round < 30; round++) {
    for (size_t i = 0; i < NREC; i++)
      p[i].key = (double)p[i].t + (double)(next_rand() % (BOUND * 1000)) / 1000;
    qsort(p, NREC, sizeof *p, by_key);
    capture c;
    memset(&c, 0, sizeof c);
    run(p, NREC, &c, 1 + (unsigned)(next_rand() % 50));
    same_output(&ref, &c);
    free(c.items);
  }
  free(ref.items);
}

/* A device clock jumps back by two seconds mid-stream. Stamped in raw
 * device time, the records after the jump fall behind the watermark and go
 * to the side output, counted; mapped through the clock fit, which detects
 * the jump and restarts, they stay in order. Every record is emitted or
 * late, and each accepted one is released exactly once. */
static void test_clock_jump_loses_nothing(void **state) {
  (void)state;
  capture c;
  tw_align *a = make(&c, 10, 0);
  uint32_t raw =
      stream(a, (tw_align_stream_opts){.name = "raw",
                                       .policy = TW_ALIGN_EXACT,
                                       .max_out_of_orderness_ns = 5});
  uint32_t mapped =
      stream(a, (tw_align_stream_opts){.name = "mapped",
                                       .policy = TW_ALIGN_HOLD_LAST,
                                       .max_out_of_orderness_ns = 5});
  tw_align_clock *clk = NULL;
  tw_align_clock_opts co = {.jump_back_ns = 100};
  assert_int_equal(tw_align_clock_new(&co, &clk, NULL), TW_OK);
  uint64_t jumps = 0;
  for (int k = 0; k < 200; k++) {
    int64_t device = 10 * k - (k >= 100 ? 2000 : 0);
    int64_t host = 10 * k + 3;
    tw_align_clock_event ev;
    assert_int_equal(tw_align_clock_add(clk, device, host, &ev, NULL), TW_OK);
    jumps += ev.kind == TW_ALIGN_CLOCK_JUMP_BACK;
    int64_t when = 0;
    assert_int_equal(tw_align_clock_to_host(clk, device, &when, NULL), TW_OK);
    assert_int_equal(when, host);
    tw_align_record r = {.stream = raw,
                         .time_ns = device,
                         .seq = (uint64_t)k,
                         .id = (uint64_t)k + 1};
    assert_int_equal(tw_align_push(a, &r, 0, NULL, NULL), TW_OK);
    r = (tw_align_record){.stream = mapped,
                          .time_ns = when,
                          .seq = (uint64_t)k,
                          .id = (uint64_t)k + 1001};
    assert_int_equal(tw_align_push(a, &r, 0, NULL, NULL), TW_OK);
    assert_int_equal(tw_align_advance(a, 0, NULL), TW_OK);
  }
  assert_int_equal(jumps, 1);
  tw_align_stream_stats st;
  assert_int_equal(tw_align_stream_stats_get(a, raw, &st), TW_OK);
  assert_int_equal(st.pushed, 200);
  assert_int_equal(st.accepted, 100);
  assert_int_equal(st.late, 100);
  assert_int_equal(c.nlate, 100);
  assert_int_equal(tw_align_stream_stats_get(a, mapped, &st), TW_OK);
  assert_int_equal(st.late, 0);
  assert_int_equal(st.accepted, 200);
  size_t emitted = 0;
  for (size_t i = 0; i < c.n; i++)
    emitted += c.items[i].stream == raw && c.items[i].status == TW_ALIGN_RECORD;
  assert_int_equal(emitted, 99); /* 0..980; 990 waits for the watermark */
  tw_align_free(a);
  tw_align_clock_free(clk);
  for (size_t i = 0; i < 64; i++)
    assert_int_equal(c.late_ids[i], 101 + i);
  for (uint64_t id = 1; id <= 200; id++) {
    assert_int_equal(c.seen[id], id <= 100 ? 1 : 0);
    assert_int_equal(c.seen[id + 1000], 1);
  }
  free(c.items);
}

/* --- Allocation failures ------------------------------------------------- */

static void noop_emit(void *ud, const tw_align_item *it) {
  (void)ud;
  (void)it;
}

static int scenario(void) {
  tw_align_opts o = {.grid_dt_ns = 10, .emit = noop_emit};
  tw_align *a = NULL;
  int rc = tw_align_new(&o, &a, NULL);
  if (rc != TW_OK)
    return rc;
  uint32_t g, s0, s1, s2;
  tw_align_stream_opts lin = {
      .name = "lin", .policy = TW_ALIGN_LINEAR, .dims = 3, .tolerance_ns = 30};
  tw_align_stream_opts ap = {.name = "ap", .policy = TW_ALIGN_APPROXIMATE};
  if ((rc = tw_align_group_add(a, NULL, &g, NULL)) != TW_OK ||
      (rc = tw_align_stream_add(a, &lin, &s0, NULL)) != TW_OK ||
      (rc = tw_align_stream_add(a, &ap, &s1, NULL)) != TW_OK ||
      (rc = tw_align_stream_add(a, &ap, &s2, NULL)) != TW_OK)
    goto out;
  double v[3] = {1, 2, 3};
  for (int k = 0; k < 40 && rc == TW_OK; k++) {
    tw_align_record r = {.stream = (uint32_t)(k % 3),
                         .time_ns = k,
                         .seq = (uint64_t)k,
                         .values = v};
    rc = tw_align_push(a, &r, 0, NULL, NULL);
    if (rc == TW_OK)
      rc = tw_align_advance(a, 0, NULL);
  }
out:
  tw_align_free(a);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(scenario());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_policies),
      TW_TEST(test_late_records),
      TW_TEST(test_idle_stream),
      TW_TEST(test_splits),
      TW_TEST(test_capacity_and_errors),
      TW_TEST(test_approx_perfect),
      TW_TEST(test_approx_imperfect),
      TW_TEST(test_approx_max_interval),
      TW_TEST(test_order_within_bound_is_irrelevant),
      TW_TEST(test_clock_jump_loses_nothing),
      TW_TEST(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
