/*
 * error.h - error codes and the first-error-wins message carrier.
 *
 * Every fallible Twin function returns an int: TW_OK (0) on success, a
 * negative TW_E* code on failure. All codes come from the single X-macro
 * table TW_ERRNO_MAP below, which also yields tw_strerror() and
 * tw_err_name(); adding a code means adding one line here.
 *
 * Human-readable detail travels in a tw_err that the caller owns (usually on
 * its stack). The first error recorded wins: later tw_err_set() calls on an
 * already-failed tw_err are ignored, so the innermost, most specific message
 * reaches the user (the habit of curl's Curl_failf and SQLite's
 * sqlite3ErrorWithMsg). A NULL tw_err is accepted everywhere and means the
 * caller only wants the code.
 *
 * Thread safety: the functions on codes are pure. A tw_err must not be
 * written by two threads at once.
 */
#ifndef TWIN_ERROR_H
#define TWIN_ERROR_H

#include <stdarg.h>

#include "twin/common.h"

TW_EXTERN_C_BEGIN

/* X(NAME, value, description). Values are stable ABI: never renumber. */
#define TW_ERRNO_MAP(X)                                                        \
  X(OK, 0, "success")                                                          \
  X(ENOMEM, -1, "out of memory")                                               \
  X(EINVAL, -2, "invalid argument")                                            \
  X(ENOENT, -3, "no such file or object")                                      \
  X(EEXIST, -4, "already exists")                                              \
  X(EIO, -5, "input/output error")                                             \
  X(EPARSE, -6, "malformed input")                                             \
  X(ETYPE, -7, "type mismatch")                                                \
  X(ERANGE, -8, "value out of range")                                          \
  X(EOVERFLOW, -9, "size overflow")                                            \
  X(EUNIT, -10, "unit mismatch")                                               \
  X(ENOTSUP, -11, "not supported")                                             \
  X(ELIMIT, -12, "resource limit exceeded")                                    \
  X(ETIMEDOUT, -13, "timed out")                                               \
  X(ECANCELED, -14, "canceled")                                                \
  X(ETRAP, -15, "model trapped")                                               \
  X(ENUMERIC, -16, "non-finite value")                                         \
  X(EDIGEST, -17, "digest mismatch")                                           \
  X(EPERM, -18, "permission denied")                                           \
  X(EAUTH, -19, "authentication failed")                                       \
  X(EBUSY, -20, "resource busy")                                               \
  X(ESTATE, -21, "invalid state")                                              \
  X(EVALIDATE, -22, "validation failed")                                       \
  X(ECONN, -23, "connection failed")                                           \
  X(EPROTO, -24, "protocol error")                                             \
  X(EUSAGE, -25, "bad usage")                                                  \
  X(EINTERNAL, -26, "internal error")

typedef enum tw_errno {
#define TW__ERRNO_ENUM(name, value, desc) TW_##name = (value),
  TW_ERRNO_MAP(TW__ERRNO_ENUM)
#undef TW__ERRNO_ENUM
} tw_errno;

/* Short description of a code ("out of memory"); "unknown error" for a
 * value not in the table. The string is static. */
TW_API const char *tw_strerror(int code);

/* Symbolic name of a code without the TW_ prefix ("ENOMEM", "OK");
 * "EUNKNOWN" for a value not in the table. The string is static. */
TW_API const char *tw_err_name(int code);

/* Maximum length of a message, including the terminating NUL. Longer
 * messages are truncated and end in "...". */
#define TW_ERR_MSG_MAX 1024

/* Caller-owned error carrier. code is TW_OK until the first failure. */
typedef struct tw_err {
  int code;
  char msg[TW_ERR_MSG_MAX];
} tw_err;

/* Resets e to the no-error state. e may be NULL. */
TW_API void tw_err_init(tw_err *e);

/* Records an error unless e already holds one (first error wins), and
 * evaluates to code, so a failing function can
 * `return tw_err_set(err, TW_EINVAL, ...)`. code must be negative (TW_OK is
 * recorded and returned as TW_EINTERNAL); e may be NULL. It is a macro over
 * tw_err_record so that static analysers see it never yields TW_OK; code
 * is evaluated twice. */
#define tw_err_set(e, code, ...)                                               \
  ((void)tw_err_record((e), (code), __VA_ARGS__), tw__err_code(code))

/* The function behind tw_err_set; returns the code recorded. */
TW_API int tw_err_record(tw_err *e, int code, const char *fmt, ...)
    TW_PRINTF(3, 4);
TW_API int tw_err_setv(tw_err *e, int code, const char *fmt, va_list ap)
    TW_PRINTF(3, 0);

static inline int tw__err_code(int code) {
  return code < 0 ? code : TW_EINTERNAL;
}

/* Records an error caused by a failed system call: the errno value sys_errno
 * is mapped to a Twin code (ENOENT, EEXIST, EPERM for EACCES/EPERM, ENOMEM,
 * EIO otherwise) and its strerror text is appended to the message as
 * ": <text>". Evaluates to the Twin code, never TW_OK. */
#define tw_err_sys(e, sys_errno, ...)                                          \
  tw__err_sys_code(tw_err_sys_record((e), (sys_errno), __VA_ARGS__))

TW_API int tw_err_sys_record(tw_err *e, int sys_errno, const char *fmt, ...)
    TW_PRINTF(3, 4);

static inline int tw__err_sys_code(int code) {
  return code < 0 ? code : TW_EIO;
}

/* Maps an errno value to a Twin code, as tw_err_sys does. */
TW_API int tw_err_from_errno(int sys_errno);

/* Copies src into dst unless dst already holds an error. Returns dst's code
 * afterwards. Either may be NULL. */
TW_API int tw_err_copy(tw_err *dst, const tw_err *src);

/* The message of e: its text if one was set, else tw_strerror(code).
 * Borrowed from e; valid until e is next modified. */
TW_API const char *tw_err_msg(const tw_err *e);

TW_EXTERN_C_END

#endif /* TWIN_ERROR_H */
