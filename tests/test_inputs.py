"""Bounded inputs (issue 12, point 4): head counts are whole numbers, shares sum to 1 (and are not rescaled), a
UTF-8 BOM is fine, an empty file says it is empty, and values that would overflow later are refused at load, each
in one line naming the file or --set, the key, the value and what is allowed."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest

from sim import ScenarioError, load_scenario
from sim.state.params import SECTIONS
from sim.state.scenario import MAX_AGE_YEARS, MAX_LOG_SD, MAX_MONTHS, MAX_YEARS, realize

from conftest import BASELINE, SCENARIOS

HEAD_COUNTS = ("custody_count", "licence_count", "probation_count", "community_count", "total_population")


def child(tmp_path, body: str, name: str = "child.toml"):
    path = tmp_path / name
    path.write_text(f'extends = "{BASELINE}"\n{body}')
    return path


def one_line_error(*args, **kwargs) -> str:
    with pytest.raises(ScenarioError) as err:
        load_scenario(*args, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# --- head counts --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", HEAD_COUNTS)
def test_head_counts_must_be_whole_numbers(tmp_path, key):
    msg = one_line_error(BASELINE, [f"population.{key}=1900.5"])
    assert "--set" in msg and f"population.{key}" in msg and "1900.5" in msg and "whole number" in msg
    path = child(tmp_path, f"[population]\n{key} = 1900.5\n")
    msg = one_line_error(path)
    assert str(path) in msg and f"population.{key}" in msg and "1900.5" in msg


@pytest.mark.parametrize("key", HEAD_COUNTS)
def test_head_counts_written_as_whole_floats_load_as_ints(key, baseline_params):
    params = load_scenario(BASELINE, [f"population.{key}=3.0"])
    value = getattr(params.population, key)
    assert value == 3 and isinstance(value, int)
    assert isinstance(getattr(baseline_params.population, key), int)  # the shipped value too


def test_head_count_fields_are_typed_and_checked_as_counts():
    by_name = {f.name: f for f in fields(SECTIONS["population"])}
    for key in HEAD_COUNTS:
        assert str(by_name[key].type) == "int" and "whole number" in by_name[key].metadata["check"]
    # every population field named as a count is among them
    assert {n for n in by_name if n.endswith("_count")} <= set(HEAD_COUNTS)


def test_an_uncertain_head_count_is_drawn_as_a_whole_number(tmp_path):
    path = child(tmp_path, '[population]\ncustody_count = { dist = "uniform", low = 1800.5, high = 2000.5 }\n')
    params = load_scenario(path)
    drawn = {realize(params, seed)[0].population.custody_count for seed in range(5)}
    assert all(isinstance(v, int) and 1800 <= v <= 2001 for v in drawn) and len(drawn) > 1


# --- shares -------------------------------------------------------------------------------------------------------

def test_offence_type_shares_must_sum_to_one(baseline_params):
    n = len(baseline_params.offending.offence_types)
    doubled = [2.0 / n] * n
    msg = one_line_error(BASELINE, ["offending.offence_type_share=" + str(doubled)])
    assert "offending.offence_type_share" in msg and "sum to 1" in msg and "sum to 2" in msg
    zero = [0.0] * n
    assert "sum to 0" in one_line_error(BASELINE, ["offending.offence_type_share=" + str(zero)])
    # within 1e-6 is rounding in the file: accepted, and used as given
    close = [1.0 / n] * (n - 1) + [1.0 - (n - 1) / n + 5e-7]
    params = load_scenario(BASELINE, ["offending.offence_type_share=" + str(close)])
    assert list(params.offending.offence_type_share) == close


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_have_shares_summing_to_one(path):
    shares = load_scenario(path).offending.offence_type_share
    assert math.fsum(shares) == 1.0 and np.sum(shares) == 1.0  # exactly: dividing by the sum (sim.processes.offending) changes nothing


# --- reading the file ---------------------------------------------------------------------------------------------

def test_a_utf8_bom_is_accepted(tmp_path, baseline_params):
    text = BASELINE.read_text(encoding="utf-8").replace('"../calibration/', f'"{BASELINE.parent.parent}/calibration/')
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    params = load_scenario(path)
    assert replace(params, source_file="") == replace(baseline_params, source_file="")
    bom_child = tmp_path / "bom_child.toml"
    bom_child.write_bytes(b"\xef\xbb\xbf" + f'extends = "{BASELINE}"\n[justice]\np_recall_per_month = 0.0321\n'.encode())
    assert load_scenario(bom_child).justice.p_recall_per_month == 0.0321


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"# only a comment\n\n# and another\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf# c\n"])
def test_an_empty_file_says_it_is_empty(tmp_path, content):
    path = tmp_path / "empty.toml"
    path.write_bytes(content)
    msg = one_line_error(path)
    assert msg == f"{path}: the scenario file is empty"


def test_an_empty_parent_is_named(tmp_path):
    (tmp_path / "parent.toml").write_text("# nothing yet\n")
    path = tmp_path / "leaf.toml"
    path.write_text('extends = "parent.toml"\n')
    msg = one_line_error(path)
    assert msg == f"{(tmp_path / 'parent.toml').resolve()}: the scenario file is empty"


def test_other_decoding_problems_keep_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[run]\nname = "caf\u00e9"\n'.encode("latin-1"))
    msg = one_line_error(path)
    assert str(path) in msg and "not a UTF-8 text file" in msg
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xef\xbb\xbf[run\nname = 1\n")
    msg = one_line_error(path)
    assert str(path) in msg and "malformed TOML" in msg and "\ufeff" not in msg


# --- absurd values that would overflow later ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "override,shown",
    [
        ("run.years=1e9", "at most 100,000,000"),
        (f"justice.recall_custody_months={MAX_MONTHS + 1}", "32-bit"),
        ("population.start_sentence_median_months=1e300", "32-bit"),
        (f"population.propensity_sigma={MAX_LOG_SD * 2}", f"at most {MAX_LOG_SD}"),
        ("population.parent_age_at_first_child_mean_years=1e300", f"at most {MAX_AGE_YEARS}"),
        ("demography.partner_age_gap_mean_years=-1e300", f"between -{MAX_AGE_YEARS}"),
        ("offending.age_curve_ages=[10, 12, 14, 16, 18, 21, 25, 30, 35, 40, 50, 60, 70, 1e9]", f"at most {MAX_AGE_YEARS}"),
        ("population.offender_age_mean_years=15", "family.age_adult"),
        ("population.offender_age_sd_years=1e-300", "at least 0.01"),
        ("justice.release_fraction=1", "licence"),
        ("justice.licence_min_sentence_months=1e6", "licence"),
    ],
)
def test_values_that_would_overflow_are_refused_at_load(override, shown):
    msg = one_line_error(BASELINE, [override])
    key = override.split("=")[0]
    assert shown in msg and (key in msg or "licence_count" in msg)


def test_the_magnitude_limits_leave_room_in_32_bit_months():
    assert MAX_YEARS * 12 <= MAX_MONTHS < np.iinfo(np.int32).max - 1_000_000  # the "long ago" markers stay apart


# --- the command line prints these in one line and exits 2 ----------------------------------------------------------

@pytest.mark.parametrize(
    "body,args,shown",
    [
        (b"", [], "the scenario file is empty"),
        (b"# nothing but a comment\n", [], "the scenario file is empty"),
        (None, ["--set", "population.custody_count=1900.5"], "population.custody_count = 1900.5: must be a whole number"),
        (None, ["--set", "offending.offence_type_share=[0.5, 0.9, 0.3, 0.3]"], "must sum to 1 (they sum to 2)"),
        (None, ["--set", "run.years=1e9"], "run.years"),
    ],
)
def test_command_line_reports_them_in_one_line(tmp_path, capsys, body, args, shown):
    from sim.cli import EXIT_USAGE, main

    path = BASELINE
    if body is not None:
        path = tmp_path / "scenario.toml"
        path.write_bytes(body)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), *args]) == EXIT_USAGE
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim: error: ") and shown in lines[0], captured.err
    assert captured.out == "" and not out.exists()
