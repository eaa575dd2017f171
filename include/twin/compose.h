/*
 * twin/compose.h - twin-compose: the YAML language that wires models into
 * twins (docs/twin-compose.md), its validator, and its compilation to an
 * execution graph (graph.h).
 *
 * A twin file names components (builtin blocks, wasm models by file or by
 * digest, sub-graphs), sources of recorded or live data, connections
 * between ports with units, outputs and profiles. Loading validates the
 * whole file and reports every problem with its place in the YAML, a
 * severity and a stable code; a file that loads has compiled into a graph
 * that runs.
 *
 * Thread safety: a tw_compose belongs to one thread at a time.
 */
#ifndef TWIN_COMPOSE_H
#define TWIN_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>

#include "twin/buf.h"
#include "twin/common.h"
#include "twin/ctx.h"
#include "twin/error.h"
#include "twin/graph.h"
#include "twin/wasm.h"

TW_EXTERN_C_BEGIN

#define TW_COMPOSE_VERSION 1

/* One problem: FILE:LINE:COL: SEVERITY: MESSAGE, with a stable code
 * (docs/twin-compose.md lists them: "yaml", "duplicate-key",
 * "unknown-key", "type", "unknown-component", "unknown-port",
 * "unknown-source", "model", "unit", "causality", "algebraic-loop",
 * "rate", "digest", "missing", "value", "graph"). line and col are 0 when
 * the problem has no place (a file that cannot be read). */
typedef struct tw_compose_diag {
  char *file;
  unsigned line, col;
  bool warning;
  char *code;
  char *message;
} tw_compose_diag;

typedef struct tw_compose_diags {
  tw_compose_diag *items;
  size_t n, cap;
  size_t errors, warnings;
} tw_compose_diags;

TW_API void tw_compose_diags_init(tw_compose_diags *d);
TW_API void tw_compose_diags_fini(tw_compose_diags *d);
/* Appends the diagnostics as text lines ("FILE:LINE:COL: error: MSG") or
 * as the JSON array [{"file","line","col","severity","code","message"}]. */
TW_API int tw_compose_diags_format(const tw_compose_diags *d, bool json,
                                   tw_buf *out);

typedef struct tw_compose_opts {
  tw_ctx *ctx;            /* logging, metrics, pool (may be NULL) */
  tw_wasm_engine *engine; /* NULL: the graph makes one */
  tw_wasm_limits limits;  /* per call of each wasm model */
  const char *store;      /* the local model store (NULL: the default) */
  const char *profile;    /* merged over the file (NULL: none) */
  /* Parameter files overlaid in order over the twin's parameters:
   * {component: {param: value}} in YAML or JSON. */
  const char *const *param_files;
  size_t nparam_files;
} tw_compose_opts;

typedef struct tw_compose tw_compose;

/* Loads, validates and compiles the twin file at path. Every problem goes
 * to diags (which may be NULL); with an error among them the result is
 * TW_EVALIDATE ("FILE: N errors"). opts may be NULL. */
TW_API int tw_compose_load(const char *path, const tw_compose_opts *opts,
                           tw_compose_diags *diags, tw_compose **out,
                           tw_err *err);
/* The same from text in memory; source names it in diagnostics, base_dir
 * resolves relative paths ("." if NULL). */
TW_API int tw_compose_parse(const char *text, size_t len, const char *source,
                            const char *base_dir, const tw_compose_opts *opts,
                            tw_compose_diags *diags, tw_compose **out,
                            tw_err *err);
TW_API void tw_compose_free(tw_compose *c);

TW_API const char *tw_compose_name(const tw_compose *c);
/* The compiled graph (borrowed; lives as long as c). */
TW_API tw_graph *tw_compose_graph(tw_compose *c);
/* The compiled graph's IR: canonical .twg text, or JSON with json. */
TW_API int tw_compose_format_graph(const tw_compose *c, bool json, tw_buf *out,
                                   tw_err *err);

/* Sources the twin reads, in file order. */
typedef enum tw_compose_source_kind {
  TW_COMPOSE_MCAP,
  TW_COMPOSE_KAFKA,
  TW_COMPOSE_MQTT,
  TW_COMPOSE_RTSP
} tw_compose_source_kind;

typedef struct tw_compose_source {
  const char *name;
  tw_compose_source_kind kind;
  const char *path; /* mcap: the file (absolute) */
  /* The graph inputs this source feeds and the topics they read,
   * "INPUT=TOPIC" as tw_graph_inputs_open takes them. */
  const char *const *map;
  size_t nmap;
  /* Live sources (NULL when not given): kafka brokers, group, topic and
   * dead_letter topic, schema_registry URL; mqtt broker (HOST[:PORT])
   * and topic (a filter); rtsp url; every kind: the record member holding
   * the event time (time.field) and its unit (time.unit: ns, us, ms, s). */
  const char *brokers, *group, *topic, *dead_letter, *schema_registry;
  const char *broker, *url, *time_field, *time_unit;
  /* "source" (NULL): event times as the records carry them; "estimated":
   * mapped onto the host clock through the source's estimated offset and
   * drift (twin/align.h). */
  const char *clock;
} tw_compose_source;

/* The calibrate: section (docs/twin-compose.md "Calibration"): what
 * `twin calibrate` fits, against what, how. Names are the compiled
 * graph's: parameters "COMPONENT.PARAM" (a "COMPONENT.*" entry is
 * expanded to each of the component's parameters), outputs as in
 * outputs:. Values are in the parameters' units. Borrowed from c. */
typedef struct tw_compose_calib_param {
  const char *name;    /* graph parameter port, "plant.k" */
  double lower, upper; /* -INFINITY / INFINITY when not bounded */
  double l2;           /* regularisation weight (sum of squares), 0 */
  bool has_truth;
  double truth; /* the known value (truth:), for reports */
} tw_compose_calib_param;

typedef struct tw_compose_calib_loss {
  const char *output;  /* a twin output, "plant.x" */
  const char *channel; /* the recording's channel, "/measured/x" */
  double weight;       /* of its squared error [1] */
} tw_compose_calib_loss;

typedef struct tw_compose_calibration {
  const char *data;       /* the recording fitted (absolute), or NULL */
  const char *validation; /* held-out recording (absolute), or NULL */
  const tw_compose_calib_param *params;
  size_t nparams;
  const tw_compose_calib_loss *loss;
  size_t nloss;
  const char *optimizer; /* "lbfgs", "adam", "gd", or NULL (lbfgs) */
  int64_t iterations;    /* 0: the optimiser's default */
  double tolerance;      /* relative loss change; 0: default */
  double learning_rate;  /* adam / gd; 0: default */
} tw_compose_calibration;

/* The twin's calibrate: section, or NULL when it has none. */
TW_API const tw_compose_calibration *
tw_compose_calibration_get(const tw_compose *c);

TW_API size_t tw_compose_nsources(const tw_compose *c);
TW_API const tw_compose_source *tw_compose_source_at(const tw_compose *c,
                                                     size_t i);

TW_EXTERN_C_END

#endif /* TWIN_COMPOSE_H */
