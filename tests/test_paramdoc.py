"""Every parameter is documented in scenarios/baseline.toml, and docs/parameters.md matches the generator."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from sim.present.paramdoc import REGENERATE, main, parameter_reference
from sim.state.params import SECTIONS
from sim.state.scenario import documented_values

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scenarios" / "baseline.toml"
DOC = ROOT / "docs" / "parameters.md"

#: checks whose values are names or free text: a unit would be meaningless
UNITLESS_CHECKS = {"text", "list of names", "true or false"}

#: Purely structural keys that need no source: they describe the run or fix a definition, not a fact about the
#: world to be checked or calibrated.
#: - run.name: a label for the output folder.
#: - run.years: how long the user chooses to simulate.
#: - run.seed: the default random-number seed.
#: - demography.fertile_age_min/max: the window that defines "women of fertile age", the denominator the
#:   fertility rates are expressed in; the rates carry the sources.
#: Anything that encodes an assumption about the world (even a cut-off) should say "assumption" instead.
NO_SOURCE_NEEDED = {
    "run.name",
    "run.years",
    "run.seed",
    "demography.fertile_age_min",
    "demography.fertile_age_max",
}


def _schema() -> list[tuple[str, str]]:
    """[("section.key", check)] for every field of every section."""
    return [(f"{s}.{f.name}", f.metadata["check"]) for s, cls in SECTIONS.items() for f in fields(cls)]


@pytest.fixture(scope="module")
def documented():
    return documented_values(BASELINE)


def test_allow_list_names_real_keys():
    assert NO_SOURCE_NEEDED <= {key for key, _ in _schema()}


def test_every_parameter_has_a_value(documented):
    missing = [key for key, _ in _schema() if key not in documented or "value" not in documented[key]]
    assert not missing, f"keys in sim/state/params.py without a value in {BASELINE.name}: {', '.join(missing)}"


def test_every_parameter_has_a_unit(documented):
    lacking = [
        key
        for key, check in _schema()
        if check not in UNITLESS_CHECKS and not str(documented.get(key, {}).get("unit", "")).strip()
    ]
    assert not lacking, f"keys in {BASELINE.name} without a unit: {', '.join(lacking)}"


def test_every_parameter_has_a_source(documented):
    lacking = [
        key
        for key, _ in _schema()
        if key not in NO_SOURCE_NEEDED and not str(documented.get(key, {}).get("source", "")).strip()
    ]
    assert not lacking, (
        f"keys in {BASELINE.name} without a source (give one, or \"assumption\" for a modelling choice): "
        + ", ".join(lacking)
    )


def test_reference_lists_every_key_once():
    text = parameter_reference(BASELINE)
    for key, _ in _schema():
        name = key.split(".", 1)[1]
        assert f"| `{name}` |" in text, f"{key} missing from the reference"
    assert text == parameter_reference(BASELINE), "output is not deterministic"


def test_reference_escapes_pipes(tmp_path):
    scenario = tmp_path / "piped.toml"
    scenario.write_text(
        f'extends = "{BASELINE.as_posix()}"\n[run]\nname = {{ value = "a|b", source = "x | y" }}\n', encoding="utf-8"
    )
    row = next(line for line in parameter_reference(scenario).splitlines() if line.startswith("| `name` |"))
    assert "a\\|b" in row and "x \\| y" in row
    assert row.replace("\\|", "").count("|") == 7  # six cells


def test_docs_parameters_md_is_up_to_date():
    expected = parameter_reference("scenarios/baseline.toml")
    assert DOC.is_file(), f"{DOC.relative_to(ROOT)} is missing; run `{REGENERATE}`"
    assert DOC.read_text(encoding="utf-8") == expected, (
        f"{DOC.relative_to(ROOT)} is out of date with sim/state/params.py or scenarios/baseline.toml; run `{REGENERATE}`"
    )


def test_check_option(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    good = tmp_path / "good.md"
    good.write_text(parameter_reference(), encoding="utf-8")
    assert main(["--check", str(good)]) == 0
    stale = tmp_path / "stale.md"
    stale.write_text("old\n", encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and REGENERATE in err


#: the inputs whose source still says "from memory" (unchecked), by scenario file: none left; an entry here would
#: have to be justified, and the list may only shrink.
STILL_FROM_MEMORY: dict[str, set[str]] = {}


#: every scenario file and the app's evidence stances (scenarios/evidence/), by path under scenarios/
SCENARIO_FILES = sorted(p.relative_to(ROOT / "scenarios").as_posix() for p in (ROOT / "scenarios").rglob("*.toml"))


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_no_new_input_is_from_memory(name):
    """A source is a publication read, or an explicit assumption: no input outside the shrinking list says "from
    memory" (one that is fixed leaves the list, so the test also fails until the list is updated)."""
    from sim.state.scenario import _read_toml

    data = _read_toml(ROOT / "scenarios" / name)
    found = {f"{section}.{key}" for section, body in data.items() if isinstance(body, dict)
             for key, entry in body.items() if isinstance(entry, dict) and "from memory" in str(entry.get("source", "")).lower()}
    assert found == STILL_FROM_MEMORY.get(name, set())


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_every_input_has_an_evidence_grade(name):
    """Every input of every scenario (run settings aside) says how it is evidenced: a publication, a calibration,
    an assumption or a design choice (issue 15, point 6); a source that says none of these fails."""
    from sim.present.paramdoc import evidence_grade
    from sim.state.scenario import documented_values

    ungraded = {key: doc.get("source") for key, doc in documented_values(ROOT / "scenarios" / name).items()
                if not key.startswith("run.") and evidence_grade(doc.get("source", "")) == "unclassified"}
    assert not ungraded


@pytest.mark.parametrize("source, grade", [
    ("Jobseeker's Allowance 71.00 GBP a week in 2012-13 (State benefit rates 2012/13, via Davies McLennon, secondary)", "published, secondary"),
    ("HM Treasury Green Book: 3.5% social time preference rate (verified)", "published"),
    ("Ministry of Justice (2013) Proven re-offending statistics, Table C1a", "published"),
    ("assumption, plausible range 6-30: diminishing returns (Lipsey 2009)", "assumption"),
    ("calibrated: history matching then least squares (calibration/fitted.toml)", "calibrated"),
    ("WECB: prison leavers", "design"),
    ("no effect, by construction", "design"),
    ("from memory", "unclassified"),
    ("held at the value of the joint fit of 2026-11-25", "unclassified"),  # a date is not a publication
    ("MoJ (2010) conviction histories, weighted by judgement; assumption", "assumption"),
    ("", "unclassified"),
    ("a number somebody gave us", "unclassified"),
])
def test_evidence_grade(source, grade):
    from sim.present.paramdoc import evidence_grade

    assert evidence_grade(source) == grade


@pytest.mark.parametrize("name", SCENARIO_FILES)
def test_every_assumption_states_a_plausible_range_around_its_value(name):
    """An input graded "assumption" says how far it could plausibly be from its value (issue 14's evidence standard:
    an assumption comes with the range an uncertainty analysis would draw from), and its value lies inside it; a
    drawn value (a distribution) has its spread in its parameters instead."""
    from sim.state.evidence import evidence_grade, plausible_ranges, ranges_per_element
    from sim.state.scenario import _read_toml

    wrong = {}
    for section, body in _read_toml(ROOT / "scenarios" / name).items():
        for key, entry in (body.items() if isinstance(body, dict) else ()):
            if not isinstance(entry, dict) or "value" not in entry or isinstance(entry["value"], dict):
                continue
            if evidence_grade(str(entry.get("source", ""))) != "assumption":
                continue
            values = entry["value"] if isinstance(entry["value"], list) else [entry["value"]]
            ranges = ranges_per_element(str(entry["source"]), len(values))
            if ranges is None:
                stated = plausible_ranges(str(entry["source"]))
                wrong[f"{section}.{key}"] = "no plausible range" if stated is None else f"{len(stated[0])} ranges for {len(values)} values"
            elif not all(lo <= v <= hi for v, (lo, hi) in zip(values, ranges)):
                wrong[f"{section}.{key}"] = f"{entry['value']} outside {ranges}"
    assert not wrong, wrong


@pytest.mark.parametrize("text, expected", [
    ("assumption, plausible range 1.5-3: a judgement", ([(1.5, 3.0)], False)),
    ("assumption, plausible range -1.4 to -0.4, set on the model", ([(-1.4, -0.4)], False)),
    ("assumption, plausible range 10,000-20,000 GBP", ([(10000.0, 20000.0)], False)),
    ("assumption, plausible range 0.5-2 each: by need", ([(0.5, 2.0)], True)),
    ("assumption, each plausible in 1.0-1.7: no hazard ratios found", ([(1.0, 1.7)], True)),
    ("assumption, plausible ranges 0-0, 100-250, 50-300: by need", ([(0.0, 0.0), (100.0, 250.0), (50.0, 300.0)], False)),
    ("assumption: no range given", None),
    ("assumption (5-95%: about 6-29 h)", None),
])
def test_plausible_ranges_are_read_from_the_source_text(text, expected):
    from sim.present.paramdoc import plausible_ranges

    assert plausible_ranges(text) == expected
