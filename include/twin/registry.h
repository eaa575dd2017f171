/*
 * twin/registry.h - the storage and protocol logic of an OCI distribution
 * v1.1 registry (https://github.com/opencontainers/distribution-spec),
 * without HTTP: the /v2/ handlers of `twin serve` parse requests, call
 * these functions and turn their results into responses.
 *
 *   validation  repository names, tags, references and digests by the
 *               spec's grammar, before any file is touched
 *   errors      the spec's error codes with their HTTP statuses and the
 *               {"errors":[...]} body
 *   manifests   image manifests and indexes parsed and checked
 *   registry    a data directory: the blob store of twin/store.h (an OCI
 *               image layout) plus repositories (tags, manifest and blob
 *               links, referrers) and resumable upload sessions
 *   gc          garbage collection of blobs no manifest references
 *   models      .wasm models as OCI artifacts, built and extracted
 *
 * The on-disk layout, its invariants and crash safety are described in
 * docs/internals/registry.md; the decisions in
 * docs/adr/0012-registry-storage.md.
 *
 * Errors: registry functions fill a tw_reg_err (never NULL, unlike a
 * tw_err), a tw_err plus the OCI error code and HTTP status to answer
 * with. As with tw_err the first error wins. Failures that are not the
 * client's (out of memory, I/O) carry TW_REG_UNKNOWN and status 500.
 *
 * Thread safety: a tw_reg is immutable once open; any thread may call any
 * function on it, and several processes may share one data directory (all
 * changes are renames of complete files, and garbage collection excludes
 * the pushes it could race through the store lock). A tw_reg_upload and a
 * tw_reg_manifest belong to one thread at a time; two handles on one
 * upload session (in one process or two) must not append at once: the
 * server serialises the requests of a session.
 */
#ifndef TWIN_REGISTRY_H
#define TWIN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"
#include "twin/store.h"
#include "twin/wasm.h"

TW_EXTERN_C_BEGIN

/* --- Errors -------------------------------------------------------------
 *
 * X(NAME, HTTP status, the spec's message). UNKNOWN is not in the spec: it
 * is what docker-registry answers for its own failures, with status 500. */
#define TW_REG_CODE_MAP(X)                                                     \
  X(BLOB_UNKNOWN, 404, "blob unknown to registry")                             \
  X(BLOB_UPLOAD_INVALID, 400, "blob upload invalid")                           \
  X(BLOB_UPLOAD_UNKNOWN, 404, "blob upload unknown to registry")               \
  X(DIGEST_INVALID, 400, "provided digest did not match uploaded content")     \
  X(MANIFEST_BLOB_UNKNOWN, 400,                                                \
    "manifest references a manifest or blob unknown to registry")              \
  X(MANIFEST_INVALID, 400, "manifest invalid")                                 \
  X(MANIFEST_UNKNOWN, 404, "manifest unknown to registry")                     \
  X(NAME_INVALID, 400, "invalid repository name")                              \
  X(NAME_UNKNOWN, 404, "repository name not known to registry")                \
  X(SIZE_INVALID, 400, "provided length did not match content length")         \
  X(UNAUTHORIZED, 401, "authentication required")                              \
  X(DENIED, 403, "requested access to the resource is denied")                 \
  X(UNSUPPORTED, 405, "the operation is unsupported")                          \
  X(TOOMANYREQUESTS, 429, "too many requests")                                 \
  X(UNKNOWN, 500, "unknown error")

typedef enum tw_reg_code {
  TW_REG_NONE = 0,
#define TW__REG_CODE_ENUM(name, status, msg) TW_REG_##name,
  TW_REG_CODE_MAP(TW__REG_CODE_ENUM)
#undef TW__REG_CODE_ENUM
} tw_reg_code;

/* "BLOB_UNKNOWN", ...; NULL for TW_REG_NONE or a value not in the map. */
TW_API const char *tw_reg_code_name(tw_reg_code code);
/* The code's HTTP status (500 for a value not in the map, 200 for NONE). */
TW_API int tw_reg_code_status(tw_reg_code code);
/* The spec's message for the code (static). */
TW_API const char *tw_reg_code_message(tw_reg_code code);

/* Caller-owned: err.code is TW_OK and code TW_REG_NONE until a failure. */
typedef struct tw_reg_err {
  tw_reg_code code;
  int status; /* HTTP status: the code's, or a more precise one (416) */
  tw_err err; /* the message, naming what was wrong */
} tw_reg_err;

TW_API void tw_reg_err_init(tw_reg_err *e);

/* Records a failure unless e holds one already; status 0 means the
 * code's own. Evaluates to twcode (negative). e may be NULL. */
TW_API int tw_reg_err_set(tw_reg_err *e, tw_reg_code code, int status,
                          int twcode, const char *fmt, ...) TW_PRINTF(5, 6);

/* Gives a failure recorded only in e->err (a lower layer's) the code and
 * status it implies: TW_ENOMEM, TW_EIO and the like are UNKNOWN/500. */
TW_API void tw_reg_err_finish(tw_reg_err *e);

/* Appends the spec's error body for e to out:
 * {"errors":[{"code":"NAME","message":"the spec's message",
 *  "detail":"what was wrong"}]}. */
TW_API int tw_reg_err_body(const tw_reg_err *e, tw_buf *out);

/* --- Validation ----------------------------------------------------------
 *
 * Each takes bytes and a length (path segments of a request need not be
 * terminated) and fails with TW_EINVAL saying what is wrong. They never
 * touch a file. */

/* Longest repository name accepted: many clients limit hostname + "/" +
 * name to 255; the name alone must fit in that. */
#define TW_REG_NAME_MAX 255
#define TW_REG_TAG_MAX 128

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 * and at most TW_REG_NAME_MAX bytes. So "..", "//", upper case, '%' and
 * leading or trailing separators are all refused. */
TW_API int tw_reg_name_check(const char *name, size_t len, tw_err *err);
/* [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} */
TW_API int tw_reg_tag_check(const char *tag, size_t len, tw_err *err);
/* "sha256:" and 64 lowercase hex digits: the algorithm of every digest
 * the registry computes itself (tags, model artifacts). */
TW_API int tw_reg_digest_check(const char *digest, size_t len, tw_err *err);
/* A digest content may be named by: sha256 as above, or "sha512:" and 128
 * lowercase hex digits. Clients may name blobs, and manifests they push
 * by digest (and so subjects), by either. */
TW_API int tw_reg_blob_digest_check(const char *digest, size_t len,
                                    tw_err *err);
/* A reference: a sha256 digest (*is_digest true) or a tag. An
 * algorithm:encoded string of another algorithm is refused as a digest. */
TW_API int tw_reg_reference_check(const char *ref, size_t len, bool *is_digest,
                                  tw_err *err);
/* The reference of a /v2/<name>/manifests/ route: like
 * tw_reg_reference_check, with a sha512 digest accepted too (a manifest
 * pushed by its sha512 digest is known by that digest). */
TW_API int tw_reg_manifest_ref_check(const char *ref, size_t len,
                                     bool *is_digest, tw_err *err);

/* --- Manifests ------------------------------------------------------------ */

#define TW_REG_MANIFEST_MAX ((size_t)4 << 20)

#define TW_REG_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define TW_REG_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define TW_REG_MT_DOCKER_MANIFEST                                              \
  "application/vnd.docker.distribution.manifest.v2+json"
#define TW_REG_MT_DOCKER_LIST                                                  \
  "application/vnd.docker.distribution.manifest.list.v2+json"
#define TW_REG_MT_EMPTY "application/vnd.oci.empty.v1+json"

/* A descriptor; strings are borrowed from the manifest. */
typedef struct tw_reg_desc {
  const char *media_type;
  const char *digest;        /* valid sha256 or sha512 */
  int64_t size;              /* >= 0 */
  const char *artifact_type; /* NULL when absent */
} tw_reg_desc;

typedef struct tw_reg_manifest {
  bool is_index;             /* an image index (or docker list) */
  const char *media_type;    /* the document's, else the Content-Type */
  const char *artifact_type; /* for referrers: artifactType, else (image
                                manifests) config.mediaType; may be NULL */
  tw_reg_desc config;        /* image manifests */
  const tw_reg_desc *refs;   /* layers (image) or manifests (index) */
  size_t nrefs;
  bool has_subject;
  tw_reg_desc subject;
  const char *annotations; /* the annotations object as compact JSON, or
                              NULL */
} tw_reg_manifest;

/* Parses data[0..len) as an image manifest or index. content_type (may be
 * NULL or empty: taken from the document) must, parameters aside, equal
 * the document's mediaType when both are given, and be one of the types
 * above. Failures are MANIFEST_INVALID (malformed JSON, wrong types,
 * missing fields, bad digests, schemaVersion != 2, a media type mismatch;
 * more than TW_REG_MANIFEST_MAX bytes is status 413, as the spec asks for
 * a manifest too large to accept). *out is
 * freed with tw_reg_manifest_free and owns everything it points to. */
TW_API int tw_reg_manifest_parse(const void *data, size_t len,
                                 const char *content_type,
                                 tw_reg_manifest **out, tw_reg_err *e);
/* NULL is a no-op. */
TW_API void tw_reg_manifest_free(tw_reg_manifest *m);

/* --- The registry --------------------------------------------------------- */

typedef struct tw_reg tw_reg;

/* Opens (creating when missing) the registry in dir: the blob store's
 * OCI layout, repos/ and uploads/. */
TW_API int tw_reg_open(const char *dir, tw_reg **out, tw_err *err);
/* NULL is a no-op. */
TW_API void tw_reg_close(tw_reg *r);
/* The blob store (borrowed; lives as long as r). */
TW_API tw_store *tw_reg_store(tw_reg *r);

/* Whether repository name has anything (a manifest, a tag or a blob). */
TW_API bool tw_reg_repo_exists(tw_reg *r, const char *name);

/* Blobs of a repository. stat: BLOB_UNKNOWN unless the blob is linked into
 * name and present; *size and path (may be NULL; the file to send) are
 * filled. */
TW_API int tw_reg_blob_stat(tw_reg *r, const char *name, const char *digest,
                            int64_t *size, tw_buf *path, tw_reg_err *e);
/* Appends the blob's content, verified, to out (max_bytes 0: no limit). */
TW_API int tw_reg_blob_get(tw_reg *r, const char *name, const char *digest,
                           size_t max_bytes, tw_buf *out, tw_reg_err *e);
/* Stores data as a blob of name, checked against digest (may be NULL;
 * sha256 or sha512), and links it under digest (its sha256 digest when
 * NULL); *digest_out (may be NULL) gets its sha256 digest. */
TW_API int tw_reg_blob_put(tw_reg *r, const char *name, const void *data,
                           size_t n, const char *digest,
                           char digest_out[TW_STORE_DIGEST_LEN + 1],
                           tw_reg_err *e);
/* Cross-repository mount: links digest into name when repository from has
 * it. BLOB_UNKNOWN (404) when from does not (the handler then starts an
 * ordinary upload, as the spec says). */
TW_API int tw_reg_blob_mount(tw_reg *r, const char *name, const char *from,
                             const char *digest, tw_reg_err *e);
/* Unlinks digest from name (BLOB_UNKNOWN when not linked); the bytes go
 * when garbage collection finds nothing referencing them. */
TW_API int tw_reg_blob_delete(tw_reg *r, const char *name, const char *digest,
                              tw_reg_err *e);

/* --- Upload sessions --------------------------------------------------------
 *
 * uploads/<id>/ holds "data" (the bytes received) and "state" (the
 * repository, the offset recorded and the start time), so a restarted
 * server continues a chunked upload where its last flush left it. */
typedef struct tw_reg_upload tw_reg_upload;

/* Length of an upload id: 32 lowercase hex digits (128 random bits). */
#define TW_REG_UPLOAD_ID_LEN 32

/* Starts a session for repository name. */
TW_API int tw_reg_upload_new(tw_reg *r, const char *name, tw_reg_upload **out,
                             tw_reg_err *e);
/* Reopens session id of name (after a restart, or per request):
 * BLOB_UPLOAD_UNKNOWN when there is none, or it belongs to another
 * repository, or the id is malformed. Bytes received after the last flush
 * are dropped. */
TW_API int tw_reg_upload_open(tw_reg *r, const char *name, const char *id,
                              tw_reg_upload **out, tw_reg_err *e);
/* The id (borrowed; lives as long as u) and the bytes received so far (the
 * Range header is "0-<offset-1>"). */
TW_API const char *tw_reg_upload_id(const tw_reg_upload *u);
TW_API uint64_t tw_reg_upload_offset(const tw_reg_upload *u);
/* Appends data[0..n) that starts at offset of the blob. offset must be the
 * current offset: anything else is BLOB_UPLOAD_INVALID with status 416
 * (the spec's answer to an out-of-order chunk), nothing written. */
TW_API int tw_reg_upload_append(tw_reg_upload *u, uint64_t offset,
                                const void *data, size_t n, tw_reg_err *e);
/* Makes the bytes received durable and records the offset (call before
 * answering a PATCH with 202). */
TW_API int tw_reg_upload_flush(tw_reg_upload *u, tw_reg_err *e);
/* Completes the upload: the content must hash to digest (DIGEST_INVALID)
 * and, when size >= 0, have size bytes (SIZE_INVALID). The blob is moved
 * into the store, linked into the repository and the session removed.
 * A digest or size mismatch also removes the session (the client starts
 * over, as with docker-registry). u must still be closed. */
TW_API int tw_reg_upload_commit(tw_reg_upload *u, const char *digest,
                                int64_t size, tw_reg_err *e);
/* Removes the session (DELETE of the upload). u must still be closed. */
TW_API int tw_reg_upload_cancel(tw_reg_upload *u, tw_reg_err *e);
/* Frees the handle; the session stays on disk unless committed or
 * cancelled. NULL is a no-op. */
TW_API void tw_reg_upload_close(tw_reg_upload *u);
/* Removes sessions not written for max_age_s seconds (and stray writer
 * temporaries of the store), counting sessions in *removed (may be NULL).
 * A session open in this or another process when it expires is removed
 * too; its next append fails with BLOB_UPLOAD_UNKNOWN. */
TW_API int tw_reg_upload_gc(tw_reg *r, int64_t max_age_s, size_t *removed,
                            tw_err *err);

/* --- Manifests and tags ----------------------------------------------------
 */

/* Both digests are sized for sha512 ("sha512:" and 128 hex): a manifest
 * pushed by a sha512 digest is known by it, and so may a subject be. */
typedef struct tw_reg_put_result {
  char digest[TW_STORE_DIGEST_MAX + 1];  /* the manifest's (Docker-Content-
                                            Digest, Location) */
  char subject[TW_STORE_DIGEST_MAX + 1]; /* OCI-Subject, or "" */
} tw_reg_put_result;

/* PUT /v2/<name>/manifests/<reference>. The manifest is parsed with
 * content_type (tw_reg_manifest_parse); every blob it names (config and
 * layers) must be linked into name and every manifest an index names must
 * be a manifest of name (MANIFEST_BLOB_UNKNOWN); the subject need not
 * exist. reference is checked by tw_reg_manifest_ref_check. A digest
 * reference must be the manifest's digest by that digest's algorithm
 * (DIGEST_INVALID): the manifest is stored and known by that digest only
 * (a sha512 one is blob blobs/sha512/<hex>; GET by its sha256 digest is
 * MANIFEST_UNKNOWN, as the client chose the algorithm). A tag is pointed
 * at the manifest's sha256 digest, atomically. On failure nothing is
 * stored. */
TW_API int tw_reg_manifest_put(tw_reg *r, const char *name,
                               const char *reference, const char *content_type,
                               const void *data, size_t len,
                               tw_reg_put_result *res, tw_reg_err *e);
/* GET/HEAD: appends the manifest to body (NULL for HEAD: only checked to
 * exist) and its media type to media_type (may be NULL); digest (may be
 * NULL; room for a sha512 digest) gets its digest: the reference itself
 * when that is a digest (sha256 or sha512), else the sha256 digest the
 * tag points at. NAME_UNKNOWN, MANIFEST_UNKNOWN. */
TW_API int tw_reg_manifest_get(tw_reg *r, const char *name,
                               const char *reference, tw_buf *body,
                               tw_buf *media_type,
                               char digest[TW_STORE_DIGEST_MAX + 1],
                               tw_reg_err *e);
/* DELETE by digest (sha256 or sha512: the digest it was pushed by):
 * unlinks the manifest, drops its referrers entry and every tag that
 * points at it. A tag reference deletes only the tag. */
TW_API int tw_reg_manifest_delete(tw_reg *r, const char *name,
                                  const char *reference, tw_reg_err *e);

/* GET /v2/<name>/tags/list: appends {"name":NAME,"tags":[...]} to out,
 * tags sorted lexically (byte order), those after last (NULL: from the
 * start), at most n of them (n < 0: all; n == 0: none). *more (may be
 * NULL) tells whether tags were left out after the last one listed (the
 * handler then sends a Link header). NAME_UNKNOWN for a repository with
 * nothing in it. */
TW_API int tw_reg_tags_list(tw_reg *r, const char *name, long n,
                            const char *last, tw_buf *out, bool *more,
                            tw_reg_err *e);

/* GET /v2/<name>/referrers/<digest>: appends an image index whose
 * manifests are the descriptors of the manifests of name whose subject is
 * digest (sha256 or sha512), sorted by digest, with artifactType and
 * annotations; with artifact_type (may be NULL) only those of that type
 * (*filtered, may be NULL, tells the handler to send
 * OCI-Filters-Applied: artifactType). An unknown subject is an empty
 * index, never an error. */
TW_API int tw_reg_referrers(tw_reg *r, const char *name, const char *digest,
                            const char *artifact_type, tw_buf *out,
                            bool *filtered, tw_reg_err *e);

/* --- Garbage collection ----------------------------------------------------
 */

typedef struct tw_reg_gc_opts {
  int64_t grace_s; /* blobs younger than this are kept (a push between its
                      blobs and its manifest); < 0: one hour */
  bool dry_run;    /* count, remove nothing */
} tw_reg_gc_opts;

typedef struct tw_reg_gc_stats {
  size_t manifests; /* manifests marked from */
  size_t marked;    /* blobs referenced */
  size_t swept;     /* blobs removed (or that would be, dry run) */
  size_t young;     /* unreferenced blobs kept for their age */
  uint64_t bytes;   /* bytes of the swept blobs */
  size_t links;     /* repository blob links to swept blobs removed */
} tw_reg_gc_stats;

/* Marks every blob referenced by a manifest of any repository (their
 * configs, layers and the manifests an index names) and by the store's
 * index.json, then removes the unmarked blobs (of blobs/sha256 and
 * blobs/sha512) older than the grace period,
 * holding the store lock exclusively throughout (pushes wait). opts and
 * stats may be NULL. */
TW_API int tw_reg_gc(tw_reg *r, const tw_reg_gc_opts *opts,
                     tw_reg_gc_stats *stats, tw_err *err);

/* --- Models as OCI artifacts -------------------------------------------- */

#define TW_REG_MODEL_ARTIFACT_TYPE "application/vnd.twin.model.v1+json"
#define TW_REG_MODEL_CONFIG_TYPE "application/vnd.twin.model.config.v1+json"
#define TW_REG_MODEL_LAYER_TYPE "application/wasm"

/* The three pieces of a model artifact. wasm is borrowed from the caller
 * of tw_reg_model_build; config and manifest are owned (fini frees). */
typedef struct tw_reg_model {
  const void *wasm;
  size_t wasm_size;
  char wasm_digest[TW_STORE_DIGEST_LEN + 1];
  tw_buf config; /* the model descriptor, canonical JSON */
  char config_digest[TW_STORE_DIGEST_LEN + 1];
  tw_buf manifest; /* the image manifest */
  char manifest_digest[TW_STORE_DIGEST_LEN + 1];
} tw_reg_model;

/* Loads the module with e (validation, model ABI, descriptor: what `twin
 * model add` checks; allow_wasi as its --allow-wasi) and builds the
 * artifact: config = the descriptor, one layer = the module, annotations
 * with the model's name and version, no timestamps, so the same module
 * always gives the same manifest digest, whoever builds it. On failure
 * *out is untouched (the loader's TW_EPARSE/TW_EVALIDATE pass through). */
TW_API int tw_reg_model_build(tw_wasm_engine *e, const void *wasm, size_t len,
                              bool allow_wasi, tw_reg_model *out, tw_err *err);
TW_API void tw_reg_model_fini(tw_reg_model *m);

/* Stores the artifact in repository name and points tag (may be NULL) at
 * it: the two blobs, then the manifest. */
TW_API int tw_reg_model_push(tw_reg *r, const char *name, const char *tag,
                             const tw_reg_model *m, tw_reg_put_result *res,
                             tw_reg_err *e);

/* What a pulled manifest says about its model. */
typedef struct tw_reg_model_ref {
  char wasm_digest[TW_STORE_DIGEST_LEN + 1];
  int64_t wasm_size;
  char config_digest[TW_STORE_DIGEST_LEN + 1];
  int64_t config_size;
} tw_reg_model_ref;

/* Checks that manifest[0..len) is a model artifact (image manifest,
 * artifactType or config media type of a model, exactly one
 * application/wasm layer) and fills *out. TW_EVALIDATE otherwise. */
TW_API int tw_reg_model_parse(const void *manifest, size_t len,
                              tw_reg_model_ref *out, tw_err *err);
/* Checks that wasm[0..len) is the layer ref names: size and digest
 * (TW_EDIGEST). */
TW_API int tw_reg_model_verify(const tw_reg_model_ref *ref, const void *wasm,
                               size_t len, tw_err *err);
/* What the server checks when a manifest is pushed to name: when
 * manifest[0..len) is a model (artifactType or config media type of a
 * model), it must be a well-formed model artifact whose .wasm layer the
 * loader of e accepts (WASI allowed: the grant is the runner's decision)
 * and whose config is that module's descriptor (equal as JSON). Failures
 * are MANIFEST_INVALID naming the cause. Anything else (not a model, a
 * manifest that does not parse, a layer not in name) is left to
 * tw_reg_manifest_put to judge: TW_OK. */
TW_API int tw_reg_model_check(tw_reg *r, tw_wasm_engine *e, const char *name,
                              const void *manifest, size_t len,
                              tw_reg_err *err);

/* A model artifact stored in a repository, as a registration reads it. */
typedef struct tw_reg_model_info {
  char manifest_digest[TW_STORE_DIGEST_LEN + 1];
  tw_reg_model_ref ref;
  tw_buf descriptor; /* the config: the model descriptor (JSON object) */
} tw_reg_model_info;

/* Reads the model artifact name:reference: its manifest (MANIFEST_UNKNOWN,
 * NAME_UNKNOWN; MANIFEST_INVALID when it is not a model, or when reference
 * is a sha512 digest: a model is recorded by its sha256 one) and its
 * config (BLOB_UNKNOWN when missing). out->descriptor is appended to
 * (initialise it; the caller finis it). */
TW_API int tw_reg_model_info_get(tw_reg *r, const char *name,
                                 const char *reference, tw_reg_model_info *out,
                                 tw_reg_err *e);

/* Reads the model of name:reference out of r into wasm (appended),
 * verified against the manifest. */
TW_API int tw_reg_model_pull(tw_reg *r, const char *name, const char *reference,
                             tw_buf *wasm, tw_reg_err *e);

TW_EXTERN_C_END

#endif /* TWIN_REGISTRY_H */
