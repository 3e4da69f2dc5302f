"""Speed of the core on the Sussex demo: evaluate, and (with --optimise) the optimiser.

    python benchmarks/bench_core.py [--repeats 30] [--optimise]

Prints a markdown table. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"


def bench_evaluate(repeats: int) -> list[tuple[str, float, str]]:
    from pathways.instance import _geometry_cached, prepare
    from pathways.kpis import evaluate
    from pathways.optimise.model import area_groups  # noqa: F401 - warm imports
    from pathways.scenario import load_scenario

    scenario = load_scenario(SUSSEX)
    cold = []
    for _ in range(3):
        _geometry_cached.cache_clear()
        t = time.perf_counter()
        prepare(scenario)
        cold.append(time.perf_counter() - t)
    inst = prepare(scenario)
    evaluate(inst)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        evaluate(inst)
        times.append(time.perf_counter() - t)
    via_scenario = []
    for _ in range(repeats):
        t = time.perf_counter()
        evaluate(scenario)
        via_scenario.append(time.perf_counter() - t)
    return [
        ("prepare Sussex (footprint + travel matrix, cold)", statistics.median(cold) * 1000, "ms"),
        ("evaluate Sussex plan (prepared instance)", statistics.median(times) * 1000, "ms"),
        ("evaluate Sussex plan (from the scenario, cached)", statistics.median(via_scenario) * 1000, "ms"),
    ]


def bench_optimise(time_limit: float) -> list[tuple[str, float, str]]:
    out = Path("/tmp/bench-optimise")
    t = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pathways.cli", "optimise", str(SUSSEX), "--out", str(out), "--time-limit", str(time_limit), "--quiet", "--no-suppress"],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - t
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    import yaml

    plan = yaml.safe_load((out / "plan.yaml").read_text())
    card = json.loads((out / "scorecard.json").read_text())["optimised"]["kpis"]
    rows = [
        ("optimise Sussex, wall clock incl. baselines", wall, "s"),
        ("optimise Sussex, solver", plan["solver"]["seconds"], "s"),
        ("optimise Sussex, proven gap", plan["solver"]["gap"] * 100, "%"),
        ("optimise Sussex, peak memory (RSS)", peak_mb, "MB"),
    ]
    for k in ("oap_bed_days_per_year", "admissions_per_year", "total_cost_gbp_per_year"):
        pred = plan["predicted"][k]
        rows.append((f"prediction vs evaluate: {k}", abs(pred - card[k]) / max(abs(card[k]), 1e-9) * 100, "% diff"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--optimise", action="store_true")
    ap.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    rows = bench_evaluate(args.repeats)
    if args.optimise:
        rows += bench_optimise(args.time_limit)
    print("| measure | median | unit |\n|---|---:|---|")
    for name, value, unit in rows:
        print(f"| {name} | {value:,.3f} | {unit} |")


if __name__ == "__main__":
    main()
