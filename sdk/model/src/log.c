/*
 * log.c - the model's log lines and error reports: formatted in the
 * guest and handed to the host through the one import a model may have,
 * tw_host.log(level, ptr, len). Compiled natively (tests), they go to
 * stderr instead.
 *
 * A message is cut at 1023 bytes, on a UTF-8 character boundary, and then
 * ends in "..." so the reader knows text is missing.
 */
#include <stdio.h>
#include <string.h>

#include "model_int.h"

#define MSG_MAX 1024

#ifndef __wasm__
void (*tw__model_log_hook)(int level, const char *msg, size_t len);
#endif

#ifdef __wasm__
/* void log(i32 level, i32 ptr, i32 len): ptr/len is a UTF-8 message. */
__attribute__((import_module("tw_host"), import_name("log"))) void
tw__model_host_log(int32_t level, const char *msg, int32_t len);
#endif

void tw_model_logv(int level, const char *fmt, va_list ap) {
  char msg[MSG_MAX];
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  if (n < 0)
    return;
  size_t len = (size_t)n;
  if (len >= sizeof msg) {
    /* Back up to a character boundary that leaves room for "...". */
    len = sizeof msg - 4;
    while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80)
      len--;
    memcpy(msg + len, "...", 4);
    len += 3;
  }
  if (level < TW_MODEL_LOG_DEBUG)
    level = TW_MODEL_LOG_DEBUG;
  if (level > TW_MODEL_LOG_ERROR)
    level = TW_MODEL_LOG_ERROR;
#ifdef __wasm__
  tw__model_host_log(level, msg, (int32_t)len);
#else
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (tw__model_log_hook != NULL)
    tw__model_log_hook(level, msg, len);
  else
    (void)fprintf(stderr, "model: %s: %.*s\n", names[level], (int)len, msg);
#endif
}

void tw_model_log(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tw_model_logv(level, fmt, ap);
  va_end(ap);
}

int tw_model_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tw_model_logv(TW_MODEL_LOG_ERROR, fmt, ap);
  va_end(ap);
  return code != TW_OK ? code : TW_EINTERNAL;
}
