"""Mesa integration: the model is a mesa.Model and every present person is exactly one registered Person agent,
a handle that reads and writes the model's arrays."""

from __future__ import annotations

import mesa
import numpy as np
import pytest

from sim import ReoffendingModel
from sim.state.agents import Person
from sim.state.events import EVENT_CODE
from sim.state.people import CUSTODY, LICENCE, PROBATION, START_STATUS, STATUS_NAMES

from conftest import SMALL, load


@pytest.fixture
def model():
    """A fresh small model, a few months in (tests may change it)."""
    return ReoffendingModel(load(*SMALL, "run.years=1"), seed=21).run(3)


def test_model_is_a_mesa_model_with_person_agents(model):
    assert isinstance(model, mesa.Model)
    assert len(model.agents) > 0
    assert all(isinstance(a, Person) and isinstance(a, mesa.Agent) for a in model.agents)
    assert len({a.unique_id for a in model.agents}) == len(model.agents)
    assert len(model.agents_by_type[Person]) == len(model.agents)


def test_every_present_person_has_exactly_one_agent_each_month(audited):
    """Checked at the end of every month of the audited run (births and arrivals added, the dead removed)."""
    for rec in audited.months:
        present_rows = np.flatnonzero(rec.end["present"])
        assert np.array_equal(rec.agent_rows, present_rows), f"month {rec.month}"
    assert any(rec.n_before < len(rec.end["present"]) for rec in audited.months)  # people were added


def test_agent_at_row_and_removed_agents(audited):
    model = audited.model
    p = model.people
    present = p.view("present")
    for row in np.flatnonzero(present)[:: max(1, present.sum() // 500)]:
        agent = model.agent_at(int(row))
        assert agent is not None and agent.row == row and agent in model.agents
    rows, _, code = model.events.arrays()[:3]
    gone = rows[np.isin(code, [EVENT_CODE["death"], EVENT_CODE["exit"]])]
    assert len(gone) > 0
    assert all(model.agent_at(int(r)) is None for r in gone)
    assert not set(gone.tolist()) & {a.row for a in model.agents}


def test_agent_properties_read_the_arrays(model):
    p = model.people
    for agent in list(model.agents)[::50]:
        r = agent.row
        assert agent.person_id == p.person_id[r]
        assert agent.sex == ("M" if p.sex_male[r] else "F")
        assert agent.age_years == pytest.approx((model.month - p.birth_month[r]) / 12)
        assert agent.status == STATUS_NAMES[int(p.status[r])]
        assert agent.status_at_start == START_STATUS[int(p.status_at_start[r])]
        assert agent.in_custody == (p.status[r] == CUSTODY)
        assert agent.under_supervision == (p.status[r] in (LICENCE, PROBATION))
        assert agent.prev_convictions == p.prev_convictions[r]
        assert agent.propensity == p.propensity[r]
        adult = agent.age_years >= model.params.family.age_adult
        assert agent.role == ("child" if not adult else "offender" if p.prev_convictions[r] > 0 else "adult")
        needs = agent.needs
        assert list(needs) == list(model.params.needs.names)
        assert all(needs[name] == bool(p.needs[r] >> j & 1) for j, name in enumerate(model.params.needs.names))


def test_agents_write_the_arrays(model):
    p = model.people
    agent = next(a for a in model.agents if a.prev_convictions == 0 and a.age_years >= 18)
    assert agent.role == "adult"
    agent.prev_convictions = 5
    assert p.prev_convictions[agent.row] == 5 and agent.role == "offender"
    agent.propensity = 2.5
    assert p.propensity[agent.row] == 2.5
    name = model.params.needs.names[-1]
    before = int(p.needs[agent.row])
    agent.set_need(name, True)
    assert agent.needs[name] and p.needs[agent.row] == before | (1 << (len(model.params.needs.names) - 1))
    agent.set_need(name, False)
    assert not agent.needs[name] and p.needs[agent.row] == before & ~(1 << (len(model.params.needs.names) - 1))


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # newborns of propensity-0 parents
def test_writes_through_agents_drive_the_processes(model):
    """Setting every agent's propensity to zero through the Mesa API stops all offending next month."""
    before = model.datacollector.get_model_vars_dataframe()["offences"]
    assert before.iloc[-1] > 0
    for agent in model.agents:
        agent.propensity = 0.0
    model.step()
    assert model.datacollector.get_model_vars_dataframe()["offences"].iloc[-1] == 0


def test_relatives_are_agents(model):
    p = model.people
    partnered = [a for a in model.agents if p.partner[a.row] >= 0]
    assert partnered
    for a in partnered[:200]:
        assert a.partner is model.agent_at(int(p.partner[a.row]))
        assert a.partner.partner is a
        assert a.partner.sex != a.sex
    children = [a for a in model.agents if p.mother[a.row] >= 0 and p.present[p.mother[a.row]]]
    assert children
    for c in children[:200]:
        assert c.mother.row == p.mother[c.row] and c.mother.sex == "F"
    orphans = [a for a in model.agents if p.mother[a.row] < 0]
    assert all(a.mother is None for a in orphans[:200])


def test_datacollector_series(audited):
    model = audited.model
    df = model.datacollector.get_model_vars_dataframe()
    assert list(df.columns) == list(model.datacollector.model_reporters)
    assert df.columns[0] == "month" and list(df["month"]) == list(range(model.params.months))
    core = {"population", "children", "custody", "licence", "probation", "offences", "convictions", "births", "deaths", "exits"}
    assert core <= set(df.columns)
    assert len(df) == model.params.months
    assert (df.drop(columns="month") >= 0).all().all()
    assert (df["children"] <= df["population"]).all()
    by_type = [f"offences_{t}" for t in model.params.offending.offence_types]
    if set(by_type) <= set(df.columns):  # offences by type add up to all offences
        assert np.allclose(df[by_type].sum(axis=1), df["offences"])
