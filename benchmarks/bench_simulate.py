"""Time the pathway simulation on the Sussex demo; prints a Markdown table.

Rows: one replication of one simulated year of the whole Sussex pathway (default
settings: season, lognormal stays, repatriation; and the analytic settings), run in
this process (median of ``--repeats`` after one warm-up call, ``evaluate`` and
``prepare`` excluded: the model is built once); then ``--reps`` replications through
``simulate`` on ``--workers`` local processes (one timed call, pool start included).

Usage: python benchmarks/bench_simulate.py [--repeats 5] [--reps 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from pathways import load_scenario, prepare
from pathways.simulate import SimParams, simulate
from pathways.simulate.des import run_replication
from pathways.simulate.model import build_model

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
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    inst = prepare(load_scenario(SUSSEX))
    model, _, _ = build_model(inst)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| case | median s |")
    print("|---|---:|")
    for name, p in (("default settings", SimParams()), ("analytic settings", SimParams.analytic())):
        seeds = iter(np.random.SeedSequence(0).spawn(args.repeats + 1))
        t = median_seconds(lambda p=p, s=seeds: run_replication(model, p, next(s)), args.repeats)
        print(f"| 1 replication x 1 year, Sussex pathway, {name}, 1 core | {t:.2f} |")
    start = time.perf_counter()
    simulate(inst, reps=args.reps, seed=0, workers=args.workers)
    t = time.perf_counter() - start
    print(f"| {args.reps} replications x 1 year, default settings, {args.workers} workers "
          f"(one call) | {t:.1f} |")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
