"""Reproducibility (same seed -> same run) and common random numbers across scenarios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim import ReoffendingModel
from sim.runs.output import events_frame, people_frame, timeseries_frame
from sim.state.people import FIELDS

from conftest import SMALL, load

MONTHS = 12


def run(params, seed, months=MONTHS):
    return ReoffendingModel(params, seed=seed).run(months)


@pytest.fixture(scope="module")
def params():
    return load(*SMALL, "run.years=1")


@pytest.fixture(scope="module")
def runs(params):
    return {"a": run(params, 11), "b": run(params, 11), "c": run(params, 12)}


def test_same_seed_same_timeseries_events_and_people(runs):
    a, b = runs["a"], runs["b"]
    pd.testing.assert_frame_equal(timeseries_frame(a), timeseries_frame(b))
    pd.testing.assert_frame_equal(events_frame(a), events_frame(b))
    pd.testing.assert_frame_equal(people_frame(a), people_frame(b))
    for name in FIELDS:
        assert np.array_equal(a.people.view(name), b.people.view(name)), name
    assert len(events_frame(a)) > 0


def test_different_seeds_differ(runs):
    a, c = runs["a"], runs["c"]
    ts_a, ts_c = timeseries_frame(a), timeseries_frame(c)
    assert not ts_a.equals(ts_c)
    assert (ts_a["offences"] != ts_c["offences"]).any()
    assert not events_frame(a).equals(events_frame(c))
    assert not np.array_equal(a.people.view("propensity")[:100], c.people.view("propensity")[:100])


def test_seed_defaults_to_scenario_seed(params):
    model = ReoffendingModel(params)
    assert model.seed == params.run.seed
    other = ReoffendingModel(params, seed=params.run.seed)
    pd.testing.assert_frame_equal(people_frame(model), people_frame(other))


def test_stepping_equals_run(params, runs):
    """run(months) is just months x step(); nothing depends on how the run is driven."""
    model = ReoffendingModel(params, seed=11)
    for _ in range(MONTHS):
        model.step()
    pd.testing.assert_frame_equal(timeseries_frame(model), timeseries_frame(runs["a"]))
    pd.testing.assert_frame_equal(events_frame(model), events_frame(runs["a"]))


def test_without_event_log_same_timeseries(params, runs):
    model = ReoffendingModel(params, seed=11, record_events=False).run(MONTHS)
    pd.testing.assert_frame_equal(timeseries_frame(model), timeseries_frame(runs["a"]))
    assert events_frame(model).empty


# --- common random numbers across scenarios ---------------------------------------------------------------------


def test_starting_population_depends_only_on_population_parameters():
    """Scenarios that change how the justice system treats people under sentence (recalls) start from the very same
    people. (The start is in equilibrium with the partnering and offending processes and with the courts' odds: who is
    partnered follows the partnering rates, and the records drawn for the past are careers with the run's hazard,
    cautions, desistance, needs and orders, so those do change it; in a comparison an arm takes the baseline's start:
    tests/test_history_start.py.) With the start drawn (no simulated past: ``population.history_years`` runs the
    past on the scenario's own values)."""
    drawn = [*SMALL, "population.history_years=0"]
    a = ReoffendingModel(load(*drawn), seed=4)
    b = ReoffendingModel(
        load(*drawn, "justice.p_recall_on_conviction=0.9", "justice.p_recall_per_month=0.5"),
        seed=4,
    )
    for name in FIELDS:
        assert np.array_equal(a.people.view(name), b.people.view(name)), name
    # the odds of an order do: an order's start raises the hazard in a drawn past as in the run
    d = ReoffendingModel(load(*drawn, "justice.order_log_odds_intercept=0.5"), seed=4)
    assert not np.array_equal(a.people.view("prev_convictions"), d.people.view("prev_convictions"))
    # and a population parameter does change it
    sigma = a.params.population.propensity_sigma_general
    c = ReoffendingModel(load(*drawn, f"population.propensity_sigma_general={sigma + 0.3}"), seed=4)
    assert not np.array_equal(a.people.view("propensity"), c.people.view("propensity"))


def test_sentencing_scenario_starts_from_the_same_sentences():
    """Regression: the sentences being served at the start were drawn from the sentencing policy in [justice], so a
    scenario with longer sentences also rewrote the sentences of people already in custody at month 0. (With the start
    drawn. A simulated past runs on the scenario's own sentencing when the scenario runs alone; in a comparison its arm
    takes the baseline's start: tests/test_history_start.py.)"""
    base = load(*SMALL, "population.history_years=0")
    j = base.justice
    a = ReoffendingModel(base, seed=4)
    b = ReoffendingModel(
        load(
            *SMALL,
            "population.history_years=0",
            f"justice.sentence_median_months={2 * j.sentence_median_months}",
            f"justice.sentence_short_median_months={2 * j.sentence_short_median_months}",
            f"justice.sentence_sigma={j.sentence_sigma + 0.5}",
            f"justice.order_median_months={2 * j.order_median_months}",
            f"justice.order_sigma={j.order_sigma + 0.5}",
        ),
        seed=4,
    )
    for name in FIELDS:
        assert np.array_equal(a.people.view(name), b.people.view(name)), name
    # the new policy does act on new sentences (both parts of the sentence lengths doubled: within a year at these
    # weights the longer part, median 2.6 years, need not release anyone)
    ra, rb = run(base, 4), run(b.params, 4)
    assert not timeseries_frame(ra)["custody"].equals(timeseries_frame(rb)["custody"])


def more_single_births():
    """An override that makes single women much more likely to give birth than in the baseline."""
    base = load(*SMALL).demography.fertility_single_per_year
    return f"demography.fertility_single_per_year={0.9 if base < 0.45 else 1.0}"


def test_common_random_numbers_in_the_first_month():
    """A change that only acts late in the month (arrivals, after everything else; the start does not read it) leaves
    everything before it identical, draw for draw: the same people offend, are convicted and are sentenced, are born,
    die and move away in month 0. (Births were the change until 2026-12-07, when the start's fathers came to follow
    the birth rates: ``population.births_with_father_share``.)"""
    a = run(load(*SMALL), 4, months=1)
    more = 3 * load(*SMALL).demography.arrivals_per_year
    b = run(load(*SMALL, f"demography.arrivals_per_year={more}"), 4, months=1)
    ea, eb = events_frame(a), events_frame(b)
    for event in ("offence", "conviction", "custody_start", "order_start", "release", "birth", "death", "exit"):
        xa = ea[ea["event"] == event].reset_index(drop=True)
        xb = eb[eb["event"] == event].reset_index(drop=True)
        pd.testing.assert_frame_equal(xa, xb, obj=event)
    assert (ea["event"] == "offence").sum() > 0
    assert (eb["event"] == "arrival").sum() > (ea["event"] == "arrival").sum()


def test_newborn_ids_do_not_depend_on_rows():
    """More single mothers give birth in scenario b, so newborns sit in different rows; a child born to the same
    mother in both scenarios has the same id (and so the same draws: sex, propensity)."""
    a = run(load(*SMALL), 4, months=1)
    b = run(load(*SMALL, more_single_births()), 4, months=1)

    def newborns(model):
        p = model.people
        rows, month, code = model.events.arrays()[:3]
        from sim.state.events import EVENT_CODE

        born = rows[code == EVENT_CODE["birth"]]
        return pd.DataFrame(
            {
                "row": born,
                "person_id": p.person_id[born],
                "mother_id": p.person_id[p.mother[born]],
                "sex_male": p.sex_male[born],
                "propensity": p.propensity[born],
            }
        ).set_index("person_id")

    na, nb = newborns(a), newborns(b)
    assert len(na) > 0 and len(nb) > len(na)
    assert set(na.index) <= set(nb.index)
    common = nb.loc[na.index]
    assert (common["mother_id"] == na["mother_id"]).all()
    assert (common["sex_male"] == na["sex_male"]).all()
    assert np.allclose(common["propensity"], na["propensity"])
    assert (common["row"] != na["row"]).any()  # the test did move children to other rows
    assert na.index.is_unique and nb.index.is_unique


def test_compiled_kernels_are_cached_per_version_of_the_sources(tmp_path):
    """numba renews a kernel's cache only when the kernel's own file changes, not when a function it inlines from
    another module does; so the package keeps its kernels in a folder named by all of its sources: a change to
    ``sim/state/rng.py`` alone moves every kernel to a new folder. A cache folder set by the user is kept."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "sim"
    shutil.copytree(package, tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(tmp_path)

    def cache_dir(extra_env=()):
        out = subprocess.run([sys.executable, "-c", "import sim, numba; print(numba.config.CACHE_DIR)"], env={**env, **dict(extra_env)},
                             capture_output=True, text=True, check=True, cwd=tmp_path)
        return out.stdout.strip()

    before = cache_dir()
    assert Path(before).parent == tmp_path / "sim" / "__pycache__"
    assert cache_dir() == before  # the same sources, the same folder
    with open(tmp_path / "sim" / "state" / "rng.py", "a") as f:
        f.write("\n# a change to a module whose functions other modules' kernels inline\n")
    assert cache_dir() != before
    assert cache_dir([("NUMBA_CACHE_DIR", str(tmp_path / "mine"))]) == str(tmp_path / "mine")
