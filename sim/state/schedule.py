"""Indexes that let a month's processes find the few people concerned without looking at everyone.

``ChildrenIndex``: the children of given parents (parent links never change once a child is added).
``Pending``: rows whose state changed this month, waiting for a process to redraw their schedules.

(The rows due for a scheduled event are found by comparing one column with the month: on contiguous int32 arrays
that is cheaper than any calendar structure kept up to date, which was tried.)
"""

from __future__ import annotations

import numpy as np
from numba import njit

_EMPTY = np.zeros(0, np.int64)
NO_ROW = -1


class ChildrenIndex:
    """Each parent's children as two linked lists (as father, as mother) threaded through the children's rows: adding
    a child and finding the children of given parents cost the number of people concerned, not the population."""

    def __init__(self):
        self._first = np.full((2, 0), NO_ROW, np.int64)  # [role, parent]: the parent's most recently added child
        self._next = np.full((2, 0), NO_ROW, np.int64)  # [role, child]: the next (older) child of that parent

    def _grow(self, rows: int) -> None:
        if rows > self._first.shape[1]:
            cap = max(rows, 2 * self._first.shape[1], 1024)
            for name in ("_first", "_next"):
                old = getattr(self, name)
                new = np.full((2, cap), NO_ROW, np.int64)
                new[:, : old.shape[1]] = old
                setattr(self, name, new)

    def add(self, children: np.ndarray, father: np.ndarray, mother: np.ndarray) -> None:
        """Link ``children`` (rows not added before) to their ``father`` and ``mother`` rows (negative: unknown)."""
        children = np.asarray(children, np.int64)
        parents = np.stack([np.asarray(father, np.int64), np.asarray(mother, np.int64)])
        if len(children):
            self._grow(max(int(children.max()), int(parents.max())) + 1)
            _link(self._first, self._next, children, parents)

    def of(self, parents: np.ndarray) -> np.ndarray:
        """Rows of every child of ``parents`` (a child of two of them appears twice)."""
        parents = np.asarray(parents, np.int64)
        if len(parents) == 0 or self._first.shape[1] == 0:
            return _EMPTY
        found = np.empty(_walk(self._first, self._next, parents, _EMPTY), np.int64)  # count, then fill
        _walk(self._first, self._next, parents, found)
        return found


@njit(cache=True, nogil=True)
def _link(first, next_, children, parents):
    for role in range(2):
        for i in range(len(children)):
            parent = parents[role, i]
            if parent >= 0:
                next_[role, children[i]] = first[role, parent]
                first[role, parent] = children[i]


@njit(cache=True, nogil=True)
def _walk(first, next_, parents, found):
    """Write the children of ``parents`` into ``found`` as far as it has room; returns how many there are."""
    k = 0
    for role in range(2):
        for parent in parents:
            if parent < first.shape[1]:
                child = first[role, parent]
                while child >= 0:
                    if k < len(found):
                        found[k] = child
                    k += 1
                    child = next_[role, child]
    return k


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
    return values[_first_of_runs(values)] if len(values) else values


def _first_of_runs(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values in ``ordered`` starts (not empty; ``np.r_`` is slower on small arrays)."""
    first = np.empty(len(ordered), np.bool_)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return first


def distinct_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``distinct(values)`` and, for each value, its index in it (as ``np.unique(..., return_inverse=True)``)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = _first_of_runs(ordered) if len(ordered) else np.zeros(0, bool)
    inverse = np.empty(len(values), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse

