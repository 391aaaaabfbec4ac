"""``sim compare`` and ``sim sweep`` run as a user would (a subprocess): bad scenario input exits 2 with one line
and writes nothing; good input writes the documented tables. Every bad-input case also runs in-process through
``sim.cli.main`` (cheap), and a representative set of them as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.appraisal.compare import OUTCOMES
from sim.runs.batch import replicate_seeds
from sim.runs.paired import compare
from sim.state.scenario import ScenarioError, load_scenario

from conftest import BASELINE, ROOT, SMALL, load

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"
SMALL_SET = [arg for o in SMALL for arg in ("--set", o)]
COMPARISON_COLUMNS = ["metric", "unit", "baseline", "intervention", "difference", "difference_p05", "difference_p95", "description"]


def sim(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sim", *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def assert_user_error(result: subprocess.CompletedProcess, out, *names) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sim: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return lines[0]


def child(tmp_path, body: str, name: str = "scenario.toml", parent=BASELINE):
    path = tmp_path / name
    path.write_text(f'extends = "{parent}"\n{body}')
    return path


# --- bad input ----------------------------------------------------------------------------------------------------

INTERVENTION_BAD = {  # body of a child of multi_agency.toml -> what the error line must name
    "unknown-key": ("[intervention]\ncovrage = 0.5\n", ["intervention.covrage", "unknown key"]),
    "wrong-type": ('[intervention]\ncoverage = "most"\n', ["intervention.coverage", "most"]),
    "out-of-range": ("[intervention]\ncoverage = 1.5\n", ["intervention.coverage", "1.5"]),
}
SWEEP_AXIS = '[sweep]\n"intervention.capacity_families_per_year" = [100, 200]\n'
GRID = ["--set", "intervention.coverage=0.5,0.8"]


def _cases(tmp) -> dict[str, tuple[list, list]]:
    """case id -> (sim arguments before --out, things the error line must name)."""
    cases = {}
    for key, (body, names) in INTERVENTION_BAD.items():
        bad = child(tmp, body, f"iv-{key}.toml", parent=MULTI_AGENCY)
        cases[f"compare-intervention-{key}"] = (["compare", BASELINE, bad, "--reps", "1", "--years", "1"], [bad, *names])
        bad_sweep = child(tmp, body + SWEEP_AXIS, f"sweep-{key}.toml", parent=MULTI_AGENCY)
        cases[f"sweep-{key}"] = (["sweep", bad_sweep, "--reps", "1", "--years", "1"], [bad_sweep, *names])
    bad_base = child(tmp, "[justice]\np_recall_per_month = 1.5\n", "base-bad.toml")
    cases["compare-baseline-out-of-range"] = (["compare", bad_base, MULTI_AGENCY, "--reps", "1"], [bad_base, "justice.p_recall_per_month", "1.5"])
    orphan = child(tmp, "[run]\nname = 'x'\n", "orphan.toml", parent="no_such_parent.toml")
    cases["compare-missing-parent"] = (["compare", BASELINE, orphan, "--reps", "1"], ["no_such_parent.toml", "not found"])
    cases["sweep-missing-parent"] = (["sweep", orphan, *GRID, "--reps", "1"], ["no_such_parent.toml", "not found"])
    a = child(tmp, "[run]\nname = 'a'\n", "a.toml", parent="b.toml")
    child(tmp, "[run]\nname = 'b'\n", "b.toml", parent="a.toml")
    selfish = child(tmp, "", "self.toml", parent="self.toml")
    cases["compare-cycle"] = (["compare", BASELINE, a, "--reps", "1"], ["extends", "circular", "b.toml"])
    cases["compare-self-extends"] = (["compare", selfish, BASELINE, "--reps", "1"], [selfish, "extends", "circular"])
    cases["sweep-cycle"] = (["sweep", a, *GRID, "--reps", "1"], ["extends", "circular"])
    cases["compare-bad-set"] = (["compare", BASELINE, MULTI_AGENCY, "--set", "intervention.coverage=2"], ["--set", "intervention.coverage", "2"])
    cases["compare-reps-0"] = (["compare", BASELINE, MULTI_AGENCY, "--reps", "0"], ["--reps", "0"])
    for key, body, names in (
        ("not-a-table", "sweep = [0.5, 0.8]\n", ["sweep", "table"]),
        ("not-a-list", '[sweep]\n"intervention.coverage" = 0.5\n', ["sweep.intervention.coverage", "list"]),
        ("unknown-section", '[sweep]\n"nosuch.coverage" = [0.5, 0.8]\n', ["sweep.nosuch.coverage"]),
    ):
        path = child(tmp, body, f"table-{key}.toml", parent=MULTI_AGENCY)
        cases[f"sweep-table-{key}"] = (["sweep", path, "--reps", "1", "--years", "1"], [path, *names])
    path = child(tmp, '[sweep]\n"intervention.coverage" = [0.5, 1.5]\n', "table-value.toml", parent=MULTI_AGENCY)
    cases["sweep-table-out-of-range"] = (["sweep", path, "--reps", "1", "--years", "1"], ["intervention.coverage", "1.5"])
    cases["sweep-no-grid"] = (["sweep", MULTI_AGENCY, "--reps", "1"], [MULTI_AGENCY, "grid"])
    return cases


with tempfile.TemporaryDirectory() as _d:  # the case ids, for parametrize (the files are made again per run)
    CASE_IDS = list(_cases(Path(_d)))

#: the cases also run as real processes (each costs ~0.7 s of interpreter start-up; the rest run in-process)
SUBPROCESS_CASES = [
    "compare-intervention-unknown-key", "compare-intervention-wrong-type", "compare-intervention-out-of-range",
    "compare-missing-parent", "compare-cycle", "sweep-out-of-range", "sweep-table-not-a-list",
    "sweep-table-unknown-section",
]


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory):
    """The subprocess cases, two processes at a time: id -> (result, out folder, names)."""
    tmp = tmp_path_factory.mktemp("bad_input")
    cases = _cases(tmp)

    def go(key):
        args, names = cases[key]
        out = tmp / f"out-{key}"
        return key, (sim(*args, "--out", out), out, names)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(go, SUBPROCESS_CASES))


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(error_runs, case):
    result, out, names = error_runs[case]
    assert_user_error(result, out, *names)


def main_in_process(capsys, args) -> tuple[int, str, str]:
    """sim.cli.main as the command line would call it: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors exit from inside the parser
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error_in_process(capsys, args, out, names) -> str:
    code, stdout, stderr = main_in_process(capsys, [*args, "--out", out])
    assert code == 2, (code, stderr)
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: error: "), stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_in_process(tmp_path, capsys, case):
    args, names = _cases(tmp_path)[case]
    assert_user_error_in_process(capsys, args, tmp_path / "out", names)


# further bad values are caught before anything runs, whichever command reads them


@pytest.mark.parametrize("body,names", [
    ("[intervention]\nduration_months = 0\n", ["intervention.duration_months", "0"]),
    ("[intervention]\nneed_resolution_rr_at_full_dose = [0.1, 0.1]\n", ["intervention.need_resolution_rr_at_full_dose"]),
    ('[costs]\nprison_cost_per_month = { value = -3000, price_year = "2012-13" }\n', ["costs.prison_cost_per_month"]),
    ('[costs]\nprison_cost_per_month = { value = 3000, price_yr = "2012-13" }\n', ["costs.prison_cost_per_month"]),
    ("[interventions]\ncoverage = 0.5\n", ["interventions", "unknown section"]),
    ("[intervention]\nintensity_hours_per_month = -5\n", ["intervention.intensity_hours_per_month", "-5"]),
], ids=["zero-duration", "list-length", "negative-money", "money-bad-doc-key", "unknown-section", "negative-hours"])
@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_more_bad_values_in_process(tmp_path, capsys, command, body, names):
    path = child(tmp_path, body, parent=MULTI_AGENCY)
    args = ["compare", BASELINE, path, "--reps", "1"] if command == "compare" else ["sweep", path, *GRID, "--reps", "1"]
    assert_user_error_in_process(capsys, args, tmp_path / "out", [path, *names])


@pytest.mark.parametrize("body", ['[sweep]\n"intervention.coverage" = []\n', "[sweep]\ncoverage = [0.5, 0.8]\n"],
                         ids=["empty-list", "no-section"])
def test_more_malformed_sweep_tables_in_process(tmp_path, capsys, body):
    path = child(tmp_path, body, parent=MULTI_AGENCY)
    assert_user_error_in_process(capsys, ["sweep", path, "--reps", "1"], tmp_path / "out", [path, "sweep."])


def test_sweep_table_errors_name_the_file(tmp_path, capsys):
    args, _ = _cases(tmp_path)["sweep-table-out-of-range"]
    line = assert_user_error_in_process(capsys, args, tmp_path / "out", ["intervention.coverage"])
    assert "table-value.toml" in line, line


def test_unknown_price_year_names_the_money_key(tmp_path):
    path = child(tmp_path, '[intervention]\nsetup_cost_gbp = { value = 1000, price_year = "1990-91" }\n', parent=MULTI_AGENCY)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "1990-91" in str(err.value)
    assert str(path) in str(err.value) and "intervention.setup_cost_gbp" in str(err.value)


# --- good input ----------------------------------------------------------------------------------------------------


def test_compare_writes_the_documented_tables(tmp_path):
    out = tmp_path / "cmp"
    r = sim("compare", BASELINE, MULTI_AGENCY, "--reps", "2", "--years", "3", "--workers", "1", "--seed", "4",
            "--out", out, *SMALL_SET)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    written = {p.name for p in out.iterdir()}
    assert {"comparison.csv", "replicates.csv", "timeseries.parquet", "ledger.parquet", "manifest.json"} <= written
    table = pd.read_csv(out / "comparison.csv")
    assert list(table.columns) == COMPARISON_COLUMNS
    assert list(table["metric"][: len(OUTCOMES)]) == list(OUTCOMES)
    assert {"appraisal:npv", "appraisal:bcr", "appraisal:intervention_cost", "savings_by_kind:social"} <= set(table["metric"])
    reps = pd.read_csv(out / "replicates.csv")
    assert len(reps) == 2 and list(reps["replicate"]) == [0, 1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["replicate_seeds"] == replicate_seeds(4, 2) == list(reps["seed"])
    assert manifest["replicates"] == 2 and manifest["months"] == 36
    assert set(manifest["files"]) <= written
    assert manifest["baseline"]["scenario"] == "baseline" and manifest["scenario"] == "multi_agency"
    assert manifest["parameters"]["population"]["scale_general"] == 300
    # the table is the mean of the replicates; the replicates are what compare() gives in-process
    t = table.set_index("metric")
    assert t.loc["offences", "difference"] == pytest.approx(reps["difference:offences"].mean())
    assert t.loc["offences", "difference_p05"] <= t.loc["offences", "difference"] <= t.loc["offences", "difference_p95"]
    base = load(*SMALL, "run.years=3", path=BASELINE)
    iv = load(*SMALL, "run.years=3", path=MULTI_AGENCY)
    rows = compare(base, iv, 2, 4, workers=1)[0]
    for col in ("difference:offences", "intervention:iv_families_started", "appraisal:npv"):
        np.testing.assert_allclose(reps[col].to_numpy(float), rows[col].to_numpy(float), rtol=1e-12, err_msg=col)
    series = pd.read_parquet(out / "timeseries.parquet")
    assert len(series) == 2 * 2 * 36 and set(series["scenario"]) == {"baseline", "intervention"}


def test_sweep_end_to_end(tmp_path):
    """Two grid points (0 and 20 hours) on a small population: one row each; 0 hours is the switched-off run. A strong
    direct effect, pinned, so that 20 hours avoids crime on 2 replicates (the priors' draws need not: 35% of them have
    no direct effect; with them, the point of the ninth recheck read +185 offences, 2026-12-07)."""
    out = tmp_path / "sweep"
    r = sim("sweep", MULTI_AGENCY, "--set", "intervention.intensity_hours_per_month=0,20", *SMALL_SET,
            "--set", "intervention.offending_rr_at_full_dose=0.2", "--set", "intervention.detection_rr_at_full_dose=1.0",
            "--set", "intervention.recall_rr_at_full_dose=1.0",
            "--reps", "2", "--years", "3", "--workers", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "sweep.csv" in r.stdout
    result = pd.read_csv(out / "sweep.csv")
    assert len(result) == 2
    assert list(result["intervention.intensity_hours_per_month"]) == [0, 20]
    assert (result["population.scale_general"] == 300).all()
    zero, twenty = result.iloc[0], result.iloc[1]
    assert zero["offences"] == 0 and zero["appraisal:intervention_cost"] == 0
    assert twenty["offences"] < 0 and twenty["appraisal:intervention_cost"] > 0
    assert twenty["offences_p05"] <= twenty["offences"] <= twenty["offences_p95"]
    reps = pd.read_csv(out / "replicates.csv")
    assert len(reps) == 4 and sorted(reps["grid_point"]) == [0, 0, 1, 1]
    assert list(reps["seed"][:2]) == replicate_seeds(1, 2) == list(reps["seed"][2:])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "sweep" and len(manifest["grid"]) == 2 and manifest["replicates"] == 2


def test_compare_by_channel_writes_the_decomposition(tmp_path, capsys):
    """``--by-channel`` adds the arms with one channel off: a channel already at no effect contributes exactly
    nothing (common random numbers: its arm is the full run), a strong direct effect avoids crime, and the report
    shows the decomposition."""
    out = tmp_path / "cmp"
    code = main(["compare", str(BASELINE), str(MULTI_AGENCY), "--reps", "2", "--years", "2", "--workers", "1", "--by-channel",
                 "--out", str(out), *[f"--set={s}" for s in SMALL],
                 "--set=intervention.capacity_families_per_year=100000",
                 "--set=intervention.offending_rr_at_full_dose=0.2",  # (0.5 left one of the 2 replicates at -1,450 since 2026-12-06)
                 "--set=intervention.detection_rr_at_full_dose=1.0", "--set=intervention.recall_rr_at_full_dose=1.0"])
    assert code == 0
    parts = pd.read_csv(out / "channel_replicates.csv")
    assert set(parts["channel"]) == {"direct", "children", "needs", "supervision", "cost", "treatment", "interaction", "total"}
    assert (parts.loc[parts["channel"] == "supervision", "value"] == 0).all()
    direct = parts[(parts["channel"] == "direct") & (parts["metric"] == "appraisal:offences_avoided")]["value"]
    assert (direct > 0).all() and len(direct) == 2
    table = pd.read_csv(out / "channels.csv")
    assert {"channel", "metric", "mean", "p05", "p95", "share_of_total"} <= set(table.columns)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"channels.csv", "channel_replicates.csv"} <= set(manifest["files"])
    printed = capsys.readouterr().out
    assert "by channel" in printed and "offences avoided" in printed and "supervision 0" in printed
    page = (out / "report.html").read_text()
    assert "Where the benefit comes from" in page and "figures/channels.png" not in page  # embedded, not linked
    assert (out / "figures" / "channels.png").exists()


def test_the_terminal_shows_optimism_bias_given_as_a_number_or_a_distribution():
    """A scenario may draw costs.optimism_bias_benefits (its TOML gives a range): the summary lines name it either way,
    and none are printed without it."""
    from sim.cli import _optimism_bias_rows
    from sim.state.params import Dist

    row = lambda metric, label, fmt="{:,.0f}": f"{label}|{metric}"  # noqa: E731
    assert _optimism_bias_rows(0.4, row) == ["  NPV, benefits less 40% optimism bias|appraisal:npv_optimism_bias",
                                             "  BCR, the same|appraisal:bcr_optimism_bias"]
    drawn = _optimism_bias_rows(Dist.from_dict({"dist": "uniform", "low": 0.2, "high": 0.6}), row)
    assert len(drawn) == 2 and "uniform" in drawn[0]
    assert _optimism_bias_rows(0.0, row) == []
