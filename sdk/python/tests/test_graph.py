"""Graphs: runs and gradients against the CLI, gradients of losses in C
and in Python against finite differences, inputs, parameters, errors,
budgets, traces, and the GIL released while C works."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import twin
from conftest import SOURCE, SPRING_GRAPH, run_cli

GRAPHS = SOURCE / "models" / "graphs"


def test_description(spring: twin.Graph) -> None:
    assert spring.name == "sd" and spring.dt == 0.01
    assert spring.blocks == ["plant"]
    assert spring.inputs == {"F": twin.graph.Port("F", 1, "N", "f64")}
    assert list(spring.outputs) == ["x", "v"]
    assert spring.outputs["x"].unit == "m"
    assert list(spring.parameters) == ["plant.m", "plant.k", "plant.c", "plant.x0",
                                       "plant.v0"]
    assert np.array_equal(spring.times(3), [0.0, 0.01, 0.02])


def test_run_matches_the_cli(models: Path, twin_bin: str) -> None:
    path = models / "hybrid_oscillator.json"
    lines = run_cli(twin_bin, "graph", "run", "--json", "--ticks", "50", str(path))
    with twin.Graph.load(path) as g:
        out = g.run(50)
    assert out["x"].shape == (50,)
    for k, line in enumerate(lines):
        assert line["outputs"]["x"] == [out["x"][k]]
        assert line["outputs"]["force"] == [out["force"][k]]


def test_grad_matches_the_cli(twin_bin: str) -> None:
    path = GRAPHS / "spring_damper.json"
    (cli,) = run_cli(twin_bin, "graph", "grad", "--json", "--ticks", "120", "--loss", "x",
                     "--schedule", "revolve:5", str(path))
    with twin.Graph.load(path) as g:
        loss, grads = g.grad(120, "x", schedule="revolve:5")
    assert loss == cli["loss"]
    assert {k: v.tolist() for k, v in grads.items()} == cli["grad"]


def _fd(g: twin.Graph, loss_of_run, names, rel=1e-6) -> dict:
    out = {}
    base = g.parameter_vector
    for n in names:
        off, size = g._params[n]
        col = []
        for j in range(size):
            h = rel * max(1.0, abs(base[off + j]))
            p, m = base.copy(), base.copy()
            p[off + j] += h
            m[off + j] -= h
            g.parameter_vector = p
            lp = loss_of_run()
            g.parameter_vector = m
            lm = loss_of_run()
            col.append((lp - lm) / (2 * h))
        out[n] = np.array(col)
    g.parameter_vector = base
    return out


def test_mse_gradient_against_finite_differences(spring: twin.Graph) -> None:
    ticks = 200
    rng = np.random.default_rng(3)
    force = np.sin(np.arange(ticks) * 0.05)
    target_x = 0.8 * np.cos(np.arange(ticks) * 0.021)
    target_v = rng.normal(scale=0.1, size=ticks)
    target_v[::4] = np.nan  # missing samples
    loss = twin.mse("x", target_x) + 0.5 * twin.sse("v", target_v)

    def loss_of_run() -> float:
        o = spring.run(ticks, {"F": force})
        ok = ~np.isnan(target_v)
        return float(np.mean((o["x"] - target_x) ** 2)
                     + 0.5 * np.sum((o["v"][ok] - target_v[ok]) ** 2))

    value, grads = spring.grad(ticks, loss, inputs={"F": force})
    assert value == pytest.approx(loss_of_run(), rel=1e-12)
    fd = _fd(spring, loss_of_run, list(grads))
    for n, gv in grads.items():
        assert gv.shape == (1,)
        assert gv[0] == pytest.approx(fd[n][0], rel=1e-6, abs=1e-9), n
        assert gv[0] != 0


def test_schedules_give_the_same_bits(spring: twin.Graph) -> None:
    loss = twin.mse("x", 0.5)
    results = [spring.grad(300, loss, schedule=s) for s in (None, "all", "periodic:17",
                                                            "revolve:4")]
    for value, grads in results[1:]:
        assert value == results[0][0]
        for n in grads:
            assert np.array_equal(grads[n], results[0][1][n])


def test_loss_shorthands(spring: twin.Graph) -> None:
    t = np.linspace(0, 1, 100)
    a = spring.grad(100, twin.mse("x", t))
    b = spring.grad(100, ("mse", "x", t))
    c = spring.grad(100, [("mse", "x", t)])
    assert a[0] == b[0] == c[0]
    # An output name is 1/2 sum |y|^2, the CLI's loss.
    d = spring.grad(100, "x")
    e = spring.grad(100, twin.sse("x", 0.0, 0.5))
    assert d[0] == e[0]


def test_python_callable_loss(spring: twin.Graph) -> None:
    target = np.cos(np.arange(80) * 0.03)
    calls = []

    def loss(k: int, y: dict):
        calls.append(k)
        r = y["x"] - target[k]
        return float(r @ r) / 80, {"x": 2 * r / 80}

    v1, g1 = spring.grad(80, loss, wrt=["plant.k", "plant.c"])
    v2, g2 = spring.grad(80, twin.mse("x", target), wrt=["plant.k", "plant.c"])
    assert calls and max(calls) == 79
    assert v1 == pytest.approx(v2, rel=1e-13)
    assert list(g1) == ["plant.k", "plant.c"]
    for n in g1:
        assert g1[n][0] == pytest.approx(g2[n][0], rel=1e-12)


def test_errors_in_a_callable_loss_propagate(spring: twin.Graph) -> None:
    class Boom(Exception):
        pass

    def loss(k: int, y: dict):
        if k == 5:
            raise Boom("at five")
        return 0.0, None

    with pytest.raises(Boom, match="at five"):
        spring.grad(10, loss)
    # The graph is fine afterwards.
    assert spring.grad(10, "x")[0] > 0


@pytest.mark.parametrize("kwargs,cls,match", [
    ({"loss": "nope"}, twin.InvalidArgument, "no output 'nope'"),
    ({"loss": twin.mse("x", np.zeros(5))}, twin.InvalidArgument, "has 5 rows"),
    ({"loss": twin.mse("x") + twin.sse("x")}, twin.InvalidArgument, "two terms"),
    ({"loss": "x", "wrt": ["plant.q"]}, twin.InvalidArgument, "no parameter 'plant.q'"),
    ({"loss": "x", "schedule": "sometimes"}, twin.TwinError, "sometimes"),
    ({"loss": 42}, twin.InvalidArgument, "expected a twin.Loss"),
])
def test_grad_errors(spring: twin.Graph, kwargs: dict, cls: type, match: str) -> None:
    with pytest.raises(cls, match=match):
        spring.grad(10, **kwargs)


def test_inputs_forms(spring: twin.Graph, tmp_path: Path) -> None:
    f = np.sin(np.arange(30) * 0.2)
    a = spring.run(30, {"F": f})
    b = spring.run(30, f.reshape(-1, 1))
    c = spring.run(30, {"F": np.concatenate([f, f])})  # longer: first rows
    for o in (b, c):
        assert np.array_equal(a["x"], o["x"])
    assert not np.array_equal(a["x"], spring.run(30)["x"])
    const = spring.run(30, {"F": 0.5})
    assert np.array_equal(const["x"], spring.run(30, {"F": np.full(30, 0.5)})["x"])
    # From an MCAP file: a traced run's inputs drive the same outputs.
    spring.run(30, {"F": f}, trace=tmp_path / "run.mcap")
    d = spring.run(30, tmp_path / "run.mcap")
    assert np.array_equal(a["x"], d["x"])
    e = spring.run(30, tmp_path / "run.mcap", input_map={"F": "/inputs/F"})
    assert np.array_equal(a["x"], e["x"])
    with pytest.raises(twin.InvalidArgument, match="no input 'G'"):
        spring.run(30, {"G": f})
    with pytest.raises(twin.InvalidArgument, match="at least 30"):
        spring.run(30, {"F": f[:10]})
    with pytest.raises(twin.NotFoundError):
        spring.run(30, tmp_path / "missing.mcap")
    with pytest.raises(twin.InvalidArgument, match="ticks"):
        spring.run(0)


def test_parameters_read_and_write_through(spring: twin.Graph) -> None:
    before = spring.run(50)["x"]
    assert spring.parameters["plant.k"].tolist() == [4.0]
    spring.parameters["plant.k"] = 9.0
    assert spring.parameters["plant.k"].tolist() == [9.0]
    assert not np.array_equal(before, spring.run(50)["x"])
    spring.parameters = {"plant.k": 4.0}
    assert np.array_equal(before, spring.run(50)["x"])
    v = spring.parameter_vector
    assert v.tolist() == [1.2, 4.0, 0.3, 1.0, 0.2]
    with pytest.raises(KeyError, match="no parameter 'k'"):
        spring.parameters["k"]
    with pytest.raises(twin.InvalidArgument, match="finite"):
        spring.parameter_vector = [1.0, np.nan, 0.3, 1.0, 0.2]
    with pytest.raises(twin.InvalidArgument, match="5 values"):
        spring.parameter_vector = [1.0]
    with pytest.raises(TypeError):
        del spring.parameters["plant.k"]
    assert dict(spring.parameters).keys() == set(spring.parameters)


def test_validation_errors_carry_every_diagnostic() -> None:
    bad = json.loads(SPRING_GRAPH)
    bad["blocks"]["plant"]["model"] = "builtin:nope"
    bad["connections"].append({"from": "inputs.G", "to": "plant.F"})
    text = json.dumps(bad, indent=1)
    with pytest.raises(twin.ValidationError) as e:
        twin.Graph.parse(text, source="bad.json")
    d = e.value.diagnostics
    assert len(d) >= 2
    assert all(x.file == "bad.json" and x.line > 0 and x.col > 0 for x in d)
    assert any("nope" in x.message for x in d)
    assert "bad.json:" in str(e.value)
    with pytest.raises(twin.ParseError, match="bad.json"):
        twin.Graph.parse("{not json", source="bad.json")


def test_a_trap_in_a_graph_raises(wat, tmp_path: Path) -> None:
    (tmp_path / "div_zero.wasm").write_bytes(
        wat(SOURCE / "tests" / "unit" / "wasm" / "wat" / "hostile" / "div_zero.wat"))
    desc = twin.Model.load(tmp_path / "div_zero.wasm").describe()
    outs = desc["outputs"]
    text = json.dumps({"graph": 1, "dt": 0.1,
                       "blocks": {"m": {"model": "wasm:div_zero.wasm"}},
                       "outputs": {o["name"]: "m." + o["name"] for o in outs[:1]}})
    with twin.Graph.parse(text, base_dir=tmp_path) as g:
        for _ in range(2):
            with pytest.raises(twin.ModelTrap, match="division by zero"):
                g.run(3)


def test_budgets(spring: twin.Graph) -> None:
    spring.set_budget(max_memory=64)
    with pytest.raises(twin.LimitExceeded, match="memory"):
        spring.run(10)
    spring.set_budget()
    assert spring.run(10)["x"].shape == (10,)


def test_stats(spring: twin.Graph) -> None:
    spring.run(25)
    s = spring.stats()
    assert s["ticks"] == 25
    assert s["blocks"][0]["name"] == "plant" and s["blocks"][0]["steps"] == 25
    spring.grad(25, "x")
    assert spring.stats()["blocks"][0]["vjps"] == 25


@pytest.mark.parametrize("fmt", ["json", "cdr"])
def test_trace_round_trip(spring: twin.Graph, tmp_path: Path, fmt: str) -> None:
    f = np.sin(np.arange(5000) * 0.01)  # more than one piece of 4096 ticks
    path = tmp_path / f"run-{fmt}.mcap"
    out = spring.run(5000, {"F": f}, trace=path, trace_format=fmt)
    with twin.Trace.open(path) as tr:
        assert set(tr.channels) == {"/inputs/F", "/outputs/x", "/outputs/v"}
        t, x = tr.read("/outputs/x")
        _, fin = tr.read("/inputs/F")
        assert tr.metadata["twin.graph"]["name"] == "sd"
        assert tr.metadata["twin.stats"]["ticks"] == "5000"
    assert np.array_equal(t, np.arange(5000) * 0.01)
    assert np.array_equal(x, out["x"]) and np.array_equal(fin, f)


def test_failed_traced_run_leaves_no_file(spring: twin.Graph, tmp_path: Path) -> None:
    spring.set_budget(max_memory=64)
    with pytest.raises(twin.LimitExceeded):
        spring.run(10, trace=tmp_path / "t.mcap")
    assert list(tmp_path.iterdir()) == []


def test_closed_graph(spring: twin.Graph) -> None:
    spring.close()
    with pytest.raises(ValueError, match="closed"):
        spring.run(3)
    with pytest.raises(ValueError, match="closed"):
        spring.parameter_vector


def test_runs_release_the_gil() -> None:
    # While one thread runs a long gradient in C, this thread keeps
    # running Python: the C call does not hold the GIL.
    g = twin.Graph.parse(SPRING_GRAPH)
    ticks = 400_000
    done = threading.Event()

    def work() -> None:
        g.grad(ticks, twin.mse("x", 0.0), schedule="revolve:8")
        done.set()

    th = threading.Thread(target=work)
    counted = 0
    th.start()
    time.sleep(0.01)
    while not done.is_set():
        counted += 1
    th.join()
    g.close()
    # With the GIL held by the worker this loop could only run at the
    # switch interval (5 ms) boundaries between C calls, i.e. not at all.
    assert counted > 10_000
