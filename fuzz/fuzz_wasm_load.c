/*
 * fuzz_wasm_load.c - libFuzzer target for the model loader: any bytes go
 * through tw_wasm_module_load (the pre-compilation scan, wasmtime's
 * validation and compilation, the ABI checks, the probe instance and the
 * descriptor). The outcome is a module or one of the loader's documented
 * error codes with a message; nothing leaks (tw_alloc count). A module
 * that loads is instantiated and stepped once under a small fuel budget.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/wasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_wasm_load: check failed at line %d: %s\n",         \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static tw_wasm_engine *engine(void) {
  static tw_wasm_engine *e;
  if (e == NULL) {
    tw_wasm_engine_opts o;
    memset(&o, 0, sizeof o);
    o.meters = TW_WASM_FUEL;
    o.max_memory = (size_t)1 << 20;
    o.max_module_size = (size_t)1 << 20;
    o.max_function_size = (size_t)16 << 10;
    o.pool_size = 4;
    CHECK(tw_wasm_engine_new(NULL, &o, &e, NULL) == TW_OK);
  }
  return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tw_wasm_engine *e = engine();
  long live = tw_alloc_live();
  tw_wasm_module *m = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_wasm_module_load(e, data, size, NULL, &m, &err);
  if (rc != TW_OK) {
    CHECK(m == NULL);
    CHECK(err.msg[0] != '\0');
    CHECK(rc == TW_EPARSE || rc == TW_EVALIDATE || rc == TW_ELIMIT ||
          rc == TW_ETRAP || rc == TW_ETIMEDOUT || rc == TW_EINVAL ||
          rc == TW_ETYPE || rc == TW_ERANGE);
  } else {
    const tw_wasm_desc *d = tw_wasm_module_desc(m);
    CHECK(d->name != NULL && d->json != NULL);
    tw_wasm_limits lim = {1000000, 0, 0};
    tw_wasm_instance *in = NULL;
    if (tw_wasm_instance_new(m, &lim, &in, NULL) == TW_OK) {
      size_t n = 2 * d->nx + d->nu + d->ntheta + d->ny + 5;
      double *buf = calloc(n, sizeof(double));
      CHECK(buf != NULL);
      double *x = buf, *xn = x + d->nx + 1, *u = xn + d->nx + 1;
      double *th = u + d->nu + 1, *y = th + d->ntheta + 1;
      if (tw_wasm_init(in, th, x, NULL) == TW_OK)
        (void)tw_wasm_step(in, 0, 0.01, x, NULL, th, xn, y, NULL);
      free(buf);
      tw_wasm_instance_free(in);
    }
    tw_wasm_module_free(m);
  }
  tw_wasm_engine_trim(e); /* the compiled-code cache */
  CHECK(tw_alloc_live() == live);
  return 0;
}
