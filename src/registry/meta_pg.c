/*
 * meta_pg.c - the PostgreSQL backend of the metadata store (libpq), for
 * registries whose servers share one database.
 *
 * Every write is one transaction at SERIALIZABLE isolation: the database
 * detects any interleaving that differs from some serial order and aborts
 * one side with SQLSTATE 40001 (or 40P01 for a deadlock), which the
 * transaction runner retries. So the per-model version counter, read and
 * bumped in one transaction, hands out 1, 2, 3 ... to concurrent servers
 * without gaps or duplicates. Reads run REPEATABLE READ READ ONLY: one
 * snapshot, never aborted. Migrations run READ COMMITTED after taking an
 * advisory lock, so servers starting together migrate one after the
 * other and each sees what the one before committed.
 *
 * Statements go through PQexecParams: the extended protocol's parse,
 * bind and execute, with every value sent as a parameter, never spliced
 * into the text ('?' placeholders are renumbered to $1, $2, ... here).
 * Names are ordered with COLLATE "C" so pages come in byte order, as in
 * SQLite. libpq allocates with malloc; the connection is reset once when
 * it is found broken at the start of a transaction.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "twin/alloc.h"

#define CONNECT_TIMEOUT_S "10"

typedef struct pg_conn {
  PGconn *pg;
  const char *shown; /* the redacted URL, owned by tw_meta */
  tw_buf sql;        /* the statement with $n placeholders */
} pg_conn;

struct tw__meta_rows {
  PGresult *res;
  int row; /* the current row; -1 before the first */
  int n;
};

/* --- Migrations ------------------------------------------------------------
 */

static const char *const mig1[] = {
    "CREATE TABLE models ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " name TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " description TEXT NOT NULL DEFAULT '',"
    " next_version BIGINT NOT NULL DEFAULT 1,"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL)",
    "CREATE TABLE model_tags ("
    " model_id BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " key TEXT COLLATE \"C\" NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (model_id, key))",
    "CREATE TABLE versions ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " model_id BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " version BIGINT NOT NULL,"
    " description TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL,"
    " repository TEXT,"
    " manifest_digest TEXT,"
    " wasm_digest TEXT,"
    " size BIGINT,"
    " descriptor TEXT,"
    " created_ms BIGINT NOT NULL,"
    " updated_ms BIGINT NOT NULL,"
    " UNIQUE (model_id, version))",
    "CREATE TABLE version_tags ("
    " version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " key TEXT COLLATE \"C\" NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (version_id, key))",
    "CREATE TABLE version_runs ("
    " version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL,"
    " run_id TEXT NOT NULL,"
    " PRIMARY KEY (version_id, pos))",
    "CREATE TABLE version_parents ("
    " version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL,"
    " parent_model TEXT COLLATE \"C\" NOT NULL,"
    " parent_version BIGINT NOT NULL,"
    " PRIMARY KEY (version_id, pos))",
    "CREATE TABLE aliases ("
    " model_id BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " alias TEXT COLLATE \"C\" NOT NULL,"
    " version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " updated_ms BIGINT NOT NULL,"
    " PRIMARY KEY (model_id, alias))",
    NULL};

static const char *const mig2[] = {
    "CREATE INDEX versions_created ON versions (created_ms)",
    "CREATE INDEX versions_manifest ON versions (manifest_digest)",
    "CREATE INDEX models_created ON models (created_ms)",
    "CREATE INDEX model_tags_kv ON model_tags (key, value)",
    "CREATE INDEX version_tags_kv ON version_tags (key, value)",
    "CREATE INDEX version_runs_run ON version_runs (run_id)",
    /* Parenthesized: one string, not two missing a comma. */
    ("CREATE INDEX version_parents_parent ON version_parents "
     "(parent_model, parent_version)"),
    "CREATE INDEX aliases_version ON aliases (version_id)", NULL};

/* The schema registry (docs/schema-registry.md): schemas by global id,
 * unique by the SHA-256 of their type and text; subjects' versions naming
 * them; compatibility levels by subject ('' is the global one). */
static const char *const mig3[] = {
    "CREATE TABLE sr_schemas ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " schema_type TEXT NOT NULL,"
    " digest TEXT NOT NULL UNIQUE,"
    " schema TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL)",
    "CREATE TABLE sr_versions ("
    " subject TEXT COLLATE \"C\" NOT NULL,"
    " version BIGINT NOT NULL,"
    " schema_id BIGINT NOT NULL REFERENCES sr_schemas(id),"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " created_ms BIGINT NOT NULL,"
    " PRIMARY KEY (subject, version))",
    "CREATE INDEX sr_versions_schema ON sr_versions (schema_id)",
    "CREATE TABLE sr_config ("
    " subject TEXT COLLATE \"C\" PRIMARY KEY,"
    " level TEXT NOT NULL,"
    " updated_ms BIGINT NOT NULL)",
    NULL};

static const tw__meta_migration migrations[] = {
    {1, "models, versions, tags, lineage, aliases", mig1},
    {2, "search and cascade indexes", mig2},
    {3, "schema registry", mig3},
};

/* A transaction-scoped advisory lock on a constant key ("twin" in ASCII):
 * released by the migration transaction's commit or rollback. */
static const char *const prologue[] = {
    "SELECT pg_advisory_xact_lock(1953986926)", NULL};

/* --- Errors ----------------------------------------------------------------
 */

/* The first line of libpq's message, without the trailing newline. */
static int first_line(const char *msg) {
  return (int)strcspn(msg ? msg : "", "\n");
}

static int map_result(pg_conn *c, PGresult *res, const char *sql, tw_err *err) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  int twc = TW_EIO;
  if (PQstatus(c->pg) == CONNECTION_BAD ||
      (state != NULL && strncmp(state, "08", 2) == 0))
    twc = TW_ECONN;
  else if (state == NULL)
    twc = res == NULL ? TW_ENOMEM : TW_EIO;
  else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
           strcmp(state, "55P03") == 0)
    twc = TW_EBUSY;
  else if (strcmp(state, "23505") == 0)
    twc = TW_EEXIST;
  else if (strcmp(state, "23503") == 0)
    twc = TW_ENOENT;
  const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
  return tw_err_set(err, twc, "%s: %.*s (%.60s...)", c->shown, first_line(msg),
                    msg ? msg : "", sql);
}

/* --- Driver ------------------------------------------------------------ */

static void quiet_notices(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static void pg_disconnect(void *conn) {
  pg_conn *c = conn;
  if (c == NULL)
    return;
  PQfinish(c->pg);
  tw_buf_fini(&c->sql);
  tw_free(c);
}

static int pg_connect(const char *url, const char *shown, void **conn,
                      tw_err *err) {
  pg_conn *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", shown);
  c->shown = shown;
  tw_buf_init(&c->sql);
  /* Defaults first; the URL (expanded from dbname) overrides them. */
  const char *const keys[] = {"connect_timeout", "application_name",
                              "client_encoding", "dbname", NULL};
  const char *const vals[] = {CONNECT_TIMEOUT_S, "twin", "UTF8", url, NULL};
  c->pg = PQconnectdbParams(keys, vals, 1);
  if (c->pg == NULL) {
    pg_disconnect(c);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", shown);
  }
  if (PQstatus(c->pg) != CONNECTION_OK) {
    const char *msg = PQerrorMessage(c->pg);
    tw_err_set(err, TW_ECONN, "%s: cannot connect to PostgreSQL: %.*s", shown,
               first_line(msg), msg);
    pg_disconnect(c);
    return TW_ECONN;
  }
  PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
  *conn = c;
  return TW_OK;
}

/* Runs a statement without parameters or results. */
static int pg_plain(pg_conn *c, const char *sql, tw_err *err) {
  PGresult *res = PQexec(c->pg, sql);
  int rc = TW_OK;
  if (PQresultStatus(res) != PGRES_COMMAND_OK &&
      PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = map_result(c, res, sql, err);
  PQclear(res);
  return rc;
}

static int pg_begin(void *conn, tw__meta_txn_kind kind, tw_err *err) {
  pg_conn *c = conn;
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
      const char *msg = PQerrorMessage(c->pg);
      return tw_err_set(err, TW_ECONN, "%s: lost the connection: %.*s",
                        c->shown, first_line(msg), msg);
    }
  }
  static const char *const begin[] = {
      [TW__META_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
      [TW__META_WRITE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
      [TW__META_MIGRATE] = "BEGIN ISOLATION LEVEL READ COMMITTED"};
  return pg_plain(c, begin[kind], err);
}

static int pg_commit(void *conn, tw_err *err) {
  return pg_plain(conn, "COMMIT", err);
}

static void pg_rollback(void *conn) {
  pg_conn *c = conn;
  if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
    PQclear(PQexec(c->pg, "ROLLBACK"));
}

/* Copies sql into c->sql with each '?' numbered: $1, $2, ... The shared
 * statements contain no '?' but placeholders. */
static int number_params(pg_conn *c, const char *sql) {
  tw_buf_reset(&c->sql);
  int k = 0, rc = TW_OK;
  for (const char *s = sql; *s && rc == TW_OK; s++)
    rc = *s == '?' ? tw_buf_printf(&c->sql, "$%d", ++k)
                   : tw_buf_putc(&c->sql, *s);
  return rc;
}

static int pg_run(void *conn, const char *sql, const tw__meta_val *params,
                  size_t n, tw__meta_rows **rows, tw_err *err) {
  pg_conn *c = conn;
  if (number_params(c, sql) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", c->shown);
  const char **vals = tw_calloc(n + 1, sizeof *vals);
  char(*nums)[24] = tw_calloc(n + 1, sizeof *nums);
  tw__meta_rows *r = rows ? tw_calloc(1, sizeof *r) : NULL;
  if (vals == NULL || nums == NULL || (rows != NULL && r == NULL)) {
    tw_free(vals);
    tw_free(nums);
    tw_free(r);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", c->shown);
  }
  for (size_t i = 0; i < n; i++) {
    if (params[i].type == TW__META_INT) {
      (void)snprintf(nums[i], sizeof nums[i], "%lld", (long long)params[i].i);
      vals[i] = nums[i];
    } else {
      vals[i] = params[i].type == TW__META_TEXT ? params[i].s : NULL;
    }
  }
  PGresult *res =
      PQexecParams(c->pg, c->sql.data, (int)n, NULL, vals, NULL, NULL, 0);
  tw_free(vals);
  tw_free(nums);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    int rc = map_result(c, res, sql, err);
    PQclear(res);
    tw_free(r);
    return rc;
  }
  if (rows == NULL) {
    PQclear(res);
    return TW_OK;
  }
  r->res = res;
  r->row = -1;
  r->n = PQntuples(res);
  *rows = r;
  return TW_OK;
}

static int pg_next(tw__meta_rows *r, tw_err *err) {
  (void)err;
  if (r->row + 1 >= r->n)
    return 0;
  r->row++;
  return 1;
}

static bool pg_is_null(tw__meta_rows *r, int col) {
  return PQgetisnull(r->res, r->row, col) != 0;
}

static int64_t pg_col_int(tw__meta_rows *r, int col) {
  return strtoll(PQgetvalue(r->res, r->row, col), NULL, 10);
}

static const char *pg_col_text(tw__meta_rows *r, int col) {
  return PQgetvalue(r->res, r->row, col);
}

static void pg_finish(tw__meta_rows *r) {
  if (r == NULL)
    return;
  PQclear(r->res);
  tw_free(r);
}

/* "{a,b}", a text[] path for #>> (keys are [A-Za-z0-9_], checked by the
 * caller, so no element needs quoting). */
static int pg_json_path(const char *dotted, tw_buf *out) {
  int rc = tw_buf_putc(out, '{');
  for (const char *s = dotted; *s && rc == TW_OK; s++)
    rc = tw_buf_putc(out, *s == '.' ? ',' : *s);
  if (rc == TW_OK)
    rc = tw_buf_putc(out, '}');
  return rc;
}

const tw__meta_driver tw__meta_pg = {
    .name = "postgres",
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .run = pg_run,
    .next = pg_next,
    .is_null = pg_is_null,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .finish = pg_finish,
    .migrate_prologue = prologue,
    .migrations = migrations,
    .n_migrations = sizeof migrations / sizeof migrations[0],
    .strpos = "strpos",
    .descriptor_field = "(v.descriptor::jsonb #>> CAST(? AS text[]))",
    .json_path = pg_json_path,
};
