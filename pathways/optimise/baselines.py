"""Plans to beat, computed by the same code paths as everything else.

* **pro rata**: today's mix of services scaled to the budget, each service's units
  spread over its sites in proportion to the population of their catchments (the
  usual practice of funding capacity per head);
* **greedy marginal**: from the locked minimum, repeatedly add the one unit of
  capacity (a bed, a crisis-house place at one site, a team at one base) that cuts
  the objective most per pound, while the budget lasts.
"""

from __future__ import annotations

import numpy as np

from pathways.costs import unit_cost
from pathways.instance import Instance
from pathways.kpis import (
    Scorecard,
    crisis_house_sites,
    evaluate,
    inpatient_pool,
    mobile_wait_share,
    mobile_within_standard,
    nearest_allocation,
)
from pathways.pathway import route
from pathways.plan import Plan, SitePlan, baseline_plan
from pathways.scenario import SERVICES, Capacity

FIELD = {
    "inpatient": "inpatient_beds",
    "crisis_house": "crisis_house_places",
    "mobile_team": "mobile_teams",
    "place_of_safety": "place_of_safety_suites",
}
DECIDED = ("inpatient", "crisis_house", "mobile_team")


def objective_value(card: Scorecard, mode: str, weights) -> float:
    """The optimiser's objective computed from an evaluated scorecard."""
    k = card.kpis
    if mode == "min_cost":
        return k["total_cost_gbp_per_year"]
    return (
        weights.oap_bed_day * k["oap_bed_days_per_year"]
        + weights.admission * k["admissions_per_year"]
        + weights.travel_hour * k["travel_burden_hours_per_year"]
    )


def plan_from_arrays(inst: Instance, cap: dict[str, np.ndarray], hub, name: str) -> Plan:
    sites = []
    for j, sid in enumerate(inst.site_ids):
        sites.append(
            SitePlan(site_id=sid, capacity=Capacity(**{FIELD[s]: int(cap[s][j]) for s in SERVICES}))
        )
    return Plan(name=name, sites=tuple(sites), hub=hub)


def _arrays(inst: Instance, plan: Plan) -> dict[str, np.ndarray]:
    from pathways.instance import capacity_arrays

    return {k: v.astype(int) for k, v in capacity_arrays(inst, plan).items()}


def _largest_remainder(
    total: int, weights: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Integers summing to ``total`` (as far as bounds allow) in proportion to ``weights``."""
    out = lo.copy()
    left = total - int(lo.sum())
    if left <= 0 or weights.sum() <= 0:
        return out
    raw = weights / weights.sum() * left
    add = np.minimum(np.floor(raw).astype(int), hi - out)
    out += add
    left -= int(add.sum())
    order = np.argsort(-(raw - np.floor(raw)))
    while left > 0:
        progressed = False
        for j in order:
            if left > 0 and out[j] < hi[j] and weights[j] > 0:
                out[j] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return out


def pro_rata(inst: Instance, budget_gbp: float) -> Plan:
    """Today's service mix scaled to the budget, spread by catchment population."""
    from pathways.optimise.model import site_bounds

    sc = inst.scenario
    today = _arrays(inst, baseline_plan(sc))
    pop = inst.areas["pop_total"].to_numpy(float)
    bounds = {s: site_bounds(inst, s) for s in DECIDED}

    def build(scale: float) -> Plan:
        cap = {s: today[s].copy() for s in SERVICES}
        for s in DECIDED:
            cur, lo, hi, must, host = bounds[s]
            sites = (today[s] > 0) if today[s].sum() > 0 else host
            if not sites.any():
                continue
            alloc = nearest_allocation(inst.travel_mins, sites)
            weights = (alloc.T @ pop) * sites
            total = int(round(today[s].sum() * scale))
            low = np.where(must, lo, 0)
            cap[s] = _largest_remainder(total, weights, low, np.where(sites, hi, 0))
        return plan_from_arrays(inst, cap, sc.hub, "pro rata")

    def cost(scale: float) -> float:
        return evaluate(inst, build(scale)).kpis["total_cost_gbp_per_year"]

    lo_s, hi_s = 0.2, 3.0
    if cost(hi_s) <= budget_gbp:
        return build(hi_s)
    for _ in range(14):  # scale to within 0.02% of its range: finer than one unit of capacity
        mid = 0.5 * (lo_s + hi_s)
        if cost(mid) <= budget_gbp:
            lo_s = mid
        else:
            hi_s = mid
    return build(lo_s)


def _remember(cache: dict, key: bytes, value: tuple, size: int = 8) -> None:
    """Keep the last few layouts: greedy tries one change and then returns to its base."""
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


class _Quick:
    """Objective and cost of capacity arrays without building a full scorecard."""

    def __init__(self, inst: Instance):
        self.inst = inst
        sc = inst.scenario
        self.sc = sc
        self.fixed = unit_cost(sc, "hub") * sum(sc.hub.of(s) for s in ("night", "day", "evening"))
        self.w = sc.objective.weights
        self.mode = sc.objective.mode
        self._ch: dict[bytes, tuple[float, float]] = {}
        self._mob: dict[bytes, tuple[float, float]] = {}
        self._layouts: dict[bytes, tuple] = {}

    def _crisis_houses(self, places: np.ndarray) -> tuple:
        """Catchments, routing and travel for one crisis-house layout (cached)."""
        key = places.tobytes()
        if key not in self._ch:
            inst, sc = self.inst, self.sc
            t = inst.travel_mins
            alloc = nearest_allocation(t, places > 0, sc.pathway.crisis_house_max_travel_mins)
            ch = crisis_house_sites(inst, places.astype(float), alloc)
            flows = route(inst.episodes, sc.pathway, ch["served_share_area"], 0.0)
            hours = float(((alloc * t).sum(axis=1) * flows.crisis_house_referrals).sum()) / 60.0
            _remember(self._ch, key, (float(flows.admissions.sum()), hours))
        return self._ch[key]

    def _mobile(self, teams: np.ndarray) -> tuple[float, float]:
        """Share within the standard and drive hours for one team layout (cached).

        Which bases are open fixes the catchments, so each base's arrivals and the
        episodes it covers within the standard; a base's chance that every team is busy
        then depends only on its own arrivals and teams. Adding a team to an open base
        (most of greedy's moves) re-runs that one base's queue, not every base's.
        """
        key = teams.tobytes()
        if key not in self._mob:
            inst = self.inst
            arrivals, covered_eps, hours, waits = self._mobile_layout(teams > 0)
            busy = np.flatnonzero(arrivals > 0)
            missing = np.array([j for j in busy if (j, teams[j]) not in waits], dtype=int)
            if len(missing):
                share, _ = mobile_wait_share(inst, arrivals[missing], teams[missing])
                waits.update(zip(zip(missing, teams[missing], strict=True), share, strict=True))
            wait = np.zeros(len(teams))
            wait[busy] = [waits[j, teams[j]] for j in busy]
            eps = inst.mobile_episodes
            within = float((covered_eps * (1.0 - wait)).sum() / max(eps.sum(), 1e-9))
            _remember(self._mob, key, (within, hours))
        return self._mob[key]

    def _mobile_layout(self, open_: np.ndarray) -> tuple:
        """Arrivals and episodes within the standard per base, drive hours, and the
        busy-base shares computed so far for this set of open bases (cached)."""
        key = open_.tobytes()
        if key not in self._layouts:
            inst = self.inst
            t = inst.travel_mins
            alloc = nearest_allocation(t, open_)
            eps = inst.mobile_episodes
            covered = mobile_within_standard(inst)
            arrivals = alloc.T @ eps
            covered_eps = (alloc * covered).T @ eps
            hours = float(((alloc * t).sum(axis=1) * eps).sum()) / 60.0
            _remember(self._layouts, key, (arrivals, covered_eps, hours, {}), size=64)
        return self._layouts[key]

    def __call__(self, cap: dict[str, np.ndarray]) -> tuple[float, float, float]:
        """(objective, cost, share of mobile responses within the standard) of capacity arrays.

        Each service's part is cached on its own layout, so trying one more bed re-runs
        only the inpatient pool, and one more team only the mobile queues.
        """
        sc = self.sc
        admissions, ch_hours = self._crisis_houses(cap["crisis_house"])
        within, mob_hours = self._mobile(cap["mobile_team"])
        pool = inpatient_pool(self.inst, float(cap["inpatient"].sum()), admissions)
        travel_h = ch_hours + mob_hours
        cost = (
            sum(float(cap[s].sum()) * unit_cost(sc, s) for s in SERVICES)
            + self.fixed
            + pool["oap_bed_days"] * sc.costs.oap_gbp_per_bed_day
        )
        if self.mode == "min_cost":
            obj = cost
        else:
            obj = (
                self.w.oap_bed_day * pool["oap_bed_days"]
                + self.w.admission * admissions
                + self.w.travel_hour * travel_h
            )
        return obj, cost, within


def greedy_marginal(inst: Instance, budget_gbp: float, mobile_within_min: float = 0.0) -> Plan:
    """Add the unit of capacity with the best objective reduction per pound until the budget runs out."""
    from pathways.optimise.model import site_bounds

    sc = inst.scenario
    quick = _Quick(inst)
    bounds = {s: site_bounds(inst, s) for s in DECIDED}
    cap = {s: np.zeros(len(inst.site_ids), int) for s in SERVICES}
    cap["place_of_safety"] = _arrays(inst, baseline_plan(sc))["place_of_safety"]
    for s in DECIDED:
        _, lo, _, must, _ = bounds[s]
        cap[s] = np.where(must, lo, 0).astype(int)
    obj, cost, within = quick(cap)

    # meet the response standard first: add the team that raises coverage most per pound
    while within < mobile_within_min:
        best = None
        _, _, hi, _, host = bounds["mobile_team"]
        for j in np.flatnonzero(host & (cap["mobile_team"] < hi)):
            cap["mobile_team"][j] += 1
            _, c2, w2 = quick(cap)
            cap["mobile_team"][j] -= 1
            gain = (w2 - within) / unit_cost(sc, "mobile_team")
            if best is None or gain > best[0]:
                best = (gain, j, c2, w2)
        if best is None or best[0] <= 0:
            break
        cap["mobile_team"][best[1]] += 1
        obj, cost, within = quick(cap)

    while True:
        gains = []
        for s in DECIDED:
            _, _, hi, _, host = bounds[s]
            cands = np.flatnonzero(host & (cap[s] < hi))
            if s == "inpatient" and len(cands):
                # beds are pooled: any site with room gives the same effect
                cands = cands[:1]
            for j in cands:
                cap[s][j] += 1
                o2, c2, _ = quick(cap)
                cap[s][j] -= 1
                if c2 > budget_gbp and c2 > cost:
                    continue
                gain = (obj - o2) / unit_cost(sc, s)
                if gain > 1e-12:
                    gains.append((gain, s, int(j)))
        if not gains:
            break
        gains.sort(reverse=True)
        _, s_best, j_best = gains[0]
        runner_up = gains[1][0] if len(gains) > 1 else 0.0
        cap[s_best][j_best] += 1
        obj, cost, within = quick(cap)
        # keep adding the same unit while it stays the best buy (saves re-scoring every candidate)
        while True:
            _, _, hi, _, host = bounds[s_best]
            j = j_best if cap[s_best][j_best] < hi[j_best] else None
            if j is None and s_best == "inpatient":
                room = np.flatnonzero(host & (cap[s_best] < hi))
                j = int(room[0]) if len(room) else None
            if j is None:
                break
            cap[s_best][j] += 1
            o2, c2, w2 = quick(cap)
            gain = (obj - o2) / unit_cost(sc, s_best)
            if gain < runner_up or gain <= 1e-12 or (c2 > budget_gbp and c2 > cost):
                cap[s_best][j] -= 1
                break
            obj, cost, within = o2, c2, w2
    return plan_from_arrays(inst, cap, sc.hub, "greedy marginal")
