/*
 * graph_int.h - the loaded graph, shared by load.c (parsing, validation,
 * scheduling) and run.c (stepping).
 *
 * Invariants after a successful load: every block exists with its buffers;
 * every connected input names a source of the same size; order[] is a
 * topological order of the blocks under the "must run before" relation
 * (A before B when an output of A that feeds through from A's inputs is
 * connected to B); blocks marked prepass have outputs that do not feed
 * through and feed a block ordered before them, so run.c evaluates those
 * outputs first from the state alone. Blocks of one level (the longest
 * chain of ordering edges before them) do not depend on each other within
 * a tick and may step in parallel.
 */
#ifndef TW_GRAPH_INT_H
#define TW_GRAPH_INT_H

#include "twin/graph.h"
#include "twin/json.h"
#include "twin/pool.h"
#include "twin/sim.h"

enum { TW__SRC_NONE, TW__SRC_INPUT, TW__SRC_BLOCK };

/* Where one input port of a block takes its values from. */
typedef struct tw__gsrc {
  int kind;      /* TW__SRC_* */
  size_t index;  /* graph input or block */
  size_t offset; /* in that input row / that block's y */
  size_t size;
  size_t dst; /* offset in the block's u */
  bool real;  /* f64/f32: cotangents flow back through it */
} tw__gsrc;

typedef struct tw__gblock {
  char *name;
  tw_block *block;
  const tw_block_desc *desc;
  unsigned every; /* steps every `every` ticks */
  bool prepass;
  double *theta, *x0, *x, *xn, *u, *y;
  tw__gsrc *src;   /* desc->ninputs */
  bool *connected; /* desc->ninputs: some source feeds it */
  /* Accounting since the last reset. */
  uint64_t steps, vjps, wall_ns, cpu_ns;
  uint64_t fuel0;    /* the block's fuel used at the reset */
  size_t own_bytes;  /* the graph's vectors for the block */
  size_t peak_bytes; /* the most held: own_bytes + its buffers */
  size_t wasm_peak;  /* the most linear memory, since the reset */
  uint64_t pub_steps, pub_vjps, pub_wall_ns, pub_cpu_ns, pub_fuel; /* sent
                                                      to the metrics */
} tw__gblock;

typedef struct tw__gio {
  char *name;
  size_t size;
  size_t offset; /* in the tick's row */
  size_t block;  /* outputs: the block and the offset in its y */
  size_t from;
  char *unit;     /* inputs: the declared unit ("" for none) */
  tw_dtype dtype; /* inputs: declared; outputs: of the source port */
} tw__gio;

struct tw_graph {
  char *name;
  double dt;
  tw__gblock *blocks;
  size_t nblocks;
  size_t *order;       /* blocks by level, then index */
  size_t *level_start; /* nlevels + 1 positions in order */
  size_t nlevels;
  tw_pool *pool; /* from the context: levels run in parallel */
  tw__gio *inputs, *outputs;
  bool typed_inputs; /* some input is not f64: runs check its values */
  size_t ninputs, noutputs, in_width, out_width;
  tw_ctx *ctx;
  tw_wasm_engine *engine;
  bool own_engine;
  tw_wasm_module **modules;
  size_t nmodules;
  tw_block *composite; /* the whole graph as one block (composite.c) */
  /* Budgets and accounting (run.c). */
  double max_cpu_ms; /* budget of a run (0: none) */
  size_t max_memory; /* bytes (0: none) */
  bool account_cpu;  /* per-block thread CPU time */
  uint64_t cpu0_ns;  /* process CPU time when the run started */
  uint64_t wall0_ns; /* monotonic time when the run started */
  double cpu_ms, wall_ms;
  size_t peak_memory;      /* of the run */
  size_t comp_bytes;       /* the composite block's scratch */
  size_t extra_bytes;      /* the run's state and checkpoints */
  size_t checkpoint_bytes; /* of the last gradient */
  /* The run in progress (tw_graph_reset, tw_graph_advance). */
  double *run_mem, *run_x, *run_xn, *run_theta;
  int64_t run_k;
  int run_state; /* RUN_NONE, RUN_READY, RUN_FAILED (run.c) */
  int64_t pub_ticks;
};

/* Checks the budgets at the end of tick k (run.c): TW_ELIMIT naming the
 * resource when one is exceeded. */
int tw__graph_check_budget(tw_graph *g, int64_t k, tw_err *err);
/* Memory the graph holds now: blocks' vectors and buffers, wasm linear
 * memories, the run's state; updates the peaks. */
size_t tw__graph_memory(tw_graph *g);

/* The .twg text form (dsl.c): parsed into a JSON document whose values
 * remember their place in the text; and a JSON IR value printed as
 * canonical .twg. */
int tw__graph_dsl_parse(const char *text, size_t len, const char *source,
                        tw_json_doc **out, tw_err *err);
int tw__graph_dsl_format(const json_t *root, tw_buf *b, tw_err *err);
/* A graph file's document: .twg by its name, else JSON. */
bool tw__graph_is_twg(const char *source);
int tw__graph_read_doc(const char *text, size_t len, const char *source,
                       tw_json_doc **doc, tw_err *err);

/* The graph as one block: a tick is a step (composite.c). */
int tw__graph_composite(tw_graph *g, tw_block **out, tw_err *err);

/* --- Sub-graphs (subgraph.c) ------------------------------------------- */

/* Room for a composite's port names ("block.param", and for sub-graphs
 * "block.inner_block.param"), the terminator included. */
#define TW__GRAPH_NAME_MAX 256
/* How deep graph files may include each other. */
#define TW__GRAPH_MAX_DEPTH 16

/* One graph file being loaded, and the files that include it. */
typedef struct tw__gchain {
  const char *real; /* canonical path (NULL: not a file) */
  const char *name; /* as the diagnostics name it */
  const struct tw__gchain *up;
  unsigned depth; /* 0: the graph the caller loads */
} tw__gchain;

/* tw_graph_parse for the file self (its name is the diagnostics' source);
 * *ndiags (may be NULL) gets the number of lines appended to diags. */
int tw__graph_parse_in(const char *text, size_t len, const tw__gchain *self,
                       const char *base_dir, const tw_graph_opts *opts,
                       tw_buf *diags, unsigned *ndiags, tw_graph **out,
                       tw_err *err);

/* A "graph:PATH" block: what the including graph knows of it. */
typedef struct tw__gsub {
  const char *path;        /* after "graph:" */
  const char *base_dir;    /* of the including file */
  const tw__gchain *chain; /* the including file */
  const tw_graph_opts *opts;
  const char *name; /* the block's */
  unsigned every;   /* ticks of the including graph per step */
  double period;    /* every * its dt: the sub-graph's dt must be this */
  tw_buf *diags;    /* the including graph's (may be NULL) */
  unsigned ndiags;  /* out: lines the sub-graph's file appended */
} tw__gsub;

/* Loads the sub-graph and makes the block that owns it: TW_OK; TW_ENOMEM;
 * or another code with err saying what is wrong with the sub-graph (its
 * file's own diagnostics are in diags). */
int tw__graph_subgraph_block(tw__gsub *s, tw_block **out, tw_err *err);
/* The output port of d holding offset off of its y (load.c). */
size_t tw__graph_port_at(const tw_block_desc *d, size_t off);

#endif
