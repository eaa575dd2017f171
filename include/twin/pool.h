/*
 * pool.h - fixed-size worker thread pool with a deterministic parallel-for.
 *
 * Graph ticks, simulation kernels and wasm instances run on a pool. The
 * parallel-for splits [0, n) into chunks that depend only on n and grain
 * (chunk c covers [c*grain, min(n, (c+1)*grain))), never on the number of
 * threads or on timing, so a caller that writes one partial result per
 * chunk and combines them in chunk order gets bitwise-identical results
 * with 1 or 2 or 64 threads.
 *
 * Errors: when chunks fail, the error returned is the one of the failing
 * chunk with the lowest index; chunks with a higher index than a known
 * failure are skipped, chunks with a lower one always run, so the reported
 * error does not depend on scheduling either.
 *
 * Thread safety: tw_pool_parallel_for and tw_pool_submit may be called from
 * any thread. One parallel-for runs at a time per pool (concurrent callers
 * wait their turn); a parallel-for started from inside a pool task runs
 * inline on that thread, so nesting never deadlocks.
 */
#ifndef TWIN_POOL_H
#define TWIN_POOL_H

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

typedef struct tw_pool tw_pool;

/* Creates a pool giving nthreads-way parallelism: nthreads-1 workers plus
 * the calling thread. nthreads 0 means the number of online CPUs; 1 creates
 * no thread and runs everything inline. TW_ENOMEM / TW_EIO (thread creation)
 * on failure, with nothing left behind. Idle workers, and a caller waiting
 * for its parallel-for's last chunks, spin for up to 0.2 ms before they
 * sleep, so back-to-back parallel-fors do not pay a thread wake-up; a pool
 * with more threads than online CPUs never spins. */
TW_API int tw_pool_new(unsigned nthreads, tw_pool **out, tw_err *err);

/* Runs every queued task, joins the workers and frees the pool. NULL is a
 * no-op. Must not be called from a pool task. */
TW_API void tw_pool_free(tw_pool *pool);

/* The parallelism the pool was created with (>= 1). */
TW_API unsigned tw_pool_threads(const tw_pool *pool);

/* Body of a parallel-for: processes [begin, end) of chunk index chunk. A
 * non-zero return (a negative TW_E* code, with detail in err) fails the
 * loop. err is private to this call. */
typedef int (*tw_pool_range_fn)(void *arg, size_t chunk, size_t begin,
                                size_t end, tw_err *err);

/* Number of chunks tw_pool_parallel_for will use: ceil(n / grain), with
 * grain 0 treated as 1. */
TW_API size_t tw_pool_chunks(size_t n, size_t grain);

/* Runs fn over [0, n) in chunks of grain and returns when all are done.
 * Returns TW_OK, or the error of the lowest-index failing chunk (its
 * message copied into err). n == 0 returns TW_OK without calling fn. */
TW_API int tw_pool_parallel_for(tw_pool *pool, size_t n, size_t grain,
                                tw_pool_range_fn fn, void *arg, tw_err *err);

/* Queues fn(arg) to run on a worker (inline, before returning, on a
 * one-thread pool). TW_ENOMEM if the task cannot be queued, in which case
 * fn never runs. */
TW_API int tw_pool_submit(tw_pool *pool, void (*fn)(void *arg), void *arg);

/* Waits until every task submitted so far has finished. Must not be called
 * from a pool task (it would wait for itself). */
TW_API void tw_pool_wait(tw_pool *pool);

TW_EXTERN_C_END

#endif /* TWIN_POOL_H */
