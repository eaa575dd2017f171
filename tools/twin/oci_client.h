/*
 * oci_client.h - the client side of the OCI distribution API v1.1 for
 * `twin push` and `twin pull`: references, blob existence, monolithic
 * blob uploads, manifests up and down, blobs streamed down. The requests
 * go through http.h; the checks of names, tags and digests are the
 * registry library's own (twin/registry.h), so the CLI refuses locally
 * what the server would refuse.
 *
 * Thread safety: as http.h.
 */
#ifndef TWIN_CLI_OCI_CLIENT_H
#define TWIN_CLI_OCI_CLIENT_H

#include <stdbool.h>

#include "http.h"

/* A parsed "REGISTRY/REPO[:TAG|@DIGEST]". */
typedef struct cli_oci_ref {
  char registry[256];                   /* host[:port] */
  char repo[TW_REG_NAME_MAX + 1];       /* the repository name */
  char tag[TW_REG_TAG_MAX + 1];         /* "" when by digest */
  char digest[TW_STORE_DIGEST_LEN + 1]; /* "" when by tag */
  char base[300];                       /* "http[s]://REGISTRY" */
} cli_oci_ref;

/* Parses text. The first component must be a registry host (it has a '.'
 * or a ':', or is "localhost"), the rest a repository name; a reference
 * with neither tag nor digest means the tag "latest". plain_http makes
 * the base http:// instead of https://. TW_EINVAL naming text and what
 * is wrong. */
int cli_oci_ref_parse(const char *text, bool plain_http, cli_oci_ref *out,
                      tw_err *err);

/* Appends the start of a JSON object naming ref: {"registry":..,
 * "repository":..,"tag":TAG (null when tag is NULL or empty); the caller
 * adds its own members and the closing brace. */
int cli_oci_ref_json(tw_buf *b, const cli_oci_ref *ref, const char *tag);

/* HEAD of a blob: *exists true on 200, false on 404; other answers
 * fail. */
int cli_oci_blob_exists(cli_http *h, const cli_oci_ref *ref, const char *digest,
                        bool *exists, tw_err *err);

/* Uploads data[0..len) as blob digest: POST of an upload session, then
 * one PUT of the bytes to its Location with ?digest=. */
int cli_oci_blob_push(cli_http *h, const cli_oci_ref *ref, const char *digest,
                      const void *data, size_t len, tw_err *err);

/* PUT of an image manifest to reference (a tag). The registry's
 * Docker-Content-Digest, when it sends one, must be digest (TW_EDIGEST). */
int cli_oci_manifest_put(cli_http *h, const cli_oci_ref *ref,
                         const char *reference, const void *data, size_t len,
                         const char *digest, tw_err *err);

/* GET of the manifest ref names (its tag or digest), asking for an OCI
 * image manifest, at most TW_REG_MANIFEST_MAX bytes, into body (reset).
 * digest gets the manifest's sha256; it must equal the digest of a
 * reference by digest, and the registry's Docker-Content-Digest when it
 * sends one (TW_EDIGEST). */
int cli_oci_manifest_get(cli_http *h, const cli_oci_ref *ref, tw_buf *body,
                         char digest[TW_STORE_DIGEST_LEN + 1], tw_err *err);

/* GET of blob digest, following redirects, its bytes handed to sink. */
int cli_oci_blob_get(cli_http *h, const cli_oci_ref *ref, const char *digest,
                     cli_http_sink sink, void *ud, tw_err *err);

#endif /* TWIN_CLI_OCI_CLIENT_H */
