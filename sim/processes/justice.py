"""Justice process: sentences served, release at the licence point, licence and recall, orders ending.

Runs first each month, so someone released this month is at liberty (and can offend) this month.
"""

from __future__ import annotations

import numpy as np

from ..state.people import CUSTODY, FREE, LICENCE, PROBATION
from . import intervention


def countdown(months_left: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Take a month off the spells of ``rows``; returns those of ``rows`` whose spell has now ended."""
    left = months_left[rows] - 1
    months_left[rows] = left
    return rows[left <= 0]


def step(model) -> None:
    """Only people under sentence are looked at: everyone else's state does not change here."""
    p, month, draws, log = model.people, model.month, model.draws, model.events
    n = p.n
    status = p.status[:n]
    ids = p.person_id[:n]
    p.months_since_release[:n] += 1
    p.months_since_order_start[:n] += 1
    serving = np.flatnonzero(status != FREE)  # under sentence (a comparison first: nonzero of int8 is slow)
    serving = serving[p.present[serving]]
    was = status[serving]  # status at the start of the month

    # custody: release at the end of the custodial part, onto licence if any is left
    rel = countdown(p.custody_months_left, serving[was == CUSTODY])
    status[rel] = np.where(p.licence_months_left[rel] > 0, LICENCE, FREE)
    p.months_since_release[rel] = 0
    p.changed(rel, hazard=True, needs=True)  # the release excess; at liberty
    model.released = rel
    log.add("release", rel, month)

    # licence: ends when the licence period is over; otherwise a monthly chance of recall for breach
    on_licence = serving[was == LICENCE]
    end = countdown(p.licence_months_left, on_licence)
    status[end] = FREE
    p.changed(end, needs=True)
    log.add("licence_end", end, month)
    still = on_licence[p.licence_months_left[on_licence] > 0]
    p_recall = model.params.justice.p_recall_per_month
    closer = intervention.supervision_factor(model.params.intervention, still, p, model.params.intervention.recall_rr_at_full_dose)
    recalled = still[draws.uniform("recall", month, ids[still]) < (p_recall if closer is None else p_recall * closer)]
    recall(model, recalled)

    # community and suspended-sentence orders end when their time is up
    oe = countdown(p.order_months_left, serving[was == PROBATION])
    status[oe] = FREE
    p.changed(oe, needs=True)
    log.add("order_end", oe, month)
    model.tally.add("releases", p.weight[rel].sum())


def recall(model, rows: np.ndarray) -> None:
    """Return people on licence to custody for the recall period. Their sentence's end does not move: the licence
    runs on inside, and what is left of it at re-release follows."""
    p = model.people
    left = p.licence_months_left[rows]
    inside = np.minimum(model.params.justice.recall_custody_months, left)  # never past the sentence's end
    p.status[rows] = CUSTODY
    p.custody_months_left[rows] = inside
    p.licence_months_left[rows] = left - inside
    p.last_custody_month[rows] = model.month
    p.changed(rows, needs=True, children=True)  # a parent in custody
    model.events.add("recall", rows, model.month)
    model.tally.add("recalls", p.weight[rows].sum())
