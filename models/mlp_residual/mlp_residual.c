/*
 * mlp_residual.c - a small learned block as a Twin model: a 2-16-1
 * multilayer perceptron with a tanh hidden layer, meant to learn the force
 * a physics model misses (friction, a nonlinear spring) from the position
 * and velocity it sees:
 *
 *   f = W2 . tanh(W1 [x, v] + b1) + b2
 *
 * It has no state: the force depends on this step's inputs only, so the
 * output feeds through from both (the descriptor omits feedthrough, which
 * means all inputs). Its VJP is not written by hand: step_ad records the
 * forward on the guest's AD tape and the SDK runs the tape backward.
 *
 * The default weights are a fixed, deterministic initialisation (small
 * sinusoids, no random generator), so every build describes the same
 * model; calibration replaces them.
 */
#include "twin_model.h"

#define HIDDEN 16

enum { IN_X, IN_V };     /* inputs */
enum { W1, B1, W2, B2 }; /* params */

static const tw_model_port inputs[] = {
    {.name = "x", .unit = "m", .size = 1, .default_ = TW_MODEL_VALUES(0.0)},
    {.name = "v", .unit = "m/s", .size = 1, .default_ = TW_MODEL_VALUES(0.0)},
};
static const tw_model_port outputs[] = {
    {.name = "force", .unit = "N", .size = 1},
};
static const tw_model_port params[] = {
    {.name = "W1", /* [HIDDEN, 2] row-major */
     .unit = "",
     .size = 2 * HIDDEN,
     .default_ = TW_MODEL_VALUES(
         0.1773, 0.5997, 0.5456, -0.5962, -0.3179, 0.5808, -0.4637, 0.2429,
         0.4374, -0.1631, 0.351, 0.0799, -0.5278, -0.4161, -0.2149, 0.473,
         0.5832, -0.5203, 0.0647, -0.5575, -0.5999, 0.5206, 0.0899, -0.4733,
         0.5767, -0.0053, -0.2385, -0.0794, -0.5152, 0.1625, 0.3713, 0.5535),
     .min = TW_MODEL_VALUES(-10.0),
     .max = TW_MODEL_VALUES(10.0)},
    {.name = "b1",
     .unit = "",
     .size = HIDDEN,
     .default_ = TW_MODEL_VALUES(0.1, -0.0666, -0.0112, 0.0816, -0.0975, 0.0483,
                                 0.0331, -0.0924, 0.0901, -0.0276, -0.0533,
                                 0.0986, -0.0781, 0.0055, 0.0708, -0.0998),
     .min = TW_MODEL_VALUES(-10.0),
     .max = TW_MODEL_VALUES(10.0)},
    {.name = "W2",
     .unit = "N",
     .size = HIDDEN,
     .default_ = TW_MODEL_VALUES(0.2674, 0.2728, 0.0718, -0.1836, -0.3, -0.1894,
                                 0.0645, 0.2696, 0.2707, 0.0669, -0.1875, -0.3,
                                 -0.1854, 0.0695, 0.2718, 0.2684),
     .min = TW_MODEL_VALUES(-100.0),
     .max = TW_MODEL_VALUES(100.0)},
    {.name = "b2",
     .unit = "N",
     .size = 1,
     .default_ = TW_MODEL_VALUES(0.0),
     .min = TW_MODEL_VALUES(-100.0),
     .max = TW_MODEL_VALUES(100.0)},
};

static int step_ad(tw_model_ad *a) {
  tw_tensor *xv[2] = {a->input[IN_X], a->input[IN_V]};
  tw_tensor *in = tw_model_ad_concat(a, 2, xv);
  tw_tensor *w1 = tw_model_ad_matrix(a, a->param[W1], HIDDEN, 2);
  tw_tensor *pre =
      tw_model_ad_add(a, tw_model_ad_matvec(a, w1, in), a->param[B1]);
  tw_tensor *h = tw_model_ad_tanh(a, pre);
  a->output[0] =
      tw_model_ad_add(a, tw_model_ad_dot(a, a->param[W2], h), a->param[B2]);
  return TW_OK;
}

static const tw_model_def mlp_residual = {
    .name = "mlp_residual",
    .version = "1.0.0",
    .inputs = inputs,
    .ninputs = TW_MODEL_COUNT(inputs),
    .outputs = outputs,
    .noutputs = TW_MODEL_COUNT(outputs),
    .params = params,
    .nparams = TW_MODEL_COUNT(params),
    .step_ad = step_ad,
};
TW_MODEL(mlp_residual);
