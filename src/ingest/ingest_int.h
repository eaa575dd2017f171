/*
 * ingest_int.h - internals of the ingest pipeline: the recording's message
 * bodies (CDR) and the recorder with its segments.
 */
#ifndef TW_INGEST_INT_H
#define TW_INGEST_INT_H

#include "twin/buf.h"
#include "twin/ingest.h"
#include "twin/trace.h"

/* The ros2msg definitions of the recording's bodies. */
extern const char tw__ingest_record_msgdef[];
extern const char tw__ingest_clock_msgdef[];
#define TW__INGEST_RECORD_SCHEMA "twin_msgs/msg/IngestRecord"
#define TW__INGEST_CLOCK_SCHEMA "twin_msgs/msg/IngestClock"
#define TW__INGEST_CLOCK_TOPIC "/ingest/clock"
#define TW__INGEST_HEADERS_MAX TW_INGEST_HEADERS_MAX

/* A record body: the message plus its event number and ingest time. */
typedef struct tw__ingest_body {
  uint64_t event;
  int64_t ingest_ns;
  tw_ingest_msg msg;
} tw__ingest_body;

/* Appends the CDR encoding of a record / clock event to out. */
int tw__ingest_encode_record(tw_buf *out, uint64_t event, int64_t ingest_ns,
                             const tw_ingest_msg *m);
int tw__ingest_encode_clock(tw_buf *out, uint64_t event, int64_t now_ns);

/* Decodes a record body (pointers into data; headers into *hdrs, grown as
 * needed, freed by the caller). TW_EPARSE naming the problem. */
int tw__ingest_decode_record(const void *data, size_t len, tw__ingest_body *out,
                             tw_ingest_header **hdrs, size_t *hcap,
                             tw_err *err);
int tw__ingest_decode_clock(const void *data, size_t len, uint64_t *event,
                            int64_t *now_ns, tw_err *err);

/* The recorder: a file, or a directory of rotated segments. */
typedef struct tw__recorder tw__recorder;

typedef struct tw__recorder_source {
  const char *name;
  const char *kind;
} tw__recorder_source;

/* ["kind:name", ...] of the sources, as the recording's metadata says. */
char *tw__ingest_sources_json(const tw__recorder_source *src, size_t n);

int tw__recorder_open(const char *path, uint64_t segment_bytes,
                      uint64_t max_bytes, bool no_sync, const char *twin,
                      const tw__recorder_source *src, size_t nsrc,
                      tw__recorder **out, tw_err *err);
/* Writes one body on channel source (UINT32_MAX: the clock channel),
 * rotating first when the segment is full. */
int tw__recorder_write(tw__recorder *r, uint32_t source, uint64_t event,
                       int64_t log_ns, int64_t publish_ns, const void *data,
                       size_t len, tw_err *err);
/* Adds a Metadata record to the current segment. */
int tw__recorder_metadata(tw__recorder *r, const char *name,
                          const tw_trace_kv *kv, size_t n, tw_err *err);
/* Segments opened so far (a change after a write means it rotated). */
uint64_t tw__recorder_opened(const tw__recorder *r);
int tw__recorder_flush(tw__recorder *r, tw_err *err);
int tw__recorder_close(tw__recorder *r, tw_err *err);
void tw__recorder_counts(const tw__recorder *r, uint64_t *segments,
                         uint64_t *deleted, uint64_t *bytes);

/* The segment files of a recording in order: path itself when it is a
 * file, else the segments of the directory's latest run. */
int tw__recording_segments(const char *path, char ***files, size_t *n,
                           tw_err *err);
void tw__recording_segments_free(char **files, size_t n);

#endif /* TW_INGEST_INT_H */
