#!/usr/bin/env python3
"""B1 chain1d in PyTorch (CPU, float64): a Python loop over the steps with
autograd, as PyTorch users write it; torch.set_num_threads(cores)."""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import spec  # noqa: E402

BENCH = "chain1d"


def main():
    args = common.parse_args(__doc__)
    sizes = common.sizes_arg(args.sizes)
    torch = common.load_torch(BENCH, sizes)
    if torch is None:
        return
    import torch_tape
    f64 = torch.float64
    m, c, L, dt = spec.CHAIN_M, spec.CHAIN_C, spec.CHAIN_L, spec.CHAIN_DT

    def loss_fn(k, x0, target, T):
        zero = torch.zeros(1, dtype=f64)
        x = x0
        v = torch.zeros_like(x0)
        for _ in range(T):
            s = k * (x - torch.cat((zero, x[:-1])) - L)   # tension of spring i
            f = -s + torch.cat((s[1:], zero)) - c * v     # spring i pulls i back, i-1 on
            v = v + dt * f / m
            x = x + dt * v
        d = x - target
        return 0.5 * torch.sum(d * d)

    for size in sizes:
        N, T = spec.CHAIN_SIZES[size]
        k = torch.tensor(spec.chain_k(N), dtype=f64, requires_grad=True)
        x0 = torch.tensor(spec.chain_x0(N), dtype=f64)
        target = torch.tensor(spec.chain_target(N), dtype=f64)

        def fwd():
            with torch.no_grad():
                return loss_fn(k, x0, target, T)

        def grad():
            k.grad = None
            val = loss_fn(k, x0, target, T)
            val.backward()
            return val

        fwd_s, n_f = common.median_time(fwd, args.quick)
        grad_s, n_g = common.median_time(grad, args.quick)
        val = grad()
        g = k.grad.detach().tolist()
        with torch_tape.Tape() as tape:
            loss_fn(k, x0, target, T)

        common.emit(dict(
            bench=BENCH, size=size, impl="pytorch", dtype="f64",
            forward_ms=common.ms(fwd_s), grad_ms=common.ms(grad_s),
            ratio=round(grad_s / fwd_s, 3), peak_bytes=tape.bytes,
            loss=float(val.detach()), dL_dk0=g[0],
            dL_dk_l2=math.sqrt(sum(a * a for a in g)),
            schedule="autograd-tape", reps=[n_f, n_g], N=N, T=T,
            threads=torch.get_num_threads(), version=torch.__version__,
            note="forward under no_grad; peak_bytes = tensors saved for backward"))


if __name__ == "__main__":
    main()
