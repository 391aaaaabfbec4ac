"""The appraisal a commissioner reads, from paired replicates of a baseline and an intervention: outcomes of both,
crime avoided, savings by agency and kind, NPV, BCR, payback, and the summary table over replicates.

Differences are intervention minus baseline; savings are baseline minus intervention. Intervals are the 5th and
95th percentiles of the paired differences over replicates (90%). The replicates themselves are run by
``sim.runs.paired``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import costs as C

#: outcome metrics per scenario run: name -> (unit, description)
OUTCOMES = {
    "offences": ("offences", "offences committed over the run, detected or not"),
    "convictions": ("convictions", "convictions over the run"),
    "proven_reoffending_prison": ("proportion", "one-year proven reoffending after release from custody (MoJ), mean of the annual cohorts"),
    "proven_reoffending_probation": ("proportion", "one-year proven reoffending after an order start (MoJ), mean of the annual cohorts"),
    "custody_months": ("prisoner-months", "months spent in custody"),
    "children_convicted": ("convictions", "convictions of children (under 18)"),
    "first_time_entrants": ("people", "people convicted (or, with cautions on, cautioned) for the first time"),
    "child_first_time_entrants": ("children", "children (under 18) convicted or cautioned for the first time: fewer means children kept out of the CJS"),
    "iv_families_started": ("families", "families starting the intervention"),
    "iv_family_months": ("family-months", "months engaged families spent in the intervention"),
    "da_incidents": ("incidents", "police-attended domestic-abuse incidents"),
    "da_victim_years": ("victim-years", "victim-years of domestic abuse (victims abused in each year of the run)"),
    "da_children_exposed": ("children", "children exposed to domestic abuse at home for the first time"),
    "hub_victims_started": ("victims", "high-risk victims starting support from the DA hub"),
}


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
    cash = stepped_prison_cash(base["ledger"], iv["ledger"], costs)
    if cash:
        saving = saving.copy()
        saving[("prisons", "fiscal_cashable")] = saving.get(("prisons", "fiscal_cashable"), 0.0) + cash
        saving[("prisons", "fiscal_non_cashable")] -= cash
    for agency in C.SAVING_AGENCIES:
        row[f"savings_by_agency:{agency}"] = float(saving.xs(agency, level="agency").sum()) if agency in saving.index.get_level_values(0) else 0.0
    for kind in C.KINDS:
        row[f"savings_by_kind:{kind}"] = float(saving.xs(kind, level="kind").sum()) if kind in saving.index.get_level_values(1) else 0.0
    fiscal = row["savings_by_kind:fiscal_cashable"] + row["savings_by_kind:fiscal_non_cashable"]
    # benefit payments are transfers (Green Book): a saving to the Exchequer, not to society, so they count in the
    # fiscal balance but not in total savings, the NPV or the BCR
    transfers = sum(row[f"savings_by_agency:{a}"] for a in C.TRANSFER_AGENCIES)
    total = sum(row[f"savings_by_kind:{k}"] for k in C.KINDS) - transfers
    avoided = -row["difference:offences"]
    row["appraisal:intervention_cost"] = iv_cost
    row["appraisal:referred_treatment_cost"] = referred_treatment_pv(iv, params) - referred_treatment_pv(base, params)
    row["appraisal:transfer_savings"] = transfers
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
    # the Green Book's optimism bias on benefits as a point-estimate appraisal applies it: gains reduced by the share
    # for their evidence grade (a loss is not made smaller); beside the headline, whose priors already carry the doubt.
    # The gains are gross of the NHS treatment the referrals cause (a cost of the programme, not reduced with them)
    gains = total + row["appraisal:referred_treatment_cost"]
    adjusted = total - costs.optimism_bias_benefits * max(gains, 0.0)
    row["appraisal:npv_optimism_bias"] = adjusted - iv_cost
    row["appraisal:bcr_optimism_bias"] = adjusted / iv_cost if iv_cost > 0 else float("nan")
    return row


def referred_treatment_pv(run: dict, params) -> float:
    """Present value of the NHS treatment the run's intervention referrals cause (part of the NHS's costs: an NHS
    'saving' below zero), from its monthly series; 0 for a run without its series."""
    if "timeseries" not in run:
        return 0.0
    ts = run["timeseries"]
    return float((C.referred_treatment(ts, replace(run["params"], costs=params.costs)) * C.green_book_factors(ts["month"].to_numpy(), params.costs)).sum())


def stepped_prison_cash(base_ledger: pd.DataFrame, iv_ledger: pd.DataFrame, costs) -> float:
    """Present value of the prison savings that are cashable: year by year, the places saved (the year's prison
    saving over the cost of a place-year) free cash only in whole units of ``prison_places_per_cashable_step``
    places, each saving ``cashable_share_prison`` of its cost; a few places here and there free none."""
    def yearly(led):
        prisons = led[led["agency"] == "prisons"]
        return prisons.groupby(prisons["month"] // 12)["cost_gbp"].sum()

    saving = yearly(base_ledger).sub(yearly(iv_ledger), fill_value=0.0)
    place_year = 12 * C.uprate(costs.prison_cost_per_month, costs)
    places = saving / place_year
    closed = costs.prison_places_per_cashable_step * np.floor(places.clip(lower=0) / costs.prison_places_per_cashable_step + 1e-9)  # not lost to rounding
    cash = closed * place_year * costs.cashable_share_prison
    return float((cash * C.green_book_factors(12 * cash.index.to_numpy(), costs)).sum())


def cumulative_net_benefit(ledger: pd.DataFrame, costs) -> pd.DataFrame:
    """Per replicate and appraisal year (1 = the first): cumulative discounted net benefit, all savings but
    transfers minus the incremental intervention cost (``net``), and fiscal savings (transfers included) minus that
    cost (``net_fiscal``). ``ledger`` holds
    both arms (``scenario`` baseline / intervention) and a ``replicate`` column."""
    led = ledger.assign(year=ledger["month"] // 12 + 1, pv=ledger["cost_gbp"] * C.green_book_factors(ledger["month"].to_numpy(), costs))
    is_iv = led["agency"] == "intervention"
    spend = led[is_iv].groupby(["scenario", "replicate", "year"])["pv"].sum().unstack("scenario", fill_value=0.0)
    total = led[~is_iv & ~led["agency"].isin(C.TRANSFER_AGENCIES)].groupby(["scenario", "replicate", "year"])["pv"].sum().unstack("scenario", fill_value=0.0)
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
        "bcr_optimism_bias": (mean("appraisal:npv_optimism_bias") + cost) / cost if cost > 0 else np.nan,
        "fiscal_return_per_pound": fiscal / cost if cost > 0 else np.nan,
        "cost_per_offence_avoided": cost / avoided if cost > 0 and avoided > 0 else np.nan,
        "payback_year": paid.median() if len(paid) and paid.notna().mean() > 0.5 else np.nan,
    }
    for col in rows.columns:
        if col.startswith(("savings_by_agency:", "savings_by_kind:", "appraisal:")):
            v = rows[col].dropna()
            group, name = col.split(":", 1)
            unit = {"bcr": "ratio", "bcr_optimism_bias": "ratio", "fiscal_return_per_pound": "ratio", "offences_avoided": "offences", "payback_year": "year",
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
        "total_savings": "discounted savings of every kind and agency, benefit payments (transfers) left out",
        "referred_treatment_cost": "NHS treatment the intervention's referrals cause (in the NHS's savings, as a negative)",
        "transfer_savings": "benefit payments not made (DWP): a fiscal saving but a transfer, not a gain to society, so left out of total savings, NPV and BCR",
        "net_cashable_benefit": "cashable fiscal savings minus intervention cost",
        "net_fiscal_benefit": "fiscal savings (cashable and not) minus intervention cost",
        "npv": "net present value: all savings minus intervention cost",
        "bcr": "benefit-cost ratio: mean savings / mean intervention cost (interval: the replicates' own ratios)",
        "fiscal_return_per_pound": "mean fiscal savings per pound of mean intervention cost",
        "offences_avoided": "offences avoided (baseline minus intervention)",
        "cost_per_offence_avoided": "mean intervention cost per mean offence avoided",
        "payback_year": "first year by whose end fiscal savings cover the intervention cost: median over replicates, blank unless most replicates pay back within the run",
        "benefits_exceed_costs": "share of replicates in which the NPV is positive",
        "npv_optimism_bias": "NPV with benefits (savings) reduced for optimism bias by the evidence grade of the effects (costs.optimism_bias_benefits), as a point-estimate appraisal would; the headline NPV leaves it to the effect priors",
        "bcr_optimism_bias": "BCR with benefits reduced for optimism bias (costs.optimism_bias_benefits)",
    }.get(name, name)


#: the paired rows' metrics that the decomposition and the portfolio report, in words: metric -> (label, unit)
PAIRED_METRIC_LABELS = {
    "appraisal:offences_avoided": ("offences avoided", "offences"),
    "difference:convictions": ("change in convictions", "convictions"),
    "difference:custody_months": ("change in prisoner-months", "prisoner-months"),
    "difference:children_convicted": ("change in children's convictions", "convictions"),
    "appraisal:intervention_cost": ("programme cost", "GBP, present value"),
    "appraisal:total_savings": ("savings, all kinds", "GBP, present value"),
    "savings_by_kind:fiscal_cashable": ("cashable savings", "GBP, present value"),
    "appraisal:net_fiscal_benefit": ("net fiscal benefit", "GBP, present value"),
    "appraisal:npv": ("net present value", "GBP, present value"),
    "appraisal:bcr": ("benefit-cost ratio", "ratio"),
}

#: what the decomposition by channel reports: metric of the paired rows -> (label, unit)
CHANNEL_METRICS = {m: PAIRED_METRIC_LABELS[m] for m in (
    "appraisal:offences_avoided", "appraisal:npv", "appraisal:total_savings", "savings_by_kind:fiscal_cashable",
    "difference:children_convicted", "difference:custody_months")}


def channel_contributions(full: pd.DataFrame, arms: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per replicate and channel, what the channel adds: the full intervention minus its arm with that channel at no
    effect (same seeds and draws, so the difference is the channel's, not noise). What every arm pays is a part of
    its own: ``cost``, minus the intervention's cost (NPV), and ``treatment``, minus the NHS treatment its referrals
    cause (NPV and total savings). ``interaction`` is what the channels give
    together beyond the sum of their parts (full minus the sum; zero if they add up), ``total`` the full
    intervention. Long format: replicate, channel, metric, value."""
    out = []
    for metric in CHANNEL_METRICS:
        whole = full.set_index("replicate")[metric]
        parts = {name: whole - arm.set_index("replicate")[metric] for name, arm in arms.items()}
        f = full.set_index("replicate")
        if metric == "appraisal:npv":  # what every arm pays: the intervention and the treatment its referrals cause
            parts["cost"] = -f["appraisal:intervention_cost"]
        if metric in ("appraisal:npv", "appraisal:total_savings") and "appraisal:referred_treatment_cost" in f:
            parts["treatment"] = -f["appraisal:referred_treatment_cost"]
        parts["interaction"] = whole - sum(parts.values())
        parts["total"] = whole
        for name, values in parts.items():
            out.append(pd.DataFrame({"replicate": values.index, "channel": name, "metric": metric, "value": values.to_numpy()}))
    return pd.concat(out, ignore_index=True)


def channel_table(contributions: pd.DataFrame) -> pd.DataFrame:
    """One row per channel and metric: mean, 90% interval over replicates, and the share of the total's mean (for
    money only where the total is a gain, above zero: a share of a loss does not read; for changes in convictions
    and prisoner-months, a fall, wherever the total is not zero)."""
    g = contributions.groupby(["metric", "channel"], sort=False)["value"]
    table = pd.DataFrame({"mean": g.mean(), "p05": g.quantile(0.05), "p95": g.quantile(0.95)}).reset_index()
    total = table[table["channel"] == "total"].set_index("metric")["mean"]
    readable = total.where((total > 0) | (total.index.str.startswith("difference:") & (total != 0)))
    table["share_of_total"] = table["mean"] / table["metric"].map(readable)
    table["label"] = table["metric"].map(lambda m: CHANNEL_METRICS[m][0])
    table["unit"] = table["metric"].map(lambda m: CHANNEL_METRICS[m][1])
    return table[["channel", "metric", "label", "unit", "mean", "p05", "p95", "share_of_total"]]


def switched_off(params, intervention=None):
    """The same scenario with the intervention off (its comparison baseline in a sweep). With ``intervention``
    given, that section (switched off) replaces the scenario's, so grid points that differ only in intervention
    settings share one baseline."""
    return replace(params, intervention=replace(intervention or params.intervention, coverage=0.0))
