/*
 * test_hash.c - SHA-256 against the FIPS 180-2 vectors, streaming in odd
 * pieces, file digests checked against sha256sum(1), hex round trips and
 * decode errors, and allocation failure on the allocating calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tw_test.h"

/* FIPS 180-2 appendix B, plus the 896-bit message of the NIST examples. */
static const char *const vectors[][2] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmn"
     "opjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static const char *const million_a =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void test_fips_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    char hex[TW_SHA256_HEX_LEN + 1];
    const char *msg = vectors[i][0];
    assert_int_equal(tw_sha256_hex(msg, strlen(msg), hex), TW_OK);
    assert_string_equal(hex, vectors[i][1]);

    uint8_t md[TW_SHA256_LEN], want[TW_SHA256_LEN];
    assert_int_equal(tw_sha256(msg, strlen(msg), md), TW_OK);
    assert_int_equal(
        tw_hex_decode(vectors[i][1], TW_SHA256_HEX_LEN, want, sizeof want),
        TW_OK);
    assert_memory_equal(md, want, sizeof md);
  }
  /* An empty input may come as a NULL pointer. */
  uint8_t md[TW_SHA256_LEN];
  char hex[TW_SHA256_HEX_LEN + 1];
  assert_int_equal(tw_sha256(NULL, 0, md), TW_OK);
  tw_hex_encode(md, sizeof md, hex);
  assert_string_equal(hex, vectors[0][1]);
}

/* One million 'a', fed in pieces of 1, 2, ..., 1000 bytes in turn. */
static void test_streaming_million_a(void **state) {
  (void)state;
  static char a[1000];
  memset(a, 'a', sizeof a);
  tw_sha256_state *h = NULL;
  assert_int_equal(tw_sha256_new(&h), TW_OK);
  size_t left = 1000000, piece = 1;
  while (left > 0) {
    size_t n = piece < left ? piece : left;
    assert_int_equal(tw_sha256_update(h, a, n), TW_OK);
    left -= n;
    piece = piece % sizeof a + 1;
  }
  uint8_t md[TW_SHA256_LEN];
  char hex[TW_SHA256_HEX_LEN + 1];
  assert_int_equal(tw_sha256_final(h, md), TW_OK);
  tw_hex_encode(md, sizeof md, hex);
  assert_string_equal(hex, million_a);

  /* Finished: nothing more can be added until reset. */
  assert_int_equal(tw_sha256_update(h, "x", 1), TW_EINVAL);
  assert_int_equal(tw_sha256_final(h, md), TW_EINVAL);
  assert_string_equal(hex, million_a);

  /* Reset starts over, also in the middle of a digest. */
  assert_int_equal(tw_sha256_reset(h), TW_OK);
  assert_int_equal(tw_sha256_update(h, "zzz", 3), TW_OK);
  assert_int_equal(tw_sha256_reset(h), TW_OK);
  assert_int_equal(tw_sha256_update(h, "a", 1), TW_OK);
  assert_int_equal(tw_sha256_update(h, NULL, 0), TW_OK);
  assert_int_equal(tw_sha256_update(h, "bc", 2), TW_OK);
  assert_int_equal(tw_sha256_final(h, md), TW_OK);
  tw_hex_encode(md, sizeof md, hex);
  assert_string_equal(hex, vectors[1][1]);
  tw_sha256_free(h);
  tw_sha256_free(NULL);
}

/* Any split of the input gives the one-shot digest. */
static void test_streaming_matches_one_shot(void **state) {
  (void)state;
  uint8_t data[1000];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 131u + 7u);
  uint8_t want[TW_SHA256_LEN];
  assert_int_equal(tw_sha256(data, sizeof data, want), TW_OK);
  tw_sha256_state *h = NULL;
  assert_int_equal(tw_sha256_new(&h), TW_OK);
  for (size_t cut = 0; cut <= sizeof data; cut += 63) {
    uint8_t md[TW_SHA256_LEN];
    assert_int_equal(tw_sha256_reset(h), TW_OK);
    assert_int_equal(tw_sha256_update(h, data, cut), TW_OK);
    assert_int_equal(tw_sha256_update(h, data + cut, sizeof data - cut), TW_OK);
    assert_int_equal(tw_sha256_final(h, md), TW_OK);
    assert_memory_equal(md, want, sizeof md);
  }
  tw_sha256_free(h);
}

static void test_hex_round_trip(void **state) {
  (void)state;
  uint8_t all[256], back[256];
  char hex[2 * sizeof all + 1];
  for (size_t i = 0; i < sizeof all; i++)
    all[i] = (uint8_t)i;
  tw_hex_encode(all, sizeof all, hex);
  assert_int_equal(strlen(hex), 2 * sizeof all);
  assert_memory_equal(hex, "000102030405060708090a0b0c0d0e0f10", 34);
  assert_string_equal(hex + 2 * 250, "fafbfcfdfeff");
  assert_int_equal(tw_hex_decode(hex, strlen(hex), back, sizeof back), TW_OK);
  assert_memory_equal(all, back, sizeof all);

  /* Either case decodes. */
  uint8_t two[2];
  assert_int_equal(tw_hex_decode("aBCd", 4, two, 2), TW_OK);
  assert_int_equal(two[0], 0xAB);
  assert_int_equal(two[1], 0xCD);

  /* Nothing at all is a valid empty encoding. */
  tw_hex_encode(NULL, 0, hex);
  assert_string_equal(hex, "");
  assert_int_equal(tw_hex_decode("", 0, NULL, 0), TW_OK);
}

static void test_hex_decode_errors(void **state) {
  (void)state;
  static const struct {
    const char *hex;
    size_t len;
    size_t n;
  } bad[] = {
      {"abc", 3, 2},    /* odd length */
      {"ab", 2, 2},     /* too short */
      {"abcdef", 6, 2}, /* too long */
      {"abcg", 4, 2},   /* not a hex digit */
      {"ab c", 4, 2},   /* space */
      {"0x12", 4, 2},   /* prefix */
      {"a\0bc", 4, 2},  /* NUL inside */
      {"+1ab", 4, 2},   /* sign */
      {"ab", 2, SIZE_MAX},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t out[4] = {0xEE, 0xEE, 0xEE, 0xEE};
    assert_int_equal(tw_hex_decode(bad[i].hex, bad[i].len, out, bad[i].n),
                     TW_EPARSE);
    /* Untouched, also when the bad digit comes late. */
    for (size_t k = 0; k < sizeof out; k++)
      assert_int_equal(out[k], 0xEE);
  }
}

/* Writes n bytes of a fixed pattern to a new temporary file. */
static void make_file(char *path, size_t n) {
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(fputc((int)((i * 2654435761u) >> 13 & 0xFF), f),
                     (int)((i * 2654435761u) >> 13 & 0xFF));
  assert_int_equal(fclose(f), 0);
}

/* The digest that sha256sum(1), an independent implementation, gives. */
static void sha256sum(const char *path, char hex[TW_SHA256_HEX_LEN + 1]) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[256];
  assert_non_null(fgets(line, sizeof line, p));
  assert_int_equal(pclose(p), 0);
  assert_true(strlen(line) > TW_SHA256_HEX_LEN);
  assert_int_equal(line[TW_SHA256_HEX_LEN], ' ');
  memcpy(hex, line, TW_SHA256_HEX_LEN);
  hex[TW_SHA256_HEX_LEN] = '\0';
}

static void test_file_matches_sha256sum(void **state) {
  (void)state;
  /* Empty, one read, exactly one read, and across several reads. */
  static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 200003};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char path[] = "/tmp/tw_test_hash_XXXXXX";
    make_file(path, sizes[i]);
    uint8_t md[TW_SHA256_LEN];
    char hex[TW_SHA256_HEX_LEN + 1], want[TW_SHA256_HEX_LEN + 1];
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_sha256_file(path, md, &err), TW_OK);
    assert_int_equal(err.code, TW_OK);
    tw_hex_encode(md, sizeof md, hex);
    sha256sum(path, want);
    assert_string_equal(hex, want);
    unlink(path);
  }
}

static void test_file_errors(void **state) {
  (void)state;
  uint8_t md[TW_SHA256_LEN];
  memset(md, 0xEE, sizeof md);
  tw_err err;
  tw_err_init(&err);
  const char *path = "/nonexistent-twin-dir/blob.bin";
  assert_int_equal(tw_sha256_file(path, md, &err), TW_ENOENT);
  assert_int_equal(err.code, TW_ENOENT);
  assert_string_equal(err.msg, "/nonexistent-twin-dir/blob.bin: cannot open: "
                               "No such file or directory");
  for (size_t i = 0; i < sizeof md; i++)
    assert_int_equal(md[i], 0xEE);

  /* A directory opens but cannot be read. */
  tw_err_init(&err);
  assert_int_equal(tw_sha256_file("/tmp", md, &err), TW_EINVAL);
  assert_string_equal(err.msg, "/tmp: read failed: Is a directory");
  for (size_t i = 0; i < sizeof md; i++)
    assert_int_equal(md[i], 0xEE);

  /* A NULL tw_err still gets the code. */
  assert_int_equal(tw_sha256_file(path, md, NULL), TW_ENOENT);
}

static int new_round(void) {
  tw_sha256_state *h = (tw_sha256_state *)(uintptr_t)0x1;
  int rc = tw_sha256_new(&h);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_ptr_equal(h, (tw_sha256_state *)(uintptr_t)0x1);
    return rc;
  }
  uint8_t md[TW_SHA256_LEN];
  char hex[TW_SHA256_HEX_LEN + 1];
  assert_int_equal(tw_sha256_update(h, "abc", 3), TW_OK);
  assert_int_equal(tw_sha256_final(h, md), TW_OK);
  tw_hex_encode(md, sizeof md, hex);
  assert_string_equal(hex, vectors[1][1]);
  tw_sha256_free(h);
  return TW_OK;
}

static void test_new_alloc_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(new_round());
}

static int file_round(const char *path, const char *want) {
  uint8_t md[TW_SHA256_LEN];
  memset(md, 0xEE, sizeof md);
  tw_err err;
  tw_err_init(&err);
  int rc = tw_sha256_file(path, md, &err);
  if (rc != TW_OK) {
    assert_int_equal(rc, TW_ENOMEM);
    assert_int_equal(err.code, TW_ENOMEM);
    assert_non_null(strstr(err.msg, path));
    for (size_t i = 0; i < sizeof md; i++)
      assert_int_equal(md[i], 0xEE);
    return rc;
  }
  char hex[TW_SHA256_HEX_LEN + 1];
  tw_hex_encode(md, sizeof md, hex);
  assert_string_equal(hex, want);
  return TW_OK;
}

static void test_file_alloc_failures(void **state) {
  (void)state;
  char path[] = "/tmp/tw_test_hash_XXXXXX";
  make_file(path, 100000);
  char want[TW_SHA256_HEX_LEN + 1];
  sha256sum(path, want);
  TW_TEST_ALLOC_FAILURES(file_round(path, want));
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(test_fips_vectors),
      TW_TEST(test_streaming_million_a),
      TW_TEST(test_streaming_matches_one_shot),
      TW_TEST(test_hex_round_trip),
      TW_TEST(test_hex_decode_errors),
      TW_TEST(test_file_matches_sha256sum),
      TW_TEST(test_file_errors),
      TW_TEST(test_new_alloc_failures),
      TW_TEST(test_file_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
