/*
 * bench.c - MCAP write throughput of src/trace (bench/trace/README.md).
 *
 *   bench DIR MB REPS
 *
 * Writes MB megabytes (10^6 bytes) of message data as port samples of 16
 * f64 values on 8 channels into DIR (tmpfs: /dev/shm), one JSON line per
 * case on stdout, the median of REPS runs after a warm-up:
 *
 * - api "write": pre-encoded CDR samples (20 + 8*16 = 148 bytes) through
 *   tw_trace_writer_write, as the Python peer gets them: no compression,
 *   zstd 1, zstd 3;
 * - api "write_port": the same samples encoded by tw_trace_writer_write_port
 *   (CDR and JSON);
 * - impl "write(2)": the bytes of the uncompressed trace written with
 *   write(2) in 1 MiB pieces: the floor.
 *
 * The samples come from a pool of 65536 (values sin(0.001 k + 0.37 i)
 * (1 + i)) made before timing and cycled, as peer.py does: a repeat is
 * 9.7 MB away, beyond any chunk, so compression sees realistic data.
 * mb_s counts message data; file_mb_s the bytes of the file.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "twin/twin.h"

#define POOL 65536
#define NVAL 16
#define NCH 8
#define CDR_LEN (20 + 8 * NVAL)
#define MAX_REPS 15

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const tw_err *err) {
  fprintf(stderr, "bench: %s: %s\n", what, tw_err_msg(err));
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double values[POOL][NVAL];
static uint8_t cdr[POOL][CDR_LEN];
static uint16_t json_len[POOL]; /* of each sample's JSON encoding */

static void make_pool(void) {
  for (size_t k = 0; k < POOL; k++) {
    double t = (double)k * 1e-3;
    for (int i = 0; i < NVAL; i++)
      values[k][i] = sin(0.001 * (double)k + 0.37 * i) * (1 + i);
    uint8_t *p = cdr[k];
    memcpy(p, "\x00\x01\x00\x00", 4);
    memcpy(p + 4, &t, 8); /* little-endian host */
    uint32_t count = NVAL;
    memcpy(p + 12, &count, 4);
    memset(p + 16, 0, 4);
    memcpy(p + 20, values[k], 8 * NVAL);
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "{\"t\":%.17g,\"value\":[", t);
    for (int i = 0; i < NVAL; i++)
      n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%.17g", i ? "," : "",
                    values[k][i]);
    json_len[k] = (uint16_t)(n + 2);
  }
}

typedef struct run_result {
  double seconds;
  uint64_t payload, file, samples;
} run_result;

enum api { API_WRITE, API_PORT_CDR, API_PORT_JSON };

static run_result run(const char *path, enum api api, tw_trace_compression comp,
                      int level, uint64_t payload) {
  tw_trace_writer_opts o;
  tw_trace_writer_opts_init(&o);
  o.compression = comp;
  o.zstd_level = level;
  tw_err err;
  tw_err_init(&err);
  run_result res = {0, 0, 0, 0};
  double t0 = now();
  tw_trace_writer *w = NULL;
  if (tw_trace_writer_open(path, &o, &w, &err) != TW_OK)
    die("open", &err);
  uint16_t ch[NCH];
  for (int c = 0; c < NCH; c++) {
    char topic[32];
    snprintf(topic, sizeof topic, "/bench/p%d", c);
    tw_trace_port p = {topic, "m", NVAL};
    if (tw_trace_writer_add_port(w, &p,
                                 api == API_PORT_JSON ? TW_TRACE_ENCODING_JSON
                                                      : TW_TRACE_ENCODING_CDR,
                                 &ch[c], &err) != TW_OK)
      die("add_port", &err);
  }
  for (uint64_t k = 0; res.payload < payload; k++) {
    size_t s = (size_t)(k % POOL);
    uint64_t log_time = k * 1000000;
    int rc;
    if (api == API_WRITE)
      rc = tw_trace_writer_write(w, ch[k % NCH], (uint32_t)k, log_time,
                                 log_time, cdr[s], CDR_LEN, &err);
    else
      rc = tw_trace_writer_write_port(w, ch[k % NCH], log_time,
                                      (double)s * 1e-3, values[s], NVAL, &err);
    res.payload += api == API_PORT_JSON ? json_len[s] : CDR_LEN;
    res.samples++;
    if (rc != TW_OK)
      die("write", &err);
  }
  if (tw_trace_writer_close(w, &err) != TW_OK)
    die("close", &err);
  res.seconds = now() - t0;
  struct stat st;
  if (stat(path, &st) == 0)
    res.file = (uint64_t)st.st_size;
  return res;
}

/* The floor: the bytes of file written again with write(2). */
static run_result floor_run(const char *from, const char *to) {
  run_result res = {0, 0, 0, 0};
  int in = open(from, O_RDONLY);
  struct stat st;
  if (in < 0 || fstat(in, &st) != 0) {
    perror(from);
    exit(1);
  }
  size_t n = (size_t)st.st_size;
  uint8_t *buf = malloc(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(in, buf + got, n - got);
    if (r <= 0) {
      perror("read");
      exit(1);
    }
    got += (size_t)r;
  }
  close(in);
  double t0 = now();
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  for (size_t off = 0; off < n;) {
    size_t piece = n - off < ((size_t)1 << 20) ? n - off : (size_t)1 << 20;
    ssize_t w = write(out, buf + off, piece);
    if (w <= 0) {
      perror("write");
      exit(1);
    }
    off += (size_t)w;
  }
  fsync(out);
  close(out);
  res.seconds = now() - t0;
  res.file = n;
  free(buf);
  unlink(to);
  return res;
}

static void report(const char *impl, const char *api, const char *encoding,
                   const char *comp, int level, run_result *r, int reps) {
  double s[MAX_REPS];
  for (int i = 0; i < reps; i++)
    s[i] = r[i].seconds;
  double sec = median(s, reps);
  double payload = (double)r[0].payload, file = (double)r[0].file;
  printf("{\"bench\":\"trace_write\",\"impl\":\"%s\",\"api\":\"%s\","
         "\"encoding\":\"%s\",\"compression\":\"%s\",\"level\":%d,"
         "\"payload_mb\":%.1f,\"file_mb\":%.1f,\"seconds\":%.3f,"
         "\"mb_s\":%.1f,\"file_mb_s\":%.1f,\"samples_per_s\":%.0f,"
         "\"reps\":%d}\n",
         impl, api, encoding, comp, level, payload / 1e6, file / 1e6, sec,
         payload ? payload / 1e6 / sec : 0.0, file / 1e6 / sec,
         (double)r[0].samples / sec, reps);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: bench DIR MB REPS\n");
    return 2;
  }
  const char *dir = argv[1];
  uint64_t payload = (uint64_t)(atof(argv[2]) * 1e6);
  int reps = atoi(argv[3]);
  if (reps < 1 || reps > MAX_REPS)
    reps = 3;
  make_pool();
  char path[512], copy[512];
  snprintf(path, sizeof path, "%s/twin-bench.mcap", dir);
  snprintf(copy, sizeof copy, "%s/twin-bench-floor.bin", dir);
  struct {
    enum api api;
    const char *name, *encoding;
    tw_trace_compression comp;
    int level;
  } cases[] = {
      {API_WRITE, "write", "cdr", TW_TRACE_COMPRESSION_NONE, 0},
      {API_WRITE, "write", "cdr", TW_TRACE_COMPRESSION_ZSTD, 1},
      {API_WRITE, "write", "cdr", TW_TRACE_COMPRESSION_ZSTD, 3},
      {API_PORT_CDR, "write_port", "cdr", TW_TRACE_COMPRESSION_NONE, 0},
      {API_PORT_CDR, "write_port", "cdr", TW_TRACE_COMPRESSION_ZSTD, 1},
      {API_PORT_JSON, "write_port", "json", TW_TRACE_COMPRESSION_NONE, 0},
      {API_PORT_JSON, "write_port", "json", TW_TRACE_COMPRESSION_ZSTD, 1},
  };
  run_result r[MAX_REPS];
  /* Warm-up: page cache of tmpfs, the allocator, libm. */
  run(path, API_WRITE, TW_TRACE_COMPRESSION_NONE, 0, payload / 8 + 1);
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    /* JSON samples take ~2.5x the bytes and far more time per sample:
     * write the same number of samples as the CDR cases. */
    uint64_t want = cases[c].api == API_PORT_JSON ? payload * 5 / 2 : payload;
    for (int i = 0; i < reps; i++)
      r[i] = run(path, cases[c].api, cases[c].comp, cases[c].level, want);
    report("twin", cases[c].name, cases[c].encoding,
           cases[c].comp == TW_TRACE_COMPRESSION_NONE ? "none" : "zstd",
           cases[c].level, r, reps);
    if (c == 0) {
      run(path, API_WRITE, TW_TRACE_COMPRESSION_NONE, 0, payload);
      for (int i = 0; i < reps; i++)
        r[i] = floor_run(path, copy);
      for (int i = 0; i < reps; i++)
        r[i].payload = 0;
      report("write(2)", "write", "cdr", "none", 0, r, reps);
    }
  }
  unlink(path);
  return 0;
}
