/*
 * cmd_compose.c - `twin compose validate|graph|up`: a twin-compose file
 * checked (every problem with its place, severity and code), compiled
 * into its execution graph, and run with its sources.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "graph_exec.h"
#include "live.h"

#define MAX_PARAM_FILES 16

/* --profile, -p/--params FILE... and the wasm limits into o. */
static int compose_opts_of(cli_ctx *cli, const cli_args *args,
                           tw_compose_opts *o, const char **files,
                           bool limits) {
  const cli_cmd *c = cli->cmd;
  memset(o, 0, sizeof *o);
  o->ctx = cli->tw;
  o->profile = cli_opt_value(c, args, "profile");
  o->store = cli_opt_value(c, args, "store");
  int n = cli_opt_values(c, args, "params", files, MAX_PARAM_FILES);
  if (n > MAX_PARAM_FILES)
    return cli_usage_error(cli, c, "at most %d --params files",
                           MAX_PARAM_FILES);
  o->param_files = files;
  o->nparam_files = (size_t)n;
  if (o->profile != NULL && o->profile[0] == '\0')
    return cli_usage_error(cli, c, "--profile needs a name");
  return limits ? cli_wasm_limits(cli, args, &o->limits) : CLI_EXIT_OK;
}

/* Loads the twin; diagnostics to stderr as text, or (json) to stdout as
 * one JSON array. */
static int load(cli_ctx *cli, const char *path, const tw_compose_opts *o,
                bool json, tw_compose **out, tw_err *err) {
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  int rc = tw_compose_load(path, o, &d, out, err);
  tw_buf b = TW_BUF_INIT;
  if (tw_compose_diags_format(&d, json, &b) == TW_OK && b.len > 0) {
    if (json)
      (void)cli_write_out(cli, &b);
    else
      (void)fwrite(b.data, 1, b.len, cli->errs);
  }
  tw_buf_fini(&b);
  tw_compose_diags_fini(&d);
  return rc;
}

static const cli_opt validate_opts[] = {
    {"json", 0, NULL,
     "print [{\"file\",\"line\",\"col\",\"severity\",\"code\",\"message\"}]"},
    {"profile", 0, "NAME", "validate with this profile merged"},
    {"params", 'p', "FILE", "parameter file laid over the twin (repeats)"},
    {"store", 0, "DIR", "model store of oci://...@sha256: models"},
    {NULL, 0, NULL, NULL}};

static int run_validate(cli_ctx *cli, const cli_args *args) {
  tw_compose_opts o;
  const char *files[MAX_PARAM_FILES + 1];
  if (compose_opts_of(cli, args, &o, files, false) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_compose *c = NULL;
  int rc = load(cli, args->pos[0], &o, cli->json, &c, &err);
  if (rc == TW_EVALIDATE)
    return CLI_EXIT_FAIL;
  if (rc != TW_OK)
    return cli_fail(cli, &err);
  int code = CLI_EXIT_OK;
  if (!cli->json) {
    tw_buf b = TW_BUF_INIT;
    tw_graph *g = tw_compose_graph(c);
    if (tw_buf_printf(&b,
                      "%s: ok: twin '%s', %zu blocks, %zu sources, dt %g s\n",
                      args->pos[0], tw_compose_name(c), tw_graph_nblocks(g),
                      tw_compose_nsources(c), tw_graph_dt(g)) == TW_OK)
      code = cli_write_out(cli, &b);
    tw_buf_fini(&b);
  }
  tw_compose_free(c);
  return code;
}

const cli_cmd cmd_compose_validate = {
    "compose",
    "validate",
    "TWIN.yaml",
    1,
    1,
    "check a twin-compose file, reporting every problem",
    "Reads the twin, lays the --params files and the --profile over it,\n"
    "loads every model and checks parameters, units, connections, rates\n"
    "and sources. Every problem is printed as FILE:LINE:COL: error: MESSAGE\n"
    "(or warning:), with --json as one array of {file, line, col,\n"
    "severity, code, message}. Exit status: 0 valid, 1 invalid, 2 usage.",
    validate_opts,
    run_validate};

static const cli_opt graph_opts[] = {
    {"json", 0, NULL, "print the graph's JSON IR instead of .twg"},
    {"profile", 0, "NAME", "compile with this profile merged"},
    {"params", 'p', "FILE", "parameter file laid over the twin (repeats)"},
    {"store", 0, "DIR", "model store of oci://...@sha256: models"},
    {NULL, 0, NULL, NULL}};

static int run_graph(cli_ctx *cli, const cli_args *args) {
  tw_compose_opts o;
  const char *files[MAX_PARAM_FILES + 1];
  if (compose_opts_of(cli, args, &o, files, false) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_compose *c = NULL;
  int rc = load(cli, args->pos[0], &o, false, &c, &err);
  if (rc == TW_EVALIDATE)
    return CLI_EXIT_FAIL;
  if (rc != TW_OK)
    return cli_fail(cli, &err);
  tw_buf b = TW_BUF_INIT;
  rc = tw_compose_format_graph(c, cli->json, &b, &err);
  int code = rc == TW_OK ? cli_write_out(cli, &b) : cli_fail(cli, &err);
  tw_buf_fini(&b);
  tw_compose_free(c);
  return code;
}

const cli_cmd cmd_compose_graph = {
    "compose",
    "graph",
    "TWIN.yaml",
    1,
    1,
    "print the execution graph a twin compiles to",
    "Compiles the twin (with --params and --profile) and prints its\n"
    "execution graph as .twg text, or as the JSON IR with --json; either\n"
    "runs with `twin graph run`. Unit conversions appear as _convN blocks,\n"
    "sources' topics as graph inputs SOURCE.TOPIC.",
    graph_opts,
    run_graph};

static const cli_opt up_opts[] = {
    {"profile", 0, "NAME", "the profile to run (sim, shadow, live, ...)"},
    {"params", 'p', "FILE", "parameter file laid over the twin (repeats)"},
    {"ticks", 0, "N", "ticks to run (default: to the end of the recording)"},
    {"trace", 0, "FILE.mcap", "record inputs and outputs as an MCAP trace"},
    {"trace-format", 0, "json|cdr", "the trace's sample encoding (json)"},
    {"fuel", 0, "N", "fuel per call of each wasm model"},
    {"timeout-ms", 0, "N", "deadline per call of each wasm model"},
    {"max-cpu-ms", 0, "MS", "stop the run past this much CPU time"},
    {"max-memory", 0, "SIZE", "stop the run past this much memory"},
    {"stats", 0, NULL, "print per-block accounting after the run"},
    {"store", 0, "DIR", "model store of oci://...@sha256: models"},
    {"json", 0, NULL, "JSON lines: one per tick with the outputs"},
    {"record", 0, "PATH",
     "live: record everything ingested (FILE.mcap, or a directory of "
     "rotated segments)"},
    {"segment-size", 0, "SIZE", "live: rotate segments at SIZE (256M)"},
    {"max-size", 0, "SIZE", "live: delete the oldest segments beyond SIZE"},
    {"duration", 0, "SECONDS", "live: stop after this long"},
    {"max-records", 0, "N", "live: stop after N records"},
    {"stop-when-idle-ms", 0, "MS",
     "stop once no record came for MS (after the first)"},
    {"idle-timeout-ms", 0, "MS",
     "live: a source silent this long stops holding the others (0: never)"},
    {"out-of-order-ms", 0, "MS",
     "live: how late a record may be and still count (50)"},
    {"partition-idle-ms", 0, "MS",
     "live: a Kafka partition silent this long stops holding its source "
     "(1000; 0: never)"},
    {"max-partition-drift-ms", 0, "MS",
     "live: also pause a Kafka partition this far ahead of its source "
     "(0: only when the aligner's buffer fills)"},
    {"output-topic", 0, "TOPIC",
     "live: produce the outputs to this Kafka topic"},
    {"quiet", 'q', NULL, "live: no line per tick"},
    {NULL, 0, NULL, NULL}};

#define MAX_LIVE_SOURCES 16

/* Ticks to the end of a recording: the last message's time over dt. */
static int recording_ticks(const char *path, double dt, unsigned long *ticks,
                           tw_err *err) {
  tw_trace_reader *r = NULL;
  int rc = tw_trace_reader_open(path, NULL, &r, err);
  if (rc != TW_OK)
    return rc;
  const tw_trace_info *info = tw_trace_reader_info(r);
  double end = (double)info->stats.message_end_time / 1e9;
  uint64_t count = info->stats.message_count;
  tw_trace_reader_close(r); /* info is the reader's */
  if (count == 0)
    return tw_err_set(err, TW_EINVAL, "%s: the recording has no messages",
                      path);
  *ticks = (unsigned long)floor(end / dt + 1e-9) + 1;
  return TW_OK;
}

static int run_up(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *cmd = cli->cmd;
  tw_compose_opts o;
  const char *files[MAX_PARAM_FILES + 1];
  if (compose_opts_of(cli, args, &o, files, true) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  cli_run_io io;
  if (cli_run_io_of(cli, args, &io) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  unsigned long ticks = 0;
  const char *v = cli_opt_value(cmd, args, "ticks");
  if (v != NULL &&
      (cli_parse_uint(cli, "ticks", v, 1ul << 32, &ticks) != 0 || ticks == 0))
    return ticks == 0 && v != NULL
               ? cli_usage_error(cli, cmd, "--ticks needs at least 1")
               : CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_compose *c = NULL;
  int rc = load(cli, args->pos[0], &o, false, &c, &err);
  if (rc == TW_EVALIDATE)
    return CLI_EXIT_FAIL;
  if (rc != TW_OK)
    return cli_fail(cli, &err);
  tw_graph *g = tw_compose_graph(c);
  /* Live sources: the ingest pipeline. */
  tw_compose_source live[MAX_LIVE_SOURCES];
  int nlive = live_sources_of(c, live, MAX_LIVE_SOURCES, &err);
  if (nlive < 0) {
    tw_compose_free(c);
    return cli_fail(cli, &err);
  }
  if (nlive > 0) {
    live_opts lo;
    int code = live_opts_of(cli, args, &lo);
    if (code == CLI_EXIT_OK && cli_graph_budget(cli, args, g) != CLI_EXIT_OK)
      code = CLI_EXIT_USAGE;
    if (code == CLI_EXIT_OK) {
      lo.graph = g;
      lo.twin = tw_compose_name(c);
      lo.max_ticks = (int64_t)ticks;
      code = live_run(cli, &lo, live, (size_t)nlive);
    }
    tw_compose_free(c);
    return code;
  }
  tw_err_init(&err);
  /* The sources: one recording feeds the graph's inputs. */
  const tw_compose_source *rec = NULL;
  for (size_t i = 0; rc == TW_OK && i < tw_compose_nsources(c); i++) {
    const tw_compose_source *s = tw_compose_source_at(c, i);
    if (s->nmap == 0)
      continue; /* declared, not read */
    if (rec != NULL) {
      rc = tw_err_set(&err, TW_ENOTSUP,
                      "sources '%s' and '%s': compose up reads one "
                      "recording per run; record them into one MCAP file",
                      rec->name, s->name);
    } else {
      rec = s;
    }
  }
  if (rc == TW_OK && rec != NULL) {
    io.inputs = rec->path;
    io.nmap = (int)rec->nmap;
    for (size_t i = 0; i < rec->nmap && i < CLI_MAX_INPUT_MAP; i++)
      io.map[i] = rec->map[i];
    if (ticks == 0)
      rc = recording_ticks(rec->path, tw_graph_dt(g), &ticks, &err);
  }
  if (rc == TW_OK && ticks == 0)
    rc = tw_err_set(&err, TW_EINVAL,
                    "the twin reads no recording: give --ticks N");
  int code = rc == TW_OK ? CLI_EXIT_OK : cli_fail(cli, &err);
  if (code == CLI_EXIT_OK && cli_graph_budget(cli, args, g) != CLI_EXIT_OK)
    code = CLI_EXIT_USAGE;
  if (code == CLI_EXIT_OK)
    code = cli_graph_execute(cli, args, g, ticks, &io);
  tw_compose_free(c);
  return code;
}

const cli_cmd cmd_compose_up = {
    "compose",
    "up",
    "TWIN.yaml",
    1,
    1,
    "run a twin with its sources",
    "Compiles the twin with --profile and --params and runs it: its mcap\n"
    "source's topics feed the graph's inputs (each tick holds the latest\n"
    "sample at or before its time) for --ticks steps or to the end of the\n"
    "recording. The outputs are printed per tick, or with --trace\n"
    "FILE.mcap recorded with the inputs (a run that fails leaves no\n"
    "file).\n"
    "\n"
    "Live sources (kafka, mqtt, rtsp) run the twin on the live data: every\n"
    "record is recorded (--record) before it reaches the twin, checked\n"
    "against the twin's ports (refused ones go to the source's dead_letter\n"
    "topic), aligned on the tick grid (each tick holds the latest value)\n"
    "and stepped; positions are committed only once recorded. The run\n"
    "stops at --ticks, --duration, --max-records or SIGINT/SIGTERM;\n"
    "`twin replay` re-runs the recording to the same outputs, bit for bit.",
    up_opts,
    run_up};
