"""Courts process: proven offences come to conviction after their court lag, and sentencing follows.

When out-of-court disposals are on (``justice.cautions``), the police first deal with some of the month's proven
offences by a caution (for children: a reprimand, final warning or youth caution), by the person's record and age,
never for someone under sentence: a caution is a proven offence on the record (the MoJ counts it as one,
and a first caution makes a first-time entrant) but not a conviction, and goes to no court and no sentence.
A conviction adds to the person's record and may end their offending career (desistance after a conviction, as
in MacLeod, Grove & Farrington's model of criminal careers, lowers their propensity). Sentencing picks custody, a community (or suspended-sentence) order or
another disposal (fine, discharge) by a logistic model of the record (previous convictions and cautions), the offence, age and
whether the person was already under supervision; a conviction on licence may also bring a recall.
"""

from __future__ import annotations

import numpy as np

from ..state.people import CUSTODY, FREE, LICENCE, PROBATION
from ..state.schedule import distinct_inverse
from . import exits, justice


class PendingCases:
    """Court cases waiting for their conviction month: row, offence month, due month, offence type."""

    def __init__(self):
        self.row = np.zeros(0, np.int64)
        self.offence_month = np.zeros(0, np.int32)
        self.due_month = np.zeros(0, np.int32)
        self.offence_type = np.zeros(0, np.int8)

    def add(self, rows, offence_month, due_month, offence_type) -> None:
        if len(rows) == 0:
            return
        self.row = np.concatenate([self.row, rows])
        self.offence_month = np.concatenate([self.offence_month, np.full(len(rows), offence_month, np.int32)])
        self.due_month = np.concatenate([self.due_month, np.asarray(due_month, np.int32)])
        self.offence_type = np.concatenate([self.offence_type, np.asarray(offence_type, np.int8)])

    def pop_due(self, month: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Remove and return the cases due by ``month`` (rows, offence months, offence types)."""
        due = self.due_month <= month
        out = self.row[due], self.offence_month[due], self.offence_type[due]
        keep = ~due
        self.row, self.offence_month = self.row[keep], self.offence_month[keep]
        self.due_month, self.offence_type = self.due_month[keep], self.offence_type[keep]
        return out

    def __len__(self) -> int:
        return len(self.row)


def logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def p_custody(record, offence_log_odds, under_supervision, is_youth, j) -> np.ndarray:
    """Probability a conviction ends in custody (``j`` is the justice parameters), by the ``record`` of previous
    convictions and cautions (the history the sentencing figures it rests on count)."""
    x = (
        j.custody_log_odds_intercept
        + j.custody_log_odds_per_log_prev * np.log1p(record)
        + offence_log_odds
        + j.custody_log_odds_under_supervision * under_supervision
        + j.youth_custody_log_odds * is_youth
    )
    return logistic(x)


def p_order(record, j) -> np.ndarray:
    """Probability of a community or suspended-sentence order, given the sentence is not custody, by the ``record`` of
    previous convictions and cautions."""
    return logistic(j.order_log_odds_intercept + j.order_log_odds_per_log_prev * np.log1p(record))


def p_caution(prev_offences, is_youth, j) -> np.ndarray:
    """Probability that a proven offence is dealt with by a caution rather than at court (someone at liberty)."""
    return logistic(j.caution_log_odds_intercept + j.caution_log_odds_per_log_prev * np.log1p(prev_offences)
                    + j.youth_caution_log_odds * is_youth)


def p_desist(record, j) -> np.ndarray:
    """Probability that a conviction (or caution) ends a criminal career, by the ``record`` before it (convictions and
    cautions; falls as the record accumulates)."""
    return logistic(j.desist_log_odds_intercept + j.desist_log_odds_per_log_prev * np.log1p(record))


def spell_months(z: np.ndarray, median: float, sigma: float) -> np.ndarray:
    """Lognormal spell length in whole months (at least 1) from standard normal draws."""
    return np.maximum(1, np.rint(median * np.exp(sigma * z))).astype(np.int64)


def sentence_months(z: np.ndarray, short: np.ndarray | None, j) -> np.ndarray:
    """Custodial sentence lengths from standard normal draws: the shorter lognormal (``justice.sentence_short_*``)
    where ``short``, the other elsewhere (``short`` None: all from the other, one lognormal)."""
    s = spell_months(z, j.sentence_median_months, j.sentence_sigma)
    if short is not None:
        s[short] = spell_months(z[short], j.sentence_short_median_months, j.sentence_short_sigma)
    return s


def step(model) -> None:
    p, month, draws = model.people, model.month, model.draws
    j, o = model.params.justice, model.params.offending
    rows, offence_month, kind = model.cases.pop_due(month)
    keep = p.present[rows]  # cases of people who died or left lapse
    rows, offence_month, kind = rows[keep], offence_month[keep], kind[keep]
    if len(rows) == 0:
        return
    if j.cautions:
        cautioned = caution(model, rows, offence_month, kind)
        rows, offence_month, kind = rows[~cautioned], offence_month[~cautioned], kind[~cautioned]
        if len(rows) == 0:
            return
    model.events.add("conviction", rows, month, offence_month=offence_month, offence_type=kind)
    # one sentencing decision per person per month, for their most serious case
    people_conv, case_person = distinct_inverse(rows)
    worst = np.full(len(people_conv), -np.inf)  # the most serious case of each person convicted
    np.maximum.at(worst, case_person, np.asarray(o.offence_type_custody_log_odds)[kind])
    w = p.weight[people_conv]
    prev = p.prev_convictions[people_conv].copy()
    age = (month - p.birth_month[people_conv]) / 12.0
    youth = age < model.params.family.age_adult
    model.tally.add("convictions", p.weight[rows].sum())
    model.tally.add("children_convicted", w[youth].sum())
    record = prev + p.prev_cautions[people_conv]  # proven offences before these: convictions and cautions
    _tally_first_entries(model, w, record == 0, youth)
    p.prev_convictions[people_conv] += np.bincount(case_person, minlength=len(people_conv)).astype(np.int32)
    p.last_conviction_month[people_conv] = month
    p.changed(people_conv, needs=True, children=True)  # their needs group, sentence and (for their children) record
    exits.schedule_death(model, people_conv[prev == 0], "death_after_conviction")  # offenders' mortality from now
    desist = draws.uniform("desistance", month, p.person_id[people_conv]) < p_desist(record, j)
    p.propensity[people_conv[desist]] *= j.desisted_propensity_multiplier

    ids = p.person_id[people_conv]
    status = p.status[people_conv]
    pc = p_custody(record, worst, status != FREE, youth, j)
    u = draws.uniform("sentencing", month, ids)
    to_custody = u < pc
    to_order = ~to_custody & (draws.uniform("sentencing", month, ids, 1) < p_order(record, j))
    sentence_custody(model, people_conv[to_custody], draws.normal("sentence_length", month, ids[to_custody]))
    start_order(model, people_conv[to_order & (status != CUSTODY)], draws.normal("order_length", month, ids[to_order & (status != CUSTODY)]))
    on_licence = people_conv[~to_custody & (status == LICENCE)]
    lic_ids = p.person_id[on_licence]
    justice.recall(model, on_licence[draws.uniform("recall_on_conviction", month, lic_ids) < j.p_recall_on_conviction])


def caution(model, rows: np.ndarray, offence_month: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Out-of-court disposals of this month's due cases (rows, one per case): one decision per person, for all their
    cases, by their record (convictions and cautions) and age; someone under sentence goes to court. The cautioned
    get a ``caution`` event per case and the record, first-time entry and desistance chance a proven offence brings.
    Returns which cases were cautioned."""
    p, month, draws, j = model.people, model.month, model.draws, model.params.justice
    people_due, case_person = distinct_inverse(rows)
    record = p.prev_convictions[people_due] + p.prev_cautions[people_due]
    youth = (month - p.birth_month[people_due]) / 12.0 < model.params.family.age_adult
    ids = p.person_id[people_due]
    chosen = (p.status[people_due] == FREE) & (draws.uniform("caution", month, ids) < p_caution(record, youth, j))
    cases = chosen[case_person]
    if not cases.any():
        return cases
    model.events.add("caution", rows[cases], month, offence_month=offence_month[cases], offence_type=kind[cases])
    who = people_due[chosen]
    w, first, youth = p.weight[who], record[chosen] == 0, youth[chosen]
    model.tally.add("cautions", p.weight[rows[cases]].sum())
    _tally_first_entries(model, w, first, youth)
    p.prev_cautions[who] += np.bincount(case_person[cases], minlength=len(people_due))[chosen].astype(np.int32)
    desist = draws.uniform("desistance", month, ids[chosen]) < p_desist(record[chosen], j)
    p.propensity[who[desist]] *= j.desisted_propensity_multiplier
    return cases


def _tally_first_entries(model, weight: np.ndarray, first: np.ndarray, youth: np.ndarray) -> None:
    """First-time entrants (all ages, and children): people whose first conviction or caution this is."""
    model.tally.add("first_time_entrants", weight[first].sum())
    model.tally.add("child_first_time_entrants", weight[first & youth].sum())


def sentence_custody(model, rows: np.ndarray, z: np.ndarray) -> None:
    """Custodial sentences: the custodial part (release_fraction, at least a month) then licence if long enough.
    Someone already serving a sentence (inside, recalled or on licence) keeps its end: the new one runs alongside it
    (Criminal Justice Act 2003 s.265(1)), inside for the longer of the two custodial parts, then on licence to the later
    of the two ends (s.249(1): a licence remains in force for the remainder of the sentence)."""
    p, j = model.people, model.params.justice
    short = (model.draws.uniform("sentence_part", model.month, p.person_id[rows]) < j.sentence_short_share
             if j.sentence_short_share > 0 else None)
    s = sentence_months(z, short, j)
    custody_part = np.maximum(1, np.ceil(s * j.release_fraction)).astype(np.int64)
    licence_part = np.where(s >= j.licence_min_sentence_months, s - custody_part, 0)
    already = p.status[rows] == CUSTODY
    model.events.add("order_end", rows[p.status[rows] == PROBATION], model.month)
    # the sentences' ends: the later of the one being served (inside and on licence) and the new one's
    served_inside = np.where(already, p.custody_months_left[rows], 0).astype(np.int64)
    serving = np.isin(p.status[rows], (CUSTODY, LICENCE))
    end = np.maximum(np.where(serving, served_inside + p.licence_months_left[rows], 0), custody_part + licence_part)
    custody_part = np.maximum(served_inside, custody_part)
    p.custody_months_left[rows] = custody_part
    p.licence_months_left[rows] = end - custody_part
    p.order_months_left[rows] = 0
    p.status[rows] = CUSTODY
    model.events.add("custody_start", rows[~already], model.month)
    p.last_custody_month[rows[~already]] = model.month
    model.tally.add("custody_starts", p.weight[rows[~already]].sum())


def start_order(model, rows: np.ndarray, z: np.ndarray) -> None:
    """Community or suspended-sentence orders (replacing any current order; licence is left to run on)."""
    p, j = model.people, model.params.justice
    on_licence = p.status[rows] == LICENCE
    rows = rows[~on_licence]
    z = z[~on_licence]
    model.events.add("order_end", rows[p.status[rows] == PROBATION], model.month)
    p.status[rows] = PROBATION
    p.order_months_left[rows] = spell_months(z, j.order_median_months, j.order_sigma)
    p.months_since_order_start[rows] = -1  # 0 next month, the order's first full month (justice counts it up first)
    p.changed(rows, hazard=True)  # the order-start excess
    model.events.add("order_start", rows, model.month)
    model.tally.add("order_starts", p.weight[rows].sum())
