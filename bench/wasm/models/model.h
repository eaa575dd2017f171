/*
 * model.h - what the benchmark models share: the ABI v1 entry points
 * written once in C and compiled twice, by gcc -O2 into the bench driver
 * (names prefixed with MODEL_) and by clang --target=wasm32 into a module
 * (exported under their ABI names). Guest pointers are the C pointers of
 * either build: in wasm32 a double * is the i32 offset the ABI passes.
 */
#ifndef BENCH_WASM_MODEL_H
#define BENCH_WASM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __wasm__
#define API(name) __attribute__((export_name(#name))) name
#else
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define API(name) CAT(MODEL, CAT(_, name))
#endif

/* A bump allocator over a static heap (8-byte aligned, never freed: the
 * host allocates its buffers once per instance). */
static unsigned char heap[1 << 16] __attribute__((aligned(8)));
static size_t heap_used;

int32_t API(tw_abi_version)(void);
int32_t API(tw_abi_version)(void) { return 1; }

void *API(tw_alloc)(int32_t n);
void *API(tw_alloc)(int32_t n) {
  size_t need = ((size_t)n + 7) & ~(size_t)7;
  if (n < 0 || need > sizeof heap - heap_used)
    return NULL;
  void *p = heap + heap_used;
  heap_used += need;
  return p;
}

int64_t API(tw_describe)(void);
int64_t API(tw_describe)(void) {
#ifdef __wasm__
  return ((int64_t)(uintptr_t)descriptor << 32) |
         (int64_t)(sizeof descriptor - 1);
#else
  return 0; /* the native build is called directly */
#endif
}

#endif
