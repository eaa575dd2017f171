/* test_error.c - the error table and first-error-wins tw_err. */
#include <errno.h>
#include <string.h>

#include "tw_test.h"

static void table_names_and_descriptions(void **state) {
  (void)state;
  assert_string_equal(tw_err_name(TW_OK), "OK");
  assert_string_equal(tw_err_name(TW_ENOMEM), "ENOMEM");
  assert_string_equal(tw_err_name(TW_EINTERNAL), "EINTERNAL");
  assert_string_equal(tw_strerror(TW_ENOMEM), "out of memory");
  assert_string_equal(tw_strerror(TW_OK), "success");
  assert_string_equal(tw_err_name(-9999), "EUNKNOWN");
  assert_string_equal(tw_strerror(12345), "unknown error");
  /* Every code in the table has a distinct name and description. */
  static const int codes[] = {
#define X(name, value, desc) value,
      TW_ERRNO_MAP(X)
#undef X
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] <= 0);
    assert_string_not_equal(tw_err_name(codes[i]), "EUNKNOWN");
    for (size_t j = i + 1; j < n; j++) {
      assert_int_not_equal(codes[i], codes[j]);
      assert_string_not_equal(tw_err_name(codes[i]), tw_err_name(codes[j]));
    }
  }
}

static void first_error_wins(void **state) {
  (void)state;
  tw_err e;
  tw_err_init(&e);
  assert_int_equal(e.code, TW_OK);
  assert_string_equal(tw_err_msg(&e), "success");
  assert_int_equal(tw_err_set(&e, TW_EPARSE, "a.json:%d:%d: bad", 3, 9),
                   TW_EPARSE);
  assert_int_equal(tw_err_set(&e, TW_EIO, "later"), TW_EIO);
  assert_int_equal(e.code, TW_EPARSE);
  assert_string_equal(tw_err_msg(&e), "a.json:3:9: bad");
  tw_err_init(&e);
  assert_int_equal(tw_err_set(&e, TW_EIO, NULL), TW_EIO);
  assert_string_equal(tw_err_msg(&e), "input/output error");
}

static void null_err_is_accepted(void **state) {
  (void)state;
  assert_int_equal(tw_err_set(NULL, TW_EINVAL, "x"), TW_EINVAL);
  assert_int_equal(tw_err_sys(NULL, ENOENT, "x"), TW_ENOENT);
  assert_int_equal(tw_err_copy(NULL, NULL), TW_OK);
  tw_err_init(NULL);
  assert_string_equal(tw_err_msg(NULL), "");
}

static void ok_code_is_never_recorded(void **state) {
  (void)state;
  tw_err e;
  tw_err_init(&e);
  assert_int_equal(tw_err_set(&e, TW_OK, "oops"), TW_EINTERNAL);
  assert_int_equal(e.code, TW_EINTERNAL);
}

static void long_messages_are_truncated_and_marked(void **state) {
  (void)state;
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  tw_err e;
  tw_err_init(&e);
  tw_err_set(&e, TW_EINVAL, "%s", big);
  size_t len = strlen(e.msg);
  assert_int_equal(len, TW_ERR_MSG_MAX - 1);
  assert_string_equal(e.msg + len - 3, "...");
  tw_err_init(&e);
  tw_err_sys(&e, ENOENT, "%s", big);
  assert_int_equal(e.code, TW_ENOENT);
  assert_string_equal(e.msg + strlen(e.msg) - 3, "...");
}

static void sys_errors_map_and_append_text(void **state) {
  (void)state;
  tw_err e;
  tw_err_init(&e);
  assert_int_equal(tw_err_sys(&e, ENOENT, "cannot open '%s'", "m.wasm"),
                   TW_ENOENT);
  assert_string_equal(e.msg, "cannot open 'm.wasm': No such file or directory");
  assert_int_equal(tw_err_from_errno(EACCES), TW_EPERM);
  assert_int_equal(tw_err_from_errno(EEXIST), TW_EEXIST);
  assert_int_equal(tw_err_from_errno(ENOMEM), TW_ENOMEM);
  assert_int_equal(tw_err_from_errno(ENOSPC), TW_ELIMIT);
  assert_int_equal(tw_err_from_errno(ECONNREFUSED), TW_ECONN);
  assert_int_equal(tw_err_from_errno(EISDIR), TW_EINVAL);
  assert_int_equal(tw_err_from_errno(EPIPE), TW_EIO);
}

static void copy_respects_first_error(void **state) {
  (void)state;
  tw_err a, b;
  tw_err_init(&a);
  tw_err_init(&b);
  tw_err_set(&b, TW_ETRAP, "model trapped at step 4");
  assert_int_equal(tw_err_copy(&a, &b), TW_ETRAP);
  assert_string_equal(a.msg, "model trapped at step 4");
  tw_err c;
  tw_err_init(&c);
  tw_err_set(&c, TW_EIO, "other");
  assert_int_equal(tw_err_copy(&a, &c), TW_ETRAP);
  assert_string_equal(a.msg, "model trapped at step 4");
  tw_err ok;
  tw_err_init(&ok);
  tw_err fresh;
  tw_err_init(&fresh);
  assert_int_equal(tw_err_copy(&fresh, &ok), TW_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(table_names_and_descriptions),
      TW_TEST(first_error_wins),
      TW_TEST(null_err_is_accepted),
      TW_TEST(ok_code_is_never_recorded),
      TW_TEST(long_messages_are_truncated_and_marked),
      TW_TEST(sys_errors_map_and_append_text),
      TW_TEST(copy_respects_first_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
