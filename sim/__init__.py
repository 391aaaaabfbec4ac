"""reoffsim: an agent-based simulation (Mesa) of adult reoffending and the intergenerational risk of offending."""

from .model import ReoffendingModel
from .params import Params
from .scenario import ScenarioError, load_scenario

__all__ = ["ReoffendingModel", "Params", "ScenarioError", "load_scenario"]
__version__ = "0.1.0"
