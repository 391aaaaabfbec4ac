"""The starting population: the whole area by the Census age structure, children of every age alike, partners as the
partnering process leaves them, so that ageing alone does not change the baseline (a steady start)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_allclose

from conftest import BASELINE, DRAWN_START
from sim.state import population as pop_mod
from sim.state.people import People
from sim.state.scenario import load_scenario


@pytest.fixture(scope="module")
def built():
    """The baseline's starting population at a finer general weight than the default (less sampling noise), 2 seeds."""
    params = load_scenario(BASELINE, ["population.scale_general=10"])
    out = []
    for seed in (1, 2):
        people = People()
        pop_mod.synthesize(params, np.random.default_rng(seed), people)
        out.append(people)
    return params, out


def _arrays(people):
    n = people.n
    return -people.birth_month[:n] / 12.0, people.weight[:n], people.sex_male[:n], people.partner[:n]


def test_adult_age_bands_are_the_census_shares(built):
    """Each adult band holds its share of the total population (within 1% of the total)."""
    params, built_people = built
    pop = params.population
    bands = [*pop.adult_age_band_lower_years, pop.oldest_age_years]
    for people in built_people:
        age, w, _, _ = _arrays(people)
        counts = np.histogram(age, bins=bands, weights=w)[0]
        for (lo, hi), count, share in zip(zip(bands[:-1], bands[1:]), counts, pop.adult_age_band_share):
            assert count == pytest.approx(share * pop.total_population, abs=0.01 * pop.total_population), (lo, hi)


def test_total_is_essex(built):
    """The whole adds up to Essex's total population (within 0.5%), and its children to the share the Census adult
    bands leave (within 1%), the offenders' children among them: the general households are drawn net of those."""
    params, built_people = built
    pop = params.population
    children_share = 1.0 - sum(pop.adult_age_band_share)
    for people in built_people:
        age, w, _, _ = _arrays(people)
        assert w.sum() == pytest.approx(pop.total_population, rel=0.005)  # (1.0022 and 1.0032; 1.009-1.010 before 2026-12-07)
        assert w[age < params.family.age_adult].sum() == pytest.approx(children_share * pop.total_population, rel=0.01)  # (2.9% over before)
        assert w[(age < params.family.age_adult) & (w == pop.scale_cjs_families)].sum() > 0.02 * children_share * pop.total_population


def test_general_households_hold_the_childrens_share_beside_the_offenders():
    """The general households are as many as hold the children the adult bands leave, less those already there; none
    when the offenders' children fill it (a population of 1,000,000 with adult bands of 80%: 200,000 children, two a
    household)."""
    params = load_scenario(BASELINE, ["population.total_population=1000000", "population.adult_age_band_share=[0.3, 0.3, 0.2]",
                                      "population.children_per_parent_mean=2"])
    assert pop_mod.general_households(params, 0.0) == pytest.approx(100_000)
    assert pop_mod.general_households(params, 50_000.0) == pytest.approx(75_000)
    assert pop_mod.general_households(params, 250_000.0) == 0.0


def test_children_are_spread_evenly_over_the_years_of_childhood(built):
    """As many children at each year of age, within sampling noise: no year of childhood holds more than 1.25 times
    the mean (the old households drew most children young: under-5s were three times 15-17s)."""
    params, built_people = built
    adult = params.family.age_adult
    for people in built_people:
        age, w, _, _ = _arrays(people)
        by_year = np.histogram(age, bins=np.arange(0, adult + 1), weights=w)[0]
        assert by_year.max() < 1.25 * by_year.mean() and by_year.min() > 0.75 * by_year.mean(), by_year


def test_adults_of_every_year_of_age_to_the_oldest(built):
    """Within the first two bands every year of age holds about its even part of the band (the shortfall is filled
    where it is); the last band falls with age as survival does; nobody is older than the oldest age."""
    params, built_people = built
    pop = params.population
    lo0, lo1, lo2 = pop.adult_age_band_lower_years
    for people in built_people:
        age, w, _, _ = _arrays(people)
        assert age[w == pop.scale_general].max() <= pop.oldest_age_years  # (the offenders' ages have a gamma tail of their own)
        for lo, hi, share in ((lo0, lo1, pop.adult_age_band_share[0]), (lo1, lo2, pop.adult_age_band_share[1])):
            by_year = np.histogram(age, bins=np.arange(lo, hi + 1), weights=w)[0]
            even = share * pop.total_population / (hi - lo)
            assert np.all(np.abs(by_year / even - 1) < 0.2), (lo, by_year / even)
        old = np.histogram(age, bins=[60, 70, 80, 90, 100], weights=w)[0]
        assert np.all(np.diff(old) < 0), old


def test_men_are_partnered_as_the_partnering_process_leaves_them(built):
    """Couples are mutual and of opposite sex; men of every age band from 25 to 75, whatever their stratum, are
    partnered as often as the model's own partnering, separation, deaths and moves leave men of their age
    (``partnered_share_by_sex``): the start is the steady state of the run's couples, which men set (the general
    population holds more women than men: the CJS's men are in strata of their own)."""
    params, built_people = built
    for people in built_people:
        age, w, male, partner = _arrays(people)
        has = partner >= 0
        rows = np.flatnonzero(has)
        assert np.array_equal(partner[partner[rows]], rows)
        assert np.all(male[rows] != male[partner[rows]])
        for lo in range(25, 75, 10):
            band = male & (age >= lo) & (age < lo + 10)
            expected = np.average(pop_mod.partnered_share_by_sex(age[band], True, params.demography, params.family.age_adult),
                                  weights=w[band])
            assert np.average(has[band], weights=w[band]) == pytest.approx(expected, abs=0.03), lo


def test_young_women_start_partnered_no_more_often_than_the_partnering_process_leaves_them(built):
    """Women of 18-19, few of them partnered in the steady state of the run's couples, start so: within 10 points of
    ``partnered_share_by_sex`` for women of their age."""
    params, built_people = built
    for people in built_people:
        age, w, male, partner = _arrays(people)
        band = ~male & (age >= 18) & (age < 20)
        expected = np.average(pop_mod.partnered_share_by_sex(age[band], False, params.demography, params.family.age_adult),
                              weights=w[band])
        assert np.average(partner[band] >= 0, weights=w[band]) < expected + 0.10


def test_wives_age_gaps_are_the_normal_cut_off_at_adult_age():
    """The start's age gaps (man minus woman) are a normal cut off where the wife would be under adult age: never
    past each man's own cut, and distributed as normal draws kept when under it (rejection, an independent method);
    far from the cut, the plain normal."""
    rng = np.random.default_rng(5)
    mean, sd, n = 2.0, 3.5, 200_000
    cuts = (0.5, 2.0, 6.0, 60.0)
    most = np.repeat(cuts, n)  # each man his own cut, mixed in one call
    gaps = pop_mod._age_gaps_leaving_adults(rng, most, mean, sd)
    assert np.all(gaps <= most)
    for cut in cuts:
        drawn = gaps[most == cut]
        normal = rng.normal(mean, sd, 4 * n)
        kept = normal[normal <= cut]
        assert np.quantile(drawn, [0.1, 0.5, 0.9]) == pytest.approx(np.quantile(kept, [0.1, 0.5, 0.9]), abs=0.05), cut
    far = gaps[most == 60.0]
    assert far.mean() == pytest.approx(mean, abs=0.03) and far.std() == pytest.approx(sd, abs=0.03)


def test_partners_made_for_people_have_the_cut_off_age_gap():
    """``partners_of`` (offenders' partners at the start, in-migrants' partners, small strata's in the run): neither
    partner is under adult age, and the age gap (man minus woman) follows the normal cut where the partner would be
    under it (scipy's truncated normal at the same uniforms, an independent method): a man's partner's gap cut
    above at his age less adult age, a woman's cut below at adult age less hers; far from adult age, the plain normal."""
    from scipy.stats import norm, truncnorm

    params = load_scenario(BASELINE)
    d, pop, adult = params.demography, params.population, params.family.age_adult
    mean, sd = d.partner_age_gap_mean_years, pop.partner_age_gap_sd_years
    u = np.linspace(0.001, 0.999, 999)
    n = len(u)
    for own_age in (18.5, 20.0, 40.0):
        for male in (True, False):
            sex, age, _ = pop_mod.partners_of(params, np.full(n, male), np.full(n, own_age),
                                              np.full(n, pop.propensity_median_general), u, np.zeros(n))
            assert np.all(sex != male) and age.min() >= adult
            gap = own_age - age if male else age - own_age
            lo, hi = (-np.inf, own_age - adult) if male else (adult - own_age, np.inf)
            assert_allclose(gap, truncnorm.ppf(u, (lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd), atol=1e-9)
            if own_age == 40.0:
                assert_allclose(gap, norm.ppf(u, loc=mean, scale=sd), atol=1e-4)


def test_start_has_no_partner_under_adult_age(built):
    """Nobody at the start has a partner while under adult age (wives, and partners made for offenders)."""
    params, built_people = built
    for people in built_people:
        age, w, male, partner = _arrays(people)
        assert age[partner >= 0].min() >= params.family.age_adult - 1 / 24  # (ages are whole months)


def test_partnered_share_rises_to_its_balance_and_falls_after_partnering_stops():
    params = load_scenario(BASELINE)
    d = params.demography
    ages = np.array([18.0, 25.0, 40.0, d.partnering_age_max, d.partnering_age_max + 20])
    share = pop_mod.partnered_share(ages, d, params.family.age_adult)
    join, part = -np.log1p(-d.p_partner_per_year), -np.log1p(-d.p_separate_per_year)
    assert share[0] == 0 and share[1] < share[2] < join / (join + part)  # rising towards the balance of the two rates
    assert 0 < share[4] < share[3]  # separations and partners' deaths go on, new partnerships do not


def test_partnered_share_is_the_two_state_chain_and_partners_deaths_end_couples():
    """Without deaths and moves the month-by-month share is the closed form of a two-state chain with constant rates (single at
    18: join / (join + part) (1 - exp(-(join + part) t)), then exp(-part t) after partnering stops); with deaths it
    is lower, the more so the older the partner and the older the person; with moves away, lower at every age."""
    params = load_scenario(BASELINE)
    d = dataclasses.replace(params.demography, mortality_gompertz_a=0.0, p_emigrate_per_year=0.0)
    ages = np.array([18.0, 21.5, 30.0, 44.25, d.partnering_age_max, 63.0, 80.0])
    join, part = -np.log1p(-d.p_partner_per_year), -np.log1p(-d.p_separate_per_year)
    t = np.minimum(ages, d.partnering_age_max) - 18.0
    closed = join / (join + part) * -np.expm1(-(join + part) * t) * np.exp(-part * np.maximum(ages - d.partnering_age_max, 0))
    assert_allclose(pop_mod.partnered_share(ages, d, 18.0), closed, atol=1e-9)
    deaths_only = dataclasses.replace(params.demography, p_emigrate_per_year=0.0)
    with_deaths = pop_mod.partnered_share(ages, deaths_only, 18.0)
    older_partner = pop_mod.partnered_share(ages, deaths_only, 18.0, partner_older_years=5.0)
    assert (pop_mod.partnered_share(ages, params.demography, 18.0)[1:] < with_deaths[1:]).all()
    assert (with_deaths[1:] < closed[1:]).all() and (older_partner[1:] < with_deaths[1:]).all()
    assert closed[-1] - with_deaths[-1] > 5 * (closed[2] - with_deaths[2])  # deaths end couples mostly late in life
    # men partner from two years later and until two years later: the same curve, two years on
    assert_allclose(pop_mod.partnered_share(ages + 2.0, d, 18.0, later_by_years=2.0), closed, atol=1e-9)
    assert pop_mod.partnered_share(np.array([19.9]), d, 18.0, later_by_years=2.0)[0] == 0.0


def test_people_start_with_the_records_their_age_and_propensity_give_them():
    """Everyone at liberty with a clean record from the synthesis starts with the convictions the model's own hazard
    would have given them: none under the age of criminal responsibility, more of the older children, more of the
    more prone, each dated after their 10th birthday and before the start (adults' before the offender groups'
    recent window); the starting offender groups keep the records the synthesis drew for them."""
    from sim import ReoffendingModel

    params = load_scenario(BASELINE, ["population.scale_general=10", "population.history_years=0"])  # records as drawn
    model = ReoffendingModel(params, seed=3, record_offences=False)
    p, n = model.people, model.people.n
    age_months = -p.birth_month[:n]
    adult, youngest = 12 * params.family.age_adult, 12 * params.family.age_criminal_responsibility
    record = p.prev_convictions[:n] > 0
    general = p.weight[:n] > params.population.scale_cjs_families
    general_child = (age_months < adult) & general
    assert not record[general_child & (age_months < youngest)].any()
    young = general_child & (age_months >= youngest) & (age_months < youngest + 36)  # 3 years: a handful of records at 10-11
    old = general_child & (age_months >= adult - 24)
    assert record[old].mean() > 2 * record[young].mean() > 0
    dated, born = p.last_conviction_month[:n][record & general], p.birth_month[:n][record & general]
    assert (dated < 0).all() and (dated >= born + youngest).all()
    recent = params.run.in_cjs_recent_conviction_months
    general_adult = general & (age_months >= adult)
    dated_adult = p.last_conviction_month[:n][record & general_adult]
    as_child = dated_adult < p.birth_month[:n][record & general_adult] + adult
    assert ((dated_adult < -recent) | as_child).all() and as_child.any()
    assert (p.convictions_before_start[:n] == p.prev_convictions[:n]).all()
    # the more prone have records more often (top against bottom quarter of general men aged 30-50)
    men = general_adult & p.sex_male[:n] & (age_months >= 360) & (age_months < 600)
    prone = p.propensity[:n]
    lo, hi = np.quantile(prone[men], [0.25, 0.75])
    # (1.5: at the fit of 2026-12-06 a third of the least prone quarter has a record: 0.70 in the top quarter against 0.35)
    assert record[men & (prone >= hi)].mean() > 1.5 * record[men & (prone <= lo)].mean()
    assert 0.05 < record[men].mean() < 0.6  # some, not all
    # a young adult's convictions as a child all count (only adult ones in the offender groups' window are left out)
    year = age_months // 12
    young_men = general & p.sex_male[:n]
    # (18 and 19 pooled: at 18 alone, a thousand agents, the ratio's sampling error is about 0.17)
    assert record[young_men & ((year == 18) | (year == 19))].mean() > 0.6 * record[young_men & (year == 17)].mean()
    # adults first: a son's record sees his father's (a convicted father raises the son's hazard); with nothing
    # inherited, only that link makes sons of fathers with a record have records more often
    q = ReoffendingModel(load_scenario(BASELINE, ["population.scale_general=10", "family.propensity_heritability=0",
                                                  "family.rr_father_convicted_son=5"]), seed=3, record_offences=False).people
    age_q = -q.birth_month[: q.n]
    sons = np.flatnonzero((age_q >= 168) & (age_q < adult) & q.sex_male[: q.n] & (q.father[: q.n] >= 0)
                          & (q.weight[: q.n] > params.population.scale_cjs_families))
    has, fathers_have = q.prev_convictions[sons] > 0, q.prev_convictions[q.father[sons]] > 0
    assert has[fathers_have].mean() > 2 * has[~fathers_have].mean()

    unseeded = People()
    pop_mod.synthesize(model.params, np.random.default_rng(3), unseeded)
    grown = p.prev_convictions[:n] != unseeded.prev_convictions[:n]
    assert grown.any() and (unseeded.prev_convictions[:n][grown] == 0).all()
    drawn = unseeded.prev_convictions[:n] > 0
    assert drawn.any() and (p.prev_convictions[:n][drawn] == unseeded.prev_convictions[:n][drawn]).all()  # offender groups' kept


def test_offenders_children_are_of_every_age_and_have_two_parents(built):
    """The offenders' children are spread over childhood like everyone's (their parents matched by age), not mostly
    under 10: under-5s per year of age at most 1.3 times 10-17s (the old start: 3.6 times; minor children of prisoners
    are about half aged 10 or more, BJS 2008 and 2021). Each was born when both parents were at least
    fertile_age_min, and each has a father and a mother (a lone offender's children their other parent, living apart)."""
    params, built_people = built
    adult, youngest = params.family.age_adult, params.demography.fertile_age_min
    for people in built_people:
        age, w, _, _ = _arrays(people)
        n = people.n
        child = (age < adult) & (w == params.population.scale_cjs_families)
        per_year = lambda lo, hi: w[child & (age >= lo) & (age < hi)].sum() / (hi - lo)  # noqa: E731
        assert per_year(0, 5) < 1.3 * per_year(10, adult), (per_year(0, 5), per_year(10, adult))
        assert w[child & (age >= 10)].sum() / w[child].sum() > 0.38
        father, mother = people.father[:n][child], people.mother[:n][child]
        assert (father >= 0).all() and (mother >= 0).all()
        for parent in (father, mother):
            assert (age[parent] - age[child] >= youngest - 1 / 12).all()


def test_the_offenders_children_at_the_start_are_as_many_a_year_as_the_run_gives_them():
    """The offender families' children under 5 at the start, per year of age, are about the births the run itself
    gives these families in its first three years (within a third): otherwise the start's young children grow into
    the youth band as a wave (the old start had twice the run's births: children convicted rose 30% in 10 years).
    Nobody under 18 moves away (their parents stay, as nobody arrives with children)."""
    from sim.runs.batch import replicate_model
    from sim.state.events import EVENT_CODE

    params = load_scenario(BASELINE)
    start_per_year, births_per_year = [], []
    for seed in (11, 12):
        model = replicate_model(params, seed)
        p = model.people
        n0 = p.n
        age0, w0 = -p.birth_month[:n0] / 12.0, p.weight[:n0]
        small = w0 == params.population.scale_cjs_families
        start_per_year.append(w0[small & (age0 < 5)].sum() / 5)
        model.run(36)
        born = np.arange(n0, p.n)
        born = born[(p.birth_month[born] >= 0) & (p.weight[born] == params.population.scale_cjs_families)]
        births_per_year.append(p.weight[born].sum() / 3)
        rows, month, code = model.events.arrays()[:3]
        left = rows[code == EVENT_CODE["exit"]]
        assert (month[code == EVENT_CODE["exit"]] - p.birth_month[left] >= 12 * params.family.age_adult).all()
    ratio = np.mean(start_per_year) / np.mean(births_per_year)
    assert 0.75 < ratio < 1.33, (start_per_year, births_per_year)


def _adult_scores(params, seed=1):
    """Weighted standard normal scores of log innate propensity (on the general population's scale) of every adult
    at the start, and their weights."""
    people = People()
    pop_mod.synthesize(params, np.random.default_rng(seed), people)
    n, pop = people.n, params.population
    adult = -people.birth_month[:n] / 12.0 >= params.family.age_adult
    z = np.log(people.innate_propensity[:n][adult] / pop.propensity_median_general) / pop.propensity_sigma_general
    return z, people.weight[:n][adult]


def _adult_cells(params, seed: int = 1):
    """Adults' scores as ``_adult_scores``, with their ages (years) and sex."""
    people = People()
    pop_mod.synthesize(params, np.random.default_rng(seed), people)
    n, pop = people.n, params.population
    age = -people.birth_month[:n] / 12.0
    adult = age >= params.family.age_adult
    z = np.log(people.innate_propensity[:n][adult] / pop.propensity_median_general) / pop.propensity_sigma_general
    return z, people.weight[:n][adult], age[adult], people.sex_male[:n][adult]


@pytest.mark.parametrize("threshold", [1.5, 2.0, 2.5])
def test_offender_groups_drawn_from_the_general_distribution_leave_all_adults_following_it(threshold):
    """With ``propensity_groups_from_general`` (and a general spread wide enough to hold the groups) the whole adult
    population, offenders and all, has the general distribution's upper tail, which births reproduce, within 25% up to
    2.5 sd (beyond it lies the small excess ``start_tail_excess`` measures, 3% of the groups here, with the recent offenders' median at 5); with the groups
    drawn on top with their own spread (the start before 2026-12-05) the tail is half as heavy again at 2 sd and more beyond."""
    from scipy.stats import norm

    common = [*DRAWN_START, "population.scale_general=20", "population.propensity_sigma_general=1.3", "population.propensity_median_community=5"]
    on = load_scenario(BASELINE, common + ["population.propensity_groups_from_general=true"])
    assert pop_mod.start_tail_excess(on) < 0.05
    z, w = _adult_scores(on)
    expected = norm.sf(threshold)
    assert np.sum(w[z > threshold]) / w.sum() == pytest.approx(expected, rel=0.25)
    if threshold >= 2.0:
        drawn = load_scenario(BASELINE, ["population.scale_general=20", *DRAWN_START])
        z, w = _adult_scores(drawn)
        assert np.sum(w[z > threshold]) / w.sum() > 1.4 * norm.sf(threshold)


def test_the_tail_excess_grows_as_the_groups_move_beyond_the_general_distribution():
    """0 for groups well inside the general distribution; rising with the groups' median; the start before 2026-12-05 (groups
    with a spread of their own, wider than the general one, as before 2026-12-05) far beyond it."""
    base = [*DRAWN_START, "population.propensity_groups_from_general=true", "population.propensity_sigma_general=1.3"]

    def excess(*more):
        return pop_mod.start_tail_excess(load_scenario(BASELINE, base + list(more)))

    inside = excess("population.propensity_median_community=1.0", "population.propensity_median_probation=1.0",
                    "population.propensity_median_custody=1.0")
    assert inside < 1e-3
    assert inside < excess("population.propensity_median_community=8") < excess("population.propensity_median_community=20")
    assert pop_mod.start_tail_excess(load_scenario(BASELINE, DRAWN_START)) > 0.3
    assert pop_mod.start_tail_excess(load_scenario(BASELINE)) < 0.1  # the shipped start, fitted with it


def test_the_general_adults_scores_are_mapped_monotonically():
    """The mapping of the general adults' scores keeps their order (partners' correlation by rank), lowers the upper
    tail where the groups take it, and is not applied when the option is off."""
    on = load_scenario(BASELINE, [*DRAWN_START, "population.propensity_groups_from_general=true", "population.propensity_sigma_general=1.3"])
    mapped = pop_mod.general_adult_scores(on)
    z = np.linspace(-4, 5, 1001)
    for age, male in ((25.0, True), (25.0, False), (50.0, True), (70.0, False)):
        out = mapped(z, np.full(len(z), age), np.full(len(z), male))
        assert np.all(np.diff(out) >= 0) and out[-1] <= z[-1]
        assert abs(mapped(np.array([0.0]), np.array([age]), np.array([male]))[0]) < 0.1  # the middle hardly moves
    young_men, old_women = (mapped(np.array([3.0]), np.array([a]), np.array([m]))[0] for a, m in ((25.0, True), (70.0, False)))
    assert young_men < old_women - 0.2  # young men's tail gives way to the groups (young, mostly men); old women's hardly
    assert pop_mod.general_adult_scores(load_scenario(BASELINE, DRAWN_START)) is None


@pytest.mark.parametrize("male", [True, False])
def test_every_sex_and_age_band_starts_as_births_make_it(male):
    """Births give every sex and age the general distribution, so with ``propensity_groups_from_general`` each adult
    cell (sex x age band 18-39, 40-59, 60+) does too: its share above 2 sd within 25% of the normal tail's, although
    the known offenders are mostly young men. With the groups on top (the start before 2026-12-05) young men's tail is twice as
    heavy (the start before 2026-12-05)."""
    from scipy.stats import norm

    on = load_scenario(BASELINE, [*DRAWN_START, "population.scale_general=10", "population.propensity_sigma_general=1.3",
                                  "population.propensity_median_community=4", "population.propensity_groups_from_general=true"])
    z, w, age, men = _adult_cells(on)
    for lo, hi in ((18, 40), (40, 60), (60, 200)):
        here = (men == male) & (age >= lo) & (age < hi)
        assert np.sum(w[here & (z > 2.0)]) / w[here].sum() == pytest.approx(norm.sf(2.0), rel=0.25), (lo, hi)
    if male:
        z, w, age, men = _adult_cells(load_scenario(BASELINE, ["population.scale_general=10", *DRAWN_START]))
        here = men & (age < 40)
        assert np.sum(w[here & (z > 2.0)]) / w[here].sum() > 2 * norm.sf(2.0)


def test_the_general_adults_map_is_what_keeps_the_tail(monkeypatch):
    """A control for the test above: with the groups drawn at the general sd but the general adults' scores left as
    drawn (the map switched off), all adults' share above 2.5 sd is well above the general distribution's, and above
    what the map leaves (the groups themselves cut to the general tail, ``offender_scores``: 1.3 times it; 1.5 times
    and more before they were, until 2026-12-07)."""
    from scipy.stats import norm

    on = load_scenario(BASELINE, [*DRAWN_START, "population.scale_general=20", "population.propensity_sigma_general=1.3",
                                  "population.propensity_groups_from_general=true"])
    z, w = _adult_scores(on)
    mapped_share = np.sum(w[z > 2.5]) / w.sum()
    monkeypatch.setattr(pop_mod, "general_adult_scores", lambda params: None)  # (as the option off would)
    z, w = _adult_scores(on)
    unmapped_share = np.sum(w[z > 2.5]) / w.sum()
    assert unmapped_share > 1.25 * norm.sf(2.5)
    assert unmapped_share > 1.2 * mapped_share


def test_young_adults_start_with_the_general_tail_year_by_year():
    """The start's adults follow the general distribution of propensity in every year of age, not only across the
    Census bands: men and women in their twenties and thirties, among whom the known offenders and their partners
    crowd, start with the mean propensity births give them, as those in their forties do. (Made consistent by band until 2026-12-07, the twenties
    started with a heavier upper tail and the late thirties a lighter one; as the twenties aged, offending at fixed
    ages rose over decades: README.)"""
    params = load_scenario(BASELINE, ["population.scale_general=10"])
    sigma = params.population.propensity_sigma_general
    z, w, age, men = _adult_cells(params, seed=3)

    def mean_propensity(lo, hi, male):  # relative to the general distribution's, exp(sigma^2 / 2) x the median
        here = (men == male) & (age >= lo) & (age < hi)
        return np.average(np.exp(sigma * z[here]), weights=w[here]) / np.exp(sigma**2 / 2)

    for male in (True, False):
        for lo in (20, 25, 30, 35, 40):
            assert mean_propensity(lo, lo + 5, male) == pytest.approx(1.0, abs=0.06), (male, lo)


def test_the_known_offenders_start_within_what_births_give_their_sex_and_age():
    """Drawn as the upper part of the general distribution, a known offender group is cut down where it and the
    offenders' partners would exceed every adult of their sex and year of age (``start_tail_excess`` is what that
    takes away): no group reaches beyond the general tail, although the shipped groups' design does."""
    # the ensemble's median member's general distribution (median 0.52, sd of log 1.39), where the groups' design
    # exceeds it (0.003); at the ninth recheck's point (0.95, 1.02) the groups fit almost whole (0.0004)
    params = load_scenario(BASELINE, ["population.scale_general=10", "population.propensity_median_general=0.52",
                                      "population.propensity_sigma_general=1.39"])
    assert pop_mod.start_tail_excess(params) > 0.001  # (so there is something to cut)
    held = pop_mod.offender_scores(params)
    rng = np.random.default_rng(5)
    z = rng.standard_normal(200_000)
    for group in range(3):
        scores = held(z, np.full(len(z), 24.5), np.ones(len(z), bool), group)
        assert np.all(np.diff(scores[np.argsort(z)]) >= 0)  # monotone: the order of the draws is kept
        _, groups = pop_mod._groups_on_general_scale(params.population)
        designed = groups[group][2] + z  # the group's normal, uncut
        assert np.quantile(scores, 0.999) < np.quantile(designed, 0.999)  # the top is cut down
        assert np.median(scores) == pytest.approx(np.median(designed), abs=0.1)  # the middle hardly moves
    assert pop_mod.offender_scores(load_scenario(BASELINE, DRAWN_START)) is None


def test_the_start_gives_children_a_father_as_often_as_the_runs_births():
    """Every child born in the run has a mother, and a father when the mother is partnered
    (``births_with_father_share`` of births, 84% at the baseline's values): the start's general households' children
    have a mother, and a father about as often, a lone mother's children a father living apart where the share calls
    for one (``absent_father_share``, allowing for the lone fathers' households, whose children have one anyway;
    until 2026-12-07, afternoon, it did not: 85%). (Until 2026-12-07 only
    two-parent households' and lone fathers' children had a father, 76%: the share whose father's record counts rose
    as the children born in the run grew up.)"""
    params = load_scenario(BASELINE, ["population.scale_general=10"])
    expected = pop_mod.births_with_father_share(params)
    assert expected > params.population.general_two_parent_share + 0.05  # (so the test tells the two apart)
    people = People()
    pop_mod.synthesize(params, np.random.default_rng(2), people)
    n = people.n
    general_child = (-people.birth_month[:n] < 12 * params.family.age_adult) & (people.weight[:n] == params.population.scale_general)
    assert np.all(people.mother[:n][general_child] >= 0)
    pop = params.population
    lone, q = 1.0 - pop.general_two_parent_share, pop_mod.absent_father_share(params)
    with_father = np.mean(people.father[:n][general_child] >= 0)
    assert with_father == pytest.approx(1.0 - lone * pop.lone_parent_mother_share * (1.0 - q), abs=0.01)  # as drawn
    assert with_father == pytest.approx(expected, abs=0.008)  # and so as births
    # both parents known but not partners: a parent living apart (a lone mother's children's father, a lone father's
    # children's mother), as often as the households call for
    father, mother = people.father[:n][general_child], people.mother[:n][general_child]
    apart = (father >= 0) & (people.partner[np.maximum(mother, 0)] != father)
    assert np.mean(apart) == pytest.approx(lone * (pop.lone_parent_mother_share * q + 1.0 - pop.lone_parent_mother_share), abs=0.01)


def test_births_with_father_share_is_the_runs_and_the_outside_parents_have_it():
    """``births_with_father_share``, derived from the couple flows and fertility, is the share of the run's births
    to a partnered mother; and the fathers drawn for people with no parent in the model are known as often."""
    from sim import ReoffendingModel
    from sim.processes import offending

    params = load_scenario(BASELINE, ["run.years=6", "population.scale_general=40", "population.scale_cjs_families=40"])
    with ReoffendingModel(params, seed=11) as model:
        model.run()
        p, n = model.people, model.people.n
        born = p.birth_month[:n] > 0  # (born in the run; the start's newborns are at month 0 or before)
        share = np.average(p.father[:n][born] >= 0, weights=p.weight[:n][born])
        expected = pop_mod.births_with_father_share(model.params)
        assert share == pytest.approx(expected, abs=0.03)
        adults = np.flatnonzero(p.present[:n] & (p.father[:n] < 0) & (p.mother[:n] < 0))
        known, _, _ = offending.parents_outside(model, adults)
        assert known.mean() == pytest.approx(expected, abs=0.02)
