/*
 * arena.c - bump allocator over a list of chunks.
 *
 * Each chunk is one tw_alloc block: a header followed by its data. The
 * newest chunk is a->head and the only one allocated from; a request that
 * does not fit starts a new chunk of max(chunk_size, request, reserved)
 * bytes: oversized requests get a chunk of their own, and chunk sizes grow
 * geometrically. used counts bytes handed out
 * including alignment padding, so it is what a budget should charge.
 */
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/arena.h"

struct tw_arena_chunk {
  tw_arena_chunk *prev;
  size_t size; /* bytes of data */
  size_t off;  /* next free byte of data */
  alignas(max_align_t) unsigned char data[];
};

#define DEFAULT_CHUNK ((size_t)64 * 1024)
#define MAX_ALIGN 4096u

void tw_arena_init(tw_arena *a, size_t chunk_size) {
  memset(a, 0, sizeof *a);
  a->chunk_size = chunk_size ? chunk_size : DEFAULT_CHUNK;
}

static void free_chunks_until(tw_arena *a, tw_arena_chunk *stop) {
  while (a->head != stop) {
    tw_arena_chunk *c = a->head;
    a->head = c->prev;
    a->reserved -= c->size;
    tw_free(c);
  }
}

void tw_arena_fini(tw_arena *a) {
  if (a == NULL)
    return;
  free_chunks_until(a, NULL);
  a->used = 0;
}

void tw_arena_set_limit(tw_arena *a, size_t limit) { a->limit = limit; }

/* Padding needed to align address p to align. */
static size_t pad_for(uintptr_t p, size_t align) {
  return (size_t)((align - (p & (align - 1))) & (align - 1));
}

void *tw_arena_alloc_aligned(tw_arena *a, size_t size, size_t align) {
  if (align == 0 || (align & (align - 1)) != 0 || align > MAX_ALIGN)
    return NULL;
  if (size == 0)
    size = 1;
  tw_arena_chunk *c = a->head;
  size_t pad = 0;
  if (c != NULL)
    pad = pad_for((uintptr_t)(c->data + c->off), align);
  if (c == NULL || c->off > c->size || pad > c->size - c->off ||
      size > c->size - c->off - pad) {
    /* New chunk: room for size plus worst-case padding. */
    if (size > SIZE_MAX - sizeof(tw_arena_chunk) - align)
      return NULL;
    /* Chunks grow geometrically (at least what is reserved already), so
     * after a reset the kept chunk soon holds a whole tick's worth and a
     * reset-per-tick arena stops allocating. */
    size_t want = size + align;
    size_t data_size = want > a->chunk_size ? want : a->chunk_size;
    if (a->reserved > data_size)
      data_size = a->reserved;
    if (a->limit != 0 && a->used + size > a->limit) {
      a->limit_hit = true;
      return NULL;
    }
    tw_arena_chunk *n = tw_alloc(sizeof *n + data_size);
    if (n == NULL)
      return NULL;
    n->prev = a->head;
    n->size = data_size;
    n->off = 0;
    a->head = n;
    a->reserved += data_size;
    c = n;
    pad = pad_for((uintptr_t)c->data, align);
  }
  if (a->limit != 0 && a->used + pad + size > a->limit) {
    a->limit_hit = true;
    return NULL;
  }
  void *p = c->data + c->off + pad;
  c->off += pad + size;
  a->used += pad + size;
  if (a->used > a->peak)
    a->peak = a->used;
  return p;
}

void *tw_arena_alloc(tw_arena *a, size_t size) {
  return tw_arena_alloc_aligned(a, size, alignof(max_align_t));
}

void *tw_arena_calloc(tw_arena *a, size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size)
    return NULL;
  void *p = tw_arena_alloc(a, n * size);
  if (p != NULL)
    memset(p, 0, n * size);
  return p;
}

char *tw_arena_strndup(tw_arena *a, const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *p = tw_arena_alloc_aligned(a, len + 1, 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

char *tw_arena_strdup(tw_arena *a, const char *s) {
  return tw_arena_strndup(a, s, SIZE_MAX);
}

tw_arena_mark tw_arena_save(const tw_arena *a) {
  tw_arena_mark m = {a->head, a->head ? a->head->off : 0, a->used};
  return m;
}

void tw_arena_rewind(tw_arena *a, tw_arena_mark m) {
  free_chunks_until(a, m.chunk);
  if (a->head != NULL)
    a->head->off = m.off;
  a->used = m.used;
}

void tw_arena_reset(tw_arena *a) {
  /* A tick that needed several chunks raises the size of future chunks to
   * what the whole tick used, so the next new chunk holds a whole tick;
   * keeping the largest chunk then stops the allocation after warm-up. */
  if (a->head != NULL && a->head->prev != NULL && a->used > a->chunk_size)
    a->chunk_size = a->used;
  /* Keep the largest chunk. */
  tw_arena_chunk *keep = NULL;
  for (tw_arena_chunk *c = a->head; c != NULL; c = c->prev)
    if (keep == NULL || c->size > keep->size)
      keep = c;
  tw_arena_chunk *c = a->head;
  a->head = NULL;
  while (c != NULL) {
    tw_arena_chunk *prev = c->prev;
    if (c != keep) {
      a->reserved -= c->size;
      tw_free(c);
    }
    c = prev;
  }
  if (keep != NULL) {
    keep->prev = NULL;
    keep->off = 0;
    a->head = keep;
  }
  a->used = 0;
  a->limit_hit = false;
}
