"""The capacity-and-location model: a MILP with queueing exact at integer capacities.

Formulation (docs/optimiser.md repeats it; the code tags each family with its number)
------------------------------------------------------------------------------------
Sets: areas i; sites j; crisis-house levels k = 0..K_j; mobile-team levels m = 0..M_j;
pooled bed levels c = C_lo..C_hi; hub shifts s with handler levels h = 0..H.
Data: R_i crisis-house referrals/yr, M_i mobile episodes/yr, t_ij road minutes,
D = admissions that bypass crisis houses, a = ch_to_inpatient, b = full_to_inpatient.

(1)  one level per crisis house:   sum_k z_jk = 1;  places_j = sum_k k z_jk
(2)  catchments:                   sum_j x_ij <= 1, 0 <= x_ij (only to the K nearest
                                   crisis-house sites within the referral travel limit)
(3)  arrivals:                     lam_j = sum_i R_i x_ij = sum_k lam_jk,
                                   0 <= lam_jk <= LamMax_jk z_jk (LamMax_j0 = 0: closed
                                   houses receive no one)
(4)  blocked referrals, exact at each level: f_k(lam) = lam * ErlangB(lam*L/365, k) is
     convex in lam, so beta_jk >= f_k(l) z_jk + f_k'(l) (lam_jk - l z_jk) for tangent
     points l (perspective of the tangent: tight on the convex hull of each level);
     beta_jk <= lam_jk; tangents are added at the solution until (4) is exact (12).
(5)  admissions:                   A = D + b * sum_i R_i + (a - b) * sum_j (lam_j - beta_j)
(6)  one pooled bed level:         sum_c w_c = 1;  sum_j beds_j = sum_c c w_c
(7)  OAP placements, exact at each level: g_c(A) = A * ErlangB_Hayward(A*LOS/365, c, z)
     is convex in A: A = sum_c A_c, A_c in [A_lo w_c, A_hi w_c], P_c >= tangents of g_c.
(8)  mobile teams:                 sum_m y_jm = 1; teams_j = sum_m m y_jm;
     sum_j v_ij = 1 (every area has a base); mu_j = sum_i M_i v_ij = sum_m mu_jm,
     mu_jm <= MuMax_m y_jm (peak-hour utilisation <= rho_max; MuMax_0 = 0);
     W_jm >= tangents of h_m(mu) = mu * sum_hours p_h ErlangC(mu p_h S / 365, m).
(9)  response standard:           sum_ij M_i v_ij cov_ij - sum_j W_j >= X * sum_i M_i
     (cov_ij = 1 if dispatch + t_ij is within the urban/rural standard; conservative:
     evaluate's within-standard count sum_j cov_j (1 - Pwait_j) is at least this).
(10) crisis line: one handler level per shift; sum_s SL_s(h) q_sh >= SL_min * calls
     (service level tabulated exactly per shift and level with Erlang A).
(11) site limits and locks: min/max capacity when open, existing services that may
     not close or shrink, capital for newly opened services, crisis-house travel
     coverage (population within T minutes of an open house >= Y), equity (most
     deprived quintile's access and mobile coverage >= footprint average - gap),
     workforce caps by staff group, revenue budget (capacity + OAP bed-days x cost).
(12) objective: min_weighted: w_oap LOS_oap P + w_adm A + w_travel (travel hours);
     min_cost: revenue cost, with OAP bed-day / admission targets as constraints.
     A small penalty on change from today's capacity breaks ties.
     Outer approximation: solve, evaluate f, g, h exactly at the solution, add tangents
     where the model under-estimates, re-solve; stop when every estimate is within
     tolerance (then the model's OAPs and admissions equal evaluate's).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from ortools.math_opt.python import mathopt

from pathways import demand, queues
from pathways.constraints import Goals, breaches, resolve_goals  # noqa: F401 - re-exported
from pathways.costs import unit_cost
from pathways.errors import InfeasibleError, InputError, NoPlanInTimeError, Problem
from pathways.instance import Instance
from pathways.kpis import (
    capacity_arrays,
    evaluate,
    hub_metrics,
    mobile_within_standard,
    nearest_allocation,
    plan_allocation,
)
from pathways.optimise.baselines import objective_value
from pathways.plan import AllocationShare, Plan, SitePlan, SolverReport
from pathways.scenario import SERVICES, SHIFT_HOURS, SHIFTS, STAFF_GROUPS, Capacity, HubCapacity

log = logging.getLogger(__name__)

DEFAULT_MAX = {"inpatient": 60, "crisis_house": 12, "mobile_team": 4, "place_of_safety": 3}
"""Default maximum capacity at a site offering a service, when the scenario sets none."""
MAX_HUB_HANDLERS = 40


@dataclass(frozen=True)
class SolverOptions:
    """How hard and how long to search."""

    time_limit_s: float = 60.0
    node_limit: int | None = None
    """Branch-and-bound nodes per round: a deterministic work limit. With it, the same
    inputs give the same plan on a quiet or a busy machine, as long as the clock
    (``time_limit_s``, then only a safety net) does not stop the search first."""
    workers: int = 0
    seed: int = 0
    gap: float = 0.005
    backend: str = "HIGHS"
    nearest_sites: int = 6
    area_groups: int = 200
    max_rounds: int = 12
    tolerance: float = 5e-4
    progress: Callable[[str, float], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Refuse options the solver cannot honour, in words (not a crash inside it)."""
        checks = [
            ("time_limit_s", math.isfinite(self.time_limit_s) and 0 < self.time_limit_s <= 604_800,
             "a number of seconds above 0 and at most a week (604,800)"),
            ("gap", math.isfinite(self.gap) and 0 <= self.gap <= 1, "a share from 0 to 1"),
            ("node_limit", self.node_limit is None or 1 <= self.node_limit <= 10**9,
             "a whole number from 1 to 1,000,000,000, or None"),
            ("workers", 0 <= self.workers <= 1024, "0 (all cores) to 1,024"),
            ("seed", 0 <= self.seed <= 2**31 - 1, "a whole number from 0 to 2,147,483,647"),
            ("nearest_sites", self.nearest_sites >= 1, "at least 1"),
            ("area_groups", self.area_groups >= 1, "at least 1"),
            ("max_rounds", self.max_rounds >= 1, "at least 1"),
            ("tolerance", math.isfinite(self.tolerance) and self.tolerance > 0, "above 0"),
            ("backend", self.backend in SOLVERS, "one of " + ", ".join(sorted(SOLVERS))),
        ]  # fmt: skip
        bad = [Problem("SolverOptions", None, name, f"expected {what}; got {getattr(self, name)!r}")
               for name, ok, what in checks if not ok]  # fmt: skip
        if bad:
            raise InputError(bad)


class MipModel:
    """A thin builder over OR-Tools MathOpt so the model code reads like the formulation."""

    def __init__(self, name: str):
        self.model = mathopt.Model(name=name)
        self.values: dict = {}
        self.n_constraints = 0

    @staticmethod
    def infinity() -> float:
        return math.inf

    def NumVar(self, lb: float, ub: float, name: str):  # noqa: N802 - mirrors OR-Tools naming
        return self.model.add_variable(lb=lb, ub=ub, name=name)

    def IntVar(self, lb: int, ub: int, name: str):  # noqa: N802
        return self.model.add_integer_variable(lb=lb, ub=ub, name=name)

    def BoolVar(self, name: str):  # noqa: N802
        return self.model.add_binary_variable(name=name)

    def Add(self, constraint) -> None:  # noqa: N802
        self.model.add_linear_constraint(constraint)
        self.n_constraints += 1

    @staticmethod
    def Sum(items):  # noqa: N802
        return mathopt.fast_sum(list(items))

    def Minimize(self, expr) -> None:  # noqa: N802
        self.model.minimize(expr)

    def value(self, expr) -> float:
        if isinstance(expr, (int, float)):
            return float(expr)
        if isinstance(expr, mathopt.Variable):
            return float(self.values[expr])
        return float(mathopt.evaluate_expression(expr, self.values))


@dataclass
class Built:
    solver: MipModel
    v: dict
    cut_keys: dict
    data: dict


# ----------------------------------------------------------------------------- data


def site_bounds(
    inst: Instance, service: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(current, min_if_open, max, must_open, can_host) per site for a service."""
    cur, lo, hi, must, host = [], [], [], [], []
    for sid in inst.site_ids:
        s = inst.scenario.site(sid)
        c = s.capacity.of(service)
        ok = service in s.services
        mx = (
            s.max_capacity.of(service)
            if s.max_capacity is not None
            else max(DEFAULT_MAX[service], 2 * c)
        )
        mn = max(s.min_capacity.of(service), 1 if ok else 0)
        if c > 0 and not s.can_shrink:
            mn = max(mn, c)
        cur.append(c)
        lo.append(mn if ok else 0)
        hi.append(max(mx, c) if ok else 0)
        must.append(ok and c > 0 and not s.can_close)
        host.append(ok)
    return (np.array(cur), np.array(lo), np.array(hi), np.array(must, bool), np.array(host, bool))


def f_ch(lam: float, k: int, los_days: float) -> tuple[float, float]:
    """Blocked crisis-house referrals per year at ``k`` places, and d/d(lam)."""
    e = lam / 365.0 * los_days
    if k == 0:
        return lam, 1.0
    return float(queues.lost_traffic(e, k)) * 365.0 / los_days, float(
        queues.lost_traffic_dload(e, k)
    )


def g_beds(adm: float, c: int, los_days: float, z: float) -> tuple[float, float]:
    """OAP placements per year at ``c`` pooled beds, and d/d(admissions)."""
    e = adm / 365.0 * los_days
    if c == 0:
        return adm, 1.0
    return (
        float(queues.lost_traffic(e, c, z)) * 365.0 / los_days,
        float(queues.lost_traffic_dload(e, c, z)),
    )


def h_mobile(mu: float, m: int, profile: np.ndarray, service_h: float) -> tuple[float, float]:
    """Episodes per year finding all ``m`` teams busy, and d/d(mu).

    ``profile`` holds the share of the week's episodes in each of its 168 hours: hour p
    sees mu x 7 x profile_p / 365 arrivals an hour, and the episodes that wait there in a
    year are waiting_load(E_p) x 365 / (7 S).
    """
    if m == 0:
        return mu, 1.0
    days = demand.DAYS_PER_CYCLE
    e = mu * days * profile * service_h / 365.0
    val = float(np.sum(queues.waiting_load(e, m))) * 365.0 / (days * service_h)
    der = float(np.sum(queues.waiting_load_dload(e, m) * profile))
    return val, der


# ----------------------------------------------------------------------------- build


def area_groups(inst: Instance, n_groups: int, seed: int = 0) -> np.ndarray:
    """Group areas for the allocation variables: k-means on location within each IMD quintile.

    Grouping is exact for the model, not an approximation: a group's share to a site is
    given to every area in it, and arrivals, travel burden and coverage are sums over
    areas, computed from each area's own demand and travel time.
    """
    n = inst.n_areas
    if n_groups <= 0 or n_groups >= n:
        return np.arange(n)
    from scipy.cluster.vq import kmeans2

    labels = np.zeros(n, dtype=int)
    xy = inst.areas[["x", "y"]].to_numpy(float)
    quint = inst.quintile
    rural = inst.rural
    nxt = 0
    for key in sorted({(int(q), bool(r)) for q, r in zip(quint, rural, strict=True)}):
        idx = np.flatnonzero((quint == key[0]) & (rural == key[1]))
        k = max(1, int(round(n_groups * len(idx) / n)))
        if k >= len(idx):
            lab = np.arange(len(idx))
        else:
            _, lab = kmeans2(xy[idx], k, seed=np.random.default_rng(seed), minit="++")
        _, lab = np.unique(lab, return_inverse=True)
        labels[idx] = nxt + lab
        nxt += int(lab.max()) + 1
    return labels


def _hint_pairs(
    inst: Instance, labels: np.ndarray, plans: Sequence[Plan]
) -> dict[str, set[tuple[int, int]]]:
    """(group, site) pairs that the warm-start plans use, by service.

    A plan without explicit catchments sends each area to its quickest open site
    (``evaluate``'s rule). When none of a group's nearest candidate sites is open in a
    warm-start plan, the model could not represent that plan and the solver would
    reject it, so these pairs are added to the model's catchment choices.
    """
    out: dict[str, set[tuple[int, int]]] = {"crisis_house": set(), "mobile_team": set()}
    t = inst.travel_mins
    reach = inst.scenario.pathway.crisis_house_max_travel_mins
    for plan in plans:
        cap = capacity_arrays(inst, plan)
        for service, limit in (("crisis_house", reach), ("mobile_team", math.inf)):
            alloc = plan_allocation(inst, plan, service)
            if alloc is None:
                alloc = nearest_allocation(t, cap[service] > 0, limit)
            area, site = np.nonzero(alloc > 1e-9)
            out[service].update(zip(labels[area].tolist(), site.tolist(), strict=True))
    return out


def build_model(
    inst: Instance, goals: Goals, opts: SolverOptions, hints: Sequence[Plan] = ()
) -> Built:
    """Create the MILP (1)-(12) with initial tangents.

    ``hints`` are plans the solver will be given as warm starts: the catchment pairs
    they use are added to each group's nearest candidates (see :func:`_hint_pairs`).
    """
    sc = inst.scenario
    q = sc.queues
    solver = MipModel(f"crisis-capacity-{sc.name}")
    inf = solver.infinity()
    n_areas, m_sites = inst.travel_mins.shape
    t_area = inst.travel_mins
    # groups of areas carry the allocation variables (exact: see area_groups)
    labels = area_groups(inst, opts.area_groups, opts.seed)
    n = int(labels.max()) + 1
    extra = _hint_pairs(inst, labels, hints)
    onehot = np.zeros((n, n_areas))
    onehot[labels, np.arange(n_areas)] = 1.0
    R = onehot @ inst.crisis_house_referrals
    M = onehot @ inst.mobile_episodes
    e_area = inst.episodes
    e_grp = onehot @ e_area
    t = (
        (onehot * e_area[None, :]) @ t_area / np.maximum(e_grp, 1e-12)[:, None]
    )  # demand-weighted minutes
    reach_area = t_area <= sc.pathway.crisis_house_max_travel_mins
    reach_all = (onehot @ (~reach_area).astype(float)) == 0  # every area in the group within reach
    cf = inst.coeffs
    v: dict = {
        "x": {},
        "vv": {},
        "z": {},
        "lamk": {},
        "betak": {},
        "y": {},
        "muk": {},
        "Wk": {},
        "w": {},
        "Ac": {},
        "Pc": {},
        "beds": {},
        "open_bed": {},
        "hub": {},
        "pos": {},
    }
    data: dict = {}

    # (1)-(4) crisis houses
    ch_cur, ch_lo, ch_hi, ch_must, ch_host = site_bounds(inst, "crisis_house")
    reach = reach_all
    ch_sites = np.flatnonzero(ch_host)
    data["ch_pairs"] = pairs = []
    for i in range(n):
        cand = [j for j in ch_sites if reach[i, j]]
        cand = sorted(cand, key=lambda j: t[i, j])[: opts.nearest_sites]
        cand += [j for j in ch_sites if (i, j) in extra["crisis_house"] and reach[i, j]
                 and j not in cand]  # fmt: skip
        pairs.extend((i, j) for j in cand)
    for i, j in pairs:
        v["x"][i, j] = solver.NumVar(0.0, 1.0, f"x_{i}_{j}")
    for i in range(n):
        row = [v["x"][i, j] for j in ch_sites if (i, j) in v["x"]]
        if row:
            solver.Add(solver.Sum(row) <= 1.0)  # (2)
    lam_expr = {
        j: solver.Sum([R[i] * v["x"][i, j] for (i, jj) in pairs if jj == j]) for j in ch_sites
    }
    lam_max = {j: float(sum(R[i] for (i, jj) in pairs if jj == j)) for j in ch_sites}
    beta_terms, lam_terms = [], []
    for j in ch_sites:
        levels = [0, *range(max(1, int(ch_lo[j])), int(ch_hi[j]) + 1)]
        if ch_must[j]:
            levels = levels[1:]
        zs = []
        lam_parts = []
        for k in levels:
            z = solver.BoolVar(f"z_{j}_{k}")
            v["z"][j, k] = z
            zs.append(z)
            cap = lam_max[j] if k > 0 else 0.0
            lk = solver.NumVar(0.0, cap, f"lam_{j}_{k}")
            solver.Add(lk <= cap * z)  # (3)
            bk = solver.NumVar(0.0, inf, f"beta_{j}_{k}")
            solver.Add(bk <= lk)  # (4)
            v["lamk"][j, k], v["betak"][j, k] = lk, bk
            lam_parts.append(lk)
            beta_terms.append(bk)
        solver.Add(solver.Sum(zs) == 1)  # (1)
        solver.Add(solver.Sum(lam_parts) == lam_expr[j])  # (3)
        if (j, 0) in v["z"]:
            for i, jj in pairs:
                if jj == j:
                    solver.Add(
                        v["x"][i, j] <= 1 - v["z"][j, 0]
                    )  # (2) strong link: only open houses serve
        lam_terms.append(lam_expr[j])
    data["lam_max"] = lam_max
    v["ch_places"] = {
        j: solver.Sum([k * v["z"][j, k] for (jj, k) in v["z"] if jj == j]) for j in ch_sites
    }

    # (5) admissions
    D = float((inst.episodes * cf.direct_admission).sum())
    a, b = cf.ch_to_inpatient, cf.full_to_inpatient
    A = solver.NumVar(0.0, inf, "admissions")
    solver.Add(
        A == D + b * float(R.sum()) + (a - b) * (solver.Sum(lam_terms) - solver.Sum(beta_terms))
    )
    v["A"] = A
    # admissions range: every referral served (lo) or none (hi)
    A_lo = D + min(a, b) * float(R.sum())
    A_hi = D + max(a, b) * float(R.sum())
    data["A_range"] = (A_lo, A_hi)

    # (6)-(7) pooled beds
    bed_cur, bed_lo, bed_hi, bed_must, bed_host = site_bounds(inst, "inpatient")
    bed_sites = np.flatnonzero(bed_host)
    for j in bed_sites:
        u = solver.IntVar(0, int(bed_hi[j]), f"beds_{j}")
        o = solver.BoolVar(f"openbed_{j}")
        solver.Add(u <= int(bed_hi[j]) * o)  # (11)
        solver.Add(u >= int(bed_lo[j]) * o)  # (11)
        if bed_must[j]:
            solver.Add(o == 1)
        v["beds"][j], v["open_bed"][j] = u, o
    C_lo = int(sum(bed_lo[j] for j in bed_sites if bed_must[j]))
    C_hi = int(sum(bed_hi[j] for j in bed_sites))
    if math.isfinite(goals.budget_gbp) and goals.mode == "min_weighted":
        C_hi = min(C_hi, int(goals.budget_gbp // max(unit_cost(sc, "inpatient"), 1.0)))
    C_hi = max(C_hi, C_lo)
    data["C_range"] = (C_lo, C_hi)
    w_parts, A_parts, P_parts = [], [], []
    for c in range(C_lo, C_hi + 1):
        w = solver.BoolVar(f"w_{c}")
        Ac = solver.NumVar(0.0, A_hi, f"A_{c}")
        Pc = solver.NumVar(0.0, inf, f"P_{c}")
        solver.Add(Ac <= A_hi * w)  # (7)
        solver.Add(Ac >= A_lo * w)  # (7)
        solver.Add(Pc <= Ac)
        v["w"][c], v["Ac"][c], v["Pc"][c] = w, Ac, Pc
        w_parts.append(w)
        A_parts.append(Ac)
        P_parts.append(Pc)
    solver.Add(solver.Sum(w_parts) == 1)  # (6)
    solver.Add(
        solver.Sum([c * v["w"][c] for c in v["w"]]) == solver.Sum(list(v["beds"].values()))
    )  # (6)
    solver.Add(solver.Sum(A_parts) == A)  # (7)
    P = solver.NumVar(0.0, inf, "oap_placements")
    solver.Add(P == solver.Sum(P_parts))
    v["P"] = P

    # (8) mobile teams
    mob_cur, mob_lo, mob_hi, mob_must, mob_host = site_bounds(inst, "mobile_team")
    mob_sites = np.flatnonzero(mob_host)
    profile = demand.week_profile(sc.demand)
    data["profile"] = profile
    mu_max_per_team = (
        q.mobile_max_utilisation
        * 365.0
        / (q.mobile_service_hours * demand.DAYS_PER_CYCLE * profile.max())
    )
    cov_area = mobile_within_standard(inst)
    m_area = inst.mobile_episodes
    cov = (
        (onehot * m_area[None, :]) @ cov_area.astype(float) / np.maximum(M, 1e-12)[:, None]
    )  # covered share
    data["cov"] = cov
    data["labels"] = labels
    data["mob_pairs"] = mpairs = []
    for i in range(n):
        cand = sorted(mob_sites, key=lambda j: t[i, j])[: opts.nearest_sites]
        cand += [j for j in mob_sites if (i, j) in extra["mobile_team"] and j not in cand]
        mpairs.extend((i, j) for j in cand)
    for i, j in mpairs:
        v["vv"][i, j] = solver.NumVar(0.0, 1.0, f"v_{i}_{j}")
    for i in range(n):
        solver.Add(
            solver.Sum([v["vv"][i, j] for j in mob_sites if (i, j) in v["vv"]]) == 1.0
        )  # (8)
    mu_expr = {
        j: solver.Sum([M[i] * v["vv"][i, j] for (i, jj) in mpairs if jj == j]) for j in mob_sites
    }
    W_terms = []
    for j in mob_sites:
        levels = [0, *range(max(1, int(mob_lo[j])), int(mob_hi[j]) + 1)]
        if mob_must[j]:
            levels = levels[1:]
        ys, mus = [], []
        mu_cap_j = float(sum(M[i] for (i, jj) in mpairs if jj == j))
        for mm in levels:
            y = solver.BoolVar(f"y_{j}_{mm}")
            cap = min(mu_cap_j, mm * mu_max_per_team)
            mu = solver.NumVar(0.0, cap, f"mu_{j}_{mm}")
            solver.Add(mu <= cap * y)  # (8)
            W = solver.NumVar(0.0, inf, f"W_{j}_{mm}")
            solver.Add(W <= mu)
            v["y"][j, mm], v["muk"][j, mm], v["Wk"][j, mm] = y, mu, W
            ys.append(y)
            mus.append(mu)
            W_terms.append(W)
        solver.Add(solver.Sum(ys) == 1)  # (8)
        solver.Add(solver.Sum(mus) == mu_expr[j])  # (8)
        if (j, 0) in v["y"]:
            for i, jj in mpairs:
                if jj == j:
                    solver.Add(
                        v["vv"][i, j] <= 1 - v["y"][j, 0]
                    )  # (8) strong link: only open bases serve
    data["mu_cap"] = {j: float(sum(M[i] for (i, jj) in mpairs if jj == j)) for j in mob_sites}
    data["mu_max_per_team"] = mu_max_per_team
    v["teams"] = {
        j: solver.Sum([mm * v["y"][j, mm] for (jj, mm) in v["y"] if jj == j]) for j in mob_sites
    }
    covered = solver.Sum([M[i] * cov[i, j] * v["vv"][i, j] for (i, j) in mpairs if cov[i, j] > 0])
    if goals.mobile_within_min > 0:
        solver.Add(covered - solver.Sum(W_terms) >= goals.mobile_within_min * float(M.sum()))  # (9)
    v["covered"] = covered

    # (10) crisis line
    calls = demand.calls_per_hour(inst.population, sc.demand)
    data["calls"] = calls
    sl_rows = []
    hour = demand.hour_of_day(np.arange(demand.HOURS_PER_WEEK))
    for s in SHIFTS:
        lo_h, hi_h = SHIFT_HOURS[s]
        in_shift = calls[(hour >= lo_h) & (hour < hi_h)]
        qs = []
        for hcount in range(0, MAX_HUB_HANDLERS + 1):
            qv = solver.BoolVar(f"q_{s}_{hcount}")
            v["hub"][s, hcount] = qv
            qs.append(qv)
            met = queues.erlang_a_metrics(
                in_shift,
                np.full(len(in_shift), hcount),
                q.hub_aht_seconds,
                q.hub_mean_patience_seconds,
                q.hub_answer_within_seconds,
            )
            sl_rows.append(float(np.sum(np.asarray(met["service_level"]) * in_shift)) * qv)
        solver.Add(solver.Sum(qs) == 1)
    if goals.hub_sl_min > 0 and calls.sum() > 0:
        solver.Add(solver.Sum(sl_rows) >= goals.hub_sl_min * float(calls.sum()))  # (10)
    v["hub_positions"] = solver.Sum([h * qv for (s, h), qv in v["hub"].items()])

    # places of safety: kept at today's capacity (load does not depend on other decisions)
    pos_units = float(sum(sc.site(s).capacity.place_of_safety_suites for s in inst.site_ids))

    # (11) money, capital, workforce, coverage, equity
    units = {
        "inpatient": solver.Sum(list(v["beds"].values())),
        "crisis_house": solver.Sum(list(v["ch_places"].values())) if v["ch_places"] else 0,
        "mobile_team": solver.Sum(list(v["teams"].values())) if v["teams"] else 0,
    }
    v["units"] = units
    revenue = (
        unit_cost(sc, "inpatient") * units["inpatient"]
        + unit_cost(sc, "crisis_house") * units["crisis_house"]
        + unit_cost(sc, "mobile_team") * units["mobile_team"]
        + unit_cost(sc, "place_of_safety") * pos_units
        + unit_cost(sc, "hub") * v["hub_positions"]
        + sc.costs.oap_gbp_per_bed_day * q.oap_los_days * P
    )
    v["revenue"] = revenue
    if goals.mode == "min_weighted":
        solver.Add(revenue <= goals.budget_gbp)  # (11)
    capital_terms = []
    cap_cost = sc.costs.capital_gbp_per_new_site
    for j in ch_sites:
        if ch_cur[j] == 0 and (j, 0) in v["z"]:
            capital_terms.append(cap_cost["crisis_house"] * (1 - v["z"][j, 0]))
    for j in mob_sites:
        if mob_cur[j] == 0 and (j, 0) in v["y"]:
            capital_terms.append(cap_cost["mobile_team"] * (1 - v["y"][j, 0]))
    for j in bed_sites:
        if bed_cur[j] == 0:
            capital_terms.append(cap_cost["inpatient"] * v["open_bed"][j])
    v["capital"] = solver.Sum(capital_terms) if capital_terms else 0
    if goals.capital_gbp is not None and capital_terms:
        solver.Add(v["capital"] <= goals.capital_gbp)  # (11)
    per = sc.costs.wte_per_unit
    for g, capv in goals.workforce_caps.items():
        expr = (
            per["inpatient"][g] * units["inpatient"]
            + per["crisis_house"][g] * units["crisis_house"]
            + per["mobile_team"][g] * units["mobile_team"]
            + per["place_of_safety"][g] * pos_units
            + per["hub"][g] * v["hub_positions"]
        )
        solver.Add(expr <= capv)  # (11)
    pop = inst.areas["pop_total"].to_numpy(float)
    if goals.ch_travel_mins is not None and goals.ch_pop_share_min is not None:
        cover_vars = []
        for i in range(n_areas):
            near = [j for j in ch_sites if t_area[i, j] <= goals.ch_travel_mins]
            if not near:
                continue
            ai = solver.NumVar(0.0, 1.0, f"chcov_{i}")
            solver.Add(
                ai <= solver.Sum([1 - v["z"][j, 0] if (j, 0) in v["z"] else 1 for j in near])
            )
            cover_vars.append(pop[i] * ai)
        solver.Add(solver.Sum(cover_vars) >= goals.ch_pop_share_min * float(pop.sum()))  # (11)
    if goals.equity_gap is not None:
        q1 = (onehot @ (inst.quintile == 1).astype(float)) > 0.5  # groups never mix quintiles
        if q1.any():
            R1, Rt = float(R[q1].sum()), float(R.sum())
            acc1 = solver.Sum([R[i] * v["x"][i, j] for (i, j) in pairs if q1[i]])
            acc = solver.Sum([R[i] * v["x"][i, j] for (i, j) in pairs])
            if R1 > 0 and Rt > 0:
                solver.Add(acc1 * (1.0 / R1) >= acc * (1.0 / Rt) - goals.equity_gap)  # (11)
            M1, Mt = float(M[q1].sum()), float(M.sum())
            cov1 = solver.Sum(
                [M[i] * cov[i, j] * v["vv"][i, j] for (i, j) in mpairs if q1[i] and cov[i, j] > 0]
            )
            if M1 > 0 and Mt > 0:
                solver.Add(cov1 * (1.0 / M1) >= covered * (1.0 / Mt) - goals.equity_gap)  # (11)

    # (12) objective
    travel_hours = (
        solver.Sum([R[i] * t[i, j] * v["x"][i, j] for (i, j) in pairs])
        + solver.Sum([M[i] * t[i, j] * v["vv"][i, j] for (i, j) in mpairs])
    ) * (1.0 / 60.0)
    v["travel_hours"] = travel_hours
    W = sc.objective.weights
    # tie-break: prefer today's capacity (tiny weight per unit changed)
    change_terms = []
    for j in bed_sites:
        d = solver.NumVar(0.0, inf, f"dbed_{j}")
        solver.Add(d >= v["beds"][j] - int(bed_cur[j]))
        solver.Add(d >= int(bed_cur[j]) - v["beds"][j])
        change_terms.append(d)
    v["change"] = solver.Sum(change_terms) if change_terms else 0
    if goals.mode == "min_weighted":
        obj = W.oap_bed_day * q.oap_los_days * P + W.admission * A + W.travel_hour * travel_hours
        data["tie_weight"] = 1e-4
    else:
        if goals.oap_bed_days_max is not None:
            solver.Add(q.oap_los_days * P <= goals.oap_bed_days_max)  # (12)
        if goals.admissions_max is not None:
            solver.Add(A <= goals.admissions_max)  # (12)
        obj = revenue + 1e-3 * travel_hours
        data["tie_weight"] = 1.0
    v["objective_expr"] = obj
    solver.Minimize(obj + data["tie_weight"] * v["change"])
    data.update(
        {
            "ch_sites": ch_sites,
            "bed_sites": bed_sites,
            "mob_sites": mob_sites,
            "pos_units": pos_units,
            "D": D,
            "R": R,
            "M": M,
        }
    )

    built = Built(solver=solver, v=v, cut_keys={"ch": set(), "bed": set(), "mob": set()}, data=data)
    add_initial_cuts(inst, built)
    return built


def _grid(hi: float, servers: int, scale: float) -> list[float]:
    """Tangent points: loads around the number of servers, in the variable's own units."""
    pts = {0.0, hi}
    for r in (0.1, 0.3, 0.5, 0.65, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0):
        x = r * max(servers, 0.5) * scale
        if 0 < x < hi:
            pts.add(x)
    return sorted(pts)


def _add_tangent(solver, out, on, x, val: float, der: float, at: float) -> bool:
    """out >= (f(at) - f'(at) at) on + f'(at) x: the tangent's perspective (4), (7), (8).

    Tangents whose coefficients are negligible add nothing (out >= 0 already holds)
    and only hurt the solver's numerics, so they are skipped.
    """
    intercept = val - der * at
    if der < 1e-9 and abs(intercept) < 1e-6:
        return False
    if abs(intercept) < 1e-9:
        intercept = 0.0
    solver.Add(out >= intercept * on + der * x)
    return True


def add_ch_cut(
    inst: Instance,
    built: Built,
    j: int,
    k: int,
    lam: float,
    known: tuple[float, float] | None = None,
) -> bool:
    key = (j, k, round(lam, 6))
    if key in built.cut_keys["ch"] or k == 0:
        return False
    built.cut_keys["ch"].add(key)
    val, der = known or f_ch(lam, k, inst.scenario.queues.crisis_house_los_days)
    z, lk, bk = built.v["z"][j, k], built.v["lamk"][j, k], built.v["betak"][j, k]
    return _add_tangent(built.solver, bk, z, lk, val, der, lam)


def add_bed_cut(
    inst: Instance, built: Built, c: int, adm: float, known: tuple[float, float] | None = None
) -> bool:
    key = (c, round(adm, 6))
    if key in built.cut_keys["bed"]:
        return False
    built.cut_keys["bed"].add(key)
    q = inst.scenario.queues
    val, der = known or g_beds(adm, c, q.inpatient_los_days, q.inpatient_peakedness)
    w, Ac, Pc = built.v["w"][c], built.v["Ac"][c], built.v["Pc"][c]
    return _add_tangent(built.solver, Pc, w, Ac, val, der, adm)


def add_mob_cut(
    inst: Instance,
    built: Built,
    j: int,
    mm: int,
    mu: float,
    known: tuple[float, float] | None = None,
) -> bool:
    key = (j, mm, round(mu, 6))
    if key in built.cut_keys["mob"] or mm == 0:
        return False
    built.cut_keys["mob"].add(key)
    q = inst.scenario.queues
    val, der = known or h_mobile(mu, mm, built.data["profile"], q.mobile_service_hours)
    y, mu_v, W = built.v["y"][j, mm], built.v["muk"][j, mm], built.v["Wk"][j, mm]
    return _add_tangent(built.solver, W, y, mu_v, val, der, mu)


def add_initial_cuts(inst: Instance, built: Built) -> None:
    """Tangents on a grid of loads for every level, computed a level at a time."""
    q = inst.scenario.queues
    los = q.crisis_house_los_days
    for j, k in list(built.v["z"]):
        if k == 0:
            continue
        lams = np.array(_grid(built.data["lam_max"][j], k, 365.0 / los))
        e = lams * los / 365.0
        vals = np.asarray(queues.lost_traffic(e, k)) * 365.0 / los
        ders = np.asarray(queues.lost_traffic_dload(e, k))
        for lam, val, der in zip(lams, vals, ders, strict=True):
            add_ch_cut(inst, built, j, k, float(lam), (float(val), float(der)))
    A_lo, A_hi = built.data["A_range"]
    los, z = q.inpatient_los_days, q.inpatient_peakedness
    adms = np.linspace(A_lo, A_hi, 16)
    for c in built.v["w"]:
        if c == 0:
            for adm in adms:
                add_bed_cut(inst, built, c, float(adm))
            continue
        e = adms * los / 365.0
        vals = np.asarray(queues.lost_traffic(e, c, z)) * 365.0 / los
        ders = np.asarray(queues.lost_traffic_dload(e, c, z))
        for adm, val, der in zip(adms, vals, ders, strict=True):
            add_bed_cut(inst, built, c, float(adm), (float(val), float(der)))
    profile = built.data["profile"]
    hours = q.mobile_service_hours
    days = demand.DAYS_PER_CYCLE
    for j, mm in list(built.v["y"]):
        if mm == 0:
            continue
        hi = min(built.data["mu_cap"][j], mm * built.data["mu_max_per_team"])
        mus = np.linspace(0, hi, 10)
        e = mus[:, None] * days * profile[None, :] * hours / 365.0
        vals = np.asarray(queues.waiting_load(e, mm)).sum(axis=1) * 365.0 / (days * hours)
        ders = (np.asarray(queues.waiting_load_dload(e, mm)) * profile[None, :]).sum(axis=1)
        for mu, val, der in zip(mus, vals, ders, strict=True):
            add_mob_cut(inst, built, j, mm, float(mu), (float(val), float(der)))


# ----------------------------------------------------------------------------- solve


def snapshot(built: Built) -> dict:
    """Solution values of the queueing variables, read before the model is changed again."""
    v, val = built.v, built.solver.values
    return {
        key: {k: float(val[var]) for k, var in v[key].items()}
        for key in ("z", "lamk", "betak", "w", "Ac", "Pc", "y", "muk", "Wk")
    }


def _chosen(values: dict, j: int) -> int:
    best, val = None, -1.0
    for (jj, k), x in values.items():
        if jj == j and x > val:
            best, val = k, x
    return int(best)


def violations(inst: Instance, built: Built, snap: dict, tol: float) -> list[tuple]:
    """Where the model under-estimates a queueing function at its solution (outer approximation)."""
    q = inst.scenario.queues
    out = []
    for j in built.data["ch_sites"]:
        k = _chosen(snap["z"], j)
        lam = snap["lamk"][j, k]
        if k == 0 or lam <= 1e-9:
            continue
        true, _ = f_ch(lam, k, q.crisis_house_los_days)
        if true - snap["betak"][j, k] > tol * max(1.0, true):
            out.append(("ch", j, k, lam))
    c = max(snap["w"], key=lambda cc: snap["w"][cc])
    adm = snap["Ac"][c]
    true, _ = g_beds(adm, c, q.inpatient_los_days, q.inpatient_peakedness)
    if true - snap["Pc"][c] > tol * max(1.0, true):
        out.append(("bed", c, adm))
    for j in built.data["mob_sites"]:
        mm = _chosen(snap["y"], j)
        mu = snap["muk"][j, mm]
        if mm == 0 or mu <= 1e-9:
            continue
        true, _ = h_mobile(mu, mm, built.data["profile"], q.mobile_service_hours)
        if true - snap["Wk"][j, mm] > tol * max(1.0, true):
            out.append(("mob", j, mm, mu))
    return out


def refine(inst: Instance, built: Built, snap: dict, tol: float) -> int:
    """Add a tangent at every under-estimated point; returns how many were added."""
    added = 0
    for viol in violations(inst, built, snap, tol):
        if viol[0] == "ch":
            added += add_ch_cut(inst, built, *viol[1:])
        elif viol[0] == "bed":
            added += add_bed_cut(inst, built, *viol[1:])
        else:
            added += add_mob_cut(inst, built, *viol[1:])
    return added


def extract_plan(inst: Instance, built: Built, name: str, snap: dict) -> Plan:
    v = built.v
    sc = inst.scenario
    caps = {sid: dict.fromkeys(SERVICES, 0) for sid in inst.site_ids}
    for j in built.data["ch_sites"]:
        caps[inst.site_ids[j]]["crisis_house"] = _chosen(snap["z"], j)
    for j in built.data["bed_sites"]:
        caps[inst.site_ids[j]]["inpatient"] = int(round(built.solver.value(v["beds"][j])))
    for j in built.data["mob_sites"]:
        caps[inst.site_ids[j]]["mobile_team"] = _chosen(snap["y"], j)
    for sid in inst.site_ids:
        caps[sid]["place_of_safety"] = sc.site(sid).capacity.place_of_safety_suites
    hub = {
        s: max(range(MAX_HUB_HANDLERS + 1), key=lambda h, s=s: built.solver.value(v["hub"][s, h]))
        for s in SHIFTS
    }
    sites = tuple(
        SitePlan(
            site_id=sid, capacity=Capacity(**{f: caps[sid][svc] for svc, f in _FIELDS.items()})
        )
        for sid in inst.site_ids
    )
    codes = inst.areas.index
    members: dict[int, list[int]] = {}
    for a, g in enumerate(built.data["labels"]):
        members.setdefault(int(g), []).append(a)
    alloc = []
    for service, key in (("crisis_house", "x"), ("mobile_team", "vv")):
        for (g, j), var in v[key].items():
            val = min(1.0, max(0.0, built.solver.value(var)))
            if val > 1e-9:
                alloc.extend(
                    AllocationShare(
                        service=service, area_code=codes[a], site_id=inst.site_ids[j], share=val
                    )
                    for a in members[g]
                )
    q = sc.queues
    val = built.solver.value
    predicted = {
        "admissions_per_year": val(v["A"]),
        "oap_placements_per_year": val(v["P"]),
        "oap_bed_days_per_year": val(v["P"]) * q.oap_los_days,
        "total_cost_gbp_per_year": val(v["revenue"]),
        "travel_burden_hours_per_year": val(v["travel_hours"]),
        "objective": val(v["objective_expr"]),
    }
    return Plan(
        name=name, sites=sites, hub=HubCapacity(**hub), allocation=tuple(alloc), predicted=predicted
    )


_FIELDS = {
    "inpatient": "inpatient_beds",
    "crisis_house": "crisis_house_places",
    "mobile_team": "mobile_teams",
    "place_of_safety": "place_of_safety_suites",
}


def hint_values(inst: Instance, built: Built, plan: Plan) -> dict:
    """Warm start from a plan (capacities only)."""
    v = built.v
    vars_, vals = [], []
    idx = {s: j for j, s in enumerate(inst.site_ids)}
    for sp in plan.sites:
        j = idx[sp.site_id]
        k = sp.capacity.crisis_house_places
        for (jj, kk), z in v["z"].items():
            if jj == j:
                vars_.append(z)
                vals.append(1.0 if kk == k else 0.0)
        if j in v["beds"]:
            vars_.append(v["beds"][j])
            vals.append(float(sp.capacity.inpatient_beds))
        mm = sp.capacity.mobile_teams
        for (jj, kk), y in v["y"].items():
            if jj == j:
                vars_.append(y)
                vals.append(1.0 if kk == mm else 0.0)
    for (s, h), qv in v["hub"].items():
        vars_.append(qv)
        vals.append(1.0 if plan.hub.of(s) == h else 0.0)
    return dict(zip(vars_, vals, strict=True))


SOLVERS = {"HIGHS": mathopt.SolverType.HIGHS, "SCIP": mathopt.SolverType.GSCIP}


def fix_integers(built: Built) -> dict:
    """Fix every integer variable at its incumbent value (what remains is an LP).

    Returns the original bounds, for :func:`unfix_integers`.
    """
    saved = {}
    for var in built.solver.model.variables():
        if var.integer:
            saved[var] = (var.lower_bound, var.upper_bound)
            val = round(float(built.solver.values[var]))
            var.lower_bound = val
            var.upper_bound = val
    return saved


def unfix_integers(saved: dict) -> None:
    for var, (lo, hi) in saved.items():
        var.lower_bound, var.upper_bound = lo, hi


def _polish(inst: Instance, built: Built, opts: SolverOptions, best, name: str, elapsed) -> bool:
    """Refine the queueing tangents with the integers fixed until exact; offer the plan.

    Returns True when an exact plan was found (kept if within every limit), False when
    the fixed integers cannot meet the limits once the estimates are exact.
    """
    saved = fix_integers(built)
    try:
        for extra in range(1, 40):
            result = run_solver(built, opts, max(1.0, opts.time_limit_s - elapsed()))
            if not result.has_primal_feasible_solution():
                return False
            snap = snapshot(built)
            viol = violations(inst, built, snap, opts.tolerance)
            log.info("polish %d: objective %.2f, exact=%s (%.1f s)", extra,
                     result.objective_value(), not viol, elapsed())  # fmt: skip
            if not viol:
                best.offer(extract_plan(inst, built, name, snap), "solver")
                return True
            refine(inst, built, snap, opts.tolerance)
        return False
    finally:
        unfix_integers(saved)


# A row of HiGHS's branch-and-bound table: optional source letter, nodes processed, in
# queue, leaves, explored share, then BestBound, BestSol and Gap (either may be "inf").
_HIGHS_ROW = re.compile(
    r"^\s*[A-Za-z]?\s+\d+\s+\d+\s+\d+\s+[\d.]+%\s+(\S+)\s+(\S+)\s+(?:\S+%|inf|Large)"
)


def parse_highs_row(line: str) -> tuple[float, float] | None:
    """(best bound, best solution) from one line of HiGHS's MIP log, or None.

    Either value is ``nan`` while HiGHS has none (it prints ``inf`` or ``-inf``).
    """
    m = _HIGHS_ROW.match(line)
    if m is None:
        return None
    out = []
    for text in m.groups():
        try:
            value = float(text)
        except ValueError:
            return None
        out.append(value if math.isfinite(value) else math.nan)
    return out[0], out[1]


def run_solver(
    built: Built,
    opts: SolverOptions,
    seconds: float,
    hint: dict | None = None,
    live: Callable[[float, float], None] | None = None,
):
    """One MathOpt solve; stores the incumbent's values on the model.

    ``live(bound, best)`` is called as HiGHS's log reports progress (the model's best
    bound and best solution so far, ``nan`` while there is none), so a long search can
    show where it stands.
    """
    params = mathopt.SolveParameters(
        time_limit=timedelta(seconds=max(seconds, 0.1)),
        relative_gap_tolerance=opts.gap,
        random_seed=opts.seed,
        enable_output=log.isEnabledFor(logging.DEBUG),
        node_limit=opts.node_limit,
    )
    if (
        opts.workers and opts.backend != "HIGHS"
    ):  # MathOpt's HiGHS takes no thread count (it runs one)
        params.threads = opts.workers
    model_params = None
    if hint:
        model_params = mathopt.ModelSolveParameters(
            solution_hints=[mathopt.SolutionHint(variable_values=hint)]
        )
    msg_cb = None
    if live is not None and opts.backend == "HIGHS":
        # HiGHS first completes a partial warm start by solving a smaller MIP, and logs
        # that search's table too; its bound is for the smaller problem, so its rows are
        # skipped (from "Attempting to find feasible solution" to its "Solving report").
        in_start = [False]

        def msg_cb(lines: list[str]) -> None:
            for line in lines:
                if line.startswith("Attempting to find feasible solution"):
                    in_start[0] = True
                elif in_start[0] and line.startswith("Solving report"):
                    in_start[0] = False
                elif not in_start[0] and (row := parse_highs_row(line)) is not None:
                    live(*row)

    result = mathopt.solve(
        built.solver.model,
        SOLVERS[opts.backend],
        params=params,
        model_params=model_params,
        msg_cb=msg_cb,
    )
    if result.has_primal_feasible_solution():
        built.solver.values = result.variable_values()
    return result


def _gap(objective: float, bound: float) -> float:
    """Relative distance of a plan's objective above the best bound (inf without a bound)."""
    if not math.isfinite(bound):
        return math.inf
    return max(0.0, (objective - bound) / max(abs(objective), 1e-9))


class _Incumbent:
    """The best plan so far that ``evaluate`` finds within every limit."""

    def __init__(self, inst: Instance, goals: Goals):
        self.inst, self.goals = inst, goals
        self.weights = inst.scenario.objective.weights
        self.plan: Plan | None = None
        self.objective = math.inf
        self.source = ""
        self.rejected: list[str] = []

    def offer(self, plan: Plan, source: str) -> bool:
        card = evaluate(self.inst, plan)
        broken = breaches(self.inst, card, goals=self.goals)
        if broken:
            self.rejected = [b.message for b in broken]
            log.info("%s plan rejected: %s", source, "; ".join(self.rejected))
            return False
        obj = objective_value(card, self.goals.mode, self.weights)
        tol = 1e-9 * max(abs(obj), 1.0)
        # on a tie the solver's plan wins: it carries its catchments and predictions
        if obj < self.objective - tol or (source == "solver" and obj <= self.objective + tol):
            self.plan, self.objective, self.source = plan, obj, source
            return True
        return False


def solve(
    inst: Instance,
    goals: Goals,
    opts: SolverOptions,
    hint: Plan | Sequence[Plan] | None = None,
    name: str = "optimised",
) -> Plan:
    """Build, solve and refine until the queueing estimates are exact; return the plan.

    Every plan the search produces is judged by ``evaluate`` against every limit, and
    only plans within all of them are kept. ``hint`` (feasible plans, such as the
    heuristic's, or the last budget's on a frontier) gives the solver's warm start (the
    best of them) and the answer if the solver finds nothing better in time. The best
    bound over all rounds is kept (each round's outer approximation under-estimates the
    queueing losses, so each bound is valid).
    """
    start = time.perf_counter()
    report = opts.progress or (lambda msg, frac: None)
    best = _Incumbent(inst, goals)
    hints = [hint] if isinstance(hint, Plan) else list(hint or [])
    for h in hints:
        best.offer(h, "heuristic")
    hint = best.plan
    report("building model", 0.02)
    built = build_model(inst, goals, opts, hints=[hint] if hint is not None else ())
    reason, limit, rounds = None, None, 0
    bound = -math.inf
    proven = False  # a round ended OPTIMAL on the model and its plan was exact
    hint_vals = hint_values(inst, built, hint) if hint is not None else None
    # Branch and bound gets most of the time; the rest polishes the queueing estimates
    # with the integer decisions fixed (an LP, fast), so the plan is exact when returned.
    reserve = min(0.2 * opts.time_limit_s, 15.0)
    exact, snap = False, None

    def elapsed() -> float:
        return time.perf_counter() - start

    def progress(what: str) -> None:
        frac = min(0.9, 0.05 + 0.85 * elapsed() / max(opts.time_limit_s, 1e-9))
        shown = f"best {best.objective:,.1f}" if best.plan is not None else "no plan yet"
        lower = f", bound {bound:,.1f}" if math.isfinite(bound) else ""
        report(f"{what}: {shown}{lower}", frac)

    for rounds in range(1, opts.max_rounds + 1):
        remaining = opts.time_limit_s - reserve - elapsed()
        if remaining <= 0.5:
            break
        progress(f"solving (round {rounds})")

        def live(db: float, model_best: float, rounds: int = rounds, prior: float = bound) -> None:
            # HiGHS's own incumbent is the model's estimate of a plan's objective (the
            # plan is judged exactly once the round ends); its bound is valid as it stands.
            lower = max(prior, db) if math.isfinite(db) else prior
            found = [x for x in (best.objective, model_best) if x is not None and math.isfinite(x)]
            shown = f"best {min(found):,.1f}" if found else "no plan yet"
            tail = ""
            if math.isfinite(lower):
                tail = f", bound {lower:,.1f}"
                if found:
                    tail += f" (gap {_gap(min(found), lower):.1%})"
            frac = min(0.9, 0.05 + 0.85 * elapsed() / max(opts.time_limit_s, 1e-9))
            report(f"searching (round {rounds}): {shown}{tail}", frac)

        result = run_solver(built, opts, remaining, hint_vals, live=live)
        reason, limit = result.termination.reason, result.termination.limit
        log.debug("termination %s", result.termination)
        db = result.termination.objective_bounds.dual_bound
        if math.isfinite(db):
            bound = max(bound, db)
        if not result.has_primal_feasible_solution():
            break
        snap = snapshot(built)
        hint_vals = dict(built.solver.values)
        viol = violations(inst, built, snap, opts.tolerance)
        exact = not viol
        log.info(
            "round %d: objective %.2f bound %.2f, exact=%s (%.1f s)",
            rounds,
            result.objective_value(),
            bound,
            exact,
            elapsed(),
        )
        proven = reason == mathopt.TerminationReason.OPTIMAL
        if exact:
            best.offer(extract_plan(inst, built, name, snap), "solver")
            break
        # Polish before re-solving: with the integers fixed, refining the tangents is an
        # LP and makes the estimates exact in a few passes, which gives an exact plan at
        # once. Another MIP round (with the new tangents) is needed only when that plan is
        # not yet within the gap of the bound (the round's bound came from tangents that
        # were too low) or the exact losses push the fixed plan over a limit.
        refine(inst, built, snap, opts.tolerance)
        progress("refining queueing estimates")
        polished = _polish(inst, built, opts, best, name, elapsed)
        within = best.plan is not None and _gap(best.objective, bound) <= opts.gap + 1e-9
        # Another round is worth it only when this one closed the model's own gap and the
        # exact losses, now tangents in the model, leave the plan above the target (or the
        # fixed plan broke a limit once exact). A round stopped by the clock or the node
        # limit would stop again with the same limits.
        if within or (polished and not proven):
            break
        proven = False
    seconds = elapsed()
    work_stopped = limit == mathopt.Limit.NODE
    clock_stopped = not work_stopped and (
        reason == mathopt.TerminationReason.FEASIBLE or opts.time_limit_s - reserve - seconds <= 0.5
    )
    if best.plan is None:
        if reason in (
            mathopt.TerminationReason.INFEASIBLE,
            mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED,
        ):
            from pathways.optimise.diagnose import explain_infeasible

            raise InfeasibleError(explain_infeasible(inst, goals, opts))
        detail = "the best plan found breaks: " + "; ".join(best.rejected) if best.rejected else ""
        raise NoPlanInTimeError(opts.time_limit_s, detail)
    obj = best.objective
    gap = _gap(obj, bound)
    if gap <= opts.gap + 1e-9 and (proven or math.isfinite(bound)):
        status = "OPTIMAL"
    elif best.source == "heuristic":
        status = "HEURISTIC"
    else:
        status = "TIME_LIMIT"
    messages = {
        "OPTIMAL": f"within {gap:.2%} of the best possible",
        "TIME_LIMIT": (
            f"stopped at the work limit (node limit {opts.node_limit})"
            if work_stopped
            else f"stopped on the clock after {seconds:.0f} s"
            if clock_stopped
            else "the search finished, but the plan's exact queueing losses put it above the "
            f"{opts.gap:.1%} gap target"
        )
        + (
            f"; within {gap:.1%} of the best possible"
            if math.isfinite(gap)
            else ", before any bound was proven"
        ),
        "HEURISTIC": "the solver found nothing better than the heuristic plan in time"
        + (f"; within {gap:.1%} of the best possible" if math.isfinite(gap) else ""),
    }
    plan = best.plan if best.source == "solver" else best.plan.model_copy(update={"name": name})
    settings = {
        **goals.settings(),
        "time_limit_s": opts.time_limit_s,
        "gap_target": opts.gap,
        "node_limit": opts.node_limit,
    }
    return plan.model_copy(
        update={
            "solver": SolverReport(
                status=status,
                objective=obj,
                best_bound=bound if math.isfinite(bound) else None,
                gap=gap if math.isfinite(gap) else None,
                seconds=seconds,
                solver=f"OR-Tools MathOpt {opts.backend}",
                iterations=rounds,
                message=messages[status],
                settings=settings,
                breaches=(),
            )
        }
    )


def staff_groups() -> tuple[str, ...]:
    return STAFF_GROUPS


def hub_table(inst: Instance, handlers: dict[str, int]):
    return hub_metrics(inst, handlers)
