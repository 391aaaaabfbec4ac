"""The domestic-abuse hub (Whole Essex Community Budget proposal): victims identified earlier, assessed, and the
high-risk ones given an independent advocate (IDVA-style) and a multi-agency safety plan (MARAC).

Each month: a victim whose run of incidents makes them high-risk (``domestic_abuse``) is referred with probability
``p_identified`` (how much of the police's high-risk caseload the hub sees); a place is taken if the capacity
accrued allows (``capacity_victims_per_year``, in real victims: advocates triage, they keep no waiting list);
a victim who starts engages with probability ``p_engage`` and is supported for ``support_months``. While an engaged
victim is supported, incidents against them come ``repeat_rr`` times as often and the escalation of their abuser's
rate is scaled by ``escalation_rr``; after support the effects decay with ``effect_decay_months``.

Capacity zero switches it off, and the run is then the baseline exactly: its draws use their own streams and its
effects act only on the rates of incidents against supported victims.
"""

from __future__ import annotations

import numpy as np

from .intervention import ACTIVE, LEFT, NONE, decay_table

SUPPORTED = ACTIVE  # (the intervention's codes, so that its ``strength_of`` reads the hub's states too)


def is_on(hub) -> bool:
    return hub.capacity_victims_per_year > 0 and hub.p_identified > 0


def effect_terms(model, month: int) -> tuple:
    """What the compiled incident rate needs of the hub in ``month``: (on, state, engaged, exit month, repeat rr,
    escalation rr, decay table)."""
    hub, p = model.params.da_hub, model.people
    if not is_on(hub) or month < 0:  # (before the start: nobody is supported yet)
        return False, p.hub_state, p.hub_engaged, p.hub_exit_month, 1.0, 1.0, np.ones(1)
    return (True, p.hub_state, p.hub_engaged, p.hub_exit_month, float(hub.repeat_rr), float(hub.escalation_rr),
            decay_table(hub.effect_decay_months, 240 * (1 + month // 240)))


def progress(model) -> None:
    """A month more for every supported victim; support ends after ``support_months``, or when they die or leave."""
    hub, p, month = model.params.da_hub, model.people, model.month
    if not is_on(hub):
        return
    funded = month < 12 * hub.funded_years  # after the funded years no new places accrue; those in support finish
    model.hub_place_credit = min(model.hub_place_credit + hub.capacity_victims_per_year / 12.0,
                                 hub.capacity_victims_per_year / 12.0 + p.view("weight").max()) if funded else 0.0
    active = np.flatnonzero(p.hub_state[: p.n] == SUPPORTED)
    p.hub_months[active] += 1
    leaving = active[(p.hub_months[active] >= hub.support_months) | ~p.present[active]]
    p.hub_state[leaving] = LEFT
    p.hub_exit_month[leaving] = month


def count(model) -> None:
    """The month's caseload: engaged victims supported at its end (``hub_active_victims``)."""
    p = model.people
    if is_on(model.params.da_hub):
        now = (p.hub_state[: p.n] == SUPPORTED) & p.hub_engaged[: p.n]
        model.tally.add("hub_active_victims", p.weight[: p.n][now].sum())


def refer(model, victims: np.ndarray) -> None:
    """The month's newly high-risk ``victims``: those the hub identifies start, as places allow (never supported
    before). When places run short the order is random with each agent's chance of coming first in proportion to the
    real people it stands for (weighted sampling, Efraimidis & Spirakis 2006: key u^(1/weight)), and places are taken
    in that order until one does not fit, so neither small nor large agents are favoured; the rest are not served."""
    hub, p, month, draws = model.params.da_hub, model.people, model.month, model.draws
    if not is_on(hub) or not len(victims):
        return
    victims = np.unique(victims)
    victims = victims[p.hub_state[victims] == NONE]
    identified = victims[draws.uniform("hub_identified", month, p.person_id[victims]) < hub.p_identified]
    model.tally.add("hub_referrals", p.weight[identified].sum())
    ids = p.person_id[identified]
    key = draws.uniform("hub_priority", month, ids) ** (1.0 / p.weight[identified])
    queue = identified[np.lexsort((ids, -key))]
    starting = queue[np.cumsum(p.weight[queue]) <= model.hub_place_credit]
    model.hub_place_credit -= p.weight[starting].sum()
    engaged = draws.uniform("hub_engage", month, p.person_id[starting]) < hub.p_engage
    p.hub_state[starting] = SUPPORTED
    p.hub_engaged[starting] = engaged
    p.hub_months[starting] = 0
    model.tally.add("hub_starts", p.weight[starting].sum())
    model.tally.add("hub_engaged_starts", p.weight[starting[engaged]].sum())
