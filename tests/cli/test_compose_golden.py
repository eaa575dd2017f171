"""The twin-compose golden corpus (tests/golden/compose/): every valid twin
with the exact graph `twin compose graph` prints for it, every invalid twin
with the exact diagnostics of `twin compose validate` (text on stderr, and
the --json array on stdout), and the exit codes (0 valid, 1 invalid, 2
usage).

valid/NAME.yaml     -> valid/NAME.twg (and valid/NAME.diag when validate
                       prints warnings)
invalid/NAME.yaml   -> invalid/NAME.diag, invalid/NAME.json

A twin's first lines may hold `# args: ...`, the options its commands get
(--profile, -p, --store). The commands run with the golden directory as
the working directory and relative file names, so every path in the
expected files is stable. The directory is copied to a temporary one first
and given what cannot be committed: models/ (the wasm models of
<build>/models, and models/empty.wasm, a valid module that is not a
model), data/rig.mcap (recorded from models/twins/data/oscillator_truth.json)
and store/ (a model store holding models/oscillator.wasm).

UPDATE_GOLDEN=1 rewrites the expected files from what the binary prints.
TWIN_BIN names the binary under test, TWIN_SOURCE_DIR the source tree
(both set by ctest)."""
import json
import os
import shlex
import shutil
import subprocess

import pytest

TWIN = os.environ["TWIN_BIN"]
SOURCE = os.environ.get("TWIN_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
GOLDEN = os.path.join(SOURCE, "tests", "golden", "compose")
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
TRUTH = os.path.join(SOURCE, "models", "twins", "data", "oscillator_truth.json")

# The smallest valid WebAssembly module: the magic and version 1, nothing
# else, so it loads as wasm and fails the model ABI's checks.
EMPTY_MODULE = b"\0asm\1\0\0\0"


def twin(*args, cwd=None):
    return subprocess.run([TWIN, *args], capture_output=True, timeout=120,
                          cwd=cwd)


def cases(kind):
    d = os.path.join(GOLDEN, kind)
    return sorted(f[:-5] for f in os.listdir(d) if f.endswith(".yaml"))


def case_args(path):
    """The options of `# args: ...` among the twin's leading comments."""
    args = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            if line.startswith("# args:"):
                args += shlex.split(line[len("# args:"):])
    return args


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """A copy of the corpus with its generated fixtures, per kind."""
    root = tmp_path_factory.mktemp("compose-golden")
    rig = root / "rig.mcap"
    r = twin("graph", "run", TRUTH, "--ticks", "300", "--trace", str(rig))
    assert r.returncode == 0, r.stderr
    for kind in ("valid", "invalid"):
        d = root / kind
        shutil.copytree(os.path.join(GOLDEN, kind), d)
        (d / "models").mkdir()
        for m in ("oscillator.wasm", "mlp_residual.wasm"):
            shutil.copy(os.path.join(BUILD, "models", m), d / "models" / m)
        (d / "models" / "empty.wasm").write_bytes(EMPTY_MODULE)
        (d / "data").mkdir()
        shutil.copy(rig, d / "data" / "rig.mcap")
        r = twin("model", "add", "--store", "store", "models/oscillator.wasm",
                 cwd=d)
        assert r.returncode == 0, r.stderr
    return root


def expect(path, actual):
    """Compares actual (bytes) with the golden file, or rewrites it."""
    if UPDATE:
        if actual:
            with open(path, "wb") as f:
                f.write(actual)
        elif os.path.exists(path):
            os.remove(path)
        return
    want = open(path, "rb").read() if os.path.exists(path) else b""
    assert actual.decode() == want.decode(), f"{path} differs"


@pytest.mark.parametrize("name", cases("valid"))
def test_valid(golden, name):
    d = golden / "valid"
    args = case_args(d / f"{name}.yaml")
    r = twin("compose", "validate", f"{name}.yaml", *args, cwd=d)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().startswith(f"{name}.yaml: ok: twin '")
    expect(os.path.join(GOLDEN, "valid", f"{name}.diag"), r.stderr)
    r = twin("compose", "validate", "--json", f"{name}.yaml", *args, cwd=d)
    assert r.returncode == 0, r.stderr
    diags = json.loads(r.stdout)
    assert all(g["severity"] == "warning" for g in diags)
    r = twin("compose", "graph", f"{name}.yaml", *args, cwd=d)
    assert r.returncode == 0, r.stderr
    expect(os.path.join(GOLDEN, "valid", f"{name}.twg"), r.stdout)
    # The JSON IR of the same graph loads as a graph and runs.
    r = twin("compose", "graph", "--json", f"{name}.yaml", *args, cwd=d)
    assert r.returncode == 0, r.stderr
    ir = d / f"{name}.ir.json"
    ir.write_bytes(r.stdout)
    r = twin("graph", "validate", ir.name, cwd=d)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", cases("invalid"))
def test_invalid(golden, name):
    d = golden / "invalid"
    args = case_args(d / f"{name}.yaml")
    r = twin("compose", "validate", f"{name}.yaml", *args, cwd=d)
    assert r.returncode == 1, r.stderr
    assert r.stdout == b""
    assert b": error: " in r.stderr
    expect(os.path.join(GOLDEN, "invalid", f"{name}.diag"), r.stderr)
    text = r.stderr.decode().splitlines()
    r = twin("compose", "validate", "--json", f"{name}.yaml", *args, cwd=d)
    assert r.returncode == 1, r.stderr
    diags = json.loads(r.stdout)
    # The same problems as the text, in the same order.
    assert len(diags) == len(text)
    for g, line in zip(diags, text):
        assert set(g) == {"file", "line", "col", "severity", "code", "message"}
        place = (f"{g['file']}:{g['line']}:{g['col']}" if g["line"] > 0
                 else g["file"])
        assert line == f"{place}: {g['severity']}: {g['message']}"
    expect(os.path.join(GOLDEN, "invalid", f"{name}.json"), r.stdout)
    # An invalid twin neither compiles nor runs.
    for cmd in (("graph",), ("up", "--ticks", "3")):
        r = twin("compose", *cmd, f"{name}.yaml", *args, cwd=d)
        assert r.returncode == 1 and r.stdout == b"", cmd


def test_every_error_class_has_a_golden():
    """The issue's error classes, each by its code in some invalid golden."""
    if UPDATE:
        pytest.skip("the expected files are being rewritten")
    codes = set()
    for name in cases("invalid"):
        with open(os.path.join(GOLDEN, "invalid", f"{name}.json")) as f:
            codes |= {g["code"] for g in json.load(f)}
    assert {"yaml", "duplicate-key", "unknown-key", "type", "unknown-component", "unknown-port",
            "unknown-source", "unknown-parameter", "unknown-profile", "model",
            "unit", "causality", "algebraic-loop", "rate", "digest",
            "missing", "value", "source"} <= codes


def test_usage_and_unreadable_files(tmp_path):
    r = twin("compose", "validate")
    assert r.returncode == 2 and b"EUSAGE" in r.stderr
    r = twin("compose", "validate", "a.yaml", "b.yaml")
    assert r.returncode == 2
    r = twin("compose", "validate", "--no-such-option", "a.yaml")
    assert r.returncode == 2
    r = twin("compose", "validate", "--profile", "", "a.yaml")
    assert r.returncode == 2 and b"--profile needs a name" in r.stderr
    r = twin("compose", "up", "--ticks", "0", "a.yaml")
    assert r.returncode == 2
    r = twin("compose", "up", "--ticks", "lots", "a.yaml")
    assert r.returncode == 2
    # A twin that cannot be read is a diagnostic without a place.
    r = twin("compose", "validate", "missing.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == b"missing.yaml: error: cannot open: No such file or directory\n"
    r = twin("compose", "validate", "--json", "missing.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert json.loads(r.stdout) == [{
        "file": "missing.yaml", "line": 0, "col": 0, "severity": "error",
        "code": "file", "message": "cannot open: No such file or directory"}]
    r = twin("compose", "validate", ".", cwd=tmp_path)
    assert r.returncode == 1 and b"not a regular file" in r.stderr
    (tmp_path / "t.yaml").write_text(
        "twin: t\nversion: 1\ndt: 1 s\ncomponents:\n"
        "  p: {model: builtin:spring_damper}\n")
    r = twin("compose", "validate", "t.yaml", "-p", "nope.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == b"nope.yaml: error: cannot open: No such file or directory\n"
    # A valid twin: 0, and --json gives an empty list.
    r = twin("compose", "validate", "--json", "t.yaml", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout) == []
