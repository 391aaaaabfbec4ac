"""The event log: what happened to whom and when, as columnar chunks appended each month."""

from __future__ import annotations

import numpy as np
import pandas as pd

EVENT_NAMES = (
    "offence",  # every offence committed, detected or not
    "conviction",  # offence_month says when the convicted offence was committed
    "custody_start",
    "release",  # from custody (after a sentence or a recall)
    "licence_end",
    "recall",
    "order_start",  # community or suspended-sentence order
    "order_end",
    "birth",
    "death",
    "exit",  # moved out of the area
    "arrival",  # moved into the area
    "da_incident",  # a police-attended domestic-abuse incident: the perpetrator's row; victim_id says against whom
    "caution",  # an out-of-court disposal (caution, reprimand, warning) of a proven offence; offence_month as a conviction's
)
EVENT_CODE = {name: code for code, name in enumerate(EVENT_NAMES)}
NO_MONTH = np.iinfo(np.int32).min  # offence_month of events that are not about an offence (offences may predate month 0)


class Tally(dict):
    """This month's flows (offences, convictions, ...), summed over people, weighted to real counts."""

    def add(self, name: str, amount: float) -> None:
        self[name] = self.get(name, 0.0) + float(amount)


class EventLog:
    """Collects events as (row, month, code, offence_month, offence_type, victim) chunks; cheap to append."""

    def __init__(self, enabled: bool = True, skip: tuple[str, ...] = ()):
        self.enabled = enabled
        self.skip = set(skip)  # events not kept (e.g. "offence" when only cohort metrics are needed)
        self._chunks: list[tuple] = []  # (rows, month, code, offence months, offence types, victims' rows; or None)
        self._arrays: tuple[np.ndarray, ...] | None = None  # the chunks joined, until the next add

    def add(self, event: str, rows: np.ndarray, month: int, offence_month=None, offence_type=None, victim=None) -> None:
        if not self.enabled or len(rows) == 0 or event in self.skip:
            return
        om = None if offence_month is None else np.asarray(offence_month, np.int32)
        ot = None if offence_type is None else np.asarray(offence_type, np.int8)
        vi = None if victim is None else np.asarray(victim, np.int64)
        self._chunks.append((np.asarray(rows, np.int64), int(month), EVENT_CODE[event], om, ot, vi))
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(rows, month, event code, offence month, offence type, victim row or -1), one entry per event, in the
        order logged."""
        if self._arrays is None:
            sizes = [len(c[0]) for c in self._chunks]
            self._arrays = (
                np.concatenate([c[0] for c in self._chunks]) if sizes else np.zeros(0, np.int64),
                np.repeat(np.array([c[1] for c in self._chunks], np.int32), sizes),
                np.repeat(np.array([c[2] for c in self._chunks], np.int8), sizes),
                np.concatenate([np.full(k, NO_MONTH, np.int32) if c[3] is None else c[3] for c, k in zip(self._chunks, sizes)]) if sizes else np.zeros(0, np.int32),
                np.concatenate([np.full(k, -1, np.int8) if c[4] is None else c[4] for c, k in zip(self._chunks, sizes)]) if sizes else np.zeros(0, np.int8),
                np.concatenate([np.full(k, -1, np.int64) if c[5] is None else c[5] for c, k in zip(self._chunks, sizes)]) if sizes else np.zeros(0, np.int64),
            )
        return self._arrays

    def to_frame(self, person_id: np.ndarray, offence_types: tuple[str, ...]) -> pd.DataFrame:
        """events.parquet schema: person_id, month, event, offence_month (nullable), offence_type (nullable),
        victim_id (nullable: a domestic-abuse incident's victim)."""
        rows, month, code, om, ot, vi = self.arrays()
        order = np.lexsort((code, rows, month))  # by month, then person, then event order
        rows, month, code, om, ot, vi = rows[order], month[order], code[order], om[order], ot[order], vi[order]
        types = pd.Categorical.from_codes(ot.astype(np.int16), categories=list(offence_types))
        return pd.DataFrame(
            {
                "person_id": person_id[rows],
                "month": month,
                "event": pd.Categorical.from_codes(code, categories=list(EVENT_NAMES)),
                "offence_month": pd.arrays.IntegerArray(om, mask=om == NO_MONTH),
                "offence_type": types,
                "victim_id": pd.arrays.IntegerArray(np.where(vi >= 0, person_id[np.maximum(vi, 0)], 0), mask=vi < 0),
            }
        )
