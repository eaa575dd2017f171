/*
 * test_manifest.c - image manifests and indexes: what is accepted and
 * what it exposes, and MANIFEST_INVALID for malformed JSON, wrong types,
 * bad descriptors, a mediaType that contradicts the Content-Type, unknown
 * types and oversized documents; allocation failures.
 */
#include "tw_test.h"
#include <string.h>

#define D1                                                                     \
  "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2                                                                     \
  "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3                                                                     \
  "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static const char image[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST "\","
    "\"config\":{\"mediaType\":\"application/x.cfg\",\"digest\":\"" D1
    "\",\"size\":3},"
    "\"layers\":[{\"mediaType\":\"application/x.l\",\"digest\":\"" D2
    "\",\"size\":7}],"
    "\"subject\":{\"mediaType\":\"" TW_REG_MT_MANIFEST "\",\"digest\":\"" D3
    "\",\"size\":9},"
    "\"annotations\":{\"k\":\"v\"}}";

static int parse(const char *text, const char *ct, tw_reg_manifest **m,
                 tw_reg_err *e) {
  tw_reg_err_init(e);
  return tw_reg_manifest_parse(text, strlen(text), ct, m, e);
}

static void image_manifest(void **state) {
  (void)state;
  tw_reg_manifest *m = NULL;
  tw_reg_err e;
  assert_int_equal(parse(image, TW_REG_MT_MANIFEST "; charset=utf-8", &m, &e),
                   TW_OK);
  assert_false(m->is_index);
  assert_string_equal(m->media_type, TW_REG_MT_MANIFEST);
  assert_string_equal(m->config.digest, D1);
  assert_int_equal(m->config.size, 3);
  assert_int_equal(m->nrefs, 1);
  assert_string_equal(m->refs[0].digest, D2);
  assert_true(m->has_subject);
  assert_string_equal(m->subject.digest, D3);
  /* No artifactType: the config's media type stands for it. */
  assert_string_equal(m->artifact_type, "application/x.cfg");
  assert_string_equal(m->annotations, "{\"k\":\"v\"}");
  tw_reg_manifest_free(m);
  /* Without mediaType in the document the Content-Type decides. */
  static const char index[] =
      "{\"schemaVersion\":2,\"artifactType\":\"application/x.a\","
      "\"manifests\":[{\"mediaType\":\"" TW_REG_MT_MANIFEST
      "\",\"digest\":\"" D1 "\",\"size\":1}]}";
  assert_int_equal(parse(index, TW_REG_MT_INDEX, &m, &e), TW_OK);
  assert_true(m->is_index);
  assert_string_equal(m->artifact_type, "application/x.a");
  assert_false(m->has_subject);
  assert_null(m->annotations);
  tw_reg_manifest_free(m);
  tw_reg_manifest_free(NULL);
}

static void invalid(void **state) {
  (void)state;
  static const struct {
    const char *text, *ct, *msg;
  } bad[] = {
      {"{", NULL, "manifest:1:"},
      {"[]", NULL, "not a JSON object"},
      {"{\"schemaVersion\":1,\"mediaType\":\"" TW_REG_MT_MANIFEST "\"}", NULL,
       "schemaVersion must be 2"},
      {"{\"schemaVersion\":2,\"config\":{},\"layers\":[]}", NULL,
       "no mediaType"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{},\"layers\":[]}",
       TW_REG_MT_INDEX, "does not match the Content-Type"},
      {"{\"schemaVersion\":2,\"mediaType\":\"text/plain\"}", NULL,
       "unsupported media type"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{\"mediaType\":\"a\",\"digest\":\"" D1 "\",\"size\":1}}",
       NULL, "layers array"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_INDEX "\"}", NULL,
       "manifests array"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{\"mediaType\":\"a\",\"digest\":\"sha256:12\","
       "\"size\":1},\"layers\":[]}",
       NULL, "config: digest"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{\"mediaType\":\"a\",\"digest\":\"" D1
       "\",\"size\":-1},\"layers\":[]}",
       NULL, "size must be a non-negative integer"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{\"mediaType\":\"a\",\"digest\":\"" D1
       "\",\"size\":1},\"layers\":[7]}",
       NULL, "layers[0] is not an object"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{\"mediaType\":\"a\",\"digest\":\"" D1
       "\",\"size\":1},\"layers\":[],\"annotations\":{\"a\":1}}",
       NULL, "annotation 'a' is not a string"},
      {"{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
       "\",\"config\":{\"mediaType\":\"a\",\"digest\":\"" D1
       "\",\"size\":1},\"layers\":[],\"subject\":\"x\"}",
       NULL, "subject is not an object"},
      {"{\"schemaVersion\":2,\"schemaVersion\":2}", NULL, "duplicate"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_reg_manifest *m = NULL;
    tw_reg_err e;
    int rc = parse(bad[i].text, bad[i].ct, &m, &e);
    if (rc == TW_OK || strstr(e.err.msg, bad[i].msg) == NULL)
      print_error("%zu: %s\n", i, rc == TW_OK ? "accepted" : e.err.msg);
    assert_int_not_equal(rc, TW_OK);
    assert_null(m);
    assert_int_equal(e.code, TW_REG_MANIFEST_INVALID);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.err.msg, bad[i].msg));
  }
}

static void oversized(void **state) {
  (void)state;
  size_t n = TW_REG_MANIFEST_MAX + 1;
  char *big = malloc(n);
  assert_non_null(big);
  memset(big, ' ', n);
  tw_reg_manifest *m = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_parse(big, n, NULL, &m, &e), TW_ELIMIT);
  assert_int_equal(e.code, TW_REG_MANIFEST_INVALID);
  assert_int_equal(e.status, 413);
  free(big);
}

static int parse_free(void) {
  tw_reg_manifest *m = NULL;
  tw_reg_err e;
  int rc = parse(image, NULL, &m, &e);
  if (rc == TW_OK) {
    assert_int_equal(e.code, TW_REG_NONE);
  } else {
    assert_int_equal(e.code, TW_REG_UNKNOWN);
  }
  tw_reg_manifest_free(m);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(parse_free());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(image_manifest),
      TW_TEST(invalid),
      TW_TEST(oversized),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
