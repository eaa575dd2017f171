/*
 * arena.h - bump allocator for memory with one lifetime.
 *
 * An arena hands out aligned blocks from large chunks and frees them all at
 * once (nginx pools). It is used per request, per ingest batch, per graph
 * tick and per tape. Chunks come from tw_alloc. An optional byte limit lets
 * callers enforce a memory budget: an allocation that would take the arena
 * past it fails and sets the limit_hit flag, so the caller can report
 * TW_ELIMIT instead of TW_ENOMEM.
 *
 * Invariants: used <= reserved; peak is the maximum of used since init; a
 * pointer returned by the arena stays valid until the arena is reset,
 * rewound past it, or finalized.
 *
 * Thread safety: an arena belongs to one thread at a time.
 */
#ifndef TWIN_ARENA_H
#define TWIN_ARENA_H

#include <stdbool.h>

#include "twin/common.h"

TW_EXTERN_C_BEGIN

typedef struct tw_arena_chunk tw_arena_chunk;

typedef struct tw_arena {
  tw_arena_chunk *head; /* newest chunk; older ones follow ->prev */
  size_t chunk_size;    /* size of a new chunk; grows, see reset */
  size_t used;          /* bytes handed out (with alignment padding) */
  size_t peak;          /* maximum of used */
  size_t reserved;      /* bytes of chunks held */
  size_t limit;         /* 0 = none; else maximum of used */
  bool limit_hit;       /* an allocation failed because of limit */
} tw_arena;

/* A position to rewind to. */
typedef struct tw_arena_mark {
  tw_arena_chunk *chunk;
  size_t off;
  size_t used;
} tw_arena_mark;

/* Caller-owned storage; chunk_size 0 means 64 KiB. Allocates nothing. */
TW_API void tw_arena_init(tw_arena *a, size_t chunk_size);

/* Frees every chunk. The arena may be initialised again. NULL is a no-op. */
TW_API void tw_arena_fini(tw_arena *a);

/* Sets a limit on used bytes (0 = none). */
TW_API void tw_arena_set_limit(tw_arena *a, size_t limit);

/* Returns size bytes aligned to alignof(max_align_t), or NULL when the
 * allocator fails or the limit would be exceeded (then limit_hit is set).
 * A size of 0 returns a valid unique pointer. */
TW_API void *tw_arena_alloc(tw_arena *a, size_t size);

/* As tw_arena_alloc with an explicit alignment (a power of two, at most
 * 4096). */
TW_API void *tw_arena_alloc_aligned(tw_arena *a, size_t size, size_t align);

/* Zeroed n*size bytes; NULL also on overflow of n*size. */
TW_API void *tw_arena_calloc(tw_arena *a, size_t n, size_t size);

/* Copy of s (or of its first n bytes, NUL-terminated) in the arena. */
TW_API char *tw_arena_strdup(tw_arena *a, const char *s);
TW_API char *tw_arena_strndup(tw_arena *a, const char *s, size_t n);

/* Remembers the current position; tw_arena_rewind releases everything
 * allocated after it (chunks added since are freed). */
TW_API tw_arena_mark tw_arena_save(const tw_arena *a);
TW_API void tw_arena_rewind(tw_arena *a, tw_arena_mark mark);

/* Releases every allocation but keeps the largest chunk for reuse; when the
 * released work spanned several chunks, chunk_size grows to what it used.
 * So an arena reset once per tick stops allocating after warm-up (two
 * ticks). peak is kept. */
TW_API void tw_arena_reset(tw_arena *a);

TW_EXTERN_C_END

#endif /* TWIN_ARENA_H */
