"""The inputs issue 12 found slipping through, each now refused before any work in one line with exit 2, and the
resource limits the user can move with --max-memory / --max-hours."""

from __future__ import annotations

import pytest

from conftest import BASELINE, ROOT
from test_fuzz import assert_refused
from test_outdir import run_cli

MULTI = ROOT / "scenarios" / "multi_agency.toml"


@pytest.mark.parametrize("argv,says", [
    (["run", BASELINE, "--set", "population.custody_count=1000000000"], ["memory", "agents", "--max-memory"]),
    (["run", BASELINE, "--set", "population.total_population=100000000000"], ["memory", "--max-memory"]),
    (["run", BASELINE, "--set", "run.years=1e9"], ["run.years"]),
    (["run", BASELINE, "--set", "run.years=1e6"], ["memory", "run.years"]),
    (["run", BASELINE, "--set", "population.scale_general=1e-9"], ["memory", "population.scale_general"]),
    (["run", BASELINE, "--reps", "4", "--set", "population.scale_general=1e-9"], ["memory"]),
    (["compare", BASELINE, MULTI, "--set", "population.scale_general=1e-9"], ["memory"]),
    (["run", BASELINE, "--set", "population.custody_count=1900.5"], ["population.custody_count", "1900.5", "whole number"]),
    (["run", BASELINE, "--set", "offending.offence_type_share=[0.5, 0.5, 0.5, 0.5]"], ["offence_type_share", "sum to 1"]),
    (["run", BASELINE, "--reps", "-3"], ["--reps", ">= 1"]),
    (["run", BASELINE, "--reps", "0"], ["--reps", ">= 1"]),
    (["run", BASELINE, "--max-memory", "0.05"], ["--max-memory", "memory"]),
    (["run", BASELINE, "--max-hours", "0.00001"], ["--max-hours"]),
])
def test_issue_12_inputs_are_refused_before_work(tmp_path, argv, says):
    line = assert_refused([*map(str, argv), "--out", "out"], tmp_path)
    for name in says:
        assert name in line, (name, line)


def test_a_bom_is_fine_and_an_empty_file_says_so(tmp_path, capsys):
    empty = tmp_path / "empty.toml"
    empty.write_text("\n# nothing\n")
    assert_refused(["run", str(empty), "--out", "out"], tmp_path)
    code, _, err = run_cli(capsys, "run", empty, "--out", tmp_path / "out")
    assert "empty" in err
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + f'extends = "{BASELINE}"\n[run]\nyears = 0.25\n'.encode())
    code, out, err = run_cli(capsys, "run", bom, "--out", tmp_path / "bom_run", "--set", "population.scale_general=300",
                             "--set", "population.scale_cjs_families=10")
    assert code == 0, err
    assert (tmp_path / "bom_run" / "manifest.json").exists()


def test_raising_the_memory_limit_lets_a_large_run_past_the_check(tmp_path, capsys):
    """The refusal is the estimate against a limit, not a fixed rule: --max-memory moves it (the run itself is
    then stopped by its own too-short --max-hours, so nothing heavy starts)."""
    big = ["run", BASELINE, "--set", "population.scale_general=0.5", "--out", tmp_path / "out"]
    code, _, err = run_cli(capsys, *big, "--max-memory", "1")
    assert code == 2 and "memory" in err
    code, _, err = run_cli(capsys, *big, "--max-memory", "10000", "--max-hours", "0.0001")
    assert code == 2 and "memory" not in err.split(";")[0] and "--max-hours" in err
