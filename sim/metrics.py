"""What the model measures: the monthly series, and outcome metrics by their published definitions.

The cohort metrics take the exported microdata (people and events tables), so anyone can check them against
their own code: they are computed from what the simulation produced, never set from a target.
All counts are weighted, i.e. scaled back to real people.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from .processes.intervention import ACTIVE
from .state.events import EVENT_CODE, NO_MONTH
from .state.people import CUSTODY, LICENCE, PROBATION
from .state.schedule import distinct

#: flows counted during the month (model.tally) and stocks read at its end
FLOWS = (
    "offences",
    "offences_proven",
    "offences_by_previously_convicted",
    "offences_by_supervised",
    "offences_by_offenders_in_cjs",
    "convictions",
    "first_time_entrants",
    "children_convicted",
    "child_first_time_entrants",
    "cautions",  # proven offences dealt with by a caution, reprimand or warning (justice.cautions)
    "custody_starts",
    "releases",
    "recalls",
    "order_starts",
    "births",
    "deaths",
    "exits",
    "arrivals",
    "iv_eligible",
    "iv_referrals",
    "iv_starts",
    "iv_engaged_starts",
    "iv_completions",
    "da_incidents",  # police-attended domestic-abuse incidents
    "da_repeat_incidents",  # of them, against a victim within the repeat window of their last
    "da_victim_years",  # victims' first incidents in a year of the run (12 months from month 0): DA is costed per victim a year
    "da_crimes",  # incidents recorded as crimes
    "da_crimes_proven",  # of them, proven (a court case; not in offences_proven, whose police cost DA incidents carry)
    "da_high_risk_victims",  # victims newly assessed high-risk
    "da_incidents_former_partner",  # incidents against a former partner (separated within post_separation_months)
    "da_incidents_by_previously_convicted",  # incidents by perpetrators with a previous conviction
    "da_children_exposed",  # children exposed to an incident at home for the first time
    "hub_referrals",
    "hub_starts",
    "hub_engaged_starts",
    "hub_active_victims",  # (a stock: engaged victims supported at the month's end)
)
STOCKS = (
    "population",
    "children",
    "custody",  # adults; children in custody or under supervision are youth_custody / youth_supervision
    "licence",
    "probation",
    "youth_custody",
    "youth_supervision",
    "ever_convicted_adults",
    "children_with_parent_in_custody",
    "iv_active_families",
)


def series_names(params) -> tuple[str, ...]:
    """Columns of the monthly series: the fixed stocks and flows, offences by type and adults with each need."""
    by_type = tuple(f"offences_{t}" for t in params.offending.offence_types)
    by_need = tuple(f"adults_with_{name}" for name in params.needs.names)
    return ("month", *STOCKS, *by_need, *FLOWS, *by_type)


def monthly_record(model) -> dict[str, float]:
    """One row of the monthly series: stocks at the end of the month plus this month's flows (Python numbers, which
    Mesa's DataCollector copies fastest)."""
    by, by_mask, others = model.stocks.update(model.people, model.month - 12 * model.params.family.age_adult)
    rec = {
        "month": model.month,
        "population": float(by.sum()),
        "children": float(by[:, 1, :].sum()),
        **justice_stocks(by),
        "ever_convicted_adults": float(by[:, 0, 1].sum()),
        "children_with_parent_in_custody": others[0],
        "iv_active_families": others[1],
    }
    for j, name in enumerate(model.params.needs.names):
        rec[f"adults_with_{name}"] = float(by_mask[_HAS_BIT[j]].sum())
    for name in model.params.offending.offence_types:
        rec[f"offences_{name}"] = 0.0
    for name in FLOWS:
        rec[name] = 0.0
    rec.update(model.tally)
    return rec


def stock_table(p, child_born_after: float) -> np.ndarray:
    """Weighted people present by status x child (born after ``child_born_after``) x ever convicted."""
    return StockTally().update(p, child_born_after)[0]


class StockTally:
    """The end-of-month stocks, kept up to date rather than summed afresh: each row's cell (status x child x ever
    convicted; the needs mask of an adult at liberty) as last counted is remembered, and a month moves only the rows
    whose cell changed. Comparing a million rows is many times cheaper than adding them up (each addition to a table
    waits for the one before). The cells are recomputed from the people's arrays every month, so any change to them,
    however made, is counted (a row's weight cannot change: ``People.weight`` is read-only once written). People are
    counted, by cell and weight class, as whole numbers, and weighted at the end: no rounding builds up over the
    months and an empty cell reads exactly 0, whatever the weights; for whole-number weights (every shipped scenario)
    the same numbers as a fresh weighted sum."""

    def __init__(self):
        self._cell = np.full(0, _ABSENT, np.uint8)  # per row: status x 4 + child x 2 + ever convicted; _ABSENT: not counted
        self._mask = np.full(0, _NO_MASK, np.uint16)  # per row: needs mask of an adult at liberty; _NO_MASK: not one
        self._flag = np.empty(0, np.bool_)  # per row: to look at this month
        self._weight_class = np.zeros(0, np.uint16)  # per row: index of its weight in _weights
        self._weights: list[float] = []  # the distinct weights seen, in order of first sight
        self._seen = 0  # rows given a weight class
        self._by = np.zeros((_ABSENT + 1, 0), np.int64)  # people by cell x weight class (the last cell: not counted)
        self._by_mask = np.zeros((_NO_MASK + 1, 0), np.int64)

    def _classify(self, p) -> None:
        """Give the rows added since last time their weight class (a new weight gets a new class)."""
        n = p.n
        if len(self._cell) < n:
            grown = max(n, 2 * len(self._cell))
            self._cell = np.concatenate([self._cell, np.full(grown - len(self._cell), _ABSENT, np.uint8)])
            self._mask = np.concatenate([self._mask, np.full(grown - len(self._mask), _NO_MASK, np.uint16)])
            self._weight_class = np.concatenate([self._weight_class, np.zeros(grown - len(self._weight_class), np.uint16)])
            self._flag = np.empty(grown, np.bool_)
        new = p.weight[self._seen:n]
        values, inverse = np.unique(new, return_inverse=True)
        index = {w: k for k, w in enumerate(self._weights)}
        for w in values.tolist():
            if w not in index:
                if len(self._weights) == np.iinfo(np.uint16).max:
                    raise ValueError("more than 65,535 distinct agent weights: the stock table counts by weight class")
                index[w] = len(self._weights)
                self._weights.append(w)
        self._weight_class[self._seen:n] = np.array([index[w] for w in values.tolist()], np.uint16)[inverse]
        self._seen = n
        k = len(self._weights)
        if self._by.shape[1] < k:
            self._by = np.pad(self._by, ((0, 0), (0, k - self._by.shape[1])))
            self._by_mask = np.pad(self._by_mask, ((0, 0), (0, k - self._by_mask.shape[1])))

    def update(self, p, child_born_after: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """Count this month's changes; returns the stock table (status x child x ever convicted, 4x2x2), adults at
        liberty by needs bit mask (256) and (children present with a parent present and in custody, weighted; engaged
        families in the intervention)."""
        self._classify(p)
        n = p.n
        arrays = (p.present[:n], p.birth_month[:n], p.status[:n], p.prev_convictions[:n], p.needs[:n])
        flag = self._flag[:n]
        _flag_changes(*arrays, p.iv_engaged[:n], float(child_born_after), self._cell, self._mask, flag)
        custody, in_intervention = _move_cells(np.flatnonzero(flag), *arrays, self._weight_class, p.weight, p.iv_state,
                                               p.iv_engaged, float(child_born_after), self._cell, self._mask, self._by,
                                               self._by_mask)
        children = distinct(p.children.of(custody))
        children = children[p.present[children] & (p.birth_month[children] > child_born_after)]
        weights = np.array(self._weights)
        return ((self._by[:_ABSENT] * weights).sum(axis=1).reshape(4, 2, 2), (self._by_mask[:_NO_MASK] * weights).sum(axis=1),
                (float(p.weight[children].sum()), in_intervention))


_ABSENT, _NO_MASK = 16, 256


@njit(cache=True, nogil=True, inline="always")
def _cell(present, status, child, convicted):
    """A row's cell as counted: status x 4 + child x 2 + ever convicted (``_ABSENT`` if not present). (The helpers take
    scalars: written to take the arrays and the row, they made ``_flag_changes`` ~50x slower, as measured.)"""
    return np.uint8(status * 4 + child * 2 + convicted) if present else np.uint8(_ABSENT)


@njit(cache=True, nogil=True, inline="always")
def _mask(present, status, child, needs):
    """A row's needs mask as counted: an adult's at liberty (else ``_NO_MASK``)."""
    mask = np.uint16(_NO_MASK) if child or status == CUSTODY else np.uint16(needs)
    return mask if present else np.uint16(_NO_MASK)


@njit(cache=True, nogil=True)
def _flag_changes(present, birth_month, status, prev_convictions, needs, iv_engaged, child_born_after, cell, mask, flag):
    """Flag the rows to look at: cell or mask changed, in custody (their children) or engaged in the intervention.
    Branch-free, so the compiler vectorises it: the month's only pass over everyone."""
    for i in range(len(present)):
        child = birth_month[i] > child_born_after
        c = _cell(present[i], status[i], child, prev_convictions[i] > 0)
        m = _mask(present[i], status[i], child, needs[i])
        flag[i] = (c != cell[i]) | (m != mask[i]) | (c >> 2 == CUSTODY) | iv_engaged[i]


@njit(cache=True, nogil=True)
def _move_cells(rows, present, birth_month, status, prev_convictions, needs, weight_class, weight, iv_state, iv_engaged,
                child_born_after, cell, mask, by, by_mask):
    """Move each of the flagged ``rows`` whose cell or mask changed from the old one to the new (counts by cell x
    weight class); returns the rows present and in custody and the weight of engaged families in the intervention."""
    custody = np.empty(len(rows), np.int64)
    k = 0
    in_intervention = 0.0
    for i in rows:
        child = birth_month[i] > child_born_after
        c = _cell(present[i], status[i], child, prev_convictions[i] > 0)
        m = _mask(present[i], status[i], child, needs[i])
        w = weight_class[i]
        if c != cell[i]:
            by[cell[i], w] -= 1
            by[c, w] += 1
            cell[i] = c
        if m != mask[i]:
            by_mask[mask[i], w] -= 1
            by_mask[m, w] += 1
            mask[i] = m
        if c >> 2 == CUSTODY:
            custody[k] = i
            k += 1
        if iv_engaged[i] and iv_state[i] == ACTIVE:  # until the intervention process ends it (next month if gone)
            in_intervention += weight[i]
    return custody[:k], in_intervention


def justice_stocks(by: np.ndarray) -> dict[str, float]:
    """Weighted people in custody, on licence and on orders (adults), and children in custody or supervised, from a
    ``stock_table``."""
    return {
        "custody": float(by[CUSTODY, 0].sum()),
        "licence": float(by[LICENCE, 0].sum()),
        "probation": float(by[PROBATION, 0].sum()),
        "youth_custody": float(by[CUSTODY, 1].sum()),
        "youth_supervision": float(by[LICENCE, 1].sum() + by[PROBATION, 1].sum()),
    }


_HAS_BIT = [(np.arange(256) >> j) & 1 == 1 for j in range(8)]  # masks with bit j set


# --- is the baseline steady? ----------------------------------------------------------------------------------

#: the series a steady baseline keeps near their start year after year (criteria: calibration/steadiness.toml): flows
#: by their yearly total (adult convictions: all convictions less children's), stocks by their yearly mean
STEADY_FLOWS = ("children_convicted", "child_first_time_entrants", "adult_convictions")
STEADY_STOCKS = ("custody", "licence", "probation", "population")
#: the people each steady series is read per head of (``steadiness``: a population that grows carries its flows with
#: it); these two are also series of ``yearly_levels``, shown but not judged
PER_HEAD = {"children_convicted": "children", "child_first_time_entrants": "children", "adult_convictions": "adults",
            "custody": "adults", "licence": "adults", "probation": "adults"}


def yearly_levels(ts: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Each steady series (``STEADY_FLOWS``, ``STEADY_STOCKS``) year by year, and its start: a flow's yearly total
    (its start the first year's), a stock's yearly mean (its start the first month); and the same for the children
    (under 18) and the adults, whom ``PER_HEAD`` reads the series per head of. Whole years only."""
    years = len(ts) // 12
    year = np.arange(12 * years) // 12
    ts = ts.iloc[: 12 * years]
    flows = pd.DataFrame({"children_convicted": ts["children_convicted"].to_numpy(),
                          "child_first_time_entrants": ts["child_first_time_entrants"].to_numpy(),
                          "adult_convictions": (ts["convictions"] - ts["children_convicted"]).to_numpy()})
    levels = flows.groupby(year).sum()
    start = levels.iloc[0].copy() if years else pd.Series(np.nan, index=levels.columns)
    stocks = {name: ts[name] for name in STEADY_STOCKS} | {"children": ts["children"], "adults": ts["population"] - ts["children"]}
    for name, series in stocks.items():
        levels[name] = series.groupby(year).mean().to_numpy()
        start[name] = float(series.iloc[0]) if years else np.nan
    levels.index.name = "year"
    return levels, start


def _relative(levels: pd.DataFrame, start: pd.Series) -> pd.DataFrame:
    """Year by year levels over their start; NaN where the start is 0."""
    return levels / start.replace(0, np.nan)


def _as_metrics(kind: str, run: str, levels: pd.DataFrame, start: pd.Series) -> dict[str, float]:
    """Series relative to their start (``<kind>:<run>:<series>:<year>``) and the start itself
    (``<start kind>:<run>:<series>``: ``steady_start`` for ``steady``), as ``calibration.steadiness`` reads them."""
    start_kind = kind.replace("steady", "steady_start", 1)
    return ({f"{kind}:{run}:{series}:{year}": float(v)
             for year, row in _relative(levels, start).iterrows() for series, v in row.items()}
            | {f"{start_kind}:{run}:{series}": float(v) for series, v in start.items()})


def yearly_relative(ts: pd.DataFrame) -> pd.DataFrame:
    """``yearly_levels`` relative to their start. NaN where the start is 0."""
    return _relative(*yearly_levels(ts))


def steady_metrics(ts: pd.DataFrame, run: str) -> dict[str, float]:
    """One replicate's steady series as metrics: year by year relative to the start (``steady:<run>:<series>:<year>``)
    and the start itself (``steady_start:<run>:<series>``), by which ``calibration.steadiness`` weights the replicates
    (the mean path relative to its mean start, not the mean of each replicate's ratios, which a noisy first year
    biases upward; a replicate whose start is 0 has no ratio and is left out)."""
    return _as_metrics("steady", run, *yearly_levels(ts))


#: the adults' age bands in which the adult steady series are also read at the start's ages (``AdultsByAge``): 5 years
#: wide from the adult age, the last open
AGE_BAND_YEARS = 5
AGE_BANDS = 14  # 18-22, 23-27, ..., 83 and over
#: the adult steady series read at the start's ages
AT_START_AGES = ("adult_convictions", "custody", "licence", "probation")


def _age_band(age_months: np.ndarray, age_adult: float) -> np.ndarray:
    """Each age's band of ``AGE_BANDS`` (0: the first ``AGE_BAND_YEARS`` years of adulthood; -1: a child)."""
    adult_months = int(12 * age_adult)
    band = np.minimum((age_months - adult_months) // (12 * AGE_BAND_YEARS), AGE_BANDS - 1)
    return np.where(age_months >= adult_months, band, -1)


class AdultsByAge:
    """The adults (present, weighted) by age band (``AGE_BANDS`` of ``AGE_BAND_YEARS``) and justice status, month by
    month (pass it to ``ReoffendingModel.run`` as ``each_month``), so that the adult steady series can be read per
    head at the first year's ages (``at_start_ages``): a population that ages, as Essex's is projected to, carries
    fewer offenders per adult at the same age-specific rates, and that is demography, not drift."""

    def __init__(self):
        self.counts: list[np.ndarray] = []  # per month: (AGE_BANDS, 4) real people, by band and status code

    def __call__(self, model) -> None:
        p, n = model.people, model.people.n
        age = (model.month - 1) - p.birth_month[:n]  # at the end of the month just stepped
        band = _age_band(age, model.params.family.age_adult)
        here = p.present[:n] & (band >= 0)
        band = band[here]
        cell = band * 4 + p.status[:n][here]
        self.counts.append(np.bincount(cell, weights=p.weight[:n][here], minlength=4 * AGE_BANDS).reshape(AGE_BANDS, 4))

    def at_start_ages(self, model) -> pd.DataFrame:
        """Year by year, each of ``AT_START_AGES`` per adult at the first year's age structure (direct
        standardisation: each band's rate weighted by its share of the first year's adults), relative to the start as
        ``yearly_relative`` takes it: stocks by their yearly mean against their first month, adult convictions (events
        of adults, from the event log) by their yearly count against the first year's. NaN where the start has none."""
        return _relative(*self.standardised(model))

    def steady_metrics(self, model, run: str) -> dict[str, float]:
        """As ``metrics.steady_metrics``: ``at_start_ages`` year by year (``steady_at_start_ages:<run>:<series>:<year>``)
        and the standardised start rate (``steady_start_at_start_ages:<run>:<series>``) that weights the replicates."""
        return _as_metrics("steady_at_start_ages", run, *self.standardised(model))

    def standardised(self, model) -> tuple[pd.DataFrame, pd.Series]:
        """Year by year, each of ``AT_START_AGES`` per adult at the first year's age structure, and its start (the
        first year's adult convictions, the stocks' first month) at the same ages."""
        years = len(self.counts) // 12
        if years == 0:
            return pd.DataFrame(columns=list(AT_START_AGES)), pd.Series(np.nan, index=list(AT_START_AGES))
        by_year = np.stack(self.counts[: 12 * years]).reshape(years, 12, AGE_BANDS, 4).mean(axis=1)  # yearly means
        adults = by_year.sum(axis=2)  # (years, bands)
        rows, months, codes = model.events.arrays()[:3]
        conv = (codes == EVENT_CODE["conviction"]) & (months < 12 * years)
        band = _age_band(months[conv] - model.people.birth_month[rows[conv]], model.params.family.age_adult)
        adult = band >= 0
        band = band[adult]
        convictions = np.bincount(months[conv][adult] // 12 * AGE_BANDS + band, weights=model.people.weight[rows[conv][adult]],
                                  minlength=years * AGE_BANDS).reshape(years, AGE_BANDS)
        first = self.counts[0]  # the stocks' start is their first month, as in ``yearly_levels``
        counts = {"adult_convictions": (convictions, convictions[0], adults[0]),
                  **{name: (by_year[:, :, code], first[:, code], first.sum(axis=1))
                     for name, code in (("custody", CUSTODY), ("licence", LICENCE), ("probation", PROBATION))}}
        share = adults[0] / adults[0].sum()  # the first year's age structure
        rates, start = {}, {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for name, (count, first_count, first_adults) in counts.items():
                rates[name] = np.where(adults > 0, count / adults, 0.0) @ share
                start[name] = float(np.where(first_adults > 0, first_count / first_adults, 0.0) @ share)
        return pd.DataFrame(rates, index=pd.RangeIndex(years, name="year")), pd.Series(start)


# --- cohort metrics on microdata ------------------------------------------------------------------------------

#: the MoJ's index disposals: each adult offender is in a year's cohort once, by the first of their qualifying events in
#: it (a release from custody, a conviction at court that does not send them to custody, or a caution), and the
#: published rates are those of the offenders whose index disposal was custody (a release), a court order (community or
#: suspended-sentence order), another court disposal (fine, discharge) or a caution (``justice.cautions``)
DISPOSALS = ("custody", "court_order", "other", "caution")
#: the published rates the targets name, by their index disposal
RATE_DISPOSALS = {"prison": "custody", "probation": "court_order"}
#: whether a release after a recall (not a new sentence) is a qualifying event
RECALL_RELEASES_COUNT = False


@dataclass
class Microdata:
    """Event log and person attributes as arrays: ``person`` indexes ``birth_month`` and ``weight``; ``event`` holds
    codes of ``EVENT_NAMES``; ``offence_month`` is ``NO_MONTH`` where the event is not about an offence."""

    person: np.ndarray
    month: np.ndarray
    event: np.ndarray
    offence_month: np.ndarray
    birth_month: np.ndarray
    weight: np.ndarray
    record_before_start: np.ndarray | None = None  # per person: the record the run starts from (convictions and cautions)
    #: what is built once from these data for every cohort (``cached``): the MoJ cohorts by their arguments (one
    #: build serves every disposal), the qualifying events they are picked from and the convictions and cautions
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def cached(self, key, build):
        """``build(self)``, computed once per ``key``."""
        if key not in self.cache:
            self.cache[key] = build(self)
        return self.cache[key]

    @classmethod
    def from_frames(cls, people: pd.DataFrame, events: pd.DataFrame) -> "Microdata":
        """From people.parquet / events.parquet tables (``weight`` defaults to 1)."""
        person = pd.Index(people["person_id"]).get_indexer(events["person_id"])
        codes = pd.Series(events["event"].astype(str)).map(EVENT_CODE).fillna(-1).to_numpy(np.int64)
        om = events["offence_month"] if "offence_month" in events else pd.Series(pd.NA, index=events.index)
        weight = people["weight"].to_numpy(float) if "weight" in people else np.ones(len(people))
        before = people["convictions_before_start"].to_numpy(np.int64) if "convictions_before_start" in people else None
        if before is not None and "cautions_before_start" in people:
            before = before + people["cautions_before_start"].to_numpy(np.int64)
        return cls(person, events["month"].to_numpy(np.int64), codes,
                   pd.array(om, dtype="Int64").fillna(NO_MONTH).to_numpy(np.int64),
                   people["birth_month"].to_numpy(np.int64), weight, before)

    @classmethod
    def from_model(cls, model) -> "Microdata":
        """Straight from a model's event log (rows are the person positions)."""
        rows, month, code, om = model.events.arrays()[:4]
        n = model.people.n
        return cls(rows, month.astype(np.int64), code.astype(np.int64), om.astype(np.int64),
                   model.people.birth_month[:n].astype(np.int64), model.people.weight[:n],
                   model.people.convictions_before_start[:n].astype(np.int64) + model.people.cautions_before_start[:n])


def _microdata(people, events) -> Microdata:
    return people if isinstance(people, Microdata) else Microdata.from_frames(people, events)


_BIG = np.int64(1) << 32  # key = person x _BIG + (month + _OFF): (person, month) pairs as sortable integers
_OFF = np.int64(1) << 30


def _key(person: np.ndarray, month: np.ndarray) -> np.ndarray:
    return person.astype(np.int64) * _BIG + (month.astype(np.int64) + _OFF)


def _keys(md: Microdata, *events: str) -> np.ndarray:
    """The (person, month) keys of every event of the kinds ``events``, sorted."""
    codes = [EVENT_CODE[e] for e in events]
    sel = (md.person >= 0) & (md.event == codes[0] if len(codes) == 1 else np.isin(md.event, codes))
    return np.sort(_key(md.person[sel], md.month[sel]))


def _last_before(keys: np.ndarray, person: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each (person, month) ``at``: the month of that person's last event in ``keys`` up to it (-_OFF: none)."""
    if len(keys) == 0:
        return np.full(len(person), -_OFF)
    i = np.searchsorted(keys, _key(person, at), side="right") - 1
    found = (i >= 0) & (keys[np.maximum(i, 0)] // _BIG == person)
    return np.where(found, keys[np.maximum(i, 0)] % _BIG - _OFF, -_OFF)


def _first_from(keys: np.ndarray, person: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each (person, month) ``at``: the month of that person's first event in ``keys`` from it on (_OFF: none)."""
    if len(keys) == 0:
        return np.full(len(person), _OFF)
    i = np.searchsorted(keys, _key(person, at), side="left")
    j = np.minimum(i, len(keys) - 1)
    found = (i < len(keys)) & (keys[j] // _BIG == person)
    return np.where(found, keys[j] % _BIG - _OFF, _OFF)


def _in_custody_at_court(entries: np.ndarray, releases: np.ndarray, person: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Whether each person was in custody when the court sat in ``month``. Within a month, releases (and recalls from
    licence) come first and sentences at court last, so: their last custody start or recall before the month came
    after their last release up to it; or, with neither, their next release comes before any custody start or
    recall from the month on (in custody since before the run)."""
    entered, released = _last_before(entries, person, month - 1), _last_before(releases, person, month)
    held = (entered > -_OFF) & (entered >= released)
    since_before_run = (entered == -_OFF) & (released == -_OFF)
    next_release = _first_from(releases, person, month + 1)
    held |= since_before_run & (next_release < _OFF) & (_first_from(entries, person, month) >= next_release)
    return held


@dataclass
class Cohort:
    """A year's MoJ cohort: each adult offender once, with the disposal of their index event (an index into
    ``DISPOSALS``), the month their follow-up starts and the month before which their convictions are previous
    offences."""

    person: np.ndarray
    disposal: np.ndarray
    follow_up_start: np.ndarray
    history_end: np.ndarray


def moj_cohort(md: Microdata, cohort_start: int, cohort_end: int, adults_only: bool = True, adult_age_years: float = 18,
               recall_releases: bool = RECALL_RELEASES_COUNT) -> Cohort:
    """``_moj_cohort``, built once per ``md`` and arguments (each disposal's rate reads the same cohort)."""
    key = (cohort_start, cohort_end, adults_only, adult_age_years, recall_releases)
    return md.cached(key, lambda m: _moj_cohort(m, *key))


def _moj_cohort(md: Microdata, cohort_start: int, cohort_end: int, adults_only: bool, adult_age_years: float,
                recall_releases: bool) -> Cohort:
    """The offenders whose first qualifying event in months [cohort_start, cohort_end) falls there, each once.

    Qualifying events: a release from custody (disposal custody; unless ``recall_releases``, not a release after a
    recall, which follows no new sentence), a court order starting (court_order), a conviction in a month with no
    custody start, recall or order start, of someone not already in custody (other; a conviction on licence without
    custody or recall is one too, as the model leaves licence to run on rather than start an order), and a caution
    (caution). The index event is the first (a release before a conviction or caution in the same month: offences in a
    release month come after it, those in a conviction month before the court's decision). Follow-up starts in the
    release month, or the month after a conviction or caution. Previous offences are convictions and cautions before
    the index event's month or, for a release, before the custody start that led to it (with the record the run
    started from). Aged ``adult_age_years`` or more
    at the index event if ``adults_only`` (the adult cohort; as the MoJ splits one cohort of all ages, someone whose
    first event of the year was as a child is not in it)."""
    person, month, follow_up, history, disposal = md.cached(  # every year's cohort picks from the same events
        ("qualifying events", recall_releases), lambda m: _qualifying_events(m, recall_releases))
    sel = (month >= cohort_start) & (month < cohort_end)
    person, month, follow_up, history, disposal = person[sel], month[sel], follow_up[sel], history[sel], disposal[sel]
    first = np.lexsort((follow_up, month, person))  # each person's first event (a release before a conviction)
    person, month, follow_up, history, disposal = person[first], month[first], follow_up[first], history[first], disposal[first]
    keep = np.r_[True, person[1:] != person[:-1]] if len(person) else np.zeros(0, bool)
    if adults_only:  # adult at their index event (someone whose first event was as a child is in the youth cohort)
        keep &= (month - md.birth_month[person]) / 12.0 >= adult_age_years
    return Cohort(person[keep], disposal[keep], follow_up[keep], history[keep])


def _qualifying_events(md: Microdata, recall_releases: bool) -> tuple[np.ndarray, ...]:
    """Every qualifying event of the run (``_moj_cohort``): person, month, follow-up start, history end, disposal."""
    conv = distinct(_keys(md, "conviction"))  # conviction months (a person's several convictions a month: one event)
    custody_start, recall = _keys(md, "custody_start"), _keys(md, "recall")
    entries = np.sort(np.concatenate([custody_start, recall]))
    orders = distinct(_keys(md, "order_start"))
    rel = _keys(md, "release")
    non_custodial = conv[~np.isin(conv, entries)]
    other = non_custodial[~np.isin(non_custodial, orders)]
    other = other[~_in_custody_at_court(entries, rel, other // _BIG, other % _BIG - _OFF)]  # a sentence served alongside
    rel_person, rel_month = rel // _BIG, rel % _BIG - _OFF
    sentenced = _last_before(custody_start, rel_person, rel_month - 1)  # (a custody start in the release month came after it)
    if not recall_releases:  # the custody this release ends began with a recall, not a sentence
        by_sentence = _last_before(recall, rel_person, rel_month - 1) <= sentenced
        rel_person, rel_month, sentenced = rel_person[by_sentence], rel_month[by_sentence], sentenced[by_sentence]
    cautioned = distinct(_keys(md, "caution"))  # (a person's cases of a month are all cautioned, or all go to court)
    court = np.concatenate([orders, other, cautioned])
    court_person, court_month = court // _BIG, court % _BIG - _OFF
    person = np.concatenate([rel_person, court_person])
    month = np.concatenate([rel_month, court_month])
    disposal = np.concatenate([np.full(len(rel_person), DISPOSALS.index("custody"), np.int8),
                               np.full(len(orders), DISPOSALS.index("court_order"), np.int8),
                               np.full(len(other), DISPOSALS.index("other"), np.int8),
                               np.full(len(cautioned), DISPOSALS.index("caution"), np.int8)])
    follow_up = np.concatenate([rel_month, court_month + 1])
    history = np.concatenate([sentenced, court_month])
    return person, month, follow_up, history, disposal


def previous_offences(md: Microdata, cohort: Cohort) -> np.ndarray:
    """Each cohort member's proven offences before their index offence: the record the run started from, plus
    convictions and cautions before ``history_end``."""
    if md.record_before_start is None:
        raise ValueError("microdata without convictions_before_start (and cautions_before_start): criminal history unknown")
    proven = _keys(md, "conviction", "caution")
    lo = np.searchsorted(proven, cohort.person.astype(np.int64) * _BIG)
    return md.record_before_start[cohort.person] + np.searchsorted(proven, _key(cohort.person, cohort.history_end)) - lo


def _disposal_mask(cohort: Cohort, disposal: str) -> np.ndarray:
    if disposal == "all":
        return np.ones(len(cohort.person), bool)
    if disposal not in DISPOSALS:
        raise ValueError(f"disposal {disposal!r}: one of {', '.join(DISPOSALS)} or all")
    return cohort.disposal == DISPOSALS.index(disposal)


def proven_reoffending(
    people: pd.DataFrame | Microdata,
    events: pd.DataFrame | None,
    disposal: str,
    cohort_start: int,
    cohort_end: int,
    follow_up_months: int = 12,
    waiting_months: int = 6,
    adults_only: bool = True,
    adult_age_years: float = 18,
) -> dict[str, float]:
    """MoJ one-year proven reoffending (binary rate and frequency) of the offenders in the cohort of months
    [cohort_start, cohort_end) (``moj_cohort``) whose index disposal is ``disposal`` (one of ``DISPOSALS``, or "all").

    A proven reoffence is an offence committed in months [f, f + 12), f the start of the person's follow-up, that is
    convicted before month f + 12 + 6 (the follow-up plus the waiting period). Weighted by ``people.weight`` when
    present. Returns the rate, reoffences per offender and per reoffender, cohort size. Takes the people and events
    tables, or a ``Microdata`` (then ``events`` is None).
    """
    md = _microdata(people, events)
    cohort = moj_cohort(md, cohort_start, cohort_end, adults_only, adult_age_years)
    mask = _disposal_mask(cohort, disposal)
    members = cohort.person[mask]
    counts = _proven_reoffences(md, members, cohort.follow_up_start[mask], follow_up_months, waiting_months)
    weight = md.weight[members]
    total_w = weight.sum()
    reoffenders_w = (weight * (counts > 0)).sum()
    return {
        "rate": float(reoffenders_w / total_w) if total_w else float("nan"),
        "reoffences_per_offender": float((weight * counts).sum() / total_w) if total_w else float("nan"),
        "reoffences_per_reoffender": float((weight * counts).sum() / reoffenders_w) if reoffenders_w else float("nan"),
        "cohort_size": float(total_w),
        "cohort_agents": int(len(members)),
    }


def _proven_reoffences(md: Microdata, cohort: np.ndarray, follow_up_start: np.ndarray, follow_up_months: int,
                       waiting_months: int) -> np.ndarray:
    """Proven reoffences of each person in ``cohort`` (rows): offences committed in months [f, f + follow-up) that
    are convicted (or cautioned) before month f + follow-up + waiting, f being the person's ``follow_up_start``."""
    f = np.zeros(len(md.birth_month), np.int64)
    in_cohort = np.zeros(len(md.birth_month), bool)
    f[cohort], in_cohort[cohort] = follow_up_start, True
    who, om, when = md.cached("proven events", _proven_events)
    mine = in_cohort[who]
    who, om, when = who[mine], om[mine], when[mine]
    fw = f[who]
    proven = (om >= fw) & (om < fw + follow_up_months) & (when < fw + follow_up_months + waiting_months)
    return np.bincount(who[proven], minlength=len(md.birth_month))[cohort]


def _proven_events(md: Microdata) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Person, offence month and month of every conviction or caution of a known person."""
    keep = ((md.event == EVENT_CODE["conviction"]) | (md.event == EVENT_CODE["caution"])) & (md.person >= 0)
    return md.person[keep], md.offence_month[keep], md.month[keep]


def cohort_years(months: int, follow_up_months: int = 12, waiting_months: int = 6) -> int:
    """Annual cohorts (from month 0) whose whole follow-up and waiting period fit in a run of ``months``."""
    return max(0, (months - follow_up_months - waiting_months) // 12)


def proven_reoffending_annual_cohorts(
    people: pd.DataFrame | Microdata, events: pd.DataFrame | None, disposal: str, months: int, follow_up_months: int = 12,
    waiting_months: int = 6, adult_age_years: float = 18,
) -> dict[str, float]:
    """The MoJ rate measured as the MoJ publishes it, by annual cohort (``cohort_years``): each year's rate of the
    offenders with index ``disposal``, and the cohort-size-weighted mean (``rate``) and reoffences per reoffender."""
    md = _microdata(people, events)
    years = cohort_years(months, follow_up_months, waiting_months)
    out, total, weighted, reoffences = {}, 0.0, 0.0, 0.0
    for y in range(years):
        r = proven_reoffending(md, None, disposal, 12 * y, 12 * y + 12, follow_up_months, waiting_months, adult_age_years=adult_age_years)
        out[f"rate_year_{y}"] = r["rate"]
        if r["cohort_size"] > 0:
            total += r["cohort_size"]
            weighted += r["rate"] * r["cohort_size"]
            reoffences += r["reoffences_per_offender"] * r["cohort_size"]
    out["rate"] = weighted / total if total else float("nan")
    out["reoffences_per_reoffender"] = reoffences / weighted if weighted else float("nan")
    out["cohort_years"] = years
    return out


#: MoJ bands of previous offences in the proven re-offending statistics (lower bound of each band)
PREVIOUS_OFFENCE_BANDS = {"none": 0, "1_2": 1, "3_6": 3, "7_10": 7, "11_plus": 11}


def proven_reoffending_by_previous_convictions(
    md: Microdata, cohort_start: int, cohort_end: int, follow_up_months: int = 12, waiting_months: int = 6,
    adult_age_years: float = 18,
) -> dict[str, float]:
    """MoJ one-year proven reoffending of all adult offenders in the cohort (``moj_cohort``, every disposal), by
    criminal history (``previous_offences``; the MoJ's gradient: 11% with no previous offence vs 48% with 11 or more,
    2011). Returns ``rate_<band>`` and ``size_<band>`` (weighted) per ``PREVIOUS_OFFENCE_BANDS``."""
    cohort = moj_cohort(md, cohort_start, cohort_end, adult_age_years=adult_age_years)
    previous = previous_offences(md, cohort)
    reoffended = _proven_reoffences(md, cohort.person, cohort.follow_up_start, follow_up_months, waiting_months) > 0
    w = md.weight[cohort.person]
    out: dict[str, float] = {}
    bounds = list(PREVIOUS_OFFENCE_BANDS.values()) + [np.iinfo(np.int64).max]
    for (band, lower), upper in zip(PREVIOUS_OFFENCE_BANDS.items(), bounds[1:]):
        in_band = (previous >= lower) & (previous < upper)
        size = w[in_band].sum()
        out[f"rate_{band}"] = float((w[in_band] * reoffended[in_band]).sum() / size) if size else float("nan")
        out[f"size_{band}"] = float(size)
    return out


def proven_reoffending_by_previous_annual_cohorts(md: Microdata, months: int, follow_up_months: int = 12, waiting_months: int = 6,
                                                  adult_age_years: float = 18) -> dict[str, float]:
    """``proven_reoffending_by_previous_convictions`` by annual cohort (``cohort_years``), each band's rate the
    cohort-size-weighted mean over the years."""
    sums = {band: [0.0, 0.0] for band in PREVIOUS_OFFENCE_BANDS}
    for y in range(cohort_years(months, follow_up_months, waiting_months)):
        r = proven_reoffending_by_previous_convictions(md, 12 * y, 12 * y + 12, follow_up_months, waiting_months, adult_age_years)
        for band, acc in sums.items():
            if r[f"size_{band}"] > 0:
                acc[0] += r[f"rate_{band}"] * r[f"size_{band}"]
                acc[1] += r[f"size_{band}"]
    return {f"rate_{band}": (a / b if b else float("nan")) for band, (a, b) in sums.items()}


def share_ever_convicted(people, month: int, male: bool, age_min: float = 10, age_max: float = 52) -> float:
    """Share of the people living in the area in ``month`` of one sex aged ``age_min`` to ``age_max`` (whole years)
    with a conviction, before the run or in it (the MoJ's "conviction histories" measure; ``people``: ``People``)."""
    n = people.n
    age = (month - people.birth_month[:n]) // 12
    group = people.present[:n] & (people.sex_male[:n] == male) & (age >= age_min) & (age <= age_max)
    w = people.weight[:n][group]
    return float((w * (people.prev_convictions[:n][group] > 0)).sum() / w.sum()) if w.sum() else float("nan")


def share_of_offences_by_previously_convicted(people: pd.DataFrame, events: pd.DataFrame, start: int = 0, end: int | None = None) -> float:
    """Share of all offences (detected or not) committed by someone with a conviction before the offence month
    (a conviction before the run, or a conviction event in an earlier month)."""
    end = events["month"].max() + 1 if end is None else end
    off = events[(events["event"] == "offence") & (events["month"] >= start) & (events["month"] < end)][["person_id", "month"]]
    first_conv = events[events["event"] == "conviction"].groupby("person_id", observed=True)["month"].min()
    info = people.set_index("person_id")
    before = info.loc[off["person_id"], "convicted_before_start"].to_numpy()
    fc = first_conv.reindex(off["person_id"]).to_numpy()
    known = before | (fc < off["month"].to_numpy())
    w = info.loc[off["person_id"], "weight"].to_numpy() if "weight" in info else np.ones(len(off))
    return float((w * known).sum() / w.sum()) if len(off) else float("nan")


def sons_convicted_by_age(
    people: pd.DataFrame, events: pd.DataFrame, age_years: float = 40, last_month: int | None = None,
    observed_from_age: float = 10,
) -> dict[str, float]:
    """Share of sons convicted by ``age_years``, by whether their father was convicted (before the run, or in it
    by the time the son reaches that age) - the Cambridge Study's father-son measure.

    Counted: sons with a known father whose whole record from ``observed_from_age`` (the age of criminal
    responsibility) to ``age_years`` lies inside the run (born no earlier than ``-12 x observed_from_age`` and
    reaching ``age_years`` by ``last_month``) and who neither die nor leave the area before then. Weighted.
    """
    last_month = int(events["month"].max()) if last_month is None else last_month
    age_m = int(round(age_years * 12))
    first = events[events["event"] == "conviction"].groupby("person_id", observed=True)["month"].min()
    gone = events[events["event"].isin(["death", "exit"])].groupby("person_id", observed=True)["month"].min()
    info = people.set_index("person_id")
    sons = people[
        (people["sex"] == "M")
        & people["father_id"].notna()
        & (people["birth_month"] >= -int(round(12 * observed_from_age)))
        & (people["birth_month"] + age_m <= last_month)
    ]
    horizon = sons["birth_month"].to_numpy() + age_m
    left = gone.reindex(sons["person_id"]).to_numpy()
    keep = ~(left < horizon)
    sons, horizon = sons[keep], horizon[keep]
    if sons.empty:
        return {"sons": 0, "rate_father_convicted": float("nan"), "rate_father_not_convicted": float("nan"), "sons_father_convicted": 0}
    son_convicted = first.reindex(sons["person_id"]).to_numpy() <= horizon
    fathers = sons["father_id"].astype("int64").to_numpy()
    fa_before = info["convicted_before_start"].reindex(fathers).fillna(False).to_numpy(bool)
    father_convicted = fa_before | (first.reindex(fathers).to_numpy() <= horizon)
    w = sons["weight"].to_numpy() if "weight" in sons else np.ones(len(sons))

    def rate(mask):
        return float((w[mask] * son_convicted[mask]).sum() / w[mask].sum()) if mask.any() else float("nan")

    return {
        "sons": int(len(sons)),
        "rate_father_convicted": rate(father_convicted),
        "rate_father_not_convicted": rate(~father_convicted),
        "sons_father_convicted": int(father_convicted.sum()),
    }
