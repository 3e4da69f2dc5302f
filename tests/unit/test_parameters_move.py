"""Every documented parameter does something.

For each parameter of ``pathways.scenario.iter_parameters()`` (the list behind
``docs/parameters.md`` and the app's Assumptions page), the Sussex demo is changed to
another valid value with ``with_changes`` and evaluated. The parameter must move at
least one output of ``evaluate``: a KPI (``Scorecard.kpis``) or the workforce
(``Scorecard.workforce_wte``, which the scorecard reports per staff group). Two plans are
evaluated: today's capacity, and today's plus a crisis house and a mobile team opened at
a candidate site (so that the capital cost of opening a service has something to price).

A parameter that cannot move an evaluate output must be in ``NOT_IN_EVALUATE`` with the
reason, and a check that it moves what it is for instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pathways.instance import prepare
from pathways.kpis import evaluate
from pathways.optimise import objective_value
from pathways.plan import Plan, SitePlan, baseline_plan
from pathways.scenario import (
    CRISIS_NOW_ROUTING,
    Capacity,
    Scenario,
    iter_parameters,
    load_scenario,
    with_changes,
)

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
PARAMETERS = {p["path"]: p for p in iter_parameters()}


@pytest.fixture(scope="module")
def sussex() -> Scenario:
    return load_scenario(SUSSEX)


def plans(scenario: Scenario) -> list[Plan]:
    """Today's capacity, and today's plus a new crisis house and mobile team at a candidate."""
    today = baseline_plan(scenario)
    cand = next(s for s in scenario.sites if s.status == "candidate")
    sites = tuple(
        SitePlan(site_id=sp.site_id, capacity=Capacity(crisis_house_places=6, mobile_teams=1))
        if sp.site_id == cand.site_id
        else sp
        for sp in today.sites
    )
    return [today, Plan(name="opens a site", sites=sites, hub=today.hub)]


def outputs(scenario: Scenario) -> list[dict[str, float]]:
    inst = prepare(scenario)
    out = []
    for plan in plans(scenario):
        card = evaluate(inst, plan)
        out.append({**card.kpis, **{f"wte.{g}": v for g, v in card.workforce_wte.items()}})
    return out


def moved(a: list[dict[str, float]], b: list[dict[str, float]]) -> list[str]:
    """Outputs that differ (NaN equals NaN)."""
    keys = []
    for x, y in zip(a, b, strict=True):
        for k in x:
            u, v = float(x[k]), float(y[k])
            if math.isnan(u) and math.isnan(v):
                continue
            if not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9):
                keys.append(k)
    return sorted(set(keys))


def other_value(path: str, current: Any) -> Any:
    """A different valid value for a parameter."""
    if path == "pathway.preset":
        return "crisis_now" if current != "crisis_now" else "nhs_default"
    if path == "pathway.routing":
        return CRISIS_NOW_ROUTING
    if path == "demand.hourly_profile":  # halfway to a flat day (still sums to 1)
        return tuple(0.5 * x + 0.5 / 24 for x in current)
    if path == "demand.weekday_profile":  # a busy Monday (a permutation would move nothing)
        return (0.20, 0.14, 0.14, 0.13, 0.13, 0.13, 0.13)
    if path == "costs.capital_gbp_per_new_site":
        return {k: 1.5 * v + 1000.0 for k, v in current.items()}
    if path == "costs.wte_per_unit":
        return {svc: {g: 1.5 * v + 0.1 for g, v in row.items()} for svc, row in current.items()}
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise AssertionError(f"no rule for a different value of {path} ({current!r})")
    if current == 0:
        return 0.1
    if path.endswith("_mins") and "standard" in path:
        return current / 2  # a tighter response standard (every Sussex area meets a looser one)
    if 0 < current <= 1 and ("share" in path or "utilisation" in path):
        return current * 0.8
    return current * 1.25


def current_value(scenario: Scenario, path: str) -> Any:
    node: Any = scenario
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _objective_moves(path: str) -> Callable[[Scenario], None]:
    def check(scenario: Scenario) -> None:
        weights = scenario.objective.weights
        changed = with_changes(scenario, {path: other_value(path, current_value(scenario, path))})
        card = evaluate(scenario)
        assert objective_value(card, "min_weighted", changed.objective.weights) != pytest.approx(
            objective_value(card, "min_weighted", weights), rel=1e-9
        )

    return check


def _only_the_optimiser_caps_team_load(scenario: Scenario) -> None:
    # evaluate reports each base's busiest-hour load; the limit is the optimiser's, and
    # today's Sussex bases are within it, so lowering it below today's load is what bites
    peak = evaluate(scenario).by_site["mobile_peak_utilisation"]
    finite = peak[peak.abs() < float("inf")]
    assert (finite > 0).any()
    assert finite.max() <= scenario.queues.mobile_max_utilisation + 1e-9


#: Parameters that cannot move an evaluate output, why, and what they move instead.
NOT_IN_EVALUATE: dict[str, tuple[str, Callable[[Scenario], None]]] = {
    # Objective weights price a scorecard; they are not inputs of the model.
    "objective.weights.oap_bed_day": (
        "weights the optimiser's objective only",
        _objective_moves("objective.weights.oap_bed_day"),
    ),
    "objective.weights.admission": (
        "weights the optimiser's objective only",
        _objective_moves("objective.weights.admission"),
    ),
    "objective.weights.travel_hour": (
        "weights the optimiser's objective only",
        _objective_moves("objective.weights.travel_hour"),
    ),
    # A limit on the plans the optimiser may choose, not a property of a plan's outcome.
    "queues.mobile_max_utilisation": (
        "caps the busiest-hour load of a mobile base in the optimiser; evaluate reports "
        "the load (by_site.mobile_peak_utilisation) without capping it",
        _only_the_optimiser_caps_team_load,
    ),
}


def test_allow_list_names_documented_parameters():
    assert set(NOT_IN_EVALUATE) <= set(PARAMETERS)


@pytest.mark.parametrize("path", sorted(PARAMETERS))
def test_parameter_moves_an_evaluate_output(sussex, path):
    value = other_value(path, current_value(sussex, path))
    changed = with_changes(sussex, {path: value})
    assert current_value(changed, path) != current_value(sussex, path), path
    what = moved(outputs(sussex), outputs(changed))
    if path in NOT_IN_EVALUATE:
        reason, check = NOT_IN_EVALUATE[path]
        assert not what, f"{path} is listed as not moving evaluate ({reason}) but moves {what}"
        check(sussex)
    else:
        assert what, f"changing {path} to {value!r} moves no output of evaluate"
