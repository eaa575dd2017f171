/*
 * test_reader.c - the MCAP reader and its iterators, against files of the
 * C writer: round trips (zstd, none, no CRCs, no summary, in memory), many
 * channels, messages larger than a chunk, queries by channel and time,
 * every truncation and every byte flip of a small file, corrupt CRCs and
 * indexes reported with their offsets, limits, metadata and attachments,
 * and allocation failures.
 */
#include "trace_int.h"
#include "trace_test.h"

static void expect_sorted(rec_list *want) {
  qsort(want->m, want->n, sizeof *want->m, rec_cmp_time);
}

static void round_trip(const tw_trace_writer_opts *o, const sample_spec *s,
                       bool verify) {
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  rec_list want = {0}, got = {0}, got_mem = {0};
  assert_int_equal(write_sample(path, o, s, &want), TW_OK);
  expect_sorted(&want);
  tw_trace_reader_opts ro;
  tw_trace_reader_opts_init(&ro);
  ro.verify = verify;
  tw_err err;
  tw_err_init(&err);
  int rc = read_all(path, NULL, 0, &ro, &got, &err);
  if (rc != 0)
    fail_msg("%s", err.msg);
  assert_same_messages(&want, &got);
  size_t n;
  uint8_t *bytes = slurp(path, &n);
  assert_int_equal(read_all(NULL, bytes, n, &ro, &got_mem, &err), 0);
  assert_same_messages(&want, &got_mem);
  free(bytes);
  rec_free(&want);
  rec_free(&got);
  rec_free(&got_mem);
}

static void round_trip_zstd(void **state) {
  (void)state;
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 8192;
  sample_spec s = {3000, 3, 200, 30000};
  round_trip(&o, &s, true);
  o.zstd_level = 19;
  round_trip(&o, &s, false);
  o.zstd_level = -5;
  round_trip(&o, &s, false);
}

static void round_trip_uncompressed(void **state) {
  (void)state;
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.compression = TW_TRACE_COMPRESSION_NONE;
  o.chunk_size = 8192;
  sample_spec s = {3000, 3, 200, 30000};
  round_trip(&o, &s, true);
  o.no_crc = true;
  round_trip(&o, &s, true);
}

static void round_trip_without_summary(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.no_summary = true;
  o.chunk_size = 2000;
  sample_spec s = {1000, 4, 100, 5000};
  round_trip(&o, &s, true);
  assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  const tw_trace_info *info = tw_trace_reader_info(r);
  assert_false(info->has_summary);
  assert_false(info->has_statistics);
  assert_true(info->scanned);
  assert_false(info->indexed);
  /* The scan counts what the Statistics record would hold. */
  assert_int_equal(info->stats.message_count, 1000);
  assert_int_equal(info->stats.channel_count, 4);
  assert_int_equal(info->stats.schema_count, 1);
  assert_int_equal(info->stats.message_start_time, sample_time(0));
  assert_int_equal(tw_trace_reader_channel_count(r), 4);
  const tw_trace_channel *c = tw_trace_reader_channel_get(r, 2);
  assert_non_null(c);
  assert_true(c->has_count);
  assert_int_equal(c->message_count, 250);
  assert_string_equal(c->topic, "/ch/1");
  assert_int_equal(c->n_metadata, 1);
  assert_string_equal(c->metadata[0].key, "index");
  assert_string_equal(c->metadata[0].value, "1");
  assert_ptr_equal(tw_trace_reader_channel_find(r, "/ch/3"),
                   tw_trace_reader_channel_get(r, 4));
  assert_null(tw_trace_reader_channel_find(r, "/nope"));
  assert_null(tw_trace_reader_channel_get(r, 9));
  tw_trace_reader_close(r);
}

static void an_empty_trace(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, NULL, &w, NULL), TW_OK);
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);
  tw_trace_reader_opts ro;
  tw_trace_reader_opts_init(&ro);
  ro.verify = true;
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, &ro, &r, NULL), TW_OK);
  const tw_trace_info *info = tw_trace_reader_info(r);
  assert_true(info->has_summary);
  assert_true(info->has_statistics);
  assert_int_equal(info->stats.message_count, 0);
  assert_int_equal(info->stats.message_start_time, 0);
  assert_string_equal(info->profile, "");
  assert_string_equal(info->library, "twin " TW_VERSION_STRING);
  rec_list got = {0};
  assert_int_equal(read_messages(r, NULL, &got, NULL), 0);
  assert_int_equal(got.n, 0);
  tw_trace_reader_close(r);
}

static void many_channels_and_queries(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 16384;
  sample_spec s = {20000, 2000, 40, 0};
  rec_list want = {0};
  assert_int_equal(write_sample(path, &o, &s, &want), TW_OK);
  expect_sorted(&want);
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  assert_int_equal(tw_trace_reader_channel_count(r), 2000);
  for (size_t i = 0; i < 2000; i++) {
    const tw_trace_channel *c = tw_trace_reader_channel_at(r, i);
    assert_int_equal(c->id, i + 1);
    assert_int_equal(c->message_count, 10);
  }
  /* Three channels over a time window. */
  uint16_t pick[3] = {7, 1999, 1000};
  tw_trace_query q = {pick, 3, sample_time(3000), sample_time(17000)};
  rec_list got = {0}, expect = {0};
  assert_int_equal(read_messages(r, &q, &got, NULL), 0);
  for (size_t i = 0; i < want.n; i++) {
    const rec_msg *m = &want.m[i];
    if ((m->channel == 7 || m->channel == 1999 || m->channel == 1000) &&
        m->log_time >= q.start_time && m->log_time <= q.end_time) {
      tw_trace_message tm = {m->channel,      m->sequence, m->log_time,
                             m->publish_time, m->data,     m->len};
      rec_add(&expect, &tm);
    }
  }
  assert_true(expect.n > 10);
  assert_same_messages(&expect, &got);
  /* An unknown channel is an error; an empty window yields nothing. */
  uint16_t none = 2001;
  tw_trace_query bad = {&none, 1, 0, UINT64_MAX};
  tw_trace_iter *it = NULL;
  assert_int_equal(tw_trace_iter_new(r, &bad, &it, NULL), TW_ENOENT);
  tw_trace_query empty = {NULL, 0, 10, 9};
  rec_list nothing = {0};
  assert_int_equal(read_messages(r, &empty, &nothing, NULL), 0);
  assert_int_equal(nothing.n, 0);
  tw_trace_reader_close(r);
  rec_free(&want);
  rec_free(&got);
  rec_free(&expect);
}

/* Two iterators over one reader run independently. */
static void two_iterators(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 1024;
  sample_spec s = {500, 2, 60, 0};
  assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, NULL, &r, NULL), TW_OK);
  uint16_t one = 1, two = 2;
  tw_trace_query q1 = {&one, 1, 0, UINT64_MAX}, q2 = {&two, 1, 0, UINT64_MAX};
  tw_trace_iter *a = NULL, *b = NULL;
  assert_int_equal(tw_trace_iter_new(r, &q1, &a, NULL), TW_OK);
  assert_int_equal(tw_trace_iter_new(r, &q2, &b, NULL), TW_OK);
  tw_trace_message ma, mb;
  size_t n = 0;
  uint64_t last = 0;
  while (tw_trace_iter_next(a, &ma, NULL) == 1) {
    assert_int_equal(tw_trace_iter_next(b, &mb, NULL), 1);
    assert_int_equal(ma.channel_id, 1);
    assert_int_equal(mb.channel_id, 2);
    assert_true(ma.log_time >= last);
    last = ma.log_time;
    n++;
  }
  assert_int_equal(n, 250);
  assert_int_equal(tw_trace_iter_next(b, &mb, NULL), 0);
  assert_int_equal(tw_trace_iter_next(b, &mb, NULL), 0);
  tw_trace_iter_free(a);
  tw_trace_iter_free(b);
  tw_trace_reader_close(r);
}

/* Every strict prefix of a file is refused (and the full file read). */
static void every_truncation_is_refused(void **state) {
  (void)state;
  char path[128], cut[128];
  path_in_dir(path, sizeof path, "t.mcap");
  path_in_dir(cut, sizeof cut, "cut.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 300;
  sample_spec s = {40, 2, 30, 0};
  assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
  size_t n;
  uint8_t *bytes = slurp(path, &n);
  assert_true(n > 1000);
  for (size_t len = 0; len < n; len++) {
    tw_err err;
    tw_err_init(&err);
    tw_trace_reader *r = NULL;
    int rc = tw_trace_reader_open_mem(bytes, len, "cut", NULL, &r, &err);
    assert_int_equal(rc, TW_EPARSE);
    assert_null(r);
    assert_non_null(strstr(err.msg, "cut: at byte "));
    if (len % 7 == 0) { /* the same through a file */
      spit(cut, bytes, len);
      tw_err_init(&err);
      assert_int_equal(tw_trace_reader_open(cut, NULL, &r, &err), TW_EPARSE);
    }
  }
  rec_list got = {0};
  assert_int_equal(read_all(NULL, bytes, n, NULL, &got, NULL), 0);
  assert_int_equal(got.n, 40);
  rec_free(&got);
  free(bytes);
}

/* Opens, verifies and reads everything; returns the first error. */
static int exercise(const uint8_t *bytes, size_t n, tw_err *err) {
  tw_trace_reader *r = NULL;
  tw_trace_reader_opts o;
  tw_trace_reader_opts_init(&o);
  o.max_chunk = 1 << 20;
  int rc = tw_trace_reader_open_mem(bytes, n, "x", &o, &r, err);
  if (rc != TW_OK)
    return rc;
  tw_err verr;
  tw_err_init(&verr);
  int vrc = tw_trace_reader_verify(r, &verr);
  rc = read_messages(r, NULL, NULL, err);
  if (rc == TW_OK)
    tw_err_copy(err, &verr);
  for (size_t i = 0; i < tw_trace_reader_attachment_count(r); i++) {
    tw_buf b = TW_BUF_INIT;
    (void)tw_trace_reader_attachment_read(r, i, &b, NULL);
    tw_buf_fini(&b);
  }
  tw_trace_reader_close(r);
  return rc != TW_OK ? rc : vrc;
}

/* Flipping any byte never crashes and never passes unnoticed where a CRC
 * covers it: the data section and the summary are all under CRCs. */
static void every_byte_flip_is_survived(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 400;
  o.compression = TW_TRACE_COMPRESSION_NONE;
  tw_trace_writer *w = NULL;
  assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_OK);
  tw_trace_kv kv = {"k", "v"};
  assert_int_equal(tw_trace_writer_add_metadata(w, "m", &kv, 1, NULL), TW_OK);
  assert_int_equal(
      tw_trace_writer_add_attachment(w, "a", "t/p", 1, 2, "abc", 3, NULL),
      TW_OK);
  tw_trace_port p = {"/p", "m", 2};
  uint16_t ch;
  assert_int_equal(
      tw_trace_writer_add_port(w, &p, TW_TRACE_ENCODING_CDR, &ch, NULL), TW_OK);
  for (int k = 0; k < 30; k++) {
    double v[2] = {k, -k};
    assert_int_equal(tw_trace_writer_write_port(w, ch, (uint64_t)(k * 10 % 70),
                                                k, v, 2, NULL),
                     TW_OK);
  }
  assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);
  size_t n;
  uint8_t *bytes = slurp(path, &n);
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(exercise(bytes, n, &err), TW_OK);
  size_t caught = 0;
  for (size_t i = 0; i < n; i++) {
    for (int bit = 0; bit < 8; bit += 3) {
      bytes[i] ^= (uint8_t)(1u << bit);
      tw_err_init(&err);
      int rc = exercise(bytes, n, &err);
      bytes[i] ^= (uint8_t)(1u << bit);
      if (rc == TW_OK)
        print_message("unnoticed: byte %zu of %zu, bit %d\n", i, n, bit);
      if (rc != TW_OK) {
        if (rc != TW_EPARSE && rc != TW_ELIMIT && rc != TW_ENOTSUP)
          fail_msg("byte %zu: %s: %s", i, tw_err_name(rc), err.msg);
        assert_true(err.msg[0] != '\0');
        caught++;
      }
    }
  }
  /* Every byte is under a CRC or checked against one. */
  if (caught != 3 * n)
    fail_msg("%zu of %zu flips went unnoticed", 3 * n - caught, 3 * n);
  free(bytes);
}

/* Overwrites the summary CRC in the footer with 0 ("not available"), so a
 * test may edit the summary. */
static void drop_summary_crc(uint8_t *bytes, size_t n) {
  memset(bytes + n - TW__MAGIC_LEN - 4, 0, 4);
}

static void corruption_names_its_offset(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.compression = TW_TRACE_COMPRESSION_NONE;
  o.chunk_size = 500;
  sample_spec s = {60, 2, 40, 0};
  assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
  size_t n;
  uint8_t *bytes = slurp(path, &n);
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open_mem(bytes, n, "t", NULL, &r, NULL),
                   TW_OK);
  tw__chunk c0 = r->chunks[0];
  uint64_t summary = r->summary_start;
  tw_trace_reader_close(r);
  char want[128];
  tw_err err;

  /* A byte of a chunk's records: the chunk's CRC, when it is read. */
  bytes[c0.offset + c0.length - 5] ^= 1;
  assert_int_equal(tw_trace_reader_open_mem(bytes, n, "t", NULL, &r, NULL),
                   TW_OK);
  tw_err_init(&err);
  tw_trace_iter *it = NULL;
  assert_int_equal(tw_trace_iter_new(r, NULL, &it, NULL), TW_OK);
  tw_trace_message m;
  assert_int_equal(tw_trace_iter_next(it, &m, &err), TW_EPARSE);
  snprintf(want, sizeof want, "t: at byte %llu: chunk CRC mismatch",
           (unsigned long long)c0.offset);
  assert_non_null(strstr(err.msg, want));
  /* The error sticks. */
  tw_err err2;
  tw_err_init(&err2);
  assert_int_equal(tw_trace_iter_next(it, &m, &err2), TW_EPARSE);
  assert_string_equal(err.msg, err2.msg);
  tw_trace_iter_free(it);
  /* verify finds it too, first through the data section CRC. */
  tw_err_init(&err);
  assert_int_equal(tw_trace_reader_verify(r, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "chunk CRC mismatch"));
  tw_trace_reader_close(r);
  bytes[c0.offset + c0.length - 5] ^= 1;

  /* A byte of the Header (the library's name): only the data section CRC
   * covers it. */
  uint64_t lib = TW__MAGIC_LEN + TW__REC_HDR + 4 + 4;
  assert_int_equal(bytes[lib], 't');
  bytes[lib] ^= 0x20;
  assert_int_equal(tw_trace_reader_open_mem(bytes, n, "t", NULL, &r, NULL),
                   TW_OK);
  assert_string_equal(tw_trace_reader_info(r)->library,
                      "Twin " TW_VERSION_STRING);
  tw_err_init(&err);
  assert_int_equal(tw_trace_reader_verify(r, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "data section CRC mismatch"));
  tw_trace_reader_close(r);
  tw_trace_reader_opts ro;
  tw_trace_reader_opts_init(&ro);
  ro.verify = true;
  assert_int_equal(tw_trace_reader_open_mem(bytes, n, "t", &ro, &r, NULL),
                   TW_EPARSE);
  bytes[lib] ^= 0x20;

  /* A byte of the summary: its CRC, at open. */
  bytes[summary + 3] ^= 4;
  tw_err_init(&err);
  assert_int_equal(tw_trace_reader_open_mem(bytes, n, "t", NULL, &r, &err),
                   TW_EPARSE);
  snprintf(want, sizeof want, "t: at byte %llu: summary CRC mismatch",
           (unsigned long long)summary);
  assert_non_null(strstr(err.msg, want));
  bytes[summary + 3] ^= 4;

  /* The first chunk index pointing at the second chunk: refused at open
   * (chunks may not overlap). */
  uint8_t *copy = malloc(n);
  memcpy(copy, bytes, n);
  drop_summary_crc(copy, n);
  uint8_t off_le[8];
  tw__put_u64(off_le, c0.offset);
  uint8_t *ci = NULL;
  for (size_t i = summary; i + 8 <= n; i++)
    if (copy[i] == TW__OP_CHUNK_INDEX && memcmp(copy + i + 25, off_le, 8) == 0)
      ci = copy + i;
  assert_non_null(ci);
  tw__put_u64(ci + 25, c0.offset + c0.length + c0.mi_len);
  tw_err_init(&err);
  assert_int_equal(tw_trace_reader_open_mem(copy, n, "t", NULL, &r, &err),
                   TW_EPARSE);
  assert_non_null(strstr(err.msg, "chunk index"));
  /* A message index entry that lies about a message's time. */
  memcpy(copy, bytes, n);
  uint8_t *mi = copy + c0.offset + c0.length;
  assert_int_equal(mi[0], TW__OP_MESSAGE_INDEX);
  tw__put_u64(mi + TW__REC_HDR + 6, tw__get_u64(mi + TW__REC_HDR + 6) + 1);
  assert_int_equal(tw_trace_reader_open_mem(copy, n, "t", NULL, &r, NULL),
                   TW_OK);
  tw_err_init(&err);
  assert_int_equal(read_messages(r, NULL, NULL, &err), TW_EPARSE);
  assert_non_null(strstr(err.msg, "does not match"));
  tw_trace_reader_close(r);
  free(copy);

  /* Not MCAP at all. */
  tw_err_init(&err);
  assert_int_equal(tw_trace_reader_open_mem("hello", 5, "t", NULL, &r, &err),
                   TW_EPARSE);
  assert_non_null(strstr(err.msg, "too few"));
  uint8_t junk[100] = {0};
  tw_err_init(&err);
  assert_int_equal(
      tw_trace_reader_open_mem(junk, sizeof junk, "t", NULL, &r, &err),
      TW_EPARSE);
  assert_non_null(strstr(err.msg, "no magic"));
  free(bytes);
  tw_err_init(&err);
  assert_int_equal(tw_trace_reader_open("/nonexistent.mcap", NULL, &r, &err),
                   TW_ENOENT);
  assert_int_equal(tw_trace_reader_open(dir, NULL, &r, &err), TW_EINVAL);
}

static void limits_are_enforced(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.chunk_size = 4096;
  sample_spec s = {2000, 2, 100, 0};
  assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
  tw_trace_reader_opts ro;
  tw_err err;

  tw_trace_reader_opts_init(&ro);
  ro.max_record = 1000; /* the summary is longer */
  tw_err_init(&err);
  assert_int_equal(read_all(path, NULL, 0, &ro, NULL, &err), TW_ELIMIT);

  tw_trace_reader_opts_init(&ro);
  ro.max_chunk = 1000;
  tw_err_init(&err);
  assert_int_equal(read_all(path, NULL, 0, &ro, NULL, &err), TW_ELIMIT);
  assert_non_null(strstr(err.msg, "exceeds the limit of 1000"));

  /* Messages out of order by ~10 neighbours make consecutive chunks
   * overlap in time: two are held at once, not one. */
  tw_trace_reader_opts_init(&ro);
  ro.max_loaded = 5000;
  tw_err_init(&err);
  assert_int_equal(read_all(path, NULL, 0, &ro, NULL, &err), TW_ELIMIT);
  assert_non_null(strstr(err.msg, "overlapping in time"));
  ro.max_loaded = 8200;
  assert_int_equal(read_all(path, NULL, 0, &ro, NULL, NULL), 0);
}

static void metadata_and_attachments(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  for (int summary = 0; summary < 2; summary++) {
    tw_trace_writer_opts o;
    tw_trace_writer_opts_init(&o);
    o.no_summary = summary == 0;
    tw_trace_writer *w = NULL;
    assert_int_equal(tw_trace_writer_open(path, &o, &w, NULL), TW_OK);
    tw_trace_kv kv[2] = {{"graph", "sha256:00"}, {"seed", "7"}};
    assert_int_equal(tw_trace_writer_add_metadata(w, "run", kv, 2, NULL),
                     TW_OK);
    assert_int_equal(tw_trace_writer_add_metadata(w, "empty", NULL, 0, NULL),
                     TW_OK);
    uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++)
      big[i] = (uint8_t)(i * 13);
    assert_int_equal(
        tw_trace_writer_add_attachment(w, "big.bin", "application/octet-stream",
                                       9, 8, big, sizeof big, NULL),
        TW_OK);
    assert_int_equal(tw_trace_writer_add_attachment(w, "e", "text/plain", 1, 0,
                                                    NULL, 0, NULL),
                     TW_OK);
    assert_int_equal(tw_trace_writer_close(w, NULL), TW_OK);

    tw_trace_reader_opts ro;
    tw_trace_reader_opts_init(&ro);
    ro.verify = true;
    tw_trace_reader *r = NULL;
    assert_int_equal(tw_trace_reader_open(path, &ro, &r, NULL), TW_OK);
    assert_int_equal(tw_trace_reader_metadata_count(r), 2);
    const tw_trace_metadata *m = tw_trace_reader_metadata_at(r, 0);
    assert_string_equal(m->name, "run");
    assert_int_equal(m->n, 2);
    assert_string_equal(m->kv[1].key, "seed");
    assert_string_equal(m->kv[1].value, "7");
    assert_int_equal(tw_trace_reader_metadata_at(r, 1)->n, 0);
    assert_null(tw_trace_reader_metadata_at(r, 2));
    assert_int_equal(tw_trace_reader_attachment_count(r), 2);
    const tw_trace_attachment *a = tw_trace_reader_attachment_at(r, 0);
    assert_string_equal(a->name, "big.bin");
    assert_string_equal(a->media_type, "application/octet-stream");
    assert_int_equal(a->log_time, 9);
    assert_int_equal(a->create_time, 8);
    assert_int_equal(a->size, sizeof big);
    tw_buf b = TW_BUF_INIT;
    tw_buf_puts(&b, "pre");
    assert_int_equal(tw_trace_reader_attachment_read(r, 0, &b, NULL), TW_OK);
    assert_int_equal(b.len, 3 + sizeof big);
    assert_memory_equal(b.data + 3, big, sizeof big);
    tw_buf_reset(&b);
    assert_int_equal(tw_trace_reader_attachment_read(r, 1, &b, NULL), TW_OK);
    assert_int_equal(b.len, 0);
    assert_int_equal(tw_trace_reader_attachment_read(r, 2, &b, NULL),
                     TW_EINVAL);
    tw_buf_fini(&b);
    const tw_trace_info *info = tw_trace_reader_info(r);
    assert_int_equal(info->stats.attachment_count, 2);
    assert_int_equal(info->stats.metadata_count, 2);
    uint64_t at = a->offset;
    tw_trace_reader_close(r);

    /* A flipped byte of the attachment's data fails its CRC. */
    size_t n;
    uint8_t *bytes = slurp(path, &n);
    bytes[at + 1000] ^= 1;
    drop_summary_crc(bytes, n);
    assert_int_equal(tw_trace_reader_open_mem(bytes, n, "t", NULL, &r, NULL),
                     summary ? TW_OK
                             : TW_EPARSE); /* a scan checks it at once */
    if (summary) {
      b = (tw_buf)TW_BUF_INIT;
      tw_err err;
      tw_err_init(&err);
      assert_int_equal(tw_trace_reader_attachment_read(r, 0, &b, &err),
                       TW_EPARSE);
      assert_non_null(strstr(err.msg, "attachment CRC mismatch"));
      assert_int_equal(b.len, 0);
      tw_buf_fini(&b);
      tw_trace_reader_close(r);
    }
    free(bytes);
  }
}

static int open_and_read(const char *path, const uint8_t *bytes, size_t n) {
  tw_trace_reader_opts o;
  tw_trace_reader_opts_init(&o);
  o.verify = true;
  rec_list got = {0};
  int rc = read_all(path, bytes, n, &o, &got, NULL);
  if (rc == 0)
    assert_int_equal(got.n, 200);
  rec_free(&got);
  return rc;
}

static void every_allocation_failure_is_reported(void **state) {
  (void)state;
  char path[128];
  path_in_dir(path, sizeof path, "t.mcap");
  for (int none = 0; none < 2; none++) {
    for (int summary = 0; summary < 2; summary++) {
      tw_trace_writer_opts o;
      tw_trace_writer_opts_init(&o);
      o.chunk_size = 1000;
      o.compression =
          none ? TW_TRACE_COMPRESSION_NONE : TW_TRACE_COMPRESSION_ZSTD;
      o.no_summary = summary == 0;
      sample_spec s = {200, 3, 50, 3000};
      assert_int_equal(write_sample(path, &o, &s, NULL), TW_OK);
      TW_TEST_ALLOC_FAILURES(open_and_read(path, NULL, 0));
      size_t n;
      uint8_t *bytes = slurp(path, &n);
      TW_TEST_ALLOC_FAILURES(open_and_read(NULL, bytes, n));
      free(bytes);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TRACE_TEST(round_trip_zstd),
      TRACE_TEST(round_trip_uncompressed),
      TRACE_TEST(round_trip_without_summary),
      TRACE_TEST(an_empty_trace),
      TRACE_TEST(many_channels_and_queries),
      TRACE_TEST(two_iterators),
      TRACE_TEST(every_truncation_is_refused),
      TRACE_TEST(every_byte_flip_is_survived),
      TRACE_TEST(corruption_names_its_offset),
      TRACE_TEST(limits_are_enforced),
      TRACE_TEST(metadata_and_attachments),
      TRACE_TEST(every_allocation_failure_is_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
