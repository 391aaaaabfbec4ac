"""Counter-based random numbers: draws are pure functions of (seed, stream, month, person_id, draw)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sim.state.rng import CounterRNG, hash_ids, stream_id

IDS = np.arange(1, 20_001, dtype=np.int64)


def within(observed: float, expected: float, se: float, k: float = 4.0) -> bool:
    return abs(observed - expected) <= k * se


# --- common random numbers: a person's draw does not depend on where they sit --------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    month=st.integers(-5, 600),
    ids=st.lists(st.integers(0, 2**62), min_size=1, max_size=60, unique=True),
    data=st.data(),
)
def test_uniform_same_for_same_key_whatever_the_position(seed, month, ids, data):
    rng = CounterRNG(seed)
    ids = np.array(ids, dtype=np.int64)
    perm = np.array(data.draw(st.permutations(range(len(ids)))), dtype=np.int64)
    u = rng.uniform("offending", month, ids)
    assert np.array_equal(rng.uniform("offending", month, ids[perm]), u[perm])
    # embedded among other people, and one at a time
    others = np.array([2**62 + 1, 2**62 + 2], dtype=np.int64)
    mixed = rng.uniform("offending", month, np.concatenate([others, ids[::-1], others]))
    assert np.array_equal(mixed[2:-2], u[::-1])
    assert rng.uniform("offending", month, ids[:1])[0] == u[0]
    # a fresh generator with the same seed agrees (no hidden state)
    assert np.array_equal(CounterRNG(seed).uniform("offending", month, ids), u)


def test_uniform_same_for_same_key_with_draw_arrays():
    rng = CounterRNG(3)
    ids = np.array([5, 5, 9, 9, 11], dtype=np.int64)
    draw = np.array([0, 1, 0, 1, 2])
    u = rng.uniform("detection", 4, ids, draw)
    perm = np.array([4, 2, 0, 3, 1])
    assert np.array_equal(rng.uniform("detection", 4, ids[perm], draw[perm]), u[perm])
    assert u[0] != u[1]  # the draw index gives a person several independent draws
    assert len(np.unique(u)) == len(u)


def test_uniform_scalar_and_array_draw_agree():
    """Regression: a scalar draw k and an array of k's used to take different code paths and give different
    uniforms for the same (seed, stream, month, id, draw) key."""
    rng = CounterRNG(5)
    ids = np.arange(1, 6)
    for k in (0, 2):
        assert np.array_equal(rng.uniform("x", 0, ids, k), rng.uniform("x", 0, ids, np.full(len(ids), k)))


@pytest.mark.parametrize(
    "change",
    [
        dict(seed=2),
        dict(stream="detection"),
        dict(month=1),
        dict(draw=1),
    ],
)
def test_uniform_changes_with_every_part_of_the_key(change):
    base = dict(seed=1, stream="offending", month=0, draw=0)
    other = {**base, **change}
    u = CounterRNG(base["seed"]).uniform(base["stream"], base["month"], IDS[:2000], base["draw"])
    v = CounterRNG(other["seed"]).uniform(other["stream"], other["month"], IDS[:2000], other["draw"])
    assert np.mean(u == v) < 0.01
    assert abs(np.corrcoef(u, v)[0, 1]) < 4 / np.sqrt(len(u))  # and not correlated


def test_stream_ids_are_stable_and_distinct():
    names = ["offending", "detection", "court_lag", "sentencing", "exits", "birth", "needs", "recall"]
    ids = [stream_id(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert stream_id("offending") == stream_id("offending")
    assert all(0 <= i < 2**32 for i in ids)


# --- distributions ---------------------------------------------------------------------------------------------


def test_uniform_range_and_distribution():
    u = CounterRNG(11).uniform("offending", 3, IDS)
    assert u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    counts, _ = np.histogram(u, bins=20, range=(0, 1))
    chi2 = ((counts - len(u) / 20) ** 2 / (len(u) / 20)).sum()
    assert chi2 < stats.chi2.ppf(0.9999, 19)
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    # consecutive ids are not serially correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 4 / np.sqrt(len(u))


@pytest.mark.parametrize("lam", [0.0, 0.05, 0.7, 3.0])
def test_poisson_counts(lam):
    rng = CounterRNG(5)
    k = rng.poisson("offending", 0, IDS, np.full(len(IDS), lam))
    assert k.dtype.kind == "i" and (k >= 0).all()
    if lam == 0:
        assert (k == 0).all()
        return
    n = len(k)
    assert within(k.mean(), lam, np.sqrt(lam / n))
    p0 = np.exp(-lam)
    assert within(np.mean(k == 0), p0, np.sqrt(p0 * (1 - p0) / n))
    # the count is the inverse CDF of the person's own "offending" uniform
    u = rng.uniform("offending", 0, IDS)
    assert np.array_equal(k == 0, u < p0)


def test_poisson_follows_the_person_not_the_row():
    rng = CounterRNG(9)
    lam = np.linspace(0.01, 2.0, 500)
    ids = IDS[:500]
    k = rng.poisson("offending", 2, ids, lam)
    perm = np.random.default_rng(0).permutation(500)
    assert np.array_equal(rng.poisson("offending", 2, ids[perm], lam[perm]), k[perm])


def test_normal_is_standard():
    z = CounterRNG(2).normal("sentence_length", 0, IDS)
    n = len(z)
    assert np.isfinite(z).all()
    assert within(z.mean(), 0.0, 1 / np.sqrt(n))
    assert within(z.std(), 1.0, 1 / np.sqrt(2 * n))
    assert stats.kstest(z, "norm").pvalue > 1e-4


def test_choice_frequencies():
    probs = np.array([0.2, 0.3, 0.5])
    c = CounterRNG(4).choice("offence_type", 0, IDS, probs)
    assert set(np.unique(c)) <= {0, 1, 2}
    for j, pj in enumerate(probs):
        assert within(np.mean(c == j), pj, np.sqrt(pj * (1 - pj) / len(c)))
    # unnormalised weights give the same answer
    assert np.array_equal(CounterRNG(4).choice("offence_type", 0, IDS, probs * 7), c)


def test_bernoulli_from_uniform_matches_probability():
    """The processes decide events as ``uniform < p``; the share must be p."""
    rng = CounterRNG(8)
    for p in (0.01, 0.3, 0.9):
        hit = rng.uniform("detection", 0, IDS) < p
        assert within(hit.mean(), p, np.sqrt(p * (1 - p) / len(IDS)))


# --- derived ids -----------------------------------------------------------------------------------------------


def test_hash_ids_deterministic_elementwise_and_distinct():
    a = np.repeat(np.arange(1, 2001, dtype=np.int64), 5)
    b = np.tile(np.arange(5), 2000)
    h = hash_ids(a, b)
    assert h.dtype == np.int64 and (h >= 0).all()
    assert len(np.unique(h)) == len(h)  # (mother, birth order) pairs give distinct ids
    assert not np.isin(h, np.arange(1, 100_000)).any()  # and do not clash with the starting ids 1..N
    perm = np.random.default_rng(1).permutation(len(a))
    assert np.array_equal(hash_ids(a[perm], b[perm]), h[perm])
    assert np.array_equal(hash_ids(a, b), h)
    # both parts matter
    assert (hash_ids(a, b + 1) != h).all()
    assert (hash_ids(a + 1, b) != h).all()
    # a scalar second argument broadcasts
    assert np.array_equal(hash_ids(a[:5], 3), hash_ids(a[:5], np.full(5, 3)))


def test_draws_do_not_modify_their_inputs():
    """The mixing works in place on temporaries; the caller's person ids (often a view of model arrays) and rates
    must come back untouched."""
    rng = CounterRNG(6)
    ids = np.arange(1, 1001, dtype=np.int64)
    draw = np.arange(1000) % 3
    lam = np.full(1000, 0.5)
    keep = ids.copy(), draw.copy(), lam.copy()
    rng.uniform("x", 0, ids)
    rng.uniform("x", 0, ids, draw)
    rng.poisson("x", 0, ids, lam)
    rng.normal("x", 0, ids)
    rng.choice("x", 0, ids, np.array([0.5, 0.5]))
    hash_ids(ids, draw)
    assert np.array_equal(ids, keep[0]) and np.array_equal(draw, keep[1]) and np.array_equal(lam, keep[2])


def test_poisson_quantile_is_the_inverse_cdf_for_small_and_large_means():
    """The keyed Poisson draws are the exact inverse CDF (scipy's ppf) at every mean, large ones included: a walk that
    stopped where the probability was tiny stopped before the mode for means above about 39 and returned 1."""
    from scipy import stats

    from sim.state.rng import poisson_quantile

    u = np.random.default_rng(5).random(20_000)
    for lam in (0.3, 4.0, 29.0, 31.0, 39.5, 60.0, 250.0, 1_500.0):
        np.testing.assert_array_equal(poisson_quantile(u, np.full(len(u), lam), False), stats.poisson.ppf(u, lam))


def test_a_stream_s_key_is_the_same_whichever_months_were_asked_before():
    """``CounterRNG.key`` keeps the month's keys: asked again after other months and streams, it gives what a fresh
    generator gives (so the draws do not depend on the order a model's processes ask in)."""
    rng = CounterRNG(2024)
    asked = [(s, m) for m in (5, 5, 6, 5, -12, 6) for s in ("offending", "needs", "offending")]
    got = [rng.key(s, m) for s, m in asked]
    fresh = [CounterRNG(2024).key(s, m) for s, m in asked]
    assert got == fresh
    assert len(set(got)) == 6  # two streams in three months: six keys
    assert CounterRNG(2025).key("offending", 5) != rng.key("offending", 5)
