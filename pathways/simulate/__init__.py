"""Discrete-event simulation of the crisis pathway, a standing check of the analytic model.

::

    from pathways.simulate import SimParams, simulate
    result = simulate(scenario, plan, reps=20, seed=0)            # seasonal, lognormal, repatriation
    result = simulate(scenario, plan, reps=20, seed=0, params=SimParams.analytic())
    result.table()       # kpi, analytic, simulated mean, 95% CI, agrees
    result.daily_oaps    # people out of area on each day
    validate(scenario)   # analytic vs simulated, and which assumption explains a gap

The coupled pathway (beds with out-of-area placements and repatriation, mobile teams,
the crisis line) runs on SimPy; crisis houses and places of safety, pure loss nodes,
on the exact heap engine in :mod:`pathways.simulate.engine`. See ``docs/simulation.md``.
"""

from __future__ import annotations

from pathways.simulate.engine import simulate_loss_node
from pathways.simulate.params import PARAMETERS, SimParams, parameter_table
from pathways.simulate.result import SimulationResult
from pathways.simulate.run import simulate
from pathways.simulate.validate import ValidationResult, validate

__all__ = [
    "PARAMETERS",
    "SimParams",
    "SimulationResult",
    "ValidationResult",
    "parameter_table",
    "simulate",
    "simulate_loss_node",
    "validate",
]
