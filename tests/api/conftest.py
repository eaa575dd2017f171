"""A real `twin serve` for the REST API tests: its own data directory, the
metadata in SQLite there, or in the PostgreSQL database named by
TWIN_TEST_DB (ctest's cli.api_pg runs the suite that way, with a cluster
that scripts/postgres starts and stops). The database is shared by the
tests of a run, so the fixture empties it first."""
import http.client
import json
import os
import signal
import subprocess
import urllib.parse

import pytest

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
MODELS = os.path.join(BUILD, "models")


class Server:
    def __init__(self, tmp_path, db=None):
        self.data = tmp_path / "data"
        cmd = [TWIN, "serve", "--listen", "127.0.0.1:0", "--data",
               str(self.data)]
        if db:
            cmd += ["--db", db]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), \
            line + self.p.stderr.read()
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, \
                r.read()
        finally:
            c.close()

    def api(self, method, path, body=None, ctype="application/json"):
        """JSON in and out: (status, parsed body or None)."""
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = ctype
        st, _, out = self.req(method, path, data, headers)
        return st, json.loads(out) if out else None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.communicate(timeout=15)
        return self.p.returncode


def q(s):
    return urllib.parse.quote(s, safe="")


@pytest.fixture
def srv(tmp_path):
    s = Server(tmp_path, os.environ.get("TWIN_TEST_DB") or None)
    # A shared database: start from no models.
    while True:
        st, page = s.api("GET", "/api/v1/models?page_size=1000")
        assert st == 200, page
        if not page["models"]:
            break
        for m in page["models"]:
            st, _ = s.api("DELETE", f"/api/v1/models/{q(m['name'])}")
            assert st == 204
    yield s
    if s.p.poll() is None:
        s.p.kill()
        s.p.wait()


def wasm(name):
    with open(os.path.join(MODELS, name + ".wasm"), "rb") as f:
        return f.read()
