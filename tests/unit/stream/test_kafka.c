/*
 * test_kafka.c - the Kafka connector's error paths (twin/kafka.h):
 * options and librdkafka properties refused naming the property, an
 * unreachable broker, and, against librdkafka's in-process mock cluster, a
 * refused commit that keeps its marks, a refused delivery reported by flush,
 * and an oversize record. The mock creates any topic asked for, so unknown
 * topics, like the connector's normal work, are tested against a real broker in
 * tests/integration/kafka_connector.c.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <string.h>
#include <time.h>

#include "tw_test.h"
#include "twin/kafka.h"

/* Kafka protocol API keys, for the mock's error injection. */
#define API_PRODUCE 0
#define API_OFFSET_COMMIT 8

#define TOPIC "known"
#define WAIT_MS 20000

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void assert_msg(const tw_err *err, const char *part) {
  if (strstr(err->msg, part) == NULL)
    print_error("message '%s' lacks '%s'\n", err->msg, part);
  assert_non_null(strstr(err->msg, part));
}

/* A mock cluster of one broker with TOPIC (1 partition). */
typedef struct mock {
  rd_kafka_t *rk;
  rd_kafka_mock_cluster_t *mc;
  const char *bootstrap;
} mock;

static void mock_start(mock *m) {
  char es[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  assert_int_equal(rd_kafka_conf_set(conf, "log_level", "0", es, sizeof es),
                   RD_KAFKA_CONF_OK);
  m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
  assert_non_null(m->rk);
  m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
  assert_non_null(m->mc);
  assert_int_equal(rd_kafka_mock_topic_create(m->mc, TOPIC, 1, 1),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  m->bootstrap = rd_kafka_mock_cluster_bootstraps(m->mc);
}

static void mock_stop(mock *m) {
  rd_kafka_mock_cluster_destroy(m->mc);
  rd_kafka_destroy(m->rk);
}

static const char *const quiet[] = {"log_level=0"};

static int consumer_new(const char *brokers, const char *topic, int unreach,
                        size_t max_record, tw_kafka_consumer **c, tw_err *err) {
  const char *topics[] = {topic};
  tw_kafka_consumer_opts o = {0};
  o.brokers = brokers;
  o.group = "g";
  o.topics = topics;
  o.ntopics = 1;
  o.unreachable_ms = unreach;
  o.max_record_bytes = max_record;
  o.config = quiet;
  o.nconfig = 1;
  tw_err_init(err);
  return tw_kafka_consumer_new(&o, c, err);
}

static void options(void **state) {
  (void)state;
  const char *topics[] = {"t"};
  tw_kafka_consumer *c = NULL;
  tw_err err;
  struct {
    const char *brokers, *group, *reset, *cfg;
    const char *msg;
  } bad[] = {
      {NULL, "g", NULL, NULL, "no brokers"},
      {"h:1", "", NULL, NULL, "no group"},
      {"h:1", "g", "middle", NULL, "offset_reset 'middle'"},
      {"h:1", "g", NULL, "no.such.property=1",
       "unknown property "
       "'no.such.property'"},
      {"h:1", "g", NULL, "session.timeout.ms=soon", "'session.timeout.ms'"},
      {"h:1", "g", NULL, "enable.auto.commit=true",
       "'enable.auto.commit' is set by the connector"},
      {"h:1", "g", NULL, "nokeyvalue", "\"key=value\" expected"},
      {"h:1", "g", NULL, "=1", "\"key=value\" expected"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_kafka_consumer_opts o = {0};
    o.brokers = bad[i].brokers;
    o.group = bad[i].group;
    o.topics = topics;
    o.ntopics = 1;
    o.offset_reset = bad[i].reset;
    o.config = &bad[i].cfg;
    o.nconfig = bad[i].cfg != NULL;
    tw_err_init(&err);
    assert_int_equal(tw_kafka_consumer_new(&o, &c, &err), TW_EINVAL);
    assert_int_equal(err.code, TW_EINVAL);
    assert_msg(&err, bad[i].msg);
    assert_null(c);
  }
  tw_kafka_consumer_opts none = {.brokers = "h:1", .group = "g"};
  tw_err_init(&err);
  assert_int_equal(tw_kafka_consumer_new(&none, &c, &err), TW_EINVAL);
  assert_msg(&err, "no topics");

  struct {
    bool plain;
    const char *cfg;
    const char *msg;
  } pbad[] = {
      {false, "acks=1", "'acks' is set by the connector"},
      {false, "enable.idempotence=false", "'enable.idempotence'"},
      {true, "bootstrap.servers=x:1", "'bootstrap.servers'"},
      {true, "linger.ms=forever", "'linger.ms'"},
      {true, "no.such.thing=2", "unknown property 'no.such.thing'"},
      /* Accepted alone, refused by librdkafka with idempotence. */
      {false, "max.in.flight=20", "max.in.flight"},
  };
  for (size_t i = 0; i < sizeof pbad / sizeof pbad[0]; i++) {
    tw_kafka_producer_opts o = {0};
    o.brokers = "h:1";
    o.no_idempotence = pbad[i].plain;
    o.config = &pbad[i].cfg;
    o.nconfig = 1;
    tw_kafka_producer *p = NULL;
    tw_err_init(&err);
    assert_int_equal(tw_kafka_producer_new(&o, &p, &err), TW_EINVAL);
    assert_msg(&err, pbad[i].msg);
    assert_null(p);
  }
  tw_kafka_producer_free(NULL);
  assert_int_equal(tw_kafka_consumer_close(NULL, NULL), TW_OK);
}

static int never(void *ud, const tw_kafka_record *r) {
  (void)ud;
  (void)r;
  fail_msg("no record was expected");
  return 0;
}

/* Polls until an error comes, for at most WAIT_MS. */
static int poll_error(tw_kafka_consumer *c, tw_err *err) {
  int64_t end = now_ms() + WAIT_MS;
  while (now_ms() < end) {
    tw_err_init(err);
    int rc = tw_kafka_consumer_poll(c, 200, 10, never, NULL, NULL, err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

static void unreachable(void **state) {
  (void)state;
  tw_kafka_consumer *c = NULL;
  tw_err err;
  /* Port 1 of loopback: nothing listens, every connect is refused. */
  assert_int_equal(consumer_new("127.0.0.1:1", TOPIC, 300, 0, &c, &err), TW_OK);
  assert_int_equal(poll_error(c, &err), TW_ECONN);
  assert_msg(&err, "no broker of '127.0.0.1:1' reachable");
  tw_kafka_consumer_stats st;
  tw_kafka_consumer_stats_get(c, &st);
  assert_true(st.transport_errors > 0);
  tw_err_init(&err);
  (void)tw_kafka_consumer_close(c, &err);
}

typedef struct got {
  int n;
  int oversize;
  size_t len, size;
  int64_t last;
} got;

static int take(void *ud, const tw_kafka_record *r) {
  got *g = ud;
  g->n++;
  g->last = r->offset;
  if (r->oversize) {
    g->oversize++;
    g->len = r->len;
    g->size = r->size;
  }
  return 0;
}

/* A refused commit keeps the marks and a later one commits them; an
 * oversize record comes truncated and flagged. */
static void commit_refused(void **state) {
  (void)state;
  mock m;
  mock_start(&m);
  tw_err err;
  tw_kafka_producer_opts po = {0};
  po.brokers = m.bootstrap;
  po.config = quiet;
  po.nconfig = 1;
  tw_kafka_producer *p = NULL;
  tw_err_init(&err);
  assert_int_equal(tw_kafka_producer_new(&po, &p, &err), TW_OK);
  static char big[2000];
  memset(big, 'x', sizeof big);
  for (int i = 0; i < 5; i++)
    assert_int_equal(tw_kafka_producer_send(p, TOPIC, 0, "k", 1, big,
                                            i == 4 ? sizeof big : 10, NULL, 0,
                                            &err),
                     TW_OK);
  assert_int_equal(tw_kafka_producer_flush(p, WAIT_MS, &err), TW_OK);
  tw_kafka_producer_free(p);

  tw_kafka_consumer *c = NULL;
  assert_int_equal(consumer_new(m.bootstrap, TOPIC, 0, 1000, &c, &err), TW_OK);
  got g = {0};
  int64_t end = now_ms() + WAIT_MS;
  while (g.n < 5 && now_ms() < end) {
    tw_err_init(&err);
    assert_int_equal(tw_kafka_consumer_poll(c, 200, 5, take, &g, NULL, &err),
                     TW_OK);
  }
  assert_int_equal(g.n, 5);
  assert_int_equal(g.oversize, 1);
  assert_int_equal(g.len, 1000);
  assert_int_equal(g.size, sizeof big);
  assert_int_equal(tw_kafka_consumer_mark(c, TOPIC, 0, g.last, &err), TW_OK);
  assert_int_equal(tw_kafka_consumer_mark(c, TOPIC, 7, 0, &err), TW_OK);
  rd_kafka_mock_push_request_errors(
      m.mc, API_OFFSET_COMMIT, 1, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  tw_err_init(&err);
  assert_int_equal(tw_kafka_consumer_commit(c, &err), TW_EPERM);
  assert_msg(&err, "commit of 1 partition(s) failed");
  tw_err_init(&err);
  assert_int_equal(tw_kafka_consumer_commit(c, &err), TW_OK);
  tw_kafka_consumer_stats st;
  tw_kafka_consumer_stats_get(c, &st);
  assert_int_equal(st.commits, 1);
  assert_int_equal(st.commit_errors, 1);
  assert_int_equal(st.marks, 1);
  assert_int_equal(st.marks_dropped, 1);
  assert_int_equal(st.oversize, 1);
  /* Nothing new: no request. */
  assert_int_equal(tw_kafka_consumer_commit(c, &err), TW_OK);
  tw_kafka_consumer_stats_get(c, &st);
  assert_int_equal(st.commits, 1);
  assert_int_equal(tw_kafka_consumer_close(c, &err), TW_OK);
  mock_stop(&m);
}

static void delivery_refused(void **state) {
  (void)state;
  mock m;
  mock_start(&m);
  tw_err err;
  tw_kafka_producer_opts po = {0};
  po.brokers = m.bootstrap;
  po.no_idempotence = true;
  po.config = quiet;
  po.nconfig = 1;
  tw_kafka_producer *p = NULL;
  tw_err_init(&err);
  assert_int_equal(tw_kafka_producer_new(&po, &p, &err), TW_OK);
  rd_kafka_mock_push_request_errors(m.mc, API_PRODUCE, 1,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  assert_int_equal(
      tw_kafka_producer_send(p, TOPIC, 0, NULL, 0, "v", 1, NULL, 0, &err),
      TW_OK);
  assert_int_equal(tw_kafka_producer_flush(p, WAIT_MS, &err), TW_ELIMIT);
  assert_msg(&err, "delivery to '" TOPIC "' [0] failed");
  /* The failure is reported once; the next record goes through. */
  tw_err_init(&err);
  assert_int_equal(
      tw_kafka_producer_send(p, TOPIC, 0, NULL, 0, "v", 1, NULL, 0, &err),
      TW_OK);
  assert_int_equal(tw_kafka_producer_flush(p, WAIT_MS, &err), TW_OK);
  tw_kafka_producer_stats st;
  tw_kafka_producer_stats_get(p, &st);
  assert_int_equal(st.sent, 2);
  assert_int_equal(st.delivered, 1);
  assert_int_equal(st.failed, 1);
  /* Bad arguments. */
  assert_int_equal(
      tw_kafka_producer_send(p, TOPIC, 0, NULL, 3, "v", 1, NULL, 0, &err),
      TW_EINVAL);
  tw_err_init(&err);
  assert_int_equal(
      tw_kafka_producer_send(p, "", 0, NULL, 0, "v", 1, NULL, 0, &err),
      TW_EINVAL);
  tw_kafka_producer_free(p);
  mock_stop(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(options),
      TW_TEST(unreachable),
      TW_TEST(commit_refused),
      TW_TEST(delivery_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
