/*
 * wasm_block.c - a sandboxed model (src/wasm) as a block: its descriptor
 * gives the ports, its instance steps, and its tw_step_vjp, when exported,
 * makes the block differentiable.
 *
 * Inputs that the caller leaves NULL take the descriptor's defaults (0
 * where none), as for an unconnected input in a graph. The block owns one
 * instance (one store), so it runs on one thread at a time like every
 * block; the module is borrowed and must outlive the block.
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"
#include "twin/wasm.h"

typedef struct wasm_block {
  tw_wasm_module *module;
  tw_wasm_instance *in;
  tw_port *ports;    /* state, inputs, outputs, params */
  bool *feedthrough; /* noutputs x ninputs, from the descriptor */
  bool *required;    /* ninputs: no default in the descriptor */
  double *bounds;    /* 2 * ntheta: min, then max */
  tw_block_desc desc;
} wasm_block;

static void wb_free(void *p) {
  wasm_block *w = p;
  if (w == NULL)
    return;
  tw_wasm_instance_free(w->in);
  tw_free(w->ports);
  tw_free(w->feedthrough);
  tw_free(w->required);
  tw_free(w->bounds);
  tw_free(w);
}

static void wb_usage(const void *p, tw_block_usage *u) {
  const wasm_block *w = p;
  tw_wasm_usage wu;
  tw_wasm_instance_usage(w->in, &wu);
  u->wasm_memory = wu.memory_bytes;
  u->wasm_peak = wu.peak_memory;
  u->fuel_used = wu.fuel_used;
  u->guest_calls = wu.calls;
}

static void wb_describe(const void *p, tw_block_desc *d) {
  const wasm_block *w = p;
  *d = w->desc;
}

static void wb_default_params(const void *p, double *theta) {
  const wasm_block *w = p;
  const tw_wasm_desc *d = tw_wasm_module_desc(w->module);
  size_t off = 0;
  for (size_t i = 0; i < d->nparams; i++) {
    const tw_wasm_port *q = &d->params[i];
    memcpy(theta + off, q->default_, q->size * sizeof(double));
    off += q->size;
  }
}

/* init starts a run (tw_graph_reset, every gradient): an instance that a
 * trap or a limit poisoned in an earlier run is replaced by a fresh one
 * here, so one failed run does not make every later run of the block fail
 * with TW_ESTATE. */
static int wb_init(void *p, const double *theta, double *x0, tw_err *err) {
  wasm_block *w = p;
  tw_err first;
  tw_err_init(&first);
  int rc = tw_wasm_init(w->in, theta, x0, &first);
  if (rc == TW_ESTATE) {
    rc = tw_wasm_instance_reset(w->in, err);
    return rc == TW_OK ? tw_wasm_init(w->in, theta, x0, err) : rc;
  }
  if (rc != TW_OK)
    (void)tw_err_copy(err, &first);
  return rc;
}

static int wb_step(void *p, const tw_step_args *a, tw_err *err) {
  wasm_block *w = p;
  return tw_wasm_step(w->in, a->t, a->dt, a->x, a->u, a->theta, a->x_next, a->y,
                      err);
}

static int wb_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  wasm_block *w = p;
  return tw_wasm_step_vjp(w->in, a->t, a->dt, a->x, a->u, a->theta, a->gx_next,
                          a->gy, a->gx, a->gu, a->gtheta, err);
}

static const tw_block_ops wasm_ops = {
    .kind = "wasm",
    .describe = wb_describe,
    .default_params = wb_default_params,
    .init = wb_init,
    .step = wb_step,
    .step_vjp = wb_vjp,
    .free = wb_free,
    .usage = wb_usage,
};

static tw_port *copy_ports(tw_port *dst, const tw_wasm_port *src, size_t n) {
  for (size_t i = 0; i < n; i++)
    dst[i] = (tw_port){src[i].name, src[i].unit, src[i].size, src[i].dtype};
  return dst;
}

int tw_sim_wasm_block(tw_wasm_module *m, const tw_wasm_limits *limits,
                      const char *name, tw_block **out, tw_err *err) {
  if (m == NULL)
    return tw_err_set(err, TW_EINVAL, "wasm block: module is NULL");
  const tw_wasm_desc *d = tw_wasm_module_desc(m);
  wasm_block *w = tw_calloc(1, sizeof *w);
  size_t nports = d->nstate + d->ninputs + d->noutputs + d->nparams;
  if (w != NULL)
    w->ports = tw_calloc(nports ? nports : 1, sizeof *w->ports);
  if (w == NULL || w->ports == NULL) {
    wb_free(w);
    return tw_err_set(err, TW_ENOMEM, "wasm block: out of memory");
  }
  w->module = m;
  int rc = tw_wasm_instance_new(m, limits, &w->in, err);
  if (rc != TW_OK) {
    wb_free(w);
    return rc;
  }
  tw_block_desc *bd = &w->desc;
  bd->kind = "wasm";
  bd->state = copy_ports(w->ports, d->state, d->nstate);
  bd->inputs = copy_ports(w->ports + d->nstate, d->inputs, d->ninputs);
  bd->outputs =
      copy_ports(w->ports + d->nstate + d->ninputs, d->outputs, d->noutputs);
  bd->params = copy_ports(w->ports + d->nstate + d->ninputs + d->noutputs,
                          d->params, d->nparams);
  bd->nstate = d->nstate;
  bd->ninputs = d->ninputs;
  bd->noutputs = d->noutputs;
  bd->nparams = d->nparams;
  bd->nx = d->nx;
  bd->nu = d->nu;
  bd->ny = d->ny;
  bd->ntheta = d->ntheta;
  bd->differentiable = d->differentiable;
  /* The descriptor's feedthrough lists as the block's matrix. */
  bool all = true, none = true;
  for (size_t o = 0; o < d->noutputs; o++) {
    all = all && d->outputs[o].feedthrough_all;
    none = none && !d->outputs[o].feedthrough_all &&
           d->outputs[o].nfeedthrough == 0;
  }
  bd->feedthrough_none = d->noutputs > 0 && none;
  if (!all && !none && d->ninputs > 0) {
    w->feedthrough = tw_calloc(d->noutputs * d->ninputs, sizeof(bool));
    if (w->feedthrough == NULL) {
      wb_free(w);
      return tw_err_set(err, TW_ENOMEM, "wasm block: out of memory");
    }
    for (size_t o = 0; o < d->noutputs; o++) {
      const tw_wasm_port *op = &d->outputs[o];
      for (size_t i = 0; i < d->ninputs; i++)
        w->feedthrough[o * d->ninputs + i] = op->feedthrough_all;
      for (size_t k = 0; k < op->nfeedthrough; k++)
        w->feedthrough[o * d->ninputs + op->feedthrough[k]] = true;
    }
    bd->feedthrough = w->feedthrough;
  }
  w->required = tw_calloc(d->ninputs ? d->ninputs : 1, sizeof(bool));
  if (w->required == NULL) {
    wb_free(w);
    return tw_err_set(err, TW_ENOMEM, "wasm block: out of memory");
  }
  for (size_t i = 0; i < d->ninputs; i++)
    w->required[i] = d->inputs[i].default_ == NULL;
  bd->input_required = w->required;
  w->bounds = tw_calloc(2 * d->ntheta + 1, sizeof(double));
  if (w->bounds == NULL) {
    wb_free(w);
    return tw_err_set(err, TW_ENOMEM, "wasm block: out of memory");
  }
  for (size_t p = 0, off = 0; p < d->nparams; p++) {
    const tw_wasm_port *q = &d->params[p];
    for (size_t j = 0; j < q->size; j++) {
      w->bounds[off + j] = q->min != NULL ? q->min[j] : -INFINITY;
      w->bounds[d->ntheta + off + j] = q->max != NULL ? q->max[j] : INFINITY;
    }
    off += q->size;
  }
  bd->param_min = w->bounds;
  bd->param_max = w->bounds + d->ntheta;
  return tw_block_new(&wasm_ops, w, name != NULL ? name : d->name, out, err);
}
