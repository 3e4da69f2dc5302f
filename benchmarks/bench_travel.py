"""Time the travel model; prints a Markdown table of median wall times.

Usage: python benchmarks/bench_travel.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from pathways import travel
from pathways.travel import TravelModel


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_uncached() -> TravelModel:
    travel._load_cached.cache_clear()
    return TravelModel.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model = TravelModel.load()
    rng = np.random.default_rng(np.random.SeedSequence(20240101))
    rows = rng.choice(len(model.codes), 1_000, replace=False)
    origins = model.centroids[rows]
    codes = model.codes[rows]
    # 100 arbitrary new sites scattered over the same places
    sites_xy = model.centroids[rng.choice(len(model.codes), 100, replace=False)] + rng.normal(
        0, 2_000, (100, 2)
    )
    areas = pd.DataFrame(
        {"centroid_x": origins[:, 0], "centroid_y": origins[:, 1]}, index=pd.Index(codes)
    )
    sites = pd.DataFrame(
        {"site_id": [f"s{i}" for i in range(100)], "x": sites_xy[:, 0], "y": sites_xy[:, 1]}
    )
    all_lsoas = model.centroids
    cases: list[tuple[str, Callable[[], object]]] = [
        ("TravelModel.load() from disk (uncached)", load_uncached),
        ("TravelModel.load() (cached)", TravelModel.load),
        ("minutes: 1,000 x 100", lambda: model.minutes(origins, sites_xy)),
        ("minutes: 1,000 x 100 with origin codes", lambda: model.minutes(origins, sites_xy, codes)),
        (
            "travel_matrix: 1,000 areas x 100 sites",
            lambda: travel.travel_matrix(areas, sites, model),
        ),
        (
            f"minutes: {len(all_lsoas):,} LSOAs x 100",
            lambda: model.minutes(all_lsoas, sites_xy),
        ),
    ]
    print(f"| case | median ms ({args.repeats} repeats) |")
    print("|---|---:|")
    for label, fn in cases:
        print(f"| {label} | {median_seconds(fn, args.repeats) * 1000:.2f} |")


if __name__ == "__main__":
    main()
