/*
 * store.c - the local model store (twin/store.h): an OCI image layout
 * whose blobs are named by their SHA-256 digest.
 *
 * Invariants: blobs are only ever created by renaming a complete, synced
 * and verified file of the store's upload area (DIR/uploads/: writers'
 * ".tmp-blob-XXXXXX" temporaries and the registry's upload sessions) onto
 * their name, under the shared store lock, so a crash leaves at most a
 * stray file under uploads/, never a partial blob, and garbage collection
 * (which holds the lock exclusively) never races a rename; and every read
 * hashes what it returns, so a blob damaged on disk is an error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
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
    tw_buf_reset(&blobs);
    if (rc == TW_OK && tw_buf_printf(&blobs, "%s/uploads", d.data) != TW_OK)
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

/* True for a "sha512:" digest (the caller checked it). */
static bool is_sha512(const char *digest) {
  return strncmp(digest, "sha512:", 7) == 0;
}

/* Checks digest; sha512 digests too when sha512_ok. */
static int check_digest(const char *digest, bool sha512_ok, tw_err *err) {
  const char *colon = strchr(digest, ':');
  if (colon == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "'%.80s' is not a digest (sha256:<64 hex digits>)",
                      digest);
  bool sha512 = sha512_ok && (size_t)(colon - digest) == 6 &&
                strncmp(digest, "sha512", 6) == 0;
  if (!sha512 &&
      ((size_t)(colon - digest) != 6 || strncmp(digest, "sha256", 6) != 0))
    return tw_err_set(err, TW_EINVAL,
                      "digest '%.80s': algorithm '%.*s' is not supported "
                      "(%s only)",
                      digest, (int)(colon - digest < 32 ? colon - digest : 32),
                      digest, sha512_ok ? "sha256 and sha512" : "sha256");
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
  size_t want = sha512 ? TW_SHA512_HEX_LEN : TW_SHA256_HEX_LEN;
  if (n != want)
    return tw_err_set(err, TW_EINVAL,
                      "digest '%.80s': %zu hex digits, a %s digest has %zu",
                      digest, n, sha512 ? "sha512" : "sha256", want);
  return TW_OK;
}

int tw_store_digest_check(const char *digest, tw_err *err) {
  return check_digest(digest, false, err);
}

int tw_store_digest_check_any(const char *digest, tw_err *err) {
  return check_digest(digest, true, err);
}

int tw_store_blob_path(const tw_store *s, const char *digest, tw_buf *out,
                       tw_err *err) {
  int rc = tw_store_digest_check_any(digest, err);
  if (rc != TW_OK)
    return rc;
  if (tw_buf_printf(out, "%s/blobs/%.6s/%s", s->dir, digest, digest + 7) !=
      TW_OK)
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

/* got holds n bytes of the digest of the blob digest (same algorithm). */
static int corrupt(tw_err *err, const tw_store *s, const char *digest,
                   const uint8_t *got, size_t n) {
  char hex[TW_SHA512_HEX_LEN + 1];
  tw_hex_encode(got, n, hex);
  return tw_err_set(err, TW_EDIGEST,
                    "model store %s: blob %s is corrupt: its content hashes "
                    "to %.6s:%s (remove it and add the model again)",
                    s->dir, digest, digest, hex);
}

/* Whether got, a digest of digest's algorithm, is digest (checked). */
static bool matches(const char *digest, const uint8_t *got) {
  size_t n = is_sha512(digest) ? TW_SHA512_LEN : TW_SHA256_LEN;
  uint8_t want[TW_SHA512_LEN];
  (void)tw_hex_decode(digest + 7, 2 * n, want, n);
  return memcmp(want, got, n) == 0;
}

int tw_store_read(const tw_store *s, const char *digest, size_t max_bytes,
                  tw_buf *out, tw_err *err) {
  tw_buf path = TW_BUF_INIT;
  int rc = existing_blob(s, digest, &path, err);
  size_t len = out->len;
  if (rc == TW_OK)
    rc = tw_file_read_all(path.data, max_bytes, out, err);
  uint8_t got[TW_SHA512_LEN];
  if (rc == TW_OK) {
    bool sha512 = is_sha512(digest);
    rc = sha512 ? tw_sha512(out->data + len, out->len - len, got)
                : tw_sha256(out->data + len, out->len - len, got);
    if (rc != TW_OK)
      rc = tw_err_set(err, rc, "model store: cannot hash %s", digest);
    else if (!matches(digest, got))
      rc = corrupt(err, s, digest, got, sha512 ? TW_SHA512_LEN : TW_SHA256_LEN);
    if (rc != TW_OK)
      tw_buf_truncate(out, len);
  }
  tw_buf_fini(&path);
  return rc;
}

int tw_store_verify(const tw_store *s, const char *digest, tw_err *err) {
  tw_buf path = TW_BUF_INIT;
  int rc = existing_blob(s, digest, &path, err);
  uint8_t got[TW_SHA512_LEN];
  bool sha512 = rc == TW_OK && is_sha512(digest);
  if (rc == TW_OK)
    rc = sha512 ? tw_sha512_file(path.data, got, err)
                : tw_sha256_file(path.data, got, err);
  if (rc == TW_OK && !matches(digest, got))
    rc = corrupt(err, s, digest, got, sha512 ? TW_SHA512_LEN : TW_SHA256_LEN);
  tw_buf_fini(&path);
  return rc;
}

/* --- Writers ------------------------------------------------------------ */

struct tw_store_writer {
  tw_store *s;
  char *path;
  int fd;
  uint64_t size;
  tw_sha256_state *h;
  bool owns_file; /* a temporary of tw_store_writer_open */
  bool finished;  /* commit was tried: no more bytes */
  bool committed; /* the file is a blob now */
};

/* DIR/uploads, created when missing (stores made before it existed). */
static int uploads_dir(const tw_store *s, tw_buf *out, tw_err *err) {
  if (tw_buf_printf(out, "%s/uploads", s->dir) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  if (mkdir(out->data, 0755) != 0 && errno != EEXIST)
    return tw_err_sys(err, errno, "%s: cannot create the directory", out->data);
  return TW_OK;
}

static int writer_new(tw_store *s, tw_store_writer **out, tw_err *err) {
  tw_store_writer *w = tw_calloc(1, sizeof *w);
  if (w == NULL || tw_sha256_new(&w->h) != TW_OK) {
    tw_free(w);
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  }
  w->s = s;
  w->fd = -1;
  *out = w;
  return TW_OK;
}

int tw_store_writer_open(tw_store *s, tw_store_writer **out, tw_err *err) {
  tw_store_writer *w = NULL;
  tw_buf p = TW_BUF_INIT;
  int rc = writer_new(s, &w, err);
  if (rc == TW_OK)
    rc = uploads_dir(s, &p, err);
  if (rc == TW_OK && tw_buf_puts(&p, "/.tmp-blob-XXXXXX") != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  if (rc == TW_OK && (w->fd = mkostemp(p.data, O_CLOEXEC)) < 0)
    rc = tw_err_sys(err, errno, "%s: cannot create a temporary file", p.data);
  if (rc == TW_OK) {
    w->owns_file = true;
    w->path = tw_buf_take(&p, NULL);
    if (w->path == NULL) {
      (void)unlink(p.data);
      rc = tw_err_set(err, TW_ENOMEM, "model store: out of memory");
    }
  }
  if (rc != TW_OK) {
    if (w != NULL && w->fd >= 0)
      close(w->fd);
    if (w != NULL)
      w->fd = -1, w->owns_file = false;
    tw_store_writer_close(w);
    tw_buf_fini(&p);
    return rc;
  }
  *out = w;
  return TW_OK;
}

/* Hashes the first n bytes of w's file into w's hasher. */
static int rehash(tw_store_writer *w, uint64_t n, tw_err *err) {
  char *buf = tw_alloc(COPY_CHUNK);
  if (buf == NULL)
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  int rc = TW_OK;
  for (uint64_t done = 0; rc == TW_OK && done < n;) {
    size_t want = n - done < COPY_CHUNK ? (size_t)(n - done) : COPY_CHUNK;
    ssize_t got = pread(w->fd, buf, want, (off_t)done);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      rc = tw_err_sys(err, errno, "%s: read failed", w->path);
    else if (got == 0)
      rc = tw_err_set(err, TW_ERANGE, "%s: shorter than %llu bytes", w->path,
                      (unsigned long long)n);
    else if (tw_sha256_update(w->h, buf, (size_t)got) != TW_OK)
      rc = tw_err_set(err, TW_EINTERNAL, "%s: cannot hash", w->path);
    else
      done += (uint64_t)got;
  }
  tw_free(buf);
  return rc;
}

int tw_store_writer_resume(tw_store *s, const char *path, uint64_t offset,
                           tw_store_writer **out, tw_err *err) {
  tw_store_writer *w = NULL;
  int rc = writer_new(s, &w, err);
  if (rc == TW_OK && (w->path = tw_strdup(path)) == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  if (rc == TW_OK && (w->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
    rc = tw_err_sys(err, errno, "%s: cannot open", path);
  struct stat st;
  if (rc == TW_OK && fstat(w->fd, &st) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot stat", path);
  if (rc == TW_OK && !S_ISREG(st.st_mode))
    rc = tw_err_set(err, TW_EINVAL, "%s: not a regular file", path);
  if (rc == TW_OK && (uint64_t)st.st_size < offset)
    rc = tw_err_set(err, TW_ERANGE, "%s: %lld bytes, the upload recorded %llu",
                    path, (long long)st.st_size, (unsigned long long)offset);
  if (rc == TW_OK && (uint64_t)st.st_size > offset &&
      ftruncate(w->fd, (off_t)offset) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot truncate", path);
  if (rc == TW_OK)
    rc = rehash(w, offset, err);
  if (rc == TW_OK && lseek(w->fd, (off_t)offset, SEEK_SET) < 0)
    rc = tw_err_sys(err, errno, "%s: cannot seek", path);
  if (rc != TW_OK) {
    tw_store_writer_close(w);
    return rc;
  }
  w->size = offset;
  *out = w;
  return TW_OK;
}

int tw_store_writer_append(tw_store_writer *w, const void *data, size_t n,
                           tw_err *err) {
  if (w->finished)
    return tw_err_set(err, TW_ESTATE, "%s: the blob was committed", w->path);
  if (n == 0)
    return TW_OK;
  /* Written first, hashed after: a failed write leaves the hasher as it
   * was, so cutting the file back keeps the writer usable. */
  int rc = tw_file_write_all(w->fd, w->path, data, n, err);
  if (rc == TW_OK && tw_sha256_update(w->h, data, n) != TW_OK) {
    rc = tw_err_set(err, TW_EINTERNAL, "%s: cannot hash", w->path);
    w->finished = true;
  }
  if (rc != TW_OK) {
    if (ftruncate(w->fd, (off_t)w->size) != 0 ||
        lseek(w->fd, (off_t)w->size, SEEK_SET) < 0)
      w->finished = true;
    return rc;
  }
  w->size += n;
  return TW_OK;
}

uint64_t tw_store_writer_size(const tw_store_writer *w) { return w->size; }

int tw_store_writer_sync(tw_store_writer *w, tw_err *err) {
  if (fdatasync(w->fd) != 0)
    return tw_err_sys(err, errno, "%s: fsync failed", w->path);
  return TW_OK;
}

int tw_store_lock(const tw_store *s, bool exclusive, int *fd, tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  if (tw_buf_printf(&p, "%s/.lock", s->dir) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  int rc = TW_OK;
  int f = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (f < 0)
    rc = tw_err_sys(err, errno, "%s: cannot open", p.data);
  while (rc == TW_OK && flock(f, exclusive ? LOCK_EX : LOCK_SH) != 0) {
    if (errno != EINTR)
      rc = tw_err_sys(err, errno, "%s: cannot lock", p.data);
  }
  if (rc != TW_OK && f >= 0)
    close(f);
  tw_buf_fini(&p);
  if (rc == TW_OK)
    *fd = f;
  return rc;
}

void tw_store_unlock(int fd) {
  if (fd >= 0)
    close(fd); /* releases the flock */
}

/* Checks that the writer's file hashes to the sha512 digest want, and
 * makes blobs/sha512 when it is missing. */
static int check_sha512(tw_store_writer *w, const char *want, tw_err *err) {
  uint8_t got[TW_SHA512_LEN];
  int rc = tw_sha512_file(w->path, got, err);
  if (rc == TW_OK && !matches(want, got)) {
    char hex[TW_SHA512_HEX_LEN + 1];
    tw_hex_encode(got, TW_SHA512_LEN, hex);
    rc = tw_err_set(err, TW_EDIGEST,
                    "blob upload: the content hashes to sha512:%s, not %s", hex,
                    want);
  }
  tw_buf dir = TW_BUF_INIT;
  if (rc == TW_OK && tw_buf_printf(&dir, "%s/blobs/sha512", w->s->dir) != 0)
    rc = tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  if (rc == TW_OK && mkdir(dir.data, 0755) != 0 && errno != EEXIST)
    rc = tw_err_sys(err, errno, "%s: cannot create the directory", dir.data);
  tw_buf_fini(&dir);
  return rc;
}

int tw_store_writer_commit(tw_store_writer *w, const char *expect_digest,
                           int64_t expect_size,
                           char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err) {
  if (w->finished)
    return tw_err_set(err, TW_ESTATE, "%s: the blob was committed", w->path);
  w->finished = true;
  int rc = expect_digest != NULL ? tw_store_digest_check_any(expect_digest, err)
                                 : TW_OK;
  bool sha512 =
      rc == TW_OK && expect_digest != NULL && is_sha512(expect_digest);
  if (rc == TW_OK && expect_size >= 0 && (uint64_t)expect_size != w->size)
    rc = tw_err_set(err, TW_ERANGE,
                    "blob upload: %llu bytes received, %lld announced",
                    (unsigned long long)w->size, (long long)expect_size);
  uint8_t md[TW_SHA256_LEN];
  char d[TW_STORE_DIGEST_LEN + 1];
  if (rc == TW_OK && tw_sha256_final(w->h, md) != TW_OK)
    rc = tw_err_set(err, TW_EINTERNAL, "%s: cannot hash", w->path);
  if (rc == TW_OK) {
    memcpy(d, "sha256:", sizeof "sha256:");
    tw_hex_encode(md, TW_SHA256_LEN, d + 7);
    if (expect_digest != NULL && !sha512 && strcmp(d, expect_digest) != 0)
      rc = tw_err_set(err, TW_EDIGEST,
                      "blob upload: the content hashes to %s, not %s", d,
                      expect_digest);
  }
  /* Blobs are as readable as other files; mkstemp made it 0600. */
  mode_t mask = umask(0);
  umask(mask);
  if (rc == TW_OK && fchmod(w->fd, 0644 & ~mask) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot set the mode", w->path);
  if (rc == TW_OK && fsync(w->fd) != 0)
    rc = tw_err_sys(err, errno, "%s: fsync failed", w->path);
  /* A sha512 blob is hashed again from its file: the writer hashes with
   * sha256 as it goes, before anyone says which digest is wanted. */
  if (rc == TW_OK && sha512)
    rc = check_sha512(w, expect_digest, err);
  tw_buf blob = TW_BUF_INIT;
  if (rc == TW_OK)
    rc = tw_store_blob_path(w->s, sha512 ? expect_digest : d, &blob, err);
  int lock = -1;
  if (rc == TW_OK)
    rc = tw_store_lock(w->s, false, &lock, err);
  if (rc == TW_OK && rename(w->path, blob.data) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot rename '%s' into place", blob.data,
                    w->path);
  tw_store_unlock(lock);
  if (rc == TW_OK) {
    w->committed = true;
    rc = tw_file_sync_dir(blob.data, err);
  }
  if (rc == TW_OK && digest != NULL)
    memcpy(digest, d, sizeof d);
  tw_buf_fini(&blob);
  return rc;
}

void tw_store_writer_close(tw_store_writer *w) {
  if (w == NULL)
    return;
  if (w->fd >= 0)
    close(w->fd);
  if (w->owns_file && !w->committed && w->path != NULL)
    (void)unlink(w->path);
  tw_sha256_free(w->h);
  tw_free(w->path);
  tw_free(w);
}

int tw_store_add(tw_store *s, const void *data, size_t n,
                 const char *expect_digest,
                 char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err) {
  tw_store_writer *w = NULL;
  int rc = tw_store_writer_open(s, &w, err);
  if (rc == TW_OK)
    rc = tw_store_writer_append(w, data, n, err);
  if (rc == TW_OK)
    rc = tw_store_writer_commit(w, expect_digest, -1, digest, err);
  tw_store_writer_close(w);
  return rc;
}

int tw_store_stat(const tw_store *s, const char *digest, int64_t *size,
                  tw_err *err) {
  tw_buf path = TW_BUF_INIT;
  int rc = existing_blob(s, digest, &path, err);
  struct stat st;
  if (rc == TW_OK && size != NULL) {
    if (stat(path.data, &st) != 0)
      rc = tw_err_sys(err, errno, "%s: cannot stat", path.data);
    else
      *size = (int64_t)st.st_size;
  }
  tw_buf_fini(&path);
  return rc;
}

/* Removes the entries of dir whose names start with prefix and that were
 * last modified before cutoff. */
static int remove_stale(const char *dir, const char *prefix, time_t cutoff,
                        size_t *removed, tw_err *err) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? TW_OK
                           : tw_err_sys(err, errno, "%s: cannot list", dir);
  struct stat st;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || st.st_mtime >= cutoff)
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0 && removed != NULL)
      (*removed)++;
  }
  closedir(d);
  return TW_OK;
}

int tw_store_uploads_gc(tw_store *s, int64_t max_age_s, size_t *removed,
                        tw_err *err) {
  time_t cutoff = time(NULL) - (time_t)max_age_s;
  tw_buf p = TW_BUF_INIT;
  if (tw_buf_printf(&p, "%s/uploads", s->dir) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "model store: out of memory");
  int rc = remove_stale(p.data, ".tmp-", cutoff, removed, err);
  /* Temporaries of stores written before the upload area existed. */
  if (rc == TW_OK)
    rc = remove_stale(s->dir, ".tmp-blob-", cutoff, removed, err);
  tw_buf_fini(&p);
  return rc;
}

/* Copies fd_in (path) into the writer w. */
static int copy_into(int fd_in, const char *path, tw_store_writer *w,
                     tw_err *err) {
  char *buf = tw_alloc(COPY_CHUNK);
  int rc = buf != NULL ? TW_OK
                       : tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  for (size_t got = 1; rc == TW_OK && got > 0;) {
    rc = tw_file_read_some(fd_in, path, buf, COPY_CHUNK, &got, err);
    if (rc == TW_OK && got > 0)
      rc = tw_store_writer_append(w, buf, got, err);
  }
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
  tw_store_writer *w = NULL;
  if (rc == TW_OK)
    rc = tw_store_writer_open(s, &w, err);
  if (rc == TW_OK)
    rc = copy_into(fd_in, path, w, err);
  if (rc == TW_OK)
    rc = tw_store_writer_commit(w, NULL, -1, digest, err);
  tw_store_writer_close(w);
  close(fd_in);
  return rc;
}
