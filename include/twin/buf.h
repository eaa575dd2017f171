/*
 * buf.h - growable byte buffer.
 *
 * A tw_buf owns a heap array that is always NUL-terminated once anything has
 * been appended (data may be NULL while len == 0). Appends either succeed
 * completely or fail with TW_ENOMEM and leave the contents unchanged.
 *
 * Thread safety: a buffer belongs to one thread at a time.
 */
#ifndef TWIN_BUF_H
#define TWIN_BUF_H

#include <stdarg.h>

#include "twin/common.h"

TW_EXTERN_C_BEGIN

typedef struct tw_buf {
  char *data;
  size_t len;
  size_t cap;
} tw_buf;

#define TW_BUF_INIT                                                            \
  { NULL, 0, 0 }

/* Caller-owned storage. init allocates nothing; fini frees the array and
 * leaves an empty buffer. NULL is a no-op for fini. */
TW_API void tw_buf_init(tw_buf *b);
TW_API void tw_buf_fini(tw_buf *b);

/* Ensures room for extra more bytes plus the terminator. TW_ENOMEM or
 * TW_EOVERFLOW on failure. */
TW_API int tw_buf_reserve(tw_buf *b, size_t extra);

TW_API int tw_buf_append(tw_buf *b, const void *data, size_t n);
TW_API int tw_buf_puts(tw_buf *b, const char *s);
TW_API int tw_buf_putc(tw_buf *b, char c);
TW_API int tw_buf_printf(tw_buf *b, const char *fmt, ...) TW_PRINTF(2, 3);
TW_API int tw_buf_vprintf(tw_buf *b, const char *fmt, va_list ap)
    TW_PRINTF(2, 0);

/* Appends s[0..n) as a JSON string literal with quotes, escaping '"', '\\'
 * and control characters; invalid UTF-8 bytes become U+FFFD so the output
 * is always valid JSON. */
TW_API int tw_buf_put_json_string(tw_buf *b, const char *s, size_t n);

/* Empties the buffer, keeping its memory. */
TW_API void tw_buf_reset(tw_buf *b);

/* Shortens the buffer to n bytes (n <= len). */
TW_API void tw_buf_truncate(tw_buf *b, size_t n);

/* Transfers the array to the caller (free with tw_free) and leaves b empty.
 * Returns a NUL-terminated string even for an empty buffer; NULL only if
 * that empty string cannot be allocated. *len_out, if given, gets len. */
TW_API char *tw_buf_take(tw_buf *b, size_t *len_out);

TW_EXTERN_C_END

#endif /* TWIN_BUF_H */
