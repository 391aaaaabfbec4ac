"""Exits and arrivals: deaths (Gompertz mortality, higher for people with convictions), moves out of the area,
and adults moving in.

People under CJS supervision do not move away, nor does a parent their dependent children live with, so no child
does. In-migrants arrive as households: their partners counted, they are partnered at the steady share of people of
their sex and age. Exits keep their row (``present = False``) so family links and the event log
stay valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from ..state.people import COMMUNITY_START, FREE, NO_ONE
from ..state.population import partnered_share_by_sex
from ..state.rng import NEVER, hash_ids, uniform_at
from ..state.schedule import distinct
from .family import add_partners, monthly, partner_ids, partners_as_the_start_makes_them
from .needs import needs_at_prevalence


def death_probability(age_years: np.ndarray, convicted: np.ndarray, d) -> np.ndarray:
    """Monthly death probability from the Gompertz annual curve q = a exp(b age), capped at 1."""
    annual = np.minimum(1.0, d.mortality_gompertz_a * np.exp(d.mortality_gompertz_b * age_years))
    annual = np.minimum(1.0, annual * np.where(convicted, d.mortality_multiplier_offenders, 1.0))
    return monthly(annual)


@lru_cache(maxsize=16)
def survival_table(d, max_years: int = 120) -> np.ndarray:
    """Cumulative hazard of dying, -log P(surviving to the start of month-of-age a), by (ever convicted, a) for
    a = 0 .. 12 x max_years + 1, from ``death_probability``; ages beyond the table use its last month."""
    age = np.arange(max_years * 12 + 1) / 12.0
    q = np.stack([death_probability(age, np.zeros_like(age, bool), d), death_probability(age, np.ones_like(age, bool), d)])
    with np.errstate(divide="ignore"):
        hazard = -np.log1p(-q)
    return np.concatenate([np.zeros((2, 1)), np.cumsum(hazard, axis=1)], axis=1)


def schedule_death(model, rows: np.ndarray, stream: str) -> None:
    """Draw the month each of ``rows`` dies (from this month on) by the inverse of their survival curve, the
    offenders' curve for anyone with a conviction. Redrawn at a first conviction: survival has no memory given age."""
    p, month = model.people, model.month
    rows = np.asarray(rows, np.int64)
    # in the simulated past (population.history_years) everyone lives to the start by construction: from month 0
    p.schedule("death_month", rows, _death_months(rows, max(month, 0), p.person_id, p.birth_month, p.prev_convictions,
                                                  survival_table(model.params.demography), model.draws.key(stream, month)))


@njit(cache=True, nogil=True)
def _death_months(rows, month, person_id, birth_month, prev_convictions, table, key):
    """The month each row's cumulative hazard from its present age passes a standard exponential draw."""
    out = np.empty(len(rows), np.int64)
    last = table.shape[1] - 2
    for i in range(len(rows)):
        r = rows[i]
        curve = table[1 if prev_convictions[r] > 0 else 0]
        age = min(month - birth_month[r], last)
        target = curve[age] - math.log1p(-uniform_at(person_id[r], key, 0))  # + a standard exponential
        end = np.searchsorted(curve, target)  # the first month of age whose end they do not reach, + 1
        out[i] = NEVER if end >= len(curve) else month + end - 1 - age  # beyond the table: only with no mortality
    return out


def schedule_new(model, rows: np.ndarray) -> None:
    """Death month and the first month each newcomer could move away."""
    d = model.params.demography
    schedule_death(model, rows, "death")
    p = model.people
    p.schedule("move_next", rows, model.month + model.draws.months_to_event("move", model.month, p.person_id[rows], monthly(d.p_emigrate_per_year)))


def home_parent(p, children: np.ndarray) -> np.ndarray:
    """The parent each child lives with: the mother if present, else the father (NO_ONE if neither is known)."""
    mother = p.mother[children]
    mother_home = (mother >= 0) & p.present[np.maximum(mother, 0)]
    return np.where(mother_home, mother, p.father[children])


def step(model) -> None:
    """Deaths on their drawn month; moves away at a constant monthly probability for adults at liberty, except a
    parent their dependent children live with (so children never move away). Someone who moves leaves their partner
    single: the start's couples allow for it (``population.partnered_share``)."""
    p, month, draws, d = model.people, model.month, model.draws, model.params.demography
    schedule_new(model, p.new_rows("exits"))
    die = p.due("death_month", month)
    die = die[p.present[die]]
    candidates = p.due("move_next", month)
    p.schedule("move_next", candidates, month + 1 + draws.months_to_event("move", month, p.person_id[candidates], monthly(d.p_emigrate_per_year), 1))
    adult_months = 12 * model.params.family.age_adult
    movers = candidates[p.present[candidates] & (month - p.birth_month[candidates] >= adult_months) & (p.status[candidates] == FREE)
                        & (p.death_month[candidates] != month)]
    if len(movers):
        # a parent their dependent children live with stays: nobody arrives with children, so families moving away
        # would drain the youth band (about 1% a year; children convicted fell 10% in 10 years), where Essex's net
        # migration of families with children is about nil (README, The model)
        children = distinct(p.children.of(movers))
        children = children[p.present[children] & (month - p.birth_month[children] < adult_months) & (p.death_month[children] != month)]
        movers = movers[~np.isin(movers, home_parent(p, children))]  # so no child moves away either
    leave = movers
    for rows, event in ((die, "death"), (leave, "exit")):
        p.present[rows] = False
        model.events.add(event, rows, month)
    gone = np.concatenate([die, leave])
    partners = p.partner[gone]
    p.partner[partners[partners >= 0]] = NO_ONE
    p.partner[gone] = NO_ONE
    model.tally.add("deaths", p.weight[die].sum())
    model.tally.add("exits", p.weight[leave].sum())
    model.remove_agents(gone)


@dataclass(frozen=True)
class ArrivalDonors:
    """The adults of the starting population of an in-migrant's age: whom a resident-like in-migrant resembles, and
    their partners (``partner_*``, where ``has_partner``): whom the in-migrant's partner resembles. ``draw_cumulative``
    is the running sum of each donor's chance to be drawn: a couple both of whose members are donors is drawn as
    often as a single donor (so households, not people, are drawn evenly)."""

    age_years: np.ndarray
    draw_cumulative: np.ndarray
    innate_propensity: np.ndarray
    sex_male: np.ndarray
    needs: np.ndarray
    weight: np.ndarray
    has_partner: np.ndarray
    partner_innate_propensity: np.ndarray
    partner_needs: np.ndarray
    partner_age_gap_years: np.ndarray  # the partner's age less the donor's


def arrival_donors(model) -> ArrivalDonors:
    """The starting population's adults aged ``arrival_age_min``-``arrival_age_max``, taken before the first month: so
    both arms of a comparison draw their in-migrants from the same people (common random numbers)."""
    p, d = model.people, model.params.demography
    age = (model.month - p.birth_month[: p.n]) / 12.0
    rows = np.flatnonzero(p.present[: p.n] & (age >= d.arrival_age_min) & (age < d.arrival_age_max))
    mate = p.partner[rows]
    has = mate >= 0
    mate = np.where(has, mate, rows)  # (a donor's own values where they have no partner: not used)
    donor = np.zeros(p.n, np.bool_)
    donor[rows] = True
    chance = 1.0 / (1.0 + (has & donor[mate]))
    return ArrivalDonors(age[rows], np.cumsum(chance / chance.sum()), p.innate_propensity[rows].copy(),
                         p.sex_male[rows].copy(), p.needs[rows].copy(), p.weight[rows].copy(),
                         has, p.innate_propensity[mate].copy(), p.needs[mate].copy(),
                         (p.birth_month[rows] - p.birth_month[mate]) / 12.0)


def arrivals(model) -> np.ndarray:
    """Adults moving into the area; returns their rows. A share ``arrivals_like_residents_share`` of them resemble
    the starting population's adults of their age (propensity, sex, needs, age and the weight of one of them, drawn
    evenly over households of agents, so real people as the residents are), the rest are drawn from the general population. A
    steady Essex renews itself like with like: in-migrants drawn only from the general population thinned its
    offending per head over 40 years (README, Calibration). Their records come from their hazard
    (``offending.record_past_convictions``). People move as households, a couple drawn once: a general-population
    in-migrant arrives with a partner with probability s / (2 - s), where s is the steady share of people of their
    sex and age with one (``population.partnered_share_by_sex``), so that, their partners counted, arriving adults are
    partnered at that share (s / (2 - s) gives it for each sex because the men's curve is about the women's two years
    on and ``arrival_male_share`` is about a half); the partner is made as the start makes partners (``partners_of``). A
    resident-like in-migrant takes their resident's age and, if that resident has a partner, a partner like them;
    a resident couple is drawn as often as a single resident. Partners count among the month's
    ``arrivals_per_year``: in-migrants arriving single thinned the run's couples.

    Their ids derive from (month, arrival number), their partners' from theirs, so they are the same people in
    every scenario.
    """
    p, month, draws, d, pop = model.people, model.month, model.draws, model.params.demography, model.params.population
    donors = model.arrival_donors
    like = d.arrivals_like_residents_share if len(donors.weight) else 0.0
    real = d.arrivals_per_year / 12.0
    k_general = _arrivals_count(draws, "arrivals", month,
                                (1.0 - like) * (real / (1.0 + _arrival_partnered_mean(d, model.params.family.age_adult))) / pop.scale_general)
    k_like = _arrivals_count(draws, "arrivals_like_residents", month, like * real / _donor_household_mean(donors)) if like > 0 else 0
    k = k_general + k_like
    if k == 0:
        return np.zeros(0, np.int64)
    ids = hash_ids(np.full(k, -(month + 1)), np.arange(k))
    z = draws.normal("arrival_propensity", month, ids[:k_general])
    donor = np.minimum(np.searchsorted(donors.draw_cumulative, draws.uniform("arrival_donor", month, ids[k_general:]), side="right"),
                       len(donors.weight) - 1)
    age = np.concatenate([d.arrival_age_min + draws.uniform("arrival_age", month, ids[:k_general]) * (d.arrival_age_max - d.arrival_age_min),
                          donors.age_years[donor]])
    rows = p.add(
        k,
        person_id=ids,
        sex_male=np.concatenate([draws.uniform("arrival_sex", month, ids[:k_general]) < d.arrival_male_share, donors.sex_male[donor]]),
        birth_month=month - np.rint(age * 12).astype(np.int32),
        weight=np.concatenate([np.full(k_general, pop.scale_general), donors.weight[donor]]),
        propensity=np.concatenate([pop.propensity_median_general * np.exp(pop.propensity_sigma_general * z), donors.innate_propensity[donor]]),
        needs=np.concatenate([needs_at_prevalence(draws, "arrival_needs", month, ids[:k_general], model.params.needs.prevalence_general),
                              donors.needs[donor]]),
        status_at_start=COMMUNITY_START,
    )
    rows = np.concatenate([rows, _arriving_partners(model, rows[:k_general]), _resident_like_partners(model, rows[k_general:], donor)])
    model.events.add("arrival", rows, month)
    model.tally.add("arrivals", p.weight[rows].sum())
    return rows


_ARRIVAL_PARTNER_SALT = (1 << 40) + 1  # an arriving partner's id: family.partner_ids (partners from outside: 1 << 40)


def _arriving_partners(model, rows: np.ndarray) -> np.ndarray:
    """Partners for those of the general-population arrivals ``rows`` who have one, made as the start makes partners,
    of their weight. Returns their rows. A couple is one draw, so an arrival has one with probability s / (2 - s)
    (``_partner_chance``), s the share of residents of their sex and age with one (``partnered_share_by_sex``)."""
    p, month, d = model.people, model.month, model.params.demography
    share = partnered_share_by_sex((month - p.birth_month[rows]) / 12.0, p.sex_male[rows], d, model.params.family.age_adult)
    rows = rows[model.draws.uniform("arrival_partnered", month, p.person_id[rows]) < _partner_chance(share)]
    if len(rows) == 0:
        return np.zeros(0, np.int64)
    return partners_as_the_start_makes_them(model, rows, partner_ids(model, rows, _ARRIVAL_PARTNER_SALT), "arrival_partner")


def _resident_like_partners(model, rows: np.ndarray, donor: np.ndarray) -> np.ndarray:
    """Partners for those of the resident-like arrivals ``rows`` whose resident (``donor``) has one: like that
    partner (propensity, needs, age gap), of the arrival's weight. Returns their rows."""
    donors, p = model.arrival_donors, model.people
    has = donors.has_partner[donor]
    rows, donor = rows[has], donor[has]
    if len(rows) == 0:
        return np.zeros(0, np.int64)
    age = np.maximum(model.params.family.age_adult,
                     (model.month - p.birth_month[rows]) / 12.0 + donors.partner_age_gap_years[donor])
    return add_partners(model, rows, partner_ids(model, rows, _ARRIVAL_PARTNER_SALT), ~p.sex_male[rows], age,
                        donors.partner_innate_propensity[donor], donors.partner_needs[donor])


def _partner_chance(share):
    """The chance that an arriving household is a couple, for a partnered share ``share`` of adults: couples x among
    households give 2x / (1 + x) of their adults partnered, which is ``share`` at x = share / (2 - share)."""
    return share / (2.0 - share)


def _donor_household_mean(donors: ArrivalDonors) -> float:
    """The mean number of real people a resident-like arrival stands for: their weight, twice if they bring a
    partner, over the donors' chances to be drawn."""
    chance = np.diff(donors.draw_cumulative, prepend=0.0)
    return float(np.sum(chance * donors.weight * (1.0 + donors.has_partner)))


@lru_cache(maxsize=16)
def _arrival_partnered_mean(d, age_adult: float) -> float:
    """The mean chance that a general-population arrival brings a partner (``_partner_chance`` over the arrivals'
    even spread of ages and their mix of sexes): they are drawn as 1 / (1 + this) of their share of
    ``arrivals_per_year``, so that with their partners they number it."""
    age = np.linspace(d.arrival_age_min, d.arrival_age_max, 401)
    men = _partner_chance(partnered_share_by_sex(age, True, d, age_adult)).mean()
    women = _partner_chance(partnered_share_by_sex(age, False, d, age_adult)).mean()
    return float(d.arrival_male_share * men + (1.0 - d.arrival_male_share) * women)


def _arrivals_count(draws, stream: str, month: int, expected: float) -> int:
    """Agents arriving this month: ``expected`` rounded up or down at random, so that its mean is ``expected``."""
    return int(expected) + int(draws.uniform(stream, month, np.array([0]))[0] < expected - int(expected))
