"""What one replication needs, taken from a scenario and a plan exactly as ``evaluate`` does.

:func:`build_model` reads the same tiers, routing, capacities, allocations and travel
times as :func:`pathways.kpis.evaluate` (it calls the same helpers) and keeps them in a
small picklable :class:`Model`, so replications can run in other processes (a local
pool or Dask) without preparing the footprint again. It also keeps the analytic
values that the simulation is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pathways import demand
from pathways.errors import InputError, Problem
from pathways.instance import Instance, capacity_arrays, prepare
from pathways.kpis import Scorecard, evaluate, nearest_allocation, plan_allocation
from pathways.plan import Plan, baseline_plan, check_plan
from pathways.scenario import SHIFT_HOURS, SHIFTS, Scenario

DAYS_PER_YEAR = 365.0
OUTCOMES = ("resolved", "home_treatment", "crisis_house", "inpatient")


@dataclass(frozen=True)
class Model:
    """Inputs of a replication (time in days, travel in minutes)."""

    # demand
    episodes_per_year: float
    area_cum: np.ndarray  # cumulative share of episodes by area
    week: np.ndarray  # 168 relative rates, mean 1 (Monday 00:00 first)
    # routing
    first_contact: np.ndarray  # shares: mobile, place of safety, crisis house
    from_mobile: np.ndarray  # shares over OUTCOMES
    from_pos: np.ndarray
    ch_to_inpatient: float
    full_to_inpatient: float
    # crisis houses
    ch_cum: np.ndarray  # (areas, sites) cumulative allocation shares
    places: np.ndarray  # per site
    house_load: np.ndarray  # analytic offered load per site (stationary start)
    # beds
    beds: int
    bed_travel: np.ndarray  # per area, minutes to the nearest open local bed
    pool_load: float
    pool_blocked: float
    # mobile teams
    mob_cum: np.ndarray  # (areas, sites)
    teams: np.ndarray  # per site
    standard_mins: np.ndarray  # per area
    # travel
    travel: np.ndarray  # (areas, sites) minutes
    # hub
    calls_per_year: float
    handlers_by_hour: np.ndarray  # 24 values
    # places of safety
    s136_per_year: float
    suites: int
    # scenario parameters
    inpatient_los: float
    crisis_house_los: float
    oap_los: float
    pos_los: float
    mobile_service_days: float
    dispatch_mins: float
    aht_days: float
    patience_days: float
    answer_within_days: float
    oap_travel_mins: float
    oap_gbp_per_bed_day: float
    veterans_share: float
    # plan totals that do not depend on chance
    fixed_cost_gbp: float  # total revenue cost less the OAP cost
    capital_cost_gbp: float
    site_ids: tuple[str, ...]
    plan_name: str


def _whole(values: np.ndarray, what: str) -> np.ndarray:
    out = np.rint(values)
    if np.any(np.abs(out - values) > 1e-9):
        raise InputError(
            Problem("plan", None, what, "simulation needs whole numbers of beds and places")
        )
    return out.astype(int)


def _cum(alloc: np.ndarray) -> np.ndarray:
    return np.cumsum(np.clip(alloc, 0.0, None), axis=1)


def handlers_by_hour(plan: Plan) -> np.ndarray:
    out = np.zeros(24, dtype=int)
    for shift in SHIFTS:
        a, b = SHIFT_HOURS[shift]
        out[a:b] = int(plan.hub.of(shift))
    return out


def build_model(
    scenario: Scenario | Instance, plan: Plan | None = None
) -> tuple[Model, Scorecard, Instance]:
    """The model of one plan (default: today's capacity), its scorecard and instance."""
    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    sc = inst.scenario
    plan = baseline_plan(sc) if plan is None else plan
    check_plan(sc, plan)
    card = evaluate(inst, plan)
    q, co, r = sc.queues, inst.coeffs, sc.pathway.routing
    cap = capacity_arrays(inst, plan)
    places = _whole(cap["crisis_house"], "crisis_house_places")
    teams = _whole(cap["mobile_team"], "mobile_teams")
    suites = int(_whole(np.array([cap["place_of_safety"].sum()]), "place_of_safety_suites")[0])
    beds = int(_whole(np.array([cap["inpatient"].sum()]), "inpatient_beds")[0])
    t = inst.travel_mins

    ch_alloc = plan_allocation(inst, plan, "crisis_house")
    if ch_alloc is None:
        ch_alloc = nearest_allocation(t, places > 0, sc.pathway.crisis_house_max_travel_mins)
    mob_alloc = plan_allocation(inst, plan, "mobile_team")
    if mob_alloc is None:
        mob_alloc = nearest_allocation(t, teams > 0)
    bed_open = cap["inpatient"] > 0
    bed_t = (
        np.where(bed_open[None, :], t, np.inf).min(axis=1)
        if bed_open.any()
        else np.full(inst.n_areas, q.oap_travel_mins)
    )
    e = np.asarray(inst.episodes, float)
    total = float(e.sum())
    week = demand.week_profile(sc.demand) * demand.HOURS_PER_WEEK
    fc = r["first_contact"]
    model = Model(
        episodes_per_year=total,
        area_cum=np.cumsum(e) / total if total > 0 else np.linspace(0, 1, len(e)),
        week=np.asarray(week, float),
        first_contact=np.array([fc["mobile_team"], fc["place_of_safety"], fc["crisis_house"]]),
        from_mobile=np.array([r["mobile_team"][k] for k in OUTCOMES]),
        from_pos=np.array([r["place_of_safety"][k] for k in OUTCOMES]),
        ch_to_inpatient=float(co.ch_to_inpatient),
        full_to_inpatient=float(co.full_to_inpatient),
        ch_cum=_cum(ch_alloc),
        places=places,
        house_load=np.asarray(card.by_site["crisis_house_arrivals_per_year"], float)
        / DAYS_PER_YEAR
        * q.crisis_house_los_days,
        beds=beds,
        bed_travel=np.asarray(bed_t, float),
        pool_load=float(card.extra["inpatient_offered_load"]),
        pool_blocked=float(card.kpis["inpatient_blocked_share"]),
        mob_cum=_cum(mob_alloc),
        teams=teams,
        standard_mins=np.where(
            inst.rural, q.mobile_standard_rural_mins, q.mobile_standard_urban_mins
        ).astype(float),
        travel=np.asarray(t, float),
        calls_per_year=float(card.kpis["hub_calls_per_year"]),
        handlers_by_hour=handlers_by_hour(plan),
        s136_per_year=float(card.extra["s136_per_year"]),
        suites=suites,
        inpatient_los=float(q.inpatient_los_days),
        crisis_house_los=float(q.crisis_house_los_days),
        oap_los=float(q.oap_los_days),
        pos_los=float(q.place_of_safety_los_days),
        mobile_service_days=float(q.mobile_service_hours) / 24.0,
        dispatch_mins=float(q.mobile_dispatch_mins),
        aht_days=float(q.hub_aht_seconds) / 86400.0,
        patience_days=float(q.hub_mean_patience_seconds) / 86400.0,
        answer_within_days=float(q.hub_answer_within_seconds) / 86400.0,
        oap_travel_mins=float(q.oap_travel_mins),
        oap_gbp_per_bed_day=float(sc.costs.oap_gbp_per_bed_day),
        veterans_share=float(sc.demand.veterans_share),
        fixed_cost_gbp=float(card.kpis["total_cost_gbp_per_year"] - card.kpis["oap_cost_gbp_per_year"]),
        capital_cost_gbp=float(card.kpis["capital_cost_gbp"]),
        site_ids=tuple(inst.site_ids),
        plan_name=plan.name,
    )
    return model, card, inst


def analytic_values(card: Scorecard, model: Model) -> dict[str, Any]:
    """The analytic counterpart of every simulated KPI that has one."""
    out: dict[str, float] = {k: float(v) for k, v in card.kpis.items()}
    for j, sid in enumerate(model.site_ids):
        if card.by_site["crisis_house_arrivals_per_year"].iloc[j] > 0:
            out[f"crisis_house_turned_away_share[{sid}]"] = float(
                card.by_site["crisis_house_blocked_share"].iloc[j]
            )
    hub = card.by_hour
    calls = hub["calls_per_hour"].to_numpy(float)
    for h in range(24):
        sel = hub["hour"].to_numpy() == h
        w = calls[sel]
        if w.sum() > 0:
            out[f"hub_service_level[h{h:02d}]"] = float((hub["service_level"][sel] * w).sum() / w.sum())
    out["mobile_all_busy_share"] = float(
        (card.by_site["mobile_all_busy_share"] * card.by_site["mobile_arrivals_per_year"]).sum()
        / max(card.by_site["mobile_arrivals_per_year"].sum(), 1e-12)
    )
    out["hub_abandonment_share"] = float(card.extra["hub_abandonment_share"])
    return out
