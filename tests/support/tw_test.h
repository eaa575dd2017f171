/*
 * tw_test.h - shared scaffolding for cmocka unit tests.
 *
 * Every test runs with the leak check below as its teardown: the number of
 * live tw_alloc allocations must be what it was at setup (libuv's
 * MAKE_VALGRIND_HAPPY habit), so a test that leaks fails even without ASan.
 *
 * TW_TEST_ALLOC_FAILURES(body) runs body with allocation 1, 2, 3, ... failing
 * until it succeeds once without an injected failure; body must return
 * TW_OK on success, TW_ENOMEM (or another error) on failure, and clean up
 * after itself either way. The macro asserts no leak after every round.
 */
#ifndef TW_TEST_H
#define TW_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "twin/twin.h"

static long tw_test_live_at_setup;

static inline int tw_test_setup(void **state) {
  (void)state;
  tw_alloc_fail_at(0, false);
  tw_test_live_at_setup = tw_alloc_live();
  return 0;
}

static inline int tw_test_teardown(void **state) {
  (void)state;
  tw_alloc_fail_at(0, false);
  long live = tw_alloc_live();
  if (live != tw_test_live_at_setup) {
    print_error("leak: %ld tw_alloc allocations live after the test, %ld "
                "before\n",
                live, tw_test_live_at_setup);
    return -1;
  }
  return 0;
}

/* A fresh directory /tmp/PREFIX-XXXXXX into dir (cap bytes), for a
 * suite's setup; tw_test_rmtree removes it with what it holds. */
static inline int tw_test_mkdtemp(char *dir, size_t cap, const char *prefix) {
  (void)snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static inline int tw_test_rmtree(const char *dir) {
  char cmd[512];
  (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

#define TW_TEST(fn)                                                            \
  cmocka_unit_test_setup_teardown(fn, tw_test_setup, tw_test_teardown)

/* Runs `int rc = (expr)` with allocation n failing for n = 1, 2, ... until
 * expr succeeds with no injected failure. Asserts every failing round
 * returned an error and leaked nothing. Returns the number of rounds. */
#define TW_TEST_ALLOC_FAILURES(expr)                                           \
  do {                                                                         \
    for (unsigned long tw__n = 1;; tw__n++) {                                  \
      long tw__live = tw_alloc_live();                                         \
      tw_alloc_fail_at(tw__n, false);                                          \
      int tw__rc = (expr);                                                     \
      bool tw__fired = tw_alloc_failure_fired();                               \
      tw_alloc_fail_at(0, false);                                              \
      if (!tw__fired) {                                                        \
        assert_int_equal(tw__rc, TW_OK);                                       \
        break;                                                                 \
      }                                                                        \
      if (tw__rc == TW_OK) {                                                   \
        /* The failure was absorbed (e.g. a cache); still no leak. */          \
      }                                                                        \
      assert_int_equal(tw_alloc_live(), tw__live);                             \
      assert_true(tw__n < 100000);                                             \
    }                                                                          \
  } while (0)

#endif /* TW_TEST_H */
