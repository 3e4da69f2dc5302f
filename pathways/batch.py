"""Batch runs: budget sweeps, demand futures, Monte Carlo and many ICBs at once.

A batch spec (YAML) names a base scenario (or a list of ICBs), what to run for each
case (``evaluate``, ``optimise``, ``frontier`` or ``simulate``), a grid of parameter values and
optionally Monte Carlo distributions over uncertain parameters::

    name: budget-sweep
    base: ../scenarios/sussex.yaml
    run: evaluate
    grid:
      demand.growth_factor: [1.0, 1.1]
    monte_carlo:
      samples: 50
      seed: 20240601
      parameters:
        queues.inpatient_los_days: {dist: lognormal, median: 33, sigma: 0.15, unit: days}

Cases are footprints x grid points x samples. Every case has a stable ``case_id``
(a hash of its inputs) and its own seed from ``numpy.random.SeedSequence(seed).spawn``,
so results do not depend on the executor or on the order cases finish in.

:func:`run_batch` runs the cases on a local process pool (default) or on a Dask
cluster, records each case in a :class:`~pathways.store.RunStore` as it finishes
(so a re-run resumes), and writes ``results.parquet``, ``summary.md`` and
``summary.html`` (plus plans, site selection and a robust plan for optimise runs).

Crashes lose nothing: each case is recorded in one transaction as it finishes, every
output file is written atomically (:mod:`pathways.atomic`), and pool workers stop when
the batch process dies, even by SIGKILL. Re-running the same command resumes the batch;
cases that found no plan within the time limit run again, failed cases only when asked
(``retry_failed``; see :func:`run_batch`). See docs/batch.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from pathways.atomic import write_csv_atomic, write_parquet_atomic, write_text_atomic
from pathways.errors import InfeasibleError, InputError, NoPlanInTimeError, Problem
from pathways.icb import make_icb_scenario
from pathways.optimise.run import marginal_cost
from pathways.plan import Plan, load_plan
from pathways.scenario import (
    Footprint,
    Frozen,
    Int,
    Num,
    Scenario,
    _line_index,
    load_scenario,
    problems_from_validation,
    read_yaml,
    with_changes,
)
from pathways.store import (
    STATUS_FAILED,
    STATUS_INFEASIBLE,
    STATUS_NO_PLAN_IN_TIME,
    STATUS_OK,
    RunStore,
    data_version,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- constants

RUN_KINDS = ("evaluate", "optimise", "frontier")
DISTRIBUTIONS = ("triangular", "uniform", "normal", "lognormal")
BUDGET_PATH = "budget.revenue_gbp_per_year"

# Columns of results.parquet before the grid / Monte Carlo inputs and the KPIs.
CASE_ID = "case_id"
FOOTPRINT = "footprint"
SAMPLE = "sample"
SEED = "seed"
STATUS = "status"
ERROR = "error"
SOLVER_STATUS = "solver_status"
GAP = "gap"
OBJECTIVE = "objective"
SECONDS = "seconds"
SOLVER_SECONDS = "solver_seconds"
GROUP = "group"
TIMING_COLUMNS: tuple[str, ...] = (SECONDS, SOLVER_SECONDS)
"""Columns that differ between two runs of the same spec (everything else is identical)."""

RESULTS_FILE = "results.parquet"
#: Suffixes of a simulated KPI's 95% interval columns in results.parquet.
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
STORE_FILE = "runs.db"
PLANS_DIR = "plans"

ICB_SCENARIO_VERSION = "icb-kh03-2"
"""Bumped whenever :func:`make_icb_scenario` changes, so resumed batches re-run ICB cases."""

# Evaluate cases take tens of milliseconds: send them in chunks so each process keeps
# its prepared footprint; optimise cases take seconds to minutes: one per task.
MAX_EVALUATE_CHUNK = 20
CHUNKS_PER_WORKER = 8
ROBUST_MAX_CANDIDATES = 50


# --------------------------------------------------------------------------- spec


class _Dist(Frozen):
    unit: str = Field(min_length=1, description="unit of the parameter, e.g. 'days'")


def _range_ok(low: float, high: float) -> None:
    """Refuse a range too wide for floating point (NumPy cannot draw from it)."""
    if not math.isfinite(high - low):
        raise ValueError(
            f"the range from low {low:g} to high {high:g} is too wide to sample from; "
            "give the values the parameter can take"
        )


class Triangular(_Dist):
    dist: Literal["triangular"]
    low: Num
    mode: Num
    high: Num

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not (self.low <= self.mode <= self.high) or self.low >= self.high:
            raise ValueError(
                f"expected low <= mode <= high and low < high (got {self.low}, {self.mode}, "
                f"{self.high})"
            )
        _range_ok(self.low, self.high)
        return self

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.triangular(self.low, self.mode, self.high))

    @property
    def centre(self) -> float:
        return self.mode


class Uniform(_Dist):
    dist: Literal["uniform"]
    low: Num
    high: Num

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.low >= self.high:
            raise ValueError(f"expected low < high (got {self.low}, {self.high})")
        _range_ok(self.low, self.high)
        return self

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    @property
    def centre(self) -> float:
        return (self.low + self.high) / 2


class Normal(_Dist):
    """Normal, optionally truncated to ``[low, high]`` (sampled by inverse CDF)."""

    dist: Literal["normal"]
    mean: Num
    sd: Num = Field(gt=0)
    low: Num | None = None
    high: Num | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Normal:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"expected low < high (got {self.low}, {self.high})")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        from scipy.special import ndtr, ndtri

        a = 0.0 if self.low is None else float(ndtr((self.low - self.mean) / self.sd))
        b = 1.0 if self.high is None else float(ndtr((self.high - self.mean) / self.sd))
        if b <= a:
            raise InputError(
                Problem("monte_carlo", None, "low", "the truncation range has no probability")
            )
        u = rng.uniform(a, b)
        x = self.mean + self.sd * float(ndtri(u))
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        return float(min(max(x, lo), hi))

    @property
    def centre(self) -> float:
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        return float(min(max(self.mean, lo), hi))


class LogNormal(_Dist):
    """Log-normal with the given median and sigma (standard deviation of the log)."""

    dist: Literal["lognormal"]
    median: Num = Field(gt=0)
    sigma: Num = Field(gt=0)

    def sample(self, rng: np.random.Generator) -> float:
        try:
            return float(self.median * math.exp(self.sigma * rng.standard_normal()))
        except OverflowError:  # a huge sigma: the case then fails as an out-of-range value
            return math.inf

    @property
    def centre(self) -> float:
        return self.median


Distribution = Annotated[Triangular | Uniform | Normal | LogNormal, Field(discriminator="dist")]


class MonteCarlo(Frozen):
    samples: Int = Field(ge=1, le=100_000, description="number of samples")
    seed: Int = Field(ge=0, description="root seed of numpy.random.SeedSequence")
    parameters: dict[str, Distribution] = Field(min_length=1)


class SolverSpec(Frozen):
    """Solver settings for optimise and frontier runs (each case runs single-threaded)."""

    time_limit_s: Num = Field(60.0, gt=0, le=604_800)
    gap: Num = Field(0.005, ge=0, le=1)
    backend: Literal["HIGHS", "SCIP"] | None = None
    nearest_sites: Int | None = Field(None, ge=1)
    max_rounds: Int | None = Field(None, ge=1)


class SimulationSpec(Frozen):
    """Simulation settings for simulate runs (see docs/simulation.md)."""

    reps: Int = Field(20, ge=1, le=10_000, description="replications per case")
    analytic: bool = Field(
        False, description="start from the analytic model's assumptions (SimParams.analytic())"
    )
    settings: dict[str, Any] = Field(
        default_factory=dict, description="SimParams fields to change (years, repatriation, ...)"
    )

    @field_validator("settings")
    @classmethod
    def _settings_ok(cls, settings: dict[str, Any]) -> dict[str, Any]:
        from pathways.simulate.params import SimParams

        known = set(SimParams().to_dict())
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not a simulation setting ({', '.join(sorted(known))})")
        try:
            SimParams().with_changes(**settings).days  # noqa: B018 - checks the values
        except InputError as err:
            raise ValueError("; ".join(p.message for p in err.problems)) from None
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from None
        return settings

    def params(self) -> Any:
        from pathways.simulate.params import SimParams

        base = SimParams.analytic() if self.analytic else SimParams()
        return base.with_changes(**self.settings) if self.settings else base


class RobustSpec(Frozen):
    max_candidates: Int = Field(
        ROBUST_MAX_CANDIDATES, ge=1, description="most frequent sample plans compared"
    )


class BatchSpec(Frozen):
    """A validated batch spec (see docs/batch.md)."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    base: str | None = Field(None, description="scenario YAML, relative to the spec file")
    icbs: list[str] | Literal["all"] | None = Field(None, description="ICB codes or names")
    plan: str | None = Field(
        None, description="plan YAML to evaluate or simulate (default: today's capacity)"
    )
    run: Literal["evaluate", "optimise", "frontier", "simulate"] = "evaluate"
    budgets: list[float] | None = Field(None, description="frontier runs: revenue budgets, GBP")
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    monte_carlo: MonteCarlo | None = None
    seed: Int = Field(0, ge=0, description="root seed when there is no Monte Carlo section")
    solver: SolverSpec = SolverSpec()
    simulation: SimulationSpec | None = Field(None, description="simulate runs: replications")
    robust: RobustSpec = RobustSpec()
    spec_dir: str | None = Field(None, exclude=True, description="folder of the spec file")

    @field_validator("grid")
    @classmethod
    def _grid_ok(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"'{key}' lists no values")
        return grid

    @field_validator("icbs")
    @classmethod
    def _icbs_ok(cls, icbs: list[str] | str | None) -> list[str] | str | None:
        if isinstance(icbs, list) and not icbs:
            raise ValueError("lists no ICBs (use 'all' for every ICB)")
        return icbs

    @model_validator(mode="after")
    def _consistent(self) -> BatchSpec:
        if (self.base is None) == (self.icbs is None):
            raise ValueError("give exactly one of 'base' (a scenario file) or 'icbs'")
        if self.plan is not None and (self.makes_plans or self.base is None):
            raise ValueError("'plan' is only for evaluate and simulate runs on a base scenario")
        if self.simulation is not None and self.run != "simulate":
            raise ValueError("'simulation' is only for simulate runs")
        if self.budgets is not None and self.run != "frontier":
            raise ValueError("'budgets' is only for frontier runs")
        if self.run == "frontier":
            if not self.budgets and BUDGET_PATH not in self.grid:
                raise ValueError(f"frontier runs need 'budgets' (or a grid over {BUDGET_PATH})")
            if self.budgets and BUDGET_PATH in self.grid:
                raise ValueError(f"give the budgets once: 'budgets' or grid '{BUDGET_PATH}'")
        if self.monte_carlo is not None:
            both = set(self.grid) & set(self.monte_carlo.parameters)
            if both:
                raise ValueError(f"{sorted(both)} are both in the grid and in monte_carlo")
        return self

    @property
    def makes_plans(self) -> bool:
        """Optimise and frontier runs write a plan per case."""
        return self.run in ("optimise", "frontier")

    @property
    def sim(self) -> SimulationSpec:
        return self.simulation if self.simulation is not None else SimulationSpec()

    @property
    def root_seed(self) -> int:
        return self.monte_carlo.seed if self.monte_carlo is not None else self.seed

    @property
    def n_samples(self) -> int:
        return self.monte_carlo.samples if self.monte_carlo is not None else 1

    def grid_axes(self) -> dict[str, list[Any]]:
        """Grid dimensions, with frontier budgets as the budget axis."""
        axes = dict(self.grid)
        if self.budgets:
            axes[BUDGET_PATH] = list(self.budgets)
        return axes

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        if p.is_absolute() or self.spec_dir is None:
            return p
        return Path(self.spec_dir) / p


class _Errors:
    """A pydantic error list with discriminator tags removed from the locations."""

    def __init__(self, err: ValidationError):
        self._errors = []
        for e in err.errors():
            loc = tuple(e["loc"])
            if (
                len(loc) >= 4
                and loc[:2] == ("monte_carlo", "parameters")
                and loc[3] in DISTRIBUTIONS
            ):
                loc = loc[:3] + loc[4:]
            e = {**e, "loc": loc}
            if e["type"] == "union_tag_invalid":
                tag = e.get("ctx", {}).get("tag", "?")
                e = {
                    **e,
                    "type": "value_error",
                    "msg": f"unknown distribution '{tag}'; expected one of {', '.join(DISTRIBUTIONS)}",
                }
            elif e["type"] == "union_tag_not_found":
                e = {
                    **e,
                    "type": "value_error",
                    "msg": f"say which distribution with 'dist:' ({', '.join(DISTRIBUTIONS)})",
                }
            elif e["type"] == "missing" and loc and loc[-1] == "unit":
                e = {
                    **e,
                    "type": "value_error",
                    "msg": "every distribution needs a unit (e.g. unit: days), so results can be read",
                }
            self._errors.append(e)

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


def batch_spec_from_dict(
    data: Mapping[str, Any], file: str = "<batch>", text: str | None = None,
    spec_dir: str | None = None,
) -> BatchSpec:  # fmt: skip
    """Validate a mapping as a :class:`BatchSpec` and check it against its scenarios.

    Raises
    ------
    InputError
        Naming the YAML path (``grid.demand.growth_factor``), its line and what was expected.
    """
    if not isinstance(data, Mapping):
        raise InputError(Problem(file, None, None, "expected a mapping of fields at the top level"))
    payload = dict(data)
    if spec_dir is not None:
        payload["spec_dir"] = spec_dir
    spec: BatchSpec | None = None
    problems: list[Problem] = []
    try:
        spec = BatchSpec.model_validate(payload)
    except ValidationError as err:
        problems += problems_from_validation(_Errors(err), file, text)  # type: ignore[arg-type]
    seen = {(p.field, p.message) for p in problems}
    for p in _check_against_scenarios(payload, spec, file, text):
        if (p.field, p.message) not in seen:
            problems.append(p)
    if problems:
        raise InputError(problems)
    assert spec is not None
    return spec


def load_batch_spec(path: str | Path) -> BatchSpec:
    """Read and validate a batch spec YAML file (paths inside are relative to it)."""
    path = Path(path)
    data, text = read_yaml(path)
    return batch_spec_from_dict(data, str(path), text, str(path.parent.resolve()))


def _check_against_scenarios(
    data: Mapping[str, Any], spec: BatchSpec | None, file: str, text: str | None
) -> list[Problem]:
    """Paths and values of the grid and Monte Carlo sections, ICB names and files.

    Works on the raw mapping, so these problems are reported together with schema
    problems elsewhere in the file.
    """
    lines = _line_index(text) if text else {}

    def problem(loc: tuple[Any, ...], message: str) -> Problem:
        line = None
        probe = loc
        while probe and line is None:
            line = lines.get(probe)
            probe = probe[:-1]
        field_path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
        return Problem(file, line, field_path.replace(".[", "["), message)

    def resolve(relative: Any) -> Path:
        p = Path(str(relative))
        spec_dir = data.get("spec_dir")
        return p if p.is_absolute() or not spec_dir else Path(spec_dir) / p

    problems: list[Problem] = []
    base: Scenario | None = None
    if isinstance(data.get("base"), str):
        path = resolve(data["base"])
        try:
            base = load_scenario(path)
        except InputError as err:
            problems.append(problem(("base",), f"cannot use scenario '{path}': {err}"))
    else:
        from pathways.geography import resolve_icb

        icbs = data.get("icbs")
        if isinstance(icbs, list):
            for i, name in enumerate(icbs):
                try:
                    resolve_icb(str(name))
                except InputError as err:
                    msg = err.problems[0].message if err.problems else str(err)
                    problems.append(problem(("icbs", i), msg))
        base = _schema_scenario()
    if isinstance(data.get("plan"), str):
        try:
            load_plan(resolve(data["plan"]))
        except InputError as err:
            problems.append(problem(("plan",), f"cannot use plan: {err}"))
    if base is None:
        return problems
    reference = base.model_dump(mode="python")
    grid = data.get("grid")
    if isinstance(grid, Mapping):
        for key, values in grid.items():
            msg = _path_problem(reference, str(key))
            if msg:
                problems.append(problem(("grid", key), msg))
                continue
            for i, value in enumerate(values if isinstance(values, list) else []):
                msg = _value_problem(base, str(key), value)
                if msg:
                    problems.append(problem(("grid", key, i), msg))
    budgets = data.get("budgets")
    if isinstance(budgets, list):
        for i, value in enumerate(budgets):
            msg = _value_problem(base, BUDGET_PATH, value)
            if msg:
                problems.append(problem(("budgets", i), msg))
    mc = data.get("monte_carlo")
    params = mc.get("parameters") if isinstance(mc, Mapping) else None
    if isinstance(params, Mapping):
        for key in params:
            loc = ("monte_carlo", "parameters", key)
            msg = _path_problem(reference, str(key))
            if msg:
                problems.append(problem(loc, msg))
                continue
            if spec is not None and spec.monte_carlo is not None:
                centre = spec.monte_carlo.parameters[key].centre
                msg = _value_problem(base, str(key), centre)
                if msg:
                    problems.append(problem(loc, f"at its centre value {centre}: {msg}"))
    return problems


def _path_problem(reference: Mapping[str, Any], dotted: str) -> str | None:
    node: Any = reference
    walked: list[str] = []
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(walked) or "the scenario"
            options = sorted(node) if isinstance(node, Mapping) else []
            hint = f" (fields there: {', '.join(map(str, options))})" if options else ""
            return f"unknown scenario field '{part}' in {where}{hint}"
        node = node[part]
        walked.append(part)
    if isinstance(node, Mapping):
        return f"'{dotted}' is a group of fields; name one of them (e.g. {dotted}.{next(iter(node), '...')})"
    return None


_YAML_1_2_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _yaml_number(value: Any) -> Any:
    """A number PyYAML read as text (``9.0e7``: YAML 1.1 wants a sign in the exponent),
    as the number YAML 1.2 and the commissioner mean; any other value unchanged."""
    if isinstance(value, str) and _YAML_1_2_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def _with_value(base: Scenario, dotted: str, value: Any) -> Scenario:
    """``base`` with one changed value; text that reads as a number is tried as one when
    the field does not take it as text."""
    try:
        return with_changes(base, {dotted: value})
    except InputError:
        number = _yaml_number(value)
        if number is value:
            raise
        return with_changes(base, {dotted: number})


def _value_problem(base: Scenario, dotted: str, value: Any) -> str | None:
    try:
        _with_value(base, dotted, value)
    except InputError as err:
        msgs = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in err.problems)
        return f"value {value!r} is not valid here ({msgs})"
    return None


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One evaluation or optimisation of a batch."""

    index: int
    case_id: str
    case_hash: str
    footprint: str
    changes: dict[str, Any]
    inputs: dict[str, Any]
    sample: int | None
    seed: int
    group: str


@dataclass(frozen=True)
class CaseTask:
    """What a worker needs to run one case (picklable, self-contained)."""

    case_id: str
    run: str
    scenario: Scenario | None
    icb: str | None
    plan: Plan | None
    changes: dict[str, Any]
    seed: int
    solver: dict[str, Any]
    simulation: dict[str, Any] | None = None


def _resolve_footprints(spec: BatchSpec) -> list[str]:
    from pathways.geography import list_icbs, resolve_icb

    if spec.icbs == "all":
        return list(list_icbs()["icb_cd"])
    if isinstance(spec.icbs, list):
        return list(dict.fromkeys(resolve_icb(x) for x in spec.icbs))
    return []


def _schema_scenario() -> Scenario:
    # Any ICB will do to check paths: they share the schema and the default parameters.
    return Scenario(name="check", footprint=Footprint(icb="E54000053"))


def _normalised(base: Scenario, dotted: str, value: Any) -> Any:
    """The value as the scenario stores it (YAML reads ``9.0e7`` as text; this gives 9e7)."""
    node: Any = _with_value(base, dotted, value).model_dump(mode="json")
    for part in dotted.split("."):
        node = node[part]
    return node


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sample_parameters(mc: MonteCarlo) -> list[dict[str, float]]:
    """Monte Carlo parameter values: sample ``j`` draws from its own spawned stream.

    Samples are shared by every footprint and grid point (common random numbers),
    so differences between grid points are not blurred by sampling noise.
    """
    children = np.random.SeedSequence(mc.seed).spawn(mc.samples)
    out = []
    for child in children:
        rng = np.random.default_rng(child)
        out.append({k: d.sample(rng) for k, d in mc.parameters.items()})
    return out


@dataclass(frozen=True)
class _Expanded:
    cases: list[Case]
    base: Scenario | None
    plan: Plan | None
    spec_hash: str


def expand_cases(spec: BatchSpec) -> list[Case]:
    """All cases of a spec, in a fixed order: footprint, then grid point, then sample."""
    return _expand(spec).cases


def batch_key(spec: BatchSpec) -> str:
    """The hash that identifies a batch in the run store (spec, base scenarios, data version)."""
    return _expand(spec).spec_hash


def _expand(spec: BatchSpec) -> _Expanded:
    base = load_scenario(spec.resolve(spec.base)) if spec.base is not None else None
    plan = load_plan(spec.resolve(spec.plan)) if spec.plan is not None else None
    if base is not None:
        fp = base.footprint
        footprints = [fp.icb or fp.areas_file or base.name]
        base_keys = {footprints[0]: base.fingerprint()}
    else:
        footprints = _resolve_footprints(spec)
        base_keys = {code: f"{ICB_SCENARIO_VERSION}:{code}" for code in footprints}
    check = base if base is not None else _schema_scenario()
    axes = {k: [_normalised(check, k, v) for v in vs] for k, vs in spec.grid_axes().items()}
    grid_points = [
        dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())
    ]
    samples: list[dict[str, float] | None] = (
        list(sample_parameters(spec.monte_carlo)) if spec.monte_carlo is not None else [None]
    )
    n = len(footprints) * len(grid_points) * len(samples)
    root = np.random.SeedSequence(spec.root_seed)
    if spec.monte_carlo is not None:
        root.spawn(spec.monte_carlo.samples)  # the sample streams (see sample_parameters)
    seeds = [int(s.generate_state(1)[0] & 0x7FFFFFFF) for s in root.spawn(n)]
    if spec.run == "simulate":
        # common random numbers: every footprint and grid point of sample k simulates with
        # the same seed, so their differences are not blurred by simulation noise
        per_sample = [int(s.generate_state(1)[0] & 0x7FFFFFFF) for s in root.spawn(len(samples))]
        seeds = [per_sample[i % len(samples)] for i in range(n)]
    solver = spec.solver.model_dump(mode="json") if spec.makes_plans else None
    simulation = spec.sim.model_dump(mode="json") if spec.run == "simulate" else None
    plan_key = _hash(plan.model_dump(mode="json")) if plan is not None else None
    dv = data_version()
    cases = []
    for footprint, point, (s_i, sample) in itertools.product(
        footprints, grid_points, enumerate(samples)
    ):
        index = len(cases)
        changes = dict(point)
        if sample is not None:
            changes.update(sample)
        case_hash = _hash(
            {
                "run": spec.run,
                "base": base_keys[footprint],
                "plan": plan_key,
                "changes": changes,
                "sample": None if sample is None else s_i,
                "seed": seeds[index],
                "solver": solver,
                **({"simulation": simulation} if simulation is not None else {}),
                "data_version": dv,
            }
        )
        inputs: dict[str, Any] = {FOOTPRINT: footprint, **changes}
        if sample is not None:
            inputs[SAMPLE] = s_i
        group = footprint + "".join(f" | {k}={v}" for k, v in point.items())
        cases.append(
            Case(
                index=index,
                case_id=case_hash[:16],
                case_hash=case_hash,
                footprint=footprint,
                changes=changes,
                inputs=inputs,
                sample=None if sample is None else s_i,
                seed=seeds[index],
                group=group,
            )
        )
    spec_hash = _hash(
        {
            "spec": spec.model_dump(mode="json", exclude={"description"}),
            "bases": base_keys,
            "plan": plan_key,
            "data_version": dv,
        }
    )
    return _Expanded(cases=cases, base=base, plan=plan, spec_hash=spec_hash)


# --------------------------------------------------------------------------- running one case


def _solver_options(solver: Mapping[str, Any], seed: int) -> Any:
    from pathways.optimise import SolverOptions

    kwargs = {k: v for k, v in solver.items() if v is not None}
    return SolverOptions(workers=1, seed=int(seed), **kwargs)


def _case_scenario(task: CaseTask) -> Scenario:
    base = task.scenario if task.scenario is not None else make_icb_scenario(task.icb)
    changes = dict(task.changes)
    if task.run == "frontier":
        changes["objective.mode"] = "min_weighted"
    return with_changes(base, changes) if changes else base


def _scalar_kpis(kpis: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in kpis.items():
        if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
            out[str(k)] = float(v)
    return out


def _simulated_kpis(inst: Any, task: CaseTask) -> dict[str, float]:
    """Simulate one case: each KPI's mean over replications and its 95% interval.

    Keyed KPIs (``hub_service_level[h07]``, ...) are left out: one column per hour or
    month would swamp ``results.parquet``; ``pathways simulate`` gives them for one case.
    """
    from pathways.simulate import simulate

    sim = SimulationSpec.model_validate(task.simulation or {})
    res = simulate(inst, task.plan, reps=sim.reps, seed=task.seed, params=sim.params())
    out: dict[str, float] = {}
    table = res.table()
    for row in table.itertuples():
        if "[" in row.kpi:
            continue
        out[row.kpi] = float(row.simulated)
        out[f"{row.kpi}{CI_LOW}"] = float(row.ci_low)
        out[f"{row.kpi}{CI_HIGH}"] = float(row.ci_high)
    return out


def run_case(task: CaseTask) -> dict[str, Any]:
    """Run one case; errors are caught and returned as a failed result."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "case_id": task.case_id,
        "status": STATUS_OK,
        "error": None,
        "kpis": None,
        "plan": None,
        "solver_status": None,
        "gap": None,
        "objective": None,
        "solver_seconds": None,
        "scenario_hash": None,
        "host": socket.gethostname(),
        "started_at": started,
    }
    try:
        from pathways.instance import prepare
        from pathways.kpis import evaluate

        scenario = _case_scenario(task)
        out["scenario_hash"] = scenario.fingerprint()
        inst = prepare(scenario)
        if task.run == "evaluate":
            card = evaluate(inst, task.plan)
        elif task.run == "simulate":
            out["kpis"] = _simulated_kpis(inst, task)
        else:
            from pathways.optimise import optimise

            plan = optimise(inst, _solver_options(task.solver, task.seed))
            rep = plan.solver
            if rep is not None:
                out.update(
                    solver_status=rep.status, gap=rep.gap, objective=rep.objective,
                    solver_seconds=rep.seconds,
                )  # fmt: skip
            out["plan"] = plan.model_dump(mode="json")
            card = evaluate(inst, plan)
        if task.run != "simulate":
            out["kpis"] = _scalar_kpis(card.kpis)
    except InfeasibleError as err:  # an answer: no plan meets this case's limits
        out["status"] = STATUS_INFEASIBLE
        out["error"] = str(err)
    except NoPlanInTimeError as err:
        out["status"] = STATUS_NO_PLAN_IN_TIME
        out["error"] = str(err)
    except Exception as err:  # noqa: BLE001 - one failing case must not stop the batch
        out["status"] = STATUS_FAILED
        out["error"] = f"{type(err).__name__}: {err}\n\n{traceback.format_exc(limit=8)}"
        log.debug("case %s failed", task.case_id, exc_info=True)
    out["seconds"] = time.perf_counter() - t0
    out["finished_at"] = dt.datetime.now(dt.UTC)
    return out


def run_chunk(tasks: Sequence[CaseTask]) -> list[dict[str, Any]]:
    """Run cases one after another in this process (they share its ``prepare`` cache)."""
    return [run_case(t) for t in tasks]


@dataclass(frozen=True)
class RegretTask:
    """Evaluate one candidate plan on every sample scenario of a group."""

    candidate: str
    plan: Plan
    scenario: Scenario | None
    icb: str | None
    samples: tuple[tuple[str, dict[str, Any]], ...]  # (case_id, changes)


def run_regret(task: RegretTask) -> tuple[str, list[tuple[str, float, dict[str, float]]]]:
    """Objective and KPIs of one plan on each sample's scenario."""
    from pathways.instance import prepare
    from pathways.kpis import evaluate
    from pathways.optimise import objective_value

    rows = []
    for case_id, changes in task.samples:
        ct = CaseTask(case_id, "optimise", task.scenario, task.icb, None, changes, 0, {})
        scenario = _case_scenario(ct)
        card = evaluate(prepare(scenario), task.plan)
        obj = objective_value(card, scenario.objective.mode, scenario.objective.weights)
        rows.append((case_id, float(obj), _scalar_kpis(card.kpis)))
    return task.candidate, rows


PR_SET_PDEATHSIG = 1
"""``prctl`` option (Linux): the signal a process gets when its parent dies."""
PARENT_CHECK_S = 1.0
"""How often a worker checks that the batch process that started it is still running."""


def _exit_if_orphaned(parent_pid: int) -> None:
    # A worker whose parent has gone is re-parented (to init or a sub-reaper): its
    # results could never be recorded, so it stops at once instead of running on.
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while True:
        _exit_if_orphaned(parent_pid)
        time.sleep(PARENT_CHECK_S)


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker process stop when ``parent_pid`` (the batch process) dies.

    On Linux the kernel sends SIGKILL the moment the parent dies (``prctl
    PR_SET_PDEATHSIG``); everywhere a daemon thread also checks the parent once a
    second, so a parent killed with SIGKILL leaves no worker running on. (The kernel
    watches the thread that started the worker; :func:`run_batch` starts and closes its
    pool in the thread that calls it, so the pool is closed before that thread ends.)
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError):  # no libc prctl: the thread below still watches
            log.debug("prctl is not available", exc_info=True)
    _exit_if_orphaned(parent_pid)  # the parent may have died before prctl took effect
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="watch-batch-parent", daemon=True
    ).start()


def _worker_init(parent_pid: int | None = None) -> None:
    # Ctrl-C goes to the whole process group: only the parent should act on it. Workers
    # start with SIGINT blocked (see _sigint_blocked), so one pressed while they start up
    # does not kill them either.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if parent_pid is not None:
        _die_with_parent(parent_pid)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while it may start pool workers.

    A new process inherits the signal mask, so a worker cannot be stopped by a Ctrl-C
    that reaches it before its initializer has set SIGINT aside (it would die, and
    break the pool). This process still sees the Ctrl-C: the signal goes to one of its
    other threads, or arrives here when the mask is restored.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --------------------------------------------------------------------------- executors


class _Executor:
    """A local process pool or a Dask client behind one small interface.

    Local pool workers die with the process that started them (see
    :func:`_die_with_parent`); so do the workers of a ``local:N`` Dask cluster (Dask
    stops a worker process whose parent has gone). Workers of a remote Dask cluster
    belong to that cluster and keep running.
    """

    def __init__(self, executor: str, workers: int | None):
        self.kind = "local"
        self.client = None
        self.cluster = None
        self.pool: ProcessPoolExecutor | None = None
        self._other_children: set[int] = set()
        self.workers = workers or os.cpu_count() or 1
        self.executor = executor
        if executor == "local":
            return
        from distributed import Client, LocalCluster

        self.kind = "dask"
        if executor.startswith("local:"):
            try:
                n = int(executor.split(":", 1)[1])
            except ValueError:
                raise InputError(
                    Problem("--dask", None, "dask", f"expected local:N, got '{executor}'")
                ) from None
            self.cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        else:
            self.client = Client(executor, timeout="30s")
        self.workers = max(1, sum(self.client.nthreads().values()))

    def start_local(self, n_tasks: int) -> None:
        if self.kind == "local" and self.pool is None:
            import multiprocessing

            n = max(1, min(self.workers, n_tasks))
            # Child processes that are not this pool's workers (see close).
            self._other_children = {p.pid for p in multiprocessing.active_children()}
            self.pool = ProcessPoolExecutor(
                max_workers=n,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )

    def _pool_processes(self) -> list[Any]:
        """The pool's worker processes: this process's children started since the pool."""
        import multiprocessing

        return [p for p in multiprocessing.active_children() if p.pid not in self._other_children]

    def submit(self, fn: Callable[..., Any], arg: Any) -> Any:
        if self.kind == "dask":
            return self.client.submit(fn, arg, pure=False)
        self.start_local(self.workers)
        with _sigint_blocked():  # submitting may start a worker process
            return self.pool.submit(fn, arg)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        futures = list(futures)
        if self.kind == "dask":
            from distributed import as_completed

            yield from as_completed(futures)
            return
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from done

    def cancel(self, futures: Iterable[Any]) -> None:
        futures = list(futures)
        if self.kind == "dask":
            self.client.cancel(futures)
        else:
            for f in futures:
                f.cancel()

    def close(self, kill: bool = False) -> None:
        if self.pool is not None:
            procs = self._pool_processes() if kill else []
            self.pool.shutdown(wait=not kill, cancel_futures=True)
            for p in procs:  # running cases are not recorded; a re-run does them again
                if p.is_alive():
                    p.terminate()
            self.pool = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def _is_worker_loss(err: BaseException) -> bool:
    if isinstance(err, BrokenProcessPool):
        return True
    return type(err).__name__ in ("KilledWorker", "CancelledError", "FutureCancelledError")


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class BatchProgress:
    """Progress of a batch: ``done`` includes ``failed`` and cases recorded by earlier runs."""

    done: int
    failed: int
    total: int
    skipped: int
    elapsed_s: float
    eta_s: float | None

    def line(self) -> str:
        eta = "" if self.eta_s is None else f", ETA {_duration(self.eta_s)}"
        resumed = f" ({self.skipped} from an earlier run)" if self.skipped else ""
        return (
            f"{self.done}/{self.total} cases done{resumed}, {self.failed} failed, "
            f"{_duration(self.elapsed_s)} elapsed{eta}"
        )


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ConsoleProgress:
    """A progress bar on stderr (``rich`` when installed, else a plain updating line)."""

    def __init__(self, description: str = "batch"):
        self.description = description
        self._rich = None
        self._task = None
        try:
            from rich.progress import BarColumn, Progress, TextColumn

            self._rich = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[line]}"),
                transient=False,
            )
        except ImportError:
            self._rich = None

    def __enter__(self) -> ConsoleProgress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def __call__(self, p: BatchProgress) -> None:
        if self._rich is not None:
            if self._task is None:
                self._task = self._rich.add_task(self.description, total=p.total, line="")
            self._rich.update(self._task, completed=p.done, line=p.line())
        else:
            sys.stderr.write("\r" + p.line() + " " * 8)
            sys.stderr.flush()


# --------------------------------------------------------------------------- runner


@dataclass
class BatchResult:
    """What a batch run produced."""

    out_dir: Path
    batch_id: int
    store_url: str
    total: int
    ran: int
    skipped: int
    failed: int
    results: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch: finished cases are recorded; re-run the same command to resume."""

    def __init__(self, result: BatchResult):
        super().__init__("batch interrupted")
        self.result = result


def run_batch(
    spec: BatchSpec | str | Path,
    out_dir: str | Path,
    executor: str = "local",
    workers: int | None = None,
    store_url: str | None = None,
    progress: Callable[[BatchProgress], None] | None = None,
    retry_failed: bool = False,
) -> BatchResult:
    """Run every case of a batch and write its outputs.

    Parameters
    ----------
    spec
        A :class:`BatchSpec` or the path of a spec YAML file.
    out_dir
        Output folder (created).
    executor
        ``"local"`` (a process pool), ``"local:N"`` (a Dask ``LocalCluster`` of N
        single-threaded worker processes) or a Dask scheduler address.
    workers
        Local pool processes (default: all cores).
    store_url
        Run store URL (default: SQLite file ``out_dir/runs.db``).
    progress
        Called after each finished chunk of cases.
    retry_failed
        Also re-run cases recorded as failed by an earlier run (default: skip them).

    Resuming: cases recorded by an earlier run of the same batch are skipped, except

    - cases that found no plan within the time limit (``no_plan_in_time``): always run
      again, since on a quieter machine (or after a change of time limit, which makes
      a new batch) the search may get further; a case that stopped on the clock *with* a
      plan (solver status ``TIME_LIMIT``) is an answer and is kept;
    - cases that failed (``failed``): run again only with ``retry_failed`` (they would
      usually fail the same way), e.g. after fixing a data problem;
    - optimise and frontier cases whose plan cannot be read back from the run store.

    Every output file is written atomically (:mod:`pathways.atomic`), so a run killed
    part way leaves each file whole, old or new. Plan files are checked against the run
    store on every run: one that is missing, cut short or changed is written again.

    Raises
    ------
    BatchInterrupted
        On Ctrl-C, after recording the finished cases and writing partial results.
    """
    if not isinstance(spec, BatchSpec):
        spec_path = Path(spec)
        spec = load_batch_spec(spec_path)
        spec_text = spec_path.read_text(encoding="utf-8")
    else:
        spec_text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    expanded = _expand(spec)
    cases = expanded.cases
    store = RunStore(store_url or f"sqlite:///{(out / STORE_FILE).resolve()}")
    try:
        batch_id = store.start_batch(spec_text, name=spec.name, spec_hash=expanded.spec_hash)
        recorded = store.finished_cases(batch_id, kept_statuses(retry_failed))
        recorded &= {c.case_id for c in cases}
        recorded -= _cases_without_their_plan(spec, store, batch_id, recorded)
        pending = [c for c in cases if c.case_id not in recorded]
        skipped = len(cases) - len(pending)
        log.info("batch %s: %d cases, %d already recorded", spec.name, len(cases), skipped)
        runner = _Runner(spec, expanded, store, batch_id, out, progress)
        runner.skipped = skipped
        runner.failed_before = len(store.finished_cases(batch_id, [STATUS_FAILED]) & recorded)
        ex = None
        try:
            if pending:
                ex = _Executor(executor, workers)
                runner.run(ex, pending)
            result = _finish(spec, expanded, store, batch_id, out, ex, runner)
        except KeyboardInterrupt:
            if ex is not None:
                ex.close(kill=True)
                ex = None
            partial = _finish(spec, expanded, store, batch_id, out, None, runner, partial=True)
            partial.interrupted = True
            raise BatchInterrupted(partial) from None
        finally:
            if ex is not None:
                ex.close()
        return result
    finally:
        store.close()


def kept_statuses(retry_failed: bool = False) -> list[str]:
    """Statuses of recorded cases that a resumed batch keeps (the others run again).

    ``no_plan_in_time`` is never kept; ``failed`` is kept unless ``retry_failed``.
    """
    kept = [STATUS_OK, STATUS_INFEASIBLE]
    return kept if retry_failed else [*kept, STATUS_FAILED]


def _cases_without_their_plan(
    spec: BatchSpec, store: RunStore, batch_id: int, recorded: Iterable[str]
) -> set[str]:
    """Optimise and frontier cases recorded as solved whose plan cannot be read back."""
    if not spec.makes_plans:
        return set()
    solved = store.finished_cases(batch_id, [STATUS_OK]) & set(recorded)
    plans = store.run_plans(batch_id)
    missing = set()
    for case_id in solved:
        try:
            Plan.model_validate(plans[case_id])
        except (KeyError, ValidationError, TypeError, ValueError):
            missing.add(case_id)
    if missing:
        log.warning(
            "%d solved case(s) have no readable plan in the run store; they run again",
            len(missing),
        )
    return missing


class _Runner:
    def __init__(
        self,
        spec: BatchSpec,
        expanded: _Expanded,
        store: RunStore,
        batch_id: int,
        out: Path,
        progress: Callable[[BatchProgress], None] | None,
    ):
        self.spec = spec
        self.expanded = expanded
        self.store = store
        self.batch_id = batch_id
        self.out = out
        self.progress = progress
        self.skipped = 0
        self.failed_before = 0
        self.ran = 0
        self.failed = 0
        self.lost = 0
        self.total = len(expanded.cases)
        self.t0 = time.perf_counter()

    def task(self, case: Case) -> CaseTask:
        base = self.expanded.base
        return CaseTask(
            case_id=case.case_id,
            run=self.spec.run,
            scenario=base,
            icb=None if base is not None else case.footprint,
            plan=self.expanded.plan,
            changes=case.changes,
            seed=case.seed,
            solver=self.spec.solver.model_dump(mode="json"),
            simulation=self.spec.sim.model_dump(mode="json") if self.spec.run == "simulate" else None,
        )

    def chunks(self, pending: list[Case], workers: int) -> list[list[Case]]:
        if self.spec.run != "evaluate":  # optimise, frontier and simulate cases are long
            return [[c] for c in pending]
        size = math.ceil(len(pending) / max(1, CHUNKS_PER_WORKER * workers))
        size = max(1, min(MAX_EVALUATE_CHUNK, size))
        by_fp: dict[str, list[Case]] = {}
        for c in pending:
            by_fp.setdefault(c.footprint, []).append(c)
        out = []
        for group in by_fp.values():
            out += [group[i : i + size] for i in range(0, len(group), size)]
        return out

    def report(self) -> None:
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.t0
        done = self.skipped + self.ran
        left = self.total - done
        eta = elapsed / self.ran * left if self.ran else None
        self.progress(
            BatchProgress(
                done=done,
                failed=self.failed_before + self.failed,
                total=self.total,
                skipped=self.skipped,
                elapsed_s=elapsed,
                eta_s=eta,
            )
        )

    def run(self, ex: _Executor, pending: list[Case]) -> None:
        by_id = {c.case_id: c for c in self.expanded.cases}
        chunks = self.chunks(pending, ex.workers)
        if ex.kind == "local":
            ex.start_local(len(chunks))
        futures: dict[Any, list[Case]] = {}
        for chunk in chunks:
            futures[ex.submit(run_chunk, [self.task(c) for c in chunk])] = chunk
        self.report()
        try:
            for fut in ex.as_completed(list(futures)):
                self.collect(fut, futures.pop(fut), by_id)
                self.report()
        except KeyboardInterrupt:
            # Stop, but keep what has already been computed.
            finished = [f for f in futures if f.done()]
            ex.cancel([f for f in futures if not f.done()])
            for fut in finished:
                try:
                    self.collect(fut, futures.pop(fut), by_id)
                except Exception:  # noqa: BLE001 - best effort while stopping
                    log.debug("could not record a finished chunk while stopping", exc_info=True)
            raise
        except BaseException:
            ex.cancel(list(futures))
            raise

    def collect(self, fut: Any, chunk: list[Case], by_id: Mapping[str, Case]) -> None:
        """Record the results of one finished chunk (all of them, even if Ctrl-C arrives)."""
        try:
            results = fut.result()
        except Exception as err:  # noqa: BLE001
            if _is_worker_loss(err):
                log.warning(
                    "a worker stopped while running %d case(s); they are not recorded and "
                    "will run when the batch is run again: %s",
                    len(chunk),
                    err,
                )
                self.lost += len(chunk)
                return
            results = [_failure(c, err) for c in chunk]
        interrupted = False
        for r in results:
            try:
                self.record(by_id[r["case_id"]], r)
            except KeyboardInterrupt:
                interrupted = True
                self.record(by_id[r["case_id"]], r)  # recording a case again replaces it
        if interrupted:
            raise KeyboardInterrupt

    def record(self, case: Case, r: Mapping[str, Any]) -> None:
        self.store.record_run(
            self.batch_id,
            case.case_id,
            case_hash=case.case_hash,
            inputs=case.inputs,
            status=r["status"],
            kpis=r["kpis"],
            plan=r["plan"],
            error=r["error"],
            solver_status=r["solver_status"],
            gap=r["gap"],
            objective=r["objective"],
            seconds=r["seconds"],
            solver_seconds=r.get("solver_seconds"),
            seed=case.seed,
            scenario_hash=r["scenario_hash"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            host=r["host"],
        )
        self.ran += 1
        first = (r["error"] or "").splitlines()[0] if r["error"] else ""
        if r["status"] == STATUS_INFEASIBLE:
            log.info("case %s is infeasible: %s", case.case_id, first)
        elif r["status"] != STATUS_OK:
            self.failed += 1
            log.warning("case %s failed (%s): %s", case.case_id, r["status"], first)
        if r["plan"] is not None:
            _write_plan(self.out, case.case_id, r["plan"])


def _failure(case: Case, err: BaseException) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "case_id": case.case_id,
        "status": STATUS_FAILED,
        "error": f"{type(err).__name__}: {err}",
        "kpis": None,
        "plan": None,
        "solver_status": None,
        "gap": None,
        "objective": None,
        "seconds": None,
        "scenario_hash": None,
        "host": None,
        "started_at": now,
        "finished_at": now,
    }


def _plan_yaml(plan: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(plan), sort_keys=False, width=100)


def _write_plan(out: Path, case_id: str, plan: Mapping[str, Any]) -> Path:
    folder = out / PLANS_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{case_id}.yaml"
    write_text_atomic(path, _plan_yaml(plan))
    return path


def _plan_file_is_current(path: Path, plan: Mapping[str, Any]) -> bool:
    """Whether ``path`` holds exactly the recorded plan (not missing, cut short or changed)."""
    try:
        return path.read_text(encoding="utf-8") == _plan_yaml(plan)
    except (OSError, UnicodeDecodeError):
        return False


def _refresh_plan_files(out: Path, store: RunStore, batch_id: int, case_ids: set[str]) -> None:
    """Write each recorded plan whose file is missing, unreadable or not the recorded plan."""
    rewritten = []
    for case_id, plan in store.run_plans(batch_id).items():
        if case_id not in case_ids:
            continue
        path = out / PLANS_DIR / f"{case_id}.yaml"
        if not _plan_file_is_current(path, plan):
            if path.exists():
                rewritten.append(path.name)
            _write_plan(out, case_id, plan)
    if rewritten:
        log.warning(
            "%d plan file(s) were incomplete or changed and were written again from the run "
            "store: %s", len(rewritten), ", ".join(sorted(rewritten)[:10]),
        )  # fmt: skip


# --------------------------------------------------------------------------- outputs


def results_frame(store: RunStore, batch_id: int, cases: Sequence[Case]) -> pd.DataFrame:
    """One row per recorded case, in case order: ids, inputs, seed, status, solver report, KPIs."""
    runs = store.runs_frame(batch_id)
    if runs.empty:
        return pd.DataFrame(columns=[CASE_ID, FOOTPRINT, SEED, STATUS, ERROR])
    order = {c.case_id: c.index for c in cases}
    runs = runs[runs[CASE_ID].isin(order)].copy()
    runs["_order"] = runs[CASE_ID].map(order)
    runs = runs.sort_values("_order").drop(columns="_order").reset_index(drop=True)
    input_cols: list[str] = []
    for c in cases:
        for k in c.inputs:
            if k not in input_cols:
                input_cols.append(k)
    input_cols = [c for c in input_cols if c in runs.columns]
    head = [
        CASE_ID, *input_cols, SEED, STATUS, ERROR, SOLVER_STATUS, GAP, OBJECTIVE, SOLVER_SECONDS,
        SECONDS,
    ]  # fmt: skip
    from pathways.store import RUN_COLUMNS

    kpi_cols = [c for c in runs.columns if c not in head and c not in RUN_COLUMNS]
    frame = runs[head + kpi_cols].copy()
    frame[ERROR] = frame[ERROR].map(lambda e: e.split("\n\n", 1)[0] if isinstance(e, str) else e)
    return frame


def _finish(
    spec: BatchSpec,
    expanded: _Expanded,
    store: RunStore,
    batch_id: int,
    out: Path,
    ex: _Executor | None,
    runner: _Runner,
    partial: bool = False,
) -> BatchResult:
    files: dict[str, Path] = {}
    results = results_frame(store, batch_id, expanded.cases)
    path = out / RESULTS_FILE
    write_parquet_atomic(results, path)
    files["results"] = path
    answered = (STATUS_OK, STATUS_INFEASIBLE)
    failed = int((~results[STATUS].isin(answered)).sum()) if not results.empty else 0
    if not partial:
        if spec.makes_plans:
            _refresh_plan_files(out, store, batch_id, set(results[CASE_ID]))
            files["plans"] = out / PLANS_DIR
        extra_md: list[str] = []
        if spec.run == "frontier":
            frontier = frontier_table(results)
            files["frontier"] = out / "frontier.csv"
            write_csv_atomic(frontier, files["frontier"])
        if spec.run == "optimise" and spec.monte_carlo is not None:
            owned = ex is None  # every case was recorded earlier: start a pool for this step
            ex_robust = _Executor("local", None) if owned else ex
            try:
                files.update(
                    robust_outputs(
                        spec, expanded, store, batch_id, results, out, ex_robust, extra_md
                    )
                )
            finally:
                if owned:
                    ex_robust.close()
        md, html = summary_documents(spec, results, store.provenance(), extra_md)
        files["summary_md"] = out / "summary.md"
        files["summary_html"] = out / "summary.html"
        write_text_atomic(files["summary_md"], md)
        write_text_atomic(files["summary_html"], html)
    return BatchResult(
        out_dir=out,
        batch_id=batch_id,
        store_url=store.url,
        total=len(expanded.cases),
        ran=runner.ran,
        skipped=runner.skipped,
        failed=failed,
        results=results,
        files=files,
    )


def _group_columns(spec: BatchSpec) -> list[str]:
    return [FOOTPRINT, *spec.grid_axes()]


def kpi_stats(spec: BatchSpec, results: pd.DataFrame, kpis: Sequence[str]) -> pd.DataFrame:
    """Mean, p5, p50 and p95 of each KPI per footprint and grid point (successful cases)."""
    ok = results[results[STATUS] == STATUS_OK]
    keys = [c for c in _group_columns(spec) if c in ok.columns]
    rows = []
    for key, g in ok.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for k in kpis:
            if k not in g:
                continue
            v = g[k].to_numpy(float)
            v = v[np.isfinite(v)]
            if not len(v):
                continue
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "kpi": k,
                    "n": len(v),
                    "mean": float(v.mean()),
                    "p5": float(np.percentile(v, 5)),
                    "p50": float(np.percentile(v, 50)),
                    "p95": float(np.percentile(v, 95)),
                }
            )
    return pd.DataFrame(rows)


def frontier_table(results: pd.DataFrame) -> pd.DataFrame:
    """Frontier runs: per footprint and other inputs, KPIs by budget with marginal cost."""
    ok = results[results[STATUS] == STATUS_OK].copy()
    if ok.empty or BUDGET_PATH not in ok:
        return pd.DataFrame()
    keys = [c for c in ok.columns if c in (FOOTPRINT, SAMPLE) or ("." in c and c != BUDGET_PATH)]
    parts = []
    for _, g in ok.groupby(keys, sort=False, dropna=False) if keys else [(None, ok)]:
        g = g.sort_values(BUDGET_PATH)
        # the one definition the CLI and the app's frontier use too
        g = g.assign(marginal_gbp_per_oap_bed_day_avoided=marginal_cost(g).to_numpy())
        parts.append(g)
    cols = [
        *keys,
        BUDGET_PATH,
        CASE_ID,
        SOLVER_STATUS,
        GAP,
        "oap_bed_days_per_year",
        "admissions_per_year",
        "total_cost_gbp_per_year",
        "marginal_gbp_per_oap_bed_day_avoided",
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[[c for c in cols if c in table.columns]]


# --------------------------------------------------------------------------- robust plan


def min_max_regret(objectives: np.ndarray) -> tuple[int, np.ndarray]:
    """Index of the plan with the smallest maximum regret, and the regret matrix.

    ``objectives[i, s]`` is plan ``i``'s objective (lower is better) on sample ``s``;
    regret is the excess over the best plan on that sample. Ties go to the lowest index.
    """
    obj = np.asarray(objectives, dtype=float)
    regret = obj - obj.min(axis=0, keepdims=True)
    return int(np.argmin(regret.max(axis=1))), regret


def _plan_key(plan: Mapping[str, Any]) -> str:
    core = {k: v for k, v in plan.items() if k not in ("name", "solver", "predicted")}
    return _hash(core)


def robust_outputs(
    spec: BatchSpec,
    expanded: _Expanded,
    store: RunStore,
    batch_id: int,
    results: pd.DataFrame,
    out: Path,
    ex: _Executor,
    md: list[str],
) -> dict[str, Path]:
    """Monte Carlo optimise runs: site selection frequencies and a min-max-regret robust plan.

    For each footprint and grid point, every distinct sample plan (the
    ``robust.max_candidates`` most frequent) is evaluated on every sample's
    scenario. A plan's regret on a sample is its objective there minus the best
    objective any candidate reaches on that sample; the robust plan is the candidate
    with the smallest maximum regret (ties: the most frequent, then the earliest).
    """
    plans = store.run_plans(batch_id)
    by_id = {c.case_id: c for c in expanded.cases}
    ok = results[(results[STATUS] == STATUS_OK) & results[CASE_ID].isin(plans)]
    if ok.empty:
        return {}
    groups: dict[str, list[Case]] = {}
    for cid in ok[CASE_ID]:
        case = by_id[cid]
        groups.setdefault(case.group, []).append(case)
    selection_rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    single = len(groups) == 1
    md.append("## Robust plan (minimum maximum regret across samples)\n")
    for g_i, (group, gcases) in enumerate(groups.items()):
        selection_rows += _site_selection(group, gcases, plans)
        counts: dict[str, list[Case]] = {}
        for c in gcases:
            counts.setdefault(_plan_key(plans[c.case_id]), []).append(c)
        ranked = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[1][0].index))
        candidates = ranked[: spec.robust.max_candidates]
        samples = tuple((c.case_id, c.changes) for c in gcases)
        base = expanded.base
        futures = {}
        for key, members in candidates:
            plan = Plan.model_validate(plans[members[0].case_id])
            task = RegretTask(
                candidate=key,
                plan=plan,
                scenario=base,
                icb=None if base is not None else gcases[0].footprint,
                samples=samples,
            )
            futures[ex.submit(run_regret, task)] = key
        evals: dict[str, list[tuple[str, float, dict[str, float]]]] = {}
        try:
            for fut in ex.as_completed(list(futures)):
                key, rows = fut.result()
                evals[key] = rows
        except BaseException:
            ex.cancel(list(futures))
            raise
        keys = [k for k, _ in candidates]
        obj = np.array([[r[1] for r in evals[k]] for k in keys])  # candidates x samples
        best, regret = min_max_regret(obj)
        worst = regret.max(axis=1)
        chosen_key = keys[best]
        chosen_case = counts[chosen_key][0]
        plan_dict = dict(plans[chosen_case.case_id])
        plan_dict["name"] = f"robust (min max regret) {group}"
        suffix = "" if single else f"-{g_i + 1:02d}"
        path = out / f"robust_plan{suffix}.yaml"
        write_text_atomic(path, _plan_yaml(plan_dict))
        files[f"robust_plan{suffix}"] = path
        row_of = {k: i for i, k in enumerate(keys)}
        for s_i, (case_id, objective, kpis) in enumerate(evals[chosen_key]):
            own = row_of.get(_plan_key(plans[case_id]))
            score_rows.append(
                {
                    GROUP: group,
                    CASE_ID: case_id,
                    SAMPLE: by_id[case_id].sample,
                    **by_id[case_id].changes,
                    "robust_from_case": chosen_case.case_id,
                    "objective": objective,
                    "own_plan_objective": float(obj[own, s_i]) if own is not None else np.nan,
                    "best_objective": float(obj[:, s_i].min()),
                    "regret": float(regret[best, s_i]),
                    **kpis,
                }
            )
        md.append(
            f"- **{group}**: plan of case `{chosen_case.case_id}` (chosen by "
            f"{len(counts[chosen_key])} of {len(gcases)} samples); maximum regret "
            f"{worst[best]:,.1f} objective units over {len(gcases)} samples; "
            f"{len(counts)} distinct plans, {len(keys)} compared. File: `{path.name}`."
        )
    md.append("")
    sel = pd.DataFrame(selection_rows)
    files["site_selection"] = out / "site_selection.csv"
    write_csv_atomic(sel, files["site_selection"])
    files["robust_scorecard"] = out / "robust_scorecard.csv"
    write_csv_atomic(pd.DataFrame(score_rows), files["robust_scorecard"])
    return files


def _site_selection(
    group: str, cases: Sequence[Case], plans: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    from pathways.scenario import CAPACITY_FIELD

    caps: dict[tuple[str, str], list[int]] = {}
    n = len(cases)
    for i, c in enumerate(cases):
        for sp in plans[c.case_id].get("sites", []):
            for service, fieldname in CAPACITY_FIELD.items():
                v = int(sp["capacity"].get(fieldname, 0))
                caps.setdefault((sp["site_id"], service), [0] * n)[i] = v
    rows = []
    for (site_id, service), values in caps.items():
        arr = np.array(values)
        if not arr.any():
            continue
        rows.append(
            {
                GROUP: group,
                "site_id": site_id,
                "service": service,
                "samples": n,
                "times_chosen": int((arr > 0).sum()),
                "share_chosen": float((arr > 0).mean()),
                "capacity_mean": float(arr.mean()),
                "capacity_median": float(np.median(arr)),
                "capacity_min": int(arr.min()),
                "capacity_max": int(arr.max()),
            }
        )
    return rows


# --------------------------------------------------------------------------- summary


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float | np.floating):
        a = abs(float(v))
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:,.1f}"
        return f"{v:.3f}"
    return str(v)


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(none)\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def summary_documents(
    spec: BatchSpec,
    results: pd.DataFrame,
    provenance: Mapping[str, Any],
    extra_md: Sequence[str] = (),
) -> tuple[str, str]:
    """``summary.md`` and ``summary.html`` (plotly distributions of the headline KPIs)."""
    from pathways.kpis import HEADLINE_KPIS

    total = len(results)
    failed = results[results[STATUS] != STATUS_OK] if total else results
    md = [f"# Batch '{spec.name}'\n"]
    if spec.description:
        md.append(spec.description + "\n")
    md.append(
        f"Run: **{spec.run}**; {total} cases recorded, {total - len(failed)} succeeded, "
        f"{len(failed)} failed. Footprints: {results[FOOTPRINT].nunique() if total else 0}. "
        f"Package {provenance.get('package_version')}, data {provenance.get('data_version')}.\n"
    )
    if spec.run == "simulate":
        sim = spec.sim
        md.append(
            f"Each case is simulated ({sim.reps} replications, "
            f"{'the analytic assumptions' if sim.analytic else 'default simulation settings'}"
            f"{', changed: ' + ', '.join(f'{k}={v}' for k, v in sim.settings.items()) if sim.settings else ''}"
            "); figures are means over replications, with 95% intervals in results.parquet "
            f"(`<kpi>{CI_LOW}`, `<kpi>{CI_HIGH}`). Samples share random numbers across "
            "footprints and grid points.\n"
        )
    kpis = [k for k in HEADLINE_KPIS if k in results.columns]
    stats = kpi_stats(spec, results, kpis) if total else pd.DataFrame()
    if spec.monte_carlo is not None:
        md.append(
            f"## Headline KPIs over {spec.monte_carlo.samples} Monte Carlo samples "
            "(mean, 5th, 50th and 95th percentiles)\n"
        )
        md.append(_md_table(stats))
        md.append("\nUncertain parameters:\n")
        for k, d in spec.monte_carlo.parameters.items():
            args = {kk: vv for kk, vv in d.model_dump().items() if kk not in ("dist", "unit")}
            md.append(f"- `{k}`: {d.dist} {args} ({d.unit})")
        md.append("")
    else:
        md.append("## Headline KPIs by case\n")
        solver = [SOLVER_STATUS, GAP] if spec.makes_plans else []
        inputs = [c for c in results.columns if c == FOOTPRINT or "." in c]
        cols = [c for c in (CASE_ID, *inputs, STATUS, *solver, *kpis) if c in results.columns]
        shown = results[cols].head(200) if total else results
        md.append(_md_table(shown))
        if total > 200:
            md.append(f"\n(first 200 of {total} cases; all are in results.parquet)\n")
    md += list(extra_md)
    if len(failed):
        md.append("## Failed cases\n")
        md.append(_md_table(failed[[CASE_ID, FOOTPRINT, ERROR]].head(50)))
    md.append(
        "\nFiles: `results.parquet` (one row per case), `summary.html` (KPI distributions)"
        + (", `plans/` (one plan per case)" if spec.makes_plans else "")
        + ". Re-running the same command resumes the batch.\n"
    )
    return "\n".join(md), _summary_html(spec, results, kpis, stats, "\n".join(md))


def _summary_html(
    spec: BatchSpec, results: pd.DataFrame, kpis: Sequence[str], stats: pd.DataFrame, md: str
) -> str:
    import html as html_mod

    import plotly.graph_objects as go

    ok = results[results[STATUS] == STATUS_OK] if len(results) else results
    keys = [c for c in _group_columns(spec) if c in ok.columns]
    parts = []
    first = True
    for k in kpis:
        fig = go.Figure()
        groups = list(ok.groupby(keys, sort=False, dropna=False)) if keys and len(ok) else []
        for key, g in groups[:12]:
            label = " | ".join(map(str, key if isinstance(key, tuple) else (key,)))
            if spec.monte_carlo is not None:
                fig.add_trace(go.Histogram(x=g[k], name=label, opacity=0.6))
            else:
                fig.add_trace(go.Box(y=g[k], name=label, boxpoints="all"))
        fig.update_layout(
            title=k.replace("_", " "),
            template="plotly_white",
            barmode="overlay",
            height=360,
            showlegend=len(groups) > 1 and len(groups) <= 12,
        )
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    body = "\n".join(parts)
    table = ""
    if not stats.empty:
        table = stats.to_html(index=False, float_format=lambda v: _fmt(float(v)))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Batch {html_mod.escape(spec.name)}</title></head><body style='font-family:sans-serif'>"
        f"<h1>Batch '{html_mod.escape(spec.name)}'</h1>"
        f"<pre style='white-space:pre-wrap'>{html_mod.escape(md.split(chr(10) + '## ')[0])}</pre>"
        f"{table}{body}</body></html>"
    )


# --------------------------------------------------------------------------- CLI


def batch_cli(args: Any) -> int:
    """``pathways batch SPEC --out DIR [--dask ADDRESS|local:N] [--workers N] [--store URL]
    [--retry-failed]``.

    Running the same command again resumes the batch: recorded cases are skipped, except
    those that found no plan within the time limit (always run again) and, when
    ``args.retry_failed`` is set (the ``--retry-failed`` option), those that failed (see
    :func:`run_batch`).

    Exit status: 0 when every case has an answer (a plan, or proven infeasible with the
    reason), 1 when some failed or found no plan in time, 130 on Ctrl-C.
    """
    spec = load_batch_spec(args.spec)
    executor = getattr(args, "dask", None) or "local"
    workers = getattr(args, "workers", 0) or None
    store_url = getattr(args, "store", None)
    retry_failed = bool(getattr(args, "retry_failed", False))
    cases = len(expand_cases(spec))
    where = "the local process pool" if executor == "local" else f"Dask ({executor})"
    print(f"batch '{spec.name}': {cases} {spec.run} cases on {where}", file=sys.stderr)
    try:
        with ConsoleProgress(spec.name) as bar:
            result = run_batch(
                Path(args.spec), args.out, executor, workers, store_url, progress=bar,
                retry_failed=retry_failed,
            )  # fmt: skip
    except BatchInterrupted as stop:
        r = stop.result
        argv = ["pathways", *sys.argv[1:]] if sys.argv else []
        cmd = " ".join(_quote(a) for a in argv) or "the same command"
        print(
            f"\nstopped: {r.skipped + r.ran} of {r.total} cases are recorded in {r.store_url}.\n"
            f"Partial results: {r.out_dir / RESULTS_FILE}.\n"
            f"Run the same command again to resume:\n  {cmd}",
            file=sys.stderr,
        )
        return 130
    print(
        f"{result.total} cases: {result.ran} run now, {result.skipped} from an earlier run, "
        f"{result.failed} failed.",
        file=sys.stderr,
    )
    for name, path in result.files.items():
        print(f"  {name}: {path}", file=sys.stderr)
    if result.failed:
        print(
            f"{result.failed} case(s) failed: see the 'error' column of {result.files['results']} "
            "and summary.md",
            file=sys.stderr,
        )
        return 1
    return 0


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"
