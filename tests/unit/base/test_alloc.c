/* test_alloc.c - allocator hooks, fault injection, live counting. */
#include <stdlib.h>
#include <string.h>

#include "tw_test.h"

static void basic_allocation_and_live_count(void **state) {
  (void)state;
  long live = tw_alloc_live();
  void *a = tw_alloc(10);
  void *z = tw_alloc(0);
  assert_non_null(a);
  assert_non_null(z);
  assert_ptr_not_equal(a, z);
  assert_int_equal(tw_alloc_live(), live + 2);
  tw_free(a);
  tw_free(z);
  tw_free(NULL);
  assert_int_equal(tw_alloc_live(), live);
}

static void calloc_zeroes_and_detects_overflow(void **state) {
  (void)state;
  unsigned char *p = tw_calloc(16, 4);
  assert_non_null(p);
  for (int i = 0; i < 64; i++)
    assert_int_equal(p[i], 0);
  tw_free(p);
  assert_null(tw_calloc(SIZE_MAX / 2, 3));
  assert_null(tw_reallocarray(NULL, SIZE_MAX / 2, 3));
}

static void realloc_keeps_contents_and_counts_once(void **state) {
  (void)state;
  long live = tw_alloc_live();
  char *p = tw_realloc(NULL, 4);
  assert_non_null(p);
  memcpy(p, "abc", 4);
  p = tw_realloc(p, 1 << 20);
  assert_non_null(p);
  assert_string_equal(p, "abc");
  assert_int_equal(tw_alloc_live(), live + 1);
  tw_free(p);
}

static void failed_realloc_leaves_pointer_valid(void **state) {
  (void)state;
  char *p = tw_strdup("keep");
  tw_alloc_fail_at(1, false);
  assert_null(tw_realloc(p, 100));
  assert_true(tw_alloc_failure_fired());
  assert_string_equal(p, "keep");
  tw_free(p);
}

static void fail_at_n_fails_exactly_that_one(void **state) {
  (void)state;
  tw_alloc_fail_at(3, false);
  void *a = tw_alloc(1), *b = tw_alloc(1), *c = tw_alloc(1), *d = tw_alloc(1);
  assert_non_null(a);
  assert_non_null(b);
  assert_null(c);
  assert_non_null(d);
  assert_true(tw_alloc_failure_fired());
  tw_free(a);
  tw_free(b);
  tw_free(d);
}

static void persistent_failure_fails_all_later(void **state) {
  (void)state;
  tw_alloc_fail_at(2, true);
  void *a = tw_alloc(1);
  assert_non_null(a);
  assert_null(tw_alloc(1));
  assert_null(tw_alloc(1));
  assert_null(tw_strdup("x"));
  tw_alloc_fail_at(0, false);
  assert_false(tw_alloc_failure_fired());
  void *b = tw_alloc(1);
  assert_non_null(b);
  tw_free(a);
  tw_free(b);
}

static void copies(void **state) {
  (void)state;
  char *s = tw_strdup("hello");
  char *t = tw_strndup("hello", 3);
  char *u = tw_strndup("hi", 10);
  int v[3] = {1, 2, 3};
  int *w = tw_memdup(v, sizeof v);
  assert_string_equal(s, "hello");
  assert_string_equal(t, "hel");
  assert_string_equal(u, "hi");
  assert_memory_equal(v, w, sizeof v);
  tw_free(s);
  tw_free(t);
  tw_free(u);
  tw_free(w);
  tw_alloc_fail_at(1, false);
  assert_null(tw_strdup("x"));
  tw_alloc_fail_at(1, false);
  assert_null(tw_strndup("x", 1));
  tw_alloc_fail_at(1, false);
  assert_null(tw_memdup(v, sizeof v));
}

/* A counting allocator to prove the hooks are used. */
static size_t hook_mallocs, hook_reallocs, hook_frees;
static void *hook_malloc(void *ud, size_t n) {
  (void)ud;
  hook_mallocs++;
  return malloc(n);
}
static void *hook_realloc(void *ud, void *p, size_t n) {
  (void)ud;
  hook_reallocs++;
  return realloc(p, n);
}
static void hook_free(void *ud, void *p) {
  (void)ud;
  hook_frees++;
  free(p);
}

static void hooks_route_every_call(void **state) {
  (void)state;
  tw_alloc_hooks h = {hook_malloc, hook_realloc, hook_free, NULL};
  assert_int_equal(tw_alloc_set_hooks(&h), TW_OK);
  void *p = tw_alloc(8);
  p = tw_realloc(p, 16);
  tw_free(p);
  assert_int_equal(hook_mallocs, 1);
  assert_int_equal(hook_reallocs, 1);
  assert_int_equal(hook_frees, 1);
  /* Cannot swap allocators while memory from this one is live. */
  void *q = tw_alloc(1);
  assert_int_equal(tw_alloc_set_hooks(NULL), TW_EBUSY);
  tw_free(q);
  assert_int_equal(tw_alloc_set_hooks(NULL), TW_OK);
  tw_alloc_hooks bad = {hook_malloc, NULL, hook_free, NULL};
  assert_int_equal(tw_alloc_set_hooks(&bad), TW_EINVAL);
}

static void calls_counter_advances(void **state) {
  (void)state;
  unsigned long before = tw_alloc_calls();
  void *p = tw_alloc(1);
  tw_free(p);
  tw_alloc_fail_at(1, false);
  assert_null(tw_alloc(1));
  assert_int_equal(tw_alloc_calls(), before + 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(basic_allocation_and_live_count),
      TW_TEST(calloc_zeroes_and_detects_overflow),
      TW_TEST(realloc_keeps_contents_and_counts_once),
      TW_TEST(failed_realloc_leaves_pointer_valid),
      TW_TEST(fail_at_n_fails_exactly_that_one),
      TW_TEST(persistent_failure_fails_all_later),
      TW_TEST(copies),
      TW_TEST(hooks_route_every_call),
      TW_TEST(calls_counter_advances),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
