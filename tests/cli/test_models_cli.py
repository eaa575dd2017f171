"""`twin push` with registration and `twin models list|show|alias` against
the metadata REST API of the real `twin serve` (docs/openapi.yaml): a
pushed model becomes version 1, 2, ... of a model created on the way;
lists follow page tokens to the end; show prints a model with its versions
or one version with its artifact and descriptor; aliases are set, moved
and deleted; the server's error messages reach the user with the CLI's
exit codes; --json prints the server's own objects.

TWIN_BIN names the binary under test (set by ctest)."""
import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request

import pytest

from test_registry_http import Registry

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
WASM = os.path.join(BUILD, "models", "oscillator.wasm")
WASM2 = os.path.join(BUILD, "models", "cartpole.wasm")


def api(reg, method, path, body=None):
    st, _, data = reg.req(method, path,
                          body=json.dumps(body).encode() if body is not None
                          else None,
                          headers={"Content-Type": "application/json"}
                          if body is not None else None)
    return st, json.loads(data) if data else None


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path)
    r.url = f"http://127.0.0.1:{r.port}"
    r.host = f"127.0.0.1:{r.port}"
    yield r
    if r.p.poll() is None:
        r.p.kill()
        r.p.wait()


def twin(reg, *args, env=None):
    e = dict(os.environ)
    e.pop("TWIN_SERVER", None)
    if reg is not None:
        e["TWIN_SERVER"] = reg.url
    e.update(env or {})
    return subprocess.run([TWIN, *args], capture_output=True, text=True,
                          timeout=60, env=e)


def push(reg, wasm, ref, *extra):
    r = twin(reg, "push", wasm, f"{reg.host}/{ref}", "--plain-http", *extra)
    assert r.returncode == 0, r.stderr
    return r


def test_push_registers_versions_of_a_new_model(reg):
    r = push(reg, WASM, "models/osc:v1")
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf"pushed {reg.host}/models/osc:v1 sha256:[0-9a-f]{{64}}",
                        lines[0]), lines
    assert lines[1:] == ["registered osc version 1"]
    d1 = lines[0].rsplit(" ", 1)[1]
    r = push(reg, WASM2, "models/osc:v2", "--json")
    v = json.loads(r.stdout)
    assert v["registry"] == reg.host and v["repository"] == "models/osc"
    assert v["tag"] == "v2" and v["model"] == "osc" and v["version"] == 2
    st, ver = api(reg, "GET", "/api/v1/models/osc/versions/1")
    assert st == 200
    assert ver["artifact"]["repository"] == "models/osc"
    assert ver["artifact"]["manifest_digest"] == d1
    assert ver["artifact"]["descriptor"]["name"] == "oscillator"
    # --model names another model; --no-register registers nothing.
    r = push(reg, WASM, "team/osc:v1", "--model", "Oscillator.Prod")
    assert r.stdout.splitlines()[1] == "registered Oscillator.Prod version 1"
    push(reg, WASM, "team/other:v1", "--no-register")
    st, _ = api(reg, "GET", "/api/v1/models/other")
    assert st == 404


def test_push_with_a_bad_model_name_keeps_the_push(reg):
    r = twin(reg, "push", WASM, f"{reg.host}/models/osc:v1", "--plain-http",
             "--model", "-bad")
    assert r.returncode == 1
    assert r.stdout.startswith(f"pushed {reg.host}/models/osc:v1 ")
    assert r.stderr.startswith("error: EINVAL: ")
    st, _, _ = reg.req("GET", "/v2/models/osc/manifests/v1")
    assert st == 200


def test_list_show_and_aliases(reg):
    push(reg, WASM, "models/osc:v1")
    push(reg, WASM2, "models/osc:v2")
    push(reg, WASM2, "models/cartpole:v1")
    st, _ = api(reg, "POST", "/api/v1/models",
                {"name": "empty", "description": "nothing yet\nsecond line"})
    assert st == 201

    r = twin(reg, "models", "alias", "osc", "production", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "alias production of osc -> version 1\n"
    assert twin(reg, "models", "alias", "osc", "staging", "2").returncode == 0

    r = twin(reg, "models", "list")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["NAME", "LATEST", "ALIASES", "DESCRIPTION"]
    assert rows[1:] == [["cartpole", "1", "-"],
                        ["empty", "-", "-", "nothing", "yet..."],
                        ["osc", "2", "production=1,staging=2"]]
    r = twin(reg, "models", "list", "--prefix", "os")
    assert [line.split()[0] for line in r.stdout.splitlines()] == \
        ["NAME", "osc"]

    r = twin(reg, "models", "list", "--json")
    assert r.returncode == 0, r.stderr
    _, page = api(reg, "GET", "/api/v1/models")
    assert json.loads(r.stdout) == {"models": page["models"]}

    r = twin(reg, "models", "show", "osc")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "name:         osc\n" in out and "latest:       2\n" in out
    assert "aliases:      production=1, staging=2\n" in out
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["VERSION", "STATUS", "ALIASES", "SIZE",
                                "CREATED", "MANIFEST", "DESCRIPTION"]
    assert [row.split()[:4] for row in table[1:]] == [
        ["2", "READY", "staging", str(os.path.getsize(WASM2))],
        ["1", "READY", "production", str(os.path.getsize(WASM))]]

    r = twin(reg, "models", "show", "osc/1")
    assert r.returncode == 0, r.stderr
    f = dict(re.match(r"^\s*([a-z ]+):\s+(.*)$", line).groups()
             for line in r.stdout.splitlines())
    assert f["model"] == "osc" and f["version"] == "1"
    assert f["status"] == "READY" and f["repository"] == "models/osc"
    assert f["size"] == str(os.path.getsize(WASM))
    assert f["aliases"] == "production" and f["parents"] == "-"
    assert f["descriptor"] == "oscillator 1.0.0"
    assert f["inputs"] == "F [N]" and f["outputs"] == "x [m]"
    assert f["params"] == "m [kg], k [N/m], c [N*s/m]"

    for ref, version in (("osc@production", 1), ("osc@latest", 2),
                         ("models:/osc/2", 2)):
        r = twin(reg, "models", "show", ref, "--json")
        assert r.returncode == 0, (ref, r.stderr)
        st, want = api(reg, "GET", f"/api/v1/models/osc/versions/{version}")
        assert json.loads(r.stdout) == want, ref
    r = twin(reg, "models", "show", "osc", "--json")
    _, want = api(reg, "GET", "/api/v1/models/osc")
    assert json.loads(r.stdout) == want

    # Moved, then deleted.
    assert twin(reg, "models", "alias", "osc", "production",
                "2").returncode == 0
    st, v = api(reg, "GET", "/api/v1/models/osc/aliases/production")
    assert st == 200 and v["version"] == 2
    r = twin(reg, "models", "alias", "--delete", "osc", "production")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "deleted alias production of osc\n"
    r = twin(reg, "models", "show", "osc@production")
    assert r.returncode == 1 and r.stderr.startswith("error: ENOENT: ")
    assert "production" in r.stderr


def test_list_follows_every_page(reg):
    for i in range(230):
        st, _ = api(reg, "POST", "/api/v1/models", {"name": f"m{i:03d}"})
        assert st == 201
    r = twin(reg, "models", "list", "--json")
    assert r.returncode == 0, r.stderr
    names = [m["name"] for m in json.loads(r.stdout)["models"]]
    assert names == [f"m{i:03d}" for i in range(230)]
    r = twin(reg, "models", "list")
    assert len(r.stdout.splitlines()) == 231


def test_errors_carry_the_servers_message(reg):
    r = twin(reg, "models", "show", "nope")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ENOENT: ") and "nope" in r.stderr
    push(reg, WASM, "models/osc:v1")
    r = twin(reg, "models", "show", "osc/9")
    assert r.returncode == 1 and r.stderr.startswith("error: ENOENT: ")
    r = twin(reg, "models", "alias", "osc", "production", "9")
    assert r.returncode == 1 and r.stderr.startswith("error: ENOENT: ")
    r = twin(reg, "models", "alias", "osc", "latest", "1")
    assert r.returncode == 1 and r.stderr.startswith("error: EINVAL: ")
    assert "latest" in r.stderr
    r = twin(reg, "models", "show", "osc", "--json")
    assert r.returncode == 0
    r = twin(reg, "models", "show", "nope", "--json")
    assert r.returncode == 1 and r.stdout == ""
    assert json.loads(r.stderr)["error"]["code"] == "ENOENT"


@pytest.mark.parametrize("args", [
    ["models", "show", "osc/abc"],
    ["models", "show", "osc/0"],
    ["models", "show", "osc@"],
    ["models", "alias", "osc", "production"],
    ["models", "alias", "osc", "production", "x"],
    ["models", "alias", "--delete", "osc", "production", "1"],
    ["models", "list", "--server", "ftp://example.org"],
])
def test_usage_errors(args):
    r = twin(None, *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: EUSAGE: ")


def test_the_server_from_option_environment_or_default(reg):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    dead = f"http://127.0.0.1:{port}"
    r = twin(None, "models", "list", env={"TWIN_SERVER": dead})
    assert r.returncode == 1 and r.stderr.startswith("error: ECONN: ")
    assert f"{dead}/api/v1/models" in r.stderr
    # --server wins over the environment, and a trailing '/' is harmless.
    r = twin(None, "models", "list", "--server", reg.url + "/",
             env={"TWIN_SERVER": dead})
    assert r.returncode == 0, r.stderr
    r = twin(None, "models", "list")
    if r.returncode != 0:
        assert "http://127.0.0.1:8080/api/v1/models" in r.stderr
