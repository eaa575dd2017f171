/*
 * twin/meta.h - the model registry's metadata store: registered models,
 * their versions, tags, lineage and aliases, behind one interface with two
 * backends, SQLite (the default, one file) and PostgreSQL (libpq, for
 * several servers sharing one database). It is MLflow's model registry in
 * C: a model has a unique name, a description and tags; each version
 * points at an OCI artifact (repository, manifest digest, .wasm digest,
 * size, the model descriptor), carries its own description, tags, status
 * and lineage (run ids, parent versions), and aliases such as
 * "production" name one version each.
 *
 * A store is opened by URL:
 *
 *   sqlite:PATH                       a database file (created if missing)
 *   postgres://USER@HOST:PORT/DB?...  or postgresql://..., libpq's URI
 *
 * Opening applies the schema migrations this build knows in one
 * transaction and refuses a database whose schema is newer than the code
 * (TW_ENOTSUP). docs/internals/registry-meta.md has the schema and
 * docs/adr/0013-metadata-store.md the decisions.
 *
 * Names (TW_META_NAME_MAX): a model name is 1 to 128 characters of
 * [A-Za-z0-9._-] starting with a letter or digit; an alias 1 to 64
 * characters of [A-Za-z0-9_-] starting with a letter, and "latest" is
 * reserved (it resolves to the newest version). Tag keys are 1 to 250
 * characters of [A-Za-z0-9_.:/ -]; tag values and descriptions are valid
 * UTF-8 without control characters other than tab and newline. A bad name
 * is TW_EINVAL saying what is wrong; an unknown model, version, alias or
 * tag is TW_ENOENT; a duplicate model is TW_EEXIST.
 *
 * Results are written into a caller-owned arena (twin/arena.h): every
 * pointer in a returned record lives until the arena is reset or
 * finalized. A failing call leaves its outputs untouched and the arena's
 * used part as it was.
 *
 * Every operation is one transaction: it happens whole or not at all.
 * Concurrent writers are serialized by the database (SQLite's write lock,
 * PostgreSQL's serializable isolation, retried on serialization failures),
 * so versions of one model are numbered 1, 2, 3, ... without gaps or
 * duplicates whichever process creates them, and a number is never
 * reused after its version is deleted.
 *
 * Thread safety: a tw_meta is one database connection; any thread may use
 * it, and calls on one handle are serialized by a mutex. Open one handle
 * per thread for parallel work.
 */
#ifndef TWIN_META_H
#define TWIN_META_H

#include <stdbool.h>
#include <stdint.h>

#include "twin/arena.h"
#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* The schema version this build creates and understands. */
#define TW_META_SCHEMA_VERSION 3

/* Limits on names and values, in bytes. */
#define TW_META_NAME_MAX 128
#define TW_META_ALIAS_MAX 64
#define TW_META_TAG_KEY_MAX 250
#define TW_META_TAG_VALUE_MAX 5000
#define TW_META_DESCRIPTION_MAX 65536
#define TW_META_RUN_ID_MAX 256
#define TW_META_REPOSITORY_MAX 255
#define TW_META_DESCRIPTOR_MAX ((size_t)1 << 20)
/* At most this many tags, run ids or parents on one record, and filters
 * of one kind in one search. */
#define TW_META_LIST_MAX 100
/* Page sizes of searches: 0 asks for the default. */
#define TW_META_PAGE_DEFAULT 100
#define TW_META_PAGE_MAX 1000

typedef struct tw_meta tw_meta;

typedef enum tw_meta_status {
  TW_META_STATUS_READY = 0, /* registered and usable (the default) */
  TW_META_STATUS_PENDING,   /* registration in progress */
  TW_META_STATUS_FAILED     /* registration failed */
} tw_meta_status;

/* "READY", "PENDING_REGISTRATION", "FAILED_REGISTRATION" (MLflow's
 * names), as stored; NULL for a value outside the enum. */
TW_API const char *tw_meta_status_name(tw_meta_status s);
/* The inverse; TW_EINVAL for another string. */
TW_API int tw_meta_status_parse(const char *s, tw_meta_status *out,
                                tw_err *err);

typedef struct tw_meta_tag {
  const char *key;
  const char *value;
} tw_meta_tag;

typedef struct tw_meta_alias {
  const char *alias;
  int64_t version;
} tw_meta_alias;

/* A parent in a version's lineage: another version it was derived from
 * (fine-tuned from, distilled from, ...). */
typedef struct tw_meta_parent {
  const char *model;
  int64_t version;
} tw_meta_parent;

/* A registered model. As the input of tw_meta_model_create only name,
 * description (NULL: empty) and tags are read. */
typedef struct tw_meta_model {
  const char *name;
  const char *description;
  const tw_meta_tag *tags; /* sorted by key */
  size_t n_tags;
  const tw_meta_alias *aliases; /* sorted by alias */
  size_t n_aliases;
  int64_t latest_version; /* the highest existing version; 0: none */
  int64_t created_ms;     /* Unix time in milliseconds */
  int64_t updated_ms;     /* changed with the model, its tags, aliases and
                             the creation or deletion of a version */
} tw_meta_model;

/* Where a version's content is: an OCI artifact. Every field is optional
 * (NULL, or -1 for size) so a version can be registered before its
 * upload completes. */
typedef struct tw_meta_artifact {
  const char *repository;      /* OCI repository: [a-z0-9._/-], <= 255 */
  const char *manifest_digest; /* "sha256:<64 hex>" */
  const char *wasm_digest;     /* "sha256:<64 hex>" */
  int64_t size;                /* bytes of the .wasm; -1: unknown */
  const char *descriptor;      /* the model descriptor, a JSON object */
} tw_meta_artifact;

/* A model version. As the input of tw_meta_version_create, version,
 * aliases and the times are ignored (the store assigns them). */
typedef struct tw_meta_version {
  const char *model;
  int64_t version; /* 1, 2, 3, ... per model */
  const char *description;
  tw_meta_status status;
  tw_meta_artifact artifact;
  const tw_meta_tag *tags; /* sorted by key */
  size_t n_tags;
  const char *const *run_ids; /* lineage: the runs that produced it */
  size_t n_run_ids;
  const tw_meta_parent *parents; /* lineage: versions it derives from */
  size_t n_parents;
  const char *const *aliases; /* the model's aliases naming it, sorted */
  size_t n_aliases;
  int64_t created_ms;
  int64_t updated_ms;
} tw_meta_version;

/* A search. Every field is a filter that a result must pass (NULL, 0 or
 * false: no filter); the fields marked (versions) apply to version searches
 * only and are TW_EINVAL in a model search. Results come in a stable order
 * (models by name; versions by model name, then version, newest first),
 * page_size at a time; next_page_token of a page, passed back as
 * page_token with the same filters, continues after it. Tokens are opaque
 * strings; a malformed one is TW_EINVAL. */
typedef struct tw_meta_query {
  const char *name_prefix;   /* model name starts with (case-sensitive) */
  const char *name_contains; /* model name contains (case-sensitive) */
  const char *model;         /* (versions) of this model */
  const tw_meta_tag *tags;   /* each key=value is a tag of the result */
  size_t n_tags;
  const char *alias; /* models: have this alias; versions: are named by it */
  bool has_alias;    /* models: have an alias; versions: are named by one */
  int64_t created_after_ms;     /* created at or after (0: no bound) */
  int64_t created_before_ms;    /* created before (0: no bound) */
  const char *status;           /* (versions) "READY", ... */
  const char *run_id;           /* (versions) lineage names this run */
  const tw_meta_parent *parent; /* (versions) lineage names this parent */
  /* (versions) descriptor fields, each key=value: key is a dotted path
   * of object keys of [A-Za-z0-9_] ("name", "abi", "meta.family"; array
   * indexes are not paths), value the text of the scalar there: a string
   * as is, an integer in decimal, "true" or "false". */
  const tw_meta_tag *descriptor;
  size_t n_descriptor;
  size_t page_size; /* 0: TW_META_PAGE_DEFAULT; at most TW_META_PAGE_MAX */
  const char *page_token; /* NULL: the first page */
} tw_meta_query;

typedef struct tw_meta_model_page {
  tw_meta_model *items;
  size_t n;
  const char *next_page_token; /* NULL: this was the last page */
} tw_meta_model_page;

typedef struct tw_meta_version_page {
  tw_meta_version *items;
  size_t n;
  const char *next_page_token; /* NULL: this was the last page */
} tw_meta_version_page;

/* --- Opening ----------------------------------------------------------- */

/* Opens the store at url (see above) and migrates its schema. Errors:
 * TW_EINVAL for a URL of another scheme or without a path; TW_ECONN when
 * PostgreSQL cannot be reached (the message names the URL with any
 * password replaced by "***"); TW_EIO when the SQLite file cannot be
 * opened; TW_ENOTSUP when the database's schema is newer than
 * TW_META_SCHEMA_VERSION. *out is closed with tw_meta_close. */
TW_API int tw_meta_open(const char *url, tw_meta **out, tw_err *err);
/* NULL is a no-op. */
TW_API void tw_meta_close(tw_meta *m);

/* "sqlite" or "postgres". Static string. */
TW_API const char *tw_meta_backend(const tw_meta *m);
/* The URL the store was opened with, password redacted (borrowed; lives
 * as long as m). */
TW_API const char *tw_meta_url(const tw_meta *m);
/* The schema version of the open database (TW_META_SCHEMA_VERSION once
 * opened). */
TW_API int tw_meta_schema_version(tw_meta *m, int *out, tw_err *err);

/* Appends "sqlite:DATA_DIR/meta.db", the default of `twin serve --data`. */
TW_API int tw_meta_url_default(const char *data_dir, tw_buf *out, tw_err *err);
/* Appends url with the password of a postgres:// URL (user:PASSWORD@ or
 * password=... in the query) replaced by "***", for messages and logs. */
TW_API int tw_meta_url_redact(const char *url, tw_buf *out);

/* Checks a model name, alias or tag key against the rules above:
 * TW_EINVAL with the reason, naming what (e.g. "model name"). */
TW_API int tw_meta_name_check(const char *name, tw_err *err);
TW_API int tw_meta_alias_check(const char *alias, tw_err *err);

/* --- Registered models -------------------------------------------------- */

/* Registers spec->name with its description and tags. TW_EEXIST when the
 * name is taken. */
TW_API int tw_meta_model_create(tw_meta *m, const tw_meta_model *spec,
                                tw_err *err);
/* Reads model name into *out (in arena). */
TW_API int tw_meta_model_get(tw_meta *m, const char *name, tw_arena *arena,
                             tw_meta_model *out, tw_err *err);
/* Replaces the description. */
TW_API int tw_meta_model_update(tw_meta *m, const char *name,
                                const char *description, tw_err *err);
/* Deletes the model with its versions, tags, lineage and aliases. Lineage
 * records of other models that name its versions are kept (they are
 * history). */
TW_API int tw_meta_model_delete(tw_meta *m, const char *name, tw_err *err);
/* Sets (adds or replaces) or deletes a tag. Deleting an absent tag is
 * TW_ENOENT. */
TW_API int tw_meta_model_tag_set(tw_meta *m, const char *name, const char *key,
                                 const char *value, tw_err *err);
TW_API int tw_meta_model_tag_delete(tw_meta *m, const char *name,
                                    const char *key, tw_err *err);
TW_API int tw_meta_model_search(tw_meta *m, const tw_meta_query *q,
                                tw_arena *arena, tw_meta_model_page *out,
                                tw_err *err);

/* --- Versions ------------------------------------------------------------ */

/* Creates the next version of spec->model and writes its number to
 * *version (may be NULL). The model must exist (TW_ENOENT), and so must
 * every parent; digests, the descriptor (a JSON object) and the other
 * fields are checked (TW_EINVAL). */
TW_API int tw_meta_version_create(tw_meta *m, const tw_meta_version *spec,
                                  int64_t *version, tw_err *err);
TW_API int tw_meta_version_get(tw_meta *m, const char *model, int64_t version,
                               tw_arena *arena, tw_meta_version *out,
                               tw_err *err);
/* Reads the version a reference names: "MODEL/VERSION", "MODEL@ALIAS" or
 * "MODEL@latest", optionally prefixed by "models:/" (MLflow's URIs). */
TW_API int tw_meta_version_resolve(tw_meta *m, const char *ref, tw_arena *arena,
                                   tw_meta_version *out, tw_err *err);
/* Replaces the description (NULL: kept) and the status. */
TW_API int tw_meta_version_update(tw_meta *m, const char *model,
                                  int64_t version, const char *description,
                                  tw_meta_status status, tw_err *err);
/* Deletes the version with its tags, lineage and the aliases naming it.
 * Its number is not reused. */
TW_API int tw_meta_version_delete(tw_meta *m, const char *model,
                                  int64_t version, tw_err *err);
TW_API int tw_meta_version_tag_set(tw_meta *m, const char *model,
                                   int64_t version, const char *key,
                                   const char *value, tw_err *err);
TW_API int tw_meta_version_tag_delete(tw_meta *m, const char *model,
                                      int64_t version, const char *key,
                                      tw_err *err);
TW_API int tw_meta_version_search(tw_meta *m, const tw_meta_query *q,
                                  tw_arena *arena, tw_meta_version_page *out,
                                  tw_err *err);

/* --- Aliases -------------------------------------------------------------- */

/* Points alias of model at version, creating it or moving it in one
 * statement (readers see the old or the new version, never neither). */
TW_API int tw_meta_alias_set(tw_meta *m, const char *model, const char *alias,
                             int64_t version, tw_err *err);
TW_API int tw_meta_alias_delete(tw_meta *m, const char *model,
                                const char *alias, tw_err *err);
/* Writes the version alias names to *version. */
TW_API int tw_meta_alias_get(tw_meta *m, const char *model, const char *alias,
                             int64_t *version, tw_err *err);

/* --- Schema registry -------------------------------------------------------
 * The subjects, versions and schemas of the Confluent-compatible schema
 * registry `twin serve` answers (docs/schema-registry.md, ADR 0018). A
 * schema is stored once per (type, text) and keeps its global id for good,
 * even when every version naming it is deleted; a subject's versions (1,
 * 2, ...) name schemas. A version is deleted softly first (it stays, marked
 * deleted, and its number is not reused), then permanently. Texts are
 * compared byte for byte: callers canonicalise them first. A subject is 1
 * to TW_META_SR_SUBJECT_MAX bytes of UTF-8 without control characters; an
 * unknown subject, version or id is TW_ENOENT naming it. */

#define TW_META_SR_SUBJECT_MAX 255
#define TW_META_SR_SCHEMA_MAX ((size_t)1 << 20)
#define TW_META_SR_TYPE_MAX 32
#define TW_META_SR_LEVEL_MAX 32

/* One version of a subject, or (subject NULL, version 0) a schema. */
typedef struct tw_meta_sr_version {
  const char *subject;
  int64_t version;
  int64_t id;         /* the schema's global id */
  const char *type;   /* "JSON", ... */
  const char *schema; /* the text */
  bool deleted;       /* soft-deleted */
} tw_meta_sr_version;

/* Called by tw_meta_sr_register inside its transaction, before a new
 * version is added, with the subject's live versions (oldest first; n may
 * be 0) and the compatibility level in force: the subject's, else the
 * global one, else "BACKWARD". A failure refuses the registration: its
 * code and message are what tw_meta_sr_register returns. */
typedef int (*tw_meta_sr_check_fn)(void *ud, const char *level,
                                   const tw_meta_sr_version *live, size_t n,
                                   tw_err *err);

/* Registers schema (type) under subject: when a live version of the
 * subject already holds that text, *out is that version and nothing
 * changes; else the schema gets its global id (the existing one when any
 * subject registered the same text before), check (may be NULL) runs, and
 * the version after the subject's highest, deleted ones included, is
 * added. *out lives in arena. */
TW_API int tw_meta_sr_register(tw_meta *m, const char *subject,
                               const char *type, const char *schema,
                               tw_meta_sr_check_fn check, void *ud,
                               tw_arena *arena, tw_meta_sr_version *out,
                               tw_err *err);
/* The version of subject holding schema (type): live ones, and
 * soft-deleted ones too when deleted; the newest such. TW_ENOENT. */
TW_API int tw_meta_sr_lookup(tw_meta *m, const char *subject, const char *type,
                             const char *schema, bool deleted, tw_arena *arena,
                             tw_meta_sr_version *out, tw_err *err);
/* The schema of global id (out->subject NULL, out->version 0). */
TW_API int tw_meta_sr_schema_get(tw_meta *m, int64_t id, tw_arena *arena,
                                 tw_meta_sr_version *out, tw_err *err);
/* The versions naming schema id, by subject then version (soft-deleted
 * ones too when deleted); *n may be 0 for an id whose versions are all
 * gone. TW_ENOENT for an id never given. */
TW_API int tw_meta_sr_schema_uses(tw_meta *m, int64_t id, bool deleted,
                                  tw_arena *arena, tw_meta_sr_version **out,
                                  size_t *n, tw_err *err);
/* The subjects with a live version (or any version, when deleted), sorted
 * bytewise. */
TW_API int tw_meta_sr_subjects(tw_meta *m, bool deleted, tw_arena *arena,
                               const char ***out, size_t *n, tw_err *err);
/* The version numbers of subject, ascending. TW_ENOENT when it has none
 * (live ones, unless deleted). */
TW_API int tw_meta_sr_versions(tw_meta *m, const char *subject, bool deleted,
                               tw_arena *arena, int64_t **out, size_t *n,
                               tw_err *err);
/* Version version of subject, or its newest with version -1 (live ones;
 * soft-deleted ones too when deleted). TW_ENOENT. */
TW_API int tw_meta_sr_version_get(tw_meta *m, const char *subject,
                                  int64_t version, bool deleted,
                                  tw_arena *arena, tw_meta_sr_version *out,
                                  tw_err *err);
/* Deletes version of subject (0: every version of it). Soft: the live
 * versions named are marked deleted (TW_ENOENT when there is none).
 * Permanent: the versions are removed, which must all be soft-deleted
 * already (TW_ESTATE otherwise); removing a whole subject removes its
 * compatibility level too. *out (in arena) gets the version numbers
 * deleted, ascending. */
TW_API int tw_meta_sr_delete(tw_meta *m, const char *subject, int64_t version,
                             bool permanent, tw_arena *arena, int64_t **out,
                             size_t *n, tw_err *err);
/* The compatibility level of subject (NULL: the global one) into *level
 * (in arena); TW_ENOENT when none is set. */
TW_API int tw_meta_sr_config_get(tw_meta *m, const char *subject,
                                 tw_arena *arena, const char **level,
                                 tw_err *err);
/* Sets (level non-NULL) or removes (NULL; TW_ENOENT when none was set)
 * the compatibility level of subject (NULL: the global one). The level is
 * stored as given: callers check it. */
TW_API int tw_meta_sr_config_set(tw_meta *m, const char *subject,
                                 const char *level, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_META_H */
