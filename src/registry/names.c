/*
 * names.c - repository names, tags, digests and references, checked by
 * the grammar of the OCI distribution spec before anything else sees
 * them.
 *
 * Invariant: a string these functions accept is safe as path components
 * under the data directory: names are runs of [a-z0-9] joined by '.',
 * '_', "__", runs of '-' and '/', so no component is empty, "." or "..",
 * starts with '.' or '_' (the registry's own directories start with '_'),
 * or holds '%', '\\' or a NUL; tags never start with '.' or '-'; digests
 * are lowercase hex.
 */
#include <string.h>

#include "registry_int.h"

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Printable form of s for a message: at most 80 bytes, non-printable bytes
 * shown as '?' (the name came from a network request). */
static void quote(const char *s, size_t len, char out[84]) {
  size_t n = len < 80 ? len : 80;
  for (size_t i = 0; i < n; i++)
    out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  if (len > 80) {
    memcpy(out + 80, "...", 3);
    n = 83;
  }
  out[n] = '\0';
}

int tw_reg_name_check(const char *name, size_t len, tw_err *err) {
  char q[84];
  quote(name, len, q);
  if (len == 0)
    return tw_err_set(err, TW_EINVAL, "an empty repository name");
  if (len > TW_REG_NAME_MAX)
    return tw_err_set(err, TW_EINVAL,
                      "repository name '%s': %zu bytes, at most %d", q, len,
                      TW_REG_NAME_MAX);
  /* A component: alnum+ (sep alnum+)*, sep = '.' | '_' | "__" | '-'+. */
  size_t i = 0;
  for (;;) {
    if (i == len || !is_lower_alnum(name[i]))
      return tw_err_set(
          err, TW_EINVAL,
          "repository name '%s': character %zu: a path component must start "
          "with a lowercase letter or digit",
          q, i + 1);
    while (i < len && is_lower_alnum(name[i]))
      i++;
    if (i == len)
      return TW_OK;
    char c = name[i];
    if (c == '/') {
      i++;
      continue;
    }
    size_t sep = i;
    if (c == '.') {
      i++;
    } else if (c == '_') {
      i += (i + 1 < len && name[i + 1] == '_') ? 2 : 1;
    } else if (c == '-') {
      while (i < len && name[i] == '-')
        i++;
    } else {
      return tw_err_set(err, TW_EINVAL,
                        "repository name '%s': character %zu is not allowed "
                        "(lowercase letters, digits, '.', '_', '-', '/')",
                        q, i + 1);
    }
    if (i == len || !is_lower_alnum(name[i]))
      return tw_err_set(err, TW_EINVAL,
                        "repository name '%s': character %zu: a separator "
                        "must be followed by a lowercase letter or digit",
                        q, sep + 1);
  }
}

static bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

int tw_reg_tag_check(const char *tag, size_t len, tw_err *err) {
  char q[84];
  quote(tag, len, q);
  if (len == 0)
    return tw_err_set(err, TW_EINVAL, "an empty tag");
  if (len > TW_REG_TAG_MAX)
    return tw_err_set(err, TW_EINVAL, "tag '%s': %zu bytes, at most %d", q, len,
                      TW_REG_TAG_MAX);
  if (tag[0] == '.' || tag[0] == '-')
    return tw_err_set(err, TW_EINVAL, "tag '%s' must not start with '%c'", q,
                      tag[0]);
  for (size_t i = 0; i < len; i++)
    if (!is_tag_char(tag[i]))
      return tw_err_set(err, TW_EINVAL,
                        "tag '%s': character %zu is not allowed (letters, "
                        "digits, '_', '.', '-')",
                        q, i + 1);
  return TW_OK;
}

int tw_reg_digest_check(const char *digest, size_t len, tw_err *err) {
  char q[84];
  quote(digest, len, q);
  if (memchr(digest, '\0', len) != NULL || len > 200)
    return tw_err_set(err, TW_EINVAL, "'%s' is not a digest", q);
  char buf[201];
  memcpy(buf, digest, len);
  buf[len] = '\0';
  return tw_store_digest_check(buf, err);
}

int tw_reg_blob_digest_check(const char *digest, size_t len, tw_err *err) {
  char q[84];
  quote(digest, len, q);
  if (memchr(digest, '\0', len) != NULL || len > 200)
    return tw_err_set(err, TW_EINVAL, "'%s' is not a digest", q);
  char buf[201];
  memcpy(buf, digest, len);
  buf[len] = '\0';
  return tw_store_digest_check_any(buf, err);
}

/* A tag never holds ':', so one colon makes a digest, checked by
 * digest_check. */
static int reference_check(const char *ref, size_t len, bool *is_digest,
                           int (*digest_check)(const char *, size_t, tw_err *),
                           tw_err *err) {
  if (memchr(ref, ':', len) != NULL) {
    *is_digest = true;
    return digest_check(ref, len, err);
  }
  *is_digest = false;
  return tw_reg_tag_check(ref, len, err);
}

int tw_reg_reference_check(const char *ref, size_t len, bool *is_digest,
                           tw_err *err) {
  return reference_check(ref, len, is_digest, tw_reg_digest_check, err);
}

int tw_reg_manifest_ref_check(const char *ref, size_t len, bool *is_digest,
                              tw_err *err) {
  return reference_check(ref, len, is_digest, tw_reg_blob_digest_check, err);
}
