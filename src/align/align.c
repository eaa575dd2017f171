/*
 * align.c - the aligner: per-stream buffers, event-time watermarks with
 * bounded out-of-orderness and idleness, grid policies and the ordered
 * emission that merges grid rows with approximate-time sets.
 *
 * Watermarks follow Flink: a stream's watermark is its largest event time
 * minus its out-of-orderness bound minus 1 ns (with splits: the minimum
 * of that over its active splits that are not idle, each split with its
 * own largest time, late records included); the global watermark W is
 * the minimum over streams that are not idle, never moves back, and holds
 * while every stream is idle. A record with time <= W on arrival is late.
 * Because no record at or below W can be accepted any more, everything
 * computed from records at or below W is final: a grid row at t is emitted
 * once t + lookahead <= W (lookahead: the widest NEAREST/LINEAR window),
 * and group records at or below W are fed to the matcher in (time, seq,
 * id, stream) order. Both are independent of the arrival interleaving, so
 * the output is too.
 *
 * Emission: an item at time tau is emitted when nothing emitted later can
 * be earlier than tau: the next grid tick not yet ready and the frontier of
 * every group (the oldest record it still holds or has yet to feed) bound
 * the future. Items at the same time go out by stream index, then by
 * sequence (set order).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "align_int.h"
#include "twin/alloc.h"

#define TW__ALIGN_CAPACITY 1024
#define TW__ALIGN_QUEUE 16
#define TW__ALIGN_GROUP_MAX 64

static bool grid_policy(tw_align_policy p) { return p != TW_ALIGN_APPROXIMATE; }

int tw_align_new(const tw_align_opts *opts, tw_align **out, tw_err *err) {
  if (opts == NULL || opts->emit == NULL)
    return tw_err_set(err, TW_EINVAL, "align: an emit callback is required");
  if (opts->grid_dt_ns < 0 || opts->idle_timeout_ns < 0 ||
      opts->split_idle_timeout_ns < 0)
    return tw_err_set(err, TW_EINVAL,
                      "align: grid_dt_ns, idle_timeout_ns and "
                      "split_idle_timeout_ns must be >= 0");
  tw_align *a = tw_calloc(1, sizeof *a);
  if (a == NULL)
    return tw_err_set(err, TW_ENOMEM, "align: out of memory");
  a->o = *opts;
  a->wm = INT64_MIN;
  a->next_tick = opts->grid_dt_ns > 0 ? opts->grid_start_ns : INT64_MAX;
  a->grid_done = opts->grid_dt_ns == 0;
  *out = a;
  return TW_OK;
}

void tw__align_release(tw_align *a, tw__align_rec *r,
                       tw_align_release_reason why) {
  tw__align_stream *s = &a->s[r->r.stream];
  if (a->o.release != NULL)
    a->o.release(a->o.ud, &r->r, why);
  s->st.released++;
  if (why == TW_ALIGN_RELEASE_UNMATCHED)
    s->st.unmatched++;
  s->st.buffered--;
  tw_free(r->vals);
  r->vals = NULL;
}

void tw_align_free(tw_align *a) {
  if (a == NULL)
    return;
  for (uint32_t i = 0; i < a->ns; i++) {
    tw__align_stream *s = &a->s[i];
    for (size_t k = 0; k < s->n; k++)
      tw__align_release(a, &s->buf[k], TW_ALIGN_RELEASE_FREED);
    for (size_t k = 0; k < s->qn; k++)
      tw__align_release(a, &s->q[k], TW_ALIGN_RELEASE_FREED);
    for (size_t k = 0; k < s->nheap; k++)
      tw__align_release(a, &s->heap[k], TW_ALIGN_RELEASE_FREED);
  }
  for (uint32_t i = 0; i < a->ng; i++)
    tw__align_group_fini(a, &a->g[i]);
  for (uint32_t i = 0; i < a->ns; i++) {
    tw_free(a->s[i].name);
    tw_free(a->s[i].buf);
    tw_free(a->s[i].q);
    tw_free(a->s[i].splits);
    tw_free(a->s[i].heap);
  }
  tw_free(a->s);
  tw_free(a->g);
  tw_free(a->scratch);
  tw_free(a);
}

int tw_align_group_add(tw_align *a, const tw_align_group_opts *opts,
                       uint32_t *group_out, tw_err *err) {
  if (a->frozen)
    return tw_err_set(err, TW_ESTATE,
                      "align: groups are added before the first push");
  if (a->ng >= TW__ALIGN_GROUP_MAX)
    return tw_err_set(err, TW_ELIMIT, "align: at most %d groups",
                      TW__ALIGN_GROUP_MAX);
  tw_align_group_opts o = {0, 0, -1};
  if (opts != NULL)
    o = *opts;
  if (o.max_interval_ns < 0 || isnan(o.age_penalty))
    return tw_err_set(err, TW_EINVAL,
                      "align: group %u: max_interval_ns must be >= 0",
                      (unsigned)a->ng);
  if (o.queue_size == 0)
    o.queue_size = TW__ALIGN_QUEUE;
  if (o.age_penalty < 0)
    o.age_penalty = 0.1;
  if (o.queue_size > (SIZE_MAX / 4) / sizeof(tw__align_rec) / 64)
    return tw_err_set(err, TW_EINVAL, "align: group %u: queue_size too large",
                      (unsigned)a->ng);
  tw__align_group *g = tw_reallocarray(a->g, a->ng + 1, sizeof *a->g);
  if (g == NULL)
    return tw_err_set(err, TW_ENOMEM, "align: out of memory");
  a->g = g;
  memset(&g[a->ng], 0, sizeof *g);
  g[a->ng].o = o;
  *group_out = a->ng++;
  return TW_OK;
}

int tw_align_stream_add(tw_align *a, const tw_align_stream_opts *opts,
                        uint32_t *stream_out, tw_err *err) {
  char fallback[32];
  (void)snprintf(fallback, sizeof fallback, "#%u", (unsigned)a->ns);
  const char *name = opts->name != NULL ? opts->name : fallback;
  if (a->frozen)
    return tw_err_set(err, TW_ESTATE,
                      "align: stream '%s': streams are added before the first "
                      "push",
                      name);
  tw_align_stream_opts o = *opts;
  if (o.policy > TW_ALIGN_APPROXIMATE)
    return tw_err_set(err, TW_EINVAL, "align: stream '%s': unknown policy %d",
                      name, (int)o.policy);
  if (o.max_out_of_orderness_ns < 0 || o.tolerance_ns < 0 || o.max_age_ns < 0 ||
      o.min_period_ns < 0)
    return tw_err_set(err, TW_EINVAL,
                      "align: stream '%s': time bounds must be >= 0", name);
  if (o.policy == TW_ALIGN_LINEAR && o.dims == 0)
    return tw_err_set(err, TW_EINVAL,
                      "align: stream '%s': LINEAR interpolates numeric "
                      "values; frames are never interpolated (use EXACT, "
                      "NEAREST, HOLD_LAST or APPROXIMATE)",
                      name);
  if (o.policy == TW_ALIGN_LINEAR && o.tolerance_ns == 0)
    return tw_err_set(err, TW_EINVAL,
                      "align: stream '%s': LINEAR needs tolerance_ns, the "
                      "largest gap to interpolate across",
                      name);
  if (grid_policy(o.policy) && a->o.grid_dt_ns == 0)
    return tw_err_set(err, TW_EINVAL,
                      "align: stream '%s': a grid policy needs grid_dt_ns > 0",
                      name);
  if (o.dims > 4096)
    return tw_err_set(err, TW_EINVAL,
                      "align: stream '%s': %zu values per record, at most "
                      "4096",
                      name, o.dims);
  tw__align_group *g = NULL;
  if (o.policy == TW_ALIGN_APPROXIMATE) {
    if (o.group >= a->ng)
      return tw_err_set(err, TW_EINVAL, "align: stream '%s': no group %u", name,
                        (unsigned)o.group);
    g = &a->g[o.group];
    if (g->nm >= TW__ALIGN_GROUP_MAX)
      return tw_err_set(err, TW_ELIMIT,
                        "align: stream '%s': group %u has %d streams already",
                        name, (unsigned)o.group, TW__ALIGN_GROUP_MAX);
  }
  if (o.capacity == 0)
    o.capacity = TW__ALIGN_CAPACITY;

  tw__align_stream *ss = tw_reallocarray(a->s, a->ns + 1, sizeof *a->s);
  if (ss == NULL)
    return tw_err_set(err, TW_ENOMEM, "align: out of memory");
  a->s = ss;
  tw__align_stream *s = &ss[a->ns];
  memset(s, 0, sizeof *s);
  s->name = tw_strdup(name);
  uint32_t *members = NULL;
  if (g != NULL) {
    s->q = tw_calloc(g->o.queue_size + 1, sizeof *s->q);
    members = tw_reallocarray(g->members, g->nm + 1, sizeof *g->members);
    if (members != NULL)
      g->members = members;
  }
  if (s->name == NULL || (g != NULL && (s->q == NULL || members == NULL))) {
    tw_free(s->name);
    tw_free(s->q);
    return tw_err_set(err, TW_ENOMEM, "align: stream '%s': out of memory",
                      name);
  }
  o.name = s->name;
  s->o = o;
  s->max_time = INT64_MIN;
  s->wm = INT64_MIN;
  s->st.max_time_ns = INT64_MIN;
  if (g != NULL) {
    s->member = g->nm;
    g->members[g->nm++] = a->ns;
  }
  *stream_out = a->ns++;
  return TW_OK;
}

/* Checks the configuration and allocates what emission needs, so that
 * tw_align_advance never allocates. */
static int freeze(tw_align *a, tw_err *err) {
  if (a->frozen)
    return TW_OK;
  size_t dims = 0;
  int64_t look = 0;
  bool grid = false;
  for (uint32_t i = 0; i < a->ns; i++) {
    const tw_align_stream_opts *o = &a->s[i].o;
    if (o->dims > dims)
      dims = o->dims;
    if (!grid_policy(o->policy))
      continue;
    grid = true;
    if ((o->policy == TW_ALIGN_NEAREST || o->policy == TW_ALIGN_LINEAR) &&
        o->tolerance_ns > look)
      look = o->tolerance_ns;
  }
  for (uint32_t i = 0; i < a->ng; i++)
    if (a->g[i].nm < 2)
      return tw_err_set(err, TW_EVALIDATE,
                        "align: group %u has %u stream(s); approximate-time "
                        "matching needs at least 2",
                        (unsigned)i, (unsigned)a->g[i].nm);
  double *scratch = tw_calloc(dims + 1, sizeof *scratch);
  if (scratch == NULL)
    return tw_err_set(err, TW_ENOMEM, "align: out of memory");
  uint32_t done = 0;
  for (; done < a->ng; done++)
    if (tw__align_group_init(&a->g[done]) != TW_OK)
      break;
  if (done < a->ng) {
    for (uint32_t i = 0; i < done; i++) {
      tw_free(a->g[i].sets);
      tw_free(a->g[i].set_time);
      tw_free(a->g[i].dropped);
      a->g[i].sets = NULL;
      a->g[i].set_time = NULL;
      a->g[i].dropped = NULL;
    }
    tw_free(scratch);
    return tw_err_set(err, TW_ENOMEM, "align: out of memory");
  }
  a->scratch = scratch;
  a->lookahead = look;
  a->has_grid_streams = grid;
  a->frozen = true;
  return TW_OK;
}

static int64_t sat_sub(int64_t x, int64_t y) {
  int64_t r;
  if (TW__CKD_SUB(&r, x, y))
    return y > 0 ? INT64_MIN : INT64_MAX;
  return r;
}

/* A largest event time's watermark under stream s's bound. */
static int64_t wm_of(const tw__align_stream *s, bool has_max, int64_t max) {
  if (!has_max)
    return INT64_MIN;
  return sat_sub(sat_sub(max, s->o.max_out_of_orderness_ns), 1);
}

/* Stream s's watermark at processing time now: the minimum over its
 * active splits that are not idle, else its own largest time. */
static int64_t stream_wm(const tw_align *a, tw__align_stream *s, int64_t now) {
  int64_t m = INT64_MAX;
  uint32_t counted = 0;
  for (uint32_t k = 0; k < s->nsplits; k++) {
    const tw__align_split *p = &s->splits[k];
    if (!p->active)
      continue;
    if (a->o.split_idle_timeout_ns > 0 &&
        sat_sub(now, p->last_active) >= a->o.split_idle_timeout_ns)
      continue;
    counted++;
    int64_t w = wm_of(s, p->has_max, p->max_time);
    if (w < m)
      m = w;
  }
  s->st.splits_active = counted;
  return counted > 0 ? m : wm_of(s, s->has_max, s->max_time);
}

static int key_cmp(const tw_align_record *x, const tw_align_record *y);

static void heap_push(tw__align_stream *s, const tw__align_rec *r) {
  size_t i = s->nheap++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (key_cmp(&s->heap[up].r, &r->r) <= 0)
      break;
    s->heap[i] = s->heap[up];
    i = up;
  }
  s->heap[i] = *r;
}

static tw__align_rec heap_pop(tw__align_stream *s) {
  tw__align_rec top = s->heap[0];
  tw__align_rec last = s->heap[--s->nheap];
  size_t n = s->nheap, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && key_cmp(&s->heap[c + 1].r, &s->heap[c].r) < 0)
      c++;
    if (key_cmp(&last.r, &s->heap[c].r) <= 0)
      break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (n > 0)
    s->heap[i] = last;
  return top;
}

/* Moves the records the watermark passed from the heaps to the buffers,
 * in order: everything above the old watermark is above what buf holds. */
static void settle(tw_align *a) {
  for (uint32_t i = 0; i < a->ns; i++) {
    tw__align_stream *s = &a->s[i];
    while (s->nheap > 0 && s->heap[0].r.time_ns <= a->wm) {
      tw__align_rec r = heap_pop(s);
      r.r.values = r.vals;
      s->buf[s->n++] = r;
    }
  }
}

/* Idleness at processing time now, then the global watermark. */
static void update(tw_align *a, int64_t now) {
  int64_t m = INT64_MAX;
  bool any = false;
  for (uint32_t i = 0; i < a->ns; i++) {
    tw__align_stream *s = &a->s[i];
    if (!s->active_set) {
      s->active_set = true;
      s->last_active = now;
    }
    s->idle = a->o.idle_timeout_ns > 0 &&
              sat_sub(now, s->last_active) >= a->o.idle_timeout_ns;
    s->st.idle = s->idle;
    if (s->idle)
      continue;
    any = true;
    int64_t w = stream_wm(a, s, now);
    s->wm = w;
    if (w < m)
      m = w;
  }
  if (any && m > a->wm) {
    a->wm = m;
    settle(a);
  }
}

/* Split k of stream s, declared (grown to hold it) when new. */
static int split_get(tw__align_stream *s, uint32_t k, int64_t now,
                     tw__align_split **out, tw_err *err) {
  if (k >= TW_ALIGN_SPLITS_MAX)
    return tw_err_set(err, TW_ELIMIT,
                      "align: stream '%s': split %u is past the %u a stream "
                      "may have",
                      s->name, (unsigned)k, (unsigned)TW_ALIGN_SPLITS_MAX);
  if (k >= s->nsplits) {
    tw__align_split *ns = tw_reallocarray(s->splits, (size_t)k + 1, sizeof *ns);
    if (ns == NULL)
      return tw_err_set(err, TW_ENOMEM, "align: stream '%s': out of memory",
                        s->name);
    memset(&ns[s->nsplits], 0, ((size_t)k + 1 - s->nsplits) * sizeof *ns);
    s->splits = ns;
    s->nsplits = k + 1;
  }
  tw__align_split *p = &s->splits[k];
  if (!p->declared) {
    p->declared = true;
    p->active = true;
    p->last_active = now;
    s->st.splits++;
  }
  *out = p;
  return TW_OK;
}

int64_t tw_align_split_lead(const tw_align *a, uint32_t stream,
                            uint32_t split) {
  if (stream >= a->ns)
    return 0;
  const tw__align_stream *s = &a->s[stream];
  if (split >= s->nsplits || !s->splits[split].has_max)
    return 0;
  int64_t w = wm_of(s, true, s->splits[split].max_time);
  if (s->wm == INT64_MIN)
    return w == INT64_MIN ? 0 : INT64_MAX;
  return w > s->wm ? sat_sub(w, s->wm) : 0;
}

int tw_align_split_set(tw_align *a, uint32_t stream, uint32_t split,
                       bool active, int64_t now_ns, tw_err *err) {
  if (stream >= a->ns)
    return tw_err_set(err, TW_EINVAL, "align: split of unknown stream %u",
                      (unsigned)stream);
  tw__align_stream *s = &a->s[stream];
  tw__align_split *p = NULL;
  int rc = split_get(s, split, now_ns, &p, err);
  if (rc != TW_OK)
    return rc;
  if (active)
    p->last_active = now_ns; /* (re)assigned: it holds from now */
  p->active = active;
  update(a, now_ns);
  return TW_OK;
}

static int key_cmp(const tw_align_record *x, const tw_align_record *y) {
  if (x->time_ns != y->time_ns)
    return x->time_ns < y->time_ns ? -1 : 1;
  if (x->seq != y->seq)
    return x->seq < y->seq ? -1 : 1;
  if (x->id != y->id)
    return x->id < y->id ? -1 : 1;
  return 0;
}

/* Grows *p to hold need records (doubling, at most max). */
static bool grow_recs(tw__align_rec **p, size_t *cap, size_t need, size_t max) {
  if (need <= *cap)
    return true;
  size_t ncap = *cap == 0 ? 16 : *cap * 2;
  while (ncap < need)
    ncap *= 2;
  if (ncap > max)
    ncap = max;
  tw__align_rec *nb = tw_reallocarray(*p, ncap, sizeof *nb);
  if (nb == NULL)
    return false;
  *p = nb;
  *cap = ncap;
  return true;
}

int tw_align_push(tw_align *a, const tw_align_record *rec, int64_t now_ns,
                  bool *late, tw_err *err) {
  if (late != NULL)
    *late = false;
  if (rec->stream >= a->ns)
    return tw_err_set(err, TW_EINVAL, "align: push to unknown stream %u",
                      (unsigned)rec->stream);
  int rc = freeze(a, err);
  if (rc != TW_OK)
    return rc;
  tw__align_stream *s = &a->s[rec->stream];
  s->st.pushed++;
  size_t dims = s->o.dims;
  if (dims > 0) {
    if (rec->values == NULL) {
      s->st.refused++;
      return tw_err_set(err, TW_EINVAL,
                        "align: stream '%s': record seq %llu has no values",
                        s->name, (unsigned long long)rec->seq);
    }
    for (size_t k = 0; k < dims; k++)
      if (!isfinite(rec->values[k])) {
        s->st.refused++;
        return tw_err_set(err, TW_ENUMERIC,
                          "align: stream '%s': record seq %llu: value %zu is "
                          "not finite",
                          s->name, (unsigned long long)rec->seq, k);
      }
  }
  /* Arrival makes the stream and its split active, whatever the record's
   * fate. */
  tw__align_split *sp = NULL;
  int src = split_get(s, rec->split, now_ns, &sp, err);
  if (src != TW_OK) {
    s->st.refused++;
    return src;
  }
  /* Splits assigned before the stream's first record wait from that
   * record, not from their assignment: a consumer assigned partitions
   * takes a while to fetch the first of them, and the others must not be
   * idle by then. */
  if (!s->delivered) {
    s->delivered = true;
    for (uint32_t k = 0; k < s->nsplits; k++)
      if (s->splits[k].active && !s->splits[k].has_max)
        s->splits[k].last_active = now_ns;
  }
  sp->active = true;
  sp->last_active = now_ns;
  s->active_set = true;
  s->last_active = now_ns;
  update(a, now_ns);
  /* A split's largest time counts late records too (Flink's per-split
   * generators see every record): a split that only delivers late records
   * would otherwise hold the watermark for ever. */
  if (!sp->has_max || rec->time_ns > sp->max_time) {
    sp->has_max = true;
    sp->max_time = rec->time_ns;
  }
  if (rec->time_ns <= a->wm) {
    update(a, now_ns);
    s->st.late++;
    if (late != NULL)
      *late = true;
    if (a->o.late != NULL)
      a->o.late(a->o.ud, rec);
    return TW_OK;
  }
  if (s->n + s->nheap == s->o.capacity) {
    s->st.refused++;
    return tw_err_set(err, TW_ELIMIT,
                      "align: stream '%s': buffer full (%zu records); "
                      "record seq %llu refused",
                      s->name, s->o.capacity, (unsigned long long)rec->seq);
  }
  if (!grow_recs(&s->buf, &s->cap, s->n + s->nheap + 1, s->o.capacity) ||
      !grow_recs(&s->heap, &s->heapcap, s->nheap + 1, s->o.capacity)) {
    s->st.refused++;
    return tw_err_set(err, TW_ENOMEM, "align: stream '%s': out of memory",
                      s->name);
  }
  tw__align_rec r = {*rec, NULL};
  if (dims > 0) {
    r.vals = tw_memdup(rec->values, dims * sizeof(double));
    if (r.vals == NULL) {
      s->st.refused++;
      return tw_err_set(err, TW_ENOMEM, "align: stream '%s': out of memory",
                        s->name);
    }
  }
  r.r.values = r.vals;
  heap_push(s, &r);
  s->st.accepted++;
  s->st.buffered++;
  if (!s->has_max || rec->time_ns > s->max_time) {
    s->has_max = true;
    s->max_time = rec->time_ns;
    s->st.max_time_ns = rec->time_ns;
  }
  update(a, now_ns);
  return TW_OK;
}

/* --- Grid policies ------------------------------------------------------- */

/* First index whose time is >= t (lower) or > t (upper). */
static size_t bound(const tw__align_stream *s, int64_t t, bool upper) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int64_t m = s->buf[mid].r.time_ns;
    if (m < t || (upper && m == t))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void emit_rec(tw_align *a, tw__align_stream *s, int64_t t,
                     tw_align_status st, const tw__align_rec *r,
                     const tw__align_rec *next, const double *values,
                     uint64_t set) {
  tw_align_item it = {t,
                      (uint32_t)(s - a->s),
                      st,
                      r != NULL ? &r->r : NULL,
                      next != NULL ? &next->r : NULL,
                      values,
                      values != NULL ? s->o.dims : 0,
                      set};
  if (r != NULL)
    s->st.emitted++;
  a->o.emit(a->o.ud, &it);
}

static void emit_cell(tw_align *a, tw__align_stream *s, int64_t t) {
  const tw__align_rec *r = NULL, *next = NULL;
  tw_align_status st = TW_ALIGN_MISSING;
  const double *values = NULL;
  switch (s->o.policy) {
  case TW_ALIGN_EXACT: {
    size_t i = bound(s, t, false);
    if (i < s->n && s->buf[i].r.time_ns == t)
      r = &s->buf[i];
    break;
  }
  case TW_ALIGN_NEAREST: {
    size_t i = bound(s, t, false);
    const tw__align_rec *after = i < s->n ? &s->buf[i] : NULL;
    const tw__align_rec *before = NULL;
    if (i > 0) {
      size_t j = i - 1;
      while (j > 0 && s->buf[j - 1].r.time_ns == s->buf[j].r.time_ns)
        j--;
      before = &s->buf[j];
    }
    /* Distances as unsigned: t - before and after - t are positive. */
    uint64_t db =
        before != NULL ? (uint64_t)t - (uint64_t)before->r.time_ns : UINT64_MAX;
    uint64_t da =
        after != NULL ? (uint64_t)after->r.time_ns - (uint64_t)t : UINT64_MAX;
    uint64_t tol = (uint64_t)s->o.tolerance_ns;
    if (after != NULL && da < db && da <= tol)
      r = after;
    else if (before != NULL && db <= da && db <= tol)
      r = before;
    break;
  }
  case TW_ALIGN_HOLD_LAST: {
    size_t i = bound(s, t, true);
    if (i > 0) {
      const tw__align_rec *c = &s->buf[i - 1];
      if (s->o.max_age_ns == 0 ||
          (uint64_t)t - (uint64_t)c->r.time_ns <= (uint64_t)s->o.max_age_ns)
        r = c;
    }
    break;
  }
  case TW_ALIGN_LINEAR: {
    size_t i = bound(s, t, true);
    if (i == 0)
      break;
    const tw__align_rec *lo = &s->buf[i - 1];
    if (lo->r.time_ns == t) {
      r = lo;
      break;
    }
    if (i == s->n)
      break;
    const tw__align_rec *hi = &s->buf[i];
    uint64_t gap = (uint64_t)hi->r.time_ns - (uint64_t)lo->r.time_ns;
    if (gap > (uint64_t)s->o.tolerance_ns)
      break;
    double w = (double)((uint64_t)t - (uint64_t)lo->r.time_ns) / (double)gap;
    for (size_t k = 0; k < s->o.dims; k++)
      a->scratch[k] = lo->vals[k] + (hi->vals[k] - lo->vals[k]) * w;
    r = lo;
    next = hi;
    values = a->scratch;
    st = TW_ALIGN_INTERPOLATED;
    break;
  }
  case TW_ALIGN_APPROXIMATE:
    return;
  }
  if (r != NULL && st == TW_ALIGN_MISSING) {
    st = TW_ALIGN_RECORD;
    values = r->vals;
  }
  emit_rec(a, s, t, st, r, next, values, 0);
}

/* After the tick before next: drops what no tick >= next can use. */
static void prune(tw_align *a, tw__align_stream *s, int64_t next) {
  size_t keep = 0;
  switch (s->o.policy) {
  case TW_ALIGN_EXACT:
    keep = bound(s, next, false);
    break;
  case TW_ALIGN_NEAREST:
    keep = bound(s, sat_sub(next, s->o.tolerance_ns), false);
    break;
  case TW_ALIGN_HOLD_LAST:
  case TW_ALIGN_LINEAR: {
    size_t i = bound(s, next, true);
    keep = i > 0 ? i - 1 : 0;
    break;
  }
  case TW_ALIGN_APPROXIMATE:
    return;
  }
  /* Compacting moves what stays: done once a batch has gathered (what
   * is kept longer is never used by a later tick, which searches by
   * time), so pruning costs O(1) per record, not O(buffer) per tick. */
  if (keep == 0 || (keep < 64 && keep * 4 < s->n && s->n + 64 < s->o.capacity))
    return;
  for (size_t k = 0; k < keep; k++)
    tw__align_release(a, &s->buf[k], TW_ALIGN_RELEASE_DONE);
  memmove(&s->buf[0], &s->buf[keep], (s->n - keep) * sizeof *s->buf);
  s->n -= keep;
}

/* --- Emission ------------------------------------------------------------ */

static bool tick_ready(const tw_align *a) {
  if (a->grid_done || !a->has_grid_streams || a->wm == INT64_MIN)
    return false;
  return a->next_tick <= sat_sub(a->wm, a->lookahead);
}

/* Emits every item at time tau: grid cells (when the tick is tau) and the
 * sets of time tau, by stream index. */
static void emit_at(tw_align *a, int64_t tau, bool tick) {
  /* Number the sets of time tau, group by group, deterministically. */
  uint64_t first_set[TW__ALIGN_GROUP_MAX];
  size_t nsets_g[TW__ALIGN_GROUP_MAX];
  uint64_t next_no = a->sets_emitted;
  (void)first_set;
  for (uint32_t gi = 0; gi < a->ng; gi++) {
    tw__align_group *g = &a->g[gi];
    size_t k = 0;
    while (k < g->set_n && g->set_time[(g->set_head + k) % g->set_cap] == tau)
      k++;
    if (gi < TW__ALIGN_GROUP_MAX) {
      first_set[gi] = next_no;
      nsets_g[gi] = k;
    }
    next_no += k;
  }
  for (uint32_t si = 0; si < a->ns; si++) {
    tw__align_stream *s = &a->s[si];
    if (grid_policy(s->o.policy)) {
      if (tick)
        emit_cell(a, s, tau);
      continue;
    }
    uint32_t gi = s->o.group;
    tw__align_group *g = &a->g[gi];
    for (size_t k = 0; k < nsets_g[gi]; k++) {
      size_t slot = (g->set_head + k) % g->set_cap;
      tw__align_rec *r = &g->sets[slot * g->nm + s->member];
      emit_rec(a, s, tau, TW_ALIGN_SET_MEMBER, r, NULL, r->vals,
               first_set[gi] + k);
    }
  }
  a->sets_emitted = next_no;
  for (uint32_t gi = 0; gi < a->ng; gi++) {
    tw__align_group *g = &a->g[gi];
    for (size_t k = 0; k < nsets_g[gi]; k++) {
      for (uint32_t i = 0; i < g->nm; i++)
        tw__align_release(a, &g->sets[g->set_head * g->nm + i],
                          TW_ALIGN_RELEASE_DONE);
      g->set_head = (g->set_head + 1) % g->set_cap;
      g->set_n--;
    }
  }
  if (tick) {
    int64_t next;
    if (TW__CKD_ADD(&next, tau, a->o.grid_dt_ns)) {
      a->grid_done = true;
      next = INT64_MAX;
    }
    a->next_tick = next;
    for (uint32_t si = 0; si < a->ns; si++)
      if (grid_policy(a->s[si].o.policy))
        prune(a, &a->s[si], next);
  }
}

/* Emits every item the watermark has settled, in order. */
static void emit_ready(tw_align *a) {
  size_t ticks = 0;
  for (;;) {
    for (uint32_t gi = 0; gi < a->ng; gi++)
      tw__align_group_feed(a, &a->g[gi]);
    bool grid_live = a->has_grid_streams && !a->grid_done;
    bool ready = tick_ready(a);
    if (ready && a->o.max_ticks_per_advance != 0 &&
        ticks == a->o.max_ticks_per_advance)
      break;
    /* Bound: no future item is earlier. */
    int64_t bnd = INT64_MAX;
    if (grid_live && !ready)
      bnd = a->next_tick;
    int64_t tau = INT64_MAX;
    bool have = false;
    if (ready) {
      tau = a->next_tick;
      have = true;
    }
    for (uint32_t gi = 0; gi < a->ng; gi++) {
      tw__align_group *g = &a->g[gi];
      int64_t f = tw__align_group_frontier(a, g);
      if (f < bnd)
        bnd = f;
      if (g->set_n > 0 && g->set_time[g->set_head] <= tau) {
        tau = g->set_time[g->set_head];
        have = true;
      }
    }
    if (!have || tau >= bnd)
      break;
    bool tick = ready && tau == a->next_tick;
    ticks += tick;
    emit_at(a, tau, tick);
  }
}

int tw_align_advance(tw_align *a, int64_t now_ns, tw_err *err) {
  int rc = freeze(a, err);
  if (rc != TW_OK)
    return rc;
  update(a, now_ns);
  emit_ready(a);
  return TW_OK;
}

int tw_align_finish(tw_align *a, tw_err *err) {
  int rc = freeze(a, err);
  if (rc != TW_OK)
    return rc;
  int64_t m = INT64_MIN;
  for (uint32_t i = 0; i < a->ns; i++)
    if (a->s[i].has_max && a->s[i].max_time > m)
      m = a->s[i].max_time;
  if (m > a->wm) {
    a->wm = m;
    settle(a);
  }
  emit_ready(a);
  return TW_OK;
}

int64_t tw_align_watermark(const tw_align *a) { return a->wm; }

int64_t tw_align_next_tick(const tw_align *a) {
  return a->grid_done ? INT64_MAX : a->next_tick;
}

uint32_t tw_align_stream_count(const tw_align *a) { return a->ns; }

uint64_t tw_align_sets(const tw_align *a) { return a->sets_emitted; }

int tw_align_stream_stats_get(const tw_align *a, uint32_t stream,
                              tw_align_stream_stats *out) {
  if (stream >= a->ns)
    return TW_EINVAL;
  *out = a->s[stream].st;
  return TW_OK;
}
