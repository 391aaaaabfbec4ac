"""Counter-based random numbers for common random numbers (CRN) across scenarios.

Every draw is a pure function of (replicate seed, stream, month, person_id, draw index), computed with the
SplitMix64 finaliser over numpy uint64 arrays. So the same person gets the same uniform in the baseline and in an
intervention scenario, whatever else has changed about who is alive or in which row they sit. Comparing
scenarios then measures the intervention, not noise (see DESIGN, principle 4).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from numba import njit

_MASK64 = (1 << 64) - 1
NEVER = np.iinfo(np.int32).max  # the month of an event that will not happen
_GOLDEN = 0x9E3779B97F4A7C15
_DRAW_STEP = 0xD1B54A32D192ED03  # odd; steps a person's key from one draw to the next


def _mix_int(x: int) -> int:
    """SplitMix64 finaliser on a Python int (used for the scalar prefix of a key)."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


_U_GOLDEN, _U_DRAW_STEP = np.uint64(_GOLDEN), np.uint64(_DRAW_STEP)
_U_M1, _U_M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_U30, _U27, _U31, _U11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic), in place; returns ``x``."""
    x += _U_GOLDEN
    x ^= x >> _U30
    x *= _U_M1
    x ^= x >> _U27
    x *= _U_M2
    x ^= x >> _U31
    return x


@njit(cache=True, nogil=True, inline="always")
def _uniform(person_id, key, offset):
    """SplitMix64 finaliser of (id x golden ratio) XOR key, plus the draw's offset, as a uniform on 53 bits."""
    x = ((np.uint64(person_id) * np.uint64(_GOLDEN)) ^ key) + offset + np.uint64(_GOLDEN)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return np.float64(np.int64(x >> np.uint64(11))) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _uniforms(person_ids, key, draw, draw_step):
    """One uniform per id (``draw``: one draw index for all, or one per id)."""
    out = np.empty(len(person_ids), np.float64)
    one_draw = len(draw) == 1
    for i in range(len(person_ids)):
        out[i] = _uniform(person_ids[i], key, np.uint64(draw[0] if one_draw else draw[i]) * draw_step)
    return out


@njit(cache=True, nogil=True, inline="always")
def geometric_wait(u, p_month, longest):
    """Whole months to the next event of a process with monthly probability ``p_month``, by inverse CDF at ``u``
    (``CounterRNG.months_to_event`` for one person, for compiled kernels); ``longest`` if the probability is 0."""
    if p_month >= 1.0:
        return 0
    if not p_month > 0.0:
        return longest
    gap = math.log1p(-u) / math.log1p(-p_month)
    return int(gap) if gap < longest else longest


@njit(cache=True, nogil=True)
def _months_to_event(person_ids, key, offset, p_month, longest):
    """``geometric_wait`` for each id at monthly probability ``p_month`` (one for all, or one per id)."""
    out = np.empty(len(person_ids), np.int64)
    one_p = len(p_month) == 1
    for i in range(len(person_ids)):
        out[i] = geometric_wait(_uniform(person_ids[i], key, offset), p_month[0 if one_p else i], longest)
    return out


@njit(cache=True, nogil=True, inline="always")
def uniform_at(person_id, key, draw):
    """``CounterRNG.uniform`` of one id and draw index, for compiled kernels (``key``: ``CounterRNG.key``)."""
    return _uniform(person_id, key, np.uint64(draw) * np.uint64(_DRAW_STEP))


@njit(cache=True, nogil=True, inline="always")
def next_month_at(person_id, key, draw, p_month, start, month):
    """``start`` + the months to the next event of a process at ``p_month`` a month, drawn in ``month`` with keyed draw
    ``draw`` (``CounterRNG.months_to_event`` for one person, for compiled kernels)."""
    return start + geometric_wait(uniform_at(person_id, key, draw), p_month, NEVER - 1 - month)


@njit(cache=True, nogil=True, inline="always")
def poisson_at(u, lam, at_least_one):
    """Inverse CDF of Poisson(``lam``) (zero-truncated with ``at_least_one``) at ``u``: few steps for small means.
    Large means (over ``_POISSON_DIRECT``, where exp(-lam) nears the bottom of the floating-point range) start the
    walk at the mode, from the probability there in logs, and walk down or up from it."""
    if lam > _POISSON_DIRECT:
        return _poisson_at_large(u, lam, at_least_one)
    if at_least_one:
        k = 1
        p = math.exp(-lam) * lam / -math.expm1(-lam) if lam > 0 else 1.0  # P(1 | at least 1)
    else:
        k = 0
        p = math.exp(-lam)
    cdf = p
    while u >= cdf:
        k += 1
        p *= lam / k
        cdf += p
        if p <= 1e-17 and k > lam:  # past the mode, the tail beyond 1e-17 is below rounding
            break
    return k


#: means above which ``poisson_at`` starts from the mode (exp(-30) is about 1e-13: the walk from 0 is exact below it)
_POISSON_DIRECT = 30.0


@njit(cache=True, nogil=True)
def _poisson_at_large(u, lam, at_least_one):
    """``poisson_at`` for a large mean: the CDF at the mode from the probabilities below it (summed downwards from the
    mode's, in logs), then the walk up or down to the first k whose CDF exceeds ``u`` (truncation at 0 is negligible:
    P(0) < 1e-13)."""
    mode = int(lam)
    p_mode = math.exp(-lam + mode * math.log(lam) - math.lgamma(mode + 1.0))
    below = 0.0  # P(k < mode)
    p = p_mode
    for k in range(mode, 0, -1):
        p *= k / lam  # P(k - 1)
        below += p
        if p < 1e-17 * p_mode:
            break
    cdf = below + p_mode
    if u < below:  # walk down from the mode
        k = mode
        p = p_mode
        cdf = below
        while k > 0 and u < cdf:
            p *= k / lam
            cdf -= p
            k -= 1
        return max(k, 1) if at_least_one else k
    k = mode
    p = p_mode
    while u >= cdf:
        k += 1
        p *= lam / k
        cdf += p
        if p <= 1e-17 * p_mode:
            break
    return k


@njit(cache=True, nogil=True)
def _poisson_quantile(u, lam, at_least_one):
    out = np.empty(len(u), np.int64)
    for i in range(len(u)):
        out[i] = poisson_at(u[i], lam[i], at_least_one)
    return out


def stream_id(name: str) -> int:
    """Stable 32-bit id of a named stream ("offending", "detection", ...)."""
    return zlib.crc32(name.encode())


def hash_ids(a: np.ndarray, b: int | np.ndarray) -> np.ndarray:
    """Deterministic 63-bit id derived from two integers (e.g. mother's id and birth order)."""
    x = _mix(np.asarray(a, dtype=np.int64).astype(np.uint64) ^ (np.asarray(b, dtype=np.int64).astype(np.uint64) * np.uint64(_GOLDEN)))
    return (x >> np.uint64(1)).astype(np.int64)


class CounterRNG:
    """Uniforms keyed by person: ``rng.uniform("offending", month, person_ids, draw=k)``.

    ``seed`` is the replicate's seed (an int). Streams are named so each process draws independently.
    """

    def __init__(self, seed: int):
        self.seed = int(seed) & _MASK64
        self._keys: dict[str, int] = {}  # stream -> its part of the key
        self._month: int | None = None  # the month of the keys in _month_keys
        self._month_keys: dict[str, np.uint64] = {}  # stream -> its key in that month (a month asks for each many times)

    def key(self, stream: str, month: int) -> np.uint64:
        """The key of a stream's draws in a month, mix(mix(seed ^ mix(stream id)) ^ (month + 1,000,000)), as a numpy
        scalar (the stream's part kept for good, the month's keys for the month), for compiled kernels that draw with
        ``uniform_at``."""
        if month != self._month:
            self._month, self._month_keys = month, {}
        key = self._month_keys.get(stream)
        if key is None:
            stream_key = self._keys.get(stream)
            if stream_key is None:
                stream_key = self._keys[stream] = _mix_int(self.seed ^ _mix_int(stream_id(stream)))
            key = self._month_keys[stream] = np.uint64(_mix_int(stream_key ^ ((month + 1_000_000) & _MASK64)))
        return key

    def uniform(self, stream: str, month: int, person_ids: np.ndarray, draw: int | np.ndarray = 0) -> np.ndarray:
        """One uniform in [0, 1) per person id; ``draw`` (scalar or array) indexes several draws per person.

        One SplitMix64 finaliser of (id x golden ratio) XOR key(seed, stream, month), plus draw x another odd
        constant: the same construction as SplitMix64's stream (a Weyl sequence through the finaliser)."""
        ids = np.ascontiguousarray(person_ids, dtype=np.int64)
        draws = np.ascontiguousarray(draw, dtype=np.int64).reshape(-1) if isinstance(draw, np.ndarray) and draw.ndim else np.array([int(draw)], np.int64)
        return _uniforms(ids, self.key(stream, month), draws, _U_DRAW_STEP)

    def normal(self, stream: str, month: int, person_ids: np.ndarray, draw: int = 0) -> np.ndarray:
        """Standard normal per person (inverse CDF of a keyed uniform)."""
        from scipy.special import ndtri

        u = self.uniform(stream, month, person_ids, draw)
        return ndtri(np.minimum(np.maximum(u, 1e-12, out=u), 1 - 1e-12, out=u))  # (np.clip: the same, slower)

    def poisson(self, stream: str, month: int, person_ids: np.ndarray, lam: np.ndarray, at_least_one: bool = False) -> np.ndarray:
        """Poisson counts by inverse CDF of one keyed uniform per person (rates are small, so few iterations);
        ``at_least_one`` draws from the Poisson conditioned on a count of 1 or more (zero-truncated)."""
        return poisson_quantile(self.uniform(stream, month, person_ids), lam, at_least_one)

    def months_to_event(self, stream: str, month: int, person_ids: np.ndarray, p_month: np.ndarray | float, draw: int = 0) -> np.ndarray:
        """Whole months from ``month`` to the next event of a process that happens each month with probability
        ``p_month`` (0 = this month): geometric, by inverse CDF of one keyed uniform. ``NEVER - month`` where the
        probability is 0. Drawing afresh at any month is exact, since the geometric distribution has no memory."""
        ids = np.ascontiguousarray(person_ids, dtype=np.int64)
        p_month = np.ascontiguousarray(p_month, dtype=np.float64).reshape(-1)
        offset = np.uint64((int(draw) * _DRAW_STEP) & _MASK64)
        return _months_to_event(ids, self.key(stream, month), offset, p_month, NEVER - 1 - month)

    def choice(self, stream: str, month: int, person_ids: np.ndarray, probs: np.ndarray, draw: int = 0) -> np.ndarray:
        """Categorical index per person from one probability vector (inverse CDF)."""
        cdf = np.cumsum(np.asarray(probs, dtype=np.float64))
        cdf /= cdf[-1]
        u = self.uniform(stream, month, person_ids, draw)
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def poisson_quantile(u: np.ndarray, lam: np.ndarray, at_least_one: bool = False) -> np.ndarray:
    """Inverse CDF of the Poisson distribution with means ``lam`` at probabilities ``u`` (small means: few steps);
    ``at_least_one``: of the Poisson conditioned on at least one (zero-truncated), whose terms are computed as
    such so that tiny means do not lose the answer in rounding."""
    u = np.ascontiguousarray(u, dtype=np.float64)
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape)
    return _poisson_quantile(u, np.ascontiguousarray(lam), bool(at_least_one))
