"""What a local pool worker does before anything else: ignore Ctrl-C and exit with the main process.

A worker is born with SIGINT blocked (``sim.runs.batch._sigint_blocked``) and this module, which imports only the
standard library (``sim/__init__`` exports lazily), is the first it runs: a SIGINT that lands while the worker starts
(it imports the model, and numba builds its ufunc wrappers inside a callback that can only print an exception) would
otherwise print a ``KeyboardInterrupt`` traceback or kill the worker and break the batch.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading


def init_worker() -> None:
    """In each pool worker: leave Ctrl-C to the main process, which stops the batch once for all; and exit as soon
    as the main process is gone, even killed by SIGKILL, rather than run on as an orphan. The parent's sentinel
    is the read end of the pipe the main process started this worker through (under forkserver too: the
    forkserver hands the worker that pipe, whose write end only the main process holds), so it becomes ready
    when the main process exits. With the workers gone, the forkserver and resource tracker exit too (they stop
    when the last holder of their pipe does)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # born with SIGINT blocked (see sim.runs.batch._sigint_blocked): a
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # pending one is dropped, being ignored now
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), name="exit-with-parent", daemon=True).start()


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)
