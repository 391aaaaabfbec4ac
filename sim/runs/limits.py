"""What a scenario will cost before it runs: agents, months, peak memory and CPU time of one replicate.

``estimate(params)`` is arithmetic on the [run], [population] and [demography] sections, mirroring how
``sim.state.population`` sizes the starting population (real counts / ``scale_*``, partners, children per parent) and
how births and arrivals add rows during the run; nothing is built or allocated, so it is instant and cannot
overflow even for absurd inputs (``run.years = 1e8``, ``population.scale_general = 1e-12``: every quantity is a
float, possibly ``inf``). ``check_limits`` refuses, in one line that gives the estimate, a scenario whose replicates
would not fit in this machine's memory or would take longer than a time limit; the command line calls it before
any work starts.

Where memory goes (sim/state/people.py, sim/model.py): one row per person who has ever lived in the run (rows are never
reused, so births and arrivals add rows every month), held in the arrays of ``people.FIELDS``, whose capacity
doubles from 1024 (so up to twice the rows are allocated, though only the rows filled so far are touched: the
estimate counts the whole capacity, erring high); a Mesa ``Person`` for each person present; per-month
temporaries over all rows; the event log (offences only with ``sim run --events``); and per month the collected
series, the cost ledger and the cohort metrics. Nothing is preallocated in proportion to the months (the age
tables stop at 120 years), so the months cost memory only through what each month records.

The constants below were measured with ``python -m sim.runs.limits --measure`` (``measure``: a fresh subprocess runs
exactly what a batch replicate runs, ``sim.runs.batch.replicate_result``, or with ``events=True`` what ``sim run
--events`` runs; resident memory after the imports, its high-water mark while the replicate runs, from
/proc/self/status, and CPU time from ``resource.getrusage``) at several sizes, and fitted by least squares; each
variable cost carries a deliberate margin (``MARGIN``) so the estimate errs high.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace

import numpy as np

from ..state.params import Dist, Params
from ..state.people import FIELDS
from ..state.population import general_households, general_parents_per_household
from ..state.scenario import DRAW_TAIL, ScenarioError, _map_uncertain

# --- measured constants -------------------------------------------------------------------------------------------
# Measured on 2026-11-27 on the project's 2-core, 24 GB machine (Linux, Python 3.11, numpy 2, mesa 3) with
# `python -m sim.runs.limits --measure`: 12 replicates of 4,400 to 440,000 agents and 10 to 200 years, 3 of them with
# --events, fitted by least squares on relative error (memory above the base and the rows' arrays; CPU time).
# The fit was within 10% of every measured peak but one (--events, Essex, 10 years: 20% low); CPU time is noisier
# (the same replicate varies by 25-50% from one run to the next on this machine). With MARGIN on every variable
# cost the estimate errs high: in the last measurement peaks of 211-879 MB were estimated 2% to 28% above, rows at
# the end +2% (10 years) and +7% (40 years), CPU time 20% to 90% above.
# Memory re-measured on 2026-12-03 with the compiled kernels (numba), the base now taken after a tiny replicate
# has loaded them: numba's LLVM adds about 70-110 MB to every process, compiling the kernels (a machine's first run)
# about 65 MB more; CPU time per agent-month fell (0.13 us fitted), the figures below are kept as the safer, higher ones.

#: deliberate over-estimate of every variable cost (memory and CPU time besides the process's base)
MARGIN = 1.25
#: resident memory of a process that has imported the model, pandas and pyarrow and run the compiled kernels once
#: (measured 270-271 MB when they load from numba's cache; 338 MB when that first run compiles them, once per
#: machine or after the code changes; and on 2026-12-03, on the same machine with the same package versions, 357 MB
#: in the fresh virtual environment of a new clone, whose imports alone took 83 MB more (numba's 96 MB against 55):
#: the estimate takes the higher and allows for compiling on top)
BASE_BYTES = 425e6
#: memory of a replicate whatever its size: lookup tables, Mesa's structures, the collector (fits: 14.2-14.5 MB while
#: the base was taken before any replicate had run; since a first tiny replicate is in the base, a 4,400-agent 1-year
#: replicate adds 10-14 MB in all, rows included)
FIXED_BYTES = 8e6
#: memory per row besides its ``people.FIELDS`` arrays: its Mesa agent, per-month temporaries, metrics (fits: 486-495; 505 with the kernels)
BYTES_PER_ROW = 510.0
#: memory per simulated month: collected series, cost ledger, cohort tables (fits: 14,100-14,200)
BYTES_PER_MONTH = 14e3
#: events kept per agent-month (convictions, custody, births, ...; a batch replicate keeps no offences):
#: measured 0.007-0.013
EVENTS_PER_AGENT_MONTH = 0.011
#: events kept per agent-month when offences are kept too (``sim run --events``): measured 0.047-0.055
EVENTS_PER_AGENT_MONTH_WITH_OFFENCES = 0.055
#: memory per event kept (fits: 35-41), and per event when the microdata are exported with --events (fits: 109-112)
BYTES_PER_EVENT = 40.0
BYTES_PER_EVENT_EXPORTED = 110.0
#: CPU time of a replicate: fixed, per simulated month, per agent-month, per event exported with --events (fits:
#: 0.09-0.15 s, 1.6-2.5 ms, 0.28-0.29 us, 0.5-1.0 us; per agent-month taken at 0.33 us, as measured at 440,000 agents
#: on a slow day, and the larger of the others)
CPU_SECONDS_FIXED = 0.15
CPU_SECONDS_PER_MONTH = 2.5e-3
CPU_SECONDS_PER_AGENT_MONTH = 0.33e-6
CPU_SECONDS_PER_EVENT_EXPORTED = 1.0e-6

# Population dynamics, measured in the baseline's starting population and in a 200-year run: births per
# person-year are FERTILE_WOMEN_SHARE x (PARTNERED_SHARE x fertility_partnered + the rest x fertility_single) (0.0215
# in the baseline; measured 0.0164 over the first 10 years, 0.0136 over 200); people leave at p_emigrate_per_year
# (measured 0.009-0.010 for 0.01) plus DEATHS_PER_PERSON_YEAR (measured 0.0013 over the first 10 years, 0.0092
# over 200; lowered in proportion to a lower Gompertz q at age 40, never raised). The people present grow at the
# net rate, plus arrivals, for a generation (GROWTH_YEARS) and are taken as level after that; rows grow by every
# birth and arrival. In the baseline the present population rises by ~30% over 35 years and then falls as it ages
# (to 0.64 of the start by year 200), so rows are estimated within 10% up to 40 years and high after that
# (1.7x at 200 years).
FERTILE_WOMEN_SHARE = 0.23
PARTNERED_SHARE = 0.70
DEATHS_PER_PERSON_YEAR = 0.0092
GROWTH_YEARS = 40.0
_REFERENCE_Q40 = 5e-5 * math.exp(0.085 * 40)  # the baseline's Gompertz curve at age 40

#: default time limit for one replicate (hours of a core)
DEFAULT_MAX_HOURS = 2.0
#: default memory limit: this share of the machine's physical memory
DEFAULT_MEMORY_SHARE = 0.8
#: seconds without any replicate finishing after which a batch is declared stalled (unless told otherwise)
DEFAULT_STALL_TIMEOUT = 600.0

#: bytes of one row of the ``people`` arrays
ROW_ARRAY_BYTES = sum(np.dtype(dtype).itemsize for dtype, _ in FIELDS.values())
_INITIAL_CAPACITY = 1024  # sim.state.people.People(capacity=1024), doubled as rows are added
_GB = 2.0**30


@dataclass(frozen=True)
class Estimate:
    """The cost of one replicate of a scenario (approximate; see the module's notes). Every field is a float and
    may be ``inf`` for absurd inputs."""

    agents_at_start: float  # people built at the start (rows)
    agents_at_end: float  # rows at the end: the start plus every birth and arrival (people who left keep theirs)
    months: float
    agent_months: float  # sum over months of the people present
    peak_memory_bytes: float  # peak resident memory of the process running the replicate
    cpu_seconds: float  # CPU time of the replicate (one core)

    @property
    def agents(self) -> float:
        """The most rows at any time (the end: rows are never reused)."""
        return max(self.agents_at_start, self.agents_at_end)

    def describe(self) -> str:
        """One short line for logs: agents, months, memory, time."""
        return (f"{_about(_count(self.agents_at_start))} agents at the start and {_count(self.agents_at_end)} at the end, "
                f"{_count(self.months)} months; per replicate {_about(_gb(self.peak_memory_bytes))} of memory and "
                f"{_duration(self.cpu_seconds)} of a core")


def default_stall_timeout(expected_replicate_seconds: float | None) -> float:
    """How long a batch waits for the next replicate before calling it stalled: 600 s, or 20x a replicate's
    estimated time (``estimate``) when that is longer."""
    return max(DEFAULT_STALL_TIMEOUT, 20 * (expected_replicate_seconds or 0))


def _safe_float(x) -> float:
    try:
        return float(x)
    except OverflowError:  # a Python int beyond the float range
        return math.inf if x > 0 else -math.inf


def _grow_integral(r: float, t: float) -> float:
    """(e^{rt} - 1) / r, which is t when r = 0 (inf when it overflows)."""
    if t == 0:
        return 0.0
    if abs(r * t) < 1e-9:
        return t
    try:
        return math.expm1(r * t) / r
    except OverflowError:
        return math.inf


def _grow_integral2(r: float, t: float) -> float:
    """The integral of ``_grow_integral(r, s)`` for s from 0 to t: ((e^{rt} - 1) / r - t) / r, t^2 / 2 near r = 0."""
    if abs(r * t) < 1e-4:
        return t * t / 2 * (1 + r * t / 3)
    g = _grow_integral(r, t)
    return math.inf if math.isinf(g) else (g - t) / r


def _capacity(rows: float) -> float:
    """Rows allocated for ``rows`` rows: 1024 doubled until it holds them (sim.state.people.People._grow)."""
    if not rows > _INITIAL_CAPACITY:
        return float(_INITIAL_CAPACITY)
    if math.isinf(rows):
        return math.inf
    return _INITIAL_CAPACITY * 2.0 ** math.ceil(math.log2(rows / _INITIAL_CAPACITY) - 1e-12)


def _estimate_concrete(params: Params, events: bool) -> Estimate:
    pop, d, run = params.population, params.demography, params.run
    f = _safe_float
    w_cjs, w_gen = f(pop.scale_cjs_families), f(pop.scale_general)
    m = f(pop.children_per_parent_mean)
    # sim.state.population.synthesize: offenders, their partners, the other parent of a lone parent's children, and
    # their children; then everyone else in the area (households with children and the other adults) up to the total
    # population. Expected numbers of agents.
    offenders = (f(pop.custody_count) + f(pop.licence_count) + f(pop.probation_count) + f(pop.community_count)) / w_cjs
    other_adults = f(pop.share_offenders_partnered) + f(pop.share_offenders_parents) * (1.0 - f(pop.share_offenders_partnered))
    cjs = offenders * (1.0 + other_adults + f(pop.share_offenders_parents) * m)
    # children: the general households the synthesis draws beside the offenders' expected children, m each;
    # adults: the Census adult share of the total, less the offenders and partners, and at least the households'
    # parents
    adult_share = float(np.sum(pop.adult_age_band_share))
    households = general_households(params, offenders * f(pop.share_offenders_parents) * m * w_cjs)
    children = households * m
    parents = households * general_parents_per_household(params)
    cjs_adults = offenders * (1.0 + other_adults) * w_cjs
    adults = max(f(pop.total_population) * adult_share - cjs_adults, parents)
    general = (adults + children) / w_gen
    start = cjs + general

    years = f(run.years)
    months = float(round(years * 12)) if math.isfinite(years) else math.inf
    t = months / 12.0
    # agents a year (sim.processes.exits.arrivals): the resident-like share at the adults' mean weight (those of
    # in-migrants' ages are more often known offenders, of lower weight: an estimate)
    like = f(d.arrivals_like_residents_share)
    adult_agents = cjs_adults / w_cjs + adults / w_gen
    mean_weight = (cjs_adults + adults) / adult_agents if adult_agents > 0 else w_gen
    arrivals = f(d.arrivals_per_year) * ((1.0 - like) / w_gen + like / mean_weight)
    births = FERTILE_WOMEN_SHARE * (PARTNERED_SHARE * f(d.fertility_partnered_per_year)
                                    + (1 - PARTNERED_SHARE) * f(d.fertility_single_per_year))
    q40 = f(d.mortality_gompertz_a) * math.exp(min(700.0, 40.0 * f(d.mortality_gompertz_b)))
    deaths = DEATHS_PER_PERSON_YEAR * min(1.0, q40 / _REFERENCE_Q40)
    r = births - deaths - f(d.p_emigrate_per_year)  # net growth rate of the people present (per year)
    with np.errstate(all="ignore"):
        # present(s) = start e^{rs} + arrivals (e^{rs} - 1) / r for a generation, level after that; person-years are
        # its integral over the run
        g = min(t, GROWTH_YEARS)
        person_years = _mul(start, _grow_integral(r, g)) + _mul(arrivals, _grow_integral2(r, g))
        if t > g:
            present_after = start * math.exp(min(700.0, r * g)) + _mul(arrivals, _grow_integral(r, g))
            person_years += _mul(present_after, t - g)
        end = start + _mul(births, person_years) + _mul(arrivals, t)
        agent_months = 12.0 * person_years
        event_rate = EVENTS_PER_AGENT_MONTH_WITH_OFFENCES if events else EVENTS_PER_AGENT_MONTH
        n_events = _mul(event_rate, agent_months)
        memory = BASE_BYTES + MARGIN * (
            FIXED_BYTES + ROW_ARRAY_BYTES * _capacity(end) + BYTES_PER_ROW * end + BYTES_PER_MONTH * months
            + (BYTES_PER_EVENT_EXPORTED if events else BYTES_PER_EVENT) * n_events
        )
        cpu = MARGIN * (
            CPU_SECONDS_FIXED + CPU_SECONDS_PER_MONTH * months + CPU_SECONDS_PER_AGENT_MONTH * agent_months
            + (CPU_SECONDS_PER_EVENT_EXPORTED * n_events if events else 0.0)
        )
    return Estimate(start, end, months, agent_months, memory, cpu)


def _mul(a: float, b: float) -> float:
    """a x b with 0 x inf = 0 (nothing a year for ever is still nothing)."""
    return 0.0 if a == 0 or b == 0 else a * b


#: sections whose values size a run; an uncertain value there is taken at the end of its range that costs most
_SIZING_SECTIONS = ("run", "population", "demography")


def estimate(params: Params, events: bool = False) -> Estimate:
    """The cost of one replicate of ``params`` (``events``: offences kept for ``sim run --events``).

    Uncertain values (distributions) of [run], [population] and [demography] are taken, one at a time, at whichever
    end of their range of draws gives the larger peak memory (the worst replicate); others do not matter here."""
    concrete = _map_uncertain(params, lambda section, key, dist: dist.median())
    for key in params.uncertain:
        section, name = key.split(".")
        dist = getattr(getattr(params, section), name)
        if section not in _SIZING_SECTIONS or not isinstance(dist, Dist):
            continue
        is_int = str(next(f for f in fields(getattr(params, section)) if f.name == name).type) == "int"
        options = []
        for u in (DRAW_TAIL, 1 - DRAW_TAIL):
            x = dist.ppf(u)
            x = int(round(x)) if is_int else float(x)
            candidate = replace(concrete, **{section: replace(getattr(concrete, section), **{name: x})})
            options.append((_estimate_concrete(candidate, events).peak_memory_bytes, candidate))
        concrete = max(options, key=lambda o: o[0])[1]
    return _estimate_concrete(concrete, events)


def machine_memory_bytes() -> float:
    """Physical memory of this machine (bytes), or inf if the system does not say."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return math.inf


def check_limits(
    params: Params,
    workers: int = 1,
    max_memory_gb: float | None = None,
    max_hours: float | None = None,
    where: str | None = None,
    events: bool = False,
) -> Estimate:
    """The estimate of one replicate, or ScenarioError (one line, with the estimate) if ``workers`` replicates at
    once would need more memory than ``max_memory_gb`` (default: 80% of this machine's memory), or one replicate more
    CPU time than ``max_hours`` (default 2). ``where`` starts the message (default "scenario <run.name>")."""
    est = estimate(params, events=events)
    where = where or f"scenario {params.run.name}"
    workers = max(1, int(workers or 1))
    machine = machine_memory_bytes()
    if max_memory_gb is None:
        limit = DEFAULT_MEMORY_SHARE * machine
        limit_text = f"this machine has {_gb(machine)} (limit {_gb(limit)})"
    else:
        limit = float(max_memory_gb) * _GB
        limit_text = f"the limit is {_gb(limit)} (--max-memory)"
    size = f"({_count(est.agents)} agents over {_count(est.months)} months)"
    need = est.peak_memory_bytes * workers
    if not need <= limit:
        times = f" x {workers} workers" if workers > 1 else ""
        fewer_workers = " or use fewer workers (--workers)" if workers > 1 and est.peak_memory_bytes <= limit else ""
        raise ScenarioError(
            f"{where} needs {_about(_gb(est.peak_memory_bytes))} of memory per replicate {size}{times}; {limit_text}: "
            f"{_remedy(est)}{fewer_workers}, or raise the limit with --max-memory GB"
        )
    hours = DEFAULT_MAX_HOURS if max_hours is None else float(max_hours)
    if not est.cpu_seconds <= hours * 3600:
        flag = "" if max_hours is None else " (--max-hours)"
        raise ScenarioError(
            f"{where} needs {_about(_duration(est.cpu_seconds))} of a core per replicate {size}, more than the limit of "
            f"{_duration(hours * 3600)}{flag}: {_remedy(est)}, or raise the limit with --max-hours H"
        )
    return est


def _remedy(est: Estimate) -> str:
    """What to lower: the run's length when it is long (over a century), else the number of agents."""
    if est.months > 1200:
        return "shorten the run (run.years)"
    return "use fewer agents (raise population.scale_general or population.scale_cjs_families, the real people an agent stands for)"


# --- formatting -----------------------------------------------------------------------------------------------------

def _count(x: float) -> str:
    """4,400 / 1,490,000 / 8.1e12 / more than 1e308."""
    if not math.isfinite(x):
        return "more than 1e308"
    if x >= 1e9:
        mantissa, exponent = f"{x:.2g}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if x >= 100:
        digits = len(str(int(x))) - 3  # three significant figures
        return f"{round(x, -digits):,.0f}"
    return f"{x:.3g}"


def _about(amount: str) -> str:
    return amount if amount.startswith("more than") else f"about {amount}"


def _gb(nbytes: float) -> str:
    """0.25 GB / 24 GB / 1,490,000 GB (GB = 2^30 bytes)."""
    gb = nbytes / _GB
    if not math.isfinite(gb):
        return "more than 1e308 GB"
    if gb < 10:
        return f"{gb:.2g} GB"
    return f"{gb:,.0f} GB" if gb < 1000 else f"{_count(gb)} GB"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "more than 1e308 hours"
    if seconds < 90:
        return f"{seconds:.2g} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.2g} minutes"
    hours = seconds / 3600
    if hours < 2 * 24 * 365:
        return f"{_count(hours) if hours >= 10 else f'{hours:.2g}'} hours"
    return f"{_count(hours / (24 * 365))} years"


# --- measuring (to calibrate the constants above, and for the tests) -----------------------------------------------

_CHILD = r"""
import json, pickle, resource, sys, tempfile
from pathlib import Path

def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes

def status(field):
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None

def reset_peak():
    try:  # Linux: restart the high-water mark of resident memory, so import transients do not count
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

params, seed, events = pickle.load(sys.stdin.buffer)
import pyarrow  # noqa: F401  (imported by a batch's writer anyway)
from sim.runs import batch, output
from sim.model import ReoffendingModel
seen = {"agent_months": 0}
step, init = ReoffendingModel.step, ReoffendingModel.__init__

def counting_init(self, *a, **k):
    init(self, *a, **k)
    seen["model"], seen["start"] = self, self.people.n

def counting_step(self):
    seen["agent_months"] += int(self.people.present[: self.people.n].sum())
    step(self)

from dataclasses import replace
# the compiled kernels load (or compile, on a machine that has not run them yet) the first time they run: a tiny
# replicate first, so that the base includes them and the replicate measured is what every later one costs
pop = params.population
ReoffendingModel(replace(params, run=replace(params.run, years=1),
                         population=replace(pop, scale_general=pop.scale_general * 100,
                                            scale_cjs_families=pop.scale_cjs_families * 100)), seed=seed).run()
ReoffendingModel.__init__, ReoffendingModel.step = counting_init, counting_step
import gc
gc.collect()
import_peak = maxrss()
base = status("VmRSS") or import_peak
fresh_peak = reset_peak()
c0 = cpu()
if events:  # what `sim run --events` does
    model = ReoffendingModel(params, seed=seed, record_offences=True).run()
    with tempfile.TemporaryDirectory() as tmp:
        output.write_run(model, Path(tmp) / "run", with_events=True)
else:  # what a batch replicate does
    batch.replicate_result(params, seed, 0)
model = seen["model"]
print(json.dumps({"agents_at_start": seen["start"], "agents_at_end": model.people.n, "capacity": model.people._cap,
                  "months": model.month, "agent_months": seen["agent_months"], "events": int(len(model.events.arrays()[0])),
                  "import_peak_rss_bytes": import_peak, "base_rss_bytes": base,
                  "peak_rss_bytes": (status("VmHWM") if fresh_peak else None) or maxrss(), "cpu_seconds": cpu() - c0}))
"""


def measure(params: Params, seed: int = 1, events: bool = False, timeout: float | None = None) -> dict:
    """Run one replicate in a fresh Python process and report what it cost: agents at the start and end, rows
    allocated, months, agent-months, events kept, resident memory after the imports (``base_rss_bytes``; their
    transient peak is ``import_peak_rss_bytes``) and at its peak while the replicate ran (``peak_rss_bytes``, on
    Linux with the high-water mark reset after the imports), and CPU seconds of the replicate."""
    import json
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    done = subprocess.run([sys.executable, "-c", _CHILD], input=pickle.dumps((params, seed, events)), capture_output=True,
                          env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring a replicate failed: {done.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


#: (label, overrides, events) measured by ``python -m sim.runs.limits --measure``
MEASURE_CASES = (
    ("1/10 Essex, 10 years", ["population.scale_general=400", "population.scale_cjs_families=20"], False),
    ("Essex, 10 years", [], False),
    ("Essex, scale_cjs_families=1", ["population.scale_cjs_families=1"], False),
    ("Essex, scale_general=10", ["population.scale_general=10"], False),
    ("Essex, scale_general=5, cjs=1", ["population.scale_general=5", "population.scale_cjs_families=1"], False),
    ("10x Essex, 10 years", ["population.scale_general=4", "population.scale_cjs_families=0.2"], False),
    ("1/10 Essex, 40 years", ["run.years=40", "population.scale_general=400", "population.scale_cjs_families=20"], False),
    ("Essex, 40 years", ["run.years=40"], False),
    ("1/10 Essex, 200 years", ["run.years=200", "population.scale_general=400", "population.scale_cjs_families=20"], False),
    ("Essex, 10 years, --events", [], True),
    ("Essex, 40 years, --events", ["run.years=40"], True),
    ("10x Essex, 10 years, --events", ["population.scale_general=4", "population.scale_cjs_families=0.2"], True),
)


def _main(argv: list[str] | None = None) -> int:
    """``python -m sim.runs.limits [SCENARIO] [--measure]``: the estimate of a scenario; with --measure, the estimate
    beside measured replicates at several sizes, and the constants a least-squares fit of them gives."""
    import argparse

    from ..state.scenario import load_scenario

    ap = argparse.ArgumentParser(prog="python -m sim.runs.limits")
    ap.add_argument("scenario", nargs="?", default="scenarios/baseline.toml")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--raw", action="store_true", help="with --measure, also print each measurement as JSON")
    args = ap.parse_args(argv)
    if not args.measure:
        print(estimate(load_scenario(args.scenario)).describe())
        return 0
    rows = []
    print(f"{'case':<34}{'start est/meas':>18}{'end est/meas':>20}{'peak MB est/meas':>20}{'cpu s est/meas':>18}")
    for label, overrides, events in MEASURE_CASES:
        params = load_scenario(args.scenario, overrides)
        est, got = estimate(params, events=events), measure(params, events=events)
        rows.append((events, got))
        if args.raw:
            import json

            print(json.dumps({"case": label, "events_kept": events, **got}), flush=True)
        print(f"{label:<34}{est.agents_at_start:>9,.0f}/{got['agents_at_start']:<8,}{est.agents_at_end:>10,.0f}/{got['agents_at_end']:<9,}"
              f"{est.peak_memory_bytes / 1e6:>10,.0f}/{got['peak_rss_bytes'] / 1e6:<9,.0f}{est.cpu_seconds:>9.2f}/{got['cpu_seconds']:<8.2f}",
              flush=True)
    # least squares on relative error of the measured quantities (no margin): memory above the base and the rows'
    # arrays; CPU time
    ev = np.array([g["events"] for _, g in rows], float)
    exported = np.array([e for e, _ in rows], bool)
    mem = np.array([g["peak_rss_bytes"] - g["base_rss_bytes"] - ROW_ARRAY_BYTES * g["capacity"] for _, g in rows], float)
    a = np.column_stack([np.ones(len(rows)), [g["agents_at_end"] for _, g in rows], [g["months"] for _, g in rows],
                         np.where(exported, 0, ev), np.where(exported, ev, 0)])
    c = np.linalg.lstsq(a / mem[:, None], np.ones(len(rows)), rcond=None)[0]
    cpu = np.array([g["cpu_seconds"] for _, g in rows], float)
    a = np.column_stack([np.ones(len(rows)), a[:, 2], [g["agent_months"] for _, g in rows], np.where(exported, ev, 0)])
    t = np.linalg.lstsq(a / cpu[:, None], np.ones(len(rows)), rcond=None)[0]
    print(f"fit (no margin): BASE_BYTES ~ {max(g['base_rss_bytes'] for _, g in rows):.3g}, FIXED_BYTES = {c[0]:.3g}, "
          f"BYTES_PER_ROW = {c[1]:.0f}, BYTES_PER_MONTH = {c[2]:.3g}, BYTES_PER_EVENT = {c[3]:.0f}, BYTES_PER_EVENT_EXPORTED = {c[4]:.0f}; "
          f"CPU_SECONDS_FIXED = {t[0]:.2g}, CPU_SECONDS_PER_MONTH = {t[1]:.2g}, CPU_SECONDS_PER_AGENT_MONTH = {t[2]:.2g}, "
          f"CPU_SECONDS_PER_EVENT_EXPORTED = {t[3]:.2g}")
    print("events per agent-month: batch " + ", ".join(f"{g['events'] / g['agent_months']:.4f}" for e, g in rows if not e)
          + "; --events " + ", ".join(f"{g['events'] / g['agent_months']:.4f}" for e, g in rows if e))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
