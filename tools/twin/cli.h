/*
 * cli.h - the command-line framework of `twin`: command table, option
 * parsing, usage text, error reporting and exit codes.
 *
 * Every command is `twin <noun> <verb> [options] [args]` (or a lone verb
 * such as `twin help`) and is described by one cli_cmd. Options and their
 * help come from the command's table, so parsing, `twin help CMD` and the
 * usage message shown on a mistake can never disagree.
 *
 * Exit codes (DESIGN.md): 0 success, 1 the work failed, 2 bad usage.
 */
#ifndef TWIN_CLI_H
#define TWIN_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "twin/twin.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

#define CLI_MAX_OPTS 32
#define CLI_MAX_OCCURRENCES 64

typedef struct cli_opt {
  const char *name;    /* long name without dashes, e.g. "json" */
  char short_name;     /* 0 if none */
  const char *argname; /* NULL for a flag, else e.g. "N" */
  const char *help;
} cli_opt;

typedef struct cli_ctx cli_ctx;

typedef struct cli_args {
  const char *values[CLI_MAX_OPTS]; /* value, or "" for a set flag, or NULL;
                                       the last one when repeated */
  char **pos;                       /* positional arguments (borrowed) */
  int npos;
  /* Every option given, in command-line order, for options that may be
   * repeated (-I DIR -I DIR); read them with cli_opt_values. */
  int nocc;
  int occ_opt[CLI_MAX_OCCURRENCES];
  const char *occ_value[CLI_MAX_OCCURRENCES];
} cli_args;

typedef struct cli_cmd {
  const char *noun; /* NULL for a top-level verb */
  const char *verb;
  const char *args_usage; /* e.g. "FILE..." */
  int min_args, max_args; /* max -1: unlimited */
  const char *summary;
  const char *description;
  const cli_opt *opts; /* terminated by an entry with name NULL */
  int (*run)(cli_ctx *cli, const cli_args *args);
} cli_cmd;

/* What every command receives. */
struct cli_ctx {
  tw_ctx *tw;
  bool json;          /* --json: machine output on stdout, JSON errors */
  const cli_cmd *cmd; /* the command being run */
  const cli_cmd *const *commands; /* the whole table, NULL-terminated */
  FILE *out;                      /* stdout */
  FILE *errs;                     /* stderr */
};

/* Parses argv for cmd. On a usage error prints it with the command's usage
 * and returns CLI_EXIT_USAGE; otherwise fills args and returns 0. The
 * option named "json" sets cli->json. A short option that takes a value
 * accepts it attached too (-O2, -Iinclude), as getopt does. */
int cli_parse(cli_ctx *cli, const cli_cmd *cmd, int argc, char **argv,
              cli_args *args);

/* Index of option name in cmd->opts, or -1. */
int cli_opt_index(const cli_cmd *cmd, const char *name);
/* Value of option name ("" for a flag that is set), or NULL if absent. */
const char *cli_opt_value(const cli_cmd *cmd, const cli_args *args,
                          const char *name);

/* The values of every occurrence of option name, in order: at most max of
 * them into out. Returns how many there are. */
int cli_opt_values(const cli_cmd *cmd, const cli_args *args, const char *name,
                   const char **out, int max);

/* Prints "usage: twin NOUN VERB [options] ARGS" for cmd on f. */
void cli_print_usage(FILE *f, const cli_cmd *cmd);
/* Prints the full help of cmd (usage, description, options) on f. */
void cli_print_help(FILE *f, const cli_cmd *cmd);

/* Reports a usage mistake: "error: EUSAGE: MESSAGE" and the usage of cmd
 * (or the general usage if cmd is NULL) on stderr. Returns CLI_EXIT_USAGE. */
int cli_usage_error(cli_ctx *cli, const cli_cmd *cmd, const char *fmt, ...)
    TW_PRINTF(3, 4);

/* Reports a failure of the work from err as "error: CODE: MESSAGE" (or, with
 * --json, {"error":{"code":..,"message":..}}) on stderr. Returns
 * CLI_EXIT_FAIL. */
int cli_fail(cli_ctx *cli, const tw_err *err);

/* Parses a non-negative integer option value; usage error otherwise. */
int cli_parse_uint(cli_ctx *cli, const char *opt, const char *text,
                   unsigned long max, unsigned long *out);
/* The same for a size: "65536", "64K", "512M", "2G" (binary multiples;
 * "KiB" and "KB" spellings too). */
int cli_parse_size(cli_ctx *cli, const char *opt, const char *text,
                   unsigned long max, unsigned long *out);

/* Writes buf to the command's stdout; returns CLI_EXIT_FAIL (with a message)
 * if stdout cannot be written, e.g. a closed pipe or a full disk. */
int cli_write_out(cli_ctx *cli, const tw_buf *buf);

/* --fuel N and --timeout-ms N of a command that runs models: the limits
 * per guest call, a CLI_DEFAULT_TIMEOUT_MS deadline when neither is given
 * (a model must never hang the command). CLI_EXIT_USAGE on a bad value. */
#define CLI_DEFAULT_TIMEOUT_MS 10000
int cli_wasm_limits(cli_ctx *cli, const cli_args *args, tw_wasm_limits *out);

/* A command that loads a twin: its --profile, --params/-p (repeated, at
 * most CLI_MAX_PARAM_FILES), --store, --fuel and --timeout-ms options,
 * then the twin at path compiled with them, its diagnostics printed on
 * stderr. Returns CLI_EXIT_OK with *out set, CLI_EXIT_USAGE, or
 * CLI_EXIT_FAIL (reported). */
#define CLI_MAX_PARAM_FILES 16
int cli_compose_load(cli_ctx *cli, const cli_args *args, const char *path,
                     tw_compose **out);

/* cli_write_out when format_rc (the result of formatting buf) is TW_OK;
 * otherwise fails with "cannot format the output". */
int cli_write_formatted(cli_ctx *cli, const tw_buf *buf, int format_rc);

#endif /* TWIN_CLI_H */
