"""What the app shows for a setting: the comparison so far, its headline in words, and the files to download.

An ``Answer`` is built from the paired replicates finished so far (``sim.runs.paired.pair``), so it grows while a Run
goes on; its tables are exactly those ``sim compare`` writes, so the downloads are the CLI's own folder and report.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ..appraisal.compare import summary_table
from ..appraisal.decision import priors_from_manifest
from ..present.report import decision_words, money, num, report, verdict_word
from ..runs.output import write_comparison
from ..runs.paired import stack
from ..state.params import Params
from .settings import FUNDED_YEARS, STANCES, Setting

#: the dose-response sweep shipped with the app (see sim/app/README.md for how it was made)
DOSE_RESPONSE = Path(__file__).resolve().parent / "dose_response.csv"
DOSE_X, DOSE_GROUP = "intervention.intensity_hours_per_month", "intervention.capacity_families_per_year"


@dataclass(frozen=True, eq=False)
class Answer:
    """A comparison of ``base`` and ``iv`` for ``setting`` from the replicates finished so far (``reps`` asked)."""

    setting: Setting
    base: Params
    iv: Params
    root_seed: int
    reps: int
    rows: pd.DataFrame
    series: pd.DataFrame
    ledger: pd.DataFrame

    @classmethod
    def from_pairs(cls, setting: Setting, base: Params, iv: Params, root_seed: int, pairs: dict[int, tuple]) -> "Answer":
        rows, series, ledger = stack([pairs[k] for k in sorted(pairs)])
        return cls(setting, base, iv, root_seed, setting.reps, rows, series, ledger)

    @property
    def done(self) -> int:
        return len(self.rows)

    @property
    def complete(self) -> bool:
        return self.done >= self.reps

    @property
    def key(self) -> tuple:
        """What the answer is made of (the setting, the replicates in it), for caches: equal keys, equal answers."""
        return (self.setting, self.root_seed, tuple(self.rows["replicate"]))

    def table(self) -> pd.DataFrame:
        return summary_table(self.rows)


#: below this many replicates the verdict is marked indicative (a share of a few replicates moves by large steps)
INDICATIVE_BELOW = 20


def verdict(answer: Answer) -> str:
    """The answer to "is it worth it?" in a few words, from the share of replicates with a positive NPV (the
    report's thresholds)."""
    chance = float((answer.rows["appraisal:npv"] > 0).mean())
    word = {"likely": "Likely worth it", "unlikely": "Unlikely to be worth it", "uncertain": "Uncertain whether it is worth it"}[verdict_word(chance)]
    caveat = f" (indicative: fewer than {INDICATIVE_BELOW})" if answer.done < INDICATIVE_BELOW else ""
    return f"{word}: benefits exceed costs in {100 * chance:.0f}% of {answer.done} replicates{caveat}"


def headline(answer: Answer) -> list[str]:
    """The headline's sentences: what the setting buys, at what cost, and the decision words of the report."""
    t = answer.table().set_index("metric")

    def d(metric, col="difference"):
        return float(t.loc[metric, col]) if metric in t.index else float("nan")

    years = answer.iv.run.years
    avoided, lo, hi = -d("offences"), -d("offences", "difference_p95"), -d("offences", "difference_p05")
    share = avoided / d("offences", "baseline") if d("offences", "baseline") else float("nan")
    what = answer.setting.describe()
    change = f"avoids about {num(avoided)} offences" if avoided >= 0 else f"adds about {num(-avoided)} offences"
    words = [f"{what[:1].upper()}{what[1:]}: it costs {money(d('appraisal:intervention_cost'))} over {years:g} years (present value) "
             f"and {change} (90%: {num(lo)} to {num(hi)} avoided), {100 * abs(share):.2g}% of all offences; it returns "
             f"{num(d('appraisal:bcr'), 2)} per pound spent (90%: {num(d('appraisal:bcr', 'difference_p05'), 2)} to "
             f"{num(d('appraisal:bcr', 'difference_p95'), 2)}), a net present value of {money(d('appraisal:npv'))} (90%: "
             f"{money(d('appraisal:npv', 'difference_p05'))} to {money(d('appraisal:npv', 'difference_p95'))})."]
    if answer.setting.has_offender_family:
        per_year = answer.rows["intervention:iv_families_started"].mean() / min(years, FUNDED_YEARS)  # referral years
        words.append(f"About {per_year:,.0f} families start a year, {100 * per_year / answer.setting.families_per_year:.0f}% of the places "
                     "(the rest are places no referred family took up in time).")
    if answer.setting.has_hub:
        words.append(f"Domestic-abuse incidents change by {num(d('da_incidents'))} (90%: {num(d('da_incidents', 'difference_p05'))} to "
                     f"{num(d('da_incidents', 'difference_p95'))}).")
    prior = f"the {STANCES[answer.setting.stance].split(':')[0].lower()} prior"
    # [0] is the verdict, shown above; the Sobol index (a few seconds of bootstrap) once every replicate is in
    words += decision_words(answer.rows, priors_from_manifest(answer.iv.to_dict()), prior, sobol=answer.complete)[1:]
    if not answer.complete:
        words.append(f"Provisional: {answer.done} of {answer.reps} replicates.")
    return words


def write_folder(answer: Answer, folder: Path) -> Path:
    """The comparison folder ``sim compare`` would write for this answer (``folder`` must not exist), with its
    report.html; returns the report's path."""
    write_comparison(folder, answer.base, answer.iv, answer.root_seed, answer.rows, answer.table(), answer.series, answer.ledger)
    return report(folder)


_made: OrderedDict[tuple, tuple[bytes, bytes]] = OrderedDict()  # the last few answers' downloads, by Answer.key


def downloads(answer: Answer) -> tuple[bytes, bytes]:
    """(report.html, a zip of the comparison folder) for ``answer``, made once (``_make_downloads``)."""
    if answer.key not in _made:
        _made[answer.key] = _make_downloads(answer)
        while len(_made) > 4:
            _made.popitem(last=False)
    return _made[answer.key]


def _make_downloads(answer: Answer) -> tuple[bytes, bytes]:
    """(report.html, a zip of the whole folder: the CSVs, series, ledger, manifest, figures and report), made in a
    temporary folder of the app's own and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="reoffsim-app-") as tmp:
        folder = Path(tmp) / f"{answer.iv.run.name}_vs_{answer.base.run.name}"
        html = write_folder(answer, folder).read_bytes()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(folder.parent))
        return html, buffer.getvalue()


@lru_cache(maxsize=1)
def dose_response() -> pd.DataFrame | None:
    """The shipped sweep (intensity x families a year at the default eligibility and evidence-weighted priors)."""
    return pd.read_csv(DOSE_RESPONSE) if DOSE_RESPONSE.exists() else None


def dose_response_words(sweep: pd.DataFrame) -> str:
    """What the sweep shows, in a sentence: where the NPV is best and how the benefit-cost ratio ranges."""
    best = sweep.loc[sweep["appraisal:npv"].idxmax()]
    above = sweep[sweep["appraisal:bcr"] >= 1]
    return (f"The best mean NPV, {money(best['appraisal:npv'])}, is at {best[DOSE_X]:g} hours and {best[DOSE_GROUP]:,.0f} families a year; "
            f"the mean benefit-cost ratio runs from {sweep['appraisal:bcr'].min():.2f} to {sweep['appraisal:bcr'].max():.2f}"
            + (f", at or above 1 at {len(above)} of {len(sweep)} points." if len(above) else ", below 1 at every point tried."))


def dose_response_caveat(setting: Setting) -> str:
    """Where the shipped sweep's setting differs from the one on screen, in words ('' if it does not)."""
    default = Setting()
    differs = [label for label, same in (
        ("the programme", setting.programme == "offender_family"),
        ("the evidence stance", setting.stance == default.stance),
        ("the horizon", setting.horizon == default.horizon),
        ("eligibility", (setting.prison_leavers, setting.probationers, setting.dependent_children, setting.min_convictions)
         == (default.prison_leavers, default.probationers, default.dependent_children, default.min_convictions)),
        ("months of support", setting.duration_months == default.duration_months),
        ("the cost of an hour", setting.cost_per_hour is None),
    ) if not same]
    return (f"The sweep was run for the offender-and-family programme at the defaults; your setting differs in {', '.join(differs)}, "
            "so read the curve as the shape of the dose-response, not your numbers.") if differs else ""
