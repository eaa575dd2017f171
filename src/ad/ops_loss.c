/*
 * ops_loss.c - fused residual losses to a scalar: mse = mean((a - b)^2) and
 * huber = mean of 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta),
 * with r = a - b.
 *
 * Each is one kernel and one tape node (no intermediate r tensor): the
 * forward pass, the tangent and the adjoint each make one sequential pass
 * over the elements, recomputing r, and sum in double (for f32 too) in
 * element order, so results are deterministic. At |r| = delta the two
 * huber branches meet with equal value and slope (r = delta).
 *
 * The node's alpha holds huber's delta, or 0 for mse (huber refuses
 * delta <= 0), which is how the shared per-element functions tell the two
 * apart. Each kernel is written once for an element type T by the KERNELS
 * macro; kern[dtype] picks the instance.
 */
#include <math.h>

#include "ad_int.h"

/* The loss of one residual and its derivative: mse when delta is 0, else
 * huber with threshold delta. */
static inline double loss_val(double r, double delta) {
  if (delta == 0)
    return r * r;
  double ar = fabs(r);
  return ar <= delta ? 0.5 * r * r : delta * (ar - 0.5 * delta);
}

static inline double loss_der(double r, double delta) {
  if (delta == 0)
    return 2 * r;
  return fabs(r) <= delta ? r : copysign(delta, r);
}

typedef struct kernels {
  double (*get)(const void *p);   /* p[0] */
  void (*set)(void *p, double v); /* p[0] = v */
  /* sum of loss(a[i] - b[i]). */
  double (*value)(const void *a, const void *b, size_t n, double delta);
  /* sum of loss'(r[i]) (da[i] - db[i]); da or db may be NULL (zero). */
  double (*jvp)(const void *a, const void *b, const void *da, const void *db,
                size_t n, double delta);
  /* ga[i] += c loss'(r[i]), gb[i] -= c loss'(r[i]); either may be NULL. */
  void (*vjp)(const void *a, const void *b, void *ga, void *gb, size_t n,
              double delta, double c);
} kernels;

#define KERNELS(T, S)                                                          \
  static double get_##S(const void *p) { return (double)*(const T *)p; }       \
  static void set_##S(void *p, double v) { *(T *)p = (T)v; }                   \
  static double value_##S(const void *av, const void *bv, size_t n,            \
                          double delta) {                                      \
    const T *a = av, *b = bv;                                                  \
    double s = 0;                                                              \
    for (size_t i = 0; i < n; i++)                                             \
      s += loss_val((double)a[i] - (double)b[i], delta);                       \
    return s;                                                                  \
  }                                                                            \
  static double jvp_##S(const void *av, const void *bv, const void *dav,       \
                        const void *dbv, size_t n, double delta) {             \
    const T *a = av, *b = bv, *da = dav, *db = dbv;                            \
    double s = 0;                                                              \
    for (size_t i = 0; i < n; i++) {                                           \
      double dr = (da != NULL ? (double)da[i] : 0.0) -                         \
                  (db != NULL ? (double)db[i] : 0.0);                          \
      s += loss_der((double)a[i] - (double)b[i], delta) * dr;                  \
    }                                                                          \
    return s;                                                                  \
  }                                                                            \
  static void vjp_##S(const void *av, const void *bv, void *gav, void *gbv,    \
                      size_t n, double delta, double c) {                      \
    const T *a = av, *b = bv;                                                  \
    T *ga = gav, *gb = gbv;                                                    \
    for (size_t i = 0; i < n; i++) {                                           \
      double d = c * loss_der((double)a[i] - (double)b[i], delta);             \
      if (ga != NULL)                                                          \
        ga[i] = (T)((double)ga[i] + d);                                        \
      if (gb != NULL)                                                          \
        gb[i] = (T)((double)gb[i] - d);                                        \
    }                                                                          \
  }                                                                            \
  static const kernels kern_##S = {get_##S, set_##S, value_##S, jvp_##S,       \
                                   vjp_##S};

KERNELS(double, f64)
KERNELS(float, f32)

static const kernels *const kern[2] = {
    [TW_F64] = &kern_f64, [TW_F32] = &kern_f32};

static int loss_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err) {
  tw_tensor *a = node->in[0], *b = node->in[1];
  void *ga = NULL, *gb = NULL;
  if (a->requires_grad && (ga = tw__ad_grad(tape, a)) == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint",
                      node->op);
  if (b->requires_grad && (gb = tw__ad_grad(tape, b)) == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint",
                      node->op);
  const kernels *k = kern[a->dtype];
  double c = k->get(node->out->grad) / (double)a->size;
  /* mse(a, a): ga and gb are one buffer and the two terms cancel. */
  k->vjp(a->data, b->data, ga, gb, a->size, node->alpha, c);
  return TW_OK;
}

/* The shared body: mean over the elements of loss(a - b); delta as in
 * loss_val. */
static int residual_loss(tw_tape *t, const char *op, tw_tensor *a, tw_tensor *b,
                         double delta, tw_tensor **out, tw_err *err) {
  tw_tensor *y = NULL;
  tw_tensor *in[2] = {a, b};
  int rc = tw__ad_check_same(t, op, a, b, err);
  if (rc == TW_OK)
    rc = tw__ad_out(t, op, a->dtype, 0, NULL, tw__ad_any_tangent(in, 2), &y,
                    err);
  if (rc != TW_OK)
    return rc;
  const kernels *k = kern[a->dtype];
  double n = (double)a->size;
  k->set(y->data, k->value(a->data, b->data, a->size, delta) / n);
  if (y->tangent != NULL)
    k->set(y->tangent,
           k->jvp(a->data, b->data, a->tangent, b->tangent, a->size, delta) /
               n);
  tw__ad_node *node;
  rc = tw__ad_finish(t, op, loss_backward, in, 2, y, &node, err);
  if (rc != TW_OK)
    return rc;
  if (node != NULL)
    node->alpha = delta;
  *out = y;
  return TW_OK;
}

int tw_ad_mse(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
              tw_err *err) {
  return residual_loss(t, "mse", a, b, 0.0, out, err);
}

int tw_ad_huber(tw_tape *t, tw_tensor *a, tw_tensor *b, double delta,
                tw_tensor **out, tw_err *err) {
  if (!(delta > 0) || !isfinite(delta))
    return tw_err_set(err, TW_EINVAL,
                      "huber: delta must be positive and finite, got %g",
                      delta);
  return residual_loss(t, "huber", a, b, delta, out, err);
}
