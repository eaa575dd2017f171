/*
 * cmd_graph.c - `twin graph validate` and `twin graph run`: check an
 * execution graph (every problem as FILE:LINE:COL: error: MESSAGE) and
 * run it for a number of ticks, printing its outputs or tracing them to
 * MCAP, with inputs read from MCAP.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "graph_exec.h"

static const cli_opt validate_opts[] = {
    {"json", 0, NULL, "print {\"ok\":..,\"diagnostics\":[..]}"},
    {"store", 0, "DIR", "model store of wasm:sha256:... blocks"},
    {NULL, 0, NULL, NULL}};

static const cli_opt run_opts[] = {
    {"ticks", 0, "N", "ticks to run (default 10)"},
    {"fuel", 0, "N", "fuel per call of each wasm block"},
    {"timeout-ms", 0, "N", "deadline per call of each wasm block"},
    {"max-cpu-ms", 0, "MS", "stop the run past this much CPU time"},
    {"max-memory", 0, "SIZE", "stop the run past this much memory (64M)"},
    {"stats", 0, NULL, "print per-block accounting after the run"},
    {"inputs", 0, "FILE.mcap", "graph inputs from an MCAP file's channels"},
    {"input-map", 0, "NAME=TOPIC", "input NAME from channel TOPIC (repeats)"},
    {"trace", 0, "FILE.mcap", "record inputs and outputs as an MCAP trace"},
    {"trace-format", 0, "json|cdr", "the trace's sample encoding (json)"},
    {"json", 0, NULL, "JSON lines: one per tick with the outputs"},
    {"store", 0, "DIR", "model store of wasm:sha256:... blocks"},
    {NULL, 0, NULL, NULL}};

/* Loads the graph, printing diagnostics (text on stderr, or as JSON). */
static int load(cli_ctx *cli, const char *path, const tw_graph_opts *o,
                bool json_diags, tw_graph **g, tw_err *err) {
  tw_buf diags = TW_BUF_INIT;
  int rc = tw_graph_load(path, o, &diags, g, err);
  if (!json_diags && diags.len > 0)
    (void)fwrite(diags.data, 1, diags.len, cli->errs);
  if (json_diags) {
    tw_buf out = TW_BUF_INIT;
    int frc = tw_buf_printf(&out, "{\"ok\":%s,\"diagnostics\":[",
                            rc == TW_OK ? "true" : "false");
    const char *s = diags.data != NULL ? diags.data : "";
    bool first = true;
    while (frc == TW_OK && *s != '\0') {
      const char *nl = strchr(s, '\n');
      size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);
      frc = tw_buf_printf(&out, "%s", first ? "" : ",");
      if (frc == TW_OK)
        frc = tw_buf_put_json_string(&out, s, n);
      first = false;
      s += n + (nl != NULL);
    }
    if (rc != TW_OK && rc != TW_EVALIDATE && frc == TW_OK && first) {
      frc = tw_buf_put_json_string(&out, err->msg, strlen(err->msg));
    }
    if (frc == TW_OK)
      frc = tw_buf_printf(&out, "]}\n");
    if (frc == TW_OK)
      (void)cli_write_out(cli, &out);
    tw_buf_fini(&out);
  }
  tw_buf_fini(&diags);
  return rc;
}

/* --ticks (default 10, at least 1) and the wasm limits of run and grad. */
static int run_opts_of(cli_ctx *cli, const cli_args *args, unsigned long *ticks,
                       tw_graph_opts *o) {
  const cli_cmd *c = cli->cmd;
  const char *v;
  *ticks = 10;
  if ((v = cli_opt_value(c, args, "ticks")) != NULL &&
      cli_parse_uint(cli, "ticks", v, 1ul << 32, ticks) != 0)
    return CLI_EXIT_USAGE;
  if (*ticks == 0)
    return cli_usage_error(cli, c, "--ticks needs at least 1");
  o->store = cli_opt_value(c, args, "store");
  return cli_wasm_limits(cli, args, &o->limits);
}

static int run_validate(cli_ctx *cli, const cli_args *args) {
  tw_err err;
  tw_err_init(&err);
  tw_graph *g = NULL;
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.store = cli_opt_value(cli->cmd, args, "store");
  int rc = load(cli, args->pos[0], &o, cli->json, &g, &err);
  if (rc != TW_OK) {
    if (cli->json)
      return CLI_EXIT_FAIL;
    return cli_fail(cli, &err);
  }
  int code = CLI_EXIT_OK;
  if (!cli->json) {
    tw_buf b = TW_BUF_INIT;
    if (tw_buf_printf(&b, "%s: ok: graph '%s', %zu blocks, dt %g s\n",
                      args->pos[0], tw_graph_name(g), tw_graph_nblocks(g),
                      tw_graph_dt(g)) == TW_OK)
      code = cli_write_out(cli, &b);
    tw_buf_fini(&b);
  }
  tw_graph_free(g);
  return code;
}

static int run_run(cli_ctx *cli, const cli_args *args) {
  unsigned long ticks;
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.ctx = cli->tw;
  cli_run_io io;
  if (run_opts_of(cli, args, &ticks, &o) != CLI_EXIT_OK ||
      cli_run_io_of(cli, args, &io) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_graph *g = NULL;
  if (load(cli, args->pos[0], &o, false, &g, &err) != TW_OK)
    return cli_fail(cli, &err);
  if (cli_graph_budget(cli, args, g) != CLI_EXIT_OK) {
    tw_graph_free(g);
    return CLI_EXIT_USAGE;
  }
  int code = cli_graph_execute(cli, args, g, ticks, &io);
  tw_graph_free(g);
  return code;
}

static const cli_opt grad_opts[] = {
    {"ticks", 0, "N", "ticks to run (default 10)"},
    {"loss", 0, "OUTPUT", "loss: 1/2 sum over ticks of |OUTPUT|^2"},
    {"wrt", 0, "LIST", "block.param,... (default: every parameter)"},
    {"schedule", 0, "SPEC", "all, periodic:C or revolve:K (default all)"},
    {"fuel", 0, "N", "fuel per call of each wasm block"},
    {"timeout-ms", 0, "N", "deadline per call of each wasm block"},
    {"max-cpu-ms", 0, "MS", "stop past this much CPU time"},
    {"max-memory", 0, "SIZE", "stop past this much memory (checkpoints too)"},
    {"stats", 0, NULL, "print per-block accounting after the gradient"},
    {"json", 0, NULL, "one JSON object"},
    {"store", 0, "DIR", "model store of wasm:sha256:... blocks"},
    {NULL, 0, NULL, NULL}};

typedef struct out_loss {
  size_t offset, size;
} out_loss;

static int output_loss(void *ud, int64_t k, int64_t steps, const double *xn,
                       const double *y, double *value, double *gxn, double *gy,
                       tw_err *err) {
  (void)k, (void)steps, (void)xn, (void)gxn, (void)err;
  const out_loss *l = ud;
  double v = 0;
  for (size_t i = 0; i < l->size; i++)
    v += 0.5 * y[l->offset + i] * y[l->offset + i];
  *value = v;
  if (gy != NULL)
    for (size_t i = 0; i < l->size; i++)
      gy[l->offset + i] = y[l->offset + i];
  return TW_OK;
}

static int run_grad(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  unsigned long ticks;
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  o.ctx = cli->tw;
  if (run_opts_of(cli, args, &ticks, &o) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  const char *lossname = cli_opt_value(c, args, "loss");
  if (lossname == NULL)
    return cli_usage_error(cli, c, "--loss OUTPUT is required");
  const char *schedule = cli_opt_value(c, args, "schedule");
  tw_err err;
  tw_err_init(&err);
  tw_graph *g = NULL;
  if (load(cli, args->pos[0], &o, false, &g, &err) != TW_OK)
    return cli_fail(cli, &err);
  if (cli_graph_budget(cli, args, g) != CLI_EXIT_OK) {
    tw_graph_free(g);
    return CLI_EXIT_USAGE;
  }
  out_loss ol = {0, 0};
  size_t off = 0;
  for (size_t i = 0; i < tw_graph_noutputs(g); i++) {
    size_t size;
    const char *name = tw_graph_output_name(g, i, &size);
    if (strcmp(name, lossname) == 0)
      ol = (out_loss){off, size};
    off += size;
  }
  /* --wrt: a copy split at commas. */
  char *list = NULL;
  const char *wrt[256];
  size_t nwrt = 0;
  const char *wv = cli_opt_value(c, args, "wrt");
  int code = CLI_EXIT_OK;
  if (ol.size == 0) {
    tw_graph_free(g);
    return cli_usage_error(cli, c, "--loss: the graph has no output '%s'",
                           lossname);
  }
  if (wv != NULL) {
    list = tw_strdup(wv);
    for (char *t = list != NULL ? strtok(list, ",") : NULL;
         t != NULL && nwrt < 256; t = strtok(NULL, ","))
      wrt[nwrt++] = t;
  }
  size_t nth = tw_graph_nparams(g);
  double *grad = tw_calloc(nth + 1, sizeof(double));
  double L = 0;
  tw_loss loss = {output_loss, false, &ol};
  if (grad == NULL || (wv != NULL && list == NULL)) {
    tw_err_set(&err, TW_ENOMEM, "out of memory");
    code = cli_fail(cli, &err);
  } else if (tw_graph_grad(g, (int64_t)ticks, NULL, &loss,
                           wv != NULL ? wrt : NULL, nwrt, schedule, &L, grad,
                           &err) != TW_OK) {
    code = cli_fail(cli, &err);
  }
  tw_buf b = TW_BUF_INIT;
  if (code == CLI_EXIT_OK) {
    int frc = cli->json ? tw_buf_printf(&b,
                                        "{\"ticks\":%lu,\"schedule\":\"%s\","
                                        "\"loss\":%.17g,\"grad\":{",
                                        ticks, schedule ? schedule : "all", L)
                        : tw_buf_printf(&b, "loss %.17g\n", L);
    bool first = true;
    for (size_t p = 0; frc == TW_OK && p < tw_graph_nparam_ports(g); p++) {
      size_t size, poff;
      const char *name = tw_graph_param_name(g, p, &size, &poff);
      bool wanted = wv == NULL;
      for (size_t k = 0; k < nwrt && !wanted; k++)
        wanted = strcmp(wrt[k], name) == 0;
      if (!wanted)
        continue;
      frc = cli->json ? tw_buf_printf(&b, "%s\"%s\":[", first ? "" : ",", name)
                      : tw_buf_printf(&b, "d loss / d %-20s [", name);
      for (size_t j = 0; frc == TW_OK && j < size; j++)
        frc = tw_buf_printf(&b, "%s%.17g", j ? ", " : "", grad[poff + j]);
      if (frc == TW_OK)
        frc = tw_buf_printf(&b, cli->json ? "]" : "]\n");
      first = false;
    }
    if (frc == TW_OK && cli->json)
      frc = tw_buf_printf(&b, "}}\n");
    code = cli_write_formatted(cli, &b, frc);
  }
  if (code == CLI_EXIT_OK && cli_opt_value(c, args, "stats") != NULL) {
    tw_buf_reset(&b);
    code = cli_write_formatted(cli, &b, cli_put_graph_stats(cli, g, &b));
  }
  tw_buf_fini(&b);
  tw_free(grad);
  tw_free(list);
  tw_graph_free(g);
  return code;
}

const cli_cmd cmd_graph_grad = {
    "graph",
    "grad",
    "GRAPH.json",
    1,
    1,
    "differentiate a loss of a graph's output with respect to parameters",
    "Runs the graph for --ticks steps and computes the loss 1/2 sum over\n"
    "ticks of |OUTPUT|^2 with its exact gradient with respect to the\n"
    "parameters in --wrt (block.param, comma-separated; default all), by the\n"
    "discrete adjoint through every block's VJP under the checkpoint\n"
    "--schedule. A block that is not differentiable is an error naming it.",
    grad_opts,
    run_grad};

static const cli_opt fmt_opts[] = {
    {"json", 0, NULL, "print the JSON form instead of .twg"},
    {NULL, 0, NULL, NULL}};

static int run_fmt(cli_ctx *cli, const cli_args *args) {
  tw_err err;
  tw_err_init(&err);
  tw_buf b = TW_BUF_INIT;
  int rc = tw_graph_format(args->pos[0], cli->json, &b, &err);
  int code = rc == TW_OK ? cli_write_out(cli, &b) : cli_fail(cli, &err);
  tw_buf_fini(&b);
  return code;
}

const cli_cmd cmd_graph_fmt = {
    "graph",
    "fmt",
    "GRAPH.json|GRAPH.twg",
    1,
    1,
    "print a graph in canonical .twg text (or JSON with --json)",
    "Reads a graph in either form (.twg by its name, else JSON) and prints\n"
    "it as canonical .twg text, or with --json as JSON. The two forms\n"
    "round-trip exactly. Only the syntax is checked: use `twin graph\n"
    "validate` for the rest.",
    fmt_opts,
    run_fmt};

const cli_cmd cmd_graph_validate = {
    "graph",
    "validate",
    "GRAPH.json",
    1,
    1,
    "check an execution graph and report every problem",
    "Loads the graph (blocks, models, connections, rates) and reports every\n"
    "problem as FILE:LINE:COL: error: MESSAGE on stderr (with --json, a\n"
    "JSON object on stdout). Exit 0 when it is valid, 1 otherwise.",
    validate_opts,
    run_validate};

const cli_cmd cmd_graph_run = {
    "graph",
    "run",
    "GRAPH.json",
    1,
    1,
    "run an execution graph and print its outputs",
    "Runs the graph for --ticks steps of its dt with its inputs at 0, or\n"
    "read from --inputs FILE.mcap (input NAME from channel /inputs/NAME,\n"
    "/NAME or NAME, or as --input-map NAME=TOPIC says; each tick holds the\n"
    "latest sample at or before its time), and prints the graph's outputs\n"
    "at every tick. With --trace FILE.mcap the inputs and outputs go to an\n"
    "MCAP trace instead (one channel per port, JSON or CDR samples) and\n"
    "one summary line is printed; a run that fails leaves no file behind.\n"
    "Wasm blocks run under a fuel budget or a deadline per call (10 s\n"
    "when neither is given).",
    run_opts,
    run_run};
