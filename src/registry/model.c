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
#include "twin/meta.h"

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

/* Whether parsed manifest m says it is a model. */
static bool claims_model(const tw_reg_manifest *m) {
  if (m->is_index)
    return false;
  return strcmp(m->config.media_type, TW_REG_MODEL_CONFIG_TYPE) == 0 ||
         (m->artifact_type != NULL &&
          strcmp(m->artifact_type, TW_REG_MODEL_ARTIFACT_TYPE) == 0);
}

/* Whether the blob text[0..len) is, as JSON, the object want. */
static bool json_same(const tw_buf *text, const tw_buf *want) {
  json_t *a = json_loadb(text->data, text->len, JSON_REJECT_DUPLICATES, NULL);
  json_t *b = json_loadb(want->data, want->len, 0, NULL);
  bool same = a != NULL && b != NULL && json_equal(a, b);
  json_decref(a);
  json_decref(b);
  return same;
}

int tw_reg_model_check(tw_reg *r, tw_wasm_engine *e, const char *name,
                       const void *manifest, size_t len, tw_reg_err *err) {
  tw_reg_err pe;
  tw_reg_err_init(&pe);
  tw_reg_manifest *m = NULL;
  if (tw_reg_manifest_parse(manifest, len, NULL, &m, &pe) != TW_OK)
    return TW_OK; /* the put reports it */
  bool model = claims_model(m);
  tw_reg_manifest_free(m);
  if (!model)
    return TW_OK;
  tw_reg_model_ref ref;
  tw_err perr;
  tw_err_init(&perr);
  if (tw_reg_model_parse(manifest, len, &ref, &perr) != TW_OK)
    return tw_reg_err_set(err, TW_REG_MANIFEST_INVALID, 0, TW_EVALIDATE,
                          "%s: %s", name, tw_err_msg(&perr));
  tw_buf wasm = TW_BUF_INIT, config = TW_BUF_INIT;
  tw_reg_err be;
  tw_reg_err_init(&be);
  int rc = TW_OK;
  if (tw_reg_blob_get(r, name, ref.wasm_digest, (size_t)ref.wasm_size + 1,
                      &wasm, &be) != TW_OK) {
    if (be.code != TW_REG_BLOB_UNKNOWN)
      rc = tw_reg_err_set(err, be.code, be.status, be.err.code, "%s",
                          tw_err_msg(&be.err));
    goto out; /* a missing layer is the put's MANIFEST_BLOB_UNKNOWN */
  }
  tw_reg_model built;
  tw_err lerr;
  tw_err_init(&lerr);
  if (tw_reg_model_build(e, wasm.data, wasm.len, true, &built, &lerr) !=
      TW_OK) {
    rc = tw_reg_err_set(err, TW_REG_MANIFEST_INVALID, 0, TW_EVALIDATE,
                        "%s: the model layer %s does not load: %s", name,
                        ref.wasm_digest, tw_err_msg(&lerr));
    goto out;
  }
  tw_reg_err_init(&be);
  if (tw_reg_blob_get(r, name, ref.config_digest, TW_META_DESCRIPTOR_MAX,
                      &config, &be) == TW_OK &&
      !json_same(&config, &built.config))
    rc = tw_reg_err_set(err, TW_REG_MANIFEST_INVALID, 0, TW_EVALIDATE,
                        "%s: the config %s is not the descriptor of the "
                        "module %s",
                        name, ref.config_digest, ref.wasm_digest);
  tw_reg_model_fini(&built);
out:
  tw_buf_fini(&wasm);
  tw_buf_fini(&config);
  return rc;
}

int tw_reg_model_info_get(tw_reg *r, const char *name, const char *reference,
                          tw_reg_model_info *out, tw_reg_err *e) {
  tw_buf body = TW_BUF_INIT;
  char digest[TW_STORE_DIGEST_MAX + 1];
  tw_reg_model_ref ref;
  int rc = tw_reg_manifest_get(r, name, reference, &body, NULL, digest, e);
  if (rc == TW_OK && strlen(digest) != TW_STORE_DIGEST_LEN)
    rc = tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EVALIDATE,
                        "%s@%s: a model is referenced by its sha256 digest",
                        name, digest);
  if (rc == TW_OK) {
    tw_err perr;
    tw_err_init(&perr);
    if (tw_reg_model_parse(body.data, body.len, &ref, &perr) != TW_OK)
      rc = tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EVALIDATE,
                          "%s@%s: %s", name, digest, tw_err_msg(&perr));
  }
  size_t len = out->descriptor.len;
  if (rc == TW_OK)
    rc = tw_reg_blob_get(r, name, ref.config_digest, TW_META_DESCRIPTOR_MAX,
                         &out->descriptor, e);
  if (rc == TW_OK) {
    memcpy(out->manifest_digest, digest, sizeof out->manifest_digest);
    out->ref = ref;
  } else {
    tw_buf_truncate(&out->descriptor, len);
  }
  tw_buf_fini(&body);
  tw_reg_err_finish(e);
  return rc;
}
