"""A small progress bar for long work: done/total, rate and time left, on a terminal only (quiet in CI and pipes)."""

from __future__ import annotations

import os
import sys
import time


class Progress:
    def __init__(self, total: int, label: str, done: int = 0):
        self.total, self.label, self.done = total, label, done
        self.start_done = done
        self.t0 = time.perf_counter()
        self.enabled = sys.stderr.isatty() and not os.environ.get("CI")
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def close(self) -> None:
        """End the bar's line if the work stopped short, so that a message after it starts on a line of its own."""
        if self.enabled and self.done < self.total:
            print(file=sys.stderr, flush=True)

    def _draw(self) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        eta = f"{left:,.0f} s left" if left == left else "..."
        end = "\n" if self.done >= self.total else ""
        print(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}  {rate:.2f}/s  {eta}   ",
              end=end, file=sys.stderr, flush=True)
