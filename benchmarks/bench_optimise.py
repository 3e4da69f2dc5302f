"""The optimiser on the Sussex demo, quiet and under load: first plan, proof and plan.

    python benchmarks/bench_optimise.py [--runs 3] [--time-limit 60] [--cases demo,edited]
                                        [--node-limit N]

Each run is a fresh process (``python -m pathways.cli optimise``), so caches do not carry
over. "Under load" means two ``python -c "while True: pass"`` processes run for the whole
of those runs (a busy 2-core laptop). Quiet and loaded runs are interleaved so that both
see the same machine. The edited demo is the demo with 10% more demand (what a
commissioner tries first in the app). Prints a markdown table: medians over the runs,
whether every run returned the same plan (objective to 1e-6), and whether the quiet and
loaded runs of a case all did. With ``--node-limit`` the search stops on a deterministic
work limit (the time limit is then a safety net). Figures are recorded in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"

FIRST_PLAN = """
import json, sys, time
from pathways import load_scenario, with_changes
from pathways.constraints import resolve_goals
from pathways.instance import prepare
from pathways.optimise.heuristic import feasible_plan
sc = load_scenario(sys.argv[1])
if sys.argv[2] == "edited":
    sc = with_changes(sc, {"demand.growth_factor": 1.1})
inst = prepare(sc)
goals = resolve_goals(inst)
t = time.perf_counter()
plan = feasible_plan(inst, goals)
print(json.dumps({"seconds": time.perf_counter() - t, "found": plan is not None}))
"""


def _scenario(case: str, folder: Path) -> Path:
    if case == "demo":
        return SUSSEX
    from pathways import dump_scenario, load_scenario, with_changes

    sc = with_changes(load_scenario(SUSSEX), {"demand.growth_factor": 1.1})
    path = folder / "edited.yaml"
    path.write_text(dump_scenario(sc), encoding="utf-8")
    return path


def one_run(case: str, time_limit: float, folder: Path, node_limit: int | None = None) -> dict:
    first = subprocess.run(
        [sys.executable, "-c", FIRST_PLAN, str(SUSSEX), case],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    first_s = json.loads(first.stdout.strip().splitlines()[-1])["seconds"]
    out = folder / f"out-{case}-{time.perf_counter_ns()}"
    t = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pathways.cli", "optimise", str(_scenario(case, folder)),
         "--out", str(out), "--time-limit", str(time_limit), "--quiet", "--no-suppress",
         *(["--node-limit", str(node_limit)] if node_limit else [])],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    wall = time.perf_counter() - t
    if run.returncode != 0:
        return {"first_s": first_s, "wall_s": wall, "status": f"exit {run.returncode}"}
    import yaml

    plan = yaml.safe_load((out / "plan.yaml").read_text())
    rep = plan["solver"]
    return {
        "first_s": first_s,
        "wall_s": wall,
        "solver_s": rep["seconds"],
        "status": rep["status"],
        "gap": rep["gap"],
        "objective": rep["objective"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--cases", default="demo,edited")
    ap.add_argument("--node-limit", type=int, help="branch-and-bound nodes per round")
    args = ap.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for case in args.cases.split(","):
            for _ in range(args.runs):
                for load in ("quiet", "loaded"):
                    busy = []
                    if load == "loaded":
                        busy = [
                            subprocess.Popen([sys.executable, "-c", "while True: pass"])
                            for _ in range(2)
                        ]
                    try:
                        r = one_run(case, args.time_limit, folder, args.node_limit)
                    finally:
                        for p in busy:
                            p.kill()
                            p.wait()
                    results.setdefault((case, load), []).append(r)
                    print(f"{case:>7} {load:>6}: {r}", file=sys.stderr, flush=True)
    limit = f", node limit {args.node_limit}" if args.node_limit else ""
    print(f"\ntime limit {args.time_limit:.0f} s{limit}, {args.runs} runs each (medians)\n")
    print(
        "| case | machine | first plan s | optimise wall s | statuses | gap (median) | objective (median) | same plan in every run |"
    )
    print("|---|---|---:|---:|---|---:|---:|---|")
    for (case, load), rs in results.items():
        ok = [r for r in rs if "objective" in r]
        objs = [r["objective"] for r in ok]
        same = bool(objs) and max(objs) - min(objs) <= 1e-6 * max(abs(min(objs)), 1.0)
        gaps = [r["gap"] for r in ok if r["gap"] is not None]
        gap = f"{statistics.median(gaps):.2%}" if gaps else "-"
        obj = f"{statistics.median(objs):,.2f}" if objs else "-"
        first = statistics.median(r["first_s"] for r in rs)
        wall = statistics.median(r["wall_s"] for r in rs)
        statuses = ", ".join(sorted({r["status"] for r in rs}))
        print(f"| {case} | {load} | {first:.2f} | {wall:.1f} | {statuses} | {gap} | {obj} "
              f"| {'yes' if same else 'no'} |")  # fmt: skip
    for case in dict.fromkeys(c for c, _ in results):
        objs = [r["objective"] for load in ("quiet", "loaded") for r in results[case, load]
                if "objective" in r]  # fmt: skip
        same = bool(objs) and max(objs) - min(objs) <= 1e-6 * max(abs(min(objs)), 1.0)
        print(f"\n{case}: the same plan quiet and under load in every run: {'yes' if same else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
