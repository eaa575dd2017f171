/*
 * oci_client.c - OCI distribution requests for `twin push` and `twin pull`
 * (see oci_client.h).
 *
 * Blobs go up as the spec's monolithic upload, POST then PUT, which every
 * registry accepts (a single POST with ?digest= is optional in the spec).
 * The Location of an upload session may be absolute, an absolute path or
 * relative, and may carry a query of its own (the upload session's state): it
 * is resolved against the POST's URL and the digest appended to its query.
 */
#include <string.h>

#include "oci_client.h"

static const char *const octet_stream[] = {
    "Content-Type: application/octet-stream", NULL};

static bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
         c == '[' || c == ']' || c == '_';
}

int cli_oci_ref_parse(const char *text, bool plain_http, cli_oci_ref *out,
                      tw_err *err) {
  cli_oci_ref r;
  memset(&r, 0, sizeof r);
  const char *slash = strchr(text, '/');
  if (slash == NULL || slash == text || slash[1] == '\0')
    return tw_err_set(err, TW_EINVAL,
                      "'%.300s': not a reference: expected "
                      "REGISTRY/REPOSITORY[:TAG|@DIGEST]",
                      text);
  size_t hlen = (size_t)(slash - text);
  bool host_like = hlen == 9 && memcmp(text, "localhost", 9) == 0;
  for (size_t i = 0; i < hlen; i++) {
    if (!host_char(text[i]) || hlen >= sizeof r.registry)
      return tw_err_set(err, TW_EINVAL,
                        "'%.300s': '%.*s' is not a registry host", text,
                        (int)(hlen < 200 ? hlen : 200), text);
    host_like |= text[i] == '.' || text[i] == ':';
  }
  if (!host_like)
    return tw_err_set(err, TW_EINVAL,
                      "'%.300s': no registry: a reference starts with the "
                      "registry's host, e.g. localhost:8080/%.200s",
                      text, text);
  memcpy(r.registry, text, hlen);

  const char *name = slash + 1;
  const char *name_end = name + strlen(name);
  tw_err e;
  tw_err_init(&e);
  const char *at = strchr(name, '@');
  if (at != NULL) {
    if (tw_reg_digest_check(at + 1, strlen(at + 1), &e) != TW_OK)
      return tw_err_set(err, TW_EINVAL, "'%.300s': %s", text, e.msg);
    memcpy(r.digest, at + 1, TW_STORE_DIGEST_LEN + 1);
    name_end = at;
  }
  /* Names have no ':', so a ':' after the host starts the tag. */
  const char *colon = memchr(name, ':', (size_t)(name_end - name));
  if (colon != NULL) {
    size_t tlen = (size_t)(name_end - colon - 1);
    if (tw_reg_tag_check(colon + 1, tlen, &e) != TW_OK)
      return tw_err_set(err, TW_EINVAL, "'%.300s': %s", text, e.msg);
    memcpy(r.tag, colon + 1, tlen);
    name_end = colon;
  } else if (at == NULL) {
    memcpy(r.tag, "latest", sizeof "latest");
  }
  if (tw_reg_name_check(name, (size_t)(name_end - name), &e) != TW_OK)
    return tw_err_set(err, TW_EINVAL, "'%.300s': %s", text, e.msg);
  memcpy(r.repo, name, (size_t)(name_end - name));
  (void)snprintf(r.base, sizeof r.base, "%s://%s",
                 plain_http ? "http" : "https", r.registry);
  *out = r;
  return TW_OK;
}

/* base + "/v2/" + repo + "/" + kind + "/" + ref, into url (reset). */
static int v2_url(const cli_oci_ref *ref, const char *kind, const char *what,
                  tw_buf *url, tw_err *err) {
  tw_buf_reset(url);
  if (tw_buf_printf(url, "%s/v2/%s/%s/%s", ref->base, ref->repo, kind, what) !=
      TW_OK)
    return tw_err_set(err, TW_ENOMEM, "out of memory");
  return TW_OK;
}

/* The registry's Docker-Content-Digest, when it sends one, must be
 * digest. */
static int check_digest_header(const cli_http_resp *resp, const char *digest,
                               const char *what, tw_err *err) {
  tw_buf v = TW_BUF_INIT;
  int rc = TW_OK;
  if (cli_http_header(resp, "Docker-Content-Digest", &v) &&
      strcmp(v.data, digest) != 0)
    rc = tw_err_set(err, TW_EDIGEST,
                    "%s: the registry says its digest is %.100s, not %s", what,
                    v.data, digest);
  tw_buf_fini(&v);
  return rc;
}

int cli_oci_blob_exists(cli_http *h, const cli_oci_ref *ref, const char *digest,
                        bool *exists, tw_err *err) {
  tw_buf url = TW_BUF_INIT;
  cli_http_resp resp;
  cli_http_resp_init(&resp);
  cli_http_req req;
  int rc = v2_url(ref, "blobs", digest, &url, err);
  cli_http_req_init(&req, "HEAD", url.data);
  if (rc == TW_OK)
    rc = cli_http_do(h, &req, &resp, err);
  if (rc == TW_OK) {
    if (resp.status == 200)
      *exists = true;
    else if (resp.status == 404)
      *exists = false;
    else
      rc = cli_http_fail(&req, &resp, NULL, err);
  }
  cli_http_resp_fini(&resp);
  tw_buf_fini(&url);
  return rc;
}

int cli_oci_blob_push(cli_http *h, const cli_oci_ref *ref, const char *digest,
                      const void *data, size_t len, tw_err *err) {
  tw_buf url = TW_BUF_INIT, loc = TW_BUF_INIT, put = TW_BUF_INIT;
  cli_http_resp resp;
  cli_http_resp_init(&resp);
  cli_http_req req;
  char what[1024];
  (void)snprintf(what, sizeof what, "upload of %s to %s/%s", digest,
                 ref->registry, ref->repo);
  int rc = v2_url(ref, "blobs", "uploads/", &url, err);
  cli_http_req_init(&req, "POST", url.data);
  req.headers = octet_stream;
  if (rc == TW_OK)
    rc = cli_http_do(h, &req, &resp, err);
  if (rc == TW_OK && resp.status != 202)
    rc = cli_http_fail(&req, &resp, what, err);
  if (rc == TW_OK && !cli_http_header(&resp, "Location", &loc))
    rc = tw_err_set(
        err, TW_EPROTO,
        "%s: the registry started an upload session without a Location", what);
  if (rc == TW_OK)
    rc = cli_http_resolve(url.data, loc.data, &put, err);
  if (rc == TW_OK && cli_http_add_query(&put, "digest", digest) != TW_OK)
    rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  if (rc == TW_OK) {
    cli_http_req_init(&req, "PUT", put.data);
    req.headers = octet_stream;
    req.body = data;
    req.body_len = len;
    rc = cli_http_do(h, &req, &resp, err);
  }
  if (rc == TW_OK && (resp.status < 200 || resp.status >= 300))
    rc = cli_http_fail(&req, &resp, what, err);
  if (rc == TW_OK)
    rc = check_digest_header(&resp, digest, what, err);
  cli_http_resp_fini(&resp);
  tw_buf_fini(&url);
  tw_buf_fini(&loc);
  tw_buf_fini(&put);
  return rc;
}

int cli_oci_ref_json(tw_buf *b, const cli_oci_ref *ref, const char *tag) {
  int rc = tw_buf_puts(b, "{\"registry\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, ref->registry, strlen(ref->registry));
  if (rc == TW_OK)
    rc = tw_buf_puts(b, ",\"repository\":");
  if (rc == TW_OK)
    rc = tw_buf_put_json_string(b, ref->repo, strlen(ref->repo));
  if (rc == TW_OK)
    rc = tw_buf_puts(b, ",\"tag\":");
  if (rc == TW_OK)
    rc = tag != NULL && tag[0] != '\0'
             ? tw_buf_put_json_string(b, tag, strlen(tag))
             : tw_buf_puts(b, "null");
  return rc;
}

int cli_oci_manifest_put(cli_http *h, const cli_oci_ref *ref,
                         const char *reference, const void *data, size_t len,
                         const char *digest, tw_err *err) {
  static const char *const headers[] = {"Content-Type: " TW_REG_MT_MANIFEST,
                                        NULL};
  tw_buf url = TW_BUF_INIT;
  cli_http_resp resp;
  cli_http_resp_init(&resp);
  cli_http_req req;
  char what[1024];
  (void)snprintf(what, sizeof what, "push of the manifest to %s/%s:%s",
                 ref->registry, ref->repo, reference);
  int rc = v2_url(ref, "manifests", reference, &url, err);
  cli_http_req_init(&req, "PUT", url.data);
  req.headers = headers;
  req.body = data;
  req.body_len = len;
  if (rc == TW_OK)
    rc = cli_http_do(h, &req, &resp, err);
  if (rc == TW_OK && (resp.status < 200 || resp.status >= 300))
    rc = cli_http_fail(&req, &resp, what, err);
  if (rc == TW_OK)
    rc = check_digest_header(&resp, digest, what, err);
  cli_http_resp_fini(&resp);
  tw_buf_fini(&url);
  return rc;
}

int cli_oci_manifest_get(cli_http *h, const cli_oci_ref *ref, tw_buf *body,
                         char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err) {
  static const char *const headers[] = {"Accept: " TW_REG_MT_MANIFEST, NULL};
  const char *reference = ref->digest[0] != '\0' ? ref->digest : ref->tag;
  tw_buf url = TW_BUF_INIT;
  cli_http_resp resp;
  cli_http_resp_init(&resp);
  cli_http_req req;
  char what[1024];
  (void)snprintf(what, sizeof what, "%s/%s%s%s", ref->registry, ref->repo,
                 ref->digest[0] != '\0' ? "@" : ":", reference);
  int rc = v2_url(ref, "manifests", reference, &url, err);
  cli_http_req_init(&req, "GET", url.data);
  req.headers = headers;
  req.max_body = TW_REG_MANIFEST_MAX;
  if (rc == TW_OK)
    rc = cli_http_do(h, &req, &resp, err);
  if (rc == TW_OK && resp.status != 200)
    rc = cli_http_fail(&req, &resp, what, err);
  char d[TW_STORE_DIGEST_LEN + 1] = "sha256:";
  if (rc == TW_OK && tw_sha256_hex(resp.body.data != NULL ? resp.body.data : "",
                                   resp.body.len, d + 7) != TW_OK)
    rc = tw_err_set(err, TW_EINTERNAL, "%s: cannot hash the manifest", what);
  if (rc == TW_OK && ref->digest[0] != '\0' && strcmp(d, ref->digest) != 0)
    rc = tw_err_set(err, TW_EDIGEST,
                    "%s: the registry sent a manifest that hashes to %s", what,
                    d);
  if (rc == TW_OK)
    rc = check_digest_header(&resp, d, what, err);
  if (rc == TW_OK) {
    tw_buf_reset(body);
    if (resp.body.len > 0 &&
        tw_buf_append(body, resp.body.data, resp.body.len) != TW_OK)
      rc = tw_err_set(err, TW_ENOMEM, "out of memory");
  }
  if (rc == TW_OK)
    memcpy(digest, d, sizeof d);
  cli_http_resp_fini(&resp);
  tw_buf_fini(&url);
  return rc;
}

int cli_oci_blob_get(cli_http *h, const cli_oci_ref *ref, const char *digest,
                     cli_http_sink sink, void *ud, tw_err *err) {
  tw_buf url = TW_BUF_INIT;
  cli_http_resp resp;
  cli_http_resp_init(&resp);
  cli_http_req req;
  char what[1024];
  (void)snprintf(what, sizeof what, "%s/%s blob %s", ref->registry, ref->repo,
                 digest);
  int rc = v2_url(ref, "blobs", digest, &url, err);
  cli_http_req_init(&req, "GET", url.data);
  req.sink = sink;
  req.sink_ud = ud;
  req.follow = true;
  if (rc == TW_OK)
    rc = cli_http_do(h, &req, &resp, err);
  if (rc == TW_OK && resp.status != 200)
    rc = cli_http_fail(&req, &resp, what, err);
  cli_http_resp_fini(&resp);
  tw_buf_fini(&url);
  return rc;
}
