"""The location core on p-median graphs larger than the bundled ones (800-900 vertices).

OR-Library's pmed26-40 (up to 900 vertices) are not held by the project, so this script
builds graphs of the same family - a random spanning tree plus random edges up to
n^2 / 50 edges (pmed35: 800 vertices, 12,800 edges; pmed40: 900, 16,200), integer
weights 1-100, shortest-path distances - from fixed seeds, and solves each with
``orlib.solve_pmedian`` (the Benders radius method) in its own process. The optimum is
not known in advance: the solver's proof (status OPTIMAL, bound equal to objective) is
what is checked. Prints a Markdown table: vertices, p, status, objective, bound,
seconds, peak memory.

Usage: python benchmarks/bench_pmedian_large.py [--time-limit 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: (vertices, p, seed): the sizes of pmed35-40, p as in that range (5 to n / 10)
CASES = ((800, 5, 3), (800, 80, 4), (900, 5, 2), (900, 90, 1))

CHILD = """
import json, resource, sys, time
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
sys.path.insert(0, sys.argv[5])
from pathways.optimise.orlib import PMedianInstance, solve_pmedian
n, p, seed, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = np.random.default_rng(seed)
m = n * n // 50
order = rng.permutation(n)
rows = list(order[1:])
cols = [order[rng.integers(0, k)] for k in range(1, n)]  # a random spanning tree
while len(rows) < m:
    a, b = rng.integers(0, n, 2)
    if a != b:
        rows.append(a)
        cols.append(b)
w = rng.integers(1, 101, len(rows)).astype(float)
g = csr_matrix((np.r_[w, w], (np.r_[rows, cols], np.r_[cols, rows])), shape=(n, n))
d = shortest_path(g, directed=False)
t0 = time.perf_counter()
r = solve_pmedian(PMedianInstance(d, p), time_limit_s=limit)
print(json.dumps({"status": r.status, "objective": r.objective, "bound": r.best_bound,
                  "seconds": time.perf_counter() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time-limit", type=float, default=600.0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| vertices | p | status | objective | bound | seconds | peak MB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, p, seed in CASES:
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(p), str(seed), str(args.time_limit), str(REPO)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode != 0:
            print(f"| {n} | {p} | failed: {run.stderr.strip().splitlines()[-1][:80]} | | | | |")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"| {n} | {p} | {r['status']} | {r['objective']:,.0f} | {r['bound']:,.0f} | "
              f"{r['seconds']:.1f} | {r['peak_mb']:.0f} |")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
