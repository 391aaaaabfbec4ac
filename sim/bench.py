"""``sim bench``: how fast the engine is, against the speed targets of issue 13 and against a fixed reference workload
timed in the same run, so that the figures mean something on a noisy machine and can be compared between machines.

The stages, each announced by a line on stderr as it starts (the whole takes a few minutes):

1. the reference kernel (``reference_kernel``: a small, fixed, pure-numpy workload), best of ``REFERENCE_REPEATS``;
   every time below is also printed as a multiple of it, in *reference units*: a machine twice as fast, or a
   quiet hour on a busy one, shortens both, so the units move only when the engine does. On a machine whose speed
   wanders within minutes (a shared virtual machine), the kernel is timed again beside each figure (best of
   ``BESIDE_REPEATS`` just before each replicate, the mean of before and after the full-scale run and the batch) and
   each figure's units are against that time; best-of-N keeps the repeat with the fewest units;
2. one replicate of the scenario at its default weights (``[population] scale_general`` and ``scale_cjs_families``,
   real people per agent), 10 years, exactly as a batch replicate runs it (``sim.runs.batch.replicate_result``):
   *build* (the population and its Mesa agents), *run* (every month), *outputs* (``replicate_outputs``: the monthly
   series, summary and cohort metrics, cost ledger and present values; then the model released) and *write* (its two Parquet parts written,
   flushed and renamed into place as a batch writes them); best of ``repeats`` on the same seed (replicate 0 of
   root seed 1), one core;
3. the same at ``population.scale_general=5`` (``scale_cjs_families`` kept, unless it is above 5: then 5), best of
   ``repeats - 1``;
4. full scale, every weight 1, once, in a fresh process (``python -m sim.bench --one``) so that its peak resident
   memory (``ru_maxrss``) is its own;
5. one more replicate at the default weights with each process timed on its own (``time_by_process``, build and
   run): where the time goes (``sim bench --by-process`` prints only this);
6. a Monte Carlo batch of ``batch_reps`` replicates (default 100) on all cores, written to a temporary folder as
   ``sim run --reps`` writes it: seconds a replicate, and the time for 1,000 (projected from it unless 1,000 or
   more ran);
7. the reference kernel again: how far it moved from stage 1 shows how steady the machine was. The heading also
   gives the 1-minute load average as the benchmark started (other work on the cores).

``sim bench --against DIR`` instead times this engine and the one in another checkout in turn (``compare_engines``):
on a machine whose speed wanders, the way to tell whether a change made the engine faster.

The targets (``TARGETS``) are those of issue 13. ``--update-readme`` rewrites the README's Speed table, only the
text between ``README_START`` and ``README_END``. A benchmark to read: the tests check its table, never its timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from .runs import batch as _batch
from .runs.batch import BatchStore, replicate_model, replicate_outputs, replicate_seeds, run_batch
from .runs.output import git_commit
from .state.scenario import ScenarioError, load_scenario

#: the targets of issue 13: seconds of one core a replicate (outputs included), GB, minutes on 2 cores
TARGETS = {"default": 0.6, "weight5": 2.0, "full": 10.0, "full_gb": 4.0, "batch_1000_min": 5.0}
#: markers of the README's generated Speed table; ``--update-readme`` replaces only what is between them
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
#: timed runs of the reference kernel (the best is the reference)
REFERENCE_REPEATS = 7
#: runs of the reference kernel timed beside each measurement (just before each replicate; before and after the
#: full-scale run and the batch), the best kept: its units are against that time
BESIDE_REPEATS = 3
#: replicates of 1,000 in the batch target
BATCH_TARGET_REPS = 1000
#: ``--quick`` (for the tests): 1-year runs with every case's weights multiplied by this (a few hundred agents)
QUICK_WEIGHT_FACTOR = 100
#: the full-scale subprocess is stopped after this many seconds
FULL_SCALE_TIMEOUT = 3600
#: each run of ``sim bench --against`` (a warm-up and the timed replicates of one checkout) is stopped after this many seconds
AGAINST_TIMEOUT = 1800

# --- the reference kernel: FIXED ----------------------------------------------------------------------------------

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MONTH_STRIDE = 0xD1B54A32D192ED03


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def reference_kernel() -> int:
    """The fixed reference workload, and its checksum: a monthly Bernoulli hazard over 100,000 people for 120 months,
    each draw a SplitMix64 hash of (person, month, seed 20261127); a person's hazard (0.2% to 2.2% a month, from
    the hash of their id) rises by half for each of their first four events. Pure numpy on one core: 0.13-0.14 s
    (best of 7) on the project's 2-core machine on 2026-12-02. Returns the sum of each person's events times
    (id mod 9973 + 1): 1,098,384,755.

    NEVER CHANGE THIS FUNCTION, ``_splitmix64`` or their constants: every recorded "reference units" figure
    (the README's Speed table, past runs of ``sim bench``) is a multiple of this workload's time, and comparisons
    across runs and machines hold only while it stays the same. tests/test_bench.py pins its checksum. If it ever
    must change, give the new one another name and say in the README from which date its units count."""
    n, months, seed = 100_000, 120, 20261127
    ids = np.arange(n, dtype=np.uint64)
    base = np.uint64((seed * _GOLDEN) & _MASK)
    u0 = (_splitmix64(ids * np.uint64(_GOLDEN) + base) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    hazard = 0.002 + 0.02 * u0
    events = np.zeros(n, np.int64)
    for m in range(months):
        key = ids * np.uint64(_GOLDEN) + np.uint64((seed * _GOLDEN + (m + 1) * _MONTH_STRIDE) & _MASK)
        u = (_splitmix64(key) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        events += u < hazard * (1.0 + 0.5 * np.minimum(events, 4))
    return int((events * (ids.astype(np.int64) % 9973 + 1)).sum())


def time_reference(repeats: int = REFERENCE_REPEATS) -> tuple[float, int]:
    """Best time of ``repeats`` runs of the reference kernel, in seconds, and its checksum."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        checksum = reference_kernel()
        best = min(best, time.perf_counter() - t0)
    return best, checksum


# --- timing replicates ------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """One replicate's cost in seconds, by step; agents present when built and at the end; peak resident memory of
    the process (bytes) when it ran alone in one."""

    build: float
    run: float
    outputs: float
    write: float
    agents_start: int | None = None
    agents_end: int | None = None
    peak_rss_bytes: float | None = None
    #: the reference kernel timed beside this replicate (best of ``BESIDE_REPEATS`` just before it), seconds
    reference_s: float | None = None

    @property
    def total(self) -> float:
        return self.build + self.run + self.outputs + self.write


def _agents(model) -> int | None:
    try:
        return int(model.people.present[: model.people.n].sum())
    except AttributeError:  # the engine stores its people otherwise
        return None


def time_replicate(params, seed: int) -> Timing:
    """One replicate as a batch replicate runs it (``sim.runs.batch.replicate_result``), step by step, and its two
    Parquet parts written as ``BatchStore.write_replicate`` writes them (to a temporary folder)."""
    gc.collect()
    reference = time_reference(BESIDE_REPEATS)[0]
    t0 = time.perf_counter()
    model = replicate_model(params, seed)
    build = time.perf_counter() - t0
    agents_start = _agents(model)
    t0 = time.perf_counter()
    model.run()
    run = time.perf_counter() - t0
    agents_end = _agents(model)
    t0 = time.perf_counter()
    ts, row = replicate_outputs(model, seed, 0)
    model.release()  # as replicate_result releases it: part of a batch replicate's cost
    del model
    outputs = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
        store = BatchStore(Path(tmp) / "batch", params, 1, 1)
        store.open(resume=False)
        t0 = time.perf_counter()
        store.write_replicate(0, ts, row)
        write = time.perf_counter() - t0
    return Timing(build, run, outputs, write, agents_start, agents_end, reference_s=reference)


def best_of(params, seed: int, repeats: int) -> Timing:
    """The repeat with the fewest reference units (its time over the reference kernel's beside it)."""
    return min((time_replicate(params, seed) for _ in range(max(1, repeats))), key=lambda t: t.total / t.reference_s)


def _peak_rss_bytes() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, kilobytes on Linux


def time_in_fresh_process(scenario: str | Path, overrides: list[str], seed: int, timeout: float = FULL_SCALE_TIMEOUT) -> Timing:
    """``time_replicate`` in a new Python process (``python -m sim.bench --one``), with that process's peak
    resident memory: imports, the replicate and its outputs."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p))
    command = [sys.executable, "-m", "sim.bench", "--one", str(Path(scenario).resolve()), "--seed", str(seed)]
    for o in overrides:
        command += ["--set", o]
    before = time_reference(BESIDE_REPEATS)[0]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the full-scale replicate failed (exit {done.returncode}): {last}")
    timing = Timing(**json.loads(done.stdout.strip().splitlines()[-1]))
    timing.reference_s = (before + time_reference(BESIDE_REPEATS)[0]) / 2  # its own process times the replicate only
    return timing


def time_batch(params, reps: int, workers: int) -> float:
    """Wall time of a batch of ``reps`` replicates on ``workers`` processes, written to a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
        t0 = time.perf_counter()
        run_batch(params, reps, seed=1, workers=workers, out=Path(tmp) / "batch", label=f"bench batch, {workers} worker(s)")
        return time.perf_counter() - t0


# --- where a replicate's time goes ------------------------------------------------------------------------------------

#: what ``time_by_process`` times, as (row label, module, function): the month's processes (in the simulated past of
#: the build too, where they run), the start's synthesis and drawn records, Mesa's bookkeeping of the agents, the
#: monthly record and the outputs; each row's time excludes the time of the rows called inside it
PROCESS_TIMERS = (
    ("synthesis of the start", "sim.state.population", "synthesize"),
    ("parents outside the area", "sim.processes.offending", "record_parents_outside"),
    ("drawn past records (start, newcomers)", "sim.processes.offending", "record_past_convictions"),
    ("justice", "sim.processes.justice", "step"),
    ("intervention", "sim.processes.intervention", "step"),
    ("needs", "sim.processes.needs", "step"),
    ("offending", "sim.processes.offending", "step"),
    ("domestic abuse", "sim.processes.domestic_abuse", "step"),
    ("domestic abuse", "sim.processes.domestic_abuse", "past_month"),
    ("courts", "sim.processes.courts", "step"),
    ("exits (deaths, moves)", "sim.processes.exits", "step"),
    ("family (partners, births)", "sim.processes.family", "step"),
    ("arrivals", "sim.processes.exits", "arrivals"),
    ("Mesa agents (register, remove, release)", "sim.model", "ReoffendingModel.add_agents"),
    ("Mesa agents (register, remove, release)", "sim.model", "ReoffendingModel.remove_agents"),
    ("Mesa agents (register, remove, release)", "sim.model", "ReoffendingModel.release"),
    ("monthly record", "sim.model", "monthly_record"),
    ("outputs (series, metrics, costs)", "sim.runs.batch", "replicate_outputs"),
)


def timed_place(module: str, name: str) -> tuple[object, str]:
    """Where a ``PROCESS_TIMERS`` entry lives: the object holding it (the module, or a class in it) and its name there."""
    import importlib

    owner = importlib.import_module(module)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


class _Timers:
    """Wraps each function of ``PROCESS_TIMERS`` in place (the modules' attributes, which the callers look up at each
    call) to add its exclusive time to ``seconds[(phase, label)]``; ``restore`` puts the originals back."""

    def __init__(self):
        self.phase = "build"
        self.seconds: dict[tuple[str, str], float] = {}
        self._stack: list[float] = []  # time spent in timed callees of each open call
        self._saved = []
        try:
            for label, module, name in PROCESS_TIMERS:
                owner, attr = timed_place(module, name)
                original = getattr(owner, attr)
                self._saved.append((owner, attr, original))
                setattr(owner, attr, self._wrap(label, original))
        except BaseException:  # (one that cannot be found: those already wrapped are put back)
            self.restore()
            raise

    def _wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            self._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                inner = self._stack.pop()
                key = (self.phase, label)
                self.seconds[key] = self.seconds.get(key, 0.0) + elapsed - inner
                if self._stack:
                    self._stack[-1] += elapsed
        return timed

    def restore(self) -> None:
        for owner, attr, original in reversed(self._saved):
            setattr(owner, attr, original)


@dataclass
class ProcessTimes:
    """One replicate's time by process (``time_by_process``): seconds by (phase, label), phase "build" or "run"
    ("outputs" counted with the run), and each phase's whole time."""

    seconds: dict
    build: float
    run: float

    def rows(self) -> list[list[str]]:
        """A row per label, the costliest first, then what no label covers (Python glue, the build's arrays) and the
        whole."""
        labels = list(dict.fromkeys(label for label, _, _ in PROCESS_TIMERS))
        total = self.build + self.run
        out = []
        for label in sorted(labels, key=lambda lb: -(self.seconds.get(("build", lb), 0) + self.seconds.get(("run", lb), 0))):
            b, r = self.seconds.get(("build", label), 0.0), self.seconds.get(("run", label), 0.0)
            if b + r > 0:
                out.append([label, f"{b:.2f} s", f"{r:.2f} s", f"{(b + r) / total:.0%}"])
        other_b = self.build - sum(v for (ph, _), v in self.seconds.items() if ph == "build")
        other_r = self.run - sum(v for (ph, _), v in self.seconds.items() if ph == "run")
        out.append(["the rest (glue, arrays, copies)", f"{other_b:.2f} s", f"{other_r:.2f} s", f"{(other_b + other_r) / total:.0%}"])
        out.append(["whole replicate", f"{self.build:.2f} s", f"{self.run:.2f} s", "100%"])
        return out


PROCESS_HEADER = ["where a replicate's time goes", "build (with the simulated past)", "run and outputs", "share"]


def time_by_process(params, seed: int) -> ProcessTimes:
    """One replicate (build, run, outputs, release) with each of ``PROCESS_TIMERS`` timed; the wrappers cost about a
    microsecond a call (a few thousand calls), so the whole is a little slower than ``time_replicate``'s."""
    gc.collect()
    timers = _Timers()
    try:
        t0 = time.perf_counter()
        model = replicate_model(params, seed)
        build = time.perf_counter() - t0
        timers.phase = "run"
        t0 = time.perf_counter()
        model.run()
        _batch.replicate_outputs(model, seed, 0)  # (looked up on its module, so that its timer counts it)
        model.release()
        run = time.perf_counter() - t0
    finally:
        timers.restore()
    return ProcessTimes(timers.seconds, build, run)


# --- the cases ------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    key: str  # "default", "weight5", "full"
    label: str
    general: float
    cjs: float
    overrides: list[str]
    repeats: int = 1
    timing: Timing | None = None
    skipped: str | None = None


def _years(y: float) -> str:
    return f"{y:g} year" + ("" if y == 1 else "s")


def _weight(x: float) -> str:
    return f"{x:g}"


def cases(scenario: str | Path, years: float, repeats: int, quick: bool) -> list[Case]:
    """The three single-replicate cases, with their ``--set`` overrides."""
    pop = load_scenario(scenario, [f"run.years={years:g}"]).population
    f = QUICK_WEIGHT_FACTOR if quick else 1
    weights = {
        "default": (pop.scale_general, pop.scale_cjs_families),
        "weight5": (5.0, min(pop.scale_cjs_families, 5.0)),
        "full": (1.0, 1.0),
    }
    labels = {"default": "default weights", "weight5": "weight 5", "full": "full scale"}
    runs = {"default": max(1, repeats), "weight5": max(1, repeats - 1), "full": 1}
    out = []
    for key, (g, c) in weights.items():
        overrides = [f"run.years={years:g}"]
        if key != "default" or quick:  # the default case is the scenario as it stands
            g, c = g * f, c * f
            overrides += [f"population.scale_general={g!r}", f"population.scale_cjs_families={c!r}"]
        out.append(Case(key, labels[key], g, c, overrides, repeats=runs[key]))
    return out


# --- machine, results and their tables -------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass
class Results:
    reference_s: float
    cases: list[Case]
    years: float
    workers: int
    batch_reps: int = 0
    batch_wall_s: float | None = None
    quick: bool = False
    day: str = field(default_factory=lambda: date.today().isoformat())
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    cpu: str = field(default_factory=cpu_model)
    commit: str | None = field(default_factory=lambda: (git_commit() or "")[:10] or None)
    #: the 1-minute load average as the benchmark started: other work sharing the cores (None: not known)
    load_at_start: float | None = None
    #: the reference kernel timed again at the end (its drift shows how steady the machine was)
    reference_end_s: float | None = None
    #: the reference kernel beside the batch: the mean of its times just before and just after it
    batch_reference_s: float | None = None
    #: one default-weights replicate timed by process (``time_by_process``; None: not run)
    processes: ProcessTimes | None = None

    def case(self, key: str) -> Case:
        return next(c for c in self.cases if c.key == key)

    def units(self, seconds: float | None, reference_s: float | None = None) -> str:
        """``seconds`` in reference units: against the reference kernel timed beside that measurement if given,
        else the one at the start."""
        if seconds is None:
            return ""
        u = seconds / (reference_s or self.reference_s)
        return f"{u:,.1f}" if u < 100 else f"{u:,.0f}"

    @property
    def batch_per_rep(self) -> float | None:
        return self.batch_wall_s / self.batch_reps if self.batch_wall_s is not None and self.batch_reps else None

    def efficiency(self) -> float | None:
        """Parallel efficiency of the batch: one replicate's best time on one core over the batch's wall time per
        replicate times the workers (approximate: a best time against a batch's average)."""
        single = self.case("default").timing
        if single is None or self.batch_per_rep is None:
            return None
        return single.total / (self.batch_per_rep * self.workers)

    def replicate_rows(self) -> list[list[str]]:
        rows = []
        for c in self.cases:
            t = c.timing
            name = f"{c.label}, best of {c.repeats}" if c.repeats > 1 else c.label
            if c.key == "full":
                name += ", own process"
            if t is None:
                rows.append([name, f"{_weight(c.general)} / {_weight(c.cjs)}", "", "", "", "", "", c.skipped or "skipped", "", ""])
                continue
            agents = "" if t.agents_start is None else f"{t.agents_start:,}"
            rows.append([name, f"{_weight(c.general)} / {_weight(c.cjs)}", agents, f"{t.build:.2f} s", f"{t.run:.2f} s",
                         f"{t.outputs:.2f} s", f"{t.write:.2f} s", f"{t.total:.2f} s", self.units(t.total, t.reference_s),
                         "" if t.peak_rss_bytes is None else f"{t.peak_rss_bytes / 1e9:.2f} GB"])
        return rows

    def target_rows(self) -> list[list[str]]:
        def verdict(value, target):
            return "meets" if value <= target else "misses"

        rows = []
        for key, what in (("default", "one replicate, default weights, with outputs"), ("weight5", "one replicate, weight 5"),
                          ("full", "full scale, time")):
            c, target = self.case(key), TARGETS[key]
            t = c.timing
            rows.append([what, f"{t.total:.2f} s" if t else c.skipped or "skipped",
                         self.units(t.total if t else None, t.reference_s if t else None),
                         f"<= {target:g} s", verdict(t.total, target) if t else ""])
        t, target = self.case("full").timing, TARGETS["full_gb"]
        peak = t.peak_rss_bytes if t else None
        rows.append(["full scale, peak memory", f"{peak / 1e9:.2f} GB" if peak else self.case("full").skipped or "skipped", "",
                     f"<= {target:g} GB", verdict(peak / 1e9, target) if peak else ""])
        per = self.batch_per_rep
        what = f"{BATCH_TARGET_REPS:,} replicates, {self.workers} worker{'s' if self.workers != 1 else ''}"
        if per is None:
            rows.append([what, "skipped", "", f"<= {TARGETS['batch_1000_min']:g} min on 2 cores", ""])
        else:
            thousand = per * BATCH_TARGET_REPS
            how = "measured" if self.batch_reps >= BATCH_TARGET_REPS else f"projected from {self.batch_reps:,}"
            rows.append([what, f"{thousand / 60:.1f} min ({how})", self.units(thousand, self.batch_reference_s),
                         f"<= {TARGETS['batch_1000_min']:g} min on 2 cores", verdict(thousand / 60, TARGETS["batch_1000_min"])])
        return rows

    def heading(self) -> str:
        commit = f", commit {self.commit}" if self.commit else ""
        return (f"{self.day}, {self.cores} cores ({self.cpu}), Python {platform.python_version()}, numpy {np.__version__}{commit}; "
                f"reference kernel {self.reference_s * 1000:.0f} ms = 1 reference unit, timed again beside each figure"
                + (f" ({self.reference_end_s * 1000:.0f} ms at the end)" if self.reference_end_s is not None else "")
                + (f"; load average {self.load_at_start:.1f} as it started" if self.load_at_start is not None else "")
                + ("; --quick (1-year runs, tiny populations: not benchmark figures)" if self.quick else ""))

    def notes(self) -> list[str]:
        out = []
        if self.batch_wall_s is not None:
            eff = self.efficiency()
            out.append(f"Batch of {self.batch_reps:,} replicates of {_years(self.years)} on {self.workers} worker(s): "
                       f"{self.batch_wall_s:.1f} s, {self.batch_per_rep:.2f} s a replicate"
                       + (f"; parallel efficiency about {eff:.0%} (one replicate's best time over workers x the batch's time a replicate)" if eff else "")
                       + ".")
        return out


REPLICATE_HEADER = ["one replicate, one core", "weights (general / CJS)", "agents", "build", "run", "outputs", "write", "total",
                    "reference units", "peak memory"]
TARGET_HEADER = ["figure", "measured", "reference units", "target", ""]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("<=", "≤") for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def render_text(res: Results) -> str:
    parts = [f"sim bench: {res.heading()}", "",
             f"One replicate of {_years(res.years)} as a batch replicate runs it (build, run, outputs: series, summary and "
             "cohort metrics, cost ledger, the model released; write: its Parquet parts):",
             text_table(REPLICATE_HEADER, res.replicate_rows()), "", "Against the targets:",
             text_table(TARGET_HEADER, res.target_rows())]
    if res.processes is not None:
        parts += ["", "Where the time of one default-weights replicate goes (each process timed, the time of what it calls "
                  "excluded):", text_table(PROCESS_HEADER, res.processes.rows())]
    notes = res.notes()
    return "\n".join(parts + ([""] + notes if notes else []))


def render_markdown(res: Results) -> str:
    """The README's block: the prose wrapped as the README is (115 columns), the tables as Markdown."""
    lines = [*textwrap.wrap(f"Measured {res.heading()}.", 115), "", markdown_table(REPLICATE_HEADER, res.replicate_rows()), "",
             markdown_table(TARGET_HEADER, res.target_rows())]
    if res.processes is not None:
        lines += ["", markdown_table(PROCESS_HEADER, res.processes.rows())]
    for note in res.notes():
        lines += ["", *textwrap.wrap(note, 115)]
    return "\n".join(lines)


# --- the README --------------------------------------------------------------------------------------------------------


class MarkersMissing(ValueError):
    """The README lacks the bench markers, or has them more than once or out of order."""


def check_markers(text: str) -> tuple[int, int]:
    """Where the generated block starts (after the start marker's line) and ends (at the end marker)."""
    if text.count(README_START) != 1 or text.count(README_END) != 1:
        raise MarkersMissing(f"needs exactly one {README_START} and one {README_END} line around the Speed table")
    start, end = text.index(README_START), text.index(README_END)
    if end < start:
        raise MarkersMissing(f"{README_END} comes before {README_START}")
    return start + len(README_START), end


def replace_block(text: str, block: str) -> str:
    """``text`` with what is between the markers replaced by ``block`` (on lines of its own); nothing else changes."""
    start, end = check_markers(text)
    return text[:start] + "\n" + block.strip("\n") + "\n" + text[end:]


def update_readme(path: Path, block: str) -> None:
    """Replace the marked block of ``path`` atomically: a temporary file beside it, then ``os.replace``."""
    path = Path(path)
    text = path.read_text()
    new = replace_block(text, block)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- the benchmark ---------------------------------------------------------------------------------------------------


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _stage(n: int, total: int, text: str) -> None:
    print(f"bench [{n}/{total}] {text}", file=sys.stderr, flush=True)


def _done(text: str) -> None:
    print(f"bench       {text}", file=sys.stderr, flush=True)


def run_bench(scenario: str | Path = "scenarios/baseline.toml", repeats: int = 3, batch_reps: int = 100, workers: int | None = None,
              full: bool = True, quick: bool = False) -> Results:
    """Every stage of the benchmark (see the module's notes); progress on stderr."""
    load = _load_average()
    years = 1.0 if quick else 10.0
    workers = workers or os.cpu_count() or 1
    seed = replicate_seeds(1, 1)[0]  # replicate 0 of a batch with root seed 1
    todo = cases(scenario, years, repeats, quick)
    n = 3 + len(todo)
    ref_repeats = 2 if quick else REFERENCE_REPEATS
    _stage(1, n, f"reference kernel, best of {ref_repeats}")
    ref, checksum = time_reference(ref_repeats)
    _done(f"{ref * 1000:.0f} ms (checksum {checksum:,})")
    for i, c in enumerate(todo, start=2):
        where = "in its own process" if c.key == "full" else f"best of {c.repeats}"
        _stage(i, n, f"one replicate, {c.label} (general {_weight(c.general)}, CJS {_weight(c.cjs)}), {_years(years)}, {where}")
        if c.key == "full" and not full:
            c.skipped = "skipped (--no-full)"
            _done(c.skipped)
            continue
        if c.key == "full":
            try:
                c.timing = time_in_fresh_process(scenario, c.overrides, seed)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:  # out of memory (killed), say: the rest still runs
                c.skipped = "failed"
                _done(f"failed: {exc}")
                continue
        else:
            c.timing = best_of(load_scenario(scenario, c.overrides), seed, c.repeats)
        t = c.timing
        _done(f"{t.total:.2f} s (build {t.build:.2f}, run {t.run:.2f}, outputs {t.outputs:.2f}, write {t.write:.2f})"
              + (f", peak memory {t.peak_rss_bytes / 1e9:.2f} GB" if t.peak_rss_bytes else ""))
    res = Results(ref, todo, years, workers, quick=quick, load_at_start=load)
    _stage(n - 1, n, f"where the time goes: one replicate, {todo[0].label}, each process timed")
    res.processes = time_by_process(load_scenario(scenario, todo[0].overrides), seed)
    _done(f"{res.processes.build + res.processes.run:.2f} s with the timers")
    _stage(n, n, f"batch of {batch_reps:,} replicates, default weights, on {workers} worker(s)" if batch_reps else "batch: skipped (--batch-reps 0)")
    if batch_reps:
        res.batch_reps = batch_reps
        before = time_reference(BESIDE_REPEATS)[0]
        res.batch_wall_s = time_batch(load_scenario(scenario, todo[0].overrides), batch_reps, workers)
        _done(f"{res.batch_wall_s:.1f} s, {res.batch_per_rep:.2f} s a replicate")
    res.reference_end_s = time_reference(ref_repeats)[0]
    if batch_reps:
        res.batch_reference_s = (before + res.reference_end_s) / 2
    _done(f"reference kernel again: {res.reference_end_s * 1000:.0f} ms")
    return res


def main(scenario: str | Path = "scenarios/baseline.toml", repeats: int = 3, batch_reps: int = 100, workers: int | None = None,
         full: bool = True, quick: bool = False, readme: Path | None = None) -> int:
    """``sim bench``: run the benchmark and print its tables; with ``readme``, also rewrite that file's marked Speed
    block (refused, exit 2, before anything runs if the markers are missing, or with ``quick``)."""
    if readme is not None:
        if quick:
            print("sim: error: --update-readme with --quick: quick figures are not benchmark figures", file=sys.stderr)
            return 2
        try:
            check_markers(Path(readme).read_text())
        except OSError as exc:
            print(f"sim: error: --update-readme: cannot read {readme} ({exc.strerror or exc})", file=sys.stderr)
            return 2
        except MarkersMissing as exc:
            print(f"sim: error: --update-readme: {readme} {exc}; nothing written", file=sys.stderr)
            return 2
    res = run_bench(scenario, repeats, batch_reps, workers, full, quick)
    print(render_text(res), flush=True)
    if any(c.skipped == "failed" for c in res.cases):
        print("sim: error: a stage of the benchmark failed (see above)" + ("; README not rewritten" if readme is not None else ""),
              file=sys.stderr)
        return 1
    if readme is not None:
        try:
            update_readme(Path(readme), render_markdown(res))
        except MarkersMissing as exc:  # the file changed while the benchmark ran
            print(f"sim: error: --update-readme: {readme} {exc}; nothing written", file=sys.stderr)
            return 2
        print(f"-> {readme}: Speed table between {README_START} and {README_END} rewritten", flush=True)
    return 0


def main_by_process(scenario: str | Path, quick: bool = False) -> int:
    """``sim bench --by-process``: one replicate at the scenario's default weights (after a one-year warm-up: compiled
    kernels, caches), each process timed (``time_by_process``), printed as a table: where to look first."""
    try:
        todo = cases(scenario, 1.0 if quick else 10.0, 1, quick)
    except ScenarioError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return 2
    params = load_scenario(scenario, todo[0].overrides)
    seed = replicate_seeds(1, 1)[0]
    _stage(1, 2, "warm-up: one replicate of a year")
    with replicate_model(load_scenario(scenario, todo[0].overrides + ["run.years=1"]), seed) as model:
        model.run()
    _stage(2, 2, f"one replicate, {todo[0].label}, {_years(params.run.years)}, each process timed")
    times = time_by_process(params, seed)
    print(f"sim bench --by-process: {scenario}, {todo[0].label} (general {_weight(todo[0].general)}, CJS "
          f"{_weight(todo[0].cjs)}), seed {seed}; each row's time excludes the rows it calls"
          + ("; --quick (1-year run, tiny population)" if quick else ""))
    print(text_table(PROCESS_HEADER, times.rows()), flush=True)
    return 0


# --- two versions of the engine, in turn ----------------------------------------------------------------------------

#: run in a fresh process by ``compare_engines``: one replicate from the checkout ``sys.argv[1]`` (its ``sim``, not the
#: installed one: the editable install's import hook is taken off), a warm-up replicate of a year with its outputs
#: (compiled kernels, caches), then the best of ``sys.argv[3]`` timed runs of build + run + outputs; prints the file
#: of the ``sim`` it imported and the seconds
_AB_SCRIPT = """
import sys, time
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in (getattr(f, "__module__", "") + getattr(f, "__name__", ""))]
sys.path.insert(0, sys.argv[1])
import sim
from sim.runs.batch import replicate_model, replicate_outputs
from sim.state.scenario import load_scenario
params, seed = load_scenario(sys.argv[2]), int(sys.argv[4])
m = replicate_model(params, seed); m.run(12); replicate_outputs(m, seed, 0)
best = float("inf")
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); m = replicate_model(params, seed); m.run(); replicate_outputs(m, seed, 0)
    getattr(m, "release", lambda: None)()  # as a batch replicate (engines that have it)
    best = min(best, time.perf_counter() - t)
print(sim.__file__)
print(best)
"""


def _time_checkout(root: Path, scenario: Path, repeats: int, seed: int) -> float:
    """``_AB_SCRIPT`` in a fresh process for the checkout ``root``: its best time, after checking it imported that
    checkout's ``sim``."""
    try:
        out = subprocess.run([sys.executable, "-c", _AB_SCRIPT, str(root), str(scenario), str(repeats), str(seed)],
                             capture_output=True, text=True, cwd=root, timeout=AGAINST_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the engine in {root} took more than {AGAINST_TIMEOUT} s for {repeats + 1} replicates; stopped") from None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the engine in {root} did not run: {last}")
    if not Path(lines[0]).resolve().is_relative_to(root / "sim"):
        raise RuntimeError(f"the run meant for {root} imported {lines[0]}")
    return float(lines[1])


def compare_engines(other: Path, scenario: str | Path = "scenarios/baseline.toml", rounds: int = 6, repeats: int = 2) -> dict:
    """This checkout's engine against the one in the checkout ``other`` (e.g. ``git worktree add /tmp/old REV``), run
    in turn ``rounds`` times (which goes first alternates), each a fresh process timing one replicate of
    ``scenario`` (best of ``repeats``, after a warm-up; both engines read the same scenario file, which an older
    engine may not understand). On a machine whose speed wanders, only versions timed in the same minutes compare;
    the paired ratio of each round (this / other) is the figure to read. Returns the times, the ratios and medians."""
    roots = {"other": Path(other).resolve(), "this": Path(__file__).resolve().parents[1]}
    scenario, seed = Path(scenario).resolve(), replicate_seeds(1, 1)[0]
    times: dict[str, list[float]] = {"other": [], "this": []}
    for r in range(rounds):
        for name in (("other", "this") if r % 2 == 0 else ("this", "other")):
            times[name].append(_time_checkout(roots[name], scenario, repeats, seed))
        _done(f"round {r + 1}/{rounds}: other {times['other'][-1]:.3f} s, this {times['this'][-1]:.3f} s")
    ratios = [t / o for t, o in zip(times["this"], times["other"])]
    return {**times, "ratios": ratios, "ratio_median": float(np.median(ratios)),
            "other_median": float(np.median(times["other"])), "this_median": float(np.median(times["this"]))}


def main_against(other: Path, scenario: str | Path, rounds: int) -> int:
    """``sim bench --against DIR``: print ``compare_engines``' answer."""
    if not (Path(other) / "sim" / "runs" / "batch.py").is_file():
        print(f"sim: error: --against: {other} is not a checkout of this project with sim/runs/batch.py", file=sys.stderr)
        return 2
    try:
        load_scenario(scenario)
    except ScenarioError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return 2
    _stage(1, 1, f"this engine against {other}, {rounds} rounds in turn, one replicate each (best of 2)")
    try:
        res = compare_engines(Path(other), scenario, rounds)
    except RuntimeError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return 1
    speed = 1 / res["ratio_median"]
    print(f"{rounds} rounds: this {res['this_median']:.3f} s, other {res['other_median']:.3f} s (medians); time ratio this / other"
          f" {res['ratio_median']:.2f} (median; rounds {min(res['ratios']):.2f} to {max(res['ratios']):.2f}): this engine is "
          + (f"{speed:.2f} times as fast" if speed >= 1 else f"{1 / speed:.2f} times as slow"))
    return 0


def _one(argv: list[str] | None = None) -> int:
    """``python -m sim.bench --one SCENARIO [--seed S] [--set K=V ...]``: time one replicate in this process and print
    its Timing, with this process's peak resident memory, as one JSON line (what ``time_in_fresh_process`` reads)."""
    ap = argparse.ArgumentParser(prog="python -m sim.bench")
    ap.add_argument("--one", required=True, metavar="SCENARIO")
    ap.add_argument("--seed", type=int, default=replicate_seeds(1, 1)[0])
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    try:
        params = load_scenario(args.one, args.set)
    except ScenarioError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return 2
    t = time_replicate(params, args.seed)
    t.peak_rss_bytes = _peak_rss_bytes()
    print(json.dumps(asdict(t)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_one())
