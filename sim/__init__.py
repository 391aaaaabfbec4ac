"""reoffsim: an agent-based simulation (Mesa) of adult reoffending and the intergenerational risk of offending.

Layers, lowest first; a module imports only from its own layer or those below it (tests/test_layout.py checks):
state <- processes <- model (sim.model, sim.metrics) <- appraisal <- runs <- fitting <- present <- entry points
(sim.cli, sim.bench, sim.ema).

The exports below are imported on first use, so that ``import sim.runs.worker`` (the first thing a pool worker
runs) does not import the model.
"""
from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING

from .state.sources import numba_cache_dir, sources_digest


# numba's cache folder of this version of the sources (``sim.state.sources.numba_cache_dir``), set before numba is
# first imported, by any module (sim.state.sources imports hashlib and pathlib only)
os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir(sources_digest())))

if TYPE_CHECKING:
    from .model import ReoffendingModel
    from .runs.batch import run_batch
    from .state.params import Params
    from .state.scenario import ScenarioError, load_scenario

#: each export and the module that holds it
_EXPORTS = {"ReoffendingModel": ".model", "run_batch": ".runs.batch", "Params": ".state.params",
            "ScenarioError": ".state.scenario", "load_scenario": ".state.scenario"}

__all__ = ["ReoffendingModel", "Params", "ScenarioError", "load_scenario", "run_batch"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
