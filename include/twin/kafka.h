/*
 * twin/kafka.h - the Kafka connector of the ingest layer: a group consumer
 * with at-least-once commits, a producer for twin outputs, and dead
 * letters in Kafka Connect's format. Built on librdkafka's C API.
 *
 * Consuming. tw_kafka_consumer_poll() hands records to a callback. The
 * caller keeps the raw record (say, in a file) and only then calls
 * tw_kafka_consumer_mark() for it; tw_kafka_consumer_commit() commits the
 * marked positions synchronously (offset + 1 of the highest mark of each
 * partition). A record that was polled but not marked is never committed,
 * so after a crash, a restart or a rebalance it is delivered again: at
 * least once, duplicates only among the unmarked. Offsets are never
 * committed automatically (enable.auto.commit and enable.auto.offset.store
 * are off and cannot be turned on).
 *
 * Rebalances are handled inside poll: before partitions are revoked, the
 * marks of those partitions are committed synchronously; marks for a
 * partition the consumer no longer owns are dropped (counted in
 * marks_dropped), as its new owner receives those records again. Lost
 * partitions (the session expired) commit nothing.
 *
 * Errors. Every function returns TW_OK or a negative TW_E* code with a
 * message in err that names the thing and carries the broker's words:
 *  - TW_EINVAL: bad options, an unknown librdkafka property (named), a
 *    bad value, a property the connector owns;
 *  - TW_ENOENT: a subscribed or produced-to topic that does not exist
 *    ("topic 'x' does not exist: ...");
 *  - TW_ECONN: no broker reachable for unreachable_ms;
 *  - TW_EAUTH: authentication (SASL, SSL) failed; TW_EPERM: the broker
 *    refused access to a topic or group;
 *  - TW_ETIMEDOUT: a flush or commit did not finish in time;
 *  - TW_EIO / TW_EPROTO: other broker or client errors.
 * Transient transport errors (a broker restarting, a connection reset)
 * are not errors: librdkafka reconnects and retries, and they are counted
 * in transport_errors.
 *
 * Thread safety: a consumer or a producer is used by one thread at a time
 * (callbacks run on that thread, inside poll, commit or close). Distinct
 * objects may be used from distinct threads. Records and their headers
 * are borrowed: valid only during the callback that receives them.
 */
#ifndef TWIN_KAFKA_H
#define TWIN_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* One record header. value may be NULL (a null header, len 0). */
typedef struct tw_kafka_header {
  const char *name;
  const void *value;
  size_t len;
} tw_kafka_header;

/* Timestamp kinds of a record. */
#define TW_KAFKA_TS_NONE 0
#define TW_KAFKA_TS_CREATE 1
#define TW_KAFKA_TS_LOG_APPEND 2

/* A consumed record, borrowed from the consumer during the callback. A
 * NULL key or value is Kafka's null (a tombstone for the value). */
typedef struct tw_kafka_record {
  const char *topic;
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms; /* -1 when timestamp_type is TW_KAFKA_TS_NONE */
  int timestamp_type;   /* TW_KAFKA_TS_* */
  const void *key;
  size_t key_len;
  const void *value;
  size_t len;  /* bytes at value (at most max_record_bytes) */
  size_t size; /* the value's size in the log (> len when oversize) */
  /* The value exceeds max_record_bytes: value holds its first len bytes
   * only. The caller should dead-letter it rather than decode it. */
  bool oversize;
  const tw_kafka_header *headers;
  size_t nheaders;
} tw_kafka_record;

typedef struct tw_kafka_consumer_opts {
  const char *brokers;       /* bootstrap.servers, "host:port,..." (required) */
  const char *group;         /* group.id (required) */
  const char *client_id;     /* NULL: "twin" */
  const char *const *topics; /* ntopics >= 1 existing topics */
  size_t ntopics;
  /* Where a partition without a committed offset starts: "earliest"
   * (NULL, the default) or "latest". */
  const char *offset_reset;
  /* Larger values are delivered truncated with .oversize set; 0: 1 MiB. */
  size_t max_record_bytes;
  /* How long every broker may stay unreachable before poll fails with
   * TW_ECONN (until one answers again); 0: 30000 ms. */
  int unreachable_ms;
  /* Extra librdkafka properties as "key=value" strings, applied last. */
  const char *const *config;
  size_t nconfig;
  /* Called inside tw_kafka_consumer_poll, on its thread, for every
   * partition assigned to this consumer (assigned true, before any of its
   * records) or revoked from it (false, after its last one); not while
   * closing. NULL: not called. */
  void (*on_assign)(void *ud, const char *topic, int32_t partition,
                    bool assigned);
  void *assign_ud;
  /* With a rank, every assigned partition's records wait on a queue of
   * its own and poll reads next the partition whose rank is lowest among
   * those with records waiting (called once per batch of up to 256 from
   * one partition): given each partition's latest event time, a backlog
   * is read in event-time order across partitions, as Kafka Streams'
   * timestamp synchronisation does, instead of one partition's prefetch
   * after another's. NULL: librdkafka's order. */
  int64_t (*rank)(void *ud, const char *topic, int32_t partition);
  void *rank_ud;
} tw_kafka_consumer_opts;

/* Counters since the consumer was made. */
typedef struct tw_kafka_consumer_stats {
  uint64_t records;          /* handed to callbacks */
  uint64_t bytes;            /* key + value bytes of those records */
  uint64_t oversize;         /* records delivered with .oversize */
  uint64_t marks;            /* tw_kafka_consumer_mark calls that counted */
  uint64_t marks_dropped;    /* marks of partitions not owned */
  uint64_t commits;          /* successful commit requests */
  uint64_t commit_errors;    /* failed commit requests (also on revoke) */
  uint64_t rebalances;       /* assignments and revocations */
  uint64_t partitions_lost;  /* partitions revoked as lost */
  uint64_t transport_errors; /* transient errors, retried by librdkafka */
  uint64_t pauses;           /* partitions paused (tw_kafka_consumer_pause) */
} tw_kafka_consumer_stats;

typedef struct tw_kafka_consumer tw_kafka_consumer;

/* Makes a consumer and subscribes it to o->topics in group o->group (the
 * group is joined on the first poll). TW_EINVAL for missing options, an
 * unknown or invalid property (named) or one the connector owns
 * (enable.auto.commit, enable.auto.offset.store, group.id,
 * bootstrap.servers); *out is untouched on failure. */
TW_API int tw_kafka_consumer_new(const tw_kafka_consumer_opts *o,
                                 tw_kafka_consumer **out, tw_err *err);

/* The callback of poll: returning non-zero stops the poll, which returns
 * that value. r is borrowed until the callback returns. */
typedef int (*tw_kafka_record_cb)(void *ud, const tw_kafka_record *r);

/* Waits up to timeout_ms (>= 0) for records and hands at most max (>= 1)
 * to cb, each partition's in offset order; once one has come, it takes
 * only what is already fetched. Serves rebalances. *n (may be NULL) is
 * the number of records handed over, also on error. Returns TW_OK (also
 * when none came), cb's non-zero value, or an error (TW_ENOENT for a
 * subscribed topic that does not exist, TW_ECONN, TW_EAUTH, ...; see the
 * top of this file). */
TW_API int tw_kafka_consumer_poll(tw_kafka_consumer *c, int timeout_ms,
                                  size_t max, tw_kafka_record_cb cb, void *ud,
                                  size_t *n, tw_err *err);

/* Marks the record at (topic, partition, offset) processed: the next
 * commit stores offset + 1 for the partition, unless a higher offset was
 * marked already. A partition the consumer does not own (any more) is
 * ignored and counted in marks_dropped; TW_OK either way. TW_EINVAL for a
 * negative offset or partition. */
/* Stops fetching topic/partition (pause) or starts again (resume), for
 * backpressure (twin/ingest.h's pause callback). Records already fetched
 * are dropped by librdkafka and fetched again from the position after the
 * last one delivered. A partition this consumer does not own is ignored
 * (a revocation may have come first). TW_EINVAL for a NULL topic or a
 * negative partition. */
TW_API int tw_kafka_consumer_pause(tw_kafka_consumer *c, const char *topic,
                                   int32_t partition, bool pause, tw_err *err);

TW_API int tw_kafka_consumer_mark(tw_kafka_consumer *c, const char *topic,
                                  int32_t partition, int64_t offset,
                                  tw_err *err);

/* Commits every marked position not yet committed, synchronously. A
 * no-op (no request) when nothing new is marked. On error the marks stay
 * and the next commit tries again. */
TW_API int tw_kafka_consumer_commit(tw_kafka_consumer *c, tw_err *err);

/* The same without waiting for the broker's answer (Kafka Connect's
 * habit on its commit interval): the request is sent and the answer,
 * served by a later poll, moves the committed positions or counts a
 * commit error (the marks stay, and the next commit sends them again).
 * What was marked is recorded already, so an unanswered commit only means
 * re-delivery after a restart, which positions deduplicate. */
TW_API int tw_kafka_consumer_commit_async(tw_kafka_consumer *c, tw_err *err);

/* Commits the marked positions, leaves the group and frees c, also when
 * the commit fails (which is returned). c may be NULL. */
TW_API int tw_kafka_consumer_close(tw_kafka_consumer *c, tw_err *err);

TW_API void tw_kafka_consumer_stats_get(const tw_kafka_consumer *c,
                                        tw_kafka_consumer_stats *out);

/* --- Producer ------------------------------------------------------------ */

typedef struct tw_kafka_producer_opts {
  const char *brokers;   /* bootstrap.servers (required) */
  const char *client_id; /* NULL: "twin" */
  /* false (the default): enable.idempotence=true and acks=all, so retries
   * never write a record twice nor reorder a partition. true: plain
   * producer with librdkafka's defaults. */
  bool no_idempotence;
  int linger_ms; /* 0: 5 ms; > 0: that */
  /* How long send waits for room when the local queue is full before
   * TW_EBUSY; 0: 10000 ms. */
  int queue_wait_ms;
  const char *const *config; /* extra "key=value" properties, applied last */
  size_t nconfig;
} tw_kafka_producer_opts;

typedef struct tw_kafka_producer_stats {
  uint64_t sent;      /* records accepted by send */
  uint64_t bytes;     /* their key + value bytes */
  uint64_t delivered; /* delivery reports: acknowledged */
  uint64_t failed;    /* delivery reports: failed */
} tw_kafka_producer_stats;

typedef struct tw_kafka_producer tw_kafka_producer;

/* Makes a producer. Errors as tw_kafka_consumer_new (the connector owns
 * bootstrap.servers, and enable.idempotence and acks unless
 * no_idempotence). */
TW_API int tw_kafka_producer_new(const tw_kafka_producer_opts *o,
                                 tw_kafka_producer **out, tw_err *err);

/* Queues one record (key, value and headers are copied) for topic, on
 * partition (>= 0) or the key's partition (-1). Asynchronous: its
 * delivery is known at the next flush. TW_EBUSY if the local queue stayed
 * full for queue_wait_ms; TW_EINVAL for bad arguments; TW_ENOENT for a
 * partition the topic does not have. */
TW_API int tw_kafka_producer_send(tw_kafka_producer *p, const char *topic,
                                  int32_t partition, const void *key,
                                  size_t key_len, const void *value, size_t len,
                                  const tw_kafka_header *headers,
                                  size_t nheaders, tw_err *err);

/* Waits up to timeout_ms for every queued record's delivery. TW_ETIMEDOUT
 * if some are still outstanding; else an error naming the first failed
 * delivery (topic, partition, the broker's words; TW_ENOENT for an
 * unknown topic) and how many failed, if any failed since the last flush;
 * else TW_OK. */
TW_API int tw_kafka_producer_flush(tw_kafka_producer *p, int timeout_ms,
                                   tw_err *err);

/* Frees p, waiting up to 5 s for outstanding deliveries. p may be NULL. */
TW_API void tw_kafka_producer_free(tw_kafka_producer *p);

TW_API void tw_kafka_producer_stats_get(const tw_kafka_producer *p,
                                        tw_kafka_producer_stats *out);

/* --- Dead letters -------------------------------------------------------- */

/* Why a record is dead-lettered, as Kafka Connect's error headers say it.
 * NULL strings take the defaults given. */
typedef struct tw_kafka_error_info {
  const char *connector;  /* __connect.errors.connector.name; "twin" */
  int task_id;            /* __connect.errors.task.id */
  const char *stage;      /* __connect.errors.stage; "VALUE_CONVERTER" */
  const char *class_name; /* __connect.errors.class.name; "twin.stream" */
  int code; /* the TW_E* code of the failure (e.g. TW_EVALIDATE) */
  /* __connect.errors.exception.class.name; "twin.E<NAME>" of code */
  const char *exception_class;
  const char *message;    /* __connect.errors.exception.message; strerror */
  const char *stacktrace; /* __connect.errors.exception.stacktrace; omitted */
} tw_kafka_error_info;

/* Sends orig to dlq_topic as Kafka Connect's DeadLetterQueueReporter
 * does: the original key, value (what the record holds; the first
 * max_record_bytes of an oversize one), create timestamp and headers,
 * followed by __connect.errors.topic, .partition, .offset,
 * .connector.name, .task.id, .stage, .class.name, .exception.class.name,
 * .exception.message and (when given) .exception.stacktrace, all UTF-8
 * strings. Original headers named __connect.errors.* are replaced. Like
 * send, asynchronous: flush before marking the record processed. */
TW_API int tw_kafka_dead_letter(tw_kafka_producer *p, const char *dlq_topic,
                                const tw_kafka_record *orig,
                                const tw_kafka_error_info *why, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_KAFKA_H */
