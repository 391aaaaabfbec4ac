"""How noisy one replicate is at a given weight of the general population's agents (real people per agent), and what
it costs: the numbers for choosing the default weight. A single replicate should be usable on its own (a
commissioner's what-if runs few): its yearly prison and probation reoffending rates within ``MAX_RATE_SD`` of each
other replicate's (standard deviation across replicates) and its children convicted a year within ``MAX_CHILD_CV``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..model import ReoffendingModel
from ..runs.batch import replicate_seeds
from ..runs.output import timeseries_frame
from ..runs.paired import run_all
from ..state.params import Params
from ..state.scenario import load_scenario

MAX_RATE_SD = 0.02  # 2 points: a year's cohort rate should not move by more between replicates than the target's band
MAX_CHILD_CV = 0.10  # 10%: children convicted a year, as the steadiness criteria's tolerance


def replicate_noise(params: Params, seed: int) -> dict:
    """One replicate's yearly series: prison and probation one-year reoffending by annual cohort, children convicted
    a year; with its agents at the start and seconds (build and run, this process)."""
    t0 = time.perf_counter()
    with ReoffendingModel(params, seed=seed, record_offences=False) as model:
        agents = int(model.people.n)
        model.run()
        seconds = time.perf_counter() - t0
        md, children = metrics.Microdata.from_model(model), timeseries_frame(model)["children_convicted"].to_numpy()
    run = params.run
    rates = {label: metrics.proven_reoffending_annual_cohorts(md, None, disposal, params.months, run.cohort_follow_up_months,
                                                              run.cohort_waiting_months, params.family.age_adult)
             for label, disposal in metrics.RATE_DISPOSALS.items()}
    yearly_children = children[: len(children) // 12 * 12].reshape(-1, 12).sum(axis=1)
    return {"seconds": seconds, "agents": agents,
            "prison": [v for k, v in rates["prison"].items() if k.startswith("rate_year_")],
            "probation": [v for k, v in rates["probation"].items() if k.startswith("rate_year_")],
            "children_convicted": yearly_children.tolist()}


def _task(args):
    return replicate_noise(*args)


def noise_by_weight(scenario: str | Path, weights: list[float], reps: int, seed: int, workers: int, overrides=()) -> pd.DataFrame:
    """Per weight: agents at the start, seconds a replicate, the standard deviation across ``reps`` replicates of a
    year's prison and probation rates (mean over the years), and of children convicted a year relative to its mean,
    and whether each is within its criterion. Every weight runs on the same seeds."""
    seeds = replicate_seeds(seed, reps)
    params = {w: load_scenario(scenario, [*overrides, f"population.scale_general={w!r}"]) for w in weights}
    tasks = [(params[w], s) for w in weights for s in seeds]
    results = run_all(tasks, workers, "noise by weight", task=_task)
    rows = []
    for i, w in enumerate(weights):
        res = results[i * reps:(i + 1) * reps]
        sd = {k: float(np.nanmean(np.nanstd(np.array([r[k] for r in res], float), axis=0, ddof=1))) for k in ("prison", "probation")}
        children = np.array([r["children_convicted"] for r in res], float)
        cv = float(np.mean(children.std(axis=0, ddof=1) / children.mean(axis=0)))
        rows.append({"weight": w, "agents": int(np.mean([r["agents"] for r in res])),
                     "seconds": float(np.median([r["seconds"] for r in res])),
                     "prison_rate_sd": sd["prison"], "probation_rate_sd": sd["probation"], "children_convicted_cv": cv,
                     "meets": sd["prison"] <= MAX_RATE_SD and sd["probation"] <= MAX_RATE_SD and cv <= MAX_CHILD_CV})
    return pd.DataFrame(rows)
