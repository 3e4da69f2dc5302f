"""Results' "how sure are we": simulated years of today and the plan, compact for the browser.

The scorecard gives expected values for an average year. :func:`run_simulation`
replays simulated years (``pathways.simulate``: seasonal arrivals, skewed stays,
repatriation of out-of-area placements) for today's capacity and, when there is a
fresh optimised plan, for the plan, and keeps what the page shows: each KPI's mean with
its 95% interval, and people out of area on each day of the year. Results are cached
on disk per scenario, plan and settings, so a plan simulated once shows at once after.

The page's callbacks live in ``pages/results.py``; this module has no callbacks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dashapp.components import fmt_value, kpi_label, message_data
from dashapp.state import (
    Bound,
    job_config,
    plan_from_result,
    result_is_fresh,
    scenario_from_store,
)
from pathways.atomic import write_text_atomic
from pathways.errors import InputError
from pathways.io import measure_kind
from pathways.plan import Plan
from pathways.scenario import Scenario
from pathways.simulate import SimParams, SimulationResult, simulate

log = logging.getLogger(__name__)

SIM_REPS = Bound("Simulated years", "replications of one year", 2, 200, whole=True,
                 blank="10 years")  # fmt: skip
SIM_DEFAULT_REPS = 10
#: One seed for the app, so the same plan always shows the same simulated years.
SIM_SEED = 20240401
SIM_CACHE_DIR = "simulations"
#: Bumped when what is stored changes, so old cached results are not read.
SIM_FORMAT = 2
#: The scorecard's figures with a model value, then what only a simulation shows.
SIM_KPIS = (
    "admissions_per_year",
    "oap_placements_per_year",
    "oap_bed_days_per_year",
    "inpatient_occupancy",
    "crisis_house_episodes_per_year",
    "mobile_response_within_standard_share",
    "hub_service_level",
    "total_cost_gbp_per_year",
    "oap_any_day_share",
    "oap_active_p50",
    "oap_active_p90",
    "oap_active_max",
    "oap_episode_days_mean",
    "inpatient_peak_daily_occupancy",
    "mobile_response_mins_p90",
)
#: Day 0 of the measured window (pathways.simulate starts each simulated year on 1 April).
YEAR_START = (4, 1)


def sim_key(scenario: Scenario, plan: Plan | None, reps: int, params: SimParams) -> str:
    """What a simulation depends on, hashed: scenario, plan, replications, seed, settings."""
    payload = {
        "format": SIM_FORMAT,
        "scenario": scenario.fingerprint(),
        "plan": None if plan is None else plan.model_dump(mode="json", exclude={"solver"}),
        "reps": reps,
        "seed": SIM_SEED,
        "params": params.to_dict(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _num(v: Any, digits: int = 6) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, digits) if math.isfinite(v) else None


def compact(res: SimulationResult) -> dict[str, Any]:
    """What the page shows of one simulation: KPIs with intervals, OAPs active by day."""
    table = res.table().set_index("kpi")
    kpis = {}
    for k in SIM_KPIS:
        if k in table.index:
            r = table.loc[k]
            kpis[k] = {"mean": _num(r["simulated"]), "low": _num(r["ci_low"]),
                       "high": _num(r["ci_high"]), "model": _num(r["analytic"])}  # fmt: skip
    daily = res.daily_oaps
    return {
        "kpis": kpis,
        "daily": {c: [_num(v, 2) for v in daily[c]]
                  for c in ("mean", "ci_low", "ci_high", "min", "max")},  # fmt: skip
    }


def _cache_path(key: str) -> Path:
    return job_config().cache_dir / SIM_CACHE_DIR / f"{key}.json"


def _cached(key: str) -> dict[str, Any] | None:
    path = _cache_path(key)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None


def run_simulation(
    scenario_data: dict | None,
    result: dict | None,
    reps_raw: Any,
    progress: Callable[[float, str], None] = lambda pct, text: None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate today (and the plan, when fresh): returns (store, status message).

    Raises ``FieldError`` when the number of years is out of bounds.
    """
    reps_v = SIM_REPS.read(reps_raw)
    reps = SIM_DEFAULT_REPS if reps_v is None else int(reps_v)
    scenario = scenario_from_store(scenario_data)
    result = result if isinstance(result, dict) else None
    plan = plan_from_result(result) if result_is_fresh(result, scenario) else None
    params = SimParams()
    key = sim_key(scenario, plan, reps, params)
    hit = _cached(key)
    if hit is not None:
        progress(100, "simulated before: shown from the cache")
        return hit, _status(hit, cached=True)
    runs = [("today", None)] + ([("plan", plan)] if plan is not None else [])
    out: dict[str, Any] = {"key": key, "reps": reps, "seed": SIM_SEED,
                           "scenario_fingerprint": scenario.fingerprint(), "runs": {}}  # fmt: skip
    for i, (name, p) in enumerate(runs):
        words = "today's capacity" if name == "today" else "the plan"

        def tick(done: int, total: int, elapsed: float, i: int = i, words: str = words) -> None:
            share = (i + done / total) / len(runs)
            progress(100 * share, f"simulating {words}: year {done} of {total} ({elapsed:.0f} s)")

        res = simulate(scenario, p, reps=reps, seed=SIM_SEED, params=params, progress=tick)
        out["runs"][name] = compact(res)
    try:
        path = _cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(out))
    except OSError:  # a full or read-only cache costs a re-run, nothing else
        log.warning("could not cache the simulation %s", key, exc_info=True)
    return out, _status(out, cached=False)


def _status(store: Mapping[str, Any], cached: bool) -> dict[str, Any]:
    runs = store.get("runs", {})
    what = "today's capacity and the plan" if "plan" in runs else "today's capacity"
    head = f"Simulated {store.get('reps')} years of {what}."
    lines = []
    if "plan" not in runs:
        lines.append("Run the optimiser, then simulate again to compare a plan with today.")
    if cached:
        lines.append("These years were simulated before with the same inputs: shown from the cache.")
    return message_data(head, "success", lines)


def _well_formed(store: Any) -> bool:
    """A stored simulation in the shape :func:`run_simulation` writes (sessions can hold anything)."""
    runs = store.get("runs") if isinstance(store, dict) else None
    if not isinstance(runs, dict) or not isinstance(runs.get("today"), dict):
        return False
    for run in runs.values():
        if not isinstance(run, dict) or not isinstance(run.get("kpis"), dict):
            return False
        daily = run.get("daily")
        if not isinstance(daily, dict) or not all(
            isinstance(v, list) and all(x is None or isinstance(x, int | float) for x in v)
            for v in daily.values()
        ):
            return False
        if not all(isinstance(k, dict) for k in run["kpis"].values()):
            return False
    return isinstance(store.get("reps"), int)


def sim_for(scenario_data: dict | None, result: Any, store: Any) -> dict | None:
    """The stored simulation if it was made for this scenario (and this plan, if any)."""
    if not _well_formed(store):
        return None
    scenario = scenario_from_store(scenario_data)
    if store.get("scenario_fingerprint") != scenario.fingerprint():
        return None
    result = result if isinstance(result, dict) else None
    has_plan = result_is_fresh(result, scenario)
    if has_plan != ("plan" in store["runs"]):
        return None
    if has_plan:
        try:
            plan = plan_from_result(result)
        except InputError:
            return None
        if sim_key(scenario, plan, store["reps"], SimParams()) != store.get("key"):
            return None
    return store


def _interval(key: str, k: Mapping[str, Any] | None) -> str:
    if not k or k.get("mean") is None:
        return "–"
    if k.get("low") is None or k.get("high") is None:
        return fmt_value(key, k["mean"])
    lo = max(float(k["low"]), 0.0)  # none of these measures can be negative
    hi = float(k["high"])
    if measure_kind(key) == "pct":
        hi = min(hi, 1.0)  # nor can a share pass 100%
    return f"{fmt_value(key, k['mean'])} ({fmt_value(key, lo)} to {fmt_value(key, hi)})"


SIM_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("Measure", "kpi"), ("Today: model", "today_model"), ("Today: simulated (95% interval)", "today"),
    ("Plan: model", "plan_model"), ("Plan: simulated (95% interval)", "plan"))]  # fmt: skip


def band_rows(store: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """One row per measure: the model's expected value and the simulated band, today and plan."""
    if not store:
        return []
    runs = store.get("runs", {})
    rows = []
    for k in SIM_KPIS:
        today = runs.get("today", {}).get("kpis", {}).get(k)
        plan = runs.get("plan", {}).get("kpis", {}).get(k)
        if today is None and plan is None:
            continue
        rows.append({
            "kpi": kpi_label(k),
            "today_model": fmt_value(k, (today or {}).get("model")),
            "today": _interval(k, today),
            "plan_model": fmt_value(k, (plan or {}).get("model")) if "plan" in runs else "",
            "plan": _interval(k, plan) if "plan" in runs else "",
        })  # fmt: skip
    return rows


def day_dates(n: int, year: int | None = None) -> list[str]:
    """ISO dates of days 0..n-1 of a simulated year starting on 1 April."""
    year = year or dt.date.today().year
    start = dt.date(year, *YEAR_START)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]
