"""The commissioner's report: every figure is produced, the HTML is self-contained, and it renders in a real
browser (headless Chromium) showing the headline numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, SMALL, chromium_or_skip
from sim import load_scenario
from sim.appraisal.compare import summary_table
from sim.runs.paired import compare
from sim.runs.output import write_comparison
from sim.present.report import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def comparison_folder(tmp_path_factory):
    """A small paired comparison (with uncertain inputs, so the sensitivity figure is drawn) and its report."""
    out = tmp_path_factory.mktemp("report") / "cmp"
    overrides = [*SMALL, "run.years=3"]
    base = load_scenario(ROOT / "scenarios" / "baseline.toml", overrides)
    iv = load_scenario(ROOT / "scenarios" / "multi_agency.toml", overrides)
    rows, series, ledger, _ = compare(base, iv, reps=20, root_seed=3, workers=1)  # more replicates than uncertain inputs
    write_comparison(out, base, iv, 3, rows, summary_table(rows), series, ledger)
    report(out)
    return out


EXPECTED_FIGURES = ("timeseries.png", "savings_by_agency_and_kind.png", "cumulative_net_benefit.png", "sensitivity.png", "calibration.png",
                    "steadiness.png", "decision.png", "difference.png")


@pytest.mark.parametrize("name", EXPECTED_FIGURES)
def test_every_figure_is_produced_and_is_a_png(comparison_folder, name):
    path = comparison_folder / "figures" / name
    assert path.exists(), f"{name} missing"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000


def test_report_is_self_contained(comparison_folder):
    page = (comparison_folder / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(EXPECTED_FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in images), "figures must be embedded, not linked"
    assert "http://" not in page and "https://" not in page  # opens offline
    for heading in ("The question", "Headline", "Is it worth it?", "Who saves what", "What drives the answer", "Calibration", "Assumptions and sources"):
        assert heading in page


def test_headline_numbers_match_the_comparison(comparison_folder):
    page = (comparison_folder / "report.html").read_text()
    table = pd.read_csv(comparison_folder / "comparison.csv").set_index("metric")
    avoided = -table.loc["offences", "difference"]
    assert f"{avoided:,.0f}" in page
    assert f"{table.loc['appraisal:bcr', 'difference']:,.2f}" in page
    assert f"{100 * table.loc['appraisal:benefits_exceed_costs', 'difference']:.0f}%" in page


def test_sweep_report_has_the_dose_response(tmp_path):
    out = tmp_path / "sweep"
    r = subprocess.run([sys.executable, "-m", "sim", "sweep", str(ROOT / "scenarios" / "multi_agency.toml"),
                        "--set", "intervention.intensity_hours_per_month=0,20", "--reps", "2", "--years", "2", "--workers", "1",
                        "--out", str(out), *[a for s in SMALL for a in ("--set", s)]],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert r.returncode == 0, r.stderr
    png = (out / "figures" / "dose_response.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 5_000
    page = (out / "report.html").read_text()
    assert "Best net present value at" in page and "data:image/png;base64," in page


def test_report_renders_in_headless_chromium(comparison_folder, tmp_path):
    browser = chromium_or_skip("report not rendered")
    url = (comparison_folder / "report.html").as_uri()
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, *profile, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    table = pd.read_csv(comparison_folder / "comparison.csv").set_index("metric")
    assert "Multi-agency offender-and-family intervention" in dom.stdout
    assert f"{-table.loc['offences', 'difference']:,.0f}" in dom.stdout  # the headline number, as the browser shows it
    assert dom.stdout.count("<img") == len(EXPECTED_FIGURES)
    shot = tmp_path / "report.png"
    r = subprocess.run([browser, *CHROMIUM_FLAGS, *profile, "--hide-scrollbars", "--window-size=1100,1800", f"--screenshot={shot}", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 20_000


@pytest.mark.parametrize("name", ["timeseries", "difference", "savings", "net_benefit", "sensitivity", "decision"])
def test_sim_plot_draws_each_comparison_figure(comparison_folder, tmp_path, name):
    from sim.cli import main

    out = tmp_path / f"{name}.png"
    assert main(["plot", str(comparison_folder), "--figure", name, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_report_tables_name_metrics_in_words(comparison_folder):
    page = (comparison_folder / "report.html").read_text()
    assert "savings_by_agency:" not in page and "appraisal:npv" not in page
    assert "savings: victims and society" in page and "one-year proven reoffending, prison cohort" in page


def test_optimism_bias_words_name_the_share_and_the_chance():
    """Two replicates worked by hand at a 40% optimism bias on gains (gross of the NHS treatment the programme causes):
    gains 1,000 (total 800 + treatment 200) and 1,000 (no treatment), costs 600 and 500: NPVs with it -200 and 100."""
    import pandas as pd

    from sim.present.report import _optimism_bias_words

    rows = pd.DataFrame({"appraisal:total_savings": [800.0, 1000.0], "appraisal:referred_treatment_cost": [200.0, 0.0],
                         "appraisal:intervention_cost": [600.0, 500.0], "appraisal:npv": [200.0, 500.0],
                         "appraisal:npv_optimism_bias": [-200.0, 100.0]})
    (words,) = _optimism_bias_words(rows)
    assert "reduced by 40% for optimism bias" in words and "in 50% of replicates" in words
    assert _optimism_bias_words(rows.assign(**{"appraisal:npv_optimism_bias": rows["appraisal:npv"]})) == []


def test_report_says_which_calibration_the_replicates_ran_with(comparison_folder):
    """The baseline draws calibration ensemble members: the report says so, with how many there were; a run at the
    point fit says that instead."""
    import json

    from sim.present.report import _calibration_words

    page = (comparison_folder / "report.html").read_text()
    ensemble = json.loads((comparison_folder / "manifest.json").read_text())["calibration_ensemble"]
    assert ensemble["members"] > 1
    assert f"one of the {ensemble['members']} members of the calibration ensemble" in page
    assert "single point fit" in _calibration_words({})
    mixed = {"calibration_ensemble": None, "parameters": {"run": {"calibration": "point"}},
             "baseline": {"parameters": {"run": {"calibration": "ensemble"}}}}
    assert "mix the intervention with the change of calibrated values" in _calibration_words(mixed)
