/*
 * approx.c - approximate-time matching of a group of streams: the
 * ApproximateTime policy of ROS message_filters (Blaise Gassend's
 * algorithm), step for step.
 *
 * Each member has a queue; a candidate set takes the head of every queue.
 * The pivot is the member whose head is the latest of the first candidate:
 * every set that can still beat the candidate contains a record at or after
 * the pivot time, so the search over the pivot's candidates ends when the
 * pivot's own record is the earliest head (all candidates exhausted) or
 * when the spread already exceeds the best one (provably optimal). The
 * inter-message lower bound lets a member with an empty queue be replaced
 * by the earliest time its next record can have ("virtual moves"), so a
 * set can be proved optimal before that record arrives. A candidate is
 * better when (end - cand_end) * (1 + age_penalty) < (start - cand_start):
 * among sets of similar spread, the more recent one wins.
 *
 * Differences from ROS: records are fed in event-time order behind the
 * watermark rather than in arrival order, which makes the output
 * independent of the arrival interleaving; records ROS drops silently are
 * released as TW_ALIGN_RELEASE_UNMATCHED and counted. Time arithmetic is
 * in long double, exact for int64 on the targets Twin builds for.
 */
#include <string.h>

#include "align_int.h"
#include "twin/alloc.h"

typedef long double ltime;

static tw__align_stream *mem(tw_align *a, tw__align_group *g, uint32_t i) {
  return &a->s[g->members[i]];
}

static bool deque_empty(const tw__align_stream *s) { return s->qpast == s->qn; }

static int64_t deque_front_time(const tw__align_stream *s) {
  return s->q[s->qpast].r.time_ns;
}

/* Removes q[at], moving the rest down. */
static void q_remove(tw__align_stream *s, size_t at) {
  memmove(&s->q[at], &s->q[at + 1], (s->qn - at - 1) * sizeof *s->q);
  s->qn--;
}

static void deque_delete_front(tw_align *a, tw__align_group *g, uint32_t i) {
  tw__align_stream *s = mem(a, g, i);
  tw__align_rec r = s->q[s->qpast];
  q_remove(s, s->qpast);
  tw__align_release(a, &r, TW_ALIGN_RELEASE_UNMATCHED);
  if (deque_empty(s))
    g->non_empty--;
}

static void deque_move_front_to_past(tw_align *a, tw__align_group *g,
                                     uint32_t i) {
  tw__align_stream *s = mem(a, g, i);
  s->qpast++;
  if (deque_empty(s))
    g->non_empty--;
}

static void recover_n(tw_align *a, tw__align_group *g, uint32_t i, size_t n) {
  tw__align_stream *s = mem(a, g, i);
  s->qpast -= n;
  if (!deque_empty(s))
    g->non_empty++;
}

static void recover_all(tw_align *a, tw__align_group *g) {
  g->non_empty = 0;
  for (uint32_t i = 0; i < g->nm; i++)
    recover_n(a, g, i, mem(a, g, i)->qpast);
}

/* The candidate is the heads of the deques; the past is dropped. */
static void make_candidate(tw_align *a, tw__align_group *g) {
  for (uint32_t i = 0; i < g->nm; i++) {
    tw__align_stream *s = mem(a, g, i);
    while (s->qpast > 0) {
      tw__align_rec r = s->q[0];
      q_remove(s, 0);
      s->qpast--;
      tw__align_release(a, &r, TW_ALIGN_RELEASE_UNMATCHED);
    }
  }
}

/* Publishes the candidate: after recovering the past, it is the first
 * record of every queue. It moves into the ring. */
static void publish(tw_align *a, tw__align_group *g) {
  g->has_pivot = false;
  size_t slot = (g->set_head + g->set_n) % g->set_cap;
  g->set_time[slot] = g->cand_end;
  g->non_empty = 0;
  for (uint32_t i = 0; i < g->nm; i++) {
    tw__align_stream *s = mem(a, g, i);
    s->qpast = 0;
    g->sets[slot * g->nm + i] = s->q[0];
    q_remove(s, 0);
    if (!deque_empty(s))
      g->non_empty++;
  }
  g->set_n++;
  g->has_pub = true;
  g->last_pub = g->cand_end;
}

/* Earliest (end false) or latest (end true) deque head; ties as ROS: the
 * lowest index for the start, the highest for the end. */
static void boundary(tw_align *a, tw__align_group *g, bool end, uint32_t *idx,
                     int64_t *t) {
  *t = deque_front_time(mem(a, g, 0));
  *idx = 0;
  for (uint32_t i = 1; i < g->nm; i++) {
    int64_t ti = deque_front_time(mem(a, g, i));
    if ((ti < *t) ^ end) {
      *t = ti;
      *idx = i;
    }
  }
}

static ltime virtual_time(tw_align *a, tw__align_group *g, uint32_t i) {
  tw__align_stream *s = mem(a, g, i);
  if (deque_empty(s)) {
    /* The past holds at least the candidate's record. */
    ltime lb = (ltime)s->q[s->qn - 1].r.time_ns + (ltime)s->o.min_period_ns;
    return lb > (ltime)g->pivot_time ? lb : (ltime)g->pivot_time;
  }
  return (ltime)deque_front_time(s);
}

static void virtual_boundary(tw_align *a, tw__align_group *g, bool end,
                             uint32_t *idx, ltime *t) {
  *t = virtual_time(a, g, 0);
  *idx = 0;
  for (uint32_t i = 1; i < g->nm; i++) {
    ltime ti = virtual_time(a, g, i);
    if ((ti < *t) ^ end) {
      *t = ti;
      *idx = i;
    }
  }
}

/* (end - cand_end) * (1 + penalty) >= (start - cand_start) */
static bool not_better(const tw__align_group *g, ltime end, ltime start) {
  return (end - (ltime)g->cand_end) * (1 + (ltime)g->o.age_penalty) >=
         start - (ltime)g->cand_start;
}

static void process(tw_align *a, tw__align_group *g) {
  while (g->non_empty == g->nm) {
    uint32_t end_i, start_i;
    int64_t end_t, start_t;
    boundary(a, g, true, &end_i, &end_t);
    boundary(a, g, false, &start_i, &start_t);
    for (uint32_t i = 0; i < g->nm; i++)
      if (i != end_i)
        g->dropped[i] = false;
    if (!g->has_pivot) {
      if (g->o.max_interval_ns > 0 &&
          (ltime)end_t - (ltime)start_t > (ltime)g->o.max_interval_ns) {
        deque_delete_front(a, g, start_i);
        continue;
      }
      if (g->dropped[end_i]) {
        deque_delete_front(a, g, start_i);
        continue;
      }
      make_candidate(a, g);
      g->cand_start = start_t;
      g->cand_end = end_t;
      g->has_pivot = true;
      g->pivot = end_i;
      g->pivot_time = end_t;
      deque_move_front_to_past(a, g, start_i);
    } else {
      if (not_better(g, (ltime)end_t, (ltime)start_t)) {
        deque_move_front_to_past(a, g, start_i);
      } else {
        make_candidate(a, g);
        g->cand_start = start_t;
        g->cand_end = end_t;
        deque_move_front_to_past(a, g, start_i);
      }
    }
    /* Either every candidate of this pivot was tried, or the best one is
     * provably optimal: any later one contains [pivot_time, end_t]. */
    if (start_i == g->pivot ||
        not_better(g, (ltime)end_t, (ltime)g->pivot_time)) {
      publish(a, g);
    } else if (g->non_empty < g->nm) {
      size_t moves[64] = {0};
      size_t *mv = g->nm <= 64 ? moves : NULL;
      size_t guard = 0;
      for (uint32_t i = 0; i < g->nm; i++)
        guard += mem(a, g, i)->qn;
      for (;;) {
        uint32_t vend_i, vstart_i;
        ltime vend, vstart;
        virtual_boundary(a, g, true, &vend_i, &vend);
        virtual_boundary(a, g, false, &vstart_i, &vstart);
        (void)vend_i;
        if (not_better(g, vend, (ltime)g->pivot_time)) {
          publish(a, g);
          break;
        }
        /* A virtual move on an empty deque cannot happen (its virtual
         * time is at least the pivot time); the guard keeps a broken
         * invariant from looping. */
        if (!not_better(g, vend, vstart) || mv == NULL || guard-- == 0 ||
            deque_empty(mem(a, g, vstart_i))) {
          g->non_empty = 0;
          for (uint32_t i = 0; i < g->nm; i++)
            recover_n(a, g, i, mv != NULL ? mv[i] : 0);
          break;
        }
        deque_move_front_to_past(a, g, vstart_i);
        mv[vstart_i]++;
      }
    }
  }
}

/* ROS add(): the record joins member i's queue. */
static void add(tw_align *a, tw__align_group *g, uint32_t i,
                const tw__align_rec *r) {
  tw__align_stream *s = mem(a, g, i);
  s->q[s->qn++] = *r;
  if (s->qn - s->qpast == 1) {
    g->non_empty++;
    if (g->non_empty == g->nm)
      process(a, g);
  }
  if (s->qn > g->o.queue_size) {
    recover_all(a, g);
    tw__align_rec old = s->q[0];
    q_remove(s, 0);
    tw__align_release(a, &old, TW_ALIGN_RELEASE_UNMATCHED);
    g->dropped[i] = true;
    if (g->has_pivot) {
      g->has_pivot = false;
      process(a, g);
    }
  }
}

static int key_cmp(const tw_align_record *x, const tw_align_record *y) {
  if (x->time_ns != y->time_ns)
    return x->time_ns < y->time_ns ? -1 : 1;
  if (x->seq != y->seq)
    return x->seq < y->seq ? -1 : 1;
  if (x->id != y->id)
    return x->id < y->id ? -1 : 1;
  return x->stream < y->stream ? -1 : x->stream > y->stream;
}

void tw__align_group_feed(tw_align *a, tw__align_group *g) {
  while (g->set_n + g->o.queue_size + 1 <= g->set_cap) {
    tw__align_stream *best = NULL;
    uint32_t bi = 0;
    for (uint32_t i = 0; i < g->nm; i++) {
      tw__align_stream *s = mem(a, g, i);
      if (s->n == 0 || s->buf[0].r.time_ns > a->wm)
        continue;
      if (best == NULL || key_cmp(&s->buf[0].r, &best->buf[0].r) < 0) {
        best = s;
        bi = i;
      }
    }
    if (best == NULL)
      return;
    tw__align_rec r = best->buf[0];
    memmove(&best->buf[0], &best->buf[1], (best->n - 1) * sizeof *best->buf);
    best->n--;
    add(a, g, bi, &r);
  }
}

int64_t tw__align_group_frontier(const tw_align *a, const tw__align_group *g) {
  int64_t f = a->wm == INT64_MAX ? INT64_MAX : a->wm + 1;
  for (uint32_t i = 0; i < g->nm; i++) {
    const tw__align_stream *s = &a->s[g->members[i]];
    if (s->qn > 0 && s->q[0].r.time_ns < f)
      f = s->q[0].r.time_ns;
    if (s->n > 0 && s->buf[0].r.time_ns < f)
      f = s->buf[0].r.time_ns;
  }
  /* A later set holds a record of the stream that ended the last one, at
   * or after it: sets come out in nondecreasing time. */
  if (g->has_pub && g->last_pub > f)
    f = g->last_pub;
  return f;
}

int tw__align_group_init(tw__align_group *g) {
  g->set_cap = 2 * (g->o.queue_size + 1);
  g->sets = tw_calloc(g->set_cap * g->nm, sizeof *g->sets);
  g->set_time = tw_calloc(g->set_cap, sizeof *g->set_time);
  g->dropped = tw_calloc(g->nm, sizeof *g->dropped);
  if (g->sets == NULL || g->set_time == NULL || g->dropped == NULL) {
    tw_free(g->sets);
    tw_free(g->set_time);
    tw_free(g->dropped);
    g->sets = NULL;
    g->set_time = NULL;
    g->dropped = NULL;
    return TW_ENOMEM;
  }
  return TW_OK;
}

void tw__align_group_fini(tw_align *a, tw__align_group *g) {
  if (g->sets != NULL) {
    for (size_t k = 0; k < g->set_n; k++) {
      size_t slot = (g->set_head + k) % g->set_cap;
      for (uint32_t i = 0; i < g->nm; i++)
        tw__align_release(a, &g->sets[slot * g->nm + i],
                          TW_ALIGN_RELEASE_FREED);
    }
  }
  tw_free(g->sets);
  tw_free(g->set_time);
  tw_free(g->dropped);
  tw_free(g->members);
}
