/*
 * meta_int.h - private definitions of the metadata store (twin/meta.h):
 * the driver table each backend fills in, the transaction runner and the
 * helpers the operation files share.
 *
 * The operations (meta_model.c, meta_search.c) are written once, in the
 * SQL that SQLite and PostgreSQL both accept, with '?' placeholders; a
 * driver (meta_sqlite.c, meta_pg.c) runs such statements with bound
 * parameters and supplies what differs: its migrations (DDL), the
 * transaction statements, and the few dialect fragments in
 * tw__meta_dialect. No SQL text is ever built from input: statements are
 * put together from constant fragments, and every value is a parameter.
 *
 * Never installed, never included outside src/registry and its tests.
 */
#ifndef TWIN_META_INT_H
#define TWIN_META_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "twin/arena.h"
#include "twin/buf.h"
#include "twin/error.h"
#include "twin/meta.h"

/* A bound parameter. */
typedef enum tw__meta_type {
  TW__META_NULL,
  TW__META_INT,
  TW__META_TEXT
} tw__meta_type;

typedef struct tw__meta_val {
  tw__meta_type type;
  int64_t i;
  const char *s;
} tw__meta_val;

#define TW__META_PARAMS_MAX 512

/* A list of parameters with a fixed capacity; an overflow is remembered
 * and reported by the query (a programmer error caught without writing
 * past the array). */
typedef struct tw__meta_params {
  tw__meta_val v[TW__META_PARAMS_MAX];
  size_t n;
  bool overflow;
} tw__meta_params;

void tw__meta_params_int(tw__meta_params *p, int64_t i);
void tw__meta_params_text(tw__meta_params *p, const char *s);

/* READ: a consistent snapshot, no writes. WRITE: serialized with every
 * other writer (SQLite's BEGIN IMMEDIATE takes the write lock up front;
 * PostgreSQL runs it SERIALIZABLE). MIGRATE: schema changes under the
 * driver's migration lock, each statement seeing what was committed
 * before it (PostgreSQL's READ COMMITTED, since the lock is taken inside
 * the transaction). */
typedef enum tw__meta_txn_kind {
  TW__META_READ,
  TW__META_WRITE,
  TW__META_MIGRATE
} tw__meta_txn_kind;

/* A result set being read; the driver's own type. */
typedef struct tw__meta_rows tw__meta_rows;

/* One schema migration: its number (1, 2, ...), a name, and the
 * statements that take the schema from number-1 to number. */
typedef struct tw__meta_migration {
  int version;
  const char *name;
  const char *const *sql; /* NULL-terminated */
} tw__meta_migration;

/* What a driver does. Errors from run/next/commit are mapped to: TW_EEXIST
 * (unique violation), TW_ENOENT (foreign key violation), TW_EBUSY (a
 * serialization failure, deadlock or lock time-out: the transaction runner
 * retries), TW_ECONN (the connection is gone), TW_EIO otherwise. */
typedef struct tw__meta_driver {
  const char *name; /* "sqlite", "postgres" */
  /* shown is the redacted URL, for messages. */
  int (*connect)(const char *url, const char *shown, void **conn, tw_err *err);
  void (*disconnect)(void *conn);
  /* Starts a transaction of the kind given. */
  int (*begin)(void *conn, tw__meta_txn_kind kind, tw_err *err);
  int (*commit)(void *conn, tw_err *err);
  void (*rollback)(void *conn);
  /* Runs sql with its '?' parameters. With rows NULL the statement runs to
   * completion; else *rows reads its results and must be finished. */
  int (*run)(void *conn, const char *sql, const tw__meta_val *params, size_t n,
             tw__meta_rows **rows, tw_err *err);
  /* 1 with a row, 0 at the end, or an error. */
  int (*next)(tw__meta_rows *r, tw_err *err);
  bool (*is_null)(tw__meta_rows *r, int col);
  int64_t (*col_int)(tw__meta_rows *r, int col);
  /* Borrowed until the next call of next or finish; never NULL ("" for
   * NULL). */
  const char *(*col_text)(tw__meta_rows *r, int col);
  void (*finish)(tw__meta_rows *r);
  /* Statements run, in the migration transaction, before the
   * schema_migrations table is read (PostgreSQL's advisory lock, so two
   * servers starting at once migrate one after the other). */
  const char *const *migrate_prologue; /* NULL-terminated */
  const tw__meta_migration *migrations;
  size_t n_migrations;
  /* Dialect fragments. strpos: a function (haystack, needle) giving the
   * 1-based position of needle or 0. descriptor_field: an expression of
   * the text of a descriptor scalar, with the column "v.descriptor" and
   * one '?' for the path that json_path makes from a dotted path. */
  const char *strpos;
  const char *descriptor_field;
  int (*json_path)(const char *dotted, tw_buf *out);
} tw__meta_driver;

extern const tw__meta_driver tw__meta_sqlite;
extern const tw__meta_driver tw__meta_pg;

struct tw_meta {
  const tw__meta_driver *drv;
  void *conn;
  char *url; /* redacted */
  pthread_mutex_t mu;
  int64_t fixed_now_ms; /* tests: 0 is the real clock */
};

/* The current time in milliseconds (or the fixed time of a test). */
int64_t tw__meta_now_ms(const tw_meta *m);

/* Tests: makes the store's clock read now_ms (0: the real clock again). */
void tw__meta_set_now(tw_meta *m, int64_t now_ms);

/* Runs fn(m, arg, err) in a transaction, committing on TW_OK and rolling
 * back otherwise. A TW_EBUSY from the body or the commit (serialization
 * failure, deadlock) runs it again, up to a few times with a growing
 * random pause, rewinding arena (may be NULL) first. The mutex of m is
 * held throughout. */
typedef int (*tw__meta_txn_fn)(tw_meta *m, void *arg, tw_arena *arena,
                               tw_err *err);
int tw__meta_txn(tw_meta *m, tw__meta_txn_kind kind, tw__meta_txn_fn fn,
                 void *arg, tw_arena *arena, tw_err *err);

/* Runs a statement without results. */
int tw__meta_exec(tw_meta *m, const char *sql, const tw__meta_params *p,
                  tw_err *err);
/* Runs a query; *rows is finished with m->drv->finish. */
int tw__meta_query(tw_meta *m, const char *sql, const tw__meta_params *p,
                   tw__meta_rows **rows, tw_err *err);
/* Runs a query that yields at most one row of one integer: *out gets it,
 * *found whether there was a row (found may be NULL: then no row is
 * TW_ENOENT with no message, for the caller to name). */
int tw__meta_query_int(tw_meta *m, const char *sql, const tw__meta_params *p,
                       int64_t *out, bool *found, tw_err *err);

/* Tests: runs sql (no parameters) in its own transaction. */
int tw__meta_exec_sql(tw_meta *m, const char *sql, tw_err *err);

/* Validation shared by the operation files; each names what it checks in
 * its message ("model name 'a b': ..."). */
int tw__meta_check_text(const char *what, const char *s, size_t max,
                        bool allow_empty, tw_err *err);
int tw__meta_check_tag(const char *key, const char *value, tw_err *err);
int tw__meta_check_tags(const tw_meta_tag *tags, size_t n, tw_err *err);
int tw__meta_check_version(int64_t version, tw_err *err);

/* Reading records (meta_model.c), shared with the searches. A model row
 * is TW__META_MODEL_COLS of "models m"; a version row is
 * TW__META_VERSION_COLS of "versions v JOIN models m ON m.id =
 * v.model_id". _row copies the row's columns into arena and gives the
 * record's id; _fill adds what lives in other tables (tags, aliases,
 * lineage, the latest version). */
#define TW__META_MODEL_COLS                                                    \
  "m.id, m.name, m.description, m.created_ms, m.updated_ms"
#define TW__META_VERSION_COLS                                                  \
  "v.id, m.name, v.version, v.description, v.status, v.repository, "           \
  "v.manifest_digest, v.wasm_digest, v.size, v.descriptor, v.created_ms, "     \
  "v.updated_ms"
int tw__meta_model_row(tw_meta *m, tw__meta_rows *r, tw_arena *arena,
                       tw_meta_model *out, int64_t *id, tw_err *err);
int tw__meta_model_fill(tw_meta *m, int64_t id, tw_arena *arena,
                        tw_meta_model *out, tw_err *err);
int tw__meta_version_row(tw_meta *m, tw__meta_rows *r, tw_arena *arena,
                         tw_meta_version *out, int64_t *id, tw_err *err);
int tw__meta_version_fill(tw_meta *m, int64_t id, tw_arena *arena,
                          tw_meta_version *out, tw_err *err);

/* Base64url without padding, for page tokens. decode gives TW_EINVAL for
 * anything that is not such text. */
int tw__meta_b64_encode(const void *data, size_t n, tw_buf *out);
int tw__meta_b64_decode(const char *s, tw_buf *out);

#endif /* TWIN_META_INT_H */
