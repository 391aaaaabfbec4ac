"""How a batch stops short: the exceptions ``sim.runs.batch`` raises, in a module of their own (standard library only)
so that the command line can catch them without importing the model first (``sim --help`` and a refused input then
answer in a fraction of a second)."""

from __future__ import annotations


class BatchError(RuntimeError):
    """A batch that stopped short or had failures; ``finished`` lists the replicates (or runs) that finished."""

    def __init__(self, message: str, finished=()):
        super().__init__(message)
        self.finished = sorted(finished)


class BatchStalled(BatchError):
    """No replicate finished for ``stall_timeout`` seconds (workers dead, or a cluster with none)."""


class BatchBroken(BatchError):
    """The executor broke (a local worker process was killed, say): not the replicates' fault, so none is
    recorded as failed; the batch stops rather than restarting the pool, and ``--resume`` runs the rest."""


class BatchInterrupted(BatchError):
    """SIGINT (Ctrl-C) or SIGTERM stopped the batch; ``signal`` is its name ("SIGINT" or "SIGTERM")."""

    def __init__(self, message: str, finished=(), signal: str = "SIGINT"):
        super().__init__(message, finished)
        self.signal = signal
