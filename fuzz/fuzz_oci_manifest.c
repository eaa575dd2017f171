/*
 * fuzz_oci_manifest.c - libFuzzer target for the registry's manifest
 * parser (tw_reg_manifest_parse) and the model artifact reader.
 *
 * The first byte picks the Content-Type (none, image manifest, index, a
 * parameterised one, an unknown one); the rest is the document. For every
 * input: a failure carries an OCI code (MANIFEST_INVALID, or UNKNOWN for
 * memory) and a message; a success exposes descriptors whose digests are
 * valid sha256 and whose sizes are non-negative, a known media type, and
 * an index exactly when the type says so. Small inputs are parsed again
 * with one allocation failing. Any broken invariant, and any tw_alloc
 * memory still live at the end, aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_oci_manifest: check failed at line %d: %s\n",      \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char *const types[] = {NULL, TW_REG_MT_MANIFEST, TW_REG_MT_INDEX,
                                    TW_REG_MT_MANIFEST " ; charset=utf-8",
                                    "application/json"};

static void check_desc(const tw_reg_desc *d) {
  CHECK(d->media_type != NULL);
  CHECK(tw_store_digest_check_any(d->digest, NULL) == TW_OK);
  CHECK(d->size >= 0);
}

static void parse_once(const char *doc, size_t len, const char *ct,
                       bool injected) {
  tw_reg_manifest *m = NULL;
  tw_reg_err e;
  tw_reg_err_init(&e);
  int rc = tw_reg_manifest_parse(doc, len, ct, &m, &e);
  if (rc != TW_OK) {
    CHECK(m == NULL);
    CHECK(e.err.code == rc && e.err.msg[0] != '\0');
    CHECK(e.code == TW_REG_MANIFEST_INVALID ||
          (e.code == TW_REG_UNKNOWN && rc == TW_ENOMEM));
    CHECK(injected || rc != TW_ENOMEM);
    tw_buf b = TW_BUF_INIT;
    if (!injected) {
      CHECK(tw_reg_err_body(&e, &b) == TW_OK);
      CHECK(strstr(b.data, "\"MANIFEST_INVALID\"") != NULL);
    }
    tw_buf_fini(&b);
    return;
  }
  CHECK(e.code == TW_REG_NONE);
  const char *mt = m->media_type;
  bool index = strcmp(mt, TW_REG_MT_INDEX) == 0 ||
               strcmp(mt, TW_REG_MT_DOCKER_LIST) == 0;
  CHECK(index == m->is_index);
  CHECK(index || strcmp(mt, TW_REG_MT_MANIFEST) == 0 ||
        strcmp(mt, TW_REG_MT_DOCKER_MANIFEST) == 0);
  if (!m->is_index)
    check_desc(&m->config);
  for (size_t i = 0; i < m->nrefs; i++)
    check_desc(&m->refs[i]);
  if (m->has_subject)
    check_desc(&m->subject);
  tw_reg_manifest_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  long live = tw_alloc_live();
  const char *ct = types[data[0] % (sizeof types / sizeof types[0])];
  const char *doc = (const char *)data + 1;
  size_t len = size - 1;
  parse_once(doc, len, ct, false);
  tw_reg_model_ref ref;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_reg_model_parse(doc, len, &ref, &err);
  CHECK(rc == TW_OK || err.msg[0] != '\0');
  if (rc == TW_OK) {
    CHECK(tw_store_digest_check(ref.wasm_digest, NULL) == TW_OK);
    CHECK(ref.wasm_size >= 0);
  }
  if (len < 4096) {
    tw_alloc_fail_at(1 + data[0] % 16, false);
    parse_once(doc, len, ct, true);
    tw_alloc_fail_at(0, false);
  }
  CHECK(tw_alloc_live() == live);
  return 0;
}
