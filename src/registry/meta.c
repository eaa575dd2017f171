/*
 * meta.c - the metadata store's front (twin/meta.h): URLs and the choice
 * of backend, the transaction runner with its retries, schema migrations,
 * and the validation every operation shares.
 *
 * Invariants: a tw_meta always holds a connected driver whose schema is
 * exactly TW_META_SCHEMA_VERSION (open fails otherwise); every operation
 * runs inside tw__meta_txn, under the handle's mutex, so a call is one
 * transaction and two threads never share the connection at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta_int.h"
#include "twin/alloc.h"
#include "twin/clock.h"

/* How many times a transaction that lost a serialization race is tried in
 * all, and the first pause between tries (doubling, with jitter). */
#define TXN_TRIES 25
#define TXN_PAUSE_US 500

/* --- Parameters and statements ---------------------------------------------
 */

void tw__meta_params_int(tw__meta_params *p, int64_t i) {
  if (p->n == TW__META_PARAMS_MAX) {
    p->overflow = true;
    return;
  }
  p->v[p->n++] = (tw__meta_val){TW__META_INT, i, NULL};
}

void tw__meta_params_text(tw__meta_params *p, const char *s) {
  if (p->n == TW__META_PARAMS_MAX) {
    p->overflow = true;
    return;
  }
  p->v[p->n++] = (tw__meta_val){s ? TW__META_TEXT : TW__META_NULL, 0, s};
}

int tw__meta_query(tw_meta *m, const char *sql, const tw__meta_params *p,
                   tw__meta_rows **rows, tw_err *err) {
  if (p != NULL && p->overflow)
    return tw_err_set(err, TW_EINTERNAL, "%s: too many query parameters",
                      m->url);
  return m->drv->run(m->conn, sql, p ? p->v : NULL, p ? p->n : 0, rows, err);
}

int tw__meta_exec(tw_meta *m, const char *sql, const tw__meta_params *p,
                  tw_err *err) {
  return tw__meta_query(m, sql, p, NULL, err);
}

int tw__meta_query_int(tw_meta *m, const char *sql, const tw__meta_params *p,
                       int64_t *out, bool *found, tw_err *err) {
  tw__meta_rows *r = NULL;
  int rc = tw__meta_query(m, sql, p, &r, err);
  if (rc != TW_OK)
    return rc;
  rc = m->drv->next(r, err);
  if (rc == 1) {
    *out = m->drv->is_null(r, 0) ? 0 : m->drv->col_int(r, 0);
    if (found)
      *found = true;
    rc = TW_OK;
  } else if (rc == 0) {
    if (found)
      *found = false;
    rc = found ? TW_OK : TW_ENOENT;
  }
  m->drv->finish(r);
  return rc;
}

/* --- Time ------------------------------------------------------------------
 */

int64_t tw__meta_now_ms(const tw_meta *m) {
  if (m->fixed_now_ms != 0)
    return m->fixed_now_ms;
  return tw_clock_wall_ns() / 1000000;
}

void tw__meta_set_now(tw_meta *m, int64_t now_ms) { m->fixed_now_ms = now_ms; }

/* --- Transactions ----------------------------------------------------------
 */

static void pause_before_retry(int attempt) {
  long us = (long)TXN_PAUSE_US << (attempt < 8 ? attempt : 8);
  /* Jitter so that two losers of the same race do not collide again. */
  us += (long)(((unsigned long)tw_clock_mono_ns() >> 10) % (unsigned long)us);
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static int txn_once(tw_meta *m, tw__meta_txn_kind kind, tw__meta_txn_fn fn,
                    void *arg, tw_arena *arena, tw_err *err) {
  int rc = m->drv->begin(m->conn, kind, err);
  if (rc != TW_OK)
    return rc;
  rc = fn(m, arg, arena, err);
  if (rc == TW_OK)
    rc = m->drv->commit(m->conn, err);
  if (rc != TW_OK)
    m->drv->rollback(m->conn);
  return rc;
}

int tw__meta_txn(tw_meta *m, tw__meta_txn_kind kind, tw__meta_txn_fn fn,
                 void *arg, tw_arena *arena, tw_err *err) {
  tw_arena_mark mark = {0};
  if (arena != NULL)
    mark = tw_arena_save(arena);
  pthread_mutex_lock(&m->mu);
  int rc = TW_EBUSY;
  tw_err e;
  for (int attempt = 0; attempt < TXN_TRIES && rc == TW_EBUSY; attempt++) {
    if (attempt > 0) {
      if (arena != NULL)
        tw_arena_rewind(arena, mark);
      pause_before_retry(attempt);
    }
    tw_err_init(&e);
    rc = txn_once(m, kind, fn, arg, arena, &e);
  }
  pthread_mutex_unlock(&m->mu);
  if (rc != TW_OK) {
    if (arena != NULL)
      tw_arena_rewind(arena, mark);
    if (e.code == TW_OK) /* a body that returned a bare code */
      tw_err_record(&e, rc, "%s: %s", m->url, tw_strerror(rc));
    tw_err_copy(err, &e);
  }
  return rc;
}

static int exec_sql_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  return tw__meta_exec(m, *(const char **)arg, NULL, err);
}

int tw__meta_exec_sql(tw_meta *m, const char *sql, tw_err *err) {
  return tw__meta_txn(m, TW__META_WRITE, exec_sql_fn, &sql, NULL, err);
}

/* --- Migrations ------------------------------------------------------------
 */

static const char create_migrations_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_ms BIGINT NOT NULL)";

static int migrate_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arg;
  (void)arena;
  const tw__meta_driver *d = m->drv;
  int rc = TW_OK;
  for (size_t i = 0; d->migrate_prologue && d->migrate_prologue[i]; i++)
    if ((rc = tw__meta_exec(m, d->migrate_prologue[i], NULL, err)) != TW_OK)
      return rc;
  if ((rc = tw__meta_exec(m, create_migrations_table, NULL, err)) != TW_OK)
    return rc;
  int64_t have = 0;
  bool found = false;
  rc = tw__meta_query_int(m, "SELECT max(version) FROM schema_migrations", NULL,
                          &have, &found, err);
  if (rc != TW_OK)
    return rc;
  if (have > TW_META_SCHEMA_VERSION)
    return tw_err_set(err, TW_ENOTSUP,
                      "%s: the database has schema version %lld, newer than "
                      "this build's %d: upgrade twin, or open another "
                      "database",
                      m->url, (long long)have, TW_META_SCHEMA_VERSION);
  for (size_t i = 0; i < d->n_migrations; i++) {
    const tw__meta_migration *mg = &d->migrations[i];
    if (mg->version <= have)
      continue;
    for (size_t j = 0; mg->sql[j] != NULL; j++) {
      if ((rc = tw__meta_exec(m, mg->sql[j], NULL, err)) != TW_OK)
        return tw_err_set(err, rc, "%s: migration %d (%s) failed", m->url,
                          mg->version, mg->name);
    }
    tw__meta_params p = {.n = 0};
    tw__meta_params_int(&p, mg->version);
    tw__meta_params_text(&p, mg->name);
    tw__meta_params_int(&p, tw__meta_now_ms(m));
    rc = tw__meta_exec(m,
                       "INSERT INTO schema_migrations (version, name, "
                       "applied_ms) VALUES (?, ?, ?)",
                       &p, err);
    if (rc != TW_OK)
      return rc;
  }
  return TW_OK;
}

static int version_fn(tw_meta *m, void *arg, tw_arena *arena, tw_err *err) {
  (void)arena;
  int64_t v = 0;
  bool found = false;
  int rc = tw__meta_query_int(m, "SELECT max(version) FROM schema_migrations",
                              NULL, &v, &found, err);
  if (rc == TW_OK)
    *(int *)arg = (int)v;
  return rc;
}

int tw_meta_schema_version(tw_meta *m, int *out, tw_err *err) {
  int v = 0;
  int rc = tw__meta_txn(m, TW__META_READ, version_fn, &v, NULL, err);
  if (rc == TW_OK)
    *out = v;
  return rc;
}

/* --- URLs ------------------------------------------------------------------
 */

static bool has_prefix(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

int tw_meta_url_redact(const char *url, tw_buf *out) {
  size_t start = out->len;
  int rc = TW_OK;
  if (!has_prefix(url, "postgres://") && !has_prefix(url, "postgresql://"))
    return tw_buf_puts(out, url);
  const char *auth = strstr(url, "://") + 3;
  /* The userinfo ends at the last '@' before the first '/', '?' or '#'. */
  const char *end = auth + strcspn(auth, "/?#");
  const char *at = NULL;
  for (const char *s = auth; s < end; s++)
    if (*s == '@')
      at = s;
  const char *colon = NULL;
  if (at != NULL)
    colon = memchr(auth, ':', (size_t)(at - auth));
  if (colon != NULL) {
    rc = tw_buf_append(out, url, (size_t)(colon + 1 - url));
    if (rc == TW_OK)
      rc = tw_buf_puts(out, "***");
    url = at;
  }
  /* password=... in the query string. */
  while (rc == TW_OK) {
    const char *q = strstr(url, "password=");
    if (q == NULL || (q != url && q[-1] != '?' && q[-1] != '&')) {
      if (q == NULL) {
        rc = tw_buf_puts(out, url);
        break;
      }
      rc = tw_buf_append(out, url, (size_t)(q + 9 - url));
      url = q + 9;
      continue;
    }
    rc = tw_buf_append(out, url, (size_t)(q + 9 - url));
    if (rc == TW_OK)
      rc = tw_buf_puts(out, "***");
    url = q + 9 + strcspn(q + 9, "&#");
  }
  if (rc != TW_OK)
    tw_buf_truncate(out, start);
  return rc;
}

int tw_meta_url_default(const char *data_dir, tw_buf *out, tw_err *err) {
  if (data_dir == NULL || data_dir[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "metadata store: no data directory");
  if (tw_buf_printf(out, "sqlite:%s/meta.db", data_dir) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "metadata store: out of memory");
  return TW_OK;
}

/* Picks the driver for url and the string it connects with. */
static int pick_driver(const char *url, const tw__meta_driver **drv,
                       const char **target, tw_err *err) {
  if (has_prefix(url, "sqlite:")) {
    const char *path = url + 7;
    /* sqlite:///abs/path and sqlite://rel are read as sqlite:/abs/path
     * and sqlite:rel, as SQLAlchemy-style URLs write them. */
    if (has_prefix(path, "//"))
      path += 2;
    if (path[0] == '\0')
      return tw_err_set(err, TW_EINVAL,
                        "'%s': a sqlite: URL needs a path (sqlite:PATH)", url);
    *drv = &tw__meta_sqlite;
    *target = path;
    return TW_OK;
  }
  if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
    *drv = &tw__meta_pg;
    *target = url;
    return TW_OK;
  }
  return tw_err_set(err, TW_EINVAL,
                    "'%.200s': not a metadata store URL (sqlite:PATH or "
                    "postgres://USER@HOST:PORT/DB)",
                    url);
}

int tw_meta_open(const char *url, tw_meta **out, tw_err *err) {
  const tw__meta_driver *drv = NULL;
  const char *target = NULL;
  int rc = pick_driver(url, &drv, &target, err);
  if (rc != TW_OK)
    return rc;
  tw_meta *m = tw_calloc(1, sizeof *m);
  tw_buf shown = TW_BUF_INIT;
  if (m == NULL || tw_meta_url_redact(url, &shown) != TW_OK) {
    tw_free(m);
    tw_buf_fini(&shown);
    return tw_err_set(err, TW_ENOMEM, "metadata store: out of memory");
  }
  m->drv = drv;
  m->url = tw_buf_take(&shown, NULL);
  if (m->url == NULL) {
    tw_free(m);
    return tw_err_set(err, TW_ENOMEM, "metadata store: out of memory");
  }
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    tw_free(m->url);
    tw_free(m);
    return tw_err_set(err, TW_ENOMEM, "metadata store: no mutex");
  }
  rc = drv->connect(target, m->url, &m->conn, err);
  if (rc == TW_OK)
    rc = tw__meta_txn(m, TW__META_MIGRATE, migrate_fn, NULL, NULL, err);
  if (rc != TW_OK) {
    tw_meta_close(m);
    return rc;
  }
  *out = m;
  return TW_OK;
}

void tw_meta_close(tw_meta *m) {
  if (m == NULL)
    return;
  if (m->conn != NULL)
    m->drv->disconnect(m->conn);
  pthread_mutex_destroy(&m->mu);
  tw_free(m->url);
  tw_free(m);
}

const char *tw_meta_backend(const tw_meta *m) { return m->drv->name; }

const char *tw_meta_url(const tw_meta *m) { return m->url; }

/* --- Validation ------------------------------------------------------------
 */

const char *tw_meta_status_name(tw_meta_status s) {
  switch (s) {
  case TW_META_STATUS_READY:
    return "READY";
  case TW_META_STATUS_PENDING:
    return "PENDING_REGISTRATION";
  case TW_META_STATUS_FAILED:
    return "FAILED_REGISTRATION";
  }
  return NULL;
}

int tw_meta_status_parse(const char *s, tw_meta_status *out, tw_err *err) {
  static const tw_meta_status all[] = {
      TW_META_STATUS_READY, TW_META_STATUS_PENDING, TW_META_STATUS_FAILED};
  for (size_t i = 0; s != NULL && i < sizeof all / sizeof all[0]; i++) {
    if (strcmp(s, tw_meta_status_name(all[i])) == 0) {
      *out = all[i];
      return TW_OK;
    }
  }
  return tw_err_set(err, TW_EINVAL,
                    "version status '%.40s': not READY, PENDING_REGISTRATION "
                    "or FAILED_REGISTRATION",
                    s ? s : "(null)");
}

static bool is_alnum(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

static bool is_alpha(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Length of the UTF-8 sequence at s (n bytes left), 0 if invalid:
 * truncated, overlong, a surrogate or past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  if (s[0] < 0x80)
    return 1;
  size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
  if (len == 0 || len > n || s[0] > 0xf4)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
      (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
    return 0;
  return len;
}

int tw__meta_check_text(const char *what, const char *s, size_t max,
                        bool allow_empty, tw_err *err) {
  if (s == NULL)
    return tw_err_set(err, TW_EINVAL, "%s: missing", what);
  size_t n = strlen(s);
  if (n == 0 && !allow_empty)
    return tw_err_set(err, TW_EINVAL, "%s: empty", what);
  if (n > max)
    return tw_err_set(err, TW_EINVAL, "%s: %zu bytes, more than %zu", what, n,
                      max);
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    if ((u[i] < 0x20 && u[i] != '\t' && u[i] != '\n') || u[i] == 0x7f)
      return tw_err_set(err, TW_EINVAL,
                        "%s: control character 0x%02x at byte %zu", what, u[i],
                        i);
    size_t len = utf8_len(u + i, n - i);
    if (len == 0)
      return tw_err_set(err, TW_EINVAL, "%s: invalid UTF-8 at byte %zu", what,
                        i);
    i += len;
  }
  return TW_OK;
}

int tw_meta_name_check(const char *name, tw_err *err) {
  if (name == NULL || name[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "model name: empty");
  size_t n = strlen(name);
  if (n > TW_META_NAME_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "model name '%.40s...': %zu characters, more than %d",
                      name, n, TW_META_NAME_MAX);
  if (!is_alnum((unsigned char)name[0]))
    return tw_err_set(err, TW_EINVAL,
                      "model name '%.128s': must start with a letter or digit",
                      name);
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)name[i];
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
      return tw_err_set(err, TW_EINVAL,
                        "model name '%.128s': character %zu is not one of "
                        "[A-Za-z0-9._-]",
                        name, i + 1);
  }
  return TW_OK;
}

int tw_meta_alias_check(const char *alias, tw_err *err) {
  if (alias == NULL || alias[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "alias: empty");
  size_t n = strlen(alias);
  if (n > TW_META_ALIAS_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "alias '%.40s...': %zu characters, more than %d", alias,
                      n, TW_META_ALIAS_MAX);
  if (!is_alpha((unsigned char)alias[0]))
    return tw_err_set(err, TW_EINVAL, "alias '%.64s': must start with a letter",
                      alias);
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)alias[i];
    if (!is_alnum(c) && c != '_' && c != '-')
      return tw_err_set(err, TW_EINVAL,
                        "alias '%.64s': character %zu is not one of "
                        "[A-Za-z0-9_-]",
                        alias, i + 1);
  }
  if (strcmp(alias, "latest") == 0)
    return tw_err_set(err, TW_EINVAL,
                      "alias 'latest' is reserved: it names the newest "
                      "version");
  return TW_OK;
}

int tw__meta_check_tag(const char *key, const char *value, tw_err *err) {
  if (key == NULL || key[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "tag key: empty");
  size_t n = strlen(key);
  if (n > TW_META_TAG_KEY_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "tag key '%.40s...': %zu characters, more than %d", key,
                      n, TW_META_TAG_KEY_MAX);
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)key[i];
    if (!is_alnum(c) && strchr("_.:/ -", c) == NULL)
      return tw_err_set(err, TW_EINVAL,
                        "tag key '%.64s': character %zu is not one of "
                        "[A-Za-z0-9_.:/ -]",
                        key, i + 1);
  }
  char what[TW_META_TAG_KEY_MAX + 32];
  (void)snprintf(what, sizeof what, "tag '%s': value", key);
  return tw__meta_check_text(what, value, TW_META_TAG_VALUE_MAX, true, err);
}

int tw__meta_check_tags(const tw_meta_tag *tags, size_t n, tw_err *err) {
  if (n > TW_META_LIST_MAX)
    return tw_err_set(err, TW_EINVAL, "%zu tags, more than %d", n,
                      TW_META_LIST_MAX);
  for (size_t i = 0; i < n; i++) {
    int rc = tw__meta_check_tag(tags[i].key, tags[i].value, err);
    if (rc != TW_OK)
      return rc;
    for (size_t j = 0; j < i; j++)
      if (strcmp(tags[i].key, tags[j].key) == 0)
        return tw_err_set(err, TW_EINVAL, "tag '%s': given twice", tags[i].key);
  }
  return TW_OK;
}

int tw__meta_check_version(int64_t version, tw_err *err) {
  if (version < 1)
    return tw_err_set(err, TW_EINVAL, "version %lld: versions start at 1",
                      (long long)version);
  return TW_OK;
}

/* --- Base64url -------------------------------------------------------------
 */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int tw__meta_b64_encode(const void *data, size_t n, tw_buf *out) {
  const unsigned char *p = data;
  size_t start = out->len;
  int rc = tw_buf_reserve(out, (n + 2) / 3 * 4 + 1);
  for (size_t i = 0; rc == TW_OK && i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63],
                 b64[v & 63]};
    size_t k = n - i >= 3 ? 4 : n - i + 1;
    rc = tw_buf_append(out, q, k);
  }
  if (rc == TW_OK)
    rc = tw_buf_append(out, "", 0);
  if (rc != TW_OK)
    tw_buf_truncate(out, start);
  return rc;
}

int tw__meta_b64_decode(const char *s, tw_buf *out) {
  size_t n = strlen(s);
  if (n % 4 == 1)
    return TW_EINVAL;
  size_t start = out->len;
  uint32_t acc = 0;
  int bits = 0, rc = tw_buf_reserve(out, n * 3 / 4 + 1);
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    const char *c = strchr(b64, s[i]);
    if (c == NULL || s[i] == '\0') {
      rc = TW_EINVAL;
      break;
    }
    acc = (acc << 6) | (uint32_t)(c - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      rc = tw_buf_putc(out, (char)((acc >> bits) & 0xff));
    }
  }
  /* Leftover bits must be zero, so each text decodes from one token. */
  if (rc == TW_OK && (acc & ((1u << bits) - 1)) != 0)
    rc = TW_EINVAL;
  if (rc != TW_OK)
    tw_buf_truncate(out, start);
  return rc;
}
