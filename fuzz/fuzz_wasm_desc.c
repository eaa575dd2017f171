/*
 * fuzz_wasm_desc.c - libFuzzer target for the model descriptor parser
 * (src/wasm/desc.c), which reads JSON written by untrusted guests: any
 * bytes either parse into a descriptor whose totals equal the sums of its
 * port sizes, with defaults inside their bounds and feedthrough indices
 * naming inputs, or fail with a message; nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "wasm_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_wasm_desc: check failed at line %d: %s\n",         \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static size_t total(const tw_wasm_port *p, size_t n) {
  size_t s = 0;
  for (size_t i = 0; i < n; i++)
    s += p[i].size;
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long live = tw_alloc_live();
  tw_wasm_module m;
  memset(&m, 0, sizeof m);
  m.has_vjp = size > 0 && (data[0] & 1) != 0;
  tw_err err;
  tw_err_init(&err);
  int rc = tw__wasm_parse_desc(&m, (const char *)data, size, &err);
  if (rc == TW_OK) {
    const tw_wasm_desc *d = &m.desc;
    CHECK(d->name != NULL && d->version != NULL && d->json != NULL);
    CHECK(total(d->state, d->nstate) == d->nx);
    CHECK(total(d->inputs, d->ninputs) == d->nu);
    CHECK(total(d->outputs, d->noutputs) == d->ny);
    CHECK(total(d->params, d->nparams) == d->ntheta);
    CHECK(!d->differentiable || m.has_vjp);
    for (size_t i = 0; i < d->nparams; i++) {
      const tw_wasm_port *p = &d->params[i];
      CHECK(p->default_ != NULL);
      for (size_t j = 0; j < p->size; j++) {
        CHECK(p->min == NULL || p->default_[j] >= p->min[j]);
        CHECK(p->max == NULL || p->default_[j] <= p->max[j]);
      }
    }
    for (size_t i = 0; i < d->noutputs; i++)
      for (size_t j = 0; j < d->outputs[i].nfeedthrough; j++)
        CHECK(d->outputs[i].feedthrough[j] < d->ninputs);
  } else {
    CHECK(err.msg[0] != '\0');
  }
  tw__wasm_free_desc(&m);
  CHECK(tw_alloc_live() == live);
  return 0;
}
