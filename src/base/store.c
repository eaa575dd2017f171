/*
 * store.c - the local model store (twin/store.h): an OCI image layout
 * whose blobs are named by their SHA-256 digest.
 *
 * Invariants: blobs are only ever created by renaming a complete, synced
 * temporary file of the store's own directory (".tmp-blob-XXXXXX", as
 * the local layouts of container tools keep theirs) onto their name, so a
 * crash leaves at most a stray temporary, never a partial blob; and every
 * read hashes what it returns, so a blob damaged on disk is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/json.h"
#include "twin/store.h"

#define COPY_CHUNK ((size_t)64 << 10)

struct tw_store {
  char *dir;
};

static const char oci_layout[] = "{\"imageLayoutVersion\": \"1.0.0\"}\n";
static const char empty_index[] =
    "{\"schemaVersion\": 2, \"mediaType\": "
    "\"application/vnd.oci.image.index.v1+json\", \"manifests\": []}\n";

int tw_store_default_dir(tw_buf *out, tw_err *err) {
  const char *v = getenv("TWIN_STORE");
  int rc;
  if (v != NULL && v[0] != '\0') {
    rc = tw_buf_printf(out, "%s", v);
  } else if ((v = getenv("XDG_DATA_HOME")) != NULL && v[0] == '/') {
    rc = tw_buf_printf(out, "%s/twin/store", v);
  } else if ((v = getenv("HOME")) != NULL && v[0] != '\0') {
    rc = tw_buf_printf(out, "%s/.local/share/twin/store", v);
  } else {
    return tw_err_set(err, TW_ENOENT,
                      "model store: no directory (set TWIN_STORE or HOME, "
                      "or give --store DIR)");
  }
  if (rc != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  return TW_OK;
}

/* mkdir -p: every missing directory of path (a copy is cut in place). */
static int make_dirs(const char *path, tw_err *err) {
  char *p = tw_strdup(path);
  if (p == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  int rc = TW_OK;
  for (char *s = p + 1; rc == TW_OK; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
      rc = tw_err_sys(err, errno, "%s: cannot create the directory", p);
    *s = c;
    if (c == '\0')
      break;
  }
  tw_free(p);
  return rc;
}

/* Writes dir/name with text unless it exists. */
static int put_file(const char *dir, const char *name, const char *text,
                    tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  if (tw_buf_printf(&p, "%s/%s", dir, name) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", dir);
  struct stat st;
  int rc = TW_OK;
  if (stat(p.data, &st) != 0)
    rc = tw_file_write_atomic(p.data, text, strlen(text), err);
  tw_buf_fini(&p);
  return rc;
}

/* Without create: dir must hold an oci-layout of version 1.x. */
static int check_layout(const char *dir, tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  if (tw_buf_printf(&p, "%s/oci-layout", dir) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", dir);
  struct stat st;
  int rc = TW_OK;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    rc = tw_err_set(err, TW_ENOENT,
                    "model store %s does not exist (`twin model add` makes "
                    "it; --store DIR or TWIN_STORE name another)",
                    dir);
  } else if (stat(p.data, &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = tw_err_set(err, TW_ENOENT,
                    "%s is not a model store: it has no oci-layout file", dir);
  } else {
    json_t *v = NULL;
    tw_err e;
    tw_err_init(&e);
    rc = tw_json_load_file(p.data, &v, &e);
    const char *ver =
        rc == TW_OK
            ? json_string_value(json_object_get(v, "imageLayoutVersion"))
            : NULL;
    if (rc == TW_ENOMEM)
      tw_err_set(err, rc, "%s", e.msg);
    else if (rc != TW_OK || ver == NULL || strncmp(ver, "1.", 2) != 0)
      rc = tw_err_set(err, TW_EPARSE,
                      "%s: not an OCI image layout of version 1.x", p.data);
    json_decref(v);
  }
  tw_buf_fini(&p);
  return rc;
}

int tw_store_open(const char *dir, bool create, tw_store **out, tw_err *err) {
  tw_buf d = TW_BUF_INIT;
  int rc = dir != NULL ? (tw_buf_printf(&d, "%s", dir) != TW_OK
                              ? tw_err_set(err, TW_ENOMEM, "out of memory")
                              : TW_OK)
                       : tw_store_default_dir(&d, err);
  if (rc == TW_OK && d.len == 0)
    rc = tw_err_set(err, TW_EINVAL, "model store: an empty directory name");
  while (rc == TW_OK && d.len > 1 && d.data[d.len - 1] == '/')
    tw_buf_truncate(&d, d.len - 1);
  if (rc == TW_OK && create) {
    tw_buf blobs = TW_BUF_INIT;
    if (tw_buf_printf(&blobs, "%s/blobs/sha256", d.data) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
    if (rc == TW_OK)
      rc = make_dirs(blobs.data, err);
    if (rc == TW_OK)
      rc = put_file(d.data, "oci-layout", oci_layout, err);
    if (rc == TW_OK)
      rc = put_file(d.data, "index.json", empty_index, err);
    tw_buf_fini(&blobs);
  }
  if (rc == TW_OK)
    rc = check_layout(d.data, err);
  tw_store *s = rc == TW_OK ? tw_calloc(1, sizeof *s) : NULL;
  if (rc == TW_OK && s == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  if (rc != TW_OK) {
    tw_buf_fini(&d);
    return rc;
  }
  s->dir = tw_buf_take(&d, NULL);
  if (s->dir == NULL) {
    tw_free(s);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  *out = s;
  return TW_OK;
}

void tw_store_close(tw_store *s) {
  if (s == NULL)
    return;
  tw_free(s->dir);
  tw_free(s);
}

const char *tw_store_dir(const tw_store *s) { return s->dir; }

int tw_store_digest_check(const char *digest, tw_err *err) {
  const char *colon = strchr(digest, ':');
  if (colon == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "'%.80s' is not a digest (sha256:<64 hex digits>)",
                      digest);
  if ((size_t)(colon - digest) != 6 || strncmp(digest, "sha256", 6) != 0)
    return tw_err_set(err, TW_EINVAL,
                      "digest '%.80s': algorithm '%.*s' is not supported "
                      "(sha256 only)",
                      digest, (int)(colon - digest < 32 ? colon - digest : 32),
                      digest);
  const char *hex = colon + 1;
  size_t n = strlen(hex);
  for (size_t i = 0; i < n; i++) {
    char c = hex[i];
    if (c >= 'A' && c <= 'F')
      return tw_err_set(err, TW_EINVAL,
                        "digest '%.80s': hex digits must be lower case",
                        digest);
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return tw_err_set(err, TW_EINVAL,
                        "digest '%.80s': character %zu is not a hex digit",
                        digest, i + 1);
  }
  if (n != TW_SHA256_HEX_LEN)
    return tw_err_set(err, TW_EINVAL,
                      "digest '%.80s': %zu hex digits, a sha256 digest has "
                      "%d",
                      digest, n, TW_SHA256_HEX_LEN);
  return TW_OK;
}

int tw_store_blob_path(const tw_store *s, const char *digest, tw_buf *out,
                       tw_err *err) {
  int rc = tw_store_digest_check(digest, err);
  if (rc != TW_OK)
    return rc;
  if (tw_buf_printf(out, "%s/blobs/sha256/%s", s->dir, digest + 7) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  return TW_OK;
}

/* The blob's path, which must be a regular file there. */
static int existing_blob(const tw_store *s, const char *digest, tw_buf *path,
                         tw_err *err) {
  int rc = tw_store_blob_path(s, digest, path, err);
  if (rc != TW_OK)
    return rc;
  struct stat st;
  if (stat(path->data, &st) != 0) {
    if (errno == ENOENT)
      return tw_err_set(err, TW_ENOENT,
                        "%s is not in the model store %s (add the model with "
                        "`twin model add FILE`)",
                        digest, s->dir);
    return tw_err_sys(err, errno, "%s: cannot open", path->data);
  }
  if (!S_ISREG(st.st_mode))
    return tw_err_set(err, TW_EIO, "%s: not a regular file", path->data);
  return TW_OK;
}

static int corrupt(tw_err *err, const tw_store *s, const char *digest,
                   const uint8_t got[TW_SHA256_LEN]) {
  char hex[TW_SHA256_HEX_LEN + 1];
  tw_hex_encode(got, TW_SHA256_LEN, hex);
  return tw_err_set(err, TW_EDIGEST,
                    "model store %s: blob %s is corrupt: its content hashes "
                    "to sha256:%s (remove it and add the model again)",
                    s->dir, digest, hex);
}

int tw_store_read(const tw_store *s, const char *digest, size_t max_bytes,
                  tw_buf *out, tw_err *err) {
  tw_buf path = TW_BUF_INIT;
  int rc = existing_blob(s, digest, &path, err);
  size_t len = out->len;
  if (rc == TW_OK)
    rc = tw_file_read_all(path.data, max_bytes, out, err);
  uint8_t want[TW_SHA256_LEN], got[TW_SHA256_LEN];
  if (rc == TW_OK) {
    (void)tw_hex_decode(digest + 7, TW_SHA256_HEX_LEN, want, TW_SHA256_LEN);
    rc = tw_sha256(out->data + len, out->len - len, got);
    if (rc != TW_OK)
      rc = tw_err_set(err, rc, "model store: cannot hash %s", digest);
    else if (memcmp(want, got, TW_SHA256_LEN) != 0)
      rc = corrupt(err, s, digest, got);
    if (rc != TW_OK)
      tw_buf_truncate(out, len);
  }
  tw_buf_fini(&path);
  return rc;
}

int tw_store_verify(const tw_store *s, const char *digest, tw_err *err) {
  tw_buf path = TW_BUF_INIT;
  int rc = existing_blob(s, digest, &path, err);
  uint8_t want[TW_SHA256_LEN], got[TW_SHA256_LEN];
  if (rc == TW_OK)
    rc = tw_sha256_file(path.data, got, err);
  if (rc == TW_OK) {
    (void)tw_hex_decode(digest + 7, TW_SHA256_HEX_LEN, want, TW_SHA256_LEN);
    if (memcmp(want, got, TW_SHA256_LEN) != 0)
      rc = corrupt(err, s, digest, got);
  }
  tw_buf_fini(&path);
  return rc;
}

/* Copies fd_in (path) to fd_out (tmp), hashing it. */
static int copy_hashing(int fd_in, const char *path, int fd_out,
                        const char *tmp, uint8_t md[TW_SHA256_LEN],
                        tw_err *err) {
  tw_sha256_state *h = NULL;
  char *buf = tw_alloc(COPY_CHUNK);
  int rc = buf != NULL ? tw_sha256_new(&h) : TW_ENOMEM;
  if (rc != TW_OK)
    rc = tw_err_set(err, rc, "%s: out of memory", path);
  for (size_t got = 1; rc == TW_OK && got > 0;) {
    rc = tw_file_read_some(fd_in, path, buf, COPY_CHUNK, &got, err);
    if (rc == TW_OK && got > 0 && tw_sha256_update(h, buf, got) != TW_OK)
      rc = tw_err_set(err, TW_EINTERNAL, "%s: cannot hash", path);
    if (rc == TW_OK && got > 0)
      rc = tw_file_write_all(fd_out, tmp, buf, got, err);
  }
  if (rc == TW_OK && tw_sha256_final(h, md) != TW_OK)
    rc = tw_err_set(err, TW_EINTERNAL, "%s: cannot hash", path);
  tw_sha256_free(h);
  tw_free(buf);
  return rc;
}

int tw_store_add_file(tw_store *s, const char *path,
                      char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err) {
  int fd_in = tw_file_open_read(path, err);
  if (fd_in < 0)
    return fd_in;
  struct stat st;
  int rc = TW_OK;
  if (fstat(fd_in, &st) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot stat", path);
  else if (!S_ISREG(st.st_mode))
    rc = tw_err_set(err, TW_EINVAL, "%s: not a regular file", path);
  tw_buf tmp = TW_BUF_INIT, blob = TW_BUF_INIT;
  if (rc == TW_OK && tw_buf_printf(&tmp, "%s/.tmp-blob-XXXXXX", s->dir) != 0)
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  int fd = -1;
  if (rc == TW_OK && (fd = mkostemp(tmp.data, O_CLOEXEC)) < 0)
    rc = tw_err_sys(err, errno, "%s: cannot create a temporary file", tmp.data);
  uint8_t md[TW_SHA256_LEN];
  if (rc == TW_OK)
    rc = copy_hashing(fd_in, path, fd, tmp.data, md, err);
  /* Blobs are as readable as other files; mkstemp made it 0600. */
  mode_t mask = umask(0);
  umask(mask);
  if (rc == TW_OK && fchmod(fd, 0644 & ~mask) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot set the mode", tmp.data);
  if (rc == TW_OK && fsync(fd) != 0)
    rc = tw_err_sys(err, errno, "%s: fsync failed", tmp.data);
  if (fd >= 0 && close(fd) != 0 && rc == TW_OK)
    rc = tw_err_sys(err, errno, "%s: close failed", tmp.data);
  char d[TW_STORE_DIGEST_LEN + 1];
  if (rc == TW_OK) {
    memcpy(d, "sha256:", sizeof "sha256:");
    tw_hex_encode(md, TW_SHA256_LEN, d + 7);
    rc = tw_store_blob_path(s, d, &blob, err);
  }
  if (rc == TW_OK && rename(tmp.data, blob.data) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot rename '%s' into place", blob.data,
                    tmp.data);
  if (rc != TW_OK && fd >= 0)
    (void)unlink(tmp.data);
  if (rc == TW_OK)
    rc = tw_file_sync_dir(blob.data, err);
  if (rc == TW_OK)
    memcpy(digest, d, sizeof d);
  close(fd_in);
  tw_buf_fini(&tmp);
  tw_buf_fini(&blob);
  return rc;
}
