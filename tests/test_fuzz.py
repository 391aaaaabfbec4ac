"""Fuzzing the command line (issue 12, point 9): generated broken scenario files and argument lists go through the
CLI entry point in-process. Each must end with exit code 2 and one line ``sim: error: ...``, no traceback, and
nothing written. The generators only make inputs that are broken by construction (a probability outside [0, 1],
a fractional head count, a key that does not exist, malformed TOML, ...), so there is no accepted case to document.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BASELINE, ROOT
from sim.cli import main
from sim.state.params import COUNT, NONNEG, POS, POSINT, PROB, SECTIONS

#: hypothesis settings: 200+ examples each, the same examples on every run (CI must not be flaky)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def keys_checked_as(*checks: str) -> list[tuple[str, str]]:
    return [(section, f.name) for section, cls in SECTIONS.items() for f in fields(cls) if f.metadata["check"] in checks]


PROBABILITIES = keys_checked_as(PROB)
WHOLE_NUMBERS = keys_checked_as(COUNT, POSINT)
NON_NEGATIVE = keys_checked_as(NONNEG, POS, COUNT, POSINT)
NUMERIC = keys_checked_as(PROB, NONNEG, POS, COUNT, POSINT)
ALL_KEYS = {(section, f.name) for section, cls in SECTIONS.items() for f in fields(cls)}

names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def toml_number(x: float) -> str:
    return repr(float(x))


@st.composite
def broken_value(draw) -> tuple[str, str]:
    """(section, 'key = value') for one value that its key does not allow."""
    kind = draw(st.sampled_from(["probability", "fraction", "negative", "type", "distribution", "unknown key"]))
    if kind == "probability":
        section, key = draw(st.sampled_from(PROBABILITIES))
        value = draw(st.one_of(finite.filter(lambda v: v < 0 or v > 1), st.sampled_from([float("nan"), float("inf")])))
        text = {float("inf"): "inf"}.get(value, "nan" if value != value else toml_number(value))
        return section, f"{key} = {text}"
    if kind == "fraction":
        section, key = draw(st.sampled_from(WHOLE_NUMBERS))
        value = draw(st.floats(min_value=0.01, max_value=1e6).filter(lambda v: not float(v).is_integer()))
        return section, f"{key} = {toml_number(value)}"
    if kind == "negative":
        section, key = draw(st.sampled_from(NON_NEGATIVE))
        value = draw(st.floats(max_value=-1e-6, min_value=-1e12))
        return section, f"{key} = {toml_number(value)}"
    if kind == "type":
        section, key = draw(st.sampled_from(NUMERIC))
        value = draw(st.sampled_from(['"high"', "true", "[]", "[1, 2]", '{ unit = "x" }', "1979-05-27", '""']))
        return section, f"{key} = {value}"
    if kind == "distribution":
        section, key = draw(st.sampled_from(PROBABILITIES))
        value = draw(st.sampled_from([
            '{ dist = "normal", mean = 0.5, sd = 0.5 }',  # reaches below 0 and above 1
            '{ dist = "beta", mean = 0.5, sd = 0 }',
            '{ dist = "beta", mean = 1.5, sd = 0.1 }',
            '{ dist = "uniform", low = 0.6, high = 0.2 }',
            '{ dist = "triangular", low = 0.1, mode = 0.9, high = 0.5 }',
            '{ dist = "cauchy", mean = 0.5, sd = 0.1 }',
            '{ dist = "beta", mean = 0.5 }',
            '{ dist = "beta", mean = 0.5, sd = 0.1, p_no_effect = 0.3 }',  # a point mass needs both keys
            '{ dist = "beta", mean = 0.5, sd = 0.1, p_no_effect = 1.0, no_effect_at = 0.5 }',
            '{ dist = "beta", mean = 0.5, sd = 0.1, p_no_effect = 0.3, no_effect_at = 1.5 }',  # the point outside 0-1
        ]))
        return section, f"{key} = {value}"
    section = draw(st.sampled_from(sorted(SECTIONS)))
    key = draw(names.filter(lambda k: (section, k) not in ALL_KEYS))
    return section, f"{key} = 1"


@st.composite
def broken_file(draw) -> bytes:
    """The bytes of a scenario file that must be refused."""
    kind = draw(st.sampled_from(["value", "value", "value", "section", "syntax", "binary", "empty", "extends", "shares"]))
    head = f'extends = "{BASELINE}"\n'
    if kind == "value":
        section, line = draw(broken_value())
        return f"{head}[{section}]\n{line}\n".encode()
    if kind == "section":
        section = draw(names.filter(lambda s: s not in SECTIONS and s not in ("extends", "sweep", "calibration")))
        return f"{head}[{section}]\nx = 1\n".encode()
    if kind == "syntax":
        junk = draw(st.text(alphabet=" =[]{}\"'#,.abc123\n", max_size=30))
        return f"{head}[justice\n{junk}".encode()  # an unclosed table header is never valid TOML
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=40).map(lambda b: b"\xff\xfe" + b))  # never UTF-8
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"   \n\t\n", b"# only a comment\n", b"\xef\xbb\xbf"]))
    if kind == "extends":
        target = draw(st.sampled_from(['"no_such_parent.toml"', '"scenario.toml"', "3", "[]"]))  # missing, itself, not text
        return f"extends = {target}\n".encode()
    share = draw(st.lists(st.floats(min_value=0.05, max_value=0.9), min_size=4, max_size=4).filter(lambda v: abs(sum(v) - 1) > 1e-3))
    return f"{head}[offending]\noffence_type_share = [{', '.join(map(toml_number, share))}]\n".encode()


@st.composite
def broken_arguments(draw) -> list[str]:
    """An argument list (scenario file relative to the repository) with one thing wrong."""
    command = draw(st.sampled_from(["run", "compare", "sweep"]))
    scenarios = {"run": [str(BASELINE)], "compare": [str(BASELINE), str(ROOT / "scenarios" / "multi_agency.toml")],
                 "sweep": [str(ROOT / "scenarios" / "sweep_intensity.toml")]}[command]
    bad = draw(st.sampled_from([
        ["--reps", draw(st.sampled_from(["0", "-3", "two", "1.5", ""]))],
        ["--seed", draw(st.sampled_from(["-1", "x", "0.5"]))],
        ["--years", draw(st.sampled_from(["0", "-2", "nan", "inf", "ten"]))],
        ["--workers", draw(st.sampled_from(["0", "-1", "many"]))],
        ["--set", draw(st.sampled_from(["justice", "justice.p_recall_per_month", "=3", "nosuch.key=1", "justice.nosuch=1",
                                         "justice.p_recall_per_month=2", "population.custody_count=12.5"]))],
        ["--" + draw(names)],  # an option that does not exist
        ["--scheduler", draw(st.sampled_from(["http://127.0.0.1:8786", "tcp://127.0.0.1:0", "tcp://a b:1", "tcp://[::1",
                                               "inproc://x", "tcp://127.0.0.1:8786/path", ""]))],
        ["--out", draw(st.sampled_from([".", "..", "scenario.toml/out"]))],
    ]))
    if command == "run" and draw(st.booleans()):
        scenarios = [draw(st.sampled_from(["missing.toml", "."]))]  # no such scenario file / a folder
        bad = []
    return [command, *scenarios, *bad]


class WorkStarted(Exception):
    """Raised in place of any simulation: a refused input must never get that far."""


def no_work(*args, **kwargs):
    raise WorkStarted("the input was accepted and a simulation started")


def assert_refused(argv: list[str], folder: Path) -> str:
    """``main(argv)`` in ``folder``: exit 2, one line on stderr, nothing on stdout, nothing new in ``folder``, and
    no simulation started (every way into one raises ``WorkStarted`` here, so a wrong acceptance fails at once)."""
    before = sorted(os.listdir(folder))
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.ExitStack() as stack:
            for target in ("sim.model.ReoffendingModel.__init__", "sim.runs.paired.run_all", "sim.runs.batch.run_batch"):
                stack.enter_context(mock.patch(target, no_work))
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own exits
                code = exc.code
    finally:
        os.chdir(cwd)
    lines = err.getvalue().splitlines()
    assert code == 2, (argv, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith("sim: error: "), (argv, err.getvalue())
    assert out.getvalue() == "", argv
    assert sorted(os.listdir(folder)) == before, argv
    return lines[0]


@FUZZ
@given(content=broken_file(), command=st.sampled_from(["run", "batch", "compare"]))
def test_broken_scenario_files_are_refused_in_one_line(content, command):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "scenario.toml").write_bytes(content)
        argv = {"run": ["run", "scenario.toml"], "batch": ["run", "scenario.toml", "--reps", "2"],
                "compare": ["compare", str(BASELINE), "scenario.toml"]}[command]
        assert_refused([*argv, "--out", "out"], folder)


@FUZZ
@given(argv=broken_arguments())
def test_broken_argument_lists_are_refused_in_one_line(argv):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "scenario.toml").write_text(f'extends = "{BASELINE}"\n')
        if "--out" not in argv:
            argv = [*argv, "--out", "out"]
        assert_refused(argv, folder)
