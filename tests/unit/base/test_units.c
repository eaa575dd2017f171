/* test_units.c - unit and quantity parsing, conversions, dimension form.
 *
 * The tables below are the golden cases of the parsers: every accepted
 * text with its canonical dimension, factor and offset, and every rejected
 * text with its exact message and byte offset. */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tw_test.h"

#define PI 3.14159265358979323846

/* Parses a NUL-terminated text; asserts success. */
static tw_unit parse_ok(const char *text) {
  tw_unit u;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_unit_parse_n(text, strlen(text), &u, NULL, &err);
  if (rc != TW_OK)
    fail_msg("'%s': %s", text, tw_err_msg(&err));
  return u;
}

static void assert_dim(const tw_unit *u, const char *want) {
  char buf[TW_UNIT_DIMENSION_MAX];
  size_t n = tw_unit_dimension_format(u, buf, sizeof buf);
  assert_string_equal(buf, want);
  assert_int_equal(n, strlen(want));
}

/* Relative closeness for factors that are not exactly representable. */
static void assert_close(double got, double want, double rel) {
  if (!(fabs(got - want) <= rel * fabs(want)))
    fail_msg("got %.17g, want %.17g", got, want);
}

typedef struct good_case {
  const char *text;
  const char *dim;
  double factor;
  double offset;
} good_case;

static const good_case good[] = {
    /* Dimensionless. */
    {"", "1", 1, 0},
    {"  \t ", "1", 1, 0},
    {"1", "1", 1, 0},
    {"%", "1", 0.01, 0},
    {"ppm", "1", 1e-6, 0},
    {"m/m", "1", 1, 0},
    {"m^0", "1", 1, 0},
    /* Base and derived SI units. */
    {"m", "m", 1, 0},
    {"kg", "kg", 1, 0},
    {"g", "kg", 1e-3, 0},
    {"s", "s", 1, 0},
    {"A", "A", 1, 0},
    {"K", "K", 1, 0},
    {"mol", "mol", 1, 0},
    {"cd", "cd", 1, 0},
    {"rad", "rad", 1, 0},
    {"sr", "rad^2", 1, 0},
    {"Hz", "1/s", 1, 0},
    {"N", "kg*m/s^2", 1, 0},
    {"Pa", "kg/(m*s^2)", 1, 0},
    {"J", "kg*m^2/s^2", 1, 0},
    {"W", "kg*m^2/s^3", 1, 0},
    {"C", "s*A", 1, 0},
    {"V", "kg*m^2/(s^3*A)", 1, 0},
    {"F", "s^4*A^2/(kg*m^2)", 1, 0},
    {"Ohm", "kg*m^2/(s^3*A^2)", 1, 0},
    {"\xce\xa9", "kg*m^2/(s^3*A^2)", 1, 0},
    {"\xe2\x84\xa6", "kg*m^2/(s^3*A^2)", 1, 0},
    {"S", "s^3*A^2/(kg*m^2)", 1, 0},
    {"Wb", "kg*m^2/(s^2*A)", 1, 0},
    {"T", "kg/(s^2*A)", 1, 0},
    {"H", "kg*m^2/(s^2*A^2)", 1, 0},
    {"lm", "cd*rad^2", 1, 0},
    {"lx", "cd*rad^2/m^2", 1, 0},
    /* Other units. */
    {"min", "s", 60, 0},
    {"h", "s", 3600, 0},
    {"d", "s", 86400, 0},
    {"L", "m^3", 1e-3, 0},
    {"l", "m^3", 1e-3, 0},
    {"mL", "m^3", 1e-6, 0},
    {"t", "kg", 1e3, 0},
    {"bar", "kg/(m*s^2)", 1e5, 0},
    {"mbar", "kg/(m*s^2)", 100, 0},
    {"atm", "kg/(m*s^2)", 101325, 0},
    {"psi", "kg/(m*s^2)", 6894.757293168362, 0},
    {"Wh", "kg*m^2/s^2", 3600, 0},
    {"kWh", "kg*m^2/s^2", 3.6e6, 0},
    {"mAh", "s*A", 3.6, 0},
    {"in", "m", 0.0254, 0},
    {"ft", "m", 0.3048, 0},
    {"lb", "kg", 0.45359237, 0},
    {"lbf", "kg*m/s^2", 4.4482216152605, 0},
    {"deg", "rad", PI / 180, 0},
    {"\xc2\xb0", "rad", PI / 180, 0},
    {"rev", "rad", 2 * PI, 0},
    {"rpm", "rad/s", 2 * PI / 60, 0},
    {"degC", "K", 1, 273.15},
    {"Cel", "K", 1, 273.15},
    {"\xc2\xb0"
     "C",
     "K", 1, 273.15},
    {"\xe2\x84\x83", "K", 1, 273.15},
    {"degF", "K", 5.0 / 9.0, 45967.0 / 180.0},
    {"\xc2\xb0"
     "F",
     "K", 5.0 / 9.0, 45967.0 / 180.0},
    /* Prefixes and the ambiguities exact symbols settle. */
    {"mm", "m", 1e-3, 0},
    {"km", "m", 1e3, 0},
    {"um", "m", 1e-6, 0},
    {"\xc2\xb5m", "m", 1e-6, 0},
    {"\xce\xbcm", "m", 1e-6, 0},
    {"nm", "m", 1e-9, 0},
    {"dam", "m", 10, 0},
    {"dm", "m", 0.1, 0},
    {"cm", "m", 0.01, 0},
    {"hPa", "kg/(m*s^2)", 100, 0},
    {"MPa", "kg/(m*s^2)", 1e6, 0},
    {"ms", "s", 1e-3, 0},
    {"mg", "kg", 1e-6, 0},
    {"Mg", "kg", 1e3, 0},
    {"mmol", "mol", 1e-3, 0},
    {"kcd", "cd", 1e3, 0},
    {"mrad", "rad", 1e-3, 0},
    {"kHz", "1/s", 1e3, 0},
    {"mN", "kg*m/s^2", 1e-3, 0},
    {"kOhm", "kg*m^2/(s^3*A^2)", 1e3, 0},
    {"k\xce\xa9", "kg*m^2/(s^3*A^2)", 1e3, 0},
    {"uF", "s^4*A^2/(kg*m^2)", 1e-6, 0},
    {"mK", "K", 1e-3, 0},
    {"Tm", "m", 1e12, 0},
    {"qm", "m", 1e-30, 0},
    {"Qg", "kg", 1e27, 0},
    {"rm", "m", 1e-27, 0},
    {"Rm", "m", 1e27, 0},
    /* Expressions. */
    {"N*s/m", "kg/s", 1, 0},
    {"N.s/m", "kg/s", 1, 0},
    {"N * s / m", "kg/s", 1, 0},
    {"kg*m^2", "kg*m^2", 1, 0},
    {"kg*m2", "kg*m^2", 1, 0},
    {"m/s^2", "m/s^2", 1, 0},
    {"m.s-2", "m/s^2", 1, 0},
    {"s^-2", "1/s^2", 1, 0},
    {"s^+2", "s^2", 1, 0},
    {"m+2", "m^2", 1, 0},
    {"1/s", "1/s", 1, 0},
    {"km/h", "m/s", 1000.0 / 3600.0, 0},
};

typedef struct bad_case {
  const char *text;
  const char *msg;
  size_t at;
} bad_case;

static const bad_case bad_units[] = {
    {"N*q/m", "unit 'N*q/m': unknown unit 'q' at 2", 2},
    {"Nm", "unit 'Nm': unknown unit 'Nm' at 0", 0},
    {"N m", "unit 'N m': expected '*', '/' or the end, found 'm' at 2", 2},
    {"kh", "unit 'kh': unknown unit 'kh' at 0", 0},
    {"kkg", "unit 'kkg': unknown unit 'kkg' at 0", 0},
    {"J/kg*K",
     "unit 'J/kg*K': ambiguous '*' after '/': use parentheses, 'a/(b*c)' or "
     "'(a/b)*c' at 4",
     4},
    {"J/kg.K",
     "unit 'J/kg.K': ambiguous '.' after '/': use parentheses, 'a/(b*c)' or "
     "'(a/b)*c' at 4",
     4},
    {"m^128", "unit 'm^128': exponent out of range (at most 127) at 2", 2},
    {"m^-128", "unit 'm^-128': exponent out of range (at most 127) at 2", 2},
    {"m^100*m^100", "unit 'm^100*m^100': exponent or factor out of range at 6",
     6},
    {"(m^64)^2", "unit '(m^64)^2': exponent or factor out of range at 0", 0},
    {"km^127", "unit 'km^127': exponent or factor out of range at 0", 0},
    {"m^", "unit 'm^': expected the digits of an exponent at 2", 2},
    {"m^x", "unit 'm^x': expected the digits of an exponent at 2", 2},
    {"m^-", "unit 'm^-': expected the digits of an exponent at 3", 3},
    {"m ^2", "unit 'm ^2': expected '*', '/' or the end, found '^' at 2", 2},
    {"m-", "unit 'm-': expected '*', '/' or the end, found '-' at 1", 1},
    {"m/", "unit 'm/': expected a unit at 2", 2},
    {"*m", "unit '*m': expected a unit, found '*' at 0", 0},
    {"m**2", "unit 'm**2': expected a unit, found '*' at 2", 2},
    {"()", "unit '()': expected a unit at 1", 1},
    {"(m", "unit '(m': unclosed '(' at 0", 0},
    {"m)", "unit 'm)': unmatched ')' at 1", 1},
    {"2", "unit '2': a number other than 1 in a unit at 0", 0},
    {"10/s", "unit '10/s': a number other than 1 in a unit at 0", 0},
    {"1m", "unit '1m': expected '*', '/' or the end, found 'm' at 1", 1},
    {"m#", "unit 'm#': expected '*', '/' or the end, found '#' at 1", 1},
    {"m\x01", "unit 'm\\x01': expected '*', '/' or the end, found '\\x01' at 1",
     1},
    {"m\xff", "unit 'm\\xff': unknown unit 'm\\xff' at 0", 0},
    {"degC*m",
     "unit 'degC*m': affine unit 'degC' cannot be combined with other units "
     "or raised to a power at 0",
     0},
    {"1/degC",
     "unit '1/degC': affine unit 'degC' cannot be combined with other units "
     "or raised to a power at 2",
     2},
    {"degC^2",
     "unit 'degC^2': affine unit 'degC' cannot be combined with other units "
     "or raised to a power at 0",
     0},
    {"degF2",
     "unit 'degF2': affine unit 'degF' cannot be combined with other units "
     "or raised to a power at 0",
     0},
    {"(degC)",
     "unit '(degC)': affine unit 'degC' cannot be combined with other units "
     "or raised to a power at 1",
     1},
    {"mdegC", "unit 'mdegC': unknown unit 'mdegC' at 0", 0},
    {"kmin", "unit 'kmin': unknown unit 'kmin' at 0", 0},
};

static void parses_the_golden_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    const good_case *c = &good[i];
    tw_unit u = parse_ok(c->text);
    char buf[TW_UNIT_DIMENSION_MAX];
    (void)tw_unit_dimension_format(&u, buf, sizeof buf);
    if (strcmp(buf, c->dim) != 0)
      fail_msg("'%s': dimension %s, want %s", c->text, buf, c->dim);
    if (u.factor != c->factor)
      assert_close(u.factor, c->factor, 4 * DBL_EPSILON);
    assert_true(u.offset == c->offset);
  }
}

/* Factors of the common units are the correctly rounded double of their
 * exact value, not a product of rounded steps. */
static void common_factors_are_exact(void **state) {
  (void)state;
  assert_true(parse_ok("mm").factor == 1e-3);
  assert_true(parse_ok("mg").factor == 1e-6);
  assert_true(parse_ok("mm^2").factor == 1e-6);
  assert_true(parse_ok("um^3").factor == 1e-18);
  assert_true(parse_ok("km/h").factor == 1000.0 / 3600.0);
  assert_true(parse_ok("kWh").factor == 3.6e6);
  assert_true(parse_ok("g/cm^3").factor == 1000.0);
  assert_true(parse_ok("L/min").factor == 1.0 / 60000.0);
  assert_true(parse_ok("psi").factor == 6894.757293168362);
  assert_true(parse_ok("ms").factor == 1e-3);
  assert_true(parse_ok("degF").factor == 5.0 / 9.0);
}

static void rejects_the_golden_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_units / sizeof bad_units[0]; i++) {
    const bad_case *c = &bad_units[i];
    tw_unit u = {{1, 2, 3, 4, 5, 6, 7, 8}, 42.0, 7.0};
    tw_unit before = u;
    size_t at = 999;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_unit_parse_n(c->text, strlen(c->text), &u, &at, &err);
    assert_int_equal(rc, TW_EPARSE);
    assert_int_equal(err.code, TW_EPARSE);
    if (strcmp(err.msg, c->msg) != 0)
      fail_msg("'%s':\n got  %s\n want %s", c->text, err.msg, c->msg);
    assert_int_equal(at, c->at);
    assert_memory_equal(&u, &before, sizeof u); /* output untouched */
    /* Without a tw_err or an offset pointer, the code is the same. */
    assert_int_equal(tw_unit_parse_n(c->text, strlen(c->text), &u, NULL, NULL),
                     TW_EPARSE);
  }
}

static void division_is_left_associative(void **state) {
  (void)state;
  tw_unit a = parse_ok("m/s/s"), b = parse_ok("m/(s*s)"), c = parse_ok("m/s^2");
  assert_true(tw_unit_same_dimension(&a, &b));
  assert_true(tw_unit_same_dimension(&a, &c));
  assert_dim(&a, "m/s^2");
  tw_unit d = parse_ok("(J/kg)*K"), e = parse_ok("J/(kg*K)");
  assert_dim(&d, "m^2*K/s^2");
  assert_dim(&e, "m^2/(s^2*K)");
  tw_unit f = parse_ok("W/(m^2*K)");
  assert_dim(&f, "kg/(s^3*K)");
  tw_unit g = parse_ok("(m/s)^2");
  assert_dim(&g, "m^2/s^2");
  tw_unit h = parse_ok("((m))^-1 * ( s )");
  assert_dim(&h, "s/m");
  tw_unit k = parse_ok("1/(1/s)");
  assert_dim(&k, "s");
}

static void every_prefix_scales(void **state) {
  (void)state;
  static const struct {
    const char *p;
    int e;
  } ps[] = {{"q", -30}, {"r", -27}, {"y", -24}, {"z", -21}, {"a", -18},
            {"f", -15}, {"p", -12}, {"n", -9},  {"u", -6},  {"m", -3},
            {"c", -2},  {"d", -1},  {"da", 1},  {"h", 2},   {"k", 3},
            {"M", 6},   {"G", 9},   {"T", 12},  {"P", 15},  {"E", 18},
            {"Z", 21},  {"Y", 24},  {"R", 27},  {"Q", 30}};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
    char text[16];
    (void)snprintf(text, sizeof text, "%sN", ps[i].p);
    tw_unit u = parse_ok(text);
    assert_dim(&u, "kg*m/s^2");
    /* The correctly rounded power of ten, as strtod gives it. */
    char want[16];
    (void)snprintf(want, sizeof want, "1e%d", ps[i].e);
    if (u.factor != strtod(want, NULL))
      fail_msg("%s: %.17g", text, u.factor);
  }
  /* Non-prefixable units refuse every prefix. */
  static const char *const fixed[] = {"kmin", "kh", "kd",   "kdeg", "krpm",
                                      "k%",   "kt", "kpsi", "kin",  "kdegC"};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    tw_unit u;
    assert_int_equal(
        tw_unit_parse_n(fixed[i], strlen(fixed[i]), &u, NULL, NULL), TW_EPARSE);
  }
}

static void convert(const char *from, const char *to, double *scale,
                    double *shift) {
  tw_unit a = parse_ok(from), b = parse_ok(to);
  tw_err err;
  tw_err_init(&err);
  int rc = tw_unit_conversion_named(&a, from, &b, to, scale, shift, &err);
  if (rc != TW_OK)
    fail_msg("%s -> %s: %s", from, to, tw_err_msg(&err));
}

static void conversions(void **state) {
  (void)state;
  double s, h;
  convert("mm", "m", &s, &h);
  assert_true(s == 1e-3 && h == 0);
  convert("m", "mm", &s, &h);
  assert_true(s == 1e3 && h == 0);
  convert("km/h", "m/s", &s, &h);
  assert_close(s, 1 / 3.6, DBL_EPSILON);
  assert_true(h == 0);
  convert("degC", "K", &s, &h);
  assert_true(s == 1 && h == 273.15);
  convert("K", "degC", &s, &h);
  assert_true(s == 1 && h == -273.15);
  convert("degF", "degC", &s, &h); /* C = (F - 32) * 5/9 */
  assert_close(s, 5.0 / 9.0, DBL_EPSILON);
  assert_true(fabs(s * 32 + h) < 1e-12);
  assert_true(fabs(s * 212 + h - 100) < 1e-12);
  assert_true(fabs(s * -40 + h + 40) < 1e-12);
  convert("degC", "degF", &s, &h);
  assert_true(fabs(s * 100 + h - 212) < 1e-12);
  convert("degF", "K", &s, &h);
  assert_true(fabs(s * 32 + h - 273.15) < 1e-12);
  convert("N*s/m", "kg/s", &s, &h);
  assert_true(s == 1 && h == 0);
  convert("rpm", "rad/s", &s, &h);
  assert_close(s, 2 * PI / 60, DBL_EPSILON);
  convert("rev/min", "rpm", &s, &h);
  assert_close(s, 1, DBL_EPSILON);
  convert("deg", "rad", &s, &h);
  assert_close(s, PI / 180, DBL_EPSILON);
  convert("bar", "psi", &s, &h);
  assert_close(s, 14.503773773020923, 4 * DBL_EPSILON);
  convert("kWh", "J", &s, &h);
  assert_true(s == 3.6e6);
  convert("L/min", "m^3/s", &s, &h);
  assert_close(s, 1.0 / 60000.0, DBL_EPSILON);
  convert("%", "1", &s, &h);
  assert_true(s == 0.01);
  convert("mK", "degC", &s, &h);
  assert_true(s == 1e-3 && h == -273.15);
  convert("Hz", "1/min", &s, &h);
  assert_true(s == 60);
  convert("lbf*ft", "N*m", &s, &h);
  assert_close(s, 1.3558179483314004, 4 * DBL_EPSILON);
}

static void mismatches_name_both_units(void **state) {
  (void)state;
  tw_unit n = parse_ok("N"), m = parse_ok("m");
  double s = 5, h = 6;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_unit_conversion_named(&n, "N", &m, "m", &s, &h, &err),
                   TW_EUNIT);
  assert_string_equal(err.msg, "unit mismatch: 'N' (kg*m/s^2) cannot convert "
                               "to 'm' (m)");
  assert_true(s == 5 && h == 6);
  tw_err_init(&err);
  assert_int_equal(tw_unit_conversion_named(&n, NULL, &m, NULL, &s, &h, &err),
                   TW_EUNIT);
  assert_string_equal(err.msg, "unit mismatch: kg*m/s^2 cannot convert to m");
  assert_int_equal(tw_unit_conversion_named(&n, NULL, &m, NULL, &s, &h, NULL),
                   TW_EUNIT);
  assert_false(tw_unit_same_dimension(&n, &m));

  /* Angles carry FMI's rad exponent: an angular velocity is not a
   * frequency and an angle is not a plain number. */
  tw_unit rpm = parse_ok("rpm"), hz = parse_ok("Hz");
  tw_unit rad = parse_ok("rad"), one = parse_ok("1");
  assert_false(tw_unit_same_dimension(&rpm, &hz));
  assert_false(tw_unit_same_dimension(&rad, &one));
  tw_err_init(&err);
  assert_int_equal(
      tw_unit_conversion_named(&rpm, "rpm", &hz, "Hz", &s, &h, &err), TW_EUNIT);
  assert_string_equal(err.msg, "unit mismatch: 'rpm' (rad/s) cannot convert "
                               "to 'Hz' (1/s)");
  tw_unit rads = parse_ok("rad/s"), hz2 = parse_ok("Hz*rad");
  assert_true(tw_unit_same_dimension(&rads, &hz2));

  /* Names are quoted safely. */
  tw_err_init(&err);
  assert_int_equal(
      tw_unit_conversion_named(&n, "N\n\x1b[2J", &m, "m", &s, &h, &err),
      TW_EUNIT);
  assert_string_equal(err.msg, "unit mismatch: 'N\\x0a\\x1b[2J' (kg*m/s^2) "
                               "cannot convert to 'm' (m)");
}

static void conversion_checks_its_inputs(void **state) {
  (void)state;
  double s = 5, h = 6;
  tw_err err;
  tw_unit big = {{0, 1}, 1e300, 0}, small = {{0, 1}, 1e-300, 0};
  tw_err_init(&err);
  assert_int_equal(
      tw_unit_conversion_named(&big, "big", &small, "small", &s, &h, &err),
      TW_ERANGE);
  assert_string_equal(err.msg, "unit conversion from 'big' (m) to 'small' (m) "
                               "is out of range");
  tw_unit bad = {{0, 1}, NAN, 0};
  tw_unit m = parse_ok("m");
  assert_int_equal(tw_unit_conversion_named(&bad, NULL, &m, NULL, &s, &h, NULL),
                   TW_EINVAL);
  bad.factor = 0;
  assert_int_equal(tw_unit_conversion_named(&m, NULL, &bad, NULL, &s, &h, NULL),
                   TW_EINVAL);
  bad.factor = 1;
  bad.offset = INFINITY;
  assert_int_equal(tw_unit_conversion_named(&m, NULL, &bad, NULL, &s, &h, NULL),
                   TW_EINVAL);
  tw_unit low = {{0, 1, 0, 0, 0, 0, 0, INT8_MIN}, 1, 0};
  assert_int_equal(
      tw_unit_conversion_named(&low, NULL, &low, NULL, &s, &h, NULL),
      TW_EINVAL);
  assert_int_equal(tw_unit_conversion_named(NULL, NULL, &m, NULL, &s, &h, NULL),
                   TW_EINVAL);
  assert_true(s == 5 && h == 6);
  /* The first error wins. */
  tw_err_init(&err);
  tw_err_set(&err, TW_EIO, "earlier");
  tw_unit n = parse_ok("N");
  assert_int_equal(tw_unit_conversion_named(&n, NULL, &m, NULL, &s, &h, &err),
                   TW_EUNIT);
  assert_int_equal(err.code, TW_EIO);
  assert_string_equal(err.msg, "earlier");
  size_t at = 7;
  tw_unit u;
  assert_int_equal(tw_unit_parse_n("q", 1, &u, &at, &err), TW_EPARSE);
  assert_string_equal(err.msg, "earlier");
  assert_int_equal(at, 0);
}

static void exponent_and_depth_bounds(void **state) {
  (void)state;
  tw_unit u = parse_ok("m^127");
  assert_int_equal(u.exp[TW_UNIT_M], 127);
  u = parse_ok("m^-127");
  assert_int_equal(u.exp[TW_UNIT_M], -127);
  u = parse_ok("m^0127");
  assert_int_equal(u.exp[TW_UNIT_M], 127);
  u = parse_ok("m^100/m^100");
  assert_int_equal(u.exp[TW_UNIT_M], 0);
  u = parse_ok("(m^64/s)^-1");
  assert_int_equal(u.exp[TW_UNIT_M], -64);
  assert_int_equal(u.exp[TW_UNIT_S], 1);
  /* Factors may go far as long as every step stays a normal double. */
  u = parse_ok("lbf^30");
  assert_close(u.factor, pow(4.4482216152605, 30), 64 * DBL_EPSILON);
  u = parse_ok("km^100");
  assert_close(u.factor, 1e300, 4 * DBL_EPSILON);
  u = parse_ok("mm^100");
  assert_close(u.factor, 1e-300, 4 * DBL_EPSILON);
  tw_unit v;
  assert_int_equal(tw_unit_parse_n("km^103", 6, &v, NULL, NULL), TW_EPARSE);
  assert_int_equal(tw_unit_parse_n("mm^103", 6, &v, NULL, NULL), TW_EPARSE);
  assert_int_equal(tw_unit_parse_n("psi^100", 7, &v, NULL, NULL), TW_EPARSE);

  char text[128];
  size_t n = 0;
  for (int i = 0; i < TW_UNIT_MAX_DEPTH; i++)
    text[n++] = '(';
  text[n++] = 'm';
  for (int i = 0; i < TW_UNIT_MAX_DEPTH; i++)
    text[n++] = ')';
  text[n] = '\0';
  u = parse_ok(text);
  assert_dim(&u, "m");
  char deeper[130];
  (void)snprintf(deeper, sizeof deeper, "(%s)", text);
  size_t at = 0;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_unit_parse_n(deeper, strlen(deeper), &v, &at, &err),
                   TW_EPARSE);
  assert_int_equal(at, TW_UNIT_MAX_DEPTH);
  assert_non_null(strstr(err.msg, "parentheses nested deeper than 16"));
}

static void reads_only_the_given_length(void **state) {
  (void)state;
  tw_unit u;
  /* "mmXYZ" cut to two bytes is the millimetre. */
  assert_int_equal(tw_unit_parse_n("mmXYZ", 2, &u, NULL, NULL), TW_OK);
  assert_dim(&u, "m");
  assert_true(u.factor == 1e-3);
  assert_int_equal(tw_unit_parse_n("m", 0, &u, NULL, NULL), TW_OK);
  assert_dim(&u, "1");
  /* A NUL byte is a byte like any other, not an end. */
  size_t at = 0;
  assert_int_equal(tw_unit_parse_n("m\0s", 3, &u, &at, NULL), TW_EPARSE);
  assert_int_equal(at, 1);
  /* An exponent or a prefix cut by the length. */
  assert_int_equal(tw_unit_parse_n("m^2", 2, &u, &at, NULL), TW_EPARSE);
  assert_int_equal(at, 2);
  assert_int_equal(tw_unit_parse_n("kN", 1, &u, &at, NULL), TW_EPARSE);
  assert_int_equal(at, 0);
  double x;
  assert_int_equal(tw_quantity_parse_n("4 mm", 3, &x, &u, NULL, NULL), TW_OK);
  assert_true(x == 4 && u.factor == 1);
  assert_int_equal(tw_quantity_parse_n("1e5", 2, &x, &u, &at, NULL), TW_EPARSE);
  assert_int_equal(at, 2);
}

static void dimension_format_round_trips(void **state) {
  (void)state;
  /* Deterministic pseudo-random exponent vectors, plus the extremes. */
  uint32_t seed = 12345;
  for (int round = 0; round < 2000; round++) {
    tw_unit u = TW_UNIT_ONE;
    for (int i = 0; i < TW_UNIT_NBASE; i++) {
      seed = seed * 1664525u + 1013904223u;
      int e = round < 2 ? (round == 0 ? 127 : -127) : (int)(seed >> 24) % 9 - 4;
      if (round >= 1000)
        e = (int)((seed >> 8) % 255u) - 127;
      u.exp[i] = (int8_t)e;
    }
    char buf[TW_UNIT_DIMENSION_MAX];
    size_t n = tw_unit_dimension_format(&u, buf, sizeof buf);
    assert_true(n < TW_UNIT_DIMENSION_MAX);
    assert_int_equal(strlen(buf), n);
    tw_unit back;
    tw_err err;
    tw_err_init(&err);
    if (tw_unit_parse_n(buf, n, &back, NULL, &err) != TW_OK)
      fail_msg("'%s': %s", buf, tw_err_msg(&err));
    assert_memory_equal(back.exp, u.exp, sizeof u.exp);
    assert_true(back.factor == 1 && back.offset == 0);
  }
}

static void dimension_format_truncates_like_snprintf(void **state) {
  (void)state;
  tw_unit n = parse_ok("N");
  char buf[8];
  memset(buf, 'x', sizeof buf);
  assert_int_equal(tw_unit_dimension_format(&n, buf, 5), 8);
  assert_string_equal(buf, "kg*m");
  assert_int_equal(buf[5], 'x');
  assert_int_equal(tw_unit_dimension_format(&n, buf, 1), 8);
  assert_string_equal(buf, "");
  buf[0] = 'x';
  assert_int_equal(tw_unit_dimension_format(&n, buf, 0), 8);
  assert_int_equal(buf[0], 'x');
  assert_int_equal(tw_unit_dimension_format(&n, NULL, 0), 8);
  tw_unit pa = parse_ok("Pa");
  assert_int_equal(tw_unit_dimension_format(&pa, buf, sizeof buf), 10);
  assert_string_equal(buf, "kg/(m*s");
}

typedef struct quantity_case {
  const char *text;
  double value;
  const char *unit; /* parsed with tw_unit_parse for comparison */
} quantity_case;

static void quantities(void **state) {
  (void)state;
  static const quantity_case ok[] = {
      {"4 N/m", 4, "N/m"},
      {"1 ms", 1, "ms"},
      {"-3.5e-2 kg*m^2", -3.5e-2, "kg*m^2"},
      {"100 Hz", 100, "Hz"},
      {"20 degC", 20, "degC"},
      {"-40 degF", -40, "degF"},
      {"0.5", 0.5, ""},
      {"1e-3 m", 1e-3, "m"},
      {"1E+3 m", 1e3, "m"},
      {".5 m", 0.5, "m"},
      {"5. m", 5, "m"},
      {"+2 s", 2, "s"},
      {"  0.3 N*s/m  ", 0.3, "N*s/m"},
      {"7\tkm / h", 7, "km/h"},
      {"3 ", 3, ""},
      {"1e-400 m", 0, "m"},
      {"0.1 \xc2\xb5m", 0.1, "um"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    double x = NAN;
    tw_unit u, want = parse_ok(ok[i].unit);
    tw_err err;
    tw_err_init(&err);
    int rc =
        tw_quantity_parse_n(ok[i].text, strlen(ok[i].text), &x, &u, NULL, &err);
    if (rc != TW_OK)
      fail_msg("'%s': %s", ok[i].text, tw_err_msg(&err));
    assert_true(x == ok[i].value);
    assert_memory_equal(&u, &want, sizeof u);
  }

  static const bad_case bad_q[] = {
      {"4N/m",
       "quantity '4N/m': expected a blank between the number and the unit at "
       "1",
       1},
      {"50%",
       "quantity '50%': expected a blank between the number and the unit at 2",
       2},
      {"4 N*q/m", "quantity '4 N*q/m': unknown unit 'q' at 4", 4},
      {"", "quantity '': expected a number at 0", 0},
      {"  ", "quantity '  ': expected a number at 2", 2},
      {"m", "quantity 'm': expected a number at 0", 0},
      {"-", "quantity '-': expected a number at 0", 0},
      {".", "quantity '.': expected a number at 0", 0},
      {"1e", "quantity '1e': expected the digits of an exponent at 2", 2},
      {"2em", "quantity '2em': expected the digits of an exponent at 2", 2},
      {"1e400 m", "quantity '1e400 m': number out of range at 0", 0},
      {"-1e400", "quantity '-1e400': number out of range at 0", 0},
      {"nan", "quantity 'nan': expected a number at 0", 0},
      {"inf m", "quantity 'inf m': expected a number at 0", 0},
      {"0x10 m",
       "quantity '0x10 m': expected a blank between the number and the unit "
       "at 1",
       1},
      {"1,5 m",
       "quantity '1,5 m': expected a blank between the number and the unit at "
       "1",
       1},
      {"4 m m",
       "quantity '4 m m': expected '*', '/' or the end, found 'm' at 4", 4},
      {"4 degC*2",
       "quantity '4 degC*2': affine unit 'degC' cannot be combined with other "
       "units or raised to a power at 2",
       2},
  };
  for (size_t i = 0; i < sizeof bad_q / sizeof bad_q[0]; i++) {
    double x = 42;
    tw_unit u = TW_UNIT_ONE, before = u;
    size_t at = 999;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_quantity_parse_n(bad_q[i].text, strlen(bad_q[i].text), &x, &u,
                                 &at, &err);
    assert_int_equal(rc, TW_EPARSE);
    if (strcmp(err.msg, bad_q[i].msg) != 0)
      fail_msg("'%s':\n got  %s\n want %s", bad_q[i].text, err.msg,
               bad_q[i].msg);
    assert_int_equal(at, bad_q[i].at);
    assert_true(x == 42);
    assert_memory_equal(&u, &before, sizeof u);
  }

  /* Numbers up to TW_UNIT_NUMBER_MAX bytes. */
  char num[TW_UNIT_NUMBER_MAX + 8];
  memset(num, '0', TW_UNIT_NUMBER_MAX);
  num[TW_UNIT_NUMBER_MAX - 1] = '7';
  double x;
  tw_unit u;
  assert_int_equal(
      tw_quantity_parse_n(num, TW_UNIT_NUMBER_MAX, &x, &u, NULL, NULL), TW_OK);
  assert_true(x == 7);
  num[TW_UNIT_NUMBER_MAX] = '0';
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(
      tw_quantity_parse_n(num, TW_UNIT_NUMBER_MAX + 1, &x, &u, NULL, &err),
      TW_EPARSE);
  assert_non_null(strstr(err.msg, "number longer than 64 bytes at 0"));
  assert_non_null(strstr(err.msg, "...'"));
}

/* A locale with a decimal comma changes nothing. */
static void numbers_ignore_the_locale(void **state) {
  (void)state;
  const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                           "ps_AF.UTF-8"};
  const char *got = NULL;
  for (size_t i = 0; got == NULL && i < 4; i++)
    got = setlocale(LC_NUMERIC, locales[i]);
  if (got == NULL)
    skip(); /* no such locale installed */
  double x = 0;
  tw_unit u;
  int rc = tw_quantity_parse_n("1.25 m", 6, &x, &u, NULL, NULL);
  int rc2 = tw_quantity_parse_n("1,25 m", 6, &x, &u, NULL, NULL);
  setlocale(LC_NUMERIC, "C");
  assert_int_equal(rc, TW_OK);
  assert_int_equal(rc2, TW_EPARSE);
  assert_true(x == 1.25);
}

/* The NUL-terminated forms are the _n forms over strlen(text). */
static void terminated_forms(void **state) {
  (void)state;
  tw_unit u = TW_UNIT_ONE, v;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_unit_parse("N*s/m", &u, &err), TW_OK);
  assert_dim(&u, "kg/s");
  assert_int_equal(tw_unit_parse("", &u, &err), TW_OK);
  assert_dim(&u, "1");
  assert_int_equal(tw_unit_parse("N*q/m", &u, &err), TW_EPARSE);
  assert_string_equal(err.msg, "unit 'N*q/m': unknown unit 'q' at 2");
  assert_dim(&u, "1");
  double x = 0;
  tw_err_init(&err);
  assert_int_equal(tw_quantity_parse("0.3 N*s/m", &x, &u, &err), TW_OK);
  assert_true(x == 0.3);
  assert_dim(&u, "kg/s");
  assert_int_equal(tw_quantity_parse("4N/m", &x, &u, NULL), TW_EPARSE);
  assert_true(x == 0.3);
  tw_unit n = parse_ok("N"), m = parse_ok("mm");
  double s = 0, h = 1;
  assert_int_equal(tw_unit_conversion(&n, &m, &s, &h, &err), TW_EUNIT);
  assert_string_equal(err.msg, "unit mismatch: kg*m/s^2 cannot convert to m");
  v = parse_ok("km");
  assert_int_equal(tw_unit_conversion(&v, &m, &s, &h, NULL), TW_OK);
  assert_true(s == 1e6 && h == 0);
}

/* Nothing here allocates, so even a failing allocator changes nothing. */
static void never_allocates(void **state) {
  (void)state;
  long live = tw_alloc_live();
  tw_alloc_fail_at(1, true);
  tw_unit u, v;
  double x, s, h;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_unit_parse_n("kg*m^2/s^2", 10, &u, NULL, &err), TW_OK);
  assert_int_equal(tw_quantity_parse_n("20 degC", 7, &x, &v, NULL, &err),
                   TW_OK);
  assert_int_equal(tw_unit_parse_n("q", 1, &u, NULL, &err), TW_EPARSE);
  tw_err_init(&err);
  assert_int_equal(tw_unit_conversion_named(&u, "J", &v, "degC", &s, &h, &err),
                   TW_EUNIT);
  bool fired = tw_alloc_failure_fired();
  tw_alloc_fail_at(0, false);
  assert_false(fired);
  assert_int_equal(tw_alloc_live(), live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(parses_the_golden_table),
      TW_TEST(common_factors_are_exact),
      TW_TEST(rejects_the_golden_table),
      TW_TEST(division_is_left_associative),
      TW_TEST(every_prefix_scales),
      TW_TEST(conversions),
      TW_TEST(mismatches_name_both_units),
      TW_TEST(conversion_checks_its_inputs),
      TW_TEST(exponent_and_depth_bounds),
      TW_TEST(reads_only_the_given_length),
      TW_TEST(dimension_format_round_trips),
      TW_TEST(dimension_format_truncates_like_snprintf),
      TW_TEST(quantities),
      TW_TEST(numbers_ignore_the_locale),
      TW_TEST(terminated_forms),
      TW_TEST(never_allocates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
