"""A portfolio of programmes against one baseline: each programme alone, their combination, and the interaction,
what the combination gives beyond the sum of the programmes alone, replicate by replicate.

Every arm is a paired comparison with the baseline on the same replicate seeds (``sim.runs.paired``), so the
interaction of a replicate, the combination's incremental outcome minus the sum of the programmes', is measured on
the same people and random numbers: its interval is the Monte Carlo band of the interaction itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .compare import PAIRED_METRIC_LABELS

#: what a portfolio reports: metric of the paired rows -> (label, unit); all but the BCR add up across programmes
PORTFOLIO_METRICS = {m: PAIRED_METRIC_LABELS[m] for m in (
    "appraisal:offences_avoided", "difference:convictions", "difference:custody_months", "difference:children_convicted",
    "appraisal:intervention_cost", "appraisal:total_savings", "appraisal:net_fiscal_benefit", "appraisal:npv", "appraisal:bcr")}

SUM = "sum of programmes"
INTERACTION = "interaction"


def _bcr(savings, cost):
    return np.where(cost > 0, savings / np.where(cost > 0, cost, 1.0), np.nan)


def portfolio_replicates(rows: dict[str, pd.DataFrame], programmes: list[str], combination: str) -> pd.DataFrame:
    """Per replicate, arm and metric (long: replicate, seed, arm, kind, metric, value). ``rows`` holds each arm's
    paired metrics (``sim.appraisal.compare.appraise`` rows with ``replicate`` and ``seed``). Arms: each programme,
    the combination, the sum of the programmes, and the interaction, combination minus that sum. For the BCR the
    sum of the programmes is their savings over their costs (both summed), and the interaction the combination's
    BCR minus it."""
    by_arm = {name: rows[name].set_index("replicate") for name in [*programmes, combination]}
    seeds = by_arm[combination]["seed"]
    out = []

    def add(arm, kind, metric, values):
        out.append(pd.DataFrame({"replicate": seeds.index, "seed": seeds.to_numpy(), "arm": arm, "kind": kind,
                                 "metric": metric, "value": np.asarray(values, dtype=float)}))

    for metric in PORTFOLIO_METRICS:
        for name in programmes:
            add(name, "programme", metric, by_arm[name][metric])
        whole = by_arm[combination][metric]
        add(combination, "combination", metric, whole)
        if metric == "appraisal:bcr":
            parts = _bcr(sum(by_arm[n]["appraisal:total_savings"] for n in programmes), sum(by_arm[n]["appraisal:intervention_cost"] for n in programmes))
        else:
            parts = sum(by_arm[n][metric] for n in programmes).to_numpy()
        add(SUM, "sum", metric, parts)
        # (floating-point sums of the parts differ from the whole in the last digits: below a millionth of the
        # whole's size an interaction is none)
        interaction = whole.to_numpy() - np.asarray(parts, dtype=float)
        scale = np.maximum(np.abs(whole.to_numpy()), np.abs(np.asarray(parts, dtype=float)))
        add(INTERACTION, "interaction", metric, np.where(np.abs(interaction) <= 1e-6 * scale, 0.0, interaction))
    return pd.concat(out, ignore_index=True)


def _share(values: pd.Series, sign: int) -> float:
    """The share of the (defined) values above zero (``sign`` 1) or below it (-1); NaN if none is defined."""
    v = values.dropna()
    return float((np.sign(v) == sign).mean()) if len(v) else np.nan


def portfolio_table(long: pd.DataFrame) -> pd.DataFrame:
    """One row per arm and metric: mean, 90% interval over replicates, and the shares of replicates above and below
    zero (for the interaction: the chance that the combination gives more, or less, than the sum of its parts; left
    out for an arm's BCR, where they say nothing). A BCR's central value is a ratio of means, as in ``summary_table``."""
    keys = long.groupby(["arm", "metric"], sort=False)
    g = keys["value"]
    table = pd.DataFrame({"kind": keys["kind"].first(), "mean": g.mean(), "p05": g.quantile(0.05), "p95": g.quantile(0.95),
                          "p_above_zero": g.apply(lambda v: _share(v, 1)), "p_below_zero": g.apply(lambda v: _share(v, -1))}).reset_index()
    mean = table.set_index(["arm", "metric"])["mean"]
    is_bcr = table["metric"] == "appraisal:bcr"
    for i in table.index[is_bcr & (table["kind"] != "interaction")]:
        arm = table.at[i, "arm"]
        table.at[i, "mean"] = _bcr(mean[(arm, "appraisal:total_savings")], mean[(arm, "appraisal:intervention_cost")]).item()
        table.loc[i, ["p_above_zero", "p_below_zero"]] = np.nan
    ratios = table[is_bcr].set_index("kind")["mean"]
    table.loc[is_bcr & (table["kind"] == "interaction"), "mean"] = ratios.get("combination", np.nan) - ratios.get("sum", np.nan)
    table["label"] = table["metric"].map(lambda m: PORTFOLIO_METRICS[m][0])
    table["unit"] = table["metric"].map(lambda m: PORTFOLIO_METRICS[m][1])
    return table[["arm", "kind", "metric", "label", "unit", "mean", "p05", "p95", "p_above_zero", "p_below_zero"]]
