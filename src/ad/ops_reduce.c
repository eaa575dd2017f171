/*
 * ops_reduce.c - reductions to a scalar (sum, mean, dot, norm) and NumPy
 * broadcasting, whose adjoint is a reduction.
 *
 * Determinism: every reduction is one sequential loop in flat element
 * order with a double accumulator, for f32 tensors too (fewer roundings,
 * and the same order on every run), so a value, tangent or adjoint depends
 * only on the inputs. The broadcast adjoint sums the copies of each source
 * element in output order, also in double, and rounds once when it adds
 * the sum to the source's adjoint.
 *
 * Each kernel is written once for an element type T by the KERNELS macro;
 * kern[dtype] picks the instance (tw__ad_check_input has refused any other
 * dtype), so the operator code above the kernels is dtype-agnostic.
 */
#include <math.h>
#include <string.h>

#include "ad_int.h"

/* An odometer over up to TW_AD_MAX_DIMS dimensions: off is the offset of
 * the current multi-index under stride[]. A walk over 0 dimensions visits
 * exactly one position (offset 0). */
typedef struct walk {
  unsigned nd;
  size_t dim[TW_AD_MAX_DIMS], stride[TW_AD_MAX_DIMS], idx[TW_AD_MAX_DIMS];
  size_t off;
} walk;

/* Advances w in row-major order; false after the last position, when w
 * has wrapped around to the first. */
static bool walk_next(walk *w) {
  for (unsigned d = w->nd; d-- > 0;) {
    w->off += w->stride[d];
    if (++w->idx[d] < w->dim[d])
      return true;
    w->off -= w->dim[d] * w->stride[d];
    w->idx[d] = 0;
  }
  return false;
}

typedef struct kernels {
  double (*get)(const void *p);   /* p[0] */
  void (*set)(void *p, double v); /* p[0] = v */
  double (*sum)(const void *x, size_t n);
  double (*dot)(const void *x, const void *y, size_t n);
  /* max |x[i]|; NaN if any element is NaN. */
  double (*amax)(const void *x, size_t n);
  /* sum of (scale x[i])^2. */
  double (*sumsq)(const void *x, size_t n, double scale);
  void (*addc)(void *y, double c, size_t n);                /* y += c */
  void (*axpy)(void *y, double c, const void *x, size_t n); /* y += c x */
  /* y[k] = x[src.off] for the n positions of the walk src. */
  void (*spread)(void *y, const void *x, size_t n, walk src);
  /* y[j] += sum over the walk bc of x[keep.off + bc.off], for each
   * position j of the walk keep. */
  void (*fold)(void *y, const void *x, walk keep, const walk *bc);
} kernels;

#define KERNELS(T, S)                                                          \
  static double get_##S(const void *p) { return (double)*(const T *)p; }       \
  static void set_##S(void *p, double v) { *(T *)p = (T)v; }                   \
  static double sum_##S(const void *xv, size_t n) {                            \
    const T *x = xv;                                                           \
    double s = 0;                                                              \
    for (size_t i = 0; i < n; i++)                                             \
      s += (double)x[i];                                                       \
    return s;                                                                  \
  }                                                                            \
  static double dot_##S(const void *xv, const void *yv, size_t n) {            \
    const T *x = xv, *y = yv;                                                  \
    double s = 0;                                                              \
    for (size_t i = 0; i < n; i++)                                             \
      s += (double)x[i] * (double)y[i];                                        \
    return s;                                                                  \
  }                                                                            \
  static double amax_##S(const void *xv, size_t n) {                           \
    const T *x = xv;                                                           \
    double m = 0;                                                              \
    for (size_t i = 0; i < n; i++) {                                           \
      double v = fabs((double)x[i]);                                           \
      if (v > m || isnan(v))                                                   \
        m = v;                                                                 \
      if (isnan(m))                                                            \
        break;                                                                 \
    }                                                                          \
    return m;                                                                  \
  }                                                                            \
  static double sumsq_##S(const void *xv, size_t n, double scale) {            \
    const T *x = xv;                                                           \
    double s = 0;                                                              \
    for (size_t i = 0; i < n; i++) {                                           \
      double v = scale * (double)x[i];                                         \
      s += v * v;                                                              \
    }                                                                          \
    return s;                                                                  \
  }                                                                            \
  static void addc_##S(void *yv, double c, size_t n) {                         \
    T *y = yv;                                                                 \
    for (size_t i = 0; i < n; i++)                                             \
      y[i] = (T)((double)y[i] + c);                                            \
  }                                                                            \
  static void axpy_##S(void *yv, double c, const void *xv, size_t n) {         \
    T *y = yv;                                                                 \
    const T *x = xv;                                                           \
    for (size_t i = 0; i < n; i++)                                             \
      y[i] = (T)((double)y[i] + c * (double)x[i]);                             \
  }                                                                            \
  static void spread_##S(void *yv, const void *xv, size_t n, walk src) {       \
    T *y = yv;                                                                 \
    const T *x = xv;                                                           \
    for (size_t k = 0; k < n; k++) {                                           \
      y[k] = x[src.off];                                                       \
      (void)walk_next(&src);                                                   \
    }                                                                          \
  }                                                                            \
  static void fold_##S(void *yv, const void *xv, walk keep, const walk *bc) {  \
    T *y = yv;                                                                 \
    const T *x = xv;                                                           \
    size_t j = 0;                                                              \
    do {                                                                       \
      walk in = *bc;                                                           \
      double s = 0;                                                            \
      do                                                                       \
        s += (double)x[keep.off + in.off];                                     \
      while (walk_next(&in));                                                  \
      y[j] = (T)((double)y[j] + s);                                            \
      j++;                                                                     \
    } while (walk_next(&keep));                                                \
  }                                                                            \
  static const kernels kern_##S = {get_##S,    set_##S,   sum_##S,  dot_##S,   \
                                   amax_##S,   sumsq_##S, addc_##S, axpy_##S,  \
                                   spread_##S, fold_##S};

KERNELS(double, f64)
KERNELS(float, f32)

static const kernels *const kern[2] = {
    [TW_F64] = &kern_f64, [TW_F32] = &kern_f32};

/* The adjoint buffer of t, or NULL after reporting TW_ENOMEM for op. */
static void *grad_of(tw_tape *tape, const char *op, tw_tensor *t, tw_err *err) {
  void *g = tw__ad_grad(tape, t);
  if (g == NULL)
    tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint", op);
  return g;
}

/* --- sum and mean ------------------------------------------------------ */
/* Both are sum(a) / div with div = 1 (sum) or a->size (mean), kept in the
 * node's alpha. */

static int sum_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err) {
  tw_tensor *a = node->in[0];
  const kernels *k = kern[a->dtype];
  void *ga = grad_of(tape, node->op, a, err);
  if (ga == NULL)
    return TW_ENOMEM;
  k->addc(ga, k->get(node->out->grad) / node->alpha, a->size);
  return TW_OK;
}

static int sum_or_mean(tw_tape *t, const char *op, tw_tensor *a, bool mean,
                       tw_tensor **out, tw_err *err) {
  tw_tensor *y = NULL;
  int rc = tw__ad_check_input(t, op, a, err);
  if (rc == TW_OK)
    rc = tw__ad_out(t, op, a->dtype, 0, NULL, a->tangent != NULL, &y, err);
  if (rc != TW_OK)
    return rc;
  const kernels *k = kern[a->dtype];
  double div = mean ? (double)a->size : 1.0;
  k->set(y->data, k->sum(a->data, a->size) / div);
  if (y->tangent != NULL)
    k->set(y->tangent, k->sum(a->tangent, a->size) / div);
  tw__ad_node *node;
  rc = tw__ad_finish(t, op, sum_backward, &a, 1, y, &node, err);
  if (rc != TW_OK)
    return rc;
  if (node != NULL)
    node->alpha = div;
  *out = y;
  return TW_OK;
}

int tw_ad_sum(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return sum_or_mean(t, "sum", a, false, out, err);
}

int tw_ad_mean(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return sum_or_mean(t, "mean", a, true, out, err);
}

/* --- dot --------------------------------------------------------------- */

static int dot_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err) {
  tw_tensor *a = node->in[0], *b = node->in[1];
  const kernels *k = kern[a->dtype];
  double g = k->get(node->out->grad);
  /* a and b may be the same tensor: both terms then land in one buffer. */
  if (a->requires_grad) {
    void *ga = grad_of(tape, node->op, a, err);
    if (ga == NULL)
      return TW_ENOMEM;
    k->axpy(ga, g, b->data, a->size);
  }
  if (b->requires_grad) {
    void *gb = grad_of(tape, node->op, b, err);
    if (gb == NULL)
      return TW_ENOMEM;
    k->axpy(gb, g, a->data, b->size);
  }
  return TW_OK;
}

int tw_ad_dot(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
              tw_err *err) {
  tw_tensor *y = NULL;
  int rc = tw__ad_check_same(t, "dot", a, b, err);
  tw_tensor *in[2] = {a, b};
  if (rc == TW_OK)
    rc = tw__ad_out(t, "dot", a->dtype, 0, NULL, tw__ad_any_tangent(in, 2), &y,
                    err);
  if (rc != TW_OK)
    return rc;
  const kernels *k = kern[a->dtype];
  k->set(y->data, k->dot(a->data, b->data, a->size));
  if (y->tangent != NULL) {
    double d = 0;
    if (a->tangent != NULL)
      d += k->dot(a->tangent, b->data, a->size);
    if (b->tangent != NULL)
      d += k->dot(a->data, b->tangent, a->size);
    k->set(y->tangent, d);
  }
  rc = tw__ad_finish(t, "dot", dot_backward, in, 2, y, NULL, err);
  if (rc == TW_OK)
    *out = y;
  return rc;
}

/* --- norm -------------------------------------------------------------- */

/* sqrt(sum x^2) without overflow or underflow: when the largest magnitude
 * is far from 1 the elements are scaled by a power of two (exact) first,
 * otherwise the plain formula runs. 0, Inf and NaN come back as they are
 * found (the largest magnitude). */
static double norm_of(const kernels *k, const void *x, size_t n) {
  double amax = k->amax(x, n);
  if (!(amax > 0) || isinf(amax))
    return amax;
  int e = 0;
  (void)frexp(amax, &e);
  if (e > -500 && e < 500)
    e = 0;
  else if (e < -1000)
    e = -1000; /* 2^1000 is the largest scale that stays finite */
  return ldexp(sqrt(k->sumsq(x, n, ldexp(1.0, -e))), e);
}

/* d norm = <a, da> / norm, and 0 at norm 0 (the safe gradient ad.h
 * promises). The double-precision norm is kept in the node's alpha. */
static int norm_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err) {
  tw_tensor *a = node->in[0];
  const kernels *k = kern[a->dtype];
  void *ga = grad_of(tape, node->op, a, err);
  if (ga == NULL)
    return TW_ENOMEM;
  if (node->alpha > 0)
    k->axpy(ga, k->get(node->out->grad) / node->alpha, a->data, a->size);
  return TW_OK;
}

int tw_ad_norm(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err) {
  tw_tensor *y = NULL;
  int rc = tw__ad_check_input(t, "norm", a, err);
  if (rc == TW_OK)
    rc = tw__ad_out(t, "norm", a->dtype, 0, NULL, a->tangent != NULL, &y, err);
  if (rc != TW_OK)
    return rc;
  const kernels *k = kern[a->dtype];
  double nrm = norm_of(k, a->data, a->size);
  k->set(y->data, nrm);
  if (y->tangent != NULL)
    k->set(y->tangent,
           nrm > 0 ? k->dot(a->data, a->tangent, a->size) / nrm : 0.0);
  tw__ad_node *node;
  rc = tw__ad_finish(t, "norm", norm_backward, &a, 1, y, &node, err);
  if (rc != TW_OK)
    return rc;
  if (node != NULL)
    node->alpha = nrm;
  *out = y;
  return TW_OK;
}

/* --- broadcast --------------------------------------------------------- */

/* The walks of broadcasting a to y's shape. src visits y's positions in
 * order with a's strides (0 along broadcast dimensions); keep visits a's
 * elements in order with y's strides (the dimensions a keeps); bc visits,
 * with y's strides, the copies of one element (the broadcast dimensions).
 * A dimension of size 1 in both counts as kept. */
static void broadcast_walks(const tw_tensor *a, const tw_tensor *y, walk *src,
                            walk *keep, walk *bc) {
  memset(src, 0, sizeof *src);
  memset(keep, 0, sizeof *keep);
  memset(bc, 0, sizeof *bc);
  unsigned lead = y->ndim - a->ndim;
  src->nd = y->ndim;
  for (unsigned d = 0; d < y->ndim; d++) {
    bool kept = d >= lead && a->shape[d - lead] == y->shape[d];
    src->dim[d] = y->shape[d];
    src->stride[d] = kept ? a->strides[d - lead] : 0;
    walk *w = kept ? keep : bc;
    w->dim[w->nd] = y->shape[d];
    w->stride[w->nd] = y->strides[d];
    w->nd++;
  }
}

static int broadcast_backward(tw_tape *tape, const tw__ad_node *node,
                              tw_err *err) {
  tw_tensor *a = node->in[0];
  void *ga = grad_of(tape, node->op, a, err);
  if (ga == NULL)
    return TW_ENOMEM;
  walk src, keep, bc;
  broadcast_walks(a, node->out, &src, &keep, &bc);
  kern[a->dtype]->fold(ga, node->out->grad, keep, &bc);
  return TW_OK;
}

/* Checks that a broadcasts to (ndim, shape): NumPy's rule, dimensions
 * aligned on the right, each of a equal to the target's or 1, and no
 * empty or oversized target. */
static int check_broadcast(const tw_tensor *a, unsigned ndim,
                           const size_t *shape, tw_err *err) {
  if (ndim > TW_AD_MAX_DIMS)
    return tw_err_set(err, TW_EINVAL, "broadcast: %u dimensions, at most %d",
                      ndim, TW_AD_MAX_DIMS);
  if (ndim > 0 && shape == NULL)
    return tw_err_set(err, TW_EINVAL, "broadcast: shape is NULL");
  tw_tensor to;
  memset(&to, 0, sizeof to);
  to.ndim = ndim;
  for (unsigned d = 0; d < ndim; d++)
    to.shape[d] = shape[d];
  char sa[96], st[96];
  size_t size = 1, esize = tw_dtype_size(a->dtype);
  for (unsigned d = 0; d < ndim; d++) {
    if (shape[d] == 0)
      return tw_err_set(err, TW_EINVAL,
                        "broadcast: dimension %u of %s is 0 (empty tensors "
                        "are not allowed)",
                        d, tw__ad_shape_str(&to, st, sizeof st));
    if (size > SIZE_MAX / esize / shape[d])
      return tw_err_set(err, TW_EOVERFLOW, "broadcast: size of %s overflows",
                        tw__ad_shape_str(&to, st, sizeof st));
    size *= shape[d];
  }
  bool ok = ndim >= a->ndim;
  for (unsigned d = 0; ok && d < a->ndim; d++) {
    size_t da = a->shape[d], dt = shape[ndim - a->ndim + d];
    ok = da == dt || da == 1;
  }
  if (!ok)
    return tw_err_set(err, TW_EINVAL, "broadcast: cannot broadcast %s to %s",
                      tw__ad_shape_str(a, sa, sizeof sa),
                      tw__ad_shape_str(&to, st, sizeof st));
  return TW_OK;
}

int tw_ad_broadcast(tw_tape *t, tw_tensor *a, unsigned ndim,
                    const size_t *shape, tw_tensor **out, tw_err *err) {
  tw_tensor *y = NULL;
  int rc = tw__ad_check_input(t, "broadcast", a, err);
  if (rc == TW_OK)
    rc = check_broadcast(a, ndim, shape, err);
  if (rc == TW_OK)
    rc = tw__ad_out(t, "broadcast", a->dtype, ndim, shape, a->tangent != NULL,
                    &y, err);
  if (rc != TW_OK)
    return rc;
  const kernels *k = kern[a->dtype];
  walk src, keep, bc;
  broadcast_walks(a, y, &src, &keep, &bc);
  k->spread(y->data, a->data, y->size, src);
  if (y->tangent != NULL)
    k->spread(y->tangent, a->tangent, y->size, src);
  rc = tw__ad_finish(t, "broadcast", broadcast_backward, &a, 1, y, NULL, err);
  if (rc == TW_OK)
    *out = y;
  return rc;
}
