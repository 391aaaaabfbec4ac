"""Shared fixtures: small scenarios and one audited two-year run (session scope, so the suite stays fast).

Nothing here hard-codes simulation outputs: the baseline scenario is read as it stands (it is being tuned), and
tests derive expectations from the parameters they load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sim import ReoffendingModel, load_scenario
from sim.state.events import EVENT_CODE

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.toml"

#: every shipped scenario, the baseline first: the run invariants must hold in all of them
SCENARIOS = [BASELINE] + sorted(p for p in (ROOT / "scenarios").glob("*.toml") if p != BASELINE)

#: small, fast population (a few thousand agents), with two years of simulated past instead of the baseline's eight
#: (the same start's code; its stocks not yet settled, which tests at these weights do not measure)
SMALL = ["population.scale_general=300", "population.scale_cjs_families=10", "population.history_years=2"]
SMALL_2Y = ["run.years=2", *SMALL]

#: the start as drawn before the refit of 2026-12-05, with that fit's values: the offender groups drawn on top of the
#: general distribution with a spread of their own, their sentences and records drawn (no simulated past), no parents
#: outside the area, in-migrants 18-35 (for tests of that start and of what the refit's options change)
DRAWN_START = ["population.history_years=0", "population.propensity_groups_from_general=false",
               "family.parents_outside_the_area=false", "demography.arrival_age_max=35",
               "population.propensity_median_general=0.555675", "population.propensity_sigma_general=0.718246",
               "population.propensity_median_community=8.50411", "population.propensity_median_probation=2.43268",
               "population.propensity_median_custody=2.0", "population.propensity_sigma=1.26757"]

#: REOFFSIM_FULL=1 runs the long statistical versions
FULL = os.environ.get("REOFFSIM_FULL") == "1"

#: entries into / exits out of the modelled population (arrivals only if the model has them)
ENTRY_EVENTS = tuple(e for e in ("birth", "arrival") if e in EVENT_CODE)
EXIT_EVENTS = ("death", "exit")


def load(*overrides: str, path: Path | str = BASELINE):
    return load_scenario(path, overrides=list(overrides))


@pytest.fixture(scope="session")
def baseline_params():
    return load()


@pytest.fixture(scope="session")
def small_params():
    return load(*SMALL_2Y)


@dataclass
class MonthRecord:
    """What one month of an audited run looked like."""

    month: int
    n_before: int  # rows at the start of the month
    present_before: np.ndarray
    weight_present_before: float
    status_before_offending: np.ndarray  # status of every row just before the offending process ran
    age_months_before_offending: np.ndarray
    end: dict[str, np.ndarray]  # copies of the arrays at the end of the month
    agent_rows: np.ndarray  # rows of the registered Person agents at the end of the month (sorted)


@dataclass
class AuditedRun:
    model: ReoffendingModel
    months: list[MonthRecord] = field(default_factory=list)

    def events_in(self, month: int, event: str) -> np.ndarray:
        """Rows with ``event`` in ``month`` (from the raw event log)."""
        rows, m, code = self.model.events.arrays()[:3]
        return rows[(m == month) & (code == EVENT_CODE[event])]


END_FIELDS = (
    "present",
    "status",
    "partner",
    "sex_male",
    "custody_months_left",
    "licence_months_left",
    "order_months_left",
    "prev_convictions",
    "prev_cautions",
    "weight",
    "needs",
    "months_since_release",
    "last_conviction_month",
)


#: two free parameters, one on a log scale, for history matching on a toy response
TOY_FREE = {
    "justice.custody_log_odds_intercept": {"lower": -4.5, "upper": -0.5, "unit": "log-odds"},
    "offending.youth_multiplier": {"lower": 0.1, "upper": 2.0, "unit": "relative hazard", "log": True},
}


def toy_history_match(monkeypatch, response, free: dict, targets: list, modules) -> list[int]:
    """History matching on a toy: the model runs replaced by ``response(params, seed) -> metrics`` and the free
    parameters and targets by ``free`` and ``targets`` in each of ``modules``; returns the sizes of the batches run."""
    from sim.fitting import history_matching as hm

    calls: list[int] = []

    def fake_run_all(tasks, workers, label, task):
        calls.append(len(tasks))
        return [response(params, seed) for params, seed, _ in tasks]

    monkeypatch.setattr(hm, "run_all", fake_run_all)
    for module in modules:
        monkeypatch.setattr(module, "load_free_parameters", lambda: free)
        monkeypatch.setattr(module, "load_targets", lambda: targets)
    return calls


def run_audited(params, seed: int, months: int | None = None) -> AuditedRun:
    """Step a model month by month, recording the state before/after each month and the status of every row at
    the moment the offending process runs (by wrapping ``sim.processes.offending.step``; behaviour is unchanged)."""
    import sim.processes.offending as offending

    model = ReoffendingModel(params, seed=seed, record_events=True)
    audit = AuditedRun(model)
    original = offending.step
    seen: dict[str, np.ndarray] = {}

    def wrapped(m):
        n = m.people.n
        seen["status"] = m.people.status[:n].copy()
        seen["age_months"] = np.asarray(m.age_months[:n]).copy()
        return original(m)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(offending, "step", wrapped)
        for _ in range(params.months if months is None else months):
            p = model.people
            n0 = p.n
            present0 = p.present[:n0].copy()
            w0 = float(p.weight[:n0][present0].sum())
            month = model.month
            model.step()
            n1 = model.people.n
            end = {name: getattr(model.people, name)[:n1].copy() for name in END_FIELDS}
            agent_rows = np.sort(np.array([a.row for a in model.agents], dtype=np.int64))
            audit.months.append(
                MonthRecord(month, n0, present0, w0, seen.pop("status"), seen.pop("age_months"), end, agent_rows)
            )
    return audit


@pytest.fixture(scope="session", params=SCENARIOS, ids=[p.stem for p in SCENARIOS])
def audited(request) -> AuditedRun:
    """A two-year run of a small population of each shipped scenario, with events, audited month by month."""
    return run_audited(load(*SMALL_2Y, path=request.param), seed=7)


@pytest.fixture(scope="session")
def frames(audited):
    """(people, events) microdata frames of the audited run."""
    from sim.runs.output import events_frame, people_frame

    return people_frame(audited.model), events_frame(audited.model)


def _default_sigint() -> None:
    """A test run started in the background by a non-interactive shell (``make test &``, ``nohup``) inherits SIGINT
    ignored, and so would every process it starts: the tests of how a batch stops on Ctrl-C need it delivered."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_default_sigint()


@pytest.fixture(autouse=True)
def _sigint_left_as_found(request):
    """A test (or a library it drives, e.g. a Dask cluster) must not leave this process's SIGINT ignored or
    replaced: the interruption tests, and every subprocess started later (which inherits an ignored SIGINT), depend
    on it. Restores it and fails the test that changed it."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"{request.node.nodeid} left SIGINT's handler changed ({before!r} -> {after!r})")
    if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []):  # blocked: raised signals wait, children inherit it
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        pytest.fail(f"{request.node.nodeid} left SIGINT blocked in the main thread")


def chromium() -> str | None:
    """Chromium from the machine, installed from Debian's packages when missing and we are root."""
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, env=env, timeout=900)
    return shutil.which("chromium")


def chromium_or_skip(what: str) -> str:
    """Chromium's path; skips only with REOFFSIM_SKIP_BROWSER=1 (CI must use a browser: else the test fails)."""
    browser = chromium()
    if browser is None and os.environ.get("REOFFSIM_SKIP_BROWSER") == "1":
        pytest.skip(f"REOFFSIM_SKIP_BROWSER=1 and no Chromium: {what}")
    if browser is None:
        pytest.fail("Chromium is not installed and could not be installed (needs root and Debian's apt); "
                    "install it, or set REOFFSIM_SKIP_BROWSER=1 to skip this test on a machine without it")
    return browser


@pytest.fixture(autouse=True)
def _numba_cache_folder_left_as_found(request):
    """A test must not leave NUMBA_CACHE_DIR pointing elsewhere: every worker and subprocess started later inherits
    it, and a folder with no compiled kernels makes each of them compile afresh (slower, and more memory than the
    estimates of sim.runs.limits allow). Restores it and fails the test that changed it."""
    before = os.environ.get("NUMBA_CACHE_DIR")
    yield
    after = os.environ.get("NUMBA_CACHE_DIR")
    if after != before:
        if before is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = before
        pytest.fail(f"{request.node.nodeid} left NUMBA_CACHE_DIR changed ({before!r} -> {after!r})")


def compile_kernels() -> None:
    """Tiny replicates of every shipped scenario, from a simulated and from a drawn start: they reach every compiled
    kernel, which numba then keeps in the package's cache folder (run apart by ``pytest_configure``)."""
    from sim.runs.paired import run_arms

    tiny = ["run.years=1", *SMALL]
    for start in ([], DRAWN_START):
        arms = [load(*tiny, *start, path=p) for p in SCENARIOS]
        run_arms(arms[0], arms[1:], seed=1)


def _compile_kernels_apart() -> Callable[[], str | None]:
    """Start ``compile_kernels`` in a process of its own (the controller keeps no compiler in memory); returns what
    waits for it: None if it worked, else the last line it wrote (what it writes goes to a file, so that it never
    waits for a reader). Interrupted while waiting (Ctrl-C), it stops the process."""
    err = tempfile.TemporaryFile("w+")
    run = subprocess.Popen([sys.executable, "-c", "import conftest; conftest.compile_kernels()"], cwd=Path(__file__).parent,
                           stdout=subprocess.DEVNULL, stderr=err)

    def finished() -> str | None:
        try:
            run.wait()
        except BaseException:
            run.kill()
            run.wait()
            raise
        with err:
            err.seek(0)
            lines = err.read().strip().splitlines()
        return None if run.returncode == 0 else (lines or [f"exit {run.returncode}"])[-1]

    return finished


#: where the controller keeps the wait for the kernels being compiled (``pytest_configure``)
_COMPILING = pytest.StashKey[Callable[[bool], None]]()


def pytest_configure(config):
    """Before the tests start (xdist's controller only), compile numba's kernels into the package's cache folder for
    the sources as they are (a fresh clone, or sources just edited; about 25-29 s of one core): each test process, and
    each worker and subprocess a test starts, otherwise compiles them for itself until one has written them, a
    minute or more of the cores at the start of a fresh clone's suite, and more memory than sim.runs.limits
    estimates. Started here, the compiling runs while the test processes start and collect the tests (about 5 s,
    which its one core would otherwise leave the other idle through); no test is handed out until it has ended
    (``pytest_xdist_node_collection_finished``). A file in the folder says it was done. A folder of the user's own
    (NUMBA_CACHE_DIR), a suite in one process, and --collect-only or --help are left alone; a failure (a scenario
    being edited, say) warns and leaves the tests to say what is wrong."""
    from sim.state.sources import numba_cache_dir, sources_digest

    distributed = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    listing = getattr(config.option, "collectonly", False) or getattr(config.option, "help", False)
    folder = numba_cache_dir(sources_digest())
    done = folder / "compiled-by-tests"
    if not distributed or listing or os.environ.get("NUMBA_CACHE_DIR") != str(folder) or done.exists():
        return
    finished = _compile_kernels_apart()

    def wait(at_the_end: bool) -> None:
        problem = finished()
        if problem is None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                done.touch()
            except OSError as error:
                problem = repr(error)
        if problem is None:
            return
        message = f"kernels not compiled before the tests: {problem}"
        if at_the_end:  # (the warnings' summary is already written)
            print(f"warning: {message}", file=sys.stderr)
        else:
            config.issue_config_time_warning(pytest.PytestWarning(message), 2)

    config.stash[_COMPILING] = wait


def _wait_for_kernels(config, at_the_end: bool = False) -> None:
    """Wait for the kernels ``pytest_configure`` started compiling, once (then nothing)."""
    wait = config.stash.get(_COMPILING, None)
    if wait is not None:
        del config.stash[_COMPILING]
        wait(at_the_end)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """(xdist's controller, as each test process has collected the tests) No test is handed out before the
    compiling has ended (or failed): the first call waits for it."""
    _wait_for_kernels(node.config)


def pytest_unconfigure(config):
    """The compiling waited for, had no test process finished collecting (a collection error with -x, say), so that
    it is never left running; a failure is then written to stderr."""
    _wait_for_kernels(config, at_the_end=True)
