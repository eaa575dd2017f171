/*
 * errors.c - the error codes of the OCI distribution spec, their HTTP
 * statuses and the {"errors":[...]} body every failed /v2/ request
 * answers with.
 *
 * Invariant: a tw_reg_err records one failure, the first (as tw_err);
 * its code and status are set together with its message, or derived
 * from the message's Twin code by tw_reg_err_finish.
 */
#include <stdarg.h>
#include <string.h>

#include "registry_int.h"

static const struct {
  const char *name;
  int status;
  const char *msg;
} codes[] = {{NULL, 200, "success"},
#define TW__REG_CODE_ROW(name, status, msg) {#name, status, msg},
             TW_REG_CODE_MAP(TW__REG_CODE_ROW)
#undef TW__REG_CODE_ROW
};

#define NCODES (sizeof codes / sizeof codes[0])

const char *tw_reg_code_name(tw_reg_code code) {
  return (unsigned)code < NCODES ? codes[code].name : NULL;
}

int tw_reg_code_status(tw_reg_code code) {
  return (unsigned)code < NCODES ? codes[code].status : 500;
}

const char *tw_reg_code_message(tw_reg_code code) {
  return (unsigned)code < NCODES ? codes[code].msg : "unknown error";
}

void tw_reg_err_init(tw_reg_err *e) {
  if (e == NULL)
    return;
  e->code = TW_REG_NONE;
  e->status = 200;
  tw_err_init(&e->err);
}

int tw_reg_err_set(tw_reg_err *e, tw_reg_code code, int status, int twcode,
                   const char *fmt, ...) {
  if (twcode >= 0)
    twcode = TW_EINTERNAL;
  if (e == NULL || e->code != TW_REG_NONE)
    return twcode;
  if (e->err.code == TW_OK) {
    va_list ap;
    va_start(ap, fmt);
    (void)tw_err_setv(&e->err, twcode, fmt, ap);
    va_end(ap);
  }
  e->code = code;
  e->status = status != 0 ? status : tw_reg_code_status(code);
  return twcode;
}

void tw_reg_err_finish(tw_reg_err *e) {
  if (e == NULL || e->code != TW_REG_NONE || e->err.code == TW_OK)
    return;
  e->code = TW_REG_UNKNOWN;
  e->status = 500;
}

int tw_reg_err_body(const tw_reg_err *e, tw_buf *out) {
  tw_reg_code code = e->code != TW_REG_NONE ? e->code : TW_REG_UNKNOWN;
  const char *name = tw_reg_code_name(code);
  const char *msg = tw_reg_code_message(code);
  const char *detail = tw_err_msg(&e->err);
  size_t len = out->len;
  int rc = tw_buf_printf(out, "{\"errors\":[{\"code\":\"%s\",\"message\":",
                         name != NULL ? name : "UNKNOWN");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(out, msg, strlen(msg));
  if (rc == TW_OK)
    rc = tw_buf_puts(out, ",\"detail\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(out, detail, strlen(detail));
  if (rc == TW_OK)
    rc = tw_buf_puts(out, "}]}");
  if (rc != TW_OK)
    tw_buf_truncate(out, len);
  return rc;
}
