/*
 * test_repo.c - repositories: blobs linked, mounted and deleted; manifests
 * put and got by tag and digest, refused when they name missing blobs,
 * are malformed or oversized (nothing stored); deletes; tag listing with
 * the spec's pagination cases; the referrers API with artifactType
 * filtering and OCI-Subject; manifests put, got, headed and deleted by a
 * sha512 digest; bad names refused before any file is made.
 */
#include "reg_test.h"
#include "tw_test.h"

static tw_reg *open_reg(void) {
  tw_reg *r = NULL;
  assert_int_equal(tw_reg_open(rt_dir, &r, NULL), TW_OK);
  return r;
}

static void blobs(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char d[72];
  rt_blob(r, "src/repo", "layer bytes", d);
  tw_reg_err e;
  tw_reg_err_init(&e);
  int64_t size = 0;
  tw_buf path = TW_BUF_INIT;
  assert_int_equal(tw_reg_blob_stat(r, "src/repo", d, &size, &path, &e), TW_OK);
  assert_int_equal(size, 11);
  assert_non_null(strstr(path.data, "/blobs/sha256/"));
  /* Other repositories do not see it until it is mounted. */
  assert_int_equal(tw_reg_blob_stat(r, "dst", d, NULL, NULL, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UNKNOWN);
  assert_int_equal(e.status, 404);
  tw_reg_err_init(&e);
  char missing[72];
  rt_digest("nothing", 7, missing);
  assert_int_equal(tw_reg_blob_mount(r, "dst", "src/repo", missing, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_mount(r, "dst", "src/repo", d, &e), TW_OK);
  assert_int_equal(tw_reg_blob_stat(r, "dst", d, NULL, NULL, &e), TW_OK);
  /* A digest mismatch on put. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_put(r, "dst", "x", 1, missing, NULL, &e),
                   TW_EDIGEST);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  /* Delete unlinks from one repository only. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_delete(r, "dst", d, &e), TW_OK);
  assert_int_equal(tw_reg_blob_stat(r, "dst", d, NULL, NULL, &e), TW_ENOENT);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_delete(r, "dst", d, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_BLOB_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_stat(r, "src/repo", d, NULL, NULL, &e), TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_blob_stat(r, "src/repo", "sha256:1", NULL, NULL, &e),
                   TW_EINVAL);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  tw_buf_fini(&path);
  tw_reg_close(r);
}

/* Every bad name of the issue, through every entry point: NAME_INVALID
 * and no file or directory made anywhere. */
static void bad_names(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char d[72];
  rt_blob(r, "ok", "bytes", d);
  static const char *const bad[] = {"..",
                                    "../x",
                                    "a/../../x",
                                    "../../tw-reg-escape",
                                    "a/../../../tw-reg-escape",
                                    "A",
                                    "Upper/x",
                                    "%2e%2e",
                                    "a/%2e%2e",
                                    "a//b",
                                    "/abs",
                                    "a/",
                                    ".hidden",
                                    ""};
  int repos_before = rt_count(rt_at("repos"), "");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_reg_err e;
    tw_buf b = TW_BUF_INIT;
    tw_reg_upload *u = NULL;
    int rc[6];
    tw_reg_err_init(&e);
    rc[0] = tw_reg_blob_put(r, bad[i], "x", 1, NULL, NULL, &e);
    assert_int_equal(e.code, TW_REG_NAME_INVALID);
    tw_reg_err_init(&e);
    rc[1] = tw_reg_blob_mount(r, bad[i], "ok", d, &e);
    assert_int_equal(e.code, TW_REG_NAME_INVALID);
    tw_reg_err_init(&e);
    rc[2] = tw_reg_upload_new(r, bad[i], &u, &e);
    assert_int_equal(e.code, TW_REG_NAME_INVALID);
    tw_reg_err_init(&e);
    rc[3] = tw_reg_manifest_put(r, bad[i], "v1", TW_REG_MT_MANIFEST, "{}", 2,
                                NULL, &e);
    assert_int_equal(e.code, TW_REG_NAME_INVALID);
    tw_reg_err_init(&e);
    rc[4] = tw_reg_tags_list(r, bad[i], -1, NULL, &b, NULL, &e);
    assert_int_equal(e.code, TW_REG_NAME_INVALID);
    tw_reg_err_init(&e);
    rc[5] = tw_reg_blob_mount(r, "ok2", bad[i], d, &e);
    assert_int_equal(e.code, TW_REG_NAME_INVALID);
    for (size_t k = 0; k < 6; k++)
      assert_int_equal(rc[k], TW_EINVAL);
    assert_false(tw_reg_repo_exists(r, bad[i]));
    tw_buf_fini(&b);
  }
  assert_int_equal(rt_count(rt_at("repos"), ""), repos_before);
  assert_int_equal(rt_count(rt_at("uploads"), ""), 0);
  assert_false(rt_exists(rt_at("x")));
  char up[128];
  (void)snprintf(up, sizeof up, "%s/../tw-reg-escape", rt_dir);
  assert_false(rt_exists(up));
  tw_reg_close(r);
}

static void manifests(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char cfg[72], layer[72];
  rt_blob(r, "app", "{}", cfg);
  rt_blob(r, "app", "layer", layer);
  tw_buf m = TW_BUF_INIT;
  rt_manifest(&m, cfg, layer, NULL, NULL);
  char md[72];
  rt_digest(m.data, m.len, md);
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_reg_put_result res;
  assert_int_equal(tw_reg_manifest_put(r, "app", "v1", TW_REG_MT_MANIFEST,
                                       m.data, m.len, &res, &e),
                   TW_OK);
  assert_string_equal(res.digest, md);
  assert_string_equal(res.subject, "");
  /* By tag and by digest; HEAD without a body. */
  tw_buf body = TW_BUF_INIT, mt = TW_BUF_INIT;
  char got[TW_STORE_DIGEST_MAX + 1];
  assert_int_equal(tw_reg_manifest_get(r, "app", "v1", &body, &mt, got, &e),
                   TW_OK);
  assert_int_equal(body.len, m.len);
  assert_memory_equal(body.data, m.data, m.len);
  assert_string_equal(mt.data, TW_REG_MT_MANIFEST);
  assert_string_equal(got, md);
  tw_buf_reset(&body);
  assert_int_equal(tw_reg_manifest_get(r, "app", md, &body, NULL, NULL, &e),
                   TW_OK);
  assert_int_equal(body.len, m.len);
  assert_int_equal(tw_reg_manifest_get(r, "app", md, NULL, NULL, NULL, &e),
                   TW_OK);
  /* Unknown tag, digest, repository. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_get(r, "app", "v2", &body, NULL, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_get(r, "app", layer, &body, NULL, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_get(r, "nope", "v1", &body, NULL, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_NAME_UNKNOWN);
  /* Put by digest: it must be the content's. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "app", md, TW_REG_MT_MANIFEST, m.data,
                                       m.len, &res, &e),
                   TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "app", layer, TW_REG_MT_MANIFEST,
                                       m.data, m.len, &res, &e),
                   TW_EDIGEST);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  /* Content-Type that contradicts mediaType. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "app", "v3", TW_REG_MT_INDEX, m.data,
                                       m.len, &res, &e),
                   TW_EINVAL);
  assert_int_equal(e.code, TW_REG_MANIFEST_INVALID);
  assert_false(rt_exists(rt_at("repos/app/_tags/v3")));
  /* An index of the manifest. */
  tw_buf idx = TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&idx,
                                 "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                                 "\"manifests\":[{\"mediaType\":\"%s\","
                                 "\"digest\":\"%s\",\"size\":%zu}]}",
                                 TW_REG_MT_INDEX, TW_REG_MT_MANIFEST, md,
                                 m.len),
                   TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "app", "multi", TW_REG_MT_INDEX,
                                       idx.data, idx.len, &res, &e),
                   TW_OK);
  /* The same index in a repository without the manifest. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "other", "multi", TW_REG_MT_INDEX,
                                       idx.data, idx.len, &res, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_BLOB_UNKNOWN);
  /* A non-distributable layer is never pushed; a distributable one that
   * was not pushed is still refused. */
  char foreign[72];
  rt_digest("elsewhere", 9, foreign);
  const char *const layer_types[] = {
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+gzip"};
  for (int i = 0; i < 2; i++) {
    tw_buf_reset(&idx);
    assert_int_equal(
        tw_buf_printf(&idx,
                      "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                      "\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\","
                      "\"size\":2},\"layers\":[{\"mediaType\":\"%s\","
                      "\"digest\":\"%s\",\"size\":9}]}",
                      TW_REG_MT_MANIFEST,
                      "application/vnd.oci.image.config.v1+json", cfg,
                      layer_types[i], foreign),
        TW_OK);
    tw_reg_err_init(&e);
    assert_int_equal(tw_reg_manifest_put(r, "app", "foreign",
                                         TW_REG_MT_MANIFEST, idx.data, idx.len,
                                         &res, &e),
                     i == 0 ? TW_OK : TW_ENOENT);
  }
  assert_int_equal(e.code, TW_REG_MANIFEST_BLOB_UNKNOWN);
  tw_buf_fini(&idx);
  tw_buf_fini(&m);
  tw_buf_fini(&body);
  tw_buf_fini(&mt);
  tw_reg_close(r);
}

/* Nothing is stored when a manifest is refused. */
static void refused_manifests(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char cfg[72], layer[72], missing[72];
  rt_blob(r, "ref", "{}", cfg);
  rt_blob(r, "ref", "layer", layer);
  rt_digest("not pushed", 10, missing);
  int blobs_before = rt_count(rt_at("blobs/sha256"), "");
  tw_buf m = TW_BUF_INIT;
  tw_reg_err e;
  /* A layer that was never pushed, then a config. */
  rt_manifest(&m, cfg, missing, NULL, NULL);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "ref", "t", TW_REG_MT_MANIFEST,
                                       m.data, m.len, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_BLOB_UNKNOWN);
  assert_non_null(strstr(e.err.msg, missing));
  tw_buf_reset(&m);
  rt_manifest(&m, missing, layer, NULL, NULL);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "ref", "t", TW_REG_MT_MANIFEST,
                                       m.data, m.len, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_BLOB_UNKNOWN);
  /* Malformed JSON. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "ref", "t", TW_REG_MT_MANIFEST,
                                       "{\"schemaVersion\":", 17, NULL, &e),
                   TW_EPARSE);
  assert_int_equal(e.code, TW_REG_MANIFEST_INVALID);
  /* Oversized. */
  size_t n = TW_REG_MANIFEST_MAX + 10;
  char *big = malloc(n);
  assert_non_null(big);
  memset(big, ' ', n);
  tw_reg_err_init(&e);
  assert_int_equal(
      tw_reg_manifest_put(r, "ref", "t", TW_REG_MT_MANIFEST, big, n, NULL, &e),
      TW_ELIMIT);
  assert_int_equal(e.status, 413);
  free(big);
  /* A bad tag. */
  tw_buf_reset(&m);
  rt_manifest(&m, cfg, layer, NULL, NULL);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "ref", "../../t", TW_REG_MT_MANIFEST,
                                       m.data, m.len, NULL, &e),
                   TW_EINVAL);
  assert_int_equal(e.code, TW_REG_MANIFEST_INVALID);
  assert_int_equal(rt_count(rt_at("blobs/sha256"), ""), blobs_before);
  assert_false(rt_exists(rt_at("repos/ref/_manifests")));
  assert_false(rt_exists(rt_at("repos/ref/_tags")));
  tw_buf_fini(&m);
  tw_reg_close(r);
}

/* Pushes a distinct manifest tagged tag into repo; its digest to d. */
static void push_tag(tw_reg *r, const char *repo, const char *tag,
                     const char *artifact_type, const char *subject,
                     char d[72]) {
  char cfg[72], layer[72];
  rt_blob(r, repo, "{}", cfg);
  char text[64];
  (void)snprintf(text, sizeof text, "layer of %s/%s", tag ? tag : "-",
                 artifact_type ? artifact_type : "-");
  rt_blob(r, repo, text, layer);
  tw_buf m = TW_BUF_INIT;
  rt_manifest(&m, cfg, layer, artifact_type, subject);
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_reg_put_result res;
  rt_digest(m.data, m.len, d);
  int rc = tw_reg_manifest_put(r, repo, tag ? tag : d, TW_REG_MT_MANIFEST,
                               m.data, m.len, &res, &e);
  if (rc != TW_OK)
    print_error("%s\n", e.err.msg);
  assert_int_equal(rc, TW_OK);
  assert_string_equal(res.subject, subject ? subject : "");
  tw_buf_fini(&m);
}

static void list(tw_reg *r, long n, const char *last, const char *want,
                 bool want_more) {
  tw_buf b = TW_BUF_INIT;
  tw_reg_err e;
  tw_reg_err_init(&e);
  bool more = !want_more;
  assert_int_equal(tw_reg_tags_list(r, "tags", n, last, &b, &more, &e), TW_OK);
  if (strcmp(b.data, want) != 0)
    print_error("n=%ld last=%s: %s\n", n, last ? last : "-", b.data);
  assert_string_equal(b.data, want);
  assert_int_equal(more, want_more);
  tw_buf_fini(&b);
}

static void tags(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char d[72], d2[72];
  /* Byte order: upper case sorts before lower case, digits first. */
  static const char *const t[] = {"b", "a", "C", "10", "9", "a.1", "_z"};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    push_tag(r, "tags", t[i], NULL, NULL, d);
#define ALL "\"10\",\"9\",\"C\",\"_z\",\"a\",\"a.1\",\"b\""
  list(r, -1, NULL, "{\"name\":\"tags\",\"tags\":[" ALL "]}", false);
  list(r, 0, NULL, "{\"name\":\"tags\",\"tags\":[]}", true);
  list(r, 2, NULL, "{\"name\":\"tags\",\"tags\":[\"10\",\"9\"]}", true);
  list(r, 2, "9", "{\"name\":\"tags\",\"tags\":[\"C\",\"_z\"]}", true);
  list(r, 100, "a", "{\"name\":\"tags\",\"tags\":[\"a.1\",\"b\"]}", false);
  list(r, 3, "a.1", "{\"name\":\"tags\",\"tags\":[\"b\"]}", false);
  list(r, -1, "b", "{\"name\":\"tags\",\"tags\":[]}", false);
  list(r, 5, "zzz", "{\"name\":\"tags\",\"tags\":[]}", false);
  /* last between two tags. */
  list(r, -1, "a.0", "{\"name\":\"tags\",\"tags\":[\"a.1\",\"b\"]}", false);
  list(r, 1, "", "{\"name\":\"tags\",\"tags\":[\"10\"]}", true);
  /* Retagging moves the tag. */
  push_tag(r, "tags", "b", "application/x.other", NULL, d2);
  tw_reg_err e;
  tw_reg_err_init(&e);
  char got[TW_STORE_DIGEST_MAX + 1];
  assert_int_equal(tw_reg_manifest_get(r, "tags", "b", NULL, NULL, got, &e),
                   TW_OK);
  assert_string_equal(got, d2);
  /* Delete a tag; delete a manifest: its tags go with it. */
  assert_int_equal(tw_reg_manifest_delete(r, "tags", "C", &e), TW_OK);
  assert_int_equal(tw_reg_manifest_delete(r, "tags", "C", &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_delete(r, "tags", d2, &e), TW_OK);
  assert_int_equal(tw_reg_manifest_get(r, "tags", d2, NULL, NULL, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  list(r, -1, NULL,
       "{\"name\":\"tags\",\"tags\":[\"10\",\"9\",\"_z\",\"a\",\"a.1\"]}",
       false);
  tw_reg_err_init(&e);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_reg_tags_list(r, "none", -1, NULL, &b, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_NAME_UNKNOWN);
  assert_int_equal(b.len, 0);
  tw_buf_fini(&b);
  tw_reg_close(r);
}

static void referrers(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char subject[72], sig[72], sbom[72], sbom2[72], unrelated[72];
  push_tag(r, "refs", "v1", NULL, NULL, subject);
  push_tag(r, "refs", NULL, "application/x.sig", subject, sig);
  push_tag(r, "refs", NULL, "application/x.sbom", subject, sbom);
  push_tag(r, "refs", "sbom2", "application/x.sbom", subject, sbom2);
  push_tag(r, "refs", NULL, "application/x.sig", NULL, unrelated);
  tw_buf b = TW_BUF_INIT;
  tw_reg_err e;
  tw_reg_err_init(&e);
  bool filtered = true;
  assert_int_equal(
      tw_reg_referrers(r, "refs", subject, NULL, &b, &filtered, &e), TW_OK);
  assert_false(filtered);
  json_t *v = NULL;
  assert_int_equal(tw_json_parse(b.data, b.len, "referrers", &v, NULL), TW_OK);
  assert_int_equal(json_integer_value(json_object_get(v, "schemaVersion")), 2);
  assert_string_equal(json_string_value(json_object_get(v, "mediaType")),
                      TW_REG_MT_INDEX);
  json_t *ms = json_object_get(v, "manifests");
  assert_int_equal(json_array_size(ms), 3);
  size_t nsbom = 0;
  for (size_t i = 0; i < 3; i++) {
    json_t *d = json_array_get(ms, i);
    const char *dg = json_string_value(json_object_get(d, "digest"));
    assert_true(strcmp(dg, sig) == 0 || strcmp(dg, sbom) == 0 ||
                strcmp(dg, sbom2) == 0);
    assert_string_equal(json_string_value(json_object_get(d, "mediaType")),
                        TW_REG_MT_MANIFEST);
    assert_true(json_integer_value(json_object_get(d, "size")) > 0);
    nsbom += strcmp(json_string_value(json_object_get(d, "artifactType")),
                    "application/x.sbom") == 0;
    if (i > 0) /* sorted by digest */
      assert_true(strcmp(json_string_value(json_object_get(
                             json_array_get(ms, i - 1), "digest")),
                         dg) < 0);
  }
  assert_int_equal(nsbom, 2);
  json_decref(v);
  /* Filtered. */
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "refs", subject, "application/x.sbom",
                                    &b, &filtered, &e),
                   TW_OK);
  assert_true(filtered);
  assert_int_equal(tw_json_parse(b.data, b.len, "referrers", &v, NULL), TW_OK);
  ms = json_object_get(v, "manifests");
  assert_int_equal(json_array_size(ms), 2);
  for (size_t i = 0; i < 2; i++)
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, i),
                                                          "artifactType")),
                        "application/x.sbom");
  json_decref(v);
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "refs", subject, "application/x.none",
                                    &b, &filtered, &e),
                   TW_OK);
  assert_non_null(strstr(b.data, "\"manifests\":[]"));
  /* A deleted referrer is gone from the list. */
  assert_int_equal(tw_reg_manifest_delete(r, "refs", sig, &e), TW_OK);
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "refs", subject, NULL, &b, NULL, &e),
                   TW_OK);
  assert_null(strstr(b.data, sig));
  assert_non_null(strstr(b.data, sbom));
  /* Unknown subject, unknown repository: empty; a bad digest: refused. */
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "refs", unrelated, NULL, &b, NULL, &e),
                   TW_OK);
  assert_non_null(strstr(b.data, "\"manifests\":[]"));
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "nope", subject, NULL, &b, NULL, &e),
                   TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(
      tw_reg_referrers(r, "refs", "sha256:../../x", NULL, &b, NULL, &e),
      TW_EINVAL);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  /* A subject that does not exist is accepted (pushed before it). */
  char ghost[72], early[72];
  rt_digest("ghost", 5, ghost);
  push_tag(r, "refs", NULL, "application/x.sig", ghost, early);
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "refs", ghost, NULL, &b, NULL, &e),
                   TW_OK);
  assert_non_null(strstr(b.data, early));
  tw_buf_fini(&b);
  tw_reg_close(r);
}

/* A manifest put by its sha512 digest: stored as blobs/sha512/<hex>,
 * linked and known by that digest only; got, headed and deleted by it; a
 * mismatch or another algorithm refused with nothing stored; indexes and
 * referrers name it by sha512. */
static void manifests_sha512(void **state) {
  (void)state;
  tw_reg *r = open_reg();
  char cfg[TW_STORE_DIGEST_MAX + 1], layer[TW_STORE_DIGEST_MAX + 1];
  rt_blob512(r, "s512", "{}", cfg);
  rt_blob512(r, "s512", "sha512 layer", layer);
  tw_buf m = TW_BUF_INIT;
  rt_manifest(&m, cfg, layer, NULL, NULL);
  char md[TW_STORE_DIGEST_MAX + 1], md256[72];
  rt_digest512(m.data, m.len, md);
  rt_digest(m.data, m.len, md256);
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_reg_put_result res;
  assert_int_equal(tw_reg_manifest_put(r, "s512", md, TW_REG_MT_MANIFEST,
                                       m.data, m.len, &res, &e),
                   TW_OK);
  assert_string_equal(res.digest, md);
  assert_string_equal(res.subject, "");
  char p[512];
  (void)snprintf(p, sizeof p, "%s/blobs/sha512/%s", rt_dir, md + 7);
  assert_true(rt_exists(p));
  (void)snprintf(p, sizeof p, "%s/repos/s512/_manifests/%s", rt_dir, md + 7);
  assert_true(rt_exists(p));
  (void)snprintf(p, sizeof p, "%s/blobs/sha256/%s", rt_dir, md256 + 7);
  assert_false(rt_exists(p));
  /* GET and HEAD by it: the digest echoed is the sha512 one. */
  tw_buf body = TW_BUF_INIT, mt = TW_BUF_INIT;
  char got[TW_STORE_DIGEST_MAX + 1];
  assert_int_equal(tw_reg_manifest_get(r, "s512", md, &body, &mt, got, &e),
                   TW_OK);
  assert_int_equal(body.len, m.len);
  assert_memory_equal(body.data, m.data, m.len);
  assert_string_equal(mt.data, TW_REG_MT_MANIFEST);
  assert_string_equal(got, md);
  got[0] = '\0';
  assert_int_equal(tw_reg_manifest_get(r, "s512", md, NULL, NULL, got, &e),
                   TW_OK);
  assert_string_equal(got, md);
  /* Not known by its sha256 digest: the client chose sha512. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_get(r, "s512", md256, NULL, NULL, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);

  /* A mismatch: DIGEST_INVALID, nothing stored, not even the link. */
  char other[TW_STORE_DIGEST_MAX + 1], real[TW_STORE_DIGEST_MAX + 1];
  rt_digest512("other", 5, other);
  tw_buf m2 = TW_BUF_INIT;
  rt_manifest(&m2, cfg, cfg, NULL, NULL);
  rt_digest512(m2.data, m2.len, real);
  int before = rt_count(rt_at("blobs/sha512"), "");
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "s512", other, TW_REG_MT_MANIFEST,
                                       m2.data, m2.len, &res, &e),
                   TW_EDIGEST);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);
  assert_int_equal(e.status, 400);
  assert_int_equal(rt_count(rt_at("blobs/sha512"), ""), before);
  (void)snprintf(p, sizeof p, "%s/repos/s512/_manifests/%s", rt_dir, real + 7);
  assert_false(rt_exists(p));
  (void)snprintf(p, sizeof p, "%s/repos/s512/_manifests/%s", rt_dir, other + 7);
  assert_false(rt_exists(p));
  /* An algorithm the registry does not know. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "s512",
                                       "sha384:"
                                       "0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef0123456789abcdef",
                                       TW_REG_MT_MANIFEST, m2.data, m2.len,
                                       &res, &e),
                   TW_EINVAL);
  assert_int_equal(e.code, TW_REG_DIGEST_INVALID);

  /* A tag still points at the sha256 digest. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "s512", "t", TW_REG_MT_MANIFEST,
                                       m.data, m.len, &res, &e),
                   TW_OK);
  assert_string_equal(res.digest, md256);
  assert_int_equal(tw_reg_manifest_get(r, "s512", "t", NULL, NULL, got, &e),
                   TW_OK);
  assert_string_equal(got, md256);

  /* An index pushed by sha512 naming the manifest by sha512. */
  tw_buf idx = TW_BUF_INIT;
  assert_int_equal(tw_buf_printf(&idx,
                                 "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                                 "\"manifests\":[{\"mediaType\":\"%s\","
                                 "\"digest\":\"%s\",\"size\":%zu}]}",
                                 TW_REG_MT_INDEX, TW_REG_MT_MANIFEST, md,
                                 m.len),
                   TW_OK);
  char im[TW_STORE_DIGEST_MAX + 1];
  rt_digest512(idx.data, idx.len, im);
  assert_int_equal(tw_reg_manifest_put(r, "s512", im, TW_REG_MT_INDEX, idx.data,
                                       idx.len, &res, &e),
                   TW_OK);
  assert_string_equal(res.digest, im);

  /* A referrer pushed by sha512 whose subject is the sha512 manifest. */
  tw_buf sig = TW_BUF_INIT;
  rt_manifest(&sig, cfg, layer, "application/x.sig", md);
  char sd[TW_STORE_DIGEST_MAX + 1];
  rt_digest512(sig.data, sig.len, sd);
  assert_int_equal(tw_reg_manifest_put(r, "s512", sd, TW_REG_MT_MANIFEST,
                                       sig.data, sig.len, &res, &e),
                   TW_OK);
  assert_string_equal(res.subject, md);
  tw_buf b = TW_BUF_INIT;
  assert_int_equal(tw_reg_referrers(r, "s512", md, NULL, &b, NULL, &e), TW_OK);
  assert_non_null(strstr(b.data, sd));

  /* DELETE by the sha512 digest: the manifest, its referrers entry. */
  assert_int_equal(tw_reg_manifest_delete(r, "s512", sd, &e), TW_OK);
  tw_buf_reset(&b);
  assert_int_equal(tw_reg_referrers(r, "s512", md, NULL, &b, NULL, &e), TW_OK);
  assert_non_null(strstr(b.data, "\"manifests\":[]"));
  assert_int_equal(tw_reg_manifest_delete(r, "s512", md, &e), TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_get(r, "s512", md, NULL, NULL, NULL, &e),
                   TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_delete(r, "s512", md, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  /* The tag's sha256 manifest is another link: it stays. */
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_get(r, "s512", "t", NULL, NULL, NULL, &e),
                   TW_OK);
  tw_buf_fini(&b);
  tw_buf_fini(&sig);
  tw_buf_fini(&idx);
  tw_buf_fini(&m2);
  tw_buf_fini(&body);
  tw_buf_fini(&mt);
  tw_buf_fini(&m);
  tw_reg_close(r);
}

static int put_get_round(void) {
  tw_reg *r = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_open(rt_dir, &r, &e.err);
  char cfg[72], layer[72], sub[72];
  rt_digest("{}", 2, cfg);
  rt_digest("alloc layer", 11, layer);
  rt_digest("alloc subject", 13, sub);
  if (rc == TW_OK)
    rc = tw_reg_blob_put(r, "alloc", "{}", 2, cfg, NULL, &e);
  if (rc == TW_OK)
    rc = tw_reg_blob_put(r, "alloc", "alloc layer", 11, layer, NULL, &e);
  tw_buf m = TW_BUF_INIT, body = TW_BUF_INIT;
  if (rc == TW_OK)
    rt_manifest(&m, cfg, layer, "application/x.a", sub);
  if (rc == TW_OK)
    rc = tw_reg_manifest_put(r, "alloc", "t", TW_REG_MT_MANIFEST, m.data, m.len,
                             NULL, &e);
  if (rc == TW_OK)
    rc = tw_reg_manifest_get(r, "alloc", "t", &body, NULL, NULL, &e);
  if (rc == TW_OK)
    rc = tw_reg_tags_list(r, "alloc", -1, NULL, &body, NULL, &e);
  if (rc == TW_OK)
    rc = tw_reg_referrers(r, "alloc", sub, "application/x.a", &body, NULL, &e);
  if (rc != TW_OK && r != NULL)
    assert_true(e.code != TW_REG_NONE);
  tw_buf_fini(&m);
  tw_buf_fini(&body);
  tw_reg_close(r);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(put_get_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(blobs),
      TW_TEST(bad_names),
      TW_TEST(manifests),
      TW_TEST(refused_manifests),
      TW_TEST(tags),
      TW_TEST(referrers),
      TW_TEST(manifests_sha512),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, rt_make_dir, rt_remove_dir);
}
