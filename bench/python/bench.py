"""The Python side of bench/python/run: one JSON line per measurement.

    model_step  ns per Model.step of a model from Python, against the C
                call measured by step.c in the same invocation (its line
                is read from --c-line): overhead_ns = python - c, the
                target is <= 5000 ns.
    graph_run   ms of Graph.run(10000) against `twin graph run --ticks
                10000` of the same graph: the CLI's own accounting of the
                run (--stats: run wall_ms, per-block CPU time measured) and
                its process wall time (start, load, run, 10,000 lines
                printed); ratio = python run (the same accounting on) /
                cli run, the target is <= 1.2.

Medians of several repetitions after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import twin


def model_step(path: Path, calls: int, reps: int, c_line: dict) -> None:
    with twin.Model.load(path) as m:
        x0 = m.init()
        times = []
        for r in range(reps + 1):
            x = x0
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                x, y = m.step(0.0, 0.01, x)
            if r:
                times.append((time.perf_counter_ns() - t0) / calls)
    py = statistics.median(times)
    c = c_line["ns_per_call"]
    print(json.dumps({"bench": "model_step", "impl": "python", "model": m.name,
                      "calls": calls, "ns_per_call": round(py, 1), "c_ns_per_call": c,
                      "overhead_ns": round(py - c, 1), "ratio": round(py / c, 2),
                      "target_overhead_ns": 5000}), flush=True)


def graph_run(path: Path, cli: str, ticks: int, reps: int) -> None:
    # The CLI's --stats turns on per-block thread CPU accounting (two clock
    # reads per block step); the Python run is timed both with it on (the
    # like-for-like ratio) and off (what a plain .run costs). The CLI and
    # Python repetitions alternate, so drift of a shared machine hits both.
    runs, procs, py, plain, load_run = [], [], [], [], []
    for r in range(reps + 1):
        t0 = time.perf_counter_ns()
        p = subprocess.run([cli, "graph", "run", "--ticks", str(ticks), "--stats", "--json",
                            str(path)], capture_output=True, text=True, check=True)
        wall = (time.perf_counter_ns() - t0) / 1e6
        stats = json.loads(p.stdout.splitlines()[-1])["stats"]
        t0 = time.perf_counter_ns()
        with twin.Graph.load(path) as g:
            t1 = time.perf_counter_ns()
            out = g.run(ticks)
            t2 = time.perf_counter_ns()
            g.set_budget(cpu_per_block=True)
            t3 = time.perf_counter_ns()
            g.run(ticks)
            t4 = time.perf_counter_ns()
        assert len(next(iter(out.values()))) == ticks
        if r:
            runs.append(stats["wall_ms"])
            procs.append(wall)
            plain.append((t2 - t1) / 1e6)
            load_run.append((t2 - t0) / 1e6)
            py.append((t4 - t3) / 1e6)
    cli_run = statistics.median(runs)
    print(json.dumps({"bench": "graph_run", "impl": "cli", "graph": path.stem,
                      "ticks": ticks, "run_ms": round(cli_run, 3),
                      "process_ms": round(statistics.median(procs), 3)}), flush=True)
    pr = statistics.median(py)
    print(json.dumps({"bench": "graph_run", "impl": "python", "graph": path.stem,
                      "ticks": ticks, "run_ms": round(pr, 3),
                      "run_ms_without_cpu_accounting": round(statistics.median(plain), 3),
                      "load_and_run_ms": round(statistics.median(load_run), 3),
                      "ratio": round(pr / cli_run, 3), "target_ratio": 1.2}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--c-line", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    reps = 3 if a.quick else 9
    model_step(a.models / "oscillator.wasm", 50_000 if a.quick else 200_000, reps,
               json.loads(a.c_line))
    for graph in ("spring_damper", "hybrid_oscillator", "chain1d"):
        path = a.models / f"{graph}.json"
        if path.exists():
            graph_run(path, a.cli, 10_000, reps)
        else:
            print(json.dumps({"bench": "graph_run", "graph": graph,
                              "skipped": f"no {path}"}), flush=True)


if __name__ == "__main__":
    main()
