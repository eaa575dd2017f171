"""A twin on a live Kafka topic, end to end, against the real broker that
scripts/kafka runs (TW_KAFKA_BOOTSTRAP) and a real `twin serve` as the
schema registry; records produced with confluent-kafka (librdkafka):

- plain JSON records, Confluent wire-format records whose schema (force
  in kN) the registry holds, and bad ones (malformed JSON, a string for a
  number, a value out of its dtype, an unknown schema id, an oversize
  record), keyed over three partitions;
- `twin compose up --profile live` runs the twin, records everything to a
  rotated directory, dead-letters the bad records with Kafka Connect's
  headers and commits only what it recorded; the broker restarts in the
  middle of the run;
- the recording holds every produced record exactly once, the dead-letter
  topic exactly the bad ones, and `twin replay` gives the live run's
  outputs bit for bit;
- a second run of the same group starts after the committed positions.
"""
import json
import os
import struct
import subprocess
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from mcap.reader import make_reader

from conftest import SOURCE, TWIN, twin

BOOT = os.environ.get("TW_KAFKA_BOOTSTRAP")
pytestmark = pytest.mark.skipif(BOOT is None, reason="scripts/kafka run")

SCHEMA = {
    "type": "object",
    "properties": {
        "t": {"type": "integer"},
        "force": {"type": "number", "unit": "kN"},
    },
}

TWIN_YAML = """\
twin: rig_live
version: 1
dt: 1 ms
components:
  plant:
    model: builtin:spring_damper
    parameters: {{k: 5 N/m, c: 0.4 N*s/m}}
sources:
  rig:
    kind: mcap
    path: none.mcap
    topics:
      force: {{unit: N}}
connections:
  - from: rig.force
    to: plant.F
outputs: [plant.x, plant.v]
profiles:
  live:
    sources:
      rig:
        kind: kafka
        brokers: {boot}
        topic: {topic}
        group: {group}
        dead_letter: {topic}.dlq
        schema_registry: {registry}
        time: {{field: t, unit: ms}}
"""


def create_topics(*names, partitions=3):
    admin = AdminClient({"bootstrap.servers": BOOT})
    fs = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for f in fs.values():
        f.result(30)


def register(registry, subject, schema):
    req = urllib.request.Request(
        f"{registry}/subjects/{subject}/versions",
        data=json.dumps({"schema": json.dumps(schema),
                         "schemaType": "JSON"}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["id"]


def records(n, t0, sid):
    """(key, value, bad) for n records 1 ms apart; every 37th is bad in
    one of five ways, every 11th good one in the wire format."""
    out = []
    for i in range(n):
        t = t0 + i
        key = f"k{i % 7}".encode()
        f = 0.5 * ((i * 7919) % 200 - 100) / 100.0
        if i % 37 == 5:
            kind = (i // 37) % 5
            value = [b"{\"t\": " + str(t).encode() + b", \"force\": ",
                     json.dumps({"t": t, "force": "strong"}).encode(),
                     b"{\"t\": " + str(t).encode() + b", \"force\": 1e999}",
                     b"\0" + struct.pack(">I", 4242) + json.dumps(
                         {"t": t, "force": 1}).encode(),
                     json.dumps({"t": t, "force": 1.0,
                                 "pad": "x" * (2 << 20)}).encode()][kind]
            out.append((key, value, True))
        elif i % 11 == 3:
            value = b"\0" + struct.pack(">I", sid) + json.dumps(
                {"t": t, "force": f / 1000}).encode()
            out.append((key, value, False))
        else:
            out.append((key, json.dumps({"t": t, "force": f}).encode(),
                        False))
    return out


def produce(recs, pace_s=0.0):
    p = Producer({"bootstrap.servers": BOOT, "enable.idempotence": True,
                  "message.max.bytes": 4 << 20, "linger.ms": 5})
    for k, v, _ in recs:
        while True:
            try:
                p.produce(TOPIC, v, k)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        if pace_s:
            time.sleep(pace_s)
    assert p.flush(120) == 0


def read_all(topic, group, n, timeout=60):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": group,
                  "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    end = time.time() + timeout
    while len(got) < n and time.time() < end:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    return got


SPLIT_FLAGS = 0x8 | 0x10  # TW_INGEST_ASSIGNED | TW_INGEST_REVOKED


def flags_of(body):
    # CDR: event, ingest_ns, source_ns, partition, offset, flags.
    return struct.unpack_from("<I", body, 4 + 40)[0]


def recorded(path, splits=None):
    """(partition, offset) -> body of every record in the recording; the
    split events (partitions assigned or revoked) go to splits."""
    seen = {}
    files = sorted(os.listdir(path))
    assert len(files) > 1, "the recording did not rotate"
    run = files[-1].split("-")[1]
    for name in files:
        if name.split("-")[1] != run:
            continue
        with open(os.path.join(path, name), "rb") as f:
            r = make_reader(f)
            for _, ch, msg in r.iter_messages():
                if ch.topic != "/ingest/rig":
                    continue
                body = msg.data
                # CDR: event, ingest_ns, source_ns, partition, offset.
                part, = struct.unpack_from("<i", body, 4 + 24)
                off, = struct.unpack_from("<q", body, 4 + 32)
                if flags_of(body) & SPLIT_FLAGS:
                    if splits is not None:
                        splits.append((part, flags_of(body)))
                    continue
                key = (part, off)
                assert key not in seen, f"{key} recorded twice"
                seen[key] = body
    return seen


TOPIC = "rig.telemetry"


def test_live_kafka_run_and_replay(tmp_path, serve):
    global TOPIC
    TOPIC = f"rig.telemetry.{os.getpid()}"
    create_topics(TOPIC, TOPIC + ".dlq")
    sid = register(serve.url, TOPIC + "-value", SCHEMA)
    y = tmp_path / "rig.yaml"
    y.write_text(TWIN_YAML.format(boot=BOOT, topic=TOPIC, group="rig-twin",
                                  registry=serve.url))
    t0 = int(time.time() * 1000) - 60000
    recs = records(2400, t0, sid)
    bad = sum(1 for r in recs if r[2])
    half = len(recs) // 2
    rec = tmp_path / "rec"
    live = tmp_path / "live.mcap"
    run = subprocess.Popen(
        [TWIN, "compose", "up", str(y), "--profile", "live", "--record",
         str(rec), "--segment-size", "256K", "--trace", str(live),
         "--max-records", str(len(recs)), "--out-of-order-ms", "5000",
         "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Produced as the twin runs (a live rig), the broker restarting
    # between the halves.
    produce(recs[:half], pace_s=0.001)
    subprocess.run([os.path.join(SOURCE, "scripts/kafka"), "restart",
                    os.environ["TW_KAFKA_DIR"]], check=True, timeout=120)
    produce(recs[half:], pace_s=0.001)
    out, errs = run.communicate(timeout=240)
    assert run.returncode == 0, errs
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["records"] == len(recs), summary
    assert summary["refused"] == bad, (summary, errs)
    assert summary["sources"]["rig"]["dead_letters"] == bad
    assert summary["accepted"] + summary["late"] == len(recs) - bad
    assert summary["ticks"] >= 2390
    assert summary["late"] < len(recs) // 10

    # Every produced record is in the recording exactly once.
    splits = []
    seen = recorded(rec, splits)
    assert len(seen) == len(recs)
    # The group's assignment came first, as split events: every
    # partition's watermark held the source's.
    assert {p for (p, f) in splits if f & 0x8} == {0, 1, 2}, splits
    for p in range(3):
        offs = sorted(o for (q, o) in seen if q == p)
        assert offs == list(range(len(offs))), f"partition {p} has holes"

    # The dead letters: the original bytes and Kafka Connect's headers.
    dead = read_all(TOPIC + ".dlq", "dlq-reader", bad)
    assert len(dead) == bad
    by_value = {v for _, v, b in recs if b and len(v) < (1 << 20)}
    big = [v for _, v, b in recs if b and len(v) >= (1 << 20)]
    for m in dead:
        h = {k: v.decode() for k, v in m.headers()}
        assert h["__connect.errors.topic"] == TOPIC
        assert int(h["__connect.errors.offset"]) >= 0
        assert h["__connect.errors.stage"] in ("VALUE_CONVERTER", "CONSUME")
        assert h["__connect.errors.exception.message"]
        assert h["__connect.errors.connector.name"] == "rig_live"
        if h["__connect.errors.stage"] == "CONSUME":
            # Oversize: its first 64 KiB.
            assert len(m.value()) == 65536
            assert any(v.startswith(m.value()) for v in big)
        else:
            assert m.value() in by_value
    msgs = " ".join(dict(m.headers())["__connect.errors.exception.message"]
                    .decode() for m in dead)
    assert "4242" in msgs and "force" in msgs

    # Replay: the same outputs, bit for bit.
    r = twin("replay", str(rec), "--twin", str(y), "--profile", "live",
             "--trace", str(tmp_path / "replay.mcap"), "--expect", str(live),
             "--out-of-order-ms", "5000", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "outputs identical" in r.stderr
    again = json.loads(r.stdout.strip().splitlines()[-1])
    for k in ("records", "accepted", "refused", "late", "ticks"):
        assert again[k] == summary[k], k

    # A replay with another out-of-orderness is another run: it differs.
    r = twin("replay", str(rec), "--twin", str(y), "--profile", "live",
             "--trace", str(tmp_path / "other.mcap"), "--expect", str(live),
             "--out-of-order-ms", "0", "--quiet")
    assert r.returncode == 1 and "outputs differ" in r.stderr, r.stderr

    # The group resumes after what it committed: nothing new to read.
    r = twin("compose", "up", str(y), "--profile", "live", "--duration",
             "4", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["records"] == 0


def test_ingest_kafka_record_only(tmp_path):
    global TOPIC
    TOPIC = f"raw.{os.getpid()}"
    create_topics(TOPIC)
    produce([(b"k", json.dumps({"i": i}).encode(), False)
             for i in range(500)])
    out = tmp_path / "raw.mcap"
    r = twin("ingest", "kafka", "--brokers", BOOT, "--topic", TOPIC,
             "--name", "rig", "--record", str(out), "--max-records", "500",
             "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["records"] == 500 and s["raw"] == 500
    with open(out, "rb") as f:
        n = sum(1 for _, ch, m in make_reader(f).iter_messages()
                if ch.topic == "/ingest/rig"
                and not flags_of(m.data) & SPLIT_FLAGS)
    assert n == 500


def test_unknown_topic_and_bad_broker(tmp_path):
    r = twin("ingest", "kafka", "--brokers", BOOT, "--topic",
             "no.such.topic", "--record", str(tmp_path / "x.mcap"),
             "--duration", "20")
    assert r.returncode == 1
    assert "no.such.topic" in r.stderr
    assert not (tmp_path / "x.mcap").exists()
    r = twin("ingest", "kafka", "--brokers", "127.0.0.1:1", "--topic", "t",
             "--record", str(tmp_path / "y.mcap"), "--duration", "60")
    assert r.returncode == 1
    assert "127.0.0.1:1" in r.stderr or "broker" in r.stderr.lower()
