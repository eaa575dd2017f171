/* test_file.c - whole-file reads with limits, atomic durable writes. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tw_test.h"

/* A fresh scratch directory per test, removed with its files afterwards. */
static char dir[64];

static int make_dir(void **state) {
  snprintf(dir, sizeof dir, "/tmp/tw-file-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  return tw_test_setup(state);
}

static int remove_dir(void **state) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      unlinkat(dirfd(d), e->d_name, 0);
  if (d != NULL)
    closedir(d);
  rmdir(dir);
  return tw_test_teardown(state);
}

#define FILE_TEST(fn) cmocka_unit_test_setup_teardown(fn, make_dir, remove_dir)

static unsigned count_entries(void) {
  unsigned n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  if (d != NULL)
    closedir(d);
  return n;
}

static void write_then_read(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/a.txt", dir);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_file_write_atomic(path, "hello\n", 6, &err), TW_OK);
  tw_buf b = TW_BUF_INIT;
  tw_buf_puts(&b, "pre:");
  assert_int_equal(tw_file_read_all(path, 0, &b, &err), TW_OK);
  assert_string_equal(b.data, "pre:hello\n");
  /* Replacing keeps one file and the new content only. */
  assert_int_equal(tw_file_write_atomic(path, "x", 1, &err), TW_OK);
  tw_buf_reset(&b);
  assert_int_equal(tw_file_read_all(path, 1, &b, &err), TW_OK);
  assert_string_equal(b.data, "x");
  assert_int_equal(count_entries(), 1);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  mode_t mask = umask(0);
  umask(mask);
  assert_int_equal(st.st_mode & 0777, 0644 & ~mask);
  /* An empty file is fine too. */
  assert_int_equal(tw_file_write_atomic(path, "", 0, &err), TW_OK);
  tw_buf_reset(&b);
  assert_int_equal(tw_file_read_all(path, 0, &b, &err), TW_OK);
  assert_int_equal(b.len, 0);
  tw_buf_fini(&b);
}

static void large_file_round_trip(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/big.bin", dir);
  size_t n = 3 * 65536 + 17;
  unsigned char *data = tw_alloc(n);
  for (size_t i = 0; i < n; i++)
    data[i] = (unsigned char)(i * 131 + 7);
  assert_int_equal(tw_file_write_atomic(path, data, n, NULL), TW_OK);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_file_read_all(path, 0, &b, NULL), TW_OK);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.data, data, n);
  tw_buf_fini(&b);
  tw_free(data);
}

static void read_errors_name_the_path(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/missing", dir);
  tw_err err;
  tw_err_init(&err);
  tw_buf b = TW_BUF_INIT;
  tw_buf_puts(&b, "keep");
  assert_int_equal(tw_file_read_all(path, 0, &b, &err), TW_ENOENT);
  char want[256];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
           path);
  assert_string_equal(err.msg, want);
  assert_string_equal(b.data, "keep");
  tw_err_init(&err);
  assert_int_equal(tw_file_read_all(dir, 0, &b, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, ": read failed: Is a directory"));
  assert_string_equal(b.data, "keep");
  assert_int_equal(tw_file_open_read(path, NULL), TW_ENOENT);
  tw_buf_fini(&b);
}

static void limits_stop_large_and_endless_files(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/ten", dir);
  assert_int_equal(tw_file_write_atomic(path, "0123456789", 10, NULL), TW_OK);
  tw_err err;
  tw_err_init(&err);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_file_read_all(path, 9, &b, &err), TW_ELIMIT);
  char want[256];
  snprintf(want, sizeof want, "%s: larger than 9 bytes", path);
  assert_string_equal(err.msg, want);
  assert_int_equal(b.len, 0);
  assert_int_equal(tw_file_read_all(path, 10, &b, NULL), TW_OK);
  /* A device that never ends is stopped by the limit, not by memory. */
  tw_buf_reset(&b);
  tw_err_init(&err);
  assert_int_equal(tw_file_read_all("/dev/zero", 1 << 20, &b, &err), TW_ELIMIT);
  assert_string_equal(err.msg, "/dev/zero: larger than 1048576 bytes");
  assert_int_equal(b.len, 0);
  tw_buf_fini(&b);
}

static void failed_write_leaves_nothing(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/no/such/dir/f", dir);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_file_write_atomic(path, "x", 1, &err), TW_ENOENT);
  assert_non_null(strstr(err.msg, "cannot create a temporary file"));
  assert_int_equal(count_entries(), 0);
  /* Writing over a directory fails at the rename; the temporary goes. */
  char sub[128];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  tw_err_init(&err);
  assert_int_not_equal(tw_file_write_atomic(sub, "x", 1, &err), TW_OK);
  assert_non_null(strstr(err.msg, "cannot rename"));
  assert_int_equal(count_entries(), 1); /* just sub */
  rmdir(sub);
}

static int write_round(const char *path) {
  int rc = tw_file_write_atomic(path, "payload", 7, NULL);
  if (rc != TW_OK)
    return rc;
  tw_buf b = TW_BUF_INIT;
  rc = tw_file_read_all(path, 0, &b, NULL);
  if (rc == TW_OK)
    assert_string_equal(b.data, "payload");
  tw_buf_fini(&b);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  char path[128];
  snprintf(path, sizeof path, "%s/oom", dir);
  TW_TEST_ALLOC_FAILURES(write_round(path));
  assert_int_equal(count_entries(), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      FILE_TEST(write_then_read),
      FILE_TEST(large_file_round_trip),
      FILE_TEST(read_errors_name_the_path),
      FILE_TEST(limits_stop_large_and_endless_files),
      FILE_TEST(failed_write_leaves_nothing),
      FILE_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
