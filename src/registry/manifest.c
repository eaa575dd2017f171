/*
 * manifest.c - image manifests and image indexes parsed and checked
 * (https://github.com/opencontainers/image-spec: manifest.md,
 * image-index.md, descriptor.md), for the registry's PUT and for garbage
 * collection, which walks what they reference.
 *
 * Invariants: a parsed manifest has schemaVersion 2, a known media type,
 * and descriptors whose digests are valid sha256 or sha512 (blobs and
 * manifests may be pushed by either, so a subject may be named by either)
 * and whose sizes are non-negative integers; every
 * string it exposes is borrowed from the JSON tree it owns. Parsing is
 * bounded (TW_REG_MANIFEST_MAX bytes, jansson's depth limit) and never
 * trusts the input.
 */
#include <stdio.h>
#include <string.h>

#include "registry_int.h"
#include "twin/json.h"

typedef struct manifest {
  tw_reg_manifest pub; /* first: tw_reg_manifest * is a manifest * */
  json_t *root;
  tw_reg_desc *refs;
  char *annotations;
  char *content_type; /* the normalised Content-Type, when it was used */
} manifest;

static const char *const known_types[] = {TW_REG_MT_MANIFEST, TW_REG_MT_INDEX,
                                          TW_REG_MT_DOCKER_MANIFEST,
                                          TW_REG_MT_DOCKER_LIST};

static bool known_type(const char *mt) {
  for (size_t i = 0; i < sizeof known_types / sizeof known_types[0]; i++)
    if (strcmp(mt, known_types[i]) == 0)
      return true;
  return false;
}

#define invalid(e, ...)                                                        \
  tw_reg_err_set((e), TW_REG_MANIFEST_INVALID, 0, TW_EINVAL, __VA_ARGS__)

/* Parses the descriptor at v (where names it in messages). */
static int parse_desc(const json_t *v, const char *where, tw_reg_desc *d,
                      tw_reg_err *e) {
  if (!json_is_object(v))
    return invalid(e, "manifest: %s is not an object", where);
  const json_t *mt = json_object_get(v, "mediaType");
  const json_t *dg = json_object_get(v, "digest");
  const json_t *sz = json_object_get(v, "size");
  const json_t *at = json_object_get(v, "artifactType");
  if (!json_is_string(mt))
    return invalid(e, "manifest: %s: mediaType must be a string", where);
  if (!json_is_string(dg))
    return invalid(e, "manifest: %s: digest must be a string", where);
  if (!json_is_integer(sz) || json_integer_value(sz) < 0)
    return invalid(e, "manifest: %s: size must be a non-negative integer",
                   where);
  if (at != NULL && !json_is_string(at))
    return invalid(e, "manifest: %s: artifactType must be a string", where);
  tw_err sub;
  tw_err_init(&sub);
  if (tw_store_digest_check_any(json_string_value(dg), &sub) != TW_OK)
    return tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EINVAL,
                          "manifest: %s: %s", where, sub.msg);
  d->media_type = json_string_value(mt);
  d->digest = json_string_value(dg);
  d->size = json_integer_value(sz);
  d->artifact_type = at != NULL ? json_string_value(at) : NULL;
  return TW_OK;
}

/* The media type of a Content-Type header: parameters and blanks cut. */
static char *normalise_type(const char *ct) {
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
    n--;
  size_t i = 0;
  while (i < n && (ct[i] == ' ' || ct[i] == '\t'))
    i++;
  return tw_strndup(ct + i, n - i);
}

static int parse_refs(manifest *m, const json_t *arr, const char *key,
                      tw_reg_err *e) {
  size_t n = json_array_size(arr);
  m->refs = tw_calloc(n > 0 ? n : 1, sizeof *m->refs);
  if (m->refs == NULL)
    return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM,
                          "manifest: out of memory");
  for (size_t i = 0; i < n; i++) {
    char where[48];
    (void)snprintf(where, sizeof where, "%s[%zu]", key, i);
    int rc = parse_desc(json_array_get(arr, i), where, &m->refs[i], e);
    if (rc != TW_OK)
      return rc;
  }
  m->pub.refs = m->refs;
  m->pub.nrefs = n;
  return TW_OK;
}

static int parse_root(manifest *m, const char *ct, tw_reg_err *e) {
  const json_t *root = m->root;
  if (!json_is_object(root))
    return invalid(e, "manifest: %s", "the document is not a JSON object");
  const json_t *sv = json_object_get(root, "schemaVersion");
  if (!json_is_integer(sv) || json_integer_value(sv) != 2)
    return invalid(e, "manifest: %s", "schemaVersion must be 2");
  const json_t *mt = json_object_get(root, "mediaType");
  if (mt != NULL && !json_is_string(mt))
    return invalid(e, "manifest: %s", "mediaType must be a string");
  const char *doc_type = mt != NULL ? json_string_value(mt) : NULL;
  if (ct != NULL && ct[0] != '\0') {
    m->content_type = normalise_type(ct);
    if (m->content_type == NULL)
      return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM,
                            "manifest: out of memory");
    if (doc_type != NULL && strcmp(doc_type, m->content_type) != 0)
      return tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EINVAL,
                            "manifest: mediaType '%.200s' does not match the "
                            "Content-Type '%.200s'",
                            doc_type, m->content_type);
  }
  const char *type = doc_type != NULL ? doc_type : m->content_type;
  if (type == NULL || type[0] == '\0')
    return invalid(e, "manifest: %s",
                   "no mediaType in the document and no Content-Type");
  if (!known_type(type))
    return tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EINVAL,
                          "manifest: unsupported media type '%.200s'", type);
  m->pub.media_type = type;
  m->pub.is_index = strcmp(type, TW_REG_MT_INDEX) == 0 ||
                    strcmp(type, TW_REG_MT_DOCKER_LIST) == 0;

  int rc = TW_OK;
  if (m->pub.is_index) {
    const json_t *ms = json_object_get(root, "manifests");
    if (!json_is_array(ms))
      return invalid(e, "manifest: %s", "an index needs a manifests array");
    rc = parse_refs(m, ms, "manifests", e);
  } else {
    const json_t *ls = json_object_get(root, "layers");
    if (!json_is_array(ls))
      return invalid(e, "manifest: %s",
                     "an image manifest needs a layers "
                     "array");
    rc = parse_desc(json_object_get(root, "config"), "config", &m->pub.config,
                    e);
    if (rc == TW_OK)
      rc = parse_refs(m, ls, "layers", e);
  }
  if (rc != TW_OK)
    return rc;

  const json_t *at = json_object_get(root, "artifactType");
  if (at != NULL && !json_is_string(at))
    return invalid(e, "manifest: %s", "artifactType must be a string");
  /* The referrers API's rule: an image manifest without artifactType is
   * listed with its config's media type. */
  m->pub.artifact_type = at != NULL        ? json_string_value(at)
                         : m->pub.is_index ? NULL
                                           : m->pub.config.media_type;
  const json_t *subject = json_object_get(root, "subject");
  if (subject != NULL) {
    rc = parse_desc(subject, "subject", &m->pub.subject, e);
    if (rc != TW_OK)
      return rc;
    m->pub.has_subject = true;
  }
  json_t *ann = json_object_get(root, "annotations");
  if (ann != NULL) {
    if (!json_is_object(ann))
      return invalid(e, "manifest: %s", "annotations must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(ann, k, v) {
      if (!json_is_string(v))
        return tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EINVAL,
                              "manifest: annotation '%.100s' is not a string",
                              k);
    }
    tw_buf b = TW_BUF_INIT;
    if (tw_json_dump(ann, 0, &b) != TW_OK ||
        (m->annotations = tw_buf_take(&b, NULL)) == NULL) {
      tw_buf_fini(&b);
      return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM,
                            "manifest: out of memory");
    }
    m->pub.annotations = m->annotations;
  }
  return TW_OK;
}

int tw_reg_manifest_parse(const void *data, size_t len,
                          const char *content_type, tw_reg_manifest **out,
                          tw_reg_err *e) {
  if (len > TW_REG_MANIFEST_MAX)
    return tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 413, TW_ELIMIT,
                          "manifest: %zu bytes, at most %zu are accepted", len,
                          TW_REG_MANIFEST_MAX);
  manifest *m = tw_calloc(1, sizeof *m);
  if (m == NULL)
    return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM,
                          "manifest: out of memory");
  tw_err perr;
  tw_err_init(&perr);
  int rc = tw_json_parse(data, len, "manifest", &m->root, &perr);
  if (rc == TW_ENOMEM)
    rc = tw_reg_err_set(e, TW_REG_UNKNOWN, 0, rc, "%s", perr.msg);
  else if (rc != TW_OK)
    rc = tw_reg_err_set(e, TW_REG_MANIFEST_INVALID, 0, TW_EPARSE, "%s",
                        perr.msg);
  if (rc == TW_OK)
    rc = parse_root(m, content_type, e);
  if (rc != TW_OK) {
    tw_reg_manifest_free(&m->pub);
    return rc;
  }
  *out = &m->pub;
  return TW_OK;
}

void tw_reg_manifest_free(tw_reg_manifest *pub) {
  if (pub == NULL)
    return;
  manifest *m = (manifest *)pub;
  json_decref(m->root);
  tw_free(m->refs);
  tw_free(m->annotations);
  tw_free(m->content_type);
  tw_free(m);
}

int tw__reg_manifest_parse_stored(const void *data, size_t len,
                                  const char *media_type, tw_reg_manifest **out,
                                  tw_err *err) {
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_manifest_parse(data, len, media_type, out, &e);
  if (rc != TW_OK)
    tw_err_copy(err, &e.err);
  return rc;
}
