/*
 * ingest.c - the ingest pipeline (twin/ingest.h): records deduplicated by
 * source position, recorded, decoded against the twin's ports, aligned on
 * the graph's tick grid and stepped through the graph; and the replay of a
 * recording through the same path.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_int.h"
#include "twin/alloc.h"

typedef struct pos {
  uint32_t source;
  int32_t partition;
  int64_t offset;
  char *topic;
  uint32_t split;      /* the aligner's split of this partition */
  bool assigned;       /* by the last split event naming it */
  bool paused;         /* told to pause for running ahead */
  int64_t max_time;    /* largest event time of its records [INT64_MIN] */
  int64_t assigned_at; /* that event's processing time */
} pos;

typedef struct bound {
  uint32_t source, id;
  tw_stream_binding *b; /* NULL: the id did not resolve */
  tw_stream_schema_kind kind;
  char *text, *error; /* what the recording keeps */
} bound;

/* A schema as a recording holds it (replay). */
typedef struct known {
  uint32_t source, id;
  tw_stream_schema_kind kind;
  char *text, *error;
} known;

typedef struct src {
  char *name, *kind;
  tw_ingest_source_opts o;
  int *field_input;
  size_t nfields, width;
  tw_align_clock *clock;
  uint32_t stream;
  double *vals;
  uint32_t nsplits; /* positions (partitions) seen: splits 0 .. n-1 */
} src;

struct tw_ingest {
  tw_ingest_opts o;
  char *twin, *record_path, *trace_path;
  tw_graph *g;
  int64_t dt_ns;
  size_t in_w, out_w, nin;
  size_t *in_off, *in_size;
  src *src;
  size_t nsrc, capsrc;
  tw_align *al;
  tw__recorder *rec;
  tw_graph_trace *trace;
  tw_buf body;
  uint64_t event;
  int64_t now;
  bool started, replaying, stopped;
  pos *pos;
  size_t npos, cappos;
  bound *bound;
  size_t nbound, capbound;
  known *known;
  size_t nknown, capknown;
  /* Grid rows of the advance in progress. */
  double *row; /* the current input row: values hold between ticks */
  int64_t row_time;
  bool row_open;
  double *rows, *outs;
  size_t nrows, caprows;
  int64_t tick0;
  tw_ingest_stats st;
  int failed;
  tw_err fail;
};

static int oom(tw_err *err) {
  return tw_err_set(err, TW_ENOMEM, "ingest: out of memory");
}

static void *grow(void *p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap)
    return p;
  size_t c = *cap ? *cap : 8;
  while (c < need)
    c *= 2;
  void *q = tw_reallocarray(p, c, size);
  if (q != NULL)
    *cap = c;
  return q;
}

int tw_ingest_new(const tw_ingest_opts *opts, tw_ingest **out, tw_err *err) {
  if (opts == NULL || out == NULL)
    return tw_err_set(err, TW_EINVAL, "ingest: no options");
  if (opts->graph == NULL && opts->trace_path != NULL)
    return tw_err_set(err, TW_EINVAL, "ingest: a trace needs a graph");
  /* Without a graph the pipeline records (and checks) only. */
  double dt = opts->graph != NULL ? tw_graph_dt(opts->graph) : 1e-3;
  if (!(dt > 0) || dt * 1e9 > 9e18 || llround(dt * 1e9) < 1)
    return tw_err_set(err, TW_EINVAL, "ingest: the graph's dt %g s", dt);
  if (opts->idle_timeout_ns < 0 || opts->max_ticks < 0)
    return tw_err_set(err, TW_EINVAL, "ingest: negative option");
  tw_ingest *in = tw_calloc(1, sizeof *in);
  if (in == NULL)
    return oom(err);
  in->o = *opts;
  in->g = opts->graph;
  in->dt_ns = llround(dt * 1e9);
  in->nin = in->g != NULL ? tw_graph_ninputs(in->g) : 0;
  in->in_w = in->g != NULL ? tw_graph_input_width(in->g) : 0;
  in->out_w = in->g != NULL ? tw_graph_output_width(in->g) : 0;
  in->twin = tw_strdup(opts->twin != NULL ? opts->twin : "");
  in->record_path =
      opts->record_path != NULL ? tw_strdup(opts->record_path) : NULL;
  in->trace_path =
      opts->trace_path != NULL ? tw_strdup(opts->trace_path) : NULL;
  in->in_off = tw_calloc(in->nin ? in->nin : 1, sizeof *in->in_off);
  in->in_size = tw_calloc(in->nin ? in->nin : 1, sizeof *in->in_size);
  in->row = tw_calloc(in->in_w ? in->in_w : 1, sizeof *in->row);
  tw_err_init(&in->fail);
  in->st.watermark_ns = INT64_MIN;
  int rc = TW_OK;
  if (in->twin == NULL || in->in_off == NULL || in->in_size == NULL ||
      in->row == NULL || (opts->record_path != NULL && !in->record_path) ||
      (opts->trace_path != NULL && !in->trace_path))
    rc = oom(err);
  size_t off = 0;
  for (size_t i = 0; rc == TW_OK && i < in->nin; i++) {
    size_t size = 0;
    (void)tw_graph_input_name(in->g, i, &size);
    in->in_off[i] = off;
    in->in_size[i] = size;
    off += size;
  }
  if (rc == TW_OK && in->g != NULL)
    rc = tw_graph_reset(in->g, err);
  if (rc != TW_OK) {
    (void)tw_ingest_close(in, NULL);
    return rc;
  }
  *out = in;
  return TW_OK;
}

int tw_ingest_source_add(tw_ingest *in, const tw_ingest_source_opts *o,
                         uint32_t *index, tw_err *err) {
  if (in->started)
    return tw_err_set(err, TW_ESTATE,
                      "ingest: sources are added before the first event");
  if (o == NULL || o->name == NULL || o->name[0] == '\0' || o->kind == NULL)
    return tw_err_set(err, TW_EINVAL, "ingest: a source needs a name, a kind");
  for (size_t i = 0; i < in->nsrc; i++)
    if (strcmp(in->src[i].name, o->name) == 0)
      return tw_err_set(err, TW_EINVAL, "ingest: source '%s' given twice",
                        o->name);
  if (o->max_out_of_orderness_ns < 0 || o->tolerance_ns < 0 ||
      o->max_age_ns < 0)
    return tw_err_set(err, TW_EINVAL, "ingest: source '%s': negative bound",
                      o->name);
  size_t nf = o->schema != NULL ? tw_stream_schema_nfields(o->schema) : 0;
  src *ns = grow(in->src, &in->capsrc, in->nsrc + 1, sizeof *ns);
  if (ns == NULL)
    return oom(err);
  in->src = ns;
  src *s = &in->src[in->nsrc];
  memset(s, 0, sizeof *s);
  s->o = *o;
  s->nfields = nf;
  s->width = o->schema != NULL ? tw_stream_schema_width(o->schema) : 0;
  s->name = tw_strdup(o->name);
  s->kind = tw_strdup(o->kind);
  s->field_input = tw_calloc(nf ? nf : 1, sizeof *s->field_input);
  s->vals = tw_calloc(s->width ? s->width : 1, sizeof *s->vals);
  int rc = s->name && s->kind && s->field_input && s->vals ? TW_OK : oom(err);
  if (rc == TW_OK)
    rc = tw_align_clock_new(NULL, &s->clock, err);
  for (size_t i = 0; rc == TW_OK && i < nf; i++) {
    int gi = o->field_input != NULL ? o->field_input[i] : -1;
    size_t fsize = tw_stream_schema_offset(o->schema, i + 1) -
                   tw_stream_schema_offset(o->schema, i);
    if (gi >= 0 && ((size_t)gi >= in->nin || in->in_size[gi] != fsize))
      rc = tw_err_set(err, TW_EINVAL,
                      "ingest: source '%s': field %zu feeds graph input %d "
                      "of another size or none",
                      o->name, i, gi);
    s->field_input[i] = gi;
  }
  s->o.name = s->name;
  s->o.kind = s->kind;
  s->o.field_input = s->field_input;
  if (rc != TW_OK) {
    tw_align_clock_free(s->clock);
    tw_free(s->name);
    tw_free(s->kind);
    tw_free(s->field_input);
    tw_free(s->vals);
    return rc;
  }
  if (index != NULL)
    *index = (uint32_t)in->nsrc;
  in->nsrc++;
  return TW_OK;
}

/* --- Stepping the twin -------------------------------------------------- */

static int fail(tw_ingest *in, int rc, const tw_err *e, tw_err *err) {
  if (!in->failed) {
    in->failed = rc;
    (void)tw_err_copy(&in->fail, e);
  }
  if (err != NULL && err != e)
    (void)tw_err_copy(err, e);
  return rc;
}

static void close_row(tw_ingest *in) {
  if (!in->row_open)
    return;
  in->row_open = false;
  if (in->o.max_ticks > 0 &&
      in->st.ticks + (int64_t)in->nrows >= in->o.max_ticks) {
    in->stopped = true;
    return;
  }
  double *r = grow(in->rows, &in->caprows, in->nrows + 1,
                   (in->in_w ? in->in_w : 1) * sizeof *r);
  if (r == NULL) {
    tw_err e;
    tw_err_init(&e);
    (void)fail(in, oom(&e), &e, NULL);
    return;
  }
  in->rows = r;
  if (in->in_w)
    memcpy(in->rows + in->nrows * in->in_w, in->row,
           in->in_w * sizeof *in->row);
  in->nrows++;
}

static void on_emit(void *ud, const tw_align_item *it) {
  tw_ingest *in = ud;
  if (in->failed || in->stopped)
    return;
  if (in->row_open && it->time_ns != in->row_time)
    close_row(in);
  if (!in->row_open) {
    in->row_open = true;
    in->row_time = it->time_ns;
  }
  if (it->status == TW_ALIGN_MISSING || it->values == NULL) {
    in->st.missing++;
    return;
  }
  const src *s = NULL;
  for (size_t i = 0; i < in->nsrc; i++)
    if (in->src[i].o.schema != NULL && in->src[i].stream == it->stream)
      s = &in->src[i];
  if (s == NULL)
    return;
  for (size_t f = 0; f < s->nfields; f++) {
    int gi = s->field_input[f];
    if (gi < 0)
      continue;
    size_t off = tw_stream_schema_offset(s->o.schema, f);
    memcpy(in->row + in->in_off[gi], it->values + off,
           in->in_size[gi] * sizeof *in->row);
  }
}

static int step_rows(tw_ingest *in, tw_err *err) {
  if (in->nrows == 0 || in->g == NULL) {
    in->nrows = 0;
    return TW_OK;
  }
  double *o = tw_reallocarray(in->outs, in->nrows,
                              (in->out_w ? in->out_w : 1) * sizeof *o);
  if (o == NULL)
    return oom(err);
  in->outs = o;
  tw_err e;
  tw_err_init(&e);
  int64_t k0 = in->st.ticks;
  int rc = tw_graph_advance(in->g, (int64_t)in->nrows, in->rows, in->outs, &e);
  if (rc == TW_OK && in->trace != NULL)
    rc = tw_graph_trace_write(in->trace, k0, (int64_t)in->nrows, in->rows,
                              in->outs, &e);
  if (rc != TW_OK)
    return fail(in, rc, &e, err);
  int64_t t0 = in->o.grid_start_ns;
  for (size_t i = 0; i < in->nrows && in->o.output != NULL; i++)
    in->o.output(in->o.ud, k0 + (int64_t)i, t0 + (k0 + (int64_t)i) * in->dt_ns,
                 in->outs + i * in->out_w);
  in->st.ticks += (int64_t)in->nrows;
  in->nrows = 0;
  return TW_OK;
}

/* The aligner, made at the first value: the grid starts at the first
 * record's time rounded up to a tick, unless the options fix it. */
static int start_aligner(tw_ingest *in, int64_t first_ns, tw_err *err) {
  if (in->o.grid_start_ns == 0) {
    int64_t k = first_ns / in->dt_ns;
    if (k * in->dt_ns < first_ns)
      k++;
    in->o.grid_start_ns = k * in->dt_ns;
  }
  tw_align_opts ao = {0};
  ao.grid_start_ns = in->o.grid_start_ns;
  ao.grid_dt_ns = in->dt_ns;
  ao.idle_timeout_ns = in->o.idle_timeout_ns;
  ao.split_idle_timeout_ns =
      in->o.partition_idle_ns == 0
          ? TW_INGEST_PARTITION_IDLE_DEFAULT_NS
          : (in->o.partition_idle_ns < 0 ? 0 : in->o.partition_idle_ns);
  ao.emit = on_emit;
  ao.ud = in;
  int rc = tw_align_new(&ao, &in->al, err);
  for (size_t i = 0; rc == TW_OK && i < in->nsrc; i++) {
    src *s = &in->src[i];
    if (s->o.schema == NULL)
      continue;
    tw_align_stream_opts so = {0};
    so.name = s->name;
    so.policy = s->o.policy == TW_ALIGN_EXACT && s->o.tolerance_ns == 0 &&
                        s->o.max_age_ns == 0
                    ? TW_ALIGN_HOLD_LAST
                    : s->o.policy;
    so.dims = s->width;
    so.max_out_of_orderness_ns = s->o.max_out_of_orderness_ns
                                     ? s->o.max_out_of_orderness_ns
                                     : (int64_t)50 * 1000 * 1000;
    so.tolerance_ns = s->o.tolerance_ns;
    so.max_age_ns = s->o.max_age_ns;
    so.capacity = s->o.capacity ? s->o.capacity : 65536;
    rc = tw_align_stream_add(in->al, &so, &s->stream, err);
  }
  /* Partitions assigned before the first value hold from their
   * assignment. */
  for (size_t i = 0; rc == TW_OK && i < in->npos; i++) {
    const pos *p = &in->pos[i];
    if (p->assigned && in->src[p->source].o.schema != NULL)
      rc = tw_align_split_set(in->al, in->src[p->source].stream, p->split, true,
                              p->assigned_at, err);
  }
  if (rc == TW_OK && in->trace_path != NULL)
    rc = tw_graph_trace_open(in->g, in->trace_path, NULL, &in->trace, err);
  return rc;
}

/* --- Records ------------------------------------------------------------ */

static void refuse(tw_ingest *in, const tw_ingest_msg *m, const char *stage,
                   const char *exception, int code, const char *msg) {
  in->st.refused++;
  if (in->o.refused == NULL)
    return;
  tw_ingest_refusal r = {stage, exception, msg, code};
  in->o.refused(in->o.ud, m, &r);
}

static const char *const data_exception =
    "org.apache.kafka.connect.errors.DataException";

/* Writes what id resolved to into the recording's current segment, so a
 * replay binds the same schema without a registry. */
static int record_schema(tw_ingest *in, const bound *b, tw_err *err) {
  if (in->rec == NULL || in->replaying)
    return TW_OK;
  char ids[16];
  (void)snprintf(ids, sizeof ids, "%" PRIu32, b->id);
  tw_trace_kv kv[] = {
      {"source", in->src[b->source].name},
      {"id", ids},
      {"kind", b->kind == TW_STREAM_CONNECT ? "CONNECT" : "JSON"},
      {b->text != NULL ? "schema" : "error",
       b->text != NULL ? b->text : b->error}};
  tw_err e;
  tw_err_init(&e);
  int rc = tw__recorder_metadata(in->rec, "twin.schema", kv, 4, &e);
  return rc == TW_OK ? TW_OK : fail(in, rc, &e, err);
}

/* The writer's schema of id for source si: bound once; resolved through
 * the source's resolver (recorded) or, in a replay, the recording. */
static int binding_for(tw_ingest *in, uint32_t si, uint32_t id,
                       const bound **out, tw_err *transient, tw_err *err) {
  for (size_t i = 0; i < in->nbound; i++)
    if (in->bound[i].source == si && in->bound[i].id == id) {
      *out = &in->bound[i];
      return TW_OK;
    }
  src *s = &in->src[si];
  tw_stream_schema_kind kind = TW_STREAM_JSON_SCHEMA;
  char *text = NULL;
  tw_err e;
  tw_err_init(&e);
  int rc = TW_OK;
  if (in->replaying) {
    const known *k = NULL;
    for (size_t i = 0; i < in->nknown; i++)
      if (in->known[i].source == si && in->known[i].id == id)
        k = &in->known[i];
    if (k == NULL)
      rc = tw_err_set(&e, TW_ENOENT,
                      "schema id %" PRIu32 " is not in the recording", id);
    else if (k->error != NULL)
      rc = tw_err_set(&e, TW_ENOENT, "%s", k->error);
    else if ((text = tw_strdup(k->text)) == NULL)
      return oom(err);
    else
      kind = k->kind;
  } else if (s->o.resolve == NULL) {
    rc = tw_err_set(&e, TW_ENOTSUP,
                    "schema id %" PRIu32 ": source '%s' has no schema registry",
                    id, s->name);
  } else {
    rc = s->o.resolve(s->o.resolve_ud, id, &kind, &text, &e);
    if (rc != TW_OK && e.code == TW_OK)
      (void)tw_err_set(&e, rc, "schema id %" PRIu32 " did not resolve", id);
    if (rc == TW_ECONN || rc == TW_ETIMEDOUT || rc == TW_EIO) {
      /* The registry is away: this record is refused, the id is asked
       * again for the next one. */
      tw_free(text);
      (void)tw_err_copy(transient, &e);
      return 1;
    }
  }
  bound *nb = grow(in->bound, &in->capbound, in->nbound + 1, sizeof *nb);
  if (nb == NULL) {
    tw_free(text);
    return oom(err);
  }
  in->bound = nb;
  bound *b = &in->bound[in->nbound];
  memset(b, 0, sizeof *b);
  b->source = si;
  b->id = id;
  if (rc == TW_OK) {
    tw_err be;
    tw_err_init(&be);
    if (tw_stream_binding_new(s->o.schema, kind, text, strlen(text), &b->b,
                              &be) != TW_OK) {
      tw_buf m = TW_BUF_INIT;
      if (tw_buf_printf(&m, "schema id %" PRIu32 ": %s", id, be.msg) == TW_OK)
        b->error = m.data;
    }
  } else {
    b->error = tw_strdup(e.msg);
  }
  if (b->b == NULL && b->error == NULL) {
    tw_free(text);
    return oom(err);
  }
  in->nbound++;
  b->kind = kind;
  b->text = rc == TW_OK ? text : NULL;
  if (rc != TW_OK)
    tw_free(text);
  rc = record_schema(in, b, err);
  if (rc != TW_OK)
    return rc;
  *out = b;
  return TW_OK;
}

static int handle(tw_ingest *in, const tw_ingest_msg *m, int64_t now,
                  uint64_t event, pos *p, tw_err *err) {
  uint32_t split = p != NULL ? p->split : 0;
  src *s = &in->src[m->source];
  if (m->flags & TW_INGEST_FRAME) {
    in->st.frames++;
    return TW_OK;
  }
  char msg[TW_ERR_MSG_MAX + 64];
  if (m->flags & TW_INGEST_OVERSIZE) {
    (void)snprintf(msg, sizeof msg,
                   "record of %zu bytes or more is over the source's limit",
                   m->len);
    refuse(in, m, "CONSUME",
           "org.apache.kafka.common.errors.RecordTooLargeException", TW_ELIMIT,
           msg);
    return TW_OK;
  }
  if (m->flags & TW_INGEST_HEADERS_CUT) {
    (void)snprintf(msg, sizeof msg,
                   "record with more than %d headers (the first %d are "
                   "recorded)",
                   TW_INGEST_HEADERS_MAX, TW_INGEST_HEADERS_MAX);
    refuse(in, m, "HEADER_CONVERTER", data_exception, TW_ELIMIT, msg);
    return TW_OK;
  }
  if (s->o.schema == NULL) {
    in->st.raw++; /* recorded only: nothing of the twin reads it */
    return TW_OK;
  }
  const void *payload = m->data;
  size_t plen = m->data != NULL ? m->len : 0;
  const tw_stream_binding *b = NULL;
  tw_err e;
  tw_err_init(&e);
  if (plen > 0 && ((const uint8_t *)payload)[0] == 0) {
    uint32_t id = 0;
    if (tw_stream_wire_split(payload, plen, &id, &payload, &plen, &e) !=
        TW_OK) {
      refuse(in, m, "VALUE_CONVERTER", data_exception, e.code, e.msg);
      return TW_OK;
    }
    const bound *bd = NULL;
    tw_err_init(&e);
    int rc = binding_for(in, m->source, id, &bd, &e, err);
    if (rc == 1) {
      refuse(in, m, "VALUE_CONVERTER",
             "org.apache.kafka.connect.errors.RetriableException", e.code,
             e.msg);
      return TW_OK;
    }
    if (rc != TW_OK)
      return rc;
    if (bd->b == NULL) {
      refuse(in, m, "VALUE_CONVERTER",
             "org.apache.kafka.common.errors.SerializationException",
             TW_EVALIDATE, bd->error);
      return TW_OK;
    }
    b = bd->b;
  }
  tw_stream_meta meta = {0};
  if (tw_stream_decode(s->o.schema, b, payload, plen, s->vals, &meta, &e) !=
      TW_OK) {
    refuse(in, m, "VALUE_CONVERTER", data_exception, e.code, e.msg);
    return TW_OK;
  }
  int64_t t = now;
  if (s->o.time == TW_INGEST_TIME_SOURCE) {
    if (m->source_ns == INT64_MIN) {
      refuse(in, m, "VALUE_CONVERTER", data_exception, TW_EVALIDATE,
             "record without a transport timestamp");
      return TW_OK;
    }
    t = m->source_ns;
  } else if (s->o.time == TW_INGEST_TIME_AUTO) {
    t = meta.has_time               ? meta.time_ns
        : m->source_ns != INT64_MIN ? m->source_ns
                                    : now;
  }
  tw_align_clock_event ev;
  if (tw_align_clock_add(s->clock, t, now, &ev, &e) == TW_OK && s->o.clock_map)
    (void)tw_align_clock_to_host(s->clock, t, &t, &e);
  tw_err_init(&e);
  int rc = TW_OK;
  if (in->al == NULL)
    rc = start_aligner(in, t, &e);
  if (rc != TW_OK)
    return fail(in, rc, &e, err);
  if (p != NULL && t > p->max_time)
    p->max_time = t;
  tw_align_record r = {0};
  r.stream = s->stream;
  r.time_ns = t;
  r.seq = event;
  r.id = event;
  r.size = plen;
  r.values = s->vals;
  r.split = split;
  bool late = false;
  rc = tw_align_push(in->al, &r, now, &late, &e);
  if (rc == TW_ELIMIT || rc == TW_ENUMERIC) {
    if (rc == TW_ELIMIT)
      in->st.overflow++;
    refuse(in, m, "TWIN_ALIGN",
           rc == TW_ELIMIT
               ? "org.apache.kafka.connect.errors.RetriableException"
               : data_exception,
           rc, e.msg);
    return TW_OK;
  }
  if (rc != TW_OK)
    return fail(in, rc, &e, err);
  if (late)
    in->st.late++;
  else
    in->st.accepted++;
  return TW_OK;
}

/* The position of (source, topic, partition): the highest offset seen. */
static pos *position(tw_ingest *in, const tw_ingest_msg *m, bool add) {
  const char *topic = m->topic != NULL ? m->topic : "";
  for (size_t i = in->npos; i-- > 0;) {
    pos *p = &in->pos[i];
    if (p->source == m->source && p->partition == m->partition &&
        strcmp(p->topic, topic) == 0)
      return p;
  }
  if (!add)
    return NULL;
  pos *np = grow(in->pos, &in->cappos, in->npos + 1, sizeof *np);
  if (np == NULL)
    return NULL;
  in->pos = np;
  pos *p = &in->pos[in->npos];
  if ((p->topic = tw_strdup(topic)) == NULL)
    return NULL;
  p->source = m->source;
  p->partition = m->partition;
  p->offset = INT64_MIN;
  p->split = in->src[m->source].nsplits++;
  p->max_time = INT64_MIN;
  p->paused = false;
  p->assigned = false;
  p->assigned_at = 0;
  in->npos++;
  return p;
}

static int open_recording(tw_ingest *in, tw_err *err);

/* Opens the recording at the first event. */
static int start(tw_ingest *in, tw_err *err) {
  if (in->started)
    return TW_OK;
  in->started = true;
  tw_err oe;
  tw_err_init(&oe);
  int rc = open_recording(in, &oe);
  return rc == TW_OK ? TW_OK : fail(in, rc, &oe, err);
}

/* Writes record event m to its source's channel (a new segment repeats
 * the schemas bound so far). */
static int record_msg(tw_ingest *in, const tw_ingest_msg *m, int64_t now,
                      uint64_t event, tw_err *err) {
  if (in->rec == NULL)
    return TW_OK;
  tw_buf_reset(&in->body);
  tw_err e;
  tw_err_init(&e);
  int rc = tw__ingest_encode_record(&in->body, event, now, m);
  if (rc != TW_OK)
    return fail(
        in, rc, &e,
        (tw_err_set(&e, rc, "ingest: cannot encode a record of %zu bytes",
                    m->len),
         err));
  uint64_t opened = tw__recorder_opened(in->rec);
  rc = tw__recorder_write(in->rec, m->source, event, now,
                          m->source_ns != INT64_MIN ? m->source_ns : now,
                          in->body.data, in->body.len, &e);
  if (rc != TW_OK)
    return fail(in, rc, &e, err);
  for (size_t i = 0; opened != tw__recorder_opened(in->rec) && i < in->nbound;
       i++) {
    rc = record_schema(in, &in->bound[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

static int push(tw_ingest *in, const tw_ingest_msg *msg, int64_t now,
                uint64_t event, tw_err *err) {
  /* A record with more headers than a recording keeps: its first ones
   * are recorded and it is refused (handle), never the run failed. */
  tw_ingest_msg cut;
  const tw_ingest_msg *m = msg;
  if (msg->nheaders > TW_INGEST_HEADERS_MAX) {
    cut = *msg;
    cut.nheaders = TW_INGEST_HEADERS_MAX;
    cut.flags |= TW_INGEST_HEADERS_CUT;
    m = &cut;
  }
  int orc = start(in, err);
  if (orc != TW_OK)
    return orc;
  pos *p = NULL;
  if (m->offset >= 0) {
    p = position(in, m, true);
    if (p == NULL)
      return oom(err);
    if (m->offset <= p->offset) {
      in->st.duplicates++;
      return TW_OK;
    }
  }
  int rc = record_msg(in, m, now, event, err);
  if (rc != TW_OK)
    return rc;
  if (p != NULL)
    p->offset = m->offset;
  in->event = event + 1;
  in->st.events++;
  in->st.records++;
  in->st.bytes += m->data != NULL ? m->len : 0;
  return handle(in, m, now, event, p, err);
}

int tw_ingest_push(tw_ingest *in, const tw_ingest_msg *msg, int64_t now_ns,
                   tw_err *err) {
  if (in->failed)
    return tw_err_set(err, in->failed, "ingest failed before: %s",
                      in->fail.msg);
  if (msg == NULL || msg->source >= in->nsrc)
    return tw_err_set(err, TW_EINVAL, "ingest: unknown source %" PRIu32,
                      msg != NULL ? msg->source : 0);
  if (in->replaying)
    return tw_err_set(err, TW_ESTATE, "ingest: replaying");
  if (msg->flags & (TW_INGEST_ASSIGNED | TW_INGEST_REVOKED))
    return tw_err_set(err, TW_EINVAL,
                      "ingest: a record cannot carry the split event flags "
                      "(tw_ingest_split records those)");
  if (now_ns < in->now)
    now_ns = in->now;
  in->now = now_ns;
  return push(in, msg, now_ns, in->event, err);
}

/* A partition assigned or revoked (m: source, topic, partition, and the
 * flag), recorded first like every event. */
static int split_event(tw_ingest *in, const tw_ingest_msg *m, int64_t now,
                       uint64_t event, tw_err *err) {
  int orc = start(in, err);
  if (orc != TW_OK)
    return orc;
  int rc = record_msg(in, m, now, event, err);
  if (rc != TW_OK)
    return rc;
  in->event = event + 1;
  in->st.events++;
  in->st.splits++;
  pos *p = position(in, m, true);
  if (p == NULL) {
    tw_err e;
    tw_err_init(&e);
    return fail(in, oom(&e), &e, err);
  }
  p->assigned = (m->flags & TW_INGEST_ASSIGNED) != 0;
  p->assigned_at = now;
  p->paused = false; /* a consumer forgets pauses with the partition */
  const src *s = &in->src[m->source];
  if (in->al == NULL || s->o.schema == NULL)
    return TW_OK; /* the aligner, when made, declares it */
  tw_err e;
  tw_err_init(&e);
  rc = tw_align_split_set(in->al, s->stream, p->split, p->assigned, now, &e);
  return rc == TW_OK ? TW_OK : fail(in, rc, &e, err);
}

int64_t tw_ingest_partition_time(const tw_ingest *in, uint32_t source,
                                 const char *topic, int32_t partition) {
  for (size_t i = in->npos; i-- > 0;) {
    const pos *p = &in->pos[i];
    if (p->source == source && p->partition == partition &&
        strcmp(p->topic, topic != NULL ? topic : "") == 0)
      return p->max_time;
  }
  return INT64_MIN;
}

int tw_ingest_split(tw_ingest *in, uint32_t source, const char *topic,
                    int32_t partition, bool assigned, int64_t now_ns,
                    tw_err *err) {
  if (in->failed)
    return tw_err_set(err, in->failed, "ingest failed before: %s",
                      in->fail.msg);
  if (source >= in->nsrc)
    return tw_err_set(err, TW_EINVAL, "ingest: unknown source %" PRIu32,
                      source);
  if (topic == NULL || partition < 0)
    return tw_err_set(err, TW_EINVAL,
                      "ingest: a split event names a topic and a partition "
                      ">= 0");
  if (in->replaying)
    return tw_err_set(err, TW_ESTATE, "ingest: replaying");
  if (now_ns < in->now)
    now_ns = in->now;
  in->now = now_ns;
  tw_ingest_msg m = {0};
  m.source = source;
  m.topic = topic;
  m.partition = partition;
  m.offset = -1;
  m.source_ns = INT64_MIN;
  m.flags = assigned ? TW_INGEST_ASSIGNED : TW_INGEST_REVOKED;
  return split_event(in, &m, now_ns, in->event, err);
}

/* Pauses the partitions running ahead of their source and resumes those
 * back in line (the options' max_partition_drift_ns). The decisions are a
 * function of the recorded events, so a replay with the same options
 * takes them again (without a callback): a paused partition is kept
 * active (not idle) while paused, which the watermark depends on. */
static int backpressure(tw_ingest *in, int64_t now, tw_err *err) {
  if (in->o.max_partition_drift_ns < 0 || in->al == NULL)
    return TW_OK;
  /* 0: no bound on the drift, only on the buffer. */
  int64_t drift = in->o.max_partition_drift_ns ? in->o.max_partition_drift_ns
                                               : INT64_MAX - 1;
  for (size_t i = 0; i < in->npos; i++) {
    pos *p = &in->pos[i];
    const src *s = &in->src[p->source];
    if (s->o.schema == NULL || p->partition < 0)
      continue;
    tw_align_stream_stats st;
    if (tw_align_stream_stats_get(in->al, s->stream, &st) != TW_OK)
      continue;
    size_t cap = s->o.capacity ? s->o.capacity : 65536;
    int64_t lead = tw_align_split_lead(in->al, s->stream, p->split);
    bool full = st.buffered * 2 > cap;
    if (!p->paused && (lead > drift || (full && lead > 0))) {
      p->paused = true;
      in->st.pauses++;
      if (in->o.pause != NULL)
        in->o.pause(in->o.ud, p->source, p->topic, p->partition, true);
    } else if (p->paused && (drift == INT64_MAX - 1 || lead <= drift / 2) &&
               (st.buffered * 4 < cap || lead == 0)) {
      p->paused = false;
      if (in->o.pause != NULL)
        in->o.pause(in->o.ud, p->source, p->topic, p->partition, false);
    }
    if (p->paused) {
      tw_err e;
      tw_err_init(&e);
      int rc = tw_align_split_set(in->al, s->stream, p->split, true, now, &e);
      if (rc != TW_OK)
        return fail(in, rc, &e, err);
    }
  }
  return TW_OK;
}

static int advance(tw_ingest *in, int64_t now, uint64_t event, tw_err *err) {
  tw_err e;
  tw_err_init(&e);
  /* Before the first record nothing depends on time: not recorded (a run
   * that never sees a record leaves no recording). */
  if (!in->replaying && in->st.records == 0 && in->st.duplicates == 0)
    return TW_OK;
  int orc = start(in, err);
  if (orc != TW_OK)
    return orc;
  if (in->rec != NULL) {
    tw_buf_reset(&in->body);
    int rc = tw__ingest_encode_clock(&in->body, event, now);
    if (rc == TW_OK)
      rc = tw__recorder_write(
          in->rec, UINT32_MAX, event, now == INT64_MAX ? in->now : now,
          now == INT64_MAX ? in->now : now, in->body.data, in->body.len, &e);
    else
      (void)tw_err_set(&e, rc, "ingest: out of memory");
    if (rc != TW_OK)
      return fail(in, rc, &e, err);
  }
  in->event = event + 1;
  in->st.events++;
  if (in->al == NULL || in->stopped)
    return TW_OK;
  /* now INT64_MAX is the end of the input. */
  int rc = now == INT64_MAX ? tw_align_finish(in->al, &e)
                            : tw_align_advance(in->al, now, &e);
  if (rc != TW_OK)
    return fail(in, rc, &e, err);
  close_row(in);
  if (in->failed)
    return tw_err_set(err, in->failed, "%s", in->fail.msg);
  in->st.watermark_ns = tw_align_watermark(in->al);
  if (now != INT64_MAX) {
    int rc2 = backpressure(in, now, err);
    if (rc2 != TW_OK)
      return rc2;
  }
  return step_rows(in, err);
}

int tw_ingest_advance(tw_ingest *in, int64_t now_ns, tw_err *err) {
  if (in->failed)
    return tw_err_set(err, in->failed, "ingest failed before: %s",
                      in->fail.msg);
  if (in->replaying)
    return tw_err_set(err, TW_ESTATE, "ingest: replaying");
  if (now_ns < in->now)
    now_ns = in->now;
  in->now = now_ns;
  return advance(in, now_ns, in->event, err);
}

int tw_ingest_finish(tw_ingest *in, tw_err *err) {
  if (in->failed)
    return tw_err_set(err, in->failed, "ingest failed before: %s",
                      in->fail.msg);
  if (in->replaying)
    return tw_err_set(err, TW_ESTATE, "ingest: replaying");
  return advance(in, INT64_MAX, in->event, err);
}

int tw_ingest_sync(tw_ingest *in, tw_err *err) {
  if (in->failed)
    return tw_err_set(err, in->failed, "ingest failed before: %s",
                      in->fail.msg);
  if (in->rec == NULL)
    return TW_OK;
  tw_err e;
  tw_err_init(&e);
  int rc = tw__recorder_flush(in->rec, &e);
  return rc == TW_OK ? TW_OK : fail(in, rc, &e, err);
}

void tw_ingest_stats_get(const tw_ingest *in, tw_ingest_stats *out) {
  *out = in->st;
  if (in->rec != NULL)
    tw__recorder_counts(in->rec, &out->segments, &out->segments_deleted,
                        &out->recorded_bytes);
  if (in->al != NULL)
    out->watermark_ns = tw_align_watermark(in->al);
}

int tw_ingest_clock_get(const tw_ingest *in, uint32_t source,
                        tw_align_clock_fit *fit, tw_err *err) {
  if (source >= in->nsrc)
    return tw_err_set(err, TW_EINVAL, "ingest: unknown source %" PRIu32,
                      source);
  tw_align_clock_fit_get(in->src[source].clock, fit);
  return TW_OK;
}

/* Opens the recording at the first event (sources are known by then). */
static int open_recording(tw_ingest *in, tw_err *err) {
  if (in->record_path == NULL || in->rec != NULL)
    return TW_OK;
  tw__recorder_source *rs = tw_calloc(in->nsrc ? in->nsrc : 1, sizeof *rs);
  if (rs == NULL)
    return oom(err);
  for (size_t i = 0; i < in->nsrc; i++) {
    rs[i].name = in->src[i].name;
    rs[i].kind = in->src[i].kind;
  }
  int rc = tw__recorder_open(in->record_path, in->o.segment_bytes,
                             in->o.max_bytes, in->o.record_no_sync, in->twin,
                             rs, in->nsrc, &in->rec, err);
  tw_free(rs);
  return rc;
}

int tw_ingest_close(tw_ingest *in, tw_err *err) {
  if (in == NULL)
    return TW_OK;
  int rc = TW_OK;
  tw_err e;
  tw_err_init(&e);
  if (in->trace != NULL) {
    if (in->failed)
      tw_graph_trace_abort(in->trace);
    else
      rc = tw_graph_trace_close(in->trace, in->g, &e);
  }
  int rc2 = tw__recorder_close(in->rec, rc == TW_OK ? &e : NULL);
  if (rc == TW_OK)
    rc = rc2;
  if (rc != TW_OK && err != NULL)
    (void)tw_err_copy(err, &e);
  tw_align_free(in->al);
  for (size_t i = 0; i < in->nsrc; i++) {
    tw_align_clock_free(in->src[i].clock);
    tw_free(in->src[i].name);
    tw_free(in->src[i].kind);
    tw_free(in->src[i].field_input);
    tw_free(in->src[i].vals);
  }
  for (size_t i = 0; i < in->npos; i++)
    tw_free(in->pos[i].topic);
  for (size_t i = 0; i < in->nbound; i++) {
    tw_stream_binding_free(in->bound[i].b);
    tw_free(in->bound[i].text);
    tw_free(in->bound[i].error);
  }
  for (size_t i = 0; i < in->nknown; i++) {
    tw_free(in->known[i].text);
    tw_free(in->known[i].error);
  }
  tw_free(in->known);
  tw_free(in->bound);
  tw_free(in->pos);
  tw_free(in->src);
  tw_free(in->rows);
  tw_free(in->outs);
  tw_free(in->row);
  tw_free(in->in_off);
  tw_free(in->in_size);
  tw_buf_fini(&in->body);
  tw_free(in->twin);
  tw_free(in->record_path);
  tw_free(in->trace_path);
  tw_free(in);
  return rc;
}

/* --- Replay ------------------------------------------------------------- */

static const char *meta_get(const tw_trace_metadata *md, const char *key) {
  for (size_t i = 0; i < md->n; i++)
    if (strcmp(md->kv[i].key, key) == 0)
      return md->kv[i].value;
  return NULL;
}

static int src_index(const tw_ingest *in, const char *name, uint32_t *out) {
  for (size_t i = 0; i < in->nsrc; i++)
    if (strcmp(in->src[i].name, name) == 0) {
      *out = (uint32_t)i;
      return TW_OK;
    }
  return TW_ENOENT;
}

/* Reads a segment's metadata: checks its sources against in's and keeps
 * the schemas it recorded. */
static int segment_meta(tw_ingest *in, tw_trace_reader *r, const char *file,
                        const char *want, uint64_t *first, tw_err *err) {
  bool found = false;
  for (size_t i = 0; i < tw_trace_reader_metadata_count(r); i++) {
    const tw_trace_metadata *md = tw_trace_reader_metadata_at(r, i);
    if (strcmp(md->name, "twin.ingest") == 0) {
      const char *srcs = meta_get(md, "sources");
      const char *fe = meta_get(md, "first_event");
      if (srcs == NULL || fe == NULL)
        return tw_err_set(err, TW_EPARSE,
                          "%s: twin.ingest metadata without sources or "
                          "first_event",
                          file);
      if (strcmp(srcs, want) != 0)
        return tw_err_set(err, TW_EVALIDATE,
                          "%s: recorded sources %s, the twin's are %s", file,
                          srcs, want);
      char *end = NULL;
      *first = strtoull(fe, &end, 10);
      if (end == fe || *end != '\0')
        return tw_err_set(err, TW_EPARSE, "%s: first_event '%s'", file, fe);
      found = true;
    } else if (strcmp(md->name, "twin.schema") == 0) {
      const char *sn = meta_get(md, "source"), *id = meta_get(md, "id");
      const char *kind = meta_get(md, "kind"), *text = meta_get(md, "schema");
      const char *error = meta_get(md, "error");
      uint32_t si = 0;
      char *end = NULL;
      unsigned long v = id != NULL ? strtoul(id, &end, 10) : 0;
      if (sn == NULL || id == NULL || end == id || *end != '\0' ||
          v > UINT32_MAX || kind == NULL || (text == NULL) == (error == NULL))
        return tw_err_set(err, TW_EPARSE, "%s: malformed twin.schema metadata",
                          file);
      if (src_index(in, sn, &si) != TW_OK)
        return tw_err_set(err, TW_EVALIDATE,
                          "%s: a schema of unknown source '%s'", file, sn);
      bool have = false;
      for (size_t k = 0; k < in->nknown; k++)
        have |= in->known[k].source == si && in->known[k].id == (uint32_t)v;
      if (have)
        continue;
      known *nk = grow(in->known, &in->capknown, in->nknown + 1, sizeof *nk);
      if (nk == NULL)
        return oom(err);
      in->known = nk;
      known *k = &in->known[in->nknown];
      memset(k, 0, sizeof *k);
      k->source = si;
      k->id = (uint32_t)v;
      k->kind = strcmp(kind, "CONNECT") == 0 ? TW_STREAM_CONNECT
                                             : TW_STREAM_JSON_SCHEMA;
      k->text = text != NULL ? tw_strdup(text) : NULL;
      k->error = error != NULL ? tw_strdup(error) : NULL;
      if (k->text == NULL && k->error == NULL)
        return oom(err);
      in->nknown++;
    }
  }
  if (!found)
    return tw_err_set(err, TW_EVALIDATE,
                      "%s: not an ingest recording (no twin.ingest metadata)",
                      file);
  return TW_OK;
}

static int replay_file(tw_ingest *in, const char *file, const char *want,
                       bool first_file, bool allow_gap, tw_ingest_header **hdrs,
                       size_t *hcap, tw_err *err) {
  tw_trace_reader *r = NULL;
  int rc = tw_trace_reader_open(file, NULL, &r, err);
  if (rc != TW_OK)
    return rc;
  uint64_t first = 0;
  rc = segment_meta(in, r, file, want, &first, err);
  if (rc == TW_OK && first != in->event && !allow_gap)
    rc = first_file
             ? tw_err_set(err, TW_EVALIDATE,
                          "%s: the recording starts at event %" PRIu64
                          ": its first segments were deleted (allow gaps to "
                          "replay from there)",
                          file, first)
             : tw_err_set(err, TW_EVALIDATE,
                          "%s: starts at event %" PRIu64 ", expected %" PRIu64
                          " (a segment is missing)",
                          file, first, in->event);
  if (rc == TW_OK)
    in->event = first;
  /* Channel id -> source (UINT32_MAX for the clock). */
  uint32_t *map = tw_alloc(65536 * sizeof *map);
  if (rc == TW_OK && map == NULL)
    rc = oom(err);
  for (size_t i = 0; rc == TW_OK && i < 65536; i++)
    map[i] = UINT32_MAX - 1;
  for (size_t i = 0; rc == TW_OK && i < tw_trace_reader_channel_count(r); i++) {
    const tw_trace_channel *ch = tw_trace_reader_channel_at(r, i);
    uint32_t si = 0;
    if (strcmp(ch->topic, TW__INGEST_CLOCK_TOPIC) == 0)
      map[ch->id] = UINT32_MAX;
    else if (strncmp(ch->topic, "/ingest/", 8) == 0 &&
             src_index(in, ch->topic + 8, &si) == TW_OK)
      map[ch->id] = si;
    else
      rc = tw_err_set(err, TW_EVALIDATE, "%s: unexpected channel '%s'", file,
                      ch->topic);
  }
  tw_trace_iter *it = NULL;
  if (rc == TW_OK)
    rc = tw_trace_iter_new(r, NULL, &it, err);
  tw_trace_message m;
  while (rc == TW_OK && (rc = tw_trace_iter_next(it, &m, err)) == 1) {
    uint64_t event = 0;
    int64_t now = 0;
    if (map[m.channel_id] == UINT32_MAX) {
      rc = tw__ingest_decode_clock(m.data, m.len, &event, &now, err);
    } else {
      tw__ingest_body b;
      rc = tw__ingest_decode_record(m.data, m.len, &b, hdrs, hcap, err);
      if (rc == TW_OK) {
        event = b.event;
        now = b.ingest_ns;
        b.msg.source = map[m.channel_id];
      }
      if (rc == TW_OK && event == in->event) {
        in->now = now;
        if (b.msg.flags & (TW_INGEST_ASSIGNED | TW_INGEST_REVOKED))
          rc = b.msg.partition < 0
                   ? tw_err_set(err, TW_EVALIDATE,
                                "%s: event %" PRIu64
                                ": a split event without a partition",
                                file, event)
                   : split_event(in, &b.msg, now, event, err);
        else
          rc = push(in, &b.msg, now, event, err);
        continue;
      }
    }
    if (rc == TW_OK && event != in->event)
      rc = tw_err_set(err, TW_EVALIDATE,
                      "%s: event %" PRIu64 " where %" PRIu64
                      " was expected (events lost or reordered)",
                      file, event, in->event);
    if (rc == TW_OK) {
      if (now != INT64_MAX)
        in->now = now;
      rc = advance(in, now, event, err);
    }
  }
  if (rc == 0)
    rc = TW_OK;
  tw_free(map);
  tw_trace_iter_free(it);
  tw_trace_reader_close(r);
  return rc;
}

int tw_ingest_replay(tw_ingest *in, const char *path, bool allow_gap,
                     tw_err *err) {
  if (in->started || in->record_path != NULL)
    return tw_err_set(err, TW_ESTATE,
                      "ingest: a replay needs a fresh pipeline without a "
                      "recording of its own");
  tw__recorder_source *rs = tw_calloc(in->nsrc ? in->nsrc : 1, sizeof *rs);
  if (rs == NULL)
    return oom(err);
  for (size_t i = 0; i < in->nsrc; i++) {
    rs[i].name = in->src[i].name;
    rs[i].kind = in->src[i].kind;
  }
  char *want = tw__ingest_sources_json(rs, in->nsrc);
  tw_free(rs);
  if (want == NULL)
    return oom(err);
  char **files = NULL;
  size_t n = 0;
  int rc = tw__recording_segments(path, &files, &n, err);
  in->replaying = true;
  in->started = true;
  tw_ingest_header *hdrs = NULL;
  size_t hcap = 0;
  for (size_t i = 0; rc == TW_OK && i < n; i++)
    rc = replay_file(in, files[i], want, i == 0, allow_gap, &hdrs, &hcap, err);
  tw_free(hdrs);
  tw__recording_segments_free(files, n);
  tw_free(want);
  in->replaying = false;
  return rc;
}

int tw_ingest_recording_sources(const char *path, char **out, tw_err *err) {
  char **files = NULL;
  size_t n = 0;
  int rc = tw__recording_segments(path, &files, &n, err);
  tw_trace_reader *r = NULL;
  if (rc == TW_OK)
    rc = tw_trace_reader_open(files[0], NULL, &r, err);
  const char *srcs = NULL;
  for (size_t i = 0; rc == TW_OK && i < tw_trace_reader_metadata_count(r);
       i++) {
    const tw_trace_metadata *md = tw_trace_reader_metadata_at(r, i);
    if (strcmp(md->name, "twin.ingest") == 0)
      srcs = meta_get(md, "sources");
  }
  if (rc == TW_OK && srcs == NULL)
    rc = tw_err_set(err, TW_EVALIDATE, "%s: not an ingest recording", files[0]);
  if (rc == TW_OK && (*out = tw_strdup(srcs)) == NULL)
    rc = oom(err);
  tw_trace_reader_close(r);
  tw__recording_segments_free(files, n);
  return rc;
}
