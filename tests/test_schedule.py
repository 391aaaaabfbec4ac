"""The indexes the engine uses to avoid looking at everyone: children by parent, pending rows, distinct values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.state.schedule import ChildrenIndex, Pending, distinct, distinct_inverse


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 30), st.integers(-1, 30)), min_size=1, max_size=300),
       st.lists(st.integers(0, 30), min_size=1, max_size=10), st.integers(1, 4))
def test_children_index_finds_every_child_of_the_parents_asked_about(links, asked, batches):
    father = np.array([f for f, _ in links])
    mother = np.array([m for _, m in links])
    kids = np.arange(100, 100 + len(links))
    index = ChildrenIndex()
    for part in np.array_split(np.arange(len(links)), batches):  # in several adds, as births come month by month
        index.add(kids[part], father[part], mother[part])
    asked = np.array(sorted(set(asked)))
    expected = np.sort(np.concatenate([kids[np.isin(father, asked)], kids[np.isin(mother, asked)]]))
    assert np.array_equal(np.sort(index.of(asked)), expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1000), max_size=40), max_size=5))
def test_distinct_and_pending_agree_with_numpy_unique(chunks):
    arrays = [np.array(c, dtype=np.int64) for c in chunks] or [np.zeros(0, np.int64)]
    joined = np.concatenate(arrays)
    assert np.array_equal(distinct(*arrays), np.unique(joined))
    values, inverse = distinct_inverse(joined)
    u, inv = np.unique(joined, return_inverse=True)
    assert np.array_equal(values, u) and np.array_equal(inverse, inv)
    pending = Pending()
    for a in arrays:
        pending.add(a)
    assert np.array_equal(pending.take(), np.unique(joined))
    assert len(pending.take()) == 0  # taken once
