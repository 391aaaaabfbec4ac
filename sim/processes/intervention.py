"""The multi-agency offender-and-family intervention (Whole Essex Community Budget proposal).

Police, probation, children's services, health, housing and the voluntary sector work together on the offender's
behaviour and on the family's needs. Each month: offenders who left custody or started an order
``referral_delay_months`` ago, have at least ``min_convictions`` convictions (the current one included) and a
child under the adult age living in the area are referred with probability
``coverage``; referred families start as places allow (``capacity_families_per_year``, longest-waiting first)
or lapse after ``max_wait_months``; a family that starts engages with probability ``p_engage`` and stays
``duration_months`` unless it drops out or the offender goes to custody, dies or leaves.

While an engaged family is in the intervention, at ``dose = 1 - exp(-hours / dose_scale_hours)`` it acts through
four channels (``CHANNELS``), each of which may help, do nothing or harm:
- direct: the offender's hazard is multiplied by ``1 - (1 - offending_rr_at_full_dose) x dose``;
- children: the children's hazard by ``1 - (1 - child_rr_at_full_dose) x dose``;
- needs: each of the offender's needs resolves ``1 + (need_resolution_rr_at_full_dose - 1) x need_effect_scale x dose``
  times as often;
- supervision: an offence is proven ``1 + (detection_rr_at_full_dose - 1) x dose`` times as often, and recall on
  licence comes ``1 + (recall_rr_at_full_dose - 1) x dose`` times as often (closer supervision finds more).
After they leave the direct and children's effects decay with ``effect_decay_months``; the needs and supervision
channels act only while the family is in the intervention. Reduced parental imprisonment follows from the
offender's lower offending. Coverage, intensity or capacity of zero switch it off, and the run is then the baseline
exactly (its draws use their own streams, so nobody else's random numbers change); so is a run in which every
channel is at "no effect" (``NO_EFFECT``), apart from the intervention's cost.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
from numba import njit

from ..state.people import CUSTODY, FREE, LICENCE, PROBATION

NONE, WAITING, ACTIVE, LEFT = 0, 1, 2, 3

#: the channels through which the intervention acts, each as its keys' values at "no effect"
CHANNELS = {
    "direct": {"offending_rr_at_full_dose": 1.0},
    "children": {"child_rr_at_full_dose": 1.0},
    "needs": {"need_effect_scale": 0.0},
    "supervision": {"detection_rr_at_full_dose": 1.0, "recall_rr_at_full_dose": 1.0},
}
NO_EFFECT = {key: value for keys in CHANNELS.values() for key, value in keys.items()}


def is_on(iv) -> bool:
    return iv.coverage > 0 and iv.intensity_hours_per_month > 0 and iv.capacity_families_per_year > 0


def dose(iv) -> float:
    """Share of the maximum effect delivered at this intensity (diminishing returns)."""
    return 1.0 - np.exp(-iv.intensity_hours_per_month / iv.dose_scale_hours)


def changes_needs(iv) -> bool:
    """Whether the needs channel acts (else the families' needs change exactly as in the baseline)."""
    return is_on(iv) and iv.need_effect_scale > 0 and any(x != 1 for x in iv.need_resolution_rr_at_full_dose)


def without_channels(params, channels):
    """``params`` with the named channels (keys of ``CHANNELS``) at no effect: an arm of the decomposition, which
    shares its seeds and every other draw with the full intervention (common random numbers)."""
    unknown = set(channels) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown channel(s) {sorted(unknown)}: allowed {', '.join(CHANNELS)}")
    off = {key: value for name in channels for key, value in CHANNELS[name].items()}
    return replace(params, intervention=replace(params.intervention, **off))


def supervision_factor(iv, rows: np.ndarray, people, rr: float) -> np.ndarray | None:
    """The multiplier ``1 + (rr - 1) x dose`` for those of ``rows`` engaged in the intervention now, 1 for the rest;
    None when it is 1 for everyone (so that the caller's draws are exactly the baseline's)."""
    if not is_on(iv) or rr == 1.0 or not len(rows):
        return None
    now = (people.iv_state[rows] == ACTIVE) & people.iv_engaged[rows]
    return np.where(now, 1.0 + (rr - 1.0) * dose(iv), 1.0)


@lru_cache(maxsize=16)
def decay_table(decay_months: float, months: int) -> np.ndarray:
    """``exp(-t / decay_months)`` for whole months t = 0 .. ``months`` - 1: the effect's strength t months after leaving."""
    return np.exp(-np.arange(months) / decay_months)


@njit(cache=True, nogil=True, inline="always")
def strength_of(row, month, iv_state, iv_engaged, iv_exit_month, decay):
    """Strength of the intervention's direct effects on one row: 1 while an engaged family is in the intervention,
    decaying after it leaves (``decay``: a ``decay_table`` long enough for any month since), 0 otherwise."""
    if not iv_engaged[row]:
        return 0.0
    if iv_state[row] == ACTIVE:
        return 1.0
    if iv_state[row] == LEFT:
        return decay[max(month - iv_exit_month[row], 0)]
    return 0.0


def hazard_terms(model, bound: bool):
    """What the compiled hazard (``offending.hazard``) needs of the intervention: (mode, offender factor, child
    factor, state, engaged, exit month, decay table). Mode 0: off (factors 1); 1: ``bound``, the factors are the
    largest multipliers of the families engaged (above 1 only if the effect harms); 2: the multipliers are
    1 - factor x strength of the offender or the stronger parent."""
    iv, p = model.params.intervention, model.people
    if not is_on(iv):
        return 0, 1.0, 1.0, p.iv_state, p.iv_engaged, p.iv_exit_month, np.ones(1)
    k_offender, k_child = (1.0 - iv.offending_rr_at_full_dose) * dose(iv), (1.0 - iv.child_rr_at_full_dose) * dose(iv)
    if bound:
        return 1, max(1.0, 1.0 - k_offender), max(1.0, 1.0 - k_child), p.iv_state, p.iv_engaged, p.iv_exit_month, np.ones(1)
    return 2, k_offender, k_child, p.iv_state, p.iv_engaged, p.iv_exit_month, decay_table(iv.effect_decay_months, 240 * (1 + model.month // 240))


def parents_of_dependent_children(model) -> np.ndarray:
    """Boolean per row: has a child under the adult age who is present."""
    p = model.people
    n = p.n
    has = np.zeros(n, bool)
    kids = np.flatnonzero(p.present[:n] & (model.age_months < 12 * model.params.family.age_adult))
    for parent in (p.father[kids], p.mother[kids]):
        has[parent[parent >= 0]] = True
    return has


def step(model) -> None:
    iv = model.params.intervention
    if not is_on(iv):
        return
    p, month, draws = model.people, model.month, model.draws
    n = p.n
    present = p.present[:n]
    state = p.iv_state[:n]
    ids = p.person_id[:n]
    tally = model.tally

    # families in the intervention: a month more; completion, drop-out, custody, death or moving away end it
    active = np.flatnonzero(state == ACTIVE)
    p.iv_months[active] += 1
    # custody since the last step (sentenced last month, or recalled this month) ends it, even if already released
    lost = ~present[active] | (p.status[active] == CUSTODY) | (p.last_custody_month[active] >= month - 1)
    dropout = p.iv_engaged[active] & (draws.uniform("iv_dropout", month, ids[active]) < iv.p_dropout_per_month)
    done = p.iv_months[active] >= iv.duration_months
    leaving = active[lost | dropout | done]
    state[leaving] = LEFT
    p.iv_exit_month[leaving] = month
    p.changed(leaving, needs=changes_needs(iv))  # their needs no longer resolve faster
    tally.add("iv_completions", p.weight[active[done & ~lost & ~dropout]].sum())

    # referrals waiting for a place lapse after max_wait_months, or when the offender is no longer there
    waiting = np.flatnonzero(state == WAITING)
    p.iv_months[waiting] += 1
    gone = ~present[waiting] | (p.status[waiting] == CUSTODY) | (p.last_custody_month[waiting] >= month - 1)
    lapse = waiting[(p.iv_months[waiting] > iv.max_wait_months) | gone]
    state[lapse] = NONE if iv.rerefer_after_lapse else LEFT  # NONE: referred again at their next release or order
    p.iv_exit_month[lapse] = month

    # new referrals (while the programme takes them): released or started an order referral_delay_months ago,
    # repeat offenders, with children
    if month >= 12 * iv.referral_years:
        _start_places(model, iv)
        return
    adult = model.age_months >= 12 * model.params.family.age_adult
    candidate = present & (state == NONE) & adult & (p.prev_convictions[:n] >= iv.min_convictions)
    status = p.status[:n]
    route = np.zeros(n, bool)
    if iv.eligible_on_release:
        route |= (p.months_since_release[:n] == iv.referral_delay_months) & ((status == LICENCE) | (status == FREE))
    if iv.eligible_on_order_start:
        route |= (p.months_since_order_start[:n] == iv.referral_delay_months) & (status == PROBATION)
    eligible = np.flatnonzero(candidate & route)
    if iv.require_dependent_children and len(eligible):
        eligible = eligible[parents_of_dependent_children(model)[eligible]]
    referred = eligible[draws.uniform("iv_referral", month, ids[eligible]) < iv.coverage]
    state[referred] = WAITING
    p.iv_months[referred] = 0
    tally.add("iv_eligible", p.weight[eligible].sum())
    tally.add("iv_referrals", p.weight[referred].sum())
    _start_places(model, iv)


def _start_places(model, iv) -> None:
    """Places: capacity accrues monthly (in real families); the longest-waiting families start first."""
    p, month, draws, tally = model.people, model.month, model.draws, model.tally
    state, ids = p.iv_state[: p.n], p.person_id[: p.n]
    model.iv_place_credit = min(model.iv_place_credit + iv.capacity_families_per_year / 12.0, iv.capacity_families_per_year / 12.0 + p.view("weight").max())
    queue = np.flatnonzero(state == WAITING)
    queue = queue[np.lexsort((ids[queue], -p.iv_months[queue]))]
    cum_weight = np.cumsum(p.weight[queue])
    starting = queue[cum_weight <= model.iv_place_credit]
    model.iv_place_credit -= p.weight[starting].sum()
    engaged = draws.uniform("iv_engage", month, ids[starting]) < iv.p_engage
    state[starting] = np.where(engaged, ACTIVE, LEFT)
    p.iv_engaged[starting] = engaged
    p.iv_months[starting] = 0
    p.iv_exit_month[starting[~engaged]] = month
    # their needs resolve faster from now; if an effect harms, their (and their children's) hazard bounds rise
    p.changed(starting[engaged], needs=changes_needs(iv), hazard=iv.offending_rr_at_full_dose > 1, children=iv.child_rr_at_full_dose > 1)
    tally.add("iv_starts", p.weight[starting].sum())
    tally.add("iv_engaged_starts", p.weight[starting[engaged]].sum())
