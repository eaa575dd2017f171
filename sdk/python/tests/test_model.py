"""Models: the descriptor, init/step/vjp against the CLI and finite
differences, argument errors, and hostile modules that must raise, never
kill the interpreter."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import twin
from conftest import SOURCE, run_cli

HOSTILE = sorted((SOURCE / "tests" / "unit" / "wasm" / "wat" / "hostile").glob("*.wat"))


@pytest.fixture
def osc(models: Path) -> twin.Model:
    with twin.Model.load(models / "oscillator.wasm") as m:
        yield m


def test_describe_matches_the_cli(osc: twin.Model, models: Path, twin_bin: str) -> None:
    (cli,) = run_cli(twin_bin, "model", "inspect", "--json", str(models / "oscillator.wasm"))
    d = osc.describe()
    assert d["name"] == cli["name"] and d["version"] == cli["version"]
    assert d["digest"] == cli["digest"] and d["size"] == cli["size"]
    assert d["differentiable"] is cli["differentiable"]
    for kind in ("state", "inputs", "outputs", "params"):
        assert [p["name"] for p in d[kind]] == [p["name"] for p in cli["descriptor"][kind]]
        assert [p["size"] for p in d[kind]] == [p["size"] for p in cli["descriptor"][kind]]
        for p, q in zip(d[kind], cli["descriptor"][kind]):
            if "default" in q:
                assert p["default"].tolist() == q["default"]
    assert (osc.nx, osc.nu, osc.ny, osc.ntheta) == (2, 1, 1, 3)


def test_steps_match_the_cli_bit_for_bit(osc: twin.Model, models: Path,
                                         twin_bin: str) -> None:
    lines = run_cli(twin_bin, "model", "run", "--json", "--steps", "20", "--dt", "0.02",
                    "--params", '{"k": 9, "c": 0.5}', "--inputs", '{"F": 0.25}',
                    str(models / "oscillator.wasm"))
    th = osc.params({"k": 9, "c": 0.5})
    x = osc.init(th)
    for k, line in enumerate(lines[:-1]):
        assert line["x"] == x.tolist()
        x, y = osc.step(k * 0.02, 0.02, x, {"F": 0.25}, th)
        assert line["y"] == y.tolist()
    assert lines[-1]["summary"]["steps"] == 20


def test_arguments_as_arrays_dicts_and_lists(osc: twin.Model) -> None:
    x = osc.init()
    a = osc.step(0.0, 0.01, x, np.array([0.5]), np.array([1.0, 4.0, 0.1]))
    b = osc.step(0.0, 0.01, list(x), {"F": 0.5}, {"k": 4.0})
    c = osc.step(0.0, 0.01, x, osc.inputs({"F": 0.5}), None)
    for u, v in ((a, b), (a, c)):
        assert np.array_equal(u[0], v[0]) and np.array_equal(u[1], v[1])
    # The defaults come back after a call with other values.
    d = osc.step(0.0, 0.01, x)
    e = osc.step(0.0, 0.01, x, None, osc.default_params())
    assert np.array_equal(d[0], e[0])
    # Results are new arrays, not views of a buffer reused by the next call.
    f = osc.step(0.0, 0.01, x, {"F": 3.0})
    assert not np.array_equal(f[0], d[0]) and np.array_equal(d[0], e[0])


@pytest.mark.parametrize("call,match", [
    (lambda m: m.step(0, 0.01, [1.0, 2.0, 3.0]), "state: expected 2"),
    (lambda m: m.step(0, 0.01, [1.0, 0.0], [1.0, 2.0]), "inputs: expected 1"),
    (lambda m: m.step(0, 0.01, [1.0, 0.0], {"G": 1.0}), "no port 'G'"),
    (lambda m: m.step(0, 0.01, [1.0, 0.0], None, {"k": [1, 2]}), "'k' needs 1"),
    (lambda m: m.init([1.0]), "params: expected 3"),
])
def test_bad_arguments_raise_value_errors(osc: twin.Model, call, match: str) -> None:
    with pytest.raises(twin.InvalidArgument, match=match) as e:
        call(osc)
    assert isinstance(e.value, ValueError)


def test_vjp_matches_finite_differences(osc: twin.Model) -> None:
    rng = np.random.default_rng(7)
    th = osc.params({"m": 1.3, "k": 5.0, "c": 0.4})
    x = np.array([0.3, -0.2])
    u = np.array([0.7])
    gxn, gy = rng.normal(size=2), rng.normal(size=1)
    t, dt = 0.1, 0.05

    def scalar(x_, u_, th_):
        xn, y = osc.step(t, dt, x_, u_, th_)
        return float(gxn @ xn + gy @ y)

    gx, gu, gth = osc.vjp(t, dt, x, u, th, gxn, gy)
    for vec, grad in ((x, gx), (u, gu), (th, gth)):
        for i in range(vec.size):
            h = 6e-6 * max(1.0, abs(vec[i]))
            p, m = vec.copy(), vec.copy()
            p[i] += h
            m[i] -= h
            args_p = [p if vec is a else a for a in (x, u, th)]
            args_m = [m if vec is a else a for a in (x, u, th)]
            fd = (scalar(*args_p) - scalar(*args_m)) / (2 * h)
            assert abs(fd - grad[i]) <= 1e-7 * max(1.0, abs(fd)), (i, fd, grad[i])
    assert np.any(gth != 0)


def test_bytes_and_file_are_the_same_module(models: Path) -> None:
    data = (models / "oscillator.wasm").read_bytes()
    with twin.Model.load(data, name="osc-bytes") as a, \
            twin.Model.load(models / "oscillator.wasm") as b:
        assert a.digest == b.digest
        x = a.init()
        assert np.array_equal(a.step(0, 0.01, x)[0], b.step(0, 0.01, x)[0])


def test_not_webassembly_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(twin.ParseError, match="<bytes>"):
        twin.Model.load(b"\x00asm\x02\x00\x00\x00garbage")
    with pytest.raises(twin.TwinError):
        twin.Model.load(b"not wasm at all")
    with pytest.raises(twin.NotFoundError, match="missing.wasm"):
        twin.Model.load(tmp_path / "missing.wasm")
    with pytest.raises(twin.InvalidArgument, match="65536"):
        twin.Model.load(b"", max_memory=100)
    with pytest.raises(twin.InvalidArgument, match="fuel"):
        twin.Model.load(b"", fuel=-1)


def test_closed_models_refuse_calls(models: Path) -> None:
    m = twin.Model.load(models / "oscillator.wasm")
    x = m.init()
    m.close()
    assert m.closed
    m.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        m.step(0, 0.01, x)
    with pytest.raises(ValueError, match="closed"):
        m.init()
    assert "closed" in repr(m)


@pytest.mark.parametrize("wat_file", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_modules_raise(wat, wat_file: Path) -> None:
    # Every module of the hostile suite either loads and runs or fails with
    # a TwinError; nothing it does may take the interpreter down, and a
    # model whose call failed can be called again.
    data = wat(wat_file)
    try:
        m = twin.Model.load(data, fuel=20_000_000, timeout_ms=5000, max_memory=1 << 20,
                            name=wat_file.stem)
    except twin.TwinError as e:
        assert e.code < 0 and e.message
        return
    with m:
        for _ in range(2):
            try:
                x = m.init()
                m.step(0.0, 0.01, x)
                m.vjp(0.0, 0.01, x, g_state=np.ones(m.nx), g_outputs=np.ones(m.ny))
            except twin.TwinError as e:
                assert e.name != "ESTATE", "the sandbox was not replaced after a failure"
                assert e.message


@pytest.mark.parametrize("name,kw,cls,match", [
    ("div_zero", {}, twin.ModelTrap, "division by zero"),
    ("recurse", {}, twin.ModelTrap, "stack overflow"),
    ("loop_step", {"fuel": 1_000_000}, twin.LimitExceeded, "out of fuel"),
    ("loop_step", {"timeout_ms": 50}, twin.LimitExceeded, "deadline"),
    ("grow_loop", {"max_memory": 1 << 20, "fuel": 50_000_000}, twin.LimitExceeded, "fuel|memory"),
])
def test_traps_and_limits(wat, name: str, kw: dict, cls: type, match: str) -> None:
    data = wat(SOURCE / "tests" / "unit" / "wasm" / "wat" / "hostile" / f"{name}.wat")
    with twin.Model.load(data, **kw) as m:
        x = m.init()
        for _ in range(2):  # the second call meets a fresh sandbox, not ESTATE
            with pytest.raises(cls, match=match):
                m.step(0.0, 0.01, x)


def test_not_differentiable(wat) -> None:
    data = wat(SOURCE / "tests" / "unit" / "wasm" / "wat" / "hostile" / "desc_lies_big.wat")
    with twin.Model.load(data) as m:
        assert not m.differentiable
        with pytest.raises(twin.NotSupported, match="not differentiable"):
            m.vjp(0.0, 0.01, m.init())


def test_usage_counts_calls(osc: twin.Model) -> None:
    before = osc.usage()["calls"]
    x = osc.init()
    osc.step(0, 0.01, x)
    assert osc.usage()["calls"] == before + 2


def test_threads_share_a_model(osc: twin.Model) -> None:
    # Calls are serialised: many threads stepping one model get the same
    # results as one thread.
    x = osc.init()
    want = osc.step(0.0, 0.01, x)[0]
    bad = []

    def work() -> None:
        for _ in range(500):
            if not np.array_equal(osc.step(0.0, 0.01, x)[0], want):
                bad.append(1)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad
