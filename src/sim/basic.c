/*
 * basic.c - the signal blocks every graph needs: a gain (y = k u,
 * element-wise, feedthrough), an affine map (y = k u + b: unit
 * conversions with an offset, SSP's linear transformation) and an
 * integrator (x' = x + dt u, y = x, no feedthrough: it breaks algebraic
 * loops), with their exact VJPs. Their inputs have no default: something
 * must feed them (tw_block_desc.input_required).
 */
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

typedef struct basic {
  size_t n;
  bool integrator;
  bool affine;
  double k0, b0; /* gain, affine: default gain and offset */
  tw_port in, out, param[2], state;
} basic;

static const bool required = true;

static void basic_free(void *p) { tw_free(p); }

static void basic_describe(const void *p, tw_block_desc *d) {
  const basic *b = p;
  memset(d, 0, sizeof *d);
  d->kind = b->integrator ? "integrator" : b->affine ? "affine" : "gain";
  d->inputs = &b->in;
  d->input_required = &required;
  d->ninputs = 1;
  d->outputs = &b->out;
  d->noutputs = 1;
  d->nu = d->ny = b->n;
  if (b->integrator) {
    d->state = &b->state;
    d->nstate = 1;
    d->nx = b->n;
    d->feedthrough_none = true;
  } else {
    d->params = b->param;
    d->nparams = b->affine ? 2 : 1;
    d->ntheta = d->nparams * b->n;
  }
  d->differentiable = true;
}

static void basic_defaults(const void *p, double *theta) {
  const basic *b = p;
  if (!b->integrator)
    for (size_t i = 0; i < b->n; i++)
      theta[i] = b->k0;
  if (b->affine)
    for (size_t i = 0; i < b->n; i++)
      theta[b->n + i] = b->b0;
}

static int basic_init(void *p, const double *theta, double *x0, tw_err *err) {
  (void)theta, (void)err;
  const basic *b = p;
  if (b->integrator)
    memset(x0, 0, b->n * sizeof *x0);
  return TW_OK;
}

static int basic_step(void *p, const tw_step_args *a, tw_err *err) {
  (void)err;
  const basic *b = p;
  for (size_t i = 0; i < b->n; i++) {
    double u = a->u != NULL ? a->u[i] : 0.0;
    if (b->integrator) {
      if (a->y != NULL)
        a->y[i] = a->x[i];
      a->x_next[i] = a->x[i] + a->dt * u;
    } else if (a->y != NULL) {
      a->y[i] = a->theta[i] * u + (b->affine ? a->theta[b->n + i] : 0.0);
    }
  }
  return TW_OK;
}

static int basic_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  (void)err;
  const basic *b = p;
  for (size_t i = 0; i < b->n; i++) {
    double gy = a->gy != NULL ? a->gy[i] : 0.0;
    double u = a->u != NULL ? a->u[i] : 0.0;
    if (b->integrator) {
      double gxn = a->gx_next != NULL ? a->gx_next[i] : 0.0;
      if (a->gx != NULL)
        a->gx[i] = gxn + gy;
      if (a->gu != NULL)
        a->gu[i] = a->dt * gxn;
    } else {
      if (a->gu != NULL)
        a->gu[i] = a->theta[i] * gy;
      if (a->gtheta != NULL && (a->want == NULL || a->want[0]))
        a->gtheta[i] += u * gy;
      if (b->affine && a->gtheta != NULL && (a->want == NULL || a->want[1]))
        a->gtheta[b->n + i] += gy;
    }
  }
  return TW_OK;
}

static const tw_block_ops basic_ops = {
    .kind = "basic",
    .describe = basic_describe,
    .default_params = basic_defaults,
    .init = basic_init,
    .step = basic_step,
    .step_vjp = basic_vjp,
    .free = basic_free,
};

static int make(size_t n, int kind, double k0, double b0, const char *name,
                tw_block **out, tw_err *err) {
  static const char *const kinds[] = {"gain", "integrator", "affine"};
  if (n == 0 || n > ((size_t)1 << 24))
    return tw_err_set(err, TW_EINVAL, "%s: size %zu is not 1..16777216",
                      kinds[kind], n);
  basic *b = tw_calloc(1, sizeof *b);
  if (b == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  b->n = n;
  b->integrator = kind == 1;
  b->affine = kind == 2;
  b->k0 = k0;
  b->b0 = b0;
  b->in = (tw_port){"u", "", n, TW_F64};
  b->out = (tw_port){"y", "", n, TW_F64};
  b->param[0] = (tw_port){"k", "", n, TW_F64};
  b->param[1] = (tw_port){"b", "", n, TW_F64};
  b->state = (tw_port){"x", "", n, TW_F64};
  return tw_block_new(&basic_ops, b, name, out, err);
}

int tw_sim_gain_block(size_t n, double k, const char *name, tw_block **out,
                      tw_err *err) {
  return make(n, 0, k, 0, name, out, err);
}

int tw_sim_affine_block(size_t n, double k, double b, const char *name,
                        tw_block **out, tw_err *err) {
  return make(n, 2, k, b, name, out, err);
}

int tw_sim_integrator_block(size_t n, const char *name, tw_block **out,
                            tw_err *err) {
  return make(n, 1, 0, 0, name, out, err);
}
