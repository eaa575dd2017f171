/*
 * kafka_connector.c - the Kafka connector (twin/kafka.h) against a real
 * broker, used the way the ingest pipeline uses it: records are polled,
 * kept, and only then marked and committed (at least once); records that
 * fail validation go to a dead-letter topic.
 *
 * Runs under `scripts/kafka run` (TW_KAFKA_BOOTSTRAP, TW_KAFKA_DIR). Steps:
 *
 *   1. topics: TOPIC of 3 partitions and DLQ of 1 (admin API);
 *   2. a consumer of a topic that does not exist: poll fails with
 *      TW_ENOENT naming it;
 *   3. FIRST_BATCH of N keyed records (value "payload-<seq>", headers
 *      seq, source and a null "trace") from the connector's idempotent
 *      producer;
 *   4. consumer A (group G) marks every record and commits every
 *      COMMIT_EVERY; after RESTART_AT records the broker restarts, the
 *      same producer sends records up to SECOND_BATCH, and A goes on
 *      through the restart (fetching them) up to MARKED records; then it takes
 * UNMARKED more without marking them (as if the process died before keeping
 * them) and closes;
 *   5. consumer B (group G) takes B_ALONE records, then consumer C joins
 *      the group: the rebalance revokes B's partitions, which commits B's
 *      marks first; once both hold their new partitions the last records
 *      (from SECOND_BATCH) are sent, and B and C share the rest;
 *   6. every record whose seq % DLQ_MOD == DLQ_REM "fails validation" and
 *      is dead-lettered (then flushed, then marked);
 *   7. a reader takes the DLQ topic back;
 *   8. consumers E and D (groups of their own) read the whole topic with a
 *      rank (the records taken from the partition so far: the partition
 *      read least comes first) and an assignment callback; D pauses
 *      partition 0 after its first 30 of it and resumes it 90 records
 *      later.
 *
 * Checks: the log holds exactly N records (no retry across the restart
 * wrote one twice); A counted the restart's transport errors; A's commits
 * survive the restart and B resumes each partition at them; no record is lost;
 * the records seen twice are exactly A's unmarked ones; no marked record is
 * ever delivered again (in particular not to C after the rebalance); keys
 * stay on one partition in order; the group's final committed offsets are
 * the ends of the partitions; every dead letter carries the original key,
 * value, timestamp and headers and each of Kafka Connect's
 * __connect.errors.* headers with the expected value; E and D are told of
 * their three partitions before the first record, E reads the partition
 * read least first, D takes nothing of its paused partition, and both get
 * every record exactly once. Every wait has a
 * deadline and an alarm bounds the run.
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

#include "twin/kafka.h"

#define TOPIC "twin-conn"
#define DLQ "twin-conn-dlq"
#define MISSING "twin-conn-no-such-topic"
#define GROUP "twin-conn-group"
#define N_PARTITIONS 3
#define N 1000
#define FIRST_BATCH 600
#define SECOND_BATCH 900
#define N_KEYS 20
#define COMMIT_EVERY 50
#define RESTART_AT 300
#define MARKED 600
#define UNMARKED 40
#define B_ALONE 150
#define DLQ_MOD 97
#define DLQ_REM 5
#define DLQ_MAX 64
#define N_CONNECT_HEADERS 10
#define ALARM_SECONDS 150
#define STEP_MS 60000

typedef struct seen_t {
  int times;
  bool marked;
  int32_t partition;
  int64_t offset;
} seen_t;

static seen_t seen[N];
static const char *bootstrap;
static tw_kafka_producer *producer;

/* Dead letters sent: where the original was, its seq and timestamp. */
typedef struct dlq_sent {
  int32_t partition;
  int64_t offset;
  int seq;
  int64_t ts;
  int read;
} dlq_sent;
static dlq_sent sent[DLQ_MAX];
static int nsent;

static void fail(const char *fmt, ...) TW_PRINTF(1, 2);
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fputs("kafka_connector: FAIL: ", stderr);
  (void)vfprintf(stderr, fmt, ap);
  va_end(ap);
  (void)fputc('\n', stderr);
  exit(1);
}

static void note(const char *fmt, ...) TW_PRINTF(1, 2);
static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fputs("kafka_connector: ", stderr);
  (void)vfprintf(stderr, fmt, ap);
  va_end(ap);
  (void)fputc('\n', stderr);
}

static void on_alarm(int sig) {
  static const char msg[] =
      "kafka_connector: FAIL: the test did not finish within its time limit\n";
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

static void check(int rc, const tw_err *err, const char *what) {
  if (rc != TW_OK)
    fail("%s: %s: %s", what, tw_err_name(rc), tw_err_msg(err));
}

/* --- Raw librdkafka: topics and committed offsets -------------------------
 */

static rd_kafka_t *admin_new(void) {
  char es[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, es, sizeof es) ||
      rd_kafka_conf_set(conf, "group.id", GROUP, es, sizeof es))
    fail("admin config: %s", es);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
  if (rk == NULL)
    fail("admin handle: %s", es);
  return rk;
}

static void create_topics(rd_kafka_t *rk) {
  char es[256];
  rd_kafka_NewTopic_t *nt[2] = {
      rd_kafka_NewTopic_new(TOPIC, N_PARTITIONS, 1, es, sizeof es),
      rd_kafka_NewTopic_new(DLQ, 1, 1, es, sizeof es)};
  if (nt[0] == NULL || nt[1] == NULL)
    fail("NewTopic: %s", es);
  rd_kafka_AdminOptions_t *opt =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  if (rd_kafka_AdminOptions_set_operation_timeout(opt, 30000, es, sizeof es))
    fail("admin options: %s", es);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, nt, 2, opt, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, STEP_MS);
  if (ev == NULL)
    fail("CreateTopics: no answer");
  if (rd_kafka_event_error(ev))
    fail("CreateTopics: %s", rd_kafka_event_error_string(ev));
  size_t n = 0;
  const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
      rd_kafka_event_CreateTopics_result(ev), &n);
  for (size_t i = 0; i < n; i++)
    if (rd_kafka_topic_result_error(res[i]))
      fail("CreateTopics %s: %s", rd_kafka_topic_result_name(res[i]),
           rd_kafka_topic_result_error_string(res[i]));
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(opt);
  rd_kafka_NewTopic_destroy(nt[0]);
  rd_kafka_NewTopic_destroy(nt[1]);
}

/* The group's committed offsets of TOPIC (0 when none). */
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
      fail("committed %d: %s", p, rd_kafka_err2str(l->elems[p].err));
    /* No commit yet (RD_KAFKA_OFFSET_INVALID): the group starts at 0. */
    committed[p] = l->elems[p].offset < 0 ? 0 : l->elems[p].offset;
  }
  rd_kafka_topic_partition_list_destroy(l);
}

static void high_watermarks(rd_kafka_t *rk, int64_t hi[]) {
  int64_t total = 0;
  for (int p = 0; p < N_PARTITIONS; p++) {
    int64_t lo;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, TOPIC, p, &lo, &hi[p], STEP_MS);
    if (e)
      fail("watermarks %d: %s", p, rd_kafka_err2str(e));
    if (hi[p] - lo <= 0)
      fail("partition %d holds no record", p);
    total += hi[p] - lo;
  }
  if (total != N)
    fail("the topic holds %" PRId64 " records, %d were sent", total, N);
}

static void restart_broker(void) {
  const char *dir = getenv("TW_KAFKA_DIR");
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

/* --- The connector --------------------------------------------------------
 */

/* Quick reconnects while the broker restarts, quick group changes. */
static const char *const consumer_config[] = {
    "reconnect.backoff.ms=100", "reconnect.backoff.max.ms=500",
    "session.timeout.ms=6000",  "heartbeat.interval.ms=500",
    "fetch.wait.max.ms=100",    "socket.timeout.ms=10000"};

static tw_kafka_consumer *consumer_new(const char *group, const char *topic,
                                       const char *client_id) {
  const char *topics[] = {topic};
  tw_kafka_consumer_opts o = {0};
  o.brokers = bootstrap;
  o.group = group;
  o.client_id = client_id;
  o.topics = topics;
  o.ntopics = 1;
  o.config = consumer_config;
  o.nconfig = sizeof consumer_config / sizeof consumer_config[0];
  tw_kafka_consumer *c = NULL;
  tw_err err;
  tw_err_init(&err);
  check(tw_kafka_consumer_new(&o, &c, &err), &err, client_id);
  return c;
}

static void key_of(int seq, char *buf, size_t size) {
  (void)snprintf(buf, size, "sensor-%02d", seq % N_KEYS);
}

static void producer_new(void) {
  static const char *const config[] = {"reconnect.backoff.ms=100",
                                       "reconnect.backoff.max.ms=500"};
  tw_kafka_producer_opts o = {0};
  o.brokers = bootstrap;
  o.client_id = "twin-conn-producer";
  o.config = config;
  o.nconfig = 2;
  tw_err err;
  tw_err_init(&err);
  check(tw_kafka_producer_new(&o, &producer, &err), &err, "producer");
}

/* Sends records [from, to) and waits for their delivery. */
static void produce(int from, int to) {
  tw_err err;
  tw_err_init(&err);
  for (int seq = from; seq < to; seq++) {
    char key[32], value[32], sq[16], src[16];
    key_of(seq, key, sizeof key);
    (void)snprintf(value, sizeof value, "payload-%d", seq);
    (void)snprintf(sq, sizeof sq, "%d", seq);
    (void)snprintf(src, sizeof src, "rig-%d", seq % 7);
    tw_kafka_header h[] = {{"seq", sq, strlen(sq)},
                           {"source", src, strlen(src)},
                           {"trace", NULL, 0}};
    check(tw_kafka_producer_send(producer, TOPIC, -1, key, strlen(key), value,
                                 strlen(value), h, 3, &err),
          &err, "send");
  }
  check(tw_kafka_producer_flush(producer, STEP_MS, &err), &err, "flush");
  tw_kafka_producer_stats st;
  tw_kafka_producer_stats_get(producer, &st);
  uint64_t want = (uint64_t)to + (uint64_t)nsent;
  if (st.sent != want || st.delivered != want || st.failed != 0)
    fail("producer: %" PRIu64 " sent, %" PRIu64 " delivered, %" PRIu64
         " failed; expected %" PRIu64 ", %" PRIu64 ", 0",
         st.sent, st.delivered, st.failed, want, want);
}

static const tw_kafka_header *header(const tw_kafka_record *r,
                                     const char *name) {
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i].name, name) == 0)
      return &r->headers[i];
  return NULL;
}

static bool header_is(const tw_kafka_header *h, const char *s) {
  return h != NULL && h->value != NULL && h->len == strlen(s) &&
         memcmp(h->value, s, h->len) == 0;
}

/* The record's sequence number, after checking its key and value. */
static int record_seq(const tw_kafka_record *r) {
  const tw_kafka_header *h = header(r, "seq");
  char buf[16];
  if (h == NULL || h->value == NULL || h->len == 0 || h->len >= sizeof buf)
    fail("record %" PRId32 "/%" PRId64 ": no seq header", r->partition,
         r->offset);
  memcpy(buf, h->value, h->len);
  buf[h->len] = '\0';
  int seq = atoi(buf);
  if (seq < 0 || seq >= N)
    fail("record %" PRId32 "/%" PRId64 ": seq %s", r->partition, r->offset,
         buf);
  char key[32], value[32];
  key_of(seq, key, sizeof key);
  (void)snprintf(value, sizeof value, "payload-%d", seq);
  if (r->key == NULL || r->key_len != strlen(key) ||
      memcmp(r->key, key, r->key_len) != 0)
    fail("record %d: wrong key", seq);
  if (r->value == NULL || r->len != strlen(value) || r->size != r->len ||
      r->oversize || memcmp(r->value, value, r->len) != 0)
    fail("record %d: wrong value", seq);
  if (r->timestamp_type != TW_KAFKA_TS_CREATE || r->timestamp_ms <= 0)
    fail("record %d: timestamp type %d", seq, r->timestamp_type);
  return seq;
}

/* What one consumer's callback works with. */
typedef struct ctx {
  const char *name;
  tw_kafka_consumer *c;
  bool mark;
  int handled;
  int64_t first[N_PARTITIONS];
} ctx;

static void dead_letter(const tw_kafka_record *r, int seq) {
  char msg[96], trace[64];
  (void)snprintf(msg, sizeof msg, "field 'force': %d is out of range", seq);
  (void)snprintf(trace, sizeof trace, "decode\n  record %d", seq);
  tw_kafka_error_info why = {0};
  why.connector = "twin-ingest-test";
  why.task_id = 3;
  why.class_name = "twin.stream.schema";
  why.code = TW_EVALIDATE;
  why.message = msg;
  why.stacktrace = trace;
  tw_err err;
  tw_err_init(&err);
  if (nsent == DLQ_MAX)
    fail("too many dead letters");
  check(tw_kafka_dead_letter(producer, DLQ, r, &why, &err), &err,
        "dead letter");
  /* Delivered before the record is marked: at least once. */
  check(tw_kafka_producer_flush(producer, STEP_MS, &err), &err,
        "dead-letter flush");
  sent[nsent++] = (dlq_sent){r->partition, r->offset, seq, r->timestamp_ms, 0};
}

static int on_record(void *ud, const tw_kafka_record *r) {
  ctx *x = ud;
  if (strcmp(r->topic, TOPIC) != 0 || r->partition < 0 ||
      r->partition >= N_PARTITIONS)
    fail("%s: record of %s [%" PRId32 "]", x->name, r->topic, r->partition);
  int seq = record_seq(r);
  seen_t *s = &seen[seq];
  if (s->marked)
    fail("%s: record %d (%" PRId32 "/%" PRId64
         ") was marked processed, and came again",
         x->name, seq, r->partition, r->offset);
  if (s->times && (s->partition != r->partition || s->offset != r->offset))
    fail("record %d at %" PRId32 "/%" PRId64 " and %" PRId32 "/%" PRId64, seq,
         s->partition, s->offset, r->partition, r->offset);
  if (x->first[r->partition] < 0)
    x->first[r->partition] = r->offset;
  s->times++;
  s->partition = r->partition;
  s->offset = r->offset;
  if (seq % DLQ_MOD == DLQ_REM)
    dead_letter(r, seq);
  if (x->mark) {
    tw_err err;
    tw_err_init(&err);
    check(tw_kafka_consumer_mark(x->c, r->topic, r->partition, r->offset, &err),
          &err, "mark");
    s->marked = true;
  }
  x->handled++;
  return 0;
}

static void ctx_init(ctx *x, const char *name, tw_kafka_consumer *c) {
  memset(x, 0, sizeof *x);
  x->name = name;
  x->c = c;
  x->mark = true;
  for (int p = 0; p < N_PARTITIONS; p++)
    x->first[p] = -1;
}

/* Polls x until it has handled `until` records, at most max a call. */
static void take(ctx *x, int until, size_t max) {
  int64_t deadline = now_ms() + STEP_MS;
  while (x->handled < until) {
    if (now_ms() > deadline)
      fail("%s: %d of %d records within %d ms", x->name, x->handled, until,
           STEP_MS);
    size_t left = (size_t)(until - x->handled);
    tw_err err;
    tw_err_init(&err);
    check(tw_kafka_consumer_poll(x->c, 500, left < max ? left : max, on_record,
                                 x, NULL, &err),
          &err, x->name);
  }
}

static void commit(ctx *x) {
  tw_err err;
  tw_err_init(&err);
  check(tw_kafka_consumer_commit(x->c, &err), &err, x->name);
}

static void close_consumer(ctx *x, tw_kafka_consumer_stats *st) {
  tw_kafka_consumer_stats_get(x->c, st);
  tw_err err;
  tw_err_init(&err);
  check(tw_kafka_consumer_close(x->c, &err), &err, x->name);
  x->c = NULL;
}

static void missing_topic(void) {
  tw_kafka_consumer *c = consumer_new("twin-conn-missing", MISSING, "missing");
  int64_t deadline = now_ms() + 20000;
  int rc = TW_OK;
  tw_err err;
  while (rc == TW_OK && now_ms() < deadline) {
    tw_err_init(&err);
    ctx x;
    ctx_init(&x, "missing", c);
    rc = tw_kafka_consumer_poll(c, 500, 10, on_record, &x, NULL, &err);
  }
  if (rc != TW_ENOENT ||
      strstr(err.msg, "topic '" MISSING "' does not exist") == NULL)
    fail("unknown topic: %s '%s', expected ENOENT naming it", tw_err_name(rc),
         rc ? err.msg : "");
  note("unknown topic: %s", err.msg);
  tw_err_init(&err);
  check(tw_kafka_consumer_close(c, &err), &err, "missing: close");
}

/* A: MARKED records marked and committed every COMMIT_EVERY, the broker
 * restarted after RESTART_AT, then UNMARKED records never marked. */
static void consume_a(rd_kafka_t *rk, int64_t committed[]) {
  ctx a;
  ctx_init(&a, "consumer A", consumer_new(GROUP, TOPIC, "twin-conn-a"));
  while (a.handled < MARKED) {
    take(&a, a.handled + COMMIT_EVERY, COMMIT_EVERY);
    commit(&a);
    if (a.handled == RESTART_AT) {
      /* The rest is sent after the restart: A must fetch through it. */
      restart_broker();
      produce(FIRST_BATCH, SECOND_BATCH);
    }
  }
  a.mark = false;
  take(&a, MARKED + UNMARKED, UNMARKED);
  read_committed(rk, committed);
  int64_t total = 0;
  for (int p = 0; p < N_PARTITIONS; p++) {
    int64_t want = 0;
    for (int seq = 0; seq < N; seq++)
      want += seen[seq].marked && seen[seq].partition == p;
    if (committed[p] != want)
      fail("consumer A: partition %d committed at %" PRId64 ", %" PRId64
           " records of it were marked",
           p, committed[p], want);
    total += committed[p];
  }
  if (total != MARKED)
    fail("consumer A: %" PRId64 " committed, %d marked", total, MARKED);
  tw_kafka_consumer_stats st;
  close_consumer(&a, &st);
  if (st.records != MARKED + UNMARKED || st.marks != MARKED ||
      st.commits != MARKED / COMMIT_EVERY)
    fail("consumer A: %" PRIu64 " records, %" PRIu64 " marks, %" PRIu64
         " commits",
         st.records, st.marks, st.commits);
  if (st.transport_errors == 0)
    fail("consumer A: the restart counted no transport error");
  note("consumer A: %" PRIu64 " records, %" PRIu64 " commits, %" PRIu64
       " transport errors, %" PRIu64 " rebalances",
       st.records, st.commits, st.transport_errors, st.rebalances);
}

static int distinct_seen(void) {
  int n = 0;
  for (int seq = 0; seq < N; seq++)
    n += seen[seq].times > 0;
  return n;
}

/* B alone, then B and C in the group until every record was seen. */
static void consume_b_c(const int64_t committed[]) {
  ctx b, c;
  ctx_init(&b, "consumer B", consumer_new(GROUP, TOPIC, "twin-conn-b"));
  take(&b, B_ALONE, COMMIT_EVERY);
  commit(&b);
  for (int p = 0; p < N_PARTITIONS; p++)
    if (b.first[p] >= 0 && b.first[p] != committed[p])
      fail("consumer B: partition %d resumed at %" PRId64 ", %" PRId64
           " was committed",
           p, b.first[p], committed[p]);
  /* B's marks since its last commit: the revocation must commit them. */
  take(&b, B_ALONE + 7, 7);
  ctx_init(&c, "consumer C", consumer_new(GROUP, TOPIC, "twin-conn-c"));
  tw_kafka_consumer_stats sb, sc;
  int64_t deadline = now_ms() + STEP_MS;
  bool last_sent = false;
  while (distinct_seen() < N) {
    if (now_ms() > deadline)
      fail("B and C: %d of %d records within %d ms", distinct_seen(), N,
           STEP_MS);
    tw_kafka_consumer_stats_get(b.c, &sb);
    tw_kafka_consumer_stats_get(c.c, &sc);
    /* Once both hold their new partitions, the last batch goes to every
     * partition, so C has records of its own whatever B took before. */
    if (!last_sent && sc.rebalances > 0 && sb.rebalances >= 3) {
      produce(SECOND_BATCH, N);
      last_sent = true;
    }
    /* One record a call until C has its partitions, so that B cannot
     * drain the topic before the rebalance. */
    size_t max = sc.rebalances > 0 ? 50 : 1;
    tw_err err;
    tw_err_init(&err);
    check(tw_kafka_consumer_poll(b.c, 100, max, on_record, &b, NULL, &err),
          &err, b.name);
    check(tw_kafka_consumer_poll(c.c, 100, max, on_record, &c, NULL, &err),
          &err, c.name);
    /* B commits nothing until the rebalance is over: its marks since
     * B_ALONE are committed by the revocation or not at all. */
    if (sb.rebalances >= 3)
      commit(&b);
    commit(&c);
  }
  close_consumer(&b, &sb);
  close_consumer(&c, &sc);
  note("consumer B: %" PRIu64 " records, %" PRIu64 " rebalances, %" PRIu64
       " commits; consumer C: %" PRIu64 " records, %" PRIu64 " rebalances",
       sb.records, sb.rebalances, sb.commits, sc.records, sc.rebalances);
  if (sb.rebalances < 3 || sc.rebalances < 1 || sc.records == 0)
    fail("no rebalance gave C partitions (B %" PRIu64 ", C %" PRIu64
         " rebalances, C %" PRIu64 " records)",
         sb.rebalances, sc.rebalances, sc.records);
  if (sb.marks_dropped || sc.marks_dropped)
    fail("marks dropped: B %" PRIu64 ", C %" PRIu64, sb.marks_dropped,
         sc.marks_dropped);
}

static void check_seen(rd_kafka_t *rk, const int64_t hi[]) {
  int twice = 0;
  for (int seq = 0; seq < N; seq++) {
    if (seen[seq].times == 0)
      fail("record %d was never consumed", seq);
    if (seen[seq].times > 2)
      fail("record %d consumed %d times", seq, seen[seq].times);
    twice += seen[seq].times == 2;
  }
  if (twice != UNMARKED)
    fail("%d records consumed twice, expected the %d unmarked ones", twice,
         UNMARKED);
  for (int k = 0; k < N_KEYS; k++)
    for (int seq = k + N_KEYS; seq < N; seq += N_KEYS) {
      const seen_t *a = &seen[seq - N_KEYS], *b = &seen[seq];
      if (a->partition != b->partition || a->offset >= b->offset)
        fail("key sensor-%02d: records %d and %d out of order", k, seq - N_KEYS,
             seq);
    }
  int64_t committed[N_PARTITIONS];
  read_committed(rk, committed);
  for (int p = 0; p < N_PARTITIONS; p++)
    if (committed[p] != hi[p])
      fail("partition %d: committed %" PRId64 ", its end is %" PRId64, p,
           committed[p], hi[p]);
}

/* Reads the DLQ topic back and checks every dead letter. */
static int on_dead_letter(void *ud, const tw_kafka_record *r) {
  int *n = ud;
  const tw_kafka_header *hp = header(r, "__connect.errors.partition");
  const tw_kafka_header *ho = header(r, "__connect.errors.offset");
  dlq_sent *d = NULL;
  for (int i = 0; i < nsent && d == NULL; i++) {
    char ps[16], os[24];
    (void)snprintf(ps, sizeof ps, "%" PRId32, sent[i].partition);
    (void)snprintf(os, sizeof os, "%" PRId64, sent[i].offset);
    if (!sent[i].read && header_is(hp, ps) && header_is(ho, os))
      d = &sent[i];
  }
  if (d == NULL)
    fail("dead letter at %" PRId64 ": no such record was sent", r->offset);
  d->read = 1;
  if (record_seq(r) != d->seq)
    fail("dead letter of %d: another seq", d->seq);
  if (r->timestamp_ms != d->ts)
    fail("dead letter of %d: timestamp %" PRId64 ", the original's %" PRId64,
         d->seq, r->timestamp_ms, d->ts);
  if (r->nheaders != 3 + N_CONNECT_HEADERS)
    fail("dead letter of %d: %zu headers", d->seq, r->nheaders);
  char sq[16], src[16], ps[16], os[24], msg[96], trace[64];
  (void)snprintf(sq, sizeof sq, "%d", d->seq);
  (void)snprintf(src, sizeof src, "rig-%d", d->seq % 7);
  (void)snprintf(ps, sizeof ps, "%" PRId32, d->partition);
  (void)snprintf(os, sizeof os, "%" PRId64, d->offset);
  (void)snprintf(msg, sizeof msg, "field 'force': %d is out of range", d->seq);
  (void)snprintf(trace, sizeof trace, "decode\n  record %d", d->seq);
  const struct {
    const char *name, *value;
  } want[] = {
      {"seq", sq},
      {"source", src},
      {"trace", NULL},
      {"__connect.errors.topic", TOPIC},
      {"__connect.errors.partition", ps},
      {"__connect.errors.offset", os},
      {"__connect.errors.connector.name", "twin-ingest-test"},
      {"__connect.errors.task.id", "3"},
      {"__connect.errors.stage", "VALUE_CONVERTER"},
      {"__connect.errors.class.name", "twin.stream.schema"},
      {"__connect.errors.exception.class.name", "twin.EVALIDATE"},
      {"__connect.errors.exception.message", msg},
      {"__connect.errors.exception.stacktrace", trace},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const tw_kafka_header *h = &r->headers[i];
    if (strcmp(h->name, want[i].name) != 0)
      fail("dead letter of %d: header %zu is '%s', expected '%s'", d->seq, i,
           h->name, want[i].name);
    bool ok = want[i].value == NULL ? h->value == NULL && h->len == 0
                                    : header_is(h, want[i].value);
    if (!ok)
      fail("dead letter of %d: header '%s' has the wrong value", d->seq,
           h->name);
  }
  (*n)++;
  return 0;
}

static void read_dlq(void) {
  if (nsent == 0)
    fail("no record was dead-lettered");
  tw_kafka_consumer *c =
      consumer_new("twin-conn-dlq-reader", DLQ, "twin-conn-dlq-reader");
  int n = 0;
  int64_t deadline = now_ms() + STEP_MS;
  while (n < nsent) {
    if (now_ms() > deadline)
      fail("DLQ: %d of %d dead letters within %d ms", n, nsent, STEP_MS);
    tw_err err;
    tw_err_init(&err);
    check(tw_kafka_consumer_poll(c, 500, 100, on_dead_letter, &n, NULL, &err),
          &err, "DLQ reader");
  }
  tw_err err;
  tw_err_init(&err);
  check(tw_kafka_consumer_close(c, &err), &err, "DLQ reader: close");
  note("%d dead letters read back with their headers", n);
}

/* --- Step 8: ranked reading, assignment, pause ----------------------------
 */

typedef struct ranked {
  tw_kafka_consumer *c;
  int assigned[N_PARTITIONS]; /* assignment callbacks per partition */
  int taken[N_PARTITIONS];    /* records per partition */
  int times[N];
  int total;
  bool paused;
  int paused_taken; /* records of partition 0 while paused */
  int checked;      /* polls whose choice of partition was checked */
  int hi[N_PARTITIONS];
} ranked;

static void on_assign_d(void *ud, const char *topic, int32_t partition,
                        bool assigned) {
  ranked *d = ud;
  if (strcmp(topic, TOPIC) != 0 || partition < 0 || partition >= N_PARTITIONS)
    fail("D: assignment of %s [%d]", topic, (int)partition);
  if (assigned && d->taken[partition] > 0)
    fail("D: partition %d assigned after its records", (int)partition);
  d->assigned[partition] += assigned ? 1 : 0;
}

static int64_t rank_d(void *ud, const char *topic, int32_t partition) {
  ranked *d = ud;
  (void)topic;
  return partition >= 0 && partition < N_PARTITIONS ? d->taken[partition] : 0;
}

static int on_record_d(void *ud, const tw_kafka_record *r) {
  ranked *d = ud;
  int seq = record_seq(r);
  if (seq < 0 || seq >= N)
    fail("D: record without a seq");
  if (d->assigned[r->partition] == 0)
    fail("D: a record of partition %d before its assignment",
         (int)r->partition);
  d->times[seq]++;
  d->taken[r->partition]++;
  d->total++;
  if (d->paused && r->partition == 0)
    d->paused_taken++;
  return TW_OK;
}

/* Every partition but p has delivered all its records: a pause of p
 * that waits for more would wait for ever (when p's first fetch came
 * late, the others may be nearly done before p is paused). */
static bool others_done(const ranked *d, int p) {
  for (int q = 0; q < N_PARTITIONS; q++)
    if (q != p && d->taken[q] < d->hi[q])
      return false;
  return true;
}

/* D (pause) or E (no pause): the whole topic in a group of its own. */
static void consume_ranked(const int64_t hi[], bool pause) {
  static ranked d;
  memset(&d, 0, sizeof d);
  for (int p = 0; p < N_PARTITIONS; p++)
    d.hi[p] = (int)hi[p];
  const char *name = pause ? "D" : "E";
  char group[64];
  (void)snprintf(group, sizeof group, "twin-conn-ranked-%s", name);
  const char *topics[] = {TOPIC};
  tw_kafka_consumer_opts o = {0};
  o.brokers = bootstrap;
  o.group = group;
  o.client_id = group;
  o.topics = topics;
  o.ntopics = 1;
  o.config = consumer_config;
  o.nconfig = sizeof consumer_config / sizeof consumer_config[0];
  o.on_assign = on_assign_d;
  o.assign_ud = &d;
  o.rank = rank_d;
  o.rank_ud = &d;
  tw_err err;
  tw_err_init(&err);
  check(tw_kafka_consumer_new(&o, &d.c, &err), &err, name);
  int64_t deadline = now_ms() + STEP_MS;
  int resume_at = -1;
  while (d.total < N) {
    if (now_ms() > deadline)
      fail("%s: %d of %d records after %d s (taken %d %d %d)", name, d.total, N,
           STEP_MS / 1000, d.taken[0], d.taken[1], d.taken[2]);
    size_t got = 0;
    int before[N_PARTITIONS], lo = N;
    bool started = true;
    for (int p = 0; p < N_PARTITIONS; p++) {
      before[p] = d.taken[p];
      started = started && d.taken[p] > 0;
      if (d.taken[p] < d.hi[p] && d.taken[p] < lo)
        lo = d.taken[p];
    }
    check(tw_kafka_consumer_poll(d.c, 100, 16, on_record_d, &d, &got, &err),
          &err, "poll");
    /* E: after its first records, a pause lets the first fetch of every
     * partition arrive (a partition whose queue is still empty is rightly
     * passed over, which the check below cannot tell from a wrong
     * order). */
    if (!pause && got > 0 && d.total == (int)got)
      (void)usleep(2000 * 1000);
    /* E: once every partition delivered, all their records are queued
     * (the first fetch brings them all), and a poll reads the partition
     * read least: none more than a poll's 16 ahead of the least read. */
    if (!pause && started) {
      for (int p = 0; p < N_PARTITIONS; p++)
        if (d.taken[p] > before[p] && before[p] > lo + 16)
          fail("E: read partition %d at %d records while another was at %d", p,
               before[p], lo);
      d.checked++;
    }
    if (pause && !d.paused && resume_at < 0 && d.taken[0] >= 30) {
      check(tw_kafka_consumer_pause(d.c, TOPIC, 0, true, &err), &err, "pause");
      d.paused = true;
      resume_at = d.total + 90;
    } else if (pause && d.paused &&
               (d.total >= resume_at || others_done(&d, 0))) {
      check(tw_kafka_consumer_pause(d.c, TOPIC, 0, false, &err), &err,
            "resume");
      d.paused = false;
    }
  }
  for (int p = 0; p < N_PARTITIONS; p++)
    if (d.assigned[p] != 1)
      fail("%s: partition %d assigned %d times", name, p, d.assigned[p]);
  for (int i = 0; i < N; i++)
    if (d.times[i] != 1)
      fail("%s: record %d taken %d times", name, i, d.times[i]);
  if (d.paused_taken > 16)
    fail("D: %d records of paused partition 0", d.paused_taken);
  if (!pause && d.checked < 20)
    fail("E: only %d polls checked the partition order", d.checked);
  tw_kafka_consumer_stats st;
  tw_kafka_consumer_stats_get(d.c, &st);
  if (st.pauses != (pause ? 1 : 0))
    fail("%s: %" PRIu64 " pauses counted", name, st.pauses);
  check(tw_kafka_consumer_close(d.c, &err), &err, "close");
  if (pause)
    note("consumer D: %d records, %d of the paused partition while paused", N,
         d.paused_taken);
  else
    note("consumer E: ranked, %d records, %d polls checked", N, d.checked);
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

  rd_kafka_t *rk = admin_new();
  create_topics(rk);
  missing_topic();
  producer_new();
  produce(0, FIRST_BATCH);

  int64_t committed[N_PARTITIONS], hi[N_PARTITIONS];
  consume_a(rk, committed);
  consume_b_c(committed);
  high_watermarks(rk, hi);
  check_seen(rk, hi);
  read_dlq();
  consume_ranked(hi, false);
  consume_ranked(hi, true);

  tw_kafka_producer_free(producer);
  rd_kafka_destroy(rk);
  if (rd_kafka_wait_destroyed(10000) != 0)
    fail("librdkafka handles still alive after 10 s");
  note("ok: %d records, %d consumed twice, %d dead letters, in %.1f s", N,
       UNMARKED, nsent, (double)(now_ms() - t0) / 1000.0);
  return 0;
}
