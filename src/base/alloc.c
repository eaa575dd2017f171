/*
 * alloc.c - allocator hooks, fault injection and live-allocation counting.
 *
 * Invariants: live == successful new allocations - frees of non-NULL
 * pointers; an injected failure never reaches the hooks, so nothing is
 * allocated when a failure is reported.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/error.h"

static void *libc_malloc(void *ud, size_t n) {
  (void)ud;
  return malloc(n);
}
static void *libc_realloc(void *ud, void *p, size_t n) {
  (void)ud;
  return realloc(p, n);
}
static void libc_free(void *ud, void *p) {
  (void)ud;
  free(p);
}

static const tw_alloc_hooks libc_hooks = {libc_malloc, libc_realloc, libc_free,
                                          NULL};
static tw_alloc_hooks user_hooks;
static const tw_alloc_hooks *_Atomic hooks = &libc_hooks;

static atomic_long live;
static atomic_ulong calls;
static atomic_ulong fail_countdown; /* 0: no injection pending */
static atomic_bool fail_persist;
static atomic_bool failing; /* persistent failure in force */
static atomic_bool fired;

int tw_alloc_set_hooks(const tw_alloc_hooks *h) {
  if (h != NULL &&
      (h->malloc_fn == NULL || h->realloc_fn == NULL || h->free_fn == NULL))
    return TW_EINVAL;
  if (atomic_load(&live) != 0)
    return TW_EBUSY;
  if (h == NULL) {
    atomic_store(&hooks, &libc_hooks);
  } else {
    user_hooks = *h;
    atomic_store(&hooks, &user_hooks);
  }
  return TW_OK;
}

void tw_alloc_fail_at(unsigned long n, bool persist) {
  atomic_store(&failing, false);
  atomic_store(&fired, false);
  atomic_store(&fail_persist, persist);
  atomic_store(&fail_countdown, n);
}

bool tw_alloc_failure_fired(void) { return atomic_load(&fired); }
long tw_alloc_live(void) { return atomic_load(&live); }
unsigned long tw_alloc_calls(void) { return atomic_load(&calls); }

/* Decides whether this allocation attempt must fail. */
static bool inject_failure(void) {
  atomic_fetch_add(&calls, 1);
  if (atomic_load_explicit(&failing, memory_order_relaxed)) {
    atomic_store(&fired, true);
    return true;
  }
  unsigned long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
  while (n != 0) {
    if (atomic_compare_exchange_weak(&fail_countdown, &n, n - 1)) {
      if (n != 1)
        return false;
      atomic_store(&fired, true);
      if (atomic_load(&fail_persist))
        atomic_store(&failing, true);
      return true;
    }
  }
  return false;
}

void *tw_alloc(size_t size) {
  if (inject_failure())
    return NULL;
  const tw_alloc_hooks *h = atomic_load(&hooks);
  void *p = h->malloc_fn(h->ud, size ? size : 1);
  if (p != NULL)
    atomic_fetch_add(&live, 1);
  return p;
}

void *tw_calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size)
    return NULL;
  void *p = tw_alloc(n * size);
  if (p != NULL)
    memset(p, 0, n * size);
  return p;
}

void *tw_realloc(void *ptr, size_t size) {
  if (inject_failure())
    return NULL;
  const tw_alloc_hooks *h = atomic_load(&hooks);
  void *p = h->realloc_fn(h->ud, ptr, size ? size : 1);
  if (p != NULL && ptr == NULL)
    atomic_fetch_add(&live, 1);
  return p;
}

void *tw_reallocarray(void *ptr, size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size)
    return NULL;
  return tw_realloc(ptr, n * size);
}

void tw_free(void *ptr) {
  if (ptr == NULL)
    return;
  const tw_alloc_hooks *h = atomic_load(&hooks);
  h->free_fn(h->ud, ptr);
  atomic_fetch_sub(&live, 1);
}

void *tw_memdup(const void *p, size_t n) {
  void *q = tw_alloc(n);
  if (q != NULL && n != 0)
    memcpy(q, p, n);
  return q;
}

char *tw_strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *q = tw_alloc(len + 1);
  if (q == NULL)
    return NULL;
  memcpy(q, s, len);
  q[len] = '\0';
  return q;
}

char *tw_strdup(const char *s) { return tw_memdup(s, strlen(s) + 1); }
