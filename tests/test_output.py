"""Run folders: the microdata schema, and atomic writes (a reader sees the old folder or the new one, never a mix)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import sim.runs.output as output
from sim.state.events import EVENT_NAMES
from sim.runs.output import write_run
from sim.state.scenario import ScenarioError

PEOPLE_COLUMNS = ["person_id", "sex", "birth_month", "father_id", "mother_id", "convicted_before_start", "status_at_start"]
EVENTS_COLUMNS = ["person_id", "month", "event", "offence_month"]
ISSUE_EVENTS = {"offence", "conviction", "custody_start", "release", "order_start", "order_end", "recall", "birth",
                "death", "exit", "licence_end"}
START_STATUSES = {"custody", "licence", "probation", "community", "child"}


@pytest.fixture(scope="module")
def written(audited, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "baseline"
    summary = write_run(audited.model, out, with_events=True)
    return out, summary


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_run_folder_files_and_manifest(written, audited):
    out, summary = written
    files = {p.name for p in out.iterdir()}
    assert files == {"timeseries.parquet", "summary.csv", "manifest.json", "people.parquet", "events.parquet"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == files
    assert manifest["seed"] == audited.model.seed
    assert manifest["months"] == audited.model.params.months
    assert manifest["parameters"]["justice"]["p_recall_per_month"] == audited.model.params.justice.p_recall_per_month
    assert manifest["summary"]["months"] == audited.model.params.months
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert list(ts["month"]) == list(range(audited.model.params.months))
    pd.testing.assert_frame_equal(ts, output.timeseries_frame(audited.model))
    csv = pd.read_csv(out / "summary.csv")
    assert len(csv) == 1 and csv["months"].iloc[0] == summary["months"]


def test_people_parquet_schema(written, frames, audited):
    out, _ = written
    people = pd.read_parquet(out / "people.parquet")
    assert PEOPLE_COLUMNS == list(people.columns)[: len(PEOPLE_COLUMNS)]
    assert people["person_id"].dtype == np.int64 and people["person_id"].is_unique
    assert set(people["sex"].astype(str)) == {"M", "F"}
    assert pd.api.types.is_integer_dtype(people["birth_month"])
    for col in ("father_id", "mother_id"):
        assert pd.api.types.is_integer_dtype(people[col])
        assert people[col].isna().any() and people[col].notna().any()  # nullable, and used
        assert people[col].dropna().isin(people["person_id"]).all()  # parents are people of the run
    assert people["convicted_before_start"].dtype == bool
    assert ((people["convictions_before_start"] > 0) == people["convicted_before_start"]).all()
    assert set(people["status_at_start"].astype(str)) == START_STATUSES
    # consistency between columns
    fathers = people.set_index("person_id").loc[people["father_id"].dropna().astype("int64"), "sex"]
    mothers = people.set_index("person_id").loc[people["mother_id"].dropna().astype("int64"), "sex"]
    assert (fathers.astype(str) == "M").all() and (mothers.astype(str) == "F").all()
    offenders = people["status_at_start"].isin(["custody", "licence", "probation"])
    assert people.loc[offenders, "convicted_before_start"].all()
    # children start with a record only from the age of criminal responsibility (offending.record_past_convictions)
    too_young = -people["birth_month"] < 12 * audited.model.params.family.age_criminal_responsibility
    assert not people.loc[(people["status_at_start"] == "child") & too_young, "convicted_before_start"].any()
    pd.testing.assert_frame_equal(people, frames[0], check_categorical=False, check_dtype=False)


def test_events_parquet_schema(written, frames, audited):
    out, _ = written
    events = pd.read_parquet(out / "events.parquet")
    assert EVENTS_COLUMNS == list(events.columns)[: len(EVENTS_COLUMNS)]
    assert "offence_type" in events.columns
    assert pd.api.types.is_integer_dtype(events["person_id"]) and pd.api.types.is_integer_dtype(events["month"])
    assert ISSUE_EVENTS <= set(events["event"].cat.categories)
    assert set(events["event"].cat.categories) == set(EVENT_NAMES)
    assert set(events["event"].astype(str)) >= {"offence", "conviction", "release", "birth"}
    people = pd.read_parquet(out / "people.parquet")
    assert events["person_id"].isin(people["person_id"]).all()
    assert events["month"].between(0, audited.model.params.months - 1).all()
    about_offence = events["event"].isin(["offence", "conviction", "caution"])  # a caution disposes of a proven offence, as a conviction does
    assert events.loc[about_offence, "offence_month"].notna().all()
    assert events.loc[~about_offence, "offence_month"].isna().all()
    assert events.loc[about_offence, "offence_type"].notna().all()
    assert (events.loc[events["event"] == "offence", "offence_month"] == events.loc[events["event"] == "offence", "month"]).all()
    # sorted by month
    assert events["month"].is_monotonic_increasing
    pd.testing.assert_frame_equal(events, frames[1], check_categorical=False, check_dtype=False)


def test_without_events_no_microdata(audited, tmp_path):
    out = tmp_path / "run"
    write_run(audited.model, out, with_events=False)
    assert {p.name for p in out.iterdir()} == {"timeseries.parquet", "summary.csv", "manifest.json"}


def test_write_replaces_only_its_own_folder_and_then_wholly(audited, tmp_path):
    out = tmp_path / "run"
    write_run(audited.model, out, with_events=True)
    with pytest.raises(ScenarioError, match="already exists"):  # not without being asked
        write_run(audited.model, out, with_events=False)
    write_run(audited.model, out, with_events=False, force=True)
    assert not (out / "events.parquet").exists()  # the old folder is replaced as a whole
    assert (out / "manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary or old folders left behind
    (out / "stale.txt").write_text("the user's file")
    before = snapshot(out)
    with pytest.raises(ScenarioError, match="stale.txt"):  # a folder holding anything else is never replaced
        write_run(audited.model, out, with_events=False, force=True)
    assert snapshot(out) == before


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_while_writing_leaves_the_old_folder_intact(audited, tmp_path, monkeypatch, error):
    out = tmp_path / "run"
    write_run(audited.model, out, with_events=True)
    before = snapshot(out)

    def broken(*args, **kwargs):  # fails after the parquet files are already written to the temporary folder
        raise error("disk full")

    monkeypatch.setattr(output, "manifest", broken)
    with pytest.raises(error):
        write_run(audited.model, out, with_events=False, force=True)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_failure_on_a_first_write_creates_nothing(audited, tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError):
        write_run(audited.model, tmp_path / "run", with_events=True)
    assert list(tmp_path.iterdir()) == []
