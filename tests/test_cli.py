"""The command line, run as a user would (a subprocess): bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import BASELINE, ROOT, SMALL

SMALL_SET = [arg for o in SMALL for arg in ("--set", o)]


def sim(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "sim", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def assert_user_error(result: subprocess.CompletedProcess, out, *names: str) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sim: error: ")
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temporary folders
    return lines[0]


def child(tmp_path, body: str):
    path = tmp_path / "scenario.toml"
    path.write_text(f'extends = "{BASELINE}"\n{body}')
    return path


def test_missing_scenario_file(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "no_such.toml"
    assert_user_error(sim("run", missing, "--out", out), out, missing)


def test_malformed_toml(tmp_path):
    out = tmp_path / "out"
    path = tmp_path / "broken.toml"
    path.write_text('extends = "x.toml"\n[justice\np_recall_per_month = 0.1\n')
    line = assert_user_error(sim("run", path, "--out", out), out, path)
    assert "malformed" in line.lower() or "toml" in line.lower()


@pytest.mark.parametrize(
    "body,names",
    [
        ("[justice]\np_recal_per_month = 0.1\n", ["justice.p_recal_per_month", "unknown key"]),
        ('[justice]\np_recall_per_month = "high"\n', ["justice.p_recall_per_month", "high"]),  # wrong type
        ("[justice]\np_recall_per_month = 1.5\n", ["justice.p_recall_per_month", "1.5"]),  # probability > 1
        ("[justice]\np_recall_per_month = -0.2\n", ["justice.p_recall_per_month", "-0.2"]),  # probability < 0
        ("[population]\ncustody_count = -10\n", ["population.custody_count", "-10"]),  # negative count
        ("[run]\nseed = 2.5\n", ["run.seed", "2.5"]),
    ],
    ids=["unknown-key", "wrong-type", "prob-above-1", "prob-below-0", "negative-count", "fractional-seed"],
)
def test_bad_value_in_scenario_file(tmp_path, body, names):
    out = tmp_path / "out"
    path = child(tmp_path, body)
    assert_user_error(sim("run", path, "--out", out, "--years", "1"), out, path, *names)


@pytest.mark.parametrize(
    "setting,names",
    [
        ("justice.p_recall_per_month=2", ["--set", "justice.p_recall_per_month", "2"]),
        ("population.custody_count=-1", ["--set", "population.custody_count", "-1"]),
        ("justice.no_such_key=1", ["--set", "justice.no_such_key"]),
        ("justice_p_recall=0.1", ["justice_p_recall"]),
    ],
)
def test_bad_set(tmp_path, setting, names):
    out = tmp_path / "out"
    assert_user_error(sim("run", BASELINE, "--out", out, "--set", setting), out, *names)


@pytest.mark.parametrize(
    "args,names",
    [(["--years", "0"], ["--years", "0"]), (["--years", "ten"], ["--years", "ten"]), (["--seed", "-1"], ["--seed", "-1"])],
)
def test_bad_arguments(tmp_path, args, names):
    out = tmp_path / "out"
    assert_user_error(sim("run", BASELINE, "--out", out, *args), out, *names)


def test_out_is_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    result = sim("run", BASELINE, "--out", out, "--years", "1", *SMALL_SET)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and str(out) in result.stderr
    assert out.read_text() == "a file"


def test_run_writes_outputs_with_set_and_extends_precedence(tmp_path):
    """A child scenario overrides the baseline; --set and --years override the child; the manifest records it."""
    path = child(tmp_path, "[justice]\np_recall_per_month = 0.123\np_recall_on_conviction = 0.321\n")
    out = tmp_path / "out"
    result = sim("run", path, "--years", "1", "--out", out, "--events", "--seed", "3",
                 "--set", "justice.p_recall_per_month=0.234", *SMALL_SET)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["months"] == 12
    justice = manifest["parameters"]["justice"]
    assert justice["p_recall_per_month"] == 0.234  # --set beats the file
    assert justice["p_recall_on_conviction"] == 0.321  # the file beats the baseline
    assert manifest["parameters"]["population"]["scale_general"] == 300
    assert {"people.parquet", "events.parquet", "timeseries.parquet"} <= {p.name for p in out.iterdir()}
    assert len(pd.read_parquet(out / "timeseries.parquet")) == 12


def test_same_seed_same_outputs_across_processes(tmp_path):
    """Reproducible across interpreter runs (string hashing is randomised per process)."""
    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"out{hash_seed}"
        r = sim("run", BASELINE, "--years", "1", "--out", out, "--events", "--seed", "5", *SMALL_SET,
                env_extra={"PYTHONHASHSEED": hash_seed})
        assert r.returncode == 0, r.stderr
        outs.append(out)
    for name in ("timeseries.parquet", "events.parquet", "people.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(outs[0] / name), pd.read_parquet(outs[1] / name))
    assert len(pd.read_parquet(outs[0] / "events.parquet")) > 0


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["run", str(BASELINE), "--set", "justice.no_such_key=1"],
    ["run", str(BASELINE), "--years", "1", "--out", "{existing}"],
    ["compare", str(BASELINE), str(ROOT / "scenarios" / "multi_agency.toml"), "--set", "intervention.coverage=2"],
    ["compare", str(BASELINE), str(ROOT / "scenarios" / "multi_agency.toml"), "--years", "1", "--out", "{existing}"],
    ["compare", str(BASELINE), str(ROOT / "scenarios" / "multi_agency.toml"), str(ROOT / "scenarios" / "multi_agency_lifetime.toml"),
     "--years", "1", "--out", "{existing}"],
    ["sweep", str(ROOT / "scenarios" / "multi_agency.toml"), "--set", "intervention.coverage=2,3"],
], ids=["help", "run-bad-key", "run-out-exists", "compare-bad-value", "compare-out-exists", "portfolio-out-exists",
        "sweep-bad-value"])
def test_help_and_refusals_answer_before_the_model_is_imported(tmp_path, argv):
    """``sim --help`` and a refused input or output folder answer before the model, Mesa, pandas or the batch
    machinery is imported (about 0.5 s, not the 2 s those imports take): what the process had imported when it
    answered."""
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("not sim's")
    argv_given, argv = argv, [a.format(existing=existing) for a in argv]
    if argv[0] != "--help" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    probe = ("import sys\nfrom sim.cli import main\ntry:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
             "print('probe:', code, *(m in sys.modules for m in ('sim.model', 'mesa', 'pandas', 'sim.runs.batch')), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe, *argv], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    probed = [line.split()[1:] for line in result.stderr.splitlines() if line.startswith("probe:")]
    assert probed, result.stderr
    code, *imported = probed[-1]
    assert code == ("0" if argv == ["--help"] else "2"), result.stderr
    assert imported == ["False"] * 4, result.stderr
    if "{existing}" in argv_given:
        assert "already exists" in result.stderr, result.stderr  # refused for the folder, not for something else
    assert not (tmp_path / "out").exists() and [p.name for p in existing.iterdir()] == ["mine.txt"]
