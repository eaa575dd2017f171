/*
 * mlp.c - a multilayer perceptron as a stateless block, built from the AD
 * operators: the forward step runs them on a tape that records nothing,
 * the VJP on a recording tape, so there is one implementation of the
 * network and its gradient is the operators' hand-written adjoints.
 *
 * Parameters are wrapped, not copied: each layer's W and b become tensors
 * over slices of theta whose adjoint buffers are the matching slices of
 * gtheta, so the reverse pass accumulates straight into the caller's
 * gradient (+=, as the block contract asks).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "twin/ad.h"
#include "twin/alloc.h"
#include "twin/sim.h"

#define MLP_MAX_LAYERS 64

typedef struct mlp {
  size_t nlayers;
  size_t sizes[MLP_MAX_LAYERS + 1];
  tw_activation acts[MLP_MAX_LAYERS];
  uint64_t seed;
  size_t ntheta;
  tw_port in_port, out_port;
  tw_port *params; /* 2 * nlayers: W1, b1, W2, b2, ... */
  char (*names)[16];
  tw_tape *tape;
  double *gtheta_scratch; /* when the caller wants no theta gradient */
  double *gu_scratch;     /* sizes[0] */
  double *zero_u;         /* sizes[0] zeros, the input when u is NULL */
  /* The recorded network of the last linearize (m->tape): its parameter
   * tensors (W1, b1, ...), whose adjoint buffers pullback points at the
   * caller's gtheta, and its output. */
  tw_tensor **lin_params;
  tw_tensor *lin_out;
} mlp;

static void mlp_free(void *p) {
  mlp *m = p;
  if (m == NULL)
    return;
  tw_tape_free(m->tape);
  tw_free(m->params);
  tw_free(m->names);
  tw_free(m->gtheta_scratch);
  tw_free(m->gu_scratch);
  tw_free(m->zero_u);
  tw_free(m->lin_params);
  tw_free(m);
}

static void mlp_usage(const void *p, tw_block_usage *u) {
  const mlp *m = p;
  size_t fixed = sizeof *m + (m->ntheta + 2 * m->sizes[0]) * sizeof(double) +
                 2 * m->nlayers * (sizeof(tw_port) + 16 + sizeof(void *));
  u->memory_bytes = fixed + tw_tape_bytes(m->tape);
  u->peak_memory = fixed + tw_tape_peak_bytes(m->tape);
}

static void mlp_describe(const void *p, tw_block_desc *d) {
  const mlp *m = p;
  memset(d, 0, sizeof *d);
  d->kind = "mlp";
  d->inputs = &m->in_port;
  d->ninputs = 1;
  d->outputs = &m->out_port;
  d->noutputs = 1;
  d->params = m->params;
  d->nparams = 2 * m->nlayers;
  d->nu = m->sizes[0];
  d->ny = m->sizes[m->nlayers];
  d->ntheta = m->ntheta;
  d->differentiable = true;
  static const bool required = true;
  d->input_required = &required;
}

/* Glorot-uniform weights from a xorshift stream seeded by seed; zero
 * biases. Deterministic on every platform. */
static void mlp_default_params(const void *p, double *theta) {
  const mlp *m = p;
  uint64_t s = m->seed ? m->seed : 0x9E3779B97F4A7C15ull;
  size_t off = 0;
  for (size_t l = 0; l < m->nlayers; l++) {
    size_t in = m->sizes[l], out = m->sizes[l + 1];
    double limit = sqrt(6.0 / (double)(in + out));
    for (size_t i = 0; i < in * out; i++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      double r = (double)(s >> 11) * 0x1.0p-53; /* [0, 1) */
      theta[off++] = (2 * r - 1) * limit;
    }
    for (size_t i = 0; i < out; i++)
      theta[off++] = 0;
  }
}

static int mlp_init(void *p, const double *theta, double *x0, tw_err *err) {
  (void)p;
  (void)theta;
  (void)x0;
  (void)err;
  return TW_OK; /* stateless */
}

/* The tensor API takes non-const data pointers because adjoints are written
 * to ->grad; the operators never write an input's data. */
static void *unconst(const void *p) {
  void *q;
  memcpy(&q, &p, sizeof q);
  return q;
}

static int activate(tw_tape *t, tw_activation a, tw_tensor *z, tw_tensor **out,
                    tw_err *err) {
  switch (a) {
  case TW_ACT_NONE:
    *out = z;
    return TW_OK;
  case TW_ACT_TANH:
    return tw_ad_tanh(t, z, out, err);
  case TW_ACT_RELU:
    return tw_ad_relu(t, z, out, err);
  case TW_ACT_SIGMOID:
    return tw_ad_sigmoid(t, z, out, err);
  case TW_ACT_SOFTPLUS:
    return tw_ad_softplus(t, z, out, err);
  }
  return tw_err_set(err, TW_EINVAL, "mlp: unknown activation %d", (int)a);
}

/* Runs the network on m->tape from u; gtheta/gu (may be NULL) become the
 * adjoint buffers of the parameters and the input. */
static int mlp_run(mlp *m, const double *u, const double *theta, double *gtheta,
                   double *gu, tw_tensor **out, tw_err *err) {
  tw_tape *t = m->tape;
  tw_tensor *h;
  size_t in_shape[1] = {m->sizes[0]};
  if (u == NULL)
    u = m->zero_u; /* no inputs given: all zero */
  int rc = tw_tensor_wrap(t, TW_F64, 1, in_shape, unconst(u), gu, &h, err);
  size_t off = 0;
  for (size_t l = 0; rc == TW_OK && l < m->nlayers; l++) {
    size_t in = m->sizes[l], o = m->sizes[l + 1];
    size_t wshape[2] = {o, in}, bshape[1] = {o};
    tw_tensor *w, *b, *z, *zb;
    rc = tw_tensor_wrap(t, TW_F64, 2, wshape, unconst(theta + off),
                        gtheta ? gtheta + off : NULL, &w, err);
    off += in * o;
    if (rc == TW_OK)
      rc = tw_tensor_wrap(t, TW_F64, 1, bshape, unconst(theta + off),
                          gtheta ? gtheta + off : NULL, &b, err);
    off += o;
    if (rc == TW_OK) {
      m->lin_params[2 * l] = w;
      m->lin_params[2 * l + 1] = b;
    }
    if (rc == TW_OK)
      rc = tw_ad_matvec(t, w, h, &z, err);
    if (rc == TW_OK)
      rc = tw_ad_add(t, z, b, &zb, err);
    if (rc == TW_OK)
      rc = activate(t, m->acts[l], zb, &h, err);
  }
  if (rc == TW_OK)
    *out = h;
  return rc;
}

static int mlp_step(void *p, const tw_step_args *a, tw_err *err) {
  mlp *m = p;
  if (a->y == NULL)
    return TW_OK; /* stateless: nothing else to compute */
  m->lin_out = NULL;
  tw_tape_reset(m->tape);
  tw_tape_set_recording(m->tape, false);
  tw_tensor *y;
  int rc = mlp_run(m, a->u, a->theta, NULL, NULL, &y, err);
  if (rc == TW_OK)
    memcpy(a->y, y->data, m->sizes[m->nlayers] * sizeof(double));
  tw_tape_reset(m->tape);
  return rc;
}

/* Runs the network on a recording tape, the adjoints of the parameters
 * and of the input in scratch buffers until pullback points them at the
 * caller's; writes y when asked. */
static int mlp_linearize(void *p, const tw_step_args *a, tw_err *err) {
  mlp *m = p;
  tw_tape_reset(m->tape);
  tw_tape_set_recording(m->tape, true);
  m->lin_out = NULL;
  int rc = mlp_run(m, a->u, a->theta, m->gtheta_scratch, m->gu_scratch,
                   &m->lin_out, err);
  if (rc == TW_OK && a->y != NULL)
    memcpy(a->y, m->lin_out->data, m->sizes[m->nlayers] * sizeof(double));
  return rc;
}

/* The reverse pass of the network recorded by mlp_linearize. */
static int mlp_pullback(void *p, const tw_vjp_args *a, tw_err *err) {
  mlp *m = p;
  size_t nu = m->sizes[0], ny = m->sizes[m->nlayers];
  if (m->lin_out == NULL)
    return tw_err_set(err, TW_ESTATE, "mlp: pullback without a linearisation");
  tw_tensor *y = m->lin_out;
  m->lin_out = NULL;
  if (a->gy == NULL) { /* no cotangent: nothing flows */
    if (a->gu != NULL)
      memset(a->gu, 0, nu * sizeof(double));
    tw_tape_reset(m->tape);
    return TW_OK;
  }
  double *gth = a->gtheta;
  if (gth == NULL) {
    gth = m->gtheta_scratch;
    memset(gth, 0, m->ntheta * sizeof(double));
  }
  size_t off = 0;
  for (size_t l = 0; l < m->nlayers; l++) {
    m->lin_params[2 * l]->grad = gth + off;
    off += m->sizes[l] * m->sizes[l + 1];
    m->lin_params[2 * l + 1]->grad = gth + off;
    off += m->sizes[l + 1];
  }
  memset(m->gu_scratch, 0, nu * sizeof(double));
  int rc = TW_OK;
  double *g = tw_tensor_grad(m->tape, y, err);
  if (g == NULL)
    rc = TW_ENOMEM;
  else
    memcpy(g, a->gy, ny * sizeof(double));
  if (rc == TW_OK)
    rc = tw_tape_reverse(m->tape, err);
  if (rc == TW_OK && a->gu != NULL)
    memcpy(a->gu, m->gu_scratch, nu * sizeof(double));
  tw_tape_reset(m->tape);
  return rc;
}

static int mlp_vjp(void *p, const tw_vjp_args *a, tw_err *err) {
  tw_step_args s = {a->t, a->dt, a->k, a->x, a->u, a->theta, NULL, NULL};
  int rc = mlp_linearize(p, &s, err);
  return rc == TW_OK ? mlp_pullback(p, a, err) : rc;
}

static const tw_block_ops mlp_ops = {
    .kind = "mlp",
    .describe = mlp_describe,
    .default_params = mlp_default_params,
    .init = mlp_init,
    .step = mlp_step,
    .step_vjp = mlp_vjp,
    .free = mlp_free,
    .linearize = mlp_linearize,
    .pullback = mlp_pullback,
    .usage = mlp_usage,
};

int tw_sim_mlp_block(size_t nlayers, const size_t *sizes,
                     const tw_activation *acts, uint64_t seed, const char *name,
                     tw_block **out, tw_err *err) {
  if (nlayers == 0 || nlayers > MLP_MAX_LAYERS || sizes == NULL || acts == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "mlp: need 1 to %d layers with sizes and activations",
                      MLP_MAX_LAYERS);
  size_t ntheta = 0;
  for (size_t l = 0; l <= nlayers; l++) {
    if (sizes[l] == 0 || sizes[l] > ((size_t)1 << 24))
      return tw_err_set(err, TW_EINVAL,
                        "mlp: layer size %zu is %zu (must be 1..16777216)", l,
                        sizes[l]);
    if (l < nlayers) {
      if ((unsigned)acts[l] > TW_ACT_SOFTPLUS)
        return tw_err_set(err, TW_EINVAL,
                          "mlp: layer %zu: unknown activation %d", l,
                          (int)acts[l]);
      ntheta += sizes[l] * sizes[l + 1] + sizes[l + 1];
    }
  }
  mlp *m = tw_calloc(1, sizeof *m);
  if (m == NULL)
    return tw_err_set(err, TW_ENOMEM, "mlp: out of memory");
  m->nlayers = nlayers;
  memcpy(m->sizes, sizes, (nlayers + 1) * sizeof *sizes);
  memcpy(m->acts, acts, nlayers * sizeof *acts);
  m->seed = seed;
  m->ntheta = ntheta;
  m->in_port = (tw_port){"in", "", sizes[0], TW_F64};
  m->out_port = (tw_port){"out", "", sizes[nlayers], TW_F64};
  m->params = tw_calloc(2 * nlayers, sizeof *m->params);
  m->names = tw_calloc(2 * nlayers, sizeof *m->names);
  m->gtheta_scratch = tw_calloc(ntheta, sizeof(double));
  m->gu_scratch = tw_calloc(sizes[0], sizeof(double));
  m->zero_u = tw_calloc(sizes[0], sizeof(double));
  m->lin_params = tw_calloc(2 * nlayers, sizeof(tw_tensor *));
  int rc = TW_OK;
  if (m->params == NULL || m->names == NULL || m->gtheta_scratch == NULL ||
      m->gu_scratch == NULL || m->zero_u == NULL || m->lin_params == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "mlp: out of memory");
  if (rc == TW_OK)
    rc = tw_tape_new(0, &m->tape, err);
  if (rc != TW_OK) {
    mlp_free(m);
    return rc;
  }
  for (size_t l = 0; l < nlayers; l++) {
    (void)snprintf(m->names[2 * l], sizeof m->names[0], "W%zu", l + 1);
    (void)snprintf(m->names[2 * l + 1], sizeof m->names[0], "b%zu", l + 1);
    m->params[2 * l] =
        (tw_port){m->names[2 * l], "", sizes[l] * sizes[l + 1], TW_F64};
    m->params[2 * l + 1] =
        (tw_port){m->names[2 * l + 1], "", sizes[l + 1], TW_F64};
  }
  return tw_block_new(&mlp_ops, m, name, out, err);
}
