/*
 * test_upload.c - streamed blob writes and resumable upload sessions:
 * a writer killed mid-write leaves no visible blob, a digest or size
 * mismatch stores nothing, chunks only at the current offset (416
 * otherwise), a session continued after its handle (the server) went
 * away, bytes after the last flush dropped on reopen, expired sessions
 * and stray temporaries collected, allocation failures.
 */
#include "reg_test.h"
#include "tw_test.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <utime.h>

static tw_reg *open_reg(void) {
  tw_reg *r = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_reg_open(rt_dir, &r, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return r;
}

static void writer(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  tw_store *s = tw_reg_store(r);
  tw_store_writer *w = NULL;
  assert_int_equal(tw_store_writer_open(s, &w, NULL), TW_OK);
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp-blob-"), 1);
  assert_int_equal(tw_store_writer_append(w, "hello ", 6, NULL), TW_OK);
  assert_int_equal(tw_store_writer_append(w, "world", 5, NULL), TW_OK);
  assert_int_equal(tw_store_writer_size(w), 11);
  char want[72], got[72];
  rt_digest("hello world", 11, want);
  /* Nothing under blobs/ before the commit. */
  assert_int_equal(rt_count(rt_at("blobs/sha256"), ""), 0);
  assert_int_equal(tw_store_writer_commit(w, want, 11, got, NULL), TW_OK);
  assert_string_equal(got, want);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_store_writer_append(w, "x", 1, &err), TW_ESTATE);
  tw_store_writer_close(w);
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp-blob-"), 0);
  assert_int_equal(tw_store_verify(s, want, NULL), TW_OK);

  /* A wrong digest or size: nothing stored, the temporary gone. */
  char other[72];
  rt_digest("other", 5, other);
  assert_int_equal(tw_store_writer_open(s, &w, NULL), TW_OK);
  assert_int_equal(tw_store_writer_append(w, "hello", 5, NULL), TW_OK);
  tw_err_init(&err);
  assert_int_equal(tw_store_writer_commit(w, other, -1, NULL, &err),
                   TW_EDIGEST);
  assert_non_null(strstr(err.msg, "hashes to sha256:"));
  tw_store_writer_close(w);
  assert_int_equal(tw_store_stat(s, other, NULL, NULL), TW_ENOENT);
  assert_int_equal(tw_store_writer_open(s, &w, NULL), TW_OK);
  assert_int_equal(tw_store_writer_append(w, "other", 5, NULL), TW_OK);
  assert_int_equal(tw_store_writer_commit(w, other, 6, NULL, NULL), TW_ERANGE);
  tw_store_writer_close(w);
  assert_int_equal(tw_store_writer_open(s, &w, NULL), TW_OK);
  assert_int_equal(tw_store_writer_commit(w, "sha256:12", -1, NULL, NULL),
                   TW_EINVAL);
  tw_store_writer_close(w);
  assert_int_equal(tw_store_stat(s, other, NULL, NULL), TW_ENOENT);
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp-blob-"), 0);
  assert_int_equal(rt_count(rt_at("blobs/sha256"), ""), 1);
  tw_reg_close(r);
}

/* A child writes a large blob and is killed with SIGKILL in the middle:
 * the parent finds no blob, only a temporary that collection removes. */
static void killed_writer(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  int before = rt_count(rt_at("blobs/sha256"), "");
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    tw_store_writer *w = NULL;
    static char chunk[1 << 16];
    memset(chunk, 'z', sizeof chunk);
    if (tw_store_writer_open(tw_reg_store(r), &w, NULL) != TW_OK)
      _exit(1);
    for (int i = 0;; i++) {
      if (tw_store_writer_append(w, chunk, sizeof chunk, NULL) != TW_OK)
        _exit(1);
      if (i == 16 && write(pipefd[1], "x", 1) != 1) /* mid-write now */
        _exit(1);
    }
  }
  char c;
  assert_int_equal(read(pipefd[0], &c, 1), 1);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  close(pipefd[0]);
  close(pipefd[1]);
  assert_int_equal(rt_count(rt_at("blobs/sha256"), ""), before);
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp-blob-"), 1);
  /* Young temporaries stay (a writer may still be going); old ones go. */
  size_t removed = 0;
  assert_int_equal(tw_reg_upload_gc(r, 3600, &removed, NULL), TW_OK);
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp-blob-"), 1);
  assert_int_equal(tw_reg_upload_gc(r, -1, &removed, NULL), TW_OK);
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp-blob-"), 0);
  tw_reg_close(r);
}

static void session_chunks(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  tw_reg_upload *u = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "lib/app", &u, &e), TW_OK);
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  strcpy(id, tw_reg_upload_id(u));
  assert_int_equal(strlen(id), TW_REG_UPLOAD_ID_LEN);
  assert_int_equal(tw_reg_upload_offset(u), 0);
  assert_int_equal(tw_reg_upload_append(u, 0, "abc", 3, &e), TW_OK);
  /* Out of order: a gap, an overlap, a repeat: 416, nothing written. */
  static const uint64_t wrong[] = {4, 2, 0, 100};
  for (size_t i = 0; i < 4; i++) {
    tw_reg_err_init(&e);
    assert_int_equal(tw_reg_upload_append(u, wrong[i], "zz", 2, &e), TW_ERANGE);
    assert_int_equal(e.code, TW_REG_BLOB_UPLOAD_INVALID);
    assert_int_equal(e.status, 416);
    assert_non_null(strstr(e.err.msg, "the upload is at byte 3"));
  }
  assert_int_equal(tw_reg_upload_offset(u), 3);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_append(u, 3, "def", 3, &e), TW_OK);
  assert_int_equal(tw_reg_upload_flush(u, &e), TW_OK);
  /* The server restarts: the handle goes, the session stays. */
  tw_reg_upload_close(u);
  tw_reg_close(r);
  r = open_reg();
  u = NULL;
  /* Another repository, a bad id: unknown. */
  assert_int_equal(tw_reg_upload_open(r, "lib/other", id, &u, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UPLOAD_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_open(r, "lib/app", "../../etc", &u, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UPLOAD_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_open(r, "lib/app", id, &u, &e), TW_OK);
  assert_int_equal(tw_reg_upload_offset(u), 6);
  assert_int_equal(tw_reg_upload_append(u, 6, "ghi", 3, &e), TW_OK);
  char d[72];
  rt_digest("abcdefghi", 9, d);
  assert_int_equal(tw_reg_upload_commit(u, d, 9, &e), TW_OK);
  tw_reg_upload_close(u);
  assert_false(rt_exists(rt_at("uploads/x")));
  assert_int_equal(rt_count(rt_at("uploads"), ""), 0);
  int64_t size = 0;
  assert_int_equal(tw_reg_blob_stat(r, "lib/app", d, &size, NULL, &e), TW_OK);
  assert_int_equal(size, 9);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_reg_blob_get(r, "lib/app", d, 0, &b, &e), TW_OK);
  assert_string_equal(b.data, "abcdefghi");
  tw_buf_fini(&b);
  tw_reg_close(r);
}

/* Bytes appended after the last flush were never acknowledged: a crash
 * there and the session reopens at the flushed offset. */
static void unflushed_tail(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  tw_reg_upload *u = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "a", &u, &e), TW_OK);
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  strcpy(id, tw_reg_upload_id(u));
  assert_int_equal(tw_reg_upload_append(u, 0, "12345", 5, &e), TW_OK);
  assert_int_equal(tw_reg_upload_flush(u, &e), TW_OK);
  assert_int_equal(tw_reg_upload_append(u, 5, "67", 2, &e), TW_OK);
  tw_reg_upload_close(u); /* no flush: as if killed */
  assert_int_equal(tw_reg_upload_open(r, "a", id, &u, &e), TW_OK);
  assert_int_equal(tw_reg_upload_offset(u), 5);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_append(u, 7, "89", 2, &e), TW_ERANGE);
  assert_int_equal(e.status, 416);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_append(u, 5, "6789", 4, &e), TW_OK);
  char d[72];
  rt_digest("123456789", 9, d);
  assert_int_equal(tw_reg_upload_commit(u, d, -1, &e), TW_OK);
  tw_reg_upload_close(u);
  tw_reg_close(r);
}

static void session_failures(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  tw_reg_upload *u = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "Bad/Name", &u, &e), TW_EINVAL);
  assert_int_equal(e.code, TW_REG_NAME_INVALID);
  assert_null(u);
  /* A digest mismatch ends the session and stores nothing. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "a", &u, &e), TW_OK);
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  strcpy(id, tw_reg_upload_id(u));
  assert_int_equal(tw_reg_upload_append(u, 0, "data", 4, &e), TW_OK);
  char d[72];
  rt_digest("atad", 4, d);
  assert_int_equal(tw_reg_upload_commit(u, d, -1, &e), TW_EDIGEST);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  tw_reg_upload_close(u);
  assert_int_equal(tw_store_stat(tw_reg_store(r), d, NULL, NULL), TW_ENOENT);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_open(r, "a", id, &u, &e), TW_ENOENT);
  /* A size mismatch likewise. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "a", &u, &e), TW_OK);
  assert_int_equal(tw_reg_upload_append(u, 0, "data", 4, &e), TW_OK);
  rt_digest("data", 4, d);
  assert_int_equal(tw_reg_upload_commit(u, d, 5, &e), TW_ERANGE);
  assert_int_equal(e.code, TW_REG_SIZE_INVALID);
  tw_reg_upload_close(u);
  assert_int_equal(tw_store_stat(tw_reg_store(r), d, NULL, NULL), TW_ENOENT);
  /* A malformed digest keeps the session (the client may retry). */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "a", &u, &e), TW_OK);
  strcpy(id, tw_reg_upload_id(u));
  assert_int_equal(tw_reg_upload_commit(u, "sha256:zz", -1, &e), TW_EINVAL);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  /* Cancel removes it. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_cancel(u, &e), TW_OK);
  assert_int_equal(tw_reg_upload_cancel(u, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UPLOAD_UNKNOWN);
  tw_reg_upload_close(u);
  assert_int_equal(rt_count(rt_at("uploads"), ""), 0);
  tw_reg_close(r);
}

/* Sets the modification time of path to age seconds ago. */
static void age(const char *path, time_t seconds) {
  struct utimbuf t;
  t.actime = t.modtime = time(NULL) - seconds;
  assert_int_equal(utime(path, &t), 0);
}

static void session_expiry(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  tw_reg_upload *old = NULL, *young = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_new(r, "a", &old, &e), TW_OK);
  assert_int_equal(tw_reg_upload_new(r, "a", &young, &e), TW_OK);
  char p[256];
  static const char *const parts[] = {"", "/data", "/state"};
  for (size_t i = 0; i < 3; i++) {
    (void)snprintf(p, sizeof p, "%s/uploads/%s%s", rt_dir,
                   tw_reg_upload_id(old), parts[i]);
    age(p, 7200);
  }
  size_t removed = 0;
  assert_int_equal(tw_reg_upload_gc(r, 3600, &removed, NULL), TW_OK);
  assert_int_equal(removed, 1);
  assert_int_equal(rt_count(rt_at("uploads"), ""), 1);
  /* The expired session's handle now fails as unknown. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_upload_flush(old, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UPLOAD_UNKNOWN);
  tw_reg_err_init(&e);
  char d[72];
  rt_digest("", 0, d);
  assert_int_equal(tw_reg_upload_commit(old, d, 0, &e), TW_ENOENT);
  assert_int_equal(tw_reg_upload_flush(young, &e), TW_OK);
  tw_reg_upload_close(old);
  tw_reg_upload_close(young);
  tw_reg_close(r);
}

static int session_round(void) {
  tw_reg *r = NULL;
  tw_reg_upload *u = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_open(rt_dir, &r, &e.err);
  if (rc == TW_OK)
    rc = tw_reg_upload_new(r, "a/b", &u, &e);
  if (rc == TW_OK)
    rc = tw_reg_upload_append(u, 0, "chunk", 5, &e);
  if (rc == TW_OK)
    rc = tw_reg_upload_flush(u, &e);
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  if (rc == TW_OK) {
    strcpy(id, tw_reg_upload_id(u));
    tw_reg_upload_close(u);
    u = NULL;
    rc = tw_reg_upload_open(r, "a/b", id, &u, &e);
  }
  char d[72];
  rt_digest("chunk", 5, d);
  if (rc == TW_OK)
    rc = tw_reg_upload_commit(u, d, 5, &e);
  tw_reg_err ce;
  tw_reg_err_init(&ce);
  if (rc != TW_OK && u != NULL)
    (void)tw_reg_upload_cancel(u, &ce);
  tw_reg_upload_close(u);
  tw_reg_close(r);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(session_round());
  /* Rounds that failed to reopen a session left it on disk, as a crash
   * would; nothing else (no blob of a failed commit, no temporary). */
  tw_reg *r = open_reg();
  assert_int_equal(rt_count(rt_at("uploads"), ".tmp"), 0);
  size_t removed = 0;
  assert_int_equal(tw_reg_upload_gc(r, -1, &removed, NULL), TW_OK);
  assert_int_equal(rt_count(rt_at("uploads"), ""), 0);
  tw_reg_close(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(writer),
      TW_TEST(killed_writer),
      TW_TEST(session_chunks),
      TW_TEST(unflushed_tail),
      TW_TEST(session_failures),
      TW_TEST(session_expiry),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, rt_make_dir, rt_remove_dir);
}
