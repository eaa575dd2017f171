/*
 * compose.c - loading a twin file: the YAML documents (the twin and its
 * parameter overlays), the active profile merged over the twin, the
 * diagnostics with their places and codes, and the public accessors. The
 * compiler proper is compile.c.
 *
 * Merging is done in place and by reference: a profile's or an overlay's
 * value replaces the twin's value in the twin's own tree, so every value
 * the compiler sees still belongs to the document it came from and is
 * located in that file.
 */
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compose_int.h"
#include "twin/alloc.h"
#include "twin/file.h"
#include "twin/yaml.h"

#define MAX_FILE_BYTES ((size_t)16 << 20)

/* --- Diagnostics -------------------------------------------------------- */

void tw_compose_diags_init(tw_compose_diags *d) { memset(d, 0, sizeof *d); }

void tw_compose_diags_fini(tw_compose_diags *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->n; i++) {
    tw_free(d->items[i].file);
    tw_free(d->items[i].code);
    tw_free(d->items[i].message);
  }
  tw_free(d->items);
  memset(d, 0, sizeof *d);
}

static void add_diag(tw_compose *c, const char *file, unsigned line,
                     unsigned col, bool warning, const char *code,
                     const char *msg) {
  tw_compose_diags *d = c->diags;
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 16;
    tw_compose_diag *p = tw_reallocarray(d->items, cap, sizeof *p);
    if (p == NULL) {
      (void)tw_err_set(c->err, TW_ENOMEM, "compose: out of memory");
      return;
    }
    d->items = p;
    d->cap = cap;
  }
  tw_compose_diag *g = &d->items[d->n];
  g->file = tw_strdup(file != NULL ? file : "");
  g->code = tw_strdup(code);
  g->message = tw_strdup(msg);
  g->line = line;
  g->col = col;
  g->warning = warning;
  if (g->file == NULL || g->code == NULL || g->message == NULL) {
    tw_free(g->file);
    tw_free(g->code);
    tw_free(g->message);
    (void)tw_err_set(c->err, TW_ENOMEM, "compose: out of memory");
    return;
  }
  d->n++;
  if (warning)
    d->warnings++;
  else
    d->errors++;
}

/* The file of v and where it starts (key: the position of that key of
 * the mapping v instead). */
static const tw__cdoc *locate(const tw_compose *c, json_t *v, const char *key,
                              unsigned *line, unsigned *col) {
  *line = *col = 0;
  for (size_t i = 0; v != NULL && i < c->nfiles; i++) {
    const tw__cdoc *f = &c->files[i];
    if (key != NULL && tw_json_doc_where_key(f->doc, v, key, line, col))
      return f;
    if (tw_json_doc_where(f->doc, v, line, col))
      return f;
  }
  return c->nfiles > 0 ? &c->files[0] : NULL;
}

int tw__cdir_of(const tw_compose *c, json_t *v, tw_buf *out) {
  unsigned line, col;
  const tw__cdoc *f = locate(c, v, NULL, &line, &col);
  if (f == NULL || f == &c->files[0] || line == 0)
    return tw_buf_printf(out, "%s", c->dir);
  const char *slash = strrchr(f->path, '/');
  if (slash == NULL)
    return tw_buf_printf(out, ".");
  return tw_buf_printf(out, "%.*s", (int)(slash - f->path), f->path);
}

void tw__cdiag(tw_compose *c, bool warning, const char *code, json_t *v,
               const char *key, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned line, col;
  const tw__cdoc *f = locate(c, v, key, &line, &col);
  add_diag(c, f != NULL ? f->path : "", line, col, warning, code, msg);
}

void tw__cdiag_at(tw_compose *c, const char *code, json_t *v, size_t offset,
                  const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned line, col;
  const tw__cdoc *f = locate(c, v, NULL, &line, &col);
  /* Inside a plain scalar on one line: the column moves by the
   * characters before offset (a quoted scalar's quote is one more). */
  if (line > 0 && json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t at = 0;
    if (f != NULL && tw__coffset(c, v, &at) && at < f->len &&
        (f->text[at] == '"' || f->text[at] == '\''))
      col++;
    for (size_t i = 0; i < offset && s[i] != '\0'; i++)
      if (((unsigned char)s[i] & 0xC0) != 0x80)
        col++;
  }
  add_diag(c, f != NULL ? f->path : "", line, col, false, code, msg);
}

void tw__compose_add(tw_compose *c, unsigned line, unsigned col,
                     const char *code, const char *msg) {
  add_diag(c, c->files[0].path, line, col, false, code, msg);
}

int tw_compose_diags_format(const tw_compose_diags *d, bool json, tw_buf *out) {
  int rc = json ? tw_buf_printf(out, "[") : TW_OK;
  for (size_t i = 0; i < d->n && rc == TW_OK; i++) {
    const tw_compose_diag *g = &d->items[i];
    const char *sev = g->warning ? "warning" : "error";
    if (!json) {
      rc = g->line > 0
               ? tw_buf_printf(out, "%s:%u:%u: %s: %s\n", g->file, g->line,
                               g->col, sev, g->message)
               : tw_buf_printf(out, "%s: %s: %s\n", g->file, sev, g->message);
      continue;
    }
    rc = tw_buf_printf(out, "%s{\"file\":", i ? "," : "");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(out, g->file, strlen(g->file));
    if (rc == TW_OK)
      rc = tw_buf_printf(out,
                         ",\"line\":%u,\"col\":%u,\"severity\":\"%s\","
                         "\"code\":",
                         g->line, g->col, sev);
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(out, g->code, strlen(g->code));
    if (rc == TW_OK)
      rc = tw_buf_printf(out, ",\"message\":");
    if (rc == TW_OK)
      rc = tw_buf_put_json_string(out, g->message, strlen(g->message));
    if (rc == TW_OK)
      rc = tw_buf_printf(out, "}");
  }
  if (rc == TW_OK && json)
    rc = tw_buf_printf(out, "]\n");
  return rc;
}

/* --- Suggestions -------------------------------------------------------- */

/* Optimal string alignment distance of a and b, capped at 8. */
static unsigned distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64)
    return 8;
  unsigned d[65][65];
  for (size_t i = 0; i <= n; i++)
    d[i][0] = (unsigned)i;
  for (size_t j = 0; j <= m; j++)
    d[0][j] = (unsigned)j;
  for (size_t i = 1; i <= n; i++)
    for (size_t j = 1; j <= m; j++) {
      unsigned cost = a[i - 1] != b[j - 1];
      unsigned v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v)
        v = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < v)
        v = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[n][m] < 8 ? d[n][m] : 8;
}

const char *tw__did_you_mean(const char *word, const char *const *names,
                             size_t n, char *buf, size_t cap) {
  const char *best = NULL;
  unsigned bd = 8, limit = (unsigned)(strlen(word) / 3);
  if (limit < 1)
    limit = 1;
  if (limit > 3)
    limit = 3;
  for (size_t i = 0; i < n && names[i] != NULL; i++) {
    unsigned dd = distance(word, names[i]);
    if (dd < bd) {
      bd = dd;
      best = names[i];
    }
  }
  if (best == NULL || bd > limit || bd == 0 || cap == 0) {
    if (cap > 0)
      buf[0] = '\0';
    return buf;
  }
  (void)snprintf(buf, cap, "; did you mean '%s'?", best);
  return buf;
}

void tw__ckeys(tw_compose *c, json_t *v, const char *what,
               const char *const *allowed) {
  const char *key;
  json_t *x;
  json_object_foreach(v, key, x) {
    if (strncmp(key, "x-", 2) == 0)
      continue;
    size_t i = 0;
    while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
      i++;
    if (allowed[i] != NULL)
      continue;
    char dym[96];
    tw__cdiag(c, false, "unknown-key", v, key,
              "unknown key '%s' in %s%s (extensions start with x-)", key, what,
              tw__did_you_mean(key, allowed, SIZE_MAX, dym, sizeof dym));
  }
}

bool tw__coffset(const tw_compose *c, json_t *v, size_t *offset) {
  unsigned line, col;
  const tw__cdoc *f = locate(c, v, NULL, &line, &col);
  if (f != &c->files[0] || line == 0)
    return false;
  size_t i = 0;
  for (unsigned l = 1; l < line && i < f->len; i++)
    if (f->text[i] == '\n')
      l++;
  for (unsigned k = 1; k < col && i < f->len; k++) {
    i++;
    while (i < f->len && ((unsigned char)f->text[i] & 0xC0) == 0x80)
      i++;
  }
  *offset = i;
  return true;
}

/* --- Files -------------------------------------------------------------- */

/* Reads path as YAML into c->files; a file that cannot be read or parsed
 * is one diagnostic (with the parser's position) and TW_EPARSE. */
int tw__compose_load_file(tw_compose *c, const char *path, tw__cdoc **out) {
  tw_buf text = TW_BUF_INIT;
  tw_err e;
  tw_err_init(&e);
  /* Regular files only: a FIFO or a device would block or never end. */
  struct stat st;
  int rc = TW_OK;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
    rc = tw_err_set(&e, TW_EINVAL, "%s: not a regular file", path);
  if (rc == TW_OK)
    rc = tw_file_read_all(path, MAX_FILE_BYTES, &text, &e);
  return tw__compose_add_text(c, path, &text, rc, &e, out);
}

int tw__compose_add_text(tw_compose *c, const char *path, tw_buf *textp, int rc,
                         tw_err *ep, tw__cdoc **out) {
  tw_buf text = *textp;
  *textp = (tw_buf)TW_BUF_INIT;
  tw_err e = *ep;
  if (c->nfiles == TW__COMPOSE_MAX_FILES) {
    tw_buf_fini(&text);
    return tw_err_set(c->err, TW_ELIMIT, "compose: more than %d files",
                      TW__COMPOSE_MAX_FILES - 1);
  }
  tw__cdoc *f = &c->files[c->nfiles];
  memset(f, 0, sizeof *f);
  if (rc == TW_OK)
    rc = tw_yaml_parse_doc(text.data != NULL ? text.data : "", text.len, path,
                           NULL, &f->doc, &e);
  if (rc == TW_ENOMEM) {
    tw_buf_fini(&text);
    return tw_err_set(c->err, rc, "%s", e.msg);
  }
  if (rc != TW_OK) {
    /* "FILE:LINE:COL: error: MSG" from the parser, else one line. */
    unsigned line = 0, col = 0;
    const char *msg = e.msg;
    size_t n = strlen(path);
    if (strncmp(e.msg, path, n) == 0 && e.msg[n] == ':' &&
        sscanf(e.msg + n, ":%u:%u:", &line, &col) == 2) {
      const char *p = strstr(e.msg + n, ": error: ");
      msg = p != NULL ? p + 9 : e.msg;
    } else if (strncmp(e.msg, path, n) == 0 && e.msg[n] == ':') {
      msg = e.msg + n + (e.msg[n + 1] == ' ' ? 2 : 1);
    }
    add_diag(c, path, line, col, false,
             strstr(msg, "duplicate key") != NULL ? "duplicate-key"
             : rc == TW_EPARSE || rc == TW_ELIMIT ? "yaml"
                                                  : "file",
             msg);
    tw_buf_fini(&text);
    return TW_EPARSE;
  }
  f->path = tw_strdup(path);
  f->text = text.data != NULL ? text.data : tw_strdup("");
  f->len = text.len;
  text.data = NULL; /* taken */
  tw_buf_fini(&text);
  if (f->path == NULL || f->text == NULL) {
    tw_json_doc_free(f->doc);
    tw_free(f->path);
    tw_free(f->text);
    return tw_err_set(c->err, TW_ENOMEM, "compose: out of memory");
  }
  c->nfiles++;
  *out = f;
  return TW_OK;
}

/* Lays over onto base (both mappings), in place: mappings merge key by key,
 * anything else replaces (docker compose's rule for profiles). */
static int merge(tw_compose *c, json_t *base, json_t *over) {
  const char *key;
  json_t *v;
  json_object_foreach(over, key, v) {
    json_t *b = json_object_get(base, key);
    if (json_is_object(b) && json_is_object(v)) {
      int rc = merge(c, b, v);
      if (rc != TW_OK)
        return rc;
      continue;
    }
    /* What is replaced stays alive until the end: its address must not
     * be reused by a value the documents' places would then name. */
    if (b != NULL && json_array_append(c->graveyard, b) != 0)
      return TW_ENOMEM;
    if (json_object_set(base, key, v) != 0)
      return TW_ENOMEM;
  }
  return TW_OK;
}

/* The profile named by the options, merged over the twin. */
static int apply_profile(tw_compose *c) {
  const char *name = c->opts.profile;
  json_t *profiles = json_object_get(c->root, "profiles");
  if (profiles != NULL && !json_is_object(profiles)) {
    tw__cdiag(c, false, "type", profiles, NULL,
              "profiles must be a mapping of name: {overrides}");
    return TW_OK;
  }
  if (profiles != NULL) { /* every profile's shape, active or not */
    const char *key;
    json_t *v;
    json_object_foreach(profiles, key, v) {
      if (!json_is_object(v))
        tw__cdiag(c, false, "type", v, NULL,
                  "profile '%s' must be a mapping of overrides", key);
      else if (json_object_get(v, "profiles") != NULL)
        tw__cdiag(c, false, "value", v, "profiles",
                  "profile '%s' cannot define profiles", key);
    }
  }
  if (name == NULL)
    return TW_OK;
  json_t *p = json_object_get(profiles, name);
  if (!json_is_object(p)) {
    const char *names[64];
    size_t n = 0;
    const char *key;
    json_t *v;
    if (profiles != NULL)
      json_object_foreach(profiles, key, v) if (n < 63) names[n++] = key;
    names[n] = NULL;
    char dym[96];
    tw__cdiag(c, false, "unknown-profile",
              profiles != NULL ? profiles : c->root, NULL,
              "no profile '%s' in the twin%s", name,
              tw__did_you_mean(name, names, n, dym, sizeof dym));
    return TW_OK;
  }
  int rc = json_array_append(c->graveyard, profiles) == 0 ? TW_OK : TW_ENOMEM;
  if (rc == TW_OK)
    rc = json_object_del(c->root, "profiles") == 0 ? TW_OK : TW_ENOMEM;
  if (rc == TW_OK)
    rc = merge(c, c->root, p);
  if (rc != TW_OK)
    return tw_err_set(c->err, rc, "compose: out of memory");
  return TW_OK;
}

/* A parameter file: {component: {param: value}} laid over the twin's
 * components' parameters. */
static int apply_overlay(tw_compose *c, const char *path) {
  tw__cdoc *f = NULL;
  int rc = tw__compose_load_file(c, path, &f);
  if (rc == TW_EPARSE)
    return TW_OK; /* reported */
  if (rc != TW_OK)
    return rc;
  json_t *root = tw_json_doc_root(f->doc);
  if (!json_is_object(root)) {
    tw__cdiag(c, false, "type", root, NULL,
              "a parameter file must be a mapping of component: {param: "
              "value}");
    return TW_OK;
  }
  json_t *comps = json_object_get(c->root, "components");
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    json_t *comp = json_object_get(comps, key);
    if (!json_is_object(comp)) {
      const char *names[256];
      size_t n = 0;
      const char *k2;
      json_t *v2;
      if (json_is_object(comps))
        json_object_foreach(comps, k2, v2) if (n < 255) names[n++] = k2;
      char dym[96];
      tw__cdiag(c, false, "unknown-component", root, key,
                "the twin has no component '%s'%s", key,
                tw__did_you_mean(key, names, n, dym, sizeof dym));
      continue;
    }
    if (!json_is_object(v)) {
      tw__cdiag(c, false, "type", v, NULL,
                "parameters of '%s' must be a mapping of param: value", key);
      continue;
    }
    json_t *params = json_object_get(comp, "parameters");
    if (params == NULL) {
      params = json_object();
      if (params == NULL || json_object_set_new(comp, "parameters", params))
        return tw_err_set(c->err, TW_ENOMEM, "compose: out of memory");
    }
    if (!json_is_object(params))
      continue; /* reported by the compiler */
    if (merge(c, params, v) != TW_OK)
      return tw_err_set(c->err, TW_ENOMEM, "compose: out of memory");
  }
  return TW_OK;
}

/* --- Public ------------------------------------------------------------- */

void tw_compose_free(tw_compose *c) {
  if (c == NULL)
    return;
  tw__compose_calibrate_free(c);
  tw_graph_free(c->graph);
  tw_json_doc_free(c->ir_doc);
  tw_free(c->pairs);
  for (size_t i = 0; i < c->ncomps; i++) {
    tw_graph_free(c->comps[i].g);
    tw_free(c->comps[i].fed);
    tw_free(c->comps[i].fed_by);
  }
  tw_free(c->comps);
  for (size_t i = 0; i < c->nsources; i++) {
    tw__csource *s = &c->sources[i];
    for (size_t t = 0; t < s->ntopics; t++) {
      tw_free(s->topics[t].input);
      tw_free(s->topics[t].topic);
      tw_free(s->topics[t].unit);
      tw_free(s->map != NULL ? s->map[t] : NULL);
    }
    tw_free(s->topics);
    tw_free(s->map);
    tw_free(s->path);
  }
  tw_free(c->sources);
  json_decref(c->root);
  json_decref(c->graveyard);
  for (size_t i = 0; i < c->nfiles; i++) {
    tw_json_doc_free(c->files[i].doc);
    tw_free(c->files[i].path);
    tw_free(c->files[i].text);
  }
  tw_free(c->name);
  tw_free(c->dir);
  tw_compose_diags_fini(&c->own_diags);
  tw_free(c);
}

/* Loads the twin of file path (text: its bytes, taken, or NULL to read
 * it) with base_dir for relative paths (NULL: path's directory). */
static int load(const char *path, tw_buf *text, const char *base_dir,
                const tw_compose_opts *opts, tw_compose_diags *diags,
                tw_compose **out, tw_err *err) {
  tw_compose *c = tw_calloc(1, sizeof *c);
  if (c == NULL) {
    if (text != NULL)
      tw_buf_fini(text);
    return tw_err_set(err, TW_ENOMEM, "compose: out of memory");
  }
  if (opts != NULL)
    c->opts = *opts;
  c->diags = diags != NULL ? diags : &c->own_diags;
  size_t before = c->diags->errors;
  tw_err fatal;
  tw_err_init(&fatal);
  c->err = &fatal;
  if (base_dir != NULL) {
    c->dir = tw_strdup(base_dir);
  } else {
    char *copy = tw_strdup(path);
    c->dir = copy != NULL ? tw_strdup(dirname(copy)) : NULL;
    tw_free(copy);
  }
  int rc =
      c->dir != NULL ? TW_OK : tw_err_set(&fatal, TW_ENOMEM, "out of memory");
  tw__cdoc *f = NULL;
  if (rc == TW_OK && text != NULL) {
    tw_err e;
    tw_err_init(&e);
    rc = tw__compose_add_text(c, path, text, TW_OK, &e, &f);
  } else if (rc == TW_OK) {
    rc = tw__compose_load_file(c, path, &f);
  } else if (text != NULL) {
    tw_buf_fini(text);
  }
  /* (after the parse, which routes jansson's allocations to tw_alloc) */
  if (rc == TW_OK && (c->graveyard = json_array()) == NULL)
    rc = tw_err_set(&fatal, TW_ENOMEM, "out of memory");
  if (rc == TW_OK) {
    c->root = tw_json_doc_root(f->doc);
    json_incref(c->root);
    if (!json_is_object(c->root)) {
      tw__cdiag(c, false, "type", c->root, NULL,
                "a twin must be a mapping (twin:, dt:, components:, ...)");
    } else {
      rc = apply_profile(c);
      for (size_t i = 0; rc == TW_OK && i < c->opts.nparam_files; i++)
        rc = apply_overlay(c, c->opts.param_files[i]);
      if (rc == TW_OK)
        rc = tw__compose_compile(c);
    }
  }
  if (rc == TW_EPARSE)
    rc = TW_OK; /* the file's problem is a diagnostic */
  if (rc == TW_OK && fatal.code != TW_OK)
    rc = fatal.code;
  if (rc != TW_OK) {
    tw_err_set(err, rc, "%s", fatal.msg);
  } else if (c->diags->errors > before) {
    size_t n = c->diags->errors - before;
    rc = tw_err_set(err, TW_EVALIDATE, "%s: %zu error%s", path, n,
                    n == 1 ? "" : "s");
  }
  c->err = NULL;
  if (rc != TW_OK) {
    tw_compose_free(c);
    return rc;
  }
  *out = c;
  return TW_OK;
}

int tw_compose_load(const char *path, const tw_compose_opts *opts,
                    tw_compose_diags *diags, tw_compose **out, tw_err *err) {
  return load(path, NULL, NULL, opts, diags, out, err);
}

int tw_compose_parse(const char *text, size_t len, const char *source,
                     const char *base_dir, const tw_compose_opts *opts,
                     tw_compose_diags *diags, tw_compose **out, tw_err *err) {
  tw_buf b = TW_BUF_INIT;
  if (tw_buf_append(&b, text, len) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "compose: out of memory");
  return load(source != NULL ? source : "<memory>", &b,
              base_dir != NULL ? base_dir : ".", opts, diags, out, err);
}

const char *tw_compose_name(const tw_compose *c) { return c->name; }
tw_graph *tw_compose_graph(tw_compose *c) { return c->graph; }

int tw_compose_format_graph(const tw_compose *c, bool json, tw_buf *out,
                            tw_err *err) {
  return tw_graph_format_value(c->ir, json, out, err);
}

size_t tw_compose_nsources(const tw_compose *c) { return c->nsources; }

const tw_compose_source *tw_compose_source_at(const tw_compose *c, size_t i) {
  return &c->sources[i].pub;
}
