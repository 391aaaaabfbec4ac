"""Agents made and removed in bulk (``sim.state.agents.create_agents`` / ``remove_agents``, behind
``ReoffendingModel.add_agents`` / ``remove_agents``) leave the model exactly as Mesa's own per-agent path does,
and the per-agent path is taken whenever Mesa is not as the fast path expects."""

from __future__ import annotations

import contextlib
import gc
import logging
import weakref

import mesa
import numpy as np
import pytest

import sim.state.agents as agents_mod
from sim import ReoffendingModel
from sim.state.agents import Person, bulk_refusal

from conftest import SMALL, load

LOGGER = "sim.state.agents"


class Bare(mesa.Model):
    """A model with the ReoffendingModel's agent bookkeeping and nothing else."""

    add_agents = ReoffendingModel.add_agents
    remove_agents = ReoffendingModel.remove_agents
    agent_at = ReoffendingModel.agent_at

    def __init__(self, seed: int = 5):
        super().__init__(rng=seed)
        self._agents_by_row: list[Person | None] = []
        self.n_rows = 0

    def grow(self, n: int) -> None:
        self.add_agents(np.arange(self.n_rows, self.n_rows + n))
        self.n_rows += n


@contextlib.contextmanager
def ordinary():
    """Every batch takes Mesa's per-agent path (as the code did before the fast path)."""
    saved = agents_mod.BULK_MIN
    agents_mod.BULK_MIN = 10**12
    try:
        yield
    finally:
        agents_mod.BULK_MIN = saved


def state(model) -> dict:
    """Everything Mesa keeps about the model's agents, with agents named by unique_id and row."""
    tag = lambda a: (a.unique_id, a.row)  # noqa: E731
    out = {
        "agents": [tag(a) for a in model.agents],
        "len": len(model.agents),
        "by_type": {t.__name__: [tag(a) for a in s] for t, s in model.agents_by_type.items()},
        "attributes": [[(k, v) for k, v in vars(a).items() if k != "model"] for a in model.agents],
        "models": {id(a.model) for a in model.agents} <= {id(model)},
        "by_row": [None if a is None else tag(a) for a in model._agents_by_row],
    }
    if isinstance(vars(model).get("_agents"), dict):  # Mesa < 3.5
        out["_agents"] = [tag(a) for a in model._agents]
    for name, agentset in [("all", model.agents)] + [(t.__name__, s) for t, s in model.agents_by_type.items()]:
        inner = agentset._agents
        if isinstance(inner, weakref.WeakKeyDictionary):  # each key a weak reference with the set's own callback
            out[name] = [(type(r), tag(r()), r.__callback__ is inner._remove, v) for r, v in inner.data.items()]
            out[name + " flags"] = (inner._dirty_len, list(inner._pending_removals), set(inner._iterating))
        else:
            out[name] = [(tag(a), v) for a, v in inner.items()]
    return out


def next_unique_id(model) -> int:
    """Make one more agent the ordinary way and return its unique_id (the counter's state)."""
    return Person(model, -1).unique_id


def bulk_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and "in bulk" in r.getMessage()]


BATCHES = [300, 40, 5, 31, 32, 200]


def build(batches=BATCHES) -> Bare:
    model = Bare()
    for n in batches:
        model.grow(n)
    return model


def test_the_fast_path_applies_to_the_installed_mesa():
    """If this fails, a new Mesa registers agents in a way the fast path does not know: every batch is now made
    one agent at a time (correct, but ~3-5x slower); see sim/state/agents.py."""
    model = build([40])
    assert bulk_refusal(model) is None
    assert bulk_refusal(model, removing=True) is None
    real = ReoffendingModel(load(*SMALL, "run.years=1"), seed=3)
    assert bulk_refusal(real) is None and bulk_refusal(real, removing=True) is None


def test_bulk_creation_leaves_the_model_as_the_ordinary_path(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    bulk = build()
    assert bulk_messages(caplog) == [f"created {n} agents in bulk" for n in BATCHES if n >= agents_mod.BULK_MIN]
    with ordinary():
        plain = build()
    assert state(bulk) == state(plain)
    assert len(bulk.agents) == sum(BATCHES) == len(bulk.agents_by_type[Person])
    assert [a.unique_id for a in bulk.agents] == list(range(1, sum(BATCHES) + 1))
    assert next_unique_id(bulk) == next_unique_id(plain) == sum(BATCHES) + 1
    assert all(bulk.agent_at(r).row == r for r in range(sum(BATCHES)))


class Other(mesa.Agent):
    """Another kind of agent a researcher might add to the model."""

    def __init__(self, model):
        super().__init__(model)
        self.row = -1


def test_bulk_creation_beside_agents_of_another_type(caplog):
    def run():
        model = Bare()
        others = [Other(model) for _ in range(3)]
        model.grow(100)
        others.append(Other(model))
        model.grow(50)
        model.remove_agents(np.arange(20, 90))
        others[1].remove()
        model.grow(40)
        return model, others

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    (bulk, _), messages = run(), bulk_messages(caplog)
    assert messages[:2] == ["created 100 agents in bulk", "created 50 agents in bulk"]
    with ordinary():
        plain, _ = run()
    assert state(bulk) == state(plain)
    assert len(bulk.agents) == 3 + 190 - 70 and len(bulk.agents_by_type[Other]) == 3
    assert next_unique_id(bulk) == next_unique_id(plain) == 4 + 190 + 1


def test_bulk_agents_work_with_agentset_operations():
    model = build()
    agents = model.agents
    n = len(agents)
    assert all(isinstance(a, Person) for a in agents) and agents[0].row == 0 and agents[-1].row == n - 1
    assert model.agent_at(7) in agents and model.agent_at(7) in model.agents_by_type[Person]
    even = agents.select(lambda a: a.row % 2 == 0)
    assert len(even) == (n + 1) // 2 and all(a.row % 2 == 0 for a in even)
    assert len(agents.select(at_most=10)) == 10 and len(agents.select(agent_type=Person)) == n
    assert agents.agg("row", sum) == n * (n - 1) // 2 and agents.agg("unique_id", max) == n
    assert agents.map(lambda a: a.row) == list(range(n))
    seen = []
    agents.shuffle_do(lambda a: seen.append(a.row))
    assert sorted(seen) == list(range(n)) and seen != list(range(n))
    seen.clear()
    model.agents_by_type[Person].do(lambda a: seen.append(a.row))
    assert seen == list(range(n))
    assert [a.row for a in agents.sort("row", ascending=True)] == list(range(n))
    assert agents.groupby(lambda a: a.row % 3).count() == {k: len(range(k, n, 3)) for k in range(3)}
    agents.shuffle(inplace=True)  # Mesa's own in-place shuffle keeps the weak references as they are
    assert sorted(a.row for a in agents) == list(range(n))
    doomed = model.agent_at(4)
    doomed.remove()  # Mesa's own removal of a bulk-made agent
    assert doomed not in agents and doomed not in model.agents_by_type[Person]
    assert len(agents) == n - 1 == len(model.agents_by_type[Person])
    doomed.remove()  # again: nothing happens, as in Mesa
    assert len(agents) == n - 1
    model._agents_by_row[4] = None
    del doomed
    gc.collect()  # nothing else holds it: it leaves the weak AgentSets made from the model's too
    assert len(even) == (n + 1) // 2 - 1


def test_bulk_removal_leaves_the_model_as_the_ordinary_path(caplog):
    def run():
        model = build()
        model.agent_at(3).remove()  # removed by hand first: remove_agents must skip it as Agent.remove() does
        model.remove_agents(np.array([0, 3, 5, 5, 9]))  # a few, one listed twice
        model.remove_agents(np.arange(100, 400, 2))  # many
        model.remove_agents(np.arange(100, 140))  # many, half of them already gone
        model.grow(60)
        model.remove_agents(np.arange(len(model._agents_by_row) - 50, len(model._agents_by_row)))
        return model

    caplog.set_level(logging.DEBUG, logger=LOGGER)
    bulk = run()
    assert "removed 150 agents in bulk" in bulk_messages(caplog)
    with ordinary():
        plain = run()
    assert state(bulk) == state(plain)
    gone = [0, 3, 5, 9, *range(100, 400, 2), *range(100, 140), *range(len(bulk._agents_by_row) - 50, len(bulk._agents_by_row))]
    assert all(bulk.agent_at(r) is None for r in gone)
    assert not {a.row for a in bulk.agents} & set(gone)
    assert len(bulk.agents) == len(bulk._agents_by_row) - len(set(gone)) == len(bulk.agents_by_type[Person])
    assert next_unique_id(bulk) == next_unique_id(plain)


def test_removed_agents_are_freed():
    model = build([100])
    refs = [weakref.ref(model.agent_at(r)) for r in range(50)]
    model.remove_agents(np.arange(50))
    gc.collect()
    assert all(r() is None for r in refs) and len(model.agents) == 50


def test_remove_agents_with_unregistered_agents_is_as_agent_remove():
    """An agent missing from one of Mesa's containers: Agent.remove() stops at the first KeyError; so must we."""

    def run():
        model = build([100])
        odd = model.agent_at(10)
        del model.agents_by_type[Person]._agents[odd]  # registered with the model and model.agents only
        agentset_of_odd = model.agents
        model.remove_agents(np.arange(0, 60))
        return model, odd in agentset_of_odd

    bulk, bulk_odd = run()
    with ordinary():
        plain, plain_odd = run()
    assert state(bulk) == state(plain) and bulk_odd == plain_odd


def fallback_run() -> Bare:
    model = build()
    model.remove_agents(np.arange(50, 150))
    model.grow(80)
    return model


def test_the_ordinary_path_when_mesa_is_not_as_expected(monkeypatch, caplog):
    """The detection refuses (as it would for an unknown Mesa): every batch is made one agent at a time, same state."""

    def refuse(*args, **kwargs):
        raise agents_mod._Refused("unknown Mesa (test)")

    with ordinary():
        plain = fallback_run()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    monkeypatch.setattr(agents_mod, "_plan", refuse)
    assert bulk_refusal(Bare()) == "unknown Mesa (test)"
    model = fallback_run()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages and not bulk_messages(caplog) and all(m.endswith("one by one: unknown Mesa (test)") for m in messages)
    assert state(model) == state(plain)


def test_the_ordinary_path_when_the_first_agent_is_not_as_expected(monkeypatch, caplog):
    """The batch's first agent, made the ordinary way, does not look as the fast path would make it (here: Person
    gained an attribute): it is kept, and the rest of the batch is made the ordinary way too."""
    with ordinary():
        plain = fallback_run()
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    monkeypatch.setattr(agents_mod, "_ATTRS", ["model", "unique_id", "pos", "row", "new_attribute"])
    model = fallback_run()
    assert not any("created" in m for m in bulk_messages(caplog))
    assert any("has attributes" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    assert state(model) == state(plain)


def test_the_ordinary_path_when_mesa_debug_logging_is_on(caplog):
    """Someone debugging Mesa gets its message for every agent."""
    model = build([40])
    mesa_logger = getattr(mesa.Model.register_agent, "__wrapped__", mesa.Model.register_agent).__globals__["_mesa_logger"]
    caplog.set_level(logging.DEBUG, logger=mesa_logger.name)
    assert "debug logging" in bulk_refusal(model)
    model.grow(50)
    assert sum("registered Person" in r.getMessage() for r in caplog.records) == 50


@pytest.mark.skipif(not hasattr(mesa.Model, "observe"), reason="Mesa < 3.5 has no model signals")
def test_the_ordinary_path_when_someone_observes_agents_arriving():
    from mesa.experimental.mesa_signals import ModelSignals

    model = build([40])
    heard = []

    def handler(signal):
        heard.append(signal)

    model.observe("agents", ModelSignals.AGENT_ADDED, handler)
    assert bulk_refusal(model) is not None and bulk_refusal(model, removing=True) is None
    model.grow(50)
    assert len(heard) == 50


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_is_restored(enabled):
    model = Bare()
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        model.grow(100)
        assert gc.isenabled() == enabled
        agents_mod.create_agents(Bare(), list(range(100)))
        assert gc.isenabled() == enabled
        model.remove_agents(np.arange(20, 80))
        assert gc.isenabled() == enabled
    finally:
        gc.enable() if was else gc.disable()


def test_a_real_model_is_the_same_with_and_without_the_fast_path():
    """A small model run a few months: same agents, same unique_ids, same results."""
    params = load(*SMALL, "run.years=1")

    def run():
        model = ReoffendingModel(params, seed=11).run(4)
        return model, model.datacollector.get_model_vars_dataframe()

    bulk, bulk_df = run()
    with ordinary():
        plain, plain_df = run()
    assert state(bulk) == state(plain)
    assert bulk_df.equals(plain_df)
    present = np.flatnonzero(bulk.people.view("present"))
    assert sorted(a.row for a in bulk.agents) == present.tolist()


def test_a_model_and_its_agents_are_freed_once_dropped():
    """Mesa 3.3 keeps every model it has seen in ``Agent._ids`` (mesa/mesa#3179): a batch worker grew by a replicate
    with each replicate it ran. A dropped model, agents and all, must be collectable."""
    import gc
    import weakref

    from sim.runs.batch import replicate_model

    params = load("run.years=1", "population.scale_general=400", "population.scale_cjs_families=20")
    model = replicate_model(params, seed=3)
    model.run()
    agent = weakref.ref(next(iter(model.agents)))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None and agent() is None


def test_release_empties_mesas_containers_as_remove_all_agents_does(caplog):
    bulk, plain = build(), build()
    bulk.remove_agents(np.arange(10, 60))  # some already gone: their weak references were removed with them
    plain.remove_agents(np.arange(10, 60))
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    agents_mod.release_agents(bulk)
    assert not [r for r in caplog.records if r.name == LOGGER and "one by one" in r.getMessage()]
    plain.remove_all_agents()
    drop_rows = lambda s: {k: v for k, v in s.items() if k != "by_row"}  # noqa: E731 (the model's own list)
    assert drop_rows(state(bulk)) == drop_rows(state(plain)) and len(bulk.agents) == 0
    assert next_unique_id(bulk) == next_unique_id(plain)


def test_release_takes_the_ordinary_path_when_mesa_is_not_as_expected(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise agents_mod._Refused("unknown Mesa (test)")

    model = build()
    monkeypatch.setattr(agents_mod, "_plan", refuse)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    agents_mod.release_agents(model)
    assert any(r.getMessage() == "removing every agent one by one: unknown Mesa (test)" for r in caplog.records)
    assert len(model.agents) == 0 and not vars(model).get("_agents") and len(model.agents_by_type[Person]) == 0  # (_agents: Mesa < 3.5)


def test_a_released_model_is_freed_without_the_garbage_collector():
    """``with ReoffendingModel(...) as model`` (as a batch replicate runs): once dropped, the model and its agents go at
    once, by reference counting, and what was read from it before stays."""
    from sim.runs.output import timeseries_frame

    params = load("run.years=1", "population.scale_general=400", "population.scale_cjs_families=20")
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        with ReoffendingModel(params, seed=3) as model:
            model.run()
            agent, ref = weakref.ref(next(iter(model.agents))), weakref.ref(model)
            series = timeseries_frame(model)
        assert len(model.agents) == 0 and agent() is None  # released at the end of the block
        assert timeseries_frame(model).equals(series) and model.people.n > 0  # its arrays and series stay readable
        assert model.agent_at(0) is None
        with pytest.raises(RuntimeError, match="released"):
            model.step()  # refused before any process runs
        del model
        assert ref() is None
    finally:
        if was_enabled:
            gc.enable()
