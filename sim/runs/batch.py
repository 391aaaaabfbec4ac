"""Monte Carlo batches: many replicates of a scenario, on one core, local processes or a Dask cluster, with every
finished replicate kept on disk so that an interrupted batch can be resumed.

Replicate k runs with seed ``replicate_seeds(root, N)[k]`` (spawned from one ``numpy.random.SeedSequence``), so
its result is the same bit for bit whatever the executor, the number of workers or the order of completion.
The output folder holds:

- ``timeseries.parquet/``: a dataset folder, one file per replicate (``part-000042.parquet``), columns
  ``replicate``, ``month`` and one per series; ``pandas.read_parquet`` reads the folder in one call;
- ``replicates.parquet/``: likewise, one row per replicate: its seed, summary metrics, discounted costs by agency
  and kind, and the values drawn for uncertain parameters (``parameter:section.key``);
- ``summary.csv``: per metric the mean, sd, Monte Carlo standard error, 5/50/95% quantiles, and the replicates
  needed for the requested relative precision of the mean;
- ``manifest.json``: the resolved scenario, root seed, N, replicate seeds, versions, git commit, which
  replicates are complete or failed, and under ``parts`` each kept part's row count and sha256.

Every file is written to a hidden temporary name, flushed to disk and renamed into place, so a reader sees either
the previous complete state or the new one; a replicate's parts are recorded in the manifest only once both are
in place (the manifest is rewritten at most once a second while a batch runs, and when it stops). Resume keeps
only parts that are recorded and still as recorded (present, readable, same rows and checksum); any other part
file is deleted, named on stderr, and its replicate run again.

A batch never waits for ever nor discards finished work: if no replicate finishes for ``stall_timeout`` seconds
(default 600, or 20 times ``expected_replicate_seconds``) it raises ``BatchStalled``; if the local pool breaks
(a worker killed) it raises ``BatchBroken``; SIGINT or SIGTERM raise ``BatchInterrupted``. Each time queued
replicates are cancelled, running ones are not waited for (local workers are killed), replicates that finished
are written and recorded, and the message names them: ``--resume`` runs the rest. Replicates that raise are
reported, and make ``run_batch`` raise ``ReplicatesFailed`` unless ``allow_failures=True``. Pool workers ignore
SIGINT (the main process stops the batch once) and exit as soon as the main process is gone, even by kill -9.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..appraisal import costs as C
from ..model import ReoffendingModel
from ..state.params import Params
from ..state.scenario import ScenarioError, load_scenario
from ..state.sources import numba_cache_dir, sources_digest
from .errors import BatchBroken, BatchError, BatchInterrupted, BatchStalled
from .limits import DEFAULT_STALL_TIMEOUT, default_stall_timeout
from .outdir import claimed, read_manifest, remove_ours
from .output import ensemble_record, git_commit, manifest, summarise, timeseries_frame, versions
from .preflight import check_scheduler
from .progress import Progress
from .worker import init_worker

class ReplicatesFailed(BatchError):
    """Some replicates raised: ``failed`` maps each to its error, ``result`` is the BatchResult of the others."""

    def __init__(self, message: str, result: BatchResult, failed: dict[int, str]):
        super().__init__(message, result.replicates["replicate"].tolist() if len(result.replicates) else [])
        self.result, self.failed = result, failed


class _Stop(BaseException):
    """Why a run of calls stops early, raised inside it and turned into a BatchError by ``run_calls``; a
    BaseException, so that no ``except Exception`` on its way swallows it."""

    def __init__(self, error: type[BatchError], reason: str, signal: str | None = None):
        super().__init__(reason)
        self.error, self.reason, self.signal = error, reason, signal

    def as_error(self, what_is_kept: str, finished) -> BatchError:
        message = f"{self.reason}; {what_is_kept}"
        if self.error is BatchInterrupted:
            return BatchInterrupted(message, finished, self.signal)
        return self.error(message, finished)


def ranges(keys) -> str:
    """Sorted whole numbers compactly: [0, 1, 2, 3, 4, 7] -> "0-4, 7"."""
    keys, out = sorted(keys), []
    for k in keys:
        if out and out[-1][1] == k - 1:
            out[-1][1] = k
        else:
            out.append([k, k])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out) or "none"


class InlineExecutor(Executor):
    """Runs each task at once in this process (one worker, no pickling)."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # a failing replicate is reported, not raised here
            future.set_exception(exc)
        return future


@contextmanager
def _main_script_hidden():
    """Hide ``__main__``'s file and module name from multiprocessing while it starts a worker.

    A forkserver or spawn child first re-runs the main script it is told of (as ``__mp_main__``; CPython 3.11
    ``multiprocessing.spawn.get_preparation_data`` reads ``__main__.__spec__`` and ``__file__``): a script without
    an ``if __name__ == "__main__":`` guard would start a batch inside every worker, which fails. Batch tasks are
    functions of ``sim``, so the workers never need the main script."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


@contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread while it starts processes: a process inherits the mask, so a worker (or the
    forkserver, and through it every worker) is born with SIGINT blocked and a Ctrl-C cannot reach it before
    ``sim.runs.worker.init_worker`` ignores it; here a SIGINT waits and arrives when the mask is restored.
    CPython's resource tracker starts the same way."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _ProcessPool(ProcessPoolExecutor):
    """A process pool for batches: workers start without the main script, ignore SIGINT and die with the main
    process (see ``sim.runs.worker``)."""

    def __init__(self, max_workers: int, mp_context):
        with _sigint_blocked():  # (what starts here, such as the resource tracker, is born with SIGINT blocked too)
            super().__init__(max_workers=max_workers, mp_context=mp_context, initializer=init_worker)

    def submit(self, fn, /, *args, **kwargs):
        with _main_script_hidden(), _sigint_blocked():  # under forkserver and spawn, workers are started by submit
            return super().submit(fn, *args, **kwargs)

    def kill(self) -> None:
        """Kill the workers now and shut down without waiting: ``shutdown(wait=True)`` would run every queued task
        first (a minute or more), and before Python 3.14 there is no public way to stop running ones. The pool,
        broken, fails every unfinished future; none may be cancelled first, or the pool's thread fails on it
        (InvalidStateError in ``terminate_broken``, fixed in Python 3.12)."""
        for p in list((self._processes or {}).values()):
            p.kill()
        self.shutdown(wait=False)


#: what the forkserver imports once, as it starts: every worker it forks then begins with the model, numpy, pandas,
#: numba and Mesa imported (instead of importing them anew, about 1.5-2 s of a core a worker)
WORKER_PRELOAD = ("sim.runs.batch", "sim.runs.paired")


#: the package's ``sources_digest`` when this process first asked for local workers (its forkserver's modules)
_preloaded_sources: str | None = None


def process_context():
    """The start method of local workers: forkserver where there is one (forking a process that already runs
    threads, numpy's or pandas', can deadlock), its server preloaded with ``WORKER_PRELOAD`` (a server already
    running keeps what it has: the workers are then as they were), else spawn. The preloaded server runs the
    threads numpy and pyarrow start as they are imported (idle, and fork-safe: both hold their locks across a fork),
    so each fork is of a multi-threaded process, which Python 3.12 and later warn of when deprecation warnings are
    shown. Once the package's sources have changed on disk since this process's first batch (an edit in a running
    notebook, say), the server's modules are stale and its workers would run the old code: spawn then, whose workers
    import the sources afresh (the old server idles until this process ends). Either way the workers get numba's
    cache folder of the sources as they are now (``_numba_cache_of``)."""
    global _preloaded_sources
    digest = sources_digest()
    _numba_cache_of(digest)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    if _preloaded_sources is None:
        _preloaded_sources = digest
    elif digest != _preloaded_sources:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


def _numba_cache_of(digest: str) -> None:
    """Point ``NUMBA_CACHE_DIR``, which workers inherit, at the cache folder of the sources with ``digest``, where it
    names one of this package's folders (``sim`` set it on import; a folder the user chose is left alone): kernels
    compiled from sources edited since would otherwise be read from the old folder."""
    folder = numba_cache_dir(digest)
    current = os.environ.get("NUMBA_CACHE_DIR")
    if current and Path(current).parent == folder.parent and Path(current).name.startswith("numba-"):
        os.environ["NUMBA_CACHE_DIR"] = str(folder)


@contextmanager
def executor_for(workers: int | None = None, scheduler: str | None = None):
    """The executor for a batch: a Dask cluster by address, one process (workers=1) or local processes.
    Leaving the block by an exception (an error, a stall, a signal) drops queued work and does not wait for
    running work: local workers are killed, the cluster's tasks cancelled."""
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ScenarioError("--scheduler needs Dask: pip install 'reoffsim[dask]'") from None
        try:
            client = Client(scheduler, timeout="20s")
        except Exception as exc:  # noqa: BLE001 - whatever Dask raises, the user gets one line
            raise ScenarioError(f"--scheduler {scheduler}: cannot connect ({type(exc).__name__}: {exc})") from None
        try:
            executor = client.get_executor()
            try:
                yield executor
            except BaseException:
                executor.shutdown(wait=False)  # cancels its tasks on the cluster
                raise
        finally:
            client.close()
    elif (workers or os.cpu_count() or 1) <= 1:
        yield InlineExecutor()
    else:
        pool = _ProcessPool(workers or os.cpu_count(), process_context())
        try:
            yield pool
        except BaseException:
            pool.kill()
            raise
        pool.shutdown(wait=True)


@contextmanager
def _signals_stop():
    """In the main thread, make SIGINT and SIGTERM raise ``_Stop`` (rather than KeyboardInterrupt, or death without
    clean-up for SIGTERM), restoring the previous handlers afterwards; a signal that was ignored stays ignored. The
    first signal also restores them at once, so that a second one forces the way out during the clean-up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: h for s in (signal.SIGINT, signal.SIGTERM) if (h := signal.getsignal(s)) not in (signal.SIG_IGN, None)}

    def restore():
        for s, h in previous.items():
            signal.signal(s, h)

    def handler(signum, frame):
        restore()
        name = signal.Signals(signum).name
        stop = _Stop(BatchInterrupted, f"interrupted by {name}", name)
        _STOP_REQUESTED[:] = [stop]  # kept: raised where Python swallows exceptions (a __del__), it would be lost
        if not _in_finalizer(frame):  # (there Python would print it as a traceback: raised again later instead)
            raise stop

    _STOP_REQUESTED.clear()
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        restore()
        _STOP_REQUESTED.clear()


#: the stop a signal raised, for ``_finish_each`` to raise again if it was swallowed on its way (a signal handler runs
#: wherever the main thread is, also inside a finalizer, whose exceptions Python only prints)
_STOP_REQUESTED: list[_Stop] = []


def _in_finalizer(frame) -> bool:
    """Whether the signal arrived while a ``__del__`` ran (on this frame or one that called it)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _raise_requested_stop() -> None:
    """Raise the stop a signal asked for, if it was swallowed on its way (see ``_STOP_REQUESTED``)."""
    if _STOP_REQUESTED:
        raise _STOP_REQUESTED[0]


def _finish_each(ex: Executor, calls: dict, on_done, stall_timeout: float, window: int, cancel: bool) -> None:
    """Submit ``calls`` ({key: (fn, *args)}), at most ``window`` unfinished at a time, and hand each finished
    (key, future) to ``on_done`` as it finishes. Raises ``_Stop`` when nothing finishes for ``stall_timeout``
    seconds, when the executor breaks, or on a signal; before it does, calls that finished but were not handed
    over yet are handed over, so nothing done is lost, and with ``cancel`` the queued ones are cancelled (an
    executor of ``executor_for`` drops them itself).

    Futures report through done-callbacks into a queue: O(1) per finished call, where
    ``concurrent.futures.wait(..., return_when=FIRST_COMPLETED)`` over 10,000 futures costs some 15 ms a call."""
    finished: queue.SimpleQueue = queue.SimpleQueue()
    in_flight: dict[Future, object] = {}
    waiting = iter(calls.items())

    def top_up():
        while len(in_flight) < window and (item := next(waiting, None)) is not None:
            key, (fn, *args) = item
            future = ex.submit(fn, *args)
            in_flight[future] = key
            future.add_done_callback(finished.put)

    try:
        top_up()
        deadline = time.monotonic() + stall_timeout
        while in_flight:
            _raise_requested_stop()
            try:  # in slices of a second: on some systems a signal may land in another thread and not wake this one
                future = finished.get(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise _Stop(BatchStalled, f"stalled: nothing finished in {stall_timeout:g} s (are the workers alive?)") from None
                continue
            if future.cancelled() or isinstance(future.exception(), BrokenExecutor):
                cause = "cancelled by the executor" if future.cancelled() else f"{type(future.exception()).__name__}: {future.exception()}"
                raise _Stop(BatchBroken, f"the executor broke ({cause}): was a worker process killed, or out of memory?")
            on_done(in_flight[future], future)
            del in_flight[future]
            top_up()
            deadline = time.monotonic() + stall_timeout
    except (_Stop, KeyboardInterrupt) as exc:
        for future in in_flight if cancel else ():
            future.cancel()
        for future, key in list(in_flight.items()):
            if future.done() and not future.cancelled() and not isinstance(future.exception(), BrokenExecutor):
                on_done(key, future)
        if isinstance(exc, _Stop):
            raise
        raise _Stop(BatchInterrupted, "interrupted by SIGINT", "SIGINT") from None


def run_calls(calls: dict, on_done, on_stop, *, executor: Executor | None = None, workers: int | None = None,
              scheduler: str | None = None, stall_timeout: float | None = None) -> None:
    """Run ``calls`` ({key: (fn, *args)}) on ``executor``, or the one ``workers``/``scheduler`` give (see
    ``executor_for``), handing each finished (key, future) to ``on_done`` as it finishes.

    If the run stops short (SIGINT or SIGTERM, no call finishing for ``stall_timeout`` seconds, default 600, or
    a broken executor), queued calls are cancelled, running ones are not waited for, the calls that did finish
    are still handed to ``on_done``, and then ``on_stop()`` returns (what is kept, in words; the finished keys)
    for the message of the BatchStalled, BatchBroken or BatchInterrupted raised."""
    stall_timeout = DEFAULT_STALL_TIMEOUT if stall_timeout is None else stall_timeout
    with _signals_stop():
        try:
            with nullcontext(executor) if executor is not None else executor_for(workers, scheduler) as ex:
                # one at a time in this process, so that each is handed over (written) before the next starts
                window = 1 if isinstance(ex, InlineExecutor) else max(1, len(calls))
                _finish_each(ex, calls, on_done, stall_timeout, window, cancel=executor is not None)
            _raise_requested_stop()  # swallowed after the last check: in the last hand-over or the executor's shutdown
        except _Stop as stop:
            raise stop.as_error(*on_stop()) from None


def replicate_seeds(root_seed: int, reps: int) -> list[int]:
    """Replicate seeds spawned from one root SeedSequence: replicate k's seed depends only on (root, k)."""
    children = np.random.SeedSequence(root_seed).spawn(reps)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]


def replicate_result(params: Params, seed: int, replicate: int) -> tuple[pd.DataFrame, dict]:
    """Run one replicate: its monthly series (with a ``replicate`` column) and its summary row."""
    with replicate_model(params, seed) as model:  # released at the end: freed now, not at the collector's next pass
        return replicate_outputs(model.run(), seed, replicate)


def replicate_model(params: Params, seed: int) -> ReoffendingModel:
    """A batch replicate's model, built and not yet run (``sim.bench`` times the steps of ``replicate_result``)."""
    return ReoffendingModel(params, seed=seed, record_offences=False)


def replicate_outputs(model: ReoffendingModel, seed: int, replicate: int) -> tuple[pd.DataFrame, dict]:
    """What a batch keeps of a replicate that has run: its monthly series and its summary row (summary and cohort
    metrics, discounted costs by agency and kind, the calibration ensemble's member (-1: the point fit), the
    parameter draws)."""
    ts = timeseries_frame(model)
    ts.insert(0, "replicate", np.int32(replicate))
    row: dict = {"replicate": replicate, "seed": seed, "ensemble_member": model.ensemble_member, **summarise(model)}
    pv = C.present_value(C.ledger(ts, model.params), model.params.costs)
    for agency, total in pv.groupby("agency")["pv_gbp"].sum().items():
        row[f"cost_pv:{agency}"] = float(total)
    for kind, total in pv.groupby("kind")["pv_gbp"].sum().items():
        row[f"cost_pv:{kind}"] = float(total)
    row.update({f"parameter:{k}": v for k, v in model.parameter_draws.items()})
    return ts, row


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refuse_other_origin(old: dict, params, out: Path, what: str = "batch") -> None:
    """Refuse to resume the folder ``out`` whose manifest ``old`` records another calibration ensemble or other code
    than ``params`` and this checkout would use: its results and new ones would mix (ScenarioError, one line)."""
    ensemble_now = ensemble_record(params.ensemble)["sha256"] if params.ensemble is not None else None
    if (old.get("calibration_ensemble") or {}).get("sha256") != ensemble_now:
        raise ScenarioError(f"--out {out}: that {what} drew its calibrated values from another calibration ensemble "
                            f"(or none); results would mix; start a new --out")
    made_with = (old.get("git_commit"), old.get("versions", {}).get("reoffsim"), old.get("versions", {}).get("mesa"), old.get("versions", {}).get("numpy"))
    now = (git_commit(), *(versions().get(k) for k in ("reoffsim", "mesa", "numpy")))
    if made_with != now:
        raise ScenarioError(f"--out {out}: that {what} was made with other code (commit/versions {made_with}, now {now}); "
                            "results would mix; finish it with that code or start a new --out")


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` beside ``path``, flushed to disk, then renamed into place (and the rename flushed): a reader,
    or a resume after a crash or power cut, sees the old file or the new, never half of one."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    write(tmp)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


#: the two datasets of a batch, one part file per replicate in each
DATASETS = ("timeseries", "replicates")
_PART = re.compile(r"part-(\d{6,})\.parquet")
#: temporaries of ``write_atomic`` for the files of a batch folder
_TEMPORARY = re.compile(r"\.(part-\d{6,}\.parquet|manifest\.json|summary\.csv)\.tmp-\d+")


def part_name(k: int) -> str:
    return f"part-{k:06d}.parquet"


@dataclass
class BatchStore:
    """The output folder of a batch: replicate parts, manifest and summary.

    ``parts`` is the record of kept parts, as in the manifest: replicate -> {dataset: {"rows", "sha256"}}."""

    out: Path
    params: Params
    root_seed: int
    reps: int
    failed: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)
    _manifest_written: float = field(default=-math.inf, repr=False)

    def folder(self, dataset: str) -> Path:
        return self.out / f"{dataset}.parquet"

    def open(self, resume: bool) -> None:
        """Create the folder, or check that an existing one is this batch (and ``resume`` was asked for) and keep
        its parts that are still as recorded."""
        old = None
        if resume and self.out.exists() and any(self.out.iterdir()):  # (sim.runs.outdir refused it without resume)
            old = read_manifest(self.out, ("batch",), complete=False)
            if old.get("replicates", 0) > self.reps:
                raise ScenarioError(f"--out {self.out}: that batch has {old['replicates']} replicates; resume it with --reps "
                                    f"{old['replicates']} or more (or start a new --out)")
            if old.get("parameters") != json.loads(json.dumps(self.params.to_dict(), default=float)) or old.get("root_seed") != self.root_seed:
                raise ScenarioError(f"--out {self.out}: that batch was made with another scenario or root seed; cannot resume it with this one")
            refuse_other_origin(old, self.params, self.out)
        for dataset in DATASETS:
            self.folder(dataset).mkdir(parents=True, exist_ok=True)
        if old is not None:
            self.parts = self._kept_parts(old.get("parts") or {})

    def _kept_parts(self, recorded: dict) -> dict[int, dict]:
        """The recorded parts that are still as recorded. Every other part file (damaged, or never recorded: its
        batch died between writing and recording it) is deleted, with one line on stderr per replicate, so that
        replicate runs again; so are temporaries left by a batch that died while writing."""
        on_disk = {d: {int(m[1]): p for p in self.folder(d).iterdir() if (m := _PART.fullmatch(p.name))} for d in DATASETS}
        kept = {}
        for k in sorted({int(k) for k in recorded} | set(on_disk["timeseries"]) | set(on_disk["replicates"])):
            record = recorded.get(str(k)) or {}
            problems = [f"{d} part {why}" for d in DATASETS if (why := _part_problem(on_disk[d].get(k), record.get(d)))]
            if not problems:
                kept[k] = {d: record[d] for d in DATASETS}
                continue
            for d in DATASETS:
                if k in on_disk[d]:
                    on_disk[d][k].unlink()
            print(f"sim: replicate {k}: {', '.join(problems)}; {'recomputing' if k < self.reps else 'deleted'}", file=sys.stderr)
        for folder in (self.out, *(self.folder(d) for d in DATASETS)):
            for p in folder.iterdir():
                if _TEMPORARY.fullmatch(p.name):
                    p.unlink()
        return kept

    def completed(self) -> list[int]:
        return sorted(k for k in self.parts if k < self.reps)

    def write_replicate(self, k: int, ts: pd.DataFrame, row: dict) -> None:
        """Write replicate k's parts (each flushed to disk and renamed into place), then record them."""
        record = {}
        for dataset, frame in (("timeseries", ts), ("replicates", pd.DataFrame([row]))):
            path = self.folder(dataset) / part_name(k)
            write_atomic(path, partial(frame.to_parquet, index=False))
            record[dataset] = {"rows": len(frame), "sha256": _sha256(path)}
        self.parts[k] = record
        self.failed.pop(k, None)

    def write_manifest(self, throttle: bool = False) -> None:
        """Write the manifest; with ``throttle``, only if the last write is a second old or more (a batch of
        10,000 replicates would otherwise rewrite megabytes 10,000 times). Parts a killed batch had not recorded
        yet are run again on resume."""
        if throttle and time.monotonic() - self._manifest_written < 1.0:
            return
        seeds = replicate_seeds(self.root_seed, self.reps)
        info = manifest(self.params, self.root_seed, {
            "kind": "batch",
            "root_seed": self.root_seed,
            "replicates": self.reps,
            "replicate_seeds": seeds,
            "completed": self.completed(),
            "failed": [{"replicate": k, "seed": seeds[k], "error": e} for k, e in sorted(self.failed.items())],
            "updated_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": ["timeseries.parquet", "replicates.parquet", "summary.csv", "manifest.json"],
            "parts": {str(k): self.parts[k] for k in sorted(self.parts)},
        })
        write_atomic(self.out / "manifest.json", lambda p: p.write_text(json.dumps(info, indent=2, default=float)))
        self._manifest_written = time.monotonic()

    def replicates(self) -> pd.DataFrame:
        parts = [self.folder("replicates") / part_name(k) for k in self.completed()]
        if not parts:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def write_summary(self, precision: float) -> pd.DataFrame:
        summary = summary_statistics(self.replicates(), precision)
        write_atomic(self.out / "summary.csv", lambda p: summary.to_csv(p, index=False))
        return summary


def _part_problem(path: Path | None, record: dict | None) -> str | None:
    """What is wrong with a part file against its record (None: nothing)."""
    if path is None:
        return "missing"
    if not record:
        return "not recorded in the manifest"
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - whatever pyarrow makes of a damaged file
        return f"damaged (unreadable: {type(exc).__name__})"
    if rows != record.get("rows"):
        return f"damaged ({rows} rows, {record.get('rows')} recorded)"
    if _sha256(path) != record.get("sha256"):
        return "damaged (checksum differs)"
    return None


def summary_statistics(replicates: pd.DataFrame, precision: float = 0.01) -> pd.DataFrame:
    """Per metric: n, mean, sd, Monte Carlo standard error, 5/50/95% quantiles, and the replicates needed for the
    Monte Carlo standard error to be ``precision`` x |mean| (relative precision of the mean)."""
    rows = []
    for col in replicates.columns:
        if col in ("replicate", "seed") or not pd.api.types.is_numeric_dtype(replicates[col]):
            continue
        v = replicates[col].dropna().astype(float)
        n = len(v)
        mean = v.mean() if n else float("nan")
        sd = v.std(ddof=1) if n > 1 else float("nan")
        mcse = sd / math.sqrt(n) if n > 1 else float("nan")
        needed = math.ceil((sd / (precision * abs(mean))) ** 2) if n > 1 and mean != 0 and sd == sd else float("nan")
        rows.append({"metric": col, "n": n, "mean": mean, "sd": sd, "mcse": mcse, "p05": v.quantile(0.05) if n else np.nan,
                     "p50": v.quantile(0.5) if n else np.nan, "p95": v.quantile(0.95) if n else np.nan,
                     f"replicates_for_{precision:g}_relative_precision": needed})
    return pd.DataFrame(rows)


@dataclass
class BatchResult:
    replicates: pd.DataFrame
    summary: pd.DataFrame
    failed: dict
    out: Path | None


def run_batch(
    scenario: str | Path | Params,
    reps: int,
    seed: int = 1,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: tuple[str, ...] = (),
    precision: float = 0.01,
    label: str = "replicates",
    *,
    stall_timeout: float | None = None,
    expected_replicate_seconds: float | None = None,
    allow_failures: bool = False,
    force: bool = False,
) -> BatchResult:
    """Run ``reps`` replicates of a scenario (a file or Params) and return the replicate table (one tidy row per
    replicate) with its summary. With ``out``, every finished replicate is written as it completes and a rerun
    with ``resume=True`` runs only the missing ones (and any whose parts are damaged). ``executor`` overrides
    ``workers``/``scheduler``. An existing ``out`` is refused unless ``resume`` (the same batch) or ``force`` (it
    is replaced if it holds only what sim wrote), and it is locked while the batch runs (``sim.runs.outdir``).

    Raises ``ReplicatesFailed`` if any replicate raised (unless ``allow_failures``: then they are in
    ``result.failed``), and ``BatchStalled`` (none finished for ``stall_timeout`` seconds; default the larger of
    600 and 20 x ``expected_replicate_seconds``), ``BatchBroken`` or ``BatchInterrupted`` (SIGINT, SIGTERM) if
    the batch stops short, after keeping every finished replicate in ``out``."""
    params = scenario if isinstance(scenario, Params) else load_scenario(scenario, overrides)
    if out is None:
        return _run_batch(params, reps, seed, executor, workers, scheduler, None, precision, label, stall_timeout,
                          expected_replicate_seconds, allow_failures)
    if scheduler and executor is None:
        check_scheduler(scheduler, in_process=True)  # before the folder is made, so a wrong address leaves nothing behind
    with claimed(out, force=force, resume=resume, resumable=True) as folder:
        if force:
            remove_ours(folder)
        store = BatchStore(folder, params, seed, reps)
        store.open(resume)
        store.write_manifest()
        return _run_batch(params, reps, seed, executor, workers, scheduler, store, precision, label, stall_timeout,
                          expected_replicate_seconds, allow_failures)


def _run_batch(params, reps, seed, executor, workers, scheduler, store, precision, label, stall_timeout,
               expected_replicate_seconds, allow_failures) -> BatchResult:
    """``run_batch`` once its folder (if any) is claimed and opened: run what is missing, keep, summarise."""
    seeds = replicate_seeds(seed, reps)
    done_before = set(store.completed()) if store is not None else set()
    todo = [k for k in range(reps) if k not in done_before]
    rows: dict[int, dict] = {}
    failed: dict[int, str] = store.failed if store is not None else {}
    progress = Progress(reps, label, done=reps - len(todo))

    def on_done(k: int, future: Future) -> None:
        try:
            ts, row = future.result()
        except Exception as exc:  # noqa: BLE001 - a failed replicate must not take the batch down
            failed[k] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        else:
            if store is not None:
                store.write_replicate(k, ts, row)
            else:
                rows[k] = row
        if store is not None:
            store.write_manifest(throttle=True)
        progress.advance()

    def on_stop() -> tuple[str, list[int]]:
        if store is None:
            return f"{len(rows)} of {reps} replicates had finished ({ranges(rows)}); not kept (no output folder)", list(rows)
        store.write_manifest()
        done = store.completed()
        return f"{len(done)} of {reps} replicates finished ({ranges(done)}) and are kept in {store.out}/: rerun with --resume to run the rest", done

    if stall_timeout is None:
        stall_timeout = default_stall_timeout(expected_replicate_seconds)
    try:
        run_calls({k: (replicate_result, params, seeds[k], k) for k in todo}, on_done, on_stop, executor=executor,
                  workers=workers, scheduler=scheduler, stall_timeout=stall_timeout)
    finally:
        progress.close()
    if store is not None:
        store.write_manifest()
        result = BatchResult(store.replicates(), store.write_summary(precision), dict(failed), store.out)
    else:
        table = pd.DataFrame([rows[k] for k in sorted(rows)])
        result = BatchResult(table, summary_statistics(table, precision), dict(failed), None)
    if failed and not allow_failures:
        first = min(failed)
        raise ReplicatesFailed(
            f"{len(failed)} of {reps} replicates failed ({ranges(failed)}); replicate {first} (seed {seeds[first]}): {failed[first]}. "
            "The others are in .result" + (f" and {store.out}/: rerun with --resume to run the failed ones again" if store else ""),
            result, dict(failed))
    return result
