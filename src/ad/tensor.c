/*
 * tensor.c - making tensors in a tape's arena, and the reshape view.
 *
 * Invariants: shape[i] >= 1 for i < ndim, strides are the row-major
 * strides of shape, size is the product of shape (1 for a scalar) and fits
 * size_t together with the element size.
 */
#include <string.h>

#include "ad_int.h"

size_t tw_dtype_size(tw_dtype dtype) {
  switch (dtype) {
  case TW_F32:
  case TW_I32:
    return 4;
  case TW_BOOL:
    return 1;
  default:
    return 8;
  }
}

/* Fills the header fields of t from (dtype, ndim, shape). */
static int set_shape(tw_tensor *t, const char *op, tw_dtype dtype,
                     unsigned ndim, const size_t *shape, tw_err *err) {
  if (dtype != TW_F64 && dtype != TW_F32)
    return tw_err_set(err, TW_ETYPE, "%s: unknown dtype %d", op, (int)dtype);
  if (ndim > TW_AD_MAX_DIMS)
    return tw_err_set(err, TW_EINVAL, "%s: %u dimensions, at most %d", op, ndim,
                      TW_AD_MAX_DIMS);
  if (ndim > 0 && shape == NULL)
    return tw_err_set(err, TW_EINVAL, "%s: shape is NULL", op);
  size_t esize = tw_dtype_size(dtype);
  size_t size = 1;
  for (unsigned i = 0; i < ndim; i++) {
    if (shape[i] == 0)
      return tw_err_set(err, TW_EINVAL,
                        "%s: dimension %u is 0 (empty tensors are not "
                        "allowed)",
                        op, i);
    size_t bytes;
    if (__builtin_mul_overflow(size, shape[i], &size) ||
        __builtin_mul_overflow(size, esize, &bytes))
      return tw_err_set(err, TW_EOVERFLOW, "%s: tensor size overflows", op);
  }
  /* Field by field: a memset of the whole header compiles to rep stos,
   * whose start-up cost dominated making the small tensors of a layer. */
  t->dtype = dtype;
  t->ndim = ndim;
  size_t stride = 1;
  for (unsigned i = TW_AD_MAX_DIMS; i-- > 0;) {
    t->shape[i] = i < ndim ? shape[i] : 0;
    t->strides[i] = i < ndim ? stride : 0;
    stride *= i < ndim ? shape[i] : 1;
  }
  t->size = size;
  t->data = NULL;
  t->tangent = NULL;
  t->grad = NULL;
  t->node = 0;
  t->requires_grad = false;
  return TW_OK;
}

static int make(tw_tape *tape, const char *op, tw_dtype dtype, unsigned ndim,
                const size_t *shape, bool alloc_data, tw_tensor **out,
                tw_err *err) {
  /* Built in place: a header built on the stack and copied costs a
   * store-forwarding stall per field group, which showed in small layers. */
  tw_tensor *t = tw__ad_alloc(tape, sizeof *t);
  if (t == NULL)
    return tw_err_set(err, tape->arena.limit_hit ? TW_ELIMIT : TW_ENOMEM,
                      "%s: out of memory for a tensor header", op);
  int rc = set_shape(t, op, dtype, ndim, shape, err);
  if (rc != TW_OK)
    return rc;
  if (alloc_data) {
    size_t bytes = t->size * tw_dtype_size(dtype);
    void *data = tw__ad_alloc(tape, bytes);
    if (data == NULL)
      return tw_err_set(err, tape->arena.limit_hit ? TW_ELIMIT : TW_ENOMEM,
                        "%s: out of memory for a tensor of %zu bytes", op,
                        bytes);
    memset(data, 0, bytes);
    t->data = data;
  }
  *out = t;
  return TW_OK;
}

int tw_tensor_new(tw_tape *tape, tw_dtype dtype, unsigned ndim,
                  const size_t *shape, tw_tensor **out, tw_err *err) {
  return make(tape, "tensor", dtype, ndim, shape, true, out, err);
}

int tw_tensor_from(tw_tape *tape, tw_dtype dtype, unsigned ndim,
                   const size_t *shape, const void *data, bool requires_grad,
                   tw_tensor **out, tw_err *err) {
  if (data == NULL)
    return tw_err_set(err, TW_EINVAL, "tensor: data is NULL");
  tw_tensor *t = NULL;
  int rc = make(tape, "tensor", dtype, ndim, shape, true, &t, err);
  if (rc != TW_OK)
    return rc;
  memcpy(t->data, data, t->size * tw_dtype_size(dtype));
  t->requires_grad = requires_grad;
  *out = t;
  return TW_OK;
}

int tw_tensor_wrap(tw_tape *tape, tw_dtype dtype, unsigned ndim,
                   const size_t *shape, void *data, void *grad, tw_tensor **out,
                   tw_err *err) {
  if (data == NULL)
    return tw_err_set(err, TW_EINVAL, "tensor: data is NULL");
  tw_tensor *t = NULL;
  int rc = make(tape, "tensor", dtype, ndim, shape, false, &t, err);
  if (rc != TW_OK)
    return rc;
  t->data = data;
  t->grad = grad;
  t->requires_grad = grad != NULL;
  *out = t;
  return TW_OK;
}

int tw_tensor_scalar(tw_tape *tape, tw_dtype dtype, double value,
                     tw_tensor **out, tw_err *err) {
  tw_tensor *t = NULL;
  int rc = make(tape, "scalar", dtype, 0, NULL, true, &t, err);
  if (rc != TW_OK)
    return rc;
  if (dtype == TW_F64)
    *(double *)t->data = value;
  else
    *(float *)t->data = (float)value;
  *out = t;
  return TW_OK;
}

/* Zeroed buffer of t's size in the arena. */
static void *zeroed(tw_tape *tape, const tw_tensor *t) {
  size_t bytes = t->size * tw_dtype_size(t->dtype);
  void *p = tw__ad_alloc(tape, bytes);
  if (p != NULL)
    memset(p, 0, bytes);
  return p;
}

void *tw_tensor_tangent(tw_tape *tape, tw_tensor *t, tw_err *err) {
  if (t->tangent == NULL && (t->tangent = zeroed(tape, t)) == NULL)
    tw_err_set(err, TW_ENOMEM, "tensor: out of memory for a tangent");
  return t->tangent;
}

void *tw_tensor_grad(tw_tape *tape, tw_tensor *t, tw_err *err) {
  void *g = tw__ad_grad(tape, t);
  if (g == NULL)
    tw_err_set(err, TW_ENOMEM, "tensor: out of memory for an adjoint");
  return g;
}

double tw_tensor_get(const tw_tensor *t, size_t i) {
  return t->dtype == TW_F64 ? ((const double *)t->data)[i]
                            : (double)((const float *)t->data)[i];
}

/* The reshape view's adjoint: the same elements, in the same order. */
static int reshape_backward(tw_tape *tape, const tw__ad_node *node,
                            tw_err *err) {
  tw_tensor *a = node->in[0];
  if (!a->requires_grad)
    return TW_OK;
  void *g = tw__ad_grad(tape, a);
  if (g == NULL)
    return tw_err_set(err, TW_ENOMEM, "reshape: out of memory");
  if (a->dtype == TW_F64) {
    double *ga = g;
    const double *go = node->out->grad;
    for (size_t i = 0; i < a->size; i++)
      ga[i] += go[i];
  } else {
    float *ga = g;
    const float *go = node->out->grad;
    for (size_t i = 0; i < a->size; i++)
      ga[i] += go[i];
  }
  return TW_OK;
}

int tw_ad_reshape(tw_tape *tape, tw_tensor *a, unsigned ndim,
                  const size_t *shape, tw_tensor **out, tw_err *err) {
  int rc = tw__ad_check_input(tape, "reshape", a, err);
  tw_tensor *y = NULL;
  if (rc == TW_OK)
    rc = make(tape, "reshape", a->dtype, ndim, shape, false, &y, err);
  if (rc != TW_OK)
    return rc;
  if (y->size != a->size) {
    char sa[64], sy[64];
    return tw_err_set(err, TW_EINVAL, "reshape: cannot view %s as %s",
                      tw__ad_shape_str(a, sa, sizeof sa),
                      tw__ad_shape_str(y, sy, sizeof sy));
  }
  /* Data and tangent are shared; the adjoint is the view's own and flows
   * back through the node, so a grad allocated later on either side is
   * never missed. */
  y->data = a->data;
  y->tangent = a->tangent;
  tw_tensor *in[1] = {a};
  rc = tw__ad_finish(tape, "reshape", reshape_backward, in, 1, y, NULL, err);
  if (rc == TW_OK)
    *out = y;
  return rc;
}
