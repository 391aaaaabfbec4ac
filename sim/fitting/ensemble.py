"""``sim ensemble``: calibration as an ensemble of parameter sets that each meet every target, not one point.

1. A history match (``history_matching.history_match``, runs kept in calibration/history_matching/, resumed when
   rerun with the same settings) rules out the parameter sets that cannot meet the targets;
2. candidates are drawn from what is left, where emulators fitted on every run put each target's mean inside its
   band (the emulators smooth the Monte Carlo noise of single runs);
3. each candidate is checked by runs of its own, on seeds the history match did not use, and kept when every
   target's mean over those runs lies within its band; rounds of candidates are drawn until ``members`` are kept.

Targets with a ``known_gap`` (none of the history match's sets meets them) take no part in 1-3; their values are
kept with each member and reported. The members go to calibration/ensemble.parquet (``sim.state.ensemble``): one
row a member, its values (``value:<key>``), its position in the unit box (``u:<key>``), each target metric's mean
and standard error over its check runs, and how it was made (``made_by``).
"""

from __future__ import annotations

import math
import subprocess
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..runs.batch import write_atomic
from ..state.ensemble import ENSEMBLE, VALUE
from ..state.scenario import ScenarioError
from .calibration import Target, load_free_parameters, load_targets
from .history_matching import (CUTOFF, STORE, Emulator, candidates, evaluate, fitted_targets, history_match, load_waves,
                               wave_emulator)

#: root seed of the check runs, added to the history match's (other seeds than the runs it learnt from)
CHECK_SEED_OFFSET = 2000
#: candidates drawn in a round, per member still wanted (a share of candidates fails its check)
OVERSAMPLE = 1.6
#: rounds of candidates at most
ROUNDS = 4


def emulators_of(runs: pd.DataFrame, free: dict[str, dict], targets: list[Target]) -> list[Emulator]:
    """The history match's wave emulators, refitted from its stored runs as it fitted them."""
    emulators: list[Emulator] = []
    for wave in sorted(runs["wave"].unique()):
        emulators.append(wave_emulator(runs[runs["wave"] <= wave], int(wave), emulators, free, targets))
    return emulators


def within_bands(means: dict[str, np.ndarray], targets: list[Target]) -> np.ndarray:
    """Per row: whether every target's mean lies within its band."""
    ok = np.ones(len(next(iter(means.values()))), dtype=bool)
    for t in targets:
        ok &= (means[t.metric] >= t.lower) & (means[t.metric] <= t.upper)
    return ok


def draw_candidates(emulators: list[Emulator], overall: Emulator, targets: list[Target], n: int, seed: int) -> np.ndarray:
    """``n`` parameter sets (unit box) not ruled out, whose emulated means (``overall``: fitted on every run) all lie
    within their bands; the least emulated loss first when fewer are found."""
    cube, worst, _ = candidates(emulators, targets, max(20 * n, 1000), seed)
    predicted = {m: mean for m, (mean, _) in overall.predict(cube).items()}
    good = np.flatnonzero((worst <= CUTOFF) & within_bands(predicted, targets))
    if len(good) >= n:
        return cube[np.random.default_rng(seed).choice(good, size=n, replace=False)]
    loss = sum(((predicted[t.metric] - (t.lower + t.upper) / 2) / t.half_width) ** 2 for t in targets)
    rest = np.setdiff1d(np.argsort(loss), good, assume_unique=False)[: n - len(good)]
    return cube[np.concatenate([good, rest])]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def build_ensemble(scenario, members: int, check_reps: int, check_long_reps: int, workers: int, store: Path = STORE,
                   out: Path = ENSEMBLE, log=print, scheduler: str | None = None) -> pd.DataFrame:
    """Draw and check candidates from the history match in ``store`` until ``members`` pass (at most ``ROUNDS``
    rounds), write them to ``out`` and return them. The check runs are kept in ``store`` (check_<round>.parquet) and
    resumed like the waves."""
    runs, settings = load_waves(store)
    free = load_free_parameters()
    if settings["free"] != free:
        raise ScenarioError(f"{store}: its runs were made with other free parameters than calibration/free_parameters.toml; "
                            "rerun the history match")
    weighted = [t for t in load_targets() if t.weight > 0]
    targets = fitted_targets(weighted)
    if [t.name for t in targets] != settings["targets"]:
        raise ScenarioError(f"{store}: its runs were ruled in or out by other targets than calibration/targets.toml's; "
                            "rerun the history match")
    overrides = settings.get("overrides", [])
    seed = settings["seed"] + CHECK_SEED_OFFSET
    log(f"emulators of {len(runs)} runs in {runs['wave'].nunique()} waves")
    emulators = emulators_of(runs, free, targets)
    overall = Emulator(runs, free, sorted({t.metric for t in targets}))
    checked = []
    kept = 0
    for round_ in range(1, ROUNDS + 1):
        wanted = members - kept
        if wanted <= 0:
            break
        cube = draw_candidates(emulators, overall, targets, math.ceil(OVERSAMPLE * wanted), seed + round_)
        log(f"round {round_}: checking {len(cube)} candidates ({check_reps} 10-year and {check_long_reps} 40-year replicates each)")
        done = evaluate(scenario, free, cube, weighted, check_reps, check_long_reps, seed, workers,
                        store / f"check_{round_}.parquet", log=log, overrides=overrides, scheduler=scheduler).assign(round=round_)
        done["passes"] = within_bands({t.metric: done[t.metric].to_numpy() for t in targets}, targets)
        checked.append(done)
        kept += int(done["passes"].sum())
        log(f"round {round_}: {int(done['passes'].sum())} of {len(done)} meet every target ({kept} members so far)")
    table = pd.concat(checked, ignore_index=True)
    ensemble = table[table["passes"]].reset_index(drop=True)
    if ensemble.empty:
        raise ScenarioError("no candidate met every target in its check runs; nothing was written")
    made_by = (f"sim ensemble {date.today().isoformat()} (commit {_commit()}): history match of {len(runs)} runs in "
               f"{runs['wave'].nunique()} waves ({settings['reps']} 10-year and {settings['long_reps']} 40-year replicates "
               f"each, seed {settings['seed']}{', ' + ' '.join(overrides) if overrides else ''}); candidate not ruled out "
               f"(implausibility <= {CUTOFF:g}) with every emulated target mean within its band; kept because every "
               f"target's mean over {check_reps} 10-year and {check_long_reps} 40-year check replicates (root seed {seed}) "
               f"lies within its band; {len(ensemble)} of {len(table)} candidates kept")
    frame = pd.DataFrame({"member": np.arange(len(ensemble))})
    for k in free:
        frame[VALUE + k] = ensemble[k].to_numpy()
    for k in free:
        frame[f"u:{k}"] = ensemble[f"u:{k}"].to_numpy()
    for m in sorted({t.metric for t in weighted}):
        frame[m] = ensemble[m].to_numpy()
        frame[f"se:{m}"] = ensemble[f"se:{m}"].to_numpy()
    frame["check_round"] = ensemble["round"].to_numpy()
    frame["made_by"] = made_by
    write_atomic(out, lambda tmp: frame.to_parquet(tmp, index=False))
    log(f"{len(frame)} members -> {out}" + ("" if len(frame) >= members else f" (fewer than the {members} asked for)"))
    return frame


def ensemble_ranges(frame: pd.DataFrame, free: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per free parameter: its bounds, the members' 5-50-95% points, the share of its range they span, and whether
    they crowd a bound (a tenth of the members within 2% of the range from it: the targets would take it further)."""
    free = load_free_parameters() if free is None else free
    rows = []
    for k, spec in free.items():
        if VALUE + k not in frame:
            continue
        u = frame[f"u:{k}"].to_numpy()
        v = frame[VALUE + k].to_numpy()
        rows.append({"parameter": k, "lower": spec["lower"], "upper": spec["upper"],
                     "p05": float(np.quantile(v, 0.05)), "p50": float(np.quantile(v, 0.5)), "p95": float(np.quantile(v, 0.95)),
                     "share_of_range": float(np.quantile(u, 0.95) - np.quantile(u, 0.05)),
                     "at_bound": "lower" if (u < 0.02).mean() >= 0.1 else "upper" if (u > 0.98).mean() >= 0.1 else ""})
    return pd.DataFrame(rows)


def ensemble_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Per weighted target: its band and the members' 5-50-95% points of their check-run means (the ensemble's
    interval: how far the parameter sets that fit spread it), known gaps included."""
    rows = []
    for t in load_targets():
        if t.weight > 0 and t.metric in frame:
            q = np.quantile(frame[t.metric].dropna(), [0.05, 0.5, 0.95])
            rows.append({"target": t.name, "lower": t.lower, "upper": t.upper, "p05": q[0], "p50": q[1], "p95": q[2],
                         "known_gap": bool(t.known_gap)})
    return pd.DataFrame(rows)


def ensemble_correlations(frame: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlations between the members' values (on the unit box): pairs the targets tie together."""
    cols = [c for c in frame.columns if c.startswith("u:")]
    corr = frame[cols].rank().corr()
    corr.index = corr.columns = [c[2:] for c in cols]
    return corr


def run(scenario, waves: int, points: int, reps: int, long_reps: int, seed: int, members: int, check_reps: int,
        check_long_reps: int, workers: int, overrides=(), store: Path = STORE, out: Path = ENSEMBLE, log=print,
        scheduler: str | None = None) -> pd.DataFrame:
    """The history match (resumed where its runs are stored), then the ensemble built from it, on local worker
    processes or the Dask cluster at ``scheduler``."""
    t0 = time.perf_counter()
    history_match(scenario, waves, points, reps, long_reps, seed, workers, store=store, log=log, overrides=overrides,
                  scheduler=scheduler)
    frame = build_ensemble(scenario, members, check_reps, check_long_reps, workers, store=store, out=out, log=log,
                           scheduler=scheduler)
    log(f"done in {time.perf_counter() - t0:.0f} s")
    return frame
