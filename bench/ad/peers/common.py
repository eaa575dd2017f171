"""Timing and JSON-lines output shared by the bench/ad peers."""

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(doc, sizes=True):
    p = argparse.ArgumentParser(description=doc)
    if sizes:
        p.add_argument("--sizes", default="S,M,L",
                       help="comma-separated B1 sizes (S, M, L)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions (bench/ad/run --quick)")
    return p.parse_args()


def emit(obj):
    print(json.dumps(obj), flush=True)


def skipped(bench, impl, why, **extra):
    emit(dict(bench=bench, impl=impl, skipped=why, **extra))


def ms(seconds):
    return round(seconds * 1e3, 4)


def median_time(fn, quick, min_reps=5, budget_s=None):
    """Median wall time of fn() over several repetitions after one warm-up.

    At least min_reps (3 when quick) repetitions, and more until budget_s
    (1 s, 0.3 s when quick) has been spent, at most 51.
    """
    if budget_s is None:
        budget_s = 0.3 if quick else 1.0
    if quick:
        min_reps = min(min_reps, 3)
    fn()  # warm-up
    times = []
    spent = 0.0
    while len(times) < min_reps or (spent < budget_s and len(times) < 51):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return statistics.median(times), len(times)


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def sizes_arg(s):
    out = [x.strip().upper() for x in s.split(",") if x.strip()]
    for x in out:
        if x not in ("S", "M", "L"):
            sys.exit(f"unknown size {x!r} (S, M, L)")
    return out


def _skip_all(bench, impl, why, sizes):
    for s in sizes or [None]:
        if s is None:
            skipped(bench, impl, why)
        else:
            skipped(bench, impl, why, size=s)


def load_jax(bench, impl="jax", sizes=None):
    """(jax, jax.numpy) configured for float64 on the CPU, or None after
    reporting every row of this peer as skipped."""
    try:
        import jax
        import jax.numpy as jnp
    except Exception as e:  # noqa: BLE001
        _skip_all(bench, impl, f"import jax failed: {e}", sizes)
        return None
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax, jnp


def load_torch(bench, sizes=None):
    """torch using every core, or None after reporting the rows skipped."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        _skip_all(bench, "pytorch", f"import torch failed: {e}", sizes)
        return None
    torch.set_num_threads(cores())
    return torch


def jax_peak_bytes(compiled):
    """Temp + output buffers of a compiled JAX function, or None."""
    try:
        ma = compiled.memory_analysis()
        return int(ma.temp_size_in_bytes + ma.output_size_in_bytes)
    except Exception:  # noqa: BLE001
        return None
