"""A feasible plan in about a second: constructive repair, then greedy improvement.

The MILP needs a good incumbent early: without one, branch and bound spends most of
its time looking for a first plan, and on a busy machine may find none before the
clock stops it. This heuristic builds one on the same model ``evaluate`` uses (each
area served by its quickest open site), in four steps:

1. the locked minimum: every service that may not close or shrink, at its floor;
2. the crisis line: the fewest handler positions, over the three shifts, that meet
   the service-level minimum (an exact search over every combination of levels);
3. repair: mobile teams until every base's peak-hour load is within the utilisation
   cap and the response standard is met; crisis houses until the travel-coverage
   rule is met; then the equity rule;
4. improve: repeatedly buy the unit (a bed, a crisis-house place, opening a house or
   a base) with the largest fall in the objective per pound, while the budget, the
   capital limit and the workforce caps allow. Moves that save money and improve the
   objective are always taken (more beds can cost less than the out-of-area placements
   they avoid).

Every candidate move is scored with vectorised arithmetic on site-level quantities
(Erlang B for houses and the bed pool, Erlang C by hour for mobile bases), so a step
costs milliseconds. The mobile response standard is judged conservatively, the way
the MILP's constraint (9) does (every episode that finds all teams busy counts as
late), so a plan that passes here passes there and in ``evaluate``. The result is
re-judged by ``evaluate`` and :func:`pathways.constraints.breaches`; a plan with a
breach is never returned.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from pathways import demand, queues
from pathways.constraints import Goals, breaches
from pathways.costs import unit_cost
from pathways.instance import Instance
from pathways.kpis import evaluate, mobile_within_standard
from pathways.optimise.model import MAX_HUB_HANDLERS, site_bounds
from pathways.plan import Plan, SitePlan
from pathways.scenario import SERVICES, SHIFT_HOURS, SHIFTS, Capacity, HubCapacity

log = logging.getLogger(__name__)

FIELD = {
    "inpatient": "inpatient_beds",
    "crisis_house": "crisis_house_places",
    "mobile_team": "mobile_teams",
    "place_of_safety": "place_of_safety_suites",
}
MAX_STEPS = 5000


@dataclass
class _State:
    ch: np.ndarray  # places per site
    mob: np.ndarray  # teams per site
    beds: np.ndarray  # beds per site
    hub: dict[str, int]

    def copy(self) -> _State:
        return _State(self.ch.copy(), self.mob.copy(), self.beds.copy(), dict(self.hub))


def _nearest(t: np.ndarray, open_: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of each area's quickest open site within ``limit`` (-1: none) and its minutes."""
    n = t.shape[0]
    if not open_.any():
        return np.full(n, -1), np.full(n, np.inf)
    tt = np.where(open_[None, :], t, np.inf)
    j = np.argmin(tt, axis=1)
    best = tt[np.arange(n), j]
    ok = best <= limit
    return np.where(ok, j, -1), np.where(ok, best, np.inf)


def _switch(t: np.ndarray, old: np.ndarray, best: np.ndarray, cand: np.ndarray, limit: float):
    """(n, C) mask of areas that move to each newly opened candidate (argmin's tie rule)."""
    tc = t[:, cand]
    closer = (tc < best[:, None]) | ((tc == best[:, None]) & (cand[None, :] < old[:, None]))
    return closer & (tc <= limit)


class _Model:
    """The scorecard's arithmetic on site-level quantities, for many candidate plans at once."""

    def __init__(self, inst: Instance, goals: Goals):
        sc = inst.scenario
        q = sc.queues
        self.inst, self.goals, self.sc = inst, goals, sc
        self.t = inst.travel_mins
        self.R = inst.crisis_house_referrals
        self.Mb = inst.mobile_episodes
        self.pop = inst.areas["pop_total"].to_numpy(float)
        cf = inst.coeffs
        self.D = float((inst.episodes * cf.direct_admission).sum())
        self.a, self.b = cf.ch_to_inpatient, cf.full_to_inpatient
        self.R_tot = float(self.R.sum())
        self.ch_limit = sc.pathway.crisis_house_max_travel_mins
        self.ch_los = q.crisis_house_los_days
        self.bed_los, self.z = q.inpatient_los_days, q.inpatient_peakedness
        self.oap_gbp = q.oap_los_days * sc.costs.oap_gbp_per_bed_day  # per placement
        self.w = sc.objective.weights
        self.oap_w = self.w.oap_bed_day * q.oap_los_days  # per placement
        self.mode = goals.mode
        self.bounds = {
            s: site_bounds(inst, s) for s in ("inpatient", "crisis_house", "mobile_team")
        }
        self.unit = {s: unit_cost(sc, s) for s in (*SERVICES, "hub")}
        self.cap_cost = sc.costs.capital_gbp_per_new_site
        self.current = {
            s: self.bounds[s][0].astype(int) for s in ("inpatient", "crisis_house", "mobile_team")
        }
        self.pos_units = float(
            sum(sc.site(s).capacity.place_of_safety_suites for s in inst.site_ids)
        )
        self.per = sc.costs.wte_per_unit
        # mobile teams: coverage, hourly profile and the MILP's peak-hour cap
        self.cov = mobile_within_standard(inst).astype(float)
        self.profile = demand.week_profile(sc.demand)
        self.hour_scale = demand.DAYS_PER_CYCLE * self.profile * q.mobile_service_hours / 365.0
        self.mu_max = (
            q.mobile_max_utilisation
            * 365.0
            / (q.mobile_service_hours * demand.DAYS_PER_CYCLE * self.profile.max())
        )
        self.q1 = inst.quintile == 1
        self._hub_table()

    # ----------------------------------------------------------------- crisis line
    def _hub_table(self) -> None:
        q = self.sc.queues
        calls = demand.calls_per_hour(self.inst.population, self.sc.demand)
        hour = demand.hour_of_day(np.arange(demand.HOURS_PER_WEEK))
        self.calls = float(calls.sum())
        levels = np.arange(MAX_HUB_HANDLERS + 1)
        table = []
        for s in SHIFTS:
            lo, hi = SHIFT_HOURS[s]
            c = calls[(hour >= lo) & (hour < hi)]
            met = queues.erlang_a_metrics(
                np.repeat(c[None, :], len(levels), 0),
                np.repeat(levels[:, None], len(c), 1),
                q.hub_aht_seconds,
                q.hub_mean_patience_seconds,
                q.hub_answer_within_seconds,
            )
            table.append((np.asarray(met["service_level"]) * c[None, :]).sum(axis=1))
        self.hub_served = np.array(table)  # (3 shifts, levels)

    def cheapest_hub(self) -> dict[str, int] | None:
        """Fewest positions meeting the service level (ties: the better service level)."""
        need = self.goals.hub_sl_min * self.calls
        lv = np.arange(MAX_HUB_HANDLERS + 1)
        tot = (
            self.hub_served[0][:, None, None]
            + self.hub_served[1][None, :, None]
            + self.hub_served[2][None, None, :]
        )
        pos = lv[:, None, None] + lv[None, :, None] + lv[None, None, :]
        ok = tot >= need - 1e-9 * max(need, 1.0)
        if not ok.any():
            return None
        key = np.where(ok, pos - tot / (10.0 * max(self.calls, 1.0)), np.inf)
        i = np.unravel_index(np.argmin(key), key.shape)
        return {s: int(i[k]) for k, s in enumerate(SHIFTS)}

    # ----------------------------------------------------------------- crisis houses
    def ch_served(self, arrivals: np.ndarray, places: np.ndarray) -> np.ndarray:
        """Referrals placed per year at each house (any leading shape)."""
        load = arrivals / 365.0 * self.ch_los
        blocked = np.where(arrivals > 0, queues.erlang_b(load, places), 0.0)
        return arrivals * (1.0 - blocked)

    def ch_view(self, places: np.ndarray):
        old, best = _nearest(self.t, places > 0, self.ch_limit)
        m = len(places)
        arrivals = np.bincount(old[old >= 0], weights=self.R[old >= 0], minlength=m).astype(float)
        travel = float((self.R * np.where(old >= 0, best, 0.0)).sum()) / 60.0
        return old, best, arrivals, travel

    # ----------------------------------------------------------------- beds
    def oap(self, admissions, beds):
        """OAP placements per year for admissions and pooled beds (broadcasting)."""
        adm = np.asarray(admissions, float)
        e = adm / 365.0 * self.bed_los
        beds = np.asarray(beds, float)
        lost = np.where(beds > 0, queues.lost_traffic(e, np.maximum(beds, 1e-9), self.z), e)
        return np.where(adm > 0, lost * 365.0 / self.bed_los, 0.0)

    # ----------------------------------------------------------------- mobile teams
    def mob_view(self, teams: np.ndarray):
        old, best = _nearest(self.t, teams > 0, np.inf)
        m = len(teams)
        has = old >= 0
        arrivals = np.bincount(old[has], weights=self.Mb[has], minlength=m).astype(float)
        covered = np.bincount(
            old[has],
            weights=(self.Mb * self.cov[np.arange(len(old)), np.maximum(old, 0)])[has],
            minlength=m,
        ).astype(float)
        travel = float((self.Mb * np.where(has, best, 0.0)).sum()) / 60.0
        return old, best, arrivals, covered, travel

    def mob_wait(self, arrivals: np.ndarray, teams: np.ndarray) -> np.ndarray:
        """Episodes a year finding every team at the base busy (any leading shape)."""
        load = arrivals[..., None] * self.hour_scale
        c = np.broadcast_to(np.asarray(teams, float)[..., None], load.shape)
        p = np.where(c > 0, queues.erlang_c(load, np.maximum(c, 1e-9)), 1.0)
        return np.where(arrivals > 0, arrivals * (p @ self.profile), 0.0)

    def mob_ok(self, arrivals: np.ndarray, teams: np.ndarray) -> np.ndarray:
        return arrivals <= teams * self.mu_max + 1e-9

    # ----------------------------------------------------------------- totals
    def summary(self, st: _State) -> dict[str, float]:
        _, _, arr, ch_travel = self.ch_view(st.ch)
        served = float(self.ch_served(arr, st.ch).sum())
        adm = self.D + self.b * self.R_tot + (self.a - self.b) * served
        p = float(self.oap(adm, st.beds.sum()))
        _, _, marr, mcov, m_travel = self.mob_view(st.mob)
        wait = self.mob_wait(marr, st.mob)
        within = (mcov.sum() - wait.sum()) / max(self.Mb.sum(), 1e-12)
        cost = self.unit_cost(st) + p * self.oap_gbp
        return {
            "admissions": adm,
            "oap": p,
            "travel_h": ch_travel + m_travel,
            "within": float(within) if self.Mb.sum() > 0 else 1.0,
            "peak_ok": bool(self.mob_ok(marr, st.mob).all()),
            "cost": cost,
            "objective": self.objective(adm, p, ch_travel + m_travel, cost),
        }

    def objective(self, adm, p, travel_h, cost):
        if self.mode == "min_cost":
            return cost
        return self.oap_w * p + self.w.admission * adm + self.w.travel_hour * travel_h

    def unit_cost(self, st: _State) -> float:
        return float(
            st.beds.sum() * self.unit["inpatient"]
            + st.ch.sum() * self.unit["crisis_house"]
            + st.mob.sum() * self.unit["mobile_team"]
            + self.pos_units * self.unit["place_of_safety"]
            + sum(st.hub.values()) * self.unit["hub"]
        )

    def capital(self, st: _State) -> float:
        new = {
            "inpatient": (st.beds > 0) & (self.current["inpatient"] == 0),
            "crisis_house": (st.ch > 0) & (self.current["crisis_house"] == 0),
            "mobile_team": (st.mob > 0) & (self.current["mobile_team"] == 0),
        }
        return float(sum(self.cap_cost[s] * int(v.sum()) for s, v in new.items()))

    def workforce_ok(self, st: _State) -> bool:
        units = {
            "inpatient": st.beds.sum(),
            "crisis_house": st.ch.sum(),
            "mobile_team": st.mob.sum(),
            "place_of_safety": self.pos_units,
            "hub": sum(st.hub.values()),
        }
        for g, cap in self.goals.workforce_caps.items():
            if sum(units[s] * self.per[s][g] for s in units) > cap + 1e-9:
                return False
        return True

    def limits_ok(self, st: _State) -> bool:
        cap = self.goals.capital_gbp
        return (cap is None or self.capital(st) <= cap + 1e-6) and self.workforce_ok(st)


# ----------------------------------------------------------------------------- moves


def _ch_moves(mod: _Model, st: _State, adm_now: float):
    """(site, places after, admissions after, travel change) for each crisis-house move."""
    _, lo, hi, _, host = mod.bounds["crisis_house"]
    old, best, arr, _ = mod.ch_view(st.ch)
    served = mod.ch_served(arr, st.ch)
    out = []
    # one more place at an open house: only that house's blocking changes
    grow = np.flatnonzero((st.ch > 0) & (st.ch < hi))
    if len(grow):
        gain = mod.ch_served(arr[grow], st.ch[grow] + 1) - served[grow]
        for j, g in zip(grow, gain, strict=True):
            out.append((int(j), int(st.ch[j] + 1), adm_now + (mod.a - mod.b) * g, 0.0))
    # open a closed house at its smallest size: catchments move
    closed = np.flatnonzero(host & (st.ch == 0) & (hi > 0))
    if len(closed):
        sw = _switch(mod.t, old, best, closed, mod.ch_limit)  # (n, C)
        w = mod.R[:, None] * sw
        onehot = np.zeros((len(old), len(st.ch)))
        has = old >= 0
        onehot[np.flatnonzero(has), old[has]] = 1.0
        arr_new = arr[:, None] - onehot.T @ w  # (m, C)
        arr_new[closed, np.arange(len(closed))] += w.sum(axis=0)
        places = np.repeat(st.ch[:, None], len(closed), 1)
        size = np.maximum(lo[closed], 1)
        places[closed, np.arange(len(closed))] = size
        served_new = mod.ch_served(arr_new, places).sum(axis=0)
        prev_t = np.where(has, best, 0.0)
        dtravel = (w * (mod.t[:, closed] - prev_t[:, None])).sum(axis=0) / 60.0
        for c, j in enumerate(closed):
            adm = mod.D + mod.b * mod.R_tot + (mod.a - mod.b) * served_new[c]
            out.append((int(j), int(size[c]), adm, float(dtravel[c])))
    return out


def _mob_open_moves(mod: _Model, st: _State):
    """(site, teams after, covered change, new arrivals per base, travel change) for opening bases."""
    lo, hi, host = (
        mod.bounds["mobile_team"][1],
        mod.bounds["mobile_team"][2],
        mod.bounds["mobile_team"][4],
    )
    old, best, arr, _, _ = mod.mob_view(st.mob)
    closed = np.flatnonzero(host & (st.mob == 0) & (hi > 0))
    if not len(closed) or not (st.mob > 0).any():
        return old, best, arr, closed, None
    sw = _switch(mod.t, old, best, closed, np.inf)
    w = mod.Mb[:, None] * sw
    onehot = np.zeros((len(old), len(st.mob)))
    onehot[np.arange(len(old)), old] = 1.0
    arr_new = arr[:, None] - onehot.T @ w
    arr_new[closed, np.arange(len(closed))] += w.sum(axis=0)
    cov_old = mod.cov[np.arange(len(old)), old]
    dcov = (w * (mod.cov[:, closed] - cov_old[:, None])).sum(axis=0)
    dtravel = (w * (mod.t[:, closed] - best[:, None])).sum(axis=0) / 60.0
    return old, best, arr, closed, (arr_new, dcov, dtravel, np.maximum(lo[closed], 1))


def _within(mod: _Model, st: _State) -> tuple[float, np.ndarray, np.ndarray]:
    _, _, arr, cov, _ = mod.mob_view(st.mob)
    wait = mod.mob_wait(arr, st.mob)
    total = max(mod.Mb.sum(), 1e-12)
    return float((cov.sum() - wait.sum()) / total), arr, cov


# ----------------------------------------------------------------------------- repair


def _repair_mobile(mod: _Model, st: _State) -> bool:
    """Teams until every base is within its peak-hour cap and the standard is met."""
    lo, hi, host = (
        mod.bounds["mobile_team"][1],
        mod.bounds["mobile_team"][2],
        mod.bounds["mobile_team"][4],
    )
    if mod.Mb.sum() <= 0:
        return True
    if not (st.mob > 0).any():
        cand = np.flatnonzero(host & (hi > 0))
        if not len(cand):
            return False
        # the base that covers most episodes within the standard
        j = int(cand[np.argmax((mod.Mb[:, None] * mod.cov[:, cand]).sum(axis=0))])
        st.mob[j] = max(int(lo[j]), 1)
    for _ in range(MAX_STEPS):
        within, arr, cov = _within(mod, st)
        over = np.flatnonzero(~mod.mob_ok(arr, st.mob))
        if not len(over) and within >= mod.goals.mobile_within_min:
            return True
        if len(over):
            j = int(over[np.argmax(arr[over] - st.mob[over] * mod.mu_max)])
            if st.mob[j] < hi[j]:
                st.mob[j] += 1
                continue
        # best coverage gain per pound: a team at an open base, or a new base
        best_gain, best_move = -np.inf, None
        grow = np.flatnonzero((st.mob > 0) & (st.mob < hi))
        if len(grow):
            w_now = mod.mob_wait(arr[grow], st.mob[grow])
            w_up = mod.mob_wait(arr[grow], st.mob[grow] + 1)
            for j, g in zip(grow, w_now - w_up, strict=True):
                gain = g / mod.unit["mobile_team"]
                if gain > best_gain:
                    best_gain, best_move = gain, (int(j), int(st.mob[j] + 1))
        *_, closed, opened = _mob_open_moves(mod, st)
        if opened is not None:
            arr_new, dcov, _, size = opened
            teams = np.repeat(st.mob[:, None], len(closed), 1)
            teams[closed, np.arange(len(closed))] = size
            wait_new = mod.mob_wait(arr_new.T, teams.T).sum(axis=1)
            wait_now = mod.mob_wait(arr, st.mob).sum()
            for c, j in enumerate(closed):
                gain = (dcov[c] - (wait_new[c] - wait_now)) / (size[c] * mod.unit["mobile_team"])
                if gain > best_gain:
                    best_gain, best_move = gain, (int(j), int(size[c]))
        if best_move is None or best_gain <= 0:
            return False
        st.mob[best_move[0]] = best_move[1]
    return False


def _repair_coverage(mod: _Model, st: _State) -> bool:
    g = mod.goals
    if g.ch_travel_mins is None or g.ch_pop_share_min is None:
        return True
    lo, hi, host = (
        mod.bounds["crisis_house"][1],
        mod.bounds["crisis_house"][2],
        mod.bounds["crisis_house"][4],
    )
    near = mod.t <= g.ch_travel_mins
    total = mod.pop.sum()
    for _ in range(len(st.ch) + 1):
        covered = (
            near[:, st.ch > 0].any(axis=1) if (st.ch > 0).any() else np.zeros(len(mod.pop), bool)
        )
        if mod.pop[covered].sum() >= g.ch_pop_share_min * total:
            return True
        cand = np.flatnonzero(host & (st.ch == 0) & (hi > 0))
        if not len(cand):
            return False
        new_pop = (mod.pop[:, None] * (near[:, cand] & ~covered[:, None])).sum(axis=0)
        size = np.maximum(lo[cand], 1)
        c = int(np.argmax(new_pop / size))
        if new_pop[c] <= 0:
            return False
        st.ch[cand[c]] = size[c]
    return False


def _repair_equity(mod: _Model, st: _State) -> bool:
    g = mod.goals
    if g.equity_gap is None:
        return True
    lo, hi, host = (
        mod.bounds["crisis_house"][1],
        mod.bounds["crisis_house"][2],
        mod.bounds["crisis_house"][4],
    )
    for _ in range(len(st.ch) + 1):
        old, _, _, _ = mod.ch_view(st.ch)
        reach = old >= 0
        r1, rt = mod.R[mod.q1].sum(), mod.R.sum()
        if r1 <= 0 or rt <= 0:
            break
        acc1 = (mod.R * reach)[mod.q1].sum() / r1
        acc = (mod.R * reach).sum() / rt
        if acc1 >= acc - g.equity_gap - 1e-9:
            break
        cand = np.flatnonzero(host & (st.ch == 0) & (hi > 0))
        gain = [(mod.R * (reach | (mod.t[:, j] <= mod.ch_limit)) * mod.q1).sum() for j in cand]
        if not len(cand) or max(gain) <= (mod.R * reach * mod.q1).sum():
            return False
        j = int(cand[int(np.argmax(gain))])
        st.ch[j] = max(int(lo[j]), 1)
    # mobile coverage of the most deprived fifth
    lo, hi, host = (
        mod.bounds["mobile_team"][1],
        mod.bounds["mobile_team"][2],
        mod.bounds["mobile_team"][4],
    )
    for _ in range(len(st.mob) + 1):
        old, _, _, _, _ = mod.mob_view(st.mob)
        cov = (mod.cov[np.arange(len(old)), np.maximum(old, 0)] > 0) & (old >= 0)
        m1, mt = mod.Mb[mod.q1].sum(), mod.Mb.sum()
        if m1 <= 0 or mt <= 0:
            return True
        if (mod.Mb * cov)[mod.q1].sum() / m1 >= (mod.Mb * cov).sum() / mt - g.equity_gap - 1e-9:
            return True
        cand = np.flatnonzero(host & (st.mob == 0) & (hi > 0))
        if not len(cand):
            return False
        gain = (mod.Mb[:, None] * ((mod.cov[:, cand] > 0) & ~cov[:, None]) * mod.q1[:, None]).sum(
            axis=0
        )
        if gain.max() <= 0:
            return False
        j = int(cand[int(np.argmax(gain))])
        st.mob[j] = max(int(lo[j]), 1)
    return False


# ----------------------------------------------------------------------------- improve


@dataclass
class _Step:
    """Where the greedy stands, and the moves it has scored from there."""

    mod: _Model
    now: dict[str, float]
    unit: float
    budget: float
    moves: list

    def consider(self, kind, j, level, adm2, beds2, dtravel, dunit) -> None:
        """Score one move: objective fall per pound (inf for a move that also saves money)."""
        mod, now = self.mod, self.now
        p2 = float(mod.oap(adm2, beds2))
        cost2 = self.unit + dunit + p2 * mod.oap_gbp
        obj2 = mod.objective(adm2, p2, now["travel_h"] + dtravel, cost2)
        dobj, dcost = obj2 - now["objective"], cost2 - now["cost"]
        if dobj >= -1e-9 * max(abs(now["objective"]), 1.0):
            return
        if cost2 > self.budget and dcost > 0:
            return
        score = math.inf if dcost <= 0 else -dobj / dcost
        self.moves.append((score, -dcost, kind, j, level))


def _improve(mod: _Model, st: _State) -> None:
    """Greedy: the best objective fall per pound until no affordable move helps."""
    lo_b, hi_b, host_b = (mod.bounds["inpatient"][k] for k in (1, 2, 4))
    budget = mod.goals.budget_gbp if mod.mode == "min_weighted" else math.inf
    for _ in range(MAX_STEPS):
        now = mod.summary(st)
        step = _Step(mod, now, mod.unit_cost(st), budget, [])
        beds_now = st.beds.sum()
        for j, level, adm2, dtravel in _ch_moves(mod, st, now["admissions"]):
            dunit = (level - st.ch[j]) * mod.unit["crisis_house"]
            step.consider("ch", j, level, adm2, beds_now, dtravel, dunit)
        room = np.flatnonzero((st.beds > 0) & (st.beds < hi_b))
        if len(room):
            j = int(room[0])  # beds are pooled: any ward with room has the same effect
            step.consider("bed", j, int(st.beds[j] + 1), now["admissions"], beds_now + 1, 0.0,
                          mod.unit["inpatient"])  # fmt: skip
        else:
            shut = np.flatnonzero(host_b & (st.beds == 0) & (hi_b > 0))
            if len(shut):
                j = int(shut[0])
                size = max(int(lo_b[j]), 1)
                step.consider("bed", j, size, now["admissions"], beds_now + size, 0.0,
                              size * mod.unit["inpatient"])  # fmt: skip
        if mod.w.travel_hour > 0 and mod.mode == "min_weighted":
            *_, closed, opened = _mob_open_moves(mod, st)
            if opened is not None:
                _, _, dtravel, size = opened
                for c, j in enumerate(closed):
                    step.consider("mob", int(j), int(size[c]), now["admissions"], beds_now,
                                  float(dtravel[c]), size[c] * mod.unit["mobile_team"])  # fmt: skip
        if not step.moves:
            return
        step.moves.sort(key=lambda m: (m[0], m[1], -m[3]), reverse=True)
        for _score, _saving, kind, j, level in step.moves:
            trial = st.copy()
            {"ch": trial.ch, "bed": trial.beds, "mob": trial.mob}[kind][j] = level
            if not mod.limits_ok(trial):
                continue
            if kind == "mob" and not _mobile_still_ok(mod, trial):
                continue
            if kind == "ch" and not _equity_still_ok(mod, trial):
                continue
            st.ch, st.beds, st.mob = trial.ch, trial.beds, trial.mob
            break
        else:
            return


def _mobile_still_ok(mod: _Model, st: _State) -> bool:
    within, arr, _ = _within(mod, st)
    return bool(mod.mob_ok(arr, st.mob).all()) and within >= mod.goals.mobile_within_min


def _equity_still_ok(mod: _Model, st: _State) -> bool:
    if mod.goals.equity_gap is None:
        return True
    probe = st.copy()
    return _repair_equity(mod, probe) and np.array_equal(probe.ch, st.ch)


# ----------------------------------------------------------------------------- entry


def _to_plan(inst: Instance, st: _State, name: str) -> Plan:
    sc = inst.scenario
    sites = []
    for j, sid in enumerate(inst.site_ids):
        cap = {
            "inpatient": int(st.beds[j]),
            "crisis_house": int(st.ch[j]),
            "mobile_team": int(st.mob[j]),
            "place_of_safety": sc.site(sid).capacity.place_of_safety_suites,
        }
        sites.append(
            SitePlan(site_id=sid, capacity=Capacity(**{FIELD[s]: cap[s] for s in SERVICES}))
        )
    return Plan(name=name, sites=tuple(sites), hub=HubCapacity(**st.hub))


def feasible_plan(inst: Instance, goals: Goals, name: str = "heuristic") -> Plan | None:
    """A plan meeting every limit in ``goals`` as judged by ``evaluate``, or None if none was found."""
    mod = _Model(inst, goals)
    floor = {}
    for s in ("inpatient", "crisis_house", "mobile_team"):
        _, lo, _, must, _ = mod.bounds[s]
        floor[s] = np.where(must, lo, 0).astype(int)
    hub = mod.cheapest_hub()
    if hub is None:
        return None
    st = _State(
        ch=floor["crisis_house"], mob=floor["mobile_team"], beds=floor["inpatient"], hub=hub
    )
    ok = _repair_mobile(mod, st) and _repair_coverage(mod, st) and _repair_equity(mod, st)
    if not ok:
        log.info("heuristic: could not meet the service standards")
        return None
    _improve(mod, st)
    plan = _to_plan(inst, st, name)
    card = evaluate(inst, plan)
    problems = breaches(inst, card, goals=goals)
    if problems:
        log.info("heuristic plan breaks: %s", "; ".join(b.message for b in problems))
        return None
    return plan


__all__ = ["feasible_plan"]
