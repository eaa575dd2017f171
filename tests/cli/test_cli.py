"""The `twin` CLI as a user sees it: dispatch, help, usage errors, exit
codes 0/1/2, --json output, and the commands that exist so far.

TWIN_BIN names the binary under test (set by ctest)."""
import hashlib
import json
import os
import re
import subprocess

import pytest

TWIN = os.environ["TWIN_BIN"]


def twin(*args, stdin=None, **kw):
    return subprocess.run([TWIN, *args], input=stdin, capture_output=True,
                          timeout=60, **kw)


def text(r):
    return r.stdout.decode(), r.stderr.decode()


def test_version():
    r = twin("--version")
    out, err = text(r)
    assert r.returncode == 0
    assert re.fullmatch(r"twin \d+\.\d+\.\d+ \(libtwin \d+\.\d+\.\d+\)\n", out)
    assert err == ""
    r = twin("version", "--json")
    assert r.returncode == 0
    v = json.loads(r.stdout)
    assert v["version"] == v["library"]


def test_unknown_command_is_usage_error():
    r = twin("frobnicate")
    out, err = text(r)
    assert r.returncode == 2
    assert out == ""
    assert err.startswith("error: EUSAGE: unknown command 'frobnicate'\n")
    assert "usage: twin" in err


def test_suggestion_for_near_miss():
    r = twin("blbo", "digest")
    assert r.returncode == 2
    assert "did you mean 'blob'" in r.stderr.decode()
    r = twin("blob", "digets", "x")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "unknown command 'blob digets'" in err and "did you mean 'digest'" in err
    assert "verbs of 'blob'" in err


def test_noun_without_verb():
    r = twin("blob")
    assert r.returncode == 2
    assert "'blob' needs a verb" in r.stderr.decode()


def test_no_command():
    r = twin()
    assert r.returncode == 2
    assert "no command given" in r.stderr.decode()


@pytest.mark.parametrize("args,msg", [
    (["blob", "digest", "--frob", "x"], "unknown option '--frob'"),
    (["blob", "digest", "-q", "x"], "unknown option '-q'"),
    (["blob", "digest", "--json=yes", "x"], "option '--json' takes no value"),
    (["blob", "digest"], "missing argument: expected FILE..."),
    (["version", "extra"], "unexpected argument 'extra'"),
    (["--threads", "many", "version"], "needs an integer"),
    (["--threads"], "needs a value"),
    (["--log-level", "loud", "version"], "unknown log level 'loud'"),
    (["--log-format", "xml", "version"], "unknown log format 'xml'"),
    (["--bogus", "version"], "unknown global option '--bogus'"),
])
def test_bad_flags_exit_2_with_usage(args, msg):
    r = twin(*args)
    out, err = text(r)
    assert r.returncode == 2, err
    assert out == ""
    assert err.startswith("error: EUSAGE: ")
    assert msg in err
    assert "usage: twin" in err


def test_help_lists_every_command():
    r = twin("help")
    out, _ = text(r)
    assert r.returncode == 0
    for cmd in ("help", "version", "blob digest", "sim bench", "system info"):
        assert re.search(r"^  " + re.escape(cmd) + r"\s", out, re.M), cmd
    assert "Exit status: 0 success, 1 the work failed, 2 bad usage." in out
    assert twin("--help").stdout == r.stdout


def test_help_for_one_command_matches_dash_help():
    a = twin("help", "blob", "digest")
    b = twin("blob", "digest", "--help")
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout
    out = a.stdout.decode()
    assert out.startswith("usage: twin blob digest [options] FILE...\n")
    assert "--json" in out
    r = twin("help", "blob")
    assert r.returncode == 0 and "digest" in r.stdout.decode()
    r = twin("help", "nope")
    assert r.returncode == 2


def test_digest_matches_hashlib(tmp_path):
    files = []
    for i, size in enumerate([0, 1, 65535, 65536, 65537, 1 << 20]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(size))
        files.append(p)
    r = twin("blob", "digest", *map(str, files))
    assert r.returncode == 0, r.stderr
    want = "".join(f"sha256:{hashlib.sha256(p.read_bytes()).hexdigest()}  {p}\n"
                   for p in files)
    assert r.stdout.decode() == want
    # Same answer whatever the thread count.
    for threads in ("1", "2", "7"):
        r2 = twin("--threads", threads, "blob", "digest", *map(str, files))
        assert r2.stdout == r.stdout


def test_digest_json_and_stdin(tmp_path):
    p = tmp_path / "a b.txt"
    p.write_bytes(b"abc")
    r = twin("blob", "digest", "--json", str(p))
    assert r.returncode == 0
    v = json.loads(r.stdout)
    assert v == [{"path": str(p), "size": 3, "digest":
                  "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]
    r = twin("blob", "digest", "-", stdin=b"abc")
    assert r.stdout.decode().startswith("sha256:ba7816bf")


def test_digest_missing_file_reports_and_keeps_others(tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"x")
    missing = tmp_path / "missing"
    r = twin("blob", "digest", str(missing), str(good), str(tmp_path))
    out, err = text(r)
    assert r.returncode == 1
    assert out == f"sha256:{hashlib.sha256(b'x').hexdigest()}  {good}\n"
    assert f"error: ENOENT: " in err and str(missing) in err
    assert "No such file or directory" in err
    assert f"error: EINVAL: {tmp_path}: read failed: Is a directory" in err
    r = twin("blob", "digest", "--json", str(missing))
    assert r.returncode == 1
    e = json.loads(r.stderr.decode().splitlines()[0])
    assert e["error"]["code"] == "ENOENT" and str(missing) in e["error"]["message"]
    assert json.loads(r.stdout) == []


def test_metrics_out_is_prometheus_text(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"hello")
    m = tmp_path / "metrics.prom"
    r = twin("--metrics-out", str(m), "blob", "digest", str(p))
    assert r.returncode == 0
    body = m.read_text()
    assert "# TYPE twin_blob_digest_bytes_total counter" in body
    assert "twin_blob_digest_bytes_total 5" in body
    assert 'twin_blob_digest_files_total{result="ok"} 1' in body
    assert "twin_blob_digest_seconds_count 1" in body
    assert "process_cpu_seconds_total" in body
    check = subprocess.run(["promtool", "check", "metrics"], input=m.read_bytes(),
                           capture_output=True, timeout=60)
    assert check.returncode == 0 and check.stdout == b"" and check.stderr == b"", check
    r = twin("--metrics-out", str(tmp_path / "no" / "dir.prom"), "version")
    assert r.returncode == 1
    assert "cannot create a temporary file" in r.stderr.decode()


def test_system_info_json():
    r = twin("--threads", "3", "system", "info", "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["threads"] == 3
    assert v["cpus"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", v["time"])
    r = twin("system", "info")
    assert r.returncode == 0 and r.stdout.decode().startswith("twin ")


def test_log_lines_go_to_stderr_as_json(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"1")
    r = twin("--log-level", "info", "--log-format", "json", "blob", "digest", str(p))
    assert r.returncode == 0
    lines = [json.loads(l) for l in r.stderr.decode().splitlines()]
    assert any(l["msg"] == "digested 1 file(s)" and l["level"] == "info"
               and l["sub"] == "blob" for l in lines), lines


def test_closed_stdout_is_a_failure_not_a_signal(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"1")
    with open("/dev/full", "w") as full:
        r = subprocess.run([TWIN, "blob", "digest", str(p)], stdout=full,
                           stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 1
    assert "cannot write the output" in r.stderr.decode()


def test_sim_bench_chain1d_matches_the_reference_values():
    # BENCHMARKS.md quotes B1-M's loss and dL/dk0; every schedule must give
    # them, and the same bits as each other.
    rows = []
    for sched in ("all", "periodic:64", "revolve:12"):
        r = twin("sim", "bench", "chain1d", "--size", "M", "--schedule", sched,
                 "--repeat", "1", "--json")
        assert r.returncode == 0, r.stderr
        row = json.loads(r.stdout)
        for key in ("bench", "size", "impl", "dtype", "forward_ms", "grad_ms",
                    "ratio", "peak_bytes", "loss", "dL_dk0", "schedule"):
            assert key in row, key
        assert row["schedule"] == sched
        assert abs(row["loss"] - 3.0053672278) < 5e-11
        assert abs(row["dL_dk0"] - -5.985661547881e-04) < 5e-16
        rows.append(row)
    assert len({(r["loss"], r["dL_dk0"]) for r in rows}) == 1
    assert rows[2]["peak_bytes"] < rows[1]["peak_bytes"] < rows[0]["peak_bytes"]


@pytest.mark.parametrize("args,msg", [
    (["sim", "bench", "chain2d"], "unknown benchmark 'chain2d'"),
    (["sim", "bench", "chain1d", "--size", "XL"], "unknown size 'XL'"),
    (["sim", "bench", "chain1d", "--schedule", "revolve:0"], "too small"),
    (["sim", "bench", "chain1d", "--schedule", "binomial:4"], "binomial:4"),
    (["sim", "bench", "chain1d", "--repeat", "0"], "--repeat must be at least 1"),
    (["sim", "bench"], "missing argument"),
])
def test_sim_bench_bad_usage(args, msg):
    r = twin(*args)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("error: EUSAGE: ") and msg in err, err


# B2/B3 reference losses printed by the JAX peers (bench/ad/peers/
# mass_spring_jax.py: "loss", i.e. losses[0], and robot_jax.py: "loss", the
# loss at SPEC.md's SplitMix64 initial weights), run on this machine with
# jax 0.10.2; bench/ad/run checks Twin against them to 1e-9 relative.
B2_JAX_LOSS0 = 0.009026401980039888
B3_JAX_LOSS0 = -0.26960140076975064


def rel(a, b):
    return abs(a - b) / abs(b)


def sim_bench_row(bench, *extra):
    r = twin("sim", "bench", bench, "--repeat", "1", "--json", *extra)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    for key in ("bench", "impl", "dtype", "forward_ms", "grad_ms", "ratio",
                "peak_bytes", "loss", "schedule"):
        assert key in row, key
    assert row["bench"] == bench and row["impl"] == "twin"
    assert row["dtype"] == "f64"
    return row


def test_sim_bench_mass_spring_simple_matches_jax():
    rows = [sim_bench_row("mass_spring_simple", "--schedule", s)
            for s in ("all", "revolve:8")]
    for row in rows:
        assert rel(row["loss"], B2_JAX_LOSS0) <= 1e-9
        assert len(row["dL_drest"]) == 3 and len(row["rest_final"]) == 3
        assert len(row["losses"]) == 25 and row["losses"][0] == row["loss"]
        # Gradient descent on the rest lengths lowers the loss every step.
        assert all(b < a for a, b in zip(row["losses"], row["losses"][1:]))
    assert rows[1]["schedule"] == "revolve:8"
    # Every schedule gives the same bits.
    assert rows[0]["losses"] == rows[1]["losses"]
    assert rows[0]["dL_drest"] == rows[1]["dL_drest"]
    assert rows[1]["peak_bytes"] < rows[0]["peak_bytes"]


def test_sim_bench_mass_spring_robot_matches_jax():
    row = sim_bench_row("mass_spring")
    assert row["schedule"] == "all"
    assert rel(row["loss"], B3_JAX_LOSS0) <= 1e-9
    for key in ("grad_l2", "dL_db2_0", "loss_after_20"):
        assert isinstance(row[key], float), key
    assert row["grad_l2"] > 0
    assert len(row["losses"]) == 21
    assert row["losses"][0] == row["loss"]
    assert row["losses"][20] == row["loss_after_20"]


@pytest.mark.parametrize("args,msg", [
    (["sim", "bench", "mass_spring3"], "unknown benchmark 'mass_spring3'"),
    (["sim", "bench", "mass_spring", "--size", "S"],
     "--size applies to chain1d only"),
    (["sim", "bench", "mass_spring_simple", "--schedule", "revolve:0"],
     "too small"),
    (["sim", "bench", "mass_spring", "--repeat", "0"],
     "--repeat must be at least 1"),
])
def test_sim_bench_mass_spring_bad_usage(args, msg):
    r = twin(*args)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("error: EUSAGE: ") and msg in err, err
