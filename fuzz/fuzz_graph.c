/*
 * fuzz_graph.c - libFuzzer target for the execution-graph loader: any
 * bytes either load into a graph that then runs a few ticks, or fail with
 * a message (TW_EPARSE with a position, or TW_EVALIDATE with at least one
 * "FILE:LINE:COL: error:" line); nothing leaks. Relative paths point into
 * a directory of a few sub-graph files made at the first call (a graph,
 * its .twg form, one that nests it, a broken one, one that includes
 * itself), so "graph:" blocks load, fail and recurse, bounded by the
 * loader's cycle and depth checks; there are no wasm files, so only
 * builtin blocks load. Models by digest look in a store that does not
 * exist (never the user's default one).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/file.h"
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

static const char *const fixtures[][2] = {
    {"sub.json",
     "{\"graph\": 1, \"dt\": 0.01, \"inputs\": {\"u\": {\"unit\": \"N\"}},"
     " \"blocks\": {\"g\": {\"model\": \"builtin:gain\"},"
     " \"i\": {\"model\": \"builtin:integrator\"}},"
     " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"g.u\"},"
     " {\"from\": \"g.y\", \"to\": \"i.u\"}],"
     " \"outputs\": {\"gy\": \"g.y\", \"iy\": \"i.y\"}}"},
    {"sub.twg", "graph sub\ndt 0.01\ninput u\nblock g = builtin:gain\n"
                "  param k = 2\nconnect inputs.u -> g.u\noutput y = g.y\n"},
    {"nest.json",
     "{\"graph\": 1, \"dt\": 0.01, \"inputs\": {\"u\": {}},"
     " \"blocks\": {\"s\": {\"model\": \"graph:sub.json\"}},"
     " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"s.u\"}],"
     " \"outputs\": {\"y\": \"s.iy\"}}"},
    {"bad.json", "{\"graph\": 1, \"dt\": 0.01, \"blocks\": {\"g\": "
                 "{\"model\": \"builtin:frob\"}}}"},
    {"self.json", "{\"graph\": 1, \"dt\": 0.01, \"blocks\": {\"s\": "
                  "{\"model\": \"graph:self.json\"}}}"},
};

static char dir[64];

static void remove_fixtures(void) {
  char path[128];
  for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
    (void)snprintf(path, sizeof path, "%s/%s", dir, fixtures[i][0]);
    (void)unlink(path);
  }
  (void)rmdir(dir);
}

/* The directory of the sub-graph files, made once. */
static const char *fixture_dir(void) {
  if (dir[0] != '\0')
    return dir;
  (void)snprintf(dir, sizeof dir, "/tmp/fuzz-graph-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
    (void)snprintf(path, sizeof path, "%s/%s", dir, fixtures[i][0]);
    CHECK(tw_file_write_atomic(path, fixtures[i][1], strlen(fixtures[i][1]),
                               NULL) == TW_OK);
  }
  CHECK(atexit(remove_fixtures) == 0);
  return dir;
}

/* The first diagnostic is located in the input or in a sub-graph file
 * (later lines may continue a message that holds a newline). */
static bool located(const char *s, const char *subdir) {
  size_t n = strlen(subdir);
  return (strncmp(s, "f.json:", 7) == 0 ||
          (strncmp(s, subdir, n) == 0 && s[n] == '/')) &&
         strstr(s, ": error: ") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *subdir = fixture_dir();
  long live = tw_alloc_live();
  tw_graph *g = NULL;
  tw_buf diags = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  char store[96];
  (void)snprintf(store, sizeof store, "%s/no-store", subdir);
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.store = store;
  int rc = tw_graph_parse((const char *)data, size, "f.json", subdir, &o,
                          &diags, &g, &err);
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
      CHECK(diags.len > 0 && located(diags.data, subdir));
  }
  tw_buf_fini(&diags);
  CHECK(tw_alloc_live() == live);
  return 0;
}
