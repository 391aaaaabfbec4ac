"""Figures, one function each, shared by the report (sim/present/report.py) and researchers (`sim plot`).

Matplotlib, colour-blind-safe (Okabe-Ito palette), units on the axes, readable at report size. Each function
takes tidy tables (as written in the output folders) and returns a Figure; ``save`` writes a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..runs.outdir import is_png  # noqa: E402
from ..state.scenario import ScenarioError  # noqa: E402

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999"}
SCENARIO_COLOURS = {"baseline": OKABE_ITO["grey"], "intervention": OKABE_ITO["blue"]}
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
                     "figure.dpi": 110, "savefig.bbox": "tight"})


def save(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path``, atomically (a temporary name, then a rename). An existing file there is
    replaced only if it is a PNG image (a figure of ours), never another kind of file."""
    path = Path(path)
    if path.exists() and not is_png(path):
        plt.close(fig)
        raise ScenarioError(f"{path}: exists and is not a PNG image; not overwriting it (move it away first)")
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        fig.savefig(tmp, dpi=130, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def calibration_figure(table: pd.DataFrame):
    """One row per target: its accepted band (green) and value (line), and the simulated mean with its 90%
    Monte Carlo interval (blue if inside the band, vermillion if not). Each row has its own scale."""
    n = len(table)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 0.75 * n + 0.8), squeeze=False)
    for ax, (_, r) in zip(axes[:, 0], table.iterrows()):
        lo = min(r["lower"], r["sim_p05"] if r["sim_p05"] == r["sim_p05"] else r["lower"])
        hi = max(r["upper"], r["sim_p95"] if r["sim_p95"] == r["sim_p95"] else r["upper"])
        pad = 0.25 * (hi - lo) + 1e-9
        ax.axvspan(r["lower"], r["upper"], color=OKABE_ITO["green"], alpha=0.25, lw=0)
        ax.axvline(r["value"], color=OKABE_ITO["green"], lw=2)
        colour = OKABE_ITO["blue"] if r["pass"] else OKABE_ITO["vermillion"]
        if r["simulated"] == r["simulated"]:
            ax.errorbar(r["simulated"], 0, xerr=[[r["simulated"] - r["sim_p05"]], [r["sim_p95"] - r["simulated"]]], fmt="o", color=colour, capsize=3)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks([])
        ax.set_ylabel(r["target"].replace("_", " "), rotation=0, ha="right", va="center", fontsize=9)
        ax.spines["left"].set_visible(False)
    axes[0, 0].set_title("Calibration: simulated (mean, 90% Monte Carlo interval) vs published target (band)")
    fig.tight_layout()
    return fig


def _band(ax, df: pd.DataFrame, column: str, scenario: str, label: str, smooth: int = 1):
    """Mean over replicates with the 5-95% band, by month."""
    d = df[df["scenario"] == scenario].pivot_table(index="month", columns="replicate", values=column)
    if smooth > 1:
        d = d.rolling(smooth, min_periods=1).mean()
    years = d.index.to_numpy() / 12.0
    colour = SCENARIO_COLOURS.get(scenario, OKABE_ITO["orange"])
    ax.fill_between(years, d.quantile(0.05, axis=1), d.quantile(0.95, axis=1), color=colour, alpha=0.25, lw=0)
    ax.plot(years, d.mean(axis=1), color=colour, lw=1.6, label=label)


TIMESERIES_PANELS = (
    ("offences", "offences a month", 3),
    ("custody", "people in custody", 1),
    ("probation", "people on orders", 1),
    ("first_time_entrants", "first-time entrants a month", 3),
    ("children_convicted", "children convicted a month", 3),
    ("iv_active_families", "families in the intervention", 1),
)


def timeseries_figure(series: pd.DataFrame):
    """Baseline vs intervention, mean over replicates with 5-95% bands (flows as 3-month rolling means)."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.8), sharex=True)
    for ax, (column, label, smooth) in zip(axes.flat, TIMESERIES_PANELS):
        for scenario in ("baseline", "intervention"):
            _band(ax, series, column, scenario, scenario, smooth)
        ax.set_title(label)
        ax.set_ylim(bottom=0)
    for ax in axes[1]:
        ax.set_xlabel("years from the start")
    axes[0, 0].legend(frameon=False)
    fig.suptitle("Monthly series (Essex, real people): mean and 90% Monte Carlo band", y=1.0)
    fig.tight_layout()
    return fig


DIFFERENCE_PANELS = (
    ("offences", "offences a year", True),
    ("convictions", "convictions a year", True),
    ("custody", "people in custody", False),
    ("children_convicted", "children convicted a year", True),
)


def difference_figure(series: pd.DataFrame):
    """What the intervention changes: intervention minus baseline, replicate by replicate (the same people on the
    same random numbers), mean and 90% band over replicates; flows as yearly totals (rolling 12 months)."""
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2), sharex=True)
    for ax, (column, label, flow) in zip(axes, DIFFERENCE_PANELS):
        arms = {arm: series[series["scenario"] == arm].pivot_table(index="month", columns="replicate", values=column)
                for arm in ("baseline", "intervention")}
        d = arms["intervention"] - arms["baseline"]
        if flow:
            d = d.rolling(12, min_periods=12).sum()
        years = d.index.to_numpy() / 12.0
        ax.fill_between(years, d.quantile(0.05, axis=1), d.quantile(0.95, axis=1), color=OKABE_ITO["blue"], alpha=0.25, lw=0)
        ax.plot(years, d.mean(axis=1), color=OKABE_ITO["blue"], lw=1.6)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"change in {label}")
        ax.set_xlabel("years from the start")
    fig.suptitle("Intervention minus baseline: mean and 90% band over paired replicates (below zero: fewer)", y=1.02)
    fig.tight_layout()
    return fig


STEADY_LABELS = {"children_convicted": "children convicted a year", "child_first_time_entrants": "youth first-time entrants a year",
                 "adult_convictions": "adult convictions a year", "custody": "adults in custody", "licence": "adults on licence",
                 "probation": "adults on orders", "population": "population", "children": "children (under 18)",
                 "adults": "adults (18 and over)"}
RUN_COLOURS = {"short": OKABE_ITO["blue"], "long": OKABE_ITO["orange"], "baseline": OKABE_ITO["grey"]}


def steadiness_figure(table: pd.DataFrame):
    """Each steady series relative to its start, year by year (``sim.fitting.calibration.steadiness``): the
    replicates' mean path over their mean start and the 5-95% range of single replicates, per run length, against the expected path and its tolerance;
    dashed, the mean per head of the children or adults (``metrics.PER_HEAD``); dotted, a long run's adult series per
    adult at the first year's ages (``per_head_at_start_ages``)."""
    present = set(table["series"])
    series = [name for name in STEADY_LABELS if name in present] + sorted(present - set(STEADY_LABELS))
    cols = 4
    rows = max(1, -(-len(series) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.9 * rows), squeeze=False)
    aged_legend = None  # the first panel with a series at the start's ages, which gets a legend of its own
    for ax, name in zip(axes.flat, series):
        path = table[table["series"] == name].drop_duplicates("year").sort_values("year")
        year = path["year"] + 1  # the first year is year 1, as in the words beside the figure
        ax.fill_between(year, path["expected"] * (1 - path["tolerance"]), path["expected"] * (1 + path["tolerance"]),
                        color=OKABE_ITO["green"], alpha=0.18, lw=0)
        ax.plot(year, path["expected"], color=OKABE_ITO["green"], lw=1)
        for run, g in table[table["series"] == name].groupby("run", sort=False):
            colour = RUN_COLOURS.get(run, OKABE_ITO["grey"])
            label = {"short": "10-year runs", "long": "long runs", "baseline": "baseline arm"}.get(run, run)
            ax.fill_between(g["year"] + 1, g["p05"], g["p95"], color=colour, alpha=0.2, lw=0)
            ax.plot(g["year"] + 1, g["mean"], color=colour, lw=1.6, label=f"{label} ({int(g['replicates'].max())})")
            if "per_head" in g and g["per_head"].notna().any():
                ax.plot(g["year"] + 1, g["per_head"], color=colour, lw=1.0, ls="--", label=f"{label}, per head")
            if "per_head_at_start_ages" in g and g["per_head_at_start_ages"].notna().any():
                ax.plot(g["year"] + 1, g["per_head_at_start_ages"], color=colour, lw=1.4, ls=":",
                        label=f"{label}, per adult at the first year's ages")
                aged_legend = aged_legend or ax
        ax.set_title(STEADY_LABELS.get(name, name))
        ax.set_xlabel("year of the run")
    for ax in axes.flat[len(series):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("relative to the start")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if aged_legend is not None:  # (the first panel, of children, has no reading at the start's ages: its line shown there)
        line = next(l for l in aged_legend.get_lines() if l.get_linestyle() == ":")
        handles, labels = handles + [line], labels + [line.get_label()]
    spare = axes.flat[len(series)] if len(series) < axes.size else None  # an empty panel holds the legend, if there is one
    (spare or axes.flat[0]).legend(handles, labels, frameon=False, fontsize=9 if spare else 8, loc="center" if spare else "best")
    fig.suptitle("Is the baseline steady? Relative to the start: replicates' mean path over their mean start (line), 5-95% of single replicates (band),\n"
                 "per head of the children or adults (dashed), long runs' adult series per adult at the first year's ages (dotted);\n"
                 "green: the expected path (no change; the population as projected) and its tolerance, judged per head (the long "
                 "runs' adult series at the first year's ages)", y=1.04)
    fig.tight_layout()
    return fig


AGENCY_COLOURS = {"police": OKABE_ITO["blue"], "courts": OKABE_ITO["sky"], "prisons": OKABE_ITO["black"],
                  "probation": OKABE_ITO["grey"], "youth_justice": "#882255", "local_authority": OKABE_ITO["green"],
                  "nhs": OKABE_ITO["purple"], "dwp": OKABE_ITO["yellow"], "wider_economy": "#44AA99",
                  "victims_and_society": OKABE_ITO["orange"]}
KIND_COLOURS = {"fiscal_cashable": OKABE_ITO["blue"], "fiscal_non_cashable": OKABE_ITO["sky"],
                "economic": OKABE_ITO["orange"], "social": OKABE_ITO["vermillion"]}


def yearly_savings(ledger: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean over replicates of yearly savings (baseline minus intervention, base-year prices, undiscounted),
    by ``agency`` or ``kind``, leaving out the intervention's own cost."""
    led = ledger[ledger["agency"] != "intervention"].assign(year=lambda d: d["month"] // 12 + 1)
    sums = led.groupby(["scenario", "replicate", "year", by])["cost_gbp"].sum().unstack("scenario", fill_value=0.0)
    saving = (sums["baseline"] - sums["intervention"]).groupby(["year", by]).mean().unstack(by, fill_value=0.0)
    return saving


def savings_figure(ledger: pd.DataFrame):
    """Who saves what, each year: savings by agency and by kind (GBP million, base-year prices, undiscounted)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, by, colours, title in ((axes[0], "agency", AGENCY_COLOURS, "by agency"), (axes[1], "kind", KIND_COLOURS, "by kind")):
        s = yearly_savings(ledger, by) / 1e6
        missing = set(s.columns) - set(colours)
        assert not missing, f"no colour for {missing}"  # every saving must be drawn
        pos_bottom = np.zeros(len(s))
        neg_bottom = np.zeros(len(s))
        for col in [c for c in colours if c in s.columns]:
            v = s[col].to_numpy()
            bottom = np.where(v >= 0, pos_bottom, neg_bottom)
            ax.bar(s.index, v, bottom=bottom, color=colours[col], label=col.replace("_", " "), width=0.8)
            pos_bottom += np.where(v >= 0, v, 0)
            neg_bottom += np.where(v < 0, v, 0)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xlabel("appraisal year")
        ax.set_title(f"Savings {title}")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    axes[0].set_ylabel("GBP million a year (base-year prices)")
    fig.tight_layout()
    return fig


def net_benefit_figure(ledger: pd.DataFrame, costs):
    """Cumulative discounted net benefit over the appraisal, with its 90% band and the year the mean curve
    crosses zero (``costs``: the [costs] section or a constant discount rate)."""
    from ..appraisal.compare import cumulative_net_benefit

    c = cumulative_net_benefit(ledger, costs)[["net", "net_fiscal"]] / 1e6
    rate = costs if isinstance(costs, (int, float)) else costs.discount_rate
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for col, colour, label in (("net", OKABE_ITO["blue"], "all benefits but transfers (fiscal, economic, social)"),
                               ("net_fiscal", OKABE_ITO["vermillion"], "fiscal only (public purse)")):
        d = c[col].unstack("replicate")
        ax.fill_between(d.index, d.quantile(0.05, axis=1), d.quantile(0.95, axis=1), color=colour, alpha=0.2, lw=0)
        ax.plot(d.index, d.mean(axis=1), color=colour, lw=2, marker="o", ms=3, label=label)
        positive = d.mean(axis=1)[d.mean(axis=1) >= 0]
        if len(positive):
            ax.annotate(f"mean pays back in year {positive.index[0]}", (positive.index[0], positive.iloc[0]), textcoords="offset points",
                        xytext=(5, -15), color=colour, fontsize=9)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("appraisal year")
    ax.set_ylabel(f"GBP million, present value ({100 * rate:.1f}%)")
    ax.set_title("Cumulative net benefit of the intervention (mean, 90% band)")
    ax.legend(frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def dose_response_figure(sweep: pd.DataFrame, x: str, group: str | None = None, mark: float | None = None):
    """Sweeps: offences avoided and benefit-cost ratio against ``x`` (one line per ``group`` value), with 90%
    intervals; the point with the best NPV is ringed, and ``mark`` (a value of ``x``, e.g. the app's setting) drawn
    as a dotted line."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = [(None, sweep)] if group is None else list(sweep.groupby(group))
    colours = list(OKABE_ITO.values())[1:]
    best = sweep.loc[sweep["appraisal:npv"].idxmax()] if sweep["appraisal:npv"].notna().any() else None
    for (g, d), colour in zip(groups, colours):
        d = d.sort_values(x)
        xs = d[x].astype(float)
        label = None if g is None else f"{group.split('.')[-1].replace('_', ' ')} = {g}"
        avoided, lo, hi = -d["offences"], -d["offences_p95"], -d["offences_p05"]
        axes[0].errorbar(xs, avoided, yerr=[avoided - lo, hi - avoided], color=colour, marker="o", capsize=3, label=label)
        b, blo, bhi = d["appraisal:bcr"], d["appraisal:bcr_p05"], d["appraisal:bcr_p95"]
        axes[1].errorbar(xs, b, yerr=[b - blo, bhi - b], color=colour, marker="o", capsize=3, label=label)
    if best is not None:
        axes[1].plot(float(best[x]), best["appraisal:bcr"], "o", ms=14, mfc="none", mec=OKABE_ITO["black"], label="best NPV")
        axes[0].plot(float(best[x]), -best["offences"], "o", ms=14, mfc="none", mec=OKABE_ITO["black"])
    axes[1].axhline(1, color="black", lw=0.8, ls="--")
    if mark is not None:
        for ax in axes:
            ax.axvline(mark, color=OKABE_ITO["vermillion"], lw=1.2, ls=":", label="your setting")
    xlabel = x.split(".")[-1].replace("_", " ")
    axes[0].set(xlabel=xlabel, ylabel="offences avoided over the run", title="Crime avoided")
    axes[1].set(xlabel=xlabel, ylabel="benefit-cost ratio", title="Benefit-cost ratio (1 = break-even)")
    axes[1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def sensitivity_table(replicates: pd.DataFrame, outcomes: tuple[str, ...] = ("appraisal:npv", "appraisal:offences_avoided")) -> pd.DataFrame:
    """Global sensitivity from the Monte Carlo draws: standardised rank regression coefficients of each outcome
    on every uncertain input (``parameter:*`` columns), with the share of rank variance they explain (R^2)."""
    inputs = [c for c in replicates.columns if c.startswith("parameter:") and replicates[c].nunique() > 1]
    rows = []
    if not inputs or len(replicates) <= len(inputs) + 2:
        return pd.DataFrame(columns=["input", "outcome", "srrc", "r2"])
    X = replicates[inputs].rank().to_numpy(float)
    X = (X - X.mean(0)) / X.std(0)
    for outcome in outcomes:
        y = replicates[outcome].rank().to_numpy(float)
        y = (y - y.mean()) / (y.std() or 1.0)
        coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]), y, rcond=None)
        fitted = np.column_stack([np.ones(len(y)), X]) @ coef
        r2 = 1 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        rows += [{"input": i.removeprefix("parameter:"), "outcome": outcome, "srrc": c, "r2": r2} for i, c in zip(inputs, coef[1:])]
    return pd.DataFrame(rows)


def tornado_figure(table: pd.DataFrame):
    """What drives the answer: standardised rank regression coefficients of NPV and offences avoided on each
    uncertain input (longest bar = the assumption that matters most)."""
    outcomes = list(dict.fromkeys(table["outcome"]))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(5.5 * len(outcomes), 0.45 * table["input"].nunique() + 1.6), sharey=True, squeeze=False)
    order = table[table["outcome"] == outcomes[0]].assign(a=lambda d: d["srrc"].abs()).sort_values("a")["input"].tolist()
    for ax, outcome in zip(axes[0], outcomes):
        d = table[table["outcome"] == outcome].set_index("input").reindex(order)
        ax.barh(order, d["srrc"], color=[OKABE_ITO["blue"] if v >= 0 else OKABE_ITO["vermillion"] for v in d["srrc"]])
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("standardised rank regression coefficient")
        ax.set_title(f"{outcome.removeprefix('appraisal:').replace('_', ' ')} (R² {d['r2'].iloc[0]:.2f})")
    fig.tight_layout()
    return fig


def one_way_figure(table: pd.DataFrame, top: int = 20):
    """The one-way sensitivity analysis as a tornado: for each assumption (the ``top`` that move it most), the NPV
    with the assumption at the low end of its plausible range and at the high end, around the NPV as the scenario
    stands; zero marked, so an assumption whose bar crosses it can turn the answer."""
    t = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8.5, 0.38 * len(t) + 1.8))
    central = float(table["npv_central"].iloc[0]) / 1e6 if len(table) else 0.0
    y = np.arange(len(t))
    for end, colour, offset in (("low", OKABE_ITO["sky"], -0.2), ("high", OKABE_ITO["orange"], 0.2)):
        value = t[f"npv_{end}"].to_numpy() / 1e6  # the two ends side by side, so that neither hides the other
        ax.barh(y + offset, value - central, left=central, height=0.4, color=colour, label=f"assumption at the {end} end of its range")
    ax.axvline(central, color="black", lw=0.8)
    ax.axvline(0.0, color=OKABE_ITO["vermillion"], lw=1.0, ls="--", label="NPV zero")
    ax.set_yticks(y, [f"{r.key}  (each element, low to high)" if str(r.low).startswith("[") else f"{r.key}  ({r.low} to {r.high})"
                      for r in t.itertuples()], fontsize=8)
    ax.set_xlabel("net present value, GBP million (mean of the paired replicates)")
    ax.set_title(f"One-way sensitivity: each assumption across its plausible range (NPV as it stands {central:,.1f}m)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


#: the decomposition's channels in words, in the order the figure shows them
CHANNEL_LABELS = {"direct": "direct (offender)", "children": "children", "needs": "family's needs",
                  "supervision": "supervision (detection, recall)", "cost": "intervention cost",
                  "treatment": "NHS treatment of referrals", "interaction": "interaction",
                  "total": "total"}


def channels_figure(table: pd.DataFrame):
    """Where the benefit comes from: each channel's contribution (full intervention minus the arm with that channel
    at no effect) to offences avoided and to the NPV, mean with the 90% interval over replicates."""
    metrics = ["appraisal:offences_avoided", "appraisal:npv"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        d = table[table["metric"] == metric].set_index("channel")
        order = [c for c in CHANNEL_LABELS if c in d.index][::-1]
        d = d.reindex(order)
        scale, unit = (1e6, "£m, present value") if metric == "appraisal:npv" else (1.0, "offences")
        colour = [OKABE_ITO["grey"] if c in ("interaction", "total") else OKABE_ITO["blue"] if v >= 0 else OKABE_ITO["vermillion"]
                  for c, v in zip(order, d["mean"])]
        ax.barh([CHANNEL_LABELS[c] for c in order], d["mean"] / scale, color=colour,
                xerr=[(d["mean"] - d["p05"]).clip(lower=0) / scale, (d["p95"] - d["mean"]).clip(lower=0) / scale], capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(unit)
        ax.set_title(d["label"].iloc[0])
    fig.tight_layout()
    return fig


def decision_figure(curve: pd.DataFrame, voi: pd.DataFrame):
    """Left: the chance that benefits exceed costs against the cost of a family's place (the acceptability
    curve), the scenario's own cost marked. Right: what perfect information would be worth, by group of inputs."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1.2]})
    left.plot(curve["cost_per_family"] / 1e3, 100 * curve["chance_benefits_exceed_costs"], color=OKABE_ITO["blue"])
    own = curve["scenario_cost_per_family"].iloc[0]
    if own == own:
        left.axvline(own / 1e3, color=OKABE_ITO["grey"], ls="--", lw=1)
        left.annotate("this scenario", (own / 1e3, 95), xytext=(4, 0), textcoords="offset points", fontsize=8, color="#555")
    left.set_xlabel("cost of a family's place (£ thousand, present value)")
    left.set_ylabel("chance benefits exceed costs (%)")
    left.set_ylim(0, 100)
    d = voi.iloc[::-1]
    right.barh(d["group"], d["value_gbp"] / 1e6, color=[OKABE_ITO["grey"] if g.endswith("(EVPI)") else OKABE_ITO["orange"] for g in d["group"]])
    right.set_xlabel("value of perfect information (£m, present value)")
    fig.tight_layout()
    return fig


def npv_figure(rows: pd.DataFrame):
    """The distribution of the net present value over the replicates (GBP million), with break-even (0) and the mean."""
    npv = rows["appraisal:npv"].to_numpy(float) / 1e6
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.hist(npv, bins=max(5, min(40, len(npv) // 3)), color=OKABE_ITO["blue"], alpha=0.75)
    ax.axvline(0, color="black", lw=1, label="break-even")
    ax.axvline(npv.mean(), color=OKABE_ITO["vermillion"], lw=1.6, ls="--", label=f"mean {npv.mean():,.1f}")
    ax.set(xlabel="net present value, GBP million", ylabel="replicates",
           title=f"NPV over {len(npv)} replicates: {100 * (npv > 0).mean():.0f}% above zero")
    ax.legend(frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def portfolio_figure(table: pd.DataFrame):
    """A portfolio by arm: offences avoided and the NPV of each programme alone, their combination, the sum of the
    programmes and the interaction (combination minus that sum), mean with the 90% interval over replicates."""
    colours = {"programme": OKABE_ITO["blue"], "combination": OKABE_ITO["green"], "sum": OKABE_ITO["grey"], "interaction": OKABE_ITO["orange"]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.9 + 0.45 * table["arm"].nunique()), squeeze=False)
    for ax, metric in zip(axes[0], ["appraisal:offences_avoided", "appraisal:npv"]):
        d = table[table["metric"] == metric].iloc[::-1]
        scale, unit = (1e6, "£m, present value") if metric == "appraisal:npv" else (1.0, "offences")
        ax.barh(d["arm"], d["mean"] / scale, color=[colours[k] for k in d["kind"]],
                xerr=[(d["mean"] - d["p05"]).clip(lower=0) / scale, (d["p95"] - d["mean"]).clip(lower=0) / scale], capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(unit)
        ax.set_title(d["label"].iloc[0])
    axes[0][1].set_yticklabels([])
    fig.tight_layout()
    return fig
