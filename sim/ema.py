"""Exploratory modelling: drive reoffsim from the EMA workbench (``pip install 'reoffsim[ema]'``).

The model is a plain Python function to the workbench: uncertainties and levers are scenario keys (written with
``__`` for the dot, since the workbench wants identifiers: ``intervention__coverage`` is
``intervention.coverage``), outcomes are summary metrics of one replicate (``sim.runs.output.summarise``) or
appraisal metrics of a paired comparison (``appraisal:npv`` becomes ``appraisal__npv``).

    from ema_workbench import perform_experiments, Samplers
    from sim.ema import make_ema_model
    model = make_ema_model(
        "scenarios/multi_agency.toml",
        uncertainties={"intervention.offending_rr_at_full_dose": (0.7, 1.0), "intervention.p_engage": (0.5, 0.9)},
        levers={"intervention.intensity_hours_per_month": (5, 40)},
        outcomes=["offences_per_year", "proven_reoffending_rate_prison"],
    )
    experiments, outcomes = perform_experiments(model, scenarios=20, policies=4, uncertainty_sampling=Samplers.LHS)

With ``compare_with_baseline=True`` each experiment runs the scenario and the same scenario with the
intervention switched off on the same seed, and appraisal outcomes (``appraisal:npv``, ``appraisal:bcr``, ...)
become available.
"""

from __future__ import annotations

from dataclasses import dataclass

from .runs.output import summarise
from .state.scenario import load_scenario


def ema_name(key: str) -> str:
    """``section.key`` -> an identifier the workbench accepts."""
    return key.replace(".", "__").replace(":", "__")


@dataclass(frozen=True)
class ScenarioFunction:
    """A picklable function of scenario values returning outcome metrics (what the workbench calls)."""

    scenario: str
    outcomes: tuple[str, ...]
    seed: int = 1
    years: float | None = None
    compare_with_baseline: bool = False

    def __call__(self, **values) -> dict[str, float]:
        from .appraisal.compare import appraise, priced_like, switched_off
        from .model import ReoffendingModel
        from .runs.paired import run_replicate

        overrides = [f"{key.replace('__', '.')}={value}" for key, value in values.items()]
        if self.years is not None:
            overrides.append(f"run.years={self.years}")
        params = load_scenario(self.scenario, overrides)
        if self.compare_with_baseline:
            iv = run_replicate(params, self.seed)
            base = priced_like(run_replicate(switched_off(params), self.seed), iv["params"])
            metrics = {**appraise(base, iv, iv["params"]), **{f"intervention:{k}": v for k, v in iv["outcomes"].items()}}
        else:
            with ReoffendingModel(params, seed=self.seed) as model:
                metrics = summarise(model.run())
        return {ema_name(name): float(metrics[name]) for name in self.outcomes}


def make_ema_model(scenario: str, uncertainties: dict, outcomes: list[str], levers: dict | None = None, seed: int = 1,
                   years: float | None = None, compare_with_baseline: bool = False, name: str = "reoffsim"):
    """An ``ema_workbench.Model``: ``uncertainties`` and ``levers`` map scenario keys to (low, high) ranges
    (integer ranges give IntegerParameters), ``outcomes`` are metric names."""
    from ema_workbench import IntegerParameter, Model, RealParameter, ScalarOutcome

    def parameter(key, bounds):
        low, high = bounds
        cls = IntegerParameter if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool) else RealParameter
        return cls(ema_name(key), low, high)

    model = Model(name, function=ScenarioFunction(str(scenario), tuple(outcomes), seed, years, compare_with_baseline))
    model.uncertainties = [parameter(k, b) for k, b in uncertainties.items()]
    model.levers = [parameter(k, b) for k, b in (levers or {}).items()]
    model.outcomes = [ScalarOutcome(ema_name(o)) for o in outcomes]
    return model
