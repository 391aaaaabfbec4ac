"""Justice process: sentences served, release at the licence point, licence and recall, orders ending.

Runs first each month, so someone released this month is at liberty (and can offend) this month.
"""

from __future__ import annotations

import numpy as np

from ..state.people import CUSTODY, FREE, LICENCE, PROBATION


def countdown(months_left: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Take a month off the spells of ``mask``; returns the mask of spells that have now ended."""
    months_left[mask] -= 1
    return mask & (months_left <= 0)


def step(model) -> None:
    p, month, draws, log = model.people, model.month, model.draws, model.events
    n = p.n
    present = p.present[:n]
    status = p.status[:n]
    ids = p.person_id[:n]
    p.months_since_release[:n] += 1
    p.months_since_order_start[:n] += 1

    # custody: release at the end of the custodial part, onto licence if any is left
    released = countdown(p.custody_months_left[:n], present & (status == CUSTODY))
    rel = np.flatnonzero(released)
    status[rel] = np.where(p.licence_months_left[rel] > 0, LICENCE, FREE)
    p.months_since_release[rel] = 0
    p.changed(rel, hazard=True, needs=True)  # the release excess; at liberty
    log.add("release", rel, month)

    # licence: ends when the licence period is over; otherwise a monthly chance of recall for breach
    on_licence = present & (status == LICENCE) & ~released
    ended = countdown(p.licence_months_left[:n], on_licence)
    end = np.flatnonzero(ended)
    status[end] = FREE
    p.changed(end, needs=True)
    log.add("licence_end", end, month)
    still = np.flatnonzero(on_licence & ~ended)
    recalled = still[draws.uniform("recall", month, ids[still]) < model.params.justice.p_recall_per_month]
    recall(model, recalled)

    # community and suspended-sentence orders end when their time is up
    order_ended = countdown(p.order_months_left[:n], present & (status == PROBATION))
    oe = np.flatnonzero(order_ended)
    status[oe] = FREE
    p.changed(oe, needs=True)
    log.add("order_end", oe, month)
    model.tally.add("releases", p.weight[rel].sum())


def recall(model, rows: np.ndarray) -> None:
    """Return people on licence to custody for the recall period; the rest of their licence waits."""
    p = model.people
    p.status[rows] = CUSTODY
    p.custody_months_left[rows] = model.params.justice.recall_custody_months
    p.last_custody_month[rows] = model.month
    p.changed(rows, needs=True, children=True)  # a parent in custody
    model.events.add("recall", rows, model.month)
    model.tally.add("recalls", p.weight[rows].sum())
