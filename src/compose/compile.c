/*
 * compile.c - a twin's mapping into the execution graph's IR (graph.md),
 * checking what the IR does not know about: quantities with units and
 * their conversion, causality of ports (outputs feed inputs, an input is
 * fed once, an input without a default is fed), sources and their topics,
 * rates against dt, model references and digests.
 *
 * Two passes over the components. The first compiles a graph of the
 * components alone, which loads every model (reporting those that do not
 * load where they are named) and gives each its descriptor: ports with
 * units and dtypes, parameters, which inputs need a source. The second
 * checks parameters and connections against those descriptors and
 * compiles the whole twin: connections whose units differ in scale get a
 * conversion block (a gain, or an affine map for offsets such as degC to
 * K), sources' topics become graph inputs. What only the graph can check
 * (algebraic loops) comes back from its loader, placed in the YAML
 * through the marks the IR carries.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compose_int.h"
#include "twin/alloc.h"
#include "twin/store.h"
#include "twin/trace.h"

#define MAX_NAME 64
#define OOM(c) tw_err_set((c)->err, TW_ENOMEM, "compose: out of memory")

/* --- Small helpers -------------------------------------------------------- */

/* Marks IR value ir with the place of twin value y (no-op when y is not
 * from the twin file). */
static void mark(tw_compose *c, json_t *ir, json_t *y) {
  size_t off;
  if (ir == NULL || y == NULL || !tw__coffset(c, y, &off))
    return;
  (void)tw_json_doc_mark(c->ir_doc, ir, off);
  if (c->npairs == c->cappairs) {
    size_t cap = c->cappairs ? 2 * c->cappairs : 64;
    tw__cpair *p = tw_reallocarray(c->pairs, cap, sizeof *p);
    if (p == NULL) {
      (void)OOM(c);
      return;
    }
    c->pairs = p;
    c->cappairs = cap;
  }
  c->pairs[c->npairs++] = (tw__cpair){ir, y};
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME ||
      !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') ||
        (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
      return false;
  return true;
}

static const char *type_name(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "a mapping";
  case JSON_ARRAY:
    return "a sequence";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  default:
    return "null";
  }
}

static tw__ccomp *find_comp(tw_compose *c, const char *name, size_t n) {
  for (size_t i = 0; i < c->ncomps; i++)
    if (strlen(c->comps[i].name) == n &&
        strncmp(c->comps[i].name, name, n) == 0)
      return &c->comps[i];
  return NULL;
}

static tw__csource *find_source(tw_compose *c, const char *name, size_t n) {
  for (size_t i = 0; i < c->nsources; i++)
    if (strlen(c->sources[i].name) == n &&
        strncmp(c->sources[i].name, name, n) == 0)
      return &c->sources[i];
  return NULL;
}

/* "; did you mean" over the components and sources. */
static const char *dym_names(tw_compose *c, const char *word, char *buf,
                             size_t cap) {
  const char *names[512];
  size_t n = 0;
  for (size_t i = 0; i < c->ncomps && n < 511; i++)
    names[n++] = c->comps[i].name;
  for (size_t i = 0; i < c->nsources && n < 511; i++)
    names[n++] = c->sources[i].name;
  names[n] = NULL;
  return tw__did_you_mean(word, names, n, buf, cap);
}

static const char *dym_ports(const tw_port *ports, size_t n, const char *word,
                             char *buf, size_t cap) {
  const char *names[257];
  size_t k = 0;
  for (size_t i = 0; i < n && k < 256; i++)
    names[k++] = ports[i].name;
  names[k] = NULL;
  return tw__did_you_mean(word, names, k, buf, cap);
}

static bool find_port(const tw_port *ports, size_t n, const char *name,
                      size_t *index) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(ports[i].name, name) == 0) {
      *index = i;
      return true;
    }
  return false;
}

/* --- Quantities ------------------------------------------------------------
 */

/* A number or a quantity string v in the unit `want` ("" or NULL:
 * dimensionless or as given): *out in want's unit. what names it. */
static bool quantity(tw_compose *c, json_t *v, const char *want,
                     const char *what, double *out) {
  if (json_is_number(v)) {
    *out = json_number_value(v);
    return true;
  }
  if (!json_is_string(v)) {
    tw__cdiag(c, false, "type", v, NULL,
              "%s must be a number or a quantity such as '4 N/m', not %s", what,
              type_name(v));
    return false;
  }
  tw_err e;
  tw_err_init(&e);
  double x;
  tw_unit u;
  const char *s = json_string_value(v);
  size_t at = 0;
  if (tw_quantity_parse_n(s, strlen(s), &x, &u, &at, &e) != TW_OK) {
    tw__cdiag_at(c, "value", v, at, "%s: %s", what, e.msg);
    return false;
  }
  tw_unit target;
  tw_unit_parse(want != NULL ? want : "", &target, NULL);
  if (want == NULL || want[0] == '\0') {
    if (!tw_unit_same_dimension(&u, &target) || u.factor != 1 ||
        u.offset != 0) {
      char dim[64];
      (void)tw_unit_dimension_format(&u, dim, sizeof dim);
      tw__cdiag(c, false, "unit", v, NULL, "%s is dimensionless, not '%s' (%s)",
                what, s, dim);
      return false;
    }
    *out = x;
    return true;
  }
  double scale, shift;
  if (tw_unit_conversion(&u, &target, &scale, &shift, &e) != TW_OK) {
    char have[64], need[64];
    (void)tw_unit_dimension_format(&u, have, sizeof have);
    (void)tw_unit_dimension_format(&target, need, sizeof need);
    if (strcmp(want, need) == 0)
      tw__cdiag(c, false, "unit", v, NULL, "%s must be in %s, not '%s' (%s)",
                what, want, s, have);
    else
      tw__cdiag(c, false, "unit", v, NULL,
                "%s must be in %s (%s), not '%s' (%s)", what, want, need, s,
                have);
    return false;
  }
  *out = scale * x + shift;
  return true;
}

bool tw__cquantity(tw_compose *c, json_t *v, const char *want, const char *what,
                   double *out) {
  return quantity(c, v, want, what, out);
}

/* The dimension of a time ("s": sign +1) or a rate ("1/s": -1). */
static bool seconds(tw_compose *c, json_t *v, const char *what, int sign,
                    double *out) {
  if (!quantity(c, v, sign > 0 ? "s" : "Hz", what, out))
    return false;
  if (!(*out > 0) || !isfinite(*out)) {
    tw__cdiag(c, false, "value", v, NULL, "%s must be positive and finite",
              what);
    return false;
  }
  if (sign < 0)
    *out = 1.0 / *out;
  return true;
}

/* --- Components: models ------------------------------------------------- */

/* The IR model string of a component's model value, or NULL (reported). */
static char *ir_model(tw_compose *c, const tw__ccomp *k) {
  json_t *m = k->model;
  const char *s = json_string_value(m);
  tw_buf b = TW_BUF_INIT;
  int rc = TW_OK;
  if (strncmp(s, "builtin:", 8) == 0) {
    static const char *const builtins[] = {"gain", "affine",  "integrator",
                                           "mlp",  "chain1d", "spring_damper",
                                           NULL};
    size_t i = 0;
    while (builtins[i] != NULL && strcmp(builtins[i], s + 8) != 0)
      i++;
    if (builtins[i] == NULL) {
      char dym[96];
      tw__cdiag_at(
          c, "model", m, 8,
          "component '%s': no builtin '%s' (gain, affine, "
          "integrator, mlp, chain1d, spring_damper)%s",
          k->name, s + 8,
          tw__did_you_mean(s + 8, builtins, SIZE_MAX, dym, sizeof dym));
      return NULL;
    }
    rc = tw_buf_printf(&b, "%s", s);
  } else if (strncmp(s, "file:", 5) == 0) {
    const char *p = s + 5;
    size_t n = strlen(p);
    const char *kind = n > 5 && strcmp(p + n - 5, ".wasm") == 0   ? "wasm"
                       : n > 5 && strcmp(p + n - 5, ".json") == 0 ? "graph"
                       : n > 4 && strcmp(p + n - 4, ".twg") == 0  ? "graph"
                                                                  : NULL;
    if (kind == NULL) {
      tw__cdiag(c, false, "model", m, NULL,
                "component '%s': file: models are .wasm modules or .json / "
                ".twg graphs, not '%s'",
                k->name, p);
      return NULL;
    }
    rc = tw_buf_printf(&b, "%s:%s", kind, p); /* relative to the twin */
  } else if (strncmp(s, "oci://", 6) == 0) {
    const char *at = strchr(s + 6, '@');
    if (at == NULL) {
      tw__cdiag(c, false, "digest", m, NULL,
                "component '%s': an oci:// reference needs a digest "
                "(oci://HOST/REPO@sha256:...); tags resolve through the "
                "registry (twin pull)",
                k->name);
      return NULL;
    }
    tw_err e;
    tw_err_init(&e);
    if (tw_store_digest_check(at + 1, &e) != TW_OK) {
      tw__cdiag_at(c, "digest", m, (size_t)(at + 1 - s), "component '%s': %s",
                   k->name, e.msg);
      return NULL;
    }
    if (at == s + 6 || strchr(s + 6, '/') == NULL || strchr(s + 6, '/') > at) {
      tw__cdiag(c, false, "model", m, NULL,
                "component '%s': an oci:// reference is "
                "oci://HOST/REPO@sha256:DIGEST",
                k->name);
      return NULL;
    }
    rc = tw_buf_printf(&b, "wasm:%s", at + 1);
  } else {
    char dym[96];
    static const char *const kinds[] = {"builtin:", "file:", "oci://", NULL};
    char head[16];
    (void)snprintf(head, sizeof head, "%.*s", (int)strcspn(s, ":") + 1, s);
    tw__cdiag(c, false, "model", m, NULL,
              "component '%s': model must be builtin:NAME, file:PATH or "
              "oci://HOST/REPO@sha256:DIGEST, not '%s'%s",
              k->name, s, tw__did_you_mean(head, kinds, 3, dym, sizeof dym));
    return NULL;
  }
  if (rc != TW_OK) {
    tw_buf_fini(&b);
    (void)OOM(c);
    return NULL;
  }
  return b.data;
}

/* Period of a component from rate: or period: as a number of ticks. */
static bool every(tw_compose *c, const tw__ccomp *k, unsigned *out) {
  json_t *rate = json_object_get(k->spec, "rate");
  json_t *period = json_object_get(k->spec, "period");
  *out = 1;
  if (rate == NULL && period == NULL)
    return true;
  if (rate != NULL && period != NULL) {
    tw__cdiag(c, false, "rate", k->spec, "period",
              "component '%s': give rate or period, not both", k->name);
    return false;
  }
  if (c->dt <= 0)
    return true; /* dt is wrong: reported */
  json_t *v = rate != NULL ? rate : period;
  double p;
  if (!seconds(c, v, rate != NULL ? "rate" : "period", rate != NULL ? -1 : 1,
               &p))
    return false;
  double r = p / c->dt;
  double n = nearbyint(r);
  if (n < 1 || fabs(r - n) > 1e-9 * n || n > 1e9) {
    tw__cdiag(c, false, "rate", v, NULL,
              "component '%s': a period of %g s is not a whole number of "
              "steps of dt = %g s",
              k->name, p, c->dt);
    return false;
  }
  *out = (unsigned)n;
  return true;
}

/* The IR block of component k (model, options, every), into blocks. */
static int ir_block(tw_compose *c, tw__ccomp *k, json_t *blocks) {
  static const char *const keys[] = {"model",   "parameters",  "rate", "period",
                                     "options", "description", NULL};
  tw__ckeys(c, k->spec, "a component", keys);
  if (k->model == NULL) {
    tw__cdiag(c, false, "missing", k->spec, NULL, "component '%s' has no model",
              k->name);
    return TW_OK;
  }
  if (!json_is_string(k->model)) {
    tw__cdiag(c, false, "type", k->model, NULL,
              "component '%s': model must be a string, not %s", k->name,
              type_name(k->model));
    return TW_OK;
  }
  unsigned ev;
  bool ok = every(c, k, &ev);
  char *model = ir_model(c, k);
  if (model == NULL || !ok) {
    tw_free(model);
    return c->err->code;
  }
  json_t *b = json_object();
  if (b == NULL || json_object_set_new(blocks, k->name, b) != 0) {
    tw_free(model);
    return OOM(c); /* set_new took b even when it failed */
  }
  json_t *mv = json_string(model);
  tw_free(model);
  if (mv == NULL || json_object_set_new(b, "model", mv) != 0)
    return OOM(c);
  mark(c, b, k->spec);
  mark(c, mv, k->model);
  if (ev > 1) {
    json_t *e = json_integer(ev);
    if (e == NULL || json_object_set_new(b, "every", e) != 0)
      return OOM(c);
    json_t *r = json_object_get(k->spec, "rate");
    mark(c, e, r != NULL ? r : json_object_get(k->spec, "period"));
  }
  json_t *opts = json_object_get(k->spec, "options");
  if (opts != NULL && !json_is_object(opts)) {
    tw__cdiag(c, false, "type", opts, NULL,
              "component '%s': options must be a mapping", k->name);
  } else if (opts != NULL) {
    const char *key;
    json_t *v;
    json_object_foreach(opts, key, v) {
      if (strncmp(key, "x-", 2) == 0)
        continue;
      static const char *const known[] = {"size", "sizes",      "activations",
                                          "seed", "integrator", NULL};
      size_t i = 0;
      while (known[i] != NULL && strcmp(known[i], key) != 0)
        i++;
      if (known[i] == NULL) {
        char dym[96];
        tw__cdiag(c, false, "unknown-key", opts, key,
                  "unknown option '%s' of component '%s'%s", key, k->name,
                  tw__did_you_mean(key, known, SIZE_MAX, dym, sizeof dym));
        continue;
      }
      if (json_object_set(b, key, v) != 0)
        return OOM(c);
      mark(c, v, v);
    }
  }
  return TW_OK;
}

/* --- Parameters --------------------------------------------------------- */

/* One parameter value (number, quantity or sequence of them, of the
 * parameter's size) into an IR value, or NULL (reported). */
static json_t *param_value(tw_compose *c, const tw__ccomp *k, const tw_port *p,
                           json_t *v) {
  char what[160];
  (void)snprintf(what, sizeof what, "parameter '%s.%s'", k->name, p->name);
  if (json_is_array(v)) {
    if (json_array_size(v) != p->size) {
      tw__cdiag(c, false, "value", v, NULL,
                "%s has %zu values, the model's has %zu", what,
                json_array_size(v), p->size);
      return NULL;
    }
    json_t *a = json_array();
    if (a == NULL) {
      (void)OOM(c);
      return NULL;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
      double x;
      json_t *e = json_array_get(v, i);
      if (!quantity(c, e, p->unit, what, &x)) {
        json_decref(a);
        return NULL;
      }
      json_t *n = json_real(x);
      if (n == NULL || json_array_append_new(a, n) != 0) {
        json_decref(a);
        (void)OOM(c);
        return NULL;
      }
      mark(c, n, e);
    }
    mark(c, a, v);
    return a;
  }
  double x;
  if (!quantity(c, v, p->unit, what, &x))
    return NULL;
  json_t *n = json_real(x);
  if (n == NULL)
    (void)OOM(c);
  mark(c, n, v);
  return n;
}

/* A parameter's entry: a value, or {value, min, max, trainable}. */
static json_t *param_entry(tw_compose *c, const tw__ccomp *k, const tw_port *p,
                           json_t *v) {
  if (!json_is_object(v))
    return param_value(c, k, p, v);
  static const char *const keys[] = {"value", "min", "max", "trainable", NULL};
  tw__ckeys(c, v, "a parameter", keys);
  json_t *o = json_object();
  if (o == NULL) {
    (void)OOM(c);
    return NULL;
  }
  mark(c, o, v);
  bool ok = true;
  for (int i = 0; i < 3; i++) {
    json_t *x = json_object_get(v, keys[i]);
    if (x == NULL)
      continue;
    json_t *ir = param_value(c, k, p, x);
    ok = ok && ir != NULL;
    if (ir != NULL && json_object_set_new(o, keys[i], ir) != 0) {
      ok = false;
      (void)OOM(c);
    }
  }
  json_t *t = json_object_get(v, "trainable");
  if (t != NULL && !json_is_boolean(t)) {
    tw__cdiag(c, false, "type", v, "trainable",
              "parameter '%s.%s': trainable must be true or false", k->name,
              p->name);
    ok = false;
  } else if (t != NULL && json_object_set(o, "trainable", t) != 0) {
    ok = false;
  }
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* Merges a parameters file (file: PATH, relative to the twin) under the
 * explicit parameters. */
static json_t *params_file(tw_compose *c, const tw__ccomp *k, json_t *ref) {
  if (!json_is_string(ref)) {
    tw__cdiag(c, false, "type", ref, NULL,
              "component '%s': parameters.file must be a path", k->name);
    return NULL;
  }
  const char *p = json_string_value(ref);
  tw_buf path = TW_BUF_INIT;
  int frc = p[0] == '/' ? TW_OK : tw__cdir_of(c, ref, &path);
  if (frc == TW_OK)
    frc = tw_buf_printf(&path, "%s%s", p[0] == '/' ? "" : "/", p);
  if (frc != TW_OK) {
    tw_buf_fini(&path);
    (void)OOM(c);
    return NULL;
  }
  size_t before = c->nfiles;
  tw__cdoc *f = NULL;
  int rc = tw__compose_load_file(c, path.data, &f);
  tw_buf_fini(&path);
  if (rc != TW_OK || c->nfiles == before)
    return NULL;
  json_t *root = tw_json_doc_root(f->doc);
  if (!json_is_object(root)) {
    tw__cdiag(c, false, "type", root, NULL,
              "a parameters file must be a mapping of param: value");
    return NULL;
  }
  return root;
}

static int ir_params(tw_compose *c, tw__ccomp *k, json_t *block) {
  json_t *params = json_object_get(k->spec, "parameters");
  if (params == NULL || k->desc == NULL)
    return TW_OK;
  if (!json_is_object(params)) {
    tw__cdiag(c, false, "type", params, NULL,
              "component '%s': parameters must be a mapping of name: value",
              k->name);
    return TW_OK;
  }
  json_t *out = json_object();
  if (out == NULL || json_object_set_new(block, "params", out) != 0)
    return OOM(c);
  mark(c, out, params);
  const tw_block_desc *d = k->desc;
  json_t *lists[2] = {NULL, params};
  json_t *file = json_object_get(params, "file");
  if (file != NULL)
    lists[0] = params_file(c, k, file);
  for (int l = 0; l < 2; l++) {
    const char *key;
    json_t *v;
    if (lists[l] == NULL)
      continue;
    json_object_foreach(lists[l], key, v) {
      if (strncmp(key, "x-", 2) == 0 || (l == 1 && strcmp(key, "file") == 0))
        continue;
      size_t i;
      if (!find_port(d->params, d->nparams, key, &i)) {
        char dym[96];
        tw__cdiag(c, false, "unknown-parameter", lists[l], key,
                  "component '%s' (%s) has no parameter '%s'%s", k->name,
                  d->kind, key,
                  dym_ports(d->params, d->nparams, key, dym, sizeof dym));
        continue;
      }
      if (json_is_boolean(v) || json_is_null(v)) { /* placed by its key */
        tw__cdiag(c, false, "type", lists[l], key,
                  "parameter '%s.%s' must be a number or a quantity such as "
                  "'4 N/m', not %s",
                  k->name, key, type_name(v));
        continue;
      }
      json_t *ir = param_entry(c, k, &d->params[i], v);
      if (ir != NULL && json_object_set_new(out, key, ir) != 0)
        return OOM(c);
    }
  }
  return c->err->code;
}

/* --- Sources ------------------------------------------------------------ */

/* What sources.S.topics says of topic (decl) into t; with report, every
 * problem of the declaration as a diagnostic (load_sources checks each
 * declared topic once, used or not). */
static void declared_topic(tw_compose *c, const tw__csource *s,
                           const char *topic, json_t *decl, tw__ctopic *t,
                           bool report) {
  static const char *const keys[] = {"unit", "size", "dtype", NULL};
  t->size = 1;
  t->dtype = TW_F64;
  if (!json_is_object(decl)) {
    if (report)
      tw__cdiag(c, false, "type", decl, NULL,
                "source '%s': topic '%s' must be a mapping {unit, size, "
                "dtype}",
                s->name, topic);
    return;
  }
  if (report)
    tw__ckeys(c, decl, "a topic", keys);
  json_t *u = json_object_get(decl, "unit");
  json_t *z = json_object_get(decl, "size");
  json_t *d = json_object_get(decl, "dtype");
  tw_unit pu;
  tw_err e;
  tw_err_init(&e);
  if (z != NULL && (!json_is_integer(z) || json_integer_value(z) < 1 ||
                    json_integer_value(z) > (1 << 20))) {
    if (report)
      tw__cdiag(c, false, "type", decl, "size",
                "topic '%s': size must be an integer >= 1", topic);
  } else if (z != NULL) {
    t->size = (size_t)json_integer_value(z);
  }
  if (u != NULL && !json_is_string(u)) {
    if (report)
      tw__cdiag(c, false, "type", decl, "unit",
                "topic '%s': unit must be a string", topic);
  } else if (u != NULL &&
             tw_unit_parse(json_string_value(u), &pu, &e) != TW_OK) {
    if (report)
      tw__cdiag(c, false, "unit", u, NULL, "topic '%s': %s", topic, e.msg);
  }
  if (d != NULL && !tw_dtype_parse(json_string_value(d), &t->dtype) && report)
    tw__cdiag(c, false, "value", decl, "dtype",
              "topic '%s': dtype must be f64, f32, i64, i32 or bool", topic);
  if (report)
    return;
  t->unit = tw_strdup(json_is_string(u) ? json_string_value(u) : "");
  t->known = t->unit != NULL;
  if (t->unit == NULL)
    (void)OOM(c);
}

static const char *const source_kinds[] = {"mcap", "kafka", "mqtt", "rtsp",
                                           NULL};

/* A live source's connection settings: strings, the ones its kind needs
 * present, and time: {field, unit}. */
static void live_settings(tw_compose *c, tw__csource *s, json_t *v) {
  static const struct {
    const char *key;
    size_t off;
    int need; /* the kind that requires it, or -1 */
  } str[] = {
      {"brokers", offsetof(tw_compose_source, brokers), TW_COMPOSE_KAFKA},
      {"group", offsetof(tw_compose_source, group), -1},
      {"topic", offsetof(tw_compose_source, topic), -1},
      {"dead_letter", offsetof(tw_compose_source, dead_letter), -1},
      {"schema_registry", offsetof(tw_compose_source, schema_registry), -1},
      {"broker", offsetof(tw_compose_source, broker), TW_COMPOSE_MQTT},
      {"url", offsetof(tw_compose_source, url), TW_COMPOSE_RTSP},
  };
  bool known_kind = json_is_string(json_object_get(v, "kind"));
  for (size_t i = 0; i < sizeof str / sizeof str[0]; i++) {
    json_t *x = json_object_get(v, str[i].key);
    if (x != NULL && !json_is_string(x)) {
      tw__cdiag(c, false, "type", x, NULL, "source '%s': %s must be a string",
                s->name, str[i].key);
      continue;
    }
    if (x != NULL)
      *(const char **)((char *)&s->pub + str[i].off) = json_string_value(x);
    else if (known_kind && (int)s->pub.kind == str[i].need)
      tw__cdiag(c, false, "missing", v, NULL, "source '%s' (%s) needs %s",
                s->name, source_kinds[s->pub.kind], str[i].key);
  }
  if (known_kind &&
      (s->pub.kind == TW_COMPOSE_KAFKA || s->pub.kind == TW_COMPOSE_MQTT) &&
      json_object_get(v, "topic") == NULL)
    tw__cdiag(c, false, "missing", v, NULL, "source '%s' (%s) needs topic",
              s->name, source_kinds[s->pub.kind]);
  json_t *ck = json_object_get(v, "clock");
  if (ck != NULL && (!json_is_string(ck) ||
                     (strcmp(json_string_value(ck), "source") != 0 &&
                      strcmp(json_string_value(ck), "estimated") != 0)))
    tw__cdiag(c, false, "value", ck, NULL,
              "source '%s': clock must be source or estimated", s->name);
  else if (ck != NULL)
    s->pub.clock = json_string_value(ck);
  json_t *t = json_object_get(v, "time");
  if (t == NULL)
    return;
  json_t *f = json_object_get(t, "field"), *u = json_object_get(t, "unit");
  static const char *const units[] = {"ns", "us", "ms", "s", NULL};
  size_t k = 0;
  while (json_is_string(u) && units[k] != NULL &&
         strcmp(units[k], json_string_value(u)) != 0)
    k++;
  if (!json_is_object(t) || !json_is_string(f)) {
    tw__cdiag(c, false, "type", t, NULL,
              "source '%s': time must be {field: NAME, unit: ns|us|ms|s}",
              s->name);
  } else if (u != NULL && (!json_is_string(u) || units[k] == NULL)) {
    tw__cdiag(c, false, "value", u, NULL,
              "source '%s': time.unit must be ns, us, ms or s", s->name);
  } else {
    static const char *const tkeys[] = {"field", "unit", NULL};
    tw__ckeys(c, t, "time", tkeys);
    s->pub.time_field = json_string_value(f);
    s->pub.time_unit = u != NULL ? json_string_value(u) : "s";
  }
}

static int load_sources(tw_compose *c) {
  json_t *srcs = json_object_get(c->root, "sources");
  if (srcs == NULL)
    return TW_OK;
  if (!json_is_object(srcs)) {
    tw__cdiag(c, false, "type", srcs, NULL,
              "sources must be a mapping of name: {kind, ...}");
    return TW_OK;
  }
  size_t n = json_object_size(srcs);
  c->sources = tw_calloc(n ? n : 1, sizeof *c->sources);
  if (c->sources == NULL)
    return OOM(c);
  const char *key;
  json_t *v;
  json_object_foreach(srcs, key, v) {
    if (!valid_name(key)) {
      tw__cdiag(c, false, "value", srcs, key,
                "source name '%s' is not a name ([A-Za-z_][A-Za-z0-9_]*)", key);
      continue;
    }
    if (find_comp(c, key, strlen(key)) != NULL) {
      tw__cdiag(c, false, "value", srcs, key,
                "'%s' names both a component and a source", key);
      continue;
    }
    if (!json_is_object(v)) {
      tw__cdiag(c, false, "type", v, NULL,
                "source '%s' must be a mapping {kind, ...}", key);
      continue;
    }
    static const char *const keys[] = {
        "kind",        "path",  "topics",      "brokers",
        "group",       "topic", "broker",      "url",
        "description", "time",  "dead_letter", "schema_registry",
        NULL};
    tw__ckeys(c, v, "a source", keys);
    tw__csource *s = &c->sources[c->nsources++];
    s->name = key;
    s->spec = v;
    s->pub.name = key;
    json_t *kind = json_object_get(v, "kind");
    size_t i = 0;
    while (json_is_string(kind) && source_kinds[i] != NULL &&
           strcmp(source_kinds[i], json_string_value(kind)) != 0)
      i++;
    if (kind == NULL) {
      tw__cdiag(c, false, "missing", v, NULL, "source '%s' has no kind", key);
    } else if (!json_is_string(kind) || source_kinds[i] == NULL) {
      char dym[96];
      tw__cdiag(c, false, "value", kind, NULL,
                "source '%s': kind must be mcap, kafka, mqtt or rtsp%s", key,
                json_is_string(kind)
                    ? tw__did_you_mean(json_string_value(kind), source_kinds,
                                       SIZE_MAX, dym, sizeof dym)
                    : "");
    } else {
      s->pub.kind = (tw_compose_source_kind)i;
    }
    json_t *path = json_object_get(v, "path");
    if (s->pub.kind == TW_COMPOSE_MCAP && json_is_string(kind) &&
        source_kinds[i] != NULL && path == NULL)
      tw__cdiag(c, false, "missing", v, NULL, "source '%s' (mcap) needs a path",
                key);
    if (path != NULL && !json_is_string(path))
      tw__cdiag(c, false, "type", path, NULL,
                "source '%s': path must be a string", key);
    if (json_is_string(path)) {
      const char *p = json_string_value(path);
      tw_buf b = TW_BUF_INIT;
      if ((p[0] == '/' ? tw_buf_printf(&b, "%s", p)
                       : tw_buf_printf(&b, "%s/%s", c->dir, p)) != TW_OK)
        return OOM(c);
      s->path = b.data;
      s->pub.path = s->path;
    }
    live_settings(c, s, v);
    json_t *topics = json_object_get(v, "topics");
    if (topics != NULL && !json_is_object(topics)) {
      tw__cdiag(c, false, "type", topics, NULL,
                "source '%s': topics must be a mapping of topic: {unit, "
                "size, dtype}",
                key);
    } else if (topics != NULL) {
      const char *tk;
      json_t *tv;
      json_object_foreach(topics, tk, tv) {
        tw__ctopic scratch;
        memset(&scratch, 0, sizeof scratch);
        declared_topic(c, s, tk, tv, &scratch, true);
      }
    }
  }
  return TW_OK;
}

/* What the recording says of a topic: twin.unit and twin.size of its
 * channel (port channels carry them). */
static bool recorded_topic(tw_compose *c, tw__csource *s, tw__ctopic *t,
                           json_t *at) {
  if (s->pub.kind != TW_COMPOSE_MCAP || s->path == NULL)
    return false;
  tw_trace_reader *r = NULL;
  tw_err e;
  tw_err_init(&e);
  struct stat st;
  if (stat(s->path, &st) == 0 && !S_ISREG(st.st_mode))
    (void)tw_err_set(&e, TW_EINVAL, "%s: not a regular file", s->path);
  if (e.code != TW_OK || tw_trace_reader_open(s->path, NULL, &r, &e) != TW_OK) {
    tw__cdiag(c, false, "source", at, NULL,
              "source '%s': cannot read the recording to learn '%s': %s",
              s->name, t->topic, e.msg);
    return false;
  }
  const tw_trace_channel *ch = tw_trace_reader_channel_find(r, t->topic);
  bool ok = false;
  if (ch == NULL) {
    tw__cdiag(c, false, "unknown-source", at, NULL,
              "source '%s' has no topic '%s' in %s", s->name, t->topic,
              s->path);
  } else {
    const char *unit = NULL, *size = NULL;
    for (size_t i = 0; i < ch->n_metadata; i++) {
      if (strcmp(ch->metadata[i].key, "twin.unit") == 0)
        unit = ch->metadata[i].value;
      if (strcmp(ch->metadata[i].key, "twin.size") == 0)
        size = ch->metadata[i].value;
    }
    if (size == NULL) {
      tw__cdiag(c, false, "missing", at, NULL,
                "source '%s': the channel '%s' does not say its size "
                "(declare it under sources.%s.topics)",
                s->name, t->topic, s->name);
    } else {
      t->size = (size_t)strtoull(size, NULL, 10);
      t->unit = tw_strdup(unit != NULL ? unit : "");
      ok = t->unit != NULL && t->size > 0;
    }
  }
  tw_trace_reader_close(r);
  return ok;
}

/* The topic of source s named in a connection, added on first use. */
static tw__ctopic *source_topic(tw_compose *c, tw__csource *s,
                                const char *topic, json_t *at) {
  for (size_t i = 0; i < s->ntopics; i++)
    if (strcmp(s->topics[i].topic, topic) == 0)
      return &s->topics[i];
  if (s->ntopics == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 4;
    tw__ctopic *p = tw_reallocarray(s->topics, cap, sizeof *p);
    char **m = tw_reallocarray(s->map, cap, sizeof *m);
    if (p != NULL)
      s->topics = p;
    if (m != NULL)
      s->map = m;
    if (p == NULL || m == NULL) {
      (void)OOM(c);
      return NULL;
    }
    s->cap = cap;
  }
  tw__ctopic *t = &s->topics[s->ntopics];
  memset(t, 0, sizeof *t);
  t->topic = tw_strdup(topic);
  /* The graph input: SOURCE.TOPIC with slashes as dots. */
  tw_buf in = TW_BUF_INIT;
  int rc = tw_buf_printf(&in, "%s", s->name);
  for (const char *p = topic; rc == TW_OK && *p != '\0'; p++) {
    char ch = *p == '/' ? '.' : *p;
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
    if (ch == '.' && in.len > 0 && in.data[in.len - 1] == '.')
      continue;
    rc = tw_buf_append(&in, ok ? &ch : "_", 1);
  }
  if (rc == TW_OK && in.len > 0 && in.data[in.len - 1] == '.')
    in.data[--in.len] = '\0';
  t->input = in.data;
  tw_buf m = TW_BUF_INIT;
  if (rc == TW_OK)
    rc = tw_buf_printf(&m, "%s=%s", t->input, topic);
  s->map[s->ntopics] = m.data;
  s->ntopics++;
  s->pub.map = (const char *const *)s->map;
  s->pub.nmap = s->ntopics;
  if (rc != TW_OK || t->topic == NULL || t->input == NULL) {
    (void)OOM(c);
    return NULL;
  }
  json_t *decl = json_object_get(json_object_get(s->spec, "topics"), topic);
  if (decl != NULL) {
    declared_topic(c, s, topic, decl, t, false);
    return t;
  }
  t->known = recorded_topic(c, s, t, at);
  return t;
}

/* --- Connections -------------------------------------------------------- */

/* An end of a connection. */
typedef struct end {
  tw__ccomp *comp;     /* or NULL for a source */
  tw__ctopic *topic;   /* a source's topic */
  const tw_port *port; /* the component's port */
  size_t index;        /* of port in its list */
  const char *unit;
  size_t size;
  tw_dtype dtype;
} end;

/* Resolves "comp.port" (or, as a source, "source./topic") of connection
 * value v. want_output: the from side. */
static bool resolve(tw_compose *c, json_t *v, bool want_output, end *e) {
  memset(e, 0, sizeof *e);
  const char *side = want_output ? "from" : "to";
  if (!json_is_string(v)) {
    tw__cdiag(c, false, "type", v, NULL,
              "%s must be a string COMPONENT.PORT, not %s", side,
              v != NULL ? type_name(v) : "missing");
    return false;
  }
  const char *s = json_string_value(v);
  const char *dot = strchr(s, '.');
  if (dot == NULL || dot == s || dot[1] == '\0') {
    tw__cdiag(c, false, "value", v, NULL,
              "%s '%s' must be COMPONENT.PORT (or SOURCE./TOPIC)", side, s);
    return false;
  }
  size_t n = (size_t)(dot - s);
  const char *port = dot + 1;
  tw__csource *src = find_source(c, s, n);
  if (src != NULL) {
    if (!want_output) {
      tw__cdiag(c, false, "causality", v, NULL,
                "to '%s': a source cannot be fed; connect it from", s);
      return false;
    }
    e->topic = source_topic(c, src, port, v);
    if (e->topic == NULL || !e->topic->known)
      return false;
    e->unit = e->topic->unit;
    e->size = e->topic->size;
    e->dtype = e->topic->dtype;
    return true;
  }
  tw__ccomp *k = find_comp(c, s, n);
  if (k == NULL) {
    char name[MAX_NAME + 1], dym[96];
    (void)snprintf(name, sizeof name, "%.*s",
                   (int)(n > MAX_NAME ? MAX_NAME : n), s);
    tw__cdiag_at(c, "unknown-component", v, 0,
                 "%s '%s': no component or source '%s'%s", side, s, name,
                 dym_names(c, name, dym, sizeof dym));
    return false;
  }
  k->used = true;
  if (k->desc == NULL)
    return false; /* its model failed: reported */
  const tw_block_desc *d = k->desc;
  const tw_port *ports = want_output ? d->outputs : d->inputs;
  size_t np = want_output ? d->noutputs : d->ninputs;
  size_t i;
  if (find_port(ports, np, port, &i)) {
    e->comp = k;
    e->port = &ports[i];
    e->index = i;
    e->unit = ports[i].unit != NULL ? ports[i].unit : "";
    e->size = ports[i].size;
    e->dtype = ports[i].dtype;
    return true;
  }
  const tw_port *other = want_output ? d->inputs : d->outputs;
  size_t no = want_output ? d->ninputs : d->noutputs;
  if (find_port(other, no, port, &i)) {
    tw__cdiag_at(c, "causality", v, n + 1,
                 "%s '%s': '%s' is an %s of '%s' (%s); a connection goes "
                 "from an output to an input",
                 side, s, port, want_output ? "input" : "output", k->name,
                 want_output ? "input to input" : "output to output");
    return false;
  }
  if (find_port(d->params, d->nparams, port, &i)) {
    tw__cdiag_at(c, "causality", v, n + 1,
                 "%s '%s': '%s' is a parameter of '%s'; set it under "
                 "parameters:",
                 side, s, port, k->name);
    return false;
  }
  if (find_port(d->state, d->nstate, port, &i)) {
    tw__cdiag_at(c, "causality", v, n + 1,
                 "%s '%s': '%s' is the state of '%s', not a port; connect "
                 "an output",
                 side, s, port, k->name);
    return false;
  }
  char dym[96];
  tw__cdiag_at(c, "unknown-port", v, n + 1,
               "%s '%s': component '%s' (%s) has no %s '%s'%s", side, s,
               k->name, d->kind, want_output ? "output" : "input", port,
               dym_ports(ports, np, port, dym, sizeof dym));
  return false;
}

/* The IR name of an end: "comp.port" or "inputs.SOURCE.TOPIC". */
static int end_ref(const end *e, tw_buf *b) {
  if (e->topic != NULL)
    return tw_buf_printf(b, "inputs.%s", e->topic->input);
  return tw_buf_printf(b, "%s.%s", e->comp->name, e->port->name);
}

static int add_conn(tw_compose *c, json_t *conns, const char *from,
                    const char *to, json_t *at) {
  json_t *o = json_pack("{s:s, s:s}", "from", from, "to", to);
  if (o == NULL || json_array_append_new(conns, o) != 0)
    return OOM(c);
  mark(c, o, at);
  mark(c, json_object_get(o, "from"), at);
  mark(c, json_object_get(o, "to"), at);
  return TW_OK;
}

static int connect(tw_compose *c, json_t *v, json_t *blocks, json_t *conns) {
  if (!json_is_object(v)) {
    tw__cdiag(c, false, "type", v, NULL,
              "a connection must be a mapping {from, to}");
    return TW_OK;
  }
  static const char *const keys[] = {"from",   "to",          "scale",
                                     "offset", "description", NULL};
  tw__ckeys(c, v, "a connection", keys);
  json_t *fv = json_object_get(v, "from"), *tv = json_object_get(v, "to");
  if (fv == NULL || tv == NULL) {
    tw__cdiag(c, false, "missing", v, NULL, "a connection needs from and to");
    return TW_OK;
  }
  static const char *const sides[] = {"from", "to", "scale", "offset"};
  for (int i = 0; i < 4; i++) {
    json_t *x = json_object_get(v, sides[i]);
    bool good = i < 2 ? json_is_string(x)
                      : x == NULL || json_is_number(x) || json_is_string(x);
    if (!good) { /* placed by its key: true and null have no place */
      tw__cdiag(c, false, "type", v, sides[i], "%s must be %s, not %s",
                sides[i], i < 2 ? "a string COMPONENT.PORT" : "a number",
                type_name(x));
      return TW_OK;
    }
  }
  end a, b;
  bool ok = resolve(c, fv, true, &a);
  ok = resolve(c, tv, false, &b) && ok;
  if (!ok)
    return c->err->code;
  const char *fs = json_string_value(fv), *ts = json_string_value(tv);
  if (b.comp->fed[b.index]) {
    tw__cdiag(
        c, false, "causality", tv, NULL,
        "input '%s' is fed twice (also by the connection from %s)", ts,
        json_string_value(json_object_get(b.comp->fed_by[b.index], "from")));
    return TW_OK;
  }
  b.comp->fed[b.index] = true;
  b.comp->fed_by[b.index] = v;
  if (a.size != b.size) {
    tw__cdiag(c, false, "value", tv, NULL,
              "size mismatch: %s has %zu values, %s has %zu", fs, a.size, ts,
              b.size);
    return TW_OK;
  }
  if (a.dtype != b.dtype) {
    tw__cdiag(c, false, "value", tv, NULL, "dtype mismatch: %s is %s, %s is %s",
              fs, tw_dtype_name(a.dtype), ts, tw_dtype_name(b.dtype));
    return TW_OK;
  }
  /* Units: equal dimensions convert; a side without a unit is a signal
   * that takes any. */
  double scale = 1, shift = 0;
  if (a.unit[0] != '\0' && b.unit[0] != '\0') {
    tw_unit ua, ub;
    tw_err e;
    tw_err_init(&e);
    if (tw_unit_parse(a.unit, &ua, &e) != TW_OK ||
        tw_unit_parse(b.unit, &ub, &e) != TW_OK) {
      tw__cdiag(c, false, "unit", v, NULL, "connection %s -> %s: %s", fs, ts,
                e.msg);
      return TW_OK;
    }
    if (tw_unit_conversion(&ua, &ub, &scale, &shift, &e) != TW_OK) {
      char da[64], db[64];
      (void)tw_unit_dimension_format(&ua, da, sizeof da);
      (void)tw_unit_dimension_format(&ub, db, sizeof db);
      tw__cdiag(c, false, "unit", tv, NULL,
                "unit mismatch: %s is in %s (%s), %s in %s (%s)", fs, a.unit,
                da, ts, b.unit, db);
      return TW_OK;
    }
  }
  json_t *sv = json_object_get(v, "scale");
  json_t *ov = json_object_get(v, "offset");
  double k = 1, off = 0;
  if (sv != NULL && !quantity(c, sv, NULL, "scale", &k))
    return TW_OK;
  if (ov != NULL && !quantity(c, ov, b.unit, "offset", &off))
    return TW_OK;
  /* y = k * (scale * u + shift) + off, in the receiver's unit. */
  double gain = k * scale, bias = k * shift + off;
  tw_buf from = TW_BUF_INIT, to = TW_BUF_INIT;
  int rc = end_ref(&a, &from);
  if (rc == TW_OK)
    rc = end_ref(&b, &to);
  if (rc == TW_OK && gain == 1 && bias == 0) {
    rc = add_conn(c, conns, from.data, to.data, v);
  } else if (rc == TW_OK) {
    /* A conversion block between them. */
    char name[32];
    do
      (void)snprintf(name, sizeof name, "_conv%u", ++c->nconv);
    while (find_comp(c, name, strlen(name)) != NULL);
    json_t *blk =
        bias == 0 ? json_pack("{s:s, s:I, s:{s:f}}", "model", "builtin:gain",
                              "size", (json_int_t)a.size, "params", "k", gain)
                  : json_pack("{s:s, s:I, s:{s:f, s:f}}", "model",
                              "builtin:affine", "size", (json_int_t)a.size,
                              "params", "k", gain, "b", bias);
    if (blk == NULL || json_object_set_new(blocks, name, blk) != 0)
      rc = TW_ENOMEM;
    else
      mark(c, blk, v);
    tw_buf u = TW_BUF_INIT, y = TW_BUF_INIT;
    if (rc == TW_OK)
      rc = tw_buf_printf(&u, "%s.u", name);
    if (rc == TW_OK)
      rc = tw_buf_printf(&y, "%s.y", name);
    if (rc == TW_OK)
      rc = add_conn(c, conns, from.data, u.data, v);
    if (rc == TW_OK)
      rc = add_conn(c, conns, y.data, to.data, v);
    tw_buf_fini(&u);
    tw_buf_fini(&y);
  }
  tw_buf_fini(&from);
  tw_buf_fini(&to);
  return rc == TW_OK ? TW_OK : OOM(c);
}

/* --- Outputs and inputs ------------------------------------------------ */

static int ir_outputs(tw_compose *c, json_t *ir) {
  json_t *outs = json_object_get(c->root, "outputs");
  if (outs == NULL)
    return TW_OK;
  if (!json_is_array(outs)) {
    tw__cdiag(c, false, "type", outs, NULL,
              "outputs must be a sequence of COMPONENT.PORT");
    return TW_OK;
  }
  json_t *o = json_object();
  if (o == NULL || json_object_set_new(ir, "outputs", o) != 0)
    return OOM(c);
  mark(c, o, outs);
  for (size_t i = 0; i < json_array_size(outs); i++) {
    json_t *v = json_array_get(outs, i);
    end e;
    if (!resolve(c, v, true, &e))
      continue;
    if (e.topic != NULL) {
      tw__cdiag(c, false, "value", v, NULL,
                "output '%s' names a source; outputs are components' ports",
                json_string_value(v));
      continue;
    }
    if (json_object_get(o, json_string_value(v)) != NULL) {
      tw__cdiag(c, false, "value", v, NULL, "output '%s' is listed twice",
                json_string_value(v));
      continue;
    }
    json_t *r = json_string(json_string_value(v));
    if (r == NULL || json_object_set_new(o, json_string_value(v), r) != 0)
      return OOM(c);
    mark(c, r, v);
  }
  return TW_OK;
}

static int ir_inputs(tw_compose *c, json_t *ir) {
  json_t *ins = NULL;
  for (size_t i = 0; i < c->nsources; i++) {
    tw__csource *s = &c->sources[i];
    for (size_t t = 0; t < s->ntopics; t++) {
      const tw__ctopic *tp = &s->topics[t];
      if (!tp->known)
        continue;
      if (ins == NULL) {
        ins = json_object();
        if (ins == NULL || json_object_set_new(ir, "inputs", ins) != 0)
          return OOM(c);
      }
      json_t *d = json_pack("{s:I, s:s}", "size", (json_int_t)tp->size, "unit",
                            tp->unit);
      if (d != NULL && tp->dtype != TW_F64 &&
          json_object_set_new(d, "dtype",
                              json_string(tw_dtype_name(tp->dtype))) != 0) {
        json_decref(d);
        d = NULL;
      }
      if (d == NULL || json_object_set_new(ins, tp->input, d) != 0)
        return OOM(c);
    }
  }
  return TW_OK;
}

/* --- The graph's diagnostics ------------------------------------------- */

/* The graph loader's lines ("FILE:LINE:COL: error: MSG") as compose
 * diagnostics, with a code from what they say. */
static void graph_diags(tw_compose *c, const tw_buf *lines, const char *fixed) {
  const char *s = lines->data != NULL ? lines->data : "";
  while (*s != '\0') {
    const char *nl = strchr(s, '\n');
    size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);
    char line[1024];
    (void)snprintf(line, sizeof line, "%.*s", (int)(n < 1023 ? n : 1023), s);
    s += n + (nl != NULL);
    const char *e = strstr(line, ": error: ");
    if (e == NULL)
      continue;
    unsigned l = 0, col = 0;
    /* FILE may hold colons: parse LINE:COL right before ": error: ". */
    const char *p = e;
    int seen = 0;
    while (p > line && seen < 2) {
      p--;
      if (*p == ':')
        seen++;
    }
    if (seen == 2)
      (void)sscanf(p, ":%u:%u", &l, &col);
    const char *msg = e + 9;
    const char *code = fixed != NULL                     ? fixed
                       : strstr(msg, "algebraic loop")   ? "algebraic-loop"
                       : strstr(msg, "unit")             ? "unit"
                       : strstr(msg, "period")           ? "rate"
                       : strstr(msg, "digest")           ? "digest"
                       : strstr(msg, "sha256")           ? "digest"
                       : strstr(msg, "unknown model")    ? "model"
                       : strstr(msg, "does not load")    ? "model"
                       : strstr(msg, "cannot open")      ? "model"
                       : strstr(msg, "wasm")             ? "model"
                       : strstr(msg, "descriptor")       ? "model"
                       : strstr(msg, "has no parameter") ? "unknown-parameter"
                       : strstr(msg, "outside")          ? "value"
                                                         : "graph";
    char text[1100];
    if (strncmp(msg, "block '", 7) == 0) /* the twin calls them components */
      (void)snprintf(text, sizeof text, "component '%s", msg + 7);
    else
      (void)snprintf(text, sizeof text, "%s", msg);
    tw__compose_add(c, l, col, code, text);
  }
}

/* Builds the graph of doc; TW_OK with diagnostics on a graph error. */
static int build(tw_compose *c, const tw_json_doc *doc, const char *code,
                 tw_graph **out) {
  tw_buf lines = TW_BUF_INIT;
  tw_graph_opts go;
  memset(&go, 0, sizeof go);
  go.ctx = c->opts.ctx;
  go.engine = c->opts.engine;
  go.limits = c->opts.limits;
  go.store = c->opts.store;
  tw_err e;
  tw_err_init(&e);
  int rc = tw_graph_from_doc(doc, c->dir, &go, &lines, out, &e);
  if (rc == TW_EVALIDATE) {
    graph_diags(c, &lines, code);
    rc = TW_OK;
  } else if (rc != TW_OK) {
    rc = tw_err_set(c->err, rc, "%s", e.msg);
  }
  tw_buf_fini(&lines);
  return rc;
}

/* Pass 1 for component k: a graph of it alone, which loads its model and
 * gives its descriptor (k->desc, owned by k->g); a model that does not
 * load is reported where the twin names it. */
static int component_graph(tw_compose *c, tw__ccomp *k, json_t *ir) {
  json_t *block = json_object_get(json_object_get(ir, "blocks"), k->name);
  if (block == NULL)
    return TW_OK; /* reported */
  json_t *root = json_pack("{s:i, s:s, s:O, s:{s:O}}", "graph",
                           TW_GRAPH_VERSION, "name", k->name, "dt",
                           json_object_get(ir, "dt"), "blocks", k->name, block);
  tw_json_doc *doc = NULL;
  const tw__cdoc *f = &c->files[0];
  if (root == NULL ||
      tw_json_doc_new(root, f->text, f->len, f->path, &doc) != TW_OK) {
    json_decref(root);
    return OOM(c);
  }
  size_t off;
  for (size_t i = 0; i < c->npairs; i++)
    if (tw__coffset(c, c->pairs[i].y, &off))
      (void)tw_json_doc_mark(doc, c->pairs[i].ir, off);
  int rc = build(c, doc, "model", &k->g);
  tw_json_doc_free(doc);
  if (rc != TW_OK || k->g == NULL)
    return rc;
  k->desc = tw_graph_block_desc(k->g, 0);
  size_t ni = k->desc->ninputs;
  k->fed = tw_calloc(ni ? ni : 1, sizeof *k->fed);
  k->fed_by = tw_calloc(ni ? ni : 1, sizeof(json_t *));
  if (k->fed == NULL || k->fed_by == NULL)
    return OOM(c);
  return TW_OK;
}

/* --- The twin ------------------------------------------------------------ */

static int header(tw_compose *c, json_t *ir) {
  static const char *const keys[] = {"twin",        "version",    "dt",
                                     "description", "components", "sources",
                                     "connections", "outputs",    "profiles",
                                     "calibrate",   NULL};
  tw__ckeys(c, c->root, "a twin", keys);
  json_t *name = json_object_get(c->root, "twin");
  if (name == NULL)
    tw__cdiag(c, false, "missing", c->root, NULL,
              "a twin needs a name (twin: NAME)");
  else if (!json_is_string(name) || !valid_name(json_string_value(name)))
    tw__cdiag(c, false, "value", name, NULL,
              "twin must be a name ([A-Za-z_][A-Za-z0-9_]*, up to 64)");
  else if ((c->name = tw_strdup(json_string_value(name))) == NULL)
    return OOM(c);
  json_t *ver = json_object_get(c->root, "version");
  if (ver == NULL)
    tw__cdiag(c, false, "missing", c->root, NULL,
              "a twin needs its format version (version: %d)",
              TW_COMPOSE_VERSION);
  else if (!json_is_integer(ver) ||
           json_integer_value(ver) != TW_COMPOSE_VERSION)
    tw__cdiag(c, false, "value", ver, NULL,
              "version must be %d (the format this reader knows)",
              TW_COMPOSE_VERSION);
  json_t *dt = json_object_get(c->root, "dt");
  c->dt = 0;
  if (dt == NULL)
    tw__cdiag(c, false, "missing", c->root, NULL,
              "a twin needs its base step (dt: 1 ms)");
  else if (!seconds(c, dt, "dt", 1, &c->dt))
    c->dt = 0;
  /* (set_new takes its value, NULL included, whatever happens) */
  if (json_object_set_new(ir, "graph", json_integer(TW_GRAPH_VERSION)) != 0 ||
      json_object_set_new(ir, "name",
                          json_string(c->name != NULL ? c->name : "twin")) ||
      json_object_set_new(ir, "dt", json_real(c->dt > 0 ? c->dt : 1)) != 0)
    return OOM(c);
  json_t *n = json_object_get(ir, "name"), *d = json_object_get(ir, "dt");
  mark(c, n, name);
  mark(c, d, dt);
  return TW_OK;
}

int tw__compose_compile(tw_compose *c) {
  json_t *ir = json_object();
  if (ir == NULL)
    return OOM(c);
  const tw__cdoc *f = &c->files[0];
  if (tw_json_doc_new(ir, f->text, f->len, f->path, &c->ir_doc) != TW_OK) {
    json_decref(ir);
    return OOM(c);
  }
  c->ir = ir;
  int rc = header(c, ir);
  json_t *comps = json_object_get(c->root, "components");
  if (rc == TW_OK && comps == NULL) {
    tw__cdiag(c, false, "missing", c->root, NULL,
              "a twin needs components (components: {NAME: {model: ...}})");
    return TW_OK;
  }
  if (rc == TW_OK && (!json_is_object(comps) || json_object_size(comps) == 0)) {
    tw__cdiag(c, false, "type", comps, NULL,
              "components must be a mapping of name: {model, ...} with at "
              "least one");
    return TW_OK;
  }
  if (rc != TW_OK)
    return rc;
  /* Pass 1: the components alone. */
  size_t n = json_object_size(comps);
  json_t *blocks = json_object();
  if (blocks == NULL || json_object_set_new(ir, "blocks", blocks) != 0)
    return OOM(c);
  c->comps = tw_calloc(n, sizeof *c->comps);
  if (c->comps == NULL)
    return OOM(c);
  mark(c, blocks, comps);
  const char *key;
  json_t *v;
  json_object_foreach(comps, key, v) {
    if (!valid_name(key)) {
      tw__cdiag(c, false, "value", comps, key,
                "component name '%s' is not a name ([A-Za-z_][A-Za-z0-9_]*)",
                key);
      continue;
    }
    if (!json_is_object(v)) {
      tw__cdiag(c, false, "type", v, NULL,
                "component '%s' must be a mapping {model, ...}, not %s", key,
                type_name(v));
      continue;
    }
    tw__ccomp *k = &c->comps[c->ncomps++];
    k->name = key;
    k->spec = v;
    k->model = json_object_get(v, "model");
    k->block = SIZE_MAX;
    if ((rc = ir_block(c, k, blocks)) != TW_OK)
      return rc;
  }
  if ((rc = load_sources(c)) != TW_OK)
    return rc;
  for (size_t i = 0; i < c->ncomps && rc == TW_OK; i++)
    rc = component_graph(c, &c->comps[i], ir);
  if (rc != TW_OK)
    return rc;
  for (size_t i = 0; i < c->ncomps; i++) /* the failed ones are reported */
    if (c->comps[i].g == NULL)
      (void)json_object_del(blocks, c->comps[i].name);
  /* Pass 2: parameters, connections, outputs against the descriptors. */
  for (size_t i = 0; i < c->ncomps && rc == TW_OK; i++)
    rc = ir_params(c, &c->comps[i], json_object_get(blocks, c->comps[i].name));
  if (rc != TW_OK)
    return rc;
  json_t *conns = json_array();
  if (conns == NULL || json_object_set_new(ir, "connections", conns) != 0)
    return OOM(c);
  json_t *cl = json_object_get(c->root, "connections");
  if (cl != NULL && !json_is_array(cl))
    tw__cdiag(c, false, "type", cl, NULL,
              "connections must be a sequence of {from, to}");
  else
    mark(c, conns, cl);
  for (size_t i = 0;
       rc == TW_OK && json_is_array(cl) && i < json_array_size(cl); i++)
    rc = connect(c, json_array_get(cl, i), blocks, conns);
  if (rc == TW_OK)
    rc = ir_outputs(c, ir);
  if (rc == TW_OK)
    rc = ir_inputs(c, ir);
  /* Inputs without a default must be fed. */
  for (size_t i = 0; rc == TW_OK && i < c->ncomps; i++) {
    const tw__ccomp *k = &c->comps[i];
    const tw_block_desc *d = k->desc;
    if (d == NULL || d->input_required == NULL)
      continue;
    for (size_t p = 0; p < d->ninputs; p++)
      if (d->input_required[p] && !k->fed[p])
        tw__cdiag(c, false, "causality", k->spec, NULL,
                  "input '%s.%s' is not connected and its model gives it no "
                  "default",
                  k->name, d->inputs[p].name);
  }
  for (size_t i = 0; rc == TW_OK && i < c->ncomps; i++)
    if (!c->comps[i].used && c->ncomps > 1 && c->comps[i].desc != NULL)
      tw__cdiag(c, true, "unused", c->comps[i].spec, NULL,
                "component '%s' is not connected to anything",
                c->comps[i].name);
  if (rc != TW_OK)
    return rc;
  /* The whole graph, also with errors (what is left of the twin is
   * consistent: failed components and connections are not in it), for
   * what only it checks: algebraic loops. */
  size_t before = c->diags->errors;
  if (before > 0 && json_object_size(blocks) == 0)
    return TW_OK; /* nothing left to check */
  rc = build(c, c->ir_doc, NULL, &c->graph);
  if (rc == TW_OK && before > 0) {
    tw_graph_free(c->graph);
    c->graph = NULL;
  }
  if (rc == TW_OK)
    rc = tw__compose_calibrate(c);
  return rc;
}
