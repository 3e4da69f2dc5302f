"""Benchmark: every OR-Library instance in a folder, through the location core.

Usage (from the repository root)::

    python benchmarks/bench_orlib.py --all [--dir FOLDER] [--repeats 3] [--time-limit 600]
    python benchmarks/bench_orlib.py pmed6 cap41 capa@8000 [--dir FOLDER]

``FOLDER`` (default ``tests/fixtures/orlib``) holds ``capXX``/``pmedXX`` files
and an ``OPTIMA.md`` table of published optima (the bundled one's format). A
row whose optimum column lists several values separated by ``/`` (OR-Library
``capa``) is one instance per capacity listed after "set to" in its problem
column, named ``capa@8000`` and so on.

Each solve runs in its own Python process (``bench_orlib`` with the default
methods: Benders radius decomposition for the p-median, strong formulation for
the CFLP), so the peak resident memory (``ru_maxrss``) reported is that
instance's alone; the import-only baseline of such a process is printed above
the table. ``seconds`` is the wall-clock build + solve time reported by
``bench_orlib`` (parsing excluded), the median over ``--repeats``.

When ``spopt`` and ``pulp`` are installed, pmed1-10 are also solved with
spopt's ``PMedian`` and CBC (median seconds in the last column, each solve
capped at ``SPOPT_TIME_LIMIT`` seconds); otherwise
that column shows ``-``.

Exits non-zero if an instance is not solved to its published optimum with
status OPTIMAL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The children run this file as a script: make them import this checkout's package,
# not whichever copy happens to be installed.
sys.path.insert(0, str(REPO))
FIXTURES = REPO / "tests" / "fixtures" / "orlib"
REL_TOL = 1e-6
SPOPT_UP_TO = 10  # pmed1..pmed10 get the spopt + CBC column
SPOPT_TIME_LIMIT = 600.0  # seconds per spopt + CBC solve, so the benchmark ends


@dataclass(frozen=True)
class Case:
    """One instance: file stem, optional capacity override and published optimum."""

    name: str
    stem: str
    capacity: float | None
    optimum: float


def _sort_key(case: Case) -> tuple:
    digits = re.sub(r"\D", "", case.stem)
    return (case.stem[:3] != "pme", case.stem[:3], int(digits) if digits else 0, case.capacity or 0)


def read_cases(folder: Path) -> list[Case]:
    """Instances listed in ``folder/OPTIMA.md`` whose file is present."""
    text = (folder / "OPTIMA.md").read_text(encoding="utf-8")
    cases = []
    for stem, problem, value in re.findall(
        r"^\|\s*((?:cap|pmed)\w*)\s*\|([^|]*)\|\s*([\d.\s/]+?)\s*\|", text, flags=re.M
    ):
        if not (folder / f"{stem}.txt").is_file():
            continue
        optima = [float(v) for v in value.split("/")]
        if len(optima) == 1:
            cases.append(Case(stem, stem, None, optima[0]))
            continue
        caps = re.search(r"set to ([\d.\s/]+)", problem)
        capacities = [float(c) for c in caps.group(1).split("/")] if caps else []
        if len(capacities) != len(optima):
            raise SystemExit(f"{stem}: {len(optima)} optima but capacities {capacities}")
        for cap, opt in zip(capacities, optima, strict=True):
            cases.append(Case(f"{stem}@{cap:g}", stem, cap, opt))
    return sorted(cases, key=_sort_key)


# --- one solve in a child process ----------------------------------------------------


def worker(path: str, capacity: float | None, time_limit: float) -> None:
    """Solve one file and print its result with the process's peak RSS (MB) as JSON."""
    from pathways.optimise.orlib import bench_orlib

    res = bench_orlib(path, capacity=capacity, time_limit_s=time_limit)
    out = res.to_json()
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def baseline_mb() -> float:
    """Peak RSS of a child that only imports the solver (MB)."""
    code = (
        "import resource, pathways.optimise.orlib; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def run_child(folder: Path, case: Case, time_limit: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(folder / f"{case.stem}.txt")]
    cmd += ["--time-limit", str(time_limit)]
    if case.capacity is not None:
        cmd += ["--capacity", str(case.capacity)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"status": "CRASHED", "objective": None, "seconds": None, "peak_mb": None,
                "error": proc.stderr.strip().splitlines()[-1:]}  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- spopt + CBC, pmed1-10 -----------------------------------------------------------


def spopt_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("pulp", "spopt"))


def spopt_worker(path: str, repeats: int, optimum: float) -> None:
    """Time spopt PMedian + CBC on one file; print the median seconds (or why not) as JSON."""
    import numpy as np
    import pulp
    from spopt.locate import PMedian

    from pathways.optimise.orlib import read_pmed

    inst = read_pmed(path)
    dist = np.array(inst.distances)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = PMedian.from_cost_matrix(dist, np.ones(dist.shape[0]), p_facilities=inst.p)
        model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=SPOPT_TIME_LIMIT), results=False)
        times.append(time.perf_counter() - t0)
        if model.problem.sol_status != pulp.LpSolutionOptimal:
            print(json.dumps(f">{SPOPT_TIME_LIMIT:.0f} (not proven)"))
            return
        if abs(model.problem.objective.value() - optimum) > REL_TOL * optimum:
            print(json.dumps("wrong objective"))
            return
    print(json.dumps(f"{statistics.median(times):.2f}"))


def time_spopt(folder: Path, case: Case, repeats: int) -> str:
    """Median seconds of spopt PMedian + CBC on the same distances, or why not.

    Runs in its own process so that spopt's imports do not inflate the peak
    memory the parent's later children inherit.
    """
    cmd = [sys.executable, __file__, "--spopt-worker", str(folder / f"{case.stem}.txt")]
    cmd += ["--repeats", str(repeats), "--optimum", repr(case.optimum)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return "crashed"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wants_spopt(case: Case) -> bool:
    return case.stem.startswith("pmed") and int(case.stem[4:]) <= SPOPT_UP_TO


# --- table ---------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def bench(folder: Path, cases: list[Case], repeats: int, time_limit: float) -> bool:
    """Run every case, print the Markdown table, return True if all reached their optimum."""
    spopt = spopt_available()
    load0 = os.getloadavg()[0]
    print(f"Peak RSS of a process that only imports the solver: {baseline_mb():.0f} MB")
    if not spopt:
        print("spopt and/or pulp are not installed: the spopt + CBC column shows '-'.")
    print()
    print("| instance | objective | published | status | seconds | peak MB | spopt+CBC s |")
    print("|---|---:|---:|---|---:|---:|---:|")
    ok = True
    for case in cases:
        runs = [run_child(folder, case, time_limit) for _ in range(repeats)]
        last = runs[-1]
        secs = [r["seconds"] for r in runs if r["seconds"] is not None]
        mbs = [r["peak_mb"] for r in runs if r["peak_mb"] is not None]
        obj = last["objective"]
        good = all(
            r["status"] == "OPTIMAL"
            and r["objective"] is not None
            and abs(r["objective"] - case.optimum) <= REL_TOL * case.optimum
            for r in runs
        )
        ok &= good
        status = last["status"] if good or last["status"] != "OPTIMAL" else "OPTIMAL (wrong value)"
        if last["status"] == "FEASIBLE" and last.get("gap") is not None:
            status = f"FEASIBLE (gap {100 * last['gap']:.2f}%)"
        theirs = time_spopt(folder, case, repeats) if spopt and wants_spopt(case) else "-"
        print(
            f"| {case.name} | {_fmt(obj, '.3f')} | {case.optimum:.3f} | {status} | "
            f"{_fmt(statistics.median(secs) if secs else None, '.2f')} | "
            f"{_fmt(max(mbs) if mbs else None, '.0f')} | {theirs} |",
            flush=True,
        )
    print()
    print(
        f"Median of {repeats} run(s); load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)."
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="instances to run, e.g. pmed6 capa@8000")
    ap.add_argument("--all", action="store_true", help="every instance in --dir")
    ap.add_argument("--dir", type=Path, default=FIXTURES, help="folder with OPTIMA.md")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds per solve")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--capacity", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--spopt-worker", help=argparse.SUPPRESS)
    ap.add_argument("--optimum", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.spopt_worker:
        spopt_worker(args.spopt_worker, args.repeats, args.optimum)
        return 0
    if args.worker:
        worker(args.worker, args.capacity, args.time_limit)
        return 0
    cases = read_cases(args.dir)
    if not args.all:
        wanted = set(args.names)
        unknown = wanted - {c.name for c in cases}
        if unknown or not wanted:
            ap.error(f"give instance names from {args.dir}/OPTIMA.md or --all; unknown: {unknown}")
        cases = [c for c in cases if c.name in wanted]
    return 0 if bench(args.dir, cases, args.repeats, args.time_limit) else 1


if __name__ == "__main__":
    sys.exit(main())
