/*
 * yaml.c - YAML into a located tw_json_doc (twin/yaml.h), over libyaml's
 * event parser.
 *
 * libyaml tokenizes and parses; this file owns everything after the
 * events: scalar resolution (YAML 1.2 core schema), tags, anchors and
 * aliases, the merge key, duplicate keys, limits and places. It never uses
 * libyaml's document loader, which resolves nothing, shares aliased nodes
 * and has no expansion limit.
 *
 * Invariants while loading:
 *   - a collection is attached to its parent (or becomes the document
 *     root) when it starts, so the document owns every value and an error
 *     anywhere frees everything with the document; the frame stack only
 *     borrows the open collections;
 *   - ld->nodes counts every value made, copies included, and is checked
 *     against the limit before a copy is made, so an alias bomb fails
 *     after at most max_nodes values of work;
 *   - the open collections are at most max_depth (<= TW_YAML_MAX_DEPTH)
 *     deep, copies included, which bounds tw_json_doc_dup's recursion;
 *   - an anchor's entry has no value while its node is open, so an alias
 *     inside the node it names is caught (it would be a cycle).
 *
 * Places: libyaml's marks count characters from the start of the text it
 * was given; a cursor turns them into byte offsets (marks arrive almost in
 * order, so the walk is linear overall). The input is validated as UTF-8
 * first, and a byte order mark is dropped before libyaml and the document
 * see the text, so columns match what editors show.
 */
#include <assert.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base_int.h"
#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/yaml.h"

#define CORE_TAG "tag:yaml.org,2002:"
#define NO_ANCHOR SIZE_MAX
#define NO_PLACE SIZE_MAX

static pthread_once_t yaml_once = PTHREAD_ONCE_INIT;
static locale_t c_locale; /* for strtod_l: LC_NUMERIC may use ',' */

static void yaml_setup(void) {
  c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

typedef struct anchor {
  json_t *v;       /* the anchored value (a reference); NULL while open */
  size_t nodes;    /* values it holds, itself included */
  unsigned height; /* nesting it adds: 0 for a scalar */
} anchor;

typedef struct frame {
  json_t *v;       /* the open object or array, owned by its parent */
  size_t anchor;   /* its entry in ld->anchors, or NO_ANCHOR */
  size_t nodes0;   /* ld->nodes before it was made */
  unsigned height; /* nesting of its tallest child */
  bool is_map;
  bool merge_list; /* a sequence that is the value of '<<' */
  /* Mappings: the key read, waiting for its value. */
  bool have_key;
  bool key_merge; /* the key is '<<' */
  char *key;
  size_t key_at;
  size_t merge_at; /* where the '<<' key is, or NO_PLACE */
  json_t *merges;  /* the values of '<<' (an array), or NULL */
} frame;

typedef struct loader {
  const char *text; /* after the byte order mark */
  size_t len;
  const char *source;
  tw_err *err;
  yaml_parser_t yp;
  tw_json_doc *doc; /* made with the root value */
  frame *stack;
  unsigned depth, cap;
  anchor *anchors;
  size_t nanchors, acap;
  json_t *names; /* anchor name -> index in anchors (jansson's seeded hash) */
  size_t nodes, max_nodes;
  unsigned max_depth;
  unsigned ndocs;
  size_t cur_char, cur_byte; /* the mark cursor */
} loader;

/* --- Messages -------------------------------------------------------- */

/* Line and column (1-based, in characters) of byte offset at, as
 * tw_json_doc_where counts them. */
static void line_col(const loader *ld, size_t at, unsigned *line,
                     unsigned *col) {
  unsigned l = 1, c = 1;
  for (size_t i = 0; i < at && i < ld->len; i++) {
    if (ld->text[i] == '\n') {
      l++;
      c = 1;
    } else if (((unsigned char)ld->text[i] & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

static int fail(loader *ld, int code, size_t at, const char *fmt, ...)
    TW_PRINTF(4, 5);
static int fail(loader *ld, int code, size_t at, const char *fmt, ...) {
  if (ld->err == NULL || ld->err->code != TW_OK)
    return code; /* nobody reads the message: skip the line count */
  unsigned l, c;
  line_col(ld, at, &l, &c);
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tw_err_set(ld->err, code, "%s:%u:%u: error: %s", ld->source, l, c,
                    msg);
}

static int nomem(loader *ld) {
  return tw_err_set(ld->err, TW_ENOMEM, "%s: out of memory parsing YAML",
                    ld->source);
}

/* The suffix of a tag of the core schema, or NULL. */
static const char *core_suffix(const char *tag) {
  return strncmp(tag, CORE_TAG, sizeof CORE_TAG - 1) == 0
             ? tag + sizeof CORE_TAG - 1
             : NULL;
}

/* A tag for messages, quoted: '!!int' for the core ones (as written in
 * the file), else in full. */
static void tag_name(const char *tag, char *out, size_t cap) {
  const char *core = core_suffix(tag);
  bool plain = core != NULL && strlen(core) < 32;
  for (const char *c = core; plain && *c != '\0'; c++)
    plain = *c > 0x20 && *c < 0x7F && *c != '\'';
  if (plain)
    (void)snprintf(out, cap, "'!!%s'", core);
  else
    tw__quote_text(tag, strlen(tag), out, cap);
}

/* An alias for messages: '*name'. */
static void alias_name(const char *name, char *out, size_t cap) {
  char star[64];
  (void)snprintf(star, sizeof star, "*%s", name);
  tw__quote_text(star, strlen(star), out, cap);
}

/* --- Places ---------------------------------------------------------- */

/* Byte offset of libyaml's mark (a character index into ld->text). */
static size_t offset_of(loader *ld, yaml_mark_t m) {
  while (ld->cur_char < m.index && ld->cur_byte < ld->len) {
    unsigned char c = (unsigned char)ld->text[ld->cur_byte];
    ld->cur_byte += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    ld->cur_char++;
  }
  while (ld->cur_char > m.index && ld->cur_byte > 0) {
    ld->cur_byte--;
    while (ld->cur_byte > 0 &&
           ((unsigned char)ld->text[ld->cur_byte] & 0xC0) == 0x80)
      ld->cur_byte--;
    ld->cur_char--;
  }
  return ld->cur_byte < ld->len ? ld->cur_byte : ld->len;
}

/* --- Scalars --------------------------------------------------------- */

enum kind { K_AUTO, K_STR, K_NULL, K_BOOL, K_INT, K_FLOAT };

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool text_is(const char *s, size_t n, const char *const *words) {
  for (size_t i = 0; words[i] != NULL; i++)
    if (strlen(words[i]) == n && memcmp(words[i], s, n) == 0)
      return true;
  return false;
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {
    ".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
    "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  NULL};

static int digit_in(char c, unsigned base) {
  int d = c >= '0' && c <= '9'   ? c - '0'
          : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                 : 99;
  return d < (int)base ? d : -1;
}

/* Reads a core-schema integer: [-+]?[0-9]+, 0o[0-7]+ or 0x[0-9a-fA-F]+.
 * Returns 1 with *out set, 0 if s is not an integer, -1 if it is one that
 * does not fit int64. */
static int int_text(const char *s, size_t n, int64_t *out) {
  size_t i = 0;
  unsigned base = 10;
  bool neg = false;
  if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    base = s[1] == 'o' ? 8 : 16;
    i = 2;
  } else if (n > 0 && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    i = 1;
  }
  if (i == n)
    return 0;
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  uint64_t v = 0;
  bool over = false;
  for (; i < n; i++) {
    int d = digit_in(s[i], base);
    if (d < 0)
      return 0;
    if (v > (limit - (unsigned)d) / base)
      over = true;
    else
      v = v * base + (unsigned)d;
  }
  if (over)
    return -1;
  if (neg)
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  else
    *out = (int64_t)v;
  return 1;
}

/* Matches [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?,
 * a subset of what strtod reads. */
static bool float_text(const char *s, size_t n) {
  size_t i = 0, whole = 0, frac = 0;
  if (i < n && (s[i] == '-' || s[i] == '+'))
    i++;
  for (; i < n && is_digit(s[i]); i++)
    whole++;
  if (i < n && s[i] == '.')
    for (i++; i < n && is_digit(s[i]); i++)
      frac++;
  if (whole == 0 && frac == 0)
    return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+'))
      i++;
    size_t exp = 0;
    for (; i < n && is_digit(s[i]); i++)
      exp++;
    if (exp == 0)
      return false;
  }
  return i == n;
}

static int bad_scalar(loader *ld, size_t at, const char *prefix, const char *s,
                      size_t n, const char *what);

/* Converts a scalar of float syntax (NUL-terminated, as libyaml's are). */
static int make_real(loader *ld, const char *s, size_t n, size_t at,
                     json_t **out) {
  double x =
      c_locale != (locale_t)0 ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
  if (!isfinite(x))
    return bad_scalar(ld, at, "number ", s, n, "is out of range");
  *out = json_real(x);
  return *out != NULL ? TW_OK : nomem(ld);
}

/* Strings must be valid UTF-8 without NUL (a "\0" escape can make one). */
static int check_text(loader *ld, const char *s, size_t n, size_t at) {
  if (memchr(s, '\0', n) != NULL)
    return fail(ld, TW_EPARSE, at, "a string holds a NUL byte");
  if (!tw__utf8_valid(s, n))
    return fail(ld, TW_EPARSE, at, "a string is not valid UTF-8");
  return TW_OK;
}

/* Fails for tag, which does not fit a node of that kind: a core tag of the
 * wrong kind or a tag Twin does not know. */
static int bad_tag(loader *ld, const char *tag, const char *kind, size_t at) {
  static const char *const core[] = {"str",   "null", "bool", "int",
                                     "float", "map",  "seq",  NULL};
  const char *suffix = core_suffix(tag);
  char shown[64];
  tag_name(tag, shown, sizeof shown);
  if (suffix != NULL && text_is(suffix, strlen(suffix), core))
    return fail(ld, TW_EPARSE, at, "tag %s on a %s", shown, kind);
  return fail(ld, TW_EPARSE, at, "unsupported tag %s", shown);
}

/* The kind a scalar's tag asks for. */
static int scalar_kind(loader *ld, const yaml_event_t *ev, size_t at,
                       enum kind *kind) {
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag == NULL) {
    *kind = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? K_AUTO : K_STR;
    return TW_OK;
  }
  static const struct {
    const char *tag;
    enum kind kind;
  } tags[] = {{"!", K_STR},
              {CORE_TAG "str", K_STR},
              {CORE_TAG "null", K_NULL},
              {CORE_TAG "bool", K_BOOL},
              {CORE_TAG "int", K_INT},
              {CORE_TAG "float", K_FLOAT}};
  for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
    if (strcmp(tag, tags[i].tag) == 0) {
      *kind = tags[i].kind;
      return TW_OK;
    }
  }
  return bad_tag(ld, tag, "scalar", at);
}

/* Fails with "PREFIX'TEXT' WHAT" for the scalar s[0..n). */
static int bad_scalar(loader *ld, size_t at, const char *prefix, const char *s,
                      size_t n, const char *what) {
  char shown[64];
  tw__quote_text(s, n, shown, sizeof shown);
  return fail(ld, TW_EPARSE, at, "%s%s %s", prefix, shown, what);
}

/* Makes the value of a scalar event (libyaml's text is NUL-terminated). */
static int scalar_value(loader *ld, const yaml_event_t *ev, size_t at,
                        json_t **out) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  enum kind kind = K_STR;
  int rc = scalar_kind(ld, ev, at, &kind);
  if (rc != TW_OK)
    return rc;
  bool any = kind == K_AUTO;
  if ((any || kind == K_NULL) && text_is(s, n, null_words)) {
    *out = json_null();
    return TW_OK;
  }
  if ((any || kind == K_BOOL) &&
      (text_is(s, n, true_words) || text_is(s, n, false_words))) {
    *out = json_boolean(text_is(s, n, true_words));
    return TW_OK;
  }
  int64_t i = 0;
  int is_int = any || kind == K_INT || kind == K_FLOAT ? int_text(s, n, &i) : 0;
  if ((any || kind == K_INT) && is_int != 0) {
    if (is_int < 0)
      return bad_scalar(ld, at, "integer ", s, n, "does not fit in 64 bits");
    *out = json_integer(i);
    return *out != NULL ? TW_OK : nomem(ld);
  }
  if (any || kind == K_FLOAT) {
    if (float_text(s, n))
      return make_real(ld, s, n, at, out);
    if (is_int > 0) { /* !!float 0x10 */
      *out = json_real((double)i);
      return *out != NULL ? TW_OK : nomem(ld);
    }
    if (text_is(s, n, inf_words))
      return bad_scalar(ld, at, "", s, n,
                        "is not a finite number (Twin documents hold finite "
                        "numbers only)");
  }
  static const char *const want[] = {"",
                                     "",
                                     "is not a null",
                                     "is not a boolean",
                                     "is not an integer",
                                     "is not a float"};
  if (!any && kind != K_STR)
    return bad_scalar(ld, at, "", s, n, want[kind]);
  if ((rc = check_text(ld, s, n, at)) != TW_OK)
    return rc;
  *out = json_stringn_nocheck(s, n);
  return *out != NULL ? TW_OK : nomem(ld);
}

/* --- Anchors --------------------------------------------------------- */

/* Starts an entry for anchor name (NULL: none) in *idx. */
static int anchor_open(loader *ld, const char *name, size_t *idx) {
  *idx = NO_ANCHOR;
  if (name == NULL)
    return TW_OK;
  if (ld->names == NULL && (ld->names = json_object()) == NULL)
    return nomem(ld);
  if (ld->nanchors == ld->acap) {
    size_t cap = ld->acap != 0 ? 2 * ld->acap : 16;
    anchor *a = tw_reallocarray(ld->anchors, cap, sizeof *a);
    if (a == NULL)
      return nomem(ld);
    ld->anchors = a;
    ld->acap = cap;
  }
  /* A later anchor of the same name hides the earlier one. */
  if (json_object_set_new_nocheck(ld->names, name,
                                  json_integer((json_int_t)ld->nanchors)) != 0)
    return nomem(ld);
  ld->anchors[ld->nanchors] = (anchor){NULL, 0, 0};
  *idx = ld->nanchors++;
  return TW_OK;
}

static void anchor_close(loader *ld, size_t idx, json_t *v, size_t nodes,
                         unsigned height) {
  if (idx != NO_ANCHOR)
    ld->anchors[idx] = (anchor){json_incref(v), nodes, height};
}

/* Finds the complete node alias name refers to. */
static int anchor_find(loader *ld, const char *name, size_t at,
                       const anchor **out) {
  json_t *ix = ld->names != NULL ? json_object_get(ld->names, name) : NULL;
  char shown[64];
  alias_name(name, shown, sizeof shown);
  if (ix == NULL)
    return fail(ld, TW_EPARSE, at, "undefined alias %s", shown);
  const anchor *a = &ld->anchors[json_integer_value(ix)];
  if (a->v == NULL)
    return fail(ld, TW_EPARSE, at, "alias %s refers to a node that contains it",
                shown);
  *out = a;
  return TW_OK;
}

/* --- The tree -------------------------------------------------------- */

static frame *top(loader *ld) {
  return ld->depth > 0 ? &ld->stack[ld->depth - 1] : NULL;
}

static bool wants_key(loader *ld) {
  frame *f = top(ld);
  return f != NULL && f->is_map && !f->have_key;
}

static int count_node(loader *ld, size_t n, size_t at) {
  if (n > ld->max_nodes - ld->nodes)
    return fail(ld, TW_ELIMIT, at,
                "the document expands to more than %zu values (aliases "
                "included)",
                ld->max_nodes);
  ld->nodes += n;
  return TW_OK;
}

#define MERGE_VALUE                                                            \
  "the value of a merge key '<<' must be a mapping or a sequence of mappings"

/* Checks the value of a '<<' key: a mapping or a list of mappings. */
static int check_merge(loader *ld, const json_t *v, size_t at) {
  bool ok = json_is_object(v) || json_is_array(v);
  for (size_t i = 0; ok && json_is_array(v) && i < json_array_size(v); i++)
    ok = json_is_object(json_array_get(v, i));
  return ok ? TW_OK : fail(ld, TW_EPARSE, at, MERGE_VALUE);
}

/* Attaches the new value v (a reference, taken even on failure) to the
 * open collection, or makes it the root, and records its places. */
static int attach(loader *ld, json_t *v, size_t at) {
  frame *f = top(ld);
  int rc = TW_OK;
  if (f == NULL) {
    if (tw_json_doc_new(v, ld->text, ld->len, ld->source, &ld->doc) != TW_OK) {
      json_decref(v);
      return nomem(ld);
    }
  } else if (!f->is_map) {
    if (f->merge_list && !json_is_object(v)) {
      json_decref(v);
      return fail(ld, TW_EPARSE, at, MERGE_VALUE);
    }
    if (json_array_append_new(f->v, v) != 0 ||
        tw_json_doc_mark_item(ld->doc, f->v, json_array_size(f->v) - 1, at) !=
            TW_OK)
      return nomem(ld);
  } else if (f->key_merge) {
    f->have_key = false;
    if ((rc = check_merge(ld, v, at)) != TW_OK) {
      json_decref(v);
      return rc;
    }
    if (f->merges == NULL && (f->merges = json_array()) == NULL) {
      json_decref(v);
      return nomem(ld);
    }
    if (json_array_append_new(f->merges, v) != 0)
      return nomem(ld);
  } else {
    assert(f->have_key);
    f->have_key = false;
    rc = json_object_set_new_nocheck(f->v, f->key, v) != 0 ||
                 tw_json_doc_mark_member(ld->doc, f->v, f->key, f->key_at,
                                         at) != TW_OK
             ? nomem(ld)
             : TW_OK;
    tw_free(f->key);
    f->key = NULL;
    if (rc != TW_OK)
      return rc;
  }
  return tw_json_doc_mark(ld->doc, v, at) == TW_OK ? TW_OK : nomem(ld);
}

/* Takes text[0..n) as the key of the open mapping f. merge: it is a plain
 * '<<'. */
static int take_key(loader *ld, frame *f, const char *s, size_t n, bool merge,
                    size_t at) {
  int rc = check_text(ld, s, n, at);
  if (rc != TW_OK)
    return rc;
  unsigned l = 0, c = 0;
  char shown[64];
  tw__quote_text(s, n, shown, sizeof shown);
  if (merge && f->merge_at != NO_PLACE) {
    line_col(ld, f->merge_at, &l, &c);
    return fail(ld, TW_EPARSE, at, "duplicate key %s (first at %u:%u)", shown,
                l, c);
  }
  if (!merge && json_object_get(f->v, s) != NULL) {
    (void)tw_json_doc_where_key(ld->doc, f->v, s, &l, &c);
    return fail(ld, TW_EPARSE, at, "duplicate key %s (first at %u:%u)", shown,
                l, c);
  }
  if (merge) {
    f->merge_at = at;
  } else if ((f->key = tw_strndup(s, n)) == NULL) {
    return nomem(ld);
  }
  f->key_at = at;
  f->key_merge = merge;
  f->have_key = true;
  return TW_OK;
}

static int on_key_scalar(loader *ld, const yaml_event_t *ev, size_t at) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag != NULL && strcmp(tag, "!") != 0 &&
      strcmp(tag, CORE_TAG "str") != 0) {
    char shown[64];
    tag_name(tag, shown, sizeof shown);
    return fail(ld, TW_EPARSE, at, "tag %s on a mapping key (keys are strings)",
                shown);
  }
  bool merge = tag == NULL &&
               ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n == 2 &&
               memcmp(s, "<<", 2) == 0;
  int rc = take_key(ld, top(ld), s, n, merge, at);
  /* An anchored key names its text, as a string. */
  size_t idx;
  if (rc == TW_OK && ev->data.scalar.anchor != NULL) {
    json_t *v = json_stringn_nocheck(s, n);
    if (v == NULL)
      return nomem(ld);
    rc = anchor_open(ld, (const char *)ev->data.scalar.anchor, &idx);
    if (rc == TW_OK)
      anchor_close(ld, idx, v, 1, 0);
    json_decref(v);
  }
  return rc;
}

static int on_scalar(loader *ld, const yaml_event_t *ev, size_t at) {
  if (wants_key(ld))
    return on_key_scalar(ld, ev, at);
  json_t *v = NULL;
  size_t idx;
  int rc = count_node(ld, 1, at);
  if (rc == TW_OK)
    rc = scalar_value(ld, ev, at, &v);
  if (rc == TW_OK)
    rc = anchor_open(ld, (const char *)ev->data.scalar.anchor, &idx);
  if (rc != TW_OK) {
    json_decref(v);
    return rc;
  }
  anchor_close(ld, idx, v, 1, 0);
  return attach(ld, v, at);
}

static int on_alias(loader *ld, const char *name, size_t at) {
  const anchor *a = NULL;
  int rc = anchor_find(ld, name, at, &a);
  if (rc != TW_OK)
    return rc;
  frame *f = top(ld);
  char shown[64];
  alias_name(name, shown, sizeof shown);
  if (wants_key(ld)) {
    if (!json_is_string(a->v))
      return fail(ld, TW_EPARSE, at,
                  "alias %s is used as a key but does not name a string",
                  shown);
    return take_key(ld, f, json_string_value(a->v), json_string_length(a->v),
                    false, at);
  }
  if (a->height > ld->max_depth - ld->depth)
    return fail(ld, TW_ELIMIT, at, "nesting deeper than %u (through alias %s)",
                ld->max_depth, shown);
  if ((rc = count_node(ld, a->nodes, at)) != TW_OK)
    return rc;
  json_t *v = NULL;
  assert(ld->doc != NULL); /* an anchor precedes, inside the root */
  if (tw_json_doc_dup(ld->doc, a->v, at, &v) != TW_OK)
    return nomem(ld);
  if (f != NULL && a->height > f->height)
    f->height = a->height;
  return attach(ld, v, at);
}

static int on_start(loader *ld, const yaml_event_t *ev, size_t at) {
  bool is_map = ev->type == YAML_MAPPING_START_EVENT;
  const char *what = is_map ? "mapping" : "sequence";
  const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag
                                          : ev->data.sequence_start.tag);
  const char *name = (const char *)(is_map ? ev->data.mapping_start.anchor
                                           : ev->data.sequence_start.anchor);
  if (wants_key(ld))
    return fail(ld, TW_EPARSE, at, "a mapping key must be a scalar, not a %s",
                what);
  if (tag != NULL && strcmp(tag, "!") != 0 &&
      strcmp(tag, is_map ? CORE_TAG "map" : CORE_TAG "seq") != 0)
    return bad_tag(ld, tag, what, at);
  if (ld->depth >= ld->max_depth)
    return fail(ld, TW_ELIMIT, at, "nesting deeper than %u", ld->max_depth);
  int rc = count_node(ld, 1, at);
  if (rc != TW_OK)
    return rc;
  if (ld->depth == ld->cap) {
    unsigned cap = ld->cap != 0 ? 2 * ld->cap : 16;
    frame *s = tw_reallocarray(ld->stack, cap, sizeof *s);
    if (s == NULL)
      return nomem(ld);
    ld->stack = s;
    ld->cap = cap;
  }
  frame *parent = top(ld);
  bool merge_list = !is_map && parent != NULL && parent->is_map &&
                    parent->have_key && parent->key_merge;
  json_t *v = is_map ? json_object() : json_array();
  if (v == NULL)
    return nomem(ld);
  size_t idx;
  if ((rc = attach(ld, v, at)) != TW_OK ||
      (rc = anchor_open(ld, name, &idx)) != TW_OK)
    return rc;
  ld->stack[ld->depth++] = (frame){.v = v,
                                   .anchor = idx,
                                   .nodes0 = ld->nodes - 1,
                                   .is_map = is_map,
                                   .merge_list = merge_list,
                                   .merge_at = NO_PLACE};
  return TW_OK;
}

/* Sets the merged keys that no explicit key overrides, earlier merged
 * mappings first. */
static int apply_merges(loader *ld, frame *f) {
  for (size_t i = 0; i < json_array_size(f->merges); i++) {
    json_t *m = json_array_get(f->merges, i);
    size_t n = json_is_array(m) ? json_array_size(m) : 1;
    for (size_t j = 0; j < n; j++) {
      json_t *src = json_is_array(m) ? json_array_get(m, j) : m;
      if (tw_json_doc_update_missing(ld->doc, f->v, src) != TW_OK)
        return nomem(ld);
    }
  }
  return TW_OK;
}

static int on_end(loader *ld) {
  frame *f = top(ld);
  assert(f != NULL);
  int rc = f->merges != NULL ? apply_merges(ld, f) : TW_OK;
  if (rc != TW_OK)
    return rc; /* the frame is released by the cleanup */
  json_decref(f->merges);
  tw_free(f->key);
  unsigned height = f->height + 1;
  anchor_close(ld, f->anchor, f->v, ld->nodes - f->nodes0, height);
  ld->depth--;
  frame *parent = top(ld);
  if (parent != NULL && height > parent->height)
    parent->height = height;
  return TW_OK;
}

static int on_event(loader *ld, const yaml_event_t *ev, bool *done) {
  size_t at = offset_of(ld, ev->start_mark);
  switch (ev->type) {
  case YAML_STREAM_END_EVENT:
    *done = true;
    if (ld->ndocs == 0)
      return fail(ld, TW_EPARSE, 0,
                  "no YAML document (the input is empty or holds only "
                  "comments)");
    return TW_OK;
  case YAML_DOCUMENT_START_EVENT:
    if (ld->ndocs++ > 0)
      return fail(ld, TW_EPARSE, at,
                  "a second document starts here; a file holds one document");
    return TW_OK;
  case YAML_ALIAS_EVENT:
    return on_alias(ld, (const char *)ev->data.alias.anchor, at);
  case YAML_SCALAR_EVENT:
    return on_scalar(ld, ev, at);
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT:
    return on_start(ld, ev, at);
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    return on_end(ld);
  case YAML_NO_EVENT:
  case YAML_STREAM_START_EVENT:
  case YAML_DOCUMENT_END_EVENT:
    break;
  }
  return TW_OK;
}

/* Reports libyaml's error: its problem, at its place. */
static int syntax_error(loader *ld) {
  const yaml_parser_t *p = &ld->yp;
  if (p->error == YAML_MEMORY_ERROR)
    return nomem(ld);
  const char *problem = p->problem != NULL ? p->problem : "syntax error";
  char extra[160] = "";
  size_t at;
  if (p->error == YAML_READER_ERROR) {
    at = p->problem_offset < ld->len ? p->problem_offset : ld->len;
    if (p->problem_value >= 0)
      (void)snprintf(extra, sizeof extra, " (U+%04X)",
                     (unsigned)p->problem_value);
  } else {
    at = offset_of(ld, p->problem_mark);
    if (p->context != NULL) {
      size_t cat = offset_of(ld, p->context_mark);
      unsigned l, c;
      line_col(ld, cat, &l, &c);
      if (cat == at)
        (void)snprintf(extra, sizeof extra, " (%s)", p->context);
      else
        (void)snprintf(extra, sizeof extra, " (%s at %u:%u)", p->context, l, c);
    }
  }
  return fail(ld, TW_EPARSE, at, "%s%s", problem, extra);
}

/* Fails unless text[0..len) is UTF-8. */
static int check_utf8(loader *ld) {
  const unsigned char *u = (const unsigned char *)ld->text;
  if (ld->len >= 2 &&
      ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF)))
    return fail(ld, TW_EPARSE, 0,
                "the input is UTF-16 (it starts with a UTF-16 byte order "
                "mark); YAML files must be UTF-8");
  for (size_t i = 0; i < ld->len;) {
    size_t k = tw__utf8_seq_len(u + i, ld->len - i);
    if (k == 0)
      return fail(ld, TW_EPARSE, i, "invalid UTF-8 byte 0x%02x", u[i]);
    i += k;
  }
  return TW_OK;
}

static int load(loader *ld) {
  int rc = check_utf8(ld);
  if (rc != TW_OK)
    return rc;
  if (!yaml_parser_initialize(&ld->yp))
    return nomem(ld);
  yaml_parser_set_input_string(&ld->yp, (const unsigned char *)ld->text,
                               ld->len);
  yaml_parser_set_encoding(&ld->yp, YAML_UTF8_ENCODING);
  bool done = false;
  while (rc == TW_OK && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&ld->yp, &ev)) {
      rc = syntax_error(ld);
      break;
    }
    rc = on_event(ld, &ev, &done);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&ld->yp);
  return rc;
}

int tw_yaml_parse_doc(const char *text, size_t len, const char *source,
                      const tw_yaml_opts *opts, tw_json_doc **out,
                      tw_err *err) {
  pthread_once(&yaml_once, yaml_setup);
  /* Routes jansson's allocations through tw_alloc before any value is
   * made; "null" parses without allocating. */
  json_t *null = NULL;
  (void)tw_json_parse("null", 4, NULL, &null, NULL);
  loader ld = {
      .text = text != NULL ? text : "",
      .len = text != NULL ? len : 0,
      .source = source != NULL && source[0] != '\0' ? source : "<input>",
      .err = err,
      .max_nodes = opts != NULL && opts->max_nodes != 0 ? opts->max_nodes
                                                        : TW_YAML_MAX_NODES,
      .max_depth = opts != NULL && opts->max_depth != 0 &&
                           opts->max_depth < TW_YAML_MAX_DEPTH
                       ? opts->max_depth
                       : TW_YAML_MAX_DEPTH,
  };
  if (ld.len >= 3 && memcmp(ld.text, "\xEF\xBB\xBF", 3) == 0) {
    ld.text += 3;
    ld.len -= 3;
  }
  int rc = load(&ld);
  for (unsigned i = 0; i < ld.depth; i++) {
    tw_free(ld.stack[i].key);
    json_decref(ld.stack[i].merges);
  }
  tw_free(ld.stack);
  for (size_t i = 0; i < ld.nanchors; i++)
    json_decref(ld.anchors[i].v);
  tw_free(ld.anchors);
  json_decref(ld.names);
  if (rc != TW_OK) {
    tw_json_doc_free(ld.doc);
    return rc;
  }
  *out = ld.doc;
  return TW_OK;
}

int tw_yaml_load_doc(const char *path, const tw_yaml_opts *opts,
                     tw_json_doc **out, tw_err *err) {
  tw_buf b = TW_BUF_INIT;
  int rc = tw_file_read_all(path, TW_YAML_MAX_FILE, &b, err);
  if (rc == TW_OK)
    rc = tw_yaml_parse_doc(b.data, b.len, path, opts, out, err);
  tw_buf_fini(&b);
  return rc;
}
