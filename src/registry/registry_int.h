/*
 * registry_int.h - what the files of src/registry share: the registry
 * object, paths under its data directory and the atomic file helpers.
 *
 * Paths are only ever built from components the validators of names.c
 * accepted (names, tags, digests, upload ids), so none can leave the data
 * directory; files are opened with O_NOFOLLOW so a symbolic link planted
 * in it is not followed either.
 */
#ifndef TW_REGISTRY_INT_H
#define TW_REGISTRY_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "twin/alloc.h"
#include "twin/buf.h"
#include "twin/error.h"
#include "twin/registry.h"
#include "twin/store.h"

struct tw_reg {
  tw_store *store;
  const char *dir; /* the store's */
};

/* Appends "DIR/" and the formatted rest to out (TW_ENOMEM). */
int tw__reg_path(const tw_reg *r, tw_buf *out, const char *fmt, ...)
    TW_PRINTF(3, 4);

/* Replaces path (under the data directory) with data[0..n) atomically and
 * durably, making its parent directories: a temporary in uploads/, fsync,
 * rename, fsync of the directory. */
int tw__reg_put_file(const tw_reg *r, const char *path, const void *data,
                     size_t n, tw_err *err);

/* Reads the small file path (at most max bytes) into out, not following a
 * symbolic link. TW_ENOENT when absent. */
int tw__reg_read_small(const char *path, size_t max, tw_buf *out, tw_err *err);

/* unlink(2) of path, then fsync of its directory; absent is TW_ENOENT. */
int tw__reg_remove(const char *path, tw_err *err);

/* Validates name as a repository name into e (NAME_INVALID). */
int tw__reg_check_name(const char *name, tw_reg_err *e);
/* Validates a digest of either algorithm (tw_reg_blob_digest_check) into
 * e: DIGEST_INVALID. */
int tw__reg_check_blob_digest(const char *digest, tw_reg_err *e);

/* Whether repos/<name>/_blobs/<hex> links the blob digest (valid) and the
 * store has it. */
bool tw__reg_blob_linked(const tw_reg *r, const char *name, const char *digest);
/* Links the blob digest (valid) into name. */
int tw__reg_blob_link(const tw_reg *r, const char *name, const char *digest,
                      tw_err *err);
/* Whether name has the manifest digest (valid). */
bool tw__reg_manifest_linked(const tw_reg *r, const char *name,
                             const char *digest);

/* Parses a manifest already stored, with the media type recorded in its
 * link; the message goes to err. */
int tw__reg_manifest_parse_stored(const void *data, size_t len,
                                  const char *media_type, tw_reg_manifest **out,
                                  tw_err *err);

/* Reads the media type recorded for manifest digest of name into out:
 * TW_ENOENT when name has no such manifest. */
int tw__reg_manifest_type(const tw_reg *r, const char *name, const char *digest,
                          tw_buf *out, tw_err *err);

/* Sorted names of the entries of dir that pass keep (NULL: all), skipping
 * "." and "..". *names is an array of *n strings; free with
 * tw__reg_names_free. A missing dir is an empty list. */
int tw__reg_list_dir(const char *dir, bool (*keep)(const char *name),
                     char ***names, size_t *n, tw_err *err);
void tw__reg_names_free(char **names, size_t n);

/* Whether s is the hex of a digest as files are named by it: 64 (sha256)
 * or 128 (sha512) lowercase hex digits. The lengths differ, so a sha256
 * and a sha512 name never collide in one directory. */
bool tw__reg_is_hex_name(const char *s);
/* The digest a name of tw__reg_is_hex_name stands for: "sha256:" or
 * "sha512:" by its length, then hex, into out. */
void tw__reg_hex_digest(const char *hex, char out[TW_STORE_DIGEST_MAX + 1]);

#endif /* TW_REGISTRY_INT_H */
