/*
 * live.c - a twin on live data (live.h): Kafka, MQTT and RTSP connectors
 * feeding the ingest pipeline on the main thread (RTSP frames come from a
 * reader thread of their own through a bounded queue), positions
 * committed / messages acknowledged only after the recording holding them
 * is handed to the kernel, refused records dead-lettered, and the replay
 * of a recording through the same pipeline.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "live.h"
#include "twin/alloc.h"
#include "twin/kafka.h"
#include "twin/mqtt.h"
#include "twin/rtsp.h"
#include "twin/schema_registry.h"
#include "twin/trace.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *const kind_names[] = {"mcap", "kafka", "mqtt", "rtsp"};

/* A position to commit or a message to acknowledge once recorded. */
typedef struct pending {
  char *topic;
  int32_t partition;
  int64_t offset; /* Kafka offset, or the MQTT sequence */
} pending;

/* A frame copied out of the RTSP reader thread. */
typedef struct frame {
  uint64_t seq;
  int64_t wall_ns, pts_ns;
  int width, height;
  bool keyframe;
  const char *pix_fmt;
  uint8_t *data;
  size_t size;
} frame;

#define FRAME_QUEUE 8

typedef struct lsrc {
  tw_compose_source cs;
  uint32_t index;
  struct live *owner;
  tw_stream_schema *schema;
  int *field_input;
  tw_kafka_consumer *kc;
  tw_kafka_producer *kp; /* dead letters */
  tw_sr_client *sr;
  tw_mqtt *mq;
  tw_mqtt *mq_out; /* dead letters: a publish-only connection, so that
                      the messages awaiting acknowledgement on mq never
                      hold them back */
  tw_rtsp *rt;
  pending *pend;
  size_t npend, cappend;
  /* RTSP reader thread and its queue. */
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  frame q[FRAME_QUEUE];
  size_t qhead, qlen;
  int thread_rc;
  tw_err thread_err;
  uint64_t frames_dropped;
  uint64_t dead_letters, dead_letter_errors;
} lsrc;

typedef struct live {
  cli_ctx *cli;
  const live_opts *o;
  lsrc *src;
  size_t n;
  tw_ingest *in;
  tw_kafka_producer *outp; /* twin outputs */
  const char *out_topic;
  tw_buf line;
  uint64_t refused_printed;
  int64_t now;
  int cb_rc;
  tw_err cb_err;
  bool replay;
  /* Headers converted between the connectors' types and the pipeline's,
   * grown to the largest record seen (never cut). */
  tw_ingest_header *ih;
  tw_kafka_header *kh;
  size_t ihcap, khcap;
} live;

/* Room for n headers of size each in *arr (capacity *cap). */
static bool header_room(void *arr, size_t *cap, size_t n, size_t size) {
  void **a = arr;
  if (n <= *cap)
    return true;
  void *p = tw_reallocarray(*a, n, size);
  if (p == NULL)
    return false;
  *a = p;
  *cap = n;
  return true;
}

/* --- Schemas of the sources --------------------------------------------- */

static int find_input(const tw_graph *g, const char *name) {
  for (size_t i = 0; g != NULL && i < tw_graph_ninputs(g); i++)
    if (strcmp(tw_graph_input_name(g, i, NULL), name) == 0)
      return (int)i;
  return -1;
}

/* The schema of a source: one field per topic the twin reads ("INPUT=
 * FIELD" map entries), with the graph input's dtype, size and unit. */
static int build_schema(lsrc *s, tw_graph *g, tw_err *err) {
  const tw_compose_source *cs = &s->cs;
  if (g == NULL || cs->nmap == 0 || cs->kind == TW_COMPOSE_RTSP)
    return TW_OK; /* recorded only */
  tw_stream_field *f = tw_calloc(cs->nmap, sizeof *f);
  s->field_input = tw_calloc(cs->nmap, sizeof *s->field_input);
  if (f == NULL || s->field_input == NULL) {
    tw_free(f);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  int rc = TW_OK;
  for (size_t i = 0; rc == TW_OK && i < cs->nmap; i++) {
    const char *eq = strchr(cs->map[i], '=');
    char input[256];
    size_t il = eq != NULL ? (size_t)(eq - cs->map[i]) : 0;
    if (eq == NULL || il >= sizeof input) {
      rc = tw_err_set(err, TW_EINVAL, "source '%s': map entry '%s'", cs->name,
                      cs->map[i]);
      break;
    }
    memcpy(input, cs->map[i], il);
    input[il] = '\0';
    int gi = find_input(g, input);
    if (gi < 0) {
      rc = tw_err_set(err, TW_EINVAL, "source '%s': no graph input '%s'",
                      cs->name, input);
      break;
    }
    size_t size = 0;
    (void)tw_graph_input_name(g, (size_t)gi, &size);
    f[i].name = eq + 1;
    f[i].dtype = tw_graph_input_dtype(g, (size_t)gi);
    f[i].size = size;
    f[i].unit = tw_graph_input_unit(g, (size_t)gi);
    f[i].min = NAN;
    f[i].max = NAN;
    s->field_input[i] = gi;
  }
  tw_stream_schema_opts so = {0};
  if (cs->time_field != NULL) {
    so.time_field = cs->time_field;
    const char *u = cs->time_unit != NULL ? cs->time_unit : "s";
    so.time_unit = strcmp(u, "ns") == 0   ? TW_STREAM_TIME_NS
                   : strcmp(u, "us") == 0 ? TW_STREAM_TIME_US
                   : strcmp(u, "ms") == 0 ? TW_STREAM_TIME_MS
                                          : TW_STREAM_TIME_S;
  }
  if (rc == TW_OK)
    rc = tw_stream_schema_new(f, cs->nmap, &so, &s->schema, err);
  tw_free(f);
  return rc;
}

static int resolve(void *ud, uint32_t id, tw_stream_schema_kind *kind,
                   char **text, tw_err *err) {
  lsrc *s = ud;
  const char *type = NULL, *t = NULL;
  int rc = tw_sr_get_schema(s->sr, id, &type, &t, err);
  if (rc != TW_OK)
    return rc;
  if (type == NULL || strcmp(type, "JSON") != 0)
    return tw_err_set(err, TW_ENOTSUP,
                      "schema id %" PRIu32 " is %s, not JSON Schema", id,
                      type != NULL ? type : "of no type");
  *kind = TW_STREAM_JSON_SCHEMA;
  *text = tw_strdup(t);
  return *text != NULL ? TW_OK : tw_err_set(err, TW_ENOMEM, "out of memory");
}

/* --- Dead letters and outputs ------------------------------------------- */

static void on_refused(void *ud, const tw_ingest_msg *m,
                       const tw_ingest_refusal *why) {
  live *l = ud;
  lsrc *s = &l->src[m->source];
  if (l->replay)
    return;
  tw_err e;
  tw_err_init(&e);
  int rc = TW_OK;
  if (s->kp != NULL && s->cs.dead_letter != NULL) {
    size_t nh = m->nheaders;
    if (!header_room(&l->kh, &l->khcap, nh, sizeof *l->kh))
      nh = 0; /* the dead letter goes without them; counted below */
    tw_kafka_header *h = l->kh;
    for (size_t i = 0; i < nh; i++) {
      h[i].name = m->headers[i].name;
      h[i].value = m->headers[i].value;
      h[i].len = m->headers[i].len;
    }
    tw_kafka_record r = {0};
    r.topic = m->topic;
    r.partition = m->partition;
    r.offset = m->offset;
    r.timestamp_ms = m->source_ns != INT64_MIN ? m->source_ns / 1000000 : -1;
    r.timestamp_type = m->source_ns != INT64_MIN ? 1 : 0;
    r.key = m->key;
    r.key_len = m->key_len;
    r.value = m->data;
    r.len = m->len;
    r.size = m->len;
    r.oversize = (m->flags & TW_INGEST_OVERSIZE) != 0;
    /* What an oversize record's dead letter carries: its first 64 KiB
     * (the producer's own limit is 1 MB; the recording has what the
     * consumer read). */
    if (r.oversize && r.len > 65536)
      r.len = 65536;
    r.headers = h;
    r.nheaders = nh;
    tw_kafka_error_info wi = {0};
    wi.connector = l->o->twin;
    wi.stage = why->stage;
    wi.code = why->code;
    wi.exception_class = why->exception;
    wi.message = why->message;
    rc = nh < m->nheaders
             ? tw_err_set(&e, TW_ENOMEM, "dead letter: out of memory")
             : tw_kafka_dead_letter(s->kp, s->cs.dead_letter, &r, &wi, &e);
  } else if (s->mq_out != NULL) {
    char part[24];
    (void)snprintf(part, sizeof part, "%" PRId64, m->offset);
    tw_mqtt_prop p[] = {
        {"__connect.errors.topic", m->topic != NULL ? m->topic : ""},
        {"__connect.errors.offset", part},
        {"__connect.errors.connector.name", l->o->twin},
        {"__connect.errors.stage", why->stage},
        {"__connect.errors.exception.class.name", why->exception},
        {"__connect.errors.exception.message", why->message}};
    rc = tw_mqtt_publish(s->mq_out, s->cs.dead_letter, m->data, m->len, 1,
                         false, p, sizeof p / sizeof p[0], &e);
  } else {
    if (l->refused_printed++ < 10)
      (void)fprintf(l->cli->errs,
                    "warning: source '%s': record refused (%s): %s\n",
                    s->cs.name, why->stage, why->message);
    return;
  }
  if (rc == TW_OK) {
    s->dead_letters++;
  } else {
    s->dead_letter_errors++;
    if (l->cb_rc == TW_OK) {
      l->cb_rc = rc;
      (void)tw_err_copy(&l->cb_err, &e);
    }
  }
}

static void on_output(void *ud, int64_t tick, int64_t time_ns,
                      const double *out) {
  live *l = ud;
  const tw_graph *g = l->o->graph;
  if ((l->o->quiet || !l->o->json) && l->outp == NULL)
    return;
  tw_buf *b = &l->line;
  tw_buf_reset(b);
  int rc = tw_buf_printf(b, "{\"tick\":%" PRId64 ",\"time_ns\":%" PRId64, tick,
                         time_ns);
  size_t off = 0;
  for (size_t i = 0; rc == TW_OK && i < tw_graph_noutputs(g); i++) {
    size_t size = 0;
    const char *name = tw_graph_output_name(g, i, &size);
    rc = tw_buf_putc(b, ',');
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(b, name, strlen(name));
    if (rc == TW_OK)
      rc = tw_buf_puts(b, size == 1 ? ":" : ":[");
    for (size_t k = 0; rc == TW_OK && k < size; k++)
      rc = tw_buf_printf(b, k ? ",%.17g" : "%.17g", out[off + k]);
    if (rc == TW_OK && size != 1)
      rc = tw_buf_putc(b, ']');
    off += size;
  }
  if (rc == TW_OK)
    rc = tw_buf_putc(b, '}');
  if (rc != TW_OK)
    return;
  if (l->outp != NULL) {
    tw_err e;
    tw_err_init(&e);
    const char *key = l->o->twin;
    if (tw_kafka_producer_send(l->outp, l->out_topic, -1, key, strlen(key),
                               b->data, b->len, NULL, 0, &e) != TW_OK &&
        l->cb_rc == TW_OK) {
      l->cb_rc = e.code;
      (void)tw_err_copy(&l->cb_err, &e);
    }
  }
  if (l->o->json && !l->o->quiet) {
    (void)fwrite(b->data, 1, b->len, l->cli->out);
    (void)fputc('\n', l->cli->out);
  }
}

/* --- Setting up ----------------------------------------------------------- */

int live_sources_of(const tw_compose *c, tw_compose_source *out, size_t cap,
                    tw_err *err) {
  size_t n = 0;
  const tw_compose_source *rec = NULL;
  for (size_t i = 0; i < tw_compose_nsources(c); i++) {
    const tw_compose_source *s = tw_compose_source_at(c, i);
    if (s->kind == TW_COMPOSE_MCAP) {
      if (s->nmap > 0)
        rec = s;
      continue;
    }
    if (n == cap) {
      (void)tw_err_set(err, TW_ELIMIT, "more than %zu live sources", cap);
      return -1;
    }
    out[n++] = *s;
  }
  if (n > 0 && rec != NULL) {
    (void)tw_err_set(err, TW_ENOTSUP,
                     "source '%s' is a recording (mcap) and '%s' is live: a "
                     "run reads either recordings or live sources",
                     rec->name, out[0].name);
    return -1;
  }
  return (int)n;
}

static int split_host_port(const char *hp, char *host, size_t hcap, int *port) {
  const char *colon = strrchr(hp, ':');
  size_t hl = colon != NULL ? (size_t)(colon - hp) : strlen(hp);
  if (hl == 0 || hl >= hcap)
    return TW_EINVAL;
  memcpy(host, hp, hl);
  host[hl] = '\0';
  *port = 1883;
  if (colon != NULL) {
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
      return TW_EINVAL;
    *port = (int)p;
  }
  return TW_OK;
}

static void *rtsp_thread(void *arg) {
  lsrc *s = arg;
  tw_err e;
  tw_err_init(&e);
  for (;;) {
    tw_rtsp_frame f;
    int rc = tw_rtsp_read(s->rt, &f, &e);
    if (rc != TW_OK) {
      pthread_mutex_lock(&s->mu);
      s->thread_rc = rc == TW_RTSP_END ? TW_RTSP_END : rc;
      (void)tw_err_copy(&s->thread_err, &e);
      pthread_mutex_unlock(&s->mu);
      return NULL;
    }
    uint8_t *copy = tw_alloc(f.size ? f.size : 1);
    pthread_mutex_lock(&s->mu);
    if (copy == NULL || s->qlen == FRAME_QUEUE) {
      /* The pipeline is behind: the frame is counted, not queued (a
       * camera does not wait). */
      s->frames_dropped++;
      pthread_mutex_unlock(&s->mu);
      tw_free(copy);
      continue;
    }
    memcpy(copy, f.data, f.size);
    frame *q = &s->q[(s->qhead + s->qlen) % FRAME_QUEUE];
    q->seq = f.seq;
    q->wall_ns = f.wall_ns;
    q->pts_ns = f.pts_ns;
    q->width = f.width;
    q->height = f.height;
    q->keyframe = f.keyframe;
    q->pix_fmt = f.pix_fmt;
    q->data = copy;
    q->size = f.size;
    s->qlen++;
    pthread_mutex_unlock(&s->mu);
  }
}

/* A partition assigned to or revoked from a Kafka source's consumer:
 * recorded, and its watermark holds the source's (tw_ingest_split). */
static void on_assign(void *ud, const char *topic, int32_t partition,
                      bool assigned) {
  lsrc *s = ud;
  live *l = s->owner;
  tw_err e;
  tw_err_init(&e);
  int rc =
      tw_ingest_split(l->in, s->index, topic, partition, assigned, l->now, &e);
  if (rc != TW_OK && l->cb_rc == TW_OK) {
    l->cb_rc = rc;
    (void)tw_err_copy(&l->cb_err, &e);
  }
}

/* Partitions are read furthest behind first, by event time. */
static int64_t on_rank(void *ud, const char *topic, int32_t partition) {
  lsrc *s = ud;
  return tw_ingest_partition_time(s->owner->in, s->index, topic, partition);
}

/* Backpressure: a partition running ahead of its source is paused. */
static void on_pause(void *ud, uint32_t source, const char *topic,
                     int32_t partition, bool pause) {
  live *l = ud;
  lsrc *s = NULL;
  for (size_t i = 0; i < l->n; i++)
    if (l->src[i].index == source && l->src[i].kc != NULL)
      s = &l->src[i];
  if (s == NULL)
    return; /* a replay: nothing to pause */
  tw_err e;
  tw_err_init(&e);
  int rc = tw_kafka_consumer_pause(s->kc, topic, partition, pause, &e);
  if (rc != TW_OK && l->cb_rc == TW_OK) {
    l->cb_rc = rc;
    (void)tw_err_copy(&l->cb_err, &e);
  }
}

static int open_connector(live *l, lsrc *s, tw_err *err) {
  const tw_compose_source *cs = &s->cs;
  char cid[256];
  (void)snprintf(cid, sizeof cid, "%s-%s",
                 l->o->client_id != NULL ? l->o->client_id : l->o->twin,
                 cs->name);
  int rc = TW_OK;
  if (cs->kind == TW_COMPOSE_KAFKA) {
    const char *topics[1] = {cs->topic};
    tw_kafka_consumer_opts ko = {0};
    ko.brokers = cs->brokers;
    ko.group = cs->group != NULL ? cs->group : cid;
    ko.client_id = cid;
    ko.topics = topics;
    ko.ntopics = 1;
    ko.on_assign = on_assign;
    ko.assign_ud = s;
    ko.rank = on_rank;
    ko.rank_ud = s;
    s->owner = l;
    rc = tw_kafka_consumer_new(&ko, &s->kc, err);
    if (rc == TW_OK && cs->dead_letter != NULL) {
      tw_kafka_producer_opts po = {0};
      po.brokers = cs->brokers;
      po.client_id = cid;
      rc = tw_kafka_producer_new(&po, &s->kp, err);
    }
    if (rc == TW_OK && cs->schema_registry != NULL)
      rc = tw_sr_client_new(cs->schema_registry, NULL, &s->sr, err);
  } else if (cs->kind == TW_COMPOSE_MQTT) {
    char host[256];
    int port = 0;
    if (split_host_port(cs->broker, host, sizeof host, &port) != TW_OK)
      return tw_err_set(err, TW_EINVAL,
                        "source '%s': broker '%s' is not HOST[:PORT]", cs->name,
                        cs->broker);
    const char *topics[1] = {cs->topic};
    tw_mqtt_opts mo;
    tw_mqtt_opts_init(&mo);
    mo.host = host;
    mo.port = port;
    mo.client_id = cid;
    mo.topics = topics;
    mo.ntopics = 1;
    rc = tw_mqtt_new(&mo, &s->mq, err);
    if (rc == TW_OK && cs->dead_letter != NULL) {
      char oid[300];
      (void)snprintf(oid, sizeof oid, "%s-dead-letters", cid);
      mo.client_id = oid;
      mo.topics = NULL;
      mo.ntopics = 0;
      rc = tw_mqtt_new(&mo, &s->mq_out, err);
    }
  } else if (cs->kind == TW_COMPOSE_RTSP) {
    tw_rtsp_opts ro;
    tw_rtsp_opts_init(&ro);
    ro.url = cs->url;
    rc = tw_rtsp_open(&ro, &s->rt, err);
    if (rc == TW_OK) {
      pthread_mutex_init(&s->mu, NULL);
      tw_err_init(&s->thread_err);
      if (pthread_create(&s->thread, NULL, rtsp_thread, s) != 0)
        rc = tw_err_set(err, TW_ENOMEM, "cannot start the RTSP reader");
      else
        s->thread_started = true;
    }
  }
  return rc;
}

static void close_connector(lsrc *s, tw_err *err) {
  if (s->thread_started) {
    tw_rtsp_interrupt(s->rt);
    pthread_join(s->thread, NULL);
    for (size_t i = 0; i < s->qlen; i++)
      tw_free(s->q[(s->qhead + i) % FRAME_QUEUE].data);
    pthread_mutex_destroy(&s->mu);
  }
  tw_rtsp_close(s->rt);
  (void)tw_kafka_consumer_close(s->kc, err);
  tw_kafka_producer_free(s->kp);
  tw_mqtt_free(s->mq);
  tw_sr_client_free(s->sr);
  tw_mqtt_free(s->mq_out);
  for (size_t i = 0; i < s->npend; i++)
    tw_free(s->pend[i].topic);
  tw_free(s->pend);
  tw_stream_schema_free(s->schema);
  tw_free(s->field_input);
}

static int build(live *l, const tw_compose_source *srcs, size_t n, bool replay,
                 tw_err *err) {
  const live_opts *o = l->o;
  l->src = tw_calloc(n ? n : 1, sizeof *l->src);
  if (l->src == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  l->n = n;
  l->replay = replay;
  tw_err_init(&l->cb_err);
  tw_ingest_opts io = {0};
  io.graph = o->graph;
  io.twin = o->twin;
  io.record_path = replay ? NULL : o->record;
  io.segment_bytes = o->segment_bytes;
  io.max_bytes = o->max_bytes;
  io.trace_path = o->trace;
  io.idle_timeout_ns = o->idle_timeout_ns;
  io.partition_idle_ns = o->partition_idle_ns;
  io.max_partition_drift_ns = o->max_partition_drift_ns;
  io.pause = on_pause;
  io.max_ticks = o->max_ticks;
  io.refused = on_refused;
  io.output = on_output;
  io.ud = l;
  int rc = tw_ingest_new(&io, &l->in, err);
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    lsrc *s = &l->src[i];
    s->cs = srcs[i];
    rc = build_schema(s, o->graph, err);
    tw_ingest_source_opts so = {0};
    so.name = s->cs.name;
    so.kind = kind_names[s->cs.kind];
    so.schema = s->schema;
    so.field_input = s->field_input;
    so.max_out_of_orderness_ns = o->out_of_order_ns;
    so.clock_map = s->cs.clock != NULL && strcmp(s->cs.clock, "estimated") == 0;
    so.resolve = resolve;
    so.resolve_ud = s;
    if (rc == TW_OK)
      rc = tw_ingest_source_add(l->in, &so, &s->index, err);
  }
  return rc;
}

static int teardown(live *l, tw_err *err) {
  int rc = TW_OK;
  for (size_t i = 0; i < l->n; i++) {
    tw_err e;
    tw_err_init(&e);
    close_connector(&l->src[i], &e);
  }
  tw_kafka_producer_free(l->outp);
  int rc2 = tw_ingest_close(l->in, err);
  if (rc == TW_OK)
    rc = rc2;
  tw_free(l->src);
  tw_free(l->ih);
  tw_free(l->kh);
  tw_buf_fini(&l->line);
  return rc;
}

/* --- The loop --------------------------------------------------------------
 */

/* A Kafka position is kept per (topic, partition), the highest offset
 * pushed (marking it covers the ones before); an MQTT message by its
 * sequence number (each is acknowledged). */
static int add_pending(lsrc *s, const char *topic, int32_t part, int64_t off) {
  for (size_t i = s->npend; topic != NULL && i-- > 0;) {
    pending *p = &s->pend[i];
    if (p->partition == part && p->topic != NULL &&
        strcmp(p->topic, topic) == 0) {
      if (off > p->offset)
        p->offset = off;
      return TW_OK;
    }
  }
  if (s->npend == s->cappend) {
    size_t c = s->cappend ? 2 * s->cappend : 256;
    pending *p = tw_reallocarray(s->pend, c, sizeof *p);
    if (p == NULL)
      return TW_ENOMEM;
    s->pend = p;
    s->cappend = c;
  }
  pending *p = &s->pend[s->npend];
  p->topic = topic != NULL ? tw_strdup(topic) : NULL;
  if (topic != NULL && p->topic == NULL)
    return TW_ENOMEM;
  p->partition = part;
  p->offset = off;
  s->npend++;
  return TW_OK;
}

typedef struct poll_ctx {
  live *l;
  lsrc *s;
  uint64_t n;
} poll_ctx;

static int on_kafka(void *ud, const tw_kafka_record *r) {
  poll_ctx *p = ud;
  live *l = p->l;
  size_t nh = r->nheaders;
  if (!header_room(&l->ih, &l->ihcap, nh, sizeof *l->ih))
    return tw_err_set(&l->cb_err, TW_ENOMEM, "out of memory");
  tw_ingest_header *h = l->ih;
  for (size_t i = 0; i < nh; i++) {
    h[i].name = r->headers[i].name;
    h[i].value = r->headers[i].value;
    h[i].len = r->headers[i].len;
  }
  tw_ingest_msg m = {0};
  m.source = p->s->index;
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
  int rc = tw_ingest_push(l->in, &m, l->now, &l->cb_err);
  if (rc == TW_OK && add_pending(p->s, r->topic, r->partition, r->offset))
    rc = tw_err_set(&l->cb_err, TW_ENOMEM, "out of memory");
  if (rc != TW_OK)
    return rc;
  p->n++;
  return l->cb_rc;
}

static int on_mqtt(void *ud, const tw_mqtt_message *msg) {
  poll_ctx *p = ud;
  live *l = p->l;
  size_t nh = msg->nprops;
  if (!header_room(&l->ih, &l->ihcap, nh, sizeof *l->ih))
    return tw_err_set(&l->cb_err, TW_ENOMEM, "out of memory");
  tw_ingest_header *h = l->ih;
  for (size_t i = 0; i < nh; i++) {
    h[i].name = msg->props[i].key;
    h[i].value = msg->props[i].value;
    h[i].len = strlen(msg->props[i].value);
  }
  tw_ingest_msg m = {0};
  m.source = p->s->index;
  m.topic = msg->topic;
  m.partition = -1;
  m.offset = -1; /* MQTT has no positions: redeliveries are recorded */
  m.source_ns = INT64_MIN;
  m.headers = h;
  m.nheaders = nh;
  m.data = msg->payload;
  m.len = msg->len;
  m.flags = msg->oversize ? TW_INGEST_OVERSIZE : 0;
  int rc = tw_ingest_push(l->in, &m, l->now, &l->cb_err);
  if (rc == TW_OK && add_pending(p->s, NULL, -1, (int64_t)msg->seq))
    rc = tw_err_set(&l->cb_err, TW_ENOMEM, "out of memory");
  if (rc != TW_OK)
    return rc;
  p->n++;
  return l->cb_rc;
}

static int drain_frames(live *l, lsrc *s, uint64_t *n, tw_err *err) {
  for (;;) {
    frame f;
    pthread_mutex_lock(&s->mu);
    bool have = s->qlen > 0;
    if (have) {
      f = s->q[s->qhead];
      s->qhead = (s->qhead + 1) % FRAME_QUEUE;
      s->qlen--;
    }
    int trc = s->thread_rc;
    pthread_mutex_unlock(&s->mu);
    if (!have) {
      if (trc != TW_OK && trc != TW_RTSP_END)
        return tw_err_set(err, trc, "source '%s': %s", s->cs.name,
                          s->thread_err.msg);
      return TW_OK;
    }
    char w[16], h[16], kf[2] = {f.keyframe ? '1' : '0', 0};
    (void)snprintf(w, sizeof w, "%d", f.width);
    (void)snprintf(h, sizeof h, "%d", f.height);
    tw_ingest_header hd[] = {{"width", w, strlen(w)},
                             {"height", h, strlen(h)},
                             {"pix_fmt", f.pix_fmt, strlen(f.pix_fmt)},
                             {"keyframe", kf, 1}};
    tw_ingest_msg m = {0};
    m.source = s->index;
    m.topic = s->cs.url;
    m.partition = -1;
    m.offset = (int64_t)f.seq;
    m.source_ns = f.wall_ns;
    m.headers = hd;
    m.nheaders = 4;
    m.data = f.data;
    m.len = f.size;
    m.flags = TW_INGEST_FRAME;
    int rc = tw_ingest_push(l->in, &m, l->now, err);
    tw_free(f.data);
    if (rc != TW_OK)
      return rc;
    (*n)++;
  }
}

/* Advance, hand the recording to the kernel, flush dead letters, then
 * commit / acknowledge what was pushed. */
static int checkpoint(live *l, tw_err *err) {
  int rc = tw_ingest_advance(l->in, l->now, err);
  if (rc == TW_OK)
    rc = tw_ingest_sync(l->in, err);
  for (size_t i = 0; rc == TW_OK && i < l->n; i++) {
    lsrc *s = &l->src[i];
    /* Dead letters are delivered before the positions that refused them
     * are committed / acknowledged. */
    if (s->kp != NULL)
      rc = tw_kafka_producer_flush(s->kp, 30000, err);
    if (rc == TW_OK && s->mq_out != NULL)
      rc = tw_mqtt_flush(s->mq_out, 30000, err);
    for (size_t k = 0; rc == TW_OK && k < s->npend; k++) {
      pending *p = &s->pend[k];
      if (s->kc != NULL)
        rc = tw_kafka_consumer_mark(s->kc, p->topic, p->partition, p->offset,
                                    err);
      else if (s->mq != NULL)
        rc = tw_mqtt_ack(s->mq, (uint64_t)p->offset, err);
    }
    for (size_t k = 0; k < s->npend; k++)
      tw_free(s->pend[k].topic);
    s->npend = 0;
    if (rc == TW_OK && s->kc != NULL)
      rc = tw_kafka_consumer_commit_async(s->kc, err);
  }
  if (rc == TW_OK && l->outp != NULL)
    rc = tw_kafka_producer_flush(l->outp, 30000, err);
  if (rc == TW_OK && l->cb_rc != TW_OK) {
    rc = l->cb_rc;
    (void)tw_err_copy(err, &l->cb_err);
  }
  return rc;
}

static void summary(live *l, double secs) {
  tw_ingest_stats st;
  tw_ingest_stats_get(l->in, &st);
  tw_buf b = TW_BUF_INIT;
  (void)tw_buf_printf(
      &b,
      "{\"seconds\":%.3f,\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
      ",\"accepted\":%" PRIu64 ",\"refused\":%" PRIu64
      ",\"duplicates\":%" PRIu64 ",\"late\":%" PRIu64 ",\"frames\":%" PRIu64
      ",\"raw\":%" PRIu64 ",\"overflow\":%" PRIu64 ",\"missing\":%" PRIu64
      ",\"ticks\":%" PRId64 ",\"segments\":%" PRIu64
      ",\"segments_deleted\":%" PRIu64 ",\"recorded_bytes\":%" PRIu64
      ",\"partition_events\":%" PRIu64 ",\"pauses\":%" PRIu64 ",\"sources\":{",
      secs, st.records, st.bytes, st.accepted, st.refused, st.duplicates,
      st.late, st.frames, st.raw, st.overflow, st.missing, st.ticks,
      st.segments, st.segments_deleted, st.recorded_bytes, st.splits,
      st.pauses);
  for (size_t i = 0; i < l->n; i++) {
    lsrc *s = &l->src[i];
    tw_align_clock_fit fit;
    tw_err e;
    tw_err_init(&e);
    (void)tw_ingest_clock_get(l->in, s->index, &fit, &e);
    (void)tw_buf_printf(&b, "%s", i ? "," : "");
    (void)tw_buf_put_json_string(&b, s->cs.name, strlen(s->cs.name));
    (void)tw_buf_printf(
        &b,
        ":{\"kind\":\"%s\",\"dead_letters\":%" PRIu64
        ",\"dead_letter_errors\":%" PRIu64 ",\"frames_dropped\":%" PRIu64
        ",\"clock\":{\"valid\":%s,\"offset_ns\":%" PRId64
        ",\"drift_ppm\":%.3f,\"residual_mean_ns\":%.0f,\"jumps\":%" PRIu64 "}}",
        kind_names[s->cs.kind], s->dead_letters, s->dead_letter_errors,
        s->frames_dropped, fit.valid ? "true" : "false", fit.offset_ns,
        fit.has_drift ? fit.drift_ppm : 0.0, fit.residual_mean_ns, fit.jumps);
  }
  (void)tw_buf_puts(&b, "}}");
  if (l->o->json) {
    (void)fwrite(b.data, 1, b.len, l->cli->out);
    (void)fputc('\n', l->cli->out);
  } else {
    (void)fprintf(l->cli->errs, "ingest: %.*s\n", (int)b.len, b.data);
  }
  tw_buf_fini(&b);
}

int live_run(cli_ctx *cli, const live_opts *o, const tw_compose_source *srcs,
             size_t n) {
  live l = {0};
  l.cli = cli;
  l.o = o;
  tw_buf_init(&l.line);
  tw_err err;
  tw_err_init(&err);
  if (n == 0) {
    (void)tw_err_set(&err, TW_EINVAL, "no live sources to read");
    return cli_fail(cli, &err);
  }
  int rc = build(&l, srcs, n, false, &err);
  for (size_t i = 0; rc == TW_OK && i < n; i++)
    rc = open_connector(&l, &l.src[i], &err);
  if (rc == TW_OK && o->output_topic != NULL) {
    const char *brokers = NULL;
    for (size_t i = 0; i < n; i++)
      if (srcs[i].kind == TW_COMPOSE_KAFKA)
        brokers = srcs[i].brokers;
    if (brokers == NULL) {
      rc = tw_err_set(&err, TW_EINVAL,
                      "--output-topic needs a kafka source's brokers");
    } else {
      tw_kafka_producer_opts po = {0};
      po.brokers = brokers;
      po.client_id = o->twin;
      l.out_topic = o->output_topic;
      rc = tw_kafka_producer_new(&po, &l.outp, &err);
    }
  }
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  stop_signal = 0;
  (void)sigaction(SIGINT, &sa, &old_int);
  (void)sigaction(SIGTERM, &sa, &old_term);
  int64_t start = now_ns(), last = start, last_record = 0;
  int64_t period = o->sync_interval_ns > 0 ? o->sync_interval_ns : 20000000;
  uint64_t total = 0;
  while (rc == TW_OK && !stop_signal) {
    uint64_t got = 0;
    for (size_t i = 0; rc == TW_OK && i < n; i++) {
      lsrc *s = &l.src[i];
      poll_ctx p = {&l, s, 0};
      /* Wait on the first source when nothing came in the last round. */
      int wait = got == 0 && i == 0 ? 5 : 0;
      l.now = now_ns();
      if (s->kc != NULL)
        rc =
            tw_kafka_consumer_poll(s->kc, wait, 1000, on_kafka, &p, NULL, &err);
      else if (s->mq != NULL)
        rc = tw_mqtt_poll(s->mq, wait, on_mqtt, &p, NULL, &err);
      else if (s->rt != NULL)
        rc = drain_frames(&l, s, &p.n, &err);
      if (rc != TW_OK && l.cb_err.code != TW_OK && err.code == TW_OK)
        (void)tw_err_copy(&err, &l.cb_err);
      got += p.n;
    }
    total += got;
    l.now = now_ns();
    if (got > 0)
      last_record = l.now;
    /* The watermark follows every batch (the aligner's buffers stay
     * small); recording syncs and commits follow the period. */
    if (rc == TW_OK && got > 0 && l.now - last < period)
      rc = tw_ingest_advance(l.in, l.now, &err);
    if (rc == TW_OK && (l.now - last >= period || got == 0)) {
      rc = checkpoint(&l, &err);
      last = l.now;
    }
    tw_ingest_stats st;
    tw_ingest_stats_get(l.in, &st);
    if ((o->max_ticks > 0 && st.ticks >= o->max_ticks) ||
        (o->max_records > 0 && st.records + st.duplicates >= o->max_records) ||
        (o->duration_s > 0 && (double)(l.now - start) / 1e9 >= o->duration_s) ||
        (o->stop_idle_ns > 0 && last_record > 0 &&
         l.now - last_record >= o->stop_idle_ns))
      break;
    if (rc == TW_OK && got == 0) {
      /* RTSP-only runs wait here for frames. */
      bool only_rtsp = true;
      for (size_t i = 0; i < n; i++)
        only_rtsp &= l.src[i].rt != NULL;
      if (only_rtsp) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
      }
    }
  }
  /* The end of the input: every tick up to the latest record. */
  if (rc == TW_OK)
    rc = tw_ingest_finish(l.in, &err);
  if (rc == TW_OK) {
    l.now = now_ns();
    rc = checkpoint(&l, &err);
  }
  (void)sigaction(SIGINT, &old_int, NULL);
  (void)sigaction(SIGTERM, &old_term, NULL);
  if (l.in != NULL)
    summary(&l, (double)(now_ns() - start) / 1e9);
  tw_err cerr;
  tw_err_init(&cerr);
  int crc = teardown(&l, &cerr);
  if (rc == TW_OK && crc != TW_OK) {
    rc = crc;
    (void)tw_err_copy(&err, &cerr);
  }
  (void)total;
  return rc == TW_OK ? CLI_EXIT_OK : cli_fail(cli, &err);
}

int live_opts_of(cli_ctx *cli, const cli_args *args, live_opts *lo) {
  const cli_cmd *cmd = cli->cmd;
  memset(lo, 0, sizeof *lo);
  unsigned long v = 0;
  const char *s;
  if ((s = cli_opt_value(cmd, args, "record")) != NULL)
    lo->record = s;
  if ((s = cli_opt_value(cmd, args, "segment-size")) != NULL) {
    if (cli_parse_size(cli, "segment-size", s, 1ul << 40, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->segment_bytes = v;
  }
  if ((s = cli_opt_value(cmd, args, "max-size")) != NULL) {
    if (cli_parse_size(cli, "max-size", s, 1ul << 50, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->max_bytes = v;
  }
  if ((s = cli_opt_value(cmd, args, "duration")) != NULL) {
    char *end = NULL;
    lo->duration_s = strtod(s, &end);
    if (end == s || *end != '\0' || !(lo->duration_s > 0) ||
        lo->duration_s > 1e9)
      return cli_usage_error(cli, cmd, "--duration needs seconds > 0");
  }
  if ((s = cli_opt_value(cmd, args, "max-records")) != NULL) {
    if (cli_parse_uint(cli, "max-records", s, ~0ul, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->max_records = v;
  }
  if ((s = cli_opt_value(cmd, args, "stop-when-idle-ms")) != NULL) {
    if (cli_parse_uint(cli, "stop-when-idle-ms", s, 1ul << 40, &v) != 0 ||
        v == 0)
      return v == 0 ? cli_usage_error(cli, cmd,
                                      "--stop-when-idle-ms needs at least 1")
                    : CLI_EXIT_USAGE;
    lo->stop_idle_ns = (int64_t)v * 1000000;
  }
  if ((s = cli_opt_value(cmd, args, "idle-timeout-ms")) != NULL) {
    if (cli_parse_uint(cli, "idle-timeout-ms", s, 1ul << 40, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->idle_timeout_ns = (int64_t)v * 1000000;
  }
  if ((s = cli_opt_value(cmd, args, "partition-idle-ms")) != NULL) {
    if (cli_parse_uint(cli, "partition-idle-ms", s, 1ul << 40, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->partition_idle_ns = v ? (int64_t)v * 1000000 : -1;
  }
  if ((s = cli_opt_value(cmd, args, "max-partition-drift-ms")) != NULL) {
    if (cli_parse_uint(cli, "max-partition-drift-ms", s, 1ul << 40, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->max_partition_drift_ns = (int64_t)v * 1000000;
  }
  lo->out_of_order_ns = 50000000;
  if ((s = cli_opt_value(cmd, args, "out-of-order-ms")) != NULL) {
    if (cli_parse_uint(cli, "out-of-order-ms", s, 1ul << 40, &v) != 0)
      return CLI_EXIT_USAGE;
    lo->out_of_order_ns = v ? (int64_t)v * 1000000 : 1;
  }
  lo->output_topic = cli_opt_value(cmd, args, "output-topic");
  lo->json = cli_opt_value(cmd, args, "json") != NULL;
  lo->quiet = cli_opt_value(cmd, args, "quiet") != NULL;
  lo->trace = cli_opt_value(cmd, args, "trace");
  return CLI_EXIT_OK;
}

/* --- Replay ----------------------------------------------------------------
 */

/* Output channels of two traces, message by message. */
static int compare_traces(const char *a, const char *b, uint64_t *messages,
                          tw_err *err) {
  tw_trace_reader *ra = NULL, *rb = NULL;
  int rc = tw_trace_reader_open(a, NULL, &ra, err);
  if (rc == TW_OK)
    rc = tw_trace_reader_open(b, NULL, &rb, err);
  tw_trace_iter *ia = NULL, *ib = NULL;
  if (rc == TW_OK)
    rc = tw_trace_iter_new(ra, NULL, &ia, err);
  if (rc == TW_OK)
    rc = tw_trace_iter_new(rb, NULL, &ib, err);
  *messages = 0;
  while (rc == TW_OK) {
    tw_trace_message ma, mb;
    const tw_trace_channel *ca = NULL, *cb = NULL;
    int ra_n, rb_n;
    do {
      ra_n = tw_trace_iter_next(ia, &ma, err);
      ca = ra_n == 1 ? tw_trace_reader_channel_get(ra, ma.channel_id) : NULL;
    } while (ra_n == 1 && strncmp(ca->topic, "/outputs/", 9) != 0);
    do {
      rb_n = tw_trace_iter_next(ib, &mb, err);
      cb = rb_n == 1 ? tw_trace_reader_channel_get(rb, mb.channel_id) : NULL;
    } while (rb_n == 1 && strncmp(cb->topic, "/outputs/", 9) != 0);
    if (ra_n < 0 || rb_n < 0) {
      rc = ra_n < 0 ? ra_n : rb_n;
      break;
    }
    if (ra_n == 0 && rb_n == 0)
      break;
    if (ra_n != rb_n)
      rc = tw_err_set(err, TW_EVALIDATE,
                      "outputs differ: %s has %" PRIu64
                      " output messages, the other more",
                      ra_n == 0 ? a : b, *messages);
    else if (strcmp(ca->topic, cb->topic) != 0 || ma.log_time != mb.log_time ||
             ma.len != mb.len || memcmp(ma.data, mb.data, ma.len) != 0)
      rc =
          tw_err_set(err, TW_EVALIDATE,
                     "outputs differ at output message %" PRIu64
                     " (%s at %" PRIu64 " ns vs %s at %" PRIu64 " ns)",
                     *messages, ca->topic, ma.log_time, cb->topic, mb.log_time);
    else
      (*messages)++;
  }
  tw_trace_iter_free(ia);
  tw_trace_iter_free(ib);
  tw_trace_reader_close(ra);
  tw_trace_reader_close(rb);
  return rc;
}

int live_replay(cli_ctx *cli, const live_opts *o, const tw_compose_source *srcs,
                size_t n, const char *recording, bool allow_gap,
                const char *expect) {
  live l = {0};
  l.cli = cli;
  l.o = o;
  tw_buf_init(&l.line);
  tw_err err;
  tw_err_init(&err);
  int64_t start = now_ns();
  int rc = build(&l, srcs, n, true, &err);
  if (rc == TW_OK)
    rc = tw_ingest_replay(l.in, recording, allow_gap, &err);
  if (l.in != NULL && rc == TW_OK)
    summary(&l, (double)(now_ns() - start) / 1e9);
  tw_err cerr;
  tw_err_init(&cerr);
  int crc = teardown(&l, &cerr);
  if (rc == TW_OK && crc != TW_OK) {
    rc = crc;
    (void)tw_err_copy(&err, &cerr);
  }
  if (rc == TW_OK && expect != NULL) {
    uint64_t msgs = 0;
    rc = o->trace == NULL
             ? tw_err_set(&err, TW_EINVAL, "--expect needs --trace")
             : compare_traces(o->trace, expect, &msgs, &err);
    if (rc == TW_OK)
      (void)fprintf(cli->errs,
                    "replay: outputs identical to %s (%" PRIu64
                    " output messages)\n",
                    expect, msgs);
  }
  return rc == TW_OK ? CLI_EXIT_OK : cli_fail(cli, &err);
}
