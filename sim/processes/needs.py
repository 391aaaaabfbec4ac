"""Criminogenic needs process: needs arise and resolve each month; release from custody brings new ones.

Needs (accommodation, employment, substance misuse, ...) raise the offending hazard (see offending) and a parent's
family-relationships need raises their children's onset risk (see family). Onset rates are set so that, left to
themselves, the needs of people under supervision or recently convicted tend to offenders' prevalence, everyone
else's to the general population's. Needs are stored as a bit mask per person (bit j = need j).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

from ..state.people import FREE
from ..state.rng import NEVER, next_month_at, uniform_at
from ..state.schedule import distinct
from . import intervention
from .intervention import ACTIVE


def onset_probability(prevalence: np.ndarray, resolution: np.ndarray) -> np.ndarray:
    """Monthly onset that keeps a two-state (need / no need) process at ``prevalence`` in equilibrium."""
    prevalence = np.clip(prevalence, 0.0, 0.999)
    return np.clip(resolution * prevalence / (1.0 - prevalence), 0.0, 1.0)


@lru_cache(maxsize=16)
def transition_table(prevalence: tuple, resolution: tuple) -> np.ndarray:
    """Monthly probability that need j changes, for every needs bit mask: (masks x needs)."""
    n = len(resolution)
    res = np.asarray(resolution, float)
    onset = onset_probability(np.asarray(prevalence, float), res)
    bits = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
    return np.where(bits == 1, res, onset)


def _tables(prm) -> np.ndarray:
    """Transition tables of the two groups: (0 general / 1 active offender, mask, need)."""
    return _both_tables(tuple(prm.prevalence_general), tuple(prm.prevalence_offenders), tuple(prm.monthly_resolution))


@lru_cache(maxsize=16)
def _both_tables(prevalence_general: tuple, prevalence_offenders: tuple, resolution: tuple) -> np.ndarray:
    tables = np.stack([transition_table(prevalence_general, resolution), transition_table(prevalence_offenders, resolution)])
    tables.flags.writeable = False  # shared between calls
    return tables


def cumulative_tables(prm) -> np.ndarray:
    """``_tables`` summed along the needs: (group, mask, need), the last column the total change probability."""
    return _both_cumulative(tuple(prm.prevalence_general), tuple(prm.prevalence_offenders), tuple(prm.monthly_resolution))


@lru_cache(maxsize=16)
def _both_cumulative(prevalence_general: tuple, prevalence_offenders: tuple, resolution: tuple) -> np.ndarray:
    tables = np.cumsum(_both_tables(prevalence_general, prevalence_offenders, resolution), axis=2)
    tables.flags.writeable = False
    return tables


def refresh(model) -> None:
    """Redraw the month of the next need change of everyone whose change probabilities may have changed: new people,
    people whose status, record or intervention changed (``people.pending["needs"]``), those whose recent conviction has just
    aged out of the offender group, and children coming of age (needs are an adult's)."""
    p, month, prm = model.people, model.month, model.params.needs
    rows = distinct(p.pending["needs"].take(), p.due("need_refresh", month))
    rows = rows[p.present[rows]]
    adult_months = math.ceil(12 * model.params.family.age_adult)
    adult = month - p.birth_month[rows] >= adult_months
    _refresh(rows, adult, change_probability(model, rows[adult])[:, -1], month, adult_months, prm.recent_conviction_months,
             p.status, p.last_conviction_month, p.birth_month, p.person_id, p.need_next, p.need_refresh,
             model.draws.key("needs_next", month))


@njit(cache=True, nogil=True)
def _refresh(rows, adult, total, month, adult_months, recent_months, status, last_conviction_month, birth_month,
             person_id, need_next, need_refresh, key):
    """A child waits for their coming of age; an adult's next change is drawn at their ``total`` change probability
    (draw 0), and their needs group is looked at again when a recent conviction ages out."""
    k = 0
    for i in range(len(rows)):
        r = rows[i]
        if not adult[i]:
            need_next[r] = NEVER
            need_refresh[r] = birth_month[r] + adult_months  # the month they come of age
            continue
        need_next[r] = next_month_at(person_id[r], key, 0, total[k], month, month)
        k += 1
        # the offender group of someone at liberty lasts until their last conviction is recent_conviction_months old
        expires = np.int64(last_conviction_month[r]) + recent_months + 1
        need_refresh[r] = min(expires, NEVER) if status[r] == FREE and expires > month else NEVER


def change_probability(model, rows: np.ndarray) -> np.ndarray:
    """Cumulative monthly probability that each need of ``rows`` changes (k x needs; the last column is the total),
    from the table of their group: active offenders (under CJS supervision or convicted in the last
    ``recent_conviction_months``, held to offenders' need prevalence; an old conviction alone does not give someone an
    offender's needs) or the general population; engaged families in the intervention resolve needs faster (each
    need's monthly probability of resolving multiplied by the intervention's factor, at most 1)."""
    p, prm, iv = model.people, model.params.needs, model.params.intervention
    on = intervention.changes_needs(iv)
    faster = 1.0 + (np.asarray(iv.need_resolution_rr_at_full_dose, float) - 1.0) * (iv.need_effect_scale * intervention.dose(iv)) if on else np.ones(len(prm.names))
    return _cumulative(np.asarray(rows, np.int64), model.month - prm.recent_conviction_months, p.status,
                       p.last_conviction_month, p.needs, p.iv_state, p.iv_engaged, _tables(prm), cumulative_tables(prm),
                       faster, on)


@njit(cache=True, nogil=True)
def _cumulative(rows, recent_since, status, last_conviction_month, needs, iv_state, iv_engaged, tables, cum_tables,
                faster, intervention_on):
    cum = np.empty((len(rows), tables.shape[2]))
    for i in range(len(rows)):
        r = rows[i]
        group = 1 if status[r] != FREE or last_conviction_month[r] >= recent_since else 0  # active offender
        mask = needs[r]
        if intervention_on and iv_state[r] == ACTIVE and iv_engaged[r]:
            total = 0.0
            for j in range(tables.shape[2]):
                x = tables[group, mask, j] * (faster[j] if (mask >> j) & 1 else 1.0)
                total += min(max(x, 0.0), 1.0)
                cum[i, j] = total
        else:
            for j in range(tables.shape[2]):
                cum[i, j] = cum_tables[group, mask, j]
    return cum


def schedule_next(model, rows: np.ndarray, key, draw: int, after: int) -> None:
    """Draw the month of the next need change of ``rows``, ``after`` months from now at the earliest (keyed draw
    ``draw`` of the stream whose ``key`` is given)."""
    p = model.people
    _redraw(rows, change_probability(model, rows)[:, -1], model.month + after, model.month, p.person_id, p.need_next, key,
            draw)


@njit(cache=True, nogil=True)
def _redraw(rows, total, start, month, person_id, need_next, key, draw):
    for i in range(len(rows)):
        r = rows[i]
        need_next[r] = next_month_at(person_id[r], key, draw, total[i], start, month)


def step(model) -> None:
    """Needs change one at a time (competing risks): for each adult the months between changes are geometric with
    the total monthly change probability, and which need changes is drawn when one does."""
    p, month, draws, prm = model.people, model.month, model.draws, model.params.needs
    refresh(model)
    rows = p.due("need_next", month)
    rows = rows[p.present[rows]]
    changed, gained, family = _change(rows, change_probability(model, rows), p.needs, p.person_id, draws.key("needs", month),
                                      np.uint8(1 << model.family_need_index))
    rows = rows[changed]
    p.changed(rows[gained], hazard=True)  # a need resolved only lowers the hazard: the bound still holds
    p.changed(rows[family], children=True)
    schedule_next(model, rows, draws.key("needs_next", month), 1, after=1)
    # release from custody brings accommodation and employment needs
    released = model.released  # this month, by justice
    released = released[p.present[released] & (month - p.birth_month[released] >= 12 * model.params.family.age_adult)]
    names = list(prm.names)
    gained = []
    for name, prob in (("accommodation", prm.p_accommodation_on_release), ("employment", prm.p_employment_on_release)):
        j = names.index(name)
        u = draws.uniform("needs_release", month, p.person_id[released], draw=j)
        new = released[(u < prob) & ~p.has_need(released, j)]
        p.needs[new] |= np.uint8(1 << j)
        gained.append(new)
    gained = distinct(*gained)
    p.changed(gained, hazard=True)
    schedule_next(model, gained, draws.key("needs_next", month), 2, after=1)


@njit(cache=True, nogil=True)
def _change(rows, cum, needs, person_id, key, family_bit):
    """Which need of each row changes, by one keyed uniform against its cumulative probabilities ``cum``, and the bit
    flipped. Returns, per row, whether a need changed (always, but for rounding at the top), whether it was gained,
    and whether it is the family-relationships need, gained."""
    changed = np.zeros(len(rows), np.bool_)
    gained = np.zeros(len(rows), np.bool_)
    family = np.zeros(len(rows), np.bool_)
    for i in range(len(rows)):
        r = rows[i]
        u = uniform_at(person_id[r], key, 0) * cum[i, -1]
        which = 0
        while which < cum.shape[1] and cum[i, which] <= u:
            which += 1
        if which < cum.shape[1]:
            bit = np.uint8(1 << which)
            changed[i] = True
            gained[i] = needs[r] & bit == 0
            family[i] = gained[i] and bit == family_bit
            needs[r] ^= bit
    return changed, gained[changed], family[changed]


def needs_at_prevalence(draws, stream: str, month: int, ids: np.ndarray, prevalence: tuple) -> np.ndarray:
    """Needs bit masks with independent needs at the given prevalences (one keyed draw per person and need)."""
    masks = np.zeros(len(ids), np.uint8)
    for j, prev in enumerate(prevalence):
        masks |= ((draws.uniform(stream, month, ids, j) < prev).astype(np.uint8) << j).astype(np.uint8)
    return masks
