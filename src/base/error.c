/*
 * error.c - the error-code table and the first-error-wins tw_err.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "twin/error.h"

const char *tw_strerror(int code) {
  switch (code) {
#define TW__ERRNO_DESC(name, value, desc)                                      \
  case (value):                                                                \
    return (desc);
    TW_ERRNO_MAP(TW__ERRNO_DESC)
#undef TW__ERRNO_DESC
  default:
    return "unknown error";
  }
}

const char *tw_err_name(int code) {
  switch (code) {
#define TW__ERRNO_NAME(name, value, desc)                                      \
  case (value):                                                                \
    return #name;
    TW_ERRNO_MAP(TW__ERRNO_NAME)
#undef TW__ERRNO_NAME
  default:
    return "EUNKNOWN";
  }
}

void tw_err_init(tw_err *e) {
  if (e == NULL)
    return;
  e->code = TW_OK;
  e->msg[0] = '\0';
}

/* Marks a truncated message so the reader knows text is missing. */
static void mark_truncated(tw_err *e) {
  memcpy(e->msg + TW_ERR_MSG_MAX - 4, "...", 4);
}

int tw_err_setv(tw_err *e, int code, const char *fmt, va_list ap) {
  if (code == TW_OK)
    code = TW_EINTERNAL; /* an error report must carry an error */
  if (e == NULL || e->code != TW_OK)
    return code;
  e->code = code;
  if (fmt == NULL) {
    e->msg[0] = '\0';
    return code;
  }
  int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  if (n < 0)
    e->msg[0] = '\0';
  else if ((size_t)n >= sizeof e->msg)
    mark_truncated(e);
  return code;
}

int tw_err_record(tw_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = tw_err_setv(e, code, fmt, ap);
  va_end(ap);
  return rc;
}

int tw_err_from_errno(int sys_errno) {
  switch (sys_errno) {
  case ENOENT:
  case ENOTDIR:
    return TW_ENOENT;
  case EEXIST:
    return TW_EEXIST;
  case EACCES:
  case EPERM:
  case EROFS:
    return TW_EPERM;
  case ENOMEM:
    return TW_ENOMEM;
  case EINVAL:
  case EISDIR:
    return TW_EINVAL;
  case ETIMEDOUT:
    return TW_ETIMEDOUT;
  case EBUSY:
  case EAGAIN:
    return TW_EBUSY;
  case ECONNREFUSED:
  case ECONNRESET:
  case EHOSTUNREACH:
  case ENETUNREACH:
    return TW_ECONN;
  case ENOSPC:
  case EFBIG:
  case EDQUOT:
    return TW_ELIMIT;
  default:
    return TW_EIO;
  }
}

int tw_err_sys_record(tw_err *e, int sys_errno, const char *fmt, ...) {
  int code = tw_err_from_errno(sys_errno);
  if (e == NULL || e->code != TW_OK)
    return code;
  va_list ap;
  va_start(ap, fmt);
  tw_err_setv(e, code, fmt, ap);
  va_end(ap);
  size_t len = strlen(e->msg);
  char sysmsg[256];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  /* The GNU strerror_r returns a pointer that may not be sysmsg. */
  const char *text = strerror_r(sys_errno, sysmsg, sizeof sysmsg);
#else
  /* The XSI strerror_r (musl; wasi-libc, where the model SDK compiles this
   * file for wasm32) fills sysmsg and returns 0. */
  const char *text = strerror_r(sys_errno, sysmsg, sizeof sysmsg) == 0
                         ? sysmsg
                         : "unknown error";
#endif
  int n = snprintf(e->msg + len, sizeof e->msg - len, ": %s", text);
  if (n < 0 || (size_t)n >= sizeof e->msg - len)
    mark_truncated(e);
  return code;
}

int tw_err_copy(tw_err *dst, const tw_err *src) {
  if (dst == NULL)
    return src ? src->code : TW_OK;
  if (src == NULL || dst->code != TW_OK || src->code == TW_OK)
    return dst->code;
  dst->code = src->code;
  memcpy(dst->msg, src->msg, sizeof dst->msg);
  return dst->code;
}

const char *tw_err_msg(const tw_err *e) {
  if (e == NULL)
    return "";
  if (e->msg[0] != '\0')
    return e->msg;
  return tw_strerror(e->code);
}
