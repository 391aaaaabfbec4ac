"""Out-of-court disposals (``justice.cautions``): a caution is a proven offence on the record but not a conviction; it
goes to someone at liberty, to no court and no sentence; the MoJ measures count it (cohorts, reoffences, previous
offences, first-time entrants); off, nothing is drawn and nothing changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim import metrics
from sim.model import ReoffendingModel
from sim.processes import courts
from sim.runs.output import timeseries_frame
from sim.state.events import EVENT_CODE
from sim.state.people import CUSTODY, FREE

from conftest import SMALL, load

ON = ["justice.cautions=true"]


def _events(model, event: str) -> tuple[np.ndarray, np.ndarray]:
    rows, month, code = model.events.arrays()[:3]
    sel = code == EVENT_CODE[event]
    return rows[sel], month[sel]


def test_a_caution_goes_to_someone_at_liberty_and_is_on_the_record_but_not_a_conviction():
    """Every decision a caution (a huge intercept) and every caution the end of a career (a huge desistance
    intercept): the cases of people at liberty are cautioned, one event a case, their record of cautions (not
    convictions) grows by their number of cases and their propensity falls as desistance has it; people under
    sentence go to court, untouched; first-time entrants (children among them) are those with nothing on their record."""
    overrides = ["justice.caution_log_odds_intercept=40", "justice.desist_log_odds_intercept=40",
                 "population.history_years=0"]  # (a past under these values would leave nobody under sentence)
    with ReoffendingModel(load(*SMALL, "run.years=1", *ON, *overrides), seed=5) as model:
        p = model.people
        n = p.n
        present = np.flatnonzero(p.present[:n])
        free = present[p.status[present] == FREE]
        age = (model.month - p.birth_month[free]) / 12.0
        clean = (p.prev_convictions[free] == 0) & (p.prev_cautions[free] == 0)  # (a drawn past may have cautions)
        child = free[(age >= 10) & (age < model.params.family.age_adult) & clean][:1]
        adult = free[(age >= model.params.family.age_adult) & clean][:2]
        first_timers = np.r_[child, adult]
        known = free[(p.prev_convictions[free] > 0)][:3]
        held = present[p.status[present] != FREE][:3]
        assert len(first_timers) == len(known) == len(held) == 3
        free = np.r_[first_timers, known]
        rows = np.r_[free, free[:2], held]  # the first two have two cases this month
        convictions, cautions = p.prev_convictions[rows].copy(), p.prev_cautions[rows].copy()
        propensity = p.propensity[rows].copy()
        tally_before = dict(model.tally)
        events_before = len(_events(model, "caution")[0])

        cautioned = courts.caution(model, rows, np.full(len(rows), -1), np.zeros(len(rows), np.int8))

        assert cautioned[: len(free) + 2].all() and not cautioned[len(free) + 2:].any()
        assert len(_events(model, "caution")[0]) - events_before == len(free) + 2
        np.testing.assert_array_equal(p.prev_convictions[rows], convictions)
        np.testing.assert_array_equal(p.prev_cautions[free] - cautions[: len(free)], [2, 2, 1, 1, 1, 1])
        np.testing.assert_array_equal(p.prev_cautions[held], cautions[len(free) + 2:])
        multiplier = model.params.justice.desisted_propensity_multiplier
        np.testing.assert_allclose(p.propensity[free], propensity[: len(free)] * multiplier)
        np.testing.assert_array_equal(p.propensity[held], propensity[len(free) + 2:])
        added = {k: model.tally.get(k, 0.0) - tally_before.get(k, 0.0)
                 for k in ("cautions", "first_time_entrants", "child_first_time_entrants")}
        assert added["cautions"] == pytest.approx(p.weight[rows[cautioned]].sum())
        assert added["first_time_entrants"] == pytest.approx(p.weight[first_timers].sum())
        assert added["child_first_time_entrants"] == pytest.approx(p.weight[child].sum()) and len(child) == 1


@pytest.fixture(scope="module")
def cautioned_run():
    with ReoffendingModel(load(*SMALL, "run.years=3", *ON), seed=8, record_offences=False) as model:
        model.cautions_at_start = model.people.prev_cautions[: model.people.n].copy()  # from the simulated past
        model.run()
        yield model


def test_a_month_s_cases_of_a_person_are_cautioned_or_go_to_court_children_more_often_cautioned(cautioned_run):
    """One decision per person and month: nobody is both cautioned and convicted in a month; children (whose
    reprimands and warnings the log-odds raise) are cautioned more often than adults; the monthly series counts them."""
    m = cautioned_run
    cau_rows, cau_month = _events(m, "caution")
    conv_rows, conv_month = _events(m, "conviction")
    assert len(cau_rows) > 50 and len(conv_rows) > 50
    both = np.intersect1d(cau_rows.astype(np.int64) * 10_000 + cau_month, conv_rows.astype(np.int64) * 10_000 + conv_month)
    assert len(both) == 0
    p = m.people

    def child_share(rows, months):
        return np.mean((months - p.birth_month[rows]) / 12.0 < m.params.family.age_adult)

    assert child_share(cau_rows, cau_month) > 1.5 * child_share(conv_rows, conv_month)
    ts = timeseries_frame(m)
    assert ts["cautions"].sum() == pytest.approx(p.weight[cau_rows].sum())
    # the cautions on the record are the run's plus those brought into it: from the simulated past (the starting
    # people's, as they were at month 0) and from the drawn past of the newcomers
    brought = p.cautions_before_start[: p.n]
    np.testing.assert_array_equal(brought[: len(m.cautions_at_start)], m.cautions_at_start)
    assert brought[len(m.cautions_at_start):].sum() > 0
    np.testing.assert_array_equal(np.bincount(cau_rows, minlength=p.n), p.prev_cautions[: p.n] - brought)


def test_the_moj_measures_count_cautions(cautioned_run):
    """The MoJ cohort has cautioned offenders (index disposal 'caution', follow-up from the month after their first
    caution of the year), and their previous offences include the cautions before it."""
    m = cautioned_run
    md = metrics.Microdata.from_model(m)
    r = metrics.proven_reoffending(md, None, "caution", 12, 24)
    assert r["cohort_agents"] > 10 and 0 < r["rate"] < 1
    cohort = metrics.moj_cohort(md, 12, 24)
    mine = cohort.disposal == metrics.DISPOSALS.index("caution")
    rows, months = _events(m, "caution")
    first_in_year = pd.Series(months[(months >= 12) & (months < 24)], rows[(months >= 12) & (months < 24)]).groupby(level=0).min()
    np.testing.assert_array_equal(cohort.follow_up_start[mine], first_in_year.loc[cohort.person[mine]].to_numpy() + 1)
    before = pd.Series(months < first_in_year.reindex(rows).to_numpy()).groupby(rows).sum()  # cautions before it
    previous = metrics.previous_offences(md, cohort)[mine]
    assert (previous >= before.reindex(cohort.person[mine]).to_numpy()).all()
    assert (before.reindex(cohort.person[mine]).to_numpy() > 0).any()  # someone cautioned twice: counted


def test_cautions_on_a_hand_made_log():
    """Person 1: cautioned at 2, an offence at 5 cautioned at 7 (a proven reoffence); person 2: cautioned at 1, an
    offence at 15 convicted at 16 (after the follow-up; in the next year, one previous offence, the caution); person 3:
    2 convictions before the run, cautioned at 0 and convicted at 15 (then 3 previous offences)."""
    people = pd.DataFrame({"person_id": [1, 2, 3], "birth_month": -400, "convictions_before_start": [0, 0, 2],
                           "weight": 1.0})
    ev = pd.DataFrame([(1, 2, "caution", 1), (1, 7, "caution", 5), (2, 1, "caution", 0), (2, 16, "conviction", 15),
                       (3, 0, "caution", -1), (3, 15, "conviction", 14)],
                      columns=["person_id", "month", "event", "offence_month"])
    ev["offence_month"] = ev["offence_month"].astype("Int32")
    md = metrics.Microdata.from_frames(people, ev)
    first = metrics.proven_reoffending(md, None, "caution", 0, 12)
    assert (first["cohort_agents"], first["rate"]) == (3, 1 / 3)  # person 1 reoffends; 2 and 3 not within their year
    assert metrics.proven_reoffending(md, None, "other", 0, 12)["cohort_agents"] == 0  # each offender once
    second = metrics.moj_cohort(md, 12, 24)
    previous = dict(zip(second.person, metrics.previous_offences(md, second)))
    assert previous == {1: 1, 2: 3}  # rows: person 2 (one caution), person 3 (2 before the run + one caution)
    # cautions brought into the run count as previous offences too (people.parquet's cautions_before_start)
    people["cautions_before_start"] = [0, 4, 1]
    again = metrics.Microdata.from_frames(people, ev)
    second = metrics.moj_cohort(again, 12, 24)
    assert dict(zip(second.person, metrics.previous_offences(again, second))) == {1: 5, 2: 4}


def test_off_nothing_is_drawn_and_nothing_changes():
    """With cautions off there are no cautions and the caution parameters change nothing, draw for draw."""
    series = []
    for intercept in (-0.9, 5.0):
        with ReoffendingModel(load(*SMALL, "run.years=2", "justice.cautions=false", f"justice.caution_log_odds_intercept={intercept}"),
                              seed=4) as m:
            assert not m.params.justice.cautions
            m.run()
            assert len(_events(m, "caution")[0]) == 0
            series.append(timeseries_frame(m))
    assert series[0]["cautions"].sum() == 0
    pd.testing.assert_frame_equal(series[0], series[1])


def test_sentencing_reads_the_record_of_convictions_and_cautions():
    """Custody and orders rise with the record of previous convictions and cautions (the history their sources count):
    with custody's log-odds very steep in the record, people with no conviction but 50 cautions go to custody and
    people with nothing on their record do not (cautions off for these cases, so every case goes to court)."""
    overrides = ["justice.cautions=false", "justice.custody_log_odds_intercept=-20",
                 "justice.custody_log_odds_per_log_prev=8", "population.history_years=0"]
    with ReoffendingModel(load(*SMALL, "run.years=1", *overrides), seed=6) as model:
        p, n = model.people, model.people.n
        age = (model.month - p.birth_month[:n]) / 12.0
        clean = np.flatnonzero(p.present[:n] & (p.status[:n] == FREE) & (age >= 25) & (p.prev_convictions[:n] == 0)
                               & (p.prev_cautions[:n] == 0))[:40]
        assert len(clean) == 40
        cautioned, untouched = clean[:20], clean[20:]
        p.prev_cautions[cautioned] = 50
        model.cases.pop_due(model.month)  # (only these cases this month)
        model.cases.add(clean, model.month - 1, np.full(40, model.month), np.zeros(40, np.int8))
        courts.step(model)
        assert (p.prev_convictions[clean] == 1).all()
        assert (p.status[cautioned] == CUSTODY).all()
        assert not (p.status[untouched] == CUSTODY).any()
