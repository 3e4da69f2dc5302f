"""Simulation of the crisis pathway's loss nodes: crisis houses and the pooled beds.

``simulate(scenario, plan)`` follows the people that the analytic model
(:func:`pathways.kpis.evaluate`) counts in expectation, one replication at a time:

* **referrals to each crisis house**: a Poisson stream at the yearly rate the house
  receives under the plan's allocation (the same ``alloc.T @ referrals`` as
  ``evaluate``); referrals from areas with no house in reach form one more Poisson
  stream. A referral that finds the house full (or has no house) is admitted with
  probability ``pathway.crisis_house_full_to_inpatient_share``, at once; a resident
  steps up to a bed with probability ``routing.crisis_house.inpatient`` when the
  stay ends;
* **admissions to the pooled local beds**: the direct admissions (a Poisson stream
  at ``episodes x direct_admission``) merged with the admissions coming from the
  crisis houses. An admission that finds every bed full is an out-of-area
  placement (OAP) whose stay has mean ``queues.oap_los_days``.

Stays are exponential (``los_cv=None``) or lognormal with the scenario's mean and the
given coefficient of variation (``los_cv=0`` gives fixed stays). Because both nodes
are loss systems (no queue), each is run by the engine in
:mod:`pathways.simulate.engine` (sorted arrival times and a heap of the times the
servers next become free) rather than a general discrete-event library. Each node
starts in its stationary state, then runs ``warmup_days`` before the measured
window of ``years`` years.

Randomness: one ``numpy.random.SeedSequence(seed).spawn(reps)`` child per
replication, split again into one stream per source (direct admissions, unreachable
referrals, the bed pool, OAP stays, and one per site in the scenario's site order),
so a plan that changes one house leaves the other streams as they were (common
random numbers). The result is a pure function of its arguments.

Not simulated yet: mobile teams, the crisis line, places of safety, seasonality,
repatriation of OAPs, peaked (non-Poisson) demand. See ``docs/simulation.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pathways import queues
from pathways.errors import InputError, Problem
from pathways.instance import Instance, capacity_arrays, prepare
from pathways.kpis import Scorecard, evaluate, nearest_allocation, plan_allocation
from pathways.plan import Plan, baseline_plan, check_plan
from pathways.scenario import Scenario
from pathways.simulate import engine

DAYS_PER_YEAR = 365.0

POOL_KPIS: tuple[str, ...] = (
    "admissions_per_year",
    "inpatient_blocked_share",
    "oap_placements_per_year",
    "oap_bed_days_per_year",
    "inpatient_occupancy",
    "crisis_house_episodes_per_year",
    "crisis_house_turned_away_per_year",
)
SIM_ONLY_KPIS: tuple[str, ...] = (
    "oap_any_day_share",
    "oap_active_p50",
    "oap_active_p90",
    "oap_active_max",
    "inpatient_peak_daily_occupancy",
    "inpatient_peak_beds_in_use",
)
"""Measures only a simulation gives (no analytic counterpart)."""
HOUSE_KPI = "crisis_house_turned_away_share"
"""Per house: ``crisis_house_turned_away_share[<site_id>]``."""


def house_kpi(site_id: str) -> str:
    return f"{HOUSE_KPI}[{site_id}]"


@dataclass(frozen=True)
class SimulationResult:
    """Replications of the loss nodes and the analytic values they check.

    ``replications`` has one row per replication and one column per KPI; ``analytic``
    the same KPIs from :func:`pathways.kpis.evaluate` (NaN for simulation-only
    measures).
    """

    replications: pd.DataFrame
    analytic: dict[str, float]
    seed: int
    reps: int
    years: float
    warmup_days: float
    los_cv: float | None
    plan_name: str = "plan"
    crisis_houses: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Mean over replications, standard deviation and the t confidence interval."""
        rows = []
        for k in self.replications.columns:
            v = self.replications[k].to_numpy(float)
            m, lo, hi = engine.t_interval(v, level)
            sd = float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else float("nan")
            rows.append({"kpi": k, "mean": m, "sd": sd, "ci_low": lo, "ci_high": hi})
        return pd.DataFrame(rows).set_index("kpi")

    def table(self, level: float = 0.95) -> pd.DataFrame:
        """kpi, analytic, simulated mean, ci_low, ci_high, agrees (analytic within the CI).

        ``agrees`` is missing (``pd.NA``) where there is no analytic value or no interval.
        """
        s = self.summary(level)
        rows = []
        for k, r in s.iterrows():
            a = self.analytic.get(k, float("nan"))
            ok: Any = pd.NA
            if np.isfinite(a) and np.isfinite(r["ci_low"]):
                ok = bool(r["ci_low"] <= a <= r["ci_high"])
            rows.append(
                {
                    "kpi": k,
                    "analytic": a,
                    "simulated": r["mean"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "agrees": ok,
                }
            )
        df = pd.DataFrame(rows)
        df["agrees"] = df["agrees"].astype("boolean")
        return df


def _whole(values: np.ndarray, what: str) -> np.ndarray:
    out = np.rint(values)
    if np.any(np.abs(out - values) > 1e-9):
        raise InputError(
            Problem("plan", None, what, "simulation needs whole numbers of beds and places")
        )
    return out.astype(int)


def _check_args(reps: int, seed: int, years: float, warmup_days: float) -> None:
    problems = []
    if not isinstance(reps, int | np.integer) or isinstance(reps, bool) or reps < 1:
        problems.append(Problem("simulate", None, "reps", "must be a whole number >= 1"))
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        problems.append(Problem("simulate", None, "seed", "must be a whole number >= 0"))
    for name, v, low in (("years", years, 0.0), ("warmup_days", warmup_days, None)):
        ok = isinstance(v, int | float) and math.isfinite(v)
        ok = ok and (v > low if low is not None else v >= 0)
        if not ok:
            problems.append(
                Problem("simulate", None, name, "must be a finite number, > 0 for years")
            )
    if isinstance(years, int | float) and math.isfinite(years) and round(years * DAYS_PER_YEAR) < 1:
        problems.append(Problem("simulate", None, "years", "must cover at least one day"))
    if problems:
        raise InputError(problems)


def simulate(
    scenario: Scenario | Instance,
    plan: Plan | None = None,
    reps: int = 20,
    seed: int = 0,
    years: float = 1.0,
    warmup_days: float = 60,
    los_cv: float | None = None,
) -> SimulationResult:
    """Simulate the crisis houses and the pooled beds of a plan (default: today's capacity)."""
    _check_args(reps, seed, years, warmup_days)
    cv = engine.check_los_cv(los_cv)
    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    sc = inst.scenario
    plan = baseline_plan(sc) if plan is None else plan
    check_plan(sc, plan)
    card: Scorecard = evaluate(inst, plan)
    q, co = sc.queues, inst.coeffs

    cap = capacity_arrays(inst, plan)
    places = _whole(cap["crisis_house"], "crisis_house_places")
    beds = int(_whole(np.array([cap["inpatient"].sum()]), "inpatient_beds")[0])
    alloc = plan_allocation(inst, plan, "crisis_house")
    if alloc is None:
        alloc = nearest_allocation(
            inst.travel_mins, places > 0, sc.pathway.crisis_house_max_travel_mins
        )
    referrals = inst.crisis_house_referrals
    house_rate = alloc.T @ referrals / DAYS_PER_YEAR  # referrals per day, per site
    unreach_rate = max(float(referrals.sum()) / DAYS_PER_YEAR - float(house_rate.sum()), 0.0)
    direct_rate = float(inst.episodes.sum()) * co.direct_admission / DAYS_PER_YEAR
    houses = [j for j in range(len(inst.site_ids)) if house_rate[j] > 0]

    pool_load = float(card.extra["inpatient_offered_load"])
    pool_block0 = float(queues.erlang_b(pool_load, beds)) if pool_load > 0 else 0.0

    n_days = int(round(years * DAYS_PER_YEAR))
    yrs = n_days / DAYS_PER_YEAR
    w0, horizon = float(warmup_days), float(warmup_days) + n_days
    day0 = np.arange(n_days, dtype=float) + w0

    rows = []
    for child in np.random.SeedSequence(seed).spawn(reps):
        streams = [np.random.default_rng(s) for s in child.spawn(4 + len(inst.site_ids))]
        g_direct, g_unreach, g_pool, g_oap = streams[:4]
        row: dict[str, float] = {}
        adm_times = [engine.poisson_times(g_direct, direct_rate, horizon)]
        served_n = turned_n = 0

        # crisis houses
        for j in houses:
            g = streams[4 + j]
            mean, c = q.crisis_house_los_days, int(places[j])
            n0 = engine.stationary_occupants(g, house_rate[j] * mean, c)
            res = engine.draw_residuals(g, mean, n0, cv)
            t = engine.poisson_times(g, house_rate[j], horizon)
            run = engine.run_loss_node(t, engine.draw_stays(g, mean, len(t), cv), c, res)
            win = t >= w0
            lost = win & ~run.admitted
            n = int(win.sum())
            row[house_kpi(inst.site_ids[j])] = lost.sum() / n if n else np.nan
            served_n += int((win & run.admitted).sum())
            turned_n += int(lost.sum())
            to_bed = g.random(len(t)) < co.full_to_inpatient
            adm_times.append(t[~run.admitted & to_bed])
            step_up = g.random(len(run.stay_end)) < co.ch_to_inpatient
            adm_times.append(run.stay_end[step_up & (run.stay_end < horizon)])

        # referrals with no house in reach
        t = engine.poisson_times(g_unreach, unreach_rate, horizon)
        turned_n += int((t >= w0).sum())
        adm_times.append(t[g_unreach.random(len(t)) < co.full_to_inpatient])

        # the pooled local beds
        t = np.sort(np.concatenate(adm_times))
        mean = q.inpatient_los_days
        n0 = engine.stationary_occupants(g_pool, pool_load, beds)
        res = engine.draw_residuals(g_pool, mean, n0, cv)
        run = engine.run_loss_node(t, engine.draw_stays(g_pool, mean, len(t), cv), beds, res)
        win = t >= w0
        n, oap_win = int(win.sum()), win & ~run.admitted
        g_int = engine.busy_integral(run.stay_start, run.stay_end, np.append(day0, horizon))
        daily = np.diff(g_int)
        row["admissions_per_year"] = n / yrs
        row["inpatient_blocked_share"] = oap_win.sum() / n if n else np.nan
        row["oap_placements_per_year"] = oap_win.sum() / yrs
        row["inpatient_occupancy"] = daily.sum() / (beds * n_days) if beds else 0.0
        row["crisis_house_episodes_per_year"] = served_n / yrs
        row["crisis_house_turned_away_per_year"] = turned_n / yrs

        # out-of-area placements: those blocked since time 0, plus those already away
        # at time 0 (stationary count for the analytic blocked stream)
        oap_mean = q.oap_los_days
        k0 = int(g_oap.poisson(pool_load / mean * pool_block0 * oap_mean))
        t_oap = t[~run.admitted]
        o_start = np.concatenate([np.zeros(k0), t_oap])
        o_end = np.concatenate(
            [
                engine.draw_residuals(g_oap, oap_mean, k0, cv),
                t_oap + engine.draw_stays(g_oap, oap_mean, len(t_oap), cv),
            ]
        )
        o_int = engine.busy_integral(o_start, o_end, np.array([w0, horizon]))
        active = engine.open_on_day(o_start, o_end, day0)
        row["oap_bed_days_per_year"] = (o_int[1] - o_int[0]) / yrs
        row["oap_any_day_share"] = float((active > 0).mean())
        row["oap_active_p50"] = float(np.percentile(active, 50))
        row["oap_active_p90"] = float(np.percentile(active, 90))
        row["oap_active_max"] = float(active.max())
        row["inpatient_peak_daily_occupancy"] = float(daily.max() / beds) if beds else 0.0
        row["inpatient_peak_beds_in_use"] = _peak_in_window(run, w0, horizon)
        rows.append(row)

    cols = [*POOL_KPIS, *[house_kpi(inst.site_ids[j]) for j in houses], *SIM_ONLY_KPIS]
    reps_df = pd.DataFrame(rows, columns=cols)
    reps_df.index.name = "replication"

    analytic = {k: float(card.kpis[k]) for k in POOL_KPIS}
    for j in houses:
        analytic[house_kpi(inst.site_ids[j])] = float(
            card.by_site["crisis_house_blocked_share"].iloc[j]
        )
    analytic.update({k: float("nan") for k in SIM_ONLY_KPIS})
    return SimulationResult(
        replications=reps_df,
        analytic=analytic,
        seed=int(seed),
        reps=int(reps),
        years=float(years),
        warmup_days=float(warmup_days),
        los_cv=cv,
        plan_name=plan.name,
        crisis_houses=tuple(inst.site_ids[j] for j in houses),
        extra={
            "beds": beds,
            "inpatient_peakedness": float(q.inpatient_peakedness),
            "days_measured": n_days,
        },
    )


def _peak_in_window(run: engine.NodeRun, w0: float, horizon: float) -> float:
    """Most beds in use at once during the window."""
    if run.servers == 0 or len(run.stay_start) == 0:
        return 0.0
    times = np.concatenate([run.stay_start, run.stay_end, [w0]])
    steps = np.concatenate([np.ones(len(run.stay_start)), -np.ones(len(run.stay_end)), [0.0]])
    order = np.lexsort((steps, times))  # at equal times, a departure before an arrival
    busy = np.cumsum(steps[order])
    t = times[order]
    inside = (t >= w0) & (t < horizon)
    before = busy[t < w0]
    start_level = before[-1] if len(before) else 0.0
    return float(max(start_level, busy[inside].max() if inside.any() else 0.0))
