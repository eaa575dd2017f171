/*
 * calibrate.c - the calibrate: section of twin-compose: which parameters
 * `twin calibrate` fits (with bounds, regularisation and known values),
 * the loss between twin outputs and recorded channels, the recordings and
 * the optimiser's settings. Checked against the compiled graph: every
 * name must resolve, bounds must hold the parameter's value, weights must
 * be finite and >= 0; problems are diagnostics with their place in the
 * YAML, like the rest of the twin.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "compose_int.h"
#include "twin/alloc.h"

#define OOM(c) (tw_err_set((c)->err, TW_ENOMEM, "out of memory"))

/* The component of a parameter pattern "COMP.PARAM" / "COMP.*". */
static tw__ccomp *comp_of(tw_compose *c, const char *name, size_t len) {
  for (size_t i = 0; i < c->ncomps; i++)
    if (strlen(c->comps[i].name) == len &&
        strncmp(c->comps[i].name, name, len) == 0)
      return &c->comps[i];
  return NULL;
}

/* The unit of parameter port "COMP.PARAM" from its component's model. */
static const char *param_unit(tw_compose *c, const char *port) {
  const char *dot = strchr(port, '.');
  if (dot == NULL)
    return "";
  tw__ccomp *k = comp_of(c, port, (size_t)(dot - port));
  if (k == NULL || k->desc == NULL)
    return "";
  for (size_t i = 0; i < k->desc->nparams; i++)
    if (strcmp(k->desc->params[i].name, dot + 1) == 0)
      return k->desc->params[i].unit != NULL ? k->desc->params[i].unit : "";
  return "";
}

/* The bounds the twin gives parameter port "COMP.PARAM"
 * (parameters: {min, max}), from the compiled IR. */
static void ir_bounds(tw_compose *c, const char *port, double *lo, double *hi) {
  const char *dot = strchr(port, '.');
  if (dot == NULL || c->ir == NULL)
    return;
  char comp[128];
  size_t n = (size_t)(dot - port);
  if (n >= sizeof comp)
    return;
  memcpy(comp, port, n);
  comp[n] = '\0';
  json_t *p = json_object_get(
      json_object_get(json_object_get(json_object_get(c->ir, "blocks"), comp),
                      "params"),
      dot + 1);
  json_t *mn = json_object_get(p, "min"), *mx = json_object_get(p, "max");
  if (json_is_number(mn))
    *lo = json_number_value(mn);
  if (json_is_number(mx))
    *hi = json_number_value(mx);
}

/* A path of the section, relative to the file it is in. */
static int path_of(tw_compose *c, json_t *v, const char *what, char **out) {
  if (v == NULL)
    return TW_OK;
  if (!json_is_string(v) || json_string_length(v) == 0) {
    tw__cdiag(c, false, "type", v, NULL, "calibrate.%s must be a path", what);
    return TW_OK;
  }
  const char *p = json_string_value(v);
  tw_buf b = TW_BUF_INIT;
  int rc = p[0] == '/' ? TW_OK : tw__cdir_of(c, v, &b);
  if (rc == TW_OK)
    rc = tw_buf_printf(&b, "%s%s", p[0] == '/' ? "" : "/", p);
  if (rc != TW_OK) {
    tw_buf_fini(&b);
    return OOM(c);
  }
  *out = b.data;
  return TW_OK;
}

static bool positive(tw_compose *c, json_t *v, const char *what, double *out) {
  if (v == NULL)
    return true;
  if (!json_is_number(v) || !(json_number_value(v) > 0) ||
      !isfinite(json_number_value(v))) {
    tw__cdiag(c, false, "value", v, NULL,
              "calibrate.%s must be a finite number > 0", what);
    return false;
  }
  *out = json_number_value(v);
  return true;
}

/* Adds graph parameter port i (name) with the entry's settings, unless
 * it is there already (an explicit entry wins over a wildcard). */
static int add_param(tw_compose *c, const char *name, size_t *cap) {
  for (size_t i = 0; i < c->calib.nparams; i++)
    if (strcmp(c->cparams[i].name, name) == 0)
      return TW_OK;
  if (c->calib.nparams == *cap) {
    size_t n = *cap ? 2 * *cap : 8;
    tw_compose_calib_param *p = tw_reallocarray(c->cparams, n, sizeof *p);
    if (p != NULL)
      c->cparams = p;
    char **names = tw_reallocarray(c->cnames, n, sizeof *names);
    if (names != NULL)
      c->cnames = names;
    if (p == NULL || names == NULL)
      return OOM(c);
    *cap = n;
  }
  tw_compose_calib_param *p = &c->cparams[c->calib.nparams];
  memset(p, 0, sizeof *p);
  char *own = tw_strdup(name);
  if (own == NULL)
    return OOM(c);
  c->cnames[c->calib.nparams] = own;
  p->name = own;
  p->lower = -INFINITY;
  p->upper = INFINITY;
  ir_bounds(c, name, &p->lower, &p->upper);
  c->calib.nparams++;
  return TW_OK;
}

/* The graph parameter ports an entry names ("COMP.PARAM" or "COMP.*"):
 * their indices into c->cparams are first .. c->calib.nparams. */
static int expand(tw_compose *c, json_t *at, const char *key, size_t *cap,
                  size_t *first) {
  *first = c->calib.nparams;
  const char *dot = strchr(key, '.');
  if (dot == NULL || dot == key || dot[1] == '\0') {
    tw__cdiag(c, false, "value", at, key,
              "calibrate: '%s' is not a parameter (COMPONENT.PARAM or "
              "COMPONENT.*)",
              key);
    return TW_OK;
  }
  tw__ccomp *k = comp_of(c, key, (size_t)(dot - key));
  if (k == NULL) {
    tw__cdiag(c, false, "unknown-component", at, key,
              "calibrate: no component '%.*s'", (int)(dot - key), key);
    return TW_OK;
  }
  if (c->graph == NULL)
    return TW_OK; /* the twin has errors: nothing to resolve against */
  size_t n = tw_graph_nparam_ports(c->graph), hits = 0;
  bool all = strcmp(dot + 1, "*") == 0;
  size_t plen = (size_t)(dot - key) + 1;
  for (size_t i = 0; i < n; i++) {
    size_t size, off;
    const char *pn = tw_graph_param_name(c->graph, i, &size, &off);
    bool match = all ? strncmp(pn, key, plen) == 0 : strcmp(pn, key) == 0;
    if (!match)
      continue;
    hits++;
    int rc = add_param(c, pn, cap);
    if (rc != TW_OK)
      return rc;
  }
  if (hits == 0 && all)
    tw__cdiag(c, false, "unknown-parameter", at, key,
              "calibrate: component '%.*s' has no parameters", (int)(dot - key),
              key);
  else if (hits == 0)
    tw__cdiag(c, false, "unknown-parameter", at, key,
              "calibrate: no parameter '%s' in the twin", key);
  return TW_OK;
}

static int parameters(tw_compose *c, json_t *ps) {
  size_t cap = 0;
  if (ps == NULL) {
    tw__cdiag(c, false, "missing", json_object_get(c->root, "calibrate"), NULL,
              "calibrate needs parameters: {COMPONENT.PARAM: {min, max}}");
    return TW_OK;
  }
  if (!json_is_object(ps) || json_object_size(ps) == 0) {
    tw__cdiag(c, false, "type", ps, NULL,
              "calibrate.parameters must be a mapping of COMPONENT.PARAM: "
              "{min, max, l2} with at least one");
    return TW_OK;
  }
  /* Explicit names first, so their settings win over a wildcard's. */
  for (int pass = 0; pass < 2; pass++) {
    const char *key;
    json_t *v;
    json_object_foreach(ps, key, v) {
      bool wild = strstr(key, ".*") != NULL;
      if ((pass == 0) == wild)
        continue;
      size_t first = 0;
      int rc = expand(c, ps, key, &cap, &first);
      if (rc != TW_OK)
        return rc;
      if (v != NULL && json_is_null(v))
        continue;
      if (!json_is_object(v)) {
        tw__cdiag(c, false, "type", v, NULL,
                  "calibrate.parameters.%s must be a mapping {min, max, l2} "
                  "(or null)",
                  key);
        continue;
      }
      static const char *const keys[] = {"min", "max", "l2", NULL};
      tw__ckeys(c, v, "a calibrated parameter", keys);
      for (size_t i = first; i < c->calib.nparams; i++) {
        tw_compose_calib_param *p = &c->cparams[i];
        const char *unit = wild ? "" : param_unit(c, p->name);
        json_t *mn = json_object_get(v, "min"), *mx = json_object_get(v, "max"),
               *l2 = json_object_get(v, "l2");
        char what[160];
        (void)snprintf(what, sizeof what, "calibrate: %s's min", p->name);
        if (mn != NULL && !tw__cquantity(c, mn, unit, what, &p->lower))
          continue;
        (void)snprintf(what, sizeof what, "calibrate: %s's max", p->name);
        if (mx != NULL && !tw__cquantity(c, mx, unit, what, &p->upper))
          continue;
        if (l2 != NULL &&
            (!json_is_number(l2) || !(json_number_value(l2) >= 0) ||
             !isfinite(json_number_value(l2)))) {
          tw__cdiag(c, false, "value", l2, NULL,
                    "calibrate: %s's l2 must be a finite number >= 0", p->name);
          continue;
        }
        if (l2 != NULL)
          p->l2 = json_number_value(l2);
        if (isnan(p->lower) || isnan(p->upper) || p->lower > p->upper)
          tw__cdiag(c, false, "value", v, NULL,
                    "calibrate: %s: min %g is above max %g", p->name, p->lower,
                    p->upper);
      }
    }
  }
  return TW_OK;
}

static int losses(tw_compose *c, json_t *ls) {
  if (ls == NULL) {
    tw__cdiag(c, false, "missing", json_object_get(c->root, "calibrate"), NULL,
              "calibrate needs a loss: [{output, channel, weight}]");
    return TW_OK;
  }
  if (!json_is_array(ls) || json_array_size(ls) == 0) {
    tw__cdiag(c, false, "type", ls, NULL,
              "calibrate.loss must be a sequence of {output, channel, "
              "weight} with at least one");
    return TW_OK;
  }
  size_t n = json_array_size(ls);
  c->closs = tw_calloc(n, sizeof *c->closs);
  if (c->closs == NULL)
    return OOM(c);
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(ls, i);
    if (!json_is_object(e)) {
      tw__cdiag(c, false, "type", e, NULL,
                "calibrate.loss entries are {output, channel, weight}");
      continue;
    }
    static const char *const keys[] = {"output", "channel", "weight", NULL};
    tw__ckeys(c, e, "a loss term", keys);
    json_t *o = json_object_get(e, "output"),
           *ch = json_object_get(e, "channel"),
           *w = json_object_get(e, "weight");
    if (!json_is_string(o)) {
      tw__cdiag(c, false, o == NULL ? "missing" : "type", o != NULL ? o : e,
                NULL,
                "a loss term needs output: COMPONENT.PORT (an output "
                "of the twin)");
      continue;
    }
    if (!json_is_string(ch) || json_string_length(ch) == 0) {
      tw__cdiag(c, false, ch == NULL ? "missing" : "type", ch != NULL ? ch : e,
                NULL, "a loss term needs channel: TOPIC (of the recording)");
      continue;
    }
    double weight = 1;
    if (w != NULL && (!json_is_number(w) || !(json_number_value(w) >= 0) ||
                      !isfinite(json_number_value(w)))) {
      tw__cdiag(c, false, "value", w, NULL,
                "a loss term's weight must be a finite number >= 0");
      continue;
    }
    if (w != NULL)
      weight = json_number_value(w);
    const char *name = json_string_value(o);
    if (c->graph != NULL) {
      bool found = false;
      for (size_t k = 0; k < tw_graph_noutputs(c->graph) && !found; k++)
        found = strcmp(tw_graph_output_name(c->graph, k, NULL), name) == 0;
      if (!found) {
        tw__cdiag(c, false, "unknown-port", o, NULL,
                  "calibrate: '%s' is not an output of the twin (outputs: "
                  "lists them)",
                  name);
        continue;
      }
    }
    tw_compose_calib_loss *l = &c->closs[c->calib.nloss++];
    l->output = name; /* borrowed from the merged document */
    l->channel = json_string_value(ch);
    l->weight = weight;
  }
  return TW_OK;
}

static void truth(tw_compose *c, json_t *t) {
  if (t == NULL)
    return;
  if (!json_is_object(t)) {
    tw__cdiag(c, false, "type", t, NULL,
              "calibrate.truth must be a mapping of COMPONENT.PARAM: value");
    return;
  }
  const char *key;
  json_t *v;
  json_object_foreach(t, key, v) {
    tw_compose_calib_param *p = NULL;
    for (size_t i = 0; i < c->calib.nparams && p == NULL; i++)
      if (strcmp(c->cparams[i].name, key) == 0)
        p = &c->cparams[i];
    if (p == NULL) {
      if (c->graph != NULL)
        tw__cdiag(c, false, "unknown-parameter", t, key,
                  "calibrate.truth: '%s' is not a calibrated parameter", key);
      continue;
    }
    char what[160];
    (void)snprintf(what, sizeof what, "calibrate.truth.%s", key);
    if (json_is_array(v) ||
        !tw__cquantity(c, v, param_unit(c, key), what, &p->truth))
      continue;
    p->has_truth = true;
  }
}

int tw__compose_calibrate(tw_compose *c) {
  json_t *s = json_object_get(c->root, "calibrate");
  if (s == NULL)
    return TW_OK;
  if (!json_is_object(s)) {
    tw__cdiag(c, false, "type", s, NULL,
              "calibrate must be a mapping {parameters, loss, ...}");
    return TW_OK;
  }
  static const char *const keys[] = {
      "data",       "validation", "parameters",    "loss",  "optimizer",
      "iterations", "tolerance",  "learning_rate", "truth", NULL};
  tw__ckeys(c, s, "calibrate", keys);
  c->has_calib = true;
  int rc = path_of(c, json_object_get(s, "data"), "data", &c->cdata);
  if (rc == TW_OK)
    rc = path_of(c, json_object_get(s, "validation"), "validation",
                 &c->cvalidation);
  if (rc == TW_OK)
    rc = parameters(c, json_object_get(s, "parameters"));
  if (rc == TW_OK)
    rc = losses(c, json_object_get(s, "loss"));
  if (rc != TW_OK)
    return rc;
  truth(c, json_object_get(s, "truth"));
  json_t *opt = json_object_get(s, "optimizer");
  if (opt != NULL) {
    const char *o = json_string_value(opt);
    if (o == NULL || (strcmp(o, "lbfgs") != 0 && strcmp(o, "adam") != 0 &&
                      strcmp(o, "gd") != 0))
      tw__cdiag(c, false, "value", opt, NULL,
                "calibrate.optimizer must be lbfgs, adam or gd");
    else
      c->calib.optimizer = o;
  }
  json_t *it = json_object_get(s, "iterations");
  if (it != NULL) {
    if (!json_is_integer(it) || json_integer_value(it) < 1 ||
        json_integer_value(it) > 100000000)
      tw__cdiag(c, false, "value", it, NULL,
                "calibrate.iterations must be an integer from 1 to 1e8");
    else
      c->calib.iterations = json_integer_value(it);
  }
  (void)positive(c, json_object_get(s, "tolerance"), "tolerance",
                 &c->calib.tolerance);
  (void)positive(c, json_object_get(s, "learning_rate"), "learning_rate",
                 &c->calib.learning_rate);
  /* Bounds must hold the value the fit starts from. */
  if (c->graph != NULL && c->calib.nparams > 0) {
    size_t np = tw_graph_nparams(c->graph);
    double *theta = tw_calloc(np ? np : 1, sizeof *theta);
    if (theta == NULL)
      return OOM(c);
    tw_graph_get_params(c->graph, theta);
    size_t n = tw_graph_nparam_ports(c->graph);
    for (size_t i = 0; i < c->calib.nparams; i++) {
      const tw_compose_calib_param *p = &c->cparams[i];
      for (size_t k = 0; k < n; k++) {
        size_t size, off;
        if (strcmp(tw_graph_param_name(c->graph, k, &size, &off), p->name) != 0)
          continue;
        for (size_t j = 0; j < size; j++)
          if (theta[off + j] < p->lower || theta[off + j] > p->upper) {
            tw__cdiag(c, false, "value", json_object_get(s, "parameters"), NULL,
                      "calibrate: %s starts at %g (element %zu), outside its "
                      "bounds [%g, %g]",
                      p->name, theta[off + j], j, p->lower, p->upper);
            break;
          }
      }
    }
    tw_free(theta);
  }
  c->calib.data = c->cdata;
  c->calib.validation = c->cvalidation;
  c->calib.params = c->cparams;
  c->calib.loss = c->closs;
  return TW_OK;
}

void tw__compose_calibrate_free(tw_compose *c) {
  for (size_t i = 0; i < c->calib.nparams; i++)
    tw_free(c->cnames[i]);
  tw_free(c->cnames);
  tw_free(c->cparams);
  tw_free(c->closs);
  tw_free(c->cdata);
  tw_free(c->cvalidation);
}

const tw_compose_calibration *tw_compose_calibration_get(const tw_compose *c) {
  return c != NULL && c->has_calib ? &c->calib : NULL;
}
