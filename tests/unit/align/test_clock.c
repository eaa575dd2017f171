/*
 * test_clock.c - the lower-envelope clock fit: it recovers a known offset
 * and drift from synthetic one-way delays (exponential jitter over a
 * minimum delay), keeps its memory bounded by the window, detects clock
 * jumps in both directions and restarts, ignores small reorderings,
 * survives degenerate inputs without dividing by zero, and fails cleanly
 * on allocation failures.
 */
#include "tw_test.h"
#include <math.h>
#include <stdio.h>

#define MS INT64_C(1000000)

static uint64_t rng_state;

static double uniform(void);

/* xorshift64 needs a few rounds before small seeds look random. */
static void seed(uint64_t s) {
  rng_state = s;
  for (int i = 0; i < 32; i++)
    (void)uniform();
}

static double uniform(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

/* Host arrival of a record stamped d by a device whose clock is offset
 * by off_ns and drifts by ppm, after 1 ms + Exp(mean 2 ms) of delay. */
static int64_t host_of(int64_t d, int64_t off_ns, double ppm) {
  double delay = 1e6 - 2e6 * log(uniform());
  return d + off_ns + (int64_t)llround(ppm * 1e-6 * (double)d + delay);
}

static tw_align_clock *clock_new(const tw_align_clock_opts *o) {
  tw_align_clock *c = NULL;
  assert_int_equal(tw_align_clock_new(o, &c, NULL), TW_OK);
  return c;
}

static void add(tw_align_clock *c, int64_t d, int64_t h,
                tw_align_clock_event_kind want) {
  tw_align_clock_event ev;
  assert_int_equal(tw_align_clock_add(c, d, h, &ev, NULL), TW_OK);
  if (ev.kind != want)
    fail_msg("device %lld: event %d, want %d", (long long)d, (int)ev.kind,
             (int)want);
}

/* +250 ppm, 3 ms offset, 60 s of 100 Hz samples: the envelope sits on the
 * 1 ms minimum delay, so host - device at d is 4 ms + 250e-6 d. */
static void test_fit_recovers_offset_and_drift(void **state) {
  (void)state;
  seed(0x9e3779b97f4a7c15u);
  tw_align_clock_opts o = {.max_points = 8192};
  tw_align_clock *c = clock_new(&o);
  int64_t d = 0;
  for (int k = 0; k < 6000; k++, d += 10 * MS)
    add(c, d, host_of(d, 3 * MS, 250), TW_ALIGN_CLOCK_NONE);
  tw_align_clock_fit f;
  tw_align_clock_fit_get(c, &f);
  assert_true(f.valid && f.has_drift);
  double want_off = 4e6 + 250e-6 * (double)f.ref_device_ns;
  print_message("fit: drift %.3f ppm (true 250), offset %lld ns at %lld "
                "(true %.0f), residual mean %.0f max %.0f over %zu points, "
                "%zu hull vertices\n",
                f.drift_ppm, (long long)f.offset_ns, (long long)f.ref_device_ns,
                want_off, f.residual_mean_ns, f.residual_max_ns, f.count,
                f.hull_points);
  assert_true(fabs(f.drift_ppm - 250) < 3);
  assert_true(fabs((double)f.offset_ns - want_off) < 50e3);
  /* Residuals: the mean is about the mean jitter (2 ms). */
  assert_true(f.residual_mean_ns > 1.5e6 && f.residual_mean_ns < 2.5e6);
  assert_true(f.residual_max_ns >= f.residual_mean_ns);
  assert_true(f.count > 5990 && f.count <= 6001);
  assert_int_equal(f.jumps, 0);

  int64_t h;
  int64_t probe = 30000 * MS;
  assert_int_equal(tw_align_clock_to_host(c, probe, &h, NULL), TW_OK);
  double want = (double)probe + 4e6 + 250e-6 * (double)probe;
  assert_true(fabs((double)h - want) < 50e3);
  tw_align_clock_free(c);
}

/* A negative drift and a bounded window of points: memory stays at the
 * bound while the estimate holds. */
static void test_window_bounds_memory(void **state) {
  (void)state;
  seed(12345);
  tw_align_clock_opts o = {.max_points = 500, .window_ns = 20000 * MS};
  tw_align_clock *c = clock_new(&o);
  int64_t d = 1000000 * MS; /* a device epoch far from zero */
  for (int k = 0; k < 20000; k++, d += 5 * MS) {
    add(c, d, host_of(d, -7 * MS, -120), TW_ALIGN_CLOCK_NONE);
    tw_align_clock_fit f;
    tw_align_clock_fit_get(c, &f);
    assert_true(f.count <= 500);
  }
  tw_align_clock_fit f;
  tw_align_clock_fit_get(c, &f);
  print_message("window fit: drift %.3f ppm (true -120) over %zu points\n",
                f.drift_ppm, f.count);
  assert_true(fabs(f.drift_ppm + 120) < 25);
  tw_align_clock_free(c);
}

/* The device clock steps forward by 100 ms: host - device drops far below
 * the envelope. The fit restarts from that point and then recovers. */
static void test_jump_forward_detected(void **state) {
  (void)state;
  seed(777);
  tw_align_clock *c = clock_new(NULL);
  int64_t d = 0, step = 0;
  for (int k = 0; k < 4000; k++, d += 10 * MS) {
    if (k == 2000)
      step = 100 * MS;
    tw_align_clock_event ev;
    int64_t h = host_of(d, 3 * MS, 250);
    assert_int_equal(tw_align_clock_add(c, d + step, h, &ev, NULL), TW_OK);
    if (k == 2000) {
      assert_int_equal(ev.kind, TW_ALIGN_CLOCK_JUMP_BELOW);
      assert_true(ev.step_ns < -90 * MS && ev.step_ns > -110 * MS);
    } else {
      assert_int_equal(ev.kind, TW_ALIGN_CLOCK_NONE);
    }
  }
  tw_align_clock_fit f;
  tw_align_clock_fit_get(c, &f);
  assert_int_equal(f.jumps, 1);
  assert_true(f.count == 2000);
  assert_true(fabs(f.drift_ppm - 250) < 5);
  tw_align_clock_free(c);
}

/* Device time going back by a second is a jump; by 1 ms it is a
 * reordering that the fit ignores. */
static void test_jump_back_and_reorder(void **state) {
  (void)state;
  seed(4242);
  tw_align_clock *c = clock_new(NULL);
  int64_t d = 0;
  for (int k = 0; k < 100; k++, d += 10 * MS)
    add(c, d, host_of(d, 0, 0), TW_ALIGN_CLOCK_NONE);
  add(c, d - 11 * MS, host_of(d, 0, 0), TW_ALIGN_CLOCK_REORDERED);
  tw_align_clock_fit f;
  tw_align_clock_fit_get(c, &f);
  assert_int_equal(f.count, 100);
  assert_int_equal(f.reordered, 1);
  tw_align_clock_event ev;
  assert_int_equal(
      tw_align_clock_add(c, d - 1000 * MS, host_of(d, 0, 0), &ev, NULL), TW_OK);
  assert_int_equal(ev.kind, TW_ALIGN_CLOCK_JUMP_BACK);
  assert_true(ev.step_ns > 900 * MS);
  tw_align_clock_fit_get(c, &f);
  assert_int_equal(f.jumps, 1);
  assert_int_equal(f.count, 1);
  tw_align_clock_free(c);
}

/* One point, many points at one device time, extreme values: no division
 * by zero, a flat line through the lowest point. */
static void test_degenerate_inputs(void **state) {
  (void)state;
  tw_align_clock *c = clock_new(NULL);
  int64_t h;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_align_clock_to_host(c, 0, &h, &err), TW_ESTATE);
  tw_align_clock_fit f;
  tw_align_clock_fit_get(c, &f);
  assert_false(f.valid);

  add(c, 1000, 6000, TW_ALIGN_CLOCK_NONE);
  tw_align_clock_fit_get(c, &f);
  assert_true(f.valid);
  assert_false(f.has_drift);
  assert_int_equal(f.offset_ns, 5000);
  assert_true(f.drift_ppm == 0);
  add(c, 1000, 5500, TW_ALIGN_CLOCK_NONE);
  add(c, 1000, 7000, TW_ALIGN_CLOCK_NONE);
  tw_align_clock_fit_get(c, &f);
  assert_int_equal(f.offset_ns, 4500);
  assert_int_equal(f.hull_points, 1);
  assert_int_equal(tw_align_clock_to_host(c, 2000, &h, NULL), TW_OK);
  assert_int_equal(h, 6500);

  tw_err_init(&err);
  assert_int_equal(tw_align_clock_add(c, INT64_MIN, INT64_MAX, NULL, &err),
                   TW_ERANGE);
  assert_int_equal(tw_align_clock_add(c, INT64_MAX, 0, NULL, NULL), TW_OK);
  tw_align_clock_fit_get(c, &f);
  assert_int_equal(f.jumps, 1);
  tw_align_clock_reset(c);
  tw_align_clock_fit_get(c, &f);
  assert_false(f.valid);
  assert_int_equal(f.jumps, 1);

  tw_align_clock_opts bad = {.window_ns = -1};
  tw_align_clock *c2 = NULL;
  assert_int_equal(tw_align_clock_new(&bad, &c2, NULL), TW_EINVAL);
  assert_null(c2);
  tw_align_clock_free(c);
  tw_align_clock_free(NULL);
}

static int make_and_use(void) {
  tw_align_clock *c = NULL;
  int rc = tw_align_clock_new(NULL, &c, NULL);
  if (rc != TW_OK)
    return rc;
  (void)tw_align_clock_add(c, 1, 2, NULL, NULL);
  tw_align_clock_free(c);
  return TW_OK;
}

static void test_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(make_and_use());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_fit_recovers_offset_and_drift),
      TW_TEST(test_window_bounds_memory),
      TW_TEST(test_jump_forward_detected),
      TW_TEST(test_jump_back_and_reorder),
      TW_TEST(test_degenerate_inputs),
      TW_TEST(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
