"""Classic location-allocation benchmarks from Beasley's OR-Library.

Two problem families prove the optimiser's location-allocation core against
published optima:

* capacitated facility (warehouse) location, ``capXX`` files, with splittable
  demand (:class:`CflpInstance`, :func:`solve_cflp`);
* p-median, ``pmedXX`` files, distances being shortest paths over a graph
  (:class:`PMedianInstance`, :func:`solve_pmedian`).

Both are solved as mixed-integer programmes with OR-Tools MathOpt and HiGHS
(SCIP on request); ``docs/orlib.md`` records why and how fast. Every solution
can be re-scored by an independent judge (:func:`evaluate_cflp`,
:func:`evaluate_pmedian`) that knows nothing of the model.

Source: Beasley, J.E. "OR-Library: distributing test problems by electronic
mail", J. Opl Res. Soc. 41(11) (1990) 1069-1072.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ortools.math_opt.python import mathopt
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path

from pathways.errors import InputError, Problem
from pathways.optimise import location

logger = logging.getLogger(__name__)

#: Problem names used in results and JSON.
CFLP = "cflp"
PMEDIAN = "pmedian"

#: OR-Tools MathOpt backends this module accepts.
SOLVERS: dict[str, mathopt.SolverType] = {
    "highs": mathopt.SolverType.HIGHS,
    "scip": mathopt.SolverType.GSCIP,
}
DEFAULT_SOLVER = "highs"

#: Gap at which a MIP counts as solved. HiGHS defaults to a 1e-4 relative gap,
#: far too loose to reproduce published optima to 1e-6.
RELATIVE_GAP = location.RELATIVE_GAP
ABSOLUTE_GAP = location.ABSOLUTE_GAP


#: Tolerance used by the judges when checking a solution is feasible.
FEASIBILITY_TOL = 1e-6

#: Word some OR-Library files (capa, capb, capc) print instead of a capacity.
CAPACITY_WORD = "capacity"


# ---------------------------------------------------------------------------
# Instances and results
# ---------------------------------------------------------------------------


def _frozen_array(values: Any, ndim: int, name: str) -> np.ndarray:
    arr = np.array(values, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class CflpInstance:
    """Capacitated facility location with splittable demand.

    Attributes
    ----------
    capacities : numpy.ndarray
        Shape ``(m,)``, capacity of each facility (warehouse).
    fixed_costs : numpy.ndarray
        Shape ``(m,)``, cost of opening each facility.
    demands : numpy.ndarray
        Shape ``(n,)``, demand of each customer.
    alloc_costs : numpy.ndarray
        Shape ``(n, m)``, cost of serving ALL of customer ``j``'s demand from
        facility ``i`` (serving a fraction costs that fraction).
    """

    capacities: np.ndarray
    fixed_costs: np.ndarray
    demands: np.ndarray
    alloc_costs: np.ndarray

    def __post_init__(self) -> None:
        for name, ndim in (
            ("capacities", 1),
            ("fixed_costs", 1),
            ("demands", 1),
            ("alloc_costs", 2),
        ):
            object.__setattr__(self, name, _frozen_array(getattr(self, name), ndim, name))
        m, n = self.n_facilities, self.n_customers
        if self.fixed_costs.shape != (m,):
            raise ValueError(f"fixed_costs has shape {self.fixed_costs.shape}, expected ({m},)")
        if self.alloc_costs.shape != (n, m):
            raise ValueError(f"alloc_costs has shape {self.alloc_costs.shape}, expected ({n}, {m})")
        if np.any(self.capacities < 0) or np.any(self.demands < 0):
            raise ValueError("capacities and demands must be non-negative")

    @property
    def n_facilities(self) -> int:
        """Number of candidate facilities ``m``."""
        return int(self.capacities.shape[0])

    @property
    def n_customers(self) -> int:
        """Number of customers ``n``."""
        return int(self.demands.shape[0])


@dataclass(frozen=True, eq=False)
class PMedianInstance:
    """Uncapacitated p-median: every customer is also a candidate facility.

    Attributes
    ----------
    distances : numpy.ndarray
        Shape ``(n, n)``, ``distances[i, j]`` is the cost of serving customer
        ``i`` (demand 1) from a median at ``j``.
    p : int
        Number of medians to open.
    """

    distances: np.ndarray
    p: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "distances", _frozen_array(self.distances, 2, "distances"))
        n = self.distances.shape[0]
        if self.distances.shape != (n, n):
            raise ValueError(f"distances must be square, got shape {self.distances.shape}")
        if not 1 <= self.p <= n:
            raise ValueError(f"p must be between 1 and {n}, got {self.p}")

    @property
    def n_vertices(self) -> int:
        """Number of customers (and candidate medians) ``n``."""
        return int(self.distances.shape[0])


@dataclass(frozen=True)
class OrlibResult:
    """Outcome of one benchmark solve.

    Attributes
    ----------
    objective : float
        Objective of the best solution found (``nan`` if none).
    status : str
        ``"OPTIMAL"``, ``"FEASIBLE"`` (limit reached with a solution),
        ``"NO_SOLUTION"``, ``"INFEASIBLE"``, or another termination reason.
    seconds : float
        Wall-clock time to build and solve the model (parsing excluded).
    best_bound : float
        Best proven lower bound on the objective.
    gap : float
        ``|objective - best_bound| / max(|objective|, 1)``.
    open_facilities : tuple of int
        0-based indices of the open facilities (medians), ascending.
    allocation : numpy.ndarray or None
        CFLP: ``(n, m)`` fraction of each customer's demand served by each
        facility. p-median: ``(n,)`` 0-based median serving each customer.
        Not part of :meth:`to_json`.
    problem, solver, instance : str
        What was solved, by which backend, and the instance name (file stem).
    """

    objective: float
    status: str
    seconds: float
    best_bound: float
    gap: float
    open_facilities: tuple[int, ...]
    allocation: np.ndarray | None = field(default=None, repr=False, compare=False)
    problem: str = ""
    solver: str = ""
    instance: str = ""

    @property
    def is_optimal(self) -> bool:
        """True when the solver proved optimality."""
        return self.status == "OPTIMAL"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-serialisable summary (non-finite numbers become ``None``)."""
        return {
            "instance": self.instance,
            "problem": self.problem,
            "solver": self.solver,
            "status": self.status,
            "objective": _json_number(self.objective),
            "best_bound": _json_number(self.best_bound),
            "gap": _json_number(self.gap),
            "seconds": _json_number(self.seconds),
            "open_facilities": [int(i) for i in self.open_facilities],
        }


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def format_result(result: OrlibResult) -> str:
    """One-line human summary of a benchmark result.

    Examples
    --------
    ``cap41 (cflp, highs): OPTIMAL objective 1040444.375, bound 1040444.375,
    gap 0.0000%, 0.05 s, 7 open``
    """
    name = result.instance or "instance"
    what = ", ".join(s for s in (result.problem, result.solver) if s)
    head = f"{name} ({what})" if what else name
    if not math.isfinite(result.objective):
        return f"{head}: {result.status}, no solution, {result.seconds:.2f} s"
    gap = f"{100 * result.gap:.4f}%" if math.isfinite(result.gap) else "n/a"
    return (
        f"{head}: {result.status} objective {result.objective:.3f}, "
        f"bound {result.best_bound:.3f}, gap {gap}, {result.seconds:.2f} s, "
        f"{len(result.open_facilities)} open"
    )


# ---------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------


def _tokens(path: Path) -> Iterator[tuple[str, int]]:
    """Yield ``(token, 1-based line number)`` over a whitespace-separated file."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            for tok in line.split():
                yield tok, line_no


class _TokenReader:
    """Pull typed numbers from a token stream, failing with file and line."""

    def __init__(self, path: Path):
        self.path = path
        self._it = _tokens(path)
        self.last_line = 0

    def _next(self, what: str) -> tuple[str, int]:
        try:
            tok, line = next(self._it)
        except StopIteration:
            raise InputError(
                Problem(
                    str(self.path),
                    self.last_line or None,
                    what,
                    f"file ends early (after line {self.last_line}); expected {what}",
                )
            ) from None
        self.last_line = line
        return tok, line

    def word_or_number(self, what: str, word: str) -> tuple[float | None, int]:
        """Next number with its line; ``None`` if the token is ``word``."""
        tok, line = self._next(what)
        if tok.lower() == word:
            return None, line
        return self._parse(tok, line, what), line

    def number(self, what: str) -> float:
        """Next finite number."""
        tok, line = self._next(what)
        return self._parse(tok, line, what)

    def _parse(self, tok: str, line: int, what: str) -> float:
        try:
            value = float(tok)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(
                Problem(str(self.path), line, what, f"expected a number, found {tok!r}")
            )
        return value

    def count(self, what: str) -> int:
        """Next token as a positive integer."""
        value = self.number(what)
        if value != int(value) or value < 1:
            raise InputError(
                Problem(
                    str(self.path),
                    self.last_line,
                    what,
                    f"expected a positive whole number, found {value:g}",
                )
            )
        return int(value)

    def expect_end(self) -> None:
        """Fail if any token is left."""
        for tok, line in self._it:
            raise InputError(
                Problem(
                    str(self.path),
                    line,
                    None,
                    f"unexpected data {tok!r} after the last customer",
                )
            )


def read_cap(path: str | Path, capacity: float | None = None) -> CflpInstance:
    """Read an OR-Library capacitated warehouse location file (``capXX``).

    The file is a stream of numbers (line breaks do not matter): ``m n``;
    ``m`` pairs ``capacity fixed_cost``; then per customer its demand followed
    by ``m`` costs of serving all of that demand from each warehouse.

    Parameters
    ----------
    path : str or Path
        The file.
    capacity : float, optional
        Capacity for warehouses whose capacity is the literal word
        ``capacity`` (OR-Library ``capa``/``capb``/``capc``). Numeric
        capacities in the file are kept.

    Raises
    ------
    InputError
        Naming the file, line and field of the first malformed value.
    """
    path = Path(path)
    _check_text_file(path)
    reader = _TokenReader(path)
    m = reader.count("number of warehouses")
    n = reader.count("number of customers")
    capacities = np.empty(m)
    fixed = np.empty(m)
    used_override = False
    for i in range(m):
        field_name = f"capacity of warehouse {i + 1}"
        cap, line = reader.word_or_number(field_name, CAPACITY_WORD)
        if cap is None:
            if capacity is None:
                raise InputError(
                    Problem(
                        str(path),
                        line,
                        field_name,
                        "capacity is the word 'capacity' (as in OR-Library capa/capb/capc); "
                        "give the capacity to use (--capacity N)",
                    )
                )
            cap, used_override = float(capacity), True
        if cap < 0:
            raise InputError(Problem(str(path), line, field_name, f"must be >= 0, found {cap:g}"))
        capacities[i] = cap
        fixed[i] = reader.number(f"fixed cost of warehouse {i + 1}")
    if capacity is not None and not used_override:
        logger.warning(
            "%s: capacities are numbers in the file; capacity=%s ignored", path, capacity
        )
    demands = np.empty(n)
    costs = np.empty((n, m))
    for j in range(n):
        field_name = f"demand of customer {j + 1}"
        d = reader.number(field_name)
        if d < 0:
            raise InputError(
                Problem(str(path), reader.last_line, field_name, f"must be >= 0, found {d:g}")
            )
        demands[j] = d
        for i in range(m):
            costs[j, i] = reader.number(f"cost of customer {j + 1} at warehouse {i + 1}")
    reader.expect_end()
    return CflpInstance(capacities, fixed, demands, costs)


def read_pmed(path: str | Path) -> PMedianInstance:
    """Read an OR-Library p-median file (``pmedXX``).

    Line 1 is ``n_vertices n_edges p``; then one line ``i j cost`` per
    undirected edge (1-based vertices). When an edge is listed twice the last
    line counts. Distances are all-pairs shortest paths over the graph.

    Raises
    ------
    InputError
        Naming the file and line of a malformed edge, or the file if the graph
        is not connected.
    """
    path = Path(path)
    _check_text_file(path)
    src = str(path)
    rows: list[tuple[int, list[str]]] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if parts:
                rows.append((line_no, parts))
    if not rows:
        raise InputError(Problem(src, None, None, "file is empty; expected 'n_vertices n_edges p'"))

    def numbers(line_no: int, parts: list[str], names: Sequence[str]) -> list[float]:
        if len(parts) != len(names):
            raise InputError(
                Problem(
                    src,
                    line_no,
                    None,
                    f"expected {len(names)} numbers ({' '.join(names)}), found {len(parts)}",
                )
            )
        out = []
        for tok, name in zip(parts, names, strict=True):
            try:
                value = float(tok)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise InputError(Problem(src, line_no, name, f"expected a number, found {tok!r}"))
            out.append(value)
        return out

    def ints(line_no: int, parts: list[str], names: Sequence[str]) -> list[int]:
        values = numbers(line_no, parts, names)
        for value, name in zip(values, names, strict=True):
            if value != int(value):
                raise InputError(
                    Problem(src, line_no, name, f"expected a whole number, found {value:g}")
                )
        return [int(v) for v in values]

    head_line, head = rows[0]
    n, n_edges, p = ints(head_line, head, ("n_vertices", "n_edges", "p"))
    for value, name in ((n, "n_vertices"), (n_edges, "n_edges"), (p, "p")):
        if value < 1:
            raise InputError(Problem(src, head_line, name, f"must be >= 1, found {value}"))
    if p > n:
        raise InputError(Problem(src, head_line, "p", f"must be at most n_vertices={n}, found {p}"))
    edges = rows[1:]
    if len(edges) != n_edges:
        line_no = edges[n_edges][0] if len(edges) > n_edges else (rows[-1][0])
        raise InputError(
            Problem(src, line_no, None, f"header promises {n_edges} edges, file has {len(edges)}")
        )
    weights = np.full((n, n), np.inf)
    for line_no, parts in edges:
        cost = numbers(line_no, parts, ("i", "j", "cost"))[2]
        i, j = ints(line_no, parts[:2], ("i", "j"))
        for value, name in ((i, "i"), (j, "j")):
            if not 1 <= value <= n:
                raise InputError(
                    Problem(src, line_no, name, f"vertex must be between 1 and {n}, found {value}")
                )
        if cost < 0:
            raise InputError(Problem(src, line_no, "cost", f"must be >= 0, found {cost:g}"))
        # Plain assignment: a later line for the same edge replaces the earlier one.
        weights[i - 1, j - 1] = weights[j - 1, i - 1] = cost
    np.fill_diagonal(weights, 0.0)
    # null_value=inf keeps zero-cost edges as edges.
    graph = csgraph_from_dense(weights, null_value=np.inf)
    distances = shortest_path(graph, method="FW", directed=False)
    unreachable = np.flatnonzero(~np.isfinite(distances[0]))
    if unreachable.size:
        raise InputError(
            Problem(
                src,
                None,
                None,
                f"graph is not connected: vertex {unreachable[0] + 1} cannot be reached from vertex 1",
            )
        )
    return PMedianInstance(distances, p)


def _check_text_file(path: Path) -> None:
    """Raise an InputError unless ``path`` is a readable text file.

    A missing file, a folder, a file that cannot be read and a binary file (a NUL
    byte, or bytes that are not UTF-8, in its first 64 KiB) are refused with the
    file's name, before any parsing.
    """
    src = str(path)
    try:
        if not path.exists():
            raise InputError(Problem(src, None, None, "file not found"))
        if path.is_dir():
            raise InputError(
                Problem(src, None, None, "is a folder; expected an OR-Library text file")
            )
        if not path.is_file():  # a pipe or a device: reading might never end
            raise InputError(
                Problem(src, None, None, "is not a regular file; expected an OR-Library text file")
            )
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError as err:
        raise InputError(
            Problem(src, None, None, f"cannot be read ({err.strerror or err})")
        ) from None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        binary = True
    else:
        binary = b"\x00" in head
    if binary:
        raise InputError(
            Problem(src, None, None, "not a text file; expected an OR-Library capXX or pmedXX file")
        )


def read_orlib(path: str | Path, capacity: float | None = None) -> CflpInstance | PMedianInstance:
    """Read a ``capXX`` or ``pmedXX`` file, telling them apart.

    The file name decides when it starts with ``cap`` or ``pmed``; otherwise
    the first line does (two numbers: capacitated location, three: p-median).
    A missing, unreadable or binary file raises an :class:`InputError`.
    """
    path = Path(path)
    _check_text_file(path)
    stem = path.name.lower()
    if stem.startswith("cap"):
        return read_cap(path, capacity=capacity)
    if stem.startswith("pmed"):
        return read_pmed(path)
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 2:
                return read_cap(path, capacity=capacity)
            if len(parts) == 3:
                return read_pmed(path)
            raise InputError(
                Problem(
                    str(path),
                    line_no,
                    None,
                    "cannot tell the problem: expected 'm n' (capacitated location) "
                    "or 'n_vertices n_edges p' (p-median) on the first line",
                )
            )
    raise InputError(Problem(str(path), None, None, "file is empty"))


# ---------------------------------------------------------------------------
# Capacitated facility location model
# ---------------------------------------------------------------------------
#
# Facilities i = 1..m, customers j = 1..n.
# Data: s_i capacity, f_i fixed cost, d_j demand, c_ij cost of serving all of
#       customer j's demand from facility i.
# Variables: y_i in {0, 1}   facility i is open,
#            x_ij in [0, 1]  fraction of customer j's demand served by i.
#
#   (1) minimise  sum_i f_i y_i + sum_ij c_ij x_ij
#   (2) sum_i x_ij = 1                  for all j   demand met
#   (3) sum_j d_j x_ij <= s_i y_i       for all i   capacity of open facilities
#   (4) x_ij <= y_i                     for all i,j only open facilities serve
#   (5) sum_i s_i y_i >= sum_j d_j                  enough capacity opened
#
# (4) is implied by (3) for integer y but tightens the LP relaxation a lot
# (the "strong" formulation); (5) is implied by (2)-(3) and helps the solver's
# cover cuts when capacities are tight. Every family is a building block of
# pathways.optimise.location.


@dataclass(frozen=True)
class CflpVars:
    """Decision variables of :func:`build_cflp_model`."""

    open: list[mathopt.Variable]  # y_i
    serve: list[list[mathopt.Variable]]  # x_ij indexed [j][i]


def build_cflp_model(
    inst: CflpInstance, links: Sequence[tuple[int, int]] | None = None
) -> tuple[mathopt.Model, CflpVars]:
    """MathOpt model of formulation (1)-(4) above, from the location core.

    ``links`` lists the ``(customer, facility)`` pairs that get a row (4);
    all of them by default. (5) is added by :func:`solve_cflp`, not here.
    """
    model = mathopt.Model(name="cflp")
    y = location.add_sites(model, inst.fixed_costs)  # (1) fixed costs
    x = location.add_allocation(model, inst.alloc_costs)  # (1) allocation costs
    location.add_demand_met(model, x)  # (2)
    location.add_capacity(model, x, y, inst.demands, inst.capacities)  # (3)
    location.add_serve_only_open(model, x, y, links)  # (4)
    return model, CflpVars(open=y, serve=x)


# ---------------------------------------------------------------------------
# p-median models
# ---------------------------------------------------------------------------
#
# Customers i = 1..n, candidate medians j = 1..n, d_ij distance.
#
# Assignment formulation (method="assignment"; y_j median, x_ij in [0, 1]
# customer i served by j):
#
#   (1) minimise  sum_ij d_ij x_ij
#   (2) sum_j x_ij = 1          for all i     every customer assigned
#   (3) x_ij <= y_j             for all i,j   only to a median
#   (4) sum_j y_j = p                         exactly p medians
#
# x may stay continuous: for integer y an optimal x picks a nearest median.
#
# Radius formulation by Benders decomposition (method="benders", the
# default): y_j and one theta_i per customer, with closest-assignment cuts
# added as needed; see pathways.optimise.location.solve_pmedian_benders.


@dataclass(frozen=True)
class PMedianVars:
    """Decision variables of :func:`build_pmedian_model`."""

    median: list[mathopt.Variable]  # y_j
    assign: list[list[mathopt.Variable]]  # x_ij indexed [i][j]


def build_pmedian_model(inst: PMedianInstance) -> tuple[mathopt.Model, PMedianVars]:
    """MathOpt model of the assignment formulation (1)-(4) above, from the location core."""
    model = mathopt.Model(name="pmedian")
    y = location.add_sites(model, np.zeros(inst.n_vertices), name="median")
    x = location.add_allocation(model, inst.distances, name="assign")  # (1)
    location.add_demand_met(model, x)  # (2)
    location.add_serve_only_open(model, x, y)  # (3)
    location.add_cardinality(model, y, inst.p)  # (4)
    return model, PMedianVars(median=y, assign=x)


# ---------------------------------------------------------------------------
# Solving
# ---------------------------------------------------------------------------


def _params(solver: str, time_limit_s: float, threads: int) -> mathopt.SolveParameters:
    if time_limit_s <= 0:
        raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    params = mathopt.SolveParameters(
        time_limit=dt.timedelta(seconds=time_limit_s),
        relative_gap_tolerance=RELATIVE_GAP,
        absolute_gap_tolerance=ABSOLUTE_GAP,
    )
    if solver == "highs":
        # MathOpt refuses a thread count for HiGHS (it is a HiGHS global); its
        # branch and bound is serial anyway.
        logger.debug("HiGHS: threads=%d not passed on", threads)
    else:
        params.threads = threads
    return params


def _solve(
    model: mathopt.Model,
    solver: str,
    params: mathopt.SolveParameters,
    model_params: mathopt.ModelSolveParameters | None = None,
) -> tuple[mathopt.SolveResult, str]:
    result = mathopt.solve(model, SOLVERS[solver], params=params, model_params=model_params)
    status = location.status_name(result)
    if status != "OPTIMAL":
        logger.warning("%s with %s: %s (%s)", model.name, solver, status, result.termination.detail)
    return result, status


def _objective_and_bound(result: mathopt.SolveResult) -> tuple[float, float, float]:
    objective = result.objective_value() if result.has_primal_feasible_solution() else math.nan
    bound = result.termination.objective_bounds.dual_bound
    if math.isfinite(objective) and math.isfinite(bound):
        gap = abs(objective - bound) / max(abs(objective), 1.0)
    else:
        gap = math.nan
    return objective, bound, gap


def solve_cflp(
    inst: CflpInstance,
    time_limit_s: float = 60,
    threads: int = 1,
    solver: str = DEFAULT_SOLVER,
    links: str = "all",
    heuristic: bool = True,
    lagrangian: bool = True,
) -> OrlibResult:
    """Solve a capacitated facility location instance to proven optimality.

    Parameters
    ----------
    inst : CflpInstance
    time_limit_s : float
        Wall-clock limit for the whole solve, seconds.
    threads : int
        Threads for SCIP (HiGHS runs its MIP search on one thread).
    solver : {"highs", "scip"}
        MathOpt backend.
    links : {"all", "lazy"}
        Linking rows ``x_ij <= y_i``: all of them up front (the strong
        formulation, faster on every OR-Library instance, see docs/orlib.md),
        or only those the LP relaxation violates, added in rounds before the
        integer solve (:func:`pathways.optimise.location.add_links_lazily`).
    heuristic : bool
        Hand the solver a plan from :func:`pathways.optimise.location.cflp_heuristic`
        (transportation-LP start, drop/add/swap local search) as a solution
        hint, with at most a tenth of the time limit spent on it.
    lagrangian : bool
        With ``heuristic``: improve that plan and fix sites by a Lagrangian
        relaxation of the demand rows
        (:func:`pathways.optimise.location.cflp_lagrangian`, at most a quarter
        of the time limit); the MIP then keeps only the sites not proven
        closed, with those proven open fixed open. The bound reported is
        valid for the whole instance.

    Returns
    -------
    OrlibResult
        ``status`` says whether optimality was proven; ``allocation`` holds the
        ``(n, m)`` demand fractions when a solution was found.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    if links not in ("all", "lazy"):
        raise ValueError(f"links must be 'all' or 'lazy', got {links!r}")
    params = _params(solver, time_limit_s, threads)  # validates the limits
    deadline = location.Deadline(time_limit_s)
    data = (inst.fixed_costs, inst.capacities, inst.demands, inst.alloc_costs)
    plan = location.cflp_heuristic(*data, time_limit_s=0.1 * time_limit_s) if heuristic else None
    kept = np.arange(inst.n_facilities)
    lag = None
    if plan is not None and lagrangian:
        lag = location.cflp_lagrangian(*data, plan, time_limit_s=0.25 * time_limit_s)
        plan = lag.plan
        kept = np.setdiff1d(kept, lag.fixed_closed)
    cflp = location.build_cflp(
        inst.fixed_costs[kept], inst.capacities[kept], inst.demands, inst.alloc_costs[:, kept],
        all_links=links == "all",
    )  # fmt: skip
    if lag is not None:
        for j in lag.fixed_open:
            cflp.sites[int(np.searchsorted(kept, j))].lower_bound = 1.0
    if links == "lazy":
        location.add_links_lazily(cflp, deadline, SOLVERS[solver])
    model_params = None
    if plan is not None:
        local = location.CflpPlan(
            tuple(int(np.searchsorted(kept, j)) for j in plan.open_sites),
            plan.allocation[:, kept], plan.cost,
        )  # fmt: skip
        model_params = location.cflp_hint(cflp, local)
    params.time_limit = dt.timedelta(seconds=max(deadline.left(), 0.01))
    result, status = _solve(cflp.model, solver, params, model_params)
    objective, bound, gap = _objective_and_bound(result)
    if lag is not None and math.isfinite(objective):
        # the Lagrangian bound holds for the whole instance, the MIP's for the
        # kept sites; every plan outside them costs more than ``plan``
        bound = max(bound if math.isfinite(bound) else -math.inf, min(lag.bound, objective))
        gap = abs(objective - bound) / max(abs(objective), 1.0)
    open_ids: tuple[int, ...] = ()
    alloc = None
    if result.has_primal_feasible_solution():
        values = result.variable_values()
        open_ids = tuple(int(kept[i]) for i, y in enumerate(cflp.sites) if values[y] > 0.5)
        alloc = np.zeros((inst.n_customers, inst.n_facilities))
        alloc[:, kept] = np.array([[values[x] for x in row] for row in cflp.serve])
    return OrlibResult(
        objective=objective,
        status=status,
        seconds=deadline.elapsed(),
        best_bound=bound,
        gap=gap,
        open_facilities=open_ids,
        allocation=alloc,
        problem=CFLP,
        solver=solver,
    )


def solve_pmedian(
    inst: PMedianInstance,
    time_limit_s: float = 60,
    threads: int = 1,
    solver: str = DEFAULT_SOLVER,
    method: str = "benders",
) -> OrlibResult:
    """Solve a p-median instance to proven optimality.

    Parameters are as for :func:`solve_cflp`. ``method="benders"`` (HiGHS
    only) runs :func:`pathways.optimise.location.solve_pmedian_benders`;
    ``method="assignment"`` (any backend; forced for SCIP) solves the n x n
    assignment model of :func:`build_pmedian_model`. ``allocation`` holds,
    for each customer, the 0-based median serving it.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    if method not in ("benders", "assignment"):
        raise ValueError(f"method must be 'benders' or 'assignment', got {method!r}")
    params = _params(solver, time_limit_s, threads)
    if method == "benders" and solver == "highs":
        sol = location.solve_pmedian_benders(inst.distances, inst.p, time_limit_s=time_limit_s)
        return OrlibResult(
            objective=sol.objective,
            status=sol.status,
            seconds=sol.seconds,
            best_bound=sol.best_bound,
            gap=sol.gap,
            open_facilities=sol.open_sites,
            allocation=sol.allocation,
            problem=PMEDIAN,
            solver=solver,
        )
    t0 = time.perf_counter()
    model, v = build_pmedian_model(inst)
    result, status = _solve(model, solver, params)
    seconds = time.perf_counter() - t0
    objective, bound, gap = _objective_and_bound(result)
    medians: tuple[int, ...] = ()
    assign = None
    if result.has_primal_feasible_solution():
        values = result.variable_values()
        medians = tuple(j for j, y in enumerate(v.median) if values[y] > 0.5)
        assign = np.array(
            [max(range(len(row)), key=lambda j, r=row: values[r[j]]) for row in v.assign]
        )
    return OrlibResult(
        objective=objective,
        status=status,
        seconds=seconds,
        best_bound=bound,
        gap=gap,
        open_facilities=medians,
        allocation=assign,
        problem=PMEDIAN,
        solver=solver,
    )


def bench_orlib(
    path: str | Path,
    capacity: float | None = None,
    time_limit_s: float = 60,
    threads: int = 1,
    solver: str = DEFAULT_SOLVER,
) -> OrlibResult:
    """Read an OR-Library file and solve it (the ``pathways bench orlib`` engine).

    Parameters
    ----------
    path : str or Path
        A ``capXX`` or ``pmedXX`` file (see :func:`read_orlib`).
    capacity : float, optional
        Capacity for files that print the word ``capacity`` (see :func:`read_cap`).
    time_limit_s, threads, solver
        As for :func:`solve_cflp`.

    Returns
    -------
    OrlibResult
        With ``instance`` set to the file stem.
    """
    path = Path(path)
    inst = read_orlib(path, capacity=capacity)
    if isinstance(inst, CflpInstance):
        res = solve_cflp(inst, time_limit_s=time_limit_s, threads=threads, solver=solver)
    else:
        res = solve_pmedian(inst, time_limit_s=time_limit_s, threads=threads, solver=solver)
    res = dataclasses.replace(res, instance=path.stem)
    logger.info(format_result(res))
    return res


# ---------------------------------------------------------------------------
# Independent judges
# ---------------------------------------------------------------------------


def evaluate_cflp(inst: CflpInstance, open: Sequence[int], alloc: np.ndarray) -> float:
    """Recompute the cost of a CFLP solution, checking it is feasible.

    Parameters
    ----------
    inst : CflpInstance
    open : sequence of int
        0-based open facilities.
    alloc : numpy.ndarray
        ``(n, m)`` fraction of each customer's demand served by each facility.

    Returns
    -------
    float
        Fixed costs of the open facilities plus allocation costs.

    Raises
    ------
    ValueError
        If demand is not met, a capacity is exceeded or a closed facility serves.
    """
    m, n = inst.n_facilities, inst.n_customers
    alloc = np.asarray(alloc, dtype=float)
    if alloc.shape != (n, m):
        raise ValueError(f"alloc has shape {alloc.shape}, expected ({n}, {m})")
    is_open = np.zeros(m, dtype=bool)
    for i in open:
        if not 0 <= int(i) < m:
            raise ValueError(f"facility {i} out of range 0..{m - 1}")
        is_open[int(i)] = True
    tol = FEASIBILITY_TOL
    if np.any(alloc < -tol) or np.any(alloc > 1 + tol):
        raise ValueError("allocation fractions must lie in [0, 1]")
    served = alloc.sum(axis=1)
    bad = np.flatnonzero(np.abs(served - 1.0) > tol)
    if bad.size:
        raise ValueError(f"customer {bad[0]} has {served[bad[0]]:.6f} of its demand met")
    closed_use = alloc[:, ~is_open]
    if np.any(closed_use > tol):
        raise ValueError("a closed facility serves demand")
    load = inst.demands @ alloc
    over = np.flatnonzero(load > inst.capacities * (1 + tol) + tol)
    if over.size:
        i = over[0]
        raise ValueError(f"facility {i} serves {load[i]:g} > capacity {inst.capacities[i]:g}")
    return float(inst.fixed_costs[is_open].sum() + (inst.alloc_costs * alloc).sum())


def evaluate_pmedian(inst: PMedianInstance, medians: Sequence[int]) -> float:
    """Total distance when every customer uses its nearest of ``medians``.

    Raises
    ------
    ValueError
        Unless ``medians`` are ``p`` distinct valid 0-based vertices.
    """
    ids = sorted({int(j) for j in medians})
    if len(ids) != len(medians) or len(ids) != inst.p:
        raise ValueError(f"expected {inst.p} distinct medians, got {list(medians)}")
    if ids[0] < 0 or ids[-1] >= inst.n_vertices:
        raise ValueError(f"medians must lie in 0..{inst.n_vertices - 1}")
    return float(inst.distances[:, ids].min(axis=1).sum())
