"""``sim bench``: time an Essex replicate of 10 years and one at 10x the population; agent-months a second and
peak memory. A benchmark to read, never a timed assertion in the tests."""

from __future__ import annotations

import resource
import time

from .model import ReoffendingModel
from .scenario import load_scenario


def _time_one(params, seed: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    model = ReoffendingModel(params, seed=seed, record_offences=False)  # as a batch replicate runs
    t1 = time.perf_counter()
    agent_months = 0
    for _ in range(params.months):
        agent_months += int(model.people.present[: model.people.n].sum())
        model.step()
    return t1 - t0, time.perf_counter() - t1, agent_months


def main(scenario: str, repeats: int = 3) -> int:
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
        agents = am / params.months
        print(f"{label:<22}{agents:>9,.0f}{build:>9.2f}{run:>8.2f}{build + run:>9.2f}{am / (build + run):>16,.0f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (whole process) {peak_mb:,.0f} MB")
    return 0
