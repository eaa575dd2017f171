/*
 * test_pool.c - worker pool: deterministic parallel-for, errors, nesting,
 * tasks, concurrent callers and allocation failures.
 *
 * Range functions and tasks run on worker threads, where a cmocka assert
 * cannot unwind; they report problems through their return code or a
 * counter that the test thread then checks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tw_test.h"

static const unsigned thread_counts[] = {1, 2, 4, 8};
#define NCOUNTS (sizeof thread_counts / sizeof thread_counts[0])

static tw_pool *new_pool(unsigned nthreads) {
  tw_pool *pool = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_pool_new(nthreads, &pool, &err), TW_OK);
  assert_non_null(pool);
  return pool;
}

static void test_chunks(void **state) {
  (void)state;
  assert_int_equal(tw_pool_chunks(0, 1), 0);
  assert_int_equal(tw_pool_chunks(0, 0), 0);
  assert_int_equal(tw_pool_chunks(10, 0), 10);
  assert_int_equal(tw_pool_chunks(10, 1), 10);
  assert_int_equal(tw_pool_chunks(9, 3), 3);
  assert_int_equal(tw_pool_chunks(10, 3), 4);
  assert_int_equal(tw_pool_chunks(3, 100), 1);
  assert_true(tw_pool_chunks(SIZE_MAX, 1) == SIZE_MAX);
  assert_true(tw_pool_chunks(SIZE_MAX, 2) == SIZE_MAX / 2 + 1);
  assert_true(tw_pool_chunks(SIZE_MAX, SIZE_MAX) == 1);
}

static void test_threads(void **state) {
  (void)state;
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    assert_int_equal(tw_pool_threads(pool), thread_counts[k]);
    tw_pool_free(pool);
  }
  tw_pool *pool = new_pool(0);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  assert_int_equal(tw_pool_threads(pool), ncpu < 1 ? 1 : (unsigned)ncpu);
  tw_pool_free(pool);
  tw_pool_free(NULL);
}

/* --- Deterministic reduction --- */

typedef struct sum_job {
  size_t n, grain;
  double *partials; /* one per chunk */
} sum_job;

/* Terms of very different magnitudes and signs, so the result depends on
 * the order of additions. */
static double term(size_t i) {
  double x = (double)i;
  return ((i % 7) - 3.0) / (1.0 + x) + 1e-3 * x * ((i % 2) ? 1.0 : -1.0);
}

static int sum_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                     tw_err *err) {
  sum_job *j = arg;
  if (begin != chunk * j->grain ||
      end != (begin + j->grain < j->n ? begin + j->grain : j->n))
    return tw_err_set(err, TW_EINTERNAL, "chunk %zu: bad bounds", chunk);
  double s = 0;
  for (size_t i = begin; i < end; i++)
    s += term(i);
  j->partials[chunk] = s;
  return TW_OK;
}

static double pool_sum(tw_pool *pool, size_t n, size_t grain) {
  size_t nchunks = tw_pool_chunks(n, grain);
  sum_job j = {n, grain, tw_calloc(nchunks, sizeof(double))};
  assert_non_null(j.partials);
  tw_err err;
  tw_err_init(&err);
  int rc = tw_pool_parallel_for(pool, n, grain, sum_chunk, &j, &err);
  if (rc != TW_OK)
    fail_msg("%s", tw_err_msg(&err));
  double total = 0;
  for (size_t c = 0; c < nchunks; c++)
    total += j.partials[c];
  tw_free(j.partials);
  return total;
}

static void test_sum_bitwise_identical(void **state) {
  (void)state;
  static const size_t grains[] = {1000, 4096, 77777};
  const size_t n = 2000003;
  for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
    /* The same chunking done serially, without the pool. */
    size_t grain = grains[g];
    double want = 0;
    for (size_t b = 0; b < n; b += grain) {
      double s = 0;
      for (size_t i = b; i < n && i < b + grain; i++)
        s += term(i);
      want += s;
    }
    for (size_t k = 0; k < NCOUNTS; k++) {
      tw_pool *pool = new_pool(thread_counts[k]);
      for (int rep = 0; rep < 3; rep++) {
        double got = pool_sum(pool, n, grain);
        assert_memory_equal(&got, &want, sizeof got);
      }
      tw_pool_free(pool);
    }
  }
}

/* --- Coverage of the index space --- */

typedef struct visit_job {
  size_t n;
  atomic_uint *counts;
} visit_job;

static int visit_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                       tw_err *err) {
  visit_job *j = arg;
  if (begin >= end || end > j->n)
    return tw_err_set(err, TW_EINTERNAL, "chunk %zu: bad bounds", chunk);
  for (size_t i = begin; i < end; i++)
    atomic_fetch_add(&j->counts[i], 1);
  return TW_OK;
}

static void test_every_index_once(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 2, 7, 1000, 100003};
  static const size_t grains[] = {0, 1, 7, 64, 1000000};
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
        size_t n = sizes[s];
        visit_job j = {n, tw_calloc(n, sizeof(atomic_uint))};
        assert_non_null(j.counts);
        assert_int_equal(
            tw_pool_parallel_for(pool, n, grains[g], visit_chunk, &j, NULL),
            TW_OK);
        for (size_t i = 0; i < n; i++)
          assert_int_equal(atomic_load(&j.counts[i]), 1);
        tw_free(j.counts);
      }
    }
    tw_pool_free(pool);
  }
}

static int grain0_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                        tw_err *err) {
  atomic_uint *seen = arg;
  if (begin != chunk || end != chunk + 1)
    return tw_err_set(err, TW_EINTERNAL, "chunk %zu: bad bounds", chunk);
  atomic_fetch_add(&seen[chunk], 1);
  return TW_OK;
}

static void test_grain_zero_is_one(void **state) {
  (void)state;
  tw_pool *pool = new_pool(4);
  atomic_uint seen[10];
  for (size_t i = 0; i < 10; i++)
    atomic_init(&seen[i], 0);
  assert_int_equal(tw_pool_parallel_for(pool, 10, 0, grain0_chunk, seen, NULL),
                   TW_OK);
  for (size_t i = 0; i < 10; i++)
    assert_int_equal(atomic_load(&seen[i]), 1);
  tw_pool_free(pool);
}

static int never_called(void *arg, size_t chunk, size_t begin, size_t end,
                        tw_err *err) {
  (void)arg;
  (void)chunk;
  (void)begin;
  (void)end;
  return tw_err_set(err, TW_EINTERNAL, "fn called for n == 0");
}

static void test_empty_range(void **state) {
  (void)state;
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(
        tw_pool_parallel_for(pool, 0, 10, never_called, NULL, &err), TW_OK);
    assert_int_equal(tw_pool_parallel_for(pool, 0, 0, never_called, NULL, &err),
                     TW_OK);
    assert_int_equal(err.code, TW_OK);
    tw_pool_free(pool);
  }
}

/* Proves workers take part: chunk 0 (claimed first, by the caller or a
 * worker) waits until another thread has started chunk 1. */
typedef struct help_job {
  atomic_bool started1;
} help_job;

static int help_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                      tw_err *err) {
  (void)begin;
  (void)end;
  help_job *j = arg;
  if (chunk == 1) {
    atomic_store(&j->started1, true);
    return TW_OK;
  }
  if (chunk != 0)
    return TW_OK;
  uint64_t deadline = tw_clock_mono_ns() + UINT64_C(30000000000);
  while (!atomic_load(&j->started1)) {
    if (tw_clock_mono_ns() > deadline)
      return tw_err_set(err, TW_ETIMEDOUT, "no worker helped");
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return TW_OK;
}

static void test_workers_help(void **state) {
  (void)state;
  tw_pool *pool = new_pool(2);
  for (int rep = 0; rep < 5; rep++) {
    help_job j;
    atomic_init(&j.started1, false);
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_pool_parallel_for(pool, 2, 1, help_chunk, &j, &err),
                     TW_OK);
  }
  tw_pool_free(pool);
}

/* Idle workers spin for a while, then sleep. Help must still come for a
 * job posted at once (back to back, as graph levels and ticks are), in
 * the middle of the spin, and long after the workers went to sleep: a
 * lost wake-up shows as chunk 0 timing out. Pools of 2 threads and of one
 * more than the CPUs (where workers do not spin) take both paths. */
static void test_workers_help_after_idle(void **state) {
  (void)state;
  static const long idle_ns[] = {0, 50000, 1000000, 20000000};
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned sizes[] = {2, ncpu < 1 ? 2 : (unsigned)ncpu + 1};
  for (size_t k = 0; k < 2; k++) {
    tw_pool *pool = new_pool(sizes[k]);
    for (size_t d = 0; d < sizeof idle_ns / sizeof idle_ns[0]; d++) {
      int reps = idle_ns[d] == 0 ? 1000 : 10;
      for (int rep = 0; rep < reps; rep++) {
        help_job j;
        atomic_init(&j.started1, false);
        tw_err err;
        tw_err_init(&err);
        assert_int_equal(tw_pool_parallel_for(pool, 2, 1, help_chunk, &j, &err),
                         TW_OK);
        struct timespec ts = {0, idle_ns[d]};
        if (idle_ns[d] > 0)
          nanosleep(&ts, NULL);
      }
    }
    tw_pool_free(pool);
  }
}

/* A task queued right after a parallel-for, while the workers spin, runs
 * on a worker without anyone waiting for it. */
typedef struct spin_task_arg {
  atomic_bool ran;
  pthread_t caller;
  atomic_bool on_caller;
} spin_task_arg;

static void spin_task(void *arg) {
  spin_task_arg *a = arg;
  atomic_store(&a->on_caller, pthread_equal(pthread_self(), a->caller) != 0);
  atomic_store(&a->ran, true);
}

static void test_task_after_job(void **state) {
  (void)state;
  tw_pool *pool = new_pool(2);
  for (int rep = 0; rep < 100; rep++) {
    help_job j;
    atomic_init(&j.started1, false);
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_pool_parallel_for(pool, 2, 1, help_chunk, &j, &err),
                     TW_OK);
    spin_task_arg a;
    atomic_init(&a.ran, false);
    atomic_init(&a.on_caller, true);
    a.caller = pthread_self();
    assert_int_equal(tw_pool_submit(pool, spin_task, &a), TW_OK);
    uint64_t deadline = tw_clock_mono_ns() + UINT64_C(30000000000);
    while (!atomic_load(&a.ran) && tw_clock_mono_ns() < deadline) {
      struct timespec ts = {0, 10000};
      nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&a.ran));
    assert_false(atomic_load(&a.on_caller));
    tw_pool_wait(pool);
  }
  tw_pool_free(pool);
}

/* --- Errors --- */

typedef struct fail_job {
  atomic_uint *ran; /* per chunk */
  size_t nfail;
  const size_t *fail_chunks;
  bool set_message;
} fail_job;

static int fail_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                      tw_err *err) {
  (void)begin;
  (void)end;
  fail_job *j = arg;
  atomic_fetch_add(&j->ran[chunk], 1);
  /* The private err must arrive clean. */
  if (err->code != TW_OK)
    return TW_EINTERNAL;
  for (size_t i = 0; i < j->nfail; i++) {
    if (j->fail_chunks[i] != chunk)
      continue;
    int code = i == 0 ? TW_ERANGE : TW_EINVAL;
    if (!j->set_message)
      return code;
    return tw_err_set(err, code, "chunk %zu failed", chunk);
  }
  return TW_OK;
}

static void test_error_lowest_chunk(void **state) {
  (void)state;
  /* Listed lowest first; chunk 37 fails with ERANGE, the others EINVAL. */
  static const size_t fails[] = {37, 55, 90, 91, 99};
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    for (int rep = 0; rep < 50; rep++) {
      atomic_uint ran[100];
      for (size_t i = 0; i < 100; i++)
        atomic_init(&ran[i], 0);
      fail_job j = {ran, sizeof fails / sizeof fails[0], fails, true};
      tw_err err;
      tw_err_init(&err);
      int rc = tw_pool_parallel_for(pool, 1000, 10, fail_chunk, &j, &err);
      assert_int_equal(rc, TW_ERANGE);
      assert_int_equal(err.code, TW_ERANGE);
      assert_string_equal(err.msg, "chunk 37 failed");
      /* Every chunk up to the failure ran exactly once; none twice. */
      for (size_t c = 0; c <= 37; c++)
        assert_int_equal(atomic_load(&ran[c]), 1);
      for (size_t c = 38; c < 100; c++)
        assert_true(atomic_load(&ran[c]) <= 1);
    }
    tw_pool_free(pool);
  }
}

static void test_error_without_message(void **state) {
  (void)state;
  static const size_t fails[] = {3};
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    atomic_uint ran[8];
    for (size_t i = 0; i < 8; i++)
      atomic_init(&ran[i], 0);
    fail_job j = {ran, 1, fails, false};
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_pool_parallel_for(pool, 8, 1, fail_chunk, &j, &err),
                     TW_ERANGE);
    assert_int_equal(err.code, TW_ERANGE);
    assert_string_equal(tw_err_msg(&err), tw_strerror(TW_ERANGE));

    /* The caller's err keeps its first error; NULL err is accepted. */
    for (size_t i = 0; i < 8; i++)
      atomic_init(&ran[i], 0);
    j.set_message = true;
    tw_err_init(&err);
    tw_err_set(&err, TW_EIO, "earlier");
    assert_int_equal(tw_pool_parallel_for(pool, 8, 1, fail_chunk, &j, &err),
                     TW_ERANGE);
    assert_int_equal(err.code, TW_EIO);
    assert_string_equal(err.msg, "earlier");
    assert_int_equal(tw_pool_parallel_for(pool, 8, 1, fail_chunk, &j, NULL),
                     TW_ERANGE);
    tw_pool_free(pool);
  }
}

/* --- Nesting --- */

typedef struct nest_job {
  tw_pool *pool;
  uint64_t sums[16];
} nest_job;

static int inner_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                       tw_err *err) {
  (void)chunk;
  (void)err;
  uint64_t *partials = arg;
  for (size_t i = begin; i < end; i++)
    partials[chunk] += i;
  return TW_OK;
}

static int outer_chunk(void *arg, size_t chunk, size_t begin, size_t end,
                       tw_err *err) {
  (void)begin;
  (void)end;
  nest_job *j = arg;
  uint64_t partials[10] = {0};
  int rc = tw_pool_parallel_for(j->pool, 1000, 100, inner_chunk, partials, err);
  if (rc != TW_OK)
    return rc;
  for (size_t c = 0; c < 10; c++)
    j->sums[chunk] += partials[c];
  return TW_OK;
}

static void nested_task(void *arg) {
  nest_job *j = arg;
  uint64_t partials[10] = {0};
  if (tw_pool_parallel_for(j->pool, 1000, 100, inner_chunk, partials, NULL) !=
      TW_OK)
    return;
  for (size_t c = 0; c < 10; c++)
    j->sums[15] += partials[c];
}

static void test_nested(void **state) {
  (void)state;
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    for (int rep = 0; rep < 20; rep++) {
      nest_job j = {.pool = pool};
      tw_err err;
      tw_err_init(&err);
      assert_int_equal(tw_pool_parallel_for(pool, 15, 1, outer_chunk, &j, &err),
                       TW_OK);
      for (size_t c = 0; c < 15; c++)
        assert_true(j.sums[c] == 999 * 1000 / 2);
      /* From a task too. */
      assert_int_equal(tw_pool_submit(pool, nested_task, &j), TW_OK);
      tw_pool_wait(pool);
      assert_true(j.sums[15] == 999 * 1000 / 2);
    }
    tw_pool_free(pool);
  }
}

/* --- Tasks --- */

#define NTASKS 2000

typedef struct task_state {
  tw_pool *pool;
  atomic_uint runs[NTASKS];
  atomic_uint children;
} task_state;

typedef struct task_arg {
  task_state *st;
  size_t i;
} task_arg;

static void child_task(void *arg) {
  task_state *st = arg;
  atomic_fetch_add(&st->children, 1);
}

static void count_task(void *arg) {
  task_arg *a = arg;
  atomic_fetch_add(&a->st->runs[a->i], 1);
  /* Tasks submitted by tasks are part of what tw_pool_wait waits for. */
  if (a->i % 100 == 0 &&
      tw_pool_submit(a->st->pool, child_task, a->st) != TW_OK)
    atomic_fetch_add(&a->st->children, 1000000); /* fails the check */
}

static void run_tasks(tw_pool *pool, task_state *st, task_arg *args) {
  st->pool = pool;
  for (size_t i = 0; i < NTASKS; i++)
    atomic_init(&st->runs[i], 0);
  atomic_init(&st->children, 0);
  for (size_t i = 0; i < NTASKS; i++) {
    args[i] = (task_arg){st, i};
    assert_int_equal(tw_pool_submit(pool, count_task, &args[i]), TW_OK);
  }
}

static void test_submit_wait(void **state) {
  (void)state;
  static task_state st;
  static task_arg args[NTASKS];
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    for (int rep = 0; rep < 3; rep++) {
      run_tasks(pool, &st, args);
      tw_pool_wait(pool);
      for (size_t i = 0; i < NTASKS; i++)
        assert_int_equal(atomic_load(&st.runs[i]), 1);
      assert_int_equal(atomic_load(&st.children), NTASKS / 100);
    }
    tw_pool_wait(pool); /* nothing pending: returns at once */
    tw_pool_free(pool);
  }
}

static void test_free_runs_queued_tasks(void **state) {
  (void)state;
  static task_state st;
  static task_arg args[NTASKS];
  for (size_t k = 0; k < NCOUNTS; k++) {
    tw_pool *pool = new_pool(thread_counts[k]);
    run_tasks(pool, &st, args);
    tw_pool_free(pool); /* no wait: free drains the queue */
    for (size_t i = 0; i < NTASKS; i++)
      assert_int_equal(atomic_load(&st.runs[i]), 1);
    assert_int_equal(atomic_load(&st.children), NTASKS / 100);
  }
}

static void flag_task(void *arg) { *(bool *)arg = true; }

static void test_submit_alloc_failure(void **state) {
  (void)state;
  tw_pool *pool = new_pool(4);
  bool ran = false;
  tw_alloc_fail_at(1, false);
  assert_int_equal(tw_pool_submit(pool, flag_task, &ran), TW_ENOMEM);
  tw_alloc_fail_at(0, false);
  tw_pool_wait(pool);
  assert_false(ran);
  tw_pool_free(pool);

  /* A one-thread pool runs the task inline and allocates nothing. */
  pool = new_pool(1);
  unsigned long calls = tw_alloc_calls();
  assert_int_equal(tw_pool_submit(pool, flag_task, &ran), TW_OK);
  assert_true(ran);
  assert_int_equal(tw_alloc_calls(), calls);
  tw_pool_free(pool);
}

/* --- Concurrent callers --- */

typedef struct caller_arg {
  tw_pool *pool;
  size_t grain;
  double got[20];
} caller_arg;

static void *caller_main(void *p) {
  caller_arg *a = p;
  for (int rep = 0; rep < 20; rep++)
    a->got[rep] = pool_sum(a->pool, 200003, a->grain);
  return NULL;
}

static void test_concurrent_callers(void **state) {
  (void)state;
  tw_pool *pool = new_pool(4);
  double want1 = pool_sum(pool, 200003, 1000);
  double want2 = pool_sum(pool, 200003, 333);
  caller_arg a1 = {.pool = pool, .grain = 1000};
  caller_arg a2 = {.pool = pool, .grain = 333};
  pthread_t t1, t2;
  assert_int_equal(pthread_create(&t1, NULL, caller_main, &a1), 0);
  assert_int_equal(pthread_create(&t2, NULL, caller_main, &a2), 0);
  assert_int_equal(pthread_join(t1, NULL), 0);
  assert_int_equal(pthread_join(t2, NULL), 0);
  for (int rep = 0; rep < 20; rep++) {
    assert_memory_equal(&a1.got[rep], &want1, sizeof want1);
    assert_memory_equal(&a2.got[rep], &want2, sizeof want2);
  }
  tw_pool_free(pool);
}

/* --- Allocation failures --- */

static int pool_round(unsigned nthreads) {
  tw_pool *pool = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_pool_new(nthreads, &pool, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_int_equal(err.code, TW_ENOMEM);
    assert_null(pool);
    return rc;
  }
  /* Allocation-free work, so only tw_pool_new meets the failures. */
  atomic_uint counts[1000];
  for (size_t i = 0; i < 1000; i++)
    atomic_init(&counts[i], 0);
  visit_job j = {1000, counts};
  rc = tw_pool_parallel_for(pool, 1000, 10, visit_chunk, &j, &err);
  for (size_t i = 0; rc == TW_OK && i < 1000; i++)
    if (atomic_load(&counts[i]) != 1)
      rc = TW_EINTERNAL;
  tw_pool_free(pool);
  assert_int_equal(rc, TW_OK);
  return rc;
}

static void test_new_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(pool_round(1));
  TW_TEST_ALLOC_FAILURES(pool_round(4));
}

int main(void);
int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_chunks),
      TW_TEST(test_threads),
      TW_TEST(test_sum_bitwise_identical),
      TW_TEST(test_every_index_once),
      TW_TEST(test_grain_zero_is_one),
      TW_TEST(test_empty_range),
      TW_TEST(test_workers_help),
      TW_TEST(test_workers_help_after_idle),
      TW_TEST(test_task_after_job),
      TW_TEST(test_error_lowest_chunk),
      TW_TEST(test_error_without_message),
      TW_TEST(test_nested),
      TW_TEST(test_submit_wait),
      TW_TEST(test_free_runs_queued_tasks),
      TW_TEST(test_submit_alloc_failure),
      TW_TEST(test_concurrent_callers),
      TW_TEST(test_new_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
