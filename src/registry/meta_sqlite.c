/*
 * meta_sqlite.c - the SQLite backend of the metadata store: one database
 * file, the default of `twin serve`.
 *
 * The connection runs in WAL mode (readers never wait for the writer),
 * with foreign keys enforced and a busy timeout, so a second process or
 * handle waits for the write lock instead of failing. Write transactions
 * start with BEGIN IMMEDIATE: they take the write lock first, so two
 * writers are serialized before either reads, and a read-then-write (the
 * per-model version counter) can never be overtaken. SQLITE_BUSY past the
 * timeout is TW_EBUSY, which the transaction runner retries.
 *
 * SQLite allocates with its own malloc, not tw_alloc; every statement is
 * prepared with sqlite3_prepare_v2 and its values bound, never formatted.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "twin/alloc.h"

#define BUSY_TIMEOUT_MS 10000

typedef struct sq_conn {
  sqlite3 *db;
  const char *shown; /* the redacted URL, owned by tw_meta */
} sq_conn;

struct tw__meta_rows {
  sq_conn *c;
  sqlite3_stmt *st;
};

/* --- Migrations ------------------------------------------------------------
 */

static const char *const mig1[] = {
    "CREATE TABLE models ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " description TEXT NOT NULL DEFAULT '',"
    " next_version INTEGER NOT NULL DEFAULT 1,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL)",
    "CREATE TABLE model_tags ("
    " model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (model_id, key))",
    "CREATE TABLE versions ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " version INTEGER NOT NULL,"
    " description TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL,"
    " repository TEXT,"
    " manifest_digest TEXT,"
    " wasm_digest TEXT,"
    " size INTEGER,"
    " descriptor TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " UNIQUE (model_id, version))",
    "CREATE TABLE version_tags ("
    " version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (version_id, key))",
    "CREATE TABLE version_runs ("
    " version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL,"
    " run_id TEXT NOT NULL,"
    " PRIMARY KEY (version_id, pos))",
    "CREATE TABLE version_parents ("
    " version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL,"
    " parent_model TEXT NOT NULL,"
    " parent_version INTEGER NOT NULL,"
    " PRIMARY KEY (version_id, pos))",
    "CREATE TABLE aliases ("
    " model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " alias TEXT NOT NULL,"
    " version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (model_id, alias))",
    NULL};

/* Indexes for the searches and for the cascades (SQLite does not index
 * foreign keys by itself). */
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
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " schema_type TEXT NOT NULL,"
    " digest TEXT NOT NULL UNIQUE,"
    " schema TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL)",
    "CREATE TABLE sr_versions ("
    " subject TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " schema_id INTEGER NOT NULL REFERENCES sr_schemas(id),"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " PRIMARY KEY (subject, version))",
    "CREATE INDEX sr_versions_schema ON sr_versions (schema_id)",
    "CREATE TABLE sr_config ("
    " subject TEXT PRIMARY KEY,"
    " level TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL)",
    NULL};

static const tw__meta_migration migrations[] = {
    {1, "models, versions, tags, lineage, aliases", mig1},
    {2, "search and cascade indexes", mig2},
    {3, "schema registry", mig3},
};

/* --- Errors ----------------------------------------------------------------
 */

static int map_error(sq_conn *c, int code, const char *sql, tw_err *err) {
  int twc = TW_EIO;
  switch (code) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    twc = TW_EBUSY;
    break;
  case SQLITE_NOMEM:
    twc = TW_ENOMEM;
    break;
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY:
    twc = TW_EEXIST;
    break;
  case SQLITE_CONSTRAINT_FOREIGNKEY:
    twc = TW_ENOENT;
    break;
  default:
    break;
  }
  return tw_err_set(err, twc, "%s: %s (%.60s...)", c->shown,
                    sqlite3_errmsg(c->db), sql);
}

/* --- Driver ------------------------------------------------------------ */

static int sq_exec_plain(sq_conn *c, const char *sql, tw_err *err) {
  char *msg = NULL;
  int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
  sqlite3_free(msg);
  if (rc != SQLITE_OK)
    return map_error(c, sqlite3_extended_errcode(c->db), sql, err);
  return TW_OK;
}

/* Runs a set-up statement, sleeping and trying again while the database
 * is busy, up to BUSY_TIMEOUT_MS in all. */
static int sq_exec_pragma_busy(sq_conn *c, const char *sql, tw_err *err) {
  int waited_ms = 0;
  for (;;) {
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
      return TW_OK;
    int prim = sqlite3_extended_errcode(c->db) & 0xff;
    if ((prim != SQLITE_BUSY && prim != SQLITE_LOCKED) ||
        waited_ms >= BUSY_TIMEOUT_MS)
      return map_error(c, sqlite3_extended_errcode(c->db), sql, err);
    int step = waited_ms < 20 ? 1 : 10;
    sqlite3_sleep(step);
    waited_ms += step;
  }
}

static void sq_disconnect(void *conn) {
  sq_conn *c = conn;
  if (c == NULL)
    return;
  sqlite3_close_v2(c->db);
  tw_free(c);
}

static int sq_connect(const char *path, const char *shown, void **conn,
                      tw_err *err) {
  sq_conn *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", shown);
  c->shown = shown;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
              SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
  if (rc != SQLITE_OK) {
    int twc = rc == SQLITE_NOMEM ? TW_ENOMEM : TW_EIO;
    tw_err_set(err, twc, "%s: cannot open the database: %s", shown,
               c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    sq_disconnect(c);
    return twc;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
  /* WAL is a property of the file: the first connection sets it (an
   * in-memory database stays in "memory" mode, which is fine). While
   * another connection is converting a new file, SQLite answers
   * SQLITE_BUSY at once, without calling the busy handler (it could
   * deadlock), so the switch is tried again here for as long as the busy
   * timeout. */
  int trc = sq_exec_pragma_busy(c, "PRAGMA journal_mode=WAL", err);
  if (trc == TW_OK)
    trc = sq_exec_plain(c, "PRAGMA foreign_keys=ON", err);
  if (trc == TW_OK)
    trc = sq_exec_plain(c, "PRAGMA synchronous=NORMAL", err);
  if (trc != TW_OK) {
    sq_disconnect(c);
    return trc;
  }
  *conn = c;
  return TW_OK;
}

static int sq_begin(void *conn, tw__meta_txn_kind kind, tw_err *err) {
  return sq_exec_plain(
      conn, kind == TW__META_READ ? "BEGIN" : "BEGIN IMMEDIATE", err);
}

static int sq_commit(void *conn, tw_err *err) {
  return sq_exec_plain(conn, "COMMIT", err);
}

static void sq_rollback(void *conn) {
  sq_conn *c = conn;
  if (!sqlite3_get_autocommit(c->db))
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static int sq_run(void *conn, const char *sql, const tw__meta_val *params,
                  size_t n, tw__meta_rows **rows, tw_err *err) {
  sq_conn *c = conn;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return map_error(c, sqlite3_extended_errcode(c->db), sql, err);
  for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
    int k = (int)i + 1;
    switch (params[i].type) {
    case TW__META_NULL:
      rc = sqlite3_bind_null(st, k);
      break;
    case TW__META_INT:
      rc = sqlite3_bind_int64(st, k, params[i].i);
      break;
    case TW__META_TEXT:
      rc = sqlite3_bind_text(st, k, params[i].s, -1, SQLITE_STATIC);
      break;
    }
  }
  if (rc != SQLITE_OK) {
    int twc = map_error(c, rc, sql, err);
    sqlite3_finalize(st);
    return twc;
  }
  if (rows != NULL) {
    tw__meta_rows *r = tw_calloc(1, sizeof *r);
    if (r == NULL) {
      sqlite3_finalize(st);
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory", c->shown);
    }
    r->c = c;
    r->st = st;
    *rows = r;
    return TW_OK;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  int twc = TW_OK;
  if (rc != SQLITE_DONE)
    twc = map_error(c, sqlite3_extended_errcode(c->db), sql, err);
  sqlite3_finalize(st);
  return twc;
}

static int sq_next(tw__meta_rows *r, tw_err *err) {
  int rc = sqlite3_step(r->st);
  if (rc == SQLITE_ROW)
    return 1;
  if (rc == SQLITE_DONE)
    return 0;
  return map_error(r->c, sqlite3_extended_errcode(r->c->db), sqlite3_sql(r->st),
                   err);
}

static bool sq_is_null(tw__meta_rows *r, int col) {
  return sqlite3_column_type(r->st, col) == SQLITE_NULL;
}

static int64_t sq_col_int(tw__meta_rows *r, int col) {
  return sqlite3_column_int64(r->st, col);
}

static const char *sq_col_text(tw__meta_rows *r, int col) {
  const unsigned char *s = sqlite3_column_text(r->st, col);
  return s ? (const char *)s : "";
}

static void sq_finish(tw__meta_rows *r) {
  if (r == NULL)
    return;
  sqlite3_finalize(r->st);
  tw_free(r);
}

/* "$.a.b" from "a.b" (keys are [A-Za-z0-9_], checked by the caller). */
static int sq_json_path(const char *dotted, tw_buf *out) {
  return tw_buf_printf(out, "$.%s", dotted);
}

const tw__meta_driver tw__meta_sqlite = {
    .name = "sqlite",
    .connect = sq_connect,
    .disconnect = sq_disconnect,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .run = sq_run,
    .next = sq_next,
    .is_null = sq_is_null,
    .col_int = sq_col_int,
    .col_text = sq_col_text,
    .finish = sq_finish,
    .migrate_prologue = NULL,
    .migrations = migrations,
    .n_migrations = sizeof migrations / sizeof migrations[0],
    .strpos = "instr",
    /* Booleans as "true"/"false" (json_extract gives 1/0), everything
     * else as its text, as PostgreSQL's #>> does. */
    .descriptor_field =
        "(SELECT CASE json_type(v.descriptor, p.path)"
        " WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"
        " ELSE CAST(json_extract(v.descriptor, p.path) AS TEXT) END"
        " FROM (SELECT ? AS path) p)",
    .json_path = sq_json_path,
};
