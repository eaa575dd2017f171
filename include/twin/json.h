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

/* Largest file tw_json_load_file reads (TW_ELIMIT beyond). */
#define TW_JSON_MAX_FILE ((size_t)256 << 20)

/* Reads and parses a file; the path is the diagnostic source. */
TW_API int tw_json_load_file(const char *path, json_t **out, tw_err *err);

/* A parsed document that remembers where each value started, for
 * semantic diagnostics "SOURCE:LINE:COL: error: ..." on valid JSON (a
 * graph referring to an unknown block, say). Parsing is tw_json_parse's. */
typedef struct tw_json_doc tw_json_doc;
TW_API int tw_json_parse_doc(const char *data, size_t len, const char *source,
                             tw_json_doc **out, tw_err *err);
TW_API int tw_json_load_doc(const char *path, tw_json_doc **out, tw_err *err);
TW_API void tw_json_doc_free(tw_json_doc *d);
/* A document over a value built by another parser (a DSL that maps onto
 * JSON): root is owned by the document; text and source are copied.
 * tw_json_doc_mark records that v starts at byte offset of text. */
TW_API int tw_json_doc_new(json_t *root, const char *text, size_t len,
                           const char *source, tw_json_doc **out);
TW_API int tw_json_doc_mark(tw_json_doc *d, const json_t *v, size_t offset);
/* The root value (borrowed) and the source name. */
TW_API json_t *tw_json_doc_root(const tw_json_doc *d);
TW_API const char *tw_json_doc_source(const tw_json_doc *d);
/* 1-based line and column (in characters) where v starts; false when v is
 * not a value of d, or is true/false/null (shared values without a place). */
TW_API bool tw_json_doc_where(const tw_json_doc *d, const json_t *v,
                              unsigned *line, unsigned *col);

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
