/*
 * reader.c - opening an MCAP file: both magics, the Header, the Footer, the
 * summary (or a linear scan of the data section), and the tables iter.c
 * walks; tw_trace_reader_verify.
 *
 * The file is hostile input. Invariants the rest of src/trace relies on
 * once open succeeds:
 * - every chunk [offset, offset + length) and its message index region
 *   [offset + length, + mi_len) lie in the data section, and the regions
 *   of different chunks do not overlap, so reading every chunk and every
 *   index reads each byte of the file at most once;
 * - each chunk's (channel, Message Index offset) pairs are sorted by
 *   offset with no two equal, so a Message Index record must end before
 *   the next one starts;
 * - chunk start <= end; every schema and channel id appears once in the
 *   tables, which are sorted by id;
 * - loose messages (outside chunks; only in files without chunk indexes)
 *   are sorted by (log_time, offset) and lie in the data section.
 * A record's length is checked against what remains of its section before
 * anything is read or allocated for it, and against max_record; a chunk's
 * uncompressed size against max_chunk.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace_int.h"
#include "twin/alloc.h"
#include "twin/file.h"

#define NIDS 65536

void tw_trace_reader_opts_init(tw_trace_reader_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_record = (uint64_t)1 << 30;
  o->max_chunk = (uint64_t)256 << 20;
  o->max_loaded = (uint64_t)1 << 30;
}

void tw__trace_bad_record(const tw_trace_reader *r, tw_err *err, int code,
                          uint64_t off, const char *fmt, ...) {
  if (err == NULL || err->code != TW_OK)
    return;
  char msg[TW_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  (void)tw_err_record(err, code, "%s: at byte %llu: %s", r->name,
                      (unsigned long long)off, msg);
}

#define BAD(off, ...) tw__trace_bad(r, err, TW_EPARSE, (off), __VA_ARGS__)

#define NOMEM() tw_err_set(err, TW_ENOMEM, "%s: out of memory", r->name)

/* --- Reading bytes ----------------------------------------------------------
 */

static int read_exact(tw_trace_reader *r, uint64_t off, void *dst, size_t n,
                      tw_err *err) {
  if (off > r->size || n > r->size - off)
    return BAD(off, "unexpected end of file (%zu bytes wanted)", n);
  if (r->mem != NULL) {
    if (n != 0)
      memcpy(dst, r->mem + off, n);
    return TW_OK;
  }
  size_t done = 0;
  while (done < n) {
    ssize_t got =
        pread(r->fd, (char *)dst + done, n - done, (off_t)(off + done));
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return tw_err_sys(err, errno, "%s: read failed", r->name);
    }
    if (got == 0)
      return tw_err_set(err, TW_EIO, "%s: the file shrank while being read",
                        r->name);
    done += (size_t)got;
  }
  return TW_OK;
}

int tw__trace_read_at(tw_trace_reader *r, uint64_t off, uint64_t len,
                      tw_buf *buf, const uint8_t **out, tw_err *err) {
  *out = NULL;
  if (off > r->size || len > r->size - off) {
    tw__trace_bad_record(r, err, TW_EPARSE, off,
                         "unexpected end of file (%llu bytes wanted)",
                         (unsigned long long)len);
    return TW_EPARSE;
  }
  if (r->mem != NULL) {
    *out = r->mem + off;
    return TW_OK;
  }
  tw_buf_reset(buf);
  if (tw_buf_reserve(buf, (size_t)len) != TW_OK) {
    (void)tw_err_record(err, TW_ENOMEM, "%s: out of memory", r->name);
    return TW_ENOMEM;
  }
  int rc = read_exact(r, off, buf->data, (size_t)len, err);
  if (rc != TW_OK)
    return rc;
  buf->len = (size_t)len;
  *out = (const uint8_t *)buf->data;
  return TW_OK;
}

/* Reads the opcode and length of the record at off, which must end by
 * limit and respect max_record. */
static int read_record_header(tw_trace_reader *r, uint64_t off, uint64_t limit,
                              uint8_t *op, uint64_t *len, tw_err *err) {
  *op = 0;
  *len = 0;
  if (off > limit || limit - off < TW__REC_HDR)
    return BAD(off, "truncated record (section ends at byte %llu)",
               (unsigned long long)limit);
  uint8_t h[TW__REC_HDR];
  int rc = read_exact(r, off, h, sizeof h, err);
  if (rc != TW_OK)
    return rc;
  *op = h[0];
  *len = tw__get_u64(h + 1);
  if (*len > limit - off - TW__REC_HDR)
    return BAD(off,
               "record of opcode 0x%02x and %llu bytes runs past byte %llu",
               h[0], (unsigned long long)*len, (unsigned long long)limit);
  if (*len > r->opts.max_record)
    return tw__trace_bad(r, err, TW_ELIMIT, off,
                         "record of %llu bytes exceeds the limit of %llu",
                         (unsigned long long)*len,
                         (unsigned long long)r->opts.max_record);
  return TW_OK;
}

/* --- Tables ------------------------------------------------------------------
 */

static int grow(void **arr, size_t *cap, size_t len, size_t sz) {
  if (len < *cap)
    return TW_OK;
  size_t c = *cap ? *cap * 2 : 16;
  void *p = tw_reallocarray(*arr, c, sz);
  if (p == NULL)
    return TW_ENOMEM;
  *arr = p;
  *cap = c;
  return TW_OK;
}

static const char *dup_str(tw_trace_reader *r, tw__str s) {
  return tw_arena_strndup(&r->strings, s.n ? (const char *)s.p : "", s.n);
}

static bool str_eq(const char *a, tw__str s) {
  return strlen(a) == s.n && (s.n == 0 || memcmp(a, s.p, s.n) == 0);
}

/* What a linear scan does with what it finds. */
enum scan_mode {
  SCAN_BUILD, /* add to the tables */
  SCAN_VERIFY /* compare with the tables */
};

static int add_schema(tw_trace_reader *r, tw__cur *c, uint64_t off,
                      enum scan_mode mode, tw_err *err) {
  uint16_t id = tw__cur_u16(c);
  tw__str name = tw__cur_str(c);
  tw__str enc = tw__cur_str(c);
  tw__str data = tw__cur_str(c);
  if (c->bad)
    return BAD(off, "truncated Schema record");
  if (id == 0)
    return TW_OK; /* invalid, and to be ignored (the specification) */
  if (r->schema_ix[id] != 0) {
    const tw_trace_schema *s = &r->schemas[r->schema_ix[id] - 1];
    if (!str_eq(s->name, name) || !str_eq(s->encoding, enc) ||
        s->len != data.n || (data.n && memcmp(s->data, data.p, data.n) != 0))
      return BAD(off, "schema %u defined twice, differently", (unsigned)id);
    return TW_OK;
  }
  if (mode == SCAN_VERIFY)
    return TW_OK;
  if (grow((void **)&r->schemas, &r->capschemas, r->nschemas,
           sizeof *r->schemas) != TW_OK)
    return NOMEM();
  tw_trace_schema *s = &r->schemas[r->nschemas];
  s->id = id;
  s->name = dup_str(r, name);
  s->encoding = dup_str(r, enc);
  s->len = data.n;
  uint8_t *d = tw_arena_alloc(&r->strings, data.n);
  if (s->name == NULL || s->encoding == NULL || d == NULL)
    return NOMEM();
  if (data.n)
    memcpy(d, data.p, data.n);
  s->data = d;
  r->schema_ix[id] = (uint32_t)++r->nschemas;
  return TW_OK;
}

/* Parses a Map<string, string> into an array in the arena. */
static int parse_map(tw_trace_reader *r, tw__cur *c, uint64_t off,
                     const char *what, tw_trace_kv **out, size_t *n,
                     tw_err *err) {
  uint32_t bytes = tw__cur_u32(c);
  const uint8_t *p = tw__cur_take(c, bytes);
  if (p == NULL)
    return BAD(off, "truncated %s record", what);
  size_t count = 0;
  tw__cur m = tw__cur_make(p, bytes);
  while (m.off < m.n && !m.bad) {
    tw__cur_str(&m);
    tw__cur_str(&m);
    count++;
  }
  if (m.bad)
    return BAD(off, "%s record: malformed map", what);
  tw_trace_kv *kv = tw_arena_calloc(&r->strings, count ? count : 1, sizeof *kv);
  if (kv == NULL)
    return NOMEM();
  m = tw__cur_make(p, bytes);
  for (size_t i = 0; i < count; i++) {
    kv[i].key = dup_str(r, tw__cur_str(&m));
    kv[i].value = dup_str(r, tw__cur_str(&m));
    if (kv[i].key == NULL || kv[i].value == NULL)
      return NOMEM();
  }
  *out = kv;
  *n = count;
  return TW_OK;
}

static bool same_channel(const tw_trace_channel *a, const tw_trace_channel *b) {
  if (a->schema_id != b->schema_id || strcmp(a->topic, b->topic) != 0 ||
      strcmp(a->message_encoding, b->message_encoding) != 0 ||
      a->n_metadata != b->n_metadata)
    return false;
  for (size_t i = 0; i < a->n_metadata; i++)
    if (strcmp(a->metadata[i].key, b->metadata[i].key) != 0 ||
        strcmp(a->metadata[i].value, b->metadata[i].value) != 0)
      return false;
  return true;
}

static int add_channel(tw_trace_reader *r, tw__cur *c, uint64_t off,
                       enum scan_mode mode, tw_err *err) {
  tw_trace_channel ch;
  memset(&ch, 0, sizeof ch);
  ch.id = tw__cur_u16(c);
  ch.schema_id = tw__cur_u16(c);
  tw__str topic = tw__cur_str(c);
  tw__str enc = tw__cur_str(c);
  if (c->bad)
    return BAD(off, "truncated Channel record");
  /* The strings go to the arena before we know whether they are needed;
   * a duplicate's copies stay there until close (duplicates are rare). */
  ch.topic = dup_str(r, topic);
  ch.message_encoding = dup_str(r, enc);
  if (ch.topic == NULL || ch.message_encoding == NULL)
    return NOMEM();
  tw_trace_kv *kv = NULL;
  int rc = parse_map(r, c, off, "Channel", &kv, &ch.n_metadata, err);
  if (rc != TW_OK)
    return rc;
  ch.metadata = kv;
  if (r->channel_ix[ch.id] != 0) {
    if (!same_channel(&r->channels[r->channel_ix[ch.id] - 1], &ch))
      return BAD(off, "channel %u defined twice, differently", (unsigned)ch.id);
    return TW_OK;
  }
  if (mode == SCAN_VERIFY)
    return TW_OK;
  if (grow((void **)&r->channels, &r->capchannels, r->nchannels,
           sizeof *r->channels) != TW_OK)
    return NOMEM();
  r->channels[r->nchannels] = ch;
  r->channel_ix[ch.id] = (uint32_t)++r->nchannels;
  return TW_OK;
}

static int add_metadata(tw_trace_reader *r, tw__cur *c, uint64_t off,
                        tw_err *err) {
  tw__str name = tw__cur_str(c);
  if (c->bad)
    return BAD(off, "truncated Metadata record");
  tw_trace_metadata m;
  m.name = dup_str(r, name);
  if (m.name == NULL)
    return NOMEM();
  tw_trace_kv *kv = NULL;
  int rc = parse_map(r, c, off, "Metadata", &kv, &m.n, err);
  if (rc != TW_OK)
    return rc;
  m.kv = kv;
  if (grow((void **)&r->metadata, &r->capmetadata, r->nmetadata,
           sizeof *r->metadata) != TW_OK)
    return NOMEM();
  r->metadata[r->nmetadata++] = m;
  return TW_OK;
}

/* The fields of an Attachment record before its data. */
typedef struct att_fields {
  uint64_t log_time, create_time;
  tw__str name, media_type;
  uint64_t data_len;
  const uint8_t *data;
  uint32_t crc;
  size_t crc_from_end; /* bytes before the CRC field */
} att_fields;

static int parse_attachment(const tw_trace_reader *r, const uint8_t *p,
                            uint64_t len, uint64_t off, att_fields *a,
                            tw_err *err) {
  tw__cur c = tw__cur_make(p, (size_t)len);
  a->log_time = tw__cur_u64(&c);
  a->create_time = tw__cur_u64(&c);
  a->name = tw__cur_str(&c);
  a->media_type = tw__cur_str(&c);
  a->data_len = tw__cur_u64(&c);
  a->data = tw__cur_take(&c, a->data_len);
  a->crc_from_end = c.off;
  a->crc = tw__cur_u32(&c);
  if (c.bad)
    return BAD(off, "truncated Attachment record");
  if (a->crc != 0 && tw__trace_crc32(0, p, a->crc_from_end) != a->crc)
    return BAD(off, "attachment CRC mismatch (stored 0x%08x)", a->crc);
  return TW_OK;
}

static int add_attachment(tw_trace_reader *r, const att_fields *a, uint64_t off,
                          tw_err *err) {
  if (grow((void **)&r->attachments, &r->capattachments, r->nattachments,
           sizeof *r->attachments) != TW_OK)
    return NOMEM();
  tw_trace_attachment *t = &r->attachments[r->nattachments];
  t->name = dup_str(r, a->name);
  t->media_type = dup_str(r, a->media_type);
  if (t->name == NULL || t->media_type == NULL)
    return NOMEM();
  t->log_time = a->log_time;
  t->create_time = a->create_time;
  t->size = a->data_len;
  t->offset = off;
  r->nattachments++;
  return TW_OK;
}

/* --- Chunks
 * -------------------------------------------------------------------- */

typedef struct chunk_fields {
  uint64_t start, end, usize;
  uint32_t crc;
  tw__str compression;
  const uint8_t *records;
  uint64_t rlen;
} chunk_fields;

static int parse_chunk(const tw_trace_reader *r, const uint8_t *p, uint64_t len,
                       uint64_t off, chunk_fields *f, tw_err *err) {
  tw__cur c = tw__cur_make(p, (size_t)len);
  f->start = tw__cur_u64(&c);
  f->end = tw__cur_u64(&c);
  f->usize = tw__cur_u64(&c);
  f->crc = tw__cur_u32(&c);
  f->compression = tw__cur_str(&c);
  f->rlen = tw__cur_u64(&c);
  f->records = tw__cur_take(&c, f->rlen);
  if (c.bad)
    return BAD(off, "truncated Chunk record");
  if (f->start > f->end)
    return BAD(off, "chunk starts (%llu) after it ends (%llu)",
               (unsigned long long)f->start, (unsigned long long)f->end);
  return TW_OK;
}

/* Decompresses a parsed chunk's records into *out. borrow: the records
 * may stay where they are (they outlive *out) when stored uncompressed. */
static int decode_chunk(tw_trace_reader *r, const chunk_fields *f, uint64_t off,
                        bool borrow, tw__loaded *out, tw_err *err) {
  if (f->usize > r->opts.max_chunk)
    return tw__trace_bad(r, err, TW_ELIMIT, off,
                         "chunk of %llu uncompressed bytes exceeds the limit "
                         "of %llu",
                         (unsigned long long)f->usize,
                         (unsigned long long)r->opts.max_chunk);
  out->owned = NULL;
  out->n = (size_t)f->usize;
  if (f->compression.n == 0) {
    if (f->rlen != f->usize)
      return BAD(off, "uncompressed chunk of %llu bytes declares %llu",
                 (unsigned long long)f->rlen, (unsigned long long)f->usize);
    if (borrow) {
      out->data = f->records;
    } else {
      out->owned = tw_alloc(out->n);
      if (out->owned == NULL)
        return NOMEM();
      if (out->n)
        memcpy(out->owned, f->records, out->n);
      out->data = out->owned;
    }
  } else if (str_eq("zstd", f->compression)) {
    if (r->dctx == NULL && (r->dctx = tw__trace_zstd_dctx_new()) == NULL)
      return NOMEM();
    out->owned = tw_alloc(out->n);
    if (out->owned == NULL)
      return NOMEM();
    const char *why = "";
    int rc = tw__trace_zstd_decompress(r->dctx, f->records, (size_t)f->rlen,
                                       out->owned, out->n, &why);
    if (rc != TW_OK) {
      tw__trace_loaded_fini(out);
      return rc == TW_ENOMEM ? NOMEM()
                             : BAD(off, "chunk does not decompress: %s", why);
    }
    out->data = out->owned;
  } else {
    char name[32];
    size_t n =
        f->compression.n < sizeof name - 1 ? f->compression.n : sizeof name - 1;
    memcpy(name, f->compression.p, n);
    name[n] = '\0';
    return tw__trace_bad(r, err, TW_ENOTSUP, off,
                         "chunk compression '%s' is not supported (only "
                         "zstd and none)",
                         name);
  }
  if (f->crc != 0 && tw__trace_crc32(0, out->data, out->n) != f->crc) {
    uint32_t got = tw__trace_crc32(0, out->data, out->n);
    tw__trace_loaded_fini(out);
    return BAD(off, "chunk CRC mismatch (stored 0x%08x, computed 0x%08x)",
               f->crc, got);
  }
  return TW_OK;
}

void tw__trace_loaded_fini(tw__loaded *l) {
  tw_free(l->owned);
  l->owned = NULL;
  l->data = NULL;
  l->n = 0;
}

int tw__trace_chunk_load(tw_trace_reader *r, uint64_t off, uint64_t expect,
                         tw__loaded *out, tw_err *err) {
  uint8_t op;
  uint64_t len;
  int rc = read_record_header(r, off, r->data_end, &op, &len, err);
  if (rc != TW_OK)
    return rc;
  if (op != TW__OP_CHUNK)
    return BAD(off, "a chunk index points to a record of opcode 0x%02x", op);
  if (expect != 0 && expect != TW__REC_HDR + len)
    return BAD(off, "the chunk index says %llu bytes, the chunk has %llu",
               (unsigned long long)expect,
               (unsigned long long)(TW__REC_HDR + len));
  /* A chunk on disk is read into memory of its own, which its records
   * then borrow when they are not compressed. */
  uint8_t *own = NULL;
  const uint8_t *content;
  if (r->mem != NULL) {
    content = r->mem + off + TW__REC_HDR;
  } else {
    own = tw_alloc((size_t)len);
    if (own == NULL)
      return NOMEM();
    rc = read_exact(r, off + TW__REC_HDR, own, (size_t)len, err);
    if (rc != TW_OK) {
      tw_free(own);
      return rc;
    }
    content = own;
  }
  chunk_fields f;
  rc = parse_chunk(r, content, len, off, &f, err);
  if (rc == TW_OK)
    rc = decode_chunk(r, &f, off, true, out, err);
  if (rc != TW_OK || out->owned != NULL) {
    tw_free(own);
  } else if (own != NULL) {
    out->owned = own; /* uncompressed records borrowed from own */
  }
  return rc;
}

int tw__trace_parse_message(const tw_trace_reader *r, const uint8_t *d,
                            size_t n, size_t off, uint64_t chunk_off,
                            tw_trace_message *m, tw_err *err) {
  memset(m, 0, sizeof *m);
  uint64_t at = chunk_off == UINT64_MAX ? off : chunk_off;
  const char *in = chunk_off == UINT64_MAX ? "" : "chunk: ";
  if (off > n || n - off < TW__REC_HDR + TW__MSG_FIXED)
    return BAD(at, "%smessage at offset %zu runs past the end", in, off);
  const uint8_t *p = d + off;
  uint64_t len = tw__get_u64(p + 1);
  if (p[0] != TW__OP_MESSAGE)
    return BAD(at, "%soffset %zu holds opcode 0x%02x, not a message", in, off,
               p[0]);
  if (len < TW__MSG_FIXED || len > n - off - TW__REC_HDR)
    return BAD(at, "%smessage at offset %zu has a bad length %llu", in, off,
               (unsigned long long)len);
  p += TW__REC_HDR;
  m->channel_id = tw__get_u16(p);
  m->sequence = tw__get_u32(p + 2);
  m->log_time = tw__get_u64(p + 6);
  m->publish_time = tw__get_u64(p + 14);
  m->data = p + TW__MSG_FIXED;
  m->len = (size_t)(len - TW__MSG_FIXED);
  return TW_OK;
}

/* --- The linear scan ---------------------------------------------------------
 */

typedef struct scan_state {
  enum scan_mode mode;
  tw__loaded last;   /* the last chunk, for the Message Indexes after it */
  uint64_t last_off; /* its offset; UINT64_MAX when none */
  uint64_t messages, chunks, attachments, metadata, matched_chunks;
  uint64_t start, end;                        /* message log times */
  bool indexed_attachments, indexed_metadata; /* the summary lists them */
} scan_state;

/* Records the messages, schemas and channels in a chunk's records. */
static int scan_chunk_records(tw_trace_reader *r, scan_state *s,
                              const tw__loaded *l, const chunk_fields *f,
                              uint64_t off, tw_err *err) {
  size_t pos = 0;
  while (pos < l->n) {
    if (l->n - pos < TW__REC_HDR)
      return BAD(off, "chunk: truncated record at offset %zu", pos);
    uint8_t op = l->data[pos];
    uint64_t len = tw__get_u64(l->data + pos + 1);
    if (len > l->n - pos - TW__REC_HDR)
      return BAD(off, "chunk: record at offset %zu runs past the end", pos);
    tw__cur c = tw__cur_make(l->data + pos + TW__REC_HDR, (size_t)len);
    int rc = TW_OK;
    if (op == TW__OP_SCHEMA) {
      rc = add_schema(r, &c, off, s->mode, err);
    } else if (op == TW__OP_CHANNEL) {
      rc = add_channel(r, &c, off, s->mode, err);
    } else if (op == TW__OP_MESSAGE) {
      tw_trace_message m;
      rc = tw__trace_parse_message(r, l->data, l->n, pos, off, &m, err);
      if (rc != TW_OK)
        return rc;
      if (r->channel_ix[m.channel_id] == 0)
        return BAD(off,
                   "chunk: message at offset %zu on channel %u, which "
                   "no Channel record defined before",
                   pos, (unsigned)m.channel_id);
      if (m.log_time < f->start || m.log_time > f->end)
        return BAD(off,
                   "chunk: message at offset %zu logged at %llu, "
                   "outside the chunk's %llu..%llu",
                   pos, (unsigned long long)m.log_time,
                   (unsigned long long)f->start, (unsigned long long)f->end);
      if (s->messages == 0 || m.log_time < s->start)
        s->start = m.log_time;
      if (s->messages == 0 || m.log_time > s->end)
        s->end = m.log_time;
      s->messages++;
      if (s->mode == SCAN_BUILD && !r->counts_from_stats) {
        tw_trace_channel *ch = &r->channels[r->channel_ix[m.channel_id] - 1];
        ch->message_count++;
        ch->has_count = true;
      }
    }
    if (rc != TW_OK)
      return rc;
    pos += TW__REC_HDR + (size_t)len;
  }
  return TW_OK;
}

/* Checks a Message Index against the chunk just before it. */
static int scan_message_index(tw_trace_reader *r, const scan_state *s,
                              const uint8_t *p, uint64_t len, uint64_t off,
                              tw_err *err) {
  tw__cur c = tw__cur_make(p, (size_t)len);
  uint16_t channel = tw__cur_u16(&c);
  uint32_t bytes = tw__cur_u32(&c);
  const uint8_t *e = tw__cur_take(&c, bytes);
  if (e == NULL || bytes % 16 != 0)
    return BAD(off, "malformed Message Index record");
  if (s->last_off == UINT64_MAX)
    return BAD(off, "Message Index record without a chunk before it");
  for (uint32_t i = 0; i < bytes; i += 16) {
    uint64_t t = tw__get_u64(e + i);
    uint64_t at = tw__get_u64(e + i + 8);
    tw_trace_message m;
    int rc = tw__trace_parse_message(r, s->last.data, s->last.n,
                                     at > SIZE_MAX ? SIZE_MAX : (size_t)at,
                                     s->last_off, &m, err);
    if (rc != TW_OK)
      return rc;
    if (m.channel_id != channel || m.log_time != t)
      return BAD(off,
                 "Message Index entry %u (channel %u, time %llu) does "
                 "not match its message",
                 i / 16, (unsigned)channel, (unsigned long long)t);
  }
  return TW_OK;
}

/* Finds the chunk index entry of the chunk at off (chunks sorted by
 * offset), or NULL. */
static const tw__chunk *chunk_at(const tw_trace_reader *r, uint64_t off) {
  size_t lo = 0, hi = r->nchunks;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->chunks[mid].offset < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < r->nchunks && r->chunks[lo].offset == off ? &r->chunks[lo] : NULL;
}

static int scan_chunk(tw_trace_reader *r, scan_state *s, const uint8_t *p,
                      uint64_t len, uint64_t off, tw_err *err) {
  chunk_fields f;
  int rc = parse_chunk(r, p, len, off, &f, err);
  if (rc != TW_OK)
    return rc;
  tw__trace_loaded_fini(&s->last);
  s->last_off = UINT64_MAX;
  tw__loaded l;
  /* Records on disk sit in the scratch buffer, which the next record
   * reuses: keep a copy for the Message Indexes that follow. */
  rc = decode_chunk(r, &f, off, r->mem != NULL, &l, err);
  if (rc != TW_OK)
    return rc;
  s->last = l;
  s->last_off = off;
  rc = scan_chunk_records(r, s, &l, &f, off, err);
  if (rc != TW_OK)
    return rc;
  s->chunks++;
  if (s->mode == SCAN_VERIFY) {
    const tw__chunk *ci = chunk_at(r, off);
    if (ci != NULL) {
      if (ci->length != TW__REC_HDR + len || ci->start != f.start ||
          ci->end != f.end || ci->uncompressed != f.usize)
        return BAD(off, "the chunk's index disagrees with the chunk");
      s->matched_chunks++;
    }
    return TW_OK;
  }
  if (grow((void **)&r->chunks, &r->capchunks, r->nchunks, sizeof *r->chunks))
    return NOMEM();
  tw__chunk *c = &r->chunks[r->nchunks++];
  memset(c, 0, sizeof *c);
  c->start = f.start;
  c->end = f.end;
  c->offset = off;
  c->length = TW__REC_HDR + len;
  c->uncompressed = f.usize;
  return TW_OK;
}

static int scan_record(tw_trace_reader *r, scan_state *s, uint8_t op,
                       const uint8_t *p, uint64_t len, uint64_t off,
                       tw_err *err) {
  tw__cur c = tw__cur_make(p, (size_t)len);
  switch (op) {
  case TW__OP_HEADER:
    return BAD(off, "a second Header record");
  case TW__OP_FOOTER:
    return BAD(off, "a Footer record inside the data section");
  case TW__OP_SCHEMA:
    return add_schema(r, &c, off, s->mode, err);
  case TW__OP_CHANNEL:
    return add_channel(r, &c, off, s->mode, err);
  case TW__OP_MESSAGE: {
    tw_trace_message m;
    /* The record's bytes start TW__REC_HDR before p. */
    int rc = tw__trace_parse_message(r, p - TW__REC_HDR, TW__REC_HDR + len, 0,
                                     UINT64_MAX, &m, err);
    if (rc != TW_OK)
      return rc;
    if (r->channel_ix[m.channel_id] == 0)
      return BAD(off,
                 "message on channel %u, which no Channel record "
                 "defined before",
                 (unsigned)m.channel_id);
    if (s->messages == 0 || m.log_time < s->start)
      s->start = m.log_time;
    if (s->messages == 0 || m.log_time > s->end)
      s->end = m.log_time;
    s->messages++;
    if (s->mode == SCAN_VERIFY)
      return TW_OK;
    if (!r->counts_from_stats) {
      tw_trace_channel *ch = &r->channels[r->channel_ix[m.channel_id] - 1];
      ch->message_count++;
      ch->has_count = true;
    }
    if (grow((void **)&r->loose, &r->caploose, r->nloose, sizeof *r->loose))
      return NOMEM();
    tw__loose *l = &r->loose[r->nloose++];
    l->log_time = m.log_time;
    l->offset = off;
    l->channel = m.channel_id;
    return TW_OK;
  }
  case TW__OP_CHUNK:
    return scan_chunk(r, s, p, len, off, err);
  case TW__OP_MESSAGE_INDEX:
    return scan_message_index(r, s, p, len, off, err);
  case TW__OP_ATTACHMENT: {
    att_fields a;
    int rc = parse_attachment(r, p, len, off, &a, err);
    if (rc != TW_OK)
      return rc;
    s->attachments++;
    /* Listed from the summary's indexes when it has them. */
    if (s->mode == SCAN_BUILD && !s->indexed_attachments)
      return add_attachment(r, &a, off, err);
    return TW_OK;
  }
  case TW__OP_METADATA:
    s->metadata++;
    if (s->mode == SCAN_BUILD && !s->indexed_metadata)
      return add_metadata(r, &c, off, err);
    return TW_OK;
  default:
    return TW_OK; /* summary-only and unknown records are skipped */
  }
}

/* Reads the data section from the first record after the Header to
 * DataEnd (or to the summary or footer when a file has no DataEnd),
 * checking the data section CRC when DataEnd carries one. */
static int scan_data(tw_trace_reader *r, enum scan_mode mode, tw_err *err) {
  scan_state s;
  memset(&s, 0, sizeof s);
  s.mode = mode;
  s.last_off = UINT64_MAX;
  s.indexed_attachments = r->nattachments > 0;
  s.indexed_metadata = r->nmetadata > 0;
  uint32_t crc = 0;
  const uint8_t *p;
  int rc = tw__trace_read_at(r, 0, r->data_start, &r->scratch, &p, err);
  if (rc == TW_OK)
    crc = tw__trace_crc32(0, p, (size_t)r->data_start);
  uint64_t off = r->data_start;
  bool data_end = false;
  while (rc == TW_OK && off < r->data_end) {
    uint8_t op;
    uint64_t len;
    rc = read_record_header(r, off, r->data_end, &op, &len, err);
    if (rc != TW_OK)
      break;
    rc = tw__trace_read_at(r, off, TW__REC_HDR + len, &r->scratch, &p, err);
    if (rc != TW_OK)
      break;
    if (op == TW__OP_DATA_END) {
      tw__cur c = tw__cur_make(p + TW__REC_HDR, (size_t)len);
      uint32_t stored = tw__cur_u32(&c);
      if (c.bad)
        rc = BAD(off, "truncated DataEnd record");
      else if (stored != 0 && stored != crc)
        rc = BAD(off,
                 "data section CRC mismatch (stored 0x%08x, computed 0x%08x)",
                 stored, crc);
      data_end = true;
      break;
    }
    crc = tw__trace_crc32(crc, p, (size_t)(TW__REC_HDR + len));
    rc = scan_record(r, &s, op, p + TW__REC_HDR, len, off, err);
    off += TW__REC_HDR + len;
  }
  tw__trace_loaded_fini(&s.last);
  if (rc != TW_OK)
    return rc;
  /* The specification's diagrams show files without DataEnd, so opening
   * accepts them; its text says the data section MUST end with one. */
  if (mode == SCAN_VERIFY && !data_end)
    return BAD(off, "the data section does not end with a DataEnd record");

  tw_trace_stats *st = &r->info.stats;
  if (mode == SCAN_BUILD) {
    if (!r->info.has_statistics) {
      st->message_count = s.messages;
      st->chunk_count = (uint32_t)s.chunks;
      st->attachment_count = (uint32_t)s.attachments;
      st->metadata_count = (uint32_t)s.metadata;
      st->message_start_time = s.messages ? s.start : 0;
      st->message_end_time = s.messages ? s.end : 0;
    }
    return TW_OK;
  }
  if (r->info.indexed && s.matched_chunks != r->nchunks)
    return BAD(r->summary_start,
               "%llu chunk indexes point to no chunk of the data section",
               (unsigned long long)(r->nchunks - s.matched_chunks));
  if (r->info.has_statistics &&
      (st->message_count != s.messages || st->chunk_count != s.chunks ||
       st->attachment_count != s.attachments ||
       st->metadata_count != s.metadata))
    return BAD(r->summary_start,
               "the statistics (%llu messages, %u chunks, %u attachments, %u "
               "metadata) disagree with the data section (%llu, %llu, %llu, "
               "%llu)",
               (unsigned long long)st->message_count, st->chunk_count,
               st->attachment_count, st->metadata_count,
               (unsigned long long)s.messages, (unsigned long long)s.chunks,
               (unsigned long long)s.attachments,
               (unsigned long long)s.metadata);
  return TW_OK;
}

/* --- The summary -------------------------------------------------------------
 */

typedef struct summary_state {
  const uint8_t *counts; /* Statistics' channel_message_counts */
  uint32_t counts_len;
} summary_state;

static int summary_chunk_index(tw_trace_reader *r, tw__cur *c, uint64_t off,
                               tw_err *err) {
  tw__chunk ch;
  memset(&ch, 0, sizeof ch);
  ch.start = tw__cur_u64(c);
  ch.end = tw__cur_u64(c);
  ch.offset = tw__cur_u64(c);
  ch.length = tw__cur_u64(c);
  uint32_t bytes = tw__cur_u32(c);
  const uint8_t *map = tw__cur_take(c, bytes);
  ch.mi_len = tw__cur_u64(c);
  tw__cur_str(c); /* compression: the Chunk record's is the one used */
  tw__cur_u64(c); /* compressed size */
  ch.uncompressed = tw__cur_u64(c);
  if (c->bad || bytes % 10 != 0)
    return BAD(off, "malformed Chunk Index record");
  if (ch.start > ch.end)
    return BAD(off, "chunk index: start time after end time");
  if (ch.offset < r->data_start || ch.length < TW__REC_HDR ||
      ch.offset > r->data_end || ch.length > r->data_end - ch.offset ||
      ch.mi_len > r->data_end - ch.offset - ch.length)
    return BAD(off, "chunk index points outside the data section");
  if (grow((void **)&r->chunks, &r->capchunks, r->nchunks, sizeof *r->chunks))
    return NOMEM();
  ch.mi_first = r->nmi;
  ch.mi_count = bytes / 10;
  uint64_t mi_lo = ch.offset + ch.length, mi_hi = mi_lo + ch.mi_len;
  for (uint32_t i = 0; i < bytes; i += 10) {
    tw__mi_ref m = {tw__get_u16(map + i), tw__get_u64(map + i + 2)};
    if (m.offset < mi_lo || m.offset >= mi_hi || mi_hi - m.offset < TW__REC_HDR)
      return BAD(off,
                 "chunk index: message index of channel %u outside the "
                 "chunk's index region",
                 (unsigned)m.channel);
    if (grow((void **)&r->mi, &r->capmi, r->nmi, sizeof *r->mi))
      return NOMEM();
    r->mi[r->nmi++] = m;
  }
  r->chunks[r->nchunks++] = ch;
  return TW_OK;
}

static int summary_statistics(tw_trace_reader *r, tw__cur *c, uint64_t off,
                              summary_state *ss, tw_err *err) {
  if (r->info.has_statistics)
    return BAD(off, "a second Statistics record");
  tw_trace_stats *st = &r->info.stats;
  st->message_count = tw__cur_u64(c);
  st->schema_count = tw__cur_u16(c);
  st->channel_count = tw__cur_u32(c);
  st->attachment_count = tw__cur_u32(c);
  st->metadata_count = tw__cur_u32(c);
  st->chunk_count = tw__cur_u32(c);
  st->message_start_time = tw__cur_u64(c);
  st->message_end_time = tw__cur_u64(c);
  ss->counts_len = tw__cur_u32(c);
  ss->counts = tw__cur_take(c, ss->counts_len);
  if (c->bad || ss->counts_len % 10 != 0)
    return BAD(off, "malformed Statistics record");
  r->info.has_statistics = true;
  return TW_OK;
}

typedef struct pending_meta {
  uint64_t offset, length;
} pending_meta;

static int summary_attachment_index(tw_trace_reader *r, tw__cur *c,
                                    uint64_t off, tw_err *err) {
  att_fields a;
  memset(&a, 0, sizeof a);
  uint64_t at = tw__cur_u64(c);
  uint64_t length = tw__cur_u64(c);
  a.log_time = tw__cur_u64(c);
  a.create_time = tw__cur_u64(c);
  a.data_len = tw__cur_u64(c);
  a.name = tw__cur_str(c);
  a.media_type = tw__cur_str(c);
  if (c->bad)
    return BAD(off, "malformed Attachment Index record");
  if (at < r->data_start || at > r->data_end || length > r->data_end - at ||
      length < TW__REC_HDR)
    return BAD(off, "attachment index points outside the data section");
  return add_attachment(r, &a, at, err);
}

/* Reads the summary section [summary_start, footer) and checks its CRC. */
static int read_summary(tw_trace_reader *r, uint64_t offsets_start,
                        uint32_t stored_crc, pending_meta **metas,
                        size_t *nmetas, tw_err *err) {
  uint64_t start = r->summary_start;
  uint64_t crc_len = r->footer_offset + TW__REC_HDR + 16 - start;
  if (crc_len > r->opts.max_record)
    return tw__trace_bad(r, err, TW_ELIMIT, start,
                         "summary of %llu bytes exceeds the record limit",
                         (unsigned long long)crc_len);
  const uint8_t *p;
  int rc = tw__trace_read_at(r, start, crc_len, &r->scratch, &p, err);
  if (rc != TW_OK)
    return rc;
  uint32_t crc = tw__trace_crc32(0, p, (size_t)crc_len);
  if (stored_crc != 0 && crc != stored_crc)
    return BAD(start, "summary CRC mismatch (stored 0x%08x, computed 0x%08x)",
               stored_crc, crc);
  (void)offsets_start;
  summary_state ss;
  memset(&ss, 0, sizeof ss);
  size_t n = (size_t)(r->footer_offset - start);
  size_t pos = 0;
  size_t capmetas = 0;
  while (pos < n) {
    uint64_t off = start + pos;
    if (n - pos < TW__REC_HDR)
      return BAD(off, "truncated record in the summary");
    uint8_t op = p[pos];
    uint64_t len = tw__get_u64(p + pos + 1);
    if (len > n - pos - TW__REC_HDR)
      return BAD(off, "summary record of opcode 0x%02x runs past the footer",
                 op);
    tw__cur c = tw__cur_make(p + pos + TW__REC_HDR, (size_t)len);
    switch (op) {
    case TW__OP_SCHEMA:
      rc = add_schema(r, &c, off, SCAN_BUILD, err);
      break;
    case TW__OP_CHANNEL:
      rc = add_channel(r, &c, off, SCAN_BUILD, err);
      break;
    case TW__OP_CHUNK_INDEX:
      rc = summary_chunk_index(r, &c, off, err);
      break;
    case TW__OP_STATISTICS:
      rc = summary_statistics(r, &c, off, &ss, err);
      break;
    case TW__OP_ATTACHMENT_INDEX:
      rc = summary_attachment_index(r, &c, off, err);
      break;
    case TW__OP_METADATA_INDEX: {
      pending_meta m;
      m.offset = tw__cur_u64(&c);
      m.length = tw__cur_u64(&c);
      tw__cur_str(&c);
      if (c.bad)
        rc = BAD(off, "malformed Metadata Index record");
      else if (m.offset < r->data_start || m.offset > r->data_end ||
               m.length > r->data_end - m.offset)
        rc = BAD(off, "metadata index points outside the data section");
      else if (grow((void **)metas, &capmetas, *nmetas, sizeof **metas))
        rc = NOMEM();
      else
        (*metas)[(*nmetas)++] = m;
      break;
    }
    case TW__OP_SUMMARY_OFFSET:
      break;
    case TW__OP_HEADER:
    case TW__OP_FOOTER:
    case TW__OP_MESSAGE:
    case TW__OP_CHUNK:
    case TW__OP_MESSAGE_INDEX:
    case TW__OP_ATTACHMENT:
    case TW__OP_METADATA:
    case TW__OP_DATA_END:
      rc = BAD(off, "record of opcode 0x%02x in the summary", op);
      break;
    default:
      break; /* unknown records are skipped */
    }
    if (rc != TW_OK)
      return rc;
    pos += TW__REC_HDR + (size_t)len;
  }
  /* Per-channel counts, now that every channel is known. */
  for (uint32_t i = 0; i < ss.counts_len; i += 10) {
    uint16_t id = tw__get_u16(ss.counts + i);
    if (r->channel_ix[id] != 0) {
      tw_trace_channel *ch = &r->channels[r->channel_ix[id] - 1];
      ch->message_count = tw__get_u64(ss.counts + i + 2);
      ch->has_count = true;
    }
  }
  r->counts_from_stats = ss.counts_len != 0;
  return TW_OK;
}

static int read_metadata(tw_trace_reader *r, const pending_meta *m, size_t n,
                         tw_err *err) {
  for (size_t i = 0; i < n; i++) {
    uint8_t op;
    uint64_t len;
    int rc = read_record_header(r, m[i].offset, r->data_end, &op, &len, err);
    if (rc != TW_OK)
      return rc;
    if (op != TW__OP_METADATA || TW__REC_HDR + len != m[i].length)
      return BAD(m[i].offset, "a metadata index points to no Metadata record "
                              "of its length");
    const uint8_t *p;
    rc = tw__trace_read_at(r, m[i].offset + TW__REC_HDR, len, &r->scratch, &p,
                           err);
    if (rc != TW_OK)
      return rc;
    tw__cur c = tw__cur_make(p, (size_t)len);
    rc = add_metadata(r, &c, m[i].offset, err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* --- Open -------------------------------------------------------------------
 */

static int cmp_chunk(const void *a, const void *b) {
  const tw__chunk *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_mi(const void *a, const void *b) {
  const tw__mi_ref *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_loose(const void *a, const void *b) {
  const tw__loose *x = a, *y = b;
  if (x->log_time != y->log_time)
    return x->log_time < y->log_time ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Sorts the chunk indexes by offset and checks the invariants at the top
 * of this file. */
static int check_chunks(tw_trace_reader *r, tw_err *err) {
  if (r->nchunks > 1)
    qsort(r->chunks, r->nchunks, sizeof *r->chunks, cmp_chunk);
  for (size_t i = 0; i < r->nchunks; i++) {
    tw__chunk *c = &r->chunks[i];
    if (i + 1 < r->nchunks &&
        c->offset + c->length + c->mi_len > r->chunks[i + 1].offset)
      return BAD(c->offset, "chunk and its indexes overlap the next chunk");
    if (c->mi_count < 2)
      continue;
    tw__mi_ref *m = r->mi + c->mi_first;
    qsort(m, c->mi_count, sizeof *m, cmp_mi);
    for (size_t j = 1; j < c->mi_count; j++)
      if (m[j].offset == m[j - 1].offset)
        return BAD(c->offset, "two channels share one message index");
  }
  return TW_OK;
}

/* Puts schemas and channels in id order (the id tables make it a walk). */
static int sort_tables(tw_trace_reader *r, tw_err *err) {
  tw_trace_schema *s = tw_calloc(r->nschemas ? r->nschemas : 1, sizeof *s);
  tw_trace_channel *c = tw_calloc(r->nchannels ? r->nchannels : 1, sizeof *c);
  if (s == NULL || c == NULL) {
    tw_free(s);
    tw_free(c);
    return NOMEM();
  }
  size_t ns = 0, nc = 0;
  for (size_t id = 0; id < NIDS; id++) {
    if (r->schema_ix[id] != 0) {
      s[ns] = r->schemas[r->schema_ix[id] - 1];
      r->schema_ix[id] = (uint32_t)++ns;
    }
    if (r->channel_ix[id] != 0) {
      c[nc] = r->channels[r->channel_ix[id] - 1];
      r->channel_ix[id] = (uint32_t)++nc;
    }
  }
  tw_free(r->schemas);
  tw_free(r->channels);
  r->schemas = s;
  r->channels = c;
  r->capschemas = r->nschemas ? r->nschemas : 1;
  r->capchannels = r->nchannels ? r->nchannels : 1;
  return TW_OK;
}

static int read_header(tw_trace_reader *r, tw_err *err) {
  uint8_t op;
  uint64_t len;
  int rc =
      read_record_header(r, TW__MAGIC_LEN, r->footer_offset, &op, &len, err);
  if (rc != TW_OK)
    return rc;
  if (op != TW__OP_HEADER)
    return BAD(TW__MAGIC_LEN,
               "the first record is not a Header (opcode "
               "0x%02x)",
               op);
  const uint8_t *p;
  rc = tw__trace_read_at(r, TW__MAGIC_LEN + TW__REC_HDR, len, &r->scratch, &p,
                         err);
  if (rc != TW_OK)
    return rc;
  tw__cur c = tw__cur_make(p, (size_t)len);
  tw__str profile = tw__cur_str(&c);
  tw__str library = tw__cur_str(&c);
  if (c.bad)
    return BAD(TW__MAGIC_LEN, "truncated Header record");
  r->info.profile = dup_str(r, profile);
  r->info.library = dup_str(r, library);
  if (r->info.profile == NULL || r->info.library == NULL)
    return NOMEM();
  r->data_start = TW__MAGIC_LEN + TW__REC_HDR + len;
  return TW_OK;
}

/* Magics, Header, Footer, then the summary or the scan. */
static int load(tw_trace_reader *r, tw_err *err) {
  if (r->size < 2 * TW__MAGIC_LEN + TW__REC_HDR + TW__REC_HDR + TW__FOOTER_LEN)
    return tw__trace_bad(r, err, TW_EPARSE, 0,
                         "%llu bytes are too few for an MCAP file",
                         (unsigned long long)r->size);
  uint8_t head[TW__MAGIC_LEN], tail[TW__TAIL_LEN];
  int rc = read_exact(r, 0, head, sizeof head, err);
  if (rc == TW_OK)
    rc = read_exact(r, r->size - TW__TAIL_LEN, tail, sizeof tail, err);
  if (rc != TW_OK)
    return rc;
  if (memcmp(head, TW__MAGIC, TW__MAGIC_LEN) != 0)
    return BAD(0, "not an MCAP file (no magic)");
  if (memcmp(tail + TW__REC_HDR + TW__FOOTER_LEN, TW__MAGIC, TW__MAGIC_LEN) !=
      0)
    return BAD(r->size - TW__MAGIC_LEN,
               "no magic at the end: the file is truncated or unfinished");
  r->footer_offset = r->size - TW__TAIL_LEN;
  if (tail[0] != TW__OP_FOOTER ||
      tw__get_u64(tail + 1) != (uint64_t)TW__FOOTER_LEN)
    return BAD(r->footer_offset, "no Footer record before the final magic");
  uint64_t summary_start = tw__get_u64(tail + TW__REC_HDR);
  uint64_t offsets_start = tw__get_u64(tail + TW__REC_HDR + 8);
  uint32_t summary_crc = tw__get_u32(tail + TW__REC_HDR + 16);
  rc = read_header(r, err);
  if (rc != TW_OK)
    return rc;
  if (summary_start != 0 &&
      (summary_start < r->data_start || summary_start > r->footer_offset))
    return BAD(r->footer_offset,
               "summary start %llu outside the file's "
               "sections",
               (unsigned long long)summary_start);
  if (offsets_start != 0 &&
      (offsets_start < r->data_start || offsets_start > r->footer_offset ||
       offsets_start < summary_start))
    return BAD(r->footer_offset,
               "summary offset start %llu outside the "
               "file's sections",
               (unsigned long long)offsets_start);
  r->summary_start = summary_start;
  r->data_end = summary_start   ? summary_start
                : offsets_start ? offsets_start
                                : r->footer_offset;
  r->info.has_summary = summary_start != 0;

  pending_meta *metas = NULL;
  size_t nmetas = 0;
  if (r->info.has_summary)
    rc = read_summary(r, offsets_start, summary_crc, &metas, &nmetas, err);
  if (rc == TW_OK)
    rc = read_metadata(r, metas, nmetas, err);
  tw_free(metas);
  if (rc == TW_OK)
    rc = check_chunks(r, err);
  if (rc != TW_OK)
    return rc;
  r->info.indexed = r->nchunks > 0;
  bool empty = r->info.has_statistics && r->info.stats.message_count == 0;
  if (!r->info.indexed && !empty) {
    /* No chunk indexes: the data section is the only way to the messages
     * (and the schemas and channels of a file without a summary). */
    r->info.scanned = true;
    rc = scan_data(r, SCAN_BUILD, err);
    if (rc != TW_OK)
      return rc;
    if (r->nloose > 1)
      qsort(r->loose, r->nloose, sizeof *r->loose, cmp_loose);
    r->info.indexed = false;
  }
  if (!r->info.has_statistics) {
    tw_trace_stats *st = &r->info.stats;
    st->schema_count = (uint16_t)r->nschemas;
    st->channel_count = (uint32_t)r->nchannels;
    st->attachment_count = (uint32_t)r->nattachments;
    st->metadata_count = (uint32_t)r->nmetadata;
    if (r->info.indexed) {
      st->chunk_count = (uint32_t)r->nchunks;
      for (size_t i = 0; i < r->nchunks; i++) {
        if (i == 0 || r->chunks[i].start < st->message_start_time)
          st->message_start_time = r->chunks[i].start;
        if (r->chunks[i].end > st->message_end_time)
          st->message_end_time = r->chunks[i].end;
      }
    }
  }
  return sort_tables(r, err);
}

static int reader_new(const char *name, const tw_trace_reader_opts *opts,
                      tw_trace_reader **out, tw_err *err) {
  tw_trace_reader *r = tw_calloc(1, sizeof *r);
  if (r == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", name);
  r->fd = -1;
  if (opts != NULL)
    r->opts = *opts;
  else
    tw_trace_reader_opts_init(&r->opts);
  tw_arena_init(&r->strings, 0);
  r->name = tw_strdup(name);
  r->schema_ix = tw_calloc(NIDS, sizeof *r->schema_ix);
  r->channel_ix = tw_calloc(NIDS, sizeof *r->channel_ix);
  if (r->name == NULL || r->schema_ix == NULL || r->channel_ix == NULL) {
    tw_trace_reader_close(r);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", name);
  }
  *out = r;
  return TW_OK;
}

/* Loads r, verifies when asked, and hands it out or closes it. */
static int finish_open(tw_trace_reader *r, tw_trace_reader **out, tw_err *err) {
  int rc = load(r, err);
  if (rc == TW_OK && r->opts.verify)
    rc = tw_trace_reader_verify(r, err);
  tw_buf_fini(&r->scratch);
  if (rc != TW_OK) {
    tw_trace_reader_close(r);
    return rc;
  }
  *out = r;
  return TW_OK;
}

int tw_trace_reader_open(const char *path, const tw_trace_reader_opts *opts,
                         tw_trace_reader **out, tw_err *err) {
  tw_trace_reader *r = NULL;
  int rc = reader_new(path, opts, &r, err);
  if (rc != TW_OK)
    return rc;
  r->fd = tw_file_open_read(path, err);
  if (r->fd < 0) {
    rc = r->fd;
    tw_trace_reader_close(r);
    return rc;
  }
  struct stat st;
  if (fstat(r->fd, &st) != 0) {
    rc = tw_err_sys(err, errno, "%s: cannot stat", path);
    tw_trace_reader_close(r);
    return rc;
  }
  if (!S_ISREG(st.st_mode)) {
    tw_trace_reader_close(r);
    return tw_err_set(err, TW_EINVAL, "%s: not a regular file", path);
  }
  r->size = (uint64_t)st.st_size;
  return finish_open(r, out, err);
}

int tw_trace_reader_open_mem(const void *data, size_t len, const char *name,
                             const tw_trace_reader_opts *opts,
                             tw_trace_reader **out, tw_err *err) {
  tw_trace_reader *r = NULL;
  int rc = reader_new(name ? name : "<memory>", opts, &r, err);
  if (rc != TW_OK)
    return rc;
  r->mem = data ? data : (const uint8_t *)"";
  r->size = len;
  return finish_open(r, out, err);
}

void tw_trace_reader_close(tw_trace_reader *r) {
  if (r == NULL)
    return;
  assert(r->live_iters == 0);
  if (r->fd >= 0)
    close(r->fd);
  tw_free(r->schemas);
  tw_free(r->channels);
  tw_free(r->schema_ix);
  tw_free(r->channel_ix);
  tw_free(r->metadata);
  tw_free(r->attachments);
  tw_free(r->chunks);
  tw_free(r->mi);
  tw_free(r->loose);
  tw_arena_fini(&r->strings);
  tw_buf_fini(&r->scratch);
  tw__trace_zstd_dctx_free(r->dctx);
  tw_free(r->name);
  tw_free(r);
}

int tw_trace_reader_verify(tw_trace_reader *r, tw_err *err) {
  int rc = scan_data(r, SCAN_VERIFY, err);
  tw_buf_fini(&r->scratch);
  return rc;
}

/* --- Accessors
 * ----------------------------------------------------------------- */

const tw_trace_info *tw_trace_reader_info(const tw_trace_reader *r) {
  return &r->info;
}

size_t tw_trace_reader_schema_count(const tw_trace_reader *r) {
  return r->nschemas;
}

const tw_trace_schema *tw_trace_reader_schema_at(const tw_trace_reader *r,
                                                 size_t i) {
  return i < r->nschemas ? &r->schemas[i] : NULL;
}

const tw_trace_schema *tw_trace_reader_schema_get(const tw_trace_reader *r,
                                                  uint16_t id) {
  return r->schema_ix[id] ? &r->schemas[r->schema_ix[id] - 1] : NULL;
}

size_t tw_trace_reader_channel_count(const tw_trace_reader *r) {
  return r->nchannels;
}

const tw_trace_channel *tw_trace_reader_channel_at(const tw_trace_reader *r,
                                                   size_t i) {
  return i < r->nchannels ? &r->channels[i] : NULL;
}

const tw_trace_channel *tw_trace_reader_channel_get(const tw_trace_reader *r,
                                                    uint16_t id) {
  return r->channel_ix[id] ? &r->channels[r->channel_ix[id] - 1] : NULL;
}

const tw_trace_channel *tw_trace_reader_channel_find(const tw_trace_reader *r,
                                                     const char *topic) {
  for (size_t i = 0; i < r->nchannels; i++)
    if (strcmp(r->channels[i].topic, topic) == 0)
      return &r->channels[i];
  return NULL;
}

size_t tw_trace_reader_metadata_count(const tw_trace_reader *r) {
  return r->nmetadata;
}

const tw_trace_metadata *tw_trace_reader_metadata_at(const tw_trace_reader *r,
                                                     size_t i) {
  return i < r->nmetadata ? &r->metadata[i] : NULL;
}

size_t tw_trace_reader_attachment_count(const tw_trace_reader *r) {
  return r->nattachments;
}

const tw_trace_attachment *
tw_trace_reader_attachment_at(const tw_trace_reader *r, size_t i) {
  return i < r->nattachments ? &r->attachments[i] : NULL;
}

int tw_trace_reader_attachment_read(tw_trace_reader *r, size_t i, tw_buf *out,
                                    tw_err *err) {
  if (i >= r->nattachments)
    return tw_err_set(err, TW_EINVAL, "%s: no attachment %zu", r->name, i);
  const tw_trace_attachment *t = &r->attachments[i];
  uint8_t op;
  uint64_t len;
  int rc = read_record_header(r, t->offset, r->data_end, &op, &len, err);
  if (rc != TW_OK)
    return rc;
  if (op != TW__OP_ATTACHMENT)
    return BAD(t->offset,
               "an attachment index points to a record of opcode "
               "0x%02x",
               op);
  tw_buf tmp = TW_BUF_INIT;
  const uint8_t *p;
  rc = tw__trace_read_at(r, t->offset + TW__REC_HDR, len, &tmp, &p, err);
  att_fields a;
  if (rc == TW_OK)
    rc = parse_attachment(r, p, len, t->offset, &a, err);
  if (rc == TW_OK && (a.data_len != t->size || !str_eq(t->name, a.name)))
    rc = BAD(t->offset, "attachment disagrees with its index");
  if (rc == TW_OK && tw_buf_append(out, a.data, (size_t)a.data_len) != TW_OK)
    rc = NOMEM();
  tw_buf_fini(&tmp);
  return rc;
}
