/*
 * cmd_model.c - `twin model inspect` and `twin model run`: a model module's
 * descriptor, imports and exports; stepping it in the sandbox with limits.
 *
 * A model that traps, exceeds a limit, breaks the ABI or is not
 * WebAssembly is a failure of the work: exit 1 with "error: CODE: MESSAGE"
 * on stderr (cli_fail), never a signal and never a hang past its limit.
 * Without --fuel or --timeout-ms, `run` applies a 10 s deadline per call.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const cli_opt inspect_opts[] = {
    {"json", 0, NULL, "print one JSON object"},
    {"allow-wasi", 0, NULL, "grant WASI preview 1 (no files, env or args)"},
    {NULL, 0, NULL, NULL}};

static const cli_opt run_opts[] = {
    {"steps", 0, "N", "steps to run (default 10)"},
    {"dt", 0, "S", "step in seconds (default 0.01)"},
    {"params", 0, "JSON",
     "parameters: {\"name\": number or array, ...} (others: defaults)"},
    {"inputs", 0, "JSON",
     "constant inputs: {\"name\": number or array, ...} (others: defaults)"},
    {"fuel", 0, "N", "fuel per call (deterministic limit)"},
    {"timeout-ms", 0, "N", "deadline per call (epoch; default 10000)"},
    {"max-memory", 0, "SIZE", "linear memory cap (default 64M)"},
    {"allow-wasi", 0, NULL, "grant WASI preview 1 (no files, env or args)"},
    {"json", 0, NULL, "JSON lines: one per step, then a summary"},
    {NULL, 0, NULL, NULL}};

/* Engine and module from the command line; the engine's memory cap is the
 * --max-memory value when given. */
static int load(cli_ctx *cli, const cli_args *args, size_t max_memory,
                tw_wasm_engine **e, tw_wasm_module **m, tw_err *err) {
  tw_wasm_engine_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.max_memory = max_memory;
  eo.pool_size = 4;
  int rc = tw_wasm_engine_new(cli->tw, &eo, e, err);
  tw_wasm_module_opts mo = {cli_opt_value(cli->cmd, args, "allow-wasi") != NULL,
                            NULL};
  if (rc == TW_OK)
    rc = tw_wasm_module_load_file(*e, args->pos[0], &mo, m, err);
  if (rc != TW_OK && err->code != TW_OK &&
      strstr(err->msg, args->pos[0]) == NULL) {
    /* Name the file in the message (file errors already do). */
    char msg[TW_ERR_MSG_MAX + 512];
    (void)snprintf(msg, sizeof msg, "%.500s: %s", args->pos[0], err->msg);
    int code = err->code;
    tw_err_init(err);
    tw_err_set(err, code, "%s", msg);
  }
  return rc;
}

static int put_values(tw_buf *b, const double *v, size_t n) {
  int rc = tw_buf_printf(b, "[");
  for (size_t i = 0; i < n && rc == TW_OK; i++)
    rc = tw_buf_printf(b, isfinite(v[i]) ? "%s%.17g" : "%snull", i ? "," : "",
                       v[i]);
  if (rc == TW_OK)
    rc = tw_buf_printf(b, "]");
  return rc;
}

/* inputs: the descriptor's inputs, to name an output's feedthrough (NULL
 * for the other lists). */
static int put_ports(tw_buf *b, const char *key, const tw_wasm_port *p,
                     size_t n, const tw_wasm_port *inputs, bool json) {
  int rc = TW_OK;
  if (json) {
    rc = tw_buf_printf(b, "\"%s\":[", key);
    for (size_t i = 0; i < n && rc == TW_OK; i++) {
      rc = tw_buf_printf(b, "%s{\"name\":", i ? "," : "");
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(b, p[i].name, strlen(p[i].name));
      if (rc == TW_OK)
        rc = tw_buf_printf(b, ",\"unit\":");
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(b, p[i].unit, strlen(p[i].unit));
      if (rc == TW_OK)
        rc = tw_buf_printf(b, ",\"size\":%zu", p[i].size);
      if (rc == TW_OK && !p[i].feedthrough_all && inputs != NULL) {
        rc = tw_buf_printf(b, ",\"feedthrough\":[");
        for (size_t k = 0; k < p[i].nfeedthrough && rc == TW_OK; k++) {
          const char *in = inputs[p[i].feedthrough[k]].name;
          rc = tw_buf_printf(b, "%s", k ? "," : "");
          if (rc == TW_OK)
            rc = tw_buf_put_json_string(b, in, strlen(in));
        }
        if (rc == TW_OK)
          rc = tw_buf_printf(b, "]");
      }
      const double *arr[3] = {p[i].default_, p[i].min, p[i].max};
      static const char *const names[3] = {"default", "min", "max"};
      for (int k = 0; k < 3 && rc == TW_OK; k++)
        if (arr[k] != NULL) {
          rc = tw_buf_printf(b, ",\"%s\":", names[k]);
          if (rc == TW_OK)
            rc = put_values(b, arr[k], p[i].size);
        }
      if (rc == TW_OK)
        rc = tw_buf_printf(b, "}");
    }
    return rc == TW_OK ? tw_buf_printf(b, "]") : rc;
  }
  rc = tw_buf_printf(b, "%s:%s\n", key, n ? "" : " (none)");
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    rc = tw_buf_printf(b, "  %-16s %4zu  %-10s", p[i].name, p[i].size,
                       p[i].unit[0] ? p[i].unit : "-");
    if (rc == TW_OK && p[i].default_ != NULL)
      rc = tw_buf_printf(b, "  default %g%s", p[i].default_[0],
                         p[i].size > 1 ? ",..." : "");
    if (rc == TW_OK && (p[i].min != NULL || p[i].max != NULL))
      rc = tw_buf_printf(b, "  in [%g, %g]", p[i].min ? p[i].min[0] : -INFINITY,
                         p[i].max ? p[i].max[0] : INFINITY);
    if (rc == TW_OK && inputs != NULL && !p[i].feedthrough_all) {
      rc = tw_buf_printf(b, "  feedthrough:%s",
                         p[i].nfeedthrough ? "" : " none");
      for (size_t k = 0; k < p[i].nfeedthrough && rc == TW_OK; k++)
        rc = tw_buf_printf(b, " %s", inputs[p[i].feedthrough[k]].name);
    }
    if (rc == TW_OK)
      rc = tw_buf_printf(b, "\n");
  }
  return rc;
}

static int put_externs(tw_buf *b, const char *key, const tw_wasm_extern *x,
                       size_t n, bool json) {
  int rc = json ? tw_buf_printf(b, ",\"%s\":[", key)
                : tw_buf_printf(b, "%s:%s\n", key, n ? "" : " (none)");
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    if (json) {
      rc = tw_buf_printf(b, "%s{", i ? "," : "");
      if (rc == TW_OK && x[i].module != NULL) {
        rc = tw_buf_printf(b, "\"module\":");
        if (rc == TW_OK)
          rc = tw_buf_put_json_string(b, x[i].module, strlen(x[i].module));
        if (rc == TW_OK)
          rc = tw_buf_printf(b, ",");
      }
      if (rc == TW_OK)
        rc = tw_buf_printf(b, "\"name\":");
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(b, x[i].name, strlen(x[i].name));
      if (rc == TW_OK)
        rc = tw_buf_printf(b, ",\"kind\":\"%s\",\"type\":", x[i].kind);
      if (rc == TW_OK)
        rc = tw_buf_put_json_string(b, x[i].signature, strlen(x[i].signature));
      if (rc == TW_OK)
        rc = tw_buf_printf(b, "}");
    } else {
      rc = tw_buf_printf(b, "  %s%s%s  %s %s\n", x[i].module ? x[i].module : "",
                         x[i].module ? "." : "", x[i].name, x[i].kind,
                         x[i].signature);
    }
  }
  return rc == TW_OK && json ? tw_buf_printf(b, "]") : rc;
}

static int run_inspect(cli_ctx *cli, const cli_args *args) {
  tw_err err;
  tw_err_init(&err);
  tw_wasm_engine *e = NULL;
  tw_wasm_module *m = NULL;
  if (load(cli, args, 0, &e, &m, &err) != TW_OK) {
    tw_wasm_module_free(m);
    tw_wasm_engine_free(e);
    return cli_fail(cli, &err);
  }
  const tw_wasm_desc *d = tw_wasm_module_desc(m);
  const tw_wasm_extern *imps, *exps;
  size_t ni = tw_wasm_module_imports(m, &imps);
  size_t ne = tw_wasm_module_exports(m, &exps);
  tw_buf b = TW_BUF_INIT;
  int rc;
  if (cli->json) {
    rc = tw_buf_printf(&b, "{\"name\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(&b, d->name, strlen(d->name));
    if (rc == TW_OK)
      rc = tw_buf_printf(&b, ",\"version\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(&b, d->version, strlen(d->version));
    if (rc == TW_OK)
      rc = tw_buf_printf(&b,
                         ",\"abi\":%d,\"digest\":\"%s\",\"size\":%zu,"
                         "\"differentiable\":%s,\"descriptor\":{",
                         TW_WASM_ABI_VERSION, tw_wasm_module_digest(m),
                         tw_wasm_module_size(m),
                         d->differentiable ? "true" : "false");
    if (rc == TW_OK)
      rc = put_ports(&b, "state", d->state, d->nstate, NULL, true);
    if (rc == TW_OK)
      rc = tw_buf_printf(&b, ",");
    if (rc == TW_OK)
      rc = put_ports(&b, "inputs", d->inputs, d->ninputs, NULL, true);
    if (rc == TW_OK)
      rc = tw_buf_printf(&b, ",");
    if (rc == TW_OK)
      rc = put_ports(&b, "outputs", d->outputs, d->noutputs, d->inputs, true);
    if (rc == TW_OK)
      rc = tw_buf_printf(&b, ",");
    if (rc == TW_OK)
      rc = put_ports(&b, "params", d->params, d->nparams, NULL, true);
    if (rc == TW_OK)
      rc = tw_buf_printf(&b, "}");
    if (rc == TW_OK)
      rc = put_externs(&b, "imports", imps, ni, true);
    if (rc == TW_OK)
      rc = put_externs(&b, "exports", exps, ne, true);
    if (rc == TW_OK)
      rc = tw_buf_printf(&b, "}\n");
  } else {
    rc = tw_buf_printf(&b,
                       "model:          %s %s\n"
                       "abi:            %d\n"
                       "digest:         %s\n"
                       "size:           %zu bytes\n"
                       "differentiable: %s\n",
                       d->name, d->version, TW_WASM_ABI_VERSION,
                       tw_wasm_module_digest(m), tw_wasm_module_size(m),
                       d->differentiable ? "yes (tw_step_vjp)" : "no");
    if (rc == TW_OK)
      rc = put_ports(&b, "state", d->state, d->nstate, NULL, false);
    if (rc == TW_OK)
      rc = put_ports(&b, "inputs", d->inputs, d->ninputs, NULL, false);
    if (rc == TW_OK)
      rc = put_ports(&b, "outputs", d->outputs, d->noutputs, d->inputs, false);
    if (rc == TW_OK)
      rc = put_ports(&b, "params", d->params, d->nparams, NULL, false);
    if (rc == TW_OK)
      rc = put_externs(&b, "imports", imps, ni, false);
    if (rc == TW_OK)
      rc = put_externs(&b, "exports", exps, ne, false);
  }
  int code = cli_write_formatted(cli, &b, rc);
  tw_buf_fini(&b);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  return code;
}

/* Fills vec (the concatenation of ports) from a JSON object of name ->
 * number | array; names not in ports are an error. */
static int fill_named(const char *what, const char *text,
                      const tw_wasm_port *ports, size_t n, double *vec,
                      tw_err *err) {
  json_t *root = NULL;
  int rc = tw_json_parse(text, strlen(text), what, &root, err);
  if (rc != TW_OK)
    return rc;
  if (!json_is_object(root)) {
    json_decref(root);
    return tw_err_set(err, TW_ETYPE,
                      "%s: expected a JSON object of name: "
                      "value",
                      what);
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    size_t off = 0, i = 0;
    while (i < n && strcmp(ports[i].name, key) != 0)
      off += ports[i++].size;
    if (i == n) {
      rc = tw_err_set(err, TW_EINVAL, "%s: the model has no '%s'", what, key);
      break;
    }
    size_t size = ports[i].size;
    if (json_is_number(v)) {
      for (size_t j = 0; j < size; j++)
        vec[off + j] = json_number_value(v);
    } else if (json_is_array(v) && json_array_size(v) == size) {
      for (size_t j = 0; j < size && rc == TW_OK; j++) {
        json_t *x = json_array_get(v, j);
        if (!json_is_number(x))
          rc = tw_err_set(err, TW_ETYPE, "%s: %s[%zu] is not a number", what,
                          key, j);
        else
          vec[off + j] = json_number_value(x);
      }
    } else {
      rc = tw_err_set(err, TW_ETYPE,
                      "%s: '%s' needs a number or an array of %zu numbers",
                      what, key, size);
    }
    if (rc != TW_OK)
      break;
  }
  json_decref(root);
  return rc;
}

static void defaults(const tw_wasm_port *p, size_t n, double *vec) {
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < p[i].size; j++)
      vec[off + j] = p[i].default_ != NULL ? p[i].default_[j] : 0.0;
    off += p[i].size;
  }
}

static int run_run(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  unsigned long steps = 10, maxmem = 0;
  double dt = 0.01;
  const char *v;
  if ((v = cli_opt_value(c, args, "steps")) != NULL &&
      cli_parse_uint(cli, "steps", v, 1ul << 40, &steps) != 0)
    return CLI_EXIT_USAGE;
  tw_wasm_limits lim = {0, 0, 0};
  if (cli_wasm_limits(cli, args, &lim) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  if ((v = cli_opt_value(c, args, "max-memory")) != NULL) {
    if (cli_parse_size(cli, "max-memory", v, 1ul << 32, &maxmem) != 0)
      return CLI_EXIT_USAGE;
    if (maxmem < 65536)
      return cli_usage_error(cli, c,
                             "--max-memory needs at least 65536 bytes (one "
                             "WebAssembly page), not %lu",
                             maxmem);
  }
  if ((v = cli_opt_value(c, args, "dt")) != NULL) {
    char *end;
    dt = strtod(v, &end);
    if (*end != '\0' || !(dt > 0) || !isfinite(dt))
      return cli_usage_error(cli, c, "--dt needs a positive number, not '%s'",
                             v);
  }

  tw_err err;
  tw_err_init(&err);
  tw_wasm_engine *e = NULL;
  tw_wasm_module *m = NULL;
  tw_wasm_instance *in = NULL;
  double *mem = NULL;
  int rc = load(cli, args, maxmem, &e, &m, &err);
  const tw_wasm_desc *d = rc == TW_OK ? tw_wasm_module_desc(m) : NULL;
  double *x = NULL, *xn = NULL, *u = NULL, *th = NULL, *y = NULL;
  if (rc == TW_OK) {
    size_t total = 2 * d->nx + d->nu + d->ntheta + d->ny + 5;
    mem = tw_calloc(total, sizeof(double));
    if (mem == NULL)
      rc = tw_err_set(&err, TW_ENOMEM, "out of memory");
    else {
      x = mem;
      xn = x + d->nx + 1;
      u = xn + d->nx + 1;
      th = u + d->nu + 1;
      y = th + d->ntheta + 1;
      defaults(d->inputs, d->ninputs, u);
      defaults(d->params, d->nparams, th);
    }
  }
  if (rc == TW_OK && (v = cli_opt_value(c, args, "params")) != NULL)
    rc = fill_named("--params", v, d->params, d->nparams, th, &err);
  if (rc == TW_OK && (v = cli_opt_value(c, args, "inputs")) != NULL)
    rc = fill_named("--inputs", v, d->inputs, d->ninputs, u, &err);
  lim.max_memory = maxmem;
  if (rc == TW_OK)
    rc = tw_wasm_instance_new(m, &lim, &in, &err);
  if (rc == TW_OK)
    rc = tw_wasm_init(in, th, x, &err);
  tw_buf b = TW_BUF_INIT;
  int code = CLI_EXIT_OK;
  for (unsigned long k = 0; rc == TW_OK && k < steps; k++) {
    double t = (double)k * dt;
    rc = tw_wasm_step(in, t, dt, x, u, th, xn, y, &err);
    if (rc != TW_OK)
      break;
    tw_buf_reset(&b);
    int frc = cli->json
                  ? tw_buf_printf(&b, "{\"step\":%lu,\"t\":%.17g,\"x\":", k, t)
                  : tw_buf_printf(&b, "%6lu  t=%-10.6g x=", k, t);
    if (frc == TW_OK)
      frc = put_values(&b, x, d->nx);
    if (frc == TW_OK)
      frc = tw_buf_printf(&b, cli->json ? ",\"y\":" : " y=");
    if (frc == TW_OK)
      frc = put_values(&b, y, d->ny);
    if (frc == TW_OK)
      frc = tw_buf_printf(&b, cli->json ? "}\n" : "\n");
    if (frc != TW_OK)
      rc = tw_err_set(&err, frc, "cannot format the output");
    else if ((code = cli_write_out(cli, &b)) != CLI_EXIT_OK)
      break;
    memcpy(x, xn, d->nx * sizeof(double));
  }
  if (rc == TW_OK && code == CLI_EXIT_OK) {
    tw_wasm_usage us;
    tw_wasm_instance_usage(in, &us);
    tw_buf_reset(&b);
    int frc = cli->json
                  ? tw_buf_printf(&b,
                                  "{\"summary\":{\"steps\":%lu,\"calls\":%llu,"
                                  "\"fuel_used\":%llu,\"wall_ms\":%.6g,"
                                  "\"peak_memory\":%zu}}\n",
                                  steps, (unsigned long long)us.calls,
                                  (unsigned long long)us.fuel_used, us.wall_ms,
                                  us.peak_memory)
                  : tw_buf_printf(&b,
                                  "summary: %lu steps, %llu calls, fuel used "
                                  "%llu, %.3f ms in the guest, peak memory "
                                  "%zu bytes\n",
                                  steps, (unsigned long long)us.calls,
                                  (unsigned long long)us.fuel_used, us.wall_ms,
                                  us.peak_memory);
    if (frc != TW_OK)
      rc = tw_err_set(&err, frc, "cannot format the output");
    else
      code = cli_write_out(cli, &b);
  }
  if (rc != TW_OK)
    code = cli_fail(cli, &err);
  tw_buf_fini(&b);
  tw_free(mem);
  tw_wasm_instance_free(in);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  return code;
}

const cli_cmd cmd_model_inspect = {
    "model",
    "inspect",
    "MODEL.wasm",
    1,
    1,
    "show a model's descriptor, imports, exports, size and digest",
    "Loads the module in the sandbox (validation, model ABI v1 checks, the\n"
    "descriptor read through a probe instance) and prints what it is.",
    inspect_opts,
    run_inspect};

const cli_cmd cmd_model_run = {
    "model",
    "run",
    "MODEL.wasm",
    1,
    1,
    "step a model in the sandbox and print its state and outputs",
    "Initialises the model from its parameters and steps it with constant\n"
    "inputs. Each guest call runs under a fuel budget (--fuel) or a\n"
    "deadline (--timeout-ms, default 10000 when neither is given) and the\n"
    "memory cap. A trap, a limit, an ABI violation or a file that is not\n"
    "WebAssembly is an error: exit 1, `error: CODE: MESSAGE` on stderr.",
    run_opts,
    run_run};
