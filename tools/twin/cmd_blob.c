/*
 * cmd_blob.c - `twin blob digest`: content digests of files, the names
 * under which Twin stores and refers to models, traces and OCI blobs.
 *
 * Files are hashed in parallel on the context's pool (one chunk per file)
 * and reported in the order given, so the output does not depend on the
 * thread count. A file that cannot be read is reported on stderr and the
 * others are still digested; the exit status is then 1.
 */
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"

typedef struct digest_job {
  const char *path; /* as given; "-" is stdin */
  uint8_t digest[TW_SHA256_LEN];
  uint64_t size;
  double seconds;
  tw_err err;
} digest_job;

static int digest_one(void *arg, size_t chunk, size_t begin, size_t end,
                      tw_err *unused) {
  (void)chunk;
  (void)unused;
  digest_job *jobs = arg;
  for (size_t i = begin; i < end; i++) {
    digest_job *j = &jobs[i];
    const char *path = strcmp(j->path, "-") == 0 ? "/dev/stdin" : j->path;
    uint64_t t0 = tw_clock_mono_ns();
    struct stat st;
    if (tw_sha256_file(path, j->digest, &j->err) == TW_OK &&
        stat(path, &st) == 0)
      j->size = (uint64_t)st.st_size;
    j->seconds = (double)(tw_clock_mono_ns() - t0) / 1e9;
  }
  return TW_OK; /* per-file errors are reported per file, not as a failure */
}

/* Metrics of this command, in the context's registry. */
typedef struct digest_metrics {
  tw_metric *bytes, *ok, *failed, *seconds;
} digest_metrics;

static int register_metrics(tw_metrics *m, digest_metrics *dm, tw_err *err) {
  static const char *const result_label[] = {"result"};
  static const char *const ok[] = {"ok"}, *const failed[] = {"error"};
  double bounds[12];
  tw_metric_family *files;
  int rc = tw_metrics_counter(m, "twin_blob_digest_bytes_total",
                              "Bytes digested by twin blob digest.", &dm->bytes,
                              err);
  if (rc == TW_OK)
    rc = tw_metrics_family(m, TW_METRIC_COUNTER, "twin_blob_digest_files_total",
                           "Files digested by twin blob digest, by result.",
                           result_label, 1, NULL, 0, &files, err);
  if (rc == TW_OK)
    rc = tw_metric_family_child(files, ok, &dm->ok, err);
  if (rc == TW_OK)
    rc = tw_metric_family_child(files, failed, &dm->failed, err);
  if (rc == TW_OK)
    rc = tw_metrics_exponential_buckets(1e-5, 4, 12, bounds);
  if (rc == TW_OK)
    rc = tw_metrics_histogram(m, "twin_blob_digest_seconds",
                              "Time to digest one file.", bounds, 12,
                              &dm->seconds, err);
  return rc;
}

static int format_results(cli_ctx *cli, const digest_job *jobs, size_t n,
                          tw_buf *out) {
  int rc = cli->json ? tw_buf_putc(out, '[') : TW_OK;
  bool first = true;
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    if (jobs[i].err.code != TW_OK)
      continue;
    char hex[TW_SHA256_HEX_LEN + 1];
    tw_hex_encode(jobs[i].digest, TW_SHA256_LEN, hex);
    if (cli->json) {
      rc = tw_buf_puts(out, first ? "{\"path\":" : ",{\"path\":");
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(out, jobs[i].path, strlen(jobs[i].path));
      if (rc == TW_OK)
        rc = tw_buf_printf(out, ",\"digest\":\"sha256:%s\",\"size\":%llu}", hex,
                           (unsigned long long)jobs[i].size);
    } else {
      rc = tw_buf_printf(out, "sha256:%s  %s\n", hex, jobs[i].path);
    }
    first = false;
  }
  if (rc == TW_OK && cli->json)
    rc = tw_buf_puts(out, "]\n");
  return rc;
}

static int run_digest(cli_ctx *cli, const cli_args *args) {
  tw_err err;
  tw_err_init(&err);
  size_t n = (size_t)args->npos;
  digest_job *jobs = tw_calloc(n, sizeof *jobs);
  if (jobs == NULL) {
    tw_err_set(&err, TW_ENOMEM, "out of memory for %zu files", n);
    return cli_fail(cli, &err);
  }
  for (size_t i = 0; i < n; i++) {
    jobs[i].path = args->pos[i];
    tw_err_init(&jobs[i].err);
  }
  digest_metrics dm;
  tw_pool *pool;
  int rc = register_metrics(tw_ctx_metrics(cli->tw), &dm, &err);
  if (rc == TW_OK)
    rc = tw_ctx_pool(cli->tw, &pool, &err);
  if (rc == TW_OK)
    rc = tw_pool_parallel_for(pool, n, 1, digest_one, jobs, &err);
  int code = CLI_EXIT_OK;
  if (rc != TW_OK) {
    code = cli_fail(cli, &err);
  } else {
    for (size_t i = 0; i < n; i++) {
      if (jobs[i].err.code != TW_OK) {
        tw_metric_inc(dm.failed);
        code = cli_fail(cli, &jobs[i].err);
        continue;
      }
      tw_metric_inc(dm.ok);
      tw_metric_add(dm.bytes, (double)jobs[i].size);
      tw_metric_observe(dm.seconds, jobs[i].seconds);
    }
    tw_buf out = TW_BUF_INIT;
    if (format_results(cli, jobs, n, &out) != TW_OK) {
      tw_err_init(&err);
      tw_err_set(&err, TW_ENOMEM, "out of memory formatting the output");
      code = cli_fail(cli, &err);
    } else if (cli_write_out(cli, &out) != CLI_EXIT_OK) {
      code = CLI_EXIT_FAIL;
    }
    tw_buf_fini(&out);
  }
  tw_log(cli->tw, TW_LOG_INFO, "blob", "digested %zu file(s)", n);
  tw_free(jobs);
  return code;
}

static const cli_opt digest_opts[] = {
    {"json", 0, NULL,
     "print [{\"path\",\"digest\",\"size\"}] instead of text lines"},
    {NULL, 0, NULL, NULL}};

const cli_cmd cmd_blob_digest = {
    "blob",
    "digest",
    "FILE...",
    1,
    -1,
    "Print the sha256 content digest of each file.",
    "Prints 'sha256:<hex>  FILE' per file, the digest form used for models,\n"
    "traces and OCI blobs. FILE '-' reads standard input. Files are hashed\n"
    "in parallel; output keeps the order of the arguments. Unreadable files\n"
    "are reported on stderr, the rest are still printed, and the exit status\n"
    "is 1.",
    digest_opts,
    run_digest};
