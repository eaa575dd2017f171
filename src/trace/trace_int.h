/*
 * trace_int.h - private definitions shared by the files of src/trace: the
 * MCAP opcodes and layouts, little-endian access, a bounds-checked cursor,
 * CRC-32 and zstd glue, and the reader's state (reader.c builds it, iter.c
 * walks it).
 *
 * Never installed, never included outside src/trace and its tests.
 *
 * Cursor invariant: a tw__cur never reads outside p[0..n); a read past the
 * end returns zeros and sets bad, which sticks, so a parser reads all its
 * fields and checks bad once.
 */
#ifndef TWIN_TRACE_INT_H
#define TWIN_TRACE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "twin/arena.h"
#include "twin/trace.h"

/* The magic at both ends of a file: 0x89 "MCAP" '0' "\r\n". */
#define TW__MAGIC "\x89MCAP0\r\n"
#define TW__MAGIC_LEN 8

enum {
  TW__OP_HEADER = 0x01,
  TW__OP_FOOTER = 0x02,
  TW__OP_SCHEMA = 0x03,
  TW__OP_CHANNEL = 0x04,
  TW__OP_MESSAGE = 0x05,
  TW__OP_CHUNK = 0x06,
  TW__OP_MESSAGE_INDEX = 0x07,
  TW__OP_CHUNK_INDEX = 0x08,
  TW__OP_ATTACHMENT = 0x09,
  TW__OP_ATTACHMENT_INDEX = 0x0A,
  TW__OP_STATISTICS = 0x0B,
  TW__OP_METADATA = 0x0C,
  TW__OP_METADATA_INDEX = 0x0D,
  TW__OP_SUMMARY_OFFSET = 0x0E,
  TW__OP_DATA_END = 0x0F
};

/* Opcode and content length that open every record. */
#define TW__REC_HDR 9
/* A Message record's fixed fields: channel, sequence, two times. */
#define TW__MSG_FIXED 22
/* Footer content: summary_start, summary_offset_start, summary_crc. */
#define TW__FOOTER_LEN 20
/* Footer record plus trailing magic: what ends every file. */
#define TW__TAIL_LEN (TW__REC_HDR + TW__FOOTER_LEN + TW__MAGIC_LEN)

/* --- Little-endian access ------------------------------------------------ */

static inline void tw__put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void tw__put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tw__put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tw__get_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t tw__get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t tw__get_u64(const uint8_t *p) {
  return (uint64_t)tw__get_u32(p) | (uint64_t)tw__get_u32(p + 4) << 32;
}

static inline void tw__put_magic(uint8_t *p) {
  static const uint8_t magic[TW__MAGIC_LEN] = {0x89, 'M', 'C',  'A',
                                               'P',  '0', '\r', '\n'};
  memcpy(p, magic, sizeof magic);
}

/* --- Cursor ----------------------------------------------------------------
 */

typedef struct tw__cur {
  const uint8_t *p;
  size_t n;   /* bytes in p */
  size_t off; /* next byte to read */
  bool bad;   /* a read went past n */
} tw__cur;

static inline tw__cur tw__cur_make(const uint8_t *p, size_t n) {
  tw__cur c = {p, n, 0, false};
  return c;
}

/* Returns the next k bytes and advances, or NULL (setting bad) if fewer
 * remain. */
static inline const uint8_t *tw__cur_take(tw__cur *c, uint64_t k) {
  if (c->bad || k > c->n - c->off) {
    c->bad = true;
    return NULL;
  }
  const uint8_t *p = c->p + c->off;
  c->off += (size_t)k;
  return p;
}
static inline uint8_t tw__cur_u8(tw__cur *c) {
  const uint8_t *p = tw__cur_take(c, 1);
  return p ? p[0] : 0;
}
static inline uint16_t tw__cur_u16(tw__cur *c) {
  const uint8_t *p = tw__cur_take(c, 2);
  return p ? tw__get_u16(p) : 0;
}
static inline uint32_t tw__cur_u32(tw__cur *c) {
  const uint8_t *p = tw__cur_take(c, 4);
  return p ? tw__get_u32(p) : 0;
}
static inline uint64_t tw__cur_u64(tw__cur *c) {
  const uint8_t *p = tw__cur_take(c, 8);
  return p ? tw__get_u64(p) : 0;
}

/* A uint32-length-prefixed string or byte array, borrowed. */
typedef struct tw__str {
  const uint8_t *p;
  size_t n;
} tw__str;

static inline tw__str tw__cur_str(tw__cur *c) {
  tw__str s = {NULL, 0};
  uint32_t n = tw__cur_u32(c);
  s.p = tw__cur_take(c, n);
  if (s.p != NULL)
    s.n = n;
  return s;
}

/* --- CRC-32 and zstd -------------------------------------------------------
 */

/* CRC-32 (zlib's polynomial, as MCAP uses) of p[0..n) continuing crc (0 to
 * start). zlib's braided implementation; any length. */
uint32_t tw__trace_crc32(uint32_t crc, const void *p, size_t n);

/* CRC of A followed by B from crc(A), crc(B) and the length of B. */
uint32_t tw__trace_crc32_combine(uint32_t crc_a, uint32_t crc_b,
                                 uint64_t len_b);

/* zstd contexts whose memory comes from tw_alloc (so allocation-failure
 * tests and the leak check cover them). NULL when out of memory. */
void *tw__trace_zstd_cctx_new(void);
void tw__trace_zstd_cctx_free(void *cctx);
void *tw__trace_zstd_dctx_new(void);
void tw__trace_zstd_dctx_free(void *dctx);

/* Compresses src[0..n) at level into *dst (grown as needed; its len is set
 * to the compressed size). TW_ENOMEM or TW_EINTERNAL. */
int tw__trace_zstd_compress(void *cctx, int level, const void *src, size_t n,
                            tw_buf *dst);

/* Decompresses src[0..n) into dst[0..cap), which must come out exactly
 * full. TW_OK, TW_ENOMEM, or TW_EPARSE with the reason in *why (static). */
int tw__trace_zstd_decompress(void *dctx, const void *src, size_t n, void *dst,
                              size_t cap, const char **why);

/* --- Port channels (port.c) ------------------------------------------------
 */

/* Appends to schema the schema of a port of unit and size in encoding, and
 * sets *name, *schema_encoding, *message_encoding (static strings). */
int tw__trace_port_schema(const char *unit, size_t size,
                          tw_trace_encoding encoding, tw_buf *schema,
                          const char **name, const char **schema_encoding,
                          const char **message_encoding);

/* Largest body of a sample of size values in encoding. */
size_t tw__trace_port_body_max(tw_trace_encoding encoding, size_t size);

/* Encodes a sample into out (room for tw__trace_port_body_max bytes);
 * returns the bytes written. */
size_t tw__trace_port_encode(tw_trace_encoding encoding, double t,
                             const double *value, size_t n, uint8_t *out);

/* --- Reader state (reader.c, iter.c) ------------------------------------- */

/* Where a chunk is and what its index says. mi_first/mi_count select its
 * (channel, Message Index offset) pairs in tw_trace_reader.mi; a chunk
 * found by a linear scan has none, and is then read whole. */
typedef struct tw__chunk {
  uint64_t start, end;     /* message log times */
  uint64_t offset, length; /* of the Chunk record, header included */
  uint64_t mi_len;         /* bytes of Message Index records after it */
  uint64_t uncompressed;
  size_t mi_first, mi_count;
} tw__chunk;

typedef struct tw__mi_ref {
  uint16_t channel;
  uint64_t offset;
} tw__mi_ref;

/* A message outside any chunk, found by the linear scan. */
typedef struct tw__loose {
  uint64_t log_time;
  uint64_t offset; /* of its record */
  uint16_t channel;
} tw__loose;

struct tw_trace_reader {
  char *name;
  int fd;             /* -1 for a file in memory */
  const uint8_t *mem; /* the bytes of a file in memory */
  uint64_t size;
  tw_trace_reader_opts opts;
  tw_trace_info info;
  uint64_t data_start;    /* first byte after the Header */
  uint64_t data_end;      /* where the data section's records stop */
  uint64_t footer_offset; /* of the Footer record */
  uint64_t summary_start; /* from the footer; 0 without a summary */
  bool counts_from_stats; /* channel message counts came from Statistics */

  /* Tables; schemas and channels in increasing id order once open. */
  tw_trace_schema *schemas;
  size_t nschemas, capschemas;
  tw_trace_channel *channels;
  size_t nchannels, capchannels;
  uint32_t *schema_ix;  /* id -> index + 1 (0: absent); 65536 entries */
  uint32_t *channel_ix; /* likewise */
  tw_trace_metadata *metadata;
  size_t nmetadata, capmetadata;
  tw_trace_attachment *attachments;
  size_t nattachments, capattachments;
  tw__chunk *chunks; /* in file order */
  size_t nchunks, capchunks;
  tw__mi_ref *mi;
  size_t nmi, capmi;
  tw__loose *loose; /* sorted by (log_time, offset) once open */
  size_t nloose, caploose;

  tw_arena strings; /* every string, map and schema body of the tables */
  tw_buf scratch;   /* records read from a file on disk */
  void *dctx;       /* zstd, made on first use */
  unsigned live_iters;
};

/* A chunk's records, decompressed (or borrowed from a file in memory). */
typedef struct tw__loaded {
  uint8_t *owned; /* to tw_free; NULL when data is borrowed */
  const uint8_t *data;
  size_t n;
} tw__loaded;

/* Reports a problem at byte off of r's file: records code (TW_EPARSE for
 * corruption) with "NAME: at byte OFF: MESSAGE" in err (first error wins)
 * and evaluates to code, never TW_OK (a macro, as tw_err_set is, so that
 * static analysers see it). */
#define tw__trace_bad(r, err, code, off, ...)                                  \
  ((void)tw__trace_bad_record((r), (err), (code), (off), __VA_ARGS__),         \
   tw__err_code(code))
void tw__trace_bad_record(const tw_trace_reader *r, tw_err *err, int code,
                          uint64_t off, const char *fmt, ...) TW_PRINTF(5, 6);

/* Points *out at the len bytes at off, which must lie in the file: into
 * the caller's memory, or read into buf. Valid until buf is next used. */
int tw__trace_read_at(tw_trace_reader *r, uint64_t off, uint64_t len,
                      tw_buf *buf, const uint8_t **out, tw_err *err);

/* Reads the Chunk record at off (of total length expect, header included,
 * when not 0), decompresses its records within the limits and checks
 * their CRC. On success the caller owns *out (tw__trace_loaded_fini). */
int tw__trace_chunk_load(tw_trace_reader *r, uint64_t off, uint64_t expect,
                         tw__loaded *out, tw_err *err);
void tw__trace_loaded_fini(tw__loaded *l);

/* Parses the Message record at off of a chunk's records (or of a record
 * read from the file when chunk_off is UINT64_MAX): checks its opcode and
 * length and fills *m (data borrowed from d). where names it in errors. */
int tw__trace_parse_message(const tw_trace_reader *r, const uint8_t *d,
                            size_t n, size_t off, uint64_t chunk_off,
                            tw_trace_message *m, tw_err *err);

#endif /* TWIN_TRACE_INT_H */
