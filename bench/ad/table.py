#!/usr/bin/env python3
"""Markdown tables from bench/ad/run's JSON lines (stdin), for README.md:

    bench/ad/run > /tmp/ad.jsonl; bench/ad/table.py < /tmp/ad.jsonl
"""

import json
import sys


def fmt_ms(x):
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_bytes(b):
    if b is None:
        return "–"
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= k:
            return f"{b / k:.3g} {unit}"
    return f"{b} B"


def main():
    rows = [json.loads(ln) for ln in sys.stdin if ln.strip().startswith("{")]
    runs = [r for r in rows if "check" not in r]
    floor = {r["size"]: r for r in runs if r.get("bench") == "chain1d"
             and r.get("impl") == "c-floor" and "skipped" not in r}

    print("B1 chain1d (float64; ×floor = grad_ms / c-floor forward_ms)\n")
    print("| size | impl | forward ms | grad ms | ratio | ×floor | peak (tape) | schedule | compile ms | loss | dL_dk0 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |")
    for r in runs:
        if r.get("bench") != "chain1d":
            continue
        if "skipped" in r:
            print(f"| {r.get('size', '')} | {r['impl']} | skipped: {r['skipped']} |||||||||")
            continue
        fl = floor.get(r["size"])
        xf = f"{r['grad_ms'] / fl['forward_ms']:.3g}" if fl else "–"
        comp = r.get("compile_ms")
        print(f"| {r['size']} | {r['impl']} | {fmt_ms(r['forward_ms'])} | "
              f"{fmt_ms(r['grad_ms'])} | {r['ratio']:.3g} | {xf} | "
              f"{fmt_bytes(r['peak_bytes'])} | {r['schedule']} | "
              f"{'–' if comp is None else f'{comp:.0f}'} | "
              f"{r['loss']:.13g} | {r['dL_dk0']:.13g} |")

    for bench, title in (("mass_spring_simple", "B2 mass_spring_simple"),
                         ("mass_spring", "B3 mass_spring robot")):
        sel = [r for r in runs if r.get("bench") == bench]
        if not sel:
            continue
        print(f"\n{title}\n")
        print("| impl | forward ms | grad ms | ratio | peak (tape) | compile ms | loss₀ | losses[1..3] | last losses |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
        for r in sel:
            if "skipped" in r:
                print(f"| {r['impl']} | skipped: {r['skipped']} ||||||||")
                continue
            ls = r.get("losses", [])
            comp = r.get("compile_ms")
            print(f"| {r['impl']} | {fmt_ms(r['forward_ms'])} | "
                  f"{fmt_ms(r['grad_ms'])} | {r['ratio']:.3g} | "
                  f"{fmt_bytes(r['peak_bytes'])} | "
                  f"{'–' if comp is None else f'{comp:.0f}'} | {ls[0]:.6g} | "
                  f"{', '.join(f'{x:.6g}' for x in ls[1:4])} | "
                  f"{', '.join(f'{x:.6g}' for x in ls[-3:])} |")

    checks = [r for r in rows if "check" in r]
    if checks:
        print("\nChecks\n")
        for c in checks:
            dev = c.get("max_rel_dev", c.get("dL_dk0_fd_rel_dev"))
            print(f"- {c['check']} {c.get('size', '')}: "
                  f"{'ok' if c.get('ok') else 'FAILED'}, max relative deviation "
                  f"{dev:.2g} against {c.get('reference')}")


if __name__ == "__main__":
    main()
