"""``sim bench``: how fast the model is. One Essex replicate of 10 years and one at 10x the population
(agent-months a second, peak memory), then a Monte Carlo batch: a small batch on 1 worker and on all cores for the
parallel efficiency, and a full batch of ``batch_reps`` replicates on all cores. A benchmark to read, never a
timed assertion in the tests."""

from __future__ import annotations

import os
import resource
import tempfile
import time

from .model import ReoffendingModel
from .runs.batch import run_batch
from .state.scenario import load_scenario


def _time_one(params, seed: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    model = ReoffendingModel(params, seed=seed, record_offences=False)  # as a batch replicate runs
    t1 = time.perf_counter()
    agent_months = 0
    for _ in range(params.months):
        agent_months += int(model.people.present[: model.people.n].sum())
        model.step()
    return t1 - t0, time.perf_counter() - t1, agent_months


def _time_batch(params, reps: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_batch(params, reps, seed=1, workers=workers, out=os.path.join(tmp, "batch"), label=f"bench {workers} worker(s)")
        return time.perf_counter() - t0


def main(scenario: str, repeats: int = 3, batch_reps: int = 1000, efficiency_reps: int = 40) -> int:
    base = load_scenario(scenario, ["run.years=10"])
    p = base.population
    tenfold = load_scenario(
        scenario,
        ["run.years=10", f"population.scale_cjs_families={p.scale_cjs_families / 10}", f"population.scale_general={p.scale_general / 10}"],
    )
    print(f"{'case':<22}{'agents':>9}{'build s':>9}{'run s':>8}{'total s':>9}{'agent-months/s':>16}")
    for label, params in (("Essex, 10 years", base), ("10x population", tenfold)):
        best = None
        for r in range(max(1, repeats if label.startswith("Essex") else 1)):
            build, run, am = _time_one(params, seed=1 + r)
            if best is None or build + run < best[0] + best[1]:
                best = (build, run, am)
        build, run, am = best
        print(f"{label:<22}{am / params.months:>9,.0f}{build:>9.2f}{run:>8.2f}{build + run:>9.2f}{am / (build + run):>16,.0f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (whole process) {peak_mb:,.0f} MB")
    if efficiency_reps > 0:
        cores = os.cpu_count() or 1
        t1 = _time_batch(base, efficiency_reps, 1)
        tn = _time_batch(base, efficiency_reps, cores)
        print(f"batch of {efficiency_reps}: 1 worker {t1:.1f} s, {cores} workers {tn:.1f} s, parallel efficiency {t1 / (cores * tn):.0%}")
    if batch_reps > 0:
        t = _time_batch(base, batch_reps, os.cpu_count() or 1)
        print(f"batch of {batch_reps} Essex replicates of 10 years on {os.cpu_count()} workers: {t:.0f} s ({t / 60:.1f} min, {t / batch_reps:.2f} s a replicate)")
    return 0
