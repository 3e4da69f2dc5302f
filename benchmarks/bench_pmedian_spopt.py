"""Benchmark: our p-median solve against spopt's, on OR-Library pmed1-5.

Usage (from the repository root; needs the ``bench`` extras, spopt and pulp)::

    python benchmarks/bench_pmedian_spopt.py [--repeats 3] [--all] [--backends]

Both solvers get the same distance matrix (all-pairs shortest paths read by
``read_pmed``) and the same formulation (assign every vertex, only to an open
median, exactly p medians):

* ours: ``solve_pmedian`` (OR-Tools MathOpt, HiGHS), timed from model build to
  solution;
* spopt: ``PMedian.from_cost_matrix(...)`` then ``.solve(PULP_CBC_CMD(msg=False),
  results=False)``, timed the same way (``results=False`` skips spopt's
  post-processing, which our timing has no counterpart for).

Each repeat runs both solvers back to back on every instance. Both objectives
are checked against the published optimum in ``tests/fixtures/orlib/OPTIMA.md``
(the script exits non-zero on a mismatch). Prints a markdown table of medians
and the median of the per-instance ratios spopt/ours. With ``--all`` it also
prints median times of our solver on every bundled instance (capXX too);
with ``--backends`` it compares the MathOpt HiGHS and SCIP backends.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pathways.optimise.orlib import PMedianInstance, bench_orlib, read_pmed, solve_pmedian

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "orlib"
PMEDS = ["pmed1", "pmed2", "pmed3", "pmed4", "pmed5"]
REL_TOL = 1e-6


def published_optima(folder: Path) -> dict[str, float]:
    text = (folder / "OPTIMA.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*((?:cap|pmed)\d+)\s*\|[^|]*\|\s*([\d.]+)\s*\|", text, flags=re.M)
    return {name: float(value) for name, value in rows}


def time_ours(dist: np.ndarray, p: int) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    res = solve_pmedian(PMedianInstance(dist, p), time_limit_s=600)
    return time.perf_counter() - t0, res.objective, res.status


def time_spopt(dist: np.ndarray, p: int, name: str) -> tuple[float, float, str]:
    import pulp
    from spopt.locate import PMedian

    t0 = time.perf_counter()
    model = PMedian.from_cost_matrix(dist, np.ones(dist.shape[0]), p_facilities=p, name=name)
    model.solve(pulp.PULP_CBC_CMD(msg=False), results=False)
    seconds = time.perf_counter() - t0
    return seconds, float(model.problem.objective.value()), pulp.LpStatus[model.problem.status]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * abs(b)


def compare(folder: Path, repeats: int, optima: dict[str, float]) -> bool:
    instances = {name: read_pmed(folder / f"{name}.txt") for name in PMEDS}
    ours: dict[str, list[float]] = {n: [] for n in PMEDS}
    theirs: dict[str, list[float]] = {n: [] for n in PMEDS}
    objs: dict[str, tuple[float, float]] = {}
    ok = True
    for rep in range(repeats):
        for name, inst in instances.items():
            dist = np.array(inst.distances)
            s_ours, o_ours, st_ours = time_ours(dist, inst.p)
            s_sp, o_sp, st_sp = time_spopt(dist, inst.p, name)
            ours[name].append(s_ours)
            theirs[name].append(s_sp)
            objs[name] = (o_ours, o_sp)
            good = st_ours == "OPTIMAL" and st_sp == "Optimal"
            good = good and close(o_ours, optima[name]) and close(o_sp, optima[name])
            if not good:
                ok = False
                print(
                    f"MISMATCH {name} repeat {rep}: ours {st_ours} {o_ours}, "
                    f"spopt {st_sp} {o_sp}, published {optima[name]}",
                    file=sys.stderr,
                )
            print(
                f"  {name} repeat {rep + 1}: ours {s_ours:.2f} s, spopt {s_sp:.2f} s",
                file=sys.stderr,
            )
    print(f"p-median, median of {repeats} repeats (seconds, build + solve)\n")
    print(
        "| instance | p | ours s | spopt s | ratio spopt/ours | ours obj | spopt obj | published |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for name in PMEDS:
        mo, ms = statistics.median(ours[name]), statistics.median(theirs[name])
        ratios.append(ms / mo)
        o_ours, o_sp = objs[name]
        print(
            f"| {name} | {instances[name].p} | {mo:.2f} | {ms:.2f} | {ms / mo:.2f} | "
            f"{o_ours:.0f} | {o_sp:.0f} | {optima[name]:.0f} |"
        )
    print(f"\nMedian ratio spopt/ours over {len(PMEDS)} instances: {statistics.median(ratios):.2f}")
    return ok


def time_all(folder: Path, repeats: int, optima: dict[str, float]) -> bool:
    print(f"\nOur solver on every bundled instance, median of {repeats} repeats\n")
    print("| instance | problem | status | objective | published | rel. error | seconds |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for name in optima:
        runs = [bench_orlib(folder / f"{name}.txt", time_limit_s=600) for _ in range(repeats)]
        res = runs[-1]
        err = abs(res.objective - optima[name]) / optima[name]
        ok = ok and all(r.status == "OPTIMAL" for r in runs) and err < REL_TOL
        secs = statistics.median(r.seconds for r in runs)
        print(
            f"| {name} | {res.problem} | {res.status} | {res.objective:.3f} | "
            f"{optima[name]:.3f} | {err:.1e} | {secs:.2f} |"
        )
    return ok


def time_backends(folder: Path, repeats: int, optima: dict[str, float]) -> bool:
    print(f"\nMathOpt backends on every bundled instance, median of {repeats} repeats (seconds)\n")
    print("| instance | HiGHS s | SCIP s | SCIP/HiGHS |")
    print("|---|---|---|---|")
    ok = True
    for name in optima:
        secs = {}
        for solver in ("highs", "scip"):
            runs = [
                bench_orlib(folder / f"{name}.txt", time_limit_s=600, solver=solver)
                for _ in range(repeats)
            ]
            ok = ok and all(
                r.status == "OPTIMAL" and close(r.objective, optima[name]) for r in runs
            )
            secs[solver] = statistics.median(r.seconds for r in runs)
        print(
            f"| {name} | {secs['highs']:.2f} | {secs['scip']:.2f} | "
            f"{secs['scip'] / secs['highs']:.2f} |"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats per instance (median)")
    parser.add_argument(
        "--fixtures", type=Path, default=FIXTURES, help="folder of OR-Library files"
    )
    parser.add_argument("--all", action="store_true", help="also time every bundled instance")
    parser.add_argument(
        "--backends", action="store_true", help="also compare MathOpt HiGHS and SCIP"
    )
    args = parser.parse_args(argv)
    optima = published_optima(args.fixtures)
    ok = compare(args.fixtures, args.repeats, optima)
    if args.all:
        ok = time_all(args.fixtures, args.repeats, optima) and ok
    if args.backends:
        ok = time_backends(args.fixtures, args.repeats, optima) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
