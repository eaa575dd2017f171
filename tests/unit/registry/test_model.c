/*
 * test_model.c - models as OCI artifacts: built from an example model
 * (validated by the wasm loader), deterministic, pushed and pulled back
 * verified; modules that are not models refused; manifests that are not
 * model artifacts and tampered modules detected; the check of pushed
 * model manifests and the reading of a registration.
 */
#include "reg_test.h"
#include "tw_test.h"

#ifndef TW_MODELS_DIR
#error "TW_MODELS_DIR must name the directory of the built example models"
#endif

static tw_wasm_engine *engine;
static tw_buf wasm;

static int setup(void **state) {
  if (rt_make_dir(state) != 0)
    return -1;
  if (tw_wasm_engine_new(NULL, NULL, &engine, NULL) != TW_OK)
    return -1;
  return tw_file_read_all(TW_MODELS_DIR "/oscillator.wasm", 0, &wasm, NULL);
}

static int teardown(void **state) {
  tw_buf_fini(&wasm);
  tw_wasm_engine_free(engine);
  return rt_remove_dir(state);
}

static void build(void **state) {
  (void)state;
  tw_reg_model m, m2;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_reg_model_build(engine, wasm.data, wasm.len, false, &m, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_int_equal(
      tw_reg_model_build(engine, wasm.data, wasm.len, false, &m2, NULL), TW_OK);
  /* Deterministic: the same module, the same artifact. */
  assert_string_equal(m.manifest_digest, m2.manifest_digest);
  assert_string_equal(m.manifest.data, m2.manifest.data);
  char d[72];
  rt_digest(wasm.data, wasm.len, d);
  assert_string_equal(m.wasm_digest, d);
  rt_digest(m.manifest.data, m.manifest.len, d);
  assert_string_equal(m.manifest_digest, d);
  /* The manifest is what the registry accepts, typed as a model. */
  tw_reg_manifest *pm = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_parse(m.manifest.data, m.manifest.len,
                                         TW_REG_MT_MANIFEST, &pm, &e),
                   TW_OK);
  assert_string_equal(pm->artifact_type, TW_REG_MODEL_ARTIFACT_TYPE);
  assert_string_equal(pm->config.media_type, TW_REG_MODEL_CONFIG_TYPE);
  assert_string_equal(pm->config.digest, m.config_digest);
  assert_int_equal(pm->nrefs, 1);
  assert_string_equal(pm->refs[0].media_type, TW_REG_MODEL_LAYER_TYPE);
  assert_int_equal(pm->refs[0].size, (int64_t)wasm.len);
  assert_non_null(strstr(pm->annotations, "org.opencontainers.image.title"));
  tw_reg_manifest_free(pm);
  /* The config is the descriptor. */
  json_t *v = NULL;
  assert_int_equal(
      tw_json_parse(m.config.data, m.config.len, "config", &v, NULL), TW_OK);
  assert_non_null(json_object_get(v, "name"));
  json_decref(v);
  tw_reg_model_ref ref;
  assert_int_equal(
      tw_reg_model_parse(m.manifest.data, m.manifest.len, &ref, NULL), TW_OK);
  assert_string_equal(ref.wasm_digest, m.wasm_digest);
  assert_int_equal(ref.wasm_size, (int64_t)wasm.len);
  assert_int_equal(tw_reg_model_verify(&ref, wasm.data, wasm.len, NULL), TW_OK);
  /* A flipped byte, a short module. */
  char *copy = tw_memdup(wasm.data, wasm.len);
  assert_non_null(copy);
  copy[wasm.len / 2] ^= 1;
  tw_err_init(&err);
  assert_int_equal(tw_reg_model_verify(&ref, copy, wasm.len, &err), TW_EDIGEST);
  assert_int_equal(tw_reg_model_verify(&ref, wasm.data, wasm.len - 1, NULL),
                   TW_EDIGEST);
  /* Bytes that are not a model module. */
  tw_reg_model bad;
  tw_err_init(&err);
  assert_int_not_equal(tw_reg_model_build(engine, copy, 8, false, &bad, &err),
                       TW_OK);
  assert_true(err.msg[0] != '\0');
  tw_free(copy);
  tw_reg_model_fini(&m);
  tw_reg_model_fini(&m2);
  tw_wasm_engine_trim(engine); /* the module cache is not a leak */
}

static void push_pull(void **state) {
  (void)state;
  tw_reg *r = NULL;
  assert_int_equal(tw_reg_open(rt_dir, &r, NULL), TW_OK);
  tw_reg_model m;
  assert_int_equal(
      tw_reg_model_build(engine, wasm.data, wasm.len, false, &m, NULL), TW_OK);
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_reg_put_result res;
  assert_int_equal(
      tw_reg_model_push(r, "models/oscillator", "1.0", &m, &res, &e), TW_OK);
  assert_string_equal(res.digest, m.manifest_digest);
  tw_buf out = TW_BUF_INIT;
  assert_int_equal(tw_reg_model_pull(r, "models/oscillator", "1.0", &out, &e),
                   TW_OK);
  assert_int_equal(out.len, wasm.len);
  assert_memory_equal(out.data, wasm.data, wasm.len);
  /* A manifest that is not a model. */
  char cfg[72], layer[72];
  rt_blob(r, "models/other", "{}", cfg);
  rt_blob(r, "models/other", "layer", layer);
  tw_buf mm = TW_BUF_INIT;
  rt_manifest(&mm, cfg, layer, NULL, NULL);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_manifest_put(r, "models/other", "x",
                                       TW_REG_MT_MANIFEST, mm.data, mm.len,
                                       NULL, &e),
                   TW_OK);
  tw_buf_reset(&out);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_model_pull(r, "models/other", "x", &out, &e),
                   TW_EVALIDATE);
  assert_non_null(strstr(e.err.msg, "not a model"));
  assert_int_equal(out.len, 0);
  tw_buf_fini(&mm);
  tw_buf_fini(&out);
  tw_reg_model_fini(&m);
  tw_reg_close(r);
  tw_wasm_engine_trim(engine);
}

/* What the server runs before a manifest push: models load and carry
 * their own descriptor; anything else passes through untouched. */
static void check_and_info(void **state) {
  (void)state;
  tw_reg *r = NULL;
  assert_int_equal(tw_reg_open(rt_dir, &r, NULL), TW_OK);
  tw_reg_model m;
  assert_int_equal(
      tw_reg_model_build(engine, wasm.data, wasm.len, false, &m, NULL), TW_OK);
  tw_reg_err e;
  tw_reg_err_init(&e);
  /* The blobs not there yet: left to the put (MANIFEST_BLOB_UNKNOWN). */
  assert_int_equal(
      tw_reg_model_check(r, engine, "m", m.manifest.data, m.manifest.len, &e),
      TW_OK);
  assert_int_equal(tw_reg_model_push(r, "m", "v1", &m, NULL, &e), TW_OK);
  assert_int_equal(
      tw_reg_model_check(r, engine, "m", m.manifest.data, m.manifest.len, &e),
      TW_OK);

  /* The same module under a config that is not its descriptor. */
  char cfg[72];
  rt_blob(r, "m", "{\"name\":\"other\"}", cfg);
  tw_buf bad = TW_BUF_INIT;
  const char *old = strstr(m.manifest.data, m.config_digest);
  assert_non_null(old);
  assert_int_equal(tw_buf_append(&bad, m.manifest.data,
                                 (size_t)(old - (const char *)m.manifest.data)),
                   TW_OK);
  assert_int_equal(tw_buf_puts(&bad, cfg), TW_OK);
  const char *rest = old + strlen(m.config_digest);
  /* The size of {"name":"other"} replaces the descriptor's. */
  const char *comma = strchr(rest, ',');
  assert_non_null(comma);
  assert_int_equal(
      tw_buf_printf(&bad, "\",\"size\":16%s", strchr(comma + 1, '}')), TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_model_check(r, engine, "m", bad.data, bad.len, &e),
                   TW_EVALIDATE);
  assert_int_equal(e.code, TW_REG_MANIFEST_INVALID);
  assert_non_null(strstr(e.err.msg, "not the descriptor"));

  /* A layer the loader refuses. */
  char junk[72];
  rt_blob(r, "m",
          "\x00"
          "asm junk",
          junk);
  tw_buf_reset(&bad);
  assert_int_equal(
      tw_buf_printf(&bad,
                    "{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
                    "\",\"artifactType\":\"" TW_REG_MODEL_ARTIFACT_TYPE
                    "\",\"config\":{\"mediaType\":\"" TW_REG_MODEL_CONFIG_TYPE
                    "\",\"digest\":\"%s\",\"size\":16},\"layers\":[{"
                    "\"mediaType\":\"application/wasm\",\"digest\":\"%s\","
                    "\"size\":9}]}",
                    cfg, junk),
      TW_OK);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_model_check(r, engine, "m", bad.data, bad.len, &e),
                   TW_EVALIDATE);
  assert_non_null(strstr(e.err.msg, "does not load"));

  /* Not a model at all: passes. */
  tw_buf plain = TW_BUF_INIT;
  rt_manifest(&plain, cfg, junk, NULL, NULL);
  tw_reg_err_init(&e);
  assert_int_equal(
      tw_reg_model_check(r, engine, "m", plain.data, plain.len, &e), TW_OK);

  /* What a registration reads. */
  tw_reg_model_info info;
  memset(&info, 0, sizeof info);
  tw_buf_init(&info.descriptor);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_model_info_get(r, "m", "v1", &info, &e), TW_OK);
  assert_string_equal(info.manifest_digest, m.manifest_digest);
  assert_string_equal(info.ref.wasm_digest, m.wasm_digest);
  assert_int_equal(info.ref.wasm_size, (int64_t)wasm.len);
  assert_int_equal(info.descriptor.len, m.config.len);
  assert_memory_equal(info.descriptor.data, m.config.data, m.config.len);
  tw_reg_err_init(&e);
  assert_int_equal(tw_reg_model_info_get(r, "m", "nope", &info, &e), TW_ENOENT);
  assert_int_equal(e.code, TW_REG_MANIFEST_UNKNOWN);
  assert_int_equal(info.descriptor.len, m.config.len);
  tw_buf_fini(&info.descriptor);
  tw_buf_fini(&plain);
  tw_buf_fini(&bad);
  tw_reg_model_fini(&m);
  tw_reg_close(r);
  tw_wasm_engine_trim(engine);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(build),
      TW_TEST(push_pull),
      TW_TEST(check_and_info),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
