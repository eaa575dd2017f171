"""Real OCI clients against `twin serve`: the distribution-spec conformance
suite, oras and crane, each built from the Go module proxy at a pinned
version by scripts/oci-tools (scripts/bootstrap builds them once; here the
script only prints their cached paths).

The conformance suite runs whole, once per module, and the test checks the
specs listed in CONFORMANCE_PASSING, one by one, so that a regression in
any of them fails; specs not listed do not pass yet (request bodies sent
with Transfer-Encoding: chunked, which Go's client uses for every manifest
PUT and for empty or streamed blob bodies, and sha512 digests).

oras pushes a file as an artifact with an artifactType, pulls it back,
attaches a referrer and discovers it (with and without an artifactType
filter). crane appends a layer from a tarball onto an empty base, lists
tags, reads digests and manifests, pulls to and pushes from a tarball,
copies across repositories (a blob mount), tags, exports and deletes.

TWIN_BIN names the binary under test (set by ctest); TWIN_SOURCE_DIR the
source tree, for scripts/oci-tools."""
import json
import os
import re
import subprocess

import pytest

from test_registry_http import Registry

SRC = os.environ.get("TWIN_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT = 300

# The conformance specs that pass now: "OCI Conformance Test/" + each name
# must be reported as Pass.
CONFORMANCE_PASSING = [
    "ping",
    "empty",
    "empty/tag list",
    "empty/referrers",
    "missing-manifest",
    "missing-manifest/by-tag",
    "missing-manifest/by-digest",
    "sha256 blobs/get-missing",
    "sha256 blobs/emptyJSON",
    "sha256 blobs/post only",
    "sha256 blobs/post+put",
    "sha256 blobs/chunked single",
    "sha256 blobs/chunked multi",
    "sha256 blobs/chunked multi and put chunk",
    "sha256 blobs/chunked out-of-order",
    "sha256 blobs/chunked out-of-order and put chunk",
    "sha256 blobs/post cancel",
    "sha256 blobs/range requests",
    "sha256 blobs/mount",
    "sha256 blobs/mount anonymous",
    "sha256 blobs/mount missing",
    "sha256 blobs/bad digest post only",
    "sha256 blobs/bad digest post+put",
    "sha256 blobs/bad digest chunked",
    "sha256 blobs/bad digest chunked and put chunk",
    "sha512 blobs/bad digest post only",
    "sha512 blobs/bad digest post+put",
    "invalid-digest-format/manifest-get",
    "invalid-digest-format/blob-post-put",
    "invalid-digest-format/delete",
]


@pytest.fixture(scope="module")
def tools():
    r = subprocess.run([os.path.join(SRC, "scripts", "oci-tools")],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    paths = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    for name in ("conformance", "oras", "crane"):
        assert os.access(paths[name], os.X_OK), paths
    return paths


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path)
    yield r
    if r.p.poll() is None:
        r.p.kill()
        r.p.wait()


def run(args, cwd=None, ok=True):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                       timeout=TIMEOUT)
    if ok:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_conformance(tools, reg, tmp_path):
    env = dict(os.environ,
               OCI_REGISTRY=f"127.0.0.1:{reg.port}", OCI_TLS="disabled",
               OCI_REPO1="conformance/repo1", OCI_REPO2="conformance/repo2",
               OCI_VERSION="1.1", OCI_RESULTS_DIR=str(tmp_path / "results"))
    r = subprocess.run([tools["conformance"]], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    status = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*OCI Conformance Test/(.+): (\S+)$", line)
        if m:
            # A name may be reported more than once; any failure sticks.
            if status.get(m.group(1)) != "FAIL":
                status[m.group(1)] = m.group(2)
    assert status, r.stdout[-2000:] + r.stderr[-2000:]
    wrong = {n: status.get(n) for n in CONFORMANCE_PASSING
             if status.get(n) != "Pass"}
    assert not wrong, wrong
    assert reg.p.poll() is None, "the server died during the suite"


def test_oras_artifact_push_pull_referrers(tools, reg, tmp_path):
    oras = tools["oras"]
    ref = f"127.0.0.1:{reg.port}/models/demo:v1"
    model = tmp_path / "model.wasm"
    model.write_bytes(b"\0asm\1\0\0\0" + b"twin" * 100)
    run([oras, "push", "--plain-http", ref,
         "--artifact-type", "application/vnd.twin.model.v1+json",
         "model.wasm:application/vnd.twin.wasm"], cwd=tmp_path)

    out = tmp_path / "out"
    out.mkdir()
    run([oras, "pull", "--plain-http", ref, "-o", str(out)])
    assert (out / "model.wasm").read_bytes() == model.read_bytes()

    m = json.loads(run([oras, "manifest", "fetch", "--plain-http",
                        ref]).stdout)
    assert m["artifactType"] == "application/vnd.twin.model.v1+json"
    assert m["layers"][0]["mediaType"] == "application/vnd.twin.wasm"
    tags = run([oras, "repo", "tags", "--plain-http",
                ref.rsplit(":", 1)[0]]).stdout.split()
    assert tags == ["v1"]

    sig = tmp_path / "sig.txt"
    sig.write_text("signature\n")
    run([oras, "attach", "--plain-http", ref,
         "--artifact-type", "application/vnd.example.sig", "sig.txt"],
        cwd=tmp_path)
    run([oras, "attach", "--plain-http", ref,
         "--artifact-type", "application/vnd.example.sbom", "sig.txt"],
        cwd=tmp_path)

    d = json.loads(run([oras, "discover", "--plain-http", ref,
                        "--format", "json"]).stdout)
    types = sorted(x["artifactType"] for x in d["referrers"])
    assert types == ["application/vnd.example.sbom",
                     "application/vnd.example.sig"]
    d = json.loads(run([oras, "discover", "--plain-http", ref,
                        "--artifact-type", "application/vnd.example.sig",
                        "--format", "json"]).stdout)
    assert [x["artifactType"] for x in d["referrers"]] == [
        "application/vnd.example.sig"]


def test_crane_push_pull_copy(tools, reg, tmp_path):
    crane = tools["crane"]
    host = f"127.0.0.1:{reg.port}"
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "f.txt").write_text("layer content\n")
    run(["tar", "-C", str(layer), "-cf", str(tmp_path / "layer.tar"),
         "f.txt"])

    run([crane, "append", "--insecure", "--oci-empty-base",
         "-f", str(tmp_path / "layer.tar"), "-t", f"{host}/img/base:v1"])
    assert run([crane, "ls", "--insecure",
                f"{host}/img/base"]).stdout.split() == ["v1"]
    digest = run([crane, "digest", "--insecure",
                  f"{host}/img/base:v1"]).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    m = json.loads(run([crane, "manifest", "--insecure",
                        f"{host}/img/base:v1"]).stdout)
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(m["layers"]) == 1

    # A tarball pulled out and pushed back under another name.
    tarball = tmp_path / "img.tar"
    run([crane, "pull", "--insecure", f"{host}/img/base:v1", str(tarball)])
    run([crane, "push", "--insecure", str(tarball), f"{host}/img/pushed:v2"])
    assert run([crane, "ls", "--insecure",
                f"{host}/img/pushed"]).stdout.split() == ["v2"]
    files = run([crane, "export", "--insecure", f"{host}/img/pushed:v2",
                 str(tmp_path / "fs.tar")])
    assert files.returncode == 0
    listing = run(["tar", "-tf", str(tmp_path / "fs.tar")]).stdout.split()
    assert listing == ["f.txt"]

    # A copy across repositories mounts the blobs and keeps the digest.
    run([crane, "copy", "--insecure", f"{host}/img/base:v1",
         f"{host}/img/copied:v3"])
    assert run([crane, "digest", "--insecure",
                f"{host}/img/copied:v3"]).stdout.strip() == digest

    run([crane, "tag", "--insecure", f"{host}/img/base:v1", "v1b"])
    assert sorted(run([crane, "ls", "--insecure",
                       f"{host}/img/base"]).stdout.split()) == ["v1", "v1b"]

    run([crane, "delete", "--insecure", f"{host}/img/copied@{digest}"])
    r = run([crane, "manifest", "--insecure", f"{host}/img/copied@{digest}"],
            ok=False)
    assert r.returncode != 0 and "MANIFEST_UNKNOWN" in r.stderr
