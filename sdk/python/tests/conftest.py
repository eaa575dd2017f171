"""Fixtures of the SDK's tests: the source tree, the build directory of the
library under test (its models), the `twin` CLI as an independent peer,
and WebAssembly text compiled with wat2wasm.

ctest runs these with TWIN_LIB (the library), TWIN_BIN (the CLI) and
TWIN_SOURCE_DIR set; run by hand they find an installed package or the
one in sdk/python/src, and the library as the package would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
try:
    import twin  # noqa: F401
except ImportError:
    sys.path.insert(0, str(SRC))
    import twin  # noqa: F401

SOURCE = Path(os.environ.get("TWIN_SOURCE_DIR", HERE.parents[2]))


@pytest.fixture(scope="session")
def source_dir() -> Path:
    return SOURCE


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return Path(twin.library_path()).resolve().parent


@pytest.fixture(scope="session")
def models(build_dir: Path) -> Path:
    d = build_dir / "models"
    if not (d / "oscillator.wasm").exists():
        pytest.skip(f"no example models in {d}")
    return d


@pytest.fixture(scope="session")
def twin_bin(build_dir: Path) -> str:
    b = os.environ.get("TWIN_BIN") or str(build_dir / "tools" / "twin" / "twin")
    if not os.access(b, os.X_OK):
        pytest.skip("the twin CLI is not built")
    return b


def run_cli(twin_bin: str, *args: str) -> list:
    """The JSON lines a CLI command prints (exit status 0 required)."""
    p = subprocess.run([twin_bin, *args], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def wat(tmp_path_factory: pytest.TempPathFactory):
    """Compiles a .wat file (a path or text) to .wasm bytes with wabt."""
    exe = shutil.which("wat2wasm")
    if exe is None:
        pytest.skip("wat2wasm (wabt) is not installed")
    out_dir = tmp_path_factory.mktemp("wat")

    def compile_(path: Path) -> bytes:
        out = out_dir / (path.stem + ".wasm")
        subprocess.run([exe, "--enable-all", str(path), "-o", str(out)], check=True)
        return out.read_bytes()

    return compile_


SPRING_GRAPH = """{
  "graph": 1, "name": "sd", "dt": 0.01,
  "inputs": {"F": {"size": 1, "unit": "N"}},
  "blocks": {
    "plant": {"model": "builtin:spring_damper",
              "params": {"m": 1.2, "k": 4, "c": 0.3, "x0": 1, "v0": 0.2}}
  },
  "connections": [{"from": "inputs.F", "to": "plant.F"}],
  "outputs": {"x": "plant.x", "v": "plant.v"}
}"""


@pytest.fixture
def spring() -> "twin.Graph":
    """A driven spring-damper graph (builtin blocks only)."""
    with twin.Graph.parse(SPRING_GRAPH, source="sd.json") as g:
        yield g
