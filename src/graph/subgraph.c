/*
 * subgraph.c - a graph file as one block of another graph ("model":
 * "graph:PATH"), so twins nest: loading it as part of the including
 * file's chain, and the block that wraps its composite (composite.c).
 *
 *   inputs   the sub-graph's inputs, one port each (with their units)
 *   outputs  its outputs, one port each (units of the ports they name)
 *   params   its blocks' parameters, "inner_block.param"
 *   state    its composite's state
 *
 * Invariants: the block owns the sub-graph (freed with it). The
 * sub-graph's dt is the block's period (every * the including dt), and its
 * tick is the block's step count (k / every), so its own multi-rate blocks
 * keep their phase at any outer rate. An output feeds through from an input
 * exactly when a chain of connections and feed-through ports joins them
 * inside the sub-graph, so algebraic-loop detection in the including graph
 * is as exact as for any block. A file never includes itself, directly or
 * not, and files nest at most TW__GRAPH_MAX_DEPTH deep.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/file.h"

/* --- The block ----------------------------------------------------------- */

typedef struct sub {
  tw_graph *g;    /* owned */
  unsigned every; /* ticks of the including graph per step */
  tw_port *inputs, *outputs;
  bool *ft; /* noutputs x ninputs */
  tw_block_desc desc;
} sub;

static void sub_free(void *p) {
  sub *s = p;
  if (s == NULL)
    return;
  tw_graph_free(s->g);
  tw_free(s->inputs);
  tw_free(s->outputs);
  tw_free(s->ft);
  tw_free(s);
}

static void sub_describe(const void *p, tw_block_desc *d) {
  const sub *s = p;
  *d = s->desc;
}

static void sub_defaults(const void *p, double *theta) {
  const sub *s = p;
  (void)tw_block_default_params(s->g->composite, theta, NULL);
}

static int sub_init(void *p, const double *theta, double *x0, tw_err *err) {
  sub *s = p;
  return tw_block_init(s->g->composite, theta, x0, err);
}

static int sub_step(void *p, const tw_step_args *a, tw_err *err) {
  sub *s = p;
  tw_step_args in = *a;
  in.dt = s->g->dt;
  in.k = a->k / s->every;
  return tw_block_step(s->g->composite, &in, err);
}

static int sub_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  sub *s = p;
  tw_vjp_args in = *a;
  in.dt = s->g->dt;
  in.k = a->k / s->every;
  return tw_block_step_vjp(s->g->composite, &in, err);
}

static int sub_init_vjp(void *p, const double *theta, const double *gx0,
                        double *gtheta, tw_err *err) {
  sub *s = p;
  return tw_block_init_vjp(s->g->composite, theta, gx0, gtheta, err);
}

static void sub_usage(const void *p, tw_block_usage *u) {
  const sub *s = p;
  tw_block_get_usage(s->g->composite, u);
}

static const tw_block_ops sub_ops = {
    .kind = "graph",
    .describe = sub_describe,
    .default_params = sub_defaults,
    .init = sub_init,
    .step = sub_step,
    .step_vjp = sub_vjp,
    .free = sub_free,
    .usage = sub_usage,
    .init_vjp = sub_init_vjp,
};

/* Does output port o of d read input port q within the step? */
static bool reads(const tw_block_desc *d, size_t o, size_t q) {
  if (d->feedthrough_none)
    return false;
  return d->feedthrough == NULL || d->feedthrough[o * d->ninputs + q];
}

/* s->ft: which graph inputs each graph output depends on within a tick.
 * Per output port of every block, the set of graph inputs it reads,
 * computed in the schedule's order: the sources a port reads through
 * feed-through are ordered before its block; the others contribute
 * nothing. */
static int feedthrough(sub *s, tw_err *err) {
  const tw_graph *g = s->g;
  size_t nin = g->ninputs, nports = 0;
  size_t *base = tw_calloc(g->nblocks + 1, sizeof *base);
  for (size_t i = 0; base != NULL && i < g->nblocks; i++) {
    base[i] = nports;
    nports += g->blocks[i].desc->noutputs;
  }
  bool *dep = tw_calloc(nports * nin + 1, sizeof *dep);
  s->ft = tw_calloc(g->noutputs * nin + 1, sizeof *s->ft);
  if (base == NULL || dep == NULL || s->ft == NULL) {
    tw_free(base);
    tw_free(dep);
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  }
  for (size_t j = 0; j < g->nblocks; j++) {
    size_t i = g->order[j];
    const tw__gblock *b = &g->blocks[i];
    const tw_block_desc *d = b->desc;
    for (size_t o = 0; o < d->noutputs; o++) {
      bool *row = dep + (base[i] + o) * nin;
      for (size_t q = 0; q < d->ninputs; q++) {
        const tw__gsrc *src = &b->src[q];
        if (!reads(d, o, q) || src->kind == TW__SRC_NONE)
          continue;
        if (src->kind == TW__SRC_INPUT) {
          row[src->index] = true;
          continue;
        }
        const tw_block_desc *sd = g->blocks[src->index].desc;
        const bool *from =
            dep + (base[src->index] + tw__graph_port_at(sd, src->offset)) * nin;
        for (size_t k = 0; k < nin; k++)
          row[k] = row[k] || from[k];
      }
    }
  }
  bool any = false;
  for (size_t o = 0; o < g->noutputs; o++) {
    const tw__gio *io = &g->outputs[o];
    const tw_block_desc *d = g->blocks[io->block].desc;
    const bool *from =
        dep + (base[io->block] + tw__graph_port_at(d, io->from)) * nin;
    for (size_t k = 0; k < nin; k++) {
      s->ft[o * nin + k] = from[k];
      any = any || from[k];
    }
  }
  s->desc.feedthrough = s->ft;
  s->desc.feedthrough_none = !any;
  tw_free(base);
  tw_free(dep);
  return TW_OK;
}

/* Wraps g (owned from here on, also on failure) as the block name. */
static int wrap(tw_graph *g, unsigned every, const char *name, tw_block **out,
                tw_err *err) {
  sub *s = tw_calloc(1, sizeof *s);
  if (s == NULL) {
    tw_graph_free(g);
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  }
  s->g = g;
  s->every = every;
  s->inputs = tw_calloc(g->ninputs + 1, sizeof *s->inputs);
  s->outputs = tw_calloc(g->noutputs + 1, sizeof *s->outputs);
  if (s->inputs == NULL || s->outputs == NULL) {
    sub_free(s);
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  }
  for (size_t i = 0; i < g->ninputs; i++)
    s->inputs[i] = (tw_port){.name = g->inputs[i].name,
                             .unit = g->inputs[i].unit,
                             .size = g->inputs[i].size,
                             .dtype = g->inputs[i].dtype};
  for (size_t o = 0; o < g->noutputs; o++) { /* as the port it names */
    const tw__gio *io = &g->outputs[o];
    const tw_block_desc *d = g->blocks[io->block].desc;
    s->outputs[o] = d->outputs[tw__graph_port_at(d, io->from)];
    s->outputs[o].name = io->name;
  }
  s->desc = *tw_block_describe(g->composite);
  s->desc.kind = "graph";
  s->desc.inputs = s->inputs;
  s->desc.ninputs = g->ninputs;
  s->desc.outputs = s->outputs;
  s->desc.noutputs = g->noutputs;
  int rc = feedthrough(s, err);
  if (rc != TW_OK) {
    sub_free(s);
    return rc;
  }
  return tw_block_new(&sub_ops, s, name, out, err);
}

/* --- Loading ------------------------------------------------------------- */

/* Appends the chain of files from the outermost to a (its display
 * names), then "-> last". */
static void put_chain(tw_buf *b, const tw__gchain *c, const char *last) {
  if (c == NULL) {
    (void)tw_buf_printf(b, "%s", last);
    return;
  }
  put_chain(b, c->up, c->name);
  (void)tw_buf_printf(b, " -> %s", last);
}

/* The error of a chain that cannot go on: the files, outermost first. */
static int chain_error(tw_err *err, int code, const char *what,
                       const tw__gchain *c, const char *last) {
  tw_buf b = TW_BUF_INIT;
  put_chain(&b, c, last);
  int rc = tw_err_set(err, code, "%s: %s", what,
                      b.data != NULL ? b.data : "out of memory");
  tw_buf_fini(&b);
  return rc;
}

/* Reads the sub-graph's file and loads it below s->chain. */
static int load_file(tw__gsub *s, const char *full, tw_graph **out,
                     tw_err *err) {
  unsigned depth = s->chain != NULL ? s->chain->depth + 1 : 1;
  if (depth > TW__GRAPH_MAX_DEPTH) {
    char what[64];
    (void)snprintf(what, sizeof what, "sub-graphs nest more than %d deep",
                   TW__GRAPH_MAX_DEPTH);
    return chain_error(err, TW_ELIMIT, what, s->chain, full);
  }
  char real[PATH_MAX];
  struct stat st;
  if (realpath(full, real) == NULL || stat(real, &st) != 0)
    return tw_err_sys(err, errno, "%s: cannot open", full);
  /* Only regular files: a FIFO or a terminal would wait for input. */
  if (!S_ISREG(st.st_mode))
    return tw_err_set(err, TW_EINVAL, "%s: not a regular file", full);
  for (const tw__gchain *c = s->chain; c != NULL; c = c->up)
    if (c->real != NULL && strcmp(c->real, real) == 0)
      return chain_error(err, TW_EINVAL, "sub-graphs include each other",
                         s->chain, full);
  tw_buf text = TW_BUF_INIT;
  int rc = tw_file_read_all(full, TW_JSON_MAX_FILE, &text, err);
  char *dir = rc == TW_OK ? tw_strdup(full) : NULL;
  if (rc == TW_OK && dir == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  if (rc != TW_OK) {
    tw_buf_fini(&text);
    return rc;
  }
  tw__gchain self = {real, full, s->chain, depth};
  tw_err e;
  tw_err_init(&e);
  rc = tw__graph_parse_in(text.data, text.len, &self, dirname(dir), s->opts,
                          s->diags, &s->ndiags, out, &e);
  if (rc == TW_EPARSE && s->diags != NULL &&
      tw_buf_printf(s->diags, "%s\n", e.msg) != TW_OK)
    rc = TW_ENOMEM;
  if (rc == TW_EPARSE)
    s->ndiags = 1; /* its one syntax error, now a diagnostic line */
  if (rc == TW_ENOMEM)
    tw_err_set(err, rc, "graph: out of memory");
  else if (rc == TW_EPARSE || rc == TW_EVALIDATE)
    tw_err_set(err, rc, "sub-graph '%s' does not load (%u error%s in %s)",
               s->path, s->ndiags, s->ndiags == 1 ? "" : "s", full);
  else if (rc != TW_OK)
    tw_err_set(err, rc, "%s", e.msg);
  tw_free(dir);
  tw_buf_fini(&text);
  return rc;
}

int tw__graph_subgraph_block(tw__gsub *s, tw_block **out, tw_err *err) {
  s->ndiags = 0;
  /* By name, as tw_graph_load: never a device or a kernel file. */
  size_t n = strlen(s->path);
  if (!(n > 5 && strcmp(s->path + n - 5, ".json") == 0) &&
      !(n > 4 && strcmp(s->path + n - 4, ".twg") == 0))
    return tw_err_set(err, TW_EINVAL,
                      "sub-graph '%s': a graph file's name ends in .json or "
                      ".twg",
                      s->path);
  tw_buf full = TW_BUF_INIT;
  int rc = s->path[0] == '/'
               ? tw_buf_printf(&full, "%s", s->path)
               : tw_buf_printf(&full, "%s/%s", s->base_dir, s->path);
  if (rc != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  tw_graph *g = NULL;
  rc = load_file(s, full.data, &g, err);
  tw_buf_fini(&full);
  if (rc != TW_OK)
    return rc;
  double r = g->dt / s->period;
  if (!(fabs(r - 1) <= 1e-9)) {
    rc = tw_err_set(err, TW_EINVAL,
                    "sub-graph '%s' has dt = %g s, but the block steps every "
                    "%g s (%u x dt); the two must be equal",
                    s->path, g->dt, s->period, s->every);
    tw_graph_free(g);
    return rc;
  }
  const tw_block_desc *d = tw_block_describe(g->composite);
  for (size_t p = 0; p < d->nparams; p++)
    if (strlen(s->name) + 1 + strlen(d->params[p].name) >= TW__GRAPH_NAME_MAX) {
      rc = tw_err_set(err, TW_ELIMIT,
                      "sub-graph '%s': parameter '%s.%s' has a name longer "
                      "than %d characters",
                      s->path, s->name, d->params[p].name,
                      TW__GRAPH_NAME_MAX - 1);
      tw_graph_free(g);
      return rc;
    }
  return wrap(g, s->every, s->name, out, err);
}
