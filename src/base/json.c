/*
 * json.c - JSON helpers over jansson: a strict parser with located errors,
 * checked getters and canonical dumping.
 *
 * The parser is a small recursive-descent reader of our own that builds
 * jansson values with jansson's constructors; it does not call json_loadb.
 * jansson 2.14's lexer ignores a failed allocation while growing its token
 * buffer and drops the byte: a long number silently loses a digit, and a
 * string whose closing quote is the dropped byte makes the decoder run off
 * the end of the heap block (both seen with allocation-failure injection
 * under ASan, e.g. on "abcdefghijklmn"). The constructors, in contrast,
 * report every failure. Owning the reader also gives one-pass depth
 * limiting, exact positions and messages that say what was expected.
 *
 * Invariants of a parsed value: strings are valid UTF-8 without NUL bytes,
 * integers fit int64_t, reals are finite, and nesting is at most
 * TW_JSON_MAX_DEPTH, which also bounds the parser's recursion.
 *
 * Positions are "LINE:COL", both 1-based; COL counts characters (UTF-8
 * sequences, as jansson and editors count them), and points at the first
 * character of the offending token, or one past the last character at end
 * of input.
 *
 * jansson's allocator is set to tw_alloc/tw_free on the first call of any
 * function here (values a program builds with jansson before that use
 * malloc). The hook notes allocation failure in a thread-local flag: the
 * dumper reports every failure as -1 and even ignores some (a failed write
 * of an object key when sorting), so a dump is trusted only if no
 * allocation and no write failed during it.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base_int.h"
#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/json.h"

/* --- Process-wide setup ---------------------------------------------- */

static pthread_once_t json_once = PTHREAD_ONCE_INIT;
static locale_t c_locale; /* for strtod_l: the host's LC_NUMERIC may use ',' */
static _Thread_local bool alloc_failed;

static void *json_malloc_hook(size_t n) {
  void *p = tw_alloc(n);
  if (p == NULL)
    alloc_failed = true;
  return p;
}

static void json_setup(void) {
  json_set_alloc_funcs(json_malloc_hook, tw_free);
  /* glibc returns its static C locale object here without allocating. */
  c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static void json_init(void) { pthread_once(&json_once, json_setup); }

/* --- Shared helpers ---------------------------------------------------- */

/* --- Parser ------------------------------------------------------------ */

typedef struct parser {
  const unsigned char *d;
  size_t len;
  size_t pos;
  const char *source;
  tw_buf scratch; /* decoded text of strings that contain escapes */
  tw_err *err;
  tw_json_doc *doc; /* records places when parsing a document, or NULL */
  size_t value_at;  /* where the value parse_value just read started */
} parser;

static int parse_value(parser *ps, unsigned depth, json_t **out);

/* Records a syntax error located at byte offset at. */
static int perr(parser *ps, size_t at, const char *fmt, ...) TW_PRINTF(3, 4);
static int perr(parser *ps, size_t at, const char *fmt, ...) {
  if (ps->err == NULL || ps->err->code != TW_OK)
    return TW_EPARSE; /* nobody reads the message: skip the line count */
  size_t line = 1, col = 1;
  for (size_t i = 0; i < at && i < ps->len; i++) {
    if (ps->d[i] == '\n') {
      line++;
      col = 1;
    } else if ((ps->d[i] & 0xC0) != 0x80) {
      col++;
    }
  }
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tw_err_set(ps->err, TW_EPARSE, "%s:%zu:%zu: error: %s", ps->source,
                    line, col, msg);
}

static int oom(parser *ps) {
  return tw_err_set(ps->err, TW_ENOMEM, "%s: out of memory parsing JSON",
                    ps->source);
}

/* Describes the character at offset at for "found X" in a message. */
static void describe(const parser *ps, size_t at, char *out, size_t cap) {
  if (at >= ps->len) {
    (void)snprintf(out, cap, "end of input");
    return;
  }
  unsigned char c = ps->d[at];
  size_t n = tw__utf8_seq_len(ps->d + at, ps->len - at);
  if (c > 0x20 && c < 0x7F) {
    (void)snprintf(out, cap, "'%c'", c);
  } else if (n > 1) {
    /* Named by code point: it may be invisible, like a byte order mark. */
    unsigned cp = c & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++)
      cp = cp << 6 | (ps->d[at + i] & 0x3Fu);
    (void)snprintf(out, cap, "U+%04X", cp);
  } else {
    (void)snprintf(out, cap, "byte 0x%02x", c);
  }
}

/* Fails with "expected WHAT, found X" at the current position. */
static int expected(parser *ps, const char *what) {
  char found[32];
  describe(ps, ps->pos, found, sizeof found);
  return perr(ps, ps->pos, "expected %s, found %s", what, found);
}

static void skip_ws(parser *ps) {
  while (ps->pos < ps->len) {
    unsigned char c = ps->d[ps->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    ps->pos++;
  }
}

static int peek(const parser *ps) {
  return ps->pos < ps->len ? ps->d[ps->pos] : -1;
}

/* Reads the 4 hex digits of a \\u escape at d[at..at+4) into *cp. Returns
 * 1 on success, 0 if the input ends first, -1 if a digit is not hex. */
static int read_hex4(const parser *ps, size_t at, unsigned *cp) {
  unsigned v = 0;
  for (size_t i = 0; i < 4; i++) {
    if (at + i >= ps->len)
      return 0;
    int h = tw__hex_value(ps->d[at + i]);
    if (h < 0)
      return -1;
    v = v << 4 | (unsigned)h;
  }
  *cp = v;
  return 1;
}

static int put_utf8(tw_buf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12);
    u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | cp >> 18);
    u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return tw_buf_append(b, u, n);
}

/* Decodes the escape whose backslash is at d[*i], appending to scratch. */
static int parse_escape(parser *ps, size_t quote, size_t *i) {
  size_t at = *i;
  if (at + 1 >= ps->len)
    return perr(ps, quote, "unterminated string");
  unsigned char e = ps->d[at + 1];
  static const char from[] = "\"\\/bfnrt";
  static const char to[] = "\"\\/\b\f\n\r\t";
  const char *hit = e != 'u' && e != 0 ? strchr(from, e) : NULL;
  if (hit != NULL) {
    *i = at + 2;
    if (tw_buf_putc(&ps->scratch, to[hit - from]) != TW_OK)
      return oom(ps);
    return TW_OK;
  }
  if (e != 'u') {
    char found[32];
    describe(ps, at + 1, found, sizeof found);
    return perr(ps, at, "invalid escape: '\\' followed by %s", found);
  }
  unsigned cp, lo;
  int got = read_hex4(ps, at + 2, &cp);
  if (got == 0)
    return perr(ps, quote, "unterminated string");
  if (got < 0) {
    char shown[64];
    size_t avail = ps->len - at < 6 ? ps->len - at : 6;
    tw__quote_text((const char *)ps->d + at, avail, shown, sizeof shown);
    return perr(ps, at, "invalid escape %s", shown);
  }
  size_t next = at + 6;
  if (cp == 0)
    return perr(ps, at, "\\u0000 (NUL) is not allowed in strings");
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return perr(ps, at, "unpaired surrogate '\\u%04X'", cp);
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (ps->len - next < 6 || ps->d[next] != '\\' || ps->d[next + 1] != 'u' ||
        read_hex4(ps, next + 2, &lo) != 1 || lo < 0xDC00 || lo > 0xDFFF)
      return perr(ps, at, "unpaired surrogate '\\u%04X'", cp);
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    next += 6;
  }
  *i = next;
  if (put_utf8(&ps->scratch, cp) != TW_OK)
    return oom(ps);
  return TW_OK;
}

/* Reads the string whose opening quote is at ps->pos. *s gets its decoded
 * bytes: in the input when it has no escapes, else in ps->scratch (valid
 * until the next string is read). */
static int parse_string(parser *ps, const char **s, size_t *n, bool *esc) {
  const unsigned char *d = ps->d;
  size_t quote = ps->pos, i = quote + 1, run = i;
  *esc = false;
  tw_buf_reset(&ps->scratch);
  for (;;) {
    if (i >= ps->len)
      return perr(ps, quote, "unterminated string");
    unsigned char c = d[i];
    if (c == '"')
      break;
    if (c == '\\') {
      if (tw_buf_append(&ps->scratch, d + run, i - run) != TW_OK)
        return oom(ps);
      *esc = true;
      int rc = parse_escape(ps, quote, &i);
      if (rc != TW_OK)
        return rc;
      run = i;
    } else if (c < 0x20) {
      return perr(ps, i, "control character 0x%02x in string", c);
    } else if (c < 0x80) {
      i++;
    } else {
      size_t k = tw__utf8_seq_len(d + i, ps->len - i);
      if (k == 0)
        return perr(ps, i, "invalid UTF-8 byte 0x%02x in string", c);
      i += k;
    }
  }
  if (*esc) {
    if (tw_buf_append(&ps->scratch, d + run, i - run) != TW_OK)
      return oom(ps);
    *s = ps->scratch.data;
    *n = ps->scratch.len;
  } else {
    *s = (const char *)d + quote + 1;
    *n = i - quote - 1;
  }
  ps->pos = i + 1;
  return TW_OK;
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool is_alpha(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Characters that continue a number-like token, so that "01", "1.2.3" or
 * "12ab" are reported whole as one bad number. */
static bool is_number_char(int c) {
  return is_digit(c) || is_alpha(c) || c == '.' || c == '+' || c == '-';
}

/* Checks t[0..n) against the JSON number grammar; *is_int says whether it
 * has neither fraction nor exponent. */
static bool number_syntax_ok(const unsigned char *t, size_t n, bool *is_int) {
  size_t i = 0;
  *is_int = true;
  if (i < n && t[i] == '-')
    i++;
  if (i < n && t[i] == '0') {
    i++;
  } else if (i < n && t[i] >= '1' && t[i] <= '9') {
    while (i < n && is_digit(t[i]))
      i++;
  } else {
    return false;
  }
  if (i < n && t[i] == '.') {
    *is_int = false;
    if (++i >= n || !is_digit(t[i]))
      return false;
    while (i < n && is_digit(t[i]))
      i++;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    *is_int = false;
    i++;
    if (i < n && (t[i] == '+' || t[i] == '-'))
      i++;
    if (i >= n || !is_digit(t[i]))
      return false;
    while (i < n && is_digit(t[i]))
      i++;
  }
  return i == n;
}

/* Converts the validated integer t[0..n); false if it overflows int64. */
static bool to_int64(const unsigned char *t, size_t n, json_int_t *out) {
  bool neg = t[0] == '-';
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  uint64_t v = 0;
  for (size_t i = neg; i < n; i++) {
    unsigned dig = (unsigned)(t[i] - '0');
    if (v > (limit - dig) / 10)
      return false;
    v = v * 10 + dig;
  }
  if (neg)
    *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)v;
  else
    *out = (json_int_t)v;
  return true;
}

static int parse_number(parser *ps, json_t **out) {
  size_t start = ps->pos, end = start;
  while (end < ps->len && is_number_char(ps->d[end]))
    end++;
  const unsigned char *t = ps->d + start;
  size_t n = end - start;
  char shown[64];
  bool is_int;
  if (!number_syntax_ok(t, n, &is_int)) {
    tw__quote_text((const char *)t, n, shown, sizeof shown);
    return perr(ps, start, "invalid number %s", shown);
  }
  json_t *v = NULL;
  if (is_int) {
    json_int_t i;
    if (!to_int64(t, n, &i)) {
      tw__quote_text((const char *)t, n, shown, sizeof shown);
      return perr(ps, start, "integer %s does not fit in 64 bits", shown);
    }
    v = json_integer(i);
  } else {
    /* strtod needs a terminated copy; the input need not be terminated. */
    char small[64];
    char *copy = n < sizeof small ? small : tw_alloc(n + 1);
    if (copy == NULL)
      return oom(ps);
    memcpy(copy, t, n);
    copy[n] = '\0';
    errno = 0;
    double x = c_locale != (locale_t)0 ? strtod_l(copy, NULL, c_locale)
                                       : strtod(copy, NULL);
    if (copy != small)
      tw_free(copy);
    /* Underflow to zero or a subnormal is accepted, as strtod rounds it. */
    if (!isfinite(x)) {
      tw__quote_text((const char *)t, n, shown, sizeof shown);
      return perr(ps, start, "number %s is out of range", shown);
    }
    v = json_real(x);
  }
  if (v == NULL)
    return oom(ps);
  ps->pos = end;
  *out = v;
  return TW_OK;
}

static int parse_literal(parser *ps, json_t **out) {
  size_t start = ps->pos, end = start;
  while (end < ps->len &&
         (is_alpha(ps->d[end]) || is_digit(ps->d[end]) || ps->d[end] == '_'))
    end++;
  const char *t = (const char *)ps->d + start;
  size_t n = end - start;
  if (n == 4 && memcmp(t, "true", 4) == 0)
    *out = json_true();
  else if (n == 5 && memcmp(t, "false", 5) == 0)
    *out = json_false();
  else if (n == 4 && memcmp(t, "null", 4) == 0)
    *out = json_null();
  else {
    char shown[64];
    tw__quote_text(t, n, shown, sizeof shown);
    return perr(ps, start, "invalid literal %s", shown);
  }
  ps->pos = end;
  return TW_OK;
}

static int parse_array(parser *ps, unsigned depth, json_t **out) {
  json_t *arr = json_array();
  if (arr == NULL)
    return oom(ps);
  ps->pos++;
  skip_ws(ps);
  if (peek(ps) == ']') {
    ps->pos++;
    *out = arr;
    return TW_OK;
  }
  for (;;) {
    json_t *v = NULL;
    int rc = parse_value(ps, depth, &v);
    if (rc != TW_OK) {
      json_decref(arr);
      return rc;
    }
    if (json_array_append_new(arr, v) != 0 || /* v is released */
        (ps->doc != NULL &&
         tw_json_doc_mark_item(ps->doc, arr, json_array_size(arr) - 1,
                               ps->value_at) != TW_OK)) {
      json_decref(arr);
      return oom(ps);
    }
    skip_ws(ps);
    int c = peek(ps);
    if (c == ']')
      break;
    if (c != ',') {
      json_decref(arr);
      return expected(ps, "',' or ']'");
    }
    ps->pos++;
  }
  ps->pos++;
  *out = arr;
  return TW_OK;
}

/* Reads one "key": value member into obj. */
static int parse_member(parser *ps, unsigned depth, json_t *obj) {
  size_t key_at = ps->pos;
  const char *key;
  size_t n;
  bool esc;
  int rc = parse_string(ps, &key, &n, &esc);
  if (rc != TW_OK)
    return rc;
  if (json_object_getn(obj, key, n) != NULL) {
    char shown[64];
    tw__quote_text(key, n, shown, sizeof shown);
    return perr(ps, key_at, "duplicate key %s", shown);
  }
  /* A decoded key lives in scratch, which the value will overwrite. */
  char *copy = NULL;
  if (esc) {
    copy = tw_memdup(key, n);
    if (copy == NULL)
      return oom(ps);
    key = copy;
  }
  json_t *v = NULL;
  skip_ws(ps);
  if (peek(ps) != ':') {
    rc = expected(ps, "':'");
  } else {
    ps->pos++;
    rc = parse_value(ps, depth, &v);
  }
  size_t value_at = ps->value_at;
  if (rc == TW_OK && json_object_setn_new_nocheck(obj, key, n, v) != 0)
    rc = oom(ps); /* v is released */
  if (rc == TW_OK && ps->doc != NULL) {
    /* Members are found by NUL-terminated key (keys hold no NUL). */
    tw_buf_reset(&ps->scratch);
    if (tw_buf_append(&ps->scratch, key, n) != TW_OK ||
        tw_buf_putc(&ps->scratch, '\0') != TW_OK ||
        tw_json_doc_mark_member(ps->doc, obj, ps->scratch.data, key_at,
                                value_at) != TW_OK)
      rc = oom(ps);
  }
  tw_free(copy);
  return rc;
}

static int parse_object(parser *ps, unsigned depth, json_t **out) {
  json_t *obj = json_object();
  if (obj == NULL)
    return oom(ps);
  ps->pos++;
  skip_ws(ps);
  if (peek(ps) == '}') {
    ps->pos++;
    *out = obj;
    return TW_OK;
  }
  const char *want = "a string key or '}'";
  for (;;) {
    int rc =
        peek(ps) == '"' ? parse_member(ps, depth, obj) : expected(ps, want);
    if (rc != TW_OK) {
      json_decref(obj);
      return rc;
    }
    skip_ws(ps);
    int c = peek(ps);
    if (c == '}')
      break;
    if (c != ',') {
      json_decref(obj);
      return expected(ps, "',' or '}'");
    }
    ps->pos++;
    skip_ws(ps);
    want = "a string key";
  }
  ps->pos++;
  *out = obj;
  return TW_OK;
}

static int parse_value_at(parser *ps, unsigned depth, json_t **out);

/* Reads a value at nesting depth (the number of enclosing containers),
 * noting where it starts when the caller keeps marks. */
static int parse_value(parser *ps, unsigned depth, json_t **out) {
  skip_ws(ps);
  size_t at = ps->pos;
  int rc = parse_value_at(ps, depth, out);
  if (rc == TW_OK && ps->doc != NULL &&
      tw_json_doc_mark(ps->doc, *out, at) != TW_OK) {
    json_decref(*out);
    return oom(ps);
  }
  ps->value_at = at;
  return rc;
}

static int parse_value_at(parser *ps, unsigned depth, json_t **out) {
  int c = peek(ps);
  if (c == '[' || c == '{') {
    if (depth >= TW_JSON_MAX_DEPTH)
      return perr(ps, ps->pos, "nesting deeper than %d", TW_JSON_MAX_DEPTH);
    return c == '[' ? parse_array(ps, depth + 1, out)
                    : parse_object(ps, depth + 1, out);
  }
  if (c == '"') {
    const char *s = NULL;
    size_t n = 0;
    bool esc = false;
    int rc = parse_string(ps, &s, &n, &esc);
    if (rc != TW_OK)
      return rc;
    *out = json_stringn_nocheck(s, n);
    return *out != NULL ? TW_OK : oom(ps);
  }
  if (c == '-' || is_digit(c))
    return parse_number(ps, out);
  if (is_alpha(c))
    return parse_literal(ps, out);
  return expected(ps, "a value");
}

static int parse_text(const char *data, size_t len, const char *source,
                      tw_json_doc *doc, json_t **out, tw_err *err) {
  json_init();
  parser ps = {
      .d = (const unsigned char *)(data != NULL ? data : ""),
      .len = data != NULL ? len : 0,
      .source = source != NULL && source[0] != '\0' ? source : "<input>",
      .err = err,
      .doc = doc,
  };
  tw_buf_init(&ps.scratch);
  json_t *v = NULL;
  int rc = parse_value(&ps, 0, &v);
  if (rc == TW_OK) {
    skip_ws(&ps);
    if (ps.pos != ps.len) {
      rc = expected(&ps, "end of input");
      json_decref(v);
    }
  }
  tw_buf_fini(&ps.scratch);
  if (rc == TW_OK)
    *out = v;
  return rc;
}

/* --- The flat fast path ------------------------------------------------ */

typedef struct flat {
  const unsigned char *d;
  size_t len, pos;
} flat;

static void flat_ws(flat *f) {
  while (f->pos < f->len && (f->d[f->pos] == ' ' || f->d[f->pos] == '\t' ||
                             f->d[f->pos] == '\n' || f->d[f->pos] == '\r'))
    f->pos++;
}

/* A plain string: printable ASCII without escapes, else false. */
static bool flat_string(flat *f, const char **s, size_t *n) {
  if (f->pos >= f->len || f->d[f->pos] != '"')
    return false;
  size_t start = ++f->pos;
  while (f->pos < f->len) {
    unsigned char c = f->d[f->pos];
    if (c == '"') {
      *s = (const char *)f->d + start;
      *n = f->pos - start;
      f->pos++;
      return true;
    }
    if (c < 0x20 || c >= 0x80 || c == '\\')
      return false;
    f->pos++;
  }
  return false;
}

/* Clinger's fast path: a valid real token whose digits form an integer m
 * below 2^53 and whose decimal exponent q is within 22 of 0 is m * 10^q
 * or m / 10^-q, both operands exact and one rounding - the correctly
 * rounded value, which is what strtod gives. False: use strtod. */
static bool fast_real(const unsigned char *t, size_t n, double *out) {
  static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  size_t i = 0;
  bool neg = t[0] == '-';
  i += neg;
  uint64_t m = 0;
  int digits = 0, q = 0;
  for (; i < n && is_digit(t[i]); i++) {
    if (digits > 0 || t[i] != '0')
      digits++;
    m = m * 10 + (uint64_t)(t[i] - '0');
    if (digits > 15)
      return false;
  }
  if (i < n && t[i] == '.') {
    for (i++; i < n && is_digit(t[i]); i++) {
      if (digits > 0 || t[i] != '0')
        digits++;
      m = m * 10 + (uint64_t)(t[i] - '0');
      q--;
      if (digits > 15 || q < -22)
        return false;
    }
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    i++;
    bool eneg = false;
    if (i < n && (t[i] == '+' || t[i] == '-'))
      eneg = t[i++] == '-';
    int e = 0;
    for (; i < n && is_digit(t[i]); i++) {
      e = e * 10 + (t[i] - '0');
      if (e > 400)
        return false;
    }
    q += eneg ? -e : e;
  }
  if (i != n || q < -22 || q > 22)
    return false;
  double x = (double)m;
  x = q < 0 ? x / p10[-q] : x * p10[q];
  *out = neg ? -x : x;
  return true;
}

/* A scalar, converted as parse_number and parse_literal do. */
static bool flat_scalar(flat *f, tw_json_flat_value *v) {
  memset(v, 0, sizeof *v);
  if (f->pos >= f->len)
    return false;
  unsigned char c = f->d[f->pos];
  if (c == '"') {
    const char *s;
    size_t n;
    v->type = TW_JSON_FLAT_STRING;
    return flat_string(f, &s, &n);
  }
  size_t start = f->pos, end = start;
  if (is_alpha(c)) {
    while (end < f->len &&
           (is_alpha(f->d[end]) || is_digit(f->d[end]) || f->d[end] == '_'))
      end++;
    const char *t = (const char *)f->d + start;
    size_t n = end - start;
    if (n == 4 && memcmp(t, "true", 4) == 0)
      v->type = TW_JSON_FLAT_TRUE;
    else if (n == 5 && memcmp(t, "false", 5) == 0)
      v->type = TW_JSON_FLAT_FALSE;
    else if (n == 4 && memcmp(t, "null", 4) == 0)
      v->type = TW_JSON_FLAT_NULL;
    else
      return false;
    f->pos = end;
    return true;
  }
  while (end < f->len && is_number_char(f->d[end]))
    end++;
  const unsigned char *t = f->d + start;
  size_t n = end - start;
  bool is_int;
  if (n == 0 || !number_syntax_ok(t, n, &is_int))
    return false;
  if (is_int) {
    json_int_t i;
    if (!to_int64(t, n, &i))
      return false;
    v->type = TW_JSON_FLAT_INT;
    v->i = (int64_t)i;
    v->d = (double)i;
  } else if (!fast_real(t, n, &v->d)) {
    char copy[64];
    if (n >= sizeof copy)
      return false;
    memcpy(copy, t, n);
    copy[n] = '\0';
    double x = c_locale != (locale_t)0 ? strtod_l(copy, NULL, c_locale)
                                       : strtod(copy, NULL);
    if (!isfinite(x))
      return false;
    v->type = TW_JSON_FLAT_REAL;
    v->d = x;
  } else {
    v->type = TW_JSON_FLAT_REAL;
  }
  f->pos = end;
  return true;
}

int tw_json_scan_flat(const char *data, size_t len,
                      tw_json_flat_member *members, size_t mcap,
                      size_t *nmembers, tw_json_flat_value *items,
                      size_t icap) {
  json_init();
  flat f = {(const unsigned char *)data, data != NULL ? len : 0, 0};
  size_t nm = 0, ni = 0;
  flat_ws(&f);
  if (f.pos >= f.len || f.d[f.pos] != '{')
    return TW_ENOTSUP;
  f.pos++;
  flat_ws(&f);
  if (f.pos < f.len && f.d[f.pos] == '}') {
    f.pos++;
  } else {
    for (;;) {
      if (nm == mcap)
        return TW_ENOTSUP;
      tw_json_flat_member *m = &members[nm];
      if (!flat_string(&f, &m->key, &m->key_len))
        return TW_ENOTSUP;
      for (size_t k = 0; k < nm; k++)
        if (members[k].key_len == m->key_len &&
            memcmp(members[k].key, m->key, m->key_len) == 0)
          return TW_ENOTSUP; /* duplicate: the parser words it */
      flat_ws(&f);
      if (f.pos >= f.len || f.d[f.pos] != ':')
        return TW_ENOTSUP;
      f.pos++;
      flat_ws(&f);
      if (f.pos < f.len && f.d[f.pos] == '[') {
        f.pos++;
        memset(&m->v, 0, sizeof m->v);
        m->v.type = TW_JSON_FLAT_ARRAY;
        m->v.first = ni;
        flat_ws(&f);
        if (f.pos < f.len && f.d[f.pos] == ']') {
          f.pos++;
        } else {
          for (;;) {
            if (ni == icap || f.pos >= f.len || f.d[f.pos] == '[' ||
                f.d[f.pos] == '{' || !flat_scalar(&f, &items[ni]))
              return TW_ENOTSUP;
            ni++;
            flat_ws(&f);
            if (f.pos < f.len && f.d[f.pos] == ',') {
              f.pos++;
              flat_ws(&f);
              continue;
            }
            if (f.pos < f.len && f.d[f.pos] == ']') {
              f.pos++;
              break;
            }
            return TW_ENOTSUP;
          }
        }
        m->v.n = ni - m->v.first;
      } else if (f.pos >= f.len || f.d[f.pos] == '{' ||
                 !flat_scalar(&f, &m->v)) {
        return TW_ENOTSUP;
      }
      nm++;
      flat_ws(&f);
      if (f.pos < f.len && f.d[f.pos] == ',') {
        f.pos++;
        flat_ws(&f);
        continue;
      }
      if (f.pos < f.len && f.d[f.pos] == '}') {
        f.pos++;
        break;
      }
      return TW_ENOTSUP;
    }
  }
  flat_ws(&f);
  if (f.pos != f.len)
    return TW_ENOTSUP;
  *nmembers = nm;
  return TW_OK;
}

int tw_json_parse(const char *data, size_t len, const char *source,
                  json_t **out, tw_err *err) {
  return parse_text(data, len, source, NULL, out, err);
}

/* --- Documents: values with their places --------------------------------
 *
 * A document's places live in one open-addressing hash table keyed by
 * pointers, never by text from the input: a value's place under the value,
 * a member's under the key string jansson stores for it (stable while the
 * member exists; found through jansson's own seeded hash), an item's under
 * (array, index). Hostile keys therefore cannot make the table degrade.
 * A record for a key already present replaces it: every value, member and
 * item a front end builds is recorded, so a stale record (jansson reused a
 * freed address) is always overwritten before it could be read. */

typedef enum place_kind {
  PLACE_VALUE = 1,
  PLACE_MEMBER,
  PLACE_ITEM
} place_kind;

#define PLACE_NONE SIZE_MAX /* an unknown offset */

typedef struct place {
  const void *p;   /* the value, the member's key, the array; NULL: free */
  size_t index;    /* PLACE_ITEM: the index */
  size_t at;       /* where the value, item or member key starts */
  size_t value_at; /* PLACE_MEMBER: where the member's value starts */
  int kind;
} place;

struct tw_json_doc {
  json_t *root;
  char *source;
  char *text; /* a copy, to turn offsets into lines and columns */
  size_t len;
  place *places; /* cap slots, a power of two (or 0) */
  size_t nplaces, cap;
};

static size_t place_hash(const void *p, size_t index, int kind) {
  uint64_t h = (uint64_t)(uintptr_t)p ^ (uint64_t)index * 0x9E3779B97F4A7C15u ^
               (uint64_t)kind << 59;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDu;
  h ^= h >> 33;
  h *= 0xC4CEB3F97BB9EC3Du;
  h ^= h >> 33;
  return (size_t)h;
}

/* The slot of (kind, p, index): its record, or the free slot it would take.
 * The table always has a free slot. */
static place *place_slot(place *tab, size_t cap, const void *p, size_t index,
                         int kind) {
  size_t i = place_hash(p, index, kind) & (cap - 1);
  while (tab[i].p != NULL &&
         (tab[i].p != p || tab[i].index != index || tab[i].kind != kind))
    i = (i + 1) & (cap - 1);
  return &tab[i];
}

static const place *place_find(const tw_json_doc *d, const void *p,
                               size_t index, int kind) {
  if (d->cap == 0 || p == NULL)
    return NULL;
  const place *pl = place_slot(d->places, d->cap, p, index, kind);
  return pl->p != NULL ? pl : NULL;
}

/* Records pl, replacing a record with the same key. */
static int place_put(tw_json_doc *d, const place *pl) {
  if (4 * (d->nplaces + 1) > 3 * d->cap) {
    size_t cap = d->cap != 0 ? 2 * d->cap : 64;
    place *tab = tw_calloc(cap, sizeof *tab);
    if (tab == NULL)
      return TW_ENOMEM;
    for (size_t i = 0; i < d->cap; i++)
      if (d->places[i].p != NULL)
        *place_slot(tab, cap, d->places[i].p, d->places[i].index,
                    d->places[i].kind) = d->places[i];
    tw_free(d->places);
    d->places = tab;
    d->cap = cap;
  }
  place *slot = place_slot(d->places, d->cap, pl->p, pl->index, pl->kind);
  if (slot->p == NULL)
    d->nplaces++;
  *slot = *pl;
  return TW_OK;
}

static bool is_singleton(const json_t *v) {
  return json_is_true(v) || json_is_false(v) || json_is_null(v);
}

/* The key string jansson keeps for member key of obj, or NULL. */
static const char *member_key(const json_t *obj, const char *key) {
  if (!json_is_object(obj) || key == NULL)
    return NULL;
  /* The iterator functions want a non-const object; they only read. */
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  void *it = json_object_iter_at((json_t *)(uintptr_t)obj, key);
  return it != NULL ? json_object_iter_key(it) : NULL;
}

void tw_json_doc_free(tw_json_doc *d) {
  if (d == NULL)
    return;
  if (d->root != NULL)
    json_decref(d->root);
  tw_free(d->source);
  tw_free(d->text);
  tw_free(d->places);
  tw_free(d);
}

/* An empty document over a copy of text[0..len); NULL on ENOMEM. */
static tw_json_doc *doc_alloc(const char *text, size_t len,
                              const char *source) {
  tw_json_doc *d = tw_calloc(1, sizeof *d);
  if (d == NULL || (d->source = tw_strdup(source)) == NULL ||
      (d->text = tw_alloc(len + 1)) == NULL) {
    tw_json_doc_free(d);
    return NULL;
  }
  if (len > 0 && text != NULL)
    memcpy(d->text, text, len);
  d->text[len] = '\0';
  d->len = len;
  return d;
}

int tw_json_parse_doc(const char *data, size_t len, const char *source,
                      tw_json_doc **out, tw_err *err) {
  const char *src = source != NULL && source[0] != '\0' ? source : "<input>";
  tw_json_doc *d = doc_alloc(data, len, src);
  if (d == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory parsing JSON", src);
  int rc = parse_text(data, len, src, d, &d->root, err);
  if (rc != TW_OK) {
    tw_json_doc_free(d);
    return rc;
  }
  *out = d;
  return TW_OK;
}

int tw_json_load_doc(const char *path, tw_json_doc **out, tw_err *err) {
  tw_buf b;
  tw_buf_init(&b);
  int rc = tw_file_read_all(path, TW_JSON_MAX_FILE, &b, err);
  if (rc == TW_OK)
    rc = tw_json_parse_doc(b.data, b.len, path, out, err);
  tw_buf_fini(&b);
  return rc;
}

int tw_json_doc_new(json_t *root, const char *text, size_t len,
                    const char *source, tw_json_doc **out) {
  json_init();
  tw_json_doc *d = doc_alloc(text, len, source != NULL ? source : "<input>");
  if (d == NULL)
    return TW_ENOMEM;
  d->root = root; /* owned from here on */
  *out = d;
  return TW_OK;
}

int tw_json_doc_mark(tw_json_doc *d, const json_t *v, size_t offset) {
  if (v == NULL || is_singleton(v))
    return TW_OK;
  place pl = {.p = v, .at = offset, .kind = PLACE_VALUE};
  return place_put(d, &pl);
}

int tw_json_doc_mark_member(tw_json_doc *d, const json_t *obj, const char *key,
                            size_t key_offset, size_t value_offset) {
  const char *k = member_key(obj, key);
  if (k == NULL)
    return TW_EINVAL;
  place pl = {
      .p = k, .at = key_offset, .value_at = value_offset, .kind = PLACE_MEMBER};
  return place_put(d, &pl);
}

int tw_json_doc_mark_item(tw_json_doc *d, const json_t *arr, size_t index,
                          size_t offset) {
  if (!json_is_array(arr) || index >= json_array_size(arr))
    return TW_EINVAL;
  place pl = {.p = arr, .index = index, .at = offset, .kind = PLACE_ITEM};
  return place_put(d, &pl);
}

/* The recorded start of v, or PLACE_NONE. */
static size_t value_at(const tw_json_doc *d, const json_t *v) {
  if (v == NULL || is_singleton(v))
    return PLACE_NONE;
  const place *pl = place_find(d, v, 0, PLACE_VALUE);
  return pl != NULL ? pl->at : PLACE_NONE;
}

/* Copies v into *out, each part marked where its original was and the copy
 * itself at offset. */
static int doc_dup(tw_json_doc *d, const json_t *v, size_t offset,
                   json_t **out) {
  json_t *c = NULL;
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    c = json_object();
    break;
  case JSON_ARRAY:
    c = json_array();
    break;
  case JSON_STRING:
    c = json_stringn_nocheck(json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    c = json_integer(json_integer_value(v));
    break;
  case JSON_REAL:
    c = json_real(json_real_value(v));
    break;
  case JSON_TRUE:
  case JSON_FALSE:
  case JSON_NULL:
    /* Shared singletons, not reference counted. */
    *out = json_is_true(v)    ? json_true()
           : json_is_false(v) ? json_false()
                              : json_null();
    return TW_OK;
  }
  if (c == NULL)
    return TW_ENOMEM;
  int rc = tw_json_doc_mark(d, c, offset);
  const char *key;
  size_t n;
  json_t *m;
  if (rc == TW_OK && json_is_object(v)) {
    // NOLINTNEXTLINE(performance-no-int-to-ptr)
    json_object_keylen_foreach((json_t *)(uintptr_t)v, key, n, m) {
      const place *pl = place_find(d, key, 0, PLACE_MEMBER);
      size_t kat = pl != NULL ? pl->at : PLACE_NONE;
      size_t vat = pl != NULL ? pl->value_at : value_at(d, m);
      json_t *mc = NULL;
      if ((rc = doc_dup(d, m, value_at(d, m), &mc)) != TW_OK)
        break;
      if (json_object_setn_new_nocheck(c, key, n, mc) != 0) {
        rc = TW_ENOMEM;
        break;
      }
      /* Keys holding NUL cannot be looked up by C string; they stay
       * without a place. */
      if (strlen(key) == n &&
          (rc = tw_json_doc_mark_member(d, c, key, kat, vat)) != TW_OK)
        break;
    }
  } else if (rc == TW_OK && json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      m = json_array_get(v, i);
      const place *pl = place_find(d, v, i, PLACE_ITEM);
      size_t iat = pl != NULL ? pl->at : value_at(d, m);
      json_t *mc = NULL;
      if ((rc = doc_dup(d, m, value_at(d, m), &mc)) != TW_OK)
        break;
      if (json_array_append_new(c, mc) != 0) {
        rc = TW_ENOMEM;
        break;
      }
      if ((rc = tw_json_doc_mark_item(d, c, i, iat)) != TW_OK)
        break;
    }
  }
  if (rc != TW_OK) {
    json_decref(c);
    return rc;
  }
  *out = c;
  return TW_OK;
}

int tw_json_doc_dup(tw_json_doc *d, const json_t *v, size_t offset,
                    json_t **out) {
  json_init();
  assert(v != NULL);
  return doc_dup(d, v, offset, out);
}

int tw_json_doc_update_missing(tw_json_doc *d, json_t *obj,
                               const json_t *other) {
  json_init();
  assert(json_is_object(obj) && json_is_object(other));
  const char *key;
  size_t n;
  json_t *m;
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  json_object_keylen_foreach((json_t *)(uintptr_t)other, key, n, m) {
    if (json_object_getn(obj, key, n) != NULL)
      continue;
    const place *pl = place_find(d, key, 0, PLACE_MEMBER);
    size_t kat = pl != NULL ? pl->at : PLACE_NONE;
    size_t vat = pl != NULL ? pl->value_at : value_at(d, m);
    if (json_object_setn_nocheck(obj, key, n, m) != 0)
      return TW_ENOMEM;
    if (strlen(key) == n) {
      int rc = tw_json_doc_mark_member(d, obj, key, kat, vat);
      if (rc != TW_OK)
        return rc;
    }
  }
  return TW_OK;
}

json_t *tw_json_doc_root(const tw_json_doc *d) { return d->root; }
const char *tw_json_doc_source(const tw_json_doc *d) { return d->source; }

/* Turns a byte offset into a line and a column. */
static bool line_col(const tw_json_doc *d, size_t at, unsigned *line,
                     unsigned *col) {
  if (at == PLACE_NONE)
    return false;
  unsigned l = 1, c = 1;
  for (size_t i = 0; i < at && i < d->len; i++) {
    if (d->text[i] == '\n') {
      l++;
      c = 1;
    } else if (((unsigned char)d->text[i] & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *col = c;
  return true;
}

bool tw_json_doc_where(const tw_json_doc *d, const json_t *v, unsigned *line,
                       unsigned *col) {
  return line_col(d, value_at(d, v), line, col);
}

bool tw_json_doc_where_key(const tw_json_doc *d, const json_t *obj,
                           const char *key, unsigned *line, unsigned *col) {
  const place *pl = place_find(d, member_key(obj, key), 0, PLACE_MEMBER);
  return pl != NULL && line_col(d, pl->at, line, col);
}

bool tw_json_doc_where_member(const tw_json_doc *d, const json_t *obj,
                              const char *key, unsigned *line, unsigned *col) {
  const char *k = member_key(obj, key);
  if (k == NULL)
    return false;
  const place *pl = place_find(d, k, 0, PLACE_MEMBER);
  size_t at = pl != NULL ? pl->value_at : value_at(d, json_object_get(obj, k));
  return line_col(d, at, line, col);
}

bool tw_json_doc_where_item(const tw_json_doc *d, const json_t *arr,
                            size_t index, unsigned *line, unsigned *col) {
  if (!json_is_array(arr) || index >= json_array_size(arr))
    return false;
  const place *pl = place_find(d, arr, index, PLACE_ITEM);
  size_t at = pl != NULL ? pl->at : value_at(d, json_array_get(arr, index));
  return line_col(d, at, line, col);
}

/* Appends the whole of the open file fd to b. */
int tw_json_load_file(const char *path, json_t **out, tw_err *err) {
  json_init();
  tw_buf b = TW_BUF_INIT;
  int rc = tw_file_read_all(path, TW_JSON_MAX_FILE, &b, err);
  if (rc == TW_OK)
    rc = tw_json_parse(b.data, b.len, path, out, err);
  tw_buf_fini(&b);
  return rc;
}

/* --- Dumping ----------------------------------------------------------- */

typedef struct dump_sink {
  tw_buf *out;
  int rc;
} dump_sink;

/* Appends a piece of output. A failure is sticky: jansson 2.14 ignores the
 * result of writing an object key when sorting keys, so a later piece must
 * not be appended after a lost one. */
static int dump_cb(const char *buffer, size_t size, void *data) {
  dump_sink *sink = data;
  if (sink->rc == TW_OK)
    sink->rc = tw_buf_append(sink->out, buffer, size);
  return sink->rc == TW_OK ? 0 : -1;
}

int tw_json_dump(const json_t *v, unsigned flags, tw_buf *out) {
  json_init();
  assert((flags & ~(TW_JSON_SORT_KEYS | TW_JSON_PRETTY)) == 0);
  size_t jflags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
  jflags |= (flags & TW_JSON_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT;
  if (flags & TW_JSON_SORT_KEYS)
    jflags |= JSON_SORT_KEYS;
  dump_sink sink = {out, TW_OK};
  size_t old_len = out->len;
  alloc_failed = false;
  int jrc = v != NULL ? json_dump_callback(v, dump_cb, &sink, jflags) : -1;
  /* For the same reason, trust a success only if nothing failed on the
   * way. */
  if (jrc == 0 && sink.rc == TW_OK && !alloc_failed)
    return TW_OK;
  tw_buf_truncate(out, old_len);
  if (sink.rc != TW_OK)
    return sink.rc;
  /* Otherwise jansson failed by itself: memory, or a value it refuses (a
   * cycle, a string made with json_stringn_nocheck that is not UTF-8). */
  return alloc_failed ? TW_ENOMEM : TW_EINVAL;
}

/* --- Typed access ------------------------------------------------------ */

static const char *type_name(const json_t *v) {
  if (v == NULL)
    return "nothing";
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
    return "integer";
  case JSON_REAL:
    return "real";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  case JSON_NULL:
    return "null";
  }
  return "unknown";
}

static bool has_where(const char *where) {
  return where != NULL && where[0] != '\0';
}

/* Fetches member key of obj into *v (NULL when absent and optional). */
static int wrong_type(const char *where, const char *key, const char *want,
                      const json_t *v, tw_err *err) {
  bool w = has_where(where);
  return tw_err_set(err, TW_ETYPE, "%s%s%s: expected %s, got %s",
                    w ? where : "", w ? "." : "", key, want, type_name(v));
}

#define TYPE_BIT(t) (1u << (t))

/* Finds member key of obj. Absent: TW_OK with *v NULL, or the "missing"
 * error if required. Present but of a type not in the mask types: the
 * "expected WANT" error. */
static int member(const json_t *obj, const char *where, const char *key,
                  bool required, unsigned types, const char *want, json_t **v,
                  tw_err *err) {
  assert(key != NULL);
  bool w = has_where(where);
  *v = NULL;
  if (!json_is_object(obj))
    return tw_err_set(err, TW_ETYPE, "%s%sexpected an object, got %s",
                      w ? where : "", w ? ": " : "", type_name(obj));
  json_t *m = json_object_get(obj, key);
  if (m == NULL)
    return required
               ? tw_err_set(err, TW_EINVAL, "%s%smissing required field '%s'",
                            w ? where : "", w ? ": " : "", key)
               : TW_OK;
  if ((types & TYPE_BIT(json_typeof(m))) == 0)
    return wrong_type(where, key, want, m, err);
  *v = m;
  return TW_OK;
}

/* Fails with "WHERE.KEY: expected WANT, got TYPE". */

int tw_json_get_str(const json_t *obj, const char *where, const char *key,
                    bool required, const char **out, tw_err *err) {
  json_init();
  json_t *v = NULL;
  int rc = member(obj, where, key, required, TYPE_BIT(JSON_STRING), "a string",
                  &v, err);
  if (rc != TW_OK || v == NULL)
    return rc;
  const char *s = json_string_value(v);
  /* Values built with json_stringn may hold a NUL that C callers would
   * silently cut at; the parser never produces one. */
  if (strlen(s) != json_string_length(v)) {
    bool w = has_where(where);
    return tw_err_set(err, TW_EINVAL, "%s%s%s: string contains a NUL byte",
                      w ? where : "", w ? "." : "", key);
  }
  *out = s;
  return TW_OK;
}

int tw_json_get_int(const json_t *obj, const char *where, const char *key,
                    bool required, int64_t min, int64_t max, int64_t *out,
                    tw_err *err) {
  json_init();
  assert(min <= max);
  json_t *v = NULL;
  int rc = member(obj, where, key, required, TYPE_BIT(JSON_INTEGER),
                  "an integer", &v, err);
  if (rc != TW_OK || v == NULL)
    return rc;
  int64_t x = json_integer_value(v);
  if (x < min || x > max) {
    bool w = has_where(where);
    return tw_err_set(err, TW_ERANGE,
                      "%s%s%s: %" PRId64 " is out of range [%" PRId64
                      ", %" PRId64 "]",
                      w ? where : "", w ? "." : "", key, x, min, max);
  }
  *out = x;
  return TW_OK;
}

/* Shortest round-trip text of the finite x, for messages. */
static void fmt_double(double x, char *out, size_t cap) {
  tw__format_f64(x, out, cap);
}

int tw_json_get_f64(const json_t *obj, const char *where, const char *key,
                    bool required, double min, double max, double *out,
                    tw_err *err) {
  json_init();
  assert(min <= max);
  json_t *v = NULL;
  int rc =
      member(obj, where, key, required,
             TYPE_BIT(JSON_INTEGER) | TYPE_BIT(JSON_REAL), "a number", &v, err);
  if (rc != TW_OK || v == NULL)
    return rc;
  double x = json_number_value(v);
  bool w = has_where(where);
  if (!isfinite(x))
    return tw_err_set(err, TW_ERANGE, "%s%s%s: value is not finite",
                      w ? where : "", w ? "." : "", key);
  if (x < min || x > max) {
    char xs[32], lo[32], hi[32];
    fmt_double(x, xs, sizeof xs);
    fmt_double(min, lo, sizeof lo);
    fmt_double(max, hi, sizeof hi);
    return tw_err_set(err, TW_ERANGE, "%s%s%s: %s is out of range [%s, %s]",
                      w ? where : "", w ? "." : "", key, xs, lo, hi);
  }
  *out = x;
  return TW_OK;
}

int tw_json_get_bool(const json_t *obj, const char *where, const char *key,
                     bool required, bool *out, tw_err *err) {
  json_init();
  json_t *v = NULL;
  int rc =
      member(obj, where, key, required,
             TYPE_BIT(JSON_TRUE) | TYPE_BIT(JSON_FALSE), "a boolean", &v, err);
  if (rc != TW_OK || v == NULL)
    return rc;
  *out = json_is_true(v);
  return TW_OK;
}

int tw_json_get_array(const json_t *obj, const char *where, const char *key,
                      bool required, json_t **out, tw_err *err) {
  json_init();
  json_t *v = NULL;
  int rc = member(obj, where, key, required, TYPE_BIT(JSON_ARRAY), "an array",
                  &v, err);
  if (rc != TW_OK || v == NULL)
    return rc;
  *out = v;
  return TW_OK;
}

int tw_json_get_object(const json_t *obj, const char *where, const char *key,
                       bool required, json_t **out, tw_err *err) {
  json_init();
  json_t *v = NULL;
  int rc = member(obj, where, key, required, TYPE_BIT(JSON_OBJECT), "an object",
                  &v, err);
  if (rc != TW_OK || v == NULL)
    return rc;
  *out = v;
  return TW_OK;
}

int tw_json_check_keys(const json_t *obj, const char *where,
                       const char *const *allowed, tw_err *err) {
  json_init();
  bool w = has_where(where);
  if (!json_is_object(obj))
    return tw_err_set(err, TW_ETYPE, "%s%sexpected an object, got %s",
                      w ? where : "", w ? ": " : "", type_name(obj));
  const char *key;
  size_t n;
  json_t *v = NULL;
  /* jansson iterates in insertion order, so the first unknown key of the
   * document is the one reported. */
  /* The iteration macro wants a non-const object; it only reads. */
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  json_object_keylen_foreach((json_t *)(uintptr_t)obj, key, n, v) {
    (void)v;
    if (n >= 2 && key[0] == 'x' && key[1] == '-')
      continue;
    bool known = false;
    for (size_t i = 0; allowed != NULL && allowed[i] != NULL && !known; i++)
      known = strlen(allowed[i]) == n && memcmp(allowed[i], key, n) == 0;
    if (!known) {
      char shown[64];
      tw__quote_text(key, n, shown, sizeof shown);
      return tw_err_set(err, TW_EINVAL, "%s%sunknown field %s", w ? where : "",
                        w ? ": " : "", shown);
    }
  }
  return TW_OK;
}
