/*
 * cmd_serve.c - `twin serve`: the HTTP server (include/twin/server.h) with
 * /healthz, /metrics, the OCI registry under /v2/ (its data in --data, an
 * OCI image layout, see docs/internals/registry.md) and, with --static,
 * the files of a directory.
 *
 * SIGTERM and SIGINT are blocked before any thread starts and taken with
 * sigwait on the main thread, so the stop runs as ordinary code: the
 * server stops accepting, lets in-flight requests finish within the grace
 * period and the command exits 0. The bound address goes to stdout as
 * "listening on http://HOST:PORT" (useful with port 0).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"

static const cli_opt serve_opts[] = {
    {"listen", 0, "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080; port 0 = any free)"},
    {"data", 0, "DIR", "data directory, created if missing (./twin-data)"},
    {"static", 0, "DIR", "serve the files of DIR at /"},
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

static int run_serve(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  tw_server_options opts;
  tw_server_options_init(&opts);
  const char *listen = cli_opt_value(c, args, "listen");
  const char *data = cli_opt_value(c, args, "data");
  const char *dir = cli_opt_value(c, args, "static");
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

  tw_server *srv = NULL;
  tw_reg *reg = NULL;
  tw_server_oci *oci = NULL;
  int rc = tw_reg_open(data ? data : "twin-data", &reg, &err);
  if (rc == TW_OK)
    rc = tw_server_new(cli->tw, &opts, &srv, &err);
  if (rc == TW_OK)
    rc = tw_server_oci_add(srv, reg, &oci, &err);
  if (rc == TW_OK && dir != NULL)
    rc = tw_server_static_add(srv, "/", dir, &err);
  if (rc == TW_OK)
    rc = tw_server_start(srv, &err);
  if (rc != TW_OK) {
    tw_server_free(srv);
    tw_server_oci_free(oci);
    tw_reg_close(reg);
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
  while (sigwait(&set, &sig) != 0)
    ;
  tw_log(cli->tw, TW_LOG_INFO, "server", "%s: stopping",
         sig == SIGTERM ? "SIGTERM" : "SIGINT");
  tw_server_stop(srv, opts.shutdown_grace_ms);
  if (tw_server_wait(srv) == TW_ETIMEDOUT)
    tw_log(cli->tw, TW_LOG_WARN, "server",
           "requests still running after %u ms were cut",
           opts.shutdown_grace_ms);
  tw_server_free(srv);
  tw_server_oci_free(oci);
  tw_reg_close(reg);
  return CLI_EXIT_OK;
}

const cli_cmd cmd_serve = {
    NULL,
    "serve",
    "",
    0,
    0,
    "Run the HTTP server (/healthz, /metrics, OCI registry, static files).",
    "Serves HTTP/1.1 on one event loop, handlers on the worker pool, and\n"
    "an OCI distribution v1.1 registry under /v2/ storing into --data.\n"
    "SIGTERM or SIGINT stops it gracefully: no new connections, in-flight\n"
    "requests finish within --grace-ms, exit 0. Access log lines are at\n"
    "level info (twin --log-level info serve).",
    serve_opts,
    run_serve};
