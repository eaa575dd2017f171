#!/usr/bin/env python3
"""B2 mass_spring_simple in PyTorch (CPU, float64): a Python loop over the
steps with autograd, then 25 steps of gradient descent on the rest lengths
(bench/ad/SPEC.md)."""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import spec  # noqa: E402

BENCH = "mass_spring_simple"


def main():
    args = common.parse_args(__doc__, sizes=False)
    torch = common.load_torch(BENCH)
    if torch is None:
        return
    import torch_tape
    f64 = torch.float64

    A = torch.tensor([a for a, _ in spec.MSS_SPRINGS])
    B = torch.tensor([b for _, b in spec.MSS_SPRINGS])
    n = len(spec.MSS_X0)
    dt, mass, k = spec.MSS_DT, spec.MSS_MASS, spec.MSS_STIFFNESS
    s = math.exp(-dt * spec.MSS_DAMPING)
    fr, wall = spec.MSS_FRICTION, spec.MSS_WALL_X
    x0 = torch.tensor(spec.MSS_X0, dtype=f64)

    def loss_fn(rest):
        x = x0
        v = torch.zeros_like(x0)
        zeros = torch.zeros((n, 2), dtype=f64)
        for _ in range(spec.MSS_STEPS - 1):
            dist = x[A] - x[B]
            length = torch.sqrt(torch.sum(dist * dist, dim=1)) + spec.MSS_LENGTH_EPS
            F = ((length - rest) * k)[:, None] * dist / length[:, None]
            force = zeros.index_add(0, A, -F).index_add(0, B, F)
            new_v = s * v + dt * force / mass
            new_x = x + dt * new_v            # x uses v before the projection
            vx, vy = new_v[:, 0], new_v[:, 1]
            hit = (new_x[:, 0] > wall) & (vx > 0)
            vy = torch.where(vy > 0, vy - torch.minimum(vy, fr * vx), vy)
            vy = torch.where(vy < 0, vy + torch.minimum(-vy, fr * vx), vy)
            proj = torch.stack([torch.zeros_like(vx), vy], dim=1)
            v = torch.where(hit[:, None], proj, new_v)
            x = new_x
        x01 = x[0] - x[1]
        x02 = x[0] - x[2]
        area = torch.abs(0.5 * (x01[0] * x02[1] - x01[1] * x02[0]))
        return (area - spec.MSS_TARGET_AREA) ** 2

    rest = torch.tensor(spec.MSS_REST0, dtype=f64, requires_grad=True)

    def fwd():
        with torch.no_grad():
            return loss_fn(rest)

    def grad(r=rest):
        r.grad = None
        val = loss_fn(r)
        val.backward()
        return val

    fwd_s, n_f = common.median_time(fwd, args.quick)
    grad_s, n_g = common.median_time(grad, args.quick)
    val0 = float(grad().detach())
    g0 = rest.grad.tolist()
    with torch_tape.Tape() as tape:
        loss_fn(rest)

    losses = []
    r = rest.detach().clone().requires_grad_(True)
    for _ in range(spec.MSS_ITERS):
        losses.append(float(grad(r).detach()))
        with torch.no_grad():
            r -= spec.MSS_LR * r.grad

    common.emit(dict(
        bench=BENCH, impl="pytorch", dtype="f64",
        forward_ms=common.ms(fwd_s), grad_ms=common.ms(grad_s),
        ratio=round(grad_s / fwd_s, 3), peak_bytes=tape.bytes,
        loss=val0, dL_drest=g0, losses=losses, rest_final=r.detach().tolist(),
        schedule="autograd-tape", reps=[n_f, n_g],
        threads=torch.get_num_threads(), version=torch.__version__))


if __name__ == "__main__":
    main()
