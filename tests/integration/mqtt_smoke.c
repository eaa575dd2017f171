/*
 * mqtt_smoke.c - the MQTT broker of scripts/mosquitto with Debian's
 * libmosquitto, as the MQTT connector will use them: a persistent session
 * (clean session off) subscribed at QoS 1 keeps receiving across a broker
 * restart. Run as `scripts/mosquitto run test_integration_mqtt_smoke`
 * (TW_MQTT_BROKER = 127.0.0.1:PORT, TW_MQTT_DIR = the broker's directory,
 * used to restart it).
 *
 * The subscriber takes the first 100 of 300 QoS 1 messages and leaves;
 * 200 more are published while it is away; the broker restarts (its
 * persistence file keeps the session and its queue); the subscriber comes
 * back under the same client id and must receive every one of the 200,
 * none lost. Every wait has a deadline and alarm() bounds the whole run.
 */
#include <mosquitto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "twin/smoke"
#define TOTAL 300
#define FIRST 100

static bool seen[TOTAL];
static int received;
static int acked;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "mqtt_smoke: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_message(struct mosquitto *m, void *ud,
                       const struct mosquitto_message *msg) {
  (void)m;
  (void)ud;
  char buf[32];
  if (msg->payloadlen <= 0 || msg->payloadlen >= (int)sizeof buf)
    fail("a message of unexpected length on %s", msg->topic);
  memcpy(buf, msg->payload, (size_t)msg->payloadlen);
  buf[msg->payloadlen] = '\0';
  int i = atoi(buf);
  if (i < 0 || i >= TOTAL)
    fail("a message with unexpected payload '%s'", buf);
  if (!seen[i])
    received++;
  seen[i] = true;
}

static void on_publish(struct mosquitto *m, void *ud, int mid) {
  (void)m;
  (void)ud;
  (void)mid;
  acked++;
}

static void parse_broker(char *host, size_t cap, int *port) {
  const char *b = getenv("TW_MQTT_BROKER");
  if (b == NULL)
    fail("%s is not set (run under scripts/mosquitto run)", "TW_MQTT_BROKER");
  const char *colon = strrchr(b, ':');
  if (colon == NULL || (size_t)(colon - b) >= cap)
    fail("bad broker address '%s'", b);
  memcpy(host, b, (size_t)(colon - b));
  host[colon - b] = '\0';
  *port = atoi(colon + 1);
}

static struct mosquitto *client(const char *id, bool clean) {
  struct mosquitto *m = mosquitto_new(id, clean, NULL);
  if (m == NULL)
    fail("cannot create client %s", id);
  mosquitto_message_callback_set(m, on_message);
  mosquitto_publish_callback_set(m, on_publish);
  return m;
}

static void connect_to(struct mosquitto *m, const char *what) {
  char host[128];
  int port;
  parse_broker(host, sizeof host, &port);
  double until = now_s() + 20;
  while (mosquitto_connect(m, host, port, 30) != MOSQ_ERR_SUCCESS) {
    if (now_s() > until)
      fail("%s cannot connect to the broker", what);
    usleep(100000);
  }
}

/* Runs the client's loop until cond() holds or the deadline passes. */
static void loop_until(struct mosquitto *m, bool (*cond)(void), double seconds,
                       const char *what) {
  double until = now_s() + seconds;
  while (!cond()) {
    int rc = mosquitto_loop(m, 100, 1);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
      fail("loop failed while waiting for %s", what);
    if (now_s() > until)
      fail("timed out waiting for %s", what);
  }
}

static int want_acks;
static bool acks_in(void) { return acked >= want_acks; }
static int want_received;
static bool received_in(void) { return received >= want_received; }

static void publish_range(int from, int to) {
  struct mosquitto *p = client("twin-smoke-pub", true);
  connect_to(p, "the publisher");
  acked = 0;
  for (int i = from; i < to; i++) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%d", i);
    if (mosquitto_publish(p, NULL, TOPIC, n, buf, 1, false) != MOSQ_ERR_SUCCESS)
      fail("cannot publish %s", buf);
  }
  want_acks = to - from;
  loop_until(p, acks_in, 30, "the broker's PUBACKs");
  mosquitto_disconnect(p);
  mosquitto_destroy(p);
}

static bool subscribed;
static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n,
                         const int *qos) {
  (void)m;
  (void)ud;
  (void)mid;
  if (n != 1 || qos[0] != 1)
    fail("the subscription was granted QoS %d", n > 0 ? qos[0] : -1);
  subscribed = true;
}
static bool is_subscribed(void) { return subscribed; }

int main(void) {
  alarm(120);
  mosquitto_lib_init();
  const char *dir = getenv("TW_MQTT_DIR");
  if (dir == NULL)
    fail("%s is not set (run under scripts/mosquitto run)", "TW_MQTT_DIR");

  /* A persistent session subscribed at QoS 1. */
  struct mosquitto *s = client("twin-smoke-sub", false);
  mosquitto_subscribe_callback_set(s, on_subscribe);
  connect_to(s, "the subscriber");
  if (mosquitto_subscribe(s, NULL, TOPIC, 1) != MOSQ_ERR_SUCCESS)
    fail("cannot subscribe to %s", TOPIC);
  loop_until(s, is_subscribed, 20, "the SUBACK");

  publish_range(0, FIRST);
  want_received = FIRST;
  loop_until(s, received_in, 30, "the first messages");
  mosquitto_disconnect(s);
  mosquitto_loop(s, 100, 1);

  /* Published while the subscriber is away, then the broker restarts. */
  publish_range(FIRST, TOTAL);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s/scripts/mosquitto restart '%s' >/dev/null",
           TW_TEST_SOURCE_DIR, dir);
  if (system(cmd) != 0)
    fail("%s failed", cmd);

  /* The same client id, clean session off: the queue is delivered. */
  connect_to(s, "the subscriber, after the restart");
  want_received = TOTAL;
  loop_until(s, received_in, 30, "the queued messages");
  for (int i = 0; i < TOTAL; i++)
    if (!seen[i])
      fail("message %d was lost", i);
  mosquitto_disconnect(s);
  mosquitto_destroy(s);
  mosquitto_lib_cleanup();
  printf("mqtt_smoke: %d messages, %d queued across a broker restart, none "
         "lost\n",
         TOTAL, TOTAL - FIRST);
  return 0;
}
