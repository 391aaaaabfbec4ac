"""Nothing lost, nothing hangs (issue 12): a batch resumes only from parts that are as recorded, stops with a
message instead of hanging when nothing finishes or the pool breaks, stops within seconds on SIGINT or SIGTERM
keeping what finished, leaves no process behind when killed, and works from a plain script.

Populations are small (``SMALL``) and runs one year long; the process tests start real ``sim`` processes in their
own session and look for leftovers in /proc.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Executor, Future
from pathlib import Path

import pandas as pd
import pytest

import sim.runs.batch as batch
from conftest import BASELINE, ROOT, SMALL
from test_batch import read_manifest, read_replicates, read_timeseries
from sim.runs.batch import (BatchBroken, BatchError, BatchInterrupted, BatchStalled, ReplicatesFailed, ranges, replicate_result,
                            replicate_seeds, run_batch)
from sim.runs.paired import run_all
from sim.state.scenario import load_scenario

ONE_YEAR = (*SMALL, "run.years=1")
SET_ONE_YEAR = [arg for o in ONE_YEAR for arg in ("--set", o)]
REPS, SEED = 10, 21  # the batch that the resume tests damage

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="looks at processes and open files in /proc")


# --- helpers ---------------------------------------------------------------------------------------------------


def part(out: Path, dataset: str, k: int) -> Path:
    return out / f"{dataset}.parquet" / f"part-{k:06d}.parquet"


def assert_same_batch(out: Path, ref: Path) -> None:
    """Frame for frame, bit for bit, what an uninterrupted run wrote; every dataset folder reads in one call."""
    pd.testing.assert_frame_equal(read_timeseries(out), read_timeseries(ref), check_exact=True)
    pd.testing.assert_frame_equal(read_replicates(out), read_replicates(ref), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), pd.read_csv(ref / "summary.csv"), check_exact=True)
    got, want = read_manifest(out), read_manifest(ref)
    assert got["completed"] == want["completed"] and got["failed"] == [] and got["parts"] == want["parts"]


def assert_parts_as_recorded(out: Path) -> list[int]:
    """Every part file is recorded in the manifest with its rows and checksum, and vice versa; returns them."""
    manifest = read_manifest(out)
    for dataset in ("timeseries", "replicates"):
        on_disk = sorted(int(p.name[5:11]) for p in (out / f"{dataset}.parquet").glob("part-*.parquet"))
        assert on_disk == sorted(map(int, manifest["parts"])), dataset
        for k in on_disk:
            record = manifest["parts"][str(k)][dataset]
            assert record["sha256"] == hashlib.sha256(part(out, dataset, k).read_bytes()).hexdigest()
            assert record["rows"] == len(pd.read_parquet(part(out, dataset, k)))
    assert manifest["completed"] == sorted(map(int, manifest["parts"]))
    return manifest["completed"]


def sim_popen(*args) -> subprocess.Popen:
    """``python -m sim ARGS`` in its own session (so its process group holds it and everything it starts)."""
    return subprocess.Popen([sys.executable, "-m", "sim", *map(str, args)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before the test could act: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the batch to start")
        time.sleep(0.02)


def group_processes(pgid: int) -> list[str]:
    """Processes still running in a process group (zombies aside: they hold nothing but an entry in the table)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                found.append(f"{d.name} {state} {cmd[:120]}")
    return found


def assert_group_gone(pgid: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while (left := group_processes(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        os.killpg(pgid, signal.SIGKILL)
    assert not left, left


def parts_written(out: Path, n: int = 1):
    return lambda: len(list((out / "replicates.parquet").glob("part-*.parquet"))) >= n if (out / "replicates.parquet").exists() else False


def pool_workers_started(pgid: int, n: int = 2):
    """At least ``n`` processes of the group run a forkserver child (a pool worker) besides the forkserver."""
    return lambda: sum("forkserver" in p for p in group_processes(pgid)) >= n + 1


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted batch of REPS replicates, written to a folder."""
    out = tmp_path_factory.mktemp("reference") / "batch"
    run_batch(BASELINE, REPS, SEED, workers=1, out=out, overrides=ONE_YEAR)
    return out


@pytest.fixture
def spy(monkeypatch) -> list[int]:
    """The replicates that run in this process from now on."""
    ran: list[int] = []
    original = batch.replicate_result

    def spying(p, s, k):
        ran.append(k)
        return original(p, s, k)

    monkeypatch.setattr(batch, "replicate_result", spying)
    return ran


# --- 2. resume verifies what it keeps ------------------------------------------------------------------------------


def test_manifest_records_every_part_with_rows_and_checksum(reference):
    assert assert_parts_as_recorded(reference) == list(range(REPS))
    record = read_manifest(reference)["parts"]["3"]
    assert record["timeseries"]["rows"] == 12 and record["replicates"]["rows"] == 1
    assert not [p for p in reference.rglob(".*")]  # no temporaries left


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bytes(path: Path) -> None:
    """Damage the middle of the file (the data), leaving its footer, and so its row count, readable."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


def another_replicates_part(path: Path) -> None:
    """A valid part with the same rows, but another replicate's data (a checksum alone tells it apart)."""
    shutil.copyfile(path.with_name("part-000000.parquet"), path)


def fewer_rows(path: Path) -> None:
    pd.read_parquet(path).iloc[:5].to_parquet(path, index=False)


def unrecord(out: Path, k: int) -> None:
    """As if the batch died after writing replicate k's parts but before recording them."""
    manifest = read_manifest(out)
    del manifest["parts"][str(k)]
    (out / "manifest.json").write_text(json.dumps(manifest))


DAMAGE = {  # replicate -> (damage(out), its line on stderr); replicates 0, 8 and 9 are left alone
    1: (lambda out: flip_bytes(part(out, "timeseries", 1)), "timeseries part damaged (checksum differs)"),
    2: (lambda out: truncate(part(out, "timeseries", 2)), "timeseries part damaged (unreadable: ArrowInvalid)"),
    3: (lambda out: another_replicates_part(part(out, "timeseries", 3)), "timeseries part damaged (checksum differs)"),
    4: (lambda out: truncate(part(out, "replicates", 4)), "replicates part damaged (unreadable: ArrowInvalid)"),
    5: (lambda out: fewer_rows(part(out, "timeseries", 5)), "timeseries part damaged (5 rows, 12 recorded)"),
    6: (lambda out: part(out, "replicates", 6).unlink(), "replicates part missing"),
    7: (lambda out: unrecord(out, 7), "timeseries part not recorded in the manifest, replicates part not recorded in the manifest"),
}


def test_resume_recomputes_damaged_missing_and_unrecorded_parts(reference, tmp_path, spy, capsys):
    """Truncated, bytes flipped, another replicate's data, fewer rows, deleted, never recorded: each replicate so
    hit is named on stderr, its parts deleted and run again from its seed; the rest is kept as it was."""
    out = tmp_path / "batch"
    shutil.copytree(reference, out)
    kept = {p: p.read_bytes() for k in (0, 8, 9) for p in (part(out, "timeseries", k), part(out, "replicates", k))}
    for damage, _ in DAMAGE.values():
        damage(out)
    result = run_batch(BASELINE, REPS, SEED, workers=1, out=out, resume=True, overrides=ONE_YEAR)
    assert spy == sorted(DAMAGE)  # those replicates alone ran again
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("sim: replicate")]
    assert lines == [f"sim: replicate {k}: {line}; recomputing" for k, (_, line) in DAMAGE.items()]
    assert all(p.read_bytes() == data for p, data in kept.items())
    assert_same_batch(out, reference)
    assert_parts_as_recorded(out)
    pd.testing.assert_frame_equal(result.replicates, read_replicates(reference), check_exact=True)


def test_resume_deletes_stray_parts_and_temporaries_of_our_own_only(reference, tmp_path, spy, capsys):
    out = tmp_path / "batch"
    shutil.copytree(reference, out)
    shutil.copyfile(part(out, "timeseries", 0), part(out, "timeseries", 12))  # beyond this batch's N, and not recorded
    (out / "timeseries.parquet" / ".part-000003.parquet.tmp-99999").write_bytes(b"PAR1 half")  # a write that died
    (out / ".manifest.json.tmp-99999").write_text("{")
    (out / "timeseries.parquet" / "notes.txt").write_text("someone else's file")
    run_batch(BASELINE, REPS, SEED, workers=1, out=out, resume=True, overrides=ONE_YEAR)
    assert spy == []
    assert "sim: replicate 12: timeseries part not recorded in the manifest, replicates part missing; deleted" in capsys.readouterr().err
    assert not part(out, "timeseries", 12).exists()
    assert not [p for p in out.rglob(".*")]
    assert (out / "timeseries.parquet" / "notes.txt").exists()
    (out / "timeseries.parquet" / "notes.txt").unlink()
    assert_same_batch(out, reference)


@linux_only
def test_parts_are_on_disk_before_they_are_recorded(tmp_path, monkeypatch):
    """Each part is flushed (fsync) under its temporary name, renamed, and its folder flushed, before the manifest
    that records it is renamed into place."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    run_batch(BASELINE, 1, SEED, workers=1, out=tmp_path / "b", overrides=ONE_YEAR)
    monkeypatch.undo()
    pid = os.getpid()
    i = events.index(("replace", "part-000000.parquet"))
    assert events[i - 1] == ("fsync", f".part-000000.parquet.tmp-{pid}") and events[i + 1] == ("fsync", "timeseries.parquet")
    j = events.index(("replace", "part-000000.parquet"), i + 1)
    assert events[j - 1] == ("fsync", f".part-000000.parquet.tmp-{pid}") and events[j + 1] == ("fsync", "replicates.parquet")
    manifests = [n for n, e in enumerate(events) if e == ("replace", "manifest.json")]
    assert manifests[0] < i  # the empty batch's manifest, first
    assert any(n > j for n in manifests)
    recording = min(n for n in manifests if n > j)
    assert events[recording - 1] == ("fsync", f".manifest.json.tmp-{pid}") and events[recording + 1] == ("fsync", "b")


# --- 3. nothing hangs ------------------------------------------------------------------------------------------------


class StuckExecutor(Executor):
    """Runs the replicates in ``finishes`` at once; the futures of the others never complete (dead workers)."""

    def __init__(self, finishes):
        self.finishes, self.futures = set(finishes), []

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        if args[-1] in self.finishes:
            future.set_result(fn(*args))
        self.futures.append(future)
        return future


def test_stalled_batch_raises_keeping_what_finished(reference, tmp_path):
    out = tmp_path / "batch"
    stuck = StuckExecutor({0, 1, 2, 4})
    t0 = time.monotonic()
    with pytest.raises(BatchStalled) as raised:
        run_batch(BASELINE, REPS, SEED, executor=stuck, out=out, overrides=ONE_YEAR, stall_timeout=0.5)
    assert time.monotonic() - t0 < 10
    error = raised.value
    assert isinstance(error, BatchError) and error.finished == [0, 1, 2, 4]
    assert "nothing finished in 0.5 s" in str(error) and f"4 of {REPS} replicates finished (0-2, 4)" in str(error)
    assert f"kept in {out}/" in str(error) and "--resume" in str(error)
    assert [f.cancelled() for f in stuck.futures] == [k not in (0, 1, 2, 4) for k in range(REPS)]  # the stuck ones
    assert assert_parts_as_recorded(out) == [0, 1, 2, 4]
    assert read_manifest(out)["failed"] == []  # a stall is no replicate's fault
    run_batch(BASELINE, REPS, SEED, workers=1, out=out, resume=True, overrides=ONE_YEAR)
    assert_same_batch(out, reference)


def test_stalled_batch_without_output_folder_says_nothing_is_kept():
    with pytest.raises(BatchStalled, match=r"1 of 2 replicates had finished \(1\); not kept \(no output folder\)"):
        run_batch(BASELINE, 2, SEED, executor=StuckExecutor({1}), overrides=ONE_YEAR, stall_timeout=0.2)


def test_default_stall_timeout_allows_for_slow_replicates(monkeypatch):
    seen = []
    monkeypatch.setattr(batch, "run_calls", lambda *a, stall_timeout, **kw: seen.append(stall_timeout))
    params = load_scenario(BASELINE, ONE_YEAR)
    for kw in ({}, {"expected_replicate_seconds": 10}, {"expected_replicate_seconds": 90}, {"stall_timeout": 5, "expected_replicate_seconds": 90}):
        run_batch(params, 1, **kw)
    assert seen == [600, 600, 1800, 5]


def test_ranges():
    assert ranges([7, 0, 1, 2, 3, 4]) == "0-4, 7"
    assert ranges([]) == "none" and ranges([5]) == "5" and ranges([1, 3, 4]) == "1, 3-4"


@pytest.fixture(scope="module")
def workerless_cluster():
    """A real Dask scheduler with no worker at all (as when every worker has died). Its HTTP server, which runs
    even without a dashboard, on any free port: two test processes would otherwise both ask for 8787 (a warning)."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0")
    try:
        yield cluster
    finally:
        cluster.close()


def test_dask_batch_without_workers_stalls_instead_of_hanging(workerless_cluster, tmp_path):
    out = tmp_path / "batch"
    t0 = time.monotonic()
    with pytest.raises(BatchStalled, match=r"0 of 3 replicates finished \(none\)"):
        run_batch(BASELINE, 3, SEED, scheduler=workerless_cluster.scheduler_address, out=out, overrides=ONE_YEAR, stall_timeout=1)
    assert time.monotonic() - t0 < 30
    assert read_manifest(out)["completed"] == [] and read_manifest(out)["failed"] == []
    deadline = time.monotonic() + 10  # the cluster's tasks were cancelled, not left queued
    while workerless_cluster.scheduler.tasks and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workerless_cluster.scheduler.tasks
    with pytest.raises(BatchStalled, match=r"0 of 2 runs had finished; nothing is kept"):
        run_all([(load_scenario(BASELINE, ONE_YEAR), s) for s in (1, 2)], scheduler=workerless_cluster.scheduler_address, stall_timeout=1)


def test_killed_pool_worker_stops_the_batch_without_failing_replicates(tmp_path):
    """A worker killed (as by the out-of-memory killer) breaks the local pool: the batch stops with BatchBroken,
    the finished replicates are kept and recorded, and no replicate is recorded as failed."""
    out = tmp_path / "batch"
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 90
        while not parts_written(out)() and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = [p for p in multiprocessing.active_children() if p.name.startswith(("ForkServerProcess", "SpawnProcess"))]
        if workers:
            os.kill(workers[0].pid, signal.SIGKILL)
            killed.append(workers[0].pid)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        with pytest.raises(BatchBroken) as raised:
            run_batch(BASELINE, 200, SEED, workers=2, out=out, overrides=ONE_YEAR)
    finally:
        killer.join()
    assert killed
    error = raised.value
    assert "BrokenProcessPool" in str(error) and f"kept in {out}/" in str(error)
    assert error.finished == assert_parts_as_recorded(out) and 1 <= len(error.finished) < 200
    assert read_manifest(out)["failed"] == []
    deadline = time.monotonic() + 10  # the other worker was killed too, not left to finish its replicate
    while [p for p in multiprocessing.active_children() if p.name.startswith("ForkServerProcess")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("ForkServerProcess")]


# --- 6. interrupts are clean -----------------------------------------------------------------------------------------


def test_interrupt_keeps_replicates_that_finished_but_were_not_written_yet(reference, tmp_path, monkeypatch):
    """SIGINT arrives while replicate 0 is being written and the others have finished (their results are in hand)
    but are not written yet: all are written and recorded before BatchInterrupted is raised."""
    real_write = batch.BatchStore.write_replicate
    interrupted = []

    def write_replicate(self, k, ts, row):
        if not interrupted:
            interrupted.append(k)
            signal.raise_signal(signal.SIGINT)
        return real_write(self, k, ts, row)

    monkeypatch.setattr(batch.BatchStore, "write_replicate", write_replicate)
    out = tmp_path / "batch"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(BatchInterrupted) as raised:
        run_batch(BASELINE, REPS, SEED, executor=StuckExecutor(range(REPS)), out=out, overrides=ONE_YEAR)
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    assert raised.value.signal == "SIGINT" and raised.value.finished == list(range(REPS))
    assert str(raised.value).startswith(f"interrupted by SIGINT; {REPS} of {REPS} replicates finished (0-{REPS - 1})")
    monkeypatch.undo()
    assert_parts_as_recorded(out)
    pd.testing.assert_frame_equal(read_timeseries(out), read_timeseries(reference), check_exact=True)


@pytest.fixture(scope="module")
def compiled_kernels(tmp_path_factory) -> None:
    """One small run in a process of its own first, so that the compiled kernels are in numba's cache: on a fresh
    clone the first processes compile them, and a signal that lands inside the compiler's callback is reported by
    numba with a traceback of its own (the batch still stops as it should)."""
    warm = tmp_path_factory.mktemp("warm")
    for args in (("--seed", SEED, "--out", warm / "run"),  # one run, then a small batch as the tests run it
                 ("--reps", 2, "--seed", SEED, "--workers", 2, "--out", warm / "batch")):
        proc = sim_popen("run", BASELINE, *args, *SET_ONE_YEAR)
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""


def interrupted_batch(tmp_path, reps: int, send) -> tuple[subprocess.CompletedProcess, float, Path]:
    """Start a ``--workers 2`` batch, wait for its first part, ``send(proc)`` a signal; returns the finished process,
    the seconds from the signal to its exit, and its folder. Checks that nothing of it is left running. Use it with
    the ``compiled_kernels`` fixture."""
    out = tmp_path / "batch"
    proc = sim_popen("run", BASELINE, "--reps", reps, "--seed", SEED, "--workers", 2, "--out", out, *SET_ONE_YEAR)
    try:
        wait_for(parts_written(out), proc)
        t0 = time.monotonic()
        send(proc)
        stdout, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_group_gone(proc.pid)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), elapsed, out


@linux_only
def test_sigint_to_the_main_process_stops_a_long_batch_at_once(tmp_path, compiled_kernels):
    """300 replicates (~20 s of work for 2 workers): the old code first ran every queued one."""
    result, elapsed, out = interrupted_batch(tmp_path, 300, lambda proc: proc.send_signal(signal.SIGINT))
    assert elapsed < 15, elapsed
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert "interrupted by SIGINT" in result.stderr and f"kept in {out}/" in result.stderr, result.stderr
    done = assert_parts_as_recorded(out)
    assert 1 <= len(done) < 300 and f"{len(done)} of 300 replicates finished ({ranges(done)})" in result.stderr
    assert read_manifest(out)["failed"] == []
    read_timeseries(out)


@linux_only
def test_sigint_to_the_process_group_is_handled_once(tmp_path, compiled_kernels):
    """Ctrl-C in a terminal signals every process of the group: the workers ignore it, the main process stops."""
    result, elapsed, out = interrupted_batch(tmp_path, 300, lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert elapsed < 15, elapsed
    assert result.returncode == 130 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("interrupted by SIGINT") == 1, result.stderr
    assert "KeyboardInterrupt" not in result.stderr  # no worker reported one
    done = assert_parts_as_recorded(out)
    assert 1 <= len(done) < 300 and read_manifest(out)["failed"] == []


def grandchildren(pid: int) -> list[int]:
    """The children of ``pid``'s children: under forkserver, the pool workers (children of the forkserver)."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    children = {p for p, pp in parents.items() if pp == pid}
    return [p for p, pp in parents.items() if pp in children]


@linux_only
def test_workers_ignore_sigint_from_the_moment_they_start(tmp_path):
    """A Ctrl-C that lands while a worker is still starting (importing the model, which takes a second or more)
    must not reach it: it used to print a KeyboardInterrupt traceback, or kill the worker and break the batch.
    Every worker gets a SIGINT every 20 ms from the moment it exists until the batch ends; the batch must finish
    as if nothing happened. (Whether the forkserver is the workers' parent or not, they are grandchildren of the
    main process, with the forkserver or the resource tracker in between or beside; those ignore SIGINT themselves
    once started and are left alone.)"""
    out = tmp_path / "batch"
    proc = sim_popen("run", BASELINE, "--reps", 6, "--seed", SEED, "--workers", 2, "--out", out, *SET_ONE_YEAR)
    signalled: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            for pid in grandchildren(proc.pid):
                try:
                    os.kill(pid, signal.SIGINT)
                    signalled.add(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert signalled, "no worker was ever seen"
    assert proc.returncode == 0 and "KeyboardInterrupt" not in stderr and "Traceback" not in stderr, stderr
    assert len(read_replicates(out)) == 6


@linux_only
def test_sigterm_stops_the_batch_and_resume_completes_it(tmp_path, reference, compiled_kernels):
    result, elapsed, out = interrupted_batch(tmp_path, REPS, lambda proc: proc.send_signal(signal.SIGTERM))
    assert elapsed < 15, elapsed
    assert result.returncode == 143 and "Traceback" not in result.stderr, result.stderr
    assert "interrupted by SIGTERM" in result.stderr and "--resume" in result.stderr, result.stderr
    done = assert_parts_as_recorded(out)
    assert 1 <= len(done) and read_manifest(out)["failed"] == []
    run_batch(BASELINE, REPS, SEED, workers=1, out=out, resume=True, overrides=ONE_YEAR)
    assert_same_batch(out, reference)


@linux_only
def test_kill_9_of_the_main_process_leaves_no_process_running(tmp_path):
    out = tmp_path / "batch"
    proc = sim_popen("run", BASELINE, "--reps", 20, "--workers", 2, "--out", out, "--set", "population.scale_general=300",
                     "--set", "population.scale_cjs_families=10")
    try:
        wait_for(parts_written(out), proc)
        assert len(group_processes(proc.pid)) >= 4  # main, resource tracker, forkserver, workers
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert_group_gone(proc.pid, within=10)  # workers, forkserver and resource tracker all gone


@linux_only
def test_sigint_to_sim_compare_does_not_wait_for_queued_runs(tmp_path):
    """``paired.run_all`` stops like a batch: 2 x 150 runs queued (~30 s of work), Ctrl-C to the group."""
    proc = sim_popen("compare", BASELINE, ROOT / "scenarios" / "multi_agency.toml", "--reps", 150, "--workers", 2,
                     "--years", 1, "--out", tmp_path / "cmp", *[arg for o in SMALL for arg in ("--set", o)])
    try:
        wait_for(pool_workers_started(proc.pid), proc)
        time.sleep(1)  # the workers are running
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert elapsed < 15, elapsed
    assert proc.returncode == 130 and "interrupted by SIGINT" in stderr and "Traceback" not in stderr, stderr
    assert_group_gone(proc.pid)


# --- 8. the Python API fails loudly; the README example works from a plain script -----------------------------------


def test_readme_example_works_from_a_script_without_main_guard(tmp_path):
    log = tmp_path / "starts.log"
    script = tmp_path / "example.py"
    script.write_text(textwrap.dedent(f"""\
        import os
        with open({str(log)!r}, "a") as f:  # every run of this file leaves a line
            f.write(f"{{os.getpid()}}\\n")
        from sim.runs.batch import run_batch
        result = run_batch("scenarios/baseline.toml", reps=4, seed=1, workers=2, overrides={ONE_YEAR!r})
        result.replicates; result.summary
        result.replicates.to_parquet({str(tmp_path / "replicates.parquet")!r})
        print(len(result.replicates), len(result.summary))
        """))
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "BrokenProcessPool" not in run.stderr, run.stderr
    assert len(log.read_text().splitlines()) == 1  # started once: the workers did not run it again
    n, m = map(int, run.stdout.split())
    assert n == 4 and m > 10
    ref = run_batch(BASELINE, 4, 1, workers=1, overrides=ONE_YEAR).replicates
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "replicates.parquet"), ref, check_exact=True)


def test_failed_replicates_raise_with_the_rest_of_the_result(monkeypatch):
    def flaky(p, s, k):
        if k in (1, 2):
            raise ValueError(f"bad draw in {k}")
        return replicate_result(p, s, k)

    monkeypatch.setattr(batch, "replicate_result", flaky)
    with pytest.raises(ReplicatesFailed) as raised:
        run_batch(BASELINE, 4, SEED, workers=1, overrides=ONE_YEAR)
    error = raised.value
    assert "2 of 4 replicates failed (1-2)" in str(error) and f"seed {replicate_seeds(SEED, 4)[1]}" in str(error)
    assert sorted(error.failed) == [1, 2] and "ValueError: bad draw in 1" in error.failed[1]
    assert error.result.replicates["replicate"].tolist() == [0, 3] == error.finished
    assert error.result.summary.set_index("metric").loc["offences_per_year", "n"] == 2
    allowed = run_batch(BASELINE, 4, SEED, workers=1, overrides=ONE_YEAR, allow_failures=True)
    assert sorted(allowed.failed) == [1, 2]
    pd.testing.assert_frame_equal(allowed.replicates, error.result.replicates, check_exact=True)


def test_a_signal_inside_a_finalizer_is_not_raised_there():
    """A SIGTERM that lands while a ``__del__`` runs (e.g. a finished subprocess's) is kept and raised again later
    rather than raised inside the finalizer, where Python would only print it as a traceback on stderr."""
    import sys

    from sim.runs.batch import _in_finalizer

    seen = []

    class Finalized:
        def __del__(self):
            seen.append(_in_finalizer(sys._getframe()))

    def nested():
        return _in_finalizer(sys._getframe())

    Finalized()  # dropped at once: its __del__ runs here
    assert seen == [True]
    assert nested() is False
