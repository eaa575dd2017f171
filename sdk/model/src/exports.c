/*
 * exports.c - the model ABI v1 exports of a wasm32 module
 * (docs/model-abi.md): guest addresses in, native pointers to model.c's
 * calls out. TW_MODEL() in the model's source refers to tw__model_exports,
 * which is what makes the linker take this file (and so the exports) out
 * of libtwin_model.a.
 *
 * Every export but tw_abi_version first runs the module's C constructors
 * once (__wasm_call_ctors, what a WASI reactor's _initialize does), so the
 * host need not call anything before the ABI. Referring to
 * __wasm_call_ctors also tells wasm-ld that the module is not a WASI
 * command: it then exports the functions as they are instead of wrapping
 * each in a ctors/dtors pair whose dtors (libc's stdio flush) would import
 * WASI.
 *
 * Also here, for the same reason as the exports: __assert_fail, so that a
 * failed assert() in the model or in the SDK logs through tw_host.log and traps
 * ("unreachable") instead of importing WASI to print and exit.
 *
 * Compiled natively (tests) the file holds tw__model_exports only.
 */
#include <string.h>

#include "twin/alloc.h"
#include "twin_model.h"

const int tw__model_exports = TW_MODEL_ABI_VERSION;

#ifdef __wasm__

#define EXPORT(name) __attribute__((export_name(name)))

/* A guest address as a pointer (wasm32: the same 32 bits). */
#define PTR(T, a) ((T *)(uintptr_t)(uint32_t)(a))

EXPORT("tw_abi_version") int32_t tw__model_x_abi_version(void);
EXPORT("tw_describe") int64_t tw__model_x_describe(void);
EXPORT("tw_alloc") int32_t tw__model_x_alloc(int32_t bytes);
EXPORT("tw_init") int32_t tw__model_x_init(int32_t params, int32_t state_out);
EXPORT("tw_step")
int32_t tw__model_x_step(double t, double dt, int32_t state_in, int32_t inputs,
                         int32_t params, int32_t state_out, int32_t outputs);
EXPORT("tw_step_vjp")
int32_t tw__model_x_step_vjp(double t, double dt, int32_t state_in,
                             int32_t inputs, int32_t params,
                             int32_t g_state_out, int32_t g_outputs,
                             int32_t g_state_in, int32_t g_inputs,
                             int32_t g_params);
_Noreturn void __assert_fail(const char *expr, const char *file, int line,
                             const char *func);
void __wasm_call_ctors(void);

static void constructors(void) {
  static bool done;
  if (!done) {
    done = true;
    __wasm_call_ctors();
  }
}

int32_t tw__model_x_abi_version(void) { return TW_MODEL_ABI_VERSION; }

/* (ptr << 32) | len of the descriptor; 0 (an empty descriptor, which the
 * host refuses) after logging why when there is none. */
int64_t tw__model_x_describe(void) {
  constructors();
  size_t len = 0;
  const char *json = tw_model_describe(&len);
  if (json == NULL)
    return 0;
  return (int64_t)(((uint64_t)(uintptr_t)json << 32) | (uint64_t)len);
}

/* 8-byte aligned (malloc's 16 in wasi-libc), 0 on failure. */
int32_t tw__model_x_alloc(int32_t bytes) {
  constructors();
  if (bytes < 0)
    return 0;
  void *p = tw_alloc((size_t)bytes);
  if (p != NULL)
    memset(p, 0, (size_t)bytes);
  return (int32_t)(uintptr_t)p;
}

int32_t tw__model_x_init(int32_t params, int32_t state_out) {
  constructors();
  return tw_model_init(PTR(const double, params), PTR(double, state_out));
}

int32_t tw__model_x_step(double t, double dt, int32_t state_in, int32_t inputs,
                         int32_t params, int32_t state_out, int32_t outputs) {
  constructors();
  return tw_model_step(t, dt, PTR(const double, state_in),
                       PTR(const double, inputs), PTR(const double, params),
                       PTR(double, state_out), PTR(double, outputs));
}

int32_t tw__model_x_step_vjp(double t, double dt, int32_t state_in,
                             int32_t inputs, int32_t params,
                             int32_t g_state_out, int32_t g_outputs,
                             int32_t g_state_in, int32_t g_inputs,
                             int32_t g_params) {
  constructors();
  return tw_model_step_vjp(
      t, dt, PTR(const double, state_in), PTR(const double, inputs),
      PTR(const double, params), PTR(const double, g_state_out),
      PTR(const double, g_outputs), PTR(double, g_state_in),
      PTR(double, g_inputs), PTR(double, g_params));
}

void __assert_fail(const char *expr, const char *file, int line,
                   const char *func) {
  tw_model_log(TW_MODEL_LOG_ERROR, "%s:%d: %s: assertion '%s' failed", file,
               line, func, expr);
  __builtin_trap();
}

#endif /* __wasm__ */
