/*
 * gc.c - garbage collection of blobs: mark what manifests reference, sweep
 * the rest of blobs/sha256 and blobs/sha512 once it is older than a grace
 * period.
 *
 * Roots: every manifest linked into any repository (repos/.../_manifests;
 * referrers are manifests of their repository, so they are roots too) and
 * the manifests of the store's index.json (what `twin pull` records).
 * Each root marks itself, its config and layers, and for an index the
 * manifests it lists. Marks are whole digests, so a sha256 and a sha512
 * blob are judged each by its own name: content stored under both is two
 * blobs, kept or removed separately.
 *
 * Races, and why none loses a blob:
 *  - The whole mark and sweep holds the store lock exclusively; commits of
 *    uploads, mounts and manifest pushes hold it shared, so none is
 *    half-done while blobs are judged: a manifest pushed before the
 *    collection is marked, one pushed after it waits and finds its blobs
 *    (or gets MANIFEST_BLOB_UNKNOWN and pushes them again, nothing
 *    dangling).
 *  - A push uploads blobs first and the manifest later, in separate
 *    requests. A blob committed in between is unreferenced when a
 *    collection runs, so blobs modified within the grace period are kept;
 *    a commit always renames a new file (fresh mtime), even over an
 *    existing blob, and a mount touches the blob, so "just uploaded" is
 *    always "young".
 *  - A blob being read (a pull in progress) keeps its open file when it is
 *    unlinked; the read completes.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry_int.h"
#include "twin/json.h"

typedef struct marks {
  char (*d)[TW_STORE_DIGEST_MAX + 1]; /* digests, sorted before the sweep */
  size_t n, cap;
} marks;

/* Marks digest (valid: it comes from a parsed manifest, a link's name or
 * a checked index.json entry). */
static int mark(marks *m, const char *digest) {
  if (m->n == m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 256;
    void *nv = tw_reallocarray(m->d, nc, sizeof *m->d);
    if (nv == NULL)
      return TW_ENOMEM;
    m->d = nv;
    m->cap = nc;
  }
  assert(strlen(digest) <= TW_STORE_DIGEST_MAX);
  memcpy(m->d[m->n++], digest, strlen(digest) + 1);
  return TW_OK;
}

static int cmp_digest(const void *a, const void *b) { return strcmp(a, b); }

static bool marked(const marks *m, const char *digest) {
  return m->n > 0 &&
         bsearch(digest, m->d, m->n, sizeof *m->d, cmp_digest) != NULL;
}

typedef struct gc {
  tw_reg *r;
  marks m;
  tw_reg_gc_stats st;
} gc;

/* Marks manifest digest (media type mt) and what it references; for
 * depth > 0 the manifests of an index too. A manifest that cannot be read
 * or parsed (missing or corrupt blob) marks only itself: one damaged
 * manifest does not stop the collection of a whole registry. */
static int mark_manifest(gc *g, const char *digest, const char *mt, int depth,
                         tw_err *err) {
  if (mark(&g->m, digest) != TW_OK)
    return tw_err_set(err, TW_ENOMEM, "gc: out of memory");
  g->st.manifests++;
  tw_buf body = TW_BUF_INIT;
  tw_reg_manifest *man = NULL;
  int rc = TW_OK;
  if (tw_store_read(g->r->store, digest, TW_REG_MANIFEST_MAX, &body, NULL) ==
          TW_OK &&
      tw__reg_manifest_parse_stored(body.data, body.len, mt, &man, NULL) ==
          TW_OK) {
    if (!man->is_index && mark(&g->m, man->config.digest) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "gc: out of memory");
    for (size_t i = 0; rc == TW_OK && i < man->nrefs; i++) {
      if (man->is_index && depth > 0)
        rc = mark_manifest(g, man->refs[i].digest, man->refs[i].media_type,
                           depth - 1, err);
      else if (mark(&g->m, man->refs[i].digest) != TW_OK)
        rc = tw_err_set(err, TW_ENOMEM, "gc: out of memory");
    }
  }
  tw_reg_manifest_free(man);
  tw_buf_fini(&body);
  return rc;
}

static bool is_component(const char *s) { return s[0] != '_'; }

/* Marks the manifests of the repository at path (repos/<name>). */
static int mark_repo(gc *g, const char *path, tw_err *err) {
  tw_buf dir = TW_BUF_INIT, p = TW_BUF_INIT, mt = TW_BUF_INIT;
  char **hexes = NULL;
  size_t n = 0;
  int rc =
      tw_buf_printf(&dir, "%s/_manifests", path) == TW_OK
          ? tw__reg_list_dir(dir.data, tw__reg_is_hex_name, &hexes, &n, err)
          : tw_err_set(err, TW_ENOMEM, "gc: out of memory");
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    char d[TW_STORE_DIGEST_MAX + 1];
    tw__reg_hex_digest(hexes[i], d);
    tw_buf_reset(&p);
    tw_buf_reset(&mt);
    if (tw_buf_printf(&p, "%s/%s", dir.data, hexes[i]) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "gc: out of memory");
    else
      (void)tw__reg_read_small(p.data, 256, &mt, NULL);
    if (rc == TW_OK)
      rc = mark_manifest(g, d, mt.data, 0, err);
  }
  tw__reg_names_free(hexes, n);
  tw_buf_fini(&dir);
  tw_buf_fini(&p);
  tw_buf_fini(&mt);
  return rc;
}

/* Removes the blob links of the repository at path whose blob is gone. */
static int sweep_links(gc *g, const char *path, bool dry_run, tw_err *err) {
  tw_buf dir = TW_BUF_INIT, p = TW_BUF_INIT;
  char **hexes = NULL;
  size_t n = 0;
  int rc =
      tw_buf_printf(&dir, "%s/_blobs", path) == TW_OK
          ? tw__reg_list_dir(dir.data, tw__reg_is_hex_name, &hexes, &n, err)
          : tw_err_set(err, TW_ENOMEM, "gc: out of memory");
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    char d[TW_STORE_DIGEST_MAX + 1];
    tw__reg_hex_digest(hexes[i], d);
    if (tw_store_stat(g->r->store, d, NULL, NULL) != TW_ENOENT)
      continue;
    g->st.links++;
    tw_buf_reset(&p);
    if (tw_buf_printf(&p, "%s/%s", dir.data, hexes[i]) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "gc: out of memory");
    else if (!dry_run)
      (void)unlink(p.data);
  }
  tw__reg_names_free(hexes, n);
  tw_buf_fini(&dir);
  tw_buf_fini(&p);
  return rc;
}

/* Calls fn on every repository directory under path (repos/...). */
static int walk(gc *g, const char *path, int depth, bool dry_run,
                int (*fn)(gc *, const char *, bool, tw_err *), tw_err *err) {
  if (depth > TW_REG_NAME_MAX)
    return TW_OK;
  tw_buf p = TW_BUF_INIT;
  char **subs = NULL;
  size_t n = 0;
  int rc = tw__reg_list_dir(path, is_component, &subs, &n, err);
  struct stat st;
  if (rc == TW_OK && tw_buf_printf(&p, "%s/_manifests", path) == TW_OK &&
      lstat(p.data, &st) == 0)
    rc = fn(g, path, dry_run, err);
  for (size_t i = 0; rc == TW_OK && i < n; i++) {
    tw_buf_reset(&p);
    if (tw_buf_printf(&p, "%s/%s", path, subs[i]) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "gc: out of memory");
    else if (lstat(p.data, &st) == 0 && S_ISDIR(st.st_mode))
      rc = walk(g, p.data, depth + 1, dry_run, fn, err);
  }
  tw__reg_names_free(subs, n);
  tw_buf_fini(&p);
  return rc;
}

static int mark_repo_cb(gc *g, const char *path, bool dry_run, tw_err *err) {
  (void)dry_run;
  return mark_repo(g, path, err);
}

/* The manifests index.json lists (and what they reference). */
static int mark_index_json(gc *g, tw_err *err) {
  tw_buf p = TW_BUF_INIT;
  json_t *v = NULL;
  int rc = tw__reg_path(g->r, &p, "index.json") == TW_OK
               ? TW_OK
               : tw_err_set(err, TW_ENOMEM, "gc: out of memory");
  tw_err sub;
  tw_err_init(&sub);
  if (rc == TW_OK && tw_json_load_file(p.data, &v, &sub) != TW_OK) {
    tw_buf_fini(&p);
    return sub.code == TW_ENOMEM ? tw_err_copy(err, &sub) : TW_OK;
  }
  json_t *ms = json_object_get(v, "manifests");
  for (size_t i = 0; rc == TW_OK && i < json_array_size(ms); i++) {
    json_t *d = json_array_get(ms, i);
    const char *dg = json_string_value(json_object_get(d, "digest"));
    const char *mt = json_string_value(json_object_get(d, "mediaType"));
    if (dg != NULL && tw_store_digest_check_any(dg, NULL) == TW_OK)
      rc = mark_manifest(g, dg, mt, 4, err);
  }
  json_decref(v);
  tw_buf_fini(&p);
  return rc;
}

static bool is_hex64(const char *s) {
  return tw__reg_is_hex_name(s) && strlen(s) == TW_SHA256_HEX_LEN;
}

static bool is_hex128(const char *s) {
  return tw__reg_is_hex_name(s) && strlen(s) == TW_SHA512_HEX_LEN;
}

/* Sweeps blobs/<algo> (sha256 or sha512). A missing directory (no blob
 * was ever named by that algorithm) has nothing to sweep. */
static int sweep_blobs(gc *g, const char *algo, int64_t grace, bool dry_run,
                       tw_err *err) {
  bool sha512 = strcmp(algo, "sha512") == 0;
  tw_buf dir = TW_BUF_INIT;
  char **hexes = NULL;
  size_t n = 0, swept = 0;
  int rc = tw__reg_path(g->r, &dir, "blobs/%s", algo) == TW_OK
               ? tw__reg_list_dir(dir.data, sha512 ? is_hex128 : is_hex64,
                                  &hexes, &n, err)
               : tw_err_set(err, TW_ENOMEM, "gc: out of memory");
  int dfd =
      rc == TW_OK ? open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (rc == TW_OK && dfd < 0 && errno != ENOENT)
    rc = tw_err_sys(err, errno, "%s: cannot open", dir.data);
  time_t now = time(NULL);
  for (size_t i = 0; rc == TW_OK && dfd >= 0 && i < n; i++) {
    char d[TW_STORE_DIGEST_MAX + 1];
    tw__reg_hex_digest(hexes[i], d);
    if (marked(&g->m, d))
      continue;
    struct stat st;
    if (fstatat(dfd, hexes[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if ((int64_t)(now - st.st_mtime) < grace) {
      g->st.young++;
      continue;
    }
    if (!dry_run && unlinkat(dfd, hexes[i], 0) != 0) {
      rc = tw_err_sys(err, errno, "%s/%s: cannot remove", dir.data, hexes[i]);
      break;
    }
    g->st.swept++;
    g->st.bytes += (uint64_t)st.st_size;
    swept++;
  }
  if (rc == TW_OK && !dry_run && swept > 0 && fsync(dfd) != 0)
    rc = tw_err_sys(err, errno, "%s: cannot sync", dir.data);
  if (dfd >= 0)
    close(dfd);
  tw__reg_names_free(hexes, n);
  tw_buf_fini(&dir);
  return rc;
}

int tw_reg_gc(tw_reg *r, const tw_reg_gc_opts *opts, tw_reg_gc_stats *stats,
              tw_err *err) {
  int64_t grace = opts != NULL && opts->grace_s >= 0 ? opts->grace_s : 3600;
  bool dry_run = opts != NULL && opts->dry_run;
  gc g = {r, {NULL, 0, 0}, {0}};
  tw_buf repos = TW_BUF_INIT;
  int lock = -1;
  int rc = tw_store_lock(r->store, true, &lock, err);
  if (rc == TW_OK && tw__reg_path(r, &repos, "repos") != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "gc: out of memory");
  if (rc == TW_OK)
    rc = walk(&g, repos.data, 0, dry_run, mark_repo_cb, err);
  if (rc == TW_OK)
    rc = mark_index_json(&g, err);
  if (rc == TW_OK && g.m.n > 1)
    qsort(g.m.d, g.m.n, sizeof *g.m.d, cmp_digest);
  /* Count distinct marks. */
  size_t distinct = 0;
  for (size_t i = 0; i < g.m.n; i++)
    distinct += i == 0 || cmp_digest(g.m.d[i - 1], g.m.d[i]) != 0;
  g.st.marked = distinct;
  if (rc == TW_OK)
    rc = sweep_blobs(&g, "sha256", grace, dry_run, err);
  if (rc == TW_OK)
    rc = sweep_blobs(&g, "sha512", grace, dry_run, err);
  if (rc == TW_OK)
    rc = walk(&g, repos.data, 0, dry_run, sweep_links, err);
  tw_store_unlock(lock);
  if (rc == TW_OK && stats != NULL)
    *stats = g.st;
  tw_free(g.m.d);
  tw_buf_fini(&repos);
  return rc;
}
