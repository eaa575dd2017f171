/*
 * test_ingest.c - the ingest pipeline on a small graph: records decoded
 * and aligned onto the tick grid, refused ones counted and handed to the
 * callback, re-delivered positions dropped, the recording rotated and
 * bounded, and a replay of the recording giving the same outputs to the
 * bit; damaged or incomplete recordings refused with clear errors.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tw_test.h"
#include "twin/ingest.h"

static const char graph_text[] = "graph rig\n"
                                 "dt 0.01\n"
                                 "input rig.force size 1 unit N\n"
                                 "input rig.pos size 2 unit m\n"
                                 "block plant = builtin:spring_damper\n"
                                 "connect inputs.rig.force -> plant.F\n"
                                 "output plant.x = plant.x\n"
                                 "output plant.v = plant.v\n";

static tw_graph *graph(void) {
  tw_graph *g = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_parse(graph_text, strlen(graph_text), "rig.twg", ".", NULL,
                          NULL, &g, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return g;
}

/* What a run saw: outputs and refusals. */
typedef struct run {
  double out[4096][2];
  int64_t ticks;
  int refused;
  char last_refusal[512];
} run;

static void on_output(void *ud, int64_t tick, int64_t time_ns,
                      const double *o) {
  (void)time_ns;
  run *r = ud;
  if (tick < 4096) {
    r->out[tick][0] = o[0];
    r->out[tick][1] = o[1];
  }
  r->ticks = tick + 1;
}

static void on_refused(void *ud, const tw_ingest_msg *m,
                       const tw_ingest_refusal *why) {
  (void)m;
  run *r = ud;
  r->refused++;
  (void)snprintf(r->last_refusal, sizeof r->last_refusal, "%s: %s", why->stage,
                 why->message);
}

static const tw_stream_field fields[] = {
    {"force", TW_F64, 1, "N", -100, 100},
    {"/pos/xy", TW_F64, 2, "m", NAN, NAN},
};
static const int field_input[] = {0, 1};

typedef struct rig {
  tw_graph *g;
  tw_stream_schema *s;
  tw_ingest *in;
  run *r;
} rig;

static int resolve(void *ud, uint32_t id, tw_stream_schema_kind *kind,
                   char **text, tw_err *err) {
  (void)ud;
  if (id != 7)
    return tw_err_set(err, TW_ENOENT, "schema %u not found", id);
  *kind = TW_STREAM_JSON_SCHEMA;
  *text = tw_strdup(
      "{\"type\":\"object\",\"properties\":{\"force\":{\"type\":\"number\","
      "\"unit\":\"kN\"},\"pos\":{\"type\":\"object\",\"properties\":{\"xy\":"
      "{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"minItems\":2,"
      "\"maxItems\":2}}}}}");
  return *text != NULL ? TW_OK : TW_ENOMEM;
}

static bool clock_map; /* sources of rig_open map their clocks */

static void rig_open(rig *x, const char *record, uint64_t seg, uint64_t max) {
  memset(x, 0, sizeof *x);
  x->g = graph();
  x->r = calloc(1, sizeof *x->r);
  assert_non_null(x->r);
  tw_stream_schema_opts so = {"t", TW_STREAM_TIME_MS, false};
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_stream_schema_new(fields, 2, &so, &x->s, &err), TW_OK);
  tw_ingest_opts o = {0};
  o.graph = x->g;
  o.twin = "rig";
  o.record_path = record;
  o.segment_bytes = seg;
  o.max_bytes = max;
  o.record_no_sync = true;
  o.output = on_output;
  o.refused = on_refused;
  o.ud = x->r;
  int rc = tw_ingest_new(&o, &x->in, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  tw_ingest_source_opts s = {0};
  s.name = "rig";
  s.kind = "kafka";
  s.schema = x->s;
  s.field_input = field_input;
  s.max_out_of_orderness_ns = 20000000;
  s.resolve = resolve;
  s.clock_map = clock_map;
  uint32_t idx = 9;
  assert_int_equal(tw_ingest_source_add(x->in, &s, &idx, &err), TW_OK);
  assert_int_equal(idx, 0);
}

static void rig_close(rig *x) {
  tw_err err;
  tw_err_init(&err);
  int rc = tw_ingest_close(x->in, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  tw_stream_schema_free(x->s);
  tw_graph_free(x->g);
  free(x->r);
}

static int push(rig *x, int32_t part, int64_t off, const void *data, size_t len,
                int64_t now) {
  tw_ingest_msg m = {0};
  m.topic = "rig.telemetry";
  m.partition = part;
  m.offset = off;
  m.source_ns = INT64_MIN;
  m.data = data;
  m.len = len;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_ingest_push(x->in, &m, now, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  return rc;
}

/* A live run: 1000 records at 5 ms over two partitions, a few bad ones,
 * a few re-delivered, and some in the wire format. */
static void live_run(rig *x) {
  const int64_t t0 = 1700000000000LL; /* ms */
  char buf[256];
  int64_t off[2] = {0, 0};
  tw_err err;
  for (int i = 0; i < 1000; i++) {
    int part = i % 2;
    int64_t now = (t0 + 5 * i) * 1000000 + 3000000;
    int n;
    if (i % 97 == 13)
      n = snprintf(buf, sizeof buf, "{\"t\":%lld,\"force\":\"oops\"}",
                   (long long)(t0 + 5 * i));
    else if (i % 101 == 50)
      n = snprintf(buf, sizeof buf,
                   "{\"t\":%lld,\"force\":1e9,\"pos\":{"
                   "\"xy\":[0,0]}}",
                   (long long)(t0 + 5 * i));
    else if (i % 50 == 7) {
      /* The wire format: magic 0, schema id 7 (force in kN). */
      buf[0] = 0;
      buf[1] = buf[2] = buf[3] = 0;
      buf[4] = 7;
      n = 5 + snprintf(buf + 5, sizeof buf - 5,
                       "{\"t\":%lld,\"force\":%.3f,\"pos\":{\"xy\":[%d,1]}}",
                       (long long)(t0 + 5 * i), 0.001 * sin(i * 0.05), i);
    } else
      n = snprintf(buf, sizeof buf,
                   "{\"t\":%lld,\"force\":%.17g,\"pos\":{\"xy\":[%d,1]}}",
                   (long long)(t0 + 5 * i), sin(i * 0.05), i);
    assert_int_equal(push(x, part, off[part]++, buf, (size_t)n, now), TW_OK);
    if (i % 10 == 9) {
      /* A re-delivery of the last two records of this partition. */
      assert_int_equal(push(x, part, off[part] - 1, buf, (size_t)n, now),
                       TW_OK);
      tw_err_init(&err);
      assert_int_equal(tw_ingest_advance(x->in, now, &err), TW_OK);
      assert_int_equal(tw_ingest_sync(x->in, &err), TW_OK);
    }
  }
  /* An unknown schema id: refused, not fatal. */
  static const char wire[] = "\0\0\0\0\x09{}";
  assert_int_equal(
      push(x, 0, off[0]++, wire, sizeof wire - 1, (t0 + 5000) * 1000000),
      TW_OK);
  tw_err_init(&err);
  assert_int_equal(tw_ingest_advance(x->in, (t0 + 6000) * 1000000, &err),
                   TW_OK);
  /* The recording's counts are those of the last sync. */
  assert_int_equal(tw_ingest_sync(x->in, &err), TW_OK);
}

static char *tmpdir(void) {
  char tmpl[] = "/tmp/tw_ingest_XXXXXX";
  char *d = mkdtemp(tmpl);
  assert_non_null(d);
  return strdup(d);
}

static void rm_rf(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char p[512];
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    (void)snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    rm_rf(p);
    (void)unlink(p);
  }
  closedir(d);
  (void)rmdir(dir);
}

static int count_segments(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += strncmp(e->d_name, "rec-", 4) == 0;
  closedir(d);
  return n;
}

static int replay(run *out, const char *path, bool allow_gap, tw_err *err) {
  rig y;
  rig_open(&y, NULL, 0, 0);
  tw_err_init(err);
  int rc = tw_ingest_replay(y.in, path, allow_gap, err);
  memcpy(out, y.r, sizeof *out);
  rig_close(&y);
  return rc;
}

static void live_and_replay(void **state) {
  (void)state;
  char *dir = tmpdir();
  char rec[600];
  (void)snprintf(rec, sizeof rec, "%s/rec", dir);
  rig x;
  rig_open(&x, rec, 16 * 1024, 0);
  live_run(&x);
  tw_ingest_stats st;
  tw_ingest_stats_get(x.in, &st);
  assert_int_equal(st.records, 1001);
  assert_int_equal(st.duplicates, 100);
  assert_int_equal(st.refused, 11 + 10 + 1);
  assert_int_equal(x.r->refused, 22);
  assert_int_equal(st.accepted + st.late, 1001 - 22);
  assert_int_equal(st.late, 0);
  assert_true(st.segments > 3); /* rotated at 16 KiB */
  assert_true(x.r->ticks > 450);
  assert_true(strstr(x.r->last_refusal, "schema 9 not found") != NULL);
  /* The first tick is the first record's time; forces were applied. */
  assert_true(x.r->out[x.r->ticks - 1][0] != x.r->out[0][0]);
  run *live = calloc(1, sizeof *live);
  assert_non_null(live);
  memcpy(live, x.r, sizeof *live);
  rig_close(&x);

  run *re = calloc(1, sizeof *re);
  assert_non_null(re);
  tw_err err;
  int rc = replay(re, rec, false, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_int_equal(re->ticks, live->ticks);
  assert_int_equal(re->refused, live->refused);
  assert_memory_equal(re->out, live->out, sizeof live->out);
  assert_string_equal(re->last_refusal, live->last_refusal);

  /* A missing middle segment is a gap. */
  char seg[700];
  (void)snprintf(seg, sizeof seg, "%s/rec-000001-000002.mcap", rec);
  assert_int_equal(unlink(seg), 0);
  assert_int_equal(replay(re, rec, false, &err), TW_EVALIDATE);
  assert_non_null(strstr(err.msg, "a segment is missing"));
  /* A second run in the same directory is replayed on its own. */
  rig_open(&x, rec, 1 << 20, 0);
  static const char one[] = "{\"t\":1,\"force\":1,\"pos\":{\"xy\":[1,2]}}";
  assert_int_equal(push(&x, 0, 0, one, sizeof one - 1, 5), TW_OK);
  rig_close(&x);
  assert_int_equal(replay(re, rec, false, &err), TW_OK);
  assert_int_equal(re->refused, 0);
  free(re);
  free(live);
  rm_rf(dir);
  free(dir);
}

/* A Kafka backlog of three partitions read one after the other: with the
 * assignment recorded first, every partition's watermark holds the
 * source's, nothing is late, and the replay gives the same outputs; the
 * same reads without the assignment make most of partitions 1 and 2 late. */
static void backlog_run(rig *x, bool assign) {
  const int64_t t0 = 1700000000000LL;         /* ms */
  int64_t now = (t0 + 3600 * 1000) * 1000000; /* an hour behind */
  tw_err err;
  tw_err_init(&err);
  for (int32_t p = 0; assign && p < 3; p++)
    assert_int_equal(
        tw_ingest_split(x->in, 0, "rig.telemetry", p, true, now, &err), TW_OK);
  char buf[128];
  for (int32_t p = 0; p < 3; p++)
    for (int k = 0; k < 200; k++) {
      int n = snprintf(buf, sizeof buf,
                       "{\"t\":%lld,\"force\":%d,\"pos\":{\"xy\":[%d,1]}}",
                       (long long)(t0 + 10 * (3 * k + p)), k % 7, p);
      now += 1000000;
      assert_int_equal(push(x, p, k, buf, (size_t)n, now), TW_OK);
      if (k % 50 == 49)
        assert_int_equal(tw_ingest_advance(x->in, now, &err), TW_OK);
    }
  if (assign)
    assert_int_equal(
        tw_ingest_split(x->in, 0, "rig.telemetry", 2, false, now, &err), TW_OK);
  assert_int_equal(tw_ingest_finish(x->in, &err), TW_OK);
}

static void partition_backlog(void **state) {
  (void)state;
  char *dir = tmpdir();
  char rec[600];
  (void)snprintf(rec, sizeof rec, "%s/backlog.mcap", dir);
  rig x;
  rig_open(&x, rec, 0, 0);
  backlog_run(&x, true);
  tw_ingest_stats st;
  tw_ingest_stats_get(x.in, &st);
  assert_int_equal(st.records, 600);
  assert_int_equal(st.splits, 4);
  assert_int_equal(st.late, 0);
  assert_int_equal(st.accepted, 600);
  assert_int_equal(x.r->ticks, 600);
  run *live = calloc(1, sizeof *live);
  assert_non_null(live);
  memcpy(live, x.r, sizeof *live);
  /* Connectors cannot forge split events; a split needs a partition. */
  tw_err err;
  tw_err_init(&err);
  tw_ingest_msg m = {0};
  m.flags = TW_INGEST_ASSIGNED;
  assert_int_equal(tw_ingest_push(x.in, &m, 0, &err), TW_EINVAL);
  assert_int_equal(tw_ingest_split(x.in, 0, "rig.telemetry", -1, true, 0, &err),
                   TW_EINVAL);
  assert_int_equal(tw_ingest_split(x.in, 3, "rig.telemetry", 0, true, 0, &err),
                   TW_EINVAL);
  rig_close(&x);

  run *re = calloc(1, sizeof *re);
  assert_non_null(re);
  int rc = replay(re, rec, false, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  assert_int_equal(re->ticks, live->ticks);
  assert_memory_equal(re->out, live->out, sizeof live->out);

  /* Without the assignment. */
  (void)snprintf(rec, sizeof rec, "%s/unassigned.mcap", dir);
  rig_open(&x, rec, 0, 0);
  backlog_run(&x, false);
  tw_ingest_stats_get(x.in, &st);
  assert_int_equal(st.splits, 0);
  assert_true(st.late >= 300);
  assert_int_equal(st.accepted + st.late, 600);
  rig_close(&x);
  free(re);
  free(live);
  rm_rf(dir);
  free(dir);
}

static void bounded_rotation(void **state) {
  (void)state;
  char *dir = tmpdir();
  char rec[600];
  (void)snprintf(rec, sizeof rec, "%s/rec", dir);
  rig x;
  rig_open(&x, rec, 8 * 1024, 40 * 1024);
  live_run(&x);
  tw_ingest_stats st;
  tw_ingest_stats_get(x.in, &st);
  rig_close(&x);
  assert_true(st.segments_deleted > 0);
  assert_true(count_segments(rec) <= 6);
  run *re = calloc(1, sizeof *re);
  assert_non_null(re);
  tw_err err;
  /* The first segments are gone: refused unless gaps are allowed. */
  assert_int_equal(replay(re, rec, false, &err), TW_EVALIDATE);
  assert_non_null(strstr(err.msg, "first segments were deleted"));
  assert_int_equal(replay(re, rec, true, &err), TW_OK);
  free(re);
  rm_rf(dir);
  free(dir);
}

static void bad_recordings(void **state) {
  (void)state;
  char *dir = tmpdir();
  char path[600];
  (void)snprintf(path, sizeof path, "%s/one.mcap", dir);
  rig x;
  rig_open(&x, path, 0, 0);
  live_run(&x);
  rig_close(&x);
  run *re = calloc(1, sizeof *re);
  assert_non_null(re);
  tw_err err;
  assert_int_equal(replay(re, path, false, &err), TW_OK);
  /* Truncated: the reader refuses it. */
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size / 2), 0);
  assert_true(replay(re, path, false, &err) < 0);
  assert_non_null(strstr(err.msg, "one.mcap"));
  /* Not a recording at all. */
  assert_int_equal(replay(re, dir, false, &err), TW_ENOENT);
  char *srcs = NULL;
  assert_true(tw_ingest_recording_sources("/nonexistent.mcap", &srcs, &err) <
              0);
  free(re);
  rm_rf(dir);
  free(dir);
}

/* A device clock 3 s behind the host that steps back 10 s in the middle:
 * mapped through the estimated clock the records stay in order (the fit
 * restarts at the jump, counted); taken as they are, those after the
 * step are late. */
static void clock_jump(void **state) {
  (void)state;
  for (int map = 0; map < 2; map++) {
    clock_map = map;
    rig x;
    rig_open(&x, NULL, 0, 0);
    const int64_t host0 = 1700000000000000000LL;
    char buf[128];
    tw_err err;
    for (int i = 0; i < 600; i++) {
      int64_t host = host0 + (int64_t)i * 5000000 + (i % 7) * 100000;
      int64_t dev_ms =
          (host0 - 3000000000LL) / 1000000 + 5 * i - (i >= 300 ? 10000 : 0);
      int n = snprintf(buf, sizeof buf,
                       "{\"t\":%lld,\"force\":1,\"pos\":{\"xy\":[0,0]}}",
                       (long long)dev_ms);
      assert_int_equal(push(&x, 0, i, buf, (size_t)n, host), TW_OK);
      tw_err_init(&err);
      assert_int_equal(tw_ingest_advance(x.in, host, &err), TW_OK);
    }
    tw_ingest_stats st;
    tw_ingest_stats_get(x.in, &st);
    tw_align_clock_fit fit;
    assert_int_equal(tw_ingest_clock_get(x.in, 0, &fit, &err), TW_OK);
    assert_true(fit.jumps >= 1);
    if (map) {
      assert_int_equal(st.late, 0);
      assert_true(fit.valid && llabs(fit.offset_ns - 10000000000LL -
                                     3000000000LL) < 2000000);
    } else {
      assert_int_equal(st.late, 300);
    }
    rig_close(&x);
  }
  clock_map = false;
}

/* A record with more headers than a recording keeps is recorded with the
 * first ones and refused; the run goes on, and a replay refuses it too. */
static void too_many_headers(void **state) {
  (void)state;
  char *dir = tmpdir();
  char path[600];
  (void)snprintf(path, sizeof path, "%s/h.mcap", dir);
  rig x;
  rig_open(&x, path, 0, 0);
  enum { N = TW_INGEST_HEADERS_MAX + 500 };
  tw_ingest_header *h = calloc(N, sizeof *h);
  assert_non_null(h);
  for (size_t i = 0; i < N; i++)
    h[i] = (tw_ingest_header){"k", "v", 1};
  static const char rec[] = "{\"t\":1,\"force\":1,\"pos\":{\"xy\":[1,2]}}";
  tw_ingest_msg m = {0};
  m.topic = "t";
  m.partition = 0;
  m.offset = 0;
  m.source_ns = INT64_MIN;
  m.headers = h;
  m.nheaders = N;
  m.data = rec;
  m.len = sizeof rec - 1;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ingest_push(x.in, &m, 5, &err), TW_OK);
  m.offset = 1;
  m.nheaders = 3;
  assert_int_equal(tw_ingest_push(x.in, &m, 6, &err), TW_OK);
  tw_ingest_stats st;
  tw_ingest_stats_get(x.in, &st);
  assert_int_equal(st.records, 2);
  assert_int_equal(st.refused, 1);
  assert_non_null(strstr(x.r->last_refusal, "HEADER_CONVERTER: record with "
                                            "more than 1024 headers"));
  rig_close(&x);
  free(h);
  run *re = calloc(1, sizeof *re);
  assert_non_null(re);
  assert_int_equal(replay(re, path, false, &err), TW_OK);
  assert_int_equal(re->refused, 1);
  free(re);
  rm_rf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(live_and_replay),  TW_TEST(bounded_rotation),
      TW_TEST(bad_recordings),   TW_TEST(clock_jump),
      TW_TEST(too_many_headers), TW_TEST(partition_backlog),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
