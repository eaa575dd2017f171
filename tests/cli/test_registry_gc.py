"""`twin registry gc` on the data directory of a running `twin serve`:
unreferenced blobs older than the grace period go with their links,
everything a manifest references stays and still pulls, a dry run removes
nothing; idle upload sessions are purged by gc and by the server itself
(at start and hourly, --upload-ttl).

TWIN_BIN names the binary under test (set by ctest)."""
import json
import os
import subprocess
import time

from test_registry_http import Registry, image_manifest, push_blob, sha

TWIN = os.environ["TWIN_BIN"]


def gc(data, *args):
    r = subprocess.run([TWIN, "registry", "gc", "--data", str(data), "--json",
                        *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_gc_sweeps_only_unreferenced(tmp_path):
    reg = Registry(tmp_path)
    try:
        cfg, layer, loose = b"{}", b"layer bytes", b"nobody needs me"
        for b in (cfg, layer, loose):
            push_blob(reg, "app", b)
        man = image_manifest(cfg, [layer])
        st, _, _ = reg.req("PUT", "/v2/app/manifests/v1", man,
                           {"Content-Type":
                            "application/vnd.oci.image.manifest.v1+json"})
        assert st == 201

        # Young blobs are kept by default.
        s = gc(reg.data)
        assert s["swept"] == 0 and s["young"] == 1
        s = gc(reg.data, "--grace", "0", "--dry-run")
        assert s["dry_run"] and s["swept"] == 1
        st, _, _ = reg.req("GET", f"/v2/app/blobs/{sha(loose)}")
        assert st == 200
        s = gc(reg.data, "--grace", "0")
        assert s["swept"] == 1 and s["bytes"] == len(loose)
        assert s["manifests"] >= 1 and s["referenced"] >= 3

        st, _, _ = reg.req("GET", f"/v2/app/blobs/{sha(loose)}")
        assert st == 404
        for b in (cfg, layer):
            st, _, body = reg.req("GET", f"/v2/app/blobs/{sha(b)}")
            assert st == 200 and body == b
        st, _, body = reg.req("GET", "/v2/app/manifests/v1")
        assert st == 200 and body == man
    finally:
        assert reg.stop() == 0


def test_upload_sessions_are_purged(tmp_path):
    reg = Registry(tmp_path)
    st, h, _ = reg.req("POST", "/v2/app/blobs/uploads/")
    assert st == 202
    loc = h["location"]
    assert reg.stop() == 0
    # Idle for less than a week: kept across a restart.
    reg = Registry(tmp_path)
    st, _, _ = reg.req("GET", loc)
    assert st == 204
    assert reg.stop() == 0
    time.sleep(1.1)  # modification times have whole seconds
    s = gc(reg.data, "--upload-ttl", "0")
    assert s["uploads"] == 1
    reg = Registry(tmp_path)
    try:
        st, _, body = reg.req("GET", loc)
        assert st == 404 and b"BLOB_UPLOAD_UNKNOWN" in body
        st, h, _ = reg.req("POST", "/v2/app/blobs/uploads/")
        loc = h["location"]
    finally:
        assert reg.stop() == 0
    time.sleep(1.1)
    # The server purges at start with --upload-ttl 0.
    p = subprocess.Popen([TWIN, "serve", "--listen", "127.0.0.1:0", "--data",
                          str(reg.data), "--upload-ttl", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        reg.port = port
        st, _, _ = reg.req("GET", loc)
        assert st == 404
    finally:
        p.terminate()
        p.communicate(timeout=15)


def test_gc_refuses_a_missing_directory(tmp_path):
    r = subprocess.run([TWIN, "registry", "gc", "--data",
                        str(tmp_path / "nope")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "no registry data directory" in r.stderr
    assert not (tmp_path / "nope").exists()
