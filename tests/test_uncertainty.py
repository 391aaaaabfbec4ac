"""Parameter uncertainty: values given as distributions in a scenario file are drawn once per replicate
(``sim.state.scenario.realize``). Draws match the requested moments, depend only on (seed, key), are recorded in the
replicate table, and bad distributions are refused with one line before anything runs."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import BASELINE, ROOT, SMALL
from sim.runs.batch import run_batch
from sim.runs.batch import replicate_seeds
from sim.state.params import Dist, Money
from sim.state.scenario import ScenarioError, load_scenario, realize

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"
N_SEEDS = 2000

#: key -> (TOML table section line, the distribution as written)
ALL_KINDS = {
    "intervention.p_engage": '{ dist = "beta", mean = 0.6, sd = 0.1 }',
    "justice.custody_log_odds_intercept": '{ dist = "normal", mean = -1.0, sd = 0.3 }',
    "intervention.dose_scale_hours": '{ dist = "lognormal", mean = 15, sd = 6 }',
    "costs.prison_cost_per_month": '{ dist = "gamma", mean = 3000, sd = 600, price_year = "2012-13", unit = "GBP" }',
    "demography.fertile_age_min": '{ dist = "uniform", low = 14, high = 18 }',
    "intervention.offending_rr_at_full_dose": '{ dist = "triangular", low = 0.6, mode = 0.7, high = 1.0 }',
    # integer fields
    "justice.recall_custody_months": '{ dist = "triangular", low = 1, mode = 2, high = 6 }',
    "intervention.min_convictions": '{ dist = "uniform", low = 0, high = 4 }',
}

#: kind -> (key, expected mean, expected sd, support)
EXPECTED = {
    "beta": ("intervention.p_engage", 0.6, 0.1, (0.0, 1.0)),
    "normal": ("justice.custody_log_odds_intercept", -1.0, 0.3, (-np.inf, np.inf)),
    "lognormal": ("intervention.dose_scale_hours", 15.0, 6.0, (0.0, np.inf)),
    "gamma": ("costs.prison_cost_per_month", 3000.0, 600.0, (0.0, np.inf)),
    "uniform": ("demography.fertile_age_min", 16.0, 4 / math.sqrt(12), (14.0, 18.0)),
    "triangular": ("intervention.offending_rr_at_full_dose", (0.6 + 0.7 + 1.0) / 3,
                   math.sqrt((0.6**2 + 0.7**2 + 1.0**2 - 0.6 * 0.7 - 0.6 * 1.0 - 0.7 * 1.0) / 18), (0.6, 1.0)),
}


def reference_distribution(kind: str):
    """The requested distribution, parameterised here independently of ``Dist.frozen``."""
    if kind == "beta":
        m, s = 0.6, 0.1
        nu = m * (1 - m) / s**2 - 1
        return stats.beta(m * nu, (1 - m) * nu)
    if kind == "normal":
        return stats.norm(-1.0, 0.3)
    if kind == "lognormal":
        m, s = 15.0, 6.0
        sigma2 = math.log(1 + (s / m) ** 2)
        return stats.lognorm(math.sqrt(sigma2), scale=math.exp(math.log(m) - sigma2 / 2))
    if kind == "gamma":
        m, s = 3000.0, 600.0
        return stats.gamma((m / s) ** 2, scale=s**2 / m)
    if kind == "uniform":
        return stats.uniform(14, 4)
    return stats.triang((0.7 - 0.6) / 0.4, loc=0.6, scale=0.4)


def write_scenario(path: Path, parent: Path, entries: dict[str, str]) -> Path:
    by_section: dict[str, list[str]] = {}
    for key, value in entries.items():
        section, name = key.split(".", 1)
        by_section.setdefault(section, []).append(f"{name} = {value}")
    body = "".join(f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in by_section.items())
    path.write_text(f'extends = "{parent}"\n{body}')
    return path


@pytest.fixture(scope="module")
def all_kinds_path(tmp_path_factory) -> Path:
    return write_scenario(tmp_path_factory.mktemp("kinds") / "all_kinds.toml", BASELINE, ALL_KINDS)


@pytest.fixture(scope="module")
def all_kinds(all_kinds_path):
    return load_scenario(all_kinds_path)


@pytest.fixture(scope="module")
def realized(all_kinds):
    """realize() over N_SEEDS replicate seeds: (seeds, {key: draws}, [concrete params]).

    Building a scipy frozen distribution costs ~1 ms, so ``Dist.frozen`` is memoised here (same objects, same
    values); otherwise this fixture alone would take ~10 s."""
    seeds = replicate_seeds(2024, N_SEEDS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Dist, "frozen", functools.lru_cache(maxsize=None)(Dist.frozen))
        results = [realize(all_kinds, s) for s in seeds]
    draws = {key: np.array([d[key] for _, d in results]) for key in ALL_KINDS}
    return seeds, draws, [c for c, _ in results]


def test_scenario_lists_its_uncertain_values(all_kinds):
    assert sorted(all_kinds.uncertain) == sorted(ALL_KINDS)
    assert isinstance(all_kinds.intervention.p_engage, Dist) and all_kinds.intervention.p_engage.kind == "beta"
    money = all_kinds.costs.prison_cost_per_month
    assert isinstance(money, Money) and isinstance(money.value, Dist) and money.price_year == "2012-13"
    assert dict(all_kinds.intervention.offending_rr_at_full_dose.args) == {"low": 0.6, "mode": 0.7, "high": 1.0}
    plain = load_scenario(BASELINE)
    assert plain.uncertain == [] and realize(plain, 5) == (plain, {})


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_draws_match_the_requested_moments(realized, kind):
    _, draws, _ = realized
    key, mean, sd, (low, high) = EXPECTED[kind]
    x = draws[key]
    n = len(x)
    assert n == N_SEEDS and np.isfinite(x).all()
    assert (x >= low).all() and (x <= high).all(), (x.min(), x.max())
    if kind in ("beta",):
        assert (x > 0).all() and (x < 1).all()
    m, s = x.mean(), x.std(ddof=1)
    se_mean = s / math.sqrt(n)
    se_sd = math.sqrt(max(np.mean((x - m) ** 4) - s**4, 0) / n) / (2 * s)  # delta method on the variance
    assert abs(m - mean) < 5 * se_mean, (kind, m, mean, se_mean)
    assert abs(s - sd) < 5 * se_sd, (kind, s, sd, se_sd)
    # and the shape: Kolmogorov-Smirnov against the requested distribution
    assert stats.kstest(x, reference_distribution(kind).cdf).pvalue > 1e-4
    if kind in ("uniform", "triangular"):  # the draws reach both ends of the range
        width = high - low
        assert x.min() < low + 0.05 * width and x.max() > high - 0.05 * width


def test_keys_draw_independently(realized):
    _, draws, _ = realized
    keys = list(EXPECTED.values())
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            r = np.corrcoef(draws[keys[i][0]], draws[keys[j][0]])[0, 1]
            assert abs(r) < 5 / math.sqrt(N_SEEDS), (keys[i][0], keys[j][0], r)


def test_concrete_params_hold_the_draws_and_integer_fields_get_integers(realized):
    seeds, draws, concrete = realized
    for k in range(0, N_SEEDS, 97):
        c = concrete[k]
        assert c.uncertain == []
        assert c.intervention.p_engage == draws["intervention.p_engage"][k]
        assert c.justice.custody_log_odds_intercept == draws["justice.custody_log_odds_intercept"][k]
        assert c.demography.fertile_age_min == draws["demography.fertile_age_min"][k]
        money = c.costs.prison_cost_per_month
        assert isinstance(money, Money) and money.price_year == "2012-13" and money.value == draws["costs.prison_cost_per_month"][k]
        for key in ("justice.recall_custody_months", "intervention.min_convictions"):
            section, name = key.split(".")
            value = getattr(getattr(c, section), name)
            assert type(value) is int, (key, value)
            assert value == round(draws[key][k])
    recall = np.array([c.justice.recall_custody_months for c in concrete])
    prev = np.array([c.intervention.min_convictions for c in concrete])
    assert set(recall) == {1, 2, 3, 4, 5, 6}
    assert set(prev) == {0, 1, 2, 3, 4}
    assert abs(recall.mean() - 3.0) < 0.15  # triangular(1, 2, 6) has mean 3; rounding keeps it (symmetric cells)


def test_same_seed_same_draws_in_different_scenario_files(tmp_path):
    shared = {
        "justice.p_recall_per_month": '{ dist = "beta", mean = 0.02, sd = 0.005 }',
        "costs.prison_cost_per_month": '{ dist = "lognormal", mean = 3000, sd = 300, price_year = "2012-13" }',
    }
    a = load_scenario(write_scenario(tmp_path / "a.toml", BASELINE, shared))
    # the other file: another parent, the keys in another order, and an extra uncertain value
    b_entries = {"intervention.p_engage": '{ dist = "uniform", low = 0.5, high = 0.9 }', **dict(reversed(shared.items()))}
    b = load_scenario(write_scenario(tmp_path / "b.toml", MULTI_AGENCY, b_entries))
    assert a.intervention.coverage != b.intervention.coverage
    values = []
    for seed in replicate_seeds(77, 25):
        ca, da = realize(a, seed)
        cb, db = realize(b, seed)
        assert set(da) == set(a.uncertain) and set(db) == set(b.uncertain)  # (multi_agency.toml may have its own)
        assert set(shared) | {"intervention.p_engage"} <= set(db)
        for key in shared:
            assert da[key] == db[key], key
        assert ca.justice.p_recall_per_month == cb.justice.p_recall_per_month
        assert ca.costs.prison_cost_per_month == cb.costs.prison_cost_per_month
        assert realize(a, seed)[1] == da  # the same again
        values.append(da["justice.p_recall_per_month"])
    assert len(set(values)) == 25


def test_draws_are_recorded_per_replicate(all_kinds_path):
    overrides = (*SMALL, "run.years=1")
    params = load_scenario(all_kinds_path, overrides)
    result = run_batch(all_kinds_path, reps=3, seed=2, workers=1, overrides=overrides)
    df = result.replicates
    assert result.failed == {}
    assert {c for c in df.columns if c.startswith("parameter:")} == {f"parameter:{k}" for k in ALL_KINDS}
    assert df["seed"].tolist() == replicate_seeds(2, 3)
    for i, seed in enumerate(df["seed"].tolist()):  # (not iterrows: a float row would round the 63-bit seed)
        _, draws = realize(params, seed)
        for key, value in draws.items():
            assert df.at[i, f"parameter:{key}"] == value, key
    assert df["parameter:intervention.p_engage"].nunique() == 3
    summary = result.summary.set_index("metric")
    assert summary.loc["parameter:intervention.p_engage", "n"] == 3


def test_recorded_draw_of_an_integer_field_is_the_integer_used(all_kinds):
    for seed in replicate_seeds(3, 10):
        concrete, draws = realize(all_kinds, seed)
        assert draws["justice.recall_custody_months"] == concrete.justice.recall_custody_months
        assert draws["intervention.min_convictions"] == concrete.intervention.min_convictions


def test_distribution_given_with_set(tmp_path):
    p = load_scenario(BASELINE, ['justice.p_recall_per_month={ dist = "beta", mean = 0.02, sd = 0.005 }'])
    assert p.uncertain == ["justice.p_recall_per_month"]
    concrete, draws = realize(p, 11)
    assert 0 < concrete.justice.p_recall_per_month == draws["justice.p_recall_per_month"] < 1
    with pytest.raises(ScenarioError, match="--set.*justice.p_recall_per_month"):
        load_scenario(BASELINE, ['justice.p_recall_per_month={ dist = "beta", mean = 2, sd = 0.1 }'])


# --- bad distributions ---------------------------------------------------------------------------------------------

BAD = {
    "unknown-dist": ("justice.p_recall_per_month", '{ dist = "weibull", mean = 0.02, sd = 0.01 }', ["weibull", "beta"]),
    "missing-parameter": ("justice.p_recall_per_month", '{ dist = "beta", mean = 0.02 }', ["mean, sd"]),
    "extra-parameter": ("justice.custody_log_odds_intercept", '{ dist = "normal", mean = -1, sd = 0.3, low = -2 }', ["mean, sd"]),
    "text-parameter": ("justice.p_recall_per_month", '{ dist = "beta", mean = "0.02", sd = 0.01 }', ["numbers"]),
    "beta-mean-above-1": ("justice.p_recall_per_month", '{ dist = "beta", mean = 1.2, sd = 0.05 }', ["0 < mean < 1"]),
    "beta-mean-0": ("justice.p_recall_per_month", '{ dist = "beta", mean = 0, sd = 0.05 }', ["0 < mean < 1"]),
    "beta-sd-too-big": ("justice.p_recall_per_month", '{ dist = "beta", mean = 0.5, sd = 0.6 }', ["sd^2"]),
    "normal-on-probability": ("justice.p_recall_per_month", '{ dist = "normal", mean = 0.05, sd = 0.05 }', ["outside", "probability"]),
    "normal-below-zero-count": ("population.custody_count", '{ dist = "normal", mean = 100, sd = 50 }', ["outside"]),
    "integer-rounds-to-0": ("intervention.duration_months", '{ dist = "normal", mean = 3, sd = 1 }', ["outside", "whole number >= 1"]),
    "sd-zero": ("justice.custody_log_odds_intercept", '{ dist = "normal", mean = -1, sd = 0 }', ["sd must be > 0"]),
    "lognormal-mean-negative": ("justice.custody_log_odds_intercept", '{ dist = "lognormal", mean = -1, sd = 1 }', ["mean > 0"]),
    "uniform-low-above-high": ("demography.fertile_age_min", '{ dist = "uniform", low = 20, high = 14 }', ["low must be below high"]),
    "triangular-mode-outside": ("demography.fertile_age_min", '{ dist = "triangular", low = 14, mode = 25, high = 18 }', ["mode"]),
    "dist-on-list": ("needs.offending_rr", '{ dist = "lognormal", mean = 1.2, sd = 0.1 }', ["single number"]),
    "dist-on-money-list": ("costs.crime_cost_by_type", '{ dist = "gamma", mean = 1000, sd = 100, price_year = "2015-16" }', ["single number"]),
    "dist-on-text": ("run.name", '{ dist = "uniform", low = 0, high = 1 }', ["single number"]),
    "dist-on-flag": ("intervention.eligible_on_release", '{ dist = "uniform", low = 0, high = 1 }', ["single number"]),
    "median-breaks-cross-check": ("demography.fertile_age_min", '{ dist = "uniform", low = 40, high = 60 }', ["fertile_age"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_distribution_is_one_line_scenario_error(tmp_path, case):
    key, value, words = BAD[case]
    path = write_scenario(tmp_path / "bad.toml", BASELINE, {key: value})
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    if case != "median-breaks-cross-check":  # that one names the key it checks against (fertile_age_max) and its file
        assert str(path) in message
    assert key.split(".")[1] in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("case", ["unknown-dist", "normal-on-probability", "dist-on-list"])
def test_bad_distribution_cli_exit_2(tmp_path, case):
    key, value, _ = BAD[case]
    path = write_scenario(tmp_path / "bad.toml", BASELINE, {key: value})
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", str(path), "--reps", "2", "--workers", "1", "--out", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: error: ") and key in lines[0], result.stderr
    assert result.stdout == ""
    assert not out.exists()


def test_dist_name_that_is_not_a_string_is_a_scenario_error(tmp_path):
    path = write_scenario(tmp_path / "bad.toml", BASELINE, {"justice.p_recall_per_month": '{ dist = ["beta"], mean = 0.02, sd = 0.005 }'})
    try:
        load_scenario(path)
        error = None
    except Exception as exc:  # noqa: BLE001 - which exception is the point
        error = exc
    assert isinstance(error, ScenarioError), f"{type(error).__name__}: {error}"


# --- a point mass of "no effect" ----------------------------------------------------------------------------------

MIXED = Dist("lognormal", (("mean", 0.87), ("sd", 0.09), ("p_no_effect", 0.35), ("no_effect_at", 1.0)))


def test_point_mass_takes_its_probability_and_keeps_draws_ordered():
    """Quantiles of the mixture: increasing in u, exactly ``no_effect_at`` on an interval of u of length
    ``p_no_effect``, and elsewhere the distribution's own quantiles (of the rescaled u)."""
    u = np.linspace(1e-6, 1 - 1e-6, 4001)
    x = np.array([MIXED.ppf(v) for v in u])
    assert (np.diff(x) >= 0).all()
    at = u[x == 1.0]
    assert at.max() - at.min() == pytest.approx(0.35, abs=1e-3)
    s2 = np.log1p((0.09 / 0.87) ** 2)  # the lognormal with mean 0.87 and sd 0.09
    slab = stats.lognorm(s=np.sqrt(s2), scale=0.87 * np.exp(-s2 / 2))
    below = slab.cdf(1.0) * 0.65  # the mass below the point
    assert at.min() == pytest.approx(below, abs=1e-3)
    assert MIXED.ppf(0.1) == pytest.approx(slab.ppf(0.1 / 0.65))
    assert MIXED.ppf(0.99) == pytest.approx(slab.ppf((0.99 - 0.35) / 0.65))


def test_point_mass_in_replicate_draws():
    """Over many seeds, the share of replicates drawing exactly no effect is ``p_no_effect``, and the rest follow
    the distribution (their mean)."""
    params = load_scenario(MULTI_AGENCY)
    d = params.intervention.offending_rr_at_full_dose
    seeds = N_SEEDS // 2
    values = np.array([realize(params, s)[1]["intervention.offending_rr_at_full_dose"] for s in range(seeds)])
    none = values == d.arg("no_effect_at")
    se = math.sqrt(d.p_no_effect * (1 - d.p_no_effect) / seeds)
    assert abs(none.mean() - d.p_no_effect) < 4 * se
    rest = values[~none]
    assert abs(rest.mean() - d.arg("mean")) < 4 * d.arg("sd") / math.sqrt(len(rest))
    assert (rest > 1).any()  # harm is possible


@pytest.mark.parametrize("table, problem", [
    ('{ dist = "lognormal", mean = 0.9, sd = 0.1, p_no_effect = 0.3 }', "optionally both p_no_effect and no_effect_at"),
    ('{ dist = "lognormal", mean = 0.9, sd = 0.1, no_effect_at = 1.0 }', "optionally both p_no_effect and no_effect_at"),
    ('{ dist = "lognormal", mean = 0.9, sd = 0.1, p_no_effect = 0, no_effect_at = 1.0 }', "p_no_effect must be between 0 and 1"),
    ('{ dist = "lognormal", mean = 0.9, sd = 0.1, p_no_effect = 0.4, no_effect_at = -1.0 }', "outside what is allowed"),
])
def test_point_mass_is_checked(tmp_path, table, problem):
    path = tmp_path / "bad.toml"
    path.write_text(f'extends = "{BASELINE}"\n[intervention]\noffending_rr_at_full_dose = {table}\n')
    with pytest.raises(ScenarioError, match=problem) as err:
        load_scenario(path)
    assert "offending_rr_at_full_dose" in str(err.value) and str(path) in str(err.value)
