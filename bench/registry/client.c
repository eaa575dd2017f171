/*
 * client.c - the HTTP client of the registry benchmark
 * (bench/registry/README.md): one libcurl easy handle per registry, so
 * each registry is driven over one reused keep-alive connection, by the
 * same code for every registry.
 *
 *   client ping URL
 *       waits (up to 15 s) until GET URL/v2/ answers 200.
 *   client blobs --repo R --size N --count C --reps R --warmup W
 *                [--chunk K] [--file-dir DIR] [--storage WHAT]
 *                IMPL=URL...
 *       per repetition and registry: C distinct blobs of N random bytes
 *       (made and hashed before the clock starts) pushed monolithically
 *       (POST .../blobs/uploads/, then PUT <Location>?digest=... with the
 *       whole body), pulled back (GET .../blobs/<digest>, all bytes read)
 *       and, with --chunk, C more pushed in PATCH chunks of K bytes with
 *       Content-Range and closed by an empty PUT. Blobs come from memory,
 *       or with --file-dir from files there (read with pread). The
 *       registries take turns within each repetition. Prints one JSON line
 *       per registry and operation (MB/s = 10^6 bytes/s, the median of
 *       the repetitions after the warm-up) and a ratio line per operation
 *       when there are two registries. Then checks that every blob of the
 *       last repetition is there (HEAD: 200 and its length) and that the
 *       first and last read back with their digest.
 *   client manifest --repo R --tag T IMPL=URL...
 *       pushes one small OCI image (config blob, one 4 KiB layer, image
 *       manifest tagged T) to each registry, reads the manifest back by
 *       tag and by digest, and prints its digest.
 *
 * Exits 1 with a message on stderr when any request gets an unexpected
 * answer.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_IMPL 4
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench/registry/client: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- Registries and requests ---------------------------------------------- */

typedef struct impl {
  const char *name;
  char base[256]; /* http://HOST:PORT, no trailing slash */
  CURL *h;
} impl;

/* A request body: len bytes from mem, or from fd at start. */
typedef struct body {
  const uint8_t *mem;
  int fd;
  uint64_t start, len, off;
} body;

typedef struct resp {
  long status;
  char location[4096];
  char digest[128];
  uint64_t nbody;
  uint64_t content_length; /* of a HEAD answer */
  EVP_MD_CTX *hash;        /* when set, the body is hashed */
  char *keep;              /* when set, the first keep_cap bytes are kept */
  size_t keep_cap;
  char ctype[128];
} resp;

static size_t read_cb(char *dst, size_t size, size_t n, void *ud) {
  body *b = ud;
  uint64_t want = (uint64_t)size * n, left = b->len - b->off;
  if (want > left)
    want = left;
  if (want == 0)
    return 0;
  if (b->mem != NULL) {
    memcpy(dst, b->mem + b->off, want);
  } else {
    ssize_t r = pread(b->fd, dst, want, (off_t)(b->start + b->off));
    if (r <= 0)
      return CURL_READFUNC_ABORT;
    want = (uint64_t)r;
  }
  b->off += want;
  return want;
}

static size_t write_cb(char *src, size_t size, size_t n, void *ud) {
  resp *r = ud;
  size_t len = size * n;
  if (r->keep != NULL && r->nbody < r->keep_cap) {
    size_t k = r->keep_cap - r->nbody;
    memcpy(r->keep + r->nbody, src, len < k ? len : k);
  }
  if (r->hash != NULL)
    EVP_DigestUpdate(r->hash, src, len);
  r->nbody += len;
  return len;
}

/* Copies header value v (of length n, trailing CR LF cut) to dst. */
static void header_copy(char *dst, size_t cap, const char *v, size_t n) {
  while (n > 0 && (v[0] == ' ' || v[0] == '\t'))
    v++, n--;
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
    n--;
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static size_t header_cb(char *src, size_t size, size_t n, void *ud) {
  resp *r = ud;
  size_t len = size * n;
  static const struct {
    const char *name;
    size_t off, cap;
  } want[] = {
      {"location:", offsetof(resp, location), sizeof((resp *)0)->location},
      {"docker-content-digest:", offsetof(resp, digest),
       sizeof((resp *)0)->digest},
      {"content-type:", offsetof(resp, ctype), sizeof((resp *)0)->ctype},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    size_t k = strlen(want[i].name);
    if (len > k && strncasecmp(src, want[i].name, k) == 0)
      header_copy((char *)r + want[i].off, want[i].cap, src + k, len - k);
  }
  if (len > 15 && strncasecmp(src, "content-length:", 15) == 0)
    r->content_length = strtoull(src + 15, NULL, 10);
  return len;
}

/* Sends method url on im's connection with body b (NULL: none) and the
 * extra headers (NULL-terminated); fills r. */
static void request(impl *im, const char *method, const char *url, body *b,
                    const char *const *headers, resp *r) {
  CURL *h = im->h;
  curl_easy_reset(h); /* keeps the live connection */
  r->status = 0;
  r->location[0] = r->digest[0] = r->ctype[0] = '\0';
  r->nbody = r->content_length = 0;
  struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
  for (const char *const *p = headers; p != NULL && *p != NULL; p++)
    hl = curl_slist_append(hl, *p);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "POST") == 0 && b == NULL) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
  } else if (strcmp(method, "GET") != 0) {
    static body empty;
    if (b == NULL)
      b = &empty;
    b->off = 0;
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, b);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)b->len);
    if (strcmp(method, "PUT") != 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  }
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hl);
  if (rc != CURLE_OK)
    die("%s: %s %s: %s", im->name, method, url, curl_easy_strerror(rc));
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
}

static void expect(impl *im, const char *what, const resp *r, long status) {
  if (r->status != status)
    die("%s: %s: status %ld, expected %ld", im->name, what, r->status, status);
}

/* The absolute URL of Location loc, with "digest=d" appended when d. */
static void resolve(impl *im, const char *loc, const char *d, char *out,
                    size_t cap) {
  if (loc[0] == '\0')
    die("%s: upload answer without Location", im->name);
  int n;
  const char *sep = strchr(loc, '?') != NULL ? "&" : "?";
  const char *pre = loc[0] == '/' ? im->base : "";
  if (d != NULL)
    n = snprintf(out, cap, "%s%s%sdigest=%s", pre, loc, sep, d);
  else
    n = snprintf(out, cap, "%s%s", pre, loc);
  if (n < 0 || (size_t)n >= cap)
    die("%s: Location too long", im->name);
}

/* --- Blobs ---------------------------------------------------------------- */

typedef struct blob {
  uint8_t *mem; /* or NULL: in fd */
  int fd;
  uint64_t len;
  char digest[80]; /* sha256:<hex> */
} blob;

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void digest_hex(EVP_MD_CTX *c, char *out) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(c, md, &n);
  strcpy(out, "sha256:");
  for (unsigned i = 0; i < 32; i++)
    sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

/* Fills b (len bytes, into b->mem or b->fd) with xoshiro256** bytes of
 * seed, and hashes them. */
static void blob_fill(blob *b, uint64_t seed) {
  uint64_t sm = seed * 0x2545f4914f6cdd1dull + 1, s[4];
  for (int i = 0; i < 4; i++)
    s[i] = splitmix(&sm);
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  enum { PIECE = 1 << 20 };
  static uint64_t piece[PIECE / 8];
  for (uint64_t off = 0; off < b->len; off += PIECE) {
    uint64_t n = b->len - off < PIECE ? b->len - off : PIECE;
    uint64_t *w = b->mem != NULL ? (uint64_t *)(b->mem + off) : piece;
    for (uint64_t i = 0; i < (n + 7) / 8; i++) {
      uint64_t r = s[1] * 5;
      r = ((r << 7) | (r >> 57)) * 9;
      uint64_t t = s[1] << 17;
      s[2] ^= s[0];
      s[3] ^= s[1];
      s[1] ^= s[2];
      s[0] ^= s[3];
      s[2] ^= t;
      s[3] = (s[3] << 45) | (s[3] >> 19);
      if (i < n / 8)
        w[i] = r;
      else
        memcpy((uint8_t *)w + 8 * i, &r, n - 8 * i);
    }
    EVP_DigestUpdate(c, w, n);
    if (b->mem == NULL && pwrite(b->fd, w, n, (off_t)off) != (ssize_t)n)
      die("write blob file: %s", strerror(errno));
  }
  digest_hex(c, b->digest);
  EVP_MD_CTX_free(c);
}

static body blob_body(const blob *b, uint64_t start, uint64_t len) {
  body x = {.mem = b->mem != NULL ? b->mem + start : NULL,
            .fd = b->fd,
            .start = start,
            .len = len};
  return x;
}

static const char *const OCTET[] = {"Content-Type: application/octet-stream",
                                    NULL};

/* POST, then the whole blob in one PUT. */
static void push_monolithic(impl *im, const char *repo, const blob *b) {
  char url[8192];
  resp r = {0};
  snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/", im->base, repo);
  request(im, "POST", url, NULL, NULL, &r);
  expect(im, "POST blobs/uploads/", &r, 202);
  resolve(im, r.location, b->digest, url, sizeof url);
  body x = blob_body(b, 0, b->len);
  request(im, "PUT", url, &x, OCTET, &r);
  expect(im, "PUT upload", &r, 201);
}

/* POST, PATCH chunks of chunk bytes, empty PUT with the digest. */
static void push_chunked(impl *im, const char *repo, const blob *b,
                         uint64_t chunk) {
  char url[8192], range[96];
  resp r = {0};
  snprintf(url, sizeof url, "%s/v2/%s/blobs/uploads/", im->base, repo);
  request(im, "POST", url, NULL, NULL, &r);
  expect(im, "POST blobs/uploads/", &r, 202);
  for (uint64_t off = 0; off < b->len; off += chunk) {
    uint64_t n = b->len - off < chunk ? b->len - off : chunk;
    resolve(im, r.location, NULL, url, sizeof url);
    snprintf(range, sizeof range, "Content-Range: %" PRIu64 "-%" PRIu64, off,
             off + n - 1);
    const char *hdrs[] = {OCTET[0], range, NULL};
    body x = blob_body(b, off, n);
    request(im, "PATCH", url, &x, hdrs, &r);
    expect(im, "PATCH upload", &r, 202);
  }
  resolve(im, r.location, b->digest, url, sizeof url);
  request(im, "PUT", url, NULL, NULL, &r);
  expect(im, "PUT upload (close)", &r, 201);
}

/* GETs blob digest d, expecting len bytes; with check, hashes them. */
static void pull(impl *im, const char *repo, const char *d, uint64_t len,
                 bool check) {
  char url[1024];
  resp r = {0};
  snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", im->base, repo, d);
  if (check) {
    r.hash = EVP_MD_CTX_new();
    EVP_DigestInit_ex(r.hash, EVP_sha256(), NULL);
  }
  request(im, "GET", url, NULL, NULL, &r);
  expect(im, "GET blob", &r, 200);
  if (r.nbody != len)
    die("%s: GET blob %s: %" PRIu64 " bytes, expected %" PRIu64, im->name, d,
        r.nbody, len);
  if (check) {
    char got[80];
    digest_hex(r.hash, got);
    EVP_MD_CTX_free(r.hash);
    if (strcmp(got, d) != 0)
      die("%s: GET blob %s: bytes hash to %s", im->name, d, got);
  }
}

static void head_blob(impl *im, const char *repo, const char *d, uint64_t len) {
  char url[1024];
  resp r = {0};
  snprintf(url, sizeof url, "%s/v2/%s/blobs/%s", im->base, repo, d);
  request(im, "HEAD", url, NULL, NULL, &r);
  expect(im, "HEAD blob", &r, 200);
  if (r.content_length != len)
    die("%s: HEAD blob %s: length %" PRIu64 ", expected %" PRIu64, im->name, d,
        r.content_length, len);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The q-quantile of sorted v (nearest rank). */
static double quantile(const double *v, size_t n, double q) {
  size_t k = (size_t)(q * (double)n + 0.999999);
  if (k < 1)
    k = 1;
  if (k > n)
    k = n;
  return v[k - 1];
}

enum { OP_PUSH, OP_PULL, OP_CHUNKED, NOPS };
static const char *const OP_NAME[NOPS] = {"blob_push", "blob_pull",
                                          "blob_push_chunked"};

typedef struct stats {
  double *mb_s; /* per repetition */
  double *lat;  /* per blob, seconds */
  size_t nrep, nlat;
} stats;

static int parse_impls(int argc, char **argv, int i, impl *im) {
  int n = 0;
  for (; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (eq == NULL || n == MAX_IMPL)
      die("bad registry argument '%s' (IMPL=URL)", argv[i]);
    *eq = '\0';
    im[n].name = argv[i];
    snprintf(im[n].base, sizeof im[n].base, "%s", eq + 1);
    size_t l = strlen(im[n].base);
    if (l > 0 && im[n].base[l - 1] == '/')
      im[n].base[l - 1] = '\0';
    im[n].h = curl_easy_init();
    n++;
  }
  if (n == 0)
    die("no registry given");
  return n;
}

static int cmd_blobs(int argc, char **argv) {
  const char *repo = "bench/blobs", *file_dir = NULL, *storage = NULL;
  uint64_t size = 1 << 20, chunk = 0;
  int count = 10, reps = 3, warmup = 1, i = 2;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc)
      die("%s needs a value", argv[i]);
    const char *o = argv[i], *v = argv[i + 1];
    if (strcmp(o, "--repo") == 0)
      repo = v;
    else if (strcmp(o, "--size") == 0)
      size = strtoull(v, NULL, 10);
    else if (strcmp(o, "--count") == 0)
      count = atoi(v);
    else if (strcmp(o, "--reps") == 0)
      reps = atoi(v);
    else if (strcmp(o, "--warmup") == 0)
      warmup = atoi(v);
    else if (strcmp(o, "--chunk") == 0)
      chunk = strtoull(v, NULL, 10);
    else if (strcmp(o, "--file-dir") == 0)
      file_dir = v;
    else if (strcmp(o, "--storage") == 0)
      storage = v;
    else
      die("unknown option %s", o);
  }
  if (size == 0 || count < 1 || reps < 1 || warmup < 0)
    die("bad --size/--count/--reps/--warmup");
  impl im[MAX_IMPL];
  int nim = parse_impls(argc, argv, i, im);

  /* The blobs of one push pass, reused by every pass (refilled). */
  blob *bl = calloc((size_t)count, sizeof *bl);
  for (int k = 0; k < count; k++) {
    bl[k].len = size;
    bl[k].fd = -1;
    if (file_dir != NULL) {
      char path[4096];
      snprintf(path, sizeof path, "%s/blob.%d", file_dir, k);
      bl[k].fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
      if (bl[k].fd < 0)
        die("%s: %s", path, strerror(errno));
    } else if ((bl[k].mem = malloc(size)) == NULL) {
      die("out of memory");
    }
  }
  /* Digests pushed in the last repetition, for the final check. */
  char(*last)[80] = calloc((size_t)(nim * 2 * count), sizeof *last);
  stats st[MAX_IMPL][NOPS];
  for (int m = 0; m < nim; m++)
    for (int o = 0; o < NOPS; o++) {
      st[m][o].mb_s = calloc((size_t)reps, sizeof(double));
      st[m][o].lat = calloc((size_t)(reps * count), sizeof(double));
      st[m][o].nrep = st[m][o].nlat = 0;
    }
  double bytes = (double)size * count;
  for (int rep = -warmup; rep < reps; rep++) {
    for (int j = 0; j < nim; j++) {
      int m = (rep + warmup) % 2 ? nim - 1 - j : j; /* take turns */
      for (int o = 0; o < NOPS; o++) {
        if (o == OP_CHUNKED && chunk == 0)
          continue;
        if (o != OP_PULL) /* new content: nobody can skip the write */
          for (int k = 0; k < count; k++)
            blob_fill(&bl[k], ((uint64_t)(rep + warmup) << 40) ^
                                  ((uint64_t)m << 32) ^ ((uint64_t)o << 24) ^
                                  (uint64_t)k);
        stats *s = &st[m][o];
        double t0 = now();
        for (int k = 0; k < count; k++) {
          double t1 = now();
          if (o == OP_PUSH)
            push_monolithic(&im[m], repo, &bl[k]);
          else if (o == OP_PULL)
            pull(&im[m], repo, bl[k].digest, size, false);
          else
            push_chunked(&im[m], repo, &bl[k], chunk);
          if (rep >= 0)
            s->lat[s->nlat++] = now() - t1;
        }
        double t = now() - t0;
        if (rep >= 0)
          s->mb_s[s->nrep++] = bytes / t / 1e6;
        if (rep == reps - 1 && o != OP_PULL)
          for (int k = 0; k < count; k++)
            strcpy(last[(m * 2 + (o == OP_CHUNKED)) * count + k], bl[k].digest);
      }
    }
  }
  double med[MAX_IMPL][NOPS];
  for (int o = 0; o < NOPS; o++) {
    if (o == OP_CHUNKED && chunk == 0)
      continue;
    for (int m = 0; m < nim; m++) {
      stats *s = &st[m][o];
      med[m][o] = median(s->mb_s, s->nrep);
      printf("{\"bench\":\"registry\",\"op\":\"%s\",\"size\":%" PRIu64
             ",\"impl\":\"%s\",\"mb_s\":%.1f,\"reps\":%d,\"count\":%d",
             OP_NAME[o], size, im[m].name, med[m][o], reps, count);
      printf(",\"min_mb_s\":%.1f,\"max_mb_s\":%.1f", s->mb_s[0],
             s->mb_s[s->nrep - 1]);
      if (o == OP_CHUNKED)
        printf(",\"chunk\":%" PRIu64, chunk);
      if (s->nlat >= 20) {
        qsort(s->lat, s->nlat, sizeof *s->lat, cmp_double);
        printf(",\"p50_ms\":%.3f,\"p99_ms\":%.3f",
               1e3 * quantile(s->lat, s->nlat, 0.5),
               1e3 * quantile(s->lat, s->nlat, 0.99));
      }
      printf(",\"source\":\"%s\"", file_dir != NULL ? "file" : "memory");
      if (storage != NULL)
        printf(",\"storage\":\"%s\"", storage);
      printf("}\n");
    }
    if (nim >= 2) {
      double v = med[0][o] / med[1][o];
      printf("{\"bench\":\"registry\",\"op\":\"%s\",\"size\":%" PRIu64
             ",\"ratio\":\"%s/%s\",\"value\":%.2f",
             OP_NAME[o], size, im[0].name, im[1].name, v);
      if (o != OP_CHUNKED) /* the target: at least as fast */
        printf(",\"target\":1.0,\"met\":%s", v >= 1.0 ? "true" : "false");
      printf("}\n");
    }
  }
  fflush(stdout);
  /* Did they keep what they were given? */
  for (int m = 0; m < nim; m++) {
    int nhead = 0;
    for (int w = 0; w < 2; w++) {
      if (w == 1 && chunk == 0)
        continue;
      for (int k = 0; k < count; k++, nhead++)
        head_blob(&im[m], repo, last[(m * 2 + w) * count + k], size);
      pull(&im[m], repo, last[(m * 2 + w) * count], size, true);
      pull(&im[m], repo, last[(m * 2 + w) * count + count - 1], size, true);
    }
    fprintf(stderr,
            "%s: the %d blobs of the last repetition answer HEAD with their "
            "length; first and last of each push read back with their "
            "digest\n",
            im[m].name, nhead);
  }
  for (int k = 0; k < count; k++) {
    free(bl[k].mem);
    if (bl[k].fd >= 0)
      close(bl[k].fd);
  }
  free(bl);
  free(last);
  for (int m = 0; m < nim; m++) {
    for (int o = 0; o < NOPS; o++) {
      free(st[m][o].mb_s);
      free(st[m][o].lat);
    }
    curl_easy_cleanup(im[m].h);
  }
  return 0;
}

/* --- Manifest ------------------------------------------------------------- */

static int cmd_manifest(int argc, char **argv) {
  const char *repo = "bench/image", *tag = "bench";
  int i = 2;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc)
      die("%s needs a value", argv[i]);
    if (strcmp(argv[i], "--repo") == 0)
      repo = argv[i + 1];
    else if (strcmp(argv[i], "--tag") == 0)
      tag = argv[i + 1];
    else
      die("unknown option %s", argv[i]);
  }
  impl im[MAX_IMPL];
  int nim = parse_impls(argc, argv, i, im);
  blob layer = {.mem = malloc(4096), .fd = -1, .len = 4096};
  blob_fill(&layer, 42);
  char cfg[512];
  snprintf(cfg, sizeof cfg,
           "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{"
           "\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
           layer.digest);
  blob config = {.mem = (uint8_t *)cfg, .fd = -1, .len = strlen(cfg)};
  {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, cfg, config.len);
    digest_hex(c, config.digest);
    EVP_MD_CTX_free(c);
  }
  char man[2048];
  snprintf(man, sizeof man,
           "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\","
           "\"config\":{\"mediaType\":"
           "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
           "\"size\":%zu},\"layers\":[{\"mediaType\":"
           "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":"
           "\"%s\",\"size\":4096}],\"annotations\":{"
           "\"org.opencontainers.image.title\":\"twin registry bench\"}}",
           config.digest, (size_t)config.len, layer.digest);
  char mdigest[80];
  {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, man, strlen(man));
    digest_hex(c, mdigest);
    EVP_MD_CTX_free(c);
  }
  for (int m = 0; m < nim; m++) {
    push_monolithic(&im[m], repo, &config);
    push_monolithic(&im[m], repo, &layer);
    char url[1024];
    resp r = {0};
    snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", im[m].base, repo, tag);
    const char *hdrs[] = {"Content-Type: " MT_MANIFEST, NULL};
    body x = {.mem = (const uint8_t *)man, .fd = -1, .len = strlen(man)};
    request(&im[m], "PUT", url, &x, hdrs, &r);
    expect(&im[m], "PUT manifest", &r, 201);
    if (strcmp(r.digest, mdigest) != 0)
      die("%s: PUT manifest: digest %s, expected %s", im[m].name, r.digest,
          mdigest);
    for (int by = 0; by < 2; by++) {
      char got[2048] = {0};
      snprintf(url, sizeof url, "%s/v2/%s/manifests/%s", im[m].base, repo,
               by ? mdigest : tag);
      const char *acc[] = {"Accept: " MT_MANIFEST, NULL};
      resp g = {.keep = got, .keep_cap = sizeof got - 1};
      request(&im[m], "GET", url, NULL, acc, &g);
      expect(&im[m], "GET manifest", &g, 200);
      if (g.nbody != strlen(man) || memcmp(got, man, g.nbody) != 0 ||
          strncmp(g.ctype, MT_MANIFEST, strlen(MT_MANIFEST)) != 0)
        die("%s: GET manifest %s: not the manifest pushed (type '%s')",
            im[m].name, by ? "by digest" : "by tag", g.ctype);
    }
    curl_easy_cleanup(im[m].h);
  }
  printf("%s\n", mdigest);
  free(layer.mem);
  return 0;
}

static int cmd_ping(int argc, char **argv) {
  if (argc != 3)
    die("usage: client ping URL");
  impl im = {.name = "registry", .h = curl_easy_init()};
  snprintf(im.base, sizeof im.base, "%s/v2/", argv[2]);
  for (int t = 0; t < 300; t++) {
    curl_easy_reset(im.h);
    curl_easy_setopt(im.h, CURLOPT_URL, im.base);
    curl_easy_setopt(im.h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(im.h, CURLOPT_TIMEOUT, 2L);
    long status = 0;
    if (curl_easy_perform(im.h) == CURLE_OK &&
        curl_easy_getinfo(im.h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status == 200) {
      curl_easy_cleanup(im.h);
      return 0;
    }
    usleep(50 * 1000);
  }
  die("%s: no 200 within 15 s", im.base);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2)
    die("usage: client ping|blobs|manifest ...");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc;
  if (strcmp(argv[1], "ping") == 0)
    rc = cmd_ping(argc, argv);
  else if (strcmp(argv[1], "blobs") == 0)
    rc = cmd_blobs(argc, argv);
  else if (strcmp(argv[1], "manifest") == 0)
    rc = cmd_manifest(argc, argv);
  else
    die("unknown command %s", argv[1]);
  curl_global_cleanup();
  return rc;
}
