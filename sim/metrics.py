"""What the model measures: the monthly series, and outcome metrics by their published definitions.

The cohort metrics take the exported microdata (people and events tables), so anyone can check them against
their own code: they are computed from what the simulation produced, never set from a target.
All counts are weighted, i.e. scaled back to real people.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import intervention
from .people import CUSTODY, LICENCE, PROBATION

#: flows counted during the month (model.tally) and stocks read at its end
FLOWS = (
    "offences",
    "offences_proven",
    "offences_by_previously_convicted",
    "offences_by_supervised",
    "convictions",
    "first_time_entrants",
    "children_convicted",
    "custody_starts",
    "releases",
    "recalls",
    "order_starts",
    "births",
    "deaths",
    "exits",
    "arrivals",
    "iv_eligible",
    "iv_referrals",
    "iv_starts",
    "iv_engaged_starts",
    "iv_completions",
)
STOCKS = (
    "population",
    "children",
    "custody",
    "licence",
    "probation",
    "ever_convicted_adults",
    "children_with_parent_in_custody",
    "iv_active_families",
)


def series_names(params) -> tuple[str, ...]:
    """Columns of the monthly series: the fixed stocks and flows, offences by type and adults with each need."""
    by_type = tuple(f"offences_{t}" for t in params.offending.offence_types)
    by_need = tuple(f"adults_with_{name}" for name in params.needs.names)
    return ("month", *STOCKS, *by_need, *FLOWS, *by_type)


def monthly_record(model) -> dict[str, float]:
    """One row of the monthly series: stocks at the end of the month plus this month's flows."""
    p = model.people
    n = p.n
    present = p.present[:n]
    w = np.where(present, p.weight[:n], 0.0)
    status = p.status[:n]
    child = p.age_years(model.month) < model.params.family.age_adult
    kids = np.flatnonzero(child & present)
    rec = {
        "month": model.month,
        "population": w.sum(),
        "children": w[child].sum(),
        "custody": w[status == CUSTODY].sum(),
        "licence": w[status == LICENCE].sum(),
        "probation": w[status == PROBATION].sum(),
        "ever_convicted_adults": w[~child & (p.prev_convictions[:n] > 0)].sum(),
        "children_with_parent_in_custody": w[kids[parent_in_custody(p, kids)]].sum(),
        "iv_active_families": intervention.active_families(model),
    }
    # adults with each need: weight by needs bit mask in one pass, then read off each bit
    by_mask = np.bincount(p.needs[:n], weights=np.where(child, 0.0, w), minlength=256)
    masks = np.arange(256)
    for j, name in enumerate(model.params.needs.names):
        rec[f"adults_with_{name}"] = by_mask[(masks >> j) & 1 == 1].sum()
    for name in series_names(model.params):
        if name not in rec:
            rec[name] = float(model.tally.get(name, 0.0))
    return rec


def parent_in_custody(p, rows: np.ndarray) -> np.ndarray:
    """Boolean per row of ``rows``: their father or mother is present and in custody."""
    out = np.zeros(len(rows), bool)
    for parent in (p.father[rows], p.mother[rows]):
        known = parent >= 0
        r = parent[known]
        out[known] |= p.present[r] & (p.status[r] == CUSTODY)
    return out


# --- cohort metrics on microdata ------------------------------------------------------------------------------

#: months from the index event to the first month whose offences count as reoffences. Within a month the
#: processes run justice (releases) -> offending -> courts (sentences), so offences in a release month come after
#: the release, but offences in the month of a court order came before the court's decision.
FOLLOW_UP_OFFSET = {"release": 0, "order_start": 1, "conviction": 1, "custody_start": 1}


def proven_reoffending(
    people: pd.DataFrame,
    events: pd.DataFrame,
    index_event: str,
    cohort_start: int,
    cohort_end: int,
    follow_up_months: int = 12,
    waiting_months: int = 6,
    adults_only: bool = True,
    adult_age_years: float = 18,
) -> dict[str, float]:
    """MoJ one-year proven reoffending (binary rate and frequency) for a cohort.

    Cohort: people whose first ``index_event`` ("release" from custody, or "order_start") falls in months
    [cohort_start, cohort_end), aged ``adult_age_years`` or more then if ``adults_only``. Follow-up starts at
    f = index month + ``FOLLOW_UP_OFFSET[index_event]``. A proven reoffence is an offence committed in months
    [f, f + 12) that is convicted before month f + 12 + 6 (the follow-up plus the waiting period). Weighted by
    ``people.weight`` when present. Returns the rate, reoffences per offender and per reoffender, cohort size.
    """
    idx = events[(events["event"] == index_event) & (events["month"] >= cohort_start) & (events["month"] < cohort_end)]
    first = idx.groupby("person_id", observed=True)["month"].min().rename("index_month").reset_index()
    info = people.set_index("person_id")
    if adults_only:
        age = (first["index_month"].to_numpy() - info.loc[first["person_id"], "birth_month"].to_numpy()) / 12.0
        first = first[age >= adult_age_years]
    first = first.assign(follow_up_start=first["index_month"] + FOLLOW_UP_OFFSET.get(index_event, 1))
    weight = info.loc[first["person_id"], "weight"].to_numpy() if "weight" in info else np.ones(len(first))
    conv = events[events["event"] == "conviction"][["person_id", "month", "offence_month"]]
    merged = conv.merge(first, on="person_id")
    om = merged["offence_month"].astype("int64")
    f = merged["follow_up_start"]
    proven = merged[(om >= f) & (om < f + follow_up_months) & (merged["month"] < f + follow_up_months + waiting_months)]
    n_reoff = proven.groupby("person_id").size()
    counts = n_reoff.reindex(first["person_id"], fill_value=0).to_numpy()
    total_w = weight.sum()
    reoffenders_w = (weight * (counts > 0)).sum()
    return {
        "rate": float(reoffenders_w / total_w) if total_w else float("nan"),
        "reoffences_per_offender": float((weight * counts).sum() / total_w) if total_w else float("nan"),
        "reoffences_per_reoffender": float((weight * counts).sum() / reoffenders_w) if reoffenders_w else float("nan"),
        "cohort_size": float(total_w),
        "cohort_agents": int(len(first)),
    }


def proven_reoffending_annual_cohorts(
    people: pd.DataFrame, events: pd.DataFrame, index_event: str, months: int, follow_up_months: int = 12,
    waiting_months: int = 6, adult_age_years: float = 18,
) -> dict[str, float]:
    """The MoJ rate measured as the MoJ publishes it, by annual cohort: one cohort per 12 months whose whole
    follow-up and waiting period fit in a run of ``months``; returns each year's rate and the cohort-size-weighted
    mean (``rate``)."""
    offset = FOLLOW_UP_OFFSET.get(index_event, 1)
    years = max(0, (months - follow_up_months - waiting_months - offset) // 12)
    out, total, weighted = {}, 0.0, 0.0
    for y in range(years):
        r = proven_reoffending(people, events, index_event, 12 * y, 12 * y + 12, follow_up_months, waiting_months, adult_age_years=adult_age_years)
        out[f"rate_year_{y}"] = r["rate"]
        if r["cohort_size"] > 0:
            total += r["cohort_size"]
            weighted += r["rate"] * r["cohort_size"]
    out["rate"] = weighted / total if total else float("nan")
    out["cohort_years"] = years
    return out


def share_of_offences_by_previously_convicted(people: pd.DataFrame, events: pd.DataFrame, start: int = 0, end: int | None = None) -> float:
    """Share of all offences (detected or not) committed by someone with a conviction before the offence month
    (a conviction before the run, or a conviction event in an earlier month)."""
    end = events["month"].max() + 1 if end is None else end
    off = events[(events["event"] == "offence") & (events["month"] >= start) & (events["month"] < end)][["person_id", "month"]]
    first_conv = events[events["event"] == "conviction"].groupby("person_id", observed=True)["month"].min()
    info = people.set_index("person_id")
    before = info.loc[off["person_id"], "convicted_before_start"].to_numpy()
    fc = first_conv.reindex(off["person_id"]).to_numpy()
    known = before | (fc < off["month"].to_numpy())
    w = info.loc[off["person_id"], "weight"].to_numpy() if "weight" in info else np.ones(len(off))
    return float((w * known).sum() / w.sum()) if len(off) else float("nan")


def sons_convicted_by_age(people: pd.DataFrame, events: pd.DataFrame, age_years: float = 40, last_month: int | None = None) -> dict[str, float]:
    """Share of sons convicted by ``age_years``, by whether their father was ever convicted (before the run or
    in it, up to the son's reaching that age). Only sons born in a known month who reach the age within the run."""
    last_month = events["month"].max() if last_month is None else last_month
    age_m = int(round(age_years * 12))
    conv = events[events["event"] == "conviction"].groupby("person_id", observed=True)["month"].min()
    info = people.set_index("person_id")
    sons = people[(people["sex"] == "M") & people["father_id"].notna() & (people["birth_month"] + age_m <= last_month)]
    if sons.empty:
        return {"sons": 0, "rate_father_convicted": float("nan"), "rate_father_not_convicted": float("nan")}
    horizon = sons["birth_month"].to_numpy() + age_m
    son_conv = conv.reindex(sons["person_id"]).to_numpy()
    son_before = info.loc[sons["person_id"], "convicted_before_start"].to_numpy()
    son_convicted = son_before | (son_conv <= horizon)
    fathers = sons["father_id"].astype("int64").to_numpy()
    fa_conv = conv.reindex(fathers).to_numpy()
    fa_before = info["convicted_before_start"].reindex(fathers).fillna(False).to_numpy(bool)
    father_convicted = fa_before | (fa_conv <= horizon)
    w = sons["weight"].to_numpy() if "weight" in sons else np.ones(len(sons))

    def rate(mask):
        return float((w[mask] * son_convicted[mask]).sum() / w[mask].sum()) if mask.any() else float("nan")

    return {
        "sons": int(len(sons)),
        "rate_father_convicted": rate(father_convicted),
        "rate_father_not_convicted": rate(~father_convicted),
        "sons_father_convicted": int(father_convicted.sum()),
    }
