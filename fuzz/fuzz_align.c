/*
 * fuzz_align.c - libFuzzer target for the aligner and the clock fit.
 *
 * The first bytes configure an aligner (grid step, idleness, up to six
 * streams with any policy, bounds, capacities and up to two approximate
 * groups); the rest is a program of operations: push a record (stream,
 * time step, sometimes an extreme time), advance processing time, query
 * the counters. Invariants checked on every callback and at the end:
 * items come out in (time, stream, record time, sequence) order and never ahead
 * of the watermark; the watermark never goes back; an emitted record is one
 * that was accepted and not yet released; a record is in at most one set and
 * each set has one record per member; each policy's choice is within its
 * window; late records were never accepted; per stream pushed = accepted +
 * late + refused and buffered = accepted - released; after free every
 * accepted record was released exactly once. The same pairs also drive a
 * clock fit, whose output must stay finite. Any broken invariant aborts.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/align.h"
#include "twin/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_align: check failed at line %d: %s\n", __LINE__,   \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

enum { MAXREC = 4096, MAXS = 6 };

enum { ST_NONE, ST_LIVE, ST_RELEASED, ST_LATE };

typedef struct fz {
  tw_align *a;
  tw_align_stream_opts so[MAXS];
  uint32_t ns;
  uint8_t state[MAXREC + 1];
  uint8_t in_set[MAXREC + 1];
  bool have_last;
  int64_t last_t, last_rt;
  uint32_t last_s;
  uint64_t last_id;
  size_t releases;
} fz;

static fz F;

static void on_emit(void *ud, const tw_align_item *it) {
  fz *f = ud;
  CHECK(it->stream < f->ns);
  CHECK(it->time_ns <= tw_align_watermark(f->a));
  uint64_t id = it->record != NULL ? it->record->id : 0;
  int64_t rt0 = it->record != NULL ? it->record->time_ns : INT64_MIN;
  if (f->have_last) {
    /* Several items of one stream at one time are sets, in the order of
     * their records' (time, sequence). */
    bool ok =
        f->last_t < it->time_ns ||
        (f->last_t == it->time_ns &&
         (f->last_s < it->stream ||
          (f->last_s == it->stream &&
           (f->last_rt < rt0 || (f->last_rt == rt0 && f->last_id < id)))));
    CHECK(ok);
  }
  f->have_last = true;
  f->last_t = it->time_ns;
  f->last_rt = rt0;
  f->last_s = it->stream;
  f->last_id = id;
  const tw_align_stream_opts *o = &f->so[it->stream];
  if (it->record == NULL) {
    CHECK(it->status == TW_ALIGN_MISSING);
    return;
  }
  CHECK(id >= 1 && id <= MAXREC && f->state[id] == ST_LIVE);
  CHECK(it->record->stream == it->stream);
  int64_t rt = it->record->time_ns, t = it->time_ns;
  switch (it->status) {
  case TW_ALIGN_RECORD:
    if (o->policy == TW_ALIGN_EXACT)
      CHECK(rt == t);
    if (o->policy == TW_ALIGN_NEAREST)
      CHECK(
          (rt <= t ? (uint64_t)t - (uint64_t)rt : (uint64_t)rt - (uint64_t)t) <=
          (uint64_t)o->tolerance_ns);
    if (o->policy == TW_ALIGN_HOLD_LAST || o->policy == TW_ALIGN_LINEAR)
      CHECK(rt <= t);
    if (o->policy == TW_ALIGN_LINEAR)
      CHECK(rt == t);
    CHECK(o->policy != TW_ALIGN_APPROXIMATE);
    break;
  case TW_ALIGN_INTERPOLATED:
    CHECK(o->policy == TW_ALIGN_LINEAR && it->next != NULL);
    CHECK(rt < t && t < it->next->time_ns);
    CHECK(f->state[it->next->id] == ST_LIVE);
    for (size_t k = 0; k < it->dims; k++) {
      double lo = it->record->values[k], hi = it->next->values[k];
      double mn = lo < hi ? lo : hi, mx = lo < hi ? hi : lo;
      CHECK(it->values[k] >= mn - 1e-9 * fabs(mn) - 1e-300 &&
            it->values[k] <= mx + 1e-9 * fabs(mx) + 1e-300);
    }
    break;
  case TW_ALIGN_SET_MEMBER:
    CHECK(o->policy == TW_ALIGN_APPROXIMATE);
    CHECK(f->in_set[id] == 0);
    f->in_set[id] = 1;
    CHECK(rt <= t);
    break;
  default:
    CHECK(false);
  }
}

static void on_late(void *ud, const tw_align_record *r) {
  fz *f = ud;
  CHECK(r->id >= 1 && r->id <= MAXREC && f->state[r->id] == ST_NONE);
  CHECK(r->time_ns <= tw_align_watermark(f->a));
  f->state[r->id] = ST_LATE;
}

static void on_release(void *ud, const tw_align_record *r,
                       tw_align_release_reason why) {
  fz *f = ud;
  CHECK(r->id >= 1 && r->id <= MAXREC && f->state[r->id] == ST_LIVE);
  f->state[r->id] = ST_RELEASED;
  f->releases++;
  (void)why;
}

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t byte(reader *r) {
  if (r->n == 0)
    return 0;
  r->n--;
  return *r->p++;
}

static void check_counters(const fz *f) {
  for (uint32_t s = 0; s < f->ns; s++) {
    tw_align_stream_stats st;
    CHECK(tw_align_stream_stats_get(f->a, s, &st) == TW_OK);
    CHECK(st.pushed == st.accepted + st.late + st.refused);
    CHECK(st.buffered == st.accepted - st.released);
    CHECK(st.unmatched <= st.released);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader rd = {data, size};
  long live = tw_alloc_live();
  fz *f = &F;
  memset(f, 0, sizeof *f);
  tw_align_opts o = {.grid_start_ns = (int8_t)byte(&rd),
                     .grid_dt_ns = 1 + byte(&rd) % 16,
                     .idle_timeout_ns = byte(&rd) % 4 * 50,
                     .split_idle_timeout_ns = byte(&rd) % 4 * 30,
                     .max_ticks_per_advance = 256,
                     .emit = on_emit,
                     .late = on_late,
                     .release = on_release,
                     .ud = f};
  CHECK(tw_align_new(&o, &f->a, NULL) == TW_OK);
  uint32_t ng = byte(&rd) % 3;
  for (uint32_t g = 0; g < ng; g++) {
    tw_align_group_opts go = {.queue_size = 1 + byte(&rd) % 6,
                              .max_interval_ns = byte(&rd) % 8,
                              .age_penalty = (double)(byte(&rd) % 4) / 4};
    uint32_t gid;
    CHECK(tw_align_group_add(f->a, &go, &gid, NULL) == TW_OK && gid == g);
  }
  uint32_t ns = 1 + byte(&rd) % MAXS;
  for (uint32_t i = 0; i < ns; i++) {
    uint8_t b = byte(&rd);
    tw_align_stream_opts so = {
        .policy = (tw_align_policy)(b % 5),
        .dims = (size_t)(b / 5 % 3),
        .max_out_of_orderness_ns = byte(&rd) % 16,
        .tolerance_ns = byte(&rd) % 12,
        .max_age_ns = byte(&rd) % 20,
        .capacity = 1 + byte(&rd) % 12,
        .group = ng > 0 ? (uint32_t)(b / 15 % ng) : 0,
        .min_period_ns = b / 45 % 3,
    };
    uint32_t sid;
    int rc = tw_align_stream_add(f->a, &so, &sid, NULL);
    if (rc == TW_OK) {
      CHECK(sid == f->ns);
      f->so[f->ns++] = so;
    } else {
      CHECK(rc == TW_EINVAL);
    }
  }
  tw_align_clock *clk = NULL;
  CHECK(tw_align_clock_new(NULL, &clk, NULL) == TW_OK);

  int64_t cursor[MAXS] = {0}, now = 0, wm = INT64_MIN;
  uint64_t next_id = 1;
  bool config_ok = true;
  while (rd.n > 0 && config_ok) {
    uint8_t op = byte(&rd);
    switch (op % 4) {
    case 0:
    case 1: { /* push */
      if (f->ns == 0 || next_id > MAXREC)
        break;
      uint32_t s = (uint32_t)(byte(&rd) % f->ns);
      int8_t step = (int8_t)byte(&rd);
      cursor[s] += step;
      int64_t t = cursor[s];
      if (op == 255)
        t = INT64_MAX - byte(&rd);
      if (op == 253)
        t = INT64_MIN + byte(&rd);
      double v[2] = {(double)(int8_t)byte(&rd), (double)step};
      tw_align_record r = {.stream = s,
                           .time_ns = t,
                           .seq = next_id,
                           .id = next_id,
                           .values = v,
                           .split = (uint32_t)(op >> 5) % 4};
      bool late = false;
      int rc = tw_align_push(f->a, &r, now, &late, NULL);
      if (rc == TW_OK) {
        if (!late)
          f->state[next_id] = ST_LIVE;
        else
          CHECK(f->state[next_id] == ST_LATE);
      } else if (rc == TW_EVALIDATE) {
        config_ok = false; /* a group with one stream */
      } else {
        CHECK(rc == TW_ELIMIT);
        CHECK(f->state[next_id] == ST_NONE);
      }
      next_id++;
      /* Host time wraps like the device's would; the fit must cope. */
      int64_t host = (int64_t)((uint64_t)t + (uint64_t)(step * 1000) +
                               (uint64_t)(op >> 2));
      (void)tw_align_clock_add(clk, t, host, NULL, NULL);
      break;
    }
    case 2: { /* advance */
      now += byte(&rd) % 64;
      int rc = tw_align_advance(f->a, now, NULL);
      if (rc == TW_EVALIDATE)
        config_ok = false;
      else
        CHECK(rc == TW_OK);
      break;
    }
    default: { /* query, or a split assigned / revoked */
      if (op & 0x80 && f->ns > 0) {
        uint8_t b = byte(&rd);
        int rc = tw_align_split_set(f->a, b % f->ns, (b >> 3) % 4, b & 0x40,
                                    now, NULL);
        CHECK(rc == TW_OK);
        (void)tw_align_split_lead(f->a, b % f->ns, (b >> 3) % 4);
        break;
      }
      check_counters(f);
      tw_align_clock_fit fit;
      tw_align_clock_fit_get(clk, &fit);
      CHECK(isfinite(fit.drift_ppm) && isfinite(fit.residual_mean_ns) &&
            fit.residual_max_ns >= 0);
      int64_t h;
      int rc = tw_align_clock_to_host(clk, (int8_t)op, &h, NULL);
      CHECK(rc == TW_OK || rc == TW_ESTATE || rc == TW_ERANGE);
      break;
    }
    }
    int64_t w = tw_align_watermark(f->a);
    CHECK(w >= wm);
    wm = w;
  }
  check_counters(f);
  tw_align_free(f->a);
  tw_align_clock_free(clk);
  for (uint64_t id = 1; id < next_id; id++)
    CHECK(f->state[id] != ST_LIVE);
  CHECK(tw_alloc_live() == live);
  return 0;
}
