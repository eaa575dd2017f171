/*
 * fuzz_units.c - libFuzzer target for the unit and quantity parsers.
 *
 * Every input is parsed as a unit and as a quantity. A failure must be
 * TW_EPARSE with a message that quotes the text and ends in " at OFFSET",
 * OFFSET (also returned through err_at) within the text, and the outputs
 * untouched. A parsed unit must keep the invariants of tw_unit (exponents
 * within TW_UNIT_EXP_MAX, a finite normal factor, an offset only on a plain
 * temperature), its canonical dimension must parse back to the same
 * exponents with factor 1, and it must convert to that dimension. The
 * quantity "1 " followed by the input must succeed exactly when the unit
 * did, with the same unit, or fail at the same offset shifted by two.
 * Nothing may allocate. Any broken invariant aborts.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz_units: check failed at line %d: %s\n", __LINE__,   \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const tw_unit sentinel = {{9, 9, 9, 9, 9, 9, 9, 9}, 42.0, 7.0};

/* A failed parse: the code, the message's shape, the offset. */
static void check_failure(int rc, const tw_err *err, size_t at, size_t size,
                          const char *what) {
  CHECK(rc == TW_EPARSE);
  CHECK(err->code == TW_EPARSE);
  CHECK(strncmp(err->msg, what, strlen(what)) == 0);
  CHECK(at <= size);
  char tail[32];
  (void)snprintf(tail, sizeof tail, " at %zu", at);
  size_t n = strlen(err->msg), t = strlen(tail);
  CHECK(n >= t && strcmp(err->msg + n - t, tail) == 0);
}

static void check_unit(const tw_unit *u) {
  bool plain_temperature = true;
  for (int i = 0; i < TW_UNIT_NBASE; i++) {
    CHECK(u->exp[i] >= -TW_UNIT_EXP_MAX && u->exp[i] <= TW_UNIT_EXP_MAX);
    if (u->exp[i] != (i == TW_UNIT_K ? 1 : 0))
      plain_temperature = false;
  }
  CHECK(isfinite(u->factor) && u->factor >= DBL_MIN);
  CHECK(isfinite(u->offset));
  CHECK(u->offset == 0 || plain_temperature);

  char dim[TW_UNIT_DIMENSION_MAX];
  size_t n = tw_unit_dimension_format(u, dim, sizeof dim);
  CHECK(n < sizeof dim && strlen(dim) == n);
  tw_unit back = sentinel;
  tw_err err;
  tw_err_init(&err);
  if (tw_unit_parse_n(dim, n, &back, NULL, &err) != TW_OK) {
    fprintf(stderr, "dimension '%s' does not parse: %s\n", dim, err.msg);
    abort();
  }
  CHECK(memcmp(back.exp, u->exp, sizeof u->exp) == 0);
  CHECK(back.factor == 1 && back.offset == 0);
  CHECK(tw_unit_same_dimension(u, &back));

  double scale = 0, shift = 0;
  int rc =
      tw_unit_conversion_named(u, "fuzz", &back, dim, &scale, &shift, NULL);
  CHECK(rc == TW_OK || rc == TW_ERANGE);
  if (rc == TW_OK)
    CHECK(scale == u->factor && shift == u->offset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  long live = tw_alloc_live();
  tw_alloc_fail_at(1, true); /* nothing here may allocate */

  tw_unit u = sentinel;
  size_t at = SIZE_MAX;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_unit_parse_n(text, size, &u, &at, &err);
  if (rc == TW_OK) {
    CHECK(at == SIZE_MAX);
    check_unit(&u);
    tw_unit again = sentinel;
    CHECK(tw_unit_parse_n(text, size, &again, NULL, NULL) == TW_OK);
    CHECK(memcmp(&again, &u, sizeof u) == 0);
  } else {
    check_failure(rc, &err, at, size, "unit '");
    CHECK(memcmp(&u, &sentinel, sizeof u) == 0);
  }

  /* The same text as the unit of a quantity. */
  if (size <= 4096) {
    char *q = malloc(size + 2);
    CHECK(q != NULL);
    memcpy(q, "1 ", 2);
    if (size > 0)
      memcpy(q + 2, data, size);
    double x = -1;
    tw_unit qu = sentinel;
    size_t qat = SIZE_MAX;
    tw_err_init(&err);
    int qrc = tw_quantity_parse_n(q, size + 2, &x, &qu, &qat, &err);
    CHECK(qrc == rc);
    if (qrc == TW_OK) {
      CHECK(x == 1);
      CHECK(memcmp(&qu, &u, sizeof u) == 0);
    } else {
      check_failure(qrc, &err, qat, size + 2, "quantity '");
      CHECK(qat == at + 2);
      CHECK(x == -1 && memcmp(&qu, &sentinel, sizeof qu) == 0);
    }
    free(q);
  }

  /* The input as a quantity of its own. */
  double x = -1;
  tw_unit qu = sentinel;
  at = SIZE_MAX;
  tw_err_init(&err);
  rc = tw_quantity_parse_n(text, size, &x, &qu, &at, &err);
  if (rc == TW_OK) {
    CHECK(isfinite(x));
    check_unit(&qu);
  } else {
    check_failure(rc, &err, at, size, "quantity '");
    CHECK(x == -1 && memcmp(&qu, &sentinel, sizeof qu) == 0);
  }

  CHECK(!tw_alloc_failure_fired());
  tw_alloc_fail_at(0, false);
  CHECK(tw_alloc_live() == live);
  return 0;
}
