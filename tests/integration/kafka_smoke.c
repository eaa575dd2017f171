/*
 * kafka_smoke.c - proves that the test broker of scripts/kafka and Debian's
 * librdkafka work together for what the stream connectors rely on: topic
 * creation through the admin API, an idempotent producer, a consumer group
 * with manual commits, and a broker restart in the middle of it all.
 *
 * Runs under `scripts/kafka run`, which passes the broker's address in
 * TW_KAFKA_BOOTSTRAP and its directory in TW_KAFKA_DIR (for `scripts/kafka
 * restart`). The steps:
 *
 *   1. create a topic of 3 partitions (admin API);
 *   2. produce the first FIRST_BATCH of N_MESSAGES keyed messages (the value
 *      is the sequence number) with an idempotent producer;
 *   3. consumer 1 (group G, enable.auto.commit=false) processes COMMITTED
 *      messages, storing each offset after processing and committing
 *      synchronously every COMMIT_EVERY; then processes UNCOMMITTED more
 *      without committing and closes;
 *   4. the broker restarts (same ports, same data);
 *   5. the same producer sends the rest, so the log holds N_MESSAGES;
 *   6. consumer 2 (group G) consumes until every sequence number was seen.
 *
 * Checks: the log holds exactly N_MESSAGES records (the idempotent producer
 * wrote none twice); consumer 2 starts each partition at the offset
 * consumer 1 committed (so the commit survived the restart) and receives
 * exactly the messages from there on (the uncommitted ones again: at least
 * once); every sequence number is seen, none is lost; a message seen twice
 * has the same partition and offset both times; each key stays on one
 * partition, in production order. Every wait has a deadline and an alarm
 * bounds the whole run, so the test never hangs. Exits 0 on success, 1
 * with a message naming the failed check otherwise.
 */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "twin-smoke"
#define N_PARTITIONS 3
#define N_MESSAGES 1000
#define FIRST_BATCH 600
#define N_KEYS 20
#define COMMITTED 300
#define COMMIT_EVERY 100
#define UNCOMMITTED 30
#define GROUP "twin-smoke-group"
/* The whole run; below ctest's TIMEOUT so the message is ours. */
#define ALARM_SECONDS 200
/* One step (create, produce, a consumer's phase). */
#define STEP_MS 60000

/* What was seen of one sequence number. */
typedef struct {
  int times;
  int32_t partition;
  int64_t offset;
} seen_t;

static seen_t seen[N_MESSAGES];
static int delivered_ok, delivered_err;
static const char *bootstrap;

_Noreturn static void fail(const char *fmt, ...) {
  va_list ap;
  (void)fputs("kafka_smoke: FAIL: ", stderr);
  va_start(ap, fmt);
  (void)vfprintf(stderr, fmt, ap);
  va_end(ap);
  (void)fputc('\n', stderr);
  exit(1);
}

static void note(const char *fmt, ...) {
  va_list ap;
  (void)fputs("kafka_smoke: ", stderr);
  va_start(ap, fmt);
  (void)vfprintf(stderr, fmt, ap);
  va_end(ap);
  (void)fputc('\n', stderr);
}

static void on_alarm(int sig) {
  static const char msg[] =
      "kafka_smoke: FAIL: the test did not finish within its time limit\n";
  (void)sig;
  ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)n;
  _exit(1);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
  char err[256];
  if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK)
    fail("config %s=%s: %s", name, value, err);
}

/* Settings both clients share: reconnect quickly while the broker
 * restarts (the default backoff grows to 10 s) and keep the log quiet
 * about the connections the restart breaks. */
static rd_kafka_conf_t *base_conf(const char *client_id) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", bootstrap);
  set(conf, "client.id", client_id);
  set(conf, "reconnect.backoff.ms", "100");
  set(conf, "reconnect.backoff.max.ms", "500");
  set(conf, "log.connection.close", "false");
  set(conf, "socket.timeout.ms", "10000");
  return conf;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) {
    delivered_err++;
    note("delivery failed: %s", rd_kafka_err2str(m->err));
  } else {
    delivered_ok++;
  }
}

static rd_kafka_t *producer_new(void) {
  char err[256];
  rd_kafka_conf_t *conf = base_conf("twin-smoke-producer");
  set(conf, "enable.idempotence", "true");
  set(conf, "linger.ms", "5");
  set(conf, "message.timeout.ms", "60000");
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk)
    fail("producer: %s", err);
  return rk;
}

/* Creates TOPIC through the admin API on the producer's handle. */
static void create_topic(rd_kafka_t *rk) {
  char err[256];
  rd_kafka_NewTopic_t *nt =
      rd_kafka_NewTopic_new(TOPIC, N_PARTITIONS, 1, err, sizeof err);
  if (!nt)
    fail("NewTopic: %s", err);
  rd_kafka_AdminOptions_t *opt =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  if (rd_kafka_AdminOptions_set_operation_timeout(opt, 30000, err,
                                                  sizeof err) ||
      rd_kafka_AdminOptions_set_request_timeout(opt, 30000, err, sizeof err))
    fail("admin options: %s", err);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, STEP_MS);
  if (!ev)
    fail("CreateTopics: no answer within %d ms", STEP_MS);
  if (rd_kafka_event_error(ev))
    fail("CreateTopics: %s", rd_kafka_event_error_string(ev));
  size_t n = 0;
  const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
      rd_kafka_event_CreateTopics_result(ev), &n);
  if (n != 1)
    fail("CreateTopics: %zu results, expected 1", n);
  if (rd_kafka_topic_result_error(res[0]))
    fail("CreateTopics %s: %s", TOPIC,
         rd_kafka_topic_result_error_string(res[0]));
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_NewTopic_destroy(nt);
}

static void key_of(int seq, char *buf, size_t size) {
  (void)snprintf(buf, size, "sensor-%02d", seq % N_KEYS);
}

/* Produces sequence numbers [from, to) and waits until each is acked. */
static void produce(rd_kafka_t *rk, int from, int to) {
  for (int seq = from; seq < to; seq++) {
    char key[32], value[32];
    key_of(seq, key, sizeof key);
    (void)snprintf(value, sizeof value, "%d", seq);
    rd_kafka_resp_err_t e;
    int64_t deadline = now_ms() + STEP_MS;
    while ((e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(value, strlen(value)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      if (now_ms() > deadline)
        fail("produce: the queue stayed full");
      rd_kafka_poll(rk, 100);
    }
    if (e)
      fail("produce %d: %s", seq, rd_kafka_err2str(e));
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_resp_err_t e = rd_kafka_flush(rk, STEP_MS);
  if (e)
    fail("flush: %s (%d messages outstanding)", rd_kafka_err2str(e),
         rd_kafka_outq_len(rk));
  if (delivered_err)
    fail("%d deliveries failed", delivered_err);
  if (delivered_ok != to)
    fail("%d deliveries acknowledged, expected %d", delivered_ok, to);
}

static rd_kafka_t *consumer_new(const char *client_id) {
  char err[256];
  rd_kafka_conf_t *conf = base_conf(client_id);
  set(conf, "group.id", GROUP);
  set(conf, "enable.auto.commit", "false");
  /* Offsets are stored by hand once a message is processed, so a commit
   * never covers a message that was only fetched. */
  set(conf, "enable.auto.offset.store", "false");
  set(conf, "auto.offset.reset", "earliest");
  set(conf, "session.timeout.ms", "10000");
  set(conf, "heartbeat.interval.ms", "1000");
  set(conf, "fetch.wait.max.ms", "100");
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk)
    fail("consumer: %s", err);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *topics =
      rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, TOPIC, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e)
    fail("subscribe: %s", rd_kafka_err2str(e));
  return rk;
}

/* "Processes" one message: parses its sequence number, checks its key and
 * records where it was seen. Returns the sequence number. */
static int process(const rd_kafka_message_t *m) {
  char value[32], key[32];
  if (m->len == 0 || m->len >= sizeof value)
    fail("message at %" PRId32 "/%" PRId64 ": bad value", m->partition,
         m->offset);
  memcpy(value, m->payload, m->len);
  value[m->len] = '\0';
  char *end;
  long seq = strtol(value, &end, 10);
  if (*end || seq < 0 || seq >= N_MESSAGES)
    fail("message at %" PRId32 "/%" PRId64 ": bad sequence number '%s'",
         m->partition, m->offset, value);
  key_of((int)seq, key, sizeof key);
  if (m->key_len != strlen(key) || memcmp(m->key, key, m->key_len) != 0)
    fail("message %ld: wrong key", seq);
  seen_t *s = &seen[seq];
  if (s->times && (s->partition != m->partition || s->offset != m->offset))
    fail("message %ld seen at %" PRId32 "/%" PRId64 " and at %" PRId32
         "/%" PRId64 ": written twice",
         seq, s->partition, s->offset, m->partition, m->offset);
  s->times++;
  s->partition = m->partition;
  s->offset = m->offset;
  return (int)seq;
}

/* Returns the next message, or NULL if none came before the deadline.
 * Consumer errors are logged and skipped: while the broker restarts,
 * transport errors are expected and the client recovers by itself. */
static rd_kafka_message_t *next_message(rd_kafka_t *rk, int64_t deadline,
                                        const char *what) {
  while (now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (!m->err)
      return m;
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      note("%s: consumer error: %s", what, rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
  }
  return NULL;
}

static void store_offset(rd_kafka_t *rk, const rd_kafka_message_t *m) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, TOPIC, m->partition)->offset =
      m->offset + 1;
  rd_kafka_resp_err_t e = rd_kafka_offsets_store(rk, l);
  if (!e && l->elems[0].err)
    e = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    fail("offsets_store: %s", rd_kafka_err2str(e));
}

/* Reads the group's committed offsets of every partition from the broker
 * into committed[] (-1 when none). */
static void read_committed(rd_kafka_t *rk, int64_t committed[]) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(N_PARTITIONS);
  for (int p = 0; p < N_PARTITIONS; p++)
    rd_kafka_topic_partition_list_add(l, TOPIC, p);
  rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, STEP_MS);
  if (e)
    fail("committed: %s", rd_kafka_err2str(e));
  for (int p = 0; p < N_PARTITIONS; p++) {
    if (l->elems[p].err)
      fail("committed %s/%d: %s", TOPIC, p, rd_kafka_err2str(l->elems[p].err));
    committed[p] = l->elems[p].offset;
  }
  rd_kafka_topic_partition_list_destroy(l);
}

/* Consumer 1: COMMITTED messages processed and committed, UNCOMMITTED
 * more processed and not committed. Returns the committed offsets. */
static void consume_first(int64_t committed[]) {
  rd_kafka_t *rk = consumer_new("twin-smoke-consumer-1");
  int64_t deadline = now_ms() + STEP_MS;
  for (int n = 0; n < COMMITTED + UNCOMMITTED; n++) {
    rd_kafka_message_t *m = next_message(rk, deadline, "consumer 1");
    if (!m)
      fail("consumer 1: %d of %d messages within %d ms", n,
           COMMITTED + UNCOMMITTED, STEP_MS);
    process(m);
    if (n < COMMITTED)
      store_offset(rk, m);
    rd_kafka_message_destroy(m);
    if (n + 1 <= COMMITTED && (n + 1) % COMMIT_EVERY == 0) {
      rd_kafka_resp_err_t e = rd_kafka_commit(rk, NULL, 0);
      if (e)
        fail("consumer 1: commit after %d messages: %s", n + 1,
             rd_kafka_err2str(e));
    }
  }
  read_committed(rk, committed);
  int64_t total = 0;
  for (int p = 0; p < N_PARTITIONS; p++)
    total += committed[p] < 0 ? 0 : committed[p];
  if (total != COMMITTED)
    fail("consumer 1: the broker holds %" PRId64
         " committed messages, expected %d",
         total, COMMITTED);
  /* With enable.auto.commit=false, closing commits nothing: the last
   * UNCOMMITTED messages must come again. */
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk);
  if (e)
    fail("consumer 1: close: %s", rd_kafka_err2str(e));
  rd_kafka_destroy(rk);
}

static void restart_broker(void) {
  const char *dir = getenv("TW_KAFKA_DIR");
  if (!dir)
    fail("TW_KAFKA_DIR is unset");
  char cmd[4096];
  int n =
      snprintf(cmd, sizeof cmd, "'%s/scripts/kafka' restart '%s' >/dev/null",
               TW_TEST_SOURCE_DIR, dir);
  if (n < 0 || (size_t)n >= sizeof cmd || strchr(dir, '\''))
    fail("TW_KAFKA_DIR: unusable path");
  int64_t t0 = now_ms();
  int rc = system(cmd);
  if (rc != 0)
    fail("scripts/kafka restart failed (status %d)", rc);
  note("broker restarted in %.1f s", (double)(now_ms() - t0) / 1000.0);
}

/* Consumer 2: from the committed offsets to the end of every partition. */
static void consume_rest(const int64_t committed[]) {
  rd_kafka_t *rk = consumer_new("twin-smoke-consumer-2");
  int64_t first[N_PARTITIONS];
  for (int p = 0; p < N_PARTITIONS; p++)
    first[p] = -1;
  int want = N_MESSAGES - COMMITTED, got = 0;
  int64_t deadline = now_ms() + STEP_MS;
  while (got < want) {
    rd_kafka_message_t *m = next_message(rk, deadline, "consumer 2");
    if (!m)
      fail("consumer 2: %d of %d messages within %d ms", got, want, STEP_MS);
    if (m->partition < 0 || m->partition >= N_PARTITIONS)
      fail("consumer 2: message from partition %" PRId32, m->partition);
    if (first[m->partition] < 0) {
      first[m->partition] = m->offset;
      int64_t c = committed[m->partition] < 0 ? 0 : committed[m->partition];
      if (m->offset != c)
        fail("consumer 2: partition %" PRId32 " resumed at offset %" PRId64
             ", but %" PRId64 " was committed",
             m->partition, m->offset, c);
    }
    process(m);
    store_offset(rk, m);
    rd_kafka_message_destroy(m);
    got++;
    if (got % COMMIT_EVERY == 0 || got == want) {
      rd_kafka_resp_err_t e = rd_kafka_commit(rk, NULL, 0);
      if (e)
        fail("consumer 2: commit: %s", rd_kafka_err2str(e));
    }
  }
  /* Nothing more may come: the log holds N_MESSAGES records. */
  rd_kafka_message_t *extra = next_message(rk, now_ms() + 1000, "consumer 2");
  if (extra)
    fail("consumer 2: an extra message at %" PRId32 "/%" PRId64,
         extra->partition, extra->offset);
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(rk);
  if (e)
    fail("consumer 2: close: %s", rd_kafka_err2str(e));
  rd_kafka_destroy(rk);
}

/* The log must hold exactly N_MESSAGES records: with idempotence, retries
 * across the restart wrote none twice. */
static void check_log_size(rd_kafka_t *rk) {
  int64_t total = 0;
  for (int p = 0; p < N_PARTITIONS; p++) {
    int64_t lo, hi;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, TOPIC, p, &lo, &hi, STEP_MS);
    if (e)
      fail("watermarks of %s/%d: %s", TOPIC, p, rd_kafka_err2str(e));
    total += hi - lo;
  }
  if (total != N_MESSAGES)
    fail("the topic holds %" PRId64 " messages, %d were produced", total,
         N_MESSAGES);
}

/* Every sequence number seen; each key on one partition, in order. */
static void check_seen(void) {
  int twice = 0;
  for (int seq = 0; seq < N_MESSAGES; seq++) {
    if (!seen[seq].times)
      fail("message %d was never consumed", seq);
    twice += seen[seq].times > 1;
  }
  if (twice != UNCOMMITTED)
    fail("%d messages consumed twice, expected the %d uncommitted ones", twice,
         UNCOMMITTED);
  for (int k = 0; k < N_KEYS; k++) {
    for (int seq = k + N_KEYS; seq < N_MESSAGES; seq += N_KEYS) {
      const seen_t *a = &seen[seq - N_KEYS], *b = &seen[seq];
      if (a->partition != b->partition)
        fail("key sensor-%02d on partitions %" PRId32 " and %" PRId32, k,
             a->partition, b->partition);
      if (a->offset >= b->offset)
        fail("key sensor-%02d: message %d at offset %" PRId64
             " before message %d at %" PRId64,
             k, seq, b->offset, seq - N_KEYS, a->offset);
    }
  }
}

int main(void) {
  bootstrap = getenv("TW_KAFKA_BOOTSTRAP");
  if (!bootstrap || !*bootstrap || !getenv("TW_KAFKA_DIR"))
    fail("TW_KAFKA_BOOTSTRAP and TW_KAFKA_DIR are unset: run under "
         "scripts/kafka run");
  if (signal(SIGALRM, on_alarm) == SIG_ERR)
    fail("signal(SIGALRM) failed");
  alarm(ALARM_SECONDS);
  int64_t t0 = now_ms();
  note("librdkafka %s, broker %s", rd_kafka_version_str(), bootstrap);

  rd_kafka_t *producer = producer_new();
  create_topic(producer);
  produce(producer, 0, FIRST_BATCH);

  int64_t committed[N_PARTITIONS];
  consume_first(committed);
  restart_broker();
  produce(producer, FIRST_BATCH, N_MESSAGES);
  check_log_size(producer);
  consume_rest(committed);
  check_seen();

  rd_kafka_destroy(producer);
  if (rd_kafka_wait_destroyed(10000) != 0)
    fail("librdkafka handles still alive after 10 s");
  note("ok: %d messages, %d consumed twice, in %.1f s", N_MESSAGES, UNCOMMITTED,
       (double)(now_ms() - t0) / 1000.0);
  return 0;
}
