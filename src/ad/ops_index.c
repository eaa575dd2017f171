/*
 * ops_index.c - gather and scatter-add along the flat element order.
 *
 * The two are each other's adjoint: gather's adjoint scatter-adds the
 * output cotangent into the input's adjoint, and scatter_add's adjoint
 * gathers it. Repeated indices accumulate in index order (position 0
 * first), so results are deterministic; each += rounds to the element
 * type.
 *
 * Invariants: every index is checked against its bound before anything is
 * allocated, and a recorded node keeps its own copy of the indices in the
 * tape's arena (node->saved, node->nsaved of them), so the caller's array
 * may change or die as soon as the operator returns.
 *
 * Each kernel is written once for an element type T by the KERNELS macro;
 * kern[dtype] picks the instance.
 */
#include <inttypes.h>
#include <string.h>

#include "ad_int.h"

typedef struct kernels {
  /* y[i] += x[idx[i]] for i < n. */
  void (*gather_add)(void *y, const void *x, const uint32_t *idx, size_t n);
  /* y[idx[i]] += x[i] for i < n, in order of i. */
  void (*scatter_add)(void *y, const void *x, const uint32_t *idx, size_t n);
} kernels;

#define KERNELS(T, S)                                                          \
  static void gather_add_##S(void *yv, const void *xv, const uint32_t *idx,    \
                             size_t n) {                                       \
    T *y = yv;                                                                 \
    const T *x = xv;                                                           \
    for (size_t i = 0; i < n; i++)                                             \
      y[i] += x[idx[i]];                                                       \
  }                                                                            \
  static void scatter_add_##S(void *yv, const void *xv, const uint32_t *idx,   \
                              size_t n) {                                      \
    T *y = yv;                                                                 \
    const T *x = xv;                                                           \
    for (size_t i = 0; i < n; i++)                                             \
      y[idx[i]] += x[i];                                                       \
  }                                                                            \
  static const kernels kern_##S = {gather_add_##S, scatter_add_##S};

KERNELS(double, f64)
KERNELS(float, f32)

static const kernels *const kern[2] = {
    [TW_F64] = &kern_f64, [TW_F32] = &kern_f32};

/* Both adjoints: gather's scatter-adds, scatter_add's gathers. */
static int index_backward(tw_tape *tape, const tw__ad_node *node, bool gather,
                          tw_err *err) {
  tw_tensor *a = node->in[0];
  void *ga = tw__ad_grad(tape, a);
  if (ga == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint",
                      node->op);
  const kernels *k = kern[a->dtype];
  if (gather)
    k->scatter_add(ga, node->out->grad, node->saved, node->nsaved);
  else
    k->gather_add(ga, node->out->grad, node->saved, node->nsaved);
  return TW_OK;
}

static int gather_backward(tw_tape *tape, const tw__ad_node *node,
                           tw_err *err) {
  return index_backward(tape, node, true, err);
}

static int scatter_backward(tw_tape *tape, const tw__ad_node *node,
                            tw_err *err) {
  return index_backward(tape, node, false, err);
}

/* The shared body. gather: nidx = n indices into a (bound a->size), output
 * [n]. scatter_add: nidx = a->size indices into the output (bound size),
 * output [size]. The caller has refused n == 0 / size == 0. */
static int index_op(tw_tape *t, const char *op, bool gather, tw_tensor *a,
                    const uint32_t *idx, size_t nidx, size_t bound,
                    size_t outsize, tw_tensor **out, tw_err *err) {
  for (size_t i = 0; i < nidx; i++)
    if (idx[i] >= bound)
      return tw_err_set(err, TW_ERANGE,
                        "%s: index %" PRIu32
                        " at position %zu is out of range for %zu elements",
                        op, idx[i], i, bound);
  tw_tensor *y = NULL;
  int rc =
      tw__ad_out(t, op, a->dtype, 1, &outsize, a->tangent != NULL, &y, err);
  if (rc != TW_OK)
    return rc;
  uint32_t *saved = NULL;
  if (t->recording && a->requires_grad) {
    saved = tw__ad_alloc(t, nidx * sizeof *saved);
    if (saved == NULL)
      return tw_err_set(err, t->arena.limit_hit ? TW_ELIMIT : TW_ENOMEM,
                        "%s: out of memory for %zu indices", op, nidx);
    memcpy(saved, idx, nidx * sizeof *saved);
  }
  const kernels *k = kern[a->dtype];
  void (*fwd)(void *, const void *, const uint32_t *, size_t) =
      gather ? k->gather_add : k->scatter_add;
  fwd(y->data, a->data, idx, nidx);
  if (y->tangent != NULL)
    fwd(y->tangent, a->tangent, idx, nidx);
  tw__ad_node *node;
  rc = tw__ad_finish(t, op, gather ? gather_backward : scatter_backward, &a, 1,
                     y, &node, err);
  if (rc != TW_OK)
    return rc;
  if (node != NULL) {
    node->saved = saved;
    node->nsaved = nidx;
  }
  *out = y;
  return TW_OK;
}

int tw_ad_gather(tw_tape *t, tw_tensor *a, const uint32_t *idx, size_t n,
                 tw_tensor **out, tw_err *err) {
  int rc = tw__ad_check_input(t, "gather", a, err);
  if (rc != TW_OK)
    return rc;
  if (idx == NULL)
    return tw_err_set(err, TW_EINVAL, "gather: idx is NULL");
  if (n == 0)
    return tw_err_set(err, TW_EINVAL,
                      "gather: n is 0 (empty tensors are not allowed)");
  return index_op(t, "gather", true, a, idx, n, a->size, n, out, err);
}

int tw_ad_scatter_add(tw_tape *t, tw_tensor *a, const uint32_t *idx,
                      size_t size, tw_tensor **out, tw_err *err) {
  int rc = tw__ad_check_input(t, "scatter_add", a, err);
  if (rc != TW_OK)
    return rc;
  if (idx == NULL)
    return tw_err_set(err, TW_EINVAL, "scatter_add: idx is NULL");
  if (size == 0)
    return tw_err_set(err, TW_EINVAL,
                      "scatter_add: size is 0 (empty tensors are not "
                      "allowed)");
  return index_op(t, "scatter_add", false, a, idx, a->size, size, size, out,
                  err);
}
