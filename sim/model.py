"""``ReoffendingModel``: a Mesa model of reoffending and the intergenerational risk of offending, one step a month."""

from __future__ import annotations

import gc

import mesa
import numpy as np

from .metrics import StockTally, justice_stocks, monthly_record, series_names
from .processes import courts, domestic_abuse, exits, family, intervention, justice, needs, offending
from .start import Start
from .state.agents import Person
from .state.events import EventLog, Tally
from .state.params import Params
from .state.rng import CounterRNG
from .state.scenario import realize, with_member

#: the revision of what the model does with given values, kept with every store of calibration runs (``sim ensemble``'s
#: settings.json) so that runs made by an earlier model are refused, not resumed or mixed with today's. Change it with
#: any change that moves the runs; the scenario's text has its own hash. (2026-12-06: the drawn past cautions its
#: proven offences as the run does, and sentencing reads convictions and cautions. Later that day: the parents of
#: people with no parent in the model are drawn as the start draws its adults' pasts, with their own parents' effect.
#: Then the drawn past followed needs and sentences month by month; then who of a partnering bucket's larger side waits
#: was drawn by lottery, no longer by propensity. That night: in-migrants bring partners, a single person with
#: nobody in their bucket looks again the next month, and the start draws its couples from the steady state of the
#: run's couple flows, with partners' deaths and moves. Later still: in-migrants are drawn as households, a couple
#: once; men partner two years later than women; the start's couples are set by men, partnered at the steady share.
#: Then: the start's wives' age gaps are drawn from the normal cut off at adult age, not piled at 18-19. Then: the
#: general population's households are as many as the Census children's share leaves beside the offenders'
#: children, not a fixed 210,000 on top of them; partners made by partners_of have the cut-off age gap too. Then: the
#: start's adults follow the general distribution in every year of age, the offenders' partners taken out of it and
#: the known offender groups cut to it; children and the parents drawn outside have a known father as often as the
#: run's births.)
MODEL_REVISION = "2026-12-07 desistance once a month in the drawn past"


class ReoffendingModel(mesa.Model):
    """Build the Essex population from ``params`` and advance it one month per ``step()``.

    Every person is a ``Person`` agent registered with the model; their state lives in ``self.people`` (arrays),
    and each monthly process acts on whole arrays. ``seed`` fixes the population and every random draw, including
    the values of parameters given as distributions (``parameter_draws``) and the calibration ensemble's member
    (``ensemble_member``). ``record_offences=False`` keeps every
    event but the (many) offences, enough for the cohort metrics; the microdata export needs them all. ``start``
    (a ``sim.start.Start`` of the same seed) starts it from another scenario's month 0, as a comparison's arms start
    from the baseline's; by default it builds its own.
    """

    def __init__(self, params: Params, seed: int | None = None, record_events: bool = True, record_offences: bool = True,
                 start: Start | None = None):
        seed = params.run.seed if seed is None else int(seed)
        super().__init__(rng=seed)
        params, self.ensemble_member = with_member(params, seed)  # calibrated values: this replicate's member (-1: the point fit)
        params, self.parameter_draws = realize(params, seed)  # uncertain values: this replicate's draws
        self.params = params
        self.seed = seed
        self.month = 0  # the month being simulated (0 = first)
        self.draws = CounterRNG(seed)
        self.events = EventLog(enabled=record_events, skip=() if record_offences else ("offence",))
        self.family_need_index = list(params.needs.names).index("family_relationships")
        self.iv_place_credit = 0.0  # intervention places accrued but not yet used (real families)
        self.hub_place_credit = 0.0  # DA hub places accrued but not yet used (real victims)
        self.da_perpetrators = np.zeros(0, np.int64)  # rows of everyone who would abuse a partner
        self.tally = Tally()
        self.finished = False  # set by release(): the agents are gone and the model is not to be stepped
        self._agents_by_row: list[Person | None] = []
        self.take_start(Start.build(params, seed, is_realized=True) if start is None else start.copy())
        p = self.people
        self.stocks = StockTally()  # the end-of-month stocks, kept up to date by monthly_record (first counted here)
        #: custody, licence and probation stocks as built, before month 0 (what stability is measured against)
        self.initial_stocks = justice_stocks(self.stocks.update(p, self.month - 12 * params.family.age_adult)[0])
        self.arrival_donors = exits.arrival_donors(self)  # whom resident-like in-migrants resemble
        if params.population.history_years == 0:
            offending.record_past_convictions(self, self.people.new_rows("records"))
            offending.prime_court_queue(self)
        domestic_abuse.prime(self)  # perpetrators; partner abuse in the year before the start, unless the past ran it
        self.datacollector = mesa.DataCollector(
            model_reporters={name: (lambda m, name=name: m.record[name]) for name in series_names(params)}
        )
        self.record: dict[str, float] = {}

    def step(self) -> None:
        """One month, processes in this order:"""
        if self.finished:
            raise RuntimeError("this model was released (ReoffendingModel.release): build a new one to step")
        self.tally.clear()
        justice.step(self)  # custody countdown, releases, licence and recall, orders ending
        intervention.step(self)  # multi-agency intervention: referrals, places, progress
        needs.step(self)  # criminogenic needs arise and resolve
        offending.step(self)  # offences, detection, court cases opened
        domestic_abuse.step(self)  # incidents between partners, children exposed, DA hub
        courts.step(self)  # convictions due, sentencing
        exits.step(self)  # deaths, moves away
        family.step(self)  # partnerships, births
        exits.arrivals(self)  # adults moving into the area
        offending.record_parents_outside(self, self.people.new_rows("parents"))  # newcomers' parents', if not here
        offending.record_past_convictions(self, self.people.new_rows("records"))  # and their records, from their past
        self.register_newcomers()  # a Person agent for each of the month's births and arrivals
        self.record = monthly_record(self)
        self.datacollector.collect(self)
        self.month += 1

    def take_start(self, start: Start) -> None:
        """The people, court queue and last releases at month 0 from ``start`` (this model's own, or a copy of one
        built with another scenario's values for the same seed, e.g. a comparison's baseline: ``Start.fits``); where
        its schedules were drawn with other offending, needs or partner-abuse values than this model's
        (``Start.schedules_differ``), every schedule is drawn again."""
        if not start.fits(self.params, self.seed):
            raise ValueError(f"a start built for seed {start.seed} with other population, demography or family values "
                             f"cannot start this model (seed {self.seed}): give it its own")
        self.people, self.cases, self.released = start.people, start.cases, start.released
        self.past_has_partner_abuse = start.past_has_partner_abuse  # (then domestic_abuse.prime need not prime it)
        if start.schedules_differ(self.params):
            self.people.touch(np.arange(self.people.n))
        self.register_newcomers()

    @property
    def age_months(self) -> np.ndarray:
        """Everyone's age in whole months this month (rows 0..n-1; the processes take only the rows they need)."""
        return self.people.age_months(self.month)

    def run(self, months: int | None = None, each_month=None) -> "ReoffendingModel":
        """Step ``months`` times (default: up to the end of the scenario's length), calling ``each_month(self)``
        after every step if given (e.g. ``metrics.AdultsByAge``)."""
        gc.freeze()  # the people built so far live through the run: the collector need not walk them again and again
        try:
            for _ in range(self.params.months - self.month if months is None else months):
                self.step()
                if each_month is not None:
                    each_month(self)
                gc.freeze()  # and so do those born or arrived this month: no full collection over a growing heap
        finally:
            gc.unfreeze()  # collectable again once the model is dropped (a caller's own freeze is undone too: else a
            # model run after one would stay frozen, cycles and all, for good)
        return self

    # --- agents as handles onto rows -------------------------------------------------------------------------
    def register_newcomers(self) -> None:
        """A ``Person`` agent for every row added since the last call (all at once: one bulk registration a month)."""
        self.add_agents(self.people.new_rows("agents"))

    def add_agents(self, rows: np.ndarray) -> None:
        """Register a ``Person`` agent for each new row (rows are appended in order)."""
        from .state.agents import create_agents  # as ``Person(self, row)`` for each row, in bulk

        gc_was_enabled = gc.isenabled()
        gc.disable()  # creating many objects triggers repeated full collections; none of them is garbage
        try:
            self._agents_by_row.extend(create_agents(self, rows.tolist()))
        finally:
            if gc_was_enabled:
                gc.enable()

    def remove_agents(self, rows: np.ndarray) -> None:
        """Deregister the agents of people who died or left (their rows keep their history)."""
        from .state.agents import remove_agents  # as ``agent.remove()`` for each, in bulk

        by_row = self._agents_by_row
        gone = []
        for row in rows.tolist() if isinstance(rows, np.ndarray) else rows:
            agent = by_row[row]
            if agent is not None:
                gone.append(agent)
                by_row[row] = None
        remove_agents(self, gone)

    def release(self) -> None:
        """Deregister every agent at once, when the model is finished with (a batch replicate, once its outputs are
        taken): cheaper than leaving the model to the garbage collector (see ``agents.release_agents``), and once
        dropped it is freed at once, arrays and all. Its arrays, events and collected series stay readable; it is
        not to be stepped again."""
        from .state.agents import release_agents

        release_agents(self)
        self._agents_by_row = [None] * len(self._agents_by_row)  # agent_at: nobody is an agent any more
        self.running = False  # Mesa's flag for a model that is done
        self.finished = True  # (step refuses to run)
        for name in ("step", "_user_step"):  # Mesa wraps step in bound methods the model holds itself: with them
            vars(self).pop(name, None)  # gone, nothing refers back to the model, so it goes as soon as it is dropped
        # Mesa 3.5+ also points back from the model's scenario and from the event generators that schedule its steps
        scenario = getattr(self, "scenario", None)
        if getattr(scenario, "model", None) is self:
            scenario.model = None
        vars(self).pop("_default_schedule", None)
        generators = vars(self).get("_event_generators")
        if isinstance(generators, set):
            generators.clear()

    def __enter__(self) -> "ReoffendingModel":
        """``with ReoffendingModel(...) as model:`` releases the model when the block ends (see ``release``)."""
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def redraw_death(self, rows) -> None:
        """Draw again the death month of ``rows`` (after a change to their record made outside the processes)."""
        exits.schedule_death(self, np.asarray(rows, dtype=np.int64), "death_redrawn")

    def agent_at(self, row: int) -> Person | None:
        """The live agent at a row, or None if that person has died or left."""
        return self._agents_by_row[row]
