/*
 * cmd_pull.c - `twin pull`: a model artifact from an OCI registry into a
 * .wasm file.
 *
 * The manifest (at most TW_REG_MANIFEST_MAX bytes) is hashed, and must
 * hash to the digest a reference by digest names; tw_reg_model_parse
 * checks that it is a model and gives the layer's digest and size. The
 * layer is streamed into a temporary file next to the output (mkstemp),
 * hashed as it is written; more bytes than the manifest says abort the
 * download at once. Only a layer of the right size and digest is synced
 * and renamed into place: on any failure neither the output nor the
 * temporary is left behind, and an existing output is untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "oci_client.h"

static const cli_opt pull_opts[] = {
    {"output", 'o', "FILE", "write the module to FILE (required)"},
    {"plain-http", 0, NULL, "talk HTTP, not HTTPS, to the registry"},
    {"json", 0, NULL, "print one JSON object"},
    {NULL, 0, NULL, NULL}};

/* The layer on its way to the temporary file. */
typedef struct pull_sink {
  int fd;
  const char *tmp;
  tw_sha256_state *hash;
  int64_t got, want;
  const char *digest;
} pull_sink;

static int on_data(void *ud, const void *data, size_t n, tw_err *err) {
  pull_sink *p = ud;
  if ((uint64_t)n > (uint64_t)(p->want - p->got))
    return tw_err_set(err, TW_EDIGEST,
                      "model %s: the registry sends more than the %lld bytes "
                      "the manifest says",
                      p->digest, (long long)p->want);
  p->got += (int64_t)n;
  if (tw_sha256_update(p->hash, data, n) != TW_OK)
    return tw_err_set(err, TW_EINTERNAL, "model %s: cannot hash", p->digest);
  return tw_file_write_all(p->fd, p->tmp, data, n, err);
}

/* The layer received must be the one the manifest names. */
static int check_layer(pull_sink *p, tw_err *err) {
  if (p->got != p->want)
    return tw_err_set(err, TW_EDIGEST,
                      "model %s: %lld bytes received, the manifest says %lld",
                      p->digest, (long long)p->got, (long long)p->want);
  uint8_t d[TW_SHA256_LEN];
  char hex[TW_SHA256_HEX_LEN + 1];
  if (tw_sha256_final(p->hash, d) != TW_OK)
    return tw_err_set(err, TW_EINTERNAL, "model %s: cannot hash", p->digest);
  tw_hex_encode(d, sizeof d, hex);
  if (strcmp(hex, p->digest + 7) != 0)
    return tw_err_set(err, TW_EDIGEST,
                      "model: the module received hashes to sha256:%s, the "
                      "manifest says %s",
                      hex, p->digest);
  return TW_OK;
}

/* Downloads the layer of mref into a temporary file next to out, then
 * renames it into place. */
static int fetch_layer(cli_http *h, const cli_oci_ref *ref,
                       const tw_reg_model_ref *mref, const char *out,
                       tw_err *err) {
  tw_buf tmp = TW_BUF_INIT;
  if (tw_buf_printf(&tmp, "%s.tmp-XXXXXX", out) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", out);
  pull_sink p = {-1, tmp.data, NULL, 0, mref->wasm_size, mref->wasm_digest};
  int rc = TW_OK;
  p.fd = mkostemp(tmp.data, O_CLOEXEC);
  if (p.fd < 0)
    rc = tw_err_sys(err, errno, "%s: cannot create a temporary file", out);
  if (rc == TW_OK && tw_sha256_new(&p.hash) != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  if (rc == TW_OK) {
    /* mkstemp makes 0600; a pulled module is as readable as any file. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(p.fd, 0644 & ~mask) != 0)
      rc = tw_err_sys(err, errno, "%s: cannot set the mode", tmp.data);
  }
  if (rc == TW_OK)
    rc = cli_oci_blob_get(h, ref, mref->wasm_digest, on_data, &p, err);
  if (rc == TW_OK)
    rc = check_layer(&p, err);
  if (rc == TW_OK && fsync(p.fd) != 0)
    rc = tw_err_sys(err, errno, "%s: fsync failed", tmp.data);
  if (p.fd >= 0 && close(p.fd) != 0 && rc == TW_OK)
    rc = tw_err_sys(err, errno, "%s: close failed", tmp.data);
  if (rc == TW_OK && rename(tmp.data, out) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot rename '%s' into place", out,
                    tmp.data);
  if (rc != TW_OK && p.fd >= 0)
    (void)unlink(tmp.data);
  if (rc == TW_OK)
    rc = tw_file_sync_dir(out, err);
  tw_sha256_free(p.hash);
  tw_buf_fini(&tmp);
  return rc;
}

static int print_result(cli_ctx *cli, const cli_oci_ref *ref,
                        const char *digest, const tw_reg_model_ref *mref,
                        const char *out) {
  tw_buf b = TW_BUF_INIT;
  int rc;
  const char *sep = ref->digest[0] != '\0' ? "@" : ":";
  const char *reference = ref->digest[0] != '\0' ? ref->digest : ref->tag;
  if (!cli->json) {
    rc = tw_buf_printf(&b, "pulled %s/%s%s%s %s to %s (%lld bytes)\n",
                       ref->registry, ref->repo, sep, reference, digest, out,
                       (long long)mref->wasm_size);
  } else {
    rc = cli_oci_ref_json(&b, ref, ref->tag);
    if (rc == TW_OK)
      rc = tw_buf_printf(&b,
                         ",\"digest\":\"%s\",\"wasm_digest\":\"%s\","
                         "\"size\":%lld,\"output\":",
                         digest, mref->wasm_digest, (long long)mref->wasm_size);
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(&b, out, strlen(out));
    if (rc == TW_OK)
      rc = tw_buf_puts(&b, "}\n");
  }
  int code = cli_write_formatted(cli, &b, rc);
  tw_buf_fini(&b);
  return code;
}

static int run_pull(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  const char *out = cli_opt_value(c, args, "output");
  bool plain = cli_opt_value(c, args, "plain-http") != NULL;
  if (out == NULL || out[0] == '\0')
    return cli_usage_error(cli, c,
                           "missing '-o FILE': where to write the "
                           "module");
  tw_err err;
  tw_err_init(&err);
  cli_oci_ref ref;
  if (cli_oci_ref_parse(args->pos[0], plain, &ref, &err) != TW_OK)
    return cli_usage_error(cli, c, "%s", err.msg);

  cli_http *h = NULL;
  tw_buf manifest = TW_BUF_INIT;
  char digest[TW_STORE_DIGEST_LEN + 1];
  tw_reg_model_ref mref;
  int rc = cli_http_open(&h, &err);
  if (rc == TW_OK)
    rc = cli_oci_manifest_get(h, &ref, &manifest, digest, &err);
  if (rc == TW_OK) {
    tw_err perr;
    tw_err_init(&perr);
    rc = tw_reg_model_parse(manifest.data != NULL ? manifest.data : "",
                            manifest.len, &mref, &perr);
    if (rc != TW_OK)
      tw_err_set(&err, rc, "%s/%s%s%s: %s", ref.registry, ref.repo,
                 ref.digest[0] != '\0' ? "@" : ":",
                 ref.digest[0] != '\0' ? ref.digest : ref.tag, perr.msg);
  }
  if (rc == TW_OK)
    rc = fetch_layer(h, &ref, &mref, out, &err);
  int code = rc == TW_OK ? print_result(cli, &ref, digest, &mref, out)
                         : cli_fail(cli, &err);
  tw_buf_fini(&manifest);
  cli_http_close(h);
  return code;
}

const cli_cmd cmd_pull = {
    NULL,
    "pull",
    "REGISTRY/REPOSITORY[:TAG|@DIGEST] -o MODEL.wasm",
    1,
    1,
    "Pull a model from an OCI registry into a .wasm file.",
    "Fetches the image manifest of the reference (tag default latest),\n"
    "checks that it is a model artifact (one application/wasm layer) and,\n"
    "pulled by digest, that it hashes to that digest, then downloads the\n"
    "module into a temporary file next to -o FILE, checking its size and\n"
    "sha256 against the manifest as it arrives, and renames it into place.\n"
    "Prints \"pulled REF sha256:<manifest> to FILE (N bytes)\". On any\n"
    "failure FILE is not written. The registry is spoken to over HTTPS\n"
    "unless --plain-http.",
    pull_opts,
    run_pull};
