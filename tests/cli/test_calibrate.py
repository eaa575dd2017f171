"""`twin calibrate` as a user runs it: the demo twin (models/demo, built
with its recordings into <build>/models) is fitted with L-BFGS: the mass
and stiffness come back within 5% of the truth, the residual learns the
friction (its force against the recording's /truth/friction), the
held-out loss falls, and --out / --report write a parameter file the twin
runs with and a report. Bad input gets its cause named: a twin without
calibrate:, a recording without the loss channel, L-BFGS without bounds,
a bad option, a run that diverges (best parameters kept and written).

TWIN_BIN names the binary under test (set by ctest)."""
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

TWIN = os.environ["TWIN_BIN"]
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(TWIN))))
MODELS = os.path.join(BUILD, "models")
DEMO = os.path.join(MODELS, "demo.yaml")
DATA = os.path.join(MODELS, "data", "demo")
GEN = os.path.join(MODELS, "demo", "gen_demo")


def twin(*args):
    return subprocess.run([TWIN, *args], capture_output=True, text=True,
                          timeout=600, cwd=MODELS)


def variant(tmp_path, edit):
    """A copy of the demo twin next to the models, edited."""
    text = open(DEMO).read()
    path = os.path.join(MODELS, f"demo-test-{os.getpid()}-{tmp_path.name}.yaml")
    with open(path, "w") as f:
        f.write(edit(text))
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    r = twin("calibrate", DEMO, "--json", "--out", str(d / "fitted.yaml"),
             "--report", str(d / "report"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    return d, rows


def test_demo_fit_recovers_the_physics(fitted):
    d, rows = fitted
    iters = [x for x in rows if "iteration" in x]
    result = rows[-1]
    assert result["result"] == "ok" and result["optimizer"] == "lbfgs"
    assert [x["iteration"] for x in iters] == list(
        range(1, len(iters) + 1))
    assert result["iterations"] == len(iters)
    params = {p["name"]: p for p in result["parameters"]}
    truth = json.load(open(os.path.join(DATA, "truth.json")))
    for name, true in (("plant.m", truth["m"]), ("plant.k", truth["k"])):
        p = params[name]
        assert p["true"] == true
        assert abs(p["fitted"][0] - true) / true < 0.05, p
        assert abs(p["initial"][0] - true) / true > 0.2
    assert len(params["residual.W1"]["fitted"]) == 32
    # The loss reaches the sensor's noise floor, on held-out data too.
    noise = truth["noise"] ** 2
    assert result["loss"] < 1.2 * noise < result["loss_initial"]
    assert result["validation"]["loss"] < 1.2 * noise
    assert result["validation"]["loss_initial"] > 100 * noise


def test_fitted_twin_runs_and_the_residual_is_the_friction(fitted, tmp_path):
    d, _ = fitted
    overlay = (d / "fitted.yaml").read_text()
    assert re.search(r"^plant:\n  m: [0-9.e+-]+\n  k: ", overlay, re.M)
    run = tmp_path / "run.mcap"
    r = twin("compose", "up", DEMO, "-p", str(d / "fitted.yaml"), "--trace",
             str(run))
    assert r.returncode == 0, r.stderr
    c = subprocess.run([GEN, "--compare", str(run),
                        os.path.join(DATA, "train.mcap")],
                       capture_output=True, text=True, check=True)
    cmp = json.loads(c.stdout)
    assert cmp["rms_measured_mm"] < 2.0
    assert cmp["rms_residual_vs_friction_N"] < 0.1 * cmp["rms_friction_N"]
    report = (d / "report" / "report.md").read_text()
    assert "| plant.k |" in report and "validation" in report
    for svg in ("loss.svg", "trajectories.svg"):
        text = (d / "report" / svg).read_text()
        assert text.startswith("<svg") and "<polyline" in text
        # Well-formed, with labelled ticks on both axes.
        labels = [t.text or "" for t in
                  ET.fromstring(text).iter("{http://www.w3.org/2000/svg}text")]
        ticks = [float(x) for x in labels if re.fullmatch(r"-?[0-9.e+-]+", x)]
        assert len(ticks) >= 6, labels
    loss = (d / "report" / "loss.svg").read_text()
    # The loss falls over decades: its axis is labelled in whole decades,
    # down to the noise floor's (2.25e-6).
    decades = [int(x) for x in re.findall(r">1e(-?[0-9]+)<", loss)]
    assert len(decades) >= 3 and min(decades) <= -6, decades
    traj = (d / "report" / "trajectories.svg").read_text()
    # The time axis spans the 30 s recording.
    assert re.search(r">(25|30)</text>", traj) and "time (s)" in traj
    assert ">plant.x (m)</text>" in traj


def test_bad_input(tmp_path):
    # A twin without calibrate:.
    r = twin("calibrate", os.path.join(MODELS, "spring_damper.yaml"))
    assert r.returncode == 1
    assert "has no calibrate: section" in r.stderr
    # A recording without the loss channel.
    r = twin("calibrate", DEMO, "--data",
             os.path.join(MODELS, "data", "rig.mcap"))
    assert r.returncode == 1
    assert "has no channel '/measured/x'" in r.stderr
    # Options.
    r = twin("calibrate", DEMO, "--optimizer", "newton")
    assert r.returncode == 2 and "lbfgs, adam or gd" in r.stderr
    r = twin("calibrate", DEMO, "--iters", "0")
    assert r.returncode == 2
    # L-BFGS and a parameter without bounds.
    path = variant(tmp_path, lambda t: t.replace(
        "    plant.k: {min: 0.5, max: 50}",
        "    plant.k: {min: 0.5, max: 50}\n    plant.x0: {}"))
    try:
        r = twin("calibrate", path)
        assert r.returncode == 1
        assert "plant.x0 has no bounds" in r.stderr
    finally:
        os.unlink(path)


def test_a_diverging_run_keeps_the_best(tmp_path):
    path = variant(tmp_path, lambda t: t.replace(
        "plant.k: {min: 0.5, max: 50}", "plant.k: {min: 0.5, max: 1e12}")
        .replace("optimizer: lbfgs", "optimizer: gd\n  learning_rate: 1e12"))
    out = tmp_path / "best.yaml"
    try:
        r = twin("calibrate", path, "--iters", "20", "--out", str(out))
    finally:
        os.unlink(path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "non-finite" in r.stderr or "NaN" in r.stderr or "inf" in r.stderr
    assert "best parameters so far" in r.stderr
    assert "plant.k" in r.stdout  # the table of the best point
    assert out.exists() and "k: " in out.read_text()
