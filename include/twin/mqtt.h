/*
 * twin/mqtt.h - the MQTT connector of the ingest layer, over libmosquitto
 * (2.0): subscribes to topic filters, hands each message to the caller,
 * acknowledges it only when the caller says so, and publishes dead
 * letters and twin outputs (with MQTT v5 user properties).
 *
 * Driving. The connector has no thread: tw_mqtt_poll() drives the
 * network on the caller's thread (poll(2) on libmosquitto's socket, then
 * mosquitto_loop_read / _write / _misc) and never blocks longer than its
 * timeout, except for a name lookup (getaddrinfo) when it reconnects.
 * Messages libmosquitto decodes go into an internal queue, delivered to
 * the caller's callback by the same poll, in arrival order.
 *
 * Acknowledgement (at-least-once). libmosquitto 2.0.11 has no manual
 * acknowledgement (mosquitto_manual_ack_set / mosquitto_manual_ack are
 * not in it): it builds the PUBACK of a QoS 1 message itself, and an
 * application that is handed the message has no say. What it does allow
 * is holding outgoing packets: the connector marks the client as driven
 * by its own threads (mosquitto_threaded_set), so every packet, PUBACKs
 * included, waits in libmosquitto's outgoing queue until the connector
 * writes it. The connector writes nothing while a QoS 1 message it
 * received is not acknowledged with tw_mqtt_ack(); once every one is,
 * the queue goes out. Consequences:
 *  - a message is acknowledged to the broker only after the caller
 *    acknowledged it (and every message received before it): if the
 *    process dies or the connection drops first, the broker delivers it
 *    again (persistent session, QoS 1), flagged dup;
 *  - acknowledgements take effect in arrival order: an acknowledged
 *    message behind an unacknowledged one may be delivered again too
 *    (never fewer deliveries than exactly-once, possibly more);
 *  - while a message waits for its acknowledgement nothing else is
 *    written (publishes, keep-alive pings): acknowledge promptly. If a
 *    message stays unacknowledged beyond 1.5 keep-alive periods the
 *    broker drops the connection and redelivers it after the reconnect.
 * QoS 2 subscriptions are refused: libmosquitto 2.0 hands a QoS 2
 * message over only after its PUBREC is on the wire, so the broker would
 * consider it delivered before the caller saw it.
 *
 * Connections. tw_mqtt_new connects and subscribes within a bounded
 * wait. When the broker goes away, poll reconnects with exponential
 * backoff (reconnect_min_ms doubling to reconnect_max_ms); a
 * reconnection first checks with a non-blocking TCP connect that the
 * broker listens, so a dead broker never blocks a poll. After a
 * reconnect the filters are subscribed again unless the broker kept the
 * session. Persistent sessions (clean_start false, the default) carry a
 * session expiry interval in MQTT v5 (default: never expires).
 *
 * Errors. TW_EINVAL for bad options or an invalid topic filter (naming
 * it); TW_ECONN for a host that does not resolve or refuses TCP, or a
 * CONNACK refusal (its reason string); TW_EAUTH when the broker refuses
 * the credentials; TW_EPERM / TW_EPROTO for a subscription the broker
 * refuses (SUBACK reason); TW_ETIMEDOUT when the broker does not answer
 * in time. After tw_mqtt_new succeeded, network trouble is not an error
 * of poll: it reconnects, and tw_mqtt_stats() tells the state.
 *
 * Thread safety: a tw_mqtt is used by one thread at a time (the ingest
 * loop's). Distinct tw_mqtt objects are independent.
 */
#ifndef TWIN_MQTT_H
#define TWIN_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* An MQTT v5 user property: a UTF-8 name and value pair. */
typedef struct tw_mqtt_prop {
  const char *key;
  const char *value;
} tw_mqtt_prop;

typedef struct tw_mqtt_opts {
  const char *host; /* broker host name or address (required) */
  int port;         /* 0: 1883 */
  /* Client identifier; required for a persistent session (the broker
   * finds the session by it). NULL with clean_start: one is generated. */
  const char *client_id;
  bool clean_start;          /* false: persistent session (default) */
  int protocol;              /* 5: MQTT v5 (default), 311: MQTT v3.1.1 */
  int qos;                   /* subscription QoS: 1 (default) or 0 */
  const char *const *topics; /* subscription filters; + and # allowed */
  size_t ntopics;            /* 0: a publish-only connector */
  int keepalive_s;           /* 0: 30 (5 at least) */
  const char *username;      /* NULL: none */
  const char *password;      /* NULL: none */
  /* Payloads beyond this many bytes are delivered cut to it and flagged
   * oversize, for the caller to dead-letter them. 0: 1 MiB. */
  size_t max_payload;
  int reconnect_min_ms;   /* 0: 100 */
  int reconnect_max_ms;   /* 0: 10000 */
  int connect_timeout_ms; /* bound of tw_mqtt_new and of each attempt; 0:
                             10000 */
  /* MQTT v5 session expiry of a persistent session, in seconds; 0: never
   * expires. Ignored with clean_start or MQTT v3.1.1. */
  uint32_t session_expiry_s;
  /* Most messages received and not yet acknowledged (QoS 1) or
   * delivered (QoS 0); beyond it poll stops reading. 0: 1000. */
  size_t max_unacked;
} tw_mqtt_opts;

/* Fills o with the defaults above (every pointer NULL). */
TW_API void tw_mqtt_opts_init(tw_mqtt_opts *o);

typedef struct tw_mqtt_message {
  const char *topic;
  const void *payload; /* len bytes, followed by a NUL not counted */
  size_t len;
  size_t wire_len; /* payload size as sent; > len when oversize */
  int qos;
  bool retain;
  bool dup;      /* a redelivery the connector recognised (the broker
                    may redeliver others: see acknowledgement above) */
  bool oversize; /* wire_len > max_payload: payload is cut */
  uint64_t seq;  /* per connector, increasing from 0; the handle of ack */
  int mid;       /* MQTT packet identifier (0 for QoS 0) */
  const tw_mqtt_prop *props; /* v5 user properties, in order */
  size_t nprops;
} tw_mqtt_message;

/* Delivery callback. Everything msg points to is borrowed until the
 * callback returns. Return TW_OK to take the message; a negative code
 * stops the poll, which returns that code, and leaves the message queued
 * for the next poll (same seq) unless it was acknowledged meanwhile. The
 * callback may call tw_mqtt_ack and tw_mqtt_publish, not tw_mqtt_poll,
 * tw_mqtt_flush or tw_mqtt_free. */
typedef int (*tw_mqtt_message_cb)(void *ud, const tw_mqtt_message *msg);

typedef struct tw_mqtt tw_mqtt;

/* Checks o, connects, waits for the CONNACK and for the SUBACK of every
 * filter (at most connect_timeout_ms), and returns the connector in
 * *out. On failure *out is untouched and nothing stays open. */
TW_API int tw_mqtt_new(const tw_mqtt_opts *o, tw_mqtt **out, tw_err *err);

/* Closes the connection and frees m. With every received message
 * acknowledged it disconnects cleanly after writing what is queued;
 * otherwise it drops the connection without writing, so the broker
 * redelivers the unacknowledged messages to the next session. NULL is a
 * no-op. */
TW_API void tw_mqtt_free(tw_mqtt *m);

/* Runs the network for at most timeout_ms (0: one non-blocking round)
 * and delivers the messages received to cb(ud, msg); returns as soon as
 * at least one was delivered. *n (may be NULL) gets how many. Returns
 * TW_OK, the callback's code, TW_ELIMIT when max_unacked messages wait
 * for their acknowledgement, TW_EUSAGE when called from a callback. */
TW_API int tw_mqtt_poll(tw_mqtt *m, int timeout_ms, tw_mqtt_message_cb cb,
                        void *ud, size_t *n, tw_err *err);

/* Acknowledges the message of sequence number seq (tw_mqtt_message.seq):
 * its PUBACK goes out once every message received before it is
 * acknowledged too, at the next poll or flush. A message of a previous
 * connection (the broker redelivers it) or of QoS 0 needs nothing: TW_OK.
 * TW_EINVAL for a seq never delivered, TW_EEXIST for one acknowledged
 * already. */
TW_API int tw_mqtt_ack(tw_mqtt *m, uint64_t seq, tw_err *err);

/* Queues a message for topic (no wildcards) with QoS 0, 1 or 2 and the
 * nprops user properties (MQTT v5 only: TW_ENOTSUP in v3.1.1). The next
 * poll or flush sends it; QoS 1 and 2 messages survive reconnections
 * (libmosquitto resends them), a QoS 0 message while disconnected is
 * refused (TW_ECONN). */
TW_API int tw_mqtt_publish(tw_mqtt *m, const char *topic, const void *payload,
                           size_t len, int qos, bool retain,
                           const tw_mqtt_prop *props, size_t nprops,
                           tw_err *err);

/* Writes everything queued and waits (at most timeout_ms) until the
 * broker acknowledged every QoS 1/2 message published. TW_ETIMEDOUT
 * naming how many are missing; TW_EBUSY if received messages wait for
 * tw_mqtt_ack while output is queued (their acknowledgement holds it);
 * TW_EPERM / TW_EPROTO when the broker refused a publish since the last
 * flush (v5 reason code). */
TW_API int tw_mqtt_flush(tw_mqtt *m, int timeout_ms, tw_err *err);

typedef struct tw_mqtt_stats {
  uint64_t received;       /* messages delivered to the callback */
  uint64_t acked;          /* tw_mqtt_ack calls that acknowledged one */
  uint64_t redelivered;    /* messages flagged dup */
  uint64_t reconnects;     /* connections made after the first */
  uint64_t oversize;       /* messages flagged oversize */
  uint64_t published;      /* messages queued by tw_mqtt_publish */
  uint64_t publish_errors; /* refused by the client or by the broker */
  size_t unacked;          /* QoS 1 messages waiting for tw_mqtt_ack */
  size_t unconfirmed;      /* QoS 1/2 publishes not acknowledged yet */
  bool connected;          /* CONNACK received on the current connection */
  /* Why the last connection attempt or connection failed ("" if none);
   * borrowed from m until its next call. */
  const char *last_error;
} tw_mqtt_stats;

TW_API void tw_mqtt_stats_get(const tw_mqtt *m, tw_mqtt_stats *out);

TW_EXTERN_C_END

#endif /* TWIN_MQTT_H */
