/*
 * writer.c - the MCAP writer.
 *
 * What a file holds, in order: magic, Header; the data section: Schema and
 * Channel records as they are registered, Metadata and Attachment records
 * as they are added, and for each chunk its Chunk record followed by one
 * Message Index per channel with messages in it (in order of the channel's
 * first message in the chunk); DataEnd; the summary: Schemas, Channels,
 * Statistics, Chunk Indexes, Attachment Indexes, Metadata Indexes, each
 * group contiguous; one Summary Offset per non-empty group; Footer; magic.
 *
 * Invariants:
 * - pos is the file offset of the next byte emitted; emitted bytes are in
 *   the file or, after it, in out.
 * - data_crc is the CRC of every byte emitted before DataEnd. An
 *   uncompressed chunk's records are never read twice for it: their CRC,
 *   computed once for the Chunk record, is combined in.
 * - The chunk in progress holds Message records only, at most chunk_size
 *   bytes unless it holds a single larger message. Each channel's idx
 *   holds the (log_time, offset) pairs of its messages in that chunk;
 *   touched lists the channels with a non-empty idx, in order.
 * - A public call succeeds or leaves the writer as it was (space in every
 *   buffer is reserved before the first byte is emitted), except when an
 *   I/O error strikes after bytes were emitted: then failed holds the
 *   error, every later call returns it, and close removes the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace_int.h"
#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/version.h"

/* out is handed to write(2) once it holds this much. */
#define OUT_FLUSH ((size_t)256 << 10)
/* Chunk records longer than this are written straight from their buffer
 * rather than copied into out. */
#define DIRECT_WRITE ((size_t)64 << 10)

typedef struct wschema {
  tw_buf rec; /* the Schema record, repeated in the summary */
} wschema;

typedef struct wchannel {
  tw_buf rec;       /* the Channel record, repeated in the summary */
  tw_buf idx;       /* (log_time, offset) pairs in the chunk in progress */
  uint64_t count;   /* messages written */
  size_t port_size; /* 0: not a port channel */
  tw_trace_encoding port_encoding;
} wchannel;

struct tw_trace_writer {
  int fd;
  char *path;
  char *partial;
  tw_trace_writer_opts opts;
  uint64_t pos;
  tw_buf out;
  uint32_t data_crc;
  tw_err failed; /* code TW_OK until the writer breaks */

  tw_buf chunk;
  uint64_t chunk_start, chunk_end;
  size_t chunk_msgs;
  uint16_t *touched; /* capacity capchannels */
  size_t ntouched;

  wchannel *channels; /* channel id i + 1 */
  size_t nchannels, capchannels;
  wschema *schemas; /* schema id i + 1 */
  size_t nschemas, capschemas;

  tw_buf chunk_idx; /* Chunk Index records, in order */
  tw_buf att_idx;   /* Attachment Index records */
  tw_buf meta_idx;  /* Metadata Index records */

  uint64_t message_count, message_start, message_end;
  uint32_t chunk_count, attachment_count, metadata_count;

  void *cctx;
  tw_buf zbuf;
};

/* --- Record building ------------------------------------------------------ */

static uint8_t *put_hdr(uint8_t *p, uint8_t op, uint64_t len) {
  p[0] = op;
  tw__put_u64(p + 1, len);
  return p + TW__REC_HDR;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n) {
  tw__put_u32(p, (uint32_t)n);
  if (n != 0)
    memcpy(p + 4, s, n);
  return p + 4 + n;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
  tw__put_u64(p, v);
  return p + 8;
}

/* Bytes of a Map<string,string> after its length prefix; SIZE_MAX when it
 * (or a member) does not fit MCAP's uint32 lengths. */
static size_t map_bytes(const tw_trace_kv *kv, size_t n) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (kv[i].key == NULL || kv[i].value == NULL)
      return SIZE_MAX;
    total += 8 + (uint64_t)strlen(kv[i].key) + strlen(kv[i].value);
    if (total > UINT32_MAX)
      return SIZE_MAX;
  }
  return (size_t)total;
}

static uint8_t *put_map(uint8_t *p, const tw_trace_kv *kv, size_t n,
                        size_t bytes) {
  tw__put_u32(p, (uint32_t)bytes);
  p += 4;
  for (size_t i = 0; i < n; i++) {
    p = put_str(p, kv[i].key, strlen(kv[i].key));
    p = put_str(p, kv[i].value, strlen(kv[i].value));
  }
  return p;
}

/* Grows b to hold n more bytes and returns where they go; the caller
 * fills all n. NULL when out of memory (b unchanged). */
static uint8_t *buf_extend(tw_buf *b, size_t n) {
  if (tw_buf_reserve(b, n) != TW_OK)
    return NULL;
  uint8_t *p = (uint8_t *)b->data + b->len;
  b->len += n;
  b->data[b->len] = '\0';
  return p;
}

/* Makes room for n more elements of size sz in *arr. */
static int grow(void **arr, size_t *cap, size_t len, size_t n, size_t sz) {
  if (len + n <= *cap)
    return TW_OK;
  size_t c = *cap ? *cap : 8;
  while (c < len + n)
    c *= 2;
  void *p = tw_reallocarray(*arr, c, sz);
  if (p == NULL)
    return TW_ENOMEM;
  *arr = p;
  *cap = c;
  return TW_OK;
}

/* --- Emitting bytes ------------------------------------------------------- */

static int broken(tw_trace_writer *w, tw_err *err) {
  tw_err_copy(err, &w->failed);
  return w->failed.code;
}

static int write_all(tw_trace_writer *w, const void *data, size_t n,
                     tw_err *err) {
  const char *p = data;
  while (n > 0) {
    ssize_t got = write(w->fd, p, n);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      tw_err_sys(&w->failed, errno, "%s: write failed", w->partial);
      return broken(w, err);
    }
    p += got;
    n -= (size_t)got;
  }
  return TW_OK;
}

static int flush_out(tw_trace_writer *w, tw_err *err) {
  if (w->out.len == 0)
    return TW_OK;
  int rc = write_all(w, w->out.data, w->out.len, err);
  tw_buf_reset(&w->out);
  return rc;
}

/* Accounts for the n bytes the caller just built at the end of out. */
static void out_commit(tw_trace_writer *w, const uint8_t *start, size_t n) {
  if (!w->opts.no_crc)
    w->data_crc = tw__trace_crc32(w->data_crc, start, n);
  w->pos += n;
}

static int maybe_flush(tw_trace_writer *w, tw_err *err) {
  return w->out.len >= OUT_FLUSH ? flush_out(w, err) : TW_OK;
}

/* Emits n bytes from p whose CRC is crc (if known_crc) after out. */
static int emit_large(tw_trace_writer *w, const void *p, size_t n,
                      bool known_crc, uint32_t crc, tw_err *err) {
  if (!w->opts.no_crc)
    w->data_crc = known_crc ? tw__trace_crc32_combine(w->data_crc, crc, n)
                            : tw__trace_crc32(w->data_crc, p, n);
  w->pos += n;
  if (n < DIRECT_WRITE && tw_buf_append(&w->out, p, n) == TW_OK)
    return TW_OK;
  int rc = flush_out(w, err);
  return rc != TW_OK ? rc : write_all(w, p, n, err);
}

/* --- Chunks ----------------------------------------------------------------
 */

static size_t mi_record_len(const wchannel *c) {
  return TW__REC_HDR + 2 + 4 + c->idx.len;
}

/* Writes the chunk in progress, its message indexes, and records its Chunk
 * Index. Nothing changes when this fails before emitting (memory). */
static int finish_chunk(tw_trace_writer *w, tw_err *err) {
  if (w->chunk_msgs == 0)
    return TW_OK;
  const uint8_t *records = (const uint8_t *)w->chunk.data;
  size_t ulen = w->chunk.len;
  uint32_t ucrc = w->opts.no_crc ? 0 : tw__trace_crc32(0, records, ulen);
  const char *comp = "";
  size_t rlen = ulen;
  if (w->opts.compression == TW_TRACE_COMPRESSION_ZSTD) {
    int rc = tw__trace_zstd_compress(w->cctx, w->opts.zstd_level, records, ulen,
                                     &w->zbuf);
    if (rc != TW_OK)
      return tw_err_set(err, rc, "%s: cannot compress a chunk: %s", w->partial,
                        tw_strerror(rc));
    records = (const uint8_t *)w->zbuf.data;
    rlen = w->zbuf.len;
    comp = "zstd";
  }
  size_t clen = strlen(comp);
  size_t hdr_len = TW__REC_HDR + 8 + 8 + 8 + 4 + 4 + clen + 8;
  size_t mi_total = 0;
  for (size_t i = 0; i < w->ntouched; i++)
    mi_total += mi_record_len(&w->channels[w->touched[i] - 1]);
  size_t ci_content =
      8 + 8 + 8 + 8 + 4 + 10 * w->ntouched + 8 + 4 + clen + 8 + 8;
  /* Every byte this emits fits in out and chunk_idx, reserved now, so
   * only I/O can fail once the first byte is emitted. */
  bool inline_records = rlen < DIRECT_WRITE;
  if (tw_buf_reserve(&w->out, hdr_len + (inline_records ? rlen : 0) +
                                  mi_total) != TW_OK ||
      tw_buf_reserve(&w->chunk_idx, TW__REC_HDR + ci_content) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);

  /* The Chunk record. */
  uint64_t chunk_off = w->pos;
  uint64_t content = hdr_len - TW__REC_HDR + (uint64_t)rlen;
  uint8_t *start = buf_extend(&w->out, hdr_len);
  uint8_t *p = put_hdr(start, TW__OP_CHUNK, content);
  p = put_u64(p, w->chunk_start);
  p = put_u64(p, w->chunk_end);
  p = put_u64(p, ulen);
  tw__put_u32(p, ucrc);
  p = put_str(p + 4, comp, clen);
  put_u64(p, rlen);
  out_commit(w, start, hdr_len);
  if (!w->opts.no_crc)
    w->data_crc = w->opts.compression == TW_TRACE_COMPRESSION_NONE
                      ? tw__trace_crc32_combine(w->data_crc, ucrc, rlen)
                      : tw__trace_crc32(w->data_crc, records, rlen);
  w->pos += rlen;
  if (inline_records) {
    memcpy(buf_extend(&w->out, rlen), records, rlen);
  } else {
    int rc = flush_out(w, err);
    if (rc == TW_OK)
      rc = write_all(w, records, rlen, err);
    if (rc != TW_OK)
      return rc;
  }

  /* Message indexes, remembering where each went. */
  uint64_t mi_start = w->pos;
  uint8_t *ci = buf_extend(&w->chunk_idx, TW__REC_HDR + ci_content);
  uint8_t *q = put_hdr(ci, TW__OP_CHUNK_INDEX, ci_content);
  q = put_u64(q, w->chunk_start);
  q = put_u64(q, w->chunk_end);
  q = put_u64(q, chunk_off);
  q = put_u64(q, hdr_len + (uint64_t)rlen);
  tw__put_u32(q, (uint32_t)(10 * w->ntouched));
  q += 4;
  for (size_t i = 0; i < w->ntouched; i++) {
    uint16_t id = w->touched[i];
    wchannel *c = &w->channels[id - 1];
    tw__put_u16(q, id);
    q = put_u64(q + 2, w->pos);
    size_t len = mi_record_len(c);
    uint8_t *m = (uint8_t *)w->out.data + w->out.len;
    uint8_t *e = put_hdr(m, TW__OP_MESSAGE_INDEX, len - TW__REC_HDR);
    tw__put_u16(e, id);
    tw__put_u32(e + 2, (uint32_t)c->idx.len);
    memcpy(e + 6, c->idx.data, c->idx.len);
    w->out.len += len;
    w->out.data[w->out.len] = '\0';
    out_commit(w, m, len);
    tw_buf_reset(&c->idx);
  }
  q = put_u64(q, w->pos - mi_start);
  q = put_str(q, comp, clen);
  q = put_u64(q, rlen);
  put_u64(q, ulen);

  w->chunk_count++;
  tw_buf_reset(&w->chunk);
  w->ntouched = 0;
  w->chunk_msgs = 0;
  return maybe_flush(w, err);
}

/* --- Opening and closing -------------------------------------------------- */

void tw_trace_writer_opts_init(tw_trace_writer_opts *o) {
  memset(o, 0, sizeof *o);
  o->compression = TW_TRACE_COMPRESSION_ZSTD;
  o->zstd_level = TW_TRACE_ZSTD_LEVEL_DEFAULT;
  o->chunk_size = TW_TRACE_CHUNK_SIZE_DEFAULT;
}

/* Opens and locks the partial file. A file whose lock is free was left by
 * a crashed writer and is replaced; a file that was renamed or replaced
 * between our open and our lock is not ours, so we open again. */
static int open_partial(tw_trace_writer *w, tw_err *err) {
  for (int attempt = 0; attempt < 8; attempt++) {
    int fd = open(w->partial, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
      return tw_err_sys(err, errno, "%s: cannot create", w->partial);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      close(fd);
      if (e == EWOULDBLOCK)
        return tw_err_set(err, TW_EBUSY, "%s: another writer is writing it",
                          w->partial);
      return tw_err_sys(err, e, "%s: cannot lock", w->partial);
    }
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(w->partial, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      if (ftruncate(fd, 0) != 0) {
        int rc = tw_err_sys(err, errno, "%s: cannot truncate", w->partial);
        close(fd);
        return rc;
      }
      w->fd = fd;
      return TW_OK;
    }
    close(fd);
  }
  return tw_err_set(err, TW_EBUSY, "%s: keeps changing under us", w->partial);
}

static void writer_free(tw_trace_writer *w) {
  for (size_t i = 0; i < w->nchannels; i++) {
    tw_buf_fini(&w->channels[i].rec);
    tw_buf_fini(&w->channels[i].idx);
  }
  for (size_t i = 0; i < w->nschemas; i++)
    tw_buf_fini(&w->schemas[i].rec);
  tw_free(w->channels);
  tw_free(w->schemas);
  tw_free(w->touched);
  tw_buf_fini(&w->out);
  tw_buf_fini(&w->chunk);
  tw_buf_fini(&w->chunk_idx);
  tw_buf_fini(&w->att_idx);
  tw_buf_fini(&w->meta_idx);
  tw_buf_fini(&w->zbuf);
  tw__trace_zstd_cctx_free(w->cctx);
  tw_free(w->path);
  tw_free(w->partial);
  tw_free(w);
}

/* Removes the partial file, closes and frees. */
static void discard(tw_trace_writer *w) {
  if (w->fd >= 0) {
    (void)unlink(w->partial);
    close(w->fd);
  }
  writer_free(w);
}

static int check_opts(const tw_trace_writer_opts *o, tw_err *err) {
  if (o->compression != TW_TRACE_COMPRESSION_NONE &&
      o->compression != TW_TRACE_COMPRESSION_ZSTD)
    return tw_err_set(err, TW_EINVAL, "trace writer: unknown compression %d",
                      (int)o->compression);
  if (o->compression == TW_TRACE_COMPRESSION_ZSTD &&
      (o->zstd_level < -7 || o->zstd_level > 19))
    return tw_err_set(err, TW_EINVAL,
                      "trace writer: zstd level %d outside -7..19",
                      o->zstd_level);
  if (o->chunk_size > ((size_t)1 << 40))
    return tw_err_set(err, TW_EINVAL, "trace writer: chunk size %zu too large",
                      o->chunk_size);
  return TW_OK;
}

/* Emits the magic and the Header. */
static int start_file(tw_trace_writer *w, const char *profile,
                      const char *library, tw_err *err) {
  size_t np = strlen(profile), nl = strlen(library);
  if (np > UINT32_MAX || nl > UINT32_MAX)
    return tw_err_set(err, TW_EINVAL, "trace writer: header string too long");
  size_t n = TW__MAGIC_LEN + TW__REC_HDR + 4 + np + 4 + nl;
  uint8_t *start = buf_extend(&w->out, n);
  if (start == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
  tw__put_magic(start);
  uint8_t *p = put_hdr(start + TW__MAGIC_LEN, TW__OP_HEADER, 8 + np + nl);
  p = put_str(p, profile, np);
  put_str(p, library, nl);
  out_commit(w, start, n);
  return TW_OK;
}

int tw_trace_writer_open(const char *path, const tw_trace_writer_opts *opts,
                         tw_trace_writer **out, tw_err *err) {
  tw_trace_writer_opts o;
  if (opts != NULL)
    o = *opts;
  else
    tw_trace_writer_opts_init(&o);
  if (o.chunk_size == 0)
    o.chunk_size = TW_TRACE_CHUNK_SIZE_DEFAULT;
  if (path == NULL || path[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "trace writer: empty path");
  int rc = check_opts(&o, err);
  if (rc != TW_OK)
    return rc;
  const char *profile = o.profile ? o.profile : "";
  const char *library = o.library ? o.library : "twin " TW_VERSION_STRING;
  o.profile = o.library = NULL; /* borrowed only until we return */

  tw_trace_writer *w = tw_calloc(1, sizeof *w);
  if (w == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  w->fd = -1;
  w->opts = o;
  tw_err_init(&w->failed);
  tw_buf name = TW_BUF_INIT;
  w->path = tw_strdup(path);
  if (w->path == NULL || tw_buf_printf(&name, "%s.partial", path) != TW_OK) {
    tw_buf_fini(&name);
    writer_free(w);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  }
  w->partial = tw_buf_take(&name, NULL);
  if (w->partial == NULL) {
    writer_free(w);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
  }
  if (o.compression == TW_TRACE_COMPRESSION_ZSTD) {
    w->cctx = tw__trace_zstd_cctx_new();
    if (w->cctx == NULL) {
      writer_free(w);
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
    }
  }
  rc = start_file(w, profile, library, err);
  if (rc == TW_OK)
    rc = open_partial(w, err);
  if (rc != TW_OK) {
    discard(w);
    return rc;
  }
  *out = w;
  return TW_OK;
}

/* DataEnd, summary, summary offsets, footer, magic. */
static int write_tail(tw_trace_writer *w, tw_err *err) {
  uint8_t *de = buf_extend(&w->out, TW__REC_HDR + 4);
  if (de == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
  tw__put_u32(put_hdr(de, TW__OP_DATA_END, 4),
              w->opts.no_crc ? 0 : w->data_crc);
  w->pos += TW__REC_HDR + 4;

  tw_buf s = TW_BUF_INIT;
  uint64_t summary_start = 0, offsets_start = 0;
  if (!w->opts.no_summary) {
    summary_start = w->pos;
    struct {
      uint8_t op;
      uint64_t start, len;
    } groups[6];
    size_t ngroups = 0;
    size_t stats_len = 8 + 2 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 10 * w->nchannels;
    size_t need = TW__REC_HDR + stats_len + w->chunk_idx.len + w->att_idx.len +
                  w->meta_idx.len + (size_t)6 * (TW__REC_HDR + 17) +
                  TW__TAIL_LEN;
    for (size_t i = 0; i < w->nschemas; i++)
      need += w->schemas[i].rec.len;
    for (size_t i = 0; i < w->nchannels; i++)
      need += w->channels[i].rec.len;
    if (tw_buf_reserve(&s, need) != TW_OK)
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
#define GROUP_BEGIN(opcode)                                                    \
  do {                                                                         \
    groups[ngroups].op = (opcode);                                             \
    groups[ngroups].start = s.len;                                             \
  } while (0)
#define GROUP_END()                                                            \
  do {                                                                         \
    groups[ngroups].len = s.len - groups[ngroups].start;                       \
    if (groups[ngroups].len != 0)                                              \
      ngroups++;                                                               \
  } while (0)
    GROUP_BEGIN(TW__OP_SCHEMA);
    for (size_t i = 0; i < w->nschemas; i++)
      tw_buf_append(&s, w->schemas[i].rec.data, w->schemas[i].rec.len);
    GROUP_END();
    GROUP_BEGIN(TW__OP_CHANNEL);
    for (size_t i = 0; i < w->nchannels; i++)
      tw_buf_append(&s, w->channels[i].rec.data, w->channels[i].rec.len);
    GROUP_END();
    GROUP_BEGIN(TW__OP_STATISTICS);
    uint8_t *p = put_hdr(buf_extend(&s, TW__REC_HDR + stats_len),
                         TW__OP_STATISTICS, stats_len);
    p = put_u64(p, w->message_count);
    tw__put_u16(p, (uint16_t)w->nschemas);
    tw__put_u32(p + 2, (uint32_t)w->nchannels);
    tw__put_u32(p + 6, w->attachment_count);
    tw__put_u32(p + 10, w->metadata_count);
    tw__put_u32(p + 14, w->chunk_count);
    p = put_u64(p + 18, w->message_count ? w->message_start : 0);
    p = put_u64(p, w->message_end);
    tw__put_u32(p, (uint32_t)(10 * w->nchannels));
    p += 4;
    for (size_t i = 0; i < w->nchannels; i++) {
      tw__put_u16(p, (uint16_t)(i + 1));
      p = put_u64(p + 2, w->channels[i].count);
    }
    GROUP_END();
    GROUP_BEGIN(TW__OP_CHUNK_INDEX);
    tw_buf_append(&s, w->chunk_idx.data, w->chunk_idx.len);
    GROUP_END();
    GROUP_BEGIN(TW__OP_ATTACHMENT_INDEX);
    tw_buf_append(&s, w->att_idx.data, w->att_idx.len);
    GROUP_END();
    GROUP_BEGIN(TW__OP_METADATA_INDEX);
    tw_buf_append(&s, w->meta_idx.data, w->meta_idx.len);
    GROUP_END();
#undef GROUP_BEGIN
#undef GROUP_END
    offsets_start = summary_start + s.len;
    for (size_t i = 0; i < ngroups; i++) {
      uint8_t *g =
          put_hdr(buf_extend(&s, TW__REC_HDR + 17), TW__OP_SUMMARY_OFFSET, 17);
      g[0] = groups[i].op;
      g = put_u64(g + 1, summary_start + groups[i].start);
      put_u64(g, groups[i].len);
    }
  }
  size_t crc_from = s.len;
  if (tw_buf_reserve(&s, TW__TAIL_LEN) != TW_OK) {
    tw_buf_fini(&s);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
  }
  uint8_t *f =
      put_hdr(buf_extend(&s, TW__TAIL_LEN), TW__OP_FOOTER, TW__FOOTER_LEN);
  f = put_u64(f, summary_start);
  f = put_u64(f, offsets_start);
  uint32_t crc = 0;
  if (!w->opts.no_crc && !w->opts.no_summary)
    crc = tw__trace_crc32(0, s.data, crc_from + TW__REC_HDR + 16);
  tw__put_u32(f, crc);
  tw__put_magic(f + 4);

  int rc = flush_out(w, err);
  if (rc == TW_OK)
    rc = write_all(w, s.data, s.len, err);
  tw_buf_fini(&s);
  return rc;
}

int tw_trace_writer_close(tw_trace_writer *w, tw_err *err) {
  if (w == NULL)
    return TW_OK;
  int rc = w->failed.code != TW_OK ? broken(w, err) : TW_OK;
  if (rc == TW_OK)
    rc = finish_chunk(w, err);
  if (rc == TW_OK)
    rc = write_tail(w, err);
  if (rc == TW_OK && !w->opts.no_sync && fsync(w->fd) != 0)
    rc = tw_err_sys(err, errno, "%s: fsync failed", w->partial);
  /* Renamed while still locked, so no other writer can take the file. */
  if (rc == TW_OK && rename(w->partial, w->path) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot rename '%s' into place", w->path,
                    w->partial);
  if (rc != TW_OK) {
    discard(w);
    return rc;
  }
  if (close(w->fd) != 0)
    rc = tw_err_sys(err, errno, "%s: close failed", w->path);
  w->fd = -1;
  if (rc == TW_OK && !w->opts.no_sync)
    rc = tw_file_sync_dir(w->path, err);
  writer_free(w);
  return rc;
}

void tw_trace_writer_abort(tw_trace_writer *w) {
  if (w != NULL)
    discard(w);
}

bool tw_trace_writer_failed(const tw_trace_writer *w) {
  return w->failed.code != TW_OK;
}

int tw_trace_writer_flush(tw_trace_writer *w, tw_err *err) {
  if (w->failed.code != TW_OK)
    return broken(w, err);
  int rc = finish_chunk(w, err);
  return rc != TW_OK ? rc : flush_out(w, err);
}

/* --- Schemas and channels --------------------------------------------------
 */

static bool fits_u32(size_t n) { return n <= UINT32_MAX; }

/* Builds the Schema record for id into rec. */
static int schema_record(const char *name, const char *encoding,
                         const void *data, size_t len, uint16_t id,
                         tw_buf *rec) {
  size_t nn = strlen(name), ne = strlen(encoding);
  if (!fits_u32(nn) || !fits_u32(ne) || !fits_u32(len))
    return TW_EINVAL;
  size_t content = 2 + 4 + nn + 4 + ne + 4 + len;
  uint8_t *p = buf_extend(rec, TW__REC_HDR + content);
  if (p == NULL)
    return TW_ENOMEM;
  p = put_hdr(p, TW__OP_SCHEMA, content);
  tw__put_u16(p, id);
  p = put_str(p + 2, name, nn);
  p = put_str(p, encoding, ne);
  put_str(p, data, len);
  return TW_OK;
}

/* Id of a registered schema whose record equals rec but for the id, or 0. */
static uint16_t schema_find(const tw_trace_writer *w, const tw_buf *rec) {
  const size_t skip = TW__REC_HDR + 2;
  for (size_t i = 0; i < w->nschemas; i++) {
    const tw_buf *o = &w->schemas[i].rec;
    if (o->len == rec->len &&
        memcmp(o->data + skip, rec->data + skip, rec->len - skip) == 0)
      return (uint16_t)(i + 1);
  }
  return 0;
}

static int channel_record(const char *topic, const char *encoding, uint16_t id,
                          uint16_t schema_id, const tw_trace_kv *kv, size_t n,
                          tw_buf *rec) {
  size_t nt = strlen(topic), ne = strlen(encoding);
  size_t nm = map_bytes(kv, n);
  if (!fits_u32(nt) || !fits_u32(ne) || nm == SIZE_MAX)
    return TW_EINVAL;
  size_t content = 2 + 2 + 4 + nt + 4 + ne + 4 + nm;
  uint8_t *p = buf_extend(rec, TW__REC_HDR + content);
  if (p == NULL)
    return TW_ENOMEM;
  p = put_hdr(p, TW__OP_CHANNEL, content);
  tw__put_u16(p, id);
  tw__put_u16(p + 2, schema_id);
  p = put_str(p + 4, topic, nt);
  p = put_str(p, encoding, ne);
  put_map(p, kv, n, nm);
  return TW_OK;
}

/* Registers a schema and, when topic is not NULL, a channel using it, as
 * one step: either both are added (and emitted) or nothing changes. */
static int add_schema_channel(tw_trace_writer *w, const char *name,
                              const char *schema_encoding, const void *data,
                              size_t len, const char *topic,
                              const char *message_encoding,
                              uint16_t given_schema, const tw_trace_kv *kv,
                              size_t nkv, uint16_t *schema_id,
                              uint16_t *channel_id, tw_err *err) {
  if (w->failed.code != TW_OK)
    return broken(w, err);
  tw_buf srec = TW_BUF_INIT, crec = TW_BUF_INIT;
  uint16_t sid = given_schema;
  bool new_schema = false;
  int rc = TW_OK;
  if (name != NULL) {
    if (w->nschemas < UINT16_MAX)
      rc = schema_record(name, schema_encoding, data, len,
                         (uint16_t)(w->nschemas + 1), &srec);
    else
      rc = schema_record(name, schema_encoding, data, len, 0, &srec);
    if (rc == TW_OK) {
      sid = schema_find(w, &srec);
      new_schema = sid == 0;
      if (new_schema && w->nschemas >= UINT16_MAX)
        rc = TW_ELIMIT;
      if (new_schema)
        sid = (uint16_t)(w->nschemas + 1);
    }
  }
  if (rc == TW_OK && topic != NULL) {
    if (w->nchannels >= UINT16_MAX)
      rc = TW_ELIMIT;
    else
      rc = channel_record(topic, message_encoding, (uint16_t)(w->nchannels + 1),
                          sid, kv, nkv, &crec);
  }
  size_t emit = (new_schema ? srec.len : 0) + crec.len;
  if (rc == TW_OK && new_schema)
    rc = grow((void **)&w->schemas, &w->capschemas, w->nschemas, 1,
              sizeof *w->schemas);
  if (rc == TW_OK && topic != NULL) {
    size_t cap = w->capchannels;
    rc = grow((void **)&w->channels, &w->capchannels, w->nchannels, 1,
              sizeof *w->channels);
    if (rc == TW_OK && w->capchannels != cap) {
      uint16_t *t = tw_reallocarray(w->touched, w->capchannels, sizeof *t);
      if (t == NULL) {
        rc = TW_ENOMEM; /* the larger channel array stays; harmless */
        w->capchannels = cap;
      } else {
        w->touched = t;
      }
    }
  }
  if (rc == TW_OK && tw_buf_reserve(&w->out, emit) != TW_OK)
    rc = TW_ENOMEM;
  if (rc != TW_OK) {
    tw_buf_fini(&srec);
    tw_buf_fini(&crec);
    if (rc == TW_ELIMIT)
      return tw_err_set(err, rc, "%s: too many %s (65535 at most)", w->partial,
                        topic != NULL ? "channels" : "schemas");
    if (rc == TW_EINVAL)
      return tw_err_set(err, rc, "%s: a string or map longer than 4 GiB",
                        w->partial);
    return tw_err_set(err, rc, "%s: out of memory", w->partial);
  }
  if (new_schema) {
    uint8_t *p = buf_extend(&w->out, srec.len);
    memcpy(p, srec.data, srec.len);
    out_commit(w, p, srec.len);
    w->schemas[w->nschemas++].rec = srec;
  } else {
    tw_buf_fini(&srec);
  }
  if (topic != NULL) {
    uint8_t *p = buf_extend(&w->out, crec.len);
    memcpy(p, crec.data, crec.len);
    out_commit(w, p, crec.len);
    wchannel *c = &w->channels[w->nchannels++];
    memset(c, 0, sizeof *c);
    c->rec = crec;
    *channel_id = (uint16_t)w->nchannels;
  }
  if (schema_id != NULL)
    *schema_id = sid;
  return maybe_flush(w, err);
}

int tw_trace_writer_add_schema(tw_trace_writer *w, const char *name,
                               const char *encoding, const void *data,
                               size_t len, uint16_t *id, tw_err *err) {
  if (name == NULL || encoding == NULL || (data == NULL && len != 0))
    return tw_err_set(err, TW_EINVAL, "%s: schema: missing name or encoding",
                      w->partial);
  return add_schema_channel(w, name, encoding, data, len, NULL, NULL, 0, NULL,
                            0, id, NULL, err);
}

int tw_trace_writer_add_channel(tw_trace_writer *w, const char *topic,
                                const char *message_encoding,
                                uint16_t schema_id, const tw_trace_kv *metadata,
                                size_t n, uint16_t *id, tw_err *err) {
  if (topic == NULL || message_encoding == NULL || (metadata == NULL && n))
    return tw_err_set(err, TW_EINVAL,
                      "%s: channel: missing topic or message encoding",
                      w->partial);
  if (schema_id > w->nschemas)
    return tw_err_set(err, TW_EINVAL, "%s: channel '%s': no schema %u",
                      w->partial, topic, (unsigned)schema_id);
  return add_schema_channel(w, NULL, NULL, NULL, 0, topic, message_encoding,
                            schema_id, metadata, n, NULL, id, err);
}

int tw_trace_writer_add_port(tw_trace_writer *w, const tw_trace_port *port,
                             tw_trace_encoding encoding, uint16_t *channel,
                             tw_err *err) {
  if (port == NULL || port->topic == NULL || port->topic[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "%s: port without a topic", w->partial);
  if (port->size == 0 || port->size > ((size_t)1 << 24))
    return tw_err_set(err, TW_EINVAL, "%s: port '%s': size %zu outside 1..%zu",
                      w->partial, port->topic, port->size, (size_t)1 << 24);
  if (encoding != TW_TRACE_ENCODING_JSON && encoding != TW_TRACE_ENCODING_CDR)
    return tw_err_set(err, TW_EINVAL, "%s: port '%s': unknown encoding %d",
                      w->partial, port->topic, (int)encoding);
  const char *unit = port->unit ? port->unit : "";
  tw_buf schema = TW_BUF_INIT;
  const char *name, *senc, *menc;
  int rc = tw__trace_port_schema(unit, port->size, encoding, &schema, &name,
                                 &senc, &menc);
  char size_str[32];
  (void)snprintf(size_str, sizeof size_str, "%zu", port->size);
  tw_trace_kv kv[2] = {{"twin.unit", unit}, {"twin.size", size_str}};
  uint16_t id = 0;
  if (rc != TW_OK)
    rc = tw_err_set(err, rc, "%s: out of memory", w->partial);
  else
    rc = add_schema_channel(w, name, senc, schema.data, schema.len, port->topic,
                            menc, 0, kv, 2, NULL, &id, err);
  tw_buf_fini(&schema);
  if (rc != TW_OK && id == 0)
    return rc;
  w->channels[id - 1].port_size = port->size;
  w->channels[id - 1].port_encoding = encoding;
  *channel = id;
  return rc;
}

int tw_trace_writer_add_metadata(tw_trace_writer *w, const char *name,
                                 const tw_trace_kv *kv, size_t n, tw_err *err) {
  if (w->failed.code != TW_OK)
    return broken(w, err);
  if (name == NULL || (kv == NULL && n != 0))
    return tw_err_set(err, TW_EINVAL, "%s: metadata without a name",
                      w->partial);
  size_t nn = strlen(name), nm = map_bytes(kv, n);
  if (!fits_u32(nn) || nm == SIZE_MAX)
    return tw_err_set(err, TW_EINVAL, "%s: metadata '%s' too large", w->partial,
                      name);
  size_t content = 4 + nn + 4 + nm;
  size_t icontent = 8 + 8 + 4 + nn;
  if (w->metadata_count == UINT32_MAX)
    return tw_err_set(err, TW_ELIMIT, "%s: too many metadata records",
                      w->partial);
  if (tw_buf_reserve(&w->out, TW__REC_HDR + content) != TW_OK ||
      tw_buf_reserve(&w->meta_idx, TW__REC_HDR + icontent) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
  uint64_t off = w->pos;
  uint8_t *start = buf_extend(&w->out, TW__REC_HDR + content);
  uint8_t *p = put_hdr(start, TW__OP_METADATA, content);
  p = put_str(p, name, nn);
  put_map(p, kv, n, nm);
  out_commit(w, start, TW__REC_HDR + content);
  p = put_hdr(buf_extend(&w->meta_idx, TW__REC_HDR + icontent),
              TW__OP_METADATA_INDEX, icontent);
  p = put_u64(p, off);
  p = put_u64(p, TW__REC_HDR + content);
  put_str(p, name, nn);
  w->metadata_count++;
  return maybe_flush(w, err);
}

int tw_trace_writer_add_attachment(tw_trace_writer *w, const char *name,
                                   const char *media_type, uint64_t log_time,
                                   uint64_t create_time, const void *data,
                                   size_t len, tw_err *err) {
  if (w->failed.code != TW_OK)
    return broken(w, err);
  if (name == NULL || media_type == NULL || (data == NULL && len != 0))
    return tw_err_set(err, TW_EINVAL,
                      "%s: attachment without a name or media type",
                      w->partial);
  size_t nn = strlen(name), nt = strlen(media_type);
  if (!fits_u32(nn) || !fits_u32(nt))
    return tw_err_set(err, TW_EINVAL, "%s: attachment '%s': name too long",
                      w->partial, name);
  if (w->attachment_count == UINT32_MAX)
    return tw_err_set(err, TW_ELIMIT, "%s: too many attachments", w->partial);
  size_t head = TW__REC_HDR + 8 + 8 + 4 + nn + 4 + nt + 8;
  uint64_t content = head - TW__REC_HDR + (uint64_t)len + 4;
  size_t icontent = 8 + 8 + 8 + 8 + 8 + 4 + nn + 4 + nt;
  if (tw_buf_reserve(&w->out, head + 4) != TW_OK ||
      tw_buf_reserve(&w->att_idx, TW__REC_HDR + icontent) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
  uint64_t off = w->pos;
  uint8_t *start = buf_extend(&w->out, head);
  uint8_t *p = put_hdr(start, TW__OP_ATTACHMENT, content);
  p = put_u64(p, log_time);
  p = put_u64(p, create_time);
  p = put_str(p, name, nn);
  p = put_str(p, media_type, nt);
  put_u64(p, len);
  uint32_t crc = 0;
  if (!w->opts.no_crc) {
    crc = tw__trace_crc32(0, start + TW__REC_HDR, head - TW__REC_HDR);
    crc = tw__trace_crc32(crc, data, len);
  }
  out_commit(w, start, head);
  int rc = emit_large(w, data, len, false, 0, err);
  if (rc != TW_OK)
    return rc;
  uint8_t crcb[4];
  tw__put_u32(crcb, crc);
  rc = emit_large(w, crcb, 4, false, 0, err);
  if (rc != TW_OK)
    return rc;
  p = put_hdr(buf_extend(&w->att_idx, TW__REC_HDR + icontent),
              TW__OP_ATTACHMENT_INDEX, icontent);
  p = put_u64(p, off);
  p = put_u64(p, TW__REC_HDR + content);
  p = put_u64(p, log_time);
  p = put_u64(p, create_time);
  p = put_u64(p, len);
  p = put_str(p, name, nn);
  put_str(p, media_type, nt);
  w->attachment_count++;
  return maybe_flush(w, err);
}

/* --- Messages --------------------------------------------------------------
 */

/* Reserves a message record of body bytes in the chunk (finishing the
 * chunk first when it would overflow) and returns where its body goes;
 * nothing is committed until commit_message. */
static uint8_t *reserve_message(tw_trace_writer *w, wchannel *c, size_t body,
                                int *rc, tw_err *err) {
  size_t rec = TW__REC_HDR + TW__MSG_FIXED + body;
  size_t limit = w->opts.chunk_size;
  if ((w->chunk.len > 0 &&
       (w->chunk.len >= limit || rec > limit - w->chunk.len)) ||
      c->idx.len > UINT32_MAX - 16) {
    *rc = finish_chunk(w, err);
    if (*rc != TW_OK)
      return NULL;
  }
  if (tw_buf_reserve(&w->chunk, rec) != TW_OK ||
      tw_buf_reserve(&c->idx, 16) != TW_OK) {
    *rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", w->partial);
    return NULL;
  }
  *rc = TW_OK;
  return (uint8_t *)w->chunk.data + w->chunk.len + TW__REC_HDR + TW__MSG_FIXED;
}

/* Fills in the header of the message whose body of len bytes is in place
 * and accounts for it. */
static void commit_message(tw_trace_writer *w, uint16_t id, uint32_t sequence,
                           uint64_t log_time, uint64_t publish_time,
                           size_t len) {
  wchannel *c = &w->channels[id - 1];
  uint8_t *p = (uint8_t *)w->chunk.data + w->chunk.len;
  p = put_hdr(p, TW__OP_MESSAGE, TW__MSG_FIXED + (uint64_t)len);
  tw__put_u16(p, id);
  tw__put_u32(p + 2, sequence);
  tw__put_u64(p + 6, log_time);
  tw__put_u64(p + 14, publish_time);
  if (c->idx.len == 0)
    w->touched[w->ntouched++] = id;
  uint8_t *e = (uint8_t *)c->idx.data + c->idx.len;
  tw__put_u64(e, log_time);
  tw__put_u64(e + 8, w->chunk.len);
  c->idx.len += 16;
  w->chunk.len += TW__REC_HDR + TW__MSG_FIXED + len;
  if (w->chunk_msgs == 0 || log_time < w->chunk_start)
    w->chunk_start = log_time;
  if (w->chunk_msgs == 0 || log_time > w->chunk_end)
    w->chunk_end = log_time;
  w->chunk_msgs++;
  if (w->message_count == 0 || log_time < w->message_start)
    w->message_start = log_time;
  if (w->message_count == 0 || log_time > w->message_end)
    w->message_end = log_time;
  w->message_count++;
  c->count++;
}

int tw_trace_writer_write(tw_trace_writer *w, uint16_t channel,
                          uint32_t sequence, uint64_t log_time,
                          uint64_t publish_time, const void *data, size_t len,
                          tw_err *err) {
  if (w->failed.code != TW_OK)
    return broken(w, err);
  if (channel == 0 || channel > w->nchannels)
    return tw_err_set(err, TW_EINVAL, "%s: no channel %u", w->partial,
                      (unsigned)channel);
  if (len > SIZE_MAX / 2 || (data == NULL && len != 0))
    return tw_err_set(err, TW_EINVAL, "%s: bad message data", w->partial);
  int rc;
  uint8_t *body = reserve_message(w, &w->channels[channel - 1], len, &rc, err);
  if (body == NULL)
    return rc;
  if (len != 0)
    memcpy(body, data, len);
  commit_message(w, channel, sequence, log_time, publish_time, len);
  return TW_OK;
}

int tw_trace_writer_write_port(tw_trace_writer *w, uint16_t channel,
                               uint64_t log_time, double t, const double *value,
                               size_t n, tw_err *err) {
  if (w->failed.code != TW_OK)
    return broken(w, err);
  if (channel == 0 || channel > w->nchannels ||
      w->channels[channel - 1].port_size == 0)
    return tw_err_set(err, TW_EINVAL, "%s: channel %u is not a port",
                      w->partial, (unsigned)channel);
  wchannel *c = &w->channels[channel - 1];
  if (n != c->port_size || value == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "%s: channel %u: %zu values for a port of size %zu",
                      w->partial, (unsigned)channel, n, c->port_size);
  int rc;
  size_t max = tw__trace_port_body_max(c->port_encoding, n);
  uint8_t *body = reserve_message(w, c, max, &rc, err);
  if (body == NULL)
    return rc;
  size_t len = tw__trace_port_encode(c->port_encoding, t, value, n, body);
  commit_message(w, channel, (uint32_t)c->count, log_time, log_time, len);
  return TW_OK;
}
