#!/usr/bin/env python3
"""Calibrate a twin to a recorded trace with numpy-only gradient descent.

1. A "true" spring-damper (k = 5 N/m, c = 0.4 N*s/m), driven by a chirp
   force, is run once and recorded as an MCAP trace: the rig's data.
2. A twin of it (twin-compose YAML) starts from wrong parameters
   (k = 3, c = 0.1) and replays the recorded force through its profile.
3. Adam, written in a few lines of numpy, fits k and c to the recorded
   position with exact gradients from Twin.grad (the discrete adjoint; the
   squared-error loss runs in C, so no Python runs inside a gradient).

    python examples/calibrate_oscillator.py [--iterations 150] [--out DIR]

Needs the library (see the README: TWIN_LIB or a build in the source
tree). Prints one line per 10 iterations and the fitted parameters.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import twin

TRUTH = """{
  "graph": 1, "name": "rig", "dt": 0.01,
  "inputs": {"F": {"size": 1, "unit": "N"}},
  "blocks": {"plant": {"model": "builtin:spring_damper",
                       "params": {"m": 1, "k": 5, "c": 0.4, "x0": 0.5, "v0": 0}}},
  "connections": [{"from": "inputs.F", "to": "plant.F"}],
  "outputs": {"x": "plant.x"}
}"""

TWIN = """\
twin: oscillator
version: 1
dt: 10 ms
components:
  plant:
    model: builtin:spring_damper
    parameters:
      m: 1 kg
      k: {value: 3 N/m, min: 0, max: 100, trainable: true}
      c: {value: 0.1 N*s/m, min: 0, max: 10, trainable: true}
      x0: 0.5 m
outputs: [plant.x]
profiles:
  rig:
    sources:
      rig:
        kind: mcap
        path: truth.mcap
        topics:
          /inputs/F: {unit: N}
    connections:
      - {from: rig./inputs/F, to: plant.F}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--out", type=Path, default=None,
                    help="directory for truth.mcap and the twin (default: temporary)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="twin-calibrate-"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. The rig's recording: 10 s of a chirp force and the position.
    ticks = 1000
    t = np.arange(ticks) * 0.01
    force = np.sin(2 * np.pi * (0.1 + 0.08 * t) * t)
    with twin.Graph.parse(TRUTH) as rig:
        rig.run(ticks, {"F": force}, trace=out / "truth.mcap")
    with twin.Trace.open(out / "truth.mcap") as trace:
        _, x_measured = trace.read("/outputs/x")

    # 2. The twin, replaying the recorded force.
    (out / "oscillator.yaml").write_text(TWIN)
    wrt = ["plant.k", "plant.c"]
    with twin.Twin.load(out / "oscillator.yaml", profile="rig") as model:
        loss = twin.mse("plant.x", x_measured)
        theta = np.array([model.parameters[n][0] for n in wrt])

        # 3. Adam on (k, c), numpy only.
        lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
        m = np.zeros_like(theta)
        v = np.zeros_like(theta)
        for i in range(1, args.iterations + 1):
            model.parameters = dict(zip(wrt, theta))
            value, grads = model.grad(None, loss, wrt=wrt, schedule="revolve:16")
            g = np.array([grads[n][0] for n in wrt])
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            theta = theta - lr * (m / (1 - b1**i)) / (np.sqrt(v / (1 - b2**i)) + eps)
            theta = np.maximum(theta, 0.0)  # the parameters' lower bounds
            if i % 10 == 0 or i == 1:
                print(f"iter {i:4d}  loss {value:.6e}  k {theta[0]:.5f}  c {theta[1]:.5f}")
        model.parameters = dict(zip(wrt, theta))
        final = float(np.mean((model.run()["plant.x"] - x_measured) ** 2))
    print(f"fitted k = {theta[0]:.4f} N/m (true 5), c = {theta[1]:.4f} N*s/m (true 0.4), "
          f"final mse {final:.3e}")
    print(f"files in {out}")


if __name__ == "__main__":
    main()
