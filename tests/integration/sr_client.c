/*
 * sr_client.c - the schema registry client (twin/schema_registry.h)
 * against a real `twin serve` (TWIN_BIN), started on a loopback port with
 * its own data directory for each test and stopped with SIGTERM:
 * registering, fetching by id, the latest version, the registry's
 * refusals as TW_E* codes, network failures, the response bound, the id
 * cache and the binding cache (which keeps answering, successes and
 * failures alike, once the registry is gone).
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tw_test.h"
#include "twin/schema_registry.h"

typedef struct server {
  pid_t pid;
  char dir[64];
  char url[64];
} server;

static void server_start(server *s) {
  const char *bin = getenv("TWIN_BIN");
  assert_non_null(bin);
  (void)snprintf(s->dir, sizeof s->dir, "/tmp/tw-sr-test-XXXXXX");
  assert_non_null(mkdtemp(s->dir));
  char data[96];
  (void)snprintf(data, sizeof data, "%s/data", s->dir);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  s->pid = fork();
  assert_true(s->pid >= 0);
  if (s->pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl(bin, bin, "serve", "--listen", "127.0.0.1:0", "--data", data,
          (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "r");
  assert_non_null(f);
  char line[256] = "";
  assert_non_null(fgets(line, sizeof line, f));
  fclose(f);
  const char *p = strstr(line, "http://");
  assert_non_null(p);
  (void)snprintf(s->url, sizeof s->url, "%.*s", (int)strcspn(p, "\r\n"), p);
}

static void server_stop(server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    int st = 0;
    assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
    s->pid = 0;
  }
  char cmd[128];
  (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
  assert_int_equal(system(cmd), 0);
}

#define OK(expr)                                                               \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != TW_OK)                                                          \
      fail_msg("%s: %s: %s", #expr, tw_err_name(rc_), tw_err_msg(&err));       \
  } while (0)

#define FAILS(code, expr)                                                      \
  do {                                                                         \
    tw_err_init(&err);                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != (code))                                                         \
      fail_msg("%s: expected %s, got %s: %s", #expr, tw_err_name(code),        \
               tw_err_name(rc_), tw_err_msg(&err));                            \
  } while (0)

#define HAS(s) assert_non_null(strstr(tw_err_msg(&err), (s)))

static const char plant_schema[] =
    "{\"type\": \"object\", \"properties\": {"
    "\"temp\": {\"type\": \"number\", \"unit\": \"degC\"},"
    "\"flow\": {\"type\": \"number\"}}, \"required\": [\"temp\"]}";

static void register_and_fetch(void **state) {
  (void)state;
  server s;
  server_start(&s);
  tw_err err;
  tw_err_init(&err);
  tw_sr_client *c = NULL;
  OK(tw_sr_client_new(s.url, NULL, &c, &err));
  uint32_t id = 0, id2 = 0, id3 = 0;
  OK(tw_sr_register(c, "plant-value", "JSON", plant_schema, &id, &err));
  assert_true(id >= 1);
  /* The same schema, spaced and ordered differently: the same id, in
   * this subject and in another. */
  OK(tw_sr_register(c, "plant-value", "JSON",
                    "{\"required\":[\"temp\"],\"properties\":{\"flow\":{"
                    "\"type\":\"number\"},\"temp\":{\"unit\":\"degC\","
                    "\"type\":\"number\"}},\"type\":\"object\"}",
                    &id2, &err));
  assert_int_equal(id2, id);
  OK(tw_sr_register(c, "other-value", "JSON", plant_schema, &id3, &err));
  assert_int_equal(id3, id);

  const char *type = NULL, *text = NULL;
  OK(tw_sr_get_schema(c, id, &type, &text, &err));
  assert_string_equal(type, "JSON");
  assert_non_null(strstr(text, "\"unit\":\"degC\""));

  /* A compatible change (an optional property) is version 2. */
  uint32_t idv2 = 0, lid = 0;
  int64_t ver = 0;
  const char *ltext = NULL;
  OK(tw_sr_register(c, "plant-value", "JSON",
                    "{\"type\":\"object\",\"properties\":{\"temp\":{\"type\":"
                    "\"number\",\"unit\":\"degC\"},\"flow\":{\"type\":"
                    "\"number\"},\"note\":{\"type\":\"string\"}},"
                    "\"required\":[\"temp\"]}",
                    &idv2, &err));
  assert_int_not_equal(idv2, id);
  OK(tw_sr_latest(c, "plant-value", &lid, &ver, &ltext, &err));
  assert_int_equal(lid, idv2);
  assert_int_equal(ver, 2);
  assert_non_null(strstr(ltext, "\"note\""));

  /* Ids are immutable: once fetched, the client answers without the
   * registry. */
  server_stop(&s);
  const char *again = NULL;
  OK(tw_sr_get_schema(c, id, NULL, &again, &err));
  assert_ptr_equal(again, text);
  FAILS(TW_ECONN, tw_sr_get_schema(c, id + 100, NULL, NULL, &err));
  HAS(s.url);
  tw_sr_client_free(c);
}

static void refusals(void **state) {
  (void)state;
  server s;
  server_start(&s);
  tw_err err;
  tw_err_init(&err);
  tw_sr_client *c = NULL;
  OK(tw_sr_client_new(s.url, NULL, &c, &err));
  uint32_t id = 0;
  OK(tw_sr_register(c, "plant-value", "JSON", plant_schema, &id, &err));

  FAILS(TW_ENOENT, tw_sr_get_schema(c, 9999, NULL, NULL, &err));
  HAS("schema id 9999");
  HAS("40403");
  FAILS(TW_ENOENT, tw_sr_latest(c, "nobody", NULL, NULL, NULL, &err));
  HAS("subject 'nobody'");
  HAS("40401");
  FAILS(TW_EVALIDATE,
        tw_sr_register(c, "avro", "AVRO", "{\"type\":\"string\"}", &id, &err));
  HAS("42201");
  HAS("JSON schemas only");
  FAILS(TW_EVALIDATE, tw_sr_register(c, "bad", "JSON", "{nope", &id, &err));
  HAS("not JSON");
  /* BACKWARD (the default): a new required property is refused. */
  FAILS(TW_EVALIDATE,
        tw_sr_register(c, "plant-value", "JSON",
                       "{\"type\":\"object\",\"properties\":{\"temp\":{"
                       "\"type\":\"number\"}},\"required\":[\"temp\","
                       "\"flow\"]}",
                       &id, &err));
  HAS("required property 'flow' added");
  /* Narrowing a property's type too. */
  FAILS(TW_EVALIDATE,
        tw_sr_register(c, "plant-value", "JSON",
                       "{\"type\":\"object\",\"properties\":{\"temp\":{"
                       "\"type\":\"integer\"}},\"required\":[\"temp\"]}",
                       &id, &err));
  HAS("#/properties/temp: type narrowed");

  /* The response bound. */
  tw_sr_client_opts o = {.max_response = 32};
  tw_sr_client *small = NULL;
  OK(tw_sr_client_new(s.url, &o, &small, &err));
  FAILS(TW_ELIMIT, tw_sr_get_schema(small, id, NULL, NULL, &err));
  HAS("larger than 32 bytes");
  tw_sr_client_free(small);

  FAILS(TW_EINVAL, tw_sr_client_new("ftp://x", NULL, &small, &err));
  assert_null(small);
  FAILS(TW_EINVAL, tw_sr_register(c, "", "JSON", plant_schema, &id, &err));
  tw_sr_client_free(c);
  server_stop(&s);
}

static void unreachable(void **state) {
  (void)state;
  /* A port nobody listens on: bound, then closed. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  char url[64];
  (void)snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
  tw_err err;
  tw_err_init(&err);
  tw_sr_client *c = NULL;
  OK(tw_sr_client_new(url, NULL, &c, &err));
  FAILS(TW_ECONN, tw_sr_get_schema(c, 1, NULL, NULL, &err));
  HAS(url);
  HAS("/schemas/ids/1");
  tw_sr_client_free(c);
}

static const tw_stream_field plant_fields[] = {
    {"temp", TW_F64, 1, "K", NAN, NAN},
};

static void bindings(void **state) {
  (void)state;
  server s;
  server_start(&s);
  tw_err err;
  tw_err_init(&err);
  tw_sr_client *c = NULL;
  tw_stream_schema *sch = NULL;
  tw_stream_bindings *cache = NULL;
  OK(tw_sr_client_new(s.url, NULL, &c, &err));
  OK(tw_stream_schema_new(plant_fields, 1, NULL, &sch, &err));
  OK(tw_stream_bindings_new(NULL, &cache, &err));
  uint32_t id = 0, bad_id = 0;
  OK(tw_sr_register(c, "plant-value", "JSON", plant_schema, &id, &err));
  /* A schema without the field the twin needs. */
  OK(tw_sr_register(c, "misc-value", "JSON",
                    "{\"type\":\"object\",\"properties\":{\"flow\":{"
                    "\"type\":\"number\"}}}",
                    &bad_id, &err));

  const tw_stream_binding *b = NULL, *b2 = NULL;
  OK(tw_stream_bindings_get(cache, c, sch, id, &b, &err));
  assert_non_null(b);
  OK(tw_stream_bindings_get(cache, c, sch, id, &b2, &err));
  assert_ptr_equal(b, b2);

  /* A record in the wire format: 0, the id, then 25 degC. */
  unsigned char rec[64] = {0, (unsigned char)(id >> 24),
                           (unsigned char)(id >> 16), (unsigned char)(id >> 8),
                           (unsigned char)id};
  const char payload[] = "{\"temp\": 25}";
  memcpy(rec + 5, payload, sizeof payload - 1);
  uint32_t got = 0;
  const void *pl = NULL;
  size_t pl_len = 0;
  OK(tw_stream_wire_split(rec, 5 + sizeof payload - 1, &got, &pl, &pl_len,
                          &err));
  assert_int_equal(got, id);
  double v = 0;
  OK(tw_stream_decode(sch, b, pl, pl_len, &v, NULL, &err));
  assert_true(fabs(v - 298.15) < 1e-9);

  FAILS(TW_ENOENT, tw_stream_bindings_get(cache, c, sch, 7777, &b, &err));
  HAS("schema id 7777");
  FAILS(TW_EVALIDATE, tw_stream_bindings_get(cache, c, sch, bad_id, &b, &err));
  HAS("field 'temp'");

  /* The registry goes away: the binding and both failures are still
   * answered from the cache, the failures with their own codes. */
  server_stop(&s);
  OK(tw_stream_bindings_get(cache, c, sch, id, &b2, &err));
  assert_ptr_equal(b, b2);
  FAILS(TW_ENOENT, tw_stream_bindings_get(cache, c, sch, 7777, &b, &err));
  HAS("schema id 7777");
  FAILS(TW_EVALIDATE, tw_stream_bindings_get(cache, c, sch, bad_id, &b, &err));
  /* An id never asked about reaches the (gone) registry. */
  FAILS(TW_ECONN, tw_stream_bindings_get(cache, c, sch, 4242, &b, &err));
  HAS("/schemas/ids/4242");

  tw_stream_bindings_free(cache);
  tw_stream_schema_free(sch);
  tw_sr_client_free(c);
}

/* Failures expire: with a 1 ms lifetime, a repeated bad id is asked
 * again (and now fails differently, the registry being gone). */
static void failure_expiry(void **state) {
  (void)state;
  server s;
  server_start(&s);
  tw_err err;
  tw_err_init(&err);
  tw_sr_client *c = NULL;
  tw_stream_schema *sch = NULL;
  tw_stream_bindings *cache = NULL;
  tw_stream_bindings_opts o = {.failure_ttl_ms = 1, .max_failures = 2};
  OK(tw_sr_client_new(s.url, NULL, &c, &err));
  OK(tw_stream_schema_new(plant_fields, 1, NULL, &sch, &err));
  OK(tw_stream_bindings_new(&o, &cache, &err));
  const tw_stream_binding *b = NULL;
  for (uint32_t i = 0; i < 5; i++)
    FAILS(TW_ENOENT, tw_stream_bindings_get(cache, c, sch, 500 + i, &b, &err));
  server_stop(&s);
  struct timespec ts = {0, 5 * 1000 * 1000};
  nanosleep(&ts, NULL);
  FAILS(TW_ECONN, tw_stream_bindings_get(cache, c, sch, 500, &b, &err));
  tw_stream_bindings_free(cache);
  tw_stream_schema_free(sch);
  tw_sr_client_free(c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      TW_TEST(register_and_fetch), TW_TEST(refusals), TW_TEST(unreachable),
      TW_TEST(bindings), TW_TEST(failure_expiry)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
