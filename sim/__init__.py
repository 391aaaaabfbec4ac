"""reoffsim: an agent-based simulation (Mesa) of adult reoffending and the intergenerational risk of offending.

Layers, lowest first; a module imports only from its own layer or those below it (tests/test_layout.py checks):
state <- processes <- model (sim.model, sim.metrics) <- appraisal <- runs <- fitting <- present <- entry points
(sim.cli, sim.bench, sim.ema).
"""

from .model import ReoffendingModel
from .runs.batch import run_batch
from .state.params import Params
from .state.scenario import ScenarioError, load_scenario

__all__ = ["ReoffendingModel", "Params", "ScenarioError", "load_scenario", "run_batch"]
__version__ = "0.1.0"
