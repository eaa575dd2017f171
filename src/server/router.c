/*
 * router.c - route patterns, path splitting and matching, and the small
 * parsers of request pieces (query fragments, Range, listen addresses,
 * header validity). Pure functions with no I/O, fuzzed by
 * fuzz/fuzz_http_path.c.
 *
 * Matching a pattern with a catch-all at segment r against a path of n
 * segments: the r segments before it must match the first r of the path,
 * the m-r-1 after it the last m-r-1 of the path, and the catch-all takes
 * the one or more segments between, so matching is linear in the path and
 * never backtracks. Only the last segment of a path (a trailing '/') may
 * be empty inside a catch-all.
 */
#include <stdio.h>
#include <string.h>

#include "server_int.h"
#include "twin/alloc.h"

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-';
}

void tw__server_pattern_fini(tw__pattern *p) {
  if (p == NULL)
    return;
  for (size_t i = 0; i < p->nsegs; i++)
    tw_free(p->segs[i].text);
  tw_free(p->segs);
  tw_free(p->source);
  memset(p, 0, sizeof *p);
  p->rest_at = -1;
}

static int bad(tw_err *err, const char *pattern, const char *why) {
  return tw_err_set(err, TW_EINVAL, "route pattern '%s': %s", pattern, why);
}

int tw__server_pattern_compile(const char *pattern, tw__pattern *out,
                               tw_err *err) {
  if (pattern == NULL || pattern[0] != '/')
    return bad(err, pattern ? pattern : "(null)", "must start with '/'");
  tw__path path;
  if (tw__server_path_split(pattern, strlen(pattern), &path) != TW_OK)
    return bad(err, pattern, "too many segments");
  tw__pattern p;
  memset(&p, 0, sizeof p);
  p.rest_at = -1;
  p.source = tw_strdup(pattern);
  p.segs = tw_calloc(path.nsegs, sizeof *p.segs);
  if (p.source == NULL || p.segs == NULL) {
    tw_free(p.source);
    tw_free(p.segs);
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  int rc = TW_OK;
  for (size_t i = 0; i < path.nsegs && rc == TW_OK; i++) {
    const char *s = pattern + path.off[i];
    size_t n = path.len[i];
    tw__pat_seg *seg = &p.segs[i];
    p.nsegs = i + 1;
    if (n > 0 && s[0] == '{') {
      if (n < 3 || s[n - 1] != '}') {
        rc = bad(err, pattern, "a parameter is '{name}' or '{name...}'");
        break;
      }
      const char *name = s + 1;
      size_t nlen = n - 2;
      if (nlen > 3 && memcmp(name + nlen - 3, "...", 3) == 0) {
        seg->rest = true;
        nlen -= 3;
        if (p.rest_at >= 0) {
          rc = bad(err, pattern, "more than one catch-all '{name...}'");
          break;
        }
        p.rest_at = (int)i;
      }
      if (nlen == 0) {
        rc = bad(err, pattern, "empty parameter name");
        break;
      }
      for (size_t k = 0; k < nlen; k++)
        if (!is_name_char(name[k])) {
          rc = bad(err, pattern, "a parameter name is [A-Za-z0-9_-]+");
          break;
        }
      if (rc != TW_OK)
        break;
      for (size_t k = 0; k < i; k++)
        if (p.segs[k].param && strlen(p.segs[k].text) == nlen &&
            memcmp(p.segs[k].text, name, nlen) == 0) {
          rc = bad(err, pattern, "a parameter name is used twice");
          break;
        }
      if (rc != TW_OK)
        break;
      if (p.nparams == TW__SERVER_MAX_PARAMS) {
        rc = bad(err, pattern, "too many parameters");
        break;
      }
      seg->param = true;
      seg->text = tw_strndup(name, nlen);
      p.nparams++;
    } else {
      if (memchr(s, '{', n) != NULL || memchr(s, '}', n) != NULL) {
        rc = bad(err, pattern, "braces inside a literal segment");
        break;
      }
      seg->text = tw_strndup(s, n);
      p.nliterals++;
    }
    if (seg->text == NULL)
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  if (rc != TW_OK) {
    tw__server_pattern_fini(&p);
    return rc;
  }
  *out = p;
  return TW_OK;
}

int tw__server_path_split(const char *path, size_t len, tw__path *out) {
  if (len == 0 || path[0] != '/')
    return TW_EINVAL;
  out->path = path;
  out->nsegs = 0;
  size_t start = 1;
  for (size_t i = 1; i <= len; i++) {
    if (i == len || path[i] == '/') {
      if (out->nsegs == TW__SERVER_MAX_SEGS)
        return TW_ELIMIT;
      out->off[out->nsegs] = start;
      out->len[out->nsegs] = i - start;
      out->nsegs++;
      start = i + 1;
    }
  }
  return TW_OK;
}

static bool seg_match(const tw__pat_seg *ps, const tw__path *path, size_t i) {
  if (ps->param)
    return path->len[i] > 0;
  size_t n = strlen(ps->text);
  return n == path->len[i] &&
         memcmp(ps->text, path->path + path->off[i], n) == 0;
}

static void put_param(const tw__pat_seg *ps, size_t off, size_t len,
                      tw__param *params, size_t *np) {
  params[*np].name = ps->text;
  params[*np].off = off;
  params[*np].len = len;
  (*np)++;
}

bool tw__server_pattern_match(const tw__pattern *p, const tw__path *path,
                              tw__param *params) {
  size_t np = 0;
  if (p->rest_at < 0) {
    if (p->nsegs != path->nsegs)
      return false;
    for (size_t i = 0; i < p->nsegs; i++) {
      if (!seg_match(&p->segs[i], path, i))
        return false;
      if (p->segs[i].param)
        put_param(&p->segs[i], path->off[i], path->len[i], params, &np);
    }
    return true;
  }
  size_t r = (size_t)p->rest_at, after = p->nsegs - r - 1;
  if (path->nsegs < r + 1 + after)
    return false;
  size_t rest_end = path->nsegs - after; /* one past the catch-all's last */
  for (size_t i = 0; i < r; i++) {
    if (!seg_match(&p->segs[i], path, i))
      return false;
    if (p->segs[i].param)
      put_param(&p->segs[i], path->off[i], path->len[i], params, &np);
  }
  for (size_t i = r; i < rest_end; i++)
    if (path->len[i] == 0 && !(i + 1 == path->nsegs && i > r))
      return false;
  size_t last = rest_end - 1;
  size_t rlen = path->off[last] + path->len[last] - path->off[r];
  put_param(&p->segs[r], path->off[r], rlen, params, &np);
  for (size_t k = 0; k < after; k++) {
    size_t pi = r + 1 + k, si = rest_end + k;
    if (!seg_match(&p->segs[pi], path, si))
      return false;
    if (p->segs[pi].param)
      put_param(&p->segs[pi], path->off[si], path->len[si], params, &np);
  }
  return true;
}

int tw__server_path_encode(const char *path, size_t len, tw_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)path[i];
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || strchr("-._~/!$&'()*+,;=:@", c);
    int rc;
    if (plain && c != '\0') {
      rc = tw_buf_putc(out, (char)c);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      rc = tw_buf_append(out, e, 3);
    }
    if (rc != TW_OK)
      return rc;
  }
  return tw_buf_reserve(out, 0);
}

void tw__server_query_split(const char *frag, size_t len, size_t *klen,
                            const char **val) {
  const char *eq = memchr(frag, '=', len);
  if (eq == NULL) {
    *klen = len;
    *val = frag + len;
  } else {
    *klen = (size_t)(eq - frag);
    *val = eq + 1;
  }
}

/* Reads decimal digits at *s into *out; false on none or overflow. */
static bool read_u64(const char **s, uint64_t *out) {
  const char *p = *s;
  uint64_t v = 0;
  if (*p < '0' || *p > '9')
    return false;
  while (*p >= '0' && *p <= '9') {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
    p++;
  }
  *s = p;
  *out = v;
  return true;
}

int tw__server_range_parse(const char *value, uint64_t size, uint64_t *first,
                           uint64_t *last) {
  const char *s = value;
  while (*s == ' ' || *s == '\t')
    s++;
  if (strncmp(s, "bytes=", 6) != 0)
    return 0;
  s += 6;
  while (*s == ' ')
    s++;
  uint64_t a = 0, b = 0;
  bool has_a = read_u64(&s, &a);
  if (*s != '-')
    return 0;
  s++;
  bool has_b = read_u64(&s, &b);
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s != '\0' || (!has_a && !has_b))
    return 0;   /* several ranges or garbage: ignored, RFC 9110 14.2 */
  if (!has_a) { /* the last b bytes */
    if (b == 0 || size == 0)
      return -1;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return 1;
  }
  if (has_b && b < a)
    return 0;
  if (a >= size)
    return -1;
  *first = a;
  *last = (!has_b || b >= size) ? size - 1 : b;
  return 1;
}

int tw__server_listen_parse(const char *spec, char *host, size_t hostcap,
                            int *port, tw_err *err) {
  const char *colon, *h = spec;
  size_t hlen;
  if (spec == NULL || spec[0] == '\0')
    return tw_err_set(err, TW_EINVAL, "empty listen address");
  if (spec[0] == '[') {
    const char *close = strchr(spec, ']');
    if (close == NULL || close[1] != ':')
      return tw_err_set(err, TW_EINVAL,
                        "listen address '%s': expected [ADDRESS]:PORT", spec);
    h = spec + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(spec, ':');
    if (colon == NULL)
      return tw_err_set(err, TW_EINVAL,
                        "listen address '%s': expected HOST:PORT", spec);
    hlen = (size_t)(colon - spec);
    if (memchr(spec, ':', hlen) != NULL)
      return tw_err_set(err, TW_EINVAL,
                        "listen address '%s': put an IPv6 address in "
                        "brackets, [::1]:PORT",
                        spec);
  }
  if (hlen == 0 || hlen >= hostcap)
    return tw_err_set(err, TW_EINVAL, "listen address '%s': bad host", spec);
  const char *ps = colon + 1;
  uint64_t p;
  if (!read_u64(&ps, &p) || *ps != '\0' || p > 65535)
    return tw_err_set(err, TW_EINVAL,
                      "listen address '%s': the port is 0..65535", spec);
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return TW_OK;
}

bool tw__server_header_ok(const char *name, const char *value) {
  if (name == NULL || name[0] == '\0' || value == NULL)
    return false;
  for (const char *c = name; *c; c++)
    if (!(is_name_char(*c) || strchr("!#$%&'*+.^`|~", *c)))
      return false;
  for (const char *c = value; *c; c++)
    if (*c == '\r' || *c == '\n')
      return false;
  return true;
}
