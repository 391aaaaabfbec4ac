"""Load, merge and validate scenario TOML files into frozen ``Params``.

A scenario file has one table per section (``[run]``, ``[population]``, ...). A value is either plain
(``p_recall_per_month = 0.02``) or documented (``{ value = 0.02, unit = "per month", source = "..." }``).
``extends = "baseline.toml"`` (relative to the file) inherits every key and overrides some; ``--set
section.key=value`` overrides after that. Any problem raises ``ScenarioError`` with one line naming the file,
the key, the value and what is allowed, before any work is done.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .params import (
    DA_COST_PARTS,
    ANY,
    COUNT,
    FRACTION,
    MONEY,
    MONEY_LIST,
    NONNEG,
    POS,
    POSINT,
    PROB,
    SECTIONS,
    Dist,
    Money,
    Params,
)
from .ensemble import CHOICES as CALIBRATION_CHOICES
from .ensemble import FITTED, Ensemble, ensemble_path, read_ensemble
from .rng import CounterRNG

#: keys that document a value and are not part of it
DOC_KEYS = {"unit", "source", "price_year", "note", "verified", "definition"}


class ScenarioError(ValueError):
    """A user error in a scenario file or override: the message is one line meant for the user."""


#: the UTF-8 byte order mark some editors put at the start of a file (TOML itself does not allow it)
UTF8_BOM = b"\xef\xbb\xbf"


#: how long a chain of ``extends`` may be (a scenario extends the baseline, which extends the fitted values)
MAX_EXTENDS = 20


def _read_toml(path: Path) -> dict:
    """The TOML table of a file. A UTF-8 byte order mark is skipped; an empty file (nothing but blank lines and
    comments) is an error of its own, not a list of missing keys."""
    if not path.is_file():
        raise ScenarioError(f"{path}: scenario file not found")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario file ({exc.strerror or exc})") from None
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not a UTF-8 text file (byte {exc.start} cannot be decoded)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: malformed TOML: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: malformed TOML: arrays or tables nested too deeply") from None
    if not data:
        raise ScenarioError(f"{path}: the scenario file is empty")
    return data


def _flatten(path: Path, data: dict, seen: tuple[Path, ...] = (), price_years: dict | None = None) -> dict[tuple[str, str], tuple[Any, str]]:
    """{(section, key): (raw value, file it came from)}, following ``extends`` first so the file itself wins.
    The last ``price_year`` given for each key is collected in ``price_years`` (a plain override keeps it)."""
    merged: dict[tuple[str, str], tuple[Any, str]] = {}
    price_years = {} if price_years is None else price_years
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise ScenarioError(f"{path}: extends = {parent!r}: must be a file name (text)")
        parent_path = (path.parent / parent).resolve()
        if not parent_path.is_file():
            raise ScenarioError(f"{path}: extends = {parent!r}: file not found ({parent_path})")
        if parent_path in seen:
            raise ScenarioError(f"{path}: extends = {parent!r}: circular extends")
        if len(seen) >= MAX_EXTENDS:
            raise ScenarioError(f"{path}: extends = {parent!r}: more than {MAX_EXTENDS} files extend one another")
        merged.update(_flatten(parent_path, _read_toml(parent_path), seen + (parent_path,), price_years))
    for section, table in data.items():
        if section in ("extends", "sweep", "calibration"):
            continue  # a sweep grid (sim sweep) and a fit's record (calibration/fitted.toml) are not parameters
        if section not in SECTIONS:
            allowed = ", ".join(["extends", "sweep", *SECTIONS])
            raise ScenarioError(f"{path}: [{section}]: unknown section (allowed: {allowed})")
        if not isinstance(table, dict):
            raise ScenarioError(f"{path}: {section} = {table!r}: must be a table [{section}]")
        for key, value in table.items():
            merged[(section, key)] = (value, str(path))
            if isinstance(value, dict) and "price_year" in value:
                price_years[(section, key)] = value["price_year"]
    return merged


def parse_override(text: str) -> tuple[str, str, Any]:
    """``"justice.p_recall_per_month=0.03"`` -> ("justice", "p_recall_per_month", 0.03). Values are TOML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ScenarioError(f"--set {text}: expected section.key=value, e.g. justice.p_recall_per_month=0.03")
    lhs, rhs = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {rhs.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs.strip()  # bare text such as a name
    return section, key, value


def _parse_dist(value: dict, where: str, section: str, key: str) -> Dist:
    """``{ dist = "beta", mean = 0.4, sd = 0.05 }`` -> Dist, checking the distribution's own parameters."""
    kind = value["dist"]
    if not isinstance(kind, str) or kind not in Dist.KINDS:
        raise ScenarioError(f"{where}: {section}.{key}.dist = {kind!r}: allowed distributions: {', '.join(Dist.KINDS)}")
    needed = Dist.KINDS[kind]
    given = {k: v for k, v in value.items() if k not in DOC_KEYS and k != "dist"}
    mass = [k for k in Dist.POINT_MASS if k in given]
    if set(given) - set(mass) != set(needed) or len(mass) == 1 or not all(_is_number(v) for v in given.values()):
        raise ScenarioError(f"{where}: {section}.{key} = {value!r}: a {kind} distribution takes numbers {', '.join(needed)}"
                            f" (and optionally both {' and '.join(Dist.POINT_MASS)}: a point mass of no effect)")
    g = given
    problem = None
    if mass and not 0 < g["p_no_effect"] < 1:
        problem = "p_no_effect must be between 0 and 1 (exclusive)"
    elif "sd" in g and g["sd"] <= 0:
        problem = "sd must be > 0"
    elif kind == "beta" and not (0 < g["mean"] < 1 and g["sd"] ** 2 < g["mean"] * (1 - g["mean"])):
        problem = "a beta needs 0 < mean < 1 and sd^2 < mean (1 - mean)"
    elif kind in ("lognormal", "gamma") and g["mean"] <= 0:
        problem = f"a {kind} needs mean > 0"
    elif kind in ("uniform", "triangular") and not g["low"] < g["high"]:
        problem = "low must be below high"
    elif kind == "triangular" and not g["low"] <= g["mode"] <= g["high"]:
        problem = "mode must lie between low and high"
    if problem:
        raise ScenarioError(f"{where}: {section}.{key} = {value!r}: {problem}")
    return Dist(kind, tuple((k, float(g[k])) for k in (*needed, *mass)))


def _unwrap(value: Any, where: str, section: str, key: str) -> Any:
    if isinstance(value, dict):
        extra = set(value) - DOC_KEYS - {"value"}
        if "dist" in value:
            return _parse_dist(value, where, section, key)
        if "value" not in value or extra:
            raise ScenarioError(
                f"{where}: {section}.{key} = {value!r}: a table value needs 'value' and only {sorted(DOC_KEYS)}"
            )
        return value["value"]
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_scalar(check: str, v: Any) -> bool:
    if check == "text":
        return isinstance(v, str)
    if check == "true or false":
        return isinstance(v, bool)
    if check in (COUNT, POSINT):
        ok = isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())
        return ok and v >= (1 if check == POSINT else 0)
    if not _is_number(v):
        return False
    if check == PROB:
        return 0.0 <= v <= 1.0
    if check == FRACTION:
        return 0.0 < v <= 1.0
    if check == NONNEG:
        return v >= 0
    if check == POS:
        return v > 0
    return True  # ANY number


_LIST_ITEM = {
    "list of ages": NONNEG,
    "list of numbers >= 0": NONNEG,
    "list of numbers": "number",
    "list of probabilities": PROB,
    "list of names": "text",
}


#: shares that must sum to 1 may miss it by this much (rounding in the file); they are never rescaled to 1
SHARE_TOLERANCE = 1e-6

#: longest run: months are stored as 32-bit integers (with "long ago" markers of -1,000,000 months)
MAX_YEARS = 100_000_000
#: longest duration a "..._months" value may give, for the same reason
MAX_MONTHS = 12 * MAX_YEARS
#: oldest age (years) any age parameter may give: ages index tables that stop at 120, birth months are 32-bit
MAX_AGE_YEARS = 150
#: largest sd of a log ("..._sigma"): 10 already spreads values by a factor of 22,000 per sd; more overflows
MAX_LOG_SD = 10
#: age parameters (years), checked against MAX_AGE_YEARS
AGE_KEYS = {
    "population": ("offender_age_mean_years", "offender_age_sd_years", "parent_age_at_first_child_mean_years",
                   "parent_age_at_first_child_sd_years", "partner_age_gap_sd_years", "adult_age_band_lower_years",
                   "oldest_age_years"),
    "family": ("age_criminal_responsibility", "age_adult", "parent_conviction_effect_until_age"),
    "demography": ("arrival_age_min", "arrival_age_max", "fertile_age_min", "fertile_age_max", "partnering_age_max",
                   "partner_age_gap_mean_years"),
    "offending": ("age_curve_ages",),
}

#: draws are made between these quantiles, and a distribution is validated over the same range
DRAW_TAIL = 1e-6

#: checks whose values may be uncertain (a distribution instead of a number)
UNCERTAIN_OK = {PROB, FRACTION, NONNEG, POS, ANY, COUNT, POSINT}


def _coerce(check: str, annotation: str, v: Any, where: str, section: str, key: str) -> Any:
    if isinstance(v, Dist):
        if check not in UNCERTAIN_OK:
            raise ScenarioError(f"{where}: {section}.{key} = {v}: only a single number may be uncertain here (must be a {check})")
        lo, hi = v.ppf(DRAW_TAIL), v.ppf(1 - DRAW_TAIL)
        for end in (lo, hi, *([v.arg("no_effect_at")] if v.p_no_effect else [])):
            x = round(end) if check in (COUNT, POSINT) else end
            if not _check_scalar(check, x):
                raise ScenarioError(f"{where}: {section}.{key} = {v}: draws reach {end:.4g}, outside what is allowed (a {check})")
        return v
    bad = ScenarioError(f"{where}: {section}.{key} = {v!r}: must be a {check}")
    if check in _LIST_ITEM:
        if not isinstance(v, list) or not v or not all(_check_scalar(_LIST_ITEM[check], x) for x in v):
            raise bad
        return tuple(v)
    if not _check_scalar(check, v):
        raise bad
    if annotation == "int":
        return int(v)
    if annotation == "float":
        return float(v)
    return v


def _cross_checks(p: Params, origin: dict[tuple[str, str], str]) -> None:
    """Relations between keys: list lengths agree, the age curve is sorted. Uncertain values are checked at
    their medians here and again, drawn, in ``realize``."""
    p = _map_uncertain(p, lambda section, key, d: d.median())

    def fail(section: str, key: str, value: Any, allowed: str):
        raise ScenarioError(f"{origin.get((section, key), p.source_file)}: {section}.{key} = {value!r}: {allowed}")

    if p.run.calibration not in CALIBRATION_CHOICES:
        fail("run", "calibration", p.run.calibration, f"must be one of {', '.join(map(repr, CALIBRATION_CHOICES))}")
    o = p.offending
    n = len(o.offence_types)
    for key in ("offence_type_share", "offence_type_p_proven", "offence_type_custody_log_odds"):
        if len(getattr(o, key)) != n:
            fail("offending", key, list(getattr(o, key)), f"needs {n} entries, one per offence type")
    total = math.fsum(o.offence_type_share)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        fail("offending", "offence_type_share", list(o.offence_type_share), f"the shares must sum to 1 (they sum to {total:.10g})")
    if len(o.age_curve_multiplier) != len(o.age_curve_ages):
        fail("offending", "age_curve_multiplier", list(o.age_curve_multiplier), "needs one entry per age in age_curve_ages")
    if list(o.age_curve_ages) != sorted(o.age_curve_ages):
        fail("offending", "age_curve_ages", list(o.age_curve_ages), "must be in increasing order")
    nd = p.needs
    for key in ("prevalence_offenders", "prevalence_general", "offending_rr", "monthly_resolution"):
        if len(getattr(nd, key)) != len(nd.names):
            fail("needs", key, list(getattr(nd, key)), f"needs {len(nd.names)} entries, one per need")
    if len(p.intervention.need_resolution_rr_at_full_dose) != len(nd.names):
        fail("intervention", "need_resolution_rr_at_full_dose", list(p.intervention.need_resolution_rr_at_full_dose), f"needs {len(nd.names)} entries, one per need")
    c = p.costs
    if len(c.deflator_index) != len(c.deflator_years):
        fail("costs", "deflator_index", list(c.deflator_index), "needs one entry per year in deflator_years")
    if len(c.crime_cost_by_type.value) != n:
        fail("costs", "crime_cost_by_type", list(c.crime_cost_by_type.value), f"needs {n} entries, one per offence type")
    if len(c.nhs_cost_per_month_by_need.value) != len(nd.names):
        fail("costs", "nhs_cost_per_month_by_need", list(c.nhs_cost_per_month_by_need.value), f"needs {len(nd.names)} entries, one per need")
    if c.crime_cost_share_economic + c.crime_cost_share_health + c.crime_cost_share_response > 1 + 1e-9:
        fail("costs", "crime_cost_share_response", c.crime_cost_share_response, "the economic, health and response shares must add up to at most 1 (the social share is the rest)")
    if c.base_price_year not in c.deflator_years:
        fail("costs", "base_price_year", c.base_price_year, f"must be one of the deflator years {list(c.deflator_years)}")
    if len(c.da_cost_per_victim_year.value) != len(DA_COST_PARTS):
        fail("costs", "da_cost_per_victim_year", list(c.da_cost_per_victim_year.value),
             f"needs {len(DA_COST_PARTS)} entries, one per part: {', '.join(DA_COST_PARTS)}")
    f = p.family
    if f.parent_conviction_effect_until_age < max(f.age_adult, p.domestic_abuse.exposure_effect_until_age):
        fail("family", "parent_conviction_effect_until_age", f.parent_conviction_effect_until_age,
             f"must be at least family.age_adult ({f.age_adult}) and domestic_abuse.exposure_effect_until_age "
             f"({p.domestic_abuse.exposure_effect_until_age}): the drawn pasts of people past it carry only their "
             "parents' convictions (offending.outgrown_family_multiplier)")
    if p.da_hub.capacity_victims_per_year > 0 and p.domestic_abuse.incidents_per_month_base <= 0:
        fail("da_hub", "capacity_victims_per_year", p.da_hub.capacity_victims_per_year,
             "a DA hub needs partner abuse on (domestic_abuse.incidents_per_month_base > 0, as in scenarios/domestic_abuse.toml)")
    for section in ("costs", "intervention", "da_hub"):
        for key, m in vars(getattr(p, section)).items():
            if isinstance(m, Money) and m.price_year not in c.deflator_years:
                fail(section, key, m.price_year, f"price_year must be one of the deflator years {list(c.deflator_years)} (add it to costs.deflator_years)")
    if len(nd.names) > 8:
        fail("needs", "names", list(nd.names), "at most 8 needs (they are stored as a bit mask)")
    for required in ("accommodation", "employment", "family_relationships"):
        if required not in nd.names:
            fail("needs", "names", list(nd.names), f"must include '{required}'")
    if p.population.children_per_parent_mean < 1:
        fail("population", "children_per_parent_mean", p.population.children_per_parent_mean, "must be >= 1")
    if p.run.years > MAX_YEARS:
        fail("run", "years", p.run.years, f"must be at most {MAX_YEARS:,} (months are stored as 32-bit integers)")
    _magnitude_checks(p, fail)
    pop = p.population
    if pop.offender_age_mean_years <= p.family.age_adult:
        fail("population", "offender_age_mean_years", pop.offender_age_mean_years,
             f"must exceed family.age_adult = {p.family.age_adult:g} (adult offenders' ages are drawn above it)")
    if pop.offender_age_sd_years < 0.01:
        fail("population", "offender_age_sd_years", pop.offender_age_sd_years, "must be at least 0.01 (years)")
    p_licence = _p_licence_at_start(p) if pop.licence_count > 0 else 1.0
    if p_licence < 1e-6:
        fail("population", "licence_count", pop.licence_count,
             f"{'no' if p_licence == 0 else f'only a share of {p_licence:.2g} of the'} sentences being served at the start "
             "can be followed by licence (population.start_sentence_median_months, start_sentence_sigma and start_sentence_short_*, "
             "justice.release_fraction and licence_min_sentence_months): make more possible or set licence_count to 0")
    d = p.demography
    bands, shares = list(p.population.adult_age_band_lower_years), list(p.population.adult_age_band_share)
    if len(shares) != len(bands) or not bands:
        fail("population", "adult_age_band_share", shares, "needs one share per age in adult_age_band_lower_years (at least one)")
    if bands != sorted(set(bands)) or bands[0] != p.family.age_adult or bands[-1] >= p.population.oldest_age_years:
        fail("population", "adult_age_band_lower_years", bands,
             f"must increase, start at family.age_adult ({p.family.age_adult:g}) and end below oldest_age_years")
    if math.fsum(shares) > 1:
        fail("population", "adult_age_band_share", shares, "the shares of the whole population cannot sum to more than 1")
    if d.arrival_age_max <= d.arrival_age_min:
        fail("demography", "arrival_age_max", d.arrival_age_max, "must exceed arrival_age_min")
    if d.fertile_age_max <= d.fertile_age_min:
        fail("demography", "fertile_age_max", d.fertile_age_max, "must exceed fertile_age_min")


def _magnitude_checks(p: Params, fail) -> None:
    """Values each allowed on their own but so large that arrays would overflow: durations in months, ages, sds of
    logs (a one-line error here instead of a traceback, or garbage, later)."""
    for section in SECTIONS:
        for f in fields(getattr(p, section)):
            v = getattr(getattr(p, section), f.name)
            if not _is_number(v):
                continue
            if f.name.endswith("_months") and v > MAX_MONTHS:
                fail(section, f.name, v, f"must be at most {MAX_MONTHS:,} (months are stored as 32-bit integers)")
            if "sigma" in f.name and v > MAX_LOG_SD:
                fail(section, f.name, v, f"must be at most {MAX_LOG_SD} (an sd of log; larger ones overflow)")
    for section, keys in AGE_KEYS.items():
        for key in keys:
            v = getattr(getattr(p, section), key)
            if max(abs(x) for x in (v if isinstance(v, tuple) else (v,))) > MAX_AGE_YEARS:
                shown = list(v) if isinstance(v, tuple) else v
                fail(section, key, shown, f"must be at most {MAX_AGE_YEARS} years (of age)" if not key.endswith("gap_mean_years")
                     else f"must be between -{MAX_AGE_YEARS} and {MAX_AGE_YEARS} years")


def _p_licence_at_start(p: Params) -> float:
    """Share of the sentences being served at the start (``sim.state.population``: whole months, at least 1, lognormal)
    that are followed by licence: at least ``licence_min_sentence_months`` long, with a month or more left after
    release at ``release_fraction`` (custody lasts max(1, ceil(s x release_fraction)) months)."""
    rf, lic_min = p.justice.release_fraction, p.justice.licence_min_sentence_months
    if rf >= 1:
        return 0.0
    shortest = float(max(2, math.ceil(lic_min), math.floor(1.0 / (1.0 - rf))))
    for _ in range(4):  # from here on s - ceil(s rf) >= 1 holds within a step or two
        if shortest - max(1, math.ceil(shortest * rf)) >= 1:
            break
        shortest += 1
    else:
        return 0.0  # rf so close to 1 that no length a float can hold qualifies
    from scipy.special import ndtr

    def at_least_shortest(median: float, sigma: float) -> float:
        if sigma == 0:
            return 1.0 if max(1, round(median)) >= shortest else 0.0
        return float(ndtr((math.log(median) - math.log(shortest - 0.5)) / sigma))

    pop = p.population
    share = pop.start_sentence_short_share
    return ((1 - share) * at_least_shortest(pop.start_sentence_median_months, pop.start_sentence_sigma)
            + share * at_least_shortest(pop.start_sentence_short_median_months, pop.start_sentence_short_sigma))


def load_scenario(path: str | Path, overrides: Iterable[str] = (), override_origin: dict[str, str] | None = None) -> Params:
    """Read a scenario file (following ``extends``), apply ``section.key=value`` overrides, validate.
    ``override_origin`` names where an override came from (default "--set"), keyed by "section.key"."""
    path = Path(path)
    price_years: dict[tuple[str, str], str] = {}
    merged = _flatten(path.resolve(), _read_toml(path), price_years=price_years)
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SECTIONS:
            raise ScenarioError(f"--set {text}: unknown section '{section}' (allowed: {', '.join(SECTIONS)})")
        merged[(section, key)] = (value, (override_origin or {}).get(f"{section}.{key}", "--set"))
        if isinstance(value, dict) and "price_year" in value:
            price_years[(section, key)] = value["price_year"]
    origin = {k: where for k, (_, where) in merged.items()}
    built = {}
    for section, cls in SECTIONS.items():
        known = {f.name: f for f in fields(cls)}
        for (sec, key), (_, where) in merged.items():
            if sec == section and key not in known:
                raise ScenarioError(f"{where}: {section}.{key}: unknown key (allowed: {', '.join(known)})")
        values = {}
        for name, f in known.items():
            if (section, name) not in merged:
                raise ScenarioError(f"{path}: {section}.{name}: missing key ({f.metadata['doc']})")
            raw, where = merged[(section, name)]
            value = _unwrap(raw, where, section, name)
            check = f.metadata["check"]
            if check in (MONEY, MONEY_LIST):
                amount = _coerce(NONNEG if check == MONEY else "list of numbers >= 0", "float", value, where, section, name)
                if (section, name) not in price_years:
                    raise ScenarioError(f"{where}: {section}.{name} = {value!r}: money needs a price_year, e.g. {{ value = 100, price_year = \"2012-13\" }}")
                values[name] = Money(amount, str(price_years[(section, name)]))
            else:
                values[name] = _coerce(check, str(f.type), value, where, section, name)
        built[section] = cls(**values)
    params = Params(**built, source_file=str(path))
    _cross_checks(params, origin)
    if params.run.calibration == "ensemble":
        params = replace(params, ensemble=_ensemble_for(origin, params.run.ensemble))
    return params


def _ensemble_for(origin: dict[tuple[str, str], str], name: str):
    """The calibration ensemble ``name`` (``run.ensemble``) for the keys whose value comes from
    calibration/fitted.toml (None if none does)."""
    fitted = {f"{sec}.{key}" for (sec, key), where in origin.items() if where != "--set" and Path(where).resolve() == FITTED}
    if not fitted:
        return None
    where = origin[("run", "calibration")]
    path = ensemble_path(name)
    try:
        ensemble = read_ensemble(path)
    except FileNotFoundError:
        raise ScenarioError(f'{where}: run.calibration = "ensemble": {path} not found (make it with sim ensemble), '
                            'or set run.calibration = "point"') from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(f'{where}: run.calibration = "ensemble": {path} cannot be read as an ensemble ({exc})') from None
    ensemble = ensemble.restricted(fitted)
    checks = {f"{section}.{f.name}": f.metadata["check"] for section, cls in SECTIONS.items() for f in fields(cls)}
    for m, row in enumerate(ensemble.values):
        for key, value in zip(ensemble.keys, row):
            if not _check_scalar(checks[key], value):
                raise ScenarioError(f"{path}: member {m}: {key} = {value!r}: must be a {checks[key]}; "
                                    "make the ensemble again with sim ensemble")
    return ensemble


def with_member(params: Params, seed: int) -> tuple[Params, int]:
    """``params`` with the calibrated values of the ensemble member replicate ``seed`` draws, and the member's index
    (-1 and ``params`` as they are at the point fit, ``run.calibration = "point"``)."""
    ensemble = params.ensemble
    if ensemble is None or not len(ensemble.keys):
        return params, -1
    member = ensemble.member(seed)
    sections: dict[str, dict[str, float]] = {}
    for key, value in zip(ensemble.keys, ensemble.values[member]):
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    concrete = replace(params, ensemble=None, **{s: replace(getattr(params, s), **v) for s, v in sections.items()})
    try:
        _cross_checks(concrete, {})
    except ScenarioError as exc:
        raise ScenarioError(f"replicate seed {seed}: ensemble member {member} breaks a rule: {exc}") from None
    return concrete, member


def parse_grid(settings: list[str]) -> list[list[str]]:
    """``["a.b=1,2", "c.d=x"]`` -> the product grid as lists of ``section.key=value`` overrides.
    Commas inside TOML lists ``[...]``, inline tables ``{...}`` or quoted strings do not split values."""
    axes = []
    for text in settings:
        key, _, values = text.partition("=")
        parts, depth, cur, quote = [], 0, "", None
        for ch in values:
            if quote:
                quote = None if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            else:
                depth += ch in "[{"
                depth -= ch in "]}"
            if ch == "," and depth == 0 and quote is None:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        axes.append([f"{key.strip()}={v.strip()}" for v in parts])
    return [list(point) for point in itertools.product(*axes)]


def sweep_grid(path: str | Path) -> list[str]:
    """The ``[sweep]`` table of a scenario file (not inherited) as ``section.key=v1,v2,...`` axes for ``sim sweep``:
    ``"intervention.intensity_hours_per_month" = [0, 10, 20]``."""
    path = Path(path)
    table = _read_toml(path).get("sweep", {})
    if not isinstance(table, dict):
        raise ScenarioError(f"{path}: sweep = {table!r}: must be a table [sweep] of section.key = [values]")
    axes = []
    for key, values in table.items():
        section = key.split(".", 1)[0]
        if "." not in key or section not in SECTIONS:
            raise ScenarioError(f"{path}: sweep.{key}: must be section.key with a section among {', '.join(SECTIONS)}")
        if not isinstance(values, list) or not values:
            raise ScenarioError(f"{path}: sweep.{key} = {values!r}: must be a non-empty list of values")
        axes.append(f"{key}=" + ",".join(toml_value(v) for v in values))
    return axes


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. a distribution
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return repr(v)


def documented_values(path: str | Path) -> dict[str, dict[str, Any]]:
    """{"section.key": {"value":..., "unit":..., "source":...}} for every key of a file and its parents."""
    path = Path(path)
    merged = _flatten(path.resolve(), _read_toml(path))
    out = {}
    for (section, key), (raw, _) in merged.items():
        out[f"{section}.{key}"] = dict(raw) if isinstance(raw, dict) else {"value": raw}
    return out


def _map_uncertain(params: Params, fn) -> Params:
    """A copy of ``params`` with every Dist (also inside Money) replaced by ``fn(section, key, dist)``."""
    if not params.uncertain:
        return params
    sections = {}
    for section in SECTIONS:
        obj = getattr(params, section)
        changes = {}
        for f in fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, Dist):
                x = fn(section, f.name, v)
                changes[f.name] = int(round(x)) if str(f.type) == "int" else float(x)
            elif isinstance(v, Money) and isinstance(v.value, Dist):
                changes[f.name] = Money(float(fn(section, f.name, v.value)), v.price_year)
        sections[section] = replace(obj, **changes) if changes else obj
    return replace(params, **sections)


def at_means(params: Params) -> Params:
    """``params`` with every uncertain value at its mean (``Dist.mean``): the deterministic base case of a one-way
    sensitivity analysis, where only the assumption moved differs between points."""
    return _map_uncertain(params, lambda section, key, dist: dist.mean)


def realize(params: Params, seed: int) -> tuple[Params, dict[str, float]]:
    """Draw every uncertain value for one replicate: (concrete Params, {"section.key": value}).

    The draw for a key depends only on (seed, "section.key"), so every scenario of a comparison with the same
    distribution for a key gets the same value in the same replicate (common random numbers for parameters)."""
    if not params.uncertain:
        return params, {}
    rng = CounterRNG(seed)
    draws: dict[str, float] = {}

    def draw(section, key, dist):
        u = float(rng.uniform(f"parameter:{section}.{key}", 0, np.zeros(1, np.int64))[0])
        return dist.ppf(min(max(u, DRAW_TAIL), 1 - DRAW_TAIL))  # the range validated at load time

    concrete = _map_uncertain(params, draw)
    for key in params.uncertain:  # record the values used (integer fields rounded, money as its amount)
        section, name = key.split(".")
        v = getattr(getattr(concrete, section), name)
        draws[key] = float(v.value if isinstance(v, Money) else v)
    try:
        _cross_checks(concrete, {})
    except ScenarioError as exc:
        raise ScenarioError(f"replicate seed {seed}: drawn parameters break a rule: {exc}") from None
    return concrete, draws


#: run settings a portfolio does not merge: the name (the combination gets its own) and the default seed (a
#: comparison spawns its replicates' seeds from --seed)
NOT_MERGED = {("run", "name"), ("run", "seed")}


def changed_settings(baseline: Params, scenario: Params) -> dict[tuple[str, str], Any]:
    """The settings of ``scenario`` that differ from ``baseline``'s, {(section, key): value in ``to_dict`` form} (a
    distribution counts as one setting); the run's name and default seed are left out (``NOT_MERGED``)."""
    base = baseline.to_dict()
    return {(section, key): value for section, values in scenario.to_dict().items() for key, value in values.items()
            if (section, key) not in NOT_MERGED and value != base[section][key]}


def parent_scenario(params: Params, overrides=()) -> Params | None:
    """The scenario that ``params``'s file extends, loaded with the same overrides; None if it extends no complete
    scenario (e.g. the baseline, which extends only the fitted values)."""
    path = Path(params.source_file)
    parent = _read_toml(path).get("extends") if path.is_file() else None
    if not isinstance(parent, str):
        return None
    try:
        return load_scenario(path.parent / parent, list(overrides))
    except ScenarioError:
        return None


def combine_scenarios(baseline: Params, programmes: list[Params], parents: list[Params] | None = None) -> Params:
    """The portfolio: the baseline with every programme's ``changed_settings`` applied on top, named ``A+B+...``
    after the programmes' ``run.name``; a programme's settings are those that differ from its ``parents`` entry (what
    its file extends; default: the baseline). Two programmes that set one key to different values are bad input
    (ScenarioError naming both files, the key and both values)."""
    chosen: dict[tuple[str, str], tuple[Params, Any]] = {}  # (section, key) -> (the first programme setting it, its value)
    for prog, parent in zip(programmes, parents or [baseline] * len(programmes)):
        for (section, key), value in changed_settings(parent, prog).items():
            other, theirs = chosen.setdefault((section, key), (prog, value))
            if theirs != value:
                raise ScenarioError(
                    f"{other.source_file} and {prog.source_file} both set {section}.{key}, to different values "
                    f"({theirs!r} and {value!r}): a portfolio cannot hold both; give the combination with --combined FILE.toml")
    sections = {}
    for section in SECTIONS:
        changes = {key: getattr(getattr(prog, section), key) for (sec, key), (prog, _) in chosen.items() if sec == section}
        sections[section] = replace(getattr(baseline, section), **changes) if changes else getattr(baseline, section)
    sections["run"] = replace(sections["run"], name="+".join(p.run.name for p in programmes))
    combined = replace(baseline, **sections, source_file="", ensemble=_combined_ensemble(sections["run"], baseline, programmes, chosen))
    _cross_checks(combined, {(sec, key): f"the combination of {', '.join(p.source_file for p in programmes)}" for sec, key in chosen})
    return combined


def _combined_ensemble(run, baseline: Params, programmes: list[Params], chosen) -> Ensemble | None:
    """The calibration ensemble of a combination: none at the point fit; else the baseline's (or a programme's), for
    the calibrated keys no programme sets itself (a value a scenario gives itself is kept)."""
    ensemble = next((p.ensemble for p in [baseline, *programmes] if p.ensemble is not None), None)
    if run.calibration == "point" or ensemble is None:
        return None
    return ensemble.restricted([k for k in ensemble.keys if tuple(k.split(".")) not in chosen])


def programme_on(base: Params, programme: Params, overrides=()) -> Params:
    """``programme`` moved onto ``base``: its own settings (those that differ from the scenario its file extends,
    loaded with ``overrides``) applied to ``base``; unchanged when its file extends ``base``'s own file (or nothing
    complete). So a programme written for one baseline joins another, e.g. the plain baseline's on the DA baseline."""
    parent = parent_scenario(programme, overrides)
    if parent is None or Path(parent.source_file).resolve() == Path(base.source_file).resolve():
        return programme
    return replace(combine_scenarios(base, [programme], [parent]), source_file=programme.source_file)
