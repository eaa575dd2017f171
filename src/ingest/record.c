/*
 * record.c - the ingest recording: CDR bodies of records and clock events,
 * and the recorder writing them to an MCAP file or to a directory of
 * rotated segments "rec-RUN-SEGMENT.mcap" with a bound on the bytes kept.
 *
 * CDR here is XCDR1 little-endian (encapsulation 00 01 00 00): every
 * primitive aligned to its size (at most 8) from the end of the 4-byte
 * encapsulation, sequences as a uint32 count then the elements, strings as
 * a uint32 length counting a terminating NUL. The bodies decode with any
 * ROS 2 CDR reader given the ros2msg definitions below.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest_int.h"
#include "twin/alloc.h"
#include "twin/version.h"

const char tw__ingest_record_msgdef[] =
    "# A record as it reached the twin's ingest, before decoding.\n"
    "uint64 event\n"
    "int64 ingest_ns\n"
    "int64 source_ns\n"
    "int32 partition\n"
    "int64 offset\n"
    "uint32 flags\n"
    "string topic\n"
    "uint8[] key\n"
    "twin_msgs/IngestHeader[] headers\n"
    "uint8[] data\n"
    "================================================================"
    "================\n"
    "MSG: twin_msgs/IngestHeader\n"
    "string name\n"
    "uint8[] value\n";

const char tw__ingest_clock_msgdef[] =
    "# Processing time advanced: the watermark may move.\n"
    "uint64 event\n"
    "int64 now_ns\n";

/* --- CDR ------------------------------------------------------------------ */

static int pad(tw_buf *b, size_t align) {
  static const char zero[8] = {0};
  size_t pos = b->len - 4;
  size_t n = (align - pos % align) % align;
  return n ? tw_buf_append(b, zero, n) : TW_OK;
}

static int put(tw_buf *b, const void *v, size_t n) {
  int rc = pad(b, n);
  return rc == TW_OK ? tw_buf_append(b, v, n) : rc;
}

static int put_u32(tw_buf *b, uint32_t v) { return put(b, &v, 4); }

static int put_bytes(tw_buf *b, const void *p, size_t n) {
  if (n > UINT32_MAX - 1)
    return TW_ELIMIT;
  int rc = put_u32(b, (uint32_t)n);
  return rc == TW_OK && n ? tw_buf_append(b, p, n) : rc;
}

static int put_string(tw_buf *b, const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;
  if (n >= UINT32_MAX - 1)
    return TW_ELIMIT;
  int rc = put_u32(b, (uint32_t)n + 1);
  if (rc == TW_OK && n)
    rc = tw_buf_append(b, s, n);
  return rc == TW_OK ? tw_buf_putc(b, '\0') : rc;
}

static const char encap[4] = {0, 1, 0, 0};

int tw__ingest_encode_record(tw_buf *out, uint64_t event, int64_t ingest_ns,
                             const tw_ingest_msg *m) {
  uint32_t flags = m->flags;
  int32_t part = m->partition;
  /* Alignment counts from the encapsulation's end: a body starts the
   * buffer. */
  int rc = out->len == 0 ? tw_buf_append(out, encap, 4) : TW_EINVAL;
  if (rc == TW_OK)
    rc = put(out, &event, 8);
  if (rc == TW_OK)
    rc = put(out, &ingest_ns, 8);
  if (rc == TW_OK)
    rc = put(out, &m->source_ns, 8);
  if (rc == TW_OK)
    rc = put(out, &part, 4);
  if (rc == TW_OK)
    rc = put(out, &m->offset, 8);
  if (rc == TW_OK)
    rc = put(out, &flags, 4);
  if (rc == TW_OK)
    rc = put_string(out, m->topic);
  if (rc == TW_OK)
    rc = put_bytes(out, m->key, m->key ? m->key_len : 0);
  if (rc == TW_OK)
    rc = m->nheaders > TW__INGEST_HEADERS_MAX
             ? TW_ELIMIT
             : put_u32(out, (uint32_t)m->nheaders);
  for (size_t i = 0; rc == TW_OK && i < m->nheaders; i++) {
    rc = put_string(out, m->headers[i].name);
    if (rc == TW_OK)
      rc = put_bytes(out, m->headers[i].value,
                     m->headers[i].value ? m->headers[i].len : 0);
  }
  if (rc == TW_OK)
    rc = put_bytes(out, m->data, m->data ? m->len : 0);
  return rc;
}

int tw__ingest_encode_clock(tw_buf *out, uint64_t event, int64_t now_ns) {
  int rc = out->len == 0 ? tw_buf_append(out, encap, 4) : TW_EINVAL;
  if (rc == TW_OK)
    rc = put(out, &event, 8);
  return rc == TW_OK ? put(out, &now_ns, 8) : rc;
}

typedef struct rd {
  const uint8_t *p;
  size_t len, pos; /* pos counts from the start of the body */
  const char *what;
} rd;

static bool get(rd *r, void *v, size_t n) {
  size_t a = (n - (r->pos - 4) % n) % n;
  if (r->pos + a > r->len || r->len - r->pos - a < n)
    return false;
  r->pos += a;
  memcpy(v, r->p + r->pos, n);
  r->pos += n;
  return true;
}

static bool get_bytes(rd *r, const void **p, size_t *n) {
  uint32_t len;
  if (!get(r, &len, 4) || len > r->len - r->pos)
    return false;
  *p = len ? r->p + r->pos : NULL;
  *n = len;
  r->pos += len;
  return true;
}

static bool get_string(rd *r, const char **s) {
  const void *p;
  size_t n;
  if (!get_bytes(r, &p, &n) || n == 0)
    return false;
  const char *c = p;
  if (c[n - 1] != '\0' || memchr(c, '\0', n - 1) != NULL)
    return false;
  *s = c;
  return true;
}

static int open_body(rd *r, const void *data, size_t len, tw_err *err) {
  if (len < 4 || memcmp(data, encap, 4) != 0)
    return tw_err_set(err, TW_EPARSE,
                      "%s: not a little-endian CDR body (encapsulation)",
                      r->what);
  r->p = data;
  r->len = len;
  r->pos = 4;
  return TW_OK;
}

int tw__ingest_decode_record(const void *data, size_t len, tw__ingest_body *out,
                             tw_ingest_header **hdrs, size_t *hcap,
                             tw_err *err) {
  rd r = {0};
  r.what = "ingest record";
  int rc = open_body(&r, data, len, err);
  if (rc != TW_OK)
    return rc;
  memset(out, 0, sizeof *out);
  tw_ingest_msg *m = &out->msg;
  uint32_t nh = 0;
  bool ok = get(&r, &out->event, 8) && get(&r, &out->ingest_ns, 8) &&
            get(&r, &m->source_ns, 8) && get(&r, &m->partition, 4) &&
            get(&r, &m->offset, 8) && get(&r, &m->flags, 4) &&
            get_string(&r, &m->topic) && get_bytes(&r, &m->key, &m->key_len) &&
            get(&r, &nh, 4);
  if (ok && nh > TW__INGEST_HEADERS_MAX)
    return tw_err_set(err, TW_EPARSE, "ingest record: %" PRIu32 " headers", nh);
  if (ok && nh > *hcap) {
    tw_ingest_header *h = tw_reallocarray(*hdrs, nh, sizeof *h);
    if (h == NULL)
      return tw_err_set(err, TW_ENOMEM, "ingest record: out of memory");
    *hdrs = h;
    *hcap = nh;
  }
  for (uint32_t i = 0; ok && i < nh; i++)
    ok = get_string(&r, &(*hdrs)[i].name) &&
         get_bytes(&r, &(*hdrs)[i].value, &(*hdrs)[i].len);
  m->headers = *hdrs;
  m->nheaders = nh;
  ok = ok && get_bytes(&r, &m->data, &m->len);
  if (!ok)
    return tw_err_set(err, TW_EPARSE,
                      "ingest record: truncated or malformed at byte %zu",
                      r.pos);
  if (m->topic != NULL && m->topic[0] == '\0')
    m->topic = "";
  return TW_OK;
}

int tw__ingest_decode_clock(const void *data, size_t len, uint64_t *event,
                            int64_t *now_ns, tw_err *err) {
  rd r = {0};
  r.what = "ingest clock";
  int rc = open_body(&r, data, len, err);
  if (rc != TW_OK)
    return rc;
  if (!get(&r, event, 8) || !get(&r, now_ns, 8))
    return tw_err_set(err, TW_EPARSE, "ingest clock: truncated");
  return TW_OK;
}

/* --- Segments --------------------------------------------------------------
 */

typedef struct seg {
  char *path;
  uint64_t run, index, bytes;
} seg;

struct tw__recorder {
  char *path; /* the file, or the directory */
  bool dir, no_sync;
  uint64_t segment_bytes, max_bytes;
  char *twin, *sources_json;
  size_t nsrc;
  struct {
    char *name, *kind;
  } * src;
  tw_trace_writer *w;
  uint16_t clock_ch, *src_ch;
  uint64_t run, index, written;
  seg *segs; /* closed segments kept, oldest first */
  size_t nsegs, capsegs;
  uint64_t opened, deleted, bytes;
  bool failed;
};

static bool parse_seg_name(const char *name, uint64_t *run, uint64_t *idx) {
  char tail[8];
  unsigned long long a, b;
  if (sscanf(name, "rec-%llu-%llu%7s", &a, &b, tail) != 3 ||
      strcmp(tail, ".mcap") != 0)
    return false;
  *run = a;
  *idx = b;
  return true;
}

static int seg_cmp(const void *pa, const void *pb) {
  const seg *a = pa, *b = pb;
  if (a->run != b->run)
    return a->run < b->run ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* The segments present in dir, sorted. */
static int scan_dir(const char *dir, seg **out, size_t *n, size_t *cap,
                    tw_err *err) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return tw_err_sys(err, errno, "%s: cannot open the recording directory",
                      dir);
  struct dirent *e;
  int rc = TW_OK;
  while (rc == TW_OK && (e = readdir(d)) != NULL) {
    uint64_t run, idx;
    if (!parse_seg_name(e->d_name, &run, &idx))
      continue;
    if (*n == *cap) {
      size_t c = *cap ? 2 * *cap : 16;
      seg *s = tw_reallocarray(*out, c, sizeof *s);
      if (s == NULL) {
        rc = tw_err_set(err, TW_ENOMEM, "out of memory");
        break;
      }
      *out = s;
      *cap = c;
    }
    tw_buf p = TW_BUF_INIT;
    if (tw_buf_printf(&p, "%s/%s", dir, e->d_name) != TW_OK) {
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
      break;
    }
    struct stat st;
    seg *s = &(*out)[(*n)++];
    s->path = p.data;
    s->run = run;
    s->index = idx;
    s->bytes = stat(p.data, &st) == 0 ? (uint64_t)st.st_size : 0;
  }
  closedir(d);
  if (rc == TW_OK && *n > 1)
    qsort(*out, *n, sizeof **out, seg_cmp);
  return rc;
}

static void segs_free(seg *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    tw_free(s[i].path);
  tw_free(s);
}

static char *seg_path(const tw__recorder *r) {
  tw_buf p = TW_BUF_INIT;
  if (tw_buf_printf(&p, "%s/rec-%06" PRIu64 "-%06" PRIu64 ".mcap", r->path,
                    r->run, r->index) != TW_OK)
    return NULL;
  return p.data;
}

static int open_segment(tw__recorder *r, uint64_t first_event, tw_err *err) {
  char *path = r->dir ? seg_path(r) : tw_strdup(r->path);
  if (path == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.no_sync = r->no_sync;
  o.profile = "twin.ingest";
  int rc = tw_trace_writer_open(path, &o, &r->w, err);
  tw_free(path);
  if (rc != TW_OK)
    return rc;
  uint16_t rs = 0, cs = 0;
  rc = tw_trace_writer_add_schema(
      r->w, TW__INGEST_RECORD_SCHEMA, TW_TRACE_SCHEMA_ROS2MSG,
      tw__ingest_record_msgdef, strlen(tw__ingest_record_msgdef), &rs, err);
  if (rc == TW_OK)
    rc = tw_trace_writer_add_schema(
        r->w, TW__INGEST_CLOCK_SCHEMA, TW_TRACE_SCHEMA_ROS2MSG,
        tw__ingest_clock_msgdef, strlen(tw__ingest_clock_msgdef), &cs, err);
  if (rc == TW_OK)
    rc = tw_trace_writer_add_channel(r->w, TW__INGEST_CLOCK_TOPIC,
                                     TW_TRACE_MESSAGE_CDR, cs, NULL, 0,
                                     &r->clock_ch, err);
  for (size_t i = 0; rc == TW_OK && i < r->nsrc; i++) {
    tw_buf topic = TW_BUF_INIT;
    if (tw_buf_printf(&topic, "/ingest/%s", r->src[i].name) != TW_OK) {
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
      break;
    }
    tw_trace_kv kv[2] = {{"twin.source", r->src[i].name},
                         {"twin.kind", r->src[i].kind}};
    rc = tw_trace_writer_add_channel(r->w, topic.data, TW_TRACE_MESSAGE_CDR, rs,
                                     kv, 2, &r->src_ch[i], err);
    tw_buf_fini(&topic);
  }
  char run[24], idx[24], first[24];
  (void)snprintf(run, sizeof run, "%" PRIu64, r->run);
  (void)snprintf(idx, sizeof idx, "%" PRIu64, r->index);
  (void)snprintf(first, sizeof first, "%" PRIu64, first_event);
  tw_trace_kv meta[] = {{"twin", r->twin},      {"sources", r->sources_json},
                        {"run", run},           {"segment", idx},
                        {"first_event", first}, {"version", TW_VERSION_STRING}};
  if (rc == TW_OK)
    rc = tw_trace_writer_add_metadata(r->w, "twin.ingest", meta,
                                      sizeof meta / sizeof meta[0], err);
  if (rc != TW_OK) {
    tw_trace_writer_abort(r->w);
    r->w = NULL;
    return rc;
  }
  r->written = 0;
  r->opened++;
  return TW_OK;
}

/* Deletes the oldest closed segments while the total exceeds max_bytes. */
static void enforce_bound(tw__recorder *r) {
  if (!r->dir || r->max_bytes == 0)
    return;
  uint64_t total = r->written;
  for (size_t i = 0; i < r->nsegs; i++)
    total += r->segs[i].bytes;
  size_t drop = 0;
  while (drop < r->nsegs && total > r->max_bytes) {
    if (unlink(r->segs[drop].path) == 0 || errno == ENOENT) {
      total -= r->segs[drop].bytes;
      r->deleted++;
    }
    tw_free(r->segs[drop].path);
    drop++;
  }
  if (drop) {
    memmove(r->segs, r->segs + drop, (r->nsegs - drop) * sizeof *r->segs);
    r->nsegs -= drop;
  }
}

static int close_segment(tw__recorder *r, tw_err *err) {
  if (r->w == NULL)
    return TW_OK;
  char *path = r->dir ? seg_path(r) : NULL;
  int rc = tw_trace_writer_close(r->w, err);
  r->w = NULL;
  if (rc != TW_OK || !r->dir) {
    tw_free(path);
    return rc;
  }
  if (path == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  if (r->nsegs == r->capsegs) {
    size_t c = r->capsegs ? 2 * r->capsegs : 16;
    seg *s = tw_reallocarray(r->segs, c, sizeof *s);
    if (s == NULL) {
      tw_free(path);
      return tw_err_set(err, TW_ENOMEM, "out of memory");
    }
    r->segs = s;
    r->capsegs = c;
  }
  struct stat st;
  seg *s = &r->segs[r->nsegs++];
  s->path = path;
  s->run = r->run;
  s->index = r->index;
  s->bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : r->written;
  r->index++;
  enforce_bound(r);
  return TW_OK;
}

char *tw__ingest_sources_json(const tw__recorder_source *src, size_t n) {
  tw_buf b = TW_BUF_INIT;
  int rc = tw_buf_putc(&b, '[');
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    tw_buf s = TW_BUF_INIT;
    rc = tw_buf_printf(&s, "%s:%s", src[i].kind, src[i].name);
    if (rc == TW_OK && i)
      rc = tw_buf_putc(&b, ',');
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(&b, s.data, s.len);
    tw_buf_fini(&s);
  }
  if (rc == TW_OK)
    rc = tw_buf_putc(&b, ']');
  if (rc != TW_OK) {
    tw_buf_fini(&b);
    return NULL;
  }
  return b.data;
}

static size_t len_of(const char *s) { return s != NULL ? strlen(s) : 0; }

int tw__recorder_open(const char *path, uint64_t segment_bytes,
                      uint64_t max_bytes, bool no_sync, const char *twin,
                      const tw__recorder_source *src, size_t nsrc,
                      tw__recorder **out, tw_err *err) {
  tw__recorder *r = tw_calloc(1, sizeof *r);
  if (r == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  size_t pl = len_of(path);
  r->dir = !(pl >= 5 && strcmp(path + pl - 5, ".mcap") == 0);
  r->no_sync = no_sync;
  r->segment_bytes = segment_bytes ? segment_bytes : (uint64_t)256 << 20;
  r->max_bytes = max_bytes;
  r->path = tw_strdup(path);
  r->twin = tw_strdup(twin != NULL ? twin : "");
  r->sources_json = tw__ingest_sources_json(src, nsrc);
  r->src = tw_calloc(nsrc ? nsrc : 1, sizeof *r->src);
  r->src_ch = tw_calloc(nsrc ? nsrc : 1, sizeof *r->src_ch);
  r->nsrc = nsrc;
  int rc = r->path && r->twin && r->sources_json && r->src && r->src_ch
               ? TW_OK
               : tw_err_set(err, TW_ENOMEM, "out of memory");
  for (size_t i = 0; rc == TW_OK && i < nsrc; i++) {
    r->src[i].name = tw_strdup(src[i].name);
    r->src[i].kind = tw_strdup(src[i].kind);
    if (r->src[i].name == NULL || r->src[i].kind == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  if (rc == TW_OK && r->dir) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
      rc = tw_err_sys(err, errno, "%s: cannot create the recording directory",
                      path);
    if (rc == TW_OK)
      rc = scan_dir(path, &r->segs, &r->nsegs, &r->capsegs, err);
    if (rc == TW_OK)
      r->run = r->nsegs ? r->segs[r->nsegs - 1].run + 1 : 1;
  }
  if (rc == TW_OK)
    rc = open_segment(r, 0, err);
  if (rc != TW_OK) {
    r->w = NULL;
    (void)tw__recorder_close(r, NULL);
    return rc;
  }
  *out = r;
  return TW_OK;
}

int tw__recorder_write(tw__recorder *r, uint32_t source, uint64_t event,
                       int64_t log_ns, int64_t publish_ns, const void *data,
                       size_t len, tw_err *err) {
  if (r->failed)
    return tw_err_set(err, TW_ESTATE, "%s: the recording failed before",
                      r->path);
  int rc = TW_OK;
  if (r->dir && r->written >= r->segment_bytes) {
    rc = close_segment(r, err);
    if (rc == TW_OK)
      rc = open_segment(r, event, err);
  }
  if (rc == TW_OK && r->w == NULL)
    rc = tw_err_set(err, TW_ESTATE, "%s: no open segment", r->path);
  uint16_t ch = source == UINT32_MAX ? r->clock_ch : r->src_ch[source];
  if (rc == TW_OK)
    rc = tw_trace_writer_write(
        r->w, ch, (uint32_t)event, (uint64_t)(log_ns < 0 ? 0 : log_ns),
        (uint64_t)(publish_ns < 0 ? 0 : publish_ns), data, len, err);
  if (rc != TW_OK) {
    r->failed = true;
    return rc;
  }
  r->written += len + 31; /* the message record's own bytes */
  r->bytes += len;
  return TW_OK;
}

int tw__recorder_metadata(tw__recorder *r, const char *name,
                          const tw_trace_kv *kv, size_t n, tw_err *err) {
  if (r->failed || r->w == NULL)
    return tw_err_set(err, TW_ESTATE, "%s: the recording failed before",
                      r->path);
  int rc = tw_trace_writer_add_metadata(r->w, name, kv, n, err);
  if (rc != TW_OK && tw_trace_writer_failed(r->w))
    r->failed = true;
  return rc;
}

uint64_t tw__recorder_opened(const tw__recorder *r) { return r->opened; }

int tw__recorder_flush(tw__recorder *r, tw_err *err) {
  if (r->failed || r->w == NULL)
    return tw_err_set(err, TW_ESTATE, "%s: the recording failed before",
                      r->path);
  int rc = tw_trace_writer_flush(r->w, err);
  if (rc != TW_OK)
    r->failed = true;
  return rc;
}

void tw__recorder_counts(const tw__recorder *r, uint64_t *segments,
                         uint64_t *deleted, uint64_t *bytes) {
  *segments = r->opened;
  *deleted = r->deleted;
  *bytes = r->bytes;
}

int tw__recorder_close(tw__recorder *r, tw_err *err) {
  if (r == NULL)
    return TW_OK;
  int rc = TW_OK;
  if (r->w != NULL)
    rc = r->failed ? (tw_trace_writer_abort(r->w), TW_OK)
                   : close_segment(r, err);
  segs_free(r->segs, r->nsegs);
  for (size_t i = 0; r->src != NULL && i < r->nsrc; i++) {
    tw_free(r->src[i].name);
    tw_free(r->src[i].kind);
  }
  tw_free(r->src);
  tw_free(r->src_ch);
  tw_free(r->sources_json);
  tw_free(r->twin);
  tw_free(r->path);
  tw_free(r);
  return rc;
}

/* --- Reading a recording's segments ------------------------------------- */

int tw__recording_segments(const char *path, char ***files, size_t *n,
                           tw_err *err) {
  struct stat st;
  *files = NULL;
  *n = 0;
  if (stat(path, &st) != 0)
    return tw_err_sys(err, errno, "%s: cannot open the recording", path);
  if (!S_ISDIR(st.st_mode)) {
    char **f = tw_calloc(1, sizeof *f);
    if (f == NULL || (f[0] = tw_strdup(path)) == NULL) {
      tw_free(f);
      return tw_err_set(err, TW_ENOMEM, "out of memory");
    }
    *files = f;
    *n = 1;
    return TW_OK;
  }
  seg *s = NULL;
  size_t ns = 0, cap = 0;
  int rc = scan_dir(path, &s, &ns, &cap, err);
  if (rc == TW_OK && ns == 0)
    rc = tw_err_set(err, TW_ENOENT, "%s: no segments (rec-RUN-N.mcap)", path);
  size_t first = ns;
  while (rc == TW_OK && first > 0 && s[first - 1].run == s[ns - 1].run)
    first--;
  char **f = rc == TW_OK ? tw_calloc(ns - first, sizeof *f) : NULL;
  if (rc == TW_OK && f == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  for (size_t i = first; rc == TW_OK && i < ns; i++) {
    f[i - first] = s[i].path;
    s[i].path = NULL;
  }
  segs_free(s, ns);
  if (rc != TW_OK) {
    tw_free(f);
    return rc;
  }
  *files = f;
  *n = ns - first;
  return TW_OK;
}

void tw__recording_segments_free(char **files, size_t n) {
  for (size_t i = 0; files != NULL && i < n; i++)
    tw_free(files[i]);
  tw_free(files);
}
