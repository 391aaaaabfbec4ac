"""Invariants of a whole run, checked month by month (audited run) and from the exported microdata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim import ScenarioError, ReoffendingModel
from sim.runs.output import events_frame, people_frame, timeseries_frame
from sim.state.people import CUSTODY, LICENCE, PROBATION

from conftest import ENTRY_EVENTS, EXIT_EVENTS, SMALL, load


# --- people are conserved ----------------------------------------------------------------------------------------


def test_people_conserved_every_month(audited):
    """present at the start + entries (births, arrivals) = present at the end + exits (deaths, moves away)."""
    assert len(audited.months) == audited.model.params.months
    total_in = total_out = 0
    for rec in audited.months:
        entries = sum(len(audited.events_in(rec.month, e)) for e in ENTRY_EVENTS)
        leavers = sum(len(audited.events_in(rec.month, e)) for e in EXIT_EVENTS)
        start, end = int(rec.present_before.sum()), int(rec.end["present"].sum())
        assert start + entries == end + leavers, f"month {rec.month}"
        total_in += entries
        total_out += leavers
    assert total_in > 0 and total_out > 0  # the test exercised both directions


def test_entries_are_new_rows_and_leavers_were_present(audited):
    for rec in audited.months:
        for e in ENTRY_EVENTS:
            rows = audited.events_in(rec.month, e)
            assert (rows >= rec.n_before).all(), f"{e} in month {rec.month} reused a row"
            assert rec.end["present"][rows].all()
        leavers = np.concatenate([audited.events_in(rec.month, e) for e in EXIT_EVENTS])
        assert len(np.unique(leavers)) == len(leavers)  # nobody dies and moves away in one month
        assert rec.present_before[leavers].all() and not rec.end["present"][leavers].any()
        # everyone who was present and is no longer has a death or exit event this month
        gone = np.flatnonzero(rec.present_before & ~rec.end["present"][: rec.n_before])
        assert np.array_equal(np.sort(gone), np.sort(leavers))


def test_weighted_population_series_balances(audited):
    ts = timeseries_frame(audited.model)
    assert list(ts["month"]) == list(range(len(audited.months)))
    for rec, (_, row) in zip(audited.months, ts.iterrows()):
        inflow = row["births"] + row.get("arrivals", 0.0)
        outflow = row["deaths"] + row["exits"]
        assert row["population"] == pytest.approx(rec.weight_present_before + inflow - outflow, rel=1e-12)
        w = rec.end["weight"]
        assert row["population"] == pytest.approx(w[rec.end["present"]].sum(), rel=1e-12)


def test_monthly_flows_match_the_event_log(audited):
    """The tally (timeseries flows) and the event log are two records of the same events."""
    ts = timeseries_frame(audited.model).set_index("month")
    w = audited.model.people.view("weight")
    pairs = {"offences": "offence", "convictions": "conviction", "custody_starts": "custody_start", "releases": "release",
             "recalls": "recall", "order_starts": "order_start", "births": "birth", "deaths": "death", "exits": "exit"}
    nonzero = set()
    for series, event in pairs.items():
        for rec in audited.months:
            expected = w[audited.events_in(rec.month, event)].sum()
            assert ts.loc[rec.month, series] == pytest.approx(expected, rel=1e-9, abs=1e-9), (series, rec.month)
            if expected:
                nonzero.add(series)
    assert {"offences", "convictions", "releases", "births"} <= nonzero


def test_stocks_match_arrays_each_month(audited):
    """Adult stocks and the children's (youth) stocks add up to everyone in each status."""
    ts = timeseries_frame(audited.model).set_index("month")
    birth = audited.model.people.view("birth_month")
    adult_months = 12 * audited.model.params.family.age_adult
    for rec in audited.months:
        present, status, w = rec.end["present"], rec.end["status"], rec.end["weight"]
        adult = rec.month - birth[: len(present)] >= adult_months
        for series, code in (("custody", CUSTODY), ("licence", LICENCE), ("probation", PROBATION)):
            assert ts.loc[rec.month, series] == pytest.approx(w[present & adult & (status == code)].sum())
        assert ts.loc[rec.month, "youth_custody"] == pytest.approx(w[present & ~adult & (status == CUSTODY)].sum())
        assert ts.loc[rec.month, "youth_supervision"] == pytest.approx(w[present & ~adult & ((status == LICENCE) | (status == PROBATION))].sum())


# --- criminogenic needs ----------------------------------------------------------------------------------------


def test_needs_change_at_the_rates_of_the_transition_table(audited):
    """Month to month, each need starts or resolves with the probability in ``needs.transition_table`` (general or
    offender table for people under supervision or recently convicted), and at most one need changes a person a
    month. Releases (which add needs), anyone whose status or conviction record changed that month, and anyone
    ever in the intervention are left out."""
    from sim.processes.needs import transition_table

    model = audited.model
    prm = model.params.needs
    k = len(prm.names)
    tables = np.stack([transition_table(prm.prevalence_general, prm.monthly_resolution),
                       transition_table(prm.prevalence_offenders, prm.monthly_resolution)])
    birth = model.people.view("birth_month")
    never_in_iv = model.people.view("iv_state") == 0 if hasattr(model.people, "iv_state") else np.ones(model.people.n, bool)
    adult_months = 12 * model.params.family.age_adult
    observed = np.zeros((2, k))  # (onset, resolution) x need
    expected = np.zeros((2, k))
    variance = np.zeros((2, k))
    for prev, rec in zip(audited.months[:-1], audited.months[1:]):
        n = len(prev.end["present"])
        rows = np.flatnonzero(prev.end["present"] & (rec.month - birth[:n] >= adult_months) & never_in_iv[:n])
        rows = rows[rec.end["months_since_release"][rows] != 0]
        stable = (prev.end["status"][rows] == rec.end["status"][rows]) & (prev.end["last_conviction_month"][rows] == rec.end["last_conviction_month"][rows])
        rows = rows[stable]
        before, after = prev.end["needs"][rows], rec.end["needs"][rows]
        changed = before ^ after
        assert (changed & (changed - 1) == 0).all(), f"several needs changed in one month, month {rec.month}"
        recent = model.params.needs.recent_conviction_months
        active = (rec.end["status"][rows] != 0) | (rec.end["last_conviction_month"][rows] >= rec.month - recent)
        prob = tables[active.astype(int), before]  # (people, needs)
        had = (before[:, None] >> np.arange(k)) & 1 == 1
        flip = (changed[:, None] >> np.arange(k)) & 1 == 1
        for d, mask in ((0, ~had), (1, had)):
            observed[d] += (flip & mask).sum(axis=0)
            expected[d] += np.where(mask, prob, 0).sum(axis=0)
            variance[d] += np.where(mask, prob * (1 - prob), 0).sum(axis=0)
    assert (expected > 20).all()  # enough transitions to test every rate
    z = (observed - expected) / np.sqrt(variance)
    assert (np.abs(z) < 4.5).all(), z.round(2)  # 12 comparisons: 4.5 sd keeps false alarms near 1e-4


# --- the justice system -----------------------------------------------------------------------------------------


def test_nobody_offends_in_custody_or_under_age(audited):
    age_min_months = 12 * audited.model.params.family.age_criminal_responsibility
    in_custody_seen = offences_seen = 0
    for rec in audited.months:
        rows = audited.events_in(rec.month, "offence")
        offences_seen += len(rows)
        in_custody_seen += int((rec.present_before & (rec.status_before_offending[: rec.n_before] == CUSTODY)).sum())
        assert (rec.status_before_offending[rows] != CUSTODY).all(), f"offence in custody, month {rec.month}"
        assert rec.present_before[rows].all()
        assert (rec.age_months_before_offending[rows] >= age_min_months).all()
    assert offences_seen > 0 and in_custody_seen > 0


def test_status_is_consistent_with_spells_each_month(audited):
    """Status is single-valued; a person in custody has no order running, and every status has time left."""
    for rec in audited.months:
        e = rec.end
        live = e["present"]
        cust = live & (e["status"] == CUSTODY)
        assert (e["custody_months_left"][cust] > 0).all()
        assert (e["order_months_left"][cust] <= 0).all(), f"custody with an order running, month {rec.month}"
        assert (e["licence_months_left"][live & (e["status"] == LICENCE)] > 0).all()
        assert (e["order_months_left"][live & (e["status"] == PROBATION)] > 0).all()
        assert set(np.unique(e["status"][live])) <= {0, CUSTODY, LICENCE, PROBATION}


def test_partners_are_mutual_present_and_of_opposite_sex(audited):
    for rec in audited.months:
        e = rec.end
        live = e["present"]
        partner = e["partner"]
        assert (partner[~live] < 0).all(), "someone who died or left still has a partner"
        i = np.flatnonzero(live & (partner >= 0))
        j = partner[i]
        assert e["present"][j].all()
        assert (partner[j] == i).all()
        assert (e["sex_male"][i] != e["sex_male"][j]).all()
    assert len(i) > 0


def _custody_spells(people: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Custody spells (person_id, start month, release month or inf) from the microdata. A spell starts with
    custody_start or recall (or at month 0 for someone in custody at the start) and ends with a release."""
    starts = events[events["event"].isin(["custody_start", "recall"])][["person_id", "month"]]
    at_start = people.loc[people["status_at_start"] == "custody", ["person_id"]].assign(month=-1)
    starts = pd.concat([starts, at_start]).astype({"month": "int64"})
    rel = events[events["event"] == "release"][["person_id", "month"]].astype({"month": "int64"})
    spells = pd.merge_asof(
        starts.rename(columns={"month": "start"}).sort_values("start"),
        rel.rename(columns={"month": "end"}).sort_values("end"),
        left_on="start", right_on="end", by="person_id", direction="forward", allow_exact_matches=False,
    )
    spells["end"] = spells["end"].fillna(np.inf)
    return spells


def test_no_offence_or_order_start_inside_a_custody_spell(frames):
    people, events = frames
    spells = _custody_spells(people, events)
    assert len(spells) > 0
    for event, first_blocked in (("offence", 1), ("order_start", 0)):
        # offences of the month a sentence or recall starts can come before it; an order cannot start in that month
        ev = events[events["event"] == event][["person_id", "month"]]
        m = ev.merge(spells, on="person_id")
        start = np.maximum(m["start"], -1)
        inside = (m["month"] >= start + first_blocked) & (m["month"] < m["end"])
        assert not inside.any(), m[inside].head()
        assert len(ev) > 0


def test_release_only_from_custody(frames):
    """Replaying each person's events: a release needs a preceding custody spell, a custody start needs liberty."""
    people, events = frames
    in_custody = dict.fromkeys(people.loc[people["status_at_start"] == "custody", "person_id"], True)
    ev = events[events["event"].isin(["custody_start", "recall", "release"])]
    assert (ev["event"] == "release").any()
    # within a month, releases (justice) come before new custody (courts)
    ev = ev.assign(order=ev["event"].map({"release": 0, "recall": 1, "custody_start": 1}).astype(int))
    for pid, month, event in ev.sort_values(["month", "order"])[["person_id", "month", "event"]].itertuples(index=False):
        if event == "release":
            assert in_custody.get(pid, False), f"release of {pid} in month {month} without custody"
            in_custody[pid] = False
        else:
            assert not in_custody.get(pid, False), f"{event} of {pid} in month {month} while in custody"
            in_custody[pid] = True


def test_convictions_follow_their_offences(audited, frames):
    people, events = frames
    conv = events[events["event"] == "conviction"]
    assert len(conv) > 0
    assert conv["offence_month"].notna().all()
    assert (conv["offence_month"] <= conv["month"]).all()
    # offences before month 0 (the court queue primed at the start) are by people of the starting population
    before = conv[conv["offence_month"] < 0]
    assert before["person_id"].isin(people["person_id"].iloc[: audited.months[0].n_before]).all()
    # every conviction for an offence in the run is for an offence the same person committed in that month,
    # of that type: an offence, or a domestic-abuse incident (recorded as a violent crime)
    conv = conv[conv["offence_month"] >= 0]
    off = events[events["event"] == "offence"]
    da = events[events["event"] == "da_incident"].assign(offence_month=lambda d: d["month"], offence_type="violence")
    off = pd.concat([off, da]).astype({"offence_type": conv["offence_type"].dtype})
    key = ["person_id", "offence_month", "offence_type"]
    n_off = off.groupby(key, observed=True).size()
    n_conv = conv.groupby(key, observed=True).size()
    assert (n_conv <= n_off.reindex(n_conv.index, fill_value=0)).all()


def test_no_events_after_death_or_exit(frames):
    people, events = frames
    gone = events[events["event"].isin(list(EXIT_EVENTS))]
    assert len(gone) > 0
    assert not gone["person_id"].duplicated().any()
    last = gone.set_index("person_id")["month"]
    later = events[events["person_id"].isin(last.index)]
    later = later[later["month"] > later["person_id"].map(last)]
    assert later.empty, later.head()


def test_births_match_people(audited, frames):
    people, events = frames
    births = events[events["event"] == "birth"]
    assert len(births) > 0
    newborn = people.set_index("person_id").loc[births["person_id"]]
    assert (newborn["birth_month"].to_numpy() == births["month"].to_numpy()).all()
    assert (newborn["status_at_start"] == "child").all()
    assert not newborn["convicted_before_start"].any()
    assert newborn["mother_id"].notna().all()
    # everyone who joined during the run (rows after the starting population) has a birth or arrival event
    joined = people["person_id"].iloc[audited.months[0].n_before :]
    entries = events.loc[events["event"].isin(list(ENTRY_EVENTS)), "person_id"]
    assert set(joined) == set(entries)
    # mothers were women of fertile age, present that month
    d = audited.model.params.demography
    mothers = people.set_index("person_id").loc[newborn["mother_id"].astype("int64")]
    assert (mothers["sex"] == "F").all()
    age = (births["month"].to_numpy() - mothers["birth_month"].to_numpy()) / 12
    assert (age >= d.fertile_age_min).all() and (age < d.fertile_age_max).all()


def test_children_not_convicted_before_age_of_responsibility(audited, frames):
    people, events = frames
    age_min = 12 * audited.model.params.family.age_criminal_responsibility
    birth = people.set_index("person_id")["birth_month"]
    for event in ("offence", "conviction"):
        ev = events[events["event"] == event]
        assert (ev["offence_month"].astype("int64") - ev["person_id"].map(birth) >= age_min).all()


def test_children_not_convicted_before_age_of_responsibility_under_high_child_hazard():
    """Children offend at a very high rate from the age of criminal responsibility: convictions must start at
    exactly that age and never before."""
    base = load(*SMALL)
    k = len(base.offending.offence_types)
    params = load(
        *SMALL,
        "run.years=1",
        "run.calibration=point",
        "offending.youth_multiplier=1.0",  # (not the fit's: this test's hazard must not hang on it)
        "offending.offences_per_month_base=2.0",
        "offending.age_curve_ages=[0, 120]",
        "offending.age_curve_multiplier=[1, 1]",
        f"offending.offence_type_p_proven={[1.0] * k}",
        "offending.court_lag_mean_months=0",
    )
    model = ReoffendingModel(params, seed=5).run()
    people, events = people_frame(model), events_frame(model)
    birth = people.set_index("person_id")["birth_month"]
    age_min = int(round(12 * params.family.age_criminal_responsibility))
    for event in ("offence", "conviction"):
        ev = events[events["event"] == event]
        age_at_offence = ev["offence_month"].astype("int64") - ev["person_id"].map(birth)
        assert age_at_offence.min() == age_min, event  # reached, and never undercut
    # children who turn 10 during the run are convicted soon after
    turning = people[(people["birth_month"] <= -age_min + 11) & (people["birth_month"] > -age_min)]
    assert len(turning) > 20
    convicted = set(events.loc[events["event"] == "conviction", "person_id"])
    assert np.mean(turning["person_id"].isin(convicted)) > 0.5


# --- the court queue primed before month 0 ----------------------------------------------------------------------


def _high_hazard(lag_months: float, *extra: str):
    k = len(load(*SMALL).offending.offence_types)
    return load(
        *SMALL,
        "run.years=1",
        "population.history_years=0",  # the queue primed at the start (with a simulated past its cases come from it)
        "offending.offences_per_month_base=2.0",
        "offending.age_curve_ages=[0, 120]",
        "offending.age_curve_multiplier=[1, 1]",
        f"offending.offence_type_p_proven={[1.0] * k}",
        f"offending.court_lag_mean_months={lag_months}",
        *extra,
    )


def test_primed_cases_are_not_for_offences_under_age_of_responsibility():
    """Regression: pre-start offences were drawn with month-0 ages, so children just over 10 at the start were
    convicted for offences committed before their 10th birthday."""
    params = _high_hazard(3)
    model = ReoffendingModel(params, seed=5)
    cases = model.cases
    assert len(cases) > 0
    age_at_offence = cases.offence_month - model.people.birth_month[cases.row]
    assert (age_at_offence >= 12 * params.family.age_criminal_responsibility).all()


def test_primed_cases_are_not_for_offences_in_custody():
    """Regression: people on licence at the start got pre-start cases for months they were still in custody."""
    from sim.state.people import LICENCE_START

    params = _high_hazard(3)
    model = ReoffendingModel(params, seed=5)
    p, cases = model.people, model.cases
    on_licence = p.status_at_start[cases.row] == LICENCE_START
    assert on_licence.sum() > 10
    released_at = -p.months_since_release[cases.row[on_licence]]
    assert (cases.offence_month[on_licence] >= released_at).all()


def test_primed_cases_are_before_the_start_and_due_after_it():
    params = _high_hazard(3)
    model = ReoffendingModel(params, seed=5)
    cases = model.cases
    assert len(cases) > 0
    assert (cases.offence_month < 0).all() and (cases.due_month >= 0).all()
    assert (model.people.status[cases.row] != CUSTODY).all()  # nobody in custody at the start has a case
    # with no court lag nothing committed before month 0 can still be pending
    assert len(ReoffendingModel(_high_hazard(0), seed=5).cases) == 0


# --- propensity ---------------------------------------------------------------------------------------------------


def test_propensity_finite_and_nonnegative(audited):
    prop = audited.model.people.view("propensity")
    assert np.isfinite(prop).all() and (prop >= 0).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_zero_desistance_multiplier_is_rejected():
    """A desisted propensity of exactly 0 would make log(0) in inheritance; the scenario must say so up front."""
    with pytest.raises(ScenarioError, match="desisted_propensity_multiplier"):
        load(*SMALL, "justice.desisted_propensity_multiplier=0")


def test_newborns_inherit_innate_not_desisted_propensity():
    """Desistance lowers a parent's current propensity; newborns inherit from the innate one, so a near-total
    desistance changes neither the newborns' propensities (finite) nor their distribution."""
    params = load(*SMALL, "run.years=3", "justice.desisted_propensity_multiplier=1e-9")
    model = ReoffendingModel(params, seed=2).run()
    p = model.people
    born = p.view("birth_month") >= 0
    assert born.sum() > 0 and (p.view("propensity") < 1e-6).any()  # the situation arose
    assert np.isfinite(p.view("propensity")[born]).all() and (p.view("propensity")[born] > 0).all()
    # the same child (same id: same mother, same birth order) is born with the same propensity whatever desistance did
    ref = ReoffendingModel(load(*SMALL, "run.years=3"), seed=2).run().people
    a = dict(zip(p.view("person_id")[born], p.view("innate_propensity")[born]))
    b = dict(zip(ref.view("person_id")[ref.view("birth_month") >= 0], ref.view("innate_propensity")[ref.view("birth_month") >= 0]))
    common = sorted(set(a) & set(b))
    assert len(common) > 10
    assert all(a[i] == b[i] for i in common)
