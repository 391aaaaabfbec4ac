"""Markdown reference of every scenario parameter: ``python -m sim.present.paramdoc > docs/parameters.md``.

The table is built from the dataclasses in ``sim.state.params`` (allowed values and meaning) and the documented
values of a scenario file (default value, unit, source), so the reference cannot drift from the schema.
``python -m sim.present.paramdoc --check docs/parameters.md`` exits 1 if that file is out of date.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..state.evidence import GRADES, evidence_grade, plausible_ranges  # noqa: F401 (documented here too)
from ..state.params import SECTIONS
from ..state.scenario import ScenarioError, documented_values

DEFAULT_SCENARIO = "scenarios/baseline.toml"
REGENERATE = "python -m sim.present.paramdoc > docs/parameters.md"

#: documentation keys other than unit and source, appended to the source cell when present (fixed order)
_EXTRA_DOC_KEYS = ("definition", "price_year", "verified", "note")

_INTRO = """\
Every scenario key, its default in `{scenario}`, and what is allowed.
Generated from `sim/state/params.py` (allowed values, meaning) and `{scenario}` (value, unit, source)
by `{regenerate}`; do not edit by hand.

How values are written in a scenario file (one TOML table per section, `[run]`, `[population]`, ...):

- plain: `p_recall_per_month = 0.02`;
- documented: `p_recall_per_month = {{ value = 0.02, unit = "per month", source = "..." }}`. Only `value` is used
  by the model; `unit` and `source` (and optionally `definition`, `price_year`, `verified`, `note`) document it.

`extends = "baseline.toml"` at the top of a file (path relative to that file) inherits every key and overrides
only those given. `sim run FILE --set section.key=value` (repeatable; the value is TOML, e.g.
`--set justice.p_recall_per_month=0.03` or `--set needs.offending_rr=[1.3,1.2,1.6,1.1,1.2,1.2]`) overrides after
that. Every key below is required once files and overrides are merged; a wrong value stops the run with a one-line
message before any work is done.

Besides each key's own rule: `run.years` is at most {max_years:,} and durations in months (keys ending in `_months`)
at most {max_months:,} (months are stored as 32-bit integers); ages (years) are at most {max_age}; an sd of a log
(keys with `sigma`) is at most {max_sigma}; the shares of `offending.offence_type_share` must sum to 1 (within
{share_tolerance:g}; they are never rescaled); head counts are whole numbers. Before any work, a run's agents, months,
memory and CPU time are estimated (`sim.runs.limits`, `python -m sim.runs.limits SCENARIO`) and a scenario whose replicates
would not fit in this machine's memory or would take over {max_hours:g} hours each is refused with the estimate.

In the source column, "from memory" marks an unverified placeholder still to be checked against the published
figure, and "assumption" marks a modelling choice to be calibrated; "derived" values are computed from the
figures given. Per-category lists follow the order of `offending.offence_types` or `needs.names`."""


def _escape(text: str) -> str:
    """Make text safe for one Markdown table cell."""
    return " ".join(str(text).replace("|", "\\|").split())


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)  # floats keep their decimal point (1.0), small ones use exponent form (5e-05)


def format_value(v: Any) -> str:
    """Compact, deterministic text of a default value: ``[0.25, 0.45]``, ``[violence, other]``, ``0.015``."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {format_value(v[k])}" for k in sorted(v)) + "}"
    return _scalar(v)


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _source_cell(doc: dict[str, Any]) -> str:
    parts = [str(doc.get("source", "")).strip()]
    for key in _EXTRA_DOC_KEYS:
        if key in doc and str(doc[key]).strip():
            parts.append(f"{key}: {format_value(doc[key])}")
    return "; ".join(p for p in parts if p)


def _resolve(scenario_path: str | Path) -> Path:
    """The path as given, or relative to the project root when run from elsewhere."""
    path = Path(scenario_path)
    if not path.is_absolute() and not path.exists():
        candidate = Path(__file__).resolve().parents[2] / path
        if candidate.exists():
            return candidate
    return path


def parameter_reference(scenario_path: str | Path = DEFAULT_SCENARIO) -> str:
    """The Markdown reference of every parameter section, with defaults from ``scenario_path``."""
    values = documented_values(_resolve(scenario_path))
    shown = Path(scenario_path).as_posix()
    from ..runs import limits
    from ..state import scenario as S

    intro = _INTRO.format(scenario=shown, regenerate=REGENERATE, max_years=S.MAX_YEARS, max_months=S.MAX_MONTHS,
                          max_age=S.MAX_AGE_YEARS, max_sigma=S.MAX_LOG_SD, share_tolerance=S.SHARE_TOLERANCE,
                          max_hours=limits.DEFAULT_MAX_HOURS)
    lines = ["# Scenario parameters", "", intro, ""]
    lines += ["Sections: " + ", ".join(f"[`{s}`](#{s})" for s in SECTIONS) + ".", ""]
    header = "| key | default | unit | allowed values | meaning | source |"
    rule = "|---|---|---|---|---|---|"
    known = set()
    for section, cls in SECTIONS.items():
        lines += [f"## {section}", "", f"`[{section}]`, class `{cls.__name__}`.", "", header, rule]
        for f in fields(cls):
            full = f"{section}.{f.name}"
            known.add(full)
            doc = values.get(full)
            if doc is None:
                value, unit, source = "*missing*", "", ""
            else:
                value = _code(_escape(format_value(doc.get("value"))))
                unit = _escape(doc.get("unit", ""))
                source = _escape(_source_cell(doc))
            cells = [f"`{f.name}`", value, unit, _escape(f.metadata["check"]), _escape(f.metadata["doc"]), source]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    unknown = sorted(k for k in values if k not in known)
    if unknown:
        lines += ["## Keys not in sim/state/params.py", "", "Present in the scenario file but unknown to the model "
                  "(loading the scenario will fail): " + ", ".join(f"`{k}`" for k in unknown) + ".", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.present.paramdoc", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, help=f"scenario file (default {DEFAULT_SCENARIO})")
    parser.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from what would be generated")
    args = parser.parse_args(argv)
    try:
        text = parameter_reference(args.scenario)
    except ScenarioError as exc:
        print(f"paramdoc: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        target = Path(args.check)
        try:
            current = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != text:
            state = "is missing" if current is None else "is out of date"
            print(f"paramdoc: {target} {state}; run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
