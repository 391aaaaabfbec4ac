"""History matching (sim/fitting/history_matching.py): on a toy response whose answer is known, the waves rule out
what cannot fit and the best point lands in every band; waves resume and refuse to mix settings; one real run
gives every target metric."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from conftest import BASELINE, SMALL, TOY_FREE as FREE, toy_history_match
from sim.fitting import history_matching as hm
from sim.fitting.calibration import Target, write_fitted
from sim.state.scenario import ScenarioError

TARGETS = [
    Target("toy_a", -2.0, -2.1, -1.9, 1.0, "a", "short", "toy", "test"),
    Target("toy_b", math.log(0.5), math.log(0.5) - 0.05, math.log(0.5) + 0.05, 1.0, "b", "short", "toy", "test"),
]


def toy_response(params, seed: int) -> dict[str, float]:
    """Two metrics, each driven by one parameter, with Monte Carlo-like noise that depends on the seed only."""
    noise = np.random.default_rng(seed).normal(size=2)
    return {"a": params.justice.custody_log_odds_intercept + 0.02 * noise[0],
            "b": math.log(params.offending.youth_multiplier) + 0.01 * noise[1]}


@pytest.fixture
def toy(monkeypatch):
    return toy_history_match(monkeypatch, toy_response, FREE, TARGETS, (hm,))


def test_cube_coordinates_are_positions_within_the_bounds():
    lin, log = FREE["justice.custody_log_odds_intercept"], FREE["offending.youth_multiplier"]
    assert hm.to_cube(-4.5, lin) == 0 and hm.to_cube(-0.5, lin) == 1 and hm.to_cube(-2.5, lin) == pytest.approx(0.5)
    assert hm.to_cube(math.sqrt(0.1 * 2.0), log) == pytest.approx(0.5)  # the geometric middle on a log scale
    for u in (0.0, 0.3, 1.0):
        assert hm.to_cube(hm.from_cube(u, log), log) == pytest.approx(u)


def test_waves_rule_out_what_cannot_fit_and_the_best_point_meets_every_band(toy, tmp_path):
    fit = hm.history_match(BASELINE, waves=2, points=16, reps=3, long_reps=1, seed=2, workers=1, store=tmp_path / "hm", log=lambda s: None)
    shares = [w["not_ruled_out"] for w in fit["waves"]]
    assert shares[0] < 0.2  # two bands of 5% and ~2% of their ranges leave a small corner
    best = fit["values"]
    assert -2.1 <= best["justice.custody_log_odds_intercept"] <= -1.9
    assert abs(math.log(best["offending.youth_multiplier"]) - math.log(0.5)) <= 0.05
    assert fit["evaluations"] == 32 and toy == [3 * 8, 3 * 8] * 2  # 8 sets a chunk, 3 replicates a set
    ranges = fit["ranges"].set_index("parameter")
    assert ranges.loc["justice.custody_log_odds_intercept", "share_of_range"] < 0.2  # identified by toy_a
    assert -2.3 < ranges.loc["justice.custody_log_odds_intercept", "p50"] < -1.7
    wave2 = pd.read_parquet(tmp_path / "hm" / "wave_2.parquet")
    # the second wave's sets were drawn from what the first left: most are close to the answer
    assert ((wave2["a"] + 2).abs() < 0.5).mean() > 0.5
    assert set(wave2["a"].round(6)) != set(pd.read_parquet(tmp_path / "hm" / "wave_1.parquet")["a"].round(6))

    out = tmp_path / "fitted.toml"
    write_fitted([fit], pd.DataFrame(columns=["target"]), out)
    record = tomllib.loads(out.read_text())["calibration"]["stage_joint"]
    assert record["method"].startswith("history matching") and record["waves"] == shares


def test_a_wave_resumes_where_it_stopped_and_other_settings_are_refused(toy, tmp_path):
    store = tmp_path / "hm"
    hm.history_match(BASELINE, waves=1, points=8, reps=2, long_reps=1, seed=2, workers=1, store=store, log=lambda s: None)
    first = pd.read_parquet(store / "wave_1.parquet")
    toy.clear()
    again = hm.history_match(BASELINE, waves=1, points=8, reps=2, long_reps=1, seed=2, workers=1, store=store, log=lambda s: None)
    assert toy == []  # nothing was run again
    assert again["values"] == pytest.approx(hm.history_match(BASELINE, 1, 8, 2, 1, 2, 1, store=store, log=lambda s: None)["values"])
    pd.testing.assert_frame_equal(pd.read_parquet(store / "wave_1.parquet"), first)

    manifest = (store / "settings.json").read_text()
    with pytest.raises(ScenarioError, match="other settings"):
        hm.history_match(BASELINE, waves=1, points=8, reps=3, long_reps=1, seed=2, workers=1, store=store, log=lambda s: None)
    assert (store / "settings.json").read_text() == manifest and json.loads(manifest)["reps"] == 2

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ScenarioError, match="not written by sim ensemble"):
        hm.history_match(BASELINE, waves=1, points=8, reps=2, long_reps=1, seed=2, workers=1, store=stranger, log=lambda s: None)
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]


def test_implausibility_is_within_three_exactly_where_the_band_is_met_when_the_emulator_is_sure():
    t = TARGETS[0]
    mean = np.array([-2.0, -1.9, -2.15, -3.0])
    predicted = {"a": (mean, np.zeros(4))}
    got = hm.implausibility(predicted, [t])[:, 0]
    assert list(got <= hm.CUTOFF + 1e-9) == [True, True, False, False]
    unsure = hm.implausibility({"a": (mean, np.full(4, 0.5))}, [t])[:, 0]
    assert (unsure <= hm.CUTOFF).all()  # an emulator that cannot tell rules nothing out


def test_one_real_set_gives_every_target_metric(tmp_path):
    """Through the real model (small population, one replicate of each run length): one row with the set's values,
    its position in the cube, and every target metric."""
    from sim.fitting.calibration import load_free_parameters, load_targets

    free = load_free_parameters()
    targets = [t for t in load_targets() if t.weight > 0]
    scenario = tmp_path / "small.toml"
    scenario.write_text(f'extends = "{BASELINE}"\n[population]\n' + "\n".join(s.split(".", 1)[1] for s in SMALL) + "\n")
    cube = np.full((1, len(free)), 0.5)
    rows = hm.evaluate(scenario, free, cube, targets, reps=1, long_reps=1, seed=3, workers=1, path=tmp_path / "w.parquet",
                       log=lambda s: None)
    assert len(rows) == 1 and rows.loc[0, "point"] == 0
    for key, spec in free.items():
        assert rows.loc[0, key] == pytest.approx(hm.from_cube(0.5, spec))
    for t in targets:
        assert np.isfinite(rows.loc[0, t.metric]), t.metric


def test_a_wave_made_by_another_design_is_refused(toy, tmp_path):
    store = tmp_path / "hm"
    hm.history_match(BASELINE, waves=1, points=8, reps=2, long_reps=1, seed=2, workers=1, store=store, log=lambda s: None)
    wave = pd.read_parquet(store / "wave_1.parquet")
    wave.loc[0, "u:justice.custody_log_odds_intercept"] += 0.1
    wave.to_parquet(store / "wave_1.parquet", index=False)
    before = (store / "wave_1.parquet").read_bytes()
    with pytest.raises(ScenarioError, match="not the ones drawn now"):
        hm.history_match(BASELINE, waves=1, points=8, reps=2, long_reps=1, seed=2, workers=1, store=store, log=lambda s: None)
    assert (store / "wave_1.parquet").read_bytes() == before
