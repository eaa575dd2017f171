/*
 * fuzz_graph.c - libFuzzer target for the execution-graph loader: any
 * bytes either load into a graph that then runs a few ticks, or fail with
 * a message (TW_EPARSE with a position, or TW_EVALIDATE with at least one
 * "FILE:LINE:COL: error:" line); nothing leaks. Wasm paths point into a
 * directory that does not exist, so only builtin blocks load.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_graph: check failed at line %d: %s\n", __LINE__,   \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_parse((const char *)data, size, "f.json",
                          "/nonexistent-fuzz-dir", NULL, &diags, &g, &err);
  if (rc == TW_OK) {
    CHECK(g != NULL && diags.len == 0);
    size_t in = tw_graph_input_width(g), out = tw_graph_output_width(g);
    if (in <= 4096 && out <= 4096) {
      double *buf = calloc(3 * (in + out) + 2, sizeof(double));
      CHECK(buf != NULL);
      (void)tw_graph_run(g, 3, buf, buf + 3 * in + 1, NULL);
      free(buf);
    }
    tw_graph_free(g);
  } else {
    CHECK(g == NULL && err.msg[0] != '\0');
    if (rc == TW_EVALIDATE)
      CHECK(diags.len > 0 && strstr(diags.data, "f.json:") == diags.data &&
            strstr(diags.data, ": error: ") != NULL);
  }
  tw_buf_fini(&diags);
  CHECK(tw_alloc_live() == live);
  return 0;
}
