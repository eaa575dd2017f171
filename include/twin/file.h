/*
 * file.h - reading and writing files the way every store in Twin needs.
 *
 * Reads retry EINTR and report errors as "PATH: what failed: strerror".
 * Whole-file reads take a byte limit, because a path given by a user or a
 * manifest may name /dev/zero or a 100 GB file. Writes that must never be
 * seen half-done (blobs, metrics for a scraper, fitted parameters) go
 * through tw_file_write_atomic: a temporary file in the same directory,
 * fsync, rename, then fsync of the directory, so after a crash the path
 * holds either the old content or the new, never a mix.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef TWIN_FILE_H
#define TWIN_FILE_H

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* Opens path read-only (close-on-exec). Returns the descriptor (>= 0), or a
 * negative TW code with "PATH: cannot open: REASON". */
TW_API int tw_file_open_read(const char *path, tw_err *err);

/* One read(2) of at most cap bytes into buf, retrying EINTR. *got is 0 at
 * end of file. path names the file in the message of a failure. */
TW_API int tw_file_read_some(int fd, const char *path, void *buf, size_t cap,
                             size_t *got, tw_err *err);

/* Appends the whole content of path to out. With max_bytes > 0, a file
 * larger than that fails with TW_ELIMIT ("PATH: larger than N bytes").
 * On failure out keeps its previous content. */
TW_API int tw_file_read_all(const char *path, size_t max_bytes, tw_buf *out,
                            tw_err *err);

/* Writes all of data[0..n) to fd, retrying short writes and EINTR. path
 * names the file in the message of a failure. */
TW_API int tw_file_write_all(int fd, const char *path, const void *data,
                             size_t n, tw_err *err);

/* Replaces path with data[0..n) atomically and durably (see above); the
 * file gets mode 0644 less the umask. On failure the temporary file is
 * removed and path is untouched. */
/* fsync of the directory holding path, so that a rename into it (or a
 * file created in it) is durable. */
TW_API int tw_file_sync_dir(const char *path, tw_err *err);

TW_API int tw_file_write_atomic(const char *path, const void *data, size_t n,
                                tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_FILE_H */
