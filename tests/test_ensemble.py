"""Calibration as an ensemble: members drawn per replicate by seed (sim/state/ensemble.py, ``with_member``), only for
values that come from calibration/fitted.toml, recorded in every replicate's row; and ``sim ensemble`` (history
match, candidates, check runs) on a toy response whose answer is known."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import BASELINE, SMALL, TOY_FREE as FREE, toy_history_match
from sim import ReoffendingModel, load_scenario
from sim.fitting import ensemble as E
from sim.fitting import history_matching as hm
from sim.fitting.calibration import Target, load_free_parameters
from sim.model import MODEL_REVISION
from sim.state import ensemble as S
from sim.state.scenario import ScenarioError, with_member

SHORT_1Y = ["run.years=1", *SMALL, "run.calibration=ensemble"]


def fake_ensemble(path, n: int = 5) -> pd.DataFrame:
    """``n`` members with values for two fitted keys (distinct per member) and one key the fit does not own."""
    frame = pd.DataFrame({"member": np.arange(n),
                          "value:justice.custody_log_odds_intercept": np.linspace(-3.5, -2.5, n),
                          "value:offending.youth_multiplier": np.linspace(0.3, 0.5, n),
                          "value:population.scale_general": np.full(n, 7.0),  # not a fitted value: never replaced
                          "made_by": "test"})
    frame.to_parquet(path, index=False)
    return frame


@pytest.fixture
def members(monkeypatch, tmp_path):
    """A fake ensemble where the scenarios' ``run.ensemble`` finds it (the project's folder moved to ``tmp_path``)."""
    path = tmp_path / S.BASELINE_ENSEMBLE
    path.parent.mkdir(parents=True)
    frame = fake_ensemble(path)
    monkeypatch.setattr(S, "ROOT", tmp_path)
    return frame


def test_a_replicate_takes_the_fitted_values_of_the_member_its_seed_draws(members):
    params = load_scenario(BASELINE, SHORT_1Y)
    assert set(params.ensemble.keys) == {"justice.custody_log_odds_intercept", "offending.youth_multiplier"}
    seen = set()
    for seed in range(40):
        with ReoffendingModel(params, seed=seed) as model:
            m = model.ensemble_member
            assert 0 <= m < len(members)
            row = members.iloc[m]
            assert model.params.justice.custody_log_odds_intercept == row["value:justice.custody_log_odds_intercept"]
            assert model.params.offending.youth_multiplier == row["value:offending.youth_multiplier"]
            assert model.params.population.scale_general == params.population.scale_general
            seen.add(m)
            assert with_member(params, seed)[1] == m  # the seed alone decides (common random numbers)
    assert seen == set(range(len(members)))  # 40 draws of 5 members reach every one


def test_a_value_the_scenario_sets_itself_is_kept_and_point_pins_the_fit(members):
    own = load_scenario(BASELINE, [*SHORT_1Y, "offending.youth_multiplier=0.9"])
    assert own.ensemble.keys == ("justice.custody_log_odds_intercept",)
    concrete, m = with_member(own, 3)
    assert concrete.offending.youth_multiplier == 0.9 and m >= 0
    point = load_scenario(BASELINE, [*SHORT_1Y, "run.calibration=point"])
    assert point.ensemble is None
    concrete, m = with_member(point, 3)
    fitted = tomllib.loads(S.FITTED.read_text())
    assert m == -1 and concrete.justice.custody_log_odds_intercept == fitted["justice"]["custody_log_odds_intercept"]["value"]
    assert concrete.offending.youth_multiplier == fitted["offending"]["youth_multiplier"]["value"]


def test_a_single_run_names_its_member(members, tmp_path):
    """``sim run``'s manifest: the member the seed drew, its values among the parameters (-1 at the point fit)."""
    import json

    from sim.runs.output import write_run

    params = load_scenario(BASELINE, SHORT_1Y)
    model = ReoffendingModel(params, seed=11, record_offences=False)
    model.run()
    write_run(model, tmp_path / "run", with_events=False)
    info = json.loads((tmp_path / "run" / "manifest.json").read_text())
    member = params.ensemble.member(11)
    assert info["ensemble_member"] == member
    assert info["parameters"]["justice"]["custody_log_odds_intercept"] == params.ensemble.values[member][0]


def test_every_replicate_row_names_its_member_and_a_comparison_pairs_members(members):
    from sim.runs.batch import replicate_result
    from sim.runs.paired import compare

    base = load_scenario(BASELINE, SHORT_1Y)
    _, row = replicate_result(base, 11, 0)
    assert row["ensemble_member"] == base.ensemble.member(11)
    iv = load_scenario(BASELINE.parent / "multi_agency.toml", SHORT_1Y)
    rows = compare(base, iv, reps=3, root_seed=5, workers=1)[0]
    assert "ensemble_member_baseline" not in rows  # both scenarios drew the same member in each replicate
    assert [base.ensemble.member(s) for s in rows["seed"]] == rows["ensemble_member"].tolist()
    from sim.runs.output import manifest

    record = manifest(base, 1)["calibration_ensemble"]
    assert record["members"] == len(members) and record["file"] == "ensemble.parquet" and len(record["sha256"]) == 64
    assert "calibration_ensemble" not in manifest(load_scenario(BASELINE, [*SHORT_1Y, "run.calibration=point"]), 1)


def test_a_missing_or_unreadable_ensemble_or_an_unknown_choice_is_one_clear_error(monkeypatch, tmp_path):
    with pytest.raises(ScenarioError, match=r'run.calibration = "ensemble": .*none.parquet not found .*run.calibration = "point"'):
        load_scenario(BASELINE, [*SHORT_1Y, f"run.ensemble={tmp_path / 'none.parquet'}"])
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ScenarioError, match="bad.parquet cannot be read as an ensemble"):
        load_scenario(BASELINE, [*SHORT_1Y, f"run.ensemble={bad}"])
    broken = tmp_path / "broken.parquet"
    frame = fake_ensemble(broken)
    frame.loc[1, "value:offending.youth_multiplier"] = -3.0  # a relative hazard below zero
    frame.to_parquet(broken, index=False)
    with pytest.raises(ScenarioError, match=r"member 1: offending.youth_multiplier = -3.0: must be"):
        load_scenario(BASELINE, [*SHORT_1Y, f"run.ensemble={broken}"])
    with pytest.raises(ScenarioError, match=r"run.calibration = 'both': must be one of 'ensemble', 'point'"):
        load_scenario(BASELINE, [*SHORT_1Y, "run.calibration=both"])


def test_members_are_drawn_evenly():
    ens = S.Ensemble(("a.b",), tuple((float(i),) for i in range(10)), "x")
    counts = np.bincount([ens.member(s) for s in range(5000)], minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # 500 expected each


# --- sim ensemble on a toy response -------------------------------------------------------------------------------

TARGETS = [
    Target("toy_a", -2.0, -2.2, -1.8, 1.0, "a", "short", "toy", "test"),
    Target("toy_b", math.log(0.5), math.log(0.5) - 0.1, math.log(0.5) + 0.1, 1.0, "b", "short", "toy", "test"),
    Target("toy_gap", 5.0, 4.9, 5.1, 1.0, "c", "short", "toy", "test", known_gap="the toy never reaches it"),
]


def toy_response(params, seed: int) -> dict[str, float]:
    noise = np.random.default_rng(seed).normal(size=2)
    a, b = params.justice.custody_log_odds_intercept, math.log(params.offending.youth_multiplier)
    return {"a": a + 0.03 * noise[0], "b": b + 0.02 * noise[1], "c": 0.0}


@pytest.fixture
def toy(monkeypatch):
    return toy_history_match(monkeypatch, toy_response, FREE, TARGETS, (hm, E))


def passed(frame, metric: str, lower: float, upper: float) -> bool:
    """Every member's check-run mean within the band, or off it by less than its 90% Monte Carlo error (and that
    error small: a member far off the band would not pass by a large error)."""
    slack = E.CHECK_Z * frame[f"se:{metric}"]
    return bool(((frame[metric] >= lower - slack) & (frame[metric] <= upper + slack)).all()
                and (slack < (upper - lower) / 2).all())


def test_the_ensemble_keeps_only_checked_sets_that_meet_every_band(toy, tmp_path, monkeypatch):
    store, out = tmp_path / "hm", tmp_path / "ensemble.parquet"
    frame = E.run(BASELINE, waves=2, points=16, reps=2, long_reps=1, seed=2, members=12, check_reps=3, check_long_reps=1,
                  workers=1, store=store, out=out, log=lambda s: None)
    assert len(frame) >= 12 and out.exists()
    assert passed(frame, "a", -2.2, -1.8) and passed(frame, "b", math.log(0.5) - 0.1, math.log(0.5) + 0.1)
    assert (frame["c"] == 0).all()  # the known gap is reported, not selected on (nothing would pass)
    # members are spread over what fits, not one point
    assert frame["value:justice.custody_log_odds_intercept"].std() > 0.03
    assert frame["made_by"].str.contains("history match of 32 runs in 2 waves").all()
    checks = pd.concat([pd.read_parquet(f) for f in sorted(store.glob("check_*.parquet"))])
    assert len(checks) >= len(frame)  # candidates that failed their check are kept on record, not in the ensemble
    ranges = E.ensemble_ranges(frame, FREE).set_index("parameter")
    assert ranges.loc["justice.custody_log_odds_intercept", "share_of_range"] < 0.15  # 0.4 of a range of 4 at most
    # a rerun resumes every wave and check: no new runs, the same members, and no emulators fitted for rounds it holds
    before = len(toy)
    monkeypatch.setattr(E, "emulators_of", lambda *a: pytest.fail("the emulators were fitted again for rounds the store holds"))
    again = E.run(BASELINE, waves=2, points=16, reps=2, long_reps=1, seed=2, members=12, check_reps=3, check_long_reps=1,
                  workers=1, store=store, out=out, log=lambda s: None)
    assert len(toy) == before
    pd.testing.assert_frame_equal(again, frame)
    # checks of another size are not mixed in, and nothing is written
    with pytest.raises(ScenarioError, match="check runs were made with"):
        E.run(BASELINE, waves=2, points=16, reps=2, long_reps=1, seed=2, members=12, check_reps=5, check_long_reps=1,
              workers=1, store=store, out=out, log=lambda s: None)
    assert len(toy) == before


def test_a_round_the_store_holds_whole_is_not_drawn_again(toy, tmp_path, monkeypatch):
    """The candidates of a round come from the emulators' fit, which another version of scikit-learn or scipy can
    move: a rerun takes a whole stored round as it is (it used to draw again and refuse the store as made by other
    code). A round stored in part is drawn again, and refused if the draw differs from what was run; rounds drawn
    from fewer waves than the emulators now have are refused."""
    store, out = tmp_path / "hm", tmp_path / "ensemble.parquet"
    args = dict(waves=2, points=16, reps=2, long_reps=1, seed=2, members=12, check_reps=3, check_long_reps=1, workers=1,
                store=store, out=out, log=lambda s: None)
    frame = E.run(BASELINE, **args)
    before = len(toy)
    drawn = E.draw_candidates
    monkeypatch.setattr(E, "draw_candidates", lambda *a: np.flip(drawn(*a), axis=0))  # as if the emulators moved
    pd.testing.assert_frame_equal(E.run(BASELINE, **args), frame)
    assert len(toy) == before
    check = store / "check_1.parquet"
    pd.read_parquet(check).iloc[:-1].to_parquet(check)  # the round's last set not run yet
    with pytest.raises(ScenarioError, match="not the ones drawn now"):
        E.run(BASELINE, **args)
    # a history match carried a wave further has other emulators: its rounds are not those stored
    with pytest.raises(ScenarioError, match="check runs were made with"):
        E.run(BASELINE, **(args | {"waves": 3}))


def test_an_ensemble_from_runs_of_other_targets_is_refused(toy, tmp_path, monkeypatch):
    store = tmp_path / "hm"
    hm.history_match(BASELINE, 1, 8, 2, 1, 2, 1, store=store, log=lambda s: None)
    monkeypatch.setattr(E, "load_targets", lambda: TARGETS[:1])
    with pytest.raises(ScenarioError, match="other targets"):
        E.build_ensemble(BASELINE, 4, 2, 1, 1, store=store, out=tmp_path / "e.parquet", log=lambda s: None)
    assert not (tmp_path / "e.parquet").exists()


def test_random_walks_go_on_where_candidates_run_short(toy, tmp_path, monkeypatch):
    """With one round of candidates allowed, the rest of the members come from random walks, each step kept only
    where it meets every band, started from what passed (from the point fit only when nothing did)."""
    monkeypatch.setattr(E, "ROUNDS", 1)
    monkeypatch.setattr(E, "CHAINS", 6)
    monkeypatch.setattr(E, "OVERSAMPLE", 0.3)  # 9 candidates for 30 members
    store, out = tmp_path / "hm", tmp_path / "ensemble.parquet"
    frame = E.run(BASELINE, waves=2, points=16, reps=2, long_reps=1, seed=2, members=30, check_reps=3, check_long_reps=1,
                  workers=1, store=store, out=out, log=lambda s: None)
    walked = frame[frame["found_by"].str.startswith("random walk")]
    assert len(frame) >= 30 and len(walked) > 0 and (store / "walk_1.parquet").exists()
    assert passed(walked, "a", -2.2, -1.8) and passed(walked, "b", math.log(0.5) - 0.1, math.log(0.5) + 0.1)
    steps = pd.concat([pd.read_parquet(f) for f in store.glob("walk_*.parquet")])
    assert len(steps) > len(walked)  # some moves left the bands and were refused
    assert walked[[c for c in frame if c.startswith("u:")]].drop_duplicates().shape[0] == len(walked)  # each a new set
    # the walks start from the candidates that passed, not from the point fit: every first step lies near one of them
    u_cols = [c for c in frame if c.startswith("u:")]
    starts = frame.loc[frame["found_by"].str.startswith("history-match"), u_cols].to_numpy()
    first_steps = pd.read_parquet(store / "walk_1.parquet", columns=u_cols).to_numpy()
    assert len(starts) > 0
    assert (np.abs(first_steps[:, None, :] - starts[None, :, :]).max(axis=2).min(axis=1) < 10 * E.STEP_SD).all()
    u = E.reflect(np.array([-0.1, 0.5, 1.2]))
    assert u.tolist() == pytest.approx([0.1, 0.5, 0.8])
    # fewer steps than are stored: no new runs, the members those steps found (for an ensemble stopped early)
    before = len(toy)
    first = int(walked["found_by"].str.removeprefix("random walk, step ").astype(int).min())
    early = E.run(BASELINE, waves=2, points=16, reps=2, long_reps=1, seed=2, members=30, check_reps=3, check_long_reps=1,
                  workers=1, store=store, out=out, log=lambda s: None, max_steps=first)
    assert len(toy) == before
    assert len(early) == len(frame) - (walked["found_by"] != f"random walk, step {first}").sum()
    assert early["found_by"].isin(frame["found_by"]).all()
DA = BASELINE.parent / "domestic_abuse.toml"


def shifted_response(params, seed: int) -> dict[str, float]:
    """The toy, and a model that differs where partner abuse is on: there ``a`` reads 0.15 higher."""
    out = toy_response(params, seed)
    return out | {"a": out["a"] + (0.15 if params.domestic_abuse.incidents_per_month_base > 0 else 0.0)}


def test_recheck_keeps_the_members_that_still_fit_a_changed_model_and_walks_on_from_them(tmp_path, monkeypatch):
    """``sim ensemble --recheck``: each member of an ensemble made under one model is checked again under a scenario
    whose model differs, those that still meet every band kept, and random walks fill the rest; a rerun resumes, and
    a store made from another source is refused."""
    toy = toy_history_match(monkeypatch, shifted_response, FREE, TARGETS, (hm, E))
    source = tmp_path / "ensemble.parquet"
    base = E.run(BASELINE, waves=2, points=16, reps=2, long_reps=1, seed=2, members=20, check_reps=3, check_long_reps=1,
                 workers=1, store=tmp_path / "hm", out=source, log=lambda s: None)
    store, out = tmp_path / "recheck", tmp_path / "ensemble_da.parquet"
    args = dict(members=20, check_reps=3, check_long_reps=1, workers=1, store=store, out=out, seed=2, log=lambda s: None)
    frame = E.recheck_ensemble(DA, source, **args)
    again = frame[frame["found_by"].str.endswith("checked again")]
    # the members whose intercept the shift takes out of the band are dropped, some are kept
    assert 0 < len(again) < len(base)
    dropped = base.drop(index=again["found_by"].str.extract(r"member (\d+) of")[0].astype(int))
    # (the shift moves a by +0.15: the members kept are those whose intercept sat low enough, up to the checks' noise)
    assert again["value:justice.custody_log_odds_intercept"].max() < dropped["value:justice.custody_log_odds_intercept"].min() + 0.05
    assert len(frame) >= 20 and frame["found_by"].str.startswith("random walk").any()
    assert passed(frame, "a", -2.2, -1.8) and passed(frame, "b", math.log(0.5) - 0.1, math.log(0.5) + 0.1)
    # under the shifted model the members sit lower than the source's: the band is met by a lower intercept
    assert frame["value:justice.custody_log_odds_intercept"].mean() < base["value:justice.custody_log_odds_intercept"].mean() - 0.05
    assert len(pd.read_parquet(store / "check_members.parquet")) == len(base)  # every member checked, once
    assert "checked again under domestic_abuse.toml" in frame["made_by"].iloc[0]
    # a rerun runs nothing new and writes the same members
    before = len(toy)
    pd.testing.assert_frame_equal(E.recheck_ensemble(DA, source, **args), frame)
    assert len(toy) == before
    # another source ensemble: refused, nothing run or written
    base.iloc[:-1].to_parquet(source, index=False)
    out.unlink()
    with pytest.raises(ScenarioError, match="other settings"):
        E.recheck_ensemble(DA, source, **args)
    assert len(toy) == before and not out.exists()
    with pytest.raises(ScenarioError, match="is the ensemble being checked again"):
        E.recheck_ensemble(DA, source, **(args | {"out": source, "store": tmp_path / "other"}))


def test_sim_ensemble_never_writes_over_a_file_it_did_not_make_and_bad_input_is_one_line(tmp_path, capsys):
    """run.ensemble names where an ensemble is written, so a scenario or --set could name any file: only a .parquet
    file that is absent or made by sim ensemble is written, refused before any run; a missing source is one line."""
    from sim.cli import main

    readme = BASELINE.parents[1] / "README.md"
    before = readme.read_bytes()
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(other)
    for target, why in ((str(readme), "must name a .parquet file"), (str(other), "was not written by sim ensemble")):
        for extra in (["--recheck", str(S.ENSEMBLE), "--scenario", str(DA)], []):
            assert main(["ensemble", *extra, "--set", f"run.ensemble={target}", "--members", "1"]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and why in err[0], err
    assert readme.read_bytes() == before and pd.read_parquet(other).equals(pd.DataFrame({"x": [1]}))
    assert main(["ensemble", "--recheck", str(tmp_path / "missing.parquet"), "--scenario", str(DA)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.parquet: cannot be read as an ensemble" in err[0]


def test_recheck_where_no_member_fits_says_so_and_writes_nothing(tmp_path, monkeypatch):
    toy_history_match(monkeypatch, lambda params, seed: shifted_response(params, seed) | {"a": 9.0}
                      if params.domestic_abuse.incidents_per_month_base > 0 else toy_response(params, seed), FREE, TARGETS, (hm, E))
    source = tmp_path / "ensemble.parquet"
    E.run(BASELINE, waves=1, points=16, reps=2, long_reps=1, seed=2, members=5, check_reps=3, check_long_reps=1,
          workers=1, store=tmp_path / "hm", out=source, log=lambda s: None)
    out = tmp_path / "ensemble_da.parquet"
    with pytest.raises(ScenarioError, match="no member of .* meets every target under .*needs a history match"):
        E.recheck_ensemble(DA, source, 5, 3, 1, 1, tmp_path / "recheck", out, seed=2, log=lambda s: None)
    assert not out.exists()


def test_the_domestic_abuse_scenario_draws_its_own_ensemble_and_a_history_match_cannot_write_the_baselines_point_from_it(capsys):
    """The shipped DA ensemble was made by --recheck under today's model from the DA ensemble before it (kept in
    calibration/rechecks/, itself a recheck of the baseline's ensemble of that time), every member not shown to miss
    a fitted target of today's bands; its store resumes with today's scenario files and model (a neutral edit of one of
    them must update the store's digest; an edit that changes runs needs the recheck run again)."""
    from sim.cli import main

    da, base = load_scenario(DA, ["run.years=1"]), load_scenario(BASELINE, ["run.years=1"])
    assert Path(da.ensemble.path).name == "ensemble_domestic_abuse.parquet" and Path(base.ensemble.path) == S.ENSEMBLE
    frame = pd.read_parquet(da.ensemble.path)
    assert len(frame) >= MIN_DA_MEMBERS and frame["made_by"].str.startswith("sim ensemble --recheck").all()
    targets = hm.fitted_targets()
    assert E.within_bands({t.metric: frame[t.metric].to_numpy() for t in targets}, targets,
                          {t.metric: frame[f"se:{t.metric}"].to_numpy() for t in targets}, E.CHECK_Z).all()
    store = E.RECHECK_STORE / "domestic_abuse"
    settings = json.loads((store / "settings.json").read_text())
    source = E.RECHECK_STORE / settings["recheck_of"]
    assert settings["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert pd.read_parquet(source)["made_by"].str.contains("checked again under domestic_abuse.toml").all()
    assert (settings["model"], settings["scenario_sha256"]) == (MODEL_REVISION, E.scenario_digest(DA))
    assert main(["ensemble", "--show", "--write-point", "--scenario", str(DA)]) == 2
    assert "--write-point: " in capsys.readouterr().err


#: members the shipped ensemble must have to be drawn from at all; issue 14 asks for at least 100 (next test)
MIN_SHIPPED_MEMBERS = 50
#: the DA scenario's, a recheck that kept 34 of its 35 members under the model's fourth revision of 2026-12-06
#: (README, Domestic abuse): fewer, but each checked; its walks resume from the store (--members)
MIN_DA_MEMBERS = 30


def test_the_shipped_ensemble_has_at_least_100_members():
    assert len(pd.read_parquet(S.ENSEMBLE)) >= 100


def test_the_shipped_ensemble_meets_every_target_it_was_selected_on():
    """Every stored member's values lie inside the free parameters' bounds and its check runs are not shown to miss
    any fitted target of today's calibration/targets.toml (so a change of band there shows the ensemble is stale);
    across members each target's middle lies inside its band or within a member's Monte Carlo error of it (the
    custody stock's stability, 0.105 against 0.10 at weights 40 and 2, whose noise adds to a replicate's RMS
    deviation: 0.07 at the default weights, README); and it says how it was made."""
    frame = pd.read_parquet(S.ENSEMBLE)
    assert len(frame) >= MIN_SHIPPED_MEMBERS
    free = load_free_parameters()
    for key, spec in free.items():
        v = frame[S.VALUE + key]
        assert ((v >= spec["lower"]) & (v <= spec["upper"])).all(), key
    targets = hm.fitted_targets()
    means = {t.metric: frame[t.metric].to_numpy() for t in targets}
    se = {t.metric: frame[f"se:{t.metric}"].to_numpy() for t in targets}
    assert E.within_bands(means, targets, se, E.CHECK_Z).all()
    for t in targets:  # the middle member inside the band, or outside by less than a typical member's standard error
        middle, se_middle = frame[t.metric].median(), frame[f"se:{t.metric}"].median()
        assert t.lower - se_middle <= middle <= t.upper + se_middle, t.name
    assert frame["made_by"].str.contains("history match").all()


def test_sim_ensemble_show_reports_ranges_targets_and_correlations(capsys):
    from sim.cli import main

    assert main(["ensemble", "--show"]) == 0
    out = capsys.readouterr().out
    frame = pd.read_parquet(S.ENSEMBLE)
    assert f"{len(frame)} members" in out
    for key in load_free_parameters():
        assert key in out
    for t in hm.fitted_targets():
        assert t.name in out
    assert "known gap: not selected on" in out  # the crime share, reported beside the rest



def test_sim_validate_ensemble_prints_each_fitted_target_with_the_members_interval(tmp_path, capsys):
    """``sim validate --ensemble``: beside each fitted target's simulated value, the 5-95% spread of the members'
    own check runs (the ensemble's interval), also in validation.csv; targets the ensemble holds no runs of go
    without one."""
    from sim.cli import main

    out = tmp_path / "v"
    main(["validate", "--ensemble", "--reps", "1", "--workers", "1", "--out", str(out),
          "--set", "population.scale_general=300", "--set", "population.scale_cjs_families=10"])
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "validation.csv").set_index("target")
    across = E.ensemble_targets(pd.read_parquet(S.ENSEMBLE)).set_index("target")
    for t in hm.fitted_targets():
        line = next(row for row in printed.splitlines() if f" {t.name} " in row)
        assert f"members 5-95%: {across.loc[t.name, 'p05']:.3f} to {across.loc[t.name, 'p95']:.3f}" in line
        assert table.loc[t.name, "members_p95"] == pytest.approx(across.loc[t.name, "p95"])
    baseline = load_scenario(BASELINE)
    secondary = [t.name for t in E.load_targets() if t.weight == 0 and t.applies_to(baseline)]
    assert secondary and table.loc[secondary, "members_p05"].isna().all()
    assert not any(name.startswith("da_") for name in table.index)  # partner abuse is off in the baseline


def test_short_of_sets_inside_every_band_candidates_are_the_least_loss_sets_not_ruled_out(monkeypatch):
    """When the emulators put fewer than ``n`` sets inside every band, the rest are those of least emulated loss
    among the sets not ruled out, then among the rest; never merely the first sets drawn."""
    cube = np.linspace(0, 1, 6)[:, None]
    worst = np.array([0.5, 9.0, 0.5, 0.5, 0.5, 0.5])  # set 1 ruled out
    metric = np.array([5.0, 0.1, 0.9, 0.3, 4.0, 0.0])  # band [-0.2, 0.2]: only set 5 inside; set 1 next but ruled out

    class Overall:
        def predict(self, points):
            return {"a": (metric[np.searchsorted(cube[:, 0], points[:, 0])], None)}

    monkeypatch.setattr(E, "candidates", lambda emulators, targets, n, seed: (cube, worst, 0.5))
    monkeypatch.setattr(E, "SEARCH_ROUNDS", 0)  # no search near the set inside (next test)
    toy = [Target("toy_a", 0.0, -0.2, 0.2, 1.0, "a", "short", "toy", "test")]
    picked = E.draw_candidates([], Overall(), toy, 4, seed=1)[:, 0]
    assert list(picked) == list(cube[[5, 3, 2, 4], 0])  # inside; then loss order 3, 2, 4 (1 ruled out, 0 worst)


def test_a_box_holding_enough_sets_inside_every_band_is_drawn_from_as_before(monkeypatch):
    """The search near the sets found only runs when the box holds too few: with enough, a round's draw is the same
    with or without it."""
    box = np.random.default_rng(0).random((300, 2))

    class Overall:
        def predict(self, points):
            return {"a": (points[:, 0], None)}

    monkeypatch.setattr(E, "candidates", lambda emulators, targets, n, seed: (box, np.zeros(len(box)), 0.5))
    toy = [Target("toy_a", 0.0, 0.0, 0.5, 1.0, "a", "short", "toy", "test")]
    with_search = E.draw_candidates([], Overall(), toy, 30, seed=3)
    monkeypatch.setattr(E, "SEARCH_ROUNDS", 0)
    assert np.array_equal(with_search, E.draw_candidates([], Overall(), toy, 30, seed=3))
    assert (with_search[:, 0] <= 0.5).all() and np.isin(with_search, box).all()


def test_a_small_region_inside_every_band_is_searched_near_the_sets_found_in_it(monkeypatch):
    """Where the search of the box finds only a few sets inside every band (a small region: here a disc of radius
    0.05 in two dimensions, 1% of the box), more are drawn near them, so a round's candidates are all inside, distinct
    and spread over the region, instead of being filled up with sets the emulators put outside."""
    centre = np.array([0.7, 0.3])
    box = np.random.default_rng(0).random((300, 2))

    class Overall:
        def predict(self, points):
            return {"a": (np.linalg.norm(points - centre, axis=1), None)}

    monkeypatch.setattr(E, "candidates", lambda emulators, targets, n, seed: (box, np.zeros(len(box)), 0.01))
    toy = [Target("toy_a", 0.0, 0.0, 0.05, 1.0, "a", "short", "toy", "test")]
    inside_box = int((np.linalg.norm(box - centre, axis=1) <= 0.05).sum())
    assert 0 < inside_box < 30
    picked = E.draw_candidates([], Overall(), toy, 30, seed=1)
    distance = np.linalg.norm(picked - centre, axis=1)
    assert len(picked) == 30 and (distance <= 0.05).all() and len(np.unique(picked, axis=0)) == 30
    assert distance.max() > 0.035 and (picked[:, 0] > centre[0]).any() and (picked[:, 0] < centre[0]).any()


def test_a_portfolio_keeps_the_values_its_programmes_set_and_their_calibration_choice():
    """Combining programmes: a calibrated key a programme sets itself is not replaced by a member; a programme at the
    point fit makes the combination run at the point fit."""
    from sim.state.scenario import combine_scenarios

    MULTI_AGENCY = BASELINE.parent / "multi_agency.toml"

    base = load_scenario(BASELINE, SHORT_1Y)
    own = load_scenario(MULTI_AGENCY, [*SHORT_1Y, "offending.youth_multiplier=0.123"])
    combined = combine_scenarios(base, [own])
    assert "offending.youth_multiplier" not in combined.ensemble.keys
    assert "justice.custody_log_odds_intercept" in combined.ensemble.keys
    drawn, member = with_member(combined, 5)
    assert member >= 0 and drawn.offending.youth_multiplier == 0.123
    assert drawn.justice.custody_log_odds_intercept != base.justice.custody_log_odds_intercept or member < 0
    pinned = combine_scenarios(base, [load_scenario(MULTI_AGENCY, [*SHORT_1Y, "run.calibration=point"])])
    assert pinned.ensemble is None and with_member(pinned, 5)[1] == -1


def test_resuming_a_batch_refuses_when_the_calibration_ensemble_has_changed(tmp_path):
    """A batch drawn from one ensemble is not finished from another: the manifest's checksum of the file must match."""
    import json

    from sim.runs.batch import run_batch

    out = tmp_path / "batch"
    run_batch(BASELINE, 2, 4, workers=1, out=out, overrides=SHORT_1Y)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["calibration_ensemble"]["sha256"]
    run_batch(BASELINE, 3, 4, workers=1, out=out, resume=True, overrides=SHORT_1Y)  # the same ensemble: resumes
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["calibration_ensemble"]["sha256"] = "0" * 64  # as if calibration/ensemble.parquet had been remade since
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ScenarioError, match="another calibration ensemble"):
        run_batch(BASELINE, 4, 4, workers=1, out=out, resume=True, overrides=SHORT_1Y)


def test_sim_ensemble_show_on_an_unreadable_file_is_one_clear_line(monkeypatch, tmp_path, capsys):
    from sim.cli import main

    bad = tmp_path / S.BASELINE_ENSEMBLE
    bad.parent.mkdir(parents=True)
    bad.write_text("not parquet")
    monkeypatch.setattr(S, "ROOT", tmp_path)
    assert main(["ensemble", "--show"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "cannot be read as an ensemble" in err[0]


def test_the_shipped_history_match_store_is_refused_as_an_earlier_model_s_but_otherwise_current():
    """`sim ensemble` replays calibration/history_matching/ only while its settings are today's: the model's revision,
    the baseline's text (by its hash), the free parameters and the targets. The shipped store was made by the model
    before the revision of 2026-12-06 (the drawn past's cautions), so a history match is refused rather than mixed
    with it (the baseline's ensemble is since then its recheck, next test). Everything else must stay current: an edit
    of scenarios/baseline.toml that leaves every run as it was (a source's wording) must update the store's
    scenario_sha256 with it."""
    settings = json.loads((hm.STORE / "settings.json").read_text())
    today = hm.store_settings(BASELINE, settings["points"], settings["reps"], settings["long_reps"], settings["seed"],
                              settings.get("overrides", ()))
    assert today["model"] == MODEL_REVISION and "model" not in settings
    with pytest.raises(ScenarioError, match="model revision"):
        hm.claim_store(hm.STORE, today)
    del today["model"]
    hm.claim_store(hm.STORE, today)  # raises where only the model differs no more (and writes nothing: the store exists)


def test_the_shipped_baseline_ensemble_is_the_history_match_s_checked_again_under_today_s_model():
    """The baseline's ensemble was made by --recheck, under today's model, from the ensemble of the model before (kept
    in calibration/rechecks/: itself a recheck, by the model of the morning of 2026-12-06, of the history match's),
    on the history match's check seeds and weights; its store resumes with today's baseline and model."""
    frame = pd.read_parquet(S.ENSEMBLE)
    assert frame["made_by"].str.startswith("sim ensemble --recheck").all()
    settings = json.loads((E.RECHECK_STORE / "baseline" / "settings.json").read_text())
    source = E.RECHECK_STORE / settings["recheck_of"]
    assert settings["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    made = pd.read_parquet(source)["made_by"]
    assert made.str.startswith("sim ensemble ").all() and made.str.contains("checked again under baseline.toml").all()
    history = json.loads((hm.STORE / "settings.json").read_text())
    assert (settings["seed"], settings["overrides"]) == (history["seed"], history["overrides"])
    assert (settings["model"], settings["scenario_sha256"]) == (MODEL_REVISION, E.scenario_digest(BASELINE))


def test_a_check_its_ten_year_runs_fail_gets_no_forty_year_runs(monkeypatch, tmp_path):
    """A candidate whose 10-year check runs already miss a target by more than their Monte Carlo error gets no 40-year
    runs (its 40-year metrics are NaN): the verdicts are those of the full check, at a little over half the cost."""
    targets = [Target("toy_a", -2.0, -2.2, -1.8, 1.0, "a", "short", "toy", "test"),
               Target("toy_b", math.log(0.5), math.log(0.5) - 0.1, math.log(0.5) + 0.1, 1.0, "b", "long", "toy", "test")]
    def response(params, seed: int) -> dict[str, float]:  # a 10-year run measures a, a 40-year one b
        both = toy_response(params, seed)
        return {"a": both["a"]} if params.run.years <= 10 else {"b": both["b"]}

    calls = toy_history_match(monkeypatch, response, FREE, targets, (hm, E))
    cube = np.array([[hm.to_cube(a, FREE["justice.custody_log_odds_intercept"]), hm.to_cube(0.5, FREE["offending.youth_multiplier"])]
                     for a in (-2.0, -1.0, -2.05)]
                    + [[hm.to_cube(-2.0, FREE["justice.custody_log_odds_intercept"]), hm.to_cube(1.0, FREE["offending.youth_multiplier"])],
                       [hm.to_cube(-2.215, FREE["justice.custody_log_odds_intercept"]), hm.to_cube(0.5, FREE["offending.youth_multiplier"])]])
    screened = E._check(BASELINE, FREE, cube, targets, targets, 3, 2, 5, 1, tmp_path / "screened.parquet", (), None, lambda s: None)
    assert screened["passes"].tolist()[:4] == [True, False, True, False]  # the fourth meets a (10 years), misses b (40)
    assert screened["b"].isna().tolist()[:4] == [False, True, False, False]
    # the last misses a's band by less than its Monte Carlo error: not shown to miss, so it gets its 40-year runs
    slack = E.CHECK_Z * screened.loc[4, "se:a"]
    assert -2.2 - slack <= screened.loc[4, "a"] < -2.2 and screened.loc[4, "passes"] and not np.isnan(screened.loc[4, "b"])
    assert sum(calls) == 5 * 3 + 4 * 2  # 10-year runs for all five, 40-year runs for the four that can still pass
    full = hm.evaluate(BASELINE, FREE, cube, targets, 3, 2, 5, 1, tmp_path / "full.parquet", log=lambda s: None)
    kept = screened["b"].notna().to_numpy()
    assert np.allclose(full.loc[kept, ["a", "b"]], screened.loc[kept, ["a", "b"]])
    verdicts = E.within_bands({t.metric: full[t.metric].to_numpy() for t in targets}, targets,
                              {t.metric: full[f"se:{t.metric}"].to_numpy() for t in targets}, E.CHECK_Z)
    assert verdicts.tolist() == screened["passes"].tolist()


def test_a_members_loss_grows_with_its_distance_from_each_target_in_half_bands():
    """``member_losses``: a member on every target has loss 0; one a half band off one target of weight 1 has 1; and
    the weights count."""
    targets = [Target("a", 1.0, 0.9, 1.1, 1.0, "m_a", "short", "", ""), Target("b", 0.3, 0.2, 0.4, 2.0, "m_b", "short", "", "")]
    frame = pd.DataFrame({"m_a": [1.0, 1.1, 1.0], "m_b": [0.3, 0.3, 0.2]})
    assert E.member_losses(frame, targets) == pytest.approx([0.0, 1.0, 2.0])


def test_write_point_puts_that_members_values_and_check_runs_in_fitted_toml(tmp_path):
    """The shipped ensemble's representative member, written as fitted.toml: every free parameter's value is the
    member's, its check runs' means are the achieved metrics, and the record names the member and its replicates."""
    frame = pd.read_parquet(S.ENSEMBLE)
    path = tmp_path / "fitted.toml"
    best = E.write_point(frame, path)
    assert best == int(np.argmin(E.member_losses(frame)))
    written = tomllib.loads(path.read_text())
    for key in load_free_parameters():
        sec, name = key.split(".")
        assert written[sec][name]["value"] == pytest.approx(frame.loc[best, S.VALUE + key], rel=1e-5), key
        assert f"member {best}" in written[sec][name]["source"]
    record = written["calibration"]
    for t in hm.fitted_targets([t for t in E.load_targets() if t.weight > 0]):
        assert record["achieved"][t.name]["simulated"] == pytest.approx(frame.loc[best, t.metric], rel=1e-3, abs=1e-4), t.name
    assert f"member {best} of {len(frame)}" in record["stage_joint"]["method"]
    assert record["stage_joint"]["replicates"] >= 1


def test_the_shipped_point_estimate_is_the_shipped_ensembles_member_of_least_loss():
    """calibration/fitted.toml holds the member ``sim ensemble --write-point`` picks from calibration/ensemble.parquet
    (a refit of one without the other shows here)."""
    frame = pd.read_parquet(S.ENSEMBLE)
    best = int(np.argmin(E.member_losses(frame)))
    fitted = tomllib.loads((E.CALIBRATION_DIR / "fitted.toml").read_text())
    for key in load_free_parameters():
        sec, name = key.split(".")
        assert fitted[sec][name]["value"] == pytest.approx(frame.loc[best, S.VALUE + key], rel=1e-5), key


def test_sim_ensemble_write_point_writes_fitted_toml_and_refuses_a_stale_ensemble(monkeypatch, tmp_path, capsys):
    from sim.cli import main

    monkeypatch.setattr(E, "CALIBRATION_DIR", tmp_path)
    assert main(["ensemble", "--show", "--write-point"]) == 0
    assert "-> calibration/fitted.toml" in capsys.readouterr().out
    assert (tmp_path / "fitted.toml").exists()
    stale = pd.read_parquet(S.ENSEMBLE).drop(columns=[S.VALUE + "family.propensity_heritability"])
    (tmp_path / S.BASELINE_ENSEMBLE).parent.mkdir(parents=True)
    stale.to_parquet(tmp_path / S.BASELINE_ENSEMBLE, index=False)
    monkeypatch.setattr(S, "ROOT", tmp_path)
    before = (tmp_path / "fitted.toml").read_text()
    assert main(["ensemble", "--show", "--write-point"]) == 2
    err = capsys.readouterr().err
    assert "family.propensity_heritability" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "fitted.toml").read_text() == before
