/*
 * test_store.c - the local model store: the default directory from the
 * environment, the OCI layout it creates and checks, digests that are
 * refused (each with what is wrong), blobs added, read and verified, a
 * corrupted blob that is reported and never returned, I/O failures that
 * leave the store as it was, and allocation failures.
 */
#include "tw_test.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int make_dir(void **state) {
  (void)state;
  (void)snprintf(dir, sizeof dir, "/tmp/tw-test-store-XXXXXX");
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* dir/name (static buffer, one at a time). */
static const char *at(const char *name) {
  static char path[256];
  (void)snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

static void write_file(const char *path, const char *text) {
  assert_int_equal(tw_file_write_atomic(path, text, strlen(text), NULL), TW_OK);
}

/* Entries of path whose names start with prefix. */
static int count_entries(const char *path, const char *prefix) {
  DIR *d = opendir(path);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

static void default_dir(void **state) {
  (void)state;
  const char *keep[3] = {getenv("TWIN_STORE"), getenv("XDG_DATA_HOME"),
                         getenv("HOME")};
  char *saved[3];
  for (int i = 0; i < 3; i++)
    saved[i] = keep[i] != NULL ? strdup(keep[i]) : NULL;
  tw_buf b = TW_BUF_INIT;
  setenv("TWIN_STORE", "/s/t", 1);
  setenv("XDG_DATA_HOME", "/x", 1);
  setenv("HOME", "/h", 1);
  assert_int_equal(tw_store_default_dir(&b, NULL), TW_OK);
  assert_string_equal(b.data, "/s/t");
  tw_buf_reset(&b);
  unsetenv("TWIN_STORE");
  assert_int_equal(tw_store_default_dir(&b, NULL), TW_OK);
  assert_string_equal(b.data, "/x/twin/store");
  tw_buf_reset(&b);
  setenv("XDG_DATA_HOME", "relative", 1); /* ignored, as XDG says */
  assert_int_equal(tw_store_default_dir(&b, NULL), TW_OK);
  assert_string_equal(b.data, "/h/.local/share/twin/store");
  tw_buf_reset(&b);
  unsetenv("XDG_DATA_HOME");
  unsetenv("HOME");
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_store_default_dir(&b, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "TWIN_STORE"));
  tw_buf_fini(&b);
  const char *names[3] = {"TWIN_STORE", "XDG_DATA_HOME", "HOME"};
  for (int i = 0; i < 3; i++) {
    if (saved[i] != NULL)
      setenv(names[i], saved[i], 1);
    else
      unsetenv(names[i]);
    free(saved[i]);
  }
}

static void layout(void **state) {
  (void)state;
  tw_store *s = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_store_open(at("none"), false, &s, &err), TW_ENOENT);
  assert_null(s);
  assert_non_null(strstr(err.msg, "none does not exist"));
  /* Created with its layout, nested directories included. */
  assert_int_equal(tw_store_open(at("a/b/store/"), true, &s, NULL), TW_OK);
  assert_string_equal(tw_store_dir(s), at("a/b/store"));
  tw_store_close(s);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_file_read_all(at("a/b/store/oci-layout"), 0, &b, NULL),
                   TW_OK);
  assert_non_null(strstr(b.data, "\"imageLayoutVersion\": \"1.0.0\""));
  tw_buf_reset(&b);
  assert_int_equal(tw_file_read_all(at("a/b/store/index.json"), 0, &b, NULL),
                   TW_OK);
  assert_non_null(strstr(b.data, "\"schemaVersion\": 2"));
  tw_buf_fini(&b);
  struct stat st;
  assert_int_equal(stat(at("a/b/store/blobs/sha256"), &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(tw_store_open(at("a/b/store"), false, &s, NULL), TW_OK);
  tw_store_close(s);
  tw_store_close(NULL);
  /* A directory that is not a store, and a layout of another version. */
  assert_int_equal(mkdir(at("plain"), 0755), 0);
  tw_err_init(&err);
  assert_int_equal(tw_store_open(at("plain"), false, &s, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "is not a model store"));
  write_file(at("plain/oci-layout"), "{\"imageLayoutVersion\": \"2.0.0\"}");
  tw_err_init(&err);
  assert_int_equal(tw_store_open(at("plain"), false, &s, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "not an OCI image layout of version 1.x"));
}

static void digests(void **state) {
  (void)state;
  static const char good[] = "sha256:"
                             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"
                             "a495991b7852b855";
  assert_int_equal(tw_store_digest_check(good, NULL), TW_OK);
  static const struct {
    const char *digest, *msg;
  } bad[] = {
      {"sha256:abc", "3 hex digits, a sha256 digest has 64"},
      {"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B8"
       "55",
       "hex digits must be lower case"},
      {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8"
       "5g",
       "character 64 is not a hex digit"},
      {"sha512:00", "algorithm 'sha512' is not supported (sha256 only)"},
      {"md5:00", "algorithm 'md5' is not supported"},
      {"e3b0c442", "is not a digest"},
      {"sha256:", "0 hex digits"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_store_digest_check(bad[i].digest, &err), TW_EINVAL);
    if (strstr(err.msg, bad[i].msg) == NULL)
      print_error("%s: %s\n", bad[i].digest, err.msg);
    assert_non_null(strstr(err.msg, bad[i].msg));
  }
}

/* Adds text as a file; returns its digest in d. */
static int add_text(tw_store *s, const char *text,
                    char d[TW_STORE_DIGEST_LEN + 1], tw_err *err) {
  write_file(at("model.bin"), text);
  return tw_store_add_file(s, at("model.bin"), d, err);
}

static void add_read_verify(void **state) {
  (void)state;
  tw_store *s = NULL;
  assert_int_equal(tw_store_open(at("s1"), true, &s, NULL), TW_OK);
  char d[TW_STORE_DIGEST_LEN + 1], want[TW_SHA256_HEX_LEN + 1];
  static const char text[] = "model bytes";
  assert_int_equal(add_text(s, text, d, NULL), TW_OK);
  assert_int_equal(tw_sha256_hex(text, strlen(text), want), TW_OK);
  assert_int_equal(strlen(d), TW_STORE_DIGEST_LEN);
  assert_memory_equal(d, "sha256:", 7);
  assert_string_equal(d + 7, want);
  /* The blob's path and content; no temporary file left. */
  tw_buf p = TW_BUF_INIT, b = TW_BUF_INIT;
  assert_int_equal(tw_store_blob_path(s, d, &p, NULL), TW_OK);
  assert_non_null(strstr(p.data, "/s1/blobs/sha256/"));
  assert_int_equal(tw_file_read_all(p.data, 0, &b, NULL), TW_OK);
  assert_int_equal(b.len, strlen(text));
  assert_int_equal(count_entries(at("s1"), ".tmp"), 0);
  assert_int_equal(count_entries(at("s1/uploads"), ".tmp"), 0);
  /* Reads append; verify hashes again; adding again is the same blob. */
  tw_buf_reset(&b);
  assert_int_equal(tw_buf_printf(&b, "x"), TW_OK);
  assert_int_equal(tw_store_read(s, d, 0, &b, NULL), TW_OK);
  assert_int_equal(b.len, 1 + strlen(text));
  assert_memory_equal(b.data + 1, text, strlen(text));
  assert_int_equal(tw_store_verify(s, d, NULL), TW_OK);
  char d2[TW_STORE_DIGEST_LEN + 1];
  assert_int_equal(add_text(s, text, d2, NULL), TW_OK);
  assert_string_equal(d, d2);
  assert_int_equal(count_entries(at("s1/blobs/sha256"), ""), 3); /* . .. */
  /* Limits apply to reads. */
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_store_read(s, d, 4, &b, &err), TW_ELIMIT);
  assert_int_equal(b.len, 1 + strlen(text));
  /* Absent blobs. */
  char other[TW_STORE_DIGEST_LEN + 1];
  memcpy(other, d, sizeof other);
  other[7] = other[7] == '0' ? '1' : '0';
  tw_err_init(&err);
  assert_int_equal(tw_store_read(s, other, 0, &b, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "is not in the model store"));
  assert_int_equal(tw_store_verify(s, other, NULL), TW_ENOENT);
  tw_err_init(&err);
  assert_int_equal(tw_store_read(s, "sha256:zz", 0, &b, &err), TW_EINVAL);
  tw_buf_fini(&p);
  tw_buf_fini(&b);
  tw_store_close(s);
}

/* A blob whose bytes changed on disk is reported, never returned. */
static void corruption(void **state) {
  (void)state;
  tw_store *s = NULL;
  assert_int_equal(tw_store_open(at("s2"), true, &s, NULL), TW_OK);
  char d[TW_STORE_DIGEST_LEN + 1];
  assert_int_equal(add_text(s, "the real model", d, NULL), TW_OK);
  tw_buf p = TW_BUF_INIT, b = TW_BUF_INIT;
  assert_int_equal(tw_store_blob_path(s, d, &p, NULL), TW_OK);
  write_file(p.data, "the real modem");
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_buf_printf(&b, "kept"), TW_OK);
  assert_int_equal(tw_store_read(s, d, 0, &b, &err), TW_EDIGEST);
  assert_int_equal(b.len, 4);
  assert_non_null(strstr(err.msg, "is corrupt: its content hashes to sha256:"));
  tw_err_init(&err);
  assert_int_equal(tw_store_verify(s, d, &err), TW_EDIGEST);
  /* Adding the model again repairs it. */
  char d2[TW_STORE_DIGEST_LEN + 1];
  assert_int_equal(add_text(s, "the real model", d2, NULL), TW_OK);
  assert_int_equal(tw_store_verify(s, d, NULL), TW_OK);
  tw_buf_fini(&p);
  tw_buf_fini(&b);
  tw_store_close(s);
}

/* Failures of add leave the store as it was: no blob, no temporary. */
static void add_failures(void **state) {
  (void)state;
  tw_store *s = NULL;
  assert_int_equal(tw_store_open(at("s3"), true, &s, NULL), TW_OK);
  char d[TW_STORE_DIGEST_LEN + 1] = "unchanged";
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_store_add_file(s, at("nope.wasm"), d, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "nope.wasm: cannot open"));
  tw_err_init(&err);
  assert_int_equal(tw_store_add_file(s, at("s3"), d, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "not a regular file"));
  /* The blob directory replaced by a file: the rename fails. */
  char cmd[256];
  (void)snprintf(cmd, sizeof cmd,
                 "rm -rf '%s/s3/blobs/sha256' && touch "
                 "'%s/s3/blobs/sha256'",
                 dir, dir);
  assert_int_equal(system(cmd), 0);
  tw_err_init(&err);
  assert_int_not_equal(add_text(s, "model", d, &err), TW_OK);
  assert_non_null(strstr(err.msg, "cannot rename"));
  assert_string_equal(d, "unchanged");
  assert_int_equal(count_entries(at("s3"), ".tmp"), 0);
  assert_int_equal(count_entries(at("s3/uploads"), ".tmp"), 0);
  tw_store_close(s);
}

static int round_trip(void) {
  tw_store *s = NULL;
  char d[TW_STORE_DIGEST_LEN + 1];
  tw_buf b = TW_BUF_INIT;
  int rc = tw_store_open(at("s4"), true, &s, NULL);
  if (rc == TW_OK)
    rc = tw_store_add_file(s, at("model.bin"), d, NULL);
  if (rc == TW_OK)
    rc = tw_store_read(s, d, 0, &b, NULL);
  if (rc == TW_OK)
    rc = tw_store_verify(s, d, NULL);
  tw_buf_fini(&b);
  tw_store_close(s);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  write_file(at("model.bin"), "bytes of a model");
  TW_TEST_ALLOC_FAILURES(round_trip());
  assert_int_equal(count_entries(at("s4"), ".tmp"), 0);
  assert_int_equal(count_entries(at("s4/uploads"), ".tmp"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(default_dir),         TW_TEST(layout),     TW_TEST(digests),
      TW_TEST(add_read_verify),     TW_TEST(corruption), TW_TEST(add_failures),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
