/*
 * composite.c - a whole graph as one block, so a run is tw_sim_forward and
 * a gradient is tw_sim_grad with its checkpoint schedules: one tick of the
 * graph is one step of this block.
 *
 *   state   every block's state, then the held outputs of the blocks that
 *           step every r > 1 ticks (what consumers read between steps)
 *   inputs  the graph's inputs (one row per tick)
 *   outputs the graph's outputs
 *   params  every block's parameters, ports named "block.param"
 *
 * The step runs the schedule of graph_int.h: outputs that do not feed
 * through first (prepass), then the blocks in topological order. Its VJP
 * re-runs the tick to recover each block's inputs, then walks the blocks in
 * reverse order: a block's output cotangent (from the graph's outputs, its
 * consumers and its held-output state) and its state cotangent go through
 * its VJP, whose input cotangent flows to the sources. A prepass block
 * runs after some of its consumers in that reverse walk; what they send it
 * late goes through a second VJP call with only that cotangent (the VJP is
 * linear in it, and those outputs do not read the inputs).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"

typedef struct comp {
  tw_graph *g;
  size_t *xoff; /* per block: offset of its state in x */
  size_t *hoff; /* per block: offset of its held outputs, or SIZE_MAX */
  size_t *toff; /* per block: offset of its parameters in theta */
  bool *active; /* per block, this tick */
  bool *done;   /* per block, in the reverse walk */
  double *gy, *late, *gu, *gx; /* per block scratch, at yoff / uoff / xoff */
  size_t *yoff, *uoff;
  tw_port *state, *params;
  char (*names)[TW__GRAPH_NAME_MAX];
  tw_port in_port, out_port;
  size_t *poff;   /* per block: index of its first parameter port */
  double *bounds; /* 2 * ntheta: the blocks' parameter bounds, min then max */
  tw_block_desc desc;
} comp;

static void comp_free(void *p) {
  comp *c = p;
  if (c == NULL)
    return;
  tw_free(c->xoff);
  tw_free(c->hoff);
  tw_free(c->toff);
  tw_free(c->active);
  tw_free(c->done);
  tw_free(c->gy);
  tw_free(c->late);
  tw_free(c->gu);
  tw_free(c->gx);
  tw_free(c->yoff);
  tw_free(c->uoff);
  tw_free(c->state);
  tw_free(c->params);
  tw_free(c->names);
  tw_free(c->poff);
  tw_free(c->bounds);
  tw_free(c);
}

static void comp_describe(const void *p, tw_block_desc *d) {
  const comp *c = p;
  *d = c->desc;
}

static void comp_defaults(const void *p, double *theta) {
  const comp *c = p;
  for (size_t i = 0; i < c->g->nblocks; i++)
    memcpy(theta + c->toff[i], c->g->blocks[i].theta,
           c->g->blocks[i].desc->ntheta * sizeof(double));
}

static int comp_init(void *p, const double *theta, double *x0, tw_err *err) {
  const comp *c = p;
  for (size_t i = 0; i < c->g->nblocks; i++) {
    tw__gblock *b = &c->g->blocks[i];
    int rc = tw_block_init(b->block, theta + c->toff[i], x0 + c->xoff[i], err);
    if (rc != TW_OK)
      return rc;
    if (c->hoff[i] != SIZE_MAX)
      memset(x0 + c->hoff[i], 0, b->desc->ny * sizeof(double));
  }
  return TW_OK;
}

static int comp_init_vjp(void *p, const double *theta, const double *gx0,
                         double *gtheta, tw_err *err) {
  const comp *c = p;
  for (size_t i = 0; i < c->g->nblocks; i++) {
    int rc = tw_block_init_vjp(c->g->blocks[i].block, theta + c->toff[i],
                               gx0 + c->xoff[i], gtheta + c->toff[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK; /* held outputs start at 0 whatever theta is */
}

/* Where block i's outputs are read from in this tick. */
static const double *outputs_of(const comp *c, size_t i, const double *x,
                                const double *xn) {
  if (c->hoff[i] == SIZE_MAX)
    return c->g->blocks[i].y;
  return c->active[i] ? xn + c->hoff[i] : x + c->hoff[i];
}

static double *out_buf(const comp *c, size_t i, double *xn) {
  return c->hoff[i] == SIZE_MAX ? c->g->blocks[i].y : xn + c->hoff[i];
}

/* Fills block i's inputs for this tick. */
static void gather(const comp *c, size_t i, const double *u, const double *x,
                   const double *xn) {
  tw__gblock *b = &c->g->blocks[i];
  for (size_t p = 0; p < b->desc->ninputs; p++) {
    const tw__gsrc *s = &b->src[p];
    if (s->kind == TW__SRC_INPUT) {
      if (u != NULL)
        memcpy(b->u + s->dst, u + s->offset, s->size * sizeof(double));
      else
        memset(b->u + s->dst, 0, s->size * sizeof(double));
    } else if (s->kind == TW__SRC_BLOCK) {
      memcpy(b->u + s->dst, outputs_of(c, s->index, x, xn) + s->offset,
             s->size * sizeof(double));
    }
  }
}

/* The blocks of one level, [first + begin, first + end) of the order. */
typedef struct level_job {
  comp *c;
  const tw_step_args *a;
  size_t first;
} level_job;

static int step_range(void *arg, size_t chunk, size_t begin, size_t end,
                      tw_err *err) {
  (void)chunk;
  const level_job *job = arg;
  comp *c = job->c;
  const tw_step_args *a = job->a;
  tw_graph *g = c->g;
  for (size_t j = job->first + begin; j < job->first + end; j++) {
    size_t i = g->order[j];
    tw__gblock *b = &g->blocks[i];
    if (!c->active[i])
      continue;
    gather(c, i, a->u, a->x, a->x_next);
    tw_step_args s = {a->t,
                      a->dt * b->every,
                      a->k,
                      a->x + c->xoff[i],
                      b->u,
                      a->theta + c->toff[i],
                      a->x_next + c->xoff[i],
                      out_buf(c, i, a->x_next)};
    uint64_t c0 = g->account_cpu ? tw_clock_thread_cpu_ns() : 0;
    uint64_t t0 = tw_clock_mono_ns();
    int rc = tw_block_step(b->block, &s, err);
    b->wall_ns += tw_clock_mono_ns() - t0;
    if (g->account_cpu)
      b->cpu_ns += tw_clock_thread_cpu_ns() - c0;
    b->steps++;
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* One tick: x -> xn, outputs into y (may be NULL). */
static int tick(comp *c, const tw_step_args *a, tw_err *err) {
  tw_graph *g = c->g;
  double dt = a->dt;
  for (size_t i = 0; i < g->nblocks; i++)
    c->active[i] = a->k % g->blocks[i].every == 0;
  double *xn = a->x_next;
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    if (!c->active[i]) { /* state and held outputs carry over */
      memcpy(xn + c->xoff[i], a->x + c->xoff[i], b->desc->nx * sizeof(double));
      if (c->hoff[i] != SIZE_MAX)
        memcpy(xn + c->hoff[i], a->x + c->hoff[i],
               b->desc->ny * sizeof(double));
      continue;
    }
    if (!b->prepass)
      continue;
    tw_step_args s = {a->t,
                      dt * b->every,
                      a->k,
                      a->x + c->xoff[i],
                      b->u,
                      a->theta + c->toff[i],
                      xn + c->xoff[i],
                      out_buf(c, i, xn)};
    int rc = tw_block_step(b->block, &s, err);
    if (rc != TW_OK)
      return rc;
  }
  for (size_t l = 0; l < g->nlevels; l++) {
    size_t first = g->level_start[l], n = g->level_start[l + 1] - first;
    level_job job = {c, a, first};
    int rc = g->pool != NULL && n > 1
                 ? tw_pool_parallel_for(g->pool, n, 1, step_range, &job, err)
                 : step_range(&job, 0, 0, n, err);
    if (rc != TW_OK)
      return rc;
  }
  if (g->max_cpu_ms > 0 || g->max_memory > 0) {
    int rc = tw__graph_check_budget(g, a->k, err);
    if (rc != TW_OK)
      return rc;
  }
  if (a->y != NULL)
    for (size_t o = 0; o < g->noutputs; o++) {
      const tw__gio *io = &g->outputs[o];
      memcpy(a->y + io->offset, outputs_of(c, io->block, a->x, xn) + io->from,
             io->size * sizeof(double));
    }
  return TW_OK;
}

static int comp_step(void *p, const tw_step_args *a, tw_err *err) {
  return tick(p, a, err);
}

/* Adds g (n values) into the cotangent of what block i's output offset
 * off is read from: its output cotangent, or its held-output state. */
static void send(comp *c, size_t i, size_t off, const double *g, size_t n,
                 double *gx) {
  double *dst;
  if (!c->active[i])
    dst = gx + c->hoff[i] + off; /* held: the state is what was read */
  else
    dst = (c->done[i] ? c->late : c->gy) + c->yoff[i] + off;
  for (size_t k = 0; k < n; k++)
    dst[k] += g[k];
}

/* Block i's VJP at this tick for the cotangents gxn (of its next state)
 * and gy (of its outputs): its input cotangent into gu (may be NULL), its
 * parameters' added into a->gtheta, its state's added into gx. xn is the
 * re-run tick's next state (for the sources of its inputs). */
static int block_vjp(comp *c, size_t i, const tw_vjp_args *a, const double *xn,
                     const double *gxn, const double *gy, double *gu,
                     double *gx, tw_err *err) {
  tw__gblock *b = &c->g->blocks[i];
  gather(c, i, a->u, a->x, xn);
  tw_vjp_args v = {a->t,
                   a->dt * b->every,
                   a->k,
                   a->x + c->xoff[i],
                   b->u,
                   a->theta + c->toff[i],
                   gxn,
                   gy,
                   c->gx + c->xoff[i] + 2 * c->desc.nx,
                   gu,
                   a->gtheta != NULL ? a->gtheta + c->toff[i] : NULL,
                   a->want != NULL ? a->want + c->poff[i] : NULL};
  uint64_t c0 = c->g->account_cpu ? tw_clock_thread_cpu_ns() : 0;
  uint64_t t0 = tw_clock_mono_ns();
  int rc = tw_block_step_vjp(b->block, &v, err);
  b->wall_ns += tw_clock_mono_ns() - t0;
  if (c->g->account_cpu)
    b->cpu_ns += tw_clock_thread_cpu_ns() - c0;
  b->vjps++;
  if (rc != TW_OK)
    return rc;
  for (size_t k = 0; k < b->desc->nx; k++)
    gx[c->xoff[i] + k] += v.gx[k];
  return TW_OK;
}

/* The reverse walk of a tick whose forward ran last (tick left every
 * block's inputs in place and its next state in the scratch xn). */
static int reverse(comp *c, const tw_vjp_args *a, tw_err *err);

static int comp_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  comp *c = p;
  const tw_block_desc *d = &c->desc;
  /* Re-run the tick for every block's inputs (into a scratch x_next). */
  double *xn = c->gx + d->nx; /* scratch: nx values after gx */
  tw_step_args s = {a->t, a->dt, a->k, a->x, a->u, a->theta, xn, NULL};
  int rc = tick(c, &s, err);
  if (rc != TW_OK)
    return rc;
  return reverse(c, a, err);
}

/* linearize: the step itself, keeping what the walk needs (the blocks'
 * inputs stay in their buffers; the next state is copied to the scratch),
 * so pullback need not run the tick again. */
static int comp_linearize(void *p, const tw_step_args *a, tw_err *err) {
  comp *c = p;
  int rc = tick(c, a, err);
  if (rc == TW_OK)
    memcpy(c->gx + c->desc.nx, a->x_next, c->desc.nx * sizeof(double));
  return rc;
}

static int comp_pullback(void *p, const tw_vjp_args *a, tw_err *err) {
  return reverse(p, a, err);
}

static int reverse(comp *c, const tw_vjp_args *a, tw_err *err) {
  tw_graph *g = c->g;
  const tw_block_desc *d = &c->desc;
  double *xn = c->gx + d->nx;
  int rc;
  double *gx = a->gx != NULL ? a->gx : c->gx;
  memset(gx, 0, d->nx * sizeof(double));
  if (a->gu != NULL)
    memset(a->gu, 0, d->nu * sizeof(double));
  memset(c->gy, 0, c->yoff[g->nblocks] * sizeof(double));
  memset(c->late, 0, c->yoff[g->nblocks] * sizeof(double));
  memset(c->done, 0, g->nblocks * sizeof(bool));
  /* Cotangents of the graph's outputs and of the held outputs. */
  if (a->gy != NULL)
    for (size_t o = 0; o < g->noutputs; o++) {
      const tw__gio *io = &g->outputs[o];
      send(c, io->block, io->from, a->gy + io->offset, io->size, gx);
    }
  for (size_t i = 0; i < g->nblocks; i++) {
    size_t ny = g->blocks[i].desc->ny;
    if (c->hoff[i] == SIZE_MAX || a->gx_next == NULL)
      continue;
    const double *gh = a->gx_next + c->hoff[i];
    if (c->active[i]) /* the new held value is this tick's output */
      for (size_t k = 0; k < ny; k++)
        c->gy[c->yoff[i] + k] += gh[k];
    else
      for (size_t k = 0; k < ny; k++)
        gx[c->hoff[i] + k] += gh[k];
  }
  for (size_t j = g->nblocks; j-- > 0;) {
    size_t i = g->order[j];
    tw__gblock *b = &g->blocks[i];
    const tw_block_desc *bd = b->desc;
    const double *gxn = a->gx_next != NULL ? a->gx_next + c->xoff[i] : NULL;
    c->done[i] = true;
    if (!c->active[i]) {
      if (gxn != NULL)
        for (size_t k = 0; k < bd->nx; k++)
          gx[c->xoff[i] + k] += gxn[k];
      continue;
    }
    rc = block_vjp(c, i, a, xn, gxn, c->gy + c->yoff[i], c->gu + c->uoff[i], gx,
                   err);
    if (rc != TW_OK)
      return rc;
    for (size_t q = 0; q < bd->ninputs; q++) {
      const tw__gsrc *src = &b->src[q];
      if (!src->real)
        continue; /* integer and bool signals carry no derivative */
      const double *gq = c->gu + c->uoff[i] + src->dst;
      if (src->kind == TW__SRC_INPUT && a->gu != NULL)
        for (size_t k = 0; k < src->size; k++)
          a->gu[src->offset + k] += gq[k];
      else if (src->kind == TW__SRC_BLOCK)
        send(c, src->index, src->offset, gq, src->size, gx);
    }
  }
  /* Late cotangents of prepass outputs: a second, linear VJP. */
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    const tw_block_desc *bd = b->desc;
    if (!b->prepass || !c->active[i])
      continue;
    bool any = false;
    for (size_t k = 0; k < bd->ny && !any; k++)
      any = c->late[c->yoff[i] + k] != 0;
    if (!any)
      continue;
    rc = block_vjp(c, i, a, xn, NULL, c->late + c->yoff[i], NULL, gx, err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* A sub-graph's usage: what its blocks hold and use. */
static void comp_usage(const void *p, tw_block_usage *u) {
  const comp *c = p;
  const tw_graph *g = c->g;
  for (size_t i = 0; i < g->nblocks; i++) {
    tw_block_usage b;
    tw_block_get_usage(g->blocks[i].block, &b);
    u->memory_bytes += g->blocks[i].own_bytes + b.memory_bytes;
    u->peak_memory += g->blocks[i].own_bytes + b.peak_memory;
    u->wasm_memory += b.wasm_memory;
    u->wasm_peak += b.wasm_peak;
    u->fuel_used += b.fuel_used;
    u->guest_calls += b.guest_calls;
  }
}

static const tw_block_ops comp_ops = {
    .kind = "graph",
    .describe = comp_describe,
    .default_params = comp_defaults,
    .init = comp_init,
    .step = comp_step,
    .step_vjp = comp_vjp,
    .free = comp_free,
    .usage = comp_usage,
    .init_vjp = comp_init_vjp,
    .linearize = comp_linearize,
    .pullback = comp_pullback,
};

int tw__graph_composite(tw_graph *g, tw_block **out, tw_err *err) {
  size_t n = g->nblocks, nx = 0, ny = 0, nu = 0, np = 0, ns = 0;
  for (size_t i = 0; i < n; i++) {
    tw__gblock *b = &g->blocks[i];
    const tw_block_desc *d = b->desc;
    b->own_bytes =
        (d->ntheta + 4 * d->nx + d->nu + d->ny + 6) * sizeof(double) +
        d->ninputs * (sizeof *b->src + sizeof(bool)) + sizeof *b +
        strlen(b->name) + 1;
    nx += d->nx + (b->every > 1 ? d->ny : 0);
    ny += d->ny;
    nu += d->nu;
    np += d->nparams;
    ns += (d->nx > 0) + (g->blocks[i].every > 1 && d->ny > 0);
  }
  comp *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  c->g = g;
  c->xoff = tw_calloc(n + 1, sizeof(size_t));
  c->hoff = tw_calloc(n + 1, sizeof(size_t));
  c->toff = tw_calloc(n + 1, sizeof(size_t));
  c->yoff = tw_calloc(n + 1, sizeof(size_t));
  c->uoff = tw_calloc(n + 1, sizeof(size_t));
  c->poff = tw_calloc(n + 1, sizeof(size_t));
  c->active = tw_calloc(n + 1, sizeof(bool));
  c->done = tw_calloc(n + 1, sizeof(bool));
  c->gy = tw_calloc(ny + 1, sizeof(double));
  c->late = tw_calloc(ny + 1, sizeof(double));
  c->gu = tw_calloc(nu + 1, sizeof(double));
  c->gx = tw_calloc(3 * nx + 1, sizeof(double)); /* gx, x_next, block gx */
  c->state = tw_calloc(ns + 1, sizeof(tw_port));
  c->params = tw_calloc(np + 1, sizeof(tw_port));
  c->names = tw_calloc(np + ns + 1, sizeof *c->names);
  if (c->xoff == NULL || c->hoff == NULL || c->toff == NULL ||
      c->yoff == NULL || c->uoff == NULL || c->poff == NULL ||
      c->active == NULL || c->done == NULL || c->gy == NULL ||
      c->late == NULL || c->gu == NULL || c->gx == NULL || c->state == NULL ||
      c->params == NULL || c->names == NULL) {
    comp_free(c);
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  }
  g->comp_bytes =
      sizeof *c + 6 * (n + 1) * sizeof(size_t) + 2 * (n + 1) * sizeof(bool) +
      (2 * ny + nu + 3 * nx + 4) * sizeof(double) +
      (ns + np + 2) * sizeof(tw_port) + (np + ns + 1) * sizeof *c->names;
  size_t x = 0, t = 0, y = 0, u = 0, pi = 0, si = 0, nm = 0;
  for (size_t i = 0; i < n; i++) {
    const tw__gblock *b = &g->blocks[i];
    const tw_block_desc *d = b->desc;
    c->xoff[i] = x;
    if (d->nx > 0) {
      (void)snprintf(c->names[nm], sizeof c->names[0], "%s", b->name);
      c->state[si++] = (tw_port){c->names[nm++], "", d->nx, TW_F64};
    }
    x += d->nx;
    c->toff[i] = t;
    t += d->ntheta;
    c->yoff[i] = y;
    y += d->ny;
    c->uoff[i] = u;
    u += d->nu;
    c->poff[i] = pi;
    for (size_t k = 0; k < d->nparams; k++) {
      (void)snprintf(c->names[nm], sizeof c->names[0], "%s.%s", b->name,
                     d->params[k].name);
      c->params[pi++] = (tw_port){c->names[nm++], d->params[k].unit,
                                  d->params[k].size, TW_F64};
    }
  }
  for (size_t i = 0; i < n; i++) {
    const tw__gblock *b = &g->blocks[i];
    c->hoff[i] = SIZE_MAX;
    if (b->every > 1) {
      c->hoff[i] = x;
      if (b->desc->ny > 0) {
        (void)snprintf(c->names[nm], sizeof c->names[0], "%s.held", b->name);
        c->state[si++] = (tw_port){c->names[nm++], "", b->desc->ny, TW_F64};
      }
      x += b->desc->ny;
    }
  }
  c->yoff[n] = y;
  c->bounds = tw_calloc(2 * t + 1, sizeof(double));
  if (c->bounds == NULL) {
    comp_free(c);
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    const tw_block_desc *d = g->blocks[i].desc;
    for (size_t j = 0; j < d->ntheta; j++) {
      c->bounds[c->toff[i] + j] =
          d->param_min != NULL ? d->param_min[j] : -INFINITY;
      c->bounds[t + c->toff[i] + j] =
          d->param_max != NULL ? d->param_max[j] : INFINITY;
    }
  }
  c->in_port = (tw_port){"inputs", "", g->in_width, TW_F64};
  c->out_port = (tw_port){"outputs", "", g->out_width, TW_F64};
  tw_block_desc *d = &c->desc;
  d->kind = "graph";
  d->state = c->state;
  d->nstate = si;
  d->inputs = &c->in_port;
  d->ninputs = g->in_width > 0;
  d->outputs = &c->out_port;
  d->noutputs = g->out_width > 0;
  d->params = c->params;
  d->nparams = pi;
  d->nx = x;
  d->nu = g->in_width;
  d->ny = g->out_width;
  d->ntheta = t;
  d->param_min = c->bounds;
  d->param_max = c->bounds + t;
  d->differentiable = true;
  for (size_t i = 0; i < n; i++)
    d->differentiable = d->differentiable && g->blocks[i].desc->differentiable;
  return tw_block_new(&comp_ops, c, g->name, out, err);
}
