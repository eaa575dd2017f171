/*
 * dtype.c - the element types of ports and tensors (dtype.h). Part of the
 * model SDK's guest library too (src/ad names dtypes in its messages).
 */
#include <math.h>
#include <string.h>

#include "twin/dtype.h"

static const char *const dtype_names[TW_DTYPE_COUNT] = {"f64", "f32", "i64",
                                                        "i32", "bool"};

const char *tw_dtype_name(tw_dtype t) {
  return (unsigned)t < TW_DTYPE_COUNT ? dtype_names[t] : "?";
}

bool tw_dtype_parse(const char *s, tw_dtype *out) {
  for (unsigned i = 0; s != NULL && i < TW_DTYPE_COUNT; i++)
    if (strcmp(s, dtype_names[i]) == 0) {
      *out = (tw_dtype)i;
      return true;
    }
  return false;
}

bool tw_dtype_holds(tw_dtype t, double v) {
  switch (t) {
  case TW_F64:
    return true;
  case TW_F32:
    return isnan(v) || (double)(float)v == v;
  case TW_I64:
    return v == floor(v) && fabs(v) <= 9007199254740992.0;
  case TW_I32:
    return v == floor(v) && v >= -2147483648.0 && v <= 2147483647.0;
  case TW_BOOL:
    return v == 0 || v == 1;
  }
  return false;
}

bool tw_dtype_is_real(tw_dtype t) { return t == TW_F64 || t == TW_F32; }
