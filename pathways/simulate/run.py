"""``simulate(scenario, plan, reps, seed)``: replications in this process, a local pool or Dask.

Replication ``r`` always uses child ``r`` of ``numpy.random.SeedSequence(seed)``
(``SeedSequence(seed).spawn(reps)[r]``), whichever process runs it, and results are put
back in replication order, so the result is the same for any number of workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pathways.errors import InputError, Problem
from pathways.instance import Instance
from pathways.plan import Plan
from pathways.scenario import Scenario
from pathways.simulate.des import Replication, run_replication
from pathways.simulate.model import Model, analytic_values, build_model
from pathways.simulate.params import SimParams
from pathways.simulate.result import SimulationResult

MAX_REPS = 100_000


@dataclass(frozen=True)
class RepTask:
    """Replications ``indices`` of one model (picklable)."""

    model: Model
    params: SimParams
    seed: int
    reps: int
    indices: tuple[int, ...]


def run_reps(task: RepTask) -> list[tuple[int, Replication]]:
    """Run some replications of a task (in any process)."""
    children = np.random.SeedSequence(task.seed).spawn(task.reps)
    return [(r, run_replication(task.model, task.params, children[r])) for r in task.indices]


def _check(reps: Any, seed: Any, workers: Any) -> None:
    problems = []
    if not isinstance(reps, int | np.integer) or isinstance(reps, bool) or not 1 <= reps <= MAX_REPS:
        problems.append(Problem("simulate", None, "reps", f"must be a whole number from 1 to {MAX_REPS:,}"))
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        problems.append(Problem("simulate", None, "seed", "must be a whole number >= 0"))
    if not isinstance(workers, int | np.integer) or isinstance(workers, bool) or workers < 0:
        problems.append(Problem("simulate", None, "workers", "must be a whole number >= 0"))
    if problems:
        raise InputError(problems)


def simulate(
    scenario: Scenario | Instance,
    plan: Plan | None = None,
    reps: int = 20,
    seed: int = 0,
    params: SimParams | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    progress: Callable[[int, int, float], None] | None = None,
    **changes: Any,
) -> SimulationResult:
    """Simulate the crisis pathway of a plan (default: today's capacity).

    ``params``: a :class:`SimParams` (default: seasonal demand, lognormal stays,
    repatriation after 7 days); keyword ``changes`` (``years=2``,
    ``repatriation="never"``, ...) are applied on top. ``workers``: 1 runs here; more
    (or 0 = every core) runs on a local process pool; ``executor`` ``"local:N"`` or a
    Dask scheduler address runs on Dask. ``progress(done, total, elapsed_s)`` is called
    as replications finish.
    """
    _check(reps, seed, workers)
    p = params if params is not None else SimParams()
    if not isinstance(p, SimParams):
        raise InputError(Problem("simulate", None, "params", "must be a SimParams"))
    if changes:
        unknown = sorted(set(changes) - set(p.to_dict()))
        if unknown:
            raise InputError(
                Problem("simulate", None, unknown[0], "is not a simulation setting (see SimParams)")
            )
        p = p.with_changes(**changes)
    model, card, inst = build_model(scenario, plan)
    t0 = time.perf_counter()
    out: dict[int, Replication] = {}

    def done(r: int, rep: Replication) -> None:
        out[r] = rep
        if progress is not None:
            progress(len(out), reps, time.perf_counter() - t0)

    if executor == "local" and workers == 1:
        children = np.random.SeedSequence(int(seed)).spawn(reps)
        for r in range(reps):
            done(r, run_replication(model, p, children[r]))
    else:
        _run_parallel(model, p, int(seed), reps, workers, executor, done)

    rows = [out[r] for r in range(reps)]
    keys: list[str] = []
    for rep in rows:
        keys.extend(k for k in rep.kpis if k not in keys)
    df = pd.DataFrame([rep.kpis for rep in rows], columns=keys)
    df.index.name = "replication"
    houses = tuple(k[len("crisis_house_turned_away_share["):-1] for k in keys
                   if k.startswith("crisis_house_turned_away_share["))  # fmt: skip
    return SimulationResult(
        replications=df,
        analytic=analytic_values(card, model),
        daily_oaps_by_replication=np.stack([rep.daily_oaps for rep in rows]),
        params=p,
        seed=int(seed),
        reps=int(reps),
        plan_name=model.plan_name,
        scenario_name=inst.scenario.name,
        crisis_houses=houses,
        extra={"beds": model.beds, "days_measured": p.days,
               "inpatient_peakedness": float(inst.scenario.queues.inpatient_peakedness)},  # fmt: skip
    )


def _chunks(reps: int, workers: int) -> list[tuple[int, ...]]:
    size = max(1, math.ceil(reps / (workers * 4)))
    return [tuple(range(a, min(a + size, reps))) for a in range(0, reps, size)]


def _run_parallel(
    model: Model, p: SimParams, seed: int, reps: int, workers: int, executor: str,
    done: Callable[[int, Replication], None],
) -> None:  # fmt: skip
    from pathways.batch import _Executor

    ex = _Executor(executor, workers or None)
    try:
        if ex.kind == "local":
            ex.start_local(reps)
        futures = {}
        for idx in _chunks(reps, ex.workers):
            futures[ex.submit(run_reps, RepTask(model, p, seed, reps, idx))] = idx
        for fut in ex.as_completed(list(futures)):
            for r, rep in fut.result():
                done(r, rep)
    except BaseException:
        ex.close(kill=True)
        raise
    else:
        ex.close()

