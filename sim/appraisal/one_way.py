"""One-way sensitivity analysis (HM Treasury Green Book): each assumption at the low and the high end of the plausible
range its source states, the others at their values, the programme compared with its baseline on the same seeds.

It answers what the Monte Carlo intervals do not: which of the fixed assumptions the answer leans on, and where one
of them would turn it (the switching value: the value at which the NPV would be zero). The drawn inputs (effects,
costs with a distribution) keep their draws, replicate by replicate, and the calibrated values their fit: an
assumption moved alone takes the baseline away from its calibration, as a one-way analysis does by design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..processes import da_hub, domestic_abuse
from ..state.evidence import evidence_grade, ranges_per_element
from ..state.params import Dist, Money
from ..state.scenario import ScenarioError, documented_values, toml_value

#: the outcomes a point is read on, per replicate: the programme's net present value, its net cashable benefit (the
#: cash the plan's partners would see) and offences avoided
OUTCOMES = ("appraisal:npv", "appraisal:net_cashable_benefit", "appraisal:offences_avoided")


@dataclass(frozen=True)
class Assumption:
    """An input graded "assumption" with its value and the ends of its plausible range (a list for a list input)."""

    key: str
    value: Any
    low: Any
    high: Any
    source: str

    def setting(self, end: str) -> str:
        """``section.key=value`` at ``end`` ("low" or "high"), as ``--set`` takes it."""
        v = getattr(self, end)
        return f"{self.key}=" + ("[" + ", ".join(toml_value(x) for x in v) + "]" if isinstance(v, list) else toml_value(v))


def ranged_assumptions(scenario: str | Path, params, only: list[str] | None = None) -> list[Assumption]:
    """Every input of ``scenario`` (and the files it extends) graded "assumption" whose source states a plausible
    range (``evidence.ranges_per_element``), with its value in ``params`` (the scenario as loaded, overrides
    included; an amount of money by its amount, at its price year); drawn inputs (a distribution) and choices
    (true/false, words) are left out. ``only``: these keys alone."""
    out = []
    for key, doc in documented_values(scenario).items():
        if only is not None and key not in only:
            continue
        source = str(doc.get("source", ""))
        section, name = key.split(".", 1)
        value = getattr(getattr(params, section, None), name, None)
        value = value.value if isinstance(value, Money) else value
        if evidence_grade(source) != "assumption" or value is None or isinstance(value, (Dist, bool, str)):
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        ranges = ranges_per_element(source, len(values))
        if ranges is None or any(isinstance(v, (bool, str)) for v in values):
            continue
        whole = all(isinstance(v, int) for v in values)
        low = [math.ceil(lo) if whole else float(lo) for lo, _ in ranges]  # whole numbers stay inside the range
        high = [math.floor(hi) if whole else float(hi) for _, hi in ranges]
        if low == high:
            continue  # nothing to move (a range of one value)
        if isinstance(value, (list, tuple)):
            out.append(Assumption(key, values, low, high, source))
        else:
            out.append(Assumption(key, value, low[0], high[0], source))
    missing = sorted(set(only or ()) - {a.key for a in out})
    if missing:
        raise ScenarioError(f"{scenario}: --only {', '.join(missing)}: not an assumption with a plausible range in this "
                            "scenario (docs/parameters.md grades every input)")
    return out


#: inputs of the drawn start that a simulated past (``population.history_years`` > 0) replaces: its records and
#: sentences are cleared and made again by the past's own flows, so moving these changes only the order of draws
REPLACED_BY_HISTORY = {f"population.{k}" for k in ("prev_convictions_mean_custody", "prev_convictions_mean_probation",
                                                     "prev_convictions_mean_community")}
#: the drawn start's sentences: replaced too, unless the past begins with them (``population.history_from_drawn_stocks``)
SENTENCES_AT_START = {f"population.{k}" for k in ("start_sentence_median_months", "start_sentence_sigma", "start_sentence_short_share",
                                                    "start_sentence_short_median_months", "start_sentence_short_sigma",
                                                    "start_order_median_months", "start_order_sigma")}


def is_idle(params, key: str) -> bool:
    """Whether moving ``key`` could change nothing in ``params`` but the cost of the analysis (and, by the order of
    draws, add noise): it belongs to a process that is off (partner abuse, the DA hub, cautions) or to the drawn
    start's records and sentences, which a simulated past replaces (``REPLACED_BY_HISTORY``, ``SENTENCES_AT_START``)."""
    section, name = key.split(".", 1)
    if section == "domestic_abuse" or (section == "costs" and name.startswith("da_")):
        return not domestic_abuse.is_on(params.domestic_abuse)
    if section == "da_hub":
        return not da_hub.is_on(params.da_hub)
    if key in REPLACED_BY_HISTORY:
        return params.population.history_years > 0
    if key in SENTENCES_AT_START:
        if params.population.history_years > 0 and not params.population.history_from_drawn_stocks:
            return True
        return "short_" in name and name != "start_sentence_short_share" and params.population.start_sentence_short_share == 0
    if key in ("justice.sentence_short_median_months", "justice.sentence_short_sigma"):
        return params.justice.sentence_short_share == 0  # the shorter part of sentences, unused while its share is 0
    return section == "justice" and "caution" in name and not params.justice.cautions


def points(assumptions: list[Assumption]) -> list[list[str]]:
    """The settings of each point: the scenario as it is first, then each assumption at its low and its high end."""
    return [[]] + [[a.setting(end)] for a in assumptions for end in ("low", "high")]


def one_way_table(assumptions: list[Assumption], rows_of: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per assumption: its value and range ends, each outcome's mean over the paired replicates at the low
    end, as it is and at the high end (``rows_of[k]``: per-replicate rows of point k, as ``points`` orders them),
    the NPV's swing (high minus low) with its Monte Carlo standard error, whether the NPV's sign changes within
    the range, and the switching value (where the NPV would be zero, along the piecewise-linear path through the
    three points; scalar inputs only). Sorted by how far apart the three NPVs are (an assumption whose two ends
    both lower the NPV matters too)."""
    central = rows_of[0]
    records = []
    for i, a in enumerate(assumptions):
        low, high = rows_of[1 + 2 * i], rows_of[2 + 2 * i]
        rec = {"key": a.key, "value": _text(a.value), "low": _text(a.low), "high": _text(a.high)}
        for outcome in OUTCOMES:
            name = outcome.removeprefix("appraisal:")
            rec[f"{name}_low"], rec[f"{name}_central"], rec[f"{name}_high"] = (low[outcome].mean(), central[outcome].mean(),
                                                                            high[outcome].mean())
        swing = (high["appraisal:npv"].to_numpy() - low["appraisal:npv"].to_numpy())  # paired: same seeds at both ends
        rec["npv_swing"] = float(swing.mean())
        rec["npv_swing_se"] = float(swing.std(ddof=1) / math.sqrt(len(swing))) if len(swing) > 1 else float("nan")
        npv = (rec["npv_low"], rec["npv_central"], rec["npv_high"])
        rec["npv_changes_sign"] = bool(min(npv) < 0 < max(npv))
        rec["switching_value"] = switching_value((a.low, a.value, a.high), npv)
        records.append(rec)
    table = pd.DataFrame(records)
    if len(table):
        spread = table[["npv_low", "npv_central", "npv_high"]].max(axis=1) - table[["npv_low", "npv_central", "npv_high"]].min(axis=1)
        table = table.reindex(spread.sort_values(ascending=False).index).reset_index(drop=True)
    return table


def switching_value(xs: tuple, npv: tuple) -> float:
    """The input's value at which the NPV crosses zero, along straight lines through (low, NPV there), (value, NPV)
    and (high, NPV there); NaN where it does not cross within the range or the input is a list."""
    if any(isinstance(x, (list, tuple)) for x in xs):
        return float("nan")
    order = np.argsort(xs)
    x, y = np.asarray(xs, float)[order], np.asarray(npv, float)[order]
    for k in range(2):
        if y[k] == 0:
            return float(x[k])
        if y[k] * y[k + 1] < 0:
            return float(x[k] + (x[k + 1] - x[k]) * y[k] / (y[k] - y[k + 1]))
    return float(x[2]) if y[2] == 0 else float("nan")


def _text(v) -> str:
    """A value as the table shows it: a list whose elements are all equal as "each x"."""
    if isinstance(v, (list, tuple)):
        return f"each {toml_value(v[0])}" if len(v) > 1 and len(set(v)) == 1 else "[" + ", ".join(toml_value(x) for x in v) + "]"
    return toml_value(v)


def one_way_words(table: pd.DataFrame, reps: int) -> str:
    """The answer in words: the NPV as it is, whether any assumption turns its sign within its range, and the few
    that move it most."""
    if table.empty:
        return "No assumption with a plausible range was varied."
    central = table["npv_central"].iloc[0]
    turning = table[table["npv_changes_sign"]]
    lines = [f"NPV as the scenario stands: GBP {central / 1e6:,.1f}m (mean of {reps} paired replicates)."]
    if turning.empty:
        lines.append(f"No single assumption, moved alone across its plausible range, turns the NPV's sign ({len(table)} varied).")
    else:
        lines.append(f"{len(turning)} of {len(table)} assumptions turn the NPV's sign within their range: "
                     + "; ".join(f"{r.key} (zero at about {r.switching_value:.3g})" if not math.isnan(r.switching_value)
                                 else r.key for r in turning.itertuples()) + ".")
    top = table.head(3)
    lines.append("Moving it most (the NPV with the assumption at the low end, then at the high end): " + "; ".join(
        f"{r.key} {r.low} to {r.high}: GBP {r.npv_low / 1e6:,.1f}m, {r.npv_high / 1e6:,.1f}m" for r in top.itertuples()) + ".")
    simulated = table.loc[table["npv_swing_se"] > 1.0, "npv_swing_se"]  # (a unit cost's points are exact: no error)
    if len(simulated):
        noise = 1.96 * float(simulated.median()) / 1e6
        lines.append(f"Chance alone moves a point's NPV against another's by up to about GBP {noise:,.1f}m (1.96 times the "
                     f"median standard error of the paired differences, {reps} replicates): smaller differences are not "
                     "told apart from chance; more replicates narrow it.")
    return "\n".join(lines)
