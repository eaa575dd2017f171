/*
 * referrers.c - the referrers API (GET /v2/<name>/referrers/<digest>):
 * the manifests of a repository whose subject is a given digest, as an
 * image index, optionally filtered by artifactType.
 *
 * The index is repos/<name>/_referrers/<subject hex>/<manifest hex>, one
 * file per referrer holding its descriptor (either hex may be a sha256 or
 * a sha512 digest's, told apart by length), written when the manifest is
 * pushed and removed when it is deleted. Invariant: an entry is listed
 * only while its manifest is still in the repository, so an entry left by
 * a crash between the two removals is never served.
 */
#include <string.h>

#include "registry_int.h"
#include "twin/json.h"

/* Appends the entry at path to out when it passes the filter. */
static int add_entry(const char *path, const char *artifact_type, tw_buf *out,
                     bool *first, tw_err *err) {
  tw_buf t = TW_BUF_INIT;
  json_t *v = NULL;
  int rc = tw__reg_read_small(path, TW_REG_MANIFEST_MAX, &t, err);
  if (rc == TW_ENOENT) { /* removed meanwhile */
    tw_buf_fini(&t);
    return TW_OK;
  }
  if (rc == TW_OK)
    rc = tw_json_parse(t.data, t.len, path, &v, err);
  const char *at = json_string_value(json_object_get(v, "artifactType"));
  bool keep = rc == TW_OK && (artifact_type == NULL ||
                              (at != NULL && strcmp(at, artifact_type) == 0));
  if (keep) {
    if (!*first)
      rc = tw_buf_putc(out, ',');
    if (rc == TW_OK)
      rc = tw_buf_append(out, t.data, t.len);
    if (rc != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "registry: out of memory");
    *first = false;
  }
  json_decref(v);
  tw_buf_fini(&t);
  return rc;
}

int tw_reg_referrers(tw_reg *r, const char *name, const char *digest,
                     const char *artifact_type, tw_buf *out, bool *filtered,
                     tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = tw__reg_check_blob_digest(digest, e);
  if (rc != TW_OK)
    return rc;
  if (artifact_type != NULL && artifact_type[0] == '\0')
    artifact_type = NULL;
  tw_buf dir = TW_BUF_INIT, p = TW_BUF_INIT;
  char **names = NULL;
  size_t n = 0;
  rc =
      tw__reg_path(r, &dir, "repos/%s/_referrers/%s", name, digest + 7) == TW_OK
          ? tw__reg_list_dir(dir.data, tw__reg_is_hex_name, &names, &n, &e->err)
          : tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  size_t len = out->len;
  if (rc == TW_OK &&
      tw_buf_puts(out, "{\"schemaVersion\":2,\"mediaType\":\"" TW_REG_MT_INDEX
                       "\",\"manifests\":[") != TW_OK)
    rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  bool first = true;
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    char d[TW_STORE_DIGEST_MAX + 1];
    tw__reg_hex_digest(names[i], d);
    if (!tw__reg_manifest_linked(r, name, d))
      continue;
    tw_buf_reset(&p);
    if (tw_buf_printf(&p, "%s/%s", dir.data, names[i]) != TW_OK)
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    else
      rc = add_entry(p.data, artifact_type, out, &first, &e->err);
  }
  if (rc == TW_OK && tw_buf_puts(out, "]}") != TW_OK)
    rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  if (rc != TW_OK)
    tw_buf_truncate(out, len);
  if (rc == TW_OK && filtered != NULL)
    *filtered = artifact_type != NULL;
  tw__reg_names_free(names, n);
  tw_buf_fini(&dir);
  tw_buf_fini(&p);
  tw_reg_err_finish(e);
  return rc;
}
