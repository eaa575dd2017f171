/*
 * dsl.c - the .twg text form of the graph IR: a line-oriented language
 * that maps one to one onto the JSON IR (docs/graph-dsl.md), so the two
 * round-trip exactly: twg -> JSON -> twg gives the canonical text back,
 * JSON -> twg -> JSON the same JSON value.
 *
 *   graph NAME
 *   dt 0.01
 *   input F size 1 unit "N"
 *   input mode dtype i32
 *   block plant = wasm:oscillator.wasm every 2
 *     param k = 9
 *     param c = 0.4 min 0 max 5 trainable
 *   connect plant.x -> velocity.u
 *   output x = plant.x
 *
 * '#' starts a comment. The parser builds the JSON value and remembers
 * where each part came from, so the graph loader's diagnostics point into
 * the .twg file.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/json.h"

/* --- Lexer --------------------------------------------------------------- */

enum { T_EOF, T_NL, T_WORD, T_STRING, T_NUMBER, T_PUNCT };

typedef struct lexer {
  const char *s;
  size_t len, pos;
  const char *source;
  tw_err *err;
  /* the current token */
  int kind;
  size_t at, n; /* offset and length in s */
  tw_buf str;   /* decoded string */
  tw_json_doc *doc;
} lexer;

static void line_col(const lexer *lx, size_t at, unsigned *line,
                     unsigned *col) {
  unsigned l = 1, c = 1;
  for (size_t i = 0; i < at && i < lx->len; i++) {
    if (lx->s[i] == '\n') {
      l++;
      c = 1;
    } else if (((unsigned char)lx->s[i] & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

static int lerr(lexer *lx, size_t at, const char *fmt, ...) TW_PRINTF(3, 4);
static int lerr(lexer *lx, size_t at, const char *fmt, ...) {
  unsigned l, c;
  line_col(lx, at, &l, &c);
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tw_err_set(lx->err, TW_EPARSE, "%s:%u:%u: error: %s", lx->source, l, c,
                    msg);
}

static bool word_char(int c) {
  return isalnum(c) || c == '_' || c == '.' || c == ':' || c == '/' ||
         c == '-' || c == '+';
}

/* Reads the next token. */
static int next(lexer *lx) {
  const char *s = lx->s;
  while (lx->pos < lx->len) {
    char c = s[lx->pos];
    if (c == ' ' || c == '\t' || c == '\r') {
      lx->pos++;
    } else if (c == '#') {
      while (lx->pos < lx->len && s[lx->pos] != '\n')
        lx->pos++;
    } else {
      break;
    }
  }
  lx->at = lx->pos;
  if (lx->pos >= lx->len) {
    lx->kind = T_EOF;
    lx->n = 0;
    return TW_OK;
  }
  char c = s[lx->pos];
  if (c == '\n') {
    lx->kind = T_NL;
    lx->n = 1;
    lx->pos++;
    return TW_OK;
  }
  if (c == '"') {
    tw_buf_reset(&lx->str);
    size_t i = lx->pos + 1;
    for (;;) {
      if (i >= lx->len || s[i] == '\n')
        return lerr(lx, lx->at, "unterminated string");
      if (s[i] == '"')
        break;
      char ch = s[i];
      if (ch == '\\') {
        if (i + 1 >= lx->len || (s[i + 1] != '"' && s[i + 1] != '\\'))
          return lerr(lx, i, "only \\\" and \\\\ escapes are allowed");
        ch = s[++i];
      } else if ((unsigned char)ch < 0x20) {
        return lerr(lx, i, "control character in a string");
      }
      if (tw_buf_append(&lx->str, &ch, 1) != TW_OK)
        return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
      i++;
    }
    lx->kind = T_STRING;
    lx->pos = i + 1;
    lx->n = lx->pos - lx->at;
    return TW_OK;
  }
  if (c == '=' || c == ',' || c == '[' || c == ']' ||
      (c == '-' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '>')) {
    lx->kind = T_PUNCT;
    lx->n = c == '-' ? 2 : 1;
    lx->pos += lx->n;
    return TW_OK;
  }
  if (!word_char((unsigned char)c))
    return lerr(lx, lx->pos, "unexpected character '%c'", c);
  size_t i = lx->pos;
  while (i < lx->len && word_char((unsigned char)s[i]) &&
         !(s[i] == '-' && i + 1 < lx->len && s[i + 1] == '>'))
    i++;
  lx->n = i - lx->pos;
  lx->pos = i;
  char *end;
  char buf[64];
  size_t k = lx->n < sizeof buf - 1 ? lx->n : sizeof buf - 1;
  memcpy(buf, s + lx->at, k);
  buf[k] = '\0';
  (void)strtod(buf, &end);
  lx->kind = (isdigit((unsigned char)c) || c == '-' || c == '+' || c == '.') &&
                     *end == '\0' && lx->n < sizeof buf - 1
                 ? T_NUMBER
                 : T_WORD;
  return TW_OK;
}

static bool is(const lexer *lx, int kind, const char *text) {
  return lx->kind == kind &&
         (text == NULL ||
          (strlen(text) == lx->n && memcmp(lx->s + lx->at, text, lx->n) == 0));
}

static int expect(lexer *lx, int kind, const char *text, const char *what) {
  if (!is(lx, kind, text)) {
    if (lx->kind == T_NL || lx->kind == T_EOF)
      return lerr(lx, lx->at, "expected %s, found the end of the line", what);
    return lerr(lx, lx->at, "expected %s, found '%.*s'", what, (int)lx->n,
                lx->s + lx->at);
  }
  return next(lx);
}

/* --- Values ----------------------------------------------------------------
 */

/* Tracks where a value came from (for the loader's diagnostics). */
static json_t *mark(lexer *lx, json_t *v, size_t at) {
  if (v != NULL && tw_json_doc_mark(lx->doc, v, at) != TW_OK) {
    json_decref(v);
    return NULL;
  }
  return v;
}

static json_t *number(lexer *lx) {
  char buf[64];
  memcpy(buf, lx->s + lx->at, lx->n);
  buf[lx->n] = '\0';
  bool real = strpbrk(buf, ".eE") != NULL;
  json_t *v;
  if (real) {
    v = json_real(strtod(buf, NULL));
  } else {
    char *end;
    long long x = strtoll(buf, &end, 10);
    v = *end == '\0' ? json_integer(x) : json_real(strtod(buf, NULL));
  }
  return mark(lx, v, lx->at);
}

/* Moves past the token that made *out (NULL: out of memory); on a
 * failure *out is released, so callers own nothing. */
static int advance(lexer *lx, json_t **out) {
  if (*out == NULL)
    return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
  int rc = next(lx);
  if (rc != TW_OK) {
    json_decref(*out);
    *out = NULL;
  }
  return rc;
}

/* A number, a word or a string as a scalar JSON value. */
static int scalar(lexer *lx, bool words, json_t **out) {
  size_t at = lx->at;
  if (lx->kind == T_NUMBER)
    *out = number(lx);
  else if (lx->kind == T_STRING)
    *out = mark(
        lx, json_stringn(lx->str.data != NULL ? lx->str.data : "", lx->str.len),
        at);
  else if (lx->kind == T_WORD && words)
    *out = mark(lx, json_stringn(lx->s + lx->at, lx->n), at);
  else if (lx->kind == T_WORD &&
           (is(lx, T_WORD, "true") || is(lx, T_WORD, "false")))
    *out = json_boolean(is(lx, T_WORD, "true"));
  else
    return lerr(lx, at, "expected a %s", words ? "value" : "number");
  return advance(lx, out);
}

/* A scalar or [a, b, ...]. */
static int value(lexer *lx, bool words, json_t **out) {
  if (!is(lx, T_PUNCT, "["))
    return scalar(lx, words, out);
  json_t *arr = mark(lx, json_array(), lx->at);
  if (arr == NULL)
    return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
  int rc = next(lx);
  while (rc == TW_OK && !is(lx, T_PUNCT, "]")) {
    json_t *v = NULL;
    rc = scalar(lx, words, &v);
    if (rc == TW_OK && json_array_append_new(arr, v) != 0)
      rc = tw_err_set(lx->err, TW_ENOMEM, "out of memory");
    if (rc == TW_OK && !is(lx, T_PUNCT, "]"))
      rc = expect(lx, T_PUNCT, ",", "',' or ']'");
  }
  if (rc == TW_OK)
    rc = next(lx);
  if (rc != TW_OK) {
    json_decref(arr);
    return rc;
  }
  *out = arr;
  return TW_OK;
}

/* A name (a word without '.' or ':'). */
/* A name; dotted (graph inputs and outputs: "plant.x") when dots. */
static int name_dots(lexer *lx, char *out, size_t cap, size_t *at, bool dots) {
  *at = lx->at;
  if (lx->kind != T_WORD || lx->n >= cap ||
      (!dots && memchr(lx->s + lx->at, '.', lx->n) != NULL) ||
      memchr(lx->s + lx->at, ':', lx->n) != NULL)
    return lerr(lx, lx->at, "expected a name");
  memcpy(out, lx->s + lx->at, lx->n);
  out[lx->n] = '\0';
  return next(lx);
}

static int name(lexer *lx, char *out, size_t cap, size_t *at) {
  return name_dots(lx, out, cap, at, false);
}

/* block.port as a JSON string. */
static int ref(lexer *lx, json_t **out) {
  if (lx->kind != T_WORD || memchr(lx->s + lx->at, '.', lx->n) == NULL)
    return lerr(lx, lx->at, "expected block.port");
  *out = mark(lx, json_stringn(lx->s + lx->at, lx->n), lx->at);
  return advance(lx, out);
}

static int set(lexer *lx, json_t *obj, const char *key, json_t *v) {
  if (json_object_get(obj, key) != NULL) {
    json_decref(v);
    return lerr(lx, lx->at, "'%s' given twice", key);
  }
  if (json_object_set_new(obj, key, v) != 0)
    return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
  return TW_OK;
}

/* Gets (creating) the object member key of obj. */
static json_t *member(lexer *lx, json_t *obj, const char *key, size_t at) {
  json_t *m = json_object_get(obj, key);
  if (m == NULL) {
    m = mark(lx, json_object(), at);
    if (m == NULL || json_object_set_new(obj, key, m) != 0)
      return NULL;
  }
  return m;
}

/* --- Statements ---------------------------------------------------------- */

static int block_stmt(lexer *lx, json_t *root, json_t **cur) {
  char nm[65];
  size_t at;
  int rc = name(lx, nm, sizeof nm, &at);
  if (rc == TW_OK)
    rc = expect(lx, T_PUNCT, "=", "'='");
  if (rc != TW_OK)
    return rc;
  json_t *blocks = member(lx, root, "blocks", at);
  if (blocks == NULL)
    return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
  if (json_object_get(blocks, nm) != NULL)
    return lerr(lx, at, "block '%s' defined twice", nm);
  json_t *b = mark(lx, json_object(), at);
  if (b == NULL || json_object_set_new(blocks, nm, b) != 0)
    return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
  json_t *model = NULL;
  rc = scalar(lx, true, &model);
  if (rc == TW_OK)
    rc = set(lx, b, "model", model);
  static const char *const opts[] = {"every",      "period",      "size",
                                     "sizes",      "activations", "seed",
                                     "integrator", NULL};
  while (rc == TW_OK && lx->kind != T_NL && lx->kind != T_EOF) {
    size_t k = 0;
    while (opts[k] != NULL && !is(lx, T_WORD, opts[k]))
      k++;
    if (opts[k] == NULL)
      return lerr(lx, lx->at,
                  "unknown block option '%.*s' (every, period, "
                  "size, sizes, activations, seed, integrator)",
                  (int)lx->n, lx->s + lx->at);
    rc = next(lx);
    json_t *v = NULL;
    if (rc == TW_OK)
      rc = value(lx, k == 4 || k == 6, &v);
    if (rc == TW_OK)
      rc = set(lx, b, opts[k], v);
  }
  *cur = b;
  return rc;
}

/* A parameter's name: NAME, or inner_block.NAME of a sub-graph's (any
 * depth). */
static int param_name(lexer *lx, char *out, size_t cap, size_t *at) {
  *at = lx->at;
  const char *p = lx->s + lx->at;
  bool ok = lx->kind == T_WORD && lx->n < cap && p[0] != '.' &&
            p[lx->n - 1] != '.' && memchr(p, ':', lx->n) == NULL;
  for (size_t i = 1; ok && i < lx->n; i++)
    ok = !(p[i] == '.' && p[i - 1] == '.');
  if (!ok)
    return lerr(lx, lx->at, "expected a parameter name");
  memcpy(out, p, lx->n);
  out[lx->n] = '\0';
  return next(lx);
}

static int param_stmt(lexer *lx, json_t *block) {
  size_t at0 = lx->at;
  if (block == NULL)
    return lerr(lx, at0, "'param' must follow a 'block' line");
  char nm[TW__GRAPH_NAME_MAX];
  size_t at;
  int rc = param_name(lx, nm, sizeof nm, &at);
  if (rc == TW_OK)
    rc = expect(lx, T_PUNCT, "=", "'='");
  json_t *v = NULL;
  if (rc == TW_OK)
    rc = value(lx, false, &v);
  if (rc != TW_OK)
    return rc;
  json_t *obj = NULL;
  while (rc == TW_OK && lx->kind != T_NL && lx->kind != T_EOF) {
    if (obj == NULL) {
      obj = mark(lx, json_object(), at);
      if (obj == NULL) {
        json_decref(v);
        return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
      }
      if (json_object_set_new(obj, "value", v) != 0) { /* v is gone */
        json_decref(obj);
        return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
      }
      v = obj;
    }
    if (is(lx, T_WORD, "min") || is(lx, T_WORD, "max")) {
      const char *key = is(lx, T_WORD, "min") ? "min" : "max";
      json_t *b = NULL;
      rc = next(lx);
      if (rc == TW_OK)
        rc = value(lx, false, &b);
      if (rc == TW_OK)
        rc = set(lx, obj, key, b);
    } else if (is(lx, T_WORD, "trainable") || is(lx, T_WORD, "fixed")) {
      json_t *t = json_boolean(is(lx, T_WORD, "trainable"));
      rc = set(lx, obj, "trainable", t);
      if (rc == TW_OK)
        rc = next(lx);
    } else {
      rc = lerr(lx, lx->at, "expected min, max, trainable or fixed");
    }
  }
  json_t *params = rc == TW_OK ? member(lx, block, "params", at) : NULL;
  if (rc == TW_OK && params == NULL)
    rc = tw_err_set(lx->err, TW_ENOMEM, "out of memory");
  if (rc == TW_OK)
    return set(lx, params, nm, v);
  json_decref(v);
  return rc;
}

static int statement(lexer *lx, json_t *root, json_t **cur) {
  size_t at = lx->at;
  if (is(lx, T_WORD, "graph")) {
    json_t *v = NULL;
    int rc = next(lx);
    if (rc == TW_OK)
      rc = scalar(lx, true, &v);
    return rc == TW_OK ? set(lx, root, "name", v) : rc;
  }
  if (is(lx, T_WORD, "dt")) {
    json_t *v = NULL;
    int rc = next(lx);
    if (rc == TW_OK)
      rc = scalar(lx, false, &v);
    return rc == TW_OK ? set(lx, root, "dt", v) : rc;
  }
  if (is(lx, T_WORD, "input")) {
    char nm[65];
    size_t nat;
    int rc = next(lx);
    if (rc == TW_OK)
      rc = name_dots(lx, nm, sizeof nm, &nat, true);
    json_t *ins = rc == TW_OK ? member(lx, root, "inputs", nat) : NULL;
    if (rc == TW_OK && ins == NULL)
      return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
    if (rc != TW_OK)
      return rc;
    if (json_object_get(ins, nm) != NULL)
      return lerr(lx, nat, "input '%s' defined twice", nm);
    json_t *in = mark(lx, json_object(), nat);
    if (in == NULL || json_object_set_new(ins, nm, in) != 0)
      return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
    while (rc == TW_OK && lx->kind != T_NL && lx->kind != T_EOF) {
      static const char *const attrs[] = {"size", "unit", "dtype"};
      size_t a = 0;
      while (a < 3 && !is(lx, T_WORD, attrs[a]))
        a++;
      if (a == 3)
        return lerr(lx, lx->at, "expected size, unit or dtype");
      json_t *v = NULL;
      rc = next(lx);
      if (rc == TW_OK)
        rc = scalar(lx, a > 0, &v);
      if (rc == TW_OK)
        rc = set(lx, in, attrs[a], v);
    }
    return rc;
  }
  if (is(lx, T_WORD, "block")) {
    int rc = next(lx);
    return rc == TW_OK ? block_stmt(lx, root, cur) : rc;
  }
  if (is(lx, T_WORD, "param")) {
    int rc = next(lx);
    return rc == TW_OK ? param_stmt(lx, *cur) : rc;
  }
  if (is(lx, T_WORD, "connect")) {
    json_t *from = NULL, *to = NULL;
    int rc = next(lx);
    if (rc == TW_OK)
      rc = ref(lx, &from);
    if (rc == TW_OK)
      rc = expect(lx, T_PUNCT, "->", "'->'");
    if (rc == TW_OK)
      rc = ref(lx, &to);
    json_t *arr = json_object_get(root, "connections");
    if (rc == TW_OK && arr == NULL) {
      arr = mark(lx, json_array(), at);
      if (arr == NULL || json_object_set_new(root, "connections", arr) != 0)
        rc = tw_err_set(lx->err, TW_ENOMEM, "out of memory");
    }
    json_t *c = NULL;
    if (rc == TW_OK) {
      c = mark(lx, json_object(), at);
      /* c takes from and to; the array takes c (each even on failure). */
      if (c == NULL || json_object_set(c, "from", from) ||
          json_object_set(c, "to", to) || json_array_append(arr, c))
        rc = tw_err_set(lx->err, TW_ENOMEM, "out of memory");
    }
    json_decref(c);
    json_decref(from);
    json_decref(to);
    return rc;
  }
  if (is(lx, T_WORD, "output")) {
    char nm[65];
    size_t nat;
    json_t *r = NULL;
    int rc = next(lx);
    if (rc == TW_OK)
      rc = name_dots(lx, nm, sizeof nm, &nat, true);
    if (rc == TW_OK)
      rc = expect(lx, T_PUNCT, "=", "'='");
    if (rc == TW_OK)
      rc = ref(lx, &r);
    json_t *outs = rc == TW_OK ? member(lx, root, "outputs", nat) : NULL;
    if (rc == TW_OK && outs == NULL) {
      json_decref(r);
      return tw_err_set(lx->err, TW_ENOMEM, "out of memory");
    }
    return rc == TW_OK ? set(lx, outs, nm, r) : rc;
  }
  return lerr(lx, at,
              "expected a statement (graph, dt, input, block, "
              "param, connect, output), found '%.*s'",
              (int)lx->n, lx->s + lx->at);
}

int tw__graph_dsl_parse(const char *text, size_t len, const char *source,
                        tw_json_doc **out, tw_err *err) {
  /* The root through the JSON reader, which also routes jansson's
   * allocations through tw_alloc before the parser makes any value. */
  json_t *root = NULL;
  tw_json_doc *doc = NULL;
  int rc0 = tw_json_parse("{\"graph\": 1}", 12, source, &root, err);
  if (rc0 != TW_OK)
    return rc0;
  if (tw_json_doc_new(root, text, len, source, &doc) != TW_OK) {
    json_decref(root);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  lexer lx = {text, len, 0, source, err, T_EOF, 0, 0, TW_BUF_INIT, doc};
  json_t *cur = NULL;
  int rc = next(&lx);
  while (rc == TW_OK && lx.kind != T_EOF) {
    if (lx.kind == T_NL) {
      rc = next(&lx);
      continue;
    }
    rc = statement(&lx, root, &cur);
    if (rc == TW_OK && lx.kind != T_NL && lx.kind != T_EOF)
      rc = lerr(&lx, lx.at, "unexpected '%.*s' at the end of the line",
                (int)lx.n, lx.s + lx.at);
  }
  tw_buf_fini(&lx.str);
  if (rc != TW_OK) {
    tw_json_doc_free(doc);
    return rc;
  }
  *out = doc;
  return TW_OK;
}

/* --- Formatting -------------------------------------------------------------
 */

/* The shortest decimal that reads back as x, with a '.' or 'e' so that it
 * stays a real. */
static int put_real(tw_buf *b, double x) {
  char buf[40];
  for (int p = 1; p <= 17; p++) {
    (void)snprintf(buf, sizeof buf, "%.*g", p, x);
    if (strtod(buf, NULL) == x)
      break;
  }
  if (strpbrk(buf, ".eEn") == NULL)
    return tw_buf_printf(b, "%s.0", buf);
  return tw_buf_printf(b, "%s", buf);
}

static bool bare(const char *s) {
  if (*s == '\0')
    return false;
  for (const char *p = s; *p; p++)
    if (!word_char((unsigned char)*p) || (p[0] == '-' && p[1] == '>'))
      return false;
  char *end;
  (void)strtod(s, &end);
  return *end != '\0' && strcmp(s, "true") != 0 && strcmp(s, "false") != 0;
}

static int put_scalar(tw_buf *b, const json_t *v, bool words) {
  if (json_is_integer(v))
    return tw_buf_printf(b, "%lld", (long long)json_integer_value(v));
  if (json_is_real(v))
    return put_real(b, json_real_value(v));
  if (json_is_boolean(v))
    return tw_buf_printf(b, json_is_true(v) ? "true" : "false");
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (words && bare(s))
      return tw_buf_printf(b, "%s", s);
    int rc = tw_buf_printf(b, "\"");
    for (const char *p = s; rc == TW_OK && *p; p++)
      rc = (*p == '"' || *p == '\\') ? tw_buf_printf(b, "\\%c", *p)
                                     : tw_buf_append(b, p, 1);
    return rc == TW_OK ? tw_buf_printf(b, "\"") : rc;
  }
  return TW_EINVAL;
}

static int put_value(tw_buf *b, const json_t *v, bool words) {
  if (!json_is_array(v))
    return put_scalar(b, v, words);
  int rc = tw_buf_printf(b, "[");
  for (size_t i = 0; rc == TW_OK && i < json_array_size(v); i++) {
    rc = tw_buf_printf(b, "%s", i ? ", " : "");
    if (rc == TW_OK)
      rc = put_scalar(b, json_array_get(v, i), words);
  }
  return rc == TW_OK ? tw_buf_printf(b, "]") : rc;
}

int tw__graph_dsl_format(const json_t *root, tw_buf *b, tw_err *err) {
  int rc = TW_OK;
  const char *key;
  json_t *v;
#define OK(expr)                                                               \
  do {                                                                         \
    if (rc == TW_OK)                                                           \
      rc = (expr);                                                             \
  } while (0)
  if (!json_is_object(root))
    return tw_err_set(err, TW_EINVAL, "graph: not a JSON object");
  json_t *nm = json_object_get(root, "name");
  if (nm != NULL) {
    OK(tw_buf_printf(b, "graph "));
    OK(put_scalar(b, nm, true));
    OK(tw_buf_printf(b, "\n"));
  }
  json_t *dt = json_object_get(root, "dt");
  if (dt != NULL) {
    OK(tw_buf_printf(b, "dt "));
    OK(put_scalar(b, dt, false));
    OK(tw_buf_printf(b, "\n"));
  }
  json_t *ins = json_object_get(root, "inputs");
  if (json_is_object(ins) && json_object_size(ins) > 0) {
    OK(tw_buf_printf(b, "\n"));
    json_object_foreach(ins, key, v) {
      if (!json_is_object(v))
        rc = TW_EINVAL;
      OK(tw_buf_printf(b, "input %s", key));
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        OK(tw_buf_printf(b, " %s ", k2));
        OK(put_scalar(b, v2,
                      strcmp(k2, "unit") == 0 || strcmp(k2, "dtype") == 0));
      }
      OK(tw_buf_printf(b, "\n"));
    }
  }
  json_t *blocks = json_object_get(root, "blocks");
  if (json_is_object(blocks))
    json_object_foreach(blocks, key, v) {
      if (!json_is_object(v) || !json_is_string(json_object_get(v, "model")))
        rc = TW_EINVAL;
      OK(tw_buf_printf(b, "\nblock %s = ", key));
      OK(put_scalar(b, json_object_get(v, "model"), true));
      const char *k2;
      json_t *v2;
      json_object_foreach(v, k2, v2) {
        if (strcmp(k2, "model") == 0 || strcmp(k2, "params") == 0)
          continue;
        OK(tw_buf_printf(b, " %s ", k2));
        OK(put_value(b, v2,
                     strcmp(k2, "activations") == 0 ||
                         strcmp(k2, "integrator") == 0));
      }
      OK(tw_buf_printf(b, "\n"));
      json_t *params = json_object_get(v, "params");
      if (json_is_object(params))
        json_object_foreach(params, k2, v2) {
          OK(tw_buf_printf(b, "  param %s = ", k2));
          if (!json_is_object(v2)) {
            OK(put_value(b, v2, false));
          } else {
            OK(put_value(b, json_object_get(v2, "value"), false));
            const char *k3;
            json_t *v3;
            json_object_foreach(v2, k3, v3) {
              if (strcmp(k3, "value") == 0)
                continue;
              if (strcmp(k3, "trainable") == 0) {
                OK(tw_buf_printf(b,
                                 json_is_true(v3) ? " trainable" : " fixed"));
              } else {
                OK(tw_buf_printf(b, " %s ", k3));
                OK(put_value(b, v3, false));
              }
            }
          }
          OK(tw_buf_printf(b, "\n"));
        }
    }
  json_t *conns = json_object_get(root, "connections");
  if (json_is_array(conns) && json_array_size(conns) > 0) {
    OK(tw_buf_printf(b, "\n"));
    for (size_t i = 0; i < json_array_size(conns); i++) {
      json_t *c = json_array_get(conns, i);
      const char *from = json_string_value(json_object_get(c, "from"));
      const char *to = json_string_value(json_object_get(c, "to"));
      if (from == NULL || to == NULL)
        rc = TW_EINVAL;
      OK(tw_buf_printf(b, "connect %s -> %s\n", from, to));
    }
  }
  json_t *outs = json_object_get(root, "outputs");
  if (json_is_object(outs) && json_object_size(outs) > 0) {
    OK(tw_buf_printf(b, "\n"));
    json_object_foreach(outs, key, v) {
      if (!json_is_string(v))
        rc = TW_EINVAL;
      OK(tw_buf_printf(b, "output %s = %s\n", key, json_string_value(v)));
    }
  }
#undef OK
  if (rc != TW_OK)
    return tw_err_set(err, rc == TW_ENOMEM ? TW_ENOMEM : TW_EINVAL,
                      "graph: cannot write it as .twg (a value of an "
                      "unexpected type)");
  return TW_OK;
}
