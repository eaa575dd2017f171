/*
 * cmd_model_add.c - `twin model add`: a model module into the local model
 * store (twin/store.h), after the same checks `twin model inspect` makes,
 * so every blob a graph names by digest was a valid model when added.
 *
 * Prints the digest (graphs name the model "wasm:sha256:<hex>"), or with
 * --json one object with the digest, size, model name and version, and
 * the store's directory.
 */
#include <string.h>

#include "cli.h"
#include "commands.h"

static const cli_opt add_opts[] = {
    {"store", 0, "DIR", "the store (default $TWIN_STORE or ~/.local/share)"},
    {"allow-wasi", 0, NULL, "accept a model that imports WASI preview 1"},
    {"json", 0, NULL, "print one JSON object"},
    {NULL, 0, NULL, NULL}};

static int run_add(cli_ctx *cli, const cli_args *args) {
  const char *path = args->pos[0];
  tw_err err;
  tw_err_init(&err);
  tw_wasm_engine *e = NULL;
  tw_wasm_module *m = NULL;
  tw_store *s = NULL;
  char digest[TW_STORE_DIGEST_LEN + 1];
  tw_wasm_module_opts mo = {cli_opt_value(cli->cmd, args, "allow-wasi") != NULL,
                            NULL};
  int rc = tw_wasm_engine_new(cli->tw, NULL, &e, &err);
  if (rc == TW_OK &&
      tw_wasm_module_load_file(e, path, &mo, &m, &err) != TW_OK &&
      strstr(err.msg, path) == NULL) {
    /* Name the file in the message (file errors already do). */
    char msg[TW_ERR_MSG_MAX + 512];
    (void)snprintf(msg, sizeof msg, "%.500s: %s", path, err.msg);
    rc = err.code;
    tw_err_init(&err);
    tw_err_set(&err, rc, "%s", msg);
  }
  rc = err.code;
  if (rc == TW_OK)
    rc = tw_store_open(cli_opt_value(cli->cmd, args, "store"), true, &s, &err);
  if (rc == TW_OK)
    rc = tw_store_add_file(s, path, digest, &err);
  /* What was added must be what was checked. */
  if (rc == TW_OK && strcmp(digest, tw_wasm_module_digest(m)) != 0)
    rc = tw_err_set(&err, TW_EDIGEST,
                    "%s changed while it was added (checked %s, stored %s)",
                    path, tw_wasm_module_digest(m), digest);
  int code = CLI_EXIT_OK;
  if (rc != TW_OK) {
    code = cli_fail(cli, &err);
  } else {
    const tw_wasm_desc *d = tw_wasm_module_desc(m);
    tw_buf b = TW_BUF_INIT;
    int frc;
    if (cli->json) {
      frc =
          tw_buf_printf(&b, "{\"digest\":\"%s\",\"size\":%zu,\"name\":", digest,
                        tw_wasm_module_size(m));
      if (frc == TW_OK)
        frc = tw_buf_put_json_string(&b, d->name, strlen(d->name));
      if (frc == TW_OK)
        frc = tw_buf_printf(&b, ",\"version\":");
      if (frc == TW_OK)
        frc = tw_buf_put_json_string(&b, d->version, strlen(d->version));
      if (frc == TW_OK)
        frc = tw_buf_printf(&b, ",\"store\":");
      if (frc == TW_OK)
        frc = tw_buf_put_json_string(&b, tw_store_dir(s),
                                     strlen(tw_store_dir(s)));
      if (frc == TW_OK)
        frc = tw_buf_printf(&b, "}\n");
    } else {
      frc = tw_buf_printf(&b, "%s\n", digest);
    }
    code = cli_write_formatted(cli, &b, frc);
    tw_buf_fini(&b);
  }
  tw_store_close(s);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  return code;
}

const cli_cmd cmd_model_add = {
    "model",
    "add",
    "MODEL.wasm",
    1,
    1,
    "add a model to the local model store and print its digest",
    "Checks the module as `twin model inspect` does (WebAssembly validation,\n"
    "model ABI v1, its descriptor), then copies it into the local model\n"
    "store (an OCI image layout: blobs/sha256/<digest>), created when\n"
    "missing. Graphs then name it \"wasm:sha256:<digest>\" and get exactly\n"
    "these bytes: loading verifies the digest. The store is --store DIR,\n"
    "else $TWIN_STORE, else $XDG_DATA_HOME/twin/store, else\n"
    "~/.local/share/twin/store.",
    add_opts,
    run_add};
