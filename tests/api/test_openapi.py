"""schemathesis (PyPI) against docs/openapi.yaml and the real `twin serve`:
requests generated from the document, valid and invalid, for every
operation and in stateful sequences (create, then read, change, delete what
was created), with every check but two: no server error, status codes,
content types, headers and bodies as documented, invalid requests
refused. Left out: positive_data_acceptance, because page tokens are
opaque (a schema-valid string is not a token the server issued) and a
PATCH naming nothing to change is refused; and unsupported_method,
because libwebsockets 4.1 answers methods it does not parse (TRACE) with
403 before the server sees them. NUL bytes are not generated: an encoded
NUL in the request line makes libwebsockets 4.1 close the connection
before any callback (a refusal without a response; test_api.py covers
it). A fixed seed and no example database (examples found by earlier runs
would change what a run tries) keep runs reproducible.

TWIN_BIN names the binary under test (set by ctest)."""
import os
import subprocess
import sys

from conftest import wasm

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                    "openapi.yaml")


def test_schemathesis_finds_nothing(srv):
    # Something for the read paths to find.
    st, _ = srv.api("POST", "/api/v1/models", {"name": "osc"})
    assert st == 201
    st, v = srv.api("POST", "/api/v1/models/osc/versions", wasm("oscillator"),
                    ctype="application/wasm")
    assert st == 201, v
    st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    r = subprocess.run(
        [st, "run", os.path.abspath(SPEC), "--url", srv.url,
         "--checks", "all",
         "--exclude-checks", "positive_data_acceptance,unsupported_method",
         "--max-examples", "25", "--seed", "20261130", "--no-color",
         "--request-timeout", "20", "--generation-allow-x00", "false",
         "--generation-database", "none"],
        capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-12000:]
    assert "19/19" in out, out[-4000:]
    assert srv.p.poll() is None, "the server died"
    assert srv.stop() == 0
