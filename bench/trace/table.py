#!/usr/bin/env python3
"""bench/trace/table.py - a Markdown table from bench/trace/run's JSON lines
(stdin)."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip().startswith("{")]
base = {}
for r in rows:
    if r.get("impl") == "python-mcap" and "mb_s" in r:
        base[r["compression"]] = r["mb_s"]
floor = next((r["file_mb_s"] for r in rows if r.get("impl") == "write(2)"), None)

print("| impl | api | encoding | compression | message data MB/s | file MB/s | "
      "samples/s | file MB | vs Python mcap |")
print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    if "skipped" in r:
        print(f"| {r['impl']} | skipped: {r['skipped']} | | | | | | | |")
        continue
    if "mb_s" not in r:
        continue
    comp = r["compression"] + (f" {r['level']}" if r["compression"] == "zstd" else "")
    if r["impl"] == "write(2)":
        print(f"| write(2) (floor) | 1 MiB writes | – | – | – | "
              f"{r['file_mb_s']:.0f} | – | {r['file_mb']:.0f} | – |")
        continue
    peer = base.get(r["compression"])
    ratio = f"{r['mb_s'] / peer:.1f}x" if peer and r["encoding"] == "cdr" else "–"
    print(f"| {r['impl']} | {r['api']} | {r['encoding']} | {comp} | "
          f"{r['mb_s']:.0f} | {r['file_mb_s']:.0f} | {r['samples_per_s']:,.0f} | "
          f"{r['file_mb']:.0f} | {ratio} |")
if floor:
    print(f"\nwrite(2) of the uncompressed file's bytes: {floor:.0f} MB/s.")
