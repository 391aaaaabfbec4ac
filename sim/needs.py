"""Criminogenic needs process: needs arise and resolve each month; release from custody brings new ones.

Needs (accommodation, employment, substance misuse, ...) raise the offending hazard (see offending) and a parent's
family-relationships need raises their children's onset risk (see family). Onset rates are set so that, left to
themselves, needs stay at their starting prevalence. Needs are stored as a bit mask per person (bit j = need j).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


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


def step(model) -> None:
    p, month, draws, prm = model.people, model.month, model.draws, model.params.needs
    n = p.n
    rows = np.flatnonzero(p.present[:n] & (model.ages >= model.params.family.age_adult))
    masks = p.needs[rows]
    known = p.prev_convictions[rows] > 0
    # one draw a person a month: at most one need changes (competing risks; monthly probabilities are small)
    cum = np.stack(
        [
            np.cumsum(transition_table(prm.prevalence_general, prm.monthly_resolution), axis=1),
            np.cumsum(transition_table(prm.prevalence_offenders, prm.monthly_resolution), axis=1),
        ]
    )  # (group, mask, need)
    u = draws.uniform("needs", month, p.person_id[rows])
    total = cum[known.astype(int), masks, -1]
    cand = np.flatnonzero(u < total)
    which = (u[cand, None] >= cum[known[cand].astype(int), masks[cand]]).sum(axis=1)
    p.needs[rows[cand]] = masks[cand] ^ (1 << which).astype(np.uint8)
    released = rows[p.months_since_release[rows] == 0]
    names = list(prm.names)
    for name, prob in (("accommodation", prm.p_accommodation_on_release), ("employment", prm.p_employment_on_release)):
        j = names.index(name)
        u = draws.uniform("needs_release", month, p.person_id[released], draw=j)
        p.needs[released[u < prob]] |= np.uint8(1 << j)
