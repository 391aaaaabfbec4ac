"""How an input is evidenced, read from its source text: its grade (published, calibrated, assumption, design) and,
for an assumption, the plausible range it states (which the one-way sensitivity analysis moves it across)."""

from __future__ import annotations

import re

#: evidence grades of a source, strongest claim first (``evidence_grade``)
GRADES = ("published", "published, secondary", "calibrated", "assumption", "design", "unclassified")
#: a source text starting with one of these is a choice of design, not a claim about the world
_DESIGN = ("wecb", "off in the baseline", "no effect, by construction", "modelling choice", "as ", "the 10-year programme",
           "legal definition", "the census age groups")
#: a source text starting with one of these says the value was fitted to the targets
_CALIBRATED = ("fitted", "calibrated", "the calibration ensemble", "history match")
#: official bodies whose definitions or series are cited without a year
_BODIES = ("hm treasury", "green book", "oasys", "noms", "ons", "ministry of justice", "moj", "home office", "natcen", "niesr")


def evidence_grade(source: str) -> str:
    """How an input is evidenced, from its source text: ``published`` (a publication with its year, or an official
    body's definition or series), ``published, secondary`` (read as quoted elsewhere), ``calibrated`` (fitted to
    the targets), ``assumption`` (with a plausible range), ``design`` (a choice of the scenario or the model, e.g.
    the proposal's eligibility) or ``unclassified`` (a source that says none of these: refused by the tests)."""
    s = " ".join((source or "").lower().split())
    if not s:
        return "unclassified"
    if s.startswith(_DESIGN):
        return "design"
    if s.startswith(_CALIBRATED):
        return "calibrated"
    if re.search(r"\bassumption\b", s):  # an assumption anywhere in it (a published anchor with a judgement on top),
        return "assumption"  # even one that mentions a fit ("held (not fitted)", "trades off with the fitted ...")
    if "calibrat" in s or "fitted" in s or "history match" in s:
        return "calibrated"
    if "secondary" in s:
        return "published, secondary"
    s = re.sub(r"\b\d{4}-\d{2}-\d{2}\b", "", s)  # a date (of a fit, say) is not a publication year
    if re.search(r"\b(19|20)\d\d\b", s) or any(re.search(rf"\b{re.escape(b)}\b", s) for b in _BODIES):
        return "published"
    return "unclassified"


_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
_SPAN = rf"({_NUMBER})\s*(?:-|to)\s*({_NUMBER})"


def plausible_ranges(source: str) -> tuple[list[tuple[float, float]], bool] | None:
    """The plausible range an assumption's source states, as ``(ranges, each)``: one (low, high) for a scalar, one
    per element ("plausible ranges 1-2, 3-4"), or one for every element (``each``: "plausible range 1-2 each" or
    "each plausible in 1-2"); None where the text states none. Thousands separators are read (10,000)."""
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", " ".join((source or "").split()))
    if m := re.search(rf"plausible ranges ({_SPAN}(?:\s*,\s*{_SPAN})*)", s):
        return [(float(a), float(b)) for a, b in re.findall(_SPAN, m.group(1))], False
    if m := re.search(rf"each plausible in {_SPAN}", s):
        return [(float(m.group(1)), float(m.group(2)))], True
    if m := re.search(rf"plausible range {_SPAN}(\s+each\b)?", s):
        return [(float(m.group(1)), float(m.group(2)))], bool(m.group(3))
    return None


def ranges_per_element(source: str, n: int) -> list[tuple[float, float]] | None:
    """The plausible range of each of the ``n`` elements of an input (``n`` = 1 for a scalar) that ``source`` states:
    one range for a scalar, one per element, or one for every element where it says "each"; None where it states
    none or a number of ranges that does not fit."""
    stated = plausible_ranges(source)
    if stated is None:
        return None
    ranges, each = stated
    if len(ranges) == 1 and (each or n == 1):
        return ranges * n
    return ranges if len(ranges) == n else None
