"""`sim noise`: the noise of one replicate at each general-population weight, for choosing the default weight."""

from __future__ import annotations

import json

from conftest import BASELINE
from sim.cli import main
from sim.fitting.noise import noise_by_weight


def test_finer_weights_mean_more_agents_and_less_noise():
    """Ten times finer general-population agents: more agents, and children convicted a year (mostly general
    population) vary less between replicates on the same seeds."""
    table = noise_by_weight(BASELINE, [400.0, 40.0], reps=4, seed=3, workers=1,
                            overrides=["run.years=4", "population.scale_cjs_families=10"]).set_index("weight")
    coarse, fine = table.loc[400.0], table.loc[40.0]
    assert fine["agents"] > 3 * coarse["agents"]
    assert fine["children_convicted_cv"] < coarse["children_convicted_cv"]
    for col in ("prison_rate_sd", "probation_rate_sd", "children_convicted_cv", "seconds"):
        assert (table[col] > 0).all(), col


def test_noise_refuses_one_replicate_and_prints_json(capsys):
    assert main(["noise", "--reps", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["noise", "--weights", ""]) == 2
    assert "at least one weight" in capsys.readouterr().err
    assert main(["noise", "--weights", "400", "--reps", "2", "--workers", "1", "--set", "run.years=3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["weight"] for r in rows] == [400.0] and set(rows[0]) >= {"agents", "seconds", "prison_rate_sd", "meets"}
