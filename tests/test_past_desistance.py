"""Records drawn for the start and for newcomers with the desistance the run's courts would have given them
(``population.desistance_in_past_records``): a past career is a Poisson stream of convictions that each may end it."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BASELINE
from sim.processes import offending
from sim.state.rng import CounterRNG
from sim.state.scenario import load_scenario

N = 40_000


def careers(rate, intercept, per_log_prev=0.0, multiplier=0.1, start=5.0, stop=25.0, seed=1):
    draws = CounterRNG(seed)
    ids = np.arange(N, dtype=np.int64)
    return offending._past_careers(ids, np.full(N, rate), start, np.full(N, stop), draws.key("wait", 0),
                                   draws.key("desist", 0), intercept, per_log_prev, multiplier)


def test_without_desistance_a_past_career_is_a_poisson_count_with_its_last_conviction_inside_the_window():
    """With no chance of desistance the count over the window is Poisson (mean = variance = rate x window), nothing
    lowers the propensity, and the last conviction falls inside the window, later the more convictions there are
    (the last of n uniform points sits at n / (n + 1) of the window on average)."""
    count, last, factor = careers(rate=0.15, intercept=-60.0)  # mean 3
    mean = 0.15 * 20.0
    assert count.mean() == pytest.approx(mean, abs=4 * np.sqrt(mean / N))
    assert count.var() == pytest.approx(mean, rel=0.05)
    assert (factor == 1.0).all()
    had = count > 0
    assert ((last[had] > 5.0) & (last[had] < 25.0)).all()
    where = (last[had] - 5.0) / 20.0
    for n in (1, 3, 6):
        assert where[count[had] == n].mean() == pytest.approx(n / (n + 1), abs=0.02)


def test_a_career_that_surely_ends_at_the_first_conviction_has_at_most_one_when_desisting_stops_offending():
    """Certain desistance with a multiplier of 0: nobody has more than one conviction, everyone with one has their
    propensity set to 0, and the share with one is the chance of at least one event, 1 - exp(-rate x window)."""
    count, _, factor = careers(rate=0.15, intercept=60.0, multiplier=0.0)
    assert count.max() == 1
    assert (factor[count == 1] == 0.0).all() and (factor[count == 0] == 1.0).all()
    assert (count == 1).mean() == pytest.approx(1 - np.exp(-3.0), abs=0.01)


def test_desistance_shortens_records_and_the_longer_the_record_the_less_often_it_ended():
    """At the baseline's desistance values records are shorter than without it, and among people with a record,
    the careers that are still going (factor 1) are more common the longer the record (desistance is less likely
    the longer the record, and a career that ended early stops adding convictions)."""
    params = load_scenario(BASELINE)
    j = params.justice
    count, _, factor = careers(rate=0.3, intercept=j.desist_log_odds_intercept, per_log_prev=j.desist_log_odds_per_log_prev,
                               multiplier=j.desisted_propensity_multiplier)
    plain, _, _ = careers(rate=0.3, intercept=-60.0)
    assert count.mean() < 0.95 * plain.mean()
    going = factor == 1.0
    assert 0 < (~going[count > 0]).mean() < 1
    assert going[count == 1].mean() < going[(count >= 4) & (count <= 6)].mean() < going[count >= 10].mean()
    # every factor is a power of the multiplier (one for each desistance), never more than the count
    powers = np.round(np.log(factor) / np.log(j.desisted_propensity_multiplier)).astype(int)
    assert np.allclose(factor, j.desisted_propensity_multiplier ** powers) and (powers <= count).all()


def test_the_start_s_records_carry_desistance_only_with_the_option():
    """Records as drawn (no simulated past): with the option, some of the people with a record start with their
    propensity lowered (by a power of the multiplier) and nobody without one does, and the general adults' records are
    shorter than without it; without it, everyone starts at their innate propensity."""
    from sim import ReoffendingModel

    base = ["population.scale_general=40", "population.history_years=0"]
    models = {on: ReoffendingModel(load_scenario(BASELINE, [*base, f"population.desistance_in_past_records={str(on).lower()}"]),
                                   seed=4, record_offences=False) for on in (False, True)}
    records = {}
    for on, model in models.items():
        p, n = model.people, model.people.n
        general_adult = (p.weight[:n] > 2) & (-p.birth_month[:n] >= 12 * model.params.family.age_adult)
        records[on] = p.convictions_before_start[:n][general_adult]
        lowered = p.propensity[:n] < p.innate_propensity[:n]
        if not on:
            assert not lowered.any()
            continue
        assert lowered.any() and (p.convictions_before_start[:n][lowered] > 0).all()
        ratio = p.propensity[:n][lowered] / p.innate_propensity[:n][lowered]
        powers = np.round(np.log(ratio) / np.log(model.params.justice.desisted_propensity_multiplier))
        assert np.allclose(ratio, model.params.justice.desisted_propensity_multiplier ** powers) and (powers >= 1).all()
    assert (records[True] > 0).mean() == pytest.approx((records[False] > 0).mean(), abs=0.01)  # the first is the same
    assert records[True][records[True] > 0].mean() < 0.95 * records[False][records[False] > 0].mean()


def test_each_conviction_may_end_the_career_with_the_courts_chance_given_the_record_before_it():
    """With a multiplier of 0 a career ends at the conviction that ends it, so among careers that reach n + 1
    convictions, the share that ends there is the courts' chance of desistance for a record of n (``p_desist``)."""
    from sim.processes.courts import p_desist

    j = load_scenario(BASELINE).justice
    count, _, factor = careers(rate=0.5, intercept=j.desist_log_odds_intercept, per_log_prev=j.desist_log_odds_per_log_prev,
                               multiplier=0.0)
    for n in range(5):
        reached = count >= n + 1
        ended_there = (count == n + 1) & (factor == 0.0)
        expected = float(p_desist(np.array([n]), j)[0])
        assert ended_there.sum() / reached.sum() == pytest.approx(expected, abs=4 * np.sqrt(expected / reached.sum()) + 0.002), n
