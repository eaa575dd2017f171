/*
 * test_clock.c - clocks and RFC 3339 formatting.
 *
 * The clock checks are semantic, with wide margins: monotonic time never
 * goes back, and thread CPU time grows with work but not with sleep.
 */
#include <string.h>
#include <time.h>

#include "tw_test.h"

static void test_mono_never_goes_back(void **state) {
  (void)state;
  uint64_t prev = tw_clock_mono_ns();
  assert_true(prev > 0);
  for (int i = 0; i < 100000; i++) {
    uint64_t now = tw_clock_mono_ns();
    assert_true(now >= prev);
    prev = now;
  }
}

static void test_wall_is_recent(void **state) {
  (void)state;
  /* After 2020-01-01 and consistent with time(). */
  int64_t wall = tw_clock_wall_ns();
  assert_true(wall > INT64_C(1577836800) * 1000000000);
  int64_t t = (int64_t)time(NULL);
  assert_true(wall / 1000000000 >= t - 2 && wall / 1000000000 <= t + 2);
  assert_true(tw_clock_process_cpu_ns() > 0);
}

/* Burns CPU on this thread until it has used at least ns of it. */
static volatile double sink_value;
static void busy_for(uint64_t ns) {
  uint64_t start = tw_clock_thread_cpu_ns();
  double x = 1.0;
  while (tw_clock_thread_cpu_ns() - start < ns) {
    for (int i = 0; i < 1000; i++)
      x = x * 1.0000001 + 1e-9;
  }
  sink_value = x;
}

static void test_thread_cpu_grows_with_work_not_sleep(void **state) {
  (void)state;
  uint64_t t0 = tw_clock_thread_cpu_ns();
  uint64_t p0 = tw_clock_process_cpu_ns();
  busy_for(30000000); /* 30 ms of CPU */
  uint64_t t1 = tw_clock_thread_cpu_ns();
  uint64_t p1 = tw_clock_process_cpu_ns();
  assert_true(t1 - t0 >= 30000000);
  assert_true(p1 - p0 >= 30000000);

  /* Sleeping 20 ms charges (almost) nothing to the thread. */
  uint64_t m0 = tw_clock_mono_ns();
  struct timespec req = {0, 20000000};
  while (nanosleep(&req, &req) != 0) {
  }
  uint64_t t2 = tw_clock_thread_cpu_ns();
  uint64_t m1 = tw_clock_mono_ns();
  assert_true(m1 - m0 >= 20000000);
  assert_true(t2 - t1 < 10000000);
}

static void check_rfc3339(int64_t wall_ns, const char *want) {
  char out[TW_CLOCK_RFC3339_LEN];
  memset(out, 'x', sizeof out);
  size_t len = tw_clock_format_rfc3339(wall_ns, out);
  assert_string_equal(out, want);
  assert_int_equal(len, strlen(want));
}

static void test_rfc3339_golden(void **state) {
  (void)state;
  check_rfc3339(0, "1970-01-01T00:00:00.000Z");
  check_rfc3339(999999, "1970-01-01T00:00:00.000Z");
  check_rfc3339(1000000, "1970-01-01T00:00:00.001Z");
  /* Before the epoch: floor division, milliseconds never negative. */
  check_rfc3339(-1, "1969-12-31T23:59:59.999Z");
  check_rfc3339(-1000000000, "1969-12-31T23:59:59.000Z");
  check_rfc3339(-1500000000, "1969-12-31T23:59:58.500Z");
  check_rfc3339(-1000000001, "1969-12-31T23:59:58.999Z");
  /* A known date, sub-millisecond digits dropped (not rounded). */
  check_rfc3339(INT64_C(1796008200123000000), "2026-11-30T03:10:00.123Z");
  check_rfc3339(INT64_C(1796008200123999999), "2026-11-30T03:10:00.123Z");
  /* Leap day. */
  check_rfc3339(INT64_C(951868799) * 1000000000 + 7000000,
                "2000-02-29T23:59:59.007Z");
  /* The extremes of int64_t nanoseconds. */
  check_rfc3339(INT64_MAX, "2262-04-11T23:47:16.854Z");
  check_rfc3339(INT64_MIN, "1677-09-21T00:12:43.145Z");
}

static void test_rfc3339_of_now(void **state) {
  (void)state;
  char out[TW_CLOCK_RFC3339_LEN];
  size_t len = tw_clock_format_rfc3339(tw_clock_wall_ns(), out);
  assert_int_equal(len, 24);
  assert_int_equal(out[4], '-');
  assert_int_equal(out[10], 'T');
  assert_int_equal(out[19], '.');
  assert_int_equal(out[23], 'Z');
}

int main(void);
int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_mono_never_goes_back),
      TW_TEST(test_wall_is_recent),
      TW_TEST(test_thread_cpu_grows_with_work_not_sleep),
      TW_TEST(test_rfc3339_golden),
      TW_TEST(test_rfc3339_of_now),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
