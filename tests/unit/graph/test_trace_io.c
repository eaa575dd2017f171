/*
 * test_trace_io.c - runs as MCAP traces and inputs read from MCAP
 * (src/graph/trace_io.c): a trace written in pieces read back through
 * tw_trace_reader (channels, units, metadata, times, values to the bit),
 * replay of its inputs, zero-order hold across ticks, every error path of
 * tw_graph_read_inputs with its message, abort leaving no file, and
 * allocation failures.
 */
#include "tw_test.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int make_dir(void **state) {
  snprintf(dir, sizeof dir, "/tmp/tw-gtrace-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  return tw_test_setup(state);
}

static int remove_dir(void **state) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d != NULL && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      unlinkat(dirfd(d), e->d_name, 0);
  if (d != NULL)
    closedir(d);
  rmdir(dir);
  return tw_test_teardown(state);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, make_dir, remove_dir)

static void path_in_dir(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* u (2 values, N) -> gain(k=3) -> integrator; outputs y = 3u, s. */
static const char gain_text[] =
    "{\"graph\": 1, \"name\": \"g\", \"dt\": 0.25,"
    " \"inputs\": {\"u\": {\"size\": 2, \"unit\": \"N\"}},"
    " \"blocks\": {\"k\": {\"model\": \"builtin:gain\", \"size\": 2,"
    "                      \"params\": {\"k\": 3}},"
    "              \"i\": {\"model\": \"builtin:integrator\", \"size\": 2}},"
    " \"connections\": [{\"from\": \"inputs.u\", \"to\": \"k.u\"},"
    "                   {\"from\": \"k.y\", \"to\": \"i.u\"}],"
    " \"outputs\": {\"y\": \"k.y\", \"s\": \"i.y\"}}";

static tw_graph *gain_graph(void) {
  tw_graph *g = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_parse(gain_text, strlen(gain_text), "g.json", ".", NULL,
                          NULL, &g, &err);
  if (rc != TW_OK)
    print_error("%s\n", err.msg);
  assert_int_equal(rc, TW_OK);
  return g;
}

#define TICKS 7

static void fill_inputs(double *in) {
  for (int k = 0; k < TICKS; k++) {
    in[2 * k] = sin(0.3 * k) / 7;
    in[2 * k + 1] = k == 3 ? -0.0 : exp(-0.1 * k);
  }
}

/* Runs g over TICKS with in in two pieces, tracing it to path. */
static int trace_run(tw_graph *g, const char *path, tw_trace_encoding enc,
                     const double *in, double *out, tw_err *err) {
  tw_graph_trace_opts o;
  tw_graph_trace_opts_init(&o);
  o.encoding = enc;
  o.no_sync = true;
  tw_graph_trace *t = NULL;
  int rc = tw_graph_trace_open(g, path, &o, &t, err);
  if (rc != TW_OK)
    return rc;
  rc = tw_graph_reset(g, err);
  if (rc == TW_OK)
    rc = tw_graph_advance(g, 3, in, out, err);
  if (rc == TW_OK)
    rc = tw_graph_trace_write(t, 0, 3, in, out, err);
  if (rc == TW_OK)
    rc = tw_graph_advance(g, TICKS - 3, in + 6, out + 12, err);
  if (rc == TW_OK)
    rc = tw_graph_trace_write(t, 3, TICKS - 3, in + 6, out + 12, err);
  if (rc != TW_OK) {
    tw_graph_trace_abort(t);
    return rc;
  }
  return tw_graph_trace_close(t, g, err);
}

static const char *meta_value(const tw_trace_metadata *m, const char *key) {
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->kv[i].key, key) == 0)
      return m->kv[i].value;
  return NULL;
}

static void check_trace(const char *path, tw_trace_encoding enc,
                        const double *in, const double *out) {
  tw_err err;
  tw_err_init(&err);
  tw_trace_reader_opts ro;
  tw_trace_reader_opts_init(&ro);
  ro.verify = true;
  tw_trace_reader *r = NULL;
  assert_int_equal(tw_trace_reader_open(path, &ro, &r, &err), TW_OK);
  assert_int_equal(tw_trace_reader_channel_count(r), 3);
  const tw_trace_channel *cu = tw_trace_reader_channel_find(r, "/inputs/u");
  const tw_trace_channel *cy = tw_trace_reader_channel_find(r, "/outputs/y");
  const tw_trace_channel *cs = tw_trace_reader_channel_find(r, "/outputs/s");
  assert_non_null(cu);
  assert_non_null(cy);
  assert_non_null(cs);
  const char *menc = enc == TW_TRACE_ENCODING_CDR ? "cdr" : "json";
  assert_string_equal(cu->message_encoding, menc);
  assert_int_equal(cu->message_count, TICKS);
  bool unit_seen = false;
  for (size_t i = 0; i < cu->n_metadata; i++)
    if (strcmp(cu->metadata[i].key, "twin.unit") == 0) {
      assert_string_equal(cu->metadata[i].value, "N");
      unit_seen = true;
    }
  assert_true(unit_seen);
  assert_int_equal(tw_trace_reader_metadata_count(r), 2);
  const tw_trace_metadata *mg = tw_trace_reader_metadata_at(r, 0);
  const tw_trace_metadata *ms = tw_trace_reader_metadata_at(r, 1);
  assert_string_equal(mg->name, "twin.graph");
  assert_string_equal(meta_value(mg, "name"), "g");
  assert_string_equal(meta_value(mg, "dt"), "0.25");
  assert_string_equal(meta_value(mg, "inputs"), "u");
  assert_string_equal(meta_value(mg, "outputs"), "y,s");
  assert_string_equal(ms->name, "twin.stats");
  assert_string_equal(meta_value(ms, "ticks"), "7");
  assert_string_equal(meta_value(ms, "block.k.steps"), "7");
  assert_string_equal(meta_value(ms, "block.i.kind"), "integrator");

  tw_trace_iter *it = NULL;
  assert_int_equal(tw_trace_iter_new(r, NULL, &it, &err), TW_OK);
  tw_trace_message m;
  int got[3] = {0, 0, 0};
  while (tw_trace_iter_next(it, &m, &err) == 1) {
    const tw_trace_channel *ch = tw_trace_reader_channel_get(r, m.channel_id);
    double t, v[2];
    size_t n;
    assert_int_equal(
        tw_trace_port_decode(ch, m.data, m.len, &t, v, 2, &n, &err), TW_OK);
    assert_int_equal(n, 2);
    int c = ch == cu ? 0 : ch == cy ? 1 : 2;
    int k = got[c]++;
    assert_int_equal(m.sequence, k);
    assert_true(t == k * 0.25);
    assert_int_equal(m.log_time, (uint64_t)k * 250000000u);
    assert_int_equal(m.publish_time, m.log_time);
    const double *want = c == 0 ? in + 2 * k : out + 4 * k + (c == 1 ? 0 : 2);
    assert_memory_equal(v, want, sizeof v); /* to the bit, -0.0 too */
  }
  assert_int_equal(err.code, TW_OK);
  assert_int_equal(got[0], TICKS);
  assert_int_equal(got[1], TICKS);
  assert_int_equal(got[2], TICKS);
  tw_trace_iter_free(it);
  tw_trace_reader_close(r);
}

static void round_trip(void **state) {
  (void)state;
  tw_graph *g = gain_graph();
  assert_string_equal(tw_graph_input_unit(g, 0), "N");
  assert_string_equal(tw_graph_output_unit(g, 0), "");
  double in[2 * TICKS], out[4 * TICKS], back[2 * TICKS];
  fill_inputs(in);
  static const tw_trace_encoding encs[] = {TW_TRACE_ENCODING_JSON,
                                           TW_TRACE_ENCODING_CDR};
  for (int e = 0; e < 2; e++) {
    char path[128];
    path_in_dir(path, sizeof path, e ? "cdr.mcap" : "json.mcap");
    tw_err err;
    tw_err_init(&err);
    int rc = trace_run(g, path, encs[e], in, out, &err);
    if (rc != TW_OK)
      print_error("%s\n", err.msg);
    assert_int_equal(rc, TW_OK);
    check_trace(path, encs[e], in, out);
    /* Replay: the trace's inputs are the run's, to the bit. */
    assert_int_equal(tw_graph_read_inputs(g, path, NULL, 0, TICKS, back, &err),
                     TW_OK);
    assert_memory_equal(back, in, sizeof in);
    /* The same read in pieces, and past the last sample (held). */
    tw_graph_inputs *rd = NULL;
    double piece[2 * 10];
    assert_int_equal(tw_graph_inputs_open(g, path, NULL, 0, &rd, &err), TW_OK);
    assert_int_equal(tw_graph_inputs_read(rd, 2, piece, &err), TW_OK);
    assert_int_equal(tw_graph_inputs_read(rd, 0, NULL, &err), TW_OK);
    assert_int_equal(tw_graph_inputs_read(rd, 8, piece + 4, &err), TW_OK);
    assert_int_equal(tw_graph_inputs_tick(rd), 10);
    tw_graph_inputs_close(rd);
    assert_memory_equal(piece, in, sizeof in);
    for (int k = TICKS; k < 10; k++)
      assert_memory_equal(piece + 2 * k, in + 2 * (TICKS - 1),
                          2 * sizeof(double));
  }
  tw_graph_free(g);
}

/* NULL inputs are written as zeros; a graph without inputs has no input
 * channels; abort leaves nothing behind. */
static void zeros_and_abort(void **state) {
  (void)state;
  tw_graph *g = gain_graph();
  char path[128], partial[140];
  path_in_dir(path, sizeof path, "z.mcap");
  snprintf(partial, sizeof partial, "%s.partial", path);
  tw_err err;
  tw_err_init(&err);
  tw_graph_trace *t = NULL;
  double out[4 * 3], back[2 * 3];
  assert_int_equal(tw_graph_run(g, 3, NULL, out, &err), TW_OK);
  assert_int_equal(tw_graph_trace_open(g, path, NULL, &t, &err), TW_OK);
  assert_true(file_exists(partial));
  assert_int_equal(tw_graph_trace_write(t, 0, 3, NULL, out, &err), TW_OK);
  assert_int_equal(tw_graph_trace_write(t, -1, 1, NULL, out, &err), TW_EINVAL);
  assert_int_equal(tw_graph_trace_close(t, NULL, &err), TW_OK);
  assert_false(file_exists(partial));
  memset(back, 0xff, sizeof back);
  assert_int_equal(tw_graph_read_inputs(g, path, NULL, 0, 3, back, &err),
                   TW_OK);
  for (int i = 0; i < 6; i++)
    assert_true(back[i] == 0 && !signbit(back[i]));

  assert_int_equal(tw_graph_trace_open(g, path, NULL, &t, &err), TW_OK);
  assert_int_equal(tw_graph_trace_write(t, 0, 3, NULL, out, &err), TW_OK);
  tw_graph_trace_abort(t);
  assert_false(file_exists(partial));
  assert_true(file_exists(path)); /* the earlier trace is left as it was */
  tw_graph_trace_abort(NULL);
  assert_int_equal(tw_graph_trace_close(NULL, g, &err), TW_OK);
  tw_graph_free(g);
}

/* Writes a file with the trace writer: channel topic of the given
 * encoding and size, samples at times ts (n of them) of value k+1, logged
 * at times lts (NULL: ts). */
static void write_file(const char *path, const char *topic,
                       tw_trace_encoding enc, size_t size, const double *ts,
                       const double *lts, size_t n) {
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.no_sync = true;
  tw_trace_writer *w = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_trace_writer_open(path, &o, &w, &err), TW_OK);
  tw_trace_port p = {topic, "N", size};
  uint16_t ch;
  assert_int_equal(tw_trace_writer_add_port(w, &p, enc, &ch, &err), TW_OK);
  double v[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; i++) {
    v[0] = v[1] = v[2] = v[3] = (double)i + 1;
    double lt = lts != NULL ? lts[i] : ts[i];
    assert_int_equal(tw_trace_writer_write_port(w, ch,
                                                (uint64_t)(lt * 1e9 + 0.5),
                                                ts[i], v, size, &err),
                     TW_OK);
  }
  assert_int_equal(tw_trace_writer_close(w, &err), TW_OK);
}

/* Expects tw_graph_read_inputs to fail with code and a message holding
 * want, leaving nothing allocated. */
static void expect_error(tw_graph *g, const char *path, const char *const *map,
                         size_t nmap, int64_t ticks, int code,
                         const char *want) {
  double in[2 * 8];
  tw_err err;
  tw_err_init(&err);
  int rc = tw_graph_read_inputs(g, path, map, nmap, ticks, in, &err);
  if (rc != code || strstr(err.msg, want) == NULL)
    print_error("got %s: %s\nwanted %s: ...%s...\n", tw_err_name(rc), err.msg,
                tw_err_name(code), want);
  assert_int_equal(rc, code);
  assert_non_null(strstr(err.msg, want));
}

static void read_errors(void **state) {
  (void)state;
  tw_graph *g = gain_graph();
  char path[128], msg[256];
  double ts[] = {0, 0.5, 1.0};

  path_in_dir(path, sizeof path, "none.mcap");
  expect_error(g, path, NULL, 0, 2, TW_ENOENT, "none.mcap");

  /* Channel lookup: /inputs/u, /u, u; and the map. */
  path_in_dir(path, sizeof path, "v.mcap");
  write_file(path, "/v", TW_TRACE_ENCODING_JSON, 2, ts, NULL, 3);
  snprintf(msg, sizeof msg,
           "%s: input 'u': no channel '/inputs/u', '/u' or 'u'", path);
  expect_error(g, path, NULL, 0, 2, TW_ENOENT, msg);
  const char *ok_map[] = {"u=/v"};
  double in[2 * 4];
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_graph_read_inputs(g, path, ok_map, 1, 4, in, &err),
                   TW_OK);
  assert_true(in[0] == 1 && in[2] == 1 && in[4] == 2 && in[6] == 2);
  const char *bad_name[] = {"w=/v"};
  expect_error(g, path, bad_name, 1, 2, TW_EINVAL,
               "input map entry 'w=/v': graph 'g' has no input 'w'");
  const char *no_eq[] = {"u"};
  expect_error(g, path, no_eq, 1, 2, TW_EINVAL, "is not NAME=TOPIC");
  const char *twice[] = {"u=/v", "u=/w"};
  expect_error(g, path, twice, 2, 2, TW_EINVAL, "input 'u' is mapped twice");
  const char *missing[] = {"u=/w"};
  expect_error(g, path, missing, 1, 2, TW_ENOENT,
               "input 'u': no channel '/w' (as mapped)");

  /* Wrong size (the channel says so), in either encoding. */
  path_in_dir(path, sizeof path, "size.mcap");
  write_file(path, "u", TW_TRACE_ENCODING_CDR, 3, ts, NULL, 3);
  expect_error(g, path, NULL, 0, 2, TW_EINVAL,
               "input 'u' (channel 'u'): samples of 3 values, the input "
               "has 2");

  /* A gap before the first sample. */
  path_in_dir(path, sizeof path, "gap.mcap");
  double late[] = {0.5, 1.0};
  write_file(path, "/inputs/u", TW_TRACE_ENCODING_JSON, 2, late, NULL, 2);
  expect_error(g, path, NULL, 0, 2, TW_EINVAL,
               "input 'u' (channel '/inputs/u'): no sample at or before tick "
               "0 (t=0 s); the first is at t=0.5 s");

  /* Times out of order within a channel. */
  path_in_dir(path, sizeof path, "order.mcap");
  double back_in_time[] = {0, 0.6, 0.5}, logged[] = {0, 0.1, 0.2};
  write_file(path, "/u", TW_TRACE_ENCODING_JSON, 2, back_in_time, logged, 3);
  expect_error(g, path, NULL, 0, 4, TW_EINVAL,
               "the sample at t=0.5 s comes after one at t=0.6 s");

  /* Not a port's encoding. */
  path_in_dir(path, sizeof path, "proto.mcap");
  {
    tw_trace_writer *w = NULL;
    assert_int_equal(tw_trace_writer_open(path, NULL, &w, &err), TW_OK);
    uint16_t ch;
    assert_int_equal(
        tw_trace_writer_add_channel(w, "/u", "protobuf", 0, NULL, 0, &ch, &err),
        TW_OK);
    assert_int_equal(tw_trace_writer_write(w, ch, 0, 0, 0, "x", 1, &err),
                     TW_OK);
    assert_int_equal(tw_trace_writer_close(w, &err), TW_OK);
  }
  expect_error(g, path, NULL, 0, 2, TW_EINVAL,
               "input 'u' (channel '/u'): message encoding 'protobuf' is "
               "not a port sample's");

  /* A JSON body that is not a sample. */
  path_in_dir(path, sizeof path, "body.mcap");
  {
    tw_trace_writer *w = NULL;
    assert_int_equal(tw_trace_writer_open(path, NULL, &w, &err), TW_OK);
    uint16_t ch;
    assert_int_equal(
        tw_trace_writer_add_channel(w, "/u", "json", 0, NULL, 0, &ch, &err),
        TW_OK);
    assert_int_equal(
        tw_trace_writer_write(w, ch, 0, 0, 0, "{\"t\":0}", 7, &err), TW_OK);
    assert_int_equal(tw_trace_writer_close(w, &err), TW_OK);
  }
  expect_error(g, path, NULL, 0, 2, TW_EPARSE,
               "input 'u' (channel '/u'): sample 0 (log time 0 ns): port "
               "sample: not an object");

  /* Corrupt and truncated files. */
  path_in_dir(path, sizeof path, "v.mcap");
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static uint8_t buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  path_in_dir(path, sizeof path, "trunc.mcap");
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, n - 30, f), n - 30);
  fclose(f);
  expect_error(g, path, ok_map, 1, 2, TW_EPARSE, "trunc.mcap");
  path_in_dir(path, sizeof path, "junk.mcap");
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite("not mcap at all, not at all", 1, 27, f), 27);
  fclose(f);
  expect_error(g, path, NULL, 0, 2, TW_EPARSE, "junk.mcap");

  /* After a failed read the reader keeps failing. */
  path_in_dir(path, sizeof path, "gap.mcap");
  tw_graph_inputs *rd = NULL;
  assert_int_equal(tw_graph_inputs_open(g, path, NULL, 0, &rd, &err), TW_OK);
  assert_int_equal(tw_graph_inputs_read(rd, 1, in, NULL), TW_EINVAL);
  tw_err_init(&err);
  assert_int_equal(tw_graph_inputs_read(rd, 1, in, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "no sample at or before tick 0"));
  tw_graph_inputs_close(rd);
  tw_graph_inputs_close(NULL);
  tw_graph_free(g);
}

static int alloc_round(tw_graph *g, const char *path) {
  double in[2 * TICKS], out[4 * TICKS], back[2 * TICKS];
  fill_inputs(in);
  tw_err err;
  tw_err_init(&err);
  int rc = trace_run(g, path, TW_TRACE_ENCODING_JSON, in, out, &err);
  if (rc == TW_OK)
    rc = tw_graph_read_inputs(g, path, NULL, 0, TICKS, back, &err);
  if (rc == TW_OK && memcmp(back, in, sizeof in) != 0)
    rc = TW_EINTERNAL;
  (void)unlink(path);
  return rc;
}

static void allocation_failures(void **state) {
  (void)state;
  tw_graph *g = gain_graph();
  char path[128];
  path_in_dir(path, sizeof path, "alloc.mcap");
  /* A first run makes the state the graph keeps between runs. */
  assert_int_equal(tw_graph_run(g, 1, NULL, NULL, NULL), TW_OK);
  TW_TEST_ALLOC_FAILURES(alloc_round(g, path));
  char partial[140];
  snprintf(partial, sizeof partial, "%s.partial", path);
  assert_false(file_exists(partial));
  tw_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(round_trip),
      TEST(zeros_and_abort),
      TEST(read_errors),
      TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
