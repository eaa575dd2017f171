/*
 * model.c - the model ABI's calls over native pointers: the definition's
 * checks (once, on first use), tw_init, tw_step and tw_step_vjp, and the
 * runner that turns a step_ad into a forward step and its VJP on the
 * guest's copy of Twin's kernel-level AD.
 *
 * Invariants: the runtime record is set up once and then only read,
 * except for the per-call view arrays and the tape, which every call
 * overwrites or resets before use; a call leaves the host's inputs
 * untouched and writes its outputs only (x_next, y; gx, gu overwritten,
 * gtheta accumulated).
 */
#include <string.h>

#include "model_int.h"
#include "twin/alloc.h"

/* The module's runtime (see twin_model.h: one model per module). */
static tw__model_rt rt_store;
static int rt_state; /* 0: not set up; 1: ready; else the setup error */

const char *tw__model_kind_name(int kind) {
  static const char *const names[TW__MK_COUNT] = {"state", "inputs", "outputs",
                                                  "params"};
  return names[kind];
}

/* Largest vector length: the host's limit (src/wasm/desc.c), so a model
 * that the host would refuse fails here first, with the port's name. */
#define MAX_LEN ((size_t)1 << 20)

static int check_values(const tw_model_port *p, const char *kind,
                        const char *what, const tw_model_values *v) {
  if (v->n == 0)
    return TW_OK;
  if (v->v == NULL || (v->n != 1 && v->n != p->size))
    return tw_model_fail(TW_EINVAL,
                         "model: %s '%s': %s has %zu values, expected 1 or "
                         "%zu",
                         kind, p->name, what, v->n, p->size);
  return TW_OK;
}

/* True if the feedthrough list names input s[0..len). */
static bool is_input(const tw_model_def *d, const char *s, size_t len) {
  for (size_t i = 0; i < d->ninputs; i++)
    if (strlen(d->inputs[i].name) == len &&
        memcmp(d->inputs[i].name, s, len) == 0)
      return true;
  return false;
}

static int check_feedthrough(const tw_model_def *d, const tw_model_port *p) {
  for (const char *s = p->feedthrough; *s != '\0';) {
    size_t len = strcspn(s, " ,");
    if (len > 0 && !is_input(d, s, len))
      return tw_model_fail(TW_EINVAL,
                           "model: output '%s': feedthrough names '%.*s', "
                           "which is not an input",
                           p->name, (int)len, s);
    s += len;
    s += strspn(s, " ,");
  }
  return TW_OK;
}

static int check_port(const tw_model_def *d, int kind, size_t i) {
  const tw_model_port *ports = kind == TW__MK_STATE    ? d->state
                               : kind == TW__MK_INPUT  ? d->inputs
                               : kind == TW__MK_OUTPUT ? d->outputs
                                                       : d->params;
  const tw_model_port *p = &ports[i];
  const char *k = tw__model_kind_name(kind);
  if (p->name == NULL || p->name[0] == '\0')
    return tw_model_fail(TW_EINVAL, "model: %s port %zu has no name", k, i);
  for (size_t j = 0; j < i; j++)
    if (strcmp(ports[j].name, p->name) == 0)
      return tw_model_fail(TW_EINVAL, "model: %s '%s' is defined twice", k,
                           p->name);
  if (p->size == 0 || p->size > MAX_LEN)
    return tw_model_fail(TW_EINVAL, "model: %s '%s' has size %zu", k, p->name,
                         p->size);
  if (kind == TW__MK_OUTPUT && p->default_.n != 0)
    return tw_model_fail(TW_EINVAL, "model: output '%s' has a default",
                         p->name);
  if (kind != TW__MK_PARAM && (p->min.n != 0 || p->max.n != 0))
    return tw_model_fail(
        TW_EINVAL, "model: %s '%s' has bounds (only params have)", k, p->name);
  if (kind == TW__MK_PARAM && p->dtype != TW_F64)
    return tw_model_fail(TW_EINVAL,
                         "model: param '%s' has dtype %s (params "
                         "are f64)",
                         p->name, tw_dtype_name(p->dtype));
  if ((unsigned)p->dtype >= TW_DTYPE_COUNT)
    return tw_model_fail(TW_EINVAL, "model: %s '%s' has an unknown dtype %d", k,
                         p->name, (int)p->dtype);
  if (kind != TW__MK_OUTPUT && p->feedthrough != NULL)
    return tw_model_fail(TW_EINVAL,
                         "model: %s '%s' has a feedthrough list (only "
                         "outputs have)",
                         k, p->name);
  int rc = check_values(p, k, "default", &p->default_);
  if (rc == TW_OK)
    rc = check_values(p, k, "min", &p->min);
  if (rc == TW_OK)
    rc = check_values(p, k, "max", &p->max);
  if (rc == TW_OK && p->feedthrough != NULL)
    rc = check_feedthrough(d, p);
  return rc;
}

static int check_def(const tw_model_def *d) {
  if (d == NULL || d->name == NULL || d->name[0] == '\0')
    return tw_model_fail(TW_EINVAL, "model: the definition has no name");
  if (d->step == NULL && d->step_ad == NULL)
    return tw_model_fail(TW_EINVAL, "model '%s': neither step nor step_ad",
                         d->name);
  const size_t counts[TW__MK_COUNT] = {d->nstate, d->ninputs, d->noutputs,
                                       d->nparams};
  const tw_model_port *tables[TW__MK_COUNT] = {d->state, d->inputs, d->outputs,
                                               d->params};
  for (int k = 0; k < TW__MK_COUNT; k++) {
    if (counts[k] != 0 && tables[k] == NULL)
      return tw_model_fail(TW_EINVAL, "model '%s': %zu %s ports but no table",
                           d->name, counts[k], tw__model_kind_name(k));
    for (size_t i = 0; i < counts[k]; i++) {
      int rc = check_port(d, k, i);
      if (rc != TW_OK)
        return rc;
    }
  }
  return TW_OK;
}

/* Allocates the per-port arrays (four blocks, one per element type) and
 * computes the offsets. */
static int alloc_views(tw__model_rt *rt) {
  size_t ns = rt->nports[TW__MK_STATE], nu = rt->nports[TW__MK_INPUT],
         ny = rt->nports[TW__MK_OUTPUT], np = rt->nports[TW__MK_PARAM];
  /* +1: a block is never empty, so NULL always means failure. */
  const double **cv = tw_calloc(2 * ns + nu + ny + np + 1, sizeof *cv);
  double **mv = tw_calloc(2 * ns + nu + ny + np + 1, sizeof *mv);
  tw_tensor **tv = tw_calloc(2 * ns + nu + ny + np + 1, sizeof(tw_tensor *));
  size_t *off = tw_calloc(ns + nu + ny + np + 1, sizeof *off);
  if (cv == NULL || mv == NULL || tv == NULL || off == NULL) {
    tw_free(cv);
    tw_free(mv);
    tw_free(tv);
    tw_free(off);
    return tw_model_fail(TW_ENOMEM, "model: out of memory");
  }
  rt->v_x = cv;
  rt->v_gxn = cv + ns;
  rt->v_u = cv + 2 * ns;
  rt->v_gy = cv + 2 * ns + nu;
  rt->v_theta = cv + 2 * ns + nu + ny;
  rt->v_xn = mv;
  rt->v_gx = mv + ns;
  rt->v_gu = mv + 2 * ns;
  rt->v_y = mv + 2 * ns + nu;
  rt->v_gtheta = mv + 2 * ns + nu + ny;
  rt->t_x = tv;
  rt->t_xn = tv + ns;
  rt->t_u = tv + 2 * ns;
  rt->t_y = tv + 2 * ns + nu;
  rt->t_theta = tv + 2 * ns + nu + ny;
  for (int k = 0; k < TW__MK_COUNT; k++) {
    rt->off[k] = off;
    size_t at = 0;
    for (size_t i = 0; i < rt->nports[k]; i++) {
      off[i] = at;
      at += rt->ports[k][i].size;
    }
    rt->n[k] = at;
    off += rt->nports[k];
  }
  return TW_OK;
}

/* Frees what setup allocated and clears rt. */
static void teardown(tw__model_rt *rt) {
  tw_tape_free(rt->tape);
  tw_free(rt->json);
  tw_free(rt->v_x);
  tw_free(rt->v_xn);
  tw_free(rt->t_x);
  tw_free(rt->off[0]);
  memset(rt, 0, sizeof *rt);
}

static int setup(tw__model_rt *rt) {
  const tw_model_def *d = tw__model_def();
  int rc = check_def(d);
  if (rc != TW_OK)
    return rc;
  memset(rt, 0, sizeof *rt);
  rt->def = d;
  rt->ports[TW__MK_STATE] = d->state;
  rt->ports[TW__MK_INPUT] = d->inputs;
  rt->ports[TW__MK_OUTPUT] = d->outputs;
  rt->ports[TW__MK_PARAM] = d->params;
  rt->nports[TW__MK_STATE] = d->nstate;
  rt->nports[TW__MK_INPUT] = d->ninputs;
  rt->nports[TW__MK_OUTPUT] = d->noutputs;
  rt->nports[TW__MK_PARAM] = d->nparams;
  rc = alloc_views(rt);
  for (int k = 0; rc == TW_OK && k < TW__MK_COUNT; k++)
    if (rt->n[k] > MAX_LEN)
      rc =
          tw_model_fail(TW_EINVAL, "model '%s': %s has %zu values, at most %zu",
                        d->name, tw__model_kind_name(k), rt->n[k], MAX_LEN);
  if (rc == TW_OK)
    rc = tw__model_build_json(rt);
  if (rc == TW_OK && d->step_ad != NULL) {
    tw_err err;
    tw_err_init(&err);
    rc = tw_tape_new((size_t)64 * 1024, &rt->tape, &err);
    if (rc != TW_OK)
      tw_model_fail(rc, "model '%s': %s", d->name, tw_err_msg(&err));
    else
      tw_tape_set_check_finite(rt->tape, d->check_finite);
  }
  if (rc != TW_OK)
    teardown(rt);
  return rc;
}

tw__model_rt *tw__model_get_rt(int *rc) {
  if (rt_state == 0) {
    int r = setup(&rt_store);
    /* Memory may come back; a bad definition never gets better. */
    if (r != TW_ENOMEM)
      rt_state = r == TW_OK ? 1 : r;
    if (r != TW_OK) {
      *rc = r;
      return NULL;
    }
  }
  if (rt_state != 1) {
    *rc = tw_model_fail(rt_state, "model: the definition is invalid (see "
                                  "the first error)");
    return NULL;
  }
  *rc = TW_OK;
  return &rt_store;
}

void tw__model_reset(void) {
  teardown(&rt_store);
  rt_state = 0;
}

const char *tw_model_describe(size_t *len) {
  int rc;
  tw__model_rt *rt = tw__model_get_rt(&rc);
  if (rt == NULL)
    return NULL;
  *len = rt->json_len;
  return rt->json;
}

void tw_model_sizes(size_t *nx, size_t *nu, size_t *ny, size_t *ntheta) {
  int rc;
  tw__model_rt *rt = tw__model_get_rt(&rc);
  bool ok = rt != NULL;
  *nx = ok ? rt->n[TW__MK_STATE] : 0;
  *nu = ok ? rt->n[TW__MK_INPUT] : 0;
  *ny = ok ? rt->n[TW__MK_OUTPUT] : 0;
  *ntheta = ok ? rt->n[TW__MK_PARAM] : 0;
}

/* Points views[i] at base + offset of port i of kind k. */
static void set_views(const tw__model_rt *rt, int k, const double *base,
                      const double **views) {
  for (size_t i = 0; i < rt->nports[k]; i++)
    views[i] = base + rt->off[k][i];
}

static void set_mut_views(const tw__model_rt *rt, int k, double *base,
                          double **views) {
  for (size_t i = 0; i < rt->nports[k]; i++)
    views[i] = base + rt->off[k][i];
}

int tw_model_init(const double *theta, double *x0) {
  int rc;
  tw__model_rt *rt = tw__model_get_rt(&rc);
  if (rt == NULL)
    return rc;
  const tw_model_def *d = rt->def;
  if (d->init == NULL) {
    for (size_t i = 0; i < d->nstate; i++) {
      const tw_model_port *p = &d->state[i];
      double *x = x0 + rt->off[TW__MK_STATE][i];
      for (size_t j = 0; j < p->size; j++)
        x[j] = p->default_.n == 0   ? 0.0
               : p->default_.n == 1 ? p->default_.v[0]
                                    : p->default_.v[j];
    }
    return TW_OK;
  }
  tw_model_call c;
  memset(&c, 0, sizeof c);
  c.theta = theta;
  c.x_next = x0;
  set_views(rt, TW__MK_PARAM, theta, rt->v_theta);
  set_mut_views(rt, TW__MK_STATE, x0, rt->v_xn);
  c.param = (const double *const *)rt->v_theta;
  c.state_next = rt->v_xn;
  c.user = d->user;
  return d->init(&c);
}

/* Fills the forward part of c and its views. */
static void forward_call(tw__model_rt *rt, tw_model_call *c, double t,
                         double dt, const double *x, const double *u,
                         const double *theta) {
  memset(c, 0, sizeof *c);
  c->t = t;
  c->dt = dt;
  c->x = x;
  c->u = u;
  c->theta = theta;
  set_views(rt, TW__MK_STATE, x, rt->v_x);
  set_views(rt, TW__MK_INPUT, u, rt->v_u);
  set_views(rt, TW__MK_PARAM, theta, rt->v_theta);
  c->state = (const double *const *)rt->v_x;
  c->input = (const double *const *)rt->v_u;
  c->param = (const double *const *)rt->v_theta;
  c->user = rt->def->user;
}

/* --- step_ad ------------------------------------------------------------- */

/* Wraps the ports of kind k over base (grads over gbase when not NULL) as
 * leaves of shape [size]. The data is the host's and never written: the
 * operators only read their inputs' data. */
static int wrap_ports(tw__model_rt *rt, int k, const double *base,
                      double *gbase, tw_tensor **out, tw_err *err) {
  for (size_t i = 0; i < rt->nports[k]; i++) {
    size_t shape[1] = {rt->ports[k][i].size};
    union {
      const double *in;
      void *data;
    } host = {base + rt->off[k][i]};
    void *grad = gbase != NULL ? gbase + rt->off[k][i] : NULL;
    int rc = tw_tensor_wrap(rt->tape, TW_F64, 1, shape, host.data, grad,
                            &out[i], err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* Checks that step_ad set result i of kind k to a tensor of its size. */
static int check_result(const tw__model_rt *rt, int k, size_t i,
                        const tw_tensor *t) {
  const tw_model_port *p = &rt->ports[k][i];
  const char *what = k == TW__MK_STATE ? "state_next" : "output";
  if (t == NULL)
    return tw_model_fail(TW_EINVAL, "model '%s': step_ad left %s '%s' unset",
                         rt->def->name, what, p->name);
  if (t->dtype != TW_F64 || t->size != p->size)
    return tw_model_fail(TW_EINVAL,
                         "model '%s': step_ad made %s '%s' a %s tensor of %zu "
                         "values, expected f64 of %zu",
                         rt->def->name, what, p->name, tw_dtype_name(t->dtype),
                         t->size, p->size);
  return TW_OK;
}

/* Adds cotangent g[0..n) into t's adjoint. */
static int seed(tw__model_rt *rt, tw_tensor *t, const double *g, tw_err *err) {
  double *tg = tw_tensor_grad(rt->tape, t, err);
  if (tg == NULL)
    return TW_ENOMEM;
  for (size_t j = 0; j < t->size; j++)
    tg[j] += g[j];
  return TW_OK;
}

/* Runs step_ad for c: without recording (vjp false), copying the results
 * into c->x_next and c->y; or recording, then seeding the results with
 * c->gx_next and c->gy and running the tape backward into c->gx, c->gu
 * (zeroed here) and c->gtheta. */
static int run_ad(tw__model_rt *rt, const tw_model_call *c, bool vjp) {
  static tw_err err;
  tw_err_init(&err);
  const tw_model_def *d = rt->def;
  size_t ns = d->nstate, no = d->noutputs;
  tw_tape_reset(rt->tape);
  tw_tape_set_recording(rt->tape, vjp);
  if (vjp) {
    memset(c->gx, 0, rt->n[TW__MK_STATE] * sizeof(double));
    memset(c->gu, 0, rt->n[TW__MK_INPUT] * sizeof(double));
  }
  int rc =
      wrap_ports(rt, TW__MK_STATE, c->x, vjp ? c->gx : NULL, rt->t_x, &err);
  if (rc == TW_OK)
    rc = wrap_ports(rt, TW__MK_INPUT, c->u, vjp ? c->gu : NULL, rt->t_u, &err);
  if (rc == TW_OK)
    rc = wrap_ports(rt, TW__MK_PARAM, c->theta, vjp ? c->gtheta : NULL,
                    rt->t_theta, &err);
  if (rc != TW_OK) {
    tw_model_fail(rc, "model '%s': %s", d->name, tw_err_msg(&err));
    tw_tape_reset(rt->tape);
    return rc;
  }
  memset(rt->t_xn, 0, ns * sizeof(tw_tensor *));
  memset(rt->t_y, 0, no * sizeof(tw_tensor *));
  tw_model_ad a = {rt->tape, c->t,    c->dt,   rt->t_x, rt->t_u, rt->t_theta,
                   rt->t_xn, rt->t_y, d->user, TW_OK,   &err};
  rc = d->step_ad(&a);
  if (rc == TW_OK)
    rc = a.rc;
  if (rc != TW_OK && err.code != TW_OK)
    tw_model_fail(rc, "model '%s': step_ad: %s", d->name, tw_err_msg(&err));
  for (size_t i = 0; rc == TW_OK && i < ns; i++)
    rc = check_result(rt, TW__MK_STATE, i, rt->t_xn[i]);
  for (size_t i = 0; rc == TW_OK && i < no; i++)
    rc = check_result(rt, TW__MK_OUTPUT, i, rt->t_y[i]);
  if (rc == TW_OK && !vjp) {
    for (size_t i = 0; i < ns; i++)
      memcpy(c->x_next + rt->off[TW__MK_STATE][i], rt->t_xn[i]->data,
             rt->t_xn[i]->size * sizeof(double));
    for (size_t i = 0; i < no; i++)
      memcpy(c->y + rt->off[TW__MK_OUTPUT][i], rt->t_y[i]->data,
             rt->t_y[i]->size * sizeof(double));
  }
  if (rc == TW_OK && vjp) {
    for (size_t i = 0; rc == TW_OK && i < ns; i++)
      rc = seed(rt, rt->t_xn[i], c->gx_next + rt->off[TW__MK_STATE][i], &err);
    for (size_t i = 0; rc == TW_OK && i < no; i++)
      rc = seed(rt, rt->t_y[i], c->gy + rt->off[TW__MK_OUTPUT][i], &err);
    if (rc == TW_OK)
      rc = tw_tape_reverse(rt->tape, &err);
    if (rc != TW_OK)
      tw_model_fail(rc, "model '%s': step_vjp: %s", d->name, tw_err_msg(&err));
  }
  /* The leaves point at the host's buffers: forget them now. */
  tw_tape_reset(rt->tape);
  return rc;
}

/* --- The calls ----------------------------------------------------------- */

int tw_model_step(double t, double dt, const double *x, const double *u,
                  const double *theta, double *x_next, double *y) {
  int rc;
  tw__model_rt *rt = tw__model_get_rt(&rc);
  if (rt == NULL)
    return rc;
  tw_model_call c;
  forward_call(rt, &c, t, dt, x, u, theta);
  c.x_next = x_next;
  c.y = y;
  if (rt->def->step == NULL)
    return run_ad(rt, &c, false);
  set_mut_views(rt, TW__MK_STATE, x_next, rt->v_xn);
  set_mut_views(rt, TW__MK_OUTPUT, y, rt->v_y);
  c.state_next = rt->v_xn;
  c.output = rt->v_y;
  return rt->def->step(&c);
}

int tw_model_step_vjp(double t, double dt, const double *x, const double *u,
                      const double *theta, const double *gx_next,
                      const double *gy, double *gx, double *gu,
                      double *gtheta) {
  int rc;
  tw__model_rt *rt = tw__model_get_rt(&rc);
  if (rt == NULL)
    return rc;
  const tw_model_def *d = rt->def;
  if (d->step_vjp == NULL && d->step_ad == NULL)
    return tw_model_fail(TW_ENOTSUP, "model '%s' is not differentiable",
                         d->name);
  tw_model_call c;
  forward_call(rt, &c, t, dt, x, u, theta);
  c.gx_next = gx_next;
  c.gy = gy;
  c.gx = gx;
  c.gu = gu;
  c.gtheta = gtheta;
  if (d->step_vjp == NULL)
    return run_ad(rt, &c, true);
  memset(gx, 0, rt->n[TW__MK_STATE] * sizeof(double));
  memset(gu, 0, rt->n[TW__MK_INPUT] * sizeof(double));
  set_views(rt, TW__MK_STATE, gx_next, rt->v_gxn);
  set_views(rt, TW__MK_OUTPUT, gy, rt->v_gy);
  set_mut_views(rt, TW__MK_STATE, gx, rt->v_gx);
  set_mut_views(rt, TW__MK_INPUT, gu, rt->v_gu);
  set_mut_views(rt, TW__MK_PARAM, gtheta, rt->v_gtheta);
  c.g_state_next = (const double *const *)rt->v_gxn;
  c.g_output = (const double *const *)rt->v_gy;
  c.g_state = rt->v_gx;
  c.g_input = rt->v_gu;
  c.g_param = rt->v_gtheta;
  return d->step_vjp(&c);
}
