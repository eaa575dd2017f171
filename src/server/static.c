/*
 * static.c - files from a directory (the portal's build), GET and HEAD.
 *
 * A file is opened relative to the root's descriptor with openat2 and
 * RESOLVE_BENEATH, so neither "..", nor an absolute path, nor a symbolic
 * link can reach outside the root: the kernel refuses the lookup (404).
 * Where openat2 is missing (Linux before 5.6), the real path of the file
 * must lie under the real path of the root. Segments "." and ".." never
 * reach here (libwebsockets collapses them) but are refused again (400),
 * as are backslashes and NUL. The handler runs on the pool: opening and
 * stat'ing may touch the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "server_int.h"
#include "twin/alloc.h"

int tw__server_static_open(tw__route *r, const char *dir, tw_err *err) {
  char *real = realpath(dir, NULL);
  struct stat st;
  if (real == NULL)
    return tw_err_sys(err, errno, "static directory '%s'", dir);
  if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    free(real);
    return tw_err_set(err, TW_ENOENT, "static directory '%s': not a directory",
                      dir);
  }
  r->static_dir = tw_strdup(real);
  free(real);
  if (r->static_dir == NULL)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  r->static_fd = open(r->static_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (r->static_fd < 0)
    return tw_err_sys(err, errno, "static directory '%s'", dir);
  return TW_OK;
}

/* Opens rel beneath the root; -1 with errno on failure. */
static int open_beneath(const tw__route *r, const char *rel) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, r->static_fd, rel, &how, sizeof how);
  if (fd >= 0 || errno != ENOSYS)
    return (int)fd;
  /* No openat2: compare real paths. */
  size_t n = strlen(r->static_dir);
  char *full = tw_alloc(n + strlen(rel) + 2);
  if (full == NULL) {
    errno = ENOMEM;
    return -1;
  }
  (void)sprintf(full, "%s/%s", r->static_dir, rel);
  char *real = realpath(full, NULL);
  tw_free(full);
  if (real == NULL)
    return -1;
  int out = -1;
  if (strncmp(real, r->static_dir, n) == 0 && real[n] == '/')
    out = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  else
    errno = EXDEV;
  free(real);
  return out;
}

static const struct {
  const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"wasm", "application/wasm"},
    {"mcap", "application/octet-stream"},
};

static const char *content_type(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  if (dot != NULL)
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcasecmp(dot + 1, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}

/* True when the If-None-Match list holds etag (or "*"). */
static bool etag_matches(const char *list, const char *etag) {
  size_t n = strlen(etag);
  const char *p = list;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '*')
      return true;
    if (strncmp(p, "W/", 2) == 0)
      p += 2; /* weak comparison, RFC 9110 13.1.2 */
    if (strncmp(p, etag, n) == 0 &&
        (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
      return true;
    while (*p && *p != ',')
      p++;
  }
  return false;
}

static bool rel_ok(const char *rel) {
  const char *s = rel;
  for (;;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
      return false;
    if (n == 0 && e != NULL)
      return false; /* "//" inside */
    if (memchr(s, '\\', n) != NULL)
      return false;
    if (e == NULL)
      return true;
    s = e + 1;
  }
}

static int static_end(tw_server_req *req, void *ud) {
  const tw__route *r = ud;
  const char *param = tw_server_req_param(req, "path");
  const char *rel = param ? param : "";
  if (rel[0] == '/' || !rel_ok(rel))
    return tw_server_req_respond_error(req, 400, "BAD_REQUEST",
                                       "malformed file path");
  size_t n = strlen(rel);
  char *path = tw_alloc(n + 16);
  if (path == NULL)
    return TW_ENOMEM;
  (void)snprintf(path, n + 16, "%s%s", rel,
                 (n == 0 || rel[n - 1] == '/') ? "index.html" : "");
  int fd = open_beneath(r, path);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) != 0) {
    close(fd);
    fd = -1;
  }
  if (fd >= 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    tw_free(path);
    char loc[2048];
    int k = snprintf(loc, sizeof loc, "%s/", tw_server_req_raw_path(req));
    if (k <= 0 || (size_t)k >= sizeof loc)
      return tw_server_req_respond_error(req, 404, "NOT_FOUND", "no such file");
    (void)tw_server_req_header_add(req, "Location", loc);
    return tw_server_req_respond(req, 301, NULL, NULL, 0);
  }
  if (fd < 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0)
      close(fd);
    tw_free(path);
    return tw_server_req_respond_error(req, 404, "NOT_FOUND", "no such file");
  }
  char etag[80];
  (void)snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"",
                 (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
                 (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                     (unsigned long long)st.st_mtim.tv_nsec);
  const char *ctype = content_type(path);
  tw_free(path);
  (void)tw_server_req_header_add(req, "ETag", etag);
  (void)tw_server_req_header_add(req, "Cache-Control", "no-cache");
  (void)tw_server_req_header_add(req, "X-Content-Type-Options", "nosniff");
  const char *inm = tw_server_req_header(req, "if-none-match");
  if (inm != NULL && etag_matches(inm, etag)) {
    close(fd);
    return tw_server_req_respond(req, 304, NULL, NULL, 0);
  }
  return tw_server_req_respond_file(
      req, 200, ctype, fd, 0, (uint64_t)st.st_size, TW_SERVER_FILE_RANGES);
}

const tw_server_route tw__server_static_route = {
    .method = "GET",
    .on_end = static_end,
};
