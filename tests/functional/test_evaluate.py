"""The scorecard: keys, plausibility against national figures, and metamorphic properties."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pathways.instance import prepare
from pathways.kpis import HEADLINE_KPIS, evaluate
from pathways.plan import Plan, SitePlan, baseline_plan
from pathways.scenario import Capacity, load_scenario, with_changes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(REPO / "data" / "scenarios" / "sussex.yaml")


@pytest.fixture(scope="module")
def inst(scenario):
    return prepare(scenario)


def bump(plan: Plan, site_id: str, field: str, by: int) -> Plan:
    sites = []
    for sp in plan.sites:
        if sp.site_id == site_id:
            cap = sp.capacity.model_dump()
            cap[field] = max(0, cap[field] + by)
            sp = SitePlan(site_id=sp.site_id, capacity=Capacity(**cap))
        sites.append(sp)
    return plan.model_copy(update={"sites": tuple(sites)})


def test_scorecard_json_has_every_headline_key_with_rates_and_quintiles(inst):
    card = evaluate(inst)
    data = json.loads(card.to_json())
    for k in HEADLINE_KPIS:
        assert k in data["kpis"], k
        assert k in data["by_imd_quintile"], k
        assert set(data["by_imd_quintile"][k]) == {"1", "2", "3", "4", "5"}
        assert k in data["imd_gap_q1_minus_q5"], k
    for k in ("admissions_per_year", "oap_placements_per_year", "oap_bed_days_per_year",
              "oap_cost_gbp_per_year", "crisis_house_episodes_per_year", "total_cost_gbp_per_year"):
        assert data["per_100k"][k] == pytest.approx(data["kpis"][k] / card.population * 1e5)
    # quintile counts add up to the footprint total
    q = card.by_quintile
    assert q["admissions_per_year"].sum() == pytest.approx(card.kpis["admissions_per_year"])
    assert q["oap_bed_days_per_year"].sum() == pytest.approx(card.kpis["oap_bed_days_per_year"])
    assert q["population"].sum() == pytest.approx(1_659_921)


def test_sussex_baseline_is_plausible_against_national_figures(inst):
    """Sussex today against England's published figures (docs/calibration.md, section 4).

    England (54,728,204 people): 19.5 adult acute beds per 100k at 95% occupancy and a
    33-day stay (Little's law) plus 206,000 OAP bed-days a year at 40 days each give
    214.3 admissions per 100k; OAP bed-days are 376 per 100k. Sussex is less deprived
    than England (lower demand per head) and has 18 beds per 100k, so its admissions
    per head lie a little below England's, its occupancy near England's 94-95% and its
    OAP bed-days per head no higher than England's.
    """
    card = evaluate(inst)
    k = card.kpis
    assert card.population == pytest.approx(1_659_921)

    def per_100k(x: float) -> float:
        return x / card.population * 1e5

    england = 54_728_204
    local_admissions = england * 19.5 / 1e5 * 0.95 * 365 / 33
    england_admissions_per_100k = (local_admissions + 206_000 / 40) / england * 1e5
    assert england_admissions_per_100k == pytest.approx(214.3, abs=0.05)
    assert (
        0.8 * england_admissions_per_100k
        <= per_100k(k["admissions_per_year"])
        <= england_admissions_per_100k
    )
    assert 0.90 <= k["inpatient_occupancy"] <= 0.97
    england_oap_days_per_100k = 206_000 / england * 1e5  # about 376
    assert (
        england_oap_days_per_100k / 3
        <= per_100k(k["oap_bed_days_per_year"])
        <= england_oap_days_per_100k
    )
    # Little's law on the local wards: occupied beds = local admissions x stay / 365
    beds = sum(s.capacity.inpatient_beds for s in inst.scenario.sites)
    local = k["admissions_per_year"] - k["oap_placements_per_year"]
    assert k["inpatient_occupancy"] * beds == pytest.approx(local * 33 / 365, rel=1e-9)
    assert k["oap_bed_days_per_year"] == pytest.approx(40 * k["oap_placements_per_year"])
    assert 0 < k["mobile_response_within_standard_share"] < 1
    assert 0 < k["hub_service_level"] <= 1
    assert k["p95_travel_mins"] >= k["mean_travel_mins"] > 0


def test_evaluate_is_pure_and_deterministic(scenario, inst):
    before = scenario.model_dump()
    a = evaluate(scenario).to_dict()
    b = evaluate(inst).to_dict()
    assert a == b
    assert scenario.model_dump() == before


def test_more_beds_never_raise_oaps(inst):
    plan = baseline_plan(inst.scenario)
    prev = evaluate(inst, plan).kpis["oap_bed_days_per_year"]
    for _ in range(4):
        plan = bump(plan, "RX213", "inpatient_beds", 5)
        now = evaluate(inst, plan).kpis["oap_bed_days_per_year"]
        assert now <= prev + 1e-9
        prev = now


def test_more_crisis_house_places_never_raise_admissions(inst):
    plan = baseline_plan(inst.scenario)
    house = next(s.site_id for s in inst.scenario.sites if s.capacity.crisis_house_places > 0)
    prev = evaluate(inst, plan).kpis["admissions_per_year"]
    for _ in range(4):
        plan = bump(plan, house, "crisis_house_places", 2)
        now = evaluate(inst, plan).kpis["admissions_per_year"]
        assert now <= prev + 1e-9
        prev = now
    # opening a new house also never raises admissions
    opened = bump(plan, "CAND01", "crisis_house_places", 6)
    assert evaluate(inst, opened).kpis["admissions_per_year"] <= prev + 1e-9


def test_more_demand_never_lowers_oaps(scenario, inst):
    prev = evaluate(inst).kpis["oap_bed_days_per_year"]
    for g in (1.05, 1.1, 1.2):
        now = evaluate(inst.with_scenario(with_changes(scenario, {"demand.growth_factor": g}))).kpis[
            "oap_bed_days_per_year"]
        assert now >= prev - 1e-9
        prev = now


def test_doubling_capacity_and_demand_lowers_blocking(scenario, inst):
    base = evaluate(inst)
    doubled_plan = Plan(
        name="x2",
        sites=tuple(SitePlan(site_id=s.site_id, capacity=Capacity(**{k: 2 * v for k, v in s.capacity.model_dump().items()}))
                    for s in scenario.sites),
        hub=scenario.hub,
    )
    big = inst.with_scenario(with_changes(scenario, {"demand.growth_factor": 2.0}))
    doubled = evaluate(big, doubled_plan)
    assert doubled.kpis["inpatient_blocked_share"] < base.kpis["inpatient_blocked_share"]
    assert doubled.kpis["admissions_per_year"] == pytest.approx(2 * base.kpis["admissions_per_year"], rel=0.05)


def test_zero_beds_sends_every_admission_out_of_area(inst):
    plan = baseline_plan(inst.scenario)
    for s in inst.scenario.sites:
        plan = bump(plan, s.site_id, "inpatient_beds", -1000)
    k = evaluate(inst, plan).kpis
    assert k["oap_placements_per_year"] == pytest.approx(k["admissions_per_year"])
    assert k["inpatient_occupancy"] == 0


def test_allocation_in_plan_is_used(inst):
    plan = baseline_plan(inst.scenario)
    card = evaluate(inst, plan)
    # route everyone's crisis-house referrals to nowhere: admissions rise
    from pathways.plan import AllocationShare

    far = plan.model_copy(update={"allocation": (
        AllocationShare(service="crisis_house", area_code=inst.areas.index[0], site_id="CAND27", share=1.0),)})
    assert evaluate(inst, far).kpis["admissions_per_year"] > card.kpis["admissions_per_year"]
    assert np.isfinite(evaluate(inst, far).kpis["mean_travel_mins"])
