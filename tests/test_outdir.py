"""Output safety (issue 12, points 1, 5, 7): no command deletes or overwrites what it did not write, output paths
and schedulers are checked before any simulating, and two commands never write one folder at once.

The CLI runs in-process (``sim.cli.main``) where the command is refused before work, so these tests are fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import BASELINE, ROOT, SMALL
from sim.cli import main
from sim.runs.outdir import foreign_entries

SCENARIOS = ROOT / "scenarios"
SMALL_SET = [arg for o in SMALL for arg in ("--set", o)]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder):
    """Every file under ``folder`` with its bytes and modification time."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(code: int, out: str, err: str, *names) -> str:
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sim: error: ")
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def users_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's own notes")
    return folder


#: every command that writes a folder, as (argv before --out)
WRITERS = {
    "run": ["run", BASELINE, "--years", "1", *SMALL_SET],
    "batch": ["run", BASELINE, "--years", "1", "--reps", "2", "--workers", "1", *SMALL_SET],
    "compare": ["compare", BASELINE, SCENARIOS / "multi_agency.toml", "--reps", "1", "--years", "1", "--workers", "1", *SMALL_SET],
    "sweep": ["sweep", SCENARIOS / "multi_agency.toml", "--set", "intervention.intensity_hours_per_month=0,10", "--reps", "1",
              "--years", "1", "--workers", "1"],
    "validate": ["validate", "--reps", "1", "--workers", "1"],
}


@pytest.mark.parametrize("command", WRITERS)
def test_an_existing_folder_is_refused_by_every_command(capsys, tmp_path, command):
    folder = users_folder(tmp_path)
    before = snapshot(folder)
    line = one_error_line(*run_cli(capsys, *WRITERS[command], "--out", folder), folder, "already exists", "--force")
    assert "did not write" in line and "notes.txt" in line  # says --force would not help either
    assert ("--resume" in line) == (command == "batch")
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary or lock file left


@pytest.mark.parametrize("command", WRITERS)
def test_force_refuses_a_folder_holding_anything_sim_did_not_write(capsys, tmp_path, command):
    folder = users_folder(tmp_path)
    before = snapshot(folder)
    one_error_line(*run_cli(capsys, *WRITERS[command], "--out", folder, "--force"), folder, "notes.txt", "nothing was changed")
    assert snapshot(folder) == before


def test_force_replaces_a_run_folder_sim_wrote_and_nothing_else(capsys, tmp_path):
    out = tmp_path / "run"
    assert run_cli(capsys, *WRITERS["run"], "--out", out, "--seed", "1")[0] == 0
    first = json.loads((out / "manifest.json").read_text())
    line = one_error_line(*run_cli(capsys, *WRITERS["run"], "--out", out, "--seed", "2"), out, "already exists")
    assert "--force to replace it" in line  # ours, so --force is offered
    assert run_cli(capsys, *WRITERS["run"], "--out", out, "--seed", "2", "--force")[0] == 0
    second = json.loads((out / "manifest.json").read_text())
    assert (first["seed"], second["seed"]) == (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old folder is gone, no temporary left
    (out / "notes.txt").write_text("added by the user")  # now the folder holds something of the user's
    one_error_line(*run_cli(capsys, *WRITERS["run"], "--out", out, "--force"), out, "notes.txt")
    assert (out / "notes.txt").read_text() == "added by the user"


def test_force_replaces_a_batch_folder_and_resume_and_force_exclude_each_other(capsys, tmp_path):
    out = tmp_path / "batch"
    assert run_cli(capsys, *WRITERS["batch"], "--out", out)[0] == 0
    one_error_line(*run_cli(capsys, *WRITERS["batch"], "--out", out), out, "--resume", "--force")
    one_error_line(*run_cli(capsys, *WRITERS["batch"], "--out", out, "--force", "--resume"), "--resume", "--force")
    assert run_cli(capsys, *WRITERS["batch"][:-len(SMALL_SET)], *SMALL_SET, "--seed", "5", "--out", out, "--force")[0] == 0
    assert json.loads((out / "manifest.json").read_text())["root_seed"] == 5


def test_plot_never_overwrites_a_file_that_is_not_its_own_kind(capsys, tmp_path):
    folder = tmp_path / "cmp"
    assert run_cli(capsys, *WRITERS["compare"], "--out", folder)[0] == 0
    mine = tmp_path / "picture.png"
    mine.write_text("not an image: the user's file")
    one_error_line(*run_cli(capsys, "plot", folder, "--figure", "savings", "--out", mine), mine, "already exists", "--force")
    one_error_line(*run_cli(capsys, "plot", folder, "--figure", "savings", "--out", mine, "--force"), mine, "not", "PNG")
    assert mine.read_text() == "not an image: the user's file"
    new = tmp_path / "savings.png"
    assert run_cli(capsys, "plot", folder, "--figure", "savings", "--out", new)[0] == 0
    assert run_cli(capsys, "plot", folder, "--figure", "savings", "--out", new, "--force")[0] == 0  # a PNG: replaced
    assert run_cli(capsys, "report", folder)[0] == 0  # report and figures inside the folder stay sim's own files
    assert foreign_entries(folder) == []


@pytest.mark.parametrize("where", ["current folder", "parent of current folder", "through a file", "unwritable"])
@pytest.mark.parametrize("command", ["run", "batch", "compare"])
def test_output_paths_are_checked_before_simulating(capsys, tmp_path, monkeypatch, where, command):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("x\n1\n")
    monkeypatch.chdir(work)
    out = {"current folder": ".", "parent of current folder": "..", "through a file": "data.csv/results",
           "unwritable": "/sys/reoffsim-results"}[where]
    before = snapshot(tmp_path)
    t0 = time.perf_counter()
    one_error_line(*run_cli(capsys, *WRITERS[command], "--out", out), out)
    assert time.perf_counter() - t0 < 5  # refused before any simulation
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in work.iterdir()) == ["data.csv"]


@pytest.mark.parametrize("address,why", [
    ("notaurl", "cannot connect"),
    ("tcp://127.0.0.1:1", "cannot connect"),
    ("tcp://127.0.0.1:99999", "port"),
    ("http://127.0.0.1:8786", "protocol"),
    ("tcp://host name:8786", "address"),
])
def test_a_bad_scheduler_is_refused_before_work_and_leaves_nothing_that_blocks_a_retry(capsys, tmp_path, address, why):
    out = tmp_path / "batch"
    one_error_line(*run_cli(capsys, *WRITERS["batch"], "--scheduler", address, "--out", out), "--scheduler", why)
    assert list(tmp_path.iterdir()) == []
    assert run_cli(capsys, *WRITERS["batch"], "--out", out)[0] == 0  # the same folder, without the bad scheduler


def test_a_second_command_writing_the_same_folder_is_refused(capsys, tmp_path):
    """A process holding the folder's lock (as a running batch does) makes a second writer stop at once."""
    out = tmp_path / "batch"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from sim.runs.outdir import locked\n"
         "with locked(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)", str(out)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for command in ("batch", "run", "compare"):
            line = one_error_line(*run_cli(capsys, *WRITERS[command], "--out", out), out, "another sim command")
            assert f"pid {holder.pid}" in line
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(capsys, *WRITERS["batch"], "--out", out)[0] == 0  # a lock left by a killed process does not block


def test_foreign_entries_judges_by_the_manifest(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.csv").write_text("1")
    assert foreign_entries(folder) == ["a.csv"]  # no manifest: nothing is ours
    (folder / "manifest.json").write_text(json.dumps({"files": ["a.csv", "ts.parquet", "manifest.json"], "versions": {"reoffsim": "0"}}))
    assert foreign_entries(folder) == []
    (folder / "ts.parquet").mkdir()
    (folder / "ts.parquet" / "part-000001.parquet").write_bytes(b"")
    (folder / ".a.csv.tmp-123").write_text("")  # our own temporary name
    (folder / "figures").mkdir()
    (folder / "figures" / "x.png").write_bytes(b"")
    assert foreign_entries(folder) == []
    (folder / "ts.parquet" / "mine.txt").write_text("")
    (folder / "figures" / "notes.txt").write_text("")
    (folder / "b.csv").write_text("")
    assert foreign_entries(folder) == ["b.csv", "figures/notes.txt", "ts.parquet/mine.txt"]
    (folder / "manifest.json").write_text(json.dumps({"files": ["a.csv"], "versions": {"numpy": "2"}}))  # not ours
    assert "a.csv" in foreign_entries(folder)


def test_only_sims_own_temporary_names_count_as_ours(tmp_path):
    folder = tmp_path / "f"
    (folder / "ts.parquet").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"files": ["ts.parquet", "manifest.json"], "versions": {"reoffsim": "0"}}))
    for name in (".manifest.json.tmp-77", ".report.html.tmp", "ts.parquet/.part-000003.parquet.tmp-12"):
        (folder / name).write_text("")
    assert foreign_entries(folder) == []
    for name in (".analysis.tmpl", ".notes.tmp.txt", ".backup.tmp", "ts.parquet/.keep.tmp"):  # look alike, are the user's
        (folder / name).write_text("")
    assert foreign_entries(folder) == [".analysis.tmpl", ".backup.tmp", ".notes.tmp.txt", "ts.parquet/.keep.tmp"]


def test_force_through_a_symlink_replaces_the_batch_it_points_to(capsys, tmp_path):
    real = tmp_path / "real"
    assert run_cli(capsys, *WRITERS["batch"], "--out", real)[0] == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    code, _, err = run_cli(capsys, *WRITERS["batch"][:-len(SMALL_SET)], *SMALL_SET, "--seed", "9", "--out", link, "--force")
    assert code == 0, err
    assert link.is_symlink() and json.loads((real / "manifest.json").read_text())["root_seed"] == 9


def test_damaged_manifests_and_folders_are_refused_in_one_line(capsys, tmp_path):
    batch = tmp_path / "batch"
    assert run_cli(capsys, *WRITERS["batch"], "--out", batch)[0] == 0
    one_error_line(*run_cli(capsys, *WRITERS["batch"], "--reps", "1", "--out", batch, "--resume"), "2 replicates", "--reps 2")
    (batch / "manifest.json").write_text("{ not json")
    one_error_line(*run_cli(capsys, *WRITERS["batch"], "--out", batch, "--resume"), "manifest.json", "damaged")
    cmp = tmp_path / "cmp"
    assert run_cli(capsys, *WRITERS["compare"], "--out", cmp)[0] == 0
    (cmp / "comparison.csv").unlink()
    one_error_line(*run_cli(capsys, "report", cmp), "comparison.csv", "missing")
    one_error_line(*run_cli(capsys, "plot", cmp, "--figure", "savings"), "comparison.csv", "missing")
    (cmp / "manifest.json").write_text("[1, 2]")
    one_error_line(*run_cli(capsys, "report", cmp), "manifest")
    one_error_line(*run_cli(capsys, "report", batch), "manifest.json")


def test_a_figure_never_overwrites_a_file_that_is_not_a_png(capsys, tmp_path):
    cmp = tmp_path / "cmp"
    assert run_cli(capsys, *WRITERS["compare"], "--out", cmp)[0] == 0
    (cmp / "figures" / "timeseries.png").write_text("the user's notes, oddly named")
    one_error_line(*run_cli(capsys, "plot", cmp, "--figure", "timeseries"), "timeseries.png", "not a PNG")
    assert (cmp / "figures" / "timeseries.png").read_text() == "the user's notes, oddly named"
    assert not [p for p in (cmp / "figures").iterdir() if p.name.startswith(".")]  # no temporary left


def test_memory_is_checked_for_the_replicates_that_run_at_once(capsys, tmp_path):
    """--workers 100 with one replicate starts one process: not refused as if 100 ran."""
    code, _, err = run_cli(capsys, *WRITERS["batch"][:-len(SMALL_SET)], "--reps", "1", "--workers", "100", "--out", tmp_path / "b",
                           "--set", "population.scale_general=300", "--set", "population.scale_cjs_families=10", "--max-memory", "1")
    assert code == 0, err
    code, _, err = run_cli(capsys, *WRITERS["batch"][:-len(SMALL_SET)], "--reps", "100", "--workers", "100", "--out", tmp_path / "c",
                           "--set", "population.scale_general=300", "--set", "population.scale_cjs_families=10", "--max-memory", "1")
    assert code == 2 and "x 100 workers" in err


def test_a_peer_that_is_not_a_dask_scheduler_is_refused_within_its_deadline():
    import http.server
    import threading

    from sim.runs.preflight import check_scheduler
    from sim.state.scenario import ScenarioError

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the Dask client's bytes are not HTTP: no log of them in the test output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(ScenarioError, match="not as a Dask scheduler"):
            check_scheduler(f"tcp://127.0.0.1:{server.server_port}", handshake_timeout=2)
        assert time.perf_counter() - t0 < 30  # bounded, not for ever
    finally:
        server.shutdown()
        server.server_close()
