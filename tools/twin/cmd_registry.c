/*
 * cmd_registry.c - `twin registry gc`: garbage collection of a registry's
 * data directory (the --data of `twin serve`): blobs no manifest of any
 * repository references, older than a grace period, and upload sessions
 * left unfinished. It is safe while a server runs on the same directory:
 * the registry's store lock makes pushes wait for the sweep, and the
 * grace period keeps the blobs of a push whose manifest has not arrived.
 *
 * Prints what was (or, with --dry-run, would be) removed; --json one
 * object with the counts.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"

static const cli_opt gc_opts[] = {
    {"data", 0, "DIR", "the registry's data directory (./twin-data)"},
    {"grace", 0, "SECONDS",
     "keep unreferenced blobs younger than this (default 3600)"},
    {"upload-ttl", 0, "SECONDS",
     "remove upload sessions idle this long (default 604800, 7 days)"},
    {"dry-run", 0, NULL, "count what would be removed, remove nothing"},
    {"json", 0, NULL, "print one JSON object"},
    {NULL, 0, NULL, NULL}};

static int run_gc(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *c = cli->cmd;
  const char *data = cli_opt_value(c, args, "data");
  const char *grace = cli_opt_value(c, args, "grace");
  const char *ttl = cli_opt_value(c, args, "upload-ttl");
  bool dry = cli_opt_value(c, args, "dry-run") != NULL;
  unsigned long grace_s = 3600, ttl_s = 7ul * 24 * 3600;
  if ((grace != NULL && cli_parse_uint(cli, "grace", grace, 10ul * 365 * 86400,
                                       &grace_s) != 0) ||
      (ttl != NULL &&
       cli_parse_uint(cli, "upload-ttl", ttl, 10ul * 365 * 86400, &ttl_s) != 0))
    return CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_reg *reg = NULL;
  tw_reg_gc_opts opts = {(int64_t)grace_s, dry};
  tw_reg_gc_stats st;
  memset(&st, 0, sizeof st);
  size_t uploads = 0;
  const char *dir = data ? data : "twin-data";
  struct stat sb;
  int rc =
      stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)
          ? tw_reg_open(dir, &reg, &err)
          : tw_err_set(&err, TW_ENOENT, "%s: no registry data directory", dir);
  /* Sessions first: their bytes are not blobs yet, and a dry run leaves
   * them too. */
  if (rc == TW_OK && !dry)
    rc = tw_reg_upload_gc(reg, (int64_t)ttl_s, &uploads, &err);
  if (rc == TW_OK)
    rc = tw_reg_gc(reg, &opts, &st, &err);
  tw_reg_close(reg);
  if (rc != TW_OK)
    return cli_fail(cli, &err);
  tw_buf b = TW_BUF_INIT;
  int frc;
  if (cli->json)
    frc = tw_buf_printf(&b,
                        "{\"dry_run\":%s,\"manifests\":%zu,\"referenced\":%zu,"
                        "\"swept\":%zu,\"bytes\":%" PRIu64
                        ",\"young\":%zu,\"links\":%zu,"
                        "\"uploads\":%zu}\n",
                        dry ? "true" : "false", st.manifests, st.marked,
                        st.swept, st.bytes, st.young, st.links, uploads);
  else
    frc = tw_buf_printf(
        &b,
        "%s %zu unreferenced blobs (%" PRIu64 " bytes) and %zu links; "
        "kept %zu referenced by %zu manifests and %zu younger than %lu s\n",
        dry ? "would remove" : "removed", st.swept, st.bytes, st.links,
        st.marked, st.manifests, st.young, grace_s);
  if (frc == TW_OK && !cli->json && !dry)
    frc = tw_buf_printf(&b, "removed %zu idle upload sessions\n", uploads);
  int code = cli_write_formatted(cli, &b, frc);
  tw_buf_fini(&b);
  return code;
}

const cli_cmd cmd_registry_gc = {
    "registry",
    "gc",
    "",
    0,
    0,
    "remove unreferenced blobs and stale uploads from a registry",
    "Marks every blob a manifest of any repository references (configs,\n"
    "layers, the manifests an index names) and removes the others older\n"
    "than --grace, with the repository links to them: nothing a tag or\n"
    "digest can reach goes. Upload sessions idle for --upload-ttl are\n"
    "removed first (not in a dry run). Safe while `twin serve` runs on the\n"
    "same --data: pushes wait for the sweep.",
    gc_opts,
    run_gc};
