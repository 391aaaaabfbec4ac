"""Decision measures (sim.appraisal.decision) against values worked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.appraisal.decision import MIN_REPLICATES_SOBOL, acceptability, break_even, first_order_indices, priors_from_manifest, value_of_information
from sim.state.params import Dist


def test_value_of_information_by_hand():
    """NPV = 100 (x - 0.5) with x uniform on [0, 1], and an input z that does not matter. The decision (fund if
    NPV > 0) is a coin toss on the mean; perfect information on x is worth E[max(100 (x - 0.5), 0)] = 12.5, on z
    nothing."""
    n = 2000
    x = (np.arange(n) + 0.5) / n
    z = np.random.default_rng(1).permutation(x)
    rows = pd.DataFrame({"appraisal:npv": 100 * (x - 0.5), "parameter:intervention.offending_rr_at_full_dose": x,
                         "parameter:costs.prison_cost_per_month": z})
    voi = value_of_information(rows).set_index("group")["value_gbp"]
    assert voi["all uncertain inputs (EVPI)"] == pytest.approx(12.5, abs=0.05)
    assert voi["the offender's offending"] == pytest.approx(12.5, abs=0.05)
    assert voi["costs"] < 1.0  # nothing, but for the regression fitting chance (a known upward bias)


def test_value_of_information_is_nothing_when_the_decision_is_certain():
    x = np.linspace(0, 1, 200)
    rows = pd.DataFrame({"appraisal:npv": 1000 + 100 * x, "parameter:intervention.p_engage": x})
    assert (value_of_information(rows)["value_gbp"].abs() < 1e-6).all()


def test_break_even_by_hand():
    """NPV = 10,000 (0.9 - rr) (+ small noise): break-even at rr = 0.9. A triangular(0.7, 0.9, 1.0) prior gives an
    effect at least that strong (rr <= 0.9) probability 0.2^2 / (0.3 x 0.2) = 2/3."""
    rng = np.random.default_rng(3)
    rr = rng.uniform(0.7, 1.0, 400)
    other = rng.uniform(0, 1, 400)
    rows = pd.DataFrame({"appraisal:npv": 10_000 * (0.9 - rr) + rng.normal(0, 10, 400),
                         "parameter:intervention.offending_rr_at_full_dose": rr, "parameter:intervention.p_engage": other})
    prior = Dist("triangular", (("low", 0.7), ("mode", 0.9), ("high", 1.0)))
    row = break_even(rows, {"intervention.offending_rr_at_full_dose": prior}).set_index("input").loc["intervention.offending_rr_at_full_dose"]
    assert row["break_even"] == pytest.approx(0.9, abs=0.002)
    assert row["prior_probability"] == pytest.approx(2 / 3, abs=0.01)


def test_break_even_blank_when_the_input_does_not_matter():
    rng = np.random.default_rng(4)
    rr = rng.uniform(0.7, 1.0, 200)
    rows = pd.DataFrame({"appraisal:npv": rng.normal(-100, 10, 200), "parameter:intervention.offending_rr_at_full_dose": rr,
                         "parameter:intervention.p_engage": rng.uniform(size=200)})
    row = break_even(rows, {}).iloc[0]
    assert np.isnan(row["break_even"]) and np.isnan(row["prior_probability"])


def test_point_mass_cdf():
    d = Dist("uniform", (("low", 0.0), ("high", 2.0), ("p_no_effect", 0.4), ("no_effect_at", 1.0)))
    assert d.cdf(0.5) == pytest.approx(0.6 * 0.25)
    assert d.cdf(1.0) == pytest.approx(0.6 * 0.5 + 0.4)
    assert d.cdf(2.0) == pytest.approx(1.0)


def test_acceptability_by_hand():
    """Two replicates: savings 100 and 300, 10 families each, cost 200 each (20 a family). At 5 a family both pay
    (cost 50), at 20 one (300 > 200 only), at 35 none (cost 350)."""
    rows = pd.DataFrame({"intervention:iv_families_started": [10.0, 10.0], "appraisal:total_savings": [100.0, 300.0],
                         "appraisal:intervention_cost": [200.0, 200.0]})
    curve = acceptability(rows, points=13)  # 0, 5, ..., 60
    chance = dict(zip(curve["cost_per_family"].round(6), curve["chance_benefits_exceed_costs"]))
    assert chance[5.0] == 1.0 and chance[20.0] == 0.5 and chance[35.0] == 0.0
    assert curve["scenario_cost_per_family"].iloc[0] == 20.0


def test_priors_from_manifest_reads_distributions_and_money():
    params = {"intervention": {"offending_rr_at_full_dose": {"dist": "lognormal", "mean": 0.87, "sd": 0.09, "p_no_effect": 0.35, "no_effect_at": 1.0},
                               "coverage": 0.8,
                               "cost_per_keyworker_hour_gbp": {"value": {"dist": "triangular", "low": 32, "mode": 40, "high": 55}, "price_year": "2013-14"}}}
    priors = priors_from_manifest(params)
    assert set(priors) == {"intervention.offending_rr_at_full_dose", "intervention.cost_per_keyworker_hour_gbp"}
    assert priors["intervention.offending_rr_at_full_dose"].p_no_effect == 0.35


def test_break_even_beyond_the_prior_is_blank_with_its_answer():
    """NPV = 1,000 + 2,000 x scale for need scales in [0, 2]: it would break even only at -0.5, which a scale
    drawn from the prior (never below 0) cannot reach: it pays at any value the evidence allows (probability 1)."""
    rng = np.random.default_rng(6)
    scale = rng.uniform(0, 2, 300)
    rows = pd.DataFrame({"appraisal:npv": 1000 + 2000 * scale + rng.normal(0, 5, 300),
                         "parameter:intervention.need_effect_scale": scale, "parameter:intervention.p_engage": rng.uniform(size=300)})
    prior = Dist("lognormal", (("mean", 1.0), ("sd", 0.6), ("p_no_effect", 0.4), ("no_effect_at", 0.0)))
    row = break_even(rows, {"intervention.need_effect_scale": prior}).iloc[0]
    assert np.isnan(row["break_even"]) and row["prior_probability"] == 1.0


def test_first_order_indices_find_the_share_of_variance_each_input_explains():
    """NPV = 3a + b + noise with a, b, c independent uniforms: a alone explains 9/(9 + 1 + 12 x 0.04) = 86% of the
    variance, b 10%, c none (worked by hand); estimated from 200 replicates as drawn."""
    rng = np.random.default_rng(7)
    n = 200
    rows = pd.DataFrame({"parameter:a": rng.uniform(size=n), "parameter:b_step": rng.uniform(size=n), "parameter:c": rng.uniform(size=n),
                         "parameter:fixed": np.full(n, 2.0)})  # (a name SALib would refuse as its own)
    rows["appraisal:npv"] = 3 * rows["parameter:a"] + rows["parameter:b_step"] + rng.normal(0, 0.2, n)
    s1 = first_order_indices(rows).set_index("input")
    assert list(s1.index[:2]) == ["a", "b_step"] and "fixed" not in s1.index
    assert s1.loc["a", "s1"] == pytest.approx(0.86, abs=0.1)
    assert s1.loc["b_step", "s1"] == pytest.approx(0.10, abs=0.08)
    assert s1.loc["c", "s1"] < 0.08
    assert (s1["s1_low"] <= s1["s1"]).all() and (s1["s1"] <= s1["s1_high"]).all()
    assert first_order_indices(rows.iloc[: MIN_REPLICATES_SOBOL - 1]).empty
