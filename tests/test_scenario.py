"""Scenario files: extends, --set precedence, documented values, and one-line errors for bad input."""

from __future__ import annotations

import shutil
from pathlib import Path
from dataclasses import fields

import pytest

from sim import ScenarioError, load_scenario
from sim.state.params import SECTIONS
from sim.state.scenario import documented_values, parse_override

from conftest import BASELINE

KEY = ("justice", "p_recall_per_month")


def other_than(*values: float) -> list[float]:
    """Three distinct probabilities, none equal to any of ``values``."""
    return [v for v in (0.123, 0.234, 0.345, 0.456, 0.567) if v not in values][:3]


def write(path, text: str):
    path.write_text(text)
    return path


def child(tmp_path, body: str, name: str = "child.toml", parent: str | None = None):
    parent = str(BASELINE) if parent is None else parent
    return write(tmp_path / name, f'extends = "{parent}"\n{body}')


def test_baseline_loads_and_every_field_is_set(baseline_params):
    for section, cls in SECTIONS.items():
        values = getattr(baseline_params, section)
        for f in fields(cls):
            assert getattr(values, f.name) is not None, f"{section}.{f.name}"
    assert baseline_params.months == round(12 * baseline_params.run.years)
    assert baseline_params.source_file.endswith("baseline.toml")


def test_extends_inherits_and_overrides(tmp_path, baseline_params):
    base_value = baseline_params.justice.p_recall_per_month
    v1, _, _ = other_than(base_value)
    params = load_scenario(child(tmp_path, f"[justice]\np_recall_per_month = {v1}\n"))
    assert params.justice.p_recall_per_month == v1
    # everything else is inherited unchanged
    for section in SECTIONS:
        if section != "justice":
            assert getattr(params, section) == getattr(baseline_params, section), section
    for f in fields(SECTIONS["justice"]):
        if f.name != "p_recall_per_month":
            assert getattr(params.justice, f.name) == getattr(baseline_params.justice, f.name)


def test_precedence_baseline_then_parent_then_child_then_set(tmp_path, baseline_params):
    base = baseline_params.justice.p_recall_per_month
    v_parent, v_child, v_set = other_than(base)
    mid = child(tmp_path, f"[justice]\np_recall_per_month = {v_parent}\np_recall_on_conviction = {v_parent}\n", "mid.toml")
    leaf = child(tmp_path, f"[justice]\np_recall_per_month = {v_child}\n", "leaf.toml", parent="mid.toml")
    assert load_scenario(mid).justice.p_recall_per_month == v_parent
    leaf_params = load_scenario(leaf)
    assert leaf_params.justice.p_recall_per_month == v_child  # the file itself wins over what it extends
    assert leaf_params.justice.p_recall_on_conviction == v_parent  # inherited through two levels
    set_params = load_scenario(leaf, [f"justice.p_recall_per_month={v_set}"])
    assert set_params.justice.p_recall_per_month == v_set  # --set wins over every file
    # the last of repeated --set wins
    again = load_scenario(leaf, [f"justice.p_recall_per_month={v_set}", f"justice.p_recall_per_month={v_parent}"])
    assert again.justice.p_recall_per_month == v_parent
    assert load_scenario(BASELINE).justice.p_recall_per_month == base  # files are not changed by loading


def test_extends_is_relative_to_the_file_not_the_working_directory(tmp_path, monkeypatch, baseline_params):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "calibration").mkdir()
    shutil.copy(BASELINE, tmp_path / "scenarios" / "base.toml")
    shutil.copy(Path(BASELINE).parent.parent / "calibration" / "fitted.toml", tmp_path / "calibration" / "fitted.toml")  # base.toml extends it
    v, _, _ = other_than(baseline_params.justice.p_recall_per_month)
    leaf = child(tmp_path / "scenarios", f"[justice]\np_recall_per_month = {v}\n", parent="base.toml")
    monkeypatch.chdir(tmp_path)  # base.toml is not in the working directory
    assert load_scenario("scenarios/child.toml").justice.p_recall_per_month == v
    assert load_scenario(leaf).run == baseline_params.run


def test_documented_values_are_accepted(tmp_path, baseline_params):
    v, _, _ = other_than(baseline_params.justice.p_recall_per_month)
    path = child(
        tmp_path,
        f'[justice]\np_recall_per_month = {{ value = {v}, unit = "per month", source = "test", note = "n" }}\n'
        '[run]\nyears = { value = 3, unit = "years" }\n',
    )
    params = load_scenario(path)
    assert params.justice.p_recall_per_month == v
    assert params.run.years == 3.0 and params.months == 36
    doc = documented_values(path)
    assert doc["justice.p_recall_per_month"] == {"value": v, "unit": "per month", "source": "test", "note": "n"}
    assert set(doc) == {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in fields(cls)}


def test_set_values_are_toml(baseline_params):
    assert parse_override("justice.p_recall_per_month=0.03") == ("justice", "p_recall_per_month", 0.03)
    assert parse_override("offending.age_curve_ages=[10, 20]") == ("offending", "age_curve_ages", [10, 20])
    assert parse_override("run.name=my_run") == ("run", "name", "my_run")  # bare text
    assert parse_override('run.name="a=b"') == ("run", "name", "a=b")
    params = load_scenario(BASELINE, ["run.name=trial", "run.years=0.5", "run.seed=3.0"])
    assert params.run.name == "trial" and params.months == 6
    assert params.run.seed == 3 and isinstance(params.run.seed, int)


# --- bad input: ScenarioError with one line naming the file, key and value ---------------------------------------

BAD_VALUES = [
    # (section, key, TOML value, text the message must contain)
    ("justice", "p_recall_per_month", "1.5", "1.5"),  # probability above 1
    ("justice", "p_recall_per_month", "-0.1", "-0.1"),  # probability below 0
    ("justice", "p_recall_per_month", '"often"', "often"),  # wrong type
    ("justice", "p_recall_per_month", "true", "True"),  # a bool is not a number
    ("population", "custody_count", "-5", "-5"),  # negative count
    ("run", "seed", "1.5", "1.5"),  # whole number expected
    ("run", "years", "0", "0"),  # must be > 0
    ("justice", "recall_custody_months", "0", "0"),  # whole number >= 1
    ("run", "name", "7", "7"),  # text expected
    ("offending", "offence_type_p_proven", "[0.1, 2.0]", "2.0"),  # list of probabilities
    ("population", "custody_count", "nan", "nan"),
]


@pytest.mark.parametrize("section,key,value,shown", BAD_VALUES)
def test_bad_value_in_file(tmp_path, section, key, value, shown):
    path = child(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg and f"{section}.{key}" in msg and shown in msg


@pytest.mark.parametrize("section,key,value,shown", BAD_VALUES)
def test_bad_value_in_set(section, key, value, shown):
    with pytest.raises(ScenarioError) as err:
        load_scenario(BASELINE, [f"{section}.{key}={value}"])
    msg = str(err.value)
    assert "\n" not in msg and "--set" in msg and f"{section}.{key}" in msg and shown in msg


@pytest.mark.parametrize(
    "body,shown",
    [
        ("[justice]\np_recal_per_month = 0.1\n", "justice.p_recal_per_month"),  # unknown key
        ("[jusstice]\np_recall_per_month = 0.1\n", "jusstice"),  # unknown section
        ("[justice]\np_recall_per_month = { value = 0.1, colour = \"red\" }\n", "colour"),  # unknown doc key
        ("[justice]\np_recall_per_month = { unit = \"per month\" }\n", "p_recall_per_month"),  # no value
        ("[justice]\np_recall_per_month = 0.1\np_recall_per_month = 0.2\n", "line 4"),  # duplicate key: malformed TOML
        ("[justice\np_recall_per_month = 0.1\n", "malformed"),  # malformed TOML
        ("[offending]\noffence_type_share = [1.0]\n", "offence_type_share"),  # wrong length
        ("[offending]\nage_curve_ages = [20, 10]\nage_curve_multiplier = [1, 1]\n", "age_curve_ages"),  # unsorted
        ("justice = 3\n", "justice"),  # a section must be a table
    ],
)
def test_bad_file_structure(tmp_path, body, shown):
    path = child(tmp_path, body)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and shown in msg


def test_missing_files(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match="not found") as err:
        load_scenario(missing)
    assert str(missing) in str(err.value)
    path = child(tmp_path, "", parent="nope.toml")  # a missing parent is named too
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "nope.toml" in str(err.value) and "\n" not in str(err.value)


def test_missing_key_without_extends(tmp_path):
    path = write(tmp_path / "lone.toml", '[run]\nname = "x"\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and "missing key" in str(err.value)


def test_circular_extends(tmp_path):
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(ScenarioError, match="circular"):
        load_scenario(tmp_path / "a.toml")
    write(tmp_path / "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(ScenarioError, match="circular"):
        load_scenario(tmp_path / "self.toml")


@pytest.mark.parametrize("text", ["justice_p_recall=0.1", "justice.p_recall_per_month", "nosuch.key=1"])
def test_bad_set_syntax(text):
    with pytest.raises(ScenarioError) as err:
        load_scenario(BASELINE, [text])
    assert text in str(err.value) and "\n" not in str(err.value)


def test_the_family_effect_must_last_past_childhood_and_exposure(tmp_path):
    """``family.parent_conviction_effect_until_age`` below the adult age (or the partner-abuse exposure's limit) is
    refused in one line: the drawn pasts of people past it would carry childhood-only effects."""
    from conftest import BASELINE

    with pytest.raises(ScenarioError, match=r"family\.parent_conviction_effect_until_age = 16.*at least family\.age_adult"):
        load_scenario(BASELINE, ["family.parent_conviction_effect_until_age=16"])
    load_scenario(BASELINE, ["family.parent_conviction_effect_until_age=25"])  # (the exposure's limit, 25: allowed)
