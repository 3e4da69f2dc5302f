"""Discrete-event simulation of the crisis pathway, a standing check of the analytic model.

Today it covers the loss nodes (crisis houses and the pooled inpatient beds with
out-of-area placements)::

    from pathways.simulate import simulate
    result = simulate(scenario, plan, reps=20, seed=0)
    result.table()  # analytic vs simulated mean with 95% confidence intervals

See ``docs/simulation.md``.
"""

from __future__ import annotations

from pathways.simulate.engine import simulate_loss_node
from pathways.simulate.loss import SimulationResult, simulate

__all__ = ["SimulationResult", "simulate", "simulate_loss_node"]
