"""Location-allocation core: building blocks, heuristics, Benders p-median, CFLP.

Every expected value is computed by hand or by brute-force enumeration; time
limits are safety nets only (no timing is asserted).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from ortools.math_opt.python import mathopt

from pathways.optimise import location

LIMIT = 60.0  # seconds; a safety net, never reached on these sizes


def _line_distances(positions: list[float]) -> np.ndarray:
    x = np.array(positions, dtype=float)
    return np.abs(x[:, None] - x[None, :])


def _brute_force(dist: np.ndarray, p: int, w: np.ndarray | None = None) -> float:
    w = np.ones(dist.shape[0]) if w is None else w
    return min(
        float(w @ dist[:, list(s)].min(axis=1))
        for s in itertools.combinations(range(dist.shape[1]), p)
    )


def _random_instance(seed: int) -> tuple[np.ndarray, int, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(4, 10)), int(rng.integers(3, 9))
    pts_c, pts_s = rng.random((n, 2)), rng.random((m, 2))
    dist = np.linalg.norm(pts_c[:, None, :] - pts_s[None, :, :], axis=2)
    if seed % 2:
        dist = np.round(10 * dist)  # integral data and many ties
    w = rng.integers(1, 5, n).astype(float) if seed % 3 == 0 else None
    return dist, int(rng.integers(1, m + 1)), w


# --- the hand-computed p-median ---------------------------------------------------------


def test_four_clients_on_a_line():
    # positions 0, 1, 3, 7; open pairs cost {0,1}: 8, {0,3}: 5, {0,7}: 4,
    # {1,3}: 5, {1,7}: 3, {3,7}: 5, so the optimum opens vertices 1 and 3 at cost 3.
    dist = _line_distances([0, 1, 3, 7])
    sol = location.solve_pmedian_benders(dist, 2, time_limit_s=LIMIT)
    assert sol.status == "OPTIMAL"
    assert sol.objective == 3.0 and sol.best_bound == 3.0
    assert sol.open_sites == (1, 3)
    assert sol.allocation.tolist() == [1, 1, 1, 3]
    assert location.pmedian_cost(dist, [1, 3]) == 3.0


def test_one_median_and_all_medians():
    dist = _line_distances([0, 1, 3, 7])
    one = location.solve_pmedian_benders(dist, 1, time_limit_s=LIMIT)
    assert one.objective == 9.0 and one.status == "OPTIMAL"  # vertex 1 or 2: 9
    every = location.solve_pmedian_benders(dist, 4, time_limit_s=LIMIT)
    assert every.objective == 0.0 and every.open_sites == (0, 1, 2, 3)


# --- Benders against brute force -------------------------------------------------------


@pytest.mark.parametrize("seed", range(24))
def test_benders_optimum_equals_brute_force(seed: int):
    dist, p, w = _random_instance(seed)
    sol = location.solve_pmedian_benders(dist, p, weights=w, time_limit_s=LIMIT)
    best = _brute_force(dist, p, w)
    assert sol.status == "OPTIMAL"
    assert sol.objective == pytest.approx(best, rel=1e-9, abs=1e-9)
    assert sol.best_bound <= best + 1e-9
    assert len(sol.open_sites) == p
    assert location.pmedian_cost(dist, sol.open_sites, w) == pytest.approx(sol.objective)


@pytest.mark.parametrize("seed", range(12))
def test_closest_assignment_cuts_are_valid_lower_bounds(seed: int):
    """Every cut, at every level, is at most the true cost of every open set."""
    dist, p, _ = _random_instance(seed)
    n, m = dist.shape
    for open_set in itertools.combinations(range(m), p):
        y = np.zeros(m)
        y[list(open_set)] = 1.0
        nearest = dist[:, list(open_set)].min(axis=1)
        for i in range(n):
            levels = np.unique(dist[i])
            rhs = levels - np.maximum(levels[:, None] - dist[i][None, :], 0.0) @ y
            assert np.all(rhs <= nearest[i] + 1e-9)
            assert rhs.max() == pytest.approx(nearest[i])  # and one level is tight


def test_separated_cut_is_tight_at_an_integer_point():
    dist, _, _ = _random_instance(5)
    order = np.argsort(dist, axis=1, kind="stable")
    y = np.zeros(dist.shape[1])
    y[[0, 2]] = 1.0
    levels = location._separation_levels(dist, order, y)
    values = location._cut_values(dist, levels, y)
    np.testing.assert_allclose(values, dist[:, [0, 2]].min(axis=1))


def test_cut_model_row_matches_its_formula():
    model = mathopt.Model()
    sites = [model.add_binary_variable() for _ in range(3)]
    theta = model.add_variable(lb=0.0)
    con = location.add_closest_assignment_cut(
        model, theta, sites, np.array([1.0, 4.0, 2.0]), level=4.0, weight=2.0
    )
    # theta >= 2 * (4 - 3 y0 - 2 y2): sites nearer than 4 only
    assert con.lower_bound == 8.0
    coeffs = {term.variable: term.coefficient for term in con.terms()}
    assert coeffs == {theta: 1.0, sites[0]: 6.0, sites[2]: 4.0}


# --- heuristics -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_vertex_substitution_ends_at_a_swap_local_optimum(seed: int):
    dist, p, w = _random_instance(seed)
    start = location.greedy_pmedian(dist, p, w)
    assert len(set(start)) == p
    best = location.vertex_substitution(dist, start, w)
    cost = location.pmedian_cost(dist, best, w)
    assert cost <= location.pmedian_cost(dist, start, w) + 1e-12
    for out in best:
        for inn in set(range(dist.shape[1])) - set(best):
            swapped = [j for j in best if j != out] + [inn]
            assert location.pmedian_cost(dist, swapped, w) >= cost - 1e-9


def test_greedy_is_deterministic_and_picks_the_1_median():
    dist = _line_distances([0, 1, 3, 7])
    assert location.greedy_pmedian(dist, 1) == [1]  # ties (1 and 2 cost 9) go to the lowest
    assert location.greedy_pmedian(dist, 1) == location.greedy_pmedian(dist, 1)


def test_p_out_of_range_is_refused():
    with pytest.raises(ValueError, match="p must be"):
        location.solve_pmedian_benders(_line_distances([0, 1]), 3)
    with pytest.raises(ValueError, match="time limit"):
        location.Deadline(0)


# --- building blocks and the CFLP -----------------------------------------------------


def test_budget_and_cardinality_blocks():
    # three sites with values 5, 4, 3 and costs 3, 2, 2; budget 4, at most 2 open:
    # {1, 2} (value 7) beats {0} (5).
    model = mathopt.Model()
    sites = location.add_sites(model, [-5.0, -4.0, -3.0])
    location.add_budget(model, sites, [3.0, 2.0, 2.0], 4.0)
    location.add_cardinality(model, sites, 2, exact=False)
    result = mathopt.solve(model, mathopt.SolverType.HIGHS)
    assert result.objective_value() == pytest.approx(-7.0)
    assert [round(result.variable_values()[y]) for y in sites] == [0, 1, 1]


def _random_cflp(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(100 + seed)
    m, n = 5, 8
    capacities = rng.integers(10, 30, m).astype(float)
    demands = rng.integers(1, 8, n).astype(float)
    fixed = rng.integers(20, 60, m).astype(float)
    costs = rng.integers(1, 20, (n, m)).astype(float) * demands[:, None]
    return fixed, capacities, demands, costs


def _solve_cflp(fixed, capacities, demands, costs, lazy: bool) -> float:
    cflp = location.build_cflp(fixed, capacities, demands, costs, all_links=not lazy)
    deadline = location.Deadline(LIMIT)
    if lazy:
        location.add_links_lazily(cflp, deadline)
    result = mathopt.solve(cflp.model, mathopt.SolverType.HIGHS, params=deadline.params())
    assert location.status_name(result) == "OPTIMAL"
    return result.objective_value()


def _cflp_brute_force(fixed, capacities, demands, costs) -> float:
    """Every open set, its allocation a transportation LP."""
    m = len(fixed)
    best = np.inf
    for k in range(1, m + 1):
        for open_set in itertools.combinations(range(m), k):
            if capacities[list(open_set)].sum() < demands.sum():
                continue
            model = mathopt.Model()
            x = location.add_allocation(model, costs[:, list(open_set)])
            location.add_demand_met(model, x)
            for col, j in enumerate(open_set):
                load = mathopt.fast_sum(demands[i] * x[i][col] for i in range(len(demands)))
                model.add_linear_constraint(load <= capacities[j])
            res = mathopt.solve(model, mathopt.SolverType.HIGHS)
            best = min(best, res.objective_value() + fixed[list(open_set)].sum())
    return float(best)


@pytest.mark.parametrize("seed", range(4))
def test_cflp_lazy_links_all_links_and_brute_force_agree(seed: int):
    data = _random_cflp(seed)
    best = _cflp_brute_force(*data)
    assert _solve_cflp(*data, lazy=False) == pytest.approx(best, rel=1e-9)
    assert _solve_cflp(*data, lazy=True) == pytest.approx(best, rel=1e-9)


def test_lazy_links_reach_the_strong_lp_bound():
    fixed, capacities, demands, costs = _random_cflp(0)
    strong = location.build_cflp(fixed, capacities, demands, costs, all_links=True)
    for y in strong.sites:
        y.integer = False
    strong_lp = mathopt.solve(strong.model, mathopt.SolverType.HIGHS).objective_value()
    lazy = location.build_cflp(fixed, capacities, demands, costs, all_links=False)
    bound, rounds = location.add_links_lazily(lazy, location.Deadline(LIMIT))
    assert bound == pytest.approx(strong_lp, rel=1e-9)
    assert rounds >= 1 and lazy.links <= len(demands) * len(fixed)
    assert all(y.integer for y in lazy.sites)  # restored for the integer solve


# --- CFLP heuristic ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_cflp_heuristic_plan_is_feasible_and_priced_exactly(seed: int):
    fixed, capacities, demands, costs = _random_cflp(seed)
    plan = location.cflp_heuristic(fixed, capacities, demands, costs, time_limit_s=LIMIT)
    assert plan is not None
    x = plan.allocation
    closed = [j for j in range(len(fixed)) if j not in plan.open_sites]
    assert np.allclose(x.sum(axis=1), 1.0, atol=1e-7)
    assert np.all(x[:, closed] <= 1e-9)
    assert np.all(demands @ x <= capacities + 1e-6)
    priced = fixed[list(plan.open_sites)].sum() + float(np.sum(costs * x))
    assert plan.cost == pytest.approx(priced, rel=1e-9)
    assert plan.cost >= _cflp_brute_force(fixed, capacities, demands, costs) * (1 - 1e-9)


def test_cflp_transport_refuses_too_little_capacity():
    fixed, capacities, demands, costs = _random_cflp(0)
    small = int(np.argmin(capacities))
    if capacities[small] < demands.sum():
        assert location.cflp_transport([small], capacities, demands, costs) is None


def test_cflp_hint_keeps_the_optimum():
    data = _random_cflp(1)
    best = _cflp_brute_force(*data)
    cflp = location.build_cflp(*data)
    plan = location.cflp_heuristic(*data, time_limit_s=LIMIT)
    result = mathopt.solve(
        cflp.model,
        mathopt.SolverType.HIGHS,
        params=location.Deadline(LIMIT).params(),
        model_params=location.cflp_hint(cflp, plan),
    )
    assert location.status_name(result) == "OPTIMAL"
    assert result.objective_value() == pytest.approx(best, rel=1e-9)


# --- CFLP Lagrangian ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_cflp_lagrangian_bound_plan_and_fixings_are_valid(seed: int):
    data = _random_cflp(seed)
    fixed, capacities, demands, costs = data
    best = _cflp_brute_force(*data)
    start = location.cflp_heuristic(*data, time_limit_s=LIMIT)
    lag = location.cflp_lagrangian(*data, start, time_limit_s=LIMIT)
    # a lower bound, never above the optimum; a plan never worse than the start
    assert lag.bound <= best * (1 + 1e-9) + 1e-6
    assert best * (1 - 1e-9) <= lag.plan.cost <= start.cost * (1 + 1e-12)
    x = lag.plan.allocation
    assert np.allclose(x.sum(axis=1), 1.0, atol=1e-7)
    assert np.all(demands @ x <= capacities + 1e-6)
    priced = fixed[list(lag.plan.open_sites)].sum() + float(np.sum(costs * x))
    assert lag.plan.cost == pytest.approx(priced, rel=1e-9)
    # every open set that disagrees with a fixing costs more than the plan
    assert not set(lag.fixed_open) & set(lag.fixed_closed)
    m = len(fixed)
    for k in range(1, m + 1):
        for open_set in itertools.combinations(range(m), k):
            chosen = set(open_set)
            if chosen >= set(lag.fixed_open) and not chosen & set(lag.fixed_closed):
                continue
            exact = location.cflp_transport(open_set, capacities, demands, costs, fixed)
            if exact is not None:
                assert exact[0] > lag.plan.cost - 1e-6


def test_cflp_open_values_are_continuous_knapsacks():
    # one site of capacity 3; clients of demand 2, 2, 2 whose reduced costs are
    # -4, -2, +1: the first is taken whole, half of the second, none of the third
    u = np.array([5.0, 3.0, 0.0])
    costs = np.array([[1.0], [1.0], [1.0]])
    values, x = location._open_values(u, costs, np.array([2.0, 2.0, 2.0]), np.array([3.0]))
    assert x[:, 0] == pytest.approx([1.0, 0.5, 0.0])
    assert values[0] == pytest.approx(-4.0 - 0.5 * 2.0)


def test_cover_knapsack_is_exact_and_can_force_a_site():
    values = np.array([3.0, 4.0, 10.0])
    caps = np.array([5.0, 5.0, 9.0])
    bound, y = location._cover_knapsack(values, caps, 9.0)
    assert bound == pytest.approx(7.0) and list(y) == [1, 1, 0]
    bound, y = location._cover_knapsack(values, caps, 9.0, force=(0, 0))
    assert bound == pytest.approx(10.0) and list(y) == [0, 0, 1]
    assert location._cover_knapsack(values, caps, 20.0)[0] == math.inf
