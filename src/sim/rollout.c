/*
 * rollout.c - T steps of a block forward, and the discrete adjoint of the
 * whole rollout under a checkpoint schedule.
 *
 * The reverse sweep carries gx, the cotangent of the current state, from
 * x[T] back to x[0]. REVERSE k (from the schedule) gets x[k] as the current
 * state; if the loss has a term at step k it re-runs step k forward to get
 * x[k+1] and y[k], evaluates the term and adds its gradient to the carried
 * cotangent; then the block's step VJP maps it to x[k] and accumulates the
 * parameter gradient. Loss terms are kept per step and summed in step order
 * at the end, so forward and gradient runs report the same loss to the bit,
 * and the parameter gradient accumulates in the same order (T-1 down to 0)
 * whatever the schedule: all schedules give bitwise-identical results.
 */
#include <math.h>
#include <string.h>

#include "twin/alloc.h"
#include "twin/sim.h"

static int check_opts(const tw_block *b, const tw_rollout_opts *o,
                      const double *x0, const double *theta, tw_err *err) {
  const char *name = tw_block_name(b);
  if (o == NULL || x0 == NULL ||
      (theta == NULL && tw_block_describe(b)->ntheta > 0))
    return tw_err_set(err, TW_EINVAL, "rollout of '%s': missing argument",
                      name);
  if (o->steps < 1)
    return tw_err_set(err, TW_EINVAL,
                      "rollout of '%s': the step count must be >= 1, got "
                      "%lld",
                      name, (long long)o->steps);
  if (!(o->dt > 0) || !isfinite(o->dt) || !isfinite(o->t0))
    return tw_err_set(err, TW_EINVAL,
                      "rollout of '%s': dt must be finite and > 0", name);
  if (!(o->clip_norm >= 0) || !isfinite(o->clip_norm))
    return tw_err_set(err, TW_EINVAL,
                      "rollout of '%s': clip_norm must be finite and >= 0",
                      name);
  return TW_OK;
}

/* TW_ENUMERIC naming block, phase, step and element if v has NaN/Inf. */
static int check_vec(const tw_block *b, const char *phase, const char *what,
                     int64_t k, const double *v, size_t n, tw_err *err) {
  for (size_t i = 0; v != NULL && i < n; i++)
    if (!isfinite(v[i]))
      return tw_err_set(err, TW_ENUMERIC,
                        "block '%s' (%s), %s of step %lld: %s in %s[%zu]",
                        tw_block_name(b), tw_block_describe(b)->kind, phase,
                        (long long)k, isnan(v[i]) ? "NaN" : "Inf", what, i);
  return TW_OK;
}

/* Working memory of one rollout, one allocation. */
typedef struct work {
  double *buf[2]; /* the two owned state vectors */
  double *cur;    /* the current state: a buf, or a slot after RESTORE */
  double *next;   /* where the next step writes: the buf cur is not */
  double *y;
  double *gx, *gx_term, *gy, *gu_row;
  double *terms; /* loss term per step */
  double *slots;
  void *mem;
} work;

static int work_alloc(work *w, const tw_block_desc *d, int64_t steps,
                      uint32_t nslots, bool grad, tw_err *err) {
  memset(w, 0, sizeof *w);
  size_t nx = d->nx, ny = d->ny, nu = d->nu;
  size_t n = 2 * nx + ny + (size_t)steps;
  if (grad)
    n += 2 * nx + ny + nu;
  if (nslots > 0 && nx > (SIZE_MAX / sizeof(double) - n) / nslots)
    return tw_err_set(err, TW_EOVERFLOW, "rollout: too much memory");
  /* Only the working vectors need zeros; the checkpoint slots (most of
   * the memory with a store-all schedule) are always written before they
   * are read, and zeroing them would cost as much as a forward pass. */
  size_t nwork = n;
  n += (size_t)nslots * nx;
  w->mem = tw_alloc((n ? n : 1) * sizeof(double));
  if (w->mem != NULL)
    memset(w->mem, 0, nwork * sizeof(double));
  if (w->mem == NULL)
    return tw_err_set(err, TW_ENOMEM,
                      "rollout: out of memory for %zu working values", n);
  double *p = w->mem;
  w->buf[0] = w->cur = p, p += nx;
  w->buf[1] = w->next = p, p += nx;
  w->y = p, p += ny;
  w->terms = p, p += (size_t)steps;
  if (grad) {
    w->gx = p, p += nx;
    w->gx_term = p, p += nx;
    w->gy = p, p += ny;
    w->gu_row = p, p += nu;
  }
  w->slots = p;
  return TW_OK;
}

/* Row k of the inputs, or NULL (all zero) when none were given: blocks
 * can then skip the input terms altogether. */
static const double *u_row(const double *u, size_t nu, int64_t k) {
  return u != NULL && nu > 0 ? u + (size_t)k * nu : NULL;
}

/* Sums loss terms in step order. */
static double sum_terms(const double *terms, int64_t steps) {
  double s = 0;
  for (int64_t k = 0; k < steps; k++)
    s += terms[k];
  return s;
}

static bool has_term(const tw_loss *loss, int64_t k, int64_t steps) {
  return loss != NULL && loss->term != NULL &&
         (!loss->final_only || k == steps - 1);
}

/* Points next at the owned buffer that cur is not, so a step never writes
 * into a checkpoint slot that cur may alias. */
static void set_next(work *w) {
  w->next = w->cur == w->buf[0] ? w->buf[1] : w->buf[0];
}

/* One plain step from w->cur into w->next (outputs into w->y if wanted). */
static int plain_step(tw_block *b, const tw_rollout_opts *o, work *w,
                      const double *theta, const double *u, int64_t k,
                      bool want_y, tw_err *err) {
  const tw_block_desc *d = tw_block_describe(b);
  tw_step_args a = {
      o->t0 + (double)k * o->dt, o->dt, k,       w->cur,
      u_row(u, d->nu, k),        theta, w->next, want_y ? w->y : NULL};
  int rc = tw_block_step(b, &a, err);
  if (rc == TW_OK && o->check_finite) {
    rc = check_vec(b, "forward", "x_next", k, w->next, d->nx, err);
    if (rc == TW_OK && want_y)
      rc = check_vec(b, "forward", "y", k, w->y, d->ny, err);
  }
  return rc;
}

int tw_sim_forward(tw_block *b, const tw_rollout_opts *o, const double *x0,
                   const double *theta, const double *u, const tw_loss *loss,
                   double *x_final, double *ys, double *loss_out, tw_err *err) {
  int rc = check_opts(b, o, x0, theta, err);
  if (rc != TW_OK)
    return rc;
  const tw_block_desc *d = tw_block_describe(b);
  work w;
  if ((rc = work_alloc(&w, d, o->steps, 0, false, err)) != TW_OK)
    return rc;
  memcpy(w.cur, x0, d->nx * sizeof(double));
  for (int64_t k = 0; k < o->steps && rc == TW_OK; k++) {
    bool term = has_term(loss, k, o->steps);
    rc = plain_step(b, o, &w, theta, u, k, term || ys != NULL, err);
    if (rc != TW_OK)
      break;
    if (ys != NULL)
      memcpy(ys + (size_t)k * d->ny, w.y, d->ny * sizeof(double));
    if (term) {
      double v = 0;
      rc = loss->term(loss->ud, k, o->steps, w.next, w.y, &v, NULL, NULL, err);
      w.terms[k] = v;
    }
    double *t = w.cur;
    w.cur = w.next;
    w.next = t;
  }
  if (rc == TW_OK) {
    if (x_final != NULL)
      memcpy(x_final, w.cur, d->nx * sizeof(double));
    if (loss_out != NULL)
      *loss_out = sum_terms(w.terms, o->steps);
  }
  tw_free(w.mem);
  return rc;
}

/* The step of the reverse sweep whose outputs the loss needs: a
 * linearisation, so the VJP that follows (tw_block_pullback) reuses the
 * step instead of running it again (blocks without one step as usual). */
static int lin_step(tw_block *b, const tw_rollout_opts *o, work *w,
                    const double *theta, const double *u, int64_t k,
                    tw_err *err) {
  const tw_block_desc *d = tw_block_describe(b);
  tw_step_args a = {o->t0 + (double)k * o->dt, o->dt, k,       w->cur,
                    u_row(u, d->nu, k),        theta, w->next, w->y};
  int rc = tw_block_linearize(b, &a, err);
  if (rc == TW_OK && o->check_finite) {
    rc = check_vec(b, "forward", "x_next", k, w->next, d->nx, err);
    if (rc == TW_OK)
      rc = check_vec(b, "forward", "y", k, w->y, d->ny, err);
  }
  return rc;
}

/* REVERSE k: the current state is x[k]. */
static int reverse_step(tw_block *b, const tw_rollout_opts *o, work *w,
                        const double *theta, const double *u,
                        const tw_loss *loss, int64_t k, double *gtheta,
                        double *gu, tw_err *err) {
  const tw_block_desc *d = tw_block_describe(b);
  bool term = has_term(loss, k, o->steps);
  const double *gy = NULL;
  if (term) {
    set_next(w);
    int rc = lin_step(b, o, w, theta, u, k, err);
    if (rc != TW_OK)
      return rc;
    double v = 0;
    memset(w->gx_term, 0, d->nx * sizeof(double));
    memset(w->gy, 0, d->ny * sizeof(double));
    rc = loss->term(loss->ud, k, o->steps, w->next, w->y, &v, w->gx_term, w->gy,
                    err);
    if (rc != TW_OK)
      return rc;
    w->terms[k] = v;
    for (size_t i = 0; i < d->nx; i++)
      w->gx[i] += w->gx_term[i];
    gy = w->gy;
  }
  tw_vjp_args a = {o->t0 + (double)k * o->dt,
                   o->dt,
                   k,
                   w->cur,
                   u_row(u, d->nu, k),
                   theta,
                   w->gx,
                   gy,
                   w->gx_term, /* the new carry; never aliases gx_next */
                   gu != NULL ? w->gu_row : NULL,
                   gtheta,
                   o->wrt};
  int rc = term ? tw_block_pullback(b, &a, err) : tw_block_step_vjp(b, &a, err);
  double *t = w->gx;
  w->gx = w->gx_term;
  w->gx_term = t;
  if (rc == TW_OK && o->check_finite) {
    rc = check_vec(b, "reverse", "the state adjoint", k, w->gx, d->nx, err);
    if (rc == TW_OK)
      rc = check_vec(b, "reverse", "the parameter adjoint", k, gtheta,
                     d->ntheta, err);
  }
  if (rc == TW_OK && gu != NULL)
    memcpy(gu + (size_t)k * d->nu, w->gu_row, d->nu * sizeof(double));
  return rc;
}

int tw_sim_grad(tw_block *b, const tw_rollout_opts *o, const double *x0,
                const double *theta, const double *u, const tw_loss *loss,
                double *gtheta, double *gx0, double *gu,
                tw_rollout_stats *stats, tw_err *err) {
  int rc = check_opts(b, o, x0, theta, err);
  if (rc != TW_OK)
    return rc;
  const tw_block_desc *d = tw_block_describe(b);
  if (gtheta == NULL && d->ntheta > 0)
    return tw_err_set(err, TW_EINVAL, "gradient of '%s': gtheta is NULL",
                      tw_block_name(b));
  if (!d->differentiable)
    return tw_err_set(err, TW_ENOTSUP,
                      "gradient of '%s': the block (%s) is not "
                      "differentiable",
                      tw_block_name(b), d->kind);
  if (loss == NULL || loss->term == NULL)
    return tw_err_set(err, TW_EINVAL, "gradient of '%s': no loss given",
                      tw_block_name(b));
  tw_ckpt *c;
  if ((rc = tw_ckpt_new(&o->schedule, o->steps, &c, err)) != TW_OK)
    return rc;
  uint32_t nslots = tw_ckpt_slots(c);
  work w;
  if ((rc = work_alloc(&w, d, o->steps, nslots, true, err)) != TW_OK) {
    tw_ckpt_free(c);
    return rc;
  }
  /* gtheta accumulates in a scratch copy so a failed run leaves the
   * caller's buffer untouched. */
  double *acc = NULL;
  if (d->ntheta > 0 && (acc = tw_calloc(d->ntheta, sizeof(double))) == NULL) {
    tw_free(w.mem);
    tw_ckpt_free(c);
    return tw_err_set(err, TW_ENOMEM, "gradient: out of memory");
  }
  memcpy(w.cur, x0, d->nx * sizeof(double));
  int64_t advanced = 0, reversed = 0;
  /* One action of lookahead: when an ADVANCE is followed by the STORE of
   * the state it ends on, the last step writes straight into that slot
   * and the STORE costs nothing (with store-all and periodic schedules
   * nearly every step is stored). */
  tw_ckpt_action act, ahead;
  bool have_ahead = false;
  for (;;) {
    if (have_ahead)
      act = ahead;
    else
      tw_ckpt_next(c, &act);
    have_ahead = false;
    if (rc != TW_OK || act.op == TW_CKPT_DONE)
      break;
    double *slot = w.slots + (size_t)act.slot * d->nx;
    switch (act.op) {
    case TW_CKPT_ADVANCE: {
      tw_ckpt_next(c, &ahead);
      have_ahead = true;
      double *into = NULL;
      if (ahead.op == TW_CKPT_STORE && ahead.step == act.to)
        into = w.slots + (size_t)ahead.slot * d->nx;
      for (int64_t k = act.step; k < act.to && rc == TW_OK; k++) {
        set_next(&w);
        if (k == act.to - 1 && into != NULL && into != w.cur)
          w.next = into;
        rc = plain_step(b, o, &w, theta, u, k, false, err);
        w.cur = w.next;
        advanced++;
      }
      break;
    }
    case TW_CKPT_STORE:
      if (slot != w.cur)
        memcpy(slot, w.cur, d->nx * sizeof(double));
      break;
    case TW_CKPT_RESTORE:
      /* No copy: the state is read in place; the next step writes into an
       * owned buffer (set_next). */
      w.cur = slot;
      break;
    case TW_CKPT_REVERSE:
      rc = reverse_step(b, o, &w, theta, u, loss, act.step, acc, gu, err);
      reversed++;
      break;
    case TW_CKPT_DONE:
      break;
    }
  }

  /* Ports outside wrt report 0, whatever a block left in them. */
  size_t off = 0;
  for (size_t p = 0; rc == TW_OK && o->wrt != NULL && p < d->nparams; p++) {
    if (!o->wrt[p] && acc != NULL)
      memset(acc + off, 0, d->params[p].size * sizeof(double));
    off += d->params[p].size;
  }
  double norm = 0;
  for (size_t i = 0; rc == TW_OK && i < d->ntheta; i++)
    norm += acc[i] * acc[i];
  norm = sqrt(norm);
  bool clipped = rc == TW_OK && o->clip_norm > 0 && norm > o->clip_norm;
  if (rc == TW_OK) {
    double scale = clipped ? o->clip_norm / norm : 1.0;
    for (size_t i = 0; i < d->ntheta; i++)
      gtheta[i] = acc[i] * scale;
    if (gx0 != NULL)
      memcpy(gx0, w.gx, d->nx * sizeof(double));
    if (stats != NULL) {
      stats->loss = sum_terms(w.terms, o->steps);
      stats->advance_steps = advanced;
      stats->reverse_steps = reversed;
      stats->checkpoint_bytes = (size_t)nslots * d->nx * sizeof(double);
      stats->grad_norm = norm;
      stats->clipped = clipped;
    }
  }
  tw_free(acc);
  tw_free(w.mem);
  tw_ckpt_free(c);
  return rc;
}
