/*
 * clock.c - device clock offset and drift by a lower-envelope fit.
 *
 * A point is (x, y) with x the device time relative to the segment origin
 * x0 and y = host - device. Delays are positive, so every y lies on or
 * above offset + drift * x: the estimate is the line under all points that
 * minimises the sum of vertical distances. That linear programme's optimum
 * is an edge of the lower convex hull: the one whose x-range contains the
 * mean x (Moon, Skelly, Towsley 1999; Zhang, Liu, Xia 2002).
 *
 * Invariants: the points form a ring in increasing x (device time never
 * goes back inside a segment); hull[] lists ring positions of the lower
 * hull vertices in increasing x, maintained by Andrew's monotone chain on
 * append and rebuilt from the ring when its first vertex leaves the
 * window; sum_x is the exact sum of the ring's x. Nothing allocates after
 * creation.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "align_int.h"
#include "twin/align.h"
#include "twin/alloc.h"

typedef struct clock_point {
  int64_t x; /* device time - x0 */
  int64_t y; /* host - device */
} clock_point;

struct tw_align_clock {
  tw_align_clock_opts o;
  clock_point *ring; /* o.max_points slots */
  size_t head;       /* absolute index of the oldest point */
  size_t n;          /* points in the ring */
  size_t *hull;      /* absolute indices, o.max_points slots */
  size_t nhull;
  int64_t x0;       /* device time of the segment origin */
  int64_t last_dev; /* newest device time in the segment */
  int64_t sum_x;
  uint64_t jumps, reordered;
};

static clock_point *pt(const tw_align_clock *c, size_t abs) {
  size_t cap = c->o.max_points; /* > 0 after tw_align_clock_new */
  return &c->ring[cap > 0 ? abs % cap : 0];
}

/* > 0 when b turns left of a->o (o, a, b counter-clockwise). long double
 * keeps window-sized coordinates exact enough for the sign. */
static long double cross(const clock_point *o, const clock_point *a,
                         const clock_point *b) {
  return (long double)(a->x - o->x) * (long double)(b->y - o->y) -
         (long double)(a->y - o->y) * (long double)(b->x - o->x);
}

static void hull_push(tw_align_clock *c, size_t abs) {
  const clock_point *p = pt(c, abs);
  while (c->nhull >= 2 && cross(pt(c, c->hull[c->nhull - 2]),
                                pt(c, c->hull[c->nhull - 1]), p) <= 0)
    c->nhull--;
  c->hull[c->nhull++] = abs;
}

static void hull_rebuild(tw_align_clock *c) {
  c->nhull = 0;
  for (size_t i = 0; i < c->n; i++)
    hull_push(c, c->head + i);
}

int tw_align_clock_new(const tw_align_clock_opts *opts, tw_align_clock **out,
                       tw_err *err) {
  tw_align_clock_opts o = {0};
  if (opts != NULL)
    o = *opts;
  if (o.window_ns < 0 || o.jump_ns < 0 || o.jump_back_ns < 0 ||
      o.max_drift_ppm < 0 || isnan(o.max_drift_ppm))
    return tw_err_set(err, TW_EINVAL, "align clock: negative option");
  if (o.window_ns == 0)
    o.window_ns = 60 * INT64_C(1000000000);
  if (o.max_points == 0)
    o.max_points = 4096;
  if (o.jump_ns == 0)
    o.jump_ns = 10 * INT64_C(1000000);
  if (o.jump_back_ns == 0)
    o.jump_back_ns = 10 * INT64_C(1000000);
  if (o.min_points == 0)
    o.min_points = 16;
  if (o.max_drift_ppm == 0)
    o.max_drift_ppm = 1000;
  tw_align_clock *c = tw_calloc(1, sizeof *c);
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM, "align clock: out of memory");
  c->o = o;
  c->ring = tw_calloc(o.max_points, sizeof *c->ring);
  c->hull = tw_calloc(o.max_points, sizeof *c->hull);
  if (c->ring == NULL || c->hull == NULL) {
    tw_align_clock_free(c);
    return tw_err_set(err, TW_ENOMEM, "align clock: out of memory");
  }
  *out = c;
  return TW_OK;
}

void tw_align_clock_free(tw_align_clock *c) {
  if (c == NULL)
    return;
  tw_free(c->ring);
  tw_free(c->hull);
  tw_free(c);
}

void tw_align_clock_reset(tw_align_clock *c) {
  c->head = 0;
  c->n = 0;
  c->nhull = 0;
  c->sum_x = 0;
}

/* The envelope line y = a + b * x, from the hull edge over the mean x; a
 * single vertex (one point, or all x equal) gives the flat line through
 * the lowest point. Requires c->n > 0. */
static void line_of(const tw_align_clock *c, double *a, double *b) {
  if (c->nhull < 2) {
    *a = (double)pt(c, c->hull[0])->y;
    *b = 0;
    return;
  }
  double mean = (double)c->sum_x / (double)c->n;
  size_t j = 0;
  while (j + 2 < c->nhull && (double)pt(c, c->hull[j + 1])->x < mean)
    j++;
  const clock_point *p = pt(c, c->hull[j]), *q = pt(c, c->hull[j + 1]);
  /* Hull vertices have strictly increasing x: no division by zero. */
  *b = (double)(q->y - p->y) / (double)(q->x - p->x);
  *a = (double)p->y - *b * (double)p->x;
}

/* Moves the origin to the oldest point so x stays small over long runs. */
static void rebase(tw_align_clock *c) {
  int64_t shift = pt(c, c->head)->x;
  for (size_t i = 0; i < c->n; i++)
    pt(c, c->head + i)->x -= shift;
  c->x0 += shift;
  c->sum_x -= shift * (int64_t)c->n;
}

static void append(tw_align_clock *c, int64_t device, int64_t y) {
  if (c->n == 0) {
    c->x0 = device;
    c->head = 0;
    c->nhull = 0;
    c->sum_x = 0;
  }
  int64_t x = device - c->x0;
  if (c->n > 0 && x == pt(c, c->head + c->n - 1)->x) {
    /* Same device time: only the lowest delay matters to the envelope. */
    clock_point *last = pt(c, c->head + c->n - 1);
    if (y < last->y) {
      last->y = y;
      hull_rebuild(c);
    }
    c->last_dev = device;
    return;
  }
  if (c->n == c->o.max_points) {
    c->sum_x -= pt(c, c->head)->x;
    c->head++;
    c->n--;
    if (c->nhull > 0 && c->hull[0] < c->head)
      hull_rebuild(c);
  }
  size_t abs = c->head + c->n;
  *pt(c, abs) = (clock_point){x, y};
  c->n++;
  c->sum_x += x;
  hull_push(c, abs);
  c->last_dev = device;
  /* Slide the window by device time. */
  bool lost_vertex = false;
  while (c->n > 1 && x - pt(c, c->head)->x > c->o.window_ns) {
    c->sum_x -= pt(c, c->head)->x;
    if (c->hull[0] == c->head)
      lost_vertex = true;
    c->head++;
    c->n--;
  }
  if (lost_vertex)
    hull_rebuild(c);
  if (pt(c, c->head)->x > (INT64_C(1) << 42))
    rebase(c);
}

int tw_align_clock_add(tw_align_clock *c, int64_t device_ns, int64_t host_ns,
                       tw_align_clock_event *ev, tw_err *err) {
  tw_align_clock_event e = {TW_ALIGN_CLOCK_NONE, device_ns, 0};
  int64_t y;
  if (TW__CKD_SUB(&y, host_ns, device_ns))
    return tw_err_set(err, TW_ERANGE,
                      "align clock: host %lld - device %lld overflows",
                      (long long)host_ns, (long long)device_ns);
  if (c->n > 0) {
    int64_t dx;
    if (TW__CKD_SUB(&dx, device_ns, c->x0) || dx > INT64_MAX / 4 ||
        dx < INT64_MIN / 4) {
      e.kind = TW_ALIGN_CLOCK_JUMP_BACK;
      if (device_ns > c->last_dev)
        e.kind = TW_ALIGN_CLOCK_JUMP_BELOW;
    } else if (device_ns < c->last_dev) {
      if (c->last_dev - device_ns > c->o.jump_back_ns)
        e.kind = TW_ALIGN_CLOCK_JUMP_BACK;
      else
        e.kind = TW_ALIGN_CLOCK_REORDERED;
    } else {
      double a, b;
      line_of(c, &a, &b);
      double lim = c->o.max_drift_ppm * 1e-6;
      if (c->n < c->o.min_points || b > lim || b < -lim)
        b = 0, a = (double)pt(c, c->hull[0])->y; /* untrusted slope */
      double below = a + b * (double)dx - (double)y;
      if (below > (double)c->o.jump_ns) {
        e.kind = TW_ALIGN_CLOCK_JUMP_BELOW;
        e.step_ns = -(int64_t)llround(below);
      }
    }
  }
  if (e.kind == TW_ALIGN_CLOCK_REORDERED) {
    c->reordered++;
  } else {
    if (e.kind != TW_ALIGN_CLOCK_NONE) {
      if (e.kind == TW_ALIGN_CLOCK_JUMP_BACK) {
        double a, b;
        line_of(c, &a, &b);
        e.step_ns =
            (int64_t)llround((double)y - a - b * (double)(c->last_dev - c->x0));
      }
      c->jumps++;
      tw_align_clock_reset(c);
    }
    append(c, device_ns, y);
  }
  if (ev != NULL)
    *ev = e;
  return TW_OK;
}

void tw_align_clock_fit_get(const tw_align_clock *c, tw_align_clock_fit *f) {
  memset(f, 0, sizeof *f);
  f->jumps = c->jumps;
  f->reordered = c->reordered;
  if (c->n == 0)
    return;
  double a, b;
  line_of(c, &a, &b);
  f->valid = true;
  f->has_drift = c->nhull >= 2;
  f->count = c->n;
  f->hull_points = c->nhull;
  f->ref_device_ns = c->last_dev;
  f->offset_ns = (int64_t)llround(a + b * (double)(c->last_dev - c->x0));
  f->drift_ppm = b * 1e6;
  double sum = 0, max = 0;
  for (size_t i = 0; i < c->n; i++) {
    const clock_point *p = pt(c, c->head + i);
    double r = (double)p->y - (a + b * (double)p->x);
    if (r < 0)
      r = 0; /* rounding on hull vertices */
    sum += r;
    if (r > max)
      max = r;
  }
  f->residual_mean_ns = sum / (double)c->n;
  f->residual_max_ns = max;
}

int tw_align_clock_to_host(const tw_align_clock *c, int64_t device_ns,
                           int64_t *host_ns, tw_err *err) {
  if (c->n == 0)
    return tw_err_set(err, TW_ESTATE, "align clock: no points to convert with");
  double a, b;
  line_of(c, &a, &b);
  double off = a + b * ((double)device_ns - (double)c->x0);
  if (!(fabs(off) < 9e18))
    return tw_err_set(err, TW_ERANGE, "align clock: offset out of range");
  int64_t h;
  if (TW__CKD_ADD(&h, device_ns, (int64_t)llround(off)))
    return tw_err_set(err, TW_ERANGE,
                      "align clock: device time %lld out of range",
                      (long long)device_ns);
  *host_ns = h;
  return TW_OK;
}
