/*
 * desc.c - the model descriptor (model ABI v1): parsed with the strict
 * JSON reader and checked field by field, because it comes from the guest.
 *
 * Limits: names 1..64 characters of [A-Za-z0-9_.] starting with a letter
 * or '_', unique per list; units up to 64 printable characters; at most
 * 256 ports per list; each vector total (nx, nu, ny, ntheta) at most
 * 2^20 values; defaults within [min, max].
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/json.h"
#include "wasm_int.h"

#define MAX_PORTS 256
#define MAX_TOTAL ((size_t)1 << 20)
#define MAX_NAME 64
#define MAX_UNIT 64

typedef struct desc_store {
  json_t *root;
  char *json; /* copy of the descriptor text */
  tw_wasm_port *ports[4];
  double *values; /* defaults, mins, maxes */
  size_t *ft;     /* feedthrough indices */
} desc_store;

void tw__wasm_free_desc(tw_wasm_module *m) {
  desc_store *s = m->desc_store;
  if (s == NULL)
    return;
  if (s->root != NULL)
    json_decref(s->root);
  tw_free(s->json);
  for (int i = 0; i < 4; i++)
    tw_free(s->ports[i]);
  tw_free(s->values);
  tw_free(s->ft);
  tw_free(s);
  m->desc_store = NULL;
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME)
    return false;
  if (!(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') ||
        (s[0] >= 'a' && s[0] <= 'z')))
    return false;
  for (size_t i = 1; i < n; i++) {
    char c = s[i];
    if (!(c == '_' || c == '.' || (c >= 'A' && c <= 'Z') ||
          (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

static bool valid_unit(const char *s) {
  size_t n = strlen(s);
  if (n > MAX_UNIT)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
      return false;
  return true;
}

/* A number or an array of size numbers into out[0..size). */
static int get_values(const json_t *port, const char *where, const char *key,
                      size_t size, double *out, bool *present, tw_err *err) {
  json_t *v = json_object_get(port, key);
  *present = v != NULL;
  if (v == NULL)
    return TW_OK;
  if (json_is_number(v)) {
    double x = json_number_value(v);
    for (size_t i = 0; i < size; i++)
      out[i] = x;
    return TW_OK;
  }
  if (!json_is_array(v) || json_array_size(v) != size)
    return tw_err_set(err, TW_ETYPE,
                      "descriptor: %s.%s must be a number or an array of %zu "
                      "numbers",
                      where, key, size);
  for (size_t i = 0; i < size; i++) {
    json_t *x = json_array_get(v, i);
    if (!json_is_number(x))
      return tw_err_set(err, TW_ETYPE, "descriptor: %s.%s[%zu] is not a number",
                        where, key, i);
    out[i] = json_number_value(x);
  }
  return TW_OK;
}

enum { L_STATE, L_INPUTS, L_OUTPUTS, L_PARAMS };
static const char *const list_key[4] = {"state", "inputs", "outputs", "params"};

static int parse_list(tw_wasm_module *m, desc_store *s, int which,
                      size_t *nvals, size_t *nft, tw_err *err) {
  json_t *arr = NULL;
  int rc = tw_json_get_array(s->root, "descriptor", list_key[which], true, &arr,
                             err);
  if (rc != TW_OK)
    return rc;
  size_t n = json_array_size(arr);
  if (n > MAX_PORTS)
    return tw_err_set(err, TW_ELIMIT, "descriptor: %zu %s ports, at most %d", n,
                      list_key[which], MAX_PORTS);
  tw_wasm_port *ports = tw_calloc(n ? n : 1, sizeof *ports);
  if (ports == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  s->ports[which] = ports;
  static const char *const allowed[4][7] = {
      {"name", "unit", "size", "dtype", NULL},
      {"name", "unit", "size", "default", "dtype", NULL},
      {"name", "unit", "size", "feedthrough", "dtype", NULL},
      {"name", "unit", "size", "default", "min", "max", NULL}};
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    char where[48];
    (void)snprintf(where, sizeof where, "%s[%zu]", list_key[which], i);
    json_t *p = json_array_get(arr, i);
    if (!json_is_object(p))
      return tw_err_set(err, TW_ETYPE, "descriptor: %s is not an object",
                        where);
    rc = tw_json_check_keys(p, where, allowed[which], err);
    const char *name = NULL, *unit = "";
    int64_t size = 0;
    if (rc == TW_OK)
      rc = tw_json_get_str(p, where, "name", true, &name, err);
    if (rc == TW_OK)
      rc = tw_json_get_str(p, where, "unit", false, &unit, err);
    if (rc == TW_OK)
      rc = tw_json_get_int(p, where, "size", true, 1, (int64_t)MAX_TOTAL, &size,
                           err);
    const char *dtype = "f64";
    if (rc == TW_OK)
      rc = tw_json_get_str(p, where, "dtype", false, &dtype, err);
    if (rc != TW_OK)
      return rc;
    if (!tw_dtype_parse(dtype, &ports[i].dtype))
      return tw_err_set(err, TW_EINVAL,
                        "descriptor: %s.dtype '%.16s' is not f64, f32, i64, "
                        "i32 or bool",
                        where, dtype);
    if (!valid_name(name))
      return tw_err_set(err, TW_EINVAL,
                        "descriptor: %s.name '%.64s' is not a valid name "
                        "([A-Za-z_][A-Za-z0-9_.]*, up to %d characters)",
                        where, name, MAX_NAME);
    if (!valid_unit(unit))
      return tw_err_set(err, TW_EINVAL,
                        "descriptor: %s.unit is not up to %d printable "
                        "characters",
                        where, MAX_UNIT);
    for (size_t j = 0; j < i; j++)
      if (strcmp(ports[j].name, name) == 0)
        return tw_err_set(err, TW_EINVAL, "descriptor: %s: duplicate name '%s'",
                          list_key[which], name);
    total += (size_t)size;
    if (total > MAX_TOTAL)
      return tw_err_set(err, TW_ELIMIT,
                        "descriptor: %s add up to more than %zu values",
                        list_key[which], MAX_TOTAL);
    ports[i].name = name;
    ports[i].unit = unit;
    ports[i].size = (size_t)size;
    ports[i].feedthrough_all = true;
    if (which == L_INPUTS)
      *nvals += (size_t)size;
    if (which == L_PARAMS)
      *nvals += 3 * (size_t)size;
    if (which == L_OUTPUTS) {
      json_t *ft = json_object_get(p, "feedthrough");
      if (ft != NULL) {
        if (!json_is_array(ft))
          return tw_err_set(err, TW_ETYPE,
                            "descriptor: %s.feedthrough is not an array",
                            where);
        *nft += json_array_size(ft);
      }
    }
  }
  switch (which) {
  case L_STATE:
    m->desc.state = ports, m->desc.nstate = n, m->desc.nx = total;
    break;
  case L_INPUTS:
    m->desc.inputs = ports, m->desc.ninputs = n, m->desc.nu = total;
    break;
  case L_OUTPUTS:
    m->desc.outputs = ports, m->desc.noutputs = n, m->desc.ny = total;
    break;
  default:
    m->desc.params = ports, m->desc.nparams = n, m->desc.ntheta = total;
    break;
  }
  return TW_OK;
}

/* Second pass: defaults, bounds, feedthrough, into the value arrays. */
static int parse_values(tw_wasm_module *m, desc_store *s, tw_err *err) {
  double *v = s->values;
  size_t *ft = s->ft;
  json_t *arr = json_object_get(s->root, "inputs");
  for (size_t i = 0; i < m->desc.ninputs; i++) {
    tw_wasm_port *p = &s->ports[L_INPUTS][i];
    char where[48];
    (void)snprintf(where, sizeof where, "inputs[%zu]", i);
    bool present;
    int rc = get_values(json_array_get(arr, i), where, "default", p->size, v,
                        &present, err);
    if (rc != TW_OK)
      return rc;
    if (present) {
      p->default_ = v;
      v += p->size;
    }
  }
  arr = json_object_get(s->root, "params");
  for (size_t i = 0; i < m->desc.nparams; i++) {
    tw_wasm_port *p = &s->ports[L_PARAMS][i];
    json_t *pj = json_array_get(arr, i);
    char where[48];
    (void)snprintf(where, sizeof where, "params[%zu]", i);
    bool has[3];
    static const char *const keys[3] = {"default", "min", "max"};
    for (int k = 0; k < 3; k++) {
      int rc = get_values(pj, where, keys[k], p->size, v, &has[k], err);
      if (rc != TW_OK)
        return rc;
      if (!has[k])
        continue;
      if (k == 0)
        p->default_ = v;
      else if (k == 1)
        p->min = v;
      else
        p->max = v;
      v += p->size;
    }
    if (!has[0])
      return tw_err_set(err, TW_EINVAL, "descriptor: %s ('%s') has no default",
                        where, p->name);
    for (size_t j = 0; j < p->size; j++) {
      double d = p->default_[j];
      double lo = p->min ? p->min[j] : -INFINITY;
      double hi = p->max ? p->max[j] : INFINITY;
      if (!(lo <= hi) || !(d >= lo && d <= hi) || d != d)
        return tw_err_set(err, TW_ERANGE,
                          "descriptor: %s ('%s') element %zu: default %g is "
                          "not within [%g, %g]",
                          where, p->name, j, d, lo, hi);
    }
  }
  arr = json_object_get(s->root, "outputs");
  for (size_t i = 0; i < m->desc.noutputs; i++) {
    tw_wasm_port *p = &s->ports[L_OUTPUTS][i];
    json_t *f = json_object_get(json_array_get(arr, i), "feedthrough");
    if (f == NULL)
      continue;
    p->feedthrough_all = false;
    p->feedthrough = ft;
    for (size_t j = 0; j < json_array_size(f); j++) {
      const char *in = json_string_value(json_array_get(f, j));
      size_t k = 0;
      while (in != NULL && k < m->desc.ninputs &&
             strcmp(s->ports[L_INPUTS][k].name, in) != 0)
        k++;
      if (in == NULL || k == m->desc.ninputs)
        return tw_err_set(err, TW_EINVAL,
                          "descriptor: outputs[%zu].feedthrough[%zu] is not "
                          "the name of an input",
                          i, j);
      *ft++ = k;
      p->nfeedthrough++;
    }
  }
  return TW_OK;
}

int tw__wasm_parse_desc(tw_wasm_module *m, const char *json, size_t len,
                        tw_err *err) {
  desc_store *s = tw_calloc(1, sizeof *s);
  if (s == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  m->desc_store = s;
  s->json = tw_alloc(len + 1);
  if (s->json == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  memcpy(s->json, json, len);
  s->json[len] = '\0';
  int rc = tw_json_parse(json, len, "descriptor", &s->root, err);
  if (rc != TW_OK)
    return rc;
  if (!json_is_object(s->root))
    return tw_err_set(err, TW_ETYPE, "descriptor: not a JSON object");
  static const char *const top[] = {"abi",    "name",           "version",
                                    "state",  "inputs",         "outputs",
                                    "params", "differentiable", NULL};
  rc = tw_json_check_keys(s->root, "descriptor", top, err);
  int64_t abi = 0;
  const char *name = NULL, *version = "";
  bool diff = false;
  if (rc == TW_OK)
    rc = tw_json_get_int(s->root, "descriptor", "abi", true, INT64_MIN,
                         INT64_MAX, &abi, err);
  if (rc == TW_OK && abi != TW_WASM_ABI_VERSION)
    rc = tw_err_set(err, TW_EVALIDATE,
                    "descriptor: abi is %lld, this host speaks %d",
                    (long long)abi, TW_WASM_ABI_VERSION);
  if (rc == TW_OK)
    rc = tw_json_get_str(s->root, "descriptor", "name", true, &name, err);
  if (rc == TW_OK)
    rc =
        tw_json_get_str(s->root, "descriptor", "version", false, &version, err);
  if (rc == TW_OK)
    rc = tw_json_get_bool(s->root, "descriptor", "differentiable", false, &diff,
                          err);
  if (rc != TW_OK)
    return rc;
  if (!valid_name(name))
    return tw_err_set(err, TW_EINVAL,
                      "descriptor: name '%.64s' is not a valid name", name);
  if (!valid_unit(version))
    return tw_err_set(err, TW_EINVAL,
                      "descriptor: version is not up to %d printable "
                      "characters",
                      MAX_UNIT);
  size_t nvals = 0, nft = 0;
  for (int w = 0; w < 4 && rc == TW_OK; w++)
    rc = parse_list(m, s, w, &nvals, &nft, err);
  if (rc != TW_OK)
    return rc;
  s->values = tw_calloc(nvals ? nvals : 1, sizeof(double));
  s->ft = tw_calloc(nft ? nft : 1, sizeof(size_t));
  if (s->values == NULL || s->ft == NULL)
    return tw_err_set(err, TW_ENOMEM, "wasm: out of memory");
  rc = parse_values(m, s, err);
  if (rc != TW_OK)
    return rc;
  m->desc.name = name;
  m->desc.version = version;
  m->desc.json = s->json;
  if (diff && !m->has_vjp)
    return tw_err_set(err, TW_EVALIDATE,
                      "descriptor says differentiable, but the module does "
                      "not export tw_step_vjp");
  m->desc.differentiable = diff && m->has_vjp;
  return TW_OK;
}
