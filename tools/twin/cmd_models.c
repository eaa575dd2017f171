/*
 * cmd_models.c - `twin models list|show|alias`: the registered models of
 * a server, through its metadata REST API (/api/v1/models, see
 * docs/cli.md).
 *
 * The server is --server URL, else $TWIN_SERVER, else
 * http://127.0.0.1:8080. With --json the commands print the server's own
 * JSON (list: every page's models in one {"models":[...]}); otherwise
 * tables and "field: value" lines. The server's objects are read
 * leniently: a field missing or of another type prints as "-", never
 * fails the command, so an older or newer server still lists.
 *
 * Model names and aliases go into URLs percent-encoded; a page token is
 * followed until the server gives none (a token repeated is an error,
 * never a loop).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "http.h"

#define DEFAULT_SERVER "http://127.0.0.1:8080"
#define PAGE_SIZE "100"
#define DESC_WIDTH 60

static const cli_opt list_opts[] = {
    {"server", 0, "URL",
     "the server (default $TWIN_SERVER, else " DEFAULT_SERVER ")"},
    {"prefix", 0, "P", "only the models whose name starts with P"},
    {"json", 0, NULL, "print the server's JSON"},
    {NULL, 0, NULL, NULL}};

static const cli_opt show_opts[] = {
    {"server", 0, "URL",
     "the server (default $TWIN_SERVER, else " DEFAULT_SERVER ")"},
    {"json", 0, NULL, "print the server's JSON"},
    {NULL, 0, NULL, NULL}};

static const cli_opt alias_opts[] = {
    {"server", 0, "URL",
     "the server (default $TWIN_SERVER, else " DEFAULT_SERVER ")"},
    {"delete", 0, NULL, "remove the alias (MODEL ALIAS, no VERSION)"},
    {NULL, 0, NULL, NULL}};

/* --- The server and its URLs ---------------------------------------------- */

/* The server's base URL without a trailing '/', into out. */
static int server_base(cli_ctx *cli, const cli_args *args, tw_buf *out) {
  const char *s = cli_opt_value(cli->cmd, args, "server");
  if (s == NULL || s[0] == '\0')
    s = getenv("TWIN_SERVER");
  if (s == NULL || s[0] == '\0')
    s = DEFAULT_SERVER;
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '/')
    n--;
  if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
    return cli_usage_error(
        cli, cli->cmd, "server '%s': expected an http:// or https:// URL", s);
  if (tw_buf_append(out, s, n) != TW_OK) {
    tw_err err;
    tw_err_init(&err);
    tw_err_set(&err, TW_ENOMEM, "out of memory");
    return cli_fail(cli, &err);
  }
  return CLI_EXIT_OK;
}

/* base + "/api/v1/models/" + NAME [+ "/" + kind + "/" + item], every
 * name percent-encoded. */
static int model_url(tw_buf *url, const char *base, const char *name,
                     const char *kind, const char *item) {
  tw_buf_reset(url);
  int rc = tw_buf_printf(url, "%s/api/v1/models/", base);
  if (rc == TW_OK)
    rc = cli_http_escape(url, name);
  if (rc == TW_OK && kind != NULL)
    rc = tw_buf_printf(url, "/%s", kind);
  if (rc == TW_OK && item != NULL) {
    rc = tw_buf_putc(url, '/');
    if (rc == TW_OK)
      rc = cli_http_escape(url, item);
  }
  return rc;
}

/* GETs every page of a list ("models" or "versions") from url (which
 * has a query already) into all. */
static int get_all_pages(cli_http *h, const char *url, const char *key,
                         json_t *all, tw_err *err) {
  tw_buf page_url = TW_BUF_INIT;
  char *token = NULL;
  int rc = TW_OK;
  for (;;) {
    tw_buf_reset(&page_url);
    rc = tw_buf_puts(&page_url, url);
    if (rc == TW_OK && token != NULL) {
      rc = tw_buf_puts(&page_url, "&page_token=");
      if (rc == TW_OK)
        rc = cli_http_escape(&page_url, token);
    }
    if (rc != TW_OK) {
      rc = tw_err_set(err, rc, "out of memory");
      break;
    }
    json_t *page = NULL;
    rc = cli_http_api(h, "GET", page_url.data, NULL, &page, NULL, err);
    json_t *items = json_is_object(page) ? json_object_get(page, key) : NULL;
    if (rc == TW_OK && !json_is_array(items))
      rc = tw_err_set(err, TW_EPROTO, "GET %.700s: the answer has no '%s' list",
                      page_url.data, key);
    if (rc == TW_OK && json_array_extend(all, items) != 0)
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
    const char *next =
        rc == TW_OK
            ? json_string_value(json_object_get(page, "next_page_token"))
            : NULL;
    if (next != NULL && next[0] != '\0' && token != NULL &&
        strcmp(next, token) == 0)
      rc = tw_err_set(err, TW_EPROTO,
                      "GET %.700s: the server gives the same page token "
                      "again",
                      page_url.data);
    char *copy = NULL;
    if (rc == TW_OK && next != NULL && next[0] != '\0' &&
        (copy = tw_strdup(next)) == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
    json_decref(page);
    tw_free(token);
    token = copy;
    if (rc != TW_OK || token == NULL)
      break;
  }
  tw_free(token);
  tw_buf_fini(&page_url);
  return rc;
}

/* --- Reading the server's objects leniently -------------------------------
 */

static const char *str_of(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s != NULL ? s : "";
}

/* An integer field as text, "-" when absent. */
static void int_text(const json_t *obj, const char *key, char *out,
                     size_t size) {
  json_t *v = json_object_get(obj, key);
  if (json_is_integer(v))
    (void)snprintf(out, size, "%lld", (long long)json_integer_value(v));
  else
    (void)snprintf(out, size, "-");
}

/* A millisecond timestamp as UTC ISO 8601, "-" when absent. */
static void time_text(const json_t *obj, const char *key, char *out,
                      size_t size) {
  json_t *v = json_object_get(obj, key);
  struct tm tm;
  time_t t = json_is_integer(v) ? (time_t)(json_integer_value(v) / 1000) : 0;
  if (!json_is_integer(v) || gmtime_r(&t, &tm) == NULL ||
      strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    (void)snprintf(out, size, "-");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The members of an object as "k=v, k=v" sorted by key (values that are
 * not strings or integers shown as JSON), "-" when empty. */
static int pairs_text(json_t *obj, const char *sep, tw_buf *out) {
  tw_buf_reset(out);
  size_t n = json_is_object(obj) ? json_object_size(obj) : 0;
  if (n == 0)
    return tw_buf_puts(out, "-");
  const char **keys = tw_calloc(n, sizeof *keys);
  if (keys == NULL)
    return TW_ENOMEM;
  size_t i = 0;
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    if (i < n)
      keys[i++] = k;
  }
  qsort(keys, i, sizeof *keys, cmp_str);
  int rc = TW_OK;
  for (size_t j = 0; j < i && rc == TW_OK; j++) {
    json_t *val = json_object_get(obj, keys[j]);
    rc = tw_buf_printf(out, "%s%s=", j > 0 ? sep : "", keys[j]);
    if (rc == TW_OK && json_is_string(val))
      rc = tw_buf_puts(out, json_string_value(val));
    else if (rc == TW_OK && json_is_integer(val))
      rc = tw_buf_printf(out, "%lld", (long long)json_integer_value(val));
    else if (rc == TW_OK)
      rc = tw_json_dump(val, TW_JSON_SORT_KEYS, out);
  }
  tw_free(keys);
  return rc;
}

/* An array of strings (or of anything, as JSON) joined by ", ", "-" when
 * empty. */
static int list_text(const json_t *arr, tw_buf *out) {
  tw_buf_reset(out);
  size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
  if (n == 0)
    return tw_buf_puts(out, "-");
  int rc = TW_OK;
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    json_t *v = json_array_get(arr, i);
    if (i > 0)
      rc = tw_buf_puts(out, ", ");
    if (rc == TW_OK)
      rc = json_is_string(v) ? tw_buf_puts(out, json_string_value(v))
                             : tw_json_dump(v, TW_JSON_SORT_KEYS, out);
  }
  return rc;
}

/* Parents [{"model":"x","version":1}] as "x/1, y/2". */
static int parents_text(const json_t *arr, tw_buf *out) {
  tw_buf_reset(out);
  size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
  if (n == 0)
    return tw_buf_puts(out, "-");
  int rc = TW_OK;
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    json_t *p = json_array_get(arr, i);
    char ver[32];
    int_text(p, "version", ver, sizeof ver);
    rc = tw_buf_printf(out, "%s%s/%s", i > 0 ? ", " : "", str_of(p, "model"),
                       ver);
  }
  return rc;
}

/* The ports of a descriptor list ("inputs", ...) as "F [N], x [m]". */
static int ports_text(const json_t *desc, const char *key, tw_buf *out) {
  tw_buf_reset(out);
  json_t *arr = json_object_get(desc, key);
  size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
  if (n == 0)
    return tw_buf_puts(out, "-");
  int rc = TW_OK;
  for (size_t i = 0; i < n && rc == TW_OK; i++) {
    json_t *p = json_array_get(arr, i);
    const char *unit = str_of(p, "unit");
    rc = tw_buf_printf(out, "%s%s", i > 0 ? ", " : "", str_of(p, "name"));
    if (rc == TW_OK && unit[0] != '\0')
      rc = tw_buf_printf(out, " [%s]", unit);
  }
  return rc;
}

/* --- Tables ------------------------------------------------------------- */

#define MAX_COLS 8

/* Rows of cells, printed with every column as wide as its widest cell
 * (counted in UTF-8 characters). */
typedef struct table {
  size_t ncols, nrows, cap;
  char **cells; /* nrows * ncols, owned */
} table;

static void table_fini(table *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    tw_free(t->cells[i]);
  tw_free(t->cells);
}

/* Adds a row of t->ncols cells (copied; control characters become
 * spaces). */
static int table_add(table *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap != 0 ? t->cap * 2 : 16;
    char **c = tw_reallocarray(t->cells, cap * t->ncols, sizeof *c);
    if (c == NULL)
      return TW_ENOMEM;
    t->cells = c;
    t->cap = cap;
  }
  char **row = t->cells + t->nrows * t->ncols;
  for (size_t i = 0; i < t->ncols; i++) {
    row[i] = tw_strdup(cells[i] != NULL ? cells[i] : "");
    if (row[i] == NULL) {
      for (size_t j = 0; j < i; j++)
        tw_free(row[j]);
      return TW_ENOMEM;
    }
    for (char *p = row[i]; *p != '\0'; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        *p = ' ';
  }
  t->nrows++;
  return TW_OK;
}

static size_t text_width(const char *s) {
  size_t w = 0;
  for (; *s != '\0'; s++)
    w += ((unsigned char)*s & 0xc0) != 0x80;
  return w;
}

static int table_render(const table *t, tw_buf *out) {
  size_t width[MAX_COLS] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t w = text_width(t->cells[r * t->ncols + c]);
      if (w > width[c])
        width[c] = w;
    }
  int rc = TW_OK;
  for (size_t r = 0; r < t->nrows && rc == TW_OK; r++) {
    for (size_t c = 0; c < t->ncols && rc == TW_OK; c++) {
      const char *cell = t->cells[r * t->ncols + c];
      if (c + 1 == t->ncols) {
        rc = tw_buf_puts(out, cell);
        continue;
      }
      rc = tw_buf_puts(out, cell);
      for (size_t pad = text_width(cell); rc == TW_OK && pad < width[c] + 2;
           pad++)
        rc = tw_buf_putc(out, ' ');
    }
    /* Trailing blanks of an empty last column are trimmed. */
    while (rc == TW_OK && out->len > 0 && out->data[out->len - 1] == ' ')
      tw_buf_truncate(out, out->len - 1);
    if (rc == TW_OK)
      rc = tw_buf_putc(out, '\n');
  }
  return rc;
}

/* The first line of a description, at most DESC_WIDTH characters. */
static void short_desc(const char *s, char *out, size_t size) {
  size_t n = 0, chars = 0;
  while (s[n] != '\0' && s[n] != '\n' && s[n] != '\r' && n + 4 < size) {
    if (((unsigned char)s[n] & 0xc0) != 0x80 && ++chars > DESC_WIDTH)
      break;
    n++;
  }
  bool cut = s[n] != '\0';
  memcpy(out, s, n);
  if (cut)
    memcpy(out + n, "...", 4);
  else
    out[n] = '\0';
}

/* --- twin models list ---------------------------------------------------- */

static int print_json(cli_ctx *cli, const json_t *v) {
  tw_buf b = TW_BUF_INIT;
  int rc = tw_json_dump(v, 0, &b);
  if (rc == TW_OK)
    rc = tw_buf_putc(&b, '\n');
  int code = cli_write_formatted(cli, &b, rc);
  tw_buf_fini(&b);
  return code;
}

static int print_models(cli_ctx *cli, const json_t *models) {
  table t = {4, 0, 0, NULL};
  tw_buf aliases = TW_BUF_INIT, b = TW_BUF_INIT;
  static const char *const head[] = {"NAME", "LATEST", "ALIASES",
                                     "DESCRIPTION"};
  int rc = table_add(&t, head);
  for (size_t i = 0; rc == TW_OK && i < json_array_size(models); i++) {
    json_t *m = json_array_get(models, i);
    char latest[32], desc[DESC_WIDTH * 4 + 8];
    int_text(m, "latest_version", latest, sizeof latest);
    short_desc(str_of(m, "description"), desc, sizeof desc);
    rc = pairs_text(json_object_get(m, "aliases"), ",", &aliases);
    const char *row[] = {str_of(m, "name"), latest, aliases.data, desc};
    if (rc == TW_OK)
      rc = table_add(&t, row);
  }
  if (rc == TW_OK)
    rc = table_render(&t, &b);
  int code = cli_write_formatted(cli, &b, rc);
  tw_buf_fini(&b);
  tw_buf_fini(&aliases);
  table_fini(&t);
  return code;
}

static int run_list(cli_ctx *cli, const cli_args *args) {
  tw_buf base = TW_BUF_INIT, url = TW_BUF_INIT;
  int code = server_base(cli, args, &base);
  if (code != CLI_EXIT_OK) {
    tw_buf_fini(&base);
    return code;
  }
  const char *prefix = cli_opt_value(cli->cmd, args, "prefix");
  tw_err err;
  tw_err_init(&err);
  cli_http *h = NULL;
  json_t *all = json_array();
  int rc = all != NULL ? TW_OK : tw_err_set(&err, TW_ENOMEM, "out of memory");
  if (rc == TW_OK) {
    rc =
        tw_buf_printf(&url, "%s/api/v1/models?page_size=" PAGE_SIZE, base.data);
    if (rc == TW_OK && prefix != NULL) {
      rc = tw_buf_puts(&url, "&name_prefix=");
      if (rc == TW_OK)
        rc = cli_http_escape(&url, prefix);
    }
    if (rc != TW_OK)
      rc = tw_err_set(&err, rc, "out of memory");
  }
  if (rc == TW_OK)
    rc = cli_http_open(&h, &err);
  if (rc == TW_OK)
    rc = get_all_pages(h, url.data, "models", all, &err);
  if (rc != TW_OK) {
    code = cli_fail(cli, &err);
  } else if (cli->json) {
    json_t *doc = json_pack("{sO}", "models", all);
    if (doc != NULL) {
      code = print_json(cli, doc);
    } else {
      tw_err_set(&err, TW_ENOMEM, "out of memory");
      code = cli_fail(cli, &err);
    }
    json_decref(doc);
  } else {
    code = print_models(cli, all);
  }
  json_decref(all);
  cli_http_close(h);
  tw_buf_fini(&url);
  tw_buf_fini(&base);
  return code;
}

/* --- twin models show ---------------------------------------------------- */

/* "MODEL", "MODEL/VERSION" or "MODEL@ALIAS" (an optional "models:/"
 * prefix, as MLflow writes them). */
typedef struct model_ref {
  char name[256];
  char alias[128];   /* "" unless @ALIAS */
  long long version; /* 0 unless /VERSION */
} model_ref;

static bool parse_model_ref(const char *text, model_ref *out) {
  memset(out, 0, sizeof *out);
  if (strncmp(text, "models:/", 8) == 0)
    text += 8;
  const char *at = strchr(text, '@');
  const char *slash = strchr(text, '/');
  size_t n = strlen(text);
  if (at != NULL && slash == NULL) {
    n = (size_t)(at - text);
    if (at[1] == '\0' || strlen(at + 1) >= sizeof out->alias)
      return false;
    memcpy(out->alias, at + 1, strlen(at + 1) + 1);
  } else if (slash != NULL && at == NULL) {
    n = (size_t)(slash - text);
    char *end = NULL;
    long long v = strtoll(slash + 1, &end, 10);
    if (slash[1] < '1' || slash[1] > '9' || *end != '\0' || v <= 0)
      return false;
    out->version = v;
  } else if (slash != NULL || at != NULL) {
    return false;
  }
  if (n == 0 || n >= sizeof out->name)
    return false;
  memcpy(out->name, text, n);
  return true;
}

/* "field:" padded, then the value, one line. */
static int field(tw_buf *b, const char *name, const char *value) {
  return tw_buf_printf(b, "%-13s %s\n", name, value[0] != '\0' ? value : "-");
}

static int format_version(const json_t *v, tw_buf *b) {
  tw_buf t = TW_BUF_INIT;
  char num[32], when[64];
  json_t *art = json_object_get(v, "artifact");
  json_t *desc = json_object_get(art, "descriptor");
  int rc = field(b, "model:", str_of(v, "model"));
  int_text(v, "version", num, sizeof num);
  if (rc == TW_OK)
    rc = field(b, "version:", num);
  if (rc == TW_OK)
    rc = field(b, "status:", str_of(v, "status"));
  if (rc == TW_OK)
    rc = field(b, "description:", str_of(v, "description"));
  if (rc == TW_OK)
    rc = field(b, "repository:", str_of(art, "repository"));
  if (rc == TW_OK)
    rc = field(b, "manifest:", str_of(art, "manifest_digest"));
  if (rc == TW_OK)
    rc = field(b, "wasm:", str_of(art, "wasm_digest"));
  int_text(art, "size", num, sizeof num);
  if (rc == TW_OK)
    rc = field(b, "size:", num);
  if (rc == TW_OK)
    rc = list_text(json_object_get(v, "aliases"), &t);
  if (rc == TW_OK)
    rc = field(b, "aliases:", t.data);
  if (rc == TW_OK)
    rc = pairs_text(json_object_get(v, "tags"), ", ", &t);
  if (rc == TW_OK)
    rc = field(b, "tags:", t.data);
  if (rc == TW_OK)
    rc = list_text(json_object_get(v, "run_ids"), &t);
  if (rc == TW_OK)
    rc = field(b, "runs:", t.data);
  if (rc == TW_OK)
    rc = parents_text(json_object_get(v, "parents"), &t);
  if (rc == TW_OK)
    rc = field(b, "parents:", t.data);
  time_text(v, "created_ms", when, sizeof when);
  if (rc == TW_OK)
    rc = field(b, "created:", when);
  time_text(v, "updated_ms", when, sizeof when);
  if (rc == TW_OK)
    rc = field(b, "updated:", when);
  if (json_is_object(desc)) {
    tw_buf_reset(&t);
    if (rc == TW_OK)
      rc = tw_buf_printf(&t, "%s %s", str_of(desc, "name"),
                         str_of(desc, "version"));
    if (rc == TW_OK)
      rc = field(b, "descriptor:", t.data);
    static const char *const lists[] = {"inputs", "outputs", "params", "state"};
    for (size_t i = 0; rc == TW_OK && i < 4; i++) {
      char label[32];
      (void)snprintf(label, sizeof label, "  %s:", lists[i]);
      rc = ports_text(desc, lists[i], &t);
      if (rc == TW_OK)
        rc = field(b, label, t.data);
    }
  }
  tw_buf_fini(&t);
  return rc;
}

static int format_model(const json_t *m, const json_t *versions, tw_buf *b) {
  tw_buf t = TW_BUF_INIT;
  char num[32], when[64];
  int rc = field(b, "name:", str_of(m, "name"));
  if (rc == TW_OK)
    rc = field(b, "description:", str_of(m, "description"));
  int_text(m, "latest_version", num, sizeof num);
  if (rc == TW_OK)
    rc = field(b, "latest:", num);
  if (rc == TW_OK)
    rc = pairs_text(json_object_get(m, "aliases"), ", ", &t);
  if (rc == TW_OK)
    rc = field(b, "aliases:", t.data);
  if (rc == TW_OK)
    rc = pairs_text(json_object_get(m, "tags"), ", ", &t);
  if (rc == TW_OK)
    rc = field(b, "tags:", t.data);
  time_text(m, "created_ms", when, sizeof when);
  if (rc == TW_OK)
    rc = field(b, "created:", when);
  time_text(m, "updated_ms", when, sizeof when);
  if (rc == TW_OK)
    rc = field(b, "updated:", when);
  if (rc == TW_OK)
    rc = tw_buf_putc(b, '\n');

  table tab = {7, 0, 0, NULL};
  static const char *const head[] = {"VERSION",    "STATUS",  "ALIASES",
                                     "SIZE",       "CREATED", "MANIFEST",
                                     "DESCRIPTION"};
  if (rc == TW_OK)
    rc = table_add(&tab, head);
  for (size_t i = 0; rc == TW_OK && i < json_array_size(versions); i++) {
    json_t *v = json_array_get(versions, i);
    json_t *art = json_object_get(v, "artifact");
    char ver[32], size[32], created[64], desc[DESC_WIDTH * 4 + 8];
    int_text(v, "version", ver, sizeof ver);
    int_text(art, "size", size, sizeof size);
    time_text(v, "created_ms", created, sizeof created);
    short_desc(str_of(v, "description"), desc, sizeof desc);
    rc = list_text(json_object_get(v, "aliases"), &t);
    const char *row[] = {ver,     str_of(v, "status"),
                         t.data,  size,
                         created, str_of(art, "manifest_digest"),
                         desc};
    if (rc == TW_OK)
      rc = table_add(&tab, row);
  }
  if (rc == TW_OK)
    rc = table_render(&tab, b);
  table_fini(&tab);
  tw_buf_fini(&t);
  return rc;
}

static int run_show(cli_ctx *cli, const cli_args *args) {
  model_ref mr;
  if (!parse_model_ref(args->pos[0], &mr))
    return cli_usage_error(cli, cli->cmd,
                           "'%s': expected MODEL, MODEL/VERSION or "
                           "MODEL@ALIAS",
                           args->pos[0]);
  tw_buf base = TW_BUF_INIT, url = TW_BUF_INIT, b = TW_BUF_INIT;
  int code = server_base(cli, args, &base);
  if (code != CLI_EXIT_OK) {
    tw_buf_fini(&base);
    return code;
  }
  tw_err err;
  tw_err_init(&err);
  cli_http *h = NULL;
  json_t *obj = NULL, *versions = NULL;
  bool is_version = mr.alias[0] != '\0' || mr.version > 0;
  char num[32];
  (void)snprintf(num, sizeof num, "%lld", mr.version);
  int rc;
  if (mr.alias[0] != '\0')
    rc = model_url(&url, base.data, mr.name, "aliases", mr.alias);
  else if (mr.version > 0)
    rc = model_url(&url, base.data, mr.name, "versions", num);
  else
    rc = model_url(&url, base.data, mr.name, NULL, NULL);
  if (rc != TW_OK)
    rc = tw_err_set(&err, rc, "out of memory");
  if (rc == TW_OK)
    rc = cli_http_open(&h, &err);
  if (rc == TW_OK)
    rc = cli_http_api(h, "GET", url.data, NULL, &obj, NULL, &err);
  if (rc == TW_OK && !json_is_object(obj))
    rc = tw_err_set(&err, TW_EPROTO, "GET %.700s: the answer is no object",
                    url.data);
  if (rc == TW_OK && !cli->json && !is_version) {
    versions = json_array();
    rc = versions != NULL
             ? model_url(&url, base.data, mr.name, "versions", NULL)
             : TW_ENOMEM;
    if (rc == TW_OK)
      rc = tw_buf_puts(&url, "?page_size=" PAGE_SIZE);
    if (rc != TW_OK)
      rc = tw_err_set(&err, rc, "out of memory");
    if (rc == TW_OK)
      rc = get_all_pages(h, url.data, "versions", versions, &err);
  }
  if (rc != TW_OK) {
    code = cli_fail(cli, &err);
  } else if (cli->json) {
    code = print_json(cli, obj);
  } else {
    rc = is_version ? format_version(obj, &b) : format_model(obj, versions, &b);
    code = cli_write_formatted(cli, &b, rc);
  }
  json_decref(obj);
  json_decref(versions);
  cli_http_close(h);
  tw_buf_fini(&b);
  tw_buf_fini(&url);
  tw_buf_fini(&base);
  return code;
}

/* --- twin models alias --------------------------------------------------- */

static int run_alias(cli_ctx *cli, const cli_args *args) {
  bool del = cli_opt_value(cli->cmd, args, "delete") != NULL;
  if (del && args->npos != 2)
    return cli_usage_error(cli, cli->cmd,
                           "--delete takes MODEL ALIAS, without a version");
  if (!del && args->npos != 3)
    return cli_usage_error(cli, cli->cmd,
                           "missing argument: expected MODEL ALIAS VERSION");
  const char *model = args->pos[0], *alias = args->pos[1];
  unsigned long long version = 0;
  if (!del) {
    const char *v = args->pos[2];
    char *end = NULL;
    version = strtoull(v, &end, 10);
    if (v[0] < '1' || v[0] > '9' || *end != '\0' || version > INT64_MAX)
      return cli_usage_error(cli, cli->cmd,
                             "'%s' is not a version: versions are numbered "
                             "1, 2, 3, ...",
                             v);
  }
  tw_buf base = TW_BUF_INIT, url = TW_BUF_INIT, body = TW_BUF_INIT,
         out = TW_BUF_INIT;
  int code = server_base(cli, args, &base);
  if (code != CLI_EXIT_OK) {
    tw_buf_fini(&base);
    return code;
  }
  tw_err err;
  tw_err_init(&err);
  cli_http *h = NULL;
  int rc = model_url(&url, base.data, model, "aliases", alias);
  if (rc == TW_OK && !del)
    rc = tw_buf_printf(&body, "{\"version\":%llu}", version);
  if (rc != TW_OK)
    rc = tw_err_set(&err, rc, "out of memory");
  if (rc == TW_OK)
    rc = cli_http_open(&h, &err);
  if (rc == TW_OK)
    rc = cli_http_api(h, del ? "DELETE" : "PUT", url.data, del ? NULL : &body,
                      NULL, NULL, &err);
  if (rc != TW_OK) {
    code = cli_fail(cli, &err);
  } else {
    rc = del ? tw_buf_printf(&out, "deleted alias %s of %s\n", alias, model)
             : tw_buf_printf(&out, "alias %s of %s -> version %llu\n", alias,
                             model, version);
    code = cli_write_formatted(cli, &out, rc);
  }
  cli_http_close(h);
  tw_buf_fini(&out);
  tw_buf_fini(&body);
  tw_buf_fini(&url);
  tw_buf_fini(&base);
  return code;
}

const cli_cmd cmd_models_list = {
    "models",
    "list",
    "",
    0,
    0,
    "List the registered models of a server.",
    "One row per model: name, latest version, aliases, description. Pages\n"
    "of the server's list are followed to the end; --json prints them as\n"
    "one {\"models\":[...]} of the server's model objects.",
    list_opts,
    run_list};

const cli_cmd cmd_models_show = {
    "models",
    "show",
    "MODEL[/VERSION|@ALIAS]",
    1,
    1,
    "Show a registered model and its versions, or one version.",
    "MODEL: its fields and a table of its versions. MODEL/VERSION or\n"
    "MODEL@ALIAS (@latest is the newest version): the version's artifact\n"
    "(repository, manifest and module digests, size), status, tags,\n"
    "lineage, aliases and a summary of its descriptor. --json prints the\n"
    "server's model or version object.",
    show_opts,
    run_show};

const cli_cmd cmd_models_alias = {
    "models",
    "alias",
    "MODEL ALIAS [VERSION]",
    2,
    3,
    "Point an alias of a model at a version, or delete it.",
    "'twin models alias osc production 3' points production at version 3\n"
    "(creating or moving it); 'twin models alias --delete osc production'\n"
    "removes it. \"latest\" is reserved: it always names the newest "
    "version.",
    alias_opts,
    run_alias};
