/* test_buf.c - growable buffer: appends, formatting, JSON strings, OOM. */
#include <string.h>

#include "tw_test.h"

static void append_and_terminate(void **state) {
  (void)state;
  tw_buf b;
  tw_buf_init(&b);
  assert_int_equal(tw_buf_puts(&b, "ab"), TW_OK);
  assert_int_equal(tw_buf_putc(&b, 'c'), TW_OK);
  assert_int_equal(tw_buf_append(&b, "def", 2), TW_OK);
  assert_int_equal(tw_buf_append(&b, NULL, 0), TW_OK);
  assert_string_equal(b.data, "abcde");
  assert_int_equal(b.len, 5);
  tw_buf_truncate(&b, 2);
  assert_string_equal(b.data, "ab");
  tw_buf_truncate(&b, 10); /* beyond len: ignored */
  assert_int_equal(b.len, 2);
  tw_buf_reset(&b);
  assert_string_equal(b.data, "");
  tw_buf_fini(&b);
  assert_null(b.data);
  tw_buf_fini(NULL);
}

static void printf_small_and_large(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&b, "%d-%s", 42, "x"), TW_OK);
  char big[1000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(tw_buf_printf(&b, "[%s]", big), TW_OK);
  assert_int_equal(b.len, 4 + 2 + 999);
  assert_memory_equal(b.data, "42-x[yyy", 8);
  assert_int_equal(b.data[b.len - 1], ']');
  tw_buf_fini(&b);
}

static void growth_many_appends(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  for (int i = 0; i < 100000; i++)
    assert_int_equal(tw_buf_putc(&b, (char)('a' + i % 26)), TW_OK);
  assert_int_equal(b.len, 100000);
  assert_true(b.cap > b.len);
  assert_int_equal(b.data[26], 'a');
  tw_buf_fini(&b);
}

static void reserve_overflow(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  tw_buf_puts(&b, "x");
  assert_int_equal(tw_buf_reserve(&b, SIZE_MAX), TW_EOVERFLOW);
  assert_string_equal(b.data, "x");
  tw_buf_fini(&b);
}

static void failure_leaves_contents(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  tw_buf_puts(&b, "keep");
  char big[500];
  memset(big, 'z', sizeof big);
  tw_alloc_fail_at(1, false);
  assert_int_equal(tw_buf_append(&b, big, sizeof big), TW_ENOMEM);
  assert_string_equal(b.data, "keep");
  tw_alloc_fail_at(1, false);
  assert_int_equal(tw_buf_printf(&b, "%.*s", 400, big), TW_ENOMEM);
  assert_string_equal(b.data, "keep");
  assert_int_equal(b.len, 4);
  tw_buf_fini(&b);
}

static int json_string_round(const char *in, size_t n, const char *want) {
  tw_buf b = TW_BUF_INIT;
  int rc = tw_buf_puts(&b, "pre:");
  if (rc != TW_OK)
    return rc;
  rc = tw_buf_put_json_string(&b, in, n);
  if (rc == TW_OK) {
    assert_string_equal(b.data + 4, want);
  } else {
    assert_string_equal(b.data, "pre:");
  }
  tw_buf_fini(&b);
  return rc;
}

static void json_strings(void **state) {
  (void)state;
  json_string_round("plain", 5, "\"plain\"");
  json_string_round("q\"b\\", 4, "\"q\\\"b\\\\\"");
  json_string_round("a\nb\tc\r\x01", 7, "\"a\\nb\\tc\\r\\u0001\"");
  json_string_round("\xc3\xa9t\xc3\xa9", 5, "\"\xc3\xa9t\xc3\xa9\"");
  json_string_round("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"");
  /* Invalid UTF-8: lone continuation, truncated sequence, overlong,
   * surrogate, above U+10FFFF. */
  json_string_round("a\x80z", 3, "\"a\\ufffdz\"");
  json_string_round("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");
  json_string_round("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
  json_string_round("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
  json_string_round("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  json_string_round("nul\0in", 6, "\"nul\\u0000in\"");
}

static void json_string_alloc_failures(void **state) {
  (void)state;
  static const char in[] =
      "long enough to need growth \xc3\xa9 \x01 \"quoted\" "
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  TW_TEST_ALLOC_FAILURES(json_string_round(
      in, sizeof in - 1,
      "\"long enough to need growth \xc3\xa9 \\u0001 \\\"quoted\\\" "
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "\""));
}

static void take_transfers_ownership(void **state) {
  (void)state;
  tw_buf b = TW_BUF_INIT;
  size_t len = 99;
  char *empty = tw_buf_take(&b, &len);
  assert_non_null(empty);
  assert_string_equal(empty, "");
  assert_int_equal(len, 0);
  tw_free(empty);
  tw_buf_puts(&b, "owned");
  char *s = tw_buf_take(&b, &len);
  assert_string_equal(s, "owned");
  assert_int_equal(len, 5);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  tw_free(s);
  tw_alloc_fail_at(1, false);
  assert_null(tw_buf_take(&b, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(append_and_terminate),       TW_TEST(printf_small_and_large),
      TW_TEST(growth_many_appends),        TW_TEST(reserve_overflow),
      TW_TEST(failure_leaves_contents),    TW_TEST(json_strings),
      TW_TEST(json_string_alloc_failures), TW_TEST(take_transfers_ownership),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
