/*
 * twin/ingest.h - live data into a twin: the pipeline between the stream
 * connectors (twin/kafka.h, twin/mqtt.h, twin/rtsp.h) and an execution
 * graph, with a recording of everything ingested and deterministic replay.
 *
 * The pipeline is a pure function of a sequence of events:
 *
 *   record(source, raw bytes, ingest time, source position)
 *   advance(processing time)
 *
 * A record is written to the recording first (the replay buffer: an MCAP
 * file or a directory of rotated segments), then deduplicated by its
 * source position ((topic, partition, offset) for Kafka), decoded and
 * checked against the twin's port declarations (twin/stream.h), and pushed
 * into the aligner (twin/align.h) at its event time. An advance is written
 * to the recording too, then moves the aligner's watermark: every grid
 * tick behind it becomes one row of graph inputs (each source's values at
 * the tick by its policy, hold-last by default), the graph steps one tick
 * and its outputs go to the output trace and the output callback.
 *
 * Nothing in the pipeline reads a clock: the caller passes processing
 * times, and they are recorded. Replaying a recording (tw_ingest_replay)
 * feeds the same events in the same order to a fresh pipeline of the same
 * twin and gives bitwise-identical outputs, including the records refused
 * (dead letters), the late ones and the duplicates.
 *
 * At-least-once: tw_ingest_push returns once the record is in the
 * recorder's buffer; tw_ingest_sync hands the buffer to the kernel. A
 * connector commits a position only after a sync that followed its push
 * (the callers in tools/twin do exactly that), so a crash loses no record
 * and a restart re-delivers only records past the last commit; the
 * pipeline drops re-delivered records whose position is at or below the
 * highest one it recorded for that (source, topic, partition), counting
 * them, so the recording and the twin see each record once.
 *
 * Recording format (docs/internals/ingest.md, ADR 0019): one channel per
 * source, "/ingest/SOURCE", message encoding "cdr", schema ros2msg
 * "twin_msgs/msg/IngestRecord"; the clock channel "/ingest/clock" with
 * "twin_msgs/msg/IngestClock"; log_time = ingest (processing) time,
 * sequence = the event's number (low 32 bits; the full number is in the
 * body); a Metadata record "twin.ingest" per segment (twin, sources,
 * segment number, first event). Files open in the MCAP tools and
 * Foxglove.
 *
 * Thread safety: a tw_ingest belongs to one thread at a time.
 */
#ifndef TWIN_INGEST_H
#define TWIN_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/align.h"
#include "twin/common.h"
#include "twin/error.h"
#include "twin/graph.h"
#include "twin/stream.h"

TW_EXTERN_C_BEGIN

/* --- Raw records ------------------------------------------------------- */

typedef struct tw_ingest_header {
  const char *name;
  const void *value;
  size_t len;
} tw_ingest_header;

/* Flags of a raw record. */
#define TW_INGEST_OVERSIZE 0x1u /* the connector cut it: refused */
#define TW_INGEST_FRAME 0x2u    /* a video frame (no schema; reindexed) */
/* Set by the pipeline: the record had more headers than a recording keeps
 * (TW_INGEST_HEADERS_MAX); the first ones are recorded, it is refused. */
#define TW_INGEST_HEADERS_CUT 0x4u
/* Split events in a recording (tw_ingest_split): a message on the
 * source's channel with the topic and partition, no data, and one of: */
#define TW_INGEST_ASSIGNED 0x8u /* the partition was assigned */
#define TW_INGEST_REVOKED 0x10u /* the partition was revoked */
#define TW_INGEST_HEADERS_MAX 1024

/* A record as a connector delivers it. Borrowed by tw_ingest_push. */
typedef struct tw_ingest_msg {
  uint32_t source;   /* index of the source (tw_ingest_source_add) */
  const char *topic; /* Kafka/MQTT topic, stream URL; NULL = "" */
  int32_t partition; /* Kafka partition; -1 without */
  int64_t offset;    /* position in the topic/partition; -1 without */
  int64_t source_ns; /* transport timestamp (Kafka CreateTime, a frame's
                        RTCP wall clock); INT64_MIN without */
  const void *key;
  size_t key_len;
  const tw_ingest_header *headers;
  size_t nheaders;
  const void *data;
  size_t len;
  uint32_t flags;
} tw_ingest_msg;

/* --- Sources ------------------------------------------------------------ */

/* Where a source's event time comes from. */
typedef enum tw_ingest_time {
  TW_INGEST_TIME_AUTO = 0, /* the record's time field, else the transport's
                              timestamp, else the ingest time */
  TW_INGEST_TIME_INGEST,   /* always the ingest (processing) time */
  TW_INGEST_TIME_SOURCE    /* the transport's timestamp; a record without
                              one is refused */
} tw_ingest_time;

typedef struct tw_ingest_source_opts {
  const char *name; /* the twin's source name (copied) */
  const char *kind; /* "kafka", "mqtt", "rtsp" (recorded; copied) */
  /* What the records carry (borrowed until tw_ingest_close). NULL:
   * records are recorded only (frames, or ingest without a twin). */
  const tw_stream_schema *schema;
  /* Where each schema field goes: the graph input index of field i, or
   * -1 for a field the twin does not read. n = the schema's fields. */
  const int *field_input;
  tw_ingest_time time;
  /* Maps the event time through this source's estimated clock (offset
   * and drift against the ingest time, twin/align.h) before aligning. */
  bool clock_map;
  tw_align_policy policy;          /* grid policy [HOLD_LAST] */
  int64_t max_out_of_orderness_ns; /* lateness bound [50 ms when 0] */
  int64_t tolerance_ns;            /* NEAREST / LINEAR */
  int64_t max_age_ns;              /* HOLD_LAST; 0 = unlimited */
  size_t capacity;                 /* aligner buffer [65536 when 0] */
  /* Resolves the schema id of a record in the Confluent wire format to the
   * writer's schema: its kind and text (tw_alloc'd, the pipeline frees
   * it). NULL: such records are refused. The text (or the error) is
   * recorded with the first record naming the id, so replays need no
   * registry. */
  int (*resolve)(void *ud, uint32_t schema_id, tw_stream_schema_kind *kind,
                 char **text, tw_err *err);
  void *resolve_ud;
} tw_ingest_source_opts;

/* Why a record was refused, for dead letters (Kafka Connect's fields). */
typedef struct tw_ingest_refusal {
  const char *stage;     /* "VALUE_CONVERTER", "HEADER_CONVERTER", ... */
  const char *exception; /* "org.apache.kafka.connect.errors.DataException" */
  const char *message;   /* the decoder's message, naming the field */
  int code;              /* the TW_E* code */
} tw_ingest_refusal;

/* --- Pipeline ------------------------------------------------------------ */

typedef struct tw_ingest tw_ingest;

typedef struct tw_ingest_opts {
  tw_graph *graph;         /* the twin's graph (borrowed; reset at the start) */
  const char *twin;        /* name recorded in the metadata */
  int64_t grid_start_ns;   /* 0: the first record's time, rounded up to dt */
  int64_t idle_timeout_ns; /* a source without records this long stops
                              holding the watermark [0: never] */
  /* Watermarks are kept per partition (Flink's per-split watermarks): a
   * source's watermark is the lowest of its assigned partitions', so a
   * backlog read one partition after another is aligned, not late. A
   * partition without records this long stops holding its source's
   * watermark [TW_INGEST_PARTITION_IDLE_DEFAULT_NS when 0; < 0: never]. */
  int64_t partition_idle_ns;
  /* Backpressure (Flink's watermark alignment): a partition ahead of its
   * source's watermark while the source's aligner buffer is more than
   * half full, or more than max_partition_drift_ns ahead (when > 0), is
   * paused through pause() until the buffer is below a quarter (or the
   * partition holds the watermark) and it is back within half that
   * drift; so a backlog read partition by partition never overflows the
   * buffer. Checked at every advance; replays with the same options take
   * the same decisions. [0: the buffer rule only; < 0: never pause] */
  int64_t max_partition_drift_ns;
  void (*pause)(void *ud, uint32_t source, const char *topic, int32_t partition,
                bool pause);
  /* The recording: a file (record_path ends in ".mcap") or a directory of
   * segments "rec-NNNNNN.mcap" (rotated at segment_bytes, the oldest
   * deleted beyond max_bytes). NULL: no recording (replays use this). */
  const char *record_path;
  uint64_t segment_bytes; /* [256 MiB when 0] */
  uint64_t max_bytes;     /* total kept in a directory [0: unbounded] */
  bool record_no_sync;    /* skip fsync at segment close (tests) */
  const char *trace_path; /* the run's output trace (graph trace), or NULL */
  /* Called for every refused record (after it is recorded) with the raw
   * message: connectors send it to their dead-letter topic. */
  void (*refused)(void *ud, const tw_ingest_msg *msg,
                  const tw_ingest_refusal *why);
  /* Called with every graph output row (output_width values) at tick. */
  void (*output)(void *ud, int64_t tick, int64_t time_ns,
                 const double *outputs);
  void *ud;
  int64_t max_ticks; /* stop stepping after this many ticks [0: none] */
} tw_ingest_opts;

#define TW_INGEST_PARTITION_IDLE_DEFAULT_NS ((int64_t)1000 * 1000 * 1000)

typedef struct tw_ingest_stats {
  uint64_t events;     /* records, advances and split events */
  uint64_t records;    /* records pushed */
  uint64_t bytes;      /* their payload bytes */
  uint64_t accepted;   /* decoded and aligned */
  uint64_t refused;    /* decode or validation failures (dead letters) */
  uint64_t duplicates; /* at or below a recorded position: dropped */
  uint64_t late;       /* behind the watermark (side output) */
  uint64_t frames;     /* frame records */
  uint64_t raw;        /* records of sources without a schema: recorded */
  uint64_t overflow;   /* refused by a full aligner buffer */
  uint64_t missing;    /* grid cells without a value (before a source's
                          first record): the input kept its last value */
  int64_t ticks;       /* graph ticks run */
  uint64_t segments;   /* recording segments opened */
  uint64_t segments_deleted;
  uint64_t recorded_bytes; /* bytes of messages recorded */
  int64_t watermark_ns;
  uint64_t splits; /* split events (partitions assigned or revoked) */
  uint64_t pauses; /* partitions paused for running ahead */
} tw_ingest_stats;

/* Creates a pipeline over opts->graph (required). Add sources, then push.
 * TW_EINVAL for bad options. */
TW_API int tw_ingest_new(const tw_ingest_opts *opts, tw_ingest **out,
                         tw_err *err);
/* Adds a source; its index goes to *index. Before the first push. */
TW_API int tw_ingest_source_add(tw_ingest *in, const tw_ingest_source_opts *o,
                                uint32_t *index, tw_err *err);

/* One record at ingest time now_ns (made non-decreasing). Returns TW_OK
 * when the record was recorded and handled (accepted, refused to the
 * callback, late, duplicate: see the stats); an error only when the
 * recording or the twin failed (I/O, a trap in a model), after which the
 * pipeline refuses everything. */
TW_API int tw_ingest_push(tw_ingest *in, const tw_ingest_msg *msg,
                          int64_t now_ns, tw_err *err);

/* A partition of a source's topic assigned to this consumer (assigned) or
 * revoked from it, at processing time now_ns: recorded, then the
 * partition's watermark holds its source's from now_ns until its first
 * record or its idle timeout (assigned), or stops counting (revoked).
 * Connectors call it before the first record of a partition they are
 * given (twin/kafka.h's on_assign). A partition that delivers records
 * without one counts from its first record. TW_EINVAL for an unknown
 * source, a NULL topic or a negative partition. */
TW_API int tw_ingest_split(tw_ingest *in, uint32_t source, const char *topic,
                           int32_t partition, bool assigned, int64_t now_ns,
                           tw_err *err);

/* The largest event time of the records of source's topic/partition so
 * far (INT64_MIN before the first): a connector reading partitions
 * separately reads the one furthest behind first (twin/kafka.h's rank). */
TW_API int64_t tw_ingest_partition_time(const tw_ingest *in, uint32_t source,
                                        const char *topic, int32_t partition);

/* Advances processing time: recorded, then the watermark moves and the
 * twin steps through every tick behind it. */
TW_API int tw_ingest_advance(tw_ingest *in, int64_t now_ns, tw_err *err);

/* The end of the input (recorded): the watermark moves to the latest
 * event time and the twin steps through every tick up to it. Later
 * records are late. A run ends with it; a replay repeats it. */
TW_API int tw_ingest_finish(tw_ingest *in, tw_err *err);

/* Hands the recording to the kernel (the point after which connectors
 * may commit what they pushed before). */
TW_API int tw_ingest_sync(tw_ingest *in, tw_err *err);

/* Finishes: closes the recording's last segment and the output trace.
 * Frees in whatever happens; NULL is a no-op. */
TW_API int tw_ingest_close(tw_ingest *in, tw_err *err);

TW_API void tw_ingest_stats_get(const tw_ingest *in, tw_ingest_stats *out);
/* The clock fit of source i (twin/align.h). */
TW_API int tw_ingest_clock_get(const tw_ingest *in, uint32_t source,
                               tw_align_clock_fit *fit, tw_err *err);

/* --- Replay -------------------------------------------------------------- */

/* Feeds the events of a recording (a file, or a directory of segments in
 * order) to in, which must have the recording's sources added in the
 * same order (names are checked) and no recording of its own. Segments
 * must be contiguous: a gap in event numbers (a deleted segment) is
 * TW_EVALIDATE unless allow_gap. */
TW_API int tw_ingest_replay(tw_ingest *in, const char *path, bool allow_gap,
                            tw_err *err);

/* The sources a recording names, in order ("kind:name"), as a JSON array
 * text in *out (tw_free it). */
TW_API int tw_ingest_recording_sources(const char *path, char **out,
                                       tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_INGEST_H */
