/*
 * twin/store.h - the local model store: a content-addressed directory of
 * blobs named by their SHA-256 digest, laid out as an OCI image layout
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md):
 *
 *   DIR/oci-layout              {"imageLayoutVersion": "1.0.0"}
 *   DIR/index.json              {"schemaVersion": 2, "manifests": [...]}
 *   DIR/blobs/sha256/<64 hex>   the content whose digest is the name
 *
 * Graphs name models by digest ("wasm:sha256:<64 hex>", docs/graph.md),
 * `twin model add` puts them here, and the registry serves its blobs from
 * the same layout. The default directory is $TWIN_STORE, else
 * $XDG_DATA_HOME/twin/store, else $HOME/.local/share/twin/store
 * (docs/adr/0007-local-model-store.md).
 *
 * Invariants: a blob appears under its name whole or not at all (written
 * to a temporary file in DIR, synced, renamed, the directory synced), and
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

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"
#include "twin/hash.h"

TW_EXTERN_C_BEGIN

/* "sha256:" and 64 lowercase hex digits, without the terminator. */
#define TW_STORE_DIGEST_LEN (7 + TW_SHA256_HEX_LEN)

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

TW_EXTERN_C_END

#endif /* TWIN_STORE_H */
