#!/usr/bin/env python3
"""Runs the bench/ad peers one after another (never in parallel: 2 cores),
passes their JSON lines through to stdout and prints the cross-checks.

Started by bench/ad/run, which builds the C floor first. Standard library
only, so it runs without the venv (the peers then report themselves skipped).
"""

import argparse
import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(ROOT, "bench", "ad", "peers")
TWIN = os.path.join(ROOT, "build", "default", "tools", "twin", "twin")
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
TOL = 1e-9

results = []


def emit(obj):
    print(json.dumps(obj), flush=True)


def run_cmd(cmd, bench, impl, expect_sizes=None, timeout=1800):
    """Run one peer; pass its JSON lines through; report what it left out."""
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)
        stdout, stderr, rc = p.stdout, p.stderr, p.returncode
    except FileNotFoundError as e:
        stdout, stderr, rc = "", str(e), 127
    except subprocess.TimeoutExpired:
        stdout, stderr, rc = "", f"timed out after {timeout} s", -1
    seen = set()
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        emit(obj)
        results.append(obj)
        seen.add(obj.get("size"))
    if rc != 0 or not seen:
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        prog = cmd[1] if cmd[0] == VENV_PY else cmd[0]
        why = f"{os.path.relpath(prog, ROOT)} exited {rc}" + (
            f" without output for this row: {tail[-1].strip()}" if tail else
            " without output for this row")
        sys.stderr.write(stderr)
        for s in (expect_sizes or [None]):
            if s in seen:
                continue
            obj = {"bench": bench, "impl": impl, "skipped": why}
            if s:
                obj["size"] = s
            emit(obj)
            results.append(obj)


def python_for_peers():
    if os.access(VENV_PY, os.X_OK):
        return VENV_PY, None
    return None, ".venv missing (run scripts/bootstrap)"


def twin_rows(bench, sizes, quick):
    """Twin through its CLI, once `twin sim bench` exists."""
    if not os.access(TWIN, os.X_OK):
        why = "build/default/tools/twin/twin is not built (run make build)"
    else:
        p = subprocess.run([TWIN, "help", "sim", "bench"], cwd=ROOT,
                           capture_output=True, text=True)
        why = None if p.returncode == 0 else (
            f"twin has no 'sim bench' command yet ('twin help sim bench' "
            f"exited {p.returncode})")
    if why:
        for s in sizes or [None]:
            obj = {"bench": bench, "impl": "twin", "skipped": why}
            if s:
                obj["size"] = s
            emit(obj)
            results.append(obj)
        return
    if sizes:
        # Store-all, periodic at sqrt(T) (O(sqrt T) states) and binomial
        # with 32 slots (O(log T) states), as BENCHMARKS.md's targets ask.
        steps = {"S": 1024, "M": 4096, "L": 10000}
        for s in sizes:
            c = math.isqrt(steps[s] - 1) + 1
            for sched in ("all", f"periodic:{c}", "revolve:32"):
                cmd = [TWIN, "sim", "bench", bench, "--size", s,
                       "--schedule", sched, "--json"]
                run_cmd(cmd, bench, "twin", [s])
    else:
        run_cmd([TWIN, "sim", "bench", bench, "--json"], bench, "twin")


def rel(a, b):
    if a is None or b is None:
        return float("inf")
    d = abs(a - b)
    return d / max(abs(b), 1e-300) if b != 0 else d


def checks():
    ok = True
    rows = [r for r in results if "skipped" not in r]

    # B1: every impl against the C floor's hand-written reverse pass.
    for size in ("S", "M", "L"):
        ref = next((r for r in rows if r.get("bench") == "chain1d" and
                    r.get("size") == size and r.get("impl") == "c-floor"), None)
        others = [r for r in rows if r.get("bench") == "chain1d" and
                  r.get("size") == size and r.get("impl") != "c-floor"]
        if ref is None:
            if others:
                emit({"check": "chain1d", "size": size, "ok": False,
                      "why": "no c-floor row to compare against"})
                ok = False
            continue
        fd = rel(ref.get("dL_dk0_fd"), ref["dL_dk0"])
        fwd = rel(ref.get("loss_forward"), ref["loss"])
        good = fd < 1e-6 and fwd < 1e-15
        ok &= good
        emit({"check": "chain1d-floor", "size": size,
              "reference": "c-floor adjoint vs central difference (h = 1e-4 k0)",
              "dL_dk0_fd_rel_dev": fd, "loss_fwd_vs_rev_rel_dev": fwd,
              "tol": [1e-6, 1e-15], "ok": good})
        worst, dev = None, 0.0
        for r in others:
            for f in ("loss", "dL_dk0", "dL_dk_l2"):
                if f not in ref or (f not in r and f == "dL_dk_l2"):
                    continue
                d = rel(r.get(f), ref[f])
                if d >= dev:
                    worst, dev = f"{r['impl']}.{f}", d
        if others:
            good = dev <= TOL
            ok &= good
            emit({"check": "chain1d", "size": size,
                  "reference": "c-floor reverse pass (store-all)",
                  "impls": [r["impl"] for r in others],
                  "max_rel_dev": dev, "worst": worst, "tol": TOL, "ok": good})

    # B2, B3: no C reference yet; every impl against the JAX peer.
    fields = {"mass_spring_simple": ("loss", "dL_drest", "losses"),
              "mass_spring": ("loss", "grad_l2", "dL_db2_0", "losses")}
    for bench, fs in fields.items():
        ref = next((r for r in rows if r.get("bench") == bench and
                    r.get("impl") == "jax"), None)
        others = [r for r in rows if r.get("bench") == bench and
                  r.get("impl") != "jax"]
        if ref is None or not others:
            continue
        worst, dev = None, 0.0
        curve_dev = 0.0
        for r in others:
            for f in fs:
                a, b = r.get(f), ref.get(f)
                if isinstance(b, list):
                    if not isinstance(a, list) or len(a) != len(b):
                        d = float("inf")
                    else:
                        d = max((rel(x, y) for x, y in zip(a, b)), default=0.0)
                else:
                    d = rel(a, b)
                if f == "losses":
                    curve_dev = max(curve_dev, d)
                    continue
                if d >= dev:
                    worst, dev = f"{r['impl']}.{f}", d
        good = dev <= TOL
        ok &= good
        emit({"check": bench, "reference": "jax",
              "impls": [r["impl"] for r in others], "max_rel_dev": dev,
              "worst": worst, "tol": TOL, "loss_curve_max_rel_dev": curve_dev,
              "ok": good})
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floor", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = ["S", "M"] if args.quick else ["S", "M", "L"]
    q = ["--quick"] if args.quick else []
    sz = ["--sizes", ",".join(sizes)]

    # B1 chain1d
    twin_rows("chain1d", sizes, args.quick)
    if os.access(args.floor, os.X_OK):
        run_cmd([args.floor] + sz + q, "chain1d", "c-floor", sizes)
    else:
        for s in sizes:
            emit({"bench": "chain1d", "size": s, "impl": "c-floor",
                  "skipped": "bench/ad/floor/chain1d.c did not build"})
    py, why = python_for_peers()
    peers = [("jax", "chain1d_jax.py", []),
             ("jax-nested", "chain1d_jax.py", ["--schedule", "nested"]),
             ("pytorch", "chain1d_torch.py", [])]
    for impl, script, extra in peers:
        if py is None:
            for s in sizes:
                emit({"bench": "chain1d", "size": s, "impl": impl, "skipped": why})
            continue
        run_cmd([py, os.path.join(PEERS, script)] + sz + q + extra,
                "chain1d", impl, sizes)

    if not args.quick:
        for bench, jax_script, torch_script in (
                ("mass_spring_simple", "mass_spring_jax.py", "mass_spring_torch.py"),
                ("mass_spring", "robot_jax.py", "robot_torch.py")):
            twin_rows(bench, None, False)
            for impl, script in (("jax", jax_script), ("pytorch", torch_script)):
                if py is None:
                    emit({"bench": bench, "impl": impl, "skipped": why})
                    continue
                run_cmd([py, os.path.join(PEERS, script)], bench, impl)

    return 0 if checks() else 1


if __name__ == "__main__":
    sys.exit(main())
