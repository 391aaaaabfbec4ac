"""A constant hazard reproduces the textbook 12-month probabilities.

With every multiplier switched off (flat age curve, supervision excess 0, needs and family relative risks 1, one
propensity for everyone), each person at liberty offends as Poisson(lambda) a month, so the monthly probability
of at least one offence is h = 1 - exp(-lambda) and the share who offend within 12 months is
1 - (1 - h)^12 = 1 - exp(-12 lambda). Detection thins the offences: with proven share pbar, the share convicted
within 12 months (court lag 0) is 1 - exp(-12 lambda pbar).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim import ReoffendingModel
from sim.runs.output import events_frame
from sim.state.people import CUSTODY
from sim.state.rng import CounterRNG

from conftest import FULL, load

LAMBDA = 0.06  # offences a month: about half of a cohort offends within a year
FEMALE = 0.5


def constant_hazard_params(p_proven: list[float] | None, scale_general: float, scale_cjs: float):
    base = load()
    k_types = len(base.offending.offence_types)
    k_needs = len(base.needs.names)
    p_proven = [1.0] * k_types if p_proven is None else p_proven
    overrides = [
        "run.years=1",
        f"population.scale_general={scale_general}",
        f"population.scale_cjs_families={scale_cjs}",
        "population.propensity_sigma=0",
        "population.propensity_sigma_general=0",
        *(f"population.propensity_median_{g}=1" for g in ("custody", "probation", "community", "general")),
        f"offending.offences_per_month_base={LAMBDA}",
        f"offending.female_multiplier={FEMALE}",
        "offending.age_curve_ages=[0, 120]",
        "offending.age_curve_multiplier=[1, 1]",
        "offending.release_multiplier_initial=0",
        "offending.order_start_multiplier_initial=0",
        f"offending.offence_type_p_proven={p_proven}",
        "offending.court_lag_mean_months=0",
        f"needs.offending_rr={[1.0] * k_needs}",
        *(f"family.{key}=1" for key in (
            "rr_father_convicted_son", "rr_father_convicted_daughter", "rr_mother_convicted_son",
            "rr_mother_convicted_daughter", "rr_parent_in_custody", "rr_parent_family_need")),
        "demography.mortality_gompertz_a=0",
        "demography.p_emigrate_per_year=0",
        "justice.p_recall_per_month=0",
    ]
    if hasattr(base, "intervention"):  # no intervention effects on the hazard
        overrides.append("intervention.coverage=0")
    if hasattr(base.offending, "youth_multiplier"):  # children's extra (calibrated) multiplier
        overrides.append("offending.youth_multiplier=1")
    if hasattr(base.justice, "desisted_propensity_multiplier"):  # desistance after conviction lowers propensity
        overrides.append("justice.desisted_propensity_multiplier=1")
    return load(*overrides)


def run_capturing_hazard(params, seed, monkeypatch):
    """Run a year, recording (month, rows, lambda) of everyone who can offend, as the offending process draws
    offences (only people with a candidate offence are looked at by the process itself: see offending.draw_offences)."""
    import sim.processes.offending as offending

    seen = []
    original = offending.draw_offences

    def wrapped(model, month):
        rows = np.flatnonzero(offending.can_offend(model, np.arange(model.people.n)))
        lam = offending.hazard(model, rows)
        assert (lam <= model.people.offending_bound[rows] * (1 + 1e-12)).all()  # the bound it draws candidates from holds
        seen.append((month, rows.copy(), lam.copy()))
        return original(model, month)

    model = ReoffendingModel(params, seed=seed)
    monkeypatch.setattr(offending, "draw_offences", wrapped)  # after the court queue is primed: only the run's months
    start = dict(
        n=model.people.n,
        present=model.people.view("present").copy(),
        status=model.people.view("status").copy(),
        age_months=model.people.age_months(0).copy(),
        male=model.people.view("sex_male").copy(),
    )
    model.run()
    monkeypatch.undo()
    assert [m for m, _, _ in seen] == list(range(params.months))
    return model, start, seen


def mean_and_se(hits: np.ndarray, p: float) -> tuple[float, float]:
    se = np.sqrt(p * (1 - p) / len(hits))
    return hits.mean(), se


SIZES = dict(scale_general=10, scale_cjs=1, seeds=(1, 2, 3, 4)) if FULL else dict(scale_general=30, scale_cjs=3, seeds=(1,))


@pytest.mark.slow
@pytest.mark.parametrize("detection", ["all proven", "mixed"])
def test_constant_hazard_reproduces_twelve_month_probability(detection, monkeypatch):
    base = load()
    k = len(base.offending.offence_types)
    share = np.asarray(base.offending.offence_type_share, float)
    p_proven = None if detection == "all proven" else [float(x) for x in np.linspace(0.2, 0.9, k).round(3)]
    pbar = 1.0 if p_proven is None else float((share * np.asarray(p_proven)).sum() / share.sum())
    params = constant_hazard_params(p_proven, SIZES["scale_general"], SIZES["scale_cjs"])
    age_min_months = 12 * params.family.age_criminal_responsibility

    hits = {True: [], False: []}
    offences = expected_offences = 0.0
    for seed in SIZES["seeds"]:
        model, start, seen = run_capturing_hazard(params, seed, monkeypatch)
        p = model.people
        # the scenario really has a constant hazard: lambda for men, lambda x female multiplier for women
        for month, rows, lam in seen:
            expected = np.where(p.sex_male[rows], LAMBDA, LAMBDA * FEMALE)
            np.testing.assert_allclose(lam, expected, rtol=1e-12)
            assert (p.birth_month[rows] <= month - age_min_months).all()
            expected_offences += lam.sum()
        events = events_frame(model)
        offences += (events["event"] == "offence").sum()

        disposed = events["event"].isin(["conviction", "caution"])  # a proven offence ends in one or the other
        if p_proven is None:  # every offence is convicted or cautioned in the month it is committed
            off = events[events["event"] == "offence"][["person_id", "month", "offence_type"]]
            conv = events[disposed][["person_id", "month", "offence_type"]]
            assert (events.loc[disposed, "offence_month"] == events.loc[disposed, "month"]).all()
            key = ["person_id", "month", "offence_type"]
            assert off.sort_values(key).reset_index(drop=True).equals(conv.sort_values(key).reset_index(drop=True))

        # cohort: everyone present at the start, at liberty and old enough to offend
        cohort = np.flatnonzero(start["present"] & (start["status"] != CUSTODY) & (start["age_months"] >= age_min_months))
        convicted = events[disposed & (events["offence_month"] < 12)]["person_id"].unique()
        hit = np.isin(p.person_id[cohort], convicted)
        for male in (True, False):
            hits[male].append(hit[start["male"][cohort] == male])

        # nobody in custody at the start offends before their release
        in_custody = np.flatnonzero(start["present"] & (start["status"] == CUSTODY))
        first_release = events[events["event"] == "release"].groupby("person_id")["month"].min()
        off = events[(events["event"] == "offence") & events["person_id"].isin(p.person_id[in_custody])]
        assert (off["month"] >= off["person_id"].map(first_release)).all()

    # offences are Poisson with the hazard as mean
    assert abs(offences - expected_offences) < 4 * np.sqrt(expected_offences)

    for male, lam in ((True, LAMBDA), (False, LAMBDA * FEMALE)):
        h = 1 - np.exp(-lam * pbar)  # monthly probability of at least one proven offence
        expected = 1 - (1 - h) ** 12
        assert expected == pytest.approx(1 - np.exp(-12 * lam * pbar))
        observed = np.concatenate(hits[male])
        assert len(observed) > 1000
        mean, se = mean_and_se(observed, expected)
        assert abs(mean - expected) < 4 * se, f"{'men' if male else 'women'}: {mean:.4f} vs {expected:.4f} (se {se:.4f})"


@pytest.mark.slow
def test_constant_hazard_first_offence_month_is_geometric(monkeypatch):
    """The month of a person's first offence has P(m) = (1-h)^m h, m = 0..11, and (1-h)^12 for none."""
    params = constant_hazard_params(None, SIZES["scale_general"], SIZES["scale_cjs"])
    age_min_months = 12 * params.family.age_criminal_responsibility
    counts = np.zeros(13)
    for seed in SIZES["seeds"]:
        model, start, _ = run_capturing_hazard(params, seed, monkeypatch)
        events = events_frame(model)
        men = np.flatnonzero(start["present"] & start["male"] & (start["status"] != CUSTODY) & (start["age_months"] >= age_min_months))
        first = events[events["event"] == "offence"].groupby("person_id")["month"].min()
        m = first.reindex(model.people.person_id[men]).fillna(12).to_numpy(int)
        counts += np.bincount(m, minlength=13)
    h = 1 - np.exp(-LAMBDA)
    probs = np.append(h * (1 - h) ** np.arange(12), (1 - h) ** 12)
    expected = counts.sum() * probs
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.9999, 12), (counts, expected.round())


def test_counter_rng_poisson_thinned_by_detection():
    """The same construction straight from the counter-based generator, for many more people: Poisson offences
    each month, each proven with probability p; share with a proven offence within 12 months."""
    n = 400_000 if FULL else 100_000
    rng = CounterRNG(123)
    ids = np.arange(1, n + 1, dtype=np.int64)
    lam, p = 0.08, 0.4
    convicted = np.zeros(n, bool)
    offended = np.zeros(n, bool)
    for month in range(12):
        k = rng.poisson("offending", month, ids, np.full(n, lam))
        rows = np.repeat(np.arange(n), k)
        nth = np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k)
        proven = rng.uniform("detection", month, ids[rows], nth) < p
        offended |= k > 0
        convicted[rows[proven]] = True
    for hits, rate in ((offended, lam), (convicted, lam * p)):
        expected = 1 - np.exp(-12 * rate)
        se = np.sqrt(expected * (1 - expected) / n)
        assert abs(hits.mean() - expected) < 4 * se
