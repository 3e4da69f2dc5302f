"""The optimiser against its judge (evaluate), its baselines and its error messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pathways.errors import InfeasibleError
from pathways.kpis import evaluate
from pathways.optimise import SolverOptions, objective_value, optimise_with_baselines
from pathways.plan import load_plan
from pathways.scenario import (
    SERVICES,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
    with_changes,
)

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
AGREE = ("oap_bed_days_per_year", "admissions_per_year", "total_cost_gbp_per_year")


def assert_agrees(plan, card):
    for k in AGREE:
        assert plan.predicted[k] == pytest.approx(card.kpis[k], rel=0.01, abs=0.5), k


@pytest.fixture(scope="module")
def demo():
    scenario = load_scenario(SUSSEX)
    return scenario, optimise_with_baselines(scenario, SolverOptions(time_limit_s=60))


def test_demo_is_rich_enough():
    s = load_scenario(SUSSEX)
    assert sum(site.status == "candidate" for site in s.sites) >= 25
    services = {svc for site in s.sites for svc in site.services}
    assert {"inpatient", "crisis_house", "mobile_team"} <= services  # plus the crisis line's handlers


def test_demo_plan_agrees_with_evaluate_and_beats_baselines(demo):
    scenario, res = demo
    plan, cards = res.plan, res.cards
    assert plan.solver.status in ("OPTIMAL", "TIME_LIMIT", "HEURISTIC")
    assert plan.solver.best_bound <= plan.solver.objective + 1e-6
    assert_agrees(plan, cards["optimised"])
    obj = res.objectives
    assert obj["optimised"] <= obj["pro rata"] + 1e-6
    assert obj["optimised"] <= obj["greedy marginal"] + 1e-6
    # the plan respects the budget and the response standard
    k = cards["optimised"].kpis
    assert k["total_cost_gbp_per_year"] <= scenario.budget.revenue_gbp_per_year * (1 + 1e-6)
    assert k["mobile_response_within_standard_share"] >= scenario.constraints.mobile_within_standard_share_min - 1e-6
    assert k["hub_service_level"] >= scenario.constraints.hub_service_level_min - 1e-6
    # and the objective it reports is the one evaluate computes
    assert objective_value(cards["optimised"], "min_weighted", scenario.objective.weights) == pytest.approx(
        plan.predicted["objective"], rel=0.01)


def random_scenario(seed: int):
    """A small Sussex scenario: a few existing wards and random candidate sites."""
    rng = np.random.default_rng(seed)
    base = scenario_to_dict(load_scenario(SUSSEX))
    existing = [s for s in base["sites"] if s["status"] == "existing" and s["capacity"]["inpatient_beds"] > 0]
    cands = [s for s in base["sites"] if s["site_id"].startswith("CAND")]
    pick = rng.choice(len(cands), size=5, replace=False)
    sites = existing[:3] + [cands[i] for i in pick]
    for s in sites:
        if s["site_id"].startswith("CAND"):
            s["capacity"] = {**s["capacity"], "crisis_house_places": int(rng.integers(0, 2)) * 6}
            s["status"] = "existing" if s["capacity"]["crisis_house_places"] else "candidate"
    base.update(sites=sites, constraints={"mobile_within_standard_share_min": float(rng.uniform(0.3, 0.6))})
    today = evaluate(scenario_from_dict(base, base_dir=str(SUSSEX.parent))).kpis["total_cost_gbp_per_year"]
    base["budget"] = {"revenue_gbp_per_year": float(today * rng.uniform(1.0, 1.1)), "capital_gbp": None}
    base["objective"] = {"mode": "min_weighted", "weights": {"oap_bed_day": 1.0, "admission": float(rng.uniform(2, 12)),
                                                             "travel_hour": 0.02}}
    return scenario_from_dict(base, base_dir=str(SUSSEX.parent))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_small_scenarios_agree_and_beat_baselines(seed):
    scenario = random_scenario(seed)
    res = optimise_with_baselines(scenario, SolverOptions(time_limit_s=30))
    assert_agrees(res.plan, res.cards["optimised"])
    assert res.objectives["optimised"] <= min(res.objectives["pro rata"], res.objectives["greedy marginal"]) + 1e-6


def test_min_cost_mode_meets_target():
    scenario = random_scenario(4)
    target = evaluate(scenario).kpis["oap_bed_days_per_year"] * 0.5
    s2 = with_changes(scenario, {"objective.mode": "min_cost", "objective.targets.oap_bed_days_per_year_max": target})
    res = optimise_with_baselines(s2, SolverOptions(time_limit_s=30))
    assert res.cards["optimised"].kpis["oap_bed_days_per_year"] <= target * 1.01 + 0.5
    assert_agrees(res.plan, res.cards["optimised"])


def test_budget_that_cannot_fund_locked_services_is_explained():
    s = with_changes(load_scenario(SUSSEX), {"budget.revenue_gbp_per_year": 1_000_000.0})
    with pytest.raises(InfeasibleError, match="cannot fund the locked services"):
        optimise_with_baselines(s, SolverOptions(time_limit_s=20))


def test_unreachable_response_standard_is_explained():
    s = with_changes(load_scenario(SUSSEX), {"constraints.mobile_within_standard_share_min": 1.0})
    with pytest.raises(InfeasibleError, match="mobile response standard"):
        optimise_with_baselines(s, SolverOptions(time_limit_s=20))


def test_cli_writes_plan_that_evaluate_accepts(tmp_path):
    scenario = random_scenario(5)
    from pathways.scenario import dump_scenario

    spath = tmp_path / "small.yaml"
    spath.write_text(dump_scenario(scenario))
    # the file the command line reads is the scenario itself (the dump loses nothing)
    assert load_scenario(spath).fingerprint() == scenario.fingerprint()
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "pathways.cli", "optimise", str(spath), "--out", str(out),
                          "--time-limit", "120", "--no-suppress"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    for name in ("plan.yaml", "plan_sites.csv", "plan_sites.geojson", "scorecard.csv", "scorecard.xlsx", "summary.txt"):
        assert (out / name).exists(), name
    assert "solving" in run.stderr  # progress was shown
    plan = load_plan(out / "plan.yaml")
    ev = subprocess.run([sys.executable, "-m", "pathways.cli", "evaluate", str(spath), "--plan", str(out / "plan.yaml"),
                         "--json", "--no-suppress"], capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    import json

    kpis = json.loads(ev.stdout)["kpis"]
    assert kpis["admissions_per_year"] == pytest.approx(plan.predicted["admissions_per_year"], rel=0.01)
    # the command line's scorecard is the library's, KPI for KPI, for the plan it wrote
    card = evaluate(scenario, plan)
    assert set(kpis) == set(card.kpis)
    for k, v in card.kpis.items():
        assert kpis[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    # and plan_sites.csv lists the plan's capacities next to today's
    sites = pd.read_csv(out / "plan_sites.csv", index_col="site_id")
    assert list(sites.index) == [sp.site_id for sp in plan.sites]
    for sp in plan.sites:
        now = scenario.site(sp.site_id).capacity
        for svc in SERVICES:
            assert sites.loc[sp.site_id, f"{svc}_plan"] == sp.capacity.of(svc), (sp.site_id, svc)
            assert sites.loc[sp.site_id, f"{svc}_now"] == now.of(svc), (sp.site_id, svc)
