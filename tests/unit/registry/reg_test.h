/*
 * reg_test.h - what the registry tests share: a fresh data directory per
 * test file, file helpers, and manifests built from blobs.
 * Includes tw_test.h.
 */
#ifndef TW_REG_TEST_H
#define TW_REG_TEST_H

#include "tw_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char rt_dir[64];

static inline int rt_make_dir(void **state) {
  (void)state;
  return tw_test_mkdtemp(rt_dir, sizeof rt_dir, "tw-test-registry");
}

static inline int rt_remove_dir(void **state) {
  (void)state;
  return tw_test_rmtree(rt_dir);
}

/* rt_dir/name (static buffer, one at a time). */
static inline const char *rt_at(const char *name) {
  static char path[512];
  (void)snprintf(path, sizeof path, "%s/%s", rt_dir, name);
  return path;
}

static inline bool rt_exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* Entries of path (without . and ..) whose names start with prefix; -1
 * when path is not a directory. */
static inline int rt_count(const char *path, const char *prefix) {
  DIR *d = opendir(path);
  if (d == NULL)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
         strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

/* The digest of text. */
static inline void rt_digest(const char *text, size_t n, char d[72]) {
  memcpy(d, "sha256:", 7);
  assert_int_equal(tw_sha256_hex(text, n, d + 7), TW_OK);
}

/* The sha512 digest of text. */
static inline void rt_digest512(const char *text, size_t n,
                                char d[TW_STORE_DIGEST_MAX + 1]) {
  uint8_t md[TW_SHA512_LEN];
  assert_int_equal(tw_sha512(text, n, md), TW_OK);
  memcpy(d, "sha512:", 7);
  tw_hex_encode(md, sizeof md, d + 7);
}

/* Pushes text as a blob of repo named by its sha512 digest, into d. */
static inline void rt_blob512(tw_reg *r, const char *repo, const char *text,
                              char d[TW_STORE_DIGEST_MAX + 1]) {
  rt_digest512(text, strlen(text), d);
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_blob_put(r, repo, text, strlen(text), d, NULL, &e);
  if (rc != TW_OK)
    print_error("%s\n", e.err.msg);
  assert_int_equal(rc, TW_OK);
}

/* Pushes text as a blob of repo; its digest goes to d. */
static inline void rt_blob(tw_reg *r, const char *repo, const char *text,
                           char d[72]) {
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_blob_put(r, repo, text, strlen(text), NULL, d, &e);
  if (rc != TW_OK)
    print_error("%s\n", e.err.msg);
  assert_int_equal(rc, TW_OK);
}

/* An image manifest with config and one layer (digests of blobs), an
 * optional artifactType and subject (NULL: none). Appended to out. */
static inline void rt_manifest(tw_buf *out, const char *config,
                               const char *layer, const char *artifact_type,
                               const char *subject) {
  assert_int_equal(
      tw_buf_printf(out,
                    "{\"schemaVersion\":2,\"mediaType\":\"%s\",%s%s%s"
                    "\"config\":{\"mediaType\":\"application/"
                    "vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
                    "\"size\":2},\"layers\":[{\"mediaType\":\"application/"
                    "vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\","
                    "\"size\":5}]",
                    TW_REG_MT_MANIFEST,
                    artifact_type ? "\"artifactType\":\"" : "",
                    artifact_type ? artifact_type : "",
                    artifact_type ? "\"," : "", config, layer),
      TW_OK);
  if (subject != NULL)
    assert_int_equal(
        tw_buf_printf(out,
                      ",\"subject\":{\"mediaType\":\"%s\",\"digest\":\"%s\","
                      "\"size\":10}",
                      TW_REG_MT_MANIFEST, subject),
        TW_OK);
  assert_int_equal(tw_buf_puts(out, "}"), TW_OK);
}

#endif
