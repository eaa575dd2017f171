/*
 * cmd_system.c - `twin system info`: what this installation is and what
 * the machine gives it (version, CPUs, worker threads, clock resolution,
 * library versions), as text or JSON. Bug reports start here.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

static double clock_res_ns(clockid_t id) {
  struct timespec ts;
  if (clock_getres(id, &ts) != 0)
    return -1;
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int run_info(cli_ctx *cli, const cli_args *args) {
  (void)args;
  tw_err err;
  tw_err_init(&err);
  tw_pool *pool;
  if (tw_ctx_pool(cli->tw, &pool, &err) != TW_OK)
    return cli_fail(cli, &err);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  long page = sysconf(_SC_PAGESIZE);
  double mono = clock_res_ns(CLOCK_MONOTONIC);
  double tcpu = clock_res_ns(CLOCK_THREAD_CPUTIME_ID);
  char now[TW_CLOCK_RFC3339_LEN];
  tw_clock_format_rfc3339(tw_clock_wall_ns(), now);
  tw_buf b = TW_BUF_INIT;
  int rc;
  if (cli->json)
    rc = tw_buf_printf(
        &b,
        "{\"version\":\"%s\",\"time\":\"%s\",\"cpus\":%ld,\"threads\":%u,"
        "\"page_size\":%ld,\"clock_resolution_ns\":{\"monotonic\":%.0f,"
        "\"thread_cpu\":%.0f},\"jansson\":\"%s\"}\n",
        tw_version_string(), now, cpus, tw_pool_threads(pool), page, mono, tcpu,
        jansson_version_str());
  else
    rc = tw_buf_printf(&b,
                       "twin %s\n"
                       "time:               %s\n"
                       "cpus online:        %ld\n"
                       "worker threads:     %u\n"
                       "page size:          %ld bytes\n"
                       "clock resolution:   monotonic %.0f ns, thread CPU "
                       "%.0f ns\n"
                       "jansson:            %s\n",
                       tw_version_string(), now, cpus, tw_pool_threads(pool),
                       page, mono, tcpu, jansson_version_str());
  int code = cli_write_formatted(cli, &b, rc);
  tw_buf_fini(&b);
  return code;
}

static const cli_opt info_opts[] = {{"json", 0, NULL, "print a JSON object"},
                                    {NULL, 0, NULL, NULL}};

const cli_cmd cmd_system_info = {
    "system", "info",    "",
    0,        0,         "Describe this installation and machine.",
    NULL,     info_opts, run_info};
