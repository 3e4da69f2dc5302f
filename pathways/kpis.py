"""The balanced scorecard: ``evaluate(scenario, plan) -> Scorecard``.

``evaluate`` is the judge of every plan: the optimiser's promises, the app's
numbers and batch results all come from here. It is pure and deterministic:
the same scenario and plan always give the same scorecard.

Model steps (docs/model.md numbers them the same way):

1. demand per area (:mod:`pathways.demand`);
2. crisis-house catchments: the plan's allocation, else each area's quickest open
   house within ``crisis_house_max_travel_mins``; each house is an Erlang loss system;
3. routing through the tiers (:mod:`pathways.pathway`) gives admissions per area;
4. inpatient beds are one pooled loss system (Erlang B with Hayward's peakedness);
   blocked admissions become out-of-area placements (OAPs);
5. mobile teams: each area's quickest base (or the plan's allocation); an episode is
   reached within the standard when the team's drive plus dispatch is within the
   urban/rural standard and a team is free (Erlang C by hour of day);
6. crisis hub: Erlang A (M/M/c+M) by hour of day;
7. places of safety: pooled loss system for section 136 detentions;
8. costs and workforce (:mod:`pathways.costs`);
9. KPIs, per 100k and by IMD quintile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pathways import costs as costs_mod
from pathways import demand, queues
from pathways.instance import Instance, capacity_arrays, prepare
from pathways.pathway import Flows, route
from pathways.plan import Plan, baseline_plan, check_plan
from pathways.scenario import SHIFT_HOURS, SHIFTS, Scenario

HEADLINE_KPIS: tuple[str, ...] = (
    "admissions_per_year",
    "oap_placements_per_year",
    "oap_bed_days_per_year",
    "oap_cost_gbp_per_year",
    "inpatient_occupancy",
    "crisis_house_episodes_per_year",
    "mobile_response_within_standard_share",
    "hub_service_level",
    "mean_travel_mins",
    "p95_travel_mins",
    "total_cost_gbp_per_year",
)
COUNT_KPIS: frozenset[str] = frozenset(
    {
        "episodes_per_year",
        "admissions_per_year",
        "oap_placements_per_year",
        "oap_bed_days_per_year",
        "crisis_house_episodes_per_year",
        "crisis_house_turned_away_per_year",
        "mobile_episodes_per_year",
        "hub_calls_per_year",
        "hub_abandoned_calls_per_year",
        "s136_turned_away_per_year",
        "veteran_episodes_per_year",
    }
)
"""KPIs that count people or events (suppressed below 5 in exports)."""
RATE_KPIS: frozenset[str] = COUNT_KPIS | {"oap_cost_gbp_per_year", "total_cost_gbp_per_year"}
"""KPIs also given per 100,000 population."""
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"mobile_response_within_standard_share", "hub_service_level", "crisis_house_episodes_per_year"}
)


@dataclass(frozen=True)
class Scorecard:
    """What a plan achieves.

    ``kpis`` holds footprint totals; ``per_100k`` the count and cost KPIs per 100,000
    population; ``by_quintile`` every KPI for each IMD quintile (1 = most deprived);
    ``imd_gap`` quintile 1 minus quintile 5 (per 100k for counts and costs).
    """

    kpis: dict[str, float]
    per_100k: dict[str, float]
    by_quintile: pd.DataFrame
    imd_gap: dict[str, float]
    by_site: pd.DataFrame
    by_area: pd.DataFrame
    by_hour: pd.DataFrame
    workforce_wte: dict[str, float]
    cost_breakdown: dict[str, float]
    population: float
    plan_name: str = "plan"
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.kpis[key]

    def to_dict(self) -> dict[str, Any]:
        bq = {
            k: {str(q): _num(v) for q, v in self.by_quintile[k].items()}
            for k in self.by_quintile.columns
        }
        return {
            "plan": self.plan_name,
            "population": self.population,
            "kpis": {k: _num(v) for k, v in self.kpis.items()},
            "per_100k": {k: _num(v) for k, v in self.per_100k.items()},
            "by_imd_quintile": bq,
            "imd_gap_q1_minus_q5": {k: _num(v) for k, v in self.imd_gap.items()},
            "workforce_wte": {k: _num(v) for k, v in self.workforce_wte.items()},
            "cost_breakdown_gbp_per_year": {k: _num(v) for k, v in self.cost_breakdown.items()},
            **({"extra": self.extra} if self.extra else {}),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> pd.DataFrame:
        """KPIs as rows: value, per 100k, each quintile, and the gap."""
        rows = []
        for k, v in self.kpis.items():
            row = {"kpi": k, "value": v, "per_100k": self.per_100k.get(k, np.nan)}
            if k in self.by_quintile.columns:
                for q, qv in self.by_quintile[k].items():
                    row[f"imd_q{q}"] = qv
            row["gap_q1_minus_q5"] = self.imd_gap.get(k, np.nan)
            rows.append(row)
        return pd.DataFrame(rows).set_index("kpi")


def _num(v: Any) -> float | None:
    v = float(v)
    return None if not np.isfinite(v) else v


# ----------------------------------------------------------------------------- allocation


def nearest_allocation(
    travel_mins: np.ndarray, open_mask: np.ndarray, max_mins: float = np.inf
) -> np.ndarray:
    """Each area to its quickest open site within ``max_mins`` (rows may be all zero)."""
    n, m = travel_mins.shape
    alloc = np.zeros((n, m))
    if not open_mask.any():
        return alloc
    t = np.where(open_mask[None, :], travel_mins, np.inf)
    j = np.argmin(t, axis=1)
    ok = t[np.arange(n), j] <= max_mins
    alloc[np.arange(n)[ok], j[ok]] = 1.0
    return alloc


def plan_allocation(inst: Instance, plan: Plan, service: str) -> np.ndarray | None:
    rows = [a for a in plan.allocation if a.service == service]
    if not rows:
        return None
    a_index = {a: i for i, a in enumerate(inst.areas.index)}
    s_index = {s: j for j, s in enumerate(inst.site_ids)}
    alloc = np.zeros((inst.n_areas, len(inst.site_ids)))
    for a in rows:
        if a.area_code in a_index and a.site_id in s_index:
            alloc[a_index[a.area_code], s_index[a.site_id]] += a.share
    sums = alloc.sum(axis=1, keepdims=True)
    return np.where(sums > 1.0, alloc / np.maximum(sums, 1e-12), alloc)


# ----------------------------------------------------------------------------- nodes


def crisis_house_sites(
    inst: Instance, places: np.ndarray, alloc: np.ndarray
) -> dict[str, np.ndarray]:
    """Loss system per crisis house. Returns arrivals, blocking and served share per area."""
    q = inst.scenario.queues
    arrivals = alloc.T @ inst.crisis_house_referrals  # per year, per site
    load = arrivals / 365.0 * q.crisis_house_los_days
    blocked_share = np.where(arrivals > 0, queues.erlang_b(load, places), 0.0)
    served_share_area = alloc @ (1.0 - blocked_share)
    return {
        "arrivals": arrivals,
        "load": load,
        "blocked_share": blocked_share,
        "blocked": arrivals * blocked_share,
        "occupancy": np.where(places > 0, load * (1 - blocked_share) / np.maximum(places, 1), 0.0),
        "served_share_area": np.clip(served_share_area, 0.0, 1.0),
    }


def inpatient_pool(inst: Instance, beds: float, admissions_per_year: float) -> dict[str, float]:
    q = inst.scenario.queues
    load = admissions_per_year / 365.0 * q.inpatient_los_days
    blocked = (
        float(queues.erlang_b_peaked(load, beds, q.inpatient_peakedness))
        if admissions_per_year > 0
        else 0.0
    )
    if beds <= 0:
        blocked = 1.0 if admissions_per_year > 0 else 0.0
    carried = load * (1.0 - blocked)
    return {
        "load": load,
        "blocked_share": blocked,
        "occupancy": carried / beds if beds > 0 else 0.0,
        "oap_placements": admissions_per_year * blocked,
        "oap_bed_days": admissions_per_year * blocked * q.oap_los_days,
    }


def mobile_wait_share(
    inst: Instance, arrivals_per_year: np.ndarray, teams: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Call-weighted probability that all teams at a base are busy, and peak utilisation.

    Erlang C in each of the week's 168 hours (day-of-week x hour-of-day profile).
    """
    q = inst.scenario.queues
    weights = demand.week_profile(inst.scenario.demand)
    load_h = (
        demand.per_hour_rate(arrivals_per_year, inst.scenario.demand) * q.mobile_service_hours
    )  # (m, 168)
    p_wait = queues.erlang_c(load_h, teams[:, None])
    p_wait = np.where(arrivals_per_year[:, None] > 0, p_wait, 0.0)
    share = p_wait @ weights
    peak = np.where(
        teams > 0,
        load_h.max(axis=1) / np.maximum(teams, 1),
        np.where(arrivals_per_year > 0, np.inf, 0.0),
    )
    return share, peak


def mobile_within_standard(inst: Instance) -> np.ndarray:
    """(areas, sites): a team sent from the site reaches the area within its response
    standard (urban or rural), dispatch time included, when it leaves at once."""
    q = inst.scenario.queues
    standard = np.where(inst.rural, q.mobile_standard_rural_mins, q.mobile_standard_urban_mins)
    return (inst.travel_mins + q.mobile_dispatch_mins) <= standard[:, None]


def mobile_teams(inst: Instance, teams: np.ndarray, alloc: np.ndarray) -> dict[str, np.ndarray]:
    demand_area = inst.mobile_episodes
    arrivals = alloc.T @ demand_area
    wait, peak = mobile_wait_share(inst, arrivals, teams)
    covered = mobile_within_standard(inst)
    within_share_area = (alloc * covered) @ (1.0 - wait)
    return {
        "arrivals": arrivals,
        "wait_share": wait,
        "peak_utilisation": peak,
        "covered": covered,
        "within_share_area": within_share_area,
        "covered_share_area": (alloc * covered).sum(axis=1),
    }


def hub_metrics(inst: Instance, handlers: dict[str, int]) -> pd.DataFrame:
    """Crisis-line measures in each of the week's 168 hours (Erlang A)."""
    q = inst.scenario.queues
    calls = demand.calls_per_hour(inst.population, inst.scenario.demand)
    hours = demand.hour_of_day(np.arange(demand.HOURS_PER_WEEK))
    servers = np.zeros(demand.HOURS_PER_WEEK)
    for shift in SHIFTS:
        a, b = SHIFT_HOURS[shift]
        servers[(hours >= a) & (hours < b)] = handlers[shift]
    m = queues.erlang_a_metrics(
        calls, servers, q.hub_aht_seconds, q.hub_mean_patience_seconds, q.hub_answer_within_seconds
    )
    df = pd.DataFrame(
        {
            "day": np.repeat(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], 24),
            "hour": hours,
            "calls_per_hour": calls,
            "handlers": servers,
        }
    )
    for key in ("p_wait", "service_level", "asa_seconds", "abandonment_share"):
        df[key] = np.broadcast_to(np.asarray(m[key], dtype=float), (demand.HOURS_PER_WEEK,))
    df.index.name = "hour_of_week"
    return df


# ----------------------------------------------------------------------------- evaluate


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    return _sorted_quantile(values[order], np.asarray(weights, float)[order], q)


def _sorted_quantile(v: np.ndarray, w: np.ndarray, q: float) -> float:
    """Weighted quantile of values already sorted ascending: the smallest v with cumulative weight >= q."""
    total = w.sum()
    if total <= 0:
        return float("nan")
    cum = np.cumsum(w) / total
    return float(v[np.searchsorted(cum, q, side="left").clip(0, len(v) - 1)])


def evaluate(scenario: Scenario | Instance, plan: Plan | None = None) -> Scorecard:
    """Compute the balanced scorecard of a plan (default: today's capacity)."""
    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    sc = inst.scenario
    if plan is None:
        plan = baseline_plan(sc)
    else:
        check_plan(sc, plan)  # a plan must fit the scenario's sites
    q = sc.queues
    cap = capacity_arrays(inst, plan)
    pop = inst.areas["pop_total"].to_numpy(float)
    quint = inst.quintile
    t = inst.travel_mins

    # (2) crisis houses
    ch_open = cap["crisis_house"] > 0
    ch_alloc = plan_allocation(inst, plan, "crisis_house")
    if ch_alloc is None:
        ch_alloc = nearest_allocation(t, ch_open, sc.pathway.crisis_house_max_travel_mins)
    ch = crisis_house_sites(inst, cap["crisis_house"], ch_alloc)

    # (3)-(4) routing and the inpatient pool
    flows0 = route(inst.episodes, sc.pathway, ch["served_share_area"], 0.0)
    beds = float(cap["inpatient"].sum())
    pool = inpatient_pool(inst, beds, float(flows0.admissions.sum()))
    flows: Flows = route(inst.episodes, sc.pathway, ch["served_share_area"], pool["blocked_share"])

    # (5) mobile teams
    mob_alloc = plan_allocation(inst, plan, "mobile_team")
    if mob_alloc is None:
        mob_alloc = nearest_allocation(t, cap["mobile_team"] > 0)
    mob = mobile_teams(inst, cap["mobile_team"], mob_alloc)
    mob_episodes = flows.mobile_team
    mob_within = mob_episodes * mob["within_share_area"]

    # (6) hub
    hub = hub_metrics(inst, {s: plan.hub.of(s) for s in SHIFTS})
    calls = hub["calls_per_hour"].to_numpy()
    calls_year = float(calls.sum() * 365 / demand.DAYS_PER_CYCLE)
    hub_sl = float((hub["service_level"] * calls).sum() / calls.sum()) if calls.sum() > 0 else 1.0
    hub_abandon = (
        float((hub["abandonment_share"] * calls).sum() / calls.sum()) if calls.sum() > 0 else 0.0
    )

    # (7) places of safety
    s136 = demand.s136_per_year(inst.population, sc.demand, q)
    suites = float(cap["place_of_safety"].sum())
    pos_block = (
        float(queues.erlang_b(s136 / 365.0 * q.place_of_safety_los_days, suites))
        if s136 > 0
        else 0.0
    )

    # travel: journeys to the crisis house, to a local bed or out of area, and mobile
    # responses. Every referral travels to the house of its catchment (a full house turns
    # people away at its door), which is also how the optimiser's travel burden counts them.
    ch_trip_w = ch_alloc * flows.crisis_house_referrals[:, None]
    bed_open = cap["inpatient"] > 0
    bed_t = (
        np.where(bed_open[None, :], t, np.inf).min(axis=1)
        if bed_open.any()
        else np.full(len(pop), q.oap_travel_mins)
    )
    mob_trip_w = mob_alloc * mob_episodes[:, None]
    trip_t = np.concatenate([t.ravel(), bed_t, np.full(len(pop), q.oap_travel_mins), t.ravel()])
    trip_w = np.concatenate(
        [ch_trip_w.ravel(), flows.admitted_local, flows.admitted_out_of_area, mob_trip_w.ravel()]
    )
    trip_area = np.concatenate(
        [
            np.repeat(np.arange(len(pop)), t.shape[1]),
            np.arange(len(pop)),
            np.arange(len(pop)),
            np.repeat(np.arange(len(pop)), t.shape[1]),
        ]
    )
    keep = trip_w > 0  # most area-site pairs carry no journeys
    trip_t, trip_w, trip_area = trip_t[keep], trip_w[keep], trip_area[keep]

    # (8) costs and workforce
    cost = costs_mod.plan_costs(sc, plan, oap_bed_days=pool["oap_bed_days"])
    wte = costs_mod.workforce(sc, plan)

    # per-area table
    area_oap_days = flows.admitted_out_of_area * q.oap_los_days
    trip_w_area = np.bincount(trip_area, weights=trip_w, minlength=len(pop))
    trip_tw_area = np.bincount(trip_area, weights=trip_w * trip_t, minlength=len(pop))
    calls_area = calls_year * pop / max(pop.sum(), 1.0)
    share_of = lambda x: x / x.sum() if x.sum() > 0 else np.zeros_like(x)  # noqa: E731
    area_cost = (
        cost["inpatient"] * share_of(flows.admitted_local)
        + cost["crisis_house"] * share_of(flows.crisis_house_served)
        + cost["mobile_team"] * share_of(mob_episodes)
        + (cost["hub"] + cost["place_of_safety"]) * share_of(pop)
        + area_oap_days * sc.costs.oap_gbp_per_bed_day
    )
    by_area = pd.DataFrame(
        {
            "population": pop,
            "imd_quintile": quint,
            "rural": inst.rural,
            "episodes_per_year": flows.episodes,
            "admissions_per_year": flows.admissions,
            "oap_placements_per_year": flows.admitted_out_of_area,
            "oap_bed_days_per_year": area_oap_days,
            "oap_cost_gbp_per_year": area_oap_days * sc.costs.oap_gbp_per_bed_day,
            "crisis_house_episodes_per_year": flows.crisis_house_served,
            "crisis_house_turned_away_per_year": flows.crisis_house_turned_away,
            "mobile_episodes_per_year": mob_episodes,
            "mobile_within_standard_per_year": mob_within,
            "mobile_response_within_standard_share": np.divide(
                mob_within, mob_episodes, out=np.zeros_like(mob_within), where=mob_episodes > 0
            ),
            "mobile_travel_mins": np.where(
                mob_alloc.sum(axis=1) > 0,
                (mob_alloc * t).sum(axis=1) / np.maximum(mob_alloc.sum(axis=1), 1e-12),
                np.nan,
            ),
            "crisis_house_reach_share": ch_alloc.sum(axis=1),
            "mobile_covered_share": mob["covered_share_area"],
            "crisis_house_travel_mins": np.where(
                ch_alloc.sum(axis=1) > 0,
                (ch_alloc * t).sum(axis=1) / np.maximum(ch_alloc.sum(axis=1), 1e-12),
                np.nan,
            ),
            "mean_travel_mins": np.divide(
                trip_tw_area, trip_w_area, out=np.full(len(pop), np.nan), where=trip_w_area > 0
            ),
            "hub_calls_per_year": calls_area,
            "total_cost_gbp_per_year": area_cost,
        },
        index=inst.areas.index,
    )

    kpis = {
        "episodes_per_year": float(flows.episodes.sum()),
        "admissions_per_year": float(flows.admissions.sum()),
        "oap_placements_per_year": pool["oap_placements"],
        "oap_bed_days_per_year": pool["oap_bed_days"],
        "oap_cost_gbp_per_year": cost["oap"],
        "inpatient_occupancy": pool["occupancy"],
        "inpatient_blocked_share": pool["blocked_share"],
        "crisis_house_episodes_per_year": float(flows.crisis_house_served.sum()),
        "crisis_house_turned_away_per_year": float(flows.crisis_house_turned_away.sum()),
        "mobile_episodes_per_year": float(mob_episodes.sum()),
        "mobile_response_within_standard_share": float(mob_within.sum() / mob_episodes.sum())
        if mob_episodes.sum() > 0
        else 1.0,
        "hub_calls_per_year": calls_year,
        "hub_service_level": hub_sl,
        "hub_abandoned_calls_per_year": calls_year * hub_abandon,
        "s136_turned_away_per_year": s136 * pos_block,
        "mean_travel_mins": float((trip_w * trip_t).sum() / trip_w.sum())
        if trip_w.sum() > 0
        else float("nan"),
        "p95_travel_mins": _weighted_quantile(trip_t, trip_w, 0.95),
        "total_cost_gbp_per_year": cost["total"],
        "capital_cost_gbp": cost["capital"],
        "travel_burden_hours_per_year": float(
            ((ch_alloc * t) @ np.ones(t.shape[1]) * flows.crisis_house_referrals).sum()
            + ((mob_alloc * t) @ np.ones(t.shape[1]) * mob_episodes).sum()
        )
        / 60.0,
        "veteran_episodes_per_year": float(flows.episodes.sum() * sc.demand.veterans_share),
    }
    total_pop = float(pop.sum())
    per_100k = {k: v / total_pop * 1e5 for k, v in kpis.items() if k in RATE_KPIS}

    # by IMD quintile
    rows = {}
    count_cols = (
        "episodes_per_year",
        "admissions_per_year",
        "oap_placements_per_year",
        "oap_bed_days_per_year",
        "oap_cost_gbp_per_year",
        "crisis_house_episodes_per_year",
        "crisis_house_turned_away_per_year",
        "mobile_episodes_per_year",
        "hub_calls_per_year",
        "total_cost_gbp_per_year",
    )
    sums = {
        k: np.bincount(quint, weights=by_area[k].to_numpy(float), minlength=6) for k in count_cols
    }
    pop_q = np.bincount(quint, weights=pop, minlength=6)
    mob_q = np.bincount(quint, weights=mob_episodes, minlength=6)
    within_q = np.bincount(quint, weights=mob_within, minlength=6)
    trip_q = quint[trip_area]
    tw_q = np.bincount(trip_q, weights=trip_w * trip_t, minlength=6)
    w_q = np.bincount(trip_q, weights=trip_w, minlength=6)
    order = np.argsort(trip_t, kind="stable")
    for qi in range(1, 6):
        qpop = float(pop_q[qi])
        row = {k: float(sums[k][qi]) for k in count_cols}
        row["mobile_response_within_standard_share"] = (
            float(within_q[qi] / mob_q[qi]) if mob_q[qi] > 0 else np.nan
        )
        row["inpatient_occupancy"] = kpis["inpatient_occupancy"]
        row["inpatient_blocked_share"] = kpis["inpatient_blocked_share"]
        row["hub_service_level"] = kpis["hub_service_level"]
        row["hub_abandoned_calls_per_year"] = row["hub_calls_per_year"] * hub_abandon
        row["s136_turned_away_per_year"] = kpis["s136_turned_away_per_year"] * (
            qpop / total_pop if total_pop else 0
        )
        row["veteran_episodes_per_year"] = row["episodes_per_year"] * sc.demand.veterans_share
        row["mean_travel_mins"] = float(tw_q[qi] / w_q[qi]) if w_q[qi] > 0 else np.nan
        sel = order[trip_q[order] == qi]
        row["p95_travel_mins"] = (
            _sorted_quantile(trip_t[sel], trip_w[sel], 0.95) if len(sel) else np.nan
        )
        row["capital_cost_gbp"] = np.nan
        row["population"] = qpop
        rows[qi] = row
    by_quintile = pd.DataFrame.from_dict(rows, orient="index")
    by_quintile.index.name = "imd_quintile"
    gap = {}
    for k in by_quintile.columns:
        if k == "population":
            continue
        a, b = by_quintile.loc[1, k], by_quintile.loc[5, k]
        if k in RATE_KPIS:
            pa, pb = by_quintile.loc[1, "population"], by_quintile.loc[5, "population"]
            a = a / pa * 1e5 if pa else np.nan
            b = b / pb * 1e5 if pb else np.nan
        gap[k] = float(a - b)

    by_site = pd.DataFrame(
        {
            "inpatient_beds": cap["inpatient"],
            "crisis_house_places": cap["crisis_house"],
            "crisis_house_arrivals_per_year": ch["arrivals"],
            "crisis_house_blocked_share": ch["blocked_share"],
            "crisis_house_occupancy": ch["occupancy"],
            "mobile_teams": cap["mobile_team"],
            "mobile_arrivals_per_year": mob["arrivals"],
            "mobile_all_busy_share": mob["wait_share"],
            "mobile_peak_utilisation": mob["peak_utilisation"],
            "place_of_safety_suites": cap["place_of_safety"],
        },
        index=pd.Index(inst.site_ids, name="site_id"),
    )
    return Scorecard(
        kpis=kpis,
        per_100k=per_100k,
        by_quintile=by_quintile,
        imd_gap=gap,
        by_site=by_site,
        by_area=by_area,
        by_hour=hub,
        workforce_wte=wte,
        cost_breakdown={k: v for k, v in cost.items() if k != "total"},
        population=total_pop,
        plan_name=plan.name,
        extra={
            "s136_per_year": s136,
            "place_of_safety_blocked_share": pos_block,
            "hub_abandonment_share": hub_abandon,
            "inpatient_offered_load": pool["load"],
            "beds": beds,
        },
    )
