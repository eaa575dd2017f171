/*
 * json.h - helpers over jansson: parsing with located errors, typed and
 * checked field access, canonical dumping.
 *
 * Twin reads JSON from users (graphs, descriptors, requests) and from guest
 * models, so every accessor validates type and range and reports the place
 * in the message: "graph.json:3:14: error: ..." for syntax errors, and the
 * JSON path ("params[2].min") for semantic ones. jansson's allocations are
 * routed through tw_alloc, so allocation-failure tests cover them.
 *
 * Ownership follows jansson: *out values from parse/load are new references
 * the caller json_decref()s; getters return borrowed references valid while
 * the parent lives.
 *
 * Thread safety: jansson values are not thread-safe; functions here may be
 * called from any thread on values that thread owns.
 */
#ifndef TWIN_JSON_H
#define TWIN_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* Limits applied by the parser to hostile input. */
#define TW_JSON_MAX_DEPTH 128

/* Parses data[0..len) (which need not be NUL-terminated). Rejects duplicate
 * object keys, NUL bytes inside strings, nesting deeper than
 * TW_JSON_MAX_DEPTH, and trailing garbage. On error returns TW_EPARSE with
 * "SOURCE:LINE:COL: error: MESSAGE" (source defaults to "<input>") and
 * leaves *out untouched; TW_ENOMEM if memory runs out. */
TW_API int tw_json_parse(const char *data, size_t len, const char *source,
                         json_t **out, tw_err *err);

/* A fast path for small flat records (live telemetry): scans data as an
 * object whose member values are scalars or arrays of scalars, without
 * allocating. Strings are accepted only when plain (printable ASCII, no
 * escapes). Returns TW_OK with the members, or TW_ENOTSUP for anything
 * else - nested objects, escapes, non-ASCII, duplicate keys, more members
 * or items than given room, and every malformed input - in which case the
 * caller parses with tw_json_parse, which accepts exactly the same
 * successful inputs with the same values and words the errors. */
typedef enum tw_json_flat_type {
  TW_JSON_FLAT_NULL,
  TW_JSON_FLAT_TRUE,
  TW_JSON_FLAT_FALSE,
  TW_JSON_FLAT_INT,
  TW_JSON_FLAT_REAL,
  TW_JSON_FLAT_STRING,
  TW_JSON_FLAT_ARRAY
} tw_json_flat_type;

typedef struct tw_json_flat_value {
  tw_json_flat_type type;
  int64_t i;       /* INT */
  double d;        /* REAL; INT as a double */
  size_t first, n; /* ARRAY: items[first .. first + n) */
} tw_json_flat_value;

typedef struct tw_json_flat_member {
  const char *key; /* into data, not terminated */
  size_t key_len;
  tw_json_flat_value v;
} tw_json_flat_member;

TW_API int tw_json_scan_flat(const char *data, size_t len,
                             tw_json_flat_member *members, size_t mcap,
                             size_t *nmembers, tw_json_flat_value *items,
                             size_t icap);

/* Largest file tw_json_load_file reads (TW_ELIMIT beyond). */
#define TW_JSON_MAX_FILE ((size_t)256 << 20)

/* Reads and parses a file; the path is the diagnostic source. */
TW_API int tw_json_load_file(const char *path, json_t **out, tw_err *err);

/* A parsed document that remembers where each value started, for
 * semantic diagnostics "SOURCE:LINE:COL: error: ..." on valid JSON (a
 * graph referring to an unknown block, say). Parsing is tw_json_parse's.
 * The YAML front end (twin/yaml.h) builds the same documents, so one
 * validator serves both.
 *
 * Places are byte offsets into a copy of the text, reported as 1-based
 * line and column (in characters, lines split at '\n'). A document keeps
 * three kinds of place: where a value starts (objects, arrays, strings,
 * numbers: true/false/null are shared jansson singletons and have none),
 * where a member's key and value start, and where an array item starts.
 * The last two exist for every member and item, singletons included. They
 * describe the document as built: after the caller changes a container,
 * the places of what changed are unspecified (never out of bounds).
 *
 * A document is used by one thread at a time; the where functions only
 * read and may run concurrently with each other. */
typedef struct tw_json_doc tw_json_doc;
TW_API int tw_json_parse_doc(const char *data, size_t len, const char *source,
                             tw_json_doc **out, tw_err *err);
TW_API int tw_json_load_doc(const char *path, tw_json_doc **out, tw_err *err);
TW_API void tw_json_doc_free(tw_json_doc *d);
/* A document over a value built by another parser (a DSL that maps onto
 * JSON): root is owned by the document; text and source are copied.
 * Returns TW_ENOMEM (root not taken) on allocation failure. */
TW_API int tw_json_doc_new(json_t *root, const char *text, size_t len,
                           const char *source, tw_json_doc **out);
/* Places for builders. tw_json_doc_mark records that v starts at byte
 * offset of the text (a no-op for true/false/null).
 * tw_json_doc_mark_member records where member key of obj has its key and
 * its value; tw_json_doc_mark_item where item index of arr starts. The
 * member or item must already be in the container (TW_EINVAL otherwise).
 * A later record for the same value, member or item replaces the earlier
 * one: jansson may give a freed value's address to a new one. TW_ENOMEM
 * leaves the document as it was. */
TW_API int tw_json_doc_mark(tw_json_doc *d, const json_t *v, size_t offset);
TW_API int tw_json_doc_mark_member(tw_json_doc *d, const json_t *obj,
                                   const char *key, size_t key_offset,
                                   size_t value_offset);
TW_API int tw_json_doc_mark_item(tw_json_doc *d, const json_t *arr,
                                 size_t index, size_t offset);
/* Document transforms that keep places. tw_json_doc_dup makes *out, a
 * deep copy of v (new reference; v need not be in d's tree) whose parts
 * keep the places of v's parts, and places the copy itself at offset (the
 * place of an alias or an "extends" that asked for it); it recurses as
 * deep as v. tw_json_doc_update_missing sets in obj every member of other
 * that obj lacks, sharing the value like json_object_update_missing, with
 * the key and value places it had in other. Both return TW_ENOMEM on
 * allocation failure, when update_missing may have set some members. */
TW_API int tw_json_doc_dup(tw_json_doc *d, const json_t *v, size_t offset,
                           json_t **out);
TW_API int tw_json_doc_update_missing(tw_json_doc *d, json_t *obj,
                                      const json_t *other);
/* The root value (borrowed) and the source name. */
TW_API json_t *tw_json_doc_root(const tw_json_doc *d);
TW_API const char *tw_json_doc_source(const tw_json_doc *d);
/* 1-based line and column (in characters) where v starts; false when v is
 * not a value of d, or is true/false/null (shared values without a place:
 * ask tw_json_doc_where_member or _item instead). */
TW_API bool tw_json_doc_where(const tw_json_doc *d, const json_t *v,
                              unsigned *line, unsigned *col);
/* Where the key of member key of obj starts (for "unknown key"
 * diagnostics), where its value starts, and where item index of arr
 * starts; these work for true/false/null too. where_member and where_item
 * fall back on tw_json_doc_where of the value when the builder recorded no
 * member place. False when obj has no such member, arr no such item, or
 * the place is unknown; *line and *col are then untouched. */
TW_API bool tw_json_doc_where_key(const tw_json_doc *d, const json_t *obj,
                                  const char *key, unsigned *line,
                                  unsigned *col);
TW_API bool tw_json_doc_where_member(const tw_json_doc *d, const json_t *obj,
                                     const char *key, unsigned *line,
                                     unsigned *col);
TW_API bool tw_json_doc_where_item(const tw_json_doc *d, const json_t *arr,
                                   size_t index, unsigned *line, unsigned *col);

/* Dump flags. Default: compact, keys in insertion order. */
#define TW_JSON_SORT_KEYS 0x1u
#define TW_JSON_PRETTY 0x2u /* two-space indent */

/* Appends the serialisation of v to out. With TW_JSON_SORT_KEYS the output
 * is canonical (same value -> same bytes), which digests rely on. Reals are
 * printed with 17 significant digits so they round-trip exactly. */
TW_API int tw_json_dump(const json_t *v, unsigned flags, tw_buf *out);

/* Typed access to member key of obj. where names obj in messages
 * ("descriptor", "params[2]"). When the member is absent: if required,
 * TW_EINVAL "WHERE: missing required field 'KEY'"; otherwise TW_OK with the
 * output untouched (so callers preset defaults). A member of the wrong type
 * is TW_ETYPE; a number outside [min,max] or not finite is TW_ERANGE.
 * Strings are borrowed from obj. */
TW_API int tw_json_get_str(const json_t *obj, const char *where,
                           const char *key, bool required, const char **out,
                           tw_err *err);
TW_API int tw_json_get_int(const json_t *obj, const char *where,
                           const char *key, bool required, int64_t min,
                           int64_t max, int64_t *out, tw_err *err);
TW_API int tw_json_get_f64(const json_t *obj, const char *where,
                           const char *key, bool required, double min,
                           double max, double *out, tw_err *err);
TW_API int tw_json_get_bool(const json_t *obj, const char *where,
                            const char *key, bool required, bool *out,
                            tw_err *err);
TW_API int tw_json_get_array(const json_t *obj, const char *where,
                             const char *key, bool required, json_t **out,
                             tw_err *err);
TW_API int tw_json_get_object(const json_t *obj, const char *where,
                              const char *key, bool required, json_t **out,
                              tw_err *err);

/* Fails with TW_EINVAL "WHERE: unknown field 'KEY'" for the first member
 * of obj whose key is not in the NULL-terminated list allowed. Keys that
 * start with "x-" are extensions and always allowed. */
TW_API int tw_json_check_keys(const json_t *obj, const char *where,
                              const char *const *allowed, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_JSON_H */
