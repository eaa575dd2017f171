"""`twin model inspect` and `twin model run` as a user runs them: the
report of a good model (tests/unit/wasm/wat/leaky.wat), its steps and
summary, and hostile models (tests/unit/wasm/wat/hostile/) failing with
exit 1 and `error: CODE: message`, never a signal, within their limits.

TWIN_BIN names the binary under test (set by ctest); the WebAssembly text
is converted with wat2wasm (wabt)."""
import hashlib
import json
import os
import random
import shutil
import subprocess
import time

import pytest

TWIN = os.environ["TWIN_BIN"]
SOURCE = os.environ.get(
    "TWIN_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
WAT = os.path.join(SOURCE, "tests", "unit", "wasm", "wat")
# Upper bound on the time a hostile run may take beyond its limit: process
# start, compiling, a loaded machine. No lower bounds.
SLACK_S = 10.0


def twin(*args, timeout=120):
    t0 = time.monotonic()
    r = subprocess.run([TWIN, *args], capture_output=True, timeout=timeout)
    r.elapsed = time.monotonic() - t0
    return r


@pytest.fixture(scope="module")
def wasm(tmp_path_factory):
    """wasm(name) -> path of tests/unit/wasm/wat/<name>.wat as a module."""
    tool = shutil.which("wat2wasm")
    assert tool, "wat2wasm (wabt) is needed: run scripts/bootstrap"
    out = tmp_path_factory.mktemp("wasm")

    def convert(name):
        dst = out / (name.replace("/", "_") + ".wasm")
        if not dst.exists():
            subprocess.run([tool, os.path.join(WAT, name + ".wat"), "-o",
                            str(dst)], check=True, capture_output=True)
        return str(dst)
    return convert


def test_inspect_json(wasm):
    path = wasm("leaky")
    r = twin("model", "inspect", "--json", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    v = json.loads(r.stdout)
    data = open(path, "rb").read()
    assert v["name"] == "leaky" and v["version"] == "1.0" and v["abi"] == 1
    assert v["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert v["size"] == len(data)
    assert v["differentiable"] is True
    d = v["descriptor"]
    assert d["state"] == [{"name": "x", "unit": "m", "size": 1}]
    assert d["inputs"] == [{"name": "u", "unit": "m/s", "size": 1,
                            "default": [0.5]}]
    assert d["outputs"] == [{"name": "y", "unit": "m", "size": 1,
                             "feedthrough": []}]
    assert d["params"] == [{"name": "k", "unit": "1/s", "size": 1,
                            "default": [2], "min": [0], "max": [10]}]
    assert v["imports"] == [{"module": "tw_host", "name": "log",
                             "kind": "func", "type": "(i32, i32, i32) -> ()"}]
    exports = {e["name"]: (e["kind"], e["type"]) for e in v["exports"]}
    assert exports == {
        "memory": ("memory", "1..16 pages"),
        "tw_abi_version": ("func", "() -> i32"),
        "tw_describe": ("func", "() -> i64"),
        "tw_alloc": ("func", "(i32) -> i32"),
        "tw_init": ("func", "(i32, i32) -> i32"),
        "tw_step": ("func", "(f64, f64, i32, i32, i32, i32, i32) -> i32"),
        "tw_step_vjp": ("func", "(f64, f64, i32, i32, i32, i32, i32, i32, "
                                "i32, i32) -> i32"),
    }


def test_inspect_text(wasm):
    r = twin("model", "inspect", wasm("leaky"))
    assert r.returncode == 0
    out = r.stdout.decode()
    assert out.startswith("model:          leaky 1.0\nabi:            1\n")
    assert "differentiable: yes (tw_step_vjp)" in out
    assert "tw_host.log  func (i32, i32, i32) -> ()" in out


def run_json(*args):
    r = twin("model", "run", "--json", *args)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    return lines[:-1], lines[-1]["summary"]


def leaky_states(n, k=2.0, u=0.5, dt=0.01):
    """The states the model computes, in its operation order."""
    x, xs = 0.25, []
    for _ in range(n):
        xs.append(x)
        x = x + dt * (k * u - x)
    return xs


def test_run_json_lines_and_summary(wasm):
    steps, s = run_json("--steps", "3", wasm("leaky"))
    assert [l["step"] for l in steps] == [0, 1, 2]
    assert [l["t"] for l in steps] == [0, 0.01, 0.02]
    assert [l["x"] for l in steps] == [[x] for x in leaky_states(3)]
    assert steps[1]["x"][0] == pytest.approx(0.2575, abs=1e-15)
    assert [l["y"] for l in steps] == [l["x"] for l in steps]
    assert set(s) == {"steps", "calls", "fuel_used", "wall_ms", "peak_memory"}
    assert s["steps"] == 3
    assert s["calls"] >= 4  # the buffers' tw_alloc, tw_init, 3 tw_step
    assert s["fuel_used"] > 0
    assert s["wall_ms"] >= 0
    assert s["peak_memory"] == 65536


def test_run_params_inputs_and_fuel_are_deterministic(wasm):
    args = ("--steps", "5", "--dt", "0.1", "--params", '{"k": 4}',
            "--inputs", '{"u": 1}', "--fuel", "100000", wasm("leaky"))
    steps, s = run_json(*args)
    assert [l["x"][0] for l in steps] == leaky_states(5, 4.0, 1.0, 0.1)
    _, s2 = run_json(*args)
    assert s2["fuel_used"] == s["fuel_used"] > 0


def test_run_text(wasm):
    r = twin("model", "run", "--steps", "2", wasm("leaky"))
    assert r.returncode == 0
    out = r.stdout.decode().splitlines()
    assert len(out) == 3 and out[2].startswith("summary: 2 steps, ")


# (model, extra args, code, words of the message, the limit in seconds)
HOSTILE = [
    ("hostile/loop_step", ["--timeout-ms", "200"], "ETIMEDOUT",
     "tw_step: deadline exceeded", 0.2),
    ("hostile/loop_step", ["--fuel", "1000000"], "ELIMIT",
     "tw_step: out of fuel", 0),
    ("hostile/grow_trap", ["--fuel", "10000000", "--max-memory", "4194304"],
     "ELIMIT", "memory limit", 0),
    ("hostile/recurse", ["--timeout-ms", "1000"], "ETRAP", "stack overflow", 1),
    ("hostile/div_zero", [], "ETRAP", "integer division by zero", 0),
    ("hostile/loop_start", ["--fuel", "1000"], "ELIMIT",
     "instantiation: out of fuel", 10),
    ("hostile/import_unknown", [], "EVALIDATE",
     "import 'env.foo' (func) is not allowed", 0),
    ("hostile/import_wasi", [], "EVALIDATE", "which was not granted", 0),
    ("hostile/alloc_oob", [], "EVALIDATE",
     "tw_alloc(8) returned 2147483640, which is outside linear memory", 0),
    ("hostile/describe_oob", [], "EVALIDATE", "outside linear memory", 0),
    ("hostile/abi_v2", [], "EVALIDATE", "model speaks ABI version 2", 0),
    ("hostile/wrong_sig", [], "EVALIDATE", "export 'tw_step' is func", 0),
]


@pytest.mark.parametrize("name,args,code,words,limit_s", HOSTILE,
                         ids=[f"{h[0][8:]}{''.join(h[1][:1])}" for h in HOSTILE])
def test_hostile_run_fails_cleanly(wasm, name, args, code, words, limit_s):
    r = twin("model", "run", "--steps", "3", *args, wasm(name))
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)  # never a signal
    assert err.startswith(f"error: {code}: "), err
    assert words in err
    assert err.count("\n") == 1
    assert r.elapsed < limit_s + SLACK_S
    # The same failure as one JSON object with --json.
    r = twin("model", "run", "--json", "--steps", "3", *args, wasm(name))
    assert r.returncode == 1
    e = json.loads(r.stderr.decode().splitlines()[0])["error"]
    assert e["code"] == code and words in e["message"]


@pytest.mark.parametrize("name,code,words", [
    ("hostile/import_unknown", "EVALIDATE", "import 'env.foo'"),
    ("hostile/missing_export", "EVALIDATE", "missing export 'tw_step'"),
    ("hostile/diff_no_vjp", "EVALIDATE", "does not export tw_step_vjp"),
    ("hostile/desc_bad_json", "EPARSE", "descriptor:1:54:"),
])
def test_hostile_inspect_names_the_file(wasm, name, code, words):
    path = wasm(name)
    r = twin("model", "inspect", path)
    err = r.stderr.decode()
    assert r.returncode == 1 and r.stdout == b""
    assert err.startswith(f"error: {code}: {path}: ") and words in err


def test_wasi_only_when_granted(wasm):
    path = wasm("hostile/import_wasi")
    assert twin("model", "inspect", path).returncode == 1
    r = twin("model", "inspect", "--allow-wasi", path)
    assert r.returncode == 0, r.stderr
    steps, _ = run_json("--allow-wasi", "--steps", "2", "--dt", "0.5", path)
    # The guest's writes to stdout go nowhere: only the JSON lines.
    assert [l["x"] for l in steps] == [[0.25], [0.75]]


def test_not_webassembly(wasm, tmp_path):
    leaky = open(wasm("leaky"), "rb").read()
    cases = [
        (leaky[:100], "invalid WebAssembly module"),
        (leaky[:5], "not a WebAssembly module"),
        (b"", "empty"),
        (random.Random(7).randbytes(4096), "not a WebAssembly module"),
        (b"\0asm\x0d\0\x01\0", "components are not models"),
    ]
    for i, (data, words) in enumerate(cases):
        p = tmp_path / f"bad{i}.wasm"
        p.write_bytes(data)
        for verb in ("inspect", "run"):
            r = twin("model", verb, str(p))
            err = r.stderr.decode()
            assert r.returncode == 1, err
            assert err.startswith(f"error: EPARSE: {p}: ") and words in err


def test_missing_file(tmp_path):
    p = tmp_path / "missing.wasm"
    r = twin("model", "run", str(p))
    assert r.returncode == 1
    assert r.stderr.decode().startswith("error: ENOENT: ")


@pytest.mark.parametrize("args,msg", [
    (["model", "run"], "missing argument: expected MODEL.wasm"),
    (["model", "inspect"], "missing argument: expected MODEL.wasm"),
    (["model", "inspect", "a.wasm", "b.wasm"], "unexpected argument"),
    (["model", "run", "--steps", "abc", "m.wasm"], "option '--steps' needs"),
    (["model", "run", "--fuel", "-1", "m.wasm"], "option '--fuel' needs"),
    (["model", "run", "--timeout-ms", "99999999999", "m.wasm"],
     "option '--timeout-ms' needs"),
    (["model", "run", "--dt", "0", "m.wasm"], "--dt needs a positive number"),
    (["model", "run", "--dt", "nan", "m.wasm"], "--dt needs a positive number"),
    (["model", "run", "--max-memory", "1000", "m.wasm"],
     "--max-memory needs at least 65536 bytes"),
    (["model", "run", "--frob", "m.wasm"], "unknown option '--frob'"),
    (["model", "frob"], "unknown command 'model frob'"),
])
def test_usage_errors_exit_2(args, msg):
    r = twin(*args)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert err.startswith("error: EUSAGE: ") and msg in err
    assert r.stdout == b""
