#!/usr/bin/env python3
"""bench/trace/peer.py DIR MB REPS - the peer of bench.c: the reference
Python MCAP writer (mcap, from the project's venv) writing the same port
samples (CDR, 16 f64 on 8 channels, a pool of 65536 cycled) into DIR, with
no compression and with zstd (the Python writer's zstd is
zstandard.compress at its default level, 3). One JSON line per case, the
median of REPS runs after a warm-up; mb_s counts message data.
"""
import json
import math
import os
import statistics
import struct
import sys
import time

from mcap.writer import CompressionType, Writer

POOL, NVAL, NCH = 65536, 16, 8
SCHEMA = (b"# A sample of a Twin port: 16 values in m.\n"
          b"float64 t # seconds\nfloat64[] value\n")


def make_pool():
    pool = []
    for k in range(POOL):
        vals = [math.sin(0.001 * k + 0.37 * i) * (1 + i) for i in range(NVAL)]
        pool.append(b"\x00\x01\x00\x00" + struct.pack("<dI4x", k * 1e-3, NVAL)
                    + struct.pack(f"<{NVAL}d", *vals))
    return pool


def run(path, pool, payload, compression):
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        w = Writer(f, compression=compression, chunk_size=1 << 20)
        w.start(profile="", library="peer")
        schema = w.register_schema("twin_msgs/msg/PortSample", "ros2msg", SCHEMA)
        ch = [w.register_channel(f"/bench/p{c}", "cdr", schema,
                                 {"twin.unit": "m", "twin.size": str(NVAL)})
              for c in range(NCH)]
        written, k = 0, 0
        size = len(pool[0])
        add = w.add_message
        while written < payload:
            t = k * 1_000_000
            add(ch[k % NCH], t, pool[k % POOL], t, sequence=k & 0xFFFFFFFF)
            written += size
            k += 1
        w.finish()
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - t0, written, os.path.getsize(path), k


def main():
    out_dir, mb, reps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    payload = int(mb * 1e6)
    pool = make_pool()
    path = os.path.join(out_dir, "peer-bench.mcap")
    run(path, pool, payload // 8 + 1, CompressionType.NONE)  # warm-up
    import mcap
    version = getattr(mcap, "__version__", None)
    try:
        from importlib.metadata import version as v
        version = v("mcap")
    except Exception:
        pass
    for name, comp, level in (("none", CompressionType.NONE, 0),
                              ("zstd", CompressionType.ZSTD, 3)):
        runs = [run(path, pool, payload, comp) for _ in range(reps)]
        sec = statistics.median(r[0] for r in runs)
        _, written, file_size, samples = runs[0]
        print(json.dumps({
            "bench": "trace_write", "impl": "python-mcap", "version": version,
            "api": "Writer.add_message", "encoding": "cdr", "compression": name,
            "level": level, "payload_mb": round(written / 1e6, 1),
            "file_mb": round(file_size / 1e6, 1), "seconds": round(sec, 3),
            "mb_s": round(written / 1e6 / sec, 1),
            "file_mb_s": round(file_size / 1e6 / sec, 1),
            "samples_per_s": round(samples / sec), "reps": reps}), flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main()
