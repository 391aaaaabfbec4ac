"""Indexes that let a month's processes find the few people concerned without looking at everyone.

``ChildrenIndex``: the children of given parents (parent links never change once a child is added).
``Pending``: rows whose state changed this month, waiting for a process to redraw their schedules.

(The rows due for a scheduled event are found by comparing one column with the month: on contiguous int32 arrays
that is cheaper than any calendar structure kept up to date, which was tried.)
"""

from __future__ import annotations

import numpy as np

_EMPTY = np.zeros(0, np.int64)


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
            if len(self._tail_parent) > 1:  # join the tail once until the next add
                self._tail_parent = [np.concatenate(self._tail_parent)]
                self._tail_child = [np.concatenate(self._tail_child)]
            tail_parent, tail_child = self._tail_parent[0], self._tail_child[0]
            asked = np.zeros(max(int(tail_parent.max()), int(parents.max())) + 1, bool)
            asked[parents] = True
            found = np.concatenate([found, tail_child[asked[tail_parent]]])
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
        rows = distinct(*self._chunks)
        self._chunks = []
        return rows


def distinct(*arrays: np.ndarray) -> np.ndarray:
    """The distinct values of ``arrays`` together, ascending (sort and compare neighbours: numpy 2's ``np.unique``
    is many times slower on large integer arrays)."""
    values = np.sort(np.concatenate(arrays) if len(arrays) != 1 else arrays[0])
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def distinct_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``distinct(values)`` and, for each value, its index in it (as ``np.unique(..., return_inverse=True)``)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, bool)
    inverse = np.empty(len(values), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse

