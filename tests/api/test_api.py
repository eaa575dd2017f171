"""The model registry's REST API (/api/v1/, docs/openapi.yaml) of the real
`twin serve`: models, versions uploaded as a .wasm or registered from an
artifact pushed to /v2/, tags, aliases, lineage, search with pages, the
module download, the checks of model artifacts pushed to /v2/, and bad
input answered with MLflow's error codes and nothing changed. Runs on
SQLite and, as cli.api_pg, on PostgreSQL.

TWIN_BIN names the binary under test (set by ctest)."""
import hashlib
import json
import socket
import threading

from conftest import q, wasm

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def create(srv, name, **kw):
    st, m = srv.api("POST", "/api/v1/models", {"name": name, **kw})
    assert st == 201, m
    return m


def upload(srv, model, data, query=""):
    st, v = srv.api("POST", f"/api/v1/models/{model}/versions{query}", data,
                    ctype="application/wasm")
    return st, v


def err(body):
    return body["error"]["code"]


def test_models_crud_and_pages(srv):
    st, h, body = srv.req("POST", "/api/v1/models",
                          json.dumps({"name": "Osc", "description": "d",
                                      "tags": {"team": "ctl"}}).encode(),
                          {"Content-Type": "application/json"})
    m = json.loads(body)
    assert st == 201 and h["location"] == "/api/v1/models/Osc"
    assert m["name"] == "Osc" and m["description"] == "d"
    assert m["tags"] == {"team": "ctl"} and m["aliases"] == {}
    assert m["latest_version"] is None and m["created_ms"] > 0

    st, e = srv.api("POST", "/api/v1/models", {"name": "Osc"})
    assert st == 409 and err(e) == "RESOURCE_ALREADY_EXISTS"

    st, m = srv.api("PATCH", "/api/v1/models/Osc", {"description": "new"})
    assert st == 200 and m["description"] == "new"
    st, m = srv.api("PUT", "/api/v1/models/Osc/tags/a%2Fb%20c", {"value": "v"})
    assert st == 200 and m["tags"] == {"a/b c": "v", "team": "ctl"}
    st, _ = srv.api("DELETE", "/api/v1/models/Osc/tags/team")
    assert st == 204
    st, m = srv.api("GET", "/api/v1/models/Osc")
    assert st == 200 and m["tags"] == {"a/b c": "v"}
    st, e = srv.api("DELETE", "/api/v1/models/Osc/tags/team")
    assert st == 404 and err(e) == "RESOURCE_DOES_NOT_EXIST"

    for i in range(5):
        create(srv, f"m{i}", tags={"even": str(i % 2 == 0).lower()})
    names, token = [], None
    while True:
        path = "/api/v1/models?page_size=2&name_prefix=m"
        if token:
            path += "&page_token=" + q(token)
        st, page = srv.api("GET", path)
        assert st == 200 and len(page["models"]) <= 2
        names += [m["name"] for m in page["models"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert names == ["m0", "m1", "m2", "m3", "m4"]
    st, page = srv.api("GET", "/api/v1/models?tag=even%3Dtrue")
    assert [m["name"] for m in page["models"]] == ["m0", "m2", "m4"]
    st, page = srv.api("GET", "/api/v1/models?name_contains=s")
    assert [m["name"] for m in page["models"]] == ["Osc"]

    st, _ = srv.api("DELETE", "/api/v1/models/m0")
    assert st == 204
    st, e = srv.api("GET", "/api/v1/models/m0")
    assert st == 404 and err(e) == "RESOURCE_DOES_NOT_EXIST"


def test_upload_versions_aliases_and_download(srv):
    create(srv, "Osc")
    osc, cart = wasm("oscillator"), wasm("cartpole")
    st, v = upload(srv, "Osc", osc, "?run_id=run-1&description=first&tag=stable")
    assert st == 201, v
    assert v["version"] == 1 and v["status"] == "READY"
    assert v["description"] == "first" and v["run_ids"] == ["run-1"]
    art = v["artifact"]
    assert art["repository"] == "models/osc"
    assert art["wasm_digest"] == sha(osc) and art["size"] == len(osc)
    assert art["descriptor"]["name"] == "oscillator"

    # The artifact is an ordinary OCI artifact, tagged v1 and "stable".
    st, _, body = srv.req("GET", "/v2/models/osc/tags/list")
    assert st == 200 and json.loads(body)["tags"] == ["stable", "v1"]
    st, h, man = srv.req("GET", "/v2/models/osc/manifests/v1",
                         headers={"Accept": MT_MANIFEST})
    assert st == 200 and h["docker-content-digest"] == art["manifest_digest"]
    assert json.loads(man)["artifactType"] == \
        "application/vnd.twin.model.v1+json"

    st, h, body = srv.req("GET", "/api/v1/models/Osc/versions/1/wasm")
    assert st == 200 and body == osc
    assert h["content-type"] == "application/wasm"
    assert h["docker-content-digest"] == sha(osc)
    st, h, body = srv.req("GET", "/api/v1/models/Osc/versions/1/wasm",
                          headers={"Range": "bytes=0-3"})
    assert st == 206 and body == b"\0asm"

    st, v2 = upload(srv, "Osc", cart, "?parent=Osc%2F1&run_id=run-2")
    assert st == 201 and v2["version"] == 2
    assert v2["parents"] == [{"model": "Osc", "version": 1}]

    st, a = srv.api("PUT", "/api/v1/models/Osc/aliases/production",
                    {"version": 1})
    assert st == 200 and a == {"alias": "production", "version": 1}
    st, v = srv.api("GET", "/api/v1/models/Osc/aliases/production")
    assert st == 200 and v["version"] == 1 and v["aliases"] == ["production"]
    st, v = srv.api("GET", "/api/v1/models/Osc/aliases/latest")
    assert st == 200 and v["version"] == 2
    # Moved, then deleted.
    st, _ = srv.api("PUT", "/api/v1/models/Osc/aliases/production",
                    {"version": 2.0})
    assert st == 200
    st, m = srv.api("GET", "/api/v1/models/Osc")
    assert m["aliases"] == {"production": 2} and m["latest_version"] == 2
    st, _ = srv.api("DELETE", "/api/v1/models/Osc/aliases/production")
    assert st == 204
    st, e = srv.api("GET", "/api/v1/models/Osc/aliases/production")
    assert st == 404 and err(e) == "RESOURCE_DOES_NOT_EXIST"
    st, e = srv.api("PUT", "/api/v1/models/Osc/aliases/x", {"version": 9})
    assert st == 404

    # Searches: by lineage, by descriptor, across models.
    st, page = srv.api("GET", "/api/v1/models/Osc/versions")
    assert [v["version"] for v in page["versions"]] == [2, 1]
    st, page = srv.api("GET", "/api/v1/versions?run_id=run-1")
    assert [(v["model"], v["version"]) for v in page["versions"]] == \
        [("Osc", 1)]
    st, page = srv.api("GET", "/api/v1/versions?descriptor=name%3Dcartpole")
    assert [v["version"] for v in page["versions"]] == [2]
    st, page = srv.api("GET", "/api/v1/versions?parent=Osc%2F1")
    assert [v["version"] for v in page["versions"]] == [2]

    # Version fields and tags.
    st, v = srv.api("PATCH", "/api/v1/models/Osc/versions/2",
                    {"status": "FAILED_REGISTRATION"})
    assert st == 200 and v["status"] == "FAILED_REGISTRATION"
    assert v["description"] == ""
    st, v = srv.api("PUT", "/api/v1/models/Osc/versions/2/tags/k", {"value": "1"})
    assert st == 200 and v["tags"] == {"k": "1"}
    st, _ = srv.api("DELETE", "/api/v1/models/Osc/versions/2/tags/k")
    assert st == 204

    # Deleted versions keep their numbers.
    st, _ = srv.api("DELETE", "/api/v1/models/Osc/versions/2")
    assert st == 204
    st, v = upload(srv, "Osc", cart)
    assert st == 201 and v["version"] == 3


def test_register_pushed_artifact(srv):
    create(srv, "osc")
    st, v = upload(srv, "osc", wasm("oscillator"), "?repository=team%2Fosc")
    assert st == 201 and v["artifact"]["repository"] == "team/osc"
    digest = v["artifact"]["manifest_digest"]
    create(srv, "copy")
    st, c = srv.api("POST", "/api/v1/models/copy/versions",
                    {"artifact": {"repository": "team/osc",
                                  "manifest_digest": digest},
                     "description": "registered", "tags": {"k": "v"},
                     "run_ids": ["r"], "parents": [{"model": "osc",
                                                    "version": 1}]})
    assert st == 201, c
    assert c["artifact"] == v["artifact"] and c["version"] == 1
    assert c["tags"] == {"k": "v"} and c["description"] == "registered"
    st, c = srv.api("POST", "/api/v1/models/copy/versions",
                    {"artifact": {"repository": "team/osc", "reference": "v1"}})
    assert st == 201 and c["artifact"]["manifest_digest"] == digest
    # A version without an artifact yet.
    st, c = srv.api("POST", "/api/v1/models/copy/versions",
                    {"status": "PENDING_REGISTRATION"})
    assert st == 201 and c["artifact"]["repository"] is None
    st, e = srv.api("GET", "/api/v1/models/copy/versions/3/wasm")
    assert st == 404 and err(e) == "RESOURCE_DOES_NOT_EXIST"

    # Not a model, not there.
    cfg = b"{}"
    st, _, _ = srv.req("POST", f"/v2/plain/blobs/uploads/?digest={sha(cfg)}",
                       cfg)
    assert st == 201
    man = json.dumps({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": {"mediaType": "application/vnd.oci.image."
                                 "config.v1+json", "digest": sha(cfg),
                                 "size": 2}, "layers": []}).encode()
    st, _, _ = srv.req("PUT", "/v2/plain/manifests/t", man,
                       {"Content-Type": MT_MANIFEST})
    assert st == 201
    st, e = srv.api("POST", "/api/v1/models/copy/versions",
                    {"artifact": {"repository": "plain", "reference": "t"}})
    assert st == 400 and "not a model" in e["error"]["message"]
    st, e = srv.api("POST", "/api/v1/models/copy/versions",
                    {"artifact": {"repository": "nope", "reference": "t"}})
    assert st == 404
    st, page = srv.api("GET", "/api/v1/models/copy/versions")
    assert len(page["versions"]) == 3


def test_bad_input_changes_nothing(srv):
    create(srv, "osc")
    cases = [
        ("POST", "/api/v1/models", b'{"name": "a b"}', "application/json",
         400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models", b'{"name": "x", "x-extra": 1}',
         "application/json", 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models", b'{"name": "x", "tags": null}',
         "application/json", 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models", b'{"name": ', "application/json", 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models", b'[]', "application/json", 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models", b'{"name": "x"}', "text/plain", 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        ("POST", "/api/v1/models?x=1", b'{"name": "x"}', "application/json",
         400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models", b'{"name": "x", "description": "\\u0001"}',
         "application/json", 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models/osc/versions", b"\0asm\1\0\0\0garbage",
         "application/wasm", 400, "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models/osc/versions", b"{}", "text/plain", 415,
         "UNSUPPORTED_MEDIA_TYPE"),
        ("POST", "/api/v1/models/osc/versions?repository=Bad",
         wasm("oscillator"), "application/wasm", 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models/osc/versions?tag=.bad",
         wasm("oscillator"), "application/wasm", 400,
         "INVALID_PARAMETER_VALUE"),
        ("POST", "/api/v1/models/nope/versions", wasm("oscillator"),
         "application/wasm", 404, "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "/api/v1/models/osc/versions?parent=osc%2F9",
         wasm("oscillator"), "application/wasm", 404,
         "RESOURCE_DOES_NOT_EXIST"),
        ("POST", "/api/v1/models/osc/versions",
         b'{"parents": [{"model": "osc", "version": 0}]}', "application/json",
         400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models/osc/versions/abc", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models/osc/versions/99999999999999999999", None,
         None, 400, "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?page_token=garbage", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?page_size=1001", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?has_alias=yes", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?alias=a&alias=b", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/versions?tag=novalue", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/versions?run_id=caf%C3%A9", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/versions?run_id=a%20b&parent=x", None, None, 400,
         "INVALID_PARAMETER_VALUE"),
        ("GET", "/api/v1/models?" + "&".join(["tag=k%d%%3Dv" % i
                                             for i in range(65)]),
         None, None, 400, "INVALID_PARAMETER_VALUE"),
        ("PUT", "/api/v1/models/osc/aliases/latest", b'{"version": 1}',
         "application/json", 400, "INVALID_PARAMETER_VALUE"),
        ("PUT", "/api/v1/models/osc/aliases/a", b'{"version": 1.5}',
         "application/json", 400, "INVALID_PARAMETER_VALUE"),
        ("PATCH", "/api/v1/models/osc", b'{}', "application/json", 400,
         "INVALID_PARAMETER_VALUE"),
        ("PATCH", "/api/v1/models/osc/versions/1", b'{"status": "DONE"}',
         "application/json", 400, "INVALID_PARAMETER_VALUE"),
        # libwebsockets would have cut the path at the %0A: "osc" is not
        # what was asked for.
        ("DELETE", "/api/v1/models/osc%0Ax", None, None, 400, "BAD_REQUEST"),
    ]
    for method, path, body, ctype, want, code in cases:
        headers = {"Content-Type": ctype} if ctype else {}
        st, _, out = srv.req(method, path, body, headers)
        assert st == want, (method, path, st, out)
        assert json.loads(out)["error"]["code"] == code, (method, path, out)
    st, m = srv.api("GET", "/api/v1/models/osc")
    assert st == 200 and m["latest_version"] is None and m["tags"] == {}
    st, page = srv.api("GET", "/api/v1/models")
    assert [m["name"] for m in page["models"]] == ["osc"]
    # The refused modules were not stored.
    st, _, _ = srv.req("GET", "/v2/models/osc/tags/list")
    assert st == 404
    st, _, _ = srv.req("GET", f"/v2/models/osc/blobs/{sha(wasm('oscillator'))}")
    assert st == 404
    # A body over the route's limit.
    # A body over the route's limit is refused from its Content-Length,
    # before it is sent.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (3 << 20))
        assert c.recv(4096).startswith(b"HTTP/1.1 413")


def test_v2_checks_model_artifacts(srv):
    """A model artifact pushed with a plain OCI client is loaded before it
    is accepted: a module the loader refuses, or a config that is not the
    module's descriptor, is MANIFEST_INVALID and nothing is tagged."""
    osc = wasm("oscillator")

    def put_blob(data):
        st, _, body = srv.req("POST", f"/v2/m/blobs/uploads/?digest={sha(data)}",
                              data)
        assert st == 201, body

    def manifest(layer, cfg):
        return json.dumps({
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "artifactType": "application/vnd.twin.model.v1+json",
            "config": {"mediaType": "application/vnd.twin.model.config.v1+json",
                       "digest": sha(cfg), "size": len(cfg)},
            "layers": [{"mediaType": "application/wasm", "digest": sha(layer),
                        "size": len(layer)}]}).encode()

    junk = b"\0asm\1\0\0\0\x01\xff"
    cfg = b'{"name": "x"}'
    for b in (osc, junk, cfg):
        put_blob(b)
    for layer, word in ((junk, "does not load"),
                        (osc, "not the descriptor")):
        st, _, body = srv.req("PUT", "/v2/m/manifests/t", manifest(layer, cfg),
                              {"Content-Type": MT_MANIFEST})
        e = json.loads(body)["errors"][0]
        assert st == 400 and e["code"] == "MANIFEST_INVALID", body
        assert word in e["detail"], e
    st, _, _ = srv.req("GET", "/v2/m/manifests/t")
    assert st == 404
    # The real descriptor passes (as the API built it).
    create(srv, "m")
    st, v = upload(srv, "m", osc, "?repository=m2")
    desc = json.dumps(v["artifact"]["descriptor"]).encode()
    put_blob(desc)
    st, _, body = srv.req("PUT", "/v2/m/manifests/t", manifest(osc, desc),
                          {"Content-Type": MT_MANIFEST})
    assert st == 201, body


def test_concurrent_uploads_number_without_gaps(srv):
    create(srv, "osc")
    data = wasm("oscillator")
    got, errors = [], []

    def one():
        st, v = upload(srv, "osc", data)
        (got if st == 201 else errors).append(v["version"] if st == 201 else v)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(got) == list(range(1, 9))


def test_sigterm_exits_zero(srv):
    assert srv.stop() == 0


def test_encoded_nul_is_refused(srv):
    """libwebsockets 4.1 refuses an encoded NUL in the request line by
    closing the connection (no response); the server goes on."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(b"DELETE /api/v1/models/a%00b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(4096) == b""
    st, page = srv.api("GET", "/api/v1/models")
    assert st == 200
