/* test_checkpoint.c - checkpoint schedules, run by a simulated executor.
 *
 * The executor's "state" is the step it represents: ADVANCE from->to checks
 * the current state is x[from] and makes it x[to]; STORE and RESTORE keep
 * and check step numbers in the slots; REVERSE must see x[step] current and
 * the steps T-1..0 once each, in that order. The advance steps it counts are
 * compared with tw_ckpt_advance_steps and, for revolve, with an exhaustive
 * dynamic program over every schedule shape (the optimum for T, K) and with
 * the paper's closed form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tw_test.h"
#include "twin/checkpoint.h"

/* The largest parameter a spec may carry: 2^31. */
#define PARAM_TOP ((uint32_t)1 << 31)

/* What one run of a schedule did. */
typedef struct run {
  int64_t advanced; /* steps the ADVANCE actions ran */
  int64_t actions;  /* actions before DONE */
  uint32_t slots;   /* tw_ckpt_slots */
  uint32_t used;    /* highest slot index stored into + 1 */
  int64_t cost;     /* tw_ckpt_advance_steps */
} run;

/* Runs spec over steps with the simulated executor, asserting every rule
 * of the action stream, and fills r. */
static void run_schedule(tw_ckpt_kind kind, uint32_t param, int64_t steps,
                         run *r) {
  tw_ckpt_spec spec = {kind, param};
  tw_ckpt *c = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, steps, &c, &err), TW_OK);
  memset(r, 0, sizeof *r);
  r->slots = tw_ckpt_slots(c);
  r->cost = tw_ckpt_advance_steps(c);
  int64_t *slot_step = malloc(((size_t)r->slots + 1) * sizeof *slot_step);
  assert_non_null(slot_step);
  for (uint32_t i = 0; i < r->slots; i++)
    slot_step[i] = -1;
  int64_t current = 0, next_reverse = steps - 1;
  /* Every action but DONE advances, stores, restores or reverses; a bound
   * that a correct schedule cannot reach catches a loop. */
  int64_t limit = 4 * (r->cost + steps) + 16;
  tw_ckpt_action a;
  for (;;) {
    tw_ckpt_next(c, &a);
    if (a.op == TW_CKPT_DONE)
      break;
    assert_true(++r->actions <= limit);
    switch (a.op) {
    case TW_CKPT_ADVANCE:
      assert_int_equal(a.step, current);
      assert_true(a.to > a.step);
      assert_true(a.to < steps);
      r->advanced += a.to - a.step;
      current = a.to;
      break;
    case TW_CKPT_STORE:
      assert_true(a.slot < r->slots);
      assert_true(current >= 0);
      assert_int_equal(a.step, current);
      slot_step[a.slot] = a.step;
      if (a.slot + 1 > r->used)
        r->used = a.slot + 1;
      break;
    case TW_CKPT_RESTORE:
      assert_true(a.slot < r->slots);
      assert_true(slot_step[a.slot] >= 0);
      assert_int_equal(slot_step[a.slot], a.step);
      current = a.step;
      break;
    case TW_CKPT_REVERSE:
      assert_true(next_reverse >= 0);
      assert_int_equal(a.step, next_reverse);
      assert_int_equal(a.step, current);
      next_reverse--;
      current = -1; /* undefined after a reverse */
      break;
    case TW_CKPT_DONE:
      break;
    }
  }
  assert_int_equal(next_reverse, -1);
  for (int i = 0; i < 3; i++) {
    memset(&a, 0xff, sizeof a);
    tw_ckpt_next(c, &a);
    assert_int_equal(a.op, TW_CKPT_DONE);
  }
  free(slot_step);
  tw_ckpt_free(c);
  assert_int_equal(r->advanced, r->cost);
  assert_int_equal(r->used, r->slots);
}

/* ------------------------------------------------------------------------ */
/* The references for revolve. */

#define DP_T 200
#define DP_K 16

/* p[T][K]: the fewest advance steps that reverse T steps with K slots, one
 * of them holding x[0]: advance m steps and keep x[m] (K-1 slots left for
 * the last T-m steps), then reverse the first m steps with all K again. */
static int64_t dp[DP_T + 1][DP_K + 1];

static void dp_fill(void) {
  for (int k = 1; k <= DP_K; k++)
    dp[1][k] = 0;
  for (int t = 2; t <= DP_T; t++) {
    dp[t][1] = (int64_t)t * (t - 1) / 2;
    for (int k = 2; k <= DP_K; k++) {
      int64_t best = INT64_MAX;
      for (int m = 1; m < t; m++) {
        int64_t v = m + dp[t - m][k - 1] + dp[m][k];
        if (v < best)
          best = v;
      }
      dp[t][k] = best;
    }
  }
}

/* C(n, r) for the small arguments of these tests. */
static int64_t binom(int64_t n, int64_t r) {
  if (r < 0 || n < r)
    return 0;
  if (r > n - r)
    r = n - r;
  int64_t b = 1;
  for (int64_t i = 1; i <= r; i++)
    b = b * (n - r + i) / i;
  return b;
}

/* Griewank & Walther: t*T - beta(K+1, t-1), t the smallest integer with
 * beta(K, t) = C(K+t, t) >= T. */
static int64_t revolve_formula(int64_t steps, int64_t k) {
  int64_t t = 0;
  for (int64_t b = 1; b < steps; b = b * (k + t) / t) /* C(k+t, t) */
    t++;
  return t * steps - binom(k + 1 + t - 1, t - 1);
}

static int64_t ceil_sqrt(int64_t n) {
  int64_t r = (int64_t)sqrt((double)n);
  while (r * r < n)
    r++;
  while (r > 1 && (r - 1) * (r - 1) >= n)
    r--;
  return r;
}

/* ------------------------------------------------------------------------ */

static void all_stores_every_state_once(void **state) {
  (void)state;
  run r;
  for (int64_t t = 1; t <= 200; t++) {
    run_schedule(TW_CKPT_ALL, 0, t, &r);
    assert_int_equal(r.cost, t - 1);
    assert_int_equal(r.slots, t - 1);
    /* T-1 stores and advances, T reverses, T-1 restores. */
    assert_int_equal(r.actions, 4 * t - 3);
  }
  run_schedule(TW_CKPT_ALL, 0, 10000, &r);
  assert_int_equal(r.cost, 9999);
}

static void periodic_recomputes_one_segment_at_a_time(void **state) {
  (void)state;
  run r;
  for (int64_t t = 1; t <= 200; t++) {
    int64_t root = ceil_sqrt(t);
    for (int64_t p = 1; p <= 13; p++) {
      int64_t c = p == 13 ? root : p;
      run_schedule(TW_CKPT_PERIODIC, (uint32_t)c, t, &r);
      int64_t cc = c < t ? c : t;
      int64_t segs = (t + cc - 1) / cc;
      assert_true(r.slots <= segs + cc);
      assert_int_equal(r.cost, (segs - 1) * cc + t - segs);
      assert_true(r.cost <= 2 * t);
      if (c == root)
        assert_true((double)r.slots <= 2.0 * sqrt((double)t) + 2.0);
    }
    /* An interval of T or more is one segment: like `all`. */
    run_schedule(TW_CKPT_PERIODIC, (uint32_t)t + 5, t, &r);
    assert_int_equal(r.cost, t - 1);
    assert_int_equal(r.slots, t - 1);
  }
  /* periodic:1 is `all`. */
  run_schedule(TW_CKPT_PERIODIC, 1, 57, &r);
  assert_int_equal(r.slots, 56);
  assert_int_equal(r.cost, 56);
  run_schedule(TW_CKPT_PERIODIC, 100, 10000, &r);
  assert_true(r.slots <= 200);
  assert_int_equal(r.cost, 99 * 100 + 10000 - 100);
}

static void revolve_takes_the_fewest_steps(void **state) {
  (void)state;
  dp_fill();
  /* The closed form against the exhaustive program. */
  for (int64_t t = 1; t <= DP_T; t++)
    for (int64_t k = 1; k <= DP_K; k++)
      assert_int_equal(revolve_formula(t, k), dp[t][k]);
  run r;
  for (int64_t t = 1; t <= DP_T; t++) {
    int64_t root = ceil_sqrt(t);
    for (int64_t p = 1; p <= 13; p++) {
      int64_t k = p == 13 ? root : p;
      run_schedule(TW_CKPT_REVOLVE, (uint32_t)k, t, &r);
      assert_int_equal(r.advanced, dp[t][k]);
      assert_true(r.slots <= k);
    }
  }
  /* K = 1 restarts from x[0] for every step. */
  run_schedule(TW_CKPT_REVOLVE, 1, 100, &r);
  assert_int_equal(r.cost, 100 * 99 / 2);
  assert_int_equal(r.slots, 1);
}

static void revolve_with_enough_slots_never_recomputes(void **state) {
  (void)state;
  run r;
  for (int64_t t = 1; t <= 200; t++) {
    for (int64_t extra = -1; extra <= 2; extra++) {
      int64_t k = t + extra > 0 ? t + extra : 1;
      if (k < t - 1)
        continue;
      run_schedule(TW_CKPT_REVOLVE, (uint32_t)k, t, &r);
      assert_int_equal(r.cost, t - 1);
      assert_int_equal(r.slots, t - 1);
    }
  }
  run_schedule(TW_CKPT_REVOLVE, PARAM_TOP, 300, &r);
  assert_int_equal(r.cost, 299);
}

static void long_rollouts(void **state) {
  (void)state;
  run r;
  run_schedule(TW_CKPT_REVOLVE, 32, 10000, &r);
  assert_int_equal(r.cost, revolve_formula(10000, 32));
  assert_int_equal(r.cost, 4 * 10000 - 7140); /* t = 4, C(36, 3) = 7140 */
  run_schedule(TW_CKPT_REVOLVE, 100, 10000, &r);
  assert_int_equal(r.cost, revolve_formula(10000, 100));
  run_schedule(TW_CKPT_REVOLVE, 5, 3000, &r);
  assert_int_equal(r.cost, revolve_formula(3000, 5));
  run_schedule(TW_CKPT_REVOLVE, 2, 2000, &r);
  assert_int_equal(r.cost, revolve_formula(2000, 2));
  run_schedule(TW_CKPT_PERIODIC, 100, 10000, &r);
  assert_int_equal(r.slots, 100 + 98);
}

/* Schedules far too long to run are still planned exactly and cheaply. */
static void huge_rollouts_are_planned(void **state) {
  (void)state;
  tw_ckpt *c = NULL;
  tw_ckpt_spec spec = {TW_CKPT_REVOLVE, 64};
  int64_t t = 1000000000000; /* 10^12 */
  assert_int_equal(tw_ckpt_new(&spec, t, &c, NULL), TW_OK);
  assert_int_equal(tw_ckpt_advance_steps(c), revolve_formula(t, 64));
  assert_int_equal(tw_ckpt_slots(c), 64);
  /* The first actions: keep x[0], then advance part way. */
  tw_ckpt_action a;
  tw_ckpt_next(c, &a);
  assert_int_equal(a.op, TW_CKPT_STORE);
  assert_int_equal(a.slot, 0);
  assert_int_equal(a.step, 0);
  tw_ckpt_next(c, &a);
  assert_int_equal(a.op, TW_CKPT_ADVANCE);
  assert_int_equal(a.step, 0);
  assert_true(a.to > 0 && a.to < t);
  tw_ckpt_free(c);

  spec.kind = TW_CKPT_PERIODIC;
  spec.param = 1000000;
  assert_int_equal(tw_ckpt_new(&spec, t, &c, NULL), TW_OK);
  assert_int_equal(tw_ckpt_advance_steps(c),
                   (int64_t)999999 * 1000000 + t - 1000000); /* 10^6 segments */
  assert_int_equal(tw_ckpt_slots(c), 1000000 + 999998);
  tw_ckpt_free(c);

  /* K = 2 with an enormous T still answers at once (t ~ sqrt(2T)). */
  spec.kind = TW_CKPT_REVOLVE;
  spec.param = 2;
  assert_int_equal(tw_ckpt_new(&spec, 3000000000, &c, NULL), TW_OK);
  assert_int_equal(tw_ckpt_advance_steps(c), revolve_formula(3000000000, 2));
  tw_ckpt_free(c);
}

/* Writes the whole action stream of spec over steps in a compact notation:
 * S<slot>=<step>, A<from>-<to>, R<slot>=<step>, V<step> (reverse), D. */
static void stream_text(tw_ckpt_kind kind, uint32_t param, int64_t steps,
                        char *buf, size_t cap) {
  tw_ckpt_spec spec = {kind, param};
  tw_ckpt *c;
  assert_int_equal(tw_ckpt_new(&spec, steps, &c, NULL), TW_OK);
  size_t len = 0;
  tw_ckpt_action a;
  do {
    tw_ckpt_next(c, &a);
    long long step = (long long)a.step;
    int n = 0;
    switch (a.op) {
    case TW_CKPT_ADVANCE:
      n = snprintf(buf + len, cap - len, " A%lld-%lld", step, (long long)a.to);
      break;
    case TW_CKPT_STORE:
      n = snprintf(buf + len, cap - len, " S%u=%lld", a.slot, step);
      break;
    case TW_CKPT_RESTORE:
      n = snprintf(buf + len, cap - len, " R%u=%lld", a.slot, step);
      break;
    case TW_CKPT_REVERSE:
      n = snprintf(buf + len, cap - len, " V%lld", step);
      break;
    case TW_CKPT_DONE:
      n = snprintf(buf + len, cap - len, " D");
      break;
    }
    assert_true(n > 0 && (size_t)n < cap - len);
    len += (size_t)n;
  } while (a.op != TW_CKPT_DONE);
  tw_ckpt_free(c);
}

/* Whole streams, checked by hand (periodic, all) and against a
 * transcription of the classic revolve() routine (which agrees with this
 * implementation on every T <= 200, K <= 16). */
static void schedules_match_golden_streams(void **state) {
  (void)state;
  char buf[1024];
  stream_text(TW_CKPT_REVOLVE, 3, 10, buf, sizeof buf);
  assert_string_equal(buf, " S0=0 A0-4 S1=4 A4-7 S2=7 A7-9 V9 R2=7 A7-8 V8 "
                           "R2=7 V7 R1=4 A4-5 S2=5 A5-6 V6 R2=5 V5 R1=4 V4 "
                           "R0=0 A0-1 S1=1 A1-2 S2=2 A2-3 V3 R2=2 V2 R1=1 V1 "
                           "R0=0 V0 D");
  /* Segments [0,4) [4,8) [8,10); inner slots 3 and 4. */
  stream_text(TW_CKPT_PERIODIC, 4, 10, buf, sizeof buf);
  assert_string_equal(buf, " S0=0 A0-4 S1=4 A4-8 S2=8 A8-9 V9 R2=8 V8 R1=4 "
                           "A4-5 S3=5 A5-6 S4=6 A6-7 V7 R4=6 V6 R3=5 V5 R1=4 "
                           "V4 R0=0 A0-1 S3=1 A1-2 S4=2 A2-3 V3 R4=2 V2 R3=1 "
                           "V1 R0=0 V0 D");
  stream_text(TW_CKPT_ALL, 0, 4, buf, sizeof buf);
  assert_string_equal(buf, " S0=0 A0-1 S1=1 A1-2 S2=2 A2-3 V3 R2=2 V2 R1=1 V1 "
                           "R0=0 V0 D");
  stream_text(TW_CKPT_REVOLVE, 1, 4, buf, sizeof buf);
  assert_string_equal(buf, " S0=0 A0-3 V3 R0=0 A0-2 V2 R0=0 A0-1 V1 R0=0 V0 D");
  stream_text(TW_CKPT_REVOLVE, 4, 1, buf, sizeof buf);
  assert_string_equal(buf, " V0 D");
}

static void new_refuses_bad_arguments(void **state) {
  (void)state;
  tw_ckpt *c = (tw_ckpt *)&c; /* a sentinel that must stay untouched */
  tw_ckpt *const sentinel = c;
  tw_err err;
  tw_ckpt_spec spec = {TW_CKPT_REVOLVE, 4};

  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, 0, &c, &err), TW_EINVAL);
  assert_string_equal(err.msg, "revolve:4: a rollout has at least 1 step, "
                               "not 0");
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, -3, &c, &err), TW_EINVAL);

  spec.param = 0;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, 10, &c, &err), TW_EINVAL);
  assert_string_equal(err.msg, "revolve:0: the checkpoint budget is too small "
                               "to proceed: at least 1 slot is needed");
  spec.kind = TW_CKPT_PERIODIC;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, 10, &c, &err), TW_EINVAL);
  assert_string_equal(err.msg, "periodic:0: the checkpoint interval is too "
                               "small to proceed: at least 1 step is needed");

  spec.kind = (tw_ckpt_kind)9;
  spec.param = 3;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, 10, &c, &err), TW_EINVAL);

  /* Recomputation beyond int64: revolve:1 costs T(T-1)/2. */
  spec.kind = TW_CKPT_REVOLVE;
  spec.param = 1;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, (int64_t)1 << 33, &c, &err),
                   TW_EOVERFLOW);
  assert_non_null(strstr(err.msg, "revolve:1: 8589934592 steps"));
  /* The largest T whose cost fits: T(T-1)/2 <= 2^63-1 for T = 4294967296. */
  assert_int_equal(tw_ckpt_new(&spec, (int64_t)1 << 32, &c, NULL), TW_OK);
  assert_int_equal(tw_ckpt_advance_steps(c),
                   ((int64_t)1 << 31) * (((int64_t)1 << 32) - 1));
  tw_ckpt_free(c);
  c = sentinel;
  assert_int_equal(tw_ckpt_new(&spec, ((int64_t)1 << 32) + 1, &c, NULL),
                   TW_EOVERFLOW);
  for (uint32_t k = 2; k <= 64; k *= 2) {
    spec.param = k;
    assert_int_equal(tw_ckpt_new(&spec, INT64_MAX, &c, NULL), TW_EOVERFLOW);
  }
  spec.kind = TW_CKPT_PERIODIC;
  spec.param = PARAM_TOP;
  assert_int_equal(tw_ckpt_new(&spec, INT64_MAX, &c, NULL), TW_EOVERFLOW);
  /* `all` over 2^33 steps: its cost fits, its slots do not. */
  spec.kind = TW_CKPT_ALL;
  spec.param = 0;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_new(&spec, (int64_t)1 << 33, &c, &err),
                   TW_EOVERFLOW);
  assert_non_null(strstr(err.msg, "slots"));
  assert_ptr_equal(c, sentinel);

  tw_ckpt_free(NULL);
}

static void specs_round_trip(void **state) {
  (void)state;
  static const char *const good[] = {
      "all",          "periodic:1",          "periodic:7",
      "periodic:100", "periodic:2147483648", "revolve:1",
      "revolve:32",   "revolve:2147483648",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    tw_ckpt_spec spec = {TW_CKPT_REVOLVE, 99};
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_ckpt_spec_parse(good[i], &spec, &err), TW_OK);
    char buf[24];
    tw_ckpt_spec_format(&spec, buf, sizeof buf);
    assert_string_equal(buf, good[i]);
    tw_ckpt_spec again = {TW_CKPT_ALL, 0};
    assert_int_equal(tw_ckpt_spec_parse(buf, &again, NULL), TW_OK);
    assert_int_equal(again.kind, spec.kind);
    assert_int_equal(again.param, spec.param);
  }
  tw_ckpt_spec spec;
  assert_int_equal(tw_ckpt_spec_parse("revolve:32", &spec, NULL), TW_OK);
  assert_int_equal(spec.kind, TW_CKPT_REVOLVE);
  assert_int_equal(spec.param, 32);
  assert_int_equal(tw_ckpt_spec_parse("periodic:010", &spec, NULL), TW_OK);
  assert_int_equal(spec.kind, TW_CKPT_PERIODIC);
  assert_int_equal(spec.param, 10);
  assert_int_equal(tw_ckpt_spec_parse("all", &spec, NULL), TW_OK);
  assert_int_equal(spec.kind, TW_CKPT_ALL);
  /* A short buffer is truncated, never overrun. */
  char small[8];
  spec.kind = TW_CKPT_PERIODIC;
  spec.param = 123456;
  tw_ckpt_spec_format(&spec, small, sizeof small);
  assert_string_equal(small, "periodi");
}

static void bad_specs_are_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "revolve:",
      "periodic:",
      "revolve:-1",
      "revolve:+4",
      "revolve:3x",
      "revolve: 4",
      "revolve:4 ",
      " all",
      "all ",
      "all:3",
      "ALL",
      "Revolve:4",
      "binomial:4",
      "periodic",
      "revolve",
      "revolve:0x10",
      "revolve:2147483649",
      "periodic:4294967296",
      "revolve:99999999999999999999999999",
      "revolve:4:5",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tw_ckpt_spec spec = {TW_CKPT_PERIODIC, 77};
    tw_err err;
    tw_err_init(&err);
    assert_int_equal(tw_ckpt_spec_parse(bad[i], &spec, &err), TW_EINVAL);
    char quoted[64];
    (void)snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
    if (strstr(err.msg, quoted) == NULL)
      fail_msg("message for \"%s\" does not quote it: %s", bad[i], err.msg);
    assert_int_equal(spec.kind, TW_CKPT_PERIODIC);
    assert_int_equal(spec.param, 77);
  }
  tw_ckpt_spec spec;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_spec_parse("revolve:0", &spec, &err), TW_EINVAL);
  assert_string_equal(err.msg, "checkpoint schedule 'revolve:0': the "
                               "checkpoint budget is too small to proceed: "
                               "at least 1 slot is needed");
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_spec_parse("periodic:000", &spec, &err), TW_EINVAL);
  assert_non_null(strstr(err.msg, "'periodic:000'"));
  assert_non_null(strstr(err.msg, "at least 1 step"));
  tw_err_init(&err);
  assert_int_equal(tw_ckpt_spec_parse(NULL, &spec, &err), TW_EINVAL);
}

static int alloc_round(void) {
  static const tw_ckpt_spec specs[] = {
      {TW_CKPT_ALL, 0}, {TW_CKPT_PERIODIC, 7}, {TW_CKPT_REVOLVE, 5}};
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
    tw_ckpt *c = NULL;
    tw_err err;
    tw_err_init(&err);
    int rc = tw_ckpt_new(&specs[i], 100, &c, &err);
    if (rc != TW_OK) {
      assert_int_equal(rc, TW_ENOMEM);
      assert_null(c);
      assert_non_null(strstr(err.msg, "out of memory"));
      return rc;
    }
    tw_ckpt_action a;
    do
      tw_ckpt_next(c, &a);
    while (a.op != TW_CKPT_DONE);
    tw_ckpt_free(c);
  }
  return TW_OK;
}

static void allocation_failures(void **state) {
  (void)state;
  TW_TEST_ALLOC_FAILURES(alloc_round());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(all_stores_every_state_once),
      TW_TEST(periodic_recomputes_one_segment_at_a_time),
      TW_TEST(revolve_takes_the_fewest_steps),
      TW_TEST(revolve_with_enough_slots_never_recomputes),
      TW_TEST(long_rollouts),
      TW_TEST(huge_rollouts_are_planned),
      TW_TEST(schedules_match_golden_streams),
      TW_TEST(new_refuses_bad_arguments),
      TW_TEST(specs_round_trip),
      TW_TEST(bad_specs_are_refused),
      TW_TEST(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
