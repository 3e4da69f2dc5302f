"""Annual revenue cost, capital cost and workforce of a plan.

Revenue cost = sum over services of (units x cost per unit) + crisis-line handler
positions x cost per position + OAP bed-days x cost per bed-day. Capital is
charged once for each service newly opened at a site (a site whose current
capacity for that service is zero). Workforce is units x WTE per unit, by staff
group. Defaults and their sources: :class:`pathways.scenario.CostParams`.
"""

from __future__ import annotations

import math

from pathways.errors import InputError, Problem
from pathways.plan import Plan
from pathways.scenario import SERVICES, SHIFTS, STAFF_GROUPS, Scenario

UNIT_COST_FIELD: dict[str, str] = {
    "inpatient": "inpatient_bed_gbp_per_year",
    "crisis_house": "crisis_house_place_gbp_per_year",
    "mobile_team": "mobile_team_gbp_per_year",
    "place_of_safety": "place_of_safety_suite_gbp_per_year",
}


def unit_cost(scenario: Scenario, service: str) -> float:
    """Annual revenue cost of one unit of ``service`` (GBP per year)."""
    if service == "hub":
        return scenario.costs.handler_position_gbp_per_year
    return float(getattr(scenario.costs, UNIT_COST_FIELD[service]))


def hub_positions(plan: Plan) -> int:
    """Handler positions summed over the three shifts."""
    return sum(plan.hub.of(s) for s in SHIFTS)


def new_services(scenario: Scenario, plan: Plan) -> list[tuple[str, str]]:
    """(site_id, service) pairs the plan opens that do not run today."""
    out = []
    for sp in plan.sites:
        current = scenario.site(sp.site_id).capacity
        for svc in SERVICES:
            if sp.capacity.of(svc) > 0 and current.of(svc) == 0:
                out.append((sp.site_id, svc))
    return out


def plan_costs(scenario: Scenario, plan: Plan, oap_bed_days: float) -> dict[str, float]:
    """Revenue cost by service (GBP per year), OAP cost, capital (GBP, one-off) and total revenue."""
    out = {svc: plan.total(svc) * unit_cost(scenario, svc) for svc in SERVICES}
    out["hub"] = hub_positions(plan) * unit_cost(scenario, "hub")
    out["oap"] = oap_bed_days * scenario.costs.oap_gbp_per_bed_day
    out["capital"] = sum(
        scenario.costs.capital_gbp_per_new_site[svc] for _, svc in new_services(scenario, plan)
    )
    out["total"] = sum(out[k] for k in (*SERVICES, "hub", "oap"))
    for key, value in out.items():  # bounded inputs keep these finite; never report inf
        if not math.isfinite(value):
            raise InputError(
                Problem(
                    "costs",
                    None,
                    key,
                    f"the {key} cost is not a finite number ({value}); check the unit costs and "
                    "the plan's capacities",
                )
            )
    return out


def workforce(scenario: Scenario, plan: Plan) -> dict[str, float]:
    """Whole-time equivalents needed by staff group."""
    wte = dict.fromkeys(STAFF_GROUPS, 0.0)
    per = scenario.costs.wte_per_unit
    for svc in SERVICES:
        units = plan.total(svc)
        for g in STAFF_GROUPS:
            wte[g] += units * per[svc][g]
    for g in STAFF_GROUPS:
        wte[g] += hub_positions(plan) * per["hub"][g]
    wte["total"] = sum(wte[g] for g in STAFF_GROUPS)
    return wte
