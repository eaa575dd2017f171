/*
 * tape.c - the operator tape: node recording, the reverse pass, and the
 * helpers operators share (argument checks, outputs, finiteness checks).
 *
 * Invariants: nodes[0..nnodes) are in execution order and every input of
 * node i is a leaf or the output of a node j < i, so one reverse sweep
 * visits each node after every node that consumes its output. The node
 * array is heap memory kept across resets; all tensors and saved data are
 * arena memory freed by tw_tape_reset.
 */
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "ad_int.h"
#include "twin/alloc.h"

#define DEFAULT_CHUNK ((size_t)1 << 20)

int tw_tape_new(size_t chunk_bytes, tw_tape **out, tw_err *err) {
  tw_tape *t = tw_calloc(1, sizeof *t);
  if (t == NULL)
    return tw_err_set(err, TW_ENOMEM, "tape: out of memory");
  tw_arena_init(&t->arena, chunk_bytes ? chunk_bytes : DEFAULT_CHUNK);
  t->recording = true;
  t->ctx_step = -1;
  *out = t;
  return TW_OK;
}

void tw_tape_free(tw_tape *tape) {
  if (tape == NULL)
    return;
  tw_arena_fini(&tape->arena);
  tw_free(tape->nodes);
  tw_free(tape);
}

void tw_tape_reset(tw_tape *tape) {
  tw_arena_reset(&tape->arena);
  tape->nnodes = 0;
}

void tw_tape_set_recording(tw_tape *tape, bool on) { tape->recording = on; }
void tw_tape_set_check_finite(tw_tape *tape, bool on) {
  tape->check_finite = on;
}
void tw_tape_set_context(tw_tape *tape, const char *block, int64_t step) {
  tape->ctx_block = block;
  tape->ctx_step = step;
}

size_t tw_tape_bytes(const tw_tape *tape) { return tape->arena.used; }
size_t tw_tape_peak_bytes(const tw_tape *tape) { return tape->arena.peak; }
size_t tw_tape_nodes(const tw_tape *tape) { return tape->nnodes; }

void *tw__ad_alloc(tw_tape *tape, size_t bytes) {
  return tw_arena_alloc(&tape->arena, bytes);
}

const char *tw__ad_shape_str(const tw_tensor *t, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = '\0';
  len += (size_t)snprintf(buf, cap, "[");
  for (unsigned i = 0; i < t->ndim && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%zu", i ? "," : "",
                            t->shape[i]);
  if (len < cap)
    (void)snprintf(buf + len, cap - len, "]");
  return buf;
}

int tw__ad_check_input(const tw_tape *tape, const char *op, const tw_tensor *a,
                       tw_err *err) {
  (void)tape;
  if (a == NULL)
    return tw_err_set(err, TW_EINVAL, "%s: input is NULL", op);
  if (a->ndim > TW_AD_MAX_DIMS || a->size == 0 || a->data == NULL)
    return tw_err_set(err, TW_EINVAL, "%s: input is not a valid tensor", op);
  if (a->dtype != TW_F64 && a->dtype != TW_F32)
    return tw_err_set(err, TW_ETYPE, "%s: unknown dtype %d", op, (int)a->dtype);
  return TW_OK;
}

int tw__ad_check_same(const tw_tape *tape, const char *op, const tw_tensor *a,
                      const tw_tensor *b, tw_err *err) {
  int rc = tw__ad_check_input(tape, op, a, err);
  if (rc == TW_OK)
    rc = tw__ad_check_input(tape, op, b, err);
  if (rc != TW_OK)
    return rc;
  if (a->dtype != b->dtype)
    return tw_err_set(err, TW_ETYPE, "%s: dtype mismatch: %s and %s", op,
                      tw_dtype_name(a->dtype), tw_dtype_name(b->dtype));
  bool same = a->ndim == b->ndim;
  for (unsigned i = 0; same && i < a->ndim; i++)
    same = a->shape[i] == b->shape[i];
  if (!same) {
    char sa[64], sb[64];
    return tw_err_set(err, TW_EINVAL, "%s: shape mismatch: %s and %s", op,
                      tw__ad_shape_str(a, sa, sizeof sa),
                      tw__ad_shape_str(b, sb, sizeof sb));
  }
  return TW_OK;
}

bool tw__ad_any_tangent(tw_tensor *const *in, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (in[i]->tangent != NULL)
      return true;
  return false;
}

bool tw__ad_any_requires_grad(tw_tensor *const *in, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (in[i]->requires_grad)
      return true;
  return false;
}

/* Context suffix for messages: " (block 'spring', step 17)". */
static void context_str(const tw_tape *tape, char *buf, size_t cap) {
  if (tape->ctx_block != NULL && tape->ctx_step >= 0)
    (void)snprintf(buf, cap, " (block '%s', step %lld)", tape->ctx_block,
                   (long long)tape->ctx_step);
  else if (tape->ctx_block != NULL)
    (void)snprintf(buf, cap, " (block '%s')", tape->ctx_block);
  else if (tape->ctx_step >= 0)
    (void)snprintf(buf, cap, " (step %lld)", (long long)tape->ctx_step);
  else
    buf[0] = '\0';
}

int tw__ad_check_buf(const tw_tape *tape, const char *op, const char *what,
                     tw_dtype dtype, const void *buf, size_t n, tw_err *err) {
  size_t bad = SIZE_MAX;
  if (dtype == TW_F64) {
    const double *p = buf;
    for (size_t i = 0; i < n && bad == SIZE_MAX; i++)
      if (!isfinite(p[i]))
        bad = i;
  } else {
    const float *p = buf;
    for (size_t i = 0; i < n && bad == SIZE_MAX; i++)
      if (!isfinite(p[i]))
        bad = i;
  }
  if (bad == SIZE_MAX)
    return TW_OK;
  char ctx[160];
  context_str(tape, ctx, sizeof ctx);
  double v = dtype == TW_F64 ? ((const double *)buf)[bad]
                             : (double)((const float *)buf)[bad];
  return tw_err_set(err, TW_ENUMERIC, "%s: %s %s at element %zu%s", op,
                    isnan(v) ? "NaN" : "Inf", what, bad, ctx);
}

int tw__ad_out(tw_tape *tape, const char *op, tw_dtype dtype, unsigned ndim,
               const size_t *shape, bool with_tangent, tw_tensor **out,
               tw_err *err) {
  int rc = tw_tensor_new(tape, dtype, ndim, shape, out, err);
  if (rc == TW_OK && with_tangent && tw_tensor_tangent(tape, *out, err) == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", op);
  return rc;
}

int tw__ad_finish(tw_tape *tape, const char *op, tw__ad_backward_fn backward,
                  tw_tensor *const *in, unsigned nin, tw_tensor *out,
                  tw__ad_node **node_out, tw_err *err) {
  if (node_out != NULL)
    *node_out = NULL;
  if (tape->check_finite) {
    int rc = tw__ad_check_buf(tape, op, "value", out->dtype, out->data,
                              out->size, err);
    if (rc == TW_OK && out->tangent != NULL)
      rc = tw__ad_check_buf(tape, op, "tangent", out->dtype, out->tangent,
                            out->size, err);
    if (rc != TW_OK)
      return rc;
  }
  if (!tape->recording || !tw__ad_any_requires_grad(in, nin))
    return TW_OK;
  if (tape->nnodes == tape->cap) {
    size_t cap = tape->cap ? tape->cap * 2 : 256;
    tw__ad_node *nodes = tw_reallocarray(tape->nodes, cap, sizeof *nodes);
    if (nodes == NULL)
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory recording", op);
    tape->nodes = nodes;
    tape->cap = cap;
  }
  if (tape->nnodes >= UINT32_MAX - 1)
    return tw_err_set(err, TW_ELIMIT, "%s: tape holds too many nodes", op);
  tw__ad_node *node = &tape->nodes[tape->nnodes++];
  memset(node, 0, sizeof *node);
  node->op = op;
  node->backward = backward;
  node->nin = nin;
  for (unsigned i = 0; i < nin; i++)
    node->in[i] = in[i];
  node->out = out;
  out->node = (uint32_t)tape->nnodes;
  out->requires_grad = true;
  if (node_out != NULL)
    *node_out = node;
  return TW_OK;
}

void *tw__ad_grad(tw_tape *tape, tw_tensor *t) {
  if (t->grad == NULL) {
    size_t bytes = t->size * tw_dtype_size(t->dtype);
    t->grad = tw_arena_alloc(&tape->arena, bytes);
    if (t->grad != NULL)
      memset(t->grad, 0, bytes);
  }
  return t->grad;
}

int tw_tape_reverse(tw_tape *tape, tw_err *err) {
  for (size_t i = tape->nnodes; i-- > 0;) {
    const tw__ad_node *node = &tape->nodes[i];
    if (node->out->grad == NULL)
      continue; /* no cotangent reached this node */
    int rc = node->backward(tape, node, err);
    if (rc != TW_OK)
      return rc;
    if (!tape->check_finite)
      continue;
    for (unsigned k = 0; k < node->nin; k++) {
      const tw_tensor *in = node->in[k];
      if (in->grad == NULL)
        continue;
      rc = tw__ad_check_buf(tape, node->op, "adjoint", in->dtype, in->grad,
                            in->size, err);
      if (rc != TW_OK)
        return rc;
    }
  }
  return TW_OK;
}

int tw_tape_backward(tw_tape *tape, tw_tensor *loss, tw_err *err) {
  if (loss == NULL || loss->size != 1)
    return tw_err_set(err, TW_EINVAL,
                      "backward: the loss must be a scalar tensor");
  if (!loss->requires_grad)
    return tw_err_set(err, TW_EINVAL,
                      "backward: the loss does not depend on any tensor that "
                      "requires grad");
  void *g = tw__ad_grad(tape, loss);
  if (g == NULL)
    return tw_err_set(err, TW_ENOMEM, "backward: out of memory");
  if (loss->dtype == TW_F64)
    *(double *)g = 1.0;
  else
    *(float *)g = 1.0f;
  return tw_tape_reverse(tape, err);
}
