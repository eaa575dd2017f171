/*
 * metrics.c - Prometheus metrics registry and its text exposition.
 *
 * A registry owns an array of families sorted by name; each family owns an
 * array of children sorted by their label values. Both arrays, and every
 * string hanging off them, are guarded by the registry mutex. Nothing is
 * removed before tw_metrics_free, and children are allocated one by one, so
 * a child pointer handed out stays valid for the registry's whole life even
 * while the arrays that point to it grow.
 *
 * The numbers inside a child are updated without the lock. A counter's or
 * gauge's value and a histogram's sum are doubles kept as their bit pattern
 * in an atomic uint64 and changed with a compare-and-swap loop; histogram
 * buckets are atomic per-bucket (not cumulative) counts. Rendering
 * accumulates the buckets and reports their total as _count, so a scrape
 * always shows _count equal to the +Inf bucket even while observations race
 * with it.
 *
 * A family without labels gets its only child when it is registered. The
 * shorthands therefore never allocate once the family exists, and an
 * unlabelled metric is exported as 0 before it is first touched.
 *
 * Every allocating path builds the new object completely before linking it
 * in, so a failed allocation leaves the registry as it was and leaks
 * nothing.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_int.h"
#include "twin/alloc.h"
#include "twin/metrics.h"

struct tw_metric {
  tw_metric_family *fam;
  char **values;              /* fam->nlabels strings, in this block */
  _Atomic uint64_t bits;      /* value (counter, gauge) or sum (histogram) */
  _Atomic uint64_t buckets[]; /* histogram: nbounds + 1, the last is +Inf */
};

struct tw_metric_family {
  tw_metrics *reg;
  tw_metric_type type;
  char *name;
  char *help;
  char **labels;
  size_t nlabels;
  double *bounds;
  size_t nbounds;
  double (*fn)(void *ud); /* callback gauge, or NULL */
  void *ud;
  tw_metric **children; /* sorted by label values */
  size_t nchildren;
  size_t cap;
};

struct tw_metrics {
  pthread_mutex_t mu;
  tw_metric_family **fams; /* sorted by name */
  size_t nfams;
  size_t cap;
};

/* Longest number fmt_double writes, with its terminator: "%.17g" of a
 * double needs at most 24 bytes. */
#define NUM_MAX 32

static const char *const histogram_suffixes[] = {"_bucket", "_sum", "_count"};

/* --- Doubles in atomics -------------------------------------------------- */

static uint64_t double_bits(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

static double bits_double(uint64_t u) {
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

static double load_double(const _Atomic uint64_t *p) {
  return bits_double(atomic_load_explicit(p, memory_order_relaxed));
}

/* Adds v to the double stored in *p. The values are independent of any
 * other memory, so relaxed ordering is enough; the loop retries only when
 * another thread changed *p in between. */
static void add_double(_Atomic uint64_t *p, double v) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(
      p, &old, double_bits(bits_double(old) + v), memory_order_relaxed,
      memory_order_relaxed)) {
  }
}

/* --- Validation ---------------------------------------------------------- */

static bool is_alpha_(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names the same without
 * the colon. The checks are spelled out rather than using <ctype.h>, whose
 * answers depend on the locale. */
static bool valid_name(const char *s, bool colon) {
  if (*s == '\0')
    return false;
  for (size_t i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    if (!is_alpha_(c) && !(colon && c == ':') && !(i > 0 && is_digit(c)))
      return false;
  }
  return true;
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static const char *type_name(tw_metric_type type) {
  switch (type) {
  case TW_METRIC_COUNTER:
    return "counter";
  case TW_METRIC_GAUGE:
    return "gauge";
  case TW_METRIC_HISTOGRAM:
    return "histogram";
  }
  return "unknown";
}

static int check_labels(const char *name, tw_metric_type type,
                        const char *const *labels, size_t nlabels,
                        tw_err *err) {
  if (nlabels > 0 && labels == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "metrics: '%s': %zu label names but the array is NULL",
                      name, nlabels);
  for (size_t i = 0; i < nlabels; i++) {
    const char *l = labels[i];
    if (l == NULL)
      return tw_err_set(err, TW_EINVAL, "metrics: '%s': label name %zu is NULL",
                        name, i);
    if (!valid_name(l, false))
      return tw_err_set(err, TW_EINVAL,
                        "metrics: '%s': invalid label name '%s' (must match "
                        "[a-zA-Z_][a-zA-Z0-9_]*)",
                        name, l);
    if (strncmp(l, "__", 2) == 0)
      return tw_err_set(err, TW_EINVAL,
                        "metrics: '%s': label name '%s' is reserved (starts "
                        "with \"__\")",
                        name, l);
    if (type == TW_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
      return tw_err_set(err, TW_EINVAL,
                        "metrics: histogram '%s' cannot use the label \"le\"",
                        name);
    for (size_t j = 0; j < i; j++)
      if (strcmp(labels[j], l) == 0)
        return tw_err_set(err, TW_EINVAL,
                          "metrics: '%s': label name '%s' appears twice", name,
                          l);
  }
  return TW_OK;
}

static int check_bounds(const char *name, tw_metric_type type,
                        const double *bounds, size_t nbounds, tw_err *err) {
  if (type != TW_METRIC_HISTOGRAM) {
    if (bounds != NULL || nbounds != 0)
      return tw_err_set(err, TW_EINVAL,
                        "metrics: %s '%s' takes no bucket bounds",
                        type_name(type), name);
    return TW_OK;
  }
  if (bounds == NULL || nbounds == 0)
    return tw_err_set(err, TW_EINVAL,
                      "metrics: histogram '%s' needs at least one bucket bound",
                      name);
  for (size_t i = 0; i < nbounds; i++) {
    if (!isfinite(bounds[i]))
      return tw_err_set(err, TW_EINVAL,
                        "metrics: histogram '%s': bound %zu is not finite",
                        name, i);
    if (i > 0 && !(bounds[i] > bounds[i - 1]))
      return tw_err_set(err, TW_EINVAL,
                        "metrics: histogram '%s': bounds must be strictly "
                        "increasing (bound %zu is %g after %g)",
                        name, i, bounds[i], bounds[i - 1]);
  }
  return TW_OK;
}

/* Checks everything about a family that does not depend on the registry. */
static int check_family(tw_metric_type type, const char *name, const char *help,
                        const char *const *labels, size_t nlabels,
                        const double *bounds, size_t nbounds, tw_err *err) {
  if (type != TW_METRIC_COUNTER && type != TW_METRIC_GAUGE &&
      type != TW_METRIC_HISTOGRAM)
    return tw_err_set(err, TW_EINVAL, "metrics: unknown metric type %d",
                      (int)type);
  if (name == NULL)
    return tw_err_set(err, TW_EINVAL, "metrics: metric name is NULL");
  if (!valid_name(name, true))
    return tw_err_set(err, TW_EINVAL,
                      "metrics: invalid metric name '%s' (must match "
                      "[a-zA-Z_:][a-zA-Z0-9_:]*)",
                      name);
  if (type == TW_METRIC_COUNTER && !has_suffix(name, "_total"))
    return tw_err_set(err, TW_EINVAL,
                      "metrics: counter '%s' must end in \"_total\"", name);
  if (help == NULL || *help == '\0')
    return tw_err_set(err, TW_EINVAL, "metrics: '%s' needs help text", name);
  if (!tw__utf8_valid(help, strlen(help)))
    return tw_err_set(err, TW_EINVAL,
                      "metrics: '%s': help text is not valid UTF-8", name);
  int rc = check_labels(name, type, labels, nlabels, err);
  if (rc == TW_OK)
    rc = check_bounds(name, type, bounds, nbounds, err);
  return rc;
}

/* --- Building and freeing ------------------------------------------------ */

/* Returns arr with room for one more than n elements of size bytes, growing
 * it (and *cap) if needed; NULL on allocation failure, leaving arr as is. */
static void *grow(void *arr, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return arr;
  size_t ncap = *cap != 0 ? *cap * 2 : 4;
  void *p = tw_reallocarray(arr, ncap, size);
  if (p != NULL)
    *cap = ncap;
  return p;
}

/* One block holds the child, its buckets, the pointers to its label values
 * and the values themselves, so a child costs a single allocation. */
static tw_metric *child_new(tw_metric_family *f, const char *const *values) {
  size_t nb = f->type == TW_METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
  size_t head = offsetof(tw_metric, buckets) + nb * sizeof(_Atomic uint64_t);
  if (head < sizeof(tw_metric))
    head = sizeof(tw_metric);
  head = (head + alignof(char *) - 1) / alignof(char *) * alignof(char *);
  size_t size = head + f->nlabels * sizeof(char *);
  for (size_t i = 0; i < f->nlabels; i++) {
    size_t len = strlen(values[i]) + 1;
    if (len > SIZE_MAX - size)
      return NULL;
    size += len;
  }
  unsigned char *block = tw_alloc(size);
  if (block == NULL)
    return NULL;
  tw_metric *c = (tw_metric *)block;
  c->fam = f;
  atomic_init(&c->bits, double_bits(0.0));
  for (size_t i = 0; i < nb; i++)
    atomic_init(&c->buckets[i], 0);
  c->values = (char **)(block + head);
  char *s = (char *)(c->values + f->nlabels);
  for (size_t i = 0; i < f->nlabels; i++) {
    size_t len = strlen(values[i]) + 1;
    memcpy(s, values[i], len);
    c->values[i] = s;
    s += len;
  }
  return c;
}

static void family_free(tw_metric_family *f) {
  if (f == NULL)
    return;
  /* A family that failed half-built has NULL arrays; the checks say so to
   * readers (and to the static analyser, which cannot see tw_calloc). */
  if (f->children != NULL)
    for (size_t i = 0; i < f->nchildren; i++)
      tw_free(f->children[i]);
  tw_free(f->children);
  if (f->labels != NULL)
    for (size_t i = 0; i < f->nlabels; i++)
      tw_free(f->labels[i]);
  tw_free(f->labels);
  tw_free(f->bounds);
  tw_free(f->help);
  tw_free(f->name);
  tw_free(f);
}

static tw_metric_family *family_new(tw_metrics *m, tw_metric_type type,
                                    const char *name, const char *help,
                                    const char *const *labels, size_t nlabels,
                                    const double *bounds, size_t nbounds,
                                    double (*fn)(void *), void *ud) {
  tw_metric_family *f = tw_calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->reg = m;
  f->type = type;
  f->nlabels = nlabels;
  f->nbounds = nbounds;
  f->fn = fn;
  f->ud = ud;
  f->name = tw_strdup(name);
  f->help = tw_strdup(help);
  if (f->name == NULL || f->help == NULL)
    goto fail;
  if (nlabels > 0) {
    f->labels = tw_calloc(nlabels, sizeof *f->labels);
    if (f->labels == NULL)
      goto fail;
    for (size_t i = 0; i < nlabels; i++)
      if ((f->labels[i] = tw_strdup(labels[i])) == NULL)
        goto fail;
  }
  if (nbounds > 0) {
    f->bounds = tw_calloc(nbounds, sizeof *f->bounds);
    if (f->bounds == NULL)
      goto fail;
    memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
  }
  if (nlabels == 0) {
    f->children = tw_alloc(sizeof(tw_metric *));
    if (f->children == NULL)
      goto fail;
    f->cap = 1;
    if ((f->children[0] = child_new(f, NULL)) == NULL)
      goto fail;
    f->nchildren = 1;
  }
  return f;
fail:
  family_free(f);
  return NULL;
}

int tw_metrics_new(tw_metrics **out, tw_err *err) {
  assert(out != NULL);
  tw_metrics *m = tw_calloc(1, sizeof *m);
  if (m == NULL)
    return tw_err_set(err, TW_ENOMEM, "metrics: out of memory");
  int sys = pthread_mutex_init(&m->mu, NULL);
  if (sys != 0) {
    tw_free(m);
    return tw_err_sys(err, sys, "metrics: cannot create the registry mutex");
  }
  *out = m;
  return TW_OK;
}

void tw_metrics_free(tw_metrics *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->nfams; i++)
    family_free(m->fams[i]);
  tw_free(m->fams);
  pthread_mutex_destroy(&m->mu);
  tw_free(m);
}

/* --- Registration -------------------------------------------------------- */

/* Binary search by name. Returns the family, or NULL with *pos set to where
 * it would be inserted. Called with the registry locked. */
static tw_metric_family *find_family(const tw_metrics *m, const char *name,
                                     size_t *pos) {
  size_t lo = 0, hi = m->nfams;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->fams[mid]->name, name);
    if (c == 0)
      return m->fams[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo;
  return NULL;
}

/* True if full is stem followed by one of a histogram's series suffixes. */
static bool is_histogram_series(const char *full, const char *stem) {
  size_t n = strlen(stem);
  if (strncmp(full, stem, n) != 0)
    return false;
  for (size_t i = 0; i < sizeof histogram_suffixes / sizeof(char *); i++)
    if (strcmp(full + n, histogram_suffixes[i]) == 0)
      return true;
  return false;
}

/* A histogram "x" also writes x_bucket, x_sum and x_count; a family with one
 * of those names would make the exposition ambiguous. Returns TW_EEXIST with
 * a message if name would clash. Called with the registry locked. */
static int check_clash(const tw_metrics *m, tw_metric_type type,
                       const char *name, tw_err *err) {
  for (size_t i = 0; i < m->nfams; i++) {
    const tw_metric_family *f = m->fams[i];
    if (f->type == TW_METRIC_HISTOGRAM && is_histogram_series(name, f->name))
      return tw_err_set(err, TW_EEXIST,
                        "metrics: '%s' clashes with a series of histogram "
                        "'%s'",
                        name, f->name);
    if (type == TW_METRIC_HISTOGRAM && is_histogram_series(f->name, name))
      return tw_err_set(err, TW_EEXIST,
                        "metrics: histogram '%s' would write a series named "
                        "'%s', which is already registered",
                        name, f->name);
  }
  return TW_OK;
}

static bool same_family(const tw_metric_family *f, tw_metric_type type,
                        const char *help, const char *const *labels,
                        size_t nlabels, const double *bounds, size_t nbounds,
                        double (*fn)(void *), void *ud) {
  if (f->type != type || f->fn != fn || f->ud != ud ||
      strcmp(f->help, help) != 0 || f->nlabels != nlabels ||
      f->nbounds != nbounds)
    return false;
  for (size_t i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], labels[i]) != 0)
      return false;
  for (size_t i = 0; i < nbounds; i++)
    if (f->bounds[i] != bounds[i])
      return false;
  return true;
}

/* Finds or adds a family whose arguments check_family has accepted. */
static int register_family(tw_metrics *m, tw_metric_type type, const char *name,
                           const char *help, const char *const *labels,
                           size_t nlabels, const double *bounds, size_t nbounds,
                           double (*fn)(void *), void *ud,
                           tw_metric_family **out, tw_err *err) {
  int rc = TW_OK;
  size_t pos = 0;
  pthread_mutex_lock(&m->mu);
  tw_metric_family *f = find_family(m, name, &pos);
  if (f != NULL) {
    if (same_family(f, type, help, labels, nlabels, bounds, nbounds, fn, ud))
      *out = f;
    else if (f->type != type || (f->fn != NULL) != (fn != NULL))
      rc = tw_err_set(err, TW_EEXIST,
                      "metrics: '%s' is already registered as a %s%s", name,
                      f->fn != NULL ? "callback " : "", type_name(f->type));
    else
      rc = tw_err_set(err, TW_EEXIST,
                      "metrics: '%s' is already registered with a different "
                      "help text, callback, labels or buckets",
                      name);
  } else if ((rc = check_clash(m, type, name, err)) != TW_OK) {
    /* Nothing to add. */
  } else {
    /* The family first, then room for it: growing the array is the last
     * step that can fail, and a bigger array is harmless to keep. */
    f = family_new(m, type, name, help, labels, nlabels, bounds, nbounds, fn,
                   ud);
    tw_metric_family **fams = NULL;
    if (f != NULL)
      fams = grow(m->fams, &m->cap, m->nfams, sizeof(tw_metric_family *));
    if (fams == NULL) {
      family_free(f);
      rc = tw_err_set(err, TW_ENOMEM, "metrics: out of memory registering '%s'",
                      name);
    } else {
      m->fams = fams;
      memmove(fams + pos + 1, fams + pos,
              (m->nfams - pos) * sizeof(tw_metric_family *));
      fams[pos] = f;
      m->nfams++;
      *out = f;
    }
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

int tw_metrics_family(tw_metrics *m, tw_metric_type type, const char *name,
                      const char *help, const char *const *label_names,
                      size_t nlabels, const double *bounds, size_t nbounds,
                      tw_metric_family **out, tw_err *err) {
  assert(m != NULL && out != NULL);
  int rc = check_family(type, name, help, label_names, nlabels, bounds, nbounds,
                        err);
  if (rc != TW_OK)
    return rc;
  return register_family(m, type, name, help, label_names, nlabels, bounds,
                         nbounds, NULL, NULL, out, err);
}

/* The label-less family's only child was made with the family and never
 * changes, so it can be read without the lock. */
static int only_child(tw_metrics *m, tw_metric_type type, const char *name,
                      const char *help, const double *bounds, size_t nbounds,
                      tw_metric **out, tw_err *err) {
  assert(out != NULL);
  tw_metric_family *f;
  int rc =
      tw_metrics_family(m, type, name, help, NULL, 0, bounds, nbounds, &f, err);
  if (rc == TW_OK)
    *out = f->children[0];
  return rc;
}

int tw_metrics_counter(tw_metrics *m, const char *name, const char *help,
                       tw_metric **out, tw_err *err) {
  return only_child(m, TW_METRIC_COUNTER, name, help, NULL, 0, out, err);
}

int tw_metrics_gauge(tw_metrics *m, const char *name, const char *help,
                     tw_metric **out, tw_err *err) {
  return only_child(m, TW_METRIC_GAUGE, name, help, NULL, 0, out, err);
}

int tw_metrics_histogram(tw_metrics *m, const char *name, const char *help,
                         const double *bounds, size_t nbounds, tw_metric **out,
                         tw_err *err) {
  return only_child(m, TW_METRIC_HISTOGRAM, name, help, bounds, nbounds, out,
                    err);
}

/* A family whose value is read from fn at render time (no labels). */
static int register_callback(tw_metrics *m, tw_metric_type type,
                             const char *name, const char *help,
                             double (*fn)(void *ud), void *ud, tw_err *err) {
  assert(m != NULL);
  int rc = check_family(type, name, help, NULL, 0, NULL, 0, err);
  if (rc != TW_OK)
    return rc;
  if (fn == NULL)
    return tw_err_set(err, TW_EINVAL, "metrics: %s '%s': callback is NULL",
                      type_name(type), name);
  tw_metric_family *f;
  return register_family(m, type, name, help, NULL, 0, NULL, 0, fn, ud, &f,
                         err);
}

int tw_metrics_gauge_fn(tw_metrics *m, const char *name, const char *help,
                        double (*fn)(void *ud), void *ud, tw_err *err) {
  return register_callback(m, TW_METRIC_GAUGE, name, help, fn, ud, err);
}

int tw_metrics_counter_fn(tw_metrics *m, const char *name, const char *help,
                          double (*fn)(void *ud), void *ud, tw_err *err) {
  return register_callback(m, TW_METRIC_COUNTER, name, help, fn, ud, err);
}

/* --- Children ------------------------------------------------------------ */

static int cmp_values(const char *const *a, const char *const *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int c = strcmp(a[i], b[i]);
    if (c != 0)
      return c;
  }
  return 0;
}

/* Binary search by label values, like find_family. */
static tw_metric *find_child(const tw_metric_family *f,
                             const char *const *values, size_t *pos) {
  size_t lo = 0, hi = f->nchildren;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_values((const char *const *)f->children[mid]->values, values,
                       f->nlabels);
    if (c == 0)
      return f->children[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo;
  return NULL;
}

int tw_metric_family_child(tw_metric_family *f, const char *const *label_values,
                           tw_metric **out, tw_err *err) {
  assert(f != NULL && out != NULL);
  /* Name and labels never change after registration: no lock needed. */
  if (f->nlabels > 0 && label_values == NULL)
    return tw_err_set(err, TW_EINVAL,
                      "metrics: '%s': %zu label values needed, got NULL",
                      f->name, f->nlabels);
  for (size_t i = 0; i < f->nlabels; i++) {
    if (label_values[i] == NULL)
      return tw_err_set(err, TW_EINVAL,
                        "metrics: '%s': value of label '%s' is NULL", f->name,
                        f->labels[i]);
    if (!tw__utf8_valid(label_values[i], strlen(label_values[i])))
      return tw_err_set(err, TW_EINVAL,
                        "metrics: '%s': value of label '%s' is not valid "
                        "UTF-8",
                        f->name, f->labels[i]);
  }
  tw_metrics *m = f->reg;
  int rc = TW_OK;
  size_t pos = 0;
  pthread_mutex_lock(&m->mu);
  tw_metric *c = find_child(f, label_values, &pos);
  if (c == NULL) {
    /* As in register_family, the child first, then room for it. */
    c = child_new(f, label_values);
    tw_metric **children = NULL;
    if (c != NULL)
      children = grow(f->children, &f->cap, f->nchildren, sizeof(tw_metric *));
    if (children == NULL) {
      tw_free(c);
      c = NULL;
      rc = tw_err_set(err, TW_ENOMEM,
                      "metrics: '%s': out of memory adding a child", f->name);
    } else {
      f->children = children;
      memmove(children + pos + 1, children + pos,
              (f->nchildren - pos) * sizeof(tw_metric *));
      children[pos] = c;
      f->nchildren++;
    }
  }
  pthread_mutex_unlock(&m->mu);
  if (rc == TW_OK)
    *out = c;
  return rc;
}

/* --- Updates ------------------------------------------------------------- */

int tw_metric_add(tw_metric *c, double v) {
  assert(c != NULL);
  switch (c->fam->type) {
  case TW_METRIC_COUNTER:
    /* !(v >= 0) also catches NaN. */
    if (!(v >= 0) || isinf(v))
      return TW_EINVAL;
    break;
  case TW_METRIC_GAUGE:
    if (!isfinite(v))
      return TW_EINVAL;
    break;
  default:
    return TW_EINVAL;
  }
  add_double(&c->bits, v);
  return TW_OK;
}

void tw_metric_inc(tw_metric *c) {
  /* The only failure is a histogram, which has nothing to increment. */
  (void)tw_metric_add(c, 1.0);
}

int tw_metric_set(tw_metric *g, double v) {
  assert(g != NULL);
  if (g->fam->type != TW_METRIC_GAUGE)
    return TW_EINVAL;
  atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
  return TW_OK;
}

int tw_metric_observe(tw_metric *h, double v) {
  assert(h != NULL);
  const tw_metric_family *f = h->fam;
  if (f->type != TW_METRIC_HISTOGRAM || isnan(v))
    return TW_EINVAL;
  /* First bucket whose upper bound holds v; nbounds is the +Inf bucket.
   * Bucket lists are short, so a linear scan beats a binary search. */
  size_t i = 0;
  while (i < f->nbounds && v > f->bounds[i])
    i++;
  atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
  add_double(&h->bits, v);
  return TW_OK;
}

static uint64_t histogram_count(const tw_metric *h) {
  uint64_t n = 0;
  for (size_t i = 0; i <= h->fam->nbounds; i++)
    n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
  return n;
}

double tw_metric_value(const tw_metric *m) {
  assert(m != NULL);
  if (m->fam->type == TW_METRIC_HISTOGRAM)
    return (double)histogram_count(m);
  return load_double(&m->bits);
}

int tw_metrics_exponential_buckets(double start, double factor, size_t count,
                                   double *out) {
  if (out == NULL || count == 0 || !isfinite(start) || !(start > 0) ||
      !isfinite(factor) || !(factor > 1))
    return TW_EINVAL;
  /* Check the last bound first so that out is untouched on failure. */
  double v = start;
  for (size_t i = 1; i < count; i++) {
    v *= factor;
    if (!isfinite(v))
      return TW_EINVAL;
  }
  v = start;
  for (size_t i = 0; i < count; i++) {
    out[i] = v;
    v *= factor;
  }
  return TW_OK;
}

/* --- Rendering ----------------------------------------------------------- */

/* Formats v as the shortest of %.15g, %.16g and %.17g that reads back as the
 * same double, so 0.005 stays "0.005" and integers have no exponent up to
 * 2^53, with the exposition format's spellings of the non-finite values. */
static void fmt_double(double v, char out[NUM_MAX]) {
  if (isnan(v)) {
    memcpy(out, "NaN", 4);
    return;
  }
  if (isinf(v)) {
    memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
    return;
  }
  tw__format_f64(v, out, NUM_MAX);
}

/* An output buffer with a sticky error, so the renderer can write a line
 * in several calls and check once; a failed append changes nothing, and
 * tw_metrics_render cuts the partial output off anyway. */
typedef struct writer {
  tw_buf *b;
  int rc;
} writer;

static void put_n(writer *w, const char *s, size_t n) {
  if (w->rc == TW_OK)
    w->rc = tw_buf_append(w->b, s, n);
}

static void put(writer *w, const char *s) { put_n(w, s, strlen(s)); }

static void put_double(writer *w, double v) {
  char num[NUM_MAX];
  fmt_double(v, num);
  put(w, num);
}

static void put_u64(writer *w, uint64_t v) {
  char num[NUM_MAX];
  (void)snprintf(num, sizeof num, "%" PRIu64, v);
  put(w, num);
}

/* Help text escapes backslash and newline; label values also escape the
 * double quote. */
static void put_escaped(writer *w, const char *s, bool quote) {
  const char *run = s;
  for (const char *p = s;; p++) {
    const char *esc;
    if (*p == '\\')
      esc = "\\\\";
    else if (*p == '\n')
      esc = "\\n";
    else if (*p == '"' && quote)
      esc = "\\\"";
    else if (*p == '\0')
      esc = "";
    else
      continue;
    put_n(w, run, (size_t)(p - run));
    put(w, esc);
    if (*p == '\0')
      return;
    run = p + 1;
  }
}

/* Writes {l1="v1",...} with an optional trailing le label; nothing at all
 * for an unlabelled sample. */
static void put_labels(writer *w, const tw_metric_family *f, const tw_metric *c,
                       const char *le) {
  if (f->nlabels == 0 && le == NULL)
    return;
  put(w, "{");
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i > 0)
      put(w, ",");
    put(w, f->labels[i]);
    put(w, "=\"");
    put_escaped(w, c->values[i], true);
    put(w, "\"");
  }
  if (le != NULL) {
    put(w, f->nlabels > 0 ? ",le=\"" : "le=\"");
    put(w, le);
    put(w, "\"");
  }
  put(w, "}");
}

static void put_histogram(writer *w, const tw_metric_family *f,
                          const tw_metric *c) {
  uint64_t total = 0;
  char le[NUM_MAX];
  for (size_t i = 0; i <= f->nbounds; i++) {
    total += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
    if (i < f->nbounds)
      fmt_double(f->bounds[i], le);
    else
      memcpy(le, "+Inf", 5);
    put(w, f->name);
    put(w, "_bucket");
    put_labels(w, f, c, le);
    put(w, " ");
    put_u64(w, total);
    put(w, "\n");
  }
  put(w, f->name);
  put(w, "_sum");
  put_labels(w, f, c, NULL);
  put(w, " ");
  put_double(w, load_double(&c->bits));
  put(w, "\n");
  put(w, f->name);
  put(w, "_count");
  put_labels(w, f, c, NULL);
  put(w, " ");
  put_u64(w, total);
  put(w, "\n");
}

static void put_family(writer *w, const tw_metric_family *f) {
  put(w, "# HELP ");
  put(w, f->name);
  put(w, " ");
  put_escaped(w, f->help, false);
  put(w, "\n# TYPE ");
  put(w, f->name);
  put(w, " ");
  put(w, type_name(f->type));
  put(w, "\n");
  for (size_t i = 0; i < f->nchildren && w->rc == TW_OK; i++) {
    const tw_metric *c = f->children[i];
    if (f->type == TW_METRIC_HISTOGRAM) {
      put_histogram(w, f, c);
      continue;
    }
    put(w, f->name);
    put_labels(w, f, c, NULL);
    put(w, " ");
    put_double(w, f->fn != NULL ? f->fn(f->ud) : load_double(&c->bits));
    put(w, "\n");
  }
}

int tw_metrics_render(tw_metrics *m, tw_buf *out) {
  assert(m != NULL && out != NULL);
  size_t start = out->len;
  writer w = {out, TW_OK};
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < m->nfams && w.rc == TW_OK; i++)
    put_family(&w, m->fams[i]);
  pthread_mutex_unlock(&m->mu);
  if (w.rc != TW_OK)
    tw_buf_truncate(out, start);
  return w.rc;
}
