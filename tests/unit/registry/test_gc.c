/*
 * test_gc.c - garbage collection: blobs referenced by the manifests of
 * every repository (nested names, indexes, referrers, index.json) stay;
 * unreferenced blobs go once older than the grace period, young ones stay
 * (a push between its blobs and its manifest); dangling links are
 * removed; a dry run removes nothing; blobs and manifests named by sha512
 * digests are marked and swept alike; a collection waits for a push that
 * holds the store lock.
 */
#include "reg_test.h"
#include "tw_test.h"
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <utime.h>

static tw_reg *open_reg(void) {
  tw_reg *r = NULL;
  assert_int_equal(tw_reg_open(rt_dir, &r, NULL), TW_OK);
  return r;
}

/* Makes every blob look a day old. */
static void age_all(void) {
  char cmd[256];
  (void)snprintf(cmd, sizeof cmd,
                 "find '%s/blobs' -type f -exec touch -d '-1 day' {} +",
                 rt_dir);
  assert_int_equal(system(cmd), 0);
}

static bool has(tw_reg *r, const char *d) {
  return tw_store_stat(tw_reg_store(r), d, NULL, NULL) == TW_OK;
}

static void push(tw_reg *r, const char *repo, const char *tag,
                 const char *layer_text, const char *subject, char cfg[72],
                 char layer[72], char md[72]) {
  rt_blob(r, repo, "{}", cfg);
  rt_blob(r, repo, layer_text, layer);
  tw_buf m = TW_BUF_INIT;
  rt_manifest(&m, cfg, layer, subject ? "application/x.sig" : NULL, subject);
  rt_digest(m.data, m.len, md);
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, repo, tag ? tag : md,
                                       TW_REG_MT_MANIFEST, m.data, m.len, NULL,
                                       &e),
                   TW_OK);
  tw_buf_fini(&m);
}

static void collect(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char cfg[72], l1[72], m1[72], l2[72], m2[72], l3[72], m3[72];
  push(r, "a/deep/name", "v1", "layer one", NULL, cfg, l1, m1);
  push(r, "b", "v1", "layer two", NULL, cfg, l2, m2);
  /* A referrer of m1: its blobs are kept by it. */
  push(r, "a/deep/name", NULL, "signature", m1, cfg, l3, m3);
  /* An index in b naming m2. */
  tw_buf idx = TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&idx,
                                 "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                                 "\"manifests\":[{\"mediaType\":\"%s\","
                                 "\"digest\":\"%s\",\"size\":1}]}",
                                 TW_REG_MT_INDEX, TW_REG_MT_MANIFEST, m2),
                   TW_OK);
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "b", "all", TW_REG_MT_INDEX, idx.data,
                                       idx.len, NULL, &e),
                   TW_OK);
  char im[72];
  rt_digest(idx.data, idx.len, im);
  tw_buf_fini(&idx);
  /* Garbage: a blob nobody references, and the layer of a deleted
   * manifest. */
  char junk[72], l4[72], m4[72];
  rt_blob(r, "b", "junk", junk);
  push(r, "b", "gone", "layer four", NULL, cfg, l4, m4);
  assert_int_equal(tw_reg_manifest_delete(r, "b", m4, &e), TW_OK);
  /* A blob only index.json references (a `twin pull` layout root). */
  char root[72];
  assert_int_equal(tw_store_add(tw_reg_store(r), "root", 4, NULL, root, NULL),
                   TW_OK);
  tw_buf ij = TW_BUF_INIT;
  char rl[72];
  assert_int_equal(
      tw_store_add(tw_reg_store(r), "root layer", 10, NULL, rl, NULL), TW_OK);
  tw_buf rm = TW_BUF_INIT;
  rt_manifest(&rm, root, rl, NULL, NULL);
  char rmd[72];
  assert_int_equal(
      tw_store_add(tw_reg_store(r), rm.data, rm.len, NULL, rmd, NULL), TW_OK);
  assert_int_equal(
      tw_buf_printf(&ij,
                    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\","
                    "\"digest\":\"%s\",\"size\":%zu}]}",
                    TW_REG_MT_MANIFEST, rmd, rm.len),
      TW_OK);
  assert_int_equal(
      tw_file_write_atomic(rt_at("index.json"), ij.data, ij.len, NULL), TW_OK);
  tw_buf_fini(&ij);
  tw_buf_fini(&rm);

  /* Young: nothing goes. */
  tw_reg_gc_stats st;
  tw_reg_gc_opts opts = {3600, false};
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_int_equal(st.swept, 0);
  assert_int_equal(st.young, 3); /* junk, l4, m4 */
  assert_true(has(r, junk) && has(r, l4) && has(r, m4));
  /* Old, dry run: counted, kept. */
  age_all();
  opts.dry_run = true;
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_int_equal(st.swept, 3);
  assert_true(has(r, junk) && has(r, l4) && has(r, m4));
  /* Old: the garbage goes, everything referenced stays. */
  opts.dry_run = false;
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_int_equal(st.swept, 3);
  assert_true(st.bytes > 0);
  assert_false(has(r, junk) || has(r, l4) || has(r, m4));
  const char *keep[] = {cfg, l1, m1, l2, m2, l3, m3, im, root, rl, rmd};
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
    assert_true(has(r, keep[i]));
  /* The dangling links of b went with them. */
  assert_true(st.links >= 2);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_stat(r, "b", junk, NULL, NULL, &e), TW_ENOENT);
  char p[256];
  (void)snprintf(p, sizeof p, "%s/repos/b/_blobs/%s", rt_dir, junk + 7);
  assert_false(rt_exists(p));
  /* Pulls still work. */
  tw_buf body = TW_BUF_INIT;
  assert_int_equal(
      tw_reg_manifest_get(r, "a/deep/name", "v1", &body, NULL, NULL, &e),
      TW_OK);
  tw_buf_fini(&body);
  /* Once the referrer is deleted its signature layer is garbage too. */
  assert_int_equal(tw_reg_manifest_delete(r, "a/deep/name", m3, &e), TW_OK);
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_false(has(r, l3) || has(r, m3));
  assert_true(has(r, l1) && has(r, m1));
  tw_reg_close(r);
}

/* Blobs and manifests pushed by sha512 digests: kept while referenced,
 * swept (with their dangling links) once not. */
static void collect_sha512(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  enum { L = TW_STORE_DIGEST_MAX + 1 };
  char cfg[L], l1[L], m1[L], l2[L], m2[L], junk[L];
  tw_buf m = TW_BUF_INIT;
  tw_reg_err e;
  tw_reg_err_init(&e);
  rt_blob512(r, "s", "{}", cfg);
  rt_blob512(r, "s", "kept layer", l1);
  rt_manifest(&m, cfg, l1, NULL, NULL);
  rt_digest512(m.data, m.len, m1);
  assert_int_equal(tw_reg_manifest_put(r, "s", m1, TW_REG_MT_MANIFEST, m.data,
                                       m.len, NULL, &e),
                   TW_OK);
  /* Garbage: an unreferenced blob, and a deleted manifest and its layer. */
  rt_blob512(r, "s", "sha512 junk", junk);
  rt_blob512(r, "s", "gone layer", l2);
  tw_buf_reset(&m);
  rt_manifest(&m, cfg, l2, NULL, NULL);
  rt_digest512(m.data, m.len, m2);
  assert_int_equal(tw_reg_manifest_put(r, "s", m2, TW_REG_MT_MANIFEST, m.data,
                                       m.len, NULL, &e),
                   TW_OK);
  assert_int_equal(tw_reg_manifest_delete(r, "s", m2, &e), TW_OK);
  tw_reg_gc_opts opts = {3600, false};
  tw_reg_gc_stats st;
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_int_equal(st.swept, 0);
  assert_int_equal(st.young, 3); /* junk, l2, m2 */
  age_all();
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_int_equal(st.swept, 3);
  assert_false(has(r, junk) || has(r, l2) || has(r, m2));
  assert_true(has(r, cfg) && has(r, l1) && has(r, m1));
  assert_true(st.links >= 2);
  char p[512];
  (void)snprintf(p, sizeof p, "%s/repos/s/_blobs/%s", rt_dir, junk + 7);
  assert_false(rt_exists(p));
  (void)snprintf(p, sizeof p, "%s/repos/s/_blobs/%s", rt_dir, l1 + 7);
  assert_true(rt_exists(p));
  tw_buf body = TW_BUF_INIT;
  assert_int_equal(tw_reg_manifest_get(r, "s", m1, &body, NULL, NULL, &e),
                   TW_OK);
  /* Deleted, the manifest and what only it referenced go too. */
  assert_int_equal(tw_reg_manifest_delete(r, "s", m1, &e), TW_OK);
  assert_int_equal(tw_reg_gc(r, &opts, &st, NULL), TW_OK);
  assert_int_equal(st.swept, 3);
  assert_false(has(r, cfg) || has(r, l1) || has(r, m1));
  tw_buf_fini(&body);
  tw_buf_fini(&m);
  tw_reg_close(r);
}

/* A collection waits while a push holds the shared lock: a blob
 * committed and about to be referenced is not judged half-way. */
static void waits_for_pushes(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char junk[72];
  rt_blob(r, "w", "waiting junk", junk);
  age_all();
  int lock = -1;
  assert_int_equal(tw_store_lock(tw_reg_store(r), false, &lock, NULL), TW_OK);
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The inherited descriptor shares the parent's lock: not ours. */
    close(lock);
    tw_reg_gc_opts o = {3600, false};
    tw_reg_gc_stats st;
    int rc = tw_reg_gc(r, &o, &st, NULL);
    char c = rc == TW_OK ? 'k' : 'e';
    _exit(write(pipefd[1], &c, 1) == 1 ? 0 : 1);
  }
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  /* Still waiting: the blob is there and the child has not finished. */
  assert_true(has(r, junk));
  int status = 0;
  assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
  tw_store_unlock(lock);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  char c = 0;
  assert_int_equal(read(pipefd[0], &c, 1), 1);
  assert_int_equal(c, 'k');
  assert_false(has(r, junk));
  close(pipefd[0]);
  close(pipefd[1]);
  tw_reg_close(r);
}

static int gc_round(void) {
  tw_reg *r = NULL;
  int rc = tw_reg_open(rt_dir, &r, NULL);
  tw_reg_gc_opts o = {0, true};
  if (rc == TW_OK)
    rc = tw_reg_gc(r, &o, NULL, NULL);
  tw_reg_close(r);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(gc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(collect),
      TW_TEST(collect_sha512),
      TW_TEST(waits_for_pushes),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, rt_make_dir, rt_remove_dir);
}
