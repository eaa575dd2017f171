#!/usr/bin/env python3
"""B2 mass_spring_simple in JAX (jit, CPU, float64): lax.scan + jax.grad,
then 25 steps of gradient descent on the rest lengths (bench/ad/SPEC.md)."""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import spec  # noqa: E402

BENCH = "mass_spring_simple"


def main():
    args = common.parse_args(__doc__, sizes=False)
    loaded = common.load_jax(BENCH)
    if loaded is None:
        return
    jax, jnp = loaded

    A = jnp.asarray([a for a, _ in spec.MSS_SPRINGS])
    B = jnp.asarray([b for _, b in spec.MSS_SPRINGS])
    n = len(spec.MSS_X0)
    dt, mass, k = spec.MSS_DT, spec.MSS_MASS, spec.MSS_STIFFNESS
    s = math.exp(-dt * spec.MSS_DAMPING)
    fr, wall = spec.MSS_FRICTION, spec.MSS_WALL_X
    x0 = jnp.asarray(spec.MSS_X0, dtype=jnp.float64)

    def loss_fn(rest):
        def body(carry, _):
            x, v = carry
            dist = x[A] - x[B]
            length = jnp.sqrt(jnp.sum(dist * dist, axis=1)) + spec.MSS_LENGTH_EPS
            F = ((length - rest) * k)[:, None] * dist / length[:, None]
            force = jnp.zeros((n, 2), jnp.float64).at[A].add(-F).at[B].add(F)
            new_v = s * v + dt * force / mass
            new_x = x + dt * new_v            # x uses v before the projection
            vx, vy = new_v[:, 0], new_v[:, 1]
            hit = (new_x[:, 0] > wall) & (vx > 0)
            vy = jnp.where(vy > 0, vy - jnp.minimum(vy, fr * vx), vy)
            vy = jnp.where(vy < 0, vy + jnp.minimum(-vy, fr * vx), vy)
            proj = jnp.stack([jnp.zeros_like(vx), vy], axis=1)
            new_v = jnp.where(hit[:, None], proj, new_v)
            return (new_x, new_v), None

        (x, _), _ = jax.lax.scan(body, (x0, jnp.zeros_like(x0)), None,
                                 length=spec.MSS_STEPS - 1)
        x01 = x[0] - x[1]
        x02 = x[0] - x[2]
        area = jnp.abs(0.5 * (x01[0] * x02[1] - x01[1] * x02[0]))
        return (area - spec.MSS_TARGET_AREA) ** 2

    rest = jnp.asarray(spec.MSS_REST0, dtype=jnp.float64)
    t0 = time.perf_counter()
    fwd = jax.jit(loss_fn).lower(rest).compile()
    t1 = time.perf_counter()
    vg = jax.jit(jax.value_and_grad(loss_fn)).lower(rest).compile()
    t2 = time.perf_counter()
    fwd_s, n_f = common.median_time(lambda: fwd(rest).block_until_ready(), args.quick)
    grad_s, n_g = common.median_time(lambda: jax.block_until_ready(vg(rest)),
                                     args.quick)
    val0, g0 = vg(rest)
    peak = common.jax_peak_bytes(vg)

    losses = []
    r = rest
    for _ in range(spec.MSS_ITERS):
        val, g = vg(r)
        losses.append(float(val))
        r = r - spec.MSS_LR * g

    common.emit(dict(
        bench=BENCH, impl="jax", dtype="f64",
        forward_ms=common.ms(fwd_s), grad_ms=common.ms(grad_s),
        ratio=round(grad_s / fwd_s, 3), peak_bytes=peak,
        loss=float(val0), dL_drest=[float(a) for a in g0],
        losses=losses, rest_final=[float(a) for a in r],
        compile_ms=common.ms(t2 - t1), compile_fwd_ms=common.ms(t1 - t0),
        schedule="scan-store", reps=[n_f, n_g], version=jax.__version__))


if __name__ == "__main__":
    main()
