/*
 * load.c - a graph from its JSON IR (version 1, docs/graph.md): parsing
 * with positions, making the blocks, wiring, validation that reports every
 * problem with its place, and the schedule (topological order, prepass).
 *
 *   {"graph": 1, "name": "...", "dt": 0.01,
 *    "blocks": {"NAME": {"model": "builtin:gain" | "builtin:integrator" |
 *                                 "builtin:mlp" | "builtin:spring_damper" |
 *                                 "wasm:PATH.wasm" |
 *                                 "wasm:sha256:<hex>" (the model store) |
 *                                 "graph:PATH.json" (a sub-graph),
 *                        "every": 1, "period": 0.01,   (one of, optional)
 *                        "params": {"P": 1.5 | [..] |
 *                                   {"value": .., "min": .., "max": ..,
 *                                    "trainable": true}},
 *                        ...model options: "size", "sizes", "activations",
 *                        "seed", "integrator"}},
 *    "inputs": {"NAME": {"size": 1, "unit": "N"}},
 *    "connections": [{"from": "inputs.F" | "block.out", "to": "block.in"}],
 *    "outputs": {"NAME": "block.out"}}
 */
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_int.h"
#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/json.h"
#include "twin/store.h"

#define MAX_NAME 64
#define MAX_SIZE (1 << 20)       /* values of a port */
#define MAX_MLP_WIDTH (1 << 14)  /* units of an MLP layer */
#define MAX_MLP_PARAMS (1 << 24) /* parameters of an MLP */
/* A model read from the store (the engine applies its own module limit). */
#define MAX_BLOB ((size_t)1 << 30)

/* --- Diagnostics ----------------------------------------------------- */

typedef struct diags {
  const tw_json_doc *doc;
  tw_buf *out; /* may be NULL */
  unsigned n;
  int oom;
} diags;

static void diag(diags *d, const json_t *at, const char *fmt, ...)
    TW_PRINTF(3, 4);
static void diag(diags *d, const json_t *at, const char *fmt, ...) {
  d->n++;
  if (d->out == NULL)
    return;
  unsigned line = 1, col = 1;
  if (at != NULL)
    (void)tw_json_doc_where(d->doc, at, &line, &col);
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (tw_buf_printf(d->out, "%s:%u:%u: error: %s\n", tw_json_doc_source(d->doc),
                    line, col, msg) != TW_OK)
    d->oom = 1;
}

static bool valid_name_dots(const char *s, bool dots) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME ||
      !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') ||
        (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
          (dots && s[i] == '.' && s[i - 1] != '.' && i + 1 < n)))
      return false;
  return true;
}

static bool valid_name(const char *s) { return valid_name_dots(s, false); }

/* Graph inputs and outputs may be dotted ("plant.x", "rig.force"). */
static bool valid_io_name(const char *s) { return valid_name_dots(s, true); }

/* Checks obj's keys against allowed (x- keys are extensions). */
static void check_keys(diags *d, json_t *obj, const char *what,
                       const char *const *allowed) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (strncmp(key, "x-", 2) == 0)
      continue;
    bool ok = false;
    for (size_t i = 0; allowed[i] != NULL && !ok; i++)
      ok = strcmp(allowed[i], key) == 0;
    if (!ok)
      diag(d, v, "%s: unknown field '%s'", what, key);
  }
}

/* --- Graph lifetime ---------------------------------------------------- */

void tw_graph_free(tw_graph *g) {
  if (g == NULL)
    return;
  tw_block_free(g->composite);
  tw_free(g->run_mem);
  for (size_t i = 0; i < g->nblocks; i++) {
    tw__gblock *b = &g->blocks[i];
    tw_block_free(b->block);
    tw_free(b->name);
    tw_free(b->theta);
    tw_free(b->src);
    tw_free(b->connected);
  }
  for (size_t i = 0; i < g->nmodules; i++)
    tw_wasm_module_free(g->modules[i]);
  if (g->own_engine)
    tw_wasm_engine_free(g->engine);
  for (size_t i = 0; i < g->ninputs; i++) {
    tw_free(g->inputs[i].name);
    tw_free(g->inputs[i].unit);
  }
  for (size_t i = 0; i < g->noutputs; i++)
    tw_free(g->outputs[i].name);
  tw_free(g->modules);
  tw_free(g->blocks);
  tw_free(g->order);
  tw_free(g->level_start);
  tw_free(g->inputs);
  tw_free(g->outputs);
  tw_free(g->name);
  tw_free(g);
}

/* --- Blocks ------------------------------------------------------------- */

typedef struct loader {
  tw_graph *g;
  diags *d;
  const char *base_dir;
  const tw_graph_opts *opts;
  tw_err *err;             /* fatal failures (out of memory) */
  const tw__gchain *chain; /* this file and the files including it */
} loader;

static int get_size(loader *ld, const json_t *spec, const char *bname,
                    size_t *out) {
  json_t *v = json_object_get(spec, "size");
  if (v == NULL) {
    *out = 1;
    return TW_OK;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 1 ||
      json_integer_value(v) > MAX_SIZE) {
    diag(ld->d, v, "block '%s': size must be an integer in 1..%d", bname,
         MAX_SIZE);
    return TW_EINVAL;
  }
  *out = (size_t)json_integer_value(v);
  return TW_OK;
}

static int make_mlp(loader *ld, const json_t *spec, const char *bname,
                    tw_block **out) {
  json_t *sz = json_object_get(spec, "sizes");
  json_t *ac = json_object_get(spec, "activations");
  size_t n = json_is_array(sz) ? json_array_size(sz) : 0;
  if (n < 2 || n > 65) {
    diag(ld->d, sz != NULL ? sz : spec,
         "block '%s': builtin:mlp needs \"sizes\": [in, hidden..., out]",
         bname);
    return TW_EINVAL;
  }
  if (!json_is_array(ac) || json_array_size(ac) != n - 1) {
    diag(ld->d, ac != NULL ? ac : spec,
         "block '%s': builtin:mlp needs \"activations\": one per layer (%zu)",
         bname, n - 1);
    return TW_EINVAL;
  }
  size_t sizes[65];
  tw_activation acts[64];
  static const char *const names[] = {"none", "tanh", "relu", "sigmoid",
                                      "softplus"};
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(sz, i);
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > MAX_MLP_WIDTH) {
      diag(ld->d, v, "block '%s': layer size %zu is not an integer in 1..%d",
           bname, i, MAX_MLP_WIDTH);
      return TW_EINVAL;
    }
    sizes[i] = (size_t)json_integer_value(v);
  }
  size_t nparams = 0;
  for (size_t i = 0; i + 1 < n; i++)
    nparams += sizes[i] * sizes[i + 1] + sizes[i + 1];
  if (nparams > MAX_MLP_PARAMS) {
    diag(ld->d, sz, "block '%s': %zu parameters, more than the limit of %d",
         bname, nparams, MAX_MLP_PARAMS);
    return TW_EINVAL;
  }
  for (size_t i = 0; i + 1 < n; i++) {
    const char *a = json_string_value(json_array_get(ac, i));
    size_t k = 0;
    while (a != NULL && k < 5 && strcmp(a, names[k]) != 0)
      k++;
    if (a == NULL || k == 5) {
      diag(ld->d, json_array_get(ac, i),
           "block '%s': activation %zu must be none, tanh, relu, sigmoid or "
           "softplus",
           bname, i);
      return TW_EINVAL;
    }
    acts[i] = (tw_activation)k;
  }
  json_t *seed = json_object_get(spec, "seed");
  uint64_t s = json_is_integer(seed) ? (uint64_t)json_integer_value(seed) : 0;
  tw_err e;
  tw_err_init(&e);
  int rc = tw_sim_mlp_block(n - 1, sizes, acts, s, bname, out, &e);
  if (rc != TW_OK)
    diag(ld->d, spec, "block '%s': %s", bname, e.msg);
  return rc;
}

/* "wasm:ALG:..." names a model by digest: a colon before any slash (a
 * file whose first name holds a colon is written "./a:b.wasm"). */
static bool is_digest(const char *path) {
  const char *colon = strchr(path, ':'), *slash = strchr(path, '/');
  return colon != NULL && (slash == NULL || colon < slash);
}

/* The bytes of the model digest from the local store, verified. */
static int read_blob(loader *ld, const char *digest, tw_buf *bytes, tw_err *e) {
  int rc = tw_store_digest_check(digest, e);
  tw_store *st = NULL;
  if (rc == TW_OK)
    rc =
        tw_store_open(ld->opts != NULL ? ld->opts->store : NULL, false, &st, e);
  if (rc == TW_OK)
    rc = tw_store_read(st, digest, MAX_BLOB, bytes, e);
  tw_store_close(st);
  return rc;
}

static int make_wasm(loader *ld, const json_t *model, const char *path,
                     const char *bname, tw_block **out, tw_wasm_module **mod) {
  tw_graph *g = ld->g;
  tw_buf blob = TW_BUF_INIT;
  bool by_digest = is_digest(path);
  if (by_digest) {
    tw_err e;
    tw_err_init(&e);
    int rc = read_blob(ld, path, &blob, &e);
    if (rc == TW_ENOMEM) {
      tw_buf_fini(&blob);
      return tw_err_set(ld->err, rc, "%s", e.msg);
    }
    if (rc != TW_OK) {
      tw_buf_fini(&blob);
      diag(ld->d, model, "block '%s': %s", bname, e.msg);
      return rc;
    }
  }
  char full[4096];
  if (path[0] == '/')
    (void)snprintf(full, sizeof full, "%s", path);
  else
    (void)snprintf(full, sizeof full, "%s/%s", ld->base_dir, path);
  tw_err e;
  tw_err_init(&e);
  if (g->engine == NULL) {
    int rc = tw_wasm_engine_new(g->ctx, NULL, &g->engine, &e);
    if (rc != TW_OK) {
      tw_buf_fini(&blob);
      return tw_err_set(ld->err, rc, "%s", e.msg);
    }
    g->own_engine = true;
  }
  tw_wasm_module_opts mo = {false, bname};
  int rc = by_digest ? tw_wasm_module_load(g->engine, blob.data, blob.len, &mo,
                                           mod, &e)
                     : tw_wasm_module_load_file(g->engine, full, &mo, mod, &e);
  tw_buf_fini(&blob);
  if (rc == TW_OK) {
    tw_wasm_limits lim =
        ld->opts != NULL ? ld->opts->limits : (tw_wasm_limits){0, 0, 0};
    rc = tw_sim_wasm_block(*mod, &lim, bname, out, &e);
  }
  if (rc != TW_OK)
    diag(ld->d, model, "block '%s': %s", bname, e.msg);
  return rc;
}

/* A sub-graph (subgraph.c): its file's diagnostics go to the same buffer
 * and count as this graph's; one more names the block here. */
static int make_subgraph(loader *ld, const json_t *model, const char *path,
                         const char *bname, unsigned every, tw_block **out) {
  tw_graph_opts o;
  memset(&o, 0, sizeof o);
  if (ld->opts != NULL)
    o = *ld->opts;
  if (o.engine == NULL)
    o.engine = ld->g->engine; /* one engine when this graph made one */
  tw__gsub s = {path,  ld->base_dir,      ld->chain,  &o, bname,
                every, every * ld->g->dt, ld->d->out, 0};
  tw_err e;
  tw_err_init(&e);
  int rc = tw__graph_subgraph_block(&s, out, &e);
  ld->d->n += s.ndiags;
  if (rc == TW_ENOMEM)
    return tw_err_set(ld->err, rc, "%s", e.msg);
  if (rc != TW_OK)
    diag(ld->d, model, "block '%s': %s", bname, e.msg);
  return rc;
}

/* Sets b's parameters from the "params" object. */
static void set_params(loader *ld, tw__gblock *b, json_t *params) {
  const tw_block_desc *d = b->desc;
  const char *key;
  json_t *v;
  json_object_foreach(params, key, v) {
    size_t off = 0, i = 0;
    while (i < d->nparams && strcmp(d->params[i].name, key) != 0)
      off += d->params[i++].size;
    if (i == d->nparams) {
      diag(ld->d, v, "block '%s' (%s) has no parameter '%s'", b->name, d->kind,
           key);
      continue;
    }
    size_t size = d->params[i].size;
    json_t *val = v, *lo = NULL, *hi = NULL;
    if (json_is_object(v)) {
      static const char *const keys[] = {"value", "min", "max", "trainable",
                                         NULL};
      check_keys(ld->d, v, "parameter", keys);
      val = json_object_get(v, "value");
      lo = json_object_get(v, "min");
      hi = json_object_get(v, "max");
      json_t *tr = json_object_get(v, "trainable");
      if (tr != NULL && !json_is_boolean(tr))
        diag(ld->d, tr,
             "block '%s': parameter '%s': trainable must be true "
             "or false",
             b->name, key);
      if (val == NULL)
        continue; /* bounds or flags only: the default value stays */
    }
    if (json_is_number(val)) {
      for (size_t j = 0; j < size; j++)
        b->theta[off + j] = json_number_value(val);
    } else if (json_is_array(val) && json_array_size(val) == size) {
      for (size_t j = 0; j < size; j++) {
        json_t *x = json_array_get(val, j);
        if (!json_is_number(x)) {
          diag(ld->d, x, "block '%s': parameter '%s'[%zu] is not a number",
               b->name, key, j);
          break;
        }
        b->theta[off + j] = json_number_value(x);
      }
    } else {
      diag(ld->d, val,
           "block '%s': parameter '%s' needs a number or an array of %zu "
           "numbers",
           b->name, key, size);
      continue;
    }
    for (size_t j = 0; j < size; j++) {
      double x = b->theta[off + j];
      if ((lo != NULL && json_is_number(lo) && x < json_number_value(lo)) ||
          (hi != NULL && json_is_number(hi) && x > json_number_value(hi))) {
        diag(ld->d, val,
             "block '%s': parameter '%s'[%zu] = %g is outside "
             "its bounds",
             b->name, key, j, x);
        break;
      }
      /* The model's own bounds (a wasm descriptor's min and max). */
      double mlo = d->param_min != NULL ? d->param_min[off + j] : -INFINITY;
      double mhi = d->param_max != NULL ? d->param_max[off + j] : INFINITY;
      if (x < mlo || x > mhi) {
        diag(ld->d, val,
             "block '%s': parameter '%s'[%zu] = %g is outside the model's "
             "bounds [%g, %g]",
             b->name, key, j, x, mlo, mhi);
        break;
      }
    }
  }
}

/* Allocates b's vectors: theta (+ x0, x, xn, u, y in one block). */
static int alloc_vectors(loader *ld, tw__gblock *b) {
  const tw_block_desc *d = b->desc;
  size_t n = d->ntheta + 4 * d->nx + d->nu + d->ny + 6;
  b->theta = tw_calloc(n, sizeof(double));
  b->src = tw_calloc(d->ninputs ? d->ninputs : 1, sizeof *b->src);
  b->connected = tw_calloc(d->ninputs ? d->ninputs : 1, sizeof(bool));
  if (b->theta == NULL || b->src == NULL || b->connected == NULL)
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  b->x0 = b->theta + d->ntheta + 1;
  b->x = b->x0 + d->nx + 1;
  b->xn = b->x + d->nx + 1;
  b->u = b->xn + d->nx + 1;
  b->y = b->u + d->nu + 1;
  if (d->ntheta > 0)
    (void)tw_block_default_params(b->block, b->theta, NULL);
  return TW_OK;
}

static int load_block(loader *ld, const char *bname, json_t *spec,
                      tw__gblock *b) {
  tw_graph *g = ld->g;
  if (!json_is_object(spec)) {
    diag(ld->d, spec, "block '%s' must be an object", bname);
    return TW_OK;
  }
  static const char *const keys[] = {
      "model", "every",       "period", "params",     "size",
      "sizes", "activations", "seed",   "integrator", NULL};
  char what[MAX_NAME + 16];
  (void)snprintf(what, sizeof what, "block '%s'", bname);
  check_keys(ld->d, spec, what, keys);
  json_t *model = json_object_get(spec, "model");
  const char *m = json_string_value(model);
  if (m == NULL) {
    diag(ld->d, model != NULL ? model : spec,
         "block '%s': \"model\" must be a string (builtin:NAME, "
         "wasm:PATH or graph:PATH)",
         bname);
    return TW_OK;
  }
  b->every = 1;
  json_t *every = json_object_get(spec, "every");
  json_t *period = json_object_get(spec, "period");
  if (every != NULL && period != NULL)
    diag(ld->d, period, "block '%s': give \"every\" or \"period\", not both",
         bname);
  if (every != NULL) {
    if (!json_is_integer(every) || json_integer_value(every) < 1 ||
        json_integer_value(every) > 1000000000)
      diag(ld->d, every, "block '%s': every must be an integer >= 1", bname);
    else
      b->every = (unsigned)json_integer_value(every);
  } else if (period != NULL) {
    double p = json_is_number(period) ? json_number_value(period) : -1;
    double r = p / g->dt;
    if (!(p > 0) || fabs(r - nearbyint(r)) > 1e-9 * r || nearbyint(r) < 1 ||
        r > 1e9)
      diag(ld->d, period,
           "block '%s': period %g s is not a positive multiple of dt = %g s",
           bname, p, g->dt);
    else
      b->every = (unsigned)nearbyint(r);
  }
  tw_err e;
  tw_err_init(&e);
  int rc = TW_EINVAL;
  size_t size = 1;
  if (strcmp(m, "builtin:gain") == 0) {
    if (get_size(ld, spec, bname, &size) == TW_OK)
      rc = tw_sim_gain_block(size, 1.0, bname, &b->block, &e);
  } else if (strcmp(m, "builtin:affine") == 0) {
    if (get_size(ld, spec, bname, &size) == TW_OK)
      rc = tw_sim_affine_block(size, 1.0, 0.0, bname, &b->block, &e);
  } else if (strcmp(m, "builtin:integrator") == 0) {
    if (get_size(ld, spec, bname, &size) == TW_OK)
      rc = tw_sim_integrator_block(size, bname, &b->block, &e);
  } else if (strcmp(m, "builtin:chain1d") == 0) {
    if (get_size(ld, spec, bname, &size) == TW_OK)
      rc = tw_sim_chain1d_block(size, bname, &b->block, &e);
  } else if (strcmp(m, "builtin:mlp") == 0) {
    rc = make_mlp(ld, spec, bname, &b->block);
  } else if (strcmp(m, "builtin:spring_damper") == 0) {
    json_t *iv = json_object_get(spec, "integrator");
    tw_integrator method = TW_SEMI_IMPLICIT;
    if (iv != NULL &&
        (!json_is_string(iv) ||
         tw_integrator_parse(json_string_value(iv), &method, NULL) != TW_OK))
      diag(ld->d, iv,
           "block '%s': integrator must be euler, semi-implicit or rk4", bname);
    else
      rc = tw_sim_spring_damper_block(method, bname, &b->block, &e);
  } else if (strncmp(m, "wasm:", 5) == 0) {
    tw_wasm_module *mod = NULL;
    rc = make_wasm(ld, model, m + 5, bname, &b->block, &mod);
    if (mod != NULL)
      g->modules[g->nmodules++] = mod;
    if (ld->err->code != TW_OK)
      return ld->err->code;
  } else if (strncmp(m, "graph:", 6) == 0) {
    rc = make_subgraph(ld, model, m + 6, bname, b->every, &b->block);
    if (ld->err->code != TW_OK)
      return ld->err->code;
  } else {
    diag(ld->d, model,
         "block '%s': unknown model '%s' (builtin:gain, builtin:affine, "
         "builtin:integrator, builtin:mlp, builtin:chain1d, "
         "builtin:spring_damper, wasm:PATH or "
         "graph:PATH)",
         bname, m);
    return TW_OK;
  }
  if (rc != TW_OK) {
    if (e.code != TW_OK)
      diag(ld->d, spec, "block '%s': %s", bname, e.msg);
    return TW_OK; /* reported */
  }
  b->desc = tw_block_describe(b->block);
  rc = alloc_vectors(ld, b);
  if (rc != TW_OK)
    return rc;
  /* Unconnected wasm inputs take their descriptor defaults. */
  if (strncmp(m, "wasm:", 5) == 0) {
    const tw_wasm_desc *wd = tw_wasm_module_desc(g->modules[g->nmodules - 1]);
    size_t off = 0;
    for (size_t i = 0; i < wd->ninputs; i++) {
      if (wd->inputs[i].default_ != NULL)
        memcpy(b->u + off, wd->inputs[i].default_,
               wd->inputs[i].size * sizeof(double));
      off += wd->inputs[i].size;
    }
  }
  json_t *params = json_object_get(spec, "params");
  if (params != NULL && !json_is_object(params))
    diag(ld->d, params, "block '%s': params must be an object", bname);
  else if (params != NULL)
    set_params(ld, b, params);
  return TW_OK;
}

/* --- Ports and connections ------------------------------------------- */

/* Finds port name among n ports: index and offset. */
static bool find_port(const tw_port *p, size_t n, const char *name,
                      size_t *index, size_t *offset) {
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(p[i].name, name) == 0) {
      *index = i;
      *offset = off;
      return true;
    }
    off += p[i].size;
  }
  return false;
}

static size_t find_block(const tw_graph *g, const char *name, size_t len) {
  for (size_t i = 0; i < g->nblocks; i++)
    if (g->blocks[i].name != NULL && strlen(g->blocks[i].name) == len &&
        strncmp(g->blocks[i].name, name, len) == 0)
      return i;
  return SIZE_MAX;
}

/* A resolved "block.port" (or "inputs.NAME") reference. */
typedef struct ref {
  int kind; /* TW__SRC_INPUT or TW__SRC_BLOCK */
  size_t index, port, offset, size;
  const char *unit;
  tw_dtype dtype;
  bool ok;
} ref;

static ref resolve(loader *ld, const json_t *node, bool output,
                   const char *what) {
  ref r = {0, 0, 0, 0, 0, "", TW_F64, false};
  tw_graph *g = ld->g;
  const char *s = json_string_value(node);
  const char *dot = s != NULL ? strchr(s, '.') : NULL;
  if (dot == NULL) {
    diag(ld->d, node, "%s must be a string \"block.port\"", what);
    return r;
  }
  size_t blen = (size_t)(dot - s);
  const char *port = dot + 1;
  if (blen == 6 && strncmp(s, "inputs", 6) == 0) {
    if (!output) {
      diag(ld->d, node,
           "%s: graph inputs can only be the source of a "
           "connection",
           what);
      return r;
    }
    for (size_t i = 0; i < g->ninputs; i++)
      if (strcmp(g->inputs[i].name, port) == 0) {
        r = (ref){TW__SRC_INPUT,
                  i,
                  0,
                  g->inputs[i].offset,
                  g->inputs[i].size,
                  g->inputs[i].unit,
                  g->inputs[i].dtype,
                  true};
        return r;
      }
    diag(ld->d, node, "%s: the graph has no input '%s'", what, port);
    return r;
  }
  size_t bi = find_block(g, s, blen);
  if (bi == SIZE_MAX) {
    diag(ld->d, node, "%s: unknown block '%.*s'", what, (int)blen, s);
    return r;
  }
  const tw_block_desc *d = g->blocks[bi].desc;
  if (d == NULL)
    return r; /* the block itself failed: reported there */
  size_t pi, off;
  const tw_port *ports = output ? d->outputs : d->inputs;
  size_t np = output ? d->noutputs : d->ninputs;
  if (!find_port(ports, np, port, &pi, &off)) {
    const tw_port *other = output ? d->inputs : d->outputs;
    size_t no = output ? d->ninputs : d->noutputs, x, y;
    if (find_port(other, no, port, &x, &y))
      diag(ld->d, node, "%s: '%s' is an %s of block '%s', not an %s", what,
           port, output ? "input" : "output", g->blocks[bi].name,
           output ? "output" : "input");
    else
      diag(ld->d, node, "%s: block '%s' (%s) has no %s port '%s'", what,
           g->blocks[bi].name, d->kind, output ? "output" : "input", port);
    return r;
  }
  r = (ref){TW__SRC_BLOCK,   bi,  pi, off, ports[pi].size, ports[pi].unit,
            ports[pi].dtype, true};
  return r;
}

static void connect(loader *ld, json_t *c) {
  tw_graph *g = ld->g;
  if (!json_is_object(c)) {
    diag(ld->d, c, "a connection must be an object {\"from\", \"to\"}");
    return;
  }
  static const char *const keys[] = {"from", "to", NULL};
  check_keys(ld->d, c, "connection", keys);
  json_t *from = json_object_get(c, "from"), *to = json_object_get(c, "to");
  if (from == NULL || to == NULL) {
    diag(ld->d, c, "a connection needs \"from\" and \"to\"");
    return;
  }
  ref a = resolve(ld, from, true, "from");
  ref b = resolve(ld, to, false, "to");
  if (!a.ok || !b.ok)
    return;
  tw__gblock *dst = &g->blocks[b.index];
  if (a.size != b.size) {
    diag(ld->d, to, "size mismatch: %s has %zu values, %s has %zu",
         json_string_value(from), a.size, json_string_value(to), b.size);
    return;
  }
  if (a.unit[0] != '\0' && b.unit[0] != '\0' && strcmp(a.unit, b.unit) != 0) {
    diag(ld->d, to, "unit mismatch: %s is in '%s', %s in '%s'",
         json_string_value(from), a.unit, json_string_value(to), b.unit);
    return;
  }
  if (a.dtype != b.dtype) {
    diag(ld->d, to, "dtype mismatch: %s is %s, %s is %s",
         json_string_value(from), tw_dtype_name(a.dtype), json_string_value(to),
         tw_dtype_name(b.dtype));
    return;
  }
  if (dst->connected[b.port]) {
    diag(ld->d, to, "%s is already connected", json_string_value(to));
    return;
  }
  dst->connected[b.port] = true;
  dst->src[b.port] = (tw__gsrc){a.kind, a.index,  a.offset,
                                a.size, b.offset, tw_dtype_is_real(a.dtype)};
}

/* --- Schedule ------------------------------------------------------------ */

/* Does output port o of d read any input within the step? */
static bool feeds_through(const tw_block_desc *d, size_t o) {
  if (d->feedthrough_none || d->ninputs == 0)
    return false;
  if (d->feedthrough == NULL)
    return true;
  for (size_t i = 0; i < d->ninputs; i++)
    if (d->feedthrough[o * d->ninputs + i])
      return true;
  return false;
}

size_t tw__graph_port_at(const tw_block_desc *d, size_t off) {
  size_t acc = 0;
  for (size_t o = 0; o < d->noutputs; o++) {
    if (off < acc + d->outputs[o].size)
      return o;
    acc += d->outputs[o].size;
  }
  return 0;
}

/* Groups the topological order by level: a block's level is one more than
 * the highest level of the blocks it must run after (0 for none). */
static int levels(loader *ld) {
  tw_graph *g = ld->g;
  size_t n = g->nblocks;
  size_t *lv = tw_calloc(n ? n : 1, sizeof *lv);
  size_t *sorted = tw_calloc(n ? n : 1, sizeof *sorted);
  g->level_start = tw_calloc(n + 2, sizeof *g->level_start);
  if (lv == NULL || sorted == NULL || g->level_start == NULL) {
    tw_free(lv);
    tw_free(sorted);
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  }
  size_t top = 0;
  for (size_t j = 0; j < n; j++) { /* predecessors come first */
    size_t b = g->order[j];
    const tw__gblock *B = &g->blocks[b];
    for (size_t i = 0; i < B->desc->ninputs; i++) {
      const tw__gsrc *s = &B->src[i];
      if (s->kind == TW__SRC_BLOCK &&
          feeds_through(
              g->blocks[s->index].desc,
              tw__graph_port_at(g->blocks[s->index].desc, s->offset)) &&
          lv[s->index] + 1 > lv[b])
        lv[b] = lv[s->index] + 1;
    }
    if (lv[b] > top)
      top = lv[b];
  }
  size_t k = 0;
  for (size_t l = 0; l <= top && n > 0; l++) {
    g->level_start[l] = k;
    for (size_t j = 0; j < n; j++)
      if (lv[g->order[j]] == l)
        sorted[k++] = g->order[j];
  }
  g->nlevels = n > 0 ? top + 1 : 0;
  g->level_start[g->nlevels] = n;
  memcpy(g->order, sorted, n * sizeof *sorted);
  tw_free(lv);
  tw_free(sorted);
  return TW_OK;
}

/* Kahn's algorithm, lowest index first (a deterministic order); blocks
 * left over sit on an algebraic loop. */
static int schedule(loader *ld, json_t *blocks_node) {
  tw_graph *g = ld->g;
  size_t n = g->nblocks;
  size_t *indeg = tw_calloc(n ? n : 1, sizeof *indeg);
  bool *done = tw_calloc(n ? n : 1, sizeof *done);
  g->order = tw_calloc(n ? n : 1, sizeof *g->order);
  if (indeg == NULL || done == NULL || g->order == NULL) {
    tw_free(indeg);
    tw_free(done);
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  }
  /* Edge s -> b for every source port of b that feeds through in s. */
  for (size_t b = 0; b < n; b++) {
    tw__gblock *B = &g->blocks[b];
    for (size_t i = 0; i < B->desc->ninputs; i++) {
      const tw__gsrc *s = &B->src[i];
      if (s->kind != TW__SRC_BLOCK)
        continue;
      tw__gblock *S = &g->blocks[s->index];
      if (feeds_through(S->desc, tw__graph_port_at(S->desc, s->offset)))
        indeg[b]++;
      else
        S->prepass = true;
    }
  }
  size_t k = 0;
  while (k < n) {
    size_t pick = SIZE_MAX;
    for (size_t b = 0; b < n && pick == SIZE_MAX; b++)
      if (!done[b] && indeg[b] == 0)
        pick = b;
    if (pick == SIZE_MAX)
      break;
    done[pick] = true;
    g->order[k++] = pick;
    for (size_t b = 0; b < n; b++) {
      tw__gblock *B = &g->blocks[b];
      for (size_t i = 0; i < B->desc->ninputs; i++) {
        const tw__gsrc *s = &B->src[i];
        if (s->kind == TW__SRC_BLOCK && s->index == pick &&
            feeds_through(g->blocks[pick].desc,
                          tw__graph_port_at(g->blocks[pick].desc, s->offset)))
          indeg[b]--;
      }
    }
  }
  if (k < n) {
    /* Name only the blocks on a cycle: drop, again and again, left-over
     * blocks that feed no other left-over block (they only sit
     * downstream of one). */
    for (bool pruned = true; pruned;) {
      pruned = false;
      for (size_t a = 0; a < n; a++) {
        if (done[a])
          continue;
        bool feeds = false;
        for (size_t b = 0; b < n && !feeds; b++) {
          if (done[b])
            continue;
          const tw__gblock *B = &g->blocks[b];
          for (size_t i = 0; i < B->desc->ninputs && !feeds; i++) {
            const tw__gsrc *s = &B->src[i];
            feeds =
                s->kind == TW__SRC_BLOCK && s->index == a &&
                feeds_through(g->blocks[a].desc,
                              tw__graph_port_at(g->blocks[a].desc, s->offset));
          }
        }
        if (!feeds) {
          done[a] = true;
          pruned = true;
        }
      }
    }
    char names[512] = "";
    size_t len = 0;
    for (size_t b = 0; b < n && len < sizeof names - 80; b++)
      if (!done[b])
        len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'",
                                len ? ", " : "", g->blocks[b].name);
    size_t first = 0;
    while (done[first])
      first++;
    diag(ld->d, json_object_get(blocks_node, g->blocks[first].name),
         "algebraic loop: blocks %s depend on each other's outputs within "
         "one step, and none of them breaks the cycle with state (an "
         "output that does not feed through, like an integrator's)",
         names);
  }
  tw_free(indeg);
  tw_free(done);
  return k < n ? TW_OK : levels(ld);
}

/* --- The whole graph ---------------------------------------------------- */

static int load_io(loader *ld, json_t *root) {
  tw_graph *g = ld->g;
  json_t *ins = json_object_get(root, "inputs");
  if (ins != NULL && !json_is_object(ins)) {
    diag(ld->d, ins, "inputs must be an object of name: {size, unit}");
    ins = NULL;
  }
  size_t nin = ins != NULL ? json_object_size(ins) : 0;
  g->inputs = tw_calloc(nin ? nin : 1, sizeof *g->inputs);
  if (g->inputs == NULL)
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  const char *key;
  json_t *v;
  if (ins != NULL)
    json_object_foreach(ins, key, v) {
      size_t size = 1;
      const char *unit = "";
      tw_dtype dtype = TW_F64;
      if (!valid_io_name(key))
        diag(ld->d, v, "input name '%s' is not a valid name", key);
      if (!json_is_object(v)) {
        diag(ld->d, v, "input '%s' must be an object {size, unit}", key);
      } else {
        static const char *const keys[] = {"size", "unit", "dtype", NULL};
        check_keys(ld->d, v, "input", keys);
        json_t *s = json_object_get(v, "size");
        if (s != NULL && (!json_is_integer(s) || json_integer_value(s) < 1 ||
                          json_integer_value(s) > MAX_SIZE))
          diag(ld->d, s, "input '%s': size must be an integer >= 1", key);
        else if (s != NULL)
          size = (size_t)json_integer_value(s);
        json_t *u = json_object_get(v, "unit");
        if (u != NULL && !json_is_string(u))
          diag(ld->d, u, "input '%s': unit must be a string", key);
        else if (u != NULL)
          unit = json_string_value(u);
        json_t *t = json_object_get(v, "dtype");
        if (t != NULL && !tw_dtype_parse(json_string_value(t), &dtype))
          diag(ld->d, t, "input '%s': dtype must be f64, f32, i64, i32 or bool",
               key);
      }
      tw__gio *io = &g->inputs[g->ninputs++];
      io->dtype = dtype;
      g->typed_inputs = g->typed_inputs || dtype != TW_F64;
      io->name = tw_strdup(key);
      io->unit = tw_strdup(unit);
      if (io->name == NULL || io->unit == NULL)
        return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
      io->size = size;
      io->offset = g->in_width;
      g->in_width += size;
    }
  return TW_OK;
}

static int load_outputs(loader *ld, json_t *root) {
  tw_graph *g = ld->g;
  json_t *outs = json_object_get(root, "outputs");
  if (outs != NULL && !json_is_object(outs)) {
    diag(ld->d, outs, "outputs must be an object of name: \"block.port\"");
    outs = NULL;
  }
  size_t n = outs != NULL ? json_object_size(outs) : 0;
  g->outputs = tw_calloc(n ? n : 1, sizeof *g->outputs);
  if (g->outputs == NULL)
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  const char *key;
  json_t *v;
  if (outs != NULL)
    json_object_foreach(outs, key, v) {
      if (!valid_io_name(key))
        diag(ld->d, v, "output name '%s' is not a valid name", key);
      ref r = resolve(ld, v, true, "output");
      if (!r.ok)
        continue;
      if (r.kind != TW__SRC_BLOCK) {
        diag(ld->d, v, "output '%s' must name a block's output port", key);
        continue;
      }
      tw__gio *io = &g->outputs[g->noutputs++];
      io->name = tw_strdup(key);
      if (io->name == NULL)
        return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
      io->size = r.size;
      io->dtype = r.dtype;
      io->offset = g->out_width;
      io->block = r.index;
      io->from = r.offset;
      g->out_width += r.size;
    }
  return TW_OK;
}

static int load_graph(loader *ld, json_t *root) {
  tw_graph *g = ld->g;
  diags *d = ld->d;
  if (!json_is_object(root)) {
    diag(d, root, "a graph must be a JSON object");
    return TW_OK;
  }
  static const char *const keys[] = {"graph",   "name",        "dt",
                                     "blocks",  "connections", "inputs",
                                     "outputs", NULL};
  check_keys(d, root, "graph", keys);
  json_t *ver = json_object_get(root, "graph");
  if (!json_is_integer(ver) || json_integer_value(ver) != TW_GRAPH_VERSION)
    diag(d, ver != NULL ? ver : root,
         "\"graph\" must be %d (the IR version this reader knows)",
         TW_GRAPH_VERSION);
  json_t *name = json_object_get(root, "name");
  const char *nm = json_string_value(name);
  if (name != NULL && (nm == NULL || !valid_name(nm)))
    diag(d, name, "name must be a valid name ([A-Za-z_][A-Za-z0-9_]*)");
  g->name = tw_strdup(nm != NULL ? nm : "graph");
  if (g->name == NULL)
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  json_t *dt = json_object_get(root, "dt");
  g->dt = json_is_number(dt) ? json_number_value(dt) : 0;
  if (!(g->dt > 0) || !isfinite(g->dt)) {
    diag(d, dt != NULL ? dt : root,
         "dt must be a positive number of "
         "seconds");
    g->dt = 1;
  }
  int rc = load_io(ld, root);
  if (rc != TW_OK)
    return rc;
  json_t *blocks = json_object_get(root, "blocks");
  if (!json_is_object(blocks) || json_object_size(blocks) == 0) {
    diag(d, blocks != NULL ? blocks : root,
         "blocks must be an object with at least one block");
    return TW_OK;
  }
  size_t nb = json_object_size(blocks);
  g->blocks = tw_calloc(nb, sizeof *g->blocks);
  g->modules = tw_calloc(nb, sizeof(tw_wasm_module *));
  if (g->blocks == NULL || g->modules == NULL)
    return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
  const char *key;
  json_t *v;
  json_object_foreach(blocks, key, v) {
    tw__gblock *b = &g->blocks[g->nblocks++];
    if (!valid_name(key) || strcmp(key, "inputs") == 0)
      diag(d, v,
           "block name '%s' is not a valid name (and 'inputs' is "
           "reserved)",
           key);
    b->name = tw_strdup(key);
    if (b->name == NULL)
      return tw_err_set(ld->err, TW_ENOMEM, "graph: out of memory");
    rc = load_block(ld, key, v, b);
    if (rc != TW_OK)
      return rc;
  }
  json_t *conns = json_object_get(root, "connections");
  if (conns != NULL && !json_is_array(conns))
    diag(d, conns, "connections must be an array");
  else if (conns != NULL)
    for (size_t i = 0; i < json_array_size(conns); i++)
      connect(ld, json_array_get(conns, i));
  rc = load_outputs(ld, root);
  if (rc != TW_OK || d->n > 0)
    return rc; /* no schedule for a graph with errors */
  rc = schedule(ld, blocks);
  if (rc == TW_OK && d->n == 0)
    rc = tw__graph_composite(g, &g->composite, ld->err);
  return rc;
}

bool tw__graph_is_twg(const char *source) {
  size_t n = source != NULL ? strlen(source) : 0;
  return n >= 4 && strcmp(source + n - 4, ".twg") == 0;
}

int tw__graph_read_doc(const char *text, size_t len, const char *source,
                       tw_json_doc **doc, tw_err *err) {
  if (tw__graph_is_twg(source))
    return tw__graph_dsl_parse(text, len, source, doc, err);
  return tw_json_parse_doc(text, len, source, doc, err);
}

/* Loads the graph of doc (borrowed). */
static int load_doc(const tw_json_doc *doc, const tw__gchain *self,
                    const char *base_dir, const tw_graph_opts *opts,
                    tw_buf *diag_out, unsigned *ndiags, tw_graph **out,
                    tw_err *err) {
  if (ndiags != NULL)
    *ndiags = 0;
  int rc;
  tw_graph *g = tw_calloc(1, sizeof *g);
  if (g == NULL)
    return tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  g->ctx = opts != NULL ? opts->ctx : NULL;
  g->engine = opts != NULL ? opts->engine : NULL;
  if (g->ctx != NULL && tw_ctx_pool(g->ctx, &g->pool, NULL) != TW_OK)
    g->pool = NULL; /* no pool: levels run one block after the other */
  diags d = {doc, diag_out, 0, 0};
  tw_err fatal;
  tw_err_init(&fatal);
  loader ld = {g, &d, base_dir != NULL ? base_dir : ".", opts, &fatal, self};
  rc = load_graph(&ld, tw_json_doc_root(doc));
  if (ndiags != NULL)
    *ndiags = d.n;
  if (rc == TW_OK && d.oom)
    rc = tw_err_set(&fatal, TW_ENOMEM, "graph: out of memory");
  if (rc != TW_OK) {
    tw_err_set(err, rc, "%s", fatal.msg);
  } else if (d.n > 0) {
    rc = tw_err_set(err, TW_EVALIDATE, "%s: %u error%s",
                    tw_json_doc_source(doc), d.n, d.n == 1 ? "" : "s");
  }
  if (rc != TW_OK) {
    tw_graph_free(g);
    return rc;
  }
  *out = g;
  return TW_OK;
}

int tw__graph_parse_in(const char *text, size_t len, const tw__gchain *self,
                       const char *base_dir, const tw_graph_opts *opts,
                       tw_buf *diag_out, unsigned *ndiags, tw_graph **out,
                       tw_err *err) {
  if (ndiags != NULL)
    *ndiags = 0;
  tw_json_doc *doc = NULL;
  int rc = tw__graph_read_doc(text, len, self->name, &doc, err);
  if (rc != TW_OK)
    return rc;
  rc = load_doc(doc, self, base_dir, opts, diag_out, ndiags, out, err);
  tw_json_doc_free(doc);
  return rc;
}

int tw_graph_from_doc(const tw_json_doc *doc, const char *base_dir,
                      const tw_graph_opts *opts, tw_buf *diag_out,
                      tw_graph **out, tw_err *err) {
  tw__gchain self = {NULL, tw_json_doc_source(doc), NULL, 0};
  return load_doc(doc, &self, base_dir, opts, diag_out, NULL, out, err);
}

const char *tw_graph_block_name(const tw_graph *g, size_t i) {
  return g->blocks[i].name;
}

const tw_block_desc *tw_graph_block_desc(const tw_graph *g, size_t i) {
  return g->blocks[i].desc;
}

int tw_graph_parse(const char *text, size_t len, const char *source,
                   const char *base_dir, const tw_graph_opts *opts,
                   tw_buf *diag_out, tw_graph **out, tw_err *err) {
  tw__gchain self = {NULL, source, NULL, 0};
  return tw__graph_parse_in(text, len, &self, base_dir, opts, diag_out, NULL,
                            out, err);
}

int tw_graph_load(const char *path, const tw_graph_opts *opts, tw_buf *diag_out,
                  tw_graph **out, tw_err *err) {
  tw_buf text;
  tw_buf_init(&text);
  int rc = tw_file_read_all(path, TW_JSON_MAX_FILE, &text, err);
  char *copy = rc == TW_OK ? tw_strdup(path) : NULL;
  if (rc == TW_OK && copy == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "graph: out of memory");
  /* Its canonical path, so that a sub-graph including it is a cycle. */
  char real[PATH_MAX];
  tw__gchain self = {realpath(path, real) != NULL ? real : NULL, path, NULL, 0};
  if (rc == TW_OK)
    rc = tw__graph_parse_in(text.data, text.len, &self, dirname(copy), opts,
                            diag_out, NULL, out, err);
  tw_free(copy);
  tw_buf_fini(&text);
  return rc;
}

/* --- Introspection ---------------------------------------------------- */

const char *tw_graph_name(const tw_graph *g) { return g->name; }
double tw_graph_dt(const tw_graph *g) { return g->dt; }
size_t tw_graph_nblocks(const tw_graph *g) { return g->nblocks; }
size_t tw_graph_ninputs(const tw_graph *g) { return g->ninputs; }
size_t tw_graph_noutputs(const tw_graph *g) { return g->noutputs; }
size_t tw_graph_input_width(const tw_graph *g) { return g->in_width; }
size_t tw_graph_output_width(const tw_graph *g) { return g->out_width; }

const char *tw_graph_input_unit(const tw_graph *g, size_t i) {
  const char *u = g->inputs[i].unit;
  return u != NULL ? u : "";
}

const char *tw_graph_output_unit(const tw_graph *g, size_t i) {
  const tw__gio *o = &g->outputs[i];
  const tw_block_desc *d = g->blocks[o->block].desc;
  size_t p = tw__graph_port_at(d, o->from);
  if (p >= d->noutputs || d->outputs[p].unit == NULL)
    return "";
  return d->outputs[p].unit;
}

tw_dtype tw_graph_input_dtype(const tw_graph *g, size_t i) {
  return g->inputs[i].dtype;
}

tw_dtype tw_graph_output_dtype(const tw_graph *g, size_t i) {
  return g->outputs[i].dtype;
}

const char *tw_graph_input_name(const tw_graph *g, size_t i, size_t *size) {
  if (size != NULL)
    *size = g->inputs[i].size;
  return g->inputs[i].name;
}

const char *tw_graph_output_name(const tw_graph *g, size_t i, size_t *size) {
  if (size != NULL)
    *size = g->outputs[i].size;
  return g->outputs[i].name;
}
