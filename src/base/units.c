/*
 * units.c - the unit and quantity parsers, conversions and the canonical
 * dimension form (include/twin/units.h, docs/units.md).
 *
 * The parser is recursive descent over the byte string with a depth bound
 * (TW_UNIT_MAX_DEPTH), so recursion is bounded whatever the input. Every
 * read is checked against the length; the text need not be terminated.
 *
 * While parsing, a factor is kept as num / den * 10^p10 rather than as one
 * double, so that the common units come out as the correctly rounded double
 * of their exact value: "mg" is 1e-6 and "km/h" is 1000/3600, each rounded
 * once. num and den hold small exact integers (or pi) as long as they stay
 * below 2^53; beyond that they are folded into one ratio. After each step
 * the factor must be a finite normal double, which also bounds p10, and
 * every exponent must stay within TW_UNIT_EXP_MAX.
 *
 * Affine units (degC, degF) carry their offset only when they are the whole
 * expression; any product, quotient, power or parenthesis around them is
 * an error, as an offset has no meaning there.
 */
#include <assert.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_int.h"
#include "twin/units.h"

/* --- Tables -------------------------------------------------------------- */

#define TW__PI 3.14159265358979323846

/* A unit symbol: exponents in tw_unit order (kg, m, s, A, K, mol, cd, rad),
 * factor num / den * 10^p10, and offset (affine units only). */
typedef struct unit_def {
  const char *sym;
  int exp[TW_UNIT_NBASE];
  double num, den;
  double offset;
  int p10;
  bool prefixable;
} unit_def;

#define E(kg, m, s, a, k, mol, cd, rad)                                        \
  { kg, m, s, a, k, mol, cd, rad }
#define U(sym_, exp_, num_, den_, p10_, offset_, prefixable_)                  \
  {                                                                            \
    .sym = (sym_), .exp = exp_, .num = (num_), .den = (den_),                  \
    .offset = (offset_), .p10 = (p10_), .prefixable = (prefixable_)            \
  }

/* Exact symbols are looked up before prefixed ones, which settles the
 * ambiguities: "min" is the minute, "cd" the candela, "Pa" the pascal, "h"
 * the hour, "d" the day, "T" the tesla, "ft" the foot. */
static const unit_def units[] = {
    /* SI base units (the gram, so that "kg" is a prefixed gram). */
    U("m", E(0, 1, 0, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("g", E(1, 0, 0, 0, 0, 0, 0, 0), 1, 1, -3, 0, true),
    U("s", E(0, 0, 1, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("A", E(0, 0, 0, 1, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("K", E(0, 0, 0, 0, 1, 0, 0, 0), 1, 1, 0, 0, true),
    U("mol", E(0, 0, 0, 0, 0, 1, 0, 0), 1, 1, 0, 0, true),
    U("cd", E(0, 0, 0, 0, 0, 0, 1, 0), 1, 1, 0, 0, true),
    /* Angles: FMI's eighth exponent; the steradian is rad^2. */
    U("rad", E(0, 0, 0, 0, 0, 0, 0, 1), 1, 1, 0, 0, true),
    U("sr", E(0, 0, 0, 0, 0, 0, 0, 2), 1, 1, 0, 0, true),
    U("deg", E(0, 0, 0, 0, 0, 0, 0, 1), TW__PI, 180, 0, 0, false),
    U("\xc2\xb0", E(0, 0, 0, 0, 0, 0, 0, 1), TW__PI, 180, 0, 0, false),
    U("rev", E(0, 0, 0, 0, 0, 0, 0, 1), 2 * TW__PI, 1, 0, 0, false),
    U("rpm", E(0, 0, -1, 0, 0, 0, 0, 1), 2 * TW__PI, 60, 0, 0, false),
    /* Derived SI units. */
    U("Hz", E(0, 0, -1, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("N", E(1, 1, -2, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("Pa", E(1, -1, -2, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("J", E(1, 2, -2, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("W", E(1, 2, -3, 0, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("C", E(0, 0, 1, 1, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("V", E(1, 2, -3, -1, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("F", E(-1, -2, 4, 2, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("Ohm", E(1, 2, -3, -2, 0, 0, 0, 0), 1, 1, 0, 0, true),
    /* The ohm as U+03A9 (Greek capital omega) and U+2126 (ohm sign). */
    U("\xce\xa9", E(1, 2, -3, -2, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("\xe2\x84\xa6", E(1, 2, -3, -2, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("S", E(-1, -2, 3, 2, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("Wb", E(1, 2, -2, -1, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("T", E(1, 0, -2, -1, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("H", E(1, 2, -2, -2, 0, 0, 0, 0), 1, 1, 0, 0, true),
    U("lm", E(0, 0, 0, 0, 0, 0, 1, 2), 1, 1, 0, 0, true),
    U("lx", E(0, -2, 0, 0, 0, 0, 1, 2), 1, 1, 0, 0, true),
    /* Time, volume, mass, pressure, energy, charge. */
    U("min", E(0, 0, 1, 0, 0, 0, 0, 0), 60, 1, 0, 0, false),
    U("h", E(0, 0, 1, 0, 0, 0, 0, 0), 3600, 1, 0, 0, false),
    U("d", E(0, 0, 1, 0, 0, 0, 0, 0), 86400, 1, 0, 0, false),
    U("L", E(0, 3, 0, 0, 0, 0, 0, 0), 1, 1, -3, 0, true),
    U("l", E(0, 3, 0, 0, 0, 0, 0, 0), 1, 1, -3, 0, true),
    U("t", E(1, 0, 0, 0, 0, 0, 0, 0), 1, 1, 3, 0, false),
    U("bar", E(1, -1, -2, 0, 0, 0, 0, 0), 1, 1, 5, 0, true),
    U("atm", E(1, -1, -2, 0, 0, 0, 0, 0), 101325, 1, 0, 0, false),
    U("Wh", E(1, 2, -2, 0, 0, 0, 0, 0), 3600, 1, 0, 0, true),
    U("Ah", E(0, 0, 1, 1, 0, 0, 0, 0), 3600, 1, 0, 0, true),
    /* US customary, exact by definition (NIST SP 811). */
    U("in", E(0, 1, 0, 0, 0, 0, 0, 0), 254, 1, -4, 0, false),
    U("ft", E(0, 1, 0, 0, 0, 0, 0, 0), 3048, 1, -4, 0, false),
    U("lb", E(1, 0, 0, 0, 0, 0, 0, 0), 45359237, 1, -8, 0, false),
    U("lbf", E(1, 1, -2, 0, 0, 0, 0, 0), 44482216152605, 1, -13, 0, false),
    U("psi", E(1, -1, -2, 0, 0, 0, 0, 0), 44482216152605, 64516, -5, 0, false),
    /* Dimensionless ratios. */
    U("%", E(0, 0, 0, 0, 0, 0, 0, 0), 1, 1, -2, 0, false),
    U("ppm", E(0, 0, 0, 0, 0, 0, 0, 0), 1, 1, -6, 0, false),
    /* Affine temperatures: SI = factor * value + offset. */
    U("degC", E(0, 0, 0, 0, 1, 0, 0, 0), 1, 1, 0, 273.15, false),
    U("Cel", E(0, 0, 0, 0, 1, 0, 0, 0), 1, 1, 0, 273.15, false),
    U("\xc2\xb0"
      "C",
      E(0, 0, 0, 0, 1, 0, 0, 0), 1, 1, 0, 273.15, false),
    U("\xe2\x84\x83", E(0, 0, 0, 0, 1, 0, 0, 0), 1, 1, 0, 273.15, false),
    U("degF", E(0, 0, 0, 0, 1, 0, 0, 0), 5, 9, 0, 45967.0 / 180.0, false),
    U("\xc2\xb0"
      "F",
      E(0, 0, 0, 0, 1, 0, 0, 0), 5, 9, 0, 45967.0 / 180.0, false),
    U("\xe2\x84\x89", E(0, 0, 0, 0, 1, 0, 0, 0), 5, 9, 0, 45967.0 / 180.0,
      false),
};

#undef U
#undef E

/* SI prefixes, "da" before "d" so that the longer one is tried first. */
typedef struct prefix_def {
  const char *sym;
  int p10;
} prefix_def;

static const prefix_def prefixes[] = {
    {"da", 1},        {"q", -30}, {"r", -27}, {"y", -24}, {"z", -21},
    {"a", -18},       {"f", -15}, {"p", -12}, {"n", -9},  {"u", -6},
    {"\xc2\xb5", -6}, /* U+00B5 micro sign */
    {"\xce\xbc", -6}, /* U+03BC Greek small mu */
    {"m", -3},        {"c", -2},  {"d", -1},  {"h", 2},   {"k", 3},
    {"M", 6},         {"G", 9},   {"T", 12},  {"P", 15},  {"E", 18},
    {"Z", 21},        {"Y", 24},  {"R", 27},  {"Q", 30},
};

static const char *const base_syms[TW_UNIT_NBASE] = {"kg", "m",   "s",  "A",
                                                     "K",  "mol", "cd", "rad"};

/* --- Factors ------------------------------------------------------------- */

/* A unit under construction: exponents in int (checked against
 * TW_UNIT_EXP_MAX after every step) and the factor num / den * 10^p10. */
typedef struct acc {
  int exp[TW_UNIT_NBASE];
  double num, den;
  int p10;
} acc;

static const acc acc_one = {{0}, 1, 1, 0};

/* 10^k for k >= 0: exact up to 10^22, the correctly rounded literal. */
static double pow10_of(int k) {
  static const double exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  if (k < (int)(sizeof exact / sizeof exact[0]))
    return exact[k];
  return pow(10.0, k);
}

/* 10^-k for 0 < k <= 30, the correctly rounded literals: 1 / 10^k rounds
 * twice from k = 23 on ("qm" would not be 1e-30). */
static const double neg_pow10[] = {
    1e0,   1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,  1e-8,  1e-9,  1e-10,
    1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21,
    1e-22, 1e-23, 1e-24, 1e-25, 1e-26, 1e-27, 1e-28, 1e-29, 1e-30};

/* The factor of a as one double, rounded once in the common cases. */
static double acc_factor(const acc *a) {
  if (a->p10 >= 0)
    return a->num * pow10_of(a->p10) / a->den;
  if (a->num == 1 && a->den == 1 &&
      -a->p10 < (int)(sizeof neg_pow10 / sizeof neg_pow10[0]))
    return neg_pow10[-a->p10];
  return a->num / (a->den * pow10_of(-a->p10));
}

/* a *= b^e. False when an exponent or the factor leaves its range; a is
 * then garbage (the caller fails). */
static bool acc_mul(acc *a, const acc *b, int e) {
  for (int i = 0; i < TW_UNIT_NBASE; i++) {
    a->exp[i] += b->exp[i] * e;
    if (a->exp[i] > TW_UNIT_EXP_MAX || a->exp[i] < -TW_UNIT_EXP_MAX)
      return false;
  }
  int k = e < 0 ? -e : e;
  double bn = e < 0 ? b->den : b->num, bd = e < 0 ? b->num : b->den;
  double n = a->num * pow(bn, k), d = a->den * pow(bd, k);
  if (n <= 0x1p53 && d <= 0x1p53) {
    a->num = n;
    a->den = d;
    /* No overflow: b's factor is in range, so |b->p10| is a few hundred,
     * and |e| <= TW_UNIT_EXP_MAX. */
    a->p10 += b->p10 * e;
  } else {
    /* Past exact integers: fold everything into one double. */
    double bf = acc_factor(b);
    a->num = acc_factor(a) * pow(e < 0 ? 1 / bf : bf, k);
    a->den = 1;
    a->p10 = 0;
  }
  double f = acc_factor(a);
  return isfinite(a->num) && a->num > 0 && isfinite(f) && f >= DBL_MIN;
}

/* --- Messages ------------------------------------------------------------ */

/* --- Unit parser --------------------------------------------------------- */

typedef struct parser {
  const char *s; /* the whole text, quoted in messages */
  size_t len;
  size_t pos;
  const char *what; /* "unit" or "quantity" */
  tw_err *err;
  size_t *err_at;
  unsigned atoms;     /* symbols and "1"s read so far */
  const unit_def *af; /* the affine unit read, if any */
  size_t af_at;
} parser;

/* Records a parse error located at byte offset at. A macro over
 * perr_record, as tw_err_set is over tw_err_record, so that static
 * analysers see it always yields TW_EPARSE. */
#define perr(p, at, ...) (perr_record((p), (at), __VA_ARGS__), TW_EPARSE)

static void perr_record(parser *p, size_t at, const char *fmt, ...)
    TW_PRINTF(3, 4);
static void perr_record(parser *p, size_t at, const char *fmt, ...) {
  if (p->err_at != NULL)
    *p->err_at = at;
  if (p->err == NULL || p->err->code != TW_OK)
    return;
  char text[200], msg[300];
  tw__quote_text(p->s, p->len, text, sizeof text);
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  (void)tw_err_set(p->err, TW_EPARSE, "%s %s: %s at %zu", p->what, text, msg,
                   at);
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_symbol_char(char c) {
  unsigned char u = (unsigned char)c;
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '%' ||
         u >= 0x80;
}

static void skip_blanks(parser *p) {
  while (p->pos < p->len && is_blank(p->s[p->pos]))
    p->pos++;
}

static bool sym_is(const char *s, size_t n, const char *sym) {
  return strlen(sym) == n && memcmp(s, sym, n) == 0;
}

/* Finds the unit named s[0..n), exact symbols first, then a prefix and a
 * prefixable symbol. *p10 gets the prefix's power of ten. */
static const unit_def *lookup(const char *s, size_t n, int *p10) {
  size_t nu = sizeof units / sizeof units[0];
  *p10 = 0;
  for (size_t i = 0; i < nu; i++)
    if (sym_is(s, n, units[i].sym))
      return &units[i];
  for (size_t j = 0; j < sizeof prefixes / sizeof prefixes[0]; j++) {
    size_t pl = strlen(prefixes[j].sym);
    if (pl >= n || memcmp(s, prefixes[j].sym, pl) != 0)
      continue;
    for (size_t i = 0; i < nu; i++)
      if (units[i].prefixable && sym_is(s + pl, n - pl, units[i].sym)) {
        *p10 = prefixes[j].p10;
        return &units[i];
      }
  }
  return NULL;
}

/* Reads an exponent at p->pos: an optional sign and decimal digits, whose
 * value must not exceed TW_UNIT_EXP_MAX. */
static int parse_exponent(parser *p, int *out) {
  size_t at = p->pos;
  int sign = 1;
  if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) {
    sign = p->s[p->pos] == '-' ? -1 : 1;
    p->pos++;
  }
  if (p->pos >= p->len || !is_digit(p->s[p->pos]))
    return perr(p, p->pos, "expected the digits of an exponent");
  int v = 0;
  while (p->pos < p->len && is_digit(p->s[p->pos])) {
    v = v * 10 + (p->s[p->pos] - '0');
    if (v > TW_UNIT_EXP_MAX)
      return perr(p, at, "exponent out of range (at most %d)", TW_UNIT_EXP_MAX);
    p->pos++;
  }
  *out = sign * v;
  return TW_OK;
}

static int parse_expr(parser *p, unsigned depth, acc *out);

/* factor := ( '(' expr ')' | '1' | symbol ) [ '^' exponent ]
 *         | symbol exponent-digits     (UCUM: "m2", "s-1")
 * Leaves the factor raised to its exponent in *out. */
static int parse_factor(parser *p, unsigned depth, acc *out) {
  size_t at = p->pos;
  acc base = acc_one;
  bool symbol = false;
  const unit_def *def = NULL;
  if (p->pos >= p->len)
    return perr(p, at, "expected a unit");
  char c = p->s[p->pos];
  if (c == '(') {
    if (depth >= TW_UNIT_MAX_DEPTH)
      return perr(p, at, "parentheses nested deeper than %d",
                  TW_UNIT_MAX_DEPTH);
    p->pos++;
    skip_blanks(p);
    if (p->pos < p->len && p->s[p->pos] == ')')
      return perr(p, p->pos, "expected a unit");
    int rc = parse_expr(p, depth + 1, &base);
    if (rc != TW_OK)
      return rc;
    if (p->pos >= p->len || p->s[p->pos] != ')')
      return perr(p, at, "unclosed '('");
    p->pos++;
  } else if (is_digit(c)) {
    size_t e = p->pos;
    while (e < p->len && is_digit(p->s[e]))
      e++;
    if (e - p->pos != 1 || c != '1')
      return perr(p, at, "a number other than 1 in a unit");
    p->pos = e;
    p->atoms++;
  } else if (is_symbol_char(c)) {
    size_t e = p->pos;
    while (e < p->len && is_symbol_char(p->s[e]))
      e++;
    int p10;
    def = lookup(p->s + p->pos, e - p->pos, &p10);
    if (def == NULL) {
      char name[200];
      tw__quote_text(p->s + p->pos, e - p->pos, name, sizeof name);
      return perr(p, at, "unknown unit %s", name);
    }
    for (int i = 0; i < TW_UNIT_NBASE; i++)
      base.exp[i] = def->exp[i];
    base.num = def->num;
    base.den = def->den;
    base.p10 = def->p10 + p10;
    p->pos = e;
    symbol = true;
    p->atoms++;
  } else {
    char shown[32];
    tw__quote_text(p->s + p->pos, 1, shown, sizeof shown);
    return perr(p, at, "expected a unit, found %s", shown);
  }

  int e = 1;
  bool has_exp = false;
  if (p->pos < p->len && p->s[p->pos] == '^') {
    p->pos++;
    int rc = parse_exponent(p, &e);
    if (rc != TW_OK)
      return rc;
    has_exp = true;
  } else if (symbol && p->pos < p->len &&
             (is_digit(p->s[p->pos]) ||
              ((p->s[p->pos] == '-' || p->s[p->pos] == '+') &&
               p->pos + 1 < p->len && is_digit(p->s[p->pos + 1])))) {
    int rc = parse_exponent(p, &e);
    if (rc != TW_OK)
      return rc;
    has_exp = true;
  }

  if (def != NULL && def->offset != 0) {
    if (depth > 0 || has_exp || p->atoms > 1)
      return perr(p, at,
                  "affine unit '%s' cannot be combined with other units or "
                  "raised to a power",
                  def->sym);
    p->af = def;
    p->af_at = at;
  }
  *out = acc_one;
  if (!acc_mul(out, &base, e))
    return perr(p, at, "exponent or factor out of range");
  return TW_OK;
}

/* expr := factor { ('*' | '.' | '/') factor }, blanks around operators.
 * '/' is left-associative and everything after the first '/' divides
 * ("a/b/c" is a/(b*c)); a '*' after a '/' is ambiguous and an error. Stops
 * at the end or at a ')' (the caller checks which). */
static int parse_expr(parser *p, unsigned depth, acc *out) {
  acc a, f;
  bool divided = false;
  skip_blanks(p);
  int rc = parse_factor(p, depth, &f);
  if (rc != TW_OK)
    return rc;
  a = f; /* the first factor, already checked */
  for (;;) {
    skip_blanks(p);
    if (p->pos >= p->len || p->s[p->pos] == ')')
      break;
    size_t op_at = p->pos;
    char c = p->s[p->pos];
    if (c != '*' && c != '.' && c != '/') {
      char shown[32];
      tw__quote_text(p->s + p->pos, 1, shown, sizeof shown);
      return perr(p, op_at, "expected '*', '/' or the end, found %s", shown);
    }
    if (p->af != NULL)
      return perr(p, p->af_at,
                  "affine unit '%s' cannot be combined with other units or "
                  "raised to a power",
                  p->af->sym);
    if (c == '/') {
      divided = true;
    } else if (divided) {
      return perr(p, op_at,
                  "ambiguous '%c' after '/': use parentheses, 'a/(b*c)' "
                  "or '(a/b)*c'",
                  c);
    }
    p->pos++;
    skip_blanks(p);
    size_t f_at = p->pos;
    rc = parse_factor(p, depth, &f);
    if (rc != TW_OK)
      return rc;
    if (!acc_mul(&a, &f, c == '/' ? -1 : 1))
      return perr(p, f_at, "exponent or factor out of range");
  }
  *out = a;
  return TW_OK;
}

/* Parses the unit in p->s[p->pos..p->len) into *out. */
static int parse_unit_text(parser *p, tw_unit *out) {
  acc a = acc_one;
  skip_blanks(p);
  if (p->pos < p->len) {
    int rc = parse_expr(p, 0, &a);
    if (rc != TW_OK)
      return rc;
    if (p->pos < p->len) /* parse_expr stopped at a ')' */
      return perr(p, p->pos, "unmatched ')'");
  }
  tw_unit u;
  for (int i = 0; i < TW_UNIT_NBASE; i++)
    u.exp[i] = (int8_t)a.exp[i];
  u.factor = acc_factor(&a);
  u.offset = p->af != NULL ? p->af->offset : 0.0;
  *out = u;
  return TW_OK;
}

int tw_unit_parse_n(const char *text, size_t len, tw_unit *out, size_t *err_at,
                    tw_err *err) {
  parser p = {text, len, 0, "unit", err, err_at, 0, NULL, 0};
  return parse_unit_text(&p, out);
}

int tw_unit_parse(const char *text, tw_unit *out, tw_err *err) {
  assert(text != NULL);
  return tw_unit_parse_n(text, strlen(text), out, NULL, err);
}

/* --- Quantities ---------------------------------------------------------- */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale; /* for strtod_l: the host's LC_NUMERIC may use ',' */

static void c_locale_setup(void) {
  /* glibc returns its static C locale object here without allocating. */
  c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Reads [+-]? (D+ ('.' D*)? | '.' D+) ([eE] [+-]? D+)? at p->pos. */
static int parse_number(parser *p, double *out) {
  size_t at = p->pos, i = p->pos, digits = 0;
  if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
    i++;
  while (i < p->len && is_digit(p->s[i])) {
    i++;
    digits++;
  }
  if (i < p->len && p->s[i] == '.') {
    i++;
    while (i < p->len && is_digit(p->s[i])) {
      i++;
      digits++;
    }
  }
  if (digits == 0)
    return perr(p, at, "expected a number");
  if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
    i++;
    if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
      i++;
    if (i >= p->len || !is_digit(p->s[i]))
      return perr(p, i, "expected the digits of an exponent");
    while (i < p->len && is_digit(p->s[i]))
      i++;
  }
  char copy[TW_UNIT_NUMBER_MAX + 1];
  if (i - at > TW_UNIT_NUMBER_MAX)
    return perr(p, at, "number longer than %d bytes", TW_UNIT_NUMBER_MAX);
  memcpy(copy, p->s + at, i - at);
  copy[i - at] = '\0';
  (void)pthread_once(&c_locale_once, c_locale_setup);
  double x = c_locale != (locale_t)0 ? strtod_l(copy, NULL, c_locale)
                                     : strtod(copy, NULL);
  if (!isfinite(x))
    return perr(p, at, "number out of range");
  p->pos = i;
  *out = x;
  return TW_OK;
}

int tw_quantity_parse_n(const char *text, size_t len, double *value,
                        tw_unit *unit, size_t *err_at, tw_err *err) {
  parser p = {text, len, 0, "quantity", err, err_at, 0, NULL, 0};
  double x = 0;
  tw_unit u = TW_UNIT_ONE;
  skip_blanks(&p);
  int rc = parse_number(&p, &x);
  if (rc != TW_OK)
    return rc;
  if (p.pos < p.len) {
    if (!is_blank(p.s[p.pos]))
      return perr(&p, p.pos,
                  "expected a blank between the number and the unit");
    rc = parse_unit_text(&p, &u);
    if (rc != TW_OK)
      return rc;
  }
  *value = x;
  *unit = u;
  return TW_OK;
}

int tw_quantity_parse(const char *text, double *value, tw_unit *unit,
                      tw_err *err) {
  assert(text != NULL);
  return tw_quantity_parse_n(text, strlen(text), value, unit, NULL, err);
}

/* --- Comparison, conversion, formatting ---------------------------------- */

bool tw_unit_same_dimension(const tw_unit *a, const tw_unit *b) {
  return memcmp(a->exp, b->exp, sizeof a->exp) == 0;
}

static bool unit_valid(const tw_unit *u) {
  for (int i = 0; i < TW_UNIT_NBASE; i++)
    if (u->exp[i] < -TW_UNIT_EXP_MAX) /* only INT8_MIN */
      return false;
  return isfinite(u->factor) && u->factor >= DBL_MIN && isfinite(u->offset);
}

/* "'NAME' (DIM)", or "DIM" without a name. */
static void describe(const tw_unit *u, const char *name, char *out,
                     size_t cap) {
  char dim[TW_UNIT_DIMENSION_MAX];
  (void)tw_unit_dimension_format(u, dim, sizeof dim);
  if (name == NULL) {
    (void)snprintf(out, cap, "%s", dim);
    return;
  }
  char q[200];
  tw__quote_text(name, strlen(name), q, sizeof q);
  (void)snprintf(out, cap, "%s (%s)", q, dim);
}

int tw_unit_conversion_named(const tw_unit *from, const char *from_name,
                             const tw_unit *to, const char *to_name,
                             double *scale, double *shift, tw_err *err) {
  if (from == NULL || to == NULL || scale == NULL || shift == NULL)
    return tw_err_set(err, TW_EINVAL, "unit conversion: NULL argument");
  char a[320], b[320];
  if (!unit_valid(from) || !unit_valid(to))
    return tw_err_set(err, TW_EINVAL,
                      "unit conversion: exponent, factor or offset out of "
                      "range");
  if (!tw_unit_same_dimension(from, to)) {
    describe(from, from_name, a, sizeof a);
    describe(to, to_name, b, sizeof b);
    return tw_err_set(err, TW_EUNIT, "unit mismatch: %s cannot convert to %s",
                      a, b);
  }
  double s = from->factor / to->factor;
  double h = (from->offset - to->offset) / to->factor;
  if (!isfinite(s) || s == 0 || !isfinite(h)) {
    describe(from, from_name, a, sizeof a);
    describe(to, to_name, b, sizeof b);
    return tw_err_set(err, TW_ERANGE,
                      "unit conversion from %s to %s is out of range", a, b);
  }
  *scale = s;
  *shift = h;
  return TW_OK;
}

int tw_unit_conversion(const tw_unit *from, const tw_unit *to, double *scale,
                       double *shift, tw_err *err) {
  return tw_unit_conversion_named(from, NULL, to, NULL, scale, shift, err);
}

/* Appends "SYM" or "SYM^N" (|N| shown) to buf, joined by '*'. */
static size_t put_terms(const tw_unit *u, int sign, char *buf, size_t cap,
                        size_t o) {
  bool first = true;
  for (int i = 0; i < TW_UNIT_NBASE; i++) {
    int e = u->exp[i] * sign;
    if (e <= 0)
      continue;
    char t[24];
    int n = e == 1
                ? snprintf(t, sizeof t, "%s%s", first ? "" : "*", base_syms[i])
                : snprintf(t, sizeof t, "%s%s^%d", first ? "" : "*",
                           base_syms[i], e);
    for (int k = 0; k < n; k++, o++)
      if (o + 1 < cap)
        buf[o] = t[k];
    first = false;
  }
  return o;
}

static size_t put_str(const char *s, char *buf, size_t cap, size_t o) {
  for (; *s != '\0'; s++, o++)
    if (o + 1 < cap)
      buf[o] = *s;
  return o;
}

size_t tw_unit_dimension_format(const tw_unit *u, char *buf, size_t cap) {
  int npos = 0, nneg = 0;
  for (int i = 0; i < TW_UNIT_NBASE; i++) {
    npos += u->exp[i] > 0;
    nneg += u->exp[i] < 0;
  }
  size_t o = 0;
  if (npos > 0)
    o = put_terms(u, 1, buf, cap, o);
  else
    o = put_str("1", buf, cap, o);
  if (nneg > 0) {
    o = put_str(nneg > 1 ? "/(" : "/", buf, cap, o);
    o = put_terms(u, -1, buf, cap, o);
    if (nneg > 1)
      o = put_str(")", buf, cap, o);
  }
  if (cap > 0)
    buf[o < cap ? o : cap - 1] = '\0';
  return o;
}
