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
#include "twin/json.h"
#include "twin/sim.h"
#include "twin/trace.h"
#include "twin/wasm.h"

TW_EXTERN_C_BEGIN

#define TW_GRAPH_VERSION 1

typedef struct tw_graph tw_graph;

typedef struct tw_graph_opts {
  tw_ctx *ctx;            /* logging, metrics, pool (may be NULL) */
  tw_wasm_engine *engine; /* for wasm blocks; NULL: the graph makes one */
  tw_wasm_limits limits;  /* per call of each wasm block */
  const char *store;      /* the model store of "wasm:sha256:..." blocks
                             (twin/store.h); NULL: the default one */
} tw_graph_opts;

/* Loads and validates the graph in path (wasm and sub-graph paths are
 * relative to its directory). On validation errors returns TW_EVALIDATE ("FILE:
 * N errors") and, when diags is not NULL, appends every diagnostic line to it;
 * a file that is not JSON is TW_EPARSE with its position. opts may be NULL. */
TW_API int tw_graph_load(const char *path, const tw_graph_opts *opts,
                         tw_buf *diags, tw_graph **out, tw_err *err);
/* The same from text, with source naming it in diagnostics and base_dir
 * resolving relative wasm paths ("." if NULL). */
TW_API int tw_graph_parse(const char *text, size_t len, const char *source,
                          const char *base_dir, const tw_graph_opts *opts,
                          tw_buf *diags, tw_graph **out, tw_err *err);
TW_API void tw_graph_free(tw_graph *g);

/* The same from a document another front end built (twin-compose): doc is
 * borrowed; diagnostics point into its text through its marks. */
TW_API int tw_graph_from_doc(const tw_json_doc *doc, const char *base_dir,
                             const tw_graph_opts *opts, tw_buf *diags,
                             tw_graph **out, tw_err *err);
/* A JSON IR value printed as tw_graph_format prints a file. */
TW_API int tw_graph_format_value(const json_t *root, bool json, tw_buf *out,
                                 tw_err *err);

/* A graph file (JSON, or the .twg text form when its name ends in .twg;
 * docs/graph-dsl.md) printed in canonical form: .twg text, or with json
 * pretty JSON (keys in the file's order). Only the syntax is checked;
 * tw_graph_load validates. The two forms round-trip exactly. */
TW_API int tw_graph_format(const char *path, bool json, tw_buf *out,
                           tw_err *err);

TW_API const char *tw_graph_name(const tw_graph *g);
TW_API double tw_graph_dt(const tw_graph *g);
TW_API size_t tw_graph_nblocks(const tw_graph *g);
/* Block i (in file order): its name and what it is (ports, units,
 * dtypes, which inputs need a source). Borrowed from g. */
TW_API const char *tw_graph_block_name(const tw_graph *g, size_t i);
TW_API const tw_block_desc *tw_graph_block_desc(const tw_graph *g, size_t i);
/* Graph inputs and outputs, in file order: name and size. */
TW_API size_t tw_graph_ninputs(const tw_graph *g);
TW_API size_t tw_graph_noutputs(const tw_graph *g);
TW_API const char *tw_graph_input_name(const tw_graph *g, size_t i,
                                       size_t *size);
TW_API const char *tw_graph_output_name(const tw_graph *g, size_t i,
                                        size_t *size);
/* Units: of graph input i as declared ("" when none), and of graph output
 * i, the unit of the block port it comes from. Borrowed from g. Dtypes
 * likewise (dtype.h): runs refuse input values outside an input's dtype. */
TW_API const char *tw_graph_input_unit(const tw_graph *g, size_t i);
TW_API const char *tw_graph_output_unit(const tw_graph *g, size_t i);
TW_API tw_dtype tw_graph_input_dtype(const tw_graph *g, size_t i);
TW_API tw_dtype tw_graph_output_dtype(const tw_graph *g, size_t i);
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

/* Stepping a run piece by piece, for long runs and streams:
 * tw_graph_reset puts every block in its initial state (parameters as
 * set) and starts the run's accounting; tw_graph_advance runs the next
 * ticks (inputs and outputs as in tw_graph_run, rows for those ticks),
 * continuing where the last call stopped. tw_graph_run is reset + one
 * advance. After a failed advance (a trap, a budget, a non-finite value)
 * the run cannot go on: the next advance is TW_ESTATE until a reset. */
TW_API int tw_graph_reset(tw_graph *g, tw_err *err);
TW_API int tw_graph_advance(tw_graph *g, int64_t ticks, const double *inputs,
                            double *outputs, tw_err *err);
/* Ticks run since the last reset. */
TW_API int64_t tw_graph_tick(const tw_graph *g);

/* Accounting of the run in progress or the last one (since tw_graph_reset,
 * or the last gradient). Per block: */
typedef struct tw_graph_block_stats {
  const char *name, *kind;
  uint64_t steps;      /* forward steps (a gradient's recomputation too) */
  uint64_t vjps;       /* VJP calls (gradients) */
  double wall_ms;      /* wall time inside its steps and VJPs */
  double cpu_ms;       /* thread CPU time inside them; -1 when not measured
                          (tw_graph_set_accounting) */
  size_t memory_bytes; /* the most memory it held: the graph's vectors for
                          it and its own buffers (tape arenas) */
  size_t wasm_memory;  /* largest linear memory (wasm models) */
  uint64_t fuel;       /* wasm fuel used (with fuel metering) */
} tw_graph_block_stats;
/* And for the whole run: */
typedef struct tw_graph_run_stats {
  int64_t ticks;
  double wall_ms;
  double cpu_ms;       /* process CPU time of every thread */
  size_t memory_bytes; /* the most at once: blocks (as above), the run's
                          state and the gradient's checkpoints */
  uint64_t fuel;
  size_t checkpoint_bytes; /* of the last gradient's schedule */
} tw_graph_run_stats;
/* Fills up to cap block entries (out may be NULL when cap is 0) and *run
 * (may be NULL); returns the number of blocks. */
TW_API size_t tw_graph_stats(const tw_graph *g, tw_graph_block_stats *out,
                             size_t cap, tw_graph_run_stats *run);
/* Per-block thread CPU time costs two reads of the thread's CPU clock per
 * step (a system call, ~0.2 us each), so it is measured only when asked
 * for; steps, wall time, memory and fuel always are. */
TW_API void tw_graph_set_accounting(tw_graph *g, bool cpu_per_block);
/* Budgets for runs and gradients (0: none): past max_cpu_ms of process CPU
 * time, or with more than max_memory bytes held by the run (blocks'
 * vectors and buffers, wasm linear memories, checkpoints), a run stops at
 * the end of the tick with TW_ELIMIT naming the resource, the tick and the
 * amounts. A gradient whose checkpoints alone would exceed max_memory
 * fails before it starts. Counters of the runs (ticks, per-block steps,
 * time, fuel, memory, budget stops) go to the metrics registry of the
 * graph's context as twin_graph_* families (docs/graph.md). */
TW_API void tw_graph_set_budget(tw_graph *g, double max_cpu_ms,
                                size_t max_memory);

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

/* --- Losses computed in C ------------------------------------------------ */

/* A weighted squared error of the graph's outputs against targets, summed
 * over ticks, as a tw_loss for tw_graph_grad whose term never leaves C:
 *
 *     L = sum over ticks k, columns j of weight[j] * (y[k][j] - target[k][j])^2
 *
 * where y[k] is the row of graph outputs at tick k (tw_graph_output_width
 * = ny values, outputs in order). target holds ticks rows of ny values
 * (NULL: all 0, so weight 0.5 gives the CLI's 1/2 |y|^2); a NaN target is
 * a missing sample that adds nothing. weight holds ny values (NULL: all 1);
 * a weight of 0 leaves the column out. Both arrays are borrowed, as is s
 * by the loss: they must live, unchanged, while the loss is used. A term
 * for a tick at or past ticks fails with TW_ERANGE (a gradient over more
 * ticks than the targets cover). The loss allocates nothing and keeps no
 * state: it may serve several gradients, also on several threads. */
typedef struct tw_graph_sqerr {
  size_t ny;            /* values per output row */
  int64_t ticks;        /* rows of target */
  const double *target; /* ticks * ny values, row-major; NULL: zeros */
  const double *weight; /* ny values; NULL: ones */
} tw_graph_sqerr;

/* Fills *loss (every field) with the squared error s describes. */
TW_API void tw_graph_sqerr_loss(tw_graph_sqerr *s, tw_loss *loss);

/* --- Traces ------------------------------------------------------------- */

/* A run recorded as an MCAP trace (trace.h; docs/graph.md "Traces"), and
 * graph inputs read back from one. A trace has one port channel per graph
 * input, topic "/inputs/NAME", and per graph output, "/outputs/NAME", each
 * with the port's unit and size and a schema of its own encoding (a JSON
 * Schema for JSON samples, a ros2msg for CDR). The sample of tick k has
 * the time t = k * dt seconds in its body and log_time = publish_time =
 * round(t * 1e9) nanoseconds. A Metadata record "twin.graph" names the
 * graph (name, dt, inputs, outputs, the Twin version); closing with the
 * graph adds "twin.stats", the run's accounting. Like every trace the file
 * appears at its path only once complete: a failed or aborted trace
 * leaves neither the file nor PATH.partial.
 *
 * Thread safety: a tw_graph_trace belongs to one thread at a time; it
 * does not use the graph after tw_graph_trace_open (tw_graph_trace_close
 * reads the graph's accounting when given it). */

typedef struct tw_graph_trace tw_graph_trace;

typedef struct tw_graph_trace_opts {
  tw_trace_encoding encoding;       /* JSON unless set otherwise */
  tw_trace_compression compression; /* zstd unless set otherwise */
  bool no_sync; /* skip the fsync at close (scratch files, tests) */
} tw_graph_trace_opts;

/* Fills o with the defaults: JSON samples, zstd chunks, synced. */
TW_API void tw_graph_trace_opts_init(tw_graph_trace_opts *o);

/* Starts the trace of a run of g at path (PATH.partial until closed): the
 * channels and the "twin.graph" record. opts NULL means the defaults. The
 * trace copies what it needs of g. Errors as tw_trace_writer_open
 * (TW_EBUSY when another writer holds PATH.partial, I/O errors naming the
 * path, TW_ENOMEM); *out is set only on success. */
TW_API int tw_graph_trace_open(const tw_graph *g, const char *path,
                               const tw_graph_trace_opts *opts,
                               tw_graph_trace **out, tw_err *err);

/* Writes n ticks starting at tick k0 (>= 0): inputs holds n rows of the
 * graph's input width (NULL: zeros, which is what a run without inputs
 * sees, and they are written), outputs n rows of its output width, as
 * tw_graph_advance takes and fills them. TW_EINVAL for a negative k0 or n
 * or NULL outputs with outputs to write, TW_ERANGE for a time past 2^64
 * ns, the writer's errors otherwise; after an I/O error the trace can
 * only be aborted. */
TW_API int tw_graph_trace_write(tw_graph_trace *t, int64_t k0, int64_t n,
                                const double *inputs, const double *outputs,
                                tw_err *err);

/* Finishes the trace: with g (may be NULL) first a "twin.stats" Metadata
 * record of its accounting (tw_graph_stats: ticks, wall_ms, cpu_ms,
 * memory_bytes, fuel, and per block "block.NAME.steps", ".kind", ".vjps",
 * ".wall_ms", ".cpu_ms", ".memory_bytes", ".wasm_memory_bytes", ".fuel"),
 * then the summary and the rename to path. Frees t whatever happens; on
 * failure nothing is left at path or PATH.partial. NULL is a no-op. */
TW_API int tw_graph_trace_close(tw_graph_trace *t, const tw_graph *g,
                                tw_err *err);

/* Discards the trace: removes PATH.partial and frees t. NULL is a no-op. */
TW_API void tw_graph_trace_abort(tw_graph_trace *t);

/* Graph inputs from an MCAP file's port channels (JSON or CDR samples as
 * tw_trace_writer_write_port writes them, whoever wrote the file). Input
 * NAME reads the channel "/inputs/NAME", else "/NAME", else "NAME", unless
 * map (nmap strings "NAME=TOPIC", may be NULL when nmap is 0) names its
 * topic. The value at tick k is the channel's latest sample with
 * t <= k * dt (within 1e-9 * dt): a zero-order hold. Samples must be
 * logged in time order (log_time and t agreeing), as traces are.
 *
 * Errors name the file, the input, the topic and the tick or time:
 * TW_ENOENT for a missing file or channel; TW_EINVAL for a map entry that
 * is malformed or names no graph input, a channel whose encoding is not a
 * port's, a sample of the wrong size, a tick before the channel's first
 * sample, samples out of time order; TW_EPARSE for a corrupt file or a
 * body that is not a port sample; TW_ELIMIT, TW_ENOMEM.
 *
 * A reader holds one message iterator and one row of values, whatever the
 * file's length or the number of ticks read: */
typedef struct tw_graph_inputs tw_graph_inputs;

/* Opens path and resolves every input's channel. *out is set only on
 * success. The reader borrows nothing from g. */
TW_API int tw_graph_inputs_open(const tw_graph *g, const char *path,
                                const char *const *map, size_t nmap,
                                tw_graph_inputs **out, tw_err *err);
/* Fills the next ticks rows (the graph's input width each) of inputs,
 * continuing where the last call stopped (the first call starts at tick
 * 0). After a failure every call fails with the same error. */
TW_API int tw_graph_inputs_read(tw_graph_inputs *in, int64_t ticks,
                                double *inputs, tw_err *err);
/* Ticks read so far. */
TW_API int64_t tw_graph_inputs_tick(const tw_graph_inputs *in);
/* NULL is a no-op. */
TW_API void tw_graph_inputs_close(tw_graph_inputs *in);

/* open, read ticks rows from tick 0, close. The rows are filled as the
 * file is read, so on failure inputs holds what was read before the error
 * (memory stays that of inputs plus one iterator). */
TW_API int tw_graph_read_inputs(const tw_graph *g, const char *path,
                                const char *const *map, size_t nmap,
                                int64_t ticks, double *inputs, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_GRAPH_H */
