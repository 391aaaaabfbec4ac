"""The commissioner's app (issue 17): a setting means the scenarios the CLI would compare, the app's replicates are
``sim compare``'s, a repeated setting is answered from the cache, its downloads are the CLI's folder and report, bad
input is refused in one line, and, in a real browser (headless Chromium driven by Playwright), the page loads with
nothing from the internet, runs, and its headline changes when the intensity does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, chromium_or_skip
from sim.state.scenario import ScenarioError, changed_settings

#: a coarse, short population so that the app's runs take a fraction of a second in tests
QUICK = ["population.scale_general=300", "population.scale_cjs_families=10"]


def _setting(**changes):
    from sim.app.settings import Setting

    return replace(Setting(reps=2), **changes)


# --- settings -> scenarios -----------------------------------------------------------------------------------------
def test_offender_family_setting_changes_only_the_programme():
    from sim.app.settings import scenarios

    base, iv = scenarios(_setting(families_per_year=300, hours_per_month=35, duration_months=6, min_convictions=2,
                                  probationers=False, cost_per_hour=47), QUICK)
    assert base.intervention.coverage == 0 and base.run.name == "baseline"
    i = iv.intervention
    assert (i.capacity_families_per_year, i.intensity_hours_per_month, i.duration_months, i.min_convictions) == (300, 35, 6, 2)
    assert (i.eligible_on_release, i.eligible_on_order_start) == (True, False)
    assert i.cost_per_keyworker_hour_gbp.value == 47 and i.coverage > 0
    assert {section for section, _ in changed_settings(base, iv)} <= {"run", "intervention", "costs"}


def test_cost_per_hour_left_to_the_evidence_keeps_its_range():
    from sim.app.settings import scenarios
    from sim.state.params import Dist

    _, iv = scenarios(_setting(), QUICK)
    assert isinstance(iv.intervention.cost_per_keyworker_hour_gbp.value, Dist)


def test_hub_and_both_run_on_the_domestic_abuse_baseline():
    from sim.app.settings import scenarios
    from sim.processes.domestic_abuse import is_on

    base, hub = scenarios(_setting(programme="da_hub", hub_victims_per_year=700), QUICK)
    assert is_on(base.domestic_abuse) and base.da_hub.capacity_victims_per_year == 0
    assert hub.da_hub.capacity_victims_per_year == 700 and hub.intervention.coverage == 0
    base2, both = scenarios(_setting(programme="both", hours_per_month=30), QUICK)
    assert base2 == base
    assert both.da_hub.capacity_victims_per_year == 1000 and both.intervention.intensity_hours_per_month == 30


def test_stances_change_the_priors_only():
    from sim.app.settings import scenarios

    arms = {stance: scenarios(_setting(stance=stance), QUICK) for stance in ("sceptical", "evidence", "optimistic")}
    assert arms["sceptical"][0] == arms["evidence"][0] == arms["optimistic"][0]  # one baseline
    no_effect = {s: arms[s][1].intervention.offending_rr_at_full_dose.p_no_effect for s in arms}
    assert no_effect["sceptical"] > no_effect["evidence"] > no_effect["optimistic"]
    changed = {key for section, key in changed_settings(arms["evidence"][1], arms["sceptical"][1])}
    assert changed and changed <= {"offending_rr_at_full_dose", "child_rr_at_full_dose", "need_effect_scale",
                                   "detection_rr_at_full_dose", "recall_rr_at_full_dose", "p_engage", "effect_decay_months"}


def test_lifetime_funds_ten_years_and_follows_forty():
    from sim.app.settings import scenarios

    base, iv = scenarios(_setting(programme="both", horizon="lifetime (40 years)"), QUICK)
    assert base.run.years == iv.run.years == 40 and iv.intervention.referral_years == 10 and iv.da_hub.funded_years == 10
    with pytest.raises(ScenarioError, match="the horizon control sets"):
        scenarios(_setting(), QUICK + ["run.years=2"])


def test_a_hub_funded_for_a_while_takes_no_one_after_and_stops_costing():
    from sim import ReoffendingModel
    from sim.appraisal.costs import hub_cost
    from sim.runs.output import timeseries_frame
    from sim.app.settings import scenarios

    _, hub = scenarios(_setting(programme="da_hub"), QUICK)
    hub = replace(hub, run=replace(hub.run, years=4), da_hub=replace(hub.da_hub, funded_years=2))
    model = ReoffendingModel(hub, seed=3).run()
    ts = timeseries_frame(model)
    assert ts.loc[ts["month"] < 24, "hub_starts"].sum() > 0 and ts.loc[ts["month"] >= 24, "hub_starts"].sum() == 0
    cost = hub_cost(ts, model.params)
    last = 24 + hub.da_hub.support_months
    assert (cost[ts["month"] < last] > 0).all() and (cost[ts["month"] >= last] == 0).all()


@pytest.mark.parametrize("changes, words", [
    ({"hours_per_month": 0}, "Keyworker hours a family a month: 0 is outside the allowed range 1 to 60"),
    ({"reps": 500}, "Paired replicates: 500 is outside"),
    ({"programme": "prison"}, "programme = 'prison': allowed"),
    ({"prison_leavers": False, "probationers": False}, "eligibility"),
])
def test_a_setting_outside_the_controls_is_refused_in_one_line(changes, words):
    from sim.app.settings import scenarios

    with pytest.raises(ScenarioError) as err:
        scenarios(_setting(**changes))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_pages_follow_solaras_rules_of_hooks():
    """Solara checks each component's hooks when it is defined and warns on a hook after an early return (a bug
    that shows only when the branch changes); the app's pages import without one."""
    run = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", "import sim.app.pages"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert run.returncode == 0, run.stderr[-1500:]


def test_errors_reach_the_page_as_one_line_without_a_traceback():
    from sim.app.pages import _say

    assert _say(ScenarioError("families: 5 is outside")) == "families: 5 is outside"
    line = _say(RuntimeError("worker died"))
    assert "RuntimeError: worker died" in line and "\n" not in line and "Traceback" not in line


# --- replicates: the CLI's, cached, cancellable ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner():
    from sim.app.runner import Runner

    r = Runner(workers=1)
    yield r
    r.close()


@pytest.fixture(scope="module")
def quick_scenarios():
    from sim.app.settings import scenarios

    return scenarios(_setting(reps=3), QUICK)


def test_app_replicates_are_sim_compares(runner, quick_scenarios):
    from sim.runs.paired import compare, stack

    base, iv = quick_scenarios
    pairs = runner.pairs(base, iv, 3, 5, on_pair=lambda p: None)
    rows = stack([pairs[k] for k in sorted(pairs)])[0]
    cli_rows = compare(base, iv, 3, 5)[0]
    pd.testing.assert_frame_equal(rows, cli_rows)


def test_app_replicates_on_a_dask_cluster_are_the_same(runner, quick_scenarios):
    from dask.distributed import LocalCluster

    from sim.app.runner import Runner

    base, iv = quick_scenarios
    local = runner.pairs(base, iv, 2, 5, on_pair=lambda p: None)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0") as cluster:
        remote = Runner(scheduler=cluster.scheduler_address)
        try:
            on_dask = remote.pairs(base, iv, 2, 5, on_pair=lambda p: None)
        finally:
            remote.close()
    pd.testing.assert_frame_equal(pd.DataFrame([on_dask[k][0] for k in (0, 1)]), pd.DataFrame([local[k][0] for k in (0, 1)]))


def test_a_repeated_setting_is_answered_from_the_cache(runner, quick_scenarios, monkeypatch):
    import sim.app.runner as R

    base, iv = quick_scenarios
    runner.pairs(base, iv, 2, 9, on_pair=lambda p: None)
    calls = []
    monkeypatch.setattr(R, "run_replicate", lambda *a: calls.append(a) or pytest.fail("ran again"))
    seen = []
    pairs = runner.pairs(base, iv, 2, 9, on_pair=seen.append)
    assert not calls and sorted(pairs) == [0, 1] and len(seen) == 1  # all at once, nothing run


def test_more_replicates_run_only_the_missing_ones(runner, quick_scenarios, monkeypatch):
    import sim.app.runner as R

    base, iv = quick_scenarios
    runner.pairs(base, iv, 1, 11, on_pair=lambda p: None)
    real, real_against, calls = R.run_replicate, R.run_against, []
    monkeypatch.setattr(R, "run_replicate", lambda params, seed: calls.append(("baseline", seed)) or real(params, seed))
    monkeypatch.setattr(R, "run_against", lambda start_from, params, seed: calls.append(("programme", seed))
                        or real_against(start_from, params, seed))
    growth = []
    runner.pairs(base, iv, 3, 11, on_pair=lambda p: growth.append(len(p)))
    # replicates 1 and 2 of both arms (the programme's from the baseline's start); answers grow as they finish
    assert sorted(arm for arm, _ in calls) == ["baseline"] * 2 + ["programme"] * 2 and growth == [1, 2, 3]


def test_a_dead_worker_does_not_break_the_next_run(quick_scenarios):
    from sim.app.runner import Runner

    base, iv = quick_scenarios
    pool = Runner(workers=2)
    try:
        pool.executor.submit(int, 0).result()  # the workers are up
        victim = next(iter(pool.executor._processes.values()))
        victim.kill()
        victim.join(timeout=30)
        pairs = pool.pairs(base, iv, 2, 17, on_pair=lambda p: None)
        assert sorted(pairs) == [0, 1]
    finally:
        pool.close()


def test_a_run_stops_when_cancelled(runner, quick_scenarios):
    base, iv = quick_scenarios
    seen = []
    pairs = runner.pairs(replace(base, run=replace(base.run, name="other")), iv, 3, 13, on_pair=seen.append,
                         cancelled=lambda: len(seen) >= 1)
    assert len(pairs) == 1


# --- the answer and its downloads -----------------------------------------------------------------------------------
def test_headline_and_downloads(runner, quick_scenarios):
    from sim.app.answer import Answer, downloads, headline, verdict

    base, iv = quick_scenarios
    setting = _setting(reps=3)
    answer = Answer.from_pairs(setting, base, iv, 5, runner.pairs(base, iv, 2, 5, on_pair=lambda p: None))
    assert not answer.complete
    words = " ".join(headline(answer))
    assert "600 families a year" in words and "Provisional: 2 of 3 replicates" in words
    assert verdict(answer).endswith("of 2 replicates (indicative: fewer than 20)")
    html, zipped = downloads(answer)
    assert b"Multi-agency offender-and-family intervention" in html
    with zipfile.ZipFile(__import__("io").BytesIO(zipped)) as z:
        names = {Path(n).name for n in z.namelist()}
        assert {"comparison.csv", "replicates.csv", "timeseries.parquet", "ledger.parquet", "manifest.json", "report.html"} <= names
        replicates = pd.read_csv(z.open(next(n for n in z.namelist() if n.endswith("/replicates.csv"))))
    assert replicates["appraisal:npv"].tolist() == pytest.approx(answer.rows["appraisal:npv"].tolist())


def test_dose_response_is_shipped_and_covers_the_default_setting():
    from sim.app.answer import DOSE_GROUP, DOSE_X, dose_response, dose_response_caveat
    from sim.app.settings import Setting

    sweep = dose_response()
    default = Setting()
    assert ((sweep[DOSE_X] == default.hours_per_month) & (sweep[DOSE_GROUP] == default.families_per_year)).any()
    assert dose_response_caveat(default) == ""
    assert "evidence stance" in dose_response_caveat(replace(default, stance="optimistic"))


# --- sim app on the command line ------------------------------------------------------------------------------------
def test_sim_app_refuses_bad_input_in_one_line(capsys):
    from sim.cli import main

    assert main(["app", "--set", "population.nonsense=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nonsense" in err and "\n" not in err
    with pytest.raises(SystemExit) as stop:
        main(["app", "--port", "70000"])
    assert stop.value.code == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["app", "--port", str(taken.getsockname()[1])]) == 2
    assert "give another --port" in capsys.readouterr().err


# --- in a real browser ----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save_screenshot(page, path: Path) -> None:
    """The screenshot for people to look at, written atomically; an existing file is replaced only if it is a PNG
    (one of ours), never anything else."""
    from sim.runs.outdir import is_png

    if path.exists() and not is_png(path):
        return
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    page.screenshot(path=str(tmp), full_page=True)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "server.log"
    cmd = [sys.executable, "-m", "sim", "app", "--port", str(port), "--workers", "2", *sum((["--set", s] for s in QUICK), [])]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"sim app exited: {log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"sim app did not start in 120 s: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_the_asset_proxy_never_deletes_or_downloads(app_url):
    """Solara's asset proxy, asked for a folder of the installed assets, deletes it and fetches from a CDN; the app
    answers 404 at once, and the folder is still there."""
    import urllib.error
    import urllib.request

    from solara.server import settings

    folder = Path(settings.assets.proxy_cache_dir) / "@widgetti" / "solara-vuetify-app@10.1.1" / "dist"
    assert folder.is_dir() and any(folder.iterdir())
    for path in ("@widgetti/solara-vuetify-app@10.1.1/dist", "no-such-package@1.0.0/index.js"):
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{app_url}_solara/cdn/{path}", timeout=30)
        assert refused.value.code == 404 and time.monotonic() - started < 5
    assert folder.is_dir() and any(folder.iterdir())


def test_app_in_a_real_browser(app_url):
    browser = chromium_or_skip("the app was not opened in a browser")
    from playwright.sync_api import sync_playwright

    outside = []
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                                   "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = chrome.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else outside.append(r.url))
            page.goto(app_url)
            page.wait_for_selector(".run-button", timeout=60_000)
            reps = page.locator(".control-reps [role=slider]")
            reps.focus()
            reps.press("Home")  # the fewest replicates the control allows: 2
            page.wait_for_selector("text=Paired replicates: 2")
            page.click(".run-button")
            page.wait_for_selector(".headline-verdict >> text=of 2 replicates (indicative", timeout=120_000)
            first = page.inner_text(".headline")
            assert "20 keyworker hours a month" in first and "it costs" in first

            hours = page.locator(".control-hours-per-month [role=slider]")
            hours.focus()
            hours.press("End")  # the most hours the control allows: 60
            page.wait_for_selector("text=Keyworker hours a family a month: 60")
            page.wait_for_selector("text=The setting has changed since this answer")
            page.click(".run-button")
            page.wait_for_selector(".headline-words >> text=60 keyworker hours a month", timeout=120_000)
            page.wait_for_selector(".headline-verdict >> text=of 2 replicates", timeout=120_000)
            second = page.inner_text(".headline")
            cost = lambda text: text.split("it costs ")[1].split(" ")[0]  # noqa: E731
            assert cost(second) != cost(first)  # three times the hours: another cost on screen
            _save_screenshot(page, ROOT / "outputs" / "app_screenshot.png")
            page.get_by_role("tab", name="Dose-response").click()
            page.wait_for_selector("text=your setting's hours")
        finally:
            chrome.close()
    assert not outside, f"the app asked the internet for {outside[:5]}"
