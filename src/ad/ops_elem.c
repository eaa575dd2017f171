/*
 * ops_elem.c - the elementwise operators: add, sub, mul, div, axpy, scale
 * and the unary math functions, with their JVPs and adjoints.
 *
 * Each operator is one line below: its value y = F(...) and its partial
 * derivatives D(...), written once over a type T. The UNARY and BINARY
 * macros turn that line into f64 and f32 kernels (tight loops over
 * contiguous arrays, restrict pointers, no per-element dispatch) and a
 * descriptor that the shared drivers use: the driver picks the kernel for
 * the dtype once per call. <tgmath.h> makes exp(x) call expf for a float,
 * so the formulas need no per-type spelling; integer literals keep f32
 * arithmetic in float.
 *
 * The same derivative expression serves forward mode (ty = sum_i D_i t_i,
 * a missing input tangent counting as zero) and reverse mode (g_i += D_i
 * gy, only for inputs that require grad). Derivatives read the inputs and
 * the output (exp' = y, tanh' = 1 - y^2, ...), so nothing else is saved.
 * Each input's adjoint is accumulated by its own loop, so an operator given
 * the same tensor twice (x * x) adds both contributions into one buffer.
 *
 * Conventions (ad.h): sqrt'(0) = 0, |x|'(0) = 0, relu'(0) = 0; NaN inputs
 * give NaN values; softplus and sigmoid never overflow. tanh' = 1 - y^2 and
 * sigmoid' = y(1 - y) come from the output, as in the usual frameworks:
 * where y has rounded to 1 (x > ~19 for tanh, x > ~37 for sigmoid, in f64)
 * they are 0 instead of a value below 1e-16, exact in absolute terms only.
 */
#include <float.h>
#include <tgmath.h>

#include "ad_int.h"

/* --- Scalar helpers -------------------------------------------------- */

/* 1 / (1 + e^-x) from e = e^-|x| <= 1: no overflow for any x, and the
 * small tail (x << 0) keeps full relative precision. */
static inline double sigmoid_f64(double x) {
  double e = exp(-fabs(x));
  return (x >= 0 ? 1 : e) / (1 + e);
}
static inline float sigmoid_f32(float x) {
  float e = exp(-fabs(x));
  return (x >= 0 ? 1 : e) / (1 + e);
}
#define SIGMOID(x) _Generic((x), double : sigmoid_f64, float : sigmoid_f32)(x)

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): x + log1p(e^-x) for x > 0,
 * log1p(e^x) otherwise; e^-|x| <= 1 never overflows. */
#define SOFTPLUS(x) ((x > 0 ? x : 0) + log1p(exp(-fabs(x))))

/* --- Unary operators: y = F(x, a), dy/dx = D(x, y, a) ----------------- */

typedef void (*unary_fwd_fn)(size_t n, double alpha, const void *x,
                             const void *tx, void *y, void *ty);
typedef void (*unary_bwd_fn)(size_t n, double alpha, const void *x,
                             const void *y, const void *gy, void *gx);

typedef struct unary_op {
  const char *name;
  bool has_alpha; /* takes a finite scalar attribute a */
  unary_fwd_fn fwd_f64, fwd_f32;
  tw__ad_backward_fn backward;
} unary_op;

/* Value (and JVP when ty is not NULL; tx is then not NULL either) and
 * adjoint kernels of one unary operator for element type T. */
#define UNARY_KERNELS(NAME, T, S, VALUES, F, D)                                \
  static void NAME##_fwd_##S(size_t n, double alpha, const void *vx,           \
                             const void *vtx, void *vy, void *vty) {           \
    const T a = (T)alpha;                                                      \
    const T *restrict xs = vx;                                                 \
    T *restrict ys = vy;                                                       \
    (void)a;                                                                   \
    VALUES(T, F);                                                              \
    if (vty == NULL)                                                           \
      return;                                                                  \
    const T *restrict txs = vtx;                                               \
    T *restrict tys = vty;                                                     \
    for (size_t i = 0; i < n; i++) {                                           \
      const T x = xs[i], y = ys[i];                                            \
      (void)x, (void)y;                                                        \
      tys[i] = (D)*txs[i];                                                     \
    }                                                                          \
  }                                                                            \
  static void NAME##_bwd_##S(size_t n, double alpha, const void *vx,           \
                             const void *vy, const void *vgy, void *vgx) {     \
    const T a = (T)alpha;                                                      \
    const T *restrict xs = vx, *restrict ys = vy, *restrict gys = vgy;         \
    T *restrict gxs = vgx;                                                     \
    (void)a;                                                                   \
    for (size_t i = 0; i < n; i++) {                                           \
      const T x = xs[i], y = ys[i];                                            \
      (void)x, (void)y;                                                        \
      gxs[i] += (D)*gys[i];                                                    \
    }                                                                          \
  }

static int unary_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err,
                          unary_bwd_fn bwd_f64, unary_bwd_fn bwd_f32);

/* Kernels, backward function and descriptor NAME_op of one operator; the
 * caller's semicolon ends the descriptor. */
#define UNARY_V(NAME, HAS_ALPHA, VALUES, F, D)                                 \
  UNARY_KERNELS(NAME, double, f64, VALUES, F, D)                               \
  UNARY_KERNELS(NAME, float, f32, VALUES, F, D)                                \
  static int NAME##_backward(tw_tape *tape, const tw__ad_node *node,           \
                             tw_err *err) {                                    \
    return unary_backward(tape, node, err, NAME##_bwd_f64, NAME##_bwd_f32);    \
  }                                                                            \
  static const unary_op NAME##_op = {#NAME, HAS_ALPHA, NAME##_fwd_f64,         \
                                     NAME##_fwd_f32, NAME##_backward}

#define UNARY(NAME, HAS_ALPHA, F, D) UNARY_V(NAME, HAS_ALPHA, VALUES_LOOP, F, D)

/* The values ys[i] = F(xs[i]) of a forward kernel: a plain loop, or one
 * call of a vector routine (vmath.c) for the functions that have one. */
#define VALUES_LOOP(T, F)                                                      \
  for (size_t i = 0; i < n; i++) {                                             \
    const T x = xs[i];                                                         \
    ys[i] = (F);                                                               \
  }
#define VALUES_VTANH(T, F)                                                     \
  _Generic((T)0, double : tw__vtanh_f64, float : tw__vtanh_f32)(n, xs, ys)

/* clang-format off */
/*    name      alpha  y = F(x, a)       dy/dx = D(x, y, a) */
UNARY(scale,    true,  a * x,            a);
UNARY(neg,      false, -x,               -1);
UNARY(exp,      false, exp(x),           y);
UNARY(log,      false, log(x),           1 / x);
UNARY(sin,      false, sin(x),           cos(x));
UNARY(cos,      false, cos(x),           -sin(x));
UNARY_V(tanh,   false, VALUES_VTANH, tanh(x), 1 - y * y);
UNARY(sqrt,     false, sqrt(x),          y == 0 ? 0 : 1 / (2 * y));
UNARY(abs,      false, fabs(x),          (x > 0) - (x < 0));
/* x < 0 ? 0 : x lets a NaN through, where fmax(x, 0) would hide it. */
UNARY(relu,     false, x < 0 ? 0 : x,    x > 0);
/* softplus' = sigmoid(x) = 1 - e^-y, to full precision in both tails. */
UNARY(softplus, false, SOFTPLUS(x),      -expm1(-y));
UNARY(sigmoid,  false, SIGMOID(x),       y * (1 - y));
/* clang-format on */

/* --- Binary operators: y = F(p, q, a), dy/dp = DP, dy/dq = DQ ---------- */

typedef void (*binary_fwd_fn)(size_t n, double alpha, const void *p,
                              const void *q, const void *tp, const void *tq,
                              void *y, void *ty);
/* Accumulates the adjoint of p (which == 0) or q (which == 1) into g. */
typedef void (*binary_bwd_fn)(size_t n, double alpha, unsigned which,
                              const void *p, const void *q, const void *y,
                              const void *gy, void *g);

typedef struct binary_op {
  const char *name;
  bool has_alpha;
  binary_fwd_fn fwd_f64, fwd_f32;
  tw__ad_backward_fn backward;
} binary_op;

/* The output tangent is zeroed by tw__ad_out, so each present input
 * tangent adds its term; p and q may be the same array (only read). */
#define BINARY_KERNELS(NAME, T, S, F, DP, DQ)                                  \
  static void NAME##_fwd_##S(size_t n, double alpha, const void *vp,           \
                             const void *vq, const void *vtp, const void *vtq, \
                             void *vy, void *vty) {                            \
    const T a = (T)alpha;                                                      \
    const T *restrict ps = vp, *restrict qs = vq;                              \
    T *restrict ys = vy;                                                       \
    (void)a;                                                                   \
    for (size_t i = 0; i < n; i++) {                                           \
      const T p = ps[i], q = qs[i];                                            \
      (void)p, (void)q;                                                        \
      ys[i] = (F);                                                             \
    }                                                                          \
    if (vty == NULL)                                                           \
      return;                                                                  \
    T *restrict tys = vty;                                                     \
    if (vtp != NULL) {                                                         \
      const T *restrict tps = vtp;                                             \
      for (size_t i = 0; i < n; i++) {                                         \
        const T p = ps[i], q = qs[i], y = ys[i];                               \
        (void)p, (void)q, (void)y;                                             \
        tys[i] += (DP)*tps[i];                                                 \
      }                                                                        \
    }                                                                          \
    if (vtq != NULL) {                                                         \
      const T *restrict tqs = vtq;                                             \
      for (size_t i = 0; i < n; i++) {                                         \
        const T p = ps[i], q = qs[i], y = ys[i];                               \
        (void)p, (void)q, (void)y;                                             \
        tys[i] += (DQ)*tqs[i];                                                 \
      }                                                                        \
    }                                                                          \
  }                                                                            \
  static void NAME##_bwd_##S(size_t n, double alpha, unsigned which,           \
                             const void *vp, const void *vq, const void *vy,   \
                             const void *vgy, void *vg) {                      \
    const T a = (T)alpha;                                                      \
    const T *restrict ps = vp, *restrict qs = vq, *restrict ys = vy;           \
    const T *restrict gys = vgy;                                               \
    T *restrict gs = vg;                                                       \
    (void)a;                                                                   \
    if (which == 0) {                                                          \
      for (size_t i = 0; i < n; i++) {                                         \
        const T p = ps[i], q = qs[i], y = ys[i];                               \
        (void)p, (void)q, (void)y;                                             \
        gs[i] += (DP)*gys[i];                                                  \
      }                                                                        \
    } else {                                                                   \
      for (size_t i = 0; i < n; i++) {                                         \
        const T p = ps[i], q = qs[i], y = ys[i];                               \
        (void)p, (void)q, (void)y;                                             \
        gs[i] += (DQ)*gys[i];                                                  \
      }                                                                        \
    }                                                                          \
  }

static int binary_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err,
                           binary_bwd_fn bwd_f64, binary_bwd_fn bwd_f32);

#define BINARY(NAME, HAS_ALPHA, F, DP, DQ)                                     \
  BINARY_KERNELS(NAME, double, f64, F, DP, DQ)                                 \
  BINARY_KERNELS(NAME, float, f32, F, DP, DQ)                                  \
  static int NAME##_backward(tw_tape *tape, const tw__ad_node *node,           \
                             tw_err *err) {                                    \
    return binary_backward(tape, node, err, NAME##_bwd_f64, NAME##_bwd_f32);   \
  }                                                                            \
  static const binary_op NAME##_op = {#NAME, HAS_ALPHA, NAME##_fwd_f64,        \
                                      NAME##_fwd_f32, NAME##_backward}

/* clang-format off */
/*     name  alpha  y = F(p, q, a)  dy/dp   dy/dq */
BINARY(add,  false, p + q,          1,      1);
BINARY(sub,  false, p - q,          1,      -1);
BINARY(mul,  false, p * q,          q,      p);
BINARY(div,  false, p / q,          1 / q,  -y / q);
BINARY(axpy, true,  a * p + q,      a,      1);
/* clang-format on */

/* --- Drivers ---------------------------------------------------------- */

/* alpha becomes a T in the kernels, so it must be finite in the dtype. */
static int check_alpha(const char *op, double alpha, tw_dtype dtype,
                       tw_err *err) {
  if (!isfinite(alpha))
    return tw_err_set(err, TW_EINVAL, "%s: alpha must be finite, got %g", op,
                      alpha);
  if (dtype == TW_F32 && fabs(alpha) > FLT_MAX)
    return tw_err_set(err, TW_EINVAL, "%s: alpha %g overflows f32", op, alpha);
  return TW_OK;
}

static int unary(tw_tape *tape, const unary_op *op, double alpha, tw_tensor *a,
                 tw_tensor **out, tw_err *err) {
  int rc = tw__ad_check_input(tape, op->name, a, err);
  if (rc == TW_OK && op->has_alpha)
    rc = check_alpha(op->name, alpha, a->dtype, err);
  tw_tensor *y = NULL;
  if (rc == TW_OK)
    rc = tw__ad_out(tape, op->name, a->dtype, a->ndim, a->shape,
                    a->tangent != NULL, &y, err);
  if (rc != TW_OK)
    return rc;
  unary_fwd_fn fwd = a->dtype == TW_F64 ? op->fwd_f64 : op->fwd_f32;
  fwd(a->size, alpha, a->data, a->tangent, y->data, y->tangent);
  tw__ad_node *node = NULL;
  rc = tw__ad_finish(tape, op->name, op->backward, &a, 1, y, &node, err);
  if (rc != TW_OK)
    return rc;
  if (node != NULL)
    node->alpha = alpha;
  *out = y;
  return TW_OK;
}

static int unary_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err,
                          unary_bwd_fn bwd_f64, unary_bwd_fn bwd_f32) {
  tw_tensor *a = node->in[0];
  const tw_tensor *y = node->out;
  if (!a->requires_grad)
    return TW_OK;
  void *ga = tw__ad_grad(tape, a);
  if (ga == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint",
                      node->op);
  unary_bwd_fn bwd = y->dtype == TW_F64 ? bwd_f64 : bwd_f32;
  bwd(y->size, node->alpha, a->data, y->data, y->grad, ga);
  return TW_OK;
}

static int binary(tw_tape *tape, const binary_op *op, double alpha,
                  tw_tensor *a, tw_tensor *b, tw_tensor **out, tw_err *err) {
  int rc = tw__ad_check_same(tape, op->name, a, b, err);
  if (rc == TW_OK && op->has_alpha)
    rc = check_alpha(op->name, alpha, a->dtype, err);
  if (rc != TW_OK)
    return rc;
  tw_tensor *in[2] = {a, b};
  tw_tensor *y = NULL;
  rc = tw__ad_out(tape, op->name, a->dtype, a->ndim, a->shape,
                  tw__ad_any_tangent(in, 2), &y, err);
  if (rc != TW_OK)
    return rc;
  binary_fwd_fn fwd = a->dtype == TW_F64 ? op->fwd_f64 : op->fwd_f32;
  fwd(a->size, alpha, a->data, b->data, a->tangent, b->tangent, y->data,
      y->tangent);
  tw__ad_node *node = NULL;
  rc = tw__ad_finish(tape, op->name, op->backward, in, 2, y, &node, err);
  if (rc != TW_OK)
    return rc;
  if (node != NULL)
    node->alpha = alpha;
  *out = y;
  return TW_OK;
}

static int binary_backward(tw_tape *tape, const tw__ad_node *node, tw_err *err,
                           binary_bwd_fn bwd_f64, binary_bwd_fn bwd_f32) {
  const tw_tensor *y = node->out;
  const tw_tensor *p = node->in[0], *q = node->in[1];
  binary_bwd_fn bwd = y->dtype == TW_F64 ? bwd_f64 : bwd_f32;
  /* One pass per input: with p == q both passes add into one buffer. */
  for (unsigned k = 0; k < 2; k++) {
    tw_tensor *x = node->in[k];
    if (!x->requires_grad)
      continue;
    void *g = tw__ad_grad(tape, x);
    if (g == NULL)
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint",
                        node->op);
    bwd(y->size, node->alpha, k, p->data, q->data, y->data, y->grad, g);
  }
  return TW_OK;
}

/* --- Public operators ------------------------------------------------- */

int tw_ad_add(tw_tape *tape, tw_tensor *a, tw_tensor *b, tw_tensor **out,
              tw_err *err) {
  return binary(tape, &add_op, 0, a, b, out, err);
}

int tw_ad_sub(tw_tape *tape, tw_tensor *a, tw_tensor *b, tw_tensor **out,
              tw_err *err) {
  return binary(tape, &sub_op, 0, a, b, out, err);
}

int tw_ad_mul(tw_tape *tape, tw_tensor *a, tw_tensor *b, tw_tensor **out,
              tw_err *err) {
  return binary(tape, &mul_op, 0, a, b, out, err);
}

int tw_ad_div(tw_tape *tape, tw_tensor *a, tw_tensor *b, tw_tensor **out,
              tw_err *err) {
  return binary(tape, &div_op, 0, a, b, out, err);
}

int tw_ad_axpy(tw_tape *tape, double alpha, tw_tensor *a, tw_tensor *b,
               tw_tensor **out, tw_err *err) {
  return binary(tape, &axpy_op, alpha, a, b, out, err);
}

int tw_ad_scale(tw_tape *tape, double alpha, tw_tensor *a, tw_tensor **out,
                tw_err *err) {
  return unary(tape, &scale_op, alpha, a, out, err);
}

int tw_ad_neg(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &neg_op, 0, a, out, err);
}

int tw_ad_exp(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &exp_op, 0, a, out, err);
}

int tw_ad_log(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &log_op, 0, a, out, err);
}

int tw_ad_sin(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &sin_op, 0, a, out, err);
}

int tw_ad_cos(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &cos_op, 0, a, out, err);
}

int tw_ad_tanh(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &tanh_op, 0, a, out, err);
}

int tw_ad_sqrt(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &sqrt_op, 0, a, out, err);
}

int tw_ad_abs(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &abs_op, 0, a, out, err);
}

int tw_ad_relu(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &relu_op, 0, a, out, err);
}

int tw_ad_softplus(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &softplus_op, 0, a, out, err);
}

int tw_ad_sigmoid(tw_tape *tape, tw_tensor *a, tw_tensor **out, tw_err *err) {
  return unary(tape, &sigmoid_op, 0, a, out, err);
}
