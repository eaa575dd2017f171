/*
 * manifests.c - manifests and tags of repositories: PUT, GET, HEAD and
 * DELETE of /v2/<name>/manifests/<reference> and the tag list.
 *
 * A manifest's bytes are a blob of the store; the repository has it when
 * repos/<name>/_manifests/<hex> exists (the file holds its media type). A
 * tag is repos/<name>/_tags/<tag>, holding the sha256 digest it points at;
 * moving a tag is one rename, so a reader sees the old or the new digest.
 * A manifest with a subject also gets repos/<name>/_referrers/<subject
 * hex>/<hex> (referrers.c).
 *
 * A manifest is known by the digest it was pushed by: its sha256 digest
 * when pushed by tag or by a sha256 digest, its sha512 digest when pushed
 * by one (blobs/sha512/<hex>, _manifests/<128 hex>). The registry never
 * computes the other algorithm's digest for it: the spec has it answer
 * with the algorithm the client chose.
 *
 * Invariant: a push stores in this order: the manifest blob, its link, its
 * referrers entry, its tag; each step is a complete file, so a crash
 * leaves at worst a manifest without its tag (the client pushes again).
 * Everything a manifest references is checked while the store's shared
 * lock is held, so garbage collection cannot remove it in between.
 */
#include <assert.h>
#include <string.h>

#include "registry_int.h"
#include "twin/hash.h"
#include "twin/json.h"

/* The reference of a request: a tag or a digest (sha256 or sha512), into
 * e with `bad`. */
static int check_reference(const char *ref, bool *is_digest, tw_reg_code bad,
                           tw_reg_err *e) {
  if (ref == NULL ||
      tw_reg_manifest_ref_check(ref, strlen(ref), is_digest, &e->err) != TW_OK)
    return tw_reg_err_set(e, *is_digest ? TW_REG_DIGEST_INVALID : bad, 0,
                          TW_EINVAL, "invalid reference");
  return TW_OK;
}

/* Whether a layer's media type marks it non-distributable: its content
 * lives elsewhere (the descriptor's urls), so it is never pushed. */
static bool nondistributable(const char *media_type) {
  static const char *const prefixes[] = {
      "application/vnd.oci.image.layer.nondistributable.",
      "application/vnd.docker.image.rootfs.foreign.",
  };
  if (media_type == NULL)
    return false;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(media_type, prefixes[i], strlen(prefixes[i])) == 0)
      return true;
  return false;
}

/* Everything m references must be in repository name, except
 * non-distributable layers. */
static int check_refs(tw_reg *r, const char *name, const tw_reg_manifest *m,
                      tw_reg_err *e) {
  if (!m->is_index && !tw__reg_blob_linked(r, name, m->config.digest))
    return tw_reg_err_set(e, TW_REG_MANIFEST_BLOB_UNKNOWN, 0, TW_ENOENT,
                          "%s: the config blob %s is not in the repository",
                          name, m->config.digest);
  for (size_t i = 0; i < m->nrefs; i++) {
    const char *d = m->refs[i].digest;
    if (!m->is_index && nondistributable(m->refs[i].media_type))
      continue;
    bool ok = m->is_index ? tw__reg_manifest_linked(r, name, d)
                          : tw__reg_blob_linked(r, name, d);
    if (!ok)
      return tw_reg_err_set(e, TW_REG_MANIFEST_BLOB_UNKNOWN, 0, TW_ENOENT,
                            "%s: the %s %s (%s[%zu]) is not in the repository",
                            name, m->is_index ? "manifest" : "blob", d,
                            m->is_index ? "manifests" : "layers", i);
  }
  return TW_OK;
}

/* The referrers entry of manifest digest: its descriptor as the referrers
 * API lists it. */
static int referrer_entry(const tw_reg_manifest *m, const char *digest,
                          size_t len, tw_buf *out) {
  int rc = tw_buf_puts(out, "{\"mediaType\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(out, m->media_type, strlen(m->media_type));
  if (rc == TW_OK)
    rc = tw_buf_printf(out, ",\"digest\":\"%s\",\"size\":%zu", digest, len);
  if (rc == TW_OK && m->artifact_type != NULL) {
    rc = tw_buf_puts(out, ",\"artifactType\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(out, m->artifact_type,
                                  strlen(m->artifact_type));
  }
  if (rc == TW_OK && m->annotations != NULL)
    rc = tw_buf_printf(out, ",\"annotations\":%s", m->annotations);
  if (rc == TW_OK)
    rc = tw_buf_puts(out, "}");
  return rc;
}

/* The digest of data[0..len) by sha256, or by sha512 (a manifest pushed by
 * its sha512 digest), into out. */
static int manifest_digest(const void *data, size_t len, bool sha512,
                           char out[TW_STORE_DIGEST_MAX + 1]) {
  if (!sha512) {
    memcpy(out, "sha256:", sizeof "sha256:");
    return tw_sha256_hex(data, len, out + 7);
  }
  uint8_t md[TW_SHA512_LEN];
  int rc = tw_sha512(data, len, md);
  if (rc == TW_OK) {
    memcpy(out, "sha512:", sizeof "sha512:");
    tw_hex_encode(md, sizeof md, out + 7);
  }
  return rc;
}

/* Stores the parsed manifest m (data[0..len), digest) into name, all under
 * the shared lock held by the caller. */
static int store_manifest(tw_reg *r, const char *name, const char *tag,
                          const tw_reg_manifest *m, const void *data,
                          size_t len, const char *digest, tw_reg_err *e) {
  int rc = check_refs(r, name, m, e);
  if (rc == TW_OK)
    rc = tw_store_add(r->store, data, len, digest, NULL, &e->err);
  tw_buf p = TW_BUF_INIT, body = TW_BUF_INIT;
  if (rc == TW_OK && (tw__reg_path(r, &p, "repos/%s/_manifests/%s", name,
                                   digest + 7) != TW_OK))
    rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  if (rc == TW_OK)
    rc = tw__reg_put_file(r, p.data, m->media_type, strlen(m->media_type),
                          &e->err);
  if (rc == TW_OK && m->has_subject) {
    tw_buf_reset(&p);
    if (tw__reg_path(r, &p, "repos/%s/_referrers/%s/%s", name,
                     m->subject.digest + 7, digest + 7) != TW_OK ||
        referrer_entry(m, digest, len, &body) != TW_OK)
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    if (rc == TW_OK)
      rc = tw__reg_put_file(r, p.data, body.data, body.len, &e->err);
  }
  if (rc == TW_OK && tag != NULL) {
    tw_buf_reset(&p);
    if (tw__reg_path(r, &p, "repos/%s/_tags/%s", name, tag) != TW_OK)
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    if (rc == TW_OK)
      rc = tw__reg_put_file(r, p.data, digest, strlen(digest), &e->err);
  }
  tw_buf_fini(&p);
  tw_buf_fini(&body);
  return rc;
}

int tw_reg_manifest_put(tw_reg *r, const char *name, const char *reference,
                        const char *content_type, const void *data, size_t len,
                        tw_reg_put_result *res, tw_reg_err *e) {
  bool by_digest = false;
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = check_reference(reference, &by_digest, TW_REG_MANIFEST_INVALID, e);
  if (rc != TW_OK)
    return rc;
  tw_reg_manifest *m = NULL;
  rc = tw_reg_manifest_parse(data, len, content_type, &m, e);
  char digest[TW_STORE_DIGEST_MAX + 1];
  bool sha512 = by_digest && strncmp(reference, "sha512:", 7) == 0;
  if (rc == TW_OK && manifest_digest(data, len, sha512, digest) != TW_OK)
    rc = tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_EINTERNAL,
                        "manifest: cannot hash");
  if (rc == TW_OK && by_digest && strcmp(reference, digest) != 0)
    rc = tw_reg_err_set(e, TW_REG_DIGEST_INVALID, 0, TW_EDIGEST,
                        "manifest: the content hashes to %s, not %s", digest,
                        reference);
  int lock = -1;
  if (rc == TW_OK)
    rc = tw_store_lock(r->store, false, &lock, &e->err);
  if (rc == TW_OK)
    rc = store_manifest(r, name, by_digest ? NULL : reference, m, data, len,
                        digest, e);
  tw_store_unlock(lock);
  if (rc == TW_OK && res != NULL) {
    memcpy(res->digest, digest, strlen(digest) + 1);
    res->subject[0] = '\0';
    if (m->has_subject)
      memcpy(res->subject, m->subject.digest, strlen(m->subject.digest) + 1);
  }
  tw_reg_manifest_free(m);
  tw_reg_err_finish(e);
  return rc;
}

/* Resolves reference of name to a manifest digest that name has. */
static int resolve(tw_reg *r, const char *name, const char *reference,
                   bool by_digest, char digest[TW_STORE_DIGEST_MAX + 1],
                   tw_buf *media_type, tw_reg_err *e) {
  tw_buf p = TW_BUF_INIT, t = TW_BUF_INIT;
  int rc = TW_OK;
  if (by_digest) {
    assert(strlen(reference) <= TW_STORE_DIGEST_MAX);
    memcpy(digest, reference, strlen(reference) + 1);
  } else {
    if (tw__reg_path(r, &p, "repos/%s/_tags/%s", name, reference) != TW_OK)
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    tw_err sub;
    tw_err_init(&sub);
    int lrc = rc == TW_OK ? tw__reg_read_small(p.data, 128, &t, &sub) : rc;
    if (lrc == TW_ENOENT)
      rc = tw_reg_err_set(e, TW_REG_MANIFEST_UNKNOWN, 0, TW_ENOENT,
                          "%s: no tag '%s'", name, reference);
    else if (lrc != TW_OK)
      rc = tw_err_copy(&e->err, &sub);
    else if (t.len != TW_STORE_DIGEST_LEN ||
             tw_store_digest_check(t.data, NULL) != TW_OK)
      rc = tw_err_set(&e->err, TW_EIO, "%s: not a digest", p.data);
    else
      memcpy(digest, t.data, TW_STORE_DIGEST_LEN + 1);
  }
  if (rc == TW_OK) {
    tw_buf mt = TW_BUF_INIT;
    tw_err sub;
    tw_err_init(&sub);
    int lrc = tw__reg_manifest_type(r, name, digest, &mt, &sub);
    if (lrc == TW_ENOENT)
      rc = tw_reg_err_set(e, TW_REG_MANIFEST_UNKNOWN, 0, TW_ENOENT,
                          "%s: no manifest %s", name, digest);
    else if (lrc != TW_OK)
      rc = tw_err_copy(&e->err, &sub);
    else if (media_type != NULL && tw_buf_append(media_type, mt.data, mt.len))
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    tw_buf_fini(&mt);
  }
  tw_buf_fini(&p);
  tw_buf_fini(&t);
  return rc;
}

int tw_reg_manifest_get(tw_reg *r, const char *name, const char *reference,
                        tw_buf *body, tw_buf *media_type,
                        char digest[TW_STORE_DIGEST_MAX + 1], tw_reg_err *e) {
  bool by_digest = false;
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = check_reference(reference, &by_digest, TW_REG_MANIFEST_INVALID, e);
  if (rc == TW_OK && !tw_reg_repo_exists(r, name))
    rc = tw_reg_err_set(e, TW_REG_NAME_UNKNOWN, 0, TW_ENOENT,
                        "no repository '%s'", name);
  char d[TW_STORE_DIGEST_MAX + 1];
  size_t blen = body != NULL ? body->len : 0;
  size_t mlen = media_type != NULL ? media_type->len : 0;
  if (rc == TW_OK)
    rc = resolve(r, name, reference, by_digest, d, media_type, e);
  if (rc == TW_OK && body != NULL)
    rc = tw_store_read(r->store, d, TW_REG_MANIFEST_MAX, body, &e->err);
  else if (rc == TW_OK)
    rc = tw_store_stat(r->store, d, NULL, &e->err);
  if (rc == TW_ENOENT)
    tw_reg_err_set(e, TW_REG_MANIFEST_UNKNOWN, 0, rc, "no manifest %s", d);
  if (rc == TW_OK && digest != NULL)
    memcpy(digest, d, strlen(d) + 1);
  if (rc != TW_OK && media_type != NULL)
    tw_buf_truncate(media_type, mlen);
  if (rc != TW_OK && body != NULL)
    tw_buf_truncate(body, blen);
  tw_reg_err_finish(e);
  return rc;
}

static bool is_tag(const char *s) {
  return tw_reg_tag_check(s, strlen(s), NULL) == TW_OK;
}

/* Removes every tag of name that points at digest. */
static int untag(tw_reg *r, const char *name, const char *digest, tw_err *err) {
  tw_buf dir = TW_BUF_INIT, p = TW_BUF_INIT, t = TW_BUF_INIT;
  char **tags = NULL;
  size_t n = 0;
  int rc = tw__reg_path(r, &dir, "repos/%s/_tags", name) == TW_OK
               ? tw__reg_list_dir(dir.data, is_tag, &tags, &n, err)
               : tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    tw_buf_reset(&p);
    tw_buf_reset(&t);
    if (tw_buf_printf(&p, "%s/%s", dir.data, tags[i]) != TW_OK) {
      rc = tw_err_set(err, TW_ENOMEM, "registry: out of memory");
      break;
    }
    if (tw__reg_read_small(p.data, 128, &t, NULL) == TW_OK &&
        strcmp(t.data, digest) == 0)
      rc = tw__reg_remove(p.data, err);
  }
  tw__reg_names_free(tags, n);
  tw_buf_fini(&dir);
  tw_buf_fini(&p);
  tw_buf_fini(&t);
  return rc == TW_ENOENT ? TW_OK : rc;
}

static int delete_digest(tw_reg *r, const char *name, const char *digest,
                         tw_reg_err *e) {
  tw_buf mt = TW_BUF_INIT, body = TW_BUF_INIT, p = TW_BUF_INIT;
  int rc = resolve(r, name, digest, true, (char[TW_STORE_DIGEST_MAX + 1]){0},
                   &mt, e);
  /* The referrers entry goes first: a crash after it leaves a manifest
   * that is still there, not an entry naming one that is gone. */
  tw_reg_manifest *m = NULL;
  if (rc == TW_OK &&
      tw_store_read(r->store, digest, TW_REG_MANIFEST_MAX, &body, NULL) ==
          TW_OK &&
      tw__reg_manifest_parse_stored(body.data, body.len, mt.data, &m, NULL) ==
          TW_OK &&
      m->has_subject) {
    if (tw__reg_path(r, &p, "repos/%s/_referrers/%s/%s", name,
                     m->subject.digest + 7, digest + 7) != TW_OK)
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    int x = rc == TW_OK ? tw__reg_remove(p.data, NULL) : TW_OK;
    if (x != TW_OK && x != TW_ENOENT)
      rc = tw_err_set(&e->err, x, "%s: cannot remove", p.data);
  }
  if (rc == TW_OK)
    rc = untag(r, name, digest, &e->err);
  tw_buf_reset(&p);
  if (rc == TW_OK &&
      tw__reg_path(r, &p, "repos/%s/_manifests/%s", name, digest + 7) != 0)
    rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  if (rc == TW_OK)
    rc = tw__reg_remove(p.data, &e->err);
  tw_reg_manifest_free(m);
  tw_buf_fini(&mt);
  tw_buf_fini(&body);
  tw_buf_fini(&p);
  return rc;
}

int tw_reg_manifest_delete(tw_reg *r, const char *name, const char *reference,
                           tw_reg_err *e) {
  bool by_digest = false;
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = check_reference(reference, &by_digest, TW_REG_MANIFEST_INVALID, e);
  if (rc == TW_OK && !tw_reg_repo_exists(r, name))
    rc = tw_reg_err_set(e, TW_REG_NAME_UNKNOWN, 0, TW_ENOENT,
                        "no repository '%s'", name);
  if (rc == TW_OK && by_digest) {
    rc = delete_digest(r, name, reference, e);
  } else if (rc == TW_OK) {
    tw_buf p = TW_BUF_INIT;
    if (tw__reg_path(r, &p, "repos/%s/_tags/%s", name, reference) != TW_OK)
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    else if ((rc = tw__reg_remove(p.data, NULL)) == TW_ENOENT)
      rc = tw_reg_err_set(e, TW_REG_MANIFEST_UNKNOWN, 0, rc, "%s: no tag '%s'",
                          name, reference);
    else if (rc != TW_OK)
      rc = tw_err_set(&e->err, rc, "%s: cannot remove", p.data);
    tw_buf_fini(&p);
  }
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_tags_list(tw_reg *r, const char *name, long n, const char *last,
                     tw_buf *out, bool *more, tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK && !tw_reg_repo_exists(r, name))
    rc = tw_reg_err_set(e, TW_REG_NAME_UNKNOWN, 0, TW_ENOENT,
                        "no repository '%s'", name);
  if (rc != TW_OK)
    return rc;
  tw_buf dir = TW_BUF_INIT;
  char **tags = NULL;
  size_t ntags = 0;
  rc = tw__reg_path(r, &dir, "repos/%s/_tags", name) == TW_OK
           ? tw__reg_list_dir(dir.data, is_tag, &tags, &ntags, &e->err)
           : tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  size_t first = 0;
  while (rc == TW_OK && last != NULL && first < ntags &&
         strcmp(tags[first], last) <= 0)
    first++;
  size_t count = ntags - first;
  if (n >= 0 && (unsigned long)n < count)
    count = (size_t)n;
  size_t len = out->len;
  if (rc == TW_OK) {
    rc = tw_buf_puts(out, "{\"name\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(out, name, strlen(name));
    if (rc == TW_OK)
      rc = tw_buf_puts(out, ",\"tags\":[");
    for (size_t i = 0; rc == TW_OK && i < count; i++) {
      if (i > 0)
        rc = tw_buf_putc(out, ',');
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(out, tags[first + i],
                                    strlen(tags[first + i]));
    }
    if (rc == TW_OK)
      rc = tw_buf_puts(out, "]}");
    if (rc != TW_OK) {
      tw_buf_truncate(out, len);
      rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
    }
  }
  if (rc == TW_OK && more != NULL)
    *more = first + count < ntags;
  tw__reg_names_free(tags, ntags);
  tw_buf_fini(&dir);
  tw_reg_err_finish(e);
  return rc;
}
