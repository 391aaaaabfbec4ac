"""Paired replicates of a baseline and an intervention (same seeds, common random numbers), run on the batch's
executor and appraised by ``sim.appraisal.compare`` (a sweep's grid points are arms: ``compare_arms``).

Replicate k of every scenario runs with the same seed, ``sim.runs.batch.replicate_seeds(root, N)[k]``, so
replicate k's seed does not depend on how many replicates or workers there are. Every arm of replicate k starts
from the baseline's month 0 (``sim.start``): its population and the past its flows made, built once per replicate
and shared by the arms run together (a programme or policy starts at month 0 and cannot change the past).
"""

from __future__ import annotations

import pandas as pd

from .. import metrics
from ..appraisal import costs as C
from ..appraisal.compare import appraise, priced_like
from ..model import ReoffendingModel
from ..processes import intervention
from ..start import Start, realized
from .batch import replicate_seeds, run_calls
from .output import timeseries_frame
from .progress import Progress


def run_replicate(params, seed: int, start: Start | None = None) -> dict:
    """One run (from ``start``, a copy of it, if given): its monthly series, outcome metrics, cost ledger, and the
    parameters as drawn for this seed."""
    with ReoffendingModel(params, seed=seed, record_offences=False, start=start) as model:  # released when done (see its release)
        return _outcomes(model.run())


def run_arms(base_params, arms: list, seed: int, with_base: bool = True) -> list[dict]:
    """Replicate ``seed`` of the baseline (if ``with_base``) and of each of ``arms``, all from the baseline's start,
    built once. An arm that changes who lives in the area (``Start.fits``: population, demography or family
    values) cannot share it and builds its own."""
    start = Start.build(base_params, seed)
    runs = [run_replicate(base_params, seed, start)] if with_base else []
    return runs + [run_replicate(arm, seed, start if start.fits(realized(arm, seed), seed) else None) for arm in arms]


def _outcomes(model) -> dict:
    params = model.params
    ts = timeseries_frame(model)
    out = {name: float(ts[col].sum()) for name, col in (
        ("offences", "offences"), ("convictions", "convictions"), ("custody_months", "custody"),
        ("children_convicted", "children_convicted"), ("first_time_entrants", "first_time_entrants"),
        ("child_first_time_entrants", "child_first_time_entrants"),
        ("iv_families_started", "iv_starts"), ("iv_family_months", "iv_active_families"),
        ("da_incidents", "da_incidents"), ("da_victim_years", "da_victim_years"), ("da_children_exposed", "da_children_exposed"),
        ("hub_victims_started", "hub_starts"),
    )}
    run = params.run
    md = metrics.Microdata.from_model(model)
    for label, disposal in metrics.RATE_DISPOSALS.items():
        out[f"proven_reoffending_{label}"] = metrics.proven_reoffending_annual_cohorts(
            md, None, disposal, len(ts), run.cohort_follow_up_months, run.cohort_waiting_months, params.family.age_adult
        )["rate"]
    return {"timeseries": ts, "outcomes": out, "ledger": C.ledger(ts, model.params), "params": model.params, "draws": model.parameter_draws,
            "ensemble_member": model.ensemble_member}

def run_against(base_params, params, seed: int) -> dict:
    """One run of ``params`` from the start of ``base_params`` on ``seed`` (an arm of a comparison run on its own)."""
    return run_arms(base_params, [params], seed, with_base=False)[0]


def _run_task(task):
    params, seed = task
    return run_replicate(params, seed)


def _arms_task(task):
    return run_arms(*task)


def paired_runs(base_params, arms: list, seeds: list[int], workers: int = 1, label: str = "runs", with_base: bool = True,
                scheduler: str | None = None, stall_timeout: float | None = None) -> tuple[list[dict], list[list[dict]]]:
    """The runs of the baseline (none if not ``with_base``) and of every arm on ``seeds``, one task per seed (its
    arms from one start, ``run_arms``), on ``run_all``'s executor; ``stall_timeout`` is per run. Returns (the
    baseline's runs, each arm's runs), in seed order."""
    per_task = len(arms) + with_base
    tasks = [(base_params, list(arms), s, with_base) for s in seeds]
    done = run_all(tasks, workers, label, scheduler, None if stall_timeout is None else stall_timeout * per_task, task=_arms_task)
    base_runs = [runs[0] for runs in done] if with_base else []
    return base_runs, [[runs[with_base + j] for runs in done] for j in range(len(arms))]

def run_all(tasks: list[tuple], workers: int = 1, label: str = "runs", scheduler: str | None = None,
            stall_timeout: float | None = None, task=_run_task) -> list:
    """``task`` (default: ``run_replicate`` of a (params, seed) pair) over ``tasks``, results in task order, on the
    executor that ``workers`` or
    ``scheduler`` give (see ``sim.runs.batch.run_calls``). A failing run raises its own error at once; SIGINT or
    SIGTERM, no run finishing for ``stall_timeout`` seconds (default 600) or a broken pool raise the matching
    ``sim.runs.errors.BatchError``. Either way queued runs are cancelled and running ones not waited for."""
    progress = Progress(len(tasks), label)
    results: dict[int, dict] = {}

    def on_done(i: int, future) -> None:
        results[i] = future.result()
        progress.advance()

    def on_stop() -> tuple[str, list[int]]:
        return f"{len(results)} of {len(tasks)} runs had finished; nothing is kept", list(results)

    try:
        run_calls({i: (task, t) for i, t in enumerate(tasks)}, on_done, on_stop, workers=workers, scheduler=scheduler,
                  stall_timeout=stall_timeout)
    finally:
        progress.close()
    return [results[i] for i in range(len(tasks))]

def compare_arms(base_params, arms: list, reps: int, root_seed: int, workers: int = 1, label: str = "compare",
                 baseline_runs: list | None = None, scheduler: str | None = None, stall_timeout: float | None = None):
    """Run ``reps`` paired replicates of the baseline and every one of ``arms`` (replicate k of all on the same seed,
    from the same start, built once per replicate). Returns ([(per-replicate metrics, monthly series, cost ledgers)
    for each arm], the baseline runs); pass ``baseline_runs`` back in to reuse them (the arms then build the
    baseline's start themselves)."""
    seeds = replicate_seeds(root_seed, reps)
    base_runs, arm_runs = paired_runs(base_params, arms, seeds, workers, label, baseline_runs is None, scheduler, stall_timeout)
    base_runs = baseline_runs if baseline_runs is not None else base_runs
    return [stack([pair(k, seed, b, i) for k, (seed, b, i) in enumerate(zip(seeds, base_runs, runs))]) for runs in arm_runs], base_runs


def compare(base_params, iv_params, reps: int, root_seed: int, workers: int = 1, label: str = "compare",
            baseline_runs: list | None = None, scheduler: str | None = None, stall_timeout: float | None = None,
            channels: bool = False):
    """Run ``reps`` paired replicates (replicate k of both scenarios on the same seed, from the same start).

    Returns (per-replicate metrics, monthly series, cost ledgers, the baseline runs); pass ``baseline_runs`` back
    in to reuse them for another intervention with the same baseline. With ``channels``, also the decomposition's
    arms in the same runs (for each channel of the intervention, ``intervention.CHANNELS``, the intervention with
    that channel at no effect), and a fifth item, {channel: per-replicate metrics}."""
    names = list(intervention.CHANNELS) if channels else []
    arms = [iv_params] + [intervention.without_channels(iv_params, [name]) for name in names]
    results, base_runs = compare_arms(base_params, arms, reps, root_seed, workers, label, baseline_runs, scheduler, stall_timeout)
    out = (*results[0], base_runs)
    return (*out, {name: rows for name, (rows, _, _) in zip(names, results[1:])}) if channels else out


def members(base_run: dict, iv_run: dict) -> dict[str, int]:
    """The calibration ensemble member a pair of runs drew (-1: the point fit), and the baseline's where the two
    differ (one scenario at the point fit, the other not)."""
    out = {"ensemble_member": iv_run["ensemble_member"]}
    if base_run["ensemble_member"] != iv_run["ensemble_member"]:
        out["ensemble_member_baseline"] = base_run["ensemble_member"]
    return out


def pair(k: int, seed: int, base_run: dict, iv_run: dict) -> tuple[dict, list[pd.DataFrame], list[pd.DataFrame]]:
    """Replicate ``k`` of a comparison from its two runs (the baseline priced with the intervention's unit costs):
    its row of metrics (the appraisal and the parameters as drawn), and the monthly series and cost ledgers of both
    scenarios labelled by scenario and replicate."""
    b = priced_like(base_run, iv_run["params"])
    draws = {f"parameter:{key}": v for key, v in {**b["draws"], **iv_run["draws"]}.items()}
    row = {**appraise(b, iv_run, iv_run["params"]), "replicate": k, "seed": seed, **members(b, iv_run), **draws}
    runs = (("baseline", b), ("intervention", iv_run))
    return (row, [r["timeseries"].assign(scenario=name, replicate=k) for name, r in runs],
            [r["ledger"].assign(scenario=name, replicate=k) for name, r in runs])


def stack(pairs: list[tuple]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``pair``'s results of several replicates as (per-replicate metrics, monthly series, cost ledgers)."""
    return (pd.DataFrame([row for row, _, _ in pairs]), pd.concat([s for _, series, _ in pairs for s in series], ignore_index=True),
            pd.concat([led for _, _, ledgers in pairs for led in ledgers], ignore_index=True))

def compare_portfolio(base_params, arms: dict, reps: int, root_seed: int, priced_by: str, workers: int = 1,
                      scheduler: str | None = None, stall_timeout: float | None = None) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Paired replicates of the baseline and every arm ({name: params}: each programme alone and their
    combination), replicate k of every scenario on the same seed. Every arm is priced with the unit costs of arm
    ``priced_by`` (the combination, as drawn for the replicate), so that arms differ in activity, not prices.
    Returns ({arm: per-replicate metrics, as ``compare``'s}, the monthly series of every scenario)."""
    seeds = replicate_seeds(root_seed, reps)
    base_runs, arm_runs = paired_runs(base_params, list(arms.values()), seeds, workers, "portfolio", True, scheduler, stall_timeout)
    by_name = dict(zip(arms, arm_runs))
    rows: dict[str, list] = {name: [] for name in arms}
    series = [r["timeseries"].assign(scenario="baseline", replicate=k) for k, r in enumerate(base_runs)]
    for k, (seed, b) in enumerate(zip(seeds, base_runs)):
        pricing = by_name[priced_by][k]["params"]
        for name, arm_runs in by_name.items():
            i = arm_runs[k]
            draws = {f"parameter:{key}": v for key, v in {**b["draws"], **i["draws"]}.items()}
            rows[name].append({**appraise(priced_like(b, pricing), priced_like(i, pricing), pricing), "replicate": k, "seed": seed,
                               **members(b, i), **draws})
            series.append(i["timeseries"].assign(scenario=name, replicate=k))
    return {name: pd.DataFrame(r) for name, r in rows.items()}, pd.concat(series, ignore_index=True)
