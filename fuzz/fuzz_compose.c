/*
 * fuzz_compose.c - libFuzzer target for twin-compose files: any bytes
 * either load into a twin whose graph has the declared blocks, or give
 * diagnostics (each with a file, a code and a message; an error among
 * them when loading failed); formatting them never fails; nothing leaks.
 * Relative paths resolve in an empty directory of its own and models by
 * digest in an empty store, so files the input names are never the
 * machine's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "twin/alloc.h"
#include "twin/compose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_compose: check failed at line %d: %s\n", __LINE__, \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static char dir[64];

static void cleanup(void) { (void)rmdir(dir); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (dir[0] == '\0') {
    (void)snprintf(dir, sizeof dir, "/tmp/fuzz-compose-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    (void)atexit(cleanup);
  }
  long live = tw_alloc_live();
  tw_compose_opts o;
  memset(&o, 0, sizeof o);
  o.store = dir; /* empty: no blob resolves */
  o.limits.fuel = 1000000;
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  tw_compose *c = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_compose_parse((const char *)data, size, "twin.yaml", dir, &o, &d,
                            &c, &err);
  for (size_t i = 0; i < d.n; i++)
    CHECK(d.items[i].file != NULL && d.items[i].code[0] != '\0' &&
          d.items[i].message[0] != '\0');
  if (rc == TW_OK) {
    CHECK(c != NULL && d.errors == 0);
    CHECK(tw_graph_nblocks(tw_compose_graph(c)) >= 1);
    tw_buf g = TW_BUF_INIT;
    CHECK(tw_compose_format_graph(c, false, &g, NULL) == TW_OK);
    tw_buf_fini(&g);
  } else {
    CHECK(c == NULL);
    CHECK(rc != TW_EVALIDATE || d.errors > 0);
  }
  tw_buf text = TW_BUF_INIT, json = TW_BUF_INIT;
  CHECK(tw_compose_diags_format(&d, false, &text) == TW_OK);
  CHECK(tw_compose_diags_format(&d, true, &json) == TW_OK);
  tw_buf_fini(&text);
  tw_buf_fini(&json);
  tw_compose_free(c);
  tw_compose_diags_fini(&d);
  CHECK(tw_alloc_live() == live);
  return 0;
}
