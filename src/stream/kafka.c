/*
 * kafka.c - the Kafka connector (twin/kafka.h) on librdkafka's C API: a
 * group consumer whose offsets are committed only for marked records, a
 * producer with delivery reports folded into flush, and dead letters with
 * Kafka Connect's error headers.
 *
 * Invariants: the consumer keeps its own table of owned partitions, each
 * with the next offset to commit (marked) and the last one the broker
 * accepted (committed); librdkafka's offset store is never used, so no
 * offset is committed that the caller did not mark. The table follows
 * the rebalance callback: an assignment adds rows, a revocation commits
 * the rows' marks (unless the partitions were lost) and removes them.
 * Errors raised inside librdkafka's callbacks are kept in the consumer or
 * producer (first one wins) and returned by the next call that can.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "twin/alloc.h"
#include "twin/kafka.h"

#define DEFAULT_CLIENT_ID "twin"
#define DEFAULT_MAX_RECORD (1u << 20)
#define DEFAULT_UNREACHABLE_MS 30000
#define DEFAULT_LINGER_MS 5
#define DEFAULT_QUEUE_WAIT_MS 10000
#define PROBE_MS 1000
#define KEY_MAX 256
#define POLL_BATCH 256 /* messages taken from a partition's queue at once */
#define DLQ_PREFIX "__connect.errors."

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- Errors ---------------------------------------------------------------
 */

/* The Twin code of a librdkafka error. */
static int map_err(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return TW_ENOENT;
  case RD_KAFKA_RESP_ERR__AUTHENTICATION:
  case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
  case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
  case RD_KAFKA_RESP_ERR__SSL:
    return TW_EAUTH;
  case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    return TW_EPERM;
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
  case RD_KAFKA_RESP_ERR__RESOLVE:
    return TW_ECONN;
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    return TW_ETIMEDOUT;
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    return TW_ELIMIT;
  case RD_KAFKA_RESP_ERR__QUEUE_FULL:
  case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
  case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
  case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    return TW_EBUSY;
  case RD_KAFKA_RESP_ERR__INVALID_ARG:
  case RD_KAFKA_RESP_ERR__INVALID_TYPE:
    return TW_EINVAL;
  case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
  case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    return TW_ENOTSUP;
  case RD_KAFKA_RESP_ERR__BAD_MSG:
  case RD_KAFKA_RESP_ERR__BAD_COMPRESSION:
  case RD_KAFKA_RESP_ERR_INVALID_MSG:
    return TW_EPROTO;
  default:
    return TW_EIO;
  }
}

/* Errors of a consumer that librdkafka recovers from by itself: the
 * connector counts them and goes on. */
static bool transient(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
  case RD_KAFKA_RESP_ERR__RESOLVE:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__WAIT_COORD:
  case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
  case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
  case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
  case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
  case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
  case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
  case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
  case RD_KAFKA_RESP_ERR__PARTITION_EOF:
  case RD_KAFKA_RESP_ERR__INTR:
    return true;
  default:
    return false;
  }
}

static bool is_transport(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR__TRANSPORT ||
         e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
         e == RD_KAFKA_RESP_ERR__RESOLVE;
}

/* --- Configuration --------------------------------------------------------
 */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    tw_err *err) {
  char es[512];
  switch (rd_kafka_conf_set(conf, key, value, es, sizeof es)) {
  case RD_KAFKA_CONF_OK:
    return TW_OK;
  case RD_KAFKA_CONF_UNKNOWN:
    return tw_err_set(err, TW_EINVAL, "kafka: unknown property '%s'", key);
  default:
    return tw_err_set(err, TW_EINVAL, "kafka: property '%s': %s", key, es);
  }
}

/* Applies "key=value" strings; keys in owned (NULL-terminated) are
 * refused, as the connector sets them and its guarantees rest on them. */
static int conf_extra(rd_kafka_conf_t *conf, const char *const *cfg, size_t n,
                      const char *const *owned, tw_err *err) {
  if (n > 0 && cfg == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka: %zu config entries, no array", n);
  for (size_t i = 0; i < n; i++) {
    const char *s = cfg[i];
    if (s == NULL)
      return tw_err_set(err, TW_EINVAL, "kafka: config entry %zu is NULL", i);
    const char *eq = strchr(s, '=');
    size_t klen = eq != NULL ? (size_t)(eq - s) : 0;
    if (eq == NULL || klen == 0 || klen >= KEY_MAX)
      return tw_err_set(err, TW_EINVAL,
                        "kafka: config entry %zu: \"key=value\" expected", i);
    char key[KEY_MAX];
    memcpy(key, s, klen);
    key[klen] = '\0';
    for (size_t k = 0; owned[k] != NULL; k++)
      if (strcmp(key, owned[k]) == 0)
        return tw_err_set(err, TW_EINVAL,
                          "kafka: property '%s' is set by the connector", key);
    int rc = conf_set(conf, key, eq + 1, err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* --- Consumer -------------------------------------------------------------
 */

/* One owned partition. Offsets are "next to read": -1 when none. */
typedef struct part {
  char *topic;
  int32_t partition;
  int64_t marked;
  int64_t committed;
  rd_kafka_queue_t *q; /* its own fetch queue (with a rank), or NULL */
} part;

struct tw_kafka_consumer {
  rd_kafka_t *rk;
  char *brokers;
  part *parts;
  size_t nparts, cap;
  tw_kafka_header *hdrs;
  size_t hcap;
  size_t max_record;
  int unreachable_ms;
  int64_t down_since; /* monotonic ms; 0: brokers reachable */
  char down_msg[256];
  tw_err cb_err; /* an error raised in a callback, for the next poll */
  tw_kafka_consumer_stats st;
  void (*on_assign)(void *ud, const char *topic, int32_t partition,
                    bool assigned);
  void *assign_ud;
  bool polling; /* inside tw_kafka_consumer_poll: on_assign may run */
  int64_t (*rank)(void *ud, const char *topic, int32_t partition);
  void *rank_ud;
  rd_kafka_message_t *batch[POLL_BATCH]; /* messages of one queue */
};

/* Tells the caller about partitions assigned or revoked (during a poll). */
static void tell_assign(tw_kafka_consumer *c,
                        const rd_kafka_topic_partition_list_t *pl,
                        bool assigned) {
  if (c->on_assign == NULL || !c->polling)
    return;
  for (int i = 0; i < pl->cnt; i++)
    c->on_assign(c->assign_ud, pl->elems[i].topic, pl->elems[i].partition,
                 assigned);
}

static part *part_find(tw_kafka_consumer *c, const char *topic, int32_t p) {
  for (size_t i = 0; i < c->nparts; i++)
    if (c->parts[i].partition == p && strcmp(c->parts[i].topic, topic) == 0)
      return &c->parts[i];
  return NULL;
}

static int part_add(tw_kafka_consumer *c, const char *topic, int32_t p) {
  if (part_find(c, topic, p) != NULL)
    return TW_OK;
  if (c->nparts == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 8;
    part *np = tw_reallocarray(c->parts, cap, sizeof *np);
    if (np == NULL)
      return TW_ENOMEM;
    c->parts = np;
    c->cap = cap;
  }
  char *t = tw_strdup(topic);
  if (t == NULL)
    return TW_ENOMEM;
  c->parts[c->nparts++] = (part){t, p, -1, -1, NULL};
  return TW_OK;
}

/* Takes partition x's messages off the consumer queue onto its own, so
 * that poll chooses which partition to read (the rank). */
static void part_split(tw_kafka_consumer *c, part *x) {
  if (c->rank == NULL || x->q != NULL)
    return;
  x->q = rd_kafka_queue_get_partition(c->rk, x->topic, x->partition);
  if (x->q != NULL)
    rd_kafka_queue_forward(x->q, NULL);
}

static void part_unsplit(part *x) {
  if (x->q != NULL)
    rd_kafka_queue_destroy(x->q);
  x->q = NULL;
}

static void part_remove(tw_kafka_consumer *c, const char *topic, int32_t p) {
  part *x = part_find(c, topic, p);
  if (x == NULL)
    return;
  part_unsplit(x);
  tw_free(x->topic);
  *x = c->parts[--c->nparts];
}

static void parts_clear(tw_kafka_consumer *c) {
  for (size_t i = 0; i < c->nparts; i++) {
    part_unsplit(&c->parts[i]);
    tw_free(c->parts[i].topic);
  }
  c->nparts = 0;
}

static void brokers_up(tw_kafka_consumer *c) { c->down_since = 0; }

/* The answer to an asynchronous commit (served by poll). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                      rd_kafka_topic_partition_list_t *l, void *opaque) {
  (void)rk;
  tw_kafka_consumer *c = opaque;
  if (e == RD_KAFKA_RESP_ERR__NO_OFFSET)
    return; /* nothing was to commit */
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    c->st.commit_errors++;
    return; /* the marks stay: the next commit sends them again */
  }
  c->st.commits++;
  for (int i = 0; l != NULL && i < l->cnt; i++) {
    part *x = part_find(c, l->elems[i].topic, l->elems[i].partition);
    if (x != NULL && l->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        l->elems[i].offset > x->committed)
      x->committed = l->elems[i].offset;
  }
}

/* Commits the marks not yet committed of the owned partitions, or only of
 * those in only (when not NULL). */
static int commit_marks(tw_kafka_consumer *c,
                        const rd_kafka_topic_partition_list_t *only, bool async,
                        tw_err *err) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)c->nparts);
  if (l == NULL)
    return tw_err_set(err, TW_ENOMEM, "kafka: commit: out of memory");
  for (size_t i = 0; i < c->nparts; i++) {
    part *x = &c->parts[i];
    if (x->marked < 0 || x->marked <= x->committed)
      continue;
    if (only != NULL && rd_kafka_topic_partition_list_find(
                            only, x->topic, x->partition) == NULL)
      continue;
    rd_kafka_topic_partition_list_add(l, x->topic, x->partition)->offset =
        x->marked;
  }
  if (l->cnt == 0) {
    rd_kafka_topic_partition_list_destroy(l);
    return TW_OK;
  }
  rd_kafka_resp_err_t e;
  if (async) {
    /* The answer comes to on_commit through the consumer's queue, served
     * by poll (sync commits answer here and are counted below). */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c->rk);
    e = q != NULL ? rd_kafka_commit_queue(c->rk, l, q, on_commit, c)
                  : RD_KAFKA_RESP_ERR__STATE;
    if (q != NULL)
      rd_kafka_queue_destroy(q);
  } else {
    e = rd_kafka_commit(c->rk, l, 0);
  }
  int rc = TW_OK;
  if (async && e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    /* Sent: on_commit counts the answer and moves `committed`. */
    rd_kafka_topic_partition_list_destroy(l);
    return TW_OK;
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    c->st.commit_errors++;
    rc = tw_err_set(err, map_err(e),
                    "kafka: commit of %d partition(s) failed: %s (marks kept)",
                    l->cnt, rd_kafka_err2str(e));
  } else {
    c->st.commits++;
    brokers_up(c);
    for (int i = 0; i < l->cnt; i++) {
      part *x = part_find(c, l->elems[i].topic, l->elems[i].partition);
      if (x != NULL)
        x->committed = l->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *pl, void *opaque) {
  tw_kafka_consumer *c = opaque;
  bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  rd_kafka_error_t *ae = NULL;
  rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
  c->st.rebalances++;
  brokers_up(c);
  if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < pl->cnt; i++)
      if (part_add(c, pl->elems[i].topic, pl->elems[i].partition) != TW_OK)
        (void)tw_err_set(&c->cb_err, TW_ENOMEM,
                         "kafka: out of memory taking partition %s [%" PRId32
                         "]",
                         pl->elems[i].topic, pl->elems[i].partition);
    if (coop)
      ae = rd_kafka_incremental_assign(rk, pl);
    else
      re = rd_kafka_assign(rk, pl);
    if (ae == NULL && re == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < pl->cnt; i++) {
        part *x = part_find(c, pl->elems[i].topic, pl->elems[i].partition);
        if (x != NULL)
          part_split(c, x);
      }
      tell_assign(c, pl, true);
    }
  } else if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    if (rd_kafka_assignment_lost(rk)) {
      c->st.partitions_lost += (uint64_t)pl->cnt;
    } else {
      /* A failed commit here is not the caller's error: the records
       * come again to the partitions' next owner. It is counted. */
      tw_err ce;
      tw_err_init(&ce);
      (void)commit_marks(c, pl, false, &ce);
    }
    for (int i = 0; i < pl->cnt; i++)
      part_remove(c, pl->elems[i].topic, pl->elems[i].partition);
    tell_assign(c, pl, false);
    if (coop)
      ae = rd_kafka_incremental_unassign(rk, pl);
    else
      re = rd_kafka_assign(rk, NULL);
  } else {
    parts_clear(c);
    re = rd_kafka_assign(rk, NULL);
    (void)tw_err_set(&c->cb_err, map_err(e), "kafka: rebalance failed: %s",
                     rd_kafka_err2str(e));
  }
  if (ae != NULL) {
    (void)tw_err_set(&c->cb_err, map_err(rd_kafka_error_code(ae)),
                     "kafka: incremental rebalance: %s",
                     rd_kafka_error_string(ae));
    rd_kafka_error_destroy(ae);
  }
  if (re != RD_KAFKA_RESP_ERR_NO_ERROR)
    (void)tw_err_set(&c->cb_err, map_err(re), "kafka: assign: %s",
                     rd_kafka_err2str(re));
}

static bool nonempty(const char *s) { return s != NULL && *s != '\0'; }

static int check_consumer_opts(const tw_kafka_consumer_opts *o, tw_err *err) {
  if (o == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka consumer: no options");
  if (!nonempty(o->brokers))
    return tw_err_set(err, TW_EINVAL, "kafka consumer: no brokers");
  if (!nonempty(o->group))
    return tw_err_set(err, TW_EINVAL, "kafka consumer: no group");
  if (o->ntopics == 0 || o->topics == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka consumer: no topics");
  for (size_t i = 0; i < o->ntopics; i++)
    if (!nonempty(o->topics[i]))
      return tw_err_set(err, TW_EINVAL, "kafka consumer: topic %zu is empty",
                        i);
  if (o->offset_reset != NULL && strcmp(o->offset_reset, "earliest") != 0 &&
      strcmp(o->offset_reset, "latest") != 0)
    return tw_err_set(err, TW_EINVAL,
                      "kafka consumer: offset_reset '%s', not 'earliest' or "
                      "'latest'",
                      o->offset_reset);
  if (o->unreachable_ms < 0)
    return tw_err_set(err, TW_EINVAL, "kafka consumer: unreachable_ms %d < 0",
                      o->unreachable_ms);
  return TW_OK;
}

static void on_consumer_error(rd_kafka_t *rk, int e, const char *reason,
                              void *opaque);

static const char *const consumer_owned[] = {
    "enable.auto.commit", "enable.auto.offset.store", "group.id",
    "bootstrap.servers",  "metadata.broker.list",     NULL};

static int consumer_conf(tw_kafka_consumer *c, const tw_kafka_consumer_opts *o,
                         rd_kafka_conf_t *conf, tw_err *err) {
  int rc;
  if ((rc = conf_set(conf, "bootstrap.servers", o->brokers, err)) ||
      (rc = conf_set(conf, "group.id", o->group, err)) ||
      (rc = conf_set(conf, "client.id",
                     o->client_id ? o->client_id : DEFAULT_CLIENT_ID, err)) ||
      (rc = conf_set(conf, "enable.auto.commit", "false", err)) ||
      (rc = conf_set(conf, "enable.auto.offset.store", "false", err)) ||
      (rc = conf_set(conf, "enable.partition.eof", "false", err)) ||
      (rc = conf_set(conf, "auto.offset.reset",
                     o->offset_reset ? o->offset_reset : "earliest", err)) ||
      (rc = conf_set(conf, "log.connection.close", "false", err)) ||
      /* With librdkafka 2.0's default (100000) a consumer that works on
       * every record starved in bursts reading a backlog: polls found the
       * queue empty for milliseconds at a time (bench/ingest: a consumer
       * spending 0.5 us per record read 200000 records in 1.0 s, in
       * 0.23 s with this; the ingest pipeline went from 171000 to 513000
       * records/s). The queue stays bounded by
       * queued.max.messages.kbytes (64 MiB by default). */
      (rc = conf_set(conf, "queued.min.messages", "1000000", err)) ||
      (rc = conf_extra(conf, o->config, o->nconfig, consumer_owned, err)))
    return rc;
  rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  rd_kafka_conf_set_error_cb(conf, on_consumer_error);
  rd_kafka_conf_set_opaque(conf, c);
  return TW_OK;
}

int tw_kafka_consumer_new(const tw_kafka_consumer_opts *o,
                          tw_kafka_consumer **out, tw_err *err) {
  int rc = check_consumer_opts(o, err);
  if (rc != TW_OK)
    return rc;
  tw_kafka_consumer *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "kafka consumer: out of memory");
  tw_err_init(&c->cb_err);
  c->max_record =
      o->max_record_bytes ? o->max_record_bytes : (size_t)DEFAULT_MAX_RECORD;
  c->unreachable_ms =
      o->unreachable_ms ? o->unreachable_ms : DEFAULT_UNREACHABLE_MS;
  c->on_assign = o->on_assign;
  c->assign_ud = o->assign_ud;
  c->rank = o->rank;
  c->rank_ud = o->rank_ud;
  c->brokers = tw_strdup(o->brokers);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_topic_partition_list_t *tl = NULL;
  if (c->brokers == NULL || conf == NULL) {
    rc = tw_err_set(err, TW_ENOMEM, "kafka consumer: out of memory");
    goto fail;
  }
  if ((rc = consumer_conf(c, o, conf, err)) != TW_OK)
    goto fail;
  char es[512];
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
  if (c->rk == NULL) {
    rc = tw_err_set(err, TW_EINVAL, "kafka consumer: %s", es);
    goto fail;
  }
  conf = NULL; /* owned by rk now */
  rd_kafka_poll_set_consumer(c->rk);
  tl = rd_kafka_topic_partition_list_new((int)o->ntopics);
  for (size_t i = 0; i < o->ntopics; i++)
    rd_kafka_topic_partition_list_add(tl, o->topics[i], RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, tl);
  rd_kafka_topic_partition_list_destroy(tl);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rc = tw_err_set(err, map_err(e), "kafka consumer: subscribe: %s",
                    rd_kafka_err2str(e));
    goto fail;
  }
  *out = c;
  return TW_OK;
fail:
  if (conf != NULL)
    rd_kafka_conf_destroy(conf);
  if (c->rk != NULL)
    rd_kafka_destroy(c->rk);
  tw_free(c->brokers);
  tw_free(c);
  return rc;
}

/* Whether a librdkafka error ends the work rather than being retried:
 * fatal errors, failed authentication or authorization, missing topics. */
static bool permanent(rd_kafka_resp_err_t e) {
  if (e == RD_KAFKA_RESP_ERR__FATAL)
    return true;
  int code = map_err(e);
  return code == TW_EAUTH || code == TW_EPERM || code == TW_ENOENT;
}

/* Client-wide errors (connections, authentication) come here, served by
 * poll. librdkafka retries them all; the permanent ones are returned by
 * the next poll, the others counted. */
static void on_consumer_error(rd_kafka_t *rk, int e, const char *reason,
                              void *opaque) {
  tw_kafka_consumer *c = opaque;
  if (e == RD_KAFKA_RESP_ERR__FATAL) {
    char fs[512];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, fs, sizeof fs);
    (void)tw_err_set(&c->cb_err, map_err(fe), "kafka consumer: fatal error: %s",
                     fs);
    return;
  }
  if (permanent((rd_kafka_resp_err_t)e)) {
    (void)tw_err_set(&c->cb_err, map_err((rd_kafka_resp_err_t)e),
                     "kafka consumer: %s", reason);
    return;
  }
  c->st.transport_errors++;
  if (is_transport((rd_kafka_resp_err_t)e)) {
    if (c->down_since == 0)
      c->down_since = now_ms();
    (void)snprintf(c->down_msg, sizeof c->down_msg, "%s", reason);
  }
}

/* Turns a consumer error into a return code (0: transient, go on). */
static int consumer_error(tw_kafka_consumer *c, const rd_kafka_message_t *m,
                          tw_err *err) {
  rd_kafka_resp_err_t e = m->err;
  if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF)
    return TW_OK;
  const char *msg = rd_kafka_message_errstr(m);
  if (e == RD_KAFKA_RESP_ERR__FATAL) {
    char fs[512];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(c->rk, fs, sizeof fs);
    return tw_err_set(err, map_err(fe), "kafka consumer: fatal error: %s", fs);
  }
  if (transient(e)) {
    c->st.transport_errors++;
    if (is_transport(e)) {
      if (c->down_since == 0)
        c->down_since = now_ms();
      (void)snprintf(c->down_msg, sizeof c->down_msg, "%s", msg);
    }
    return TW_OK;
  }
  const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : NULL;
  if (map_err(e) == TW_ENOENT && topic != NULL)
    return tw_err_set(err, TW_ENOENT, "kafka: topic '%s' does not exist: %s",
                      topic, msg);
  if (topic != NULL)
    return tw_err_set(err, map_err(e), "kafka consumer: topic '%s': %s", topic,
                      msg);
  return tw_err_set(err, map_err(e), "kafka consumer: %s", msg);
}

/* TW_ECONN once every broker has been unreachable for unreachable_ms and a
 * metadata request still gets no answer. */
static int check_reachable(tw_kafka_consumer *c, tw_err *err) {
  if (c->down_since == 0 || now_ms() - c->down_since < c->unreachable_ms)
    return TW_OK;
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, NULL, &md, PROBE_MS);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_metadata_destroy(md);
    brokers_up(c);
    return TW_OK;
  }
  return tw_err_set(err, TW_ECONN,
                    "kafka: no broker of '%s' reachable for %" PRId64 " ms: %s",
                    c->brokers, now_ms() - c->down_since,
                    c->down_msg[0] ? c->down_msg : rd_kafka_err2str(e));
}

static int deliver(tw_kafka_consumer *c, const rd_kafka_message_t *m,
                   tw_kafka_record_cb cb, void *ud, tw_err *err) {
  tw_kafka_record r;
  memset(&r, 0, sizeof r);
  r.topic = rd_kafka_topic_name(m->rkt);
  r.partition = m->partition;
  r.offset = m->offset;
  rd_kafka_timestamp_type_t tt;
  r.timestamp_ms = rd_kafka_message_timestamp(m, &tt);
  r.timestamp_type = tt == RD_KAFKA_TIMESTAMP_CREATE_TIME ? TW_KAFKA_TS_CREATE
                     : tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME
                         ? TW_KAFKA_TS_LOG_APPEND
                         : TW_KAFKA_TS_NONE;
  if (r.timestamp_type == TW_KAFKA_TS_NONE)
    r.timestamp_ms = -1;
  r.key = m->key;
  r.key_len = m->key != NULL ? m->key_len : 0;
  r.value = m->payload;
  r.size = m->payload != NULL ? m->len : 0;
  r.len = r.size;
  if (r.size > c->max_record) {
    r.len = c->max_record;
    r.oversize = true;
    c->st.oversize++;
  }
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      h != NULL) {
    size_t n = rd_kafka_header_cnt(h);
    if (n > c->hcap) {
      tw_kafka_header *nh = tw_reallocarray(c->hdrs, n, sizeof *nh);
      if (nh == NULL)
        return tw_err_set(err, TW_ENOMEM,
                          "kafka: out of memory for %zu headers of %s "
                          "[%" PRId32 "] at %" PRId64,
                          n, r.topic, r.partition, r.offset);
      c->hdrs = nh;
      c->hcap = n;
    }
    for (size_t i = 0; i < n; i++) {
      const void *v = NULL;
      size_t vl = 0;
      const char *name = NULL;
      if (rd_kafka_header_get_all(h, i, &name, &v, &vl) !=
          RD_KAFKA_RESP_ERR_NO_ERROR)
        return tw_err_set(err, TW_EINTERNAL, "kafka: header %zu unreadable", i);
      c->hdrs[i] = (tw_kafka_header){name, v, v != NULL ? vl : 0};
    }
    r.headers = c->hdrs;
    r.nheaders = n;
  }
  c->st.records++;
  c->st.bytes += r.key_len + r.size;
  return cb(ud, &r);
}

/* One message of poll: delivered, or an error handled. */
static int take(tw_kafka_consumer *c, const rd_kafka_message_t *m,
                tw_kafka_record_cb cb, void *ud, size_t *got, tw_err *err) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return consumer_error(c, m, err);
  brokers_up(c);
  (*got)++;
  return deliver(c, m, cb, ud, err);
}

/* The owned partition with messages waiting in its own queue whose rank
 * is lowest, or NULL. */
static part *lowest_ready(tw_kafka_consumer *c) {
  part *best = NULL;
  int64_t br = 0;
  for (size_t i = 0; i < c->nparts; i++) {
    part *x = &c->parts[i];
    if (x->q == NULL || rd_kafka_queue_length(x->q) == 0)
      continue;
    int64_t r = c->rank(c->rank_ud, x->topic, x->partition);
    if (best == NULL || r < br) {
      best = x;
      br = r;
    }
  }
  return best;
}

int tw_kafka_consumer_poll(tw_kafka_consumer *c, int timeout_ms, size_t max,
                           tw_kafka_record_cb cb, void *ud, size_t *n,
                           tw_err *err) {
  size_t got = 0;
  if (n != NULL)
    *n = 0;
  if (c == NULL || cb == NULL || max == 0 || timeout_ms < 0)
    return tw_err_set(err, TW_EINVAL,
                      "kafka consumer poll: a consumer, a callback, max >= 1 "
                      "and timeout_ms >= 0 are needed");
  int64_t deadline = now_ms() + timeout_ms;
  int rc = TW_OK;
  c->polling = true;
  while (got < max && rc == TW_OK) {
    /* Events, errors and records not (yet) on a partition's own queue. */
    rd_kafka_message_t *m = NULL;
    part *x = NULL;
    if (c->rank != NULL) {
      m = rd_kafka_consumer_poll(c->rk, 0);
      if (m == NULL)
        x = lowest_ready(c);
    }
    if (x != NULL) {
      size_t want = max - got < POLL_BATCH ? max - got : POLL_BATCH;
      ssize_t k = rd_kafka_consume_batch_queue(x->q, 0, c->batch, want);
      for (ssize_t i = 0; i < k; i++) {
        if (rc == TW_OK)
          rc = take(c, c->batch[i], cb, ud, &got, err);
        rd_kafka_message_destroy(c->batch[i]);
      }
      /* A queue holding only control operations yields nothing: the
       * deadline still bounds the call. */
      if (k <= 0 && (got > 0 || now_ms() >= deadline))
        break;
    } else if (m == NULL) {
      /* Once a record came, the rest of the batch is only what is queued
       * already: no clock read per record. With partition queues the wait
       * is in slices, a partition's records not waking it. */
      int wait = 0;
      if (got == 0) {
        int64_t left = deadline - now_ms();
        wait = left <= 0 ? 0 : (int)left;
        if (c->rank != NULL && wait > 1)
          wait = 1;
      }
      m = rd_kafka_consumer_poll(c->rk, wait);
      if (m == NULL && (got > 0 || now_ms() >= deadline))
        break;
    }
    if (m != NULL) {
      rc = take(c, m, cb, ud, &got, err);
      rd_kafka_message_destroy(m);
    }
    if (rc == TW_OK && c->cb_err.code != TW_OK) {
      rc = c->cb_err.code;
      (void)tw_err_copy(err, &c->cb_err);
      tw_err_init(&c->cb_err);
    }
  }
  c->polling = false;
  if (rc == TW_OK && got == 0)
    rc = check_reachable(c, err);
  if (n != NULL)
    *n = got;
  return rc;
}

int tw_kafka_consumer_pause(tw_kafka_consumer *c, const char *topic,
                            int32_t partition, bool pause, tw_err *err) {
  if (c == NULL || topic == NULL || partition < 0)
    return tw_err_set(err, TW_EINVAL,
                      "kafka pause: a consumer, a topic and a partition >= 0 "
                      "are needed");
  if (part_find(c, topic, partition) == NULL)
    return TW_OK; /* not ours (any more) */
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  if (l == NULL)
    return tw_err_set(err, TW_ENOMEM, "kafka pause: out of memory");
  (void)rd_kafka_topic_partition_list_add(l, topic, partition);
  rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(c->rk, l)
                                : rd_kafka_resume_partitions(c->rk, l);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    e = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  if (e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
    return TW_OK; /* not assigned after all */
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return tw_err_set(err, map_err(e), "kafka: %s %s [%" PRId32 "]: %s",
                      pause ? "pause" : "resume", topic, partition,
                      rd_kafka_err2str(e));
  if (pause)
    c->st.pauses++;
  return TW_OK;
}

int tw_kafka_consumer_mark(tw_kafka_consumer *c, const char *topic,
                           int32_t partition, int64_t offset, tw_err *err) {
  if (c == NULL || topic == NULL || partition < 0 || offset < 0)
    return tw_err_set(err, TW_EINVAL,
                      "kafka mark: a consumer, a topic and a partition and "
                      "offset >= 0 are needed");
  part *x = part_find(c, topic, partition);
  if (x == NULL) {
    c->st.marks_dropped++;
    return TW_OK;
  }
  c->st.marks++;
  if (offset + 1 > x->marked)
    x->marked = offset + 1;
  return TW_OK;
}

int tw_kafka_consumer_commit_async(tw_kafka_consumer *c, tw_err *err) {
  if (c == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka commit: no consumer");
  return commit_marks(c, NULL, true, err);
}

int tw_kafka_consumer_commit(tw_kafka_consumer *c, tw_err *err) {
  if (c == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka commit: no consumer");
  return commit_marks(c, NULL, false, err);
}

int tw_kafka_consumer_close(tw_kafka_consumer *c, tw_err *err) {
  if (c == NULL)
    return TW_OK;
  int rc = commit_marks(c, NULL, false, err);
  /* Leaving the group revokes what is left through on_rebalance. */
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR && rc == TW_OK)
    rc = tw_err_set(err, map_err(e), "kafka consumer: close: %s",
                    rd_kafka_err2str(e));
  parts_clear(c);
  rd_kafka_destroy(c->rk);
  tw_free(c->parts);
  tw_free(c->hdrs);
  tw_free(c->brokers);
  tw_free(c);
  return rc;
}

void tw_kafka_consumer_stats_get(const tw_kafka_consumer *c,
                                 tw_kafka_consumer_stats *out) {
  memset(out, 0, sizeof *out);
  if (c != NULL)
    *out = c->st;
}

/* --- Producer -------------------------------------------------------------
 */

struct tw_kafka_producer {
  rd_kafka_t *rk;
  int queue_wait_ms;
  uint64_t failed_since_flush;
  tw_err first_failure; /* since the last flush */
  tw_err broken;        /* a permanent client error; sticky */
  tw_kafka_producer_stats st;
};

static void on_producer_error(rd_kafka_t *rk, int e, const char *reason,
                              void *opaque) {
  tw_kafka_producer *p = opaque;
  if (e == RD_KAFKA_RESP_ERR__FATAL) {
    char fs[512];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, fs, sizeof fs);
    (void)tw_err_set(&p->broken, map_err(fe), "kafka producer: fatal error: %s",
                     fs);
  } else if (permanent((rd_kafka_resp_err_t)e)) {
    (void)tw_err_set(&p->broken, map_err((rd_kafka_resp_err_t)e),
                     "kafka producer: %s", reason);
  }
}

/* The permanent error of p, if any, into err. */
static int producer_broken(const tw_kafka_producer *p, tw_err *err) {
  if (p->broken.code == TW_OK)
    return TW_OK;
  (void)tw_err_copy(err, &p->broken);
  return p->broken.code;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  tw_kafka_producer *p = opaque;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    p->st.delivered++;
    return;
  }
  p->st.failed++;
  p->failed_since_flush++;
  const char *topic = m->rkt != NULL ? rd_kafka_topic_name(m->rkt) : "?";
  int code = map_err(m->err);
  if (code == TW_ENOENT)
    (void)tw_err_set(&p->first_failure, code,
                     "kafka: delivery to topic '%s' failed: the topic does "
                     "not exist (%s)",
                     topic, rd_kafka_err2str(m->err));
  else
    (void)tw_err_set(&p->first_failure, code,
                     "kafka: delivery to '%s' [%" PRId32 "] failed: %s", topic,
                     m->partition, rd_kafka_err2str(m->err));
}

static int check_producer_opts(const tw_kafka_producer_opts *o, tw_err *err) {
  if (o == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka producer: no options");
  if (!nonempty(o->brokers))
    return tw_err_set(err, TW_EINVAL, "kafka producer: no brokers");
  if (o->linger_ms < 0 || o->queue_wait_ms < 0)
    return tw_err_set(err, TW_EINVAL,
                      "kafka producer: linger_ms and queue_wait_ms must be "
                      ">= 0");
  return TW_OK;
}

static const char *const producer_owned[] = {"bootstrap.servers",
                                             "metadata.broker.list", NULL};
static const char *const idempotent_owned[] = {
    "bootstrap.servers",     "metadata.broker.list",
    "enable.idempotence",    "acks",
    "request.required.acks", NULL};

static int producer_conf(tw_kafka_producer *p, const tw_kafka_producer_opts *o,
                         rd_kafka_conf_t *conf, tw_err *err) {
  char linger[32];
  (void)snprintf(linger, sizeof linger, "%d",
                 o->linger_ms ? o->linger_ms : DEFAULT_LINGER_MS);
  int rc;
  if ((rc = conf_set(conf, "bootstrap.servers", o->brokers, err)) ||
      (rc = conf_set(conf, "client.id",
                     o->client_id ? o->client_id : DEFAULT_CLIENT_ID, err)) ||
      (rc = conf_set(conf, "linger.ms", linger, err)) ||
      (rc = conf_set(conf, "log.connection.close", "false", err)))
    return rc;
  if (!o->no_idempotence &&
      ((rc = conf_set(conf, "enable.idempotence", "true", err)) ||
       (rc = conf_set(conf, "acks", "all", err))))
    return rc;
  if ((rc = conf_extra(conf, o->config, o->nconfig,
                       o->no_idempotence ? producer_owned : idempotent_owned,
                       err)))
    return rc;
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_error_cb(conf, on_producer_error);
  rd_kafka_conf_set_opaque(conf, p);
  return TW_OK;
}

int tw_kafka_producer_new(const tw_kafka_producer_opts *o,
                          tw_kafka_producer **out, tw_err *err) {
  int rc = check_producer_opts(o, err);
  if (rc != TW_OK)
    return rc;
  tw_kafka_producer *p = tw_calloc(1, sizeof *p);
  if (p == NULL)
    return tw_err_set(err, TW_ENOMEM, "kafka producer: out of memory");
  tw_err_init(&p->first_failure);
  tw_err_init(&p->broken);
  p->queue_wait_ms =
      o->queue_wait_ms ? o->queue_wait_ms : DEFAULT_QUEUE_WAIT_MS;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (conf == NULL) {
    tw_free(p);
    return tw_err_set(err, TW_ENOMEM, "kafka producer: out of memory");
  }
  if ((rc = producer_conf(p, o, conf, err)) != TW_OK) {
    rd_kafka_conf_destroy(conf);
    tw_free(p);
    return rc;
  }
  char es[512];
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
  if (p->rk == NULL) {
    rd_kafka_conf_destroy(conf);
    tw_free(p);
    return tw_err_set(err, TW_EINVAL, "kafka producer: %s", es);
  }
  *out = p;
  return TW_OK;
}

/* Queues one record; h (may be NULL) is taken on success and destroyed on
 * failure. */
static int produce(tw_kafka_producer *p, const char *topic, int32_t partition,
                   const void *key, size_t key_len, const void *value,
                   size_t len, rd_kafka_headers_t *h, int64_t ts, tw_err *err) {
  int rc = producer_broken(p, err);
  if (rc != TW_OK) {
    if (h != NULL)
      rd_kafka_headers_destroy(h);
    return rc;
  }
  /* librdkafka takes non-const pointers, and copies (RD_KAFKA_MSG_F_COPY). */
  union {
    const void *c;
    void *m;
  } k = {key}, v = {value};
  int64_t deadline = now_ms() + p->queue_wait_ms;
  rd_kafka_resp_err_t e;
  for (;;) {
    e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_KEY(k.m, key_len), RD_KAFKA_V_VALUE(v.m, len),
        RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_ms() >= deadline)
      break;
    rd_kafka_poll(p->rk, 100);
  }
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (h != NULL)
      rd_kafka_headers_destroy(h);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      return tw_err_set(err, TW_EBUSY,
                        "kafka: send to '%s': the local queue stayed full for "
                        "%d ms",
                        topic, p->queue_wait_ms);
    return tw_err_set(err, map_err(e), "kafka: send to '%s' [%" PRId32 "]: %s",
                      topic, partition, rd_kafka_err2str(e));
  }
  p->st.sent++;
  p->st.bytes += key_len + len;
  rd_kafka_poll(p->rk, 0);
  return TW_OK;
}

static int check_send(const char *topic, const void *key, size_t key_len,
                      const void *value, size_t len, tw_err *err) {
  if (!nonempty(topic))
    return tw_err_set(err, TW_EINVAL, "kafka send: no topic");
  if ((key == NULL && key_len > 0) || (value == NULL && len > 0))
    return tw_err_set(err, TW_EINVAL,
                      "kafka send to '%s': a NULL key or value with a length",
                      topic);
  return TW_OK;
}

static int header_add(rd_kafka_headers_t *h, const char *name,
                      const void *value, size_t len, tw_err *err) {
  rd_kafka_resp_err_t e =
      rd_kafka_header_add(h, name, -1, value, value ? (ssize_t)len : 0);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return tw_err_set(err, map_err(e), "kafka: header '%s': %s", name,
                      rd_kafka_err2str(e));
  return TW_OK;
}

int tw_kafka_producer_send(tw_kafka_producer *p, const char *topic,
                           int32_t partition, const void *key, size_t key_len,
                           const void *value, size_t len,
                           const tw_kafka_header *headers, size_t nheaders,
                           tw_err *err) {
  if (p == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka send: no producer");
  int rc = check_send(topic, key, key_len, value, len, err);
  if (rc != TW_OK)
    return rc;
  if (nheaders > 0 && headers == NULL)
    return tw_err_set(err, TW_EINVAL, "kafka send: %zu headers, no array",
                      nheaders);
  rd_kafka_headers_t *h = NULL;
  if (nheaders > 0) {
    h = rd_kafka_headers_new(nheaders);
    for (size_t i = 0; i < nheaders && rc == TW_OK; i++) {
      if (!nonempty(headers[i].name))
        rc =
            tw_err_set(err, TW_EINVAL, "kafka send: header %zu has no name", i);
      else
        rc = header_add(h, headers[i].name, headers[i].value, headers[i].len,
                        err);
    }
    if (rc != TW_OK) {
      rd_kafka_headers_destroy(h);
      return rc;
    }
  }
  return produce(p, topic, partition, key, key_len, value, len, h, 0, err);
}

int tw_kafka_producer_flush(tw_kafka_producer *p, int timeout_ms, tw_err *err) {
  if (p == NULL || timeout_ms < 0)
    return tw_err_set(err, TW_EINVAL,
                      "kafka flush: a producer and timeout_ms >= 0 needed");
  rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
  int rc = producer_broken(p, err);
  if (rc != TW_OK)
    return rc;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return tw_err_set(err, TW_ETIMEDOUT,
                      "kafka flush: %d record(s) not delivered within %d ms",
                      rd_kafka_outq_len(p->rk), timeout_ms);
  if (p->failed_since_flush == 0)
    return TW_OK;
  uint64_t failed = p->failed_since_flush;
  int code = p->first_failure.code;
  (void)tw_err_set(err, code, "%s (%" PRIu64 " failed since the last flush)",
                   p->first_failure.msg, failed);
  p->failed_since_flush = 0;
  tw_err_init(&p->first_failure);
  return code;
}

void tw_kafka_producer_free(tw_kafka_producer *p) {
  if (p == NULL)
    return;
  (void)rd_kafka_flush(p->rk, 5000);
  rd_kafka_destroy(p->rk);
  tw_free(p);
}

void tw_kafka_producer_stats_get(const tw_kafka_producer *p,
                                 tw_kafka_producer_stats *out) {
  memset(out, 0, sizeof *out);
  if (p != NULL)
    *out = p->st;
}

/* --- Dead letters ---------------------------------------------------------
 */

static int header_str(rd_kafka_headers_t *h, const char *name, const char *s,
                      tw_err *err) {
  return header_add(h, name, s, strlen(s), err);
}

static int dlq_headers(rd_kafka_headers_t *h, const tw_kafka_record *r,
                       const tw_kafka_error_info *w, tw_err *err) {
  static const tw_kafka_error_info none = {0};
  if (w == NULL)
    w = &none;
  char pbuf[16], off[24], task[16], exc[64];
  (void)snprintf(pbuf, sizeof pbuf, "%" PRId32, r->partition);
  (void)snprintf(off, sizeof off, "%" PRId64, r->offset);
  (void)snprintf(task, sizeof task, "%d", w->task_id);
  if (w->code < 0)
    (void)snprintf(exc, sizeof exc, "twin.%s", tw_err_name(w->code));
  else
    (void)snprintf(exc, sizeof exc, "twin.Error");
  int rc;
  if ((rc = header_str(h, DLQ_PREFIX "topic", r->topic, err)) ||
      (rc = header_str(h, DLQ_PREFIX "partition", pbuf, err)) ||
      (rc = header_str(h, DLQ_PREFIX "offset", off, err)) ||
      (rc = header_str(h, DLQ_PREFIX "connector.name",
                       w->connector ? w->connector : "twin", err)) ||
      (rc = header_str(h, DLQ_PREFIX "task.id", task, err)) ||
      (rc = header_str(h, DLQ_PREFIX "stage",
                       w->stage ? w->stage : "VALUE_CONVERTER", err)) ||
      (rc = header_str(h, DLQ_PREFIX "class.name",
                       w->class_name ? w->class_name : "twin.stream", err)) ||
      (rc = header_str(h, DLQ_PREFIX "exception.class.name",
                       w->exception_class ? w->exception_class : exc, err)) ||
      (rc = header_str(h, DLQ_PREFIX "exception.message",
                       w->message ? w->message : tw_strerror(w->code), err)))
    return rc;
  if (w->stacktrace != NULL)
    rc = header_str(h, DLQ_PREFIX "exception.stacktrace", w->stacktrace, err);
  return rc;
}

int tw_kafka_dead_letter(tw_kafka_producer *p, const char *dlq_topic,
                         const tw_kafka_record *orig,
                         const tw_kafka_error_info *why, tw_err *err) {
  if (p == NULL || orig == NULL || !nonempty(orig->topic))
    return tw_err_set(err, TW_EINVAL,
                      "kafka dead letter: a producer and a record with a "
                      "topic are needed");
  int rc = check_send(dlq_topic, orig->key, orig->key_len, orig->value,
                      orig->len, err);
  if (rc != TW_OK)
    return rc;
  if (orig->nheaders > 0 && orig->headers == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "kafka dead letter: %zu headers, no array",
                      orig->nheaders);
  rd_kafka_headers_t *h = rd_kafka_headers_new(orig->nheaders + 10);
  size_t plen = strlen(DLQ_PREFIX);
  for (size_t i = 0; i < orig->nheaders && rc == TW_OK; i++) {
    const tw_kafka_header *x = &orig->headers[i];
    if (x->name == NULL || strncmp(x->name, DLQ_PREFIX, plen) == 0)
      continue;
    rc = header_add(h, x->name, x->value, x->len, err);
  }
  if (rc == TW_OK)
    rc = dlq_headers(h, orig, why, err);
  if (rc != TW_OK) {
    rd_kafka_headers_destroy(h);
    return rc;
  }
  int64_t ts =
      orig->timestamp_type != TW_KAFKA_TS_NONE && orig->timestamp_ms >= 0
          ? orig->timestamp_ms
          : 0;
  return produce(p, dlq_topic, -1, orig->key, orig->key_len, orig->value,
                 orig->len, h, ts, err);
}
