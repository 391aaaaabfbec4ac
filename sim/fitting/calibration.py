"""Calibration to published rates: targets, the metrics that measure them, a fit and a validation.

Targets (calibration/targets.toml) are measured on the simulation's own events by their published definitions
(see sim/metrics.py; the share of crime by offenders already in the CJS is counted as the model runs); nothing sets
an outcome to a target. Free parameters (calibration/free_parameters.toml) are fitted by least squares on Monte
Carlo means over fixed seeds (common random numbers make the objective smooth enough), jointly ("joint": 10-year
runs for the reoffending, crime-share, youth and baseline-consistency targets and 40-year runs for the father-son
targets, all parameters at once) or by stage ("short" or "long" parameters only). The result goes to
calibration/fitted.toml, which scenarios/baseline.toml extends, so every scenario uses it.
"""

from __future__ import annotations

import math
import time
import tomllib
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..model import ReoffendingModel
from ..processes import domestic_abuse
from ..runs.batch import replicate_seeds, write_atomic
from ..runs.output import events_frame, people_frame, summarise, timeseries_frame
from ..runs.paired import run_all
from ..state.params import Params
from ..state.population import start_tail_excess
from ..state.scenario import ScenarioError, load_scenario

CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "calibration"
RUN_YEARS = {"short": 10, "long": 40}
#: ``sim validate`` runs its long runs on to 45 years, to show the baseline's steadiness that far
VALIDATE_YEARS = {"short": 10, "long": 45}
#: the years Essex's population projection covers (calibration/steadiness.toml): the population is held to it over
#: them, more loosely to the national projection's shape after them
PROJECTION_YEARS = 10
#: the father-son targets count the sons a 40-year run observes from 10 to 40, in a longer run too
SONS_LAST_MONTH = 40 * 12 - 1


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    lower: float
    upper: float
    weight: float
    metric: str
    run: str
    definition: str
    source: str
    known_gap: str = ""  # why the model does not reach it (empty: it should)
    needs: str = ""  # a process the scenario must run for the target to be measured (empty: always measured)

    def applies_to(self, params: Params) -> bool:
        """Whether a scenario measures this target: partner abuse's targets only where partner abuse is on (a
        baseline without it would read 0 incidents, not a miss)."""
        return self.needs != "domestic_abuse" or domestic_abuse.is_on(params.domestic_abuse)

    @property
    def half_width(self) -> float:
        return (self.upper - self.lower) / 2


def load_targets(path: Path = CALIBRATION_DIR / "targets.toml") -> list[Target]:
    data = tomllib.loads(Path(path).read_text())
    return [Target(name, float(t["value"]), float(t["lower"]), float(t["upper"]), float(t.get("weight", 1.0)), t["metric"],
                   t["run"], t["definition"], t["source"], t.get("known_gap", ""), t.get("needs", "")) for name, t in data.items()]


def load_free_parameters(path: Path = CALIBRATION_DIR / "free_parameters.toml") -> dict[str, dict]:
    return tomllib.loads(Path(path).read_text())


def measure_one(params: Params, seed: int, run: str) -> dict[str, float]:
    """The target metrics of one replicate, a 10-year run ("short") or a 40-year (or longer) run ("long"), and its steady series
    year by year (``steady:<run>:<series>:<year>``, see ``steadiness``; a long run's adult series also per adult at the
    first year's ages, ``steady_at_start_ages:...``, see ``metrics.AdultsByAge``)."""
    return measure_runs(params, seed, run)[run]


def measure_runs(params: Params, seed: int, run: str, short: Params | None = None) -> dict[str, dict[str, float]]:
    """``measure_one``'s metrics, by run: ``run``'s and, given ``short`` (a shorter run whose months this run's first
    months are, event for event: ``begins_as``), the short run's too, read when this run has run its months. One run
    then serves both (``measure`` runs a long replicate and the short one of the same seed so)."""
    by_age = metrics.AdultsByAge() if run == "long" else None  # the long runs' adult series at the start's ages too
    measured = {}
    with ReoffendingModel(params, seed=seed, record_offences=False) as model:
        if short is not None:
            model.run(months=short.months, each_month=by_age)
            measured["short"] = _metrics_now(model, short, "short")
        model.run(each_month=by_age)
        measured[run] = _metrics_now(model, params, run, by_age)
    return measured


def begins_as(longer: Params, shorter: Params) -> bool:
    """Whether a run of ``longer`` begins as a run of ``shorter`` (of the same seed): the same scenario but for the
    run's length, which nothing drawn up front depends on (tests/test_calibration.py checks that, event for event)."""
    return longer.months > shorter.months and replace(longer, run=replace(longer.run, years=shorter.run.years)) == shorter


def _metrics_now(model, params: Params, run: str, by_age=None) -> dict[str, float]:
    """The target metrics and steady series of ``model`` as it stands, measured as a ``run`` of ``params``."""
    steady = metrics.steady_metrics(timeseries_frame(model), run)
    if by_age is not None:
        steady |= by_age.steady_metrics(model, run)
    return {**_target_metrics(model, params, run), **steady}


def _target_metrics(model, params: Params, run: str) -> dict[str, float]:
    if run == "short":
        s = summarise(model)
        md = metrics.Microdata.from_model(model)
        r = params.run
        rpr = metrics.proven_reoffending_annual_cohorts(md, None, "all", params.months, r.cohort_follow_up_months,
                                                       r.cohort_waiting_months, params.family.age_adult)
        history = metrics.proven_reoffending_by_previous_annual_cohorts(md, params.months, r.cohort_follow_up_months,
                                                                        r.cohort_waiting_months, params.family.age_adult)
        return {
            "proven_reoffending_prison": s["proven_reoffending_rate_prison"],
            "proven_reoffending_probation": s["proven_reoffending_rate_probation"],
            "share_offences_by_previously_convicted": s["share_offences_by_previously_convicted"],
            "share_offences_by_offenders_in_cjs": s["share_offences_by_offenders_in_cjs"],
            "reoffences_per_reoffender_all": rpr["reoffences_per_reoffender"],
            "proven_reoffending_no_previous": history["rate_none"],
            "proven_reoffending_eleven_plus_previous": history["rate_11_plus"],
            "child_first_time_entrants_per_year": s["child_first_time_entrants_per_year"],
            "custody_drift": s["custody_drift"],
            "probation_drift": s["probation_drift"],
            "offences_drift": s["offences_drift"],
            "custody_stock_first_year": s["custody_first_year"],
            "licence_stock_first_year": s["licence_first_year"],
            "probation_stock_first_year": s["probation_first_year"],
            "custody_rms_deviation": s["custody_rms_deviation"],
            "probation_rms_deviation": s["probation_rms_deviation"],
            "offences_drift_per_head": s["offences_drift_per_head"],
            "custody_rms_deviation_per_adult": s["custody_rms_deviation_per_adult"],
            "probation_rms_deviation_per_adult": s["probation_rms_deviation_per_adult"],
            "da_incidents_per_year": s["da_incidents_per_year"],
            "da_repeat_share": s["da_repeat_share"],
            "da_high_risk_victims_per_year": s["da_high_risk_victims_per_year"],
            "start_tail_excess": start_tail_excess(params),
            "men_10_52_ever_convicted_end": metrics.share_ever_convicted(model.people, model.month, male=True),
            "women_10_52_ever_convicted_end": metrics.share_ever_convicted(model.people, model.month, male=False),
        }
    # the sons of the first 40 years: a longer run's first 40 years are a 40-year run's, month for month
    sons = metrics.sons_convicted_by_age(people_frame(model), events_frame(model), 40, last_month=SONS_LAST_MONTH)
    return {
        "sons_convicted_by_40_father_convicted": sons["rate_father_convicted"],
        "sons_convicted_by_40_father_not_convicted": sons["rate_father_not_convicted"],
    }


def _measure_task(args):
    return measure_one(*args)


def _measure_runs_task(args):
    return measure_runs(*args)


def measure(params_by_run: dict[str, Params], reps: int, seed: int, workers: int = 1, long_reps: int | None = None) -> pd.DataFrame:
    """Every target metric and steady series (``measure_one``) over ``reps`` replicates (``long_reps`` for the 40-year runs, default ``reps``): one row
    per (metric, replicate). The long runs' seeds are the first ``long_reps`` of the short runs'; where a long run
    begins as the short one (``begins_as``), its replicate gives that seed's short metrics too, and the short run
    is not run again (the rows are the same, in the same order)."""
    n_reps = {run: (reps if run != "long" or long_reps is None else long_reps) for run in params_by_run}
    seeds = {run: replicate_seeds(seed, n_reps[run]) for run in params_by_run}
    short, long_ = params_by_run.get("short"), params_by_run.get("long")
    shared = set(seeds["long"]) & set(seeds["short"]) if short is not None and long_ is not None and begins_as(long_, short) else set()
    tasks = [(params_by_run[run], s, run, short if run == "long" and s in shared else None)
             for run in params_by_run for s in seeds[run] if not (run == "short" and s in shared)]
    results = run_all(tasks, workers, "calibration runs", task=_measure_runs_task)
    by_run_seed = {(run, s): metrics_of_run for (_, s, _, _), res in zip(tasks, results) for run, metrics_of_run in res.items()}
    rows = []
    for run in params_by_run:
        for s in seeds[run]:
            rows += [{"metric": m, "seed": s, "value": v} for m, v in by_run_seed[run, s].items()]
    return pd.DataFrame(rows)


def scenario_for(run: str, scenario: str | Path, overrides=(), years: dict[str, int] = RUN_YEARS) -> Params:
    """The scenario as a calibration run runs it: ``years[run]`` years long, at the point fit
    (``run.calibration=point``: a fit moves the values of calibration/fitted.toml, which ensemble members would
    replace) unless ``overrides`` say otherwise."""
    return load_scenario(scenario, ["run.calibration=point", *overrides, f"run.years={years[run]}"])


def mc_standard_error(values: pd.Series) -> float:
    """The Monte Carlo standard error of the mean of ``values`` (NaN values left out; NaN with fewer than two)."""
    v = values.dropna()
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan


def ratio_of_means(values: pd.Series, starts: pd.Series) -> tuple[float, float]:
    """The mean path relative to its mean start, from each replicate's ratio ``values`` to its own start ``starts``:
    sum(start x ratio) / sum(start), with the ratio estimator's Monte Carlo standard error (NaN ratios left out; a
    start of 1 everywhere gives the plain mean and ``mc_standard_error``). Not the mean of the ratios, which a noisy
    start biases upward (a replicate whose first year is low by chance reads high every year after)."""
    ok = values.notna() & starts.notna() & (starts > 0)
    v, w = values[ok].to_numpy(float), starts[ok].to_numpy(float)
    n = len(v)
    if n == 0:
        return np.nan, np.nan
    r = float((w * v).sum() / w.sum())
    se = float(np.sqrt(n / (n - 1) * (w * w * (v - r) ** 2).sum()) / w.sum()) if n > 1 else np.nan
    return r, se


def compare_to_targets(measured: pd.DataFrame, targets: list[Target]) -> pd.DataFrame:
    """Per target: simulated mean, its 90% Monte Carlo interval (mean +- 1.645 SE), the target band, pass/fail."""
    out = []
    for t in targets:
        v = measured.loc[measured["metric"] == t.metric, "value"].dropna()
        n = len(v)
        mean = v.mean() if n else float("nan")
        se = mc_standard_error(v)
        out.append({"target": t.name, "metric": t.metric, "value": t.value, "lower": t.lower, "upper": t.upper,
                    "simulated": mean, "mc_se": se, "sim_p05": mean - 1.645 * se, "sim_p95": mean + 1.645 * se,
                    "replicates": n, "weight": t.weight, "pass": bool(t.lower <= mean <= t.upper) if n else False})
    return pd.DataFrame(out)


def residuals(table: pd.DataFrame) -> np.ndarray:
    """sqrt(weight) x (simulated - target) / half band, per target: what the fit drives to zero."""
    half_band = ((table["upper"] - table["lower"]) / 2).to_numpy()
    return np.sqrt(table["weight"].to_numpy()) * (table["simulated"] - table["value"]).to_numpy() / half_band


def loss(table: pd.DataFrame) -> float:
    """Weighted sum of squared distances from the targets, in units of each target's half band."""
    r = residuals(table)
    return float(r @ r)


def _to_unit(value: float, spec: dict) -> float:
    lo, hi = spec["lower"], spec["upper"]
    if spec.get("log"):
        value, lo, hi = math.log(value), math.log(lo), math.log(hi)
    frac = min(max((value - lo) / (hi - lo), 0.01), 0.99)  # 1% inside a bound: the transform is flat at the bound itself
    return math.log(frac / (1 - frac))


def _from_unit(x: float, spec: dict) -> float:
    lo, hi = spec["lower"], spec["upper"]
    frac = 1 / (1 + math.exp(-x))
    if spec.get("log"):
        return math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))
    return lo + frac * (hi - lo)


def current_value(params: Params, key: str) -> float:
    section, name = key.split(".")
    return float(getattr(getattr(params, section), name))


def free_parameters_to_fit(stage: str, only: list[str] | None = None) -> dict[str, dict]:
    """The free parameters a fit of ``stage`` moves ("joint": all), or just those named in ``only`` (each must be
    one of them: ScenarioError otherwise)."""
    free = {k: v for k, v in load_free_parameters().items() if stage == "joint" or v["stage"] == stage}
    if only:
        unknown = sorted(set(only) - set(free))
        if unknown:
            raise ScenarioError(f"--only {','.join(unknown)}: not a free parameter of stage {stage} (allowed: {', '.join(free)})")
        free = {k: v for k, v in free.items() if k in only}
    return free


class _Budget(Exception):
    """Raised inside the objective when the evaluation budget is spent."""


def calibrate(scenario: str | Path, stage: str, reps: int, seed: int, maxfev: int, workers: int, log=print,
              long_reps: int | None = None, only: list[str] | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """Fit the free parameters of ``stage`` ("short", "long", or "joint": all of them to every target at once).

    Least squares (scipy's trust-region reflective method, forward-difference Jacobian) on the residuals
    ``sqrt(weight) x (simulated - target) / half band``, each simulated value a mean over ``reps`` fixed seeds
    (common random numbers keep the residuals smooth enough to difference). Parameters are moved on an unbounded
    logit transform of their bounds (a start at a bound is moved 1% inside it). ``only`` restricts the fit to some of
    the stage's parameters (a polish), the rest held; ``overrides`` (``--set``) apply to every run (e.g. coarser weights). When the method converges it is restarted from the best point, as long as a
    restart improves on it. Stops after ``maxfev`` evaluations (each ``reps`` 10-year and ``long_reps`` (default
    ``reps``) 40-year runs, as the stage needs; Jacobian columns included) and returns the best point seen."""
    from scipy.optimize import least_squares

    free = free_parameters_to_fit(stage, only)
    targets = [t for t in load_targets() if (stage == "joint" or t.run == stage) and t.weight > 0]
    runs = sorted({t.run for t in targets})
    base = scenario_for(runs[0], scenario, overrides)
    x0 = np.array([_to_unit(current_value(base, k), spec) for k, spec in free.items()])
    history: list[tuple[float, np.ndarray]] = []
    t0 = time.perf_counter()

    def objective(x):
        if len(history) >= maxfev:
            raise _Budget
        values = [f"{k}={_from_unit(xi, spec)!r}" for xi, (k, spec) in zip(x, free.items())]
        try:
            params_by_run = {run: scenario_for(run, scenario, [*overrides, *values]) for run in runs}
        except ScenarioError:
            return np.full(len(targets), 1e3)
        table = compare_to_targets(measure(params_by_run, reps, seed, workers, long_reps), targets)
        r = np.nan_to_num(residuals(table), nan=1e3)
        history.append((float(r @ r), x.copy()))
        log(f"  evaluation {len(history):3d}: loss {r @ r:8.3f}  " + ", ".join(f"{k.split('.')[1]}={_from_unit(xi, sp):.4g}" for xi, (k, sp) in zip(x, free.items())))
        return r

    # Monte Carlo noise can make the trust region collapse early: restart from the best point while that helps
    best_loss = math.inf
    try:
        while True:
            least_squares(objective, x0, method="trf", diff_step=0.15, x_scale=1.0, max_nfev=10 * maxfev)
            loss_now, x0 = min(history, key=lambda h: h[0])
            if loss_now > best_loss - 1e-3:
                break
            best_loss = loss_now
    except _Budget:
        pass
    best_loss, best_x = min(history, key=lambda h: h[0])
    values = {k: _from_unit(xi, spec) for xi, (k, spec) in zip(best_x, free.items())}
    return {"stage": stage, "only": list(only or []), "values": values, "loss": best_loss, "evaluations": len(history), "seconds": time.perf_counter() - t0,
            "reps": reps, "long_reps": reps if long_reps is None else long_reps, "seed": seed, "parameters": list(free),
            "overrides": list(overrides)}


def write_fitted(fits: list[dict], table: pd.DataFrame, path: Path = CALIBRATION_DIR / "fitted.toml") -> None:
    """calibration/fitted.toml: the fitted values (a partial scenario that baseline.toml extends; each value's source
    names the fit that made it, or the fit's ``origin``) and a record of the fit: date, seeds, loss, evaluations, and
    the achieved metrics (out of sample: other seeds) with their Monte Carlo intervals. Values and records of stages not refitted now are kept as they were; values of parameters no
    longer free (not in free_parameters.toml) are dropped."""
    free = load_free_parameters()
    old = tomllib.loads(path.read_text()) if path.exists() else {}
    entries: dict[str, dict[str, dict]] = {sec: {k: v for k, v in t.items() if f"{sec}.{k}" in free}
                                           for sec, t in old.items() if sec != "calibration"}
    record = dict(old.get("calibration", {}))
    today = date.today().isoformat()
    for fit in fits:
        stage = fit["stage"]
        for key, v in fit["values"].items():
            sec, name = key.split(".")
            spec = free[key]
            entries.setdefault(sec, {})[name] = {
                "value": v, "unit": spec.get("unit", ""),
                "source": f"{fit.get('origin') or f'fitted by sim calibrate ({stage} stage, {today})'} to calibration/targets.toml within [{spec['lower']}, {spec['upper']}]",
            }
        polish = bool(fit.get("only"))
        if fit["stage"] == "joint" and not polish:  # supersedes any earlier fit
            record = {k: v for k, v in record.items() if not k.startswith(("stage_", "polish_"))}
        # a polish (--only) is recorded after the fit it starts from, which stays on record
        key = f"polish_{sum(k.startswith('polish_') for k in record) + 1}_{fit['stage']}" if polish else f"stage_{fit['stage']}"
        record[key] = {"date": date.today().isoformat(), "method": fit.get("method", "least squares (scipy trf)"), "loss": round(fit["loss"], 4), "evaluations": fit["evaluations"],
                                          **({"seconds": round(fit["seconds"])} if "seconds" in fit else {}), "replicates": fit["reps"],
                                          "replicates_long": fit.get("long_reps", fit["reps"]), "seed": fit["seed"],
                                          "parameters": fit.get("parameters", sorted(fit["values"]))}
        if "waves" in fit:
            record[key]["waves"] = [w["not_ruled_out"] for w in fit["waves"]]
        if fit.get("overrides"):
            record[key]["overrides"] = list(fit["overrides"])
    if not len(table):  # new values, not yet checked: an old record of achieved metrics would be stale
        record.pop("achieved", None)
        record.pop("date", None)
    if len(table):
        record["achieved"] = {r["target"]: {"simulated": round(float(r["simulated"]), 4), "p05": round(float(r["sim_p05"]), 4),
                                            "p95": round(float(r["sim_p95"]), 4), "replicates": int(r["replicates"])} for _, r in table.iterrows()}
        record["date"] = date.today().isoformat()

    def toml_value(v):
        if isinstance(v, str):
            return '"' + v.replace('"', "'") + '"'
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    lines = ["# Written by `sim calibrate` or `sim ensemble --write-point` (sim/fitting/); scenarios/baseline.toml extends this file.",
             "# Do not edit by hand: rerun the calibration. Bounds are in calibration/free_parameters.toml.", ""]
    for sec in sorted(entries):
        lines.append(f"[{sec}]")
        lines += [f"{name} = {toml_value(v)}" for name, v in sorted(entries[sec].items())]
        lines.append("")
    lines.append("[calibration]")
    for key, v in record.items():
        if isinstance(v, dict) and key == "achieved":
            lines += [f"achieved.{t} = {toml_value(a)}" for t, a in v.items()]
        else:
            lines.append(f"{key} = {toml_value(v)}")
    write_atomic(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def validate(scenario: str | Path, reps: int, seed: int, workers: int, overrides=(), long_reps: int | None = None) -> pd.DataFrame:
    """Every target beside its simulated value (mean over ``reps`` 10-year and ``long_reps`` (default ``reps``)
    40-year replicates)."""
    return validate_all(scenario, reps, seed, workers, overrides, long_reps)[0]


def validate_all(scenario: str | Path, reps: int, seed: int, workers: int, overrides=(), long_reps: int | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``validate``'s table, and the steadiness of the same runs (``steadiness``); targets the scenario does not
    measure (``Target.applies_to``) are left out."""
    params = load_scenario(scenario, overrides)
    targets = [t for t in load_targets() if t.applies_to(params)]
    runs = {t.run for t in targets}
    measured = measure({run: scenario_for(run, scenario, overrides, VALIDATE_YEARS) for run in sorted(runs)}, reps, seed, workers,
                       long_reps)
    return compare_to_targets(measured, targets), steadiness(measured)


#: a year's mean counts as within its tolerance when it is outside it by less than this many Monte Carlo standard
#: errors of the mean over replicates, as the ensemble's checks count a target's (``sim.fitting.ensemble.CHECK_Z``
#: is this): the mean of 16 replicates of the youth series moves 5-10% from year to year by chance
STEADY_Z = 1.645
#: replicates needed before a year's Monte Carlo error is allowed for (with two, the error is half their gap, and a
#: noisier run would pass more easily)
MIN_REPLICATES_FOR_SE = 4
#: the stocks whose mean path's RMS yearly deviation is held to ``stock_rms_limit`` (calibration/steadiness.toml)
STOCK_RMS_JUDGED = ("custody", "licence", "probation")


def load_steadiness_criteria(path: Path = CALIBRATION_DIR / "steadiness.toml") -> dict:
    """The steadiness criteria's values (tolerance, the population's projected growth and its tolerance, the national
    projection whose shape it follows after its first 10 years: a list of [years from the start, population])."""
    return {key: entry["value"] if isinstance(entry["value"], list) else float(entry["value"])
            for key, entry in tomllib.loads(Path(path).read_text()).items()}


def projected_population(years: np.ndarray, criteria: dict) -> np.ndarray:
    """The population ``years`` after the start (fractional), relative to it: Essex's projected growth over the first
    ``PROJECTION_YEARS`` (``population_growth_10_years``), and throughout the same multiple, in logs, of the
    national projection's growth (``national_population_projection``, log-linear between its years), so that
    Essex's growth slows as the nation's is projected to; without a national projection, the first rate continued."""
    g = math.log1p(criteria["population_growth_10_years"])
    national = criteria.get("national_population_projection")
    years = np.asarray(years, float)
    if national is None:
        return np.exp(g * years / PROJECTION_YEARS)
    t, size = np.asarray(national, float).T
    log_growth = np.log(size / size[0])
    first = np.interp(PROJECTION_YEARS, t, log_growth)
    if len(t) < 2 or t[0] != 0 or np.any(np.diff(t) <= 0) or not first > 0:
        raise ScenarioError(f"calibration/steadiness.toml: national_population_projection = {np.asarray(national).tolist()}: "
                            f"allowed: [years, population] pairs from year 0, years increasing, growing by year {PROJECTION_YEARS}")
    # beyond the projection's last year, its last segment's rate continued
    last_rate = (log_growth[-1] - log_growth[-2]) / (t[-1] - t[-2])
    national_growth = np.where(years <= t[-1], np.interp(years, t, log_growth), log_growth[-1] + last_rate * (years - t[-1]))
    return np.exp(g / first * national_growth)


def steadiness(measured: pd.DataFrame, criteria: dict | None = None) -> pd.DataFrame:
    """How steady the runs of ``measure`` are: per run ("short", "long"), series (``metrics.STEADY_FLOWS``,
    ``STEADY_STOCKS``) and year, the mean path relative to its mean start (``ratio_of_means``: each replicate's ratio
    to its own start, weighted by that start), the 5-95% range of single replicates' ratios, the same per head of
    ``metrics.PER_HEAD`` (weighted by the start's rate per head), the
    expected path with its tolerance (``criteria``, default calibration/steadiness.toml) and whether the mean is
    within it, or outside it by less than ``STEADY_Z`` Monte Carlo standard errors (``mc_se``) of the mean
    (``within``; True where there is nothing to judge: a start of 0, or the children and adults themselves, which
    are shown only). ``judged`` says what is judged (``judged_value`` holds it): each series per head of the people
    it is counted among ("per head": no change; Essex's population grows about as much in 10 years as the tolerance,
    so a series that held its level would be falling per head), a long run's adult series per adult at the first
    year's ages ("per head at the start's ages", ``per_head_at_start_ages``: the adults age as Essex's are projected
    to, which changes the crude rates per head at unchanged rates by age; ``metrics.AdultsByAge``), a series without
    its heads (the level, "level": no change), and the population against its projected growth
    (``projected_population``; after the projection's 10 years within a wider, assumed tolerance)."""
    c = load_steadiness_criteria() if criteria is None else criteria
    columns = ["run", "series", "year", "mean", "p05", "p95", "replicates", "per_head", "per_head_at_start_ages", "judged",
               "judged_value", "mc_se", "expected", "tolerance", "within", "rms_limit"]
    steady = measured[measured["metric"].str.startswith("steady:")]
    if steady.empty:
        return pd.DataFrame(columns=columns)
    df = _with_starts(steady, measured, "steady_start:")
    heads = df[["run", "seed", "year", "series", "value", "start"]].rename(
        columns={"series": "heads", "value": "heads_value", "start": "heads_start"})
    df = df.assign(heads=df["series"].map(metrics.PER_HEAD)).merge(heads, on=["run", "seed", "year", "heads"], how="left")
    df["per_head"] = df["value"] / df["heads_value"]
    df["start_per_head"] = df["start"] / df["heads_start"]  # the start's rate per head: each replicate's weight

    def mean_path(g: pd.DataFrame) -> pd.Series:
        mean, se_level = ratio_of_means(g["value"], g["start"])
        per_head, se_per_head = ratio_of_means(g["per_head"], g["start_per_head"])
        return pd.Series({"mean": mean, "p05": g["value"].quantile(0.05), "p95": g["value"].quantile(0.95),
                          "replicates": g["value"].count(), "per_head": per_head, "heads_read": g["per_head"].count(),
                          "se_level": se_level, "se_per_head": se_per_head})

    out = (df.groupby(["run", "series", "year"], sort=False)[["value", "start", "per_head", "start_per_head"]]
           .apply(mean_path).reset_index())
    out["replicates"] = out["replicates"].astype(int)
    out.loc[out["heads_read"] < out["replicates"], "per_head"] = np.nan  # heads missing in some replicates: the level
    aged = measured[measured["metric"].str.startswith("steady_at_start_ages:")]  # (long runs' adult series)
    if len(aged):
        aged = _with_starts(aged, measured, "steady_start_at_start_ages:")
        at_ages = (aged.groupby(["run", "series", "year"])[["value", "start"]]
                   .apply(lambda g: pd.Series(ratio_of_means(g["value"], g["start"]), index=["per_head_at_start_ages", "se_at_ages"]))
                   .reset_index())
        out = out.merge(at_ages, on=["run", "series", "year"], how="left")
    else:
        out["per_head_at_start_ages"] = out["se_at_ages"] = np.nan
    population = out["series"] == "population"
    shown_only = out["series"].isin(set(metrics.PER_HEAD.values()))
    projected = out["year"] < PROJECTION_YEARS
    # a year's mean sits mid-year (month 12 y + 5.5 from the first)
    out["expected"] = np.where(shown_only, np.nan, np.where(
        population, projected_population((12 * out["year"] + 5.5) / 12, c), 1.0))
    aged_ok = out["per_head_at_start_ages"].notna()
    out["judged"] = np.where(shown_only, "", np.where(population, "level", np.where(
        aged_ok, "per head at the start's ages", np.where(out["per_head"].notna(), "per head", "level"))))
    out["tolerance"] = np.where(population, np.where(projected, c["population_tolerance"],
                                                     c["population_tolerance_after_projection"]), c["tolerance"])
    out["judged_value"] = np.where(out["judged"] == "per head", out["per_head"],
                                   np.where(out["judged"] == "per head at the start's ages", out["per_head_at_start_ages"], out["mean"]))
    out["mc_se"] = np.where(out["judged"] == "per head", out["se_per_head"], np.where(
        out["judged"] == "per head at the start's ages", out["se_at_ages"], out["se_level"]))
    # (fewer than MIN_REPLICATES_FOR_SE replicates: no trustworthy estimate of the mean's error, none allowed)
    out["mc_se"] = out["mc_se"].where(out["replicates"] >= MIN_REPLICATES_FOR_SE).fillna(0.0)
    judged = out["expected"].notna() & out["judged_value"].notna()
    beyond = (out["judged_value"] - out["expected"]).abs() - out["tolerance"] * out["expected"]
    out["within"] = ~judged | (beyond <= 0) | (beyond < STEADY_Z * out["mc_se"])
    out["rms_limit"] = np.where(out["series"].isin(STOCK_RMS_JUDGED), c.get("stock_rms_limit", np.nan), np.nan)
    return out[columns].sort_values(["run", "series", "year"], kind="stable").reset_index(drop=True)


def _with_starts(rows: pd.DataFrame, measured: pd.DataFrame, start_prefix: str) -> pd.DataFrame:
    """``rows`` (metrics ``<kind>:<run>:<series>:<year>``) split into run, series and year, with each replicate's start
    of the series (metrics ``<start_prefix><run>:<series>``). A series none of whose replicates has a start measured
    gets 1 for each, which makes its mean path the plain mean of the replicates' ratios; where only some have one, those
    without it are left out (NaN), not weighted 1 against starts of hundreds."""
    parts = rows["metric"].str.split(":", expand=True)
    df = rows.assign(run=parts[1], series=parts[2], year=parts[3].astype(int))
    starts = measured[measured["metric"].str.startswith(start_prefix)]
    if starts.empty:
        return df.assign(start=1.0)
    sp = starts["metric"].str.split(":", expand=True)
    starts = starts.assign(run=sp[1], series=sp[2])[["run", "seed", "series", "value"]].rename(columns={"value": "start"})
    df = df.merge(starts, on=["run", "seed", "series"], how="left")
    none_measured = df.groupby(["run", "series"])["start"].transform(lambda s: s.isna().all())
    return df.assign(start=df["start"].where(~none_measured, 1.0))


def steadiness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per run and series of ``steadiness``: the year whose judged value (``judged``: the level, or per head) is
    furthest from its expected path in units of that year's tolerance, that value, what it is and the path there,
    whether it is steady (every year ``within``, and for the custody, licence and probation stocks an ``rms`` of at
    most the table's ``rms_limit``, where its criteria gave one), ``why`` if not, the year and value furthest from 1
    per head, and ``rms``: the root mean square over the years of the judged value's relative deviation from its path
    (the mean path's RMS yearly deviation; a single replicate's, as the stability targets read it, adds its own
    noise)."""
    rows = []
    for (run, series), g in table.groupby(["run", "series"], sort=False):
        value = g["judged_value"]
        off = (value / g["expected"] - 1).abs() / g["tolerance"]  # in tolerances: the tolerance may change with the year
        if off.notna().sum() == 0:
            continue  # nothing to judge (a zero start, or the children and adults themselves)
        worst = off.idxmax()
        rms = float(np.sqrt(((value / g["expected"] - 1) ** 2).mean()))
        rms_limit = float(g["rms_limit"].iloc[0]) if "rms_limit" in g else np.nan
        failures = (("a year beyond its tolerance", not g["within"].all()),
                    (f"RMS over {rms_limit:g}", rms_limit == rms_limit and rms > rms_limit))
        why = [reason for reason, failed in failures if failed]
        per_head = (g["per_head"] - 1).abs() if "per_head" in g else pd.Series(dtype=float)
        worst_per_head = g.loc[per_head.idxmax()] if per_head.notna().any() else None
        rows.append({"run": run, "series": series, "years": int(g["year"].max()) + 1, "worst_year": int(g.loc[worst, "year"]),
                     "worst_value": float(value[worst]), "worst_judged": str(g.loc[worst, "judged"]),
                     "worst_expected": float(g.loc[worst, "expected"]), "tolerance": float(g.loc[worst, "tolerance"]),
                     "steady": not why, "why": "; ".join(why), "rms": rms,
                     "worst_per_head_year": int(worst_per_head["year"]) if worst_per_head is not None else None,
                     "worst_per_head": float(worst_per_head["per_head"]) if worst_per_head is not None else np.nan})
    return pd.DataFrame(rows)
