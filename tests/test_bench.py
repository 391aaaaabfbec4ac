"""``sim bench`` (issue 13, point 2): the fixed reference kernel, the table against the targets, the README updater
(only ever on a temporary copy of the README), and a tiny benchmark run through the command line. No timing is
asserted: the figures of a benchmark are for reading."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from conftest import BASELINE, ROOT
from sim import bench
from sim.cli import main as cli_main

README = ROOT / "README.md"


def test_reference_kernel_is_fixed():
    # the reference units of every recorded run depend on this workload staying the same: never update this number
    assert bench.reference_kernel() == 1_098_384_755
    assert bench.reference_kernel() == 1_098_384_755


def _fake_results(**batch) -> bench.Results:
    cs = bench.cases(BASELINE, 10, 3, quick=False)
    times = {"default": (0.1, 0.3, 0.05, 0.05, None), "weight5": (0.5, 2.0, 0.3, 0.2, None), "full": (2.0, 6.0, 0.5, 0.5, 5.5e9)}
    for c in cs:
        b, r, o, w, peak = times[c.key]
        c.timing = bench.Timing(b, r, o, w, agents_start=47_100, agents_end=48_000, peak_rss_bytes=peak)
    res = bench.Results(0.1, cs, 10.0, workers=2, day="2026-12-02", cores=2, cpu="Test CPU", commit="abc1234")
    for k, v in batch.items():
        setattr(res, k, v)
    return res


def test_cases_follow_the_scenario_and_the_issue():
    by = {c.key: c for c in bench.cases(BASELINE, 10, 3, quick=False)}
    from sim import load_scenario

    pop = load_scenario(BASELINE).population
    assert (by["default"].general, by["default"].cjs) == (pop.scale_general, pop.scale_cjs_families)
    assert by["default"].overrides == ["run.years=10"]  # the scenario as it stands
    assert (by["weight5"].general, by["weight5"].cjs) == (5.0, min(pop.scale_cjs_families, 5.0))
    assert (by["full"].general, by["full"].cjs) == (1.0, 1.0)
    assert "population.scale_general=1.0" in by["full"].overrides and "population.scale_cjs_families=1.0" in by["full"].overrides
    assert [by[k].repeats for k in ("default", "weight5", "full")] == [3, 2, 1]
    for c in by.values():  # every override is one load_scenario accepts
        load_scenario(BASELINE, c.overrides)


def test_verdicts_and_reference_units():
    res = _fake_results(batch_reps=100, batch_wall_s=20.0)  # 0.2 s a replicate: 200 s for 1,000
    rows = {r[0]: r for r in res.target_rows()}
    assert rows["one replicate, default weights, with outputs"][1:] == ["0.50 s", "5.0", "<= 0.6 s", "meets"]
    assert rows["one replicate, weight 5"][1:] == ["3.00 s", "30.0", "<= 2 s", "misses"]
    assert rows["full scale, time"][1:] == ["9.00 s", "90.0", "<= 10 s", "meets"]
    assert rows["full scale, peak memory"][1:] == ["5.50 GB", "", "<= 4 GB", "misses"]
    assert rows["1,000 replicates, 2 workers"][1:] == ["3.3 min (projected from 100)", "2,000", "<= 5 min on 2 cores", "meets"]
    assert res.efficiency() == pytest.approx(0.5 / (0.2 * 2))
    measured = _fake_results(batch_reps=1000, batch_wall_s=400.0)
    assert {r[0]: r for r in measured.target_rows()}["1,000 replicates, 2 workers"][1:3] == ["6.7 min (measured)", "4,000"]
    assert {r[0]: r for r in measured.target_rows()}["1,000 replicates, 2 workers"][-1] == "misses"
    md = bench.render_markdown(res)
    prose = " ".join(md.split())  # the prose is wrapped as the README is
    assert "reference kernel 100 ms = 1 reference unit, timed again beside each figure" in prose and "2 cores (Test CPU)" in prose and "2026-12-02" in prose
    assert all(len(line) <= 115 for line in md.splitlines() if not line.startswith("|"))
    assert "| one replicate, weight 5 | 3.00 s | 30.0 | ≤ 2 s | misses |" in md


def test_the_readme_has_one_marked_speed_block():
    text = README.read_text()
    start, end = bench.check_markers(text)
    assert text.index("## Speed") < start < end < text.index("## Layout")


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    os.chmod(copy, 0o640)
    before = copy.read_text()
    bench.update_readme(copy, "| new | table |\n|---|---|\n| 1 | 2 |\n")
    after = copy.read_text()
    head = before[: before.index(bench.README_START) + len(bench.README_START)]
    tail = before[before.index(bench.README_END):]
    assert after == head + "\n| new | table |\n|---|---|\n| 1 | 2 |\n" + tail
    assert stat.S_IMODE(copy.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary left behind
    bench.update_readme(copy, bench.render_markdown(_fake_results()))
    again = copy.read_text()
    assert again.startswith(head) and again.endswith(tail) and "Test CPU" in again
    assert README.read_text() == before  # the real README untouched


@pytest.mark.parametrize("text", [
    "# readme\n\n## Speed\n\nno markers here\n",
    f"# readme\n{bench.README_START}\nonly the start\n",
    f"# readme\n{bench.README_END}\nreversed\n{bench.README_START}\n",
    f"# readme\n{bench.README_START}\n{bench.README_END}\n{bench.README_START}\n{bench.README_END}\n",
])
def test_update_readme_refuses_without_markers(tmp_path, capsys, text):
    copy = tmp_path / "README.md"
    copy.write_text(text)
    with pytest.raises(bench.MarkersMissing):
        bench.update_readme(copy, "x")
    # the command refuses in one line, before any benchmark runs (this returns at once), and writes nothing
    assert cli_main(["bench", "--update-readme", "--readme", str(copy)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "bench:start" in err and "nothing written" in err
    assert copy.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_update_readme_refused_with_quick(tmp_path, capsys):
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    assert cli_main(["bench", "--quick", "--update-readme", "--readme", str(copy)]) == 2
    assert "--quick" in capsys.readouterr().err
    assert copy.read_text() == README.read_text()


def test_quick_bench_prints_every_row(capsys):
    assert cli_main(["bench", "--scenario", str(BASELINE), "--quick", "--no-full", "--workers", "1", "--batch-reps", "2", "--repeats", "1"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    for row in ("default weights", "weight 5", "full scale, own process", "one replicate, default weights, with outputs",
                "one replicate, weight 5", "full scale, time", "full scale, peak memory", "1,000 replicates, 1 worker",
                "reference kernel", "Batch of 2 replicates"):
        assert row in out, row
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert lines["one replicate, default weights, with outputs"].rstrip().endswith(("meets", "misses"))
    assert lines["1,000 replicates, 1 worker"].rstrip().endswith(("meets", "misses"))
    assert "skipped (--no-full)" in lines["full scale, time"]
    assert "--quick" in out  # the figures say they are not benchmark figures
    stages = [line.split("]")[0] for line in captured.err.splitlines() if line.startswith("bench [")]
    assert stages == [f"bench [{k}/6" for k in range(1, 7)]  # a progress line per stage
    assert "offending" in lines and "whole replicate" in lines  # where the time goes


def test_time_by_process_times_each_process_and_puts_everything_back():
    """On a real replicate: each process of the month (in the build's simulated past too) has its own time, the rows
    add up to no more than the whole, and every wrapped function is the original again afterwards (the exclusive
    times and the failures: the two tests below)."""
    from sim import load_scenario

    def originals():
        return [getattr(*bench.timed_place(module, name)) for _, module, name in bench.PROCESS_TIMERS]

    before = originals()
    quick = next(c for c in bench.cases(BASELINE, 1, 1, quick=True) if c.key == "default")
    params = load_scenario(BASELINE, quick.overrides)
    times = bench.time_by_process(params, seed=7)
    assert originals() == before
    for phase, label in (("build", "offending"), ("run", "offending"), ("build", "synthesis of the start"),
                         ("run", "family (partners, births)"), ("run", "Mesa agents (register, remove, release)"),
                         ("run", "outputs (series, metrics, costs)")):
        assert times.seconds[(phase, label)] > 0, (phase, label)
    assert ("build", "family (partners, births)") not in times.seconds  # the past has no births or partnerships
    for phase, whole in (("build", times.build), ("run", times.run)):
        assert sum(v for (ph, _), v in times.seconds.items() if ph == phase) <= whole
    rows = {r[0]: r for r in times.rows()}
    assert rows["whole replicate"][1:] == [f"{times.build:.2f} s", f"{times.run:.2f} s", "100%"]
    assert "the rest (glue, arrays, copies)" in rows


def test_timers_count_each_function_s_own_time_also_when_it_raises(monkeypatch):
    """On a clock the functions move themselves: an outer function's time leaves out the inner one's it calls, an
    inner call that raises is counted up to the raise, and afterwards the originals are back."""
    import sys
    import types

    clock = [0.0]
    fake = types.ModuleType("fake_processes")

    def inner(fail=False):
        clock[0] += 2.0
        if fail:
            raise RuntimeError("inner failed")

    def outer():
        clock[0] += 1.0
        fake.inner()
        clock[0] += 3.0
        try:
            fake.inner(fail=True)
        except RuntimeError:
            pass
        clock[0] += 0.5

    fake.inner, fake.outer = inner, outer
    monkeypatch.setitem(sys.modules, "fake_processes", fake)
    monkeypatch.setattr(bench, "PROCESS_TIMERS", (("outer", "fake_processes", "outer"), ("inner", "fake_processes", "inner")))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    timers = bench._Timers()
    fake.outer()
    timers.phase = "run"
    with pytest.raises(RuntimeError):
        fake.inner(fail=True)
    timers.restore()
    assert timers.seconds == {("build", "outer"): 4.5, ("build", "inner"): 4.0, ("run", "inner"): 2.0}
    assert timers._stack == [] and fake.outer is outer and fake.inner is inner


def test_timers_put_back_what_they_wrapped_when_one_cannot_be_found(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("fake_processes")
    fake.step = step = lambda: None
    monkeypatch.setitem(sys.modules, "fake_processes", fake)
    monkeypatch.setattr(bench, "PROCESS_TIMERS", (("step", "fake_processes", "step"), ("gone", "fake_processes", "no_such")))
    with pytest.raises(AttributeError):
        bench._Timers()
    assert fake.step is step


def test_one_replicate_in_a_fresh_process():
    full = next(c for c in bench.cases(BASELINE, 1, 1, quick=True) if c.key == "full")
    t = bench.time_in_fresh_process(BASELINE, full.overrides, seed=7)
    assert t.peak_rss_bytes > 50e6  # the child's own: Python, numpy, pandas, Mesa and the replicate
    assert min(t.build, t.run, t.outputs, t.write) > 0 and t.agents_start > 0
    with pytest.raises(RuntimeError, match="failed"):
        bench.time_in_fresh_process(BASELINE, ["population.no_such_key=1"], seed=7)


def test_units_are_against_the_reference_timed_beside_each_figure():
    """A figure measured while the machine ran at half speed (its reference kernel took twice as long) has the same
    units as at full speed; without a reference beside it, the one at the start counts."""
    res = _fake_results(batch_reps=100, batch_wall_s=20.0, batch_reference_s=0.2)
    res.case("default").timing.reference_s = 0.2  # 0.5 s against a reference of 200 ms
    rows = {r[0]: r for r in res.target_rows()}
    assert rows["one replicate, default weights, with outputs"][1:3] == ["0.50 s", "2.5"]
    assert rows["one replicate, weight 5"][1:3] == ["3.00 s", "30.0"]  # no reference beside it: 100 ms
    assert rows["1,000 replicates, 2 workers"][2] == "1,000"  # 200 s against 200 ms


def test_against_times_each_checkout_with_its_own_engine(tmp_path):
    """``sim bench --against``: each round runs each checkout's own engine in a fresh process, not the installed copy.
    Here the other checkout is a copy of this one whose engine fails: the comparison must say so."""
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(f'extends = "{BASELINE.resolve()}"\n[run]\nyears = {{ value = 1, unit = "years" }}\n[population]\n'
                    'scale_general = { value = 4000, unit = "real people per agent" }\n'
                    'scale_cjs_families = { value = 200, unit = "real people per agent" }\n')
    res = bench.compare_engines(ROOT, tiny, rounds=2, repeats=1)
    assert len(res["this"]) == len(res["other"]) == 2 and min(res["this"] + res["other"]) > 0
    other = tmp_path / "other"
    shutil.copytree(ROOT / "sim", other / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    (other / "sim" / "runs" / "batch.py").write_text("raise ImportError('the copy, not the installed engine')\n")
    with pytest.raises(RuntimeError, match="the copy, not the installed engine"):
        bench.compare_engines(other, tiny, rounds=1, repeats=1)


@pytest.mark.parametrize("args", [["--against", "{tmp}"], ["--against", "{root}", "--update-readme"]])
def test_against_refuses_what_it_cannot_compare(tmp_path, capsys, args):
    args = [a.format(tmp=tmp_path, root=ROOT) for a in args]
    assert cli_main(["bench", *args]) == 2
    assert capsys.readouterr().err.count("sim: error:") == 1


def test_against_stops_an_engine_that_hangs(tmp_path, monkeypatch):
    other = tmp_path / "other"
    shutil.copytree(ROOT / "sim", other / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    (other / "sim" / "runs" / "batch.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setattr(bench, "AGAINST_TIMEOUT", 3)
    with pytest.raises(RuntimeError, match="took more than 3 s"):
        bench.compare_engines(other, BASELINE, rounds=1, repeats=1)


def test_by_process_prints_where_the_time_goes(capsys):
    assert cli_main(["bench", "--scenario", str(BASELINE), "--by-process", "--quick"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    for row in ("offending", "needs", "courts", "synthesis of the start", "whole replicate"):
        assert row in lines, row
    assert lines["whole replicate"].rstrip().endswith("100%")


@pytest.mark.parametrize("extra", [["--update-readme"], ["--against", "."]])
def test_by_process_is_a_table_of_its_own(extra, capsys):
    assert cli_main(["bench", "--by-process", "--quick", *extra]) == 2
    assert "--by-process" in capsys.readouterr().err
