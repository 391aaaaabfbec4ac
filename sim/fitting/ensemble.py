"""``sim ensemble``: calibration as an ensemble of parameter sets that each meet every target, not one point.

1. A history match (``history_matching.history_match``, runs kept in calibration/history_matching/, resumed when
   rerun with the same settings) rules out the parameter sets that cannot meet the targets;
2. candidates are drawn from what is left, where emulators fitted on every run put each target's mean inside its
   band (the emulators smooth the Monte Carlo noise of single runs);
3. each candidate is checked by runs of its own, on seeds the history match did not use, and kept unless they show
   it missing a target: every target's mean over those runs within its band, or missing it by less than its 90%
   Monte Carlo error (``CHECK_Z``); rounds of candidates are drawn until ``members`` are kept;
4. where the region that fits is too thin for the emulators to hit often, random walks from what passed (from the
   point fit when nothing did) explore it, each step checked the same way (``build_ensemble``).
5. for a scenario whose model differs from the baseline's (``recheck_ensemble``, ``sim ensemble --recheck``): the
   baseline's members checked again under it, those still meeting every target kept, and random walks from them.

Targets with a ``known_gap`` (none of the history match's sets meets them) take no part in 1-3; their values are
kept with each member and reported. The members go to the scenario's ``run.ensemble`` (calibration/ensemble.parquet
for the baseline; ``sim.state.ensemble``): one row a member, its values (``value:<key>``), its position in the unit
box (``u:<key>``), each target metric's mean and standard error over its check runs, how it was found (``found_by``) and how the ensemble was made (``made_by``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import tomllib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..model import MODEL_REVISION
from ..runs.batch import write_atomic
from ..runs.output import git_commit
from ..state.ensemble import ENSEMBLE, FITTED, VALUE
from ..state.scenario import ScenarioError
from .calibration import CALIBRATION_DIR, STEADY_Z, Target, load_free_parameters, load_targets, write_fitted
from .history_matching import (CUTOFF, STORE, Emulator, candidates, claim_store, evaluate, fitted_targets, from_cube,
                               history_match, load_waves, mean_loss, wave_emulator, worst_implausibility)

#: root seed of the check runs, added to the history match's (other seeds than the runs it learnt from)
CHECK_SEED_OFFSET = 2000
#: candidates drawn in a round, per member still wanted (a share of candidates fails its check)
OVERSAMPLE = 1.6
#: rounds of candidates at most
ROUNDS = 4
#: a set passes its check unless some target's mean over its check runs misses the band by more than this many
#: standard errors of that mean (1.645: its 90% Monte Carlo interval reaches the band; steadiness allows the same)
CHECK_Z = STEADY_Z
#: candidates of the first round (a pilot)
PILOT = 24
#: another round of candidates only if the last kept at least this share of its candidates
MIN_PASS_RATE = 0.25
#: searches near the candidates found, where a search of the whole box finds fewer than a round needs
SEARCH_ROUNDS = 5
#: a step of that search: normal, this sd on every parameter's unit range
SEARCH_SD = 0.03
#: random walks run side by side (one check run each a step)
CHAINS = 16
#: a walk's step: normal, this sd on every parameter's unit range
STEP_SD = 0.02
#: steps of the walks at most
MAX_STEPS = 40


def emulators_of(runs: pd.DataFrame, free: dict[str, dict], targets: list[Target]) -> list[Emulator]:
    """The history match's wave emulators, refitted from its stored runs as it fitted them."""
    emulators: list[Emulator] = []
    for wave in sorted(runs["wave"].unique()):
        emulators.append(wave_emulator(runs[runs["wave"] <= wave], int(wave), emulators, free, targets))
    return emulators


def within_bands(means: dict[str, np.ndarray], targets: list[Target], se: dict[str, np.ndarray] | None = None,
                 z: float = 0.0) -> np.ndarray:
    """Per row: whether every target's mean lies within its band, widened by ``z`` standard errors ``se`` of the mean
    where given (a mean that misses the band by less than its Monte Carlo error is not shown to miss it)."""
    ok = np.ones(len(next(iter(means.values()))), dtype=bool)
    for t in targets:
        slack = z * np.nan_to_num(se[t.metric], nan=0.0) if se is not None else 0.0
        ok &= (means[t.metric] >= t.lower - slack) & (means[t.metric] <= t.upper + slack)
    return ok


def draw_candidates(emulators: list[Emulator], overall: Emulator, targets: list[Target], n: int, seed: int) -> np.ndarray:
    """``n`` parameter sets (unit box) not ruled out, whose emulated means (``overall``: fitted on every run) all lie
    within their bands. The region is small, so where a search of the box finds fewer than ``n``, more are drawn near
    those it found (normal steps of ``SEARCH_SD`` of each range, ``SEARCH_ROUNDS`` rounds: a round may then cluster
    around the few found); when still fewer, the rest by least emulated loss, those not ruled out first."""
    cube, worst, _ = candidates(emulators, targets, max(20 * n, 1000), seed)
    predicted = {m: mean for m, (mean, _) in overall.predict(cube).items()}
    good = np.flatnonzero((worst <= CUTOFF) & within_bands(predicted, targets))
    rng = np.random.default_rng([seed, 1])
    for _ in range(SEARCH_ROUNDS):
        if len(good) >= n or len(good) == 0:
            break
        near = reflect(cube[rng.choice(good, size=max(20 * n, 1000))] + rng.normal(0, SEARCH_SD, (max(20 * n, 1000), cube.shape[1])))
        near_predicted = {m: mean for m, (mean, _) in overall.predict(near).items()}
        cube, worst = np.vstack([cube, near]), np.concatenate([worst, worst_implausibility(emulators, targets, near)])
        predicted = {m: np.concatenate([predicted[m], near_predicted[m]]) for m in predicted}
        good = np.flatnonzero((worst <= CUTOFF) & within_bands(predicted, targets))
    if len(good) >= n:
        return cube[np.random.default_rng(seed).choice(good, size=n, replace=False)]
    loss = sum(((predicted[t.metric] - (t.lower + t.upper) / 2) / t.half_width) ** 2 for t in targets)
    ranked = np.argsort(loss, kind="stable")
    ranked = ranked[~np.isin(ranked, good)]
    rest = np.concatenate([ranked[worst[ranked] <= CUTOFF], ranked[worst[ranked] > CUTOFF]])[: n - len(good)]
    return cube[np.concatenate([good, rest])]


def _stored_round(path: Path, free: dict, size: int) -> np.ndarray | None:
    """A round's candidates as the store holds them, when it holds the whole round (``size`` rows): they are not
    drawn again, since the draw goes through the emulators' fit, which another version of scikit-learn or scipy can
    move. A part-run round is drawn again and must match what was run (``evaluate`` checks)."""
    if not path.exists():
        return None
    stored = pd.read_parquet(path, columns=[f"u:{k}" for k in free]).to_numpy()
    return stored if len(stored) == size else None


def _check(scenario, free, cube, weighted, targets, check_reps, check_long_reps, seed, workers, path, overrides, scheduler,
           log) -> pd.DataFrame:
    """Run each row of ``cube`` on the check seeds (resumed from ``path``) and say whether it meets every target. A row
    whose 10-year runs already miss a target gets no 40-year runs (its 40-year metrics NaN): the same verdict at about
    half the cost. Such a row stays failed on a rerun even if a band is later widened (a member missed, never a
    wrong one admitted); narrowing a band re-judges every row from its stored means."""
    def can_pass(short: pd.DataFrame) -> bool:  # the test below, on the 10-year targets alone
        row = short.drop_duplicates("metric").set_index("metric")
        return bool(within_bands({m: row.loc[[m], "simulated"].to_numpy() for m in row.index}, short_targets,
                                 {m: row.loc[[m], "mc_se"].to_numpy() for m in row.index}, CHECK_Z)[0])

    short_targets = [t for t in targets if t.run == "short"]
    done = evaluate(scenario, free, cube, weighted, check_reps, check_long_reps, seed, workers, path, log=log,
                    overrides=overrides, scheduler=scheduler, screen=can_pass)
    return done.assign(passes=within_bands({t.metric: done[t.metric].to_numpy() for t in targets}, targets,
                                           {t.metric: done[f"se:{t.metric}"].to_numpy() for t in targets}, CHECK_Z))


def _claim_checks(store: Path, check_reps: int, check_long_reps: int, waves: int) -> None:
    """Keep the check runs with the replicates that made them and the waves whose emulators drew their candidates
    (``checks.json``): a rerun with others is refused rather than mixed with them (a stored round is not drawn
    again, see ``_stored_round``, so a history match carried further must not meet rounds drawn before it)."""
    claim = store / "checks.json"
    text = json.dumps({"check_reps": check_reps, "check_long_reps": check_long_reps, "waves": waves})
    if claim.exists():
        if claim.read_text() != text:
            raise ScenarioError(f"{store}: its check runs were made with {claim.read_text()}; rerun with those, or move "
                                "its check_*.parquet, walk_*.parquet and checks.json away (the waves can stay)")
        return
    if any(store.glob("check_*.parquet")) or any(store.glob("walk_*.parquet")):
        raise ScenarioError(f"{store}: holds check runs but no checks.json saying how they were made; move them away")
    write_atomic(claim, lambda tmp: tmp.write_text(text))


def reflect(u: np.ndarray) -> np.ndarray:
    """Positions folded back into the unit box at its walls (a random walk's step that would leave it)."""
    u = np.abs(u)
    return np.where(u > 1, 2 - u, u).clip(0, 1)


def point_fit_cube(scenario, free: dict[str, dict]) -> np.ndarray:
    """The point fit (the scenario's values of the free parameters) in the unit box."""
    from .calibration import current_value, scenario_for
    from .history_matching import to_cube

    params = scenario_for("short", scenario)
    return np.array([[min(max(to_cube(current_value(params, k), spec), 0.0), 1.0) for k, spec in free.items()]])


def build_ensemble(scenario, members: int, check_reps: int, check_long_reps: int, workers: int, store: Path = STORE,
                   out: Path = ENSEMBLE, log=print, scheduler: str | None = None, max_steps: int = MAX_STEPS) -> pd.DataFrame:
    """Find ``members`` parameter sets that each meet every target in their own check runs, write them to ``out`` and
    return them.

    First from the history match in ``store``: rounds of candidates (``draw_candidates``; the first a pilot of
    ``PILOT``) while a round keeps at least ``MIN_PASS_RATE`` of its candidates (at most ``ROUNDS``). Where that leaves too few (the region that fits is too
    thin for the emulators to hit), random walks go on from what passed (the point fit when nothing did): ``CHAINS`` walks in
    the unit box, each step a normal move of ``STEP_SD`` of every range, taken when the new set meets every target in
    its check runs (approximate Bayesian computation by Markov chain Monte Carlo with a uniform prior on the box and
    the bands as the acceptance region; Marjoram et al. 2003), until ``members`` have passed or ``max_steps`` (a rerun
    with fewer steps than stored writes the members of those steps). Every check is kept in ``store``
    (check_<round>.parquet, walk_<step>.parquet) and a rerun resumes them."""
    runs, settings = load_waves(store)
    free = load_free_parameters()
    if settings["free"] != free:
        raise ScenarioError(f"{store}: its runs were made with other free parameters than calibration/free_parameters.toml; "
                            "rerun the history match")
    weighted = [t for t in load_targets() if t.weight > 0]
    targets = fitted_targets(weighted)
    if [t.name for t in targets] != settings["targets"]:
        raise ScenarioError(f"{store}: its runs were ruled in or out by other targets than calibration/targets.toml's; "
                            "rerun the history match")
    _claim_checks(store, check_reps, check_long_reps, int(runs["wave"].nunique()))
    overrides = settings.get("overrides", [])
    seed = settings["seed"] + CHECK_SEED_OFFSET
    fitted: list = []  # the emulators, fitted when a round is first drawn (minutes; a rerun of stored rounds needs none)

    def emulated() -> tuple[list[Emulator], Emulator]:
        if not fitted:
            log(f"emulators of {len(runs)} runs in {runs['wave'].nunique()} waves")
            fitted.extend([emulators_of(runs, free, targets), Emulator(runs, free, sorted({t.metric for t in targets}))])
        return fitted[0], fitted[1]

    checked = []
    kept = 0
    common = (scenario, free)
    for round_ in range(1, ROUNDS + 1):
        wanted = members - kept
        if wanted <= 0 or (checked and checked[-1]["passes"].mean() < MIN_PASS_RATE):
            break
        drawn = math.ceil(OVERSAMPLE * wanted)
        size = min(PILOT, drawn) if round_ == 1 else drawn  # round 1, a pilot: do the emulators find sets that fit?
        cube = _stored_round(store / f"check_{round_}.parquet", free, size)
        if cube is None:
            cube = draw_candidates(*emulated(), targets, drawn, seed + round_)[:size]
        log(f"round {round_}: checking {len(cube)} candidates ({check_reps} 10-year and {check_long_reps} 40-year replicates each)")
        done = _check(*common, cube, weighted, targets, check_reps, check_long_reps, seed, workers,
                      store / f"check_{round_}.parquet", overrides, scheduler, log)
        checked.append(done.assign(found_by=f"history-match candidate, round {round_}"))
        kept += int(done["passes"].sum())
        log(f"round {round_}: {int(done['passes'].sum())} of {len(done)} meet every target ({kept} members so far)")
    if kept < members:
        passed = pd.concat(checked)
        starts = passed.loc[passed["passes"], [f"u:{k}" for k in free]].to_numpy()
        if len(starts) == 0:  # the point fit only where no candidate passed: under a changed model it may fit nowhere
            starts = point_fit_cube(scenario, free)
        log(f"random walks: {CHAINS} chains from " + (f"the {len(starts)} sets that passed" if passed["passes"].any() else "the point fit"))
        checked += _walk(common, starts, members - kept, max_steps, weighted, targets, check_reps, check_long_reps, seed,
                         workers, store, overrides, scheduler, log)
    table = pd.concat(checked, ignore_index=True)
    made_by = (f"sim ensemble {date.today().isoformat()} (commit {(git_commit() or 'unknown')[:7]}): history match of {len(runs)} runs in "
               f"{runs['wave'].nunique()} waves ({settings['reps']} 10-year and {settings['long_reps']} 40-year replicates "
               f"each, seed {settings['seed']}{', ' + ' '.join(overrides) if overrides else ''}); candidates not ruled out "
               f"(implausibility <= {CUTOFF:g}) with every emulated target mean within its band, then random walks "
               f"(steps of {STEP_SD:g} of each range) from what passed; {_kept_when(check_reps, check_long_reps, seed)}; "
               f"{int(table['passes'].sum())} of {len(table)} sets checked were kept")
    return _write_members(table, free, weighted, made_by, members, out, log)


def _kept_when(check_reps: int, check_long_reps: int, seed: int) -> str:
    """The check a set passed, in words (an ensemble's ``made_by``; ``write_point`` reads the runs back from it)."""
    return (f"kept when every target's mean over {check_reps} 10-year and {check_long_reps} 40-year check replicates "
            f"(root seed {seed}) lies within its band or misses it by less than {CHECK_Z:g} standard errors of that mean")


def _walk(common, starts: np.ndarray, wanted: int, max_steps: int, weighted, targets, check_reps, check_long_reps, seed,
          workers, store: Path, overrides, scheduler, log) -> list[pd.DataFrame]:
    """Random walks (``CHAINS``, started from ``starts`` in turn) until ``wanted`` moves have met every target or
    ``max_steps`` steps: each step a normal move of ``STEP_SD`` of every range, taken when its check runs meet every
    target (approximate Bayesian computation by Markov chain Monte Carlo; Marjoram et al. 2003). Each step's checks
    are kept in ``store`` (walk_<step>.parquet), so a rerun resumes them."""
    current = starts[np.arange(CHAINS) % len(starts)]
    checked, kept = [], 0
    for step in range(1, max_steps + 1):
        if kept >= wanted:
            break
        proposal = reflect(current + np.random.default_rng([seed, step]).normal(0, STEP_SD, current.shape))
        done = _check(*common, proposal, weighted, targets, check_reps, check_long_reps, seed, workers,
                      store / f"walk_{step}.parquet", overrides, scheduler, log)
        ok = done["passes"].to_numpy()
        current[ok] = proposal[ok]
        checked.append(done.assign(found_by=f"random walk, step {step}"))
        kept += int(ok.sum())
        log(f"walk step {step}: {int(ok.sum())} of {len(done)} moves meet every target ({kept} of {wanted} wanted so far)")
    return checked


def refuse_foreign(out: Path) -> None:
    """An ensemble is written as a .parquet file where none is, or over one ``sim ensemble`` made, never over anything
    else (``run.ensemble`` names where: a scenario or ``--set`` could name any file)."""
    out = Path(out)
    if out.suffix != ".parquet":
        raise ScenarioError(f"{out}: run.ensemble must name a .parquet file; nothing was run or written")
    if out.exists():
        try:
            made_by = str(pd.read_parquet(out, columns=["made_by"])["made_by"].iloc[0])
        except (OSError, ValueError, KeyError, IndexError):
            made_by = ""
        if not made_by.startswith("sim ensemble"):
            raise ScenarioError(f"{out}: exists and was not written by sim ensemble; name another file in run.ensemble, "
                                "or move it away; nothing was run or written")


def _write_members(table: pd.DataFrame, free: dict, weighted, made_by: str, members: int, out: Path, log) -> pd.DataFrame:
    """The sets of ``table`` that passed their checks, as an ensemble file at ``out`` (one row a member, with how
    the ensemble was made), returned."""
    refuse_foreign(out)
    ensemble = table[table["passes"]].reset_index(drop=True)
    if ensemble.empty:
        raise ScenarioError("no candidate met every target in its check runs; nothing was written")
    frame = pd.DataFrame({"member": np.arange(len(ensemble))})
    for k in free:
        frame[VALUE + k] = ensemble[k].to_numpy()
    for k in free:
        frame[f"u:{k}"] = ensemble[f"u:{k}"].to_numpy()
    for m in sorted({t.metric for t in weighted}):
        frame[m] = ensemble[m].to_numpy()
        frame[f"se:{m}"] = ensemble[f"se:{m}"].to_numpy()
    frame["found_by"] = ensemble["found_by"].to_numpy()
    frame["made_by"] = made_by
    write_atomic(out, lambda tmp: frame.to_parquet(tmp, index=False))
    log(f"{len(frame)} members -> {out}" + ("" if len(frame) >= members else f" (fewer than the {members} asked for)"))
    return frame


RECHECK_STORE = CALIBRATION_DIR / "rechecks"


def scenario_digest(scenario) -> str:
    """SHA-256 over the text of ``scenario`` and of every file it extends, in order, up to calibration/fitted.toml
    (what a check run's results depend on: it sets every fitted value itself)."""
    digest, path = hashlib.sha256(), Path(scenario).resolve()
    while path is not None and path != FITTED:  # (the point fit's values: every check run sets its own)
        text = path.read_bytes()
        digest.update(text)
        parent = tomllib.loads(text.decode()).get("extends")
        path = (path.parent / parent).resolve() if isinstance(parent, str) else None
    return digest.hexdigest()


def recheck_ensemble(scenario, source: Path, members: int, check_reps: int, check_long_reps: int, workers: int, store: Path,
                     out: Path, seed: int = 1, overrides=(), log=print, scheduler: str | None = None,
                     max_steps: int = MAX_STEPS) -> pd.DataFrame:
    """An ensemble for ``scenario``, a model that differs from the one ``source``'s members were selected under (e.g.
    the baseline with partner abuse on): each member of ``source`` checked again by runs of ``scenario`` (the same
    check as ``build_ensemble``'s, on the check seeds of root ``seed``), kept if it still meets every target, then
    random walks from those kept until ``members`` (``_walk``). The runs are kept in ``store`` and resumed; a store
    made with other settings (scenario and the files it extends, source, free parameters, targets, checks) is
    refused. Written to ``out``, which must not be ``source``."""
    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise ScenarioError(f"{out}: is the ensemble being checked again; write to another file (run.ensemble)")
    refuse_foreign(out)
    free = load_free_parameters()
    weighted = [t for t in load_targets() if t.weight > 0]
    targets = fitted_targets(weighted)
    try:
        frame = pd.read_parquet(source)
        cube = frame[[f"u:{k}" for k in free]].to_numpy(float)
        stored = frame[[VALUE + k for k in free]].to_numpy(float)
    except (OSError, ValueError, KeyError) as exc:
        raise ScenarioError(f"{source}: cannot be read as an ensemble with a position and a value for each free "
                            f"parameter ({type(exc).__name__}: {exc})") from None
    again = np.array([[from_cube(float(u), spec) for u, spec in zip(row, free.values())] for row in cube])
    if not np.allclose(again, stored, rtol=1e-6, atol=1e-9):
        raise ScenarioError(f"{source}: its members' positions give other values under today's "
                            "calibration/free_parameters.toml (bounds changed since it was made); make it again first")
    settings = {"model": MODEL_REVISION, "recheck_of": source.name,
                "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
                "scenario_sha256": scenario_digest(scenario), "free": free, "targets": [t.name for t in targets],
                "seed": seed, "check_reps": check_reps, "check_long_reps": check_long_reps, "overrides": list(overrides)}
    claim_store(store, settings)
    seed += CHECK_SEED_OFFSET
    common = (scenario, free)
    log(f"checking the {len(cube)} members of {source} again under {scenario} ({check_reps} 10-year and "
        f"{check_long_reps} 40-year replicates each)")
    done = _check(*common, cube, weighted, targets, check_reps, check_long_reps, seed, workers,
                  store / "check_members.parquet", overrides, scheduler, log)
    checked = [done.assign(found_by=[f"member {i} of {source.name}, checked again" for i in range(len(done))])]
    kept = int(done["passes"].sum())
    log(f"{kept} of {len(done)} members meet every target under {scenario}")
    if kept < members:
        starts = done.loc[done["passes"], [f"u:{k}" for k in free]].to_numpy()
        if len(starts) == 0:
            raise ScenarioError(f"no member of {source} meets every target under {scenario}: its model needs a history "
                                "match of its own (sim ensemble); nothing was written")
        log(f"random walks: {CHAINS} chains from the {len(starts)} members kept")
        checked += _walk(common, starts, members - kept, max_steps, weighted, targets, check_reps, check_long_reps, seed,
                         workers, store, overrides, scheduler, log)
    table = pd.concat(checked, ignore_index=True)
    made_by = (f"sim ensemble --recheck {date.today().isoformat()} (commit {(git_commit() or 'unknown')[:7]}): the "
               f"{len(cube)} members of {source.name} ({frame['made_by'].iloc[0] if 'made_by' in frame else 'made elsewhere'}) "
               f"checked again under {Path(scenario).name}{' with ' + ' '.join(overrides) if overrides else ''}, then random "
               f"walks (steps of {STEP_SD:g} of each range) from those kept; {_kept_when(check_reps, check_long_reps, seed)}; "
               f"{int(table['passes'].sum())} of {len(table)} sets checked were kept")
    return _write_members(table, free, weighted, made_by, members, out, log)


def member_losses(frame: pd.DataFrame, targets: list[Target] | None = None) -> np.ndarray:
    """Each member's loss on its own check runs: the sum over fitted targets of weight x ((mean - target) / half
    band)^2, the loss ``sim calibrate`` minimises."""
    targets = fitted_targets([t for t in load_targets() if t.weight > 0]) if targets is None else targets
    return mean_loss({t.metric: frame[t.metric].to_numpy() for t in targets}, targets)


def write_point(frame: pd.DataFrame, path: Path | None = None) -> int:
    """Write the member of least loss (the best fit among sets that all fit) to calibration/fitted.toml, what
    ``run.calibration = "point"`` pins, with its check runs' means as the achieved metrics; returns its index."""
    targets = fitted_targets([t for t in load_targets() if t.weight > 0])
    losses = member_losses(frame, targets)
    best = int(np.argmin(losses))
    row = frame.iloc[best]
    made = re.search(r"over (\d+) 10-year and (\d+) 40-year check replicates \(root seed (\d+)\)", row["made_by"])
    if made is None:  # (build_ensemble writes it; a frame made otherwise cannot say what its check runs were)
        raise ScenarioError(f"{ENSEMBLE}: its made_by does not say its check runs; rerun sim ensemble before --write-point")
    n_reps, n_long, seed = (int(x) for x in made.groups())
    free = load_free_parameters()
    table = pd.DataFrame([{"target": t.name, "simulated": row[t.metric],
                           "sim_p05": row[t.metric] - CHECK_Z * row["se:" + t.metric],
                           "sim_p95": row[t.metric] + CHECK_Z * row["se:" + t.metric], "replicates": n_reps}
                          for t in targets])
    fit = {"stage": "joint", "method": f"history matching, then the calibration ensemble's member of least loss "
                                       f"(member {best} of {len(frame)})",
           "origin": f"the calibration ensemble's member of least loss (sim ensemble --write-point, {date.today().isoformat()}; member {best})",
           "values": {k: float(row[VALUE + k]) for k in free}, "loss": float(losses[best]),
           "evaluations": len(frame), "reps": n_reps, "long_reps": n_long, "seed": seed, "parameters": list(free)}
    write_fitted([fit], table, path or CALIBRATION_DIR / "fitted.toml")
    return best


def ensemble_ranges(frame: pd.DataFrame, free: dict[str, dict] | None = None) -> pd.DataFrame:
    """Per free parameter: its bounds, the members' 5-50-95% points, the share of its range they span, and whether
    they crowd a bound (a tenth of the members within 2% of the range from it: the targets would take it further)."""
    free = load_free_parameters() if free is None else free
    rows = []
    for k, spec in free.items():
        if VALUE + k not in frame:
            continue
        u = frame[f"u:{k}"].to_numpy()
        v = frame[VALUE + k].to_numpy()
        rows.append({"parameter": k, "lower": spec["lower"], "upper": spec["upper"],
                     "p05": float(np.quantile(v, 0.05)), "p50": float(np.quantile(v, 0.5)), "p95": float(np.quantile(v, 0.95)),
                     "share_of_range": float(np.quantile(u, 0.95) - np.quantile(u, 0.05)),
                     "at_bound": "lower" if (u < 0.02).mean() >= 0.1 else "upper" if (u > 0.98).mean() >= 0.1 else ""})
    return pd.DataFrame(rows)


def ensemble_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Per weighted target: its band and the members' 5-50-95% points of their check-run means (the ensemble's
    interval: how far the parameter sets that fit spread it), known gaps included."""
    rows = []
    for t in load_targets():
        if t.weight > 0 and t.metric in frame:
            q = np.quantile(frame[t.metric].dropna(), [0.05, 0.5, 0.95])
            rows.append({"target": t.name, "lower": t.lower, "upper": t.upper, "p05": q[0], "p50": q[1], "p95": q[2],
                         "known_gap": bool(t.known_gap)})
    return pd.DataFrame(rows)


def ensemble_correlations(frame: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlations between the members' values (on the unit box): pairs the targets tie together."""
    cols = [c for c in frame.columns if c.startswith("u:")]
    corr = frame[cols].rank().corr()
    corr.index = corr.columns = [c[2:] for c in cols]
    return corr


def run(scenario, waves: int, points: int, reps: int, long_reps: int, seed: int, members: int, check_reps: int,
        check_long_reps: int, workers: int, overrides=(), store: Path = STORE, out: Path = ENSEMBLE, log=print,
        scheduler: str | None = None, max_steps: int = MAX_STEPS) -> pd.DataFrame:
    """The history match (resumed where its runs are stored), then the ensemble built from it, on local worker
    processes or the Dask cluster at ``scheduler``."""
    refuse_foreign(out)  # (before hours of runs, not after)
    t0 = time.perf_counter()
    history_match(scenario, waves, points, reps, long_reps, seed, workers, store=store, log=log, overrides=overrides,
                  scheduler=scheduler)
    frame = build_ensemble(scenario, members, check_reps, check_long_reps, workers, store=store, out=out, log=log,
                           scheduler=scheduler, max_steps=max_steps)
    log(f"done in {time.perf_counter() - t0:.0f} s")
    return frame
