/*
 * trace_tool.c - the C side of the MCAP interoperability tests
 * (test_mcap_interop.py) and of the trace benchmark's peer comparison.
 *
 *   trace_tool write OUT [--zstd LEVEL | --none] [--chunk-size N]
 *                        [--messages N] [--no-summary] [--no-crc]
 *       writes a deterministic sample trace (schemas, raw and port
 *       channels, messages out of log-time order, messages larger than a
 *       chunk, metadata, an attachment) and prints, as JSON lines, the
 *       header and every raw message it wrote (port samples are checked
 *       by decoding them).
 *   trace_tool dump IN [--channel ID]... [--start T] [--end T] [--verify]
 *       reads IN with the C reader and prints what it found, in the same
 *       JSON lines, messages in the iterator's order. Exit 1 with
 *       "error: NAME: message" on stderr when reading fails.
 *
 * Lines: {"type":"header"|"schema"|"channel"|"metadata"|"attachment"|
 * "statistics"|"message", ...}; bytes as lowercase hex.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin/twin.h"

static void put_str(tw_buf *b, const char *s) {
  tw_buf_put_json_string(b, s, strlen(s));
}

static void put_hex(tw_buf *b, const uint8_t *p, size_t n) {
  tw_buf_putc(b, '"');
  tw_buf_reserve(b, 2 * n + 1);
  tw_hex_encode(p, n, b->data + b->len);
  b->len += 2 * n;
  tw_buf_putc(b, '"');
}

static void put_map(tw_buf *b, const tw_trace_kv *kv, size_t n) {
  tw_buf_putc(b, '{');
  for (size_t i = 0; i < n; i++) {
    if (i)
      tw_buf_putc(b, ',');
    put_str(b, kv[i].key);
    tw_buf_putc(b, ':');
    put_str(b, kv[i].value);
  }
  tw_buf_putc(b, '}');
}

static void emit(tw_buf *b) {
  tw_buf_putc(b, '\n');
  fwrite(b->data, 1, b->len, stdout);
  tw_buf_reset(b);
}

static void line_schema(tw_buf *b, uint16_t id, const char *name,
                        const char *enc, const void *data, size_t len) {
  tw_buf_printf(b, "{\"type\":\"schema\",\"id\":%u,\"name\":", (unsigned)id);
  put_str(b, name);
  tw_buf_puts(b, ",\"encoding\":");
  put_str(b, enc);
  tw_buf_puts(b, ",\"data\":");
  put_hex(b, data, len);
  tw_buf_putc(b, '}');
  emit(b);
}

static void line_channel(tw_buf *b, uint16_t id, uint16_t schema,
                         const char *topic, const char *enc,
                         const tw_trace_kv *kv, size_t n) {
  tw_buf_printf(b, "{\"type\":\"channel\",\"id\":%u,\"schema_id\":%u,",
                (unsigned)id, (unsigned)schema);
  tw_buf_puts(b, "\"topic\":");
  put_str(b, topic);
  tw_buf_puts(b, ",\"message_encoding\":");
  put_str(b, enc);
  tw_buf_puts(b, ",\"metadata\":");
  put_map(b, kv, n);
  tw_buf_putc(b, '}');
  emit(b);
}

static void line_message(tw_buf *b, const tw_trace_message *m) {
  tw_buf_printf(b,
                "{\"type\":\"message\",\"channel_id\":%u,\"sequence\":%u,"
                "\"log_time\":%llu,\"publish_time\":%llu,\"data\":",
                (unsigned)m->channel_id, (unsigned)m->sequence,
                (unsigned long long)m->log_time,
                (unsigned long long)m->publish_time);
  put_hex(b, m->data, m->len);
  tw_buf_putc(b, '}');
  emit(b);
}

static int fail(const tw_err *err) {
  fprintf(stderr, "error: %s: %s\n", tw_err_name(err->code), tw_err_msg(err));
  return 1;
}

/* --- write --------------------------------------------------------------- */

static uint64_t rng_state = 88172645463325252ull;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int cmd_write(int argc, char **argv) {
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.library = "twin trace_tool";
  o.no_sync = true;
  size_t count = 2000;
  const char *out = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--zstd") == 0 && i + 1 < argc) {
      o.compression = TW_TRACE_COMPRESSION_ZSTD;
      o.zstd_level = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--none") == 0) {
      o.compression = TW_TRACE_COMPRESSION_NONE;
    } else if (strcmp(argv[i], "--chunk-size") == 0 && i + 1 < argc) {
      o.chunk_size = (size_t)strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
      count = (size_t)strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--no-summary") == 0) {
      o.no_summary = true;
    } else if (strcmp(argv[i], "--no-crc") == 0) {
      o.no_crc = true;
    } else if (out == NULL) {
      out = argv[i];
    } else {
      fprintf(stderr, "usage: trace_tool write OUT [options]\n");
      return 2;
    }
  }
  if (out == NULL) {
    fprintf(stderr, "usage: trace_tool write OUT [options]\n");
    return 2;
  }
  tw_err err;
  tw_err_init(&err);
  tw_trace_writer *w = NULL;
  if (tw_trace_writer_open(out, &o, &w, &err) != TW_OK)
    return fail(&err);
  tw_buf b = TW_BUF_INIT;
  tw_buf_puts(&b, "{\"type\":\"header\",\"profile\":\"\",\"library\":");
  put_str(&b, o.library);
  tw_buf_putc(&b, '}');
  emit(&b);

  const char *js = "{\"type\":\"object\",\"properties\":{\"i\":{\"type\":"
                   "\"integer\"}}}";
  uint16_t s1, c_json, c_bin, c_pos, c_vel;
  int rc = tw_trace_writer_add_schema(w, "demo.Counter", "jsonschema", js,
                                      strlen(js), &s1, &err);
  tw_trace_kv kv[] = {{"origin", "trace_tool"}, {"note", "caf\xc3\xa9"}};
  if (rc == TW_OK)
    rc = tw_trace_writer_add_channel(w, "/demo/counter", "json", s1, kv, 2,
                                     &c_json, &err);
  if (rc == TW_OK)
    rc = tw_trace_writer_add_channel(w, "/demo/bytes", "x-bytes", 0, NULL, 0,
                                     &c_bin, &err);
  tw_trace_port pos = {"/cart/position", "m", 3};
  tw_trace_port vel = {"/cart/velocity", "m/s", 2};
  if (rc == TW_OK)
    rc =
        tw_trace_writer_add_port(w, &pos, TW_TRACE_ENCODING_JSON, &c_pos, &err);
  if (rc == TW_OK)
    rc = tw_trace_writer_add_port(w, &vel, TW_TRACE_ENCODING_CDR, &c_vel, &err);
  tw_trace_kv meta[] = {{"run", "42"}, {"graph", "cartpole"}};
  if (rc == TW_OK)
    rc = tw_trace_writer_add_metadata(w, "twin.run", meta, 2, &err);
  const char *att = "k: 100\nc: 0.5\n";
  if (rc == TW_OK)
    rc = tw_trace_writer_add_attachment(w, "params.yaml", "application/yaml",
                                        1000, 7, att, strlen(att), &err);
  if (rc != TW_OK) {
    tw_trace_writer_abort(w);
    return fail(&err);
  }
  uint8_t *big = malloc(o.chunk_size * 3 + 17);
  tw_buf body = TW_BUF_INIT;
  uint32_t seq[5] = {0};
  for (size_t k = 0; k < count && rc == TW_OK; k++) {
    /* Unique times, written out of order by up to ten neighbours. */
    uint64_t t = 1000000000ull + 1000 * k + 977 * ((k * 31) % 11);
    tw_trace_message m = {0, 0, t, t + 5, NULL, 0};
    switch (k % 4) {
    case 0:
      tw_buf_reset(&body);
      tw_buf_printf(&body, "{\"i\":%zu}", k);
      m.channel_id = c_json;
      m.data = (const uint8_t *)body.data;
      m.len = body.len;
      break;
    case 1: {
      size_t len = (size_t)(rnd() % 300);
      if (k % 997 == 1)
        len = o.chunk_size * 3 + 17; /* spans several chunks' worth */
      for (size_t i = 0; i < len; i++)
        big[i] = (uint8_t)rnd();
      m.channel_id = c_bin;
      m.data = big;
      m.len = len;
      break;
    }
    case 2:
    case 3: {
      double v[3] = {sin(0.01 * (double)k), (double)k * 0.5, -1.0 / 3.0};
      if (k % 50 == 2)
        v[1] = NAN;
      if (k % 70 == 3)
        v[0] = INFINITY;
      bool p = k % 4 == 2;
      uint16_t ch = p ? c_pos : c_vel;
      rc = tw_trace_writer_write_port(w, ch, t, (double)k * 1e-3, v, p ? 3 : 2,
                                      &err);
      continue; /* checked by decoding: see test_mcap_interop.py */
    }
    }
    m.sequence = seq[m.channel_id]++;
    rc = tw_trace_writer_write(w, m.channel_id, m.sequence, m.log_time,
                               m.publish_time, m.data, m.len, &err);
    if (rc == TW_OK)
      line_message(&b, &m);
  }
  free(big);
  tw_buf_fini(&body);
  if (rc != TW_OK) {
    tw_trace_writer_abort(w);
    tw_buf_fini(&b);
    return fail(&err);
  }
  if (tw_trace_writer_close(w, &err) != TW_OK) {
    tw_buf_fini(&b);
    return fail(&err);
  }
  tw_buf_fini(&b);
  return 0;
}

/* --- dump ------------------------------------------------------------------
 */

static int cmd_dump(int argc, char **argv) {
  tw_trace_reader_opts o;
  tw_trace_reader_opts_init(&o);
  uint16_t channels[64];
  tw_trace_query q = TW_TRACE_QUERY_ALL;
  q.channels = channels;
  const char *in = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--channel") == 0 && i + 1 < argc &&
        q.n_channels < 64) {
      channels[q.n_channels++] = (uint16_t)atoi(argv[++i]);
    } else if (strcmp(argv[i], "--start") == 0 && i + 1 < argc) {
      q.start_time = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--end") == 0 && i + 1 < argc) {
      q.end_time = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--verify") == 0) {
      o.verify = true;
    } else if (in == NULL) {
      in = argv[i];
    } else {
      fprintf(stderr, "usage: trace_tool dump IN [options]\n");
      return 2;
    }
  }
  if (in == NULL) {
    fprintf(stderr, "usage: trace_tool dump IN [options]\n");
    return 2;
  }
  tw_err err;
  tw_err_init(&err);
  tw_trace_reader *r = NULL;
  if (tw_trace_reader_open(in, &o, &r, &err) != TW_OK)
    return fail(&err);
  const tw_trace_info *info = tw_trace_reader_info(r);
  tw_buf b = TW_BUF_INIT;
  tw_buf_puts(&b, "{\"type\":\"header\",\"profile\":");
  put_str(&b, info->profile);
  tw_buf_puts(&b, ",\"library\":");
  put_str(&b, info->library);
  tw_buf_printf(&b,
                ",\"has_summary\":%s,\"has_statistics\":%s,\"scanned\":%s,"
                "\"indexed\":%s}",
                info->has_summary ? "true" : "false",
                info->has_statistics ? "true" : "false",
                info->scanned ? "true" : "false",
                info->indexed ? "true" : "false");
  emit(&b);
  const tw_trace_stats *st = &info->stats;
  tw_buf_printf(&b,
                "{\"type\":\"statistics\",\"message_count\":%llu,"
                "\"schema_count\":%u,\"channel_count\":%u,"
                "\"attachment_count\":%u,\"metadata_count\":%u,"
                "\"chunk_count\":%u,\"message_start_time\":%llu,"
                "\"message_end_time\":%llu,\"channel_message_counts\":{",
                (unsigned long long)st->message_count,
                (unsigned)st->schema_count, st->channel_count,
                st->attachment_count, st->metadata_count, st->chunk_count,
                (unsigned long long)st->message_start_time,
                (unsigned long long)st->message_end_time);
  bool first = true;
  for (size_t i = 0; i < tw_trace_reader_channel_count(r); i++) {
    const tw_trace_channel *c = tw_trace_reader_channel_at(r, i);
    if (!c->has_count)
      continue;
    tw_buf_printf(&b, "%s\"%u\":%llu", first ? "" : ",", (unsigned)c->id,
                  (unsigned long long)c->message_count);
    first = false;
  }
  tw_buf_puts(&b, "}}");
  emit(&b);
  for (size_t i = 0; i < tw_trace_reader_schema_count(r); i++) {
    const tw_trace_schema *s = tw_trace_reader_schema_at(r, i);
    line_schema(&b, s->id, s->name, s->encoding, s->data, s->len);
  }
  for (size_t i = 0; i < tw_trace_reader_channel_count(r); i++) {
    const tw_trace_channel *c = tw_trace_reader_channel_at(r, i);
    line_channel(&b, c->id, c->schema_id, c->topic, c->message_encoding,
                 c->metadata, c->n_metadata);
  }
  for (size_t i = 0; i < tw_trace_reader_metadata_count(r); i++) {
    const tw_trace_metadata *m = tw_trace_reader_metadata_at(r, i);
    tw_buf_puts(&b, "{\"type\":\"metadata\",\"name\":");
    put_str(&b, m->name);
    tw_buf_puts(&b, ",\"metadata\":");
    put_map(&b, m->kv, m->n);
    tw_buf_putc(&b, '}');
    emit(&b);
  }
  int rc = TW_OK;
  for (size_t i = 0; rc == TW_OK && i < tw_trace_reader_attachment_count(r);
       i++) {
    const tw_trace_attachment *a = tw_trace_reader_attachment_at(r, i);
    tw_buf data = TW_BUF_INIT;
    rc = tw_trace_reader_attachment_read(r, i, &data, &err);
    tw_buf_puts(&b, "{\"type\":\"attachment\",\"name\":");
    put_str(&b, a->name);
    tw_buf_puts(&b, ",\"media_type\":");
    put_str(&b, a->media_type);
    tw_buf_printf(&b, ",\"log_time\":%llu,\"create_time\":%llu,\"data\":",
                  (unsigned long long)a->log_time,
                  (unsigned long long)a->create_time);
    put_hex(&b, (const uint8_t *)data.data, data.len);
    tw_buf_putc(&b, '}');
    emit(&b);
    tw_buf_fini(&data);
  }
  tw_trace_iter *it = NULL;
  if (rc == TW_OK)
    rc = tw_trace_iter_new(r, &q, &it, &err);
  tw_trace_message m;
  int got;
  while (rc == TW_OK && (got = tw_trace_iter_next(it, &m, &err)) != 0) {
    if (got < 0) {
      rc = got;
      break;
    }
    line_message(&b, &m);
  }
  tw_trace_iter_free(it);
  tw_trace_reader_close(r);
  tw_buf_fini(&b);
  fflush(stdout);
  return rc == TW_OK ? 0 : fail(&err);
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "write") == 0)
    return cmd_write(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "dump") == 0)
    return cmd_dump(argc - 2, argv + 2);
  fprintf(stderr, "usage: trace_tool write|dump ...\n");
  return 2;
}
