/*
 * checkpoint.h - checkpoint schedules for the discrete adjoint of a
 * T-step rollout.
 *
 * Reverse mode over T steps needs the state x[k] at every step k, in the
 * order T-1, T-2, ..., 0. Keeping all of them costs O(T) memory; a schedule
 * trades memory for recomputation:
 *
 *   all          store every state: T-1 slots (x[T-1] is current when it
 *                is needed), no recomputation;
 *   periodic:C   store every C-th state, then recompute one segment of C
 *                states at a time: ceil(T/C) + C slots, ~T extra steps
 *                (C = sqrt(T) gives O(sqrt T) memory);
 *   revolve:K    binomial checkpointing (Griewank & Walther, "Algorithm 799:
 *                revolve", ACM TOMS 2000) with K slots: the fewest extra
 *                steps any schedule with K slots can take; K = O(log T)
 *                costs O(T log T) steps.
 *
 * A schedule is a stream of actions that an executor (the rollout) carries
 * out on its "current state" and its numbered slots:
 *
 *   ADVANCE  step -> to   run the plain forward from x[step] to x[to]
 *   STORE    slot, step   copy the current state x[step] into slot
 *   RESTORE  slot, step   make the state in slot (x[step]) current
 *   REVERSE  step         the current state is x[step]: re-run step with a
 *                         tape and run its adjoint (the current state is
 *                         undefined afterwards)
 *   DONE
 *
 * Every schedule issues REVERSE for T-1, T-2, ..., 0 exactly once each, in
 * that order, and the states it hands to them are recomputed with the same
 * kernels; so the gradient is bitwise the same whichever schedule is used.
 * The current state starts as x[0].
 *
 * Thread safety: a schedule belongs to one thread at a time.
 */
#ifndef TWIN_CHECKPOINT_H
#define TWIN_CHECKPOINT_H

#include "twin/common.h"
#include "twin/error.h"

TW_EXTERN_C_BEGIN

typedef enum tw_ckpt_kind {
  TW_CKPT_ALL = 0,
  TW_CKPT_PERIODIC = 1,
  TW_CKPT_REVOLVE = 2
} tw_ckpt_kind;

typedef struct tw_ckpt_spec {
  tw_ckpt_kind kind;
  uint32_t param; /* periodic: interval C >= 1; revolve: slots K >= 1 */
} tw_ckpt_spec;

/* Parses "all", "periodic:C" or "revolve:K" (C, K decimal, >= 1). TW_EINVAL
 * with a message quoting the text otherwise. */
TW_API int tw_ckpt_spec_parse(const char *text, tw_ckpt_spec *out, tw_err *err);

/* Writes the canonical text of spec ("revolve:32") to buf (cap >= 24). */
TW_API void tw_ckpt_spec_format(const tw_ckpt_spec *spec, char *buf,
                                size_t cap);

typedef enum tw_ckpt_op {
  TW_CKPT_ADVANCE,
  TW_CKPT_STORE,
  TW_CKPT_RESTORE,
  TW_CKPT_REVERSE,
  TW_CKPT_DONE
} tw_ckpt_op;

typedef struct tw_ckpt_action {
  tw_ckpt_op op;
  int64_t step;  /* ADVANCE: from; STORE/RESTORE: the state's step; REVERSE */
  int64_t to;    /* ADVANCE only */
  uint32_t slot; /* STORE/RESTORE only; < tw_ckpt_slots() */
} tw_ckpt_action;

typedef struct tw_ckpt tw_ckpt;

/* Makes the schedule of spec for a rollout of steps >= 1 steps. Errors:
 * steps < 1, a parameter of 0 ("a checkpoint budget too small to
 * proceed"), or a schedule whose recomputation would overflow int64. */
TW_API int tw_ckpt_new(const tw_ckpt_spec *spec, int64_t steps, tw_ckpt **out,
                       tw_err *err);

/* NULL is a no-op. */
TW_API void tw_ckpt_free(tw_ckpt *c);

/* The next action. After DONE, keeps returning DONE. */
TW_API void tw_ckpt_next(tw_ckpt *c, tw_ckpt_action *out);

/* Slots the executor must provide (the highest slot index + 1). */
TW_API uint32_t tw_ckpt_slots(const tw_ckpt *c);

/* Total steps the ADVANCE actions will run: the recomputation cost, known
 * before the run (REVERSE steps not included). */
TW_API int64_t tw_ckpt_advance_steps(const tw_ckpt *c);

TW_EXTERN_C_END

#endif /* TWIN_CHECKPOINT_H */
