"""Time the loss-node simulation on the Sussex demo; prints a Markdown table.

Seconds per simulated year per replication = wall time of one ``simulate`` call
(which includes one ``evaluate`` for the analytic column) / (reps x years); the
warm-up (60 days a replication) is not counted in the simulated years. Median of
``--repeats`` runs after one warm-up call.

Usage: python benchmarks/bench_simulate.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from pathways import evaluate, load_scenario, prepare
from pathways.simulate import simulate

SUSSEX = Path(__file__).resolve().parents[1] / "data" / "scenarios" / "sussex.yaml"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm up (caches, imports)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    inst = prepare(load_scenario(SUSSEX))
    cases = [
        ("20 reps x 1 year, exponential stays", 20, 1.0, None),
        ("5 reps x 4 years, exponential stays", 5, 4.0, None),
        ("1 rep x 20 years, exponential stays", 1, 20.0, None),
        ("20 reps x 1 year, lognormal stays (CV 1)", 20, 1.0, 1.0),
    ]
    t_eval = median_seconds(lambda: evaluate(inst), args.repeats)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| case | median s per call | s per simulated year per replication |")
    print("|---|---:|---:|")
    print(f"| evaluate only (analytic column) | {t_eval:.3f} | |")
    for name, reps, years, cv in cases:
        t = median_seconds(
            lambda reps=reps, years=years, cv=cv: simulate(
                inst, reps=reps, seed=0, years=years, los_cv=cv
            ),
            args.repeats,
        )
        print(f"| {name} | {t:.3f} | {t / (reps * years):.4f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
