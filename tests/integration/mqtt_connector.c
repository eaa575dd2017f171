/*
 * mqtt_connector.c - the MQTT connector (twin/mqtt.h) against the real
 * broker of scripts/mosquitto. Run as
 * `scripts/mosquitto run test_integration_mqtt_connector`
 * (TW_MQTT_BROKER = 127.0.0.1:PORT, TW_MQTT_DIR = the broker's directory,
 * used to restart it).
 *
 * It shows that:
 *  - messages arrive with their topics and payloads;
 *  - messages not acknowledged when the connection goes (a new connector
 *    under the same client id, or a broker restart under the same
 *    connector) are delivered again, acknowledged ones are not;
 *  - a broker restart in the middle of a stream loses nothing, in either
 *    direction;
 *  - oversize messages are flagged and cut;
 *  - MQTT v5 user properties of a publish arrive at a second connector;
 *  - bad filters, unknown hosts, closed ports, refused connections
 *    (CONNACK) and refused subscriptions (SUBACK) give clear errors; the
 *    last two on a second, stricter broker that this test starts and
 *    stops itself.
 * Every wait has a deadline; alarm() bounds the whole run.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "twin/error.h"
#include "twin/mqtt.h"

#define MAXGOT 512

static pid_t strict_pid = -1;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mqtt_connector: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (strict_pid > 0) {
    kill(strict_pid, SIGTERM);
    waitpid(strict_pid, NULL, 0);
  }
  exit(1);
}

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      fail(__VA_ARGS__);                                                       \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char host[128];
static int port;
static const char *dir;

static void parse_broker(void) {
  const char *b = getenv("TW_MQTT_BROKER");
  dir = getenv("TW_MQTT_DIR");
  if (b == NULL || dir == NULL)
    fail("TW_MQTT_BROKER / TW_MQTT_DIR not set (run under scripts/mosquitto "
         "run)");
  const char *colon = strrchr(b, ':');
  if (colon == NULL || (size_t)(colon - b) >= sizeof host)
    fail("bad broker address '%s'", b);
  memcpy(host, b, (size_t)(colon - b));
  host[colon - b] = '\0';
  port = atoi(colon + 1);
}

static void restart_broker(void) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s/scripts/mosquitto restart '%s' >/dev/null",
           TW_TEST_SOURCE_DIR, dir);
  if (system(cmd) != 0)
    fail("%s failed", cmd);
}

/* --- Collecting messages ------------------------------------------------- */

typedef struct got {
  char topic[128];
  char payload[64];
  size_t len, wire_len;
  bool dup, oversize;
  uint64_t seq;
  size_t nprops;
  char props[4][2][128];
} got;

typedef struct collector {
  tw_mqtt *m;
  bool ack; /* acknowledge in the callback, as the ingest pipeline does
               after recording the message */
  size_t n;
  got items[MAXGOT];
  bool seen[256]; /* payloads "r<i>" of the restart phase */
} collector;

static int collect(void *ud, const tw_mqtt_message *msg) {
  collector *c = ud;
  if (msg->len > 0 && ((const char *)msg->payload)[0] == 'r') {
    int i = atoi((const char *)msg->payload + 1);
    if (i >= 0 && i < 256)
      c->seen[i] = true;
  } else {
    CHECK(c->n < MAXGOT, "too many messages");
    got *g = &c->items[c->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->topic, sizeof g->topic, "%s", msg->topic);
    size_t k =
        msg->len < sizeof g->payload - 1 ? msg->len : sizeof g->payload - 1;
    memcpy(g->payload, msg->payload, k);
    g->len = msg->len;
    g->wire_len = msg->wire_len;
    g->dup = msg->dup;
    g->oversize = msg->oversize;
    g->seq = msg->seq;
    g->nprops = msg->nprops;
    for (size_t i = 0; i < msg->nprops && i < 4; i++) {
      snprintf(g->props[i][0], 128, "%s", msg->props[i].key);
      snprintf(g->props[i][1], 128, "%s", msg->props[i].value);
    }
  }
  if (c->ack) {
    tw_err err;
    tw_err_init(&err);
    int rc = tw_mqtt_ack(c->m, msg->seq, &err);
    CHECK(rc == TW_OK, "ack in callback: %s", tw_err_msg(&err));
  }
  return TW_OK;
}

/* Polls until c holds want messages (not counting restart-phase ones). */
static void poll_until(collector *c, size_t want, double seconds,
                       const char *what) {
  double until = now_s() + seconds;
  while (c->n < want) {
    tw_err err;
    tw_err_init(&err);
    size_t n = 0;
    int rc = tw_mqtt_poll(c->m, 200, collect, c, &n, &err);
    CHECK(rc == TW_OK, "poll (%s): %s", what, tw_err_msg(&err));
    CHECK(now_s() < until, "timed out waiting for %s (%zu of %zu)", what, c->n,
          want);
  }
}

static void ack_all(collector *c, size_t from) {
  for (size_t i = from; i < c->n; i++) {
    tw_err err;
    tw_err_init(&err);
    CHECK(tw_mqtt_ack(c->m, c->items[i].seq, &err) == TW_OK, "ack: %s",
          tw_err_msg(&err));
  }
}

static void flush_ok(tw_mqtt *m, const char *what) {
  tw_err err;
  tw_err_init(&err);
  int rc = tw_mqtt_flush(m, 15000, &err);
  CHECK(rc == TW_OK, "flush (%s): %s", what, tw_err_msg(&err));
}

static void publish_ok(tw_mqtt *m, const char *topic, const char *payload,
                       size_t len, const tw_mqtt_prop *props, size_t nprops) {
  tw_err err;
  tw_err_init(&err);
  int rc =
      tw_mqtt_publish(m, topic, payload, len, 1, false, props, nprops, &err);
  CHECK(rc == TW_OK, "publish to %s: %s", topic, tw_err_msg(&err));
}

static bool has_payload(const collector *c, size_t from, const char *p) {
  for (size_t i = from; i < c->n; i++)
    if (strcmp(c->items[i].payload, p) == 0)
      return true;
  return false;
}

/* --- Connectors ---------------------------------------------------------- */

static char sub_id[64], pub_id[64];
static const char *const sub_topics[] = {"twin/conn/+/data", "twin/conn/big"};

static tw_mqtt *new_ok(tw_mqtt_opts *o, const char *what) {
  tw_err err;
  tw_err_init(&err);
  tw_mqtt *m = NULL;
  int rc = tw_mqtt_new(o, &m, &err);
  CHECK(rc == TW_OK && m != NULL, "%s: %s", what, tw_err_msg(&err));
  return m;
}

static tw_mqtt *new_sub(void) {
  tw_mqtt_opts o;
  tw_mqtt_opts_init(&o);
  o.host = host;
  o.port = port;
  o.client_id = sub_id;
  o.topics = sub_topics;
  o.ntopics = 2;
  o.max_payload = 1024;
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 400;
  return new_ok(&o, "the subscriber");
}

/* Expects tw_mqtt_new to fail with code and a message holding each of the
 * NULL-terminated needles. */
static void new_fails(tw_mqtt_opts *o, int code, const char *what, ...) {
  tw_err err;
  tw_err_init(&err);
  tw_mqtt *m = NULL;
  int rc = tw_mqtt_new(o, &m, &err);
  CHECK(rc == code && m == NULL, "%s: got %s (%s), expected %s", what,
        tw_err_name(rc), tw_err_msg(&err), tw_err_name(code));
  va_list ap;
  va_start(ap, what);
  for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
    CHECK(strstr(tw_err_msg(&err), s) != NULL,
          "%s: message '%s' does not mention '%s'", what, tw_err_msg(&err), s);
  va_end(ap);
  printf("mqtt_connector: %s -> %s: %s\n", what, tw_err_name(rc),
         tw_err_msg(&err));
}

/* --- The stricter broker ------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0)
    fail("no free port");
  close(fd);
  return ntohs(a.sin_port);
}

static bool port_open(int p) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* Listener p1 refuses anonymous clients; listener p2 takes them, but its
 * dynamic security plugin (Debian's mosquitto ships it) denies every
 * subscription by default. */
static void strict_start(int p1, int p2) {
  char sdir[4096], conf[4200], dynsec[4200], log[4200];
  snprintf(sdir, sizeof sdir, "%s/strict", dir);
  mkdir(sdir, 0700);
  snprintf(conf, sizeof conf, "%s/mosquitto.conf", sdir);
  snprintf(dynsec, sizeof dynsec, "%s/dynamic-security.json", sdir);
  snprintf(log, sizeof log, "%s/mosquitto.log", sdir);
  const char *plugin =
      "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
  FILE *f = fopen(dynsec, "w");
  CHECK(f != NULL, "cannot write %s", dynsec);
  fprintf(f, "{\"defaultACLAccess\": {\"publishClientSend\": false, "
             "\"publishClientReceive\": true, \"subscribe\": false, "
             "\"unsubscribe\": true}, \"clients\": [], \"groups\": [], "
             "\"roles\": []}\n");
  fclose(f);
  f = fopen(conf, "w");
  CHECK(f != NULL, "cannot write %s", conf);
  fprintf(f,
          "per_listener_settings true\n"
          "persistence false\n"
          "log_dest file %s\n"
          "listener %d 127.0.0.1\n"
          "allow_anonymous false\n"
          "listener %d 127.0.0.1\n"
          "allow_anonymous true\n"
          "plugin %s\n"
          "plugin_opt_config_file %s\n",
          log, p1, p2, plugin, dynsec);
  if (geteuid() == 0)
    fprintf(f, "user root\n");
  fclose(f);
  const char *bin = access("/usr/sbin/mosquitto", X_OK) == 0
                        ? "/usr/sbin/mosquitto"
                        : "mosquitto";
  strict_pid = fork();
  CHECK(strict_pid >= 0, "fork failed");
  if (strict_pid == 0) {
    execlp(bin, bin, "-c", conf, (char *)NULL);
    _exit(127);
  }
  double until = now_s() + 15;
  while (!port_open(p1) || !port_open(p2)) {
    int st;
    CHECK(waitpid(strict_pid, &st, WNOHANG) == 0,
          "the strict broker exited (see %s)", log);
    CHECK(now_s() < until, "the strict broker did not listen");
    usleep(50000);
  }
}

static void strict_stop(void) {
  kill(strict_pid, SIGTERM);
  waitpid(strict_pid, NULL, 0);
  strict_pid = -1;
}

/* --- The test ------------------------------------------------------------ */

static void test_errors(void) {
  tw_mqtt_opts o;
  tw_mqtt_opts_init(&o);
  o.host = host;
  o.port = port;
  o.client_id = "twin-conn-errors";
  o.connect_timeout_ms = 5000;

  const char *const bad1[] = {"twin/ok/+", "twin/#/x"};
  o.topics = bad1;
  o.ntopics = 2;
  new_fails(&o, TW_EINVAL, "a '#' in the middle", "topics[1]", "twin/#/x",
            NULL);
  const char *const bad2[] = {"twin/a+b"};
  o.topics = bad2;
  o.ntopics = 1;
  new_fails(&o, TW_EINVAL, "a '+' inside a level", "topics[0]", "twin/a+b",
            NULL);
  const char *const good[] = {"twin/errors"};
  o.topics = good;
  o.qos = 2;
  new_fails(&o, TW_ENOTSUP, "QoS 2 subscription", "QoS 2", NULL);
  o.qos = 1;
  o.client_id = NULL;
  new_fails(&o, TW_EINVAL, "a persistent session without an id", "client_id",
            NULL);
  o.client_id = "twin-conn-errors";

  o.host = "nothing.invalid";
  new_fails(&o, TW_ECONN, "an unknown host", "resolve", "nothing.invalid",
            NULL);
  o.host = host;
  int closed = free_port();
  o.port = closed;
  new_fails(&o, TW_ECONN, "a closed port", "refused", NULL);

  int p1 = free_port(), p2 = free_port();
  while (p2 == p1)
    p2 = free_port();
  strict_start(p1, p2);
  o.port = p1;
  new_fails(&o, TW_EAUTH, "anonymous on a broker that wants credentials (v5)",
            "refused the connection", "Not authorized", "0x87", NULL);
  o.protocol = 311;
  new_fails(&o, TW_EAUTH,
            "anonymous on a broker that wants credentials (v3.1.1)",
            "refused the connection", "not authorised", NULL);
  o.protocol = 5;
  o.port = p2;
  const char *const denied[] = {"secret/plans"};
  o.topics = denied;
  o.ntopics = 1;
  new_fails(&o, TW_EPERM, "a subscription the broker denies (v5)",
            "secret/plans", "topics[0]", "Not authorized", "SUBACK", NULL);
  o.protocol = 311;
  new_fails(&o, TW_EPROTO, "a subscription the broker denies (v3.1.1)",
            "secret/plans", "Failure", "0x80", NULL);
  o.protocol = 5;
  strict_stop();
}

int main(void) {
  alarm(90);
  parse_broker();
  snprintf(sub_id, sizeof sub_id, "twin-conn-sub-%d", (int)getpid());
  snprintf(pub_id, sizeof pub_id, "twin-conn-pub-%d", (int)getpid());

  test_errors();

  tw_mqtt_opts po;
  tw_mqtt_opts_init(&po);
  po.host = host;
  po.port = port;
  po.client_id = pub_id;
  po.reconnect_min_ms = 50;
  po.reconnect_max_ms = 400;
  tw_mqtt *pub = new_ok(&po, "the publisher");

  static collector c;
  c.m = new_sub();

  /* 1. Delivery: topics and payloads as published, in order. */
  for (int i = 0; i < 10; i++) {
    char t[64], p[16];
    snprintf(t, sizeof t, "twin/conn/s%d/data", i % 3);
    int n = snprintf(p, sizeof p, "m%d", i);
    publish_ok(pub, t, p, (size_t)n, NULL, 0);
  }
  publish_ok(pub, "twin/other/s0/data", "x", 1, NULL, 0); /* no match */
  flush_ok(pub, "the first messages");
  poll_until(&c, 10, 10, "the first messages");
  for (int i = 0; i < 10; i++) {
    char t[64], p[16];
    snprintf(t, sizeof t, "twin/conn/s%d/data", i % 3);
    snprintf(p, sizeof p, "m%d", i);
    CHECK(strcmp(c.items[i].topic, t) == 0 &&
              strcmp(c.items[i].payload, p) == 0 &&
              c.items[i].len == strlen(p) && !c.items[i].oversize,
          "message %d: got %s '%s', expected %s '%s'", i, c.items[i].topic,
          c.items[i].payload, t, p);
    CHECK(i == 0 || c.items[i].seq > c.items[i - 1].seq, "seq not increasing");
  }
  tw_mqtt_stats st;
  tw_mqtt_stats_get(c.m, &st);
  CHECK(st.unacked == 10 && st.connected, "expected 10 unacknowledged, got %zu",
        st.unacked);
  tw_err err;
  tw_err_init(&err);
  CHECK(tw_mqtt_ack(c.m, 1u << 30, &err) == TW_EINVAL,
        "an ack of an unknown seq was accepted");
  ack_all(&c, 0);
  tw_err_init(&err);
  CHECK(tw_mqtt_ack(c.m, c.items[0].seq, &err) == TW_OK ||
            err.code == TW_EEXIST,
        "a second ack failed oddly: %s", tw_err_msg(&err));
  flush_ok(c.m, "the acknowledgements");

  /* 2. Five more, not acknowledged; the connector goes away. A new one
   * under the same client id gets exactly those five again. */
  for (int i = 10; i < 15; i++) {
    char p[16];
    int n = snprintf(p, sizeof p, "m%d", i);
    publish_ok(pub, "twin/conn/s1/data", p, (size_t)n, NULL, 0);
  }
  flush_ok(pub, "the unacknowledged batch");
  poll_until(&c, 15, 10, "the unacknowledged batch");
  tw_mqtt_stats_get(c.m, &st);
  CHECK(st.unacked == 5, "expected 5 unacknowledged, got %zu", st.unacked);
  tw_mqtt_free(c.m);
  c.m = new_sub();
  size_t mark = c.n;
  poll_until(&c, mark + 5, 10, "the redelivered batch");
  for (int i = 10; i < 15; i++) {
    char p[16];
    snprintf(p, sizeof p, "m%d", i);
    CHECK(has_payload(&c, mark, p), "%s was not redelivered", p);
  }
  /* Nothing acknowledged comes back: the next message is the next one. */
  publish_ok(pub, "twin/conn/s2/data", "m15", 3, NULL, 0);
  flush_ok(pub, "m15");
  poll_until(&c, mark + 6, 10, "m15");
  for (size_t i = mark; i < c.n; i++) {
    int k = atoi(c.items[i].payload + 1);
    CHECK(k >= 10, "acknowledged message %s was delivered again",
          c.items[i].payload);
  }
  CHECK(strcmp(c.items[c.n - 1].payload, "m15") == 0, "expected m15, got %s",
        c.items[c.n - 1].payload);
  ack_all(&c, mark);
  flush_ok(c.m, "the redelivered batch's acknowledgements");

  /* 3. Unacknowledged across a broker restart under the same connector:
   * delivered again, flagged dup; acknowledging the old ones is harmless. */
  mark = c.n;
  for (int i = 16; i < 20; i++) {
    char p[16];
    int n = snprintf(p, sizeof p, "m%d", i);
    publish_ok(pub, "twin/conn/s0/data", p, (size_t)n, NULL, 0);
  }
  flush_ok(pub, "the batch before the restart");
  poll_until(&c, mark + 4, 10, "the batch before the restart");
  restart_broker();
  size_t mark2 = c.n;
  poll_until(&c, mark2 + 4, 15, "the batch after the restart");
  for (size_t i = mark2; i < mark2 + 4; i++)
    CHECK(c.items[i].dup &&
              strcmp(c.items[i].payload, c.items[i - 4].payload) == 0,
          "after the restart: got '%s' dup=%d, expected '%s' dup=1",
          c.items[i].payload, c.items[i].dup, c.items[i - 4].payload);
  ack_all(&c, mark);
  tw_mqtt_stats_get(c.m, &st);
  CHECK(st.reconnects >= 1 && st.unacked == 0 && st.redelivered == 4,
        "stats after the restart: reconnects %llu unacked %zu redelivered "
        "%llu",
        (unsigned long long)st.reconnects, st.unacked,
        (unsigned long long)st.redelivered);

  /* 4. A stream of 200 with a broker restart in the middle: the
   * subscriber acknowledges in its callback, nothing is lost. */
  c.ack = true;
  for (int i = 0; i < 200; i++) {
    char p[16];
    int n = snprintf(p, sizeof p, "r%d", i);
    publish_ok(pub, "twin/conn/s0/data", p, (size_t)n, NULL, 0);
    if (i % 20 == 19) {
      tw_err_init(&err);
      CHECK(tw_mqtt_poll(c.m, 0, collect, &c, NULL, &err) == TW_OK, "poll: %s",
            tw_err_msg(&err));
      tw_mqtt_poll(pub, 0, collect, &c, NULL, NULL);
    }
    if (i == 99)
      restart_broker();
  }
  flush_ok(pub, "the stream across the restart");
  double until = now_s() + 15;
  for (int i = 0; i < 200;) {
    if (c.seen[i]) {
      i++;
      continue;
    }
    CHECK(now_s() < until, "message r%d was lost across the restart", i);
    tw_err_init(&err);
    CHECK(tw_mqtt_poll(c.m, 200, collect, &c, NULL, &err) == TW_OK, "poll: %s",
          tw_err_msg(&err));
  }
  c.ack = false;

  /* 5. Oversize: flagged, cut to max_payload, the size as sent kept. */
  static char big[5000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  mark = c.n;
  publish_ok(pub, "twin/conn/big", big, sizeof big, NULL, 0);
  publish_ok(pub, "twin/conn/big", big, 1024, NULL, 0); /* at the limit */
  flush_ok(pub, "the oversize message");
  poll_until(&c, mark + 2, 10, "the oversize message");
  CHECK(c.items[mark].oversize && c.items[mark].len == 1024 &&
            c.items[mark].wire_len == sizeof big &&
            memcmp(c.items[mark].payload, big, 63) == 0,
        "oversize message: oversize=%d len=%zu wire_len=%zu",
        c.items[mark].oversize, c.items[mark].len, c.items[mark].wire_len);
  CHECK(!c.items[mark + 1].oversize && c.items[mark + 1].len == 1024,
        "a message of exactly max_payload was flagged");
  ack_all(&c, mark);

  /* 6. User properties (a dead letter with Kafka Connect's header names)
   * arrive in order at the subscriber. */
  const tw_mqtt_prop props[] = {
      {"__connect.errors.topic", "twin/conn/s0/data"},
      {"__connect.errors.exception.message", "field 'temp': 512 > 400"},
      {"__connect.errors.exception.class.name", "tw.EVALIDATE"},
      {"note", "ünïcödé, twice"},
  };
  mark = c.n;
  publish_ok(pub, "twin/conn/dlq/data", "{\"temp\":512}", 12, props, 4);
  flush_ok(pub, "the dead letter");
  poll_until(&c, mark + 1, 10, "the dead letter");
  got *g = &c.items[mark];
  CHECK(g->nprops == 4, "dead letter: %zu properties, expected 4", g->nprops);
  for (int i = 0; i < 4; i++)
    CHECK(strcmp(g->props[i][0], props[i].key) == 0 &&
              strcmp(g->props[i][1], props[i].value) == 0,
          "property %d: got %s=%s", i, g->props[i][0], g->props[i][1]);
  CHECK(strcmp(g->payload, "{\"temp\":512}") == 0, "dead letter payload");
  ack_all(&c, mark);
  flush_ok(c.m, "the last acknowledgements");

  /* Publishing errors: a wildcard topic, properties over MQTT v3.1.1. */
  tw_err_init(&err);
  CHECK(tw_mqtt_publish(pub, "twin/+/x", "x", 1, 1, false, NULL, 0, &err) ==
                TW_EINVAL &&
            strstr(tw_err_msg(&err), "twin/+/x") != NULL,
        "publish to a wildcard: %s", tw_err_msg(&err));
  tw_mqtt_opts o3;
  tw_mqtt_opts_init(&o3);
  o3.host = host;
  o3.port = port;
  o3.clean_start = true;
  o3.protocol = 311;
  tw_mqtt *v3 = new_ok(&o3, "a v3.1.1 publisher");
  tw_err_init(&err);
  CHECK(tw_mqtt_publish(v3, "twin/conn/s0/data", "x", 1, 1, false, props, 1,
                        &err) == TW_ENOTSUP,
        "user properties over v3.1.1: %s", tw_err_msg(&err));
  tw_mqtt_free(v3);

  tw_mqtt_stats_get(c.m, &st);
  tw_mqtt_stats ps;
  tw_mqtt_stats_get(pub, &ps);
  CHECK(st.oversize == 1 && st.unacked == 0 && ps.unconfirmed == 0 &&
            ps.publish_errors == 0,
        "final stats: oversize %llu unacked %zu unconfirmed %zu errors %llu",
        (unsigned long long)st.oversize, st.unacked, ps.unconfirmed,
        (unsigned long long)ps.publish_errors);
  printf("mqtt_connector: subscriber received %llu (redelivered %llu, "
         "reconnects %llu), publisher sent %llu (reconnects %llu)\n",
         (unsigned long long)st.received, (unsigned long long)st.redelivered,
         (unsigned long long)st.reconnects, (unsigned long long)ps.published,
         (unsigned long long)ps.reconnects);
  tw_mqtt_free(c.m);
  tw_mqtt_free(pub);
  printf("mqtt_connector: ok\n");
  return 0;
}
