"""Domestic abuse between partners: perpetrators, victims, police-attended incidents, and children exposed.

Who: a share of men and (fewer) women would abuse a partner (``perpetrator_share_*``, more likely the higher
their offending propensity: the overlap of partner abuse and general offending), drawn once per person from their
id, so the same people are perpetrators in every scenario. A perpetrator's own rate is lognormal (mean 1,
``rate_frailty_sigma``): incidents concentrate on a few couples, which is what makes victimisation repeat.

What, each month: a perpetrator at liberty with a partner at home (or a former partner, for
``post_separation_months`` after a separation, at ``post_separation_rr``) has Poisson(rate) police-attended
incidents against them, rate = ``incidents_per_month_base`` x own rate x age-crime curve ^ ``age_curve_power`` x
escalation ``(1 + escalation_per_incident) ^ n``, n the incidents of the current run (no gap over
``repeat_window_months``, at most ``escalation_max_incidents``) x the DA hub's effect on a supported victim
(``sim.processes.da_hub``). Each incident is a ``da_incident`` event (the perpetrator's row, the victim's id);
``p_crime`` of them are recorded crimes, of which ``p_proven`` open a court case as a violent offence (the
courts, sentences and their costs are the justice pathway's). An incident within ``repeat_window_months`` of the
victim's last is a repeat (the MARAC definition); a victim whose run reaches ``high_risk_min_incidents`` is assessed
high-risk (the hub's referrals); a victim abused in a year of the run is a victim-year (what DA is costed by). The
start's simulated past runs it too, unlogged (``past_month``; with no simulated past, ``prime`` runs the year before
the start), so all this, and the DA offenders under sentence, are at their steady level from month 0.

Children under the adult age living with the victim (or with the perpetrator, when the couple live together) are
exposed; from then their offending hazard is multiplied by ``exposure_rr_offending`` up to
``exposure_effect_until_age`` (``family.family_multipliers``). The offending bound allows for exposure in every
child, so an exposure never redraws anyone's candidate offences and a programme that prevents it keeps common
random numbers with the baseline.

Homicide is far too rare to simulate at this scale (a few a year in Essex): its cost is an expected value per
incident (``sim.appraisal.costs``), and nobody dies of it in the model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from ..state.people import CUSTODY, NO_ONE
from ..state.rng import NEVER, poisson_at, uniform_at
from . import da_hub
from .exits import home_parent
from .intervention import strength_of
from .offending import geometric_lag


def is_on(da) -> bool:
    return da.incidents_per_month_base > 0 and (da.perpetrator_share_male > 0 or da.perpetrator_share_female > 0)


def draw_perpetrators(model, rows: np.ndarray) -> None:
    """Who among ``rows`` (newcomers) would abuse a partner, and their own rate: from keyed draws of their ids
    (month 0's stream whenever they arrive, so a person's trait is the same in every scenario and month)."""
    p, da, pop = model.people, model.params.domestic_abuse, model.params.population
    if not len(rows):
        return
    ids = p.person_id[rows]
    share = np.where(p.sex_male[rows], da.perpetrator_share_male, da.perpetrator_share_female)
    z = np.log(p.innate_propensity[rows] / pop.propensity_median_general) / max(pop.propensity_sigma_general, 1e-9)
    with np.errstate(divide="ignore"):  # (a share of 0: log-odds of minus infinity, nobody)
        logit = np.log(share / np.maximum(1.0 - share, 1e-12)) + da.perpetrator_log_odds_per_sd_propensity * z
    perpetrator = (share > 0) & (model.draws.uniform("da_perpetrator", 0, ids) < 1.0 / (1.0 + np.exp(-logit)))
    s = da.rate_frailty_sigma
    own = np.exp(s * model.draws.normal("da_rate", 0, ids) - s * s / 2)
    p.da_rate[rows] = np.where(perpetrator, own, 0.0)
    model.da_perpetrators = np.concatenate([model.da_perpetrators, rows[perpetrator]])


def step(model) -> None:
    """Draw the month's incidents, record them, open court cases for the proven crimes, mark the children exposed,
    and pass the high-risk victims to the hub."""
    draw_perpetrators(model, model.people.new_rows("domestic_abuse"))
    da_hub.progress(model)
    if is_on(model.params.domestic_abuse):
        _month(model, model.month, record=True)
    da_hub.count(model)


def prime(model, months: int = 12) -> None:
    """Before the run: who would abuse a partner (drawn with this model's own values) and, unless the start's
    simulated past already ran partner abuse (``Start.past_has_partner_abuse``), the ``months`` before the start, so
    that runs of incidents, victims' histories, children's exposure and the DA court cases are at their steady level
    from month 0 (as ``offending.prime_court_queue`` does for other offences; the partnerships and statuses are those
    at the start). Nothing is logged or counted."""
    draw_perpetrators(model, model.people.new_rows("domestic_abuse"))
    if is_on(model.params.domestic_abuse) and not model.past_has_partner_abuse:
        for month in range(-months, 0):
            _month(model, month, record=False)


def past_month(past) -> None:
    """A month of the start's simulated past (``sim.start._Past``, its perpetrators drawn when it begins): incidents,
    their court cases (all of them: the past's courts hear those due before the start), victims' runs and children's
    exposure; nothing logged or counted."""
    _month(past, past.month, record=False, courts_sit=True)


def _month(model, month: int, record: bool, courts_sit: bool = False) -> None:
    """One month of incidents; with ``record``, their events and counts, and the hub's referrals. Before the start
    only the court cases due from month 0 are queued, unless ``courts_sit`` (the simulated past's courts hear the rest)."""
    da, p = model.params.domestic_abuse, model.people
    perp, victim, count = incidents(model, month)
    if not len(perp):
        return
    w = p.weight[perp]
    ids = p.person_id[perp]
    # each incident: a crime?, proven?, court lag (draw n of its perpetrator's streams for the n-th incident)
    crime, proven = _incident_outcomes(ids, count, da.p_crime, da.p_proven, model.draws.key("da_crime", month),
                                       model.draws.key("da_proven", month))
    by = np.repeat(perp, count)
    nth = np.arange(len(by)) - np.repeat(np.cumsum(count) - count, count)
    lag = geometric_lag(model.draws.uniform("da_court_lag", month, p.person_id[by], nth), float(model.params.offending.court_lag_mean_months))
    violence = list(model.params.offending.offence_types).index("violence") if "violence" in model.params.offending.offence_types else 0
    due = month + lag
    pending = proven if courts_sit else proven & (due >= 0)  # (cases due before the start were heard before it)
    model.cases.add(by[pending], month, due[pending], np.full(int(pending.sum()), violence, np.int8))
    # the victim's run of incidents: a repeat if within the window of their last; high-risk once the run is long
    gap = month - p.da_victim_last_month[victim]
    repeat = gap <= da.repeat_window_months
    once = np.zeros(len(victim), bool)  # a victim of two perpetrators this month (a partner and a former one): once
    once[np.unique(victim, return_index=True)[1]] = True
    new_year = once & (p.da_victim_last_month[victim] // 12 != month // 12)  # their first incident in this year of the run
    before = np.where(repeat, p.da_victim_run[victim], 0)
    p.da_victim_run[victim] = before
    np.add.at(p.da_victim_run, victim, count)  # the month's incidents of every pair the victim is in
    p.da_victim_last_month[victim] = month
    exposed = expose_children(model, perp, victim, month)
    separate_after_abuse(model, perp, victim, month)
    if not record:
        return
    newly_high = once & (before < da.high_risk_min_incidents) & (p.da_victim_run[victim] >= da.high_risk_min_incidents)
    model.events.add("da_incident", by, month, victim=np.repeat(victim, count))
    tally = model.tally
    weights = np.repeat(w, count)
    tally.add("da_incidents", weights.sum())
    tally.add("da_repeat_incidents", (w * np.where(repeat, count, count - 1)).sum())
    tally.add("da_victim_years", w[new_year].sum())  # a victim abused in a year of the run (costed per victim a year)
    tally.add("da_crimes", weights[crime].sum())
    tally.add("da_crimes_proven", weights[proven].sum())
    tally.add("da_high_risk_victims", w[newly_high].sum())
    tally.add("da_incidents_former_partner", (w * count)[p.partner[perp] != victim].sum())
    tally.add("da_incidents_by_previously_convicted", (w * count)[p.prev_convictions[perp] > 0].sum())
    tally.add("da_children_exposed", p.weight[exposed].sum())
    da_hub.refer(model, victim[newly_high])


def incidents(model, month: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``month``'s incidents: (perpetrator rows, victim rows, incidents of each pair), pairs with at least one."""
    p, da = model.people, model.params.domestic_abuse
    perp = model.da_perpetrators
    perp = perp[p.present[perp]]
    model.da_perpetrators = perp  # (the dead and departed never come back)
    o, f = model.params.offending, model.params.family
    ages = age_factor(tuple(o.age_curve_ages), tuple(o.age_curve_multiplier), da.age_curve_power)
    hub = da_hub.effect_terms(model, month)
    count, victim = _incidents(perp, month, p.person_id, p.present, p.status, p.partner, p.ex_partner, p.separated_month,
                               p.birth_month, p.da_rate, p.da_chain, p.da_last_month, ages, 12 * f.age_adult,
                               da.incidents_per_month_base, da.escalation_per_incident, da.escalation_max_incidents,
                               da.post_separation_months, da.post_separation_rr, da.repeat_window_months,
                               model.draws.key("da_incident", month), *hub)
    has = count > 0
    return perp[has], victim[has], count[has]


@lru_cache(maxsize=16)
def age_factor(ages: tuple, multipliers: tuple, power: float, max_years: int = 120) -> np.ndarray:
    """The age-crime curve raised to ``power``, by whole months of age (index = age in months)."""
    return np.interp(np.arange(max_years * 12 + 1) / 12.0, ages, multipliers) ** power


@njit(cache=True, nogil=True)
def _incidents(perp, month, person_id, present, status, partner, ex_partner, separated_month, birth_month, da_rate,
               chain, last_month, ages, adult_months, base, escalation, max_run, post_months, post_rr, window, key,
               hub_on, hub_state, hub_engaged, hub_exit_month, repeat_rr, escalation_rr, decay):
    """Incidents of each perpetrator in ``perp`` this month, and their victim (draw 0 of the perpetrator's stream:
    a lower rate gives fewer or as many incidents from the same uniform). Updates the perpetrators' run of incidents."""
    count = np.zeros(len(perp), np.int64)
    victim = np.full(len(perp), NO_ONE, np.int64)
    for i in range(len(perp)):
        r = perp[i]
        age = month - birth_month[r]
        if status[r] == CUSTODY or age < adult_months:
            continue
        v = partner[r]
        rate = base * da_rate[r] * ages[min(age, len(ages) - 1)]
        if v < 0:
            v = ex_partner[r]
            if v < 0 or month - separated_month[r] > post_months:
                continue
            rate *= post_rr
        if not present[v] or status[v] == CUSTODY:
            continue
        run = chain[r] if month - last_month[r] <= window else 0
        excess = (1.0 + escalation) ** min(run, max_run) - 1.0
        if hub_on:
            s = strength_of(v, month, hub_state, hub_engaged, hub_exit_month, decay)
            rate *= 1.0 + (repeat_rr - 1.0) * s
            excess *= 1.0 + (escalation_rr - 1.0) * s
        rate *= 1.0 + excess
        n = poisson_at(uniform_at(person_id[r], key, 0), rate, False)
        if n:
            count[i] = n
            victim[i] = v
            chain[r] = run + n
            last_month[r] = month
    return count, victim


@njit(cache=True, nogil=True)
def _incident_outcomes(ids, counts, p_crime, p_proven, crime_key, proven_key):
    """Per incident (the n-th of its perpetrator this month uses draw n): recorded as a crime, and proven."""
    total = counts.sum()
    crime = np.empty(total, np.bool_)
    proven = np.empty(total, np.bool_)
    k = 0
    for i in range(len(ids)):
        for n in range(counts[i]):
            crime[k] = uniform_at(ids[i], crime_key, n) < p_crime
            proven[k] = crime[k] and uniform_at(ids[i], proven_key, n) < p_proven
            k += 1
    return crime, proven


def separate_after_abuse(model, perp: np.ndarray, victim: np.ndarray, month: int) -> None:
    """Couples living together with an incident this month separate with probability ``p_separate_after_incident``
    (a stream keyed on the victim), each remembering the other as their former partner, as a separation does."""
    p, da = model.people, model.params.domestic_abuse
    together = p.partner[perp] == victim
    if da.p_separate_after_incident <= 0 or not together.any():
        return
    perp, victim = perp[together], victim[together]
    leave = model.draws.uniform("da_separation", month, p.person_id[victim]) < da.p_separate_after_incident
    perp, victim = perp[leave], victim[leave]
    p.partner[perp] = NO_ONE
    p.partner[victim] = NO_ONE
    p.ex_partner[perp], p.ex_partner[victim] = victim, perp
    p.separated_month[perp] = p.separated_month[victim] = month


def expose_children(model, perp: np.ndarray, victim: np.ndarray, month: int) -> np.ndarray:
    """Mark the children under the adult age who live with the victim, or with the perpetrator if the couple live
    together, as exposed (the first time only); returns those newly exposed."""
    p = model.people
    together = p.partner[perp] == victim
    adults = np.concatenate([victim, perp[together]])
    kids = p.children.of(adults)
    if not len(kids):
        return kids
    kids = np.unique(kids)
    kids = kids[p.present[kids] & (month - p.birth_month[kids] >= 0) & (month - p.birth_month[kids] < 12 * model.params.family.age_adult)]
    kids = kids[np.isin(home_parent(p, kids), adults)]
    first = kids[p.da_exposed_month[kids] == NEVER]
    p.da_exposed_month[first] = month
    return first


