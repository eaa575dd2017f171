/*
 * ad_int.h - what the operator files of src/ad share: the tape's node
 * record and the helpers every operator uses to check arguments, make its
 * output, record itself and reach adjoint buffers.
 *
 * An operator file (ops_*.c) follows one pattern:
 *
 *   int tw_ad_exp(tw_tape *t, tw_tensor *a, tw_tensor **out, tw_err *err) {
 *     int rc = tw__ad_check_input(t, "exp", a, err);      // arguments
 *     tw_tensor *y;
 *     if (rc == TW_OK) rc = tw__ad_out(t, "exp", a->dtype, a->ndim,
 *                                      a->shape, tw__ad_any_tangent(&a, 1),
 *                                      &y, err);          // output
 *     ... forward kernel into y->data, JVP into y->tangent if non-NULL ...
 *     if (rc == TW_OK) rc = tw__ad_finish(t, "exp", exp_backward, &a, 1,
 *                                         y, NULL, err);  // check+record
 *     if (rc == TW_OK) *out = y;
 *     return rc;
 *   }
 *
 * and a backward function that reads node->out->grad (never NULL when it
 * is called) and accumulates into the grads of the inputs that require
 * them (tw__ad_grad gives a zeroed buffer on first use).
 *
 * Nothing an operator allocates needs freeing: it all lives in the tape's
 * arena until tw_tape_reset. A failing operator leaves the tape as it was
 * apart from unreachable arena bytes.
 */
#ifndef TWIN_AD_INT_H
#define TWIN_AD_INT_H

#include "twin/ad.h"
#include "twin/arena.h"

typedef struct tw__ad_node tw__ad_node;

/* Accumulates the adjoints of node's inputs from node->out->grad. */
typedef int (*tw__ad_backward_fn)(tw_tape *tape, const tw__ad_node *node,
                                  tw_err *err);

#define TW__AD_MAX_IN 3

struct tw__ad_node {
  const char *op; /* static name, "exp" */
  tw__ad_backward_fn backward;
  tw_tensor *in[TW__AD_MAX_IN];
  unsigned nin;
  tw_tensor *out;
  double alpha;      /* scalar attribute: axpy/scale alpha, huber delta */
  const void *saved; /* operator-specific data in the arena, or NULL */
  size_t nsaved;     /* its element count, as the operator defines it */
};

struct tw_tape {
  tw_arena arena;
  tw__ad_node *nodes; /* heap array kept across resets */
  size_t nnodes, cap;
  bool recording;
  bool check_finite;
  const char *ctx_block;
  int64_t ctx_step;
};

/* Bytes from the tape's arena (aligned for any element type), or NULL. */
void *tw__ad_alloc(tw_tape *tape, size_t bytes);

/* Validates one input: non-NULL, ndim <= max, size >= 1. */
int tw__ad_check_input(const tw_tape *tape, const char *op, const tw_tensor *a,
                       tw_err *err);
/* Validates two inputs of the same dtype and shape. */
int tw__ad_check_same(const tw_tape *tape, const char *op, const tw_tensor *a,
                      const tw_tensor *b, tw_err *err);

/* Formats "[2,3]" into buf for messages. */
const char *tw__ad_shape_str(const tw_tensor *t, char *buf, size_t cap);

/* Makes the output tensor (zeroed data; a zeroed tangent when
 * with_tangent). */
int tw__ad_out(tw_tape *tape, const char *op, tw_dtype dtype, unsigned ndim,
               const size_t *shape, bool with_tangent, tw_tensor **out,
               tw_err *err);

/* True if any of the n inputs carries a tangent / requires grad. */
bool tw__ad_any_tangent(tw_tensor *const *in, unsigned n);
bool tw__ad_any_requires_grad(tw_tensor *const *in, unsigned n);

/* Checks out's value (and tangent) when check_finite is on, then records a
 * node if the tape is recording and an input requires grad (setting
 * out->node and out->requires_grad). *node_out, if not NULL, receives the
 * node (or NULL when nothing was recorded) so the operator can attach
 * alpha/saved data. */
int tw__ad_finish(tw_tape *tape, const char *op, tw__ad_backward_fn backward,
                  tw_tensor *const *in, unsigned nin, tw_tensor *out,
                  tw__ad_node **node_out, tw_err *err);

/* The adjoint buffer of t, zeroed on first use; NULL only on allocation
 * failure. Operators call it only for inputs with requires_grad. */
void *tw__ad_grad(tw_tape *tape, tw_tensor *t);

/* y[i] = tanh(x[i]) for i < n, vectorised where the C library can
 * (vmath.c); an element's value never depends on n or on i. */
void tw__vtanh_f64(size_t n, const double *x, double *y);
void tw__vtanh_f32(size_t n, const float *x, float *y);

/* TW_ENUMERIC naming context, op and element if buf[0..n) of dtype holds a
 * NaN or Inf; what is "value", "tangent" or "adjoint". */
int tw__ad_check_buf(const tw_tape *tape, const char *op, const char *what,
                     tw_dtype dtype, const void *buf, size_t n, tw_err *err);

#endif /* TWIN_AD_INT_H */
