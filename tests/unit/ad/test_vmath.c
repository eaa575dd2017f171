/* test_vmath.c - the vector tanh of the elementwise operators: within a few
 * ulp of libm's scalar tanh over the whole range, exact at the special
 * values, and an element's value independent of its position and of the
 * array's length (the tail goes through the same routine). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ad_int.h"
#include "tw_test.h"

static int64_t ulp_distance(double a, double b) {
  int64_t ia, ib;
  memcpy(&ia, &a, sizeof ia);
  memcpy(&ib, &b, sizeof ib);
  if (ia < 0)
    ia = INT64_MIN - ia;
  if (ib < 0)
    ib = INT64_MIN - ib;
  return ia > ib ? ia - ib : ib - ia;
}

static void f64_close_to_libm(void **state) {
  (void)state;
  enum { N = 20001 };
  static double x[N], y[N];
  for (int i = 0; i < N; i++) /* -25 .. 25, dense around 0 */
    x[i] = 25 * sinh((i - N / 2) * (asinh(1.0) / (N / 2))) *
           ((i % 3 == 0) ? 1e-9 : 1);
  tw__vtanh_f64(N, x, y);
  int64_t worst = 0;
  for (int i = 0; i < N; i++) {
    int64_t d = ulp_distance(y[i], tanh(x[i]));
    if (d > worst)
      worst = d;
  }
  assert_true(worst <= 4); /* libmvec's documented bound */
}

static void f64_special_values(void **state) {
  (void)state;
  double x[7] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 800, -1e-310};
  double y[7];
  tw__vtanh_f64(7, x, y);
  assert_true(y[0] == 0 && !signbit(y[0]));
  assert_true(y[1] == 0 && signbit(y[1]));
  assert_true(y[2] == 1 && y[3] == -1);
  assert_true(isnan(y[4]));
  assert_true(y[5] == 1);
  assert_true(y[6] <= 0 && y[6] >= -1e-310);
}

/* Every length 0..40 and every offset: the same bits per element. */
static void position_and_length_independent(void **state) {
  (void)state;
  double x[48], ref[48], y[48];
  for (int i = 0; i < 48; i++)
    x[i] = 0.37 * i - 7.1;
  tw__vtanh_f64(48, x, ref);
  for (int off = 0; off < 8; off++)
    for (int n = 0; n + off <= 40; n++) {
      memset(y, 0x55, sizeof y);
      tw__vtanh_f64((size_t)n, x + off, y);
      assert_memory_equal(y, ref + off, (size_t)n * sizeof(double));
      double canary;
      memset(&canary, 0x55, sizeof canary);
      assert_memory_equal(&y[n], &canary, sizeof canary); /* no overrun */
    }
}

static void f32_close_to_libm(void **state) {
  (void)state;
  float x[1001], y[1001];
  for (int i = 0; i < 1001; i++)
    x[i] = (float)(i - 500) * 0.023f;
  tw__vtanh_f32(1001, x, y);
  for (int i = 0; i < 1001; i++)
    assert_true(fabsf(y[i] - tanhf(x[i])) <=
                4 * FLT_EPSILON * fabsf(y[i]) + FLT_MIN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(f64_close_to_libm),
      TW_TEST(f64_special_values),
      TW_TEST(position_and_length_independent),
      TW_TEST(f32_close_to_libm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
