"""Paired replicates for the app: run on a warm executor, handed over as they finish, remembered for next time.

One ``Runner`` lives as long as the app's server. Its executor is the project's (``sim.runs.batch.executor_for``:
local worker processes by default, one process with ``workers=1``, or a Dask scheduler), started once so that a
Run does not wait for processes to start and import the model. Every finished run is kept in a cache keyed by
(scenario parameters, seed): a setting run before is answered at once, and more replicates of it, or a new
programme setting against the same baseline, run only what is missing. Replicate k always runs on seed k of
``replicate_seeds(root_seed, ...)``, the same seeds as ``sim compare`` with that root seed, so the app's numbers are
the CLI's numbers.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import ExitStack
from typing import Callable

from ..runs.batch import InlineExecutor, executor_for, replicate_seeds
from ..runs.paired import pair, run_replicate

#: finished runs kept (one is a few hundred kB: its monthly series, cost ledger and parameters)
CACHE_RUNS = 2000


def _warm() -> bool:
    """A no-op task that makes a worker process start and import the model before the first Run."""
    return True


class Runner:
    """A warm executor and the cache of finished runs; ``pairs`` runs a comparison and reports as it goes."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        self._stack = ExitStack()
        self.executor = self._stack.enter_context(executor_for(workers, scheduler))
        self.workers = 1 if isinstance(self.executor, InlineExecutor) else (workers or 2)
        self._cache: OrderedDict[tuple, dict] = OrderedDict()
        self._lock = threading.Lock()
        if not isinstance(self.executor, InlineExecutor):
            for _ in range(self.workers):
                self.executor.submit(_warm)

    def close(self) -> None:
        self._stack.close()

    def cached(self, params, seed: int) -> dict | None:
        with self._lock:
            run = self._cache.get((params, seed))
            if run is not None:
                self._cache.move_to_end((params, seed))
            return run

    def _keep(self, params, seed: int, run: dict) -> None:
        with self._lock:
            self._cache[(params, seed)] = run
            while len(self._cache) > CACHE_RUNS:
                self._cache.popitem(last=False)

    def pairs(self, base, iv, reps: int, root_seed: int, on_pair: Callable[[dict], None],
              cancelled: Callable[[], bool] = lambda: False) -> dict[int, tuple]:
        """Run the paired replicates 0..reps-1 of ``base`` and ``iv`` (cached runs are not run again), calling
        ``on_pair({k: pair})`` with every pair finished so far each time one more finishes, lowest replicates
        first. Stops early, leaving queued runs cancelled, when ``cancelled()`` turns true. Returns the pairs."""
        seeds = replicate_seeds(root_seed, reps)
        done: dict[int, tuple] = {}
        runs: dict[tuple, dict] = {}
        todo = []
        for k, seed in enumerate(seeds):
            for params in (base, iv):
                run = self.cached(params, seed)
                if run is None:
                    todo.append((k, params, seed))
                else:
                    runs[(k, params is iv)] = run

        def complete(k: int) -> bool:
            if k not in done and (k, False) in runs and (k, True) in runs:
                done[k] = pair(k, seeds[k], runs[(k, False)], runs[(k, True)])
                return True
            return False

        if any([complete(k) for k in range(reps)]):
            on_pair(dict(done))
        window = 1 if isinstance(self.executor, InlineExecutor) else 2 * self.workers
        queue = iter(todo)
        in_flight: dict = {}
        while True:
            while len(in_flight) < window and not cancelled() and (item := next(queue, None)) is not None:
                k, params, seed = item
                in_flight[self.executor.submit(run_replicate, params, seed)] = item
            if not in_flight:
                break
            finished, _ = wait(list(in_flight), timeout=0.25, return_when=FIRST_COMPLETED)
            if cancelled():
                for future in in_flight:
                    future.cancel()
                break
            for future in finished:
                k, params, seed = in_flight.pop(future)
                run = future.result()
                self._keep(params, seed, run)
                runs[(k, params is iv)] = run
                if complete(k):
                    on_pair(dict(done))
        return done
