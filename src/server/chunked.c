/*
 * chunked.c - the incremental decoder of chunked request bodies
 * (RFC 9112 section 7.1). libwebsockets 4.1 does not decode them: for a
 * POST, PUT or PATCH without a Content-Length it hands the raw framing to
 * LWS_CALLBACK_HTTP_BODY, so server.c feeds those bytes through this
 * decoder and passes on only the body. Pure, with no I/O, fuzzed by
 * fuzz/fuzz_http_chunked.c.
 *
 * Invariants:
 * - The result does not depend on how the input is split: the decoder
 *   keeps all of its state in tw__chunked and looks at one byte at a time
 *   (runs of chunk data are copied whole).
 * - It is strict: a chunk size is 1 to 16 hex digits and at most 2^62;
 *   every line ends in CRLF (a bare LF or a CR without LF is refused);
 *   a size line with its extensions and a trailer line are at most
 *   TW__CHUNKED_MAX_LINE bytes (CRLF aside), the trailer section at most
 *   TW__CHUNKED_MAX_TRAILERS; control characters other than HTAB are
 *   refused in extensions and trailers. Extensions and trailers are read
 *   and discarded.
 * - Once it has failed it stays failed; once the body has ended it
 *   consumes nothing more.
 */
#include <string.h>

#include "server_int.h"

enum {
  ST_SIZE_FIRST, /* the first hex digit of a chunk size */
  ST_SIZE,       /* more hex digits */
  ST_SIZE_WS,    /* BWS after the size, before ';' */
  ST_EXT,        /* chunk extensions, up to CR */
  ST_SIZE_LF,    /* the LF ending the size line */
  ST_DATA,       /* chunk data */
  ST_DATA_CR,    /* the CRLF after the data */
  ST_DATA_LF,
  ST_TRAILER_FIRST, /* the start of a trailer line, or the final CRLF */
  ST_TRAILER,       /* a trailer line, up to CR */
  ST_TRAILER_LF,
  ST_END_LF, /* the LF of the final CRLF */
  ST_DONE,
  ST_BAD
};

void tw__server_chunked_init(tw__chunked *c) {
  memset(c, 0, sizeof *c);
  c->state = ST_SIZE_FIRST;
}

static int hexdig(unsigned char b) {
  if (b >= '0' && b <= '9')
    return b - '0';
  if (b >= 'a' && b <= 'f')
    return b - 'a' + 10;
  if (b >= 'A' && b <= 'F')
    return b - 'A' + 10;
  return -1;
}

/* A byte allowed in an extension or a trailer line: HTAB, SP, VCHAR and
 * obs-text (RFC 9110 field-content). */
static bool text_ok(unsigned char b) {
  return b == '\t' || (b >= 0x20 && b != 0x7f);
}

static int fail(tw__chunked *c, const char *why) {
  c->state = ST_BAD;
  c->error = why;
  return TW__CHUNKED_BAD;
}

/* Counts one more byte of the current line (and of the trailer section
 * when in it); false past the limits. */
static bool line_add(tw__chunked *c, bool trailer) {
  if (++c->line > TW__CHUNKED_MAX_LINE)
    return false;
  return !trailer || ++c->trailers <= TW__CHUNKED_MAX_TRAILERS;
}

int tw__server_chunked_decode(tw__chunked *c, const unsigned char *in,
                              size_t len, unsigned char *out, size_t *outlen,
                              size_t *used) {
  size_t i = 0, o = 0;
  int rc = TW__CHUNKED_MORE;
  while (i < len && rc == TW__CHUNKED_MORE) {
    if (c->state == ST_DATA) {
      uint64_t take = len - i;
      if (take > c->size)
        take = c->size;
      memmove(out + o, in + i, (size_t)take);
      i += (size_t)take;
      o += (size_t)take;
      c->size -= take;
      c->total += take;
      if (c->size == 0)
        c->state = ST_DATA_CR;
      continue;
    }
    unsigned char b = in[i];
    switch (c->state) {
    case ST_SIZE_FIRST:
    case ST_SIZE: {
      int d = hexdig(b);
      if (d >= 0) {
        if (++c->digits > 16)
          rc = fail(c, "chunk size longer than 16 hex digits");
        else if (c->size > (TW__CHUNKED_MAX_SIZE - (uint64_t)d) / 16)
          rc = fail(c, "chunk size larger than 2^62");
        else {
          c->size = c->size * 16 + (uint64_t)d;
          c->state = ST_SIZE;
          if (!line_add(c, false))
            rc = fail(c, "chunk size line too long");
        }
        break;
      }
      if (c->state == ST_SIZE_FIRST) {
        rc = fail(c, "chunk size expected");
        break;
      }
      c->state = ST_SIZE_WS;
      continue; /* the same byte again, in the new state */
    }
    case ST_SIZE_WS:
      if (b == '\r')
        c->state = ST_SIZE_LF;
      else if (!line_add(c, false))
        rc = fail(c, "chunk size line too long");
      else if (b == ' ' || b == '\t')
        ;
      else if (b == ';')
        c->state = ST_EXT;
      else if (b == '\n')
        rc = fail(c, "bare LF after a chunk size");
      else
        rc = fail(c, "invalid character after a chunk size");
      break;
    case ST_EXT:
      if (b == '\r')
        c->state = ST_SIZE_LF;
      else if (!line_add(c, false))
        rc = fail(c, "chunk extension too long");
      else if (b == '\n')
        rc = fail(c, "bare LF in a chunk extension");
      else if (!text_ok(b))
        rc = fail(c, "control character in a chunk extension");
      break;
    case ST_SIZE_LF:
      if (b != '\n') {
        rc = fail(c, "CR without LF after a chunk size");
        break;
      }
      c->line = 0;
      c->digits = 0;
      c->state = c->size == 0 ? ST_TRAILER_FIRST : ST_DATA;
      break;
    case ST_DATA_CR:
      if (b == '\r')
        c->state = ST_DATA_LF;
      else
        rc = fail(c, "chunk data not followed by CRLF");
      break;
    case ST_DATA_LF:
      if (b == '\n')
        c->state = ST_SIZE_FIRST;
      else
        rc = fail(c, "chunk data not followed by CRLF");
      break;
    case ST_TRAILER_FIRST:
      c->line = 0;
      if (b == '\r')
        c->state = ST_END_LF;
      else if (b == '\n')
        rc = fail(c, "bare LF in the trailer section");
      else if (!text_ok(b) || b == ' ' || b == '\t')
        rc = fail(c, "invalid trailer line");
      else if (!line_add(c, true))
        rc = fail(c, "trailer section too long");
      else
        c->state = ST_TRAILER;
      break;
    case ST_TRAILER:
      if (b == '\r')
        c->state = ST_TRAILER_LF;
      else if (!line_add(c, true))
        rc = fail(c, c->line > TW__CHUNKED_MAX_LINE
                         ? "trailer line too long"
                         : "trailer section too long");
      else if (b == '\n')
        rc = fail(c, "bare LF in a trailer line");
      else if (!text_ok(b))
        rc = fail(c, "control character in a trailer line");
      break;
    case ST_TRAILER_LF:
      if (b == '\n')
        c->state = ST_TRAILER_FIRST;
      else
        rc = fail(c, "CR without LF in a trailer line");
      break;
    case ST_END_LF:
      if (b == '\n') {
        c->state = ST_DONE;
        rc = TW__CHUNKED_DONE;
      } else {
        rc = fail(c, "CR without LF at the end of the body");
      }
      break;
    case ST_DONE:
      rc = TW__CHUNKED_DONE;
      continue; /* consumes nothing */
    default:
      rc = TW__CHUNKED_BAD;
      continue;
    }
    if (rc != TW__CHUNKED_BAD)
      i++;
  }
  if (c->state == ST_DONE)
    rc = TW__CHUNKED_DONE;
  else if (c->state == ST_BAD)
    rc = TW__CHUNKED_BAD;
  c->consumed += i;
  *outlen = o;
  *used = i;
  return rc;
}
