"""Accounting of graph runs from the command line: `--stats` per block
(steps, VJPs, time, memory, wasm memory, fuel), `--max-memory` for runs and
gradients, and the twin_graph_* counters in `--metrics-out`, checked by
Prometheus' own promtool.

TWIN_BIN names the binary under test (set by ctest)."""
import json
import os
import shutil
import subprocess

import pytest

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
EXAMPLE = os.path.join(BUILD, "models", "hybrid_oscillator.json")
CHAIN = os.path.join(BUILD, "models", "chain1d.json")


def twin(*args):
    return subprocess.run([TWIN, *args], capture_output=True, timeout=120)


def stats_of(r):
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])["stats"]


def test_run_stats_per_block():
    st = stats_of(twin("graph", "run", EXAMPLE, "--ticks", "200", "--stats",
                       "--json"))
    assert st["ticks"] == 200
    blocks = {b["block"]: b for b in st["blocks"]}
    plant, residual = blocks["plant"], blocks["residual"]
    assert plant["kind"] == "wasm" and plant["steps"] == 200
    assert plant["fuel"] > 0 and plant["wasm_memory_bytes"] >= 65536
    assert st["fuel"] == plant["fuel"]
    assert residual["steps"] == 100 and residual["fuel"] == 0
    for b in blocks.values():
        assert b["vjps"] == 0
        assert b["cpu_ms"] >= 0 and b["wall_ms"] >= 0
        assert b["memory_bytes"] > 0
    assert st["memory_bytes"] >= sum(b["memory_bytes"] +
                                     b["wasm_memory_bytes"]
                                     for b in blocks.values())
    # Fuel is deterministic: the same run uses the same fuel.
    again = stats_of(twin("graph", "run", EXAMPLE, "--ticks", "200",
                          "--stats", "--json"))
    assert again["fuel"] == st["fuel"]


def test_text_stats_table():
    r = twin("graph", "run", EXAMPLE, "--ticks", "20", "--stats")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "run: 20 ticks," in text
    header = [l for l in text.splitlines() if l.startswith("block ")]
    assert header and header[0].split() == [
        "block", "kind", "steps", "vjps", "wall", "ms", "cpu", "ms", "memory",
        "wasm", "memory", "fuel"]


def test_grad_stats_count_vjps_and_checkpoints():
    st = stats_of(twin("graph", "grad", CHAIN, "--ticks", "300", "--loss",
                       "x", "--schedule", "revolve:4", "--stats", "--json"))
    (chain,) = st["blocks"]
    assert chain["vjps"] == 300
    assert chain["steps"] > 300  # revolve recomputes
    assert st["checkpoint_bytes"] > 0
    all_ = stats_of(twin("graph", "grad", CHAIN, "--ticks", "300", "--loss",
                         "x", "--schedule", "all", "--stats", "--json"))
    assert all_["checkpoint_bytes"] > st["checkpoint_bytes"]
    # Storing every state recomputes less than revolve:4 (the composite's
    # VJP re-runs its tick for the blocks' inputs in both).
    assert 300 < all_["blocks"][0]["steps"] < chain["steps"]


def test_memory_budget_of_runs_and_gradients():
    r = twin("graph", "run", EXAMPLE, "--ticks", "10", "--max-memory", "64K")
    assert r.returncode == 1
    assert b"error: ELIMIT: graph 'hybrid_oscillator': memory budget " \
        b"exceeded at tick 0" in r.stderr
    assert r.stdout == b""
    assert twin("graph", "run", EXAMPLE, "--ticks", "10", "--max-memory",
                "64M").returncode == 0
    r = twin("graph", "grad", CHAIN, "--ticks", "20000", "--loss", "x",
             "--max-memory", "4M")
    assert r.returncode == 1
    assert b"with schedule all needs" in r.stderr and b"revolve:K" in r.stderr
    r = twin("graph", "grad", CHAIN, "--ticks", "20000", "--loss", "x",
             "--max-memory", "4M", "--schedule", "revolve:16")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("bad", ["", "12Q", "-1", "1.5M", "M", "99999999T"])
def test_bad_sizes_are_usage_errors(bad):
    r = twin("graph", "run", EXAMPLE, "--max-memory", bad)
    assert r.returncode == 2
    assert b"--max-memory' needs a size in bytes" in r.stderr


def test_metrics_out_passes_promtool(tmp_path):
    prom = tmp_path / "m.prom"
    r = twin("--metrics-out", str(prom), "graph", "run", EXAMPLE, "--ticks",
             "50", "--stats")
    assert r.returncode == 0, r.stderr
    text = prom.read_text()
    assert 'twin_graph_ticks_total{graph="hybrid_oscillator"} 50\n' in text
    assert ('twin_graph_block_steps_total{graph="hybrid_oscillator",'
            'block="residual"} 25\n') in text
    assert 'twin_graph_block_fuel_total{graph="hybrid_oscillator",' \
        'block="plant"}' in text
    assert "twin_graph_block_cpu_seconds_total" in text
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True)
        assert p.returncode == 0, p.stdout + p.stderr
    # A stop by the budget is counted.
    r = twin("--metrics-out", str(prom), "graph", "run", EXAMPLE, "--ticks",
             "10", "--max-memory", "1K")
    assert r.returncode == 1
    assert ('twin_graph_budget_stops_total{graph="hybrid_oscillator",'
            'resource="memory"} 1\n') in prom.read_text()
