/*
 * commands.h - the command table of `twin`, one extern per command.
 */
#ifndef TWIN_COMMANDS_H
#define TWIN_COMMANDS_H

#include "cli.h"

extern const cli_cmd cmd_blob_digest;
extern const cli_cmd cmd_system_info;
extern const cli_cmd cmd_sim_bench;
extern const cli_cmd cmd_model_inspect;
extern const cli_cmd cmd_model_run;
extern const cli_cmd cmd_model_add;
extern const cli_cmd cmd_graph_validate;
extern const cli_cmd cmd_graph_run;
extern const cli_cmd cmd_graph_grad;
extern const cli_cmd cmd_graph_fmt;
extern const cli_cmd cmd_model_build;
extern const cli_cmd cmd_compose_validate;
extern const cli_cmd cmd_compose_graph;
extern const cli_cmd cmd_compose_up;
extern const cli_cmd cmd_serve;
extern const cli_cmd cmd_ingest;
extern const cli_cmd cmd_replay;
extern const cli_cmd cmd_calibrate;
extern const cli_cmd cmd_registry_gc;
extern const cli_cmd cmd_push;
extern const cli_cmd cmd_pull;
extern const cli_cmd cmd_models_list;
extern const cli_cmd cmd_models_show;
extern const cli_cmd cmd_models_alias;

#endif /* TWIN_COMMANDS_H */
