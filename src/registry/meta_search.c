/*
 * meta_search.c - searches of the metadata store (twin/meta.h): models
 * and versions by filters, a page at a time.
 *
 * A search is one statement put together from constant fragments, one per
 * filter given, with every value bound as a parameter. Pagination is by
 * key, not offset: results are ordered by a unique key (a model's name; a
 * version's model name and number), and a page token is the key of the
 * page's last row, base64url-encoded with a kind prefix ("m1:NAME",
 * "v1:NUMBER:NAME"), so the next page starts strictly after it. Pages
 * stay correct while rows are inserted or deleted between calls: nothing
 * is skipped or repeated except rows that changed. Names compare byte by
 * byte on both backends (BINARY in SQLite, COLLATE "C" in PostgreSQL).
 */
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"
#include "twin/alloc.h"

typedef struct search {
  bool versions;
  const tw_meta_query *q;
  tw_buf sql;
  tw__meta_params p;
  tw_buf token;                   /* the decoded page token */
  const char *after_name;         /* its key */
  int64_t after_version;          /* its key (versions) */
  tw_buf paths[TW_META_LIST_MAX]; /* descriptor paths, dialect form */
  size_t limit;                   /* the page size */
  tw_meta_model_page *models_out;
  tw_meta_version_page *versions_out;
} search;

static int check_path(const char *path, tw_err *err) {
  size_t n = path ? strlen(path) : 0;
  bool ok = n > 0 && n <= 256 && path[0] != '.' && path[n - 1] != '.';
  for (size_t i = 0; ok && i < n; i++) {
    char c = path[i];
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || (c == '.' && path[i + 1] != '.');
  }
  if (!ok)
    return tw_err_set(err, TW_EINVAL,
                      "descriptor field '%.64s': not a dotted path of keys "
                      "of [A-Za-z0-9_]",
                      path ? path : "");
  return TW_OK;
}

static int check_query(const tw_meta_query *q, bool versions, tw_err *err) {
  int rc = TW_OK;
  if (q->name_prefix != NULL)
    rc = tw__meta_check_text("name prefix", q->name_prefix, TW_META_NAME_MAX,
                             false, err);
  if (rc == TW_OK && q->name_contains != NULL)
    rc = tw__meta_check_text("name substring", q->name_contains,
                             TW_META_NAME_MAX, false, err);
  if (rc == TW_OK)
    rc = tw__meta_check_tags(q->tags, q->n_tags, err);
  if (rc == TW_OK && q->alias != NULL)
    rc = tw_meta_alias_check(q->alias, err);
  if (rc == TW_OK && q->page_size > TW_META_PAGE_MAX)
    rc = tw_err_set(err, TW_EINVAL, "page size %zu: more than %d", q->page_size,
                    TW_META_PAGE_MAX);
  if (rc != TW_OK)
    return rc;
  bool version_only =
      q->model || q->status || q->run_id || q->parent || q->n_descriptor > 0;
  if (!versions && version_only)
    return tw_err_set(err, TW_EINVAL,
                      "model search: model, status, run id, parent and "
                      "descriptor filters apply to versions only");
  tw_meta_status st;
  if (q->model != NULL && (rc = tw_meta_name_check(q->model, err)) != TW_OK)
    return rc;
  if (q->status != NULL &&
      (rc = tw_meta_status_parse(q->status, &st, err)) != TW_OK)
    return rc;
  if (q->run_id != NULL &&
      (rc = tw__meta_check_text("run id", q->run_id, TW_META_RUN_ID_MAX, false,
                                err)) != TW_OK)
    return rc;
  if (q->parent != NULL &&
      ((rc = tw_meta_name_check(q->parent->model, err)) != TW_OK ||
       (rc = tw__meta_check_version(q->parent->version, err)) != TW_OK))
    return rc;
  if (q->n_descriptor > TW_META_LIST_MAX)
    return tw_err_set(err, TW_EINVAL, "%zu descriptor filters, more than %d",
                      q->n_descriptor, TW_META_LIST_MAX);
  for (size_t i = 0; i < q->n_descriptor; i++) {
    if ((rc = check_path(q->descriptor[i].key, err)) != TW_OK ||
        (rc = tw__meta_check_text("descriptor value", q->descriptor[i].value,
                                  TW_META_TAG_VALUE_MAX, true, err)) != TW_OK)
      return rc;
  }
  return TW_OK;
}

/* Reads a page token into s->after_*. */
static int decode_token(search *s, const char *token, tw_err *err) {
  if (tw__meta_b64_decode(token, &s->token) != TW_OK || s->token.len == 0 ||
      memchr(s->token.data, '\0', s->token.len) != NULL)
    goto bad;
  const char *t = s->token.data;
  if (!s->versions) {
    if (strncmp(t, "m1:", 3) != 0 || tw_meta_name_check(t + 3, NULL) != TW_OK)
      goto bad;
    s->after_name = t + 3;
    return TW_OK;
  }
  if (strncmp(t, "v1:", 3) != 0 || t[3] < '1' || t[3] > '9')
    goto bad;
  char *end = NULL;
  long long v = strtoll(t + 3, &end, 10);
  if (*end != ':' || v < 1 || tw_meta_name_check(end + 1, NULL) != TW_OK)
    goto bad;
  s->after_version = v;
  s->after_name = end + 1;
  return TW_OK;
bad:
  return tw_err_set(err, TW_EINVAL,
                    "page token '%.64s': malformed (pass back the "
                    "next_page_token of the previous page)",
                    token);
}

static int encode_token(search *s, const char *name, int64_t version,
                        tw_arena *arena, const char **out) {
  tw_buf raw = TW_BUF_INIT, enc = TW_BUF_INIT;
  int rc = s->versions
               ? tw_buf_printf(&raw, "v1:%lld:%s", (long long)version, name)
               : tw_buf_printf(&raw, "m1:%s", name);
  if (rc == TW_OK)
    rc = tw__meta_b64_encode(raw.data, raw.len, &enc);
  if (rc == TW_OK) {
    *out = tw_arena_strdup(arena, enc.data);
    rc = *out ? TW_OK : TW_ENOMEM;
  }
  tw_buf_fini(&raw);
  tw_buf_fini(&enc);
  return rc;
}

/* Appends the statement and its parameters for s->q. */
static int build(tw_meta *m, search *s) {
  const tw_meta_query *q = s->q;
  const tw__meta_driver *d = m->drv;
  tw_buf *b = &s->sql;
  tw__meta_params *p = &s->p;
  /* The entity the filters on tags, aliases and times apply to. */
  const char *ent = s->versions ? "v" : "m";
  int rc = s->versions
               ? tw_buf_puts(b, "SELECT " TW__META_VERSION_COLS
                                " FROM versions v JOIN models m ON m.id = "
                                "v.model_id WHERE 1 = 1")
               : tw_buf_puts(b, "SELECT " TW__META_MODEL_COLS
                                " FROM models m WHERE 1 = 1");
  if (rc == TW_OK && q->name_prefix) {
    rc = tw_buf_printf(b, " AND %s(m.name, ?) = 1", d->strpos);
    tw__meta_params_text(p, q->name_prefix);
  }
  if (rc == TW_OK && q->name_contains) {
    rc = tw_buf_printf(b, " AND %s(m.name, ?) > 0", d->strpos);
    tw__meta_params_text(p, q->name_contains);
  }
  if (rc == TW_OK && q->model) {
    rc = tw_buf_puts(b, " AND m.name = ?");
    tw__meta_params_text(p, q->model);
  }
  for (size_t i = 0; rc == TW_OK && i < q->n_tags; i++) {
    rc = s->versions ? tw_buf_puts(b, " AND EXISTS (SELECT 1 FROM "
                                      "version_tags t WHERE t.version_id = "
                                      "v.id AND t.key = ? AND t.value = ?)")
                     : tw_buf_puts(b, " AND EXISTS (SELECT 1 FROM model_tags "
                                      "t WHERE t.model_id = m.id AND t.key = "
                                      "? AND t.value = ?)");
    tw__meta_params_text(p, q->tags[i].key);
    tw__meta_params_text(p, q->tags[i].value);
  }
  const char *alias_of =
      s->versions ? "a.version_id = v.id" : "a.model_id = m.id";
  if (rc == TW_OK && q->alias) {
    rc = tw_buf_printf(b,
                       " AND EXISTS (SELECT 1 FROM aliases a WHERE %s AND "
                       "a.alias = ?)",
                       alias_of);
    tw__meta_params_text(p, q->alias);
  }
  if (rc == TW_OK && q->has_alias)
    rc = tw_buf_printf(b, " AND EXISTS (SELECT 1 FROM aliases a WHERE %s)",
                       alias_of);
  if (rc == TW_OK && q->created_after_ms != 0) {
    rc = tw_buf_printf(b, " AND %s.created_ms >= ?", ent);
    tw__meta_params_int(p, q->created_after_ms);
  }
  if (rc == TW_OK && q->created_before_ms != 0) {
    rc = tw_buf_printf(b, " AND %s.created_ms < ?", ent);
    tw__meta_params_int(p, q->created_before_ms);
  }
  if (rc == TW_OK && q->status) {
    rc = tw_buf_puts(b, " AND v.status = ?");
    tw__meta_params_text(p, q->status);
  }
  if (rc == TW_OK && q->run_id) {
    rc = tw_buf_puts(b, " AND EXISTS (SELECT 1 FROM version_runs r WHERE "
                        "r.version_id = v.id AND r.run_id = ?)");
    tw__meta_params_text(p, q->run_id);
  }
  if (rc == TW_OK && q->parent) {
    rc = tw_buf_puts(b, " AND EXISTS (SELECT 1 FROM version_parents pp WHERE "
                        "pp.version_id = v.id AND pp.parent_model = ? AND "
                        "pp.parent_version = ?)");
    tw__meta_params_text(p, q->parent->model);
    tw__meta_params_int(p, q->parent->version);
  }
  for (size_t i = 0; rc == TW_OK && i < q->n_descriptor; i++) {
    rc = d->json_path(q->descriptor[i].key, &s->paths[i]);
    if (rc == TW_OK)
      rc = tw_buf_printf(b, " AND %s = ?", d->descriptor_field);
    tw__meta_params_text(p, s->paths[i].data);
    tw__meta_params_text(p, q->descriptor[i].value);
  }
  if (rc == TW_OK && s->after_name && !s->versions) {
    rc = tw_buf_puts(b, " AND m.name > ?");
    tw__meta_params_text(p, s->after_name);
  }
  if (rc == TW_OK && s->after_name && s->versions) {
    rc = tw_buf_puts(b, " AND (m.name > ? OR (m.name = ? AND v.version < ?))");
    tw__meta_params_text(p, s->after_name);
    tw__meta_params_text(p, s->after_name);
    tw__meta_params_int(p, s->after_version);
  }
  if (rc == TW_OK)
    rc = tw_buf_puts(b, s->versions ? " ORDER BY m.name, v.version DESC"
                                    : " ORDER BY m.name");
  if (rc == TW_OK) {
    rc = tw_buf_puts(b, " LIMIT ?");
    /* One row more than the page tells whether another page follows. */
    tw__meta_params_int(p, (int64_t)s->limit + 1);
  }
  return rc;
}

static int search_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  search *s = arg;
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, s->sql.data, &s->p, &r, err);
  if (rc != TW_OK)
    return rc;
  size_t esize = s->versions ? sizeof(tw_meta_version) : sizeof(tw_meta_model);
  void *items = tw_arena_calloc(arena, s->limit + 1, esize);
  int64_t *ids = tw_arena_calloc(arena, s->limit + 1, sizeof *ids);
  size_t n = 0;
  if (items == NULL || ids == NULL) {
    m->drv->finish(r);
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  }
  while (n <= s->limit && (rc = m->drv->next(r, err)) == 1) {
    rc = s->versions
             ? tw__meta_version_row(m, r, arena, (tw_meta_version *)items + n,
                                    &ids[n], err)
             : tw__meta_model_row(m, r, arena, (tw_meta_model *)items + n,
                                  &ids[n], err);
    if (rc != TW_OK)
      break;
    n++;
  }
  m->drv->finish(r);
  if (rc < 0)
    return rc;
  bool more = n > s->limit;
  if (more)
    n = s->limit;
  const char *next = NULL;
  for (size_t i = 0; rc >= 0 && i < n; i++)
    rc = s->versions ? tw__meta_version_fill(m, ids[i], arena,
                                             (tw_meta_version *)items + i, err)
                     : tw__meta_model_fill(m, ids[i], arena,
                                           (tw_meta_model *)items + i, err);
  if (rc < 0)
    return rc;
  if (more) {
    const char *name = s->versions ? ((tw_meta_version *)items)[n - 1].model
                                   : ((tw_meta_model *)items)[n - 1].name;
    int64_t v = s->versions ? ((tw_meta_version *)items)[n - 1].version : 0;
    if (encode_token(s, name, v, arena, &next) != TW_OK)
      return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  }
  if (s->versions)
    *s->versions_out = (tw_meta_version_page){items, n, next};
  else
    *s->models_out = (tw_meta_model_page){items, n, next};
  return TW_OK;
}

static int run_search(tw_meta *m, search *s, tw_arena *arena, tw_err *err) {
  int rc = check_query(s->q, s->versions, err);
  if (rc != TW_OK)
    return rc;
  s->limit = s->q->page_size ? s->q->page_size : TW_META_PAGE_DEFAULT;
  tw_buf_init(&s->sql);
  tw_buf_init(&s->token);
  for (size_t i = 0; i < TW_META_LIST_MAX; i++)
    tw_buf_init(&s->paths[i]);
  if (s->q->page_token != NULL)
    rc = decode_token(s, s->q->page_token, err);
  if (rc == TW_OK && build(m, s) != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  if (rc == TW_OK)
    rc = tw__meta_txn(m, TW__META_READ, search_fn, s, arena, err);
  tw_buf_fini(&s->sql);
  tw_buf_fini(&s->token);
  for (size_t i = 0; i < s->q->n_descriptor; i++)
    tw_buf_fini(&s->paths[i]);
  return rc;
}

int tw_meta_model_search(tw_meta *m, const tw_meta_query *q, tw_arena *arena,
                         tw_meta_model_page *out, tw_err *err) {
  search *s = tw_calloc(1, sizeof *s);
  if (s == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  tw_meta_model_page page;
  s->q = q;
  s->models_out = &page;
  int rc = run_search(m, s, arena, err);
  tw_free(s);
  if (rc == TW_OK)
    *out = page;
  return rc;
}

int tw_meta_version_search(tw_meta *m, const tw_meta_query *q, tw_arena *arena,
                           tw_meta_version_page *out, tw_err *err) {
  search *s = tw_calloc(1, sizeof *s);
  if (s == NULL)
    return tw_err_set(err, TW_ENOMEM, "%s: out of memory", m->url);
  tw_meta_version_page page;
  s->q = q;
  s->versions = true;
  s->versions_out = &page;
  int rc = run_search(m, s, arena, err);
  tw_free(s);
  if (rc == TW_OK)
    *out = page;
  return rc;
}
