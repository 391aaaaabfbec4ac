"""One family through the years: Mesa's own SolaraViz stepping the model a month at a time.

``FamilyModel`` is the Essex model with the offender-and-family programme on (the app's default setting) and one
family picked to follow: a father in custody at the start, with a partner and children at home, who will be released
soon, so that the page shows release, referral to the programme, supervision and the children growing up.
Its members are Mesa agents (``sim.state.agents.Person``); the page reads them, never the arrays, as a user of the
model would.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import solara  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
with warnings.catch_warnings():  # Solara's check of Mesa's own components (a hook after an early return) is Mesa's to fix
    warnings.filterwarnings("ignore", category=UserWarning, module="solara.validate_hooks")
    from mesa.visualization import SolaraViz, make_plot_component
    from mesa.visualization.utils import update_counter

from ..model import ReoffendingModel  # noqa: E402
from ..state.people import CUSTODY, NO_ONE  # noqa: E402
from .settings import Setting, scenarios, server_overrides  # noqa: E402

IV_STATES = {0: "not referred", 1: "waiting for a place", 2: "in the programme", 3: "left the programme"}
STATUS_LEVEL = {"free": 0, "probation": 1, "licence": 2, "custody": 3}


class FamilyModel(ReoffendingModel):
    """The Essex model at the app's default setting (programme on, or off with ``programme=False``) with one family
    to follow (``focus``: the father's agent; ``history``: the family's states month by month)."""

    def __init__(self, seed: int = 1, programme: bool = True):
        base, iv = scenarios(Setting(), server_overrides())
        super().__init__(iv if programme else base, seed=seed, record_offences=False)
        self.focus = self.agent_at(pick_father(self))
        self.history: list[dict] = []
        self._remember()

    def step(self) -> None:
        super().step()
        self._remember()

    def members(self) -> list[tuple[str, object]]:
        """(relation, agent) for the father, his partner (if any) and his children, in that order."""
        father = self.focus
        out = [("father", father)]
        partner = father.partner
        if partner is not None:
            out.append(("partner", partner))
        for k, row in enumerate(np.unique(self.people.children.of(np.array([father.row])))):
            agent = self.agent_at(int(row))
            if agent is not None:
                out.append((f"child {k + 1}", agent))
        return out

    def _remember(self) -> None:
        father = self.focus
        self.history.append({"month": self.month, "status": father.status, "convictions": father.prev_convictions,
                             "programme": IV_STATES[int(self.people.iv_state[father.row])]})


def pick_father(model: ReoffendingModel) -> int:
    """The row of a man in custody at the start with a partner and a child at home and 3+ convictions (eligible for
    the programme on release), the one released soonest (then the lowest person id)."""
    p = model.people
    rows = np.flatnonzero((p.view("status") == CUSTODY) & p.view("sex_male") & (p.view("partner") != NO_ONE)
                          & (p.view("prev_convictions") >= 3))
    fathers = np.unique(p.view("father"))
    rows = rows[np.isin(rows, fathers)]
    if not len(rows):
        rows = np.flatnonzero(p.view("status") == CUSTODY)
    order = np.lexsort((p.person_id[rows], p.custody_months_left[rows]))
    return int(rows[order[0]])


def family_table(model: FamilyModel) -> pd.DataFrame:
    """The family this month, one row per member."""
    rows = []
    for relation, person in model.members():
        needs = [name.replace("_", " ") for name, has in person.needs.items() if has]
        rows.append({"who": relation, "sex": person.sex, "age": f"{person.age_years:.0f}", "status": person.status,
                     "convictions": person.prev_convictions, "needs": ", ".join(needs) or "none",
                     "programme": IV_STATES[int(model.people.iv_state[person.row])] if relation == "father" else ""})
    return pd.DataFrame(rows)


def FamilyView(model: FamilyModel):
    """This month's family and the father's path so far (re-drawn at every step)."""
    update_counter.get()
    year, month = divmod(model.month, 12)
    with solara.Column() as main:
        solara.Text(f"Year {year + 1}, month {month + 1}: the family of person {model.focus.person_id}.", classes=["family-month"])
        solara.DataFrame(family_table(model), items_per_page=10)
        history = pd.DataFrame(model.history)
        fig = Figure(figsize=(7, 2.6))
        ax = fig.subplots()
        ax.step(history["month"] / 12, history["status"].map(STATUS_LEVEL), where="post", color="#0072B2")
        ax.set_yticks(list(STATUS_LEVEL.values()), list(STATUS_LEVEL))
        in_programme = history["programme"] == "in the programme"
        if in_programme.any():
            ax.fill_between(history["month"] / 12, -0.2, 3.2, where=in_programme, color="#009E73", alpha=0.2, step="post",
                            label="in the programme")
            ax.legend(frameon=False, fontsize=8, loc="upper right")
        ax.set(xlabel="years from the start", title="The father's status")
        fig.tight_layout()
        solara.FigureMatplotlib(fig, format="png", dependencies=[model.month])
    return main


@solara.component
def FamilyPage():
    model = solara.use_memo(FamilyModel, [])
    solara.Text("Step moves a month, Play runs on; a new seed or the programme switched off takes effect at Reset.")
    SolaraViz(model, components=[FamilyView, make_plot_component("custody")],
              model_params={"seed": {"type": "InputText", "value": 1, "label": "Seed"},
                            "programme": {"type": "Checkbox", "value": True, "label": "Programme on"}},
              name="One family through the years", play_interval=300)
