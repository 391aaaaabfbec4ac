"""Offending process: a monthly hazard per person, offences, and detection that opens a court case.

The hazard (expected offences a month) multiplies a person's propensity (set at birth, lowered by desistance) by the age-crime curve, sex,
the excess just after release or an order start, their criminogenic needs and, for children, their family.
Most offences are never proven; a proven one is queued for conviction after a court lag (see courts).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit, vectorize

from ..state.people import CUSTODY, FREE
from ..state.population import births_with_father_share
from ..state.rng import NEVER, geometric_wait, hash_ids, next_month_at, poisson_at, poisson_quantile, uniform_at
from ..state.schedule import distinct
from . import family, intervention, needs
from .courts import p_caution


def age_multiplier(age_years: np.ndarray, ages: tuple, multipliers: tuple, age_min: float) -> np.ndarray:
    """Age-crime curve: linear interpolation of the table, zero below the age of criminal responsibility."""
    m = np.interp(age_years, ages, multipliers)
    return np.where(age_years >= age_min, m, 0.0)


def supervision_multiplier(months_since: np.ndarray, initial_excess: float, decay_months: float) -> np.ndarray:
    """1 + excess x exp(-t / decay): offending is highest in the first months after release or an order start."""
    out = np.ones(len(months_since))
    recent = months_since < 12 * decay_months  # beyond that the excess is negligible (< 1e-5)
    out[recent] += initial_excess * np.exp(-months_since[recent] / decay_months)
    return out


@lru_cache(maxsize=16)
def needs_rr_table(relative_risks: tuple) -> np.ndarray:
    """Relative risk for every combination of needs, indexed by bit mask."""
    masks = np.arange(1 << len(relative_risks))
    bits = (masks[:, None] >> np.arange(len(relative_risks))) & 1
    return np.prod(np.where(bits == 1, np.asarray(relative_risks, float), 1.0), axis=1)


@lru_cache(maxsize=16)
def age_multiplier_table(ages: tuple, multipliers: tuple, age_min: float, max_years: int = 120) -> np.ndarray:
    """The age-crime curve by whole months of age (index = age in months), for fast lookup."""
    return age_multiplier(np.arange(max_years * 12 + 1) / 12.0, ages, multipliers, age_min)


@lru_cache(maxsize=16)
def age_factor_table(ages: tuple, multipliers: tuple, age_min: float, youth_multiplier: float, age_adult: float,
                     window_months: int = 0) -> np.ndarray:
    """Age-crime curve times the youth multiplier by whole months of age; with ``window_months``, the largest value
    over the next that many months (what a bound valid for that long must allow)."""
    curve = age_multiplier_table(ages, multipliers, age_min)
    table = curve * np.where(np.arange(len(curve)) < 12 * age_adult, youth_multiplier, 1.0)
    if window_months:
        padded = np.concatenate([table, np.full(window_months, table[-1])])
        table = np.lib.stride_tricks.sliding_window_view(padded, window_months + 1).max(axis=1)
    return table


#: months a bound stays valid without a change of the person's state (the age-crime curve moves on)
BOUND_MONTHS = 36


def hazard(model, rows: np.ndarray, bound: bool = False) -> np.ndarray:
    """Expected offences this month of ``rows`` (present, at liberty, over the age limit): base rate x propensity x
    age-crime curve (x the youth multiplier) x sex x the excess after release and after an order start x needs x
    family (``family.child_risk_multiplier``) x the intervention's direct effect.

    With ``bound``, an upper bound of the hazard that holds for ``BOUND_MONTHS`` months unless the person's state
    changes (see ``refresh_bounds``): the age factor at its largest over that window, the intervention's effects at
    their largest; every other factor only falls as time passes (supervision excess, family effects by age)."""
    p, prm = model.people, model.params
    o, f = prm.offending, prm.family
    ages = age_factor_table(o.age_curve_ages, o.age_curve_multiplier, f.age_criminal_responsibility, o.youth_multiplier,
                            f.age_adult, BOUND_MONTHS if bound else 0)
    terms = (o.offences_per_month_base, ages, o.female_multiplier,
             excess_table(o.release_multiplier_initial, o.supervision_decay_months),
             excess_table(o.order_start_multiplier_initial, o.supervision_decay_months),
             needs_rr_table(tuple(prm.needs.offending_rr)))
    person = (p.birth_month, p.propensity, p.sex_male, p.months_since_release, p.months_since_order_start, p.needs)
    rows, iv = np.asarray(rows, np.int64), intervention.hazard_terms(model, bound)
    from_family = family.family_multipliers(rows, (model.month - p.birth_month[rows]) / 12.0, family.risk_terms(model, bound), iv, model.month)
    return _hazard(rows, model.month, terms, person, from_family, iv)


@lru_cache(maxsize=16)
def excess_table(initial_excess: float, decay_months: float) -> np.ndarray:
    """``supervision_multiplier`` by whole months since release or order start, up to where it is 1."""
    return supervision_multiplier(np.arange(math.ceil(12 * decay_months)), initial_excess, decay_months)


@njit(cache=True, nogil=True)
def _hazard(rows, month, terms, person, from_family, iv):
    base, ages, female_multiplier, release_excess, order_excess, needs_rr = terms
    birth_month, propensity, sex_male, months_since_release, months_since_order_start, needs = person
    mode, k_offender = iv[0], iv[1]
    iv_state, iv_engaged, iv_exit_month, decay = iv[3], iv[4], iv[5], iv[6]
    lam = np.empty(len(rows))
    for i in range(len(rows)):
        row = rows[i]
        age_months = month - birth_month[row]
        x = base * propensity[row]
        x *= ages[min(max(age_months, 0), len(ages) - 1)]
        x *= 1.0 if sex_male[row] else female_multiplier
        x *= _excess(months_since_release[row], release_excess)
        x *= _excess(months_since_order_start[row], order_excess)
        x *= needs_rr[needs[row]]
        x *= from_family[i]
        if mode == 1:
            if iv_engaged[row]:
                x *= k_offender
        elif mode == 2:
            x *= 1.0 - k_offender * intervention.strength_of(row, month, iv_state, iv_engaged, iv_exit_month, decay)
        lam[i] = x
    return lam


@njit(cache=True, nogil=True, inline="always")
def _excess(months_since, table):
    """The ``excess_table`` entry; 1 beyond it (a sentence not yet started counts as just started)."""
    return table[max(months_since, 0)] if months_since < len(table) else 1.0


def can_offend(model, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` can offend this month: present, not in custody, over the age of criminal responsibility."""
    p = model.people
    age_min_months = 12 * model.params.family.age_criminal_responsibility
    return p.present[rows] & (p.status[rows] != CUSTODY) & (model.month - p.birth_month[rows] >= age_min_months)


def refresh_bounds(model) -> None:
    """Recompute the hazard bound, and redraw the next candidate month, of everyone whose bound may no longer hold:
    people whose hazard may have risen (``people.pending["hazard"]``: released, an order started, a need gained,
    new), the children of parents convicted, sent to custody or with a new family-relationships need
    (``pending["children"]``), and bounds past their ``BOUND_MONTHS``. Changes that only lower a hazard leave the bound valid (a little loose)."""
    p, month = model.people, model.month
    parents = p.pending["children"].take()
    rows = distinct(p.pending["hazard"].take(), p.children.of(parents), p.due("offending_refresh", month))
    rows = rows[p.present[rows]]
    # children too young to offend within the bound's window: nothing to draw until the window reaches that age
    first_month = p.birth_month[rows] + math.ceil(12 * model.params.family.age_criminal_responsibility) - BOUND_MONTHS
    old_enough = first_month <= month
    _rebound(rows, old_enough, first_month, hazard(model, rows[old_enough], bound=True), month, p.person_id,
             p.offending_bound, p.offending_next, p.offending_refresh, model.draws.key("offending_next", month))


@njit(cache=True, nogil=True)
def _rebound(rows, old_enough, first_month, bound, month, person_id, offending_bound, offending_next, offending_refresh,
             key):
    """New bounds (``bound``, for the rows ``old_enough``), the next candidate month at the bound's rate (draw 0) and
    the month the bound expires; for children too young, no candidate until ``first_month``."""
    k = 0
    for i in range(len(rows)):
        r = rows[i]
        if not old_enough[i]:
            offending_bound[r] = 0.0
            offending_next[r] = NEVER
            offending_refresh[r] = first_month[i]
            continue
        offending_bound[r] = bound[k]
        offending_next[r] = next_month_at(person_id[r], key, 0, -math.expm1(-bound[k]), month, month)
        offending_refresh[r] = month + BOUND_MONTHS
        k += 1


def draw_offences(model, month: int):
    """Offences committed in ``month``: (rows, offence type, proven?, court lag), one entry per offence.

    Thinning (Lewis & Shedler 1979): each person has candidate offences at a constant rate, their hazard bound, so
    the months with a candidate are a Bernoulli process whose next month is drawn once (``offending_next``) and only
    the people due this month are looked at. Each candidate becomes an offence with probability hazard / bound,
    which gives exactly Poisson(hazard) offences a month. The bound does not depend on the intervention (unless
    an effect harms: then for the families in it), so the baseline and an intervention share candidates (common
    random numbers) and differ only in acceptance."""
    p, draws = model.people, model.draws
    due = p.due("offending_next", month)
    due = due[_next_candidates(due, month, p.person_id, p.offending_bound, p.offending_next, p.present, p.status, p.birth_month,
                               12 * model.params.family.age_criminal_responsibility, draws.key("offending_next", month))]
    bound = p.offending_bound[due]
    counts = _accepted(p.person_id[due], bound, hazard(model, due) / bound, draws.key("offending", month),
                       draws.key("offence_accepted", month))
    return _offences(model, month, due, counts)


@njit(cache=True, nogil=True)
def _next_candidates(due, month, person_id, offending_bound, offending_next, present, status, birth_month, age_min_months,
                     key):
    """Draw the next candidate month of the rows ``due`` (draw 1, from next month); returns which of them can offend
    this month (``can_offend``)."""
    ok = np.empty(len(due), np.bool_)
    for i in range(len(due)):
        r = due[i]
        offending_next[r] = next_month_at(person_id[r], key, 1, -math.expm1(-offending_bound[r]), month + 1, month)
        ok[i] = present[r] and status[r] != CUSTODY and month - birth_month[r] >= age_min_months
    return ok


@njit(cache=True, nogil=True)
def _accepted(ids, bound, accept, candidates_key, accepted_key):
    """Offences of each person: Poisson(bound) candidates (at least one: they are due), the n-th accepted if its
    keyed uniform (draw n) is below ``accept`` = hazard / bound."""
    counts = np.zeros(len(ids), np.int64)
    for i in range(len(ids)):
        for n in range(poisson_at(uniform_at(ids[i], candidates_key, 0), bound[i], True)):
            counts[i] += uniform_at(ids[i], accepted_key, n) < accept[i]
    return counts


def _offences(model, month: int, offenders: np.ndarray, counts: np.ndarray):
    """Offence type, detection and court lag of ``counts`` offences by each of ``offenders`` in ``month`` (an
    offender in the intervention may be found out more often: its supervision channel)."""
    p, draws, o, iv = model.people, model.draws, model.params.offending, model.params.intervention
    cdf, p_proven = _type_tables(tuple(o.offence_type_share), tuple(o.offence_type_p_proven))
    found = intervention.supervision_factor(iv, offenders, p, iv.detection_rr_at_full_dose)
    found = np.ones(len(offenders)) if found is None else found
    kind, proven, lag = _offence_details(p.person_id[offenders], counts, cdf, p_proven, found, float(o.court_lag_mean_months),
                                         draws.key("offence_type", month),
                                         draws.key("detection", month), draws.key("court_lag", month))
    return np.repeat(offenders, counts), kind, proven, lag


@lru_cache(maxsize=16)
def _type_tables(shares: tuple, p_proven: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The offence types' CDF and their probabilities of being proven, as arrays. The shares sum to 1 within 1e-6
    (sim.state.scenario refuses others); dividing by the sum only removes that rounding, so the CDF ends at exactly 1
    (and is unchanged when they sum to exactly 1)."""
    cdf, p_proven = np.cumsum(shares) / np.sum(shares), np.asarray(p_proven, float)
    cdf.flags.writeable = p_proven.flags.writeable = False  # shared between calls
    return cdf, p_proven


@njit(cache=True, nogil=True)
def _offence_details(ids, counts, cdf, p_proven, found, lag_mean_months, type_key, detection_key, lag_key):
    """Per offence (the n-th of its person uses draw n of each stream): type by the shares' CDF, proven or not
    (the type's probability times the person's ``found``), and the court lag (``geometric_lag``)."""
    total = counts.sum()
    kind = np.empty(total, np.int8)
    proven = np.empty(total, np.bool_)
    lag = np.empty(total, np.int64)
    k = 0
    for i in range(len(ids)):
        for n in range(counts[i]):
            u = uniform_at(ids[i], type_key, n)
            t = 0
            while t < len(cdf) - 1 and cdf[t] <= u:
                t += 1
            kind[k] = t
            proven[k] = uniform_at(ids[i], detection_key, n) < p_proven[t] * found[i]
            lag[k] = geometric_lag(uniform_at(ids[i], lag_key, n), lag_mean_months)
            k += 1
    return kind, proven, lag


@vectorize(["int64(float64, float64)"], cache=True)
def geometric_lag(u, mean_months):
    """Whole months from offence to conviction, geometric on 0, 1, 2, ... with the given mean (inverse CDF at ``u``)."""
    if mean_months <= 0:
        return 0
    q = mean_months / (1.0 + mean_months)  # P(lag >= k+1 | lag >= k)
    return math.floor(math.log1p(-u) / math.log(q))


def prime_court_queue(model, months: int = 12) -> None:
    """Before the run starts, fill the court queue with cases from offences committed in the ``months`` before
    it (by the starting population, at today's hazard), so convictions run at their steady level from month 0
    instead of ramping up over the first court lags. These pre-start offences are not in the event log. A person's
    offences over those months are Poisson(months x hazard), each in a month drawn uniformly among them (the same as
    a Poisson count each month); offences that could not have been committed then (under the age of criminal
    responsibility, or still in custody before a release ``months_since_release`` months ago) are dropped."""
    p, now = model.people, model.month
    active = np.flatnonzero(can_offend(model, np.arange(p.n)))
    ids = p.person_id[active]
    counts = model.draws.poisson("offending_before_start", now, ids, months * hazard(model, active))
    rows, kind, proven, lag = _offences(model, now - months, active, counts)
    nth = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    ago = months - np.minimum((model.draws.uniform("offence_month_before_start", now, p.person_id[rows], nth) * months).astype(np.int64), months - 1)
    month = now - ago
    due = month + lag
    age_min_months = 12 * model.params.family.age_criminal_responsibility
    possible = (month - p.birth_month[rows] >= age_min_months) & (p.months_since_release[rows] >= ago)
    pending = proven & (due >= now) & possible
    for m in distinct(month[pending]):
        at = pending & (month == m)
        model.cases.add(rows[at], int(m), due[at], kind[at])


def record_past_convictions(model, rows: np.ndarray, leave_recent_to_groups: bool = True) -> None:
    """Give the newcomers ``rows`` (the starting population, then each month's arrivals and partners from outside)
    who are at liberty with a clean record the record (convictions, and cautions) the model's own hazard would have
    given them: a Poisson number with mean m, the proven offences expected since the age of criminal responsibility at today's hazard
    moved along the age-crime curve (offences proven by the offence types' mix). Adults' past ends
    ``needs.recent_conviction_months`` back (the adults convicted more recently are the starting offender groups),
    but not before their 18th birthday.
    The last conviction falls where the latest of that many draws along the age-crime curve falls. Adults go first,
    so that children's hazards see their parents' records. Records thus follow propensity and age as the run's own
    convictions do, instead of a fixed share drawn at random, which the run then outgrew. With
    ``population.desistance_in_past_records`` the past is drawn proven offence by proven offence, each with the chance of
    desistance the courts give it, and with the needs and orders that the run's convictions bring (``_past_careers``),
    so records and propensities carry the careers that ended, and the runs of offences that offenders' needs and
    orders make, as the run's own do; without it, a Poisson count at today's propensity and needs, as if no career had
    ended or grown. With
    ``justice.cautions`` the past's proven offences are cautioned as the run's are (more often as a child), and only
    the others are convictions: the cautions go on the record (``prev_cautions``), as the run's do, so the record
    that sentencing, cautioning and desistance read is the same, but "ever convicted" and the parents' convictions
    that children's hazards read count convictions only (until 2026-12-06 every past proven offence was a
    conviction, which gave about 1.4 times the adults' and 2.3 times the children's convictions the run then made,
    so the shares ever convicted, and children's family risk, fell over the run). People past
    ``family.parent_conviction_effect_until_age`` carry their parents' effect in the part of their past before it
    (``outgrown_family_multiplier``); younger people's hazard carries it today. Without
    ``leave_recent_to_groups`` (the start simulated from its recent past, ``population.history_years``) every adult's
    past runs to this month."""
    p, f = model.people, model.params.family
    rows = np.asarray(rows, np.int64)
    age_months = model.month - p.birth_month[rows]
    eligible = can_offend(model, rows) & (p.prev_convictions[rows] == 0) & (age_months > 12 * f.age_criminal_responsibility)
    adult = age_months >= 12 * f.age_adult
    for group in (rows[eligible & adult], rows[eligible & ~adult]):
        if len(group):
            _draw_past_convictions(model, group, leave_recent_to_groups)


def _draw_past_convictions(model, rows: np.ndarray, leave_recent_to_groups: bool) -> None:
    p, prm = model.people, model.params
    f, o = prm.family, prm.offending
    since = 12 * int(f.age_criminal_responsibility)
    a = (model.month - p.birth_month[rows]).astype(np.int64)
    ages, months_of_age = _age_factor_by_month(prm, int(a.max()) + 1)
    # the adults convicted in the last recent_conviction_months are the offender groups (adults from 18), so an
    # adult's past ends that far back, but never before their 18th birthday: convictions as a child all count
    gap = np.where(a >= 12 * f.age_adult, int(prm.needs.recent_conviction_months) if leave_recent_to_groups else 0, 0)
    end = np.maximum(np.maximum(a - gap, np.minimum(a, int(12 * f.age_adult))), since)
    per_age_factor = np.divide(hazard(model, rows), ages[a], out=np.zeros(len(rows)), where=ages[a] > 0)
    ids = p.person_id[rows]
    # people past the family effect's age limit had it before then (today's hazard has none): the rate times it
    # before the limit
    family_rr = outgrown_family_multiplier(model, rows, a)
    until = int(12 * f.parent_conviction_effect_until_age)
    rate = per_age_factor * _share_proven(o)
    if prm.population.desistance_in_past_records:
        j = prm.justice
        # the needs a career passes through replace today's (drawn at the general population's prevalence)
        rate = rate / needs_rr_table(tuple(prm.needs.offending_rr))[p.needs[rows]]
        keys = tuple(model.draws.key(s, model.month) for s in
                     ("past_conviction_wait", "past_desistance", "past_caution", "past_needs", "past_sentence"))
        count, cautions, last, factor = _past_careers(
            ids, rate, since, end, months_of_age, family_rr, until, keys,
            (j.desist_log_odds_intercept, j.desist_log_odds_per_log_prev, j.desisted_propensity_multiplier),
            _past_caution_terms(prm), _past_needs_terms(prm, True), _past_sentence_terms(prm, True))
        p.propensity[rows] *= factor
        p.prev_cautions[rows] += cautions.astype(np.int32)
        p.cautions_before_start[rows] += cautions.astype(np.int32)
        had = count > 0
        _write_records(model, rows[had], count[had], a[had] - last[had])
        return
    # the time after the limit shrunk by the family multiplier (in months at an age factor of 1), so that that part
    # runs without it
    young = months_of_age[np.minimum(end, until)]
    stop = young + (months_of_age[end] - young) / family_rr
    rate = rate * family_rr
    # months at an age factor of 1 as a child and as an adult, each at its share of proven offences convicted
    # (cautions at a clean record's chance, exact while caution_log_odds_per_log_prev is 0: a Poisson stream thinned)
    adult_from = months_of_age[np.minimum(end, int(12 * f.age_adult))]
    as_child, as_adult = adult_from - months_of_age[since], stop - adult_from
    cautioned_child, cautioned_adult = _clean_record_caution_chances(prm)
    expected = rate * (as_child * (1 - cautioned_child) + as_adult * (1 - cautioned_adult))
    count = poisson_quantile(model.draws.uniform("past_record", model.month, ids), expected).astype(np.int64)
    if prm.justice.cautions:
        expected_cautions = rate * (as_child * cautioned_child + as_adult * cautioned_adult)
        cautions = poisson_quantile(model.draws.uniform("past_record_cautions", model.month, ids),
                                    expected_cautions).astype(np.int32)
        p.prev_cautions[rows] += cautions
        p.cautions_before_start[rows] += cautions
    had = count > 0
    # the latest of `count` convictions along the age-crime curve: the u^(1/count) quantile of the convictions'
    # weighted past, mapped back to months at an age factor of 1
    u = model.draws.uniform("past_record_month", model.month, ids[had]) ** (1.0 / count[had])
    child_part, adult_part = as_child[had] * (1 - cautioned_child), as_adult[had] * (1 - cautioned_adult)
    q = u * (child_part + adult_part)
    level = np.where(q < child_part, months_of_age[since] + q / max(1 - cautioned_child, 1e-12),
                     adult_from[had] + (q - child_part) / max(1 - cautioned_adult, 1e-12))
    young, family_rr = young[had], family_rr[had]
    level = np.where(level > young, young + (level - young) * family_rr, level)  # (the time after the limit unshrunk)
    month_of_age = np.clip(np.searchsorted(months_of_age, level, side="right") - 1, since, end[had] - 1)
    _write_records(model, rows[had], count[had], a[had] - month_of_age)


def _write_records(model, rows: np.ndarray, convictions: np.ndarray, months_since_last: np.ndarray) -> None:
    """The drawn past's convictions of ``rows`` (each with at least one), brought into the run, and the month of
    the last."""
    p = model.people
    p.prev_convictions[rows] = convictions
    p.convictions_before_start[rows] = convictions
    p.last_conviction_month[rows] = model.month - months_since_last


def outgrown_family_multiplier(model, rows: np.ndarray, age_months: np.ndarray) -> np.ndarray:
    """The family multiplier that the parents' convictions gave each of ``rows`` (aged ``age_months``) up to
    ``family.parent_conviction_effect_until_age``, for those now past that age (``family.child_risk_multiplier``
    just under it, where only the parents' convictions count: the scenario checks that the limit is past childhood
    and the exposure to partner abuse; the parents in the model, or those drawn outside it); 1 for the others, whose
    hazard today still carries it. Their past records need it (until 2026-12-06 the records drawn for people over
    the limit left it out, so that they held fewer convictions than people who grow up in the run; README). At least
    1e-6, so that a relative risk of 0 still lets the part of life after the limit run (``_draw_past_convictions``
    divides by it)."""
    until = model.params.family.parent_conviction_effect_until_age
    out = np.ones(len(rows))
    older = age_months >= 12 * until
    if older.any():
        out[older] = family.child_risk_multiplier(model, rows[older], np.full(int(older.sum()), until - 1e-6))
    return np.maximum(out, 1e-6)


#: no cautions in a past career (``_past_careers``' caution terms when ``justice.cautions`` is off)
NO_CAUTIONS = (False, 0.0, 0.0, 0.0)


def _past_caution_terms(prm) -> tuple:
    """What ``_past_careers`` needs to caution a past proven offence as the run's police would (``courts.p_caution``):
    whether cautions are on, the log-odds intercept, its change per log(1 + record) and the youth term."""
    j = prm.justice
    if not j.cautions:
        return NO_CAUTIONS
    return True, j.caution_log_odds_intercept, j.caution_log_odds_per_log_prev, j.youth_caution_log_odds


def _past_needs_terms(prm, on: bool) -> tuple:
    """What ``_past_careers`` needs to change an adult's needs as the needs process does (``needs.step``): whether it
    should, the month of age a person comes of age (needs are an adult's; also when a child's cautions and custody
    odds end), the offender group's window (``needs.recent_conviction_months``), the two groups' cumulative change
    tables and the needs' relative risks by bit mask. Off, the needs stay none (a relative risk of 1): the caller's
    rate then carries them."""
    n = prm.needs
    return (on, math.ceil(12 * prm.family.age_adult), int(n.recent_conviction_months), needs.cumulative_tables(n),
            needs_rr_table(tuple(n.offending_rr)))


def _past_sentence_terms(prm, on: bool) -> tuple:
    """What ``_past_careers`` needs to sentence a past conviction as the courts do (``courts.p_custody``, ``p_order``)
    and raise the rate after an order's start: whether it should, the order's log-odds terms, custody's (intercept,
    per log(1 + record), youth), the CDF of proven offences' types and their custody log-odds, and the excess after an
    order's start by month (``excess_table``)."""
    j, o = prm.justice, prm.offending
    cdf, p_proven = _type_tables(tuple(o.offence_type_share), tuple(o.offence_type_p_proven))
    proven = np.diff(cdf, prepend=0.0) * p_proven
    excess = excess_table(o.order_start_multiplier_initial, o.supervision_decay_months) if on else np.ones(0)
    return (on, (j.order_log_odds_intercept, j.order_log_odds_per_log_prev),
            (j.custody_log_odds_intercept, j.custody_log_odds_per_log_prev, j.youth_custody_log_odds),
            np.cumsum(proven) / proven.sum(), np.asarray(o.offence_type_custody_log_odds, float), excess)


def _clean_record_caution_chances(prm) -> tuple[float, float]:
    """The chance that a child's and an adult's proven offence is cautioned at a clean record (0 without cautions)."""
    j = prm.justice
    if not j.cautions:
        return 0.0, 0.0
    child, adult = p_caution(np.zeros(2), np.array([True, False]), j)
    return float(child), float(adult)


@njit(cache=True, nogil=True, inline="always")
def _logistic(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, nogil=True, inline="always")
def _next_need_change(pid, key, draw, p_month, start, never):
    """The month of a past career's next need change, from ``start`` at ``p_month`` a month (keyed draw 2 x ``draw``;
    2 x ``draw`` + 1 picks which need)."""
    return start + geometric_wait(uniform_at(pid, key, 2 * draw), p_month, never)


@njit(cache=True, nogil=True)
def _past_careers(ids, rate, since, end, months_of_age, family_rr, family_until, keys, desist_terms,
                  caution_terms, needs_terms, sentence_terms, first_conviction_only=False):
    """Each person's past record as the run's processes would have made it, month of age by month of age from
    ``since`` (the same for all): proven offences arrive at ``rate`` per month at an age factor of 1 (``months_of_age``,
    ``_age_factor_by_month``) until the month of age ``end``, times ``family_rr`` before ``family_until``, times the
    relative risk of the person's needs and the excess after an order's start. Each proven offence is a caution with
    the run's chance (``caution_terms``, ``_past_caution_terms``), else a conviction; after each the career may end
    (``courts.p_desist`` of the record before it, ``desist_terms``), which multiplies the rate by the desisted
    multiplier from then on. With ``needs_terms`` on (``_past_needs_terms``), an adult's needs change as the needs
    process changes them (from none at coming of age, one at a time, at the general population's or, within
    ``needs.recent_conviction_months`` of a conviction, offenders' rates); a
    conviction is sentenced (``sentence_terms``: offence type, custody or not, an order or not) and an order's start
    raises the rate as in the run (``offending.order_start_multiplier_initial``). So the past carries the run's state
    dependence: an offender's needs and orders make the next offence likelier. (Until 2026-12-06 a past career had
    neither: records drawn for the start were shorter and less concentrated than those the run then grew, and the
    stocks they drive rose over decades; README.) Desistance is drawn at most once a month of age, as the run's
    courts draw it once per person and court-month (until 2026-12-07 after every proven offence: the prolific reached
    the start more desisted than the run keeps them). Left out: custody's time away (a custodial sentence neither
    removes the person nor gives needs on release) and no caution under sentence. With ``first_conviction_only`` a career stops at its first conviction. Returns the convictions,
    the cautions, the month of age of the last conviction (-1 if none) and the factor desistance left on the
    propensity."""
    wait_key, desist_key, caution_key, needs_key, sentence_key = keys
    desist_intercept, desist_per_log_prev, desisted_multiplier = desist_terms
    cautions_on, caution_intercept, caution_per_log_prev, youth_caution = caution_terms
    needs_on, adult, recent, cum, needs_rr = needs_terms
    sentencing_on, order_terms, custody_terms, type_cdf, type_log_odds, excess = sentence_terms
    order_intercept, order_per_log_prev = order_terms
    custody_intercept, custody_per_log_prev, youth_custody = custody_terms
    never = np.int64(1) << 50
    n = len(ids)
    count = np.zeros(n, np.int64)
    cautions = np.zeros(n, np.int64)
    last = np.full(n, -1, np.int64)
    factor = np.ones(n)
    for i in range(n):
        pid, stop = ids[i], end[i]
        m, x = since, months_of_age[since]
        k, c, f, mask = 0, 0, 1.0, 0
        last_conv, order_month, need_next, need_draws = -never, -never, never, 0
        last_desist_draw = -never  # the month of age of the last desistance draw (one a month, as the courts')
        started = not needs_on  # needs begin at coming of age
        wait = -math.log1p(-uniform_at(pid, wait_key, 0))  # exposure to the next proven offence
        at_month_start = True  # (changes due in a month happen at its start, once)
        while m < stop and rate[i] * f > 0.0:
            active = m - last_conv <= recent
            if at_month_start and not started and m >= adult:
                started = True
                need_next = _next_need_change(pid, needs_key, need_draws, cum[1 if active else 0, mask, -1], m, never)
                need_draws += 1
            if at_month_start and needs_on and started and m == last_conv + recent + 1:  # the offender group ends: general rates
                need_next = _next_need_change(pid, needs_key, need_draws, cum[0, mask, -1], m, never)
                need_draws += 1
            if at_month_start and need_next == m:  # one need changes: which, by the group's table
                group = 1 if active else 0
                u = uniform_at(pid, needs_key, 2 * need_draws + 1) * cum[group, mask, -1]
                j = 0
                while j < cum.shape[2] and cum[group, mask, j] <= u:
                    j += 1
                if j < cum.shape[2]:
                    mask ^= 1 << j
                need_next = _next_need_change(pid, needs_key, need_draws, cum[group, mask, -1], m + 1, never)
                need_draws += 1
            # the rate holds until the next month anything changes
            nxt = min(stop, need_next)
            if not started:
                nxt = min(nxt, adult)
            if active:
                nxt = min(nxt, last_conv + recent + 1)
            if m < family_until:
                nxt = min(nxt, family_until)
            since_order = m - order_month - 1  # months since the order's first full month (as the run counts it)
            if since_order < len(excess):
                nxt = min(nxt, m + 1)
            nxt = max(nxt, m + 1)
            level = rate[i] * f * needs_rr[mask] * (family_rr[i] if m < family_until else 1.0)
            if 0 <= since_order < len(excess):
                level *= excess[since_order]
            exposure = level * (months_of_age[nxt] - x)
            if not (level > 0.0 and wait < exposure):
                wait -= exposure
                m, x, at_month_start = nxt, months_of_age[nxt], True
                continue
            # a proven offence, in month of age m (the first whose end it does not reach)
            x += wait / level
            m = min(max(m, np.searchsorted(months_of_age[:nxt], x, side="right") - 1), nxt - 1)
            at_month_start = False
            record = k + c
            youth = m < adult
            cautioned = False
            if cautions_on:
                log_odds = caution_intercept + caution_per_log_prev * math.log1p(record) + (youth_caution if youth else 0.0)
                cautioned = uniform_at(pid, caution_key, record) < _logistic(log_odds)
            if cautioned:
                c += 1
            else:
                k += 1
                last[i] = m
                if first_conviction_only:
                    break
                if needs_on and started and last_conv < m - recent:  # joins the offender group: offenders' rates from next month
                    need_next = _next_need_change(pid, needs_key, need_draws, cum[1, mask, -1], m + 1, never)
                    need_draws += 1
                last_conv = m
                if sentencing_on:
                    u = uniform_at(pid, sentence_key, 3 * record)
                    t = 0
                    while t < len(type_cdf) - 1 and type_cdf[t] <= u:
                        t += 1
                    log_odds = (custody_intercept + custody_per_log_prev * math.log1p(record) + type_log_odds[t]
                                + (youth_custody if youth else 0.0))
                    custody = uniform_at(pid, sentence_key, 3 * record + 1) < _logistic(log_odds)
                    p_order = _logistic(order_intercept + order_per_log_prev * math.log1p(record))
                    if not custody and uniform_at(pid, sentence_key, 3 * record + 2) < p_order:
                        order_month = m
            if m != last_desist_draw and uniform_at(pid, desist_key, record + 1) < _logistic(desist_intercept + desist_per_log_prev * math.log1p(record)):
                f *= desisted_multiplier
            last_desist_draw = m
            wait = -math.log1p(-uniform_at(pid, wait_key, record + 1))
        count[i], cautions[i], factor[i] = k, c, f
    return count, cautions, last, factor


def _age_factor_by_month(prm, months: int) -> tuple[np.ndarray, np.ndarray]:
    """The age-crime factor for each month of age (at least ``months`` long, the last age's factor carried on), and
    its running sum: ``summed[a]`` is the factor summed over months of age 0..a-1, the months at a factor of 1 a
    person has lived through by age a."""
    f, o = prm.family, prm.offending
    ages = age_factor_table(o.age_curve_ages, o.age_curve_multiplier, f.age_criminal_responsibility, o.youth_multiplier, f.age_adult, 0)
    ages = np.concatenate([ages, np.full(max(0, months - len(ages)), ages[-1])])
    return ages, np.concatenate([[0.0], np.cumsum(ages)])


@lru_cache(maxsize=16)
def _share_proven(o) -> float:
    """The share of offences that end in a conviction, over the offence types' mix."""
    cdf, p_proven = _type_tables(tuple(o.offence_type_share), tuple(o.offence_type_p_proven))
    return float(np.diff(cdf, prepend=0.0) @ p_proven)


def record_parents_outside(model, rows: np.ndarray) -> None:
    """With ``family.parents_outside_the_area``: whether the father and mother of each of ``rows`` with no parent in
    the model (the starting adults who do not live with a parent, in-migrants, partners from outside) have ever been
    convicted, as parents in the model would have been (``parents_outside``). Drawn once, when they join, before
    their own past is drawn: ``family.child_risk_multiplier`` reads them up to ``family.parent_conviction_effect_until_age``,
    and the past records of people already over that age (``outgrown_family_multiplier``)."""
    prm = model.params
    f = prm.family
    if not f.parents_outside_the_area:
        return
    p = model.people
    rows = np.asarray(rows, np.int64)
    rows = rows[(p.father[rows] < 0) & (p.mother[rows] < 0)]
    if len(rows) == 0:
        return
    father_known, father_convicted, mother_convicted = parents_outside(model, rows)
    p.parents_convicted_outside[rows] = np.where(father_known & father_convicted, np.uint8(1), np.uint8(0)) \
        | np.where(mother_convicted, np.uint8(2), np.uint8(0))


#: generations drawn above a person with no parent in the model (parents, grandparents, great-grandparents): each
#: generation's convictions raise the one below's hazard in youth as family effects do in the run; the last
#: generation's own family effect is left out (with the childhood-only family effects, the parents drawn come out a
#: point or two less often convicted than the model's own: README)
OUTSIDE_GENERATIONS = 3


#: people whose ancestors are drawn at once (``parents_outside``): bounds the family tree's arrays (about 26 bytes a
#: node, 15 nodes a person) whatever the population; the draws are per person, so the chunks change nothing
OUTSIDE_CHUNK = 1 << 15


def parents_outside(model, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``rows``, a father and a mother drawn as the model's own families would have given them: whether
    the father is known and whether each parent has been convicted by now (``_parents_outside``, ``OUTSIDE_CHUNK``
    people at a time)."""
    rows = np.asarray(rows, np.int64)
    if len(rows) <= OUTSIDE_CHUNK:
        return _parents_outside(model, rows)
    parts = [_parents_outside(model, rows[i:i + OUTSIDE_CHUNK]) for i in range(0, len(rows), OUTSIDE_CHUNK)]
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(3))


def _parents_outside(model, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parents_outside`` of ``rows`` at once.

    Their ancestors are drawn as a family tree (``OUTSIDE_GENERATIONS`` deep; node i's father is node 2i + 1, its
    mother 2i + 2, the person node 0), a generation at a time. Each parent's standard normal score of log
    propensity is drawn given the child's as inheritance makes them (with heritability h and partners' correlation
    rho: each parent's slope h (1 + rho) / 2 with two parents, h with the mother alone; the two parents correlated
    rho - slope^2 given the child); the father is known as often as the run's births have one (``births_with_father_share``). Then,
    from the oldest generation down, each ancestor's past is drawn as the start draws its adults' with
    ``population.desistance_in_past_records`` (``_past_careers``; without it, the same with no desistance):
    proven offences along the age-crime curve over a life up to the child's age plus the parent's age at the birth
    (the mean age at a first birth, fathers older by the usual gap; a grandparent's only until their child, the
    person's parent, passed ``family.parent_conviction_effect_until_age``, the convictions that could raise that
    parent's hazard), at the general population's needs on average (enough for a first conviction, which is all it
    needs),
    each cautioned with the run's chance for the record before it and followed by the courts' chance of desistance,
    at a rate raised up to ``family.parent_conviction_effect_until_age`` by their own convicted parents' relative
    risks, as a convicted parent in the model raises it. (Until 2026-12-06 a Poisson count thinned at a clean record's
    chance of a caution, with no desistance and no family effect on the parents themselves: it convicted about 40% of
    known fathers and 15% of mothers, against 47% and 20% of the model's own parents of young adults, so that young
    adults' family risk rose as parents in the model replaced them; README.)"""
    prm, p = model.params, model.people
    f, o, pop, j = prm.family, prm.offending, prm.population, prm.justice
    month, draws = model.month, model.draws
    sigma, h, rho = max(pop.propensity_sigma_general, 1e-9), f.propensity_heritability, f.partner_propensity_correlation
    n, nodes = len(rows), 2 ** (OUTSIDE_GENERATIONS + 1) - 1
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, bool)
    # (node-major: a generation's nodes are whole rows, so no column copies; each draw is keyed by its node's id)
    ids = np.empty((nodes, n), np.int64)
    ids[0] = p.person_id[rows]
    ids[1:] = hash_ids(ids[:1], -np.arange(1, nodes)[:, None])  # (negative: apart from births' ids, hash_ids(mother, k))
    z, age, known = np.empty((nodes, n)), np.empty((nodes, n), np.int64), np.ones((nodes, n), bool)
    z[0] = np.log(p.innate_propensity[rows] / pop.propensity_median_general) / sigma
    age[0] = month - p.birth_month[rows]
    father_known_share = births_with_father_share(prm)  # as the run's births have one
    mother_age_at_birth = int(round(12 * pop.parent_age_at_first_child_mean_years))
    father_age_at_birth = mother_age_at_birth + int(round(12 * prm.demography.partner_age_gap_mean_years))
    for g in range(OUTSIDE_GENERATIONS):  # scores and ages, from the person up
        child, fathers, mothers = slice(2**g - 1, 2 ** (g + 1) - 1), slice(2 ** (g + 1) - 1, 2 ** (g + 2) - 1, 2), slice(2 ** (g + 1), 2 ** (g + 2) - 1, 2)
        child_ids, child_z = ids[child].ravel(), z[child].ravel()
        father_known = draws.uniform("parent_outside_known", month, child_ids) < father_known_share
        slope = np.minimum(np.where(father_known, h * (1.0 + rho) / 2.0, h), 0.999)
        residual = np.sqrt(1.0 - slope**2)
        mother_fresh = draws.normal("parent_outside_propensity", month, child_ids, draw=1)
        given = np.clip((rho - slope**2) / residual**2, -1.0, 1.0)  # the parents' correlation given the child
        z[mothers] = (slope * child_z + residual * mother_fresh).reshape(-1, n)
        z[fathers] = (slope * child_z + residual * (given * mother_fresh + np.sqrt(1.0 - given**2)
                      * draws.normal("parent_outside_propensity", month, child_ids, draw=0))).reshape(-1, n)
        known[fathers] = father_known.reshape(-1, n)
        age[fathers] = age[child] + father_age_at_birth
        age[mothers] = age[child] + mother_age_at_birth
    prevalence = np.asarray(prm.needs.prevalence_general, float)
    masks = (np.arange(1 << len(prevalence))[:, None] >> np.arange(len(prevalence))) & 1
    needs_rr = float(np.prod(np.where(masks == 1, prevalence, 1.0 - prevalence), axis=1) @ needs_rr_table(tuple(prm.needs.offending_rr)))
    _, months_of_age = _age_factor_by_month(prm, int(age.max()) + 1)
    since, until = 12 * int(f.age_criminal_responsibility), int(12 * f.parent_conviction_effect_until_age)
    desisted = j.desisted_propensity_multiplier if pop.desistance_in_past_records else 1.0  # as the start's pasts
    desist_terms = (j.desist_log_odds_intercept, j.desist_log_odds_per_log_prev, desisted)
    keys = tuple(draws.key(s, month) for s in ("parent_outside_wait", "parent_outside_desistance", "parent_outside_caution",
                                               "parent_outside_needs", "parent_outside_sentence"))
    is_father = np.arange(nodes) % 2 == 1
    rr = np.array([[f.rr_father_convicted_daughter, f.rr_mother_convicted_daughter],  # by the node's sex, then the parent's
                   [f.rr_father_convicted_son, f.rr_mother_convicted_son]])
    convicted = np.zeros((nodes, n), bool)
    for g in range(OUTSIDE_GENERATIONS, 0, -1):  # records, from the oldest generation down
        level = np.arange(2**g - 1, 2 ** (g + 1) - 1)
        son = is_father[level][:, None]
        family_rr = np.ones((len(level), n))
        if g < OUTSIDE_GENERATIONS:
            their_father, their_mother = 2 * level + 1, 2 * level + 2
            family_rr = np.where(known[their_father] & convicted[their_father], rr[son.astype(int), 0], 1.0) \
                * np.where(convicted[their_mother], rr[son.astype(int), 1], 1.0)
        a, family_rr = age[level].ravel(), family_rr.ravel()
        # a grandparent's convictions count while their child is under the family effect's age limit (the person's
        # own parents', to today: the person's hazard, or their outgrown multiplier, reads them now)
        child_age = age[(level - 1) // 2].ravel()
        end = a - (np.maximum(0, child_age - until) if g > 1 else 0)
        rate = o.offences_per_month_base * pop.propensity_median_general * np.exp(sigma * z[level]) \
            * np.where(son, 1.0, o.female_multiplier)
        count, _, _, _ = _past_careers(
            ids[level].ravel(), rate.ravel() * needs_rr * _share_proven(o), since, end, months_of_age,
            family_rr, until, keys, desist_terms, _past_caution_terms(prm), _past_needs_terms(prm, False),
            _past_sentence_terms(prm, False), True)
        convicted[level] = (count > 0).reshape(-1, n)
    return known[1], convicted[1], convicted[2]


def already_in_cjs(status, awaiting_court, last_conviction_month, month: int, recent_months: int) -> np.ndarray:
    """Offenders in the criminal justice system now when they offend (the secondary reading of the WECB's 40-50% of
    crime, ours; the primary, from the national wording, is anyone with a previous conviction): serving a sentence
    (licence, community or suspended-sentence order), awaiting court for an earlier proven offence, or convicted in
    the last ``recent_months`` months - the known-offender population the model starts from."""
    recent = (month - last_conviction_month) <= recent_months
    return (status != FREE) | awaiting_court | recent


def step(model) -> None:
    p, month, o = model.people, model.month, model.params.offending
    refresh_bounds(model)
    rows, kind, proven, lag = draw_offences(model, month)
    awaiting = np.zeros(p.n, bool)
    awaiting[model.cases.row] = True  # awaiting court for an earlier offence (before this month's cases open)
    model.events.add("offence", rows, month, offence_month=np.full(len(rows), month), offence_type=kind)
    model.cases.add(rows[proven], month, month + lag[proven], kind[proven])
    w = p.weight[rows]
    model.tally.add("offences", w.sum())
    model.tally.add("offences_by_previously_convicted", w[p.prev_convictions[rows] > 0].sum())
    model.tally.add("offences_by_supervised", w[p.status[rows] != FREE].sum())
    in_cjs = already_in_cjs(p.status[rows], awaiting[rows], p.last_conviction_month[rows], month,
                            model.params.run.in_cjs_recent_conviction_months)
    model.tally.add("offences_by_offenders_in_cjs", w[in_cjs].sum())
    model.tally.add("offences_proven", w[proven].sum())
    by_type = np.bincount(kind, weights=w, minlength=len(o.offence_types))
    for name, total in zip(o.offence_types, by_type):
        model.tally.add(f"offences_{name}", total)
