/* test_sdk.c - the model SDK itself (sdk/model/src), natively, with
 * definitions switched between tests (tw__model_reset): definition checks
 * and their messages, the generated descriptor (values, broadcast,
 * feedthrough forms, escaping, round-trip numbers), init defaults, the
 * per-port views, the hand-written VJP's zeroed gx/gu, and step_ad: its
 * errors, the helpers' sticky failures, broadcasting and concat adjoints,
 * and a model without a VJP. */
#include <math.h>
#include <string.h>

#include "model_int.h"
#include "tw_test.h"

static tw_model_def cur;
TW_MODEL(cur);

static char last_log[1100];
static int last_level = -1;

static void capture(int level, const char *msg, size_t len) {
  last_level = level;
  (void)snprintf(last_log, sizeof last_log, "%.*s", (int)len, msg);
}

/* --- Fixtures --------------------------------------------------------- */

static int copy_step(const tw_model_call *c) {
  c->x_next[0] = c->x[0];
  return TW_OK;
}

/* Switches to def, forgetting the previous runtime. */
static void use(const tw_model_def *def) {
  tw__model_reset();
  cur = *def;
  last_log[0] = '\0';
  last_level = -1;
}

static json_t *descriptor(void) {
  size_t len = 0;
  const char *text = tw_model_describe(&len);
  assert_non_null(text);
  json_t *root = NULL;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_json_parse(text, len, "descriptor", &root, &err), TW_OK);
  return root;
}

static int teardown(void **state) {
  tw__model_reset();
  return tw_test_teardown(state);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, tw_test_setup, teardown)

/* --- Definitions -------------------------------------------------------- */

typedef struct bad_case {
  tw_model_def def;
  const char *msg;
} bad_case;

static const tw_model_port zero_size[] = {{.name = "x", .size = 0}};
static const tw_model_port twice[] = {{.name = "x", .size = 1},
                                      {.name = "x", .size = 1}};
static const tw_model_port two_of_three[] = {
    {.name = "p", .size = 3, .default_ = TW_MODEL_VALUES(1, 2)}};
static const tw_model_port bounded_input[] = {
    {.name = "u", .size = 1, .min = TW_MODEL_VALUES(0)}};
static const tw_model_port ft_input[] = {
    {.name = "u", .size = 1, .feedthrough = ""}};
static const tw_model_port ft_unknown[] = {
    {.name = "y", .size = 1, .feedthrough = "u, nope"}};
static const tw_model_port out_default[] = {
    {.name = "y", .size = 1, .default_ = TW_MODEL_VALUES(1)}};
static const tw_model_port inf_default[] = {
    {.name = "p", .size = 1, .default_ = TW_MODEL_VALUES(INFINITY)}};
static const tw_model_port an_input[] = {{.name = "u", .size = 1}};

static void bad_definitions_fail_every_call_with_a_message(void **state) {
  (void)state;
  const bad_case cases[] = {
      {{.name = "", .step = copy_step}, "has no name"},
      {{.name = "m"}, "neither step nor step_ad"},
      {{.name = "m", .nstate = 1, .step = copy_step}, "1 state ports but no"},
      {{.name = "m", .state = zero_size, .nstate = 1, .step = copy_step},
       "state 'x' has size 0"},
      {{.name = "m", .state = twice, .nstate = 2, .step = copy_step},
       "state 'x' is defined twice"},
      {{.name = "m", .params = two_of_three, .nparams = 1, .step = copy_step},
       "params 'p': default has 2 values, expected 1 or 3"},
      {{.name = "m", .inputs = bounded_input, .ninputs = 1, .step = copy_step},
       "inputs 'u' has bounds"},
      {{.name = "m", .inputs = ft_input, .ninputs = 1, .step = copy_step},
       "inputs 'u' has a feedthrough list"},
      {{.name = "m",
        .inputs = an_input,
        .ninputs = 1,
        .outputs = ft_unknown,
        .noutputs = 1,
        .step = copy_step},
       "feedthrough names 'nope', which is not an input"},
      {{.name = "m", .outputs = out_default, .noutputs = 1, .step = copy_step},
       "output 'y' has a default"},
      {{.name = "m", .params = inf_default, .nparams = 1, .step = copy_step},
       "the default of 'p' is not finite"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    use(&cases[i].def);
    size_t len = 7;
    assert_null(tw_model_describe(&len));
    if (strstr(last_log, cases[i].msg) == NULL)
      fail_msg("case %zu: log '%s' lacks '%s'", i, last_log, cases[i].msg);
    assert_int_equal(last_level, TW_MODEL_LOG_ERROR);
    double x[4] = {0}, y[4];
    assert_int_equal(tw_model_step(0, 0.1, x, x, x, x, y), TW_EINVAL);
    assert_int_equal(tw_model_init(x, x), TW_EINVAL);
    size_t nx, nu, ny, nt;
    tw_model_sizes(&nx, &nu, &ny, &nt);
    assert_true(nx == 0 && nu == 0 && ny == 0 && nt == 0);
  }
}

/* --- The descriptor ------------------------------------------------------ */

static const tw_model_port d_state[] = {
    {.name = "q", .unit = "m", .size = 2, .default_ = TW_MODEL_VALUES(1, 2)}};
static const tw_model_port d_inputs[] = {
    {.name = "a", .unit = NULL, .size = 1, .default_ = TW_MODEL_VALUES(0.1)},
    {.name = "b", .unit = "N\"m\\s\n", .size = 3}};
static const tw_model_port d_outputs[] = {
    {.name = "all", .size = 1},
    {.name = "none", .size = 1, .feedthrough = ""},
    {.name = "some", .size = 2, .feedthrough = " b,a "}};
static const tw_model_port d_params[] = {
    {.name = "k", .size = 3, .default_ = TW_MODEL_VALUES(1e-300, -0.5, 3)},
    {.name = "c",
     .size = 2,
     .default_ = TW_MODEL_VALUES(0.1),
     .min = TW_MODEL_VALUES(-1e308),
     .max = TW_MODEL_VALUES(123456789.123, 2.5)},
    {.name = "z", .size = 1}};

static void descriptor_says_what_the_tables_say(void **state) {
  (void)state;
  tw_model_def def = {.name = "d",
                      .state = d_state,
                      .nstate = 1,
                      .inputs = d_inputs,
                      .ninputs = 2,
                      .outputs = d_outputs,
                      .noutputs = 3,
                      .params = d_params,
                      .nparams = 3,
                      .step = copy_step};
  use(&def);
  json_t *root = descriptor();
  assert_string_equal(json_string_value(json_object_get(root, "version")), "0");
  assert_true(json_is_false(json_object_get(root, "differentiable")));
  json_t *in = json_object_get(root, "inputs");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(in, 0), "unit")), "");
  assert_true(json_number_value(
                  json_object_get(json_array_get(in, 0), "default")) == 0.1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(in, 1), "unit")),
      "N\"m\\s\n");
  assert_null(json_object_get(json_array_get(in, 1), "default"));
  json_t *out = json_object_get(root, "outputs");
  assert_null(json_object_get(json_array_get(out, 0), "feedthrough"));
  json_t *none = json_object_get(json_array_get(out, 1), "feedthrough");
  assert_true(json_is_array(none) && json_array_size(none) == 0);
  json_t *some = json_object_get(json_array_get(out, 2), "feedthrough");
  assert_int_equal(json_array_size(some), 2);
  assert_string_equal(json_string_value(json_array_get(some, 0)), "b");
  assert_string_equal(json_string_value(json_array_get(some, 1)), "a");
  json_t *par = json_object_get(root, "params");
  json_t *k = json_object_get(json_array_get(par, 0), "default");
  assert_true(json_number_value(json_array_get(k, 0)) == 1e-300);
  assert_true(json_number_value(json_array_get(k, 1)) == -0.5);
  json_t *c = json_array_get(par, 1);
  assert_true(json_number_value(json_object_get(c, "min")) == -1e308);
  assert_true(json_number_value(json_array_get(json_object_get(c, "max"), 0)) ==
              123456789.123);
  /* A param without a default gets 0; a state has none in the ABI. */
  assert_true(json_number_value(
                  json_object_get(json_array_get(par, 2), "default")) == 0);
  assert_null(json_object_get(json_array_get(json_object_get(root, "state"), 0),
                              "default"));
  json_decref(root);
  size_t nx, nu, ny, nt;
  tw_model_sizes(&nx, &nu, &ny, &nt);
  assert_true(nx == 2 && nu == 4 && ny == 4 && nt == 6);
  /* Not differentiable: no VJP. */
  double z[8] = {0}, g[8];
  assert_int_equal(tw_model_step_vjp(0, 0.1, z, z, z, z, z, g, g, g),
                   TW_ENOTSUP);
  /* Without init, tw_init writes the state defaults. */
  double x0[2];
  assert_int_equal(tw_model_init(z, x0), TW_OK);
  assert_true(x0[0] == 1 && x0[1] == 2);
}

/* --- Views and the hand-written VJP ---------------------------------------
 */

static const tw_model_port v_state[] = {{.name = "a", .size = 2},
                                        {.name = "b", .size = 3}};
static const tw_model_port v_inputs[] = {{.name = "u", .size = 1},
                                         {.name = "w", .size = 2}};
static const tw_model_port v_outputs[] = {{.name = "y", .size = 4},
                                          {.name = "z", .size = 1}};
static const tw_model_port v_params[] = {{.name = "p", .size = 1},
                                         {.name = "q", .size = 5}};

static int views_step(const tw_model_call *c) {
  bool ok = c->state[0] == c->x && c->state[1] == c->x + 2 &&
            c->input[1] == c->u + 1 && c->param[1] == c->theta + 1 &&
            c->state_next[1] == c->x_next + 2 && c->output[1] == c->y + 4;
  for (int i = 0; i < 5; i++)
    c->x_next[i] = ok ? c->x[i] + c->theta[0] : NAN;
  for (int i = 0; i < 5; i++)
    c->y[i] = c->x[0];
  return ok ? TW_OK : TW_EINTERNAL;
}

static int views_init(const tw_model_call *c) {
  assert_null(c->x);
  assert_true(c->param[1] == c->theta + 1);
  assert_true(c->state_next[1] == c->x_next + 2);
  for (int i = 0; i < 5; i++)
    c->x_next[i] = c->param[1][i];
  return TW_OK;
}

/* Adds 1 into every cotangent: the SDK must have zeroed gx and gu. */
static int views_vjp(const tw_model_call *c) {
  bool ok = c->g_state[1] == c->gx + 2 && c->g_input[1] == c->gu + 1 &&
            c->g_param[1] == c->gtheta + 1 &&
            c->g_state_next[1] == c->gx_next + 2 && c->g_output[1] == c->gy + 4;
  for (int i = 0; i < 5; i++)
    c->gx[i] += 1;
  for (int i = 0; i < 3; i++)
    c->gu[i] += 1;
  for (int i = 0; i < 6; i++)
    c->gtheta[i] += 1;
  return ok ? TW_OK : TW_EINTERNAL;
}

static void views_point_at_the_ports(void **state) {
  (void)state;
  tw_model_def def = {.name = "v",
                      .state = v_state,
                      .nstate = 2,
                      .inputs = v_inputs,
                      .ninputs = 2,
                      .outputs = v_outputs,
                      .noutputs = 2,
                      .params = v_params,
                      .nparams = 2,
                      .init = views_init,
                      .step = views_step,
                      .step_vjp = views_vjp};
  use(&def);
  double theta[6] = {0.5, 1, 2, 3, 4, 5}, x[5], xn[5], u[3] = {0}, y[5];
  assert_int_equal(tw_model_init(theta, x), TW_OK);
  assert_true(x[0] == 1 && x[4] == 5);
  assert_int_equal(tw_model_step(0, 0.1, x, u, theta, xn, y), TW_OK);
  assert_true(xn[0] == 1.5 && xn[4] == 5.5 && y[4] == 1);
  double gx[5] = {NAN, NAN, NAN, NAN, NAN}, gu[3] = {NAN, NAN, NAN},
         gt[6] = {1, 1, 1, 1, 1, 1}, gxn[5] = {0}, gy[5] = {0};
  assert_int_equal(tw_model_step_vjp(0, 0.1, x, u, theta, gxn, gy, gx, gu, gt),
                   TW_OK);
  for (int i = 0; i < 5; i++)
    assert_true(gx[i] == 1);
  for (int i = 0; i < 3; i++)
    assert_true(gu[i] == 1);
  for (int i = 0; i < 6; i++)
    assert_true(gt[i] == 2);
}

/* --- step_ad ------------------------------------------------------------ */

static const tw_model_port s3[] = {{.name = "s", .size = 3}};
static const tw_model_port p1[] = {
    {.name = "k", .size = 1, .default_ = TW_MODEL_VALUES(2)}};
static const tw_model_port o4[] = {{.name = "o", .size = 4}};

static int ad_mode; /* which step_ad body runs */

/* s' = k * s (a [1] broadcast to [3]); o = concat(s[2], k s) */
static int ad_step(tw_model_ad *a) {
  tw_tensor *ks = tw_model_ad_mul(a, a->param[0], a->state[0]);
  switch (ad_mode) {
  case 1: /* leaves the output unset */
    a->state_next[0] = ks;
    return TW_OK;
  case 2: /* an output of the wrong size */
    a->state_next[0] = ks;
    a->output[0] = ks;
    return TW_OK;
  case 3: /* a helper fails; the rest pass its NULL along */
    a->state_next[0] = tw_model_ad_matvec(a, ks, ks);
    a->output[0] = tw_model_ad_exp(a, a->state_next[0]);
    return TW_OK;
  case 4: /* out-of-range element */
    a->state_next[0] = ks;
    a->output[0] = tw_model_ad_elem(a, ks, 3);
    return TW_OK;
  case 5: /* the author's own failure */
    return tw_model_fail(TW_ERANGE, "k out of range");
  default: {
    tw_tensor *parts[2] = {tw_model_ad_elem(a, a->state[0], 2), ks};
    a->state_next[0] = ks;
    a->output[0] = tw_model_ad_concat(a, 2, parts);
    return TW_OK;
  }
  }
}

static void step_ad_runs_forward_and_backward(void **state) {
  (void)state;
  tw_model_def def = {.name = "ad",
                      .state = s3,
                      .nstate = 1,
                      .outputs = o4,
                      .noutputs = 1,
                      .params = p1,
                      .nparams = 1,
                      .step_ad = ad_step};
  use(&def);
  ad_mode = 0;
  double x[3] = {1, 2, 3}, theta[1] = {2}, xn[3], y[4], u[1] = {0};
  assert_int_equal(tw_model_step(0, 0.1, x, u, theta, xn, y), TW_OK);
  assert_true(xn[0] == 2 && xn[1] == 4 && xn[2] == 6);
  assert_true(y[0] == 3 && y[1] == 2 && y[3] == 6);
  /* gx = k gxn + e2 gy0 + k gy[1..3]; gk = <s, gxn> + <s, gy[1..3]>. */
  double gxn[3] = {1, 10, 100}, gy[4] = {1000, 1, 2, 3}, gx[3], gu[1] = {7},
         gt[1] = {0.5};
  assert_int_equal(tw_model_step_vjp(0, 0.1, x, u, theta, gxn, gy, gx, gu, gt),
                   TW_OK);
  assert_true(gx[0] == 2 * 1 + 2 * 1);
  assert_true(gx[1] == 2 * 10 + 2 * 2);
  assert_true(gx[2] == 2 * 100 + 1000 + 2 * 3);
  assert_true(gt[0] == 0.5 + (1 + 20 + 300) + (1 + 4 + 9));
  assert_true(gu[0] == 7); /* nu is 0: nothing to write */
  /* The same call again gives the same bits (the tape was reset). */
  double gx2[3], gt2[1] = {0.5};
  assert_int_equal(
      tw_model_step_vjp(0, 0.1, x, u, theta, gxn, gy, gx2, gu, gt2), TW_OK);
  assert_memory_equal(gx, gx2, sizeof gx);
  assert_true(gt2[0] == gt[0]);
  json_t *root = descriptor();
  assert_true(json_is_true(json_object_get(root, "differentiable")));
  json_decref(root);
}

static void step_ad_errors_are_reported(void **state) {
  (void)state;
  tw_model_def def = {.name = "ad",
                      .state = s3,
                      .nstate = 1,
                      .outputs = o4,
                      .noutputs = 1,
                      .params = p1,
                      .nparams = 1,
                      .step_ad = ad_step};
  use(&def);
  tw__model_log_hook = capture;
  double x[3] = {1, 2, 3}, theta[1] = {2}, xn[3], y[4], u[1] = {0};
  static const struct {
    int mode, rc;
    const char *msg;
  } cases[] = {
      {1, TW_EINVAL, "step_ad left output 'o' unset"},
      {2, TW_EINVAL,
       "made output 'o' a f64 tensor of 3 values, expected f64 "
       "of 4"},
      {3, TW_EINVAL, "step_ad: matvec"},
      {4, TW_ERANGE, "elem: index 3 of a tensor of 3 elements"},
      {5, TW_ERANGE, "k out of range"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ad_mode = cases[i].mode;
    last_log[0] = '\0';
    assert_int_equal(tw_model_step(0, 0.1, x, u, theta, xn, y), cases[i].rc);
    if (strstr(last_log, cases[i].msg) == NULL)
      fail_msg("mode %d: log '%s' lacks '%s'", cases[i].mode, last_log,
               cases[i].msg);
  }
  /* After errors the model still works. */
  ad_mode = 0;
  assert_int_equal(tw_model_step(0, 0.1, x, u, theta, xn, y), TW_OK);
}

static void long_log_lines_are_cut_on_a_character(void **state) {
  (void)state;
  tw__model_log_hook = capture;
  char big[1500];
  memset(big, 'a', sizeof big);
  /* A two-byte character straddles the cut at 1020. */
  memcpy(big + 1019, "\xc3\xa9", 2);
  big[sizeof big - 1] = '\0';
  tw_model_log(TW_MODEL_LOG_WARN, "%s", big);
  assert_int_equal(last_level, TW_MODEL_LOG_WARN);
  size_t n = strlen(last_log);
  assert_true(n <= 1023);
  assert_string_equal(last_log + n - 3, "...");
  assert_true(last_log[n - 4] == 'a'); /* the split character went */
  assert_int_equal(tw_model_fail(TW_OK, "x"), TW_EINTERNAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(bad_definitions_fail_every_call_with_a_message),
      TEST(descriptor_says_what_the_tables_say),
      TEST(views_point_at_the_ports),
      TEST(step_ad_runs_forward_and_backward),
      TEST(step_ad_errors_are_reported),
      TEST(long_log_lines_are_cut_on_a_character),
  };
  tw__model_log_hook = capture; /* quiet: the tests read what they need */
  return cmocka_run_group_tests_name("model sdk", tests, NULL, NULL);
}
