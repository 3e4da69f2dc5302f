"""Location-allocation core: open sites, allocate clients, cover, count.

The pieces a location model is built from, shared by the OR-Library
benchmarks (:mod:`pathways.optimise.orlib`):

* MathOpt building blocks: candidate sites with an open decision
  (:func:`add_sites`), a cardinality or budget limit on the open sites
  (:func:`add_cardinality`, :func:`add_budget`), fractional client
  allocation (:func:`add_allocation`, :func:`add_demand_met`,
  :func:`add_capacity`, :func:`add_serve_only_open`,
  :func:`add_capacity_cover`) and weighted coverage
  (:func:`add_closest_assignment_cut`);
* heuristics in plain numpy: greedy add and vertex substitution
  (Teitz-Bart interchange with the fast swap evaluation of Whitaker) for the
  p-median (:func:`greedy_pmedian`, :func:`vertex_substitution`);
* a Benders decomposition of the p-median on its radius formulation, with the
  closest-assignment cuts of Duran-Mateluna, Ales and Elloumi (EJOR 2023),
  reduced-cost fixing and an integer master re-solved until no cut is
  violated (:func:`solve_pmedian_benders`);
* the strong (disaggregated) capacitated facility location model
  (:func:`build_cflp`), optionally with its linking rows added only where the
  LP relaxation violates them (:func:`add_links_lazily`), a feasible plan by
  local search (:func:`cflp_heuristic`), and a Lagrangian relaxation of its
  demand rows that gives a bound, better plans and sites fixed open or closed
  by proof (:func:`cflp_lagrangian`).

Costs are in whatever unit the caller's data uses (distance, money); times are
wall-clock seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.math_opt.python import mathopt
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import csr_array

logger = logging.getLogger(__name__)

#: Relative and absolute gap at which a MIP counts as solved.
RELATIVE_GAP = 1e-9
ABSOLUTE_GAP = 1e-6
#: A cut is added when it is violated by more than this (relative to the cost).
CUT_TOL = 1e-7
#: Cumulative open mass at which a client counts as fully covered.
MASS_TOL = 1e-9

STATUS = {
    mathopt.TerminationReason.OPTIMAL: "OPTIMAL",
    mathopt.TerminationReason.FEASIBLE: "FEASIBLE",
    mathopt.TerminationReason.NO_SOLUTION_FOUND: "NO_SOLUTION",
    mathopt.TerminationReason.INFEASIBLE: "INFEASIBLE",
    mathopt.TerminationReason.UNBOUNDED: "UNBOUNDED",
    mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED: "INFEASIBLE_OR_UNBOUNDED",
    mathopt.TerminationReason.IMPRECISE: "IMPRECISE",
    mathopt.TerminationReason.NUMERICAL_ERROR: "NUMERICAL_ERROR",
    mathopt.TerminationReason.OTHER_ERROR: "ERROR",
}


def status_name(result: mathopt.SolveResult) -> str:
    """Short status string of a MathOpt result (``OPTIMAL``, ``FEASIBLE``, ...)."""
    return STATUS.get(result.termination.reason, result.termination.reason.name)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LocationSolution:
    """Outcome of a location solve.

    Attributes
    ----------
    objective : float
        Cost of the best solution found (``nan`` if none), caller's unit.
    best_bound : float
        Proven lower bound on the optimal cost.
    status : str
        ``OPTIMAL`` (proven), ``FEASIBLE`` (limit reached with a solution),
        ``INFEASIBLE``, ``NO_SOLUTION`` or another MathOpt termination reason.
    seconds : float
        Wall-clock time of the solve.
    open_sites : tuple of int
        0-based open sites, ascending.
    allocation : numpy.ndarray or None
        p-median: ``(n,)`` site serving each client. CFLP: ``(n, m)`` fraction
        of each client's demand served by each site.
    stats : dict
        Counters (rounds, cuts, fixed sites, MIP solves, heuristic cost).
    """

    objective: float
    best_bound: float
    status: str
    seconds: float
    open_sites: tuple[int, ...]
    allocation: np.ndarray | None = field(default=None, repr=False, compare=False)
    stats: dict = field(default_factory=dict, compare=False)

    @property
    def gap(self) -> float:
        """``|objective - best_bound| / max(|objective|, 1)`` (``nan`` if unknown)."""
        if math.isfinite(self.objective) and math.isfinite(self.best_bound):
            return abs(self.objective - self.best_bound) / max(abs(self.objective), 1.0)
        return math.nan


class Deadline:
    """Wall-clock budget shared by the phases of a solve (seconds)."""

    def __init__(self, seconds: float):
        if not seconds > 0:
            raise ValueError(f"time limit must be positive, got {seconds}")
        self.start = time.perf_counter()
        self.end = self.start + seconds

    def left(self) -> float:
        """Seconds remaining (may be negative)."""
        return self.end - time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def params(self, **extra) -> mathopt.SolveParameters:
        """Solve parameters with the remaining time and tight gap tolerances."""
        return mathopt.SolveParameters(
            time_limit=dt.timedelta(seconds=max(self.left(), 0.01)),
            relative_gap_tolerance=RELATIVE_GAP,
            absolute_gap_tolerance=ABSOLUTE_GAP,
            **extra,
        )


# ---------------------------------------------------------------------------
# MathOpt building blocks
# ---------------------------------------------------------------------------


def add_sites(
    model: mathopt.Model, fixed_costs: Sequence[float] | np.ndarray, name: str = "open"
) -> list[mathopt.Variable]:
    """One binary open decision ``y_j`` per candidate site, costing ``fixed_costs[j]``."""
    model.objective.is_maximize = False
    sites = []
    for j, cost in enumerate(np.asarray(fixed_costs, dtype=float)):
        y = model.add_binary_variable(name=f"{name}[{j}]")
        if cost != 0.0:
            model.objective.set_linear_coefficient(y, float(cost))
        sites.append(y)
    return sites


def add_cardinality(
    model: mathopt.Model, sites: Sequence[mathopt.Variable], count: int, exact: bool = True
) -> mathopt.LinearConstraint:
    """``sum_j y_j = count`` (or ``<= count`` when ``exact`` is false)."""
    total = mathopt.fast_sum(sites)
    con = total == float(count) if exact else total <= float(count)
    return model.add_linear_constraint(con, name="cardinality")


def add_budget(
    model: mathopt.Model,
    sites: Sequence[mathopt.Variable],
    costs: Sequence[float] | np.ndarray,
    budget: float,
) -> mathopt.LinearConstraint:
    """``sum_j cost_j y_j <= budget`` (costs and budget in the same unit)."""
    spend = mathopt.fast_sum(float(c) * y for c, y in zip(costs, sites, strict=True))
    return model.add_linear_constraint(spend <= float(budget), name="budget")


def add_allocation(
    model: mathopt.Model, costs: np.ndarray, name: str = "serve"
) -> list[list[mathopt.Variable]]:
    """Fractions ``x_ij`` in [0, 1] of client ``i`` served by site ``j``.

    ``costs[i, j]`` is the cost of serving ALL of client ``i`` from ``j``;
    it becomes the objective coefficient of ``x_ij``. Returned as ``x[i][j]``.
    """
    model.objective.is_maximize = False
    n, m = costs.shape
    x = []
    for i in range(n):
        row = []
        for j in range(m):
            var = model.add_variable(lb=0.0, ub=1.0, name=f"{name}[{i},{j}]")
            if costs[i, j] != 0.0:
                model.objective.set_linear_coefficient(var, float(costs[i, j]))
            row.append(var)
        x.append(row)
    return x


def add_demand_met(model: mathopt.Model, x: list[list[mathopt.Variable]]) -> None:
    """``sum_j x_ij = 1`` for every client ``i``: all demand is served."""
    for i, row in enumerate(x):
        model.add_linear_constraint(mathopt.fast_sum(row) == 1.0, name=f"demand[{i}]")


def add_capacity(
    model: mathopt.Model,
    x: list[list[mathopt.Variable]],
    sites: Sequence[mathopt.Variable],
    demands: np.ndarray,
    capacities: np.ndarray,
) -> None:
    """``sum_i d_i x_ij <= s_j y_j`` for every site ``j``: only open sites, within capacity."""
    for j, y in enumerate(sites):
        con = model.add_linear_constraint(ub=0.0, name=f"cap[{j}]")
        for i, row in enumerate(x):
            if demands[i] != 0.0:
                con.set_coefficient(row[j], float(demands[i]))
        con.set_coefficient(y, -float(capacities[j]))


def add_serve_only_open(
    model: mathopt.Model,
    x: list[list[mathopt.Variable]],
    sites: Sequence[mathopt.Variable],
    pairs: Sequence[tuple[int, int]] | None = None,
) -> int:
    """``x_ij <= y_j`` for the ``(i, j)`` pairs given (all pairs by default).

    The disaggregated linking rows of the strong formulation. Set coefficient
    by coefficient, which builds about twice as fast as
    ``add_linear_constraint(x <= y)``. Returns the number of rows added.
    """
    if pairs is None:
        pairs = [(i, j) for i in range(len(x)) for j in range(len(sites))]
    for i, j in pairs:
        con = model.add_linear_constraint(ub=0.0, name=f"link[{i},{j}]")
        con.set_coefficient(x[i][j], 1.0)
        con.set_coefficient(sites[j], -1.0)
    return len(pairs)


def add_capacity_cover(
    model: mathopt.Model,
    sites: Sequence[mathopt.Variable],
    capacities: np.ndarray,
    total_demand: float,
) -> mathopt.LinearConstraint:
    """``sum_j s_j y_j >= total demand``: enough capacity is opened (valid, redundant)."""
    cover = mathopt.fast_sum(float(s) * y for s, y in zip(capacities, sites, strict=True))
    return model.add_linear_constraint(cover >= float(total_demand), name="capacity_cover")


def add_closest_assignment_cut(
    model: mathopt.Model,
    theta: mathopt.Variable,
    sites: Sequence[mathopt.Variable],
    row: np.ndarray,
    level: float,
    weight: float = 1.0,
    name: str = "",
) -> mathopt.LinearConstraint:
    """Weighted coverage cut ``theta >= w (D - sum_{j: d_j < D} (D - d_j) y_j)``.

    ``row`` holds the client's distance to every site and ``D = level`` one of
    them. Valid for every open set: if the nearest open site is nearer than
    ``D`` the right-hand side is at most ``w`` times that distance, otherwise
    at most ``w D``. It is the Benders optimality cut of the radius
    formulation at level ``D``.
    """
    con = model.add_linear_constraint(lb=weight * level, name=name)
    con.set_coefficient(theta, 1.0)
    for j in np.flatnonzero(row < level):
        con.set_coefficient(sites[j], weight * (level - float(row[j])))
    return con


# ---------------------------------------------------------------------------
# p-median heuristics (numpy)
# ---------------------------------------------------------------------------


def _weights(dist: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(dist.shape[0])
    return np.asarray(weights, dtype=float)


def pmedian_cost(
    dist: np.ndarray, open_sites: Sequence[int], weights: np.ndarray | None = None
) -> float:
    """Weighted sum of each client's distance to its nearest open site."""
    w = _weights(dist, weights)
    return float(w @ dist[:, list(open_sites)].min(axis=1))


def greedy_pmedian(dist: np.ndarray, p: int, weights: np.ndarray | None = None) -> list[int]:
    """Open ``p`` sites one at a time, each time the one that lowers the cost most.

    ``dist[i, j]`` is client ``i``'s distance to site ``j``. Ties go to the
    lowest index, so the result is deterministic.
    """
    w = _weights(dist, weights)
    nearest = np.full(dist.shape[0], np.inf)
    chosen: list[int] = []
    for _ in range(p):
        cost = w @ np.minimum(dist, nearest[:, None])
        cost[chosen] = np.inf
        j = int(np.argmin(cost))
        chosen.append(j)
        nearest = np.minimum(nearest, dist[:, j])
    return sorted(chosen)


def _nearest_two(dist: np.ndarray, open_sites: list[int]) -> tuple[np.ndarray, ...]:
    """Per client: nearest distance, position (in ``open_sites``) of it, second nearest."""
    sub = dist[:, open_sites]
    if len(open_sites) == 1:
        return sub[:, 0], np.zeros(dist.shape[0], dtype=int), np.full(dist.shape[0], np.inf)
    part = np.argpartition(sub, 1, axis=1)[:, :2]
    rows = np.arange(dist.shape[0])
    a, b = sub[rows, part[:, 0]], sub[rows, part[:, 1]]
    first = np.where(a <= b, part[:, 0], part[:, 1])
    return np.minimum(a, b), first, np.maximum(a, b)


def vertex_substitution(
    dist: np.ndarray,
    start: Sequence[int],
    weights: np.ndarray | None = None,
    max_rounds: int = 10_000,
) -> list[int]:
    """Improve an open set by best-improvement swaps until none helps (Teitz-Bart).

    Every swap (site ``j`` in, open site ``r`` out) is priced at once: with
    ``d1``, ``d2`` a client's nearest and second-nearest open distances, the
    cost after the swap is ``sum_i w_i min(d_ij, d1_i)`` plus, for the clients
    whose nearest is ``r``, ``w_i (min(d_ij, d2_i) - min(d_ij, d1_i))``
    (Whitaker's fast interchange), one matrix product per round.
    """
    w = _weights(dist, weights)
    current = sorted(int(j) for j in start)
    n, m = dist.shape
    cost = pmedian_cost(dist, current, w)
    for _ in range(max_rounds):
        d1, first, d2 = _nearest_two(dist, current)
        near1 = np.minimum(dist, d1[:, None])
        base = w @ near1
        extra = (w[:, None] * (np.minimum(dist, d2[:, None]) - near1)).T  # (m, n)
        owner = np.zeros((n, len(current)))
        owner[np.arange(n), first] = 1.0
        swap = base[:, None] + extra @ owner  # (m, p): j in, current[r] out
        swap[current, :] = np.inf
        j, r = np.unravel_index(int(np.argmin(swap)), swap.shape)
        if swap[j, r] >= cost - CUT_TOL * max(abs(cost), 1.0):
            break
        current[r] = int(j)
        current.sort()
        cost = pmedian_cost(dist, current, w)
    return current


# ---------------------------------------------------------------------------
# p-median by Benders decomposition on the radius formulation
# ---------------------------------------------------------------------------
#
# Radius formulation (client i, distinct distances D_i^0 < D_i^1 < ...,
# z_i^k = 1 when no open site lies nearer than D_i^k):
#
#   minimise  sum_i w_i (D_i^0 + sum_k (D_i^k - D_i^{k-1}) z_i^k)
#   z_i^k + sum_{j: d_ij < D_i^k} y_j >= 1,  sum_j y_j = p,  y binary.
#
# For fixed y the z problem splits by client; its LP dual gives, for client i,
# the optimality cut at level D = D_i^{k*} (the distance at which the open mass
# sorted by distance first reaches 1):
#
#   theta_i >= w_i (D - sum_{j: d_ij < D} (D - d_ij) y_j)           (CA)
#
# The master keeps y and one theta_i per client; cuts (CA) are added in rounds
# on the LP relaxation, then sites are fixed by reduced cost against the
# vertex-substitution incumbent, then the integer master is re-solved with the
# cuts found at each of its solutions until its bound meets the incumbent.
# Memory grows with clients x cuts (each cut touches only the sites nearer than
# its level), never with an n x n assignment matrix of variables.


@dataclass
class _Master:
    model: mathopt.Model
    sites: list[mathopt.Variable]
    theta: list[mathopt.Variable]
    cuts: int = 0


def _separation_levels(dist: np.ndarray, order: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per client, the distance at which the open mass sorted by distance reaches 1."""
    mass = np.cumsum(y[order], axis=1)
    pos = np.argmax(mass >= 1.0 - MASS_TOL, axis=1)
    covered = mass[np.arange(dist.shape[0]), pos] >= 1.0 - MASS_TOL
    pos = np.where(covered, pos, order.shape[1] - 1)
    return dist[np.arange(dist.shape[0]), order[np.arange(dist.shape[0]), pos]]


def _cut_values(dist: np.ndarray, levels: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Right-hand side of cut (CA) at ``levels`` evaluated at ``y`` (unweighted)."""
    return levels - np.maximum(levels[:, None] - dist, 0.0) @ y


def _add_violated_cuts(
    master: _Master,
    dist: np.ndarray,
    order: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
) -> int:
    """Add cut (CA) for every client whose ``theta_i`` is below its cost at ``y``."""
    levels = _separation_levels(dist, order, y)
    need = w * _cut_values(dist, levels, y)
    tol = CUT_TOL * np.maximum(np.abs(need), 1.0)
    added = 0
    for i in np.flatnonzero(theta < need - tol):
        add_closest_assignment_cut(
            master.model, master.theta[i], master.sites, dist[i], float(levels[i]), float(w[i])
        )
        added += 1
    master.cuts += added
    return added


def _build_master(dist: np.ndarray, p: int, w: np.ndarray) -> _Master:
    model = mathopt.Model(name="pmedian_benders")
    sites = add_sites(model, np.zeros(dist.shape[1]), name="median")
    add_cardinality(model, sites, p)
    theta = [model.add_variable(lb=0.0, name=f"theta[{i}]") for i in range(dist.shape[0])]
    model.objective.is_maximize = False
    for i, t in enumerate(theta):
        model.objective.set_linear_coefficient(t, 1.0)
        model.add_linear_constraint(t >= float(w[i] * dist[i].min()), name=f"floor[{i}]")
    return _Master(model, sites, theta)


def _values(result: mathopt.SolveResult, variables: list[mathopt.Variable]) -> np.ndarray:
    vals = result.variable_values()
    return np.array([vals[v] for v in variables])


def _lp_rounds(
    master: _Master, dist: np.ndarray, order: np.ndarray, w: np.ndarray, deadline: Deadline
) -> tuple[float, mathopt.SolveResult | None, int]:
    """Solve the LP master, adding violated cuts, until none is violated."""
    for y in master.sites:
        y.integer = False
    rounds, bound, result = 0, -math.inf, None
    while deadline.left() > 0:
        result = mathopt.solve(master.model, mathopt.SolverType.HIGHS, params=deadline.params())
        if result.termination.reason != mathopt.TerminationReason.OPTIMAL:
            break
        rounds += 1
        bound = max(bound, result.objective_value())
        y = _values(result, master.sites)
        theta = _values(result, master.theta)
        if _add_violated_cuts(master, dist, order, w, y, theta) == 0:
            break
    for y in master.sites:
        y.integer = True
    return bound, result, rounds


def _fix_by_reduced_cost(
    master: _Master, result: mathopt.SolveResult, bound: float, cutoff: float
) -> int:
    """Fix sites whose LP reduced cost proves they cannot be in a better solution.

    A site at 0 with reduced cost ``r`` would raise the LP bound to at least
    ``bound + r`` if opened; when that exceeds ``cutoff`` (the most a better
    solution may cost) it stays closed. Symmetrically for sites at 1.
    """
    reduced = result.reduced_costs()
    values = result.variable_values()
    fixed = 0
    for y in master.sites:
        r = reduced[y]
        if values[y] <= MASS_TOL and bound + r > cutoff:
            y.upper_bound = 0.0
            fixed += 1
        elif values[y] >= 1.0 - MASS_TOL and bound - r > cutoff:
            y.lower_bound = 1.0
            fixed += 1
    return fixed


def _cutoff(upper: float, integral: bool) -> float:
    """Most a strictly better solution can cost (integral costs step by 1)."""
    if integral:
        return upper - 1.0 + 1e-6
    return upper - max(ABSOLUTE_GAP, RELATIVE_GAP * abs(upper))


def solve_pmedian_benders(
    dist: np.ndarray,
    p: int,
    weights: np.ndarray | None = None,
    time_limit_s: float = 60.0,
) -> LocationSolution:
    """Optimal p-median by Benders decomposition on the radius formulation.

    Parameters
    ----------
    dist : numpy.ndarray
        ``(n, m)`` distance from each client to each candidate site (any unit).
    p : int
        Sites to open, ``1 <= p <= m``.
    weights : numpy.ndarray, optional
        ``(n,)`` client demands (default 1).
    time_limit_s : float
        Wall-clock limit for the whole solve, seconds.

    Returns
    -------
    LocationSolution
        ``OPTIMAL`` once the master's bound meets the incumbent.
    """
    deadline = Deadline(time_limit_s)
    dist = np.asarray(dist, dtype=float)
    w = _weights(dist, weights)
    if not 1 <= p <= dist.shape[1]:
        raise ValueError(f"p must be between 1 and {dist.shape[1]}, got {p}")
    integral = bool(np.all(w == np.round(w)) and np.all(dist == np.round(dist)))
    best = vertex_substitution(dist, greedy_pmedian(dist, p, w), w)
    upper = pmedian_cost(dist, best, w)
    stats = {"heuristic": upper, "heuristic_s": deadline.elapsed()}
    order = np.argsort(dist, axis=1, kind="stable")
    master = _build_master(dist, p, w)
    y0 = np.zeros(dist.shape[1])
    y0[best] = 1.0
    _add_violated_cuts(master, dist, order, w, y0, np.zeros(dist.shape[0]))
    bound, lp, stats["lp_rounds"] = _lp_rounds(master, dist, order, w, deadline)
    stats["lp_bound"] = bound
    if lp is not None and lp.termination.reason == mathopt.TerminationReason.OPTIMAL:
        stats["fixed"] = _fix_by_reduced_cost(master, lp, bound, _cutoff(upper, integral))
    best, upper, bound, stats["mip_solves"] = _mip_rounds(
        master, dist, order, w, deadline, best, upper, bound, integral
    )
    stats["cuts"] = master.cuts
    proven = bound >= _cutoff(upper, integral)
    assign = np.array(best)[np.argmin(dist[:, best], axis=1)]
    return LocationSolution(
        objective=upper,
        best_bound=upper if proven else bound,
        status="OPTIMAL" if proven else "FEASIBLE",
        seconds=deadline.elapsed(),
        open_sites=tuple(sorted(best)),
        allocation=assign,
        stats=stats,
    )


def _mip_rounds(
    master: _Master,
    dist: np.ndarray,
    order: np.ndarray,
    w: np.ndarray,
    deadline: Deadline,
    best: list[int],
    upper: float,
    bound: float,
    integral: bool,
) -> tuple[list[int], float, float, int]:
    """Re-solve the integer master, adding cuts at its solution, until bound meets incumbent."""
    solves = 0
    while deadline.left() > 0 and bound < _cutoff(upper, integral):
        hint = mathopt.SolutionHint(
            variable_values={y: float(j in best) for j, y in enumerate(master.sites)}
        )
        result = mathopt.solve(
            master.model,
            mathopt.SolverType.HIGHS,
            params=deadline.params(),
            model_params=mathopt.ModelSolveParameters(solution_hints=[hint]),
        )
        solves += 1
        reason = result.termination.reason
        if reason == mathopt.TerminationReason.INFEASIBLE:
            bound = upper  # every better open set was fixed out: the incumbent is optimal
            break
        if not result.has_primal_feasible_solution():
            break
        master_bound = result.termination.objective_bounds.dual_bound
        y = np.round(_values(result, master.sites))
        theta = _values(result, master.theta)
        chosen = [int(j) for j in np.flatnonzero(y > 0.5)]
        cost = pmedian_cost(dist, chosen, w)
        if cost < upper:
            best, upper = chosen, cost
        added = _add_violated_cuts(master, dist, order, w, y, theta)
        bound = max(bound, master_bound)
        if added == 0 and reason == mathopt.TerminationReason.OPTIMAL:
            bound = max(bound, cost)  # the master's optimum is priced exactly: proven
        if added == 0 and reason != mathopt.TerminationReason.OPTIMAL:
            break
    return best, upper, min(bound, upper), solves


# ---------------------------------------------------------------------------
# Capacitated facility location: strong formulation, linking rows as needed
# ---------------------------------------------------------------------------
#
# Sites j, clients i; y_j open, x_ij fraction of client i served by j:
#
#   minimise  sum_j f_j y_j + sum_ij c_ij x_ij
#   sum_j x_ij = 1  (all i),   sum_i d_i x_ij <= s_j y_j  (all j),
#   sum_j s_j y_j >= sum_i d_i,   x_ij <= y_j  (linking, all i, j).
#
# The linking rows are implied by the capacity rows for integer y, so any
# subset of them gives a correct model; all of them give the strong LP bound.
# With links="lazy" they are added in rounds, only where the LP relaxation
# violates them, before the integer solve: the LP bound is the strong one
# while the model holds a fraction of the n x m rows.


@dataclass
class CflpModel:
    """A capacitated facility location model built from the core pieces."""

    model: mathopt.Model
    sites: list[mathopt.Variable]
    serve: list[list[mathopt.Variable]]
    links: int = 0


def build_cflp(
    fixed_costs: np.ndarray,
    capacities: np.ndarray,
    demands: np.ndarray,
    costs: np.ndarray,
    all_links: bool = True,
) -> CflpModel:
    """Sites, allocation, demand, capacity and capacity-cover rows; links if ``all_links``.

    ``costs[i, j]`` is the cost of serving ALL of client ``i``'s demand from
    site ``j``; fixed costs, capacities and demands are per site / client.
    """
    model = mathopt.Model(name="cflp")
    sites = add_sites(model, fixed_costs)
    serve = add_allocation(model, costs)
    add_demand_met(model, serve)
    add_capacity(model, serve, sites, demands, capacities)
    add_capacity_cover(model, sites, capacities, float(np.sum(demands)))
    links = add_serve_only_open(model, serve, sites) if all_links else 0
    return CflpModel(model, sites, serve, links)


def _violated_links(cflp: CflpModel, result: mathopt.SolveResult, seen: set) -> list:
    """``(i, j)`` pairs whose linking row ``x_ij <= y_j`` the LP solution violates."""
    vals = result.variable_values()
    y = np.array([vals[v] for v in cflp.sites])
    x = np.array([[vals[v] for v in row] for row in cflp.serve])
    pairs = np.argwhere(x > y[None, :] + 1e-7)
    return [(int(i), int(j)) for i, j in pairs if (int(i), int(j)) not in seen]


def add_links_lazily(
    cflp: CflpModel, deadline: Deadline, solver: mathopt.SolverType = mathopt.SolverType.HIGHS
) -> tuple[float, int]:
    """Add violated linking rows in LP rounds until none is violated.

    Returns the LP bound reached and the number of rounds.
    """
    for y in cflp.sites:
        y.integer = False
    seen: set[tuple[int, int]] = set()
    rounds, bound = 0, -math.inf
    while deadline.left() > 0:
        result = mathopt.solve(cflp.model, solver, params=deadline.params())
        if result.termination.reason != mathopt.TerminationReason.OPTIMAL:
            break
        rounds += 1
        bound = result.objective_value()
        pairs = _violated_links(cflp, result, seen)
        if not pairs:
            break
        seen.update(pairs)
        cflp.links += add_serve_only_open(cflp.model, cflp.serve, cflp.sites, pairs)
    for y in cflp.sites:
        y.integer = True
    return bound, rounds


# ---------------------------------------------------------------------------
# Capacitated facility location: a primal heuristic for the solution hint
# ---------------------------------------------------------------------------
#
# HiGHS proves the strong bound quickly but its first incumbents on large
# instances are far above the optimum. The heuristic below gives it a good
# plan up front:
#
# 1. Start: the transportation LP over all sites with each site's fixed cost
#    spread over its capacity (cost c_ij + f_j d_i / s_j, capacity s_j); the
#    sites it loads most are opened until their capacity covers the demand.
# 2. Local search: drop, add and swap moves, screened by a first-order estimate
#    (reassign a dropped site's clients to their next cheapest open site;
#    an added site takes the clients it saves most on, up to its capacity)
#    and accepted only on the exact transportation LP of the new open set.


@dataclass
class CflpPlan:
    """A feasible CFLP plan: open sites, allocation fractions ``x[i, j]`` and its cost."""

    open_sites: tuple[int, ...]
    allocation: np.ndarray
    cost: float
    stats: dict = field(default_factory=dict)


def cflp_transport(
    open_sites: Sequence[int],
    capacities: np.ndarray,
    demands: np.ndarray,
    costs: np.ndarray,
    fixed_costs: np.ndarray | None = None,
) -> tuple[float, np.ndarray] | None:
    """Cheapest allocation of all clients to ``open_sites`` (an exact LP, HiGHS via scipy).

    Returns ``(fixed + allocation cost, x)`` with ``x`` of shape
    ``(n_clients, n_sites)`` (zero outside ``open_sites``), or ``None`` if
    the open capacity cannot serve the demand. ``costs[i, j]`` is the cost of
    serving ALL of client ``i`` from site ``j``.
    """
    sites = np.asarray(list(open_sites), dtype=int)
    n, m = costs.shape
    k = len(sites)
    if k == 0 or capacities[sites].sum() < demands.sum() - 1e-9:
        return None
    c = costs[:, sites].ravel()
    cols = np.arange(n * k)
    rows_eq = np.repeat(np.arange(n), k)
    a_eq = csr_array((np.ones(n * k), (rows_eq, cols)), shape=(n, n * k))
    rows_ub = np.tile(np.arange(k), n)
    a_ub = csr_array((np.repeat(demands.astype(float), k), (rows_ub, cols)), shape=(k, n * k))
    res = linprog(
        c, A_ub=a_ub, b_ub=capacities[sites].astype(float), A_eq=a_eq, b_eq=np.ones(n),
        bounds=(0.0, 1.0), method="highs",
    )  # fmt: skip
    if res.status != 0:
        return None
    x = np.zeros((n, m))
    x[:, sites] = np.clip(res.x.reshape(n, k), 0.0, 1.0)
    fixed = 0.0 if fixed_costs is None else float(np.sum(fixed_costs[sites]))
    return fixed + float(np.sum(costs * x)), x


def _drop_estimates(
    is_open: np.ndarray, x: np.ndarray, costs: np.ndarray, fixed: np.ndarray
) -> np.ndarray:
    """Estimated change of cost when each open site closes (``inf`` for closed sites)."""
    masked = np.where(is_open[None, :], costs, np.inf)
    order = np.argsort(masked, axis=1)[:, :2]
    first = np.take_along_axis(masked, order, axis=1)
    est = np.full(len(is_open), np.inf)
    for j in np.flatnonzero(is_open):
        alt = np.where(order[:, 0] == j, first[:, 1], first[:, 0])
        share = x[:, j]
        served = share > 0
        est[j] = -fixed[j] + float(np.sum(share[served] * (alt[served] - costs[served, j])))
    return est


def _add_estimates(
    is_open: np.ndarray,
    x: np.ndarray,
    costs: np.ndarray,
    fixed: np.ndarray,
    capacities: np.ndarray,
    demands: np.ndarray,
) -> np.ndarray:
    """Estimated change of cost when each closed site opens (``inf`` for open sites)."""
    current = np.sum(x * costs, axis=1)  # each client's allocation cost now
    est = np.full(len(is_open), np.inf)
    for j in np.flatnonzero(~is_open):
        saving = current - costs[:, j]
        good = np.flatnonzero(saving > 0)
        if good.size == 0:
            continue
        rate = saving[good] / np.maximum(demands[good], 1e-12)
        good = good[np.argsort(-rate)]
        room = np.cumsum(demands[good]) <= capacities[j]
        est[j] = fixed[j] - float(np.sum(saving[good[room]]))
    return est


def cflp_heuristic(
    fixed_costs: np.ndarray,
    capacities: np.ndarray,
    demands: np.ndarray,
    costs: np.ndarray,
    time_limit_s: float = 30.0,
    screen: int = 4,
) -> CflpPlan | None:
    """A feasible CFLP plan by transportation-LP start and drop/add local search.

    Every round prices all drop, add and swap moves by estimate and evaluates
    the ``screen`` best drops and adds and the ``2 * screen`` best swaps with
    the exact transportation LP; the best
    improving move is taken. Stops at a local optimum of that screened
    neighbourhood or after ``time_limit_s``. Returns ``None`` if even all
    sites open cannot serve the demand.
    """
    deadline = Deadline(max(time_limit_s, 0.01))
    fixed = np.asarray(fixed_costs, dtype=float)
    caps = np.asarray(capacities, dtype=float)
    dem = np.asarray(demands, dtype=float)
    m = len(fixed)
    spread = costs + np.outer(dem, fixed / np.maximum(caps, 1e-12))
    start = cflp_transport(range(m), caps, dem, spread)
    if start is None:
        return None
    load = (dem @ start[1]) / np.maximum(caps, 1e-12)  # the LP's fraction of each site used
    order = np.argsort(-load, kind="stable")
    enough = int(np.searchsorted(np.cumsum(caps[order]), dem.sum() - 1e-9)) + 1
    used = order[: min(enough, m)]
    best = cflp_transport(used, caps, dem, costs, fixed)
    if best is None:
        return None
    cost, x = best
    is_open = np.zeros(m, dtype=bool)
    is_open[used] = True
    rounds = lps = 0
    while deadline.left() > 0:
        rounds += 1
        drops = _drop_estimates(is_open, x, costs, fixed)
        adds = _add_estimates(is_open, x, costs, fixed, caps, dem)
        candidates: list = [j for j in np.argsort(drops)[:screen] if np.isfinite(drops[j])]
        candidates += [j for j in np.argsort(adds)[:screen] if np.isfinite(adds[j])]
        pairs = drops[:, None] + adds[None, :]  # swap: close j, open k (estimates add up)
        finite = np.isfinite(pairs)
        for flat in np.argsort(np.where(finite, pairs, np.inf), axis=None)[: 2 * screen]:
            j, k = np.unravel_index(flat, pairs.shape)
            if finite[j, k]:
                candidates.append((int(j), int(k)))
        move = None
        for cand in candidates:
            if deadline.left() <= 0:
                break
            trial = is_open.copy()
            for j in np.atleast_1d(cand):
                trial[j] = not trial[j]
            priced = cflp_transport(np.flatnonzero(trial), caps, dem, costs, fixed)
            lps += 1
            if (
                priced is not None
                and priced[0] < cost * (1 - 1e-12)
                and (move is None or priced[0] < move[1][0])
            ):
                move = (cand, priced)
        if move is None:
            break
        cand, (cost, x) = move
        for j in np.atleast_1d(cand):
            is_open[j] = not is_open[j]
    plan = CflpPlan(tuple(int(j) for j in np.flatnonzero(is_open)), x, cost)
    plan.stats = {"rounds": rounds, "transport_lps": lps, "seconds": deadline.elapsed()}
    logger.info("CFLP heuristic: cost %.3f, %d open, %s", cost, len(plan.open_sites), plan.stats)
    return plan


def cflp_hint(cflp: CflpModel, plan: CflpPlan) -> mathopt.ModelSolveParameters:
    """Solve parameters that hand ``plan`` to the solver as a solution hint."""
    values: dict[mathopt.Variable, float] = {}
    chosen = set(plan.open_sites)
    for j, y in enumerate(cflp.sites):
        values[y] = float(j in chosen)
    for i, row in enumerate(cflp.serve):
        for j, var in enumerate(row):
            values[var] = float(plan.allocation[i, j])
    return mathopt.ModelSolveParameters(
        solution_hints=[mathopt.SolutionHint(variable_values=values)]
    )


# ---------------------------------------------------------------------------
# CFLP: Lagrangian bound, heuristic and site fixing
# ---------------------------------------------------------------------------
# Relax the demand rows sum_j x_ij = 1 with multipliers u_i (Beasley, EJOR 33
# (1988) 314-325). For fixed u the rest splits by site: a site's value if
# open, g_j = f_j + min sum_i (c_ij - u_i) x_ij over 0 <= x_ij <= 1 and
# sum_i d_i x_ij <= s_j, is a continuous knapsack (clients with a negative
# reduced cost, best per unit of demand first); which sites open is a 0-1
# knapsack, min sum_j g_j y_j with sum_j s_j y_j >= sum_i d_i (the capacity
# cover row, kept). L(u) = sum_i u_i + that knapsack's value is a lower bound
# for every u. Subgradient steps on u raise it (Polyak steps towards the best
# plan's cost, the step factor halved when the bound stalls); every new set of
# sites the relaxation opens is priced exactly by the transportation LP (a
# Lagrangian heuristic). At the best u, forcing one site the other way and
# re-solving the 0-1 knapsack bounds every plan with that site flipped: if
# that bound is above the best plan's cost, the site is fixed.


@dataclass
class CflpLagrangian:
    """Outcome of :func:`cflp_lagrangian`.

    ``bound`` is a valid lower bound on every plan's cost; ``plan`` the best
    plan found (never worse than the one passed in). Sites in
    ``fixed_open`` / ``fixed_closed`` are open / closed in every plan cheaper
    than ``plan`` (by more than the gap tolerances), so a search for a better
    plan may fix them.
    """

    bound: float
    plan: CflpPlan
    fixed_open: tuple[int, ...]
    fixed_closed: tuple[int, ...]
    multipliers: np.ndarray = field(repr=False)
    stats: dict = field(default_factory=dict)


def _open_values(
    u: np.ndarray, costs: np.ndarray, demands: np.ndarray, capacities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each site's allocation value if open (a continuous knapsack) and its ``x``."""
    reduced = costs - u[:, None]
    ratio = np.where(reduced < 0, reduced / np.maximum(demands, 1e-12)[:, None], np.inf)
    order = np.argsort(ratio, axis=0, kind="stable")
    red = np.take_along_axis(reduced, order, axis=0)
    dem = demands[order]
    before = np.cumsum(dem, axis=0) - dem
    frac = np.clip((capacities[None, :] - before) / np.maximum(dem, 1e-12), 0.0, 1.0)
    frac = np.where(red < 0, frac, 0.0)
    x = np.zeros_like(reduced)
    np.put_along_axis(x, order, frac, axis=0)
    return np.sum(red * frac, axis=0), x


def _cover_knapsack(
    values: np.ndarray, capacities: np.ndarray, total: float, force: tuple[int, int] | None = None
) -> tuple[float, np.ndarray | None]:
    """min values.y over binary y with capacities.y >= total: (lower bound, y).

    ``force=(j, v)`` fixes ``y_j = v``. The bound is the MIP's proven dual
    bound (``inf`` when no y covers the total).
    """
    lower, upper = np.zeros(len(values)), np.ones(len(values))
    if force is not None:
        lower[force[0]] = upper[force[0]] = force[1]
    res = milp(
        values,
        constraints=LinearConstraint(capacities[None, :], total, np.inf),
        integrality=np.ones(len(values)),
        bounds=Bounds(lower, upper),
        options={"mip_rel_gap": 0.0},
    )
    if res.status != 0 or res.x is None:
        return math.inf, None
    bound = res.mip_dual_bound if res.mip_dual_bound is not None else res.fun
    return float(min(bound, res.fun)), np.round(res.x)


def cflp_lagrangian(
    fixed_costs: np.ndarray,
    capacities: np.ndarray,
    demands: np.ndarray,
    costs: np.ndarray,
    plan: CflpPlan,
    time_limit_s: float = 30.0,
    max_rounds: int = 5000,
    patience: int = 30,
    min_step: float = 1e-4,
) -> CflpLagrangian:
    """Lagrangian bound, better plans and site fixing for the CFLP (see above).

    Parameters
    ----------
    fixed_costs, capacities, demands, costs
        As for :func:`build_cflp` (``costs[i, j]``: all of client ``i`` from
        site ``j``).
    plan : CflpPlan
        A feasible plan (for example from :func:`cflp_heuristic`): the
        target of the steps and the plan to beat.
    time_limit_s : float
        Wall-clock budget, seconds; the fixing test runs after it.
    max_rounds, patience, min_step
        Subgradient rounds at most; rounds without a better bound before the
        step factor (starting at 2) is halved; the step factor at which to stop.
    """
    deadline = Deadline(max(time_limit_s, 0.01))
    fixed = np.asarray(fixed_costs, dtype=float)
    caps = np.asarray(capacities, dtype=float)
    dem = np.asarray(demands, dtype=float)
    total = float(dem.sum())
    best_plan = plan
    # start from each client's cheapest cost with fixed costs spread over capacity
    u = np.min(costs + np.outer(dem, fixed / np.maximum(caps, 1e-12)), axis=1)
    best_u, bound = u.copy(), -math.inf
    factor, stalled, rounds, priced = 2.0, 0, 0, 0
    seen: set[tuple[int, ...]] = set()
    while rounds < max_rounds and deadline.left() > 0 and factor >= min_step:
        rounds += 1
        values, x = _open_values(u, costs, dem, caps)
        knap, y = _cover_knapsack(fixed + values, caps, total)
        if y is None:
            break
        value = float(u.sum()) + knap
        if value > bound + 1e-12 * abs(value):
            bound, best_u, stalled = value, u.copy(), 0
        else:
            stalled += 1
            if stalled >= patience:
                factor, stalled = factor / 2, 0
        key = tuple(int(j) for j in np.flatnonzero(y > 0.5))
        if key not in seen:
            seen.add(key)
            exact = cflp_transport(key, caps, dem, costs, fixed)
            priced += 1
            if exact is not None and exact[0] < best_plan.cost * (1 - 1e-12):
                best_plan = CflpPlan(key, exact[1], exact[0])
        if best_plan.cost - bound <= _gap_tolerance(best_plan.cost):
            break
        step = 1.0 - x @ y
        norm = float(step @ step)
        if norm <= 1e-18:
            break
        u = u + factor * (best_plan.cost - value) / norm * step
    fixed_open, fixed_closed = _fix_sites(best_u, fixed, caps, dem, costs, best_plan.cost)
    stats = {
        "rounds": rounds, "transport_lps": priced, "seconds": deadline.elapsed(),
        "fixed_open": len(fixed_open), "fixed_closed": len(fixed_closed),
    }  # fmt: skip
    logger.info("CFLP Lagrangian: bound %.3f, plan %.3f, %s", bound, best_plan.cost, stats)
    return CflpLagrangian(bound, best_plan, fixed_open, fixed_closed, best_u, stats)


def _gap_tolerance(upper: float) -> float:
    """How far below ``upper`` a plan must be to count as better."""
    return max(ABSOLUTE_GAP, RELATIVE_GAP * abs(upper))


def _fix_sites(
    u: np.ndarray,
    fixed: np.ndarray,
    caps: np.ndarray,
    dem: np.ndarray,
    costs: np.ndarray,
    upper: float,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Sites whose flip at multipliers ``u`` bounds every plan above ``upper``."""
    values, _ = _open_values(u, costs, dem, caps)
    values = fixed + values
    _, y = _cover_knapsack(values, caps, float(dem.sum()))
    if y is None:
        return (), ()
    cutoff = upper + _gap_tolerance(upper)
    fixed_open, fixed_closed = [], []
    for j in range(len(values)):
        knap, _ = _cover_knapsack(values, caps, float(dem.sum()), force=(j, 1 - int(y[j])))
        if float(u.sum()) + knap > cutoff:
            (fixed_open if y[j] > 0.5 else fixed_closed).append(j)
    return tuple(fixed_open), tuple(fixed_closed)
