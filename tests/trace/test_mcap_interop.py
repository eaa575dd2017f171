"""MCAP interoperability of src/trace with the reference implementation.

(a) Files written by the C writer (trace_tool write) are read by the
    reference Python package `mcap` (seeking reader with CRC validation,
    and the stream reader, which also checks the data section CRC); every
    message, schema, channel and the statistics must be what was written,
    and port samples must decode (JSON with json, CDR with
    mcap-ros2-support) to the values written.
(b) Files written by the reference Python writer (chunked with zstd or
    uncompressed, unchunked, without message indexes, without a summary)
    are read back exactly by the C reader (trace_tool dump --verify).
"""

import json
import math
import os
import struct
import subprocess

import pytest
from mcap.reader import make_reader
from mcap.records import DataEnd
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, IndexType, Writer
from mcap_ros2.decoder import DecoderFactory

TOOL = os.environ.get("TRACE_TOOL", "")

pytestmark = pytest.mark.skipif(not TOOL, reason="TRACE_TOOL is not set")


def tool(*args):
    return subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line]


def sample_time(k):
    # The trace_tool formula: unique times, out of order by ~10 neighbours.
    return 1_000_000_000 + 1000 * k + 977 * ((k * 31) % 11)


def port_values(k, size):
    v = [math.sin(0.01 * k), k * 0.5, -1.0 / 3.0]
    if k % 50 == 2:
        v[1] = math.nan
    if k % 70 == 3:
        v[0] = math.inf
    return v[:size]


def same_f64(a, b):
    return struct.pack("<d", a) == struct.pack("<d", b)


# --- (a) the C writer, read by the reference reader -----------------------

C_VARIANTS = {
    "zstd1": ["--zstd", 1],
    "zstd3-small-chunks": ["--zstd", 3, "--chunk-size", 4096],
    "none": ["--none"],
    "none-tiny-chunks": ["--none", "--chunk-size", 300],
    "no-crc": ["--zstd", 1, "--no-crc"],
    "no-summary": ["--none", "--no-summary"],
}


@pytest.mark.parametrize("variant", sorted(C_VARIANTS))
def test_c_writer_read_by_reference(tmp_path, variant):
    args = C_VARIANTS[variant]
    path = tmp_path / "c.mcap"
    count = 3000
    p = tool("write", path, *args, "--messages", count)
    assert p.returncode == 0, p.stderr
    manifest = jsonl(p.stdout)
    assert manifest[0]["type"] == "header"
    raw = [m for m in manifest if m["type"] == "message"]
    assert len(raw) == count // 2
    assert not os.path.exists(str(path) + ".partial")

    with open(path, "rb") as f:
        reader = make_reader(f, validate_crcs=True, decoder_factories=[DecoderFactory()])
        header = reader.get_header()
        assert header.library == "twin trace_tool"
        assert header.profile == ""
        summary = reader.get_summary()
        msgs = list(reader.iter_messages(log_time_order=True))
        decoded = {
            m.log_time: d.decoded_message
            for d in reader.iter_decoded_messages(topics=["/cart/velocity"])
            for m in [d.message]
        }
    assert len(msgs) == count
    times = [m.log_time for _, _, m in msgs]
    assert times == sorted(times)
    assert set(times) == {sample_time(k) for k in range(count)}

    topics = {ch.id: ch for _, ch, _ in msgs}
    assert {c.topic for c in topics.values()} == {
        "/demo/counter", "/demo/bytes", "/cart/position", "/cart/velocity"}
    if "--no-summary" in args:
        assert summary is None
    else:
        st = summary.statistics
        assert st.message_count == count
        assert st.channel_count == 4 and st.schema_count == 3
        assert st.attachment_count == 1 and st.metadata_count == 1
        assert st.chunk_count == len(summary.chunk_indexes) > 0
        assert st.message_start_time == min(times)
        assert st.message_end_time == max(times)
        assert dict(st.channel_message_counts) == {1: count // 4, 2: count // 4,
                                                   3: count // 4, 4: count // 4}
        ch = summary.channels
        assert ch[1].topic == "/demo/counter" and ch[1].message_encoding == "json"
        assert ch[1].metadata == {"origin": "trace_tool", "note": "café"}
        assert ch[2].schema_id == 0 and ch[2].message_encoding == "x-bytes"
        assert ch[3].metadata == {"twin.unit": "m", "twin.size": "3"}
        assert ch[4].metadata == {"twin.unit": "m/s", "twin.size": "2"}
        sc = summary.schemas
        assert sc[ch[1].schema_id].name == "demo.Counter"
        pos_schema = sc[ch[3].schema_id]
        assert pos_schema.encoding == "jsonschema"
        js = json.loads(pos_schema.data)
        assert js["properties"]["value"]["minItems"] == 3
        assert sc[ch[4].schema_id].encoding == "ros2msg"
        for ci in summary.chunk_indexes:
            assert ci.compression == ("" if "--none" in args else "zstd")

    by_time = {m.log_time: (ch, m) for _, ch, m in msgs}
    for e in raw:
        ch, m = by_time[e["log_time"]]
        assert m.channel_id == e["channel_id"]
        assert m.sequence == e["sequence"]
        assert m.publish_time == e["publish_time"]
        assert m.data.hex() == e["data"]

    index_of = {sample_time(k): k for k in range(count)}
    seen_json = seen_cdr = 0
    for _, ch, m in msgs:
        k = index_of[m.log_time]
        if ch.topic == "/cart/position":
            d = json.loads(m.data)
            assert d["t"] == k * 1e-3
            want = port_values(k, 3)
            assert len(d["value"]) == 3
            for got, exp in zip(d["value"], want):
                assert got is None if not math.isfinite(exp) else got == exp
            assert m.publish_time == m.log_time
            seen_json += 1
        elif ch.topic == "/cart/velocity":
            d = decoded[m.log_time]
            assert same_f64(d.t, k * 1e-3)
            assert all(same_f64(a, b) for a, b in zip(d.value, port_values(k, 2)))
            assert len(d.value) == 2
            seen_cdr += 1
    assert seen_json == seen_cdr == count // 4

    # The stream reader checks the data section CRC, which DataEnd holds
    # unless CRCs are off.
    with open(path, "rb") as f:
        records = list(StreamReader(f, validate_crcs=True).records)
    data_end = [r for r in records if isinstance(r, DataEnd)]
    assert len(data_end) == 1
    assert (data_end[0].data_section_crc == 0) == ("--no-crc" in args)

    # And the C reader agrees with the reference reader.
    d = tool("dump", path, "--verify")
    assert d.returncode == 0, d.stderr
    dumped = [x for x in jsonl(d.stdout) if x["type"] == "message"]
    assert [x["log_time"] for x in dumped] == times
    assert [x["data"] for x in dumped] == [m.data.hex() for _, _, m in msgs]


# --- (b) the reference writer, read by the C reader -----------------------

def python_sample(path, count=1500, compression=CompressionType.ZSTD,
                  chunk_size=4096, use_chunking=True, index_types=IndexType.ALL,
                  summary=True, data_crcs=True):
    """Writes a sample with the reference writer; returns what it holds."""
    expected = {"messages": [], "schemas": [], "channels": []}
    with open(path, "wb") as f:
        w = Writer(f, chunk_size=chunk_size, compression=compression,
                   use_chunking=use_chunking, index_types=index_types,
                   repeat_channels=summary, repeat_schemas=summary,
                   use_statistics=summary, use_summary_offsets=summary,
                   enable_data_crcs=data_crcs)
        w.start(profile="x-test", library="python-sample")
        schema = b'{"type":"object"}'
        s1 = w.register_schema("demo.A", "jsonschema", schema)
        s2 = w.register_schema("demo.B", "x-custom", bytes(range(256)))
        channels = [
            w.register_channel("/a", "json", s1, {"k": "v", "unit": "m"}),
            w.register_channel("/b", "x-bin", 0),
            w.register_channel("/a", "json", s1),
            w.register_channel("/c", "x-custom", s2, {"big": "x" * 1000}),
        ]
        expected["schemas"] = [
            {"id": s1, "name": "demo.A", "encoding": "jsonschema", "data": schema.hex()},
            {"id": s2, "name": "demo.B", "encoding": "x-custom",
             "data": bytes(range(256)).hex()},
        ]
        expected["channels"] = [
            {"id": channels[0], "schema_id": s1, "topic": "/a",
             "message_encoding": "json", "metadata": {"k": "v", "unit": "m"}},
            {"id": channels[1], "schema_id": 0, "topic": "/b",
             "message_encoding": "x-bin", "metadata": {}},
            {"id": channels[2], "schema_id": s1, "topic": "/a",
             "message_encoding": "json", "metadata": {}},
            {"id": channels[3], "schema_id": s2, "topic": "/c",
             "message_encoding": "x-custom", "metadata": {"big": "x" * 1000}},
        ]
        for k in range(count):
            ch = channels[k % 4]
            if k % 4 == 0:
                data = json.dumps({"k": k}).encode()
            elif k % 4 == 1:
                data = bytes((k * 7 + i) % 256 for i in range(k % 200))
            elif k % 4 == 2:
                data = b"" if k % 3 else b"\x00" * (3 * chunk_size + 5)
            else:
                data = struct.pack("<Q", k) * (k % 17)
            t = sample_time(k)
            w.add_message(ch, t, data, t + 7, sequence=k)
            expected["messages"].append({
                "type": "message", "channel_id": ch, "sequence": k,
                "log_time": t, "publish_time": t + 7, "data": data.hex()})
        w.add_metadata("meta", {"a": "b", "c": "d"})
        w.add_attachment(create_time=11, log_time=12, name="x.bin",
                         media_type="application/octet-stream", data=b"\x01\x02" * 50)
        w.finish()
    expected["messages"].sort(key=lambda m: m["log_time"])
    return expected


PY_VARIANTS = {
    "zstd": {},
    "none": {"compression": CompressionType.NONE},
    "large-chunks": {"chunk_size": 1 << 20},
    "unchunked": {"use_chunking": False},
    "no-message-indexes": {"index_types": IndexType.CHUNK},
    "no-summary": {"summary": False, "index_types": IndexType.NONE},
    "no-data-crc": {"data_crcs": False},
}


@pytest.mark.parametrize("variant", sorted(PY_VARIANTS))
def test_python_writer_read_by_c(tmp_path, variant):
    kw = PY_VARIANTS[variant]
    path = tmp_path / "py.mcap"
    expected = python_sample(path, **kw)
    p = tool("dump", path, "--verify")
    assert p.returncode == 0, p.stderr
    lines = jsonl(p.stdout)
    header = lines[0]
    assert header["profile"] == "x-test" and header["library"] == "python-sample"
    summary = kw.get("summary", True)
    assert header["has_summary"] == summary
    chunked = kw.get("use_chunking", True)
    assert header["indexed"] == (summary and chunked)
    messages = [x for x in lines if x["type"] == "message"]
    assert messages == expected["messages"]
    schemas = [{k: v for k, v in x.items() if k != "type"}
               for x in lines if x["type"] == "schema"]
    channels = [{k: v for k, v in x.items() if k != "type"}
                for x in lines if x["type"] == "channel"]
    assert schemas == expected["schemas"]
    assert channels == expected["channels"]
    # Metadata and attachments are listed from their summary indexes, or
    # found by the scan of a file without chunk indexes; a file indexed
    # without them lists none (as the reference reader does).
    listed = kw.get("index_types", IndexType.ALL) != IndexType.CHUNK
    meta = [x for x in lines if x["type"] == "metadata"]
    assert meta == [{"type": "metadata", "name": "meta",
                     "metadata": {"a": "b", "c": "d"}}] * listed
    att = [x for x in lines if x["type"] == "attachment"]
    assert att == [{"type": "attachment", "name": "x.bin",
                    "media_type": "application/octet-stream", "log_time": 12,
                    "create_time": 11, "data": (b"\x01\x02" * 50).hex()}] * listed
    st = next(x for x in lines if x["type"] == "statistics")
    assert st["message_count"] == len(expected["messages"])
    assert st["message_start_time"] == expected["messages"][0]["log_time"]
    assert st["message_end_time"] == expected["messages"][-1]["log_time"]
    assert st["channel_message_counts"] == {str(c): len(expected["messages"]) // 4
                                            for c in range(1, 5)}

    # One channel, and a time window.
    t0 = expected["messages"][100]["log_time"]
    t1 = expected["messages"][900]["log_time"]
    p = tool("dump", path, "--channel", 2, "--channel", 4, "--start", t0, "--end", t1)
    assert p.returncode == 0, p.stderr
    got = [x for x in jsonl(p.stdout) if x["type"] == "message"]
    assert got == [m for m in expected["messages"]
                   if m["channel_id"] in (2, 4) and t0 <= m["log_time"] <= t1]


def test_lz4_chunks_are_refused_clearly(tmp_path):
    path = tmp_path / "lz4.mcap"
    python_sample(path, count=50, compression=CompressionType.LZ4)
    p = tool("dump", path)
    assert p.returncode == 1
    assert "ENOTSUP" in p.stderr and "'lz4'" in p.stderr and "at byte" in p.stderr


def test_corruption_is_reported_with_its_offset(tmp_path):
    path = tmp_path / "bad.mcap"
    python_sample(path, count=400, compression=CompressionType.NONE)
    data = bytearray(path.read_bytes())
    # A byte inside the first chunk's records: its CRC no longer matches.
    with open(path, "rb") as f:
        first = make_reader(f).get_summary().chunk_indexes[0]
    data[first.chunk_start_offset + first.chunk_length - 10] ^= 0x40
    path.write_bytes(bytes(data))
    p = tool("dump", path)
    assert p.returncode == 1
    assert "EPARSE" in p.stderr
    assert f"at byte {first.chunk_start_offset}: chunk CRC mismatch" in p.stderr
