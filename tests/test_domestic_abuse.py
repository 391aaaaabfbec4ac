"""Domestic abuse between partners and the DA hub: incidents in band, who the victims are, exposure read from the
microdata, common random numbers between the baseline and the hub, and the hub's costs. Partner abuse is on in
scenarios/domestic_abuse.toml (off in the calibrated baseline, which is checked to be unchanged by it)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sim.appraisal import costs as C
from sim.model import ReoffendingModel
from sim.processes import da_hub
from sim.runs.output import events_frame, people_frame, summarise, timeseries_frame
from sim.state.scenario import load_scenario

YEARS = 3
# held-out seeds: the calibration used 1 and validation 1007
SEEDS = (4101, 4102)
#: coarser weights (a third of the default's agents), for tests of exact equality and of which agencies pay: they hold
#: at any weights, and need no default-weights replicate (about 2.5 s of a core to build)
COARSE = ["population.scale_general=40", "population.scale_cjs_families=2"]


def run(scenario: str = "scenarios/domestic_abuse.toml", seed: int = SEEDS[0], years: float = YEARS, sets: list[str] = ()):
    params = load_scenario(scenario, [f"run.years={years}", *sets])
    return ReoffendingModel(params, seed=seed).run()


@pytest.fixture(scope="module")
def baseline_runs():
    return [run(seed=s) for s in SEEDS]


def test_incidents_repeats_and_high_risk_within_the_targets_bands(baseline_runs):
    import tomllib

    bands = tomllib.loads(open("calibration/targets.toml").read())
    summaries = [summarise(m) for m in baseline_runs]
    for metric in ("da_incidents_per_year", "da_repeat_share", "da_high_risk_victims_per_year"):
        mean = float(np.mean([s[metric] for s in summaries]))
        assert bands[metric]["lower"] <= mean <= bands[metric]["upper"], (metric, mean)


def test_victims_are_the_perpetrators_partners_and_mostly_women(baseline_runs):
    m = baseline_runs[0]
    ev = events_frame(m)
    da = ev[ev["event"] == "da_incident"]
    assert len(da) > 0 and da["victim_id"].notna().all()
    assert ev.loc[ev["event"] != "da_incident", "victim_id"].isna().all()
    people = people_frame(m).set_index("person_id")
    perp_male = people.loc[da["person_id"], "sex"].to_numpy() == "M"
    victim_male = people.loc[da["victim_id"].astype("int64"), "sex"].to_numpy() == "M"
    assert (perp_male != victim_male).all()  # couples are a man and a woman
    w = people.loc[da["person_id"], "weight"].to_numpy()
    female_victims = float(w[~victim_male].sum() / w.sum())
    assert 0.65 <= female_victims <= 0.85, female_victims  # ONS 2019: 75% of DA-related crimes had a female victim
    p = m.people
    rows = np.flatnonzero(p.da_rate[: p.n] > 0)
    assert set(np.unique(p.person_id[rows])) >= set(np.unique(da["person_id"]))  # only perpetrators abuse


def test_exposure_is_in_the_microdata_and_raises_the_exposed_childrens_offending():
    """Same seed, exposure effect off (1) and strong (3): only children exposed (as people.parquet records) offend
    more; nobody else's offending changes."""
    off = run(sets=["domestic_abuse.exposure_rr_offending=1.0"], years=4)
    on = run(sets=["domestic_abuse.exposure_rr_offending=3.0"], years=4)
    people = people_frame(on)
    exposed = set(people.loc[people["da_exposed_month"].notna(), "person_id"])
    before = people_frame(off)
    assert len(exposed) > 100
    # who is exposed hardly depends on the effect (only through the convictions it brings to the exposed)
    assert len(exposed ^ set(before.loc[before["da_exposed_month"].notna(), "person_id"])) < 0.02 * len(exposed)

    def offences(m):
        ev = events_frame(m)
        return ev[ev["event"] == "offence"].groupby("person_id").size()

    a, b = offences(off), offences(on)
    ids = a.index.union(b.index)
    a, b = a.reindex(ids, fill_value=0), b.reindex(ids, fill_value=0)
    is_exposed = ids.isin(list(exposed))
    assert b[is_exposed].sum() > 1.5 * a[is_exposed].sum()
    # adults keep their own offences (common random numbers: their candidate offences do not depend on a child's
    # exposure effect), apart from the few whose lives the exposed children's convictions touch; adults, that is,
    # since before the simulated past, which runs partner abuse too (a child then is drawn against a bound that
    # allows for exposure, so a child of the past has other candidate offences under another effect, and another record)
    adults = people.loc[people["birth_month"] <= -12 * (18 + on.params.population.history_years), "person_id"]
    grown = ids.isin(list(adults))
    changed = (a[grown] != b[grown]).mean()
    assert changed < 0.01, changed


def test_exposure_month_is_when_an_incident_hit_the_childs_home(baseline_runs):
    m = baseline_runs[1]
    people = people_frame(m)
    ev = events_frame(m)
    da = ev[ev["event"] == "da_incident"]
    kids = people[people["da_exposed_month"] >= 0]  # (negative: in the simulated past, which logs no events)
    past = 12 * m.params.population.history_years
    assert (people["da_exposed_month"] < -12).any() and (people["da_exposed_month"] >= -past).all()
    parents = kids[["person_id", "mother_id", "father_id", "da_exposed_month"]].melt(
        id_vars=["person_id", "da_exposed_month"], value_name="parent").dropna(subset=["parent"])
    adults = pd.concat([da[["month", "victim_id"]].rename(columns={"victim_id": "adult"}),
                        da[["month", "person_id"]].rename(columns={"person_id": "adult"})])
    hit = parents.merge(adults, left_on=["parent", "da_exposed_month"], right_on=["adult", "month"])
    assert set(hit["person_id"]) == set(kids["person_id"])  # every exposure matches an incident of a parent that month
    age = (kids["da_exposed_month"] - kids["birth_month"]) / 12
    assert (age < 18).all()


def test_the_simulated_past_runs_partner_abuse_and_no_year_is_primed_over_it():
    """With partner abuse on, the start's simulated past runs it with the justice pathway: children exposed years
    before the start, and DA crimes sentenced then (more adults under sentence at month 0 than for the same seed
    without abuse), so the DA scenario's stocks start at the level of their own flows; the model then primes no
    further year over it. Without a simulated past one year is primed, as before."""
    from conftest import SMALL
    from sim.start import Start
    from sim.state.people import CUSTODY, LICENCE, PROBATION
    from sim.state.rng import NEVER

    sets = ["run.years=1", "run.calibration=point", *SMALL]
    on = load_scenario("scenarios/domestic_abuse.toml", sets)
    off = load_scenario("scenarios/domestic_abuse.toml", [*sets, "domestic_abuse.incidents_per_month_base=0"])
    start_on, start_off = Start.build(on, 7), Start.build(off, 7)
    assert start_on.past_has_partner_abuse and not start_off.past_has_partner_abuse
    p, n = start_on.people, start_on.people.n
    exposed = p.da_exposed_month[:n][p.da_exposed_month[:n] != NEVER]
    assert (exposed >= -12 * on.population.history_years).all() and (exposed < -12).any()

    def under_sentence(start):
        q = start.people
        return q.weight[: q.n][np.isin(q.status[: q.n], [CUSTODY, LICENCE, PROBATION])].sum()

    # pooled over four seeds: at these weights one seed's stocks move by 5-20% either way (on the ninth recheck's
    # point seeds 7-12 read 1.00, 1.20, 1.00, 1.05, 0.96, 1.21 on / off; 7-10 pooled 1.07)
    assert (sum(under_sentence(Start.build(on, s)) for s in (8, 9, 10)) + under_sentence(start_on)
            > 1.02 * (sum(under_sentence(Start.build(off, s)) for s in (8, 9, 10)) + under_sentence(start_off)))
    model = ReoffendingModel(on, seed=7)  # (builds the same start for itself)
    for field in ("da_victim_last_month", "da_victim_run", "da_chain", "da_last_month", "da_exposed_month"):
        assert np.array_equal(getattr(model.people, field)[:n], getattr(p, field)[:n]), field  # nothing primed over it
    assert len(model.cases) == len(start_on.cases) > len(start_off.cases)  # the past's DA cases due from month 0, once
    no_past = ReoffendingModel(load_scenario("scenarios/domestic_abuse.toml", [*sets, "population.history_years=0"]), seed=7)
    q = no_past.people
    primed = q.da_exposed_month[: q.n][q.da_exposed_month[: q.n] != NEVER]
    assert len(primed) and (primed >= -12).all() and (primed < 0).all()


def test_a_hub_without_capacity_is_the_baseline_exactly():
    base = timeseries_frame(run(years=2, sets=COARSE))
    off = timeseries_frame(run("scenarios/da_hub.toml", years=2, sets=[*COARSE, "da_hub.capacity_victims_per_year=0"]))
    pd.testing.assert_frame_equal(base, off)


def test_a_hub_with_no_effect_changes_nothing_but_its_cost():
    sets = [*COARSE, "da_hub.repeat_rr=1", "da_hub.escalation_rr=1"]
    base = run(years=2, sets=COARSE)
    hub = run("scenarios/da_hub.toml", years=2, sets=sets)
    b, h = timeseries_frame(base), timeseries_frame(hub)
    assert h["hub_starts"].sum() > 0
    outcomes = [c for c in b if not c.startswith("hub_")]
    pd.testing.assert_frame_equal(b[outcomes], h[outcomes])
    priced_alike = replace(base.params, costs=hub.params.costs)  # (da_hub.toml draws some unit costs)
    lb, lh = C.ledger(b, priced_alike), C.ledger(h, hub.params)
    diff = lh.set_index(["month", "agency", "kind"])["cost_gbp"] - lb.set_index(["month", "agency", "kind"])["cost_gbp"]
    by_agency = diff.groupby(level="agency").sum()
    assert by_agency.drop("intervention").abs().max() == 0
    assert by_agency["intervention"] == pytest.approx(C.hub_cost(h, hub.params).sum()) and by_agency["intervention"] > 0


def test_a_hub_that_works_cuts_incidents_against_those_it_supports():
    base = run(years=3, seed=SEEDS[1])
    hub = run("scenarios/da_hub.toml", years=3, seed=SEEDS[1], sets=["da_hub.repeat_rr=0.3", "da_hub.escalation_rr=0.5"])
    b, h = timeseries_frame(base), timeseries_frame(hub)
    assert h["hub_starts"].sum() > 0
    assert h["da_incidents"].sum() < b["da_incidents"].sum()
    p = hub.people
    supported = np.flatnonzero((p.hub_state[: p.n] != da_hub.NONE) & p.hub_engaged[: p.n])
    last = hub.month - 1
    start = np.where(p.hub_state[supported] == da_hub.LEFT, p.hub_exit_month[supported], last) - p.hub_months[supported]
    since = pd.Series(start, index=p.person_id[supported])

    def after_start(m):
        ev = events_frame(m)
        da = ev[(ev["event"] == "da_incident") & ev["victim_id"].isin(since.index)]
        return int((da["month"].to_numpy() > since.loc[da["victim_id"].astype("int64")].to_numpy()).sum())

    assert after_start(hub) < 0.7 * after_start(base), (after_start(hub), after_start(base))


def test_domestic_abuse_is_costed_by_agency():
    m = run(years=2, sets=COARSE)
    led = C.ledger(timeseries_frame(m), m.params)
    off = run(years=2, sets=[*COARSE, "domestic_abuse.incidents_per_month_base=0"])
    led_off = C.ledger(timeseries_frame(off), off.params)
    more = led.groupby("agency")["cost_gbp"].sum() - led_off.groupby("agency")["cost_gbp"].sum()
    for agency in ("police", "victims_and_society", "wider_economy", "nhs", "local_authority"):
        assert more[agency] > 0, agency
    assert timeseries_frame(off)["da_incidents"].sum() == 0


def test_the_calibrated_baseline_has_no_abuse_and_its_processes_draw_nothing_else():
    """Off in scenarios/baseline.toml: no incidents, and switching it on changes nobody's offending in the first
    month (the DA draws use their own streams; the offending bound allows for exposure only when it is on)."""
    base = run("scenarios/baseline.toml", years=1, sets=COARSE)
    assert timeseries_frame(base)["da_incidents"].sum() == 0
    assert base.params.domestic_abuse.perpetrator_share_male > 0  # the people are drawn, they just never abuse
    assert (base.people.da_rate[: base.people.n] > 0).any()


def test_victim_years_are_the_victims_abused_in_each_year(baseline_runs):
    """What DA is costed by: each victim counted once in each year of the run (months 12t..12t+11) with an incident,
    read back from the da_incident events."""
    m = baseline_runs[0]
    ev = events_frame(m)
    da = ev[ev["event"] == "da_incident"].assign(year=lambda d: d["month"] // 12)
    weight = people_frame(m).set_index("person_id")["weight"]
    pairs = da.drop_duplicates(["victim_id", "year"])
    expected = pairs.groupby("year")["victim_id"].apply(lambda v: weight.loc[v.astype("int64")].sum())
    ts = timeseries_frame(m)
    got = ts.groupby(ts["month"] // 12)["da_victim_years"].sum()
    pd.testing.assert_series_equal(got.loc[expected.index], expected, check_names=False)


def test_a_comparison_refuses_abuse_in_one_arm_only_and_a_hub_without_abuse(tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "scenarios/baseline.toml", "scenarios/da_hub.toml", "--reps", "1", "--years", "1", "--out", str(out)]) == 2
    assert "partner abuse" in capsys.readouterr().err and not out.exists()
    assert main(["run", "scenarios/baseline.toml", "--set", "da_hub.capacity_victims_per_year=100", "--out", str(out)]) == 2
    assert "needs partner abuse on" in capsys.readouterr().err and not out.exists()


def test_the_hub_serves_in_a_random_order_not_by_id():
    """With places short, who starts does not follow person id (ids run offenders' families first), and a large
    agent that does not fit leaves room for smaller ones."""
    hub = run("scenarios/da_hub.toml", years=2, sets=["da_hub.capacity_victims_per_year=300", "da_hub.p_identified=1"])
    p = hub.people
    started = np.flatnonzero(p.hub_state[: p.n] != da_hub.NONE)
    families = p.weight[started] < hub.params.population.scale_general
    share_families = p.weight[started][families].sum() / p.weight[started].sum()
    high_risk = timeseries_frame(hub)["da_high_risk_victims"].sum()
    assert 0 < len(started) and share_families < 0.3, share_families  # offenders' families are a small part of all victims
    assert p.weight[started].sum() < high_risk


def test_separation_after_an_incident_moves_abuse_to_former_partners():
    """With p_separate_after_incident, couples with an incident separate more often, so more of the incidents are
    against a former partner (the 20-36% reported abroad, where the general separation rate alone gives about 6%)."""
    shares = [summarise(run(sets=[f"domestic_abuse.p_separate_after_incident={p}"]))["da_former_partner_share"] for p in (0.0, 0.1)]
    assert shares[0] < 0.10 and shares[1] > 0.18, shares


@pytest.mark.slow
def test_the_da_scenario_meets_its_ten_year_targets_and_is_steady():
    """The DA scenario, as the hub's comparison runs it (each replicate drawing a member of its own ensemble), on 16
    ten-year replicates of seeds neither its ensemble's checks nor the README's validation used: every fitted ten-year
    target and partner abuse's own (incidents, repeats, newly high-risk victims) within its band, and every steady
    series steady per head. Its children convicted were read as stepping up 11-20% after the first year until
    2026-12-06 (evening); on 100 replicates of seed 1007 they hold at 0.98-1.03 (README, Domestic abuse). On these
    16 the youth series come closest: single years at 1.10 (youth first-time entrants and children convicted), steady
    by the Monte Carlo allowance of a mean of 16 (``calibration.STEADY_Z``)."""
    from sim.fitting.calibration import compare_to_targets, load_targets, measure, scenario_for, steadiness, steadiness_summary

    scenario = scenario_for("short", "scenarios/domestic_abuse.toml", ("run.calibration=ensemble",))
    measured = measure({"short": scenario}, 16, seed=2024, workers=2)
    held = [t for t in load_targets() if t.run == "short" and not t.known_gap and (t.weight > 0 or t.name.startswith("da_"))]
    table = compare_to_targets(measured, held)
    assert table["pass"].all(), table.loc[~table["pass"], ["target", "simulated", "lower", "upper"]].to_string()
    summary = steadiness_summary(steadiness(measured))
    assert len(summary) >= 6 and summary["steady"].all(), summary.loc[~summary["steady"]].to_string()
