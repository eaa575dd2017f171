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
} tw__gsrc;

typedef struct tw__gblock {
  char *name;
  tw_block *block;
  const tw_block_desc *desc;
  unsigned every; /* steps every `every` ticks */
  bool prepass;
  double *theta, *x0, *x, *xn, *u, *y;
  tw__gsrc *src;           /* desc->ninputs */
  bool *connected;         /* desc->ninputs: some source feeds it */
  uint64_t steps, wall_ns; /* accounting since the last run started */
} tw__gblock;

typedef struct tw__gio {
  char *name;
  size_t size;
  size_t offset; /* in the tick's row */
  size_t block;  /* outputs: the block and the offset in its y */
  size_t from;
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
  size_t ninputs, noutputs, in_width, out_width;
  tw_ctx *ctx;
  tw_wasm_engine *engine;
  bool own_engine;
  tw_wasm_module **modules;
  size_t nmodules;
  tw_block *composite; /* the whole graph as one block (composite.c) */
  double max_cpu_ms;   /* budget of a run (0: none) */
  uint64_t cpu0_ns;    /* process CPU time when the run started */
  double cpu_ms;       /* of the last run */
  int64_t ticks_run;
};

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

#endif
