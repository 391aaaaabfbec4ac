"""The cost ledger on hand-made monthly series: uprating, the fiscal/economic/social split, annual discounting and
the intervention's cost, against numbers worked out by hand from the parameter values the tests set themselves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sim.appraisal import costs as C
from sim import metrics
from sim.state.params import Money
from sim.state.scenario import realize

from conftest import BASELINE, ROOT, load

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"

# --- a hand-made world: two offence types, three needs, a three-year deflator ---------------------------------

#: deflator: 2011-12 = 80, 2012-13 = 100 (base), 2015-16 = 125, so a 2015-16 pound is worth 0.8 base pounds and
#: a 2011-12 pound 1.25
DEFLATOR = {"2011-12": 80.0, "2012-13": 100.0, "2015-16": 125.0}
RATE = 0.035


@pytest.fixture(scope="module")
def hand_params():
    """The baseline scenario with every cost replaced by round numbers (so the expected values are hand-worked)."""
    p = load(path=BASELINE)
    costs = replace(
        p.costs,
        base_price_year="2012-13",
        deflator_years=tuple(DEFLATOR),
        deflator_index=tuple(DEFLATOR.values()),
        discount_rate=RATE,
        optimism_bias_intervention=0.0,
        crime_cost_by_type=Money((10000.0, 2000.0), "2015-16"),  # -> 8000, 1600
        crime_cost_share_economic=0.3,
        crime_cost_share_health=0.1,
        crime_cost_share_response=0.1,  # left out: costed from arrests, courts, sentences; social = 1 - 0.5 = 0.5
        police_cost_per_proven_offence=Money(1000.0, "2012-13"),  # -> 1000
        police_cost_per_caution=Money(250.0, "2015-16"),  # -> 200
        court_cost_per_conviction=Money(800.0, "2011-12"),  # -> 1000
        prison_cost_per_month=Money(3000.0, "2012-13"),
        probation_order_cost_per_month=Money(200.0, "2012-13"),
        licence_cost_per_month=Money(250.0, "2015-16"),  # -> 200
        recall_cost=Money(1000.0, "2012-13"),
        youth_justice_cost_per_conviction=Money(2000.0, "2012-13"),
        youth_supervision_cost_per_month=Money(500.0, "2012-13"),
        youth_custody_cost_per_month=Money(5000.0, "2012-13"),
        children_services_cost_per_child_month_parent_in_custody=Money(100.0, "2012-13"),
        nhs_cost_per_month_by_need=Money((0.0, 0.0, 250.0), "2015-16"),  # drugs -> 200
        dwp_cost_per_month_unemployed=Money(300.0, "2012-13"),
        lost_output_per_month_unemployed=Money(1000.0, "2012-13"),
        cashable_share_prison=0.2,
        cashable_share_probation=0.3,
        cashable_share_police=0.1,
        cashable_share_courts=0.25,
        cashable_share_local_authority=0.5,
        cashable_share_youth_justice=0.4,
        cashable_share_nhs=0.1,
        cashable_share_dwp=1.0,
    )
    iv = replace(
        p.intervention,
        coverage=0.8,
        intensity_hours_per_month=20.0,
        capacity_families_per_year=600.0,
        setup_cost_gbp=Money(12500.0, "2015-16"),  # -> 10000 in month 0
        fixed_cost_per_year_gbp=Money(120000.0, "2012-13"),  # -> 10000 a month
        cost_per_keyworker_hour_gbp=Money(50.0, "2015-16"),  # -> 40 an hour
        treatment_referral_share=0.0,  # test_referred_treatment_by_hand
    )
    return replace(
        p,
        offending=replace(p.offending, offence_types=("violence", "theft")),
        needs=replace(p.needs, names=("accommodation", "employment", "drugs")),
        intervention=iv,
        costs=costs,
    )


def hand_series(params, months: int = 24) -> pd.DataFrame:
    """Every column of the monthly series, zero unless set. Year 0 and year 1 differ so discounting shows."""
    ts = pd.DataFrame({name: np.zeros(months) for name in metrics.series_names(params)})
    ts["month"] = np.arange(months, dtype="int32")
    y1 = ts["month"] >= 12
    ts["offences_violence"] = np.where(y1, 1.0, 2.0)
    ts["offences_theft"] = 5.0
    ts["offences"] = ts["offences_violence"] + ts["offences_theft"]
    ts["offences_proven"] = 1.0
    ts["convictions"] = 1.0
    ts["custody"] = np.where(y1, 3.0, 4.0)
    ts["probation"] = 3.0
    ts["licence"] = 2.0
    ts.loc[ts["month"] == 0, "recalls"] = 1.0
    ts.loc[ts["month"] == 7, "cautions"] = 2.0
    ts.loc[ts["month"] == 5, "children_convicted"] = 1.0
    ts.loc[ts["month"] == 5, "youth_supervision"] = 2.0
    ts.loc[ts["month"] == 6, "youth_custody"] = 1.0
    ts["children_with_parent_in_custody"] = 6.0
    ts["adults_with_employment"] = 3.0
    ts["adults_with_drugs"] = 2.0
    ts["adults_with_accommodation"] = 7.0  # no NHS cost, no DWP cost: must not show up anywhere
    ts["iv_active_families"] = np.where(y1, 10.0, 5.0)
    return ts


def cell(led: pd.DataFrame, month: int, agency: str, kind: str) -> float:
    sel = led[(led["month"] == month) & (led["agency"] == agency) & (led["kind"] == kind)]
    assert len(sel) <= 1
    return float(sel["cost_gbp"].sum())


# --- uprating and discounting ---------------------------------------------------------------------------------


def test_uprate_uses_the_deflator_ratio(hand_params):
    c = hand_params.costs
    assert C.uprate(Money(125.0, "2015-16"), c) == pytest.approx(100.0)
    assert C.uprate(Money(80.0, "2011-12"), c) == pytest.approx(100.0)
    assert C.uprate(Money(55.0, "2012-13"), c) == pytest.approx(55.0)
    np.testing.assert_allclose(C.uprate(Money((10000.0, 2000.0), "2015-16"), c), [8000.0, 1600.0])
    with pytest.raises(KeyError):
        C.uprate(Money(1.0, "1066-67"), c)


def test_uprate_with_the_shipped_deflator():
    """The baseline's crime costs (at their own price year) times index[base] / index[their year]."""
    c = load().costs
    index = dict(zip(c.deflator_years, c.deflator_index))
    m = c.crime_cost_by_type
    factor = index[c.base_price_year] / index[m.price_year]
    if m.price_year != c.base_price_year:
        assert factor != 1.0
    np.testing.assert_allclose(C.uprate(m, c), np.asarray(m.value) * factor)
    # the base year's index is the reference: uprating a base-year amount changes nothing
    assert C.uprate(Money(123.0, c.base_price_year), c) == pytest.approx(123.0)


def test_discount_factors_are_annual():
    f = C.discount_factors(np.arange(36), RATE)
    np.testing.assert_allclose(f[:12], 1.0)
    np.testing.assert_allclose(f[12:24], 1 / 1.035)
    np.testing.assert_allclose(f[24:36], 1 / 1.035**2)
    assert C.discount_factors(np.array([0, 11, 12]), 0.0).tolist() == [1.0, 1.0, 1.0]


# --- the ledger, month by month ---------------------------------------------------------------------------------


def test_ledger_by_hand(hand_params):
    ts = hand_series(hand_params)
    led = C.ledger(ts, hand_params)
    assert set(led.columns) == {"month", "agency", "kind", "cost_gbp"}
    assert sorted(led["month"].unique()) == list(range(24))
    assert set(led["agency"]) <= set(C.AGENCIES) and set(led["kind"]) <= set(C.KINDS)
    assert not led.duplicated(["month", "agency", "kind"]).any()
    # victims and society and the wider economy carry no fiscal cost; agencies carry only fiscal costs
    v = led[led["agency"] == "victims_and_society"]
    assert set(v["kind"]) == {"social", "economic"}
    assert set(led[led["agency"] == "wider_economy"]["kind"]) == {"economic"}
    assert set(led[~led["agency"].isin(["victims_and_society", "wider_economy"])]["kind"]) <= set(C.FISCAL)

    # month 1 (year 0): violence 2 x 8000 + theft 5 x 1600 = 24,000 of crime
    expected_m1 = {
        ("victims_and_society", "social"): 0.5 * 24000,
        ("victims_and_society", "economic"): 0.3 * 24000,  # property and lost output of victims
        ("wider_economy", "economic"): 3 * 1000,  # lost output of 3 unemployed adults
        ("nhs", "fiscal_cashable"): 0.1 * (0.1 * 24000 + 2 * 200),  # victims' treatment + 2 drug-need months
        ("nhs", "fiscal_non_cashable"): 0.9 * (0.1 * 24000 + 2 * 200),
        ("police", "fiscal_cashable"): 0.1 * 1000,
        ("police", "fiscal_non_cashable"): 0.9 * 1000,
        ("courts", "fiscal_cashable"): 0.25 * 1000,  # 800 at 2011-12 prices
        ("courts", "fiscal_non_cashable"): 0.75 * 1000,
        ("prisons", "fiscal_cashable"): 0.0,  # cashable only when a comparison closes whole units
        ("prisons", "fiscal_non_cashable"): 4 * 3000,
        ("probation", "fiscal_cashable"): 0.3 * (3 * 200 + 2 * 200),  # orders + licences (250 at 2015-16 prices)
        ("probation", "fiscal_non_cashable"): 0.7 * (3 * 200 + 2 * 200),
        ("local_authority", "fiscal_cashable"): 0.5 * 6 * 100,
        ("local_authority", "fiscal_non_cashable"): 0.5 * 6 * 100,
        ("dwp", "fiscal_cashable"): 3 * 300,
        ("dwp", "fiscal_non_cashable"): 0.0,
        ("intervention", "fiscal_cashable"): 5 * 20 * 40 + 10000,  # keyworker hours + fixed cost / 12
    }
    for (agency, kind), value in expected_m1.items():
        assert cell(led, 1, agency, kind) == pytest.approx(value), (agency, kind)
    assert led[led["month"] == 1]["cost_gbp"].sum() == pytest.approx(sum(expected_m1.values()))

    # month 0 adds a recall (probation) and the intervention's set-up; month 5 a conviction of a child
    assert cell(led, 0, "probation", "fiscal_cashable") == pytest.approx(0.3 * (1000 + 1000))
    assert cell(led, 0, "intervention", "fiscal_cashable") == pytest.approx(5 * 20 * 40 + 10000 + 10000)
    assert cell(led, 5, "local_authority", "fiscal_cashable") == pytest.approx(0.5 * 600)
    assert cell(led, 5, "youth_justice", "fiscal_cashable") == pytest.approx(0.4 * (2000 + 2 * 500))  # conviction + supervision
    assert cell(led, 6, "youth_justice", "fiscal_non_cashable") == pytest.approx(0.6 * 5000)  # a child-month in custody
    # month 7: two cautions cost the police 200 each, and the courts nothing (month 1's conviction only)
    assert cell(led, 7, "police", "fiscal_non_cashable") == pytest.approx(0.9 * (1000 + 2 * 200))
    assert cell(led, 7, "courts", "fiscal_non_cashable") == pytest.approx(cell(led, 1, "courts", "fiscal_non_cashable"))
    # month 13 (year 1): violence 1 x 8000 + theft 5 x 1600 = 16,000; 3 in custody; 10 families
    assert cell(led, 13, "victims_and_society", "social") == pytest.approx(0.5 * 16000)
    assert cell(led, 13, "nhs", "fiscal_non_cashable") == pytest.approx(0.9 * (0.1 * 16000 + 2 * 200))
    assert cell(led, 13, "prisons", "fiscal_non_cashable") == pytest.approx(3 * 3000)
    assert cell(led, 13, "intervention", "fiscal_cashable") == pytest.approx(10 * 20 * 40 + 10000)


def test_crime_cost_shares_and_cashable_splits_add_up(hand_params):
    """Social + economic (crime part) + health shares of crime; cashable + non-cashable = the agency's cost."""
    ts = hand_series(hand_params)
    led = C.ledger(ts, hand_params)
    c = hand_params.costs
    crime = ts["offences_violence"] * 8000 + ts["offences_theft"] * 1600
    social = led[(led["agency"] == "victims_and_society") & (led["kind"] == "social")].set_index("month")["cost_gbp"]
    social_share = 1 - c.crime_cost_share_economic - c.crime_cost_share_health - c.crime_cost_share_response
    np.testing.assert_allclose(social.to_numpy(), crime * social_share)
    for agency, share in (("prisons", 0.0), ("police", 0.1), ("courts", 0.25), ("probation", 0.3), ("local_authority", 0.5), ("nhs", 0.1)):
        a = led[led["agency"] == agency].pivot(index="month", columns="kind", values="cost_gbp")
        total = a["fiscal_cashable"] + a["fiscal_non_cashable"]
        assert (total > 0).all(), agency
        np.testing.assert_allclose(a["fiscal_cashable"], share * total, err_msg=agency)


def test_declining_discount_rate_after_30_years():
    f = C.discount_factors(np.array([0, 12 * 30, 12 * 31, 12 * 40]), 0.035, 0.03)
    np.testing.assert_allclose(f, [1.0, 1.035 ** -30, 1.035 ** -30 / 1.03, 1.035 ** -30 / 1.03 ** 10])
    c = load().costs
    np.testing.assert_allclose(C.green_book_factors(np.array([12 * 35]), c), C.discount_factors(np.array([12 * 35]), c.discount_rate, c.discount_rate_after_30_years))


def test_present_value_by_hand(hand_params):
    led = C.ledger(hand_series(hand_params), hand_params)
    pv = C.present_value(led, RATE).set_index(["agency", "kind"])["pv_gbp"]
    d = 1 / 1.035
    # 12 months of year 0 undiscounted, 12 months of year 1 at 1/1.035
    assert pv["victims_and_society", "social"] == pytest.approx(12 * 12000 + 12 * 8000 * d)
    assert pv["victims_and_society", "economic"] == pytest.approx(12 * 7200 + 12 * 4800 * d)
    assert pv["wider_economy", "economic"] == pytest.approx(12 * 3000 + 12 * 3000 * d)
    assert pv["prisons", "fiscal_non_cashable"] == pytest.approx(12 * 12000 + 12 * 9000 * d)
    assert pv["probation", "fiscal_non_cashable"] == pytest.approx(0.7 * (12 * 1000 + 1000 + 12 * 1000 * d))
    assert pv["local_authority", "fiscal_cashable"] == pytest.approx(0.5 * (12 * 600 + 12 * 600 * d))
    assert pv["youth_justice", "fiscal_cashable"] == pytest.approx(0.4 * (2000 + 1000 + 5000))
    assert pv["dwp", "fiscal_cashable"] == pytest.approx(24 * 900 * (1 + d) / 2)
    assert pv["intervention", "fiscal_cashable"] == pytest.approx(10000 + 12 * (4000 + 10000) + 12 * (8000 + 10000) * d)
    # undiscounted, the present value is the plain sum
    pv0 = C.present_value(led, 0.0)
    assert pv0["pv_gbp"].sum() == pytest.approx(led["cost_gbp"].sum())
    assert pv.sum() < pv0["pv_gbp"].sum()


def test_ledger_is_linear_in_the_series(hand_params):
    """Twice the series (and no set-up or fixed cost) costs twice as much, month by month."""
    p = replace(hand_params, intervention=replace(hand_params.intervention, setup_cost_gbp=Money(0.0, "2012-13"),
                                                   fixed_cost_per_year_gbp=Money(0.0, "2012-13")))
    ts = hand_series(p)
    doubled = ts.copy()
    cols = [c for c in ts.columns if c != "month"]
    doubled[cols] = 2 * ts[cols]
    a, b = C.ledger(ts, p), C.ledger(doubled, p)
    np.testing.assert_allclose(b["cost_gbp"], 2 * a["cost_gbp"])


# --- the intervention's cost ------------------------------------------------------------------------------------

FAMILIES = np.array([0, 3, 5, 5, 8, 12, 12, 10, 9, 9, 7, 6, 4, 4, 3, 2, 0, 0], dtype=float)


def iv_series(params, families=FAMILIES) -> pd.DataFrame:
    ts = pd.DataFrame({name: np.zeros(len(families)) for name in metrics.series_names(params)})
    ts["month"] = np.arange(len(families), dtype="int32")
    ts["iv_active_families"] = families
    return ts


def with_iv(params, **changes):
    return replace(params, intervention=replace(params.intervention, **changes))


def test_intervention_cost_by_hand(hand_params):
    bias = 0.15
    p = replace(hand_params, costs=replace(hand_params.costs, optimism_bias_intervention=bias))
    cost = C.intervention_cost(iv_series(p), p)
    setup = np.where(np.arange(len(FAMILIES)) == 0, 10000.0, 0.0)  # 12,500 at 2015-16 prices
    expected = (setup + 120000 / 12 + FAMILIES * 20 * 40) * (1 + bias)
    np.testing.assert_allclose(cost, expected)
    # the ledger books exactly this, as a cashable cost of the intervention
    led = C.ledger(iv_series(p), p)
    booked = led[led["agency"] == "intervention"]
    assert set(booked["kind"]) == {"fiscal_cashable"}
    np.testing.assert_allclose(booked.sort_values("month")["cost_gbp"], expected)


def test_intervention_cost_with_the_shipped_scenario():
    """multi_agency.toml's own values: set-up + fixed / 12 + families x hours x cost per hour, each uprated from its
    price year with the deflator, times (1 + optimism bias). Uncertain values are taken as drawn for a replicate."""
    p, _ = realize(load(path=MULTI_AGENCY), 12345)
    iv, c = p.intervention, p.costs
    index = dict(zip(c.deflator_years, c.deflator_index))

    def up(m):
        return m.value * index[c.base_price_year] / index[m.price_year]

    months = np.arange(len(FAMILIES))
    expected = (np.where(months == 0, up(iv.setup_cost_gbp), 0.0) + up(iv.fixed_cost_per_year_gbp) / 12
                + FAMILIES * iv.intensity_hours_per_month * up(iv.cost_per_keyworker_hour_gbp))
    np.testing.assert_allclose(C.intervention_cost(iv_series(p), p), expected * (1 + c.optimism_bias_intervention))


def test_intervention_cost_scales_with_hours_and_families(hand_params):
    ts = iv_series(hand_params)
    none = iv_series(hand_params, np.zeros(len(FAMILIES)))

    def variable(params, series):
        return C.intervention_cost(series, params) - C.intervention_cost(none, params)

    v20 = variable(hand_params, ts)
    v40 = variable(with_iv(hand_params, intensity_hours_per_month=40.0), ts)
    assert v20.sum() > 0
    np.testing.assert_allclose(v40, 2 * v20)
    doubled = iv_series(hand_params, 2 * FAMILIES)
    np.testing.assert_allclose(variable(hand_params, doubled), 2 * v20)
    # the fixed part does not depend on hours or families
    np.testing.assert_allclose(C.intervention_cost(none, hand_params),
                               C.intervention_cost(none, with_iv(hand_params, intensity_hours_per_month=40.0)))
    np.testing.assert_allclose(v20, FAMILIES * 20 * 40)


@pytest.mark.parametrize("off", [{"coverage": 0.0}, {"intensity_hours_per_month": 0.0}, {"capacity_families_per_year": 0.0}],
                         ids=["coverage-0", "intensity-0", "capacity-0"])
def test_intervention_costs_nothing_when_off(hand_params, off):
    p = with_iv(hand_params, **off)
    ts = iv_series(p)
    assert ts["iv_active_families"].sum() > 0  # even if the series says families were served
    cost = C.intervention_cost(ts, p)
    assert cost.shape == (len(ts),)
    assert not cost.any()
    led = C.ledger(ts, p)
    assert led[led["agency"] == "intervention"]["cost_gbp"].abs().sum() == 0


def test_baseline_scenario_books_no_intervention_cost():
    p = load(path=BASELINE)
    assert C.intervention_cost(iv_series(p), p).sum() == 0


# --- money values read from scenario files ----------------------------------------------------------------------


def test_money_keeps_its_price_year_through_extends_and_plain_override(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{BASELINE}"\n[costs]\nprison_cost_per_month = 1234\n'
                     '[intervention]\nsetup_cost_gbp = { value = 5, price_year = "2015-16" }\n')
    base = load()
    p = load(path=child)
    assert p.costs.prison_cost_per_month == Money(1234.0, base.costs.prison_cost_per_month.price_year)
    assert p.intervention.setup_cost_gbp == Money(5.0, "2015-16")
    over = load("costs.prison_cost_per_month=99", path=child)
    assert over.costs.prison_cost_per_month == Money(99.0, base.costs.prison_cost_per_month.price_year)


def test_set_override_with_price_year_uses_that_price_year():
    p = load('costs.prison_cost_per_month={ value = 3000, price_year = "2015-16" }')
    assert p.costs.prison_cost_per_month == Money(3000.0, "2015-16")
    # and the cost is then uprated from that year
    c = p.costs
    index = dict(zip(c.deflator_years, c.deflator_index))
    assert C.uprate(c.prison_cost_per_month, c) == pytest.approx(3000.0 * index[c.base_price_year] / index["2015-16"])


def test_referred_treatment_by_hand(hand_params):
    """A fifth of engaged offenders newly referred; offenders' needs at prevalence 0.5 (accommodation, no NHS
    cost), 0.4 (employment, none) and 0.5 (drugs, 200 a month): 0.2 x 0.5 x 200 = 20 a family-month, to the NHS."""
    params = replace(hand_params, intervention=replace(hand_params.intervention, treatment_referral_share=0.2),
                     needs=replace(hand_params.needs, prevalence_offenders=(0.5, 0.4, 0.5)))
    ts = hand_series(hand_params)
    extra = C.referred_treatment(ts, params)
    np.testing.assert_allclose(extra, ts["iv_active_families"].to_numpy() * 20.0)
    with_it, without = C.ledger(ts, params), C.ledger(ts, hand_params)
    nhs = lambda led: led[led["agency"] == "nhs"].groupby("month")["cost_gbp"].sum().to_numpy()  # noqa: E731
    np.testing.assert_allclose(nhs(with_it) - nhs(without), extra)


def test_discount_factors_match_the_green_book_method_worked_by_hand():
    """The Green Book's declining schedule (3.5% a year to year 30, 3.0% after) worked by hand to four places: year
    1 0.9662, year 5 0.8420, year 10 0.7089, year 30 0.3563, year 31 0.3563 / 1.03 = 0.3459, year 40 0.2651, for a
    month in each of those appraisal years (year 0 undiscounted)."""
    months = 12 * np.array([0, 1, 5, 10, 30, 31, 40]) + 6
    table = [1.0, 0.9662, 0.8420, 0.7089, 0.3563, 0.3459, 0.2651]
    np.testing.assert_allclose(C.discount_factors(months, 0.035, 0.03), table, atol=6e-5)
