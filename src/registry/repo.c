/*
 * repo.c - the registry's data directory and the blobs of repositories.
 *
 * DIR is a model store (twin/store.h: oci-layout, index.json,
 * blobs/sha256/<hex>, blobs/sha512/<hex>) with two more trees: repos/<name>/
 * holds what each repository has (links to blobs and manifests, tags,
 * referrers) and uploads/ the upload sessions and writers' temporaries
 * (docs/internals/registry.md).
 *
 * Invariants: a blob is visible in a repository only when its link file
 * and the blob itself both exist, so a blob removed by garbage collection
 * before its dangling link is swept is simply unknown; every file under
 * repos/ is replaced whole by a rename from uploads/, never written in
 * place.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry_int.h"
#include "twin/file.h"

int tw__reg_path(const tw_reg *r, tw_buf *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = tw_buf_printf(out, "%s/", r->dir);
  if (rc == TW_OK)
    rc = tw_buf_vprintf(out, fmt, ap);
  va_end(ap);
  return rc;
}

/* mkdir -p of the directories of path below DIR (which exists). */
static int make_parents(const tw_reg *r, const char *path, tw_err *err) {
  size_t base = strlen(r->dir) + 1;
  char *p = tw_strdup(path);
  if (p == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  int rc = TW_OK;
  for (char *s = p + base; *s != '\0' && rc == TW_OK; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
      rc = tw_err_sys(err, errno, "%s: cannot create the directory", p);
    *s = '/';
  }
  tw_free(p);
  return rc;
}

int tw__reg_put_file(const tw_reg *r, const char *path, const void *data,
                     size_t n, tw_err *err) {
  tw_buf tmp = TW_BUF_INIT;
  int rc = make_parents(r, path, err);
  if (rc == TW_OK && tw__reg_path(r, &tmp, "uploads/.tmp-file-XXXXXX") != 0)
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  int fd = -1;
  if (rc == TW_OK && (fd = mkostemp(tmp.data, O_CLOEXEC)) < 0)
    rc = tw_err_sys(err, errno, "%s: cannot create a temporary file", tmp.data);
  mode_t mask = umask(0);
  umask(mask);
  if (rc == TW_OK && fchmod(fd, 0644 & ~mask) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot set the mode", tmp.data);
  if (rc == TW_OK)
    rc = tw_file_write_all(fd, tmp.data, data, n, err);
  if (rc == TW_OK && fsync(fd) != 0)
    rc = tw_err_sys(err, errno, "%s: fsync failed", tmp.data);
  if (fd >= 0 && close(fd) != 0 && rc == TW_OK)
    rc = tw_err_sys(err, errno, "%s: close failed", tmp.data);
  if (rc == TW_OK && rename(tmp.data, path) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot rename '%s' into place", path,
                    tmp.data);
  if (rc != TW_OK && fd >= 0)
    (void)unlink(tmp.data);
  if (rc == TW_OK)
    rc = tw_file_sync_dir(path, err);
  tw_buf_fini(&tmp);
  return rc;
}

int tw__reg_read_small(const char *path, size_t max, tw_buf *out, tw_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return tw_err_sys(err, errno, "%s: cannot open", path);
  size_t len = out->len;
  int rc = tw_buf_reserve(out, max + 1) == TW_OK
               ? TW_OK
               : tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  while (rc == TW_OK) {
    size_t got = 0;
    rc = tw_file_read_some(fd, path, out->data + out->len,
                           max + 1 - (out->len - len), &got, err);
    if (rc != TW_OK || got == 0)
      break;
    out->len += got;
    out->data[out->len] = '\0';
    if (out->len - len > max)
      rc = tw_err_set(err, TW_ELIMIT, "%s: larger than %zu bytes", path, max);
  }
  close(fd);
  if (rc != TW_OK)
    tw_buf_truncate(out, len);
  return rc;
}

int tw__reg_remove(const char *path, tw_err *err) {
  if (unlink(path) != 0)
    return tw_err_sys(err, errno, "%s: cannot remove", path);
  return tw_file_sync_dir(path, err);
}

int tw__reg_check_name(const char *name, tw_reg_err *e) {
  if (name == NULL ||
      tw_reg_name_check(name, strlen(name), e ? &e->err : NULL) != TW_OK)
    return tw_reg_err_set(e, TW_REG_NAME_INVALID, 0, TW_EINVAL,
                          "invalid repository name");
  return TW_OK;
}

int tw__reg_check_blob_digest(const char *digest, tw_reg_err *e) {
  if (digest == NULL || tw_reg_blob_digest_check(digest, strlen(digest),
                                                 e ? &e->err : NULL) != TW_OK)
    return tw_reg_err_set(e, TW_REG_DIGEST_INVALID, 0, TW_EINVAL,
                          "invalid digest");
  return TW_OK;
}

int tw_reg_open(const char *dir, tw_reg **out, tw_err *err) {
  tw_store *s = NULL;
  int rc = tw_store_open(dir, true, &s, err);
  tw_reg *r = rc == TW_OK ? tw_calloc(1, sizeof *r) : NULL;
  if (rc == TW_OK && r == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  tw_buf p = TW_BUF_INIT;
  static const char *const dirs[] = {"repos", "uploads"};
  for (size_t i = 0; rc == TW_OK && i < 2; i++) {
    tw_buf_reset(&p);
    if (tw_buf_printf(&p, "%s/%s", tw_store_dir(s), dirs[i]) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "registry: out of memory");
    else if (mkdir(p.data, 0755) != 0 && errno != EEXIST)
      rc = tw_err_sys(err, errno, "%s: cannot create the directory", p.data);
  }
  tw_buf_fini(&p);
  if (rc != TW_OK) {
    tw_free(r);
    tw_store_close(s);
    return rc;
  }
  r->store = s;
  r->dir = tw_store_dir(s);
  *out = r;
  return TW_OK;
}

void tw_reg_close(tw_reg *r) {
  if (r == NULL)
    return;
  tw_store_close(r->store);
  tw_free(r);
}

tw_store *tw_reg_store(tw_reg *r) { return r->store; }

static bool exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

bool tw_reg_repo_exists(tw_reg *r, const char *name) {
  if (tw__reg_check_name(name, NULL) != TW_OK)
    return false;
  static const char *const parts[] = {"_manifests", "_tags", "_blobs"};
  bool found = false;
  tw_buf p = TW_BUF_INIT;
  for (size_t i = 0; !found && i < 3; i++) {
    tw_buf_reset(&p);
    found = tw__reg_path(r, &p, "repos/%s/%s", name, parts[i]) == TW_OK &&
            exists(p.data);
  }
  tw_buf_fini(&p);
  return found;
}

bool tw__reg_blob_linked(const tw_reg *r, const char *name,
                         const char *digest) {
  tw_buf p = TW_BUF_INIT;
  bool ok =
      tw__reg_path(r, &p, "repos/%s/_blobs/%s", name, digest + 7) == TW_OK &&
      exists(p.data) && tw_store_stat(r->store, digest, NULL, NULL) == 0;
  tw_buf_fini(&p);
  return ok;
}

bool tw__reg_manifest_linked(const tw_reg *r, const char *name,
                             const char *digest) {
  tw_buf p = TW_BUF_INIT;
  bool ok = tw__reg_path(r, &p, "repos/%s/_manifests/%s", name, digest + 7) ==
                TW_OK &&
            exists(p.data) && tw_store_stat(r->store, digest, NULL, NULL) == 0;
  tw_buf_fini(&p);
  return ok;
}

int tw__reg_blob_link(const tw_reg *r, const char *name, const char *digest,
                      tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  int rc = tw__reg_path(r, &p, "repos/%s/_blobs/%s", name, digest + 7) == 0
               ? TW_OK
               : tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  if (rc == TW_OK && !exists(p.data))
    rc = tw__reg_put_file(r, p.data, "", 0, err);
  tw_buf_fini(&p);
  return rc;
}

int tw_reg_blob_stat(tw_reg *r, const char *name, const char *digest,
                     int64_t *size, tw_buf *path, tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = tw__reg_check_blob_digest(digest, e);
  if (rc != TW_OK)
    return rc;
  if (!tw__reg_blob_linked(r, name, digest))
    return tw_reg_err_set(e, TW_REG_BLOB_UNKNOWN, 0, TW_ENOENT,
                          "%s: no blob %s", name, digest);
  int64_t sz = 0;
  rc = tw_store_stat(r->store, digest, &sz, &e->err);
  if (rc == TW_OK && path != NULL)
    rc = tw_store_blob_path(r->store, digest, path, &e->err);
  if (rc == TW_OK && size != NULL)
    *size = sz;
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_blob_get(tw_reg *r, const char *name, const char *digest,
                    size_t max_bytes, tw_buf *out, tw_reg_err *e) {
  int rc = tw_reg_blob_stat(r, name, digest, NULL, NULL, e);
  if (rc == TW_OK)
    rc = tw_store_read(r->store, digest, max_bytes, out, &e->err);
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_blob_put(tw_reg *r, const char *name, const void *data, size_t n,
                    const char *digest,
                    char digest_out[TW_STORE_DIGEST_LEN + 1], tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK && digest != NULL)
    rc = tw__reg_check_blob_digest(digest, e);
  if (rc != TW_OK)
    return rc;
  char d[TW_STORE_DIGEST_LEN + 1];
  int lock = -1;
  rc = tw_store_lock(r->store, false, &lock, &e->err);
  if (rc == TW_OK) {
    rc = tw_store_add(r->store, data, n, digest, d, &e->err);
    if (rc == TW_EDIGEST)
      tw_reg_err_set(e, TW_REG_DIGEST_INVALID, 0, rc, "digest mismatch");
  }
  if (rc == TW_OK)
    rc = tw__reg_blob_link(r, name, digest != NULL ? digest : d, &e->err);
  tw_store_unlock(lock);
  if (rc == TW_OK && digest_out != NULL)
    memcpy(digest_out, d, sizeof d);
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_blob_mount(tw_reg *r, const char *name, const char *from,
                      const char *digest, tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = tw__reg_check_name(from, e);
  if (rc == TW_OK)
    rc = tw__reg_check_blob_digest(digest, e);
  if (rc != TW_OK)
    return rc;
  /* Under the shared lock, and the blob made young again: a collection
   * that starts after the lock is released sees the link; one that ran
   * before could not have removed a blob that from still linked...
   * unless from's link was dangling, which blob_linked rules out. */
  int lock = -1;
  rc = tw_store_lock(r->store, false, &lock, &e->err);
  if (rc == TW_OK && !tw__reg_blob_linked(r, from, digest))
    rc = tw_reg_err_set(e, TW_REG_BLOB_UNKNOWN, 0, TW_ENOENT,
                        "%s: no blob %s to mount", from, digest);
  tw_buf p = TW_BUF_INIT;
  if (rc == TW_OK && tw_store_blob_path(r->store, digest, &p, &e->err) == 0)
    (void)utimensat(AT_FDCWD, p.data, NULL, AT_SYMLINK_NOFOLLOW);
  if (rc == TW_OK)
    rc = tw__reg_blob_link(r, name, digest, &e->err);
  tw_store_unlock(lock);
  tw_buf_fini(&p);
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_blob_delete(tw_reg *r, const char *name, const char *digest,
                       tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc == TW_OK)
    rc = tw__reg_check_blob_digest(digest, e);
  if (rc != TW_OK)
    return rc;
  tw_buf p = TW_BUF_INIT;
  if (tw__reg_path(r, &p, "repos/%s/_blobs/%s", name, digest + 7) != 0)
    rc = tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM, "out of memory");
  if (rc == TW_OK && !exists(p.data))
    rc = tw_reg_err_set(e, TW_REG_BLOB_UNKNOWN, 0, TW_ENOENT, "%s: no blob %s",
                        name, digest);
  if (rc == TW_OK)
    rc = tw__reg_remove(p.data, &e->err);
  tw_buf_fini(&p);
  tw_reg_err_finish(e);
  return rc;
}

bool tw__reg_is_hex_name(const char *s) {
  size_t i = 0;
  for (; s[i] != '\0'; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return i == TW_SHA256_HEX_LEN || i == TW_SHA512_HEX_LEN;
}

void tw__reg_hex_digest(const char *hex, char out[TW_STORE_DIGEST_MAX + 1]) {
  size_t n = strlen(hex);
  assert(n == TW_SHA256_HEX_LEN || n == TW_SHA512_HEX_LEN);
  (void)snprintf(out, TW_STORE_DIGEST_MAX + 1, "%s:%s",
                 n == TW_SHA256_HEX_LEN ? "sha256" : "sha512", hex);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void tw__reg_names_free(char **names, size_t n) {
  for (size_t i = 0; names != NULL && i < n; i++)
    tw_free(names[i]);
  tw_free(names);
}

int tw__reg_list_dir(const char *dir, bool (*keep)(const char *name),
                     char ***names, size_t *n, tw_err *err) {
  *names = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT || errno == ENOTDIR
               ? TW_OK
               : tw_err_sys(err, errno, "%s: cannot list", dir);
  char **v = NULL;
  size_t len = 0, cap = 0;
  int rc = TW_OK;
  for (struct dirent *de; rc == TW_OK && (de = readdir(d)) != NULL;) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
        (keep != NULL && !keep(de->d_name)))
      continue;
    if (len == cap) {
      size_t nc = cap ? cap * 2 : 16;
      char **nv = tw_reallocarray(v, nc, sizeof *v);
      if (nv == NULL) {
        rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", dir);
        break;
      }
      v = nv;
      cap = nc;
    }
    if ((v[len] = tw_strdup(de->d_name)) == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", dir);
    else
      len++;
  }
  closedir(d);
  if (rc != TW_OK) {
    tw__reg_names_free(v, len);
    return rc;
  }
  if (len > 1)
    qsort(v, len, sizeof *v, cmp_names);
  *names = v;
  *n = len;
  return TW_OK;
}

int tw__reg_manifest_type(const tw_reg *r, const char *name, const char *digest,
                          tw_buf *out, tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  int rc = tw__reg_path(r, &p, "repos/%s/_manifests/%s", name, digest + 7) == 0
               ? TW_OK
               : tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  if (rc == TW_OK)
    rc = tw__reg_read_small(p.data, 256, out, err);
  tw_buf_fini(&p);
  return rc;
}
