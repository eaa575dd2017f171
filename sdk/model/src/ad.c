/*
 * ad.c - the tw_model_ad_* helpers: Twin's tw_ad_* operators with a
 * sticky error, so a model's step_ad reads like its maths.
 *
 * Every helper returns NULL without doing anything once a->rc holds an
 * error or when an input is NULL (the trace of an earlier failure, whose
 * code is already in a->rc); on its own failure it records the code in
 * a->rc and the message in a->err, first error winning. Size-1 operands of
 * binary helpers are broadcast with a recorded tw_ad_broadcast (or viewed
 * with tw_ad_reshape when both sides have one element), so adjoints sum
 * back correctly.
 */
#include "twin/alloc.h"
#include "twin_model.h"

/* True if the helper may run: no earlier failure and no NULL input. */
static bool usable(tw_model_ad *a, const tw_tensor *x, const tw_tensor *y) {
  if (a->rc != TW_OK)
    return false;
  if (x == NULL || y == NULL) {
    a->rc = tw_err_set(a->err, TW_EINVAL, "a NULL tensor reached a helper");
    return false;
  }
  return true;
}

/* Call as `int rc = op(..., &out, ...); return done(a, rc, out);`: in
 * done(a, op(..., &out, ...), out) the order in which the arguments are
 * evaluated is unspecified, and out may be read before op writes it. */
static tw_tensor *done(tw_model_ad *a, int rc, tw_tensor *out) {
  if (rc == TW_OK)
    return out;
  if (a->rc == TW_OK)
    a->rc = rc;
  return NULL;
}

/* Makes x and y the same shape when one of them has a single element. */
static int match(tw_model_ad *a, tw_tensor **x, tw_tensor **y) {
  tw_tensor *p = *x, *q = *y;
  bool same = p->ndim == q->ndim;
  for (unsigned i = 0; same && i < p->ndim; i++)
    same = p->shape[i] == q->shape[i];
  if (same)
    return TW_OK;
  tw_tensor **small = p->size == 1 ? x : q->size == 1 ? y : NULL;
  if (small == NULL)
    return TW_OK; /* the operator reports the mismatch */
  const tw_tensor *big = small == x ? q : p;
  if (big->size == 1)
    return tw_ad_reshape(a->tape, *small, big->ndim, big->shape, small, a->err);
  return tw_ad_broadcast(a->tape, *small, big->ndim, big->shape, small, a->err);
}

tw_tensor *tw_model_ad_const(tw_model_ad *a, double value) {
  return tw_model_ad_vec(a, 1, &value);
}

tw_tensor *tw_model_ad_vec(tw_model_ad *a, size_t n, const double *v) {
  if (a->rc != TW_OK)
    return NULL;
  tw_tensor *out = NULL;
  size_t shape[1] = {n};
  int rc = tw_tensor_from(a->tape, TW_F64, 1, shape, v, false, &out, a->err);
  return done(a, rc, out);
}

typedef int (*binary_fn)(tw_tape *, tw_tensor *, tw_tensor *, tw_tensor **,
                         tw_err *);

static tw_tensor *binary(tw_model_ad *a, binary_fn fn, tw_tensor *x,
                         tw_tensor *y) {
  if (!usable(a, x, y))
    return NULL;
  tw_tensor *out = NULL;
  int rc = match(a, &x, &y);
  if (rc == TW_OK)
    rc = fn(a->tape, x, y, &out, a->err);
  return done(a, rc, out);
}

tw_tensor *tw_model_ad_add(tw_model_ad *a, tw_tensor *x, tw_tensor *y) {
  return binary(a, tw_ad_add, x, y);
}
tw_tensor *tw_model_ad_sub(tw_model_ad *a, tw_tensor *x, tw_tensor *y) {
  return binary(a, tw_ad_sub, x, y);
}
tw_tensor *tw_model_ad_mul(tw_model_ad *a, tw_tensor *x, tw_tensor *y) {
  return binary(a, tw_ad_mul, x, y);
}
tw_tensor *tw_model_ad_div(tw_model_ad *a, tw_tensor *x, tw_tensor *y) {
  return binary(a, tw_ad_div, x, y);
}
tw_tensor *tw_model_ad_dot(tw_model_ad *a, tw_tensor *x, tw_tensor *y) {
  if (!usable(a, x, y))
    return NULL;
  tw_tensor *out = NULL;
  int rc = tw_ad_dot(a->tape, x, y, &out, a->err);
  return done(a, rc, out);
}
tw_tensor *tw_model_ad_matvec(tw_model_ad *a, tw_tensor *w, tw_tensor *x) {
  if (!usable(a, w, x))
    return NULL;
  tw_tensor *out = NULL;
  int rc = tw_ad_matvec(a->tape, w, x, &out, a->err);
  return done(a, rc, out);
}

tw_tensor *tw_model_ad_axpy(tw_model_ad *a, double alpha, tw_tensor *x,
                            tw_tensor *y) {
  if (!usable(a, x, y))
    return NULL;
  tw_tensor *out = NULL;
  int rc = match(a, &x, &y);
  if (rc == TW_OK)
    rc = tw_ad_axpy(a->tape, alpha, x, y, &out, a->err);
  return done(a, rc, out);
}

tw_tensor *tw_model_ad_scale(tw_model_ad *a, double alpha, tw_tensor *x) {
  if (!usable(a, x, x))
    return NULL;
  tw_tensor *out = NULL;
  int rc = tw_ad_scale(a->tape, alpha, x, &out, a->err);
  return done(a, rc, out);
}

#define UNARY(NAME)                                                            \
  tw_tensor *tw_model_ad_##NAME(tw_model_ad *a, tw_tensor *x) {                \
    if (!usable(a, x, x))                                                      \
      return NULL;                                                             \
    tw_tensor *out = NULL;                                                     \
    int rc = tw_ad_##NAME(a->tape, x, &out, a->err);                           \
    return done(a, rc, out);                                                   \
  }

UNARY(neg)
UNARY(exp)
UNARY(log)
UNARY(sin)
UNARY(cos)
UNARY(tanh)
UNARY(sqrt)
UNARY(abs)
UNARY(relu)
UNARY(softplus)
UNARY(sigmoid)
UNARY(sum)

tw_tensor *tw_model_ad_matrix(tw_model_ad *a, tw_tensor *x, size_t rows,
                              size_t cols) {
  if (!usable(a, x, x))
    return NULL;
  tw_tensor *out = NULL;
  size_t shape[2] = {rows, cols};
  int rc = tw_ad_reshape(a->tape, x, 2, shape, &out, a->err);
  return done(a, rc, out);
}

tw_tensor *tw_model_ad_elem(tw_model_ad *a, tw_tensor *x, size_t i) {
  if (!usable(a, x, x))
    return NULL;
  tw_tensor *out = NULL;
  if (i >= x->size || i > UINT32_MAX)
    return done(a,
                tw_err_set(a->err, TW_ERANGE,
                           "elem: index %zu of a tensor of %zu elements", i,
                           x->size),
                NULL);
  uint32_t idx = (uint32_t)i;
  int rc = tw_ad_gather(a->tape, x, &idx, 1, &out, a->err);
  return done(a, rc, out);
}

/* Each part scattered into its place in a zero vector, the results summed:
 * two recorded operators per part, whose adjoints gather the slices back. */
tw_tensor *tw_model_ad_concat(tw_model_ad *a, size_t n,
                              tw_tensor *const *parts) {
  if (a->rc != TW_OK)
    return NULL;
  size_t total = 0, largest = 0;
  for (size_t i = 0; i < n; i++) {
    if (!usable(a, parts[i], parts[i]))
      return NULL;
    total += parts[i]->size;
    largest = parts[i]->size > largest ? parts[i]->size : largest;
  }
  if (n == 0 || total > UINT32_MAX)
    return done(a,
                tw_err_set(a->err, TW_EINVAL,
                           "concat: %zu parts of %zu elements", n, total),
                NULL);
  uint32_t *idx = tw_calloc(largest, sizeof *idx);
  if (idx == NULL)
    return done(a, tw_err_set(a->err, TW_ENOMEM, "concat: out of memory"),
                NULL);
  tw_tensor *out = NULL;
  size_t at = 0;
  int rc = TW_OK;
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    for (size_t j = 0; j < parts[i]->size; j++)
      idx[j] = (uint32_t)(at + j);
    at += parts[i]->size;
    tw_tensor *placed = NULL;
    rc = tw_ad_scatter_add(a->tape, parts[i], idx, total, &placed, a->err);
    if (rc == TW_OK && out == NULL)
      out = placed;
    else if (rc == TW_OK)
      rc = tw_ad_add(a->tape, out, placed, &out, a->err);
  }
  tw_free(idx);
  return done(a, rc, out);
}
