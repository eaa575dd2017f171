/*
 * model.c - .wasm models as OCI artifacts: one image manifest with
 * artifactType application/vnd.twin.model.v1+json, the model descriptor as
 * its config and the module as its one layer.
 *
 * Invariants: an artifact is only built from a module the wasm loader
 * accepted (validation, model ABI, descriptor), so every model pushed
 * through the server or `twin push` was loadable; the build is a pure
 * function of the module's bytes (canonical descriptor JSON, fixed key
 * order, no timestamps), so the server and the CLI produce the same
 * manifest digest for the same module.
 */
#include <string.h>

#include "registry_int.h"
#include "twin/hash.h"
#include "twin/json.h"

/* A file name for the layer's title annotation (what `oras pull` writes):
 * the model's name when it is a plain file name, else "model". */
static const char *title_name(const char *name) {
  if (name == NULL || name[0] == '\0' || name[0] == '.' || strlen(name) > 100)
    return "model";
  for (const char *c = name; *c != '\0'; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
      return "model";
  return name;
}

static int put_str(tw_buf *b, const char *s) {
  return tw_buf_put_json_string(b, s, strlen(s));
}

static int write_manifest(const tw_reg_model *m, const tw_wasm_desc *d,
                          tw_buf *b) {
  int rc = tw_buf_printf(
      b,
      "{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_MANIFEST
      "\",\"artifactType\":\"" TW_REG_MODEL_ARTIFACT_TYPE
      "\",\"config\":{\"mediaType\":\"" TW_REG_MODEL_CONFIG_TYPE
      "\",\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
      "\"" TW_REG_MODEL_LAYER_TYPE
      "\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{"
      "\"org.opencontainers.image.title\":\"%s.wasm\"}}],\"annotations\":{"
      "\"org.opencontainers.image.title\":",
      m->config_digest, m->config.len, m->wasm_digest, m->wasm_size,
      title_name(d->name));
  if (rc == TW_OK)
    rc = put_str(b, d->name != NULL ? d->name : "");
  if (rc == TW_OK)
    rc = tw_buf_puts(b, ",\"org.opencontainers.image.version\":");
  if (rc == TW_OK)
    rc = put_str(b, d->version != NULL ? d->version : "");
  if (rc == TW_OK)
    rc = tw_buf_puts(b, "}}");
  return rc;
}

static void digest_of(const void *data, size_t n,
                      char out[TW_STORE_DIGEST_LEN + 1], int *rc) {
  memcpy(out, "sha256:", sizeof "sha256:");
  if (*rc == TW_OK && tw_sha256_hex(data, n, out + 7) != TW_OK)
    *rc = TW_EINTERNAL;
}

int tw_reg_model_build(tw_wasm_engine *e, const void *wasm, size_t len,
                       bool allow_wasi, tw_reg_model *out, tw_err *err) {
  tw_wasm_module_opts mo = {allow_wasi, NULL};
  tw_wasm_module *mod = NULL;
  int rc = tw_wasm_module_load(e, wasm, len, &mo, &mod, err);
  if (rc != TW_OK)
    return rc;
  const tw_wasm_desc *d = tw_wasm_module_desc(mod);
  tw_reg_model m;
  memset(&m, 0, sizeof m);
  m.wasm = wasm;
  m.wasm_size = len;
  memcpy(m.wasm_digest, tw_wasm_module_digest(mod), TW_STORE_DIGEST_LEN + 1);
  json_t *v = NULL;
  rc = tw_json_parse(d->json, strlen(d->json), "model descriptor", &v, err);
  if (rc == TW_OK && tw_json_dump(v, TW_JSON_SORT_KEYS, &m.config) != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "model artifact: out of memory");
  json_decref(v);
  digest_of(m.config.data, m.config.len, m.config_digest, &rc);
  if (rc == TW_OK && write_manifest(&m, d, &m.manifest) != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "model artifact: out of memory");
  digest_of(m.manifest.data, m.manifest.len, m.manifest_digest, &rc);
  if (rc == TW_EINTERNAL)
    tw_err_set(err, rc, "model artifact: cannot hash");
  tw_wasm_module_free(mod);
  if (rc != TW_OK) {
    tw_reg_model_fini(&m);
    return rc;
  }
  *out = m;
  return TW_OK;
}

void tw_reg_model_fini(tw_reg_model *m) {
  if (m == NULL)
    return;
  tw_buf_fini(&m->config);
  tw_buf_fini(&m->manifest);
}

int tw_reg_model_push(tw_reg *r, const char *name, const char *tag,
                      const tw_reg_model *m, tw_reg_put_result *res,
                      tw_reg_err *e) {
  int rc =
      tw_reg_blob_put(r, name, m->wasm, m->wasm_size, m->wasm_digest, NULL, e);
  if (rc == TW_OK)
    rc = tw_reg_blob_put(r, name, m->config.data, m->config.len,
                         m->config_digest, NULL, e);
  if (rc == TW_OK)
    rc = tw_reg_manifest_put(r, name, tag != NULL ? tag : m->manifest_digest,
                             TW_REG_MT_MANIFEST, m->manifest.data,
                             m->manifest.len, res, e);
  return rc;
}

int tw_reg_model_parse(const void *manifest, size_t len, tw_reg_model_ref *out,
                       tw_err *err) {
  tw_reg_err e;
  tw_reg_err_init(&e);
  tw_reg_manifest *m = NULL;
  int rc = tw_reg_manifest_parse(manifest, len, NULL, &m, &e);
  if (rc != TW_OK) {
    tw_err_copy(err, &e.err);
    return rc == TW_ENOMEM ? rc : TW_EVALIDATE;
  }
  const tw_reg_desc *layer = NULL;
  if (m->is_index)
    rc = tw_err_set(err, TW_EVALIDATE,
                    "not a model: an image index, not a manifest");
  else if (strcmp(m->config.media_type, TW_REG_MODEL_CONFIG_TYPE) != 0)
    rc = tw_err_set(
        err, TW_EVALIDATE,
        "not a model: the config is '%.100s', not " TW_REG_MODEL_CONFIG_TYPE,
        m->config.media_type);
  for (size_t i = 0; rc == TW_OK && i < m->nrefs; i++) {
    if (strcmp(m->refs[i].media_type, TW_REG_MODEL_LAYER_TYPE) != 0)
      continue;
    if (layer != NULL)
      rc = tw_err_set(err, TW_EVALIDATE,
                      "not a model: more than one " TW_REG_MODEL_LAYER_TYPE
                      " layer");
    layer = &m->refs[i];
  }
  if (rc == TW_OK && layer == NULL)
    rc = tw_err_set(err, TW_EVALIDATE,
                    "not a model: no " TW_REG_MODEL_LAYER_TYPE " layer");
  if (rc == TW_OK) {
    memcpy(out->wasm_digest, layer->digest, TW_STORE_DIGEST_LEN + 1);
    out->wasm_size = layer->size;
    memcpy(out->config_digest, m->config.digest, TW_STORE_DIGEST_LEN + 1);
    out->config_size = m->config.size;
  }
  tw_reg_manifest_free(m);
  return rc;
}

int tw_reg_model_verify(const tw_reg_model_ref *ref, const void *wasm,
                        size_t len, tw_err *err) {
  if ((uint64_t)ref->wasm_size != len)
    return tw_err_set(err, TW_EDIGEST,
                      "model %s: %zu bytes, the manifest says %lld",
                      ref->wasm_digest, len, (long long)ref->wasm_size);
  char d[TW_STORE_DIGEST_LEN + 1];
  int rc = TW_OK;
  digest_of(wasm, len, d, &rc);
  if (rc != TW_OK)
    return tw_err_set(err, rc, "model: cannot hash");
  if (strcmp(d, ref->wasm_digest) != 0)
    return tw_err_set(err, TW_EDIGEST,
                      "model: the module hashes to %s, the manifest says %s", d,
                      ref->wasm_digest);
  return TW_OK;
}

int tw_reg_model_pull(tw_reg *r, const char *name, const char *reference,
                      tw_buf *wasm, tw_reg_err *e) {
  tw_buf body = TW_BUF_INIT;
  tw_reg_model_ref ref;
  int rc = tw_reg_manifest_get(r, name, reference, &body, NULL, NULL, e);
  if (rc == TW_OK)
    rc = tw_reg_model_parse(body.data, body.len, &ref, &e->err);
  size_t len = wasm->len;
  if (rc == TW_OK)
    rc = tw_reg_blob_get(r, name, ref.wasm_digest, 0, wasm, e);
  if (rc == TW_OK) {
    rc = tw_reg_model_verify(&ref, wasm->data + len, wasm->len - len, &e->err);
    if (rc != TW_OK)
      tw_buf_truncate(wasm, len);
  }
  tw_buf_fini(&body);
  tw_reg_err_finish(e);
  return rc;
}
