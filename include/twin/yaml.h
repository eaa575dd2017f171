/*
 * yaml.h - YAML front end of tw_json_doc: a YAML file becomes the same
 * located jansson document the JSON reader makes, so validators (twin
 * compose files, say) report "FILE:LINE:COL: error: MESSAGE" on YAML and
 * JSON alike.
 *
 * The reader is libyaml's event parser; the tree, the scalar resolution and
 * the limits are ours:
 *
 *   - One document per file. A stream with no document (an empty file, or
 *     comments only) is an error, as is a second document.
 *   - Mappings become objects with members in file order, sequences arrays.
 *     Keys are scalars taken as strings ("1:" is the key "1"); a key that is
 *     a mapping or a sequence is an error, and so is a duplicate key.
 *   - Plain scalars resolve by the YAML 1.2 core schema: null, Null, NULL,
 *     ~ and the empty scalar are null; true/True/TRUE and false/False/FALSE
 *     booleans; [-+]digits, 0o777 and 0xFF integers (which must fit int64);
 *     floats as in 1.5, .5, 1., 1e3, -2.5E-3. Everything else, quoted
 *     scalars and block scalars are strings. YAML 1.1's yes/no/on/off/y/n
 *     stay strings (no "Norway problem": the country code NO is "NO").
 *   - .inf, -.inf and .nan are floats of the schema but an error here: Twin
 *     documents hold finite numbers only (jansson cannot hold others).
 *   - Tags: !!str, !!int, !!float, !!bool, !!null on scalars, !!map and
 *     !!seq on collections, and the non-specific "!"; any other tag is an
 *     error naming it.
 *   - Anchors and aliases are expanded into deep copies (the tree has no
 *     shared parts). A copy is placed at its alias; its parts keep the
 *     places of the anchored node. The merge key "<<" (YAML 1.1, as in
 *     docker-compose files) takes a mapping or a sequence of mappings:
 *     explicit keys win over merged ones, earlier mappings over later ones,
 *     and merged keys that no explicit key overrides follow the explicit
 *     ones in the object.
 *   - Limits against hostile input ("billion laughs"): the number of values
 *     in the result, alias and merge copies included, and the nesting
 *     depth, aliases included. Exceeding one is TW_ELIMIT, found before the
 *     memory is spent.
 *   - Input is UTF-8, with or without a byte order mark (which is not part
 *     of the document text: columns start after it). Strings never hold a
 *     NUL byte ("\0" escapes are an error).
 *
 * Places are those of tw_json_doc (1-based line and column in characters,
 * lines split at '\n'): every value, member key, member value and array
 * item of the result can be located, booleans and nulls included, through
 * tw_json_doc_where, _where_key, _where_member and _where_item.
 *
 * Thread safety: calls on different documents may run concurrently.
 */
#ifndef TWIN_YAML_H
#define TWIN_YAML_H

#include "twin/common.h"
#include "twin/error.h"
#include "twin/json.h"

TW_EXTERN_C_BEGIN

/* Default and largest limits. */
#define TW_YAML_MAX_NODES ((size_t)1000000)
#define TW_YAML_MAX_DEPTH 256u
/* Largest file tw_yaml_load_doc reads (TW_ELIMIT beyond). */
#define TW_YAML_MAX_FILE TW_JSON_MAX_FILE

typedef struct tw_yaml_opts {
  /* Values the result may hold (scalars and collections, aliased copies
   * included); 0 means TW_YAML_MAX_NODES. */
  size_t max_nodes;
  /* Deepest nesting of collections, aliased ones included; 0 or more than
   * TW_YAML_MAX_DEPTH means TW_YAML_MAX_DEPTH (the limit also bounds the
   * recursion of whoever walks the result). */
  unsigned max_depth;
} tw_yaml_opts;

/* Parses the YAML text[0..len) (which need not be NUL-terminated) into a
 * new document *out (free with tw_json_doc_free). source names the text in
 * messages ("<input>" when NULL or empty); opts may be NULL for the
 * defaults. On failure *out is untouched and the return is
 *   TW_EPARSE  "SOURCE:LINE:COL: error: MESSAGE" for a syntax error
 *              (libyaml's problem text and place), invalid UTF-8, a
 *              duplicate key ("duplicate key 'k' (first at 3:5)"), an
 *              unsupported tag, an undefined or recursive alias, a scalar
 *              that does not fit its type, a bad merge, no document or two;
 *   TW_ELIMIT  a limit of opts, in the same form;
 *   TW_ENOMEM  out of memory. */
TW_API int tw_yaml_parse_doc(const char *text, size_t len, const char *source,
                             const tw_yaml_opts *opts, tw_json_doc **out,
                             tw_err *err);

/* Reads the file at path (at most TW_YAML_MAX_FILE bytes) and parses it
 * with path as the source name. Errors as tw_yaml_parse_doc, plus the file
 * errors of tw_file_read_all. */
TW_API int tw_yaml_load_doc(const char *path, const tw_yaml_opts *opts,
                            tw_json_doc **out, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_YAML_H */
