"""The package: where the library is found, installing it with pip, and
the exception classes the C codes map to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import twin
from twin import _native


def test_library_loads_and_is_twin() -> None:
    path = twin.library_path()
    assert Path(path).name.startswith("libtwin.so")
    assert twin.alloc_live() >= 0


def test_twin_lib_names_a_file_or_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = Path(twin.library_path())
    monkeypatch.setenv("TWIN_LIB", str(lib))
    assert _native.find_library() == str(lib)
    monkeypatch.setenv("TWIN_LIB", str(lib.parent))
    assert _native.find_library() == str(lib.parent / "libtwin.so")
    monkeypatch.setenv("TWIN_LIB", str(lib.parent / "nope.so"))
    with pytest.raises(OSError, match="TWIN_LIB"):
        _native.find_library()


def test_build_directories_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake source tree: build/default first, then the newest other build;
    # sanitizer and fuzzing builds are never picked.
    (tmp_path / "include" / "twin").mkdir(parents=True)
    (tmp_path / "include" / "twin" / "twin.h").write_text("")
    for name, cache in (("default", ""), ("old", ""), ("new", ""),
                        ("asan", "TW_SANITIZE:BOOL=ON\n"), ("fuzz", "TW_FUZZ:BOOL=ON\n")):
        d = tmp_path / "build" / name
        d.mkdir(parents=True)
        (d / "libtwin.so").write_text("")
        (d / "CMakeCache.txt").write_text(cache)
    os.utime(tmp_path / "build" / "old" / "libtwin.so", (1, 1))
    monkeypatch.setattr(_native, "_source_roots", lambda: [tmp_path])
    got = [p.parent.name for p in _native.candidates() if p.parent.name != "twin"]
    assert got == ["default", "new", "old"]
    monkeypatch.delenv("TWIN_LIB", raising=False)
    monkeypatch.setattr(_native, "__file__", str(tmp_path / "pkg" / "_native.py"))
    assert _native.find_library() == str(tmp_path / "build" / "default" / "libtwin.so")


def test_pip_install_finds_the_library_of_its_source_tree(tmp_path: Path,
                                                          source_dir: Path) -> None:
    # A non-editable install, offline, with the venv's setuptools: the
    # installed package records its source tree and loads a library built
    # there without TWIN_LIB.
    pytest.importorskip("setuptools")
    target = tmp_path / "site"
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
         "--no-deps", "--no-index", "--disable-pip-version-check",
         "--target", str(target), str(source_dir / "sdk" / "python")],
        capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert (target / "twin" / "_build_info.py").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("TWIN_LIB", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    code = ("import twin, sys; p = twin.library_path(); print(twin.__file__); print(p);"
            "g = twin.Graph.parse('{\"graph\": 1, \"dt\": 0.1, \"blocks\": {\"i\": "
            "{\"model\": \"builtin:integrator\"}}, \"outputs\": {\"y\": \"i.y\"}}');"
            "print(g.run(3)['y'].tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=False)
    if out.returncode != 0 and "libtwin.so not found" in out.stderr:
        pytest.skip("no uninstrumented build of the library in the source tree")
    assert out.returncode == 0, out.stderr
    pkg, lib, values = out.stdout.splitlines()
    assert pkg.startswith(str(target))
    assert Path(lib).resolve().is_relative_to(source_dir.resolve() / "build")
    assert values == "[0.0, 0.0, 0.0]"


@pytest.mark.parametrize("code,cls", [
    (-22, twin.ValidationError), (-15, twin.ModelTrap), (-12, twin.LimitExceeded),
    (-13, twin.LimitExceeded), (-3, twin.NotFoundError), (-2, twin.InvalidArgument),
    (-6, twin.ParseError), (-11, twin.NotSupported), (-5, twin.TwinError),
])
def test_codes_map_to_classes(code: int, cls: type) -> None:
    from twin.errors import error_for

    e = error_for(code, "what happened")
    assert type(e) is cls
    assert e.code == code and e.message == "what happened"
    assert str(e).startswith(e.name + ": ")
    assert isinstance(e, twin.TwinError)


def test_not_found_is_also_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        twin.Graph.load(tmp_path / "missing.json")


def test_the_calibration_example_fits(source_dir: Path, tmp_path: Path) -> None:
    example = source_dir / "sdk" / "python" / "examples" / "calibrate_oscillator.py"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(twin.__file__).parent.parent), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, str(example), "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0, p.stderr
    last = [line for line in p.stdout.splitlines() if line.startswith("fitted")][0]
    k = float(last.split("k = ")[1].split()[0])
    c = float(last.split("c = ")[1].split()[0])
    assert abs(k - 5) < 0.01 and abs(c - 0.4) < 0.005, last
    assert (tmp_path / "truth.mcap").exists()
