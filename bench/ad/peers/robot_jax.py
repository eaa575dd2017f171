#!/usr/bin/env python3
"""B3 mass_spring robot in JAX (jit, CPU, float64): lax.scan over the 681
updates, jax.grad with respect to the MLP controller, then 20 Adam steps
(bench/ad/SPEC.md)."""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import spec  # noqa: E402

BENCH = "mass_spring"


def main():
    args = common.parse_args(__doc__, sizes=False)
    loaded = common.load_jax(BENCH)
    if loaded is None:
        return
    jax, jnp = loaded
    f64 = jnp.float64

    springs = spec.ms_springs()
    n = spec.ms_n_objects()
    A = jnp.asarray([sp[0] for sp in springs])
    B = jnp.asarray([sp[1] for sp in springs])
    rest = jnp.asarray([sp[2] for sp in springs], dtype=f64)
    stiff = jnp.asarray([sp[3] for sp in springs], dtype=f64)
    actu = jnp.asarray([sp[4] for sp in springs], dtype=f64)
    x0 = jnp.asarray(spec.MS_OBJECTS, dtype=f64)
    sins = jnp.asarray(spec.ms_sin_inputs(), dtype=f64)      # (steps-1, 10)
    goal = jnp.asarray(spec.MS_GOAL, dtype=f64)
    dt, g, ground = spec.MS_DT, spec.MS_GRAVITY, spec.MS_GROUND
    s = math.exp(-dt * spec.MS_DAMPING)
    sc = spec.MS_STATE_SCALE
    gvec = jnp.asarray([0.0, dt * g], dtype=f64)

    def loss_fn(params):
        w1, b1, w2, b2 = params

        def body(carry, sin_t):
            x, v = carry
            center = (1.0 / n) * jnp.sum(x, axis=0)
            off = x - center
            st = jnp.stack([off[:, 0] * sc, off[:, 1] * sc,
                            v[:, 0] * sc, v[:, 1] * sc], axis=1).reshape(-1)
            inp = jnp.concatenate([sin_t, st, goal - center])
            hidden = jnp.tanh(w1 @ inp + b1)
            act = jnp.tanh(w2 @ hidden + b2)
            dist = x[A] - x[B]
            length = jnp.sqrt(jnp.sum(dist * dist, axis=1)) + spec.MS_LENGTH_EPS
            target = rest * (1.0 + actu * act)
            imp = (dt * (length - target) * stiff / length)[:, None] * dist
            v_inc = jnp.zeros((n, 2), f64).at[A].add(-imp).at[B].add(imp)
            old_v = s * v + gvec + v_inc
            hit = (x[:, 1] - ground < 0) & (old_v[:, 1] < 0)   # no-TOI contact
            new_v = jnp.where(hit[:, None], 0.0, old_v)
            new_x = x + dt * new_v
            return (new_x, new_v), None

        (x, _), _ = jax.lax.scan(body, (x0, jnp.zeros_like(x0)), sins)
        return -x[spec.MS_HEAD, 0]

    w1, b1, w2, b2 = spec.ms_init_params()
    params = tuple(jnp.asarray(p, dtype=f64) for p in (w1, b1, w2, b2))

    t0 = time.perf_counter()
    fwd = jax.jit(loss_fn).lower(params).compile()
    t1 = time.perf_counter()
    vg = jax.jit(jax.value_and_grad(loss_fn)).lower(params).compile()
    t2 = time.perf_counter()
    fwd_s, n_f = common.median_time(lambda: fwd(params).block_until_ready(),
                                    args.quick)
    grad_s, n_g = common.median_time(lambda: jax.block_until_ready(vg(params)),
                                     args.quick)
    val0, g0 = vg(params)
    gl2 = math.sqrt(sum(float(jnp.sum(a * a)) for a in g0))
    peak = common.jax_peak_bytes(vg)

    # Adam (Kingma & Ba), written out so every peer applies the same formula.
    lr, b1c, b2c, eps = (spec.MS_ADAM_LR, spec.MS_ADAM_B1, spec.MS_ADAM_B2,
                         spec.MS_ADAM_EPS)
    m = [jnp.zeros_like(p) for p in params]
    v2 = [jnp.zeros_like(p) for p in params]
    p = list(params)
    losses = []
    for it in range(1, spec.MS_ADAM_ITERS + 1):
        val, gr = vg(tuple(p))
        losses.append(float(val))
        for i in range(4):
            m[i] = b1c * m[i] + (1.0 - b1c) * gr[i]
            v2[i] = b2c * v2[i] + (1.0 - b2c) * gr[i] * gr[i]
            mh = m[i] / (1.0 - b1c ** it)
            vh = v2[i] / (1.0 - b2c ** it)
            p[i] = p[i] - lr * mh / (jnp.sqrt(vh) + eps)
    losses.append(float(fwd(tuple(p))))

    common.emit(dict(
        bench=BENCH, impl="jax", dtype="f64",
        forward_ms=common.ms(fwd_s), grad_ms=common.ms(grad_s),
        ratio=round(grad_s / fwd_s, 3), peak_bytes=peak,
        loss=float(val0), grad_l2=gl2, dL_db2_0=float(g0[3][0]),
        loss_after_20=losses[-1], losses=losses,
        compile_ms=common.ms(t2 - t1), compile_fwd_ms=common.ms(t1 - t0),
        schedule="scan-store", reps=[n_f, n_g], version=jax.__version__))


if __name__ == "__main__":
    main()
