/*
 * dtype.h - the element types of ports.
 *
 * Every value Twin moves between blocks is carried as a double; a port's
 * dtype says which values it may hold, as FMI's variable types do: f64 and
 * f32 any real (f32 ports get values exactly representable in float), i64
 * and i32 integers in their range (i64 up to 2^53 in magnitude, what a
 * double holds exactly), bool 0 or 1. Connections need equal dtypes;
 * gradients flow only through f64 and f32 ports. Tensors (ad.h) are f64
 * or f32.
 */
#ifndef TWIN_DTYPE_H
#define TWIN_DTYPE_H

#include <stdbool.h>

#include "twin/common.h"

TW_EXTERN_C_BEGIN

typedef enum tw_dtype {
  TW_F64 = 0, /* the default */
  TW_F32 = 1,
  TW_I64 = 2,
  TW_I32 = 3,
  TW_BOOL = 4
} tw_dtype;

#define TW_DTYPE_COUNT 5

/* "f64", "f32", "i64", "i32", "bool"; "?" for anything else. */
TW_API const char *tw_dtype_name(tw_dtype t);
/* The dtype named s (one of the names above); false if none. */
TW_API bool tw_dtype_parse(const char *s, tw_dtype *out);
/* Whether v is a value of dtype t. */
TW_API bool tw_dtype_holds(tw_dtype t, double v);
/* Whether gradients flow through values of dtype t (f64, f32). */
TW_API bool tw_dtype_is_real(tw_dtype t);

TW_EXTERN_C_END

#endif /* TWIN_DTYPE_H */
