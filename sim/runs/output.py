"""Run artefacts: the microdata tables, the summary, the manifest, written atomically into a run folder.

A run folder is first written in full beside its destination (``.<name>.tmp-<pid>``) and then renamed into
place, so a reader only ever sees the previous complete folder or the new complete one. An existing folder is
never replaced unless asked (``force``) and ours (``sim.runs.outdir``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..state.people import START_STATUS
from ..state.rng import NEVER
from .outdir import arm_file, claimed


def people_frame(model) -> pd.DataFrame:
    """people.parquet: one row per person who was ever in the run."""
    p = model.people
    n = p.n
    ids = p.person_id[:n]

    def parent_id(col):
        rows = getattr(p, col)[:n]
        return pd.arrays.IntegerArray(np.where(rows >= 0, p.person_id[np.maximum(rows, 0)], 0), mask=rows < 0)

    return pd.DataFrame(
        {
            "person_id": ids,
            "sex": pd.Categorical(np.where(p.sex_male[:n], "M", "F"), categories=["F", "M"]),
            "birth_month": p.birth_month[:n],
            "father_id": parent_id("father"),
            "mother_id": parent_id("mother"),
            "convicted_before_start": p.convictions_before_start[:n] > 0,
            "status_at_start": pd.Categorical.from_codes(p.status_at_start[:n], categories=list(START_STATUS)),
            "weight": p.weight[:n],
            "convictions_before_start": p.convictions_before_start[:n],
            "cautions_before_start": p.cautions_before_start[:n],
            # first month a child was exposed to a domestic-abuse incident at home (missing: never)
            "da_exposed_month": pd.arrays.IntegerArray(p.da_exposed_month[:n].copy(), mask=p.da_exposed_month[:n] == NEVER),
        }
    )


def events_frame(model) -> pd.DataFrame:
    return model.events.to_frame(model.people.person_id[: model.people.n], model.params.offending.offence_types)


def timeseries_frame(model) -> pd.DataFrame:
    df = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    df["month"] = df["month"].astype("int32")
    return df


def stock_rms_deviation(stock: np.ndarray, start: float, heads: np.ndarray | None = None) -> float:
    """How far a monthly stock strays from its start, year by year: the root mean square of (the year's mean / the
    start - 1). With ``heads`` (the people it is counted among, month by month) the same per head, against the start
    per head of the first month: Essex grows, and a steady rate per head is what a steady baseline keeps."""
    if not len(stock) or not start:
        return float("nan")
    per = np.ones(len(stock)) if heads is None else np.asarray(heads, float)
    annual = pd.Series(stock / per).groupby(np.arange(len(stock)) // 12).mean().to_numpy()
    return float(np.sqrt(np.mean((annual / (start / per[0]) - 1) ** 2)))


def flow_drift(flow: np.ndarray, heads: np.ndarray | None = None) -> float:
    """A monthly flow's last year over its first (1 = its level holds); with ``heads``, each year's total over its
    mean number of heads (1 = its rate per head holds)."""
    if len(flow) < 24:
        return float("nan")
    per = np.ones(len(flow)) if heads is None else np.asarray(heads, float)
    return float((flow[-12:].sum() / per[-12:].mean()) / (flow[:12].sum() / per[:12].mean()))


def summarise(model) -> dict[str, float]:
    """Headline figures of one run: annual flows, end stocks and the cohort metrics by their definitions."""
    ts = timeseries_frame(model)
    years = len(ts) / 12.0
    out: dict[str, float] = {"months": float(len(ts))}
    for name in ("offences", "offences_proven", "convictions", "cautions", "first_time_entrants", "child_first_time_entrants",
                 "children_convicted", "custody_starts", "releases", "recalls", "order_starts"):
        out[f"{name}_per_year"] = float(ts[name].sum() / years) if years else float("nan")
    out["population_start"] = float(ts["population"].iloc[0]) if len(ts) else float("nan")
    out["population_end"] = float(ts["population"].iloc[-1]) if len(ts) else float("nan")
    adults = (ts["population"] - ts["children"]).to_numpy(float)
    for name in ("custody", "licence", "probation"):
        start = float(model.initial_stocks[name])
        out[f"{name}_start"] = start  # as built, before month 0
        out[f"{name}_first_year"] = float(ts[name].iloc[:12].mean()) if len(ts) else float("nan")  # mean over year 1
        out[f"{name}_end"] = float(ts[name].iloc[-1]) if len(ts) else float("nan")
        # mean stock over the last year relative to the start (1 = stable)
        out[f"{name}_drift"] = float(ts[name].iloc[-12:].mean() / start) if len(ts) >= 12 and start else float("nan")
        out[f"{name}_rms_deviation"] = stock_rms_deviation(ts[name].to_numpy(float), start)
        out[f"{name}_rms_deviation_per_adult"] = stock_rms_deviation(ts[name].to_numpy(float), start, adults)
    # offences in the last year relative to the first (1 = the baseline's crime level holds)
    out["offences_drift"] = flow_drift(ts["offences"].to_numpy(float))
    out["offences_drift_per_head"] = flow_drift(ts["offences"].to_numpy(float), ts["population"].to_numpy(float))
    # domestic abuse (the year before the start was simulated, so its first year counts as any other)
    for name in ("da_incidents", "da_high_risk_victims", "da_children_exposed", "hub_starts"):
        out[f"{name}_per_year"] = float(ts[name].sum() / years) if years else float("nan")
    incidents = ts["da_incidents"].sum()
    for name, column in (("da_repeat_share", "da_repeat_incidents"), ("da_former_partner_share", "da_incidents_former_partner"),
                         ("da_previously_convicted_share", "da_incidents_by_previously_convicted")):
        out[name] = float(ts[column].sum() / incidents) if incidents else float("nan")
    total = ts["offences"].sum()
    out["share_offences_by_supervised"] = float(ts["offences_by_supervised"].sum() / total) if total else float("nan")
    out["share_offences_by_previously_convicted"] = float(ts["offences_by_previously_convicted"].sum() / total) if total else float("nan")
    out["share_offences_by_offenders_in_cjs"] = float(ts["offences_by_offenders_in_cjs"].sum() / total) if total else float("nan")
    if model.events.enabled:
        md = metrics.Microdata.from_model(model)
        run = model.params.run
        window = run.cohort_follow_up_months + run.cohort_waiting_months
        last_start = len(ts) - window  # cohorts need their whole follow-up inside the run (a conviction's from the next month)
        for label, disposal in metrics.RATE_DISPOSALS.items():
            if last_start > 0:
                r = metrics.proven_reoffending(
                    md, None, disposal, 0, min(12, last_start), run.cohort_follow_up_months, run.cohort_waiting_months,
                    adult_age_years=model.params.family.age_adult,
                )
                out[f"proven_reoffending_rate_{label}_first_year"] = r["rate"]
                out[f"reoffences_per_reoffender_{label}_first_year"] = r["reoffences_per_reoffender"]
                out[f"cohort_size_{label}_first_year"] = r["cohort_size"]
                annual = metrics.proven_reoffending_annual_cohorts(
                    md, None, disposal, len(ts), run.cohort_follow_up_months, run.cohort_waiting_months, model.params.family.age_adult
                )
                out[f"proven_reoffending_rate_{label}"] = annual["rate"]
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("reoffsim", "mesa", "numpy", "pandas", "pyarrow", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def manifest(params, seed: int, extra: dict | None = None) -> dict:
    return {
        "scenario": params.run.name,
        "scenario_file": params.source_file,
        "seed": seed,
        "months": params.months,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "versions": versions(),
        "parameters": params.to_dict(),
        **({"calibration_ensemble": ensemble_record(params.ensemble)} if params.ensemble is not None else {}),
        **(extra or {}),
    }


def ensemble_record(ensemble) -> dict:
    """What a manifest says of the calibration ensemble replicates drew from: its file, checksum, members and keys."""
    import hashlib

    path = Path(ensemble.path)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None,
            "members": len(ensemble), "keys": list(ensemble.keys)}


@contextmanager
def atomic_dir(final: Path, force: bool = False):
    """Yield a temporary folder next to ``final``; on success it becomes ``final`` in one rename. An existing
    ``final`` is refused unless ``force`` and it holds only what sim wrote (``sim.runs.outdir``); the old folder is then
    removed only once the new one is in place."""
    with claimed(final, force=force) as folder:
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        tmp.chmod(0o755)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if folder.exists() and any(folder.iterdir()):  # ours: claimed() refused it otherwise
            old = folder.parent / f".{folder.name}.old-{os.getpid()}"
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except BaseException:
            if old is not None:  # put the previous folder back
                os.replace(old, folder)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_run(model, out_dir: Path, with_events: bool, force: bool = False) -> dict[str, float]:
    """Write a finished model's artefacts into ``out_dir`` atomically; returns the summary."""
    summary = summarise(model)
    with atomic_dir(out_dir, force) as tmp:
        timeseries_frame(model).to_parquet(tmp / "timeseries.parquet", index=False)
        pd.DataFrame([summary]).to_csv(tmp / "summary.csv", index=False)
        files = ["timeseries.parquet", "summary.csv"]
        if with_events:
            people_frame(model).to_parquet(tmp / "people.parquet", index=False)
            events_frame(model).to_parquet(tmp / "events.parquet", index=False)
            files += ["people.parquet", "events.parquet"]
        info = manifest(model.params, model.seed, {"files": files + ["manifest.json"], "summary": summary,
                                                   "ensemble_member": model.ensemble_member})  # -1: the point fit
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2, default=float))
    return summary


def write_comparison(out_dir: Path, base, iv, root_seed: int, rows: pd.DataFrame, table: pd.DataFrame, series: pd.DataFrame, ledger: pd.DataFrame,
                     force: bool = False, channels: pd.DataFrame | None = None) -> None:
    """A comparison folder: comparison.csv (one row per metric), replicates.csv, timeseries.parquet and
    ledger.parquet (both scenarios, every replicate), manifest.json; with ``channels`` (the decomposition's
    per-replicate contributions) also channels.csv (its summary) and channel_replicates.csv. Written atomically."""
    from ..appraisal.compare import channel_table

    files = ["comparison.csv", "replicates.csv", "timeseries.parquet", "ledger.parquet"]
    with atomic_dir(out_dir, force) as tmp:
        table.to_csv(tmp / "comparison.csv", index=False)
        rows.to_csv(tmp / "replicates.csv", index=False)
        series.to_parquet(tmp / "timeseries.parquet", index=False)
        ledger.to_parquet(tmp / "ledger.parquet", index=False)
        if channels is not None:
            channel_table(channels).to_csv(tmp / "channels.csv", index=False)
            channels.to_csv(tmp / "channel_replicates.csv", index=False)
            files += ["channels.csv", "channel_replicates.csv"]
        info = manifest(iv, root_seed, {
            "kind": "comparison",
            "replicates": int(len(rows)),
            "replicate_seeds": [int(s) for s in rows["seed"]],
            "baseline": {"scenario": base.run.name, "scenario_file": base.source_file, "parameters": base.to_dict()},
            "files": [*files, "manifest.json"],
        })
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2, default=float))


def write_portfolio(out_dir: Path, base, programmes: list, combination, combination_given: bool, root_seed: int,
                    rows: dict[str, pd.DataFrame], long: pd.DataFrame, table: pd.DataFrame, series: pd.DataFrame,
                    force: bool = False) -> None:
    """A portfolio folder: portfolio.csv (arm x metric, with the interaction), portfolio_replicates.csv (the same
    for every replicate), replicates.csv (every arm's paired metrics, an ``arm`` column), one comparison_<arm>.csv
    per arm (as a comparison's comparison.csv), timeseries.parquet (every scenario, every replicate) and
    manifest.json (the combination's parameters as ``parameters``; the baseline's and each programme's, with the
    settings it changes). Written atomically."""
    from ..appraisal.compare import summary_table
    from ..state.scenario import changed_settings

    arms = [*(p.run.name for p in programmes), combination.run.name]
    files = ["portfolio.csv", "portfolio_replicates.csv", "replicates.csv", *map(arm_file, arms), "timeseries.parquet"]
    with atomic_dir(out_dir, force) as tmp:
        table.to_csv(tmp / "portfolio.csv", index=False)
        long.to_csv(tmp / "portfolio_replicates.csv", index=False)
        pd.concat([rows[a].assign(arm=a) for a in arms], ignore_index=True).pipe(lambda d: d[["arm", *d.columns[:-1]]]).to_csv(
            tmp / "replicates.csv", index=False)
        for a in arms:
            summary_table(rows[a]).to_csv(tmp / arm_file(a), index=False)
        series.to_parquet(tmp / "timeseries.parquet", index=False)

        def described(p):
            return {"scenario": p.run.name, "scenario_file": p.source_file or None, "parameters": p.to_dict(),
                    "changes": {f"{s}.{k}": v for (s, k), v in changed_settings(base, p).items()}}

        info = manifest(combination, root_seed, {
            "kind": "portfolio",
            "replicates": int(len(rows[arms[-1]])),
            "replicate_seeds": [int(s) for s in rows[arms[-1]]["seed"]],
            "baseline": {"scenario": base.run.name, "scenario_file": base.source_file, "parameters": base.to_dict()},
            "programmes": [described(p) for p in programmes],
            "combination": {**described(combination), "given": combination_given},
            "files": [*files, "manifest.json"],
        })
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2, default=float))


#: the metrics a sweep reports for each grid point (mean and 90% interval)
SWEEP_METRICS = (
    "offences", "proven_reoffending_prison", "proven_reoffending_probation", "children_convicted",
    "appraisal:intervention_cost", "appraisal:total_savings", "appraisal:net_fiscal_benefit", "appraisal:npv",
    "appraisal:bcr", "appraisal:cost_per_offence_avoided", "appraisal:benefits_exceed_costs",
)


def write_sweep(out_dir: Path, params, root_seed: int, reps: int, tables: list, rows: pd.DataFrame, force: bool = False) -> pd.DataFrame:
    """sweep.csv: one row per grid point with the grid values and, per metric, the mean and 90% interval of the
    difference from the intervention switched off. Also replicates.csv and manifest.json. Written atomically."""
    records = []
    for point, table in tables:
        t = table.set_index("metric")
        rec = {s.split("=", 1)[0]: s.split("=", 1)[1] for s in point}
        for m in SWEEP_METRICS:
            rec[m] = t.loc[m, "difference"]
            if m != "appraisal:benefits_exceed_costs":
                rec[f"{m}_p05"], rec[f"{m}_p95"] = t.loc[m, "difference_p05"], t.loc[m, "difference_p95"]
        records.append(rec)
    result = pd.DataFrame(records)
    with atomic_dir(out_dir, force) as tmp:
        result.to_csv(tmp / "sweep.csv", index=False)
        rows.to_csv(tmp / "replicates.csv", index=False)
        info = manifest(params, root_seed, {"kind": "sweep", "replicates": reps, "grid": [p for p, _ in tables],
                                            "files": ["sweep.csv", "replicates.csv", "manifest.json"]})
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2, default=float))
    return result


def write_validation(out_dir: Path, params, seed: int, table: pd.DataFrame, draw_figure, force: bool = False,
                     steady: pd.DataFrame | None = None, draw_steady=None) -> None:
    """A validation folder: validation.csv (every target beside its simulated value), calibration.png
    (``draw_figure(path)`` writes it), with ``steady`` steadiness.csv and steadiness.png (``draw_steady(path)``), and
    manifest.json. Written atomically."""
    files = ["validation.csv", "calibration.png"] + (["steadiness.csv", "steadiness.png"] if steady is not None else [])
    with atomic_dir(out_dir, force) as tmp:
        table.to_csv(tmp / "validation.csv", index=False)
        draw_figure(tmp / "calibration.png")
        if steady is not None:
            steady.to_csv(tmp / "steadiness.csv", index=False)
            draw_steady(tmp / "steadiness.png")
        info = manifest(params, seed, {"kind": "validation", "files": [*files, "manifest.json"]})
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2, default=float))
