/*
 * pool.c - fixed worker threads, a FIFO task queue and a deterministic
 * parallel-for.
 *
 * A pool of parallelism N runs N-1 worker threads; the thread calling
 * tw_pool_parallel_for is the N-th. Everything shared is guarded by mu:
 * the task queue, the pending count, the stop flag and the posted job.
 * Workers sleep on work_cv and prefer helping a posted parallel-for job to
 * running queued tasks, since a job's caller is blocked until it ends.
 *
 * Spin, then block. Waking a thread asleep on a condition variable costs
 * tens of microseconds on a VM (the idle vCPU halts and the host must
 * schedule it again), as much as a graph level's work. So a worker with
 * nothing to do first spins for up to SPIN_NS watching pool->posts, which
 * counts (under mu) every job posted, task queued and stop; a caller whose
 * job still has helpers spins the same way on pool->helpers. Only then do
 * they take mu and sleep, re-checking under mu what they watched, so no
 * wake-up is lost. Spinning is off when the pool has more threads than
 * the machine has CPUs: there a spinning thread takes a CPU from one
 * with work.
 *
 * Parallel-for invariants:
 *  - Chunk boundaries depend on (n, grain) only; chunks are claimed in
 *    increasing index order through job->next, by the caller and by any
 *    worker that joins, so when chunk f is claimed every chunk below f has
 *    been claimed already.
 *  - job->fail is the lowest failing chunk seen so far. A claimed chunk
 *    above it is skipped; a chunk below it always runs (it was claimed
 *    before the failure, or is claimed later only if lower, which the
 *    monotonic claim order rules out). So the chunk reported is the lowest
 *    failing one whatever the scheduling.
 *  - The job lives on the caller's stack. A worker touches it only between
 *    incrementing pool->helpers (under mu, while pool->job points to it)
 *    and decrementing it (under mu). The caller unposts the job and waits
 *    for helpers == 0 before returning, so no worker can see a dead job.
 *  - One job at a time: callers serialise on job_mu. A parallel-for from a
 *    pool thread (worker, or caller busy running chunks) runs inline, so
 *    nesting never waits for a thread that is waiting for it.
 */
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "twin/alloc.h"
#include "twin/clock.h"
#include "twin/pool.h"

/* How long a thread with nothing to do spins before it sleeps: longer
 * than the serial work between two parallel sections of a graph run
 * (tens of microseconds), short enough that an idle pool stops using the
 * CPU at once. */
#define SPIN_NS 200000

typedef struct pool_task {
  void (*fn)(void *arg);
  void *arg;
  struct pool_task *next;
} pool_task;

typedef struct pool_job {
  tw_pool_range_fn fn;
  void *arg;
  size_t n;
  size_t grain;
  size_t nchunks;
  atomic_size_t next; /* next chunk to claim; nchunks once exhausted */
  atomic_size_t fail; /* lowest failing chunk, SIZE_MAX if none */
  int rc;             /* code of chunk fail, guarded by pool->mu */
  tw_err err;         /* message of chunk fail, guarded by pool->mu */
} pool_job;

struct tw_pool {
  unsigned nthreads; /* parallelism, >= 1 */
  unsigned nworkers; /* threads created: nthreads - 1 */
  pthread_t *workers;

  pthread_mutex_t mu;
  pthread_cond_t work_cv; /* a task was queued, a job posted, or stop */
  pthread_cond_t idle_cv; /* pending reached 0 */
  pthread_cond_t done_cv; /* helpers reached 0 */
  pool_task *head, *tail;
  size_t pending; /* tasks queued or running */
  bool stop;      /* tw_pool_free: drain the queue and exit */
  pool_job *job;  /* posted parallel-for, or NULL */
  /* Workers currently inside job. Written under mu; read without it by a
   * spinning caller. */
  atomic_size_t helpers;
  /* Jobs posted + tasks queued + stop, changed under mu; read without it
   * by spinning workers. */
  atomic_size_t posts;
  bool spin; /* spin before sleeping (nthreads <= online CPUs) */

  pthread_mutex_t job_mu; /* serialises parallel-for callers */
};

/* True on a worker thread, and on a caller thread while it runs chunks:
 * a parallel-for started there must run inline. */
static _Thread_local bool in_pool;

unsigned tw_pool_threads(const tw_pool *pool) { return pool->nthreads; }

size_t tw_pool_chunks(size_t n, size_t grain) {
  if (grain == 0)
    grain = 1;
  /* Written without n + grain - 1, which could overflow. */
  return n / grain + (n % grain != 0);
}

/* Claims the next chunk to run; false once none is left to run. */
static bool job_claim(pool_job *job, size_t *chunk) {
  size_t c = atomic_load_explicit(&job->next, memory_order_relaxed);
  for (;;) {
    if (c >= job->nchunks)
      return false;
    if (atomic_compare_exchange_weak_explicit(
            &job->next, &c, c + 1, memory_order_relaxed, memory_order_relaxed))
      break;
  }
  /* Skip only chunks above a known failure; lower ones must run so the
   * lowest failure is found. */
  if (c > atomic_load_explicit(&job->fail, memory_order_relaxed))
    return false;
  *chunk = c;
  return true;
}

static bool job_has_work(pool_job *job) {
  return atomic_load_explicit(&job->next, memory_order_relaxed) < job->nchunks;
}

/* Runs chunk c with a private tw_err; records it if it is the lowest
 * failure so far. */
static void job_run_chunk(tw_pool *pool, pool_job *job, size_t c) {
  size_t begin = c * job->grain;
  size_t end = job->n - begin < job->grain ? job->n : begin + job->grain;
  tw_err e;
  tw_err_init(&e);
  int rc = job->fn(job->arg, c, begin, end, &e);
  if (rc == TW_OK)
    return;
  if (e.code == TW_OK)
    tw_err_set(&e, rc, "%s", tw_strerror(rc));
  pthread_mutex_lock(&pool->mu);
  if (c < atomic_load_explicit(&job->fail, memory_order_relaxed)) {
    atomic_store_explicit(&job->fail, c, memory_order_relaxed);
    job->rc = rc;
    job->err = e;
    /* Every chunk below c is claimed already; nothing unclaimed can
     * matter any more, so stop others from claiming. */
    atomic_store_explicit(&job->next, job->nchunks, memory_order_relaxed);
  }
  pthread_mutex_unlock(&pool->mu);
}

static void job_run(tw_pool *pool, pool_job *job) {
  size_t c;
  while (job_claim(job, &c))
    job_run_chunk(pool, job, c);
}

/* Tells the CPU this is a spin-wait: saves power and, on a CPU with SMT,
 * leaves the core to the sibling thread. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Spins up to SPIN_NS while (*v == x) == equal; true if that ended. Read
 * without mu: the caller re-checks under mu. Every few microseconds it
 * yields, so a thread of this pool that shares the CPU with it (when
 * other processes keep the machine busy) gets to run. */
static bool spin_while(const atomic_size_t *v, size_t x, bool equal) {
  uint64_t deadline = tw_clock_mono_ns() + SPIN_NS;
  for (unsigned i = 1;; i++) {
    if ((atomic_load_explicit(v, memory_order_relaxed) == x) != equal)
      return true;
    cpu_relax();
    if (i % 64 == 0) {
      if (tw_clock_mono_ns() > deadline)
        return false;
      sched_yield();
    }
  }
}

/* Marks something new for workers to look at. Called under mu. */
static void post(tw_pool *pool) {
  atomic_fetch_add_explicit(&pool->posts, 1, memory_order_relaxed);
}

static void *worker_main(void *arg) {
  tw_pool *pool = arg;
  in_pool = true;
  pthread_mutex_lock(&pool->mu);
  for (;;) {
    pool_job *job = pool->job;
    if (job != NULL && job_has_work(job)) {
      atomic_fetch_add_explicit(&pool->helpers, 1, memory_order_relaxed);
      pthread_mutex_unlock(&pool->mu);
      job_run(pool, job);
      pthread_mutex_lock(&pool->mu);
      /* A spinning caller that sees 0 takes mu before it reads the
       * job's result or returns, so mu orders everything here. */
      if (atomic_fetch_sub_explicit(&pool->helpers, 1, memory_order_relaxed) ==
          1)
        pthread_cond_broadcast(&pool->done_cv);
      continue;
    }
    pool_task *t = pool->head;
    if (t != NULL) {
      pool->head = t->next;
      if (pool->head == NULL)
        pool->tail = NULL;
      pthread_mutex_unlock(&pool->mu);
      t->fn(t->arg);
      tw_free(t);
      pthread_mutex_lock(&pool->mu);
      if (--pool->pending == 0)
        pthread_cond_broadcast(&pool->idle_cv);
      continue;
    }
    if (pool->stop)
      break;
    if (pool->spin) {
      /* posts changes only under mu, so if it is still seen once mu is
       * held again, nothing was posted and sleeping loses no wake-up. */
      size_t seen = atomic_load_explicit(&pool->posts, memory_order_relaxed);
      pthread_mutex_unlock(&pool->mu);
      bool posted = spin_while(&pool->posts, seen, true);
      pthread_mutex_lock(&pool->mu);
      if (posted ||
          atomic_load_explicit(&pool->posts, memory_order_relaxed) != seen)
        continue;
    }
    pthread_cond_wait(&pool->work_cv, &pool->mu);
  }
  pthread_mutex_unlock(&pool->mu);
  return NULL;
}

/* Stops and joins the first nstarted workers and frees the pool. */
static void pool_destroy(tw_pool *pool, unsigned nstarted) {
  pthread_mutex_lock(&pool->mu);
  pool->stop = true;
  post(pool);
  pthread_cond_broadcast(&pool->work_cv);
  pthread_mutex_unlock(&pool->mu);
  for (unsigned i = 0; i < nstarted; i++)
    pthread_join(pool->workers[i], NULL);
  pthread_mutex_destroy(&pool->job_mu);
  pthread_cond_destroy(&pool->done_cv);
  pthread_cond_destroy(&pool->idle_cv);
  pthread_cond_destroy(&pool->work_cv);
  pthread_mutex_destroy(&pool->mu);
  tw_free(pool->workers);
  tw_free(pool);
}

/* Initialises the synchronisation objects; on failure destroys the ones
 * made and returns false. */
static bool pool_sync_init(tw_pool *pool) {
  if (pthread_mutex_init(&pool->mu, NULL) != 0)
    return false;
  if (pthread_cond_init(&pool->work_cv, NULL) != 0)
    goto fail_mu;
  if (pthread_cond_init(&pool->idle_cv, NULL) != 0)
    goto fail_work;
  if (pthread_cond_init(&pool->done_cv, NULL) != 0)
    goto fail_idle;
  if (pthread_mutex_init(&pool->job_mu, NULL) != 0)
    goto fail_done;
  return true;
fail_done:
  pthread_cond_destroy(&pool->done_cv);
fail_idle:
  pthread_cond_destroy(&pool->idle_cv);
fail_work:
  pthread_cond_destroy(&pool->work_cv);
fail_mu:
  pthread_mutex_destroy(&pool->mu);
  return false;
}

/* Workers block asynchronous signals so a host's handlers (or sigwait)
 * keep seeing them on its own threads; faults stay deliverable. */
static void block_async_signals(sigset_t *old) {
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, SIGSEGV);
  sigdelset(&set, SIGBUS);
  sigdelset(&set, SIGFPE);
  sigdelset(&set, SIGILL);
  sigdelset(&set, SIGTRAP);
  sigdelset(&set, SIGABRT);
  pthread_sigmask(SIG_SETMASK, &set, old);
}

int tw_pool_new(unsigned nthreads, tw_pool **out, tw_err *err) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (nthreads == 0)
    nthreads = ncpu < 1 ? 1 : ncpu > 1024 ? 1024 : (unsigned)ncpu;
  tw_pool *pool = tw_calloc(1, sizeof *pool);
  if (pool == NULL)
    return tw_err_set(err, TW_ENOMEM, "tw_pool_new: out of memory");
  pool->nthreads = nthreads;
  atomic_init(&pool->helpers, 0);
  atomic_init(&pool->posts, 0);
  pool->spin = ncpu >= 1 && nthreads <= (unsigned long)ncpu;
  if (nthreads > 1) {
    pool->workers = tw_calloc(nthreads - 1, sizeof *pool->workers);
    if (pool->workers == NULL) {
      tw_free(pool);
      return tw_err_set(err, TW_ENOMEM,
                        "tw_pool_new: out of memory for %u threads", nthreads);
    }
  }
  if (!pool_sync_init(pool)) {
    tw_free(pool->workers);
    tw_free(pool);
    return tw_err_set(err, TW_EIO, "tw_pool_new: cannot create a mutex");
  }
  sigset_t old;
  block_async_signals(&old);
  unsigned started = 0;
  int sys = 0;
  while (started < nthreads - 1) {
    sys = pthread_create(&pool->workers[started], NULL, worker_main, pool);
    if (sys != 0)
      break;
    started++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (sys != 0) {
    pool_destroy(pool, started);
    char buf[128];
    return tw_err_set(
        err, TW_EIO, "tw_pool_new: cannot create worker thread %u of %u: %s",
        started + 1, nthreads - 1, strerror_r(sys, buf, sizeof buf));
  }
  pool->nworkers = started;
  *out = pool;
  return TW_OK;
}

void tw_pool_free(tw_pool *pool) {
  if (pool == NULL)
    return;
  /* Workers exit only once the queue is empty, so every queued task runs
   * before the joins return. */
  pool_destroy(pool, pool->nworkers);
}

/* Runs the chunks one after the other on this thread: the result is the
 * same as in parallel, since the first failure met is the lowest. */
static int run_inline(size_t n, size_t grain, size_t nchunks,
                      tw_pool_range_fn fn, void *arg, tw_err *err) {
  for (size_t c = 0; c < nchunks; c++) {
    size_t begin = c * grain;
    size_t end = n - begin < grain ? n : begin + grain;
    tw_err e;
    tw_err_init(&e);
    int rc = fn(arg, c, begin, end, &e);
    if (rc != TW_OK) {
      if (e.code == TW_OK)
        tw_err_set(&e, rc, "%s", tw_strerror(rc));
      tw_err_copy(err, &e);
      return rc;
    }
  }
  return TW_OK;
}

int tw_pool_parallel_for(tw_pool *pool, size_t n, size_t grain,
                         tw_pool_range_fn fn, void *arg, tw_err *err) {
  if (n == 0)
    return TW_OK;
  if (grain == 0)
    grain = 1;
  size_t nchunks = tw_pool_chunks(n, grain);
  /* Inline: no job is posted and job_mu is not held, so a parallel-for
   * nested in these chunks cannot wait on this one. */
  if (pool->nworkers == 0 || nchunks == 1 || in_pool)
    return run_inline(n, grain, nchunks, fn, arg, err);

  pthread_mutex_lock(&pool->job_mu);
  pool_job job;
  job.fn = fn;
  job.arg = arg;
  job.n = n;
  job.grain = grain;
  job.nchunks = nchunks;
  atomic_init(&job.next, 0);
  atomic_init(&job.fail, SIZE_MAX);
  job.rc = TW_OK;
  tw_err_init(&job.err);

  pthread_mutex_lock(&pool->mu);
  pool->job = &job;
  post(pool);
  pthread_cond_broadcast(&pool->work_cv);
  pthread_mutex_unlock(&pool->mu);

  in_pool = true;
  job_run(pool, &job);
  in_pool = false;

  /* No chunk is left to claim; wait for the chunks helpers still run. */
  pthread_mutex_lock(&pool->mu);
  pool->job = NULL;
  if (pool->spin &&
      atomic_load_explicit(&pool->helpers, memory_order_relaxed) > 0) {
    pthread_mutex_unlock(&pool->mu);
    (void)spin_while(&pool->helpers, 0, false);
    pthread_mutex_lock(&pool->mu);
  }
  while (atomic_load_explicit(&pool->helpers, memory_order_relaxed) > 0)
    pthread_cond_wait(&pool->done_cv, &pool->mu);
  int rc = job.rc;
  pthread_mutex_unlock(&pool->mu);
  pthread_mutex_unlock(&pool->job_mu);

  if (rc != TW_OK)
    tw_err_copy(err, &job.err);
  return rc;
}

int tw_pool_submit(tw_pool *pool, void (*fn)(void *arg), void *arg) {
  if (pool->nworkers == 0) {
    fn(arg);
    return TW_OK;
  }
  pool_task *t = tw_alloc(sizeof *t);
  if (t == NULL)
    return TW_ENOMEM;
  t->fn = fn;
  t->arg = arg;
  t->next = NULL;
  pthread_mutex_lock(&pool->mu);
  if (pool->tail != NULL)
    pool->tail->next = t;
  else
    pool->head = t;
  pool->tail = t;
  pool->pending++;
  post(pool);
  pthread_cond_signal(&pool->work_cv);
  pthread_mutex_unlock(&pool->mu);
  return TW_OK;
}

void tw_pool_wait(tw_pool *pool) {
  pthread_mutex_lock(&pool->mu);
  while (pool->pending > 0)
    pthread_cond_wait(&pool->idle_cv, &pool->mu);
  pthread_mutex_unlock(&pool->mu);
}
