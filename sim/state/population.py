"""Build the starting population of Essex: offenders known to the CJS with their families, and a scaled general
population of households with children and young adults.

Counts are real people (scenario TOML); each agent stands for ``scale_*`` of them (its ``weight``), so totals
are scaled back by summing weights. All draws come from one numpy Generator seeded by the replicate seed, and
depend on the [population] and [family] parameters (and the release law in [justice]) only, so every scenario of
a comparison that changes policy starts from the same people.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from . import people as P
from .params import Params, by_sections
from .scenario import ScenarioError


def inherited_log_propensity(
    parent_log_dev: np.ndarray, heritability: float, sigma: float, z: np.ndarray, n_parents: np.ndarray | int = 1,
    parent_correlation: float = 0.0,
) -> np.ndarray:
    """A child's log propensity relative to the general median: h x the mean deviation of their ``n_parents``
    known parents + fresh variation.

    The mean of k parents whose log propensities correlate ``parent_correlation`` (rho; assortative partnering)
    has variance sigma^2 (1 + (k - 1) rho) / k, so the fresh part has sd ``sigma * sqrt(1 - h^2 (1 + (k - 1) rho) / k)``
    and propensity keeps the same spread across generations (k = 0: all fresh).
    """
    k = np.maximum(np.asarray(n_parents, dtype=float), 1.0)
    inherited = np.where(np.asarray(n_parents) > 0, heritability * parent_log_dev, 0.0)
    mean_variance = (1 + (k - 1) * parent_correlation) / k
    fresh_sd = np.where(np.asarray(n_parents) > 0, np.sqrt(np.maximum(0.0, 1 - heritability**2 * mean_variance)), 1.0)
    return inherited + fresh_sd * sigma * z


def partner_z(own_z: np.ndarray, correlation: float, fresh: np.ndarray) -> np.ndarray:
    """A partner's standard normal score of log propensity, correlated ``correlation`` with their partner's
    (assortative partnering: people who offend tend to partner people who offend). For a known offender, whose
    score on the general population's scale is far from standard normal, ``correlation`` acts as the slope of the
    regression of the partner's score on theirs."""
    return correlation * own_z + np.sqrt(1.0 - correlation**2) * fresh


def partners_of(params: Params, sex_male: np.ndarray, age_years: np.ndarray, propensity: np.ndarray,
                gap_uniform: np.ndarray, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partners from the general population for people of the given sex, age (years) and propensity: the opposite
    sex, an age gap (man minus woman) drawn from the normal of ``partner_age_gap_mean_years`` and
    ``partner_age_gap_sd_years`` by the uniforms ``gap_uniform``, cut off so that the partner is an adult
    (``partner_age_gaps``), and a propensity whose score is correlated with theirs (``partner_z`` with the standard
    normal ``fresh``). Returns (sex_male, age in years, propensity).
    Used for the partners of offenders at the start, of in-migrants who arrive as a couple (``sim.processes.exits``)
    and for partners found in the run by people of a stratum too small to hold a partner pool
    (``sim.processes.family.partnering``). (Until 2026-12-07 the gap was drawn uncut and a partner who came out
    under adult age was put at it.)"""
    pop, adult = params.population, params.family.age_adult
    sex_male, age_years = np.asarray(sex_male, bool), np.asarray(age_years, float)
    least = np.where(sex_male, -np.inf, adult - age_years)  # a woman's partner no younger than adult age
    most = np.where(sex_male, age_years - adult, np.inf)  # a man's no younger than adult age
    gap = partner_age_gaps(gap_uniform, least, most, params.demography.partner_age_gap_mean_years, pop.partner_age_gap_sd_years)
    age = np.maximum(adult, age_years + np.where(sex_male, -gap, gap))  # (rounding only)
    own_z = np.log(propensity / pop.propensity_median_general) / max(pop.propensity_sigma_general, 1e-9)
    z = partner_z(own_z, params.family.partner_propensity_correlation, fresh)
    return ~sex_male, age, pop.propensity_median_general * np.exp(pop.propensity_sigma_general * z)


def partner_age_gaps(uniform: np.ndarray, least_years: np.ndarray, most_years: np.ndarray, mean: float,
                     sd: float) -> np.ndarray:
    """Age gaps (man minus woman, years) from a normal of ``mean`` and ``sd`` cut to ``least_years`` ..
    ``most_years`` each (so that neither partner is younger than adult age; infinite: no cut), by the inverse of the
    cut distribution at the ``uniform`` draws, one each."""
    from scipy.special import ndtr, ndtri

    uniform = np.asarray(uniform, float)
    least_years, most_years = np.asarray(least_years, float), np.asarray(most_years, float)
    if sd <= 0:
        return np.broadcast_to(np.clip(mean, least_years, most_years), uniform.shape).copy()
    low, high = ndtr((least_years - mean) / sd), ndtr((most_years - mean) / sd)
    u = low + uniform * (high - low)
    gaps = mean + sd * ndtri(np.clip(u, 1e-12, 1.0 - 1e-12))  # (as draws.normal: no gap of tens of sd from a 0)
    # (ndtri's rounding, and a cut far in a tail, where ndtr underflows)
    return np.minimum(np.maximum(gaps, least_years), most_years)


def _groups_on_general_scale(pop) -> tuple[float, list[tuple[float, float, float]]]:
    """The sd of the known offender groups' scores on the general population's standard normal scale of log
    propensity (1 when they take the general sd), and each group as (real count, share of men, mean score)."""
    sd = max(pop.propensity_sigma_general, 1e-9)
    spread = 1.0 if pop.propensity_groups_from_general else max(pop.propensity_sigma, 1e-9) / sd
    groups = ((pop.custody_count + pop.licence_count, pop.male_share_custody, pop.propensity_median_custody),
              (pop.probation_count, pop.male_share_probation, pop.propensity_median_probation),
              (pop.community_count, pop.male_share_community, pop.propensity_median_community))
    return spread, [(float(n), float(men), float(np.log(m / pop.propensity_median_general) / sd)) for n, men, m in groups]


_SCORES = np.linspace(-10.0, 14.0, 4801)  # standard normal scores on which the general adults' distribution is tabulated


def _cells(params: Params) -> tuple[np.ndarray, list[tuple[bool, float, float]]]:
    """The adult age cells' edges (every year of age from the adult age to ``oldest_age_years``, as
    ``adult_age_targets`` counts them) and the cells (men?, lower age, upper age) the start is made consistent in:
    births give every sex and age the same distribution, so each cell must hold it. (Until 2026-12-07 the cells were
    the Census bands, 18-39, 40-59 and 60+: the known offenders are mostly in their twenties, so those ages started
    with an upper tail about 10% heavier than births make it and the late thirties with a lighter one; as the
    twenties aged, offending at fixed ages rose over decades: README.)"""
    grid, _ = adult_age_targets(params.population, params.demography)
    edges = np.r_[grid, grid[-1] + 1.0]
    return edges, [(male, lo, hi) for male in (True, False) for lo, hi in zip(edges[:-1], edges[1:])]


def _partner_ages_in_cells(params: Params, offender_ages, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of the partners of men and of women offenders (ages ``offender_ages``, a scipy distribution) in
    each age cell of ``edges``: the offender's age less (for a man's partner) or plus (a woman's) the usual age
    gap, drawn from the normal cut off so that the partner is an adult (``partners_of``)."""
    from scipy.stats import norm

    pop, d = params.population, params.demography
    adult, step = float(edges[0]), 0.1
    a = np.arange(adult + step / 2, pop.oldest_age_years, step)
    weight = offender_ages.pdf(a)
    weight /= weight.sum()
    mean, sd = d.partner_age_gap_mean_years, max(pop.partner_age_gap_sd_years, 1e-9)
    lo, hi = edges[None, :-1], edges[None, 1:]
    at = a[:, None]
    # a man's partner is a - gap, the gap at most a - adult
    most = (at - adult - mean) / sd
    men = (norm.cdf(np.minimum((at - lo - mean) / sd, most)) - norm.cdf(np.minimum((at - hi - mean) / sd, most)))
    men /= np.maximum(norm.cdf(most), 1e-300)
    # a woman's partner is a + gap, the gap at least adult - a
    least = (adult - at - mean) / sd
    women = norm.sf(np.maximum((lo - at - mean) / sd, least)) - norm.sf(np.maximum((hi - at - mean) / sd, least))
    women /= np.maximum(norm.sf(least), 1e-300)
    return weight @ np.clip(men, 0.0, None), weight @ np.clip(women, 0.0, None)


@by_sections("population", "family", "demography")
def _general_and_groups(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """The start's adults' densities of scores, as (``shapes``, ``people``): on ``_SCORES``, the shape of the general
    distribution, of each known offender group's scores (``_groups_on_general_scale``'s groups, as designed: normal)
    and of each group's partners' and children's other parents' (``_add_offender_families``: their scores correlated
    with the offender's, ``partner_z``), one row each (1 + 2 x groups rows); and for each cell of ``_cells`` (sex and
    year of adult age) the real people each row stands for there: every adult of the cell if they followed the
    general distribution, the group's people (their ages as drawn: a gamma above the adult age), and the partners (of
    the opposite sex, the usual age gap away). A cell's density of a kind is its people times its shape."""
    from scipy.stats import gamma, norm

    pop, f = params.population, params.family
    spread, groups = _groups_on_general_scale(pop)
    adult = float(pop.adult_age_band_lower_years[0])
    shape = ((pop.offender_age_mean_years - adult) / pop.offender_age_sd_years) ** 2
    ages = gamma(shape, loc=adult, scale=(pop.offender_age_mean_years - adult) / shape)
    edges, cells = _cells(params)
    _, target = adult_age_targets(pop, params.demography)
    everyone_by_age = target  # real people of each cell's year of age (``_cells`` is on the same grid)
    in_cell = ages.cdf(edges[1:]) - ages.cdf(edges[:-1])
    partners_of_men, partners_of_women = _partner_ages_in_cells(params, ages, edges)
    per_offender = pop.share_offenders_partnered + pop.share_offenders_parents * (1.0 - pop.share_offenders_partnered)
    rho = f.partner_propensity_correlation
    partner_sd = np.sqrt(rho**2 * spread**2 + 1.0 - rho**2)
    shapes = np.array([norm.pdf(_SCORES)] + [norm.pdf(_SCORES, shift, spread) for _, _, shift in groups]
                      + [norm.pdf(_SCORES, rho * shift, partner_sd) for _, _, shift in groups])
    people = np.zeros((len(cells), len(shapes)))
    for k, (male, _, _) in enumerate(cells):
        i = k % len(in_cell)
        people[k, 0] = everyone_by_age[i] * (pop.other_adults_male_share if male else 1.0 - pop.other_adults_male_share)
        for g, (n, men, _) in enumerate(groups):
            people[k, 1 + g] = n * (men if male else 1.0 - men) * in_cell[i]
            # a woman here partners a man offender, a man a woman offender
            people[k, 1 + len(groups) + g] = n * per_offender * ((1.0 - men) * partners_of_women[i] if male else men * partners_of_men[i])
    return shapes, people


def start_tail_excess(params: Params) -> float:
    """The share of the known offender groups' people and their partners that the general distribution of
    propensity cannot hold among the adults of their sex and year of age (where their density exceeds it): the
    groups as designed (their medians) reach beyond what births give every sex and age, and the start cuts them down
    there (``offender_scores``). 0 when they lie wholly inside it. (Before 2026-12-07 the excess stayed in the start,
    people of high propensity births do not replace, so that offending per head thinned as they aged: README.)"""
    shapes, people = _general_and_groups(params)
    total = float((people[:, 1:] * shapes[1:].sum(axis=1)).sum())
    excess = sum(np.maximum(cell[1:] @ shapes[1:] - cell[0] * shapes[0], 0.0).sum() for cell in people)
    return float(excess / total) if total > 0 else 0.0


def _cell_maps(params: Params, cdf_of, as_drawn=lambda z, row: z, keep: bool = False) -> Callable:
    """A monotone map of standard normal draws, in each cell of ``_cells`` (sex, year of adult age), onto the scores
    of the CDF ``cdf_of(shapes, people of the cell)`` gives (one row, or one per group): computed for the cells the
    draws are in, one at a time (38 kB each), not kept unless ``keep`` (for a map called again and again: the map, and
    what it keeps, goes when its caller drops it). In a cell that holds nobody of the kind the scores are
    ``as_drawn(z, row)``."""
    from scipy.special import ndtr

    edges, _ = _cells(params)
    shapes, people = _general_and_groups(params)

    kept: dict[tuple[int, int], np.ndarray | None] = {}  # (cell, row) -> its CDF on _SCORES (None: nobody there)

    def cdf_at(k: int, row: int) -> np.ndarray | None:
        if (k, row) in kept:
            return kept[k, row]
        density = np.atleast_2d(cdf_of(shapes, people[k]))[row]
        density = density + density.max() * 1e-12  # a floor (about 7 sd out): the CDF increases everywhere, no score maps far
        cdf = np.cumsum(density)
        cdf = cdf / cdf[-1] if cdf[-1] > 0 else None
        if keep:
            kept[k, row] = cdf
        return cdf

    def mapped(z: np.ndarray, age_years: np.ndarray, male: np.ndarray, row: int = 0) -> np.ndarray:
        z, out = np.asarray(z, float), np.empty(len(z))
        band = np.clip(np.searchsorted(edges, age_years, side="right") - 1, 0, len(edges) - 2)
        cell = np.where(male, 0, len(edges) - 1) + band
        u = ndtr(z)
        order = np.argsort(cell, kind="stable")
        cells, starts = np.unique(cell[order], return_index=True)
        for k, lo, hi in zip(cells.tolist(), starts, np.r_[starts[1:], len(z)]):
            cdf = cdf_at(k, row)
            here = order[lo:hi]
            out[here] = np.interp(u[here], cdf, _SCORES) if cdf is not None else as_drawn(z[here], row)
        return out

    return mapped


def general_adult_scores(params: Params) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """With ``propensity_groups_from_general``: a monotone map, by sex and year of adult age, of the general
    adults' standard normal scores of log propensity onto the general distribution with the known offender groups
    and their partners of that sex and age taken out, so that in every cell general adults, groups and partners
    together follow the general distribution (partners' correlation by rank stays). Called with (scores, ages in
    years, men?). None when the option is off (scores used as drawn)."""
    if not params.population.propensity_groups_from_general:
        return None
    return _cell_maps(params, lambda shapes, people: np.maximum(people[0] * shapes[0] - people[1:] @ shapes[1:], 0.0),
                      keep=True)  # (the start maps its general adults in five calls, through most cells)


def offender_scores(params: Params) -> Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray] | None:
    """With ``propensity_groups_from_general``: a monotone map, by sex and year of adult age, of standard normal
    draws onto the scores of a known offender group (``_groups_on_general_scale``'s index: custody and licence 0,
    probation 1, recent offenders 2), its designed normal cut down wherever the groups and their partners would
    exceed every adult of the cell (``start_tail_excess``): nobody starts above what births give their sex and age.
    Called with (draws, ages in years, men?, group). None when the option is off."""
    if not params.population.propensity_groups_from_general:
        return None
    spread, groups = _groups_on_general_scale(params.population)
    k = len(groups)

    def held(shapes, people):
        # what the general distribution leaves the groups beside the partners (who are not cut), shared in proportion
        everyone, partners = people[0] * shapes[0], people[1 + k:] @ shapes[1 + k:]
        designed = people[1:1 + k, None] * shapes[1:1 + k]
        total = designed.sum(axis=0)
        room = np.clip(np.divide(everyone - partners, total, out=np.ones(len(total)), where=total > 0), 0.0, 1.0)
        return designed * room

    return _cell_maps(params, held, lambda z, row: groups[row][2] + spread * z)


def draw_needs(rng: np.random.Generator, n: int, prevalence: tuple) -> np.ndarray:
    """Independent needs with the given prevalences, packed as bit masks (bit j = need j)."""
    has = rng.random((n, len(prevalence))) < np.asarray(prevalence)
    return (has * (1 << np.arange(len(prevalence)))).sum(axis=1).astype(np.uint8)


def previous_convictions(rng: np.random.Generator, mean: float, log_relative_propensity: np.ndarray) -> np.ndarray:
    """Criminal histories (>= 1) that grow with propensity: geometric with a mean proportional to each person's
    propensity relative to their group's median, normalised so the group's mean is ``mean``."""
    rel = np.exp(log_relative_propensity)
    person_mean = 1.0 + (max(mean, 1.0) - 1.0) * rel / rel.mean()
    return rng.geometric(1.0 / person_mean)


def _length_biased(rng: np.random.Generator, n: int, median: float, sigma: float, weight_fn, minimum=1, cond=None,
                   short: tuple[float, float, float] = (0.0, 1.0, 0.0)):
    """Spell lengths (months) as seen in a point-in-time stock: lognormal draws resampled in proportion to the
    time spent in the stock (longer spells are more likely to be in progress). ``short`` (share, median, sigma): that
    share of the spells begun come from a shorter lognormal."""
    size = max(4 * n, 1000)
    pool = median * np.exp(sigma * rng.standard_normal(size))
    share, short_median, short_sigma = short
    if share > 0:
        part = rng.random(size) < share
        pool[part] = short_median * np.exp(short_sigma * rng.standard_normal(int(part.sum())))
    pool = np.maximum(minimum, np.rint(pool))
    if cond is not None:
        pool = pool[cond(pool)]
        if len(pool) == 0:  # sim.state.scenario refuses parameters that make this all but impossible
            raise ScenarioError(f"population: none of {max(4 * n, 1000)} sentence lengths drawn for the people on licence at the "
                                "start can be followed by licence; make longer sentences more likely (population.start_sentence_*)")
    w = weight_fn(pool).astype(float)
    return rng.choice(pool, size=n, p=w / w.sum()).astype(np.int64)


def _sample_count(rng: np.random.Generator, real_count: float, scale: float) -> int:
    """Agents needed for a real count: integer part plus a Bernoulli remainder (unbiased)."""
    x = real_count / scale
    return int(x) + int(rng.random() < x - int(x))


def synthesize(params: Params, rng: np.random.Generator, people: P.People) -> None:
    """Fill ``people`` with the starting population (rows get person_id = row + 1)."""
    pop, jus = params.population, params.justice
    # each group's spread: its own, or (drawn as the general distribution's upper part) the general population's
    sigma = pop.propensity_sigma_general if pop.propensity_groups_from_general else pop.propensity_sigma
    groups = (
        (P.CUSTODY_START, pop.custody_count, pop.male_share_custody, pop.prev_convictions_mean_custody, pop.propensity_median_custody),
        (P.LICENCE_START, pop.licence_count, pop.male_share_custody, pop.prev_convictions_mean_custody, pop.propensity_median_custody),
        (P.PROBATION_START, pop.probation_count, pop.male_share_probation, pop.prev_convictions_mean_probation, pop.propensity_median_probation),
        (P.COMMUNITY_START, pop.community_count, pop.male_share_community, pop.prev_convictions_mean_community, pop.propensity_median_community),
    )
    w_cjs = pop.scale_cjs_families
    held = offender_scores(params)
    offender_rows = []
    for start_status, count, male_share, prev_mean, prop_median in groups:
        n = _sample_count(rng, count, w_cjs)
        adult = params.family.age_adult
        shape = ((pop.offender_age_mean_years - adult) / pop.offender_age_sd_years) ** 2
        age = adult + rng.gamma(shape, (pop.offender_age_mean_years - adult) / shape, n)
        z = rng.standard_normal(n)
        male = rng.random(n) < male_share
        propensity = prop_median * np.exp(sigma * z)
        if held is not None:  # the group's scores as the general distribution holds them in each sex and age
            group = {P.CUSTODY_START: 0, P.LICENCE_START: 0, P.PROBATION_START: 1}.get(start_status, 2)
            propensity = pop.propensity_median_general * np.exp(sigma * held(z, age, male, group))
        rows = people.add(
            n,
            sex_male=male,
            birth_month=-np.rint(age * 12).astype(np.int32),
            weight=w_cjs,
            propensity=propensity,
            prev_convictions=previous_convictions(rng, prev_mean, np.log(propensity / prop_median)),
            status_at_start=start_status,
        )
        people.needs[rows] = draw_needs(rng, n, params.needs.prevalence_offenders)
        _set_sentence_state(rng, people, rows, start_status, pop, jus, params.needs.recent_conviction_months)
        offender_rows.append(rows)
    offenders = np.concatenate(offender_rows)
    _add_offender_families(params, rng, people, offenders)
    _add_general_population(params, rng, people)
    people.convictions_before_start[: people.n] = people.prev_convictions[: people.n]
    people.person_id[: people.n] = np.arange(1, people.n + 1)


def clear_justice_state(people: P.People) -> None:
    """Everyone at liberty, with no record, sentence or supervision history (before ``sim.start.Start.build``
    gives them the record and sentences their own flows make)."""
    n = people.n
    for name in ("status", "custody_months_left", "licence_months_left", "order_months_left", "prev_convictions",
                 "prev_cautions", "convictions_before_start", "cautions_before_start", "months_since_release", "months_since_order_start",
                 "last_custody_month", "last_conviction_month"):
        getattr(people, name)[:n] = P.FIELDS[name][1]


#: what says where a person stands in a sentence
SENTENCE_FIELDS = ("status", "custody_months_left", "licence_months_left", "order_months_left", "months_since_release",
                   "months_since_order_start", "last_custody_month", "last_conviction_month")


def sentence_state(people: P.People) -> dict[str, np.ndarray]:
    """A copy of everyone's sentence state (``SENTENCE_FIELDS``), as the synthesis drew it."""
    return {name: getattr(people, name)[: people.n].copy() for name in SENTENCE_FIELDS}


def sentences_moved_back(people: P.People, drawn: dict[str, np.ndarray], months: int, adult_months: int) -> None:
    """Put the sentences ``drawn`` for month 0 ``months`` earlier, at the start of a simulated past
    (``population.history_from_drawn_stocks``), for the people who were adults when convicted for them; each adds its
    conviction to the record drawn for them. A past that begins with nobody under sentence lacks the sentences begun
    before it, which with long sentences are a good part of the licences at month 0; these stand in for them. The
    offender groups' ages are drawn for month 0, so about a third of the drawn stocks (the younger) are left out."""
    status = drawn["status"]
    convicted = drawn["last_conviction_month"].astype(np.int64) - months
    rows = np.flatnonzero((status != P.FREE) & (convicted - people.birth_month[: len(status)] >= adult_months))
    for name in SENTENCE_FIELDS[:-2]:
        getattr(people, name)[rows] = drawn[name][rows]
    for name in SENTENCE_FIELDS[-2:]:  # month stamps: month 0's draws, now ``months`` earlier
        stamp = drawn[name][rows].astype(np.int64)
        moved = np.where(stamp > P.FIELDS[name][1], stamp - months, P.FIELDS[name][1])
        getattr(people, name)[rows] = np.maximum(getattr(people, name)[rows], moved)
    people.prev_convictions[rows] += 1
    people.touch(rows)


def mark_start_state(people: P.People, adult_months: int) -> None:
    """After the start's history: the record brought into the run, and everyone's status at the start as it now is
    (custody, licence, probation; at liberty: community for adults, child for children), whatever group they were
    drawn in."""
    n = people.n
    people.convictions_before_start[:n] = people.prev_convictions[:n]
    people.cautions_before_start[:n] = people.prev_cautions[:n]
    status, start = people.status[:n], people.status_at_start[:n]
    start[:] = np.where(-people.birth_month[:n] >= adult_months, P.COMMUNITY_START, P.CHILD_START)
    for code, label in ((P.CUSTODY, P.CUSTODY_START), (P.LICENCE, P.LICENCE_START), (P.PROBATION, P.PROBATION_START)):
        start[status == code] = label


def _set_sentence_state(rng, people: P.People, rows: np.ndarray, start_status: int, pop, jus, recent_months: int) -> None:
    """Where each offender stands in their sentence at the start (point-in-time stocks are length-biased).

    Sentences already being served come from the ``start_*`` population parameters, not from the sentencing
    policy in [justice], so a sentencing scenario changes new sentences only; release at ``release_fraction``
    and licence for ``licence_min_sentence_months`` or more are the law for everyone."""
    n = len(rows)
    if n == 0:
        return
    rf, lic_min = jus.release_fraction, jus.licence_min_sentence_months
    short = (pop.start_sentence_short_share, pop.start_sentence_short_median_months, pop.start_sentence_short_sigma)

    def custody_part(s):
        return np.maximum(1, np.ceil(s * rf))

    if start_status == P.CUSTODY_START:
        s = _length_biased(rng, n, pop.start_sentence_median_months, pop.start_sentence_sigma, custody_part, short=short)
        c = custody_part(s).astype(np.int64)
        served = np.floor(rng.random(n) * c).astype(np.int64)
        people.status[rows] = P.CUSTODY
        people.custody_months_left[rows] = c - served
        people.last_conviction_month[rows] = -served
        people.licence_months_left[rows] = np.where(s >= lic_min, s - c, 0)
    elif start_status == P.LICENCE_START:
        s = _length_biased(
            rng, n, pop.start_sentence_median_months, pop.start_sentence_sigma, lambda s: s - custody_part(s),
            cond=lambda s: (s >= lic_min) & (s - custody_part(s) >= 1), short=short,
        )
        lic = (s - custody_part(s)).astype(np.int64)
        left = 1 + np.floor(rng.random(n) * lic).astype(np.int64)
        people.status[rows] = P.LICENCE
        people.licence_months_left[rows] = left
        people.months_since_release[rows] = lic - left
        people.last_conviction_month[rows] = -(lic - left) - custody_part(s).astype(np.int64)
    elif start_status == P.PROBATION_START:
        o = _length_biased(rng, n, pop.start_order_median_months, pop.start_order_sigma, lambda o: o)
        left = 1 + np.floor(rng.random(n) * o).astype(np.int64)
        people.status[rows] = P.PROBATION
        people.order_months_left[rows] = left
        people.months_since_order_start[rows] = o - left
        people.last_conviction_month[rows] = -(o - left)
    else:  # recent offenders not under supervision: convicted within the last recent_conviction_months
        people.last_conviction_month[rows] = -np.floor(rng.random(n) * recent_months).astype(np.int64)


def _add_children(params: Params, rng, people: P.People, father, mother, n_children, weight, ages) -> None:
    """Children of the given parent pairs (row or NO_ONE), with inherited propensity and the given ``ages`` (years,
    one per child in household order)."""
    total = int(n_children.sum())
    if total == 0:
        return
    fam = params.family
    father_r, mother_r = np.repeat(father, n_children), np.repeat(mother, n_children)
    log_dev = parents_log_dev(people, father_r, mother_r, params.population.propensity_median_general)
    z = rng.standard_normal(total)
    n_parents = (father_r >= 0).astype(int) + (mother_r >= 0)
    prop = params.population.propensity_median_general * np.exp(
        inherited_log_propensity(log_dev, fam.propensity_heritability, params.population.propensity_sigma_general, z, n_parents,
                                 fam.partner_propensity_correlation)
    )
    rows = people.add(
        total,
        sex_male=rng.random(total) < params.demography.male_share_at_birth,
        birth_month=-np.rint(ages * 12).astype(np.int32),
        father=father_r,
        mother=mother_r,
        weight=weight,
        propensity=prop,
        status_at_start=P.CHILD_START,
    )
    # record the births so a later newborn's id (mother id, birth order) cannot clash
    np.add.at(people.children_born, mother_r[mother_r >= 0], 1)
    return rows


def parents_log_dev(people: P.People, father_r: np.ndarray, mother_r: np.ndarray, median_general: float) -> np.ndarray:
    """Mean of the known parents' log innate propensity relative to the general median (0 where neither is known)."""
    dev = np.zeros(len(father_r))
    count = np.zeros(len(father_r))
    for parent in (father_r, mother_r):
        known = parent >= 0
        dev[known] += np.log(people.innate_propensity[parent[known]] / median_general)
        count[known] += 1
    return np.divide(dev, count, out=np.zeros_like(dev), where=count > 0)


def _add_offender_families(params: Params, rng, people: P.People, offenders: np.ndarray) -> None:
    """Partners and children of the offenders (agents of weight ``scale_cjs_families``).

    Children's ages are uniform over childhood, as the general population's are (steady births: the run's own
    births to these families are about as many a year), and each household goes to a parent old enough for its
    eldest: households ranked by eldest child are matched to the offender parents ranked by age (the other parent
    made as old as the eldest requires), so young offenders have young children and older offenders the teenagers. Drawing
    each parent's children under their own age instead (uniform since 16) gave children mostly under 10, who grew
    into the youth band in the run (children convicted +30% in 10 years); minor children of prisoners are about
    half aged 10 or more (BJS 2008 and 2021). A parent without a partner gets the children's other parent, made as
    partners are but living apart, so a child inherits from two parents as a child born in the run does."""
    pop, fam = params.population, params.family
    n = len(offenders)
    w = pop.scale_cjs_families
    has_partner = rng.random(n) < pop.share_offenders_partnered
    is_parent = rng.random(n) < pop.share_offenders_parents
    partnered = offenders[has_partner]
    prows = _partners_for(params, rng, people, partnered, w)
    people.partner[partnered] = prows
    parents = offenders[is_parent]
    n_children = 1 + rng.poisson(pop.children_per_parent_mean - 1, len(parents))
    alone = parents[people.partner[parents] == P.NO_ONE]
    other_parent = people.partner[parents].copy()
    other_parent[people.partner[parents] == P.NO_ONE] = _partners_for(params, rng, people, alone, w, living_apart=True)
    youngest = params.demography.fertile_age_min
    ages, n_children = _households_by_parent_age(rng, n_children, -people.birth_month[parents] / 12, youngest, fam.age_adult)
    # the other parent as old as the eldest requires (as the general population's parents are)
    eldest = np.maximum.reduceat(ages, np.cumsum(n_children) - n_children) if len(ages) else ages
    people.birth_month[other_parent] = np.minimum(people.birth_month[other_parent], -np.ceil((eldest + youngest) * 12)).astype(np.int32)
    male = people.sex_male[parents]
    father = np.where(male, parents, other_parent)
    mother = np.where(male, other_parent, parents)
    _add_children(params, rng, people, father, mother, n_children, w, ages)


def _partners_for(params: Params, rng, people: P.People, rows: np.ndarray, weight: float, living_apart: bool = False) -> np.ndarray:
    """Partners from the general population for the offenders ``rows`` (``partners_of``), added with ``weight`` and
    the general population's needs; returns their rows. With ``living_apart`` they are the other parent of an
    offender's children who is no longer their partner (single, with the children)."""
    k = len(rows)
    gap_uniform = rng.random(k)
    fresh = rng.standard_normal(k)
    male, age, propensity = partners_of(params, people.sex_male[rows], -people.birth_month[rows] / 12,
                                        people.propensity[rows], gap_uniform, fresh)
    new = people.add(k, sex_male=male, birth_month=-np.rint(age * 12).astype(np.int32), weight=weight,
                     propensity=propensity, partner=P.NO_ONE if living_apart else rows, status_at_start=P.COMMUNITY_START)
    people.needs[new] = draw_needs(rng, k, params.needs.prevalence_general)
    return new


def _households_by_parent_age(rng, n_children: np.ndarray, parent_age: np.ndarray, youngest_parent_age: float,
                              age_adult: float) -> tuple[np.ndarray, np.ndarray]:
    """Children's ages (one per child, in the parents' order) and the number of children of each parent: households
    of ``n_children`` with ages uniform over childhood, ranked by their eldest's age and matched to the parents ranked
    by age (so the children stay uniform over childhood: with the offenders' ages, any spread in the matching leaves
    young parents households they are too young for). A parent still too young for the eldest (a child born before
    the parent was ``youngest_parent_age``) has the household's ages shrunk to fit."""
    h = len(n_children)
    if h == 0:
        return np.zeros(0), n_children
    ages = rng.random(int(n_children.sum())) * age_adult
    starts = np.cumsum(n_children) - n_children
    eldest = np.maximum.reduceat(ages, starts)
    household = np.empty(h, np.int64)
    household[np.argsort(parent_age, kind="stable")] = np.argsort(eldest, kind="stable")
    counts = n_children[household]
    # the children of household[j], in parent order
    child = np.repeat(starts[household] - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
    fit = np.clip((parent_age - youngest_parent_age) / np.maximum(eldest[household], 1e-9), 0.0, 1.0)
    return ages[child] * np.repeat(fit, counts), counts


def births_with_father_share(params: Params) -> float:
    """The share of the run's births whose father is known (those to a partnered mother, ``family.births``) in the
    steady state of its couple flows: women of each fertile age partnered at ``partnered_share_by_sex`` and giving
    birth at the partnered or the single rate, every fertile age equally many (as the start's age structure has
    them). The start gives its children a known father, and draws one for people with no parent in the model
    (``offending.parents_outside``), this often: a father's record counts for a child whether or not he still lives
    with them (``family.rr_father_convicted_*``), so a start that gave children a father only where two parents
    live together (``general_two_parent_share``, 74%) had the share whose father's record counts rise towards the
    run's (84%) as the children born in it grew up (until 2026-12-07; README)."""
    d = params.demography
    ages = np.arange(d.fertile_age_min, d.fertile_age_max, 1.0 / 12.0) + 1.0 / 24.0
    partnered = partnered_share_by_sex(ages, np.zeros(len(ages), bool), d, params.family.age_adult)
    with_partner = partnered * (1.0 - (1.0 - d.fertility_partnered_per_year) ** (1.0 / 12.0))
    single = (1.0 - partnered) * (1.0 - (1.0 - d.fertility_single_per_year) ** (1.0 / 12.0))
    total = float((with_partner + single).sum())
    return float(with_partner.sum()) / total if total > 0 else 0.0


def absent_father_share(params: Params) -> float:
    """The share of the general population's lone mothers' households at the start whose children's father is known
    though he lives apart (a couple that separated), so that with the two-parent and the lone fathers' households the
    start's children have a known father as often as the run's births (``births_with_father_share``); a lone
    father's children's mother is always known (every birth has one). (Until 2026-12-07, afternoon, the lone fathers'
    households were left out of it: 1.3 points too many fathers.)"""
    pop = params.population
    lone_mothers = (1.0 - pop.general_two_parent_share) * pop.lone_parent_mother_share
    with_father = 1.0 - lone_mothers  # two-parent and lone fathers' households
    return float(np.clip((births_with_father_share(params) - with_father) / max(lone_mothers, 1e-12), 0.0, 1.0))


def general_parents_per_household(params: Params) -> float:
    """The parents the start makes for a general household with dependent children on average: one at home, a second
    in two-parent households, and a parent living apart where the children's other parent is known
    (``absent_father_share`` of lone mothers', every lone father's)."""
    pop = params.population
    lone = 1.0 - pop.general_two_parent_share
    return 1.0 + pop.general_two_parent_share + lone * (pop.lone_parent_mother_share * absent_father_share(params)
                                                        + 1.0 - pop.lone_parent_mother_share)


def general_households(params: Params, children_there: float) -> float:
    """Households with dependent children the general population needs (real households): as many as hold the
    children the Census age structure leaves for them, the whole population less its adult bands
    (``adult_age_band_share``) less the ``children_there`` already made (the offenders' families'), at
    ``children_per_parent_mean`` a household. (Until 2026-12-07 a fixed assumption, 210,000, on top of the
    offenders' families: the start held about 1% more people than Essex's, its children 2.9% more.)"""
    pop = params.population
    children = pop.total_population * max(0.0, 1.0 - float(np.sum(pop.adult_age_band_share)))
    return max(0.0, children - children_there) / pop.children_per_parent_mean


def _add_general_population(params: Params, rng, people: P.People) -> None:
    """Everyone else in the area: households with dependent children (``general_households``), their children's ages
    uniform over childhood and the parents as old as the eldest requires, then the other adults
    (``_add_other_adults``)."""
    pop = params.population
    w = pop.scale_general
    adult = params.family.age_adult
    n = people.n
    children_there = float(people.weight[:n][-people.birth_month[:n] < 12 * adult].sum())
    h = _sample_count(rng, general_households(params, children_there), w)
    two_parent = rng.random(h) < pop.general_two_parent_share
    lone_is_mother = rng.random(h) < pop.lone_parent_mother_share
    n_children = 1 + rng.poisson(pop.children_per_parent_mean - 1, h)
    # every child's age uniform over childhood, as in a population with steady births (each year of age about as
    # many children); the household's parents are then as old as their eldest child requires
    child_ages = rng.random(int(n_children.sum())) * adult
    eldest = np.maximum.reduceat(child_ages, np.cumsum(n_children) - n_children)
    first_birth_age = rng.normal(pop.parent_age_at_first_child_mean_years, pop.parent_age_at_first_child_sd_years, h)
    mother_age = np.maximum(adult, eldest + np.maximum(first_birth_age, params.demography.fertile_age_min))
    father_age = np.maximum(adult, mother_age + rng.normal(params.demography.partner_age_gap_mean_years, pop.partner_age_gap_sd_years, h))
    # the children's other parent, living apart, where known: every lone father's children's mother, and the father of
    # absent_father_share of lone mothers' (so that children have a known father as often as the run's births)
    apart = ~two_parent & (~lone_is_mother | (rng.random(h) < absent_father_share(params)))
    has_mother = two_parent | lone_is_mother | apart
    has_father = two_parent | ~lone_is_mother | apart
    median, sigma = pop.propensity_median_general, pop.propensity_sigma_general

    # standard normal scores of log propensity; a father's is correlated with the mother's where both are known
    mother_z = rng.standard_normal(h)
    fresh = rng.standard_normal(h)
    father_z = np.where(two_parent | apart, partner_z(mother_z, params.family.partner_propensity_correlation, fresh), fresh)
    mapped = general_adult_scores(params)
    if mapped is not None:
        mother_z, father_z = mapped(mother_z, mother_age, np.zeros(h, bool)), mapped(father_z, father_age, np.ones(h, bool))

    def adults(mask, age, male, z):
        return people.add(
            int(mask.sum()),
            sex_male=male,
            birth_month=-np.rint(age[mask] * 12).astype(np.int32),
            weight=w,
            propensity=median * np.exp(sigma * z[mask]),
            status_at_start=P.COMMUNITY_START,
        )

    mothers = np.full(h, P.NO_ONE)
    fathers = np.full(h, P.NO_ONE)
    mothers[has_mother] = adults(has_mother, mother_age, False, mother_z)
    fathers[has_father] = adults(has_father, father_age, True, father_z)
    both = two_parent
    people.partner[mothers[both]] = fathers[both]
    people.partner[fathers[both]] = mothers[both]
    _add_children(params, rng, people, fathers, mothers, n_children, w, child_ages)
    others = _add_other_adults(params, rng, people, mapped)
    del mapped  # (and the cells it kept)
    adult_rows = np.concatenate([mothers[has_mother], fathers[has_father], others])
    people.needs[adult_rows] = draw_needs(rng, len(adult_rows), params.needs.prevalence_general)


def adult_age_targets(pop, d) -> tuple[np.ndarray, np.ndarray]:
    """Real people the whole population should have at each whole year of adult age (the grid, and the counts): each
    band's share of ``total_population``, spread evenly over a band's years, and over the last band's in proportion
    to the chance of surviving to each age (the Gompertz curve of [demography]), as with steady births."""
    bands = [*pop.adult_age_band_lower_years, pop.oldest_age_years]
    grid = np.arange(bands[0], bands[-1], 1.0)
    target = np.zeros(len(grid))
    for k, (lo, hi, share) in enumerate(zip(bands[:-1], bands[1:], pop.adult_age_band_share)):
        years = (grid >= lo) & (grid < hi)
        shape = np.ones(years.sum())
        if k == len(bands) - 2:
            annual = np.minimum(1.0 - 1e-12, d.mortality_gompertz_a * np.exp(d.mortality_gompertz_b * grid[years]))
            shape = np.exp(-np.cumsum(np.r_[0.0, -np.log1p(-annual[:-1])]))
        target[years] = share * pop.total_population * shape / shape.sum()
    return grid, target


def partnered_share(age: np.ndarray, d, age_adult: float, partner_older_years: float = 0.0,
                    later_by_years: float = 0.0) -> np.ndarray:
    """The share of people of each age with a partner in the steady state of the run's own couple flows: single at
    ``age_adult``, they find a partner at ``p_partner_per_year`` from ``age_adult`` until ``partnering_age_max``
    (both ``later_by_years`` later: men's, by the usual age gap, ``family.partnering``), and a partnership ends
    by separation (``p_separate_per_year``), the partner's death (the Gompertz curve of [demography] at the
    partner's age, ``partner_older_years`` older) or the partner's move away (``p_emigrate_per_year``, as if every
    partner could move; parents living with their children and people under supervision do not move). Left out:
    separations after partner abuse (the DA scenario) and offenders' higher mortality. In-migrants arrive partnered
    as often (``exits.arrivals``), so they do not dilute it."""
    at, share = _partnered_by_month_of_age(d, float(age_adult), float(partner_older_years), float(later_by_years))
    return np.interp(np.maximum(age, age_adult), at, share)


def partnered_share_by_sex(age: np.ndarray, sex_male: np.ndarray, d, age_adult: float) -> np.ndarray:
    """``partnered_share`` for men and women of these ages: men's partners are younger by the usual age gap, and
    men's partnering ages are that much later."""
    gap = d.partner_age_gap_mean_years
    return np.where(sex_male, partnered_share(age, d, age_adult, -gap, gap), partnered_share(age, d, age_adult, gap))


@lru_cache(maxsize=32)
def _partnered_by_month_of_age(d, age_adult: float, partner_older_years: float,
                               later_by_years: float) -> tuple[np.ndarray, np.ndarray]:
    """``partnered_share`` at each month of age from ``age_adult`` to 120, stepped month by month, each step the
    exact solution of the two-state chain (single, partnered) over the month."""
    at = age_adult + np.arange(int(12 * (120 - age_adult)) + 1) / 12.0
    window = (at >= age_adult + later_by_years) & (at < d.partnering_age_max + later_by_years)
    join = np.where(window, -np.log1p(-min(d.p_partner_per_year, 1 - 1e-12)), 0.0) / 12.0
    partner_dies = np.minimum(d.mortality_gompertz_a * np.exp(d.mortality_gompertz_b * (at + partner_older_years)), 1 - 1e-12)
    ends = -np.log1p(-min(d.p_separate_per_year, 1 - 1e-12)) - np.log1p(-min(d.p_emigrate_per_year, 1 - 1e-12))
    rate = join + (ends - np.log1p(-partner_dies)) / 12.0
    stay = np.exp(-rate)
    balance = np.divide(join, rate, out=np.zeros_like(rate), where=rate > 0)
    share = np.zeros(len(at))
    for k in range(len(at) - 1):
        share[k + 1] = share[k] * stay[k] + balance[k] * (1.0 - stay[k])
    share.setflags(write=False)
    return at, share


def _ages_filling(rng, grid: np.ndarray, shortfall: np.ndarray, weight: float) -> np.ndarray:
    """Ages (years) of agents of ``weight`` filling ``shortfall`` real people at each whole year of ``grid``."""
    total = shortfall.sum()
    n = _sample_count(rng, total, weight)
    if n == 0:
        return np.zeros(0)
    return grid[rng.choice(len(grid), size=n, p=shortfall / total)] + rng.random(n)


def _age_gaps_leaving_adults(rng, most_years: np.ndarray, mean: float, sd: float) -> np.ndarray:
    """Age gaps (man minus woman, years) from a normal of ``mean`` and ``sd`` cut off at ``most_years`` each, so that
    no wife is younger than adult age (``partner_age_gaps``, one uniform each)."""
    return partner_age_gaps(rng.random(len(np.asarray(most_years))), -np.inf, most_years, mean, sd)


def _add_other_adults(params: Params, rng, people: P.People, mapped) -> np.ndarray:
    """Adults neither known to the CJS nor in the households with dependent children, as many at each year of age as
    the population's age structure (``adult_age_targets``) has beyond the adults already there, by sex. Enough of the
    men are partnered that men of each age are partnered as often as the partnering process leaves them
    (``partnered_share_by_sex``, counting the men already there), each with a woman of the usual age gap, none under
    adult age (``_age_gaps_leaving_adults``), and a correlated propensity; the other women are single. Men, not women,
    set the couples: men known to the CJS are agents of their own strata, whose partners are made for them
    (``family.partnering``), so the general population holds more women than men of partnering age, and in the run
    its men partner at the stated rate and its women less often. Returns their rows."""
    pop, d, w = params.population, params.demography, params.population.scale_general
    n = people.n
    grid, target = adult_age_targets(pop, d)
    edges = np.r_[grid, grid[-1] + 1]
    age_now, weight, male = -people.birth_month[:n] / 12.0, people.weight[:n], people.sex_male[:n]
    partnered_now = people.partner[:n] >= 0

    def there(ages, weights):
        return np.histogram(ages, bins=edges, weights=weights)[0]

    men_target = pop.other_adults_male_share * target
    men_short = np.maximum(0.0, men_target - there(age_now[male], weight[male]))
    men_age = _ages_filling(rng, grid, men_short, w)
    partnered_short = partnered_share_by_sex(grid + 0.5, True, d, params.family.age_adult) * men_target \
        - there(age_now[male & partnered_now], weight[male & partnered_now])
    chance = np.clip(np.divide(partnered_short, men_short, out=np.zeros_like(men_short), where=men_short > 0), 0.0, 1.0)
    partnered = rng.random(len(men_age)) < chance[np.clip(np.floor(men_age - grid[0]).astype(np.int64), 0, len(grid) - 1)]
    k = int(partnered.sum())
    wife_age = np.minimum(men_age[partnered] - _age_gaps_leaving_adults(rng, men_age[partnered] - grid[0],
                                                                        d.partner_age_gap_mean_years,
                                                                        pop.partner_age_gap_sd_years),
                          pop.oldest_age_years - 1 / 12)
    women_short = (1 - pop.other_adults_male_share) * target - there(age_now[~male], weight[~male]) - there(wife_age, np.full(k, w))
    women_age = _ages_filling(rng, grid, np.maximum(0.0, women_short), w)
    median, sigma = pop.propensity_median_general, pop.propensity_sigma_general
    men_z = rng.standard_normal(len(men_age))
    wives_z = partner_z(men_z[partnered], params.family.partner_propensity_correlation, rng.standard_normal(k))

    def add(age, is_male, z):
        return people.add(len(age), sex_male=is_male, birth_month=-np.rint(age * 12).astype(np.int32), weight=w,
                          propensity=median * np.exp(sigma * z), status_at_start=P.COMMUNITY_START)

    women_z = rng.standard_normal(len(women_age))
    if mapped is not None:  # (``general_adult_scores``, the households' parents' map: its cells are computed once)
        men_z = mapped(men_z, men_age, np.ones(len(men_age), bool))
        wives_z = mapped(wives_z, wife_age, np.zeros(k, bool))
        women_z = mapped(women_z, women_age, np.zeros(len(women_age), bool))
    men = add(men_age, True, men_z)
    wives = add(wife_age, False, wives_z)
    women = add(women_age, False, women_z)
    people.partner[men[partnered]] = wives
    people.partner[wives] = men[partnered]
    return np.concatenate([men, wives, women])
