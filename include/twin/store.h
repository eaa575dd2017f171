/*
 * twin/store.h - the local model store: a content-addressed directory of
 * blobs named by their SHA-256 digest, laid out as an OCI image layout
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md):
 *
 *   DIR/oci-layout              {"imageLayoutVersion": "1.0.0"}
 *   DIR/index.json              {"schemaVersion": 2, "manifests": [...]}
 *   DIR/blobs/sha256/<64 hex>   the content whose digest is the name
 *   DIR/uploads/                blobs being written (writers, sessions)
 *   DIR/.lock                   flock(2): shared by adders, exclusive by GC
 *
 * Graphs name models by digest ("wasm:sha256:<64 hex>", docs/graph.md),
 * `twin model add` puts them here, and the registry serves its blobs from
 * the same layout. The default directory is $TWIN_STORE, else
 * $XDG_DATA_HOME/twin/store, else $HOME/.local/share/twin/store
 * (docs/adr/0007-local-model-store.md).
 *
 * Invariants: a blob appears under its name whole or not at all (written
 * to a file under DIR/uploads, verified, synced, renamed, the directory
 * synced), and
 * what tw_store_read returns hashes to the digest asked for: a blob whose
 * content does not is reported (TW_EDIGEST), never returned.
 *
 * Thread safety: a tw_store is immutable once open, so any thread may use
 * it; several processes may add to one store at once (the last rename of
 * a blob wins, with the same bytes).
 */
#ifndef TWIN_STORE_H
#define TWIN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"
#include "twin/hash.h"

TW_EXTERN_C_BEGIN

/* "sha256:" and 64 lowercase hex digits, without the terminator. */
#define TW_STORE_DIGEST_LEN (7 + TW_SHA256_HEX_LEN)
/* The longest digest a blob may be named by: "sha512:" and 128 hex. */
#define TW_STORE_DIGEST_MAX (7 + TW_SHA512_HEX_LEN)

typedef struct tw_store tw_store;

/* Appends the default store directory to out: $TWIN_STORE, else
 * $XDG_DATA_HOME/twin/store, else $HOME/.local/share/twin/store (empty or
 * relative XDG_DATA_HOME is ignored, as the XDG spec says). TW_ENOENT
 * when none of them is set. */
TW_API int tw_store_default_dir(tw_buf *out, tw_err *err);

/* Opens the store in dir (NULL: the default). With create, makes the
 * directory and its layout (oci-layout, index.json, blobs/sha256) when
 * they are missing; without, a missing directory or one without an
 * oci-layout file is TW_ENOENT naming it. *out is freed with
 * tw_store_close. */
TW_API int tw_store_open(const char *dir, bool create, tw_store **out,
                         tw_err *err);
/* NULL is a no-op. */
TW_API void tw_store_close(tw_store *s);
/* The store's directory (borrowed; lives as long as s). */
TW_API const char *tw_store_dir(const tw_store *s);

/* Checks that digest is "sha256:" and 64 lowercase hex digits; TW_EINVAL
 * saying what is wrong otherwise (another algorithm, the length, upper
 * case, a character that is not a hex digit). */
TW_API int tw_store_digest_check(const char *digest, tw_err *err);
/* Like tw_store_digest_check, also accepting "sha512:" and 128 lowercase
 * hex digits: the blobs (layers, configs, manifests) OCI clients name by
 * sha512 are stored under blobs/sha512/<hex>. Everything Twin computes itself
 * stays sha256. The functions below that take a digest accept both. */
TW_API int tw_store_digest_check_any(const char *digest, tw_err *err);

/* Appends the path of the blob digest (which may not exist) to out. */
TW_API int tw_store_blob_path(const tw_store *s, const char *digest,
                              tw_buf *out, tw_err *err);

/* Adds the content of the regular file at path, hashing it while it is
 * copied to a temporary file in the store, then synced and renamed to its
 * blob (a blob that is there already is replaced by the same bytes).
 * Writes its digest and a terminator to digest. On failure the store is
 * as it was. */
TW_API int tw_store_add_file(tw_store *s, const char *path,
                             char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err);

/* Appends the blob digest to out, after checking that it hashes to
 * digest: TW_ENOENT when the store has no such blob, TW_EDIGEST when its
 * content does not match (a corrupted store; out keeps its previous
 * content), TW_ELIMIT past max_bytes (0: no limit). */
TW_API int tw_store_read(const tw_store *s, const char *digest,
                         size_t max_bytes, tw_buf *out, tw_err *err);

/* Hashes the blob digest again: TW_OK, TW_ENOENT or TW_EDIGEST. */
TW_API int tw_store_verify(const tw_store *s, const char *digest, tw_err *err);

/* --- Streamed writes ------------------------------------------------------
 *
 * A writer receives a blob in pieces of any size, hashing them as they are
 * written to a file of the store's upload area (DIR/uploads/), and on
 * commit checks the digest and size it was promised, syncs the file,
 * renames it to blobs/sha256/<hex> and syncs that directory. Until the
 * rename nothing under blobs/ changes, so a crash or kill -9 at any point
 * leaves at most a file under uploads/ (removed by tw_store_uploads_gc),
 * never a partial blob.
 *
 * A writer belongs to one thread at a time; any number of writers may be
 * open on one store, in one or several processes. */
typedef struct tw_store_writer tw_store_writer;

/* Opens a writer on a new temporary file DIR/uploads/.tmp-blob-XXXXXX
 * (the upload area is created when missing). */
TW_API int tw_store_writer_open(tw_store *s, tw_store_writer **out,
                                tw_err *err);

/* Opens a writer on the existing file path, which must lie in the store's
 * upload area (an upload session's data file), keeping its first offset
 * bytes (what follows is cut off: an append that was not recorded) and
 * hashing them again, so the writer continues where the session was.
 * TW_ERANGE when the file is shorter than offset. The writer does not own
 * the file: tw_store_writer_close leaves it in place. */
TW_API int tw_store_writer_resume(tw_store *s, const char *path,
                                  uint64_t offset, tw_store_writer **out,
                                  tw_err *err);

/* Appends data[0..n) (hashing it). TW_ESTATE after a commit was tried. On
 * an I/O failure the bytes written so far are cut off again, so the size
 * is as before the call. */
TW_API int tw_store_writer_append(tw_store_writer *w, const void *data,
                                  size_t n, tw_err *err);

/* Bytes written so far. */
TW_API uint64_t tw_store_writer_size(const tw_store_writer *w);

/* Makes what was appended durable (fdatasync). */
TW_API int tw_store_writer_sync(tw_store_writer *w, tw_err *err);

/* Finishes the blob: when expect_digest is not NULL the content must hash
 * to it (TW_EDIGEST otherwise, naming both digests; TW_EINVAL for a
 * malformed digest or one neither sha256 nor sha512; a sha512 one is
 * checked by hashing the file again), when expect_size >= 0 it must have
 * that many bytes (TW_ERANGE). Then the file is synced, renamed to its
 * blob (an existing blob is replaced by the same bytes, which also makes
 * it young again for garbage collection) and the blob directory synced;
 * the rename happens under the store's shared lock (tw_store_lock). The
 * sha256 digest of the content, with a terminator, goes to digest (may be
 * NULL), also when the blob is stored by its sha512 one. Whatever the
 * outcome, the writer accepts no more bytes: close it. */
TW_API int tw_store_writer_commit(tw_store_writer *w, const char *expect_digest,
                                  int64_t expect_size,
                                  char digest[TW_STORE_DIGEST_LEN + 1],
                                  tw_err *err);

/* Frees the writer. A temporary file of tw_store_writer_open that was not
 * committed is removed; the file of tw_store_writer_resume stays. NULL is
 * a no-op. */
TW_API void tw_store_writer_close(tw_store_writer *w);

/* Adds data[0..n) as a blob through a writer (digest as for commit). */
TW_API int tw_store_add(tw_store *s, const void *data, size_t n,
                        const char *expect_digest,
                        char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err);

/* Whether the blob digest is present, with its size (may be NULL).
 * TW_ENOENT when absent, TW_EINVAL for a malformed digest. Does not hash. */
TW_API int tw_store_stat(const tw_store *s, const char *digest, int64_t *size,
                         tw_err *err);

/* --- The store's lock ---------------------------------------------------
 *
 * DIR/.lock, taken with flock(2): shared by everything that makes a blob
 * appear or become referenced (commits, cross-repository mounts, manifest
 * pushes), exclusive by garbage collection while it marks and sweeps, so a
 * collection never decides on a blob while a push is half-way through
 * referencing it. Shared holders never wait for each other; holding the
 * shared lock twice in one thread is allowed (flock grants a shared lock
 * whenever no exclusive one is held). */

/* Takes the lock; *fd receives the handle for tw_store_unlock. */
TW_API int tw_store_lock(const tw_store *s, bool exclusive, int *fd,
                         tw_err *err);
/* Releases a lock of tw_store_lock; a negative fd is a no-op. */
TW_API void tw_store_unlock(int fd);

/* Removes temporary files of writers under DIR/uploads/ and in DIR (left
 * by a crash or a kill) not modified for max_age_s seconds, counting them
 * in *removed (may be NULL). Directories of upload sessions are the
 * registry's (tw_reg_upload_gc). */
TW_API int tw_store_uploads_gc(tw_store *s, int64_t max_age_s, size_t *removed,
                               tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_STORE_H */
