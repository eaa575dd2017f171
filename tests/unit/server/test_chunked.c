/*
 * test_chunked.c - the decoder of chunked request bodies
 * (src/server/chunked.c): whole inputs, the same inputs split at every
 * byte position, extensions and trailers, and malformed framing.
 */
#include <stdio.h>
#include <string.h>

#include "server_int.h"
#include "tw_test.h"

/* The outcome of decoding in[0, len) fed in pieces cut at cut1 and cut2
 * (pieces may be empty). */
typedef struct outcome {
  int rc;
  unsigned char body[512];
  size_t len;
  size_t used; /* input consumed over all pieces */
  const char *error;
} outcome;

static outcome decode3(const char *in, size_t len, size_t cut1, size_t cut2) {
  outcome r;
  memset(&r, 0, sizeof r);
  tw__chunked c;
  tw__server_chunked_init(&c);
  size_t cuts[4] = {0, cut1, cut2, len};
  r.rc = TW__CHUNKED_MORE;
  for (int i = 0; i < 3 && r.rc == TW__CHUNKED_MORE; i++) {
    size_t n = cuts[i + 1] - cuts[i];
    unsigned char out[512];
    size_t outlen = 99, used = 99;
    r.rc = tw__server_chunked_decode(&c, (const unsigned char *)in + cuts[i], n,
                                     out, &outlen, &used);
    assert_true(used <= n && outlen <= n);
    if (r.rc == TW__CHUNKED_MORE)
      assert_int_equal(used, n);
    memcpy(r.body + r.len, out, outlen);
    r.len += outlen;
    r.used += used;
  }
  r.error = c.error;
  assert_int_equal(c.consumed, r.used);
  if (r.rc != TW__CHUNKED_BAD)
    assert_int_equal(c.total, r.len);
  return r;
}

/* Decodes in whole, then split in two and three at every position, and
 * checks that every split gives the same outcome. */
static outcome decode_all_splits(const char *in) {
  size_t len = strlen(in);
  outcome whole = decode3(in, len, len, len);
  for (size_t a = 0; a <= len; a++)
    for (size_t b = a; b <= len; b++) {
      outcome o = decode3(in, len, a, b);
      assert_int_equal(o.rc, whole.rc);
      if (whole.rc != TW__CHUNKED_BAD) {
        assert_int_equal(o.len, whole.len);
        assert_memory_equal(o.body, whole.body, whole.len);
        assert_int_equal(o.used, whole.used);
      } else {
        assert_string_equal(o.error, whole.error);
      }
    }
  return whole;
}

static void expect_body(const char *in, const char *body, size_t used) {
  outcome o = decode_all_splits(in);
  assert_int_equal(o.rc, TW__CHUNKED_DONE);
  assert_int_equal(o.len, strlen(body));
  assert_memory_equal(o.body, body, o.len);
  assert_int_equal(o.used, used);
}

static void expect_bad(const char *in, const char *why) {
  outcome o = decode_all_splits(in);
  assert_int_equal(o.rc, TW__CHUNKED_BAD);
  assert_non_null(o.error);
  if (strstr(o.error, why) == NULL)
    fail_msg("'%s': error '%s' does not say '%s'", in, o.error, why);
}

static void test_bodies(void **state) {
  (void)state;
  expect_body("0\r\n\r\n", "", 5);
  expect_body("5\r\nhello\r\n0\r\n\r\n", "hello", 15);
  expect_body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 26);
  /* Upper and lower case hex, leading zeros. */
  expect_body("00a\r\n0123456789\r\n000\r\n\r\n", "0123456789", 24);
  expect_body("A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 20);
  /* CR and LF inside the data are data. */
  expect_body("4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 14);
  /* What follows the body is not consumed. */
  expect_body("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "x", 11);
}

static void test_extensions_and_trailers(void **state) {
  (void)state;
  expect_body("5;name=value\r\nhello\r\n0\r\n\r\n", "hello", 26);
  expect_body("5 ; a ; b=\"q;x\"\r\nhello\r\n0;last\r\n\r\n", "hello", 34);
  expect_body("3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other:\tb\r\n\r\n", "abc", 35);
  /* Limits: a size line and a trailer line of TW__CHUNKED_MAX_LINE bytes
   * (CRLF aside) pass, one byte more fails. */
  static char in[TW__CHUNKED_MAX_LINE + 64];
  for (int extra = 0; extra <= 1; extra++) {
    size_t n = 0;
    in[n++] = '1';
    in[n++] = ';';
    while (n < TW__CHUNKED_MAX_LINE + (size_t)extra)
      in[n++] = 'e';
    memcpy(in + n, "\r\nx\r\n0\r\n\r\n", 11);
    tw__chunked c;
    tw__server_chunked_init(&c);
    unsigned char out[sizeof in];
    size_t outlen, used;
    int rc = tw__server_chunked_decode(&c, (unsigned char *)in, strlen(in), out,
                                       &outlen, &used);
    assert_int_equal(rc, extra ? TW__CHUNKED_BAD : TW__CHUNKED_DONE);
    if (extra)
      assert_non_null(strstr(c.error, "too long"));

    n = 0;
    memcpy(in, "0\r\nX:", 5);
    n = 5;
    while (n < 3 + TW__CHUNKED_MAX_LINE + (size_t)extra)
      in[n++] = 't';
    memcpy(in + n, "\r\n\r\n", 5);
    tw__server_chunked_init(&c);
    rc = tw__server_chunked_decode(&c, (unsigned char *)in, strlen(in), out,
                                   &outlen, &used);
    assert_int_equal(rc, extra ? TW__CHUNKED_BAD : TW__CHUNKED_DONE);
  }
  /* Many short trailer lines: the section's own limit. */
  static char big[2 * TW__CHUNKED_MAX_TRAILERS];
  size_t n = 0;
  memcpy(big, "0\r\n", 3);
  n = 3;
  for (size_t counted = 0; counted <= TW__CHUNKED_MAX_TRAILERS;
       counted += 100) {
    memcpy(big + n, "A:", 2);
    memset(big + n + 2, 'b', 98);
    memcpy(big + n + 100, "\r\n", 2);
    n += 102;
  }
  memcpy(big + n, "\r\n", 3);
  tw__chunked c;
  tw__server_chunked_init(&c);
  unsigned char *out = (unsigned char *)big; /* decoding in place */
  size_t outlen, used;
  int rc = tw__server_chunked_decode(&c, (unsigned char *)big, strlen(big), out,
                                     &outlen, &used);
  assert_int_equal(rc, TW__CHUNKED_BAD);
  assert_non_null(strstr(c.error, "trailer section too long"));
}

static void test_malformed_inputs(void **state) {
  (void)state;
  expect_bad("\r\n", "chunk size expected");
  expect_bad("x\r\n", "chunk size expected");
  expect_bad(";a\r\n", "chunk size expected");
  expect_bad("0x5\r\nhello\r\n0\r\n\r\n", "invalid character");
  expect_bad("5\nhello\r\n0\r\n\r\n", "bare LF");
  expect_bad("5;a\nhello\r\n0\r\n\r\n", "bare LF");
  expect_bad("5\rhello\r\n0\r\n\r\n", "CR without LF");
  expect_bad("5\r\nhelloX\r\n0\r\n\r\n", "not followed by CRLF");
  expect_bad("5\r\nhello\n0\r\n\r\n", "not followed by CRLF");
  expect_bad("5\r\nhello\r\n0\r\n\n", "bare LF");
  expect_bad("5\r\nhello\r\n0\r\nX: 1\n\r\n", "bare LF");
  expect_bad("5\r\nhello\r\n0\r\n\rx", "CR without LF");
  expect_bad("5\r\nhello\r\n0\r\nX: 1\rx", "CR without LF");
  expect_bad("5\r\nhello\r\n0\r\n folded\r\n\r\n", "invalid trailer");
  expect_bad("1;a\x01\r\nx\r\n0\r\n\r\n", "control character");
  expect_bad("0\r\nX: \x7f\r\n\r\n", "control character");
  /* Sizes: 16 digits at most, 2^62 at most. */
  expect_bad("00000000000000001\r\n", "16 hex digits");
  expect_bad("4000000000000001\r\n", "larger than 2^62");
  expect_bad("ffffffffffffffff\r\n", "larger than 2^62");
  outcome o = decode_all_splits("4000000000000000\r\nab");
  assert_int_equal(o.rc, TW__CHUNKED_MORE);
  assert_int_equal(o.len, 2);
  /* An unfinished body is not an error yet. */
  o = decode_all_splits("5\r\nhel");
  assert_int_equal(o.rc, TW__CHUNKED_MORE);
  o = decode_all_splits("5\r\nhello\r\n0\r\n\r");
  assert_int_equal(o.rc, TW__CHUNKED_MORE);
}

/* After DONE or BAD nothing more is consumed, whatever comes. */
static void test_sticky_end(void **state) {
  (void)state;
  tw__chunked c;
  tw__server_chunked_init(&c);
  unsigned char out[64];
  size_t outlen, used;
  const unsigned char *in = (const unsigned char *)"0\r\n\r\nmore";
  assert_int_equal(tw__server_chunked_decode(&c, in, 9, out, &outlen, &used),
                   TW__CHUNKED_DONE);
  assert_int_equal(used, 5);
  assert_int_equal(
      tw__server_chunked_decode(&c, in + 5, 4, out, &outlen, &used),
      TW__CHUNKED_DONE);
  assert_int_equal(used, 0);
  assert_int_equal(outlen, 0);

  tw__server_chunked_init(&c);
  in = (const unsigned char *)"z1\r\nx\r\n0\r\n\r\n";
  assert_int_equal(tw__server_chunked_decode(&c, in, 12, out, &outlen, &used),
                   TW__CHUNKED_BAD);
  assert_int_equal(used, 0);
  assert_int_equal(
      tw__server_chunked_decode(&c, in + 1, 11, out, &outlen, &used),
      TW__CHUNKED_BAD);
  assert_int_equal(used, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_bodies),
      TW_TEST(test_extensions_and_trailers),
      TW_TEST(test_malformed_inputs),
      TW_TEST(test_sticky_end),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
