/*
 * run.c - running and differentiating a loaded graph: its composite block
 * (composite.c) under the rollouts of src/sim, so the graph gets the same
 * checkpoint schedules, clipping and finite checks as any block.
 */
#include <string.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/checkpoint.h"
#include "twin/clock.h"
#include "twin/file.h"
#include "twin/metrics.h"

enum { RUN_NONE, RUN_READY, RUN_FAILED };

size_t tw__graph_memory(tw_graph *g) {
  size_t total = g->comp_bytes + g->extra_bytes;
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    tw_block_usage u;
    tw_block_get_usage(b->block, &u);
    size_t held = b->own_bytes + u.memory_bytes;
    size_t peak = b->own_bytes + u.peak_memory;
    if (peak > b->peak_bytes)
      b->peak_bytes = peak;
    if (u.wasm_memory > b->wasm_peak)
      b->wasm_peak = u.wasm_memory;
    total += held + u.wasm_memory;
  }
  if (total > g->peak_memory)
    g->peak_memory = total;
  return total;
}

/* Counts a stop by a budget in the metrics. */
static void count_limit(tw_graph *g, const char *resource) {
  if (g->ctx == NULL)
    return;
  static const char *const labels[] = {"graph", "resource"};
  tw_metric_family *f;
  tw_metric *m;
  const char *values[] = {g->name, resource};
  if (tw_metrics_family(tw_ctx_metrics(g->ctx), TW_METRIC_COUNTER,
                        "twin_graph_budget_stops_total",
                        "Runs stopped by a budget, by resource", labels, 2,
                        NULL, 0, &f, NULL) == TW_OK &&
      tw_metric_family_child(f, values, &m, NULL) == TW_OK)
    tw_metric_inc(m);
}

int tw__graph_check_budget(tw_graph *g, int64_t k, tw_err *err) {
  if (g->max_cpu_ms > 0) {
    double used = (double)(tw_clock_process_cpu_ns() - g->cpu0_ns) / 1e6;
    if (used > g->max_cpu_ms) {
      count_limit(g, "cpu");
      return tw_err_set(err, TW_ELIMIT,
                        "graph '%s': CPU budget exceeded at tick %lld: "
                        "%.1f ms used, the budget is %.1f ms",
                        g->name, (long long)k, used, g->max_cpu_ms);
    }
  }
  if (g->max_memory > 0) {
    size_t used = tw__graph_memory(g);
    if (used > g->max_memory) {
      count_limit(g, "memory");
      return tw_err_set(err, TW_ELIMIT,
                        "graph '%s': memory budget exceeded at tick %lld: "
                        "%zu bytes held, the budget is %zu bytes",
                        g->name, (long long)k, used, g->max_memory);
    }
  }
  return TW_OK;
}

/* The run's accounting starts over. */
static void start_accounting(tw_graph *g) {
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    tw_block_usage u;
    tw_block_get_usage(b->block, &u);
    b->steps = b->vjps = b->wall_ns = b->cpu_ns = 0;
    b->pub_steps = b->pub_vjps = b->pub_wall_ns = b->pub_cpu_ns = 0;
    b->pub_fuel = 0;
    b->fuel0 = u.fuel_used;
    b->peak_bytes = b->wasm_peak = 0;
  }
  g->pub_ticks = 0;
  g->peak_memory = 0;
  g->cpu0_ns = tw_clock_process_cpu_ns();
  g->wall0_ns = tw_clock_mono_ns();
  g->cpu_ms = g->wall_ms = 0;
}

static void stop_accounting(tw_graph *g) {
  g->cpu_ms = (double)(tw_clock_process_cpu_ns() - g->cpu0_ns) / 1e6;
  g->wall_ms = (double)(tw_clock_mono_ns() - g->wall0_ns) / 1e6;
  (void)tw__graph_memory(g);
}

/* Finds or makes the child of family name for this graph (and block). */
static tw_metric *metric(tw_graph *g, tw_metric_type type, const char *name,
                         const char *help, const char *block) {
  static const char *const labels[] = {"graph", "block"};
  const char *values[] = {g->name, block};
  tw_metric_family *f;
  tw_metric *m;
  if (tw_metrics_family(tw_ctx_metrics(g->ctx), type, name, help, labels,
                        block != NULL ? 2 : 1, NULL, 0, &f, NULL) != TW_OK ||
      tw_metric_family_child(f, values, &m, NULL) != TW_OK)
    return NULL;
  return m;
}

static void add(tw_metric *m, double v) {
  if (m != NULL && v > 0)
    (void)tw_metric_add(m, v);
}

/* Sends what the run did since the last call to the context's metrics. */
static void publish(tw_graph *g, int64_t ticks) {
  if (g->ctx == NULL)
    return;
  add(metric(g, TW_METRIC_COUNTER, "twin_graph_ticks_total",
             "Ticks the graph ran (gradients' recomputation excluded)", NULL),
      (double)(ticks - g->pub_ticks));
  g->pub_ticks = ticks;
  tw_metric *mem =
      metric(g, TW_METRIC_GAUGE, "twin_graph_memory_bytes",
             "Memory held by the graph's last run at its peak", NULL);
  if (mem != NULL)
    (void)tw_metric_set(mem, (double)g->peak_memory);
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    tw_block_usage u;
    tw_block_get_usage(b->block, &u);
    uint64_t fuel = u.fuel_used - b->fuel0;
    add(metric(g, TW_METRIC_COUNTER, "twin_graph_block_steps_total",
               "Forward steps of a block", b->name),
        (double)(b->steps - b->pub_steps));
    add(metric(g, TW_METRIC_COUNTER, "twin_graph_block_vjps_total",
               "VJP calls of a block (gradients)", b->name),
        (double)(b->vjps - b->pub_vjps));
    add(metric(g, TW_METRIC_COUNTER, "twin_graph_block_seconds_total",
               "Wall time inside a block's steps and VJPs", b->name),
        (double)(b->wall_ns - b->pub_wall_ns) / 1e9);
    if (g->account_cpu)
      add(metric(g, TW_METRIC_COUNTER, "twin_graph_block_cpu_seconds_total",
                 "Thread CPU time inside a block's steps and VJPs", b->name),
          (double)(b->cpu_ns - b->pub_cpu_ns) / 1e9);
    if (u.guest_calls > 0) {
      add(metric(g, TW_METRIC_COUNTER, "twin_graph_block_fuel_total",
                 "Wasm fuel used by a block", b->name),
          (double)(fuel - b->pub_fuel));
      tw_metric *wm = metric(g, TW_METRIC_GAUGE, "twin_graph_block_wasm_bytes",
                             "Linear memory of a wasm block", b->name);
      if (wm != NULL)
        (void)tw_metric_set(wm, (double)u.wasm_memory);
    }
    b->pub_steps = b->steps;
    b->pub_vjps = b->vjps;
    b->pub_wall_ns = b->wall_ns;
    b->pub_cpu_ns = b->cpu_ns;
    b->pub_fuel = fuel;
  }
}

/* Initial state and parameters of the composite into x0 (nx) and theta
 * (ntheta). */
static int initial(tw_graph *g, double *x0, double *theta, tw_err *err) {
  (void)tw_block_default_params(g->composite, theta, NULL);
  return tw_block_init(g->composite, theta, x0, err);
}

int tw_graph_reset(tw_graph *g, tw_err *err) {
  const tw_block_desc *d = tw_block_describe(g->composite);
  if (g->run_mem == NULL) {
    g->run_mem = tw_calloc(3 * d->nx + d->ntheta + 4, sizeof(double));
    if (g->run_mem == NULL)
      return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
    g->run_x = g->run_mem;
    g->run_xn = g->run_x + d->nx + 1;
    g->run_theta = g->run_xn + d->nx + 1;
  }
  g->run_state = RUN_FAILED;
  g->run_k = 0;
  start_accounting(g);
  g->extra_bytes = (2 * d->nx + d->ntheta + 4) * sizeof(double);
  g->checkpoint_bytes = 0;
  if (g->ctx != NULL)
    add(metric(g, TW_METRIC_COUNTER, "twin_graph_runs_total",
               "Runs started (tw_graph_reset)", NULL),
        1);
  int rc = initial(g, g->run_x, g->run_theta, err);
  if (rc == TW_OK)
    g->run_state = RUN_READY;
  return rc;
}

/* Checks that the row of inputs of tick k holds values of each input's
 * dtype (f64 inputs take anything). */
static int check_dtypes(const tw_graph *g, int64_t k, const double *row,
                        tw_err *err) {
  for (size_t i = 0; i < g->ninputs; i++) {
    const tw__gio *io = &g->inputs[i];
    if (io->dtype == TW_F64)
      continue;
    for (size_t j = 0; j < io->size; j++)
      if (!tw_dtype_holds(io->dtype, row[io->offset + j]))
        return tw_err_set(err, TW_EINVAL,
                          "graph '%s': input '%s'[%zu] at tick %lld is %.17g, "
                          "not a value of its dtype %s",
                          g->name, io->name, j, (long long)k,
                          row[io->offset + j], tw_dtype_name(io->dtype));
  }
  return TW_OK;
}

int tw_graph_advance(tw_graph *g, int64_t ticks, const double *inputs,
                     double *outputs, tw_err *err) {
  if (g->run_state != RUN_READY)
    return tw_err_set(err, TW_ESTATE,
                      g->run_state == RUN_NONE
                          ? "graph '%s': no run started (tw_graph_reset)"
                          : "graph '%s': the run stopped on an error; reset "
                            "it to run again",
                      g->name);
  if (ticks < 0)
    return tw_err_set(err, TW_EINVAL,
                      "graph '%s': ticks must be >= 0, not %lld", g->name,
                      (long long)ticks);
  const tw_block_desc *d = tw_block_describe(g->composite);
  int rc = TW_OK;
  for (int64_t j = 0; j < ticks && rc == TW_OK; j++) {
    int64_t k = g->run_k;
    if (inputs != NULL && g->typed_inputs) {
      rc = check_dtypes(g, k, inputs + (size_t)j * d->nu, err);
      if (rc != TW_OK)
        break;
    }
    tw_step_args a = {(double)k * g->dt,
                      g->dt,
                      k,
                      g->run_x,
                      inputs != NULL ? inputs + (size_t)j * d->nu : NULL,
                      g->run_theta,
                      g->run_xn,
                      outputs != NULL ? outputs + (size_t)j * d->ny : NULL};
    rc = tw_block_step(g->composite, &a, err);
    if (rc != TW_OK)
      break;
    double *t = g->run_x;
    g->run_x = g->run_xn;
    g->run_xn = t;
    g->run_k++;
  }
  if (rc != TW_OK)
    g->run_state = RUN_FAILED;
  stop_accounting(g);
  publish(g, g->run_k);
  return rc;
}

int64_t tw_graph_tick(const tw_graph *g) {
  return g->run_state == RUN_NONE ? 0 : g->run_k;
}

int tw_graph_run(tw_graph *g, int64_t ticks, const double *inputs,
                 double *outputs, tw_err *err) {
  if (ticks < 1)
    return tw_err_set(err, TW_EINVAL,
                      "graph '%s': ticks must be >= 1, not %lld", g->name,
                      (long long)ticks);
  int rc = tw_graph_reset(g, err);
  if (rc == TW_OK)
    rc = tw_graph_advance(g, ticks, inputs, outputs, err);
  return rc;
}

size_t tw_graph_nparams(const tw_graph *g) {
  return tw_block_describe(g->composite)->ntheta;
}

/* The memory of the gradient's schedule (checkpoint slots and working
 * vectors of the rollout), checked against the budget before it starts. */
static int grad_memory(tw_graph *g, const tw_rollout_opts *o, tw_err *err) {
  const tw_block_desc *d = tw_block_describe(g->composite);
  tw_ckpt *ck = NULL;
  int rc = tw_ckpt_new(&o->schedule, o->steps, &ck, err);
  if (rc != TW_OK)
    return rc;
  size_t slots = tw_ckpt_slots(ck);
  tw_ckpt_free(ck);
  g->checkpoint_bytes = slots * d->nx * sizeof(double);
  g->extra_bytes = g->checkpoint_bytes + (4 * d->nx + 2 * d->ny + d->nu +
                                          2 * d->ntheta + (size_t)o->steps) *
                                             sizeof(double);
  if (g->max_memory > 0) {
    size_t need = tw__graph_memory(g);
    if (need > g->max_memory) {
      count_limit(g, "memory");
      char spec[64];
      tw_ckpt_spec_format(&o->schedule, spec, sizeof spec);
      return tw_err_set(err, TW_ELIMIT,
                        "graph '%s': a gradient over %lld ticks with schedule "
                        "%s needs %zu bytes (%zu of checkpoints), the budget "
                        "is %zu bytes; a schedule with fewer slots "
                        "(revolve:K) needs less",
                        g->name, (long long)o->steps, spec, need,
                        g->checkpoint_bytes, g->max_memory);
    }
  }
  return TW_OK;
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
  double *x0 = NULL, *theta = NULL, *gx0 = NULL, *g0 = NULL;
  if (rc == TW_OK)
    rc = grad_memory(g, &o, err);
  if (rc == TW_OK) {
    x0 = tw_calloc(d->nx + 1, sizeof(double));
    gx0 = tw_calloc(d->nx + 1, sizeof(double));
    theta = tw_calloc(d->ntheta + 1, sizeof(double));
    g0 = tw_calloc(d->ntheta + 1, sizeof(double));
    if (x0 == NULL || gx0 == NULL || theta == NULL || g0 == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  }
  g->run_state = RUN_NONE; /* the run's state is not kept */
  start_accounting(g);
  g->run_k = ticks;
  if (rc == TW_OK)
    rc = initial(g, x0, theta, err);
  tw_rollout_stats st;
  if (rc == TW_OK)
    rc = tw_sim_grad(g->composite, &o, x0, theta, inputs, loss, gtheta, gx0,
                     NULL, &st, err);
  /* Parameters that set the initial state (a spring's x0): through the
   * blocks' init VJPs, for the ports asked for. */
  if (rc == TW_OK)
    rc = tw_block_init_vjp(g->composite, theta, gx0, g0, err);
  for (size_t p = 0, off = 0; rc == TW_OK && p < d->nparams; p++) {
    for (size_t j = 0; j < d->params[p].size; j++)
      if (want == NULL || want[p])
        gtheta[off + j] += g0[off + j];
    off += d->params[p].size;
  }
  if (rc == TW_OK && loss_out != NULL)
    *loss_out = st.loss;
  stop_accounting(g);
  publish(g, 0);
  if (g->ctx != NULL)
    add(metric(g, TW_METRIC_COUNTER, "twin_graph_gradients_total",
               "Gradients computed", NULL),
        1);
  tw_free(x0);
  tw_free(gx0);
  tw_free(theta);
  tw_free(g0);
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

void tw_graph_set_budget(tw_graph *g, double max_cpu_ms, size_t max_memory) {
  g->max_cpu_ms = max_cpu_ms > 0 ? max_cpu_ms : 0;
  g->max_memory = max_memory;
}

void tw_graph_set_accounting(tw_graph *g, bool cpu_per_block) {
  g->account_cpu = cpu_per_block;
}

size_t tw_graph_stats(const tw_graph *g, tw_graph_block_stats *out, size_t cap,
                      tw_graph_run_stats *run) {
  uint64_t fuel = 0;
  for (size_t i = 0; i < g->nblocks; i++) {
    const tw__gblock *b = &g->blocks[i];
    tw_block_usage u;
    tw_block_get_usage(b->block, &u);
    fuel += u.fuel_used - b->fuel0;
    if (i < cap)
      out[i] =
          (tw_graph_block_stats){b->name,
                                 b->desc->kind,
                                 b->steps,
                                 b->vjps,
                                 (double)b->wall_ns / 1e6,
                                 g->account_cpu ? (double)b->cpu_ns / 1e6 : -1,
                                 b->peak_bytes,
                                 b->wasm_peak,
                                 u.fuel_used - b->fuel0};
  }
  if (run != NULL)
    *run =
        (tw_graph_run_stats){g->run_k,       g->wall_ms, g->cpu_ms,
                             g->peak_memory, fuel,       g->checkpoint_bytes};
  return g->nblocks;
}

int tw_graph_format_value(const json_t *root, bool json, tw_buf *out,
                          tw_err *err) {
  if (!json)
    return tw__graph_dsl_format(root, out, err);
  int rc = tw_json_dump(root, TW_JSON_PRETTY, out);
  if (rc == TW_OK)
    rc = tw_buf_printf(out, "\n");
  if (rc != TW_OK)
    rc = tw_err_set(err, rc, "graph: cannot write the JSON");
  return rc;
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
