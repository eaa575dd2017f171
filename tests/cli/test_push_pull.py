"""`twin push` and `twin pull` against registries: the real `twin serve`
(port 0, pushes with --no-register), oras from the pinned OCI tools in both
directions, and a small Python registry that misbehaves on purpose: upload
Locations absolute, absolute-path and relative with a query of their own,
error bodies, a wrong Docker-Content-Digest, blobs of the wrong size or
content, a redirect. A failed pull leaves neither its output nor a
temporary file, and an existing output untouched. Registration through the
metadata API (a new model created on the way) is checked against the
Python stand-in here and against the real server in test_models_cli.py.

TWIN_BIN names the binary under test (set by ctest); TWIN_SOURCE_DIR the
source tree, for scripts/oci-tools."""
import hashlib
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from test_registry_http import Registry

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
WASM = os.path.join(BUILD, "models", "oscillator.wasm")
WASM2 = os.path.join(BUILD, "models", "cartpole.wasm")
SRC = os.environ.get("TWIN_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MODEL_TYPE = "application/vnd.twin.model.v1+json"
CONFIG_TYPE = "application/vnd.twin.model.config.v1+json"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def twin(*args, timeout=60):
    return subprocess.run([TWIN, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path)
    yield r
    if r.p.poll() is None:
        r.p.kill()
        r.p.wait()


def leftovers(d, name):
    return sorted(f for f in os.listdir(d) if f.startswith(name))


# --- The real server ---------------------------------------------------------

def test_push_then_pull_round_trip(reg, tmp_path):
    host = f"127.0.0.1:{reg.port}"
    r = twin("push", WASM, f"{host}/models/osc:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith(f"pushed {host}/models/osc:v1 sha256:"), line
    digest = line.rsplit(" ", 1)[1]
    assert r.stdout.count("\n") == 1

    # The tag names that manifest, a model artifact with the module as its
    # one layer.
    st, h, body = reg.req("GET", "/v2/models/osc/manifests/v1",
                          headers={"Accept": MT_MANIFEST})
    assert st == 200 and sha(body) == digest
    m = json.loads(body)
    assert m["artifactType"] == MODEL_TYPE
    assert m["config"]["mediaType"] == CONFIG_TYPE
    wasm = open(WASM, "rb").read()
    assert [(x["mediaType"], x["digest"], x["size"]) for x in m["layers"]] \
        == [("application/wasm", sha(wasm), len(wasm))]

    out = tmp_path / "out" / "osc.wasm"
    out.parent.mkdir()
    r = twin("pull", f"{host}/models/osc:v1", "-o", str(out), "--plain-http")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"pulled {host}/models/osc:v1 {digest} to {out} "
                        f"({len(wasm)} bytes)\n")
    assert out.read_bytes() == wasm
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o644 & ~mask
    assert os.listdir(out.parent) == ["osc.wasm"]

    # By digest, with --json; the default tag is latest.
    r = twin("pull", f"{host}/models/osc@{digest}", "-o",
             str(tmp_path / "b.wasm"), "--plain-http", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "registry": host, "repository": "models/osc", "tag": None,
        "digest": digest, "wasm_digest": sha(wasm), "size": len(wasm),
        "output": str(tmp_path / "b.wasm")}
    assert (tmp_path / "b.wasm").read_bytes() == wasm
    r = twin("pull", f"{host}/models/osc", "-o", str(tmp_path / "c.wasm"),
             "--plain-http")
    assert r.returncode == 1 and "MANIFEST_UNKNOWN" in r.stderr
    assert f"{host}/models/osc:latest" in r.stderr
    assert not (tmp_path / "c.wasm").exists()


def test_push_is_deterministic_and_skips_present_blobs(reg):
    host = f"127.0.0.1:{reg.port}"
    r1 = twin("push", WASM, f"{host}/m/osc:a", "--plain-http",
              "--no-register", "--json")
    assert r1.returncode == 0, r1.stderr
    v = json.loads(r1.stdout)
    assert v["registry"] == host and v["repository"] == "m/osc"
    assert v["tag"] == "a" and v["model"] is None and v["version"] is None
    # Again, under another tag: the same digest, no blob sent twice.
    r2 = twin("--log-level", "info", "push", WASM, f"{host}/m/osc:b",
              "--plain-http", "--no-register", "--json")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["digest"] == v["digest"]
    assert r2.stderr.count("exists, not sent") == 2
    st, _, body = reg.req("GET", "/v2/m/osc/tags/list")
    assert st == 200 and sorted(json.loads(body)["tags"]) == ["a", "b"]
    # A tag moved to another model.
    r3 = twin("push", WASM2, f"{host}/m/osc:a", "--plain-http",
              "--no-register", "--json")
    assert r3.returncode == 0, r3.stderr
    assert json.loads(r3.stdout)["digest"] != v["digest"]


def test_push_refuses_bad_modules_before_any_request(reg, tmp_path):
    host = f"127.0.0.1:{reg.port}"
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"not wasm at all")
    r = twin("push", str(bad), f"{host}/models/bad:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 1
    assert r.stderr.startswith("error: EPARSE: ") and "bad.wasm" in r.stderr
    assert r.stdout == ""
    r = twin("push", str(tmp_path / "missing.wasm"), f"{host}/models/bad:v1",
             "--plain-http", "--no-register")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ENOENT: ") and "missing.wasm" in r.stderr
    st, _, body = reg.req("GET", "/v2/models/bad/tags/list")
    assert st == 404 and b"NAME_UNKNOWN" in body


@pytest.mark.parametrize("args,why", [
    (["push", WASM, "models/osc:v1"], "no registry"),
    (["push", WASM, "localhost:1/Models/osc"], "repository"),
    (["push", WASM, "localhost:1/models/osc:bad tag"], "tag"),
    (["push", WASM, "localhost:1/models/osc@sha256:" + "0" * 64],
     "not a digest"),
    (["push", WASM, "localhost:1/"], "not a reference"),
    (["pull", "localhost:1/models/osc@sha256:abc", "-o", "x.wasm"], "digest"),
    (["pull", "localhost:1/models/osc:v1"], "-o FILE"),
])
def test_malformed_references_are_usage_errors(tmp_path, args, why):
    r = subprocess.run([TWIN, *args], capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: EUSAGE: ") and why in r.stderr
    assert os.listdir(tmp_path) == []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_server_is_a_clear_error(tmp_path):
    port = free_port()
    t = time.monotonic()
    r = twin("pull", f"127.0.0.1:{port}/models/osc:v1", "-o",
             str(tmp_path / "o.wasm"), "--plain-http")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ECONN: ")
    assert f"http://127.0.0.1:{port}/v2/models/osc/manifests/v1" in r.stderr
    r = twin("push", WASM, f"127.0.0.1:{port}/models/osc:v1", "--plain-http")
    assert r.returncode == 1 and r.stderr.startswith("error: ECONN: ")
    assert f"127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t < 30
    assert os.listdir(tmp_path) == []


def test_https_to_a_plain_server_suggests_plain_http(reg, tmp_path):
    r = twin("pull", f"127.0.0.1:{reg.port}/models/osc:v1", "-o",
             str(tmp_path / "o.wasm"))
    assert r.returncode == 1 and r.stderr.startswith("error: ECONN: ")
    assert "https://127.0.0.1" in r.stderr and "--plain-http" in r.stderr


def test_pull_of_something_that_is_not_a_model(reg, tmp_path):
    cfg, layer = b"{}", b"a layer"
    for blob in (cfg, layer):
        st, _, _ = reg.req("POST", f"/v2/img/x/blobs/uploads/?digest={sha(blob)}",
                           body=blob)
        assert st == 201
    m = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(layer), "size": len(layer)}]}).encode()
    st, _, _ = reg.req("PUT", "/v2/img/x/manifests/v1", body=m,
                       headers={"Content-Type": MT_MANIFEST})
    assert st == 201
    out = tmp_path / "out" / "o.wasm"
    out.parent.mkdir()
    r = twin("pull", f"127.0.0.1:{reg.port}/img/x:v1", "-o", str(out),
             "--plain-http")
    assert r.returncode == 1
    assert r.stderr.startswith("error: EVALIDATE: ") and "not a model" in \
        r.stderr and "img/x:v1" in r.stderr
    assert os.listdir(out.parent) == []


# --- oras, both ways ---------------------------------------------------------

@pytest.fixture(scope="module")
def oras():
    r = subprocess.run([os.path.join(SRC, "scripts", "oci-tools")],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    paths = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert os.access(paths["oras"], os.X_OK), paths
    return paths["oras"]


def test_oras_pulls_what_twin_pushes(oras, reg, tmp_path):
    ref = f"127.0.0.1:{reg.port}/models/osc:v1"
    r = twin("push", WASM, ref, "--plain-http", "--no-register")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([oras, "pull", "--plain-http", ref, "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) == ["oscillator.wasm"]
    assert (out / "oscillator.wasm").read_bytes() == open(WASM, "rb").read()


def test_twin_pulls_what_oras_pushes(oras, reg, tmp_path):
    host = f"127.0.0.1:{reg.port}"
    # The config is the module's descriptor as the server checks it: take
    # it from an artifact twin built, then push module and config with
    # oras (its own manifest: annotations, a timestamp) to another
    # repository.
    r = twin("push", WASM, f"{host}/scratch/osc:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 0, r.stderr
    _, _, body = reg.req("GET", "/v2/scratch/osc/manifests/v1",
                         headers={"Accept": MT_MANIFEST})
    cfg_digest = json.loads(body)["config"]["digest"]
    _, _, cfg = reg.req("GET", f"/v2/scratch/osc/blobs/{cfg_digest}")
    (tmp_path / "config.json").write_bytes(cfg)
    (tmp_path / "model.wasm").write_bytes(open(WASM, "rb").read())
    r = subprocess.run(
        [oras, "push", "--plain-http", f"{host}/oras/osc:v2",
         "--artifact-type", MODEL_TYPE,
         "--config", f"config.json:{CONFIG_TYPE}",
         "model.wasm:application/wasm"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _, _, body = reg.req("GET", "/v2/oras/osc/manifests/v2",
                         headers={"Accept": MT_MANIFEST})
    assert "annotations" in json.loads(body)
    out = tmp_path / "pulled.wasm"
    r = twin("pull", f"{host}/oras/osc:v2", "-o", str(out), "--plain-http")
    assert r.returncode == 0, r.stderr
    assert sha(body) in r.stdout
    assert out.read_bytes() == open(WASM, "rb").read()


# --- A registry that misbehaves ---------------------------------------------

class Fake:
    """A registry in Python whose answers each test sets: enough of /v2/
    for a push and a pull, and enough of /api/v1/ to register a version of
    a model that does not exist yet. Every request is recorded."""

    def __init__(self):
        self.blobs = {}
        self.manifests = {}
        self.location = "absolute"  # "absolute", "path" or "relative"
        self.manifest_digest = None  # a wrong Docker-Content-Digest
        self.manifest_error = None  # (status, body) for manifest PUTs
        self.blob_override = {}     # digest -> bytes served instead
        self.redirect = False
        self.models = set()
        self.log = []
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def body(self):
                n = int(self.headers.get("Content-Length", 0))
                return self.rfile.read(n)

            def handle_any(self):
                data = self.body()
                fake.log.append((self.command, self.path,
                                 self.headers.get("Content-Type")))
                fake.route(self, data)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()

    def route(self, h, data):
        path, _, query = h.path.partition("?")
        q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        parts = path.split("/")
        if path.startswith("/v2/") and "/blobs/uploads/" in path and \
                h.command == "POST":
            name = path[4:path.index("/blobs/uploads/")]
            up = f"up/{name}/1?_state=s1"
            loc = {"absolute": f"http://{self.host}/{up}",
                   "path": f"/{up}",
                   "relative": "../" * len(path.strip("/").split("/")) + up}
            return h.reply(202, headers={"Location": loc[self.location]})
        if path.startswith("/up/") and h.command == "PUT":
            if q.get("_state") != "s1" or sha(data) != q.get("digest"):
                return h.reply(400, json.dumps({"errors": [{
                    "code": "DIGEST_INVALID", "message": "bad upload",
                    "detail": query}]}).encode())
            self.blobs[q["digest"]] = data
            return h.reply(201, headers={"Docker-Content-Digest": sha(data)})
        if "/blobs/sha256:" in path and path.startswith("/v2/"):
            d = parts[-1]
            if d not in self.blobs:
                return h.reply(404, json.dumps({"errors": [{
                    "code": "BLOB_UNKNOWN", "message": "blob unknown"}]})
                    .encode())
            if self.redirect and not q.get("r"):
                return h.reply(307, headers={"Location": path + "?r=1"})
            return h.reply(200, self.blob_override.get(d, self.blobs[d]))
        if "/manifests/" in path and path.startswith("/v2/"):
            ref = parts[-1]
            if h.command == "PUT":
                if self.manifest_error:
                    st, body = self.manifest_error
                    return h.reply(st, body)
                self.manifests[ref] = data
                return h.reply(201, headers={
                    "Docker-Content-Digest": self.manifest_digest or
                    sha(data)})
            if ref not in self.manifests:
                return h.reply(404, json.dumps({"errors": [{
                    "code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                    "detail": ref}]}).encode())
            return h.reply(200, self.manifests[ref],
                           {"Content-Type": MT_MANIFEST})
        if path == "/api/v1/models" and h.command == "POST":
            self.models.add(json.loads(data)["name"])
            return h.reply(201, data)
        if path.startswith("/api/v1/models/") and path.endswith("/versions"):
            name = urllib.parse.unquote(parts[4])
            if name not in self.models:
                return h.reply(404, json.dumps({"error": {
                    "code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"model '{name}': not found"}}).encode())
            body = json.loads(data)
            return h.reply(201, json.dumps({
                "model": name, "version": 7,
                "artifact": body["artifact"]}).encode())
        return h.reply(404, b"no such thing\n")

    def put_model(self, wasm, tag="v1", layer_size=None):
        """A model artifact for pulls: returns the manifest's digest."""
        cfg = b'{"name":"m"}'
        self.blobs[sha(cfg)] = cfg
        self.blobs[sha(wasm)] = wasm
        m = json.dumps({
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "artifactType": MODEL_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": sha(cfg),
                       "size": len(cfg)},
            "layers": [{"mediaType": "application/wasm",
                        "digest": sha(wasm),
                        "size": layer_size if layer_size is not None
                        else len(wasm)}]}).encode()
        self.manifests[tag] = m
        self.manifests[sha(m)] = m
        return sha(m)


@pytest.fixture
def fake():
    f = Fake()
    yield f
    f.close()


@pytest.mark.parametrize("location", ["absolute", "path", "relative"])
def test_push_follows_every_kind_of_upload_location(fake, location):
    fake.location = location
    r = twin("push", WASM, f"{fake.host}/a/osc:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 0, r.stderr
    wasm = open(WASM, "rb").read()
    assert fake.blobs[sha(wasm)] == wasm
    assert sha(fake.manifests["v1"]) in r.stdout
    methods = [(m, p.split("?")[0]) for m, p, _ in fake.log]
    assert methods[0][0] == "HEAD"
    assert methods[0][1].startswith("/v2/a/osc/blobs/sha256:")
    assert [m for m, p in methods if p.startswith("/up/")] == ["PUT", "PUT"]
    assert methods[-1] == ("PUT", "/v2/a/osc/manifests/v1")
    ct = [c for m, p, c in fake.log if p == "/v2/a/osc/manifests/v1"]
    assert ct == [MT_MANIFEST]


def test_push_registers_a_new_model(fake):
    r = twin("push", WASM, f"{fake.host}/team/osc:v1", "--plain-http",
             "--model", "oscillator")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"pushed {fake.host}/team/osc:v1 sha256:")
    assert lines[1] == "registered oscillator version 7"
    api = [(m, p) for m, p, _ in fake.log if p.startswith("/api/")]
    assert api == [("POST", "/api/v1/models/oscillator/versions"),
                   ("POST", "/api/v1/models"),
                   ("POST", "/api/v1/models/oscillator/versions")]
    # The model name defaults to the repository's last component.
    r = twin("push", WASM, f"{fake.host}/team/osc:v2", "--plain-http",
             "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["model"] == "osc" and v["version"] == 7 and v["tag"] == "v2"


def test_push_shows_the_registrys_error(fake):
    fake.manifest_error = (400, json.dumps({"errors": [{
        "code": "MANIFEST_INVALID", "message": "manifest invalid",
        "detail": "layers[0]: not allowed here"}]}).encode())
    r = twin("push", WASM, f"{fake.host}/a/osc:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 1
    assert r.stderr.startswith("error: EINVAL: ")
    assert "MANIFEST_INVALID: manifest invalid: layers[0]: not allowed here" \
        in r.stderr and f"{fake.host}/a/osc:v1" in r.stderr
    fake.manifest_error = (500, b"<html>oops</html>")
    r = twin("push", WASM, f"{fake.host}/a/osc:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 1 and "HTTP 500: <html>oops</html>" in r.stderr


def test_push_checks_the_registrys_digest(fake):
    fake.manifest_digest = "sha256:" + "1" * 64
    r = twin("push", WASM, f"{fake.host}/a/osc:v1", "--plain-http",
             "--no-register")
    assert r.returncode == 1 and r.stderr.startswith("error: EDIGEST: ")
    assert "1" * 64 in r.stderr


def test_pull_follows_a_redirect(fake, tmp_path):
    wasm = b"\0asm\1\0\0\0" + os.urandom(5000)
    fake.put_model(wasm)
    fake.redirect = True
    out = tmp_path / "o.wasm"
    r = twin("pull", f"{fake.host}/a/m:v1", "-o", str(out), "--plain-http")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == wasm


@pytest.mark.parametrize("case", ["content", "short", "long", "manifest"])
def test_pull_refuses_a_wrong_module_and_leaves_nothing(fake, tmp_path, case):
    wasm = b"\0asm\1\0\0\0" + os.urandom(70000)
    digest = fake.put_model(wasm)
    ref = f"{fake.host}/a/m:v1"
    if case == "content":
        fake.blob_override[sha(wasm)] = bytes(len(wasm))
    elif case == "short":
        fake.blob_override[sha(wasm)] = wasm[:-10]
    elif case == "long":
        fake.blob_override[sha(wasm)] = wasm + b"more"
    else:
        # Pulled by digest, the manifest must hash to it.
        other = fake.manifests["v1"].replace(b'"schemaVersion": 2',
                                             b'"schemaVersion":  2')
        fake.manifests[digest] = other
        ref = f"{fake.host}/a/m@{digest}"
    out = tmp_path / "o.wasm"
    out.write_bytes(b"old")
    r = twin("pull", ref, "-o", str(out), "--plain-http")
    assert r.returncode == 1
    assert r.stderr.startswith("error: EDIGEST: "), r.stderr
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["o.wasm"]
    out.unlink()
    r = twin("pull", ref, "-o", str(out), "--plain-http")
    assert r.returncode == 1 and os.listdir(tmp_path) == []


def test_pull_caps_the_manifest(fake, tmp_path):
    fake.manifests["big"] = b"{" + b" " * (5 << 20) + b"}"
    r = twin("pull", f"{fake.host}/a/m:big", "-o", str(tmp_path / "o.wasm"),
             "--plain-http")
    assert r.returncode == 1 and r.stderr.startswith("error: ELIMIT: ")
    assert os.listdir(tmp_path) == []
