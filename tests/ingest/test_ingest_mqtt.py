"""A twin on a live MQTT topic, end to end, against the mosquitto broker
that scripts/mosquitto runs (TW_MQTT_BROKER), publishing with paho-mqtt:
a persistent QoS 1 session, records checked against the twin's ports,
bad ones published to the dead-letter topic with Kafka Connect's error
names as MQTT v5 user properties, the broker restarting in the middle,
every message recorded, and `twin replay` giving the same outputs."""
import json
import os
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest
from mcap.reader import make_reader

from conftest import SOURCE, TWIN, twin

BROKER = os.environ.get("TW_MQTT_BROKER")
pytestmark = pytest.mark.skipif(BROKER is None, reason="scripts/mosquitto run")

TWIN_YAML = """\
twin: press_live
version: 1
dt: 1 ms
components:
  plant:
    model: builtin:spring_damper
sources:
  press:
    kind: mqtt
    broker: {broker}
    topic: press/+/telemetry
    dead_letter: press/dead
    time: {{field: t, unit: ms}}
    topics:
      force: {{unit: N}}
connections:
  - from: press.force
    to: plant.F
outputs: [plant.x]
"""


def client(cid, subscribe=None):
    """A persistent MQTT v5 session that (re)subscribes on every connect,
    so it keeps its messages across the broker's restart."""
    host, port = BROKER.rsplit(":", 1)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                    protocol=mqtt.MQTTv5)
    c.reconnect_delay_set(0.05, 1)
    if subscribe:
        c.on_connect = lambda cl, *_: cl.subscribe(subscribe, qos=1)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(host, int(port), clean_start=False, properties=props)
    c.loop_start()
    return c


def publish(c, msgs, pace_s=0.001):
    infos = []
    for topic, payload in msgs:
        while True:
            try:
                infos.append(c.publish(topic, payload, qos=1))
                break
            except Exception:  # the broker is restarting
                time.sleep(0.05)
        time.sleep(pace_s)
    for i in infos:
        i.wait_for_publish(60)


def test_live_mqtt_run_and_replay(tmp_path):
    y = tmp_path / "press.yaml"
    y.write_text(TWIN_YAML.format(broker=BROKER))
    dead = []
    got_dead = threading.Event()

    def on_message(_c, _u, m):
        props = dict(getattr(m.properties, "UserProperty", []) or [])
        dead.append((m.payload, props))
        got_dead.set()

    sub = client("dead-reader", subscribe="press/dead")
    sub.on_message = on_message
    time.sleep(0.3)

    t0 = int(time.time() * 1000) - 10000
    msgs = []
    bad = 0
    for i in range(1500):
        topic = f"press/{i % 3}/telemetry"
        if i % 50 == 7:
            msgs.append((topic, b'{"t": %d, "force": [1, 2]}' % (t0 + i)))
            bad += 1
        else:
            msgs.append((topic, json.dumps(
                {"t": t0 + i, "force": (i % 17) / 17.0, "id": i}).encode()))
    rec = tmp_path / "rec.mcap"
    live = tmp_path / "live.mcap"
    run = subprocess.Popen(
        [TWIN, "compose", "up", str(y), "--record", str(rec), "--trace",
         str(live), "--stop-when-idle-ms", "3000", "--out-of-order-ms",
         "3000", "--json", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the twin's session subscribes
    pub = client("press-rig")
    half = len(msgs) // 2
    publish(pub, msgs[:half])
    subprocess.run([os.path.join(SOURCE, "scripts/mosquitto"), "restart",
                    os.environ["TW_MQTT_DIR"]], check=True, timeout=60)
    deadline = time.time() + 30
    while not pub.is_connected() and time.time() < deadline:
        time.sleep(0.05)
    publish(pub, msgs[half:])
    out, errs = run.communicate(timeout=120)
    pub.loop_stop()
    assert run.returncode == 0, errs
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["records"] >= len(msgs)
    assert summary["refused"] >= bad
    assert summary["ticks"] > 1000

    # Every message is in the recording; QoS 1 may deliver a message
    # again after the restart (MQTT has no positions to deduplicate by).
    ids = []
    with open(rec, "rb") as f:
        for _, ch, m in make_reader(f).iter_messages():
            if ch.topic == "/ingest/press":
                j = m.data.find(b'"id": ')
                if j >= 0:
                    ids.append(int(m.data[j + 6:].split(b"}")[0]))
    good = len(msgs) - bad
    assert len(set(ids)) == good
    assert len(ids) - good <= 100

    # Dead letters with their reasons.
    deadline = time.time() + 10
    while len(dead) < bad and time.time() < deadline:
        time.sleep(0.1)
    sub.loop_stop()
    assert len(dead) >= bad
    for payload, props in dead:
        assert b'"force": [1, 2]' in payload
        assert props["__connect.errors.topic"].startswith("press/")
        assert "force" in props["__connect.errors.exception.message"]

    r = twin("replay", str(rec), "--twin", str(y), "--trace",
             str(tmp_path / "replay.mcap"), "--expect", str(live),
             "--out-of-order-ms", "3000", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "outputs identical" in r.stderr


def test_mqtt_refused_broker(tmp_path):
    y = tmp_path / "press.yaml"
    y.write_text(TWIN_YAML.format(broker="127.0.0.1:1"))
    r = twin("compose", "up", str(y), "--duration", "5")
    assert r.returncode == 1
    assert "127.0.0.1" in r.stderr or "refused" in r.stderr.lower()
