"""The SimPy pathway (pathways.simulate.des) against the analytic formulas, and its settings.

Component checks run the SimPy bed pool and the FCFS server queue on their own, with
Poisson arrivals and exponential times, against Erlang B, C and A for several (load,
capacity) pairs; the Sussex checks run the whole pathway with ``SimParams.analytic()``.
Single fixed-seed checks use 99% intervals (each fails by chance with probability
about 1% if its seed changed); the 95% rates are measured over many seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import simpy

from pathways import InputError, load_scenario
from pathways.queues import erlang_a_metrics, erlang_b, erlang_c
from pathways.scenario import with_changes
from pathways.simulate import SimParams, SimulationResult, simulate, validate
from pathways.simulate.des import BedPool, ServerQueue
from pathways.simulate.engine import (
    draw_residuals,
    poisson_times,
    stationary_occupants,
    t_interval,
    time_factor,
    varying_times,
)
from pathways.simulate.params import PARAMETERS, parameter_table
from pathways.simulate.validate import calibrate_peakedness, steps

SUSSEX = Path(__file__).resolve().parents[2] / "data" / "scenarios" / "sussex.yaml"


def _covers(values, target: float, level: float = 0.99) -> bool:
    _, lo, hi = t_interval(np.asarray(values, float), level)
    return bool(lo <= target <= hi)


# ----------------------------------------------------------------------------- components


def bed_pool_run(per_day, los, beds, seed, days=365.0, warmup=60.0, oap_los=40.0, after=None):
    """One run of the SimPy bed pool alone: (blocked share, occupancy, placements, OAP days)."""
    rng = np.random.default_rng(seed)
    horizon = warmup + days
    n0 = stationary_occupants(rng, per_day * los, beds)
    res = draw_residuals(rng, los, n0, None)
    t = poisson_times(rng, per_day, horizon)
    env = simpy.Environment()
    pool = BedPool(env, beds, t, rng.exponential(los, len(t)), rng.exponential(oap_los, len(t)),
                   res, np.zeros(0), after)  # fmt: skip
    env.run(until=horizon)
    win = t >= warmup
    blocked = win & ~pool.admitted
    s, e = np.array(pool.bed_start), np.minimum(np.array(pool.bed_end), horizon)
    busy = (np.clip(e, warmup, horizon) - np.clip(s, warmup, horizon)).sum()
    return {
        "blocked_share": blocked.sum() / win.sum(),
        "occupancy": busy / (beds * days),
        "placements": blocked.sum() * 365.0 / days,
        "back_share": np.mean(pool.oap_back) if pool.oap_back else 0.0,
        "oap_days": np.mean(np.array(pool.oap_end) - np.array(pool.oap_start))
        if pool.oap_start
        else 0.0,
    }


@pytest.mark.parametrize(
    ("per_day", "los", "beds"),
    [
        (1.0, 7.0, 6),  # a crisis house: 7 erlangs on 6 places
        (2.0, 5.0, 12),  # 10 erlangs on 12
        (8.73, 33.0, 300),  # the Sussex pool: 288 erlangs on 300 beds
        (9.5, 33.0, 280),  # an overloaded pool: 313.5 erlangs on 280 beds
    ],
)
def test_simpy_bed_pool_agrees_with_erlang_b(per_day, los, beds):
    runs = [bed_pool_run(per_day, los, beds, seed=1000 + r) for r in range(10)]
    b = float(erlang_b(per_day * los, beds))
    assert _covers([r["blocked_share"] for r in runs], b)
    assert _covers([r["placements"] for r in runs], per_day * 365 * b)
    assert _covers([r["occupancy"] for r in runs], per_day * los * (1 - b) / beds)


def queue_run(per_hour, service_h, servers, seed, patience_h=None, hours=24 * 200, warm=48.0):
    rng = np.random.default_rng(seed)
    t = poisson_times(rng, per_hour, warm + hours)
    svc = rng.exponential(service_h, len(t))
    deadline = t + rng.exponential(patience_h, len(t)) if patience_h else None
    env = simpy.Environment()
    q = ServerQueue(env, t, svc, servers, deadline=deadline)
    env.run(until=warm + hours)
    w = np.array(q.start) - t
    win = t >= warm
    answered = np.isfinite(w)
    return {
        "p_wait": float((~answered | (w > 1e-12))[win].mean()),
        "abandon": float((~answered)[win].mean()),
        "sl20s": float((answered & (w <= 20 / 3600))[win].mean()),
    }


@pytest.mark.parametrize(("per_hour", "service_h", "servers"), [(0.5, 3.0, 2), (1.0, 3.0, 4),
                                                                 (2.0, 3.0, 8)])  # fmt: skip
def test_simpy_team_queue_agrees_with_erlang_c(per_hour, service_h, servers):
    runs = [queue_run(per_hour, service_h, servers, seed=2000 + r) for r in range(10)]
    assert _covers([r["p_wait"] for r in runs], float(erlang_c(per_hour * service_h, servers)))


@pytest.mark.parametrize(("calls_per_hour", "handlers"), [(15.0, 3), (20.0, 3), (10.0, 2)])
def test_simpy_crisis_line_agrees_with_erlang_a(calls_per_hour, handlers):
    runs = [queue_run(calls_per_hour, 600 / 3600, handlers, seed=3000 + r, patience_h=180 / 3600,
                      hours=24 * 20) for r in range(10)]  # fmt: skip
    m = erlang_a_metrics(calls_per_hour, handlers, 600.0, 180.0, 20.0)
    assert _covers([r["sl20s"] for r in runs], float(m["service_level"]))
    assert _covers([r["abandon"] for r in runs], float(m["abandonment_share"]))


def test_ci_coverage_and_overlap_over_many_seeds():
    # 40 seeds x 8 replications of a small bed pool. With true 95% coverage the count
    # covering Erlang B is Binomial(40, 0.95): P(< 34) = 0.003. Two independent 95%
    # intervals of the same mean fail to overlap with probability about 0.006 (t with
    # 7 degrees of freedom: 0.01), so 40 pairs give fewer than 37 overlaps with
    # probability below 0.001.
    b = float(erlang_b(10.0, 12))
    ivals = []
    for s in range(40):
        v = [bed_pool_run(2.0, 5.0, 12, seed=10_000 + 8 * s + r, days=200)["blocked_share"]
             for r in range(8)]  # fmt: skip
        ivals.append(t_interval(np.array(v), 0.95)[1:])
    covered = sum(lo <= b <= hi for lo, hi in ivals)
    overlaps = sum(
        max(ivals[i][0], ivals[i + 1][0]) <= min(ivals[i][1], ivals[i + 1][1])
        for i in range(0, 40, 2)
    ) + sum(
        max(ivals[i][0], ivals[39 - i][0]) <= min(ivals[i][1], ivals[39 - i][1])
        for i in range(20)
    )
    assert 34 <= covered <= 40
    assert overlaps >= 37


def test_repatriation_brings_placements_back_sooner():
    # placements as long as local stays (5 days), allowed back after 1 day
    kw = {"days": 200, "oap_los": 5.0}
    never = [bed_pool_run(2.2, 5.0, 12, seed=50 + r, **kw) for r in range(6)]
    back = [bed_pool_run(2.2, 5.0, 12, seed=50 + r, after=1.0, **kw) for r in range(6)]
    assert all(r["back_share"] == 0 for r in never)
    assert np.mean([r["back_share"] for r in back]) > 0.5
    assert np.mean([r["oap_days"] for r in back]) < 0.5 * np.mean([r["oap_days"] for r in never])
    # beds taken by people coming back are beds new admissions cannot have
    assert np.mean([r["blocked_share"] for r in back]) > np.mean(
        [r["blocked_share"] for r in never]
    )


def test_shifts_change_the_number_of_handlers():
    # two handlers by day, none at night: calls at night wait for the morning or hang up
    env = simpy.Environment()
    t = np.array([0.1, 0.2, 0.3, 0.6, 0.61])  # days; hours 2.4, 4.8, 7.2, 14.4, 14.6
    duty = lambda k, x: 8 <= (x * 24) % 24 < 20 and k < 2  # noqa: E731
    nxt = lambda k, x: math.floor(x) + 8 / 24 if (x * 24) % 24 < 8 else math.floor(x) + 1 + 8 / 24  # noqa: E731
    q = ServerQueue(env, t, np.full(5, 0.01), 2, on_duty=duty, next_on=nxt)
    env.run(until=2)
    np.testing.assert_allclose(q.start, [8 / 24, 8 / 24, 8 / 24 + 0.01, 0.6, 0.61])


# ----------------------------------------------------------------------------- time


def test_week_and_season_shape_arrivals():
    week = np.ones(168)
    week[:84] = 1.5
    week[84:] = 0.5
    rng = np.random.default_rng(0)
    t = varying_times(rng, 200.0, 365.0, 0.0, week, 0.3, 15.0)
    hour_of_week = np.floor(t * 24).astype(int) % 168
    first = (hour_of_week < 84).mean()
    assert first == pytest.approx(0.75, abs=0.01)
    # 1 April is day 0: January (days 275-305) busier than July (days 91-121)
    jan = ((t >= 275) & (t < 306)).sum() / 31
    jul = ((t >= 91) & (t < 122)).sum() / 31
    f_jan = time_factor(np.arange(275, 306) + 0.5, 0.0, None, 0.3, 15.0).mean()
    f_jul = time_factor(np.arange(91, 122) + 0.5, 0.0, None, 0.3, 15.0).mean()
    assert jan / jul == pytest.approx(f_jan / f_jul, rel=0.05)
    assert time_factor(np.arange(365) + 0.5, 0.0, None, 0.3, 15.0).mean() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- Sussex


@pytest.fixture(scope="module")
def sussex():
    return load_scenario(SUSSEX)


@pytest.fixture(scope="module")
def flat_sussex(sussex):
    """Sussex with a flat week and 3 handlers on every shift: the analytic crisis line is then
    one stationary Erlang A (with 2 at night, a handler going off at midnight finishes
    the call in hand, which the hour-by-hour formulas cannot see)."""
    return with_changes(
        sussex,
        {"demand.hourly_profile": [1 / 24] * 24, "demand.weekday_profile": [1 / 7] * 7,
         "hub.night": 3},
    )  # fmt: skip


def test_sussex_crisis_line_and_pool_agree_with_the_scorecard(flat_sussex):
    r = simulate(flat_sussex, reps=6, seed=11, params=SimParams.analytic(years=0.5))
    rep = r.replications
    for k in ("hub_service_level", "hub_abandonment_share", "inpatient_blocked_share",
              "oap_placements_per_year", "crisis_house_episodes_per_year",
              "mobile_all_busy_share", "mobile_response_within_standard_share"):  # fmt: skip
        assert _covers(rep[k], r.analytic[k]), k
    for site in r.crisis_houses:
        k = f"crisis_house_turned_away_share[{site}]"
        assert _covers(rep[k], r.analytic[k]), k


@pytest.fixture(scope="module")
def default_run(sussex):
    return simulate(sussex, reps=3, seed=5, years=0.5)


def test_default_settings_measure_everything(sussex, default_run):
    from pathways.kpis import evaluate

    card = evaluate(sussex)
    cols = set(default_run.replications.columns)
    assert set(card.kpis) <= cols  # every scorecard KPI is simulated
    for k in ("oap_any_day_share", "oap_active_p50", "oap_active_p90", "oap_active_max",
              "oap_episode_days_mean", "oap_episode_days_p90", "inpatient_peak_daily_occupancy",
              "inpatient_occupancy_month[Sep]", "mobile_response_mins_p90",
              "hub_asa_seconds[h07]", "hub_service_level[h19]"):  # fmt: skip
        assert k in cols, k
    r = default_run.replications
    assert (r["oap_repatriated_share"] > 0).all()
    assert (r["oap_active_p50"] <= r["oap_active_p90"]).all()
    assert (r["mobile_response_mins_p50"] <= r["mobile_response_mins_p90"]).all()
    assert default_run.daily_oaps_by_replication.shape == (3, 182)
    d = default_run.daily_oaps
    assert list(d.columns) == ["mean", "ci_low", "ci_high", "min", "max"] and len(d) == 182
    assert len(default_run.by_hour()) == 24 and "asa_seconds" in default_run.by_hour()
    assert len(default_run.by_month()) == 6  # half a year: April to September
    k = default_run.kpi("inpatient_blocked_share")
    assert k["ci_low"] <= k["mean"] <= k["ci_high"] and np.isfinite(k["analytic"])


def test_json_round_trip(default_run):
    text = default_run.to_json()
    back = SimulationResult.from_dict(json.loads(text))
    pd.testing.assert_frame_equal(back.table(), default_run.table(), check_dtype=False)
    np.testing.assert_array_equal(back.daily_oaps_by_replication,
                                  default_run.daily_oaps_by_replication)  # fmt: skip
    assert back.params == default_run.params


def test_workers_do_not_change_the_result(sussex):
    a = simulate(sussex, reps=3, seed=9, years=0.1)
    b = simulate(sussex, reps=3, seed=9, years=0.1, workers=2)
    pd.testing.assert_frame_equal(a.replications, b.replications)
    np.testing.assert_array_equal(a.daily_oaps_by_replication, b.daily_oaps_by_replication)


def test_validate_names_an_explanation(sussex):
    v = validate(sussex, reps=3, seed=1, params=SimParams(years=0.25))
    assert list(v.runs) == ["time-varying load", "LOS shape", "seasonality", "repatriation"]
    t = v.table
    assert {"kpi", "analytic", "simulated", "ci_low", "ci_high", "agrees", "explained_by"} <= set(t)
    bad = t[t["agrees"].fillna(True).eq(False)]
    assert len(bad) > 0 and (bad["explained_by"].str.len() > 0).all()
    assert (t.loc[t["agrees"].fillna(True), "explained_by"] == "").all()
    json.dumps(v.to_dict())


def test_steps_switch_on_one_assumption_at_a_time():
    names, ps = zip(*steps(SimParams()), strict=True)
    assert ps[0] == SimParams.analytic()
    assert ps[1].los_distribution == "lognormal" and ps[1].seasonal_amplitude == 0
    assert ps[2].seasonal_amplitude == 0.1 and ps[2].repatriation == "never"
    assert ps[3] == SimParams()


def test_calibrated_peakedness_closes_the_gap():
    from pathways.queues import erlang_b_peaked

    z = calibrate_peakedness(288.2, 300, 0.04)
    assert z > 1 and float(erlang_b_peaked(288.2, 300, z)) == pytest.approx(0.04, abs=1e-4)
    assert calibrate_peakedness(288.2, 300, 0.001) == 1.0


def test_every_setting_has_a_unit_and_a_source():
    for row in parameter_table():
        assert row["unit"] and row["source"] and row["meaning"], row["name"]
    assert set(PARAMETERS) == set(SimParams().to_dict())


def test_bad_settings_are_refused():
    with pytest.raises(InputError):
        SimParams(repatriation_after_days=-1)
    with pytest.raises(InputError):
        SimParams(years=float("inf"))
