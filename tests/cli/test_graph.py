"""`twin graph validate` and `twin graph run` as a user runs them: the
example graph of models/graphs (built next to its wasm model in
<build>/models), every diagnostic of a broken graph with its position, an
algebraic loop, and runs as JSON lines.

TWIN_BIN names the binary under test (set by ctest)."""
import json
import os
import subprocess

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
EXAMPLE = os.path.join(BUILD, "models", "hybrid_oscillator.json")


def twin(*args):
    return subprocess.run([TWIN, *args], capture_output=True, timeout=120)


def test_example_validates_and_runs():
    r = twin("graph", "validate", EXAMPLE)
    assert r.returncode == 0, r.stderr
    assert b"ok: graph 'hybrid_oscillator', 4 blocks" in r.stdout
    r = twin("graph", "run", EXAMPLE, "--ticks", "120", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert [l["tick"] for l in lines] == list(range(120))
    assert lines[0]["outputs"]["x"] == [1.0]  # the oscillator's x0
    xs = [l["outputs"]["x"][0] for l in lines]
    assert min(xs) < 0 < max(xs)  # it oscillates
    # The residual steps every 2 ticks: the force holds in between.
    f = [l["outputs"]["force"][0] for l in lines]
    assert all(f[k] == f[k + 1] for k in range(2, 118, 2))


BROKEN = """{
  "graph": 1,
  "dt": 0.01,
  "blocks": {
    "a": {"model": "builtin:gain", "size": 2},
    "b": {"model": "builtin:gain", "params": {"q": 1}},
    "m": {"model": "wasm:missing.wasm"}
  },
  "connections": [
    {"from": "a.y", "to": "b.u"},
    {"from": "inputs.nope", "to": "a.u"}
  ]
}
"""


def test_every_problem_with_its_position(tmp_path):
    g = tmp_path / "broken.json"
    g.write_text(BROKEN)
    r = twin("graph", "validate", str(g))
    assert r.returncode == 1
    err = r.stderr.decode()
    assert f"{g}:6:52: error: block 'b' (gain) has no parameter 'q'" in err
    assert f"{g}:7:20: error: block 'm': " in err and "missing.wasm" in err
    assert f"{g}:10:27: error: size mismatch: a.y has 2 values, b.u has 1" in err
    assert f"{g}:11:14: error: from: the graph has no input 'nope'" in err
    assert err.strip().endswith(f"error: EVALIDATE: {g}: 4 errors")
    r = twin("graph", "validate", "--json", str(g))
    assert r.returncode == 1
    v = json.loads(r.stdout)
    assert v["ok"] is False and len(v["diagnostics"]) == 4
    r = twin("graph", "run", str(g))
    assert r.returncode == 1 and r.stdout == b""


def test_algebraic_loop_and_bad_json(tmp_path):
    g = tmp_path / "loop.json"
    g.write_text(json.dumps({
        "graph": 1, "dt": 1,
        "blocks": {"p": {"model": "builtin:gain"},
                   "q": {"model": "builtin:gain"}},
        "connections": [{"from": "p.y", "to": "q.u"},
                        {"from": "q.y", "to": "p.u"}]}))
    r = twin("graph", "validate", str(g))
    assert r.returncode == 1
    assert b"algebraic loop: blocks 'p', 'q'" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"graph": 1,\n  "dt": }')
    r = twin("graph", "validate", str(bad))
    assert r.returncode == 1
    assert r.stderr.decode().startswith(f"error: EPARSE: {bad}:2:9: error:")
    r = twin("graph", "run", "--ticks", "0", str(bad))
    assert r.returncode == 2


def _loss(graph_path, ticks):
    r = twin("graph", "run", str(graph_path), "--ticks", str(ticks), "--json")
    assert r.returncode == 0, r.stderr
    return sum(0.5 * l["outputs"]["x"][0] ** 2
               for l in map(json.loads, r.stdout.splitlines()))


def test_grad_matches_finite_differences(tmp_path):
    g = json.load(open(EXAMPLE))
    g["blocks"]["plant"]["model"] = "wasm:" + os.path.join(
        os.path.dirname(EXAMPLE), "oscillator.wasm")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(g))
    r = twin("graph", "grad", str(path), "--ticks", "100", "--loss", "x",
             "--wrt", "plant.k,scale.k", "--schedule", "periodic:10", "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert set(v["grad"]) == {"plant.k", "scale.k"}
    assert abs(v["loss"] - _loss(path, 100)) <= 1e-12 * v["loss"]
    for block, value in (("plant", 9.0), ("scale", -0.5)):
        h = 1e-6 * abs(value)
        losses = []
        for sign in (1, -1):
            g2 = json.loads(json.dumps(g))
            k = g2["blocks"][block]["params"]["k"]
            g2["blocks"][block]["params"]["k"] = value + sign * h
            p2 = tmp_path / f"g_{block}_{sign}.json"
            p2.write_text(json.dumps(g2))
            losses.append(_loss(p2, 100))
        fd = (losses[0] - losses[1]) / (2 * h)
        got = v["grad"][f"{block}.k"][0]
        assert abs(fd - got) <= 1e-5 * max(abs(fd), 1e-3), (block, fd, got)
    r = twin("graph", "grad", str(path), "--loss", "nope")
    assert r.returncode == 2
    r = twin("graph", "grad", str(path), "--loss", "x", "--wrt", "plant.q")
    assert r.returncode == 1 and b"no parameter 'plant.q'" in r.stderr


def test_stats_and_cpu_budget():
    r = twin("graph", "run", EXAMPLE, "--ticks", "10", "--stats", "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.splitlines()[-1])["stats"]
    steps = {b["block"]: b["steps"] for b in last["blocks"]}
    assert steps == {"plant": 10, "velocity": 10, "residual": 5, "scale": 10}
    assert last["cpu_ms"] >= 0
    r = twin("graph", "run", EXAMPLE, "--ticks", "50000000",
             "--max-cpu-ms", "50")
    assert r.returncode == 1
    assert b"error: ELIMIT: graph 'hybrid_oscillator': CPU budget exceeded" \
        in r.stderr


def test_fmt_round_trips_through_twg(tmp_path):
    r = twin("graph", "fmt", EXAMPLE)
    assert r.returncode == 0, r.stderr
    twg = tmp_path / "g.twg"
    twg.write_bytes(r.stdout)
    assert r.stdout.startswith(b"graph hybrid_oscillator\ndt 0.01\n")
    r2 = twin("graph", "fmt", "--json", str(twg))
    assert json.loads(r2.stdout) == json.load(open(EXAMPLE))
    js = tmp_path / "g.json"
    js.write_bytes(r2.stdout)
    assert twin("graph", "fmt", str(js)).stdout == r.stdout
    # The .twg form validates and runs like the JSON (its wasm path is
    # relative to the file).
    g = tmp_path / "run.twg"
    g.write_text(r.stdout.decode().replace(
        "wasm:oscillator.wasm",
        '"wasm:' + os.path.join(os.path.dirname(EXAMPLE), "oscillator.wasm")
        + '"'))
    a = twin("graph", "run", str(g), "--ticks", "20", "--json").stdout
    b = twin("graph", "run", EXAMPLE, "--ticks", "20", "--json").stdout
    assert a == b and a
    bad = tmp_path / "bad.twg"
    bad.write_text("graph g\nblock a builtin:gain\n")
    r = twin("graph", "validate", str(bad))
    assert r.returncode == 1
    assert r.stderr.decode().startswith(f"error: EPARSE: {bad}:2:9: error: "
                                        "expected '='")


def test_json_schema_accepts_what_loads_and_refuses_the_rest(tmp_path):
    import jsonschema
    schema = json.load(open(os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "docs", "schema",
        "graph.schema.json")))
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    g = json.load(open(EXAMPLE))
    assert list(v.iter_errors(g)) == []
    assert list(v.iter_errors(json.load(open(os.path.join(
        BUILD, "models", "nested_oscillator.json"))))) == []
    # What the .twg form produces conforms too.
    twg = tmp_path / "g.twg"
    twg.write_bytes(twin("graph", "fmt", EXAMPLE).stdout)
    assert list(v.iter_errors(
        json.loads(twin("graph", "fmt", "--json", str(twg)).stdout))) == []
    for bad in (
        {**g, "graph": 2},
        {**g, "colour": "red"},
        {**g, "blocks": {}},
        {**g, "blocks": {"a": {"model": "builtin:frob"}}},
        {**g, "blocks": {"a": {"model": "builtin:gain", "every": 2,
                               "period": 0.1}}},
        {**g, "connections": [{"from": "a", "to": "b.u"}]},
    ):
        assert list(v.iter_errors(bad)), bad
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(bad))
        assert twin("graph", "validate", str(p)).returncode == 1


def test_b1_chain_as_a_graph(tmp_path):
    chain = os.path.join(BUILD, "models", "chain1d.json")
    r = twin("graph", "grad", chain, "--ticks", "300", "--loss", "x",
             "--wrt", "chain.stiffness", "--schedule", "revolve:8", "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    g = v["grad"]["chain.stiffness"]
    assert len(g) == 64
    # Central difference on the stiffness of springs 0 and 40 (defaults
    # 100 + 10 cos(0.3 i), as BENCHMARKS.md's B1).
    base = json.load(open(chain))
    k = [100 + 10 * __import__("math").cos(0.3 * i) for i in range(64)]
    for i in (0, 40):
        h = 1e-3 * k[i]  # the loss is ~1e7: a larger step beats cancellation
        losses = []
        for sign in (1, -1):
            kk = list(k)
            kk[i] += sign * h
            g2 = json.loads(json.dumps(base))
            g2["blocks"]["chain"]["params"] = {"stiffness": kk}
            p = tmp_path / f"c{i}{sign}.json"
            p.write_text(json.dumps(g2))
            r = twin("graph", "run", str(p), "--ticks", "300", "--json")
            assert r.returncode == 0, r.stderr
            losses.append(sum(0.5 * sum(x * x for x in l["outputs"]["x"])
                              for l in map(json.loads, r.stdout.splitlines())))
        fd = (losses[0] - losses[1]) / (2 * h)
        assert abs(fd - g[i]) <= 1e-5 * max(abs(fd), 1e-6), (i, fd, g[i])


NESTED = os.path.join(BUILD, "models", "nested_oscillator.json")


def _nested(tmp_path, name, twin_params):
    """The nested example with the sub-graph's path made absolute (its own
    wasm path stays relative to the sub-graph's directory)."""
    g = json.load(open(NESTED))
    g["blocks"]["twin"]["model"] = "graph:" + EXAMPLE
    g["blocks"]["twin"]["params"] = twin_params
    p = tmp_path / name
    p.write_text(json.dumps(g))
    return p


def test_subgraph_example_runs_like_its_sub_graph(tmp_path):
    r = twin("graph", "validate", NESTED)
    assert r.returncode == 0, r.stderr
    assert b"ok: graph 'nested_oscillator', 2 blocks" in r.stdout
    # With the sub-graph's own parameters, its outputs are the example's.
    p = _nested(tmp_path, "same.json", {})
    a = [json.loads(l)["outputs"] for l in
         twin("graph", "run", str(p), "--ticks", "60", "--json")
         .stdout.splitlines()]
    b = [json.loads(l)["outputs"] for l in
         twin("graph", "run", EXAMPLE, "--ticks", "60", "--json")
         .stdout.splitlines()]
    assert len(a) == 60 and [(o["x"], o["force"]) for o in a] == \
        [(o["x"], o["force"]) for o in b]
    # The integrator outside sums the sub-graph's x.
    acc = 0.0
    for o in a:
        assert o["ix"] == [acc]
        acc += 0.01 * o["x"][0]


def test_subgraph_grad_matches_finite_differences(tmp_path):
    base = {"plant.k": 12.0, "scale.k": -0.3}
    path = _nested(tmp_path, "g.json", base)
    r = twin("graph", "grad", str(path), "--ticks", "80", "--loss", "x",
             "--wrt", "twin.plant.k,twin.scale.k,twin.plant.c",
             "--schedule", "revolve:4", "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert set(v["grad"]) == {"twin.plant.k", "twin.scale.k", "twin.plant.c"}
    assert abs(v["loss"] - _loss(path, 80)) <= 1e-12 * v["loss"]
    for name, value in (("plant.k", 12.0), ("scale.k", -0.3),
                        ("plant.c", 0.4)):
        h = 1e-6 * abs(value)
        losses = []
        for sign in (1, -1):
            params = dict(base)
            params[name] = value + sign * h
            losses.append(_loss(_nested(tmp_path, f"{name}{sign}.json",
                                        params), 80))
        fd = (losses[0] - losses[1]) / (2 * h)
        got = v["grad"][f"twin.{name}"][0]
        assert abs(fd - got) <= 1e-5 * max(abs(fd), 1e-3), (name, fd, got)


def test_subgraph_diagnostics(tmp_path):
    a = tmp_path / "a.json"
    b = tmp_path / "b.twg"
    a.write_text(json.dumps({"graph": 1, "dt": 0.01, "blocks": {
        "inner": {"model": "graph:b.twg"}}}))
    b.write_text("graph b\ndt 0.01\nblock back = graph:a.json\n"
                 "block g = builtin:gain\n  param q = 1\n")
    r = twin("graph", "validate", "--json", str(a))
    assert r.returncode == 1
    d = json.loads(r.stdout)["diagnostics"]
    assert d == [
        f"{b}:3:14: error: block 'back': sub-graphs include each other: "
        f"{a} -> {b} -> {a}",
        f"{b}:5:13: error: block 'g' (gain) has no parameter 'q'",
        f"{a}:1:56: error: block 'inner': sub-graph 'b.twg' does not load "
        f"(2 errors in {b})",
    ]
    r = twin("graph", "validate", str(a))
    assert r.stderr.decode().strip().endswith(f"{a}: 3 errors")
