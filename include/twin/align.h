/*
 * align.h - time alignment of telemetry streams: clock offset and drift
 * estimation, event-time watermarks and per-stream alignment policies.
 *
 * Two objects, both pure computation (no I/O, no threads, no clock reads:
 * processing time is always an argument):
 *
 * tw_align_clock estimates how a device clock maps onto the host clock
 * from (device timestamp, host arrival timestamp) pairs. The one-way delay
 * host - device is bounded below by offset + drift * t plus the minimum
 * network delay, so the fit is the lower envelope of the points: the line
 * under every point that minimises the sum of vertical distances (a linear
 * programme whose optimum is the lower convex hull edge spanning the mean
 * device time). Memory is bounded by a sliding window. A point far below
 * the envelope, or a device time that goes back beyond a threshold, is a
 * clock jump: the fit restarts from that point, the jump is counted and
 * reported.
 *
 * tw_align aligns records of several streams onto one time base. Records
 * arrive in any order; each stream's watermark is its largest event time
 * minus its bounded out-of-orderness (minus 1 ns, as in Flink), the global
 * watermark is the minimum over the streams that are not idle, and a
 * record at or below the global watermark when it arrives is late: it goes
 * to the late callback and is counted, never buffered. Behind the
 * watermark the aligner emits items in the deterministic order (aligned
 * time, stream index, sequence):
 *   - grid rows: at t = grid_start + k * grid_dt, one item per grid stream,
 *     the value chosen by the stream's policy (EXACT, NEAREST, HOLD_LAST,
 *     LINEAR);
 *   - approximate-time sets: the streams of a group are matched with the
 *     ROS message_filters ApproximateTime algorithm, each set holding one
 *     record per stream, each record in at most one set.
 * A stream may have splits (the partitions of a Kafka topic, read in
 * batches one partition after another): then, as in Flink's per-partition
 * watermarks, the stream's watermark is the minimum over its active splits
 * that are not idle of (the split's largest event time - the bound - 1),
 * so a backlog read partition by partition is aligned instead of late. A
 * split declared active before its first record (an assignment) holds the
 * watermark until it delivers or goes idle (split_idle_timeout_ns of
 * processing time without records, counted from the later of its
 * assignment and the stream's first record); when no split counts, the
 * stream's watermark is its largest event time, as without splits.
 * Frames (opaque payloads) are reindexed, never interpolated: LINEAR is a
 * configuration error on them. Every accepted record is released exactly
 * once through the release callback; nothing is lost or duplicated.
 * See docs/internals/align.md and docs/adr/0016-alignment.md.
 *
 * Thread safety: an object is used by one thread at a time; distinct
 * objects are independent. Callbacks run on the calling thread, inside the
 * call that triggers them, and must not call back into the same object.
 */
#ifndef TWIN_ALIGN_H
#define TWIN_ALIGN_H

#include <stdbool.h>

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* --- Clock offset and drift ----------------------------------------------- */

typedef struct tw_align_clock tw_align_clock;

/* Options of a clock estimator. Zero fields take the defaults in
 * brackets. */
typedef struct tw_align_clock_opts {
  int64_t window_ns;    /* points kept: device time span [60 s] */
  size_t max_points;    /* points kept: count [4096] */
  int64_t jump_ns;      /* a point this far below the envelope [10 ms] */
  int64_t jump_back_ns; /* device time going back by more than [10 ms] */
  size_t min_points;    /* points before the fit is trusted for jumps [16] */
  double max_drift_ppm; /* slopes beyond are clamped for jump tests [1000] */
} tw_align_clock_opts;

/* What tw_align_clock_add saw. */
typedef enum tw_align_clock_event_kind {
  TW_ALIGN_CLOCK_NONE = 0,   /* the point joined the fit */
  TW_ALIGN_CLOCK_JUMP_BELOW, /* far below the envelope: the fit restarted */
  TW_ALIGN_CLOCK_JUMP_BACK,  /* device time went back: the fit restarted */
  TW_ALIGN_CLOCK_REORDERED,  /* device time went back a little: ignored */
} tw_align_clock_event_kind;

typedef struct tw_align_clock_event {
  tw_align_clock_event_kind kind;
  int64_t device_ns; /* the point's device time */
  int64_t step_ns;   /* estimated step of host - device (jumps only) */
} tw_align_clock_event;

/* The current fit. host ≈ device + offset_ns + drift * (device - ref). */
typedef struct tw_align_clock_fit {
  bool valid;              /* at least one point since the last reset */
  bool has_drift;          /* the hull has two vertices: drift is estimated */
  int64_t ref_device_ns;   /* the newest device time in the window */
  int64_t offset_ns;       /* host - device on the envelope at ref */
  double drift_ppm;        /* d(host - device)/d(device), in 1e-6 */
  double residual_mean_ns; /* mean distance of the points above the line */
  double residual_max_ns;  /* largest distance */
  size_t count;            /* points in the window */
  size_t hull_points;      /* vertices of the lower hull */
  uint64_t jumps;          /* jumps since creation */
  uint64_t reordered;      /* points ignored for a small backwards step */
} tw_align_clock_fit;

/* Creates an estimator. opts may be NULL (defaults). Returns TW_OK,
 * TW_EINVAL for negative options, TW_ENOMEM. *out is untouched on error.
 * Free with tw_align_clock_free. */
TW_API int tw_align_clock_new(const tw_align_clock_opts *opts,
                              tw_align_clock **out, tw_err *err);

/* Frees c; NULL is a no-op. */
TW_API void tw_align_clock_free(tw_align_clock *c);

/* Adds a (device, host) pair. ev (may be NULL) receives what happened.
 * Returns TW_OK (a jump is an event, not an error), or TW_ERANGE when
 * host - device overflows. Never allocates. */
TW_API int tw_align_clock_add(tw_align_clock *c, int64_t device_ns,
                              int64_t host_ns, tw_align_clock_event *ev,
                              tw_err *err);

/* Writes the current fit to *fit (O(window) for the residuals). */
TW_API void tw_align_clock_fit_get(const tw_align_clock *c,
                                   tw_align_clock_fit *fit);

/* Converts a device time to host time with the current fit. Returns TW_OK,
 * TW_ESTATE before the first point, TW_ERANGE on overflow. */
TW_API int tw_align_clock_to_host(const tw_align_clock *c, int64_t device_ns,
                                  int64_t *host_ns, tw_err *err);

/* Forgets every point (the counters stay). */
TW_API void tw_align_clock_reset(tw_align_clock *c);

/* --- Aligner -------------------------------------------------------------- */

typedef struct tw_align tw_align;

/* How a stream's value at a grid tick t is chosen, or how it is matched. */
typedef enum tw_align_policy {
  TW_ALIGN_EXACT = 0,  /* a record with time == t, else missing */
  TW_ALIGN_NEAREST,    /* closest within tolerance_ns; ties the earlier */
  TW_ALIGN_HOLD_LAST,  /* latest record <= t, at most max_age_ns old */
  TW_ALIGN_LINEAR,     /* interpolates values between the records around t,
                          at most tolerance_ns apart; numeric streams only */
  TW_ALIGN_APPROXIMATE /* approximate-time sets within a group */
} tw_align_policy;

/* A record. Pushed by the caller; handed back in items and callbacks. The
 * aligner never dereferences payload; values (numeric streams) are copied
 * at push and, in output, point into the aligner's memory, valid during
 * the callback only. */
typedef struct tw_align_record {
  uint32_t stream;      /* index from tw_align_stream_add */
  int64_t time_ns;      /* event time in the aligned time base */
  uint64_t seq;         /* sequence number: orders equal times */
  uint64_t id;          /* the caller's payload id (last tie-break) */
  const void *payload;  /* opaque, the caller's */
  size_t size;          /* payload size, informative */
  const double *values; /* numeric streams: dims values; else NULL */
  uint32_t split;       /* the stream's split (a Kafka partition) [0] */
} tw_align_record;

typedef struct tw_align_stream_opts {
  const char *name; /* copied; used in messages */
  tw_align_policy policy;
  size_t dims;                     /* numeric values per record; 0 = frames */
  int64_t max_out_of_orderness_ns; /* lateness bound of this stream */
  int64_t tolerance_ns;            /* NEAREST window; LINEAR max gap */
  int64_t max_age_ns;              /* HOLD_LAST; 0 = unlimited */
  size_t capacity;                 /* buffered records before refusing [1024] */
  uint32_t group;                  /* APPROXIMATE: from tw_align_group_add */
  int64_t min_period_ns;           /* APPROXIMATE: inter-message lower bound */
} tw_align_stream_opts;

typedef struct tw_align_group_opts {
  size_t queue_size;       /* per-stream queue of the matcher [16] */
  int64_t max_interval_ns; /* largest set spread; 0 = unlimited */
  double age_penalty;      /* ROS age penalty, >= 0 [0.1 when < 0] */
} tw_align_group_opts;

typedef enum tw_align_status {
  TW_ALIGN_MISSING = 0,  /* no value at this tick */
  TW_ALIGN_RECORD,       /* record is the value (reindexed) */
  TW_ALIGN_INTERPOLATED, /* values interpolated between record and next */
  TW_ALIGN_SET_MEMBER    /* record is a member of approximate set `set` */
} tw_align_status;

/* One output item. Borrowed: valid during the emit callback only. */
typedef struct tw_align_item {
  int64_t time_ns; /* aligned time: the tick, or the set's latest time */
  uint32_t stream;
  tw_align_status status;
  const tw_align_record *record; /* NULL when missing */
  const tw_align_record *next;   /* INTERPOLATED: the later record */
  const double *values;          /* the value (numeric streams), or NULL */
  size_t dims;
  uint64_t set; /* SET_MEMBER: set number, counted per aligner from 0 */
} tw_align_item;

typedef enum tw_align_release_reason {
  TW_ALIGN_RELEASE_DONE = 0,  /* passed by the watermark (used or not) */
  TW_ALIGN_RELEASE_UNMATCHED, /* a group record no set will ever use */
  TW_ALIGN_RELEASE_FREED      /* the aligner was freed holding it */
} tw_align_release_reason;

typedef struct tw_align_opts {
  int64_t grid_start_ns;   /* first grid tick */
  int64_t grid_dt_ns;      /* grid step; 0 = no grid (groups only) */
  int64_t idle_timeout_ns; /* processing time without records; 0 = never */
  int64_t split_idle_timeout_ns; /* the same for one split; 0 = never */
  size_t max_ticks_per_advance;  /* grid ticks one advance emits; 0 = all.
                                    A bound keeps a watermark jump (a clock
                                    stepping years ahead) from emitting
                                    without end in one call; the next
                                    advance goes on where it stopped. */
  void (*emit)(void *ud, const tw_align_item *item);
  void (*late)(void *ud, const tw_align_record *rec); /* side output */
  void (*release)(void *ud, const tw_align_record *rec,
                  tw_align_release_reason why);
  void *ud;
} tw_align_opts;

typedef struct tw_align_stream_stats {
  uint64_t pushed;        /* push calls naming the stream */
  uint64_t accepted;      /* buffered */
  uint64_t late;          /* sent to the late callback */
  uint64_t refused;       /* rejected: buffer full or out of memory */
  uint64_t released;      /* accepted records released */
  uint64_t unmatched;     /* of which released unmatched */
  uint64_t emitted;       /* items with a record emitted for the stream */
  size_t buffered;        /* accepted and not yet released */
  int64_t max_time_ns;    /* largest event time seen; INT64_MIN if none */
  bool idle;              /* at the last push/advance */
  uint32_t splits;        /* splits known (declared or pushed to) */
  uint32_t splits_active; /* of which active and not idle */
} tw_align_stream_stats;

/* Creates an aligner. opts is copied; emit is required. Returns TW_OK,
 * TW_EINVAL (grid_dt_ns or idle_timeout_ns negative, no emit), TW_ENOMEM. */
TW_API int tw_align_new(const tw_align_opts *opts, tw_align **out, tw_err *err);

/* Frees a, releasing every record it holds (TW_ALIGN_RELEASE_FREED); NULL
 * is a no-op. */
TW_API void tw_align_free(tw_align *a);

/* Adds an approximate-time group. Streams join it with policy
 * TW_ALIGN_APPROXIMATE and .group = *group_out. Before the first push. */
TW_API int tw_align_group_add(tw_align *a, const tw_align_group_opts *opts,
                              uint32_t *group_out, tw_err *err);

/* Adds a stream; its index (0, 1, ...) goes to *stream_out. Before the
 * first push. Returns TW_EINVAL for a bad option (LINEAR on frames, a grid
 * policy without a grid, an unknown group, negative bounds), TW_ESTATE
 * after the first push, TW_ENOMEM. */
TW_API int tw_align_stream_add(tw_align *a, const tw_align_stream_opts *opts,
                               uint32_t *stream_out, tw_err *err);

/* Pushes a record at processing time now_ns. The record is accepted
 * (buffered: TW_OK), late (handed to the late callback: TW_OK, *late set
 * when late is not NULL) or refused with nothing kept: TW_ELIMIT when the
 * stream's buffer is full or the split is past TW_ALIGN_SPLITS_MAX, TW_ENOMEM,
 * TW_EINVAL for an unknown stream, TW_ENUMERIC for a non-finite value,
 * TW_EVALIDATE for a badly configured group (fewer than two streams). The first
 * push freezes the configuration. Emits nothing: call tw_align_advance. */
TW_API int tw_align_push(tw_align *a, const tw_align_record *rec,
                         int64_t now_ns, bool *late, tw_err *err);

/* Splits of a stream (see the top): at most TW_ALIGN_SPLITS_MAX, indices
 * 0, 1, ... chosen by the caller. tw_align_split_set declares split
 * active (assigned: it holds the stream's watermark from now_ns until its
 * first record or its idle timeout) or inactive (revoked: it no longer
 * counts; a later record makes it active again). Pushing to a split
 * declares it active. Allowed before and after the first push; emits
 * nothing. TW_EINVAL for an unknown stream, TW_ELIMIT past the maximum,
 * TW_ENOMEM. */
#define TW_ALIGN_SPLITS_MAX 65536u
TW_API int tw_align_split_set(tw_align *a, uint32_t stream, uint32_t split,
                              bool active, int64_t now_ns, tw_err *err);

/* How far split's own watermark (its largest event time - the bound - 1)
 * is ahead of its stream's at the last push or advance: 0 when it is not
 * ahead or unknown, INT64_MAX when the stream's is still INT64_MIN (a
 * split that has not delivered holds it). For backpressure: a caller
 * pauses the splits far ahead (Flink's watermark alignment). */
TW_API int64_t tw_align_split_lead(const tw_align *a, uint32_t stream,
                                   uint32_t split);

/* Updates idleness and the watermark at processing time now_ns, and emits
 * every item that can no longer change, in order. Never allocates. */
TW_API int tw_align_advance(tw_align *a, int64_t now_ns, tw_err *err);

/* The end of the input (Flink's final watermark, bounded by the data):
 * the watermark moves to the largest event time of any stream and every
 * item up to it is emitted (grid ticks up to that time, sets that can
 * still form). Records pushed afterwards at or below it are late. Like
 * advance, it emits at most max_ticks_per_advance ticks; call it again to
 * go on. */
TW_API int tw_align_finish(tw_align *a, tw_err *err);

/* The global watermark (INT64_MIN before any). */
TW_API int64_t tw_align_watermark(const tw_align *a);

/* The next grid tick not yet emitted (INT64_MAX without a grid). */
TW_API int64_t tw_align_next_tick(const tw_align *a);

/* Number of streams, and the counters of one (TW_EINVAL if unknown). */
TW_API uint32_t tw_align_stream_count(const tw_align *a);
TW_API int tw_align_stream_stats_get(const tw_align *a, uint32_t stream,
                                     tw_align_stream_stats *out);

/* Number of approximate sets emitted. */
TW_API uint64_t tw_align_sets(const tw_align *a);

TW_EXTERN_C_END

#endif /* TWIN_ALIGN_H */
