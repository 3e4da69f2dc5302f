"""The optimiser reports where its search stands while HiGHS works, not only between rounds.

HiGHS prints a branch-and-bound table (best bound, best solution, gap); the optimiser
reads each row as it arrives and passes it to the progress callback, which the app and
the command line show. The rows below are HiGHS's own, copied from a run on the demo.
"""

from __future__ import annotations

import math
import re

import pytest

from pathways.optimise import SolverOptions, optimise_with_baselines
from pathways.optimise.model import parse_highs_row

from .test_optimise_never_breaks import limited_scenario

ROWS = [
    ("         0       0         0   0.00%   0               21712.004517     100.00%"
     "        0      0      0         0     0.3s", (0.0, 21712.004517)),
    (" L       0       0         0   0.00%   21138.775346    21636.70706        2.30%"
     "     1019     51     99     10277    22.8s", (21138.775346, 21636.70706)),
    ("         2       2         1   0.00%   21154.471677    21636.70706        2.23%"
     "      578     29      2     50973    40.0s", (21154.471677, 21636.70706)),
    (" T      37      12        20  61.04%   -inf            inf                  inf"
     "        0      0      3       812     1.2s", (math.nan, math.nan)),
]  # fmt: skip

NOT_ROWS = [
    "Src  Proc. InQueue |  Leaves   Expl. | BestBound       BestSol              Gap |",
    "Model after restart has 8850 rows, 4756 cols (506 bin., 5 int., 4 impl.), and 44272 nonzeros",
    "  Dual bound        21154.4716765",
    "4.7% inactive integer columns, restarting",
    "",
]


@pytest.mark.parametrize(("line", "expected"), ROWS)
def test_reads_bound_and_best_from_a_table_row(line, expected):
    got = parse_highs_row(line)
    assert got is not None
    for g, e in zip(got, expected, strict=True):
        assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e)


@pytest.mark.parametrize("line", NOT_ROWS)
def test_other_log_lines_are_not_rows(line):
    assert parse_highs_row(line) is None


def test_progress_shows_live_bounds_that_are_valid():
    """During the search the progress shows bounds; none is above the returned plan.

    This scenario's warm start leaves some choices open, so HiGHS first solves a smaller
    MIP to complete it and logs that table too (with the smaller problem's bound, above
    the plan's objective here); those rows must not be shown as the search's bound.
    """
    seen: list[str] = []
    opts = SolverOptions(time_limit_s=600, node_limit=10, progress=lambda m, f: seen.append(m))
    plan = optimise_with_baselines(limited_scenario(12), opts).plan
    live = [m for m in seen if m.startswith("searching")]
    assert live, f"no live progress among {seen}"
    bounds = [float(b.replace(",", "")) for m in live for b in re.findall(r"bound ([\d,.]+)", m)]
    assert bounds, live
    assert max(bounds) <= plan.solver.objective * (1 + 1e-6)
