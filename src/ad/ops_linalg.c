/*
 * ops_linalg.c - matrix products through cblas (OpenBLAS): matmul
 * ([m,k] x [k,n]) and matvec ([m,n] x [n]).
 *
 * Tangent: d(AB) = dA B + A dB. Adjoints: dA += G B^T, dB += A^T G (for
 * matvec, dA += g x^T and dx += A^T g). Every BLAS call here runs with
 * alpha = 1 and beta = 1, so it accumulates straight into the zeroed
 * output, the output tangent, or the inputs' adjoint buffers.
 *
 * Determinism. A multithreaded OpenBLAS splits a product across threads,
 * and the split (hence the order of the partial sums, hence the rounding)
 * depends on the thread count, which comes from OPENBLAS_NUM_THREADS or
 * the machine's core count. ad.h promises results that do not depend on
 * it, so before the first BLAS call blas_init() switches OpenBLAS to its
 * single-threaded path, once per process (pthread_once). The setting is
 * process-wide and belongs to OpenBLAS, not to Twin state; Twin
 * parallelises across blocks on its worker pool instead, where one BLAS
 * thread per worker is also what avoids oversubscribing the cores.
 *
 * Each BLAS routine is reached through one dtype dispatcher (gemm, gemv,
 * ger) that picks the d- or s- variant, so the operators are written once.
 *
 * TW_AD_NO_BLAS (a compile-time switch, set by the model SDK when it
 * compiles src/ad for wasm32, where there is no cblas and no pthread)
 * replaces the three dispatchers by plain loops with the same contract
 * (accumulate into the output, alpha = beta = 1, row-major, the same
 * transposes) and a fixed summation order, so results stay deterministic.
 * The native build never sets it.
 */
#include <limits.h>

#include "ad_int.h"

#ifdef TW_AD_NO_BLAS

/* The two transposes the operators use, named as in cblas.h. */
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112 };

static void blas_init(void) {}

/* Index of element (i, j) of op(M), M stored row-major with ld columns. */
static size_t op_index(enum CBLAS_TRANSPOSE t, size_t i, size_t j, size_t ld) {
  return t == CblasNoTrans ? i * ld + j : j * ld + i;
}

/* C[m,n] += op(A)[m,k] op(B)[k,n]; each dot product summed in p order. */
#define LOOP_GEMM(T)                                                           \
  do {                                                                         \
    const T *A = a, *B = b;                                                    \
    T *C = c;                                                                  \
    for (size_t i = 0; i < m; i++)                                             \
      for (size_t j = 0; j < n; j++) {                                         \
        T acc = 0;                                                             \
        for (size_t p = 0; p < k; p++)                                         \
          acc += A[op_index(ta, i, p, lda)] * B[op_index(tb, p, j, ldb)];      \
        C[i * n + j] += acc;                                                   \
      }                                                                        \
  } while (0)

static void gemm(tw_dtype dt, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                 size_t m, size_t n, size_t k, const void *a, const void *b,
                 void *c) {
  size_t lda = ta == CblasNoTrans ? k : m;
  size_t ldb = tb == CblasNoTrans ? n : k;
  if (dt == TW_F64)
    LOOP_GEMM(double);
  else
    LOOP_GEMM(float);
}

/* y += op(A) x with A stored [m,n] row-major (y has m elements for
 * CblasNoTrans, n for CblasTrans). */
#define LOOP_GEMV(T)                                                           \
  do {                                                                         \
    const T *A = a, *X = x;                                                    \
    T *Y = y;                                                                  \
    size_t rows = ta == CblasNoTrans ? m : n,                                  \
           cols = ta == CblasNoTrans ? n : m;                                  \
    for (size_t i = 0; i < rows; i++) {                                        \
      T acc = 0;                                                               \
      for (size_t j = 0; j < cols; j++)                                        \
        acc += A[op_index(ta, i, j, n)] * X[j];                                \
      Y[i] += acc;                                                             \
    }                                                                          \
  } while (0)

static void gemv(tw_dtype dt, enum CBLAS_TRANSPOSE ta, size_t m, size_t n,
                 const void *a, const void *x, void *y) {
  if (dt == TW_F64)
    LOOP_GEMV(double);
  else
    LOOP_GEMV(float);
}

/* A[m,n] += x y^T. */
#define LOOP_GER(T)                                                            \
  do {                                                                         \
    const T *X = x, *Y = y;                                                    \
    T *A = a;                                                                  \
    for (size_t i = 0; i < m; i++)                                             \
      for (size_t j = 0; j < n; j++)                                           \
        A[i * n + j] += X[i] * Y[j];                                           \
  } while (0)

static void ger(tw_dtype dt, size_t m, size_t n, const void *x, const void *y,
                void *a) {
  if (dt == TW_F64)
    LOOP_GER(double);
  else
    LOOP_GER(float);
}

#else /* cblas */

#include <cblas.h>
#include <pthread.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void) { openblas_set_num_threads(1); }

static void blas_init(void) {
  (void)pthread_once(&blas_once, blas_single_thread);
}

/* C[m,n] += op(A)[m,k] op(B)[k,n], row-major, leading dimensions those of
 * the stored (untransposed) matrices. */
static void gemm(tw_dtype dt, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                 size_t m, size_t n, size_t k, const void *a, const void *b,
                 void *c) {
  blasint bm = (blasint)m, bn = (blasint)n, bk = (blasint)k;
  blasint lda = ta == CblasNoTrans ? bk : bm;
  blasint ldb = tb == CblasNoTrans ? bn : bk;
  if (dt == TW_F64)
    cblas_dgemm(CblasRowMajor, ta, tb, bm, bn, bk, 1.0, a, lda, b, ldb, 1.0, c,
                bn);
  else
    cblas_sgemm(CblasRowMajor, ta, tb, bm, bn, bk, 1.0f, a, lda, b, ldb, 1.0f,
                c, bn);
}

/* y += op(A) x with A stored [m,n] row-major. */
static void gemv(tw_dtype dt, enum CBLAS_TRANSPOSE ta, size_t m, size_t n,
                 const void *a, const void *x, void *y) {
  blasint bm = (blasint)m, bn = (blasint)n;
  if (dt == TW_F64)
    cblas_dgemv(CblasRowMajor, ta, bm, bn, 1.0, a, bn, x, 1, 1.0, y, 1);
  else
    cblas_sgemv(CblasRowMajor, ta, bm, bn, 1.0f, a, bn, x, 1, 1.0f, y, 1);
}

/* A[m,n] += x y^T. */
static void ger(tw_dtype dt, size_t m, size_t n, const void *x, const void *y,
                void *a) {
  blasint bm = (blasint)m, bn = (blasint)n;
  if (dt == TW_F64)
    cblas_dger(CblasRowMajor, bm, bn, 1.0, x, 1, y, 1, a, bn);
  else
    cblas_sger(CblasRowMajor, bm, bn, 1.0f, x, 1, y, 1, a, bn);
}

#endif /* TW_AD_NO_BLAS */

/* The adjoint buffer of t, or NULL after reporting TW_ENOMEM for op. */
static void *grad_of(tw_tape *tape, const char *op, tw_tensor *t, tw_err *err) {
  void *g = tw__ad_grad(tape, t);
  if (g == NULL)
    tw_err_set(err, TW_ENOMEM, "%s: out of memory for an adjoint", op);
  return g;
}

/* Common checks of a product a x b: valid inputs of one dtype, a a matrix,
 * b of ndim bdim (2 or 1), matching inner dimensions, and dimensions BLAS
 * can index. */
static int check_product(const tw_tape *t, const char *op, const tw_tensor *a,
                         const tw_tensor *b, unsigned bdim, tw_err *err) {
  int rc = tw__ad_check_input(t, op, a, err);
  if (rc == TW_OK)
    rc = tw__ad_check_input(t, op, b, err);
  if (rc != TW_OK)
    return rc;
  if (a->dtype != b->dtype)
    return tw_err_set(err, TW_ETYPE, "%s: dtype mismatch: %s and %s", op,
                      tw_dtype_name(a->dtype), tw_dtype_name(b->dtype));
  char sa[96], sb[96];
  if (a->ndim != 2 || b->ndim != bdim)
    return tw_err_set(err, TW_EINVAL, "%s: expected %s, got %s x %s", op,
                      bdim == 2 ? "matrices [m,k] x [k,n]"
                                : "a matrix [m,n] and a vector [n]",
                      tw__ad_shape_str(a, sa, sizeof sa),
                      tw__ad_shape_str(b, sb, sizeof sb));
  if (a->shape[1] != b->shape[0])
    return tw_err_set(err, TW_EINVAL, "%s: inner dimensions differ: %s x %s",
                      op, tw__ad_shape_str(a, sa, sizeof sa),
                      tw__ad_shape_str(b, sb, sizeof sb));
  bool fits = a->shape[0] <= INT_MAX && a->shape[1] <= INT_MAX &&
              b->shape[bdim - 1] <= INT_MAX;
  if (!fits)
    return tw_err_set(
        err, TW_EINVAL, "%s: %s x %s exceeds the dimensions BLAS can index", op,
        tw__ad_shape_str(a, sa, sizeof sa), tw__ad_shape_str(b, sb, sizeof sb));
  return TW_OK;
}

/* --- matmul ------------------------------------------------------------ */

static int matmul_backward(tw_tape *tape, const tw__ad_node *node,
                           tw_err *err) {
  tw_tensor *a = node->in[0], *b = node->in[1];
  size_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
  const void *g = node->out->grad;
  /* a and b may be the same (square) tensor: both terms then accumulate
   * into one buffer, which neither product reads. */
  if (a->requires_grad) {
    void *ga = grad_of(tape, node->op, a, err);
    if (ga == NULL)
      return TW_ENOMEM;
    gemm(a->dtype, CblasNoTrans, CblasTrans, m, k, n, g, b->data, ga);
  }
  if (b->requires_grad) {
    void *gb = grad_of(tape, node->op, b, err);
    if (gb == NULL)
      return TW_ENOMEM;
    gemm(a->dtype, CblasTrans, CblasNoTrans, k, n, m, a->data, g, gb);
  }
  return TW_OK;
}

int tw_ad_matmul(tw_tape *t, tw_tensor *a, tw_tensor *b, tw_tensor **out,
                 tw_err *err) {
  tw_tensor *y = NULL;
  tw_tensor *in[2] = {a, b};
  int rc = check_product(t, "matmul", a, b, 2, err);
  size_t m = 0, k = 0, n = 0;
  if (rc == TW_OK) {
    m = a->shape[0];
    k = a->shape[1];
    n = b->shape[1];
    size_t shape[2] = {m, n};
    rc = tw__ad_out(t, "matmul", a->dtype, 2, shape, tw__ad_any_tangent(in, 2),
                    &y, err);
  }
  if (rc != TW_OK)
    return rc;
  blas_init();
  gemm(a->dtype, CblasNoTrans, CblasNoTrans, m, n, k, a->data, b->data,
       y->data);
  if (a->tangent != NULL)
    gemm(a->dtype, CblasNoTrans, CblasNoTrans, m, n, k, a->tangent, b->data,
         y->tangent);
  if (b->tangent != NULL)
    gemm(a->dtype, CblasNoTrans, CblasNoTrans, m, n, k, a->data, b->tangent,
         y->tangent);
  rc = tw__ad_finish(t, "matmul", matmul_backward, in, 2, y, NULL, err);
  if (rc == TW_OK)
    *out = y;
  return rc;
}

/* --- matvec ------------------------------------------------------------ */

static int matvec_backward(tw_tape *tape, const tw__ad_node *node,
                           tw_err *err) {
  tw_tensor *a = node->in[0], *x = node->in[1];
  size_t m = a->shape[0], n = a->shape[1];
  const void *g = node->out->grad;
  if (a->requires_grad) {
    void *ga = grad_of(tape, node->op, a, err);
    if (ga == NULL)
      return TW_ENOMEM;
    ger(a->dtype, m, n, g, x->data, ga);
  }
  if (x->requires_grad) {
    void *gx = grad_of(tape, node->op, x, err);
    if (gx == NULL)
      return TW_ENOMEM;
    gemv(a->dtype, CblasTrans, m, n, a->data, g, gx);
  }
  return TW_OK;
}

int tw_ad_matvec(tw_tape *t, tw_tensor *a, tw_tensor *x, tw_tensor **out,
                 tw_err *err) {
  tw_tensor *y = NULL;
  tw_tensor *in[2] = {a, x};
  int rc = check_product(t, "matvec", a, x, 1, err);
  size_t m = 0, n = 0;
  if (rc == TW_OK) {
    m = a->shape[0];
    n = a->shape[1];
    rc = tw__ad_out(t, "matvec", a->dtype, 1, &m, tw__ad_any_tangent(in, 2), &y,
                    err);
  }
  if (rc != TW_OK)
    return rc;
  blas_init();
  gemv(a->dtype, CblasNoTrans, m, n, a->data, x->data, y->data);
  if (a->tangent != NULL)
    gemv(a->dtype, CblasNoTrans, m, n, a->tangent, x->data, y->tangent);
  if (x->tangent != NULL)
    gemv(a->dtype, CblasNoTrans, m, n, a->data, x->tangent, y->tangent);
  rc = tw__ad_finish(t, "matvec", matvec_backward, in, 2, y, NULL, err);
  if (rc == TW_OK)
    *out = y;
  return rc;
}
