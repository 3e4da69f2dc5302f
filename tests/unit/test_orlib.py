"""OR-Library location-allocation benchmarks: readers, models, judges.

Published optima are read from the bundled ``tests/fixtures/orlib/OPTIMA.md``.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pathways.errors import InputError
from pathways.optimise.orlib import (
    CflpInstance,
    OrlibResult,
    PMedianInstance,
    bench_orlib,
    build_cflp_model,
    build_pmedian_model,
    evaluate_cflp,
    evaluate_pmedian,
    format_result,
    read_cap,
    read_orlib,
    read_pmed,
    solve_cflp,
    solve_pmedian,
)

ORLIB = Path(__file__).resolve().parents[1] / "fixtures" / "orlib"


def _published_optima() -> dict[str, float]:
    text = (ORLIB / "OPTIMA.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*((?:cap|pmed)\d+)\s*\|[^|]*\|\s*([\d.]+)\s*\|", text, flags=re.M)
    return {name: float(value) for name, value in rows}


OPTIMA = _published_optima()
INSTANCES = sorted(OPTIMA, key=lambda s: (s[:3], int(re.sub(r"\D", "", s))))


@functools.cache
def _bench(name: str) -> OrlibResult:
    """Solve each bundled instance once per test session."""
    return bench_orlib(ORLIB / f"{name}.txt", time_limit_s=120)


def test_bundled_optima_table_is_complete():
    assert len(INSTANCES) == 9
    assert {n for n in INSTANCES if n.startswith("cap")} == {"cap41", "cap71", "cap101", "cap131"}
    assert all((ORLIB / f"{n}.txt").is_file() for n in INSTANCES)


# --- published optima ---------------------------------------------------------


@pytest.mark.parametrize("name", INSTANCES)
def test_reaches_published_optimum(name: str):
    res = _bench(name)
    assert res.status == "OPTIMAL"
    assert res.instance == name
    assert abs(res.objective - OPTIMA[name]) / OPTIMA[name] < 1e-6
    assert res.best_bound <= res.objective + 1e-6 * abs(res.objective)
    assert res.gap < 1e-6


@pytest.mark.parametrize("name", INSTANCES)
def test_objective_agrees_with_independent_evaluation(name: str):
    res = _bench(name)
    inst = read_orlib(ORLIB / f"{name}.txt")
    if isinstance(inst, CflpInstance):
        assert res.problem == "cflp"
        judged = evaluate_cflp(inst, res.open_facilities, res.allocation)
    else:
        assert res.problem == "pmedian"
        assert len(res.open_facilities) == inst.p
        judged = evaluate_pmedian(inst, res.open_facilities)
        # each customer is served by one of the chosen medians, at its nearest
        assert set(res.allocation.tolist()) <= set(res.open_facilities)
        chosen = inst.distances[np.arange(inst.n_vertices), res.allocation]
        assert chosen.sum() == pytest.approx(judged)
    assert res.objective == pytest.approx(judged, rel=1e-9, abs=1e-6)


def test_scip_backend_agrees_on_cap41():
    inst = read_cap(ORLIB / "cap41.txt")
    res = solve_cflp(inst, solver="scip", threads=1)
    assert res.status == "OPTIMAL"
    assert res.solver == "scip"
    assert res.objective == pytest.approx(OPTIMA["cap41"], rel=1e-6)


def test_unknown_solver_is_refused():
    inst = read_cap(ORLIB / "cap41.txt")
    with pytest.raises(ValueError, match="solver"):
        solve_cflp(inst, solver="gurobi-please")


# --- results -------------------------------------------------------------------


def test_result_json_and_summary():
    res = _bench("cap41")
    payload = json.loads(json.dumps(res.to_json()))
    assert {"objective", "status", "seconds"} <= payload.keys()
    assert payload["status"] == "OPTIMAL"
    assert payload["objective"] == pytest.approx(res.objective)
    assert payload["open_facilities"] == list(res.open_facilities)
    line = format_result(res)
    assert "\n" not in line
    assert "cap41" in line and "OPTIMAL" in line and f"{res.objective:.3f}" in line


def test_infeasible_cflp_reports_status_and_serialises():
    # total capacity 5 cannot serve a total demand of 8
    inst = CflpInstance(
        capacities=[2.0, 3.0],
        fixed_costs=[1.0, 1.0],
        demands=[4.0, 4.0],
        alloc_costs=[[1.0, 2.0], [2.0, 1.0]],
    )
    res = solve_cflp(inst, time_limit_s=10)
    assert res.status == "INFEASIBLE"
    assert res.open_facilities == ()
    payload = json.loads(json.dumps(res.to_json()))  # no NaN leaks into JSON
    assert payload["objective"] is None
    assert "INFEASIBLE" in format_result(res)


def test_builders_expose_the_constraint_families():
    cap = read_cap(ORLIB / "cap41.txt")
    model, v = build_cflp_model(cap)
    m, n = cap.n_facilities, cap.n_customers
    assert len(v.open) == m and len(v.serve) == n and len(v.serve[0]) == m
    # (2) n demand rows, (3) m capacity rows, (4) n*m linking rows
    assert len(list(model.linear_constraints())) == n + m + n * m

    pm = PMedianInstance(np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]]), p=1)
    model, v = build_pmedian_model(pm)
    assert len(list(model.linear_constraints())) == 3 + 9 + 1


# --- small instances against brute force --------------------------------------


def _random_graph_pmed(tmp_path: Path, n: int, extra_edges: int, p: int, seed: int) -> Path:
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    edges = [(k, k + 1) for k in range(1, n)]  # a path keeps it connected
    while len(edges) < n - 1 + extra_edges:
        i, j = rng.choice(np.arange(1, n + 1), size=2, replace=False)
        edges.append((int(i), int(j)))
    lines = [f"{n} {len(edges)} {p}"]
    lines += [f"{i} {j} {int(rng.integers(1, 30))}" for i, j in edges]
    path = tmp_path / "graph.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pmedian_matches_brute_force(tmp_path: Path, seed: int):
    inst = read_pmed(_random_graph_pmed(tmp_path, n=8, extra_edges=6, p=3, seed=seed))
    best = min(evaluate_pmedian(inst, combo) for combo in itertools.combinations(range(8), inst.p))
    res = solve_pmedian(inst, time_limit_s=10)
    assert res.status == "OPTIMAL"
    assert res.objective == pytest.approx(best)


def test_cflp_splits_demand_when_capacity_binds():
    # one cheap facility that holds only half of the single customer's demand
    inst = CflpInstance(
        capacities=[5.0, 100.0],
        fixed_costs=[0.0, 0.0],
        demands=[10.0],
        alloc_costs=[[10.0, 30.0]],
    )
    res = solve_cflp(inst, time_limit_s=10)
    assert res.status == "OPTIMAL"
    assert res.objective == pytest.approx(0.5 * 10.0 + 0.5 * 30.0)
    assert res.allocation[0] == pytest.approx([0.5, 0.5])
    assert evaluate_cflp(inst, res.open_facilities, res.allocation) == pytest.approx(res.objective)


# --- judges ---------------------------------------------------------------------


def test_evaluate_cflp_rejects_infeasible_solutions():
    inst = CflpInstance([5.0, 100.0], [1.0, 2.0], [10.0], [[10.0, 30.0]])
    with pytest.raises(ValueError, match="capacity"):
        evaluate_cflp(inst, [0, 1], np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="closed"):
        evaluate_cflp(inst, [1], np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="demand met"):
        evaluate_cflp(inst, [1], np.array([[0.0, 0.5]]))
    assert evaluate_cflp(inst, [1], np.array([[0.0, 1.0]])) == pytest.approx(2.0 + 30.0)


def test_evaluate_pmedian_rejects_wrong_medians():
    inst = PMedianInstance(np.array([[0, 4, 9], [4, 0, 5], [9, 5, 0]]), p=2)
    assert evaluate_pmedian(inst, [0, 2]) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        evaluate_pmedian(inst, [1])
    with pytest.raises(ValueError):
        evaluate_pmedian(inst, [1, 1])
    with pytest.raises(ValueError):
        evaluate_pmedian(inst, [0, 3])


# --- readers --------------------------------------------------------------------


def test_cap_reader_treats_file_as_a_token_stream(tmp_path: Path):
    flat = tmp_path / "capflat.txt"
    flat.write_text("2 3\n10 100.\n20 200.\n4 1 2\n5 3 4\n6 5 6\n")
    wrapped = tmp_path / "capwrapped.txt"
    wrapped.write_text(" 2 3 \n 10 100.\n 20\n 200.\n 4\n 1\n 2\n5 3\n 4 6\n 5 6")
    a, b = read_cap(flat), read_cap(wrapped)
    for inst in (a, b):
        assert inst.capacities.tolist() == [10.0, 20.0]
        assert inst.fixed_costs.tolist() == [100.0, 200.0]
        assert inst.demands.tolist() == [4.0, 5.0, 6.0]
        assert inst.alloc_costs.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def test_cap_bundled_shapes():
    inst = read_cap(ORLIB / "cap131.txt")
    assert (inst.n_facilities, inst.n_customers) == (50, 50)
    assert inst.alloc_costs.shape == (50, 50)


def test_cap_word_capacity_needs_override(tmp_path: Path):
    f = tmp_path / "capa_like.txt"
    f.write_text("2 1\n capacity 100.\n capacity 200.\n 7\n 1.5 2.5\n")
    with pytest.raises(InputError) as err:
        read_cap(f)
    problem = err.value.problems[0]
    assert problem.row == 2 and problem.field == "capacity of warehouse 1"
    assert "--capacity" in str(err.value)
    inst = read_cap(f, capacity=8000)
    assert inst.capacities.tolist() == [8000.0, 8000.0]
    assert read_orlib(f, capacity=50).capacities.tolist() == [50.0, 50.0]


@pytest.mark.parametrize(
    ("text", "row", "field"),
    [
        ("2 1\n10 1\n10 x\n3 1 2\n", 3, "fixed cost of warehouse 2"),
        ("2 1\n10 1\n10 1\n3 1\n", 4, "cost of customer 1 at warehouse 2"),
        ("2 1\n10 1\n10 1\n-3 1 2\n", 4, "demand of customer 1"),
        ("2 1\n10 1\n10 1\n3 1 2\n9\n", 5, None),
        ("2.5 1\n", 1, "number of warehouses"),
    ],
    ids=["not-a-number", "truncated", "negative-demand", "trailing-data", "bad-count"],
)
def test_cap_malformed_names_file_and_line(tmp_path: Path, text: str, row: int, field: str | None):
    f = tmp_path / "capbad.txt"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        read_cap(f)
    problem = err.value.problems[0]
    assert problem.file == str(f)
    assert problem.row == row
    assert problem.field == field
    assert str(f) in str(err.value) and f"row {row}" in str(err.value)


def test_pmed_duplicate_edge_last_occurrence_counts(tmp_path: Path):
    f = tmp_path / "pmeddup.txt"
    # 1-2 listed three times (last: 7, reversed); 2-3 twice (last: 1)
    f.write_text("3 5 1\n1 2 2\n2 3 50\n2 1 9\n3 2 1\n1 2 7\n")
    inst = read_pmed(f)
    assert inst.p == 1
    expected = np.array([[0, 7, 8], [7, 0, 1], [8, 1, 0]], dtype=float)
    assert np.array_equal(inst.distances, expected)
    res = solve_pmedian(inst, time_limit_s=10)
    assert res.open_facilities == (1,)
    assert res.objective == pytest.approx(8.0)


def test_pmed_distances_are_shortest_paths(tmp_path: Path):
    f = tmp_path / "pmedsp.txt"
    # direct 1-3 edge is dearer than going round via 2; a zero-cost edge 3-4
    f.write_text("4 4 2\n1 2 3\n2 3 4.5\n1 3 10\n3 4 0\n")
    d = read_pmed(f).distances
    assert d[0, 2] == 7.5 and d[2, 0] == 7.5
    assert d[2, 3] == 0 and d[0, 3] == 7.5
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)


def test_pmed_bundled_matches_header():
    inst = read_pmed(ORLIB / "pmed4.txt")
    assert inst.n_vertices == 100 and inst.p == 20
    assert np.all(np.isfinite(inst.distances))


@pytest.mark.parametrize(
    ("text", "row", "field"),
    [
        ("3 2 1\n1 2 5\n2 3\n", 3, None),
        ("3 2 1\n1 2 5\n2 4 1\n", 3, "j"),
        ("3 2 1\n1 2 5\n2 3 x\n", 3, "cost"),
        ("3 2 1\n1 2 5\n2.5 3 1\n", 3, "i"),
        ("3 2 1\n1 2 -5\n2 3 1\n", 2, "cost"),
        ("3 3 1\n1 2 5\n2 3 1\n", 3, None),
        ("3 1 1\n1 2 5\n2 3 1\n", 3, None),
        ("3 2 4\n1 2 5\n2 3 1\n", 1, "p"),
    ],
    ids=[
        "short-line",
        "vertex-range",
        "not-a-number",
        "fractional-vertex",
        "negative",
        "too-few",
        "too-many",
        "p>n",
    ],
)
def test_pmed_malformed_names_file_and_line(tmp_path: Path, text: str, row: int, field: str | None):
    f = tmp_path / "pmedbad.txt"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        read_pmed(f)
    problem = err.value.problems[0]
    assert problem.file == str(f)
    assert problem.row == row
    assert problem.field == field
    assert str(f) in str(err.value)


def test_pmed_disconnected_graph_is_refused(tmp_path: Path):
    f = tmp_path / "pmedsplit.txt"
    f.write_text("4 2 1\n1 2 5\n3 4 1\n")
    with pytest.raises(InputError, match="not connected"):
        read_pmed(f)


def test_read_orlib_dispatches_on_content(tmp_path: Path):
    pmed = tmp_path / "graph.txt"
    pmed.write_text("2 1 1\n1 2 3\n")
    cap = tmp_path / "warehouses.txt"
    cap.write_text("1 1\n10 5\n3 2\n")
    assert isinstance(read_orlib(pmed), PMedianInstance)
    assert isinstance(read_orlib(cap), CflpInstance)
    odd = tmp_path / "odd.txt"
    odd.write_text("1 2 3 4\n")
    with pytest.raises(InputError) as err:
        read_orlib(odd)
    assert err.value.problems[0].row == 1


# --- methods of the location core ------------------------------------------------------


def test_assignment_and_benders_pmedian_agree_on_pmed1():
    inst = read_pmed(ORLIB / "pmed1.txt")
    benders = solve_pmedian(inst, time_limit_s=120)
    classic = solve_pmedian(inst, time_limit_s=120, method="assignment")
    assert benders.status == classic.status == "OPTIMAL"
    assert benders.objective == classic.objective == OPTIMA["pmed1"]


def test_lazy_links_reach_the_cap41_optimum():
    res = solve_cflp(read_cap(ORLIB / "cap41.txt"), time_limit_s=120, links="lazy")
    assert res.status == "OPTIMAL"
    assert res.objective == pytest.approx(OPTIMA["cap41"], rel=1e-6)


def test_unknown_methods_are_refused():
    with pytest.raises(ValueError, match="method"):
        solve_pmedian(read_pmed(ORLIB / "pmed1.txt"), method="lagrange")
    with pytest.raises(ValueError, match="links"):
        solve_cflp(read_cap(ORLIB / "cap41.txt"), links="some")


def test_cflp_with_and_without_heuristic_agree_on_cap41():
    inst = read_cap(ORLIB / "cap41.txt")
    with_hint = solve_cflp(inst, time_limit_s=60)
    without = solve_cflp(inst, time_limit_s=60, heuristic=False)
    assert with_hint.status == without.status == "OPTIMAL"
    assert with_hint.objective == pytest.approx(without.objective, rel=1e-9)
    assert evaluate_cflp(inst, with_hint.open_facilities, with_hint.allocation) == pytest.approx(
        with_hint.objective, rel=1e-9
    )


@pytest.mark.parametrize("name", ["cap71", "cap101", "cap131"])
def test_cflp_with_and_without_lagrangian_fixing_agree(name: str):
    inst = read_cap(ORLIB / f"{name}.txt")
    fixed = solve_cflp(inst, time_limit_s=60)
    full = solve_cflp(inst, time_limit_s=60, lagrangian=False)
    assert fixed.status == full.status == "OPTIMAL"
    assert fixed.objective == pytest.approx(OPTIMA[name], rel=1e-6)
    assert fixed.objective == pytest.approx(full.objective, rel=1e-9)
    assert fixed.best_bound <= fixed.objective * (1 + 1e-9)
    assert evaluate_cflp(inst, fixed.open_facilities, fixed.allocation) == pytest.approx(
        fixed.objective, rel=1e-9
    )
