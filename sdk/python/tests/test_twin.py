"""Twins: twin-compose files with a profile that replays a recording,
parameter overlays, diagnostics, and gradients through the compiled
graph against finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import twin
from conftest import SPRING_GRAPH

TWIN_YAML = """\
twin: rig
version: 1
dt: 10 ms
components:
  plant:
    model: builtin:spring_damper
    parameters:
      k: {value: 4 N/m, min: 0, max: 100, trainable: true}
      c: {value: 0.2 N*s/m, min: 0, max: 10, trainable: true}
      x0: 1 m
outputs: [plant.x, plant.v]
profiles:
  driven:
    sources:
      rec:
        kind: mcap
        path: rec.mcap
        topics:
          /inputs/F: {unit: N}
    connections:
      - {from: rec./inputs/F, to: plant.F}
"""


@pytest.fixture
def rig(tmp_path: Path) -> Path:
    """A twin file next to a recording of a driven spring (400 ticks)."""
    force = np.sin(np.arange(400) * 0.05)
    with twin.Graph.parse(SPRING_GRAPH) as g:
        g.run(400, {"F": force}, trace=tmp_path / "rec.mcap")
    (tmp_path / "rig.yaml").write_text(TWIN_YAML)
    return tmp_path / "rig.yaml"


def test_load_and_run_without_a_profile(rig: Path) -> None:
    with twin.Twin.load(rig) as t:
        assert t.name == "rig" and t.dt == 0.01
        assert t.sources == [] and t.inputs == {}
        assert list(t.outputs) == ["plant.x", "plant.v"]
        assert t.parameters["plant.k"].tolist() == [4.0]
        with pytest.raises(twin.InvalidArgument, match="give ticks"):
            t.run()
        out = t.run(10)
        assert out["plant.x"][0] == 1.0


def test_a_profile_replays_its_recording(rig: Path) -> None:
    with twin.Twin.load(rig, profile="driven") as t:
        (src,) = t.sources
        assert src["name"] == "rec" and src["kind"] == "mcap"
        assert Path(src["path"]).name == "rec.mcap"
        assert t.recording_ticks() == 400
        replay = t.run()
        assert replay["plant.x"].shape == (400,)
        (name,) = t.inputs
        with twin.Trace.open(src["path"]) as tr:
            _, force = tr.read("/inputs/F")
        explicit = t.run(400, {name: force})
        assert np.array_equal(replay["plant.x"], explicit["plant.x"])
        assert not np.array_equal(replay["plant.x"], t.run(400, {name: 0.0})["plant.x"])


def test_gradient_through_a_twin(rig: Path) -> None:
    target = 0.9 * np.cos(np.arange(400) * 0.02)
    with twin.Twin.load(rig, profile="driven") as t:
        value, grads = t.grad(None, twin.mse("plant.x", target), wrt=["plant.k", "plant.c"])
        assert list(grads) == ["plant.k", "plant.c"]
        base = t.parameter_vector
        for name, g in grads.items():
            off, _ = t._params[name]
            h = 1e-6 * max(1.0, abs(base[off]))
            losses = []
            for s in (1, -1):
                p = base.copy()
                p[off] += s * h
                t.parameter_vector = p
                losses.append(float(np.mean((t.run()["plant.x"] - target) ** 2)))
            t.parameter_vector = base
            fd = (losses[0] - losses[1]) / (2 * h)
            assert g[0] == pytest.approx(fd, rel=1e-6), name
        assert value == pytest.approx(float(np.mean((t.run()["plant.x"] - target) ** 2)),
                                      rel=1e-12)


def test_parameter_overlays(rig: Path, tmp_path: Path) -> None:
    (tmp_path / "p1.yaml").write_text("plant: {k: 9 N/m}\n")
    (tmp_path / "p2.json").write_text('{"plant": {"c": 0.5}}\n')
    with twin.Twin.load(rig, params=[tmp_path / "p1.yaml", tmp_path / "p2.json"]) as t:
        assert t.parameters["plant.k"].tolist() == [9.0]
        assert t.parameters["plant.c"].tolist() == [0.5]


def test_diagnostics(tmp_path: Path) -> None:
    bad = TWIN_YAML.replace("to: plant.F}", "to: plant.G}").replace(
        "x0: 1 m", "x0: 1 kg")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(twin.ValidationError) as e:
        twin.Twin.load(tmp_path / "bad.yaml", profile="driven")
    d = e.value.diagnostics
    assert len(d) >= 2
    assert all(x.file.endswith("bad.yaml") and x.line > 0 for x in d)
    assert {x.severity for x in d} <= {"error", "warning"}
    assert any(x.code == "unit" for x in d), [str(x) for x in d]
    assert any("G" in x.message for x in d)
    with pytest.raises(twin.ValidationError, match="profile|nope"):
        twin.Twin.load(tmp_path / "bad.yaml", profile="nope")


def test_parse_from_text(rig: Path) -> None:
    with twin.Twin.parse(TWIN_YAML, "driven", source="rig.yaml", base_dir=rig.parent) as t:
        assert t.recording_ticks() == 400
