"""Typed, frozen parameters: one dataclass per scenario section.

Each field's ``metadata["check"]`` says what values are allowed; ``sim.state.scenario`` validates TOML against these
classes, so the schema lives in one place. Units and sources of the default values are in scenarios/baseline.toml.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .ensemble import Ensemble


def by_sections(*names: str, maxsize: int = 8):
    """Memoise ``fn(params, *args)`` on the named sections of ``params`` (and ``args``), for values a replicate's build
    computes again and again from its parameters alone (tables, shares): the sections are frozen dataclasses, so equal
    sections give the same value, whatever else the scenario sets. ``fn`` must read no other section
    (``tests/test_engine.py`` checks each such function's reads), and its callers must not change what it returns
    (the same objects are handed to every caller). The last ``maxsize`` values are kept; a replicate that draws
    another calibration member or other uncertain values computes them afresh."""

    def decorate(fn):
        cache: dict = {}
        lock = threading.Lock()  # (a Dask worker may run replicates in threads)

        def cached(params, *args):
            key = (tuple(getattr(params, name) for name in names), args)
            value = cache.get(key, _MISSING)
            if value is _MISSING:
                value = fn(params, *args)
                with lock:
                    if len(cache) >= maxsize:
                        cache.pop(next(iter(cache)))  # the oldest
                    cache[key] = value
            return value

        functools.update_wrapper(cached, fn)
        cached.sections = names
        return cached

    return decorate


_MISSING = object()


@dataclass(frozen=True)
class Dist:
    """An uncertain value: a named distribution with its parameters, e.g. Dist("beta", (("mean", 0.4), ("sd", 0.05))).

    Optionally mixed with a point mass: with probability ``p_no_effect`` the value is exactly ``no_effect_at`` (an
    effect prior that puts real weight on the null results of trials), otherwise a draw from the distribution. Each
    replicate draws one value (``sim.state.scenario.realize``); ``ppf`` maps a uniform to a value, monotonically."""

    kind: str
    args: tuple

    KINDS = {"beta": ("mean", "sd"), "normal": ("mean", "sd"), "lognormal": ("mean", "sd"), "gamma": ("mean", "sd"),
             "uniform": ("low", "high"), "triangular": ("low", "mode", "high")}
    #: optional arguments of every kind, given together: the point mass of "no effect"
    POINT_MASS = ("p_no_effect", "no_effect_at")

    def arg(self, name: str) -> float:
        return dict(self.args)[name]

    @property
    def p_no_effect(self) -> float:
        return dict(self.args).get("p_no_effect", 0.0)

    @property
    def mean(self) -> float:
        """The mean of the mixture (the point mass of "no effect" included): the value of a deterministic base case."""
        p0 = self.p_no_effect
        return float((p0 * self.arg("no_effect_at") if p0 > 0 else 0.0) + (1 - p0) * self.frozen().mean())

    def frozen(self):
        """The scipy.stats frozen distribution (made once per distribution: building one is slow)."""
        return _frozen(self)

    def _make_frozen(self):
        from scipy import stats

        k = self.kind
        if k in ("beta", "normal", "lognormal", "gamma"):
            m, sd = self.arg("mean"), self.arg("sd")
            if k == "normal":
                return stats.norm(m, sd)
            if k == "beta":
                common = m * (1 - m) / sd**2 - 1
                return stats.beta(m * common, (1 - m) * common)
            if k == "gamma":
                return stats.gamma((m / sd) ** 2, scale=sd**2 / m)
            s2 = np.log1p((sd / m) ** 2)
            return stats.lognorm(np.sqrt(s2), scale=m * np.exp(-s2 / 2))
        lo, hi = self.arg("low"), self.arg("high")
        if k == "uniform":
            return stats.uniform(lo, hi - lo)
        return stats.triang((self.arg("mode") - lo) / (hi - lo), loc=lo, scale=hi - lo)

    def ppf(self, u: float) -> float:
        """The value at quantile ``u`` of the mixture: the distribution's own quantiles, with the point mass
        inserted where it falls (so that draws stay ordered by ``u``)."""
        p0 = self.p_no_effect
        if p0 <= 0:
            return float(self.frozen().ppf(u))
        at, slab = self.arg("no_effect_at"), self.frozen()
        below = (1 - p0) * float(slab.cdf(at))  # probability of a value below the point mass
        if u < below:
            return float(slab.ppf(u / (1 - p0)))
        if u < below + p0:
            return float(at)
        return float(slab.ppf(min((u - p0) / (1 - p0), 1.0)))

    def cdf(self, x: float) -> float:
        """Probability of a value at most ``x`` (the point mass included)."""
        own = float(self.frozen().cdf(x))
        p0 = self.p_no_effect
        return (1 - p0) * own + p0 * float(x >= self.arg("no_effect_at")) if p0 else own

    def median(self) -> float:
        return self.ppf(0.5)

    def __str__(self) -> str:
        own = ", ".join(f"{k}={v:g}" for k, v in self.args if k not in self.POINT_MASS)
        if not self.p_no_effect:
            return f"{self.kind}({own})"
        return f"no effect ({self.arg('no_effect_at'):g}) with probability {100 * self.p_no_effect:.0f}%, else {self.kind}({own})"

    @classmethod
    def from_dict(cls, d: dict) -> "Dist":
        """The inverse of ``Params.to_dict``'s form, ``{"dist": kind, name: value, ...}`` (as a manifest records it)."""
        return cls(d["dist"], tuple((k, float(v)) for k, v in d.items() if k != "dist"))


@lru_cache(maxsize=512)
def _frozen(dist: Dist):
    return dist._make_frozen()


class Money(NamedTuple):
    """An amount (or a tuple of amounts) in GBP at the prices of ``price_year`` (e.g. "2015-16")."""

    value: float | tuple
    price_year: str

PROB = "probability in [0, 1]"
FRACTION = "number in (0, 1]"
MONEY = "amount in GBP >= 0 with a price_year"
MONEY_LIST = "list of GBP amounts >= 0 with a price_year"
NONNEG = "number >= 0"
POS = "number > 0"
COUNT = "whole number >= 0"
POSINT = "whole number >= 1"
ANY = "number"


def _f(check: str, doc: str):
    return field(metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class RunParams:
    name: str = _f("text", "scenario name, used for the default output folder")
    years: float = _f(POS, "length of a run in years (months = 12 x years)")
    seed: int = _f(COUNT, "default replicate seed when none is given on the command line")
    cohort_follow_up_months: int = _f(POSINT, "MoJ proven reoffending: follow-up for offences to be committed")
    cohort_waiting_months: int = _f(COUNT, "MoJ proven reoffending: further wait for the offence to be proven")
    in_cjs_recent_conviction_months: int = _f(POSINT, "share of crime by offenders in the CJS now (the secondary reading): a conviction this recent counts")
    calibration: str = _f("text", "ensemble: each replicate draws a member of the ensemble (run.ensemble) for the calibrated values; point: the single fit of calibration/fitted.toml")
    ensemble: str = _f("text", "with calibration = ensemble: the members' file, relative to the project's folder (the baseline's calibration/ensemble.parquet; a scenario whose model differs names its own, made by sim ensemble --recheck)")


@dataclass(frozen=True)
class PopulationParams:
    scale_cjs_families: float = _f(POS, "real people one agent stands for, offenders known to the CJS and their families")
    scale_general: float = _f(POS, "real people one agent stands for, general population")
    custody_count: int = _f(COUNT, "adults in custody at the start")
    licence_count: int = _f(COUNT, "adults released on licence at the start")
    probation_count: int = _f(COUNT, "adults on community or suspended-sentence orders at the start")
    community_count: int = _f(COUNT, "adults with recent convictions, not under supervision at the start")
    male_share_custody: float = _f(PROB, "share of men among people in custody and on licence")
    male_share_probation: float = _f(PROB, "share of men on probation")
    male_share_community: float = _f(PROB, "share of men among unsupervised recent offenders")
    offender_age_mean_years: float = _f(POS, "mean age of adult offenders (gamma above 18)")
    offender_age_sd_years: float = _f(POS, "sd of age of adult offenders")
    prev_convictions_mean_custody: float = _f(NONNEG, "mean previous convictions, custody and licence")
    prev_convictions_mean_probation: float = _f(NONNEG, "mean previous convictions, probation")
    prev_convictions_mean_community: float = _f(NONNEG, "mean previous convictions, unsupervised recent offenders")
    propensity_median_custody: float = _f(POS, "median offending propensity (relative hazard), custody and licence")
    propensity_median_probation: float = _f(POS, "median offending propensity, probation")
    propensity_median_community: float = _f(POS, "median offending propensity, unsupervised recent offenders")
    propensity_median_general: float = _f(POS, "median offending propensity, general population")
    propensity_sigma: float = _f(NONNEG, "sd of log propensity within each group of known offenders (unused when propensity_groups_from_general)")
    propensity_groups_from_general: bool = _f("true or false", "the known offenders' propensities as the general distribution's upper part (the groups take its sd; the general adults the rest of it), so the whole population starts as births reproduce it (false: each group its own spread, on top of the general population)")
    propensity_sigma_general: float = _f(NONNEG, "sd of log propensity in the general population and at birth (heterogeneity between people)")
    desistance_in_past_records: bool = _f("true or false", "the records drawn for the start and for newcomers are careers as the run makes them: drawn proven offence by proven offence, each with the courts' chance of ending the career (drawn at most once a month of age, as the courts draw it once per person and court-month), which lowers the propensity as in the run, and (since 2026-12-06) with the run's state dependence: an adult's needs changing as the needs process changes them, offenders' within needs.recent_conviction_months of a conviction, and the excess after an order's start (false: a count at today's propensity and needs, as if no career had ended or grown)")
    history_years: int = _f(COUNT, "years of the starting population's recent past simulated before month 0, so the start's sentences, records and court queue come from the model's own flows (0: the start's stocks drawn from their counts)")
    history_from_drawn_stocks: bool = _f("true or false", "the simulated past begins with the custody, licence and probation stocks drawn from their counts (length-biased, as at month 0 without a past) instead of nobody under sentence, so that the start holds the licences of sentences begun before the past's first month (about a third, the people not adults when convicted so far back, are left out; ignored when history_years is 0)")
    start_sentence_median_months: float = _f(POS, "median length of the custodial sentences being served at the start")
    start_sentence_sigma: float = _f(NONNEG, "sd of log of those sentence lengths (of the longer part, with start_sentence_short_share)")
    start_sentence_short_share: float = _f(PROB, "share of those sentences from a shorter lognormal (start_sentence_short_*), as justice.sentence_short_share")
    start_sentence_short_median_months: float = _f(POS, "median length of the shorter part's sentences being served at the start")
    start_sentence_short_sigma: float = _f(NONNEG, "sd of log of those shorter sentences' lengths")
    start_order_median_months: float = _f(POS, "median length of the orders being served at the start")
    start_order_sigma: float = _f(NONNEG, "sd of log of those order lengths")
    share_offenders_parents: float = _f(PROB, "share of adult offenders with dependent children")
    share_offenders_partnered: float = _f(PROB, "share of adult offenders with a partner in the household")
    children_per_parent_mean: float = _f(POS, "mean dependent children per parent (>= 1)")
    general_two_parent_share: float = _f(PROB, "share of the general population's households with dependent children that have two parents (their number: the children the Census age structure leaves, sim.state.population.general_households)")
    total_population: int = _f(COUNT, "real people of all ages in the area at the start")
    adult_age_band_lower_years: tuple = _f("list of ages", "youngest age of each adult age band (the first: the age of adulthood)")
    adult_age_band_share: tuple = _f("list of probabilities", "share of the whole population in each adult age band")
    oldest_age_years: float = _f(POS, "no one at the start is older (the last band's ages follow survival up to it)")
    other_adults_male_share: float = _f(PROB, "share of men among adults not in the households above nor known to the CJS")
    parent_age_at_first_child_mean_years: float = _f(POS, "mean age of a mother at the birth of the eldest child")
    parent_age_at_first_child_sd_years: float = _f(NONNEG, "sd of that age")
    partner_age_gap_sd_years: float = _f(NONNEG, "sd of the age gap (man minus woman) in couples at the start")
    lone_parent_mother_share: float = _f(PROB, "share of lone parents who are mothers")


@dataclass(frozen=True)
class JusticeParams:
    release_fraction: float = _f(PROB, "share of a custodial sentence served before automatic release")
    licence_min_sentence_months: float = _f(NONNEG, "sentences at least this long are followed by licence")
    sentence_median_months: float = _f(POS, "median custodial sentence length")
    sentence_sigma: float = _f(NONNEG, "sd of log sentence length (of the longer part, with sentence_short_share)")
    sentence_short_share: float = _f(PROB, "share of custodial sentences drawn from a shorter lognormal (sentence_short_*), the rest from sentence_median_months and sentence_sigma (0: one lognormal)")
    sentence_short_median_months: float = _f(POS, "median length of the shorter part's sentences")
    sentence_short_sigma: float = _f(NONNEG, "sd of log of the shorter part's sentence lengths")
    order_median_months: float = _f(POS, "median community or suspended-sentence order length")
    order_sigma: float = _f(NONNEG, "sd of log order length")
    p_recall_per_month: float = _f(PROB, "monthly probability of recall for breach of licence conditions")
    p_recall_on_conviction: float = _f(PROB, "probability that a conviction on licence leads to recall")
    recall_custody_months: int = _f(POSINT, "months in custody after a recall")
    custody_log_odds_intercept: float = _f(ANY, "sentencing: log-odds of custody for a first offender")
    custody_log_odds_per_log_prev: float = _f(ANY, "sentencing: log-odds of custody per log(1 + previous convictions and cautions)")
    custody_log_odds_under_supervision: float = _f(ANY, "sentencing: extra log-odds of custody when convicted on an order or licence")
    order_log_odds_intercept: float = _f(ANY, "sentencing: log-odds of a community order (if not custody) for a first offender")
    order_log_odds_per_log_prev: float = _f(ANY, "sentencing: log-odds of an order per log(1 + previous convictions and cautions)")
    youth_custody_log_odds: float = _f(ANY, "sentencing: extra log-odds of custody for under-18s (youth justice diverts)")
    desist_log_odds_intercept: float = _f(ANY, "desistance: log-odds that a first proven offence (conviction or caution) ends an offending career")
    desist_log_odds_per_log_prev: float = _f(ANY, "desistance: change in log-odds per log(1 + previous convictions and cautions)")
    desisted_propensity_multiplier: float = _f(FRACTION, "desistance: propensity multiplier for someone who desists (above 0: inheritance takes its log; at most 1: desistance lowers offending)")
    cautions: bool = _f("true or false", "out-of-court disposals: the police deal with some proven offences by a caution (false: every proven offence goes to court)")
    caution_log_odds_intercept: float = _f(ANY, "out-of-court disposals: log-odds that an adult's first proven offence is cautioned")
    caution_log_odds_per_log_prev: float = _f(ANY, "out-of-court disposals: change in log-odds per log(1 + previous convictions and cautions)")
    youth_caution_log_odds: float = _f(ANY, "out-of-court disposals: extra log-odds for under-18s (reprimands, final warnings, youth cautions)")


@dataclass(frozen=True)
class OffendingParams:
    offences_per_month_base: float = _f(NONNEG, "offences a month for propensity 1, a man at the peak age")
    female_multiplier: float = _f(NONNEG, "hazard multiplier for women")
    youth_multiplier: float = _f(NONNEG, "hazard multiplier for children (under the adult age) on top of the age-crime curve")
    age_curve_ages: tuple = _f("list of ages", "ages (years) at which the age-crime curve is given")
    age_curve_multiplier: tuple = _f("list of numbers >= 0", "relative hazard at those ages (1 = peak)")
    release_multiplier_initial: float = _f(NONNEG, "extra relative hazard just after release from custody")
    order_start_multiplier_initial: float = _f(NONNEG, "extra relative hazard just after an order starts")
    supervision_decay_months: float = _f(POS, "months over which the post-release/order-start excess decays (e-folding)")
    offence_types: tuple = _f("list of names", "offence categories")
    offence_type_share: tuple = _f("list of numbers >= 0", "share of offences in each category (the shares sum to 1)")
    offence_type_p_proven: tuple = _f("list of probabilities", "probability an offence is detected and proven (conviction or caution)")
    offence_type_custody_log_odds: tuple = _f("list of numbers", "sentencing: extra log-odds of custody by category")
    court_lag_mean_months: float = _f(NONNEG, "mean months from offence to conviction (geometric)")


@dataclass(frozen=True)
class NeedsParams:
    names: tuple = _f("list of names", "criminogenic needs, in this order everywhere")
    prevalence_offenders: tuple = _f("list of probabilities", "share of known offenders with each need at the start")
    prevalence_general: tuple = _f("list of probabilities", "share of general-population adults with each need at the start")
    offending_rr: tuple = _f("list of numbers >= 0", "relative offending hazard with the need")
    monthly_resolution: tuple = _f("list of probabilities", "monthly probability a need resolves by itself")
    p_accommodation_on_release: float = _f(PROB, "probability of an accommodation need on release from custody")
    p_employment_on_release: float = _f(PROB, "probability of an employment need on release from custody")
    recent_conviction_months: int = _f(POSINT, "months after a conviction during which someone counts as an active offender for needs")


@dataclass(frozen=True)
class FamilyParams:
    age_criminal_responsibility: float = _f(NONNEG, "youngest age (years) at which a child can offend")
    age_adult: float = _f(POS, "age (years) at which a child becomes an adult")
    propensity_heritability: float = _f(PROB, "weight of the parents' mean log propensity in a newborn's")
    partner_propensity_correlation: float = _f(PROB, "correlation of partners' log propensities (assortative partnering)")
    rr_father_convicted_son: float = _f(NONNEG, "child's hazard multiplier: father ever convicted, sons")
    rr_father_convicted_daughter: float = _f(NONNEG, "child's hazard multiplier: father ever convicted, daughters")
    rr_mother_convicted_son: float = _f(NONNEG, "child's hazard multiplier: mother ever convicted, sons")
    rr_mother_convicted_daughter: float = _f(NONNEG, "child's hazard multiplier: mother ever convicted, daughters")
    rr_parent_in_custody: float = _f(NONNEG, "child's hazard multiplier while a parent is in custody")
    parent_conviction_effect_until_age: float = _f(NONNEG, "age (years) up to which a convicted parent raises a son's or daughter's hazard")
    rr_parent_family_need: float = _f(NONNEG, "child's hazard multiplier while a parent has a family-relationships need")
    parents_outside_the_area: bool = _f("true or false", "people with no parent in the model (the starting adults who do not live with a parent, in-migrants, partners from outside) get the convicted parents the model's own families would give them, so the parents' conviction effect does not grow with the share of adults born in the run (false: no such effect for them)")


@dataclass(frozen=True)
class DemographyParams:
    mortality_gompertz_a: float = _f(NONNEG, "annual death probability at age 0 of the Gompertz curve q = a exp(b age)")
    mortality_gompertz_b: float = _f(NONNEG, "Gompertz slope per year of age")
    mortality_multiplier_offenders: float = _f(NONNEG, "mortality multiplier for people with a conviction")
    p_emigrate_per_year: float = _f(PROB, "annual probability of moving out of the area")
    arrivals_per_year: float = _f(NONNEG, "adults moving into the area each year")
    arrivals_like_residents_share: float = _f(PROB, "share of arriving adults who resemble the starting population's adults of their age (propensity, sex, needs); the rest are drawn from the general population")
    arrival_age_min: float = _f(NONNEG, "youngest age of an arriving adult (years)")
    arrival_age_max: float = _f(POS, "oldest age of an arriving adult (years)")
    arrival_male_share: float = _f(PROB, "share of men among arriving adults")
    fertility_partnered_per_year: float = _f(PROB, "annual birth probability, partnered women of fertile age")
    fertility_single_per_year: float = _f(PROB, "annual birth probability, unpartnered women of fertile age")
    fertile_age_min: float = _f(NONNEG, "youngest age of a mother (years)")
    fertile_age_max: float = _f(POS, "oldest age of a mother (years)")
    male_share_at_birth: float = _f(PROB, "share of boys among births")
    p_partner_per_year: float = _f(PROB, "annual probability that an unpartnered adult forms a partnership")
    p_separate_per_year: float = _f(PROB, "annual probability that a partnership ends")
    partnering_age_max: float = _f(POS, "oldest age (years) at which new partnerships form")
    partner_age_gap_mean_years: float = _f(ANY, "mean of (man's age - woman's age) in a couple")


@dataclass(frozen=True)
class InterventionParams:
    coverage: float = _f(PROB, "share of eligible offenders referred (0 switches the intervention off)")
    intensity_hours_per_month: float = _f(NONNEG, "keyworker hours per family per month (0 switches it off)")
    dose_scale_hours: float = _f(POS, "hours a month at which effects reach 63% of their maximum (diminishing returns)")
    eligible_on_release: bool = _f("true or false", "offenders leaving custody are eligible")
    eligible_on_order_start: bool = _f("true or false", "offenders starting a community or suspended-sentence order are eligible")
    require_dependent_children: bool = _f("true or false", "only offenders with a child under the adult age at home are eligible")
    min_convictions: int = _f(COUNT, "minimum convictions so far, the current one included, to be eligible (a risk threshold)")
    referral_delay_months: int = _f(COUNT, "months from release or order start to referral")
    referral_years: float = _f(POS, "years from the start during which families are referred (the funded programme); families already in it finish, and the run may follow outcomes for longer")
    capacity_families_per_year: float = _f(NONNEG, "families the team can take on a year")
    max_wait_months: int = _f(COUNT, "months a referred family waits for a place before the referral lapses")
    rerefer_after_lapse: bool = _f("true or false", "a referral that lapsed (no place in time, or back in custody while waiting) can be made again at the offender's next release or order start (false: one referral per offender)")
    duration_months: int = _f(POSINT, "months of intervention per family")
    p_engage: float = _f(PROB, "probability a family that starts engages")
    p_dropout_per_month: float = _f(PROB, "monthly probability an engaged family drops out")
    offending_rr_at_full_dose: float = _f(NONNEG, "offender's hazard multiplier at full dose (direct effect)")
    need_resolution_rr_at_full_dose: tuple = _f("list of numbers >= 0", "multiplier of each need's monthly probability of resolving, at full dose, if the keyworker's help works as the evidence's central values suggest")
    need_effect_scale: float = _f(NONNEG, "how much of that the intervention achieves: the factor is 1 + (multiplier - 1) x scale x dose (0: no effect)")
    child_rr_at_full_dose: float = _f(NONNEG, "children's hazard multiplier at full dose (parenting, family relationships)")
    detection_rr_at_full_dose: float = _f(NONNEG, "multiplier, at full dose, of the probability that an offence by an offender in the intervention is proven (closer supervision)")
    recall_rr_at_full_dose: float = _f(NONNEG, "multiplier, at full dose, of the monthly probability of recall of an offender on licence in the intervention")
    effect_decay_months: float = _f(POS, "e-folding time of the direct effects after a family leaves")
    treatment_referral_share: float = _f(PROB, "share of engaged offenders with a substance-misuse or mental-health need whom the keyworker newly refers into NHS treatment (costed to the NHS while they are in the intervention)")
    setup_cost_gbp: Money = _f(MONEY, "one-off cost of setting up the team, month 0")
    fixed_cost_per_year_gbp: Money = _f(MONEY, "running cost of the team whatever its caseload")
    cost_per_keyworker_hour_gbp: Money = _f(MONEY, "cost of a keyworker hour incl. on-costs")


@dataclass(frozen=True)
class DomesticAbuseParams:
    perpetrator_share_male: float = _f(PROB, "share of men who would abuse a partner (drawn once per person; the rest never do)")
    perpetrator_share_female: float = _f(PROB, "share of women who would abuse a partner")
    perpetrator_log_odds_per_sd_propensity: float = _f(ANY, "change in the log-odds of being a perpetrator per sd of log offending propensity (the overlap of partner abuse and general offending)")
    incidents_per_month_base: float = _f(NONNEG, "police-attended incidents a month of a perpetrator of average frailty at the peak age, with a partner at home")
    rate_frailty_sigma: float = _f(NONNEG, "sd of log of a perpetrator's own rate (lognormal, mean 1): how concentrated incidents are on a few couples")
    age_curve_power: float = _f(NONNEG, "the perpetrator's rate follows the age-crime curve raised to this power (0: no change with age)")
    escalation_per_incident: float = _f(NONNEG, "each incident in the current run of incidents (no gap over repeat_window_months) multiplies the rate of the next by 1 + this")
    escalation_max_incidents: int = _f(COUNT, "escalation stops growing after this many incidents in a run")
    p_separate_after_incident: float = _f(PROB, "probability that a couple living together separates in a month with a police-attended incident between them (abuse ends relationships more often than the general separation rate)")
    post_separation_months: int = _f(COUNT, "months after a separation during which a perpetrator can still abuse the former partner")
    post_separation_rr: float = _f(NONNEG, "rate against a former partner relative to a current one")
    p_crime: float = _f(PROB, "share of police-attended incidents recorded as a crime (the rest are non-crime incidents)")
    p_proven: float = _f(PROB, "probability a DA crime is proven (charge or caution: a positive outcome), opening a court case like any violent offence")
    repeat_window_months: int = _f(POSINT, "an incident against the same victim within this many months of the last is a repeat (the MARAC definition)")
    high_risk_min_incidents: int = _f(POSINT, "a victim is assessed high-risk at an incident that is at least this far into a run of incidents (a proxy for a DASH score of 14+)")
    exposure_rr_offending: float = _f(NONNEG, "offending hazard multiplier of a child exposed to an incident in the household, from the exposure on")
    exposure_effect_until_age: float = _f(NONNEG, "age (years) up to which exposure raises offending")


@dataclass(frozen=True)
class DaHubParams:
    capacity_victims_per_year: float = _f(NONNEG, "high-risk victims the hub's advocates can take on a year (0 switches the hub off)")
    p_identified: float = _f(PROB, "share of high-risk victims' police-attended incidents referred to the hub (earlier identification)")
    funded_years: float = _f(POS, "years from the start during which the hub takes on victims (the funded service); those in support finish, and the run may follow outcomes for longer")
    support_months: int = _f(POSINT, "months of advocacy and safety planning per victim")
    p_engage: float = _f(PROB, "probability a referred victim engages with the support")
    repeat_rr: float = _f(NONNEG, "multiplier of the rate of incidents against a victim while supported (1: no effect; above 1: more incidents reported)")
    escalation_rr: float = _f(NONNEG, "multiplier of the escalation (the rate's growth with each incident) against a victim while supported")
    effect_decay_months: float = _f(POS, "e-folding time of the effects after support ends")
    cost_per_victim_gbp: Money = _f(MONEY, "cost of a supported victim (advocate time, risk assessment, MARAC), incl. on-costs")
    fixed_cost_per_year_gbp: Money = _f(MONEY, "running cost of the hub whatever its caseload (co-location, management)")
    setup_cost_gbp: Money = _f(MONEY, "one-off cost of setting up the hub, month 0")


#: the parts of a victim-year of domestic abuse, in the order of ``CostParams.da_cost_per_victim_year``
DA_COST_PARTS = ("physical_emotional_harm", "lost_output", "health_services", "victim_services", "civil_legal")


@dataclass(frozen=True)
class CostParams:
    base_price_year: str = _f("text", "price year every cost is uprated to")
    deflator_years: tuple = _f("list of names", "financial years of the GDP deflator series")
    deflator_index: tuple = _f("list of numbers >= 0", "GDP deflator index for those years")
    discount_rate: float = _f(PROB, "annual discount rate for years 0-30 (Green Book social time preference rate)")
    discount_rate_after_30_years: float = _f(PROB, "annual discount rate from year 31 (Green Book declining schedule)")
    optimism_bias_intervention: float = _f(NONNEG, "uplift on the intervention's costs for optimism bias")
    optimism_bias_benefits: float = _f(PROB, "reduction of the intervention's benefits for optimism bias, by the evidence grade of its effects: the appraisal reports the NPV and BCR with it beside the headline, whose priors carry that doubt already")
    crime_cost_by_type: Money = _f(MONEY_LIST, "economic and social cost of an offence, by offence type")
    crime_cost_share_economic: float = _f(PROB, "share of an offence's cost that is lost output and property (economic)")
    crime_cost_share_health: float = _f(PROB, "share that is NHS treatment of victims (fiscal)")
    crime_cost_share_response: float = _f(PROB, "share that is the police and CJS response, left out because it is costed from the simulated arrests, courts and sentences; the rest is physical and emotional harm (social)")
    police_cost_per_proven_offence: Money = _f(MONEY, "police: arrest, custody and investigation of a proven offence")
    police_cost_per_caution: Money = _f(MONEY, "police: administering a caution, reprimand or warning (on top of the proven offence's cost; a cautioned case has no court cost)")
    court_cost_per_conviction: Money = _f(MONEY, "courts, CPS and legal aid for a conviction (proceedings, not the sentence)")
    prison_cost_per_month: Money = _f(MONEY, "prison: a prisoner-month")
    probation_order_cost_per_month: Money = _f(MONEY, "probation: a month of a community or suspended-sentence order")
    licence_cost_per_month: Money = _f(MONEY, "probation: a month of licence supervision")
    recall_cost: Money = _f(MONEY, "process cost of a recall (police, probation, parole), besides the custody")
    youth_justice_cost_per_conviction: Money = _f(MONEY, "youth justice: court and youth offending team assessment for a conviction of a child")
    youth_supervision_cost_per_month: Money = _f(MONEY, "youth offending team: a month of a child's community sentence or licence")
    youth_custody_cost_per_month: Money = _f(MONEY, "youth secure estate: a child-month in custody")
    children_services_cost_per_child_month_parent_in_custody: Money = _f(MONEY, "children's social care: a child-month with a parent in custody")
    nhs_cost_per_month_by_need: Money = _f(MONEY_LIST, "NHS: a person-month with each need (treatment), in need order")
    dwp_cost_per_month_unemployed: Money = _f(MONEY, "DWP: out-of-work benefits for a person-month with an employment need")
    lost_output_per_month_unemployed: Money = _f(MONEY, "economy: output lost in a person-month with an employment need")
    da_police_cost_per_incident: Money = _f(MONEY, "police: the whole cost of a domestic-abuse incident, response and investigation (proven DA crimes are not costed again as proven offences)")
    da_cost_per_victim_year: Money = _f(MONEY_LIST, "cost of a victim-year of domestic abuse (a victim abused in a year of the run), by part in DA_COST_PARTS order")
    da_homicide_risk_per_incident: float = _f(PROB, "expected domestic homicides per police-attended incident (costed as an expected value, never simulated)")
    da_cost_per_homicide: Money = _f(MONEY, "economic and social cost of a domestic homicide")
    cashable_share_prison: float = _f(PROB, "share of the cost of prison places closed that is cashable")
    prison_places_per_cashable_step: float = _f(POS, "prison places a unit that can close holds: prison savings are cashable only in whole units")
    cashable_share_probation: float = _f(PROB, "share of probation savings that are cashable")
    cashable_share_police: float = _f(PROB, "share of police savings that are cashable")
    cashable_share_courts: float = _f(PROB, "share of court savings that are cashable")
    cashable_share_local_authority: float = _f(PROB, "share of local authority (children's services) savings that are cashable")
    cashable_share_youth_justice: float = _f(PROB, "share of youth justice (YOT, secure estate) savings that are cashable")
    cashable_share_nhs: float = _f(PROB, "share of NHS savings that are cashable")
    cashable_share_dwp: float = _f(PROB, "share of DWP savings that are cashable")


SECTIONS: dict[str, type] = {
    "run": RunParams,
    "population": PopulationParams,
    "justice": JusticeParams,
    "offending": OffendingParams,
    "needs": NeedsParams,
    "family": FamilyParams,
    "demography": DemographyParams,
    "intervention": InterventionParams,
    "domestic_abuse": DomesticAbuseParams,
    "da_hub": DaHubParams,
    "costs": CostParams,
}


@dataclass(frozen=True)
class Params:
    """A resolved scenario: every section validated. ``source_file`` is where it was loaded from."""

    run: RunParams
    population: PopulationParams
    justice: JusticeParams
    offending: OffendingParams
    needs: NeedsParams
    family: FamilyParams
    demography: DemographyParams
    intervention: InterventionParams
    domestic_abuse: DomesticAbuseParams
    da_hub: DaHubParams
    costs: CostParams
    source_file: str = ""
    #: with run.calibration = "ensemble": the members a replicate draws its calibrated values from (``with_member``)
    ensemble: "Ensemble | None" = None

    @property
    def uncertain(self) -> list[str]:
        """The "section.key" of every value given as a distribution."""
        out = []
        for name in SECTIONS:
            obj = getattr(self, name)
            for f in fields(obj):
                v = getattr(obj, f.name)
                if isinstance(v, Dist) or (isinstance(v, Money) and isinstance(v.value, Dist)):
                    out.append(f"{name}.{f.name}")
        return out

    @property
    def months(self) -> int:
        return int(round(self.run.years * 12))

    def to_dict(self) -> dict:
        """Plain nested dict of values (for the manifest)."""
        def plain(v):
            if isinstance(v, Dist):
                return {"dist": v.kind, **dict(v.args)}
            if isinstance(v, Money):
                return {"value": plain(v.value), "price_year": v.price_year}
            return list(v) if isinstance(v, tuple) else v

        return {name: {f.name: plain(getattr(getattr(self, name), f.name)) for f in fields(getattr(self, name))} for name in SECTIONS}
