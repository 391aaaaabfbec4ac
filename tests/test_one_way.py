"""`sim one-way`: each assumption at the ends of its plausible range, the programme against its baseline on the same
seeds; the table, the switching values, and a resumable folder."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import ROOT, SMALL
from sim.appraisal.one_way import is_idle, ranged_assumptions, switching_value
from sim.cli import main
from sim.state.scenario import ScenarioError, at_means, load_scenario

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"
SMALL_SET = [arg for o in SMALL for arg in ("--set", o)]
KEYS = "intervention.max_wait_months,costs.crime_cost_share_response"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """The multi-agency programme with one of its own settings given a plausible range (a whole number of months)."""
    path = tmp_path_factory.mktemp("one_way") / "programme.toml"
    path.write_text(f'extends = "{MULTI_AGENCY}"\n\n[intervention]\nmax_wait_months = {{ value = 3, unit = "months", '
                    'source = "assumption, plausible range 1-6: a test" }\n')
    return path


@pytest.fixture(scope="module")
def analysis(scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_way_out") / "analysis"
    args = ["one-way", str(scenario), "--reps", "2", "--years", "1", "--workers", "1", *SMALL_SET, "--only", KEYS, "--out", str(out)]
    assert main(args) == 0
    return out, args


def test_the_switching_value_is_where_the_npv_would_cross_zero():
    assert switching_value((0.0, 1.0, 3.0), (-2.0, 2.0, 6.0)) == pytest.approx(0.5)  # between the low end and the value
    assert switching_value((1.0, 2.0, 4.0), (5.0, 1.0, -3.0)) == pytest.approx(2.5)  # between the value and the high end
    assert switching_value((4.0, 2.0, 1.0), (-3.0, 1.0, 5.0)) == pytest.approx(2.5)  # a range given high end first
    assert math.isnan(switching_value((0.0, 1.0, 2.0), (1.0, 2.0, 3.0)))  # no crossing within the range
    assert math.isnan(switching_value(([1.0], [2.0], [3.0]), (-1.0, 0.5, 1.0)))  # a list input has no single value


def test_only_ranged_assumptions_are_varied_and_an_unknown_key_is_refused(scenario):
    params = load_scenario(scenario)
    found = {a.key: a for a in ranged_assumptions(scenario, params)}
    assert found["intervention.max_wait_months"].low == 1 and found["intervention.max_wait_months"].high == 6
    assert isinstance(found["intervention.max_wait_months"].low, int)  # a whole-number input stays whole
    assert "intervention.dose_scale_hours" not in found  # drawn from a distribution: its spread is in the draws
    assert "justice.custody_log_odds_intercept" not in found  # calibrated: its uncertainty is the ensemble's
    rr = found["needs.offending_rr"]
    assert len(rr.low) == len(rr.value) == len(rr.high) and set(rr.low) == {1.0} and set(rr.high) == {1.7}
    assert is_idle(params, "domestic_abuse.age_curve_power") and not is_idle(params, "justice.caution_log_odds_intercept")
    assert is_idle(load_scenario(scenario, ["justice.cautions=false"]), "justice.caution_log_odds_intercept")
    assert not is_idle(params, "needs.offending_rr")
    lost = found["costs.lost_output_per_month_unemployed"]  # an amount of money: moved by its amount, at its price year
    assert (lost.low, lost.value, lost.high) == (500.0, 1000.0, 2000.0)
    moved = load_scenario(scenario, [lost.setting("low")]).costs.lost_output_per_month_unemployed
    assert moved.value == 500.0 and moved.price_year == params.costs.lost_output_per_month_unemployed.price_year
    assert is_idle(params, "population.prev_convictions_mean_custody")  # the simulated past makes the records again
    assert not is_idle(load_scenario(scenario, ["population.history_years=0"]), "population.prev_convictions_mean_custody")
    # the start's sentences: made again by the past, unless it begins from the drawn stocks (as the baseline's does)
    assert not is_idle(params, "population.start_sentence_sigma")
    assert is_idle(load_scenario(scenario, ["population.history_from_drawn_stocks=false"]), "population.start_sentence_sigma")
    single = load_scenario(scenario, ["population.start_sentence_short_share=0", "justice.sentence_short_share=0"])
    assert is_idle(single, "population.start_sentence_short_sigma")  # its share is 0: the shorter part is unused
    assert is_idle(single, "justice.sentence_short_median_months")
    assert not is_idle(params, "justice.sentence_short_median_months")
    with pytest.raises(ScenarioError, match="no_such.key"):
        ranged_assumptions(scenario, params, ["no_such.key"])


def test_the_folder_holds_the_table_figure_words_and_one_part_per_point(analysis):
    out, _ = analysis
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "one_way" and all((out / name).exists() for name in manifest["files"])
    assert sorted(p.name for p in (out / "points").iterdir()) == [f"part-{k:06d}.parquet" for k in range(5)]
    table = pd.read_csv(out / "one_way.csv")
    assert set(table["key"]) == set(KEYS.split(","))
    assert (out / "one_way.png").read_bytes()[:4] == b"\x89PNG"
    assert "NPV as the scenario stands" in (out / "one_way.txt").read_text()


def test_points_are_paired_on_the_same_seeds_and_a_cost_assumption_moves_only_the_money(analysis):
    """A setting of the programme alone keeps the baseline's runs (the same baseline serves it); a unit-cost
    assumption changes no run, so offences avoided are those of the scenario as it stands, replicate by replicate,
    while the NPV moves with the cost of crime."""
    out, _ = analysis
    part = {k: pd.read_parquet(out / "points" / f"part-{k:06d}.parquet").sort_values("replicate").reset_index(drop=True)
            for k in range(5)}
    settings = {k: part[k]["setting"].iloc[0] for k in part}
    wait = [k for k in part if settings[k].startswith("intervention.max_wait_months")]
    cost = [k for k in part if settings[k].startswith("costs.crime_cost_share_response")]
    assert len(wait) == len(cost) == 2 and settings[0] == ""
    for k in wait:
        pd.testing.assert_series_equal(part[k]["baseline:offences"], part[0]["baseline:offences"])
    for k in cost:
        pd.testing.assert_series_equal(part[k]["appraisal:offences_avoided"], part[0]["appraisal:offences_avoided"])
    low, high = sorted(cost, key=lambda k: float(settings[k].split("=")[1]))
    assert part[low]["appraisal:npv"].mean() != pytest.approx(part[high]["appraisal:npv"].mean())


def test_an_interrupted_analysis_resumes_and_another_is_refused(analysis, capsys):
    out, args = analysis
    kept = out / "points" / "part-000000.parquet"
    gone = out / "points" / "part-000003.parquet"
    before, stamp = pd.read_parquet(gone), kept.stat().st_mtime_ns
    gone.unlink()
    assert main(args[:-2] + ["--out", str(out), "--resume"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(gone), before)  # the same point, the same seeds: the same runs
    assert kept.stat().st_mtime_ns == stamp  # a kept point is not run again
    capsys.readouterr()
    assert main([*args[:2], "--reps", "3", *args[4:], "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(args) == 2  # the folder exists: refused without --resume or --force


def test_an_assumption_whose_ends_the_scenario_refuses_is_left_out_with_why(scenario, tmp_path, capsys):
    """Shares that must sum to 1 cannot each go to their low end alone: such an assumption is left out, saying why,
    and with nothing left the command refuses (exit 2) and writes nothing."""
    out = tmp_path / "tied"
    assert main(["one-way", str(scenario), "--reps", "2", "--years", "1", "--workers", "1", *SMALL_SET,
                 "--only", "offending.offence_type_share", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "offending.offence_type_share cannot be moved alone" in captured.out and "must sum to 1" in captured.out
    assert "no assumption can be moved alone" in captured.err and not out.exists()


def test_a_cost_point_priced_again_is_the_comparison_run_afresh(analysis, scenario):
    """A point that moves only a unit cost is the scenario's runs priced again (nothing simulated): its rows are
    those of the same comparison run in full with that cost, replicate by replicate."""
    from sim.appraisal.compare import switched_off
    from sim.runs.paired import compare_arms

    out, _ = analysis
    part = {k: pd.read_parquet(out / "points" / f"part-{k:06d}.parquet") for k in range(5)}
    k = next(k for k in part if part[k]["setting"].iloc[0].startswith("costs.crime_cost_share_response"))
    setting = part[k]["setting"].iloc[0]
    params = at_means(load_scenario(scenario, ["run.calibration=point", *SMALL, "run.years=1", setting]))  # the base case
    (rows, _, _), = compare_arms(switched_off(params, params.intervention), [params], 2, 1)[0]
    for column in ("appraisal:npv", "appraisal:offences_avoided", "savings_by_agency:police", "appraisal:intervention_cost"):
        assert part[k].sort_values("replicate")[column].to_numpy() == pytest.approx(rows.sort_values("replicate")[column].to_numpy(), rel=1e-9), column


def test_a_resume_with_other_values_or_into_a_folder_sim_did_not_write_is_refused(tmp_path, scenario):
    """The same settings over a scenario whose values changed since (an edited file, a refit) would mix two
    analyses; a folder without our manifest is not ours to write in."""
    from sim.runs.one_way import _open

    identity = {"scenario_file": str(scenario), "overrides": [], "settings": [[]], "reps": 2, "seed": 1}
    folder = tmp_path / "analysis"
    folder.mkdir()
    _open(folder, identity, False, False, load_scenario(scenario), 1)
    _open(folder, identity, False, True, load_scenario(scenario), 1)  # the same analysis: resumes
    with pytest.raises(ScenarioError, match="another analysis"):
        _open(folder, identity, False, True, load_scenario(scenario, ["costs.recall_cost=900"]), 1)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("not sim's")
    with pytest.raises(ScenarioError, match="manifest"):
        _open(foreign, identity, False, True, load_scenario(scenario), 1)
    assert sorted(p.name for p in foreign.iterdir()) == ["mine.txt"]


def test_the_base_case_holds_every_drawn_input_at_its_mean_and_the_point_fit(analysis):
    """By default the analysis is the deterministic base case: every replicate of every point has each drawn input
    at its mean (the point mass of no effect included) and the calibration's point fit, so that points differ only
    in the assumption moved and the chance of the runs."""
    from sim.state.params import Dist

    out, _ = analysis
    rows = pd.read_parquet(out / "points" / "part-000000.parquet")
    assert (rows["ensemble_member"] == -1).all()
    assert not [c for c in rows.columns if c.startswith("parameter:")]  # nothing drawn, replicate by replicate
    resolved = json.loads((out / "manifest.json").read_text())["parameters"]
    prior = load_scenario(MULTI_AGENCY).intervention.detection_rr_at_full_dose  # 40% no effect (1.0), else lognormal
    assert isinstance(prior, Dist) and prior.p_no_effect > 0
    assert resolved["intervention"]["detection_rr_at_full_dose"] == pytest.approx(
        prior.p_no_effect * 1.0 + (1 - prior.p_no_effect) * prior.arg("mean"))
    assert resolved["run"]["calibration"] == "point"
