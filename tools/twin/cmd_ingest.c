/*
 * cmd_ingest.c - `twin ingest kafka|mqtt|rtsp`: a live source recorded as
 * it arrives (the replay buffer, without a twin), and `twin replay`: a
 * recording re-run through a twin's ingest pipeline, to the same outputs
 * as the live run, bit for bit.
 */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "live.h"

static const cli_opt ingest_opts[] = {
    {"name", 0, "NAME", "the source's name in the recording (the kind)"},
    {"brokers", 0, "HOST:PORT,...", "kafka: bootstrap servers"},
    {"group", 0, "GROUP", "kafka: consumer group (twin-ingest-NAME)"},
    {"topic", 0, "TOPIC", "kafka: the topic; mqtt: the topic filter"},
    {"broker", 0, "HOST[:PORT]", "mqtt: the broker"},
    {"url", 0, "rtsp://...", "rtsp: the camera"},
    {"record", 0, "PATH",
     "the recording: FILE.mcap, or a directory of rotated segments"},
    {"segment-size", 0, "SIZE", "rotate segments at SIZE (256M)"},
    {"max-size", 0, "SIZE", "delete the oldest segments beyond SIZE"},
    {"duration", 0, "SECONDS", "stop after this long"},
    {"max-records", 0, "N", "stop after N records"},
    {"stop-when-idle-ms", 0, "MS",
     "stop once no record came for MS (after the first)"},
    {"json", 0, NULL, "print the summary as JSON"},
    {NULL, 0, NULL, NULL}};

static int run_ingest(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *cmd = cli->cmd;
  static const char *const kinds[] = {"mcap", "kafka", "mqtt", "rtsp"};
  tw_compose_source s;
  memset(&s, 0, sizeof s);
  const char *kind = args->pos[0];
  size_t k = 1;
  while (k < 4 && strcmp(kinds[k], kind) != 0)
    k++;
  if (k == 4)
    return cli_usage_error(cli, cmd,
                           "the kind is kafka, mqtt or rtsp, not '%s'", kind);
  s.kind = (tw_compose_source_kind)k;
  s.name = cli_opt_value(cmd, args, "name");
  if (s.name == NULL)
    s.name = kinds[k];
  s.brokers = cli_opt_value(cmd, args, "brokers");
  s.group = cli_opt_value(cmd, args, "group");
  s.topic = cli_opt_value(cmd, args, "topic");
  s.broker = cli_opt_value(cmd, args, "broker");
  s.url = cli_opt_value(cmd, args, "url");
  if (s.kind == TW_COMPOSE_KAFKA && (s.brokers == NULL || s.topic == NULL))
    return cli_usage_error(cli, cmd, "kafka needs --brokers and --topic");
  if (s.kind == TW_COMPOSE_MQTT && (s.broker == NULL || s.topic == NULL))
    return cli_usage_error(cli, cmd, "mqtt needs --broker and --topic");
  if (s.kind == TW_COMPOSE_RTSP && s.url == NULL)
    return cli_usage_error(cli, cmd, "rtsp needs --url");
  live_opts lo;
  if (live_opts_of(cli, args, &lo) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  if (lo.record == NULL)
    return cli_usage_error(cli, cmd, "--record PATH is required");
  char group[256];
  if (s.kind == TW_COMPOSE_KAFKA && s.group == NULL) {
    (void)snprintf(group, sizeof group, "twin-ingest-%s", s.name);
    s.group = group;
  }
  lo.twin = "";
  lo.client_id = "twin-ingest";
  lo.quiet = true;
  return live_run(cli, &lo, &s, 1);
}

const cli_cmd cmd_ingest = {
    NULL,
    "ingest",
    "kafka|mqtt|rtsp",
    1,
    1,
    "record a live source",
    "Reads a Kafka topic (a consumer group; positions committed only once\n"
    "recorded), an MQTT topic filter (a persistent QoS 1 session;\n"
    "messages acknowledged once recorded) or an RTSP camera (decoded\n"
    "frames with their RTCP wall-clock times) and records every record\n"
    "with its ingest time and source position to --record: one MCAP file,\n"
    "or a directory of segments rotated at --segment-size, the oldest\n"
    "deleted beyond --max-size. Re-delivered Kafka records are recorded\n"
    "once. Stops at --duration, --max-records or SIGINT/SIGTERM. A\n"
    "recording made with --name NAME replays through a twin whose live\n"
    "source NAME has the same kind (`twin replay`).",
    ingest_opts,
    run_ingest};

static const cli_opt replay_opts[] = {
    {"twin", 0, "TWIN.yaml", "the twin to re-run (required)"},
    {"profile", 0, "NAME", "the twin's profile with the live sources"},
    {"params", 'p', "FILE", "parameter file laid over the twin (repeats)"},
    {"store", 0, "DIR", "model store of oci://...@sha256: models"},
    {"trace", 0, "FILE.mcap", "the replay's inputs and outputs"},
    {"expect", 0, "FILE.mcap",
     "a trace whose outputs the replay must equal, bit for bit"},
    {"allow-gap", 0, NULL,
     "replay a recording whose first segments were deleted"},
    {"idle-timeout-ms", 0, "MS", "as given to the live run"},
    {"out-of-order-ms", 0, "MS", "as given to the live run (50)"},
    {"partition-idle-ms", 0, "MS", "as given to the live run (1000)"},
    {"max-partition-drift-ms", 0, "MS", "as given to the live run (0)"},
    {"ticks", 0, "N", "as given to the live run"},
    {"json", 0, NULL, "JSON lines: one per tick, then the summary"},
    {"quiet", 'q', NULL, "no line per tick"},
    {"fuel", 0, "N", "fuel per call of each wasm model"},
    {"timeout-ms", 0, "N", "deadline per call of each wasm model"},
    {NULL, 0, NULL, NULL}};

#define MAX_LIVE_SOURCES 16

static int run_replay(cli_ctx *cli, const cli_args *args) {
  const cli_cmd *cmd = cli->cmd;
  const char *twin = cli_opt_value(cmd, args, "twin");
  if (twin == NULL)
    return cli_usage_error(cli, cmd, "--twin TWIN.yaml is required");
  live_opts lo;
  if (live_opts_of(cli, args, &lo) != CLI_EXIT_OK)
    return CLI_EXIT_USAGE;
  unsigned long ticks = 0;
  const char *v = cli_opt_value(cmd, args, "ticks");
  if (v != NULL && cli_parse_uint(cli, "ticks", v, 1ul << 32, &ticks) != 0)
    return CLI_EXIT_USAGE;
  tw_err err;
  tw_err_init(&err);
  tw_compose *c = NULL;
  int code0 = cli_compose_load(cli, args, twin, &c);
  if (code0 != CLI_EXIT_OK)
    return code0;
  tw_compose_source live[MAX_LIVE_SOURCES];
  int n = live_sources_of(c, live, MAX_LIVE_SOURCES, &err);
  if (n == 0)
    (void)tw_err_set(
        &err, TW_EINVAL,
        "the twin has no live sources%s: give the profile the "
        "recording was made with (--profile live)",
        cli_opt_value(cmd, args, "profile") != NULL ? " in this profile" : "");
  int code = CLI_EXIT_OK;
  if (n <= 0) {
    code = cli_fail(cli, &err);
  } else {
    lo.graph = tw_compose_graph(c);
    lo.twin = tw_compose_name(c);
    lo.max_ticks = (int64_t)ticks;
    code = live_replay(cli, &lo, live, (size_t)n, args->pos[0],
                       cli_opt_value(cmd, args, "allow-gap") != NULL,
                       cli_opt_value(cmd, args, "expect"));
  }
  tw_compose_free(c);
  return code;
}

const cli_cmd cmd_replay = {
    NULL,
    "replay",
    "RECORDING",
    1,
    1,
    "re-run a twin on a recording of its live data",
    "Feeds a recording made by `twin compose up` (live sources) or\n"
    "`twin ingest` - an MCAP file or a directory of segments - to a fresh\n"
    "ingest pipeline of the twin: the same records at the same ingest\n"
    "times, the same watermark advances, the schemas recorded with them.\n"
    "The outputs are those of the live run, bit for bit; --expect TRACE\n"
    "checks it against the live run's --trace. The twin's live sources\n"
    "(names and kinds) must be the recording's.",
    replay_opts,
    run_replay};
