"""Batch runner benchmarks; prints a table (numbers go into docs/batch.md).

(a) Throughput of Monte Carlo evaluate cases on the Sussex demo with 1 and 2 local
    worker processes, and the speed-up::

        python benchmarks/bench_batch.py --cases 200 --repeats 3

(b) Optimise every ICB's demo-style scenario end to end (time limit per case)::

        python benchmarks/bench_batch.py --all-icbs --time-limit 60 --gap 0.005 --workers 2

Wall times include starting the worker processes and preparing the footprint once per
process; the "marginal" rate is ``cases / (wall(2 x cases) - wall(cases))``, which leaves
those fixed costs out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pathways.batch import batch_spec_from_dict, run_batch  # noqa: E402

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


def timed_run(spec_dict: dict, workers: int, executor: str = "local") -> tuple[float, int]:
    """Wall seconds of one batch run in a fresh folder, and the number of failed cases."""
    spec = batch_spec_from_dict(spec_dict)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_batch(spec, Path(tmp) / "out", executor=executor, workers=workers)
        return time.perf_counter() - t0, result.failed


def bench_throughput(cases: int, repeats: int) -> None:
    """Wall time for ``cases`` and ``2 * cases``: the difference gives the marginal rate,
    free of process start-up and footprint preparation."""
    walls: dict[int, list[float]] = {1: [], 2: []}
    extra: dict[int, list[float]] = {1: [], 2: []}
    failed = {1: 0, 2: 0}
    load = os.getloadavg()[0]
    for _ in range(repeats):
        for workers in (1, 2):  # interleaved, so load from other work hits both alike
            t1, f1 = timed_run(mc_spec(cases), workers)
            t2, f2 = timed_run(mc_spec(2 * cases), workers)
            walls[workers].append(t1)
            extra[workers].append(t2 - t1)
            failed[workers] += f1 + f2
    rows = {
        w: {
            "wall_s": statistics.median(walls[w]),
            "cases_per_s": cases / statistics.median(walls[w]),
            "marginal_per_s": cases / statistics.median(extra[w]),
            "failed": failed[w],
        }
        for w in (1, 2)
    }
    ceiling = statistics.median(machine_ceiling(cases) for _ in range(repeats))
    print(f"load average before: {load:.2f}, after: {os.getloadavg()[0]:.2f}")
    print(f"\nMonte Carlo evaluate, Sussex demo, {cases} cases, median of {repeats} runs")
    print(f"{'workers':>8} {'wall s':>8} {'cases/s':>9} {'marginal cases/s':>17} {'failed':>7}")
    for w, r in rows.items():
        print(f"{w:>8} {r['wall_s']:>8.2f} {r['cases_per_s']:>9.1f} {r['marginal_per_s']:>17.1f} "
              f"{r['failed']:>7}")  # fmt: skip
    if any(r["failed"] for r in rows.values()):
        print("WARNING: some cases failed, so these timings do not measure real evaluations")
    print(f"speed-up 2 vs 1 worker: wall {rows[2]['cases_per_s'] / rows[1]['cases_per_s']:.2f}x, "
          f"marginal {rows[2]['marginal_per_s'] / rows[1]['marginal_per_s']:.2f}x; "
          f"two plain evaluate loops vs one on this machine now: {ceiling:.2f}x")  # fmt: skip


LOOP = """
import sys, time
from pathways.instance import prepare
from pathways.kpis import evaluate
from pathways.scenario import load_scenario, with_changes
s = load_scenario(sys.argv[1]); evaluate(s)
t = time.perf_counter()
for i in range(int(sys.argv[2])):
    evaluate(prepare(with_changes(s, {"demand.growth_factor": 1 + i / 1e4})))
print(time.perf_counter() - t)
"""


def machine_ceiling(cases: int) -> float:
    """Speed-up of two plain evaluate loops in parallel over one: what the machine allows now."""

    def loops(n: int) -> list[float]:
        procs = [
            subprocess.Popen([sys.executable, "-c", LOOP, str(SUSSEX), str(cases)],
                             stdout=subprocess.PIPE, text=True)
            for _ in range(n)
        ]  # fmt: skip
        return [float(p.communicate()[0]) for p in procs]

    one = loops(1)[0]
    two = max(loops(2))
    return 2 * one / two


def _breaches(out_dir: Path, row) -> str:
    """Re-judge a case's saved plan with evaluate: the limits it breaks ('' for none)."""
    from pathways.constraints import breaches
    from pathways.icb import make_icb_scenario
    from pathways.instance import prepare
    from pathways.kpis import evaluate
    from pathways.plan import baseline_plan, load_plan

    path = Path(out_dir) / "plans" / f"{row.case_id}.yaml"
    if row.status != "ok" or not path.exists():
        return "-"
    inst = prepare(make_icb_scenario(row.footprint))
    today = evaluate(inst, baseline_plan(inst.scenario))
    found = breaches(inst, evaluate(inst, load_plan(path)), today)
    return "; ".join(b.constraint for b in found) or "none"


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
    frame["breaches"] = [_breaches(result.out_dir, row) for row in frame.itertuples()]
    cols = ["footprint", "icb", "status", "solver_status", "gap", "solver_seconds", "seconds",
            "breaches"]  # fmt: skip
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
