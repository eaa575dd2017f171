/*
 * graph_exec.c - running a loaded graph from the command line, shared by
 * `twin graph run` and `twin compose up`: budgets and accounting options,
 * inputs from MCAP, outputs printed per tick or traced to MCAP in pieces,
 * the accounting table.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "graph_exec.h"

/* Appends the last run's accounting (text table or one JSON line). */
int cli_put_graph_stats(cli_ctx *cli, const tw_graph *g, tw_buf *b) {
  size_t n = tw_graph_stats(g, NULL, 0, NULL);
  tw_graph_block_stats *st = tw_calloc(n ? n : 1, sizeof *st);
  if (st == NULL)
    return TW_ENOMEM;
  tw_graph_run_stats r;
  (void)tw_graph_stats(g, st, n, &r);
  int rc = cli->json
               ? tw_buf_printf(b,
                               "{\"stats\":{\"ticks\":%lld,\"wall_ms\":%.3f,"
                               "\"cpu_ms\":%.3f,\"memory_bytes\":%zu,"
                               "\"checkpoint_bytes\":%zu,\"fuel\":%llu,"
                               "\"blocks\":[",
                               (long long)r.ticks, r.wall_ms, r.cpu_ms,
                               r.memory_bytes, r.checkpoint_bytes,
                               (unsigned long long)r.fuel)
               : tw_buf_printf(b,
                               "run: %lld ticks, %.3f ms wall, %.3f ms CPU, "
                               "%zu bytes at peak, fuel %llu\n"
                               "%-20s %-12s %10s %8s %10s %10s %12s %12s "
                               "%12s\n",
                               (long long)r.ticks, r.wall_ms, r.cpu_ms,
                               r.memory_bytes, (unsigned long long)r.fuel,
                               "block", "kind", "steps", "vjps", "wall ms",
                               "cpu ms", "memory", "wasm memory", "fuel");
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    const tw_graph_block_stats *s = &st[i];
    if (cli->json) {
      rc = tw_buf_printf(b, "%s{\"block\":", i ? "," : "");
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(b, s->name, strlen(s->name));
      if (rc == TW_OK)
        rc = tw_buf_printf(b,
                           ",\"kind\":\"%s\",\"steps\":%llu,\"vjps\":%llu,"
                           "\"wall_ms\":%.3f,\"cpu_ms\":%.3f,"
                           "\"memory_bytes\":%zu,\"wasm_memory_bytes\":%zu,"
                           "\"fuel\":%llu}",
                           s->kind, (unsigned long long)s->steps,
                           (unsigned long long)s->vjps, s->wall_ms, s->cpu_ms,
                           s->memory_bytes, s->wasm_memory,
                           (unsigned long long)s->fuel);
    } else {
      rc = tw_buf_printf(b,
                         "%-20s %-12s %10llu %8llu %10.3f %10.3f %12zu %12zu "
                         "%12llu\n",
                         s->name, s->kind, (unsigned long long)s->steps,
                         (unsigned long long)s->vjps, s->wall_ms, s->cpu_ms,
                         s->memory_bytes, s->wasm_memory,
                         (unsigned long long)s->fuel);
    }
  }
  if (rc == TW_OK && cli->json)
    rc = tw_buf_printf(b, "]}}\n");
  tw_free(st);
  return rc;
}

/* --max-cpu-ms, --max-memory and --stats of run and grad. */
int cli_graph_budget(cli_ctx *cli, const cli_args *args, tw_graph *g) {
  const cli_cmd *c = cli->cmd;
  const char *v;
  unsigned long max_cpu = 0, max_mem = 0;
  if ((v = cli_opt_value(c, args, "max-cpu-ms")) != NULL &&
      cli_parse_uint(cli, "max-cpu-ms", v, 1ul << 40, &max_cpu) != 0)
    return CLI_EXIT_USAGE;
  if ((v = cli_opt_value(c, args, "max-memory")) != NULL &&
      cli_parse_size(cli, "max-memory", v, 1ul << 50, &max_mem) != 0)
    return CLI_EXIT_USAGE;
  tw_graph_set_budget(g, (double)max_cpu, (size_t)max_mem);
  tw_graph_set_accounting(g, cli_opt_value(c, args, "stats") != NULL);
  return CLI_EXIT_OK;
}

/* Ticks per piece of a run: the rows of inputs and outputs held at once
 * when the outputs go to a trace. */
#define RUN_SEGMENT 4096

/* Prints the rows of ticks k0..k0+n-1 of out, one line per tick. */
static int put_ticks(cli_ctx *cli, const tw_graph *g, int64_t k0, int64_t n,
                     const double *out) {
  size_t w = tw_graph_output_width(g);
  tw_buf b = TW_BUF_INIT;
  int code = CLI_EXIT_OK;
  for (int64_t j = 0; code == CLI_EXIT_OK && j < n; j++) {
    unsigned long k = (unsigned long)(k0 + j);
    tw_buf_reset(&b);
    double t = (double)k * tw_graph_dt(g);
    int frc = cli->json ? tw_buf_printf(&b,
                                        "{\"tick\":%lu,\"t\":%.17g,"
                                        "\"outputs\":{",
                                        k, t)
                        : tw_buf_printf(&b, "%6lu  t=%-10.6g", k, t);
    const double *row = out + (size_t)j * w;
    size_t off = 0;
    for (size_t o2 = 0; frc == TW_OK && o2 < tw_graph_noutputs(g); o2++) {
      size_t size;
      const char *name = tw_graph_output_name(g, o2, &size);
      frc = cli->json ? tw_buf_printf(&b, "%s\"%s\":[", o2 ? "," : "", name)
                      : tw_buf_printf(&b, " %s=[", name);
      for (size_t j2 = 0; frc == TW_OK && j2 < size; j2++)
        frc = tw_buf_printf(&b, "%s%.17g", j2 ? "," : "", row[off + j2]);
      if (frc == TW_OK)
        frc = tw_buf_printf(&b, "]");
      off += size;
    }
    if (frc == TW_OK)
      frc = tw_buf_printf(&b, cli->json ? "}}\n" : "\n");
    code = cli_write_formatted(cli, &b, frc);
  }
  tw_buf_fini(&b);
  return code;
}

/* The summary of a written trace: its path, ticks and size. */
static int put_trace_summary(cli_ctx *cli, const char *path, int64_t ticks) {
  struct stat st;
  unsigned long long bytes =
      stat(path, &st) == 0 ? (unsigned long long)st.st_size : 0;
  tw_buf b = TW_BUF_INIT;
  int frc;
  if (cli->json) {
    frc = tw_buf_puts(&b, "{\"trace\":");
    if (frc == TW_OK)
      frc = tw_buf_put_json_string(&b, path, strlen(path));
    if (frc == TW_OK)
      frc = tw_buf_printf(&b, ",\"ticks\":%lld,\"bytes\":%llu}\n",
                          (long long)ticks, bytes);
  } else {
    frc = tw_buf_printf(&b, "%s: %lld ticks, %llu bytes\n", path,
                        (long long)ticks, bytes);
  }
  int code = cli_write_formatted(cli, &b, frc);
  tw_buf_fini(&b);
  return code;
}

/* --inputs, --input-map, --trace and --trace-format. */
int cli_run_io_of(cli_ctx *cli, const cli_args *args, cli_run_io *io) {
  const cli_cmd *c = cli->cmd;
  memset(io, 0, sizeof *io);
  tw_graph_trace_opts_init(&io->topts);
  io->inputs = cli_opt_value(c, args, "inputs");
  io->trace = cli_opt_value(c, args, "trace");
  io->nmap = cli_opt_values(c, args, "input-map", io->map, CLI_MAX_INPUT_MAP);
  if (io->nmap > CLI_MAX_INPUT_MAP)
    return cli_usage_error(cli, c, "at most %d --input-map options",
                           CLI_MAX_INPUT_MAP);
  if (io->nmap > 0 && io->inputs == NULL)
    return cli_usage_error(cli, c, "--input-map needs --inputs FILE.mcap");
  if ((io->inputs != NULL && io->inputs[0] == '\0') ||
      (io->trace != NULL && io->trace[0] == '\0'))
    return cli_usage_error(cli, c, "--inputs and --trace need a file name");
  const char *f = cli_opt_value(c, args, "trace-format");
  if (f != NULL && io->trace == NULL)
    return cli_usage_error(cli, c, "--trace-format needs --trace FILE.mcap");
  if (f != NULL && strcmp(f, "cdr") == 0)
    io->topts.encoding = TW_TRACE_ENCODING_CDR;
  else if (f != NULL && strcmp(f, "json") != 0)
    return cli_usage_error(cli, c,
                           "--trace-format must be json or cdr, not '%s'", f);
  return CLI_EXIT_OK;
}

/* Runs ticks of g in pieces: inputs from in (NULL: zeros), outputs to tr
 * (then out holds one piece) or into out (every tick). */
static int run_pieces(tw_graph *g, int64_t ticks, tw_graph_inputs *in,
                      tw_graph_trace *tr, double *inbuf, double *out,
                      tw_err *err) {
  size_t w = tw_graph_output_width(g);
  int rc = tw_graph_reset(g, err);
  for (int64_t k = 0; rc == TW_OK && k < ticks; k += RUN_SEGMENT) {
    int64_t n = ticks - k < RUN_SEGMENT ? ticks - k : RUN_SEGMENT;
    double *o = tr != NULL ? out : out + (size_t)k * w;
    if (in != NULL)
      rc = tw_graph_inputs_read(in, n, inbuf, err);
    if (rc == TW_OK)
      rc = tw_graph_advance(g, n, in != NULL ? inbuf : NULL, o, err);
    if (rc == TW_OK && tr != NULL)
      rc = tw_graph_trace_write(tr, k, n, in != NULL ? inbuf : NULL, o, err);
  }
  return rc;
}

int cli_graph_execute(cli_ctx *cli, const cli_args *args, tw_graph *g,
                      unsigned long ticks, const cli_run_io *io) {
  /* With a trace, one piece of outputs at a time; without, every tick's
   * (printed once the whole run succeeded). */
  size_t w = tw_graph_output_width(g), iw = tw_graph_input_width(g);
  unsigned long rows =
      io->trace != NULL && ticks > RUN_SEGMENT ? RUN_SEGMENT : ticks;
  unsigned long irows = ticks < RUN_SEGMENT ? ticks : RUN_SEGMENT;
  double *out = tw_calloc(rows * (w ? w : 1), sizeof(double));
  double *inbuf = io->inputs != NULL
                      ? tw_calloc(irows * (iw ? iw : 1), sizeof(double))
                      : NULL;
  tw_graph_inputs *in = NULL;
  tw_graph_trace *tr = NULL;
  tw_err err;
  tw_err_init(&err);
  int rc = TW_OK;
  if (out == NULL || (io->inputs != NULL && inbuf == NULL))
    rc = tw_err_set(&err, TW_ENOMEM, "out of memory for %lu ticks", ticks);
  if (rc == TW_OK && io->inputs != NULL)
    rc = tw_graph_inputs_open(g, io->inputs, io->map, (size_t)io->nmap, &in,
                              &err);
  if (rc == TW_OK && io->trace != NULL)
    rc = tw_graph_trace_open(g, io->trace, &io->topts, &tr, &err);
  if (rc == TW_OK)
    rc = run_pieces(g, (int64_t)ticks, in, tr, inbuf, out, &err);
  tw_graph_inputs_close(in);
  if (rc != TW_OK) {
    tw_graph_trace_abort(tr);
    tr = NULL;
  }
  if (rc == TW_OK && tr != NULL)
    rc = tw_graph_trace_close(tr, g, &err);
  int code = rc == TW_OK ? CLI_EXIT_OK : cli_fail(cli, &err);
  if (code == CLI_EXIT_OK)
    code = io->trace != NULL ? put_trace_summary(cli, io->trace, (int64_t)ticks)
                             : put_ticks(cli, g, 0, (int64_t)ticks, out);
  if (code == CLI_EXIT_OK && cli_opt_value(cli->cmd, args, "stats") != NULL) {
    tw_buf b = TW_BUF_INIT;
    code = cli_write_formatted(cli, &b, cli_put_graph_stats(cli, g, &b));
    tw_buf_fini(&b);
  }
  tw_free(inbuf);
  tw_free(out);
  return code;
}
