"""The limits a plan must meet, and the judge that checks any plan against them.

A scenario states a revenue budget, capital, minimum service levels and other rules
(:class:`pathways.scenario.Constraints`); where it leaves a level unset, today's level
is the floor. :func:`resolve_goals` turns that into numbers, and :func:`breaches`
judges a plan's scorecard (from :func:`pathways.kpis.evaluate`, the model's only
judge) against them. The optimiser never returns a plan with a breach; the app and
exports flag any plan that has one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pathways.instance import Instance, prepare
from pathways.kpis import Scorecard, evaluate
from pathways.scenario import CAPACITY_FIELD, Scenario

REL_TOL = 1e-7
"""Relative slack before a limit counts as broken (floating-point noise, not policy)."""


@dataclass(frozen=True)
class Goals:
    """Resolved limits: budget, targets and minimum service levels (units in names)."""

    mode: str
    budget_gbp: float
    capital_gbp: float | None
    oap_bed_days_max: float | None
    admissions_max: float | None
    mobile_within_min: float
    hub_sl_min: float
    ch_travel_mins: float | None
    ch_pop_share_min: float | None
    equity_gap: float | None
    workforce_caps: dict[str, float] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The limits as plain values, for reports and exports."""
        out = asdict(self)
        out["workforce_caps"] = dict(self.workforce_caps)
        return out


@dataclass(frozen=True)
class Breach:
    """A limit the plan does not meet, in commissioners' words."""

    constraint: str
    limit: float
    value: float
    message: str


def _floor(x: float) -> float:
    """Today's level, rounded down a hair so today's plan stays feasible."""
    return max(0.0, math.floor(x * 1e4) / 1e4 - 1e-6)


def resolve_goals(inst: Instance | Scenario, baseline_card: Scorecard | None = None) -> Goals:
    """The scenario's limits as numbers; unset levels default to today's (from ``baseline_card``)."""
    inst = inst if isinstance(inst, Instance) else prepare(inst)
    sc = inst.scenario
    con = sc.constraints
    budget = sc.budget.revenue_gbp_per_year
    need_base = (
        budget is None
        or con.mobile_within_standard_share_min is None
        or con.hub_service_level_min is None
    )
    if need_base and baseline_card is None:
        baseline_card = evaluate(inst)
    base = baseline_card.kpis if baseline_card is not None else {}
    return Goals(
        mode=sc.objective.mode,
        budget_gbp=budget if budget is not None else base["total_cost_gbp_per_year"],
        capital_gbp=sc.budget.capital_gbp,
        oap_bed_days_max=sc.objective.targets.oap_bed_days_per_year_max,
        admissions_max=sc.objective.targets.admissions_per_year_max,
        mobile_within_min=(
            con.mobile_within_standard_share_min
            if con.mobile_within_standard_share_min is not None
            else _floor(base["mobile_response_within_standard_share"])
        ),
        hub_sl_min=(
            con.hub_service_level_min
            if con.hub_service_level_min is not None
            else _floor(base["hub_service_level"])
        ),
        ch_travel_mins=con.crisis_house_travel_mins,
        ch_pop_share_min=con.crisis_house_population_share_min,
        equity_gap=con.equity.max_gap_share if con.equity.enabled else None,
        workforce_caps=dict(con.workforce_caps_wte),
    )


def _money(x: float) -> str:
    return f"£{x / 1e6:,.2f}M"


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _over(value: float, limit: float) -> bool:
    return value > limit + REL_TOL * max(abs(limit), 1.0)


def _under(value: float, limit: float) -> bool:
    return value < limit - REL_TOL * max(abs(limit), 1.0)


def crisis_house_population_share(inst: Instance, card: Scorecard, minutes: float) -> float:
    """Share of the population within ``minutes`` of a crisis house the plan opens."""
    open_ = card.by_site["crisis_house_places"].to_numpy(float) > 0
    pop = inst.areas["pop_total"].to_numpy(float)
    if not open_.any() or pop.sum() <= 0:
        return 0.0
    near = (inst.travel_mins[:, open_] <= minutes).any(axis=1)
    return float(pop[near].sum() / pop.sum())


def equity_shares(inst: Instance, card: Scorecard) -> dict[str, tuple[float, float]]:
    """(most deprived fifth, footprint) for crisis-house access and mobile coverage.

    Access is the share of crisis-house referrals with a house in their catchment;
    coverage the share of mobile episodes whose base is within the response standard's
    drive (the optimiser's equity rule (11) uses the same two shares).
    """
    a = card.by_area
    q1 = inst.quintile == 1
    referrals = (
        a["crisis_house_episodes_per_year"] + a["crisis_house_turned_away_per_year"]
    ).to_numpy()
    reach = a["crisis_house_reach_share"].to_numpy() * referrals
    mob = a["mobile_episodes_per_year"].to_numpy()
    cov = a["mobile_covered_share"].to_numpy() * mob

    def pair(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
        d1, dt = den[q1].sum(), den.sum()
        return (
            float(num[q1].sum() / d1) if d1 > 0 else math.nan,
            float(num.sum() / dt) if dt > 0 else math.nan,
        )

    return {"crisis_house_access": pair(reach, referrals), "mobile_coverage": pair(cov, mob)}


def site_rule_breaches(inst: Instance, card: Scorecard) -> list[Breach]:
    """Each site's rules: minimum and maximum size when open, and services locked open or
    not to shrink (``Site.min_capacity``, ``max_capacity``, ``can_close``, ``can_shrink``)."""
    out = []
    for site in inst.scenario.sites:
        if site.site_id not in card.by_site.index:
            continue
        row = card.by_site.loc[site.site_id]
        for service in site.services:
            field = CAPACITY_FIELD[service]
            if service == "place_of_safety" or field not in row:
                continue  # places of safety are not decided; they stay as stated
            units, now = int(row[field]), site.capacity.of(service)
            what = f"{service.replace('_', ' ')} at {site.name} ({site.site_id})"
            lo, hi = site.min_capacity.of(service), None
            if site.max_capacity is not None:
                hi = max(site.max_capacity.of(service), now)
            if now > 0 and not site.can_close and units == 0:
                out.append(Breach(f"site_locked:{site.site_id}:{service}", now, units,
                                  f"{what} may not close"))  # fmt: skip
            elif now > 0 and not site.can_shrink and units < now:
                out.append(Breach(f"site_shrink:{site.site_id}:{service}", now, units,
                                  f"{what} may not shrink below today's {now}"))  # fmt: skip
            if units > 0 and units < lo:
                out.append(Breach(f"site_min:{site.site_id}:{service}", lo, units,
                                  f"{what} has {units}, below its minimum of {lo} when open"))  # fmt: skip
            if hi is not None and units > hi:
                out.append(Breach(f"site_max:{site.site_id}:{service}", hi, units,
                                  f"{what} has {units}, above its maximum of {hi}"))  # fmt: skip
    return out


def breaches(
    scenario: Scenario | Instance,
    card: Scorecard,
    baseline_card: Scorecard | None = None,
    goals: Goals | None = None,
) -> list[Breach]:
    """Every limit the evaluated plan breaks (empty when it meets them all)."""
    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    goals = goals or resolve_goals(inst, baseline_card)
    k = card.kpis
    out: list[Breach] = []
    if goals.mode == "min_weighted" and math.isfinite(goals.budget_gbp):
        v = k["total_cost_gbp_per_year"]
        if _over(v, goals.budget_gbp):
            out.append(
                Breach(
                    "budget",
                    goals.budget_gbp,
                    v,
                    f"costs {_money(v)} a year, over the revenue budget of {_money(goals.budget_gbp)}",
                )
            )
    if goals.capital_gbp is not None and _over(k["capital_cost_gbp"], goals.capital_gbp):
        v = k["capital_cost_gbp"]
        out.append(
            Breach(
                "capital",
                goals.capital_gbp,
                v,
                f"needs {_money(v)} of capital, over the limit of {_money(goals.capital_gbp)}",
            )
        )
    v = k["mobile_response_within_standard_share"]
    if goals.mobile_within_min > 0 and _under(v, goals.mobile_within_min):
        out.append(
            Breach(
                "mobile_standard",
                goals.mobile_within_min,
                v,
                f"{_pct(v)} of mobile responses arrive within the standard, below the minimum "
                f"of {_pct(goals.mobile_within_min)}",
            )
        )
    v = k["hub_service_level"]
    if goals.hub_sl_min > 0 and _under(v, goals.hub_sl_min):
        out.append(
            Breach(
                "hub_service_level",
                goals.hub_sl_min,
                v,
                f"the crisis line answers {_pct(v)} of calls in time, below the minimum of "
                f"{_pct(goals.hub_sl_min)}",
            )
        )
    if goals.ch_travel_mins is not None and goals.ch_pop_share_min is not None:
        v = crisis_house_population_share(inst, card, goals.ch_travel_mins)
        if _under(v, goals.ch_pop_share_min):
            out.append(
                Breach(
                    "crisis_house_coverage",
                    goals.ch_pop_share_min,
                    v,
                    f"{_pct(v)} of people live within {goals.ch_travel_mins:.0f} minutes of a "
                    f"crisis house, below the minimum of {_pct(goals.ch_pop_share_min)}",
                )
            )
    if goals.equity_gap is not None:
        words = {
            "crisis_house_access": "crisis-house access",
            "mobile_coverage": "mobile-team coverage",
        }
        for key, (q1, avg) in equity_shares(inst, card).items():
            if math.isfinite(q1) and math.isfinite(avg) and _under(q1, avg - goals.equity_gap):
                out.append(
                    Breach(
                        f"equity_{key}",
                        avg - goals.equity_gap,
                        q1,
                        f"the most deprived fifth has {words[key]} of {_pct(q1)}, more than "
                        f"{goals.equity_gap:.0%} below the footprint's {_pct(avg)}",
                    )
                )
    out.extend(site_rule_breaches(inst, card))
    for group, cap in goals.workforce_caps.items():
        v = float(card.workforce_wte.get(group, 0.0))
        if _over(v, cap):
            out.append(
                Breach(
                    f"workforce_{group}",
                    cap,
                    v,
                    f"needs {v:,.1f} WTE of {group.replace('_', ' ')}, over the cap of {cap:,.1f}",
                )
            )
    if goals.mode == "min_cost":
        v = k["oap_bed_days_per_year"]
        if goals.oap_bed_days_max is not None and _over(v, goals.oap_bed_days_max):
            out.append(
                Breach(
                    "oap_target",
                    goals.oap_bed_days_max,
                    v,
                    f"{v:,.0f} out-of-area bed-days a year, over the target of "
                    f"{goals.oap_bed_days_max:,.0f}",
                )
            )
        v = k["admissions_per_year"]
        if goals.admissions_max is not None and _over(v, goals.admissions_max):
            out.append(
                Breach(
                    "admissions_target",
                    goals.admissions_max,
                    v,
                    f"{v:,.0f} admissions a year, over the target of {goals.admissions_max:,.0f}",
                )
            )
    return out
