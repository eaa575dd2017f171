"""`twin model add` and graphs that name models by digest: the local model
store as an OCI image layout, the digest printed, the same run as by path,
the store from --store or TWIN_STORE, a corrupted blob refused with a clear
error, a file that is not a model never added.

TWIN_BIN names the binary under test (set by ctest)."""
import hashlib
import json
import os
import subprocess

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
MODELS = os.path.join(BUILD, "models")
WASM = os.path.join(MODELS, "oscillator.wasm")


def twin(*args, env=None):
    e = dict(os.environ)
    e.pop("TWIN_STORE", None)
    e.update(env or {})
    return subprocess.run([TWIN, *args], capture_output=True, timeout=120,
                          env=e)


def test_add_prints_the_digest_into_an_oci_layout(tmp_path):
    store = tmp_path / "store"
    r = twin("model", "add", "--store", str(store), WASM)
    assert r.returncode == 0, r.stderr
    digest = "sha256:" + hashlib.sha256(open(WASM, "rb").read()).hexdigest()
    assert r.stdout.decode() == digest + "\n"
    assert json.load(open(store / "oci-layout")) == \
        {"imageLayoutVersion": "1.0.0"}
    assert json.load(open(store / "index.json"))["schemaVersion"] == 2
    blob = store / "blobs" / "sha256" / digest[7:]
    assert blob.read_bytes() == open(WASM, "rb").read()
    r = twin("model", "add", "--json", WASM,
             env={"TWIN_STORE": str(store)})
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v == {"digest": digest, "size": os.path.getsize(WASM),
                 "name": "oscillator", "version": v["version"],
                 "store": str(store)}
    # The layout, the store's lock and its upload area, with no temporary
    # left behind.
    assert sorted(os.listdir(store)) == [".lock", "blobs", "index.json",
                                         "oci-layout", "uploads"]
    assert os.listdir(store / "uploads") == []


def test_not_a_model_is_not_added(tmp_path):
    store = tmp_path / "store"
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"not wasm")
    r = twin("model", "add", "--store", str(store), str(bad))
    assert r.returncode == 1
    assert r.stderr.startswith(b"error: EPARSE: ") and b"bad.wasm" in r.stderr
    assert not store.exists()


def _graph(tmp_path, model):
    g = json.load(open(os.path.join(MODELS, "hybrid_oscillator.json")))
    g["blocks"]["plant"]["model"] = model
    p = tmp_path / "g.json"
    p.write_text(json.dumps(g, indent=1))
    return p


def test_graph_by_digest_runs_like_by_path(tmp_path):
    store = tmp_path / "store"
    digest = twin("model", "add", "--store", str(store), WASM) \
        .stdout.decode().strip()
    by_path = twin("graph", "run", "--ticks", "30", "--json",
                   str(_graph(tmp_path, "wasm:" + WASM))).stdout
    g = _graph(tmp_path, "wasm:" + digest)
    r = twin("graph", "run", "--ticks", "30", "--json", "--store", str(store),
             str(g))
    assert r.returncode == 0, r.stderr
    assert r.stdout == by_path and by_path
    r = twin("graph", "grad", "--ticks", "30", "--loss", "x", "--wrt",
             "plant.k", str(g), env={"TWIN_STORE": str(store)})
    assert r.returncode == 0, r.stderr
    assert twin("graph", "validate", "--store", str(store), str(g)) \
        .returncode == 0
    # Without the store: a diagnostic naming the store it looked in.
    r = twin("graph", "validate", "--store", str(tmp_path / "none"), str(g))
    assert r.returncode == 1
    assert f"{g}:7:13: error: block 'plant': model store " \
           f"{tmp_path / 'none'} does not exist" in r.stderr.decode()
    # A blob changed on disk is never run.
    blob = store / "blobs" / "sha256" / digest[7:]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    r = twin("graph", "run", "--store", str(store), str(g))
    assert r.returncode == 1 and r.stdout == b""
    assert f"blob {digest} is corrupt" in r.stderr.decode()


def test_malformed_digests_are_located(tmp_path):
    for model, msg in (
        ("wasm:sha256:1234", "4 hex digits, a sha256 digest has 64"),
        ("wasm:sha256:" + "A" * 64, "hex digits must be lower case"),
        ("wasm:sha256:" + "g" * 64, "character 1 is not a hex digit"),
        ("wasm:blake3:" + "0" * 64, "algorithm 'blake3' is not supported"),
    ):
        g = _graph(tmp_path, model)
        r = twin("graph", "validate", "--store", str(tmp_path), str(g))
        assert r.returncode == 1
        assert f"{g}:7:13: error: block 'plant': digest " in r.stderr.decode()
        assert msg in r.stderr.decode(), r.stderr
