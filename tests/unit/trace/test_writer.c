/*
 * test_writer.c - the MCAP writer: the partial file and its rename, the
 * lock against a second writer, failures that leave nothing behind
 * (I/O errors, every allocation), argument checks, chunking by size, and
 * a byte-exact golden file.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>

#include "trace_int.h"
#include "trace_test.h"

static void open_write_close(void **state) {
  (void)state;
  char path[128], partial[160];
  path_in_dir(path, sizeof path, "t.mcap");
  snprintf(partial, sizeof partial, "%s.partial", path);
  tw_err err;
  tw_err_init(&err);
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, NULL, &w, &err), TW_OK);
  /* Until close, only the partial file exists. */
  assert_true(file_exists(partial));
  assert_false(file_exists(path));
  uint16_t ch;
  assert_int_equal(
      tw_trace_writer_add_channel(w, "/a", "json", 0, NULL, 0, &ch, &err),
      TW_OK);
  assert_int_equal(ch, 1);
  assert_int_equal(tw_trace_writer_write(w, ch, 0, 10, 10, "{}", 2, &err),
                   TW_OK);
  assert_int_equal(tw_trace_writer_flush(w, &err), TW_OK);
  assert_false(tw_trace_writer_failed(w));
  assert_int_equal(tw_trace_writer_close(w, &err), TW_OK);
  assert_true(file_exists(path));
  assert_false(file_exists(partial));
  assert_int_equal(count_entries(), 1);
  assert_int_equal(tw_trace_writer_close(NULL, &err), TW_OK);
  tw_trace_writer_abort(NULL);
}

static void abort_removes_the_partial_file(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, NULL, &w, NULL), TW_OK);
  uint16_t ch;
  assert_int_equal(
      tw_trace_writer_add_channel(w, "/a", "json", 0, NULL, 0, &ch, NULL),
      TW_OK);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(tw_trace_writer_write(w, ch, 0, 1, 1, "{}", 2, NULL),
                     TW_OK);
  assert_int_equal(tw_trace_writer_flush(w, NULL), TW_OK);
  assert_int_equal(count_entries(), 1);
  tw_trace_writer_abort(w);
  assert_int_equal(count_entries(), 0);
}

static void a_second_writer_is_refused(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_err err;
  tw_err_init(&err);
  tw_trace_writer *w1 = NULL, *w2 = NULL;
  assert_int_equal(tw_trace_writer_open(path, NULL, &w1, &err), TW_OK);
  assert_int_equal(tw_trace_writer_open(path, NULL, &w2, &err), TW_EBUSY);
  assert_null(w2);
  assert_non_null(strstr(err.msg, "another writer"));
  /* The first is unharmed. */
  assert_int_equal(tw_trace_writer_close(w1, NULL), TW_OK);
  rec_list got = {0};
  assert_int_equal(read_all(path, NULL, 0, NULL, &got, NULL), 0);
  assert_int_equal(got.n, 0);
  rec_free(&got);
}

static void a_stale_partial_file_is_replaced(void **state) {
  (void)state;
  char path[128], partial[160];
  path_in_dir(path, sizeof path, "t.mcap");
  snprintf(partial, sizeof partial, "%s.partial", path);
  /* What a crashed writer leaves: garbage, and no lock. */
  spit(partial, (const uint8_t *)"half a trace", 12);
  sample_spec s = {100, 2, 50, 0};
  rec_list want = {0}, got = {0};
  assert_int_equal(write_sample(path, NULL, &s, &want), TW_OK);
  assert_false(file_exists(partial));
  assert_int_equal(read_all(path, NULL, 0, NULL, &got, NULL), 0);
  qsort(want.m, want.n, sizeof *want.m, rec_cmp_time);
  assert_same_messages(&want, &got);
  rec_free(&want);
  rec_free(&got);
}

static void a_failed_rename_leaves_nothing(void **state) {
  (void)state;
  char path[128], inner[160];
  path_in_dir(path, sizeof path, "t.mcap");
  /* A non-empty directory where the trace should go: rename fails. */
  assert_int_equal(mkdir(path, 0755), 0);
  snprintf(inner, sizeof inner, "%s/x", path);
  spit(inner, (const uint8_t *)"x", 1);
  tw_err err;
  tw_err_init(&err);
  sample_spec s = {10, 1, 10, 0};
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, NULL, &w, &err), TW_OK);
  assert_int_not_equal(tw_trace_writer_close(w, &err), TW_OK);
  assert_non_null(strstr(err.msg, "cannot rename"));
  assert_int_equal(count_entries(), 1); /* the directory only */
  assert_int_not_equal(write_sample(path, NULL, &s, NULL), TW_OK);
  assert_int_equal(count_entries(), 1);
  unlink(inner);
  rmdir(path);
}

/* An I/O error (the file size limit) breaks the writer: every later call
 * fails with the first error and close removes the partial file. */
static void an_io_error_breaks_the_writer(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  lim = old;
  lim.rlim_cur = 200000;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

  tw_err err;
  tw_err_init(&err);
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.compression = TW_TRACE_COMPRESSION_NONE;
  o.chunk_size = 4096;
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, &err), TW_OK);
  uint16_t ch;
  assert_int_equal(
      tw_trace_writer_add_channel(w, "/a", "x", 0, NULL, 0, &ch, &err), TW_OK);
  char data[1000];
  memset(data, 'x', sizeof data);
  int rc = TW_OK;
  for (int i = 0; i < 1000 && rc == TW_OK; i++)
    rc = tw_trace_writer_write(w, ch, 0, 1, 1, data, sizeof data, &err);
  assert_int_equal(rc, TW_ELIMIT); /* EFBIG */
  assert_true(tw_trace_writer_failed(w));
  assert_non_null(strstr(err.msg, "write failed"));
  tw_err err2;
  tw_err_init(&err2);
  assert_int_equal(tw_trace_writer_write(w, ch, 0, 1, 1, "", 0, &err2),
                   TW_ELIMIT);
  assert_string_equal(err2.msg, err.msg);
  tw_err_init(&err2);
  assert_int_equal(tw_trace_writer_add_metadata(w, "m", NULL, 0, &err2),
                   TW_ELIMIT);
  tw_err_init(&err2);
  assert_int_equal(tw_trace_writer_close(w, &err2), TW_ELIMIT);
  assert_int_equal(count_entries(), 0);

  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, old_handler);
}

static void options_and_arguments_are_checked(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer *w = NULL;
  tw_err err;

  tw_trace_writer_opts_init(&o);
  o.zstd_level = 40;
  tw_err_init(&err);
  assert_int_equal(tw_trace_writer_open(path, &o, &w, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "zstd level 40"));
  tw_trace_writer_opts_init(&o);
  o.compression = (tw_trace_compression)7;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_EINVAL);
  assert_int_equal(tw_trace_writer_open("", NULL, &w, NULL), TW_EINVAL);
  assert_int_equal(
      tw_trace_writer_open("/nonexistent-dir/x.mcap", NULL, &w, NULL),
      TW_ENOENT);
  assert_null(w);
  assert_int_equal(count_entries(), 0);

  assert_int_equal(tw_trace_writer_open(path, NULL, &w, NULL), TW_OK);
  uint16_t s1, s2, s3, ch;
  assert_int_equal(
      tw_trace_writer_add_schema(w, "a", "jsonschema", "{}", 2, &s1, NULL),
      TW_OK);
  assert_int_equal(
      tw_trace_writer_add_schema(w, "a", "jsonschema", "{}", 2, &s2, NULL),
      TW_OK);
  assert_int_equal(
      tw_trace_writer_add_schema(w, "a", "jsonschema", "{ }", 3, &s3, NULL),
      TW_OK);
  assert_int_equal(s1, 1);
  assert_int_equal(s2, 1); /* equal schemas are shared */
  assert_int_equal(s3, 2);
  tw_err_init(&err);
  assert_int_equal(
      tw_trace_writer_add_channel(w, "/a", "json", 3, NULL, 0, &ch, &err),
      TW_EINVAL);
  assert_non_null(strstr(err.msg, "no schema 3"));
  assert_int_equal(tw_trace_writer_add_schema(w, NULL, "x", NULL, 0, &s1, NULL),
                   TW_EINVAL);
  assert_int_equal(
      tw_trace_writer_add_channel(w, "/a", "json", 1, NULL, 0, &ch, NULL),
      TW_OK);
  tw_err_init(&err);
  assert_int_equal(tw_trace_writer_write(w, 2, 0, 1, 1, "x", 1, &err),
                   TW_EINVAL);
  assert_non_null(strstr(err.msg, "no channel 2"));
  assert_int_equal(tw_trace_writer_write(w, 0, 0, 1, 1, "x", 1, NULL),
                   TW_EINVAL);
  /* Port checks. */
  tw_trace_port bad = {"/p", "m", 0};
  assert_int_equal(
      tw_trace_writer_add_port(w, &bad, TW_TRACE_ENCODING_JSON, &ch, NULL),
      TW_EINVAL);
  tw_trace_port p = {"/p", NULL, 2};
  assert_int_equal(
      tw_trace_writer_add_port(w, &p, (tw_trace_encoding)9, &ch, NULL),
      TW_EINVAL);
  assert_int_equal(
      tw_trace_writer_add_port(w, &p, TW_TRACE_ENCODING_CDR, &ch, NULL), TW_OK);
  double v[3] = {1, 2, 3};
  tw_err_init(&err);
  assert_int_equal(tw_trace_writer_write_port(w, ch, 1, 0.0, v, 3, &err),
                   TW_EINVAL);
  assert_non_null(strstr(err.msg, "3 values for a port of size 2"));
  assert_int_equal(tw_trace_writer_write_port(w, 1, 1, 0.0, v, 2, NULL),
                   TW_EINVAL); /* channel 1 is not a port */
  assert_int_equal(tw_trace_writer_write_port(w, ch, 1, 0.0, v, 2, NULL),
                   TW_OK);
  assert_false(tw_trace_writer_failed(w));
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);

  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  assert_int_equal(tw_trace_reader_schema_count(r), 3);
  assert_int_equal(tw_trace_reader_channel_count(r), 2);
  assert_int_equal(tw_trace_reader_info(r)->stats.message_count, 1);
  tw_trace_reader_close(r);
}

/* Chunks hold at most chunk_size uncompressed bytes, unless one message
 * is larger; each has its message indexes. */
static void chunks_are_cut_by_size(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 1000;
  sample_spec s = {500, 3, 150, 2500};
  assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  assert_true(r->nchunks > 50);
  assert_int_equal(r->info.stats.chunk_count, r->nchunks);
  size_t big = 0;
  for (size_t i = 0; i < r->nchunks; i++) {
    const tw__chunk *c = &r->chunks[i];
    assert_true(c->mi_count >= 1 && c->mi_count <= 3);
    if (c->uncompressed > o.chunk_size) {
      /* A lone oversized message. */
      assert_int_equal(c->uncompressed, TW__REC_HDR + TW__MSG_FIXED + 2500);
      big++;
    }
  }
  assert_int_equal(big, 6); /* k % 97 == 5 for k < 500 */
  assert_int_equal(tw_trace_reader_verify(r, NULL), TW_OK);
  tw_trace_reader_close(r);
}

/* Writes the sample and checks that a failing round leaves no file. */
static int write_or_nothing(const char *path, const tw_trace_writer_opts *o) {
  sample_spec s = {300, 3, 100, 5000};
  int rc = write_sample(path, o, &s, NULL);
  if (rc != TW_OK)
    assert_int_equal(count_entries(), 0);
  else
    assert_int_equal(count_entries(), 1);
  return rc;
}

static void every_allocation_failure_leaves_nothing(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 2048;
  o.no_sync = true;
  TW_TEST_ALLOC_FAILURES(write_or_nothing(path, &o));
  unlink(path);
  o.compression = TW_TRACE_COMPRESSION_NONE;
  TW_TEST_ALLOC_FAILURES(write_or_nothing(path, &o));
  rec_list got = {0};
  assert_int_equal(read_all(path, NULL, 0, NULL, &got, NULL), 0);
  assert_int_equal(got.n, 300);
  rec_free(&got);
}

/* Allocation failures inside a writer leave it usable: each call either
 * succeeds or changes nothing, so retrying gives the same file. */
static int one_call_with_retry(tw_trace_writer *w, int which, uint16_t ch) {
  static const double v[2] = {0.5, -1};
  tw_trace_port p = {"/p", "N", 2};
  tw_trace_kv kv = {"k", "v"};
  uint16_t id;
  switch (which) {
  case 0:
    return tw_trace_writer_add_schema(w, "s", "jsonschema", "{}", 2, &id, NULL);
  case 1:
    return tw_trace_writer_add_channel(w, "/c", "json", 1, &kv, 1, &id, NULL);
  case 2:
    return tw_trace_writer_add_port(w, &p, TW_TRACE_ENCODING_JSON, &id, NULL);
  case 3:
    return tw_trace_writer_write(w, ch, 1, 2, 3, "{\"a\":1}", 7, NULL);
  case 4:
    return tw_trace_writer_write_port(w, (uint16_t)(ch + 1), 5, 0.25, v, 2,
                                      NULL);
  case 5:
    return tw_trace_writer_add_metadata(w, "m", &kv, 1, NULL);
  case 6:
    return tw_trace_writer_add_attachment(w, "a", "text/plain", 1, 2, "hi", 2,
                                          NULL);
  default:
    return tw_trace_writer_flush(w, NULL);
  }
}

/* Runs call with allocation 1, 2, ... failing until it succeeds; a
 * failing round must report an error (TW_ENOMEM). Memory the writer keeps
 * (grown buffers) is not a leak: close frees it, as the teardown checks. */
static void until_success(tw_trace_writer *w, int which) {
  for (unsigned long n = 1;; n++) {
    tw_alloc_fail_at(n, false);
    int rc = one_call_with_retry(w, which, 1);
    bool fired = tw_alloc_failure_fired();
    tw_alloc_fail_at(0, false);
    if (rc == TW_OK)
      return;
    assert_true(fired);
    assert_int_equal(rc, TW_ENOMEM);
    assert_false(tw_trace_writer_failed(w));
    assert_true(n < 10000);
  }
}

static void failed_calls_change_nothing(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 64; /* so writes finish chunks */
  o.library = "x";
  o.no_sync = true;
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_OK);
  for (int round = 0; round < 3; round++)
    for (int which = 0; which < 8; which++) {
      if (round > 0 && which <= 2)
        continue; /* one schema, one channel, one port */
      until_success(w, which);
    }
  assert_false(tw_trace_writer_failed(w));
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);
  /* The same calls without failures make the same file. */
  char path2[128];
  path_in_dir(path2, sizeof path2, "u.mcap");
  assert_int_equal(tw_trace_writer_open(path2, &o, &w, NULL), TW_OK);
  for (int round = 0; round < 3; round++)
    for (int which = 0; which < 8; which++)
      if (round == 0 || which > 2)
        assert_int_equal(one_call_with_retry(w, which, 1), TW_OK);
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);
  size_t n1, n2;
  uint8_t *a = slurp(path, &n1), *b = slurp(path2, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(a, b, n1);
  free(a);
  free(b);
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  assert_int_equal(tw_trace_reader_verify(r, NULL), TW_OK);
  assert_int_equal(r->info.stats.message_count, 6);
  assert_int_equal(tw_trace_reader_metadata_count(r), 3);
  assert_int_equal(tw_trace_reader_attachment_count(r), 3);
  tw_trace_reader_close(r);
}

/* The exact bytes of a small uncompressed trace: the layout written
 * (record order, summary groups, offsets, CRCs) is pinned. Regenerate with
 * TW_UPDATE_GOLDEN=1 after an intended change, and check the new file with
 * the reference tools (tests/trace). */
static void golden_file(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "golden.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.compression = TW_TRACE_COMPRESSION_NONE;
  o.chunk_size = 256;
  o.library = "twin-golden";
  o.profile = "x-twin";
  o.no_sync = true;
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_OK);
  tw_trace_port pos = {"/cart/x", "m", 2};
  tw_trace_port vel = {"/cart/v", "m/s", 1};
  uint16_t cp, cv;
  assert_int_equal(
      tw_trace_writer_add_port(w, &pos, TW_TRACE_ENCODING_JSON, &cp, NULL),
      TW_OK);
  assert_int_equal(
      tw_trace_writer_add_port(w, &vel, TW_TRACE_ENCODING_CDR, &cv, NULL),
      TW_OK);
  tw_trace_kv kv = {"seed", "1"};
  assert_int_equal(tw_trace_writer_add_metadata(w, "run", &kv, 1, NULL), TW_OK);
  for (int k = 0; k < 6; k++) {
    double x[2] = {0.1 * k, -k * 1e-3};
    double v = k == 3 ? NAN : 1.0 / (k + 1);
    uint64_t t = 1000000ull * (uint64_t)k;
    assert_int_equal(tw_trace_writer_write_port(w, cp, t, k * 1e-3, x, 2, NULL),
                     TW_OK);
    assert_int_equal(
        tw_trace_writer_write_port(w, cv, t, k * 1e-3, &v, 1, NULL), TW_OK);
  }
  assert_int_equal(tw_trace_writer_add_attachment(w, "note.txt", "text/plain",
                                                  5, 0, "hello", 5, NULL),
                   TW_OK);
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);
  size_t n;
  uint8_t *got = slurp(path, &n);
  const char *golden = TW_TEST_SOURCE_DIR "/tests/unit/trace/golden/small.mcap";
  if (getenv("TW_UPDATE_GOLDEN") != NULL)
    spit(golden, got, n);
  size_t gn;
  uint8_t *want = slurp(golden, &gn);
  assert_int_equal(n, gn);
  assert_memory_equal(got, want, n);
  free(got);
  free(want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TRACE_TEST(open_write_close),
      TRACE_TEST(abort_removes_the_partial_file),
      TRACE_TEST(a_second_writer_is_refused),
      TRACE_TEST(a_stale_partial_file_is_replaced),
      TRACE_TEST(a_failed_rename_leaves_nothing),
      TRACE_TEST(an_io_error_breaks_the_writer),
      TRACE_TEST(options_and_arguments_are_checked),
      TRACE_TEST(chunks_are_cut_by_size),
      TRACE_TEST(every_allocation_failure_leaves_nothing),
      TRACE_TEST(failed_calls_change_nothing),
      TRACE_TEST(golden_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
