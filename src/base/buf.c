/*
 * buf.c - growable byte buffer.
 *
 * Invariants: len < cap whenever data != NULL, and data[len] == '\0'.
 * Growth doubles the capacity, so n appends cost O(n) amortised.
 */
#include <stdio.h>
#include <string.h>

#include "base_int.h"
#include "twin/alloc.h"
#include "twin/buf.h"
#include "twin/error.h"

void tw_buf_init(tw_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void tw_buf_fini(tw_buf *b) {
  if (b == NULL)
    return;
  tw_free(b->data);
  tw_buf_init(b);
}

int tw_buf_reserve(tw_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1)
    return TW_EOVERFLOW;
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return TW_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = tw_realloc(b->data, cap);
  if (p == NULL)
    return TW_ENOMEM;
  if (b->data == NULL)
    p[0] = '\0';
  b->data = p;
  b->cap = cap;
  return TW_OK;
}

int tw_buf_append(tw_buf *b, const void *data, size_t n) {
  int rc = tw_buf_reserve(b, n);
  if (rc != TW_OK)
    return rc;
  if (n != 0)
    memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  return TW_OK;
}

int tw_buf_puts(tw_buf *b, const char *s) {
  return tw_buf_append(b, s, strlen(s));
}

int tw_buf_putc(tw_buf *b, char c) { return tw_buf_append(b, &c, 1); }

int tw_buf_vprintf(tw_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return TW_EINVAL;
  if ((size_t)n < sizeof small)
    return tw_buf_append(b, small, (size_t)n);
  int rc = tw_buf_reserve(b, (size_t)n);
  if (rc != TW_OK)
    return rc;
  (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return TW_OK;
}

int tw_buf_printf(tw_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = tw_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

int tw_buf_put_json_string(tw_buf *b, const char *s, size_t n) {
  size_t start = b->len;
  const unsigned char *p = (const unsigned char *)s;
  int rc = tw_buf_putc(b, '"');
  size_t i = 0;
  while (rc == TW_OK && i < n) {
    size_t run = i;
    /* Copy the longest run needing no escape in one append. */
    while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
           p[run] != '\\')
      run++;
    if (run > i) {
      rc = tw_buf_append(b, s + i, run - i);
      i = run;
      continue;
    }
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      rc = tw_buf_append(b, esc, 2);
      i++;
    } else if (c < 0x20) {
      switch (c) {
      case '\n':
        rc = tw_buf_puts(b, "\\n");
        break;
      case '\r':
        rc = tw_buf_puts(b, "\\r");
        break;
      case '\t':
        rc = tw_buf_puts(b, "\\t");
        break;
      default:
        rc = tw_buf_printf(b, "\\u%04x", c);
      }
      i++;
    } else {
      size_t len = tw__utf8_seq_len(p + i, n - i);
      if (len == 0) {
        rc = tw_buf_puts(b, "\\ufffd");
        i++;
      } else {
        rc = tw_buf_append(b, s + i, len);
        i += len;
      }
    }
  }
  if (rc == TW_OK)
    rc = tw_buf_putc(b, '"');
  if (rc != TW_OK)
    tw_buf_truncate(b, start);
  return rc;
}

void tw_buf_reset(tw_buf *b) { tw_buf_truncate(b, 0); }

void tw_buf_truncate(tw_buf *b, size_t n) {
  if (n > b->len)
    return;
  b->len = n;
  if (b->data != NULL)
    b->data[n] = '\0';
}

char *tw_buf_take(tw_buf *b, size_t *len_out) {
  char *p = b->data;
  size_t len = b->len;
  if (p == NULL) {
    p = tw_alloc(1);
    if (p == NULL)
      return NULL;
    p[0] = '\0';
  }
  tw_buf_init(b);
  if (len_out != NULL)
    *len_out = len;
  return p;
}
