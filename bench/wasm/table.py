#!/usr/bin/env python3
"""bench/wasm/table.py - Markdown tables from bench/wasm/run's JSON lines
(stdin)."""
import json
import sys

rows = [json.loads(l) for l in sys.stdin if l.strip().startswith("{")]
print("Step time, the same model C code native and in wasmtime "
      "(ratio = wasm / native)\n")
print("| model | impl | metering | step ns | ratio | fuel / step | "
      "max rel. diff vs native |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
for r in rows:
    if r["bench"] != "wasm_step":
        continue
    if r["impl"] == "native":
        print(f"| {r['model']} | native ({r['compiler']}) | – | "
              f"{r['step_ns']:.0f} | 1 | – | – |")
    else:
        print(f"| {r['model']} | wasm | {r['meter']} | {r['step_ns']:.0f} | "
              f"{r['ratio']:.2f} | {r['fuel_per_step'] or '–'} | "
              f"{r['max_rel_diff_vs_native']:.2g} |")
print("\nHost-to-guest call and instantiation\n")
print("| measurement | impl | metering | value |")
print("| --- | --- | --- | ---: |")
for r in rows:
    if r["bench"] == "wasm_call":
        print(f"| call: {r['what']} | {r['impl']} | {r.get('meter', '–')} | "
              f"{r['call_ns']:.1f} ns |")
    elif r["bench"] in ("wasm_instantiate", "wasm_load_cached"):
        print(f"| {r['what']} | {r['impl']} | fuel+epoch | {r['us']:.1f} us |")
