"""Batch runner benchmarks; prints a table (numbers go into docs/batch.md).

(a) Throughput of Monte Carlo evaluate cases on the Sussex demo with 1 and 2 local
    worker processes, and the speed-up::

        python benchmarks/bench_batch.py --cases 200 --repeats 3

(b) Optimise every ICB's demo-style scenario end to end (time limit per case)::

        python benchmarks/bench_batch.py --all-icbs --time-limit 60 --gap 0.005 --workers 2

Wall times include starting the worker processes and preparing each footprint once
per process; "steady" throughput counts from the first finished chunk to the last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pathways.batch import BatchProgress, batch_spec_from_dict, run_batch  # noqa: E402

SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"


def mc_spec(samples: int) -> dict:
    return {
        "name": f"bench-mc-{samples}",
        "base": str(SUSSEX),
        "run": "evaluate",
        "monte_carlo": {
            "samples": samples,
            "seed": 20240601,
            "parameters": {
                "demand.episodes_per_100k_per_year": {
                    "dist": "triangular", "low": 1100, "mode": 1376, "high": 1650,
                    "unit": "episodes per 100k per year",
                },
                "queues.inpatient_los_days": {
                    "dist": "lognormal", "median": 33, "sigma": 0.15, "unit": "days",
                },
                "pathway.crisis_house_full_to_inpatient_share": {
                    "dist": "uniform", "low": 0.3, "high": 0.7, "unit": "share",
                },
            },
        },
    }  # fmt: skip


def timed_run(spec_dict: dict, workers: int, executor: str = "local") -> dict:
    spec = batch_spec_from_dict(spec_dict)
    marks: list[float] = []

    def progress(p: BatchProgress) -> None:
        marks.append(time.perf_counter())
        if p.done - p.skipped > 0 and len(marks) == 2:
            first[0] = p.done - p.skipped

    first = [0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_batch(spec, Path(tmp) / "out", executor=executor, workers=workers,
                           progress=progress)  # fmt: skip
        wall = time.perf_counter() - t0
    steady = None
    if len(marks) > 2 and marks[-1] > marks[1]:
        steady = (result.ran - first[0]) / (marks[-1] - marks[1])
    return {"wall_s": wall, "cases_per_s": result.ran / wall, "steady_per_s": steady,
            "result": result}  # fmt: skip


def bench_throughput(cases: int, repeats: int) -> None:
    rows = {}
    for workers in (1, 2):
        runs = [timed_run(mc_spec(cases), workers) for _ in range(repeats)]
        failed = sum(r["result"].failed for r in runs)
        rows[workers] = {
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "cases_per_s": statistics.median(r["cases_per_s"] for r in runs),
            "steady_per_s": statistics.median(
                r["steady_per_s"] for r in runs if r["steady_per_s"] is not None
            ),
            "failed": failed,
        }
    print(f"\nMonte Carlo evaluate, Sussex demo, {cases} cases, median of {repeats} runs")
    print(f"{'workers':>8} {'wall s':>8} {'cases/s':>9} {'steady cases/s':>15} {'failed':>7}")
    for w, r in rows.items():
        print(f"{w:>8} {r['wall_s']:>8.2f} {r['cases_per_s']:>9.1f} {r['steady_per_s']:>15.1f} "
              f"{r['failed']:>7}")  # fmt: skip
    print(f"speed-up 2 vs 1 worker: wall {rows[2]['cases_per_s'] / rows[1]['cases_per_s']:.2f}x, "
          f"steady {rows[2]['steady_per_s'] / rows[1]['steady_per_s']:.2f}x")  # fmt: skip


def bench_all_icbs(time_limit: float, gap: float, workers: int, out: str | None) -> None:
    import pandas as pd

    from pathways.geography import list_icbs

    spec = {
        "name": f"bench-all-icbs-{time_limit:g}s",
        "icbs": "all",
        "run": "optimise",
        "solver": {"time_limit_s": time_limit, "gap": gap},
    }
    t0 = time.perf_counter()
    if out:
        result = run_batch(batch_spec_from_dict(spec), out, workers=workers)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_batch(batch_spec_from_dict(spec), Path(tmp) / "out", workers=workers)
    wall = time.perf_counter() - t0
    names = list_icbs().set_index("icb_cd")["icb_short"]
    frame = result.results.copy()
    frame["icb"] = frame["footprint"].map(names)
    cols = ["footprint", "icb", "status", "solver_status", "gap", "solver_seconds", "seconds"]
    with pd.option_context("display.width", 160, "display.max_rows", 100):
        print(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    ok = frame[frame["status"] == "ok"]
    print(
        f"\n{len(frame)} ICBs: {len(ok)} solved, {len(frame) - len(ok)} failed; "
        f"median solve {ok['solver_seconds'].median():.1f} s, max gap {ok['gap'].max():.4f}; "
        f"total wall time {wall / 60:.1f} min with {workers} worker(s)"
    )
    if len(frame) > len(ok):
        for row in frame[frame["status"] != "ok"].itertuples():
            print(f"  {row.footprint}: {str(row.error)[:160]}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, default=200, help="Monte Carlo evaluate cases")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--all-icbs", action="store_true", help="optimise all 42 ICBs instead")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--gap", type=float, default=0.005)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="keep the all-ICB outputs in this folder")
    args = ap.parse_args(argv)
    if args.all_icbs:
        bench_all_icbs(args.time_limit, args.gap, args.workers, args.out)
    else:
        bench_throughput(args.cases, args.repeats)


if __name__ == "__main__":
    main()
