"""Records drawn for the start and for newcomers with the desistance the run's courts would have given them
(``population.desistance_in_past_records``): a past career is a Poisson stream of proven offences (convictions, and
with cautions on, cautions) that each may end it."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BASELINE
from sim.processes import offending
from sim.state.rng import CounterRNG
from sim.state.scenario import load_scenario

N = 40_000


def careers(rate, intercept, per_log_prev=0.0, multiplier=0.1, start=5.0, stop=25.0, seed=1, cautions=offending.NO_CAUTIONS,
            with_cautions=False):
    """Past careers of N people (convictions, where the last fell, the propensity's factor; and the cautions if
    ``with_cautions``)."""
    draws = CounterRNG(seed)
    ids = np.arange(N, dtype=np.int64)
    count, cautioned, last, factor = offending._past_careers(
        ids, np.full(N, rate), start, np.full(N, stop), draws.key("wait", 0), draws.key("desist", 0), intercept,
        per_log_prev, multiplier, cautions, draws.key("caution", 0))
    return (count, cautioned, last, factor) if with_cautions else (count, last, factor)


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
    # (the general adults whose parents drawn outside the area are the same either way: the option shapes those
    # parents' records too, and with them the family effect in the pasts of people past its age limit)
    same_parents = models[True].people.parents_convicted_outside == models[False].people.parents_convicted_outside
    for on, model in models.items():
        p, n = model.people, model.people.n
        general_adult = (p.weight[:n] > 2) & (-p.birth_month[:n] >= 12 * model.params.family.age_adult) & same_parents[:n]
        records[on] = (p.convictions_before_start[:n] + p.prev_cautions[:n])[general_adult]
        lowered = p.propensity[:n] < p.innate_propensity[:n]
        if not on:
            assert not lowered.any()
            continue
        proven = p.convictions_before_start[:n] + p.prev_cautions[:n]  # (the baseline cautions some past offences)
        assert lowered.any() and (proven[lowered] > 0).all()
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


def test_a_past_career_cautions_its_proven_offences_as_the_run_does_and_keeps_the_same_record_and_desistance():
    """With cautions, the same draws give the same careers: convictions and cautions add up to the convictions of a
    career without cautions, with the same propensity factor (desistance reads the whole record, as the run's
    does). Each proven offence is cautioned with the police's chance for its record and age (``courts.p_caution``):
    more often as a child (before ``adult_from``), and at a clean record or a long one as the log-odds say. The last
    conviction is a conviction's: it falls where a conviction was made, so never after the last proven offence."""
    from sim.processes.courts import p_caution

    j = load_scenario(BASELINE).justice
    adult_from = 12.0
    terms = (True, j.caution_log_odds_intercept, -0.4, j.youth_caution_log_odds, adult_from)
    args = dict(rate=0.4, intercept=j.desist_log_odds_intercept, per_log_prev=j.desist_log_odds_per_log_prev,
                multiplier=j.desisted_propensity_multiplier)
    plain, plain_last, plain_factor = careers(**args)
    count, cautioned, last, factor = careers(**args, cautions=terms, with_cautions=True)
    assert (count + cautioned == plain).all() and (factor == plain_factor).all()
    assert cautioned.sum() > 0.2 * plain.sum() and count.sum() > 0.2 * plain.sum()
    had = count > 0
    assert (last[had] <= plain_last[had] + 1e-12).all() and (last[had] > 5.0).all()
    # the first proven offence: cautioned at a clean record's chance, as a child or as an adult by when it fell
    one, one_cautioned, _, _ = careers(rate=2.0, intercept=60.0, multiplier=0.0, stop=30.0, cautions=terms, with_cautions=True)
    # (certain desistance with multiplier 0: exactly one proven offence each, at an exponential wait of mean 0.5)
    assert ((one + one_cautioned) == 1).all()
    child_share = float(p_caution(np.array([0]), np.array([True]), j)[0])
    wait_to_adult = 1 - np.exp(-2.0 * (adult_from - 5.0))  # nearly all the first offences fall as a child
    expected = wait_to_adult * child_share + (1 - wait_to_adult) * float(p_caution(np.array([0]), np.array([False]), j)[0])
    assert one_cautioned.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / N))
    # a record of n before it: cautioned at the chance for n (per_log_prev -0.4 here), read among adults with
    # certain careers (no desistance) where every offence falls after adult_from
    adults, adult_cautioned = careers(rate=0.5, intercept=-60.0, start=adult_from, stop=adult_from + 8.0, cautions=terms,
                                      with_cautions=True)[:2]
    assert adult_cautioned.sum() / (adults + adult_cautioned).sum() < float(p_caution(np.array([0]), np.array([False]), j)[0])


def test_without_cautions_a_past_career_is_all_convictions():
    """With cautions off (the caution terms ``NO_CAUTIONS``) every proven offence of the past is a conviction."""
    count, cautioned, _, _ = careers(rate=0.3, intercept=-1.0, with_cautions=True)
    assert cautioned.sum() == 0 and count.sum() > 0


def test_the_start_cautions_some_past_offences_so_fewer_have_a_conviction_but_the_records_are_the_same():
    """A start drawn with cautions and without (no simulated past): the adults past the age where a parent's
    conviction counts (whose hazards do not read other people's records) have the same proven record, convictions
    plus cautions, and the same propensity either way, but with cautions some of it is cautions, so fewer of them
    have a conviction; and fewer of the children whose parents live elsewhere have a parent convicted (the parents'
    records are thinned the same way). (Compared among those whose parents drawn outside the area have the same
    convictions either way: those parents' records shape the family effect in these adults' pasts.)"""
    from sim import ReoffendingModel

    base = ["population.scale_general=40", "population.history_years=0"]
    models = {on: ReoffendingModel(load_scenario(BASELINE, [*base, f"justice.cautions={str(on).lower()}"]), seed=6,
                                   record_offences=False) for on in (False, True)}
    old, people = {}, {}
    for on, model in models.items():
        p, n = model.people, model.people.n
        age = -p.birth_month[:n]
        old[on] = (p.weight[:n] > 2) & (age >= 12 * model.params.family.parent_conviction_effect_until_age)
        people[on] = p
    assert (old[True] == old[False]).all() and old[True].sum() > 1000
    n = people[True].n
    same_parents = people[True].parents_convicted_outside[:n] == people[False].parents_convicted_outside[:n]
    old = {on: rows & same_parents for on, rows in old.items()}
    keep = old[True]
    on, off = people[True], people[False]
    n = len(keep)
    assert (on.convictions_before_start[:n][keep] + on.prev_cautions[:n][keep] == off.convictions_before_start[:n][keep]).all()
    assert np.array_equal(on.propensity[:n][keep], off.propensity[:n][keep])
    assert off.prev_cautions[:n].sum() == 0 and on.prev_cautions[:n][keep].sum() > 0
    assert np.array_equal(on.cautions_before_start[:n], on.prev_cautions[:n])  # brought into the run
    convicted = {k: (v.convictions_before_start[:n][keep] > 0).mean() for k, v in people.items()}
    assert convicted[True] < 0.9 * convicted[False]
    outside = {k: (v.parents_convicted_outside[:n] > 0).mean() for k, v in people.items()}
    assert outside[True] < 0.9 * outside[False]


def test_the_past_cautions_children_and_adults_at_their_own_chances_switching_at_the_18th_birthday():
    """The baseline's caution terms for a drawn past (``_past_caution_terms``: its switch from child to adult in
    months at an age factor of 1): careers with no desistance wholly before the 18th birthday are cautioned at a
    child's chance, wholly after it at an adult's (``courts.p_caution``; the baseline's chance does not change with
    the record)."""
    from sim.processes.courts import p_caution

    params = load_scenario(BASELINE)
    j = params.justice
    assert j.caution_log_odds_per_log_prev == 0.0
    _, level = offending._age_factor_by_month(params, 12 * 40)
    terms = offending._past_caution_terms(params, level)
    for (first, last), youth in (((12 * 10, 12 * 17 + 6), True), ((12 * 18 + 6, 12 * 35), False)):
        count, cautioned = careers(rate=2.0, intercept=-60.0, start=float(level[first]), stop=float(level[last]),
                                   cautions=terms, with_cautions=True)[:2]
        share = cautioned.sum() / (count + cautioned).sum()
        expected = float(p_caution(np.array([0]), np.array([youth]), j)[0])
        assert share == pytest.approx(expected, abs=0.01), (youth, share, expected)


def test_a_family_effect_up_to_an_age_scales_the_rate_before_it_and_leaves_the_rate_after_it():
    """``_draw_past_convictions`` gives people past the family effect's age limit the effect up to it by passing
    ``_past_careers`` the rate times the multiplier and a stop whose part after the limit is shrunk by it. With no
    desistance and no cautions the count is then Poisson with mean rate x (multiplier x the months at a factor of 1
    before the limit + those after it), what a rate that changes at the limit gives."""
    n, rate, rr, start, young, end = 200_000, 0.01, 2.5, 5.0, 200.0, 260.0
    ids = np.arange(1, n + 1, dtype=np.int64)
    count, cautions, last, _ = offending._past_careers(ids, np.full(n, rate * rr), start, np.full(n, young + (end - young) / rr),
                                             np.uint64(11), np.uint64(12), -60.0, 0.0, 1.0, offending.NO_CAUTIONS,
                                                       np.uint64(13))
    expected = rate * (rr * (young - start) + (end - young))
    assert cautions.sum() == 0
    assert count.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected / n))
    assert count.var() == pytest.approx(expected, rel=0.03)  # Poisson: the two parts add up, nothing lost or doubled
    had = count > 0
    mapped = np.where(last[had] > young, young + (last[had] - young) * rr, last[had])  # back, as the caller maps it
    assert (mapped > start).all() and (mapped <= end).all() and (mapped > young).mean() > 0.3
