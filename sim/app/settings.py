"""A commissioner's setting, in their terms, and the two scenarios it means (the baseline and the programme).

The app's controls edit a ``Setting``; ``scenarios`` turns it into scenario parameters by loading the project's own
scenario files and overriding the keys the commissioner chose, so everything not on screen (the calibrated
baseline, the effect priors, the unit costs and their sources) is exactly what ``sim compare`` uses:

- offender-and-family programme: ``scenarios/baseline.toml`` vs ``scenarios/multi_agency.toml``;
- domestic-abuse hub: ``scenarios/domestic_abuse.toml`` vs ``scenarios/da_hub.toml``;
- both: the domestic-abuse baseline vs both programmes together (as ``sim compare BASE A B`` combines them).

The evidence stance replaces the programmes' effect priors: "evidence-weighted" keeps the scenario files' own,
"sceptical" and "optimistic" take ``scenarios/evidence/<stance>.toml`` (each file says who would hold it and why).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from ..state.params import Params
from ..state.scenario import ScenarioError, combine_scenarios, load_scenario, programme_on, toml_value

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

PROGRAMMES = {
    "offender_family": "Offender-and-family (multi-agency keyworker)",
    "da_hub": "Domestic-abuse hub (IDVA-style support)",
    "both": "Both programmes together",
}
STANCES = {
    "sceptical": "Sceptical: weights the controlled trials, most of which found no effect",
    "evidence": "Evidence-weighted: the project's own priors (real chance of no effect, harm possible)",
    "optimistic": "Optimistic: takes the pre/post evaluations at face value",
}
HORIZONS = {"10 years": 10, "lifetime (40 years)": 40}
#: years of referrals in the lifetime view: the programme is funded for 10 years and outcomes followed for 40
FUNDED_YEARS = 10

#: numeric controls: name -> (label, lowest, highest, step, unit); the app's sliders and ``check`` both use these
RANGES = {
    "families_per_year": ("Families served a year (places)", 50, 2000, 50, "families"),
    "hours_per_month": ("Keyworker hours a family a month", 1, 60, 1, "hours"),
    "duration_months": ("Months of support per family", 3, 24, 1, "months"),
    "cost_per_hour": ("Cost of a keyworker hour (GBP, 2013-14 prices)", 20, 80, 1, "GBP"),
    "min_convictions": ("Eligible from this many convictions", 1, 10, 1, "convictions"),
    "hub_victims_per_year": ("High-risk victims the hub supports a year", 100, 3000, 100, "victims"),
    "reps": ("Paired replicates", 2, 200, 2, "replicates"),
}


@dataclass(frozen=True)
class Setting:
    """What a commissioner chooses. ``cost_per_hour=None`` keeps the evidence's range of costs (a triangular
    distribution, GBP 32-55 an hour in 2013-14 prices); a number fixes the price the commissioner would pay."""

    programme: str = "offender_family"
    prison_leavers: bool = True
    probationers: bool = True
    dependent_children: bool = True
    min_convictions: int = 3
    families_per_year: int = 600
    hours_per_month: int = 20
    duration_months: int = 12
    cost_per_hour: float | None = None
    hub_victims_per_year: int = 1000
    stance: str = "evidence"
    horizon: str = "10 years"
    reps: int = 20

    @property
    def has_offender_family(self) -> bool:
        return self.programme in ("offender_family", "both")

    @property
    def has_hub(self) -> bool:
        return self.programme in ("da_hub", "both")

    def describe(self) -> str:
        """The setting in one sentence, as the headline repeats it."""
        parts = []
        if self.has_offender_family:
            who = " and ".join(w for w, on in (("prison leavers", self.prison_leavers), ("probationers", self.probationers)) if on)
            parts.append(f"{self.families_per_year:,} families a year ({who} with {self.min_convictions}+ convictions"
                         f"{', with a dependent child' if self.dependent_children else ''}), {self.hours_per_month} keyworker hours a "
                         f"month for {self.duration_months} months")
        if self.has_hub:
            parts.append(f"a domestic-abuse hub supporting up to {self.hub_victims_per_year:,} high-risk victims a year")
        return "; ".join(parts)


def check(setting: Setting) -> None:
    """Refuse a setting outside what the controls allow, with one line naming the control, value and range."""
    choices = {"programme": PROGRAMMES, "stance": STANCES, "horizon": HORIZONS}
    for name, allowed in choices.items():
        if getattr(setting, name) not in allowed:
            raise ScenarioError(f"{name} = {getattr(setting, name)!r}: allowed {', '.join(map(repr, allowed))}")
    for name, (label, low, high, _, unit) in RANGES.items():
        value = getattr(setting, name)
        if name == "cost_per_hour" and value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            raise ScenarioError(f"{label}: {value!r} is outside the allowed range {low:g} to {high:g} {unit}")
    if setting.has_offender_family and not (setting.prison_leavers or setting.probationers):
        raise ScenarioError("eligibility: choose prison leavers, probationers or both (with neither, no one is eligible)")


def stance_overrides(stance: str, section: str) -> list[str]:
    """The ``section.key=value`` overrides of an evidence stance's file for one programme's section ([] for the
    evidence-weighted stance: the scenario files' own priors)."""
    if stance == "evidence":
        return []
    path = SCENARIOS / "evidence" / f"{stance}.toml"
    with open(path, "rb") as f:
        data = tomllib.load(f).get(section, {})
    return [f"{section}.{key}={toml_value(v)}" for key, v in data.items()]


def server_overrides() -> list[str]:
    """The ``sim app --set`` overrides, as ``sim app`` hands them to its server (``REOFFSIM_APP_SET``, JSON)."""
    return json.loads(os.environ.get("REOFFSIM_APP_SET", "[]"))


def _origin(overrides: list[str], where: str) -> dict[str, str]:
    return {o.split("=", 1)[0]: where for o in overrides}


def _programme(base: Params, file: str, common: list[str], own: list[str], origin: dict[str, str]) -> Params:
    """A programme's scenario file with the ``common`` overrides and its ``own`` (the stance's and the setting's), on
    ``base`` (``programme_on``: its parent gets only the common ones, so the programme's own stay its own)."""
    return programme_on(base, load_scenario(SCENARIOS / file, common + own, origin), common)


def scenarios(setting: Setting, extra: list[str] = ()) -> tuple[Params, Params]:
    """(baseline, programme) parameters for ``setting``; ``extra`` are ``section.key=value`` overrides given to
    ``sim app --set`` (e.g. a coarser population for a quick look), applied to both. Raises ``ScenarioError``."""
    check(setting)
    for text in extra:
        if text.split("=", 1)[0].strip() in ("run.years", "intervention.referral_years", "da_hub.funded_years"):
            raise ScenarioError(f"--set {text}: the horizon control sets the run's length and funded years; choose it in the app")
    years = HORIZONS[setting.horizon]
    common = list(extra) + [f"run.years={years}"]
    origin = _origin(list(extra), "sim app --set") | {"run.years": "app: horizon"}
    base = load_scenario(SCENARIOS / ("domestic_abuse.toml" if setting.has_hub else "baseline.toml"), common, origin)
    programmes = []
    if setting.has_offender_family:
        chosen = [
            f"intervention.capacity_families_per_year={setting.families_per_year}",
            f"intervention.intensity_hours_per_month={setting.hours_per_month}",
            f"intervention.duration_months={setting.duration_months}",
            f"intervention.min_convictions={setting.min_convictions}",
            f"intervention.eligible_on_release={toml_value(setting.prison_leavers)}",
            f"intervention.eligible_on_order_start={toml_value(setting.probationers)}",
            f"intervention.require_dependent_children={toml_value(setting.dependent_children)}",
        ]
        if setting.cost_per_hour is not None:
            chosen.append(f'intervention.cost_per_keyworker_hour_gbp={{ value = {float(setting.cost_per_hour)!r}, price_year = "2013-14" }}')
        if years > FUNDED_YEARS:
            chosen.append(f"intervention.referral_years={FUNDED_YEARS}")
        stance = stance_overrides(setting.stance, "intervention")
        programmes.append(_programme(base, "multi_agency.toml", common, stance + chosen, origin | _origin(stance, f"scenarios/evidence/{setting.stance}.toml")
                                     | _origin(chosen, "app: commissioner's setting")))
    if setting.has_hub:
        chosen = [f"da_hub.capacity_victims_per_year={setting.hub_victims_per_year}"]
        if years > FUNDED_YEARS:
            chosen.append(f"da_hub.funded_years={FUNDED_YEARS}")
        stance = stance_overrides(setting.stance, "da_hub")
        programmes.append(_programme(base, "da_hub.toml", common, stance + chosen, origin | _origin(stance, f"scenarios/evidence/{setting.stance}.toml")
                                     | _origin(chosen, "app: commissioner's setting")))
    if len(programmes) == 1:
        return base, programmes[0]
    both = combine_scenarios(base, programmes)
    return base, replace(both, run=replace(both.run, name="+".join(p.run.name for p in programmes)))

