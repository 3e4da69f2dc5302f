"""Crisis pathway planner: model, optimise and compare mental health crisis care capacity.

The public surface::

    from pathways import load_scenario, evaluate, optimise, SolverOptions, Plan
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Scenario": "pathways.scenario",
    "load_scenario": "pathways.scenario",
    "dump_scenario": "pathways.scenario",
    "with_changes": "pathways.scenario",
    "Plan": "pathways.plan",
    "load_plan": "pathways.plan",
    "dump_plan": "pathways.plan",
    "baseline_plan": "pathways.plan",
    "evaluate": "pathways.kpis",
    "Scorecard": "pathways.kpis",
    "prepare": "pathways.instance",
    "optimise": "pathways.optimise",
    "optimise_with_baselines": "pathways.optimise",
    "SolverOptions": "pathways.optimise",
    "InputError": "pathways.errors",
    "InfeasibleError": "pathways.errors",
    "NoPlanInTimeError": "pathways.errors",
    "breaches": "pathways.constraints",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    # Imported on first use so `import pathways` stays light (OR-Tools loads only to optimise).
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pathways' has no attribute {name!r}")
