/*
 * kafka_bench.c - the Kafka ingest path of Twin (twin/kafka.h feeding
 * twin/ingest.h, as `twin run` with a kafka source does in tools/twin/
 * live.c) against a raw librdkafka consumer reading the same topic, in
 * one invocation. One JSON line per measurement (BENCHMARKS.md).
 *
 * Runs under `scripts/kafka run` (TW_KAFKA_BOOTSTRAP names the broker):
 *
 *  1. Creates the topic "ingest-bench" (3 partitions) and produces
 *     --records keyed JSON records with librdkafka directly (linger 20 ms,
 *     1 MB batches, idempotent: a retried batch cannot land behind a later
 *     one, so each partition is in event-time order), e.g.
 *       {"t":1764500000000,"force":-0.2345678901,"pos":[1.2345,-0.5,0.25]}
 *     with t the event time in ms since the epoch, 1 ms apart.
 *  2. Throughput, --reps rounds, each reading all records from the
 *     earliest offset in a group of its own, raw then twin:
 *      - librdkafka: a high-level consumer (auto commit off), an
 *        rd_kafka_consumer_poll loop summing the payload bytes;
 *      - twin: tw_kafka_consumer_poll (up to 1000 records a call) handing
 *        each record to tw_ingest_push, an advance after every batch, and
 *        every 20 ms (or when a poll brought nothing) the checkpoint of
 *        live.c: advance, sync, mark
 *        the pushed positions, commit; tw_ingest_finish and a last
 *        checkpoint at the end. The twin: a graph with inputs rig.force
 *        (size 1, N) -> builtin:spring_damper and rig.pos (size 3, m) ->
 *        builtin:gain, dt 1 ms; the source's schema reads force, pos and
 *        the time field t (ms); the recording is an MCAP file in --dir.
 *     Each side is timed from its first record to its last (for the twin:
 *     to the end of the last checkpoint); medians over the rounds and the
 *     ratio twin / librdkafka (target >= 0.7). The twin's line carries
 *     the pipeline's counts of the last round (accepted, late, overflow:
 *     see bench/README.md on why a backlog of 3 partitions makes many
 *     records late).
 *  3. Latency at --rate records/s for --seconds: a producer thread paces
 *     records (linger 5 ms, librdkafka's default) carrying their send
 *     time (CLOCK_REALTIME ns) in a member "s" the schema does not read,
 *     to a fresh topic per side, while the consumer reads live.
 *     librdkafka: send -> delivered by rd_kafka_consumer_poll. Twin: send
 *     -> tw_ingest_push returned (recorded, decoded, validated, aligned:
 *     "pushed"), send -> the end of the tw_ingest_sync covering it (the
 *     recording handed to the kernel, after which the position may be
 *     committed: "synced"), and send -> the end of the commit after it
 *     ("committed"). p50, p99, p99.9 and max in ms, over --seconds after
 *     --warmup seconds at the same rate (records marked "w" instead of
 *     "s", not measured).
 *
 *  4. With --pipeline (no broker; nothing else runs): the twin side's work
 *     per record, records built in memory as produce_all makes them and
 *     handed to the same callback, polls and checkpoints as above, in
 *     three configurations: decoded, aligned, stepped and recorded (what
 *     the twin side of 2 does); the same not recorded; recorded only (a
 *     source without a schema). ns per record, medians over --reps.
 *
 *   kafka_bench [--records N] [--reps R] [--rate R] [--seconds S]
 *               [--warmup S] [--dir DIR] [--skip-latency]
 *               [--skip-throughput] [--pipeline]
 *
 * Build (after building the library in build/NAME):
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -pthread -Iinclude \
 *     bench/ingest/kafka_bench.c -o build/NAME/kafka_bench -Lbuild/NAME \
 *     -ltwin -Wl,-rpath,$PWD/build/NAME \
 *     $(pkg-config --cflags --libs rdkafka) -lm
 *   scripts/kafka run build/NAME/kafka_bench --records 200000 --reps 1
 */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/graph.h"
#include "twin/ingest.h"
#include "twin/kafka.h"
#include "twin/stream.h"

#define TOPIC "ingest-bench"
#define PARTITIONS 3
#define MAX_REPS 15
#define POLL_MAX 1000                  /* live.c's records per poll */
#define SYNC_PERIOD_NS 20000000        /* live.c's default checkpoint period */
#define OUT_OF_ORDER_NS 50000000       /* live.c's default --out-of-order-ms */
#define STEP_TIMEOUT_NS 120000000000LL /* one consumer run */

static const char *bootstrap;
static const char *dir = "/dev/shm";
static volatile uint64_t sink; /* keeps the payload sums alive */

static const char graph_text[] = "graph rig\n"
                                 "dt 0.001\n"
                                 "input rig.force size 1 unit N\n"
                                 "input rig.pos size 3 unit m\n"
                                 "block plant = builtin:spring_damper\n"
                                 "block scale = builtin:gain size 3\n"
                                 "  param k = 0.5\n"
                                 "connect inputs.rig.force -> plant.F\n"
                                 "connect inputs.rig.pos -> scale.u\n"
                                 "output x = plant.x\n"
                                 "output p = scale.y\n";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fprintf(stderr, "kafka_bench: ");
  (void)vfprintf(stderr, fmt, ap);
  (void)fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  (void)fprintf(stderr, "kafka_bench: ");
  (void)vfprintf(stderr, fmt, ap);
  (void)fprintf(stderr, "\n");
  va_end(ap);
}

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --- librdkafka set-up ------------------------------------------------- */

static rd_kafka_conf_t *conf_of(const char *const *kv) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char es[512];
  if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, es, sizeof es) !=
      RD_KAFKA_CONF_OK)
    die("bootstrap.servers: %s", es);
  for (size_t i = 0; kv[i] != NULL; i += 2)
    if (rd_kafka_conf_set(c, kv[i], kv[i + 1], es, sizeof es) !=
        RD_KAFKA_CONF_OK)
      die("%s=%s: %s", kv[i], kv[i + 1], es);
  return c;
}

static void create_topic(const char *name) {
  static const char *const kv[] = {NULL};
  char es[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf_of(kv), es, sizeof es);
  if (rk == NULL)
    die("admin client: %s", es);
  rd_kafka_NewTopic_t *nt =
      rd_kafka_NewTopic_new(name, PARTITIONS, 1, es, sizeof es);
  if (nt == NULL)
    die("topic %s: %s", name, es);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *ao =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  (void)rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, es, sizeof es);
  rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
  if (ev == NULL)
    die("create topic %s: no answer in 60 s", name);
  const rd_kafka_CreateTopics_result_t *res =
      rd_kafka_event_CreateTopics_result(ev);
  size_t n = 0;
  const rd_kafka_topic_result_t **tr =
      res != NULL ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
  if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("create topic %s: %s", name, rd_kafka_event_error_string(ev));
  for (size_t i = 0; i < n; i++)
    if (rd_kafka_topic_result_error(tr[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
      die("create topic %s: %s", name,
          rd_kafka_topic_result_error_string(tr[i]));
  rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
}

static int64_t delivery_failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && delivery_failed++ == 0)
    note("delivery failed: %s", rd_kafka_err2str(m->err));
}

static rd_kafka_t *producer(const char *linger) {
  const char *const kv[] = {"linger.ms",
                            linger,
                            "batch.size",
                            "1000000",
                            "batch.num.messages",
                            "100000",
                            "queue.buffering.max.messages",
                            "1000000",
                            "queue.buffering.max.kbytes",
                            "1048576",
                            "enable.idempotence",
                            "true",
                            NULL};
  rd_kafka_conf_t *c = conf_of(kv);
  rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
  char es[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, es, sizeof es);
  if (rk == NULL)
    die("producer: %s", es);
  return rk;
}

static void produce1(rd_kafka_t *rk, const char *topic, const char *key,
                     const char *val, size_t len) {
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)val, len),
        RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
      return;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      die("produce to %s: %s", topic, rd_kafka_err2str(e));
    rd_kafka_poll(rk, 10);
  }
}

/* A record; sent_ns >= 0 adds the member "s" (send time, ns), or "w"
 * for a warm-up record, which is not measured. */
static size_t payload(char *buf, size_t cap, uint64_t i, int64_t t_ms,
                      int64_t sent_ns, bool warm) {
  double f = sin((double)i * 0.001) * 12.5;
  double x = 1.0 + 1e-6 * (double)(i % 1000), y = -0.5, z = 0.25;
  int n = sent_ns >= 0 ? snprintf(buf, cap,
                                  "{\"t\":%" PRId64 ",\"%s\":%" PRId64
                                  ",\"force\":%.10f,\"pos\":[%.6f,%.2f,%.2f]}",
                                  t_ms, warm ? "w" : "s", sent_ns, f, x, y, z)
                       : snprintf(buf, cap,
                                  "{\"t\":%" PRId64
                                  ",\"force\":%.10f,\"pos\":[%.6f,%.2f,%.2f]}",
                                  t_ms, f, x, y, z);
  return (size_t)n;
}

static void key_of(char *k, size_t cap, uint64_t i) {
  (void)snprintf(k, cap, "sensor-%02u", (unsigned)(i % 16));
}

/* Produces n records 1 ms apart in event time; returns their bytes. */
static uint64_t produce_all(uint64_t n) {
  rd_kafka_t *rk = producer("20");
  char buf[256], key[32];
  int64_t t0_ms = real_ns() / 1000000 - (int64_t)n; /* ends about now */
  uint64_t bytes = 0;
  int64_t a = mono_ns();
  for (uint64_t i = 0; i < n; i++) {
    size_t len = payload(buf, sizeof buf, i, t0_ms + (int64_t)i, -1, false);
    key_of(key, sizeof key, i);
    produce1(rk, TOPIC, key, buf, len);
    bytes += len;
    if (i % 1024 == 0)
      rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("produce: flush did not finish in 120 s");
  double s = (double)(mono_ns() - a) * 1e-9;
  rd_kafka_destroy(rk);
  if (delivery_failed)
    die("produce: %" PRId64 " records not delivered", delivery_failed);
  printf(
      "{\"bench\":\"kafka_produce\",\"impl\":\"librdkafka\",\"topic\":\"%s\","
      "\"partitions\":%d,\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
      ",\"mean_record_bytes\":%.1f,\"records_per_s\":%.0f,\"mb_per_s\":%.2f}"
      "\n",
      TOPIC, PARTITIONS, n, bytes, (double)bytes / (double)n, (double)n / s,
      (double)bytes / s / 1e6);
  fflush(stdout);
  return bytes;
}

/* --- The raw consumer -------------------------------------------------- */

static rd_kafka_t *raw_consumer(const char *group, const char *topic) {
  const char *const kv[] = {"group.id",
                            group,
                            "enable.auto.commit",
                            "false",
                            "auto.offset.reset",
                            "earliest",
                            "enable.partition.eof",
                            "false",
                            NULL};
  char es[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf_of(kv), es, sizeof es);
  if (rk == NULL)
    die("consumer: %s", es);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(tl, topic, RD_KAFKA_PARTITION_UA);
  if (rd_kafka_subscribe(rk, tl) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("subscribe %s", topic);
  rd_kafka_topic_partition_list_destroy(tl);
  return rk;
}

static void raw_close(rd_kafka_t *rk) {
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

/* Reads n records; records/s and bytes/s from the first to the last. */
static void raw_throughput(int rep, uint64_t n, double *rps, double *bps) {
  char group[64];
  (void)snprintf(group, sizeof group, "raw-%d", rep);
  rd_kafka_t *rk = raw_consumer(group, TOPIC);
  uint64_t got = 0, bytes = 0, sum = 0;
  int64_t first = 0, deadline = mono_ns() + STEP_TIMEOUT_NS;
  while (got < n) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (m == NULL) {
      if (mono_ns() > deadline)
        die("librdkafka: %" PRIu64 " of %" PRIu64 " records in time", got, n);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      note("librdkafka consumer: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    if (got == 0)
      first = mono_ns();
    const unsigned char *p = m->payload;
    for (size_t i = 0; i < m->len; i++)
      sum += p[i];
    bytes += m->len;
    got++;
    rd_kafka_message_destroy(m);
  }
  double s = (double)(mono_ns() - first) * 1e-9;
  sink += sum;
  raw_close(rk);
  *rps = (double)n / s;
  *bps = (double)bytes / s;
}

/* --- The twin side: live.c's loop -------------------------------------- */

typedef struct pending {
  char *topic;
  int32_t partition;
  int64_t offset;
} pending;

typedef struct lat {
  int64_t *v;
  size_t n, cap;
} lat;

static void lat_add(lat *l, int64_t v) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 65536;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (l->v == NULL)
      die("out of memory");
  }
  l->v[l->n++] = v;
}

typedef struct twin {
  tw_graph *g;
  tw_stream_schema *schema;
  tw_ingest *in;
  tw_kafka_consumer *kc;
  uint32_t index;
  int64_t now;
  pending *pend;
  size_t npend, cappend;
  uint64_t refused;
  tw_err cb_err;
  /* Latency (live runs): send times of the pending records. */
  bool measure;
  int64_t *sent;
  size_t nsent, capsent;
  lat pushed, synced, committed;
  int64_t first_ns; /* monotonic time of the first record */
  int64_t end_ns;   /* monotonic time the last checkpoint ended */
} twin;

/* The send time ("s") of a record, parsed from the payload. */
static int64_t sent_of(const void *data, size_t len) {
  const char *p = memmem(data, len, "\"s\":", 4);
  if (p == NULL)
    return -1;
  p += 4;
  int64_t v = 0;
  while (*p >= '0' && *p <= '9')
    v = v * 10 + (*p++ - '0');
  return v;
}

static void on_refused(void *ud, const tw_ingest_msg *m,
                       const tw_ingest_refusal *why) {
  twin *w = ud;
  (void)m;
  if (w->refused++ < 3)
    note("twin: record refused (%s): %s", why->stage, why->message);
}

static int add_pending(twin *w, const char *topic, int32_t part, int64_t off) {
  /* live.c's: the highest offset per (topic, partition). */
  for (size_t i = w->npend; i-- > 0;) {
    pending *q = &w->pend[i];
    if (q->partition == part && strcmp(q->topic, topic) == 0) {
      if (off > q->offset)
        q->offset = off;
      return TW_OK;
    }
  }
  if (w->npend == w->cappend) {
    size_t c = w->cappend ? 2 * w->cappend : 256;
    pending *p = tw_reallocarray(w->pend, c, sizeof *p);
    if (p == NULL)
      return TW_ENOMEM;
    w->pend = p;
    w->cappend = c;
  }
  pending *p = &w->pend[w->npend];
  p->topic = topic != NULL ? tw_strdup(topic) : NULL;
  if (topic != NULL && p->topic == NULL)
    return TW_ENOMEM;
  p->partition = part;
  p->offset = off;
  w->npend++;
  return TW_OK;
}

/* live.c's on_assign: partitions assigned or revoked become split events
 * of the pipeline (per-partition watermarks). */
static void on_assign(void *ud, const char *topic, int32_t partition,
                      bool assigned) {
  twin *w = ud;
  if (tw_ingest_split(w->in, w->index, topic, partition, assigned, w->now,
                      &w->cb_err) != TW_OK)
    die("twin split: %s", w->cb_err.msg);
}

/* live.c's on_rank: the partition furthest behind is read first. */
static int64_t on_rank(void *ud, const char *topic, int32_t partition) {
  twin *w = ud;
  return tw_ingest_partition_time(w->in, w->index, topic, partition);
}

/* live.c's on_pause: backpressure on partitions running ahead. */
static void on_pause(void *ud, uint32_t source, const char *topic,
                     int32_t partition, bool pause) {
  twin *w = ud;
  (void)source;
  tw_err err;
  tw_err_init(&err);
  if (tw_kafka_consumer_pause(w->kc, topic, partition, pause, &err) != TW_OK)
    die("twin pause: %s", err.msg);
}

/* live.c's on_kafka, plus the latency probes. */
static int on_kafka(void *ud, const tw_kafka_record *r) {
  twin *w = ud;
  if (w->first_ns == 0)
    w->first_ns = mono_ns();
  tw_ingest_header h[64];
  size_t nh = r->nheaders < 64 ? r->nheaders : 64;
  for (size_t i = 0; i < nh; i++) {
    h[i].name = r->headers[i].name;
    h[i].value = r->headers[i].value;
    h[i].len = r->headers[i].len;
  }
  tw_ingest_msg m = {0};
  m.source = w->index;
  m.topic = r->topic;
  m.partition = r->partition;
  m.offset = r->offset;
  m.source_ns = r->timestamp_ms >= 0 ? r->timestamp_ms * 1000000 : INT64_MIN;
  m.key = r->key;
  m.key_len = r->key_len;
  m.headers = h;
  m.nheaders = nh;
  m.data = r->value;
  m.len = r->len;
  m.flags = r->oversize ? TW_INGEST_OVERSIZE : 0;
  int rc = tw_ingest_push(w->in, &m, w->now, &w->cb_err);
  int64_t s = w->measure && rc == TW_OK ? sent_of(r->value, r->len) : -1;
  if (s >= 0) {
    lat_add(&w->pushed, real_ns() - s);
    if (w->nsent == w->capsent) {
      w->capsent = w->capsent ? 2 * w->capsent : 65536;
      w->sent = realloc(w->sent, w->capsent * sizeof *w->sent);
      if (w->sent == NULL)
        die("out of memory");
    }
    w->sent[w->nsent++] = s;
  }
  if (rc == TW_OK && add_pending(w, r->topic, r->partition, r->offset))
    rc = tw_err_set(&w->cb_err, TW_ENOMEM, "out of memory");
  return rc;
}

/* live.c's checkpoint for one Kafka source without dead letters. */
static int checkpoint(twin *w, tw_err *err) {
  int rc = tw_ingest_advance(w->in, w->now, err);
  if (rc == TW_OK)
    rc = tw_ingest_sync(w->in, err);
  if (rc == TW_OK && w->measure) {
    int64_t t = real_ns();
    for (size_t k = 0; k < w->nsent; k++)
      lat_add(&w->synced, t - w->sent[k]);
  }
  for (size_t k = 0; rc == TW_OK && w->kc != NULL && k < w->npend; k++)
    rc = tw_kafka_consumer_mark(w->kc, w->pend[k].topic, w->pend[k].partition,
                                w->pend[k].offset, err);
  for (size_t k = 0; k < w->npend; k++)
    tw_free(w->pend[k].topic);
  w->npend = 0;
  if (rc == TW_OK && w->kc != NULL)
    rc = tw_kafka_consumer_commit_async(w->kc, err);
  if (rc == TW_OK && w->measure) {
    int64_t t = real_ns();
    for (size_t k = 0; k < w->nsent; k++)
      lat_add(&w->committed, t - w->sent[k]);
  }
  w->nsent = 0;
  return rc;
}

/* The twin's pipeline (graph, schema, ingest) without a consumer; rec
 * NULL: no recording; decode false: records are recorded only (a source
 * without a schema). */
static void twin_pipeline(twin *w, const char *rec, bool decode) {
  memset(w, 0, sizeof *w);
  tw_err err;
  tw_err_init(&err);
  tw_err_init(&w->cb_err);
  if (tw_graph_parse(graph_text, strlen(graph_text), "rig.twg", ".", NULL, NULL,
                     &w->g, &err) != TW_OK)
    die("graph: %s", err.msg);
  const tw_stream_field fields[] = {{"force", TW_F64, 1, "N", NAN, NAN},
                                    {"pos", TW_F64, 3, "m", NAN, NAN}};
  static const int field_input[] = {0, 1};
  tw_stream_schema_opts so = {"t", TW_STREAM_TIME_MS, false};
  if (tw_stream_schema_new(fields, 2, &so, &w->schema, &err) != TW_OK)
    die("schema: %s", err.msg);
  tw_ingest_opts io = {0};
  io.graph = w->g;
  io.twin = "rig";
  io.record_path = rec;
  io.refused = on_refused;
  io.pause = on_pause;
  io.ud = w;
  if (tw_ingest_new(&io, &w->in, &err) != TW_OK)
    die("ingest: %s", err.msg);
  tw_ingest_source_opts s = {0};
  s.name = "rig";
  s.kind = "kafka";
  s.schema = decode ? w->schema : NULL;
  s.field_input = decode ? field_input : NULL;
  s.max_out_of_orderness_ns = OUT_OF_ORDER_NS;
  if (tw_ingest_source_add(w->in, &s, &w->index, &err) != TW_OK)
    die("ingest source: %s", err.msg);
}

static void twin_open(twin *w, const char *group, const char *topic,
                      const char *rec) {
  twin_pipeline(w, rec, true);
  tw_err err;
  tw_err_init(&err);
  const char *topics[1] = {topic};
  tw_kafka_consumer_opts ko = {0};
  ko.brokers = bootstrap;
  ko.group = group;
  ko.client_id = group;
  ko.topics = topics;
  ko.ntopics = 1;
  ko.on_assign = on_assign;
  ko.assign_ud = w;
  ko.rank = on_rank;
  ko.rank_ud = w;
  if (tw_kafka_consumer_new(&ko, &w->kc, &err) != TW_OK)
    die("twin consumer: %s", err.msg);
}

/* live.c's loop after a poll that brought got records: an advance, and
 * a checkpoint every SYNC_PERIOD_NS or when the poll brought nothing. */
static void twin_after_poll(twin *w, size_t got, int64_t *last) {
  tw_err err;
  tw_err_init(&err);
  w->now = real_ns();
  if (w->now - *last >= SYNC_PERIOD_NS || got == 0) {
    if (checkpoint(w, &err) != TW_OK)
      die("twin checkpoint: %s", err.msg);
    *last = w->now;
  } else if (tw_ingest_advance(w->in, w->now, &err) != TW_OK) {
    /* live.c advances after every batch */
    die("twin advance: %s", err.msg);
  }
}

/* One round of live.c's loop; false when the poll brought nothing. */
static bool twin_round(twin *w, int64_t *last) {
  tw_err err;
  tw_err_init(&err);
  w->now = real_ns();
  size_t got = 0;
  int rc = tw_kafka_consumer_poll(w->kc, 5, POLL_MAX, on_kafka, w, &got, &err);
  (void)rc;
  if (rc != TW_OK)
    die("twin poll: %s", w->cb_err.code != TW_OK ? w->cb_err.msg : err.msg);
  twin_after_poll(w, got, last);
  return got > 0;
}

static void twin_close(twin *w, tw_ingest_stats *st) {
  tw_err err;
  tw_err_init(&err);
  if (tw_ingest_finish(w->in, &err) != TW_OK)
    die("twin finish: %s", err.msg);
  w->now = real_ns();
  if (checkpoint(w, &err) != TW_OK)
    die("twin checkpoint: %s", err.msg);
  w->end_ns = mono_ns(); /* recorded and committed; closing is not timed,
                            as the raw consumer's is not */
  tw_ingest_stats_get(w->in, st);
  if (w->kc != NULL && tw_kafka_consumer_close(w->kc, &err) != TW_OK)
    die("twin consumer close: %s", err.msg);
  if (tw_ingest_close(w->in, &err) != TW_OK)
    die("twin ingest close: %s", err.msg);
  tw_stream_schema_free(w->schema);
  tw_graph_free(w->g);
  tw_free(w->pend);
  free(w->sent);
}

static void twin_throughput(int rep, uint64_t n, double *rps,
                            tw_ingest_stats *st, uint64_t *file_bytes) {
  char group[64], rec[512];
  (void)snprintf(group, sizeof group, "twin-%d", rep);
  (void)snprintf(rec, sizeof rec, "%s/kafka-bench-%d-%d.mcap", dir,
                 (int)getpid(), rep);
  twin w;
  twin_open(&w, group, TOPIC, rec);
  int64_t last = real_ns(), deadline = mono_ns() + STEP_TIMEOUT_NS;
  for (;;) {
    (void)twin_round(&w, &last);
    tw_ingest_stats s;
    tw_ingest_stats_get(w.in, &s);
    if (s.records + s.duplicates >= n)
      break;
    if (mono_ns() > deadline)
      die("twin: %" PRIu64 " of %" PRIu64 " records in time", s.records, n);
  }
  twin_close(&w, st);
  *rps = (double)n / ((double)(w.end_ns - w.first_ns) * 1e-9);
  FILE *f = fopen(rec, "rb");
  *file_bytes = 0;
  if (f != NULL && fseek(f, 0, SEEK_END) == 0)
    *file_bytes = (uint64_t)ftell(f);
  if (f != NULL)
    fclose(f);
  (void)unlink(rec);
}

/* --- The pipeline alone ------------------------------------------------- */

/* The twin side's work per record without a broker: the n records of
 * produce_all, built in memory and handed to on_kafka (live.c's callback)
 * in polls of POLL_MAX with live.c's advance and checkpoint after each, as
 * twin_round does. decode false: a source without a schema (recorded
 * only); record false: no recording. Returns ns per record. */
static double pipeline_round(uint64_t n, bool decode, bool record) {
  char rec[512];
  (void)snprintf(rec, sizeof rec, "%s/kafka-bench-pipeline-%d.mcap", dir,
                 (int)getpid());
  size_t stride = 128;
  char *vals = malloc((size_t)n * stride), keys[16][32];
  size_t *lens = malloc((size_t)n * sizeof *lens);
  if (vals == NULL || lens == NULL)
    die("out of memory for %" PRIu64 " records", n);
  int64_t t0_ms = real_ns() / 1000000 - (int64_t)n;
  for (uint64_t i = 0; i < n; i++)
    lens[i] =
        payload(vals + i * stride, stride, i, t0_ms + (int64_t)i, -1, false);
  for (unsigned k = 0; k < 16; k++)
    key_of(keys[k], sizeof keys[k], k);
  twin w;
  twin_pipeline(&w, record ? rec : NULL, decode);
  w.now = real_ns();
  for (int32_t p = 0; p < PARTITIONS; p++)
    on_assign(&w, TOPIC, p, true);
  int64_t off[PARTITIONS] = {0}, last = real_ns();
  int64_t a = mono_ns();
  for (uint64_t i = 0; i < n; i += POLL_MAX) {
    uint64_t end = i + POLL_MAX < n ? i + POLL_MAX : n;
    w.now = real_ns();
    for (uint64_t j = i; j < end; j++) {
      /* the producer's keys land on partitions by hash; a record's
       * partition here is its key's, round robin */
      int32_t p = (int32_t)((j % 16) % PARTITIONS);
      tw_kafka_record r = {0};
      r.topic = TOPIC;
      r.partition = p;
      r.offset = off[p]++;
      r.timestamp_ms = t0_ms + (int64_t)j;
      r.timestamp_type = TW_KAFKA_TS_CREATE;
      r.key = keys[j % 16];
      r.key_len = strlen(keys[j % 16]);
      r.value = vals + j * stride;
      r.len = r.size = lens[j];
      if (on_kafka(&w, &r) != TW_OK)
        die("pipeline: %s", w.cb_err.msg);
    }
    twin_after_poll(&w, end - i, &last);
  }
  tw_ingest_stats st;
  twin_close(&w, &st);
  double ns = (double)(w.end_ns - a) / (double)n;
  if (st.records != n || (decode && st.accepted != n))
    die("pipeline: %" PRIu64 " records, %" PRIu64 " accepted of %" PRIu64,
        st.records, st.accepted, n);
  (void)unlink(rec);
  free(vals);
  free(lens);
  return ns;
}

/* Each configuration reps times (interleaved); one line each. */
static void pipeline_breakdown(uint64_t n, int reps) {
  static const struct {
    const char *name;
    bool decode, record;
  } cf[] = {{"decoded, aligned, stepped and recorded", true, true},
            {"decoded, aligned and stepped, not recorded", true, false},
            {"recorded only (no schema)", false, true}};
  double v[3][MAX_REPS];
  for (int r = 0; r < reps; r++)
    for (int c = 0; c < 3; c++)
      v[c][r] = pipeline_round(n, cf[c].decode, cf[c].record);
  for (int c = 0; c < 3; c++) {
    double m = median(v[c], reps);
    printf("{\"bench\":\"ingest_pipeline\",\"impl\":\"twin\",\"config\":"
           "\"%s\",\"records\":%" PRIu64 ",\"reps\":%d,\"ns_per_record\":"
           "%.1f,\"records_per_s\":%.0f}\n",
           cf[c].name, n, reps, m, 1e9 / m);
  }
  fflush(stdout);
}

/* --- Latency ------------------------------------------------------------ */

typedef struct pacer {
  const char *topic;
  double rate, seconds, warm;
  uint64_t sent;
  double achieved;
} pacer;

static void *pace(void *arg) {
  pacer *p = arg;
  rd_kafka_t *rk = producer("5");
  char buf[256], key[32];
  uint64_t nwarm = (uint64_t)(p->rate * p->warm);
  uint64_t total = nwarm + (uint64_t)(p->rate * p->seconds);
  int64_t start = mono_ns(), measured = 0;
  uint64_t i = 0;
  while (i < total) {
    int64_t el = mono_ns() - start;
    uint64_t due = (uint64_t)((double)el * 1e-9 * p->rate) + 1;
    if (due > total)
      due = total;
    for (; i < due; i++) {
      int64_t s = real_ns();
      if (i == nwarm)
        measured = mono_ns();
      size_t len = payload(buf, sizeof buf, i, s / 1000000, s, i < nwarm);
      key_of(key, sizeof key, i);
      produce1(rk, p->topic, key, buf, len);
    }
    rd_kafka_poll(rk, 0);
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
  p->sent = total - nwarm;
  p->achieved = (double)p->sent / ((double)(mono_ns() - measured) * 1e-9);
  if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    note("latency producer: flush did not finish in 30 s");
  rd_kafka_destroy(rk);
  return NULL;
}

static void lat_line(const char *impl, const char *stage, const pacer *p,
                     lat *l) {
  if (l->n == 0) {
    printf("{\"bench\":\"kafka_latency\",\"impl\":\"%s\",\"stage\":\"%s\","
           "\"skipped\":\"no records measured\"}\n",
           impl, stage);
    return;
  }
  qsort(l->v, l->n, sizeof *l->v, cmp_i64);
  size_t n = l->n;
#define Q(q) ((double)l->v[(size_t)((double)(n - 1) * (q))] * 1e-6)
  printf("{\"bench\":\"kafka_latency\",\"impl\":\"%s\",\"stage\":\"%s\","
         "\"rate\":%.0f,\"achieved_rate\":%.0f,\"seconds\":%.1f,"
         "\"warmup_s\":%.1f,"
         "\"records\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
         "\"max_ms\":%.3f}\n",
         impl, stage, p->rate, p->achieved, p->seconds, p->warm, n, Q(0.5),
         Q(0.99), Q(0.999), (double)l->v[n - 1] * 1e-6);
#undef Q
  fflush(stdout);
}

static void raw_latency(double rate, double seconds, double warm) {
  const char *topic = "ingest-lat-raw";
  create_topic(topic);
  rd_kafka_t *rk = raw_consumer("raw-lat", topic);
  /* Joined when the group has assigned the partitions. */
  int64_t deadline = mono_ns() + 60000000000LL;
  for (;;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
    if (m != NULL)
      rd_kafka_message_destroy(m);
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      int cnt = a->cnt;
      rd_kafka_topic_partition_list_destroy(a);
      if (cnt > 0)
        break;
    }
    if (mono_ns() > deadline)
      die("librdkafka latency consumer: no assignment in 60 s");
  }
  pacer p = {topic, rate, seconds, warm, 0, 0};
  pthread_t th;
  if (pthread_create(&th, NULL, pace, &p) != 0)
    die("cannot start the producer thread");
  lat l = {0};
  uint64_t total = (uint64_t)(rate * seconds), sum = 0;
  deadline = mono_ns() + (int64_t)((seconds + 60) * 1e9);
  while (l.n < total && mono_ns() < deadline + (int64_t)(warm * 1e9)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (m == NULL)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      int64_t now = real_ns(), s = sent_of(m->payload, m->len);
      if (s >= 0)
        lat_add(&l, now - s);
      const unsigned char *b = m->payload;
      for (size_t i = 0; i < m->len; i++)
        sum += b[i];
    }
    rd_kafka_message_destroy(m);
  }
  pthread_join(th, NULL);
  sink += sum;
  raw_close(rk);
  if (l.n < total)
    note("librdkafka latency: %zu of %" PRIu64 " records", l.n, total);
  lat_line("librdkafka", "delivered", &p, &l);
  free(l.v);
}

static void twin_latency(double rate, double seconds, double warm) {
  const char *topic = "ingest-lat-twin";
  create_topic(topic);
  char rec[512];
  (void)snprintf(rec, sizeof rec, "%s/kafka-bench-%d-lat.mcap", dir,
                 (int)getpid());
  twin w;
  twin_open(&w, "twin-lat", topic, rec);
  int64_t last = real_ns(), deadline = mono_ns() + 60000000000LL;
  for (;;) {
    (void)twin_round(&w, &last);
    tw_kafka_consumer_stats ks;
    tw_kafka_consumer_stats_get(w.kc, &ks);
    if (ks.rebalances > 0)
      break;
    if (mono_ns() > deadline)
      die("twin latency consumer: no assignment in 60 s");
  }
  w.measure = true;
  pacer p = {topic, rate, seconds, warm, 0, 0};
  pthread_t th;
  if (pthread_create(&th, NULL, pace, &p) != 0)
    die("cannot start the producer thread");
  uint64_t total = (uint64_t)(rate * seconds);
  deadline = mono_ns() + (int64_t)((warm + seconds + 60) * 1e9);
  while (mono_ns() < deadline) {
    (void)twin_round(&w, &last);
    tw_ingest_stats s;
    tw_ingest_stats_get(w.in, &s);
    if (w.pushed.n >= total && w.npend == 0)
      break;
  }
  pthread_join(th, NULL);
  tw_ingest_stats st;
  twin_close(&w, &st);
  (void)unlink(rec);
  if (w.pushed.n < total)
    note("twin latency: %zu of %" PRIu64 " records", w.pushed.n, total);
  printf("{\"bench\":\"kafka_latency_ingest\",\"impl\":\"twin\",\"records\":"
         "%" PRIu64 ",\"accepted\":%" PRIu64 ",\"late\":%" PRIu64
         ",\"overflow\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"ticks\":%" PRId64
         "}\n",
         st.records, st.accepted, st.late, st.overflow, st.refused, st.ticks);
  lat_line("twin", "pushed", &p, &w.pushed);
  lat_line("twin", "synced", &p, &w.synced);
  lat_line("twin", "committed", &p, &w.committed);
  free(w.pushed.v);
  free(w.synced.v);
  free(w.committed.v);
}

/* --- Main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  uint64_t n = 2000000;
  int reps = 3;
  double rate = 50000, seconds = 10, warm = 3;
  bool do_tp = true, do_lat = true, do_pipe = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--skip-latency") == 0)
      do_lat = false;
    else if (strcmp(a, "--skip-throughput") == 0)
      do_tp = false;
    else if (strcmp(a, "--pipeline") == 0)
      do_pipe = true;
    else if (v == NULL)
      die("%s needs a value", a);
    else if (strcmp(a, "--records") == 0)
      n = strtoull(v, NULL, 10), i++;
    else if (strcmp(a, "--reps") == 0)
      reps = atoi(v), i++;
    else if (strcmp(a, "--rate") == 0)
      rate = atof(v), i++;
    else if (strcmp(a, "--seconds") == 0)
      seconds = atof(v), i++;
    else if (strcmp(a, "--warmup") == 0)
      warm = atof(v), i++;
    else if (strcmp(a, "--dir") == 0)
      dir = v, i++;
    else
      die("unknown option %s (--records N --reps R --rate R --seconds S "
          "--warmup S --dir DIR --skip-latency --skip-throughput "
          "--pipeline)",
          a);
  }
  if (n < 1 || reps < 1 || reps > MAX_REPS || !(rate > 0) || !(seconds > 0) ||
      !(warm >= 0))
    die("need --records >= 1, --reps 1..%d, --rate > 0, --seconds > 0",
        MAX_REPS);
  if (do_pipe) { /* no broker */
    pipeline_breakdown(n, reps);
    return 0;
  }
  bootstrap = getenv("TW_KAFKA_BOOTSTRAP");
  if (bootstrap == NULL || *bootstrap == '\0')
    die("TW_KAFKA_BOOTSTRAP is not set: run under scripts/kafka run");

  if (do_tp) {
    create_topic(TOPIC);
    uint64_t bytes = produce_all(n);
    double rr[MAX_REPS], rb[MAX_REPS], tr[MAX_REPS];
    tw_ingest_stats st = {0};
    uint64_t file_bytes = 0;
    for (int r = 0; r < reps; r++) {
      raw_throughput(r, n, &rr[r], &rb[r]);
      twin_throughput(r, n, &tr[r], &st, &file_bytes);
      note("round %d: librdkafka %.0f records/s, twin %.0f records/s "
           "(ratio %.3f)",
           r + 1, rr[r], tr[r], tr[r] / rr[r]);
    }
    char lr[MAX_REPS * 16] = "", lt[MAX_REPS * 16] = "";
    for (int r = 0, o1 = 0, o2 = 0; r < reps; r++) {
      o1 += snprintf(lr + o1, sizeof lr - (size_t)o1, "%s%.0f", r ? "," : "",
                     rr[r]);
      o2 += snprintf(lt + o2, sizeof lt - (size_t)o2, "%s%.0f", r ? "," : "",
                     tr[r]);
    }
    double mr = median(rr, reps), mb = median(rb, reps), mt = median(tr, reps);
    printf("{\"bench\":\"kafka_consume\",\"impl\":\"librdkafka\",\"records\":"
           "%" PRIu64 ",\"reps\":%d,\"records_per_s\":%.0f,\"mb_per_s\":%.2f,"
           "\"rounds\":[%s]}\n",
           n, reps, mr, mb / 1e6, lr);
    printf("{\"bench\":\"kafka_consume\",\"impl\":\"twin\",\"records\":%" PRIu64
           ",\"reps\":%d,\"records_per_s\":%.0f,\"mb_per_s\":%.2f,"
           "\"rounds\":[%s],\"ratio\":%.3f,\"target\":0.7,\"met\":%s,"
           "\"accepted\":%" PRIu64 ",\"late\":%" PRIu64 ",\"overflow\":%" PRIu64
           ",\"refused\":%" PRIu64 ",\"duplicates\":%" PRIu64
           ",\"ticks\":%" PRId64 ",\"pauses\":%" PRIu64
           ",\"recording_bytes\":%" PRIu64 "}\n",
           n, reps, mt, mt * ((double)bytes / (double)n) / 1e6, lt, mt / mr,
           mt / mr >= 0.7 ? "true" : "false", st.accepted, st.late, st.overflow,
           st.refused, st.duplicates, st.ticks, st.pauses, file_bytes);
    fflush(stdout);
  }
  if (do_lat) {
    raw_latency(rate, seconds, warm);
    twin_latency(rate, seconds, warm);
  }
  return 0;
}
