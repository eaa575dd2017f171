"""`twin model build`: C sources to a checked model module with the model
SDK, as an author runs it. The SDK is found next to TWIN_BIN in the build
tree (<build>/sdk/model); clang and wasm-objdump come from the model
toolchain (scripts/bootstrap)."""
import json
import os
import re
import shutil
import subprocess

import pytest

TWIN = os.environ["TWIN_BIN"]
SOURCE = os.environ["TWIN_SOURCE_DIR"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(TWIN)))
SDK = os.path.join(BUILD, "sdk", "model")

DECAY = r"""
#include "twin_model.h"
#include "decay.h"

static const tw_model_port state[] = {
    {.name = "x", .unit = "m", .size = 1, .default_ = TW_MODEL_VALUES(1.0)}};
static const tw_model_port params[] = {
    {.name = "k", .unit = "1/s", .size = 1, .default_ = TW_MODEL_VALUES(RATE),
     .min = TW_MODEL_VALUES(0)}};

static int step(const tw_model_call *c) {
  c->x_next[0] = c->x[0] - c->dt * c->theta[0] * c->x[0];
  return TW_OK;
}
static int step_vjp(const tw_model_call *c) {
  c->gx[0] += c->gx_next[0] * (1 - c->dt * c->theta[0]);
  c->gtheta[0] += c->gx_next[0] * (-c->dt * c->x[0]);
  return TW_OK;
}
static const tw_model_def decay = {
    .name = NAME, .version = "1.0.0",
    .state = state, .nstate = TW_MODEL_COUNT(state),
    .params = params, .nparams = TW_MODEL_COUNT(params),
    .step = step, .step_vjp = step_vjp};
TW_MODEL(decay);
"""


def twin(*args, **kw):
    return subprocess.run([TWIN, *args], capture_output=True, timeout=120,
                          **kw)


def imports(path):
    out = subprocess.run(["wasm-objdump", "-x", "-j", "Import", path],
                         capture_output=True, check=True).stdout.decode()
    return re.findall(r"<- (\S+)$", out, re.M)


@pytest.fixture
def decay(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "decay.h").write_text("#define RATE 0.5\n")
    src = tmp_path / "decay.c"
    src.write_text(DECAY)
    return tmp_path, src


def test_builds_a_checked_module(decay):
    d, src = decay
    out = d / "out" / "decay.wasm"
    out.parent.mkdir()
    r = twin("model", "build", "-O2", "-I", str(d / "inc"),
             '-DNAME="decay"', str(src), "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr.decode()
    info = json.loads(r.stdout)
    assert info["output"] == str(out)
    assert info["name"] == "decay" and info["version"] == "1.0.0"
    assert info["differentiable"] is True
    assert info["size"] == out.stat().st_size
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", info["digest"])
    # A model imports nothing but the host's log.
    assert set(imports(str(out))) <= {"tw_host.log"}
    # The same module runs in the sandbox.
    r = twin("model", "run", "--steps", "2", str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert "x=[0.995" in r.stdout.decode()


def test_default_output_name_and_attached_values(decay, tmp_path):
    d, src = decay
    r = twin("model", "build", f"-I{d / 'inc'}", "-Os", "-DNAME=\"d2\"",
             str(src), cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert out.startswith("decay.wasm: model 'd2' 1.0.0, ")
    assert (tmp_path / "decay.wasm").exists()


def test_every_example_model_imports_only_tw_host():
    for name in ("oscillator", "mlp_residual", "cartpole"):
        path = os.path.join(BUILD, "models", name + ".wasm")
        assert set(imports(path)) <= {"tw_host.log"}, name


def test_compile_error_exits_1_with_the_diagnostics(tmp_path):
    src = tmp_path / "broken.c"
    src.write_text("int f(void) { return undeclared; }\n")
    out = tmp_path / "broken.wasm"
    r = twin("model", "build", str(src), "-o", str(out))
    err = r.stderr.decode()
    assert r.returncode == 1
    assert "broken.c:1:" in err and "undeclared" in err  # clang's own
    assert re.search(r"^error: EVALIDATE: the model did not compile", err,
                     re.M)
    assert not out.exists()
    r = twin("model", "build", str(src), "-o", str(out), "--json")
    assert r.returncode == 1
    assert json.loads(r.stderr.decode().splitlines()[-1])["error"]["code"] \
        == "EVALIDATE"
    assert r.stdout == b""


def test_a_module_that_imports_wasi_is_refused_and_removed(tmp_path):
    src = tmp_path / "chatty.c"
    src.write_text(DECAY.replace('#include "decay.h"',
                                 '#include <stdio.h>\n#define RATE 1\n'
                                 '#define NAME "chatty"')
                   .replace("  return TW_OK;\n}\nstatic int step_vjp",
                            '  printf("hi\\n");\n  return TW_OK;\n}\n'
                            "static int step_vjp", 1))
    out = tmp_path / "chatty.wasm"
    r = twin("model", "build", str(src), "-o", str(out))
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.startswith("error: ")
    assert "wasi_snapshot_preview1" in err
    assert not out.exists()
    r = twin("model", "build", "--no-check", str(src), "-o", str(out))
    assert r.returncode == 0
    assert "(not checked)" in r.stdout.decode()


@pytest.mark.parametrize("args,msg", [
    (["model", "build"], "missing argument: expected SOURCE.c..."),
    (["model", "build", "-O9", "x.c"], "needs 0, 1, 2, 3, s or z"),
    (["model", "build", "-q", "x.c"], "unknown option '-q'"),
    (["model", "build", "-vx", "x.c"], "unknown option '-vx'"),
])
def test_bad_usage_exits_2(args, msg):
    r = twin(*args)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("error: EUSAGE: ") and msg in err


def test_missing_source_sdk_or_compiler_exit_1(decay, tmp_path):
    d, src = decay
    r = twin("model", "build", str(tmp_path / "nope.c"))
    assert r.returncode == 1
    assert "error: ENOENT: " in r.stderr.decode()
    r = twin("model", "build", "--sdk", str(tmp_path), str(src))
    assert r.returncode == 1
    assert "is not a model SDK directory" in r.stderr.decode()
    env = dict(os.environ, TWIN_MODEL_SDK=SDK, TWIN_MODEL_CC="no-such-cc")
    r = twin("model", "build", str(src), env=env)
    assert r.returncode == 1
    assert "error: ENOENT: the compiler 'no-such-cc' was not found" in \
        r.stderr.decode()
    # A copy of twin outside the build tree finds no SDK unless told.
    lonely = tmp_path / "bin" / "twin"
    lonely.parent.mkdir()
    shutil.copy(TWIN, lonely)
    env = {k: v for k, v in os.environ.items() if k != "TWIN_MODEL_SDK"}
    r = subprocess.run([str(lonely), "model", "build", str(src)],
                       capture_output=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "TWIN_MODEL_SDK" in r.stderr.decode()
