/*
 * text.c - small text primitives shared by the base library: UTF-8
 * validation, hex digits, and the shortest round-trip decimal form of a
 * double.
 *
 * These are used on paths that must not allocate (logging) and where output
 * must be exact and locale-independent (metrics, logs, JSON), so they write
 * into caller buffers only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_int.h"

size_t tw__utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

bool tw__utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t len = tw__utf8_seq_len(p + i, n - i);
    if (len == 0)
      return false;
    i += len;
  }
  return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

void tw__format_f64(double v, char *out, size_t cap) {
  if (!isfinite(v)) {
    (void)snprintf(out, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    (void)snprintf(out, cap, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      break;
  }
  /* snprintf and strtod follow LC_NUMERIC, which a host may have set to use
   * a decimal comma (or a multibyte separator); our formats want '.'.
   * Anything that is not a digit, sign or exponent is that separator. */
  char *w = out;
  for (const char *r = out; *r != '\0';) {
    if (is_digit(*r) || *r == '-' || *r == '+' || *r == 'e') {
      *w++ = *r++;
      continue;
    }
    *w++ = '.';
    while (*r != '\0' && !is_digit(*r) && *r != 'e')
      r++;
  }
  *w = '\0';
}

int tw__hex_value(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Writes s[0..n) to out[cap] (cap >= 16) in single quotes for a message,
 * with control characters and invalid UTF-8 as \xNN and text past 40 bytes
 * cut to "...". Keys and tokens come from the user and must not garble a
 * terminal or a log line. */
void tw__quote_text(const char *s, size_t n, char *out, size_t cap) {
  const unsigned char *u = (const unsigned char *)s;
  size_t shown = n < 40 ? n : 40;
  size_t o = 0, i = 0;
  out[o++] = '\'';
  while (i < shown) {
    size_t k = tw__utf8_seq_len(u + i, n - i);
    if (o + (k > 4 ? k : 4) + 6 > cap)
      break;
    if (k == 0 || u[i] < 0x20 || u[i] == 0x7F) {
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", u[i]);
      i++;
    } else {
      memcpy(out + o, u + i, k);
      o += k;
      i += k;
    }
  }
  if (i < n) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o++] = '\'';
  out[o] = '\0';
}
