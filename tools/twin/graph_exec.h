/*
 * graph_exec.h - running a loaded graph from the command line (graph_exec.c),
 * shared by `twin graph run` and `twin compose up`.
 */
#ifndef TWIN_GRAPH_EXEC_H
#define TWIN_GRAPH_EXEC_H

#include "cli.h"

/* --input-map entries at most. */
#define CLI_MAX_INPUT_MAP 32

/* What a run reads and writes besides the graph. */
typedef struct cli_run_io {
  const char *inputs, *trace;
  const char *map[CLI_MAX_INPUT_MAP];
  int nmap;
  tw_graph_trace_opts topts;
} cli_run_io;

/* --inputs, --input-map, --trace and --trace-format of the command. */
int cli_run_io_of(cli_ctx *cli, const cli_args *args, cli_run_io *io);
/* --max-cpu-ms, --max-memory and --stats (per-block CPU time) on g. */
int cli_graph_budget(cli_ctx *cli, const cli_args *args, tw_graph *g);
/* The last run's accounting (text table or one JSON line) into b. */
int cli_put_graph_stats(cli_ctx *cli, const tw_graph *g, tw_buf *b);
/* Runs ticks of g with io, prints its outputs (or the trace's summary)
 * and, with --stats, its accounting. Returns the exit code. */
int cli_graph_execute(cli_ctx *cli, const cli_args *args, tw_graph *g,
                      unsigned long ticks, const cli_run_io *io);

#endif /* TWIN_GRAPH_EXEC_H */
