/*
 * calibrate.c - calibration jobs (twin/calibrate.h): a twin's calibrate:
 * section, its recordings read once onto the tick grid, the loss and its
 * exact gradient through the graph's adjoint, one optimiser run, and the
 * validation loss. Unlike the optimisers this file reads files (the
 * recordings); it never writes any.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/calibrate.h"
#include "twin/graph.h"
#include "twin/trace.h"

/* A recording on the grid: inputs for the graph, measured values for the
 * loss (ticks rows of the output width, NaN where no sample). */
typedef struct grid {
  int64_t ticks;
  double *inputs, *target;
  double *weight; /* per output column: weight_j / samples_j */
} grid;

typedef struct job {
  tw_compose *c;
  tw_graph *g;
  const tw_compose_calibration *cal;
  const char *schedule;
  size_t np, ny, nin;
  double *theta, *gtheta;
  size_t *val_off; /* per fitted scalar: its index in theta */
  double *l2;      /* per fitted scalar */
  const char **wrt;
  size_t nwrt;
  grid train;
  tw_calib_result *res;
  tw_optim_progress_fn progress;
  void *progress_ud;
  tw_err numeric; /* the first non-finite run's message */
} job;

static void grid_free(grid *g) {
  tw_free(g->inputs);
  tw_free(g->target);
  tw_free(g->weight);
  memset(g, 0, sizeof *g);
}

/* The column offset and size of twin output `name`. */
static bool output_col(const tw_graph *g, const char *name, size_t *off,
                       size_t *size) {
  size_t o = 0;
  for (size_t i = 0; i < tw_graph_noutputs(g); i++) {
    size_t sz = 0;
    const char *n = tw_graph_output_name(g, i, &sz);
    if (strcmp(n, name) == 0) {
      *off = o;
      *size = sz;
      return true;
    }
    o += sz;
  }
  return false;
}

/* Reads the loss channels of path onto the grid and the twin's inputs
 * from its mcap sources' topics. */
static int grid_read(job *j, const char *path, grid *out, tw_err *err) {
  memset(out, 0, sizeof *out);
  tw_trace_reader *r = NULL;
  int rc = tw_trace_reader_open(path, NULL, &r, err);
  if (rc != TW_OK)
    return rc;
  double dt = tw_graph_dt(j->g);
  /* Pass 1: the channels and the last tick. */
  const tw_compose_calibration *cal = j->cal;
  uint16_t *ids = tw_calloc(cal->nloss, sizeof *ids);
  size_t *col = tw_calloc(cal->nloss, sizeof *col);
  size_t *csize = tw_calloc(cal->nloss, sizeof *csize);
  if (ids == NULL || col == NULL || csize == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
  for (size_t l = 0; rc == TW_OK && l < cal->nloss; l++) {
    const tw_trace_channel *ch =
        tw_trace_reader_channel_find(r, cal->loss[l].channel);
    if (ch == NULL)
      rc = tw_err_set(err, TW_ENOENT,
                      "calibrate: %s has no channel '%s' (the loss term of "
                      "output %s)",
                      path, cal->loss[l].channel, cal->loss[l].output);
    else if (!output_col(j->g, cal->loss[l].output, &col[l], &csize[l]))
      rc = tw_err_set(err, TW_EINVAL, "calibrate: '%s' is not a twin output",
                      cal->loss[l].output);
    else
      ids[l] = ch->id;
  }
  int64_t last = -1;
  size_t cap = 1;
  for (size_t l = 0; rc == TW_OK && l < cal->nloss; l++)
    if (csize[l] + 1 > cap)
      cap = csize[l] + 1;
  double *vals = rc == TW_OK ? tw_alloc(cap * sizeof *vals) : NULL;
  if (rc == TW_OK && vals == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
  for (int pass = 0; pass < 2 && rc == TW_OK; pass++) {
    if (pass == 1) {
      if (last < 0) {
        rc =
            tw_err_set(err, TW_EINVAL,
                       "calibrate: %s: the loss channels hold no sample", path);
        break;
      }
      out->ticks = last + 1;
      size_t cells = (size_t)out->ticks * j->ny;
      out->target = tw_alloc(cells * sizeof *out->target);
      out->weight = tw_calloc(j->ny ? j->ny : 1, sizeof *out->weight);
      if (out->target == NULL || out->weight == NULL) {
        rc = tw_err_set(err, TW_ENOMEM,
                        "calibrate: out of memory for %" PRId64 " ticks",
                        out->ticks);
        break;
      }
      for (size_t i = 0; i < cells; i++)
        out->target[i] = NAN;
    }
    for (size_t l = 0; rc == TW_OK && l < cal->nloss; l++) {
      tw_trace_query q = {&ids[l], 1, 0, UINT64_MAX};
      tw_trace_iter *it = NULL;
      rc = tw_trace_iter_new(r, &q, &it, err);
      const tw_trace_channel *ch = tw_trace_reader_channel_get(r, ids[l]);
      tw_trace_message m;
      int got;
      while (rc == TW_OK && (got = tw_trace_iter_next(it, &m, err)) == 1) {
        double t = 0;
        size_t n = 0;
        rc = tw_trace_port_decode(ch, m.data, m.len, &t, vals, cap, &n, err);
        if (rc == TW_OK && n != csize[l])
          rc = tw_err_set(err, TW_EINVAL,
                          "calibrate: %s: channel '%s' has samples of %zu "
                          "values, output %s has %zu",
                          path, cal->loss[l].channel, n, cal->loss[l].output,
                          csize[l]);
        if (rc != TW_OK)
          break;
        if (!(t >= 0) || !isfinite(t))
          continue;
        double kd = nearbyint(t / dt);
        if (fabs(t - kd * dt) > dt / 2 || kd > 1e9)
          continue;
        int64_t k = (int64_t)kd;
        if (pass == 0) {
          if (k > last)
            last = k;
          continue;
        }
        for (size_t v = 0; v < n; v++)
          if (isfinite(vals[v]))
            out->target[(size_t)k * j->ny + col[l] + v] = vals[v];
      }
      if (rc == TW_OK && got < 0)
        rc = got;
      tw_trace_iter_free(it);
    }
  }
  tw_free(vals);
  tw_trace_reader_close(r);
  /* Weights: weight_j / (samples of column j). */
  for (size_t l = 0; rc == TW_OK && l < cal->nloss; l++)
    for (size_t v = 0; v < csize[l]; v++) {
      size_t cnt = 0;
      for (int64_t k = 0; k < out->ticks; k++)
        cnt += !isnan(out->target[(size_t)k * j->ny + col[l] + v]);
      if (cnt == 0) {
        rc = tw_err_set(err, TW_EINVAL,
                        "calibrate: %s: channel '%s' has no sample on the "
                        "twin's grid (dt %g s)",
                        path, cal->loss[l].channel, dt);
        break;
      }
      out->weight[col[l] + v] += cal->loss[l].weight / (double)cnt;
    }
  tw_free(ids);
  tw_free(col);
  tw_free(csize);
  /* The inputs, from the twin's mcap sources (their topics, read from
   * this recording). */
  if (rc == TW_OK && j->nin > 0) {
    size_t nmap = 0;
    for (size_t i = 0; i < tw_compose_nsources(j->c); i++) {
      const tw_compose_source *s = tw_compose_source_at(j->c, i);
      if (s->kind == TW_COMPOSE_MCAP)
        nmap += s->nmap;
    }
    const char **map = tw_calloc(nmap ? nmap : 1, sizeof *map);
    out->inputs = tw_alloc((size_t)out->ticks * j->nin * sizeof *out->inputs);
    if (map == NULL || out->inputs == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
    size_t m = 0;
    for (size_t i = 0; rc == TW_OK && i < tw_compose_nsources(j->c); i++) {
      const tw_compose_source *s = tw_compose_source_at(j->c, i);
      if (s->kind == TW_COMPOSE_MCAP)
        for (size_t k = 0; k < s->nmap; k++)
          map[m++] = s->map[k];
    }
    if (rc == TW_OK)
      rc = tw_graph_read_inputs(j->g, path, map, m, out->ticks, out->inputs,
                                err);
    tw_free(map);
  }
  if (rc != TW_OK)
    grid_free(out);
  return rc;
}

/* The weighted squared error as a tw_loss (twin/graph.h's sqerr). */
static void sqerr_of(const job *j, const grid *gr, tw_graph_sqerr *s,
                     tw_loss *loss) {
  s->ny = j->ny;
  s->ticks = gr->ticks;
  s->target = gr->target;
  s->weight = gr->weight;
  tw_graph_sqerr_loss(s, loss);
}

/* The loss of gr's outputs y (ticks rows) against its targets. */
static double loss_of(const job *j, const grid *gr, const double *y) {
  double L = 0;
  for (int64_t k = 0; k < gr->ticks; k++)
    for (size_t c = 0; c < j->ny; c++) {
      double t = gr->target[(size_t)k * j->ny + c];
      if (isnan(t) || gr->weight[c] == 0)
        continue;
      double d = y[(size_t)k * j->ny + c] - t;
      L += gr->weight[c] * d * d;
    }
  return L;
}

static void put_x(job *j, const double *x) {
  tw_graph_get_params(j->g, j->theta);
  for (size_t i = 0; i < j->res->nvalues; i++)
    j->theta[j->val_off[i]] = x[i];
  tw_graph_set_params(j->g, j->theta);
}

static int objective(void *ud, const double *x, double *f, double *grad,
                     tw_err *err) {
  job *j = ud;
  put_x(j, x);
  tw_graph_sqerr s;
  tw_loss loss;
  sqerr_of(j, &j->train, &s, &loss);
  double L = 0;
  tw_err ge;
  tw_err_init(&ge);
  int rc = tw_graph_grad(j->g, j->train.ticks, j->train.inputs, &loss, j->wrt,
                         j->nwrt, j->schedule, &L, j->gtheta, &ge);
  if (rc == TW_ENUMERIC) {
    /* The run went non-finite at these parameters: a diverging step for
     * the optimiser (which keeps its best point), the graph's message
     * kept for the error. */
    if (j->numeric.code == TW_OK)
      (void)tw_err_copy(&j->numeric, &ge);
    *f = NAN;
    for (size_t i = 0; i < j->res->nvalues; i++)
      grad[i] = NAN;
    return TW_OK;
  }
  if (rc != TW_OK) {
    (void)tw_err_copy(err, &ge);
    return rc;
  }
  for (size_t i = 0; i < j->res->nvalues; i++) {
    grad[i] = j->gtheta[j->val_off[i]] + 2 * j->l2[i] * x[i];
    L += j->l2[i] * x[i] * x[i];
  }
  *f = L;
  return TW_OK;
}

static int on_progress(void *ud, const tw_optim_progress *p) {
  job *j = ud;
  tw_calib_result *r = j->res;
  if (r->ncurve < p->iteration && r->curve != NULL) {
    size_t cap = (size_t)p->iteration;
    double *c = tw_reallocarray(r->curve, cap, sizeof *c);
    if (c != NULL) {
      r->curve = c;
      while (r->ncurve < cap)
        r->curve[r->ncurve++] = p->loss;
    }
  }
  return j->progress != NULL ? j->progress(j->progress_ud, p) : 0;
}

/* Forward run of gr with the graph's current parameters into y. */
static int forward(job *j, const grid *gr, double *y, tw_err *err) {
  return tw_graph_run(j->g, gr->ticks, gr->inputs, y, err);
}

void tw_calib_result_free(tw_calib_result *r) {
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nparams; i++) {
    tw_free(r->params[i].initial);
    tw_free(r->params[i].fitted);
  }
  tw_free(r->params);
  tw_free(r->curve);
  tw_free(r->y_initial);
  tw_free(r->y_fitted);
  tw_free(r->measured);
  memset(r, 0, sizeof *r);
}

/* The fitted ports: result entries, scalar offsets, bounds. */
static int setup_params(job *j, const tw_compose_calibration *cal,
                        double **lower, double **upper, double **x0,
                        tw_err *err) {
  tw_calib_result *r = j->res;
  size_t nports = tw_graph_nparam_ports(j->g);
  r->params = tw_calloc(cal->nparams ? cal->nparams : 1, sizeof *r->params);
  j->wrt = tw_calloc(cal->nparams ? cal->nparams : 1, sizeof *j->wrt);
  if (r->params == NULL || j->wrt == NULL)
    return tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
  size_t total = 0;
  for (size_t i = 0; i < cal->nparams; i++)
    for (size_t k = 0; k < nports; k++) {
      size_t size, off;
      if (strcmp(tw_graph_param_name(j->g, k, &size, &off),
                 cal->params[i].name) == 0)
        total += size;
    }
  if (total == 0)
    return tw_err_set(err, TW_EINVAL, "calibrate: no parameter to fit");
  j->val_off = tw_calloc(total, sizeof *j->val_off);
  j->l2 = tw_calloc(total, sizeof *j->l2);
  *lower = tw_calloc(total, sizeof **lower);
  *upper = tw_calloc(total, sizeof **upper);
  *x0 = tw_calloc(total, sizeof **x0);
  if (j->val_off == NULL || j->l2 == NULL || *lower == NULL || *upper == NULL ||
      *x0 == NULL)
    return tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
  tw_graph_get_params(j->g, j->theta);
  size_t v = 0;
  for (size_t i = 0; i < cal->nparams; i++) {
    const tw_compose_calib_param *cp = &cal->params[i];
    for (size_t k = 0; k < nports; k++) {
      size_t size, off;
      if (strcmp(tw_graph_param_name(j->g, k, &size, &off), cp->name) != 0)
        continue;
      tw_calib_param *p = &r->params[r->nparams++];
      p->name = cp->name;
      p->size = size;
      p->has_truth = cp->has_truth && size == 1;
      p->truth = cp->truth;
      p->initial = tw_calloc(size, sizeof *p->initial);
      p->fitted = tw_calloc(size, sizeof *p->fitted);
      if (p->initial == NULL || p->fitted == NULL)
        return tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
      j->wrt[j->nwrt++] = cp->name;
      for (size_t e = 0; e < size; e++, v++) {
        j->val_off[v] = off + e;
        j->l2[v] = cp->l2;
        (*lower)[v] = cp->lower;
        (*upper)[v] = cp->upper;
        (*x0)[v] = j->theta[off + e];
        p->initial[e] = j->theta[off + e];
      }
    }
  }
  r->nvalues = v;
  return TW_OK;
}

int tw_calibrate(tw_compose *c, const tw_calib_opts *opts, tw_calib_result *res,
                 tw_err *err) {
  memset(res, 0, sizeof *res);
  tw_calib_opts o = {0};
  if (opts != NULL)
    o = *opts;
  const tw_compose_calibration *cal = tw_compose_calibration_get(c);
  if (cal == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "calibrate: twin '%s' has no calibrate: section (the "
                      "parameters to fit and the loss; docs/twin-compose.md)",
                      tw_compose_name(c));
  const char *data = o.data != NULL ? o.data : cal->data;
  const char *val = o.validation != NULL ? o.validation : cal->validation;
  if (data == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "calibrate: no recording to fit (calibrate.data, or "
                      "--data)");
  const char *method_name = o.optimizer != NULL      ? o.optimizer
                            : cal->optimizer != NULL ? cal->optimizer
                                                     : "lbfgs";
  tw_optim_method method;
  int rc = tw_optim_method_parse(method_name, &method, err);
  if (rc != TW_OK)
    return rc;
  job j = {0};
  tw_err_init(&j.numeric);
  j.c = c;
  j.g = tw_compose_graph(c);
  j.cal = cal;
  j.res = res;
  j.schedule = o.schedule;
  j.progress = o.progress;
  j.progress_ud = o.progress_ud;
  j.np = tw_graph_nparams(j.g);
  j.ny = tw_graph_output_width(j.g);
  j.nin = tw_graph_input_width(j.g);
  res->method = tw_optim_method_name(method);
  res->ny = j.ny;
  res->dt = tw_graph_dt(j.g);
  j.theta = tw_calloc(j.np ? j.np : 1, sizeof *j.theta);
  j.gtheta = tw_calloc(j.np ? j.np : 1, sizeof *j.gtheta);
  double *lower = NULL, *upper = NULL, *x = NULL;
  grid vg = {0};
  if (j.theta == NULL || j.gtheta == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
  if (rc == TW_OK)
    rc = setup_params(&j, cal, &lower, &upper, &x, err);
  if (rc == TW_OK && method == TW_OPTIM_LBFGS)
    for (size_t i = 0; i < res->nparams && rc == TW_OK; i++) {
      size_t first = 0;
      for (size_t k = 0; k < i; k++)
        first += res->params[k].size;
      if (!isfinite(lower[first]) || !isfinite(upper[first]))
        rc = tw_err_set(err, TW_EINVAL,
                        "calibrate: parameter %s has no bounds, and L-BFGS-B "
                        "needs them: give calibrate.parameters.%s: {min, max} "
                        "(or min/max on the component's parameter)",
                        res->params[i].name, res->params[i].name);
    }
  if (rc == TW_OK)
    rc = grid_read(&j, data, &j.train, err);
  if (rc == TW_OK && val != NULL) {
    rc = grid_read(&j, val, &vg, err);
    res->has_validation = rc == TW_OK;
  }
  res->ticks = j.train.ticks;
  res->val_ticks = vg.ticks;
  /* The start: losses and the outputs for the report. */
  size_t cells = (size_t)j.train.ticks * j.ny;
  if (rc == TW_OK) {
    res->y_initial = tw_alloc((cells ? cells : 1) * sizeof(double));
    res->y_fitted = tw_alloc((cells ? cells : 1) * sizeof(double));
    res->measured =
        tw_memdup(j.train.target, (cells ? cells : 1) * sizeof(double));
    res->curve = tw_calloc(1, sizeof *res->curve);
    if (res->y_initial == NULL || res->y_fitted == NULL ||
        res->measured == NULL || res->curve == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
  }
  if (rc == TW_OK)
    rc = forward(&j, &j.train, res->y_initial, err);
  if (rc == TW_OK) {
    res->loss_initial = loss_of(&j, &j.train, res->y_initial);
    for (size_t i = 0; i < res->nvalues; i++)
      res->loss_initial += j.l2[i] * x[i] * x[i];
  }
  double *vy = NULL;
  if (rc == TW_OK && res->has_validation) {
    vy = tw_alloc(((size_t)vg.ticks * j.ny + 1) * sizeof *vy);
    if (vy == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "calibrate: out of memory");
    else if ((rc = forward(&j, &vg, vy, err)) == TW_OK)
      res->val_initial = loss_of(&j, &vg, vy);
  }
  /* The fit. */
  int fit_rc = TW_OK;
  tw_err fit_err;
  tw_err_init(&fit_err);
  if (rc == TW_OK) {
    tw_optim_opts oo;
    tw_optim_opts_init(&oo, method);
    /* The losses are mean squared errors in the outputs' units (1e-6 m^2
     * for millimetres): an absolute gradient test such as L-BFGS-B's
     * default 1e-5 would stop at the start. The relative loss change
     * (tolerance) and the iterations stop the run. */
    oo.gtol = 0;
    oo.lower = lower;
    oo.upper = upper;
    uint64_t iters = o.iterations          ? o.iterations
                     : cal->iterations > 0 ? (uint64_t)cal->iterations
                                           : 0;
    if (iters > 0) {
      oo.max_iters = iters;
      if (method == TW_OPTIM_LBFGS && oo.max_evals < 3 * iters)
        oo.max_evals = 3 * iters;
    }
    if (cal->tolerance > 0)
      oo.ftol_rel = cal->tolerance;
    if (o.learning_rate > 0)
      oo.lr = o.learning_rate;
    else if (cal->learning_rate > 0)
      oo.lr = cal->learning_rate;
    oo.max_seconds = o.max_seconds;
    oo.progress = on_progress;
    oo.progress_ud = &j;
    fit_rc = tw_optim_minimize(res->nvalues, x, objective, &j, &oo, &res->opt,
                               &fit_err);
    /* The best point, whatever happened. */
    put_x(&j, x);
    res->loss = res->opt.loss;
  }
  /* The fitted parameters, the outputs and the validation loss. */
  if (rc == TW_OK) {
    size_t v = 0;
    for (size_t i = 0; i < res->nparams; i++)
      for (size_t e = 0; e < res->params[i].size; e++)
        res->params[i].fitted[e] = x[v++];
    tw_err fe;
    tw_err_init(&fe);
    if (forward(&j, &j.train, res->y_fitted, &fe) != TW_OK)
      for (size_t i = 0; i < cells; i++)
        res->y_fitted[i] = NAN;
    if (res->has_validation) {
      tw_err_init(&fe);
      res->val_loss =
          forward(&j, &vg, vy, &fe) == TW_OK ? loss_of(&j, &vg, vy) : NAN;
    }
  }
  if (rc == TW_OK && fit_rc != TW_OK) {
    rc = fit_rc;
    if (fit_rc == TW_ENUMERIC && j.numeric.code != TW_OK)
      (void)tw_err_set(err, fit_rc, "%s (%s)", fit_err.msg, j.numeric.msg);
    else
      (void)tw_err_copy(err, &fit_err);
  }
  tw_free(vy);
  grid_free(&vg);
  grid_free(&j.train);
  tw_free(lower);
  tw_free(upper);
  tw_free(x);
  tw_free(j.theta);
  tw_free(j.gtheta);
  tw_free(j.val_off);
  tw_free(j.l2);
  tw_free(j.wrt);
  return rc;
}
