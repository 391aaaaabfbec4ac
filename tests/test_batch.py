"""Monte Carlo batches (``sim.runs.batch``, ``sim run --reps``): bit-identical results whatever the executor,
interrupt and resume, failed replicates, refusing the wrong folder, atomic parts, summary statistics, Python API.

Populations are small (``SMALL``) and runs short (1-2 years), so the whole file takes well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim.runs.batch as batch
from conftest import BASELINE, ROOT, SMALL
from sim.runs.batch import (BatchError, InlineExecutor, ReplicatesFailed, executor_for, replicate_result, replicate_seeds, run_batch,
                            summary_statistics)
from sim.state.scenario import ScenarioError, load_scenario, realize

SMALL_SET = [arg for o in SMALL for arg in ("--set", o)]
MULTI_AGENCY = ROOT / "scenarios" / "multi_agency.toml"


# --- helpers ---------------------------------------------------------------------------------------------------


def sim_argv(*args) -> list[str]:
    return [sys.executable, "-m", "sim", *map(str, args)]


def sim_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def sim(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(sim_argv(*args), cwd=ROOT, env=sim_env(), capture_output=True, text=True, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, *names) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sim: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_timeseries(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "timeseries.parquet").sort_values(["replicate", "month"], ignore_index=True)


def read_replicates(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "replicates.parquet").sort_values("replicate", ignore_index=True)


def read_manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def assert_frames_identical(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Bit for bit: same columns, dtypes and values (floats compared exactly, NaN equal to NaN)."""
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


def assert_folder_readable(out: Path) -> None:
    """What a reader finds at any moment: only complete files under their real names; hidden temporaries aside,
    every dataset folder reads in one call and the manifest is valid JSON."""
    for sub in ("timeseries.parquet", "replicates.parquet"):
        folder = out / sub
        if not folder.exists():
            continue
        before = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        if not before:
            continue
        frame = pd.read_parquet(folder)
        after = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        assert all(n.startswith("part-") and n.endswith(".parquet") and len(n) == len("part-000000.parquet") for n in after), after
        # parts only ever appear (a writer may add one while we read)
        assert {int(n[5:11]) for n in before} <= set(frame["replicate"]) <= {int(n[5:11]) for n in after}
    top = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert top <= {"timeseries.parquet", "replicates.parquet", "summary.csv", "manifest.json"}, top
    if (out / "manifest.json").exists():
        read_manifest(out)


@pytest.fixture(scope="module")
def uncertain_scenario(tmp_path_factory) -> Path:
    """The baseline with two uncertain values (one a money amount), so replicates also differ in parameters."""
    path = tmp_path_factory.mktemp("uncertain") / "uncertain.toml"
    path.write_text(
        f'extends = "{BASELINE}"\n'
        "[justice]\n"
        'p_recall_per_month = { dist = "beta", mean = 0.02, sd = 0.005 }\n'
        "[costs]\n"
        'prison_cost_per_month = { dist = "gamma", mean = 3000, sd = 400, price_year = "2012-13" }\n'
    )
    return path


@pytest.fixture(scope="module")
def dask_cluster():
    """A real local Dask cluster of two worker processes, closed after the module."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0")
    try:
        yield cluster
    finally:
        cluster.close()


# --- 1. same results whatever the executor ------------------------------------------------------------------------


def test_executor_for_gives_inline_or_processes():
    with executor_for(workers=1) as ex:
        assert isinstance(ex, InlineExecutor)
    with executor_for(workers=2) as ex:
        assert isinstance(ex, ProcessPoolExecutor)


def test_inline_processes_and_dask_cluster_are_bit_identical(uncertain_scenario, dask_cluster, tmp_path):
    kw = dict(reps=4, seed=11, overrides=(*SMALL, "run.years=2"))
    runs = {
        "inline": run_batch(uncertain_scenario, workers=1, out=tmp_path / "inline", **kw),
        "processes": run_batch(uncertain_scenario, workers=2, out=tmp_path / "processes", **kw),
        "dask": run_batch(uncertain_scenario, scheduler=dask_cluster.scheduler_address, out=tmp_path / "dask", **kw),
    }
    ref = runs["inline"].replicates
    assert ref["replicate"].tolist() == [0, 1, 2, 3]
    assert ref["seed"].tolist() == replicate_seeds(11, 4)
    assert {"parameter:justice.p_recall_per_month", "parameter:costs.prison_cost_per_month"} <= set(ref.columns)
    assert ref["parameter:justice.p_recall_per_month"].nunique() == 4  # the replicates really differ
    assert ref["offences_per_year"].nunique() > 1
    ref_ts = read_timeseries(tmp_path / "inline")
    assert len(ref_ts) == 4 * 24
    for name, result in runs.items():
        assert result.failed == {}, (name, result.failed)
        assert_frames_identical(result.replicates, ref)
        assert_frames_identical(read_replicates(tmp_path / name), ref)
        assert_frames_identical(result.summary, runs["inline"].summary)
        assert_frames_identical(read_timeseries(tmp_path / name), ref_ts)
        assert read_manifest(tmp_path / name)["completed"] == [0, 1, 2, 3]
    # the Dask batch really ran on the cluster (its scheduler lives in this process and counts finished tasks)
    assert dask_cluster.scheduler.task_prefixes["replicate_result"].state_counts["memory"] >= 4
    # without an output folder (rows kept in memory) the table is the same too
    assert_frames_identical(run_batch(uncertain_scenario, workers=1, **kw).replicates, ref)


# --- 2a. kill and resume through the command line (and 4. the folder is never half-written) ------------------------


def test_killed_batch_resumes_to_the_uninterrupted_result(tmp_path):
    reps, seed = 20, 3
    args = ["run", BASELINE, "--reps", reps, "--seed", seed, "--workers", 1, *SMALL_SET, "--set", "run.years=1", "--precision", "0.05"]
    out = tmp_path / "killed"
    proc = subprocess.Popen(sim_argv(*args, "--out", out), cwd=ROOT, env=sim_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts: list[Path] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists():
                assert_folder_readable(out)  # readable while it is being written
            parts = sorted((out / "replicates.parquet").glob("part-*.parquet")) if out.exists() else []
            if len(parts) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the batch finished (or failed) before it could be killed: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # 4. after the kill: only complete parts under real names, every folder readable, the manifest valid
    assert_folder_readable(out)
    done = sorted(int(p.name[5:11]) for p in (out / "replicates.parquet").glob("part-*.parquet"))
    assert 2 <= len(done) < reps
    for p in (out / "replicates.parquet").glob("part-*.parquet"):
        pd.read_parquet(p)
    assert not (out / "summary.csv").exists()  # written only when a batch ends
    manifest = read_manifest(out)
    assert set(manifest["completed"]) <= set(done) and manifest["replicates"] == reps

    resumed = sim(*args, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr

    ref_out = tmp_path / "uninterrupted"
    ref = run_batch(BASELINE, reps, seed, workers=1, out=ref_out, overrides=(*SMALL, "run.years=1"), precision=0.05)
    assert ref.failed == {}
    got = read_replicates(out)
    assert got["replicate"].tolist() == list(range(reps))  # none duplicated, none missing
    assert got["seed"].tolist() == replicate_seeds(seed, reps)
    assert_frames_identical(got, read_replicates(ref_out))
    assert_frames_identical(read_timeseries(out), read_timeseries(ref_out))
    assert read_timeseries(out).groupby("replicate").size().eq(12).all()
    manifest = read_manifest(out)
    assert manifest["completed"] == list(range(reps)) and manifest["failed"] == []
    assert manifest["replicate_seeds"] == replicate_seeds(seed, reps)
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), pd.read_csv(ref_out / "summary.csv"), check_exact=True)
    assert "replicates_for_0.05_relative_precision" in pd.read_csv(out / "summary.csv").columns
    assert_folder_readable(out)


def test_write_that_dies_midway_leaves_no_visible_part(tmp_path, monkeypatch):
    """A crash while a part is being written (here: the writer writes garbage, then fails) leaves only a hidden
    temporary; readers and resume never see a half-written part."""
    params = load_scenario(BASELINE, [*SMALL, "run.years=1"])
    out = tmp_path / "out"
    real_to_parquet = pd.DataFrame.to_parquet

    def dying_to_parquet(self, path, *a, **kw):
        path = Path(path)
        if path.parent.name == "replicates.parquet" and "part-000001" in path.name:  # replicate 1's summary row
            Path(path).write_bytes(b"PAR1 half a file")
            raise OSError("disk full")
        return real_to_parquet(self, path, *a, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", dying_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        run_batch(params, 3, 8, workers=1, out=out)
    monkeypatch.undo()
    assert_folder_readable(out)
    assert "part-000001.parquet" not in {p.name for p in (out / "replicates.parquet").iterdir()}
    assert any(p.name.startswith(".part-000001") for p in (out / "replicates.parquet").iterdir())  # the temporary, hidden
    result = run_batch(params, 3, 8, workers=1, out=out, resume=True)
    ref = run_batch(params, 3, 8, workers=1)
    assert_frames_identical(result.replicates, ref.replicates)
    assert_frames_identical(read_replicates(out), ref.replicates)


# --- 2b. a replicate that raises -----------------------------------------------------------------------------------


def test_failing_replicate_is_reported_and_resume_completes_it(tmp_path, monkeypatch):
    params = load_scenario(BASELINE, [*SMALL, "run.years=1"])
    reps, seed, bad = 4, 5, 2
    seeds = replicate_seeds(seed, reps)
    original = batch.replicate_result

    def flaky(p, s, k):
        if k == bad:
            raise RuntimeError(f"boom in replicate {k}")
        return original(p, s, k)

    monkeypatch.setattr(batch, "replicate_result", flaky)
    in_memory = run_batch(params, reps, seed, workers=1, allow_failures=True)
    assert list(in_memory.failed) == [bad] and "boom in replicate 2" in in_memory.failed[bad]
    assert in_memory.replicates["replicate"].tolist() == [0, 1, 3]

    out = tmp_path / "out"
    with pytest.raises(ReplicatesFailed) as raised:  # the Python API fails loudly unless told otherwise
        run_batch(params, reps, seed, workers=1, out=out)
    assert isinstance(raised.value, BatchError)
    assert "1 of 4 replicates failed (2)" in str(raised.value) and "boom in replicate 2" in str(raised.value)
    assert f"seed {seeds[bad]}" in str(raised.value) and str(out) in str(raised.value)
    assert list(raised.value.failed) == [bad] and raised.value.finished == [0, 1, 3]
    result = raised.value.result
    assert list(result.failed) == [bad]
    assert "RuntimeError" in result.failed[bad] and "boom in replicate 2" in result.failed[bad]
    assert result.replicates["replicate"].tolist() == [0, 1, 3]
    assert result.replicates["seed"].tolist() == [seeds[0], seeds[1], seeds[3]]
    assert result.summary.set_index("metric").loc["offences_per_year", "n"] == 3
    manifest = read_manifest(out)
    assert manifest["completed"] == [0, 1, 3]
    assert [(f["replicate"], f["seed"]) for f in manifest["failed"]] == [(bad, seeds[bad])]
    assert "boom in replicate 2" in manifest["failed"][0]["error"]
    assert not (out / "replicates.parquet" / f"part-{bad:06d}.parquet").exists()
    assert not (out / "timeseries.parquet" / f"part-{bad:06d}.parquet").exists()
    monkeypatch.undo()

    ran = []

    def spy(p, s, k):
        ran.append(k)
        return original(p, s, k)

    monkeypatch.setattr(batch, "replicate_result", spy)
    resumed = run_batch(params, reps, seed, workers=1, out=out, resume=True)
    monkeypatch.undo()
    assert ran == [bad]  # resume runs only what is missing
    assert resumed.failed == {}
    ref_out = tmp_path / "ref"
    ref = run_batch(params, reps, seed, workers=1, out=ref_out)
    assert_frames_identical(resumed.replicates, ref.replicates)
    assert_frames_identical(resumed.summary, ref.summary)
    assert_frames_identical(read_timeseries(out), read_timeseries(ref_out))
    manifest = read_manifest(out)
    assert manifest["completed"] == list(range(reps)) and manifest["failed"] == []


@pytest.fixture(scope="module")
def age_overlap_scenario(tmp_path_factory) -> Path:
    """fertile_age_min drawn uniform(30, 50): its median (40) passes the load-time check against fertile_age_max
    (45), but a quarter of replicates draw 45 or more and ``realize`` rejects them."""
    path = tmp_path_factory.mktemp("overlap") / "overlap.toml"
    path.write_text(f'extends = "{BASELINE}"\n[demography]\nfertile_age_min = {{ dist = "uniform", low = 30, high = 50 }}\n')
    return path


def failing_indices(path: Path, root: int, reps: int) -> list[int]:
    params = load_scenario(path)
    bad = []
    for k, s in enumerate(replicate_seeds(root, reps)):
        try:
            realize(params, s)
        except ScenarioError:
            bad.append(k)
    return bad


def test_realize_rejects_draws_that_break_a_cross_check(age_overlap_scenario):
    params = load_scenario(age_overlap_scenario)
    seeds = replicate_seeds(1, 40)
    bad = failing_indices(age_overlap_scenario, 1, 40)
    assert 0 < len(bad) < 40
    for k, s in enumerate(seeds):
        if k in bad:
            with pytest.raises(ScenarioError, match=f"seed {s}.*fertile_age"):
                realize(params, s)
        else:
            concrete, draws = realize(params, s)
            assert concrete.demography.fertile_age_min == draws["demography.fertile_age_min"] < 45


@pytest.fixture(scope="module")
def cli_partial_failure(age_overlap_scenario, tmp_path_factory):
    reps = 4
    root = next(r for r in range(1, 100) if 0 < len(failing_indices(age_overlap_scenario, r, reps)) < reps)
    out = tmp_path_factory.mktemp("partial") / "out"
    result = sim("run", age_overlap_scenario, "--reps", reps, "--seed", root, "--workers", 1, "--out", out, *SMALL_SET, "--set", "run.years=1")
    return result, out, root, reps, failing_indices(age_overlap_scenario, root, reps)


def test_cli_failed_replicate_exits_nonzero_and_names_its_seed(cli_partial_failure):
    result, out, root, reps, bad = cli_partial_failure
    seeds = replicate_seeds(root, reps)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for k in bad:
        assert f"seed {seeds[k]}" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "failed" in line]) == len(bad)
    manifest = read_manifest(out)
    assert [(f["replicate"], f["seed"]) for f in manifest["failed"]] == [(k, seeds[k]) for k in bad]
    good = [k for k in range(reps) if k not in bad]
    assert manifest["completed"] == good
    assert read_replicates(out)["replicate"].tolist() == good


def test_cli_rerun_hint_keeps_the_overrides(cli_partial_failure):
    result, *_ = cli_partial_failure
    hints = [line for line in result.stderr.splitlines() if "rerun it alone with" in line]
    assert hints
    for line in hints:
        assert "population.scale_general=300" in line and "run.years=1" in line, line


def test_cli_every_replicate_failing_still_names_the_seed(age_overlap_scenario, tmp_path):
    root = next(r for r in range(1, 100) if failing_indices(age_overlap_scenario, r, 1) == [0])
    seed = replicate_seeds(root, 1)[0]
    out = tmp_path / "out"
    result = sim("run", age_overlap_scenario, "--reps", 1, "--seed", root, "--workers", 1, "--out", out, *SMALL_SET, "--set", "run.years=1")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"seed {seed}" in result.stderr


# --- 3. resume checks the folder ---------------------------------------------------------------------------------


def test_resume_refuses_another_batch_and_no_resume_refuses_an_existing_one(tmp_path):
    out = tmp_path / "batch"
    base = ["run", BASELINE, "--reps", 3, "--workers", 1, *SMALL_SET, "--set", "run.years=1", "--out", out]
    first = sim(*base, "--seed", 4)
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    assert {"manifest.json", "summary.csv", "replicates.parquet/part-000002.parquet"} <= set(before)

    one_line_error(sim(*base, "--seed", 5, "--resume"), out, "seed")  # another root seed
    one_line_error(sim(*base, "--seed", 4, "--resume", "--set", "justice.p_recall_per_month=0.05"), out)  # another scenario
    other = ["run", MULTI_AGENCY, "--reps", 3, "--workers", 1, *SMALL_SET, "--set", "run.years=1", "--out", out, "--seed", 4]
    one_line_error(sim(*other, "--resume"), out)
    one_line_error(sim(*base, "--seed", 4), out, "--resume")  # no --resume into an existing batch
    assert snapshot(out) == before  # untouched by every refusal

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not a batch")
    one_line_error(sim("run", BASELINE, "--reps", 2, "--workers", 1, *SMALL_SET, "--set", "run.years=1", "--out", stranger, "--resume"), stranger)
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]

    with pytest.raises(ScenarioError, match="another scenario or root seed"):
        run_batch(BASELINE, 3, 5, workers=1, out=out, resume=True, overrides=(*SMALL, "run.years=1"))
    assert snapshot(out) == before


def test_resume_with_more_replicates_extends_the_batch(tmp_path):
    out = tmp_path / "batch"
    base = ["run", BASELINE, "--seed", 4, "--workers", 1, *SMALL_SET, "--set", "run.years=1", "--out", out]
    assert sim(*base, "--reps", 3).returncode == 0
    first = read_replicates(out)
    parts_before = {p.name: p.read_bytes() for p in (out / "replicates.parquet").glob("part-*")}
    extended = sim(*base, "--reps", 5, "--resume")
    assert extended.returncode == 0, extended.stderr
    got = read_replicates(out)
    assert got["replicate"].tolist() == [0, 1, 2, 3, 4]
    assert got["seed"].tolist() == replicate_seeds(4, 5)
    assert got["seed"].tolist()[:3] == first["seed"].tolist()  # replicate k keeps its seed
    assert_frames_identical(got.iloc[:3], first)
    for name, data in parts_before.items():  # the first three were not rerun
        assert (out / "replicates.parquet" / name).read_bytes() == data
    manifest = read_manifest(out)
    assert manifest["replicates"] == 5 and manifest["completed"] == [0, 1, 2, 3, 4]
    assert manifest["replicate_seeds"] == replicate_seeds(4, 5)
    fresh = run_batch(BASELINE, 5, 4, workers=1, out=tmp_path / "fresh", overrides=(*SMALL, "run.years=1"))
    assert_frames_identical(got, fresh.replicates)
    assert_frames_identical(read_timeseries(out), read_timeseries(tmp_path / "fresh"))
    assert len(pd.read_csv(out / "summary.csv")) == len(fresh.summary)
    assert pd.read_csv(out / "summary.csv").set_index("metric").loc["offences_per_year", "n"] == 5


# --- 5. summary statistics -----------------------------------------------------------------------------------------


def test_summary_statistics_on_a_hand_made_table():
    table = pd.DataFrame({
        "replicate": [0, 1, 2, 3],
        "seed": [11, 12, 13, 14],
        "a": [1.0, 2.0, 3.0, 4.0],
        "neg": [-2.0, -4.0, -6.0, -8.0],
        "c": [1.0, np.nan, 3.0, 5.0],
        "const": [10.0, 10.0, 10.0, 10.0],
        "zero_mean": [-1.0, 1.0, -1.0, 1.0],
        "count": [1, 2, 3, 4],
        "label": ["x", "y", "z", "w"],
    })
    s = summary_statistics(table, precision=0.1).set_index("metric")
    needed = "replicates_for_0.1_relative_precision"
    assert list(s.index) == ["a", "neg", "c", "const", "zero_mean", "count"]  # replicate, seed, text left out
    assert list(s.columns) == ["n", "mean", "sd", "mcse", "p05", "p50", "p95", needed]
    a = s.loc["a"]
    assert a["n"] == 4 and a["mean"] == pytest.approx(2.5)
    assert a["sd"] == pytest.approx(math.sqrt(5 / 3))  # ddof = 1
    assert a["mcse"] == pytest.approx(math.sqrt(5 / 3) / 2)
    assert (a["p05"], a["p50"], a["p95"]) == pytest.approx((1.15, 2.5, 3.85))  # linear interpolation
    assert a[needed] == 27  # (sd / (0.1 * 2.5))^2 = 26.67 -> 27
    assert s.loc["neg", needed] == 27 and s.loc["neg", "mean"] == pytest.approx(-5)  # |mean|
    c = s.loc["c"]
    assert c["n"] == 3 and c["mean"] == pytest.approx(3) and c["sd"] == pytest.approx(2)  # NaN dropped
    assert c["mcse"] == pytest.approx(2 / math.sqrt(3))
    assert c[needed] == 45  # (2 / 0.3)^2 = 44.4 -> 45
    assert s.loc["const", "sd"] == 0 and s.loc["const", "mcse"] == 0 and s.loc["const", needed] == 0
    assert math.isnan(s.loc["zero_mean", needed])  # no relative precision of a zero mean
    assert s.loc["count", "mean"] == pytest.approx(2.5) and s.loc["count", needed] == 27

    # the formula at another precision, against the definition mcse = precision x |mean|
    s2 = summary_statistics(table, precision=0.02).set_index("metric")
    for metric in ("a", "neg", "c", "count"):
        sd, mean = s2.loc[metric, "sd"], s2.loc[metric, "mean"]
        n_needed = s2.loc[metric, "replicates_for_0.02_relative_precision"]
        assert n_needed == math.ceil((sd / (0.02 * abs(mean))) ** 2)
        assert sd / math.sqrt(n_needed) <= 0.02 * abs(mean) < sd / math.sqrt(n_needed - 1)

    one = summary_statistics(table.iloc[:1], precision=0.1).set_index("metric").loc["a"]
    assert one["n"] == 1 and one["mean"] == 1 and one["p05"] == one["p95"] == 1
    assert math.isnan(one["sd"]) and math.isnan(one["mcse"]) and math.isnan(one[needed])
    assert "replicates_for_0.01_relative_precision" in summary_statistics(table).columns


# --- 7. Python API -------------------------------------------------------------------------------------------------


def test_run_batch_returns_a_tidy_table_with_the_replicate_seeds():
    reps, seed = 3, 9
    overrides = (*SMALL, "run.years=1")
    result = run_batch(BASELINE, reps=reps, seed=seed, workers=1, overrides=overrides)
    df = result.replicates
    assert isinstance(df, pd.DataFrame) and len(df) == reps
    assert isinstance(df.index, pd.RangeIndex)
    assert df["replicate"].tolist() == list(range(reps))
    assert df["seed"].tolist() == replicate_seeds(seed, reps)
    assert len(set(df["seed"])) == reps
    assert all(pd.api.types.is_numeric_dtype(df[c]) for c in df.columns)  # one scalar per cell
    assert {"offences_per_year", "convictions_per_year", "custody_end", "cost_pv:prisons", "cost_pv:fiscal_cashable"} <= set(df.columns)
    assert (df["offences_per_year"] > 0).all()
    assert result.failed == {} and result.out is None
    numeric = [c for c in df.columns if c not in ("replicate", "seed")]
    assert result.summary["metric"].tolist() == numeric

    # row k is replicate k run on its own with its seed (what "sim run --seed S" reproduces)
    params = load_scenario(BASELINE, overrides)
    _, row = replicate_result(params, replicate_seeds(seed, reps)[1], 1)
    assert set(row) == set(df.columns)
    for column, value in row.items():
        assert df.at[1, column] == value or (math.isnan(value) and math.isnan(df.at[1, column])), column

    # an explicit executor gives the same table
    assert_frames_identical(run_batch(params, reps, seed, executor=InlineExecutor()).replicates, df)


def test_replicate_seeds_depend_only_on_root_and_index():
    five = replicate_seeds(9, 5)
    assert replicate_seeds(9, 3) == five[:3]
    assert len(set(five)) == 5 and all(0 <= s < 2**63 for s in five)
    assert replicate_seeds(10, 5) != five
    assert replicate_seeds(9, 5) == five


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the finalizer's dropped exception
def test_a_signal_swallowed_in_a_finalizer_still_stops_the_run():
    """A signal handler runs wherever the main thread is, also inside a finalizer (``__del__``), where Python prints
    an exception and drops it: a SIGTERM that landed in a ZipFile's finalizer let a batch run to the end and exit 0.
    The stop is kept and raised again by the loop that waits for the calls."""
    from concurrent.futures import ThreadPoolExecutor

    class Finalised:
        def __del__(self):
            signal.raise_signal(signal.SIGTERM)  # the handler's exception is raised here, and dropped

    calls = {i: (time.sleep, 0.2) for i in range(20)}
    done = []
    with ThreadPoolExecutor(2) as ex, batch._signals_stop():
        Finalised()
        with pytest.raises(batch._Stop) as stop:
            batch._finish_each(ex, calls, lambda key, future: done.append(key), stall_timeout=60, window=2, cancel=True)
    assert stop.value.signal == "SIGTERM" and len(done) < 20
    assert signal.getsignal(signal.SIGTERM) is not None and not batch._STOP_REQUESTED


_MISSING_AT_START = "[m for m in ('sim.model', 'sim.runs.batch', 'sim.runs.paired', 'pandas', 'numba', 'mesa') if m not in __import__('sys').modules]"


@pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no forkserver here")
def test_local_workers_start_with_the_model_imported():
    """The forkserver imports the model once (``batch.WORKER_PRELOAD``), so a worker it forks has it before its first
    task: ``eval`` (a builtin, whose unpickling imports nothing) finds every module there, and a replicate gives what
    it gives in this process."""
    with executor_for(workers=2) as pool:
        assert pool.submit(eval, _MISSING_AT_START).result() == []
        params = load_scenario(BASELINE, [*SMALL, "run.years=1"])
        seed = replicate_seeds(3, 1)[0]
        there = pool.submit(replicate_result, params, seed, 0).result()
    here = replicate_result(params, seed, 0)
    pd.testing.assert_frame_equal(there[0], here[0])
    pd.testing.assert_series_equal(pd.Series(there[1]), pd.Series(here[1]))  # (NaN where a rate has no cohort)


def test_workers_are_spawned_afresh_once_the_sources_change(monkeypatch):
    """After the package's sources change on disk in a running session, the forkserver's preloaded modules are stale:
    local workers are then spawned, importing the sources as they are now."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR", ""))  # (put back afterwards: it moves it)
    monkeypatch.setattr(batch, "_preloaded_sources", None)
    monkeypatch.setattr(batch, "sources_digest", lambda: "before")
    first = batch.process_context().get_start_method()
    again = batch.process_context().get_start_method()
    monkeypatch.setattr(batch, "sources_digest", lambda: "after an edit")
    assert batch.process_context().get_start_method() == "spawn"
    if "forkserver" in __import__("multiprocessing").get_all_start_methods():
        assert first == again == "forkserver"


def test_workers_get_numba_s_cache_folder_of_the_sources_as_they_are(monkeypatch, tmp_path):
    """Workers inherit NUMBA_CACHE_DIR: after an edit it names the new sources' folder, not the one ``sim`` chose on
    import (a kernel that inlines an edited function would otherwise be read from the old folder); a folder the user
    chose is left alone."""
    from sim.state.sources import numba_cache_dir

    monkeypatch.setattr(batch, "_preloaded_sources", None)
    monkeypatch.setattr(batch, "sources_digest", lambda: "b" * 64)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(numba_cache_dir("a" * 64)))
    batch.process_context()
    assert os.environ["NUMBA_CACHE_DIR"] == str(numba_cache_dir("b" * 64))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    batch.process_context()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_the_suite_compiles_the_kernels_once_while_its_processes_start_and_before_any_test(monkeypatch, tmp_path, capsys):
    """tests/conftest.py's ``pytest_configure``: in xdist's controller it starts compiling once (in a process of its
    own) into the sources' own numba folder, and the controller waits for it when the first test process has
    collected the tests (at the latest, at the session's end), then marks it done; an xdist worker, a suite in one
    process, a listing, a folder the user chose (nothing written there) and a folder already marked are left alone;
    a failure warns (on stderr at the session's end), no mark. The compiling runs every shipped scenario from both
    kinds of start, and works."""
    import types

    import conftest
    from sim.runs import paired
    from sim.state import sources

    folder = tmp_path / "numba-sources"
    monkeypatch.setattr(sources, "numba_cache_dir", lambda digest: folder)
    started, compiled, warnings = [], [], []

    def compiling(problem=None):
        started.append(1)
        return lambda: compiled.append(1) or problem

    monkeypatch.setattr(conftest, "_compile_kernels_apart", compiling)

    def configure(numprocesses=2, worker=False, collectonly=False):
        config = types.SimpleNamespace(option=types.SimpleNamespace(numprocesses=numprocesses, collectonly=collectonly),
                                       issue_config_time_warning=lambda warning, stacklevel: warnings.append(warning),
                                       stash=pytest.Stash())
        if worker:
            config.workerinput = {}
        conftest.pytest_configure(config)
        return config

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    configure()
    assert started == [] and not folder.exists()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(folder))
    configure(worker=True)
    configure(numprocesses=None)
    configure(numprocesses=0)
    configure(collectonly=True)
    assert started == [] and not folder.exists()
    monkeypatch.setattr(conftest, "_compile_kernels_apart", lambda: compiling("ValueError: a broken scenario"))
    config = configure()
    assert started == [1] and compiled == [] and warnings == []  # started, not waited for
    conftest.pytest_xdist_node_collection_finished(types.SimpleNamespace(config=config), [])
    assert compiled == [1] and not (folder / "compiled-by-tests").exists()
    assert len(warnings) == 1 and "a broken scenario" in str(warnings[0])
    monkeypatch.setattr(conftest, "_compile_kernels_apart", compiling)
    config = configure()
    assert not (folder / "compiled-by-tests").exists()
    for _ in range(2):  # each test process's collection finished, then the session's end: one wait
        conftest.pytest_xdist_node_collection_finished(types.SimpleNamespace(config=config), [])
    conftest.pytest_unconfigure(config)
    assert compiled == [1, 1] and (folder / "compiled-by-tests").exists() and len(warnings) == 1
    configure()  # a folder marked: nothing started
    assert started == [1, 1]
    (folder / "compiled-by-tests").unlink()
    config = configure()  # no test process finished collecting (a collection error, say): the session's end waits
    conftest.pytest_unconfigure(config)
    assert started == compiled == [1, 1, 1] and (folder / "compiled-by-tests").exists()
    (folder / "compiled-by-tests").unlink()
    monkeypatch.setattr(conftest, "_compile_kernels_apart", lambda: compiling("ValueError: broken again"))
    capsys.readouterr()
    conftest.pytest_unconfigure(configure())  # a failure found then: on stderr (the warnings' summary is written)
    assert "broken again" in capsys.readouterr().err and len(warnings) == 1
    assert not (folder / "compiled-by-tests").exists()
    # (a hook of xdist's: optional, so that a suite without xdist still runs)
    assert conftest.pytest_xdist_node_collection_finished.pytest_impl.get("optionalhook") is True

    runs = []
    monkeypatch.setattr(paired, "run_arms", lambda base, arms, seed: runs.append([base, *arms]))
    conftest.compile_kernels()
    assert [len(arms) for arms in runs] == [len(conftest.SCENARIOS)] * 2
    assert [arms[0].population.history_years for arms in runs] == [2, 0]  # a simulated start, then a drawn one
    monkeypatch.undo()
    assert conftest._compile_kernels_apart()() is None  # for real, in a process of its own (the kernels already cached)
