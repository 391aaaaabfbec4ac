"""Comparing scenarios: paired replicates (same seeds, common random numbers) of a baseline and an intervention,
and the appraisal a commissioner reads: crime avoided, savings by agency and kind, NPV, BCR, payback.

Replicate k of every scenario runs with the same seed, spawned from one root ``numpy.random.SeedSequence``, so
replicate k's seed does not depend on how many replicates or workers there are. Differences are intervention
minus baseline; savings are baseline minus intervention. Intervals are the 5th and 95th percentiles of the
paired differences over replicates (90%).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pandas as pd

from . import costs as C
from . import metrics
from .model import ReoffendingModel
from .output import timeseries_frame
from .progress import Progress

#: outcome metrics per scenario run: name -> (unit, description)
OUTCOMES = {
    "offences": ("offences", "offences committed over the run, detected or not"),
    "convictions": ("convictions", "convictions over the run"),
    "proven_reoffending_prison": ("proportion", "one-year proven reoffending after release from custody (MoJ), mean of the annual cohorts"),
    "proven_reoffending_probation": ("proportion", "one-year proven reoffending after an order start (MoJ), mean of the annual cohorts"),
    "custody_months": ("prisoner-months", "months spent in custody"),
    "children_convicted": ("convictions", "convictions of children (under 18)"),
    "first_time_entrants": ("people", "people convicted for the first time"),
    "child_first_time_entrants": ("children", "children (under 18) convicted for the first time: fewer means children kept out of the CJS"),
    "iv_families_started": ("families", "families starting the intervention"),
    "iv_family_months": ("family-months", "months engaged families spent in the intervention"),
}


def replicate_seeds(root_seed: int, reps: int) -> list[int]:
    """Replicate seeds spawned from one root SeedSequence: replicate k's seed depends only on (root, k)."""
    children = np.random.SeedSequence(root_seed).spawn(reps)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]


def run_replicate(params, seed: int) -> dict:
    """One run: its monthly series, outcome metrics, cost ledger, and the parameters as drawn for this seed."""
    model = ReoffendingModel(params, seed=seed, record_offences=False).run()
    params = model.params
    ts = timeseries_frame(model)
    out = {name: float(ts[col].sum()) for name, col in (
        ("offences", "offences"), ("convictions", "convictions"), ("custody_months", "custody"),
        ("children_convicted", "children_convicted"), ("first_time_entrants", "first_time_entrants"),
        ("child_first_time_entrants", "child_first_time_entrants"),
        ("iv_families_started", "iv_starts"), ("iv_family_months", "iv_active_families"),
    )}
    run = params.run
    md = metrics.Microdata.from_model(model)
    for label, event in (("prison", "release"), ("probation", "order_start")):
        out[f"proven_reoffending_{label}"] = metrics.proven_reoffending_annual_cohorts(
            md, None, event, len(ts), run.cohort_follow_up_months, run.cohort_waiting_months, params.family.age_adult
        )["rate"]
    return {"timeseries": ts, "outcomes": out, "ledger": C.ledger(ts, model.params), "params": model.params, "draws": model.parameter_draws}


def priced_like(run: dict, params) -> dict:
    """The run with its ledger re-priced with ``params.costs``: both arms of a comparison are priced alike (the
    intervention scenario's unit costs, as drawn for the replicate), so savings measure activity, not prices."""
    if run["params"].costs == params.costs:
        return run
    return {**run, "ledger": C.ledger(run["timeseries"], replace(run["params"], costs=params.costs))}


def appraise(base: dict, iv: dict, params) -> dict[str, float]:
    """Paired metrics of one replicate: outcomes of both, differences, and the economic appraisal."""
    costs = params.costs
    row: dict[str, float] = {}
    for name in OUTCOMES:
        b, i = base["outcomes"][name], iv["outcomes"][name]
        row[f"baseline:{name}"], row[f"intervention:{name}"], row[f"difference:{name}"] = b, i, i - b
    pv_b = C.present_value(base["ledger"], costs).set_index(["agency", "kind"])["pv_gbp"]
    pv_i = C.present_value(iv["ledger"], costs).set_index(["agency", "kind"])["pv_gbp"]
    saving = pv_b.sub(pv_i, fill_value=0.0).drop("intervention", level="agency", errors="ignore")
    def intervention_pv(pv):
        return float(pv.xs("intervention", level="agency").sum()) if "intervention" in pv.index.get_level_values(0) else 0.0

    iv_cost = intervention_pv(pv_i) - intervention_pv(pv_b)  # incremental, if the baseline has an intervention too
    for agency in C.SAVING_AGENCIES:
        row[f"savings_by_agency:{agency}"] = float(saving.xs(agency, level="agency").sum()) if agency in saving.index.get_level_values(0) else 0.0
    for kind in C.KINDS:
        row[f"savings_by_kind:{kind}"] = float(saving.xs(kind, level="kind").sum()) if kind in saving.index.get_level_values(1) else 0.0
    fiscal = row["savings_by_kind:fiscal_cashable"] + row["savings_by_kind:fiscal_non_cashable"]
    total = sum(row[f"savings_by_kind:{k}"] for k in C.KINDS)
    avoided = -row["difference:offences"]
    row["appraisal:intervention_cost"] = iv_cost
    row["appraisal:total_savings"] = total
    row["appraisal:net_cashable_benefit"] = row["savings_by_kind:fiscal_cashable"] - iv_cost
    row["appraisal:net_fiscal_benefit"] = fiscal - iv_cost
    row["appraisal:npv"] = total - iv_cost
    row["appraisal:bcr"] = total / iv_cost if iv_cost > 0 else float("nan")
    row["appraisal:fiscal_return_per_pound"] = fiscal / iv_cost if iv_cost > 0 else float("nan")
    row["appraisal:offences_avoided"] = avoided
    row["appraisal:cost_per_offence_avoided"] = iv_cost / avoided if iv_cost > 0 and avoided > 0 else float("nan")
    row["appraisal:payback_year"] = payback_year(base["ledger"], iv["ledger"], costs)
    row["appraisal:benefits_exceed_costs"] = float(row["appraisal:npv"] > 0) if iv_cost > 0 else float("nan")
    return row


def cumulative_net_benefit(ledger: pd.DataFrame, costs) -> pd.DataFrame:
    """Per replicate and appraisal year (1 = the first): cumulative discounted net benefit, all savings minus the
    incremental intervention cost (``net``), and fiscal savings minus that cost (``net_fiscal``). ``ledger`` holds
    both arms (``scenario`` baseline / intervention) and a ``replicate`` column."""
    led = ledger.assign(year=ledger["month"] // 12 + 1, pv=ledger["cost_gbp"] * C.green_book_factors(ledger["month"].to_numpy(), costs))
    is_iv = led["agency"] == "intervention"
    spend = led[is_iv].groupby(["scenario", "replicate", "year"])["pv"].sum().unstack("scenario", fill_value=0.0)
    total = led[~is_iv].groupby(["scenario", "replicate", "year"])["pv"].sum().unstack("scenario", fill_value=0.0)
    fiscal = led[~is_iv & led["kind"].isin(C.FISCAL)].groupby(["scenario", "replicate", "year"])["pv"].sum().unstack("scenario", fill_value=0.0)
    for frame in (spend, total, fiscal):
        for arm in ("baseline", "intervention"):
            if arm not in frame:
                frame[arm] = 0.0
    cost = (spend["intervention"] - spend["baseline"]).reindex(total.index, fill_value=0.0)
    out = pd.DataFrame({
        "net": total["baseline"] - total["intervention"] - cost,
        "net_fiscal": (fiscal["baseline"] - fiscal["intervention"]).reindex(total.index, fill_value=0.0) - cost,
        "cost": cost,
    })
    return out.groupby(level="replicate").cumsum()


def payback_year(base_ledger: pd.DataFrame, iv_ledger: pd.DataFrame, costs) -> float:
    """First appraisal year (1 = the first) by whose end cumulative discounted fiscal savings cover the cumulative
    discounted (incremental) intervention cost; NaN if not within the run or if there is no intervention cost."""
    ledger = pd.concat([base_ledger.assign(scenario="baseline"), iv_ledger.assign(scenario="intervention")], ignore_index=True).assign(replicate=0)
    c = cumulative_net_benefit(ledger, costs).loc[0]
    if c.empty or c["cost"].iloc[-1] <= 0:
        return float("nan")
    paid = c.index[c["net_fiscal"] >= 0]
    return float(paid[0]) if len(paid) else float("nan")


def _run_task(task):
    params, seed = task
    return run_replicate(params, seed)


def run_all(tasks: list[tuple], workers: int = 1, label: str = "runs", scheduler: str | None = None,
            stall_timeout: float | None = None, task=_run_task) -> list:
    """``task`` (default: ``run_replicate`` of a (params, seed) pair) over ``tasks``, results in task order, on the
    executor that ``workers`` or
    ``scheduler`` give (see ``sim.batch.run_calls``). A failing run raises its own error at once; SIGINT or
    SIGTERM, no run finishing for ``stall_timeout`` seconds (default 600) or a broken pool raise the matching
    ``sim.batch.BatchError``. Either way queued runs are cancelled and running ones not waited for."""
    from .batch import run_calls

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


def compare(base_params, iv_params, reps: int, root_seed: int, workers: int = 1, label: str = "compare",
            baseline_runs: list | None = None, scheduler: str | None = None, stall_timeout: float | None = None):
    """Run ``reps`` paired replicates (replicate k of both scenarios on the same seed).

    Returns (per-replicate metrics, monthly series, cost ledgers, the baseline runs); pass ``baseline_runs`` back
    in to reuse them for another intervention with the same baseline (as a sweep does)."""
    seeds = replicate_seeds(root_seed, reps)
    tasks = ([] if baseline_runs is not None else [(base_params, s) for s in seeds]) + [(iv_params, s) for s in seeds]
    runs = run_all(tasks, workers, label, scheduler, stall_timeout)
    base_runs = baseline_runs if baseline_runs is not None else runs[:reps]
    iv_runs = runs[-reps:]
    rows, series, ledgers = [], [], []
    for k, (seed, b, i) in enumerate(zip(seeds, base_runs, iv_runs)):
        b = priced_like(b, i["params"])
        draws = {f"parameter:{key}": v for key, v in {**b["draws"], **i["draws"]}.items()}
        rows.append({**appraise(b, i, i["params"]), "replicate": k, "seed": seed, **draws})
        for name, r in (("baseline", b), ("intervention", i)):
            series.append(r["timeseries"].assign(scenario=name, replicate=k))
            ledgers.append(r["ledger"].assign(scenario=name, replicate=k))
    return pd.DataFrame(rows), pd.concat(series, ignore_index=True), pd.concat(ledgers, ignore_index=True), base_runs


def summary_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: baseline, intervention, difference means and the 90% interval of the difference."""
    out = []
    for name, (unit, desc) in OUTCOMES.items():
        d = rows[f"difference:{name}"]
        out.append({"metric": name, "unit": unit, "baseline": rows[f"baseline:{name}"].mean(), "intervention": rows[f"intervention:{name}"].mean(),
                    "difference": d.mean(), "difference_p05": d.quantile(0.05), "difference_p95": d.quantile(0.95), "description": desc})
    def mean(col):
        return rows[col].mean() if col in rows else np.nan

    cost = mean("appraisal:intervention_cost")
    avoided = mean("appraisal:offences_avoided")
    fiscal = mean("savings_by_kind:fiscal_cashable") + mean("savings_by_kind:fiscal_non_cashable")
    paid = rows["appraisal:payback_year"] if "appraisal:payback_year" in rows else pd.Series(dtype=float)
    # ratios are ratios of means (as a health economist's BCR or ICER), not means of ratios; the interval is the
    # 5-95% range of the replicates' own ratios
    central = {
        "bcr": mean("appraisal:total_savings") / cost if cost > 0 else np.nan,
        "fiscal_return_per_pound": fiscal / cost if cost > 0 else np.nan,
        "cost_per_offence_avoided": cost / avoided if cost > 0 and avoided > 0 else np.nan,
        "payback_year": paid.median() if len(paid) and paid.notna().mean() > 0.5 else np.nan,
    }
    for col in rows.columns:
        if col.startswith(("savings_by_agency:", "savings_by_kind:", "appraisal:")):
            v = rows[col].dropna()
            group, name = col.split(":", 1)
            unit = {"bcr": "ratio", "fiscal_return_per_pound": "ratio", "offences_avoided": "offences", "payback_year": "year",
                    "benefits_exceed_costs": "probability"}.get(name, "GBP, present value")
            out.append({"metric": f"{group}:{name}", "unit": unit, "baseline": np.nan, "intervention": np.nan,
                        "difference": central.get(name, v.mean() if len(v) else np.nan),
                        "difference_p05": v.quantile(0.05) if len(v) and name != "benefits_exceed_costs" else np.nan,
                        "difference_p95": v.quantile(0.95) if len(v) and name != "benefits_exceed_costs" else np.nan,
                        "description": _describe(group, name)})
    out.append({"metric": "appraisal:share_paying_back", "unit": "probability", "baseline": np.nan, "intervention": np.nan,
                "difference": float(paid.notna().mean()) if len(paid) else np.nan, "difference_p05": np.nan, "difference_p95": np.nan,
                "description": "share of replicates in which fiscal savings cover the intervention cost within the run"})
    return pd.DataFrame(out)


def _describe(group: str, name: str) -> str:
    if group == "savings_by_agency":
        return f"discounted savings to {name.replace('_', ' ')} (baseline minus intervention costs)"
    if group == "savings_by_kind":
        return f"discounted savings, {name.replace('_', ' ')}"
    return {
        "intervention_cost": "discounted cost of the intervention (with optimism bias)",
        "total_savings": "discounted savings of every kind and agency",
        "net_cashable_benefit": "cashable fiscal savings minus intervention cost",
        "net_fiscal_benefit": "fiscal savings (cashable and not) minus intervention cost",
        "npv": "net present value: all savings minus intervention cost",
        "bcr": "benefit-cost ratio: mean savings / mean intervention cost (interval: the replicates' own ratios)",
        "fiscal_return_per_pound": "mean fiscal savings per pound of mean intervention cost",
        "offences_avoided": "offences avoided (baseline minus intervention)",
        "cost_per_offence_avoided": "mean intervention cost per mean offence avoided",
        "payback_year": "first year by whose end fiscal savings cover the intervention cost: median over replicates, blank unless most replicates pay back within the run",
        "benefits_exceed_costs": "share of replicates in which the NPV is positive",
    }.get(name, name)


def parse_grid(settings: list[str]) -> list[list[str]]:
    """``["a.b=1,2", "c.d=x"]`` -> the product grid as lists of ``section.key=value`` overrides.
    Commas inside TOML lists ``[...]``, inline tables ``{...}`` or quoted strings do not split values."""
    axes = []
    for text in settings:
        key, _, values = text.partition("=")
        parts, depth, cur, quote = [], 0, "", None
        for ch in values:
            if quote:
                quote = None if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            else:
                depth += ch in "[{"
                depth -= ch in "]}"
            if ch == "," and depth == 0 and quote is None:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        axes.append([f"{key.strip()}={v.strip()}" for v in parts])
    return [list(point) for point in itertools.product(*axes)]


def switched_off(params, intervention=None):
    """The same scenario with the intervention off (its comparison baseline in a sweep). With ``intervention``
    given, that section (switched off) replaces the scenario's, so grid points that differ only in intervention
    settings share one baseline."""
    return replace(params, intervention=replace(intervention or params.intervention, coverage=0.0))
