"""`twin graph run --trace / --inputs`: runs recorded as MCAP traces and
graph inputs read from MCAP files, checked with the reference Python
`mcap` package (and mcap-ros2-support for CDR).

A trace must open in the reference reader with its CRCs checked, hold one
channel per graph input and output with the values `twin graph run --json`
prints (to the bit), and never be left half-written: a run that fails,
for whatever reason, leaves neither the file nor FILE.partial.

TWIN_BIN names the binary under test (set by ctest)."""
import json
import math
import os
import struct
import subprocess

import pytest
from mcap.reader import make_reader
from mcap.writer import Writer
from mcap_ros2.decoder import DecoderFactory

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
EXAMPLE = os.path.join(BUILD, "models", "hybrid_oscillator.json")

# u (2 values, in N) -> gain(k=3) -> integrator: y = 3u, s = sum dt * 3u.
GAIN = {
    "graph": 1, "name": "g", "dt": 0.5,
    "inputs": {"u": {"size": 2, "unit": "N"}},
    "blocks": {"k": {"model": "builtin:gain", "size": 2, "params": {"k": 3}},
               "i": {"model": "builtin:integrator", "size": 2}},
    "connections": [{"from": "inputs.u", "to": "k.u"},
                    {"from": "k.y", "to": "i.u"}],
    "outputs": {"y": "k.y", "s": "i.y"},
}

PORT_SCHEMA = json.dumps({
    "type": "object",
    "properties": {"t": {"type": "number"},
                   "value": {"type": "array", "items": {"type": "number"}}},
}).encode()


def twin(*args):
    return subprocess.run([TWIN, *map(str, args)], capture_output=True,
                          timeout=120)


def bits(x):
    return struct.pack("<d", x)


def gain_graph(tmp_path, second_input=False):
    """GAIN, with an unconnected second input v when asked."""
    path = tmp_path / "gain.json"
    graph = json.loads(json.dumps(GAIN))
    if second_input:
        graph["inputs"]["v"] = {"size": 2}
    path.write_text(json.dumps(graph))
    return path


def write_inputs(path, channels, encoding="json"):
    """channels: {topic: [(t, [values][, log time in s]) ...]} written with
    the reference writer, log_time = t in ns unless given."""
    with open(path, "wb") as f:
        w = Writer(f)
        w.start()
        sid = w.register_schema("twin.PortSample", "jsonschema", PORT_SCHEMA)
        msgs = []
        for topic, samples in channels.items():
            cid = w.register_channel(topic, encoding, sid)
            for seq, (t, v, *lt) in enumerate(samples):
                msgs.append((round((lt[0] if lt else t) * 1e9), cid, seq, t,
                             v))
        for ns, cid, seq, t, v in sorted(msgs, key=lambda m: m[0]):
            body = json.dumps({"t": t, "value": v}).encode()
            w.add_message(cid, ns, body, ns, seq)
        w.finish()


def run_json(*args):
    r = twin("graph", "run", *args, "--json")
    assert r.returncode == 0, r.stderr
    # parse_int=float: "%.17g" prints -0.0 as "-0", an integer to JSON.
    return [json.loads(l, parse_int=float) for l in r.stdout.splitlines()]


def read_trace(path, decoded=False):
    """(summary, metadata {name: dict}, {topic: [(log_time, t, values)]})."""
    with open(path, "rb") as f:
        if decoded:
            r = make_reader(f, validate_crcs=True,
                            decoder_factories=[DecoderFactory()])
            it = r.iter_decoded_messages()
        else:
            r = make_reader(f, validate_crcs=True)
            it = r.iter_messages()
        summary = r.get_summary()
        meta = {m.name: m.metadata for m in r.iter_metadata()}
        series = {}
        for item in it:
            if decoded:
                _, ch, msg, dec = item
                t, v = dec.t, list(dec.value)
            else:
                _, ch, msg = item
                body = json.loads(msg.data)
                t, v = body["t"], body["value"]
            assert msg.publish_time == msg.log_time
            series.setdefault(ch.topic, []).append((msg.log_time, t, v))
    return summary, meta, series


def no_trace_left(path):
    return not os.path.exists(path) and not os.path.exists(f"{path}.partial")


def test_trace_opens_in_the_reference_reader(tmp_path):
    out = tmp_path / "out.mcap"
    r = twin("graph", "run", EXAMPLE, "--ticks", 300, "--trace", out, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1  # a summary, not a line per tick
    s = json.loads(lines[0])
    assert s == {"trace": str(out), "ticks": 300,
                 "bytes": os.path.getsize(out)}
    assert not os.path.exists(f"{out}.partial")

    summary, meta, series = read_trace(out)
    chans = {c.topic: c for c in summary.channels.values()}
    assert set(chans) == {"/outputs/x", "/outputs/force"}
    for c in chans.values():
        assert c.message_encoding == "json"
        sch = summary.schemas[c.schema_id]
        assert sch.encoding == "jsonschema"
        assert json.loads(sch.data)["title"] == "twin.PortSample"
        assert c.metadata["twin.size"] == "1"
    assert chans["/outputs/x"].metadata["twin.unit"] == "m"
    assert meta["twin.graph"]["name"] == "hybrid_oscillator"
    assert float(meta["twin.graph"]["dt"]) == 0.01
    assert meta["twin.graph"]["outputs"] == "x,force"
    st = meta["twin.stats"]
    assert st["ticks"] == "300"
    assert st["block.residual.steps"] == "150"  # every 2 ticks
    assert st["block.plant.kind"] == "wasm"
    assert summary.statistics.message_count == 600

    # The same values as the per-tick output, to the bit.
    ticks = run_json(EXAMPLE, "--ticks", 300)
    for name in ("x", "force"):
        got = series[f"/outputs/{name}"]
        assert len(got) == 300
        for k, (log_time, t, v) in enumerate(got):
            assert bits(t) == bits(ticks[k]["t"])
            assert log_time == round(ticks[k]["t"] * 1e9)
            assert [bits(x) for x in v] == \
                [bits(x) for x in ticks[k]["outputs"][name]]

    # Text mode: one summary line too; --stats still comes after it.
    r = twin("graph", "run", EXAMPLE, "--ticks", 10, "--trace",
             tmp_path / "t.mcap", "--stats")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode().splitlines()
    assert text[0].startswith(f"{tmp_path / 't.mcap'}: 10 ticks, ")
    assert text[1].startswith("run: 10 ticks")


def test_cdr_trace_decodes_with_mcap_ros2(tmp_path):
    out = tmp_path / "cdr.mcap"
    r = twin("graph", "run", EXAMPLE, "--ticks", 50, "--trace", out,
             "--trace-format", "cdr")
    assert r.returncode == 0, r.stderr
    summary, meta, series = read_trace(out, decoded=True)
    for c in summary.channels.values():
        assert c.message_encoding == "cdr"
        assert summary.schemas[c.schema_id].encoding == "ros2msg"
    assert meta["twin.graph"]["encoding"] == "cdr"
    ticks = run_json(EXAMPLE, "--ticks", 50)
    for name in ("x", "force"):
        got = series[f"/outputs/{name}"]
        assert [bits(v[0]) for _, _, v in got] == \
            [bits(l["outputs"][name][0]) for l in ticks]
        assert [bits(t) for _, t, _ in got] == [bits(l["t"]) for l in ticks]
    r = twin("graph", "run", EXAMPLE, "--trace", out, "--trace-format", "xml")
    assert r.returncode == 2 and b"json or cdr" in r.stderr
    r = twin("graph", "run", EXAMPLE, "--trace-format", "cdr")
    assert r.returncode == 2


def test_inputs_from_the_reference_writer_hold(tmp_path):
    g = gain_graph(tmp_path)
    data = tmp_path / "in.mcap"
    # dt 0.5: ticks at 0, 0.5, 1, 1.5, 2, 2.5. A sample a rounding error
    # past a tick's time still counts for it.
    write_inputs(data, {"/u": [(0.0, [1.0, -1.0]), (0.7, [2.0, 0.25]),
                               (1.5000000000000002, [-3.0, 4.0])]})
    lines = run_json(g, "--ticks", 6, "--inputs", data)
    u = [[1.0, -1.0], [1.0, -1.0], [2.0, 0.25], [-3.0, 4.0], [-3.0, 4.0],
         [-3.0, 4.0]]
    assert [l["outputs"]["y"] for l in lines] == \
        [[3 * a, 3 * b] for a, b in u]
    # Text lines per tick as without --inputs.
    r = twin("graph", "run", g, "--ticks", 6, "--inputs", data)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 6
    assert b"y=[3,-3]" in r.stdout.splitlines()[0]

    # --input-map picks the topic; the trace records what the run saw.
    other = tmp_path / "other.mcap"
    write_inputs(other, {"/sensors/force": [(0.0, [0.5, 0.5]),
                                            (1.0, [1.5, 2.5])]})
    out = tmp_path / "out.mcap"
    r = twin("graph", "run", g, "--ticks", 4, "--inputs", other,
             "--input-map", "u=/sensors/force", "--trace", out)
    assert r.returncode == 0, r.stderr
    _, _, series = read_trace(out)
    assert [v for _, _, v in series["/inputs/u"]] == \
        [[0.5, 0.5], [0.5, 0.5], [1.5, 2.5], [1.5, 2.5]]
    assert [v for _, _, v in series["/outputs/y"]] == \
        [[1.5, 1.5], [1.5, 1.5], [4.5, 7.5], [4.5, 7.5]]


@pytest.mark.parametrize("fmt", ["json", "cdr"])
def test_replay_gives_the_same_bits(tmp_path, fmt):
    g = gain_graph(tmp_path)
    data = tmp_path / "in.mcap"
    samples = [(0.5 * k, [math.sin(0.37 * k) / 3, math.exp(-0.01 * k)])
               for k in range(0, 9000, 3)]
    write_inputs(data, {"/inputs/u": samples})
    first, second = tmp_path / "a.mcap", tmp_path / "b.mcap"
    # 9000 ticks: more than one piece of the run (4096 ticks).
    r = twin("graph", "run", g, "--ticks", 9000, "--inputs", data,
             "--trace", first, "--trace-format", fmt)
    assert r.returncode == 0, r.stderr
    r = twin("graph", "run", g, "--ticks", 9000, "--inputs", first,
             "--trace", second, "--trace-format", fmt)
    assert r.returncode == 0, r.stderr
    a = read_trace(first, decoded=fmt == "cdr")[2]
    b = read_trace(second, decoded=fmt == "cdr")[2]
    assert set(a) == {"/inputs/u", "/outputs/y", "/outputs/s"}
    for topic in a:
        assert len(a[topic]) == 9000
        assert [(lt, bits(t), [bits(x) for x in v]) for lt, t, v in a[topic]] \
            == [(lt, bits(t), [bits(x) for x in v]) for lt, t, v in b[topic]]
    # And the per-tick output of a replay is the trace's outputs.
    lines = run_json(g, "--ticks", 9000, "--inputs", first)
    assert [[bits(x) for x in l["outputs"]["s"]] for l in lines] == \
        [[bits(x) for x in v] for _, _, v in a["/outputs/s"]]


BAD_INPUTS = {
    "missing channel": ({"/v": [(0.0, [1.0, 2.0])]}, [],
                        "ENOENT", "input 'u': no channel '/inputs/u', '/u' "
                                  "or 'u'"),
    "wrong size": ({"/u": [(0.0, [1.0, 2.0]), (1.0, [1.0, 2.0, 3.0])]}, [],
                   "EINVAL", "input 'u' (channel '/u'): sample 1 (log time "
                             "1000000000 ns) has 3 values, the input has 2"),
    "gap before the first sample": (
        {"/u": [(1.0, [1.0, 2.0])]}, [], "EINVAL",
        "input 'u' (channel '/u'): no sample at or before tick 0 (t=0 s); "
        "the first is at t=1 s"),
    "out of time order": (
        {"/u": [(0.0, [1.0, 2.0]), (1.0, [1.0, 2.0], 0.8),
                (0.9, [0.0, 0.0])]},
        [], "EINVAL", "input 'u' (channel '/u'): the sample at t=0.9 s comes "
                      "after one at t=1 s; samples must be logged in time "
                      "order"),
    "late across channels": (
        {"/a": [(0.0, [1.0, 2.0]), (1.0, [1.0, 2.0], 0.1)],
         "/b": [(0.0, [1.0, 2.0]), (0.2, [1.0, 2.0], 0.2)]},
        ["u=/b", "v=/a"], "EINVAL",
        "input 'u' (channel '/b'): the sample at t=0.2 s is logged after one "
        "at t=1 s (channel '/a'), so tick 1 did not see it"),
    "unknown map name": ({"/u": [(0.0, [1.0, 2.0])]}, ["w=/u"], "EINVAL",
                         "input map entry 'w=/u': graph 'g' has no input "
                         "'w'"),
    "map without =": ({"/u": [(0.0, [1.0, 2.0])]}, ["u"], "EINVAL",
                      "input map entry 'u' is not NAME=TOPIC"),
    "mapped topic missing": ({"/u": [(0.0, [1.0, 2.0])]}, ["u=/nope"],
                             "ENOENT", "input 'u': no channel '/nope'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_fail_cleanly(tmp_path, case):
    channels, maps, code, msg = BAD_INPUTS[case]
    g = gain_graph(tmp_path, second_input=case == "late across channels")
    data = tmp_path / "in.mcap"
    write_inputs(data, channels)
    out = tmp_path / "out.mcap"
    args = ["graph", "run", g, "--ticks", 4, "--inputs", data, "--trace", out]
    for m in maps:
        args += ["--input-map", m]
    r = twin(*args)
    assert r.returncode == 1, r.stdout
    err = r.stderr.decode()
    assert f"error: {code}: {data}: " in err
    assert msg in err, err
    assert r.stdout == b""
    assert no_trace_left(out)


def test_corrupt_and_foreign_files(tmp_path):
    g = gain_graph(tmp_path)
    data = tmp_path / "in.mcap"
    write_inputs(data, {"/u": [(0.5 * k, [k, -k]) for k in range(100)]})
    out = tmp_path / "out.mcap"
    raw = data.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "not mcap": b"this is not an MCAP file at all\n" * 4,
        "empty": b"",
    }
    for name, blob in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.mcap"
        bad.write_bytes(blob)
        r = twin("graph", "run", g, "--ticks", 4, "--inputs", bad,
                 "--trace", out)
        assert r.returncode == 1, name
        assert f"error: EPARSE: {bad}: ".encode() in r.stderr, r.stderr
        assert no_trace_left(out)
    # A flipped byte inside the compressed chunk: the chunk CRC or zstd
    # catches it, never a wrong value.
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0x55
    bad = tmp_path / "flipped.mcap"
    bad.write_bytes(bytes(flipped))
    r = twin("graph", "run", g, "--ticks", 100, "--inputs", bad,
             "--trace", out)
    if r.returncode != 0:
        assert r.returncode == 1 and str(bad).encode() in r.stderr
        assert no_trace_left(out)
    # A missing file, and a channel whose encoding is not a port's.
    r = twin("graph", "run", g, "--inputs", tmp_path / "none.mcap")
    assert r.returncode == 1 and b"error: ENOENT: " in r.stderr
    with open(tmp_path / "proto.mcap", "wb") as f:
        w = Writer(f)
        w.start()
        sid = w.register_schema("x.Msg", "protobuf", b"\x00")
        cid = w.register_channel("/u", "protobuf", sid)
        w.add_message(cid, 0, b"\x08\x01", 0)
        w.finish()
    r = twin("graph", "run", g, "--inputs", tmp_path / "proto.mcap",
             "--trace", out)
    assert r.returncode == 1
    assert b"message encoding 'protobuf' is not a port sample's" in r.stderr
    assert no_trace_left(out)
    r = twin("graph", "run", g, "--input-map", "u=/u")
    assert r.returncode == 2 and b"--input-map needs --inputs" in r.stderr


def test_a_run_failing_midway_leaves_no_trace(tmp_path):
    out = tmp_path / "out.mcap"
    # A CPU budget stops a long run after pieces were written.
    r = twin("graph", "run", EXAMPLE, "--ticks", 50_000_000,
             "--max-cpu-ms", 50, "--trace", out)
    assert r.returncode == 1
    assert b"error: ELIMIT: graph 'hybrid_oscillator': CPU budget exceeded" \
        in r.stderr
    assert r.stdout == b"" and no_trace_left(out)
    # A wasm model out of fuel (a guest failure) after the trace was opened.
    r = twin("graph", "run", EXAMPLE, "--ticks", 100, "--fuel", 20000,
             "--trace", out)
    assert r.returncode == 1 and b"out of fuel" in r.stderr
    assert no_trace_left(out)
    # A memory budget stops it at the first tick.
    r = twin("graph", "run", EXAMPLE, "--ticks", 100, "--max-memory", "1K",
             "--trace", out)
    assert r.returncode == 1 and b"memory budget exceeded" in r.stderr
    assert no_trace_left(out)
    # Inputs that go bad after the first piece (4096 ticks) was traced.
    g = gain_graph(tmp_path)
    data = tmp_path / "in.mcap"
    write_inputs(data, {"/u": [(0.0, [1.0, 1.0]), (3000.0, [1.0, 2.0, 3.0])]})
    r = twin("graph", "run", g, "--ticks", 9000, "--inputs", data,
             "--trace", out)
    assert r.returncode == 1
    assert b"has 3 values, the input has 2" in r.stderr
    assert no_trace_left(out)
    # A trace that cannot be created.
    r = twin("graph", "run", EXAMPLE, "--trace", tmp_path / "no" / "t.mcap")
    assert r.returncode == 1 and b"error: ENOENT: " in r.stderr
    assert r.stdout == b""
    # An existing file at the path is left as it was.
    out.write_bytes(b"keep me")
    r = twin("graph", "run", EXAMPLE, "--ticks", 100, "--max-memory", "1K",
             "--trace", out)
    assert r.returncode == 1
    assert out.read_bytes() == b"keep me"
    assert not os.path.exists(f"{out}.partial")
