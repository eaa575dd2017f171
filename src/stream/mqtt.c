/*
 * mqtt.c - the MQTT connector (twin/mqtt.h) over libmosquitto 2.0,
 * driven from tw_mqtt_poll on the caller's thread.
 *
 * Invariants:
 *  - libmosquitto is marked threaded (mosquitto_threaded_set), so it
 *    never writes on its own: every packet waits in its outgoing queue
 *    until io_round() calls mosquitto_loop_write, which it does only
 *    when no received QoS 1 message waits for tw_mqtt_ack (hold == 0).
 *    That is what makes the PUBACK of a message follow the caller's
 *    acknowledgement (this libmosquitto has no manual acknowledgement).
 *  - pend holds, in seq order, the QoS 1 messages received on the
 *    current connection whose PUBACK has not been released; hold counts
 *    the unacknowledged ones. Losing the connection empties it: the
 *    broker redelivers those messages (their PUBACKs were never sent and
 *    libmosquitto drops its stale outgoing queue when it reconnects).
 *  - q holds the messages received and not yet taken by the callback, in
 *    arrival order; each owns one allocation (topic, payload, props).
 *  - Nothing blocks beyond the caller's timeout except getaddrinfo and
 *    mosquitto_connect_bind_v5 after a successful non-blocking TCP probe
 *    of the broker (libmosquitto 2.0 offers no asynchronous connect that
 *    carries MQTT v5 CONNECT properties, which persistent v5 sessions
 *    need for their expiry interval).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/mqtt.h"

#define DEFAULT_PORT 1883
#define DEFAULT_KEEPALIVE_S 30
#define DEFAULT_MAX_PAYLOAD ((size_t)1 << 20)
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 10000
#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_UNACKED 1000
/* The longest poll(2) wait, so keep-alive pings go out in time. */
#define IO_SLICE_MS 1000
/* MQTT's largest payload (remaining length 268,435,455 less headers). */
#define PAYLOAD_LIMIT 268435455u

enum state {
  ST_DOWN,    /* no connection; next attempt at next_attempt_ms */
  ST_PROBING, /* non-blocking TCP connect to the broker in progress */
  ST_CONNACK, /* libmosquitto connected, CONNECT queued, no CONNACK yet */
  ST_UP       /* CONNACK accepted */
};

/* A received message; msg's pointers point into the same allocation. */
typedef struct entry {
  tw_mqtt_message msg;
} entry;

typedef struct pend {
  uint64_t seq;
  int mid;
  bool acked;
} pend;

struct tw_mqtt {
  struct mosquitto *mosq;
  mosquitto_property *connect_props;
  char *host;
  char *client_id;
  char **topics;
  size_t ntopics;
  size_t max_payload;
  size_t max_unacked;

  uint64_t next_attempt_ms;
  struct addrinfo *ai, *ai_next;
  uint64_t deadline_ms; /* of the probe or of the CONNACK */

  entry **q;
  size_t qcap, qhead, qlen;
  pend *p;
  size_t pcap, phead, plen;
  size_t hold;
  uint64_t next_seq;
  size_t unconfirmed;

  uint64_t n_received, n_acked, n_redelivered, n_reconnects, n_oversize;
  uint64_t n_published, n_publish_errors;
  uint64_t n_refused_since_flush;

  int port;
  int protocol;
  int qos;
  int keepalive_s;
  int reconnect_min_ms, reconnect_max_ms;
  int connect_timeout_ms;
  enum state state;
  int backoff_ms;
  int probe_fd;
  int probe_errno;
  int sub_mid;
  int refused_code;
  bool ever_connected;
  bool subscribed; /* the filters were subscribed in this object's life */
  bool sub_pending;
  bool in_cb;
  tw_err conn_err;                /* why the current/last attempt failed */
  tw_err sub_err;                 /* a refused subscription */
  uint8_t redeliver[65536 / 8];   /* mids unacknowledged at a disconnect */
  uint8_t pub_pending[65536 / 8]; /* mids of unconfirmed publishes */
  char refused_msg[256];
  char last_error[512];
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mosquitto_lib_init(); }

static uint64_t now_ms(void) { return tw_clock_mono_ns() / 1000000u; }

static bool bit_get(const uint8_t *b, int i) {
  return (b[(unsigned)i >> 3] >> ((unsigned)i & 7u)) & 1u;
}
static void bit_set(uint8_t *b, int i, bool v) {
  if (v)
    b[(unsigned)i >> 3] |= (uint8_t)(1u << ((unsigned)i & 7u));
  else
    b[(unsigned)i >> 3] &= (uint8_t) ~(1u << ((unsigned)i & 7u));
}

static const char *mosq_why(int rc) {
  if (rc == MOSQ_ERR_ERRNO)
    return strerror(errno);
  return mosquitto_strerror(rc);
}

/* The reason string of a CONNACK or SUBACK code in m's protocol. */
static const char *reason_of(const tw_mqtt *m, int code, bool connack) {
  if (m->protocol == 5)
    return mosquitto_reason_string(code);
  if (connack)
    return mosquitto_connack_string(code);
  return code == 0x80 ? "Failure" : "Granted";
}

/* --- Queues -------------------------------------------------------------- */

static int q_push(tw_mqtt *m, entry *e) {
  if (m->qlen == m->qcap) {
    size_t cap = m->qcap ? m->qcap * 2 : 64;
    entry **q = tw_reallocarray(NULL, cap, sizeof(entry *));
    if (q == NULL)
      return TW_ENOMEM;
    for (size_t i = 0; i < m->qlen; i++)
      q[i] = m->q[(m->qhead + i) % m->qcap];
    tw_free(m->q);
    m->q = q;
    m->qcap = cap;
    m->qhead = 0;
  }
  m->q[(m->qhead + m->qlen) % m->qcap] = e;
  m->qlen++;
  return TW_OK;
}

static entry *q_pop(tw_mqtt *m) {
  entry *e = m->q[m->qhead];
  m->qhead = (m->qhead + 1) % m->qcap;
  m->qlen--;
  return e;
}

static pend *p_at(tw_mqtt *m, size_t i) {
  return &m->p[(m->phead + i) % m->pcap];
}

static int p_push(tw_mqtt *m, uint64_t seq, int mid) {
  if (m->plen == m->pcap) {
    size_t cap = m->pcap ? m->pcap * 2 : 64;
    pend *p = tw_reallocarray(NULL, cap, sizeof *p);
    if (p == NULL)
      return TW_ENOMEM;
    for (size_t i = 0; i < m->plen; i++)
      p[i] = *p_at(m, i);
    tw_free(m->p);
    m->p = p;
    m->pcap = cap;
    m->phead = 0;
  }
  *p_at(m, m->plen) = (pend){.seq = seq, .mid = mid, .acked = false};
  m->plen++;
  m->hold++;
  return TW_OK;
}

/* The pending entry of seq, or NULL. */
static pend *p_find(tw_mqtt *m, uint64_t seq) {
  size_t lo = 0, hi = m->plen;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    pend *e = p_at(m, mid);
    if (e->seq == seq)
      return e;
    if (e->seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* Releases the acknowledged entries at the front. */
static void p_trim(tw_mqtt *m) {
  while (m->plen > 0 && p_at(m, 0)->acked) {
    m->phead = (m->phead + 1) % m->pcap;
    m->plen--;
  }
}

/* --- Connection state ---------------------------------------------------- */

static void close_probe(tw_mqtt *m) {
  if (m->probe_fd >= 0)
    close(m->probe_fd);
  m->probe_fd = -1;
  if (m->ai != NULL)
    freeaddrinfo(m->ai);
  m->ai = m->ai_next = NULL;
}

/* The connection (or the attempt) is gone: forget what the broker will
 * redeliver and schedule the next attempt. The reason is recorded in
 * conn_err unless the attempt recorded a more precise one already. */
static void conn_down(tw_mqtt *m, int code, const char *fmt, ...)
    TW_PRINTF(3, 4);
static void conn_down(tw_mqtt *m, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tw_err_setv(&m->conn_err, code, fmt, ap);
  va_end(ap);
  (void)snprintf(m->last_error, sizeof m->last_error, "%s",
                 tw_err_msg(&m->conn_err));
  close_probe(m);
  int fd = mosquitto_socket(m->mosq);
  if (fd >= 0)
    shutdown(fd, SHUT_RDWR); /* nothing queued may reach the broker now */
  for (size_t i = 0; i < m->plen; i++)
    bit_set(m->redeliver, p_at(m, i)->mid, true);
  m->plen = 0;
  m->phead = 0;
  m->hold = 0;
  /* Undelivered QoS 1 messages come again; QoS 0 ones would not. */
  size_t n = m->qlen;
  for (size_t i = 0; i < n; i++) {
    entry *e = q_pop(m);
    if (e->msg.qos > 0)
      tw_free(e);
    else
      (void)q_push(m, e); /* never grows: one slot was just freed */
  }
  m->state = ST_DOWN;
  m->sub_pending = false;
  m->next_attempt_ms = now_ms() + (uint64_t)m->backoff_ms;
  m->backoff_ms = m->backoff_ms >= m->reconnect_max_ms / 2 ? m->reconnect_max_ms
                                                           : m->backoff_ms * 2;
}

/* The broker accepts TCP: hand the connection to libmosquitto. */
static void probe_ok(tw_mqtt *m) {
  close_probe(m);
  int rc = mosquitto_connect_bind_v5(m->mosq, m->host, m->port, m->keepalive_s,
                                     NULL, m->connect_props);
  if (rc != MOSQ_ERR_SUCCESS) {
    conn_down(m, TW_ECONN, "mqtt: cannot connect to %s:%d: %s", m->host,
              m->port, mosq_why(rc));
    return;
  }
  m->state = ST_CONNACK;
  m->deadline_ms = now_ms() + (uint64_t)m->connect_timeout_ms;
}

/* Tries the remaining addresses of the broker until one is connecting. */
static void probe_next(tw_mqtt *m) {
  for (; m->ai_next != NULL; m->ai_next = m->ai_next->ai_next) {
    struct addrinfo *a = m->ai_next;
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    a->ai_protocol);
    if (fd < 0) {
      m->probe_errno = errno;
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      close(fd);
      probe_ok(m);
      return;
    }
    if (errno == EINPROGRESS) {
      m->probe_fd = fd;
      m->ai_next = a->ai_next;
      m->state = ST_PROBING;
      m->deadline_ms = now_ms() + (uint64_t)m->connect_timeout_ms;
      return;
    }
    m->probe_errno = errno;
    close(fd);
  }
  conn_down(m, TW_ECONN, "mqtt: cannot connect to %s:%d: %s", m->host, m->port,
            strerror(m->probe_errno ? m->probe_errno : ECONNREFUSED));
}

static void attempt_start(tw_mqtt *m) {
  tw_err_init(&m->conn_err);
  char port[16];
  (void)snprintf(port, sizeof port, "%d", m->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_ADDRCONFIG};
  close_probe(m);
  int g = getaddrinfo(m->host, port, &hints, &m->ai);
  if (g != 0) {
    m->ai = NULL;
    conn_down(m, TW_ECONN, "mqtt: cannot resolve broker host '%s': %s", m->host,
              g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    return;
  }
  m->ai_next = m->ai;
  m->probe_errno = 0;
  probe_next(m);
}

static bool reading_allowed(const tw_mqtt *m) {
  return m->qlen < m->max_unacked && m->hold < m->max_unacked;
}

static void sleep_ms(int ms) {
  if (ms > 0)
    (void)poll(NULL, 0, ms);
}

/* One round of network work, waiting at most wait_ms. Network failures
 * are not errors here: they take the connection down and schedule the
 * next attempt. */
static void io_round(tw_mqtt *m, int wait_ms) {
  uint64_t now = now_ms();
  if (wait_ms > IO_SLICE_MS)
    wait_ms = IO_SLICE_MS;
  if (m->state == ST_DOWN) {
    if (now < m->next_attempt_ms) {
      uint64_t left = m->next_attempt_ms - now;
      sleep_ms(left < (uint64_t)wait_ms ? (int)left : wait_ms);
      return;
    }
    attempt_start(m);
    return;
  }
  if (m->state == ST_PROBING) {
    int left = now >= m->deadline_ms ? 0 : (int)(m->deadline_ms - now);
    struct pollfd pfd = {.fd = m->probe_fd, .events = POLLOUT};
    int r = poll(&pfd, 1, left < wait_ms ? left : wait_ms);
    if (r > 0) {
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (getsockopt(m->probe_fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
      if (soerr == 0) {
        probe_ok(m);
        return;
      }
      m->probe_errno = soerr;
      close(m->probe_fd);
      m->probe_fd = -1;
      probe_next(m);
    } else if (now_ms() >= m->deadline_ms) {
      conn_down(m, TW_ETIMEDOUT,
                "mqtt: cannot connect to %s:%d: no answer within %d ms",
                m->host, m->port, m->connect_timeout_ms);
    }
    return;
  }

  int fd = mosquitto_socket(m->mosq);
  if (fd < 0) {
    conn_down(m, TW_ECONN, "mqtt: connection to %s:%d lost", m->host, m->port);
    return;
  }
  if (m->state == ST_CONNACK) {
    int left = now >= m->deadline_ms ? 0 : (int)(m->deadline_ms - now);
    if (left < wait_ms)
      wait_ms = left;
  }
  struct pollfd pfd = {.fd = fd, .events = 0};
  if (reading_allowed(m))
    pfd.events |= POLLIN;
  if (m->hold == 0 && mosquitto_want_write(m->mosq))
    pfd.events |= POLLOUT;
  int r = poll(&pfd, 1, wait_ms);
  int rc = MOSQ_ERR_SUCCESS;
  if (r > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)))
    rc = mosquitto_loop_read(m->mosq, 1);
  /* Messages just read hold the output back: their PUBACKs are in it. */
  if (rc == MOSQ_ERR_SUCCESS && m->hold == 0 &&
      mosquitto_socket(m->mosq) >= 0 && mosquitto_want_write(m->mosq))
    rc = mosquitto_loop_write(m->mosq, 1);
  if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(m->mosq) >= 0)
    rc = mosquitto_loop_misc(m->mosq);
  if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(m->mosq) < 0) {
    conn_down(m, TW_ECONN, "mqtt: connection to %s:%d lost: %s", m->host,
              m->port,
              rc != MOSQ_ERR_SUCCESS ? mosq_why(rc) : "closed by the broker");
    return;
  }
  if (m->state == ST_CONNACK && now_ms() >= m->deadline_ms)
    conn_down(m, TW_ETIMEDOUT, "mqtt: no CONNACK from %s:%d within %d ms",
              m->host, m->port, m->connect_timeout_ms);
}

/* --- libmosquitto callbacks (run inside mosquitto_loop_read) ------------- */

static void on_connect(struct mosquitto *mosq, void *ud, int rc, int flags,
                       const mosquitto_property *props) {
  (void)mosq;
  (void)props;
  tw_mqtt *m = ud;
  if (rc != 0) {
    bool auth = m->protocol == 5 ? (rc == 0x86 || rc == 0x87 || rc == 0x8C)
                                 : (rc == 4 || rc == 5);
    tw_err_set(&m->conn_err, auth ? TW_EAUTH : TW_ECONN,
               "mqtt: broker %s:%d refused the connection: %s (CONNACK "
               "reason 0x%02x)",
               m->host, m->port, reason_of(m, rc, true), (unsigned)rc);
    return;
  }
  bool session_present = (flags & 1) != 0;
  m->state = ST_UP;
  if (m->ever_connected)
    m->n_reconnects++;
  m->ever_connected = true;
  m->backoff_ms = m->reconnect_min_ms;
  m->last_error[0] = '\0';
  if (!session_present)
    memset(m->redeliver, 0, sizeof m->redeliver);
  if (m->ntopics > 0 && (!m->subscribed || !session_present)) {
    int src = mosquitto_subscribe_multiple(
        m->mosq, &m->sub_mid, (int)m->ntopics, m->topics, m->qos, 0, NULL);
    if (src != MOSQ_ERR_SUCCESS) {
      tw_err_set(&m->sub_err, TW_EPROTO, "mqtt: cannot subscribe: %s",
                 mosq_why(src));
      return;
    }
    m->sub_pending = true;
  }
}

static void on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n,
                         const int *granted, const mosquitto_property *props) {
  (void)mosq;
  (void)props;
  tw_mqtt *m = ud;
  if (!m->sub_pending || mid != m->sub_mid)
    return;
  m->sub_pending = false;
  m->subscribed = true;
  for (int i = 0; i < n && (size_t)i < m->ntopics; i++) {
    if (granted[i] < 0x80)
      continue;
    tw_err_set(&m->sub_err, granted[i] == 0x87 ? TW_EPERM : TW_EPROTO,
               "mqtt: broker %s:%d refused the subscription to '%s' "
               "(topics[%d]): %s (SUBACK reason 0x%02x)",
               m->host, m->port, m->topics[i], i,
               reason_of(m, granted[i], false), (unsigned)granted[i]);
    (void)snprintf(m->last_error, sizeof m->last_error, "%s",
                   tw_err_msg(&m->sub_err));
    return;
  }
}

/* Copies msg and its user properties into one allocation. */
static entry *entry_new(tw_mqtt *m, const struct mosquitto_message *msg,
                        const mosquitto_property *props) {
  size_t nprops = 0, strbytes = 0;
  const mosquitto_property *p = props;
  char *k, *v;
  for (bool skip = false; (p = mosquitto_property_read_string_pair(
                               p, MQTT_PROP_USER_PROPERTY, &k, &v, skip));
       skip = true) {
    nprops++;
    strbytes += strlen(k) + strlen(v) + 2;
    free(k);
    free(v);
  }
  size_t wire = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
  size_t keep = wire > m->max_payload ? m->max_payload : wire;
  size_t tlen = strlen(msg->topic);
  size_t size = sizeof(entry) + nprops * sizeof(tw_mqtt_prop) + tlen + 1 +
                keep + 1 + strbytes;
  entry *e = tw_alloc(size);
  if (e == NULL)
    return NULL;
  tw_mqtt_prop *pa = (tw_mqtt_prop *)(e + 1);
  char *s = (char *)(pa + nprops);
  memcpy(s, msg->topic, tlen + 1);
  e->msg.topic = s;
  s += tlen + 1;
  if (keep > 0)
    memcpy(s, msg->payload, keep);
  s[keep] = '\0';
  e->msg.payload = s;
  s += keep + 1;
  size_t i = 0;
  p = props;
  for (bool skip = false;
       i < nprops && (p = mosquitto_property_read_string_pair(
                          p, MQTT_PROP_USER_PROPERTY, &k, &v, skip));
       skip = true) {
    size_t kl = strlen(k) + 1, vl = strlen(v) + 1;
    /* A failed read of the second pass (out of memory) leaves the rest
     * out; the sizes of the first pass bound what is copied. */
    if (kl + vl > strbytes) {
      free(k);
      free(v);
      break;
    }
    memcpy(s, k, kl);
    pa[i].key = s;
    s += kl;
    memcpy(s, v, vl);
    pa[i].value = s;
    s += vl;
    strbytes -= kl + vl;
    free(k);
    free(v);
    i++;
  }
  e->msg.props = nprops > 0 ? pa : NULL;
  e->msg.nprops = i;
  e->msg.len = keep;
  e->msg.wire_len = wire;
  e->msg.qos = msg->qos;
  e->msg.retain = msg->retain;
  e->msg.oversize = wire > m->max_payload;
  e->msg.mid = msg->qos > 0 ? msg->mid : 0;
  e->msg.dup = false;
  return e;
}

static void on_message(struct mosquitto *mosq, void *ud,
                       const struct mosquitto_message *msg,
                       const mosquitto_property *props) {
  (void)mosq;
  tw_mqtt *m = ud;
  entry *e = entry_new(m, msg, props);
  if (e != NULL) {
    e->msg.seq = m->next_seq;
    if (e->msg.qos > 0 && bit_get(m->redeliver, e->msg.mid)) {
      bit_set(m->redeliver, e->msg.mid, false);
      e->msg.dup = true;
    }
    if (q_push(m, e) == TW_OK) {
      if (e->msg.qos == 0 || p_push(m, e->msg.seq, e->msg.mid) == TW_OK) {
        m->next_seq++;
        return;
      }
      m->qlen--; /* undo the push */
    }
    tw_free(e);
  }
  /* Out of memory: the message cannot be kept, and its PUBACK (queued
   * already) must never leave. Dropping the connection makes the broker
   * deliver it again. */
  int fd = mosquitto_socket(m->mosq);
  if (fd >= 0)
    shutdown(fd, SHUT_RDWR);
  (void)snprintf(
      m->last_error, sizeof m->last_error,
      "mqtt: out of memory for a message on '%s': connection reset for "
      "redelivery",
      msg->topic);
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid, int reason,
                       const mosquitto_property *props) {
  (void)mosq;
  (void)props;
  tw_mqtt *m = ud;
  if (mid < 0 || mid > 65535 || !bit_get(m->pub_pending, mid))
    return;
  bit_set(m->pub_pending, mid, false);
  m->unconfirmed--;
  if (reason >= 0x80) {
    m->n_publish_errors++;
    m->n_refused_since_flush++;
    m->refused_code = reason;
    (void)snprintf(m->refused_msg, sizeof m->refused_msg,
                   "mqtt: broker %s:%d refused a publish (mid %d): %s (reason "
                   "0x%02x)",
                   m->host, m->port, mid, mosquitto_reason_string(reason),
                   (unsigned)reason);
  }
}

/* --- Public API ---------------------------------------------------------- */

void tw_mqtt_opts_init(tw_mqtt_opts *o) {
  memset(o, 0, sizeof *o);
  o->port = DEFAULT_PORT;
  o->protocol = 5;
  o->qos = 1;
  o->keepalive_s = DEFAULT_KEEPALIVE_S;
  o->max_payload = DEFAULT_MAX_PAYLOAD;
  o->reconnect_min_ms = DEFAULT_RECONNECT_MIN_MS;
  o->reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
  o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  o->max_unacked = DEFAULT_MAX_UNACKED;
}

static int check_opts(const tw_mqtt_opts *o, tw_err *err) {
  if (o->host == NULL || o->host[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "mqtt: no broker host");
  if (o->port < 0 || o->port > 65535)
    return tw_err_set(err, TW_EINVAL, "mqtt: port %d out of range", o->port);
  if (o->protocol != 0 && o->protocol != 5 && o->protocol != 311)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: protocol %d: expected 5 (MQTT v5) or 311 "
                      "(MQTT v3.1.1)",
                      o->protocol);
  if (o->qos == 2)
    return tw_err_set(err, TW_ENOTSUP,
                      "mqtt: subscription QoS 2 is not supported: "
                      "libmosquitto 2.0 acknowledges a QoS 2 message (PUBREC) "
                      "before handing it over; use QoS 1");
  if (o->qos != 0 && o->qos != 1)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: subscription QoS %d: expected 0 "
                      "or 1",
                      o->qos);
  if (!o->clean_start && (o->client_id == NULL || o->client_id[0] == '\0'))
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: a persistent session (clean_start false) needs "
                      "a client_id");
  if (o->client_id != NULL &&
      mosquitto_validate_utf8(
          o->client_id, (int)strnlen(o->client_id, 65536)) != MOSQ_ERR_SUCCESS)
    return tw_err_set(err, TW_EINVAL, "mqtt: client_id is not valid UTF-8");
  if (o->ntopics > 0 && o->topics == NULL)
    return tw_err_set(err, TW_EINVAL, "mqtt: %zu topics but no array",
                      o->ntopics);
  if (o->ntopics > 65535)
    return tw_err_set(err, TW_ELIMIT,
                      "mqtt: %zu topic filters (at most "
                      "65535)",
                      o->ntopics);
  for (size_t i = 0; i < o->ntopics; i++) {
    const char *t = o->topics[i];
    if (t == NULL || t[0] == '\0')
      return tw_err_set(err, TW_EINVAL, "mqtt: topics[%zu] is empty", i);
    if (mosquitto_sub_topic_check(t) != MOSQ_ERR_SUCCESS ||
        mosquitto_validate_utf8(t, (int)strnlen(t, 65536)) != MOSQ_ERR_SUCCESS)
      return tw_err_set(err, TW_EINVAL,
                        "mqtt: topics[%zu] '%s' is not a valid topic filter "
                        "(+ and # must fill a whole level, # only the last; "
                        "at most 65535 bytes of UTF-8)",
                        i, t);
  }
  if (o->keepalive_s != 0 && (o->keepalive_s < 5 || o->keepalive_s > 65535))
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: keepalive_s %d out of range (5 to 65535)",
                      o->keepalive_s);
  if (o->password != NULL && o->username == NULL && o->protocol == 311)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: a password without a username needs MQTT v5");
  if (o->reconnect_min_ms < 0 || o->reconnect_max_ms < 0 ||
      o->connect_timeout_ms < 0)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: negative reconnect or connect "
                      "time");
  if (o->max_payload > PAYLOAD_LIMIT)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: max_payload %zu beyond MQTT's "
                      "%u",
                      o->max_payload, PAYLOAD_LIMIT);
  return TW_OK;
}

void tw_mqtt_free(tw_mqtt *m) {
  if (m == NULL)
    return;
  if (m->mosq != NULL) {
    if (m->state == ST_UP && m->hold == 0 && mosquitto_socket(m->mosq) >= 0) {
      /* Non-blocking: what the socket takes now (acks, DISCONNECT). */
      mosquitto_disconnect(m->mosq);
      (void)mosquitto_loop_write(m->mosq, 1);
    }
    mosquitto_destroy(m->mosq);
  }
  close_probe(m);
  mosquitto_property_free_all(&m->connect_props);
  while (m->qlen > 0)
    tw_free(q_pop(m));
  tw_free(m->q);
  tw_free(m->p);
  for (size_t i = 0; i < m->ntopics; i++)
    tw_free(m->topics[i]);
  tw_free(m->topics);
  tw_free(m->host);
  tw_free(m->client_id);
  tw_free(m);
}

int tw_mqtt_new(const tw_mqtt_opts *o, tw_mqtt **out, tw_err *err) {
  if (o == NULL || out == NULL)
    return tw_err_set(err, TW_EINVAL, "mqtt: no options or no output");
  int rc = check_opts(o, err);
  if (rc != TW_OK)
    return rc;
  pthread_once(&lib_once, lib_init);

  tw_mqtt *m = tw_calloc(1, sizeof *m);
  if (m == NULL)
    return tw_err_set(err, TW_ENOMEM, "mqtt: out of memory");
  m->probe_fd = -1;
  m->port = o->port ? o->port : DEFAULT_PORT;
  m->protocol = o->protocol ? o->protocol : 5;
  m->qos = o->qos;
  m->keepalive_s = o->keepalive_s ? o->keepalive_s : DEFAULT_KEEPALIVE_S;
  m->max_payload = o->max_payload ? o->max_payload : DEFAULT_MAX_PAYLOAD;
  m->reconnect_min_ms =
      o->reconnect_min_ms ? o->reconnect_min_ms : DEFAULT_RECONNECT_MIN_MS;
  m->reconnect_max_ms =
      o->reconnect_max_ms ? o->reconnect_max_ms : DEFAULT_RECONNECT_MAX_MS;
  if (m->reconnect_max_ms < m->reconnect_min_ms)
    m->reconnect_max_ms = m->reconnect_min_ms;
  m->backoff_ms = m->reconnect_min_ms;
  m->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms
                                                : DEFAULT_CONNECT_TIMEOUT_MS;
  m->max_unacked = o->max_unacked ? o->max_unacked : DEFAULT_MAX_UNACKED;
  m->host = tw_strdup(o->host);
  m->client_id = o->client_id ? tw_strdup(o->client_id) : NULL;
  m->topics = o->ntopics ? tw_calloc(o->ntopics, sizeof *m->topics) : NULL;
  if (m->host == NULL || (o->client_id && m->client_id == NULL) ||
      (o->ntopics && m->topics == NULL))
    goto nomem;
  for (; m->ntopics < o->ntopics; m->ntopics++) {
    m->topics[m->ntopics] = tw_strdup(o->topics[m->ntopics]);
    if (m->topics[m->ntopics] == NULL)
      goto nomem;
  }

  m->mosq = mosquitto_new(m->client_id, o->clean_start, m);
  if (m->mosq == NULL) {
    rc = errno == ENOMEM ? TW_ENOMEM : TW_EINVAL;
    tw_err_set(err, rc, "mqtt: cannot create the client: %s", strerror(errno));
    tw_mqtt_free(m);
    return rc;
  }
  /* The connector writes only when it chooses (see the top of the file). */
  mosquitto_threaded_set(m->mosq, true);
  mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION,
                       m->protocol == 5 ? MQTT_PROTOCOL_V5
                                        : MQTT_PROTOCOL_V311);
  if (o->username != NULL || o->password != NULL) {
    int mrc = mosquitto_username_pw_set(m->mosq, o->username, o->password);
    if (mrc != MOSQ_ERR_SUCCESS) {
      rc = mrc == MOSQ_ERR_NOMEM ? TW_ENOMEM : TW_EINVAL;
      tw_err_set(err, rc, "mqtt: username/password: %s", mosq_why(mrc));
      tw_mqtt_free(m);
      return rc;
    }
  }
  if (m->protocol == 5 && !o->clean_start) {
    uint32_t exp = o->session_expiry_s ? o->session_expiry_s : UINT32_MAX;
    if (mosquitto_property_add_int32(&m->connect_props,
                                     MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     exp) != MOSQ_ERR_SUCCESS)
      goto nomem;
  }
  mosquitto_connect_v5_callback_set(m->mosq, on_connect);
  mosquitto_subscribe_v5_callback_set(m->mosq, on_subscribe);
  mosquitto_message_v5_callback_set(m->mosq, on_message);
  mosquitto_publish_v5_callback_set(m->mosq, on_publish);

  /* One attempt, bounded: the first connection's failure is the error. */
  uint64_t deadline = now_ms() + (uint64_t)m->connect_timeout_ms;
  attempt_start(m);
  for (;;) {
    if (m->sub_err.code != TW_OK) {
      rc = tw_err_copy(err, &m->sub_err);
      break;
    }
    if (m->state == ST_DOWN) {
      rc = tw_err_copy(err, &m->conn_err);
      break;
    }
    if (m->state == ST_UP && !m->sub_pending) {
      rc = TW_OK;
      break;
    }
    uint64_t now = now_ms();
    if (now >= deadline) {
      rc = tw_err_set(err, TW_ETIMEDOUT,
                      "mqtt: %s:%d did not answer the %s within %d ms", m->host,
                      m->port, m->state == ST_UP ? "SUBSCRIBE" : "CONNECT",
                      m->connect_timeout_ms);
      break;
    }
    io_round(m, (int)(deadline - now));
  }
  if (rc != TW_OK) {
    m->state = ST_DOWN; /* leave without writing: nothing more to say */
    tw_mqtt_free(m);
    return rc;
  }
  *out = m;
  return TW_OK;

nomem:
  tw_mqtt_free(m);
  return tw_err_set(err, TW_ENOMEM, "mqtt: out of memory");
}

/* Hands queued messages to cb; *n counts those taken. */
static int deliver(tw_mqtt *m, tw_mqtt_message_cb cb, void *ud, size_t *n) {
  while (m->qlen > 0) {
    entry *e = m->q[m->qhead];
    m->in_cb = true;
    int rc = cb(ud, &e->msg);
    m->in_cb = false;
    if (rc != TW_OK) {
      /* Acknowledged in the callback: taken after all. */
      pend *pe = e->msg.qos > 0 ? p_find(m, e->msg.seq) : NULL;
      if (pe == NULL || !pe->acked)
        return rc;
    }
    q_pop(m);
    m->n_received++;
    if (e->msg.dup)
      m->n_redelivered++;
    if (e->msg.oversize)
      m->n_oversize++;
    (*n)++;
    tw_free(e);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

int tw_mqtt_poll(tw_mqtt *m, int timeout_ms, tw_mqtt_message_cb cb, void *ud,
                 size_t *n, tw_err *err) {
  size_t got = 0;
  if (n != NULL)
    *n = 0;
  if (m == NULL || cb == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: poll without a connector or a "
                      "callback");
  if (m->in_cb)
    return tw_err_set(err, TW_EUSAGE,
                      "mqtt: poll called from a message "
                      "callback");
  if (timeout_ms < 0)
    timeout_ms = 0;
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  int rc = TW_OK;
  for (;;) {
    if (m->qlen == 0 && !reading_allowed(m)) {
      rc = tw_err_set(err, TW_ELIMIT,
                      "mqtt: %zu received messages wait for tw_mqtt_ack "
                      "(max_unacked %zu): acknowledge them before polling "
                      "for more",
                      m->hold, m->max_unacked);
      break;
    }
    uint64_t now = now_ms();
    int wait = m->qlen > 0 || now >= deadline ? 0 : (int)(deadline - now);
    io_round(m, wait);
    rc = deliver(m, cb, ud, &got);
    if (rc != TW_OK || got > 0 || now_ms() >= deadline)
      break;
  }
  if (n != NULL)
    *n = got;
  return rc;
}

int tw_mqtt_ack(tw_mqtt *m, uint64_t seq, tw_err *err) {
  if (m == NULL)
    return tw_err_set(err, TW_EINVAL, "mqtt: ack without a connector");
  if (seq >= m->next_seq)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: ack of message %" PRIu64 ", never delivered", seq);
  pend *p = p_find(m, seq);
  if (p == NULL)
    return TW_OK; /* QoS 0, released, or of a lost connection */
  if (p->acked)
    return tw_err_set(err, TW_EEXIST,
                      "mqtt: message %" PRIu64 " is acknowledged already", seq);
  p->acked = true;
  m->hold--;
  m->n_acked++;
  p_trim(m);
  return TW_OK;
}

int tw_mqtt_publish(tw_mqtt *m, const char *topic, const void *payload,
                    size_t len, int qos, bool retain, const tw_mqtt_prop *props,
                    size_t nprops, tw_err *err) {
  if (m == NULL || topic == NULL || (payload == NULL && len > 0) ||
      (props == NULL && nprops > 0))
    return tw_err_set(err, TW_EINVAL, "mqtt: publish with a NULL argument");
  if (mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS ||
      mosquitto_validate_utf8(topic, (int)strnlen(topic, 65536)) !=
          MOSQ_ERR_SUCCESS)
    return tw_err_set(err, TW_EINVAL,
                      "mqtt: publish topic '%s' is not valid (no + or #, "
                      "not empty, UTF-8)",
                      topic);
  if (qos < 0 || qos > 2)
    return tw_err_set(err, TW_EINVAL, "mqtt: publish QoS %d", qos);
  if (len > PAYLOAD_LIMIT - 65536)
    return tw_err_set(err, TW_ELIMIT,
                      "mqtt: payload of %zu bytes for '%s' "
                      "is beyond MQTT's limit",
                      len, topic);
  if (nprops > 0 && m->protocol != 5)
    return tw_err_set(err, TW_ENOTSUP,
                      "mqtt: user properties need MQTT v5 (protocol 5)");
  mosquitto_property *pl = NULL;
  for (size_t i = 0; i < nprops; i++) {
    if (props[i].key == NULL || props[i].value == NULL) {
      mosquitto_property_free_all(&pl);
      return tw_err_set(err, TW_EINVAL, "mqtt: user property %zu is NULL", i);
    }
    int prc = mosquitto_property_add_string_pair(&pl, MQTT_PROP_USER_PROPERTY,
                                                 props[i].key, props[i].value);
    if (prc != MOSQ_ERR_SUCCESS) {
      mosquitto_property_free_all(&pl);
      if (prc == MOSQ_ERR_NOMEM)
        return tw_err_set(err, TW_ENOMEM, "mqtt: out of memory");
      return tw_err_set(err, TW_EINVAL,
                        "mqtt: user property '%s' is not valid UTF-8 of at "
                        "most 65535 bytes",
                        props[i].key);
    }
  }
  int mid = 0;
  int rc = mosquitto_publish_v5(m->mosq, &mid, topic, (int)len, payload, qos,
                                retain, pl);
  mosquitto_property_free_all(&pl);
  /* Not connected: libmosquitto keeps a QoS 1/2 message (it has a mid)
   * and sends it after the reconnection; a QoS 0 message is dropped. */
  if (rc == MOSQ_ERR_NO_CONN && qos > 0 && mid > 0)
    rc = MOSQ_ERR_SUCCESS;
  if (rc != MOSQ_ERR_SUCCESS) {
    m->n_publish_errors++;
    int code = rc == MOSQ_ERR_NOMEM             ? TW_ENOMEM
               : rc == MOSQ_ERR_NO_CONN         ? TW_ECONN
               : rc == MOSQ_ERR_OVERSIZE_PACKET ? TW_ELIMIT
                                                : TW_EINVAL;
    return tw_err_set(err, code, "mqtt: cannot publish to '%s': %s", topic,
                      mosq_why(rc));
  }
  m->n_published++;
  if (qos > 0 && mid > 0 && mid <= 65535 && !bit_get(m->pub_pending, mid)) {
    bit_set(m->pub_pending, mid, true);
    m->unconfirmed++;
  }
  return TW_OK;
}

int tw_mqtt_flush(tw_mqtt *m, int timeout_ms, tw_err *err) {
  if (m == NULL)
    return tw_err_set(err, TW_EINVAL, "mqtt: flush without a connector");
  if (m->in_cb)
    return tw_err_set(err, TW_EUSAGE,
                      "mqtt: flush called from a message "
                      "callback");
  if (timeout_ms < 0)
    timeout_ms = 0;
  uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    bool out_queued = m->state == ST_UP && mosquitto_want_write(m->mosq);
    if (m->unconfirmed == 0 && !out_queued)
      break;
    if (m->hold > 0 && out_queued)
      return tw_err_set(err, TW_EBUSY,
                        "mqtt: %zu received messages wait for tw_mqtt_ack; "
                        "their acknowledgements hold back the output",
                        m->hold);
    uint64_t now = now_ms();
    if (now >= deadline) {
      if (m->state != ST_UP)
        return tw_err_set(err, TW_ETIMEDOUT,
                          "mqtt: %zu publishes unconfirmed after %d ms, "
                          "not connected (%s)",
                          m->unconfirmed, timeout_ms,
                          m->last_error[0] ? m->last_error : "connecting");
      return tw_err_set(err, TW_ETIMEDOUT,
                        "mqtt: %zu publishes unconfirmed by %s:%d after %d "
                        "ms",
                        m->unconfirmed, m->host, m->port, timeout_ms);
    }
    io_round(m, (int)(deadline - now));
  }
  if (m->n_refused_since_flush > 0) {
    uint64_t k = m->n_refused_since_flush;
    m->n_refused_since_flush = 0;
    return tw_err_set(err, m->refused_code == 0x87 ? TW_EPERM : TW_EPROTO,
                      "%s (%" PRIu64 " refused since the last flush)",
                      m->refused_msg, k);
  }
  return TW_OK;
}

void tw_mqtt_stats_get(const tw_mqtt *m, tw_mqtt_stats *out) {
  memset(out, 0, sizeof *out);
  out->last_error = "";
  if (m == NULL)
    return;
  out->received = m->n_received;
  out->acked = m->n_acked;
  out->redelivered = m->n_redelivered;
  out->reconnects = m->n_reconnects;
  out->oversize = m->n_oversize;
  out->published = m->n_published;
  out->publish_errors = m->n_publish_errors;
  out->unacked = m->hold;
  out->unconfirmed = m->unconfirmed;
  out->connected = m->state == ST_UP;
  out->last_error = m->last_error;
}
