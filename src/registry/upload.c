/*
 * upload.c - resumable blob upload sessions (POST, PATCH, PUT and DELETE of
 * /v2/<name>/blobs/uploads/...).
 *
 * A session is the directory uploads/<id>/ with "data", the bytes received
 * in order, and "state", {"name":..,"offset":N,"started":T} rewritten
 * atomically by each flush. Invariants: the first `offset` bytes of data
 * are durable and are what the client sent; bytes after them were never
 * acknowledged and are cut off when the session is reopened; a chunk is
 * accepted only at the current offset (the spec's 416 otherwise); the
 * blob appears in the store only by the rename of a verified data file
 * (twin/store.h), never before the digest matched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry_int.h"
#include "twin/file.h"
#include "twin/hash.h"
#include "twin/json.h"

#define STATE_MAX 4096

struct tw_reg_upload {
  tw_reg *r;
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  char *name;
  int64_t started;
  tw_buf dir;
  tw_store_writer *w;
};

static bool valid_id(const char *id) {
  size_t i = 0;
  for (; id[i] != '\0'; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return i == TW_REG_UPLOAD_ID_LEN;
}

static bool is_session(const char *s) { return valid_id(s); }

/* Removes the files of a session directory, then the directory. */
static int remove_session(const char *dir, tw_err *err) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return errno == ENOENT ? TW_OK
                           : tw_err_sys(err, errno, "%s: cannot list", dir);
  /* The state first: from then on the session reads as unknown, never as
   * a state without its data. */
  (void)unlinkat(dirfd(d), "state", 0);
  for (struct dirent *de; (de = readdir(d)) != NULL;)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      (void)unlinkat(dirfd(d), de->d_name, 0);
  closedir(d);
  if (rmdir(dir) != 0 && errno != ENOENT)
    return tw_err_sys(err, errno, "%s: cannot remove", dir);
  return tw_file_sync_dir(dir, err);
}

static int write_state(tw_reg_upload *u, tw_err *err) {
  tw_buf s = TW_BUF_INIT, p = TW_BUF_INIT;
  int rc = tw_buf_puts(&s, "{\"name\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(&s, u->name, strlen(u->name));
  if (rc == TW_OK)
    rc = tw_buf_printf(&s, ",\"offset\":%llu,\"started\":%lld}\n",
                       (unsigned long long)tw_store_writer_size(u->w),
                       (long long)u->started);
  if (rc == TW_OK)
    rc = tw_buf_printf(&p, "%s/state", u->dir.data);
  if (rc != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  if (rc == TW_OK)
    rc = tw_file_write_atomic(p.data, s.data, s.len, err);
  tw_buf_fini(&s);
  tw_buf_fini(&p);
  return rc;
}

static tw_reg_upload *upload_alloc(tw_reg *r, const char *name,
                                   const char *id) {
  tw_reg_upload *u = tw_calloc(1, sizeof *u);
  if (u == NULL)
    return NULL;
  u->r = r;
  memcpy(u->id, id, TW_REG_UPLOAD_ID_LEN + 1);
  if ((u->name = tw_strdup(name)) == NULL ||
      tw__reg_path(r, &u->dir, "uploads/%s", id) != TW_OK) {
    tw_reg_upload_close(u);
    return NULL;
  }
  return u;
}

/* Opens the writer on the session's data at offset. */
static int open_data(tw_reg_upload *u, uint64_t offset, tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  int rc = tw_buf_printf(&p, "%s/data", u->dir.data) == TW_OK
               ? tw_store_writer_resume(u->r->store, p.data, offset, &u->w, err)
               : tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  tw_buf_fini(&p);
  return rc;
}

int tw_reg_upload_new(tw_reg *r, const char *name, tw_reg_upload **out,
                      tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc != TW_OK)
    return rc;
  uint8_t raw[TW_REG_UPLOAD_ID_LEN / 2];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
    return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_EIO,
                          "registry: no random bytes for an upload id");
  char id[TW_REG_UPLOAD_ID_LEN + 1];
  tw_hex_encode(raw, sizeof raw, id);
  tw_reg_upload *u = upload_alloc(r, name, id);
  if (u == NULL)
    return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM,
                          "registry: out of memory");
  u->started = (int64_t)time(NULL);
  bool made = false;
  tw_buf p = TW_BUF_INIT;
  if (mkdir(u->dir.data, 0700) != 0)
    rc = tw_err_sys(&e->err, errno, "%s: cannot create the directory",
                    u->dir.data);
  else
    made = true;
  int fd = -1;
  if (rc == TW_OK && tw_buf_printf(&p, "%s/data", u->dir.data) != TW_OK)
    rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  if (rc == TW_OK &&
      (fd = open(p.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
    rc = tw_err_sys(&e->err, errno, "%s: cannot create", p.data);
  if (fd >= 0)
    close(fd);
  if (rc == TW_OK)
    rc = open_data(u, 0, &e->err);
  if (rc == TW_OK)
    rc = write_state(u, &e->err);
  tw_buf_fini(&p);
  if (rc != TW_OK) {
    if (made)
      (void)remove_session(u->dir.data, NULL);
    tw_reg_upload_close(u);
    tw_reg_err_finish(e);
    return rc;
  }
  *out = u;
  return TW_OK;
}

static int unknown(tw_reg_err *e, const char *id) {
  return tw_reg_err_set(e, TW_REG_BLOB_UPLOAD_UNKNOWN, 0, TW_ENOENT,
                        "no upload '%.40s'", id);
}

int tw_reg_upload_open(tw_reg *r, const char *name, const char *id,
                       tw_reg_upload **out, tw_reg_err *e) {
  int rc = tw__reg_check_name(name, e);
  if (rc != TW_OK)
    return rc;
  if (id == NULL || !valid_id(id))
    return unknown(e, id != NULL ? id : "");
  tw_reg_upload *u = upload_alloc(r, name, id);
  if (u == NULL)
    return tw_reg_err_set(e, TW_REG_UNKNOWN, 0, TW_ENOMEM,
                          "registry: out of memory");
  tw_buf p = TW_BUF_INIT, s = TW_BUF_INIT;
  json_t *v = NULL;
  tw_err sub;
  tw_err_init(&sub);
  if (tw_buf_printf(&p, "%s/state", u->dir.data) != TW_OK)
    rc = tw_err_set(&e->err, TW_ENOMEM, "registry: out of memory");
  int src = rc == TW_OK ? tw__reg_read_small(p.data, STATE_MAX, &s, &sub) : rc;
  if (src == TW_ENOENT)
    rc = unknown(e, id);
  else if (src != TW_OK)
    rc = tw_err_copy(&e->err, &sub);
  if (rc == TW_OK)
    rc = tw_json_parse(s.data, s.len, p.data, &v, &e->err);
  const char *sname = json_string_value(json_object_get(v, "name"));
  json_t *off = json_object_get(v, "offset");
  if (rc == TW_OK &&
      (sname == NULL || !json_is_integer(off) || json_integer_value(off) < 0))
    rc = tw_err_set(&e->err, TW_EIO, "%s: not an upload state", p.data);
  /* Another repository's session is as good as none. */
  if (rc == TW_OK && strcmp(sname, name) != 0)
    rc = unknown(e, id);
  if (rc == TW_OK) {
    u->started = json_integer_value(json_object_get(v, "started"));
    rc = open_data(u, (uint64_t)json_integer_value(off), &e->err);
  }
  json_decref(v);
  tw_buf_fini(&p);
  tw_buf_fini(&s);
  if (rc != TW_OK) {
    tw_reg_upload_close(u);
    tw_reg_err_finish(e);
    return rc;
  }
  *out = u;
  return TW_OK;
}

const char *tw_reg_upload_id(const tw_reg_upload *u) { return u->id; }

uint64_t tw_reg_upload_offset(const tw_reg_upload *u) {
  return tw_store_writer_size(u->w);
}

int tw_reg_upload_append(tw_reg_upload *u, uint64_t offset, const void *data,
                         size_t n, tw_reg_err *e) {
  uint64_t at = tw_store_writer_size(u->w);
  if (offset != at)
    return tw_reg_err_set(e, TW_REG_BLOB_UPLOAD_INVALID, 416, TW_ERANGE,
                          "upload %s: the chunk starts at byte %llu, the "
                          "upload is at byte %llu",
                          u->id, (unsigned long long)offset,
                          (unsigned long long)at);
  int rc = tw_store_writer_append(u->w, data, n, &e->err);
  tw_reg_err_finish(e);
  return rc;
}

/* Whether the session's directory is still there (not expired). */
static bool session_exists(const tw_reg_upload *u) {
  struct stat st;
  return stat(u->dir.data, &st) == 0;
}

int tw_reg_upload_flush(tw_reg_upload *u, tw_reg_err *e) {
  if (!session_exists(u))
    return unknown(e, u->id);
  int rc = tw_store_writer_sync(u->w, &e->err);
  if (rc == TW_OK)
    rc = write_state(u, &e->err);
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_upload_commit(tw_reg_upload *u, const char *digest, int64_t size,
                         tw_reg_err *e) {
  int rc = tw__reg_check_blob_digest(digest, e);
  if (rc != TW_OK)
    return rc;
  if (!session_exists(u))
    return unknown(e, u->id);
  /* Held across the rename and the link, so a collection sees both or
   * neither (the blob is young anyway). */
  int lock = -1;
  rc = tw_store_lock(u->r->store, false, &lock, &e->err);
  if (rc == TW_OK) {
    rc = tw_store_writer_commit(u->w, digest, size, NULL, &e->err);
    if (rc == TW_EDIGEST)
      tw_reg_err_set(e, TW_REG_DIGEST_INVALID, 0, rc, "digest mismatch");
    else if (rc == TW_ERANGE)
      tw_reg_err_set(e, TW_REG_SIZE_INVALID, 0, rc, "size mismatch");
  }
  if (rc == TW_OK)
    rc = tw__reg_blob_link(u->r, u->name, digest, &e->err);
  tw_store_unlock(lock);
  /* Committed, or failed for good: the session is over either way. */
  if (rc == TW_OK || e->code == TW_REG_DIGEST_INVALID ||
      e->code == TW_REG_SIZE_INVALID)
    (void)remove_session(u->dir.data, NULL);
  tw_reg_err_finish(e);
  return rc;
}

int tw_reg_upload_cancel(tw_reg_upload *u, tw_reg_err *e) {
  if (!session_exists(u))
    return unknown(e, u->id);
  int rc = remove_session(u->dir.data, &e->err);
  tw_reg_err_finish(e);
  return rc;
}

void tw_reg_upload_close(tw_reg_upload *u) {
  if (u == NULL)
    return;
  tw_store_writer_close(u->w);
  tw_free(u->name);
  tw_buf_fini(&u->dir);
  tw_free(u);
}

/* The latest modification time of the session directory and its files. */
static time_t session_mtime(int dfd, const char *id) {
  struct stat st;
  time_t t = 0;
  if (fstatat(dfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
    t = st.st_mtime;
  static const char *const files[] = {"data", "state"};
  char p[TW_REG_UPLOAD_ID_LEN + 8];
  for (size_t i = 0; i < 2; i++) {
    (void)snprintf(p, sizeof p, "%s/%s", id, files[i]);
    if (fstatat(dfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime > t)
      t = st.st_mtime;
  }
  return t;
}

int tw_reg_upload_gc(tw_reg *r, int64_t max_age_s, size_t *removed,
                     tw_err *err) {
  tw_buf dir = TW_BUF_INIT, p = TW_BUF_INIT;
  char **ids = NULL;
  size_t n = 0;
  int rc = tw__reg_path(r, &dir, "uploads") == TW_OK
               ? tw__reg_list_dir(dir.data, is_session, &ids, &n, err)
               : tw_err_set(err, TW_ENOMEM, "registry: out of memory");
  int dfd =
      rc == TW_OK ? open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (rc == TW_OK && dfd < 0)
    rc = tw_err_sys(err, errno, "%s: cannot open", dir.data);
  time_t cutoff = time(NULL) - (time_t)max_age_s;
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    if (session_mtime(dfd, ids[i]) >= cutoff)
      continue;
    tw_buf_reset(&p);
    if (tw_buf_printf(&p, "%s/%s", dir.data, ids[i]) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "registry: out of memory");
    else
      rc = remove_session(p.data, err);
    if (rc == TW_OK && removed != NULL)
      (*removed)++;
  }
  if (dfd >= 0)
    close(dfd);
  if (rc == TW_OK)
    rc = tw_store_uploads_gc(r->store, max_age_s, NULL, err);
  tw__reg_names_free(ids, n);
  tw_buf_fini(&dir);
  tw_buf_fini(&p);
  return rc;
}
