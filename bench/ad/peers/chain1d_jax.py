#!/usr/bin/env python3
"""B1 chain1d in JAX (jit, CPU, float64): lax.scan over the steps, jax.grad.

Schedules (--schedule, default store):
  store       plain scan; XLA keeps each step's residuals for the reverse pass
  body-ckpt   jax.checkpoint on the scan body (keeps the carry, recomputes the body)
  nested      sqrt(T) x sqrt(T) nested scans, jax.checkpoint on the outer body
              (keeps ~2 sqrt(T) carries, recomputes the forward once more)
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import spec  # noqa: E402

BENCH = "chain1d"


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="S,M,L")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--schedule", default="store",
                   choices=("store", "body-ckpt", "nested"))
    args = p.parse_args()
    sizes = common.sizes_arg(args.sizes)
    impl = "jax" if args.schedule == "store" else f"jax-{args.schedule}"
    loaded = common.load_jax(BENCH, impl, sizes)
    if loaded is None:
        return
    jax, jnp = loaded

    m, c, L, dt = spec.CHAIN_M, spec.CHAIN_C, spec.CHAIN_L, spec.CHAIN_DT

    def step(k, carry):
        x, v = carry
        xprev = jnp.concatenate([jnp.zeros((1,), x.dtype), x[:-1]])
        s = k * (x - xprev - L)                       # tension of spring i
        snext = jnp.concatenate([s[1:], jnp.zeros((1,), x.dtype)])
        f = -s + snext - c * v                        # spring i pulls i back, i-1 on
        v = v + dt * f / m
        x = x + dt * v
        return (x, v)

    def make_loss(T, schedule):
        def loss(k, x0, target):
            carry = (x0, jnp.zeros_like(x0))
            if schedule == "nested":
                outer = int(math.isqrt(T))
                while T % outer:
                    outer -= 1
                inner = T // outer

                def inner_body(cr, _):
                    return step(k, cr), None

                @jax.checkpoint
                def outer_body(cr, _):
                    cr, _ = jax.lax.scan(inner_body, cr, None, length=inner)
                    return cr, None

                carry, _ = jax.lax.scan(outer_body, carry, None, length=outer)
            else:
                def body(cr, _):
                    return step(k, cr), None
                if schedule == "body-ckpt":
                    body = jax.checkpoint(body)
                carry, _ = jax.lax.scan(body, carry, None, length=T)
            x, _ = carry
            d = x - target
            return 0.5 * jnp.sum(d * d)
        return loss

    for size in sizes:
        N, T = spec.CHAIN_SIZES[size]
        k = jnp.asarray(spec.chain_k(N), dtype=jnp.float64)
        x0 = jnp.asarray(spec.chain_x0(N), dtype=jnp.float64)
        target = jnp.asarray(spec.chain_target(N), dtype=jnp.float64)
        loss = make_loss(T, args.schedule)

        t0 = time.perf_counter()
        fwd = jax.jit(loss).lower(k, x0, target).compile()
        t1 = time.perf_counter()
        vg = jax.jit(jax.value_and_grad(loss)).lower(k, x0, target).compile()
        t2 = time.perf_counter()

        fwd_s, n_f = common.median_time(
            lambda: fwd(k, x0, target).block_until_ready(), args.quick)
        grad_s, n_g = common.median_time(
            lambda: jax.block_until_ready(vg(k, x0, target)), args.quick)
        val, g = vg(k, x0, target)
        g = jax.device_get(g)

        peak = common.jax_peak_bytes(vg)

        common.emit(dict(
            bench=BENCH, size=size, impl=impl, dtype="f64",
            forward_ms=common.ms(fwd_s), grad_ms=common.ms(grad_s),
            ratio=round(grad_s / fwd_s, 3), peak_bytes=peak,
            loss=float(val), dL_dk0=float(g[0]),
            dL_dk_l2=float(math.sqrt(sum(float(a) * float(a) for a in g))),
            compile_ms=common.ms(t2 - t1), compile_fwd_ms=common.ms(t1 - t0),
            schedule=f"scan-{args.schedule}", reps=[n_f, n_g],
            N=N, T=T, version=jax.__version__,
            note="peak_bytes = XLA temp + output buffers of the compiled grad"))


if __name__ == "__main__":
    main()
