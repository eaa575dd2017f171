/*
 * meta_model.c - the operations of the metadata store on registered
 * models, versions, tags, lineage and aliases (twin/meta.h), written once
 * in the SQL both backends accept.
 *
 * Each public function checks its input first (nothing reaches the
 * database unchecked), then runs one transaction through tw__meta_txn.
 * Invariants kept here: models.next_version is bumped in the transaction
 * that inserts the version it numbered, so numbers never repeat, even
 * after deletes; an alias row always names a version of its own model
 * (both foreign keys cascade); a record read back is the state of one
 * snapshot.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "twin/alloc.h"
#include "twin/json.h"
#include "twin/store.h"

/* --- Small helpers ---------------------------------------------------------
 */

static int oom(tw_meta *m, tw_err *err) {
  return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
}

/* Copies a column into arena; NULL columns give NULL when nullable. */
static int col_dup(tw_meta *m, tw__meta_rows *r, int col, bool nullable,
                   tw_arena *arena, const char **out, tw_err *err) {
  if (nullable && m->drv->is_null(r, col)) {
    *out = NULL;
    return TW_OK;
  }
  char *s = tw_arena_strdup(arena, m->drv->col_text(r, col));
  if (s == NULL)
    return oom(m, err);
  *out = s;
  return TW_OK;
}

/* Grows an arena array of n elements of size to hold one more; arrays
 * double, so the copies add up to less than the final size. */
static void *arena_grow(tw_arena *arena, void *items, size_t n, size_t *cap,
                        size_t size) {
  if (n < *cap)
    return items;
  size_t ncap = *cap ? *cap * 2 : 8;
  void *p = tw_arena_calloc(arena, ncap, size);
  if (p != NULL && n != 0)
    memcpy(p, items, n * size);
  if (p != NULL)
    *cap = ncap;
  return p;
}

static int model_id(tw_meta *m, const char *name, int64_t *id, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, name);
  bool found = false;
  int rc = tw__meta_query_int(m, "SELECT id FROM models WHERE name = ?", &p, id,
                              &found, err);
  if (rc == TW_OK && !found)
    rc = tw_err_set(err, TW_ENOENT, "model '%s': not found", name);
  return rc;
}

static int version_id(tw_meta *m, int64_t mid, const char *name,
                      int64_t version, int64_t *id, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, mid);
  tw__meta_params_int(&p, version);
  bool found = false;
  int rc = tw__meta_query_int(
      m, "SELECT id FROM versions WHERE model_id = ? AND version = ?", &p, id,
      &found, err);
  if (rc == TW_OK && !found)
    rc = tw_err_set(err, TW_ENOENT, "model '%s' version %lld: not found", name,
                    (long long)version);
  return rc;
}

static int touch_model(tw_meta *m, int64_t mid, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  tw__meta_params_int(&p, mid);
  return tw__meta_exec(m, "UPDATE models SET updated_ms = ? WHERE id = ?", &p,
                       err);
}

static int touch_version(tw_meta *m, int64_t vid, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  tw__meta_params_int(&p, vid);
  return tw__meta_exec(m, "UPDATE versions SET updated_ms = ? WHERE id = ?", &p,
                       err);
}

/* Reads "SELECT key, value ..." into an arena array of tags. */
static int read_tags(tw_meta *m, const char *sql, int64_t id, tw_arena *arena,
                     const tw_meta_tag **out, size_t *n_out, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, id);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, sql, &p, &r, err);
  if (rc != TW_OK)
    return rc;
  tw_meta_tag *tags = NULL;
  size_t n = 0, cap = 0;
  while ((rc = m->drv->next(r, err)) == 1) {
    tags = arena_grow(arena, tags, n, &cap, sizeof *tags);
    if (tags == NULL ||
        col_dup(m, r, 0, false, arena, &tags[n].key, err) != TW_OK ||
        col_dup(m, r, 1, false, arena, &tags[n].value, err) != TW_OK) {
      rc = oom(m, err);
      break;
    }
    n++;
  }
  m->drv->finish(r);
  if (rc != 0)
    return rc;
  *out = tags;
  *n_out = n;
  return TW_OK;
}

/* Reads a one-column text query into an arena array of strings. */
static int read_strings(tw_meta *m, const char *sql, int64_t id,
                        tw_arena *arena, const char *const **out, size_t *n_out,
                        tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, id);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, sql, &p, &r, err);
  if (rc != TW_OK)
    return rc;
  const char **items = NULL;
  size_t n = 0, cap = 0;
  while ((rc = m->drv->next(r, err)) == 1) {
    items = arena_grow(arena, items, n, &cap, sizeof *items);
    if (items == NULL || col_dup(m, r, 0, false, arena, &items[n], err)) {
      rc = oom(m, err);
      break;
    }
    n++;
  }
  m->drv->finish(r);
  if (rc != 0)
    return rc;
  *out = items;
  *n_out = n;
  return TW_OK;
}

/* Reads a (text, integer) query into an arena array of structs of size
 * bytes holding a const char * at name_off and an int64_t at ver_off
 * (aliases, parents). */
static int read_named_versions(tw_meta *m, const char *sql, int64_t id,
                               tw_arena *arena, size_t size, size_t name_off,
                               size_t ver_off, void **out, size_t *n_out,
                               tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, id);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, sql, &p, &r, err);
  if (rc != TW_OK)
    return rc;
  char *items = NULL;
  size_t n = 0, cap = 0;
  while ((rc = m->drv->next(r, err)) == 1) {
    items = arena_grow(arena, items, n, &cap, size);
    const char *name = NULL;
    if (items == NULL || col_dup(m, r, 0, false, arena, &name, err)) {
      rc = oom(m, err);
      break;
    }
    int64_t v = m->drv->col_int(r, 1);
    memcpy(items + n * size + name_off, &name, sizeof name);
    memcpy(items + n * size + ver_off, &v, sizeof v);
    n++;
  }
  m->drv->finish(r);
  if (rc != 0)
    return rc;
  *out = items;
  *n_out = n;
  return TW_OK;
}

/* --- Reading records -------------------------------------------------------
 */

int tw__meta_model_row(tw_meta *m, tw__meta_rows *r, tw_arena *arena,
                       tw_meta_model *out, int64_t *id, tw_err *err) {
  memset(out, 0, sizeof *out);
  *id = m->drv->col_int(r, 0);
  int rc = col_dup(m, r, 1, false, arena, &out->name, err);
  if (rc == TW_OK)
    rc = col_dup(m, r, 2, false, arena, &out->description, err);
  out->created_ms = m->drv->col_int(r, 3);
  out->updated_ms = m->drv->col_int(r, 4);
  return rc;
}

int tw__meta_model_fill(tw_meta *m, int64_t id, tw_arena *arena,
                        tw_meta_model *out, tw_err *err) {
  int rc = read_tags(m,
                     "SELECT key, value FROM model_tags WHERE model_id = ? "
                     "ORDER BY key",
                     id, arena, &out->tags, &out->n_tags, err);
  if (rc != TW_OK)
    return rc;
  void *al = NULL;
  rc = read_named_versions(
      m,
      "SELECT a.alias, v.version FROM aliases a JOIN versions v ON v.id = "
      "a.version_id WHERE a.model_id = ? ORDER BY a.alias",
      id, arena, sizeof(tw_meta_alias), offsetof(tw_meta_alias, alias),
      offsetof(tw_meta_alias, version), &al, &out->n_aliases, err);
  if (rc != TW_OK)
    return rc;
  out->aliases = al;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, id);
  bool found = false;
  return tw__meta_query_int(
      m, "SELECT max(version) FROM versions WHERE model_id = ?", &p,
      &out->latest_version, &found, err);
}

int tw__meta_version_row(tw_meta *m, tw__meta_rows *r, tw_arena *arena,
                         tw_meta_version *out, int64_t *id, tw_err *err) {
  memset(out, 0, sizeof *out);
  const tw__meta_driver *d = m->drv;
  *id = d->col_int(r, 0);
  tw_meta_artifact *a = &out->artifact;
  const char *status = NULL;
  int rc = col_dup(m, r, 1, false, arena, &out->model, err);
  if (rc == TW_OK)
    rc = col_dup(m, r, 3, false, arena, &out->description, err);
  if (rc == TW_OK)
    rc = col_dup(m, r, 5, true, arena, &a->repository, err);
  if (rc == TW_OK)
    rc = col_dup(m, r, 6, true, arena, &a->manifest_digest, err);
  if (rc == TW_OK)
    rc = col_dup(m, r, 7, true, arena, &a->wasm_digest, err);
  if (rc == TW_OK)
    rc = col_dup(m, r, 9, true, arena, &a->descriptor, err);
  if (rc != TW_OK)
    return rc;
  out->version = d->col_int(r, 2);
  status = d->col_text(r, 4);
  if (tw_meta_status_parse(status, &out->status, NULL) != TW_OK)
    return tw_err_set(err, TW_EIO,
                      "%s: model '%s' version %lld: unknown "
                      "status '%.40s' in the database",
                      m->url, out->model, (long long)out->version, status);
  a->size = d->is_null(r, 8) ? -1 : d->col_int(r, 8);
  out->created_ms = d->col_int(r, 10);
  out->updated_ms = d->col_int(r, 11);
  return TW_OK;
}

int tw__meta_version_fill(tw_meta *m, int64_t id, tw_arena *arena,
                          tw_meta_version *out, tw_err *err) {
  int rc = read_tags(m,
                     "SELECT key, value FROM version_tags WHERE version_id = "
                     "? ORDER BY key",
                     id, arena, &out->tags, &out->n_tags, err);
  if (rc == TW_OK)
    rc = read_strings(m,
                      "SELECT run_id FROM version_runs WHERE version_id = ? "
                      "ORDER BY pos",
                      id, arena, &out->run_ids, &out->n_run_ids, err);
  if (rc == TW_OK)
    rc = read_strings(m,
                      "SELECT alias FROM aliases WHERE version_id = ? ORDER "
                      "BY alias",
                      id, arena, &out->aliases, &out->n_aliases, err);
  if (rc != TW_OK)
    return rc;
  void *ps = NULL;
  rc = read_named_versions(
      m,
      "SELECT parent_model, parent_version FROM version_parents WHERE "
      "version_id = ? ORDER BY pos",
      id, arena, sizeof(tw_meta_parent), offsetof(tw_meta_parent, model),
      offsetof(tw_meta_parent, version), &ps, &out->n_parents, err);
  if (rc == TW_OK)
    out->parents = ps;
  return rc;
}

/* Reads version vid into out. */
static int read_version(tw_meta *m, int64_t vid, tw_arena *arena,
                        tw_meta_version *out, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, vid);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m,
                          "SELECT " TW__META_VERSION_COLS
                          " FROM versions v JOIN models m ON m.id = "
                          "v.model_id WHERE v.id = ?",
                          &p, &r, err);
  if (rc != TW_OK)
    return rc;
  int64_t id = 0;
  rc = m->drv->next(r, err);
  if (rc == 1)
    rc = tw__meta_version_row(m, r, arena, out, &id, err);
  else if (rc == 0)
    rc = tw_err_set(err, TW_ENOENT, "%s: version %lld vanished", m->url,
                    (long long)vid);
  m->drv->finish(r);
  if (rc == TW_OK)
    rc = tw__meta_version_fill(m, id, arena, out, err);
  return rc;
}

/* --- Models -----------------------------------------------------------------
 */

typedef struct model_args {
  const char *name;
  const char *description;
  const char *key;
  const char *value;
  const tw_meta_tag *tags;
  size_t n_tags;
  tw_meta_model *out;
} model_args;

static int insert_tag(tw_meta *m, const char *sql, int64_t id, const char *key,
                      const char *value, tw_err *err) {
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, id);
  tw__meta_params_text(&p, key);
  tw__meta_params_text(&p, value);
  return tw__meta_exec(m, sql, &p, err);
}

static const char model_tag_upsert[] =
    "INSERT INTO model_tags (model_id, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value";
static const char version_tag_upsert[] =
    "INSERT INTO version_tags (version_id, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (version_id, key) DO UPDATE SET value = excluded.value";

static int model_create_fn(tw_meta *m, void *arg, tw_arena *arena,
                           tw_err *err) {
  (void)arena;
  model_args *a = arg;
  int64_t id = 0;
  bool found = false;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->name);
  int rc = tw__meta_query_int(m, "SELECT id FROM models WHERE name = ?", &p,
                              &id, &found, err);
  if (rc != TW_OK)
    return rc;
  if (found)
    return tw_err_set(err, TW_EEXIST, "model '%s': already exists", a->name);
  int64_t now = tw__meta_now_ms(m);
  tw__meta_params_text(&p, a->description ? a->description : "");
  tw__meta_params_int(&p, now);
  tw__meta_params_int(&p, now);
  rc = tw__meta_exec(m,
                     "INSERT INTO models (name, description, created_ms, "
                     "updated_ms) VALUES (?, ?, ?, ?)",
                     &p, err);
  if (rc == TW_OK)
    rc = model_id(m, a->name, &id, err);
  for (size_t i = 0; rc == TW_OK && i < a->n_tags; i++)
    rc = insert_tag(m, model_tag_upsert, id, a->tags[i].key, a->tags[i].value,
                    err);
  return rc;
}

int tw_meta_model_create(tw_meta *m, const tw_meta_model *spec, tw_err *err) {
  int rc = tw_meta_name_check(spec->name, err);
  if (rc == TW_OK && spec->description != NULL)
    rc = tw__meta_check_text("model description", spec->description,
                             TW_META_DESCRIPTION_MAX, true, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tags(spec->tags, spec->n_tags, err);
  if (rc != TW_OK)
    return rc;
  model_args a = {.name = spec->name,
                  .description = spec->description,
                  .tags = spec->tags,
                  .n_tags = spec->n_tags};
  return tw__meta_txn(m, TW__META_WRITE, model_create_fn, &a, NULL, err);
}

static int model_get_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  model_args *a = arg;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->name);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(
      m, "SELECT " TW__META_MODEL_COLS " FROM models m WHERE m.name = ?", &p,
      &r, err);
  if (rc != TW_OK)
    return rc;
  int64_t id = 0;
  rc = m->drv->next(r, err);
  if (rc == 1)
    rc = tw__meta_model_row(m, r, arena, a->out, &id, err);
  else if (rc == 0)
    rc = tw_err_set(err, TW_ENOENT, "model '%s': not found", a->name);
  m->drv->finish(r);
  if (rc == TW_OK)
    rc = tw__meta_model_fill(m, id, arena, a->out, err);
  return rc;
}

int tw_meta_model_get(tw_meta *m, const char *name, tw_arena *arena,
                      tw_meta_model *out, tw_err *err) {
  int rc = tw_meta_name_check(name, err);
  if (rc != TW_OK)
    return rc;
  tw_meta_model tmp;
  model_args a = {.name = name, .out = &tmp};
  rc = tw__meta_txn(m, TW__META_READ, model_get_fn, &a, arena, err);
  if (rc == TW_OK)
    *out = tmp;
  return rc;
}

static int model_update_fn(tw_meta *m, void *arg, tw_arena *arena,
                           tw_err *err) {
  (void)arena;
  model_args *a = arg;
  int64_t id = 0;
  int rc = model_id(m, a->name, &id, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->description);
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  tw__meta_params_int(&p, id);
  return tw__meta_exec(
      m, "UPDATE models SET description = ?, updated_ms = ? WHERE id = ?", &p,
      err);
}

int tw_meta_model_update(tw_meta *m, const char *name, const char *description,
                         tw_err *err) {
  int rc = tw_meta_name_check(name, err);
  if (rc == TW_OK)
    rc = tw__meta_check_text("model description", description,
                             TW_META_DESCRIPTION_MAX, true, err);
  if (rc != TW_OK)
    return rc;
  model_args a = {.name = name, .description = description};
  return tw__meta_txn(m, TW__META_WRITE, model_update_fn, &a, NULL, err);
}

static int model_delete_fn(tw_meta *m, void *arg, tw_arena *arena,
                           tw_err *err) {
  (void)arena;
  model_args *a = arg;
  int64_t id = 0;
  int rc = model_id(m, a->name, &id, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, id);
  /* The foreign keys cascade to versions, tags, lineage and aliases. */
  return tw__meta_exec(m, "DELETE FROM models WHERE id = ?", &p, err);
}

int tw_meta_model_delete(tw_meta *m, const char *name, tw_err *err) {
  int rc = tw_meta_name_check(name, err);
  if (rc != TW_OK)
    return rc;
  model_args a = {.name = name};
  return tw__meta_txn(m, TW__META_WRITE, model_delete_fn, &a, NULL, err);
}

static int model_tag_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  model_args *a = arg;
  int64_t id = 0;
  int rc = model_id(m, a->name, &id, err);
  if (rc != TW_OK)
    return rc;
  if (a->value != NULL) {
    rc = insert_tag(m, model_tag_upsert, id, a->key, a->value, err);
  } else {
    tw__meta_params p = {.n = 0};
    tw__meta_params_int(&p, id);
    tw__meta_params_text(&p, a->key);
    int64_t one = 0;
    bool found = false;
    rc = tw__meta_query_int(
        m, "SELECT 1 FROM model_tags WHERE model_id = ? AND key = ?", &p, &one,
        &found, err);
    if (rc == TW_OK && !found)
      return tw_err_set(err, TW_ENOENT, "model '%s': no tag '%s'", a->name,
                        a->key);
    if (rc == TW_OK)
      rc = tw__meta_exec(
          m, "DELETE FROM model_tags WHERE model_id = ? AND key = ?", &p, err);
  }
  if (rc == TW_OK)
    rc = touch_model(m, id, err);
  return rc;
}

int tw_meta_model_tag_set(tw_meta *m, const char *name, const char *key,
                          const char *value, tw_err *err) {
  int rc = tw_meta_name_check(name, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tag(key, value, err);
  if (rc != TW_OK)
    return rc;
  model_args a = {.name = name, .key = key, .value = value};
  return tw__meta_txn(m, TW__META_WRITE, model_tag_fn, &a, NULL, err);
}

int tw_meta_model_tag_delete(tw_meta *m, const char *name, const char *key,
                             tw_err *err) {
  int rc = tw_meta_name_check(name, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tag(key, "", err);
  if (rc != TW_OK)
    return rc;
  model_args a = {.name = name, .key = key};
  return tw__meta_txn(m, TW__META_WRITE, model_tag_fn, &a, NULL, err);
}

/* --- Versions ---------------------------------------------------------------
 */

static int check_digest(const char *what, const char *digest, tw_err *err) {
  tw_err e;
  tw_err_init(&e);
  if (digest == NULL || tw_store_digest_check(digest, &e) == TW_OK)
    return TW_OK;
  return tw_err_set(err, TW_EINVAL, "%s: %s", what, tw_err_msg(&e));
}

static int check_repository(const char *repo, tw_err *err) {
  if (repo == NULL)
    return TW_OK;
  size_t n = strlen(repo);
  if (n == 0 || n > TW_META_REPOSITORY_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "artifact repository: %zu characters, not 1 to %d", n,
                      TW_META_REPOSITORY_MAX);
  for (size_t i = 0; i < n; i++) {
    char c = repo[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          strchr("._/-", c) != NULL))
      return tw_err_set(err, TW_EINVAL,
                        "artifact repository '%.255s': character %zu is not "
                        "one of [a-z0-9._/-]",
                        repo, i + 1);
  }
  return TW_OK;
}

static int check_descriptor(const char *text, tw_err *err) {
  if (text == NULL)
    return TW_OK;
  size_t n = strlen(text);
  if (n > TW_META_DESCRIPTOR_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "model descriptor: %zu bytes, more "
                      "than %zu",
                      n, TW_META_DESCRIPTOR_MAX);
  json_t *j = NULL;
  tw_err e;
  tw_err_init(&e);
  int rc = tw_json_parse(text, n, "model descriptor", &j, &e);
  if (rc != TW_OK)
    return tw_err_set(err, rc == TW_ENOMEM ? rc : TW_EINVAL, "%s",
                      tw_err_msg(&e));
  bool obj = json_is_object(j);
  json_decref(j);
  if (!obj)
    return tw_err_set(err, TW_EINVAL, "model descriptor: not a JSON object");
  return TW_OK;
}

static int check_version_spec(const tw_meta_version *s, tw_err *err) {
  int rc = tw_meta_name_check(s->model, err);
  if (rc == TW_OK && s->description != NULL)
    rc = tw__meta_check_text("version description", s->description,
                             TW_META_DESCRIPTION_MAX, true, err);
  if (rc == TW_OK && tw_meta_status_name(s->status) == NULL)
    rc = tw_err_set(err, TW_EINVAL, "version status %d: unknown",
                    (int)s->status);
  if (rc == TW_OK)
    rc = check_repository(s->artifact.repository, err);
  if (rc == TW_OK)
    rc = check_digest("manifest digest", s->artifact.manifest_digest, err);
  if (rc == TW_OK)
    rc = check_digest("wasm digest", s->artifact.wasm_digest, err);
  if (rc == TW_OK && s->artifact.size < -1)
    rc = tw_err_set(err, TW_EINVAL, "artifact size %lld: negative",
                    (long long)s->artifact.size);
  if (rc == TW_OK)
    rc = check_descriptor(s->artifact.descriptor, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tags(s->tags, s->n_tags, err);
  if (rc != TW_OK)
    return rc;
  if (s->n_run_ids > TW_META_LIST_MAX || s->n_parents > TW_META_LIST_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "lineage: more than %d run ids or "
                      "parents",
                      TW_META_LIST_MAX);
  for (size_t i = 0; i < s->n_run_ids; i++) {
    const char *id = s->run_ids[i];
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > TW_META_RUN_ID_MAX)
      return tw_err_set(err, TW_EINVAL, "run id %zu: not 1 to %d characters",
                        i + 1, TW_META_RUN_ID_MAX);
    for (size_t k = 0; k < n; k++)
      if (id[k] <= ' ' || id[k] > '~')
        return tw_err_set(err, TW_EINVAL,
                          "run id '%.64s': character %zu is not printable "
                          "ASCII",
                          id, k + 1);
  }
  for (size_t i = 0; i < s->n_parents; i++) {
    if ((rc = tw_meta_name_check(s->parents[i].model, err)) != TW_OK ||
        (rc = tw__meta_check_version(s->parents[i].version, err)) != TW_OK)
      return rc;
    for (size_t j = 0; j < i; j++)
      if (strcmp(s->parents[i].model, s->parents[j].model) == 0 &&
          s->parents[i].version == s->parents[j].version)
        return tw_err_set(err, TW_EINVAL, "parent '%s/%lld': given twice",
                          s->parents[i].model,
                          (long long)s->parents[i].version);
  }
  return TW_OK;
}

typedef struct version_args {
  const tw_meta_version *spec;
  const char *model;
  int64_t version;
  const char *description;
  tw_meta_status status;
  const char *key;
  const char *value;
  const char *alias;
  const char *ref_alias; /* resolve: by alias, else by version */
  tw_meta_version *out;
} version_args;

static int version_create_fn(tw_meta *m, void *arg, tw_arena *arena,
                             tw_err *err) {
  (void)arena;
  version_args *a = arg;
  const tw_meta_version *s = a->spec;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, s->model);
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(
      m, "SELECT id, next_version FROM models WHERE name = ?", &p, &r, err);
  if (rc != TW_OK)
    return rc;
  int64_t mid = 0, number = 0;
  rc = m->drv->next(r, err);
  if (rc == 1) {
    mid = m->drv->col_int(r, 0);
    number = m->drv->col_int(r, 1);
    rc = TW_OK;
  } else if (rc == 0) {
    rc = tw_err_set(err, TW_ENOENT, "model '%s': not found", s->model);
  }
  m->drv->finish(r);
  for (size_t i = 0; rc == TW_OK && i < s->n_parents; i++) {
    int64_t pmid = 0, pvid = 0;
    rc = model_id(m, s->parents[i].model, &pmid, err);
    if (rc == TW_OK)
      rc = version_id(m, pmid, s->parents[i].model, s->parents[i].version,
                      &pvid, err);
    if (rc != TW_OK)
      return tw_err_set(err, rc, "parent of the new version: not found");
  }
  if (rc != TW_OK)
    return rc;
  int64_t now = tw__meta_now_ms(m);
  p.n = 0;
  tw__meta_params_int(&p, now);
  tw__meta_params_int(&p, mid);
  rc = tw__meta_exec(m,
                     "UPDATE models SET next_version = next_version + 1, "
                     "updated_ms = ? WHERE id = ?",
                     &p, err);
  if (rc != TW_OK)
    return rc;
  const tw_meta_artifact *art = &s->artifact;
  p.n = 0;
  tw__meta_params_int(&p, mid);
  tw__meta_params_int(&p, number);
  tw__meta_params_text(&p, s->description ? s->description : "");
  tw__meta_params_text(&p, tw_meta_status_name(s->status));
  tw__meta_params_text(&p, art->repository);
  tw__meta_params_text(&p, art->manifest_digest);
  tw__meta_params_text(&p, art->wasm_digest);
  if (art->size >= 0)
    tw__meta_params_int(&p, art->size);
  else
    tw__meta_params_text(&p, NULL);
  tw__meta_params_text(&p, art->descriptor);
  tw__meta_params_int(&p, now);
  tw__meta_params_int(&p, now);
  rc = tw__meta_exec(m,
                     "INSERT INTO versions (model_id, version, description, "
                     "status, repository, manifest_digest, wasm_digest, size, "
                     "descriptor, created_ms, updated_ms) VALUES (?, ?, ?, ?, "
                     "?, ?, ?, ?, ?, ?, ?)",
                     &p, err);
  int64_t vid = 0;
  if (rc == TW_OK)
    rc = version_id(m, mid, s->model, number, &vid, err);
  for (size_t i = 0; rc == TW_OK && i < s->n_tags; i++)
    rc = insert_tag(m, version_tag_upsert, vid, s->tags[i].key,
                    s->tags[i].value, err);
  for (size_t i = 0; rc == TW_OK && i < s->n_run_ids; i++) {
    p.n = 0;
    tw__meta_params_int(&p, vid);
    tw__meta_params_int(&p, (int64_t)i);
    tw__meta_params_text(&p, s->run_ids[i]);
    rc = tw__meta_exec(m,
                       "INSERT INTO version_runs (version_id, pos, run_id) "
                       "VALUES (?, ?, ?)",
                       &p, err);
  }
  for (size_t i = 0; rc == TW_OK && i < s->n_parents; i++) {
    p.n = 0;
    tw__meta_params_int(&p, vid);
    tw__meta_params_int(&p, (int64_t)i);
    tw__meta_params_text(&p, s->parents[i].model);
    tw__meta_params_int(&p, s->parents[i].version);
    rc = tw__meta_exec(m,
                       "INSERT INTO version_parents (version_id, pos, "
                       "parent_model, parent_version) VALUES (?, ?, ?, ?)",
                       &p, err);
  }
  if (rc == TW_OK)
    a->version = number;
  return rc;
}

int tw_meta_version_create(tw_meta *m, const tw_meta_version *spec,
                           int64_t *version, tw_err *err) {
  int rc = check_version_spec(spec, err);
  if (rc != TW_OK)
    return rc;
  version_args a = {.spec = spec};
  rc = tw__meta_txn(m, TW__META_WRITE, version_create_fn, &a, NULL, err);
  if (rc == TW_OK && version != NULL)
    *version = a.version;
  return rc;
}

/* Finds the version a->model / a->version, or a->model @ a->ref_alias. */
static int find_version(tw_meta *m, version_args *a, int64_t *mid, int64_t *vid,
                        tw_err *err) {
  int rc = model_id(m, a->model, mid, err);
  if (rc != TW_OK || a->ref_alias == NULL)
    return rc == TW_OK ? version_id(m, *mid, a->model, a->version, vid, err)
                       : rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, *mid);
  bool found = false;
  if (strcmp(a->ref_alias, "latest") == 0) {
    rc = tw__meta_query_int(m,
                            "SELECT id FROM versions WHERE model_id = ? ORDER "
                            "BY version DESC LIMIT 1",
                            &p, vid, &found, err);
    if (rc == TW_OK && !found)
      rc = tw_err_set(err, TW_ENOENT, "model '%s': has no versions", a->model);
    return rc;
  }
  tw__meta_params_text(&p, a->ref_alias);
  rc = tw__meta_query_int(
      m, "SELECT version_id FROM aliases WHERE model_id = ? AND alias = ?", &p,
      vid, &found, err);
  if (rc == TW_OK && !found)
    rc = tw_err_set(err, TW_ENOENT, "alias '%s@%s': not found", a->model,
                    a->ref_alias);
  return rc;
}

static int version_get_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc == TW_OK)
    rc = read_version(m, vid, arena, a->out, err);
  return rc;
}

int tw_meta_version_get(tw_meta *m, const char *model, int64_t version,
                        tw_arena *arena, tw_meta_version *out, tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw__meta_check_version(version, err);
  if (rc != TW_OK)
    return rc;
  tw_meta_version tmp;
  version_args a = {.model = model, .version = version, .out = &tmp};
  rc = tw__meta_txn(m, TW__META_READ, version_get_fn, &a, arena, err);
  if (rc == TW_OK)
    *out = tmp;
  return rc;
}

int tw_meta_version_resolve(tw_meta *m, const char *ref, tw_arena *arena,
                            tw_meta_version *out, tw_err *err) {
  if (ref == NULL)
    return tw_err_set(err, TW_EINVAL, "model reference: missing");
  const char *s = ref;
  if (strncmp(s, "models:/", 8) == 0)
    s += 8;
  char name[TW_META_NAME_MAX + 1];
  size_t n = strcspn(s, "@/");
  if (n > TW_META_NAME_MAX || s[n] == '\0')
    return tw_err_set(err, TW_EINVAL,
                      "model reference '%.200s': not MODEL/VERSION or "
                      "MODEL@ALIAS",
                      ref);
  memcpy(name, s, n);
  name[n] = '\0';
  int rc = tw_meta_name_check(name, err);
  if (rc != TW_OK)
    return rc;
  tw_meta_version tmp;
  version_args a = {.model = name, .out = &tmp};
  if (s[n] == '@') {
    a.ref_alias = s + n + 1;
    if (strcmp(a.ref_alias, "latest") != 0 &&
        (rc = tw_meta_alias_check(a.ref_alias, err)) != TW_OK)
      return rc;
  } else {
    const char *v = s + n + 1;
    char *end = NULL;
    long long num = strtoll(v, &end, 10);
    if (v[0] < '1' || v[0] > '9' || *end != '\0' || num < 1)
      return tw_err_set(err, TW_EINVAL,
                        "model reference '%.200s': '%.40s' is not a version "
                        "number",
                        ref, v);
    a.version = num;
  }
  rc = tw__meta_txn(m, TW__META_READ, version_get_fn, &a, arena, err);
  if (rc == TW_OK)
    *out = tmp;
  return rc;
}

static int version_update_fn(tw_meta *m, void *arg, tw_arena *arena,
                             tw_err *err) {
  (void)arena;
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_text(&p, a->description);
  tw__meta_params_text(&p, tw_meta_status_name(a->status));
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  tw__meta_params_int(&p, vid);
  return tw__meta_exec(m,
                       "UPDATE versions SET description = coalesce(?, "
                       "description), status = ?, updated_ms = ? WHERE id = ?",
                       &p, err);
}

int tw_meta_version_update(tw_meta *m, const char *model, int64_t version,
                           const char *description, tw_meta_status status,
                           tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw__meta_check_version(version, err);
  if (rc == TW_OK && description != NULL)
    rc = tw__meta_check_text("version description", description,
                             TW_META_DESCRIPTION_MAX, true, err);
  if (rc == TW_OK && tw_meta_status_name(status) == NULL)
    rc = tw_err_set(err, TW_EINVAL, "version status %d: unknown", (int)status);
  if (rc != TW_OK)
    return rc;
  version_args a = {.model = model,
                    .version = version,
                    .description = description,
                    .status = status};
  return tw__meta_txn(m, TW__META_WRITE, version_update_fn, &a, NULL, err);
}

static int version_delete_fn(tw_meta *m, void *arg, tw_arena *arena,
                             tw_err *err) {
  (void)arena;
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, vid);
  rc = tw__meta_exec(m, "DELETE FROM versions WHERE id = ?", &p, err);
  if (rc == TW_OK)
    rc = touch_model(m, mid, err);
  return rc;
}

int tw_meta_version_delete(tw_meta *m, const char *model, int64_t version,
                           tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw__meta_check_version(version, err);
  if (rc != TW_OK)
    return rc;
  version_args a = {.model = model, .version = version};
  return tw__meta_txn(m, TW__META_WRITE, version_delete_fn, &a, NULL, err);
}

static int version_tag_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc != TW_OK)
    return rc;
  if (a->value != NULL) {
    rc = insert_tag(m, version_tag_upsert, vid, a->key, a->value, err);
  } else {
    tw__meta_params p = {.n = 0};
    tw__meta_params_int(&p, vid);
    tw__meta_params_text(&p, a->key);
    int64_t one = 0;
    bool found = false;
    rc = tw__meta_query_int(
        m, "SELECT 1 FROM version_tags WHERE version_id = ? AND key = ?", &p,
        &one, &found, err);
    if (rc == TW_OK && !found)
      return tw_err_set(err, TW_ENOENT, "model '%s' version %lld: no tag '%s'",
                        a->model, (long long)a->version, a->key);
    if (rc == TW_OK)
      rc = tw__meta_exec(
          m, "DELETE FROM version_tags WHERE version_id = ? AND key = ?", &p,
          err);
  }
  if (rc == TW_OK)
    rc = touch_version(m, vid, err);
  return rc;
}

int tw_meta_version_tag_set(tw_meta *m, const char *model, int64_t version,
                            const char *key, const char *value, tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw__meta_check_version(version, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tag(key, value, err);
  if (rc != TW_OK)
    return rc;
  version_args a = {
      .model = model, .version = version, .key = key, .value = value};
  return tw__meta_txn(m, TW__META_WRITE, version_tag_fn, &a, NULL, err);
}

int tw_meta_version_tag_delete(tw_meta *m, const char *model, int64_t version,
                               const char *key, tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw__meta_check_version(version, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tag(key, "", err);
  if (rc != TW_OK)
    return rc;
  version_args a = {.model = model, .version = version, .key = key};
  return tw__meta_txn(m, TW__META_WRITE, version_tag_fn, &a, NULL, err);
}

/* --- Aliases ----------------------------------------------------------------
 */

static int alias_set_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, mid);
  tw__meta_params_text(&p, a->alias);
  tw__meta_params_int(&p, vid);
  tw__meta_params_int(&p, tw__meta_now_ms(m));
  rc = tw__meta_exec(m,
                     "INSERT INTO aliases (model_id, alias, version_id, "
                     "updated_ms) VALUES (?, ?, ?, ?) ON CONFLICT (model_id, "
                     "alias) DO UPDATE SET version_id = excluded.version_id, "
                     "updated_ms = excluded.updated_ms",
                     &p, err);
  if (rc == TW_OK)
    rc = touch_model(m, mid, err);
  return rc;
}

int tw_meta_alias_set(tw_meta *m, const char *model, const char *alias,
                      int64_t version, tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw_meta_alias_check(alias, err);
  if (rc == TW_OK)
    rc = tw__meta_check_version(version, err);
  if (rc != TW_OK)
    return rc;
  version_args a = {.model = model, .version = version, .alias = alias};
  return tw__meta_txn(m, TW__META_WRITE, alias_set_fn, &a, NULL, err);
}

static int alias_delete_fn(tw_meta *m, void *arg, tw_arena *arena,
                           tw_err *err) {
  (void)arena;
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, mid);
  tw__meta_params_text(&p, a->ref_alias);
  rc = tw__meta_exec(m, "DELETE FROM aliases WHERE model_id = ? AND alias = ?",
                     &p, err);
  if (rc == TW_OK)
    rc = touch_model(m, mid, err);
  return rc;
}

int tw_meta_alias_delete(tw_meta *m, const char *model, const char *alias,
                         tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK)
    rc = tw_meta_alias_check(alias, err);
  if (rc != TW_OK)
    return rc;
  version_args a = {.model = model, .ref_alias = alias};
  return tw__meta_txn(m, TW__META_WRITE, alias_delete_fn, &a, NULL, err);
}

static int alias_get_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  version_args *a = arg;
  int64_t mid = 0, vid = 0;
  int rc = find_version(m, a, &mid, &vid, err);
  if (rc != TW_OK)
    return rc;
  tw__meta_params p = {.n = 0};
  tw__meta_params_int(&p, vid);
  bool found = false;
  return tw__meta_query_int(m, "SELECT version FROM versions WHERE id = ?", &p,
                            &a->version, &found, err);
}

int tw_meta_alias_get(tw_meta *m, const char *model, const char *alias,
                      int64_t *version, tw_err *err) {
  int rc = tw_meta_name_check(model, err);
  if (rc == TW_OK && (alias == NULL || strcmp(alias, "latest") != 0))
    rc = tw_meta_alias_check(alias, err);
  if (rc != TW_OK)
    return rc;
  version_args a = {.model = model, .ref_alias = alias};
  rc = tw__meta_txn(m, TW__META_READ, alias_get_fn, &a, NULL, err);
  if (rc == TW_OK)
    *version = a.version;
  return rc;
}
