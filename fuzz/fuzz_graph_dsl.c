/*
 * fuzz_graph_dsl.c - libFuzzer target for the .twg text form: any bytes
 * either fail with a located TW_EPARSE, or parse; a parse that formats
 * prints canonical text that formats to the same text again and reads
 * back to the same JSON value (the round trip); the loader then loads or
 * reports; nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/graph.h"
#include "twin/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_graph_dsl: check failed at line %d: %s\n",         \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char *tmp_path(void) {
  static char path[64];
  if (path[0] == '\0')
    (void)snprintf(path, sizeof path, "/tmp/fuzz-graph-dsl-%ld.twg",
                   (long)getpid());
  return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  const char *path = tmp_path();
  CHECK(tw_file_write_atomic(path, data, size, NULL) == TW_OK);
  tw_buf a = TW_BUF_INIT, j1 = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_format(path, false, &a, &err);
  if (rc == TW_EPARSE) {
    CHECK(strstr(err.msg, path) == err.msg && strstr(err.msg, ": error: "));
  } else if (rc == TW_OK && tw_graph_format(path, true, &j1, NULL) == TW_OK) {
    /* Round trip: the canonical text reads back to the same JSON. */
    CHECK(tw_file_write_atomic(path, a.data != NULL ? a.data : "", a.len,
                               NULL) == TW_OK);
    tw_buf b = TW_BUF_INIT, j2 = TW_BUF_INIT;
    CHECK(tw_graph_format(path, false, &b, NULL) == TW_OK);
    CHECK(tw_graph_format(path, true, &j2, NULL) == TW_OK);
    CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    /* The same JSON value (key order follows the statements' order). */
    json_t *v1 = NULL, *v2 = NULL;
    CHECK(tw_json_parse(j1.data, j1.len, "j1", &v1, NULL) == TW_OK);
    CHECK(tw_json_parse(j2.data, j2.len, "j2", &v2, NULL) == TW_OK);
    CHECK(json_equal(v1, v2));
    json_decref(v1);
    json_decref(v2);
    tw_buf_fini(&b);
    tw_buf_fini(&j2);
  }
  tw_graph *g = NULL;
  tw_graph_opts o; /* never the user's model store */
  memset(&o, 0, sizeof o);
  o.store = "/nonexistent-fuzz/store";
  if (tw_graph_parse((const char *)data, size, "f.twg", "/nonexistent-fuzz", &o,
                     NULL, &g, NULL) == TW_OK)
    tw_graph_free(g);
  tw_buf_fini(&a);
  tw_buf_fini(&j1);
  CHECK(tw_alloc_live() == live);
  return 0;
}
