"""Calibration tests: the calibrated baseline reproduces the published targets, measured by their definitions
from the simulated microdata; the measuring code is checked on hand-made logs; and a mis-set parameter fails.

Replicates: 32 ten-year and 8 forty-five-year runs here (a few minutes; the long runs' first ten years are 8 of the
ten-year replicates, so 24 ten-year runs are run); REOFFSIM_FULL=1 uses 48 and 12."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import BASELINE, FULL, ROOT

ROOT_CALIBRATION = ROOT / "calibration"
from sim import metrics
from sim.fitting.ensemble import CHECK_Z
from sim.state.scenario import ScenarioError
from sim.fitting.calibration import (compare_to_targets, load_steadiness_criteria, load_targets, measure, projected_population,
                                    scenario_for, steadiness, steadiness_summary, validate_all)

#: ten-year replicates, each drawing one of the ensemble's members: 32 since the seventh recheck (2026-12-06, late
#: night), whose 103 members 16 replicates sampled too thinly for the stocks' RMS (seed 2024: licence 0.056 on 16,
#: 0.018 on 32, 0.026 on the README's 100 of seed 1007: the mean path's noise, which the RMS carries, shrinks as
#: replicates rise); about 20 s more of two workers; make test-full reads half as many again
REPS = 48 if FULL else 32
LONG_REPS = 12 if FULL else 8
WORKERS = min(2, os.cpu_count() or 1)
TARGETS = {t.name: t for t in load_targets()}
#: coarse weights, for tests of the fitting machinery rather than of the fit (about a seventh of the default's agents)
COARSE = ("population.scale_general=80", "population.scale_cjs_families=4")


@pytest.fixture(scope="module")
def validated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every target, and the steadiness, on REPS 10-year and LONG_REPS 45-year runs (seeds other than the fit's and
    the ensemble's checks), each replicate drawing a member of the calibration ensemble as the baseline's batches do."""
    return validate_all(BASELINE, REPS, seed=2024, workers=WORKERS, overrides=("run.calibration=ensemble",),
                        long_reps=LONG_REPS)


@pytest.fixture(scope="module")
def validation(validated) -> pd.DataFrame:
    return validated[0].set_index("target")


# --- the measuring code, on hand-made event logs ---------------------------------------------------------------


def _people(rows):
    return pd.DataFrame(rows, columns=["person_id", "sex", "birth_month", "father_id", "convicted_before_start", "weight"]).astype(
        {"father_id": "Int64"}
    )


def _events(rows):
    df = pd.DataFrame(rows, columns=["person_id", "month", "event", "offence_month"])
    df["offence_month"] = df["offence_month"].astype("Int32")
    return df


def test_moj_window_examples():
    """Release at month 0: an offence at month 11 convicted at month 17 counts; one convicted at 19 does not; an
    offence before the release does not."""
    ppl = _people([(1, "M", -400, None, True, 1.0), (2, "M", -400, None, True, 1.0), (3, "M", -400, None, True, 1.0)])
    ev = _events([
        (1, 0, "release", None), (1, 11, "offence", 11), (1, 17, "conviction", 11),
        (2, 0, "release", None), (2, 11, "offence", 11), (2, 19, "conviction", 11),
        (3, 3, "release", None), (3, 2, "offence", 2), (3, 5, "conviction", 2),
    ])
    for person, counts in ((1, True), (2, False), (3, False)):
        sub = ev[ev["person_id"] == person]
        r = metrics.proven_reoffending(ppl, sub, "custody", 0, 12)
        assert r["cohort_agents"] == 1 and r["rate"] == (1.0 if counts else 0.0), person


def test_sons_metric_counts_only_sons_observed_from_10_to_40():
    """Sons born more than 10 years before the run (their juvenile record is unseen) and sons who leave or die
    before the age are not counted; a father convicted after the son's 40th does not count as convicted."""
    age = 40 * 12
    ppl = _people([
        (10, "M", -600, None, True, 1.0),   # convicted father
        (20, "M", -600, None, False, 1.0),  # father convicted only late
        (1, "M", -100, 10, False, 1.0),     # counted, convicted
        (2, "M", -200, 10, False, 1.0),     # born 200 months before the run: record before 10 unseen -> not counted
        (3, "M", 0, 10, False, 1.0),        # leaves at 30 -> not counted
        (4, "M", 0, 20, False, 1.0),        # counted; father convicted after the son is 40 -> "not convicted" group
    ])
    ev = _events([
        (1, 200, "conviction", 199), (3, 360, "exit", None), (20, age + 10, "conviction", age + 5), (4, age + 20, "death", None),
    ])
    r = metrics.sons_convicted_by_age(ppl, ev, 40, last_month=age + 30)
    assert r["sons"] == 2
    assert r["rate_father_convicted"] == 1.0 and r["rate_father_not_convicted"] == 0.0


def test_a_longer_run_begins_as_the_shorter_one():
    """sim validate runs its long runs to 45 years and counts the father-son targets on their first 40, as the fit's
    40-year runs did: that is only the same measure if a longer run's first months are the shorter run's, event for
    event (nothing drawn up front depends on the run's length)."""
    from sim.model import ReoffendingModel
    from sim.runs.output import events_frame, timeseries_frame

    frames = {}
    for years in (2, 3):
        params = scenario_for("short", BASELINE, COARSE, {"short": years})
        with ReoffendingModel(params, seed=11, record_offences=False) as model:
            model.run()
            frames[years] = timeseries_frame(model), events_frame(model)
    (ts2, ev2), (ts3, ev3) = frames[2], frames[3]
    assert len(ts3) == len(ts2) + 12
    pd.testing.assert_frame_equal(ts2.reset_index(drop=True), ts3.iloc[: len(ts2)].reset_index(drop=True))
    first = ev3[ev3["month"] < len(ts2)].reset_index(drop=True)
    assert len(ev3) > len(first) > 1000
    pd.testing.assert_frame_equal(ev2.reset_index(drop=True), first)


def test_already_in_cjs_definition():
    """The WECB share of crime: an offender counts as already in the CJS when under sentence, awaiting court for an
    earlier offence, or convicted in the last 24 months (24 counts, 25 does not); an old conviction alone does not."""
    from sim.processes.offending import already_in_cjs
    from sim.state.people import FREE, LICENCE, PROBATION

    month = 100
    status = np.array([FREE, FREE, FREE, FREE, LICENCE, PROBATION, FREE])
    awaiting = np.array([False, False, False, True, False, False, False])
    last_conviction = np.array([-1_000_000, month - 24, month - 25, -1_000_000, -1_000_000, -1_000_000, month - 1])
    got = already_in_cjs(status, awaiting, last_conviction, month, 24)
    assert got.tolist() == [False, True, False, True, True, True, True]


def test_awaiting_court_means_an_earlier_offence(monkeypatch):
    """An offence proven this month does not put its own author "in the CJS" for the same month's offences: only
    cases opened before the month count (with no supervision and no convictions, nobody is in the CJS at month 0
    unless a case from before the run is pending)."""
    from sim.processes import offending
    from sim.model import ReoffendingModel
    from sim.state.people import FREE

    params = scenario_for("short", BASELINE, ["run.years=1"])
    model = ReoffendingModel(params, seed=3, record_events=False)
    model.cases.pop_due(10**6)  # no cases from before the run
    p = model.people
    p.status[: p.n] = FREE  # everyone at liberty
    p.last_conviction_month[: p.n] = -1_000_000
    offending.step(model)
    assert model.tally["offences_proven"] > 0
    assert model.tally["offences_by_offenders_in_cjs"] == 0


# --- the calibrated baseline against the published targets ------------------------------------------------------

#: targets the current calibration does not reach (``known_gap`` in calibration/targets.toml, with the evidence): these
#: tests are expected to fail (strict, so they turn red as soon as a better calibration reaches them and the entry must go)
KNOWN_GAPS: dict[str, str] = {name: t.known_gap for name, t in TARGETS.items() if t.known_gap}


def _targets(run: str) -> list:
    names = [name for name, t in TARGETS.items() if t.run == run and t.weight > 0]
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[n])) if n in KNOWN_GAPS else n for n in names]


def test_the_start_lies_within_the_general_distribution():
    """The consistency target: the start's offender groups lie within the general distribution of propensity births
    reproduce (by construction since the groups are drawn from it, propensity_groups_from_general; with their own
    spread, as shipped until 2026-12-05, the excess was 0.49 and per head the baseline thinned over 45 years)."""
    from sim.state.population import start_tail_excess
    from sim.state.scenario import load_scenario

    t = TARGETS["start_within_general_distribution"]
    assert t.lower <= start_tail_excess(load_scenario(BASELINE)) <= t.upper


def test_partner_abuse_targets_are_judged_only_where_partner_abuse_runs():
    """A baseline without partner abuse reads 0 incidents: ``sim validate`` leaves the DA targets out there (until
    2026-12-07 it printed them as failures) and keeps them, with every other target, for the DA scenario."""
    from sim.state.scenario import load_scenario

    needing = {name for name, t in TARGETS.items() if t.needs == "domestic_abuse"}
    assert needing == {name for name in TARGETS if name.startswith("da_")}
    base, da = load_scenario(BASELINE), load_scenario("scenarios/domestic_abuse.toml")
    assert {name for name, t in TARGETS.items() if t.applies_to(base)} == set(TARGETS) - needing
    assert all(t.applies_to(da) for t in TARGETS.values())
    assert not TARGETS["da_incidents_per_year"].applies_to(load_scenario("scenarios/domestic_abuse.toml", ["domestic_abuse.incidents_per_month_base=0"]))


def _meets(r) -> bool:
    """Within the band, or outside it by less than 1.645 Monte Carlo standard errors of the mean: the rule the
    ensemble's members were kept by (``sim.fitting.ensemble.CHECK_Z``): a target the ensemble sits at the edge of is
    not failed on the noise of other seeds, and one whose 90% interval lies wholly outside the band fails. (The noise
    must leave that interval narrower than the band.) The members were checked one by one on 8 replicates at weights
    40 and 2; here the ensemble is read as a whole, so the rule is the same in kind, not the same check. On the
    tests' seeds it is what passes offences in year 10 / year 1 at 1.1003 (README, Calibration)."""
    return r["lower"] - CHECK_Z * r["mc_se"] <= r["simulated"] <= r["upper"] + CHECK_Z * r["mc_se"]


def _held(r, name: str, reps: int):
    assert r["replicates"] == reps
    half_band = (r["upper"] - r["lower"]) / 2
    assert CHECK_Z * r["mc_se"] < half_band, f"Monte Carlo error too large to judge {name}"
    assert _meets(r), (f"{name}: simulated {r['simulated']:.3f} (Monte Carlo se {r['mc_se']:.4f}), "
                       f"target band [{r['lower']}, {r['upper']}]")


@pytest.mark.parametrize("name", _targets("short"))
def test_short_run_target(validation, name):
    _held(validation.loc[name], name, REPS)


@pytest.mark.slow
@pytest.mark.parametrize("name", _targets("long"))
def test_father_son_target(validation, name):
    _held(validation.loc[name], name, LONG_REPS)


def test_a_mis_set_parameter_fails_the_calibration_check():
    """The excess hazard just after release raised by 2 (three times the hazard in the first month out, not the
    fitted value): the prison reoffending check must fail (so the test can fail)."""
    base = scenario_for("short", BASELINE)
    wrong = scenario_for("short", BASELINE, [f"offending.release_multiplier_initial={base.offending.release_multiplier_initial + 2}"])
    targets = [TARGETS["prison_one_year_proven_reoffending"]]
    right_rate = compare_to_targets(measure({"short": base}, 2, 7, WORKERS), targets).iloc[0]
    wrong_rate = compare_to_targets(measure({"short": wrong}, 2, 7, WORKERS), targets).iloc[0]
    assert wrong_rate["simulated"] > right_rate["simulated"] + 0.03
    assert not wrong_rate["pass"]
    assert np.isfinite(right_rate["simulated"])


def test_calibrate_reports_the_best_point_it_saw_within_budget(tmp_path):
    """A (very) short fit: it stops at its budget, its values lie inside the bounds, and re-measuring at the values
    it reports, on the same seeds, gives the loss it reports (so the record in fitted.toml is the point it claims).
    (At coarse weights, ``--set`` as a fit can be run: the machinery, not the fit, is under test.)"""
    from sim.fitting.calibration import calibrate, load_free_parameters, loss, write_fitted

    seen = []
    fit = calibrate(BASELINE, "short", reps=1, seed=6, maxfev=3, workers=1, log=seen.append, overrides=COARSE)
    assert fit["evaluations"] == 3 == len(seen)
    logged = [float(line.split("loss")[1].split()[0]) for line in seen]
    assert 0 < logged.index(min(logged)) < 2, f"on this seed the best point should be neither first nor last: {logged}"
    assert fit["loss"] == pytest.approx(min(logged), abs=5e-4)  # the best point, not the first or the last
    free = load_free_parameters()
    assert set(fit["values"]) == {k for k, v in free.items() if v["stage"] == "short"}
    for key, value in fit["values"].items():
        assert free[key]["lower"] <= value <= free[key]["upper"], key
    overrides = [f"{k}={v!r}" for k, v in fit["values"].items()]
    targets = [t for t in TARGETS.values() if t.run == "short" and t.weight > 0]
    again = compare_to_targets(measure({"short": scenario_for("short", BASELINE, [*COARSE, *overrides])}, 1, 6, 1), targets)
    assert loss(again) == pytest.approx(fit["loss"], rel=1e-6)

    out = tmp_path / "fitted.toml"
    out.write_text('[population]\nno_longer_free = { value = 3.0 }\n\n'
                   '[calibration]\nstage_short = { loss = 1.0 }\nstage_long = { loss = 2.0 }\n')
    write_fitted([{**fit, "stage": "joint"}], pd.DataFrame(columns=["target"]), out)
    import tomllib

    written = tomllib.loads(out.read_text())
    assert set(k for k in written["calibration"] if k.startswith("stage_")) == {"stage_joint"}  # a joint fit supersedes the stages
    assert "no_longer_free" not in written.get("population", {})  # a value the calibration no longer owns is dropped
    section, name = next(iter(fit["values"])).split(".")
    assert written[section][name]["value"] == pytest.approx(fit["values"][f"{section}.{name}"], rel=1e-5)


def test_measure_runs_its_own_number_of_long_replicates():
    """``long_reps`` sets the 40-year runs' replicates apart from the 10-year ones, on the first of the same seeds."""
    from conftest import SMALL, load

    short, long_ = load(*SMALL, "run.years=2"), load(*SMALL, "run.years=3")
    m = measure({"short": short, "long": long_}, reps=3, seed=4, workers=1, long_reps=2)
    seeds = m.groupby("metric")["seed"].apply(list)
    short_seeds = seeds["proven_reoffending_prison"]
    assert len(short_seeds) == 3
    assert seeds["sons_convicted_by_40_father_convicted"] == short_seeds[:2]


def test_a_long_run_gives_the_short_run_of_its_seed_and_it_is_not_run_again(monkeypatch):
    """Where a long run begins as the short one (the same scenario but its length), ``measure`` reads the short
    metrics of the long runs' seeds from the long runs as they pass the short run's months: the same rows, in the same
    order, as the runs made apart, with fewer replicates run. Another scenario is not taken for the short run."""
    from conftest import SMALL, load

    from sim.fitting import calibration

    short, long_ = load(*SMALL, "run.years=2"), load(*SMALL, "run.years=3")
    apart = pd.concat([measure({"short": short}, 3, 4), measure({"long": long_}, 2, 4)], ignore_index=True)
    tasks = []
    run_all = calibration.run_all
    monkeypatch.setattr(calibration, "run_all", lambda t, *a, **k: tasks.append(len(t)) or run_all(t, *a, **k))
    together = measure({"short": short, "long": long_}, reps=3, seed=4, long_reps=2)
    pd.testing.assert_frame_equal(together, apart)
    assert tasks == [3]  # one short replicate and two long ones, not five
    assert calibration.begins_as(long_, short) and not calibration.begins_as(short, long_)
    other = load(*SMALL, "run.years=3", "offending.release_multiplier_initial=3.0")
    assert not calibration.begins_as(other, short)
    measure({"short": short, "long": other}, reps=3, seed=4, long_reps=2)
    assert tasks == [3, 5]


def test_reoffending_by_previous_offences_on_a_hand_made_log():
    """The MoJ gradient by criminal history: the index event is a release or a conviction without custody;
    previous offences are the record at the start plus convictions before the index conviction (for a release,
    before the custody start that led to it); the follow-up and waiting period as in the one-year measure."""
    people = pd.DataFrame({
        "person_id": [1, 2, 3, 4, 5, 7], "birth_month": [-400, -400, -400, -400, -100, -400],
        "convictions_before_start": [0, 0, 12, 10, 11, 9], "weight": 1.0,
    })
    ev = _events([
        (1, 2, "conviction", 1), (1, 10, "offence", 10), (1, 14, "conviction", 10),  # none: reoffends (10, proven at 14)
        (2, 2, "conviction", 1), (2, 2, "custody_start", None), (2, 8, "release", None),  # none: index = release, no reoffence
        (3, 1, "release", None), (3, 20, "conviction", 5),  # 11+: offence at 5 proven too late (20 >= 1 + 18)
        (4, 0, "conviction", -1), (4, 3, "conviction", 2),  # 7-10: the second conviction is a proven reoffence
        (5, 0, "conviction", -1),  # a child: not in the adult cohort
        (7, 3, "conviction", 2), (7, 5, "conviction", 4), (7, 14, "conviction", 13), (7, 14, "custody_start", None),
        (7, 20, "release", None),  # in the second year: 9 + 2 convictions before the custody start -> 11+
    ])
    md = metrics.Microdata.from_frames(people, ev)
    first = metrics.proven_reoffending_by_previous_convictions(md, 0, 12)
    assert (first["size_none"], first["rate_none"]) == (2, 0.5)
    assert (first["size_7_10"], first["rate_7_10"]) == (2, 1.0)  # persons 4 and 7 (9 before; offence at 4 proven at 5)
    assert (first["size_11_plus"], first["rate_11_plus"]) == (1, 0.0)
    assert first["size_1_2"] == first["size_3_6"] == 0
    second = metrics.proven_reoffending_by_previous_convictions(md, 12, 24)
    assert second["size_1_2"] == 1  # person 1's conviction at 14 (one before)
    assert second["size_11_plus"] == 2  # person 3 (12 + 1 before the conviction at 20) and person 7 (9 + 2)
    assert second["size_none"] == 0


def test_a_record_without_a_fit_keeps_the_values_and_replaces_the_achieved_metrics(tmp_path):
    """``sim validate --record`` writes ``write_fitted([], table)``: fitted values and the fit's record stay as they
    were, the achieved metrics (and date) are the new check's."""
    import tomllib

    from sim.fitting.calibration import load_free_parameters, write_fitted

    key = next(iter(load_free_parameters()))
    section, name = key.split(".")
    out = tmp_path / "fitted.toml"
    out.write_text(f'[{section}]\n{name} = {{ value = 1.25, unit = "u", source = "fit" }}\n\n'
                   '[calibration]\nstage_joint = { loss = 1.0 }\nachieved.old_target = { simulated = 0.5 }\n')
    table = pd.DataFrame([{"target": "prison_one_year_proven_reoffending", "simulated": 0.41, "sim_p05": 0.40, "sim_p95": 0.42, "replicates": 8}])
    write_fitted([], table, out)
    written = tomllib.loads(out.read_text())
    assert written[section][name]["value"] == 1.25
    assert written["calibration"]["stage_joint"] == {"loss": 1.0}
    assert set(written["calibration"]["achieved"]) == {"prison_one_year_proven_reoffending"}


def test_validate_record_refuses_a_changed_scenario(tmp_path, capsys):
    """The record describes the fitted baseline: --record with --set is bad input (exit 2, nothing measured)."""
    from sim.cli import main

    before = (ROOT_CALIBRATION / "fitted.toml").read_bytes()
    assert main(["validate", "--record", "--set", "justice.p_recall_per_month=0.5", "--out", str(tmp_path / "v")]) == 2
    assert "--record" in capsys.readouterr().err
    assert (ROOT_CALIBRATION / "fitted.toml").read_bytes() == before
    assert not (tmp_path / "v").exists()


def test_calibrate_only_moves_the_named_parameters_and_refuses_others():
    """``--only``: a polish of some free parameters; a name that is not a free parameter of the stage is bad input."""
    from sim.fitting.calibration import calibrate
    from sim.state.scenario import ScenarioError

    key = "offending.release_multiplier_initial"
    fit = calibrate(BASELINE, "short", reps=1, seed=5, maxfev=2, workers=1, log=lambda _: None, only=[key], overrides=COARSE)
    assert set(fit["values"]) == {key} and fit["parameters"] == [key] and fit["evaluations"] == 2
    with pytest.raises(ScenarioError, match="family.rr_father_convicted_son"):
        calibrate(BASELINE, "short", reps=1, seed=5, maxfev=2, workers=1, log=lambda _: None, only=["family.rr_father_convicted_son"],
                  overrides=COARSE)


# --- is the baseline steady? -----------------------------------------------------------------------------------


def test_yearly_relative_takes_flows_by_yearly_total_and_stocks_by_yearly_mean():
    """Two years of a hand-made series: flows summed by year over the first year's total (adult convictions are all
    convictions less children's), stocks' yearly means over their first month; a part year is left out."""
    months = 30
    ts = pd.DataFrame({"month": np.arange(months), "children_convicted": np.r_[np.full(12, 1.0), np.full(18, 3.0)],
                       "child_first_time_entrants": np.r_[np.full(12, 2.0), np.full(18, 1.0)],
                       "convictions": np.r_[np.full(12, 5.0), np.full(18, 4.0)],
                       "custody": np.r_[100.0, np.full(11, 980 / 11), np.full(18, 120.0)], "licence": np.full(months, 50.0),
                       "probation": np.r_[20.0, np.full(6, 0.0), np.full(23, 32.0)], "population": np.r_[1000.0, np.full(29, 1100.0)],
                       "children": np.r_[200.0, np.full(29, 250.0)]})
    out = metrics.yearly_relative(ts)
    assert list(out.index) == [0, 1]
    assert out.loc[1, "children_convicted"] == 3.0  # 36 / 12
    assert out.loc[1, "child_first_time_entrants"] == 0.5  # 12 / 24
    assert out.loc[1, "adult_convictions"] == 0.25  # (48 - 36) / (60 - 12)
    assert out.loc[0, "custody"] == pytest.approx(0.9) and out.loc[1, "custody"] == 1.2
    assert out.loc[0, "probation"] == pytest.approx(0.75)  # (20 + 6 months at 0 + 5 at 32) / 12 = 15, over 20
    assert out.loc[0, "population"] == pytest.approx(1.0916667) and out.loc[1, "population"] == pytest.approx(1.1)
    assert out.loc[1, "children"] == 1.25 and out.loc[1, "adults"] == pytest.approx(850 / 800)  # the people read per head of


def test_steadiness_judges_each_series_per_head_of_the_children_or_adults():
    """A flow that grows as fast as the people it is counted among is steady per head, which is what is judged (the
    level is shown beside it); the children and adults are shown, not judged. Per replicate, then averaged; a series
    whose heads are missing is judged as it is."""
    criteria = {"tolerance": 0.10, "population_growth_10_years": 0.09, "population_tolerance": 0.03,
                "population_tolerance_after_projection": 0.08}
    measured = pd.DataFrame(
        _steady_rows("adult_convictions", [[1.0, 1.0], [1.2, 1.4]])  # mean 1.3 in year 1: far outside as a level
        + _steady_rows("adults", [[1.0, 1.0], [1.2, 1.4]])  # the adults grew alike, replicate by replicate
        + _steady_rows("children_convicted", [[1.0, 1.0], [2.6, 2.6]])  # 2.6 as a level; per head 2.08 and 3.25
        + _steady_rows("children", [[1.0, 1.0], [1.25, 0.8]])
        + _steady_rows("licence", [[1.0, 1.0], [1.3, 1.3]], run="other"))  # no adults in that run: judged as it is
    table = steadiness(measured, criteria)
    adult = table[table["series"] == "adult_convictions"].set_index("year")
    assert adult.loc[1, "within"] and adult.loc[1, "judged"] == "per head" and adult.loc[1, "per_head"] == pytest.approx(1.0)
    assert adult.loc[1, "mean"] == pytest.approx(1.3)
    kids = table[table["series"] == "children_convicted"].set_index("year")
    assert kids.loc[1, "per_head"] == pytest.approx((2.08 + 3.25) / 2) and not kids.loc[1, "within"]
    licence = table[table["run"] == "other"].set_index("year")
    assert licence.loc[1, "judged"] == "level" and not licence.loc[1, "within"]
    partial = pd.DataFrame(_steady_rows("custody", [[1.0, 1.0], [1.5, 1.6]]) + _steady_rows("adults", [[1.0], [1.0]]))
    custody = steadiness(partial, criteria).query("series == 'custody'").set_index("year")  # seed 1's adults missing
    assert custody.loc[1, "judged"] == "level" and custody.loc[1, "mean"] == pytest.approx(1.55) and not custody.loc[1, "within"]
    heads = table[table["series"].isin(["adults", "children"])]
    assert heads["expected"].isna().all() and heads["within"].all() and heads["per_head"].isna().all()
    summary = steadiness_summary(table).set_index(["run", "series"])
    assert summary.loc[("short", "adult_convictions"), "steady"] and not summary.loc[("short", "children_convicted"), "steady"]
    assert summary.loc[("short", "adult_convictions"), "worst_per_head"] == pytest.approx(1.0)
    assert ("short", "adults") not in summary.index  # nothing judged


def test_steadiness_allows_for_the_mean_s_monte_carlo_error_and_holds_stocks_to_their_rms():
    """A year's mean outside the tolerance by less than 1.645 Monte Carlo standard errors of the mean counts as within
    it (as a target's check counts it), by more it does not; with fewer than 4 replicates nothing is
    allowed. A stock (custody,
    licence, probation) whose every year is within but whose mean path's RMS yearly deviation exceeds
    ``stock_rms_limit`` is not steady; a flow with the same path is."""
    criteria = {"tolerance": 0.10, "population_growth_10_years": 0.09, "population_tolerance": 0.03,
                "population_tolerance_after_projection": 0.08, "stock_rms_limit": 0.05}
    near = [1.04, 1.12, 1.20, 1.28]  # mean 1.16: 0.06 beyond; SE 0.103 / sqrt(4) = 0.052, allowed 0.085
    far = [1.16, 1.18, 1.20, 1.22]  # mean 1.19: 0.09 beyond; SE 0.013, allowed 0.021
    measured = pd.DataFrame(
        _steady_rows("adult_convictions", [[1.0] * 4, near]) + _steady_rows("children_convicted", [[1.0] * 4, far])
        + _steady_rows("adult_convictions", [[1.0] * 3, [1.08, 1.16, 1.24]], run="few")  # 3 replicates: none allowed
        + _steady_rows("custody", [[1.16], [1.16]], run="one")  # one replicate: 0.06 beyond, nothing allowed
        + _steady_rows("licence", [[1.0] * 2] + [[1.08, 1.08]] * 4, run="level")  # every year within; RMS 0.072
        + _steady_rows("adult_convictions", [[1.0] * 2] + [[1.08, 1.08]] * 4, run="level"))
    table = steadiness(measured, criteria).set_index(["run", "series", "year"])
    assert table.loc[("short", "adult_convictions", 1), "mc_se"] == pytest.approx(np.std(near, ddof=1) / 2)
    few = table.loc[("few", "adult_convictions", 1)]
    assert few["mc_se"] == 0 and not few["within"]
    assert table.loc[("short", "adult_convictions", 1), "within"]
    assert not table.loc[("short", "children_convicted", 1), "within"]
    assert not table.loc[("one", "custody", 1), "within"]
    summary = steadiness_summary(table.reset_index()).set_index(["run", "series"])
    assert summary.loc[("level", "licence"), "rms"] == pytest.approx(np.sqrt(4 * 0.08 ** 2 / 5))
    assert not summary.loc[("level", "licence"), "steady"] and summary.loc[("level", "adult_convictions"), "steady"]
    assert summary.loc[("short", "adult_convictions"), "steady"]
    assert summary.loc[("level", "licence"), "why"] == "RMS over 0.05"
    del criteria["stock_rms_limit"]  # (no limit given: the tolerance alone)
    unlimited = steadiness_summary(steadiness(measured, criteria)).set_index(["run", "series"])
    assert unlimited.loc[("level", "licence"), "steady"]


def _steady_rows(series: str, values_by_year: list[list[float]], run: str = "short") -> list[dict]:
    return [{"metric": f"steady:{run}:{series}:{year}", "seed": k, "value": v}
            for year, values in enumerate(values_by_year) for k, v in enumerate(values)]


def test_steadiness_reads_the_mean_path_against_its_mean_start_not_the_mean_of_ratios():
    """Replicates of a flat series whose first year is noisy: each replicate's ratio to its own start reads high after
    a low start and low after a high one, and their plain mean is biased upward (by about the start's squared
    coefficient of variation). Weighted by their starts, the ratios give the mean path over its mean start, which
    is flat; its error is the ratio estimator's. Per head, each replicate is weighted by its start's rate per head
    (the replicates' heads differ), and a long run's series at the start's ages by its standardised start."""
    rng = np.random.default_rng(5)
    reps, years = 400, 6
    levels = rng.poisson(20.0, size=(reps, years)).astype(float)  # flat in expectation, a CV of 22% a year
    heads_start = rng.uniform(500, 2000, reps)  # the replicates' children differ in number...
    heads = heads_start[:, None] * (1 + 0.02 * rng.standard_normal((reps, years)))  # ...and move a little
    heads[:, 0] = heads_start
    rows = []
    for k in range(reps):
        rows += [{"metric": f"steady:short:children_convicted:{y}", "seed": k, "value": levels[k, y] / levels[k, 0]} for y in range(years)]
        rows += [{"metric": f"steady:short:children:{y}", "seed": k, "value": heads[k, y] / heads_start[k]} for y in range(years)]
        rows += [{"metric": f"steady_at_start_ages:short:children_convicted:{y}", "seed": k, "value": levels[k, y] / levels[k, 0]} for y in range(years)]
        rows += [{"metric": "steady_start:short:children_convicted", "seed": k, "value": levels[k, 0]},
                 {"metric": "steady_start:short:children", "seed": k, "value": heads_start[k]},
                 {"metric": "steady_start_at_start_ages:short:children_convicted", "seed": k, "value": levels[k, 0]}]
    measured = pd.DataFrame(rows)
    table = steadiness(measured).query("series == 'children_convicted' and year > 0")
    plain = steadiness(measured[~measured["metric"].str.startswith("steady_start")]).query("series == 'children_convicted' and year > 0")
    assert plain["mean"].mean() > 1.03  # the mean of ratios: biased up
    assert abs(table["mean"].mean() - 1) < 0.03
    assert table["mean"].tolist() == pytest.approx(list(levels[:, 1:].sum(axis=0) / levels[:, 0].sum()))
    rate = levels / heads  # each replicate's children convicted per child, year by year
    assert table["per_head"].tolist() == pytest.approx(list(rate[:, 1:].sum(axis=0) / rate[:, 0].sum()))
    assert table["per_head_at_start_ages"].tolist() == pytest.approx(table["mean"].tolist())
    ratio = levels[:, 1] / levels[:, 0]
    r = levels[:, 1].sum() / levels[:, 0].sum()
    se = np.sqrt(reps / (reps - 1) * ((levels[:, 0] * (ratio - r)) ** 2).sum()) / levels[:, 0].sum()
    assert table["mc_se"].iloc[0] == pytest.approx(se)
    assert 0.5 * plain["mc_se"].iloc[0] < se < plain["mc_se"].iloc[0]  # (the low starts' large ratios weigh less)
    # a replicate without a start measured, beside others with one, is left out rather than weighted 1
    partial = measured[~((measured["metric"] == "steady_start:short:children_convicted") & (measured["seed"] == 0))]
    year1 = steadiness(partial).query("series == 'children_convicted' and year == 1")["mean"].iloc[0]
    assert year1 == pytest.approx(levels[1:, 1].sum() / levels[1:, 0].sum())


def test_steady_metrics_carry_each_series_start():
    """A replicate's steady metrics hold its series relative to their start and the start itself, which weights it."""
    months = 24
    ts = pd.DataFrame({"month": np.arange(months), "children_convicted": np.r_[np.full(12, 2.0), np.full(12, 3.0)],
                       "child_first_time_entrants": np.full(months, 1.0), "convictions": np.full(months, 5.0),
                       "custody": np.r_[100.0, np.full(23, 110.0)], "licence": np.full(months, 50.0),
                       "probation": np.full(months, 20.0), "population": np.full(months, 1000.0), "children": np.full(months, 200.0)})
    m = metrics.steady_metrics(ts, "short")
    assert m["steady_start:short:children_convicted"] == 24.0 and m["steady:short:children_convicted:1"] == 1.5
    assert m["steady_start:short:adult_convictions"] == 36.0 and m["steady_start:short:custody"] == 100.0
    assert m["steady:short:custody:1"] == pytest.approx(1.1) and m["steady_start:short:children"] == 200.0


def test_steadiness_judges_the_mean_of_replicates_against_the_expected_path():
    """A series whose replicates' mean stays within the tolerance is steady even if single replicates stray; one
    whose mean leaves it is not; the population is held to its projected growth (a year's mean at mid-year), after
    the projection's 10 years to its rate continued, within a wider tolerance; a series with nothing to judge (a start
    of 0) gets no verdict."""
    criteria = {"tolerance": 0.10, "population_growth_10_years": 0.21, "population_tolerance": 0.02,
                "population_tolerance_after_projection": 0.3}
    measured = pd.DataFrame(
        _steady_rows("custody", [[1.0, 1.0], [1.3, 0.8], [0.85, 1.2]])  # means 1, 1.05, 1.025: steady, replicates stray
        + _steady_rows("children_convicted", [[1.0, 1.0], [1.05, 1.1], [1.2, 1.15]])  # 1.175 in year 2: drifts
        + _steady_rows("population", [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])  # flat where 1.1 is expected by year 5: drifts
        + _steady_rows("population", [[1.0]] * 12 + [[5.0]], run="long")  # year 12 (13th) is beyond the projection
        + _steady_rows("population", [[1.025 * 1.21 ** ((12 * y + 5.5) / 120)] for y in range(13)], run="far")
        + _steady_rows("licence", [[float("nan")], [float("nan")]])
        + [{"metric": "proven_reoffending_prison", "seed": 0, "value": 0.4}])
    table = steadiness(measured, criteria)
    assert set(table["series"]) == {"custody", "children_convicted", "population", "licence"}
    custody = table[table["series"] == "custody"]
    assert custody["within"].all() and custody["p95"].max() > 1.1 and custody["replicates"].eq(2).all()
    kids = table[table["series"] == "children_convicted"].set_index("year")
    assert list(kids["within"]) == [True, True, False]
    pop = table[(table["series"] == "population") & (table["run"] == "short")].set_index("year")
    assert 1 < pop.loc[0, "expected"] < pop.loc[1, "expected"] < pop.loc[2, "expected"] < 1.21 and pop.loc[2, "tolerance"] == 0.02
    assert list(pop["within"]) == [True, False, False]  # half a year of 21% a decade is within 2% of no change; 1.5 is not
    summary = steadiness_summary(table).set_index(["run", "series"])
    assert summary.loc[("short", "custody"), "steady"] and not summary.loc[("short", "children_convicted"), "steady"]
    assert summary.loc[("short", "children_convicted"), "worst_year"] == 2
    # the mean path's RMS yearly deviation: custody's means 1, 1.05 and 1.025 deviate 0, 5% and 2.5%
    assert summary.loc[("short", "custody"), "rms"] == pytest.approx(np.sqrt((0.05 ** 2 + 0.025 ** 2) / 3))
    assert summary.loc[("long", "population"), "worst_value"] == 5.0  # year 12 is judged against the rate continued
    assert summary.loc[("long", "population"), "worst_year"] == 12
    assert summary.loc[("long", "population"), "tolerance"] == 0.3
    far = table[(table["series"] == "population") & (table["run"] == "far")].set_index("year")
    assert not far.loc[:9, "within"].any() and far.loc[10:, "within"].all()  # 2.5% off: outside 0.02, inside 0.3
    assert (far["judged"] == "level").all()
    assert ("short", "licence") not in summary.index


def test_within_and_after_the_projection_each_series_is_judged_per_head():
    """Within the projection's 10 years and after them a series is judged per head of the people it is counted
    among, so a flow that grows with the adults is steady and one that outgrows them by more than the tolerance
    drifts, however fast the adults grow; the summary says the furthest value was per head."""
    criteria = {"tolerance": 0.10, "population_growth_10_years": 0.09, "population_tolerance": 0.03,
                "population_tolerance_after_projection": 0.08}
    grow = [1.0 + 0.04 * y for y in range(14)]  # +4% a year: 1.36 by year 9, far outside 10% as a level
    measured = pd.DataFrame(
        _steady_rows("adults", [[g] for g in grow], run="long")
        + _steady_rows("adult_convictions", [[g] for g in grow], run="long")  # grows with the adults
        + _steady_rows("custody", [[g] for g in grow[:10]] + [[1.2 * g] for g in grow[10:]], run="long"))  # 1.2 x per head from year 10
    table = steadiness(measured, criteria).set_index(["series", "year"])
    assert (table.loc["adult_convictions", "judged"] == "per head").all()
    assert table.loc["adult_convictions", "within"].all()  # 1.04-1.52 as levels, exactly 1 per head
    assert not table.loc["custody", "within"].loc[10:].any() and table.loc["custody", "within"].loc[:9].all()
    summary = steadiness_summary(steadiness(measured, criteria)).set_index("series")
    assert summary.loc["adult_convictions", "steady"] and not summary.loc["custody", "steady"]
    assert summary.loc["custody", "worst_judged"] == "per head" and summary.loc["custody", "worst_value"] == pytest.approx(1.2)


def test_the_projected_population_follows_the_nation_s_slowing_growth():
    """Essex's path grows by its first decade's projection, then by the same multiple (in logs) of the national
    projection's growth: where the nation stops growing Essex stops too, and a nation growing as fast in every
    decade gives the first rate continued (as without a national projection)."""
    criteria = {"population_growth_10_years": 0.09}
    years = np.array([0.0, 5.0, 10.0, 20.0, 45.0])
    continued = projected_population(years, criteria)
    assert continued == pytest.approx(1.09 ** (years / 10))
    steady_nation = projected_population(years, criteria | {"national_population_projection": [[0, 50], [10, 55], [75, 55]]})
    assert steady_nation[:3] == pytest.approx(continued[:3]) and steady_nation[3:] == pytest.approx([1.09, 1.09])
    even = [[0, 50.0], [10, 50.0 * 1.05], [60, 50.0 * 1.05 ** 6]]  # 5% a decade, every decade
    assert projected_population(years, criteria | {"national_population_projection": even}) == pytest.approx(continued)
    shipped = load_steadiness_criteria()  # ONS 2012-based: UK 63.7m, 68.0m at 10 years, 73.3m at 25, 86.5m at 75
    assert projected_population(np.array([45.0]), shipped)[0] == pytest.approx(1.313, abs=0.005)  # (1.09 ** 4.5 = 1.47)
    for bad in ([[5, 50], [15, 55], [80, 60]], [[0, 50], [10, 50], [80, 60]], [[0, 50], [20, 55], [10, 60]]):
        with pytest.raises(ScenarioError, match="national_population_projection"):  # not from 0; no growth by 10; unordered
            projected_population(years, criteria | {"national_population_projection": bad})
    short = criteria | {"national_population_projection": [[0, 50], [10, 55], [20, 57]]}  # beyond year 20: its last rate
    log_path = np.log(projected_population(np.array([10.0, 20.0, 30.0, 40.0]), short))
    assert np.diff(log_path) == pytest.approx([log_path[1] - log_path[0]] * 3)  # the decade 10-20's growth, each decade after
    assert 0 < log_path[1] - log_path[0] < log_path[0]  # slower than the first decade (57/55 against 55/50)


def test_a_long_run_s_adult_series_are_judged_at_the_start_s_ages():
    """Where a long run gives an adult series per adult at the first year's ages (``steady_at_start_ages``), that is
    what is judged, every year (the adults' ageing is demography, not drift); the crude reading per head stays beside
    it, and a series without it is judged per head."""
    criteria = {"tolerance": 0.10, "population_growth_10_years": 0.09, "population_tolerance": 0.03,
                "population_tolerance_after_projection": 0.08}
    years = 14
    aged = [{"metric": f"steady_at_start_ages:long:custody:{y}", "seed": 0, "value": 0.95} for y in range(years)]
    measured = pd.DataFrame(
        _steady_rows("adults", [[1.0 + 0.04 * y] for y in range(years)], run="long")
        + _steady_rows("custody", [[1.0]] * years, run="long")  # level: 0.71 per adult by year 13 (older adults)
        + _steady_rows("probation", [[1.0]] * years, run="long")  # no reading at the start's ages: per head
        + aged)
    table = steadiness(measured, criteria).set_index(["series", "year"])
    custody, probation = table.loc["custody"], table.loc["probation"]
    assert (custody["judged"] == "per head at the start's ages").all() and custody["within"].all()
    assert custody["judged_value"].loc[10:].eq(0.95).all() and custody["per_head"].loc[13] == pytest.approx(1 / 1.52)
    assert (probation["judged"].loc[10:] == "per head").all() and not probation["within"].loc[10:].any()
    summary = steadiness_summary(steadiness(measured, criteria)).set_index("series")
    assert summary.loc["custody", "steady"] and not summary.loc["probation", "steady"]


def test_adults_by_age_reads_the_series_at_the_first_year_s_ages():
    """``metrics.AdultsByAge``: adults who grow older at unchanged rates by age read 1 at the first year's ages though
    their crude rates per adult fall (custody from 11 to 6.5 per 200 adults; convictions alike); a stock none has
    at the start has no reading."""
    from types import SimpleNamespace

    from sim.metrics import AGE_BANDS, AdultsByAge
    from sim.state.events import EVENT_CODE

    def month(young: float, young_custody: float, old: float, old_custody: float) -> np.ndarray:
        counts = np.zeros((AGE_BANDS, 4))
        counts[0] = [young - young_custody, young_custody, 0, 0]  # 18-22
        counts[5] = [old - old_custody, old_custody, 0, 0]  # 43-47
        return counts

    by_age = AdultsByAge()
    by_age.counts = [month(100, 10, 100, 1)] * 12 + [month(50, 5, 150, 1.5)] * 12  # the same rates, older adults
    conviction = EVENT_CODE["conviction"]
    rows = np.array([0, 0, 1, 1, 0, 1, 1, 1])  # person 0 aged 20 (weight 1), person 1 aged 45 (weight 0.5)
    months = np.array([1, 2, 3, 4, 13, 14, 15, 16])  # year 1: 2 and 1 against 100 each; year 2: 1 against 50, 1.5 against 150
    model = SimpleNamespace(events=SimpleNamespace(arrays=lambda: (rows, months, np.full(8, conviction))),
                            people=SimpleNamespace(birth_month=np.array([-240, -540]), weight=np.array([1.0, 0.5])),
                            params=SimpleNamespace(family=SimpleNamespace(age_adult=18)))
    aged = by_age.at_start_ages(model)
    assert aged["custody"].tolist() == pytest.approx([1.0, 1.0])
    assert aged["adult_convictions"].tolist() == pytest.approx([1.0, 1.0])  # crude: 3 then 2.5 per 200 adults
    assert aged["licence"].isna().all() and aged["probation"].isna().all()
    by_age.counts[12:] = [month(50, 10, 150, 1.5)] * 12  # the young's custody rate doubles
    assert by_age.at_start_ages(model)["custody"].iloc[1] == pytest.approx((0.5 * 0.2 + 0.5 * 0.01) / 0.055)
    steady = by_age.steady_metrics(model, "long")  # (the start's rate at its ages weights the replicate)
    assert steady["steady_start_at_start_ages:long:custody"] == pytest.approx(0.055)
    assert steady["steady_at_start_ages:long:custody:1"] == pytest.approx((0.5 * 0.2 + 0.5 * 0.01) / 0.055)


def test_adults_by_age_counts_a_run_s_adults():
    """On a real run, the adults it counts each month are the monthly record's (population less children)."""
    from conftest import SMALL, load
    from sim.metrics import AGE_BANDS, AdultsByAge
    from sim.model import ReoffendingModel
    from sim.runs.output import timeseries_frame

    by_age = AdultsByAge()
    with ReoffendingModel(load(*SMALL, "run.years=2"), seed=8, record_offences=False) as model:
        model.run(each_month=by_age)
        aged = by_age.at_start_ages(model)
        ts = timeseries_frame(model)
    counts = np.stack(by_age.counts)
    assert counts.shape == (24, AGE_BANDS, 4)
    np.testing.assert_allclose(counts.sum(axis=(1, 2)), ts["population"] - ts["children"], rtol=1e-9)
    np.testing.assert_allclose(counts[:, :, 1].sum(axis=1), ts["custody"], rtol=1e-9)
    assert len(aged) == 2 and aged["adult_convictions"].iloc[0] == pytest.approx(1.0)  # (against the first year's)
    crude = metrics.yearly_relative(ts)
    for stock in ("custody", "licence", "probation"):  # against the first month's, as the crude reading: in the first year
        # the ages have hardly moved, so the two agree there
        assert aged[stock].iloc[0] == pytest.approx(crude[stock].iloc[0] / crude["adults"].iloc[0], rel=0.02), stock


def test_the_worst_year_is_the_one_furthest_outside_its_own_tolerance():
    """The population's tolerance widens after the projection, so the year to report is the one furthest from its
    path in units of its own tolerance: 4% off in year 6 (tolerance 3%) is worse than 6% off in year 21 (8%)."""
    criteria = {"tolerance": 0.10, "population_growth_10_years": 0.09, "population_tolerance": 0.03,
                "population_tolerance_after_projection": 0.08}
    path = [1.09 ** ((12 * y + 5.5) / 120) for y in range(25)]
    values = [p * (1.04 if y == 6 else 1.06 if y == 21 else 1.0) for y, p in enumerate(path)]
    table = steadiness(pd.DataFrame(_steady_rows("population", [[v] for v in values], run="long")), criteria)
    summary = steadiness_summary(table).set_index("series").loc["population"]
    assert not summary["steady"] and summary["worst_year"] == 6 and summary["tolerance"] == 0.03
    assert table.set_index("year").loc[21, "within"]


def test_both_readings_of_the_cjs_share_are_reported(validation):
    """The WECB's 40-50% is fitted on the reading its source supports (anyone previously convicted); the other reading
    (offenders in the CJS now) is reported beside it, not fitted, and is the narrower of the two."""
    primary, other = validation.loc["share_of_crime_by_known_offenders"], validation.loc["share_of_crime_by_offenders_in_cjs"]
    assert primary["weight"] > 0 and other["weight"] == 0
    assert 0 < other["simulated"] < primary["simulated"] < 1


def test_the_baseline_is_steady(validated):
    """Every steady series of the 10-year runs stays within its tolerance of its expected path per head, every year
    (steady since the start spreads the offender families' children over childhood, 2026-12-03; judged per head since
    desistance came into the start's records, 2026-12-05, when the series began to grow with Essex). Closest to the
    edge: children convicted, 0.94-0.99 per child on the README's 100 replicates (seed 1007) on the ensemble of the
    fourth revision of 2026-12-06: with cautions few children are convicted, and the youth series' mean path over 16
    replicates, each drawing a member, varies 5-10% from year to year, so a year's mean counts as
    within its tolerance when outside it by less than 1.645 Monte Carlo standard errors (``STEADY_Z``), as a target's
    check counts it; the stocks' RMS yearly deviation is held to 0.05 besides."""
    summary = steadiness_summary(validated[1])
    drifting = summary[(summary["run"] == "short") & ~summary["steady"]]
    assert drifting.empty, drifting.to_string()


def test_the_baseline_is_steady_per_head_over_45_years(validated):
    """Every steady series of the 45-year runs stays within its tolerance per head (the adult series per adult at the
    first year's ages); the population on its projected path. (An expected failure until the model's tenth revision,
    2026-12-07: on this seed custody per adult at the first year's ages rose to 1.15, RMS 0.106, while the drawn past
    gave the prolific more chances to desist than the run's courts do; README, Is the baseline steady?)"""
    summary = steadiness_summary(validated[1])
    drifting = summary[(summary["run"] == "long") & ~summary["steady"]]
    assert drifting.empty, drifting.to_string()


def test_a_polish_is_recorded_after_the_fit_it_starts_from(tmp_path):
    """A fit of some parameters only (--only) keeps the record of the fit it polishes and adds its own, numbered; a
    new fit of every parameter replaces them all."""
    import tomllib

    from sim.fitting.calibration import load_free_parameters, write_fitted

    key = next(iter(load_free_parameters()))
    out = tmp_path / "fitted.toml"
    out.write_text('[calibration]\nstage_joint = { method = "history matching", loss = 9.0 }\n')
    fit = {"stage": "short", "only": [key], "values": {key: 2.0}, "loss": 5.0, "evaluations": 3, "seconds": 1.0, "reps": 2, "seed": 1}
    write_fitted([fit], pd.DataFrame(columns=["target"]), out)
    write_fitted([{**fit, "stage": "joint", "loss": 4.0}], pd.DataFrame(columns=["target"]), out)
    record = tomllib.loads(out.read_text())["calibration"]
    assert record["stage_joint"]["method"] == "history matching"
    assert (record["polish_1_short"]["loss"], record["polish_2_joint"]["loss"]) == (5.0, 4.0)
    write_fitted([{**fit, "stage": "joint", "only": []}], pd.DataFrame(columns=["target"]), out)
    record = tomllib.loads(out.read_text())["calibration"]
    assert [k for k in record if k.startswith(("stage_", "polish_"))] == ["stage_joint"]
    assert record["stage_joint"]["method"].startswith("least squares")


def test_sim_calibrate_records_a_polish_once(tmp_path, monkeypatch):
    """`sim calibrate --only` writes the values, validates on other seeds and writes the achieved metrics: the polish
    is on record once (it was twice: both writes added a record)."""
    import shutil
    import tomllib

    import sim.fitting.calibration as cal
    from sim.cli import main

    fitted = tmp_path / "fitted.toml"
    shutil.copy(cal.CALIBRATION_DIR / "fitted.toml", fitted)
    before = [k for k in tomllib.loads(fitted.read_text())["calibration"] if k.startswith("polish_")]
    key = next(iter(cal.load_free_parameters()))
    fake = {"stage": "short", "only": [key], "values": {key: 0.5}, "loss": 1.0, "evaluations": 2, "seconds": 1.0, "reps": 1,
            "long_reps": 1, "seed": 5, "parameters": [key]}
    table = pd.DataFrame([{"target": "prison_one_year_proven_reoffending", "simulated": 0.4, "sim_p05": 0.39, "sim_p95": 0.41,
                           "replicates": 8}])
    real_write = cal.write_fitted
    monkeypatch.setattr(cal, "calibrate", lambda *a, **k: fake)
    monkeypatch.setattr(cal, "validate", lambda *a, **k: table)
    monkeypatch.setattr(cal, "write_fitted", lambda fits, t, path=fitted: real_write(fits, t, fitted))
    assert main(["calibrate", "--stage", "short", "--only", key, "--reps", "1"]) == 0
    record = tomllib.loads(fitted.read_text())["calibration"]
    after = [k for k in record if k.startswith("polish_")]
    assert after == before + [f"polish_{len(before) + 1}_short"]
    assert record["achieved"]["prison_one_year_proven_reoffending"]["simulated"] == 0.4


def test_sim_calibrate_set_applies_to_the_fit_and_its_check_and_is_recorded(tmp_path, monkeypatch, capsys):
    """`sim calibrate --set` (e.g. coarser weights) reaches the fit and its out-of-sample check, and the record says
    so; with history matching it is refused in one line (sim ensemble --set does that)."""
    import shutil
    import tomllib

    import sim.fitting.calibration as cal
    from sim.cli import main

    fitted = tmp_path / "fitted.toml"
    shutil.copy(cal.CALIBRATION_DIR / "fitted.toml", fitted)
    key = next(iter(cal.load_free_parameters()))
    seen = {}

    def fake_calibrate(*a, **k):
        seen["fit"] = k["overrides"]
        return {"stage": "short", "only": [key], "values": {key: 0.5}, "loss": 1.0, "evaluations": 2, "seconds": 1.0,
                "reps": 1, "long_reps": 1, "seed": 5, "parameters": [key], "overrides": list(k["overrides"])}

    def fake_validate(scenario, reps, seed, workers, overrides=()):
        seen["check"] = list(overrides)
        return pd.DataFrame(columns=["target"])

    real_write = cal.write_fitted
    monkeypatch.setattr(cal, "calibrate", fake_calibrate)
    monkeypatch.setattr(cal, "validate", fake_validate)
    monkeypatch.setattr(cal, "write_fitted", lambda fits, t, path=fitted: real_write(fits, t, fitted))
    weights = ["population.scale_general=40", "population.scale_cjs_families=2"]
    assert main(["calibrate", "--stage", "short", "--only", key, "--reps", "1", "--set", weights[0], "--set", weights[1]]) == 0
    assert seen == {"fit": tuple(weights), "check": weights}
    record = tomllib.loads(fitted.read_text())["calibration"]
    newest = [k for k in record if k.startswith("polish_")][-1]
    assert record[newest]["overrides"] == weights
    capsys.readouterr()
    assert main(["calibrate", "--method", "history-matching", "--set", weights[0]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set" in err[0]
