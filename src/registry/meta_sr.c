/*
 * meta_sr.c - the schema registry's part of the metadata store
 * (twin/meta.h, "Schema registry"): schemas by global id, subjects'
 * versions naming them, soft and permanent deletes, compatibility levels.
 *
 * Invariants:
 *  - A schema row is never changed nor removed: its id names the same
 *    (type, text) for good, so clients may cache ids for ever.
 *  - sr_schemas.digest is the SHA-256 of "TYPE\n" and the text: one row
 *    per (type, text), whichever subject registers it first.
 *  - A subject's next version is one past its highest row, soft-deleted
 *    ones included, so a number is never given twice while its row lives.
 *  - Registration runs the caller's compatibility check and adds the
 *    version in one write transaction: two concurrent registrations are
 *    each checked against what the other added.
 */
#include <stdio.h>
#include <string.h>

#include "meta_int.h"
#include "twin/alloc.h"
#include "twin/hash.h"

/* The global level's key in sr_config. */
#define GLOBAL ""
#define DEFAULT_LEVEL "BACKWARD"

#define VERSION_COLS                                                           \
  "v.subject, v.version, v.schema_id, s.schema_type, s.schema, v.deleted"
#define VERSION_FROM                                                           \
  " FROM sr_versions v JOIN sr_schemas s ON s.id = v.schema_id"

static int check_subject(const char *subject, tw_err *err) {
  return tw__meta_check_text("subject", subject, TW_META_SR_SUBJECT_MAX, false,
                             err);
}

static int check_schema(const char *type, const char *schema, tw_err *err) {
  int rc =
      tw__meta_check_text("schema type", type, TW_META_SR_TYPE_MAX, false, err);
  if (rc != TW_OK)
    return rc;
  if (schema == NULL || schema[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "schema: empty");
  size_t n = strlen(schema);
  if (n > TW_META_SR_SCHEMA_MAX)
    return tw_err_set(err, TW_EINVAL, "schema: %zu bytes, more than %zu", n,
                      TW_META_SR_SCHEMA_MAX);
  return TW_OK;
}

static int digest_of(const char *type, const char *schema,
                     char hex[TW_SHA256_HEX_LEN + 1], tw_err *err) {
  tw_sha256_state *h = NULL;
  uint8_t d[TW_SHA256_LEN];
  int rc = tw_sha256_new(&h);
  if (rc == TW_OK)
    rc = tw_sha256_update(h, type, strlen(type));
  if (rc == TW_OK)
    rc = tw_sha256_update(h, "\n", 1);
  if (rc == TW_OK)
    rc = tw_sha256_update(h, schema, strlen(schema));
  if (rc == TW_OK)
    rc = tw_sha256_final(h, d);
  tw_sha256_free(h);
  if (rc != TW_OK)
    return tw_err_set(err, rc, "schema digest: %s", tw_strerror(rc));
  tw_hex_encode(d, sizeof d, hex);
  hex[TW_SHA256_HEX_LEN] = '\0';
  return TW_OK;
}

/* Copies a row of VERSION_COLS into *out (strings in arena). */
static int version_row(tw_meta *m, tw__meta_rows *r, tw_arena *arena,
                       tw_meta_sr_version *out, tw_err *err) {
  tw_meta_sr_version v;
  memset(&v, 0, sizeof v);
  v.subject = tw_arena_strdup(arena, m->drv->col_text(r, 0));
  v.version = m->drv->col_int(r, 1);
  v.id = m->drv->col_int(r, 2);
  v.type = tw_arena_strdup(arena, m->drv->col_text(r, 3));
  v.schema = tw_arena_strdup(arena, m->drv->col_text(r, 4));
  v.deleted = m->drv->col_int(r, 5) != 0;
  if (v.subject == NULL || v.type == NULL || v.schema == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  *out = v;
  return TW_OK;
}

/* Runs sql (selecting VERSION_COLS) and collects every row into an arena
 * array. */
static int version_rows(tw_meta *m, const char *sql, const tw__meta_params *p,
                        tw_arena *arena, tw_meta_sr_version **out, size_t *n,
                        tw_err *err) {
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, sql, p, &r, err);
  if (rc != TW_OK)
    return rc;
  tw_meta_sr_version *arr = NULL;
  size_t cnt = 0, cap = 0;
  while ((rc = m->drv->next(r, err)) == 1) {
    if (cnt == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      tw_meta_sr_version *na = tw_arena_calloc(arena, ncap, sizeof *na);
      if (na == NULL) {
        rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
        break;
      }
      if (cnt > 0)
        memcpy(na, arr, cnt * sizeof *arr);
      arr = na;
      cap = ncap;
    }
    if ((rc = version_row(m, r, arena, &arr[cnt], err)) != TW_OK)
      break;
    cnt++;
  }
  m->drv->finish(r);
  if (rc != 0)
    return rc;
  *out = arr;
  *n = cnt;
  return TW_OK;
}

/* At most one row of VERSION_COLS; TW_ENOENT (no message) without. */
static int version_one(tw_meta *m, const char *sql, const tw__meta_params *p,
                       tw_arena *arena, tw_meta_sr_version *out, tw_err *err) {
  tw_meta_sr_version *arr = NULL;
  size_t n = 0;
  int rc = version_rows(m, sql, p, arena, &arr, &n, err);
  if (rc != TW_OK)
    return rc;
  if (n == 0)
    return TW_ENOENT;
  *out = arr[0];
  return TW_OK;
}

/* --- Registering ------------------------------------------------------------
 */

typedef struct sr_args {
  const char *subject;
  const char *type;
  const char *schema;
  const char *level;
  int64_t id;
  int64_t version;
  bool deleted;
  bool permanent;
  tw_meta_sr_check_fn check;
  void *ud;
  tw_meta_sr_version *out;
  tw_meta_sr_version *list;
  int64_t *nums;
  size_t n;
  const char **names;
} sr_args;

static int level_of(tw_meta *m, const char *key, tw_arena *arena,
                    const char **level, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, key);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, "SELECT level FROM sr_config WHERE subject = ?",
                          &p, &r, err);
  if (rc != TW_OK)
    return rc;
  rc = m->drv->next(r, err);
  if (rc == 1) {
    *level = tw_arena_strdup(arena, m->drv->col_text(r, 0));
    rc = *level != NULL
             ? TW_OK
             : tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  } else if (rc == 0) {
    rc = TW_ENOENT;
  }
  m->drv->finish(r);
  return rc;
}

static int register_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->subject);
  tw_meta_sr_version *live = NULL;
  size_t n = 0;
  int rc = version_rows(m,
                        "SELECT " VERSION_COLS VERSION_FROM
                        " WHERE v.subject = ? AND v.deleted = 0"
                        " ORDER BY v.version",
                        &p, arena, &live, &n, err);
  if (rc != TW_OK)
    return rc;
  for (size_t i = n; i-- > 0;)
    if (strcmp(live[i].type, a->type) == 0 &&
        strcmp(live[i].schema, a->schema) == 0) {
      *a->out = live[i];
      return TW_OK;
    }
  if (a->check != NULL) {
    const char *level = NULL;
    rc = level_of(m, a->subject, arena, &level, err);
    if (rc == TW_ENOENT)
      rc = level_of(m, GLOBAL, arena, &level, err);
    if (rc == TW_ENOENT) {
      level = DEFAULT_LEVEL;
      rc = TW_OK;
    }
    if (rc != TW_OK)
      return rc;
    if ((rc = a->check(a->ud, level, live, n, err)) != TW_OK)
      return rc;
  }
  char digest[TW_SHA256_HEX_LEN + 1];
  if ((rc = digest_of(a->type, a->schema, digest, err)) != TW_OK)
    return rc;
  p.n = 0;
  tw__meta_params_text(&p, digest);
  int64_t id = 0;
  bool found = false;
  rc = tw__meta_query_int(m, "SELECT id FROM sr_schemas WHERE digest = ?", &p,
                          &id, &found, err);
  if (rc == TW_OK && !found) {
    tw__meta_params q = {.n = 0};
    tw__meta_params_text(&q, a->type);
    tw__meta_params_text(&q, digest);
    tw__meta_params_text(&q, a->schema);
    tw__meta_params_int(&q, tw__meta_now_ms(m));
    rc = tw__meta_exec(m,
                       "INSERT INTO sr_schemas (schema_type, digest, schema, "
                       "created_ms) VALUES (?, ?, ?, ?)",
                       &q, err);
    if (rc == TW_OK)
      rc = tw__meta_query_int(m, "SELECT id FROM sr_schemas WHERE digest = ?",
                              &p, &id, NULL, err);
  }
  if (rc != TW_OK)
    return rc;
  p.n = 0;
  tw__meta_params_text(&p, a->subject);
  int64_t top = 0;
  rc = tw__meta_query_int(m,
                          "SELECT max(version) FROM sr_versions WHERE "
                          "subject = ?",
                          &p, &top, &found, err);
  if (rc != TW_OK)
    return rc;
  p.n = 0;
  tw__meta_params_text(&p, a->subject);
  tw__meta_params_int(&p, top + 1);
  tw__meta_params_int(&p, id);
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  rc = tw__meta_exec(m,
                     "INSERT INTO sr_versions (subject, version, schema_id, "
                     "deleted, created_ms) VALUES (?, ?, ?, 0, ?)",
                     &p, err);
  if (rc != TW_OK)
    return rc;
  tw_meta_sr_version v = {.subject = tw_arena_strdup(arena, a->subject),
                          .version = top + 1,
                          .id = id,
                          .type = tw_arena_strdup(arena, a->type),
                          .schema = tw_arena_strdup(arena, a->schema),
                          .deleted = false};
  if (v.subject == NULL || v.type == NULL || v.schema == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  *a->out = v;
  return TW_OK;
}

int tw_meta_sr_register(tw_meta *m, const char *subject, const char *type,
                        const char *schema, tw_meta_sr_check_fn check, void *ud,
                        tw_arena *arena, tw_meta_sr_version *out, tw_err *err) {
  int rc = check_subject(subject, err);
  if (rc == TW_OK)
    rc = check_schema(type, schema, err);
  if (rc != TW_OK)
    return rc;
  sr_args a = {.subject = subject,
               .type = type,
               .schema = schema,
               .check = check,
               .ud = ud,
               .out = out};
  return tw__meta_txn(m, TW__META_WRITE, register_fn, &a, arena, err);
}

/* --- Reading ----------------------------------------------------------------
 */

static int lookup_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->subject);
  tw__meta_params_text(&p, a->type);
  tw__meta_params_text(&p, a->schema);
  tw__meta_params_int(&p, a->deleted ? 1 : 0);
  int rc = version_one(m,
                       "SELECT " VERSION_COLS VERSION_FROM
                       " WHERE v.subject = ? AND s.schema_type = ? AND "
                       "s.schema = ? AND v.deleted <= ?"
                       " ORDER BY v.version DESC LIMIT 1",
                       &p, arena, a->out, err);
  if (rc == TW_ENOENT)
    return tw_err_set(err, TW_ENOENT,
                      "subject '%s' has no version with this schema",
                      a->subject);
  return rc;
}

int tw_meta_sr_lookup(tw_meta *m, const char *subject, const char *type,
                      const char *schema, bool deleted, tw_arena *arena,
                      tw_meta_sr_version *out, tw_err *err) {
  int rc = check_subject(subject, err);
  if (rc == TW_OK)
    rc = check_schema(type, schema, err);
  if (rc != TW_OK)
    return rc;
  sr_args a = {.subject = subject,
               .type = type,
               .schema = schema,
               .deleted = deleted,
               .out = out};
  return tw__meta_txn(m, TW__META_READ, lookup_fn, &a, arena, err);
}

static int schema_get_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, a->id);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(
      m, "SELECT schema_type, schema FROM sr_schemas WHERE id = ?", &p, &r,
      err);
  if (rc != TW_OK)
    return rc;
  rc = m->drv->next(r, err);
  if (rc == 1) {
    tw_meta_sr_version v = {.id = a->id};
    v.type = tw_arena_strdup(arena, m->drv->col_text(r, 0));
    v.schema = tw_arena_strdup(arena, m->drv->col_text(r, 1));
    if (v.type == NULL || v.schema == NULL) {
      rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
    } else {
      *a->out = v;
      rc = TW_OK;
    }
  } else if (rc == 0) {
    rc = tw_err_set(err, TW_ENOENT, "schema id %lld not found",
                    (long long)a->id);
  }
  m->drv->finish(r);
  return rc;
}

int tw_meta_sr_schema_get(tw_meta *m, int64_t id, tw_arena *arena,
                          tw_meta_sr_version *out, tw_err *err) {
  sr_args a = {.id = id, .out = out};
  return tw__meta_txn(m, TW__META_READ, schema_get_fn, &a, arena, err);
}

static int schema_uses_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, a->id);
  bool found = false;
  int64_t one = 0;
  int rc = tw__meta_query_int(m, "SELECT 1 FROM sr_schemas WHERE id = ?", &p,
                              &one, &found, err);
  if (rc != TW_OK)
    return rc;
  if (!found)
    return tw_err_set(err, TW_ENOENT, "schema id %lld not found",
                      (long long)a->id);
  tw__meta_params_int(&p, a->deleted ? 1 : 0);
  return version_rows(m,
                      "SELECT " VERSION_COLS VERSION_FROM
                      " WHERE v.schema_id = ? AND v.deleted <= ?"
                      " ORDER BY v.subject, v.version",
                      &p, arena, &a->list, &a->n, err);
}

int tw_meta_sr_schema_uses(tw_meta *m, int64_t id, bool deleted,
                           tw_arena *arena, tw_meta_sr_version **out, size_t *n,
                           tw_err *err) {
  sr_args a = {.id = id, .deleted = deleted};
  int rc = tw__meta_txn(m, TW__META_READ, schema_uses_fn, &a, arena, err);
  if (rc == TW_OK) {
    *out = a.list;
    *n = a.n;
  }
  return rc;
}

static int subjects_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, a->deleted ? 1 : 0);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m,
                          "SELECT DISTINCT subject FROM sr_versions WHERE "
                          "deleted <= ? ORDER BY subject",
                          &p, &r, err);
  if (rc != TW_OK)
    return rc;
  const char **arr = NULL;
  size_t cnt = 0, cap = 0;
  while ((rc = m->drv->next(r, err)) == 1) {
    if (cnt == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      const char **na = tw_arena_calloc(arena, ncap, sizeof *na);
      if (na == NULL) {
        rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
        break;
      }
      if (cnt > 0)
        memcpy(na, arr, cnt * sizeof *arr);
      arr = na;
      cap = ncap;
    }
    if ((arr[cnt] = tw_arena_strdup(arena, m->drv->col_text(r, 0))) == NULL) {
      rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
      break;
    }
    cnt++;
  }
  m->drv->finish(r);
  if (rc != 0)
    return rc;
  a->names = arr;
  a->n = cnt;
  return TW_OK;
}

int tw_meta_sr_subjects(tw_meta *m, bool deleted, tw_arena *arena,
                        const char ***out, size_t *n, tw_err *err) {
  sr_args a = {.deleted = deleted};
  int rc = tw__meta_txn(m, TW__META_READ, subjects_fn, &a, arena, err);
  if (rc == TW_OK) {
    *out = a.names;
    *n = a.n;
  }
  return rc;
}

/* The versions of a->subject (live, or all when a->deleted; only the
 * soft-deleted with only_deleted) into a->list, a->n. */
static int subject_rows(tw_meta *m, sr_args *a, tw_arena *arena, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->subject);
  tw__meta_params_int(&p, a->deleted ? 1 : 0);
  return version_rows(m,
                      "SELECT " VERSION_COLS VERSION_FROM
                      " WHERE v.subject = ? AND v.deleted <= ?"
                      " ORDER BY v.version",
                      &p, arena, &a->list, &a->n, err);
}

static int versions_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  int rc = subject_rows(m, a, arena, err);
  if (rc != TW_OK)
    return rc;
  if (a->n == 0)
    return tw_err_set(err, TW_ENOENT, "subject '%s' not found", a->subject);
  a->nums = tw_arena_calloc(arena, a->n, sizeof *a->nums);
  if (a->nums == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  for (size_t i = 0; i < a->n; i++)
    a->nums[i] = a->list[i].version;
  return TW_OK;
}

int tw_meta_sr_versions(tw_meta *m, const char *subject, bool deleted,
                        tw_arena *arena, int64_t **out, size_t *n,
                        tw_err *err) {
  int rc = check_subject(subject, err);
  if (rc != TW_OK)
    return rc;
  sr_args a = {.subject = subject, .deleted = deleted};
  rc = tw__meta_txn(m, TW__META_READ, versions_fn, &a, arena, err);
  if (rc == TW_OK) {
    *out = a.nums;
    *n = a.n;
  }
  return rc;
}

static int version_get_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->subject);
  tw__meta_params_int(&p, a->deleted ? 1 : 0);
  int rc;
  if (a->version < 0) {
    rc = version_one(m,
                     "SELECT " VERSION_COLS VERSION_FROM
                     " WHERE v.subject = ? AND v.deleted <= ?"
                     " ORDER BY v.version DESC LIMIT 1",
                     &p, arena, a->out, err);
    if (rc == TW_ENOENT)
      return tw_err_set(err, TW_ENOENT, "subject '%s' not found", a->subject);
    return rc;
  }
  tw__meta_params_int(&p, a->version);
  rc = version_one(m,
                   "SELECT " VERSION_COLS VERSION_FROM
                   " WHERE v.subject = ? AND v.deleted <= ? AND v.version = ?",
                   &p, arena, a->out, err);
  if (rc == TW_ENOENT)
    return tw_err_set(err, TW_ENOENT, "version %lld of subject '%s' not found",
                      (long long)a->version, a->subject);
  return rc;
}

int tw_meta_sr_version_get(tw_meta *m, const char *subject, int64_t version,
                           bool deleted, tw_arena *arena,
                           tw_meta_sr_version *out, tw_err *err) {
  int rc = check_subject(subject, err);
  if (rc != TW_OK)
    return rc;
  sr_args a = {
      .subject = subject, .version = version, .deleted = deleted, .out = out};
  return tw__meta_txn(m, TW__META_READ, version_get_fn, &a, arena, err);
}

/* --- Deleting ---------------------------------------------------------------
 */

static int delete_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  a->deleted = true;
  int rc = subject_rows(m, a, arena, err);
  if (rc != TW_OK)
    return rc;
  size_t n = 0;
  int64_t *nums = tw_arena_calloc(arena, a->n ? a->n : 1, sizeof *nums);
  if (nums == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  for (size_t i = 0; i < a->n; i++) {
    const tw_meta_sr_version *v = &a->list[i];
    if (a->version != 0 && v->version != a->version)
      continue;
    if (!a->permanent && v->deleted)
      continue; /* already soft-deleted */
    if (a->permanent && !v->deleted)
      return tw_err_set(err, TW_ESTATE,
                        "version %lld of subject '%s' must be soft-deleted "
                        "before it is deleted permanently",
                        (long long)v->version, a->subject);
    nums[n++] = v->version;
  }
  if (n == 0) {
    if (a->version != 0)
      return tw_err_set(err, TW_ENOENT,
                        "version %lld of subject '%s' not found",
                        (long long)a->version, a->subject);
    return tw_err_set(err, TW_ENOENT, "subject '%s' not found", a->subject);
  }
  for (size_t i = 0; i < n; i++) {
    tw__meta_params p = {.n = 0};
    tw__meta_params_text(&p, a->subject);
    tw__meta_params_int(&p, nums[i]);
    rc = tw__meta_exec(m,
                       a->permanent ? "DELETE FROM sr_versions WHERE "
                                      "subject = ? AND version = ?"
                                    : "UPDATE sr_versions SET deleted = 1 "
                                      "WHERE subject = ? AND version = ?",
                       &p, err);
    if (rc != TW_OK)
      return rc;
  }
  if (a->permanent && a->version == 0) {
    tw__meta_params p = {.n = 0};
    tw__meta_params_text(&p, a->subject);
    rc = tw__meta_exec(m, "DELETE FROM sr_config WHERE subject = ?", &p, err);
    if (rc != TW_OK)
      return rc;
  }
  a->nums = nums;
  a->n = n;
  return TW_OK;
}

int tw_meta_sr_delete(tw_meta *m, const char *subject, int64_t version,
                      bool permanent, tw_arena *arena, int64_t **out, size_t *n,
                      tw_err *err) {
  int rc = check_subject(subject, err);
  if (rc != TW_OK)
    return rc;
  if (version < 0)
    return tw_err_set(err, TW_EINVAL, "version %lld: not a version number",
                      (long long)version);
  sr_args a = {.subject = subject, .version = version, .permanent = permanent};
  rc = tw__meta_txn(m, TW__META_WRITE, delete_fn, &a, arena, err);
  if (rc == TW_OK) {
    *out = a.nums;
    *n = a.n;
  }
  return rc;
}

/* --- Compatibility levels
 * -----------------------------------------------------
 */

static int config_get_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  sr_args *a = arg;
  int rc = level_of(m, a->subject ? a->subject : GLOBAL, arena, &a->level, err);
  if (rc == TW_ENOENT) {
    if (a->subject != NULL)
      return tw_err_set(err, TW_ENOENT,
                        "subject '%s' has no compatibility level", a->subject);
    return tw_err_set(err, TW_ENOENT, "no global compatibility level");
  }
  return rc;
}

int tw_meta_sr_config_get(tw_meta *m, const char *subject, tw_arena *arena,
                          const char **level, tw_err *err) {
  if (subject != NULL) {
    int rc = check_subject(subject, err);
    if (rc != TW_OK)
      return rc;
  }
  sr_args a = {.subject = subject};
  int rc = tw__meta_txn(m, TW__META_READ, config_get_fn, &a, arena, err);
  if (rc == TW_OK)
    *level = a.level;
  return rc;
}

static int config_set_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  sr_args *a = arg;
  const char *key = a->subject ? a->subject : GLOBAL;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, key);
  bool found = false;
  int64_t one = 0;
  int rc = tw__meta_query_int(m, "SELECT 1 FROM sr_config WHERE subject = ?",
                              &p, &one, &found, err);
  if (rc != TW_OK)
    return rc;
  if (a->level == NULL) {
    if (!found)
      return config_get_fn(m, arg, NULL, err);
    return tw__meta_exec(m, "DELETE FROM sr_config WHERE subject = ?", &p, err);
  }
  p.n = 0;
  tw__meta_params_text(&p, a->level);
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  tw__meta_params_text(&p, key);
  return tw__meta_exec(m,
                       found ? "UPDATE sr_config SET level = ?, updated_ms = ? "
                               "WHERE subject = ?"
                             : "INSERT INTO sr_config (level, updated_ms, "
                               "subject) VALUES (?, ?, ?)",
                       &p, err);
}

int tw_meta_sr_config_set(tw_meta *m, const char *subject, const char *level,
                          tw_err *err) {
  int rc = TW_OK;
  if (subject != NULL)
    rc = check_subject(subject, err);
  if (rc == TW_OK && level != NULL)
    rc = tw__meta_check_text("compatibility level", level, TW_META_SR_LEVEL_MAX,
                             false, err);
  if (rc != TW_OK)
    return rc;
  sr_args a = {.subject = subject, .level = level};
  return tw__meta_txn(m, TW__META_WRITE, config_set_fn, &a, NULL, err);
}
