"""``validate(scenario, plan)``: analytic against simulated KPIs, and why they differ.

The simulation is run four times with the same seeds (common random numbers), adding
one departure from the analytic model at a time:

0. **time-varying load**: the analytic model's own assumptions (Poisson arrivals,
   exponential stays, no season, no repatriation) with arrivals following the week's
   168-hour profile. The analytic model treats each hour as if it lasted for ever
   (a steady state per hour); a queue whose jobs last hours (mobile teams, 3 h) lags
   behind the profile, so this run can already differ;
1. **LOS shape**: stays follow ``params.los_distribution`` and its CVs;
2. **seasonality**: arrivals follow the season (``seasonal_amplitude``);
3. **repatriation**: out-of-area placements come back as ``params.repatriation`` says.

Run 3 is the full simulation with ``params``. A KPI *disagrees* when its analytic
value lies outside the full run's confidence interval; the assumptions that explain
it are the steps whose paired difference (run i minus run i - 1, replication by
replication) has an interval that excludes zero, largest first, and step 0 itself
when the analytic value is already outside run 0's interval.

For the bed pool, ``calibrated_peakedness`` is the Hayward peakedness ``z`` with which
``erlang_b_peaked(load, beds, z)`` equals the full run's blocked share (the value to
put in ``queues.inpatient_peakedness`` so that the analytic model matches the
simulation), when the simulation blocks more than Erlang B; None when even the
scenario's largest peakedness (20) blocks less. ``calibrated_peakedness_by_step`` gives
the same for each step's run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from pathways import queues
from pathways.instance import Instance, prepare
from pathways.plan import Plan
from pathways.scenario import Scenario
from pathways.simulate import engine
from pathways.simulate.params import SimParams
from pathways.simulate.result import SimulationResult, _num
from pathways.simulate.run import simulate

STEP_NAMES = ("time-varying load", "LOS shape", "seasonality", "repatriation")


def steps(params: SimParams) -> list[tuple[str, SimParams]]:
    """The four cumulative settings, from the analytic assumptions to ``params``."""
    base = SimParams.analytic(
        time_of_week=params.time_of_week, years=params.years, warmup_days=params.warmup_days
    )
    los = replace(
        base,
        los_distribution=params.los_distribution,
        inpatient_los_cv=params.inpatient_los_cv,
        crisis_house_los_cv=params.crisis_house_los_cv,
        oap_los_cv=params.oap_los_cv,
        place_of_safety_los_cv=params.place_of_safety_los_cv,
    )
    season = replace(
        los,
        seasonal_amplitude=params.seasonal_amplitude,
        seasonal_peak_day=params.seasonal_peak_day,
    )
    full = replace(
        season,
        repatriation=params.repatriation,
        repatriation_after_days=params.repatriation_after_days,
    )
    first = STEP_NAMES[0] if params.time_of_week else "steady-state formulas"
    return list(zip((first, *STEP_NAMES[1:]), (base, los, season, full), strict=True))


@dataclass(frozen=True)
class ValidationResult:
    """Analytic and simulated KPIs side by side (``table``), one run per step (``runs``)."""

    table: pd.DataFrame
    runs: dict[str, SimulationResult]
    calibrated_peakedness: float | None
    calibrated_peakedness_by_step: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def full(self) -> SimulationResult:
        return list(self.runs.values())[-1]

    def disagreements(self) -> pd.DataFrame:
        t = self.table
        return t[t["agrees"].fillna(True).eq(False)]

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.table.to_dict(orient="records"):
            rows.append({k: (_num(v) if isinstance(v, float) else
                             (None if v is pd.NA else v)) for k, v in r.items()})  # fmt: skip
        return {
            "kpis": rows,
            "steps": {name: run.params.to_dict() for name, run in self.runs.items()},
            "calibrated_peakedness": self.calibrated_peakedness,
            "calibrated_peakedness_by_step": self.calibrated_peakedness_by_step,
            "seed": self.full.seed,
            "reps": self.full.reps,
            "plan": self.full.plan_name,
            "scenario": self.full.scenario_name,
            **self.extra,
        }


def _paired(a: np.ndarray, b: np.ndarray, level: float) -> tuple[float, float, float]:
    return engine.t_interval(np.asarray(b, float) - np.asarray(a, float), level)


def calibrate_peakedness(load: float, beds: int, blocked: float) -> float | None:
    """Peakedness z >= 1 with ``erlang_b_peaked(load, beds, z) == blocked`` (None if none)."""
    if beds <= 0 or load <= 0 or not math.isfinite(blocked):
        return None
    b1 = float(queues.erlang_b_peaked(load, beds, 1.0))
    if blocked <= b1:
        return 1.0
    f = lambda z: float(queues.erlang_b_peaked(load, beds, z)) - blocked  # noqa: E731
    if f(20.0) < 0:
        return None
    return float(optimize.brentq(f, 1.0, 20.0, xtol=1e-4))


def validate(
    scenario: Scenario | Instance,
    plan: Plan | None = None,
    reps: int = 10,
    seed: int = 0,
    params: SimParams | None = None,
    level: float = 0.95,
    *,
    workers: int = 1,
    executor: str = "local",
    progress: Callable[[int, int, float], None] | None = None,
) -> ValidationResult:
    """Compare ``evaluate`` with the simulation and name what explains each gap."""
    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    p = params if params is not None else SimParams()
    plan_steps = steps(p)
    runs: dict[str, SimulationResult] = {}
    total = reps * len(plan_steps)
    for i, (name, sp) in enumerate(plan_steps):
        report = None
        if progress is not None:
            report = lambda d, _t, s, i=i: progress(i * reps + d, total, s)  # noqa: E731
        runs[name] = simulate(inst, plan, reps=reps, seed=seed, params=sp, workers=workers,
                              executor=executor, progress=report)  # fmt: skip
    names = list(runs)
    full = runs[names[-1]]
    rows = []
    for kpi in full.replications.columns:
        a = full.analytic.get(kpi, float("nan"))
        m, lo, hi = engine.t_interval(full.replications[kpi].to_numpy(float), level)
        row: dict[str, Any] = {"kpi": kpi, "analytic": a, "simulated": m,
                               "ci_low": lo, "ci_high": hi}  # fmt: skip
        for name in names:
            if kpi in runs[name].replications:
                row[f"mean[{name}]"] = float(np.nanmean(runs[name].replications[kpi]))
        agrees: Any = pd.NA
        why = ""
        if np.isfinite(a) and np.isfinite(lo):
            tol = 1e-9 * max(abs(a), 1.0)
            agrees = bool(lo - tol <= a <= hi + tol)
            if not agrees:
                why = _explain(kpi, a, runs, names, level)
        row["gap"] = m - a if np.isfinite(a) else float("nan")
        row["agrees"] = agrees
        row["explained_by"] = why
        rows.append(row)
    table = pd.DataFrame(rows)
    table["agrees"] = table["agrees"].astype("boolean")
    extra = {"pool_offered_load": None, "beds": full.extra.get("beds")}
    from pathways.simulate.model import build_model

    model, _card, _ = build_model(inst, plan)
    extra["pool_offered_load"] = model.pool_load
    by_step = {
        name: calibrate_peakedness(model.pool_load, model.beds,
                                   run.mean("inpatient_blocked_share"))  # fmt: skip
        for name, run in runs.items()
    }
    return ValidationResult(table=table, runs=runs, calibrated_peakedness=by_step[names[-1]],
                            calibrated_peakedness_by_step=by_step, extra=extra)  # fmt: skip


def _explain(
    kpi: str, a: float, runs: dict[str, SimulationResult], names: list[str], level: float
) -> str:
    parts: list[tuple[float, str]] = []
    base = runs[names[0]].replications
    if kpi in base:
        _, lo, hi = engine.t_interval(base[kpi].to_numpy(float), level)
        if np.isfinite(lo) and not lo <= a <= hi:
            parts.append((abs(float(np.nanmean(base[kpi])) - a),
                          f"{names[0]} ({float(np.nanmean(base[kpi])) - a:+.4g})"))  # fmt: skip
    for prev, name in zip(names, names[1:], strict=False):
        x, y = runs[prev].replications, runs[name].replications
        if kpi not in x or kpi not in y:
            continue
        d, lo, hi = _paired(x[kpi].to_numpy(float), y[kpi].to_numpy(float), level)
        if np.isfinite(lo) and (lo > 0 or hi < 0):
            parts.append((abs(d), f"{name} ({d:+.4g})"))
    if not parts:
        return "chance: no single step moves it beyond its interval (1 KPI in 20 falls outside a 95% interval by chance)"
    return "; ".join(s for _, s in sorted(parts, key=lambda t: -t[0]))
