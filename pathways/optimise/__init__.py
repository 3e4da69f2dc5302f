"""Suggest capacity and sites: ``optimise(scenario, options) -> Plan``.

See :mod:`pathways.optimise.model` for the numbered formulation and
docs/optimiser.md for the commissioner's account of it.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

from pathways.constraints import resolve_goals
from pathways.instance import Instance, prepare
from pathways.kpis import evaluate
from pathways.optimise.baselines import greedy_marginal, objective_value, pro_rata
from pathways.optimise.heuristic import feasible_plan
from pathways.optimise.model import SolverOptions, solve
from pathways.plan import SolverReport, baseline_plan

__all__ = [
    "SolverOptions",
    "OptimiseResult",
    "optimise",
    "optimise_with_baselines",
    "objective_value",
    "status_text",
    "feasible_plan",
]


@dataclass(frozen=True)
class OptimiseResult:
    """The optimised plan with the plans it was compared against."""

    plan: object
    baselines: dict
    cards: dict
    objectives: dict
    goals: object


def optimise(scenario, options: SolverOptions | None = None):
    """Optimised plan for a scenario (pure: same scenario and options, same plan)."""
    return optimise_with_baselines(scenario, options).plan


def optimise_with_baselines(scenario, options: SolverOptions | None = None) -> OptimiseResult:
    """Optimise, and evaluate the plan next to today's, the heuristic's and the two baselines.

    The heuristic's plan (every limit met, in about a second) is the solver's warm start
    and its fallback: a returned plan always meets every limit as judged by ``evaluate``.
    """
    opts = options or SolverOptions()
    report = opts.progress or (lambda msg, frac: None)
    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    sc = inst.scenario
    report("evaluating today's plan", 0.0)
    today = baseline_plan(sc)
    cards = {"current": evaluate(inst, today)}
    goals = resolve_goals(inst, cards["current"])
    report("finding a first plan that meets every limit", 0.01)
    first = feasible_plan(inst, goals)
    baselines = {
        "pro rata": pro_rata(inst, goals.budget_gbp),
        "greedy marginal": greedy_marginal(inst, goals.budget_gbp, goals.mobile_within_min),
    }
    for name, p in baselines.items():
        cards[name] = evaluate(inst, p)
    w = sc.objective.weights
    objectives = {name: objective_value(card, goals.mode, w) for name, card in cards.items()}
    plan = solve(inst, goals, opts, hint=first)
    cards["optimised"] = evaluate(inst, plan)
    objectives["optimised"] = objective_value(cards["optimised"], goals.mode, w)
    report("done", 1.0)
    return OptimiseResult(
        plan=plan, baselines=baselines, cards=cards, objectives=objectives, goals=goals
    )


def status_text(report: SolverReport | None) -> str:
    """A plan's solver status in commissioners' words."""
    if report is None:
        return "entered by hand (not optimised)"
    words = {
        "OPTIMAL": "best plan, proven",
        "TIME_LIMIT": "best plan found when the search stopped",
        "HEURISTIC": "first plan meeting every limit (the solver found nothing better in time)",
    }
    head = words.get(report.status, report.status.lower())
    return f"{head}: {report.message}" if report.message else head


class _CallableModule(types.ModuleType):
    """``from pathways import optimise`` gives this package; calling it runs :func:`optimise`.

    The package and its main function share a name, and Python binds a subpackage to its
    parent's attribute on import, so either spelling must work: ``pathways.optimise(sc)``
    and ``pathways.optimise.SolverOptions``.
    """

    def __call__(self, scenario, options: SolverOptions | None = None):
        return optimise(scenario, options)


sys.modules[__name__].__class__ = _CallableModule
