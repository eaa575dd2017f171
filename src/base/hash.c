/*
 * hash.c - SHA-256 (and SHA-512, for OCI blobs named by it) over OpenSSL
 * 3's EVP interface, and hex encoding.
 *
 * A tw_sha256_state wraps one EVP_MD_CTX. The wrapper comes from tw_alloc
 * so allocation-failure tests reach it; the context itself is OpenSSL's and
 * uses OpenSSL's allocator. Invariant: finished is true exactly between
 * tw_sha256_final and the next reset, and then update and final refuse to
 * run, because EVP forbids using a finalised context.
 *
 * OpenSSL failures are rare (allocation inside libcrypto, a broken provider
 * configuration); they map to TW_ENOMEM when libcrypto says so and to
 * TW_EINTERNAL otherwise, and the thread's OpenSSL error queue is cleared
 * so the failure does not leak into unrelated OpenSSL users.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "base_int.h"
#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/hash.h"

struct tw_sha256_state {
  EVP_MD_CTX *ctx;
  bool finished;
};

/* Files are hashed in reads of this size: large enough to amortise the
 * system calls, small enough to live on the heap without concern. */
#define FILE_CHUNK ((size_t)64 * 1024)

/* Turns a failed libcrypto call into a Twin code. */
static int ossl_error(void) {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
    return TW_ENOMEM;
  return TW_EINTERNAL;
}

/* A hasher of algorithm md; a SHA-512 one is used only inside this file
 * (tw_sha512_file) and finished with state_final. */
static int state_new(const EVP_MD *md, tw_sha256_state **out) {
  tw_sha256_state *h = tw_alloc(sizeof *h);
  if (h == NULL)
    return TW_ENOMEM;
  h->ctx = EVP_MD_CTX_new();
  if (h->ctx == NULL) {
    ERR_clear_error();
    tw_free(h);
    return TW_ENOMEM;
  }
  h->finished = false;
  if (EVP_DigestInit_ex(h->ctx, md, NULL) != 1) {
    int rc = ossl_error();
    tw_sha256_free(h);
    return rc;
  }
  *out = h;
  return TW_OK;
}

int tw_sha256_new(tw_sha256_state **out) {
  return state_new(EVP_sha256(), out);
}

int tw_sha256_update(tw_sha256_state *h, const void *data, size_t n) {
  if (h->finished)
    return TW_EINVAL;
  if (n == 0)
    return TW_OK;
  if (EVP_DigestUpdate(h->ctx, data, n) != 1)
    return ossl_error();
  return TW_OK;
}

/* Writes the digest of want bytes to out. */
static int state_final(tw_sha256_state *h, uint8_t *out, unsigned want) {
  if (h->finished)
    return TW_EINVAL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1)
    return ossl_error();
  h->finished = true;
  if (len != want)
    return TW_EINTERNAL;
  memcpy(out, md, want);
  return TW_OK;
}

int tw_sha256_final(tw_sha256_state *h, uint8_t out[TW_SHA256_LEN]) {
  return state_final(h, out, TW_SHA256_LEN);
}

int tw_sha256_reset(tw_sha256_state *h) {
  if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
    return ossl_error();
  h->finished = false;
  return TW_OK;
}

void tw_sha256_free(tw_sha256_state *h) {
  if (h == NULL)
    return;
  EVP_MD_CTX_free(h->ctx);
  tw_free(h);
}

int tw_sha256(const void *data, size_t n, uint8_t out[TW_SHA256_LEN]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  /* EVP_Digest wants a readable pointer even for an empty input. */
  if (EVP_Digest(n ? data : "", n, md, &len, EVP_sha256(), NULL) != 1)
    return ossl_error();
  if (len != TW_SHA256_LEN)
    return TW_EINTERNAL;
  memcpy(out, md, TW_SHA256_LEN);
  return TW_OK;
}

int tw_sha512(const void *data, size_t n, uint8_t out[TW_SHA512_LEN]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(n ? data : "", n, md, &len, EVP_sha512(), NULL) != 1)
    return ossl_error();
  if (len != TW_SHA512_LEN)
    return TW_EINTERNAL;
  memcpy(out, md, TW_SHA512_LEN);
  return TW_OK;
}

int tw_sha256_hex(const void *data, size_t n,
                  char out_hex[TW_SHA256_HEX_LEN + 1]) {
  uint8_t md[TW_SHA256_LEN];
  int rc = tw_sha256(data, n, md);
  if (rc != TW_OK)
    return rc;
  tw_hex_encode(md, sizeof md, out_hex);
  return TW_OK;
}

/* Feeds the open file fd to h until end of file. */
static int hash_fd(int fd, const char *path, tw_sha256_state *h,
                   unsigned char *chunk, tw_err *err) {
  for (;;) {
    size_t got = 0;
    int rc = tw_file_read_some(fd, path, chunk, FILE_CHUNK, &got, err);
    if (rc != TW_OK || got == 0)
      return rc;
    rc = tw_sha256_update(h, chunk, got);
    if (rc != TW_OK)
      return tw_err_set(err, rc, "%s: hashing failed: %s", path,
                        tw_strerror(rc));
  }
}

/* Digest (of mdlen bytes, algorithm md) of the file at path. */
static int hash_file(const char *path, const EVP_MD *md_alg, unsigned mdlen,
                     uint8_t *out, tw_err *err) {
  int fd = tw_file_open_read(path, err);
  if (fd < 0)
    return fd;

  int rc = TW_ENOMEM;
  tw_sha256_state *h = NULL;
  unsigned char *chunk = tw_alloc(FILE_CHUNK);
  if (chunk != NULL)
    rc = state_new(md_alg, &h);
  if (rc != TW_OK) {
    tw_err_set(err, rc, "%s: cannot hash: %s", path, tw_strerror(rc));
  } else {
    uint8_t md[TW_SHA512_LEN];
    rc = hash_fd(fd, path, h, chunk, err);
    if (rc == TW_OK)
      rc = state_final(h, md, mdlen);
    if (rc == TW_OK)
      memcpy(out, md, mdlen);
    else
      tw_err_set(err, rc, "%s: hashing failed: %s", path, tw_strerror(rc));
  }
  tw_sha256_free(h);
  tw_free(chunk);
  close(fd);
  return rc;
}

int tw_sha256_file(const char *path, uint8_t out[TW_SHA256_LEN], tw_err *err) {
  return hash_file(path, EVP_sha256(), TW_SHA256_LEN, out, err);
}

int tw_sha512_file(const char *path, uint8_t out[TW_SHA512_LEN], tw_err *err) {
  return hash_file(path, EVP_sha512(), TW_SHA512_LEN, out, err);
}

void tw_hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 0xF];
  }
  out[2 * n] = '\0';
}

int tw_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t n) {
  if (n > SIZE_MAX / 2 || hex_len != 2 * n)
    return TW_EPARSE;
  /* Validate everything first so a bad digit leaves out untouched. */
  for (size_t i = 0; i < hex_len; i++)
    if (tw__hex_value(hex[i]) < 0)
      return TW_EPARSE;
  for (size_t i = 0; i < n; i++) {
    unsigned hi = (unsigned)tw__hex_value(hex[2 * i]);
    unsigned lo = (unsigned)tw__hex_value(hex[2 * i + 1]);
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return TW_OK;
}
