/*
 * twin/graph.h - execution graphs: blocks (builtin, wasm models) wired by
 * connections, stepped in discrete time at a base step dt, each block at
 * an integer multiple of it (docs/graph.md; JSON IR version 1).
 *
 * A graph is loaded from JSON (or its .twg text form) and validated as a
 * whole: every problem is
 * reported as "FILE:LINE:COL: error: MESSAGE", one per line, not just the
 * first (unknown models, blocks or ports; size or unit mismatches;
 * algebraic loops; rates that are not multiples of dt; parameters that do
 * not exist or have the wrong size). A graph that loads runs.
 */
#ifndef TWIN_GRAPH_H
#define TWIN_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/ctx.h"
#include "twin/error.h"
#include "twin/sim.h"
#include "twin/wasm.h"

TW_EXTERN_C_BEGIN

#define TW_GRAPH_VERSION 1

typedef struct tw_graph tw_graph;

typedef struct tw_graph_opts {
  tw_ctx *ctx;            /* logging, metrics, pool (may be NULL) */
  tw_wasm_engine *engine; /* for wasm blocks; NULL: the graph makes one */
  tw_wasm_limits limits;  /* per call of each wasm block */
} tw_graph_opts;

/* Loads and validates the graph in path (wasm paths are relative to its
 * directory). On validation errors returns TW_EVALIDATE ("FILE: N
 * errors") and, when diags is not NULL, appends every diagnostic line to
 * it; a file that is not JSON is TW_EPARSE with its position. opts may be
 * NULL. */
TW_API int tw_graph_load(const char *path, const tw_graph_opts *opts,
                         tw_buf *diags, tw_graph **out, tw_err *err);
/* The same from text, with source naming it in diagnostics and base_dir
 * resolving relative wasm paths ("." if NULL). */
TW_API int tw_graph_parse(const char *text, size_t len, const char *source,
                          const char *base_dir, const tw_graph_opts *opts,
                          tw_buf *diags, tw_graph **out, tw_err *err);
TW_API void tw_graph_free(tw_graph *g);

/* A graph file (JSON, or the .twg text form when its name ends in .twg;
 * docs/graph-dsl.md) printed in canonical form: .twg text, or with json
 * pretty JSON (keys in the file's order). Only the syntax is checked;
 * tw_graph_load validates. The two forms round-trip exactly. */
TW_API int tw_graph_format(const char *path, bool json, tw_buf *out,
                           tw_err *err);

TW_API const char *tw_graph_name(const tw_graph *g);
TW_API double tw_graph_dt(const tw_graph *g);
TW_API size_t tw_graph_nblocks(const tw_graph *g);
/* Graph inputs and outputs, in file order: name and size. */
TW_API size_t tw_graph_ninputs(const tw_graph *g);
TW_API size_t tw_graph_noutputs(const tw_graph *g);
TW_API const char *tw_graph_input_name(const tw_graph *g, size_t i,
                                       size_t *size);
TW_API const char *tw_graph_output_name(const tw_graph *g, size_t i,
                                        size_t *size);
/* Totals: values per tick of all inputs / outputs. */
TW_API size_t tw_graph_input_width(const tw_graph *g);
TW_API size_t tw_graph_output_width(const tw_graph *g);

/* Resets every block to its initial state (parameters as loaded) and runs
 * ticks steps: inputs holds ticks rows of input_width values (NULL: every
 * graph input 0), outputs receives ticks rows of output_width values (may
 * be NULL). Blocks run in dependency order; blocks stepping every r ticks
 * hold their outputs in between. */
TW_API int tw_graph_run(tw_graph *g, int64_t ticks, const double *inputs,
                        double *outputs, tw_err *err);

/* Parameters: the values of every block's parameters as loaded, in block
 * order; ports are named "block.param". */
TW_API size_t tw_graph_nparams(const tw_graph *g);
TW_API size_t tw_graph_nparam_ports(const tw_graph *g);
TW_API const char *tw_graph_param_name(const tw_graph *g, size_t i,
                                       size_t *size, size_t *offset);

/* Accounting of the last run (tw_graph_run): per block, the steps it
 * took and the wall time inside them; the process CPU time of the run
 * (every thread). Fills up to cap entries, returns the number of blocks. */
typedef struct tw_graph_block_stats {
  const char *name, *kind;
  uint64_t steps;
  double wall_ms;
} tw_graph_block_stats;
TW_API size_t tw_graph_stats(const tw_graph *g, tw_graph_block_stats *out,
                             size_t cap, double *cpu_ms);
/* A CPU budget for runs and gradients: past max_cpu_ms of process CPU time
 * a run stops at the end of the tick with TW_ELIMIT (0: none). */
TW_API void tw_graph_set_budget(tw_graph *g, double max_cpu_ms);

/* All parameter values (tw_graph_nparams), read or replaced: runs and
 * gradients use them. */
TW_API void tw_graph_get_params(const tw_graph *g, double *theta);
TW_API void tw_graph_set_params(tw_graph *g, const double *theta);

/* The loss over ticks steps and its exact gradient with respect to the
 * parameters (gtheta: tw_graph_nparams values, overwritten; only the
 * ports named in wrt, "block.param", when wrt is not NULL, the others 0),
 * by the discrete adjoint through every block's VJP (builtin adjoints and
 * wasm tw_step_vjp) under schedule ("all", "periodic:C", "revolve:K";
 * NULL: all). The loss sees the graph's outputs as its y. A block that is
 * not differentiable is TW_ENOTSUP naming it. */
TW_API int tw_graph_grad(tw_graph *g, int64_t ticks, const double *inputs,
                         const tw_loss *loss, const char *const *wrt,
                         size_t nwrt, const char *schedule, double *loss_out,
                         double *gtheta, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_GRAPH_H */
