/*
 * checkpoint.c - checkpoint schedules for the discrete adjoint: all,
 * periodic:C and revolve:K, each a small state machine that yields one
 * action per tw_ckpt_next call.
 *
 * Invariants: a schedule never holds the whole action list, so its memory
 * does not grow with T (revolve keeps one int64 per slot: the step each
 * checkpoint holds). tw_ckpt_advance_steps is computed in closed form by
 * tw_ckpt_new, not counted while iterating; the unit tests check it against
 * the ADVANCE actions. tw_ckpt_slots is tight: the highest slot index any
 * STORE uses, plus one (0 when T == 1, which needs no slot).
 *
 * `all` is periodic with C = 1: every segment is one step long, so it
 * stores x[0..T-2] and reverses x[T-1] while it is current.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/checkpoint.h"

/* The largest parameter tw_ckpt_spec_parse accepts. */
#define PARAM_MAX ((uint32_t)1 << 31)

/* Where a periodic schedule is; see periodic_next. */
typedef enum periodic_phase {
  PH_STORE_START,   /* forward sweep: store segment seg's start */
  PH_ADVANCE_START, /* forward sweep: advance to segment seg+1's start */
  PH_OPEN,          /* reverse sweep: make segment seg's start current */
  PH_BODY,          /* its start is current: reverse it or recompute */
  PH_RECOMPUTE,     /* advance k -> k+1 inside the segment */
  PH_STORE_INNER,   /* store x[k] in its inner slot */
  PH_REVERSE_LAST,  /* reverse the segment's last step, which is current */
  PH_RESTORE,       /* restore x[k], k from the last step - 1 to the start */
  PH_REVERSE,       /* reverse step k */
  PH_NEXT           /* go to the previous segment, or finish */
} periodic_phase;

struct tw_ckpt {
  tw_ckpt_kind kind;
  int64_t steps;
  int64_t cost;   /* total ADVANCE steps */
  uint32_t slots; /* highest slot index used + 1 */
  bool done;
  /* periodic (and all): segment seg covers steps [seg*period, its end). */
  int64_t period, nseg, seg, k;
  uint32_t inner_base; /* first slot of the inner states x[start+1..] */
  periodic_phase phase;
  /* revolve: the state of Griewank & Walther's revolve() between calls.
   * ch[0..check] are the steps held by slots 0..check (check == -1: none),
   * strictly increasing; capo is the current step; steps fine.. T-1 have
   * been reversed. */
  int64_t snaps, capo, fine, check;
  int64_t ch[];
};

/* ----------------------------------------------------------------------- */
/* Binomials. beta(s, r) = C(s+r, r) is the number of steps that r sweeps
 * with s slots can reverse (Griewank & Walther's beta). */

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
  while (b != 0) {
    uint64_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

/* Given b = beta(s, i-1), returns beta(s, i) = b * (s+i) / i, saturating at
 * UINT64_MAX (and staying there). The division is exact, and is done before
 * the multiplication so that no intermediate is larger than the result. */
static uint64_t beta_step(uint64_t b, uint64_t s, uint64_t i) {
  if (b == UINT64_MAX)
    return b;
  uint64_t num = s + i;
  uint64_t g = gcd_u64(num, i);
  num /= g;
  b /= i / g; /* i/g divides b because it divides b*num and not num */
  return b > UINT64_MAX / num ? UINT64_MAX : b * num;
}

/* beta(s, r); 0 when s or r is negative (no slot or no sweep). */
static uint64_t beta(int64_t s, int64_t r) {
  if (s < 0 || r < 0)
    return 0;
  uint64_t b = 1;
  for (int64_t i = 1; i <= r; i++)
    b = beta_step(b, (uint64_t)s, (uint64_t)i);
  return b;
}

/* ----------------------------------------------------------------------- */
/* Actions. */

static void emit(tw_ckpt_action *out, tw_ckpt_op op, int64_t step, int64_t to,
                 uint32_t slot) {
  out->op = op;
  out->step = step;
  out->to = to;
  out->slot = slot;
}

static void emit_advance(tw_ckpt_action *out, int64_t from, int64_t to) {
  emit(out, TW_CKPT_ADVANCE, from, to, 0);
}

static void emit_slot(tw_ckpt_action *out, tw_ckpt_op op, int64_t slot,
                      int64_t step) {
  emit(out, op, step, 0, (uint32_t)slot);
}

static void emit_reverse(tw_ckpt_action *out, int64_t step) {
  emit(out, TW_CKPT_REVERSE, step, 0, 0);
}

/* ----------------------------------------------------------------------- */
/* periodic:C. The forward sweep stores the starts of segments 0..S-2 and
 * stops at the start of the last one. Then, for each segment from the
 * last: make its start current (it is already, for the last), recompute
 * the segment one step at a time keeping x[start+1..end-2] in the inner
 * slots, reverse end-1 while it is current, and reverse the others from
 * their slots; x[start] comes back from its segment slot. The last
 * segment's start is stored only when that segment is longer than one step
 * (it is stored on entering the segment, so slot S-1 is simply unused when
 * it is not needed).
 *
 * Slots: the stored starts (S or S-1) plus max(C-2, 0) inner slots, at most
 * ceil(T/C) + C - 2. Advance steps: (S-1)*C to reach the last segment, plus
 * L-1 to recompute each segment of length L: (S-1)*C + T - S. */

static void periodic_next(tw_ckpt *c, tw_ckpt_action *out) {
  for (;;) {
    int64_t start = c->seg * c->period;
    int64_t end = c->steps - start <= c->period ? c->steps : start + c->period;
    bool last = c->seg == c->nseg - 1;
    switch (c->phase) {
    case PH_STORE_START:
      emit_slot(out, TW_CKPT_STORE, c->seg, start);
      c->phase = PH_ADVANCE_START;
      return;
    case PH_ADVANCE_START:
      emit_advance(out, start, end);
      c->seg++;
      c->phase = c->seg == c->nseg - 1 ? PH_OPEN : PH_STORE_START;
      return;
    case PH_OPEN:
      c->phase = PH_BODY;
      if (!last) {
        emit_slot(out, TW_CKPT_RESTORE, c->seg, start);
        return;
      }
      break;
    case PH_BODY:
      c->k = start;
      if (end - start == 1) {
        emit_reverse(out, start);
        c->phase = PH_NEXT;
        return;
      }
      c->phase = PH_RECOMPUTE;
      if (last) {
        emit_slot(out, TW_CKPT_STORE, c->seg, start);
        return;
      }
      break;
    case PH_RECOMPUTE:
      emit_advance(out, c->k, c->k + 1);
      c->k++;
      c->phase = c->k < end - 1 ? PH_STORE_INNER : PH_REVERSE_LAST;
      return;
    case PH_STORE_INNER:
      emit_slot(out, TW_CKPT_STORE, c->inner_base + (c->k - start - 1), c->k);
      c->phase = PH_RECOMPUTE;
      return;
    case PH_REVERSE_LAST:
      emit_reverse(out, end - 1);
      c->k = end - 2;
      c->phase = PH_RESTORE;
      return;
    case PH_RESTORE:
      if (c->k > start)
        emit_slot(out, TW_CKPT_RESTORE, c->inner_base + (c->k - start - 1),
                  c->k);
      else
        emit_slot(out, TW_CKPT_RESTORE, c->seg, start);
      c->phase = PH_REVERSE;
      return;
    case PH_REVERSE:
      emit_reverse(out, c->k);
      if (c->k == start) {
        c->phase = PH_NEXT;
      } else {
        c->k--;
        c->phase = PH_RESTORE;
      }
      return;
    case PH_NEXT:
      if (c->seg == 0) {
        c->done = true;
        emit(out, TW_CKPT_DONE, 0, 0, 0);
        return;
      }
      c->seg--;
      c->phase = PH_OPEN;
      break;
    }
  }
}

/* Plans periodic:C for T steps: advance steps and slots. False if the
 * advance steps exceed INT64_MAX (slots are checked by the caller). */
static bool periodic_plan(int64_t steps, int64_t period, int64_t *nseg,
                          uint64_t *slots, uint64_t *cost) {
  uint64_t t = (uint64_t)steps, p = (uint64_t)period;
  uint64_t s = (t - 1) / p + 1;
  uint64_t last_len = t - (s - 1) * p;
  uint64_t stored = last_len == 1 ? s - 1 : s;
  /* (s-1)*p <= t-1, so the sum is below 2t < 2^64. */
  uint64_t total = (s - 1) * p + (t - s);
  *nseg = (int64_t)s;
  *slots = stored + (p > 2 ? p - 2 : 0);
  *cost = total;
  return total <= (uint64_t)INT64_MAX;
}

/* ----------------------------------------------------------------------- */
/* revolve:K, after the revolve() routine of Griewank & Walther, "Algorithm
 * 799: revolve", ACM TOMS 26(1), 2000. Its actions map as takeshot ->
 * STORE, advance -> ADVANCE, restore -> RESTORE, firsturn and youturn ->
 * REVERSE of the current step, terminate -> DONE. x[0] is the first
 * checkpoint, in slot 0.
 *
 * The optimal number of advance steps for T steps and K slots is
 * t*T - beta(K+1, t-1), t the smallest integer with beta(K, t) >= T
 * (the paper; NUMFRW in its code). Since beta(K+1, t-1) is the sum of
 * beta(K, i) for i < t, that is the sum of T - beta(K, i) for i < t: every
 * term is positive and below T, so the sum can be checked for overflow as
 * it grows without any larger intermediate. */

/* The optimal advance steps for T steps and K slots; false if more than
 * INT64_MAX. */
static bool revolve_cost(int64_t steps, int64_t snaps, uint64_t *cost) {
  uint64_t t = (uint64_t)steps;
  if (snaps == 1) {
    /* t(t-1)/2, in closed form: the sum below would take t iterations. */
    uint64_t a = t, b = t - 1;
    if (a % 2 == 0)
      a /= 2;
    else
      b /= 2;
    if (b != 0 && a > (uint64_t)INT64_MAX / b)
      return false;
    *cost = a * b;
    return true;
  }
  /* With K >= 2, beta(K, i) >= (i+1)(i+2)/2, so this loop ends after fewer
   * than sqrt(2T) + 1 terms, each of them a few dozen operations. */
  uint64_t sum = 0, b = 1;
  for (uint64_t i = 0; b < t;) {
    uint64_t term = t - b;
    if (term > (uint64_t)INT64_MAX - sum)
      return false;
    sum += term;
    i++;
    b = beta_step(b, (uint64_t)snaps, i);
  }
  *cost = sum;
  return true;
}

/* revolve's advance rule: with the checkpoint at capo, fine - capo >= 2
 * steps to go and ds slots counting capo's, the step to advance to. */
static int64_t revolve_target(int64_t capo, int64_t fine, int64_t ds) {
  uint64_t n = (uint64_t)(fine - capo);
  if (ds == 1)
    return fine - 1; /* the rule below gives this too, after n iterations */
  /* reps: the fewest sweeps that reverse n steps with ds slots. */
  uint64_t reps = 0, range = 1, prev = 0;
  while (range < n) {
    reps++;
    prev = range;
    range = beta_step(range, (uint64_t)ds, reps);
  }
  /* The paper's bino1..bino4, each below n. Its bino5 = beta(ds-3, reps)
   * only appears in range - bino5, which is bino1 + bino2 + bino3 by
   * Pascal's rule, so the comparisons need neither range (which may
   * saturate) nor bino5, and no sum that could overflow. */
  uint64_t bino1 = prev; /* beta(ds, reps-1) */
  uint64_t bino2 = beta(ds - 1, (int64_t)reps - 1);
  uint64_t bino3 = beta(ds - 2, (int64_t)reps - 1);
  uint64_t bino4 = beta(ds, (int64_t)reps - 2);
  uint64_t rest = n - bino1; /* > 0, as bino1 < n */
  int64_t to;
  if (rest <= bino3) /* n <= bino1 + bino3 */
    to = capo + (int64_t)bino4;
  else if (rest >= bino2 && rest - bino2 >= bino3) /* n >= range - bino5 */
    to = capo + (int64_t)bino1;
  else
    to = fine - (int64_t)bino2 - (int64_t)bino3;
  return to == capo ? capo + 1 : to;
}

static void revolve_next(tw_ckpt *c, tw_ckpt_action *out) {
  if (c->fine == 0) {
    /* Step 0 is reversed: terminate. */
    c->done = true;
    emit(out, TW_CKPT_DONE, 0, 0, 0);
    return;
  }
  if (c->capo == c->fine) {
    /* Steps capo.. are reversed: go back to the newest checkpoint. */
    assert(c->check >= 0);
    c->capo = c->ch[c->check];
    emit_slot(out, TW_CKPT_RESTORE, c->check, c->capo);
    return;
  }
  if (c->fine - c->capo == 1) {
    /* firsturn / youturn; a checkpoint of this step is no longer needed. */
    c->fine--;
    if (c->check >= 0 && c->ch[c->check] == c->capo)
      c->check--;
    emit_reverse(out, c->capo);
    return;
  }
  if (c->check < 0 || c->ch[c->check] != c->capo) {
    /* takeshot */
    c->check++;
    assert(c->check < (int64_t)c->slots);
    c->ch[c->check] = c->capo;
    emit_slot(out, TW_CKPT_STORE, c->check, c->capo);
    return;
  }
  int64_t from = c->capo;
  c->capo = revolve_target(c->capo, c->fine, c->snaps - c->check);
  emit_advance(out, from, c->capo);
}

/* ----------------------------------------------------------------------- */
/* Specs. */

void tw_ckpt_spec_format(const tw_ckpt_spec *spec, char *buf, size_t cap) {
  assert(spec != NULL && buf != NULL);
  if (cap == 0)
    return;
  switch (spec->kind) {
  case TW_CKPT_ALL:
    (void)snprintf(buf, cap, "all");
    break;
  case TW_CKPT_PERIODIC:
    (void)snprintf(buf, cap, "periodic:%" PRIu32, spec->param);
    break;
  case TW_CKPT_REVOLVE:
    (void)snprintf(buf, cap, "revolve:%" PRIu32, spec->param);
    break;
  default:
    (void)snprintf(buf, cap, "unknown:%" PRIu32, spec->param);
    break;
  }
}

/* The error for a parameter of 0; name says which schedule ("revolve:0"). */
static int param_too_small(tw_err *err, tw_ckpt_kind kind, const char *name) {
  if (kind == TW_CKPT_PERIODIC)
    return tw_err_set(err, TW_EINVAL,
                      "%s: the checkpoint interval is too small to proceed: "
                      "at least 1 step is needed",
                      name);
  return tw_err_set(err, TW_EINVAL,
                    "%s: the checkpoint budget is too small to proceed: at "
                    "least 1 slot is needed",
                    name);
}

int tw_ckpt_spec_parse(const char *text, tw_ckpt_spec *out, tw_err *err) {
  static const char expected[] =
      "expected all, periodic:N or revolve:N with N a whole number from 1 "
      "to 2147483648";
  if (text == NULL)
    return tw_err_set(err, TW_EINVAL, "checkpoint schedule: no text; %s",
                      expected);
  if (strcmp(text, "all") == 0) {
    out->kind = TW_CKPT_ALL;
    out->param = 0;
    return TW_OK;
  }
  tw_ckpt_kind kind;
  const char *p;
  if (strncmp(text, "periodic:", 9) == 0) {
    kind = TW_CKPT_PERIODIC;
    p = text + 9;
  } else if (strncmp(text, "revolve:", 8) == 0) {
    kind = TW_CKPT_REVOLVE;
    p = text + 8;
  } else {
    return tw_err_set(err, TW_EINVAL, "checkpoint schedule '%s': %s", text,
                      expected);
  }
  if (*p == '\0')
    return tw_err_set(err, TW_EINVAL, "checkpoint schedule '%s': %s", text,
                      expected);
  uint64_t v = 0;
  bool too_big = false;
  for (; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      return tw_err_set(err, TW_EINVAL, "checkpoint schedule '%s': %s", text,
                        expected);
    if (!too_big)
      v = v * 10 + (uint64_t)(*p - '0');
    if (v > PARAM_MAX)
      too_big = true;
  }
  if (too_big)
    return tw_err_set(err, TW_EINVAL,
                      "checkpoint schedule '%s': N is out of range: %s", text,
                      expected);
  if (v == 0) {
    /* The text is "revolve:" or "periodic:" and zeros, maybe many. */
    char name[64];
    if (strlen(text) <= 32)
      (void)snprintf(name, sizeof name, "checkpoint schedule '%s'", text);
    else
      (void)snprintf(name, sizeof name, "checkpoint schedule '%.32s...'", text);
    return param_too_small(err, kind, name);
  }
  out->kind = kind;
  out->param = (uint32_t)v;
  return TW_OK;
}

/* ----------------------------------------------------------------------- */
/* Schedules. */

int tw_ckpt_new(const tw_ckpt_spec *spec, int64_t steps, tw_ckpt **out,
                tw_err *err) {
  assert(spec != NULL && out != NULL);
  char name[32];
  tw_ckpt_spec_format(spec, name, sizeof name);
  if (spec->kind != TW_CKPT_ALL && spec->kind != TW_CKPT_PERIODIC &&
      spec->kind != TW_CKPT_REVOLVE)
    return tw_err_set(err, TW_EINVAL,
                      "checkpoint schedule kind %d is not all, periodic or "
                      "revolve",
                      (int)spec->kind);
  if (steps < 1)
    return tw_err_set(err, TW_EINVAL,
                      "%s: a rollout has at least 1 step, not %" PRId64, name,
                      steps);
  if (spec->kind != TW_CKPT_ALL && spec->param == 0)
    return param_too_small(err, spec->kind, name);

  uint64_t cost = 0, slots = 0;
  int64_t period = 0, nseg = 0;
  bool fits;
  if (spec->kind == TW_CKPT_REVOLVE) {
    fits = revolve_cost(steps, spec->param, &cost);
    slots =
        spec->param < (uint64_t)steps - 1 ? spec->param : (uint64_t)steps - 1;
  } else {
    int64_t p = spec->kind == TW_CKPT_ALL ? 1 : spec->param;
    period = p < steps ? p : steps;
    fits = periodic_plan(steps, period, &nseg, &slots, &cost);
  }
  if (!fits)
    return tw_err_set(err, TW_EOVERFLOW,
                      "%s: %" PRId64 " steps would take more than 2^63-1 "
                      "recomputed steps",
                      name, steps);
  if (slots > UINT32_MAX)
    return tw_err_set(err, TW_EOVERFLOW,
                      "%s: %" PRId64 " steps would need %" PRIu64
                      " slots, more than 2^32-1",
                      name, steps, slots);

  size_t nch = spec->kind == TW_CKPT_REVOLVE ? (size_t)slots : 0;
  if (nch > (SIZE_MAX - sizeof(tw_ckpt)) / sizeof(int64_t))
    return tw_err_set(err, TW_EOVERFLOW, "%s: %" PRIu64 " slots overflow", name,
                      slots);
  tw_ckpt *c = tw_alloc(sizeof(tw_ckpt) + nch * sizeof(int64_t));
  if (c == NULL)
    return tw_err_set(err, TW_ENOMEM,
                      "%s: out of memory for a schedule of %" PRId64 " steps",
                      name, steps);
  memset(c, 0, sizeof *c);
  c->kind = spec->kind;
  c->steps = steps;
  c->cost = (int64_t)cost;
  c->slots = (uint32_t)slots;
  c->period = period;
  c->nseg = nseg;
  c->inner_base = (uint32_t)(slots - (period > 2 ? period - 2 : 0));
  c->phase = nseg == 1 ? PH_OPEN : PH_STORE_START;
  c->snaps = spec->param;
  c->fine = steps;
  c->check = -1;
  *out = c;
  return TW_OK;
}

void tw_ckpt_free(tw_ckpt *c) { tw_free(c); }

void tw_ckpt_next(tw_ckpt *c, tw_ckpt_action *out) {
  assert(c != NULL && out != NULL);
  if (c->done)
    emit(out, TW_CKPT_DONE, 0, 0, 0);
  else if (c->kind == TW_CKPT_REVOLVE)
    revolve_next(c, out);
  else
    periodic_next(c, out);
}

uint32_t tw_ckpt_slots(const tw_ckpt *c) { return c->slots; }

int64_t tw_ckpt_advance_steps(const tw_ckpt *c) { return c->cost; }
