"""Custodial sentence lengths: one lognormal, or two parts (``justice.sentence_short_share``: a shorter lognormal for
that share of sentences), in the courts and in the start's drawn stocks (``population.start_sentence_short_*``)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BASELINE
from sim.model import ReoffendingModel
from sim.processes import courts
from sim.state.people import CUSTODY, FREE, LICENCE
from sim.state.scenario import load_scenario

COARSE = ["population.scale_general=40", "population.scale_cjs_families=2", "run.years=1"]
#: one lognormal, as until the refit with two-part sentences (median 12, sd of log 1.0)
ONE = ["justice.sentence_short_share=0", "justice.sentence_median_months=12", "justice.sentence_sigma=1.0",
       "population.start_sentence_short_share=0", "population.start_sentence_median_months=12", "population.start_sentence_sigma=1.0"]
#: the two-part distribution the baseline's sources derive (share, short median and sd; long median and sd)
TWO_PART = ["justice.sentence_short_share=0.75", "justice.sentence_short_median_months=2.5", "justice.sentence_short_sigma=1.24",
            "justice.sentence_median_months=31.7", "justice.sentence_sigma=0.69"]


def _sentenced(extra, n: int = 20_000, seed: int = 2):
    """Sentence ``n`` people at once with the courts' own function; their custodial and licence parts."""
    model = ReoffendingModel(load_scenario(BASELINE, [*COARSE, "population.history_years=0", *ONE, *extra]), seed=seed)
    rows = np.flatnonzero(model.people.status[: model.people.n] == FREE)[:n]  # nobody serving a sentence already
    courts.sentence_custody(model, rows, np.random.default_rng(seed).standard_normal(len(rows)))
    p = model.people
    return p.custody_months_left[rows].astype(float), p.licence_months_left[rows].astype(float), model.params.justice


def test_a_two_part_distribution_puts_its_share_in_the_short_part_and_keeps_the_licence_rule():
    """With the two parts, sentences of 6 months or less (a custodial part of 3 months or less at release at half)
    are far more common than with one lognormal of median 12, and licence follows only sentences of 12 months or more
    in both; the tail is not heavier than the single lognormal's (the two parts fit the prisoners' average sentence
    as it does)."""
    one = _sentenced([])
    two = _sentenced(TWO_PART)
    for custody, licence, j in (one, two):
        sentence = custody + licence
        assert (licence[sentence < j.licence_min_sentence_months] == 0).all()
        assert (licence[custody >= j.licence_min_sentence_months] > 0).all()
    short_one, short_two = (one[0] <= 3).mean(), (two[0] <= 3).mean()
    assert short_one < 0.35 and 0.5 < short_two < 0.7
    top_one, top_two = np.quantile(one[0] + one[1], 0.95), np.quantile(two[0] + two[1], 0.95)
    assert 0.7 * top_one < top_two < 1.1 * top_one


def test_share_zero_draws_nothing_more_and_is_the_single_lognormal():
    """``sentence_short_share`` 0 is one lognormal: the same lengths as ``spell_months`` gives, whatever the short
    part's values."""
    plain = _sentenced([], n=5_000)
    other_short = _sentenced(["justice.sentence_short_median_months=1", "justice.sentence_short_sigma=0.1"], n=5_000)
    np.testing.assert_array_equal(plain[0], other_short[0])
    np.testing.assert_array_equal(plain[1], other_short[1])


def test_the_start_s_drawn_stocks_follow_their_own_two_parts():
    """The start without a simulated past draws the custody stock's sentences from the start's two parts, length-biased
    (in proportion to the time inside): with 90% of sentences of 2 months (a month inside, no licence) and 10% of 32
    (16 inside, then licence), and no spread, about 0.9 / (0.9 + 0.1 x 16) = 36% of the people in custody at the start
    have no licence to follow; with the long part alone, none; everyone on licence has months of it left."""
    def stock(extra):
        model = ReoffendingModel(load_scenario(BASELINE, [*COARSE, "population.history_years=0", *ONE, *extra]), seed=3)
        p, n = model.people, model.people.n
        custody = p.status[:n] == CUSTODY
        assert custody.sum() > 200 and (p.licence_months_left[:n][p.status[:n] == LICENCE] >= 1).all()
        return (p.licence_months_left[:n][custody] == 0).mean()

    long_only = ["population.start_sentence_median_months=32", "population.start_sentence_sigma=0"]
    assert stock(long_only) == 0
    two = stock([*long_only, "population.start_sentence_short_share=0.9", "population.start_sentence_short_median_months=2",
                 "population.start_sentence_short_sigma=0"])
    assert 0.28 < two < 0.45


def test_a_start_whose_sentences_cannot_carry_licence_is_refused_naming_the_short_part():
    """All of the start's sentences short (share 1, median 2 months, no spread) cannot be followed by licence: one
    clear ScenarioError naming the inputs, before anything is built."""
    from sim.state.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="start_sentence_short"):
        load_scenario(BASELINE, ["population.start_sentence_short_share=1", "population.start_sentence_short_median_months=2",
                                 "population.start_sentence_short_sigma=0"])


def test_a_licence_keeps_its_sentence_s_end_through_a_new_sentence_and_a_recall():
    """The sentence's end does not move: someone on licence with 20 months left who is given a 4-month sentence (2
    inside, no licence of its own) comes out with 18 months of the old licence; one given a long sentence whose own
    licence outlasts the old one comes out with that; a recall of ``recall_custody_months`` takes that many months
    off what is left (the licence runs on inside), never more than is left; a new sentence during a recall ends
    where the later of the two ends."""
    from sim.processes import justice

    model = ReoffendingModel(load_scenario(BASELINE, [*COARSE, "population.history_years=0", *ONE]), seed=2)
    p = model.people
    rows = np.flatnonzero(p.status[: p.n] == FREE)[:3]
    p.status[rows] = LICENCE
    p.licence_months_left[rows] = 20
    j = model.params.justice
    # z for sentences of 4 months and of 60 months (30 inside, 30 on licence), from the single lognormal
    z = np.log(np.array([4.0, 60.0]) / j.sentence_median_months) / j.sentence_sigma
    courts.sentence_custody(model, rows[:2], z)
    assert list(p.custody_months_left[rows[:2]]) == [2, 30]
    assert list(p.licence_months_left[rows[:2]]) == [18, 30]
    justice.recall(model, rows[2:])
    assert p.status[rows[2]] == CUSTODY
    assert p.licence_months_left[rows[2]] == 20 - j.recall_custody_months
    # recalled, then sentenced to 20 months (10 inside, 10 on licence): both end at month 20, so does the whole
    courts.sentence_custody(model, rows[2:], np.log(np.array([20.0]) / j.sentence_median_months) / j.sentence_sigma)
    assert p.custody_months_left[rows[2]] == 10 and p.licence_months_left[rows[2]] == 10
    # a recall with less licence left than the recall's months holds them only to the sentence's end
    other = np.flatnonzero(p.status[: p.n] == FREE)[3:4]
    p.status[other], p.licence_months_left[other] = LICENCE, 1
    justice.recall(model, other)
    assert p.custody_months_left[other[0]] == 1 and p.licence_months_left[other[0]] == 0
