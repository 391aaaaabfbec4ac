"""People as a structure of arrays: one row per person who has ever lived in the run.

Rows are never reused (a person who dies or moves away keeps their row with ``present = False``), so row
indices stay valid in the event log, family links and pending court cases. ``person_id`` is the stable,
scenario-independent identity used for random draws and exports; the row is only where the data sits.
"""

from __future__ import annotations

import numpy as np

from .rng import NEVER
from .schedule import ChildrenIndex, Pending

# status codes: where a person stands with the criminal justice system this month
FREE, CUSTODY, LICENCE, PROBATION = 0, 1, 2, 3
STATUS_NAMES = {FREE: "free", CUSTODY: "custody", LICENCE: "licence", PROBATION: "probation"}
# status at the start of the run, as exported in people.parquet
START_STATUS = ("custody", "licence", "probation", "community", "child")
CUSTODY_START, LICENCE_START, PROBATION_START, COMMUNITY_START, CHILD_START = range(5)
NO_ONE = -1  # missing row / id / month

#: field name -> (dtype, fill value for new rows)
FIELDS = {
    "person_id": (np.int64, NO_ONE),
    "present": (np.bool_, False),  # alive and living in the area
    "sex_male": (np.bool_, False),
    "birth_month": (np.int32, 0),  # months relative to the simulation start
    "father": (np.int64, NO_ONE),  # row of the father, NO_ONE if unknown or absent
    "mother": (np.int64, NO_ONE),
    "partner": (np.int64, NO_ONE),
    "weight": (np.float64, 1.0),  # real people this agent stands for
    "propensity": (np.float64, 1.0),  # offending propensity now (relative hazard); desistance lowers it
    "innate_propensity": (np.float64, 1.0),  # propensity at birth (or arrival), what children inherit from
    "prev_convictions": (np.int32, 0),
    "prev_cautions": (np.int32, 0),  # cautions, reprimands and warnings (justice.cautions): in the run and in a drawn past
    "convictions_before_start": (np.int32, 0),  # the record brought into the run (at the start, or on arrival)
    "cautions_before_start": (np.int32, 0),  # and the cautions in it (justice.cautions)
    "status_at_start": (np.int8, 3),  # index into START_STATUS (default: community)
    "status": (np.int8, FREE),
    "custody_months_left": (np.int32, 0),  # months until release
    "licence_months_left": (np.int32, 0),  # months of licence after release (or left, when on licence)
    "order_months_left": (np.int32, 0),
    "months_since_release": (np.int32, 10_000),
    "months_since_order_start": (np.int32, 10_000),
    "last_custody_month": (np.int32, -1_000_000),  # month of the last custody start or recall
    "last_conviction_month": (np.int32, -1_000_000),  # month of the last conviction (negative: before the run)
    "parents_convicted_outside": (np.uint8, 0),  # no parent in the model: bit 0 father, bit 1 mother ever convicted
    "children_born": (np.int32, 0),  # births so far, to derive a newborn's id
    "needs": (np.uint8, 0),  # criminogenic needs as a bit mask: bit j set = has need j (params.needs.names)
    "iv_state": (np.int8, 0),  # multi-agency intervention: 0 never referred, 1 waiting, 2 in it, 3 left
    "iv_engaged": (np.bool_, False),  # engaged when they started
    "iv_months": (np.int32, 0),  # months waiting (state 1) or in the intervention (state 2)
    "iv_exit_month": (np.int32, 0),  # month they left (state 3)
    "ex_partner": (np.int64, NO_ONE),  # row of the partner they last separated from
    "separated_month": (np.int32, -1_000_000),  # month of that separation
    # --- domestic abuse (sim.processes.domestic_abuse, da_hub)
    "da_rate": (np.float64, 0.0),  # own rate of abusing a partner (relative, mean 1 among perpetrators); 0: never
    "da_chain": (np.int32, 0),  # incidents they perpetrated in their current run (no gap over the repeat window)
    "da_last_month": (np.int32, -1_000_000),  # month of the last incident they perpetrated
    "da_victim_run": (np.int32, 0),  # incidents against them in their current run
    "da_victim_last_month": (np.int32, -1_000_000),  # month of the last incident against them
    "da_exposed_month": (np.int32, NEVER),  # first month a child was exposed to an incident at home
    "hub_state": (np.int8, 0),  # DA hub, in the intervention's codes: 0 never supported, 2 supported, 3 left
    "hub_engaged": (np.bool_, False),
    "hub_months": (np.int32, 0),  # months supported
    "hub_exit_month": (np.int32, 0),
    # --- schedules: the month of each person's next event, so a month's processes act only on those due
    "offending_bound": (np.float64, 0.0),  # upper bound of the offending hazard until offending_refresh
    "offending_next": (np.int32, NEVER),  # month of the next candidate offence (thinning, see offending)
    "offending_refresh": (np.int32, 0),  # month by which the bound must be recomputed
    "need_next": (np.int32, NEVER),  # month of the next change of a need
    "need_refresh": (np.int32, NEVER),  # month the needs group changes by itself (a recent conviction ages)
    "death_month": (np.int32, NEVER),
    "move_next": (np.int32, NEVER),  # next month they would move away if free to
    "partner_next": (np.int32, NEVER),  # next month they would find a partner if single
    "separate_next": (np.int32, NEVER),  # next month their couple would separate if they are its lower row
    "birth_next": (np.int32, NEVER),  # next month she could give birth: the earlier of the two below
    "birth_partnered_next": (np.int32, NEVER),  # next month she would give birth if partnered
    "birth_single_next": (np.int32, NEVER),  # next month she would give birth if single
}
def _allocate(capacity: int, dtype, fill) -> np.ndarray:
    """An array of ``capacity`` rows whose last row holds ``fill``, the others not yet written (see ``People``)."""
    a = np.empty(capacity, dtype=dtype)
    a[-1] = fill
    return a


#: the columns that hold the month of a next event
SCHEDULED = ("offending_next", "offending_refresh", "need_next", "need_refresh", "death_month", "move_next",
             "partner_next", "separate_next", "birth_next")


class People:
    """Growable arrays of person state, one array per field of ``FIELDS``.

    Rows up to ``n`` are people. The arrays' capacity doubles as rows are added; rows beyond ``n`` hold each field's
    fill value as far as ``_filled`` (set a chunk ahead, so that adding rows rarely costs a pass over every field) and
    the last row always does (a missing link, ``NO_ONE`` = -1, reads it); the rest of the capacity is allocated but
    not yet written, so the memory it would take is never touched until it is needed.
    """

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self._cap = capacity
        self._filled = 0  # rows [0, _filled) hold people or fill values
        self._seen: dict[str, int] = {}  # rows each reader of new_rows has seen
        for name, (dtype, fill) in FIELDS.items():
            setattr(self, name, _allocate(capacity, dtype, fill))
        #: rows whose offending hazard may have risen / whose needs' probabilities changed / whose children's
        #: hazard may have risen, since the process that redraws those schedules last looked (see ``changed``)
        self.pending = {"hazard": Pending(), "needs": Pending(), "children": Pending()}
        self.children = ChildrenIndex()
        self.weight.flags.writeable = False  # set when a row is added, then fixed (the stock table counts on it)

    def _grow(self, need: int) -> None:
        """Make rows up to ``need`` available, holding fill values."""
        cap = self._cap
        while cap < need:
            cap *= 2
        if cap != self._cap:
            for name, (dtype, fill) in FIELDS.items():
                new = _allocate(cap, dtype, fill)
                new[: self._filled] = getattr(self, name)[: self._filled]
                setattr(self, name, new)
            self._cap = cap
        if need > self._filled:  # fill a chunk ahead: an eighth of the rows so far, at least what is needed
            end = min(cap, max(need, self._filled + self._filled // 8, 1024))
            self.weight.flags.writeable = True
            for name, (dtype, fill) in FIELDS.items():
                getattr(self, name)[self._filled : end] = fill
            self._filled = end
        self.weight.flags.writeable = False

    def add(self, count: int, **values) -> np.ndarray:
        """Append ``count`` people with the given field values (arrays or scalars); returns their rows."""
        self._grow(self.n + count)
        rows = np.arange(self.n, self.n + count)
        new = slice(self.n, self.n + count)  # (a slice: cheaper than the rows as an index)
        self.weight.flags.writeable = True
        try:
            for name, value in values.items():
                getattr(self, name)[new] = value
        finally:
            self.weight.flags.writeable = False
        if "propensity" in values and "innate_propensity" not in values:
            self.innate_propensity[new] = self.propensity[new]
        self.present[new] = values.get("present", True)
        self.n += count
        if "father" in values or "mother" in values:
            self.children.add(rows, np.broadcast_to(values.get("father", NO_ONE), rows.shape),
                              np.broadcast_to(values.get("mother", NO_ONE), rows.shape))
        self.changed(rows, hazard=True, needs=True)  # their first offending bound and needs schedule
        return rows

    def schedule(self, column: str, rows, months) -> None:
        """Set the month of ``rows``' next event of one kind (a column of ``SCHEDULED``; NEVER: none)."""
        getattr(self, column)[rows] = months

    def due(self, column: str, month: int) -> np.ndarray:
        """Rows whose next event of that kind is in ``month`` (ascending)."""
        return np.flatnonzero(getattr(self, column)[: self.n] == month)

    def new_rows(self, reader: str) -> np.ndarray:
        """Rows added since ``reader`` last asked (rows are never reused, so they are a range)."""
        start, self._seen[reader] = self._seen.get(reader, 0), self.n
        return np.arange(start, self.n)

    def view(self, name: str) -> np.ndarray:
        """The live part of a field (rows 0..n-1)."""
        return getattr(self, name)[: self.n]

    def age_months(self, month: int) -> np.ndarray:
        return month - self.birth_month[: self.n]

    def has_need(self, rows: np.ndarray, j: int) -> np.ndarray:
        return (self.needs[rows] >> j) & 1 == 1

    def changed(self, rows, hazard: bool = False, needs: bool = False, children: bool = False) -> None:
        """Record that ``rows``' state changed in a way that may raise their offending hazard (``hazard``), change their
        needs' probabilities (``needs``) or raise their children's hazard (``children``), so that the schedules drawn
        from the old state are redrawn (``offending.refresh_bounds``, ``needs.refresh``) before they are next used."""
        for kind, flag in (("hazard", hazard), ("needs", needs), ("children", children)):
            if flag:
                self.pending[kind].add(rows)

    def touch(self, rows) -> None:
        """Any change at all (e.g. made by hand through an agent): every schedule of ``rows`` is redrawn."""
        self.changed(rows, hazard=True, needs=True, children=True)

