/* test_chain.c - the particle chain's fused semi-implicit kernels must give
 * the bits of the generic integrator path (deriv / deriv_vjp), for every
 * schedule and any choice of parameters to differentiate; and B1 must
 * reproduce the values BENCHMARKS.md quotes. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "tw_test.h"
#include "twin/sim.h"

#define N 48

typedef struct chain {
  tw_block *b;
  double theta[3 * N + N + 1], x0[2 * N];
} chain;

/* B1's chain (BENCHMARKS.md) with n masses, plus a little actuation strength
 * and spring damping so every kernel term is exercised. generic hides the
 * fused kernels, so the integrator runs deriv / deriv_vjp. */
static void make_chain(chain *c, size_t n, bool generic, bool extras) {
  double mass[N], pos[N], k[N], rest[N], drag[N], damp[N], alpha[N];
  double anchor[N] = {0};
  int32_t si[N], sj[N];
  for (size_t i = 0; i < n; i++) {
    mass[i] = extras ? 1 + 0.1 * (double)(i % 3) : 1;
    pos[i] = (double)(i + 1) * (1 + 0.01 * sin((double)i));
    k[i] = 100 + 10 * cos(0.3 * (double)i);
    rest[i] = 1;
    drag[i] = 0.5;
    damp[i] = extras ? 0.05 : 0;
    alpha[i] = extras ? 0.1 : 0;
    si[i] = (int32_t)i - 1;
    sj[i] = (int32_t)i;
  }
  tw_particles_spec sp;
  memset(&sp, 0, sizeof sp);
  sp.dim = 1;
  sp.n = n;
  sp.mass = mass;
  sp.position = pos;
  sp.nsprings = n;
  sp.spring_i = si;
  sp.spring_j = sj;
  sp.anchor = anchor;
  sp.stiffness = k;
  sp.rest_length = rest;
  sp.spring_damping = damp;
  sp.actuation_strength = alpha;
  sp.drag = drag;
  const tw_dyn_ops *ops;
  void *self;
  tw_err err;
  tw_err_init(&err);
  assert_int_equal(tw_sim_particles(&sp, &ops, &self, &err), TW_OK);
  assert_non_null(ops->step_semi_implicit); /* detected as a chain */
  static tw_dyn_ops generic_ops;
  if (generic) {
    generic_ops = *ops;
    generic_ops.step_semi_implicit = NULL;
    generic_ops.step_semi_implicit_vjp = NULL;
    ops = &generic_ops;
  }
  assert_int_equal(tw_sim_integrated_block(ops, self, TW_SEMI_IMPLICIT, "chain",
                                           &c->b, &err),
                   TW_OK);
  assert_int_equal(tw_block_default_params(c->b, c->theta, NULL), TW_OK);
  assert_int_equal(tw_block_init(c->b, c->theta, c->x0, NULL), TW_OK);
}

typedef struct loss_ud {
  size_t n;
} loss_ud;

/* B1's loss, plus (per step, when not final-only) a small tracking term
 * on the first velocity so per-step loss paths run too. */
static int loss_term(void *ud, int64_t k, int64_t steps, const double *xn,
                     const double *y, double *value, double *gxn, double *gy,
                     tw_err *err) {
  (void)y;
  (void)err;
  const loss_ud *l = ud;
  double s = 0;
  if (gxn != NULL)
    memset(gxn, 0, 2 * l->n * sizeof(double));
  if (gy != NULL)
    memset(gy, 0, 2 * l->n * sizeof(double));
  if (k == steps - 1)
    for (size_t i = 0; i < l->n; i++) {
      double r = xn[i] - (double)(i + 1);
      s += 0.5 * r * r;
      if (gxn != NULL)
        gxn[i] = r;
    }
  s += 1e-3 * xn[l->n] * xn[l->n];
  if (gxn != NULL)
    gxn[l->n] += 2e-3 * xn[l->n];
  *value = s;
  return TW_OK;
}

static void fused_kernels_match_the_generic_path_bitwise(void **state) {
  (void)state;
  static const bool only_k[5] = {true, false, false, false, false};
  const char *specs[] = {"all", "periodic:9", "revolve:5"};
  for (int extras = 0; extras < 2; extras++) {
    for (int fo = 0; fo < 2; fo++) {
      for (int w = 0; w < 2; w++) {
        chain f, g;
        make_chain(&f, N, false, extras);
        make_chain(&g, N, true, extras);
        double u[200 * 2 * N];
        for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
          u[i] = extras ? 0.2 * sin(0.01 * (double)i) : 0;
        loss_ud lu = {N};
        tw_loss l = {loss_term, fo == 1, &lu};
        for (size_t si = 0; si < 3; si++) {
          tw_rollout_opts o;
          memset(&o, 0, sizeof o);
          o.steps = 200;
          o.dt = 1e-3;
          o.wrt = w ? only_k : NULL;
          assert_int_equal(tw_ckpt_spec_parse(specs[si], &o.schedule, NULL),
                           TW_OK);
          double gf[4 * N + 1], gg[4 * N + 1], xf[2 * N], xg[2 * N];
          double guf[200 * 2 * N], gug[200 * 2 * N];
          tw_rollout_stats sf, sg;
          assert_int_equal(tw_sim_grad(f.b, &o, f.x0, f.theta, u, &l, gf, xf,
                                       guf, &sf, NULL),
                           TW_OK);
          assert_int_equal(tw_sim_grad(g.b, &o, g.x0, g.theta, u, &l, gg, xg,
                                       gug, &sg, NULL),
                           TW_OK);
          assert_memory_equal(&sf.loss, &sg.loss, sizeof sf.loss);
          assert_memory_equal(gf, gg, sizeof gf);
          assert_memory_equal(xf, xg, sizeof xf);
          assert_memory_equal(guf, gug, sizeof guf);
          if (w) /* only the stiffness port is reported */
            for (size_t i = N; i < 4 * N + 1; i++)
              assert_true(gf[i] == 0);
        }
        tw_block_free(f.b);
        tw_block_free(g.b);
      }
    }
  }
}

/* One gradient of a fresh chain (B1-like, 48 masses, 300 steps, revolve:7),
 * for the determinism test; runs on any thread. */
typedef struct det_run {
  double g[4 * N + 1];
  double loss;
  int rc;
} det_run;

static void *det_grad(void *arg) {
  det_run *r = arg;
  memset(r, 0, sizeof *r); /* padding too: the results are compared whole */
  chain c;
  make_chain(&c, N, false, true);
  loss_ud lu = {N};
  tw_loss l = {loss_term, false, &lu};
  tw_rollout_opts o;
  memset(&o, 0, sizeof o);
  o.steps = 300;
  o.dt = 1e-3;
  r->rc = tw_ckpt_spec_parse("revolve:7", &o.schedule, NULL);
  tw_rollout_stats st;
  if (r->rc == TW_OK)
    r->rc = tw_sim_grad(c.b, &o, c.x0, c.theta, NULL, &l, r->g, NULL, NULL, &st,
                        NULL);
  r->loss = st.loss;
  tw_block_free(c.b);
  return NULL;
}

/* Same inputs, same bits: across repeated runs, and across threads running
 * at the same time (blocks keep no hidden shared state). */
static void gradients_are_bitwise_deterministic(void **state) {
  (void)state;
  det_run ref, again, t[2];
  det_grad(&ref);
  det_grad(&again);
  assert_int_equal(ref.rc, TW_OK);
  assert_memory_equal(&ref, &again, sizeof ref);
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, det_grad, &t[i]), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(t[i].rc, TW_OK);
    assert_memory_equal(&ref, &t[i], sizeof ref);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      TW_TEST(fused_kernels_match_the_generic_path_bitwise),
      TW_TEST(gradients_are_bitwise_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
