/*
 * cmd_model_build.c - `twin model build`: C sources to a model module
 * (wasm32) with the model SDK, in one command, then the module loaded in
 * the sandbox once to check it speaks the model ABI and imports nothing
 * it may not.
 *
 * The command runs the compiler (clang --target=wasm32-wasi) as a child
 * with the SDK's header directory and libtwin_model.a; the compiler's own
 * diagnostics reach stderr unchanged, and its failure is ours: exit 1 with
 * "error: EVALIDATE: ...". Where things are found (docs/model-abi.md):
 *
 *   the SDK       --sdk DIR, else $TWIN_MODEL_SDK, else next to this
 *                 executable: <build>/sdk/model for the build tree's
 *                 tools/twin/twin, <prefix>/share/twin/model-sdk for an
 *                 installed <prefix>/bin/twin. A directory holding
 *                 include/twin_model.h and lib/libtwin_model.a.
 *   the compiler  --cc PATH, else $TWIN_MODEL_CC, else clang on PATH.
 *
 * A module that fails the check is removed, so a failed build never
 * leaves an output that looks usable.
 */
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

extern char **environ;

/* The link flags every model gets; see docs/model-abi.md ("Building"). */
static const char *const link_flags[] = {
    "-nostartfiles",     /* no _start: the module is a library */
    "-Wl,--no-entry",    /* ... whose entry points are the exports */
    "-Wl,--strip-debug", /* libc's DWARF would triple the size */
    "-Wl,-z,stack-size=131072", NULL};
/* After the SDK archive: printf with long double support, whose error path
 * for long double would otherwise import WASI's fd_write; then libm. */
static const char *const link_libs[] = {"-lc-printscan-long-double", "-lm",
                                        NULL};

#define MAX_MULTI 32 /* -I and -D values each */

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* True if dir holds the SDK's header and library. */
static bool is_sdk(const char *dir) {
  char p[PATH_MAX];
  int n = snprintf(p, sizeof p, "%s/include/twin_model.h", dir);
  if (n < 0 || (size_t)n >= sizeof p || !is_file(p))
    return false;
  n = snprintf(p, sizeof p, "%s/lib/libtwin_model.a", dir);
  return n >= 0 && (size_t)n < sizeof p && is_file(p);
}

/* Finds the SDK into out[cap] (see the file comment for the order). */
static int find_sdk(const char *opt, char *out, size_t cap, tw_err *err) {
  const char *env = getenv("TWIN_MODEL_SDK");
  const char *given = opt != NULL ? opt : env != NULL && env[0] ? env : NULL;
  if (given != NULL) {
    if (!is_sdk(given))
      return tw_err_set(err, TW_ENOENT,
                        "%s is not a model SDK directory (it needs "
                        "include/twin_model.h and lib/libtwin_model.a)",
                        given);
    (void)snprintf(out, cap, "%s", given);
    return TW_OK;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL)
      *slash = '\0';
    static const char *const rel[] = {"../../sdk/model",
                                      "../share/twin/model-sdk"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
      char cand[PATH_MAX];
      int m = snprintf(cand, sizeof cand, "%s/%s", exe, rel[i]);
      char real[PATH_MAX];
      if (m > 0 && (size_t)m < sizeof cand && realpath(cand, real) != NULL &&
          is_sdk(real)) {
        (void)snprintf(out, cap, "%s", real);
        return TW_OK;
      }
    }
  }
  return tw_err_set(err, TW_ENOENT,
                    "the model SDK was not found next to this twin: set "
                    "TWIN_MODEL_SDK (or pass --sdk) to a directory with "
                    "include/twin_model.h and lib/libtwin_model.a, such as "
                    "<build>/sdk/model");
}

/* A growable argv of borrowed or owned strings. */
typedef struct argv_buf {
  char **v;
  size_t n, cap;
  char *owned[MAX_MULTI * 2 + 8];
  size_t nowned;
} argv_buf;

static int push(argv_buf *a, const char *s) {
  if (a->n + 2 > a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 32;
    char **v = tw_reallocarray(a->v, cap, sizeof *v);
    if (v == NULL)
      return TW_ENOMEM;
    a->v = v;
    a->cap = cap;
  }
  union {
    const char *in;
    char *arg;
  } u = {s}; /* posix_spawn's argv is not const, and never written */
  a->v[a->n++] = u.arg;
  a->v[a->n] = NULL;
  return TW_OK;
}

/* Pushes a + b + c as one new string. */
static int push_cat(argv_buf *v, const char *a, const char *b, const char *c) {
  if (v->nowned == sizeof v->owned / sizeof v->owned[0])
    return TW_ENOMEM;
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *s = tw_alloc(n);
  if (s == NULL)
    return TW_ENOMEM;
  (void)snprintf(s, n, "%s%s%s", a, b, c);
  v->owned[v->nowned++] = s;
  return push(v, s);
}

static void argv_fini(argv_buf *a) {
  for (size_t i = 0; i < a->nowned; i++)
    tw_free(a->owned[i]);
  tw_free(a->v);
}

/* Prints the command line on stderr (--verbose), shell-quoted enough to
 * be pasted back. */
static void print_command(FILE *f, char *const *v) {
  for (size_t i = 0; v[i] != NULL; i++) {
    const char *s = v[i];
    bool plain = s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz"
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_=+./,:@%") == strlen(s);
    (void)fprintf(f, "%s%s%s%s", i ? " " : "", plain ? "" : "'", s,
                  plain ? "" : "'");
  }
  (void)fputc('\n', f);
}

/* Runs argv, its stdout sent to our stderr (so --json keeps stdout JSON),
 * its stderr ours. */
static int run_compiler(char *const *argv, tw_err *err) {
  posix_spawn_file_actions_t fa;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0)
    return tw_err_sys(err, rc, "cannot start %s", argv[0]);
  rc = posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid = 0;
  if (rc == 0)
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc == ENOENT)
    return tw_err_set(err, TW_ENOENT,
                      "the compiler '%s' was not found: install the model "
                      "toolchain (scripts/bootstrap), or name it with --cc "
                      "or TWIN_MODEL_CC",
                      argv[0]);
  if (rc != 0)
    return tw_err_sys(err, rc, "cannot start %s", argv[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return tw_err_sys(err, errno, "waiting for %s", argv[0]);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return TW_OK;
  if (WIFEXITED(status))
    return tw_err_set(err, TW_EVALIDATE,
                      "the model did not compile: %s exited with status %d "
                      "(its diagnostics are above)",
                      argv[0], WEXITSTATUS(status));
  return tw_err_set(err, TW_EIO, "%s was killed by signal %d", argv[0],
                    WTERMSIG(status));
}

/* The compiler command line for the sources into out. */
static int build_argv(cli_ctx *cli, const cli_args *args, const char *cc,
                      const char *sdk, const char *out, argv_buf *a) {
  const cli_cmd *cmd = cli->cmd;
  const char *opt = cli_opt_value(cmd, args, "optimize");
  const char *incs[MAX_MULTI], *defs[MAX_MULTI];
  int ninc = cli_opt_values(cmd, args, "include", incs, MAX_MULTI);
  int ndef = cli_opt_values(cmd, args, "define", defs, MAX_MULTI);
  int rc = push(a, cc);
  if (rc == TW_OK)
    rc = push(a, "--target=wasm32-wasi");
  if (rc == TW_OK)
    rc = push(a, "-msimd128"); /* wasmtime runs SIMD; clang vectorises */
  if (rc == TW_OK)
    rc = push(a, "-std=c11");
  if (rc == TW_OK)
    rc = push_cat(a, "-O", opt != NULL ? opt : "3", "");
  if (rc == TW_OK)
    rc = push(a, "-Wall");
  if (rc == TW_OK)
    rc = push(a, "-Wextra");
  if (rc == TW_OK && cli_opt_value(cmd, args, "werror") != NULL)
    rc = push(a, "-Werror");
  for (int i = 0; rc == TW_OK && i < ninc && i < MAX_MULTI; i++)
    rc = push_cat(a, "-I", incs[i], "");
  if (rc == TW_OK)
    rc = push_cat(a, "-I", sdk, "/include");
  for (int i = 0; rc == TW_OK && i < ndef && i < MAX_MULTI; i++)
    rc = push_cat(a, "-D", defs[i], "");
  for (int i = 0; rc == TW_OK && i < args->npos; i++)
    rc = push(a, args->pos[i]);
  for (size_t i = 0; rc == TW_OK && link_flags[i] != NULL; i++)
    rc = push(a, link_flags[i]);
  if (rc == TW_OK)
    rc = push_cat(a, sdk, "/lib/libtwin_model.a", "");
  for (size_t i = 0; rc == TW_OK && link_libs[i] != NULL; i++)
    rc = push(a, link_libs[i]);
  if (rc == TW_OK)
    rc = push(a, "-o");
  if (rc == TW_OK)
    rc = push(a, out);
  return rc;
}

/* Loads the module as the host would: validation, ABI v1 checks, imports,
 * descriptor. Fills *m on success. */
static int check_module(cli_ctx *cli, const char *path, tw_wasm_engine **e,
                        tw_wasm_module **m, tw_err *err) {
  tw_wasm_engine_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.pool_size = 1;
  int rc = tw_wasm_engine_new(cli->tw, &eo, e, err);
  if (rc == TW_OK)
    rc = tw_wasm_module_load_file(*e, path, NULL, m, err);
  if (rc != TW_OK && err->code != TW_OK) {
    /* The usual cause of a WASI import is stdio: say what to use instead. */
    const char *hint = strstr(err->msg, "wasi_snapshot_preview1") != NULL
                           ? " (a model has no files or console: log with "
                             "tw_model_log, see docs/model-abi.md)"
                           : "";
    char msg[TW_ERR_MSG_MAX + 512];
    (void)snprintf(msg, sizeof msg, "%.400s: %s%s", path, err->msg, hint);
    int code = err->code;
    tw_err_init(err);
    tw_err_set(err, code, "%s", msg);
  }
  return rc;
}

/* The summary line, or the JSON object. */
static int report(cli_ctx *cli, const char *out, const tw_wasm_module *m,
                  tw_buf *b, tw_err *err) {
  uint8_t digest[TW_SHA256_LEN];
  struct stat st;
  int rc = tw_sha256_file(out, digest, err);
  if (rc == TW_OK && stat(out, &st) != 0)
    rc = tw_err_sys(err, errno, "%s", out);
  if (rc != TW_OK)
    return rc;
  char hex[TW_SHA256_HEX_LEN + 1];
  tw_hex_encode(digest, TW_SHA256_LEN, hex);
  const tw_wasm_desc *d = m != NULL ? tw_wasm_module_desc(m) : NULL;
  if (!cli->json) {
    if (d != NULL)
      return tw_buf_printf(b, "%s: model '%s' %s, %lld bytes, sha256:%s%s\n",
                           out, d->name, d->version, (long long)st.st_size, hex,
                           d->differentiable ? ", differentiable" : "");
    return tw_buf_printf(b, "%s: %lld bytes, sha256:%s (not checked)\n", out,
                         (long long)st.st_size, hex);
  }
  rc = tw_buf_puts(b, "{\"output\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, out, strlen(out));
  if (rc == TW_OK)
    rc = tw_buf_printf(b, ",\"size\":%lld,\"digest\":\"sha256:%s\"",
                       (long long)st.st_size, hex);
  if (rc == TW_OK && d != NULL) {
    rc = tw_buf_puts(b, ",\"name\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(b, d->name, strlen(d->name));
    if (rc == TW_OK)
      rc = tw_buf_puts(b, ",\"version\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(b, d->version, strlen(d->version));
    if (rc == TW_OK)
      rc = tw_buf_printf(b, ",\"differentiable\":%s",
                         d->differentiable ? "true" : "false");
  }
  if (rc == TW_OK)
    rc = tw_buf_puts(b, "}\n");
  return rc;
}

/* "model.wasm" for "src/model.c": the first source's stem. */
static int default_output(const char *src, char *out, size_t cap) {
  const char *base = strrchr(src, '/');
  base = base != NULL ? base + 1 : src;
  const char *dot = strrchr(base, '.');
  size_t len = dot != NULL && dot != base ? (size_t)(dot - base) : strlen(base);
  int n = snprintf(out, cap, "%.*s.wasm", (int)len, base);
  return n > 0 && (size_t)n < cap ? TW_OK : TW_EINVAL;
}

static int run_build(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *cmd = cli->cmd;
  tw_err err;
  tw_err_init(&err);
  const char *opt = cli_opt_value(cmd, args, "optimize");
  if (opt != NULL && (strlen(opt) != 1 || strchr("0123sz", opt[0]) == NULL))
    return cli_usage_error(cli, cmd,
                           "option '--optimize' needs 0, 1, 2, 3, s or z, got "
                           "'%s'",
                           opt);
  const char *dummy[1];
  if (cli_opt_values(cmd, args, "include", dummy, 1) > MAX_MULTI ||
      cli_opt_values(cmd, args, "define", dummy, 1) > MAX_MULTI)
    return cli_usage_error(cli, cmd, "at most %d -I and %d -D options",
                           MAX_MULTI, MAX_MULTI);
  for (int i = 0; i < args->npos; i++)
    if (!is_file(args->pos[i])) {
      tw_err_set(&err, TW_ENOENT, "%s: no such source file", args->pos[i]);
      return cli_fail(cli, &err);
    }
  char out_buf[PATH_MAX];
  const char *out = cli_opt_value(cmd, args, "output");
  if (out == NULL) {
    if (default_output(args->pos[0], out_buf, sizeof out_buf) != TW_OK)
      return cli_usage_error(cli, cmd, "cannot name the output: use -o FILE");
    out = out_buf;
  }
  char sdk[PATH_MAX];
  if (find_sdk(cli_opt_value(cmd, args, "sdk"), sdk, sizeof sdk, &err) != TW_OK)
    return cli_fail(cli, &err);
  const char *cc = cli_opt_value(cmd, args, "cc");
  if (cc == NULL)
    cc = getenv("TWIN_MODEL_CC");
  if (cc == NULL || cc[0] == '\0')
    cc = "clang";

  argv_buf a;
  memset(&a, 0, sizeof a);
  int rc = build_argv(cli, args, cc, sdk, out, &a);
  if (rc != TW_OK) {
    argv_fini(&a);
    tw_err_set(&err, rc, "out of memory");
    return cli_fail(cli, &err);
  }
  if (cli_opt_value(cmd, args, "verbose") != NULL)
    print_command(cli->errs, a.v);
  rc = run_compiler(a.v, &err);
  argv_fini(&a);
  if (rc != TW_OK)
    return cli_fail(cli, &err);

  tw_wasm_engine *e = NULL;
  tw_wasm_module *m = NULL;
  if (cli_opt_value(cmd, args, "no-check") == NULL &&
      check_module(cli, out, &e, &m, &err) != TW_OK) {
    (void)unlink(out);
    tw_wasm_engine_free(e);
    return cli_fail(cli, &err);
  }
  tw_buf b = TW_BUF_INIT;
  rc = report(cli, out, m, &b, &err);
  int code = rc == TW_OK ? cli_write_out(cli, &b) : cli_fail(cli, &err);
  tw_buf_fini(&b);
  tw_wasm_module_free(m);
  tw_wasm_engine_free(e);
  return code;
}

static const cli_opt build_opts[] = {
    {"output", 'o', "FILE", "the module to write (default: SOURCE.wasm)"},
    {"optimize", 'O', "LEVEL",
     "optimisation level 0, 1, 2, 3, s, z (default 3)"},
    {"include", 'I', "DIR", "add DIR to the header search path (repeatable)"},
    {"define", 'D', "NAME[=VALUE]", "define a macro (repeatable)"},
    {"werror", 0, NULL, "make compiler warnings errors"},
    {"cc", 0, "PATH", "the compiler (default: $TWIN_MODEL_CC, else clang)"},
    {"sdk", 0, "DIR",
     "the model SDK (default: $TWIN_MODEL_SDK, else next to twin)"},
    {"no-check", 0, NULL, "do not load the module to check it"},
    {"verbose", 'v', NULL, "print the compiler command line on stderr"},
    {"json", 0, NULL, "print {\"output\",\"size\",\"digest\",...} as JSON"},
    {NULL, 0, NULL, NULL}};

const cli_cmd cmd_model_build = {
    "model",
    "build",
    "SOURCE.c...",
    1,
    -1,
    "compile C sources into a model module with the model SDK",
    "Compiles and links the sources for wasm32 (clang --target=wasm32-wasi)\n"
    "against the model SDK (twin_model.h, libtwin_model.a), then loads the\n"
    "module in the sandbox to check the model ABI, its imports and its\n"
    "descriptor. Compiler diagnostics appear on stderr as the compiler\n"
    "prints them; a failed compile or check exits 1 and leaves no module.\n"
    "The SDK is found with --sdk, $TWIN_MODEL_SDK, or next to this twin\n"
    "(<build>/sdk/model in a build tree); see docs/model-abi.md.",
    build_opts,
    run_build};
