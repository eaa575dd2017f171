/*
 * align_int.h - the aligner's private state, shared by align.c (buffers,
 * watermarks, grid policies, emission) and approx.c (approximate-time
 * matching).
 *
 * Invariants: a stream's buf is sorted by (time, seq, id) and holds the
 * accepted records at or below the watermark not yet handed to a matcher
 * or pruned (those above wait in its heap, so records of partitions read
 * one after another never move the buffer); a group member's queue
 * q[0..qn) holds matcher records in time order, the first qpast of them
 * being the matcher's "past" (ROS message_filters keeps a deque and a past
 * vector; here they are one array and a cursor); the group's ring holds
 * published sets waiting for their turn in the output order. Every record
 * in buf, q or ring is counted in its stream's held.
 */
#ifndef TW_ALIGN_INT_H
#define TW_ALIGN_INT_H

#include <stdbool.h>

#include "twin/align.h"

/* Checked int64 arithmetic: true on overflow, *r then unspecified. */
#define TW__CKD_ADD(r, a, b) __builtin_add_overflow((a), (b), (r))
#define TW__CKD_SUB(r, a, b) __builtin_sub_overflow((a), (b), (r))

/* A record the aligner holds: r.values aliases vals, which it owns. */
typedef struct tw__align_rec {
  tw_align_record r;
  double *vals;
} tw__align_rec;

/* One split of a stream: its own largest event time and activity. */
typedef struct tw__align_split {
  bool declared, active, has_max;
  int64_t max_time, last_active;
} tw__align_split;

typedef struct tw__align_stream {
  char *name;
  tw_align_stream_opts o;
  tw__align_rec *buf;
  size_t n, cap;
  tw__align_rec *q; /* group members: o.queue_size + 1 slots */
  size_t qn, qpast;
  bool has_max, active_set, idle;
  int64_t max_time, last_active;
  uint32_t member;         /* index within its group */
  tw__align_split *splits; /* nsplits entries, indexed by split */
  uint32_t nsplits;
  /* Accepted records above the watermark: a binary min-heap by (time,
   * seq, id). A record joins buf (in order, at its end) when the
   * watermark passes it; buf's capacity always covers n + nheap, so
   * settling never allocates. */
  tw__align_rec *heap;
  size_t nheap, heapcap;
  int64_t wm;     /* the stream's watermark at the last update */
  bool delivered; /* a record has arrived (split idleness counts from it) */
  tw_align_stream_stats st;
} tw__align_stream;

typedef struct tw__align_group {
  tw_align_group_opts o;
  uint32_t *members; /* stream indices, increasing */
  uint32_t nm;
  /* Matcher state (ROS ApproximateTime). */
  uint32_t non_empty;
  bool has_pivot;
  uint32_t pivot;
  int64_t pivot_time, cand_start, cand_end;
  bool *dropped;
  bool has_pub;
  int64_t last_pub; /* time of the last published set */
  /* Published sets: ring of set_cap sets of nm records each. */
  tw__align_rec *sets;
  int64_t *set_time;
  size_t set_head, set_n, set_cap;
} tw__align_group;

struct tw_align {
  tw_align_opts o;
  tw__align_stream *s;
  uint32_t ns;
  tw__align_group *g;
  uint32_t ng;
  bool frozen, grid_done, has_grid_streams;
  int64_t wm, next_tick, lookahead;
  double *scratch; /* interpolation, the largest dims */
  uint64_t sets_emitted;
};

/* Releases a held record: callback, stats, frees its values. */
void tw__align_release(tw_align *a, tw__align_rec *r,
                       tw_align_release_reason why);

/* Feeds group g's members' records at or below the watermark into the
 * matcher, while its ring has room for what a feed can publish. */
void tw__align_group_feed(tw_align *a, tw__align_group *g);

/* Lowest time any future set of g can have (INT64_MAX if unbounded). */
int64_t tw__align_group_frontier(const tw_align *a, const tw__align_group *g);

/* Allocates the ring of g. */
int tw__align_group_init(tw__align_group *g);

void tw__align_group_fini(tw_align *a, tw__align_group *g);

#endif /* TW_ALIGN_INT_H */
