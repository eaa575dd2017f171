/*
 * iter.c - messages in log-time order.
 *
 * A min-heap holds the chunks not yet read, keyed by their start time, and
 * the messages of the chunks already read, keyed by log time; ties go by
 * file position: the key is (time, chunk offset, offset in the chunk).
 * Messages outside chunks (files without chunk indexes) come from the
 * reader's sorted array, merged in by the same key with their record's
 * offset. Popping a chunk reads and decompresses it and pushes its
 * selected messages: through its Message Index records when the chunk
 * index lists them (the entries name each message's offset and time), by
 * walking its records otherwise.
 *
 * Ordering invariant: every message pushed for a chunk has a log time in
 * the chunk's [start, end] (checked before the push), and the chunk's key
 * (start, offset, 0) is not greater than any of its messages' keys, so each
 * message is in the heap before anything greater than it is popped. A
 * message index whose entry disagrees with its message (channel, time) is
 * corruption, reported with the chunk's offset.
 *
 * Memory: a read chunk stays until its last selected message has been
 * returned and the next call made; the decompressed bytes held at once
 * are bounded by max_loaded.
 */
#include <string.h>

#include "trace_int.h"
#include "twin/alloc.h"

enum { ITEM_CHUNK, ITEM_MSG };

#define ANY_CHANNEL 0x10000u
#define NO_SLOT UINT32_MAX

typedef struct item {
  uint64_t time, o1, o2; /* the key */
  uint32_t slot;         /* chunk index (ITEM_CHUNK) or read chunk */
  uint32_t channel;      /* a message's channel per its index, or any */
  uint8_t kind;
} item;

typedef struct slot {
  tw__loaded ld;
  uint32_t refs; /* messages still to return */
  bool used;
  size_t chunk; /* index in the reader's chunks */
} slot;

struct tw_trace_iter {
  tw_trace_reader *r;
  uint8_t *want; /* bitmap of selected channels; NULL: all */
  uint64_t t0, t1;
  item *heap;
  size_t nheap, capheap;
  slot *slots;
  size_t nslots;
  size_t loose_next;
  uint64_t loaded; /* decompressed bytes held */
  uint32_t hold;   /* slot of the message last returned */
  tw_buf buf;      /* index and loose message records read from disk */
  tw_err fail;     /* the sticky error */
};

#define BAD(off, ...) tw__trace_bad(r, err, TW_EPARSE, (off), __VA_ARGS__)

static bool wanted(const tw_trace_iter *it, uint16_t ch) {
  return it->want == NULL || (it->want[ch >> 3] >> (ch & 7) & 1) != 0;
}

static bool in_range(const tw_trace_iter *it, uint64_t t) {
  return t >= it->t0 && t <= it->t1;
}

static bool less(const item *a, const item *b) {
  if (a->time != b->time)
    return a->time < b->time;
  if (a->o1 != b->o1)
    return a->o1 < b->o1;
  return a->o2 < b->o2;
}

static int push(tw_trace_iter *it, const item *x) {
  if (it->nheap == it->capheap) {
    size_t cap = it->capheap ? it->capheap * 2 : 64;
    item *h = tw_reallocarray(it->heap, cap, sizeof *h);
    if (h == NULL)
      return TW_ENOMEM;
    it->heap = h;
    it->capheap = cap;
  }
  size_t i = it->nheap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!less(x, &it->heap[parent]))
      break;
    it->heap[i] = it->heap[parent];
    i = parent;
  }
  it->heap[i] = *x;
  return TW_OK;
}

static item pop(tw_trace_iter *it) {
  item top = it->heap[0];
  item last = it->heap[--it->nheap];
  size_t i = 0, n = it->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && less(&it->heap[c + 1], &it->heap[c]))
      c++;
    if (!less(&it->heap[c], &last))
      break;
    it->heap[i] = it->heap[c];
    i = c;
  }
  if (n > 0)
    it->heap[i] = last;
  return top;
}

static void release(tw_trace_iter *it, uint32_t s) {
  slot *sl = &it->slots[s];
  if (--sl->refs > 0)
    return;
  if (sl->ld.owned != NULL)
    it->loaded -= sl->ld.n;
  tw__trace_loaded_fini(&sl->ld);
  sl->used = false;
}

static int new_slot(tw_trace_iter *it, uint32_t *out) {
  for (size_t i = 0; i < it->nslots; i++)
    if (!it->slots[i].used) {
      *out = (uint32_t)i;
      return TW_OK;
    }
  slot *s = tw_reallocarray(it->slots, it->nslots + 1, sizeof *s);
  if (s == NULL)
    return TW_ENOMEM;
  it->slots = s;
  memset(&s[it->nslots], 0, sizeof *s);
  *out = (uint32_t)it->nslots++;
  return TW_OK;
}

/* Pushes the selected entries of the chunk's Message Index records. */
static int push_indexed(tw_trace_iter *it, const tw__chunk *c, uint32_t s,
                        tw_err *err) {
  tw_trace_reader *r = it->r;
  const tw__mi_ref *refs = r->mi + c->mi_first;
  uint64_t region_end = c->offset + c->length + c->mi_len;
  for (size_t j = 0; j < c->mi_count; j++) {
    if (!wanted(it, refs[j].channel))
      continue;
    /* Index records are sorted and may not overlap (reader.c). */
    uint64_t limit = j + 1 < c->mi_count ? refs[j + 1].offset : region_end;
    uint64_t off = refs[j].offset;
    if (limit - off < TW__REC_HDR + 6)
      return BAD(off, "message index record too short");
    const uint8_t *p;
    int rc = tw__trace_read_at(r, off, TW__REC_HDR + 6, &it->buf, &p, err);
    if (rc != TW_OK)
      return rc;
    uint64_t len = tw__get_u64(p + 1);
    uint16_t channel = tw__get_u16(p + TW__REC_HDR);
    uint32_t bytes = tw__get_u32(p + TW__REC_HDR + 2);
    if (p[0] != TW__OP_MESSAGE_INDEX || channel != refs[j].channel)
      return BAD(off, "no message index of channel %u here",
                 (unsigned)refs[j].channel);
    if (len > limit - off - TW__REC_HDR || bytes > len - 6 || bytes % 16)
      return BAD(off, "malformed message index record");
    if (bytes > r->opts.max_record)
      return tw__trace_bad(r, err, TW_ELIMIT, off,
                           "message index exceeds the record limit");
    rc = tw__trace_read_at(r, off + TW__REC_HDR + 6, bytes, &it->buf, &p, err);
    if (rc != TW_OK)
      return rc;
    for (uint32_t e = 0; e < bytes; e += 16) {
      item x = {tw__get_u64(p + e),
                c->offset,
                tw__get_u64(p + e + 8),
                s,
                channel,
                ITEM_MSG};
      if (x.time < c->start || x.time > c->end)
        return BAD(off,
                   "message index entry at time %llu outside its "
                   "chunk's %llu..%llu",
                   (unsigned long long)x.time, (unsigned long long)c->start,
                   (unsigned long long)c->end);
      if (!in_range(it, x.time))
        continue;
      if (push(it, &x) != TW_OK)
        return tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name);
      it->slots[s].refs++;
    }
  }
  return TW_OK;
}

/* Pushes the selected messages found by walking the chunk's records. */
static int push_scanned(tw_trace_iter *it, const tw__chunk *c, uint32_t s,
                        tw_err *err) {
  tw_trace_reader *r = it->r;
  const tw__loaded *l = &it->slots[s].ld;
  size_t pos = 0;
  while (pos < l->n) {
    if (l->n - pos < TW__REC_HDR)
      return BAD(c->offset, "chunk: truncated record at offset %zu", pos);
    uint64_t len = tw__get_u64(l->data + pos + 1);
    if (len > l->n - pos - TW__REC_HDR)
      return BAD(c->offset, "chunk: record at offset %zu runs past the end",
                 pos);
    if (l->data[pos] == TW__OP_MESSAGE) {
      tw_trace_message m;
      int rc =
          tw__trace_parse_message(r, l->data, l->n, pos, c->offset, &m, err);
      if (rc != TW_OK)
        return rc;
      if (m.log_time < c->start || m.log_time > c->end)
        return BAD(c->offset,
                   "chunk: message at offset %zu outside the "
                   "chunk's time range",
                   pos);
      if (wanted(it, m.channel_id) && in_range(it, m.log_time)) {
        item x = {m.log_time, c->offset, pos, s, ANY_CHANNEL, ITEM_MSG};
        if (push(it, &x) != TW_OK)
          return tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name);
        it->slots[s].refs++;
      }
    }
    pos += TW__REC_HDR + (size_t)len;
  }
  return TW_OK;
}

/* Reads chunk ci and pushes its selected messages. */
static int read_chunk(tw_trace_iter *it, size_t ci, tw_err *err) {
  tw_trace_reader *r = it->r;
  const tw__chunk *c = &r->chunks[ci];
  uint32_t s;
  if (new_slot(it, &s) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name);
  slot *sl = &it->slots[s];
  int rc = tw__trace_chunk_load(r, c->offset, c->length, &sl->ld, err);
  if (rc != TW_OK)
    return rc;
  sl->used = true;
  sl->refs = 1; /* held while its messages are pushed */
  sl->chunk = ci;
  if (sl->ld.owned != NULL)
    it->loaded += sl->ld.n;
  if (sl->ld.n != c->uncompressed)
    rc = BAD(c->offset,
             "the chunk index says %llu uncompressed bytes, the "
             "chunk %zu",
             (unsigned long long)c->uncompressed, sl->ld.n);
  else if (it->loaded > r->opts.max_loaded)
    rc = tw__trace_bad(r, err, TW_ELIMIT, c->offset,
                       "chunks overlapping in time need more than %llu "
                       "bytes at once",
                       (unsigned long long)r->opts.max_loaded);
  else if (c->mi_count > 0)
    rc = push_indexed(it, c, s, err);
  else
    rc = push_scanned(it, c, s, err);
  release(it, s);
  return rc;
}

/* Returns the message an item names, checking it against the index. */
static int take_message(tw_trace_iter *it, const item *x, tw_trace_message *m,
                        tw_err *err) {
  tw_trace_reader *r = it->r;
  const slot *sl = &it->slots[x->slot];
  size_t at = x->o2 > SIZE_MAX ? SIZE_MAX : (size_t)x->o2;
  int rc = tw__trace_parse_message(r, sl->ld.data, sl->ld.n, at, x->o1, m, err);
  if (rc != TW_OK)
    return rc;
  if ((x->channel != ANY_CHANNEL && m->channel_id != x->channel) ||
      m->log_time != x->time)
    return BAD(x->o1,
               "a message index entry (channel %u, time %llu) does "
               "not match the message at offset %zu",
               (unsigned)x->channel, (unsigned long long)x->time, at);
  if (r->channel_ix[m->channel_id] == 0)
    return BAD(x->o1,
               "chunk: message on channel %u, which the file does not "
               "define",
               (unsigned)m->channel_id);
  return TW_OK;
}

/* Reads the loose message the cursor is on. */
static int take_loose(tw_trace_iter *it, const tw__loose *l,
                      tw_trace_message *m, tw_err *err) {
  tw_trace_reader *r = it->r;
  if (l->offset > r->data_end || r->data_end - l->offset < TW__REC_HDR)
    return BAD(l->offset, "message record outside the data section");
  const uint8_t *p;
  int rc = tw__trace_read_at(r, l->offset, TW__REC_HDR, &it->buf, &p, err);
  if (rc != TW_OK)
    return rc;
  uint64_t len = tw__get_u64(p + 1);
  if (len > r->data_end - l->offset - TW__REC_HDR || len > r->opts.max_record)
    return BAD(l->offset, "message record runs past the data section");
  rc = tw__trace_read_at(r, l->offset, TW__REC_HDR + len, &it->buf, &p, err);
  if (rc == TW_OK)
    rc = tw__trace_parse_message(r, p, (size_t)(TW__REC_HDR + len), 0,
                                 UINT64_MAX, m, err);
  if (rc == TW_OK &&
      (m->channel_id != l->channel || m->log_time != l->log_time))
    rc = BAD(l->offset, "the message changed since the file was opened");
  return rc;
}

int tw_trace_iter_new(tw_trace_reader *r, const tw_trace_query *q,
                      tw_trace_iter **out, tw_err *err) {
  static const tw_trace_query all = TW_TRACE_QUERY_ALL;
  if (q == NULL)
    q = &all;
  for (size_t i = 0; i < q->n_channels; i++)
    if (r->channel_ix[q->channels[i]] == 0)
      return tw_err_set(err, TW_ENOENT, "%s: no channel %u", r->name,
                        (unsigned)q->channels[i]);
  tw_trace_iter *it = tw_calloc(1, sizeof *it);
  if (it == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name);
  it->r = r;
  it->t0 = q->start_time;
  it->t1 = q->end_time;
  it->hold = NO_SLOT;
  tw_err_init(&it->fail);
  r->live_iters++;
  if (q->n_channels > 0) {
    it->want = tw_calloc(65536 / 8, 1);
    if (it->want == NULL) {
      tw_trace_iter_free(it);
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name);
    }
    for (size_t i = 0; i < q->n_channels; i++)
      it->want[q->channels[i] >> 3] |= (uint8_t)(1u << (q->channels[i] & 7));
  }
  for (size_t i = 0; i < r->nchunks; i++) {
    const tw__chunk *c = &r->chunks[i];
    if (c->end < it->t0 || c->start > it->t1)
      continue;
    bool any = c->mi_count == 0;
    for (size_t j = 0; !any && j < c->mi_count; j++)
      any = wanted(it, r->mi[c->mi_first + j].channel);
    if (!any)
      continue;
    item x = {c->start, c->offset, 0, (uint32_t)i, ANY_CHANNEL, ITEM_CHUNK};
    if (push(it, &x) != TW_OK) {
      tw_trace_iter_free(it);
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name);
    }
  }
  *out = it;
  return TW_OK;
}

/* Moves the loose cursor to the next selected message, or the end. */
static const tw__loose *next_loose(tw_trace_iter *it) {
  const tw_trace_reader *r = it->r;
  while (it->loose_next < r->nloose) {
    const tw__loose *l = &r->loose[it->loose_next];
    if (wanted(it, l->channel) && in_range(it, l->log_time))
      return l;
    it->loose_next++;
  }
  return NULL;
}

static int step(tw_trace_iter *it, tw_trace_message *msg, tw_err *err) {
  if (it->hold != NO_SLOT) {
    release(it, it->hold);
    it->hold = NO_SLOT;
  }
  for (;;) {
    const tw__loose *l = next_loose(it);
    if (l != NULL) {
      item lk = {l->log_time, l->offset, 0, 0, 0, ITEM_MSG};
      if (it->nheap == 0 || less(&lk, &it->heap[0])) {
        it->loose_next++;
        int rc = take_loose(it, l, msg, err);
        return rc != TW_OK ? rc : 1;
      }
    }
    if (it->nheap == 0)
      return 0;
    item x = pop(it);
    if (x.kind == ITEM_CHUNK) {
      int rc = read_chunk(it, x.slot, err);
      if (rc != TW_OK)
        return rc;
      continue;
    }
    /* The slot's reference passes to hold, released on the next call. */
    it->hold = x.slot;
    int rc = take_message(it, &x, msg, err);
    return rc != TW_OK ? rc : 1;
  }
}

int tw_trace_iter_next(tw_trace_iter *it, tw_trace_message *msg, tw_err *err) {
  if (it->fail.code != TW_OK) {
    tw_err_copy(err, &it->fail);
    return it->fail.code;
  }
  int rc = step(it, msg, &it->fail);
  if (rc < 0) {
    if (it->fail.code == TW_OK) /* every failure sets a message; be sure */
      tw_err_set(&it->fail, rc, "%s: %s", it->r->name, tw_strerror(rc));
    tw_err_copy(err, &it->fail);
  }
  return rc;
}

void tw_trace_iter_free(tw_trace_iter *it) {
  if (it == NULL)
    return;
  for (size_t i = 0; i < it->nslots; i++)
    tw__trace_loaded_fini(&it->slots[i].ld);
  tw_free(it->slots);
  tw_free(it->heap);
  tw_free(it->want);
  tw_buf_fini(&it->buf);
  it->r->live_iters--;
  tw_free(it);
}
