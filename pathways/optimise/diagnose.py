"""Explain, in commissioners' words, why no plan meets the constraints.

First direct checks (each a sentence a commissioner recognises), then, if none
fires, a relaxation search: drop one family of constraints at a time and see
which single family makes the scenario feasible again.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from pathways.costs import unit_cost
from pathways.kpis import mobile_within_standard

log = logging.getLogger(__name__)


def _gbp(x: float) -> str:
    return f"GBP {x / 1e6:,.1f}M"


def locked_minimum_cost(inst, goals) -> float:
    from pathways.optimise.model import site_bounds

    total = 0.0
    for svc in ("inpatient", "crisis_house", "mobile_team"):
        _, lo, _, must, _ = site_bounds(inst, svc)
        total += float((lo * must).sum()) * unit_cost(inst.scenario, svc)
    total += sum(
        inst.scenario.site(s).capacity.place_of_safety_suites for s in inst.site_ids
    ) * unit_cost(inst.scenario, "place_of_safety")
    return total


def direct_checks(inst, goals) -> list[str]:
    from pathways.optimise.model import site_bounds

    reasons = []
    sc = inst.scenario
    if goals.mode == "min_weighted":
        need = locked_minimum_cost(inst, goals)
        if need > goals.budget_gbp:
            reasons.append(
                f"the budget ({_gbp(goals.budget_gbp)} a year) cannot fund the locked services "
                f"({_gbp(need)} a year before any out-of-area placements)"
            )
    _, _, mob_hi, _, mob_host = site_bounds(inst, "mobile_team")
    if goals.mobile_within_min > 0:
        if not mob_host.any():
            reasons.append("no site may host a mobile team, so the response standard cannot be met")
        else:
            reachable = mobile_within_standard(inst)[:, mob_host].any(axis=1)
            best = float(
                (inst.mobile_episodes * reachable).sum() / max(inst.mobile_episodes.sum(), 1e-9)
            )
            if best < goals.mobile_within_min:
                reasons.append(
                    f"the mobile response standard ({goals.mobile_within_min:.0%} within the urban/rural "
                    f"standard) cannot be met: even with a team at every allowed base, only {best:.0%} "
                    "of episodes are within reach"
                )
    if goals.ch_travel_mins is not None and goals.ch_pop_share_min is not None:
        _, _, _, _, ch_host = site_bounds(inst, "crisis_house")
        pop = inst.areas["pop_total"].to_numpy(float)
        near = (
            (inst.travel_mins[:, ch_host] <= goals.ch_travel_mins).any(axis=1)
            if ch_host.any()
            else np.zeros(len(pop), bool)
        )
        share = float(pop[near].sum() / pop.sum())
        if share < goals.ch_pop_share_min:
            reasons.append(
                f"crisis-house access ({goals.ch_pop_share_min:.0%} of people within "
                f"{goals.ch_travel_mins:.0f} minutes) cannot be met: with every candidate site open only "
                f"{share:.0%} are within reach; add candidate sites"
            )
    for g, cap in goals.workforce_caps.items():
        per = sc.costs.wte_per_unit
        need = 0.0
        for svc in ("inpatient", "crisis_house", "mobile_team"):
            _, lo, _, must, _ = site_bounds(inst, svc)
            need += float((lo * must).sum()) * per[svc][g]
        if need > cap:
            reasons.append(
                f"the workforce cap for {g.replace('_', ' ')} ({cap:,.0f} WTE) is below what the "
                f"locked services need ({need:,.0f} WTE)"
            )
    return reasons


FAMILIES = {
    "budget": ("budget_gbp", float("inf"), "the revenue budget"),
    "mobile": ("mobile_within_min", 0.0, "the mobile response standard"),
    "hub": ("hub_sl_min", 0.0, "the crisis-line service level"),
    "ch_travel": ("ch_pop_share_min", None, "the crisis-house travel-time rule"),
    "equity": ("equity_gap", None, "the equity rule"),
    "oap_target": ("oap_bed_days_max", None, "the OAP bed-day target"),
    "adm_target": ("admissions_max", None, "the admissions target"),
    "workforce": ("workforce_caps", {}, "the workforce caps"),
}


def explain_infeasible(inst, goals, opts) -> list[str]:
    reasons = direct_checks(inst, goals)
    if reasons:
        return reasons
    from pathways.optimise.model import SolverOptions, build_model, run_solver

    active = [
        k
        for k, (attr, off, _) in FAMILIES.items()
        if getattr(goals, attr) not in (off, None, {}, 0.0)
    ]
    culprits = []
    quick = SolverOptions(
        time_limit_s=min(10.0, opts.time_limit_s),
        gap=0.05,
        backend=opts.backend,
        nearest_sites=opts.nearest_sites,
    )
    for fam in active:
        attr, off, _ = FAMILIES[fam]
        relaxed = dataclasses.replace(goals, **{attr: off})
        built = build_model(inst, relaxed, quick)
        if run_solver(built, quick, quick.time_limit_s).has_primal_feasible_solution():
            culprits.append(FAMILIES[fam][2])
    if culprits:
        others = [FAMILIES[f][2] for f in active if FAMILIES[f][2] not in culprits]
        if len(culprits) == 1:
            return [
                f"{culprits[0]} cannot be met together with {', '.join(others) or 'the locked services'}"
            ]
        return [
            f"these cannot all be met together: {', '.join(culprits)} (dropping any one of them makes a plan possible)"
        ]
    return [
        "the constraints cannot be met together even when any single rule is dropped; relax the budget "
        "and the service standards, or allow existing services to shrink"
    ]
