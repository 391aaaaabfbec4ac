"""Criminogenic needs process: needs arise and resolve each month; release from custody brings new ones.

Needs (accommodation, employment, substance misuse, ...) raise the offending hazard (see offending) and a parent's
family-relationships need raises their children's onset risk (see family). Onset rates are set so that, left to
themselves, the needs of people under supervision or recently convicted tend to offenders' prevalence, everyone
else's to the general population's. Needs are stored as a bit mask per person (bit j = need j).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..state.people import FREE
from . import intervention


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


def active_offender(p, rows: np.ndarray, month: int, recent_months: int) -> np.ndarray:
    """Under CJS supervision or convicted in the last ``recent_months``: held to offenders' need prevalence (an
    old conviction alone does not give someone an offender's needs)."""
    return (p.status[rows] != FREE) | (p.last_conviction_month[rows] >= month - recent_months)


def _tables(prm) -> np.ndarray:
    """Transition tables of the two groups: (0 general / 1 active offender, mask, need)."""
    return np.stack([transition_table(prm.prevalence_general, prm.monthly_resolution),
                     transition_table(prm.prevalence_offenders, prm.monthly_resolution)])


def transition_probabilities(masks: np.ndarray, group: np.ndarray, prm, extra_resolution: np.ndarray) -> np.ndarray:
    """Per-person monthly change probabilities (k x needs) with extra resolution, e.g. from an intervention."""
    prob = _tables(prm)[group, masks].copy()
    bits = (masks[:, None] >> np.arange(prob.shape[1])) & 1
    prob += np.where(bits == 1, extra_resolution, 0.0)
    return np.clip(prob, 0.0, 1.0)


def step(model) -> None:
    p, month, draws, prm = model.people, model.month, model.draws, model.params.needs
    n = p.n
    rows = np.flatnonzero(p.present[:n] & (model.ages >= model.params.family.age_adult))
    masks = p.needs[rows]
    group = active_offender(p, rows, month, prm.recent_conviction_months).astype(int)
    # one draw a person a month: at most one need changes (competing risks; monthly probabilities are small)
    cum = np.cumsum(_tables(prm), axis=2)  # (group, mask, need)
    u = draws.uniform("needs", month, p.person_id[rows])
    total = cum[group, masks, -1]
    # families in the multi-agency intervention resolve needs faster
    pos, extra = intervention.extra_need_resolution(model, rows)
    own_cum = np.cumsum(transition_probabilities(masks[pos], group[pos], prm, extra), axis=1)
    total[pos] = own_cum[:, -1]
    cand = np.flatnonzero(u < total)
    cand_cum = cum[group[cand], masks[cand]]
    in_iv = np.searchsorted(pos, cand)
    hit = (in_iv < len(pos)) & (pos[np.minimum(in_iv, max(len(pos) - 1, 0))] == cand) if len(pos) else np.zeros(len(cand), bool)
    cand_cum[hit] = own_cum[in_iv[hit]]
    which = (u[cand, None] >= cand_cum).sum(axis=1)
    p.needs[rows[cand]] = masks[cand] ^ (1 << which).astype(np.uint8)
    released = rows[p.months_since_release[rows] == 0]
    names = list(prm.names)
    for name, prob in (("accommodation", prm.p_accommodation_on_release), ("employment", prm.p_employment_on_release)):
        j = names.index(name)
        u = draws.uniform("needs_release", month, p.person_id[released], draw=j)
        p.needs[released[u < prob]] |= np.uint8(1 << j)
