/*
 * hash.h - SHA-256 digests (OpenSSL libcrypto) and hex encoding.
 *
 * Digests name content everywhere in Twin: wasm modules, OCI blobs, traces,
 * provenance records. The textual form is the OCI one, "sha256:<64 lowercase
 * hex digits>". SHA-512 ("sha512:<128 hex digits>") exists only for OCI
 * blobs that clients name by it; Twin itself computes SHA-256.
 *
 * Thread safety: the one-shot functions may be called from any thread; a
 * tw_sha256 belongs to one thread at a time.
 */
#ifndef TWIN_HASH_H
#define TWIN_HASH_H

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

#define TW_SHA256_LEN 32
#define TW_SHA256_HEX_LEN 64 /* without the terminator */
#define TW_SHA512_LEN 64
#define TW_SHA512_HEX_LEN 128 /* without the terminator */

/* Streaming state; opaque. */
typedef struct tw_sha256_state tw_sha256_state;

/* Creates a streaming hasher. TW_ENOMEM on failure, *out untouched. */
TW_API int tw_sha256_new(tw_sha256_state **out);
/* Adds n bytes. TW_EINVAL after final. */
TW_API int tw_sha256_update(tw_sha256_state *h, const void *data, size_t n);
/* Writes the 32-byte digest; the hasher can then only be freed or reset. */
TW_API int tw_sha256_final(tw_sha256_state *h, uint8_t out[TW_SHA256_LEN]);
/* Starts over, so one hasher can digest many inputs. */
TW_API int tw_sha256_reset(tw_sha256_state *h);
/* NULL is a no-op. */
TW_API void tw_sha256_free(tw_sha256_state *h);

/* One-shot digest of data[0..n). */
TW_API int tw_sha256(const void *data, size_t n, uint8_t out[TW_SHA256_LEN]);

/* One-shot digest as 64 lowercase hex digits plus NUL in out_hex. */
TW_API int tw_sha256_hex(const void *data, size_t n,
                         char out_hex[TW_SHA256_HEX_LEN + 1]);

/* Digest of a whole file, streamed. Errors name the path
 * (TW_ENOENT, TW_EPERM, TW_EIO, TW_ENOMEM). */
TW_API int tw_sha256_file(const char *path, uint8_t out[TW_SHA256_LEN],
                          tw_err *err);

/* SHA-512 of data[0..n), and of a whole file (errors as tw_sha256_file). */
TW_API int tw_sha512(const void *data, size_t n, uint8_t out[TW_SHA512_LEN]);
TW_API int tw_sha512_file(const char *path, uint8_t out[TW_SHA512_LEN],
                          tw_err *err);

/* Writes 2*n lowercase hex digits and a NUL to out. */
TW_API void tw_hex_encode(const uint8_t *in, size_t n, char *out);

/* Decodes exactly 2*n hex digits (either case) of hex into out. TW_EPARSE,
 * leaving out untouched, if hex is not that. */
TW_API int tw_hex_decode(const char *hex, size_t hex_len, uint8_t *out,
                         size_t n);

TW_EXTERN_C_END

#endif /* TWIN_HASH_H */
