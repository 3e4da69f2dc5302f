"""Queueing formulas for crisis services: Erlang B, C and A, and sizing helpers.

Every function is pure and vectorised: it accepts scalars or array-likes,
broadcasts them with NumPy's rules and returns a ``float`` when every input was
a scalar, an ``ndarray`` otherwise. Invalid input (negative, NaN or infinite
where a finite number is needed) raises :class:`pathways.errors.InputError`,
a ``ValueError``.

Every public function also takes a keyword ``service``: the service in the
user's words (e.g. ``"crisis-line staff"``), used in error messages. Without it
a message speaks of the kind of service the function models. Inputs the model
cannot compute in bounded time and memory are refused (see ``MAX_SERVERS``,
``MAX_LOAD``, ``MAX_ELEMENTS``, ``MAX_SERVER_STEPS``, ``MAX_PATIENCE_X`` and
docs/input-limits.md).

The formulas, their assumptions, references and the numerical methods are
described in ``docs/queues.md``. In short:

* loss systems (beds, crisis houses, places of safety): Erlang B, with a real
  number of servers allowed and Hayward's approximation for peaked demand;
* delay systems (mobile crisis teams): Erlang C, M/M/c;
* the crisis phone line: Erlang C call-centre measures and Erlang A
  (M/M/c+M, callers abandon after an exponential patience).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from pathways.errors import InputError, Problem

__all__ = [
    "LossResult",
    "abandonment_share",
    "average_speed_of_answer",
    "erlang_a_metrics",
    "erlang_b",
    "erlang_b_dload",
    "erlang_b_peaked",
    "erlang_c",
    "erlang_c_dload",
    "loss_system",
    "lost_traffic",
    "lost_traffic_dload",
    "mmc_metrics",
    "servers_for_blocking",
    "servers_for_service_level",
    "service_level",
    "waiting_load",
    "waiting_load_dload",
]

logger = logging.getLogger(__name__)

FloatOrArray = float | NDArray[np.float64]

SECONDS_PER_HOUR = 3600.0

# Keys of the dictionaries returned by ``mmc_metrics`` and ``erlang_a_metrics``.
UTILISATION = "utilisation"
P_WAIT = "p_wait"
MEAN_WAIT = "mean_wait"
MEAN_QUEUE_LENGTH = "mean_queue_length"
MEAN_IN_SYSTEM = "mean_in_system"
MEAN_TIME_IN_SYSTEM = "mean_time_in_system"
SERVICE_LEVEL = "service_level"
ASA_SECONDS = "asa_seconds"
ABANDONMENT_SHARE = "abandonment_share"
MEAN_WAIT_SECONDS = "mean_wait_seconds"

# B(E, f) for a fractional server count f uses the incomplete gamma function
# below this load and its asymptotic series at and above it: at E = 50 the
# 30-term series is accurate to ~1e-19 relative, while gammaincc still has
# ~1e-21 of headroom above underflow.
_ASYMPTOTIC_LOAD = 50.0
_ASYMPTOTIC_TERMS = 30

# Erlang A: the Kummer function A(x, y) is summed as a power series when y is
# well below x, otherwise taken from the regularised incomplete gamma function
# P(x, y) (guarded: never where P is below this value).
_GAMMA_REGIME_MIN_P = 1e-200
_SERIES_CHUNK = 256
_SERIES_MAX_TERMS = 20_000_000
_SERIES_RTOL = 1e-17

# Limits on what the model computes, so that no input asks for unbounded time or memory
# (docs/input-limits.md). Erlang B's recursion takes one step per server.
MAX_SERVERS = 100_000
"""Most servers (beds, places, teams, handlers) in one queue: England has about 18,000
adult acute beds in all."""
MAX_LOAD = 1e15
"""Largest offered load, in erlangs."""
MAX_ELEMENTS = 10_000_000
"""Most queues evaluated in one call (after broadcasting)."""
MAX_SERVER_STEPS = 200_000_000
"""Most recursion steps (servers summed over the queues) in one call."""
MAX_PATIENCE_X = 1e8
"""Erlang A: most handlers x mean patience / handling time (the series length grows
with its square root)."""
_MAX_SERVERS = MAX_SERVERS  # integer searches give up beyond this many servers

# What each function models, for messages when the caller does not name the service.
_LOSS = "beds or places"
_DELAY = "mobile crisis teams"
_CALLS = "crisis-line staff"
_DEFAULT_SERVICE: dict[str, str] = {
    "erlang_b": _LOSS,
    "erlang_b_peaked": _LOSS,
    "erlang_b_dload": _LOSS,
    "lost_traffic": _LOSS,
    "lost_traffic_dload": _LOSS,
    "loss_system": _LOSS,
    "servers_for_blocking": _LOSS,
    "erlang_c": _DELAY,
    "erlang_c_dload": _DELAY,
    "waiting_load": _DELAY,
    "waiting_load_dload": _DELAY,
    "mmc_metrics": _DELAY,
}
_SERVICE: contextvars.ContextVar[str] = contextvars.ContextVar("service", default="queue")

# Argument names in plain words.
_WORDS: dict[str, str] = {
    "load": "offered load (erlangs)",
    "servers": "number of servers",
    "peakedness": "peakedness (variance/mean)",
    "arrival_rate": "arrival rate",
    "service_rate": "service rate",
    "arrivals_per_hour": "calls per hour",
    "aht_seconds": "average handling time (seconds)",
    "answer_within_seconds": "answer time (seconds)",
    "mean_patience_seconds": "mean patience (seconds)",
    "arrivals_per_day": "arrivals per day",
    "mean_los_days": "mean length of stay (days)",
    "target_blocking": "target blocking share",
    "target_service_level": "target service level",
}


def _words(name: str) -> str:
    return _WORDS.get(name, name.replace("_", " "))


def _problem(message: str) -> InputError:
    return InputError(Problem(_SERVICE.get(), None, None, message))


_P = ParamSpec("_P")
_R = TypeVar("_R")


# ----------------------------------------------------------------------------- input handling


def _underflow_to_zero(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Let tiny intermediate results underflow to 0 silently: for these
    probabilities and rates 0 is the right answer, and callers running under
    ``np.errstate(all="raise")`` should not see an exception for it. Overflow,
    division by zero and invalid operations are avoided by construction."""

    default = _DEFAULT_SERVICE.get(func.__name__, _CALLS)

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        outer = _SERVICE.get()  # a public function calling another keeps its caller's words
        service = kwargs.pop("service", None) or (outer if outer != "queue" else default)
        token = _SERVICE.set(str(service))
        try:
            with np.errstate(under="ignore"):
                return func(*args, **kwargs)
        finally:
            _SERVICE.reset(token)

    return wrapper


def _check(value: ArrayLike, name: str, func: str, *, positive: bool = False) -> NDArray:
    """Return ``value`` as a float array, or raise naming the argument in plain words."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise _problem(f"{_words(name)} must be numbers, got {str(value)[:60]!r}") from None
    if arr.size > MAX_ELEMENTS:
        raise _problem(
            f"{arr.size:,} values of {_words(name)} are more than the {MAX_ELEMENTS:,} "
            "the model can compute at once"
        )
    bad = ~np.isfinite(arr) | (arr <= 0 if positive else arr < 0)
    if bad.any():
        first = arr[bad].flat[0]
        where = (
            "" if arr.ndim == 0 else f" (first bad value at index {np.argwhere(bad)[0].tolist()})"
        )
        expected = "a finite number > 0" if positive else "a finite number >= 0"
        raise _problem(f"{_words(name)} must be {expected}, got {first}{where}")
    if name == "servers" and arr.size and arr.max() > MAX_SERVERS:
        raise _problem(
            f"{arr.max():,.0f} is more than the {MAX_SERVERS:,} the model can compute"
        )
    if name in ("load", "arrival_rate", "arrivals_per_hour", "arrivals_per_day") and (
        arr.size and arr.max() > MAX_LOAD
    ):
        raise _problem(
            f"{_words(name)} of {arr.max():g} is more than the {MAX_LOAD:g} the model can compute"
        )
    return arr


def _result(values: NDArray, scalar: bool) -> FloatOrArray:
    return float(values) if scalar else values


def _prepare(func: str, **named: ArrayLike) -> tuple[list[NDArray], bool]:
    """Validate non-negative inputs and broadcast them to one shape (copies)."""
    arrays = [_check(v, k, func) for k, v in named.items()]
    scalar = all(a.ndim == 0 for a in arrays)
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError as exc:
        shapes = ", ".join(
            f"{_words(k)} {np.shape(a)}" for k, a in zip(named, arrays, strict=True)
        )
        raise _problem(f"the inputs' shapes do not fit together: {shapes}") from exc
    _check_size(shape)
    shaped = np.broadcast_arrays(*arrays)
    return [np.array(a, dtype=float) for a in shaped], scalar


def _check_size(shape: tuple[int, ...]) -> None:
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise _problem(
            f"{size:,} queues are more than the {MAX_ELEMENTS:,} the model can compute at once"
        )


def _check_peakedness(peakedness: ArrayLike, func: str) -> NDArray:
    z = _check(peakedness, "peakedness", func, positive=True)
    if (z < 1).any():
        raise _problem(
            f"peakedness must be a variance/mean >= 1 (1 = Poisson arrivals), got {z[z < 1].flat[0]}"
        )
    return z


# ----------------------------------------------------------------------------- Erlang B


def _erlang_b_fraction(load: NDArray, frac: NDArray) -> NDArray:
    """B(E, f) for 0 <= f < 1 (1-D arrays of equal length).

    B(E, f) = E^f e^-E / Gamma(f + 1, E), with Gamma(a, x) the upper incomplete
    gamma function; B(E, 0) = 1 and B(0, f) = 0 for f > 0.
    """
    out = np.ones_like(load)
    frac_pos = frac > 0
    out[frac_pos & (load == 0)] = 0.0
    mid = frac_pos & (load > 0) & (load < _ASYMPTOTIC_LOAD)
    if mid.any():
        e, f = load[mid], frac[mid]
        upper = special.gammaincc(f + 1.0, e)  # >= ~1e-21 here, no underflow
        out[mid] = np.exp(f * np.log(e) - e - special.gammaln(f + 1.0) - np.log(upper))
    big = frac_pos & (load >= _ASYMPTOTIC_LOAD)
    if big.any():
        # Gamma(f+1, E) E^-f e^E ~ sum_k f (f-1) ... (f-k+1) / E^k  (E -> inf)
        e, f = load[big], frac[big]
        term = np.ones_like(e)
        total = np.ones_like(e)
        for k in range(1, _ASYMPTOTIC_TERMS + 1):
            term = term * (f - (k - 1)) / e
            total += term
        out[big] = 1.0 / total
    return out


def _erlang_b_flat(load: NDArray, servers: NDArray) -> NDArray:
    """Erlang B on 1-D arrays: B(E, f) then the forward recursion over whole servers.

    1/B(E, x) = 1 + (x/E) / B(E, x-1), written as B <- E B / (x + E B) so that
    every intermediate lies in [0, 1]: no overflow whatever E and c, and the
    relative rounding error grows at most linearly with the number of steps.
    """
    whole = np.floor(servers)
    frac = servers - whole
    b = _erlang_b_fraction(load, frac)
    n_max = int(whole.max()) if whole.size else 0
    if n_max == 0:
        return b
    if n_max > MAX_SERVERS:
        raise _problem(f"{n_max:,} is more than the {MAX_SERVERS:,} the model can compute")
    steps = float(whole.sum())
    if steps > MAX_SERVER_STEPS:
        raise _problem(
            f"{whole.size:,} queues with {steps:,.0f} servers in all are more than the model "
            f"can compute at once (at most {MAX_SERVER_STEPS:,} servers summed over the queues)"
        )
    if b.size == 1:
        e, f, x = float(load[0]), float(frac[0]), float(b[0])
        for k in range(1, int(whole[0]) + 1):
            eb = e * x
            x = eb / (f + k + eb)
        return np.array([x])
    # Sort by descending server count: at step k the elements still recursing
    # (whole >= k) form a prefix, so the work is sum(c) rather than n * max(c).
    order = np.argsort(-whole, kind="stable")
    e, f, x, w = load[order], frac[order], b[order], whole[order]
    active = np.searchsorted(-w, -np.arange(1, n_max + 1, dtype=float), side="right")
    eb = np.empty_like(x)
    den = np.empty_like(x)
    has_frac = bool(f.any())
    for k in range(1, n_max + 1):
        m = active[k - 1]
        np.multiply(e[:m], x[:m], out=eb[:m])
        if has_frac:  # (f + k) + E B, as in the scalar loop above
            np.add(f[:m], k, out=den[:m])
            den[:m] += eb[:m]
        else:
            np.add(eb[:m], k, out=den[:m])
        np.divide(eb[:m], den[:m], out=x[:m])
    out = np.empty_like(x)
    out[order] = x
    return out


def _erlang_b(load: NDArray, servers: NDArray) -> NDArray:
    shape = np.broadcast_shapes(load.shape, servers.shape)
    e = np.broadcast_to(load, shape).ravel()
    c = np.broadcast_to(servers, shape).ravel()
    with np.errstate(under="ignore"):  # an underflow to 0 is the right answer here
        return _erlang_b_flat(e, c).reshape(shape)


@_underflow_to_zero
def erlang_b(load: ArrayLike, servers: ArrayLike) -> FloatOrArray:
    """Blocking probability of the M/M/c/c (= M/G/c/c) loss system.

    Parameters
    ----------
    load : float or array-like
        Offered load E in erlangs (arrival rate x mean holding time), >= 0.
    servers : float or array-like
        Number of servers c, >= 0. Non-integer values use the continuous
        extension B(E, c) = E^c e^-E / Gamma(c + 1, E).

    Returns
    -------
    float or ndarray
        B(E, c) in [0, 1]; B(E, 0) = 1, B(0, c) = 0 for c > 0.

    Examples
    --------
    >>> erlang_b(2.0, 2)
    0.4
    """
    (e, c), scalar = _prepare("erlang_b", load=load, servers=servers)
    return _result(_erlang_b(e, c), scalar)


@_underflow_to_zero
def erlang_b_peaked(
    load: ArrayLike, servers: ArrayLike, peakedness: ArrayLike = 1.0
) -> FloatOrArray:
    """Blocking for peaked (overdispersed) arrivals by Hayward's approximation.

    B_z(E, c) = B(E / z, c / z), with z = variance / mean of the number of busy
    servers on an infinite group (z = 1: Poisson arrivals, plain Erlang B).

    Parameters
    ----------
    load, servers : float or array-like
        Offered load (erlangs) and number of servers, >= 0.
    peakedness : float or array-like
        z >= 1.
    """
    (e, c), scalar = _prepare("erlang_b_peaked", load=load, servers=servers)
    z = _check_peakedness(peakedness, "erlang_b_peaked")
    scalar = scalar and z.ndim == 0
    return _result(_erlang_b(e / z, c / z), scalar)


def _erlang_b_dload(e: NDArray, c: NDArray, b: NDArray) -> NDArray:
    """dB/dE = B (c/E - 1 + B); at E = 0 the limit (1 for c = 1, inf for 0 < c < 1)."""
    pos = e > 0
    safe_e = np.where(pos, e, 1.0)
    # B/E can only overflow for 0 < c < 1 and E ~ 1e-308, where dB/dE -> inf.
    with np.errstate(over="ignore", under="ignore"):
        d = c * (b / safe_e) - b * (1.0 - b)
    at_zero = np.select([c == 0, c < 1, c == 1], [0.0, np.inf, 1.0], 0.0)
    return np.where(pos, d, at_zero)


@_underflow_to_zero
def erlang_b_dload(load: ArrayLike, servers: ArrayLike) -> FloatOrArray:
    """Derivative of Erlang B with respect to the offered load.

    dB/dE = B (c/E - 1 + B) (Jagerman 1974). At E = 0 the one-sided limit is
    returned: 1 for c = 1, 0 for c = 0 or c > 1, inf for 0 < c < 1.
    """
    (e, c), scalar = _prepare("erlang_b_dload", load=load, servers=servers)
    return _result(_erlang_b_dload(e, c, _erlang_b(e, c)), scalar)


@_underflow_to_zero
def lost_traffic(load: ArrayLike, servers: ArrayLike, peakedness: ArrayLike = 1.0) -> FloatOrArray:
    """Lost traffic E * B(E/z, c/z) in erlangs; convex in E for fixed c (and z)."""
    (e, c), scalar = _prepare("lost_traffic", load=load, servers=servers)
    z = _check_peakedness(peakedness, "lost_traffic")
    scalar = scalar and z.ndim == 0
    return _result(e * _erlang_b(e / z, c / z), scalar)


@_underflow_to_zero
def lost_traffic_dload(
    load: ArrayLike, servers: ArrayLike, peakedness: ArrayLike = 1.0
) -> FloatOrArray:
    """d/dE [E B(E/z, c/z)] = B + (E/z) B'(E/z, c/z) = B (1 + c/z - (E/z)(1 - B)).

    The last form uses E B' = B (c - E + E B) and has no division, so it holds
    at E = 0 too (value 0 for c > 0, 1 for c = 0).
    """
    (e, c), scalar = _prepare("lost_traffic_dload", load=load, servers=servers)
    z = _check_peakedness(peakedness, "lost_traffic_dload")
    scalar = scalar and z.ndim == 0
    ez, cz = e / z, c / z
    b = _erlang_b(ez, cz)
    return _result(b * (1.0 + cz - ez * (1.0 - b)), scalar)


# ----------------------------------------------------------------------------- Erlang C


def _erlang_c(e: NDArray, c: NDArray, b: NDArray | None = None) -> NDArray:
    if b is None:
        b = _erlang_b(e, c)
    stable = e < c
    denom = np.where(stable, c - e * (1.0 - b), 1.0)
    return np.where(stable, c * b / denom, 1.0)


@_underflow_to_zero
def erlang_c(load: ArrayLike, servers: ArrayLike) -> FloatOrArray:
    """Probability that an arrival waits in M/M/c (Erlang C).

    C(E, c) = c B / (c - E (1 - B)) for E < c, with B = B(E, c); 1.0 when
    E >= c (the queue is unstable and every arrival eventually waits), so
    c = 0 gives 1.0; C(0, c) = 0 for c > 0.
    """
    (e, c), scalar = _prepare("erlang_c", load=load, servers=servers)
    return _result(_erlang_c(e, c), scalar)


def _erlang_c_dload(e: NDArray, c: NDArray) -> tuple[NDArray, NDArray]:
    """C and dC/dE (0 where E >= c)."""
    b = _erlang_b(e, c)
    db = _erlang_b_dload(e, c, b)
    cc = _erlang_c(e, c, b)
    stable = e < c
    denom = np.where(stable, c - e * (1.0 - b), 1.0)
    # C = c B / D with D = c - E + E B, D' = -1 + B + E B'
    with np.errstate(invalid="ignore"):  # inf * 0 at E = 0, 0 < c < 1 is replaced below
        d = (c * db - cc * (b - 1.0 + e * db)) / denom
    d = np.where(np.isinf(db), np.inf, d)
    return cc, np.where(stable, d, 0.0)


@_underflow_to_zero
def erlang_c_dload(load: ArrayLike, servers: ArrayLike) -> FloatOrArray:
    """Derivative dC/dE of Erlang C for E < c (0 returned where E >= c).

    With D = c - E (1 - B): dC/dE = (c B' - C (B - 1 + E B')) / D.
    """
    (e, c), scalar = _prepare("erlang_c_dload", load=load, servers=servers)
    return _result(_erlang_c_dload(e, c)[1], scalar)


@_underflow_to_zero
def waiting_load(load: ArrayLike, servers: ArrayLike) -> FloatOrArray:
    """E * C(E, c): the arrival rate (in erlangs) that finds every server busy.

    Convex in E on [0, c) (checked numerically up to 0.95 c in the tests);
    equals E for E >= c by the convention C = 1 there.
    """
    (e, c), scalar = _prepare("waiting_load", load=load, servers=servers)
    return _result(e * _erlang_c(e, c), scalar)


@_underflow_to_zero
def waiting_load_dload(load: ArrayLike, servers: ArrayLike) -> FloatOrArray:
    """d/dE [E C(E, c)] = C + E C' (1 for E >= c)."""
    (e, c), scalar = _prepare("waiting_load_dload", load=load, servers=servers)
    cc, d = _erlang_c_dload(e, c)
    with np.errstate(invalid="ignore"):
        out = cc + np.where(e > 0, e * d, 0.0)
    return _result(out, scalar)


# ----------------------------------------------------------------------------- M/M/c


@_underflow_to_zero
def mmc_metrics(
    arrival_rate: ArrayLike, service_rate: ArrayLike, servers: ArrayLike
) -> dict[str, FloatOrArray]:
    """Steady-state measures of the M/M/c queue (any consistent time unit).

    Parameters
    ----------
    arrival_rate : float or array-like
        lambda >= 0.
    service_rate : float or array-like
        mu > 0 per server.
    servers : float or array-like
        c >= 0.

    Returns
    -------
    dict
        ``utilisation`` lambda / (c mu) (inf if c = 0 and lambda > 0),
        ``p_wait`` Erlang C, ``mean_wait`` Wq = C / (c mu - lambda),
        ``mean_queue_length`` Lq = lambda Wq, ``mean_in_system`` L = Lq + lambda/mu
        and ``mean_time_in_system`` W = Wq + 1/mu. Waits and lengths are inf
        when lambda >= c mu (unstable).
    """
    lam_in = _check(arrival_rate, "arrival_rate", "mmc_metrics")
    mu_in = _check(service_rate, "service_rate", "mmc_metrics", positive=True)
    c_in = _check(servers, "servers", "mmc_metrics")
    scalar = lam_in.ndim == 0 and mu_in.ndim == 0 and c_in.ndim == 0
    lam, mu, c = (np.array(a, dtype=float) for a in np.broadcast_arrays(lam_in, mu_in, c_in))
    e = lam / mu
    stable = e < c
    pw = _erlang_c(e, c)
    gap = np.where(stable, c * mu - lam, 1.0)
    wq = np.where(stable, pw / gap, np.inf)
    lq = np.where(stable, lam * np.where(stable, wq, 0.0), np.inf)
    util = np.where(c > 0, e / np.where(c > 0, c, 1.0), np.where(e > 0, np.inf, 0.0))
    out = {
        UTILISATION: util,
        P_WAIT: pw,
        MEAN_WAIT: wq,
        MEAN_QUEUE_LENGTH: lq,
        MEAN_IN_SYSTEM: np.where(stable, lq + e, np.inf),
        MEAN_TIME_IN_SYSTEM: np.where(stable, wq + 1.0 / mu, np.inf),
    }
    return {k: _result(v, scalar) for k, v in out.items()}


# ----------------------------------------------------------------------------- call centre (Erlang C)


def _call_inputs(
    func: str, arrivals_per_hour: ArrayLike, servers: ArrayLike, aht_seconds: ArrayLike, **more
) -> tuple[list[NDArray], bool]:
    _check(aht_seconds, "aht_seconds", func, positive=True)
    return _prepare(
        func, arrivals_per_hour=arrivals_per_hour, servers=servers, aht_seconds=aht_seconds, **more
    )


@_underflow_to_zero
def service_level(
    arrivals_per_hour: ArrayLike,
    servers: ArrayLike,
    aht_seconds: ArrayLike,
    answer_within_seconds: ArrayLike,
) -> FloatOrArray:
    """Share of calls answered within t seconds in M/M/c (Erlang C).

    SL = 1 - C(E, c) exp(-(c - E) t / AHT), E = arrivals * AHT / 3600; 0 when
    E >= c (unstable, including c = 0).
    """
    (lam, c, aht, t), scalar = _call_inputs(
        "service_level",
        arrivals_per_hour,
        servers,
        aht_seconds,
        answer_within_seconds=answer_within_seconds,
    )
    e = lam * aht / SECONDS_PER_HOUR
    stable = e < c
    with np.errstate(under="ignore"):
        sl = 1.0 - _erlang_c(e, c) * np.exp(-np.where(stable, c - e, 0.0) * t / aht)
    return _result(np.where(stable, sl, 0.0), scalar)


@_underflow_to_zero
def average_speed_of_answer(
    arrivals_per_hour: ArrayLike, servers: ArrayLike, aht_seconds: ArrayLike
) -> FloatOrArray:
    """Mean wait in seconds in M/M/c: ASA = C(E, c) AHT / (c - E); inf when E >= c."""
    (lam, c, aht), scalar = _call_inputs(
        "average_speed_of_answer", arrivals_per_hour, servers, aht_seconds
    )
    e = lam * aht / SECONDS_PER_HOUR
    stable = e < c
    asa = _erlang_c(e, c) * aht / np.where(stable, c - e, 1.0)
    return _result(np.where(stable, asa, np.inf), scalar)


# ----------------------------------------------------------------------------- Erlang A

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _stirling_remainder(x: NDArray) -> NDArray:
    """log Gamma(x) - [(x - 1/2) log x - x + log(2 pi)/2] for x >= 100."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0))))


def _x_minus_log1p(d: NDArray) -> NDArray:
    """d - log(1 + d) for d > -1, without cancellation for small |d|."""
    out = np.empty_like(d)
    small = np.abs(d) < 0.25
    ds = d[small]
    # sum_{k>=2} (-1)^k d^k / k; |d| < 1/4 so 26 terms reach ~1e-17
    acc = np.zeros_like(ds)
    for k in range(27, 1, -1):
        acc = ds * (((-1.0) ** k) / k + acc)
    out[small] = ds * acc
    big = ~small
    out[big] = d[big] - np.log1p(d[big])
    return out


def _kummer_gamma(x: NDArray, y: NDArray, p: NDArray) -> NDArray:
    """log A(x, y) = log Gamma(x+1) + y - x log y + log P(x, y), arranged stably."""
    out = np.empty_like(x)
    small = x < 100  # the Stirling series below is exact to ~1e-21 from x = 100
    xs, ys = x[small], y[small]
    out[small] = special.gammaln(xs + 1.0) + ys - xs * np.log(ys)
    xb, yb = x[~small], y[~small]
    # log Gamma(x+1) = log x + log Gamma(x); y - x log y + x log x - x = x (d - log(1+d))
    out[~small] = (
        _HALF_LOG_2PI
        + 0.5 * np.log(xb)
        + _stirling_remainder(xb)
        + xb * _x_minus_log1p((yb - xb) / xb)
    )
    return out + np.log(p)


def _kummer_series(x: NDArray, y: NDArray, want_deriv: bool) -> tuple[NDArray, NDArray]:
    """log A(x, y) and d/dx log A by summing A = sum_m y^m / ((x+1)...(x+m)).

    Used where y is well below x, so every term is below the previous one.
    """
    n = x.size
    total = np.ones(n)
    weighted = np.zeros(n)  # sum_m r_m H_m, H_m = sum_{k<=m} 1/(x+k)
    log_r = np.zeros(n)
    harm = np.zeros(n)
    has_y = y > 0
    log_y = np.log(np.where(has_y, y, 1.0))
    active = np.flatnonzero(has_y)
    m0 = 0
    while active.size:
        if m0 > _SERIES_MAX_TERMS:
            raise RuntimeError("Erlang A series did not converge")
        k = m0 + 1.0 + np.arange(_SERIES_CHUNK)
        xk = x[active, None] + k
        lr = log_r[active, None] + np.cumsum(log_y[active, None] - np.log(xk), axis=1)
        terms = np.exp(lr)
        total[active] += terms.sum(axis=1)
        log_r[active] = lr[:, -1]
        last = terms[:, -1]
        ratio = y[active] / (x[active] + k[-1] + 1.0)
        with np.errstate(divide="ignore"):
            geo = np.where(ratio < 1.0, ratio / (1.0 - ratio), np.inf)
        done = last * geo <= _SERIES_RTOL * total[active]
        if want_deriv:
            hk = harm[active, None] + np.cumsum(1.0 / xk, axis=1)
            weighted[active] += (terms * hk).sum(axis=1)
            harm[active] = hk[:, -1]
            # tail of r_m H_m <= r_M [H_M g + g (1 + g) / (x + M + 1)], g = ratio/(1-ratio)
            with np.errstate(invalid="ignore"):
                tail = last * (harm[active] * geo + geo * (1.0 + geo) / (x[active] + k[-1] + 1.0))
            done &= tail <= _SERIES_RTOL * np.maximum(weighted[active], 1e-300)
        active = active[~done]
        m0 += _SERIES_CHUNK
    if m0 > 16 * _SERIES_CHUNK:
        logger.debug("Erlang A series needed %d terms", m0)
    return np.log(total), -weighted / total


def _kummer(x: NDArray, y: NDArray, want_deriv: bool = False) -> tuple[NDArray, NDArray | None]:
    """log A(x, y) for A(x, y) = 1F1(1; x + 1; y) = sum_m y^m / ((x+1)...(x+m)).

    Equivalently A(x, y) = Gamma(x+1) e^y y^-x P(x, y), P the regularised
    lower incomplete gamma function. x >= 0, y >= 0 (1-D arrays). With
    ``want_deriv`` (x >= 1 then) also returns d/dx log A(x, y).
    """
    logs = np.empty_like(x)
    deriv = np.empty_like(x) if want_deriv else None
    # The series is exact term by term and converges fast when y is well below
    # x; above that, the gamma form (whose x-derivative mixes terms of opposite
    # sign when y < x) takes over.
    g = y > np.maximum(0.5 * (x + 1.0), x - 3.0 * np.sqrt(x))
    p = np.zeros_like(x)
    p[g] = special.gammainc(x[g], y[g])
    g &= p >= _GAMMA_REGIME_MIN_P
    if g.any():
        xg, yg = x[g], y[g]
        logs[g] = _kummer_gamma(xg, yg, p[g])
        if want_deriv:
            # d/dx log A = psi(x+1) - log y + d/dx log P(x, y); the last term by a
            # five-point difference (log P is smooth in x, on a scale ~ sqrt(x)).
            h = 1e-3 * np.sqrt(xg)
            lp = [np.log(special.gammainc(xg + j * h, yg)) for j in (-2, -1, 1, 2)]
            dlogp = (lp[0] - 8.0 * lp[1] + 8.0 * lp[2] - lp[3]) / (12.0 * h)
            deriv[g] = special.digamma(xg + 1.0) - np.log(yg) + dlogp
    s = ~g
    if s.any():
        ls, ds = _kummer_series(x[s], y[s], want_deriv)
        logs[s] = ls
        if want_deriv:
            deriv[s] = ds
    return logs, deriv


def _erlang_a(
    lam_hour: NDArray, n: NDArray, aht: NDArray, patience: NDArray, t: NDArray
) -> dict[str, NDArray]:
    """Erlang A measures on 1-D arrays of equal length (see ``erlang_a_metrics``)."""
    size = lam_hour.size
    lam = lam_hour / SECONDS_PER_HOUR  # per second
    e = lam * aht
    b_all = _erlang_b_flat(e, n)
    p_wait = np.ones(size)
    sl = np.zeros(size)
    asa = np.full(size, np.inf)
    aband = np.ones(size)
    mean_wait = patience.copy()

    finite = np.isfinite(patience)
    # (i) patience = inf: Erlang C
    inf_p = ~finite & (n > 0)
    if inf_p.any():
        ei, ni, ai, ti = e[inf_p], n[inf_p], aht[inf_p], t[inf_p]
        stable = ei < ni
        ci = _erlang_c(ei, ni, b_all[inf_p])
        gap = np.where(stable, ni - ei, 1.0)
        p_wait[inf_p] = ci
        sl[inf_p] = np.where(stable, 1.0 - ci * np.exp(-gap * ti / ai), 0.0)
        asa[inf_p] = np.where(stable, ci * ai / gap, np.inf)
        aband[inf_p] = 0.0
        mean_wait[inf_p] = asa[inf_p]
    # (ii) patience = 0: callers who find every agent busy leave at once
    zero_p = (patience == 0) & (n > 0)
    if zero_p.any():
        bz = b_all[zero_p]
        p_wait[zero_p] = bz
        sl[zero_p] = 1.0 - bz
        asa[zero_p] = 0.0
        aband[zero_p] = bz
        mean_wait[zero_p] = 0.0
    # (iii) n = 0: nobody is answered; every caller with finite patience hangs up.
    aband[(n == 0) & ~finite] = 0.0
    # (iv) the general case
    gen = finite & (patience > 0) & (n > 0)
    if gen.any():
        x_max = float((n[gen] * patience[gen] / aht[gen]).max())
        if x_max > MAX_PATIENCE_X:
            raise _problem(
                "callers' mean patience is too long against the handling time for the model to "
                f"compute (handlers x patience / handling time is {x_max:,.0f}; at most "
                f"{MAX_PATIENCE_X:,.0f}); a patience that long is no different from unlimited "
                "(use inf)"
            )
        theta = 1.0 / patience[gen]
        ng, ag, tg = n[gen], aht[gen], t[gen]
        bg = b_all[gen]
        xa = ng * patience[gen] / ag  # n mu / theta
        yb = lam[gen] * patience[gen]  # lambda / theta
        theta_t = tg * theta
        z = np.exp(-theta_t)
        x_all = np.concatenate([xa, xa + 1.0, xa + 1.0])
        y_all = np.concatenate([yb, yb, yb * z])
        m = xa.size
        log_a, _ = _kummer(x_all, y_all)
        log_a0, log_a1, log_at = log_a[:m], log_a[m : 2 * m], log_a[2 * m :]
        _, d1 = _kummer(xa + 1.0, yb, want_deriv=True)
        # P(N >= n) = A B / (1 + (A - 1) B) = B / (B + (1 - B) / A)
        inv_a0 = np.exp(-log_a0)
        denom = bg + (1.0 - bg) * inv_a0
        pw = np.where(denom > 0, bg / np.where(denom > 0, denom, 1.0), 1.0)
        # P(served | waited) = (x / (x+1)) A(x+1, y) / A(x, y)
        served_w = np.clip(xa / (xa + 1.0) * np.exp(log_a1 - log_a0), 0.0, 1.0)
        # share of the waiting-then-served callers answered within t
        within = -np.expm1(-(xa + 1.0) * theta_t - yb * np.expm1(-theta_t) + log_at - log_a1)
        # E[V | served, waited] = (1/theta) [1/(x+1) - d/dx log A(x+1, y)]
        wait_served = (1.0 / (xa + 1.0) - d1) / theta
        ab = pw * (1.0 - served_w)
        answered = 1.0 - ab
        p_wait[gen] = pw
        sl[gen] = (1.0 - pw) + pw * served_w * np.clip(within, 0.0, 1.0)
        asa[gen] = np.where(
            answered > 0,
            pw * served_w * wait_served / np.where(answered > 0, answered, 1.0),
            np.inf,
        )
        aband[gen] = ab
        mean_wait[gen] = ab / theta
    return {
        P_WAIT: p_wait,
        SERVICE_LEVEL: sl,
        ASA_SECONDS: asa,
        ABANDONMENT_SHARE: aband,
        MEAN_WAIT_SECONDS: mean_wait,
    }


@_underflow_to_zero
def erlang_a_metrics(
    arrivals_per_hour: ArrayLike,
    servers: ArrayLike,
    aht_seconds: ArrayLike,
    mean_patience_seconds: ArrayLike,
    answer_within_seconds: ArrayLike = 0.0,
) -> dict[str, FloatOrArray]:
    """Erlang A (M/M/c+M): a call line whose callers hang up after Exp(patience).

    Stable for any load. ``mean_patience_seconds`` may be ``inf`` (Erlang C,
    unstable when E >= c) or 0 (callers who find every handler busy leave at
    once: Erlang B).

    Returns
    -------
    dict
        ``p_wait``: share of callers who find every handler busy;
        ``service_level``: share of all callers answered within
        ``answer_within_seconds`` (callers who hang up count as not answered);
        ``asa_seconds``: mean wait of answered callers (inf if none is answered);
        ``abandonment_share``: share of callers who hang up before an answer;
        ``mean_wait_seconds``: mean time in queue over all callers, answered or not.
    """
    func = "erlang_a_metrics"
    _check(aht_seconds, "aht_seconds", func, positive=True)
    patience = np.asarray(mean_patience_seconds, dtype=float)
    _check(np.where(np.isposinf(patience), 0.0, patience), "mean_patience_seconds", func)
    (lam, c, aht, t), scalar = _prepare(
        func,
        arrivals_per_hour=arrivals_per_hour,
        servers=servers,
        aht_seconds=aht_seconds,
        answer_within_seconds=answer_within_seconds,
    )
    try:
        shape = np.broadcast_shapes(lam.shape, patience.shape)
    except ValueError as exc:
        raise _problem("the mean patience's shape does not fit the other inputs") from exc
    _check_size(shape)
    scalar = scalar and patience.ndim == 0
    flat = [np.broadcast_to(a, shape).ravel() for a in (lam, c, aht, patience, t)]
    with np.errstate(under="ignore"):
        out = _erlang_a(*flat)
    return {k: _result(v.reshape(shape), scalar) for k, v in out.items()}


@_underflow_to_zero
def abandonment_share(
    arrivals_per_hour: ArrayLike,
    servers: ArrayLike,
    aht_seconds: ArrayLike,
    mean_patience_seconds: ArrayLike,
) -> FloatOrArray:
    """Share of callers who hang up before an answer, Erlang A (M/M/c+M)."""
    return erlang_a_metrics(arrivals_per_hour, servers, aht_seconds, mean_patience_seconds)[
        ABANDONMENT_SHARE
    ]


# ----------------------------------------------------------------------------- loss systems


@dataclass(frozen=True)
class LossResult:
    """A loss system (beds, crisis-house places) in steady state.

    Attributes
    ----------
    offered_load : erlangs (arrivals per day x mean length of stay in days)
    blocked_share : share of arrivals finding every place full
    carried_load : mean number of occupied places, E (1 - B)
    occupancy : carried load / places (0 when there are no places)
    blocked_per_day : arrivals turned away per day
    """

    offered_load: FloatOrArray
    blocked_share: FloatOrArray
    carried_load: FloatOrArray
    occupancy: FloatOrArray
    blocked_per_day: FloatOrArray


@_underflow_to_zero
def loss_system(
    arrivals_per_day: ArrayLike,
    mean_los_days: ArrayLike,
    servers: ArrayLike,
    peakedness: ArrayLike = 1.0,
) -> LossResult:
    """Erlang B loss system (Hayward's approximation when peakedness > 1)."""
    func = "loss_system"
    (lam, los, c), scalar = _prepare(
        func, arrivals_per_day=arrivals_per_day, mean_los_days=mean_los_days, servers=servers
    )
    z = _check_peakedness(peakedness, func)
    scalar = scalar and z.ndim == 0
    e = lam * los
    b = _erlang_b(e / z, c / z)
    carried = e * (1.0 - b)
    occ = np.where(c > 0, carried / np.where(c > 0, c, 1.0), 0.0)
    return LossResult(
        offered_load=_result(e * np.ones_like(b), scalar),
        blocked_share=_result(b, scalar),
        carried_load=_result(carried, scalar),
        occupancy=_result(occ, scalar),
        blocked_per_day=_result(lam * b, scalar),
    )


# ----------------------------------------------------------------------------- sizing


def _smallest_servers(ok: Callable[[NDArray, NDArray], NDArray], start: NDArray) -> NDArray:
    """Smallest integer c >= 0 with ok(c) for a predicate monotone in c.

    ``ok(idx, c)`` evaluates the predicate for the elements ``idx`` (of the
    flattened problem) at server counts ``c``. ``start`` is a first guess.
    """
    n = start.size
    idx = np.arange(n)
    hi = np.maximum(np.ceil(start), 1.0)
    if hi.size and hi.max() > _MAX_SERVERS:
        raise _problem(
            f"meeting the target needs more than {_MAX_SERVERS:,}, the most the model can compute"
        )
    bad = ~ok(idx, hi)
    while bad.any():
        hi[bad] *= 2.0
        if hi.max() > _MAX_SERVERS:
            raise _problem(
                f"meeting the target needs more than {_MAX_SERVERS:,}, the most the model "
                "can compute"
            )
        sub = np.flatnonzero(bad)
        bad[sub] = ~ok(sub, hi[sub])
    lo = np.full(n, -1.0)  # ok(lo) is false or lo = -1
    while True:
        gap = hi - lo > 1
        if not gap.any():
            return hi
        sub = np.flatnonzero(gap)
        mid = np.floor((lo[sub] + hi[sub]) / 2.0)
        good = ok(sub, mid)
        hi[sub[good]] = mid[good]
        lo[sub[~good]] = mid[~good]


@_underflow_to_zero
def servers_for_blocking(
    load: ArrayLike, target_blocking: ArrayLike, peakedness: ArrayLike = 1.0
) -> FloatOrArray:
    """Smallest integer number of servers with B(E/z, c/z) <= target.

    Zero load needs no servers. ``target_blocking`` must lie in (0, 1];
    a target of 1 needs no servers. Returns floats holding whole numbers.
    """
    func = "servers_for_blocking"
    (e, target), scalar = _prepare(func, load=load, target_blocking=target_blocking)
    _check(target, "target_blocking", func, positive=True)
    if (target > 1).any():
        raise _problem(f"target blocking share must be at most 1, got {target.max():g}")
    z = _check_peakedness(peakedness, func)
    scalar = scalar and z.ndim == 0
    shape = np.broadcast_shapes(e.shape, z.shape)
    ez = np.broadcast_to(e / z, shape).ravel()
    zf = np.broadcast_to(z, shape).ravel()
    tf = np.broadcast_to(target, shape).ravel()

    def ok(idx: NDArray, c: NDArray) -> NDArray:
        with np.errstate(under="ignore"):
            return (ez[idx] == 0) | (_erlang_b_flat(ez[idx], c / zf[idx]) <= tf[idx])

    out = _smallest_servers(ok, ez * zf + 1.0)
    out = np.where((ez == 0) | (tf >= 1), 0.0, out)
    return _result(out.reshape(shape), scalar)


@_underflow_to_zero
def servers_for_service_level(
    arrivals_per_hour: ArrayLike,
    aht_seconds: ArrayLike,
    answer_within_seconds: ArrayLike,
    target_service_level: ArrayLike,
    mean_patience_seconds: ArrayLike | None = None,
) -> FloatOrArray:
    """Smallest integer number of handlers whose service level meets the target.

    Erlang C (``service_level``) by default; Erlang A (answered within t, among
    all callers) when ``mean_patience_seconds`` is given. ``target_service_level``
    must lie in (0, 1). Zero arrivals need no handlers.
    """
    func = "servers_for_service_level"
    _check(aht_seconds, "aht_seconds", func, positive=True)
    (lam, aht, t, target), scalar = _prepare(
        func,
        arrivals_per_hour=arrivals_per_hour,
        aht_seconds=aht_seconds,
        answer_within_seconds=answer_within_seconds,
        target_service_level=target_service_level,
    )
    _check(target, "target_service_level", func, positive=True)
    if (target >= 1).any():
        raise _problem(f"target service level must be below 1, got {target.max():g}")
    arrays = [lam, aht, t, target]
    if mean_patience_seconds is not None:
        pat = np.asarray(mean_patience_seconds, dtype=float)
        _check(np.where(np.isposinf(pat), 0.0, pat), "mean_patience_seconds", func)
        scalar = scalar and pat.ndim == 0
        arrays.append(pat)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = [np.broadcast_to(a, shape).ravel() for a in arrays]
    lam_f, aht_f, t_f, tgt_f = flat[:4]
    e = lam_f * aht_f / SECONDS_PER_HOUR

    def ok(idx: NDArray, c: NDArray) -> NDArray:
        with np.errstate(under="ignore"):
            if mean_patience_seconds is None:
                ei, ai = e[idx], aht_f[idx]
                stable = ei < c
                cc = _erlang_c(ei, c)
                sl = np.where(
                    stable, 1.0 - cc * np.exp(-np.where(stable, c - ei, 0.0) * t_f[idx] / ai), 0.0
                )
            else:
                sl = _erlang_a(lam_f[idx], c, aht_f[idx], flat[4][idx], t_f[idx])[SERVICE_LEVEL]
        return (lam_f[idx] == 0) | (sl >= tgt_f[idx])

    out = _smallest_servers(ok, np.floor(e) + 1.0)
    out = np.where(lam_f == 0, 0.0, out)
    return _result(out.reshape(shape), scalar)
