/*
 * twin/schema_registry.h - a client of the Confluent Schema Registry REST
 * API (Confluent's server, Apicurio, Karapace, or `twin serve`), and a
 * cache of stream bindings built from the schemas it fetches.
 *
 * Records in Confluent's wire format carry a 32-bit schema id
 * (twin/stream.h, tw_stream_wire_split); the client resolves an id to its
 * schema text once and keeps it, since a registry never changes the schema
 * behind an id. tw_stream_bindings_get ties that to the stream schema
 * enforcement: one binding per (stream schema, id), built on first use
 * with tw_stream_binding_new.
 *
 * Errors: an unknown id or subject (the registry's 40401, 40403) is
 * TW_ENOENT naming it; a schema the registry refuses (42201) or finds
 * incompatible (409) is TW_EVALIDATE with the registry's message; 401 and
 * 403 are TW_EAUTH; a network failure is TW_ECONN (TW_ETIMEDOUT for the
 * time limit) naming the URL; a response larger than max_response is
 * TW_ELIMIT; one that is not the API's JSON is TW_EPROTO; other registry
 * errors TW_EIO with its error code and message.
 *
 * Thread safety: a client and a binding cache may be used by any number
 * of threads at once (each call uses its own connection; the caches are
 * guarded by mutexes). Pointers they return live as long as the object.
 */
#ifndef TWIN_SCHEMA_REGISTRY_H
#define TWIN_SCHEMA_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "twin/common.h"
#include "twin/error.h"
#include "twin/stream.h"

TW_EXTERN_C_BEGIN

typedef struct tw_sr_client tw_sr_client;

typedef struct tw_sr_client_opts {
  unsigned timeout_ms;    /* each request, connecting included; 0: 10000 */
  const char *basic_auth; /* "USER:PASSWORD" for HTTP basic auth, or NULL */
  const char *ca_file;    /* PEM bundle to verify https with; NULL: system */
  size_t max_response;    /* largest response body; 0: 1 MiB */
} tw_sr_client_opts;

/* A client of the registry at url ("http://HOST:PORT" or https, with an
 * optional path prefix; a trailing '/' is ignored). Nothing is sent yet.
 * opts may be NULL. TW_EINVAL for a URL that is not http(s). */
TW_API int tw_sr_client_new(const char *url, const tw_sr_client_opts *opts,
                            tw_sr_client **out, tw_err *err);
/* NULL is a no-op. Invalidates every pointer the client returned. */
TW_API void tw_sr_client_free(tw_sr_client *c);

/* The schema of id: *type ("JSON", "AVRO" or "PROTOBUF") and *text
 * (NUL-terminated), both borrowed from the client's cache, which asks the
 * registry once per id. Either output may be NULL. */
TW_API int tw_sr_get_schema(tw_sr_client *c, uint32_t id, const char **type,
                            const char **text, tw_err *err);

/* Registers text (type "JSON", "AVRO" or "PROTOBUF") under subject and
 * writes its global id to *id: the existing id when the subject already
 * has that schema. TW_EVALIDATE when the registry refuses it. */
TW_API int tw_sr_register(tw_sr_client *c, const char *subject,
                          const char *type, const char *text, uint32_t *id,
                          tw_err *err);

/* The latest version of subject: its schema's *id, its *version and the
 * schema *text (borrowed from the id cache). Any output may be NULL. */
TW_API int tw_sr_latest(tw_sr_client *c, const char *subject, uint32_t *id,
                        int64_t *version, const char **text, tw_err *err);

/* --- Bindings by schema id ------------------------------------------------ */

typedef struct tw_stream_bindings tw_stream_bindings;

typedef struct tw_stream_bindings_opts {
  /* How long a failure (unknown id, unusable schema, registry down) is
   * answered from the cache before the registry is asked again; 0: 5000. */
  unsigned failure_ttl_ms;
  /* Most failures remembered; the oldest is forgotten first. 0: 1024. */
  size_t max_failures;
} tw_stream_bindings_opts;

/* opts may be NULL. */
TW_API int tw_stream_bindings_new(const tw_stream_bindings_opts *opts,
                                  tw_stream_bindings **out, tw_err *err);
/* NULL is a no-op. Frees every binding the cache built. */
TW_API void tw_stream_bindings_free(tw_stream_bindings *cache);

/* The binding of schema id (fetched with sr) to s: built once per (s, id)
 * with tw_stream_binding_new (JSON Schema) and kept; *out is borrowed from
 * the cache. A failure names the id: TW_ENOENT for an id the registry does
 * not know, TW_ENOTSUP for a schema that is not JSON Schema, the errors of
 * tw_stream_binding_new for one that does not fit s, the client's errors
 * otherwise; it is remembered for failure_ttl_ms and returned again (the
 * same code and message) without asking the registry, so a stream of bad
 * ids costs one request per id and period. The caller dead-letters the
 * record. s must outlive the cache's use of it. */
TW_API int tw_stream_bindings_get(tw_stream_bindings *cache, tw_sr_client *sr,
                                  const tw_stream_schema *s, uint32_t id,
                                  const tw_stream_binding **out, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_SCHEMA_REGISTRY_H */
