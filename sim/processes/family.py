"""Family process: partnerships form and end, children are born, and parents shape their children's risk.

Children age by the calendar (age is derived from birth month); from the age of criminal responsibility they
offend through the same hazard as adults, raised by a convicted father or mother (differently for sons and
daughters; into early adulthood), a parent in custody and a parent's family-relationships need; at ``age_adult``
they are adults.
A newborn inherits part of its parents' innate propensity (not what desistance has made of it) and gets an id derived from its mother's id and birth order,
so the same child has the same id (and random draws) in every scenario.
"""

from __future__ import annotations

import numpy as np

from ..state.people import CHILD_START, CUSTODY, NO_ONE
from ..state.population import inherited_log_propensity, parents_log_dev
from ..state.rng import hash_ids
from . import intervention


def child_risk_multiplier(model, rows: np.ndarray, age_years: np.ndarray) -> np.ndarray:
    """Relative offending hazard from their family for the given rows: a convicted father or mother up to
    ``parent_conviction_effect_until_age`` (upbringing leaves a lasting mark), and in childhood only a parent in
    custody, a parent's family-relationships need and the intervention's effect through a parent. 1 otherwise."""
    p, f = model.people, model.params.family
    mult = np.ones(len(rows))
    fa_all, mo_all = p.father[rows], p.mother[rows]
    # a parent's conviction, for sons and daughters with a known parent up to the age the effect lasts
    marked = np.flatnonzero((age_years < f.parent_conviction_effect_until_age) & ((fa_all >= 0) | (mo_all >= 0)))
    if len(marked):
        fa, mo, son = fa_all[marked], mo_all[marked], p.sex_male[rows[marked]]
        father_convicted = (fa >= 0) & (p.prev_convictions[np.maximum(fa, 0)] > 0)
        mother_convicted = (mo >= 0) & (p.prev_convictions[np.maximum(mo, 0)] > 0)
        m = np.where(father_convicted, np.where(son, f.rr_father_convicted_son, f.rr_father_convicted_daughter), 1.0)
        m *= np.where(mother_convicted, np.where(son, f.rr_mother_convicted_son, f.rr_mother_convicted_daughter), 1.0)
        mult[marked] = m
    # childhood only: a parent in custody or with a family-relationships need, the intervention through a parent
    child = np.flatnonzero(age_years < f.age_adult)
    if len(child):
        fa, mo = fa_all[child], mo_all[child]
        has_fa, has_mo = fa >= 0, mo >= 0
        fa_c, mo_c = np.maximum(fa, 0), np.maximum(mo, 0)
        parent_in_custody = (has_fa & p.present[fa_c] & (p.status[fa_c] == CUSTODY)) | (
            has_mo & p.present[mo_c] & (p.status[mo_c] == CUSTODY)
        )
        j = model.family_need_index
        parent_need = (has_fa & p.present[fa_c] & p.has_need(fa_c, j)) | (has_mo & p.present[mo_c] & p.has_need(mo_c, j))
        m = mult[child]
        m *= np.where(parent_in_custody, f.rr_parent_in_custody, 1.0)
        m *= np.where(parent_need, f.rr_parent_family_need, 1.0)
        m *= intervention.child_multiplier(model, fa, mo)
        mult[child] = m
    return mult


def pair_within_buckets(men, women, men_bucket, women_bucket, men_key, women_key):
    """Pair the i-th man with the i-th woman of each bucket, both sides ordered by their key; the rest of the
    larger side waits. Pairing inside small buckets (stratum, age band) by keyed random order means a change to
    one candidate can only reshuffle partners within that bucket (common random numbers)."""

    def ranked(rows, bucket, key):
        order = np.lexsort((key, bucket))
        rows, bucket = rows[order], bucket[order]
        rank = np.arange(len(rows)) - np.searchsorted(bucket, bucket, side="left")
        return rows, bucket.astype(np.int64) * 1_000_000 + rank

    men, m_code = ranked(men, men_bucket, men_key)
    women, w_code = ranked(women, women_bucket, women_key)
    _, i, j = np.intersect1d(m_code, w_code, assume_unique=True, return_indices=True)
    return men[i], women[j]


def partnering(model) -> None:
    """Unpartnered adults form couples (within their own stratum, i.e. agent weight, and age band, and
    assortatively by propensity) and couples separate."""
    p, month, draws, d = model.people, model.month, model.draws, model.params.demography
    n = p.n
    age = model.ages
    present = p.present[:n]
    partner = p.partner[:n]
    partnered = np.flatnonzero(partner >= 0)
    couples = partnered[(partner[partnered] > partnered) & present[partnered]]  # each couple once, from its lower row
    split = couples[draws.uniform("separation", month, p.person_id[couples]) < monthly(d.p_separate_per_year)]
    partner[partner[split]] = NO_ONE
    partner[split] = NO_ONE
    single = present & (partner == NO_ONE) & (age >= model.params.family.age_adult) & (age < d.partnering_age_max)
    cand = np.flatnonzero(single)
    cand = cand[draws.uniform("partnering", month, p.person_id[cand]) < monthly(d.p_partner_per_year)]
    # buckets: stratum (agent weight) x 5-year age band, men's ages shifted by the usual age gap
    stratum = np.unique(p.weight[cand], return_inverse=True)[1]
    band = np.floor((age[cand] - np.where(p.sex_male[cand], d.partner_age_gap_mean_years, 0.0)) / 5).astype(np.int64)
    bucket = stratum * 1000 + np.maximum(band, 0)
    # assortative partnering: pairing by rank of a key that mixes each person's propensity score with noise. With
    # large pools partners' log propensities would correlate about partner_propensity_correlation; a month's pool
    # in a bucket is a handful of people, so couples formed in the run correlate less (about 0.1 for 0.4)
    rho = model.params.family.partner_propensity_correlation
    z = np.log(p.innate_propensity[cand] / model.params.population.propensity_median_general) / max(model.params.population.propensity_sigma_general, 1e-9)
    key = np.sqrt(rho) * z + np.sqrt(1.0 - rho) * draws.normal("partner_order", month, p.person_id[cand])
    male = p.sex_male[cand]
    men, women = pair_within_buckets(cand[male], cand[~male], bucket[male], bucket[~male], key[male], key[~male])
    partner[men] = women
    partner[women] = men


def monthly(annual_probability: float | np.ndarray) -> float | np.ndarray:
    """Monthly probability equivalent to an annual one (constant hazard)."""
    return 1.0 - (1.0 - annual_probability) ** (1.0 / 12.0)


def births(model) -> np.ndarray:
    """Women of fertile age give birth; returns the newborns' rows."""
    p, month, draws, d, prm = model.people, model.month, model.draws, model.params.demography, model.params
    n = p.n
    age = model.ages
    women = np.flatnonzero(p.present[:n] & ~p.sex_male[:n] & (age >= d.fertile_age_min) & (age < d.fertile_age_max))
    partnered = p.partner[women] >= 0
    prob = np.where(partnered, monthly(d.fertility_partnered_per_year), monthly(d.fertility_single_per_year))
    mothers = women[draws.uniform("birth", month, p.person_id[women]) < prob]
    k = len(mothers)
    if k == 0:
        return mothers
    fathers = p.partner[mothers]
    new_ids = hash_ids(p.person_id[mothers], p.children_born[mothers])
    p.children_born[mothers] += 1
    median = prm.population.propensity_median_general
    log_dev = parents_log_dev(p, fathers, mothers, median)
    z = draws.normal("newborn_propensity", month, new_ids)
    n_parents = 1 + (fathers >= 0).astype(int)
    # the spread allows for partners correlated at partner_propensity_correlation; couples formed in the run
    # correlate less (see partnering), so children born in the run are a little less spread (~6% in sd)
    propensity = median * np.exp(
        inherited_log_propensity(log_dev, prm.family.propensity_heritability, prm.population.propensity_sigma_general, z, n_parents,
                                 prm.family.partner_propensity_correlation)
    )
    rows = p.add(
        k,
        person_id=new_ids,
        sex_male=draws.uniform("newborn_sex", month, new_ids) < d.male_share_at_birth,
        birth_month=month,
        father=fathers,
        mother=mothers,
        weight=p.weight[mothers],
        propensity=propensity,
        status_at_start=CHILD_START,
    )
    model.events.add("birth", rows, month)
    model.tally.add("births", p.weight[rows].sum())
    return rows


def step(model) -> None:
    partnering(model)
    model.add_agents(births(model))
