/*
 * cmd_serve.c - `twin serve`: the HTTP server (include/twin/server.h) with
 * /healthz, /metrics, the OCI registry under /v2/ (its data in --data, an
 * OCI image layout, see docs/internals/registry.md), the model registry's
 * REST API under /api/v1/ (metadata in --db, SQLite under --data by
 * default, see docs/openapi.yaml) and, with --static, the files of a
 * directory.
 *
 * SIGTERM and SIGINT are blocked before any thread starts and taken with
 * sigtimedwait on the main thread, so the stop runs as ordinary code: the
 * server stops accepting, lets in-flight requests finish within the grace
 * period and the command exits 0. The bound address goes to stdout as
 * "listening on http://HOST:PORT" (useful with port 0). Between signals
 * the main thread purges upload sessions idle for --upload-ttl, at start
 * and then hourly (docker-registry's uploadpurging, same defaults);
 * unreferenced blobs are left to `twin registry gc`.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

static const cli_opt serve_opts[] = {
    {"listen", 0, "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080; port 0 = any free)"},
    {"data", 0, "DIR", "data directory, created if missing (./twin-data)"},
    {"db", 0, "URL",
     "metadata store: sqlite:PATH or postgres://... (default "
     "sqlite:DATA/meta.db)"},
    {"static", 0, "DIR", "serve the files of DIR at /"},
    {"upload-ttl", 0, "SECONDS",
     "purge upload sessions idle this long, hourly (default 604800, 7 "
     "days)"},
    {"threads", 0, "N",
     "handler threads (default 2 per CPU + 2; handlers block on disk and "
     "database I/O)"},
    {"grace-ms", 0, "MS",
     "on SIGTERM/SIGINT, time in-flight requests get (default 10000)"},
    {NULL, 0, NULL, NULL}};

/* mkdir -p for the data directory. */
static int make_dirs(const char *path, tw_err *err) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf)
    return tw_err_set(err, TW_EINVAL, "data directory '%s': bad path", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return tw_err_sys(err, errno, "data directory '%s'", buf);
    buf[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return tw_err_set(err, TW_EINVAL, "data directory '%s': not a directory",
                      path);
  return TW_OK;
}

/* Removes upload sessions idle for ttl_s seconds, logging what it did. */
static void purge_uploads(cli_ctx *cli, tw_reg *reg, int64_t ttl_s) {
  tw_err err;
  tw_err_init(&err);
  size_t n = 0;
  if (tw_reg_upload_gc(reg, ttl_s, &n, &err) != TW_OK)
    tw_log(cli->tw, TW_LOG_WARN, "server", "purging uploads: %s",
           tw_err_msg(&err));
  else if (n > 0)
    tw_log(cli->tw, TW_LOG_INFO, "server",
           "purged %zu upload sessions idle for %lld s", n, (long long)ttl_s);
}

static int run_serve(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  tw_server_options opts;
  tw_server_options_init(&opts);
  const char *listen = cli_opt_value(c, args, "listen");
  const char *data = cli_opt_value(c, args, "data");
  const char *dir = cli_opt_value(c, args, "static");
  const char *db = cli_opt_value(c, args, "db");
  const char *threads = cli_opt_value(c, args, "threads");
  const char *ttl = cli_opt_value(c, args, "upload-ttl");
  unsigned long ttl_s = 7ul * 24 * 3600;
  if (ttl != NULL &&
      cli_parse_uint(cli, "upload-ttl", ttl, 10ul * 365 * 86400, &ttl_s) != 0)
    return CLI_EXIT_USAGE;
  unsigned long nthreads = 0;
  if (threads != NULL &&
      cli_parse_uint(cli, "threads", threads, 1024, &nthreads) != 0)
    return CLI_EXIT_USAGE;
  if (nthreads == 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = 2 * (unsigned long)(ncpu > 0 ? ncpu : 1) + 2;
  }
  const char *grace = cli_opt_value(c, args, "grace-ms");
  if (listen != NULL)
    opts.listen = listen;
  if (grace != NULL) {
    unsigned long ms;
    if (cli_parse_uint(cli, "grace-ms", grace, 3600000, &ms) != 0)
      return CLI_EXIT_USAGE;
    opts.shutdown_grace_ms = (unsigned)ms;
  }
  tw_err err;
  tw_err_init(&err);
  if (make_dirs(data ? data : "twin-data", &err) != TW_OK)
    return cli_fail(cli, &err);

  /* Before any thread exists, so that every thread inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  const char *dd = data ? data : "twin-data";
  tw_server *srv = NULL;
  tw_reg *reg = NULL;
  tw_server_oci *oci = NULL;
  tw_server_api *api = NULL;
  tw_server_sr *sr = NULL;
  tw_meta *meta = NULL;
  tw_wasm_engine *engine = NULL;
  tw_pool *pool = NULL;
  tw_buf url = TW_BUF_INIT;
  /* The server's own pool: more threads than CPUs, so its idle workers
   * sleep at once instead of spinning as a compute pool's do. */
  int rc = tw_pool_new((unsigned)nthreads, &pool, &err);
  opts.pool = pool;
  if (rc == TW_OK)
    rc = db != NULL ? tw_buf_puts(&url, db)
                    : tw_meta_url_default(dd, &url, &err);
  if (rc == TW_OK)
    rc = tw_reg_open(dd, &reg, &err);
  if (rc == TW_OK)
    rc = tw_meta_open(url.data, &meta, &err);
  if (rc == TW_OK) {
    /* Fuel only: the loader's probe runs under a budget, and no epoch
     * ticker thread wakes every millisecond in a server that is idle. */
    tw_wasm_engine_opts eo;
    memset(&eo, 0, sizeof eo);
    eo.meters = TW_WASM_FUEL;
    rc = tw_wasm_engine_new(cli->tw, &eo, &engine, &err);
  }
  if (rc == TW_OK)
    rc = tw_server_new(cli->tw, &opts, &srv, &err);
  if (rc == TW_OK)
    rc = tw_server_oci_add(srv, reg, &oci, &err);
  if (rc == TW_OK) {
    tw_server_oci_check_models(oci, engine);
    rc = tw_server_api_add(srv, reg, meta, engine, &api, &err);
  }
  if (rc == TW_OK)
    rc = tw_server_sr_add(srv, meta, &sr, &err);
  if (rc == TW_OK && dir != NULL)
    rc = tw_server_static_add(srv, "/", dir, &err);
  if (rc == TW_OK) {
    /* Before the first request, so none sees a session half removed. */
    purge_uploads(cli, reg, (int64_t)ttl_s);
    rc = tw_server_start(srv, &err);
  }
  if (rc == TW_OK)
    tw_log(cli->tw, TW_LOG_INFO, "server", "metadata in %s (%s)",
           tw_meta_url(meta), tw_meta_backend(meta));
  tw_buf_fini(&url);
  if (rc != TW_OK) {
    tw_server_free(srv);
    tw_server_oci_free(oci);
    tw_server_api_free(api);
    tw_server_sr_free(sr);
    tw_wasm_engine_free(engine);
    tw_meta_close(meta);
    tw_reg_close(reg);
    tw_pool_free(pool);
    return cli_fail(cli, &err);
  }
  char host[80];
  const char *colon = strrchr(opts.listen, ':');
  (void)snprintf(host, sizeof host, "%.*s", (int)(colon - opts.listen),
                 opts.listen);
  (void)fprintf(cli->out, "listening on http://%s:%d\n", host,
                tw_server_port(srv));
  (void)fflush(cli->out);

  int sig = 0;
  for (int64_t next_purge = tw_clock_mono_ns() / 1000000000 + 3600;;) {
    int64_t now = tw_clock_mono_ns() / 1000000000;
    if (now >= next_purge) {
      purge_uploads(cli, reg, (int64_t)ttl_s);
      next_purge = now + 3600;
    }
    struct timespec ts = {60, 0};
    sig = sigtimedwait(&set, NULL, &ts);
    if (sig == SIGTERM || sig == SIGINT)
      break;
  }
  tw_log(cli->tw, TW_LOG_INFO, "server", "%s: stopping",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  tw_server_stop(srv, opts.shutdown_grace_ms);
  if (tw_server_wait(srv) == TW_ETIMEDOUT)
    tw_log(cli->tw, TW_LOG_WARN, "server",
           "requests still running after %u ms were cut",
           opts.shutdown_grace_ms);
  tw_server_free(srv);
  tw_server_oci_free(oci);
  tw_server_api_free(api);
  tw_server_sr_free(sr);
  tw_wasm_engine_free(engine);
  tw_meta_close(meta);
  tw_reg_close(reg);
  tw_pool_free(pool);
  return CLI_EXIT_OK;
}

const cli_cmd cmd_serve = {
    NULL,
    "serve",
    "",
    0,
    0,
    "Run the HTTP server (/healthz, /metrics, OCI registry, model API).",
    "Serves HTTP/1.1 on one event loop, handlers on the worker pool, an\n"
    "OCI distribution v1.1 registry under /v2/ storing into --data, and\n"
    "the model registry's REST API under /api/v1/ (docs/openapi.yaml)\n"
    "with its metadata in --db (default: SQLite in --data).\n"
    "SIGTERM or SIGINT stops it gracefully: no new connections, in-flight\n"
    "requests finish within --grace-ms, exit 0. Access log lines are at\n"
    "level info (twin --log-level info serve).",
    serve_opts,
    run_serve};
