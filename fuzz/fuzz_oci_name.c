/*
 * fuzz_oci_name.c - libFuzzer target for the registry's validators of
 * repository names, tags, digests (sha256, and sha512 for blobs and
 * manifests) and references (of both kinds).
 *
 * Each is checked against an independent implementation: the spec's
 * regular expressions compiled by the C library's regcomp (POSIX ERE), so
 * the hand-written scanners accept exactly the language of
 * distribution-spec. Whatever is accepted as a name must also be safe as
 * a path under the data directory: no "." or ".." component, no empty
 * one, no '%', no leading '_' or '.' component. Aborts on any mismatch.
 */
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_oci_name: check failed at line %d: %s\n",          \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define NAME_RE                                                                \
  "^[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*$"
#define TAG_RE "^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$"
#define DIGEST_RE "^sha256:[a-f0-9]{64}$"
#define BLOB_DIGEST_RE "^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$"

static regex_t name_re, tag_re, digest_re, blob_digest_re;

static void init(void) {
  static bool done;
  if (done)
    return;
  CHECK(regcomp(&name_re, NAME_RE, REG_EXTENDED | REG_NOSUB) == 0);
  CHECK(regcomp(&tag_re, TAG_RE, REG_EXTENDED | REG_NOSUB) == 0);
  CHECK(regcomp(&digest_re, DIGEST_RE, REG_EXTENDED | REG_NOSUB) == 0);
  CHECK(regcomp(&blob_digest_re, BLOB_DIGEST_RE, REG_EXTENDED | REG_NOSUB) ==
        0);
  done = true;
}

static bool matches(const regex_t *re, const char *s, size_t len) {
  return strlen(s) == len && regexec(re, s, 0, NULL, 0) == 0;
}

static void check_path_safe(const char *s) {
  CHECK(strstr(s, "//") == NULL && strchr(s, '%') == NULL);
  CHECK(s[0] != '/' && s[strlen(s) - 1] != '/');
  for (const char *c = s; c != NULL; c = strchr(c, '/')) {
    if (*c == '/')
      c++;
    CHECK(*c != '.' && *c != '_' && *c != '-');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init();
  /* The bytes as given, and a terminated copy for the oracle. */
  char *s = malloc(size + 1);
  CHECK(s != NULL);
  memcpy(s, data, size);
  s[size] = '\0';
  tw_err err;

  tw_err_init(&err);
  int rc = tw_reg_name_check(s, size, &err);
  bool want = size <= TW_REG_NAME_MAX && matches(&name_re, s, size);
  CHECK((rc == TW_OK) == want);
  CHECK(rc == TW_OK || (rc == TW_EINVAL && err.msg[0] != '\0'));
  if (rc == TW_OK)
    check_path_safe(s);

  tw_err_init(&err);
  rc = tw_reg_tag_check(s, size, &err);
  CHECK((rc == TW_OK) == matches(&tag_re, s, size));

  rc = tw_reg_digest_check(s, size, NULL);
  CHECK((rc == TW_OK) == matches(&digest_re, s, size));
  rc = tw_reg_blob_digest_check(s, size, NULL);
  CHECK((rc == TW_OK) == matches(&blob_digest_re, s, size));

  bool is_digest = false;
  rc = tw_reg_reference_check(s, size, &is_digest, NULL);
  bool ref_ok = matches(&tag_re, s, size) || matches(&digest_re, s, size);
  CHECK((rc == TW_OK) == ref_ok);
  if (rc == TW_OK)
    CHECK(is_digest == matches(&digest_re, s, size));
  rc = tw_reg_manifest_ref_check(s, size, &is_digest, NULL);
  ref_ok = matches(&tag_re, s, size) || matches(&blob_digest_re, s, size);
  CHECK((rc == TW_OK) == ref_ok);
  if (rc == TW_OK)
    CHECK(is_digest == matches(&blob_digest_re, s, size));
  free(s);
  return 0;
}
