"""Benchmark: how fast and how lean is loading one ICB footprint?

Usage (from the repository root)::

    python benchmarks/bench_geography.py [--runs 5]

Each run is a fresh Python process (nothing cached): it imports the library,
then times one ``load_footprint(code)`` call (ICB look-up included) and measures its peak Python allocation
(tracemalloc) and its resident-memory growth (psutil RSS delta). The table
shows the median over the runs, for Sussex and three other ICBs (the largest,
the smallest and a mid-sized one by LSOA count), plus ``load_lsoas()`` (all of
England) for comparison. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import gc, json, sys, time, tracemalloc
import psutil
from pathways import geography as geo
icb = sys.argv[1]
proc = psutil.Process()
gc.collect()
rss0 = proc.memory_info().rss
tracemalloc.start()
t0 = time.perf_counter()
gdf = geo.load_footprint(icb) if icb != "ENGLAND" else geo.load_lsoas()
seconds = time.perf_counter() - t0
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
rss1 = proc.memory_info().rss
print(json.dumps({"seconds": seconds, "peak_mb": peak / 2**20, "rss_mb": (rss1 - rss0) / 2**20,
                  "rows": len(gdf), "pop": int(gdf["pop_total"].sum())}))
"""


def run_once(icb: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, icb], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def pick_icbs() -> list[tuple[str, str]]:
    from pathways import geography as geo

    icbs = geo.list_icbs().sort_values(geo.N_LSOAS)
    sussex = geo.resolve_icb("Sussex")
    others = icbs[icbs[geo.ICB_CD] != sussex]
    chosen = [sussex, others.iloc[-1][geo.ICB_CD], others.iloc[len(others) // 2][geo.ICB_CD]]
    chosen.append(others.iloc[0][geo.ICB_CD])
    names = icbs.set_index(geo.ICB_CD)[geo.ICB_SHORT]
    return [(code, names[code]) for code in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark load_footprint")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per ICB (>= 5)")
    args = parser.parse_args(argv)
    targets = [*pick_icbs(), ("ENGLAND", "all England (load_lsoas)")]
    lines = [
        "| footprint | LSOAs | people | median s | peak alloc MB (tracemalloc) | RSS delta MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for code, label in targets:
        runs = [run_once(code) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_mb", "rss_mb")}
        name = label if code == "ENGLAND" else f"{label} ({code})"
        lines.append(
            f"| {name} | {runs[0]['rows']:,} | {runs[0]['pop']:,} | {med['seconds']:.3f} "
            f"| {med['peak_mb']:.1f} | {med['rss_mb']:.1f} |"
        )
    print(f"load_footprint, median of {args.runs} fresh processes each\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
