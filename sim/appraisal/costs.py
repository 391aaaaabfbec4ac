"""The cost ledger: who bears what, month by month, in the Community Budgets cost-benefit language.

Costs are priced from the monthly series (so a run can be re-costed without re-running it): offences by type
(harm to victims and society, victims' NHS treatment), proven offences (police), convictions (courts, CPS,
legal aid), prisoner-, order- and licence-months, recalls, convictions of children (youth justice), child-months
with a parent in custody (children's services), need-months (NHS treatment, DWP benefits, lost output), the NHS
treatment the intervention's referrals cause, and the intervention itself. Every unit cost is uprated from its price year to ``costs.base_price_year`` with the GDP
deflator. Each agency's costs are split into fiscal cashable and fiscal non-cashable by its cashable share (prisons:
all non-cashable here; a comparison makes whole closed units cashable);
harm to victims is social, property and lost output economic. Prisoners are not counted for benefits or lost output
(the prison cost covers them); children in custody or supervised are priced as youth justice. Discounting is
annual (Green Book): costs in year t of the appraisal (months 12t..12t+11) are multiplied by (1 + r)^-t, with r
3.5% to year 30 and 3.0% after.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..processes import da_hub, domestic_abuse
from ..processes.intervention import is_on
from ..state.params import DA_COST_PARTS, Money

#: who bears the costs (the intervention's own cost last; "savings" are over the others)
SAVING_AGENCIES = ("police", "courts", "prisons", "probation", "youth_justice", "local_authority", "nhs", "dwp",
                   "wider_economy", "victims_and_society")
AGENCIES = (*SAVING_AGENCIES, "intervention")
KINDS = ("fiscal_cashable", "fiscal_non_cashable", "economic", "social")
#: agencies whose costs are transfers between people (benefit payments): fiscal, but no cost to society as a whole
TRANSFER_AGENCIES = ("dwp",)
FISCAL = ("fiscal_cashable", "fiscal_non_cashable")
#: the parts of a victim-year of domestic abuse (``costs.da_cost_per_victim_year``, in this order) and who bears each
#: (the police response is costed per incident, the criminal legal costs from the simulated courts)
DA_COMPONENTS = dict(zip(DA_COST_PARTS, (("victims_and_society", "social"), ("wider_economy", "economic"), ("nhs", None),
                                          ("local_authority", None), ("courts", None))))


def uprate(amount: Money, costs) -> np.ndarray | float:
    """An amount at its price year, in ``costs.base_price_year`` prices (GDP deflator ratio)."""
    index = dict(zip(costs.deflator_years, costs.deflator_index))
    factor = index[costs.base_price_year] / index[amount.price_year]
    value = np.asarray(amount.value, dtype=float) if isinstance(amount.value, tuple) else float(amount.value)
    return value * factor


def discount_factors(months: np.ndarray, rate: float, long_rate: float | None = None, long_after_years: int = 30) -> np.ndarray:
    """Green Book annual discounting: month m is in appraisal year t = m // 12, discounted by (1 + rate)^-t up to
    year ``long_after_years`` and by ``long_rate`` a year after that (the declining schedule)."""
    t = np.asarray(months) // 12
    if long_rate is None:
        return (1.0 + rate) ** -t
    early = np.minimum(t, long_after_years)
    return (1.0 + rate) ** -early * (1.0 + long_rate) ** -(t - early)


def green_book_factors(months: np.ndarray, costs) -> np.ndarray:
    """Discount factors with the scenario's rates (3.5% to year 30, then 3.0%); ``costs`` is the [costs] section
    (or anything with ``discount_rate`` and ``discount_rate_after_30_years``), or a single constant rate."""
    if isinstance(costs, (int, float)):
        return discount_factors(months, float(costs))
    return discount_factors(months, costs.discount_rate, costs.discount_rate_after_30_years)


def _fiscal(agency: str, amount: np.ndarray, cashable_share: float) -> list[tuple[str, str, np.ndarray]]:
    return [(agency, "fiscal_cashable", amount * cashable_share), (agency, "fiscal_non_cashable", amount * (1 - cashable_share))]


def ledger(ts: pd.DataFrame, params) -> pd.DataFrame:
    """Monthly costs in base-year prices, undiscounted: a long table (month, agency, kind, cost_gbp)."""
    c, o, nd = params.costs, params.offending, params.needs
    months = ts["month"].to_numpy()
    zero = np.zeros(len(ts))
    crime_unit = uprate(c.crime_cost_by_type, c)
    crime = sum((ts[f"offences_{t}"].to_numpy() * crime_unit[i] for i, t in enumerate(o.offence_types)), zero)
    nhs_unit = uprate(c.nhs_cost_per_month_by_need, c)
    need_months_nhs = sum((ts[f"adults_with_{name}"].to_numpy() * nhs_unit[j] for j, name in enumerate(nd.names)), zero)
    unemployed = ts["adults_with_employment"].to_numpy() if "employment" in nd.names else zero
    social_share = 1.0 - c.crime_cost_share_economic - c.crime_cost_share_health - c.crime_cost_share_response
    rows: list[tuple[str, str, np.ndarray]] = [
        ("victims_and_society", "social", crime * social_share),
        ("victims_and_society", "economic", crime * c.crime_cost_share_economic),
        ("wider_economy", "economic", unemployed * uprate(c.lost_output_per_month_unemployed, c)),
    ]
    rows += _fiscal("nhs", crime * c.crime_cost_share_health + need_months_nhs + referred_treatment(ts, params), c.cashable_share_nhs)
    cautions = ts["cautions"].to_numpy() if "cautions" in ts else 0.0  # (runs written before cautions: none)
    police = (ts["offences_proven"].to_numpy() * uprate(c.police_cost_per_proven_offence, c)
              + cautions * uprate(c.police_cost_per_caution, c))
    rows += _fiscal("police", police, c.cashable_share_police)
    rows += _fiscal("courts", ts["convictions"].to_numpy() * uprate(c.court_cost_per_conviction, c), c.cashable_share_courts)
    # prison places free cash only when whole units close, which only a comparison of two runs can tell
    # (``compare.stepped_prison_cash``): here every prisoner-month is non-cashable
    rows += _fiscal("prisons", ts["custody"].to_numpy() * uprate(c.prison_cost_per_month, c), 0.0)
    probation = (
        ts["probation"].to_numpy() * uprate(c.probation_order_cost_per_month, c)
        + ts["licence"].to_numpy() * uprate(c.licence_cost_per_month, c)
        + ts["recalls"].to_numpy() * uprate(c.recall_cost, c)
    )
    rows += _fiscal("probation", probation, c.cashable_share_probation)
    youth = (
        ts["children_convicted"].to_numpy() * uprate(c.youth_justice_cost_per_conviction, c)
        + ts["youth_supervision"].to_numpy() * uprate(c.youth_supervision_cost_per_month, c)
        + ts["youth_custody"].to_numpy() * uprate(c.youth_custody_cost_per_month, c)
    )
    rows += _fiscal("youth_justice", youth, c.cashable_share_youth_justice)
    local = ts["children_with_parent_in_custody"].to_numpy() * uprate(c.children_services_cost_per_child_month_parent_in_custody, c)
    rows += _fiscal("local_authority", local, c.cashable_share_local_authority)
    rows += _fiscal("dwp", unemployed * uprate(c.dwp_cost_per_month_unemployed, c), c.cashable_share_dwp)
    rows += domestic_abuse_costs(ts, params)
    rows.append(("intervention", "fiscal_cashable", intervention_cost(ts, params) + hub_cost(ts, params)))
    n = len(months)  # one frame of every line item's months (building a frame per item costs more than the sums)
    out = pd.DataFrame({"month": np.tile(months, len(rows)), "agency": np.repeat([a for a, _, _ in rows], n),
                        "kind": np.repeat([k for _, k, _ in rows], n), "cost_gbp": np.concatenate([v for _, _, v in rows])})
    return out.groupby(["month", "agency", "kind"], as_index=False, sort=True)["cost_gbp"].sum()


def domestic_abuse_costs(ts: pd.DataFrame, params) -> list[tuple[str, str, np.ndarray]]:
    """Line items of domestic abuse: the police response to each incident, each victim-year's costs by component
    (``DA_COMPONENTS``; Home Office costs DA per victim a year), and domestic homicide as an expected value per
    incident (physical and emotional harm: it is never simulated)."""
    c = params.costs
    if "da_incidents" not in ts or not domestic_abuse.is_on(params.domestic_abuse):
        return []
    incidents, victim_years = ts["da_incidents"].to_numpy(), ts["da_victim_years"].to_numpy()
    shares = {"police": c.cashable_share_police, "nhs": c.cashable_share_nhs, "local_authority": c.cashable_share_local_authority,
              "courts": c.cashable_share_courts}
    rows = _fiscal("police", incidents * uprate(c.da_police_cost_per_incident, c), c.cashable_share_police)
    per_year = uprate(c.da_cost_per_victim_year, c)
    for (agency, kind), unit in zip(DA_COMPONENTS.values(), per_year):
        rows += [(agency, kind, victim_years * unit)] if kind else _fiscal(agency, victim_years * unit, shares[agency])
    rows.append(("victims_and_society", "social", incidents * c.da_homicide_risk_per_incident * uprate(c.da_cost_per_homicide, c)))
    return rows


def hub_cost(ts: pd.DataFrame, params) -> np.ndarray:
    """Monthly cost of the DA hub (with the optimism-bias uplift): set-up in month 0, its fixed running cost while it
    takes victims on and until the last of them finishes (``funded_years``, then ``support_months``), and each
    victim it takes on; zero when it is off."""
    hub, c = params.da_hub, params.costs
    if not da_hub.is_on(hub):
        return np.zeros(len(ts))
    months = ts["month"].to_numpy()
    running = months < 12 * hub.funded_years + hub.support_months
    cost = ts["hub_starts"].to_numpy() * uprate(hub.cost_per_victim_gbp, c) + running * uprate(hub.fixed_cost_per_year_gbp, c) / 12.0
    cost = cost + np.where(months == 0, uprate(hub.setup_cost_gbp, c), 0.0)
    return cost * (1.0 + c.optimism_bias_intervention)


def referred_treatment(ts: pd.DataFrame, params) -> np.ndarray:
    """Monthly NHS treatment the intervention causes: in each engaged family in it, the offender's needs at the
    offenders' prevalence, priced at the NHS cost of a need-month, for the share the keyworker newly refers."""
    iv, c, nd = params.intervention, params.costs, params.needs
    if not is_on(iv) or iv.treatment_referral_share == 0:
        return np.zeros(len(ts))
    per_family = iv.treatment_referral_share * float(np.dot(nd.prevalence_offenders, uprate(c.nhs_cost_per_month_by_need, c)))
    return ts["iv_active_families"].to_numpy() * per_family


def intervention_cost(ts: pd.DataFrame, params) -> np.ndarray:
    """Monthly cost of the intervention (base-year prices, with any optimism-bias uplift); zero when it is off.

    Set-up in month 0, the team's fixed running cost every month while it takes referrals and until its last
    families could finish (``referral_years``, then ``max_wait_months`` and ``duration_months``), and keyworker hours for every engaged
    family in the intervention that month (``iv_active_families`` x hours x cost per hour).
    """
    iv, c = params.intervention, params.costs
    months = ts["month"].to_numpy()
    if not is_on(iv):
        return np.zeros(len(ts))
    per_family_month = iv.intensity_hours_per_month * uprate(iv.cost_per_keyworker_hour_gbp, c)
    running = months < 12 * iv.referral_years + iv.max_wait_months + iv.duration_months
    cost = ts["iv_active_families"].to_numpy() * per_family_month + np.where(running, uprate(iv.fixed_cost_per_year_gbp, c) / 12.0, 0.0)
    cost = cost + np.where(months == 0, uprate(iv.setup_cost_gbp, c), 0.0)
    return cost * (1.0 + c.optimism_bias_intervention)


def present_value(led: pd.DataFrame, costs) -> pd.DataFrame:
    """Discounted total by agency and kind (``costs``: the scenario's [costs], for its discount rates)."""
    d = led.assign(pv_gbp=led["cost_gbp"] * green_book_factors(led["month"].to_numpy(), costs))
    return d.groupby(["agency", "kind"], as_index=False)["pv_gbp"].sum()
