"""No plan the optimiser returns breaks a limit, judged by evaluate, on random scenarios.

Each case draws a small Sussex footprint (a few wards, random candidate sites) and
random limits: budget, mobile response standard, crisis-line service level,
crisis-house travel coverage, equity gap and a workforce cap. The optimiser must
either return a plan that ``breaches`` finds within every limit or say the scenario is
infeasible (or that it found no plan in time); it may never return a broken plan.
The search is stopped by a node limit, so each case gives the same answer on any
machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathways.constraints import breaches
from pathways.errors import InfeasibleError, NoPlanInTimeError
from pathways.instance import prepare
from pathways.kpis import evaluate
from pathways.optimise import SolverOptions, optimise_with_baselines
from pathways.scenario import STAFF_GROUPS, load_scenario, scenario_from_dict, scenario_to_dict

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
SEEDS = range(11, 17)


def limited_scenario(seed: int):
    """A small footprint with random limits, some of them tight."""
    rng = np.random.default_rng(seed)
    base = scenario_to_dict(load_scenario(SUSSEX))
    wards = [s for s in base["sites"] if s["status"] == "existing" and s["capacity"]["inpatient_beds"] > 0]
    cands = [s for s in base["sites"] if s["site_id"].startswith("CAND")]
    pick = rng.choice(len(cands), size=int(rng.integers(4, 8)), replace=False)
    sites = wards[: int(rng.integers(2, 4))] + [cands[i] for i in pick]
    base["sites"] = sites
    today = evaluate(scenario_from_dict(base, base_dir=str(SUSSEX.parent)))
    k = today.kpis
    constraints = {
        "mobile_within_standard_share_min": float(rng.uniform(0.3, 0.75)),
        "hub_service_level_min": float(rng.uniform(0.6, 0.9)),
        "equity": {"enabled": bool(rng.random() < 0.6), "max_gap_share": float(rng.uniform(0.0, 0.1))},
    }
    if rng.random() < 0.6:
        constraints["crisis_house_travel_mins"] = float(rng.uniform(30, 60))
        constraints["crisis_house_population_share_min"] = float(rng.uniform(0.2, 0.6))
    if rng.random() < 0.5:
        groups = sorted(g for g in today.workforce_wte if g in STAFF_GROUPS)
        group = groups[int(rng.integers(len(groups)))]
        staff = float(today.workforce_wte[group])
        if staff > 0:
            constraints["workforce_caps_wte"] = {group: staff * float(rng.uniform(1.0, 1.3))}
    base["constraints"] = constraints
    base["budget"] = {
        "revenue_gbp_per_year": float(k["total_cost_gbp_per_year"] * rng.uniform(0.97, 1.15)),
        "capital_gbp": float(rng.uniform(0, 3e6)) if rng.random() < 0.5 else None,
    }
    base["objective"] = {"mode": "min_weighted", "weights": {
        "oap_bed_day": 1.0, "admission": float(rng.uniform(2, 12)), "travel_hour": float(rng.uniform(0, 0.05))}}
    return scenario_from_dict(base, base_dir=str(SUSSEX.parent))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_a_returned_plan_meets_every_limit(seed):
    scenario = limited_scenario(seed)
    opts = SolverOptions(time_limit_s=600, node_limit=50, workers=1)
    try:
        res = optimise_with_baselines(scenario, opts)
    except InfeasibleError as err:
        assert str(err).strip(), "an infeasible scenario must say why"
        return
    except NoPlanInTimeError:  # allowed by the contract; never a broken plan
        return
    card = res.cards["optimised"]
    broken = breaches(prepare(scenario), card, res.cards["current"], res.goals)
    assert not broken, [b.message for b in broken]
    assert res.plan.solver.status in ("OPTIMAL", "TIME_LIMIT", "HEURISTIC")
    assert card.kpis["total_cost_gbp_per_year"] <= scenario.budget.revenue_gbp_per_year * (1 + 1e-9)
