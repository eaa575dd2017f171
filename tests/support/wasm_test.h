/*
 * wasm_test.h - what the tests of sandboxed models share: engines made or
 * the test fails, and WebAssembly text (tests/unit/wasm/wat/) turned into
 * module bytes with wasmtime's own wat2wasm. Include after tw_test.h.
 */
#ifndef TW_WASM_TEST_H
#define TW_WASM_TEST_H

#include <stdio.h>
#include <wasmtime.h>

#define TW_WAT_DIR TW_TEST_SOURCE_DIR "/tests/unit/wasm/wat/"

/* An engine with options o (NULL: defaults), or the test fails. */
static inline tw_wasm_engine *wt_engine(const tw_wasm_engine_opts *o) {
  tw_wasm_engine *e = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_wasm_engine_new(NULL, o, &e, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return e;
}

/* Module bytes of WebAssembly text; delete with wasm_byte_vec_delete. */
static inline wasm_byte_vec_t wt_wat_text(const char *text, size_t len) {
  wasm_byte_vec_t out;
  wasmtime_error_t *e = wasmtime_wat2wasm(text, len, &out);
  if (e != NULL) {
    wasm_name_t msg;
    wasmtime_error_message(e, &msg);
    print_error("wat2wasm: %.*s\n", (int)msg.size, msg.data);
    wasm_byte_vec_delete(&msg);
    wasmtime_error_delete(e);
    fail();
  }
  return out;
}

/* Module bytes of the WebAssembly text file name under TW_WAT_DIR. */
static inline wasm_byte_vec_t wt_wat(const char *name) {
  char path[512];
  (void)snprintf(path, sizeof path, "%s%s", TW_WAT_DIR, name);
  tw_buf text = TW_BUF_INIT;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_file_read_all(path, 0, &text, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  wasm_byte_vec_t w = wt_wat_text(text.data, text.len);
  tw_buf_fini(&text);
  return w;
}

#endif
