/*
 * file.c - file reading with limits and atomic, durable replacement.
 *
 * Invariant of tw_file_write_atomic: the temporary file lives in the
 * destination's directory (rename(2) is atomic only within a filesystem)
 * and carries a unique suffix from mkstemp, so concurrent writers of the
 * same path never share a temporary; the last rename wins whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/file.h"

int tw_file_open_read(const char *path, tw_err *err) {
  int fd;
  do
    fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return tw_err_sys(err, errno, "%s: cannot open", path);
  return fd;
}

int tw_file_read_some(int fd, const char *path, void *buf, size_t cap,
                      size_t *got, tw_err *err) {
  for (;;) {
    ssize_t n = read(fd, buf, cap);
    if (n >= 0) {
      *got = (size_t)n;
      return TW_OK;
    }
    if (errno != EINTR)
      return tw_err_sys(err, errno, "%s: read failed", path);
  }
}

static int read_fd(int fd, const char *path, size_t max_bytes, tw_buf *b,
                   tw_err *err) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return tw_err_sys(err, errno, "%s: cannot stat", path);
  /* Regular files announce their size: reserve once, fail early. */
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    if (max_bytes != 0 && (uint64_t)st.st_size > max_bytes)
      return tw_err_set(err, TW_ELIMIT, "%s: larger than %zu bytes", path,
                        max_bytes);
    if ((uint64_t)st.st_size >= SIZE_MAX ||
        tw_buf_reserve(b, (size_t)st.st_size) != TW_OK)
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory reading file", path);
  }
  size_t start = b->len;
  for (;;) {
    if (b->cap - b->len < 4096 && tw_buf_reserve(b, (size_t)64 * 1024) != TW_OK)
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory reading file", path);
    size_t got = 0;
    int rc = tw_file_read_some(fd, path, b->data + b->len, b->cap - b->len - 1,
                               &got, err);
    if (rc != TW_OK)
      return rc;
    if (got == 0)
      return TW_OK;
    b->len += got;
    b->data[b->len] = '\0';
    if (max_bytes != 0 && b->len - start > max_bytes)
      return tw_err_set(err, TW_ELIMIT, "%s: larger than %zu bytes", path,
                        max_bytes);
  }
}

int tw_file_read_all(const char *path, size_t max_bytes, tw_buf *out,
                     tw_err *err) {
  int fd = tw_file_open_read(path, err);
  if (fd < 0)
    return fd;
  size_t len = out->len;
  int rc = read_fd(fd, path, max_bytes, out, err);
  close(fd);
  if (rc != TW_OK)
    tw_buf_truncate(out, len);
  return rc;
}

int tw_file_write_all(int fd, const char *path, const void *buf, size_t n,
                      tw_err *err) {
  const char *data = buf;
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return tw_err_sys(err, errno, "%s: write failed", path);
    }
    data += w;
    n -= (size_t)w;
  }
  return TW_OK;
}

int tw_file_sync_dir(const char *path, tw_err *err) {
  char *copy = tw_strdup(path);
  if (copy == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  const char *dir = dirname(copy);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = TW_OK;
  if (fd < 0 || fsync(fd) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot sync directory '%s'", path, dir);
  if (fd >= 0)
    close(fd);
  tw_free(copy);
  return rc;
}

int tw_file_write_atomic(const char *path, const void *data, size_t n,
                         tw_err *err) {
  tw_buf tmp = TW_BUF_INIT;
  if (tw_buf_printf(&tmp, "%s.tmp-XXXXXX", path) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  int fd = mkostemp(tmp.data, O_CLOEXEC);
  if (fd < 0) {
    int rc = tw_err_sys(err, errno, "%s: cannot create a temporary file", path);
    tw_buf_fini(&tmp);
    return rc;
  }
  /* mkstemp makes 0600; a result file is as readable as any other. */
  mode_t mask = umask(0);
  umask(mask);
  int rc = TW_OK;
  if (fchmod(fd, 0644 & ~mask) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot set the mode", tmp.data);
  if (rc == TW_OK)
    rc = tw_file_write_all(fd, tmp.data, data, n, err);
  if (rc == TW_OK && fsync(fd) != 0)
    rc = tw_err_sys(err, errno, "%s: fsync failed", tmp.data);
  if (close(fd) != 0 && rc == TW_OK)
    rc = tw_err_sys(err, errno, "%s: close failed", tmp.data);
  if (rc == TW_OK && rename(tmp.data, path) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot rename '%s' into place", path,
                    tmp.data);
  if (rc != TW_OK)
    (void)unlink(tmp.data);
  else
    rc = tw_file_sync_dir(path, err);
  tw_buf_fini(&tmp);
  return rc;
}
