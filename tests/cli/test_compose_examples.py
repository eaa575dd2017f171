"""The example twins of models/twins/ (built next to the models and graphs
they name, in <build>/models) as a user runs them: each validates and runs
with `twin compose up`, the oscillator rig to the end of its recording,
and the twins of the hand-written example graphs give those graphs' outputs
to the bit. Also: every example and every valid golden twin against the
JSON Schema docs/schema/twin-compose.schema.json, and models by digest
(oci://) from a model store.

TWIN_BIN names the binary under test, TWIN_SOURCE_DIR the source tree (both
set by ctest)."""
import glob
import json
import os
import subprocess

import pytest

TWIN = os.environ["TWIN_BIN"]
SOURCE = os.environ.get("TWIN_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
MODELS = os.path.join(BUILD, "models")
EXAMPLES = ["chain1d", "hybrid_oscillator", "nested_oscillator",
            "spring_damper", "oscillator_rig"]
# The twin of each hand-written graph, and the graph's output names for
# the twin's outputs, in order.
TWIN_OF_GRAPH = {
    "chain1d": ["x"],
    "hybrid_oscillator": ["x", "force"],
    "nested_oscillator": ["x", "force", "ix"],
    "spring_damper": ["x", "v"],
}
RIG_TICKS = 1000  # models/CMakeLists.txt records 1000 ticks of 10 ms


def twin(*args, cwd=MODELS):
    return subprocess.run([TWIN, *args], capture_output=True, timeout=300,
                          cwd=cwd)


def lines(stdout):
    return [json.loads(l) for l in stdout.splitlines()]


def test_examples_are_built_next_to_their_models():
    for name in EXAMPLES:
        assert os.path.exists(os.path.join(MODELS, f"{name}.yaml")), name
    assert os.path.exists(os.path.join(MODELS, "data", "rig.mcap"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_validates_and_runs(name):
    r = twin("compose", "validate", f"{name}.yaml")
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""  # no warnings either
    assert r.stdout.startswith(f"{name}.yaml: ok: twin '{name}'".encode())
    r = twin("compose", "up", f"{name}.yaml", "--ticks", "50", "--json")
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert [l["tick"] for l in out] == list(range(50))
    assert all(v for l in out for v in l["outputs"].values())


@pytest.mark.parametrize("name", sorted(TWIN_OF_GRAPH))
def test_twin_runs_as_its_hand_written_graph(name):
    """compose up, and the compiled graph run by `twin graph run`, give the
    hand-written graph's outputs to the bit (the numbers as printed, 17
    significant digits)."""
    ticks = "200"
    r = twin("graph", "run", f"{name}.json", "--ticks", ticks, "--json")
    assert r.returncode == 0, r.stderr
    want = [[l["outputs"][k] for k in TWIN_OF_GRAPH[name]]
            for l in lines(r.stdout)]
    r = twin("compose", "up", f"{name}.yaml", "--ticks", ticks, "--json")
    assert r.returncode == 0, r.stderr
    up = [list(l["outputs"].values()) for l in lines(r.stdout)]
    assert up == want
    # The compiled graph runs as a graph. Its file paths are relative to
    # the directory the command ran in, so it is saved there.
    r = twin("compose", "graph", "--json", f"{name}.yaml")
    assert r.returncode == 0, r.stderr
    ir = os.path.join(MODELS, f".{name}.compiled.{os.getpid()}.json")
    try:
        with open(ir, "wb") as f:
            f.write(r.stdout)
        r = twin("graph", "run", ir, "--ticks", ticks, "--json")
    finally:
        os.remove(ir)
    assert r.returncode == 0, r.stderr
    assert [list(l["outputs"].values()) for l in lines(r.stdout)] == want


def test_chain_twin_compiles_to_the_chain_graph():
    r = twin("compose", "graph", "--json", "chain1d.yaml")
    assert r.returncode == 0, r.stderr
    ir = json.loads(r.stdout)
    graph = json.load(open(os.path.join(MODELS, "chain1d.json")))
    assert ir["dt"] == graph["dt"] and ir["blocks"] == graph["blocks"]
    assert ir["outputs"] == {"chain.position": graph["outputs"]["x"]}


def test_twg_of_a_twin_reads_back(tmp_path):
    r = twin("compose", "graph", "spring_damper.yaml")
    assert r.returncode == 0, r.stderr
    g = tmp_path / "spring_damper.twg"
    g.write_bytes(r.stdout)
    r = twin("graph", "validate", str(g))
    assert r.returncode == 0, r.stderr


def test_rig_runs_its_recording_to_the_end(tmp_path):
    for profile in ([], ["--profile", "sim"]):
        r = twin("compose", "up", "oscillator_rig.yaml", *profile, "--json")
        assert r.returncode == 0, r.stderr
        out = lines(r.stdout)
        assert [l["tick"] for l in out] == list(range(RIG_TICKS))
        assert set(out[0]["outputs"]) == {"plant.x", "residual.force"}
        assert out[0]["outputs"]["plant.x"] == [0.2]  # x0: 200 mm
        # The residual steps at 50 Hz, every second tick: it holds between.
        f = [l["outputs"]["residual.force"][0] for l in out]
        assert all(f[k] == f[k + 1] for k in range(0, RIG_TICKS - 1, 2))
    # The trace holds the recording's force as the twin's input.
    trace = tmp_path / "rig_twin.mcap"
    r = twin("compose", "up", "oscillator_rig.yaml", "--profile", "sim",
             "--trace", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ticks"] == RIG_TICKS
    from mcap.reader import make_reader
    with open(trace, "rb") as f:
        topics = {c.topic for c in make_reader(f).get_summary().channels.values()}
    assert "/inputs/rig.outputs.force" in topics
    assert "/outputs/plant.x" in topics


def test_rig_live_profile_compiles():
    # Running it needs a broker: tests/ingest runs live twins end to end.
    r = twin("compose", "validate", "oscillator_rig.yaml", "--profile", "live")
    assert r.returncode == 0, r.stderr
    r = twin("compose", "graph", "oscillator_rig.yaml", "--profile", "live")
    assert r.returncode == 0, r.stderr
    assert b"input rig.outputs.force size 1" in r.stdout


def test_spring_damper_driven_by_the_recording():
    r = twin("compose", "up", "spring_damper.yaml", "--profile", "driven",
             "--json")
    assert r.returncode == 0, r.stderr
    driven = lines(r.stdout)
    assert len(driven) == RIG_TICKS
    r = twin("compose", "up", "spring_damper.yaml", "--ticks", "1000",
             "--json")
    free = lines(r.stdout)
    assert driven[0] == free[0] and driven[-1] != free[-1]


def test_models_by_digest_from_the_store(tmp_path):
    store = tmp_path / "store"
    r = twin("model", "add", "--store", str(store), "--json",
             os.path.join(MODELS, "oscillator.wasm"))
    assert r.returncode == 0, r.stderr
    digest = json.loads(r.stdout)["digest"]
    t = tmp_path / "oci.yaml"
    t.write_text(
        "twin: oci\nversion: 1\ndt: 10 ms\ncomponents:\n  plant:\n"
        f"    model: oci://registry.example.com/models/oscillator@{digest}\n"
        "    parameters: {k: 9 N/m}\noutputs: [plant.x]\n")
    r = twin("compose", "validate", "--store", str(store), str(t))
    assert r.returncode == 0, r.stderr
    r = twin("compose", "graph", "--json", "--store", str(store), str(t))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["blocks"]["plant"]["model"] == f"wasm:{digest}"
    r = twin("compose", "up", "--store", str(store), str(t), "--ticks", "5",
             "--json")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[0]["outputs"]["plant.x"] == [1.0]
    # Another store does not have it: an error at the model string.
    empty = tmp_path / "empty"
    r = twin("model", "add", "--store", str(empty),
             os.path.join(MODELS, "mlp_residual.wasm"))
    assert r.returncode == 0, r.stderr
    r = twin("compose", "validate", "--store", str(empty), str(t))
    assert r.returncode == 1
    assert f"{t}:6:12: error: component 'plant': {digest} is not in the " \
           f"model store {empty}".encode() in r.stderr


# --- The JSON Schema ------------------------------------------------------

def schema_validator():
    import jsonschema
    schema = json.load(open(os.path.join(
        SOURCE, "docs", "schema", "twin-compose.schema.json")))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_yaml(path):
    import yaml
    with open(path) as f:
        return yaml.safe_load(f)


def test_schema_accepts_every_example_and_valid_golden():
    v = schema_validator()
    files = sorted(glob.glob(os.path.join(SOURCE, "models", "twins", "*.yaml")))
    files += sorted(glob.glob(os.path.join(SOURCE, "models", "demo", "*.yaml")))
    files += sorted(glob.glob(os.path.join(
        SOURCE, "tests", "golden", "compose", "valid", "*.yaml")))
    assert len(files) >= 10
    for path in files:
        errors = [e.message for e in v.iter_errors(load_yaml(path))]
        assert errors == [], path


@pytest.mark.parametrize("name", [
    "unknown_key", "wrong_type", "missing", "values", "digest", "model_files",
    "profile_invalid"])
def test_schema_refuses_what_it_can_see(name):
    v = schema_validator()
    doc = load_yaml(os.path.join(SOURCE, "tests", "golden", "compose",
                                 "invalid", f"{name}.yaml"))
    assert list(v.iter_errors(doc)), name


def test_schema_details():
    v = schema_validator()
    base = {"twin": "t", "version": 1, "dt": "1 ms",
            "components": {"p": {"model": "builtin:spring_damper"}}}
    assert v.is_valid(base)
    def with_(**kw):
        d = json.loads(json.dumps(base))
        d.update(kw)
        return d
    assert v.is_valid(with_(dt=0.001, **{"x-anything": [1, {"a": None}]}))
    assert not v.is_valid(with_(dt="1ms"))       # a blank before the unit
    assert not v.is_valid(with_(dt=0))
    assert not v.is_valid(with_(extra=1))
    for model, ok in (("file:m.wasm", True), ("file:g.twg", True),
                      ("file:g.json", True), ("file:m.py", False),
                      ("builtin:nope", False),
                      ("oci://h/r@sha256:" + "a" * 64, True),
                      ("oci://h/r@sha256:" + "A" * 64, False),
                      ("oci://h/r:tag", False), ("oci://h@sha256:" + "a" * 64, False)):
        d = with_(components={"p": {"model": model}})
        assert v.is_valid(d) == ok, model
    d = with_(components={"p": {"model": "builtin:gain", "rate": "1 Hz",
                                "period": "1 s"}})
    assert not v.is_valid(d)
    d = with_(profiles={"sim": {"components": {"p": {"parameters": {"k": 2}}}}})
    assert v.is_valid(d)
    d = with_(profiles={"sim": {"profiles": {}}})
    assert not v.is_valid(d)
    d = with_(sources={"rig": {"path": "r.mcap"}})  # no kind
    assert not v.is_valid(d)
