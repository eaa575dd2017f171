/*
 * live.h - a twin on live data: the stream connectors of a twin's live
 * sources feeding the ingest pipeline (twin/ingest.h), with dead letters,
 * commits after the recording, and the replay of a recording through the
 * same pipeline. Used by `twin compose up` (live sources), `twin ingest`
 * and `twin replay`.
 */
#ifndef TWIN_CLI_LIVE_H
#define TWIN_CLI_LIVE_H

#include "cli.h"
#include "twin/compose.h"
#include "twin/ingest.h"

typedef struct live_opts {
  tw_graph *graph;           /* NULL: record only (twin ingest) */
  const char *twin;          /* the twin's name */
  const char *record;        /* FILE.mcap or DIR of segments, or NULL */
  uint64_t segment_bytes;    /* rotation */
  uint64_t max_bytes;        /* bound of a directory */
  const char *trace;         /* the graph's output trace, or NULL */
  int64_t max_ticks;         /* stop after this many ticks (0: none) */
  double duration_s;         /* stop after this long (0: until a signal) */
  uint64_t max_records;      /* stop after this many records (0: none) */
  int64_t stop_idle_ns;      /* stop after this long without a record,
                                once one came (0: never) */
  int64_t idle_timeout_ns;   /* sources idle this long free the watermark */
  int64_t partition_idle_ns; /* partitions idle this long free their
                                source's watermark (< 0: never) */
  int64_t max_partition_drift_ns; /* partitions this far ahead of their
                                     source are paused (< 0: never) */
  int64_t out_of_order_ns;        /* bounded out-of-orderness of every source */
  int64_t sync_interval_ns;       /* advance + sync + commit period */
  const char *output_topic;       /* outputs produced to this Kafka topic */
  const char *client_id;          /* Kafka/MQTT client id prefix */
  bool json;                      /* --json: one line per tick with outputs */
  bool quiet;                     /* no per-tick lines */
} live_opts;

/* The options --record, --segment-size, --max-size, --duration,
 * --max-records, --stop-when-idle-ms, --idle-timeout-ms, --out-of-order-ms,
 * --partition-idle-ms, --max-partition-drift-ms,
 * --output-topic,
 * --json, --quiet and --trace of the command (those it has) into lo. */
int live_opts_of(cli_ctx *cli, const cli_args *args, live_opts *lo);

/* Runs the live sources of c (or, with c NULL, the n sources given) until
 * a stop condition; prints a summary. Returns a CLI exit code. */
int live_run(cli_ctx *cli, const live_opts *o, const tw_compose_source *srcs,
             size_t n);

/* Replays a recording through a pipeline built for the same sources;
 * expect (may be NULL) is a trace whose output channels must equal the
 * replay's bit for bit. */
int live_replay(cli_ctx *cli, const live_opts *o, const tw_compose_source *srcs,
                size_t n, const char *recording, bool allow_gap,
                const char *expect);

/* The live sources of a compiled twin (kafka, mqtt, rtsp), in file order,
 * into out (at most cap); returns how many, or -1 with err set when the
 * twin mixes them with a recording. */
int live_sources_of(const tw_compose *c, tw_compose_source *out, size_t cap,
                    tw_err *err);

#endif /* TWIN_CLI_LIVE_H */
