/*
 * block.c - the block handle: a vtable, its instance, a name and the
 * description cached at creation.
 *
 * Invariant: desc's totals equal the sums of its port sizes (checked once
 * here, so rollouts and graphs can trust them).
 */
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

struct tw_block {
  const tw_block_ops *ops;
  void *self;
  char *name;
  tw_block_desc desc;
  /* The point of the kept linearisation (tw_block_linearize), or all NULL
   * with linearized false. */
  bool linearized;
  const double *lin_x, *lin_u, *lin_theta;
  double lin_t, lin_dt;
  int64_t lin_k;
};

static size_t port_total(const tw_port *p, size_t n) {
  size_t s = 0;
  for (size_t i = 0; i < n; i++)
    s += p[i].size;
  return s;
}

int tw_block_new(const tw_block_ops *ops, void *self, const char *name,
                 tw_block **out, tw_err *err) {
  if (ops == NULL || ops->describe == NULL || ops->step == NULL ||
      ops->init == NULL) {
    if (ops != NULL && ops->free != NULL)
      ops->free(self);
    return tw_err_set(err, TW_EINVAL, "block: incomplete operations table");
  }
  tw_block *b = tw_calloc(1, sizeof *b);
  char *copy = tw_strdup(name != NULL ? name : ops->kind);
  if (b == NULL || copy == NULL) {
    tw_free(b);
    tw_free(copy);
    if (ops->free != NULL)
      ops->free(self);
    return tw_err_set(err, TW_ENOMEM, "block: out of memory");
  }
  b->ops = ops;
  b->self = self;
  b->name = copy;
  ops->describe(self, &b->desc);
  const tw_block_desc *d = &b->desc;
  if (port_total(d->state, d->nstate) != d->nx ||
      port_total(d->inputs, d->ninputs) != d->nu ||
      port_total(d->outputs, d->noutputs) != d->ny ||
      port_total(d->params, d->nparams) != d->ntheta) {
    tw_block_free(b);
    return tw_err_set(err, TW_EINTERNAL,
                      "block '%s': its description's sizes do not add up",
                      name != NULL ? name : ops->kind);
  }
  *out = b;
  return TW_OK;
}

void tw_block_free(tw_block *b) {
  if (b == NULL)
    return;
  if (b->ops->free != NULL)
    b->ops->free(b->self);
  tw_free(b->name);
  tw_free(b);
}

const tw_block_desc *tw_block_describe(const tw_block *b) { return &b->desc; }
const char *tw_block_name(const tw_block *b) { return b->name; }

void tw_block_get_usage(const tw_block *b, tw_block_usage *out) {
  memset(out, 0, sizeof *out);
  if (b->ops->usage != NULL)
    b->ops->usage(b->self, out);
}

int tw_block_default_params(const tw_block *b, double *theta, tw_err *err) {
  if (b->ops->default_params == NULL)
    return tw_err_set(err, TW_ENOTSUP, "block '%s' has no default parameters",
                      b->name);
  b->ops->default_params(b->self, theta);
  return TW_OK;
}

int tw_block_init(tw_block *b, const double *theta, double *x0, tw_err *err) {
  return b->ops->init(b->self, theta, x0, err);
}

int tw_block_init_vjp(tw_block *b, const double *theta, const double *gx0,
                      double *gtheta, tw_err *err) {
  if (b->ops->init_vjp == NULL)
    return TW_OK;
  return b->ops->init_vjp(b->self, theta, gx0, gtheta, err);
}

int tw_block_step(tw_block *b, const tw_step_args *a, tw_err *err) {
  b->linearized = false;
  return b->ops->step(b->self, a, err);
}

static int not_differentiable(const tw_block *b, tw_err *err) {
  return tw_err_set(err, TW_ENOTSUP, "block '%s' (%s) is not differentiable",
                    b->name, b->desc.kind);
}

int tw_block_step_vjp(tw_block *b, const tw_vjp_args *a, tw_err *err) {
  b->linearized = false;
  if (b->ops->step_vjp == NULL || !b->desc.differentiable)
    return not_differentiable(b, err);
  return b->ops->step_vjp(b->self, a, err);
}

int tw_block_linearize(tw_block *b, const tw_step_args *a, tw_err *err) {
  b->linearized = false;
  if (b->ops->step_vjp == NULL || !b->desc.differentiable)
    return not_differentiable(b, err);
  int rc = b->ops->linearize != NULL ? b->ops->linearize(b->self, a, err)
                                     : b->ops->step(b->self, a, err);
  if (rc != TW_OK)
    return rc;
  b->linearized = true;
  b->lin_x = a->x;
  b->lin_u = a->u;
  b->lin_theta = a->theta;
  b->lin_t = a->t;
  b->lin_dt = a->dt;
  b->lin_k = a->k;
  return TW_OK;
}

int tw_block_pullback(tw_block *b, const tw_vjp_args *a, tw_err *err) {
  if (!b->linearized)
    return tw_err_set(err, TW_ESTATE,
                      "block '%s': pullback without a linearisation (call "
                      "tw_block_linearize first)",
                      b->name);
  b->linearized = false;
  if (a->x != b->lin_x || a->u != b->lin_u || a->theta != b->lin_theta ||
      a->k != b->lin_k || !(a->t == b->lin_t) || !(a->dt == b->lin_dt))
    return tw_err_set(err, TW_EINVAL,
                      "block '%s': pullback at step %lld is not at the "
                      "linearised point (step %lld)",
                      b->name, (long long)a->k, (long long)b->lin_k);
  return b->ops->pullback != NULL ? b->ops->pullback(b->self, a, err)
                                  : b->ops->step_vjp(b->self, a, err);
}
