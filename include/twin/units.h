/*
 * units.h - physical units and quantities: "N*s/m", "km/h", "degC",
 * "4 N/m", "1 ms".
 *
 * A unit follows SSP's unit definitions and FMI's BaseUnit: eight integer
 * exponents of the SI base units plus FMI's radian (kg, m, s, A, K, mol, cd,
 * rad) and an affine map to SI, value_SI = factor * value + offset. Two
 * units convert into each other exactly when their eight exponents are
 * equal, so "mm" converts to "m" (scale 1e-3) while "N" never converts to
 * "m". The offset is non-zero only for the affine temperature units degC
 * and degF, which must stand alone in a unit expression.
 *
 * The text form is UCUM-like: symbols with SI prefixes joined by '*' (or
 * UCUM's '.') and '/', exponents as "^N" or UCUM's trailing digits ("m2",
 * "s-1"), parentheses, "1" for dimensionless. docs/units.md gives the
 * grammar and the table of units; docs/adr/0008-units.md the decisions.
 *
 * Errors from the parsers are TW_EPARSE with a message that quotes the text
 * and ends in the byte offset of the problem ("unit 'N*q/m': unknown unit
 * 'q' at 2"); the _n variants, which also take a length, return the offset
 * through *err_at so that a caller can place a diagnostic in a larger
 * document.
 *
 * Nothing here allocates, and nothing reads past the given length. Every
 * function is pure: any thread may call any of them on data it owns.
 */
#ifndef TWIN_UNITS_H
#define TWIN_UNITS_H

#include <stdbool.h>

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

/* Indices into tw_unit.exp, in the order of FMI's BaseUnit attributes. */
enum {
  TW_UNIT_KG,
  TW_UNIT_M,
  TW_UNIT_S,
  TW_UNIT_A,
  TW_UNIT_K,
  TW_UNIT_MOL,
  TW_UNIT_CD,
  TW_UNIT_RAD,
  TW_UNIT_NBASE
};

/* Largest magnitude of an exponent, in a unit and at every step of parsing
 * one ("m^127" parses, "m^128" and "m^100*m^100" do not). */
#define TW_UNIT_EXP_MAX 127

/* Deepest nesting of parentheses the parser accepts. */
#define TW_UNIT_MAX_DEPTH 16

/* Longest number, in bytes, tw_unit_quantity_parse accepts. */
#define TW_UNIT_NUMBER_MAX 64

/* A buffer of this size always holds tw_unit_dimension_format's output. */
#define TW_UNIT_DIMENSION_MAX 96

/* A unit. factor is finite and at least DBL_MIN; offset is finite. Plain
 * data: copy it freely. */
typedef struct tw_unit {
  int8_t exp[TW_UNIT_NBASE]; /* exponents, indexed by TW_UNIT_KG... */
  double factor;             /* value_SI = factor * value + offset */
  double offset;             /* non-zero only for degC and degF */
} tw_unit;

/* Initializer of the dimensionless unit "1". */
#define TW_UNIT_ONE                                                            \
  { {0}, 1.0, 0.0 }

/* Parses the NUL-terminated unit expression text. An empty or all-blank
 * text is the dimensionless unit. On success fills *out and returns TW_OK.
 * On error returns TW_EPARSE, records "unit 'TEXT': PROBLEM at OFFSET" in
 * err (OFFSET is the 0-based byte offset of the problem in text) and
 * leaves *out untouched. Unknown symbols, a '*' after a '/' without
 * parentheses ("J/kg*K": write "J/(kg*K)"), exponents beyond
 * TW_UNIT_EXP_MAX, factors outside the range of a double, nesting beyond
 * TW_UNIT_MAX_DEPTH and affine units that do not stand alone are errors.
 * err may be NULL. */
TW_API int tw_unit_parse(const char *text, tw_unit *out, tw_err *err);

/* tw_unit_parse over text[0..len), which need not be NUL-terminated (a NUL
 * byte inside is an error like any other stray byte). On TW_EPARSE also
 * stores OFFSET in *err_at unless err_at is NULL, so that a caller can
 * place a diagnostic in a larger document without reading the message. */
TW_API int tw_unit_parse_n(const char *text, size_t len, tw_unit *out,
                           size_t *err_at, tw_err *err);

/* Parses the NUL-terminated quantity text: a decimal number ("4",
 * "-3.5e-2", ".5"; no hex, inf or nan), then, if a unit follows, at least
 * one blank (space or tab) and a unit expression as for tw_unit_parse.
 * Blanks may surround the whole: "4 N/m", "1e-3 m", "20 degC", "0.5". A
 * number directly followed by a unit ("4N/m") is an error. The value is
 * the number as written, in the unit (tw_unit_conversion brings it to
 * another unit); the number is read independently of the locale, must be
 * finite (underflow rounds to zero as strtod does) and at most
 * TW_UNIT_NUMBER_MAX bytes long. On success fills *value and *unit. On
 * error returns TW_EPARSE with "quantity 'TEXT': PROBLEM at OFFSET",
 * OFFSET counted from the start of text, and leaves the outputs
 * untouched. err may be NULL. */
TW_API int tw_quantity_parse(const char *text, double *value, tw_unit *unit,
                             tw_err *err);

/* tw_quantity_parse over text[0..len), which need not be NUL-terminated;
 * on TW_EPARSE also stores OFFSET in *err_at unless err_at is NULL. */
TW_API int tw_quantity_parse_n(const char *text, size_t len, double *value,
                               tw_unit *unit, size_t *err_at, tw_err *err);

/* True if a and b have the same eight exponents, i.e. convert into each
 * other. Factors and offsets are not compared. */
TW_API bool tw_unit_same_dimension(const tw_unit *a, const tw_unit *b);

/* The affine map from one unit to another: a value x in from is
 * *scale * x + *shift in to. When the dimensions differ returns TW_EUNIT
 * with "unit mismatch: kg*m/s^2 cannot convert to m" (the canonical
 * dimensions); TW_EINVAL if a pointer is NULL or a unit breaks the
 * invariants of tw_unit; TW_ERANGE if the scale or shift is not a finite
 * double or the scale is zero. On error *scale and *shift are left
 * untouched. err may be NULL. */
TW_API int tw_unit_conversion(const tw_unit *from, const tw_unit *to,
                              double *scale, double *shift, tw_err *err);

/* tw_unit_conversion with the units' names as the user wrote them
 * (NUL-terminated, either may be NULL) in its messages: "unit mismatch:
 * 'N' (kg*m/s^2) cannot convert to 'm' (m)". */
TW_API int tw_unit_conversion_named(const tw_unit *from, const char *from_name,
                                    const tw_unit *to, const char *to_name,
                                    double *scale, double *shift, tw_err *err);

/* Writes the canonical SI form of u's dimension into buf[cap], ignoring
 * factor and offset: base symbols in the order kg, m, s, A, K, mol, cd,
 * rad, those with positive exponents first, then '/' and the others, in
 * parentheses when more than one: "kg*m/s^2", "kg/(m*s^2)", "1/s", and
 * "1" for a dimensionless unit. tw_unit_parse reads the text back to the
 * same exponents with factor 1. Returns the length of the full form (at
 * most TW_UNIT_DIMENSION_MAX - 1); like snprintf, it writes at most cap
 * bytes including a terminating NUL, and nothing when cap is 0. */
TW_API size_t tw_unit_dimension_format(const tw_unit *u, char *buf, size_t cap);

TW_EXTERN_C_END

#endif /* TWIN_UNITS_H */
