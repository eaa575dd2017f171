"""Memory: 10,000 load/close cycles (and as many left to the garbage
collector) hold no C allocation and do not grow the process."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest

import twin
from conftest import SPRING_GRAPH

CYCLES = int(os.environ.get("TWIN_SDK_CYCLES", "10000"))
# Under AddressSanitizer freed memory waits in its quarantine (256 MiB), so
# the resident size says nothing there; tw_alloc_live still does.
RSS_LIMIT = (1 << 62) if "asan" in os.environ.get("LD_PRELOAD", "") else 16 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cycles(make, use) -> tuple:
    for _ in range(50):  # warm caches (compiled modules, numpy, ctypes)
        with make() as o:
            use(o)
    gc.collect()
    live, size = twin.alloc_live(), rss()
    for i in range(CYCLES):
        o = make()
        use(o)
        if i % 2 == 0:
            o.close()
        del o  # the others are freed by their finalizers
    gc.collect()
    return twin.alloc_live() - live, rss() - size


def test_models(models: Path) -> None:
    path = models / "oscillator.wasm"
    leaked, grown = cycles(lambda: twin.Model.load(path),
                           lambda m: m.step(0.0, 0.01, m.init()))
    assert leaked == 0
    assert grown < RSS_LIMIT, grown


def test_graphs() -> None:
    leaked, grown = cycles(lambda: twin.Graph.parse(SPRING_GRAPH),
                           lambda g: g.grad(20, twin.mse("x", np.zeros(20))))
    assert leaked == 0
    assert grown < RSS_LIMIT, grown


def test_twins(tmp_path: Path) -> None:
    from test_twin import TWIN_YAML

    (tmp_path / "t.yaml").write_text(TWIN_YAML)
    leaked, grown = cycles(lambda: twin.Twin.load(tmp_path / "t.yaml"),
                           lambda t: t.run(5))
    assert leaked == 0
    assert grown < RSS_LIMIT, grown


def test_traces(tmp_path: Path) -> None:
    with twin.Graph.parse(SPRING_GRAPH) as g:
        g.run(50, trace=tmp_path / "r.mcap")
    leaked, grown = cycles(lambda: twin.Trace.open(tmp_path / "r.mcap"),
                           lambda t: t.read("/outputs/x"))
    assert leaked == 0
    assert grown < RSS_LIMIT, grown


def test_errors_leak_nothing(wat) -> None:
    from conftest import SOURCE

    data = wat(SOURCE / "tests" / "unit" / "wasm" / "wat" / "hostile" / "loop_step.wat")
    bad = '{"graph": 1, "dt": 0.1, "blocks": {"b": {"model": "builtin:nope"}}}'

    def once() -> None:
        with twin.Model.load(data, fuel=10_000) as m:
            with pytest.raises(twin.LimitExceeded):
                m.step(0.0, 0.1, m.init())
        with pytest.raises(twin.ValidationError):
            twin.Graph.parse(bad)

    for _ in range(20):
        once()
    gc.collect()
    live = twin.alloc_live()
    for _ in range(max(1, CYCLES // 20)):
        once()
    gc.collect()
    assert twin.alloc_live() == live
