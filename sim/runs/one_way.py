"""`sim one-way`: the one-way sensitivity analysis run as paired comparisons, one point at a time, resumable.

Each point (the scenario as it is, then every ranged assumption at each end of its range) is the programme
against its baseline with the same settings, on the same seeds. Points that differ only in the programme's own
settings share one baseline (as a sweep's do). A finished point is kept at once in ``points/part-<k>.parquet``, so an
interrupted analysis resumes where it stopped (``resume``); the table, figure and words are written at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..appraisal.compare import switched_off
from ..appraisal.one_way import Assumption, one_way_table, one_way_words
from ..state.scenario import ScenarioError
from .batch import write_atomic
from .outdir import remove_ours
from .output import manifest
from .paired import compare_arms

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
    groups: dict = {}  # baseline -> the points it serves (those that differ only in [intervention] share one)
    for k, params in enumerate(point_params):
        if not _part(folder, k).exists():
            groups.setdefault(switched_off(params, point_params[0].intervention), []).append(k)
    for j, (base, ks) in enumerate(groups.items()):
        label = f"point {ks[0] + 1} of {len(settings)}" if len(ks) == 1 else f"{len(ks)} points of {len(settings)}"
        results, _ = compare_arms(base, [point_params[k] for k in ks], reps, seed, workers, f"{label} ({j + 1}/{len(groups)})",
                                  None, scheduler, stall)
        for k, (rows, _, _) in zip(ks, results):
            rows = rows.assign(point=k, setting=";".join(settings[k]))
            write_atomic(_part(folder, k), lambda tmp, rows=rows: rows.to_parquet(tmp, index=False))
    rows_of = {k: pd.read_parquet(_part(folder, k)) for k in range(len(settings))}
    table = one_way_table(assumptions, rows_of)
    words = one_way_words(table, reps)
    write_atomic(folder / "one_way.csv", lambda tmp: table.to_csv(tmp, index=False))
    write_atomic(folder / "one_way.txt", lambda tmp: tmp.write_text(words + "\n"))
    draw_figure(table, folder / "one_way.png")
    _write_manifest(folder, identity, point_params[0], seed, FILES)
    return table, words


def _open(folder: Path, identity: dict, force: bool, resume: bool, params, seed: int) -> None:
    """Create the folder with its manifest, or check that the one there is this analysis (``resume``)."""
    if resume and (folder / "manifest.json").exists():
        old = json.loads((folder / "manifest.json").read_text())
        if old.get("kind") != "one_way" or old.get("identity") != json.loads(json.dumps(identity, default=str)):
            raise ScenarioError(f"--out {folder}: holds another analysis (scenario, settings, replicates, seed or years "
                                "differ); cannot resume it with these")
        return
    if force:
        remove_ours(folder)
    (folder / POINTS).mkdir(parents=True, exist_ok=True)
    _write_manifest(folder, identity, params, seed, [POINTS, "manifest.json"])


def _write_manifest(folder: Path, identity: dict, params, seed: int, files: list[str]) -> None:
    info = manifest(params, seed, {"kind": "one_way", "identity": identity, "files": files})
    write_atomic(folder / "manifest.json", lambda tmp: tmp.write_text(json.dumps(info, indent=2, default=str)))
