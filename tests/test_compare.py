"""Scenario comparison: the appraisal and payback on hand-made ledgers, the sweep grid, replicate seeds and
reproducibility across worker counts."""

from __future__ import annotations

import math
from dataclasses import replace
import tomllib

import numpy as np
import pandas as pd
import pytest

from sim.appraisal.compare import CHANNEL_METRICS, OUTCOMES, appraise, channel_contributions, channel_table, payback_year, summary_table, switched_off
from sim.runs.batch import replicate_seeds
from sim.runs.paired import compare
from sim.state.scenario import ScenarioError, load_scenario, parse_grid, parse_override, sweep_grid

from conftest import BASELINE, ROOT, SMALL, load

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"
SWEEP = ROOT / "scenarios" / "sweep_intensity.toml"
RATE = 0.035


# --- hand-made ledgers ------------------------------------------------------------------------------------------


def ledger(entries: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """{(agency, kind): monthly costs} -> the long ledger table."""
    frames = [pd.DataFrame({"month": np.arange(len(v)), "agency": a, "kind": k, "cost_gbp": np.asarray(v, float)})
              for (a, k), v in entries.items()]
    return pd.concat(frames, ignore_index=True)


MONTHS = 36


def flat(value: float, months: int = MONTHS) -> list[float]:
    return [value] * months


def once(value: float, month: int = 0, months: int = MONTHS) -> list[float]:
    out = [0.0] * months
    out[month] = value
    return out


def test_payback_in_year_two():
    """Fiscal savings of 500 a month (6,000 a year) against 9,000 of intervention cost in month 0: year 1 nets
    -3,000, year 2 adds 6,000/1.035 -> pays back in year 2."""
    base = ledger({("police", "fiscal_cashable"): flat(1000), ("prisons", "fiscal_non_cashable"): flat(300)})
    iv = ledger({("police", "fiscal_cashable"): flat(500), ("prisons", "fiscal_non_cashable"): flat(300),
                 ("intervention", "fiscal_cashable"): once(9000)})
    assert payback_year(base, iv, RATE) == 2.0


def test_payback_counts_discounting():
    """11,900 of cost against 6,000 a year: undiscounted year 2 would cover it (12,000); discounted it does not
    (6,000 + 5,797) -> year 3."""
    base = ledger({("police", "fiscal_cashable"): flat(1000)})
    iv = ledger({("police", "fiscal_cashable"): flat(500), ("intervention", "fiscal_cashable"): once(11900)})
    assert payback_year(base, iv, 0.0) == 2.0
    assert payback_year(base, iv, RATE) == 3.0


def test_payback_counts_only_fiscal_savings():
    """Large social and economic savings do not pay back a fiscal cost."""
    base = ledger({("police", "fiscal_cashable"): flat(100), ("victims_and_society", "social"): flat(1e6),
                   ("victims_and_society", "economic"): flat(1e6)})
    iv = ledger({("police", "fiscal_cashable"): flat(100), ("victims_and_society", "social"): flat(0),
                 ("victims_and_society", "economic"): flat(0), ("intervention", "fiscal_cashable"): once(5000)})
    assert math.isnan(payback_year(base, iv, RATE))


def test_payback_never():
    """Savings of 100 a month never cover 10,000 a month of running cost."""
    base = ledger({("police", "fiscal_cashable"): flat(1000)})
    iv = ledger({("police", "fiscal_cashable"): flat(900), ("intervention", "fiscal_cashable"): flat(10000)})
    assert math.isnan(payback_year(base, iv, RATE))


def test_payback_without_intervention_cost_is_nan():
    base = ledger({("police", "fiscal_cashable"): flat(1000)})
    zero_cost = ledger({("police", "fiscal_cashable"): flat(500), ("intervention", "fiscal_cashable"): flat(0)})
    no_rows = ledger({("police", "fiscal_cashable"): flat(500)})
    assert math.isnan(payback_year(base, zero_cost, RATE))
    assert math.isnan(payback_year(base, no_rows, RATE))


def run_result(led: pd.DataFrame, **outcomes) -> dict:
    return {"outcomes": {name: float(outcomes.get(name, 0.0)) for name in OUTCOMES}, "ledger": led}


def test_appraise_by_hand():
    """Year 0 only (no discounting): savings police 1,200 (cashable 120 + non-cashable 1,080), prisons 2,400
    (non-cashable), social 6,000, economic -600 (the intervention costs more here); intervention cost 3,000."""
    base = ledger({
        ("police", "fiscal_cashable"): flat(20, 12), ("police", "fiscal_non_cashable"): flat(180, 12),
        ("prisons", "fiscal_non_cashable"): flat(500, 12),
        ("victims_and_society", "social"): flat(1000, 12), ("victims_and_society", "economic"): flat(100, 12),
        ("intervention", "fiscal_cashable"): flat(0, 12),
    })
    iv = ledger({
        ("police", "fiscal_cashable"): flat(10, 12), ("police", "fiscal_non_cashable"): flat(90, 12),
        ("prisons", "fiscal_non_cashable"): flat(300, 12),
        ("victims_and_society", "social"): flat(500, 12), ("victims_and_society", "economic"): flat(150, 12),
        ("intervention", "fiscal_cashable"): once(3000, 0, 12),
    })
    row = appraise(run_result(base, offences=100, convictions=10), run_result(iv, offences=70, convictions=8), load())
    assert row["baseline:offences"] == 100 and row["intervention:offences"] == 70 and row["difference:offences"] == -30
    assert row["difference:convictions"] == -2
    assert row["savings_by_agency:police"] == pytest.approx(1200)
    assert row["savings_by_agency:prisons"] == pytest.approx(2400)
    assert row["savings_by_agency:victims_and_society"] == pytest.approx(6000 - 600)
    assert row["savings_by_agency:courts"] == 0.0
    assert row["savings_by_kind:fiscal_cashable"] == pytest.approx(120)
    assert row["savings_by_kind:fiscal_non_cashable"] == pytest.approx(1080 + 2400)
    assert row["savings_by_kind:social"] == pytest.approx(6000)
    assert row["savings_by_kind:economic"] == pytest.approx(-600)
    total = 120 + 3480 + 6000 - 600
    assert row["appraisal:intervention_cost"] == pytest.approx(3000)
    assert row["appraisal:total_savings"] == pytest.approx(total)
    assert row["appraisal:npv"] == pytest.approx(total - 3000)
    assert row["appraisal:bcr"] == pytest.approx(total / 3000)
    assert row["appraisal:net_cashable_benefit"] == pytest.approx(120 - 3000)
    assert row["appraisal:net_fiscal_benefit"] == pytest.approx(3600 - 3000)
    assert row["appraisal:fiscal_return_per_pound"] == pytest.approx(3600 / 3000)
    assert row["appraisal:offences_avoided"] == 30
    assert row["appraisal:cost_per_offence_avoided"] == pytest.approx(100)
    assert row["appraisal:payback_year"] == 1.0  # fiscal savings 3,600 >= 3,000 within year 1
    assert row["appraisal:benefits_exceed_costs"] == 1.0


def test_optimism_bias_reduces_gains_only():
    """Benefits 1,000 (year 0, police), cost 600: a 25% optimism bias on benefits leaves 750, NPV 150, BCR 1.25;
    a loss of 400 is not made smaller by it; none leaves the headline NPV."""
    params = load()
    ob = replace(params, costs=replace(params.costs, optimism_bias_benefits=0.25))
    base = ledger({("police", "fiscal_cashable"): flat(100, 12), ("intervention", "fiscal_cashable"): flat(0, 12)})
    gain = ledger({("police", "fiscal_cashable"): flat(100, 12) - np.r_[1000.0, np.zeros(11)],
                   ("intervention", "fiscal_cashable"): once(600, 0, 12)})
    row = appraise(run_result(base), run_result(gain), ob)
    assert row["appraisal:npv"] == pytest.approx(400) and row["appraisal:npv_optimism_bias"] == pytest.approx(150)
    assert row["appraisal:bcr_optimism_bias"] == pytest.approx(1.25)
    loss = ledger({("police", "fiscal_cashable"): flat(100, 12) + np.r_[400.0, np.zeros(11)],
                   ("intervention", "fiscal_cashable"): once(600, 0, 12)})
    row = appraise(run_result(base), run_result(loss), ob)
    assert row["appraisal:npv_optimism_bias"] == pytest.approx(row["appraisal:npv"]) == pytest.approx(-1000)
    none = appraise(run_result(base), run_result(gain), replace(params, costs=replace(params.costs, optimism_bias_benefits=0.0)))
    assert none["appraisal:npv_optimism_bias"] == pytest.approx(none["appraisal:npv"])


def test_optimism_bias_spares_the_treatment_the_programme_causes(monkeypatch):
    """Gains 1,000 (police), less 200 of NHS treatment the referrals cause (in the NHS's savings): total 800. A 25%
    optimism bias cuts the gains, not the programme's own cost: 800 - 250 = 550; cost 600, NPV -50."""
    import sim.appraisal.compare as compare_mod

    params = load()
    ob = replace(params, costs=replace(params.costs, optimism_bias_benefits=0.25))
    monkeypatch.setattr(compare_mod, "referred_treatment_pv", lambda run, p: run.get("treatment", 0.0))
    base = ledger({("police", "fiscal_cashable"): flat(100, 12), ("nhs", "fiscal_non_cashable"): flat(0, 12),
                   ("intervention", "fiscal_cashable"): flat(0, 12)})
    iv = ledger({("police", "fiscal_cashable"): flat(100, 12) - np.r_[1000.0, np.zeros(11)],
                 ("nhs", "fiscal_non_cashable"): once(200, 0, 12), ("intervention", "fiscal_cashable"): once(600, 0, 12)})
    row = appraise(run_result(base), {**run_result(iv), "treatment": 200.0}, ob)
    assert row["appraisal:total_savings"] == pytest.approx(800) and row["appraisal:referred_treatment_cost"] == pytest.approx(200)
    assert row["appraisal:npv_optimism_bias"] == pytest.approx(550 - 600)


def test_appraise_discounts_and_handles_no_cost():
    """Year-1 savings are discounted; with no intervention cost the ratios are NaN, not infinite."""
    base = ledger({("police", "fiscal_cashable"): flat(100, 24)})
    iv = ledger({("police", "fiscal_cashable"): flat(0, 24), ("intervention", "fiscal_cashable"): flat(0, 24)})
    row = appraise(run_result(base, offences=10), run_result(iv, offences=10), load())
    d = 1 / (1 + load().costs.discount_rate)
    assert row["appraisal:total_savings"] == pytest.approx(1200 + 1200 * d)
    assert row["appraisal:intervention_cost"] == 0.0
    assert row["appraisal:npv"] == pytest.approx(row["appraisal:total_savings"])
    for name in ("bcr", "fiscal_return_per_pound", "cost_per_offence_avoided", "payback_year", "benefits_exceed_costs"):
        assert math.isnan(row[f"appraisal:{name}"]), name


def test_summary_table_means_and_interval():
    rows = pd.DataFrame({**{f"{s}:{n}": np.zeros(5) for n in OUTCOMES for s in ("baseline", "intervention", "difference")},
                         "appraisal:npv": [1.0, 2.0, 3.0, 4.0, np.nan]})
    rows["baseline:offences"] = [10.0, 20, 30, 40, 50]
    rows["intervention:offences"] = [9.0, 18, 27, 36, 45]
    rows["difference:offences"] = rows["intervention:offences"] - rows["baseline:offences"]
    table = summary_table(rows).set_index("metric")
    assert list(summary_table(rows).columns) == ["metric", "unit", "baseline", "intervention", "difference",
                                                 "difference_p05", "difference_p95", "description"]
    r = table.loc["offences"]
    assert (r.baseline, r.intervention, r.difference) == (30.0, 27.0, -3.0)
    assert r.difference_p05 == pytest.approx(np.percentile([-1, -2, -3, -4, -5], 5))
    assert r.difference_p95 == pytest.approx(np.percentile([-1, -2, -3, -4, -5], 95))
    assert r.difference_p05 < r.difference < r.difference_p95
    assert table.loc["appraisal:npv", "difference"] == pytest.approx(2.5)  # NaN replicates left out


# --- the sweep grid ----------------------------------------------------------------------------------------------


def test_parse_grid_product():
    grid = parse_grid(["a.b=1,2,3", "c.d=x,y"])
    assert len(grid) == 6
    assert grid[0] == ["a.b=1", "c.d=x"] and grid[1] == ["a.b=1", "c.d=y"] and grid[-1] == ["a.b=3", "c.d=y"]
    assert len({tuple(p) for p in grid}) == 6
    assert parse_grid(["a.b=5"]) == [["a.b=5"]]
    assert parse_grid([" a.b = 1 , 2 "]) == [["a.b=1"], ["a.b=2"]]


def test_parse_grid_keeps_lists_whole():
    grid = parse_grid(["needs.offending_rr=[1,2],[3,4]", "run.years=3"])
    assert grid == [["needs.offending_rr=[1,2]", "run.years=3"], ["needs.offending_rr=[3,4]", "run.years=3"]]
    assert parse_grid(["x.y=[[1,2],[3]],[4]"]) == [["x.y=[[1,2],[3]]"], ["x.y=[4]"]]
    # each value is a TOML list again
    assert [parse_override(p[0])[2] for p in grid] == [[1, 2], [3, 4]]


def test_parse_grid_keeps_inline_tables_and_strings_whole():
    money = '{ value = 40, price_year = "2012-13" }'
    assert parse_grid([f"intervention.cost_per_keyworker_hour_gbp={money},{money}"]) == [
        [f"intervention.cost_per_keyworker_hour_gbp={money}"]] * 2
    assert parse_grid(['run.name="a,b","c"']) == [['run.name="a,b"'], ['run.name="c"']]


def test_sweep_grid_reads_the_sweep_table():
    raw = tomllib.loads(SWEEP.read_text())["sweep"]
    assert raw, "sweep_intensity.toml has a [sweep] table"
    axes = sweep_grid(SWEEP)
    assert [a.split("=", 1)[0] for a in axes] == list(raw)
    grid = parse_grid(axes)
    assert len(grid) == math.prod(len(v) for v in raw.values())
    # every point gives back the file's values, axis by axis, and loads as a valid scenario
    for key, values in raw.items():
        seen = []
        for point in grid:
            (setting,) = [s for s in point if s.split("=", 1)[0] == key]
            seen.append(parse_override(setting)[2])
        assert sorted(set(seen)) == sorted(set(values)), key
    params = [load_scenario(SWEEP, point) for point in grid]
    for point, p in zip(grid, params):
        for setting in point:
            section, key, value = parse_override(setting)
            assert getattr(getattr(p, section), key) == value


def test_sweep_grid_is_not_inherited_and_lists_stay_whole(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{SWEEP}"\n')
    assert sweep_grid(child) == []
    lists = tmp_path / "lists.toml"
    lists.write_text(f'extends = "{BASELINE}"\n[sweep]\n"intervention.need_resolution_rr_at_full_dose" = '
                     '[[0.1, 0.1, 0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]]\n"run.name" = ["x"]\n')
    grid = parse_grid(sweep_grid(lists))
    assert len(grid) == 2
    values = [load_scenario(lists, point).intervention.need_resolution_rr_at_full_dose for point in grid]
    assert values == [(0.1,) * 6, (0.2,) * 6]


@pytest.mark.parametrize("body", ['sweep = [1, 2]\n', '[sweep]\n"intervention.coverage" = 0.5\n',
                                  '[sweep]\n"intervention.coverage" = []\n', '[sweep]\n"nosuch.coverage" = [0.5]\n',
                                  '[sweep]\ncoverage = [0.5]\n'],
                         ids=["not-a-table", "not-a-list", "empty-list", "unknown-section", "no-section"])
def test_sweep_grid_rejects_malformed_tables(tmp_path, body):
    path = tmp_path / "bad.toml"
    path.write_text(f'extends = "{BASELINE}"\n{body}')
    with pytest.raises(ScenarioError, match="sweep"):
        sweep_grid(path)


def test_switched_off_only_changes_coverage():
    iv = load(path=MULTI_AGENCY)
    off = switched_off(iv)
    assert off.intervention.coverage == 0.0
    assert off.intervention.intensity_hours_per_month == iv.intervention.intensity_hours_per_month
    assert off.population == iv.population and off.costs == iv.costs
    plain = load("intervention.intensity_hours_per_month=7", path=MULTI_AGENCY)
    assert switched_off(iv, plain.intervention).intervention.intensity_hours_per_month == 7


# --- replicate seeds and reproducibility -------------------------------------------------------------------------


def test_replicate_seeds_do_not_depend_on_the_number_of_replicates():
    assert replicate_seeds(1, 3) == replicate_seeds(1, 5)[:3]
    assert replicate_seeds(1, 1) == replicate_seeds(1, 20)[:1]
    seeds = replicate_seeds(1, 20)
    assert len(set(seeds)) == 20
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in seeds)
    assert replicate_seeds(2, 5) != replicate_seeds(1, 5)
    assert replicate_seeds(1, 5) == replicate_seeds(1, 5)


@pytest.fixture(scope="module")
def small_pair():
    common = [*SMALL, "run.years=3"]
    return load(*common, path=BASELINE), load(*common, path=MULTI_AGENCY)


def test_workers_give_identical_results(small_pair):
    base, iv = small_pair
    one = compare(base, iv, 2, 5, workers=1)
    two = compare(base, iv, 2, 5, workers=2)
    rows1, rows2 = one[0], two[0]
    assert list(rows1["seed"]) == replicate_seeds(5, 2)
    pd.testing.assert_frame_equal(rows1, rows2)
    pd.testing.assert_frame_equal(one[1], two[1])  # monthly series
    pd.testing.assert_frame_equal(one[2], two[2])  # ledgers
    assert (rows1["intervention:iv_families_started"] > 0).all()
    assert rows1["baseline:offences"].nunique() == 2  # the two replicates really differ


def test_replicate_k_is_the_same_whatever_the_number_of_replicates(small_pair):
    base, iv = small_pair
    rows3 = compare(base, iv, 3, 8, workers=1)[0]
    rows1 = compare(base, iv, 1, 8, workers=1)[0]
    pd.testing.assert_frame_equal(rows1, rows3.iloc[:1])


def test_channel_contributions_by_hand():
    """Two replicates. Full intervention: 100 and 60 offences avoided, NPV 50 and -10 at a cost of 200. Without the
    direct channel 40 and 30 avoided (NPV -60, -50); without needs 70 and 60 (NPV 0, -10: needs adds nothing in
    replicate 1). So direct gives 60 and 30, needs 30 and 0, interaction 10 and 30 (offences), and for the NPV
    direct 110 and 40, needs 50 and 0, cost -200 each, interaction 90 and 150."""
    def rows(avoided, npv, cost=(200.0, 200.0)):
        frame = pd.DataFrame({"replicate": [0, 1], "appraisal:offences_avoided": avoided, "appraisal:npv": npv,
                              "appraisal:intervention_cost": cost})
        for metric in CHANNEL_METRICS:
            if metric not in frame:
                frame[metric] = 0.0
        return frame

    full = rows([100.0, 60.0], [50.0, -10.0])
    arms = {"direct": rows([40.0, 30.0], [-60.0, -50.0]), "needs": rows([70.0, 60.0], [0.0, -10.0])}
    c = channel_contributions(full, arms).set_index(["metric", "channel", "replicate"])["value"]
    off = c.loc["appraisal:offences_avoided"]
    assert off.loc["direct"].tolist() == [60.0, 30.0]
    assert off.loc["needs"].tolist() == [30.0, 0.0]
    assert off.loc["interaction"].tolist() == [10.0, 30.0]
    assert off.loc["total"].tolist() == [100.0, 60.0]
    assert "cost" not in off.index.get_level_values(0)
    npv = c.loc["appraisal:npv"]
    assert npv.loc["direct"].tolist() == [110.0, 40.0]
    assert npv.loc["needs"].tolist() == [50.0, 0.0]
    assert npv.loc["cost"].tolist() == [-200.0, -200.0]
    assert npv.loc["interaction"].tolist() == [90.0, 150.0]
    table = channel_table(channel_contributions(full, arms)).set_index(["metric", "channel"])
    assert table.loc[("appraisal:offences_avoided", "direct"), "mean"] == 45.0
    assert table.loc[("appraisal:offences_avoided", "direct"), "share_of_total"] == pytest.approx(45 / 80)
    assert np.isnan(table.loc[("difference:custody_months", "direct"), "share_of_total"])  # a total of zero has no shares


def test_benefit_payments_are_transfers():
    """DWP benefits saved (1,000, cashable) count in the fiscal balance but not in total savings, NPV or BCR (Green
    Book: a transfer, not a gain to society); police savings (500) count in both."""
    base = ledger({("dwp", "fiscal_cashable"): once(1000, 0, 12), ("police", "fiscal_cashable"): once(500, 0, 12),
                   ("intervention", "fiscal_cashable"): flat(0, 12)})
    iv = ledger({("dwp", "fiscal_cashable"): flat(0, 12), ("police", "fiscal_cashable"): flat(0, 12),
                 ("intervention", "fiscal_cashable"): once(1200, 0, 12)})
    row = appraise(run_result(base, offences=10), run_result(iv, offences=10), load())
    assert row["appraisal:transfer_savings"] == pytest.approx(1000)
    assert row["savings_by_kind:fiscal_cashable"] == pytest.approx(1500)
    assert row["appraisal:net_fiscal_benefit"] == pytest.approx(1500 - 1200)
    assert row["appraisal:total_savings"] == pytest.approx(500)
    assert row["appraisal:npv"] == pytest.approx(500 - 1200)
    assert row["appraisal:bcr"] == pytest.approx(500 / 1200)


@pytest.mark.parametrize("places, units", [(130, 2), (59, 0), (60, 1), (0, 0)])
def test_prison_savings_are_cashable_only_in_whole_units(places, units):
    """The baseline holds ``places`` more prisoners than the intervention for a year; with units of 60 places only
    whole units free cash, each 0.74 of a place-year's cost (the baseline's share): 130 places -> 2 units, 59 ->
    none. The prison saving is the same in total, the rest of it non-cashable."""
    from sim.appraisal.costs import uprate

    params = load("costs.prison_places_per_cashable_step=60", "costs.cashable_share_prison=0.74")
    month = uprate(params.costs.prison_cost_per_month, params.costs)
    base = ledger({("prisons", "fiscal_non_cashable"): flat(places * month, 12), ("intervention", "fiscal_cashable"): flat(0, 12)})
    iv = ledger({("prisons", "fiscal_non_cashable"): flat(0, 12), ("intervention", "fiscal_cashable"): once(100, 0, 12)})
    row = appraise(run_result(base), run_result(iv), params)
    assert row["savings_by_kind:fiscal_cashable"] == pytest.approx(units * 60 * 12 * month * 0.74)
    assert row["savings_by_agency:prisons"] == pytest.approx(places * 12 * month)
    assert row["savings_by_kind:fiscal_non_cashable"] == pytest.approx(places * 12 * month - units * 60 * 12 * month * 0.74)


def test_prison_units_are_counted_year_by_year():
    """90 places saved in the first year only: one unit of 60 closes that year whatever follows (a longer run with
    nothing saved later does not dilute it), discounted as year 0."""
    from sim.appraisal.costs import uprate

    params = load("costs.prison_places_per_cashable_step=60", "costs.cashable_share_prison=0.74")
    month = uprate(params.costs.prison_cost_per_month, params.costs)
    for months in (12, 48):
        base = ledger({("prisons", "fiscal_non_cashable"): flat(90 * month, 12) + flat(0, months - 12),
                       ("intervention", "fiscal_cashable"): flat(0, months)})
        iv = ledger({("prisons", "fiscal_non_cashable"): flat(0, months), ("intervention", "fiscal_cashable"): once(100, 0, months)})
        row = appraise(run_result(base), run_result(iv), params)
        assert row["savings_by_kind:fiscal_cashable"] == pytest.approx(60 * 12 * month * 0.74), months


def test_arms_run_together_give_what_each_gives_compared_alone():
    """A sweep's grid points and ``--by-channel``'s arms run together from one start a replicate
    (``compare_arms``): each arm's replicates equal its own comparison with the baseline, run on its own."""
    from sim.runs.paired import compare_arms

    over = [*SMALL, "run.years=2"]
    base = switched_off(load_scenario(MULTI_AGENCY, over))
    arms = [load_scenario(MULTI_AGENCY, [*over, f"intervention.intensity_hours_per_month={h}"]) for h in (10, 40)]
    together, base_runs = compare_arms(base, arms, 2, 5)
    for arm, (rows, series, ledger_) in zip(arms, together):
        alone, alone_series, alone_ledger, _ = compare(base, arm, 2, 5)
        pd.testing.assert_frame_equal(rows, alone)
        pd.testing.assert_frame_equal(series, alone_series)
        pd.testing.assert_frame_equal(ledger_, alone_ledger)
    assert not together[0][0]["appraisal:intervention_cost"].equals(together[1][0]["appraisal:intervention_cost"])  # they differ
    assert len(base_runs) == 2
