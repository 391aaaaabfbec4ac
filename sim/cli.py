"""Command line: ``sim run SCENARIO.toml [--seed S] [--years Y] [--out DIR] [--events] [--set key=value]``,
``sim bench``. User errors print one line and exit with code 2, before anything is written."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .scenario import ScenarioError, load_scenario

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
    run.add_argument("--out", type=Path, help="output folder (default: outputs/<scenario name>)")
    run.add_argument("--events", action="store_true", help="also write people.parquet and events.parquet (microdata)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a scenario value (repeatable)")
    bench = sub.add_parser("bench", help="time one Essex replicate and one at 10x the population")
    bench.add_argument("--scenario", default="scenarios/baseline.toml")
    bench.add_argument("--repeats", type=_nonneg_int, default=3)
    return parser


def cmd_run(args) -> int:
    from .model import ReoffendingModel
    from .output import write_run

    overrides = list(args.set)
    if args.years is not None:
        overrides.append(f"run.years={args.years}")
    params = load_scenario(args.scenario, overrides)
    seed = params.run.seed if args.seed is None else args.seed
    out = args.out or Path("outputs") / params.run.name
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out {out}: exists and is not a folder")
    t0 = time.perf_counter()
    model = ReoffendingModel(params, seed=seed, record_events=True)
    model.run()
    summary = write_run(model, out, with_events=args.events)
    elapsed = time.perf_counter() - t0
    print(_human_summary(params, seed, summary, out, elapsed))
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
        f"  one-year proven reoffending: prison {pct('proven_reoffending_rate_prison')}, probation {pct('proven_reoffending_rate_probation')}",
        f"  share of offences by people under supervision {pct('share_offences_by_supervised')}, with a previous conviction {pct('share_offences_by_previously_convicted')}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "bench":
            from .bench import main as bench_main

            return bench_main(args.scenario, args.repeats)
    except ScenarioError as exc:
        print(f"sim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sim: interrupted; nothing was written for the unfinished run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
