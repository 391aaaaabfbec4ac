"""Paired replicates for the app: run on a warm executor, handed over as they finish, remembered for next time.

One ``Runner`` lives as long as the app's server. Its executor is the project's (``sim.runs.batch.executor_for``:
local worker processes, one per core by default, one process with ``workers=1``, or a Dask scheduler), started once
so that a Run does not wait for processes to start and import the model; if a worker dies (killed, out of memory),
the pool is started again and the Run goes on. Finished runs are kept in a cache keyed by (scenario parameters,
seed), up to ``CACHE_BYTES``: a setting run before is answered at once, and more replicates of it, or a new
programme setting against the same baseline, run only what is missing. Replicate k always runs on seed k of
``replicate_seeds(root_seed, ...)``, the same seeds as ``sim compare`` with that root seed, so the app's numbers are
the CLI's numbers.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, wait
from contextlib import ExitStack
from typing import Callable

from ..runs.batch import InlineExecutor, executor_for, replicate_seeds
from ..runs.paired import pair, run_against, run_replicate

#: memory the cache of finished runs may take (a 10-year run is about 0.2 MB, a 40-year one about 0.7 MB)
CACHE_BYTES = 1_000_000_000


def _warm() -> bool:
    """A no-op task that makes a worker process start and import the model before the first Run."""
    return True


def run_bytes(run: dict) -> int:
    """Roughly what a finished run takes in memory: its monthly series and cost ledger (the rest is small)."""
    return int(run["timeseries"].memory_usage(deep=True).sum() + run["ledger"].memory_usage(deep=True).sum()) + 20_000


class Runner:
    """A warm executor and the cache of finished runs; ``pairs`` runs a comparison and reports as it goes."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        self._how = (workers, scheduler)
        self._cache: OrderedDict[tuple, tuple[dict, int]] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        workers, scheduler = self._how
        self._stack = ExitStack()
        self.executor = self._stack.enter_context(executor_for(workers, scheduler))
        if isinstance(self.executor, InlineExecutor):
            self.workers = 1
        elif scheduler:  # as many runs in flight as the cluster has workers (at least 2 while they join)
            client = getattr(self.executor, "_client", None)
            self.workers = max(2, len(client.scheduler_info().get("workers", {}))) if client is not None else 4
        else:
            self.workers = workers or os.cpu_count() or 1
        if not isinstance(self.executor, InlineExecutor):
            for _ in range(self.workers):
                self.executor.submit(_warm)

    def _restart(self) -> None:
        """A new pool after a worker died (the old one refuses all work from then on)."""
        kill = getattr(self.executor, "kill", None)  # the local pool's: ends what is left of it
        if kill is not None:
            kill()
        self._stack.pop_all()  # nothing left to close
        self._start()

    def close(self) -> None:
        self._stack.close()

    def cached(self, params, seed: int, start_from=None) -> dict | None:
        """The finished run of ``params`` on ``seed`` (from the start of ``start_from``, if given), if kept."""
        with self._lock:
            entry = self._cache.get((params, seed, start_from))
            if entry is None:
                return None
            self._cache.move_to_end((params, seed, start_from))
            return entry[0]

    def _keep(self, params, seed: int, start_from, run: dict) -> None:
        size = run_bytes(run)
        with self._lock:
            if (params, seed, start_from) in self._cache:
                return
            self._cache[(params, seed, start_from)] = (run, size)
            self._cached_bytes += size
            while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
                _, (_, freed) = self._cache.popitem(last=False)
                self._cached_bytes -= freed

    def pairs(self, base, iv, reps: int, root_seed: int, on_pair: Callable[[dict], None],
              cancelled: Callable[[], bool] = lambda: False) -> dict[int, tuple]:
        """Run the paired replicates 0..reps-1 of ``base`` and ``iv`` (cached runs are not run again), calling
        ``on_pair({k: pair})`` with every pair finished so far each time one more finishes. Stops early when
        ``cancelled()`` turns true: queued runs are dropped, running ones finish into the cache. Returns the pairs."""
        seeds = replicate_seeds(root_seed, reps)
        done: dict[int, tuple] = {}
        runs: dict[tuple, dict] = {}
        todo = []
        for k, seed in enumerate(seeds):
            for params, start_from in ((base, None), (iv, base)):  # the intervention from the baseline's start
                run = self.cached(params, seed, start_from)
                if run is None:
                    todo.append((k, params, seed, start_from))
                else:
                    runs[(k, params is iv)] = run

        def complete(k: int) -> bool:
            if k not in done and (k, False) in runs and (k, True) in runs:
                done[k] = pair(k, seeds[k], runs[(k, False)], runs[(k, True)])
                return True
            return False

        if any([complete(k) for k in range(reps)]):
            on_pair(dict(done))
        restarted = False
        while True:
            try:
                self._run(todo, runs, iv, complete, done, on_pair, cancelled)
                return done
            except BrokenExecutor:
                if restarted:
                    raise
                restarted = True
                self._restart()
                todo = [item for item in todo if (item[0], item[1] is iv) not in runs]

    def _run(self, todo: list, runs: dict, iv, complete, done: dict, on_pair, cancelled) -> None:
        window = 1 if isinstance(self.executor, InlineExecutor) else 2 * self.workers
        queue = iter(todo)
        in_flight: dict = {}
        while True:
            while len(in_flight) < window and not cancelled() and (item := next(queue, None)) is not None:
                k, params, seed, start_from = item
                in_flight[self.executor.submit(run_replicate, params, seed) if start_from is None
                          else self.executor.submit(run_against, start_from, params, seed)] = item
            if not in_flight:
                return
            finished, _ = wait(list(in_flight), timeout=0.25, return_when=FIRST_COMPLETED)
            if cancelled():
                for future, (_, params, seed, start_from) in in_flight.items():
                    if not future.cancel():  # already running: let it finish into the cache for next time
                        future.add_done_callback(lambda f, params=params, seed=seed, start_from=start_from: self._keep(params, seed, start_from, f.result())
                                                 if not f.cancelled() and f.exception() is None else None)
                return
            for future in finished:
                k, params, seed, start_from = in_flight.pop(future)
                run = future.result()  # a worker's error is raised here (BrokenExecutor if the worker died)
                self._keep(params, seed, start_from, run)
                runs[(k, params is iv)] = run
                if complete(k):
                    on_pair(dict(done))
