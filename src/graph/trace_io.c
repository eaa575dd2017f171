/*
 * trace_io.c - runs as MCAP traces and graph inputs read from them
 * (graph.h "Traces", docs/graph.md).
 *
 * A trace is a tw_trace_writer with one port channel per graph input
 * ("/inputs/NAME") and output ("/outputs/NAME"). The sample of tick k has
 * t = k * dt, computed as run.c computes a tick's time, so a trace's
 * times are the times the blocks saw, and log_time = round(t * 1e9) ns.
 *
 * An input reader merges the channels it needs into one iterator in
 * log-time order and keeps one decoded message of look-ahead and one row
 * of held values: reading a tick drains every message with t <= k * dt
 * (plus a tolerance of 1e-9 * dt for times that are not exact multiples)
 * into the held row and copies it out. That is exact when messages are
 * logged in time order, which the reader checks: a sample that should
 * have applied to an earlier tick than the one being filled, or one older
 * than its channel's previous sample, is an error, never a silently wrong
 * hold. Memory stays one row, one message and one iterator whatever the
 * length of the file or of the run.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/trace.h"
#include "twin/version.h"

/* --- Writing ------------------------------------------------------------ */

/* The tolerance of input sample times, in ticks. */
#define TIME_TOLERANCE 1e-9
/* 2^64, the first log time that does not fit. */
#define NS_LIMIT 18446744073709551616.0

typedef struct trace_port {
  size_t size;
  uint16_t channel;
} trace_port;

struct tw_graph_trace {
  tw_trace_writer *w;
  double dt;
  size_t nin, nout, in_width, out_width;
  trace_port *ports; /* nin inputs, then nout outputs */
  double *zeros;     /* the largest input's size */
};

void tw_graph_trace_opts_init(tw_graph_trace_opts *o) {
  memset(o, 0, sizeof *o);
  o->encoding = TW_TRACE_ENCODING_JSON;
  o->compression = TW_TRACE_COMPRESSION_ZSTD;
}

static void trace_free(tw_graph_trace *t) {
  tw_free(t->ports);
  tw_free(t->zeros);
  tw_free(t);
}

/* The names of the graph's inputs or outputs, comma-separated. */
static int put_names(tw_buf *b, const tw_graph *g, bool outputs) {
  size_t n = outputs ? g->noutputs : g->ninputs;
  int rc = TW_OK;
  for (size_t i = 0; i < n && rc == TW_OK; i++)
    rc = tw_buf_printf(b, "%s%s", i ? "," : "",
                       outputs ? g->outputs[i].name : g->inputs[i].name);
  return rc;
}

/* The "twin.graph" record. */
static int graph_metadata(tw_graph_trace *t, const tw_graph *g,
                          const tw_graph_trace_opts *o, tw_err *err) {
  tw_buf dt = TW_BUF_INIT, ins = TW_BUF_INIT, outs = TW_BUF_INIT;
  int rc = tw_buf_printf(&dt, "%.17g", g->dt);
  if (rc == TW_OK)
    rc = tw_buf_puts(&ins, "");
  if (rc == TW_OK)
    rc = put_names(&ins, g, false);
  if (rc == TW_OK)
    rc = tw_buf_puts(&outs, "");
  if (rc == TW_OK)
    rc = put_names(&outs, g, true);
  if (rc != TW_OK) {
    rc =
        tw_err_set(err, TW_ENOMEM, "graph '%s': trace: out of memory", g->name);
  } else {
    const tw_trace_kv kv[] = {
        {"name", g->name},
        {"dt", dt.data},
        {"inputs", ins.data},
        {"outputs", outs.data},
        {"encoding", o->encoding == TW_TRACE_ENCODING_CDR ? "cdr" : "json"},
        {"twin_version", TW_VERSION_STRING}};
    rc = tw_trace_writer_add_metadata(t->w, "twin.graph", kv,
                                      sizeof kv / sizeof kv[0], err);
  }
  tw_buf_fini(&dt);
  tw_buf_fini(&ins);
  tw_buf_fini(&outs);
  return rc;
}

int tw_graph_trace_open(const tw_graph *g, const char *path,
                        const tw_graph_trace_opts *opts, tw_graph_trace **out,
                        tw_err *err) {
  tw_graph_trace_opts o;
  tw_graph_trace_opts_init(&o);
  if (opts != NULL)
    o = *opts;
  if (o.encoding != TW_TRACE_ENCODING_JSON &&
      o.encoding != TW_TRACE_ENCODING_CDR)
    return tw_err_set(err, TW_EINVAL, "%s: unknown sample encoding %d", path,
                      (int)o.encoding);
  tw_graph_trace *t = tw_calloc(1, sizeof *t);
  if (t == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  t->dt = g->dt;
  t->nin = g->ninputs;
  t->nout = g->noutputs;
  t->in_width = g->in_width;
  t->out_width = g->out_width;
  size_t zmax = 1;
  for (size_t i = 0; i < g->ninputs; i++)
    if (g->inputs[i].size > zmax)
      zmax = g->inputs[i].size;
  t->ports = tw_calloc(t->nin + t->nout + 1, sizeof *t->ports);
  t->zeros = tw_calloc(zmax, sizeof(double));
  if (t->ports == NULL || t->zeros == NULL) {
    trace_free(t);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  }
  tw_trace_writer_opts wo;
  tw_trace_writer_opts_init(&wo);
  wo.compression = o.compression;
  wo.no_sync = o.no_sync;
  wo.profile = "twin";
  int rc = tw_trace_writer_open(path, &wo, &t->w, err);
  if (rc != TW_OK) {
    trace_free(t);
    return rc;
  }
  tw_buf topic = TW_BUF_INIT;
  for (size_t i = 0; i < t->nin + t->nout && rc == TW_OK; i++) {
    bool is_out = i >= t->nin;
    const tw__gio *io = is_out ? &g->outputs[i - t->nin] : &g->inputs[i];
    tw_buf_reset(&topic);
    if (tw_buf_printf(&topic, "/%s/%s", is_out ? "outputs" : "inputs",
                      io->name) != TW_OK) {
      rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
      break;
    }
    tw_trace_port p = {topic.data,
                       is_out ? tw_graph_output_unit(g, i - t->nin)
                              : tw_graph_input_unit(g, i),
                       io->size};
    t->ports[i].size = io->size;
    rc = tw_trace_writer_add_port(t->w, &p, o.encoding, &t->ports[i].channel,
                                  err);
  }
  tw_buf_fini(&topic);
  if (rc == TW_OK)
    rc = graph_metadata(t, g, &o, err);
  if (rc != TW_OK) {
    tw_graph_trace_abort(t);
    return rc;
  }
  *out = t;
  return TW_OK;
}

int tw_graph_trace_write(tw_graph_trace *t, int64_t k0, int64_t n,
                         const double *inputs, const double *outputs,
                         tw_err *err) {
  if (k0 < 0 || n < 0)
    return tw_err_set(err, TW_EINVAL,
                      "trace: ticks from %lld, %lld of them: both must be >= 0",
                      (long long)k0, (long long)n);
  if (n > 0 && outputs == NULL && t->out_width > 0)
    return tw_err_set(err, TW_EINVAL, "trace: no outputs to write");
  int rc = TW_OK;
  for (int64_t j = 0; j < n && rc == TW_OK; j++) {
    int64_t k = k0 + j;
    double time = (double)k * t->dt;
    double ns = floor(time * 1e9 + 0.5);
    if (!(ns >= 0 && ns < NS_LIMIT))
      return tw_err_set(err, TW_ERANGE,
                        "trace: tick %lld (t=%g s) is past the 2^64 ns "
                        "MCAP times can hold",
                        (long long)k, time);
    uint64_t log_time = (uint64_t)ns;
    const double *in = inputs != NULL ? inputs + (size_t)j * t->in_width : NULL;
    const double *o =
        outputs != NULL ? outputs + (size_t)j * t->out_width : NULL;
    size_t off = 0;
    for (size_t i = 0; i < t->nin + t->nout && rc == TW_OK; i++) {
      if (i == t->nin)
        off = 0;
      const trace_port *p = &t->ports[i];
      const double *v =
          i < t->nin ? (in != NULL ? in + off : t->zeros) : o + off;
      rc = tw_trace_writer_write_port(t->w, p->channel, log_time, time, v,
                                      p->size, err);
      off += p->size;
    }
  }
  return rc;
}

/* Key/value strings built in one buffer: "key\0value\0" pairs, pointed to
 * once the buffer no longer moves. */
typedef struct kv_list {
  tw_buf b;
  size_t n;
  int rc;
} kv_list;

/* Adds the pair "KEY" (block NULL) or "block.BLOCK.KEY" and the value. */
static void kv_add(kv_list *l, const char *block, const char *key,
                   const char *fmt, ...) TW_PRINTF(4, 5);

static void kv_add(kv_list *l, const char *block, const char *key,
                   const char *fmt, ...) {
  if (l->rc != TW_OK)
    return;
  l->rc = block != NULL ? tw_buf_printf(&l->b, "block.%s.%s", block, key)
                        : tw_buf_puts(&l->b, key);
  if (l->rc == TW_OK)
    l->rc = tw_buf_putc(&l->b, '\0');
  if (l->rc == TW_OK) {
    va_list ap;
    va_start(ap, fmt);
    l->rc = tw_buf_vprintf(&l->b, fmt, ap);
    va_end(ap);
  }
  if (l->rc == TW_OK)
    l->rc = tw_buf_putc(&l->b, '\0');
  l->n++;
}

/* The "twin.stats" record: the accounting of g's last run. */
static int stats_metadata(tw_graph_trace *t, const tw_graph *g, tw_err *err) {
  size_t nb = tw_graph_stats(g, NULL, 0, NULL);
  tw_graph_block_stats *st = tw_calloc(nb ? nb : 1, sizeof *st);
  kv_list l = {TW_BUF_INIT, 0, st != NULL ? TW_OK : TW_ENOMEM};
  tw_graph_run_stats r;
  memset(&r, 0, sizeof r);
  if (st != NULL)
    (void)tw_graph_stats(g, st, nb, &r);
  kv_add(&l, NULL, "ticks", "%lld", (long long)r.ticks);
  kv_add(&l, NULL, "wall_ms", "%.3f", r.wall_ms);
  kv_add(&l, NULL, "cpu_ms", "%.3f", r.cpu_ms);
  kv_add(&l, NULL, "memory_bytes", "%zu", r.memory_bytes);
  kv_add(&l, NULL, "fuel", "%llu", (unsigned long long)r.fuel);
  for (size_t i = 0; st != NULL && i < nb; i++) {
    const tw_graph_block_stats *s = &st[i];
    kv_add(&l, s->name, "kind", "%s", s->kind);
    kv_add(&l, s->name, "steps", "%llu", (unsigned long long)s->steps);
    kv_add(&l, s->name, "vjps", "%llu", (unsigned long long)s->vjps);
    kv_add(&l, s->name, "wall_ms", "%.3f", s->wall_ms);
    kv_add(&l, s->name, "cpu_ms", "%.3f", s->cpu_ms);
    kv_add(&l, s->name, "memory_bytes", "%zu", s->memory_bytes);
    kv_add(&l, s->name, "wasm_memory_bytes", "%zu", s->wasm_memory);
    kv_add(&l, s->name, "fuel", "%llu", (unsigned long long)s->fuel);
  }
  tw_free(st);
  tw_trace_kv *kv = l.rc == TW_OK ? tw_calloc(l.n, sizeof *kv) : NULL;
  int rc;
  if (kv == NULL) {
    rc =
        tw_err_set(err, TW_ENOMEM, "graph '%s': trace: out of memory", g->name);
  } else {
    const char *p = l.b.data;
    for (size_t i = 0; i < l.n; i++) {
      kv[i].key = p;
      p += strlen(p) + 1;
      kv[i].value = p;
      p += strlen(p) + 1;
    }
    rc = tw_trace_writer_add_metadata(t->w, "twin.stats", kv, l.n, err);
  }
  tw_free(kv);
  tw_buf_fini(&l.b);
  return rc;
}

int tw_graph_trace_close(tw_graph_trace *t, const tw_graph *g, tw_err *err) {
  if (t == NULL)
    return TW_OK;
  int rc = g != NULL ? stats_metadata(t, g, err) : TW_OK;
  if (rc != TW_OK) {
    tw_graph_trace_abort(t);
    return rc;
  }
  rc = tw_trace_writer_close(t->w, err);
  trace_free(t);
  return rc;
}

void tw_graph_trace_abort(tw_graph_trace *t) {
  if (t == NULL)
    return;
  tw_trace_writer_abort(t->w);
  trace_free(t);
}

/* --- Reading inputs ----------------------------------------------------- */

/* A time for a message: the shortest of %.15g..%.17g that reads back as t
 * (0.9, not 0.90000000000000002). */
typedef struct time_text {
  char s[32];
} time_text;

static time_text show(double t) {
  time_text x;
  for (int prec = 15; prec <= 17; prec++) {
    (void)snprintf(x.s, sizeof x.s, "%.*g", prec, t);
    if (strtod(x.s, NULL) == t)
      break;
  }
  return x;
}

typedef struct in_port {
  const char *name;  /* in the reader's copy of the names */
  const char *topic; /* borrowed from the reader */
  size_t size, offset;
  uint16_t channel;
  bool have;     /* a sample has been held */
  double last_t; /* of the channel's latest sample held */
} in_port;

struct tw_graph_inputs {
  char *path;
  char *names; /* the input names, NUL-separated */
  tw_trace_reader *r;
  tw_trace_iter *it;
  double dt;
  size_t nin, width, cap;
  in_port *in;
  double *held;  /* width values: the row being held */
  double *value; /* cap values: the look-ahead sample */
  /* The look-ahead message, decoded. */
  bool pending, eof;
  uint16_t p_channel;
  uint32_t p_sequence;
  double p_t;
  size_t p_n;
  /* The sample that ended the last tick's drain (for out-of-order
   * messages). */
  bool stopped;
  double stop_t;
  uint16_t stop_channel;
  int64_t k;
  tw_err failed; /* sticky */
};

void tw_graph_inputs_close(tw_graph_inputs *in) {
  if (in == NULL)
    return;
  tw_trace_iter_free(in->it);
  tw_trace_reader_close(in->r);
  tw_free(in->in);
  tw_free(in->held);
  tw_free(in->value);
  tw_free(in->names);
  tw_free(in->path);
  tw_free(in);
}

/* The value of key in a channel's metadata, or NULL. */
static const char *channel_meta(const tw_trace_channel *ch, const char *key) {
  for (size_t i = 0; i < ch->n_metadata; i++)
    if (ch->metadata[i].key != NULL && strcmp(ch->metadata[i].key, key) == 0)
      return ch->metadata[i].value;
  return NULL;
}

/* The topic map entry of input name (NULL if none), after checking every
 * entry names an input once. */
static int map_check(const tw_graph *g, const char *path,
                     const char *const *map, size_t nmap, tw_err *err) {
  for (size_t m = 0; m < nmap; m++) {
    const char *eq = strchr(map[m], '=');
    if (eq == NULL || eq == map[m] || eq[1] == '\0')
      return tw_err_set(err, TW_EINVAL,
                        "%s: input map entry '%s' is not NAME=TOPIC", path,
                        map[m]);
    size_t nl = (size_t)(eq - map[m]);
    bool found = false;
    for (size_t i = 0; i < g->ninputs && !found; i++)
      found = strlen(g->inputs[i].name) == nl &&
              strncmp(g->inputs[i].name, map[m], nl) == 0;
    if (!found)
      return tw_err_set(err, TW_EINVAL,
                        "%s: input map entry '%s': graph '%s' has no input "
                        "'%.*s'",
                        path, map[m], g->name, (int)nl, map[m]);
    for (size_t o = 0; o < m; o++)
      if (strncmp(map[o], map[m], nl + 1) == 0)
        return tw_err_set(err, TW_EINVAL,
                          "%s: input '%.*s' is mapped twice ('%s', '%s')", path,
                          (int)nl, map[m], map[o], map[m]);
  }
  return TW_OK;
}

static const char *map_topic(const char *name, const char *const *map,
                             size_t nmap) {
  size_t nl = strlen(name);
  for (size_t m = 0; m < nmap; m++)
    if (strncmp(map[m], name, nl) == 0 && map[m][nl] == '=')
      return map[m] + nl + 1;
  return NULL;
}

/* Finds and checks the channel of input i. */
static int resolve_input(tw_graph_inputs *in, const tw_graph *g, size_t i,
                         const char *const *map, size_t nmap, tw_err *err) {
  const char *name = g->inputs[i].name;
  const char *mapped = map_topic(name, map, nmap);
  const tw_trace_channel *ch = NULL;
  tw_buf t1 = TW_BUF_INIT, t2 = TW_BUF_INIT;
  int rc = TW_OK;
  if (mapped != NULL) {
    ch = tw_trace_reader_channel_find(in->r, mapped);
    if (ch == NULL)
      rc = tw_err_set(err, TW_ENOENT,
                      "%s: input '%s': no channel '%s' (as mapped)", in->path,
                      name, mapped);
  } else if (tw_buf_printf(&t1, "/inputs/%s", name) != TW_OK ||
             tw_buf_printf(&t2, "/%s", name) != TW_OK) {
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", in->path);
  } else {
    ch = tw_trace_reader_channel_find(in->r, t1.data);
    if (ch == NULL)
      ch = tw_trace_reader_channel_find(in->r, t2.data);
    if (ch == NULL)
      ch = tw_trace_reader_channel_find(in->r, name);
    if (ch == NULL)
      rc = tw_err_set(err, TW_ENOENT,
                      "%s: input '%s': no channel '%s', '%s' or '%s'", in->path,
                      name, t1.data, t2.data, name);
  }
  tw_buf_fini(&t1);
  tw_buf_fini(&t2);
  if (rc != TW_OK)
    return rc;
  in_port *p = &in->in[i];
  p->topic = ch->topic;
  p->channel = ch->id;
  if (strcmp(ch->message_encoding, TW_TRACE_MESSAGE_JSON) != 0 &&
      strcmp(ch->message_encoding, TW_TRACE_MESSAGE_CDR) != 0)
    return tw_err_set(err, TW_EINVAL,
                      "%s: input '%s' (channel '%s'): message encoding '%s' "
                      "is not a port sample's ('json' or 'cdr')",
                      in->path, name, ch->topic, ch->message_encoding);
  const char *size = channel_meta(ch, "twin.size");
  char want[32];
  (void)snprintf(want, sizeof want, "%zu", p->size);
  if (size != NULL && strcmp(size, want) != 0)
    return tw_err_set(err, TW_EINVAL,
                      "%s: input '%s' (channel '%s'): samples of %s values, "
                      "the input has %zu",
                      in->path, name, ch->topic, size, p->size);
  const char *unit = channel_meta(ch, "twin.unit");
  const char *iu = tw_graph_input_unit(g, i);
  if (unit != NULL && unit[0] != '\0' && iu[0] != '\0' && strcmp(unit, iu) != 0)
    return tw_err_set(err, TW_EUNIT,
                      "%s: input '%s' (channel '%s'): samples in '%s', the "
                      "input in '%s'",
                      in->path, name, ch->topic, unit, iu);
  return TW_OK;
}

/* Copies the input names so the reader outlives nothing of g. */
static int copy_names(tw_graph_inputs *in, const tw_graph *g) {
  size_t total = 1;
  for (size_t i = 0; i < g->ninputs; i++)
    total += strlen(g->inputs[i].name) + 1;
  in->names = tw_calloc(total, 1);
  if (in->names == NULL)
    return TW_ENOMEM;
  char *p = in->names;
  for (size_t i = 0; i < g->ninputs; i++) {
    size_t n = strlen(g->inputs[i].name) + 1;
    memcpy(p, g->inputs[i].name, n);
    in->in[i].name = p;
    p += n;
  }
  return TW_OK;
}

int tw_graph_inputs_open(const tw_graph *g, const char *path,
                         const char *const *map, size_t nmap,
                         tw_graph_inputs **out, tw_err *err) {
  int rc = map_check(g, path, map, nmap, err);
  if (rc != TW_OK)
    return rc;
  tw_graph_inputs *in = tw_calloc(1, sizeof *in);
  if (in == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  tw_err_init(&in->failed);
  in->dt = g->dt;
  in->nin = g->ninputs;
  in->width = g->in_width;
  in->cap = 1;
  for (size_t i = 0; i < g->ninputs; i++)
    if (g->inputs[i].size > in->cap)
      in->cap = g->inputs[i].size;
  in->path = tw_strdup(path);
  in->in = tw_calloc(in->nin ? in->nin : 1, sizeof *in->in);
  in->held = tw_calloc(in->width ? in->width : 1, sizeof(double));
  in->value = tw_calloc(in->cap, sizeof(double));
  if (in->path == NULL || in->in == NULL || in->held == NULL ||
      in->value == NULL || copy_names(in, g) != TW_OK) {
    tw_graph_inputs_close(in);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  }
  for (size_t i = 0; i < in->nin; i++) {
    in->in[i].size = g->inputs[i].size;
    in->in[i].offset = g->inputs[i].offset;
  }
  rc = tw_trace_reader_open(path, NULL, &in->r, err);
  for (size_t i = 0; i < in->nin && rc == TW_OK; i++)
    rc = resolve_input(in, g, i, map, nmap, err);
  /* One iterator over the channels used, each listed once. */
  uint16_t *ids = NULL;
  size_t nids = 0;
  if (rc == TW_OK && in->nin > 0) {
    ids = tw_calloc(in->nin, sizeof *ids);
    if (ids == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; ids != NULL && i < in->nin; i++) {
      bool seen = false;
      for (size_t j = 0; j < nids && !seen; j++)
        seen = ids[j] == in->in[i].channel;
      if (!seen)
        ids[nids++] = in->in[i].channel;
    }
  }
  if (rc == TW_OK && nids > 0) {
    tw_trace_query q = {ids, nids, 0, UINT64_MAX};
    rc = tw_trace_iter_new(in->r, &q, &in->it, err);
  }
  in->eof = in->it == NULL; /* no inputs: nothing to read */
  tw_free(ids);
  if (rc != TW_OK) {
    tw_graph_inputs_close(in);
    return rc;
  }
  *out = in;
  return TW_OK;
}

/* The first input reading channel ch (there is one). */
static const in_port *port_of(const tw_graph_inputs *in, uint16_t ch) {
  for (size_t i = 0; i < in->nin; i++)
    if (in->in[i].channel == ch)
      return &in->in[i];
  return &in->in[0];
}

/* Fetches and decodes the next message into the look-ahead, or sets eof. */
static int fetch(tw_graph_inputs *in, tw_err *err) {
  tw_trace_message msg;
  tw_err e;
  tw_err_init(&e);
  int rc = tw_trace_iter_next(in->it, &msg, &e);
  if (rc < 0) {
    /* The reader's messages name the file; say so when one does not. */
    if (strstr(e.msg, in->path) != NULL)
      return tw_err_set(err, rc, "%s", e.msg);
    return tw_err_set(err, rc, "%s: %s", in->path, e.msg);
  }
  if (rc == 0) {
    in->eof = true;
    return TW_OK;
  }
  const tw_trace_channel *ch =
      tw_trace_reader_channel_get(in->r, msg.channel_id);
  const in_port *p = port_of(in, msg.channel_id);
  size_t n = 0;
  rc = ch != NULL ? tw_trace_port_decode(ch, msg.data, msg.len, &in->p_t,
                                         in->value, in->cap, &n, &e)
                  : tw_err_set(&e, TW_EPARSE, "unknown channel %u",
                               (unsigned)msg.channel_id);
  if (rc == TW_ERANGE)
    return tw_err_set(err, TW_EINVAL,
                      "%s: input '%s' (channel '%s'): sample %lu (log time "
                      "%llu ns) has %zu values, the input has %zu",
                      in->path, p->name, p->topic, (unsigned long)msg.sequence,
                      (unsigned long long)msg.log_time, n, p->size);
  if (rc != TW_OK)
    return tw_err_set(err, rc == TW_ENOTSUP ? TW_EINVAL : rc,
                      "%s: input '%s' (channel '%s'): sample %lu (log time "
                      "%llu ns): %s",
                      in->path, p->name, p->topic, (unsigned long)msg.sequence,
                      (unsigned long long)msg.log_time, e.msg);
  if (!isfinite(in->p_t))
    return tw_err_set(err, TW_EPARSE,
                      "%s: input '%s' (channel '%s'): sample %lu (log time "
                      "%llu ns) has no finite time",
                      in->path, p->name, p->topic, (unsigned long)msg.sequence,
                      (unsigned long long)msg.log_time);
  in->pending = true;
  in->p_channel = msg.channel_id;
  in->p_sequence = msg.sequence;
  in->p_n = n;
  return TW_OK;
}

/* Puts the look-ahead sample into the held row of every input reading its
 * channel, for tick k. */
static int apply(tw_graph_inputs *in, int64_t k, tw_err *err) {
  for (size_t i = 0; i < in->nin; i++) {
    in_port *p = &in->in[i];
    if (p->channel != in->p_channel)
      continue;
    if (in->p_n != p->size)
      return tw_err_set(err, TW_EINVAL,
                        "%s: input '%s' (channel '%s'): the sample at t=%s s "
                        "has %zu values, the input has %zu",
                        in->path, p->name, p->topic, show(in->p_t).s, in->p_n,
                        p->size);
    if (p->have && in->p_t < p->last_t)
      return tw_err_set(err, TW_EINVAL,
                        "%s: input '%s' (channel '%s'): the sample at t=%s s "
                        "comes after one at t=%s s; samples must be logged "
                        "in time order",
                        in->path, p->name, p->topic, show(in->p_t).s,
                        show(p->last_t).s);
    if (k > 0 && in->stopped &&
        in->p_t <= ((double)(k - 1) + TIME_TOLERANCE) * in->dt)
      return tw_err_set(
          err, TW_EINVAL,
          "%s: input '%s' (channel '%s'): the sample at t=%s s is logged "
          "after one at t=%s s (channel '%s'), so tick %lld did not see "
          "it; samples must be logged in time order",
          in->path, p->name, p->topic, show(in->p_t).s, show(in->stop_t).s,
          port_of(in, in->stop_channel)->topic, (long long)(k - 1));
    memcpy(in->held + p->offset, in->value, p->size * sizeof(double));
    p->have = true;
    p->last_t = in->p_t;
  }
  in->pending = false;
  return TW_OK;
}

static int read_tick(tw_graph_inputs *in, double *row, tw_err *err) {
  int64_t k = in->k;
  double tk = (double)k * in->dt;
  double lim = ((double)k + TIME_TOLERANCE) * in->dt;
  int rc = TW_OK;
  for (;;) {
    if (!in->pending && !in->eof && (rc = fetch(in, err)) != TW_OK)
      return rc;
    if (!in->pending || in->p_t > lim)
      break;
    if ((rc = apply(in, k, err)) != TW_OK)
      return rc;
  }
  in->stopped = in->pending;
  in->stop_t = in->p_t;
  in->stop_channel = in->p_channel;
  for (size_t i = 0; i < in->nin; i++) {
    const in_port *p = &in->in[i];
    if (p->have)
      continue;
    if (in->pending && in->p_channel == p->channel)
      return tw_err_set(err, TW_EINVAL,
                        "%s: input '%s' (channel '%s'): no sample at or before "
                        "tick %lld (t=%s s); the first is at t=%s s",
                        in->path, p->name, p->topic, (long long)k, show(tk).s,
                        show(in->p_t).s);
    return tw_err_set(err, TW_EINVAL,
                      "%s: input '%s' (channel '%s'): no sample at or before "
                      "tick %lld (t=%s s)",
                      in->path, p->name, p->topic, (long long)k, show(tk).s);
  }
  if (in->width > 0 && row != NULL)
    memcpy(row, in->held, in->width * sizeof(double));
  in->k++;
  return TW_OK;
}

int tw_graph_inputs_read(tw_graph_inputs *in, int64_t ticks, double *inputs,
                         tw_err *err) {
  if (in->failed.code != TW_OK)
    return tw_err_set(err, in->failed.code, "%s", in->failed.msg);
  if (ticks < 0 || (ticks > 0 && in->width > 0 && inputs == NULL))
    return tw_err_set(err, TW_EINVAL,
                      "%s: %lld ticks into %p: need ticks >= 0 and room for "
                      "them",
                      in->path, (long long)ticks, (void *)inputs);
  int rc = TW_OK;
  for (int64_t j = 0; j < ticks && rc == TW_OK; j++)
    rc = read_tick(in, in->width > 0 ? inputs + (size_t)j * in->width : NULL,
                   &in->failed);
  if (rc != TW_OK)
    return tw_err_set(err, rc, "%s", in->failed.msg);
  return TW_OK;
}

int64_t tw_graph_inputs_tick(const tw_graph_inputs *in) { return in->k; }

int tw_graph_read_inputs(const tw_graph *g, const char *path,
                         const char *const *map, size_t nmap, int64_t ticks,
                         double *inputs, tw_err *err) {
  tw_graph_inputs *in = NULL;
  int rc = tw_graph_inputs_open(g, path, map, nmap, &in, err);
  if (rc == TW_OK)
    rc = tw_graph_inputs_read(in, ticks, inputs, err);
  tw_graph_inputs_close(in);
  return rc;
}
