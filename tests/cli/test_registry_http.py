"""The OCI distribution v1.1 endpoints of `twin serve` under /v2/, driven
over HTTP as a client would: blobs pushed monolithically, in one POST and
in chunks (an out-of-order chunk is 416 BLOB_UPLOAD_INVALID), an image
manifest and an artifact with a subject, pulls by tag and digest, tags
with n/last and the Link header, referrers with and without an
artifactType filter, deletes, bad names and digests with the spec's error
codes, and SIGTERM exiting 0. Request bodies sent with Transfer-Encoding:
chunked (raw sockets: blobs and a manifest stored, malformed framing
refused with nothing stored) and blobs named by sha512 digests. With skopeo installed, an OCI layout is
copied into the registry.

TWIN_BIN names the binary under test (set by ctest)."""
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

TWIN = os.environ["TWIN_BIN"]
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Registry:
    def __init__(self, tmp_path):
        self.data = tmp_path / "data"
        self.p = subprocess.Popen(
            [TWIN, "serve", "--listen", "127.0.0.1:0", "--data",
             str(self.data)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.port = int(line.strip().rsplit(":", 1)[1])

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, \
                r.read()
        finally:
            c.close()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.communicate(timeout=10)
        return self.p.returncode


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path)
    yield r
    if r.p.poll() is None:
        r.p.kill()
        r.p.wait()


def code_of(body):
    return json.loads(body)["errors"][0]["code"]


def push_blob(reg, name, data):
    st, h, _ = reg.req("POST", f"/v2/{name}/blobs/uploads/?digest={sha(data)}",
                       body=data, headers={
                           "Content-Type": "application/octet-stream"})
    assert st == 201, (st, h)
    assert h["docker-content-digest"] == sha(data)
    return sha(data)


def image_manifest(config, layers, subject=None, artifact_type=None):
    m = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config), "size": len(config)},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": sha(b), "size": len(b)} for b in layers]}
    if artifact_type:
        m["artifactType"] = artifact_type
    if subject:
        m["subject"] = subject
    return json.dumps(m, sort_keys=True).encode()


def test_base_and_blob_pushes(reg):
    st, h, body = reg.req("GET", "/v2/")
    assert st == 200 and json.loads(body) == {}

    # Monolithic POST + PUT.
    data = b"hello, blob\n" * 100
    st, h, _ = reg.req("POST", "/v2/a/b/blobs/uploads/")
    assert st == 202
    loc = h["location"]
    assert loc.startswith("/v2/a/b/blobs/uploads/")
    st, h, _ = reg.req("PUT", f"{loc}?digest={sha(data)}", body=data,
                       headers={"Content-Type": "application/octet-stream"})
    assert st == 201 and h["docker-content-digest"] == sha(data)
    assert h["location"] == f"/v2/a/b/blobs/{sha(data)}"

    st, h, body = reg.req("GET", f"/v2/a/b/blobs/{sha(data)}")
    assert st == 200 and body == data
    assert h["docker-content-digest"] == sha(data)
    st, h, body = reg.req("HEAD", f"/v2/a/b/blobs/{sha(data)}")
    assert st == 200 and body == b"" and int(h["content-length"]) == len(data)
    st, h, body = reg.req("GET", f"/v2/a/b/blobs/{sha(data)}",
                          headers={"Range": "bytes=6-9"})
    assert st == 206 and body == data[6:10]

    # Single POST.
    one = b"single post"
    assert push_blob(reg, "a/b", one) == sha(one)
    st, _, body = reg.req("GET", f"/v2/a/b/blobs/{sha(one)}")
    assert st == 200 and body == one

    # Digest mismatch: DIGEST_INVALID, nothing stored.
    st, _, body = reg.req("POST", f"/v2/a/b/blobs/uploads/?digest={sha(b'x')}",
                          body=b"y")
    assert st == 400 and code_of(body) == "DIGEST_INVALID"
    st, _, body = reg.req("GET", f"/v2/a/b/blobs/{sha(b'y')}")
    assert st == 404 and code_of(body) == "BLOB_UNKNOWN"

    # Cross-repository mount, then a mount from a repository without it.
    st, h, _ = reg.req("POST",
                       f"/v2/c/blobs/uploads/?mount={sha(one)}&from=a/b")
    assert st == 201 and h["location"] == f"/v2/c/blobs/{sha(one)}"
    st, h, _ = reg.req("POST",
                       f"/v2/d/blobs/uploads/?mount={sha(one)}&from=nope")
    assert st == 202 and "/blobs/uploads/" in h["location"]

    # Blob delete.
    st, _, _ = reg.req("DELETE", f"/v2/c/blobs/{sha(one)}")
    assert st == 202
    st, _, body = reg.req("GET", f"/v2/c/blobs/{sha(one)}")
    assert st == 404 and code_of(body) == "BLOB_UNKNOWN"


def test_chunked_upload(reg):
    data = os.urandom(300000)
    st, h, _ = reg.req("POST", "/v2/chunky/blobs/uploads/")
    assert st == 202
    loc = h["location"]
    a, b = data[:100000], data[100000:250000]
    st, h, _ = reg.req("PATCH", loc, body=a, headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"0-{len(a) - 1}"})
    assert st == 202 and h["range"] == f"0-{len(a) - 1}"
    loc = h["location"]

    # Out of order: 416 with BLOB_UPLOAD_INVALID and the current Range.
    st, h, body = reg.req("PATCH", loc, body=b, headers={
        "Content-Range": f"5-{5 + len(b) - 1}"})
    assert st == 416 and code_of(body) == "BLOB_UPLOAD_INVALID"
    assert h["range"] == f"0-{len(a) - 1}"

    st, h, _ = reg.req("PATCH", loc, body=b, headers={
        "Content-Range": f"{len(a)}-{len(a) + len(b) - 1}"})
    assert st == 202 and h["range"] == f"0-{len(a) + len(b) - 1}"

    st, h, _ = reg.req("GET", loc)
    assert st == 204 and h["range"] == f"0-{len(a) + len(b) - 1}"
    assert h["docker-upload-uuid"] in loc

    # The last chunk with the PUT.
    st, h, _ = reg.req("PUT", f"{loc}?digest={sha(data)}",
                       body=data[250000:])
    assert st == 201 and h["docker-content-digest"] == sha(data)
    st, _, body = reg.req("GET", f"/v2/chunky/blobs/{sha(data)}")
    assert st == 200 and body == data

    # Cancel an upload.
    st, h, _ = reg.req("POST", "/v2/chunky/blobs/uploads/")
    loc = h["location"]
    st, _, _ = reg.req("DELETE", loc)
    assert st == 204
    st, _, body = reg.req("GET", loc)
    assert st == 404 and code_of(body) == "BLOB_UPLOAD_UNKNOWN"


def test_one_request_per_session(reg):
    st, h, _ = reg.req("POST", "/v2/busy/blobs/uploads/")
    loc = h["location"]
    data = b"z" * 1000
    s = socket.create_connection(("127.0.0.1", reg.port), timeout=10)
    try:
        s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\n"
                   f"Content-Length: {len(data)}\r\n"
                   f"Content-Range: 0-{len(data) - 1}\r\n\r\n").encode()
                  + data[:10])
        # While the PATCH holds the session, others are refused with 409.
        # (Asked once, after the PATCH's headers are surely in: a status
        # request racing them would hold the session and refuse the PATCH.)
        time.sleep(0.5)
        st, _, body = reg.req("GET", loc)
        assert st == 409 and code_of(body) == "BLOB_UPLOAD_INVALID"
        s.sendall(data[10:])
        resp = s.recv(4096).decode()
        assert resp.startswith("HTTP/1.1 202"), resp
    finally:
        s.close()
    st, h, _ = reg.req("GET", loc)
    assert st == 204 and h["range"] == f"0-{len(data) - 1}"
    st, h, _ = reg.req("PUT", f"{loc}?digest={sha(data)}")
    assert st == 201


def test_manifests_tags_referrers(reg):
    config, layer = b"{}", b"layer bytes"
    push_blob(reg, "app", config)
    push_blob(reg, "app", layer)
    m = image_manifest(config, [layer])
    st, h, body = reg.req("PUT", "/v2/app/manifests/v1", body=m,
                          headers={"Content-Type": MT_MANIFEST})
    assert st == 201, body
    assert h["docker-content-digest"] == sha(m)
    assert h["location"] == f"/v2/app/manifests/{sha(m)}"
    assert "oci-subject" not in h

    for ref in ("v1", sha(m)):
        st, h, body = reg.req("GET", f"/v2/app/manifests/{ref}")
        assert st == 200 and body == m
        assert h["content-type"] == MT_MANIFEST
        assert h["docker-content-digest"] == sha(m)
    st, h, body = reg.req("HEAD", "/v2/app/manifests/v1")
    assert st == 200 and body == b"" and int(h["content-length"]) == len(m)

    # Content-Type must match the manifest's mediaType.
    st, _, body = reg.req("PUT", "/v2/app/manifests/bad", body=m,
                          headers={"Content-Type": MT_INDEX})
    assert st == 400 and code_of(body) == "MANIFEST_INVALID"

    # A manifest naming a missing blob.
    missing = image_manifest(config, [b"not pushed"])
    st, _, body = reg.req("PUT", "/v2/app/manifests/v2", body=missing,
                          headers={"Content-Type": MT_MANIFEST})
    assert st == 400 and code_of(body) == "MANIFEST_BLOB_UNKNOWN"

    # A digest reference that is not the manifest's digest.
    st, _, body = reg.req("PUT", f"/v2/app/manifests/{sha(b'other')}",
                          body=m, headers={"Content-Type": MT_MANIFEST})
    assert st == 400 and code_of(body) == "DIGEST_INVALID"

    # An artifact with a subject.
    subject = {"mediaType": MT_MANIFEST, "digest": sha(m), "size": len(m)}
    empty = b"{}"
    art = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha(empty), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha(empty), "size": 2}],
        "subject": subject}).encode()
    st, h, body = reg.req("PUT", f"/v2/app/manifests/{sha(art)}", body=art,
                          headers={"Content-Type": MT_MANIFEST})
    assert st == 201, body
    assert h["oci-subject"] == sha(m)

    st, h, body = reg.req("GET", f"/v2/app/referrers/{sha(m)}")
    assert st == 200 and h["content-type"] == MT_INDEX
    idx = json.loads(body)
    assert [d["digest"] for d in idx["manifests"]] == [sha(art)]
    assert idx["manifests"][0]["artifactType"] == \
        "application/vnd.example.sbom"
    assert "oci-filters-applied" not in h
    st, h, body = reg.req(
        "GET", f"/v2/app/referrers/{sha(m)}?artifactType=application/x")
    assert st == 200 and json.loads(body)["manifests"] == []
    assert h["oci-filters-applied"] == "artifactType"
    st, h, body = reg.req(
        "GET", f"/v2/app/referrers/{sha(m)}"
        "?artifactType=application/vnd.example.sbom")
    assert [d["digest"] for d in json.loads(body)["manifests"]] == [sha(art)]
    st, _, body = reg.req("GET", "/v2/app/referrers/sha256:nothex")
    assert st == 400 and code_of(body) == "DIGEST_INVALID"

    # Tags with n/last and the Link header.
    for t in ("v2", "v3", "alpha"):
        st, _, _ = reg.req("PUT", f"/v2/app/manifests/{t}", body=m,
                           headers={"Content-Type": MT_MANIFEST})
        assert st == 201
    st, h, body = reg.req("GET", "/v2/app/tags/list")
    assert json.loads(body) == {"name": "app",
                                "tags": ["alpha", "v1", "v2", "v3"]}
    assert "link" not in h
    st, h, body = reg.req("GET", "/v2/app/tags/list?n=2")
    assert json.loads(body)["tags"] == ["alpha", "v1"]
    assert h["link"] == '</v2/app/tags/list?n=2&last=v1>; rel="next"'
    st, h, body = reg.req("GET", "/v2/app/tags/list?n=2&last=v1")
    assert json.loads(body)["tags"] == ["v2", "v3"]
    st, h, body = reg.req("GET", "/v2/app/tags/list?n=0")
    assert json.loads(body)["tags"] == []
    st, _, body = reg.req("GET", "/v2/none/tags/list")
    assert st == 404 and code_of(body) == "NAME_UNKNOWN"

    # Deletes: a tag, then the manifest by digest.
    st, _, _ = reg.req("DELETE", "/v2/app/manifests/alpha")
    assert st == 202
    st, _, body = reg.req("GET", "/v2/app/manifests/alpha")
    assert st == 404 and code_of(body) == "MANIFEST_UNKNOWN"
    st, _, _ = reg.req("DELETE", f"/v2/app/manifests/{sha(art)}")
    assert st == 202
    st, _, body = reg.req("GET", f"/v2/app/referrers/{sha(m)}")
    assert json.loads(body)["manifests"] == []

    assert reg.stop() == 0


def test_bad_names(reg):
    # Upper case and separators in the wrong place reach the server:
    # NAME_INVALID.
    for name in ("Upper", "a..b", "-a", "a_"):
        st, _, body = reg.req("GET", f"/v2/{name}/tags/list")
        assert st == 400 and code_of(body) == "NAME_INVALID", name
    # libwebsockets collapses "//" and resolves ".." before routing
    # (ADR 0011): "a//b" is "a/b", and a ".." climbing out of /v2/ is no
    # /v2/ route at all.
    st, _, body = reg.req("GET", "/v2/a//b/tags/list")
    assert st == 404 and code_of(body) == "NAME_UNKNOWN"
    st, _, _ = reg.req("GET", "/v2/../../etc/tags/list")
    assert st in (403, 404)
    st, _, _ = reg.req("GET", "/v2/%2e%2e/tags/list")
    assert st in (400, 403, 404)
    assert not (reg.data.parent / "etc").exists()
    assert reg.stop() == 0


def raw_request(reg, method, path, headers, body, pieces=1):
    """Sends a request over a raw socket (the body in `pieces` writes, as
    given: no framing is added) and returns (status, headers, body) of
    the response, read until the server closes the connection."""
    s = socket.create_connection(("127.0.0.1", reg.port), timeout=10)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(head.encode() + b"\r\n")
        step = max(1, -(-len(body) // pieces))
        try:
            for i in range(0, len(body), step):
                s.sendall(body[i:i + step])
                if pieces > 1:
                    time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and closed: the response is read below
        data = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            data += got
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, v in
            (line.split(":", 1) for line in lines[1:])}
    return status, hdrs, rest


def chunk(data, sizes, ext="", trailers=""):
    """data in chunks of the given sizes (cycled), then the last chunk."""
    out, i, k = b"", 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        part = data[i:i + n]
        out += f"{len(part):x}{ext}\r\n".encode() + part + b"\r\n"
        i += n
        k += 1
    return out + f"0{ext}\r\n{trailers}\r\n".encode()


def test_chunked_request_bodies(reg):
    """Go's client (crane, oras, the conformance suite) sends manifest
    PUTs and streamed blobs with Transfer-Encoding: chunked."""
    te = {"Transfer-Encoding": "chunked",
          "Content-Type": "application/octet-stream"}
    # A monolithic blob POST, chunked, fed in many small writes.
    blob = bytes(range(256)) * 40
    st, h, _ = raw_request(reg, "POST",
                           f"/v2/ch/blobs/uploads/?digest={sha(blob)}", te,
                           chunk(blob, [1, 7, 4096, 3]), pieces=37)
    assert st == 201 and h["docker-content-digest"] == sha(blob)
    assert h["connection"] == "close"
    st, _, body = reg.req("GET", f"/v2/ch/blobs/{sha(blob)}")
    assert st == 200 and body == blob

    # A chunked PATCH with extensions and trailers, then the closing PUT.
    st, h, _ = reg.req("POST", "/v2/ch/blobs/uploads/")
    assert st == 202
    loc = h["location"]
    part = b"streamed " * 500
    st, h, _ = raw_request(reg, "PATCH", loc, te,
                           chunk(part, [100], ext=";a=b",
                                 trailers="X-Sum: 1\r\n"))
    assert st == 202 and h["range"] == f"0-{len(part) - 1}"
    st, h, _ = reg.req("PUT", f"{h['location']}?digest={sha(part)}")
    assert st == 201 and h["docker-content-digest"] == sha(part)

    # A chunked manifest PUT is stored and served by tag and digest.
    config = b"{}"
    push_blob(reg, "ch", config)
    m = image_manifest(config, [blob])
    st, h, _ = raw_request(reg, "PUT", "/v2/ch/manifests/v1",
                           {"Transfer-Encoding": "chunked",
                            "Content-Type": MT_MANIFEST},
                           chunk(m, [50]), pieces=5)
    assert st == 201 and h["docker-content-digest"] == sha(m)
    st, _, body = reg.req("GET", "/v2/ch/manifests/v1",
                          headers={"Accept": MT_MANIFEST})
    assert st == 200 and body == m

    # Malformed framing: 400 with the reason, the connection closed and
    # nothing stored.
    bad = b"bad chunking"
    for framing in (b"c\n" + bad + b"\r\n0\r\n\r\n",       # bare LF
                    b"c\r\n" + bad + b"XX\r\n0\r\n\r\n",   # data too long
                    b"zz\r\n" + bad + b"\r\n0\r\n\r\n",    # not hex
                    b"10000000000000000\r\n"):               # 17 digits
        st, h, body = raw_request(
            reg, "POST", f"/v2/ch/blobs/uploads/?digest={sha(bad)}", te,
            framing)
        # The server's own error body, not the registry's.
        err = json.loads(body)["error"]
        assert st == 400 and err["code"] == "BAD_REQUEST", body
        assert "malformed chunked body" in err["message"]
        assert h["connection"] == "close"
    st, _, _ = reg.req("GET", f"/v2/ch/blobs/{sha(bad)}")
    assert st == 404
    m2 = image_manifest(config, [])
    st, _, body = raw_request(reg, "PUT", "/v2/ch/manifests/v2",
                              {"Transfer-Encoding": "chunked",
                               "Content-Type": MT_MANIFEST},
                              chunk(m2, [10])[:-2] + b"\n\n")
    assert st == 400
    st, _, _ = reg.req("GET", "/v2/ch/manifests/v2")
    assert st == 404

    # Both framings at once (request smuggling), another coding, and a
    # chunked body on a method that takes none.
    st, _, body = raw_request(reg, "POST", "/v2/ch/blobs/uploads/",
                              dict(te, **{"Content-Length": "5"}),
                              chunk(b"hello", [5]))
    assert st == 400 and "Content-Length and Transfer-Encoding" in \
        body.decode()
    st, _, _ = raw_request(reg, "POST", "/v2/ch/blobs/uploads/",
                           {"Transfer-Encoding": "gzip"}, b"")
    assert st == 501
    st, _, _ = raw_request(reg, "DELETE", f"/v2/ch/blobs/{sha(blob)}", te,
                           chunk(b"x", [1]))
    assert st == 400
    st, _, _ = reg.req("GET", f"/v2/ch/blobs/{sha(blob)}")
    assert st == 200


def sha512(b):
    return "sha512:" + hashlib.sha512(b).hexdigest()


def test_sha512_blobs(reg):
    data = b"named by sha512\n" * 50
    d = sha512(data)
    # Monolithic: stored under blobs/sha512 and served by that digest.
    st, h, _ = reg.req("POST", f"/v2/s5/blobs/uploads/?digest={d}",
                       body=data)
    assert st == 201 and h["docker-content-digest"] == d
    assert h["location"] == f"/v2/s5/blobs/{d}"
    assert (reg.data / "blobs" / "sha512" / d[7:]).read_bytes() == data
    st, h, body = reg.req("GET", f"/v2/s5/blobs/{d}")
    assert st == 200 and body == data and h["docker-content-digest"] == d
    st, h, _ = reg.req("HEAD", f"/v2/s5/blobs/{d}")
    assert st == 200 and int(h["content-length"]) == len(data)

    # Chunked session closed by a sha512 digest.
    st, h, _ = reg.req("POST", "/v2/s5/blobs/uploads/")
    loc = h["location"]
    other = b"second sha512 blob"
    st, h, _ = reg.req("PATCH", loc, body=other[:5], headers={
        "Content-Range": "0-4", "Content-Type": "application/octet-stream"})
    assert st == 202
    st, h, _ = reg.req("PUT", f"{h['location']}?digest={sha512(other)}",
                       body=other[5:])
    assert st == 201 and h["docker-content-digest"] == sha512(other)

    # A wrong sha512 digest: DIGEST_INVALID and nothing stored.
    wrong = sha512(b"something else")
    st, _, body = reg.req("POST", f"/v2/s5/blobs/uploads/?digest={wrong}",
                          body=b"not it")
    assert st == 400 and code_of(body) == "DIGEST_INVALID"
    assert not (reg.data / "blobs" / "sha512" / wrong[7:]).exists()
    # Malformed: wrong length, upper case.
    for bad in ("sha512:" + "a" * 64, d.upper().replace("SHA512", "sha512")):
        st, _, body = reg.req("GET", f"/v2/s5/blobs/{bad}")
        assert st == 400 and code_of(body) == "DIGEST_INVALID", bad

    # Mount, and a manifest whose layer is a sha512 blob.
    st, h, _ = reg.req("POST", f"/v2/s6/blobs/uploads/?mount={d}&from=s5")
    assert st == 201 and h["location"] == f"/v2/s6/blobs/{d}"
    config = b"{}"
    push_blob(reg, "s5", config)
    m = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d, "size": len(data)}]}).encode()
    st, h, _ = reg.req("PUT", "/v2/s5/manifests/v1", body=m,
                       headers={"Content-Type": MT_MANIFEST})
    assert st == 201 and h["docker-content-digest"] == sha(m)

    # Delete.
    st, _, _ = reg.req("DELETE", f"/v2/s6/blobs/{d}")
    assert st == 202
    st, _, body = reg.req("GET", f"/v2/s6/blobs/{d}")
    assert st == 404 and code_of(body) == "BLOB_UNKNOWN"
    st, _, _ = reg.req("GET", f"/v2/s5/blobs/{d}")
    assert st == 200


def test_skopeo_copy(reg, tmp_path):
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (Debian package 'skopeo')")
    # Push an image, copy it out to an OCI layout, then copy the layout
    # into another repository.
    config, layer = b"{}", b"layer for skopeo"
    push_blob(reg, "src", config)
    push_blob(reg, "src", layer)
    m = image_manifest(config, [layer])
    st, _, _ = reg.req("PUT", "/v2/src/manifests/v1", body=m,
                       headers={"Content-Type": MT_MANIFEST})
    assert st == 201
    out = tmp_path / "layout"
    host = f"127.0.0.1:{reg.port}"
    subprocess.run([skopeo, "copy", "--src-tls-verify=false",
                    f"docker://{host}/src:v1", f"oci:{out}:v1"], check=True,
                   capture_output=True, timeout=60)
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false",
                    f"oci:{out}:v1", f"docker://{host}/copied:v1"],
                   check=True, capture_output=True, timeout=60)
    st, _, body = reg.req("GET", "/v2/copied/manifests/v1")
    assert st == 200
    got = json.loads(body)
    assert [d["digest"] for d in got["layers"]] == [sha(layer)]
    assert reg.stop() == 0
