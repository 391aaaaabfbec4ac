"""The commissioner's what-if app (Solara): ``sim app`` serves this module; ``routes`` are its two pages.

- **What if** (``/``): the setting in a commissioner's terms on the left; Run starts paired replicates of the
  baseline and the programme (common random numbers) on the app's ``Runner``, and the headline, the figures and the
  downloads update as replicates finish.
- **One family** (``/family``): Mesa's own SolaraViz stepping the model month by month, following one family.

Server-wide configuration comes from ``sim app`` through environment variables (``REOFFSIM_APP_*``, see
``sim.cli.cmd_app``); each browser session has its own setting and answer.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import replace

import matplotlib.pyplot as plt
import solara
import solara.lab

from ..present import figures as F
from ..state.scenario import ScenarioError
from . import answer as A
from .family import FamilyPage
from .runner import Runner
from .settings import HORIZONS, PROGRAMMES, RANGES, STANCES, Setting, scenarios, server_overrides

log = logging.getLogger("reoffsim.app")

#: root seed of every comparison (replicate k runs on seed k of it, as ``sim compare --seed``)
ROOT_SEED = int(os.environ.get("REOFFSIM_APP_SEED", "1"))
#: ``sim app --set`` overrides, applied to both scenarios of every comparison
EXTRA = server_overrides()
#: seconds between updates of the page while replicates finish (drawing the figures takes a moment)
UPDATE_EVERY = 1.0

_runner: Runner | None = None
_runner_lock = threading.Lock()


def runner() -> Runner:
    """The server's one ``Runner`` (started on first use, with ``sim app``'s workers or scheduler)."""
    global _runner
    with _runner_lock:
        if _runner is None:
            workers = os.environ.get("REOFFSIM_APP_WORKERS")
            _runner = Runner(int(workers) if workers else None, os.environ.get("REOFFSIM_APP_SCHEDULER") or None)
        return _runner


setting = solara.reactive(Setting())
answer: solara.Reactive[A.Answer | None] = solara.reactive(None)
problem = solara.reactive("")  # one line for the page when a Run cannot go ahead


def _say(exc: BaseException) -> str:
    """An error in one short line for the page (never a stack trace: the server's log has it)."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, ScenarioError):
        return first
    return f"The run failed ({type(exc).__name__}: {first}). Nothing was written; the server's log has the details."


@solara.lab.task
def run_comparison(chosen: Setting) -> None:
    """Paired replicates of the chosen setting, published to ``answer`` as they finish."""
    problem.set("")
    try:
        base, iv = scenarios(chosen, EXTRA)
    except ScenarioError as exc:
        problem.set(str(exc))
        return
    last = [0.0]

    def on_pair(pairs: dict) -> None:
        if not run_comparison.is_current():
            return
        run_comparison.progress = 100 * len(pairs) / chosen.reps
        if len(pairs) == chosen.reps or time.monotonic() - last[0] >= UPDATE_EVERY:
            made = A.Answer.from_pairs(chosen, base, iv, ROOT_SEED, pairs)
            if run_comparison.is_current():  # (again: a newer Run may have started while this one was assembled)
                answer.set(made)
            last[0] = time.monotonic()

    try:
        runner().pairs(base, iv, chosen.reps, ROOT_SEED, on_pair, cancelled=lambda: not run_comparison.is_current())
    except Exception as exc:  # noqa: BLE001 - the page shows one line, the log the whole story
        if not isinstance(exc, ScenarioError):
            log.exception("a Run failed")
        problem.set(_say(exc))


def _update(**changes) -> None:
    setting.set(replace(setting.value, **changes))


@solara.component
def Slider(name: str, disabled: bool = False):
    label, low, high, step, _ = RANGES[name]
    value = getattr(setting.value, name)
    value = int(value if value is not None else low)
    with solara.Div(classes=[f"control-{name.replace('_', '-')}"]):
        solara.Text(f"{label}: {value:,}", classes=["control-label"])
        solara.SliderInt("", value=value, min=low, max=high, step=step, on_value=lambda v: _update(**{name: v}), disabled=disabled)


@solara.component
def Controls():
    s = setting.value
    solara.Select("Programme", values=list(PROGRAMMES.values()), value=PROGRAMMES[s.programme],
                  on_value=lambda v: _update(programme={k for k, label in PROGRAMMES.items() if label == v}.pop()))
    if s.has_offender_family:
        with solara.Card("Offender-and-family programme", margin=0, classes=["mt-2"]):
            solara.Text("Eligible:")
            solara.Checkbox(label="prison leavers", value=s.prison_leavers, on_value=lambda v: _update(prison_leavers=v))
            solara.Checkbox(label="offenders starting a community order", value=s.probationers, on_value=lambda v: _update(probationers=v))
            solara.Checkbox(label="only with a dependent child at home", value=s.dependent_children, on_value=lambda v: _update(dependent_children=v))
            Slider("min_convictions")
            Slider("families_per_year")
            Slider("hours_per_month")
            Slider("duration_months")
            solara.Checkbox(label="cost of an hour: the evidence's range (GBP 32-55, 2013-14)", value=s.cost_per_hour is None,
                            on_value=lambda v: _update(cost_per_hour=None if v else 40))
            if s.cost_per_hour is not None:
                Slider("cost_per_hour")
    if s.has_hub:
        with solara.Card("Domestic-abuse hub", margin=0, classes=["mt-2"]):
            Slider("hub_victims_per_year")
    solara.Select("Evidence stance", values=list(STANCES.values()), value=STANCES[s.stance],
                  on_value=lambda v: _update(stance={k for k, label in STANCES.items() if label == v}.pop()))
    solara.ToggleButtonsSingle(value=s.horizon, values=list(HORIZONS), on_value=lambda v: _update(horizon=v))
    Slider("reps")
    solara.Button("Run", color="primary", on_click=lambda: run_comparison(setting.value), classes=["run-button"], block=True)
    if run_comparison.pending:
        solara.ProgressLinear(run_comparison.progress or True)
        solara.Button("Stop", on_click=run_comparison.cancel, text=True, classes=["stop-button"])


@solara.component
def Headline(a: A.Answer):
    words = solara.use_memo(lambda: A.headline(a), [a.key])  # once per answer, not at every move of a control
    with solara.Card(classes=["headline"]):
        solara.Text(A.verdict(a), classes=["headline-verdict", "text-h6"])
        for sentence in words:
            solara.Div(children=[solara.Text(sentence)], classes=["headline-words", "my-2"])
        if run_comparison.pending and a.setting == setting.value and not a.complete:
            solara.Text("Running: the bands tighten as the rest finish.", classes=["headline-running"])
        if a.setting != setting.value:
            solara.Info("The setting has changed since this answer: press Run to see the new one.", dense=True)


def _png(fig) -> bytes:
    """A figure as PNG bytes, and the figure closed (pyplot keeps every open figure otherwise)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _figures(a: A.Answer) -> dict[str, bytes]:
    return {"difference": _png(F.difference_figure(a.series)), "net_benefit": _png(F.net_benefit_figure(a.ledger, a.iv.costs)),
            "savings": _png(F.savings_figure(a.ledger)), "npv": _png(F.npv_figure(a.rows))}


@solara.component
def Views(a: A.Answer):
    figs = solara.use_memo(lambda: _figures(a), [a.key])  # drawn once per answer
    with solara.lab.Tabs():
        with solara.lab.Tab("Over time"):
            solara.Image(figs["difference"], width="100%")
            solara.Image(figs["net_benefit"])
        with solara.lab.Tab("Savings"):
            solara.Image(figs["savings"], width="100%")
            solara.Text("Cashable savings are money a budget can release (e.g. a prison wing closed); non-cashable ones free capacity.")
        with solara.lab.Tab("NPV"):
            solara.Image(figs["npv"])
        with solara.lab.Tab("Dose-response"):
            DoseResponse(a.setting)
        with solara.lab.Tab("Download"):
            Downloads(a)


@solara.component
def DoseResponse(s: Setting):
    sweep = A.dose_response()
    png = solara.use_memo(lambda: None if sweep is None else _png(F.dose_response_figure(sweep, A.DOSE_X, A.DOSE_GROUP, mark=s.hours_per_month)),
                          [s.hours_per_month])
    if sweep is None:
        solara.Warning("The dose-response sweep is not shipped with this copy (sim/app/dose_response.csv).")
        return
    solara.Image(png, width="100%")
    solara.Text("Precomputed (sim/app/README.md): the offender-and-family programme at 5-40 keyworker hours a month and 300, 600 or "
                "1,000 families a year, 40 paired replicates each, with 90% intervals; the dotted line is your setting's hours. " + A.dose_response_words(sweep))
    caveat = A.dose_response_caveat(s)
    if caveat:
        solara.Info(caveat, dense=True)


@solara.component
def Downloads(a: A.Answer):
    solara.Text(f"The folder and report sim compare writes, for the setting on screen ({a.done} replicates); each takes a few "
                "seconds to prepare.")
    with solara.Row():
        solara.FileDownload(lambda: A.downloads(a)[0], filename="report.html", label="report.html", mime_type="text/html")
        solara.FileDownload(lambda: A.downloads(a)[1], filename=f"{a.iv.run.name}_vs_{a.base.run.name}.zip",
                            label="CSVs, series and report (zip)", mime_type="application/zip")


@solara.component
def WhatIf():
    with solara.Sidebar():
        Controls()
    solara.Title("reoffsim: what if?")
    if problem.value:
        solara.Error(problem.value, classes=["app-error"])
    if run_comparison.error:
        solara.Error(_say(run_comparison.exception), classes=["app-error"])
    a = answer.value
    if a is None:
        solara.Info("Choose a setting on the left and press Run: the baseline and the programme run on the same simulated people and "
                    "random numbers, and the answer appears within seconds, its bands tightening as replicates finish.")
        return
    Headline(a)
    Views(a)


routes = [
    solara.Route(path="/", component=WhatIf, label="What if"),
    solara.Route(path="family", component=FamilyPage, label="One family"),
]
