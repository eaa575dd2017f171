"""`twin serve` as a user runs it: an ephemeral loopback port printed on
stdout, /healthz, /metrics accepted by promtool, static files, the data
directory created, and SIGTERM with a kept-alive connection open: the
process exits 0 promptly and the port stops accepting. (Requests in flight
during a stop are tested in-process, tests/unit/server.)

TWIN_BIN names the binary under test (set by ctest)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

TWIN = os.environ["TWIN_BIN"]


def start(tmp_path, *extra):
    p = subprocess.Popen(
        [TWIN, "--log-level", "info", "--log-format", "json", "serve",
         "--listen", "127.0.0.1:0", "--data", str(tmp_path / "data"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return p, "http://" + line.strip().split("http://")[1]


def stop(p, timeout=10):
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, err


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_healthz_metrics_static_and_sigterm(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>twin</h1>")
    p, base = start(tmp_path, "--static", str(site))
    try:
        assert (tmp_path / "data").is_dir()
        st, _, body = get(base + "/healthz")
        assert st == 200 and json.loads(body) == {"status": "ok"}
        st, h, body = get(base + "/")
        assert st == 200 and body == b"<h1>twin</h1>"
        assert h["content-type"].startswith("text/html")
        st, _, body = get(base + "/nope")
        assert st == 404
        assert json.loads(body)["error"]["code"] == "NOT_FOUND"
        st, h, metrics = get(base + "/metrics")
        assert st == 200
        assert b"http_requests_total{" in metrics
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"],
                               input=metrics, capture_output=True)
            assert r.returncode == 0, r.stdout + r.stderr
    finally:
        code, err = stop(p)
    assert code == 0, err
    lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    access = [l for l in lines if l.get("msg") == "request"]
    assert any(l["path"] == "/healthz" and l["status"] == 200 and
               l["method"] == "GET" and "duration_ms" in l and
               l["remote"] == "127.0.0.1" for l in access)


def test_sigterm_with_open_connection_exits_0(tmp_path):
    p, base = start(tmp_path)
    port = int(base.rsplit(":", 1)[1])
    # A kept-alive connection stays open across the stop.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(4096)
    assert b"200 OK" in first
    t0 = time.monotonic()
    code, err = stop(p)
    assert code == 0, err
    assert time.monotonic() - t0 < 5
    s.close()
    # The port no longer accepts connections.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_bad_listen_address_is_a_clear_error(tmp_path):
    r = subprocess.run([TWIN, "serve", "--listen", "nowhere",
                        "--data", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "listen address 'nowhere'" in r.stderr
