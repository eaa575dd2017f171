/*
 * model_int.h - what the files of the model SDK share: the module's one
 * runtime record (the checked definition, port offsets, the descriptor,
 * view arrays, the tape) and the descriptor builder.
 *
 * Invariant: once tw__model_get_rt() returns the record, rt->def passed every
 * check of model.c, off[k][i] is the offset of port i of kind k in its
 * vector, n[k] the vector's length, and json holds the descriptor.
 */
#ifndef TWIN_MODEL_INT_H
#define TWIN_MODEL_INT_H

#include "twin_model.h"

/* Port kinds, in descriptor order. */
enum { TW__MK_STATE, TW__MK_INPUT, TW__MK_OUTPUT, TW__MK_PARAM, TW__MK_COUNT };

typedef struct tw__model_rt {
  const tw_model_def *def;
  const tw_model_port *ports[TW__MK_COUNT];
  size_t nports[TW__MK_COUNT];
  size_t *off[TW__MK_COUNT]; /* per port */
  size_t n[TW__MK_COUNT];    /* nx, nu, ny, ntheta */
  char *json;
  size_t json_len;
  /* Per-port pointer arrays handed to the callbacks (one allocation). */
  const double **v_x, **v_u, **v_theta, **v_gxn, **v_gy;
  double **v_xn, **v_y, **v_gx, **v_gu, **v_gtheta;
  /* step_ad: the tape and its leaf and result arrays. */
  tw_tape *tape;
  tw_tensor **t_x, **t_u, **t_theta, **t_xn, **t_y;
} tw__model_rt;

/* The checked runtime, set up on first use; NULL with *rc TW_EINVAL
 * (logged) for a bad definition, TW_ENOMEM when memory runs out. */
tw__model_rt *tw__model_get_rt(int *rc);

/* Builds rt->json from rt->def; returns TW_OK, TW_EINVAL (logged) for a
 * value JSON cannot hold, or TW_ENOMEM. */
int tw__model_build_json(tw__model_rt *rt);

/* Frees the runtime and forgets the setup, so that the next call sets it
 * up again from tw__model_def(): for tests of the SDK, which switch
 * definitions within one process. */
void tw__model_reset(void);

#ifndef __wasm__
/* Native builds only: when set, log lines go to this function instead of
 * stderr (tests capture them). */
extern void (*tw__model_log_hook)(int level, const char *msg, size_t len);
#endif

/* Name of a port kind as the descriptor spells it ("state", "inputs"...). */
const char *tw__model_kind_name(int kind);

#endif /* TWIN_MODEL_INT_H */
