"""Figures, one function each, shared by the report (sim/report.py) and researchers (`sim plot`).

Matplotlib, colour-blind-safe (Okabe-Ito palette), units on the axes, readable at report size. Each function
takes tidy tables (as written in the output folders) and returns a Figure; ``save`` writes a PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999"}
SCENARIO_COLOURS = {"baseline": OKABE_ITO["grey"], "intervention": OKABE_ITO["blue"]}
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False,
                     "figure.dpi": 110, "savefig.bbox": "tight"})


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=130)
    plt.close(fig)
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
