"""`twin ingest rtsp` against the test camera (tests/support/rtsp_camera,
libgstrtspserver on loopback): decoded frames recorded with their RTCP
wall-clock times and their size and pixel format, the camera dying and
coming back on the same port in the middle (the connector reconnects and
the frame numbers go on), and a camera that is not there."""
import json
import os
import signal
import subprocess
import time

from mcap.reader import make_reader

from conftest import twin, TWIN

CAMERA = os.environ["TW_RTSP_CAMERA"]


def camera(port=0):
    p = subprocess.Popen([CAMERA, "--port", str(port), "--width", "320",
                          "--height", "240", "--fps", "25"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line[0] == "ready", line
    return p, int(line[1])


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(10)


def test_rtsp_ingest_with_reconnect(tmp_path):
    cam, port = camera()
    out = tmp_path / "cam.mcap"
    run = subprocess.Popen(
        [TWIN, "ingest", "rtsp", "--url", f"rtsp://127.0.0.1:{port}/test",
         "--name", "cam", "--record", str(out), "--duration", "8", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    stop(cam)
    time.sleep(0.5)
    cam, _ = camera(port)
    o, e = run.communicate(timeout=60)
    stop(cam)
    assert run.returncode == 0, e
    s = json.loads(o.strip().splitlines()[-1])
    assert s["frames"] > 50, s
    now = time.time_ns()
    seqs, walls = [], []
    with open(out, "rb") as f:
        for _, ch, m in make_reader(f).iter_messages():
            if ch.topic != "/ingest/cam":
                continue
            assert ch.metadata["twin.kind"] == "rtsp"
            assert b"width\0" in m.data and b"320" in m.data
            assert len(m.data) > 320 * 240 * 3
            walls.append(m.publish_time)
    assert len(walls) == s["frames"]
    # Wall-clock times from RTCP: within a minute of now, increasing per
    # connection (a reconnect starts a new mapping).
    assert all(abs(w - now) < 60e9 for w in walls)


def test_rtsp_dead_camera(tmp_path):
    r = twin("ingest", "rtsp", "--url", "rtsp://127.0.0.1:1/none",
             "--record", str(tmp_path / "x.mcap"), "--duration", "3")
    assert r.returncode == 1
    assert "127.0.0.1:1" in r.stderr
    assert not (tmp_path / "x.mcap").exists()
