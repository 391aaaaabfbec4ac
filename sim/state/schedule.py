"""Indexes that let a month's processes find the few people concerned without scanning everyone.

``Calendar``: the rows due in each month for one kind of event (the month itself is kept in a ``People`` column,
which stays the truth: an entry whose row has since been given another month is dropped when its month comes).
``ChildrenIndex``: the children of given parents (parent links never change once a child is added).
``Pending``: rows whose state changed this month, waiting for a process to redraw their schedules.
"""

from __future__ import annotations

import numpy as np

from .rng import NEVER

_EMPTY = np.zeros(0, np.int64)


class Calendar:
    """Rows by the month of their next event of one kind (``column`` of ``People``).

    Months within ``WINDOW`` of the current window's start are kept in one bucket each; later ones wait in a
    single list and are sorted into buckets when the window moves on (every ``WINDOW`` months), when entries made
    stale by a later ``put`` are also dropped. So a ``put`` costs its rows and at most ``WINDOW`` buckets."""

    WINDOW = 12

    def __init__(self, column: str):
        self.column = column
        self._start = 0  # first month of the window
        self._near: dict[int, list[np.ndarray]] = {}
        self._far_rows: list[np.ndarray] = []
        self._far_months: list[np.ndarray] = []

    def put(self, people, rows: np.ndarray, months: np.ndarray | int) -> None:
        """Set ``rows``' (distinct) next event to ``months`` (NEVER or later: none)."""
        rows = np.asarray(rows, dtype=np.int64)
        months = np.broadcast_to(np.asarray(months, dtype=np.int64), rows.shape)
        getattr(people, self.column)[rows] = months
        finite = months < NEVER
        if not finite.all():
            rows, months = rows[finite], months[finite]
        near = months < self._start + self.WINDOW
        if not near.all():
            self._far_rows.append(rows[~near])
            self._far_months.append(months[~near])
            rows, months = rows[near], months[near]
        self._bucket(rows, months)

    def _bucket(self, rows: np.ndarray, months: np.ndarray) -> None:
        if len(rows) == 0:
            return
        first = int(months.min())
        if first == int(months.max()):
            self._near.setdefault(first, []).append(rows)
            return
        order = np.argsort(months, kind="stable")
        rows, months = rows[order], months[order]
        starts = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
        for month, chunk in zip(months[starts].tolist(), np.split(rows, starts[1:])):
            self._near.setdefault(month, []).append(chunk)

    def due(self, people, month: int) -> np.ndarray:
        """The rows whose event is in ``month`` (each once); their entries leave the calendar. Months are asked
        for in order."""
        if month >= self._start + self.WINDOW:
            self._move_window(people, month)
        chunks = self._near.pop(month, None)
        if not chunks:
            return _EMPTY
        rows = chunks[0] if len(chunks) == 1 else np.unique(np.concatenate(chunks))
        return rows[getattr(people, self.column)[rows] == month]

    def _move_window(self, people, month: int) -> None:
        self._start = month
        for m in [m for m in self._near if m < month]:  # nothing can be due there any more
            del self._near[m]
        if not self._far_rows:
            return
        rows, months = np.concatenate(self._far_rows), np.concatenate(self._far_months)
        current = getattr(people, self.column)[rows] == months  # drop entries a later put replaced
        rows, months = rows[current], months[current]
        near = months < month + self.WINDOW
        self._far_rows, self._far_months = [rows[~near]], [months[~near]]
        self._bucket(rows[near], months[near])


class ChildrenIndex:
    """(parent, child) pairs: the built population's sorted by parent, later births in an unsorted tail that is
    merged in when it grows, so a lookup costs the number of parents and children asked about, not the population."""

    def __init__(self):
        self._parent = _EMPTY
        self._child = _EMPTY
        self._tail_parent: list[np.ndarray] = []
        self._tail_child: list[np.ndarray] = []
        self._tail_size = 0

    def add(self, children: np.ndarray, father: np.ndarray, mother: np.ndarray) -> None:
        for parent in (np.asarray(father, np.int64), np.asarray(mother, np.int64)):
            known = parent >= 0
            if known.any():
                self._tail_parent.append(parent[known])
                self._tail_child.append(np.asarray(children, np.int64)[known])
                self._tail_size += int(known.sum())
        if self._tail_size > max(20_000, len(self._parent) // 20):
            self._merge()

    def _merge(self) -> None:
        parent = np.concatenate([self._parent, *self._tail_parent])
        child = np.concatenate([self._child, *self._tail_child])
        order = np.argsort(parent, kind="stable")
        self._parent, self._child = parent[order], child[order]
        self._tail_parent, self._tail_child, self._tail_size = [], [], 0

    def of(self, parents: np.ndarray) -> np.ndarray:
        """Rows of every child of ``parents`` (a child of two of them appears twice)."""
        parents = np.asarray(parents, np.int64)
        if len(parents) == 0:
            return _EMPTY
        lo = np.searchsorted(self._parent, parents, side="left")
        count = np.searchsorted(self._parent, parents, side="right") - lo
        found = self._child[np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())]
        if self._tail_size:
            tail_parent = np.concatenate(self._tail_parent)
            asked = np.zeros(max(int(tail_parent.max()), int(parents.max())) + 1, bool)
            asked[parents] = True
            found = np.concatenate([found, np.concatenate(self._tail_child)[asked[tail_parent]]])
        return found


class Pending:
    """Rows marked since a reader last took them (``take``), e.g. people whose hazard may have risen."""

    def __init__(self):
        self._chunks: list[np.ndarray] = []

    def add(self, rows) -> None:
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if len(rows):
            self._chunks.append(rows)

    def take(self) -> np.ndarray:
        """The rows marked (each once, ascending), and forget them."""
        if not self._chunks:
            return _EMPTY
        rows = np.unique(np.concatenate(self._chunks))
        self._chunks = []
        return rows
