"""Family process: partnerships form and end, children are born, and parents shape their children's risk.

Children age by the calendar (age is derived from birth month); from the age of criminal responsibility they
offend through the same hazard as adults, raised by a convicted father or mother (differently for sons and
daughters; into early adulthood), a parent in custody, a parent's family-relationships need and exposure to
domestic abuse at home (``domestic_abuse``); at ``age_adult`` they are adults.
A newborn inherits part of its parents' innate propensity (not what desistance has made of it) and gets an id derived from its mother's id and birth order,
so the same child has the same id (and random draws) in every scenario.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..state.people import CHILD_START, COMMUNITY_START, CUSTODY, NO_ONE
from ..state.population import inherited_log_propensity, parents_log_dev, partners_of
from ..state.rng import hash_ids, next_month_at
from ..state.schedule import distinct_inverse
from . import intervention
from .intervention import strength_of
from .needs import needs_at_prevalence


def child_risk_multiplier(model, rows: np.ndarray, age_years: np.ndarray, bound: bool = False) -> np.ndarray:
    """Relative offending hazard from their family for the given rows: a convicted father or mother up to
    ``parent_conviction_effect_until_age`` (upbringing leaves a lasting mark), and in childhood only a parent in
    custody, a parent's family-relationships need and the intervention's effect through a parent. 1 otherwise.
    With ``bound``, the intervention's effect at its largest (see ``offending.hazard``)."""
    rows, age_years = np.asarray(rows, np.int64), np.asarray(age_years, np.float64)
    return family_multipliers(rows, age_years, risk_terms(model, bound), intervention.hazard_terms(model, bound), model.month)


def risk_terms(model, bound: bool = False) -> tuple:
    """What the compiled family multiplier needs: the people's parent links and states, and the relative risks
    (father convicted: son, daughter; mother convicted: son, daughter; parent in custody; parent's family need;
    exposure to domestic abuse at home), the ages (conviction effect until, adult, exposure effect until), the
    family-relationships need's bit, the month each child was first exposed, and whether this is for a bound (which
    allows for exposure in every child, so that an exposure need not redraw anyone's candidate offences)."""
    p, f, da = model.people, model.params.family, model.params.domestic_abuse
    rr = np.array([f.rr_father_convicted_son, f.rr_father_convicted_daughter, f.rr_mother_convicted_son,
                   f.rr_mother_convicted_daughter, f.rr_parent_in_custody, f.rr_parent_family_need, da.exposure_rr_offending])
    ages = np.array([f.parent_conviction_effect_until_age, f.age_adult, da.exposure_effect_until_age])
    return (p.father, p.mother, p.sex_male, p.prev_convictions, p.present, p.status, p.needs, rr, ages,
            np.uint8(1 << model.family_need_index), p.da_exposed_month, bound and da.incidents_per_month_base > 0,
            p.parents_convicted_outside)


@njit(cache=True, nogil=True)
def family_multipliers(rows, age_years, family, iv, month):
    """``child_risk_multiplier`` of ``rows`` at ``age_years`` (``family``: ``risk_terms``; ``iv``:
    ``intervention.hazard_terms``), compiled: one pass, no temporaries."""
    father, mother, sex_male, prev_convictions, present, status, needs, rr, ages, need_bit, exposed_month, bound, outside = family
    mode, k_child, iv_state, iv_engaged, iv_exit_month, decay = iv[0], iv[2], iv[3], iv[4], iv[5], iv[6]
    until = max(ages[0], ages[1])
    exposure = max(rr[6], 1.0) if bound else rr[6]
    out = np.ones(len(rows))
    for i in range(len(rows)):
        row, age = rows[i], age_years[i]
        fa, mo = father[row], mother[row]
        if age < ages[2] and (exposed_month[row] <= month or bound and age < ages[1]):  # (only a child can be exposed)
            out[i] = exposure
        if not age < until:
            continue
        son = sex_male[row]
        if fa < 0 and mo < 0:  # no parent in the model: their parents' records, if drawn (parents_outside_the_area)
            if age < ages[0] and outside[row]:
                m = (rr[0] if son else rr[1]) if outside[row] & 1 else 1.0
                out[i] *= m * ((rr[2] if son else rr[3]) if outside[row] & 2 else 1.0)
            continue
        marked = age < ages[0]
        m = (rr[0] if son else rr[1]) if marked and fa >= 0 and prev_convictions[fa] > 0 else 1.0
        m *= (rr[2] if son else rr[3]) if marked and mo >= 0 and prev_convictions[mo] > 0 else 1.0
        if age < ages[1]:  # childhood only: a parent in custody or with a family-relationships need, the intervention
            fa_here = fa >= 0 and present[fa]
            mo_here = mo >= 0 and present[mo]
            in_custody = (fa_here and status[fa] == CUSTODY) or (mo_here and status[mo] == CUSTODY)
            need = (fa_here and needs[fa] & need_bit != 0) or (mo_here and needs[mo] & need_bit != 0)
            c = rr[4] if in_custody else 1.0
            c *= rr[5] if need else 1.0
            if mode == 1:
                if (fa >= 0 and iv_engaged[fa]) or (mo >= 0 and iv_engaged[mo]):
                    c *= k_child
            elif mode == 2:
                s = 0.0
                if fa >= 0:
                    s = max(s, strength_of(fa, month, iv_state, iv_engaged, iv_exit_month, decay))
                if mo >= 0:
                    s = max(s, strength_of(mo, month, iv_state, iv_engaged, iv_exit_month, decay))
                c *= 1.0 - k_child * s
            m *= c
        out[i] *= m
    return out


def pair_within_buckets(men, women, men_bucket, women_bucket, men_key, women_key, men_lottery, women_lottery):
    """Pair the men and women of each bucket in the order of their key (the i-th man by key with the i-th woman).
    Where one side has more candidates than the other, who of it waits is chosen by lottery (the smallest
    ``*_lottery`` draws pair), not by key, so that assortative pairing does not leave the same end of the
    propensity scale single month after month. Pairing inside small buckets (stratum, age band) by keyed random
    order means a change to one candidate can only reshuffle partners within that bucket (common random numbers)."""

    def drawn(bucket, lottery, other_bucket):
        order = np.lexsort((lottery, bucket))
        b = bucket[order]
        rank = np.arange(len(b)) - np.searchsorted(b, b, side="left")
        other = np.sort(other_bucket)
        room = np.searchsorted(other, b, side="right") - np.searchsorted(other, b, side="left")
        keep = np.zeros(len(bucket), np.bool_)
        keep[order] = rank < room
        return keep

    def ranked(rows, bucket, key):
        order = np.lexsort((key, bucket))
        rows, bucket = rows[order], bucket[order]
        rank = np.arange(len(rows)) - np.searchsorted(bucket, bucket, side="left")
        return rows, bucket.astype(np.int64) * 1_000_000 + rank

    km, kw = drawn(men_bucket, men_lottery, women_bucket), drawn(women_bucket, women_lottery, men_bucket)
    men, m_code = ranked(men[km], men_bucket[km], men_key[km])
    women, w_code = ranked(women[kw], women_bucket[kw], women_key[kw])
    _, i, j = np.intersect1d(m_code, w_code, assume_unique=True, return_indices=True)
    return men[i], women[j]


def partnering(model) -> None:
    """Couples separate, and unpartnered adults form couples (within their own stratum, i.e. agent weight, and age
    band, and assortatively by propensity). Men's ages count the usual age gap younger, in the bands and in the ages at
    which people partner (``age_adult`` to ``partnering_age_max``), so a band's men and women are of partnering age
    together. Both happen at constant monthly probabilities, so each person's next
    chance is drawn ahead (``separate_next``, ``partner_next``) and taken if they are (still) in a position to.
    People of a stratum too small to hold a partner pool (the CJS families) who find no partner of their stratum in
    their bucket get one from the general population (``_partners_from_outside``), so they partner at the monthly
    probability itself. Others who find no partner in their bucket look again the next month."""
    p, month, draws, d = model.people, model.month, model.draws, model.params.demography
    partner = p.partner
    _separate(p.due("separate_next", month), month, monthly(d.p_separate_per_year), p.person_id, p.present, partner,
              p.separate_next, draws.key("separation", month), p.ex_partner, p.separated_month)
    cand = p.due("partner_next", month)
    cand = cand[_partner_candidates(cand, month, monthly(d.p_partner_per_year), model.params.family.age_adult,
                                    d.partnering_age_max, d.partner_age_gap_mean_years, p.person_id, p.sex_male, p.present,
                                    partner, p.birth_month, p.partner_next, draws.key("partnering", month))]
    age = (month - p.birth_month[cand]) / 12.0
    # buckets: stratum (agent weight) x 5-year age band, men's ages shifted by the usual age gap (as their partnering
    # ages are, so that a bucket's men and women are of partnering age together)
    stratum = distinct_inverse(p.weight[cand])[1]
    band = np.floor((age - np.where(p.sex_male[cand], d.partner_age_gap_mean_years, 0.0)) / 5).astype(np.int64)
    bucket = stratum * 1000 + np.maximum(band, 0)
    # assortative partnering: pairing by rank of a key that mixes each person's propensity score with noise. With
    # large pools partners' log propensities would correlate about partner_propensity_correlation; a month's pool
    # in a bucket is small, so couples formed in the run correlate a little less (about 0.33-0.38 for 0.4 at the
    # default weights, 0.34 at weights 40 and 2)
    rho = model.params.family.partner_propensity_correlation
    z = np.log(p.innate_propensity[cand] / model.params.population.propensity_median_general) / max(model.params.population.propensity_sigma_general, 1e-9)
    key = np.sqrt(rho) * z + np.sqrt(1.0 - rho) * draws.normal("partner_order", month, p.person_id[cand])
    lottery = draws.uniform("partner_lottery", month, p.person_id[cand])
    male = p.sex_male[cand]
    men, women = pair_within_buckets(cand[male], cand[~male], bucket[male], bucket[~male], key[male], key[~male],
                                     lottery[male], lottery[~male])
    partner[men] = women
    partner[women] = men
    unmatched = cand[(partner[cand] == NO_ONE) & (p.status[cand] != CUSTODY)]
    small = p.weight[unmatched] < model.params.population.scale_general
    if small.any():
        _partners_from_outside(model, unmatched[small])
    # those who found nobody in their bucket this month look again next month (rather than at their next chance,
    # years away), so that people partner at p_partner_per_year where partners are to be had
    p.partner_next[unmatched[~small]] = month + 1


_OUTSIDE_PARTNER_SALT = 1 << 40  # second part of a partner from outside's id (births use the birth order: small)


def _partners_from_outside(model, rows: np.ndarray) -> np.ndarray:
    """A partner for each of ``rows``: candidates of a stratum too small to hold a partner pool (agents standing for
    fewer people than the general population's, ``scale_general``: the CJS families) who found no partner of their
    own stratum in their bucket this month. The partner is made the way the start makes the partners of offenders
    (``population.partners_of``: opposite sex, the usual age gap, a propensity correlated with theirs, the general
    population's needs; the records of their past come with the month's other newcomers,
    ``offending.record_past_convictions``), with their weight, and stands for someone from the general population.
    The general population is not reduced: it is some 35 times larger than the CJS families and these partners are
    about 50 real people a month (some 0.35% of the population over ten years, in the baseline), so the loss there
    is negligible; they are added instead, and enter as arrivals (event and tally), so people are conserved.

    Without this, people of the small stratum partner only each other, and since most of them are male offenders,
    their men hardly ever find a partner and the stratum's births collapse. Ids derive from the person's id and the
    month, and every draw is keyed by them, so the same partner is made in every scenario where the person is single
    and due a chance that month. Returns the partners' rows."""
    new = partners_as_the_start_makes_them(model, rows, partner_ids(model, rows, _OUTSIDE_PARTNER_SALT), "partner_outside")
    model.events.add("arrival", new, model.month)
    model.tally.add("arrivals", model.people.weight[new].sum())
    return new


def partner_ids(model, rows: np.ndarray, salt: int) -> np.ndarray:
    """Ids of partners made this month for ``rows``: from the person's id and the month, hashed again with ``salt``
    (a single hash of (id, month) is the id a birth gets as that person's child number ``month``, hash_ids being
    XOR-based), so the same person gets the same partner in every scenario."""
    return hash_ids(hash_ids(model.people.person_id[rows], model.month), salt)


def partners_as_the_start_makes_them(model, rows: np.ndarray, ids: np.ndarray, streams: str) -> np.ndarray:
    """Partners ``ids`` for ``rows`` made as the start makes the partners of offenders (``population.partners_of``:
    opposite sex, the usual age gap, a propensity correlated with theirs, the general population's needs), each draw
    keyed by the partner's id on the streams ``<streams>_age_gap``, ``_propensity`` and ``_needs``. Returns their
    rows (``add_partners``)."""
    p, month, draws, params = model.people, model.month, model.draws, model.params
    male, age, propensity = partners_of(params, p.sex_male[rows], (month - p.birth_month[rows]) / 12.0,
                                        p.innate_propensity[rows], draws.uniform(f"{streams}_age_gap", month, ids),
                                        draws.normal(f"{streams}_propensity", month, ids))
    return add_partners(model, rows, ids, male, age, propensity,
                        needs_at_prevalence(draws, f"{streams}_needs", month, ids, params.needs.prevalence_general))


def add_partners(model, rows: np.ndarray, ids: np.ndarray, sex_male, age_years, propensity, needs) -> np.ndarray:
    """Add the partners (``ids``: sex, age in years, propensity, needs) of ``rows``, of their weight, linked both ways,
    living in the community. Returns their rows."""
    p = model.people
    new = p.add(
        len(rows),
        person_id=ids,
        sex_male=sex_male,
        birth_month=model.month - np.rint(age_years * 12).astype(np.int32),
        weight=p.weight[rows],
        propensity=propensity,
        partner=rows,
        needs=needs,
        status_at_start=COMMUNITY_START,
    )
    p.partner[rows] = new
    return new


@njit(cache=True, nogil=True)
def _separate(due, month, p_month, person_id, present, partner, separate_next, key, ex_partner, separated_month):
    """The next chance to separate of the rows ``due`` (draw 1, from next month); a couple due separates (each couple
    once, from its lower row, if present), each remembering the other as their former partner."""
    for r in due:
        separate_next[r] = next_month_at(person_id[r], key, 1, p_month, month + 1, month)
        mate = partner[r]
        if mate > r and present[r]:
            partner[mate] = NO_ONE
            partner[r] = NO_ONE
            ex_partner[r], ex_partner[mate] = mate, r
            separated_month[r] = separated_month[mate] = month


@njit(cache=True, nogil=True)
def _partner_candidates(due, month, p_month, age_min, age_max, men_later, person_id, sex_male, present, partner,
                        birth_month, partner_next, key):
    """The next chance to find a partner of the rows ``due`` (draw 1, from next month); returns which of them are
    candidates this month: present, single and of partnering age (men's ``men_later`` years later than women's)."""
    ok = np.empty(len(due), np.bool_)
    for i in range(len(due)):
        r = due[i]
        partner_next[r] = next_month_at(person_id[r], key, 1, p_month, month + 1, month)
        age = (month - birth_month[r]) / 12.0 - (men_later if sex_male[r] else 0.0)
        ok[i] = present[r] and partner[r] == NO_ONE and age >= age_min and age < age_max
    return ok


def schedule_new(model, rows: np.ndarray) -> None:
    """The first months newcomers could separate, find a partner and (women) give birth."""
    p, month, draws, d = model.people, model.month, model.draws, model.params.demography
    _first_chances(rows, month, monthly(d.p_separate_per_year), monthly(d.p_partner_per_year), *_birth_terms(model),
                   p.person_id, p.sex_male, p.separate_next, p.partner_next, draws.key("separation", month),
                   draws.key("partnering", month))


def _birth_terms(model) -> tuple:
    """What the compiled birth schedules need: the monthly probabilities if partnered and if single, the two
    schedules, their earlier, and the keys of their streams this month. The two schedules are separate streams, so
    a change to one rate leaves the other's draws alone (common random numbers)."""
    p, d, month, draws = model.people, model.params.demography, model.month, model.draws
    return (monthly(d.fertility_partnered_per_year), monthly(d.fertility_single_per_year), p.birth_partnered_next,
            p.birth_single_next, p.birth_next, draws.key("birth_partnered", month), draws.key("birth_single", month))


@njit(cache=True, nogil=True)
def _first_chances(rows, month, p_separate, p_partner, p_partnered, p_single, partnered_next, single_next, birth_next,
                   key_partnered, key_single, person_id, sex_male, separate_next, partner_next, key_separate,
                   key_partner):
    """The first chances of newcomers ``rows`` (draw 0, from this month): to separate, to find a partner and, for
    women, to give birth if partnered and if single (``birth_next``: the earlier)."""
    for r in rows:
        separate_next[r] = next_month_at(person_id[r], key_separate, 0, p_separate, month, month)
        partner_next[r] = next_month_at(person_id[r], key_partner, 0, p_partner, month, month)
        if not sex_male[r]:
            partnered_next[r] = next_month_at(person_id[r], key_partnered, 0, p_partnered, month, month)
            single_next[r] = next_month_at(person_id[r], key_single, 0, p_single, month, month)
            birth_next[r] = min(partnered_next[r], single_next[r])


@njit(cache=True, nogil=True)
def _due_mothers(women, month, fertile_min, fertile_max, p_partnered, p_single, partnered_next, single_next, birth_next,
                 key_partnered, key_single, person_id, present, partner, birth_month):
    """For the ``women`` due a chance of a birth: draw again each chance taken (draw 1, from next month), and return
    which of them give birth: present, of fertile age, and due the chance of their kind (partnered or single)."""
    mother = np.empty(len(women), np.bool_)
    for i in range(len(women)):
        r = women[i]
        partnered_due, single_due = partnered_next[r] == month, single_next[r] == month
        if partnered_due:
            partnered_next[r] = next_month_at(person_id[r], key_partnered, 1, p_partnered, month + 1, month)
        if single_due:
            single_next[r] = next_month_at(person_id[r], key_single, 1, p_single, month + 1, month)
        birth_next[r] = min(partnered_next[r], single_next[r])
        age = (month - birth_month[r]) / 12.0
        fertile = present[r] and age >= fertile_min and age < fertile_max
        mother[i] = fertile and (partnered_due if partner[r] >= 0 else single_due)
    return mother


def monthly(annual_probability: float | np.ndarray) -> float | np.ndarray:
    """Monthly probability equivalent to an annual one (constant hazard)."""
    return 1.0 - (1.0 - annual_probability) ** (1.0 / 12.0)


def births(model) -> np.ndarray:
    """Women of fertile age give birth, at the monthly probability for partnered or for single women; returns the
    newborns' rows. Each woman has a chance of each kind drawn ahead (``birth_next``: the earlier of the two
    schedules) and a chance is taken only if she is partnered (or single) that month."""
    p, month, draws, d, prm = model.people, model.month, model.draws, model.params.demography, model.params
    women = p.due("birth_next", month)
    mothers = women[_due_mothers(women, month, d.fertile_age_min, d.fertile_age_max, *_birth_terms(model), p.person_id,
                                 p.present, p.partner, p.birth_month)]
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
    # correlate a little less (see partnering), so children born in the run are a little less spread (under 1% in sd)
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
    schedule_new(model, model.people.new_rows("family"))
    partnering(model)
    births(model)
