/*
 * trace.h - traces as MCAP files: the one recording format of Twin (traces
 * of runs, recorded telemetry, replay).
 *
 * The files follow the MCAP specification (https://mcap.dev/spec) and open
 * in the reference tools (the `mcap` Python package, @mcap/core, the mcap
 * CLI, Foxglove). A writer produces chunked files: messages are batched in
 * chunks of at most chunk_size uncompressed bytes, compressed with zstd or
 * stored as is, each followed by its message indexes; closing the writer
 * adds the summary section (schemas, channels, statistics, chunk,
 * attachment and metadata indexes), the summary offsets and the footer.
 * Every chunk carries the CRC-32 of its uncompressed records, DataEnd the
 * CRC-32 of the whole data section, and the footer that of the summary.
 *
 * Nothing is ever written half-way: a writer writes to PATH.partial (locked
 * against a second writer) and renames it over PATH only once the footer
 * and the trailing magic are written and synced. A failed close and
 * tw_trace_writer_abort remove the partial file; a crashed process leaves
 * only PATH.partial, which the next writer of PATH replaces.
 *
 * A reader validates the magic at both ends and the footer, reads the
 * summary (checking its CRC) or, for a file without one, scans the data
 * section linearly, and iterates messages in log-time order through the
 * chunk and message indexes, checking each chunk's CRC as it decompresses
 * it. Files are hostile input: every length is bounded by the file and by
 * the limits in tw_trace_reader_opts, and any inconsistency is TW_EPARSE
 * with a message naming the byte offset ("run.mcap: at byte 4242: chunk
 * CRC mismatch ..."), never a crash, a hang or a read out of bounds.
 *
 * Port channels are Twin's convenience on top: one channel per traced port
 * (a named f64 vector with a unit, as tw_port in sim.h), whose messages are
 * {"t": T, "value": [...]} in JSON with a generated JSON Schema, or the same
 * sample in ROS 2 CDR (a compact binary encoding the MCAP tools and
 * Foxglove decode natively). docs/adr/0005-mcap-traces.md explains the
 * choices; docs/internals/trace.md the invariants.
 *
 * Thread safety: a writer, a reader and its iterators each belong to one
 * thread at a time. Separate readers of one file may run concurrently.
 */
#ifndef TWIN_TRACE_H
#define TWIN_TRACE_H

#include <stdbool.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* --- Common types --------------------------------------------------------- */

/* Chunk compression. */
typedef enum tw_trace_compression {
  TW_TRACE_COMPRESSION_NONE = 0, /* chunk records stored as is ("") */
  TW_TRACE_COMPRESSION_ZSTD = 1  /* "zstd" */
} tw_trace_compression;

/* One key/value pair of a channel's or a metadata record's map. */
typedef struct tw_trace_kv {
  const char *key;
  const char *value;
} tw_trace_kv;

/* Well-known encodings (the MCAP registry). */
#define TW_TRACE_SCHEMA_JSONSCHEMA "jsonschema"
#define TW_TRACE_SCHEMA_ROS2MSG "ros2msg"
#define TW_TRACE_MESSAGE_JSON "json"
#define TW_TRACE_MESSAGE_CDR "cdr"

/* --- Writer --------------------------------------------------------------- */

typedef struct tw_trace_writer tw_trace_writer;

#define TW_TRACE_CHUNK_SIZE_DEFAULT ((size_t)1 << 20)
#define TW_TRACE_ZSTD_LEVEL_DEFAULT 1

typedef struct tw_trace_writer_opts {
  /* TW_TRACE_COMPRESSION_ZSTD unless set otherwise. */
  tw_trace_compression compression;
  /* zstd level, 1 (fastest, the default) to 19; negative levels are
   * zstd's faster modes, down to -7. */
  int zstd_level;
  /* Uncompressed bytes a chunk holds at most (a single larger message
   * gets a chunk of its own). 0 means TW_TRACE_CHUNK_SIZE_DEFAULT. */
  size_t chunk_size;
  /* The Header's profile ("" by default) and library ("twin VERSION"). */
  const char *profile;
  const char *library;
  /* Writes 0 ("not available") for every CRC instead of computing it. */
  bool no_crc;
  /* Ends the file with DataEnd and a footer only: no summary section, no
   * summary offsets (readers then scan the data section). */
  bool no_summary;
  /* Skips the fsync(2) of the file and its directory at close: for scratch
   * files and benchmarks, not for traces that must survive a power cut. */
  bool no_sync;
} tw_trace_writer_opts;

/* Fills o with the defaults above. */
TW_API void tw_trace_writer_opts_init(tw_trace_writer_opts *o);

/* Starts a trace that will appear at path on a successful close: creates
 * and locks path.partial (replacing a stale one a crashed writer left) and
 * writes the magic and the Header. opts may be NULL for the defaults; it is
 * copied. Errors: TW_EINVAL (bad option), TW_EBUSY (another writer holds
 * path.partial), I/O errors naming the path, TW_ENOMEM. *out is set only on
 * success; free it with tw_trace_writer_close or tw_trace_writer_abort. */
TW_API int tw_trace_writer_open(const char *path,
                                const tw_trace_writer_opts *opts,
                                tw_trace_writer **out, tw_err *err);

/* Registers a schema (encoding e.g. TW_TRACE_SCHEMA_JSONSCHEMA, data of
 * len bytes, copied) and sets *id (1..65535). A schema equal in name,
 * encoding and data to one registered before gets that one's id. Errors:
 * TW_ELIMIT (65535 schemas), TW_EINVAL (a string or data over 4 GiB). */
TW_API int tw_trace_writer_add_schema(tw_trace_writer *w, const char *name,
                                      const char *encoding, const void *data,
                                      size_t len, uint16_t *id, tw_err *err);

/* Registers a channel on topic with the given message encoding, schema
 * (0 for none, else an id from add_schema) and metadata map (n pairs,
 * copied; keys should be unique), and sets *id (1..65535). */
TW_API int tw_trace_writer_add_channel(tw_trace_writer *w, const char *topic,
                                       const char *message_encoding,
                                       uint16_t schema_id,
                                       const tw_trace_kv *metadata, size_t n,
                                       uint16_t *id, tw_err *err);

/* Writes one message of len bytes (copied) on channel. Times are in
 * nanoseconds since an epoch the user chooses (the MCAP convention);
 * messages need not come in time order. TW_EINVAL for an unknown channel. */
TW_API int tw_trace_writer_write(tw_trace_writer *w, uint16_t channel,
                                 uint32_t sequence, uint64_t log_time,
                                 uint64_t publish_time, const void *data,
                                 size_t len, tw_err *err);

/* Writes a Metadata record (name and n key/value pairs) to the data
 * section, indexed in the summary. */
TW_API int tw_trace_writer_add_metadata(tw_trace_writer *w, const char *name,
                                        const tw_trace_kv *kv, size_t n,
                                        tw_err *err);

/* Writes an Attachment record (with its CRC) to the data section, indexed
 * in the summary. create_time may be 0 when unknown. */
TW_API int tw_trace_writer_add_attachment(tw_trace_writer *w, const char *name,
                                          const char *media_type,
                                          uint64_t log_time,
                                          uint64_t create_time,
                                          const void *data, size_t len,
                                          tw_err *err);

/* Ends the current chunk and hands everything buffered to the kernel (no
 * fsync), so a reader of path.partial sees every message written so far. */
TW_API int tw_trace_writer_flush(tw_trace_writer *w, tw_err *err);

/* Finishes the trace: the last chunk, DataEnd, the summary, the footer,
 * fsync, rename of path.partial to path and fsync of the directory. Frees
 * w whatever happens; on failure path.partial is removed and path is left
 * as it was. NULL is a no-op returning TW_OK. */
TW_API int tw_trace_writer_close(tw_trace_writer *w, tw_err *err);

/* Discards the trace: removes path.partial and frees w. NULL is a no-op. */
TW_API void tw_trace_writer_abort(tw_trace_writer *w);

/* After any failed call on w: true when w can no longer write (an I/O
 * error or a failed chunk left the file inconsistent), so the only thing
 * left is close (which then fails and removes the partial file) or abort.
 * Failures on bad arguments or memory leave w usable. */
TW_API bool tw_trace_writer_failed(const tw_trace_writer *w);

/* --- Port channels -------------------------------------------------------- */

/* How a port's samples are encoded. */
typedef enum tw_trace_encoding {
  /* {"t":T,"value":[v0,...]}, JSON Schema per channel; numbers printed
   * with 17 significant digits (exact round trip), non-finite values as
   * null (read back as NaN). */
  TW_TRACE_ENCODING_JSON = 0,
  /* ROS 2 CDR, little-endian, of the ros2msg "float64 t / float64[]
   * value": 20 + 8*size bytes, values bit-exact. */
  TW_TRACE_ENCODING_CDR = 1
} tw_trace_encoding;

/* A traced port: the fields of sim.h's tw_port plus the channel topic. */
typedef struct tw_trace_port {
  const char *topic; /* "/cart/position"; required, non-empty */
  const char *unit;  /* "m", "" or NULL for dimensionless */
  size_t size;       /* values per sample, 1..2^24 */
} tw_trace_port;

/* Adds a channel for port with a schema generated from it (schemas are
 * shared by ports of equal unit, size and encoding) and the channel
 * metadata {"twin.unit": unit, "twin.size": "N"}; sets *channel. */
TW_API int tw_trace_writer_add_port(tw_trace_writer *w,
                                    const tw_trace_port *port,
                                    tw_trace_encoding encoding,
                                    uint16_t *channel, tw_err *err);

/* Writes one sample of a port channel: t (the sample's time in seconds, in
 * the message body) and n == the port's size values, at log_time (also the
 * publish time). The sequence number counts the channel's samples from 0.
 * TW_EINVAL for a channel that is not a port or a wrong n. */
TW_API int tw_trace_writer_write_port(tw_trace_writer *w, uint16_t channel,
                                      uint64_t log_time, double t,
                                      const double *value, size_t n,
                                      tw_err *err);

/* --- Reader --------------------------------------------------------------- */

typedef struct tw_trace_reader tw_trace_reader;

typedef struct tw_trace_reader_opts {
  /* Largest record read into memory (default 1 GiB): a longer one is
   * TW_ELIMIT. */
  uint64_t max_record;
  /* Largest uncompressed chunk (default 256 MiB): TW_ELIMIT beyond. */
  uint64_t max_chunk;
  /* Decompressed bytes one iterator holds at once (default 1 GiB); only
   * files whose chunks overlap in time make it hold more than one or two
   * chunks. TW_ELIMIT beyond. */
  uint64_t max_loaded;
  /* Runs tw_trace_reader_verify at open. */
  bool verify;
} tw_trace_reader_opts;

/* Fills o with the defaults above. */
TW_API void tw_trace_reader_opts_init(tw_trace_reader_opts *o);

/* A schema; strings and data are borrowed from the reader. Strings are
 * NUL-terminated copies (a string holding a NUL byte reads as cut there). */
typedef struct tw_trace_schema {
  uint16_t id;
  const char *name;
  const char *encoding;
  const uint8_t *data;
  size_t len;
} tw_trace_schema;

/* A channel, borrowed from the reader. message_count is from the
 * Statistics record when it has per-channel counts, or counted by a linear
 * scan; has_count says whether it is known. */
typedef struct tw_trace_channel {
  uint16_t id;
  uint16_t schema_id; /* 0: no schema */
  const char *topic;
  const char *message_encoding;
  const tw_trace_kv *metadata;
  size_t n_metadata;
  uint64_t message_count;
  bool has_count;
} tw_trace_channel;

/* The Statistics record's fields (or what a scan counted). */
typedef struct tw_trace_stats {
  uint64_t message_count;
  uint16_t schema_count;
  uint32_t channel_count;
  uint32_t attachment_count;
  uint32_t metadata_count;
  uint32_t chunk_count;
  uint64_t message_start_time;
  uint64_t message_end_time;
} tw_trace_stats;

/* What a reader found; borrowed from it. */
typedef struct tw_trace_info {
  const char *profile; /* from the Header */
  const char *library;
  uint64_t file_size;
  bool has_summary;    /* the footer points to a summary section */
  bool has_statistics; /* stats come from a Statistics record ... */
  bool scanned;        /* ... or the data section was scanned at open */
  bool indexed;        /* messages are found through chunk indexes */
  tw_trace_stats stats;
} tw_trace_info;

/* A Metadata record, borrowed from the reader. */
typedef struct tw_trace_metadata {
  const char *name;
  const tw_trace_kv *kv;
  size_t n;
} tw_trace_metadata;

/* An attachment's index entry, borrowed from the reader. */
typedef struct tw_trace_attachment {
  const char *name;
  const char *media_type;
  uint64_t log_time;
  uint64_t create_time;
  uint64_t size;   /* bytes of data */
  uint64_t offset; /* of the Attachment record in the file */
} tw_trace_attachment;

/* Opens the MCAP file at path (see the top of this file for what is
 * checked) with opts (NULL for the defaults; copied). Errors: TW_ENOENT,
 * TW_EPERM, TW_EIO (naming the path), TW_EPARSE (not MCAP, truncated,
 * corrupt: with the byte offset), TW_ELIMIT, TW_ENOTSUP (lz4 or another
 * compression Twin does not read), TW_ENOMEM. *out is set only on
 * success; close it with tw_trace_reader_close. */
TW_API int tw_trace_reader_open(const char *path,
                                const tw_trace_reader_opts *opts,
                                tw_trace_reader **out, tw_err *err);

/* As tw_trace_reader_open on the len bytes at data, which the reader
 * borrows: they must stay unchanged until it is closed. name is used in
 * messages (NULL: "<memory>"). */
TW_API int tw_trace_reader_open_mem(const void *data, size_t len,
                                    const char *name,
                                    const tw_trace_reader_opts *opts,
                                    tw_trace_reader **out, tw_err *err);

/* Closes the file and frees r, which must have no live iterators. NULL is
 * a no-op. */
TW_API void tw_trace_reader_close(tw_trace_reader *r);

/* Reads the whole data section: checks its structure, its CRC (in
 * DataEnd), every chunk's CRC and decompressed size, every attachment's
 * CRC, that channels and schemas repeated in the summary are identical,
 * and that the Statistics record counts what is there. TW_OK or the first
 * problem as TW_EPARSE with its byte offset. */
TW_API int tw_trace_reader_verify(tw_trace_reader *r, tw_err *err);

TW_API const tw_trace_info *tw_trace_reader_info(const tw_trace_reader *r);

/* Schemas and channels in increasing id order: _count and _at(i) list
 * them, _get finds one by id (NULL if absent), _find a channel by topic
 * (the lowest id of that topic, NULL if none). */
TW_API size_t tw_trace_reader_schema_count(const tw_trace_reader *r);
TW_API const tw_trace_schema *
tw_trace_reader_schema_at(const tw_trace_reader *r, size_t i);
TW_API const tw_trace_schema *
tw_trace_reader_schema_get(const tw_trace_reader *r, uint16_t id);
TW_API size_t tw_trace_reader_channel_count(const tw_trace_reader *r);
TW_API const tw_trace_channel *
tw_trace_reader_channel_at(const tw_trace_reader *r, size_t i);
TW_API const tw_trace_channel *
tw_trace_reader_channel_get(const tw_trace_reader *r, uint16_t id);
TW_API const tw_trace_channel *
tw_trace_reader_channel_find(const tw_trace_reader *r, const char *topic);

/* Metadata records and attachments, in file order. */
TW_API size_t tw_trace_reader_metadata_count(const tw_trace_reader *r);
TW_API const tw_trace_metadata *
tw_trace_reader_metadata_at(const tw_trace_reader *r, size_t i);
TW_API size_t tw_trace_reader_attachment_count(const tw_trace_reader *r);
TW_API const tw_trace_attachment *
tw_trace_reader_attachment_at(const tw_trace_reader *r, size_t i);

/* Appends attachment i's data to out after checking the record against
 * its index entry and its CRC. On failure out is unchanged. */
TW_API int tw_trace_reader_attachment_read(tw_trace_reader *r, size_t i,
                                           tw_buf *out, tw_err *err);

/* --- Iterating messages --------------------------------------------------- */

typedef struct tw_trace_iter tw_trace_iter;

/* Which messages: those on the n_channels channels listed (all channels
 * when n_channels is 0) with start_time <= log_time <= end_time. */
typedef struct tw_trace_query {
  const uint16_t *channels;
  size_t n_channels;
  uint64_t start_time;
  uint64_t end_time;
} tw_trace_query;

#define TW_TRACE_QUERY_ALL                                                     \
  { NULL, 0, 0, UINT64_MAX }

/* A message; data is borrowed from the iterator until its next call or
 * its free. */
typedef struct tw_trace_message {
  uint16_t channel_id;
  uint32_t sequence;
  uint64_t log_time;
  uint64_t publish_time;
  const uint8_t *data;
  size_t len;
} tw_trace_message;

/* Starts iterating the messages q selects (NULL: all) in log-time order;
 * equal times come in file order. An indexed file is read through its
 * chunk indexes and, where present, its message indexes (chunks without a
 * selected channel are not read); a file without chunk indexes through its
 * linear scan. TW_ENOENT for a listed channel the file does not have. */
TW_API int tw_trace_iter_new(tw_trace_reader *r, const tw_trace_query *q,
                             tw_trace_iter **out, tw_err *err);

/* Fetches the next message into *msg. Returns 1 when *msg holds one, 0 at
 * the end, or a negative error (TW_EPARSE with the byte offset for corrupt
 * data, TW_ELIMIT, TW_ENOMEM, TW_EIO), after which every call returns that
 * error again. */
TW_API int tw_trace_iter_next(tw_trace_iter *it, tw_trace_message *msg,
                              tw_err *err);

/* NULL is a no-op. */
TW_API void tw_trace_iter_free(tw_trace_iter *it);

/* --- Decoding port samples ------------------------------------------------ */

/* Decodes a port sample of channel ch (encoding "json" or "cdr" as written
 * by tw_trace_writer_write_port): *t gets the time, value[0..cap) the
 * values, *n their number. TW_ERANGE (with *n set) when cap is too small,
 * TW_EPARSE for a body that is not a port sample, TW_ENOTSUP for another
 * encoding. */
TW_API int tw_trace_port_decode(const tw_trace_channel *ch, const void *data,
                                size_t len, double *t, double *value,
                                size_t cap, size_t *n, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_TRACE_H */
