/*
 * gen_demo.c - the calibration demo's "true system" and its recordings.
 *
 * The true system is a mass on a spring with viscous damping and a smooth
 * Coulomb friction that the twin's physics block does not model:
 *
 *   m x'' = F(t) - k x - c v - mu tanh(v / v_s)
 *
 * It is simulated once per recording with RK4 on SUBSTEPS substeps of the
 * sampling step DT. The applied force is a sampled signal held for one
 * sampling step (zero-order hold, as a digital actuator applies it and as
 * a twin reads a recorded input), so a twin with the true physics sees
 * exactly the force the system saw. Each recording holds, one sample per
 * DT at t = k * DT (log_time = round(t * 1e9) ns, as Twin's own traces):
 *
 *   /inputs/force     N  the applied force
 *   /measured/x       m  the position with Gaussian sensor noise
 *   /truth/x          m  the noise-free position
 *   /truth/friction   N  the friction force on the mass, -mu tanh(v / v_s)
 *
 * The noise comes from xoshiro256** seeded through splitmix64 and turned
 * Gaussian by Box-Muller, so the same program writes the same bytes on
 * every run. After writing, every file is read back with the trace reader
 * (verified whole) and every sample compared bit for bit with what was
 * written, so a recording the demo ships is known to be what it claims.
 *
 *   gen_demo OUTDIR                  train.mcap, validation.mcap, truth.json
 *   gen_demo --compare RUN DATA      RMS of a twin run's /outputs/plant.x
 *                                    against DATA's /measured/x and /truth/x,
 *                                    and of /outputs/residual.force (when the
 *                                    run has it) against /truth/friction
 *
 * Exit status: 0 done, 1 failed (I/O, a check), 2 bad usage.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "twin/alloc.h"
#include "twin/error.h"
#include "twin/trace.h"

#define DT 0.01     /* s, the sampling step (the twin's dt) */
#define SUBSTEPS 10 /* RK4 substeps per sampling step */
#define MAX_SINES 4 /* sinusoids of a forcing */
#define MAX_STEPS 4 /* force steps of a forcing */
#define PATH_LEN 4096

/* --- The true system ------------------------------------------------------ */

typedef struct truth {
  double m;     /* kg */
  double k;     /* N/m */
  double c;     /* N*s/m */
  double mu;    /* N, friction force at high speed */
  double v_s;   /* m/s, the speed over which friction builds up */
  double x0;    /* m */
  double v0;    /* m/s */
  double noise; /* m, sensor noise standard deviation */
} truth;

/* The values the twin's calibration is to recover. v_s is large enough
 * that one tanh unit of the residual MLP reproduces the friction with an
 * input weight 1 / v_s well inside the model's bounds (|W1| <= 10). */
static const truth TRUTH = {.m = 1.0,
                            .k = 5.0,
                            .c = 0.4,
                            .mu = 0.3,
                            .v_s = 0.15,
                            .x0 = 0.1,
                            .v0 = 0.0,
                            .noise = 0.0015};

typedef struct sine {
  double amp;   /* N */
  double freq;  /* Hz */
  double phase; /* rad */
} sine;

typedef struct step {
  double t;  /* s, when the force changes */
  double df; /* N, by how much (the steps add up) */
} step;

/* A recording: its length, its forcing and the seed of its noise. The
 * natural frequency is sqrt(k/m)/(2 pi) = 0.36 Hz: the sines lie around
 * it, low enough for slow motion (where friction dominates) and high
 * enough for fast, and the steps excite every frequency at once. */
typedef struct recording {
  const char *file;
  double seconds;
  uint64_t seed;
  sine sines[MAX_SINES];
  step steps[MAX_STEPS];
} recording;

static const recording RECORDINGS[] = {
    {.file = "train.mcap",
     .seconds = 30.0,
     .seed = 0x7477696e74726169u, /* "twintrai" */
     .sines = {{0.6, 0.13, 0.0},
               {0.35, 0.31, 1.1},
               {0.3, 0.53, 2.3},
               {0.25, 0.97, 0.7}},
     .steps = {{4.0, 0.8}, {11.0, -1.4}, {19.0, 1.0}, {26.0, -0.6}}},
    {.file = "validation.mcap",
     .seconds = 15.0,
     .seed = 0x7477696e76616c69u, /* "twinvali" */
     .sines = {{0.5, 0.17, 0.4},
               {0.4, 0.37, 2.0},
               {0.3, 0.71, 1.3},
               {0.2, 1.3, 0.2}},
     .steps = {{3.0, 1.0}, {8.0, -1.2}, {12.0, 0.5}, {0.0, 0.0}}},
};
#define NRECORDINGS (sizeof RECORDINGS / sizeof RECORDINGS[0])

static double forcing_at(const recording *r, double t) {
  const double two_pi = 6.283185307179586;
  double f = 0.0;
  for (size_t i = 0; i < MAX_SINES; i++)
    f += r->sines[i].amp *
         sin(two_pi * r->sines[i].freq * t + r->sines[i].phase);
  for (size_t i = 0; i < MAX_STEPS; i++)
    if (r->steps[i].df != 0.0 && t >= r->steps[i].t)
      f += r->steps[i].df;
  return f;
}

static double friction(const truth *p, double v) {
  return -p->mu * tanh(v / p->v_s);
}

/* The acceleration; with_friction false gives the system the twin's
 * physics alone describes. */
static double accel(const truth *p, double x, double v, double f,
                    bool with_friction) {
  double a = f - p->k * x - p->c * v;
  if (with_friction)
    a += friction(p, v);
  return a / p->m;
}

/* Advances (x, v) by one sampling step under the held force f. */
static void rk4_step(const truth *p, double *x, double *v, double f,
                     bool with_friction) {
  const double h = DT / SUBSTEPS;
  double xs = *x, vs = *v;
  for (int i = 0; i < SUBSTEPS; i++) {
    double k1x = vs, k1v = accel(p, xs, vs, f, with_friction);
    double x2 = xs + 0.5 * h * k1x, v2 = vs + 0.5 * h * k1v;
    double k2x = v2, k2v = accel(p, x2, v2, f, with_friction);
    double x3 = xs + 0.5 * h * k2x, v3 = vs + 0.5 * h * k2v;
    double k3x = v3, k3v = accel(p, x3, v3, f, with_friction);
    double x4 = xs + h * k3x, v4 = vs + h * k3v;
    double k4x = v4, k4v = accel(p, x4, v4, f, with_friction);
    xs += h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
    vs += h / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v);
  }
  *x = xs;
  *v = vs;
}

/* --- Noise: xoshiro256** (Blackman and Vigna), seeded by splitmix64 ------ */

typedef struct rng {
  uint64_t s[4];
  bool has_spare;
  double spare;
} rng;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
  r->has_spare = false;
  r->spare = 0.0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform on (0, 1]: never 0, so its logarithm is finite. */
static double rng_uniform(rng *r) {
  return (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
}

/* Standard normal by the Box-Muller transform, two values per pair of
 * uniforms. */
static double rng_gauss(rng *r) {
  if (r->has_spare) {
    r->has_spare = false;
    return r->spare;
  }
  const double two_pi = 6.283185307179586;
  double rad = sqrt(-2.0 * log(rng_uniform(r)));
  double ang = two_pi * rng_uniform(r);
  r->spare = rad * sin(ang);
  r->has_spare = true;
  return rad * cos(ang);
}

/* --- Simulation ----------------------------------------------------------- */

enum { CH_FORCE, CH_MEASURED, CH_TRUE_X, CH_FRICTION, NCHANNELS };

static const tw_trace_port PORTS[NCHANNELS] = {
    {.topic = "/inputs/force", .unit = "N", .size = 1},
    {.topic = "/measured/x", .unit = "m", .size = 1},
    {.topic = "/truth/x", .unit = "m", .size = 1},
    {.topic = "/truth/friction", .unit = "N", .size = 1},
};

/* One recording's samples, channel by channel, and what friction did. */
typedef struct series {
  size_t n;               /* samples per channel */
  double *v[NCHANNELS];   /* v[ch][i], sample i at t = i * DT */
  double friction_effect; /* RMS of x with minus x without friction */
  double peak_x, peak_v;  /* largest |x| and |v| */
} series;

static void series_fini(series *s) {
  for (int c = 0; c < NCHANNELS; c++)
    tw_free(s->v[c]);
  memset(s, 0, sizeof *s);
}

static int simulate(const truth *p, const recording *r, series *s,
                    tw_err *err) {
  memset(s, 0, sizeof *s);
  s->n = (size_t)llround(r->seconds / DT) + 1;
  for (int c = 0; c < NCHANNELS; c++) {
    s->v[c] = tw_calloc(s->n, sizeof(double));
    if (s->v[c] == NULL) {
      series_fini(s);
      return tw_err_set(err, TW_ENOMEM, "%s: no memory for %zu samples",
                        r->file, s->n);
    }
  }
  rng g;
  rng_seed(&g, r->seed);
  double x = p->x0, v = p->v0;   /* the true system */
  double xf = p->x0, vf = p->v0; /* the same without friction */
  double sq = 0.0;
  for (size_t i = 0; i < s->n; i++) {
    double t = (double)i * DT;
    double f = forcing_at(r, t);
    s->v[CH_FORCE][i] = f;
    s->v[CH_MEASURED][i] = x + p->noise * rng_gauss(&g);
    s->v[CH_TRUE_X][i] = x;
    s->v[CH_FRICTION][i] = friction(p, v);
    sq += (x - xf) * (x - xf);
    if (fabs(x) > s->peak_x)
      s->peak_x = fabs(x);
    if (fabs(v) > s->peak_v)
      s->peak_v = fabs(v);
    rk4_step(p, &x, &v, f, true);
    rk4_step(p, &xf, &vf, f, false);
  }
  if (!isfinite(x) || !isfinite(xf)) {
    series_fini(s);
    return tw_err_set(err, TW_ENUMERIC, "%s: the simulation diverged", r->file);
  }
  s->friction_effect = sqrt(sq / (double)s->n);
  return TW_OK;
}

/* --- Writing and checking ------------------------------------------------- */

/* Whether a and b are the same double, bit for bit (NaN payloads and the
 * sign of zero included). */
static bool same_bits(double a, double b) {
  uint64_t ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  return ua == ub;
}

static uint64_t log_time_of(size_t i) {
  return (uint64_t)floor((double)i * DT * 1e9 + 0.5);
}

static int write_recording(const char *path, const series *s, tw_err *err) {
  tw_trace_writer *w = NULL;
  int rc = tw_trace_writer_open(path, NULL, &w, err);
  if (rc != TW_OK)
    return rc;
  uint16_t ch[NCHANNELS];
  for (int c = 0; c < NCHANNELS && rc == TW_OK; c++)
    rc = tw_trace_writer_add_port(w, &PORTS[c], TW_TRACE_ENCODING_CDR, &ch[c],
                                  err);
  for (size_t i = 0; i < s->n && rc == TW_OK; i++)
    for (int c = 0; c < NCHANNELS && rc == TW_OK; c++)
      rc = tw_trace_writer_write_port(w, ch[c], log_time_of(i), (double)i * DT,
                                      &s->v[c][i], 1, err);
  if (rc != TW_OK) {
    tw_trace_writer_abort(w);
    return rc;
  }
  return tw_trace_writer_close(w, err);
}

/* Reads path back: verified whole, each channel present with its unit and
 * s->n samples, and every sample equal (time and value, bit for bit) to
 * the one written. */
static int check_recording(const char *path, const series *s, tw_err *err) {
  tw_trace_reader_opts o;
  tw_trace_reader_opts_init(&o);
  o.verify = true;
  tw_trace_reader *r = NULL;
  int rc = tw_trace_reader_open(path, &o, &r, err);
  if (rc != TW_OK)
    return rc;
  const tw_trace_channel *chs[NCHANNELS];
  for (int c = 0; c < NCHANNELS && rc == TW_OK; c++) {
    chs[c] = tw_trace_reader_channel_find(r, PORTS[c].topic);
    if (chs[c] == NULL)
      rc = tw_err_set(err, TW_EVALIDATE, "%s: no channel '%s'", path,
                      PORTS[c].topic);
    else if (!chs[c]->has_count || chs[c]->message_count != s->n)
      rc = tw_err_set(err, TW_EVALIDATE,
                      "%s: channel '%s' holds %llu samples, expected %zu", path,
                      PORTS[c].topic, (unsigned long long)chs[c]->message_count,
                      s->n);
  }
  tw_trace_iter *it = NULL;
  if (rc == TW_OK)
    rc = tw_trace_iter_new(r, NULL, &it, err);
  size_t seen[NCHANNELS] = {0};
  tw_trace_message msg;
  int more = 0;
  while (rc == TW_OK && (more = tw_trace_iter_next(it, &msg, err)) == 1) {
    int c = 0;
    while (c < NCHANNELS && chs[c]->id != msg.channel_id)
      c++;
    if (c == NCHANNELS) {
      rc = tw_err_set(err, TW_EVALIDATE, "%s: a message on unknown channel %u",
                      path, (unsigned)msg.channel_id);
      break;
    }
    size_t i = seen[c]++;
    double t = 0.0, val = 0.0;
    size_t n = 0;
    rc = tw_trace_port_decode(chs[c], msg.data, msg.len, &t, &val, 1, &n, err);
    if (rc == TW_OK && (i >= s->n || n != 1 || msg.log_time != log_time_of(i) ||
                        t != (double)i * DT || !same_bits(val, s->v[c][i])))
      rc = tw_err_set(err, TW_EVALIDATE,
                      "%s: sample %zu of '%s' (t=%.17g s, log_time %llu) "
                      "is not the one written",
                      path, i, PORTS[c].topic, t,
                      (unsigned long long)msg.log_time);
  }
  if (rc == TW_OK && more < 0)
    rc = more;
  for (int c = 0; c < NCHANNELS && rc == TW_OK; c++)
    if (seen[c] != s->n)
      rc = tw_err_set(err, TW_EVALIDATE,
                      "%s: read %zu samples of '%s', %zu "
                      "written",
                      path, seen[c], PORTS[c].topic, s->n);
  tw_trace_iter_free(it);
  tw_trace_reader_close(r);
  return rc;
}

/* Writes the truth as one JSON object to f. */
static void print_truth(FILE *f, const truth *p) {
  (void)fprintf(
      f,
      "{\"m\": %.15g, \"k\": %.15g, \"c\": %.15g, \"mu\": %.15g, "
      "\"v_s\": %.15g, \"noise\": %.15g, \"x0\": %.15g, \"v0\": %.15g, "
      "\"dt\": %.15g}\n",
      p->m, p->k, p->c, p->mu, p->v_s, p->noise, p->x0, p->v0, DT);
}

/* Writes truth.json whole or not at all (a temporary file renamed). */
static int write_truth(const char *path, const truth *p, tw_err *err) {
  char tmp[PATH_LEN + 16];
  (void)snprintf(tmp, sizeof tmp, "%s.partial", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return tw_err_set(err, TW_EIO, "%s: cannot create: %s", tmp,
                      strerror(errno));
  print_truth(f, p);
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0 || bad) {
    int e = errno;
    (void)remove(tmp);
    return tw_err_set(err, TW_EIO, "%s: cannot write: %s", tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    (void)remove(tmp);
    return tw_err_set(err, TW_EIO, "%s: cannot rename to %s: %s", tmp, path,
                      strerror(e));
  }
  return TW_OK;
}

static int join(char *out, const char *dir, const char *name, tw_err *err) {
  int n = snprintf(out, PATH_LEN, "%s/%s", dir, name);
  if (n < 0 || n >= PATH_LEN)
    return tw_err_set(err, TW_EINVAL, "%s/%s: path too long", dir, name);
  return TW_OK;
}

static int generate(const char *dir) {
  tw_err err;
  tw_err_init(&err);
  struct stat st;
  if (stat(dir, &st) != 0) {
    (void)fprintf(stderr, "gen_demo: %s: %s\n", dir, strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (void)fprintf(stderr, "gen_demo: %s: not a directory\n", dir);
    return 1;
  }
  char path[PATH_LEN];
  int rc = TW_OK;
  char summary[1024];
  size_t used = 0;
  for (size_t r = 0; r < NRECORDINGS && rc == TW_OK; r++) {
    series s;
    rc = simulate(&TRUTH, &RECORDINGS[r], &s, &err);
    if (rc != TW_OK)
      break;
    rc = join(path, dir, RECORDINGS[r].file, &err);
    if (rc == TW_OK)
      rc = write_recording(path, &s, &err);
    if (rc == TW_OK)
      rc = check_recording(path, &s, &err);
    if (rc == TW_OK) {
      int n = snprintf(summary + used, sizeof summary - used,
                       "%s%s %zu samples x %d channels, %.15g s, "
                       "|x| <= %.3f m, |v| <= %.3f m/s, friction effect RMS "
                       "%.2f mm (noise %.2f mm)",
                       r == 0 ? "" : "; ", RECORDINGS[r].file, s.n, NCHANNELS,
                       RECORDINGS[r].seconds, s.peak_x, s.peak_v,
                       s.friction_effect * 1e3, TRUTH.noise * 1e3);
      if (n > 0 && (size_t)n < sizeof summary - used)
        used += (size_t)n;
    }
    series_fini(&s);
  }
  if (rc == TW_OK)
    rc = join(path, dir, "truth.json", &err);
  if (rc == TW_OK)
    rc = write_truth(path, &TRUTH, &err);
  if (rc != TW_OK) {
    (void)fprintf(stderr, "gen_demo: %s\n", err.msg);
    return 1;
  }
  print_truth(stdout, &TRUTH);
  (void)fprintf(stderr, "gen_demo: ok (read back and checked): %s\n", summary);
  return 0;
}

/* --- Comparing a twin run with a recording -------------------------------- */

/* Reads every sample of channel topic of path into *t (log times) and *v,
 * tw_alloc'ed; *n their number. */
static int read_channel(const char *path, const char *topic, uint64_t **t,
                        double **v, size_t *n, tw_err *err) {
  tw_trace_reader *r = NULL;
  int rc = tw_trace_reader_open(path, NULL, &r, err);
  if (rc != TW_OK)
    return rc;
  const tw_trace_channel *ch = tw_trace_reader_channel_find(r, topic);
  if (ch == NULL) {
    tw_trace_reader_close(r);
    return tw_err_set(err, TW_ENOENT, "%s: no channel '%s'", path, topic);
  }
  size_t cap = ch->has_count ? (size_t)ch->message_count : 0;
  uint64_t *ts = tw_calloc(cap + 1, sizeof *ts);
  double *vs = tw_calloc(cap + 1, sizeof *vs);
  tw_trace_iter *it = NULL;
  uint16_t id = ch->id;
  tw_trace_query q = {&id, 1, 0, UINT64_MAX};
  if (ts == NULL || vs == NULL)
    rc = tw_err_set(err, TW_ENOMEM, "%s: no memory for '%s'", path, topic);
  if (rc == TW_OK)
    rc = tw_trace_iter_new(r, &q, &it, err);
  size_t k = 0;
  tw_trace_message msg;
  int more = 0;
  while (rc == TW_OK && (more = tw_trace_iter_next(it, &msg, err)) == 1) {
    double tt, val;
    size_t nv = 0;
    if (k >= cap) {
      rc = tw_err_set(err, TW_EPARSE,
                      "%s: '%s' holds more samples than its "
                      "statistics say (%zu)",
                      path, topic, cap);
      break;
    }
    rc = tw_trace_port_decode(ch, msg.data, msg.len, &tt, &val, 1, &nv, err);
    if (rc == TW_ERANGE)
      rc = tw_err_set(err, TW_EINVAL,
                      "%s: '%s' has %zu values per sample, "
                      "not 1",
                      path, topic, nv);
    if (rc == TW_OK) {
      ts[k] = msg.log_time;
      vs[k] = val;
      k++;
    }
  }
  if (rc == TW_OK && more < 0)
    rc = more;
  tw_trace_iter_free(it);
  tw_trace_reader_close(r);
  if (rc != TW_OK) {
    tw_free(ts);
    tw_free(vs);
    return rc;
  }
  *t = ts;
  *v = vs;
  *n = k;
  return TW_OK;
}

/* RMS of a - b over the samples of equal log time (both in time order);
 * *common gets their number. */
static double rms_common(const uint64_t *ta, const double *a, size_t na,
                         const uint64_t *tb, const double *b, size_t nb,
                         size_t *common) {
  double sq = 0.0;
  size_t i = 0, j = 0, n = 0;
  while (i < na && j < nb) {
    if (ta[i] < tb[j]) {
      i++;
    } else if (tb[j] < ta[i]) {
      j++;
    } else {
      sq += (a[i] - b[j]) * (a[i] - b[j]);
      n++;
      i++;
      j++;
    }
  }
  *common = n;
  return n > 0 ? sqrt(sq / (double)n) : NAN;
}

static int compare(const char *run, const char *data) {
  tw_err err;
  tw_err_init(&err);
  uint64_t *tr = NULL, *tm = NULL, *tx = NULL;
  double *vr = NULL, *vm = NULL, *vx = NULL;
  size_t nr = 0, nm = 0, nx = 0;
  int rc = read_channel(run, "/outputs/plant.x", &tr, &vr, &nr, &err);
  if (rc == TW_OK)
    rc = read_channel(data, "/measured/x", &tm, &vm, &nm, &err);
  if (rc == TW_OK)
    rc = read_channel(data, "/truth/x", &tx, &vx, &nx, &err);
  /* The residual's force against the true friction, when the run has it. */
  uint64_t *trf = NULL, *tf = NULL;
  double *vrf = NULL, *vf = NULL;
  size_t nrf = 0, nf = 0;
  bool has_residual = false;
  if (rc == TW_OK) {
    tw_err e2;
    tw_err_init(&e2);
    has_residual = read_channel(run, "/outputs/residual.force", &trf, &vrf,
                                &nrf, &e2) == TW_OK;
    if (has_residual)
      rc = read_channel(data, "/truth/friction", &tf, &vf, &nf, &err);
  }
  size_t cm = 0, cx = 0, cf = 0;
  double em = 0.0, ex = 0.0, ef = 0.0, rf = 0.0;
  if (rc == TW_OK) {
    em = rms_common(tr, vr, nr, tm, vm, nm, &cm);
    ex = rms_common(tr, vr, nr, tx, vx, nx, &cx);
    if (cm == 0)
      rc = tw_err_set(&err, TW_EINVAL, "%s and %s share no sample time", run,
                      data);
  }
  if (rc == TW_OK && has_residual) {
    ef = rms_common(trf, vrf, nrf, tf, vf, nf, &cf);
    double sq = 0.0;
    for (size_t i = 0; i < nf; i++)
      sq += vf[i] * vf[i];
    rf = nf > 0 ? sqrt(sq / (double)nf) : NAN;
  }
  if (rc == TW_OK && has_residual)
    (void)printf("{\"samples\": %zu, \"rms_measured_mm\": %.4f, "
                 "\"rms_true_x_mm\": %.4f, \"rms_residual_vs_friction_N\": "
                 "%.5f, \"rms_friction_N\": %.5f}\n",
                 cm, em * 1e3, ex * 1e3, ef, rf);
  else if (rc == TW_OK)
    (void)printf("{\"samples\": %zu, \"rms_measured_mm\": %.4f, "
                 "\"rms_true_x_mm\": %.4f}\n",
                 cm, em * 1e3, ex * 1e3);
  else
    (void)fprintf(stderr, "gen_demo: %s\n", err.msg);
  tw_free(trf);
  tw_free(vrf);
  tw_free(tf);
  tw_free(vf);
  tw_free(tr);
  tw_free(vr);
  tw_free(tm);
  tw_free(vm);
  tw_free(tx);
  tw_free(vx);
  return rc == TW_OK ? 0 : 1;
}

static void usage(FILE *f) {
  (void)fprintf(f,
                "usage: gen_demo OUTDIR\n"
                "       gen_demo --compare RUN.mcap DATA.mcap\n"
                "Writes OUTDIR/train.mcap, OUTDIR/validation.mcap and "
                "OUTDIR/truth.json (the calibration demo's recordings of its "
                "true system), or compares a twin run's /outputs/plant.x with "
                "a recording.\n");
}

int main(int argc, char **argv) {
  if (argc == 2 &&
      (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "--compare") == 0)
    return compare(argv[2], argv[3]);
  if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-') {
    usage(stderr);
    return 2;
  }
  return generate(argv[1]);
}
