/*
 * test_names.c - repository names, tags, digests and references against
 * the distribution spec's grammar (every bad name of the issue included),
 * and the error codes with their statuses and the JSON error body.
 */
#include "tw_test.h"
#include <string.h>

static void check_name(const char *s, bool ok) {
  tw_err err;
  tw_err_init(&err);
  int rc = tw_reg_name_check(s, strlen(s), &err);
  if ((rc == TW_OK) != ok)
    print_error("name '%s': %s\n", s, ok ? err.msg : "accepted");
  assert_int_equal(rc, ok ? TW_OK : TW_EINVAL);
  if (!ok)
    assert_true(err.msg[0] != '\0');
}

static void names(void **state) {
  (void)state;
  static const char *const good[] = {
      "a",         "library/ubuntu", "a.b", "a_b",     "a__b",
      "a-b",       "a---b",          "0",   "a/b/c/d", "models/osc-1.2",
      "x9_y.z--w", "a1/b2__c3"};
  static const char *const bad[] = {
      "",           "..",   "../etc", "a/../b", "a/..",   "A",
      "Ab/c",       "a//b", "/a",     "a/",     "%2e%2e", "a%2fb",
      "a/%2e%2e/b", ".a",   "a.",     "a..b",   "a___b",  "_a",
      "a_",         "-a",   "a-",     "a/.b",   "a/_b",   "a b",
      "a\\b",       "a:b",  "a@b",    "a/./b",  "a/b/",   "\xc3\xa9"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    check_name(good[i], true);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    check_name(bad[i], false);
  /* A NUL inside the bytes, and the length limit. */
  assert_int_equal(tw_reg_name_check("a\0b", 3, NULL), TW_EINVAL);
  char longname[TW_REG_NAME_MAX + 2];
  memset(longname, 'a', sizeof longname);
  assert_int_equal(tw_reg_name_check(longname, TW_REG_NAME_MAX, NULL), TW_OK);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_reg_name_check(longname, TW_REG_NAME_MAX + 1, &err),
                   TW_EINVAL);
  assert_non_null(strstr(err.msg, "at most 255"));
  tw_err_init(&err);
  assert_int_equal(tw_reg_name_check("a//b", 4, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "character 3"));
}

static void tags(void **state) {
  (void)state;
  static const char *const good[] = {"latest",  "v1.0.0", "_x",
                                     "A-b_c.d", "0",      "1.2.3-rc.1"};
  static const char *const bad[] = {"",    ".",   "..",  "-x",    ".hidden",
                                    "a/b", "a:b", "a b", "v1%2f", "x\xff"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    assert_int_equal(tw_reg_tag_check(good[i], strlen(good[i]), NULL), TW_OK);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(tw_reg_tag_check(bad[i], strlen(bad[i]), NULL), TW_EINVAL);
  char t[TW_REG_TAG_MAX + 1];
  memset(t, 'v', sizeof t);
  assert_int_equal(tw_reg_tag_check(t, TW_REG_TAG_MAX, NULL), TW_OK);
  assert_int_equal(tw_reg_tag_check(t, TW_REG_TAG_MAX + 1, NULL), TW_EINVAL);
}

static void digests_and_references(void **state) {
  (void)state;
  static const char good[] =
      "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  assert_int_equal(tw_reg_digest_check(good, strlen(good), NULL), TW_OK);
  static const char *const bad[] = {
      "sha256:0123",
      "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
      "sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "sha256:../3456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(tw_reg_digest_check(bad[i], strlen(bad[i]), NULL),
                     TW_EINVAL);
  assert_int_equal(tw_reg_digest_check(good, 20, NULL), TW_EINVAL);
  bool is_digest = false;
  assert_int_equal(tw_reg_reference_check(good, strlen(good), &is_digest, NULL),
                   TW_OK);
  assert_true(is_digest);
  assert_int_equal(tw_reg_reference_check("v1", 2, &is_digest, NULL), TW_OK);
  assert_false(is_digest);
  assert_int_equal(tw_reg_reference_check("md5:abc", 7, &is_digest, NULL),
                   TW_EINVAL);
  assert_true(is_digest);
  assert_int_equal(tw_reg_reference_check("..", 2, &is_digest, NULL),
                   TW_EINVAL);
  /* A manifest route's reference may be a sha512 digest too; the plain
   * reference (what Twin records) may not. */
  char s512[TW_STORE_DIGEST_MAX + 1];
  memcpy(s512, "sha512:", 7);
  memset(s512 + 7, 'a', TW_SHA512_HEX_LEN);
  s512[TW_STORE_DIGEST_MAX] = '\0';
  assert_int_equal(
      tw_reg_manifest_ref_check(s512, strlen(s512), &is_digest, NULL), TW_OK);
  assert_true(is_digest);
  assert_int_equal(
      tw_reg_manifest_ref_check(good, strlen(good), &is_digest, NULL), TW_OK);
  assert_int_equal(tw_reg_manifest_ref_check("v1", 2, &is_digest, NULL), TW_OK);
  assert_false(is_digest);
  assert_int_equal(
      tw_reg_manifest_ref_check(bad[1], strlen(bad[1]), &is_digest, NULL),
      TW_EINVAL);
  assert_true(is_digest);
  assert_int_equal(tw_reg_reference_check(s512, strlen(s512), &is_digest, NULL),
                   TW_EINVAL);
}

static void codes(void **state) {
  (void)state;
  static const struct {
    tw_reg_code code;
    const char *name;
    int status;
  } want[] = {
      {TW_REG_BLOB_UNKNOWN, "BLOB_UNKNOWN", 404},
      {TW_REG_BLOB_UPLOAD_INVALID, "BLOB_UPLOAD_INVALID", 400},
      {TW_REG_BLOB_UPLOAD_UNKNOWN, "BLOB_UPLOAD_UNKNOWN", 404},
      {TW_REG_DIGEST_INVALID, "DIGEST_INVALID", 400},
      {TW_REG_MANIFEST_BLOB_UNKNOWN, "MANIFEST_BLOB_UNKNOWN", 400},
      {TW_REG_MANIFEST_INVALID, "MANIFEST_INVALID", 400},
      {TW_REG_MANIFEST_UNKNOWN, "MANIFEST_UNKNOWN", 404},
      {TW_REG_NAME_INVALID, "NAME_INVALID", 400},
      {TW_REG_NAME_UNKNOWN, "NAME_UNKNOWN", 404},
      {TW_REG_SIZE_INVALID, "SIZE_INVALID", 400},
      {TW_REG_UNAUTHORIZED, "UNAUTHORIZED", 401},
      {TW_REG_DENIED, "DENIED", 403},
      {TW_REG_UNSUPPORTED, "UNSUPPORTED", 405},
      {TW_REG_TOOMANYREQUESTS, "TOOMANYREQUESTS", 429},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_string_equal(tw_reg_code_name(want[i].code), want[i].name);
    assert_int_equal(tw_reg_code_status(want[i].code), want[i].status);
  }
  assert_null(tw_reg_code_name(TW_REG_NONE));
  assert_null(tw_reg_code_name((tw_reg_code)999));
  assert_int_equal(tw_reg_code_status((tw_reg_code)999), 500);

  /* First error wins; the status may be more precise than the code's. */
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_err_set(&e, TW_REG_BLOB_UPLOAD_INVALID, 416,
                                  TW_ERANGE, "chunk at \"%d\"", 5),
                   TW_ERANGE);
  assert_int_equal(tw_reg_err_set(&e, TW_REG_DENIED, 0, TW_EPERM, "later"),
                   TW_EPERM);
  assert_int_equal(e.code, TW_REG_BLOB_UPLOAD_INVALID);
  assert_int_equal(e.status, 416);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_reg_err_body(&e, &b), TW_OK);
  assert_string_equal(b.data, "{\"errors\":[{\"code\":\"BLOB_UPLOAD_INVALID\","
                              "\"message\":\"blob upload invalid\","
                              "\"detail\":\"chunk at \\\"5\\\"\"}]}");
  /* A lower layer's failure becomes UNKNOWN/500. */
  tw_reg_err_init(&e);
  tw_err_set(&e.err, TW_EIO, "disk on fire");
  tw_reg_err_finish(&e);
  assert_int_equal(e.code, TW_REG_UNKNOWN);
  assert_int_equal(e.status, 500);
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_err_body(&e, &b), TW_OK);
  assert_non_null(strstr(b.data, "\"UNKNOWN\""));
  json_t *v = NULL;
  assert_int_equal(tw_json_parse(b.data, b.len, "body", &v, NULL), TW_OK);
  json_decref(v);
  tw_buf_fini(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(names),
      TW_TEST(tags),
      TW_TEST(digests_and_references),
      TW_TEST(codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
