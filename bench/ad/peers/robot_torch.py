#!/usr/bin/env python3
"""B3 mass_spring robot in PyTorch (CPU, float64): a Python loop over the 681
updates with autograd, then 20 Adam steps (bench/ad/SPEC.md)."""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import spec  # noqa: E402

BENCH = "mass_spring"


def main():
    args = common.parse_args(__doc__, sizes=False)
    torch = common.load_torch(BENCH)
    if torch is None:
        return
    import torch_tape
    f64 = torch.float64

    springs = spec.ms_springs()
    n = spec.ms_n_objects()
    A = torch.tensor([sp[0] for sp in springs])
    B = torch.tensor([sp[1] for sp in springs])
    rest = torch.tensor([sp[2] for sp in springs], dtype=f64)
    stiff = torch.tensor([sp[3] for sp in springs], dtype=f64)
    actu = torch.tensor([sp[4] for sp in springs], dtype=f64)
    x0 = torch.tensor(spec.MS_OBJECTS, dtype=f64)
    sins = torch.tensor(spec.ms_sin_inputs(), dtype=f64)
    goal = torch.tensor(spec.MS_GOAL, dtype=f64)
    dt, g, ground = spec.MS_DT, spec.MS_GRAVITY, spec.MS_GROUND
    s = math.exp(-dt * spec.MS_DAMPING)
    sc = spec.MS_STATE_SCALE
    gvec = torch.tensor([0.0, dt * g], dtype=f64)

    def loss_fn(params):
        w1, b1, w2, b2 = params
        x = x0
        v = torch.zeros_like(x0)
        zeros = torch.zeros((n, 2), dtype=f64)
        for t in range(spec.MS_STEPS - 1):
            center = (1.0 / n) * torch.sum(x, dim=0)
            off = x - center
            st = torch.stack([off[:, 0] * sc, off[:, 1] * sc,
                              v[:, 0] * sc, v[:, 1] * sc], dim=1).reshape(-1)
            inp = torch.cat([sins[t], st, goal - center])
            hidden = torch.tanh(w1 @ inp + b1)
            act = torch.tanh(w2 @ hidden + b2)
            dist = x[A] - x[B]
            length = torch.sqrt(torch.sum(dist * dist, dim=1)) + spec.MS_LENGTH_EPS
            target = rest * (1.0 + actu * act)
            imp = (dt * (length - target) * stiff / length)[:, None] * dist
            v_inc = zeros.index_add(0, A, -imp).index_add(0, B, imp)
            old_v = s * v + gvec + v_inc
            hit = (x[:, 1] - ground < 0) & (old_v[:, 1] < 0)   # no-TOI contact
            v = torch.where(hit[:, None], 0.0, old_v)
            x = x + dt * v
        return -x[spec.MS_HEAD, 0]

    params = [torch.tensor(p, dtype=f64, requires_grad=True)
              for p in spec.ms_init_params()]

    def fwd():
        with torch.no_grad():
            return loss_fn(params)

    def grad(ps=params):
        for p in ps:
            p.grad = None
        val = loss_fn(ps)
        val.backward()
        return val

    fwd_s, n_f = common.median_time(fwd, args.quick)
    grad_s, n_g = common.median_time(grad, args.quick)
    val0 = float(grad().detach())
    gl2 = math.sqrt(sum(float(torch.sum(p.grad * p.grad)) for p in params))
    db2 = float(params[3].grad[0])
    with torch_tape.Tape() as tape:
        loss_fn(params)

    # Adam (Kingma & Ba), written out so every peer applies the same formula.
    lr, b1c, b2c, eps = (spec.MS_ADAM_LR, spec.MS_ADAM_B1, spec.MS_ADAM_B2,
                         spec.MS_ADAM_EPS)
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    m = [torch.zeros_like(p) for p in ps]
    v2 = [torch.zeros_like(p) for p in ps]
    losses = []
    for it in range(1, spec.MS_ADAM_ITERS + 1):
        losses.append(float(grad(ps).detach()))
        with torch.no_grad():
            for i, p in enumerate(ps):
                gr = p.grad
                m[i] = b1c * m[i] + (1.0 - b1c) * gr
                v2[i] = b2c * v2[i] + (1.0 - b2c) * gr * gr
                mh = m[i] / (1.0 - b1c ** it)
                vh = v2[i] / (1.0 - b2c ** it)
                p -= lr * mh / (torch.sqrt(vh) + eps)
    with torch.no_grad():
        losses.append(float(loss_fn(ps)))

    common.emit(dict(
        bench=BENCH, impl="pytorch", dtype="f64",
        forward_ms=common.ms(fwd_s), grad_ms=common.ms(grad_s),
        ratio=round(grad_s / fwd_s, 3), peak_bytes=tape.bytes,
        loss=val0, grad_l2=gl2, dL_db2_0=db2,
        loss_after_20=losses[-1], losses=losses,
        schedule="autograd-tape", reps=[n_f, n_g],
        threads=torch.get_num_threads(), version=torch.__version__))


if __name__ == "__main__":
    main()
