"""A start from the model's own flows (``population.history_years``): the starting population's recent past is
simulated before month 0, so who is under sentence at the start, their records and the court queue are what the
model's own offending, courts and sentencing make them."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BASELINE, ROOT
from sim.model import ReoffendingModel
from sim.state.people import CUSTODY, CUSTODY_START, FREE, LICENCE, LICENCE_START, PROBATION, PROBATION_START
from sim.state.scenario import load_scenario

COARSE = ["population.scale_general=40", "population.scale_cjs_families=2", "run.years=1"]


def _built(years: int, scenario=BASELINE, extra=(), seed: int = 3) -> ReoffendingModel:
    return ReoffendingModel(load_scenario(scenario, [*COARSE, f"population.history_years={years}", *extra]), seed=seed)


@pytest.fixture(scope="module")
def history():
    return _built(6)


def test_the_start_s_sentences_come_from_convictions_in_the_simulated_years():
    """A past begun with nobody under sentence: everyone under sentence at month 0 was convicted (or recalled) within
    the simulated years, none of them before their age of criminal responsibility, and each status has its people (the
    flows fill all three stocks)."""
    history = _built(6, extra=["population.history_from_drawn_stocks=false"])
    p, n = history.people, history.people.n
    status = p.status[:n]
    serving = np.flatnonzero(status != FREE)
    for code in (CUSTODY, LICENCE, PROBATION):
        assert (status == code).sum() > 50
    convicted = p.last_conviction_month[serving]
    assert ((convicted >= -72) & (convicted < 0)).all()
    age_then = convicted - p.birth_month[serving]
    assert (age_then >= 12 * history.params.family.age_criminal_responsibility).all()
    assert (p.prev_convictions[serving] >= 1).all()
    assert history.month == 0


def test_the_start_s_status_is_marked_and_its_record_brought_in(history):
    """``status_at_start`` names each person's sentence at month 0 (and no one else's, whatever group they were drawn
    in), and ``convictions_before_start`` is the record
    they start the run with (so the cohort metrics count their history)."""
    p, n = history.people, history.people.n
    for code, start in ((CUSTODY, CUSTODY_START), (LICENCE, LICENCE_START), (PROBATION, PROBATION_START)):
        assert (p.status_at_start[:n][p.status[:n] == code] == start).all()
        assert (p.status[:n][p.status_at_start[:n] == start] == code).all()  # and only they: the groups drawn are relabelled
    np.testing.assert_array_equal(p.convictions_before_start[:n], p.prev_convictions[:n])
    np.testing.assert_array_equal(p.cautions_before_start[:n], p.prev_cautions[:n])  # (the cautions of the record)
    assert (p.prev_convictions[:n] > 0).mean() > 0.05


def test_nothing_before_month_0_is_logged_or_counted_and_the_court_queue_is_primed(history):
    """The simulated past leaves no events and no tally; cases offended in it and not yet heard are in the queue."""
    assert len(history.events.arrays()[0]) == 0
    assert not history.tally
    assert len(history.cases) > 0
    after = _built(6)
    after.run(1)
    months = after.events.arrays()[1]
    assert len(months) > 0 and (months == 0).all()


def test_the_simulated_past_is_deterministic_and_the_same_in_a_programme_scenario():
    """Same seed, same start; the multi-agency programme starts at month 0, so its start equals the baseline's (common
    random numbers hold from the first month)."""
    base = _built(4)
    again = _built(4)
    programme = _built(4, ROOT / "scenarios" / "multi_agency.toml")
    for name in ("status", "prev_convictions", "last_conviction_month", "custody_months_left", "propensity", "needs"):
        a = getattr(base.people, name)[: base.people.n]
        np.testing.assert_array_equal(a, getattr(again.people, name)[: again.people.n])
        np.testing.assert_array_equal(a, getattr(programme.people, name)[: programme.people.n])


def test_more_simulated_years_build_the_same_stocks_from_the_same_flows():
    """The stocks at the start are a property of the flows, not of how far back the simulation starts: 5 and 8
    simulated years give custody stocks within 20% of each other (once the longest common sentences have run their
    course), while the drawn start (0 years) is not what the flows make of it in general (it is drawn from counts)."""
    def custody(model):
        p = model.people
        return p.weight[: p.n][p.present[: p.n] & (p.status[: p.n] == CUSTODY)].sum()

    five = np.mean([custody(_built(5, seed=s)) for s in (1, 2)])
    eight = np.mean([custody(_built(8, seed=s)) for s in (1, 2)])
    assert eight == pytest.approx(five, rel=0.2)
    one = np.mean([custody(_built(1, seed=s)) for s in (1, 2)])
    assert one < 0.9 * eight  # a year is too short: the prison has not filled with longer sentences yet


def test_a_past_begun_from_the_drawn_stocks_carries_the_sentences_begun_before_it():
    """``population.history_from_drawn_stocks``: the past begins with the sentences the synthesis drew, so at month 0
    some people are on licence or in custody for a conviction from before the simulated years (a past begun empty has
    none: the first test), each of them an adult when the past began and with that conviction on their record; and
    the licence stock at month 0 is larger than a past begun empty leaves on the same seeds (it lacks the licences
    of sentences begun before it)."""
    licence = {}
    for on in (False, True):
        stocks = []
        for seed in (1, 2):
            model = _built(8, extra=[f"population.history_from_drawn_stocks={str(on).lower()}"], seed=seed)
            p, n = model.people, model.people.n
            serving = np.flatnonzero(p.present[:n] & (p.status[:n] != FREE))
            before = serving[p.last_conviction_month[serving] < -96]
            if on:
                assert len(before) > 0 and (p.prev_convictions[before] >= 1).all()
                assert (-96 - p.birth_month[before] >= 12 * model.params.family.age_adult).all()
            else:
                assert len(before) == 0
            stocks.append(p.weight[serving][p.status[serving] == LICENCE].sum())
        licence[on] = np.mean(stocks)
    assert licence[True] > 1.03 * licence[False]


def test_sentences_moved_back_keep_their_place_in_the_sentence_and_move_their_dates():
    """``population.sentences_moved_back``: a sentence drawn for month 0 is put ``months`` earlier as it was (status,
    months left, months since release), its conviction date moved by ``months`` and added to the record; someone
    who would have been a child when so convicted, or who is at liberty, is left as they are."""
    from sim.state import population
    from sim.state.people import People

    people = People()
    rows = people.add(3, sex_male=np.ones(3, bool), birth_month=np.array([-600, -230, -600], np.int32),
                      weight=1.0, propensity=np.ones(3), prev_convictions=np.zeros(3, np.int32), status_at_start=0)
    drawn = population.sentence_state(people)
    drawn["status"][:] = [LICENCE, CUSTODY, FREE]
    drawn["licence_months_left"][:] = [7, 5, 0]
    drawn["months_since_release"][:] = [3, 10_000, 10_000]
    drawn["last_conviction_month"][:] = [-20, -4, -1_000_000]
    people.prev_convictions[rows] = [2, 0, 1]  # the records drawn for the past's start
    people.last_conviction_month[rows] = [-130, -1_000_000, -200]
    population.sentences_moved_back(people, drawn, 96, 12 * 18)
    assert people.status[0] == LICENCE and people.licence_months_left[0] == 7 and people.months_since_release[0] == 3
    assert people.last_conviction_month[0] == -116 and people.prev_convictions[0] == 3
    # the second was 17 when convicted 100 months before month 0 (born 230 months before it): left at liberty
    assert people.status[1] == FREE and people.licence_months_left[1] == 0 and people.prev_convictions[1] == 0
    assert people.status[2] == FREE and people.prev_convictions[2] == 1 and people.last_conviction_month[2] == -200


# --- a comparison's arms start from the baseline's past (sim.start) -------------------------------------------------

def test_a_policy_arm_starts_from_the_baseline_s_past_and_then_acts():
    """A policy begins at month 0: in a comparison its arm starts from the baseline's start (the sentences being
    served, the records, the court queue), though on its own the policy's values would have made another past; from
    month 0 it acts on new sentences."""
    from sim.runs.paired import run_arms
    from sim.start import Start

    base = load_scenario(BASELINE, [*COARSE, "population.history_years=4"])
    j = base.justice
    policy = load_scenario(BASELINE, [*COARSE, "population.history_years=4", f"justice.sentence_median_months={2 * j.sentence_median_months}",
                                      f"justice.sentence_short_median_months={2 * j.sentence_short_median_months}",
                                      f"justice.order_median_months={2 * j.order_median_months}"])
    start = Start.build(base, 3)
    shared = ReoffendingModel(policy, seed=3, start=start)
    own = ReoffendingModel(policy, seed=3)
    baseline = ReoffendingModel(base, seed=3)
    for name in ("status", "custody_months_left", "order_months_left", "prev_convictions", "last_conviction_month"):
        np.testing.assert_array_equal(getattr(shared.people, name)[: shared.people.n], getattr(baseline.people, name)[: baseline.people.n])
    assert not np.array_equal(own.people.custody_months_left[: own.people.n], baseline.people.custody_months_left[: baseline.people.n])
    np.testing.assert_array_equal(shared.cases.row, baseline.cases.row)
    b_run, p_run = run_arms(base, [policy], 3)
    b_custody, p_custody = b_run["timeseries"]["custody"], p_run["timeseries"]["custody"]
    assert abs(p_custody.iloc[0] / b_custody.iloc[0] - 1) < 0.02  # the same stock, a month of new sentences apart
    # (most time inside is the long quarter's, whose extra months come after the first year: 1.07 at seed 3 since the
    # sentences came in two parts, 2026-12-06)
    assert p_custody.iloc[-1] > 1.05 * b_custody.iloc[-1]
    # common random numbers: the same people offend and are convicted in the first month
    first = [r["timeseries"][["offences", "convictions"]].iloc[0].tolist() for r in (b_run, p_run)]
    assert first[0] == first[1]
    assert b_run["timeseries"]["offences"].iloc[1:].tolist() != p_run["timeseries"]["offences"].iloc[1:].tolist()


def test_arms_run_together_equal_arms_run_alone():
    """Sharing the start is only a saving: a programme arm run from the baseline's start (built once for all arms)
    gives exactly what it gives when it builds its own start, run alone."""
    from sim.runs.paired import run_arms, run_replicate

    over = [*COARSE, "population.history_years=2"]
    base = load_scenario(BASELINE, over)
    programme = load_scenario(ROOT / "scenarios" / "multi_agency.toml", over)
    together = run_arms(base, [programme], 4)
    alone = [run_replicate(base, 4), run_replicate(programme, 4)]
    for t, a in zip(together, alone):
        np.testing.assert_equal(t["outcomes"], a["outcomes"])  # (nan where a one-year run has no cohort yet)
        assert t["timeseries"].equals(a["timeseries"])


def test_an_arm_with_another_population_builds_its_own_start():
    """A start serves only scenarios with the same people: an arm that changes the population (here the spread of
    propensity) cannot take the baseline's, and a model refuses a start that does not fit it."""
    from sim.runs.paired import run_arms, run_replicate
    from sim.start import Start

    over = [*COARSE, "population.history_years=2"]
    base = load_scenario(BASELINE, over)
    other = load_scenario(BASELINE, [*over, f"population.propensity_sigma_general={base.population.propensity_sigma_general + 0.2}"])
    with pytest.raises(ValueError, match="population, demography or family"):
        ReoffendingModel(other, seed=4, start=Start.build(base, 4))
    with pytest.raises(ValueError, match="seed"):
        ReoffendingModel(base, seed=5, start=Start.build(base, 4))
    _, arm = run_arms(base, [other], 4)
    np.testing.assert_equal(arm["outcomes"], run_replicate(other, 4)["outcomes"])
