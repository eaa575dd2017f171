/*
 * test_meta.c - the metadata store (twin/meta.h), one suite for both
 * backends.
 *
 * The store under test is $TW_META_TEST_URL when it is set (ctest's
 * unit.registry.meta_pg sets it to a PostgreSQL cluster that
 * tests/unit/registry/with_postgres starts and stops), else a SQLite
 * file in a new temporary directory per test. Each test starts from an
 * empty store: on PostgreSQL the tables are emptied, since the cluster is
 * shared by the tests of one run. Allocation-failure tests run on SQLite
 * only (libpq's allocations are its own, and a server round trip per
 * round would make them slow without covering more of Twin).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta_int.h"
#include "tw_test.h"
#include "twin/meta.h"

static char tmpdir[256];
static char url[512];

static const char digest_a[] =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char digest_b[] =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
static const char descriptor[] =
    "{\"abi\":1,\"name\":\"oscillator\",\"version\":\"1.0.0\","
    "\"state\":[],\"inputs\":[],\"outputs\":[],\"params\":[],"
    "\"differentiable\":true,\"meta\":{\"family\":\"spring\"}}";

static bool on_postgres(void) { return strncmp(url, "postgres", 8) == 0; }

static void remove_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* Opens the store under test, emptied. */
static tw_meta *open_store(void) {
  tw_meta *m = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_meta_open(url, &m, &err);
  if (rc != TW_OK)
    fail_msg("open %s: %s", url, tw_err_msg(&err));
  return m;
}

static int setup(void **state) {
  const char *env = getenv("TW_META_TEST_URL");
  if (env != NULL && env[0] != '\0') {
    snprintf(url, sizeof url, "%s", env);
    tw_meta *m = open_store();
    tw_err err;
    tw_err_init(&err);
    /* The foreign keys cascade from models to everything else. */
    if (tw__meta_exec_sql(m, "DELETE FROM models", &err) != TW_OK)
      fail_msg("reset: %s", tw_err_msg(&err));
    tw_meta_close(m);
    tmpdir[0] = '\0';
  } else {
    snprintf(tmpdir, sizeof tmpdir, "%s/twin-meta-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(url, sizeof url, "sqlite:%s/meta.db", tmpdir);
  }
  return tw_test_setup(state);
}

static int teardown(void **state) {
  int rc = tw_test_teardown(state);
  if (tmpdir[0] != '\0')
    remove_tree(tmpdir);
  return rc;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

#define OK(expr)                                                               \
  do {                                                                         \
    tw_err_init(&err);                                                         \
    int ok_rc_ = (expr);                                                       \
    if (ok_rc_ != TW_OK)                                                       \
      fail_msg("%s: %s: %s", #expr, tw_err_name(ok_rc_), tw_err_msg(&err));    \
  } while (0)

#define FAILS(want, expr)                                                      \
  do {                                                                         \
    tw_err_init(&err);                                                         \
    assert_int_equal((expr), (want));                                          \
    assert_int_equal(err.code, (want));                                        \
  } while (0)

static void make_model(tw_meta *m, const char *name) {
  tw_err err;
  tw_meta_model spec = {.name = name};
  OK(tw_meta_model_create(m, &spec, &err));
}

static int64_t make_version(tw_meta *m, const char *model) {
  tw_err err;
  tw_meta_version spec = {.model = model, .artifact = {.size = -1}};
  int64_t v = 0;
  OK(tw_meta_version_create(m, &spec, &v, &err));
  return v;
}

/* --- Opening and migrations ------------------------------------------------
 */

static void test_open_migrates(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  int v = 0;
  OK(tw_meta_schema_version(m, &v, &err));
  assert_int_equal(v, TW_META_SCHEMA_VERSION);
  assert_string_equal(tw_meta_backend(m),
                      on_postgres() ? "postgres" : "sqlite");
  tw_meta_close(m);
  /* Opening again applies nothing and keeps the data. */
  m = open_store();
  make_model(m, "kept");
  tw_meta_close(m);
  m = open_store();
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model got;
  OK(tw_meta_model_get(m, "kept", &a, &got, &err));
  OK(tw_meta_schema_version(m, &v, &err));
  assert_int_equal(v, TW_META_SCHEMA_VERSION);
  tw_arena_fini(&a);
  tw_meta_close(m);
}

static void test_open_refuses_newer_schema(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  OK(tw__meta_exec_sql(m,
                       "INSERT INTO schema_migrations (version, name, "
                       "applied_ms) VALUES (999, 'from the future', 0)",
                       &err));
  tw_meta *m2 = NULL;
  FAILS(TW_ENOTSUP, tw_meta_open(url, &m2, &err));
  assert_null(m2);
  assert_non_null(strstr(err.msg, "schema version 999"));
  assert_non_null(strstr(err.msg, "newer than this build"));
  OK(tw__meta_exec_sql(m, "DELETE FROM schema_migrations WHERE version = 999",
                       &err));
  tw_meta_close(m);
  m = open_store();
  tw_meta_close(m);
}

static void test_open_bad_urls(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = NULL;
  FAILS(TW_EINVAL, tw_meta_open("mysql://x/y", &m, &err));
  FAILS(TW_EINVAL, tw_meta_open("sqlite:", &m, &err));
  FAILS(TW_EINVAL, tw_meta_open("meta.db", &m, &err));
  FAILS(TW_EIO, tw_meta_open("sqlite:/nonexistent/dir/meta.db", &m, &err));
  assert_non_null(strstr(err.msg, "/nonexistent/dir/meta.db"));
  /* Nothing listens on port 1: refused at once. */
  FAILS(TW_ECONN,
        tw_meta_open("postgres://bob:s3cret@127.0.0.1:1/twin", &m, &err));
  assert_non_null(strstr(err.msg, "postgres://bob:***@127.0.0.1:1/twin"));
  assert_null(strstr(err.msg, "s3cret"));
  FAILS(TW_ECONN, tw_meta_open("postgresql://127.0.0.1:1/twin?password=pw&"
                               "sslmode=disable",
                               &m, &err));
  assert_non_null(strstr(err.msg, "password=***&sslmode=disable"));
  assert_null(m);
}

static void test_url_helpers(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"sqlite:/x/meta.db", "sqlite:/x/meta.db"},
      {"postgres://u@h/db", "postgres://u@h/db"},
      {"postgres://u:p@h:5/db", "postgres://u:***@h:5/db"},
      {"postgresql://u:p:q@h/db?password=z",
       "postgresql://u:***@h/db?password=***"},
      {"postgres://h/db?a=1&password=x&b=2",
       "postgres://h/db?a=1&password=***&b=2"},
      {"postgres://h/db?mypassword=x", "postgres://h/db?mypassword=x"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tw_buf b = TW_BUF_INIT;
    assert_int_equal(tw_meta_url_redact(cases[i][0], &b), TW_OK);
    assert_string_equal(b.data, cases[i][1]);
    tw_buf_fini(&b);
  }
  tw_buf b = TW_BUF_INIT;
  tw_err err;
  OK(tw_meta_url_default("/var/lib/twin", &b, &err));
  assert_string_equal(b.data, "sqlite:/var/lib/twin/meta.db");
  tw_buf_fini(&b);
}

static void test_page_token_codec(void **state) {
  (void)state;
  for (size_t n = 0; n < 40; n++) {
    char raw[40];
    for (size_t i = 0; i < n; i++)
      raw[i] = (char)(i * 37 + n);
    tw_buf enc = TW_BUF_INIT, dec = TW_BUF_INIT;
    assert_int_equal(tw__meta_b64_encode(raw, n, &enc), TW_OK);
    assert_int_equal(tw__meta_b64_decode(enc.data ? enc.data : "", &dec),
                     TW_OK);
    assert_int_equal(dec.len, n);
    assert_true(n == 0 || memcmp(dec.data, raw, n) == 0);
    tw_buf_fini(&enc);
    tw_buf_fini(&dec);
  }
  tw_buf dec = TW_BUF_INIT;
  assert_int_equal(tw__meta_b64_decode("a", &dec), TW_EINVAL);
  assert_int_equal(tw__meta_b64_decode("ab=c", &dec), TW_EINVAL);
  assert_int_equal(tw__meta_b64_decode("ab", &dec), TW_EINVAL); /* spare bits */
  assert_int_equal(dec.len, 0);
  tw_buf_fini(&dec);
}

/* --- Names ------------------------------------------------------------------
 */

static void test_names(void **state) {
  (void)state;
  tw_err err;
  static const char *const good[] = {"a", "Oscillator", "cart-pole_2.v1",
                                     "9lives"};
  static const char *const bad[] = {"",    ".hidden", "-x",   "a b",
                                    "a/b", "a@b",     "../x", "%2e%2e",
                                    "é",   "a:b",     "a\nb"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    OK(tw_meta_name_check(good[i], &err));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    FAILS(TW_EINVAL, tw_meta_name_check(bad[i], &err));
  char longname[TW_META_NAME_MAX + 2];
  memset(longname, 'x', sizeof longname);
  longname[TW_META_NAME_MAX] = '\0';
  OK(tw_meta_name_check(longname, &err));
  longname[TW_META_NAME_MAX] = 'x';
  longname[TW_META_NAME_MAX + 1] = '\0';
  FAILS(TW_EINVAL, tw_meta_name_check(longname, &err));
  OK(tw_meta_alias_check("production", &err));
  OK(tw_meta_alias_check("canary-2_b", &err));
  FAILS(TW_EINVAL, tw_meta_alias_check("latest", &err));
  FAILS(TW_EINVAL, tw_meta_alias_check("2fast", &err));
  FAILS(TW_EINVAL, tw_meta_alias_check("a.b", &err));
  FAILS(TW_EINVAL, tw_meta_alias_check("", &err));

  tw_meta *m = open_store();
  tw_meta_model spec = {.name = "a b"};
  FAILS(TW_EINVAL, tw_meta_model_create(m, &spec, &err));
  assert_non_null(strstr(err.msg, "model name 'a b'"));
  tw_meta_tag tags[] = {{"ok", "x"}, {"bad\tkey", "y"}};
  spec = (tw_meta_model){.name = "m", .tags = tags, .n_tags = 2};
  FAILS(TW_EINVAL, tw_meta_model_create(m, &spec, &err));
  tw_meta_tag dup[] = {{"k", "x"}, {"k", "y"}};
  spec = (tw_meta_model){.name = "m", .tags = dup, .n_tags = 2};
  FAILS(TW_EINVAL, tw_meta_model_create(m, &spec, &err));
  tw_meta_tag badval[] = {{"k", "\xc3\x28"}};
  spec = (tw_meta_model){.name = "m", .tags = badval, .n_tags = 1};
  FAILS(TW_EINVAL, tw_meta_model_create(m, &spec, &err));
  assert_non_null(strstr(err.msg, "UTF-8"));
  spec = (tw_meta_model){.name = "m", .description = "bell\a"};
  FAILS(TW_EINVAL, tw_meta_model_create(m, &spec, &err));
  /* Nothing was stored by the failed calls. */
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model got;
  FAILS(TW_ENOENT, tw_meta_model_get(m, "m", &a, &got, &err));
  tw_arena_fini(&a);
  tw_meta_close(m);
}

/* --- Models -----------------------------------------------------------------
 */

static void test_model_crud(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  tw__meta_set_now(m, 1000);
  tw_meta_tag tags[] = {{"team", "controls"}, {"domain", "mechanics"}};
  tw_meta_model spec = {.name = "oscillator",
                        .description = "a damped spring",
                        .tags = tags,
                        .n_tags = 2};
  OK(tw_meta_model_create(m, &spec, &err));
  FAILS(TW_EEXIST, tw_meta_model_create(m, &spec, &err));
  assert_non_null(strstr(err.msg, "'oscillator': already exists"));

  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model got;
  OK(tw_meta_model_get(m, "oscillator", &a, &got, &err));
  assert_string_equal(got.name, "oscillator");
  assert_string_equal(got.description, "a damped spring");
  assert_int_equal(got.n_tags, 2);
  assert_string_equal(got.tags[0].key, "domain"); /* sorted by key */
  assert_string_equal(got.tags[1].value, "controls");
  assert_int_equal(got.n_aliases, 0);
  assert_int_equal(got.latest_version, 0);
  assert_int_equal(got.created_ms, 1000);
  assert_int_equal(got.updated_ms, 1000);

  tw__meta_set_now(m, 2000);
  OK(tw_meta_model_update(m, "oscillator", "an undamped spring", &err));
  OK(tw_meta_model_tag_set(m, "oscillator", "team", "physics", &err));
  OK(tw_meta_model_tag_set(m, "oscillator", "new key", "", &err));
  OK(tw_meta_model_tag_delete(m, "oscillator", "domain", &err));
  FAILS(TW_ENOENT, tw_meta_model_tag_delete(m, "oscillator", "domain", &err));
  OK(tw_meta_model_get(m, "oscillator", &a, &got, &err));
  assert_string_equal(got.description, "an undamped spring");
  assert_int_equal(got.n_tags, 2);
  assert_string_equal(got.tags[0].key, "new key");
  assert_string_equal(got.tags[0].value, "");
  assert_string_equal(got.tags[1].key, "team");
  assert_string_equal(got.tags[1].value, "physics");
  assert_int_equal(got.created_ms, 1000);
  assert_int_equal(got.updated_ms, 2000);

  FAILS(TW_ENOENT, tw_meta_model_get(m, "nope", &a, &got, &err));
  assert_non_null(strstr(err.msg, "model 'nope': not found"));
  FAILS(TW_ENOENT, tw_meta_model_update(m, "nope", "", &err));
  FAILS(TW_ENOENT, tw_meta_model_tag_set(m, "nope", "k", "v", &err));
  FAILS(TW_ENOENT, tw_meta_model_delete(m, "nope", &err));
  OK(tw_meta_model_delete(m, "oscillator", &err));
  FAILS(TW_ENOENT, tw_meta_model_get(m, "oscillator", &a, &got, &err));
  tw_arena_fini(&a);
  tw_meta_close(m);
}

/* --- Versions ---------------------------------------------------------------
 */

static void test_version_roundtrip(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "osc");
  tw__meta_set_now(m, 5000);
  tw_meta_tag tags[] = {{"dataset", "rig-7"}};
  tw_meta_version spec = {.model = "osc",
                          .description = "first fit",
                          .status = TW_META_STATUS_PENDING,
                          .artifact = {.repository = "models/osc",
                                       .manifest_digest = digest_a,
                                       .wasm_digest = digest_b,
                                       .size = 12345,
                                       .descriptor = descriptor},
                          .tags = tags,
                          .n_tags = 1};
  int64_t v = 0;
  OK(tw_meta_version_create(m, &spec, &v, &err));
  assert_int_equal(v, 1);
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version got;
  OK(tw_meta_version_get(m, "osc", 1, &a, &got, &err));
  assert_string_equal(got.model, "osc");
  assert_int_equal(got.version, 1);
  assert_string_equal(got.description, "first fit");
  assert_int_equal(got.status, TW_META_STATUS_PENDING);
  assert_string_equal(got.artifact.repository, "models/osc");
  assert_string_equal(got.artifact.manifest_digest, digest_a);
  assert_string_equal(got.artifact.wasm_digest, digest_b);
  assert_int_equal(got.artifact.size, 12345);
  assert_string_equal(got.artifact.descriptor, descriptor);
  assert_int_equal(got.n_tags, 1);
  assert_string_equal(got.tags[0].value, "rig-7");
  assert_int_equal(got.created_ms, 5000);

  /* A version without an artifact yet. */
  OK(tw_meta_version_create(
      m, &(tw_meta_version){.model = "osc", .artifact = {.size = -1}}, &v,
      &err));
  assert_int_equal(v, 2);
  OK(tw_meta_version_get(m, "osc", 2, &a, &got, &err));
  assert_null(got.artifact.repository);
  assert_null(got.artifact.descriptor);
  assert_int_equal(got.artifact.size, -1);
  assert_int_equal(got.status, TW_META_STATUS_READY);
  assert_string_equal(got.description, "");

  tw__meta_set_now(m, 6000);
  OK(tw_meta_version_update(m, "osc", 1, NULL, TW_META_STATUS_READY, &err));
  OK(tw_meta_version_tag_set(m, "osc", 1, "score", "0.97", &err));
  OK(tw_meta_version_tag_delete(m, "osc", 1, "dataset", &err));
  FAILS(TW_ENOENT, tw_meta_version_tag_delete(m, "osc", 1, "dataset", &err));
  OK(tw_meta_version_get(m, "osc", 1, &a, &got, &err));
  assert_int_equal(got.status, TW_META_STATUS_READY);
  assert_string_equal(got.description, "first fit");
  assert_int_equal(got.n_tags, 1);
  assert_string_equal(got.tags[0].key, "score");
  assert_int_equal(got.updated_ms, 6000);
  OK(tw_meta_version_update(m, "osc", 1, "refit", TW_META_STATUS_FAILED, &err));
  OK(tw_meta_version_get(m, "osc", 1, &a, &got, &err));
  assert_string_equal(got.description, "refit");
  assert_int_equal(got.status, TW_META_STATUS_FAILED);

  tw_meta_model mg;
  OK(tw_meta_model_get(m, "osc", &a, &mg, &err));
  assert_int_equal(mg.latest_version, 2);

  FAILS(TW_ENOENT, tw_meta_version_get(m, "osc", 3, &a, &got, &err));
  assert_non_null(strstr(err.msg, "model 'osc' version 3: not found"));
  FAILS(TW_ENOENT, tw_meta_version_get(m, "nope", 1, &a, &got, &err));
  FAILS(TW_EINVAL, tw_meta_version_get(m, "osc", 0, &a, &got, &err));
  FAILS(TW_ENOENT,
        tw_meta_version_create(
            m, &(tw_meta_version){.model = "nope", .artifact = {.size = -1}},
            NULL, &err));
  tw_arena_fini(&a);
  tw_meta_close(m);
}

static void test_version_bad_input(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "osc");
  tw_meta_version spec = {.model = "osc", .artifact = {.size = -1}};
  spec.artifact.manifest_digest = "sha256:abc";
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  assert_non_null(strstr(err.msg, "manifest digest"));
  spec.artifact.manifest_digest = NULL;
  spec.artifact.wasm_digest = "md5:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  spec.artifact.wasm_digest = NULL;
  spec.artifact.descriptor = "{\"abi\":";
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  spec.artifact.descriptor = "[1,2]";
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  assert_non_null(strstr(err.msg, "not a JSON object"));
  spec.artifact.descriptor = NULL;
  spec.artifact.repository = "Models/UPPER";
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  spec.artifact.repository = NULL;
  spec.artifact.size = -2;
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  spec.artifact.size = -1;
  spec.status = (tw_meta_status)7;
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  spec.status = TW_META_STATUS_READY;
  const char *runs[] = {"run 1"};
  spec.run_ids = runs;
  spec.n_run_ids = 1;
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));
  spec.n_run_ids = 0;
  /* A missing parent fails the whole creation: no version, no number
   * used. */
  tw_meta_parent parents[] = {{"osc", 9}};
  spec.parents = parents;
  spec.n_parents = 1;
  FAILS(TW_ENOENT, tw_meta_version_create(m, &spec, NULL, &err));
  spec.n_parents = 0;
  assert_int_equal(make_version(m, "osc"), 1);
  tw_meta_close(m);
}

static void test_version_numbers_never_reused(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "a");
  make_model(m, "b");
  assert_int_equal(make_version(m, "a"), 1);
  assert_int_equal(make_version(m, "a"), 2);
  assert_int_equal(make_version(m, "b"), 1); /* per model */
  assert_int_equal(make_version(m, "a"), 3);
  OK(tw_meta_version_delete(m, "a", 3, &err));
  FAILS(TW_ENOENT, tw_meta_version_delete(m, "a", 3, &err));
  assert_int_equal(make_version(m, "a"), 4);
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model got;
  OK(tw_meta_model_get(m, "a", &a, &got, &err));
  assert_int_equal(got.latest_version, 4);
  tw_arena_fini(&a);
  /* A model deleted and made again starts over. */
  OK(tw_meta_model_delete(m, "a", &err));
  make_model(m, "a");
  assert_int_equal(make_version(m, "a"), 1);
  tw_meta_close(m);
}

/* --- Lineage -----------------------------------------------------------------
 */

static void test_lineage(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "base");
  make_model(m, "tuned");
  assert_int_equal(make_version(m, "base"), 1);
  assert_int_equal(make_version(m, "base"), 2);
  const char *runs[] = {"run-42", "calib/2026-11-30"};
  tw_meta_parent parents[] = {{"base", 2}, {"base", 1}};
  tw_meta_version spec = {.model = "tuned",
                          .artifact = {.size = -1},
                          .run_ids = runs,
                          .n_run_ids = 2,
                          .parents = parents,
                          .n_parents = 2};
  int64_t v = 0;
  OK(tw_meta_version_create(m, &spec, &v, &err));
  tw_meta_parent twice[] = {{"base", 1}, {"base", 1}};
  spec.parents = twice;
  FAILS(TW_EINVAL, tw_meta_version_create(m, &spec, NULL, &err));

  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version got;
  OK(tw_meta_version_get(m, "tuned", v, &a, &got, &err));
  assert_int_equal(got.n_run_ids, 2);
  assert_string_equal(got.run_ids[0], "run-42");
  assert_string_equal(got.run_ids[1], "calib/2026-11-30");
  assert_int_equal(got.n_parents, 2);
  assert_string_equal(got.parents[0].model, "base");
  assert_int_equal(got.parents[0].version, 2);
  assert_int_equal(got.parents[1].version, 1);

  /* Children of a version, versions of a run. */
  tw_meta_version_page page;
  tw_meta_parent p1 = {"base", 1};
  OK(tw_meta_version_search(m, &(tw_meta_query){.parent = &p1}, &a, &page,
                            &err));
  assert_int_equal(page.n, 1);
  assert_string_equal(page.items[0].model, "tuned");
  OK(tw_meta_version_search(m, &(tw_meta_query){.run_id = "run-42"}, &a, &page,
                            &err));
  assert_int_equal(page.n, 1);
  OK(tw_meta_version_search(m, &(tw_meta_query){.run_id = "run-43"}, &a, &page,
                            &err));
  assert_int_equal(page.n, 0);
  assert_null(page.next_page_token);

  /* Deleting a parent keeps the child's lineage: it is history. */
  OK(tw_meta_version_delete(m, "base", 1, &err));
  OK(tw_meta_version_get(m, "tuned", v, &a, &got, &err));
  assert_int_equal(got.n_parents, 2);
  tw_arena_fini(&a);
  tw_meta_close(m);
}

/* --- Aliases -----------------------------------------------------------------
 */

static void test_aliases(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "osc");
  make_model(m, "other");
  for (int i = 0; i < 3; i++)
    make_version(m, "osc");
  make_version(m, "other");
  OK(tw_meta_alias_set(m, "osc", "production", 1, &err));
  OK(tw_meta_alias_set(m, "osc", "canary", 3, &err));
  OK(tw_meta_alias_set(m, "other", "production", 1, &err));
  int64_t v = 0;
  OK(tw_meta_alias_get(m, "osc", "production", &v, &err));
  assert_int_equal(v, 1);
  /* Moving is one statement. */
  OK(tw_meta_alias_set(m, "osc", "production", 2, &err));
  OK(tw_meta_alias_get(m, "osc", "production", &v, &err));
  assert_int_equal(v, 2);
  OK(tw_meta_alias_get(m, "osc", "latest", &v, &err));
  assert_int_equal(v, 3);

  FAILS(TW_ENOENT, tw_meta_alias_set(m, "osc", "production", 9, &err));
  FAILS(TW_ENOENT, tw_meta_alias_set(m, "nope", "production", 1, &err));
  FAILS(TW_EINVAL, tw_meta_alias_set(m, "osc", "latest", 1, &err));
  FAILS(TW_EINVAL, tw_meta_alias_set(m, "osc", "bad alias", 1, &err));
  FAILS(TW_ENOENT, tw_meta_alias_get(m, "osc", "staging", &v, &err));
  assert_non_null(strstr(err.msg, "'osc@staging': not found"));

  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version got;
  OK(tw_meta_version_resolve(m, "osc@production", &a, &got, &err));
  assert_int_equal(got.version, 2);
  assert_int_equal(got.n_aliases, 1);
  assert_string_equal(got.aliases[0], "production");
  OK(tw_meta_version_resolve(m, "models:/osc@canary", &a, &got, &err));
  assert_int_equal(got.version, 3);
  OK(tw_meta_version_resolve(m, "osc@latest", &a, &got, &err));
  assert_int_equal(got.version, 3);
  OK(tw_meta_version_resolve(m, "models:/osc/1", &a, &got, &err));
  assert_int_equal(got.version, 1);
  assert_int_equal(got.n_aliases, 0);
  static const char *const bad_refs[] = {"osc",    "osc/",     "osc/0",
                                         "osc/01", "osc/1x",   "osc@",
                                         "@prod",  "a b@prod", "osc@a b"};
  for (size_t i = 0; i < sizeof bad_refs / sizeof bad_refs[0]; i++)
    FAILS(TW_EINVAL, tw_meta_version_resolve(m, bad_refs[i], &a, &got, &err));
  FAILS(TW_ENOENT, tw_meta_version_resolve(m, "osc@staging", &a, &got, &err));
  FAILS(TW_ENOENT, tw_meta_version_resolve(m, "osc/7", &a, &got, &err));

  tw_meta_model mg;
  OK(tw_meta_model_get(m, "osc", &a, &mg, &err));
  assert_int_equal(mg.n_aliases, 2);
  assert_string_equal(mg.aliases[0].alias, "canary");
  assert_int_equal(mg.aliases[0].version, 3);
  assert_string_equal(mg.aliases[1].alias, "production");
  assert_int_equal(mg.aliases[1].version, 2);

  /* Deleting a version takes its aliases with it. */
  OK(tw_meta_version_delete(m, "osc", 3, &err));
  FAILS(TW_ENOENT, tw_meta_alias_get(m, "osc", "canary", &v, &err));
  OK(tw_meta_alias_delete(m, "osc", "production", &err));
  FAILS(TW_ENOENT, tw_meta_alias_delete(m, "osc", "production", &err));
  FAILS(TW_ENOENT, tw_meta_alias_get(m, "osc", "production", &v, &err));
  OK(tw_meta_alias_get(m, "other", "production", &v, &err));
  assert_int_equal(v, 1);
  tw_arena_fini(&a);
  tw_meta_close(m);
}

static void test_model_delete_cascades(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "gone");
  make_model(m, "stays");
  tw_meta_tag tags[] = {{"k", "v"}};
  const char *runs[] = {"r1"};
  tw_meta_version spec = {.model = "gone",
                          .artifact = {.size = -1},
                          .tags = tags,
                          .n_tags = 1,
                          .run_ids = runs,
                          .n_run_ids = 1};
  OK(tw_meta_version_create(m, &spec, NULL, &err));
  OK(tw_meta_model_tag_set(m, "gone", "k", "v", &err));
  OK(tw_meta_alias_set(m, "gone", "production", 1, &err));
  make_version(m, "stays");
  OK(tw_meta_model_delete(m, "gone", &err));
  static const char *const tables[] = {"versions", "model_tags", "version_tags",
                                       "version_runs", "aliases"};
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
    int64_t n = -1;
    OK(tw__meta_query_int(m, sql, NULL, &n, NULL, &err));
    assert_int_equal(n, strcmp(tables[i], "versions") == 0 ? 1 : 0);
  }
  tw_meta_close(m);
}

/* --- Search -----------------------------------------------------------------
 */

static void test_model_search(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  static const char *const names[] = {"pump-a", "pump-b", "valve", "Pump-c",
                                      "heat-pump"};
  for (size_t i = 0; i < 5; i++) {
    tw__meta_set_now(m, 1000 * (int64_t)(i + 1));
    tw_meta_tag tags[] = {{"site", i % 2 ? "north" : "south"}};
    tw_meta_model spec = {.name = names[i], .tags = tags, .n_tags = 1};
    OK(tw_meta_model_create(m, &spec, &err));
  }
  make_version(m, "valve");
  OK(tw_meta_alias_set(m, "valve", "production", 1, &err));

  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_model_page page;
  OK(tw_meta_model_search(m, &(tw_meta_query){0}, &a, &page, &err));
  assert_int_equal(page.n, 5);
  /* Byte order: upper case first. */
  assert_string_equal(page.items[0].name, "Pump-c");
  assert_string_equal(page.items[1].name, "heat-pump");
  assert_string_equal(page.items[4].name, "valve");
  assert_int_equal(page.items[4].latest_version, 1);
  assert_int_equal(page.items[4].n_aliases, 1);
  assert_null(page.next_page_token);

  OK(tw_meta_model_search(m, &(tw_meta_query){.name_prefix = "pump"}, &a, &page,
                          &err));
  assert_int_equal(page.n, 2); /* case-sensitive */
  OK(tw_meta_model_search(m, &(tw_meta_query){.name_contains = "ump"}, &a,
                          &page, &err));
  assert_int_equal(page.n, 4);
  /* '%' and '_' are plain characters, not patterns. */
  OK(tw_meta_model_search(m, &(tw_meta_query){.name_contains = "%"}, &a, &page,
                          &err));
  assert_int_equal(page.n, 0);
  OK(tw_meta_model_search(m, &(tw_meta_query){.name_prefix = "_"}, &a, &page,
                          &err));
  assert_int_equal(page.n, 0);
  /* Input is data, never SQL. */
  static const char evil[] = "'; DROP TABLE models; --";
  OK(tw_meta_model_search(m, &(tw_meta_query){.name_contains = evil}, &a, &page,
                          &err));
  assert_int_equal(page.n, 0);
  OK(tw_meta_model_tag_set(m, "valve", "note", evil, &err));
  tw_meta_tag evil_tag[] = {{"note", evil}};
  OK(tw_meta_model_search(m, &(tw_meta_query){.tags = evil_tag, .n_tags = 1},
                          &a, &page, &err));
  assert_int_equal(page.n, 1);
  assert_string_equal(page.items[0].tags[0].value, evil);
  OK(tw_meta_model_tag_delete(m, "valve", "note", &err));
  tw_meta_tag north[] = {{"site", "north"}};
  OK(tw_meta_model_search(m, &(tw_meta_query){.tags = north, .n_tags = 1}, &a,
                          &page, &err));
  assert_int_equal(page.n, 2);
  assert_string_equal(page.items[0].name, "Pump-c");
  assert_string_equal(page.items[1].name, "pump-b");
  OK(tw_meta_model_search(
      m, &(tw_meta_query){.tags = north, .n_tags = 1, .name_prefix = "p"}, &a,
      &page, &err));
  assert_int_equal(page.n, 1);
  OK(tw_meta_model_search(m, &(tw_meta_query){.has_alias = true}, &a, &page,
                          &err));
  assert_int_equal(page.n, 1);
  assert_string_equal(page.items[0].name, "valve");
  OK(tw_meta_model_search(m, &(tw_meta_query){.alias = "staging"}, &a, &page,
                          &err));
  assert_int_equal(page.n, 0);
  OK(tw_meta_model_search(
      m, &(tw_meta_query){.created_after_ms = 2000, .created_before_ms = 4000},
      &a, &page, &err));
  assert_int_equal(page.n, 2); /* pump-b (2000), valve (3000) */
  assert_string_equal(page.items[0].name, "pump-b");
  assert_string_equal(page.items[1].name, "valve");
  FAILS(TW_EINVAL, tw_meta_model_search(m, &(tw_meta_query){.status = "READY"},
                                        &a, &page, &err));
  FAILS(TW_EINVAL, tw_meta_model_search(m, &(tw_meta_query){.page_size = 5000},
                                        &a, &page, &err));

  /* Pages of two: every model once, in order. */
  const char *seen[8];
  size_t n_seen = 0, pages = 0;
  tw_meta_query q = {.page_size = 2};
  do {
    OK(tw_meta_model_search(m, &q, &a, &page, &err));
    for (size_t i = 0; i < page.n; i++)
      seen[n_seen++] = page.items[i].name;
    q.page_token = page.next_page_token;
    pages++;
  } while (q.page_token != NULL && pages < 10);
  assert_int_equal(pages, 3);
  assert_int_equal(n_seen, 5);
  for (size_t i = 1; i < n_seen; i++)
    assert_true(strcmp(seen[i - 1], seen[i]) < 0);
  static const char *const bad_tokens[] = {"", "!!", "bTE6", "djE6MTp4",
                                           "bTE6YSBi"};
  for (size_t i = 0; i < sizeof bad_tokens / sizeof bad_tokens[0]; i++) {
    q.page_token = bad_tokens[i];
    FAILS(TW_EINVAL, tw_meta_model_search(m, &q, &a, &page, &err));
  }
  tw_arena_fini(&a);
  tw_meta_close(m);
}

static void test_version_search(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "osc");
  make_model(m, "cart");
  static const char *const other_descriptor =
      "{\"abi\":2,\"name\":\"cartpole\",\"differentiable\":false,"
      "\"meta\":{\"family\":\"pendulum\"}}";
  for (int i = 0; i < 4; i++) {
    tw__meta_set_now(m, 100 + i);
    tw_meta_tag tags[] = {{"parity", i % 2 ? "odd" : "even"}};
    tw_meta_version spec = {.model = "osc",
                            .status = i == 3 ? TW_META_STATUS_PENDING
                                             : TW_META_STATUS_READY,
                            .artifact = {.size = i, .descriptor = descriptor},
                            .tags = tags,
                            .n_tags = 1};
    OK(tw_meta_version_create(m, &spec, NULL, &err));
  }
  tw__meta_set_now(m, 200);
  tw_meta_version spec = {
      .model = "cart",
      .artifact = {.size = -1, .descriptor = other_descriptor}};
  OK(tw_meta_version_create(m, &spec, NULL, &err));
  OK(tw_meta_alias_set(m, "osc", "production", 2, &err));

  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_version_page page;
  OK(tw_meta_version_search(m, &(tw_meta_query){0}, &a, &page, &err));
  assert_int_equal(page.n, 5);
  assert_string_equal(page.items[0].model, "cart");
  assert_string_equal(page.items[1].model, "osc");
  assert_int_equal(page.items[1].version, 4); /* newest first */
  assert_int_equal(page.items[4].version, 1);

  OK(tw_meta_version_search(m, &(tw_meta_query){.model = "osc"}, &a, &page,
                            &err));
  assert_int_equal(page.n, 4);
  tw_meta_tag odd[] = {{"parity", "odd"}};
  OK(tw_meta_version_search(m, &(tw_meta_query){.tags = odd, .n_tags = 1}, &a,
                            &page, &err));
  assert_int_equal(page.n, 2);
  assert_int_equal(page.items[0].version, 4);
  assert_int_equal(page.items[1].version, 2);
  OK(tw_meta_version_search(
      m, &(tw_meta_query){.status = "PENDING_REGISTRATION"}, &a, &page, &err));
  assert_int_equal(page.n, 1);
  assert_int_equal(page.items[0].version, 4);
  FAILS(TW_EINVAL, tw_meta_version_search(m, &(tw_meta_query){.status = "x"},
                                          &a, &page, &err));
  OK(tw_meta_version_search(m, &(tw_meta_query){.alias = "production"}, &a,
                            &page, &err));
  assert_int_equal(page.n, 1);
  assert_int_equal(page.items[0].version, 2);
  OK(tw_meta_version_search(m, &(tw_meta_query){.has_alias = true}, &a, &page,
                            &err));
  assert_int_equal(page.n, 1);
  OK(tw_meta_version_search(
      m, &(tw_meta_query){.created_after_ms = 101, .created_before_ms = 103},
      &a, &page, &err));
  assert_int_equal(page.n, 2);
  assert_int_equal(page.items[0].version, 3);
  assert_int_equal(page.items[1].version, 2);

  /* Descriptor fields: strings, integers, booleans, nested keys. */
  static const struct {
    const char *key, *value;
    size_t n;
  } cases[] = {
      {"name", "oscillator", 4},
      {"name", "cartpole", 1},
      {"abi", "1", 4},
      {"abi", "2", 1},
      {"differentiable", "true", 4},
      {"differentiable", "false", 1},
      {"meta.family", "pendulum", 1},
      {"missing", "x", 0},
      {"name", "Oscillator", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tw_meta_tag d[] = {{cases[i].key, cases[i].value}};
    OK(tw_meta_version_search(
        m, &(tw_meta_query){.descriptor = d, .n_descriptor = 1}, &a, &page,
        &err));
    if (page.n != cases[i].n)
      fail_msg("descriptor %s=%s: %zu results, want %zu", cases[i].key,
               cases[i].value, page.n, cases[i].n);
  }
  tw_meta_tag both[] = {{"name", "oscillator"}, {"abi", "1"}};
  OK(tw_meta_version_search(
      m,
      &(tw_meta_query){
          .descriptor = both, .n_descriptor = 2, .tags = odd, .n_tags = 1},
      &a, &page, &err));
  assert_int_equal(page.n, 2);
  static const char *const bad_paths[] = {"",    ".a",  "a.",  "a..b",
                                          "a-b", "$.a", "a[0]"};
  for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
    tw_meta_tag d[] = {{bad_paths[i], "x"}};
    FAILS(TW_EINVAL,
          tw_meta_version_search(
              m, &(tw_meta_query){.descriptor = d, .n_descriptor = 1}, &a,
              &page, &err));
  }

  /* Pages of two over (model, version desc), and a token stays valid
   * while rows come and go. */
  tw_meta_query q = {.page_size = 2};
  OK(tw_meta_version_search(m, &q, &a, &page, &err));
  assert_int_equal(page.n, 2);
  assert_string_equal(page.items[0].model, "cart");
  assert_int_equal(page.items[1].version, 4);
  assert_non_null(page.next_page_token);
  q.page_token = page.next_page_token;
  OK(tw_meta_version_delete(m, "osc", 3, &err));
  OK(tw_meta_version_search(m, &q, &a, &page, &err));
  assert_int_equal(page.n, 2);
  assert_int_equal(page.items[0].version, 2);
  assert_int_equal(page.items[1].version, 1);
  assert_null(page.next_page_token);
  q.page_token = "bTE6b3Nj"; /* a model token for a version search */
  FAILS(TW_EINVAL, tw_meta_version_search(m, &q, &a, &page, &err));
  tw_arena_fini(&a);
  tw_meta_close(m);
}

/* --- Concurrency ------------------------------------------------------------
 */

#define WRITERS 3
#define PER_WRITER 15

typedef struct writer {
  int64_t got[PER_WRITER];
  int failures;
  char msg[TW_ERR_MSG_MAX];
} writer;

static void *write_versions(void *arg) {
  writer *w = arg;
  tw_meta *m = NULL;
  tw_err err;
  tw_err_init(&err);
  if (tw_meta_open(url, &m, &err) != TW_OK) {
    w->failures++;
    snprintf(w->msg, sizeof w->msg, "%s", tw_err_msg(&err));
    return NULL;
  }
  for (int i = 0; i < PER_WRITER; i++) {
    tw_meta_version spec = {.model = "busy", .artifact = {.size = -1}};
    tw_err_init(&err);
    if (tw_meta_version_create(m, &spec, &w->got[i], &err) != TW_OK) {
      w->failures++;
      snprintf(w->msg, sizeof w->msg, "%s", tw_err_msg(&err));
    }
    /* Moving one alias back and forth races the other writers too. */
    tw_err_init(&err);
    if (tw_meta_alias_set(m, "busy", "production", w->got[i], &err) != TW_OK) {
      w->failures++;
      snprintf(w->msg, sizeof w->msg, "%s", tw_err_msg(&err));
    }
  }
  tw_meta_close(m);
  return NULL;
}

static void test_concurrent_versions(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m = open_store();
  make_model(m, "busy");
  pthread_t th[WRITERS];
  static writer w[WRITERS];
  memset(w, 0, sizeof w);
  for (int i = 0; i < WRITERS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, write_versions, &w[i]), 0);
  for (int i = 0; i < WRITERS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  bool seen[WRITERS * PER_WRITER + 1] = {false};
  for (int i = 0; i < WRITERS; i++) {
    if (w[i].failures != 0)
      fail_msg("writer %d: %d failures, last: %s", i, w[i].failures, w[i].msg);
    for (int k = 0; k < PER_WRITER; k++) {
      int64_t v = w[i].got[k];
      assert_true(v >= 1 && v <= WRITERS * PER_WRITER);
      assert_false(seen[v]);
      seen[v] = true;
      /* Each writer's own versions come in increasing order. */
      assert_true(k == 0 || v > w[i].got[k - 1]);
    }
  }
  int64_t n = 0;
  OK(tw__meta_query_int(m, "SELECT count(*) FROM versions", NULL, &n, NULL,
                        &err));
  assert_int_equal(n, WRITERS * PER_WRITER);
  int64_t prod = 0;
  OK(tw_meta_alias_get(m, "busy", "production", &prod, &err));
  assert_true(prod >= 1 && prod <= WRITERS * PER_WRITER);
  tw_meta_close(m);
}

/* Servers starting together on an empty database: one migrates, the
 * others wait and find the schema done (SQLite's write lock, PostgreSQL's
 * advisory lock). */
static void *open_close(void *arg) {
  int *rc = arg;
  tw_meta *m = NULL;
  tw_err err;
  tw_err_init(&err);
  *rc = tw_meta_open(url, &m, &err);
  if (*rc != TW_OK)
    fprintf(stderr, "open: %s\n", tw_err_msg(&err));
  tw_meta_close(m);
  return NULL;
}

static void test_concurrent_open(void **state) {
  (void)state;
  tw_err err;
  if (on_postgres()) {
    tw_meta *m = open_store();
    OK(tw__meta_exec_sql(m,
                         "DROP TABLE aliases, version_parents, version_runs, "
                         "version_tags, versions, model_tags, models, "
                         "sr_config, sr_versions, sr_schemas, "
                         "schema_migrations",
                         &err));
    tw_meta_close(m);
  }
  pthread_t th[WRITERS];
  int rc[WRITERS];
  for (int i = 0; i < WRITERS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, open_close, &rc[i]), 0);
  for (int i = 0; i < WRITERS; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(rc[i], TW_OK);
  }
  tw_meta *m = open_store();
  int v = 0;
  OK(tw_meta_schema_version(m, &v, &err));
  assert_int_equal(v, TW_META_SCHEMA_VERSION);
  int64_t n = 0;
  OK(tw__meta_query_int(m, "SELECT count(*) FROM schema_migrations", NULL, &n,
                        NULL, &err));
  assert_int_equal(n, TW_META_SCHEMA_VERSION);
  tw_meta_close(m);
}

/* Two handles in one thread: a version created through one is seen by the
 * other at once (each call is its own committed transaction). */
static void test_two_handles(void **state) {
  (void)state;
  tw_err err;
  tw_meta *m1 = open_store();
  tw_meta *m2 = open_store();
  make_model(m1, "shared");
  assert_int_equal(make_version(m2, "shared"), 1);
  assert_int_equal(make_version(m1, "shared"), 2);
  int64_t v = 0;
  OK(tw_meta_alias_set(m1, "shared", "production", 2, &err));
  OK(tw_meta_alias_get(m2, "shared", "production", &v, &err));
  assert_int_equal(v, 2);
  tw_meta_close(m1);
  tw_meta_close(m2);
}

/* --- Allocation failures (SQLite) ---------------------------------------- */

static int alloc_round(void) {
  tw_err err;
  tw_err_init(&err);
  char path[300];
  snprintf(path, sizeof path, "%s/meta.db", tmpdir);
  unlink(path);
  tw_meta *m = NULL;
  int rc = tw_meta_open(url, &m, &err);
  if (rc != TW_OK)
    return rc;
  tw_arena a;
  tw_arena_init(&a, 0);
  tw_meta_tag tags[] = {{"k", "v"}};
  tw_meta_model spec = {.name = "m", .tags = tags, .n_tags = 1};
  const char *runs[] = {"r"};
  tw_meta_parent parents[] = {{"m", 1}};
  tw_meta_version vs = {.model = "m",
                        .artifact = {.size = 1, .descriptor = descriptor},
                        .tags = tags,
                        .n_tags = 1,
                        .run_ids = runs,
                        .n_run_ids = 1};
  tw_meta_version got;
  tw_meta_model mg;
  tw_meta_version_page vp;
  tw_meta_model_page mp;
  tw_meta_tag d[] = {{"name", "oscillator"}};
  rc = tw_meta_model_create(m, &spec, &err);
  if (rc == TW_OK)
    rc = tw_meta_version_create(m, &vs, NULL, &err);
  vs.parents = parents;
  vs.n_parents = 1;
  if (rc == TW_OK)
    rc = tw_meta_version_create(m, &vs, NULL, &err);
  if (rc == TW_OK)
    rc = tw_meta_alias_set(m, "m", "production", 2, &err);
  if (rc == TW_OK)
    rc = tw_meta_version_resolve(m, "m@production", &a, &got, &err);
  if (rc == TW_OK)
    rc = tw_meta_model_get(m, "m", &a, &mg, &err);
  if (rc == TW_OK)
    rc = tw_meta_version_search(
        m, &(tw_meta_query){.descriptor = d, .n_descriptor = 1, .page_size = 1},
        &a, &vp, &err);
  if (rc == TW_OK && (vp.n != 1 || vp.next_page_token == NULL))
    rc = TW_EINTERNAL;
  if (rc == TW_OK)
    rc = tw_meta_model_search(m, &(tw_meta_query){.name_prefix = "m"}, &a, &mp,
                              &err);
  if (rc == TW_OK)
    rc = tw_meta_model_delete(m, "m", &err);
  tw_arena_fini(&a);
  tw_meta_close(m);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  if (on_postgres())
    skip();
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_open_migrates),
      T(test_open_refuses_newer_schema),
      T(test_open_bad_urls),
      T(test_url_helpers),
      T(test_page_token_codec),
      T(test_names),
      T(test_model_crud),
      T(test_version_roundtrip),
      T(test_version_bad_input),
      T(test_version_numbers_never_reused),
      T(test_lineage),
      T(test_aliases),
      T(test_model_delete_cascades),
      T(test_model_search),
      T(test_version_search),
      T(test_concurrent_versions),
      T(test_concurrent_open),
      T(test_two_handles),
      T(test_alloc_failures),
  };
  const char *env = getenv("TW_META_TEST_URL");
  const char *group = env && env[0] ? "meta (postgres)" : "meta (sqlite)";
  return _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0],
                                 NULL, NULL);
}
