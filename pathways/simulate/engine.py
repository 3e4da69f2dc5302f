"""The loss-node engine: one M/G/c/c node, run from a stationary start.

A loss node has no queue, so an arrival only needs to know whether some server is
free when it comes. The engine keeps, for each of the ``c`` servers, the time it next
becomes free, in a heap: an arrival at time ``t`` is admitted when the earliest
free-at time is ``<= t`` (that server then becomes free at ``t + stay``) and is lost
otherwise. This is exact for a loss system and costs ``O(log c)`` per arrival, with
no event calendar. Arrival times, stays and every other random draw are made in
NumPy up front; only the admit/lose decision is a Python loop.

Time is in days. Every run starts in the node's stationary state for its offered
load (a truncated Poisson number of occupants, each with an equilibrium residual
stay), so a short warm-up is enough; the warm-up then absorbs the difference when
the real arrival stream is not exactly Poisson.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pathways.errors import InputError, Problem


def check_los_cv(los_cv: float | None) -> float | None:
    """``None`` (exponential stays) or a finite coefficient of variation >= 0."""
    if los_cv is None:
        return None
    try:
        v = float(los_cv)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v < 0:
        raise InputError(
            Problem("simulate", None, "los_cv", "must be a finite number >= 0 (or None)")
        )
    return v


def draw_stays(rng: np.random.Generator, mean: float, n: int, cv: float | None) -> np.ndarray:
    """``n`` lengths of stay with this mean: exponential (cv None), lognormal, or fixed (cv 0)."""
    if cv is None:
        return rng.exponential(mean, n)
    if cv == 0:
        return np.full(n, float(mean))
    s2 = math.log1p(cv * cv)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), n)


def draw_residuals(rng: np.random.Generator, mean: float, n: int, cv: float | None) -> np.ndarray:
    """Remaining stays of ``n`` people present in steady state (equilibrium residual law).

    The residual is a uniform fraction of a length-biased stay. For exponential stays
    it is again exponential; a length-biased lognormal LN(mu, s^2) is LN(mu + s^2, s^2).
    """
    u = rng.random(n)
    if cv is None:
        return rng.exponential(mean, n)
    if cv == 0:
        return u * mean
    s2 = math.log1p(cv * cv)
    return u * rng.lognormal(math.log(mean) + s2 / 2, math.sqrt(s2), n)


def poisson_times(rng: np.random.Generator, per_day: float, horizon: float) -> np.ndarray:
    """Sorted arrival times of a Poisson process with this rate on [0, horizon)."""
    if per_day <= 0 or horizon <= 0:
        return np.empty(0)
    n = rng.poisson(per_day * horizon)
    return np.sort(rng.uniform(0.0, horizon, n))


def stationary_occupants(rng: np.random.Generator, load: float, servers: int) -> int:
    """Number present in an Erlang loss system at a random time: Poisson(load) truncated at c."""
    if servers <= 0 or load <= 0:
        return 0
    k = np.arange(servers + 1)
    logp = stats.poisson.logpmf(k, load)
    p = np.exp(logp - logp.max())
    return int(rng.choice(k, p=p / p.sum()))


@dataclass(frozen=True)
class NodeRun:
    """One run of a loss node: every arrival and every stay (initial occupants included)."""

    arrivals: np.ndarray  # sorted arrival times
    admitted: np.ndarray  # bool, per arrival
    stay_start: np.ndarray  # stays of admitted arrivals and initial occupants (start 0)
    stay_end: np.ndarray
    servers: int


def run_loss_node(
    arrivals: np.ndarray,
    stays: np.ndarray,
    servers: int,
    initial_residuals: np.ndarray,
) -> NodeRun:
    """Admit or lose each arrival (sorted times) given each one's stay if admitted."""
    n = len(arrivals)
    admitted = np.zeros(n, dtype=bool)
    if servers > 0:
        free_at = [0.0] * (servers - len(initial_residuals)) + [float(r) for r in initial_residuals]
        heapq.heapify(free_at)
        ends = arrivals + stays
        for i, t in enumerate(arrivals.tolist()):
            if free_at[0] <= t:
                heapq.heapreplace(free_at, ends[i])
                admitted[i] = True
    starts = np.concatenate([np.zeros(len(initial_residuals)), arrivals[admitted]])
    ends_ = np.concatenate([np.asarray(initial_residuals, float), (arrivals + stays)[admitted]])
    return NodeRun(arrivals, admitted, starts, ends_, int(servers))


def busy_integral(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Integral from 0 of the number of open intervals, evaluated at the times ``at``.

    G(b) = sum over starts < b of (b - s) minus sum over ends < b of (b - e).
    """
    at = np.asarray(at, float)
    out = np.zeros(at.shape)
    for pts, sign in ((np.sort(starts), 1.0), (np.sort(ends), -1.0)):
        csum = np.concatenate([[0.0], np.cumsum(pts)])
        k = np.searchsorted(pts, at, side="left")
        out += sign * (at * k - csum[k])
    return out


def open_on_day(starts: np.ndarray, ends: np.ndarray, days: np.ndarray) -> np.ndarray:
    """How many intervals [s, e) overlap each day [d, d + 1)."""
    s = np.sort(starts)
    e = np.sort(ends)
    return np.searchsorted(s, days + 1.0, side="left") - np.searchsorted(e, days, side="right")


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval over replications (NaN below two)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def simulate_loss_node(
    arrivals_per_day: float,
    mean_los_days: float,
    servers: int,
    reps: int = 20,
    seed: int = 0,
    days: float = 365.0,
    warmup_days: float = 60.0,
    los_cv: float | None = None,
) -> dict[str, np.ndarray]:
    """Replications of one stand-alone M/G/c/c node (the check of Erlang B).

    Returns arrays over replications: ``blocked_share``, ``occupancy`` (mean busy
    servers over the window / c), ``arrivals`` and ``blocked`` counts in the window.
    """
    cv = check_los_cv(los_cv)
    horizon = warmup_days + days
    out = {k: np.zeros(reps) for k in ("blocked_share", "occupancy", "arrivals", "blocked")}
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(reps)):
        rng = np.random.default_rng(child)
        n0 = stationary_occupants(rng, arrivals_per_day * mean_los_days, servers)
        res = draw_residuals(rng, mean_los_days, n0, cv)
        t = poisson_times(rng, arrivals_per_day, horizon)
        run = run_loss_node(t, draw_stays(rng, mean_los_days, len(t), cv), servers, res)
        win = t >= warmup_days
        n = int(win.sum())
        lost = int((win & ~run.admitted).sum())
        g = busy_integral(run.stay_start, run.stay_end, np.array([warmup_days, horizon]))
        out["arrivals"][r] = n
        out["blocked"][r] = lost
        out["blocked_share"][r] = lost / n if n else np.nan
        out["occupancy"][r] = (g[1] - g[0]) / (servers * days) if servers > 0 else 0.0
    return out


# ----------------------------------------------------------------------------- time


APRIL_1_DAY_OF_YEAR = 90
"""0-based day of the year of 1 April: the measured window starts on 1 April (the NHS
financial year), on a Monday at 00:00."""


def time_factor(
    t: np.ndarray, w0: float, week: np.ndarray | None, amplitude: float, peak_day: float
) -> np.ndarray:
    """Arrival rate at times ``t`` (days) relative to the yearly mean.

    ``week``: 168 hourly factors with mean 1 (Monday 00:00 first; None = flat);
    season: ``1 + amplitude x cos(2 pi (day of year - peak) / 365)``.
    """
    t = np.asarray(t, float)
    f = np.ones(t.shape)
    if week is not None:
        f *= week[(np.floor((t - w0) * 24.0).astype(np.int64)) % 168]
    if amplitude:
        doy = (APRIL_1_DAY_OF_YEAR + (t - w0)) % 365.0
        f *= 1.0 + amplitude * np.cos(2 * math.pi * (doy - (peak_day - 1.0)) / 365.0)
    return f


def varying_times(
    rng: np.random.Generator,
    per_day: float,
    horizon: float,
    w0: float,
    week: np.ndarray | None,
    amplitude: float,
    peak_day: float,
) -> np.ndarray:
    """Sorted times of a Poisson process whose rate follows :func:`time_factor` (thinning)."""
    top = (float(week.max()) if week is not None else 1.0) * (1.0 + amplitude)
    t = poisson_times(rng, per_day * top, horizon)
    u = rng.random(len(t))
    if week is None and not amplitude:
        return t
    return t[u * top < time_factor(t, w0, week, amplitude, peak_day)]
