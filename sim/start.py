"""The start: the population at month 0 and what its past left (sentences, records, the court queue).

A model builds its own start (``Start.build``), or takes a copy of one built with another scenario's values for the
same seed: a comparison's arms all take the baseline's, because a programme or policy that begins at month 0 cannot
change who lives in the area or what their past made them (and the start, built once, is the costliest part of a
replicate's build). ``Start.fits`` says when one start can serve another scenario.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .processes import courts, domestic_abuse, justice, needs, offending
from .processes.courts import PendingCases
from .state import population
from .state.events import EventLog, Tally
from .state.params import Params
from .state.people import People
from .state.rng import CounterRNG
from .state.scenario import realize, with_member

#: sections whose values shape who lives in the area at the start: a start serves only scenarios that share them
POPULATION_SECTIONS = ("population", "demography", "family")
#: sections the schedules drawn in the past depend on (the offending hazard's bounds, need changes; partner abuse: a
#: child's exposure raises the hazard its bound allows for): a scenario that differs in them takes the start, then
#: redraws every schedule. Sentencing ([justice]) is not among them: a sentencing what-if keeps the baseline's draws
SCHEDULE_SECTIONS = ("offending", "needs", "domestic_abuse")


def realized(params: Params, seed: int) -> Params:
    """``params`` as a model with ``seed`` runs them: its calibration ensemble member and its draws of uncertain values."""
    return realize(with_member(params, seed)[0], seed)[0]


@dataclass
class Start:
    """The state at month 0 for one seed: the people (with their records, sentences and schedules), the court queue
    and the month before's releases, built with ``params`` (as realized for ``seed``: ensemble member and draws)."""

    params: Params
    seed: int
    people: People
    cases: PendingCases
    released: np.ndarray

    @classmethod
    def build(cls, params: Params, seed: int, is_realized: bool = False) -> "Start":
        """Synthesize the starting population of ``params`` (realized here for ``seed`` unless ``is_realized``) and,
        with ``population.history_years``, simulate its recent past (``_Past.simulate``)."""
        params = params if is_realized else realized(params, seed)
        past = _Past(params, seed)
        population.synthesize(params, np.random.default_rng(seed), past.people)
        if params.population.history_years > 0:
            past.simulate(12 * params.population.history_years)
        else:
            offending.record_parents_outside(past, past.people.new_rows("parents"))
        return cls(params, seed, past.people, past.cases, past.released)

    @property
    def past_has_partner_abuse(self) -> bool:
        """Whether its simulated past ran partner abuse (its DA court cases, victims' runs and children's exposure)."""
        return self.params.population.history_years > 0 and domestic_abuse.is_on(self.params.domestic_abuse)

    def fits(self, params: Params, seed: int) -> bool:
        """Whether this start can be the start of ``params`` (realized) for ``seed``: same seed and the same
        population (``POPULATION_SECTIONS``)."""
        return seed == self.seed and all(getattr(params, s) == getattr(self.params, s) for s in POPULATION_SECTIONS)

    def schedules_differ(self, params: Params) -> bool:
        """Whether the schedules drawn in the past (with the start's values) would be drawn otherwise with ``params``
        (``SCHEDULE_SECTIONS``): then they must be drawn again from its own, so that thinning stays exact."""
        return any(getattr(params, s) != getattr(self.params, s) for s in SCHEDULE_SECTIONS)

    def copy(self) -> "Start":
        """An independent copy, for one model to take and change."""
        people = copy.deepcopy(self.people)
        people.weight.flags.writeable = False  # (a copy is writeable; weights are fixed once set: the stock table counts on it)
        return Start(self.params, self.seed, people, copy.deepcopy(self.cases), self.released.copy())


class _Past:
    """What the processes of the past read and write, without the model around them (no agents, no log)."""

    def __init__(self, params: Params, seed: int):
        self.params = params
        self.month = 0
        self.draws = CounterRNG(seed)
        self.people = People()
        self.events = EventLog(enabled=False)
        self.cases = PendingCases()
        self.tally = Tally()
        self.released = np.zeros(0, np.int64)
        self.family_need_index = list(params.needs.names).index("family_relationships")
        self.da_perpetrators = np.zeros(0, np.int64)  # (drawn at the past's first month when partner abuse is on)
        self.has_partner_abuse = domestic_abuse.is_on(params.domestic_abuse)

    def simulate(self, months: int) -> None:
        """The start's justice state from the model's own flows (``population.history_years``): everyone at liberty
        with the record their hazard would have given them ``months`` before the start, then those months of justice,
        needs, offending, partner abuse (when on) and courts for the starting population (as it is at the start: no births, deaths, moves or
        partnerships), unlogged and uncounted. Who is in custody, on licence or on an order at month 0, their records
        and the court queue are then what the flows make them (with ``population.history_from_drawn_stocks``, the flows
        and what is left of the stocks drawn at the past's start). The court queue starts
        empty: the records drawn run to the first month, so its first months' convictions are low, which the years
        after make up. With ``population.history_from_drawn_stocks`` the past begins instead with the sentences the
        synthesis drew, ``months`` earlier (``population.sentences_moved_back``)."""
        drawn = population.sentence_state(self.people) if self.params.population.history_from_drawn_stocks else None
        population.clear_justice_state(self.people)
        self.month = -months
        offending.record_parents_outside(self, self.people.new_rows("parents"))  # (before the records, which read them)
        offending.record_past_convictions(self, self.people.new_rows("records"), leave_recent_to_groups=False)
        if drawn is not None:
            population.sentences_moved_back(self.people, drawn, months, int(12 * self.params.family.age_adult))
        if self.has_partner_abuse:  # who would abuse a partner (the model draws them again, with its own values)
            domestic_abuse.draw_perpetrators(self, np.arange(self.people.n))
        while self.month < 0:
            self.tally.clear()
            justice.step(self)
            needs.step(self)
            offending.step(self)
            if self.has_partner_abuse:
                domestic_abuse.past_month(self)
            courts.step(self)
            self.month += 1
        self.tally.clear()
        population.mark_start_state(self.people, int(12 * self.params.family.age_adult))
