"""Monte Carlo batches: many replicates of a scenario, on one core, local processes or a Dask cluster, with every
finished replicate kept on disk so that an interrupted batch can be resumed.

Replicate k runs with seed ``replicate_seeds(root, N)[k]`` (spawned from one ``numpy.random.SeedSequence``), so
its result is the same bit for bit whatever the executor, the number of workers or the order of completion.
The output folder holds:

- ``timeseries.parquet/``: a dataset folder, one file per replicate (``part-000042.parquet``), columns
  ``replicate``, ``month`` and one per series; ``pandas.read_parquet`` reads the folder in one call;
- ``replicates.parquet/``: likewise, one row per replicate: its seed, summary metrics, discounted costs by agency
  and kind, and the values drawn for uncertain parameters (``parameter:section.key``);
- ``summary.csv``: per metric the mean, sd, Monte Carlo standard error, 5/50/95% quantiles, and the replicates
  needed for the requested relative precision of the mean;
- ``manifest.json``: the resolved scenario, root seed, N, replicate seeds, versions, git commit, and which
  replicates are complete or failed.

Every file is written to a hidden temporary name and renamed into place, so a reader sees either the previous
complete state or the new one.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import traceback
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import costs as C
from .compare import replicate_seeds
from .model import ReoffendingModel
from .output import git_commit, manifest, summarise, timeseries_frame, versions
from .params import Params
from .progress import Progress
from .scenario import ScenarioError, load_scenario


class InlineExecutor(Executor):
    """Runs each task at once in this process (one worker, no pickling)."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # a failing replicate is reported, not raised here
            future.set_exception(exc)
        return future


@contextmanager
def executor_for(workers: int | None = None, scheduler: str | None = None):
    """The executor for a batch: a Dask cluster by address, one process (workers=1) or local processes."""
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ScenarioError("--scheduler needs Dask: pip install 'reoffsim[dask]'") from None
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ScenarioError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client.get_executor()
        finally:
            client.close()
    elif (workers or os.cpu_count() or 1) <= 1:
        yield InlineExecutor()
    else:
        # forkserver: forking a process that already runs threads (numpy, pandas) can deadlock
        context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count(), mp_context=context) as pool:
            yield pool


def replicate_result(params: Params, seed: int, replicate: int) -> tuple[pd.DataFrame, dict]:
    """Run one replicate: its monthly series (with a ``replicate`` column) and its summary row."""
    model = ReoffendingModel(params, seed=seed, record_offences=False).run()
    ts = timeseries_frame(model)
    ts.insert(0, "replicate", np.int32(replicate))
    row: dict = {"replicate": replicate, "seed": seed, **summarise(model)}
    pv = C.present_value(C.ledger(ts, model.params), model.params.costs)
    for agency, total in pv.groupby("agency")["pv_gbp"].sum().items():
        row[f"cost_pv:{agency}"] = float(total)
    for kind, total in pv.groupby("kind")["pv_gbp"].sum().items():
        row[f"cost_pv:{kind}"] = float(total)
    row.update({f"parameter:{k}": v for k, v in model.parameter_draws.items()})
    return ts, row


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` beside ``path``, then rename it into place: a reader sees the old file or the new, never half."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


@dataclass
class BatchStore:
    """The output folder of a batch: replicate parts, manifest and summary."""

    out: Path
    params: Params
    root_seed: int
    reps: int
    failed: dict = field(default_factory=dict)

    @property
    def ts_dir(self) -> Path:
        return self.out / "timeseries.parquet"

    @property
    def rep_dir(self) -> Path:
        return self.out / "replicates.parquet"

    def open(self, resume: bool) -> None:
        """Create the folder, or check that an existing one is this batch (and ``resume`` was asked for)."""
        manifest_path = self.out / "manifest.json"
        if self.out.exists() and any(self.out.iterdir()):
            if not resume:
                raise ScenarioError(f"--out {self.out}: already holds results; add --resume to complete that batch, or choose another --out")
            if not manifest_path.exists():
                raise ScenarioError(f"--out {self.out}: not a batch folder (no manifest.json); cannot resume it")
            old = json.loads(manifest_path.read_text())
            if old.get("kind") != "batch" or old.get("parameters") != json.loads(json.dumps(self.params.to_dict(), default=float)) or old.get("root_seed") != self.root_seed:
                raise ScenarioError(f"--out {self.out}: that batch was made with another scenario or root seed; cannot resume it with this one")
            made_with = (old.get("git_commit"), old.get("versions", {}).get("reoffsim"), old.get("versions", {}).get("mesa"), old.get("versions", {}).get("numpy"))
            now = (git_commit(), *(versions().get(k) for k in ("reoffsim", "mesa", "numpy")))
            if made_with != now:
                raise ScenarioError(f"--out {self.out}: that batch was made with other code (commit/versions {made_with}, now {now}); "
                                    "results would mix; finish it with that code or start a new --out")
        self.ts_dir.mkdir(parents=True, exist_ok=True)
        self.rep_dir.mkdir(parents=True, exist_ok=True)

    def completed(self) -> set[int]:
        done_ts = {int(p.stem.split("-")[1]) for p in self.ts_dir.glob("part-*.parquet")}
        done_rep = {int(p.stem.split("-")[1]) for p in self.rep_dir.glob("part-*.parquet")}
        return done_ts & done_rep

    def write_replicate(self, k: int, ts: pd.DataFrame, row: dict) -> None:
        name = f"part-{k:06d}.parquet"
        write_atomic(self.ts_dir / name, lambda p: ts.to_parquet(p, index=False))
        write_atomic(self.rep_dir / name, lambda p: pd.DataFrame([row]).to_parquet(p, index=False))

    def write_manifest(self) -> None:
        seeds = replicate_seeds(self.root_seed, self.reps)
        info = manifest(self.params, self.root_seed, {
            "kind": "batch",
            "root_seed": self.root_seed,
            "replicates": self.reps,
            "replicate_seeds": seeds,
            "completed": sorted(k for k in self.completed() if k < self.reps),
            "failed": [{"replicate": k, "seed": seeds[k], "error": e} for k, e in sorted(self.failed.items())],
            "updated_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": ["timeseries.parquet", "replicates.parquet", "summary.csv", "manifest.json"],
        })
        write_atomic(self.out / "manifest.json", lambda p: p.write_text(json.dumps(info, indent=2, default=float)))

    def replicates(self) -> pd.DataFrame:
        parts = sorted(self.rep_dir.glob("part-*.parquet"))
        if not parts:
            return pd.DataFrame()
        df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        return df[df["replicate"] < self.reps].sort_values("replicate", ignore_index=True)

    def write_summary(self, precision: float) -> pd.DataFrame:
        summary = summary_statistics(self.replicates(), precision)
        write_atomic(self.out / "summary.csv", lambda p: summary.to_csv(p, index=False))
        return summary


def summary_statistics(replicates: pd.DataFrame, precision: float = 0.01) -> pd.DataFrame:
    """Per metric: n, mean, sd, Monte Carlo standard error, 5/50/95% quantiles, and the replicates needed for the
    Monte Carlo standard error to be ``precision`` x |mean| (relative precision of the mean)."""
    rows = []
    for col in replicates.columns:
        if col in ("replicate", "seed") or not pd.api.types.is_numeric_dtype(replicates[col]):
            continue
        v = replicates[col].dropna().astype(float)
        n = len(v)
        mean = v.mean() if n else float("nan")
        sd = v.std(ddof=1) if n > 1 else float("nan")
        mcse = sd / math.sqrt(n) if n > 1 else float("nan")
        needed = math.ceil((sd / (precision * abs(mean))) ** 2) if n > 1 and mean != 0 and sd == sd else float("nan")
        rows.append({"metric": col, "n": n, "mean": mean, "sd": sd, "mcse": mcse, "p05": v.quantile(0.05) if n else np.nan,
                     "p50": v.quantile(0.5) if n else np.nan, "p95": v.quantile(0.95) if n else np.nan,
                     f"replicates_for_{precision:g}_relative_precision": needed})
    return pd.DataFrame(rows)


@dataclass
class BatchResult:
    replicates: pd.DataFrame
    summary: pd.DataFrame
    failed: dict
    out: Path | None


def run_batch(
    scenario: str | Path | Params,
    reps: int,
    seed: int = 1,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: tuple[str, ...] = (),
    precision: float = 0.01,
    label: str = "replicates",
) -> BatchResult:
    """Run ``reps`` replicates of a scenario (a file or Params) and return the replicate table (one tidy row per
    replicate) with its summary. With ``out``, every finished replicate is written as it completes and a rerun
    with ``resume=True`` runs only the missing ones. ``executor`` overrides ``workers``/``scheduler``."""
    params = scenario if isinstance(scenario, Params) else load_scenario(scenario, overrides)
    seeds = replicate_seeds(seed, reps)
    store = None
    if out is not None:
        store = BatchStore(Path(out), params, seed, reps)
        store.open(resume)
        todo = [k for k in range(reps) if k not in store.completed()]
        store.write_manifest()
    else:
        todo = list(range(reps))
    results: dict[int, dict] = {}
    failed: dict[int, str] = {}
    progress = Progress(reps, label, done=reps - len(todo))

    def collect(futures: dict):
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                ts, row = fut.result()
            except Exception as exc:  # noqa: BLE001 - a failed replicate must not take the batch down
                failed[k] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            else:
                results[k] = row
                if store is not None:
                    store.write_replicate(k, ts, row)
                    store.failed.pop(k, None)
            if store is not None:
                store.failed.update(failed)
                store.write_manifest()
            progress.advance()

    if executor is not None:
        collect({executor.submit(replicate_result, params, seeds[k], k): k for k in todo})
    else:
        with executor_for(workers, scheduler) as ex:
            collect({ex.submit(replicate_result, params, seeds[k], k): k for k in todo})
    if store is not None:
        store.failed = dict(failed)
        store.write_manifest()
        summary = store.write_summary(precision)
        return BatchResult(store.replicates(), summary, failed, store.out)
    table = pd.DataFrame([results[k] for k in sorted(results)])
    return BatchResult(table, summary_statistics(table, precision), failed, None)
