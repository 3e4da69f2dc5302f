"""One replication of the whole pathway: NumPy draws, SimPy for the queues.

Order of work in :func:`run_replication` (time in days; the measured window is
``[w0, w0 + days)`` and starts on 1 April, a Monday, at 00:00):

1. **episodes** (NumPy): a Poisson process whose rate follows the week's 168-hour
   profile and the season (thinning), each episode given an area (in proportion to
   the area's episodes in ``evaluate``) and a route through the tiers by the
   scenario's routing fractions;
2. **crisis houses** (the exact loss engine of :mod:`pathways.simulate.engine`): each
   referral goes to its area's house by the allocation; a house is a pure loss node
   that nothing downstream feeds back into, so it is run first, exactly, from a
   stationary start; a referral turned away (or with no house in reach) is admitted
   with ``crisis_house_full_to_inpatient_share`` at once, a resident steps up with
   ``routing.crisis_house.inpatient`` when the stay ends;
3. **the SimPy environment** of the replication holds the coupled queues:

   * the pooled **beds**: an admission that finds every bed full goes out of area; with
     repatriation ``after_days``, a placement away ``repatriation_after_days`` or more
     comes back to the first local bed that frees (longest away first), and spends the
     rest of its stay there;
   * one FCFS queue of **mobile teams** per base (teams on shift 24/7): an episode
     waits for a free team, then the team sets off (dispatch) and drives from the base
     to the area (the scenario's travel matrix);
   * the **crisis line**: handlers on shift by hour of day (the plan's night, day and
     evening handlers), FCFS, callers hang up after an exponential patience;

4. **places of safety** (the loss engine again): a pure loss node.

Every random number is drawn in NumPy before the run, from streams spawned in a fixed
order from the replication's seed, so the run is a pure function of the seed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from pathways.simulate import engine
from pathways.simulate.model import Model
from pathways.simulate.params import SimParams

MONTHS = ("Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Jan", "Feb", "Mar")
MONTH_DAYS = (30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28, 31)
N_STREAMS = 8
MINUTES_PER_DAY = 1440.0
SECONDS_PER_DAY = 86400.0


@dataclass
class Replication:
    """What one replication measured: one value per KPI and the OAPs active each day."""

    kpis: dict[str, float]
    daily_oaps: np.ndarray


# ----------------------------------------------------------------------------- SimPy parts


class ServerQueue:
    """A first-come-first-served queue served by numbered servers, in a SimPy environment.

    ``on_duty(k, t)`` says whether server ``k`` works at time ``t`` and
    ``next_on(k, t)`` when it next starts; a server finishes the job it has when its
    shift ends. A job whose ``deadline`` passes while it waits leaves (a caller who
    hangs up) and takes no server time. Results: ``start[i]`` (NaN if it left).
    """

    def __init__(
        self,
        env: simpy.Environment,
        arrivals: np.ndarray,
        service: np.ndarray,
        servers: int,
        deadline: np.ndarray | None = None,
        on_duty: Callable[[int, float], bool] | None = None,
        next_on: Callable[[int, float], float] | None = None,
    ):
        self.env = env
        self.arr = arrivals.tolist()
        self.svc = service.tolist()
        self.deadline = deadline.tolist() if deadline is not None else None
        self.on_duty = on_duty
        self.next_on = next_on
        self.start = [float("nan")] * len(self.arr)
        self.queue: deque[int] = deque()
        self.idle: list[tuple[int, simpy.Event]] = []
        if servers > 0 and self.arr:
            env.process(self._arrivals())
            for k in range(servers):
                env.process(self._server(k))

    def _arrivals(self):
        env, q, idle, timeout = self.env, self.queue, self.idle, self.env.timeout
        on_duty = self.on_duty
        for i, t in enumerate(self.arr):
            yield timeout(t - env.now)
            q.append(i)
            while idle:
                k, ev = idle.pop()
                ev.succeed()
                if on_duty is None or on_duty(k, t):
                    break

    def _server(self, k: int):
        env, q, timeout = self.env, self.queue, self.env.timeout
        svc, start, deadline = self.svc, self.start, self.deadline
        on_duty, next_on = self.on_duty, self.next_on
        while True:
            now = env.now
            if on_duty is not None and not on_duty(k, now):
                yield timeout(next_on(k, now) - now)
                continue
            if deadline is not None:
                while q and deadline[q[0]] < now:
                    q.popleft()  # hung up while waiting
            if not q:
                ev = env.event()
                self.idle.append((k, ev))
                yield ev
                continue
            i = q.popleft()
            start[i] = now
            yield timeout(svc[i])


class BedPool:
    """Pooled local beds with out-of-area placements and repatriation, in SimPy.

    Records every local bed stay (``bed_start``, ``bed_end``) and every placement
    (``oap_start``, ``oap_end``: when it ended, by discharge or by coming back;
    ``oap_back``: True when it came back to a local bed).
    """

    def __init__(
        self,
        env: simpy.Environment,
        beds: int,
        admissions: np.ndarray,
        stays: np.ndarray,
        oap_stays: np.ndarray,
        initial_residuals: np.ndarray,
        initial_oap_residuals: np.ndarray,
        repatriate_after: float | None,
    ):
        self.env = env
        self.free = beds - len(initial_residuals)
        self.adm = admissions.tolist()
        self.stay = stays.tolist()
        self.oap_stay = oap_stays.tolist()
        self.after = repatriate_after
        self.admitted = np.zeros(len(self.adm), dtype=bool)
        self.bed_start: list[float] = [0.0] * len(initial_residuals)
        self.bed_end: list[float] = [float(r) for r in initial_residuals]
        self.oap_start: list[float] = []
        self.oap_planned: list[float] = []
        self.oap_end: list[float] = []
        self.oap_back: list[bool] = []
        self.oap_away: list[bool] = []
        self.waiting: deque[int] = deque()  # placements that may come back, longest away first
        for r in self.bed_end:
            env.timeout(r).callbacks.append(self._bed_frees)
        for r in initial_oap_residuals.tolist():
            self._place(0.0, float(r))
        if self.adm:
            env.process(self._admissions())

    def _admissions(self):
        env, timeout = self.env, self.env.timeout
        for i, t in enumerate(self.adm):
            yield timeout(t - env.now)
            if self.free > 0:
                self.free -= 1
                self.admitted[i] = True
                self._occupy(t, t + self.stay[i])
            else:
                self._place(t, t + self.oap_stay[i])

    def _occupy(self, start: float, end: float) -> None:
        self.bed_start.append(start)
        self.bed_end.append(end)
        self.env.timeout(end - start).callbacks.append(self._bed_frees)

    def _place(self, start: float, end: float) -> None:
        i = len(self.oap_start)
        self.oap_start.append(start)
        self.oap_planned.append(end)
        self.oap_end.append(end)
        self.oap_back.append(False)
        self.oap_away.append(True)
        env = self.env
        env.timeout(end - env.now).callbacks.append(lambda _e, i=i: self._placement_ends(i))
        if self.after is not None and start + self.after < end:
            delay = max(start + self.after - env.now, 0.0)
            env.timeout(delay).callbacks.append(lambda _e, i=i: self._may_come_back(i))

    def _placement_ends(self, i: int) -> None:
        self.oap_away[i] = False

    def _may_come_back(self, i: int) -> None:
        if not self.oap_away[i]:
            return
        if self.free > 0:
            self.free -= 1
            self._come_back(i)
        else:
            self.waiting.append(i)

    def _come_back(self, i: int) -> None:
        now = self.env.now
        self.oap_away[i] = False
        self.oap_back[i] = True
        self.oap_end[i] = now
        self._occupy(now, self.oap_planned[i])

    def _bed_frees(self, _event: Any) -> None:
        while self.waiting:
            i = self.waiting.popleft()
            if self.oap_away[i] and self.oap_planned[i] > self.env.now:
                self._come_back(i)  # the bed goes straight to a placement coming back
                return
        self.free += 1


# ----------------------------------------------------------------------------- helpers


def _pick(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Column chosen by ``u`` in each row's cumulative shares; ``-1`` past the row total."""
    if len(rows) == 0:
        return np.zeros(0, dtype=int)
    c = cum[rows]
    j = (u[:, None] >= c).sum(axis=1)
    return np.where(j >= cum.shape[1], -1, j)


def _quantile_rule(v: np.ndarray, q: float) -> float:
    """Smallest value with at least share ``q`` of the values at or below it (as evaluate)."""
    if len(v) == 0:
        return float("nan")
    s = np.sort(v)
    return float(s[min(max(int(np.ceil(q * len(s))) - 1, 0), len(s) - 1)])


def _pct(v: np.ndarray, q: float) -> float:
    return float(np.percentile(v, q)) if len(v) else float("nan")


def _hub_duty(handlers: np.ndarray, w0: float):
    counts = [int(x) for x in handlers]

    # An hour starts at w0 + h / 24; the small allowance keeps a time computed as that
    # start from falling into the hour before by rounding (which would wake a server at
    # the same instant again and again).
    def hour_index(t: float) -> int:
        return int(math.floor((t - w0) * 24.0 + 1e-7))

    def on_duty(k: int, t: float) -> bool:
        return k < counts[hour_index(t) % 24]

    def next_on(k: int, t: float) -> float:
        h0 = hour_index(t)
        for step in range(1, 25):
            if k < counts[(h0 + step) % 24]:
                return max(w0 + (h0 + step) / 24.0, t + 1e-9)
        return float("inf")

    return on_duty, next_on


# ----------------------------------------------------------------------------- replication


def run_replication(m: Model, p: SimParams, seed: np.random.SeedSequence) -> Replication:
    """Simulate one replication of the plan behind ``m``; pure in ``seed``."""
    g = [np.random.default_rng(s) for s in seed.spawn(N_STREAMS)]
    g_ep, g_ch, g_bed, g_oap, g_mob, g_hub, g_pos, _ = g
    n_days = p.days
    yrs = n_days / 365.0
    w0 = float(p.warmup_days)
    horizon = w0 + n_days
    week = m.week if p.time_of_week else None
    amp, peak = float(p.seasonal_amplitude), float(p.seasonal_peak_day)
    k: dict[str, float] = {}

    def times(rng: np.random.Generator, per_year: float) -> np.ndarray:
        return engine.varying_times(rng, per_year / 365.0, horizon, w0, week, amp, peak)

    # 1. episodes and their routes
    t_ep = times(g_ep, m.episodes_per_year)
    n_ep = len(t_ep)
    area = np.minimum(np.searchsorted(m.area_cum, g_ep.random(n_ep), side="right"),
                      len(m.area_cum) - 1)  # fmt: skip
    tier = np.searchsorted(np.cumsum(m.first_contact), g_ep.random(n_ep), side="right")
    u_out = g_ep.random(n_ep)
    out_mob = np.searchsorted(np.cumsum(m.from_mobile), u_out, side="right")
    out_pos = np.searchsorted(np.cumsum(m.from_pos), u_out, side="right")
    outcome = np.where(tier == 0, out_mob, np.where(tier == 1, out_pos, 2))  # 2 = crisis house
    in_win_ep = t_ep >= w0
    k["episodes_per_year"] = in_win_ep.sum() / yrs
    k["veteran_episodes_per_year"] = k["episodes_per_year"] * m.veterans_share

    adm_t: list[np.ndarray] = []
    adm_a: list[np.ndarray] = []
    direct = (tier <= 1) & (outcome == 3)
    adm_t.append(t_ep[direct])
    adm_a.append(area[direct])

    # 2. crisis houses (exact loss engine: nothing downstream feeds back)
    ref = np.flatnonzero(outcome == 2)
    house = _pick(m.ch_cum, area[ref], g_ch.random(len(ref)))
    t_ref, a_ref = t_ep[ref], area[ref]
    win_ref = t_ref >= w0
    unreach = house < 0
    turned = int((win_ref & unreach).sum())
    served = 0
    to_bed = g_ch.random(len(ref)) < m.full_to_inpatient
    adm_t.append(t_ref[unreach & to_bed])
    adm_a.append(a_ref[unreach & to_bed])
    trips = [m.travel[a_ref[~unreach & win_ref], house[~unreach & win_ref]]]
    ch_streams = g_ch.spawn(len(m.site_ids))
    cv_ch = p.cv("crisis_house")
    for j in np.unique(house[house >= 0]).tolist():
        gj = ch_streams[j]
        sel = house == j
        tj, aj = t_ref[sel], a_ref[sel]
        c, mean = int(m.places[j]), m.crisis_house_los
        n0 = engine.stationary_occupants(gj, float(m.house_load[j]), c)
        res = engine.draw_residuals(gj, mean, n0, cv_ch)
        run = engine.run_loss_node(tj, engine.draw_stays(gj, mean, len(tj), cv_ch), c, res)
        win = tj >= w0
        lost = win & ~run.admitted
        k[f"crisis_house_turned_away_share[{m.site_ids[j]}]"] = (
            lost.sum() / win.sum() if win.any() else float("nan")
        )
        served += int((win & run.admitted).sum())
        turned += int(lost.sum())
        fb = to_bed[sel]
        adm_t.append(tj[~run.admitted & fb])
        adm_a.append(aj[~run.admitted & fb])
        # residents: the initial ones (areas drawn from this house's referrals), then arrivals
        res_area = np.concatenate([gj.choice(aj, n0) if len(aj) else np.zeros(n0, int),
                                   aj[run.admitted]])  # fmt: skip
        step = gj.random(len(run.stay_end)) < m.ch_to_inpatient
        step &= run.stay_end < horizon
        adm_t.append(run.stay_end[step])
        adm_a.append(res_area[step])
    k["crisis_house_episodes_per_year"] = served / yrs
    k["crisis_house_turned_away_per_year"] = turned / yrs

    env = simpy.Environment()

    # 3a. beds
    t_adm = np.concatenate(adm_t)
    order = np.argsort(t_adm, kind="stable")
    t_adm, a_adm = t_adm[order], np.concatenate(adm_a).astype(int)[order]
    cv_ip, cv_oap = p.cv("inpatient"), p.cv("oap")
    n0 = engine.stationary_occupants(g_bed, m.pool_load, m.beds)
    res0 = engine.draw_residuals(g_bed, m.inpatient_los, n0, cv_ip)
    stays = engine.draw_stays(g_bed, m.inpatient_los, len(t_adm), cv_ip)
    k0 = int(g_oap.poisson(m.pool_load / m.inpatient_los * m.pool_blocked * m.oap_los))
    oap_res0 = engine.draw_residuals(g_oap, m.oap_los, k0, cv_oap)
    oap_stays = engine.draw_stays(g_oap, m.oap_los, len(t_adm), cv_oap)
    after = p.repatriation_after_days if p.repatriation == "after_days" else None
    pool = BedPool(env, m.beds, t_adm, stays, oap_stays, res0, oap_res0, after)

    # 3b. mobile teams, one queue per base
    mob = np.flatnonzero(tier == 0)
    base = _pick(m.mob_cum, area[mob], g_mob.random(len(mob)))
    svc_mob = g_mob.exponential(m.mobile_service_days, len(mob))
    queues_mob: dict[int, tuple[np.ndarray, ServerQueue]] = {}
    for j in np.unique(base[base >= 0]).tolist():
        sel = np.flatnonzero(base == j)
        queues_mob[j] = (sel, ServerQueue(env, t_ep[mob[sel]], svc_mob[sel], int(m.teams[j])))

    # 3c. the crisis line
    t_call = times(g_hub, m.calls_per_year)
    aht = g_hub.exponential(m.aht_days, len(t_call))
    patience = g_hub.exponential(m.patience_days, len(t_call)) if m.patience_days > 0 else None
    on_duty, next_on = _hub_duty(m.handlers_by_hour, w0)
    hub = ServerQueue(
        env, t_call, aht, int(m.handlers_by_hour.max()),
        deadline=t_call + patience if patience is not None else None,
        on_duty=on_duty, next_on=next_on,
    )  # fmt: skip

    env.run(until=horizon)

    # -- beds and placements
    win_adm = t_adm >= w0
    n_adm = int(win_adm.sum())
    blocked = win_adm & ~pool.admitted
    k["admissions_per_year"] = n_adm / yrs
    k["inpatient_blocked_share"] = blocked.sum() / n_adm if n_adm else float("nan")
    k["oap_placements_per_year"] = blocked.sum() / yrs
    bs, be = np.array(pool.bed_start), np.minimum(np.array(pool.bed_end), horizon)
    day0 = np.arange(n_days, dtype=float) + w0
    daily_beds = np.diff(engine.busy_integral(bs, be, np.append(day0, horizon)))
    k["inpatient_occupancy"] = daily_beds.sum() / (m.beds * n_days) if m.beds else 0.0
    k["inpatient_peak_daily_occupancy"] = float(daily_beds.max() / m.beds) if m.beds else 0.0
    k["inpatient_peak_beds_in_use"] = _peak(bs, be, w0, horizon)
    month = np.repeat(np.arange(12), MONTH_DAYS)[np.arange(n_days) % 365]
    for i, name in enumerate(MONTHS):
        d = daily_beds[month == i]
        if len(d):
            k[f"inpatient_occupancy_month[{name}]"] = float(d.mean() / m.beds) if m.beds else 0.0
    os_, oe = np.array(pool.oap_start), np.array(pool.oap_end)
    oap_days = engine.busy_integral(os_, np.minimum(oe, horizon), np.array([w0, horizon]))
    k["oap_bed_days_per_year"] = float(oap_days[1] - oap_days[0]) / yrs
    k["oap_cost_gbp_per_year"] = k["oap_bed_days_per_year"] * m.oap_gbp_per_bed_day
    k["total_cost_gbp_per_year"] = m.fixed_cost_gbp + k["oap_cost_gbp_per_year"]
    k["capital_cost_gbp"] = m.capital_cost_gbp
    active = engine.open_on_day(os_, oe, day0)
    k["oap_any_day_share"] = float((active > 0).mean())
    k["oap_active_p50"] = _pct(active, 50)
    k["oap_active_p90"] = _pct(active, 90)
    k["oap_active_max"] = float(active.max()) if len(active) else 0.0
    started = (os_ >= w0) & (os_ < horizon)
    length = (oe - os_)[started]
    k["oap_episode_days_mean"] = float(length.mean()) if len(length) else float("nan")
    k["oap_episode_days_p50"] = _pct(length, 50)
    k["oap_episode_days_p90"] = _pct(length, 90)
    back = np.array(pool.oap_back, dtype=bool)[started]
    k["oap_repatriated_share"] = float(back.mean()) if len(back) else float("nan")

    # -- mobile teams
    within = np.zeros(len(mob), dtype=bool)
    within_actual = np.zeros(len(mob), dtype=bool)
    waited = np.ones(len(mob), dtype=bool)
    resp = np.full(len(mob), np.inf)
    drive = np.full(len(mob), np.nan)
    for j, (sel, qj) in queues_mob.items():
        start = np.array(qj.start) if qj.start else np.full(len(sel), np.nan)
        wait = start - t_ep[mob[sel]]
        a = area[mob[sel]]
        drive[sel] = m.travel[a, j]
        ok = np.isfinite(wait)
        resp[sel] = np.where(ok, wait * MINUTES_PER_DAY + m.dispatch_mins + drive[sel], np.inf)
        waited[sel] = ~ok | (wait > 0)
        covered = m.dispatch_mins + drive[sel] <= m.standard_mins[a]
        within[sel] = covered & ~waited[sel]
        within_actual[sel] = resp[sel] <= m.standard_mins[a]
    win_m = t_ep[mob] >= w0
    n_m = int(win_m.sum())
    k["mobile_episodes_per_year"] = n_m / yrs
    k["mobile_response_within_standard_share"] = within[win_m].mean() if n_m else 1.0
    k["mobile_response_within_standard_share_actual"] = (
        within_actual[win_m].mean() if n_m else 1.0
    )
    has_base = win_m & (base >= 0)
    k["mobile_all_busy_share"] = waited[has_base].mean() if has_base.any() else float("nan")
    r = resp[win_m]
    r = r[np.isfinite(r)]
    k["mobile_response_mins_mean"] = float(r.mean()) if len(r) else float("nan")
    for q in (50, 90, 95):
        k[f"mobile_response_mins_p{q}"] = _pct(r, q)
    trips.append(drive[has_base])

    # -- crisis line
    start = np.array(hub.start) if len(t_call) else np.zeros(0)
    wait = start - t_call
    win_c = t_call >= w0
    n_c = int(win_c.sum())
    answered = np.isfinite(wait)
    good = answered & (wait <= m.answer_within_days + 1e-12)
    k["hub_calls_per_year"] = n_c / yrs
    k["hub_service_level"] = good[win_c].mean() if n_c else 1.0
    k["hub_abandonment_share"] = (~answered[win_c]).mean() if n_c else 0.0
    k["hub_abandoned_calls_per_year"] = (~answered[win_c]).sum() / yrs
    ans_w = wait[win_c & answered] * SECONDS_PER_DAY
    k["hub_asa_seconds"] = float(ans_w.mean()) if len(ans_w) else float("nan")
    k["hub_wait_seconds_p90"] = _pct(ans_w, 90)
    hour = (np.floor((t_call - w0) * 24.0).astype(np.int64)) % 24
    for h in range(24):
        sel = win_c & (hour == h)
        if sel.any():
            k[f"hub_service_level[h{h:02d}]"] = float(good[sel].mean())
            aw = wait[sel & answered] * SECONDS_PER_DAY
            k[f"hub_asa_seconds[h{h:02d}]"] = float(aw.mean()) if len(aw) else float("nan")

    # -- places of safety (exact loss engine)
    cv_pos = p.cv("place_of_safety")
    t_s = times(g_pos, m.s136_per_year)
    n0 = engine.stationary_occupants(g_pos, m.s136_per_year / 365.0 * m.pos_los, m.suites)
    run = engine.run_loss_node(
        t_s, engine.draw_stays(g_pos, m.pos_los, len(t_s), cv_pos), m.suites,
        engine.draw_residuals(g_pos, m.pos_los, n0, cv_pos),
    )  # fmt: skip
    k["s136_turned_away_per_year"] = ((t_s >= w0) & ~run.admitted).sum() / yrs

    # -- travel: journeys to crisis houses, local beds, out of area, and mobile drives
    local = win_adm & pool.admitted
    j_all = np.concatenate(
        [*trips, m.bed_travel[a_adm[local]], np.full(int(blocked.sum()), m.oap_travel_mins)]
    )
    j_all = j_all[np.isfinite(j_all)]
    k["mean_travel_mins"] = float(j_all.mean()) if len(j_all) else float("nan")
    k["p95_travel_mins"] = _quantile_rule(j_all, 0.95)
    k["travel_burden_hours_per_year"] = (
        float(np.nansum(trips[0]) + np.nansum(drive[has_base])) / 60.0 / yrs
    )
    return Replication(kpis={kk: float(v) for kk, v in k.items()}, daily_oaps=active.astype(np.int32))


def _peak(starts: np.ndarray, ends: np.ndarray, w0: float, horizon: float) -> float:
    """Most beds in use at once during the window."""
    if len(starts) == 0:
        return 0.0
    times_ = np.concatenate([starts, ends, [w0]])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends)), [0.0]])
    order = np.lexsort((steps, times_))  # at equal times, a departure before an arrival
    busy = np.cumsum(steps[order])
    t = times_[order]
    inside = (t >= w0) & (t < horizon)
    before = busy[t < w0]
    start_level = before[-1] if len(before) else 0.0
    return float(max(start_level, busy[inside].max() if inside.any() else 0.0))
