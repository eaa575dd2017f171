/*
 * main.c - entry point of `twin`: global options, dispatch of
 * `twin <noun> <verb>`, `twin help`, `twin version`.
 *
 * The CLI is a client of the public C API only. It installs the log sink
 * (stderr), owns the tw_ctx and, with --metrics-out, writes the run's
 * metrics in the Prometheus text format atomically (the node_exporter
 * textfile-collector convention).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static int run_help(cli_ctx *cli, const cli_args *args);
static int run_version(cli_ctx *cli, const cli_args *args);

static const cli_opt help_opts[] = {{NULL, 0, NULL, NULL}};
static const cli_cmd cmd_help = {
    NULL,
    "help",
    "[NOUN [VERB]]",
    0,
    2,
    "Show the commands, or the help of one command.",
    "'twin help' lists every command; 'twin help NOUN' the verbs of a noun;\n"
    "'twin help NOUN VERB' (or 'twin NOUN VERB --help') one command.",
    help_opts,
    run_help};

static const cli_opt version_opts[] = {
    {"json", 0, NULL, "print {\"version\": ...} as JSON"},
    {NULL, 0, NULL, NULL}};
static const cli_cmd cmd_version = {
    NULL,       "version",
    "",         0,
    0,          "Print the version of twin and libtwin.",
    NULL,       version_opts,
    run_version};

/* The table, in the order `twin help` lists it. */
static const cli_cmd *const commands[] = {&cmd_help,
                                          &cmd_version,
                                          &cmd_blob_digest,
                                          &cmd_sim_bench,
                                          &cmd_model_build,
                                          &cmd_model_inspect,
                                          &cmd_model_run,
                                          &cmd_model_add,
                                          &cmd_graph_validate,
                                          &cmd_graph_run,
                                          &cmd_graph_grad,
                                          &cmd_graph_fmt,
                                          &cmd_compose_validate,
                                          &cmd_compose_graph,
                                          &cmd_compose_up,
                                          &cmd_system_info,
                                          &cmd_serve,
                                          &cmd_ingest,
                                          &cmd_replay,
                                          &cmd_calibrate,
                                          &cmd_registry_gc,
                                          &cmd_push,
                                          &cmd_pull,
                                          &cmd_models_list,
                                          &cmd_models_show,
                                          &cmd_models_alias,
                                          NULL};

/* Global options, accepted before the command words. */
static const cli_opt global_opts[] = {
    {"help", 'h', NULL, "show help and exit"},
    {"version", 0, NULL, "print the version and exit"},
    {"log-level", 0, "LEVEL", "trace|debug|info|warn|error|off (default warn)"},
    {"log-format", 0, "FORMAT", "text|json (default text)"},
    {"threads", 0, "N", "worker threads, 0 = one per CPU (default 0)"},
    {"metrics-out", 0, "FILE",
     "write this run's metrics (Prometheus text format) to FILE"},
    {NULL, 0, NULL, NULL}};
static const cli_cmd cmd_global = {
    NULL, "",          "<noun> <verb> [options] [args]",
    0,    -1,          "Twin: differentiable digital twins.",
    NULL, global_opts, NULL};

static void print_overview(FILE *f) {
  fputs("usage: twin [global options] <noun> <verb> [options] [args]\n\n"
        "Twin builds differentiable digital twins: physics and learned "
        "blocks,\nsandboxed models, live data, exact gradients.\n\n"
        "commands:\n",
        f);
  for (int i = 0; commands[i] != NULL; i++) {
    const cli_cmd *c = commands[i];
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", c->noun ? c->noun : "",
             c->noun ? " " : "", c->verb);
    fprintf(f, "  %-20s %s\n", name, c->summary);
  }
  fputs("\nglobal options:\n", f);
  for (int i = 0; global_opts[i].name != NULL; i++) {
    const cli_opt *o = &global_opts[i];
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", o->name, o->argname ? " " : "",
             o->argname ? o->argname : "");
    fprintf(f, "  %-24s %s\n", left, o->help);
  }
  fputs("\nExit status: 0 success, 1 the work failed, 2 bad usage.\n"
        "Run 'twin help NOUN VERB' for the options of a command.\n",
        f);
}

static bool is_noun(const char *w) {
  for (int i = 0; commands[i] != NULL; i++)
    if (commands[i]->noun != NULL && strcmp(commands[i]->noun, w) == 0)
      return true;
  return false;
}

static const cli_cmd *find_cmd(const char *noun, const char *verb) {
  for (int i = 0; commands[i] != NULL; i++) {
    const cli_cmd *c = commands[i];
    if (((c->noun == NULL && noun == NULL) ||
         (c->noun != NULL && noun != NULL && strcmp(c->noun, noun) == 0)) &&
        strcmp(c->verb, verb) == 0)
      return c;
  }
  return NULL;
}

/* Edit distance, for "did you mean" (words are short: a small table). */
static size_t distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 31 || lb > 31)
    return 99;
  size_t d[32][32];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
  return d[la][lb];
}

/* The closest noun or top-level verb to w (noun == NULL), or the closest
 * verb of noun; NULL if nothing is close. */
static const char *suggest(const char *noun, const char *w) {
  const char *best = NULL;
  size_t best_d = 3;
  for (int i = 0; commands[i] != NULL; i++) {
    const cli_cmd *c = commands[i];
    const char *cand;
    if (noun == NULL)
      cand = c->noun ? c->noun : c->verb;
    else if (c->noun != NULL && strcmp(c->noun, noun) == 0)
      cand = c->verb;
    else
      continue;
    size_t d = distance(w, cand);
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  }
  return best;
}

static void list_verbs(FILE *f, const char *noun) {
  fprintf(f, "verbs of '%s':\n", noun);
  for (int i = 0; commands[i] != NULL; i++)
    if (commands[i]->noun && strcmp(commands[i]->noun, noun) == 0)
      fprintf(f, "  %-12s %s\n", commands[i]->verb, commands[i]->summary);
}

static int run_help(cli_ctx *cli, const cli_args *args) {
  if (args->npos == 0) {
    print_overview(cli->out);
    return CLI_EXIT_OK;
  }
  const char *w1 = args->pos[0];
  const cli_cmd *c = NULL;
  if (args->npos == 1) {
    c = find_cmd(NULL, w1);
    if (c == NULL && is_noun(w1)) {
      list_verbs(cli->out, w1);
      return CLI_EXIT_OK;
    }
  } else {
    c = find_cmd(w1, args->pos[1]);
  }
  if (c == NULL) {
    const char *s = suggest(args->npos == 2 && is_noun(w1) ? w1 : NULL,
                            args->npos == 2 && is_noun(w1) ? args->pos[1] : w1);
    return cli_usage_error(
        cli, NULL, "no help for unknown command '%s%s%s'%s%s%s", w1,
        args->npos == 2 ? " " : "", args->npos == 2 ? args->pos[1] : "",
        s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
  }
  cli_print_help(cli->out, c);
  return CLI_EXIT_OK;
}

static int run_version(cli_ctx *cli, const cli_args *args) {
  (void)args;
  tw_buf b = TW_BUF_INIT;
  int rc;
  if (cli->json)
    rc = tw_buf_printf(&b,
                       "{\"version\":\"%s\",\"library\":\"%s\","
                       "\"library_version_number\":%u}\n",
                       TW_VERSION_STRING, tw_version_string(),
                       tw_version_number());
  else
    rc = tw_buf_printf(&b, "twin %s (libtwin %s)\n", TW_VERSION_STRING,
                       tw_version_string());
  int code = rc == TW_OK ? cli_write_out(cli, &b) : CLI_EXIT_FAIL;
  tw_buf_fini(&b);
  return code;
}

/* Writes the registry to path atomically (tw_file_write_atomic), so a
 * scraper never reads half a file. */
static int write_metrics(cli_ctx *cli, const char *path) {
  tw_err err;
  tw_err_init(&err);
  tw_buf b = TW_BUF_INIT;
  int rc = tw_metrics_render(tw_ctx_metrics(cli->tw), &b);
  if (rc != TW_OK)
    tw_err_set(&err, rc, "cannot render the metrics");
  else
    rc = tw_file_write_atomic(path, b.data, b.len, &err);
  tw_buf_fini(&b);
  return rc == TW_OK ? CLI_EXIT_OK : cli_fail(cli, &err);
}

static bool wants_help(int argc, char **argv) {
  for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return true;
  return false;
}

int main(int argc, char **argv) {
  /* A closed pipe must be a write error (exit 1), never a signal. */
  signal(SIGPIPE, SIG_IGN);
  cli_ctx cli = {NULL, false, NULL, commands, stdout, stderr};
  tw_ctx_options opts;
  tw_ctx_options_init(&opts);
  opts.log_level = TW_LOG_WARN;
  opts.log_sink = tw_log_sink_file;
  opts.log_ud = stderr;
  const char *metrics_out = NULL;

  /* Global options end at the first word that is not an option. */
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    const char *eq = strchr(a, '=');
    char name[64];
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), a);
    const char *val = eq ? eq + 1 : NULL;
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
      print_overview(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
      cli_args none;
      memset(&none, 0, sizeof none);
      return run_version(&cli, &none);
    }
    int idx =
        strncmp(name, "--", 2) == 0 ? cli_opt_index(&cmd_global, name + 2) : -1;
    if (idx < 0)
      return cli_usage_error(&cli, NULL, "unknown global option '%s'", name);
    if (val == NULL) {
      if (i + 1 >= argc)
        return cli_usage_error(&cli, NULL, "option '%s' needs a value (%s)",
                               name, global_opts[idx].argname);
      val = argv[++i];
    }
    if (strcmp(name, "--log-level") == 0) {
      int lvl = tw_log_level_parse(val);
      if (lvl < 0)
        return cli_usage_error(&cli, NULL, "unknown log level '%s'", val);
      opts.log_level = (tw_log_level)lvl;
    } else if (strcmp(name, "--log-format") == 0) {
      if (strcmp(val, "text") == 0)
        opts.log_format = TW_LOG_TEXT;
      else if (strcmp(val, "json") == 0)
        opts.log_format = TW_LOG_JSON;
      else
        return cli_usage_error(&cli, NULL,
                               "unknown log format '%s' (text or json)", val);
    } else if (strcmp(name, "--threads") == 0) {
      unsigned long n;
      cli.cmd = NULL;
      if (cli_parse_uint(&cli, "threads", val, 1024, &n) != 0)
        return CLI_EXIT_USAGE;
      opts.threads = (unsigned)n;
    } else if (strcmp(name, "--metrics-out") == 0) {
      metrics_out = val;
    }
  }
  if (i >= argc)
    return cli_usage_error(&cli, NULL, "no command given");

  const cli_cmd *cmd = find_cmd(NULL, argv[i]);
  int first_arg = i + 1;
  if (cmd == NULL) {
    const char *noun = argv[i];
    if (!is_noun(noun)) {
      const char *s = suggest(NULL, noun);
      return cli_usage_error(&cli, NULL, "unknown command '%s'%s%s%s", noun,
                             s ? " (did you mean '" : "", s ? s : "",
                             s ? "'?)" : "");
    }
    if (i + 1 >= argc || argv[i + 1][0] == '-') {
      cli_usage_error(&cli, NULL, "'%s' needs a verb", noun);
      list_verbs(stderr, noun);
      return CLI_EXIT_USAGE;
    }
    cmd = find_cmd(noun, argv[i + 1]);
    if (cmd == NULL) {
      const char *s = suggest(noun, argv[i + 1]);
      cli_usage_error(&cli, NULL, "unknown command '%s %s'%s%s%s", noun,
                      argv[i + 1], s ? " (did you mean '" : "", s ? s : "",
                      s ? "'?)" : "");
      list_verbs(stderr, noun);
      return CLI_EXIT_USAGE;
    }
    first_arg = i + 2;
  }
  if (wants_help(argc - first_arg, argv + first_arg)) {
    cli_print_help(stdout, cmd);
    return CLI_EXIT_OK;
  }
  cli_args args;
  if (cli_parse(&cli, cmd, argc - first_arg, argv + first_arg, &args) != 0)
    return CLI_EXIT_USAGE;

  tw_err err;
  tw_err_init(&err);
  if (tw_ctx_new(&opts, &cli.tw, &err) != TW_OK)
    return cli_fail(&cli, &err);
  int code = cmd->run(&cli, &args);
  if (metrics_out != NULL) {
    int mc = write_metrics(&cli, metrics_out);
    if (code == CLI_EXIT_OK)
      code = mc;
  }
  tw_ctx_free(cli.tw);
  return code;
}
