/*
 * sim.h - blocks, integrators, builtin physics and learned blocks, and
 * rollouts with their discrete adjoint.
 *
 * The computation model (DESIGN.md): a block maps, at step k,
 *
 *     (x[k+1], y[k]) = f(x[k], u[k], theta, t[k], dt)
 *
 * and may provide its vector-Jacobian product: given the cotangents of
 * (x[k+1], y[k]) it returns those of (x[k], u[k]) and accumulates that of
 * theta. All of x, u, y and theta are flat f64 vectors whose layout the
 * block's description names port by port. Three kinds of block share the
 * tw_block_ops table: builtin (C, here), wasm (a sandboxed model) and graph
 * (a sub-graph); nothing above this header knows which one it runs.
 *
 * Continuous-time physics is written as dynamics, q' = g(q, u, theta, t),
 * with a hand-written VJP of g; an integrator (explicit Euler,
 * semi-implicit Euler, RK4) turns dynamics into a block and derives the
 * step's VJP from g's, so every builtin gets exact discrete gradients of
 * the scheme actually run (the discrete adjoint, not an approximation of
 * the continuous one).
 *
 * A rollout runs a block for T steps; its gradient runs the reverse sweep
 * under a checkpoint schedule (checkpoint.h), so memory is O(T), O(sqrt T)
 * or O(log T) states, and the gradient is bitwise identical whichever
 * schedule is used.
 *
 * Thread safety: a block instance belongs to one thread at a time. Blocks
 * keep no hidden global state, so separate instances run concurrently.
 */
#ifndef TWIN_SIM_H
#define TWIN_SIM_H

#include <stdbool.h>

#include "twin/checkpoint.h"
#include "twin/common.h"
#include "twin/dtype.h"
#include "twin/error.h"
#include "twin/wasm.h"

TW_EXTERN_C_BEGIN

/* --- Blocks ---------------------------------------------------------- */

/* One named port: a slice of a flat vector. */
typedef struct tw_port {
  const char *name; /* "position" */
  const char *unit; /* "m", "N/m", "" for dimensionless */
  size_t size;
  tw_dtype dtype; /* TW_F64 unless declared (dtype.h) */
} tw_port;

/* What a block is. Port arrays and strings are borrowed from the block and
 * live as long as it. Offsets of a port are the sums of the sizes before
 * it; nx, nu, ny, ntheta are the totals. */
typedef struct tw_block_desc {
  const char *kind; /* "particles", "mlp", "cartpole", ... */
  const tw_port *state, *inputs, *outputs, *params;
  size_t nstate, ninputs, noutputs, nparams; /* port counts */
  size_t nx, nu, ny, ntheta;                 /* vector lengths */
  bool differentiable;                       /* step_vjp is exact */
  /* Which inputs each output reads within the same step (what algebraic
   * loop detection needs; FMI's dependencies). feedthrough_none: outputs
   * depend on the state only; else feedthrough, when not NULL, is a
   * noutputs x ninputs row-major matrix; both unset: every output depends
   * on every input. */
  bool feedthrough_none;
  const bool *feedthrough;
  /* ninputs flags: the input has no default, so something must feed it
   * (what twin-compose checks); NULL: every input defaults to zeros. */
  const bool *input_required;
  /* ntheta values each: the bounds the model declares for its parameters
   * (a wasm descriptor's min and max; +-infinity where it gives none);
   * NULL: unbounded. */
  const double *param_min, *param_max;
} tw_block_desc;

typedef struct tw_step_args {
  double t, dt;
  int64_t k;
  const double *x, *u, *theta; /* nx, nu, ntheta values; u may be NULL,
                                  meaning all inputs are 0 */
  double *x_next;              /* nx values (written) */
  double *y; /* ny values (written), or NULL when the caller needs no
                outputs (a rollout's plain forward sweep) */
} tw_step_args;

typedef struct tw_vjp_args {
  double t, dt;
  int64_t k;
  const double *x, *u, *theta; /* u may be NULL: all inputs 0 */
  const double *gx_next, *gy;  /* cotangents of x[k+1], y[k]; NULL = zero */
  double *gx, *gu;  /* written (=); either may be NULL if unwanted; never
                       alias the inputs */
  double *gtheta;   /* accumulated (+=); NULL if unwanted */
  const bool *want; /* nparams flags: parameter ports whose gradient is
                       needed (NULL = all); a block may skip the others */
} tw_vjp_args;

/* Resources a block holds and has used since it was made, for the
 * accounting of graph runs: heap it holds beyond its descriptor's vectors
 * (buffers, tape arenas), and for a wasm model its linear memory and the
 * fuel and guest calls it used. */
typedef struct tw_block_usage {
  size_t memory_bytes; /* heap held now */
  size_t peak_memory;  /* the most held at once */
  size_t wasm_memory;  /* linear memory now (0: not a wasm model) */
  size_t wasm_peak;    /* largest linear memory seen */
  uint64_t fuel_used;  /* wasm fuel consumed (0 without metering) */
  uint64_t guest_calls;
} tw_block_usage;

/* The vtable every block kind implements. */
typedef struct tw_block_ops {
  const char *kind;
  /* Fills *out (borrowed pointers into self). */
  void (*describe)(const void *self, tw_block_desc *out);
  /* Writes default parameters (ntheta values); NULL if there are none. */
  void (*default_params)(const void *self, double *theta);
  /* Writes the initial state x[0] for parameters theta. */
  int (*init)(void *self, const double *theta, double *x0, tw_err *err);
  int (*step)(void *self, const tw_step_args *a, tw_err *err);
  /* NULL if the block is not differentiable. */
  int (*step_vjp)(void *self, const tw_vjp_args *a, tw_err *err);
  /* Frees self. */
  void (*free)(void *self);
  /* Optional pair, the two halves of step_vjp (JAX's vjp, which returns
   * the outputs with a pullback): linearize computes exactly what step
   * computes and keeps what the reverse pass needs; pullback then is
   * step_vjp at the same point without recomputing the step. For callers
   * that need a block's outputs before they know their cotangents (a
   * composite whose next block consumes y). NULL: tw_block_linearize and
   * tw_block_pullback fall back to step and step_vjp. */
  int (*linearize)(void *self, const tw_step_args *a, tw_err *err);
  int (*pullback)(void *self, const tw_vjp_args *a, tw_err *err);
  /* Optional: what the block holds and has used (tw_block_usage); NULL
   * for blocks whose memory is only their small fixed buffers. */
  void (*usage)(const void *self, tw_block_usage *out);
  /* Optional: the VJP of init, for blocks whose initial state depends on
   * their parameters: adds (d x0 / d theta)^T gx0 into gtheta. NULL: x0
   * does not depend on theta. */
  int (*init_vjp)(void *self, const double *theta, const double *gx0,
                  double *gtheta, tw_err *err);
} tw_block_ops;

typedef struct tw_block tw_block;

/* Wraps (ops, self) as a block named name (copied; used in messages). The
 * block takes ownership of self (freed through ops->free by tw_block_free,
 * and also on failure of this call). */
TW_API int tw_block_new(const tw_block_ops *ops, void *self, const char *name,
                        tw_block **out, tw_err *err);
TW_API void tw_block_free(tw_block *b);

TW_API const tw_block_desc *tw_block_describe(const tw_block *b);
/* The block's usage (all zeros for blocks that do not report one). */
TW_API void tw_block_get_usage(const tw_block *b, tw_block_usage *out);
TW_API const char *tw_block_name(const tw_block *b);
/* Default parameters, when the block has them (builtins do): theta must
 * hold ntheta values. TW_ENOTSUP if the block has none. */
TW_API int tw_block_default_params(const tw_block *b, double *theta,
                                   tw_err *err);

TW_API int tw_block_init(tw_block *b, const double *theta, double *x0,
                         tw_err *err);
TW_API int tw_block_step(tw_block *b, const tw_step_args *a, tw_err *err);
/* Adds (d x0 / d theta)^T gx0 into gtheta (ntheta values); nothing for
 * blocks whose initial state does not depend on their parameters. */
TW_API int tw_block_init_vjp(tw_block *b, const double *theta,
                             const double *gx0, double *gtheta, tw_err *err);
/* TW_ENOTSUP naming the block if it is not differentiable. */
TW_API int tw_block_step_vjp(tw_block *b, const tw_vjp_args *a, tw_err *err);
/* Two-phase step_vjp: tw_block_linearize steps (as tw_block_step) and keeps
 * the linearisation; the next tw_block_pullback on b, whose x, u, theta must
 * be the same pointers with the same values, is step_vjp at that point (the
 * same bits). Any other step or VJP call on b in between forgets it; a
 * pullback with no linearisation kept is TW_ESTATE. TW_ENOTSUP for a block
 * that is not differentiable. */
TW_API int tw_block_linearize(tw_block *b, const tw_step_args *a, tw_err *err);
TW_API int tw_block_pullback(tw_block *b, const tw_vjp_args *a, tw_err *err);

/* --- Dynamics and integrators ---------------------------------------- */

/* Continuous-time dynamics q' = g(q, u, theta, t). A second-order system
 * has q = [position (npos), velocity (npos)] and g = [velocity,
 * acceleration], which semi-implicit Euler exploits. */
typedef struct tw_dyn_desc {
  const char *kind;
  const tw_port *state, *inputs, *params;
  size_t nstate, ninputs, nparams;
  size_t nq, nu, ntheta;
  bool second_order;
} tw_dyn_desc;

typedef struct tw_dyn_ops {
  const char *kind;
  void (*describe)(const void *self, tw_dyn_desc *out);
  /* Default theta and the initial q for theta. */
  void (*default_params)(const void *self, double *theta);
  int (*init)(void *self, const double *theta, double *q0, tw_err *err);
  /* qdot = g(q, u, theta, t); u may be NULL (all inputs 0), here and in
   * the other functions taking u. */
  int (*deriv)(void *self, double t, const double *q, const double *u,
               const double *theta, double *qdot, tw_err *err);
  /* Accumulates (+=) gq = (dg/dq)^T w, gu = (dg/du)^T w,
   * gtheta = (dg/dtheta)^T w for w = gqdot (each output may be NULL).
   * want (nparams flags, NULL = all) names the parameter ports whose
   * gradient is needed; the others may be skipped. */
  int (*deriv_vjp)(void *self, double t, const double *q, const double *u,
                   const double *theta, const double *gqdot, double *gq,
                   double *gu, double *gtheta, const bool *want, tw_err *err);
  /* Optional fused kernel for semi-implicit Euler (may be NULL): one step
   * q -> q_next. It must compute exactly what the integrator computes from
   * deriv, to the bit; it exists because one pass over the arrays is much
   * faster than the several a generic step takes. */
  int (*step_semi_implicit)(void *self, double t, double h, const double *q,
                            const double *u, const double *theta,
                            double *q_next, tw_err *err);
  /* Optional (may be NULL), its VJP: from the cotangent G of q_next, writes
   * gq (=) and accumulates gu, gtheta (+=; either may be NULL), the same
   * bits as the integrator's VJP through deriv_vjp. */
  int (*step_semi_implicit_vjp)(void *self, double t, double h, const double *q,
                                const double *u, const double *theta,
                                const double *G, double *gq, double *gu,
                                double *gtheta, const bool *want, tw_err *err);
  /* Optional (may be NULL): after each step, project q_next in place onto
   * the admissible set (ground contact by velocity projection). */
  int (*project)(void *self, double *q_next, tw_err *err);
  /* Optional, with project: maps the cotangent of the projected q_next to
   * that of the unprojected one, in place, treating the active set (which
   * components were projected) as fixed. q_pre is the unprojected value. */
  int (*project_vjp)(void *self, const double *q_pre, double *g, tw_err *err);
  void (*free)(void *self);
  /* Optional: the VJP of init (adds (d q0 / d theta)^T gq0 into gtheta);
   * NULL when q0 does not depend on theta. */
  int (*init_vjp)(void *self, const double *theta, const double *gq0,
                  double *gtheta, tw_err *err);
} tw_dyn_ops;

typedef enum tw_integrator {
  TW_EULER = 0,         /* q' = q + dt g(q) */
  TW_SEMI_IMPLICIT = 1, /* v' = v + dt a(x, v); x' = x + dt v' (2nd order) */
  TW_RK4 = 2            /* classic fourth-order Runge-Kutta */
} tw_integrator;

/* Parses "euler", "semi-implicit", "rk4". */
TW_API int tw_integrator_parse(const char *text, tw_integrator *out,
                               tw_err *err);
TW_API const char *tw_integrator_name(tw_integrator m);

/* Makes a block stepping dyn (ownership of dyn_self passes to the block,
 * also on failure) with method. The block's state is q, its output y[k] is
 * q[k] (no feedthrough of u), its inputs and params are the dynamics'.
 * Semi-implicit Euler requires a second-order system (TW_EINVAL). */
TW_API int tw_sim_integrated_block(const tw_dyn_ops *dyn, void *dyn_self,
                                   tw_integrator method, const char *name,
                                   tw_block **out, tw_err *err);

/* --- Builtin dynamics and blocks ------------------------------------- */

/* A particle system in dim = 1, 2 or 3 dimensions: n particles of given
 * masses, springs between pairs (or between a particle and a fixed anchor
 * point), linear drag per particle, uniform gravity, and ground contact
 * with the plane "coordinate dim-1 = height". Its state is [position
 * (n*dim), velocity (n*dim)], second order. Parameters (in this order):
 *   stiffness[nsprings] (N/m), rest_length[nsprings] (m),
 *   spring_damping[nsprings] (N*s/m, along the spring),
 *   drag[n] (N*s/m, force -drag*v), gravity[dim] (m/s^2).
 * Inputs: actuation[nsprings] (dimensionless: the rest length becomes
 *   L * (1 + actuation_strength * actuation)), force[n*dim] (N).
 * A spring's force is stiffness * (|p_j - p_i| - L_eff) along the unit
 * vector from i to j (in 1-D: p_j - p_i, signed), acting +on i, -on j, plus
 * damping times the relative velocity along the spring. */
typedef enum tw_contact_mode {
  TW_CONTACT_NONE = 0,
  /* Penalty: force stiffness * depth upward (and damping * -v_up while in
   * contact). Smooth in the state except at first touch: gradients are
   * exact for the piecewise-smooth scheme, and zero-measure kinks give the
   * one-sided derivative of the active side. */
  TW_CONTACT_PENALTY = 1,
  /* Velocity projection (as in DiffTaichi's mass_spring): after a step, a
   * particle below the ground moving down gets its vertical velocity set to
   * 0 and its position clamped to the ground; with friction its tangential
   * velocity too. The gradient treats the contact set as fixed: a
   * projected component passes no gradient to its pre-projection value. */
  TW_CONTACT_PROJECTION = 2
} tw_contact_mode;

typedef struct tw_particles_spec {
  unsigned dim;           /* 1, 2 or 3 */
  size_t n;               /* particles */
  const double *mass;     /* n, > 0 */
  const double *position; /* n*dim initial positions */
  const double *velocity; /* n*dim initial velocities, NULL = 0 */
  size_t nsprings;
  const int32_t *spring_i;      /* nsprings, particle index or -1: anchor */
  const int32_t *spring_j;      /* ditto; never both -1, never i == j */
  const double *anchor;         /* nsprings*dim anchor points (used for -1) */
  const double *stiffness;      /* nsprings default parameters */
  const double *rest_length;    /* nsprings, NULL = initial distances */
  const double *spring_damping; /* nsprings, NULL = 0 */
  const double *actuation_strength; /* nsprings, NULL = 0 */
  const double *drag;               /* n, NULL = 0 */
  const double *gravity;            /* dim, NULL = 0 */
  tw_contact_mode contact;
  double ground;            /* height of the ground plane */
  double contact_stiffness; /* penalty */
  double contact_damping;   /* penalty */
  bool friction;            /* projection: also stop tangential motion */
} tw_particles_spec;

/* Dynamics of a particle system; validates spec (indices, masses, sizes)
 * and copies everything. */
TW_API int tw_sim_particles(const tw_particles_spec *spec,
                            tw_dyn_ops const **ops, void **self, tw_err *err);

/* Cart-pole (Barto, Sutton & Anderson 1983; equations of Florian 2007 with
 * frictionless joints): state [x, theta, x_dot, theta_dot], input force
 * [N], params [cart mass, pole mass, pole half-length, gravity]. */
TW_API int tw_sim_cartpole(tw_dyn_ops const **ops, void **self, tw_err *err);

typedef enum tw_activation {
  TW_ACT_NONE = 0,
  TW_ACT_TANH = 1,
  TW_ACT_RELU = 2,
  TW_ACT_SIGMOID = 3,
  TW_ACT_SOFTPLUS = 4
} tw_activation;

/* A multilayer perceptron as a stateless block: y = f_L(... f_1(u)) with
 * f_i(z) = act_i(W_i z + b_i). sizes has nlayers + 1 entries (input size
 * first). Params: for each layer, W_i (row-major [out, in]) then b_i.
 * Default params: Glorot-uniform weights from a fixed seed, zero biases
 * (deterministic). Its VJP runs the AD tape (ad.h). */
/* Signal blocks: a gain y = k u (n values, parameter k of n values, default
 * k), and an integrator x' = x + dt u, y = x (state n, x0 = 0; its output
 * does not feed through, so it breaks algebraic loops). */
TW_API int tw_sim_gain_block(size_t n, double k, const char *name,
                             tw_block **out, tw_err *err);
/* y = k u + b element-wise (params "k", "b"), for unit conversions with
 * an offset. */
TW_API int tw_sim_affine_block(size_t n, double k, double b, const char *name,
                               tw_block **out, tw_err *err);
TW_API int tw_sim_integrator_block(size_t n, const char *name, tw_block **out,
                                   tw_err *err);

/* The spring chain of benchmark B1 with n masses (chain.c): a particle
 * system under semi-implicit Euler; ports and parameters as
 * tw_sim_particles' (outputs = the state). */
TW_API int tw_sim_chain1d_block(size_t n, const char *name, tw_block **out,
                                tw_err *err);

/* A damped oscillator (spring_damper.c): one mass on a linear spring and a
 * linear damper, m a = F + F_extra - k x - c v, stepped by method (the
 * graph's default is semi-implicit Euler). State and outputs x (m), v (m/s)
 * (outputs do not feed through); inputs F, F_extra (N), 0 when not given;
 * parameters, in this order, m (kg, default 1), k (N/m, 1), c (N*s/m, 0.1),
 * x0 (m, 1), v0 (m/s, 0). init sets x[0] = (x0, v0) and is TW_EINVAL,
 * naming the block and the value, for a mass that is not finite and > 0
 * (stepping with such a mass too) or another parameter that is not finite.
 * The step's VJP is exact for m, k, c, the inputs and the state; x0 and v0
 * act through x[0] only: their gradient is tw_sim_grad's gx0 carried back
 * by the block's init VJP (the identity on them), which tw_graph_grad
 * applies. name (copied) may be NULL:
 * "spring_damper". */
TW_API int tw_sim_spring_damper_block(tw_integrator method, const char *name,
                                      tw_block **out, tw_err *err);

/* A sandboxed model (twin/wasm.h) as a block with its own instance under
 * limits (may be NULL): ports from its descriptor, differentiable when it
 * exports tw_step_vjp. A NULL u takes the inputs' defaults. m is borrowed
 * and must outlive the block. */
TW_API int tw_sim_wasm_block(tw_wasm_module *m, const tw_wasm_limits *limits,
                             const char *name, tw_block **out, tw_err *err);

TW_API int tw_sim_mlp_block(size_t nlayers, const size_t *sizes,
                            const tw_activation *acts, uint64_t seed,
                            const char *name, tw_block **out, tw_err *err);

/* --- DiffTaichi's mass-spring update --------------------------------- */

/* A discrete 2-D mass-spring block that reproduces the update of
 * DiffTaichi's examples (taichi-dev/difftaichi, mass_spring_simple.py and
 * mass_spring.py without time of impact) as bench/ad/SPEC.md states it for
 * benchmarks B2 and B3. It is a block, not dynamics for an integrator,
 * because its projections sit between the velocity and the position
 * update. One step from (x, v), actuation act and dt:
 *
 *   per spring s = (a, b):  d = x_a - x_b,  len = |d| + length_eps,
 *       L = rest_s * (1 + alpha_s * act_s),
 *       F = ((len - L) * k_s) * d / len;  force_a -= F,  force_b += F
 *   per mass:  v' = exp(-dt * damping) * v + dt * (force / m + gravity)
 *       ground (if enabled): if x.y - ground_height < 0 and v'.y < 0,
 *           v' = (0, 0)                     (the OLD position is tested)
 *       x' = x + dt * v'
 *       wall (if enabled): if x'.x > wall_x and v'.x > 0, v'.y moves toward
 *           0 by min(|v'.y|, wall_friction * v'.x), then v'.x = 0
 *           (the NEW position is tested; x' keeps the velocity before it)
 *
 * Forces are summed over the a-ends in spring order, then the b-ends.
 * State [position (2n), velocity (2n)] (m, m/s), input actuation[nsprings]
 * (dimensionless), no outputs. Parameters, in this order: rest_length
 * [nsprings] (m), stiffness[nsprings] (N/m), damping[1] (1/s), gravity[2]
 * (m/s^2); their defaults come from the spec. The VJP is hand-written and
 * exact for this scheme with the projections' active set (which masses
 * touch the ground or the wall, and the friction case) held fixed, as for
 * TW_CONTACT_PROJECTION: a component a projection sets to a constant passes
 * no gradient to its pre-projection value. */
typedef struct tw_mass_spring_spec {
  size_t n;               /* masses, >= 1 */
  const double *mass;     /* n, > 0 */
  const double *position; /* 2n initial positions (x, y per mass) */
  const double *velocity; /* 2n initial velocities, NULL = 0 */
  size_t nsprings;
  const int32_t *spring_a, *spring_b; /* nsprings mass indices, a != b */
  const double *rest_length;          /* nsprings, NULL = initial |d| */
  const double *stiffness;            /* nsprings, >= 0 */
  const double *actuation_strength;   /* alpha: nsprings, NULL = 0 */
  double damping;                     /* >= 0 */
  double gravity[2];
  double length_eps; /* > 0: keeps len away from 0 */
  bool ground;       /* mass_spring.py's ground at y = ground_height */
  double ground_height;
  bool wall;                    /* mass_spring_simple.py's wall at x = wall_x */
  double wall_x, wall_friction; /* friction >= 0 */
} tw_mass_spring_spec;

/* Validates spec (sizes, indices, finite values, signs; TW_EINVAL naming
 * the field and index), copies everything and makes the block named name.
 * The block serves one thread at a time; its step and VJP allocate
 * nothing. */
TW_API int tw_sim_mass_spring(const tw_mass_spring_spec *spec, const char *name,
                              tw_block **out, tw_err *err);

/* --- Rollouts and gradients ------------------------------------------ */

/* A loss summed over steps. term writes the loss of step k, given
 * x_next = x[k+1] and y = y[k], to *value and writes (=) its gradient with
 * respect to x_next (nx values) and y (ny values); gx_next and gy are NULL
 * when only the value is wanted (forward runs). With final_only, term is
 * called for k = steps-1 only, which lets blocks with a hand-written VJP
 * skip re-running their forward step in the reverse sweep. */
typedef struct tw_loss {
  int (*term)(void *ud, int64_t k, int64_t steps, const double *x_next,
              const double *y, double *value, double *gx_next, double *gy,
              tw_err *err);
  bool final_only;
  void *ud;
} tw_loss;

typedef struct tw_rollout_opts {
  int64_t steps; /* T >= 1 */
  double t0, dt; /* dt > 0 */
  tw_ckpt_spec schedule;
  double clip_norm;  /* > 0: scale the theta gradient to at most this norm */
  const bool *wrt;   /* nparams flags: differentiate with respect to these
                        parameter ports only (NULL = all); the gradient of
                        the others is reported as 0 */
  bool check_finite; /* stop on NaN/Inf, naming block, phase, step */
} tw_rollout_opts;

typedef struct tw_rollout_stats {
  double loss;
  int64_t advance_steps;   /* plain forward steps, recomputation included */
  int64_t reverse_steps;   /* step VJPs */
  size_t checkpoint_bytes; /* memory of the schedule's slots */
  double grad_norm;        /* norm of the theta gradient before clipping */
  bool clipped;
} tw_rollout_stats;

/* Runs T steps from x0 with inputs u (T*nu values, row k = u[k]; NULL if
 * nu == 0 or all zero). Writes x[T] to x_final (nx, may be NULL), the
 * outputs to ys (T*ny, may be NULL) and, with a loss, its value to *loss
 * (may be NULL). */
TW_API int tw_sim_forward(tw_block *b, const tw_rollout_opts *o,
                          const double *x0, const double *theta,
                          const double *u, const tw_loss *loss, double *x_final,
                          double *ys, double *loss_out, tw_err *err);

/* The loss and its exact gradient with respect to theta (gtheta, ntheta,
 * overwritten), and optionally x0 (gx0, nx) and u (gu, T*nu), by the
 * discrete adjoint under o->schedule. stats may be NULL. */
TW_API int tw_sim_grad(tw_block *b, const tw_rollout_opts *o, const double *x0,
                       const double *theta, const double *u,
                       const tw_loss *loss, double *gtheta, double *gx0,
                       double *gu, tw_rollout_stats *stats, tw_err *err);

TW_EXTERN_C_END

#endif /* TWIN_SIM_H */
