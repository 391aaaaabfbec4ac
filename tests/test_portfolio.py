"""``sim compare BASE A B``: a portfolio. The combination is built from the programmes' settings (a conflict is bad
input), every arm runs on the same seeds, the interaction written is the combination minus the sum of the
programmes in the written replicate table, a programme that changes nothing the run uses adds nothing, the
numbers do not depend on the workers, and the report answers in words."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from conftest import BASELINE, ROOT, SMALL
from sim.appraisal.portfolio import PORTFOLIO_METRICS
from sim.cli import main
from sim.state.scenario import ScenarioError, changed_settings, combine_scenarios, load_scenario

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"
MULTI_AGENCY_HIGH = ROOT / "scenarios" / "multi_agency_high.toml"
DATA = ROOT / "tests" / "data"
RECALL = DATA / "recall_reform.toml"  # test-only: fewer recalls, a different section from the intervention's
NOTHING = DATA / "changes_nothing.toml"  # test-only: the discount rate after year 30, unused in a short run
FAST = ["--reps", "2", "--years", "3", "--seed", "5", *[f"--set={s}" for s in SMALL]]
ADDITIVE = [m for m in PORTFOLIO_METRICS if m != "appraisal:bcr"]


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, out, *args) -> str:
    """The command exits 2 with one line, and nothing is written (not even a hidden temporary or lock)."""
    code, stdout, stderr = run(capsys, *args, "--out", out)
    assert code == 2, (code, stderr)
    assert stdout == "" and len(stderr.splitlines()) == 1 and stderr.startswith("sim: error: "), stderr
    assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return stderr


# --- the combination -------------------------------------------------------------------------------------------------


def test_the_combination_applies_each_programmes_changes_on_the_baseline():
    base, ma, recall = (load_scenario(p, SMALL) for p in (BASELINE, MULTI_AGENCY, RECALL))
    combo = combine_scenarios(base, [ma, recall])
    assert combo.run.name == "multi_agency+recall_reform"
    assert combo.intervention == ma.intervention and combo.costs == ma.costs  # the multi-agency changes, whole
    assert combo.justice.p_recall_per_month == 0.008 == recall.justice.p_recall_per_month
    assert combo.offending == base.offending and combo.population == base.population
    assert changed_settings(base, combo) == {**changed_settings(base, ma), **changed_settings(base, recall)}
    assert ("justice", "p_recall_per_month") not in changed_settings(base, ma)  # the two touch different keys


def test_two_programmes_setting_one_key_differently_are_refused(capsys, tmp_path):
    with pytest.raises(ScenarioError):
        combine_scenarios(load_scenario(BASELINE), [load_scenario(MULTI_AGENCY), load_scenario(MULTI_AGENCY_HIGH)])
    line = refused(capsys, tmp_path / "pf", "compare", BASELINE, MULTI_AGENCY, MULTI_AGENCY_HIGH, *FAST)
    for name in (MULTI_AGENCY, MULTI_AGENCY_HIGH, "intervention.coverage", "0.8", "1.0", "--combined"):
        assert str(name) in line, (name, line)


def test_bad_portfolio_options_are_refused(capsys, tmp_path):
    out = tmp_path / "pf"
    assert "--by-channel" in refused(capsys, out, "compare", BASELINE, MULTI_AGENCY, RECALL, "--by-channel", *FAST)
    assert "--combined" in refused(capsys, out, "compare", BASELINE, MULTI_AGENCY, "--combined", RECALL, *FAST)
    assert "distinct run.name" in refused(capsys, out, "compare", BASELINE, MULTI_AGENCY, MULTI_AGENCY, *FAST)


# --- runs ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    """The same two-programme portfolio on 1 worker and on 2, and its printed summary."""
    tmp = tmp_path_factory.mktemp("portfolio")
    printed = {}
    for workers in (1, 2):
        out = tmp / f"w{workers}"
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(["compare", str(BASELINE), str(MULTI_AGENCY), str(RECALL), *FAST, "--workers", str(workers), "--out", str(out)]) == 0
        printed[workers] = buffer.getvalue()
    return tmp, printed


def test_the_folder_holds_the_documented_files(portfolio):
    tmp, printed = portfolio
    out = tmp / "w1"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "portfolio" and manifest["replicates"] == 2 and manifest["scenario"] == "multi_agency+recall_reform"
    assert set(manifest["files"]) <= {p.name for p in out.iterdir()}
    assert {"portfolio.csv", "portfolio_replicates.csv", "replicates.csv", "comparison_multi_agency.csv", "comparison_recall_reform.csv",
            "comparison_multi_agency+recall_reform.csv", "timeseries.parquet"} <= set(manifest["files"])
    assert [p["scenario"] for p in manifest["programmes"]] == ["multi_agency", "recall_reform"]
    assert manifest["programmes"][1]["changes"] == {"justice.p_recall_per_month": 0.008}
    table = pd.read_csv(out / "portfolio.csv")
    assert set(table["arm"]) == {"multi_agency", "recall_reform", "multi_agency+recall_reform", "sum of programmes", "interaction"}
    assert set(table["metric"]) == set(PORTFOLIO_METRICS)
    assert "interaction" in printed[1] and str(out) in printed[1]
    series = pd.read_parquet(out / "timeseries.parquet")
    assert set(series["scenario"]) == {"baseline", "multi_agency", "recall_reform", "multi_agency+recall_reform"}
    replicates = pd.read_csv(out / "replicates.csv")  # each arm's replicates with their calibration member
    members = load_scenario(BASELINE, SMALL).ensemble
    assert replicates["ensemble_member"].tolist() == [members.member(s) for s in replicates["seed"]]


def test_the_interaction_is_the_combination_minus_the_sum_of_the_programmes(portfolio):
    out = portfolio[0] / "w1"
    reps = pd.read_csv(out / "replicates.csv").set_index(["arm", "replicate"])
    long = pd.read_csv(out / "portfolio_replicates.csv")
    interaction = long[long["arm"] == "interaction"].set_index(["metric", "replicate"])["value"]
    for metric in ADDITIVE:
        expected = reps.loc["multi_agency+recall_reform", metric] - reps.loc["multi_agency", metric] - reps.loc["recall_reform", metric]
        np.testing.assert_allclose(interaction.loc[metric].sort_index().to_numpy(), expected.sort_index().to_numpy(), rtol=1e-9, atol=1e-6, err_msg=metric)
    assert interaction.loc["appraisal:npv"].abs().max() > 0  # the two programmes do interact: the test can tell
    # the summary is the replicates' mean and interval
    table = pd.read_csv(out / "portfolio.csv").set_index(["arm", "metric"])
    row = table.loc[("interaction", "appraisal:npv")]
    assert row["mean"] == pytest.approx(interaction.loc["appraisal:npv"].mean())
    assert row["p05"] <= row["mean"] <= row["p95"]
    # every arm ran on the same replicate seeds
    assert reps.groupby(level="arm")["seed"].apply(list).map(tuple).nunique() == 1


def test_more_workers_give_identical_numbers(portfolio):
    tmp, printed = portfolio
    for name in ("portfolio.csv", "portfolio_replicates.csv", "replicates.csv", "comparison_multi_agency+recall_reform.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp / "w1" / name), pd.read_csv(tmp / "w2" / name), check_exact=True, obj=name)
    assert printed[1].replace("/w1/", "/w2/") == printed[2]


def test_the_report_answers_in_words(portfolio):
    out = portfolio[0] / "w1"
    page = (out / "report.html").read_text()
    assert "Portfolio" in page and "sum of its parts" in page and "interaction" in page
    assert page.count('<img src="data:image/png;base64,') == 1 and (out / "figures" / "portfolio.png").exists()
    assert "justice.p_recall_per_month" in page  # what each programme changes


def test_a_programme_that_changes_nothing_adds_nothing(capsys, tmp_path):
    """The combination of multi_agency with a programme that changes nothing the run uses is multi_agency alone,
    replicate for replicate, and the interaction is exactly zero."""
    out = tmp_path / "pf"
    code, printed, err = run(capsys, "compare", BASELINE, MULTI_AGENCY, NOTHING, *FAST, "--workers", "1", "--out", out)
    assert code == 0, err
    reps = pd.read_csv(out / "replicates.csv")
    metrics = [c for c in reps.columns if c.startswith(("difference:", "appraisal:", "savings_by_", "intervention:", "baseline:"))]
    alone = reps[reps["arm"] == "multi_agency"].set_index("replicate")[metrics]
    combined = reps[reps["arm"] == "multi_agency+changes_nothing"].set_index("replicate")[metrics]
    pd.testing.assert_frame_equal(alone, combined, check_exact=True)
    assert (reps.loc[reps["arm"] == "changes_nothing", "appraisal:npv"] == 0).all()
    long = pd.read_csv(out / "portfolio_replicates.csv")
    assert (long.loc[(long["arm"] == "interaction") & long["metric"].isin(ADDITIVE), "value"] == 0).all()
    assert "exactly the sum of its parts" in printed


def test_a_given_combination_is_used_as_given(capsys, tmp_path, portfolio):
    """--combined FILE: the same settings written out by hand give the automatic combination's numbers."""
    combo = tmp_path / "both.toml"
    combo.write_text(f'extends = "{MULTI_AGENCY}"\n[run]\nname = "both"\n[justice]\np_recall_per_month = 0.008\n')
    out = tmp_path / "pf"
    code, _, err = run(capsys, "compare", BASELINE, MULTI_AGENCY, RECALL, "--combined", combo, *FAST, "--workers", "1", "--out", out)
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(out / "portfolio_replicates.csv"), pd.read_csv(portfolio[0] / "w1" / "portfolio_replicates.csv"),
                                  check_exact=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["combination"]["given"] and manifest["combination"]["scenario_file"] == str(combo)


def test_sim_plot_draws_a_portfolio_and_refuses_it_for_a_comparison_figure(portfolio, capsys):
    out = portfolio[0] / "w1"
    png = out.parent / "portfolio.png"
    assert main(["plot", str(out), "--figure", "portfolio", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(out), "--figure", "savings", "--out", str(out.parent / "savings.png")]) == 2
    assert "needs a comparison folder" in capsys.readouterr().err


def test_a_programme_brings_its_own_settings_to_another_baseline(tmp_path):
    """multi_agency.toml extends the plain baseline, da_hub.toml the one with partner abuse: with the latter as the
    portfolio's baseline, each programme arm is that baseline with the programme's own settings (abuse on in both),
    and what each changes is only its own."""
    out = tmp_path / "pf"
    da_base = ROOT / "scenarios" / "domestic_abuse.toml"
    assert main(["compare", str(da_base), str(MULTI_AGENCY), str(ROOT / "scenarios" / "da_hub.toml"), "--reps", "1", "--years", "1",
                 *[f"--set={s}" for s in SMALL], "--workers", "1", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    changes = {p["scenario"]: p["changes"] for p in manifest["programmes"]}
    assert not any(k.startswith(("domestic_abuse.", "offending.", "justice.")) for k in changes["multi_agency"]), changes["multi_agency"]
    assert "intervention.coverage" in changes["multi_agency"] and "da_hub.capacity_victims_per_year" in changes["da_hub"]
    assert not any(k.startswith("intervention.") for k in changes["da_hub"])
    reps = pd.read_csv(out / "replicates.csv").set_index("arm")
    assert (reps["baseline:da_incidents"] > 0).all()  # abuse on in every arm's baseline
