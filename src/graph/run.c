/*
 * run.c - running and differentiating a loaded graph: its composite block
 * (composite.c) under the rollouts of src/sim, so the graph gets the same
 * checkpoint schedules, clipping and finite checks as any block.
 */
#include <string.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/file.h"

/* Initial state and parameters of the composite (x0: nx, theta: ntheta);
 * the run's accounting starts over. */
static int start(tw_graph *g, double **x0, double **theta, tw_err *err) {
  for (size_t i = 0; i < g->nblocks; i++)
    g->blocks[i].steps = g->blocks[i].wall_ns = 0;
  g->cpu0_ns = tw_clock_process_cpu_ns();
  const tw_block_desc *d = tw_block_describe(g->composite);
  *x0 = tw_calloc(d->nx + 1, sizeof(double));
  *theta = tw_calloc(d->ntheta + 1, sizeof(double));
  if (*x0 == NULL || *theta == NULL)
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  (void)tw_block_default_params(g->composite, *theta, NULL);
  return tw_block_init(g->composite, *theta, *x0, err);
}

int tw_graph_run(tw_graph *g, int64_t ticks, const double *inputs,
                 double *outputs, tw_err *err) {
  if (ticks < 1)
    return tw_err_set(err, TW_EINVAL,
                      "graph '%s': ticks must be >= 1, not %lld", g->name,
                      (long long)ticks);
  double *x0 = NULL, *theta = NULL;
  int rc = start(g, &x0, &theta, err);
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = ticks;
  o.dt = g->dt;
  if (rc == TW_OK)
    rc = tw_sim_forward(g->composite, &o, x0, theta, inputs, NULL, NULL,
                        outputs, NULL, err);
  g->cpu_ms = (double)(tw_clock_process_cpu_ns() - g->cpu0_ns) / 1e6;
  g->ticks_run = ticks;
  tw_free(x0);
  tw_free(theta);
  return rc;
}

size_t tw_graph_nparams(const tw_graph *g) {
  return tw_block_describe(g->composite)->ntheta;
}

int tw_graph_grad(tw_graph *g, int64_t ticks, const double *inputs,
                  const tw_loss *loss, const char *const *wrt, size_t nwrt,
                  const char *schedule, double *loss_out, double *gtheta,
                  tw_err *err) {
  const tw_block_desc *d = tw_block_describe(g->composite);
  if (!d->differentiable) {
    for (size_t i = 0; i < g->nblocks; i++)
      if (!g->blocks[i].desc->differentiable)
        return tw_err_set(err, TW_ENOTSUP,
                          "graph '%s': block '%s' (%s) is not differentiable",
                          g->name, g->blocks[i].name, g->blocks[i].desc->kind);
  }
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = ticks;
  o.dt = g->dt;
  o.check_finite = true;
  int rc =
      tw_ckpt_spec_parse(schedule != NULL ? schedule : "all", &o.schedule, err);
  if (rc != TW_OK)
    return rc;
  bool *want = NULL;
  if (wrt != NULL) {
    want = tw_calloc(d->nparams + 1, sizeof(bool));
    if (want == NULL)
      return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
    for (size_t k = 0; k < nwrt && rc == TW_OK; k++) {
      size_t p = 0;
      while (p < d->nparams && strcmp(d->params[p].name, wrt[k]) != 0)
        p++;
      if (p == d->nparams)
        rc = tw_err_set(err, TW_EINVAL,
                        "graph '%s' has no parameter '%s' (give "
                        "block.param)",
                        g->name, wrt[k]);
      else
        want[p] = true;
    }
    o.wrt = want;
  }
  double *x0 = NULL, *theta = NULL;
  if (rc == TW_OK)
    rc = start(g, &x0, &theta, err);
  tw_rollout_stats st;
  if (rc == TW_OK)
    rc = tw_sim_grad(g->composite, &o, x0, theta, inputs, loss, gtheta, NULL,
                     NULL, &st, err);
  if (rc == TW_OK && loss_out != NULL)
    *loss_out = st.loss;
  tw_free(x0);
  tw_free(theta);
  tw_free(want);
  return rc;
}

const char *tw_graph_param_name(const tw_graph *g, size_t i, size_t *size,
                                size_t *offset) {
  const tw_block_desc *d = tw_block_describe(g->composite);
  size_t off = 0;
  for (size_t p = 0; p < i; p++)
    off += d->params[p].size;
  if (size != NULL)
    *size = d->params[i].size;
  if (offset != NULL)
    *offset = off;
  return d->params[i].name;
}

size_t tw_graph_nparam_ports(const tw_graph *g) {
  return tw_block_describe(g->composite)->nparams;
}

void tw_graph_get_params(const tw_graph *g, double *theta) {
  (void)tw_block_default_params(g->composite, theta, NULL);
}

void tw_graph_set_params(tw_graph *g, const double *theta) {
  size_t off = 0;
  for (size_t i = 0; i < g->nblocks; i++) {
    size_t n = g->blocks[i].desc->ntheta;
    memcpy(g->blocks[i].theta, theta + off, n * sizeof(double));
    off += n;
  }
}

void tw_graph_set_budget(tw_graph *g, double max_cpu_ms) {
  g->max_cpu_ms = max_cpu_ms > 0 ? max_cpu_ms : 0;
}

size_t tw_graph_stats(const tw_graph *g, tw_graph_block_stats *out, size_t cap,
                      double *cpu_ms) {
  if (cpu_ms != NULL)
    *cpu_ms = g->cpu_ms;
  for (size_t i = 0; i < g->nblocks && i < cap; i++) {
    const tw__gblock *b = &g->blocks[i];
    out[i] = (tw_graph_block_stats){b->name, b->desc->kind, b->steps,
                                    (double)b->wall_ns / 1e6};
  }
  return g->nblocks;
}

int tw_graph_format(const char *path, bool json, tw_buf *out, tw_err *err) {
  tw_buf text;
  tw_buf_init(&text);
  int rc = tw_file_read_all(path, TW_JSON_MAX_FILE, &text, err);
  tw_json_doc *doc = NULL;
  if (rc == TW_OK)
    rc = tw__graph_read_doc(text.data, text.len, path, &doc, err);
  tw_buf_fini(&text);
  if (rc != TW_OK)
    return rc;
  if (json) {
    rc = tw_json_dump(tw_json_doc_root(doc), TW_JSON_PRETTY, out);
    if (rc == TW_OK)
      rc = tw_buf_printf(out, "\n");
    if (rc != TW_OK)
      rc = tw_err_set(err, rc, "%s: cannot write the JSON", path);
  } else {
    rc = tw__graph_dsl_format(tw_json_doc_root(doc), out, err);
  }
  tw_json_doc_free(doc);
  return rc;
}
