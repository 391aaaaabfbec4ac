"""Mesa agents as handles onto the model's arrays: each ``Person`` knows its row and reads/writes through it.

The monthly processes never loop over agents; agents exist so that Mesa's tools (AgentSet, DataCollector,
visualisation) and a researcher's own code can look at, and change, one person at a time.
"""

from __future__ import annotations

import collections
import functools
import gc
import inspect
import itertools
import logging
import re
import weakref
from itertools import repeat

import mesa

from .people import CUSTODY, LICENCE, PROBATION, START_STATUS, STATUS_NAMES


class _WeakModelIds(weakref.WeakKeyDictionary):
    """Mesa 3.3's ``Agent._ids`` (each model's counter of unique_ids), holding its models weakly.

    Mesa 3.3 keeps them in a class-level ``defaultdict`` keyed by the model, so every model built in a process stays
    in memory for good (mesa/mesa#3179, fixed in later Mesa): a batch worker grew by the size of a replicate with
    every replicate it ran. Counters are made as Mesa makes them, on first use."""

    def __init__(self, default_factory, entries=()):
        super().__init__(entries)
        self.default_factory = default_factory

    def __getitem__(self, model):
        try:
            return super().__getitem__(model)
        except KeyError:
            counter = self[model] = self.default_factory()
            return counter


def _release_models_from_agent_ids() -> None:
    """Put ``_WeakModelIds`` in place of Mesa 3.3's ``Agent._ids`` (later versions have none: nothing to do)."""
    ids = mesa.Agent.__dict__.get("_ids")
    if type(ids) is collections.defaultdict and ids.default_factory is not None:
        mesa.Agent._ids = _WeakModelIds(ids.default_factory, ids.items())


_release_models_from_agent_ids()


class Person(mesa.Agent):
    """One person. ``role`` is "child" under the adult age, "offender" for an adult with a conviction, else "adult"."""

    def __init__(self, model, row: int):
        super().__init__(model)
        self.row = row

    @property
    def _people(self):
        return self.model.people

    @property
    def person_id(self) -> int:
        return int(self._people.person_id[self.row])

    @property
    def sex(self) -> str:
        return "M" if self._people.sex_male[self.row] else "F"

    @property
    def age_years(self) -> float:
        return float(self.model.month - self._people.birth_month[self.row]) / 12.0

    @property
    def role(self) -> str:
        if self.age_years < self.model.params.family.age_adult:
            return "child"
        return "offender" if self.prev_convictions > 0 else "adult"

    @property
    def status(self) -> str:
        """free / custody / licence / probation"""
        return STATUS_NAMES[int(self._people.status[self.row])]

    @property
    def status_at_start(self) -> str:
        return START_STATUS[int(self._people.status_at_start[self.row])]

    @property
    def in_custody(self) -> bool:
        return self._people.status[self.row] == CUSTODY

    @property
    def under_supervision(self) -> bool:
        return self._people.status[self.row] in (LICENCE, PROBATION)

    @property
    def prev_convictions(self) -> int:
        return int(self._people.prev_convictions[self.row])

    @prev_convictions.setter
    def prev_convictions(self, value: int) -> None:
        self._people.prev_convictions[self.row] = value
        self._people.touch([self.row])  # schedules drawn from the old record are redrawn (death month: at once)
        self.model.redraw_death([self.row])

    @property
    def prev_cautions(self) -> int:
        """Cautions, reprimands and warnings in the run (``justice.cautions``): on the record, not convictions."""
        return int(self._people.prev_cautions[self.row])

    @property
    def propensity(self) -> float:
        """Offending propensity now (relative hazard); set at birth, lowered by desistance after a conviction."""
        return float(self._people.propensity[self.row])

    @propensity.setter
    def propensity(self, value: float) -> None:
        self._people.propensity[self.row] = value
        self._people.touch([self.row])

    @property
    def needs(self) -> dict[str, bool]:
        names = self.model.params.needs.names
        mask = int(self._people.needs[self.row])
        return {name: bool(mask >> j & 1) for j, name in enumerate(names)}

    def set_need(self, name: str, value: bool) -> None:
        bit = 1 << list(self.model.params.needs.names).index(name)
        mask = int(self._people.needs[self.row])
        self._people.needs[self.row] = (mask | bit) if value else (mask & ~bit)
        self._people.touch([self.row])

    def _relative(self, column: str) -> "Person | None":
        row = int(getattr(self._people, column)[self.row])
        return self.model.agent_at(row) if row >= 0 else None

    @property
    def father(self) -> "Person | None":
        return self._relative("father")

    @property
    def mother(self) -> "Person | None":
        return self._relative("mother")

    @property
    def partner(self) -> "Person | None":
        return self._relative("partner")

    def __repr__(self) -> str:
        return f"Person(id={self.person_id}, {self.sex}, {self.age_years:.1f}y, {self.role}, {self.status})"


# --- registering and deregistering many agents at once -------------------------------------------------------
#
# ``Person(model, row)`` costs ~4 us, nearly all of it Mesa's per-agent bookkeeping in Python (Agent.__init__,
# Model.register_agent, AgentSet.add, WeakKeyDictionary.__setitem__, a debug message formatted for every agent).
# ``create_agents`` makes the same objects and fills the same containers in a few C-level passes, leaving the
# model exactly as that many ``Person(model, row)`` calls would: the same unique_ids, each agent's attributes in
# the same order, the same keys in the same order in ``model._agents`` (Mesa < 3.5), ``model.agents`` and
# ``model.agents_by_type[Person]`` (weak references with the set's own callback where Mesa keeps weak
# references), ``agent.remove()`` working as ever. ``remove_agents`` likewise for deregistration.
#
# It stands in for Mesa code, so it only does so where that code is what it knows (Mesa 3.3.0 to 3.5.1 read):
# every name Mesa's functions touch must be one it mimics, Person must not override them, the containers must be
# of the types it fills, and the first agent of each batch is made the ordinary way and checked to have landed
# exactly where the fast path would have put it. Anything else (a Mesa that registers agents somewhere new, debug
# logging of Mesa switched on, a signal subscriber or dataset that wants to hear of each agent) and the batch
# takes the ordinary per-agent path, which is always correct.

_log = logging.getLogger(__name__)

#: attributes of a Person, in the order Agent.__init__ and Person.__init__ set them
_ATTRS = ["model", "unique_id", "pos", "row"]

#: below this many agents, the ordinary path (the checks would cost more than they save)
BULK_MIN = 32

#: the global and attribute names (``co_names``) each Mesa function may use for the fast path to stand in for it
_KNOWN_NAMES = {
    # Mesa 3.3: unique_id from Agent._ids; 3.4+: from model.agent_id_counter; 3.5+: datasets told of each agent
    "Agent.__init__": {"__init__", "super", "model", "unique_id", "pos", "register_agent", "_ids", "next",
                       "_datasets", "data_registry", "add_agent"},
    "Agent.remove": {"KeyError", "contextlib", "suppress", "model", "deregister_agent",
                     "_datasets", "data_registry", "remove_agent"},
    # the AgentSet classes are only named to make the type's set for its first agent (made the ordinary way)
    "Model.register_agent": {"_agents", "_agents_by_type", "_all_agents", "type", "add", "KeyError", "AgentSet",
                             "_HardKeyAgentSet", "random", "agent_id_counter", "unique_id", "_mesa_logger",
                             "debug", "__class__", "__name__"},
    "Model.deregister_agent": {"_agents", "_agents_by_type", "_all_agents", "type", "remove", "_mesa_logger",
                               "debug", "unique_id"},
    "AgentSet.add": {"_agents"},
    "AgentSet.remove": {"_agents"},
    "WeakKeyDictionary.__setitem__": {"data", "ref", "_remove"},
    "WeakKeyDictionary.__delitem__": {"_dirty_len", "data", "ref"},
}


class _Refused(Exception):
    """The fast path does not apply here; the message says why."""


def _require(ok, why: str) -> None:
    if not ok:
        raise _Refused(why)


@functools.lru_cache(maxsize=64)
def _names(func, label: str) -> tuple[str, ...]:
    """The names ``func`` uses (in the order it first uses them), if all are ones the fast path knows (a function's
    code does not change, so the answer is kept; a refusal is not)."""
    code = getattr(func, "__code__", None)
    _require(code is not None, f"{label} is not a Python function")
    unknown = set(code.co_names) - _KNOWN_NAMES[label]
    _require(not unknown, f"{label} uses {sorted(unknown)}")
    return code.co_names


def _mesa_method(model, name: str, label: str):
    """The names Mesa's ``type(model).<name>`` uses, after checking that it is Mesa's own, that nobody listens to
    the signal it emits (Mesa 3.5+) and that Mesa's debug messages are off."""
    func = getattr(type(model), name, None)
    _require(func is not None and func is getattr(mesa.Model, name, None), f"{label} is overridden")
    signal = None
    if hasattr(func, "__wrapped__"):  # Mesa 3.5+: @emit("agents", ModelSignals.AGENT_ADDED) notifies observers
        _require(set(func.__code__.co_names) <= {"notify"}, f"{label} has an unknown wrapper")
        signal = getattr(func, "_mesa_signal_emitter", None)
        _require(isinstance(signal, tuple) and len(signal) == 2, f"{label} has an unknown wrapper")
        func = inspect.unwrap(func)
    names = _names(func, label)
    if "_mesa_logger" in names:  # someone debugging Mesa wants its message for every agent
        logger = func.__globals__.get("_mesa_logger")
        _require(isinstance(logger, logging.Logger), "Mesa's logger is not a Logger")
        _require(not logger.isEnabledFor(logging.DEBUG), "Mesa's debug logging is on")
    if signal is not None:  # nobody may be listening, nor a batch collecting signals
        _require(getattr(model, "_batch_context", None) is None, "Mesa signals are being batched")
        subscribers = getattr(model, "subscribers", None)
        _require(isinstance(subscribers, dict), "Mesa's signal subscribers are not a dict")
        _require(getattr(model, "_suppress", False) is True or signal not in subscribers, f"{label} has subscribers")
    return names


def _inner(agentset, label: str):
    """An AgentSet's storage: ("dict", the dict) or ("weak", the WeakKeyDictionary)."""
    for method in ("add", "remove"):
        _names(getattr(type(agentset), method, None), f"AgentSet.{method}")
    inner = vars(agentset).get("_agents")
    if type(inner) is dict:
        return ("dict", inner)
    _require(type(inner) is weakref.WeakKeyDictionary, f"{label} keeps its agents in a {type(inner).__name__}")
    _names(type(inner).__setitem__, "WeakKeyDictionary.__setitem__")
    _names(type(inner).__delitem__, "WeakKeyDictionary.__delitem__")
    _require(type(vars(inner).get("data")) is dict and callable(vars(inner).get("_remove")), f"{label}: unknown WeakKeyDictionary")
    return ("weak", inner)


def _plan(model, cls, removing: bool) -> dict:
    """Everything the fast path fills (or empties), after checking that it is what Mesa's own path fills."""
    _require(cls.__mro__[1] is mesa.Agent and cls.__new__ is object.__new__, f"{cls.__name__} is not a plain mesa.Agent")
    _require(not getattr(cls, "_datasets", ()), f"{cls.__name__} agents are tracked in datasets")  # Mesa 3.5+
    _require(not cls.__dict__.get("__slots__"), f"{cls.__name__} has __slots__")
    init_names = _names(mesa.Agent.__init__, "Agent.__init__")
    if removing:
        _require(cls.remove is mesa.Agent.remove, f"{cls.__name__}.remove is overridden")
        _names(mesa.Agent.remove, "Agent.remove")
        names = _mesa_method(model, "deregister_agent", "Model.deregister_agent")
    else:
        names = _mesa_method(model, "register_agent", "Model.register_agent")
    state = vars(model)
    plan: dict = {"cls": cls}
    if not removing:  # where unique_ids come from
        if "agent_id_counter" in names:
            _require("_ids" not in init_names, "two sources of unique_id")
            _require(type(state.get("agent_id_counter")) is int, "model.agent_id_counter is not an int")
            plan["ids"] = "counter"
        else:
            _require("_ids" in init_names, "unknown source of unique_id")
            ids = mesa.Agent.__dict__.get("_ids")
            _require(getattr(cls, "_ids", None) is ids and hasattr(ids, "default_factory"), "Agent._ids is not Mesa's")
            plan["ids"] = "itertools"
    hard = state.get("_agents")  # Mesa < 3.5: the model's hard references to its agents
    if "_agents" in names:
        _require(type(hard) is dict, "model._agents is not a dict")
        plan["hard"] = hard
    else:
        plan["hard"] = None
    _require(state.get("_all_agents") is model.agents, "model.agents is not model._all_agents")
    by_type = state.get("_agents_by_type")
    _require(type(by_type) is dict and by_type is model.agents_by_type, "unknown model.agents_by_type")
    plan["sets"] = [_inner(model.agents, "model.agents")]
    if cls in by_type:
        plan["sets"].append(_inner(by_type[cls], "model.agents_by_type"))
    else:
        _require(not removing, f"no {cls.__name__} is registered")
    if removing:  # the containers in the order Mesa's deregister_agent empties them (it stops at a KeyError)
        order = [name for name in names if name in ("_agents", "_agents_by_type", "_all_agents")]
        _require(order == ["_agents", "_agents_by_type", "_all_agents"][1 - ("_agents" in names):],
                 "Model.deregister_agent empties its containers in an unknown order")
        plan["order"] = ([("dict", hard)] if plan["hard"] is not None else []) + plan["sets"][::-1]
    return plan


def bulk_refusal(model, cls=None, removing: bool = False) -> str | None:
    """Why ``create_agents`` (or, with ``removing``, ``remove_agents``) would take the ordinary per-agent path
    for this model now, or None if it would take the fast path."""
    try:
        _plan(model, Person if cls is None else cls, removing)
    except _Refused as refused:
        return str(refused)
    return None


_COUNT_REPR = re.compile(r"count\((\d+)\)")


def _next_id(plan, model):
    """The unique_id the next agent will get, without taking it."""
    if plan["ids"] == "counter":
        return model.agent_id_counter
    counter = mesa.Agent._ids[model]
    match = _COUNT_REPR.fullmatch(repr(counter)) if type(counter) is itertools.count else None
    _require(match is not None, "Agent._ids holds an unknown counter")
    return int(match.group(1))


def _last_key(d: dict):
    return next(reversed(d)) if d else None


def _snapshot(plan) -> list:
    """(kind, storage, its length) of each container."""
    out = [("dict", plan["hard"], len(plan["hard"]))] if plan["hard"] is not None else []
    for kind, inner in plan["sets"]:
        out.append((kind, inner, len(inner.data) if kind == "weak" else len(inner)))
    return out


def _landed(kind, inner, length_before, agent) -> bool:
    """Whether ``agent`` was appended last to this container, as the fast path would append it."""
    if kind == "dict":
        return len(inner) == length_before + 1 and _last_key(inner) is agent and inner[agent] is None
    key = _last_key(inner.data)
    return (len(inner.data) == length_before + 1 and type(key) is weakref.ref and key() is agent
            and key.__callback__ is inner._remove and inner.data[key] is None)


def _expect(model, cls, plan: dict) -> tuple:
    """What to check the batch's first agent against: its unique_id, each container and its length."""
    return _next_id(plan, model), _snapshot(plan), set(model.agents_by_type)


def _check_first(model, cls, row: int, plan: dict, agent, expected: tuple) -> None:
    """Check the batch's first agent, made the ordinary way, is what the fast path would have made."""
    uid, before, types_before = expected
    if len(plan["sets"]) == 1:  # this agent made the type's AgentSet: it is empty before it
        _require(cls in model.agents_by_type, f"no AgentSet for {cls.__name__}")
        plan["sets"].append(_inner(model.agents_by_type[cls], "model.agents_by_type"))
        before = before + [(plan["sets"][1][0], plan["sets"][1][1], 0)]
    _require(set(model.agents_by_type) <= types_before | {cls}, "an agent type appeared")
    _require(list(vars(agent)) == _ATTRS, f"a {cls.__name__} has attributes {list(vars(agent))}")
    _require(agent.model is model and agent.unique_id == uid and agent.pos is None and agent.row == row,
             "the first agent's attributes are not as expected")
    _require(_next_id(plan, model) == uid + 1, "unique_ids do not count up by one")
    _require(all(_landed(kind, inner, n, agent) for kind, inner, n in before), "the first agent is not where expected")


def create_agents(model, rows: list[int], cls=None) -> list:
    """``[Person(model, row) for row in rows]``, leaving the model in the same state, in a fraction of the time."""
    cls = Person if cls is None else cls
    if len(rows) < BULK_MIN:
        return [cls(model, row) for row in rows]
    try:
        plan = _plan(model, cls, removing=False)
        expected = _expect(model, cls, plan)
    except _Refused as refused:
        _log.debug("creating %d agents one by one: %s", len(rows), refused)
        return [cls(model, row) for row in rows]
    first = cls(model, rows[0])
    try:
        _check_first(model, cls, rows[0], plan, first, expected)
    except _Refused as refused:
        _log.debug("creating %d agents one by one: %s", len(rows), refused)
        return [first] + [cls(model, row) for row in rows[1:]]
    n = len(rows) - 1
    if plan["ids"] == "counter":
        start = model.agent_id_counter
        ids = range(start, start + n)
    else:  # the same itertools.count Agent.__init__ draws from
        ids = itertools.islice(mesa.Agent._ids[model], n)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of new objects, none of them garbage: no collections on the way
    try:
        agents = [first]
        append = agents.append
        new = object.__new__
        for uid, row in zip(ids, itertools.islice(rows, 1, None)):  # as Mesa sets them, each object done at once
            a = new(cls)
            a.model = model
            a.unique_id = uid
            a.pos = None
            a.row = row
            append(a)
        if plan["ids"] == "counter":
            model.agent_id_counter = start + n
        # dicts keyed by the agents themselves: model._agents (Mesa < 3.5), the AgentSets' (Mesa 3.5+)
        keyed = ([plan["hard"]] if plan["hard"] is not None else []) + [d for kind, d in plan["sets"] if kind == "dict"]
        if len(keyed) == 1:
            keyed[0].update(zip(itertools.islice(agents, 1, None), repeat(None)))
        elif keyed:  # hash the batch once; a dict holding only the batch's first agent takes a copy of the table
            table = dict.fromkeys(agents)
            for d in keyed:
                if len(d) == 1:
                    d.clear()
                d.update(table)  # ``first`` is already in a dict not cleared: it keeps its place
            del table
        for kind, inner in plan["sets"]:
            if kind == "weak":  # the weak references WeakKeyDictionary.__setitem__ makes, with the dict's callback
                fresh = itertools.islice(agents, 1, None)
                inner.data.update(zip(map(weakref.ref, fresh, repeat(inner._remove)), repeat(None)))
    finally:
        if gc_was_enabled:
            gc.enable()
    _log.debug("created %d agents in bulk", len(agents))
    return agents


def remove_agents(model, agents: list, cls=None) -> None:
    """``for agent in agents: agent.remove()``, leaving the model in the same state."""
    cls = Person if cls is None else cls
    if len(agents) < BULK_MIN:
        for agent in agents:
            agent.remove()
        return
    try:
        _require(set(map(type, agents)) == {cls}, "agents of another type")
        plan = _plan(model, cls, removing=True)
    except _Refused as refused:
        _log.debug("removing %d agents one by one: %s", len(agents), refused)
        for agent in agents:
            agent.remove()
        return
    n = len(agents)
    missing = object()
    for kind, inner in plan["order"]:
        if not agents:
            break
        if kind == "dict":
            popped = list(map(inner.pop, agents, repeat(missing)))
        else:  # as WeakKeyDictionary.__delitem__ does
            if "_dirty_len" in vars(inner):
                inner._dirty_len = True
            popped = list(map(inner.data.pop, map(weakref.ref, agents), repeat(missing)))
        if missing in popped:  # Mesa's deregister_agent raises KeyError here (which Agent.remove() suppresses)
            agents = [a for a, was in zip(agents, popped) if was is not missing]
    _log.debug("removed %d agents in bulk", n)


def release_agents(model, cls=None) -> None:
    """``model.remove_all_agents()`` for a model that is finished with, in a fraction of the time: the containers are
    emptied whole rather than agent by agent.

    A dropped model is otherwise freed by the garbage collector's full passes (agents and model refer to each other),
    where each agent's weak references call back into the AgentSets one by one: about 0.2 s for a default-weights
    replicate, paid by whichever replicate's allocations trigger the pass, on a heap that grows meanwhile. Emptied
    here, the weak references go without calling back, and each agent is freed as soon as the last list holding it is.
    """
    cls = Person if cls is None else cls
    try:
        _require(set(model.agents_by_type) <= {cls}, "agents of another type")
        plan = _plan(model, cls, removing=True)
    except _Refused as refused:
        _log.debug("removing every agent one by one: %s", refused)
        model.remove_all_agents()
        return
    for kind, inner in plan["order"]:
        if kind == "dict":
            inner.clear()
        else:  # its weak references deleted while their agents live: no callbacks
            inner.data.clear()
