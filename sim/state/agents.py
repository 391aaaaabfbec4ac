"""Mesa agents as handles onto the model's arrays: each ``Person`` knows its row and reads/writes through it.

The monthly processes never loop over agents; agents exist so that Mesa's tools (AgentSet, DataCollector,
visualisation) and a researcher's own code can look at, and change, one person at a time.
"""

from __future__ import annotations

import mesa

from .people import CUSTODY, LICENCE, PROBATION, START_STATUS, STATUS_NAMES


class Person(mesa.Agent):
    """One person. ``role`` is "child" under the adult age, "offender" for an adult with a conviction, else "adult"."""

    def __init__(self, model, row: int):
        super().__init__(model)
        self.row = row

    @property
    def _people(self):
        return self.model.people

    @property
    def person_id(self) -> int:
        return int(self._people.person_id[self.row])

    @property
    def sex(self) -> str:
        return "M" if self._people.sex_male[self.row] else "F"

    @property
    def age_years(self) -> float:
        return float(self.model.month - self._people.birth_month[self.row]) / 12.0

    @property
    def role(self) -> str:
        if self.age_years < self.model.params.family.age_adult:
            return "child"
        return "offender" if self.prev_convictions > 0 else "adult"

    @property
    def status(self) -> str:
        """free / custody / licence / probation"""
        return STATUS_NAMES[int(self._people.status[self.row])]

    @property
    def status_at_start(self) -> str:
        return START_STATUS[int(self._people.status_at_start[self.row])]

    @property
    def in_custody(self) -> bool:
        return self._people.status[self.row] == CUSTODY

    @property
    def under_supervision(self) -> bool:
        return self._people.status[self.row] in (LICENCE, PROBATION)

    @property
    def prev_convictions(self) -> int:
        return int(self._people.prev_convictions[self.row])

    @prev_convictions.setter
    def prev_convictions(self, value: int) -> None:
        self._people.prev_convictions[self.row] = value

    @property
    def propensity(self) -> float:
        """Offending propensity now (relative hazard); set at birth, lowered by desistance after a conviction."""
        return float(self._people.propensity[self.row])

    @propensity.setter
    def propensity(self, value: float) -> None:
        self._people.propensity[self.row] = value

    @property
    def needs(self) -> dict[str, bool]:
        names = self.model.params.needs.names
        mask = int(self._people.needs[self.row])
        return {name: bool(mask >> j & 1) for j, name in enumerate(names)}

    def set_need(self, name: str, value: bool) -> None:
        bit = 1 << list(self.model.params.needs.names).index(name)
        mask = int(self._people.needs[self.row])
        self._people.needs[self.row] = (mask | bit) if value else (mask & ~bit)

    def _relative(self, column: str) -> "Person | None":
        row = int(getattr(self._people, column)[self.row])
        return self.model.agent_at(row) if row >= 0 else None

    @property
    def father(self) -> "Person | None":
        return self._relative("father")

    @property
    def mother(self) -> "Person | None":
        return self._relative("mother")

    @property
    def partner(self) -> "Person | None":
        return self._relative("partner")

    def __repr__(self) -> str:
        return f"Person(id={self.person_id}, {self.sex}, {self.age_years:.1f}y, {self.role}, {self.status})"
