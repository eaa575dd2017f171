/*
 * cli.c - option parsing, usage and error reporting for `twin`.
 *
 * Parsing follows GNU conventions: options may come before, between or
 * after positional arguments; "--name=value", "--name value", "-x value";
 * "--" ends the options. Anything unknown is a usage error (exit 2) that
 * names the offending word and shows the command's usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_opt_index(const cli_cmd *cmd, const char *name) {
  for (int i = 0; cmd->opts != NULL && cmd->opts[i].name != NULL; i++)
    if (strcmp(cmd->opts[i].name, name) == 0)
      return i;
  return -1;
}

const char *cli_opt_value(const cli_cmd *cmd, const cli_args *args,
                          const char *name) {
  int i = cli_opt_index(cmd, name);
  return i < 0 ? NULL : args->values[i];
}

int cli_opt_values(const cli_cmd *cmd, const cli_args *args, const char *name,
                   const char **out, int max) {
  int idx = cli_opt_index(cmd, name), n = 0;
  for (int i = 0; idx >= 0 && i < args->nocc; i++)
    if (args->occ_opt[i] == idx) {
      if (n < max)
        out[n] = args->occ_value[i];
      n++;
    }
  return n;
}

static int short_index(const cli_cmd *cmd, char c) {
  for (int i = 0; cmd->opts != NULL && cmd->opts[i].name != NULL; i++)
    if (cmd->opts[i].short_name == c)
      return i;
  return -1;
}

static void print_command_name(FILE *f, const cli_cmd *cmd) {
  if (cmd->noun != NULL)
    fprintf(f, "twin %s %s", cmd->noun, cmd->verb);
  else
    fprintf(f, "twin %s", cmd->verb);
}

void cli_print_usage(FILE *f, const cli_cmd *cmd) {
  fputs("usage: ", f);
  print_command_name(f, cmd);
  if (cmd->opts != NULL && cmd->opts[0].name != NULL)
    fputs(" [options]", f);
  if (cmd->args_usage != NULL && cmd->args_usage[0] != '\0')
    fprintf(f, " %s", cmd->args_usage);
  fputc('\n', f);
}

void cli_print_help(FILE *f, const cli_cmd *cmd) {
  cli_print_usage(f, cmd);
  fprintf(f, "\n%s\n", cmd->summary);
  if (cmd->description != NULL)
    fprintf(f, "\n%s\n", cmd->description);
  if (cmd->opts == NULL || cmd->opts[0].name == NULL)
    return;
  fputs("\noptions:\n", f);
  for (int i = 0; cmd->opts[i].name != NULL; i++) {
    const cli_opt *o = &cmd->opts[i];
    char left[64];
    int n = snprintf(
        left, sizeof left, "%s%c%s--%s%s%s", o->short_name ? "-" : "",
        o->short_name ? o->short_name : ' ', o->short_name ? ", " : " ",
        o->name, o->argname ? " " : "", o->argname ? o->argname : "");
    if (n < 0)
      left[0] = '\0';
    const char *l = o->short_name ? left : left + 2;
    fprintf(f, "  %-24s %s\n", l, o->help);
  }
}

/* Prints "error: EUSAGE: ..." as text or JSON. */
static void print_error(cli_ctx *cli, const char *code, const char *msg) {
  if (cli->json) {
    tw_buf b = TW_BUF_INIT;
    int rc = tw_buf_puts(&b, "{\"error\":{\"code\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(&b, code, strlen(code));
    if (rc == TW_OK)
      rc = tw_buf_puts(&b, ",\"message\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(&b, msg, strlen(msg));
    if (rc == TW_OK)
      rc = tw_buf_puts(&b, "}}\n");
    if (rc == TW_OK) {
      fputs(b.data, cli->errs);
      tw_buf_fini(&b);
      return;
    }
    tw_buf_fini(&b);
  }
  fprintf(cli->errs, "error: %s: %s\n", code, msg);
}

int cli_usage_error(cli_ctx *cli, const cli_cmd *cmd, const char *fmt, ...) {
  char msg[TW_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0)
    msg[0] = '\0';
  print_error(cli, tw_err_name(TW_EUSAGE), msg);
  if (cmd != NULL) {
    cli_print_usage(cli->errs, cmd);
    fputs("Run 'twin help ", cli->errs);
    if (cmd->noun != NULL)
      fprintf(cli->errs, "%s ", cmd->noun);
    fprintf(cli->errs, "%s' for details.\n", cmd->verb);
  } else {
    fputs("usage: twin [global options] <noun> <verb> [options] [args]\n"
          "Run 'twin help' for the list of commands.\n",
          cli->errs);
  }
  return CLI_EXIT_USAGE;
}

int cli_fail(cli_ctx *cli, const tw_err *err) {
  print_error(cli, tw_err_name(err->code), tw_err_msg(err));
  return CLI_EXIT_FAIL;
}

int cli_parse_uint(cli_ctx *cli, const char *opt, const char *text,
                   unsigned long max, unsigned long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (text[0] == '\0' || text[0] == '-' || text[0] == '+' || *end != '\0' ||
      errno != 0 || v > max)
    return cli_usage_error(cli, cli->cmd,
                           "option '--%s' needs an integer in [0, %lu], got "
                           "'%s'",
                           opt, max, text);
  *out = v;
  return 0;
}

int cli_parse_size(cli_ctx *cli, const char *opt, const char *text,
                   unsigned long max, unsigned long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  unsigned shift = 0;
  bool ok = text[0] >= '0' && text[0] <= '9' && errno == 0;
  if (ok && *end != '\0') {
    const char *units = "KMGT";
    const char *u = strchr(units, end[0] & ~0x20);
    ok = end[0] != '\0' && u != NULL &&
         (end[1] == '\0' || strcmp(end + 1, "iB") == 0 ||
          strcmp(end + 1, "B") == 0);
    shift = ok ? 10 * (unsigned)(u - units + 1) : 0;
  }
  if (ok && shift > 0 && v > (max >> shift))
    ok = false;
  if (ok)
    v <<= shift;
  if (!ok || v > max)
    return cli_usage_error(cli, cli->cmd,
                           "option '--%s' needs a size in bytes up to %lu, "
                           "optionally with K, M, G or T (KiB ...), got '%s'",
                           opt, max, text);
  *out = v;
  return 0;
}

int cli_parse(cli_ctx *cli, const cli_cmd *cmd, int argc, char **argv,
              cli_args *args) {
  memset(args, 0, sizeof *args);
  args->pos = argv;
  cli->cmd = cmd;
  bool only_pos = false;
  for (int i = 0; i < argc; i++) {
    char *a = argv[i];
    if (only_pos || a[0] != '-' || a[1] == '\0') {
      argv[args->npos++] = a; /* compact positionals in place */
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_pos = true;
      continue;
    }
    int idx;
    const char *inline_val = NULL;
    char name[64];
    if (a[1] == '-') {
      const char *eq = strchr(a + 2, '=');
      size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
      if (len >= sizeof name)
        len = sizeof name - 1;
      memcpy(name, a + 2, len);
      name[len] = '\0';
      inline_val = eq ? eq + 1 : NULL;
      idx = cli_opt_index(cmd, name);
      if (idx < 0)
        return cli_usage_error(cli, cmd, "unknown option '--%s'", name);
    } else {
      idx = short_index(cmd, a[1]);
      /* -Ovalue: attached only to a short option that takes a value. */
      if (idx < 0 || (a[2] != '\0' && cmd->opts[idx].argname == NULL))
        return cli_usage_error(cli, cmd, "unknown option '%s'", a);
      inline_val = a[2] != '\0' ? a + 2 : NULL;
      snprintf(name, sizeof name, "%s", cmd->opts[idx].name);
    }
    const cli_opt *o = &cmd->opts[idx];
    if (args->nocc == CLI_MAX_OCCURRENCES)
      return cli_usage_error(cli, cmd, "more than %d options",
                             CLI_MAX_OCCURRENCES);
    if (o->argname == NULL) {
      if (inline_val != NULL)
        return cli_usage_error(cli, cmd, "option '--%s' takes no value", name);
      args->values[idx] = "";
    } else if (inline_val != NULL) {
      args->values[idx] = inline_val;
    } else if (i + 1 < argc) {
      args->values[idx] = argv[++i];
    } else {
      return cli_usage_error(cli, cmd, "option '--%s' needs a value (%s)", name,
                             o->argname);
    }
    args->occ_opt[args->nocc] = idx;
    args->occ_value[args->nocc++] = args->values[idx];
  }
  if (args->npos < cmd->min_args)
    return cli_usage_error(cli, cmd, "missing argument%s: expected %s",
                           cmd->min_args > 1 ? "s" : "",
                           cmd->args_usage ? cmd->args_usage : "arguments");
  if (cmd->max_args >= 0 && args->npos > cmd->max_args)
    return cli_usage_error(cli, cmd, "unexpected argument '%s'",
                           args->pos[cmd->max_args]);
  if (cli_opt_index(cmd, "json") >= 0 && cli_opt_value(cmd, args, "json"))
    cli->json = true;
  return 0;
}

int cli_wasm_limits(cli_ctx *cli, const cli_args *args, tw_wasm_limits *out) {
  const cli_cmd *c = cli->cmd;
  unsigned long fuel = 0, tmo = 0;
  const char *v;
  if ((v = cli_opt_value(c, args, "fuel")) != NULL &&
      cli_parse_uint(cli, "fuel", v, ~0ul, &fuel) != 0)
    return CLI_EXIT_USAGE;
  if ((v = cli_opt_value(c, args, "timeout-ms")) != NULL &&
      cli_parse_uint(cli, "timeout-ms", v, 1ul << 31, &tmo) != 0)
    return CLI_EXIT_USAGE;
  if (fuel == 0 && tmo == 0)
    tmo = CLI_DEFAULT_TIMEOUT_MS;
  out->fuel = fuel;
  out->timeout_ms = (uint32_t)tmo;
  return CLI_EXIT_OK;
}

int cli_write_formatted(cli_ctx *cli, const tw_buf *buf, int format_rc) {
  if (format_rc == TW_OK)
    return cli_write_out(cli, buf);
  tw_err err;
  tw_err_init(&err);
  tw_err_set(&err, format_rc, "cannot format the output");
  return cli_fail(cli, &err);
}

int cli_write_out(cli_ctx *cli, const tw_buf *buf) {
  if (buf->len != 0 && fwrite(buf->data, 1, buf->len, cli->out) != buf->len)
    goto fail;
  if (fflush(cli->out) != 0)
    goto fail;
  return CLI_EXIT_OK;
fail:;
  tw_err err;
  tw_err_init(&err);
  tw_err_sys(&err, errno, "cannot write the output");
  return cli_fail(cli, &err);
}

int cli_compose_load(cli_ctx *cli, const cli_args *args, const char *path,
                     tw_compose **out) {
  const cli_cmd *cmd = cli->cmd;
  tw_compose_opts o;
  memset(&o, 0, sizeof o);
  o.ctx = cli->tw;
  o.profile = cli_opt_value(cmd, args, "profile");
  o.store = cli_opt_value(cmd, args, "store");
  if (o.profile != NULL && o.profile[0] == '\0')
    return cli_usage_error(cli, cmd, "--profile needs a name");
  const char *files[CLI_MAX_PARAM_FILES + 1];
  int np = cli_opt_values(cmd, args, "params", files, CLI_MAX_PARAM_FILES);
  if (np > CLI_MAX_PARAM_FILES)
    return cli_usage_error(cli, cmd, "at most %d --params files",
                           CLI_MAX_PARAM_FILES);
  o.param_files = files;
  o.nparam_files = (size_t)np;
  if (cli_wasm_limits(cli, args, &o.limits) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_compose_diags d;
  tw_compose_diags_init(&d);
  int rc = tw_compose_load(path, &o, &d, out, &err);
  tw_buf b = TW_BUF_INIT;
  if (tw_compose_diags_format(&d, false, &b) == TW_OK && b.len > 0)
    (void)fwrite(b.data, 1, b.len, cli->errs);
  tw_buf_fini(&b);
  tw_compose_diags_fini(&d);
  if (rc == TW_EVALIDATE)
    return CLI_EXIT_FAIL;
  return rc != TW_OK ? cli_fail(cli, &err) : CLI_EXIT_OK;
}
