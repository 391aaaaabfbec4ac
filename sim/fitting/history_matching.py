"""History matching: which parameter sets could fit every target, given Monte Carlo noise.

A least-squares fit on a noisy simulator returns one point, and can stall where the noise is larger than the slope
(the whole-population start's fit did, at a loss of ~8). History matching instead asks, wave by wave, where the
targets *cannot* be met and rules that out (Craig et al. 1997; Vernon, Goldstein & Bower 2010; Andrianakis et al.
2015 for an agent-based model):

1. run the model at a space-filling design of parameter sets (a Latin hypercube in the box of
   calibration/free_parameters.toml, log scale where a parameter says ``log = true``), a few replicates each on
   common seeds;
2. fit a Gaussian-process emulator to each weighted target's metric (scikit-learn, one length scale per parameter,
   a white-noise term for the Monte Carlo noise);
3. the implausibility of a parameter set x for target t is |E[f_t(x)] - m_t| / sqrt(Var[f_t(x)] + (h_t / 3)^2),
   with m_t the middle and h_t the half width of the target's band (the band is read as 3 standard deviations of what the model may
   miss by); x is ruled out when its largest implausibility exceeds 3;
4. the next wave's design is drawn from what is not ruled out, and the emulators are refitted on every wave's runs.

The best point (least loss by emulators of every run, among the sets not ruled out, or among all when nothing is
left) becomes the fit; the runs of every wave are kept
(calibration/history_matching/wave_<k>.parquet: one row per parameter set, its parameters, the mean and standard
error of each target metric) so that an ensemble can be drawn from them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..model import MODEL_REVISION
from ..runs.batch import replicate_seeds, write_atomic
from ..runs.paired import run_all
from ..state.scenario import ScenarioError
from .calibration import (CALIBRATION_DIR, Target, _measure_task, compare_to_targets, load_free_parameters, load_targets,
                          scenario_for)

CUTOFF = 3.0  # Pukelsheim's three-sigma rule, the usual cut-off of history matching
STORE = CALIBRATION_DIR / "history_matching"


def to_cube(value: float, spec: dict) -> float:
    """A parameter value's position in [0, 1] within its bounds (on the log scale where ``spec['log']``)."""
    lo, hi = spec["lower"], spec["upper"]
    if spec.get("log"):
        value, lo, hi = math.log(value), math.log(lo), math.log(hi)
    return (value - lo) / (hi - lo)


def from_cube(u: float, spec: dict) -> float:
    lo, hi = spec["lower"], spec["upper"]
    if spec.get("log"):
        return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def latin_hypercube(n: int, dims: int, seed: int) -> np.ndarray:
    from scipy.stats import qmc

    return qmc.LatinHypercube(d=dims, rng=np.random.default_rng(seed)).random(n)


def _measured(results: list[dict], metrics: list[str]) -> pd.DataFrame:
    """One parameter set's replicate results as a (metric, value) table of the target metrics."""
    return pd.DataFrame([{"metric": m, "value": v} for r in results for m, v in r.items() if m in metrics],
                        columns=["metric", "value"])


def evaluate(scenario, free: dict[str, dict], cube: np.ndarray, targets: list[Target], reps: int, long_reps: int,
             seed: int, workers: int, path: Path, chunk: int = 8, log=print, overrides=(), scheduler: str | None = None,
             screen=None) -> pd.DataFrame:
    """Run the model at each row of ``cube`` (``reps`` 10-year and ``long_reps`` 40-year replicates on the same seeds
    for every row, but the 40-year ones for rows ``screen`` rejects; the scenario with ``overrides`` and then the row's
    values) and keep, per row, its parameters and
    each target metric's mean and standard error. Rows are written to ``path`` ``chunk`` at a time (atomically), and
    rows already there are not run again: a wave resumes. ``scheduler``: a Dask scheduler's address (default: local
    worker processes). ``screen``: given a row's table of the 10-year targets (``compare_to_targets``), whether the
    row can still pass; a row it rejects gets no 40-year runs (its 40-year metrics are NaN): a check that the 10-year
    runs already fail needs no more, and the 40-year runs cost about as much again."""
    done = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    stored = done[[f"u:{k}" for k in free]].to_numpy() if len(done) else None
    if stored is not None and (len(done) > len(cube) or not np.allclose(stored, cube[: len(done)])):
        raise ScenarioError(f"{path}: its parameter sets are not the ones drawn now (made by other code or settings); "
                            f"move {path.name} away (a check or walk file: the waves can stay), or the folder to start afresh")
    rows = done.to_dict("records")
    runs = sorted({t.run for t in targets})
    metrics = sorted({t.metric for t in targets})
    seeds = {run: replicate_seeds(seed, reps if run == "short" else long_reps) for run in runs}
    t0 = time.perf_counter()
    for start in range(len(rows), len(cube), chunk):
        points = range(start, min(start + chunk, len(cube)))
        values = {i: {k: from_cube(float(u), spec) for u, (k, spec) in zip(cube[i], free.items())} for i in points}
        params = {(i, run): scenario_for(run, scenario, [*overrides, *(f"{k}={v!r}" for k, v in values[i].items())])
                  for i in points for run in runs}
        by_point: dict[int, list[dict]] = {i: [] for i in points}
        active = list(points)
        for stage in ([runs] if screen is None else [[r for r in runs if r == "short"], [r for r in runs if r != "short"]]):
            tasks = [(params[i, run], s, run) for i in active for run in stage for s in seeds[run]]
            owners = [i for i in active for run in stage for _ in seeds[run]]  # the parameter set of each task
            results = run_all(tasks, workers, f"history matching, parameter sets {start + 1}-{points[-1] + 1}", task=_measure_task,
                              **({"scheduler": scheduler} if scheduler else {})) if tasks else []
            for i, res in zip(owners, results):
                by_point[i].append(res)
            if screen is not None and stage == ["short"]:
                short = [t for t in targets if t.run == "short"]
                active = [i for i in active if screen(compare_to_targets(_measured(by_point[i], metrics), short))]
        for i in points:
            table = compare_to_targets(_measured(by_point[i], metrics), targets).drop_duplicates("metric").set_index("metric")
            rows.append({"point": i, **{f"u:{k}": float(u) for u, k in zip(cube[i], free)}, **values[i],
                         **{m: float(table.loc[m, "simulated"]) for m in metrics},
                         **{f"se:{m}": float(table.loc[m, "mc_se"]) for m in metrics}})
        frame = pd.DataFrame(rows)
        write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
        log(f"  {len(rows)} of {len(cube)} parameter sets run ({time.perf_counter() - t0:.0f} s)")
    return pd.DataFrame(rows)


class Emulator:
    """A Gaussian process per target metric over the unit cube of the free parameters: mean and sd of the metric's
    replicate mean at any parameter set. A metric that spans more than a factor of 10 over the runs (a stock's drift,
    youth first-time entrants) is emulated on the log scale and its mean and sd taken back (delta method)."""

    def __init__(self, runs: pd.DataFrame, free: dict[str, dict], metrics: list[str]):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        self.columns = [f"u:{k}" for k in free]
        self.models, self.log_scale = {}, {}
        for m in metrics:
            ok = runs[m].notna()
            X, y = runs.loc[ok, self.columns].to_numpy(), runs.loc[ok, m].to_numpy()
            self.log_scale[m] = bool((y > 0).all() and y.max() > 10 * y.min())
            kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.full(len(free), 0.5), (0.05, 20.0))
                      + WhiteKernel(0.05, (1e-6, 1.0)))
            gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)
            with warnings.catch_warnings():  # a length scale at its bound is a parameter the metric ignores: expected
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.models[m] = gp.fit(X, np.log(y) if self.log_scale[m] else y)

    def predict(self, cube: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for m, gp in self.models.items():
            mean, sd = gp.predict(cube, return_std=True)
            out[m] = (np.exp(mean), np.exp(mean) * sd) if self.log_scale[m] else (mean, sd)
        return out


def implausibility(predicted: dict[str, tuple[np.ndarray, np.ndarray]], targets: list[Target]) -> np.ndarray:
    """Per parameter set (rows) and weighted target (columns): |emulated mean - the band's middle| / sqrt(emulator
    variance + (half band / 3)^2): 3 or less where the emulator puts the metric within the band (or cannot tell)."""
    out = []
    for t in targets:
        mean, sd = predicted[t.metric]
        out.append(np.abs(mean - (t.lower + t.upper) / 2) / np.sqrt(sd**2 + (t.half_width / 3) ** 2))
    return np.column_stack(out)


def worst_implausibility(emulators: list[Emulator], targets: list[Target], cube: np.ndarray) -> np.ndarray:
    """Per parameter set: the largest implausibility over the targets and every wave's emulator (a set ruled out by
    an earlier wave stays ruled out, although the later emulators, fitted where it was not, cannot see it)."""
    worst = np.zeros(len(cube))
    for emulator in emulators:
        worst = np.maximum(worst, implausibility(emulator.predict(cube), targets).max(axis=1))
    return worst


def mean_loss(means: dict[str, np.ndarray], targets: list[Target]) -> np.ndarray:
    """The calibration loss (``calibration.loss``) at each parameter set, from each target metric's means there."""
    return sum(t.weight * ((np.asarray(means[t.metric]) - t.value) / t.half_width) ** 2 for t in targets)


def emulated_loss(predicted: dict[str, tuple[np.ndarray, np.ndarray]], targets: list[Target]) -> np.ndarray:
    """The calibration loss at each parameter set, from the emulators' means."""
    return mean_loss({m: mean for m, (mean, _) in predicted.items()}, targets)


def candidates(emulators: list[Emulator], targets: list[Target], n: int, seed: int, draws: int = 20_000
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Parameter sets not ruled out (at least ``n`` where they can be found), their worst implausibility, and the
    share of a Latin hypercube of ``draws`` sets over the whole box that is not ruled out. Where the hypercube leaves
    fewer than ``n``, more are drawn near the least implausible (normal steps of 0.05 of each range), a few rounds."""
    rng = np.random.default_rng(seed)
    cube = latin_hypercube(draws, len(emulators[0].columns), seed)
    worst = worst_implausibility(emulators, targets, cube)
    share = float((worst <= CUTOFF).mean())
    for _ in range(5):
        if (worst <= CUTOFF).sum() >= n:
            break
        seeds = cube[np.argsort(worst)[:n]]
        near = np.clip(seeds[rng.integers(0, len(seeds), draws)] + rng.normal(0, 0.05, (draws, cube.shape[1])), 0, 1)
        cube, worst = np.vstack([cube, near]), np.concatenate([worst, worst_implausibility(emulators, targets, near)])
    return cube, worst, share


def next_design(emulators: list[Emulator], targets: list[Target], n: int, seed: int) -> tuple[np.ndarray, float]:
    """``n`` parameter sets drawn from those not ruled out (the ``n`` least implausible when fewer are found), and the
    share of the box not ruled out."""
    cube, worst, share = candidates(emulators, targets, n, seed)
    keep = np.flatnonzero(worst <= CUTOFF)
    if len(keep) < n:
        keep = np.argsort(worst)[:n]
    pick = np.random.default_rng(seed).choice(keep, size=n, replace=False)
    return cube[pick], share


def best_point(emulators: list[Emulator], targets: list[Target], runs: pd.DataFrame, free: dict[str, dict], seed: int
               ) -> tuple[np.ndarray, float]:
    """The parameter set of least emulated loss among the sets not ruled out and the sets already run, by emulators
    fitted on every run of every wave (each wave's own emulators know only where that wave ran, and when nothing
    meets every target a wave can wander off; these smooth the runs' Monte Carlo noise everywhere)."""
    cube, worst, _ = candidates(emulators, targets, 1000, seed)
    cube = np.vstack([cube, runs[emulators[-1].columns].to_numpy()])
    worst = np.concatenate([worst, worst_implausibility(emulators, targets, cube[len(worst):])])
    loss = emulated_loss(Emulator(runs, free, sorted({t.metric for t in targets})).predict(cube), targets)
    loss = np.where(worst <= CUTOFF, loss, np.inf) if (worst <= CUTOFF).any() else loss
    best = int(np.argmin(loss))
    return cube[best], float(loss[best])


def store_settings(scenario, points: int, reps: int, long_reps: int, seed: int, overrides=()) -> dict:
    """The settings a history match's runs are kept with (``settings.json``): the model's revision, the scenario by
    the hash of its text (the record names the runs' scenario without keeping a stale copy of it), the design, the
    free parameters and the targets."""
    settings = {"model": MODEL_REVISION, "scenario_sha256": hashlib.sha256(Path(scenario).read_bytes()).hexdigest(),
                "points": points, "reps": reps,
                "long_reps": long_reps, "seed": seed, "free": load_free_parameters(),
                "targets": [t.name for t in fitted_targets()]}
    if overrides:
        settings["overrides"] = list(overrides)
    return settings


def claim_store(store: Path, settings: dict) -> None:
    """Keep a wave's runs with the settings that made them: a rerun with the same settings resumes them; other
    settings are refused (ScenarioError) rather than mixed with them or written over them."""
    manifest = store / "settings.json"
    text = json.dumps(settings, sort_keys=True, indent=1)
    if manifest.exists():
        if manifest.read_text() != text:
            raise ScenarioError(f"{store}: holds runs made with other settings (model revision, scenario, points, reps, "
                                "seed, free parameters, targets or the ensemble checked again); move that folder away to "
                                "start afresh, or rerun with its settings")
        return
    if store.exists() and any(store.iterdir()):
        raise ScenarioError(f"{store}: exists and was not written by sim ensemble; choose another folder")
    store.mkdir(parents=True, exist_ok=True)
    write_atomic(manifest, lambda tmp: tmp.write_text(text))


def fitted_targets(targets: list[Target] | None = None) -> list[Target]:
    """The targets a history match rules parameter sets out by: weighted ones the model is expected to reach (a
    ``known_gap`` no set meets would rule out everything; its metric is still kept with the runs)."""
    return [t for t in (load_targets() if targets is None else targets) if t.weight > 0 and not t.known_gap]


def wave_emulator(runs: pd.DataFrame, wave: int, emulators: list[Emulator], free: dict[str, dict], targets: list[Target]
                  ) -> Emulator:
    """Wave ``wave``'s emulators, fitted where the earlier waves left room: this wave's runs and the earlier runs
    not ruled out by the earlier waves' ``emulators`` (far-off runs would only blur them there)."""
    inside = (runs["wave"] == wave).to_numpy().copy()
    if emulators:
        inside |= worst_implausibility(emulators, targets, runs[emulators[0].columns].to_numpy()) <= CUTOFF
    return Emulator(runs[inside], free, sorted({t.metric for t in targets}))


def load_waves(store: Path = STORE) -> tuple[pd.DataFrame, dict]:
    """Every stored wave's runs (a column ``wave``) and the settings that made them."""
    settings = json.loads((store / "settings.json").read_text())
    files = sorted(store.glob("wave_*.parquet"), key=lambda f: int(f.stem.split("_")[1]))
    runs = pd.concat([pd.read_parquet(f).assign(wave=int(f.stem.split("_")[1])) for f in files], ignore_index=True)
    return runs, settings


def history_match(scenario, waves: int, points: int, reps: int, long_reps: int, seed: int, workers: int,
                  store: Path = STORE, log=print, overrides=(), scheduler: str | None = None) -> dict:
    """Run ``waves`` waves of ``points`` parameter sets each (each wave's emulators fitted where the earlier waves left
    room) and return the best point as a fit (``calibrate``'s dictionary, ``method`` "history matching") with the
    waves' summary and what is left of each parameter's range. ``overrides`` (e.g. coarser weights) apply to every run."""
    free = load_free_parameters()
    weighted = [t for t in load_targets() if t.weight > 0]
    targets = fitted_targets(weighted)
    claim_store(store, store_settings(scenario, points, reps, long_reps, seed, overrides))
    t0 = time.perf_counter()
    cube = latin_hypercube(points, len(free), seed)
    history, runs, emulators = [], pd.DataFrame(), []
    for wave in range(1, waves + 1):
        log(f"wave {wave}: {points} parameter sets, {reps} 10-year and {long_reps} 40-year replicates each")
        done = evaluate(scenario, free, cube, weighted, reps, long_reps, seed, workers, store / f"wave_{wave}.parquet", log=log,
                        overrides=overrides, scheduler=scheduler)
        runs = pd.concat([runs, done.assign(wave=wave)], ignore_index=True)
        emulators.append(wave_emulator(runs, wave, emulators, free, targets))
        cube, share = next_design(emulators, targets, points, seed + wave)
        history.append({"wave": wave, "runs": len(done), "not_ruled_out": round(share, 4)})
        log(f"wave {wave}: {share:.2%} of the parameter space is not ruled out")
    best, best_loss = best_point(emulators, targets, runs, free, seed)
    values = {k: from_cube(float(u), spec) for u, (k, spec) in zip(best, free.items())}
    return {"stage": "joint", "method": "history matching (Gaussian-process emulators, implausibility < 3)",
            "values": values, "loss": best_loss, "evaluations": len(runs),
            "seconds": time.perf_counter() - t0, "reps": reps, "long_reps": long_reps, "seed": seed,
            "parameters": list(free), "waves": history, "ranges": not_ruled_out_ranges(emulators, targets, free, seed)}


def not_ruled_out_ranges(emulators: list[Emulator], targets: list[Target], free: dict[str, dict], seed: int) -> pd.DataFrame:
    """Per free parameter, its bounds and the 5%, 50% and 95% points of the parameter sets not ruled out (the least
    implausible thousand where fewer are left): a range close to the bounds is one the targets do not identify."""
    cube, worst, _ = candidates(emulators, targets, 1000, seed)
    kept = cube[worst <= CUTOFF] if (worst <= CUTOFF).sum() >= 1000 else cube[np.argsort(worst)[:1000]]
    rows = []
    for j, (k, spec) in enumerate(free.items()):
        q = [from_cube(float(u), spec) for u in np.quantile(kept[:, j], [0.05, 0.5, 0.95])]
        rows.append({"parameter": k, "lower": spec["lower"], "upper": spec["upper"], "p05": q[0], "p50": q[1], "p95": q[2],
                     "share_of_range": float(np.quantile(kept[:, j], 0.95) - np.quantile(kept[:, j], 0.05))})
    return pd.DataFrame(rows)
