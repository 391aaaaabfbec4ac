"""`sim one-way`: the one-way sensitivity analysis run as paired comparisons, one point at a time, resumable.

Each point (the scenario as it is, then every ranged assumption at each end of its range) is the programme
against its baseline with the same settings, on the same seeds. Points that differ only in the programme's own
settings share one baseline (as a sweep's do); points that differ only in unit costs run nothing: the runs of the
scenario as it stands are priced again (no process reads [costs]). A finished point is kept at once in ``points/part-<k>.parquet``, so an
interrupted analysis resumes where it stopped (``resume``); the table, figure and words are written at the end.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..appraisal import costs as C
from ..appraisal.compare import switched_off
from ..appraisal.one_way import Assumption, one_way_table, one_way_words
from ..start import realized
from ..state.scenario import ScenarioError
from .batch import refuse_other_origin, replicate_seeds, write_atomic
from .outdir import read_manifest, remove_ours
from .output import manifest
from .paired import pair, paired_runs, stack

POINTS = "points"
FILES = ["one_way.csv", "one_way.png", "one_way.txt", POINTS, "manifest.json"]


def _part(folder: Path, k: int) -> Path:
    return folder / POINTS / f"part-{k:06d}.parquet"


def run_one_way(folder: Path, assumptions: list[Assumption], settings: list[list[str]], point_params: list, identity: dict,
                reps: int, seed: int, workers: int, scheduler: str | None, stall: float | None, force: bool, resume: bool,
                draw_figure) -> tuple[pd.DataFrame, str]:
    """Run every point of ``settings`` (``point_params``: each loaded) not already kept in ``folder``, then write
    one_way.csv, one_way.png (``draw_figure(table, path)``), one_way.txt and the manifest. ``identity``: what makes
    two analyses the same (a resume is refused unless it matches). Returns the table and its words."""
    _open(folder, identity, force, resume, point_params[0], seed)
    todo = [k for k in range(len(settings)) if not _part(folder, k).exists()]
    same = [k for k in todo if k and point_params[k] == point_params[0]]  # an end at the value: the scenario as it stands
    priced = [k for k in todo if k not in same and all(x.startswith("costs.") for x in settings[k])]
    central = switched_off(point_params[0], point_params[0].intervention)
    # baseline -> the points it serves: those that differ only in [intervention] share one; the scenario as it stands
    # runs whenever points are priced from its runs (even if its own point is kept)
    groups: dict = {central: [0]} if priced else {}
    for k in todo:
        if k not in priced and k not in same:
            groups.setdefault(switched_off(point_params[k], point_params[0].intervention), []).append(k)
    seeds = replicate_seeds(seed, reps)

    def keep(k: int, pairs: list) -> None:
        rows = stack(pairs)[0].assign(point=k, setting=";".join(settings[k]))
        write_atomic(_part(folder, k), lambda tmp: rows.to_parquet(tmp, index=False))

    for j, (base, ks) in enumerate(groups.items()):
        ks = list(dict.fromkeys(ks))
        label = f"point {ks[0] + 1} of {len(settings)}" if len(ks) == 1 else f"{len(ks)} points of {len(settings)}"
        base_runs, arm_runs = paired_runs(base, [point_params[k] for k in ks], seeds, workers,
                                          f"{label} ({j + 1}/{len(groups)})", True, scheduler, stall)
        for k, runs in zip(ks, arm_runs):
            if k in todo:
                keep(k, [pair(r, s, b, i) for r, (s, b, i) in enumerate(zip(seeds, base_runs, runs))])
            if k == 0:
                as_it_stands = list(zip(base_runs, runs))
    for k in priced:
        keep(k, [pair(r, s, _priced(b, point_params[k], s), _priced(i, point_params[k], s))
                 for r, (s, (b, i)) in enumerate(zip(seeds, as_it_stands))])
    for k in same:
        rows = pd.read_parquet(_part(folder, 0)).assign(point=k, setting=";".join(settings[k]))
        write_atomic(_part(folder, k), lambda tmp: rows.to_parquet(tmp, index=False))
    rows_of = {k: pd.read_parquet(_part(folder, k)).sort_values("replicate", ignore_index=True) for k in range(len(settings))}
    table = one_way_table(assumptions, rows_of)
    words = one_way_words(table, reps)
    write_atomic(folder / "one_way.csv", lambda tmp: table.to_csv(tmp, index=False))
    write_atomic(folder / "one_way.txt", lambda tmp: tmp.write_text(words + "\n"))
    draw_figure(table, folder / "one_way.png")
    _write_manifest(folder, identity, point_params[0], seed, FILES)
    return table, words


def _priced(run: dict, params, seed: int) -> dict:
    """``run`` priced with the unit costs of ``params`` as realized for ``seed`` (the same draws of every drawn
    cost), its activity unchanged."""
    priced = replace(run["params"], costs=realized(params, seed).costs)
    return {**run, "params": priced, "ledger": C.ledger(run["timeseries"], priced)}


def _open(folder: Path, identity: dict, force: bool, resume: bool, params, seed: int) -> None:
    """Create the folder with its manifest, or check that the one there is this analysis (``resume``): the same
    scenario as resolved, settings, replicates and seed, calibration ensemble and code."""
    if resume and folder.exists() and any(folder.iterdir()):  # (sim.runs.outdir refused it without resume)
        old = read_manifest(folder, ("one_way",), complete=False)
        if (old.get("identity") != json.loads(json.dumps(identity, default=str))
                or old.get("parameters") != json.loads(json.dumps(params.to_dict(), default=float))):
            raise ScenarioError(f"--out {folder}: holds another analysis (scenario, its values, settings, replicates, seed or "
                                "years differ); cannot resume it with these")
        refuse_other_origin(old, params, folder, "analysis")
        return
    if force:
        remove_ours(folder)
    (folder / POINTS).mkdir(parents=True, exist_ok=True)
    _write_manifest(folder, identity, params, seed, [POINTS, "manifest.json"])


def _write_manifest(folder: Path, identity: dict, params, seed: int, files: list[str]) -> None:
    info = manifest(params, seed, {"kind": "one_way", "identity": identity, "files": files})
    write_atomic(folder / "manifest.json", lambda tmp: tmp.write_text(json.dumps(info, indent=2, default=float)))
