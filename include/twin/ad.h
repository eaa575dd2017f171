/*
 * ad.h - dense tensors and operators with hand-written adjoints: Twin's
 * kernel-level automatic differentiation.
 *
 * Reverse mode. A tw_tape records operator calls, not scalars: each call
 * appends one node (the operator, its inputs, its output, what it saved)
 * and its reverse pass runs the operator's hand-written adjoint kernel over
 * whole tensors. Tensors made through a tape live in the tape's arena and
 * die at tw_tape_reset, which a simulation calls once per step, so after
 * warm-up a step allocates nothing.
 *
 * Forward mode. A tensor may carry a tangent (the dual part). Every
 * operator that sees a tangent on an input propagates it to its output
 * (a JVP), in the same call, with the same kernels' derivative formulas.
 * Tests use it to check every adjoint: for random u and w,
 * <w, J u> (forward) must equal <J^T w, u> (reverse) to 1e-10 relative.
 *
 * Shapes. Tensors are row-major and contiguous, of up to TW_AD_MAX_DIMS
 * dimensions; a scalar has ndim 0 and size 1. Elementwise binary operators
 * take equal shapes; tw_ad_broadcast makes them so explicitly (its adjoint
 * sums), so no operator broadcasts behind the caller's back. Both operands
 * of an operator have the same dtype; mixing f64 and f32 is TW_ETYPE.
 *
 * Errors. Wrong shapes, mismatched dtypes, empty tensors where a value is
 * needed, and out-of-range indices are reported as TW_EINVAL / TW_ETYPE /
 * TW_ERANGE with a message naming the operator and the shapes, and nothing
 * is recorded. With tw_tape_set_check_finite, an operator whose forward
 * value or whose adjoint produces NaN or Inf fails with TW_ENUMERIC naming
 * the context (tw_tape_set_context: block and step), the operator and the
 * element.
 *
 * Determinism. Every kernel reduces in a fixed order; BLAS calls run with
 * the library's single-threaded path, so results do not depend on how many
 * threads OpenBLAS would use.
 *
 * Inputs are passed as non-const pointers because the reverse pass writes
 * their ->grad; operators never change an input's data.
 *
 * Thread safety: a tape and its tensors belong to one thread at a time.
 * Different tapes may be used concurrently.
 */
#ifndef TWIN_AD_H
#define TWIN_AD_H

#include <stdbool.h>

#include "twin/common.h"
#include "twin/dtype.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

#define TW_AD_MAX_DIMS 4

/* Size in bytes of one element of dtype. */
TW_API size_t tw_dtype_size(tw_dtype dtype);

/* A dense tensor. The struct is public so kernels and blocks read data
 * directly; create tensors only through the functions below. data, tangent
 * and grad point to size elements of dtype each (tangent and grad may be
 * NULL). */
typedef struct tw_tensor {
  tw_dtype dtype;
  unsigned ndim;
  size_t shape[TW_AD_MAX_DIMS];
  size_t strides[TW_AD_MAX_DIMS]; /* in elements, row-major contiguous */
  size_t size;                    /* product of shape; 1 for a scalar */
  void *data;
  void *tangent;      /* forward-mode tangent, or NULL */
  void *grad;         /* reverse-mode adjoint, or NULL until needed */
  uint32_t node;      /* producing tape node + 1; 0 for a leaf */
  bool requires_grad; /* a leaf whose adjoint is wanted, or any node
                         output that depends on one */
} tw_tensor;

typedef struct tw_tape tw_tape;

/* --- Tapes ----------------------------------------------------------- */

/* Creates a tape whose arena grows in chunks of chunk_bytes (0: 1 MiB). */
TW_API int tw_tape_new(size_t chunk_bytes, tw_tape **out, tw_err *err);
/* Frees the tape, its arena and every tensor made through it. NULL ok. */
TW_API void tw_tape_free(tw_tape *tape);

/* Forgets every node and tensor (the arena keeps its largest chunk). The
 * context, check-finite flag and recording flag are kept. */
TW_API void tw_tape_reset(tw_tape *tape);

/* With recording off, operators compute values (and tangents) but record
 * nothing: the forward pass of a rollout that needs no gradient. Default:
 * on. */
TW_API void tw_tape_set_recording(tw_tape *tape, bool on);

/* With check_finite on, every forward value and every adjoint is checked
 * for NaN/Inf. Default: off. */
TW_API void tw_tape_set_check_finite(tw_tape *tape, bool on);

/* Names where the tape is used, for error messages: the block name
 * (borrowed; must outlive its use) and the step index. */
TW_API void tw_tape_set_context(tw_tape *tape, const char *block, int64_t step);

/* Bytes the tape's arena holds now and at most since creation. */
TW_API size_t tw_tape_bytes(const tw_tape *tape);
TW_API size_t tw_tape_peak_bytes(const tw_tape *tape);
/* Number of nodes recorded since the last reset. */
TW_API size_t tw_tape_nodes(const tw_tape *tape);

/* --- Tensors --------------------------------------------------------- */

/* A zero-filled tensor in the tape's arena. ndim 0 is a scalar; every
 * dimension must be >= 1 (an empty tensor is TW_EINVAL), and the total size
 * must not overflow. */
TW_API int tw_tensor_new(tw_tape *tape, tw_dtype dtype, unsigned ndim,
                         const size_t *shape, tw_tensor **out, tw_err *err);

/* A leaf tensor holding a copy of data (size elements of dtype). With
 * requires_grad, reverse passes accumulate its adjoint into ->grad. */
TW_API int tw_tensor_from(tw_tape *tape, tw_dtype dtype, unsigned ndim,
                          const size_t *shape, const void *data,
                          bool requires_grad, tw_tensor **out, tw_err *err);

/* A leaf tensor over caller memory, no copy: data (and grad, if not NULL,
 * which then receives accumulated adjoints; it is not zeroed) must outlive
 * the tape's next reset. This is how parameters whose gradients accumulate
 * across steps enter a step's tape. */
TW_API int tw_tensor_wrap(tw_tape *tape, tw_dtype dtype, unsigned ndim,
                          const size_t *shape, void *data, void *grad,
                          tw_tensor **out, tw_err *err);

/* A scalar constant. */
TW_API int tw_tensor_scalar(tw_tape *tape, tw_dtype dtype, double value,
                            tw_tensor **out, tw_err *err);

/* A view of t with another shape of the same size (shares data, tangent
 * and grad; records a node so adjoints flow back). */
TW_API int tw_ad_reshape(tw_tape *tape, tw_tensor *t, unsigned ndim,
                         const size_t *shape, tw_tensor **out, tw_err *err);

/* Gives t a zeroed tangent (if it has none) and returns it, so a caller can
 * seed forward mode. */
TW_API void *tw_tensor_tangent(tw_tape *tape, tw_tensor *t, tw_err *err);
/* Gives t a zeroed adjoint (if it has none) and returns it, so a caller can
 * seed the reverse pass with output cotangents. */
TW_API void *tw_tensor_grad(tw_tape *tape, tw_tensor *t, tw_err *err);

/* Element i (flat index) as a double, whatever the dtype. */
TW_API double tw_tensor_get(const tw_tensor *t, size_t i);

/* --- Reverse pass ---------------------------------------------------- */

/* Seeds d(loss)/d(loss) = 1 (loss must be a scalar) and runs every
 * recorded node's adjoint in reverse order. Adjoints accumulate (+=) into
 * ->grad of every tensor that requires grad. */
TW_API int tw_tape_backward(tw_tape *tape, tw_tensor *loss, tw_err *err);

/* Runs the adjoints of every recorded node in reverse order with the
 * cotangents the caller has already written into outputs' ->grad (via
 * tw_tensor_grad): the vector-Jacobian product of a whole step. */
TW_API int tw_tape_reverse(tw_tape *tape, tw_err *err);

/* --- Operators ------------------------------------------------------- */
/* Each writes a new tensor to *out (in the tape's arena) and, when
 * recording and an input requires grad, records a node. */

/* Elementwise, equal shapes and dtypes. */
TW_API int tw_ad_add(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                     tw_err *err);
TW_API int tw_ad_sub(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                     tw_err *err);
TW_API int tw_ad_mul(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                     tw_err *err);
TW_API int tw_ad_div(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                     tw_err *err);
/* alpha * a + b (the integrators' update, one kernel). */
TW_API int tw_ad_axpy(tw_tape *t, double alpha, tw_tensor *a, tw_tensor *b,
                      tw_tensor **out, tw_err *err);
/* alpha * a. */
TW_API int tw_ad_scale(tw_tape *t, double alpha, tw_tensor *a, tw_tensor **out,
                       tw_err *err);

/* Unary math. Derivative conventions at non-smooth points: sqrt'(0) = 0
 * (a "safe" gradient instead of +Inf, as JAX users get from the
 * where-trick), |x|'(0) = 0, relu'(0) = 0. log of x < 0 and sqrt of x < 0
 * give NaN and log(0) gives -Inf, which check_finite reports.
 * softplus(x) = log(1 + e^x), computed without overflow. */
TW_API int tw_ad_neg(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_exp(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_log(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_sin(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_cos(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_tanh(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_sqrt(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_abs(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_relu(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_softplus(tw_tape *t, tw_tensor *a, tw_tensor **out,
                          tw_err *err);
TW_API int tw_ad_sigmoid(tw_tape *t, tw_tensor *a, tw_tensor **out,
                         tw_err *err);

/* Reductions to a scalar (ndim 0). norm is the Euclidean norm with
 * norm'(0) = 0. dot takes equal shapes. */
TW_API int tw_ad_sum(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_mean(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);
TW_API int tw_ad_dot(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                     tw_err *err);
TW_API int tw_ad_norm(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err);

/* NumPy broadcasting of a to shape (dimensions of a aligned on the right,
 * each equal or 1); the adjoint sums over the broadcast dimensions. */
TW_API int tw_ad_broadcast(tw_tape *t, tw_tensor *a, unsigned ndim,
                           const size_t *shape, tw_tensor **out, tw_err *err);

/* Indexing along the flat element order. gather: out[i] = a[idx[i]], out has
 * n elements (shape [n]). scatter_add: out = zeros(size), out[idx[i]] +=
 * a[i] for the n = a->size elements. Indices are copied into the tape; an
 * index >= a->size (gather) or >= size (scatter) is TW_ERANGE. Repeated
 * indices accumulate in index order, deterministically. */
TW_API int tw_ad_gather(tw_tape *t, tw_tensor *a, const uint32_t *idx, size_t n,
                        tw_tensor **out, tw_err *err);
TW_API int tw_ad_scatter_add(tw_tape *t, tw_tensor *a, const uint32_t *idx,
                             size_t size, tw_tensor **out, tw_err *err);

/* Linear algebra through cblas (OpenBLAS). matmul: a [m,k] x b [k,n] ->
 * [m,n]. matvec: a [m,n] x x [n] -> [m]. */
TW_API int tw_ad_matmul(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                        tw_err *err);
TW_API int tw_ad_matvec(tw_tape *t, tw_tensor *a, tw_tensor *x, tw_tensor **out,
                        tw_err *err);

/* Losses to a scalar. mse = mean((a - b)^2). huber with threshold delta > 0:
 * mean of 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta). */
TW_API int tw_ad_mse(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                     tw_err *err);
TW_API int tw_ad_huber(tw_tape *t, tw_tensor *a, tw_tensor *b, double delta,
                       tw_tensor **out, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_AD_H */
