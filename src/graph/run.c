/*
 * run.c - stepping a loaded graph: per tick, the prepass (outputs that
 * depend on the state only, for blocks whose consumers run first), then
 * every active block in topological order: gather its inputs from graph
 * inputs and other blocks' outputs, step, keep the new state. Blocks that
 * step every r ticks run with dt r and hold their outputs in between.
 */
#include <string.h>

#include "graph_int.h"

/* Copies the sources of b's connected inputs into b->u. */
static void gather(const tw_graph *g, tw__gblock *b, const double *in_row) {
  for (size_t i = 0; i < b->desc->ninputs; i++) {
    const tw__gsrc *s = &b->src[i];
    const double *from = NULL;
    if (s->kind == TW__SRC_INPUT)
      from = in_row != NULL ? in_row + s->offset : NULL;
    else if (s->kind == TW__SRC_BLOCK)
      from = g->blocks[s->index].y + s->offset;
    else
      continue; /* unconnected: its default, set at load */
    if (from != NULL)
      memcpy(b->u + s->dst, from, s->size * sizeof(double));
    else
      memset(b->u + s->dst, 0, s->size * sizeof(double));
  }
}

static int step(tw__gblock *b, double t, double dt, int64_t k, tw_err *err) {
  tw_step_args a = {t, dt, k, b->x, b->u, b->theta, b->xn, b->y};
  int rc = tw_block_step(b->block, &a, err);
  if (rc != TW_OK)
    return rc;
  double *tmp = b->x;
  b->x = b->xn;
  b->xn = tmp;
  return TW_OK;
}

int tw_graph_run(tw_graph *g, int64_t ticks, const double *inputs,
                 double *outputs, tw_err *err) {
  if (ticks < 1)
    return tw_err_set(err, TW_EINVAL,
                      "graph '%s': ticks must be >= 1, not "
                      "%lld",
                      g->name, (long long)ticks);
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    int rc = tw_block_init(b->block, b->theta, b->x0, err);
    if (rc != TW_OK)
      return rc;
    memcpy(b->x, b->x0, b->desc->nx * sizeof(double));
    memset(b->y, 0, b->desc->ny * sizeof(double));
  }
  for (int64_t k = 0; k < ticks; k++) {
    const double *row =
        inputs != NULL ? inputs + (size_t)k * g->in_width : NULL;
    double t = (double)k * g->dt;
    for (size_t i = 0; i < g->nblocks; i++) {
      tw__gblock *b = &g->blocks[i];
      if (!b->prepass || k % b->every != 0)
        continue;
      /* y from the state alone: the inputs it does not read are stale. */
      tw_step_args a = {t,    g->dt * b->every, k,     b->x,
                        b->u, b->theta,         b->xn, b->y};
      int rc = tw_block_step(b->block, &a, err);
      if (rc != TW_OK)
        return rc;
    }
    for (size_t j = 0; j < g->nblocks; j++) {
      tw__gblock *b = &g->blocks[g->order[j]];
      if (k % b->every != 0)
        continue;
      gather(g, b, row);
      int rc = step(b, t, g->dt * b->every, k, err);
      if (rc != TW_OK)
        return rc;
    }
    if (outputs != NULL) {
      double *out = outputs + (size_t)k * g->out_width;
      for (size_t o = 0; o < g->noutputs; o++) {
        const tw__gio *io = &g->outputs[o];
        memcpy(out + io->offset, g->blocks[io->block].y + io->from,
               io->size * sizeof(double));
      }
    }
  }
  return TW_OK;
}
