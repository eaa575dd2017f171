/*
 * alloc.h - the allocator every Twin allocation goes through.
 *
 * All heap memory the library uses is obtained from tw_alloc/tw_calloc/
 * tw_realloc and returned with tw_free, so a host can route it to its own
 * allocator and tests can make the N-th allocation fail (the practice of
 * curl's torture tests, SQLite's fault injection and Lua's memerr). JSON
 * values made by the json helpers are allocated here too.
 *
 * The hooks are process-wide, like curl_global_init_mem(): install them
 * before creating any Twin object, and never while Twin memory is live.
 *
 * Thread safety: every function may be called from any thread. The
 * counters are atomic; the fault-injection setting is process-wide and is
 * meant for single-threaded unit tests.
 */
#ifndef TWIN_ALLOC_H
#define TWIN_ALLOC_H

#include <stdbool.h>

#include "twin/common.h"

TW_EXTERN_C_BEGIN

/* Replacement allocator. All three functions are required; ud is passed
 * through. realloc_fn(ud, NULL, n) must behave as malloc_fn. */
typedef struct tw_alloc_hooks {
  void *(*malloc_fn)(void *ud, size_t size);
  void *(*realloc_fn)(void *ud, void *ptr, size_t size);
  void (*free_fn)(void *ud, void *ptr);
  void *ud;
} tw_alloc_hooks;

/* Installs hooks (copied), or restores the C library's allocator when hooks
 * is NULL. Returns TW_EBUSY, changing nothing, while allocations made with
 * the current hooks are still live, and TW_EINVAL if a function is NULL. */
TW_API int tw_alloc_set_hooks(const tw_alloc_hooks *hooks);

/* malloc/calloc/realloc semantics, except that a size of 0 still returns a
 * unique pointer, tw_calloc and tw_reallocarray detect overflow of n*size
 * (returning NULL), and a failed tw_realloc leaves ptr valid. Returns NULL
 * when the allocator fails or an injected failure fires. */
TW_API void *tw_alloc(size_t size);
TW_API void *tw_calloc(size_t n, size_t size);
TW_API void *tw_realloc(void *ptr, size_t size);
TW_API void *tw_reallocarray(void *ptr, size_t n, size_t size);

/* Frees memory from the functions above. tw_free(NULL) is a no-op. */
TW_API void tw_free(void *ptr);

/* Copies into new memory owned by the caller (free with tw_free). NULL on
 * allocation failure. tw_strndup copies at most n bytes and terminates. */
TW_API char *tw_strdup(const char *s);
TW_API char *tw_strndup(const char *s, size_t n);
TW_API void *tw_memdup(const void *p, size_t n);

/* --- Fault injection and accounting (tests, leak checks) ----------------- */

/* Makes allocation number n, counted from this call (1 = the next one),
 * fail. With persist, that allocation and every later one fail. n == 0
 * disables injection. */
TW_API void tw_alloc_fail_at(unsigned long n, bool persist);

/* True once an injected failure has fired since the last tw_alloc_fail_at. */
TW_API bool tw_alloc_failure_fired(void);

/* Number of successful allocations (tw_alloc, tw_calloc, and tw_realloc of
 * NULL) minus frees of non-NULL pointers: what is live now. */
TW_API long tw_alloc_live(void);

/* Total allocation calls attempted since the process started, including
 * reallocations and failed attempts. */
TW_API unsigned long tw_alloc_calls(void);

TW_EXTERN_C_END

#endif /* TWIN_ALLOC_H */
