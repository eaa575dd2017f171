/* test_arena.c - bump allocation, alignment, limits, marks, reset. */
#include <stdalign.h>
#include <string.h>

#include "tw_test.h"

static void allocations_are_aligned_and_distinct(void **state) {
  (void)state;
  tw_arena a;
  tw_arena_init(&a, 256);
  char *prev = NULL;
  for (int i = 1; i < 200; i++) {
    char *p = tw_arena_alloc(&a, (size_t)(i % 37));
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
    assert_ptr_not_equal(p, prev);
    memset(p, 0xAB, (size_t)(i % 37)); /* ASan: must be writable */
    prev = p;
  }
  void *big = tw_arena_alloc_aligned(&a, 64, 4096);
  assert_non_null(big);
  assert_int_equal((uintptr_t)big % 4096, 0);
  assert_null(tw_arena_alloc_aligned(&a, 8, 3));    /* not a power of 2 */
  assert_null(tw_arena_alloc_aligned(&a, 8, 8192)); /* above maximum */
  assert_true(a.used <= a.reserved);
  assert_int_equal(a.peak, a.used);
  tw_arena_fini(&a);
  assert_int_equal(a.reserved, 0);
}

static void oversized_request_gets_own_chunk(void **state) {
  (void)state;
  tw_arena a;
  tw_arena_init(&a, 128);
  char *small = tw_arena_alloc(&a, 16);
  char *huge = tw_arena_alloc(&a, 100000);
  assert_non_null(small);
  assert_non_null(huge);
  memset(huge, 1, 100000);
  assert_true(a.reserved >= 100000 + 128);
  tw_arena_fini(&a);
}

static void strings_and_calloc(void **state) {
  (void)state;
  tw_arena a;
  tw_arena_init(&a, 0);
  char *s = tw_arena_strdup(&a, "hello");
  char *t = tw_arena_strndup(&a, "hello", 2);
  int *z = tw_arena_calloc(&a, 10, sizeof(int));
  assert_string_equal(s, "hello");
  assert_string_equal(t, "he");
  for (int i = 0; i < 10; i++)
    assert_int_equal(z[i], 0);
  assert_null(tw_arena_calloc(&a, SIZE_MAX / 2, 4));
  assert_non_null(tw_arena_alloc(&a, 0));
  tw_arena_fini(&a);
}

static void limit_stops_allocation(void **state) {
  (void)state;
  tw_arena a;
  tw_arena_init(&a, 1024);
  tw_arena_set_limit(&a, 100);
  assert_non_null(tw_arena_alloc(&a, 64));
  assert_false(a.limit_hit);
  assert_null(tw_arena_alloc(&a, 64));
  assert_true(a.limit_hit);
  assert_true(a.used <= 100);
  assert_null(tw_arena_alloc(&a, 5000)); /* new-chunk path checks too */
  tw_arena_reset(&a);
  assert_false(a.limit_hit);
  assert_non_null(tw_arena_alloc(&a, 64));
  tw_arena_fini(&a);
}

static void mark_and_rewind(void **state) {
  (void)state;
  tw_arena a;
  tw_arena_init(&a, 128);
  assert_non_null(tw_arena_alloc(&a, 32));
  tw_arena_mark m = tw_arena_save(&a);
  size_t used = a.used, reserved = a.reserved;
  for (int i = 0; i < 20; i++)
    assert_non_null(tw_arena_alloc(&a, 100));
  assert_true(a.reserved > reserved);
  tw_arena_rewind(&a, m);
  assert_int_equal(a.used, used);
  assert_int_equal(a.reserved, reserved);
  /* The space after the mark is reused. */
  char *p = tw_arena_alloc(&a, 8);
  assert_non_null(p);
  tw_arena_mark empty_mark;
  tw_arena b;
  tw_arena_init(&b, 64);
  empty_mark = tw_arena_save(&b);
  assert_non_null(tw_arena_alloc(&b, 10));
  tw_arena_rewind(&b, empty_mark);
  assert_null(b.head);
  assert_int_equal(b.used, 0);
  tw_arena_fini(&b);
  tw_arena_fini(&a);
}

static void reset_keeps_largest_chunk(void **state) {
  (void)state;
  tw_arena a;
  tw_arena_init(&a, 128);
  for (int i = 0; i < 10; i++)
    assert_non_null(tw_arena_alloc(&a, 100));
  assert_non_null(tw_arena_alloc(&a, 5000));
  size_t peak = a.peak;
  tw_arena_reset(&a);
  assert_int_equal(a.used, 0);
  assert_int_equal(a.peak, peak);
  assert_true(a.reserved >= 5000);
  assert_true(a.reserved < 5000 + 256 + 128);
  /* A tick that fits in the kept chunk allocates nothing. */
  unsigned long calls = tw_alloc_calls();
  for (int i = 0; i < 40; i++)
    assert_non_null(tw_arena_alloc(&a, 100));
  assert_int_equal(tw_alloc_calls(), calls);
  tw_arena_fini(&a);
  tw_arena_reset(&a); /* empty arena */
  assert_null(a.head);
}

static int arena_round(void) {
  tw_arena a;
  tw_arena_init(&a, 64);
  int rc = TW_OK;
  for (int i = 0; i < 8 && rc == TW_OK; i++)
    if (tw_arena_alloc(&a, 50) == NULL || tw_arena_strdup(&a, "x") == NULL)
      rc = TW_ENOMEM;
  tw_arena_fini(&a);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(arena_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(allocations_are_aligned_and_distinct),
      TW_TEST(oversized_request_gets_own_chunk),
      TW_TEST(strings_and_calloc),
      TW_TEST(limit_stops_allocation),
      TW_TEST(mark_and_rewind),
      TW_TEST(reset_keeps_largest_chunk),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
