/*
 * cmd_push.c - `twin push`: a model module to an OCI registry as a model
 * artifact, then registered as a version of a model in the metadata REST
 * API of the same server.
 *
 * The artifact is built locally with tw_reg_model_build, so a module the
 * loader refuses is refused before any request, with the loader's message,
 * and the manifest digest is the one the server computes for the same
 * module. Blobs the repository already has are not sent again (a HEAD
 * first, as oras and crane do); the manifest goes last, so a tag never
 * names a manifest whose blobs are missing. The registry's
 * Docker-Content-Digest must be the local digest.
 *
 * Registering is POST /api/v1/models/{name}/versions; when the model does
 * not exist yet (404 RESOURCE_DOES_NOT_EXIST) it is created and the
 * version posted again.
 */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "oci_client.h"

/* The largest module read: the loader's own default limit. */
#define PUSH_MAX_MODULE ((size_t)32 << 20)

static const cli_opt push_opts[] = {
    {"plain-http", 0, NULL, "talk HTTP, not HTTPS, to the registry"},
    {"allow-wasi", 0, NULL, "accept a model that imports WASI preview 1"},
    {"model", 0, "NAME",
     "register under model NAME (default: the repository's last part)"},
    {"no-register", 0, NULL, "only push; register no model version"},
    {"json", 0, NULL, "print one JSON object"},
    {NULL, 0, NULL, NULL}};

/* One blob of the artifact, unless the repository has it already. */
static int push_blob(cli_ctx *cli, cli_http *h, const cli_oci_ref *ref,
                     const char *digest, const void *data, size_t len,
                     tw_err *err) {
  bool exists = false;
  int rc = cli_oci_blob_exists(h, ref, digest, &exists, err);
  if (rc == TW_OK && exists) {
    tw_log(cli->tw, TW_LOG_INFO, "push", "%s/%s: %s exists, not sent",
           ref->registry, ref->repo, digest);
    return TW_OK;
  }
  if (rc == TW_OK)
    rc = cli_oci_blob_push(h, ref, digest, data, len, err);
  return rc;
}

static int json_body(tw_buf *b, const char *repo, const char *digest) {
  int rc = tw_buf_puts(b, "{\"artifact\":{\"repository\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, repo, strlen(repo));
  if (rc == TW_OK)
    rc = tw_buf_puts(b, ",\"manifest_digest\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, digest, strlen(digest));
  if (rc == TW_OK)
    rc = tw_buf_puts(b, "}}");
  return rc;
}

/* POST /api/v1/models {"name":model}. An existing model is not an error:
 * another client may have created it since. */
static int create_model(cli_http *h, const char *base, const char *model,
                        tw_err *err) {
  tw_buf url = TW_BUF_INIT, body = TW_BUF_INIT;
  char code[CLI_HTTP_API_CODE_MAX];
  int rc = tw_buf_printf(&url, "%s/api/v1/models", base);
  if (rc == TW_OK)
    rc = tw_buf_puts(&body, "{\"name\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(&body, model, strlen(model));
  if (rc == TW_OK)
    rc = tw_buf_putc(&body, '}');
  if (rc != TW_OK)
    rc = tw_err_set(err, rc, "out of memory");
  tw_err e;
  tw_err_init(&e);
  if (rc == TW_OK)
    rc = cli_http_api(h, "POST", url.data, &body, NULL, code, &e);
  if (rc == TW_EEXIST && strcmp(code, "RESOURCE_ALREADY_EXISTS") == 0)
    rc = TW_OK;
  else if (rc != TW_OK)
    tw_err_copy(err, &e);
  tw_buf_fini(&url);
  tw_buf_fini(&body);
  return rc;
}

/* Registers repo@digest as a new version of model; *version gets its
 * number. */
static int register_version(cli_http *h, const char *base, const char *model,
                            const char *repo, const char *digest,
                            int64_t *version, tw_err *err) {
  tw_buf url = TW_BUF_INIT, body = TW_BUF_INIT;
  int rc = tw_buf_printf(&url, "%s/api/v1/models/", base);
  if (rc == TW_OK)
    rc = cli_http_escape(&url, model);
  if (rc == TW_OK)
    rc = tw_buf_puts(&url, "/versions");
  if (rc == TW_OK)
    rc = json_body(&body, repo, digest);
  if (rc != TW_OK) {
    tw_buf_fini(&url);
    tw_buf_fini(&body);
    return tw_err_set(err, rc, "out of memory");
  }
  json_t *v = NULL;
  char code[CLI_HTTP_API_CODE_MAX];
  tw_err first;
  tw_err_init(&first);
  rc = cli_http_api(h, "POST", url.data, &body, &v, code, &first);
  if (rc == TW_ENOENT && strcmp(code, "RESOURCE_DOES_NOT_EXIST") == 0) {
    /* Most likely the model is new: create it and try once more (if the
     * 404 was about something else, the second answer says so again). */
    rc = create_model(h, base, model, err);
    if (rc == TW_OK)
      rc = cli_http_api(h, "POST", url.data, &body, &v, NULL, err);
  } else if (rc != TW_OK) {
    tw_err_copy(err, &first);
  }
  if (rc == TW_OK && !json_is_object(v))
    rc = tw_err_set(err, TW_EPROTO,
                    "POST %.700s: the server answered no version object",
                    url.data);
  if (rc == TW_OK)
    rc = tw_json_get_int(v, "the registered version", "version", true, 1,
                         INT64_MAX, version, err);
  json_decref(v);
  tw_buf_fini(&url);
  tw_buf_fini(&body);
  return rc;
}

static int print_result(cli_ctx *cli, const cli_oci_ref *ref, const char *tag,
                        const char *digest, const char *model,
                        int64_t version) {
  tw_buf b = TW_BUF_INIT;
  int rc;
  if (!cli->json) {
    rc = version > 0 ? tw_buf_printf(&b, "registered %s version %lld\n", model,
                                     (long long)version)
                     : TW_OK;
    int code = cli_write_formatted(cli, &b, rc);
    tw_buf_fini(&b);
    return code;
  }
  rc = cli_oci_ref_json(&b, ref, tag);
  if (rc == TW_OK)
    rc = tw_buf_printf(&b, ",\"digest\":\"%s\",\"model\":", digest);
  if (rc == TW_OK && version > 0)
    rc = tw_buf_put_json_string(&b, model, strlen(model));
  if (rc == TW_OK)
    rc = version > 0
             ? tw_buf_printf(&b, ",\"version\":%lld}\n", (long long)version)
             : tw_buf_puts(&b, "null,\"version\":null}\n");
  int code = cli_write_formatted(cli, &b, rc);
  tw_buf_fini(&b);
  return code;
}

static int run_push(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  const char *path = args->pos[0];
  bool plain = cli_opt_value(c, args, "plain-http") != NULL;
  bool allow_wasi = cli_opt_value(c, args, "allow-wasi") != NULL;
  bool no_register = cli_opt_value(c, args, "no-register") != NULL;
  const char *model = cli_opt_value(c, args, "model");
  tw_err err;
  tw_err_init(&err);
  cli_oci_ref ref;
  if (cli_oci_ref_parse(args->pos[1], plain, &ref, &err) != TW_OK)
    return cli_usage_error(cli, c, "%s", err.msg);
  if (ref.digest[0] != '\0')
    return cli_usage_error(cli, c,
                           "'%s': a push names a tag, not a digest (the "
                           "digest is the manifest's)",
                           args->pos[1]);
  if (model == NULL) {
    const char *last = strrchr(ref.repo, '/');
    model = last != NULL ? last + 1 : ref.repo;
  }
  if (model[0] == '\0')
    return cli_usage_error(cli, c, "option '--model' needs a name");

  tw_buf wasm = TW_BUF_INIT;
  tw_wasm_engine *e = NULL;
  tw_reg_model m;
  bool built = false;
  cli_http *h = NULL;
  int64_t version = 0;
  int rc = tw_file_read_all(path, PUSH_MAX_MODULE, &wasm, &err);
  if (rc == TW_OK)
    rc = tw_wasm_engine_new(cli->tw, NULL, &e, &err);
  if (rc == TW_OK) {
    tw_err lerr;
    tw_err_init(&lerr);
    rc = tw_reg_model_build(e, wasm.data != NULL ? wasm.data : "", wasm.len,
                            allow_wasi, &m, &lerr);
    built = rc == TW_OK;
    /* Name the file in the loader's message. */
    if (rc != TW_OK && strstr(lerr.msg, path) == NULL)
      tw_err_set(&err, rc, "%.500s: %s", path, lerr.msg);
    else
      tw_err_copy(&err, &lerr);
  }
  if (rc == TW_OK)
    rc = cli_http_open(&h, &err);
  if (rc == TW_OK)
    rc = push_blob(cli, h, &ref, m.config_digest, m.config.data, m.config.len,
                   &err);
  if (rc == TW_OK)
    rc = push_blob(cli, h, &ref, m.wasm_digest, m.wasm, m.wasm_size, &err);
  if (rc == TW_OK)
    rc = cli_oci_manifest_put(h, &ref, ref.tag, m.manifest.data, m.manifest.len,
                              m.manifest_digest, &err);
  int code = CLI_EXIT_OK;
  if (rc == TW_OK && !cli->json) {
    /* Said at once: the push stands even if registering fails. */
    tw_buf b = TW_BUF_INIT;
    code = cli_write_formatted(cli, &b,
                               tw_buf_printf(&b, "pushed %s/%s:%s %s\n",
                                             ref.registry, ref.repo, ref.tag,
                                             m.manifest_digest));
    tw_buf_fini(&b);
  }
  if (rc == TW_OK && code == CLI_EXIT_OK && !no_register)
    rc = register_version(h, ref.base, model, ref.repo, m.manifest_digest,
                          &version, &err);
  if (rc != TW_OK)
    code = cli_fail(cli, &err);
  else if (code == CLI_EXIT_OK)
    code = print_result(cli, &ref, ref.tag, m.manifest_digest, model, version);
  cli_http_close(h);
  if (built)
    tw_reg_model_fini(&m);
  tw_wasm_engine_free(e);
  tw_buf_fini(&wasm);
  return code;
}

const cli_cmd cmd_push = {
    NULL,
    "push",
    "MODEL.wasm REGISTRY/REPOSITORY[:TAG]",
    2,
    2,
    "Push a model to an OCI registry and register it as a model version.",
    "Checks the module as `twin model add` does and builds its OCI artifact\n"
    "(config: the descriptor, one application/wasm layer, artifactType\n"
    "application/vnd.twin.model.v1+json; the same module always gives the\n"
    "same manifest digest), pushes the blobs the repository lacks, then the\n"
    "manifest under TAG (default latest), and prints\n"
    "\"pushed REGISTRY/REPOSITORY:TAG sha256:...\". Then, unless\n"
    "--no-register, it registers the manifest as a new version of the model\n"
    "(--model, default the repository's last component) through the\n"
    "server's REST API, creating the model if needed, and prints\n"
    "\"registered MODEL version N\". The registry is spoken to over HTTPS\n"
    "unless --plain-http.",
    push_opts,
    run_push};
