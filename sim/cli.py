"""Command line: ``sim run SCENARIO.toml [--seed S] [--years Y] [--out DIR] [--events] [--set key=value]``,
``sim compare BASE.toml INTERVENTION.toml [--reps N]``, ``sim sweep SCENARIO.toml --set key=v1,v2``, ``sim bench``,
``sim app [--port N]`` (the commissioner's web app). User errors print one line and exit with code 2, before anything
is written."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from .runs.errors import BatchError, BatchInterrupted
from .runs.limits import check_limits, default_stall_timeout
from .runs.outdir import arm_file, check_path, claimed, is_png, read_manifest
from .runs.preflight import check_scheduler
from .state.scenario import ScenarioError, combine_scenarios, load_scenario, parse_grid, programme_on, sweep_grid

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own default prints usage too)
        self.exit(EXIT_USAGE, f"sim: error: {message}\n")


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _pos_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _address(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty address; give one such as tcp://HOST:8786")
    return text


def _port(text: str) -> int:
    value = _nonneg_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return value


def _pos_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sim", description="reoffsim: agent-based simulation of reoffending and intergenerational risk")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run one replicate of a scenario and write its outputs")
    run.add_argument("scenario", help="scenario TOML file, e.g. scenarios/baseline.toml")
    run.add_argument("--seed", type=_nonneg_int, help="replicate seed (default: [run] seed of the scenario)")
    run.add_argument("--years", type=_pos_float, help="length of the run in years (default: [run] years)")
    run.add_argument("--out", type=Path, help="output folder, new (default: outputs/<scenario name>)")
    run.add_argument("--force", action="store_true", help="replace an existing --out folder that sim wrote (refused if it holds anything else)")
    run.add_argument("--events", action="store_true", help="also write people.parquet and events.parquet (microdata)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a scenario value (repeatable)")
    run.add_argument("--reps", type=_pos_int, help="run a Monte Carlo batch of this many replicates (seeds spawned from --seed)")
    run.add_argument("--workers", type=_pos_int, help="batch: worker processes (default: all cores; 1 = in this process)")
    run.add_argument("--scheduler", type=_address, metavar="ADDRESS", help="batch: run on a Dask cluster, e.g. tcp://host:8786")
    run.add_argument("--resume", action="store_true", help="batch: complete the batch in --out, running only missing replicates")
    run.add_argument("--precision", type=_pos_float, help="batch: relative precision of means for the 'replicates needed' column (default 0.01)")
    _limit_options(run)
    _stall_option(run)
    cmp = sub.add_parser("compare", help="paired replicates of a baseline and an intervention scenario, with the appraisal; "
                                         "with two or more programmes, a portfolio")
    cmp.add_argument("baseline", help="baseline scenario TOML")
    cmp.add_argument("intervention", nargs="+", metavar="PROGRAMME",
                     help="intervention scenario TOML; two or more: a portfolio (each alone, their combination, and the interaction)")
    cmp.add_argument("--combined", type=Path, metavar="FILE",
                     help="portfolio: the combination of the programmes as a scenario file (default: each programme's "
                          "settings that differ from the baseline's, applied on top of the baseline)")
    cmp.add_argument("--by-channel", action="store_true",
                     help="also run the intervention with each of its channels (direct, children, needs, supervision) "
                          "at no effect, to show where the benefit comes from (3 times the runs)")
    _batch_options(cmp)
    sweep = sub.add_parser("sweep", help="compare a grid of intervention settings with the intervention switched off")
    sweep.add_argument("scenario", help="intervention scenario TOML; --set key=v1,v2,... gives the grid")
    _batch_options(sweep, grid=True)
    oneway = sub.add_parser("one-way", help="one-way sensitivity analysis: each assumption at the ends of its plausible "
                            "range, the programme against its baseline; which assumptions move the NPV, and switching values")
    oneway.add_argument("scenario", help="intervention scenario TOML, e.g. scenarios/multi_agency.toml")
    oneway.add_argument("--only", type=lambda v: [k.strip() for k in v.split(",") if k.strip()], metavar="KEY[,KEY...]",
                        help="vary only these assumptions (default: every input graded assumption with a plausible range)")
    oneway.add_argument("--top", type=_pos_int, default=20, help="assumptions shown in the figure and printed (default 20)")
    oneway.add_argument("--resume", action="store_true", help="complete the analysis in --out, running only the points not kept there")
    oneway.add_argument("--drawn", action="store_true",
                        help="keep the drawn inputs' draws and the calibration ensemble, replicate by replicate (default: the "
                             "deterministic base case, every drawn input at its mean and the calibration's point fit)")
    _batch_options(oneway)
    oneway.set_defaults(reps=8)
    rep = sub.add_parser("report", help="write report.html and figures for a compare (or portfolio) or sweep folder")
    rep.add_argument("folder", type=Path, help="folder written by sim compare or sim sweep")
    plot = sub.add_parser("plot", help="write one figure of a compare or sweep folder as PNG")
    plot.add_argument("folder", type=Path, help="folder written by sim compare or sim sweep")
    plot.add_argument("--figure", required=True, choices=["timeseries", "difference", "savings", "net_benefit", "sensitivity", "decision", "dose_response", "portfolio"],
                      help="which figure (dose_response needs a sweep folder, the others a comparison)")
    plot.add_argument("--out", type=Path, help="PNG file, new (default: FOLDER/figures/NAME.png)")
    plot.add_argument("--force", action="store_true", help="overwrite an existing --out PNG file")
    cal = sub.add_parser("calibrate", help="fit the free parameters to the published targets (writes calibration/fitted.toml)")
    cal.add_argument("--scenario", default="scenarios/baseline.toml", help="scenario the fit starts from (default scenarios/baseline.toml)")
    cal.add_argument("--stage", choices=["joint", "short", "long"], default="joint",
                     help="joint (default): every free parameter to every target; short: the 10-year parameters only; long: the father-son ones only")
    cal.add_argument("--reps", type=_pos_int, default=4, help="replicates (fixed seeds) per evaluation (default 4)")
    cal.add_argument("--only", type=lambda v: [k for k in v.split(",") if k], metavar="KEY[,KEY...]",
                     help="fit only these free parameters of the stage (e.g. a polish), the others held at their values")
    cal.add_argument("--long-reps", type=_pos_int, help="replicates of the 40-year runs per evaluation (default: --reps)")
    cal.add_argument("--seed", type=_nonneg_int, default=1, help="root seed of the fit's fixed replicates (default 1)")
    cal.add_argument("--maxfev", type=_pos_int, default=150, help="evaluations at most, Jacobian columns included (default 150)")
    cal.add_argument("--workers", type=_pos_int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    cal.add_argument("--method", choices=["least-squares", "history-matching"], default="least-squares",
                     help="least-squares (default): one point by scipy's trust-region method; history-matching: rule out "
                          "the parameter sets that cannot meet the targets, wave by wave, with emulators (runs kept in "
                          "calibration/history_matching/), and take the best of the rest (joint stage only)")
    cal.add_argument("--waves", type=_pos_int, default=3, help="history matching: waves (default 3)")
    cal.add_argument("--points", type=_pos_int, default=120, help="history matching: parameter sets per wave (default 120)")
    cal.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a scenario value in every run of the fit and its check (repeatable; e.g. coarser weights); "
                          "recorded with the fit")
    ens = sub.add_parser("ensemble", help="calibration as an ensemble: parameter sets that each meet every target (writes the scenario's run.ensemble, calibration/ensemble.parquet for the baseline)")
    ens.add_argument("--scenario", default="scenarios/baseline.toml", help="scenario (default scenarios/baseline.toml)")
    ens.add_argument("--waves", type=_pos_int, default=3, help="waves of the history match (default 3)")
    ens.add_argument("--points", type=_pos_int, default=120, help="parameter sets per wave (default 120)")
    ens.add_argument("--reps", type=_pos_int, default=4, help="10-year replicates per parameter set of a wave (default 4)")
    ens.add_argument("--long-reps", type=_pos_int, default=2, help="40-year replicates per parameter set of a wave (default 2)")
    ens.add_argument("--seed", type=_nonneg_int, default=1, help="root seed of the history match (the checks use it + 2000; default 1)")
    ens.add_argument("--members", type=_pos_int, default=100, help="members wanted (default 100)")
    ens.add_argument("--check-reps", type=_pos_int, default=8, help="10-year replicates that check a candidate (default 8)")
    ens.add_argument("--check-long-reps", type=_pos_int, default=2, help="40-year replicates that check a candidate (default 2)")
    ens.add_argument("--workers", type=_pos_int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    ens.add_argument("--scheduler", type=_address, metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://host:8786")
    ens.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a scenario value in every run (repeatable), e.g. population.scale_general=40")
    ens.add_argument("--max-steps", type=_pos_int, default=None, metavar="N",
                     help="steps of the random walks at most (default 40); fewer than are stored: the members those steps found")
    ens.add_argument("--recheck", type=Path, metavar="ENSEMBLE",
                     help="instead of a history match: check the members of ENSEMBLE (e.g. calibration/ensemble.parquet) again "
                          "under --scenario, a model that differs from theirs, keep those that still meet every target and walk "
                          "on from them to --members (--waves, --points, --reps and --long-reps are not used; give the --set "
                          "the source was made with); written to the scenario's run.ensemble, runs kept in "
                          "calibration/rechecks/<scenario>/")
    ens.add_argument("--show", action="store_true", help="only print what the stored ensemble says (ranges, bounds, correlations)")
    ens.add_argument("--write-point", action="store_true",
                     help="write the member of least loss to calibration/fitted.toml: the point estimate that run.calibration=point pins")
    val = sub.add_parser("validate", help="every calibration target beside its simulated value, pass/fail, and a figure")
    val.add_argument("--scenario", default="scenarios/baseline.toml", help="scenario to validate (default scenarios/baseline.toml)")
    val.add_argument("--reps", type=_pos_int, default=8, help="replicates of each run length (default 8)")
    val.add_argument("--seed", type=_nonneg_int, default=1001, help="root seed (default differs from the calibration's)")
    val.add_argument("--workers", type=_pos_int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    val.add_argument("--json", action="store_true", help="print the targets and the steadiness summary as JSON ({\"targets\": [...], \"steadiness\": [...]})")
    val.add_argument("--out", type=Path, default=Path("outputs/validation"), help="new folder for calibration.png, validation.csv, steadiness.png and steadiness.csv (default outputs/validation)")
    val.add_argument("--force", action="store_true", help="replace an existing --out folder that sim wrote (refused if it holds anything else)")
    val.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a scenario value (repeatable)")
    val.add_argument("--ensemble", action="store_true",
                     help="each replicate draws a member of calibration/ensemble.parquet (default: the point fit of calibration/fitted.toml)")
    val.add_argument("--record", action="store_true",
                     help="also write the achieved metrics to calibration/fitted.toml's record (the fitted values unchanged; not with --set)")
    noise = sub.add_parser("noise", help="how noisy one replicate is, and what it costs, at each weight of the general population's agents")
    noise.add_argument("--weights", type=lambda v: [_pos_float(x) for x in v.split(",") if x], default=[40.0, 20.0, 10.0],
                       metavar="W[,W...]", help="real people per general-population agent to compare (default 40,20,10)")
    noise.add_argument("--scenario", default="scenarios/baseline.toml", help="scenario (default scenarios/baseline.toml)")
    noise.add_argument("--reps", type=_pos_int, default=16, help="replicates at each weight, on the same seeds (default 16)")
    noise.add_argument("--seed", type=_nonneg_int, default=1, help="root seed (default 1)")
    noise.add_argument("--workers", type=_pos_int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    noise.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a scenario value (repeatable)")
    noise.add_argument("--json", action="store_true", help="print the table as JSON records")
    app = sub.add_parser("app", help="the commissioner's what-if app in the browser, at http://127.0.0.1:8765 (make app)")
    app.add_argument("--port", type=_port, default=8765, help="port to serve on (default 8765)")
    app.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    app.add_argument("--workers", type=_pos_int, help="worker processes for the replicates (default: all cores; 1 = in the server)")
    app.add_argument("--scheduler", type=_address, metavar="ADDRESS", help="run the replicates on a Dask cluster, e.g. tcp://host:8786")
    app.add_argument("--seed", type=_nonneg_int, default=1, help="root seed of every comparison (default 1, as sim compare)")
    app.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a scenario value in both arms of every comparison (repeatable), e.g. population.scale_general=20")
    bench = sub.add_parser("bench", help="the engine's speed against the targets and a fixed reference workload (a few minutes)")
    bench.add_argument("--scenario", default="scenarios/baseline.toml", help="scenario to time (default scenarios/baseline.toml)")
    bench.add_argument("--repeats", type=_pos_int, default=3,
                       help="timed runs of the default-weights replicate, the best kept (default 3; weight 5 gets one fewer, full scale one)")
    bench.add_argument("--batch-reps", type=_nonneg_int, default=100,
                       help="replicates in the Monte Carlo batch; fewer than 1,000 project the time for 1,000 (default 100; 0: skip)")
    bench.add_argument("--workers", type=_pos_int, help="worker processes of the batch (default: all cores)")
    bench.add_argument("--no-full", dest="full", action="store_false", help="skip the full-scale replicate (every weight 1, about a minute)")
    bench.add_argument("--quick", action="store_true", help="1-year runs of tiny populations: checks that the benchmark works, not a benchmark")
    bench.add_argument("--update-readme", action="store_true",
                       help="also rewrite the Speed table of --readme between its <!-- bench:start --> and <!-- bench:end --> markers")
    bench.add_argument("--readme", type=Path, default=Path("README.md"), help="the README for --update-readme (default README.md)")
    bench.add_argument("--against", type=Path, metavar="DIR",
                       help="instead: time this engine and the one in the checkout DIR in turn on --scenario (e.g. after git "
                            "worktree add DIR REV); other options but --rounds are ignored")
    bench.add_argument("--rounds", type=_pos_int, default=6, help="rounds of --against (default 6)")
    bench.add_argument("--by-process", action="store_true",
                       help="instead: one replicate at the default weights with each process timed (build and run), a table of "
                            "where the time goes (seconds); other options but --scenario and --quick are ignored")
    return parser


def _batch_options(p, grid: bool = False) -> None:
    p.add_argument("--reps", type=_pos_int, default=20, help="paired replicates (default 20)")
    p.add_argument("--years", type=_pos_float, help="length of each run in years (default: the scenario's)")
    p.add_argument("--seed", type=_nonneg_int, default=1, help="root seed; replicate seeds are spawned from it (default 1)")
    p.add_argument("--out", type=Path, help="output folder, new (default: under outputs/)")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder that sim wrote (refused if it holds anything else)")
    p.add_argument("--workers", type=_pos_int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    p.add_argument("--scheduler", type=_address, metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://host:8786")
    _limit_options(p)
    _stall_option(p)
    help_set = "grid axis: section.key=v1,v2,... (repeatable; several give a product grid)" if grid else "override in both scenarios (repeatable)"
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=help_set)


def _limit_options(p) -> None:
    p.add_argument("--max-memory", type=_pos_float, metavar="GB",
                   help="refuse a run whose estimated memory (per replicate x workers at once) exceeds this (default: 80%% of this machine's)")
    p.add_argument("--max-hours", type=_pos_float, metavar="H", help="refuse a run whose estimated time per replicate (one core) exceeds this (default 2)")


def _stall_option(p) -> None:
    p.add_argument("--stall-timeout", type=_pos_float, metavar="SECONDS",
                   help="stop (keeping a batch's finished replicates) if no replicate finishes for this long "
                        "(default: 600, or 20x the estimated time of a replicate if longer)")


def cmd_compare(args) -> int:
    from .processes.intervention import CHANNELS

    if len(args.intervention) > 1:
        return cmd_portfolio(args)
    if args.combined is not None:
        raise ScenarioError("--combined: the combination of a portfolio; give two or more programmes")
    args.intervention = args.intervention[0]
    overrides = _compare_overrides(args)
    base = load_scenario(args.baseline, overrides)
    iv = load_scenario(args.intervention, overrides)
    _same_length(base, [iv])
    if _has_abuse(base) != _has_abuse(iv):
        on, off = (args.intervention, args.baseline) if _has_abuse(iv) else (args.baseline, args.intervention)
        raise ScenarioError(f"{on} models partner abuse and {off} does not: a comparison needs it on in both or neither "
                            "(compare a DA programme with scenarios/domestic_abuse.toml)")
    out = args.out or Path("outputs") / f"{iv.run.name}_vs_{base.run.name}"
    arms = len(CHANNELS) if args.by_channel else 0
    stall = _stall_timeout(args, _preflight(args, [base, iv], (2 + arms) * args.reps, args.workers))
    with claimed(out, force=args.force):
        from .appraisal.compare import channel_contributions, summary_table  # (after the checks, as in cmd_run)
        from .runs.output import write_comparison
        from .runs.paired import compare

        rows, series, ledger, _, *by_arm = compare(base, iv, args.reps, args.seed, args.workers, scheduler=args.scheduler,
                                                   stall_timeout=stall, channels=args.by_channel)
        channels = channel_contributions(rows, by_arm[0]) if args.by_channel else None
        table = summary_table(rows)
        write_comparison(out, base, iv, args.seed, rows, table, series, ledger, force=args.force, channels=channels)
        print(_comparison_text(base, iv, args, table, out))
        if channels is not None:
            print(_channels_text(channels))
        from .present.report import report

        print(f"-> {report(out)}")
    return 0


def _has_abuse(*scenarios) -> bool:
    """Whether any of the scenarios models partner abuse (else its lines are left out of the printed comparison)."""
    from .processes.domestic_abuse import is_on

    return any(is_on(p.domestic_abuse) for p in scenarios)


def _compare_overrides(args) -> list[str]:
    return list(args.set) + ([f"run.years={args.years}"] if args.years is not None else [])


def _same_length(base, others: list) -> None:
    """A comparison needs one run length: refuse a scenario that runs longer or shorter than the baseline."""
    for iv in others:
        if base.run.years != iv.run.years:
            raise ScenarioError(f"{iv.source_file}: run.years = {iv.run.years:g} but {base.source_file} runs {base.run.years:g} years: "
                                f"a comparison needs one length; give --years (e.g. --years {max(base.run.years, iv.run.years):g})")


def cmd_portfolio(args) -> int:
    """``sim compare BASE A B [C ...]``: the baseline, each programme alone and their combination on the same
    seeds, and the interaction (the combination minus the sum of the programmes), with its report."""
    if args.by_channel:
        raise ScenarioError("--by-channel: decomposes one programme; compare each programme with the baseline on its own for it")
    overrides = _compare_overrides(args)
    base = load_scenario(args.baseline, overrides)
    programmes = [load_scenario(path, overrides) for path in args.intervention]
    _same_length(base, programmes)
    # a programme is its own settings (over the scenario its file extends) applied to this baseline: so a programme
    # written for the plain baseline joins one written for another (e.g. scenarios/domestic_abuse.toml) on either
    programmes = [programme_on(base, p, overrides) for p in programmes]
    name = "+".join(p.run.name for p in programmes)
    if args.combined is None:
        combination = combine_scenarios(base, programmes)
    else:
        given = load_scenario(args.combined, overrides)
        _same_length(base, [given])
        combination = replace(given, run=replace(given.run, name=name))
    arms = [p.run.name for p in programmes] + [name]
    taken = {"baseline": args.baseline, "interaction": "", "sum of programmes": ""}
    for path, arm in zip([*args.intervention, args.combined or "the combination"], arms):
        if arm_file(arm) in {arm_file(a) for a in taken}:
            raise ScenarioError(f"{path}: run.name = {arm!r}, a name already taken{' by ' + str(taken[arm]) if taken.get(arm) else ''}: "
                                "the programmes of a portfolio need distinct run.name values (and none named baseline, interaction or sum of programmes)")
        taken[arm] = path
    out = args.out or Path("outputs") / f"portfolio_{'_'.join(arms[:-1])}_vs_{base.run.name}"
    stall = _stall_timeout(args, _preflight(args, [base, *programmes, combination], (len(arms) + 1) * args.reps, args.workers))
    with claimed(out, force=args.force):
        from .appraisal.portfolio import portfolio_replicates, portfolio_table  # (after the checks, as in cmd_run)
        from .runs.output import write_portfolio
        from .runs.paired import compare_portfolio

        rows, series = compare_portfolio(base, {p.run.name: p for p in programmes} | {name: combination}, args.reps, args.seed, name,
                                         args.workers, args.scheduler, stall)
        long = portfolio_replicates(rows, arms[:-1], name)
        table = portfolio_table(long)
        write_portfolio(out, base, programmes, combination, args.combined is not None, args.seed, rows, long, table, series, force=args.force)
        print(_portfolio_text(base, combination, args, table, out))
        from .present.report import report

        print(f"-> {report(out)}")
    return 0


def _portfolio_text(base, combination, args, table, out: Path) -> str:
    """The portfolio on the terminal: key metrics by arm with their 90% intervals, and the verdict on the interaction."""
    from .present.report import portfolio_verdict

    t = table.set_index(["metric", "arm"])
    arms = list(dict.fromkeys(table["arm"]))
    shown = (("appraisal:offences_avoided", "offences avoided", lambda v: f"{v:,.0f}"),
             ("appraisal:intervention_cost", "programme cost, GBP m", lambda v: f"{v / 1e6:,.2f}"),
             ("appraisal:npv", "net present value, GBP m", lambda v: f"{v / 1e6:,.2f}"),
             ("appraisal:bcr", "benefit-cost ratio", lambda v: "n/a" if v != v else f"{v:.2f}"))
    lines = [f"portfolio {combination.run.name} vs {base.run.name}: {args.reps} paired replicates of {combination.months} months, "
             f"root seed {args.seed}, every arm on the same seeds -> {out}/"]
    for metric, label, fmt in shown:
        lines.append(f"  {label}:")
        for arm in arms:
            r = t.loc[(metric, arm)]
            lines.append(f"    {arm:<36}{fmt(r['mean']):>12}  (90%: {fmt(r['p05'])} to {fmt(r['p95'])})")
    lines.append("  " + portfolio_verdict(table))
    return "\n".join(lines)


def cmd_sweep(args) -> int:
    file_axes = sweep_grid(args.scenario)
    axes = file_axes + list(args.set)
    if not axes:
        raise ScenarioError(f"{args.scenario}: no grid: add a [sweep] table or --set section.key=v1,v2,...")
    grid = parse_grid(axes)
    years = [f"run.years={args.years}"] if args.years is not None else []
    origin = {a.split("=", 1)[0]: f"{args.scenario} [sweep]" for a in file_axes}
    points = [load_scenario(args.scenario, point + years, origin) for point in grid]  # validates every point first
    out = args.out or Path("outputs") / f"{points[0].run.name}_sweep"
    stall = _stall_timeout(args, _preflight(args, points, 2 * args.reps, args.workers))
    with claimed(out, force=args.force):
        return _sweep(args, grid, points, years, out, stall)


def cmd_one_way(args) -> int:
    from .appraisal.one_way import is_idle, points, ranged_assumptions
    from .processes import da_hub
    from .state.scenario import at_means

    if args.resume and args.force:
        raise ScenarioError("--resume completes the analysis in --out and --force replaces it: give one of them")
    years = [f"run.years={args.years}"] if args.years is not None else []
    # the deterministic base case (Green Book; a health economist's one-way analysis): the point fit, and below, every
    # drawn input at its mean, so that points differ only in the assumption moved and in the chance of the runs
    overrides = (["run.calibration=point"] if not args.drawn else []) + list(args.set) + years
    base_case = (lambda p: p) if args.drawn else at_means
    params = base_case(load_scenario(args.scenario, overrides))
    if params.intervention.coverage <= 0:
        hub = " (the DA hub is not yet supported: the analysis compares the offender-family programme with itself switched off)" \
            if da_hub.is_on(params.da_hub) else ""
        raise ScenarioError(f"{args.scenario}: intervention.coverage = 0: give a scenario with the multi-agency programme "
                            f"on, e.g. scenarios/multi_agency.toml{hub}")
    assumptions = ranged_assumptions(args.scenario, params, args.only)
    idle = [a.key for a in assumptions if is_idle(params, a.key)] if args.only is None else []
    assumptions = [a for a in assumptions if a.key not in idle]
    if idle:
        print(f"left out, as moving them changes nothing here (their process is off, or the simulated past replaces "
              f"them): {', '.join(idle)}")
    if not assumptions:
        raise ScenarioError(f"{args.scenario}: no input graded assumption states a plausible range; nothing to vary")
    tied, ends = {}, {}  # assumptions whose ends are refused as they stand (e.g. shares that must sum to 1): left out, with why
    for a in assumptions:
        for end in ("low", "high"):
            try:
                ends[a.key, end] = base_case(load_scenario(args.scenario, overrides + [a.setting(end)]))
            except ScenarioError as exc:
                tied.setdefault(a.key, str(exc).split(": ", 1)[-1])
    for key, why in tied.items():
        print(f"left out, {key} cannot be moved alone to the ends of its range: {why}")
    assumptions = [a for a in assumptions if a.key not in tied]
    if not assumptions:
        raise ScenarioError(f"{args.scenario}: no assumption can be moved alone across its plausible range")
    settings = points(assumptions)
    point_params = [params] + [ends[a.key, end] for a in assumptions for end in ("low", "high")]  # in the order of points()
    out = args.out or Path("outputs") / f"{params.run.name}_one_way"
    stall = _stall_timeout(args, _preflight(args, point_params, 2 * args.reps, args.workers))
    identity = {"scenario_file": params.source_file, "overrides": overrides, "settings": settings,
                "reps": args.reps, "seed": args.seed, "drawn": args.drawn}
    print(f"{len(assumptions)} assumptions at both ends of their plausible ranges: {len(settings)} points x {args.reps} "
          "paired replicates")
    with claimed(out, force=args.force, resume=args.resume, resumable=True) as folder:
        from .present.figures import one_way_figure, save  # (after the checks and the output folder, as in cmd_run)
        from .runs.one_way import run_one_way

        table, words = run_one_way(folder, assumptions, settings, point_params, identity, args.reps, args.seed, args.workers,
                                   args.scheduler, stall, args.force, args.resume,
                                   lambda t, path: save(one_way_figure(t, args.top), path))
    shown = table.head(args.top)[["key", "low", "high", "npv_low", "npv_central", "npv_high", "npv_swing", "switching_value"]]
    money = ["npv_low", "npv_central", "npv_high", "npv_swing"]
    shown = shown.assign(**{c: shown[c] / 1e6 for c in money}).rename(columns={c: f"{c} (GBP m)" for c in money})
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    print(words)
    print(f"-> {out}/one_way.csv, {out}/one_way.png")
    return 0


def _stall_timeout(args, estimate) -> float:
    """--stall-timeout, or its default for the costliest replicate (as ``run_batch`` chooses it)."""
    return args.stall_timeout or default_stall_timeout(estimate.cpu_seconds)


def _sweep(args, grid, points, years, out: Path, stall: float) -> int:
    import pandas as pd

    from .appraisal.compare import summary_table, switched_off
    from .runs.output import write_sweep
    from .runs.paired import compare_arms

    plain = load_scenario(args.scenario, years)
    groups: dict = {}  # baseline -> the grid points it serves (those that differ only in [intervention] share one)
    for k, iv in enumerate(points):
        groups.setdefault(switched_off(iv, plain.intervention), []).append(k)
    rows_of: dict[int, pd.DataFrame] = {}
    for j, (base, ks) in enumerate(groups.items()):  # a group's points run together: one start a replicate for all
        label = f"points {', '.join(str(k + 1) for k in ks)} of {len(grid)}" if len(ks) < 4 else f"{len(ks)} points of {len(grid)}"
        results, _ = compare_arms(base, [points[k] for k in ks], args.reps, args.seed, args.workers,
                                  f"{label} ({j + 1}/{len(groups)})", None, args.scheduler, stall)
        rows_of.update({k: rows for k, (rows, _, _) in zip(ks, results)})
    tables, all_rows = [], []
    for k, point in enumerate(grid):
        tables.append((point, summary_table(rows_of[k])))
        all_rows.append(rows_of[k].assign(grid_point=k, **{s.split("=", 1)[0]: s.split("=", 1)[1] for s in point}))
    result = write_sweep(out, points[0], args.seed, args.reps, tables, pd.concat(all_rows, ignore_index=True), force=args.force)
    shown = [c for c in result.columns if "=" not in c and c in {s.split("=", 1)[0] for s in grid[0]}]
    table = result[shown + ["appraisal:intervention_cost", "appraisal:npv", "appraisal:bcr", "appraisal:benefits_exceed_costs"]].copy()
    table.insert(len(shown), "offences_avoided", -result["offences"])
    print(table.rename(columns=lambda c: c.replace("appraisal:", "")).to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    from .present.report import report

    print(f"-> {out}/sweep.csv, {report(out)}")
    return 0


def _preflight(args, scenarios: list, runs: int, workers: int | None = 1, events: bool = False, scheduler: bool = True):
    """Before any work: each scenario fits the machine (memory for as many replicates at once as will run: the
    workers, at most ``runs``; time per replicate) and, if ``scheduler``, the scheduler answers (``run_batch`` checks
    its own). Returns the costliest estimate. (The output folder is checked by ``claimed``.)"""
    at_once = 1 if args.scheduler else min(workers or os.cpu_count() or 1, runs)  # a cluster's replicates run elsewhere
    estimates = [check_limits(p, at_once, args.max_memory, args.max_hours, events=events) for p in scenarios]
    if args.scheduler and scheduler:
        check_scheduler(args.scheduler)
    return max(estimates, key=lambda e: e.cpu_seconds)


def _channels_text(channels) -> str:
    """Crimes avoided and NPV by channel (``--by-channel``), one line each."""
    from .appraisal.compare import channel_table

    t = channel_table(channels).set_index(["metric", "channel"])
    parts = ("direct", "children", "needs", "supervision")

    def line(metric, label, fmt):
        cells = [f"{c} {fmt(t.loc[(metric, c), 'mean'])}" for c in parts if (metric, c) in t.index]
        return f"  {label:<38}" + ", ".join(cells)

    return "\n".join([
        "  by channel (full intervention minus the same replicates with that channel at no effect):",
        line("appraisal:offences_avoided", "offences avoided", lambda v: f"{v:,.0f}"),
        line("appraisal:npv", "NPV, GBP million", lambda v: f"{v / 1e6:,.1f}"),
    ])


def _optimism_bias_rows(share, row) -> list[str]:
    """The NPV and BCR with optimism bias on benefits, when the scenario sets any (a number, or a distribution)."""
    from .state.params import Dist

    if isinstance(share, Dist):
        label = f"{share} optimism bias"
    elif share > 0:
        label = f"{share:.0%} optimism bias"
    else:
        return []
    return [row("appraisal:npv_optimism_bias", f"  NPV, benefits less {label}"), row("appraisal:bcr_optimism_bias", "  BCR, the same", "{:.2f}")]


def _comparison_text(base, iv, args, table, out: Path) -> str:
    import pandas as pd

    t = table.set_index("metric")

    def row(metric, label, fmt="{:,.0f}", scale=1.0):
        r = t.loc[metric]
        ci = f"  (90%: {fmt.format(r.difference_p05 * scale)} to {fmt.format(r.difference_p95 * scale)})" if pd.notna(r.difference_p05) else ""
        return f"  {label:<38}{fmt.format(r.difference * scale):>14}{ci}"

    def outcome(metric, label, fmt="{:,.0f}", scale=1.0):
        r = t.loc[metric]
        return f"  {label:<38}{fmt.format(r.baseline * scale):>14}{fmt.format(r.intervention * scale):>14}{fmt.format(r.difference * scale):>14}  (90%: {fmt.format(r.difference_p05 * scale)} to {fmt.format(r.difference_p95 * scale)})"

    lines = [
        f"{iv.run.name} vs {base.run.name}: {args.reps} paired replicates of {iv.months} months, root seed {args.seed} -> {out}/",
        f"  {'':<38}{'baseline':>14}{'intervention':>14}{'difference':>14}",
        outcome("offences", "offences"),
        outcome("convictions", "convictions"),
        outcome("proven_reoffending_prison", "proven reoffending, prison (%)", "{:.1f}", 100),
        outcome("proven_reoffending_probation", "proven reoffending, probation (%)", "{:.1f}", 100),
        outcome("custody_months", "prisoner-months"),
        outcome("children_convicted", "convictions of children"),
        outcome("first_time_entrants", "first-time entrants"),
        outcome("iv_families_started", "families starting the intervention"),
        *([outcome("da_incidents", "domestic-abuse incidents"), outcome("da_victim_years", "victim-years of domestic abuse"),
           outcome("da_children_exposed", "children exposed to domestic abuse"),
           outcome("hub_victims_started", "victims starting DA hub support")] if _has_abuse(base, iv) else []),
        f"  present values, GBP {iv.costs.base_price_year} prices, discounted at {100 * iv.costs.discount_rate:.1f}% a year"
        f" ({100 * iv.costs.discount_rate_after_30_years:.1f}% after year 30):",
        row("appraisal:intervention_cost", "intervention cost"),
        row("savings_by_kind:fiscal_cashable", "savings: fiscal cashable"),
        row("savings_by_kind:fiscal_non_cashable", "savings: fiscal non-cashable"),
        row("appraisal:transfer_savings", "  of which benefits (transfers)"),
        row("savings_by_kind:economic", "savings: economic"),
        row("savings_by_kind:social", "savings: social"),
        row("appraisal:net_fiscal_benefit", "net fiscal benefit"),
        row("appraisal:npv", "net present value (transfers out)"),
        row("appraisal:bcr", "benefit-cost ratio", "{:.2f}"),
        *_optimism_bias_rows(iv.costs.optimism_bias_benefits, row),
        row("appraisal:cost_per_offence_avoided", "cost per offence avoided"),
        f"  {'chance benefits exceed costs':<38}{t.loc['appraisal:benefits_exceed_costs'].difference:>14.0%}",
        (f"  {'payback year (median)':<38}{t.loc['appraisal:payback_year'].difference:>14.0f}" if pd.notna(t.loc['appraisal:payback_year'].difference)
         else f"  {'payback year':<38}{'not within the run':>14}") + f"  ({t.loc['appraisal:share_paying_back'].difference:.0%} of replicates pay back)",
    ]
    return "\n".join(lines)


def cmd_run(args) -> int:
    overrides = list(args.set)
    if args.years is not None:
        overrides.append(f"run.years={args.years}")
    params = load_scenario(args.scenario, overrides)
    seed = params.run.seed if args.seed is None else args.seed
    out = args.out or Path("outputs") / params.run.name
    if args.reps is not None:
        if args.events:
            raise ScenarioError("--events writes the microdata of a single run; leave it out with --reps (or run one seed)")
        if args.resume and args.force:
            raise ScenarioError("--resume completes the batch in --out and --force replaces it: give one of them")
        estimate = _preflight(args, [params], args.reps, args.workers, scheduler=False)
        with claimed(out, force=args.force, resume=args.resume, resumable=True):
            return cmd_batch(args, params, seed, out, estimate.cpu_seconds)
    batch_only = [name for name, given in (("--resume", args.resume), ("--scheduler", args.scheduler), ("--workers", args.workers),
                                           ("--stall-timeout", args.stall_timeout), ("--precision", args.precision)) if given]
    if batch_only:
        raise ScenarioError(f"{', '.join(batch_only)}: for batches only; add --reps N")
    _preflight(args, [params], 1, events=args.events)
    with claimed(out, force=args.force):
        from .model import ReoffendingModel  # (once the checks and the output folder have passed: refusals are quick)
        from .runs.output import write_run

        t0 = time.perf_counter()
        model = ReoffendingModel(params, seed=seed, record_offences=args.events)
        model.run()
        summary = write_run(model, out, with_events=args.events, force=args.force)
    elapsed = time.perf_counter() - t0
    print(_human_summary(params, seed, summary, out, elapsed))
    return 0


def cmd_plot(args) -> int:
    import pandas as pd

    from .present import figures as F

    folder = args.folder
    manifest = read_manifest(folder, ("comparison", "sweep", "portfolio"))
    out = args.out or folder / "figures" / f"{args.figure}.png"
    if args.out is not None:
        _check_new_png(args.out, args.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.figure == "dose_response":
        if manifest.get("kind") != "sweep":
            raise ScenarioError(f"{folder}: dose_response needs a sweep folder")
        sweep = pd.read_csv(folder / "sweep.csv")
        keys = [k for k in sweep.columns if "." in k and not k.startswith("appraisal")]
        fig = F.dose_response_figure(sweep, keys[0], keys[1] if len(keys) > 1 else None)
    elif args.figure == "portfolio":
        if manifest.get("kind") != "portfolio":
            raise ScenarioError(f"{folder}: portfolio needs a portfolio folder (sim compare BASE A B ...)")
        fig = F.portfolio_figure(pd.read_csv(folder / "portfolio.csv"))
    else:
        if manifest.get("kind") != "comparison":
            raise ScenarioError(f"{folder}: {args.figure} needs a comparison folder")
        from .present.report import discount_settings

        discount = discount_settings(manifest)
        fig = {
            "timeseries": lambda: F.timeseries_figure(pd.read_parquet(folder / "timeseries.parquet")),
            "difference": lambda: F.difference_figure(pd.read_parquet(folder / "timeseries.parquet")),
            "decision": lambda: _decision_figure(pd.read_csv(folder / "replicates.csv")),
            "savings": lambda: F.savings_figure(pd.read_parquet(folder / "ledger.parquet")),
            "net_benefit": lambda: F.net_benefit_figure(pd.read_parquet(folder / "ledger.parquet"), discount),
            "sensitivity": lambda: F.tornado_figure(_sensitivity(folder)),
        }[args.figure]()
    print(f"-> {F.save(fig, out)}")
    return 0


def _sensitivity(folder: Path):
    """The sensitivity table of a comparison folder; a clear error when it cannot be estimated."""
    import pandas as pd

    from .present import figures as F

    rows = pd.read_csv(folder / "replicates.csv")
    table = F.sensitivity_table(rows)
    if table.empty:
        inputs = sum(1 for c in rows.columns if c.startswith("parameter:") and rows[c].nunique() > 1)
        raise ScenarioError(f"{folder}: --figure sensitivity needs more replicates ({len(rows)}) than uncertain inputs ({inputs}) + 2: "
                            "rerun the comparison with more --reps")
    return table


def _decision_figure(rows):
    from .appraisal.decision import acceptability, value_of_information
    from .present import figures as F

    return F.decision_figure(acceptability(rows), value_of_information(rows))


def _check_new_png(path: Path, force: bool) -> None:
    """``sim plot --out``: a new file, or with ``--force`` an existing PNG image (what plot writes), nothing else."""
    if path.is_dir():
        raise ScenarioError(f"--out {path}: is a folder; give a file name ending .png")
    if path.suffix.lower() != ".png":
        raise ScenarioError(f"--out {path}: give a file name ending .png")
    if path.exists():
        if not force:
            raise ScenarioError(f"--out {path}: already exists; choose another name, or add --force to overwrite it")
        if not is_png(path):
            raise ScenarioError(f"--out {path}: --force overwrites only a PNG image, and this file is not one; nothing was changed")
    check_path(path, folder=False)  # the folder it goes in can be written


def cmd_calibrate(args) -> int:
    import pandas as pd

    from .fitting.calibration import (
        calibrate,
        free_parameters_to_fit,
        validate,
        write_fitted,
    )

    load_scenario(args.scenario, args.set)  # fail early on a bad scenario or --set
    free_parameters_to_fit(args.stage, args.only)  # and on a bad --only
    if args.set and args.method == "history-matching":
        raise ScenarioError("--set: not with --method history-matching (sim ensemble --set runs a history match with overrides)")
    stage = args.stage
    long_runs = f" ({args.long_reps or args.reps} of the 40-year runs)" if stage != "short" else ""
    if args.method == "least-squares":
        print(f"stage {stage}: fitting with {args.reps} replicates per evaluation{long_runs}, at most {args.maxfev} evaluations")
    if args.method == "history-matching":
        from .fitting.history_matching import history_match

        if stage != "joint" or args.only:
            raise ScenarioError("--method history-matching: fits every free parameter at once (no --stage or --only)")
        fit = history_match(args.scenario, args.waves, args.points, args.reps, args.long_reps or args.reps, args.seed, args.workers)
        if fit["waves"][-1]["not_ruled_out"] > 0:
            print("what is left (5-50-95% of the parameter sets not ruled out; 'of range' near 100% = not identified by the targets):")
        else:
            print("no parameter set meets every target; the 1,000 least implausible sets (5-50-95%):")
        for _, r in fit["ranges"].iterrows():
            print(f"  {r['parameter']:45s} [{r['lower']:g}, {r['upper']:g}]  {r['p05']:.3g} - {r['p50']:.3g} - {r['p95']:.3g}"
                  f"  ({100 * r['share_of_range']:.0f}% of range)")
    else:
        fit = calibrate(args.scenario, stage, args.reps, args.seed, args.maxfev, args.workers, long_reps=args.long_reps, only=args.only,
                        overrides=tuple(args.set))
    write_fitted([fit], pd.DataFrame(columns=["target"]))  # the values first, so the check below runs with them
    # the achieved metrics are measured out of sample: on other seeds than the fit's
    write_fitted([], validate(args.scenario, max(args.reps, 8), args.seed + 1000, args.workers, args.set))  # (the fit is on record)
    print(f"stage {stage}: loss {fit['loss']:.3f} after {fit['evaluations']} evaluations, {fit['seconds']:.0f} s -> calibration/fitted.toml")
    return 0


def cmd_ensemble(args) -> int:
    import pandas as pd

    from .fitting import ensemble as E
    from .fitting.calibration import load_free_parameters
    from .state.ensemble import BASELINE_ENSEMBLE, VALUE, ensemble_path

    params = load_scenario(args.scenario, ["run.calibration=point", *args.set])  # fail early on a bad scenario or --set
    target = ensemble_path(params.run.ensemble)
    if args.recheck is not None and not args.show:
        E.recheck_ensemble(args.scenario, args.recheck, args.members, args.check_reps, args.check_long_reps, args.workers,
                           E.RECHECK_STORE / Path(args.scenario).stem, target, seed=args.seed, overrides=args.set,
                           scheduler=args.scheduler, max_steps=args.max_steps or E.MAX_STEPS)
    elif not args.show:
        E.run(args.scenario, args.waves, args.points, args.reps, args.long_reps, args.seed, args.members, args.check_reps,
              args.check_long_reps, args.workers, overrides=args.set, out=target, scheduler=args.scheduler,
              max_steps=args.max_steps or E.MAX_STEPS)
    if not target.exists():
        raise ScenarioError(f"{target}: not found; run sim ensemble without --show to make it")
    try:
        frame = pd.read_parquet(target)
        made_by = frame["made_by"].iloc[0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise ScenarioError(f"{target}: cannot be read as an ensemble ({type(exc).__name__}: {exc}); "
                            "run sim ensemble without --show to make it again") from None
    print(f"{len(frame)} members ({target}): {made_by}")
    print("each calibrated parameter across the members (5-50-95%; 'of range' near 100% = the targets do not identify it):")
    for _, r in E.ensemble_ranges(frame).iterrows():
        flag = f"  at its {r['at_bound']} bound" if r["at_bound"] else ""
        print(f"  {r['parameter']:45s} [{r['lower']:g}, {r['upper']:g}]  {r['p05']:.3g} - {r['p50']:.3g} - {r['p95']:.3g}"
              f"  ({100 * r['share_of_range']:.0f}% of range){flag}")
    print("each target across the members (5-50-95% of the members' check-run means):")
    for _, r in E.ensemble_targets(frame).iterrows():
        gap = "  known gap: not selected on" if r["known_gap"] else ""
        print(f"  {r['target']:42s} band [{r['lower']:.3g}, {r['upper']:.3g}]  {r['p05']:.3g} - {r['p50']:.3g} - {r['p95']:.3g}{gap}")
    corr = E.ensemble_correlations(frame)
    pairs = [(corr.iloc[i, j], corr.index[i], corr.columns[j]) for i in range(len(corr)) for j in range(i + 1, len(corr))]
    strong = sorted((p for p in pairs if abs(p[0]) >= 0.3), key=lambda p: -abs(p[0]))
    print("pairs the targets tie together (Spearman |rho| >= 0.3):" + ("" if strong else " none"))
    for rho, a, b in strong:
        print(f"  {rho:+.2f}  {a} ~ {b}")
    if args.write_point:
        if params.run.ensemble != BASELINE_ENSEMBLE:  # (calibration/fitted.toml is the baseline's point fit)
            raise ScenarioError(f"--write-point: {target} is not the baseline's ensemble ({BASELINE_ENSEMBLE}); "
                                "calibration/fitted.toml holds the baseline's point fit only")
        missing = [k for k in load_free_parameters() if VALUE + k not in frame]
        if missing:
            raise ScenarioError(f"{target}: has no values of {', '.join(missing)} (calibration/free_parameters.toml); "
                                "rerun sim ensemble before --write-point")
        member = E.write_point(frame)
        print(f"member {member} (least loss on its check runs) -> calibration/fitted.toml")
    return 0


def cmd_validate(args) -> int:
    import json

    import pandas as pd

    from . import metrics
    from .fitting.calibration import CALIBRATION_DIR, STEADY_Z, steadiness_summary, validate_all, write_fitted
    from .present.figures import calibration_figure, save, steadiness_figure
    from .runs.output import write_validation

    if args.record and (args.set or args.ensemble or Path(args.scenario).resolve() != (CALIBRATION_DIR.parent / "scenarios" / "baseline.toml").resolve()):
        raise ScenarioError("--record: the record describes the baseline as fitted; drop --set, --ensemble and --scenario")
    overrides = [*args.set, *(["run.calibration=ensemble"] if args.ensemble else [])]
    params = load_scenario(args.scenario, overrides)
    if args.ensemble and params.ensemble is None:
        raise ScenarioError(f"--ensemble: {args.scenario} takes none of its values from calibration/fitted.toml; nothing to draw")
    with claimed(args.out, force=args.force):
        table, steady = validate_all(args.scenario, args.reps, args.seed, args.workers, overrides)
        if args.ensemble:  # the ensemble's interval: how far the members' own check runs spread each target
            from .fitting.ensemble import ensemble_targets

            across = ensemble_targets(pd.read_parquet(params.ensemble.path)).set_index("target")
            table = table.assign(members_p05=table["target"].map(across["p05"]), members_p95=table["target"].map(across["p95"]))
        if args.record:
            write_fitted([], table)
        write_validation(args.out, params, args.seed, table, lambda path: save(calibration_figure(table), path), force=args.force,
                         steady=steady, draw_steady=lambda path: save(steadiness_figure(steady), path))
    summary = steadiness_summary(steady)
    if args.json:
        def records(df):  # NaN (no value) as null: JSON has no NaN
            return df.astype(object).where(df.notna(), None).to_dict(orient="records")

        print(json.dumps({"targets": records(table), "steadiness": records(summary)}, indent=2, default=float, allow_nan=False))
    else:
        if args.ensemble:
            print(f"each replicate with the calibrated values of a member of the ensemble ({len(params.ensemble)} members) its seed draws; "
                  "members 5-95%: how far each fitted target spreads over the members' own check runs:")
        for _, r in table.iterrows():
            mark = "pass" if r["pass"] else "FAIL"
            print(f"  {mark}  {r['target']:<42} target {r['value']:.3f} [{r['lower']:.3f}, {r['upper']:.3f}]   "
                  f"simulated {r['simulated']:.3f} (90%: {r['sim_p05']:.3f} to {r['sim_p95']:.3f}, {r['replicates']} replicates)"
                  + (f"; members 5-95%: {r['members_p05']:.3f} to {r['members_p95']:.3f}"
                     if args.ensemble and pd.notna(r["members_p05"]) else ""))
        print("Steadiness (each series relative to its start: the replicates' mean path over their mean start; steady: every year's mean within its "
              f"tolerance (or outside it by less than {STEADY_Z:g} Monte Carlo standard errors) of no change per head "
              "of the people it is counted among (the long runs' adult series per adult at the first year's ages), "
              "the population of its projected growth; and the custody, licence and probation stocks' RMS yearly "
              "deviation at most stock_rms_limit; calibration/steadiness.toml):")
        for _, r in summary.iterrows():
            per_head = (f"; per head of the {metrics.PER_HEAD[r['series']]}, furthest {r['worst_per_head']:.2f} (year "
                        f"{int(r['worst_per_head_year']) + 1})" if pd.notna(r.get("worst_per_head")) else "")
            print(f"  {'steady' if r['steady'] else 'DRIFTS'}  {r['run']:<5} {r['series']:<26} furthest in year {r['worst_year'] + 1} of {r['years']}: "
                  f"{r['worst_value']:.2f} x the start{' ' + r['worst_judged'] if r['worst_judged'] != 'level' else ''}, "
                  f"expected {r['worst_expected']:.2f} +-{r['tolerance']:.0%}{per_head}; "
                  f"RMS yearly deviation {r['rms']:.3f}" + (f" ({r['why']})" if r["why"] else ""))
        print(f"-> {args.out}/calibration.png, validation.csv, steadiness.png, steadiness.csv")
    return 0 if table.loc[table["weight"] > 0, "pass"].all() else 1


def cmd_batch(args, params, seed: int, out: Path, expected_replicate_seconds: float) -> int:
    from .runs.batch import replicate_seeds, run_batch

    t0 = time.perf_counter()
    result = run_batch(params, args.reps, seed, workers=args.workers, scheduler=args.scheduler, out=out, resume=args.resume,
                       **({"precision": args.precision} if args.precision else {}), allow_failures=True, stall_timeout=args.stall_timeout,
                       expected_replicate_seconds=expected_replicate_seconds, force=args.force)
    print(f"{params.run.name}: {len(result.replicates)} of {args.reps} replicates of {params.months} months, root seed {seed}, "
          f"{time.perf_counter() - t0:.1f} s -> {out}/")
    if len(result.summary):
        s = result.summary.set_index("metric")
        shown = ["offences_per_year", "convictions_per_year", "proven_reoffending_rate_prison", "proven_reoffending_rate_probation",
                 "custody_end", "probation_end"]
        print(s.loc[[m for m in shown if m in s.index], ["mean", "mcse", "p05", "p95"]].to_string(float_format=lambda v: f"{v:,.3f}"))
    if result.failed:
        all_seeds = replicate_seeds(seed, args.reps)
        same = " ".join([f"--set {s}" for s in args.set] + ([f"--years {args.years}"] if args.years is not None else []))
        for k, err in sorted(result.failed.items()):
            print(f"sim: replicate {k} (seed {all_seeds[k]}) failed: {err}; rerun it alone with: "
                  f"sim run {args.scenario} --seed {all_seeds[k]}{' ' + same if same else ''}", file=sys.stderr)
        return 1
    return 0


def _human_summary(params, seed, s: dict, out: Path, elapsed: float) -> str:
    def pct(key):
        v = s.get(key)
        return "n/a (run too short)" if v is None else f"{100 * v:.1f}%"

    lines = [
        f"{params.run.name}: {params.months} months, seed {seed}, {elapsed:.1f} s -> {out}/",
        f"  offences a year            {s['offences_per_year']:>10,.0f}   (of which proven {s['offences_proven_per_year']:,.0f})",
        f"  convictions a year         {s['convictions_per_year']:>10,.0f}   first-time entrants {s['first_time_entrants_per_year']:,.0f}",
        f"  custody  start -> end      {s['custody_start']:>10,.0f} -> {s['custody_end']:,.0f}",
        f"  licence  start -> end      {s['licence_start']:>10,.0f} -> {s['licence_end']:,.0f}",
        f"  probation start -> end     {s['probation_start']:>10,.0f} -> {s['probation_end']:,.0f}",
        f"  one-year proven reoffending, mean of annual cohorts: prison {pct('proven_reoffending_rate_prison')}, probation {pct('proven_reoffending_rate_probation')}",
        f"    first year's cohorts: prison {pct('proven_reoffending_rate_prison_first_year')}, probation {pct('proven_reoffending_rate_probation_first_year')}",
        f"  share of offences by people under supervision {pct('share_offences_by_supervised')}, already in the CJS {pct('share_offences_by_offenders_in_cjs')}, with any previous conviction {pct('share_offences_by_previously_convicted')}",
    ]
    return "\n".join(lines)


def cmd_report(args) -> int:
    from .present.report import report

    print(f"-> {report(args.folder)}")
    return 0


def cmd_bench(args) -> int:
    from .bench import main as bench_main
    from .bench import main_against

    if args.by_process:
        if args.update_readme or args.against is not None:
            print("sim: error: --by-process is a table of its own: not with --update-readme or --against", file=sys.stderr)
            return 2
        from .bench import main_by_process

        return main_by_process(args.scenario, quick=args.quick)
    if args.against is not None:
        if args.update_readme:
            print("sim: error: --against with --update-readme: a comparison is not the Speed table", file=sys.stderr)
            return 2
        return main_against(args.against, args.scenario, args.rounds)
    return bench_main(args.scenario, args.repeats, args.batch_reps, args.workers, full=args.full, quick=args.quick,
                      readme=args.readme if args.update_readme else None)


def cmd_noise(args) -> int:
    from .fitting.noise import MAX_CHILD_CV, MAX_RATE_SD, noise_by_weight

    if args.reps < 2:
        raise ScenarioError(f"--reps {args.reps}: noise needs at least 2 replicates")
    if not args.weights:
        raise ScenarioError("--weights: give at least one weight (real people per agent), e.g. --weights 40,20,10")
    load_scenario(args.scenario, args.set)  # fail early on a bad scenario or --set
    table = noise_by_weight(args.scenario, args.weights, args.reps, args.seed, args.workers, args.set)
    if args.json:
        print(table.to_json(orient="records"))
        return 0
    print(f"one replicate's noise ({args.reps} replicates a weight; criteria: yearly prison and probation rates sd <= "
          f"{100 * MAX_RATE_SD:.0f} points, children convicted a year within {100 * MAX_CHILD_CV:.0f}%)")
    print(f"  {'weight':>7} {'agents':>9} {'s/replicate':>12} {'prison sd':>10} {'probation sd':>13} {'children cv':>12}")
    for _, r in table.iterrows():
        print(f"  {r['weight']:>7g} {r['agents']:>9,} {r['seconds']:>12.2f} {100 * r['prison_rate_sd']:>9.1f}p "
              f"{100 * r['probation_rate_sd']:>12.1f}p {100 * r['children_convicted_cv']:>11.0f}%  {'meets' if r['meets'] else 'misses'}")
    return 0


def cmd_app(args) -> int:
    """Serve the app (``sim.app.pages``) with Solara, offline (``sim.app.serve``): its scripts and fonts come from the
    solara-assets package only, and neither telemetry nor a version check is sent. Checks --set and the port first."""
    import json
    import socket

    from .app.settings import Setting, scenarios

    scenarios(Setting(), args.set)  # a bad --set stops here, with one line
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a port left in TIME_WAIT is free
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise ScenarioError(f"--port {args.port}: cannot serve on {args.host}:{args.port} ({exc.strerror}); give another --port") from None
    if args.scheduler:
        check_scheduler(args.scheduler)
    env = {**os.environ, "REOFFSIM_APP_SET": json.dumps(args.set), "REOFFSIM_APP_SEED": str(args.seed),
           "REOFFSIM_APP_WORKERS": str(args.workers or ""), "REOFFSIM_APP_SCHEDULER": args.scheduler or "",
           "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False", "SOLARA_CHECK_HOOKS": "off"}
    print(f"reoffsim app at http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    command = [sys.executable, "-m", "sim.app.serve", "sim.app.pages", "--host", args.host, "--port", str(args.port),
               "--production", "--no-open", "--no-check-version", "--log-level", "warning"]
    os.execve(sys.executable, command, env)
    return 0  # not reached: the server replaces this process


COMMANDS = {
    "app": cmd_app, "run": cmd_run, "compare": cmd_compare, "sweep": cmd_sweep, "one-way": cmd_one_way, "report": cmd_report, "plot": cmd_plot,
    "calibrate": cmd_calibrate, "ensemble": cmd_ensemble, "validate": cmd_validate, "noise": cmd_noise, "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ScenarioError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BatchInterrupted as exc:  # finished replicates are kept (batches) and the message says where
        print(f"sim: {exc}", file=sys.stderr)
        return 130 if exc.signal == "SIGINT" else 143
    except BatchError as exc:  # stalled, or the workers died
        print(f"sim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sim: interrupted; nothing was written for the unfinished run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
