"""Time the queueing formulas; prints a Markdown table of median wall times.

Usage: python benchmarks/bench_queues.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from pathways import queues as q


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(np.random.SeedSequence(7))
    loads = rng.uniform(0, 2000, 100_000)
    loads_small = rng.uniform(0, 100, 10_000)
    calls = rng.uniform(5, 400, 10_000)
    handlers = np.ceil(calls * 300 / 3600 * rng.uniform(0.7, 1.4, calls.size))
    hours = np.linspace(20, 200, 24)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("erlang_b scalar, E=150, c=180", lambda: q.erlang_b(150.0, 180)),
        ("erlang_b scalar, E=1900, c=2000", lambda: q.erlang_b(1900.0, 2000)),
        ("erlang_b 1e5 loads, c=200", lambda: q.erlang_b(loads, 200)),
        ("erlang_b 1e5 loads, c=2000", lambda: q.erlang_b(loads, 2000)),
        (
            "erlang_b 1e5 loads, real c=floor(E)+0.5",
            lambda: q.erlang_b(loads, np.floor(loads) + 0.5),
        ),
        ("lost_traffic_dload 1e4, z=1.5", lambda: q.lost_traffic_dload(loads_small, 80, 1.5)),
        ("erlang_c 1e4 loads, c=120", lambda: q.erlang_c(loads_small, 120)),
        ("erlang_a_metrics 24 hours", lambda: q.erlang_a_metrics(hours, 12, 300, 120, 20)),
        (
            "erlang_a_metrics 1e4 mixed",
            lambda: q.erlang_a_metrics(calls, handlers, 300, 120, 20),
        ),
        ("servers_for_blocking 1e3 loads", lambda: q.servers_for_blocking(loads[:1000], 0.01)),
        (
            "servers_for_service_level 24 h, Erlang A",
            lambda: q.servers_for_service_level(hours, 300, 20, 0.9, 120),
        ),
    ]
    print("| case | median ms |")
    print("|---|---:|")
    for name, fn in cases:
        print(f"| {name} | {1e3 * median_seconds(fn, args.repeats):.3f} |")


if __name__ == "__main__":
    main()
