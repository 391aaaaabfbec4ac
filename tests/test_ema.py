"""The EMA workbench adapter (``sim.ema``): a small Latin-hypercube experiment runs through the workbench's
sequential evaluator, gives one outcome per experiment, and the outcomes are the model's (same values, same seed,
same result; a lever moves them the expected way)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from conftest import ROOT
from sim.ema import ScenarioFunction, ema_name, make_ema_model

MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"


@pytest.fixture(scope="module")
def workbench():
    """The EMA workbench, imported here rather than at the top (it takes about 2 s: every test process would pay it
    while collecting, not only the one that runs these tests)."""
    with warnings.catch_warnings():  # the workbench warns about optional back ends it does not find
        warnings.simplefilter("ignore")
        import ema_workbench
    return ema_workbench


UNCERTAINTIES = {"intervention.p_engage": (0.5, 0.9), "intervention.offending_rr_at_full_dose": (0.7, 1.0)}
LEVER = "intervention.intensity_hours_per_month"
OUTCOMES = ["appraisal:intervention_cost", "appraisal:offences_avoided", "intervention:iv_families_started"]


@pytest.fixture(scope="module")
def small_multi_agency(tmp_path_factory):
    path = tmp_path_factory.mktemp("ema") / "small_multi_agency.toml"
    path.write_text(f'extends = "{MULTI_AGENCY}"\n[population]\nscale_general = 300\nscale_cjs_families = 10\n')
    return path


@pytest.fixture(scope="module")
def experiment(small_multi_agency, workbench):
    Policy, Samplers = workbench.Policy, workbench.Samplers
    model = make_ema_model(small_multi_agency, UNCERTAINTIES, OUTCOMES, levers={LEVER: (5.0, 40.0)}, seed=3, years=2,
                           compare_with_baseline=True)
    policies = [Policy("low", **{ema_name(LEVER): 8.0}), Policy("high", **{ema_name(LEVER): 32.0})]
    with workbench.SequentialEvaluator(model) as evaluator:
        experiments, outcomes = workbench.perform_experiments(model, scenarios=3, policies=policies, evaluator=evaluator,
                                                              uncertainty_sampling=Samplers.LHS)
    return model, experiments, outcomes


def test_model_parameters_and_names(small_multi_agency, workbench):
    RealParameter, IntegerParameter = workbench.RealParameter, workbench.IntegerParameter
    model = make_ema_model(small_multi_agency, {"intervention.p_engage": (0.5, 0.9), "intervention.duration_months": (6, 12)},
                           ["offences_per_year"], levers={LEVER: (5, 40.0)})
    kinds = {p.name: type(p) for p in [*model.uncertainties, *model.levers]}
    assert kinds == {"intervention__p_engage": RealParameter, "intervention__duration_months": IntegerParameter,
                     "intervention__intensity_hours_per_month": RealParameter}
    assert [o.name for o in model.outcomes] == ["offences_per_year"]
    assert ema_name("appraisal:npv") == "appraisal__npv" and ema_name("a.b") == "a__b"


def test_experiment_gives_one_outcome_per_experiment(experiment):
    _, experiments, outcomes = experiment
    assert len(experiments) == 6  # 3 scenarios x 2 policies
    assert set(outcomes) == {ema_name(o) for o in OUTCOMES}
    for name, values in outcomes.items():
        assert np.shape(values) == (6,), name
        assert np.isfinite(values).all(), name
    assert sorted(experiments["policy"].astype(str).value_counts().to_dict().items()) == [("high", 3), ("low", 3)]
    assert experiments["scenario"].nunique() == 3
    # Latin hypercube: each uncertainty has one of the three scenarios in each third of its range
    scenarios = experiments.drop_duplicates("scenario")
    for key, (low, high) in UNCERTAINTIES.items():
        thirds = np.floor((scenarios[ema_name(key)].to_numpy() - low) / (high - low) * 3)
        assert sorted(thirds) == [0, 1, 2], key
    assert (outcomes["appraisal__intervention_cost"] > 0).all()
    low = experiments["policy"].astype(str).to_numpy() == "low"
    # the uncertainties reach the model: the three scenarios' outcomes differ (one outcome alone may not: with the
    # places cap binding, two scenarios can start the same families at the same cost)
    rows = {tuple(np.round([outcomes[name][i] for name in sorted(outcomes)], 9)) for i in np.flatnonzero(low)}
    assert len(rows) == 3
    assert (outcomes["intervention__iv_families_started"] > 0).all()


def test_outcomes_are_the_model_run_with_those_values(experiment):
    model, experiments, outcomes = experiment
    fn = model.function
    assert isinstance(fn, ScenarioFunction)
    clone = pickle.loads(pickle.dumps(fn))  # what a multiprocessing evaluator would ship
    row = experiments.iloc[4]
    values = {ema_name(k): float(row[ema_name(k)]) for k in [*UNCERTAINTIES, LEVER]}
    direct = clone(**values)
    for name, got in direct.items():
        assert got == outcomes[name][4], name


def test_intervention_cost_rises_with_intensity(experiment):
    _, experiments, outcomes = experiment
    cost = outcomes["appraisal__intervention_cost"]
    by_scenario: dict = {}
    for i, (scenario, policy) in enumerate(zip(experiments["scenario"], experiments["policy"].astype(str))):
        by_scenario.setdefault(scenario, {})[policy] = cost[i]
    assert len(by_scenario) == 3
    for scenario, c in by_scenario.items():
        assert c["high"] > c["low"], (scenario, c)
