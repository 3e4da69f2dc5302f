"""Queueing formulas against exact arithmetic, brute-force Markov chains and tables."""

from __future__ import annotations

import dataclasses
import math
import warnings
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from pathways import queues as q

# ----------------------------------------------------------------------------- helpers


@contextmanager
def strict_floats():
    """Any floating-point warning or exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            yield


def exact_erlang_b(load: str, servers: int) -> float:
    """B(E, c) = (E^c / c!) / sum_k E^k / k! in exact rational arithmetic."""
    e = Fraction(load)
    term = Fraction(1)
    total = Fraction(1)
    for k in range(1, servers + 1):
        term = term * e / k
        total += term
    return float(term / total)


def gth_stationary(rates: np.ndarray) -> np.ndarray:
    """Stationary distribution of a finite CTMC from its off-diagonal rates by the
    Grassmann-Taksar-Heyman state reduction (no subtractions, so every entry
    keeps full relative accuracy, however small)."""
    a = np.array(rates, dtype=float)
    np.fill_diagonal(a, 0.0)
    n = a.shape[0]
    out_rate = np.zeros(n)
    for k in range(n - 1, 0, -1):
        out_rate[k] = a[k, :k].sum()
        rows = np.flatnonzero(a[:k, k])
        cols = np.flatnonzero(a[k, :k])
        a[np.ix_(rows, cols)] += np.outer(a[rows, k], a[k, cols]) / out_rate[k]
    pi = np.zeros(n)
    pi[0] = 1.0
    for k in range(1, n):
        pi[k] = pi[:k] @ a[:k, k] / out_rate[k]
    return pi / pi.sum()


def mmc_stationary(lam: float, mu: float, c: int, n_max: int) -> np.ndarray:
    """Stationary distribution of the M/M/c chain truncated at n_max customers."""
    rates = np.zeros((n_max + 1, n_max + 1))
    j = np.arange(n_max)
    rates[j, j + 1] = lam
    rates[j + 1, j] = np.minimum(j + 1, c) * mu
    pi = gth_stationary(rates)
    assert pi[-1] < 1e-18 * pi.max(), "truncation too tight"
    return pi


def erlang_a_reference(lam_h: float, n: int, aht: float, patience: float, t: float, n_max: int):
    """M/M/n+M by brute force: the truncated birth-death chain for the stationary
    distribution, and the absorbing chain of one tagged caller (number of callers
    ahead; served or hung up) for the waiting-time measures."""
    lam, mu, th = lam_h / 3600.0, 1.0 / aht, 1.0 / patience
    logp = np.zeros(n_max + 1)
    for j in range(1, n_max + 1):
        death = min(j, n) * mu + max(j - n, 0) * th
        logp[j] = logp[j - 1] + math.log(lam / death)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    assert p[-1] < 1e-18 * p.max(), "truncation too tight"
    k_max = n_max - n
    trans = np.zeros((k_max + 1, k_max + 1))
    for k in range(k_max + 1):
        trans[k, k] = -(n * mu + (k + 1) * th)
        if k:
            trans[k, k - 1] = n * mu + k * th
    exit_served = np.zeros(k_max + 1)
    exit_served[0] = n * mu
    p_served = np.linalg.solve(-trans, exit_served)
    time_served = np.linalg.solve(-trans, p_served)  # E[T 1{served}] = (-T)^-2 s
    aug = np.zeros((k_max + 2, k_max + 2))
    aug[: k_max + 1, : k_max + 1] = trans
    aug[: k_max + 1, -1] = exit_served
    served_by_t = scipy.linalg.expm(aug * t)[: k_max + 1, -1]
    queue = p[n:]
    p_wait = queue.sum()
    answered = 1.0 - p_wait + queue @ p_served
    return {
        "p_wait": p_wait,
        "service_level": 1.0 - p_wait + queue @ served_by_t,
        "asa_seconds": queue @ time_served / answered,
        "abandonment_share": th * (np.arange(k_max + 1) @ queue) / lam,
    }


# ----------------------------------------------------------------------------- Erlang B

LOADS = ["0", "0.1", "0.5", "1", "2", "7.3", "10", "49.5", "50", "123.4", "500", "1000", "2000"]
SERVERS = [0, 1, 2, 3, 10, 50, 100, 200, 499, 500]


def test_erlang_b_matches_exact_rationals_on_a_grid():
    exact = np.array([[exact_erlang_b(e, c) for c in SERVERS] for e in LOADS])
    loads = np.array([float(e) for e in LOADS])
    got = q.erlang_b(loads[:, None], np.array(SERVERS)[None, :])
    assert got.shape == exact.shape
    normal = exact > 1e-290
    np.testing.assert_allclose(got[normal], exact[normal], rtol=1e-9, atol=0)
    assert np.all(got[~normal] <= 1e-290)
    # scalar path agrees with the array path
    for i, j in [(3, 1), (4, 2), (12, 9), (11, 8), (8, 6)]:
        assert q.erlang_b(loads[i], SERVERS[j]) == pytest.approx(exact[i, j], rel=1e-9)


def test_erlang_b_textbook_values():
    assert q.erlang_b(1.0, 1) == pytest.approx(0.5, rel=1e-15)
    assert q.erlang_b(2.0, 2) == pytest.approx(0.4, rel=1e-15)
    # Erlang B tables: offered load giving 1% (and 2%) blocking, quoted to 3
    # significant figures; the true load lies within half a unit of the last digit.
    table = [(0.01, 2, 0.153), (0.01, 5, 1.36), (0.01, 10, 4.46), (0.01, 20, 12.0),
             (0.01, 50, 37.9), (0.01, 100, 84.1), (0.02, 10, 5.08), (0.02, 20, 13.2)]  # fmt: skip
    for target, c, load in table:
        half = 0.5 * 10 ** (math.floor(math.log10(load)) - 2)
        assert q.erlang_b(load - half, c) <= target <= q.erlang_b(load + half, c)


def test_erlang_b_array_path_matches_scalar_path_for_many_servers():
    rng = np.random.default_rng(np.random.SeedSequence(20240611))
    loads = rng.uniform(0, 3000, 300)
    servers = rng.integers(0, 2001, 300).astype(float)
    servers[::3] += rng.uniform(0, 1, 100)
    got = q.erlang_b(loads, servers)
    each = np.array([q.erlang_b(e, c) for e, c in zip(loads, servers, strict=True)])
    np.testing.assert_allclose(got, each, rtol=1e-13, atol=1e-300)


def test_erlang_b_real_servers_match_jagerman_integral():
    # 1 / B(E, x) = int_0^inf e^-s (1 + s/E)^x ds  (Jagerman 1974)
    for e in [0.2, 3.0, 20.0, 49.9, 50.1, 120.0, 600.0]:
        for x in [0.3, 0.999, 1.5, 2.7, 10.25, 33.9]:
            inv, _ = integrate.quad(
                lambda s, e=e, x=x: math.exp(-s + x * math.log1p(s / e)),
                0,
                np.inf,
                epsabs=0,
                epsrel=1e-13,
                limit=200,
            )
            assert q.erlang_b(e, x) == pytest.approx(1.0 / inv, rel=1e-9), (e, x)


def test_erlang_b_real_servers_continuous_and_decreasing():
    for e in [0.05, 1.0, 7.5, 49.999, 50.0, 300.0]:
        cs = np.linspace(0, 40, 4001)
        b = q.erlang_b(e, cs)
        d = np.diff(b)
        visible = b[:-1] > 1e-290
        assert np.all(d[visible] < 0)
        assert np.all(d <= 0)
        for n in [1, 2, 5, 17]:
            at = exact_erlang_b(str(e), n)
            for eps in (1e-9, -1e-9):
                assert q.erlang_b(e, n + eps) == pytest.approx(at, rel=1e-7)
            assert q.erlang_b(e, float(n)) == pytest.approx(at, rel=1e-12)
    # the switch to the asymptotic series at E = 50 is seamless
    for x in [0.25, 2.5, 7.75]:
        lo, hi = q.erlang_b(50.0 - 1e-9, x), q.erlang_b(50.0 + 1e-9, x)
        assert hi == pytest.approx(lo, rel=1e-9)


def test_erlang_b_edge_cases():
    with strict_floats():
        assert q.erlang_b(0.0, 0) == 1.0
        assert q.erlang_b(7.0, 0) == 1.0
        assert q.erlang_b(0.0, 3) == 0.0
        assert q.erlang_b(0.0, 2.5) == 0.0
        big = q.erlang_b(5000.0, 10)
        assert big == pytest.approx(exact_erlang_b("5000", 10), rel=1e-12)
        assert abs(big - (1 - 10 / 5000)) < 1e-5
        assert q.erlang_b(1e9, 3.5) == pytest.approx(1 - 3.5e-9, rel=1e-15)
        assert q.erlang_b(1e-300, 1) == pytest.approx(1e-300, rel=1e-12)
        assert q.erlang_b(1e-300, 2) == 0.0
        assert q.erlang_b(1e-3, 2000) == 0.0
        assert q.erlang_b(1e-300, 0.5) > 0.0
    for bad in [(-1.0, 2), (1.0, -2), (np.nan, 1), (np.inf, 1), ([1.0, -0.5], 3)]:
        with pytest.raises(ValueError):
            q.erlang_b(*bad)


def test_broadcasting_and_return_types():
    loads = np.array([0.5, 5.0, 50.0]).reshape(3, 1, 1)
    servers = np.array([[0, 1, 2.5, 10]]).reshape(1, 4, 1)
    z = np.array([1.0, 2.0])
    got = q.erlang_b_peaked(loads, servers, z)
    assert got.shape == (3, 4, 2)
    for i, j, k in np.ndindex(got.shape):
        assert got[i, j, k] == q.erlang_b(loads[i, 0, 0] / z[k], servers[0, j, 0] / z[k])
    assert isinstance(q.erlang_b(2, 3), float)
    assert isinstance(q.erlang_b(np.float64(2), 3), float)
    assert isinstance(q.erlang_b([2.0], 3), np.ndarray)
    assert isinstance(q.erlang_c(2.0, 3), float)
    assert isinstance(q.erlang_a_metrics(60, 2, 300, 60, 20)["p_wait"], float)
    assert q.erlang_a_metrics([60, 90], 2, 300, [[60], [120]], 20)["p_wait"].shape == (2, 2)
    with pytest.raises(ValueError):
        q.erlang_b(np.ones(3), np.ones(4))


def test_no_floating_point_warnings_on_extreme_inputs():
    loads = np.array([0.0, 1e-300, 1e-12, 0.3, 1.0, 49.99, 50.0, 1e3, 2e3, 1e6, 1e12])
    servers = np.array([0.0, 0.2, 1.0, 1.5, 2.0, 10.0, 99.5, 500.0, 2000.0])
    e, c = loads[:, None], servers[None, :]
    with strict_floats():
        for f in (q.erlang_b, q.erlang_c, q.erlang_c_dload, q.waiting_load, q.waiting_load_dload):
            out = f(e, c)
            assert not np.isnan(out).any()
        for z in (1.0, 2.5):
            for f in (q.erlang_b_peaked, q.lost_traffic, q.lost_traffic_dload):
                assert np.isfinite(f(e, c, z)).all()
        d = q.erlang_b_dload(e, c)
        assert not np.isnan(d).any()
        assert np.isfinite(d[:, servers != 0.2]).all()
        calls = np.array([0.0, 1.0, 60.0, 600.0, 6000.0])[:, None]
        handlers = np.array([0.0, 1.0, 5.0, 20.0, 200.0])[None, :]
        for patience in (0.0, 1.0, 120.0, 1e5, np.inf):
            m = q.erlang_a_metrics(calls, handlers, 300.0, patience, 20.0)
            for key, v in m.items():
                assert not np.isnan(v).any(), (patience, key)
            assert ((m["p_wait"] >= 0) & (m["p_wait"] <= 1)).all()
        q.mmc_metrics(calls, 1.0, handlers)
        q.service_level(calls, handlers, 300, 20)
        q.average_speed_of_answer(calls, handlers, 300)


# ----------------------------------------------------------------------------- Hayward


def test_peaked_blocking_reduces_to_erlang_b_and_grows_with_peakedness():
    assert q.erlang_b_peaked(12.0, 15, 1.0) == q.erlang_b(12.0, 15)
    for e, c in [(5.0, 8), (12.0, 15), (80.0, 90), (20.0, 20)]:
        zs = np.linspace(1, 4, 31)
        b = q.erlang_b_peaked(e, c, zs)
        assert np.all(np.diff(b) > 0)
    with pytest.raises(ValueError):
        q.erlang_b_peaked(1.0, 2, 0.5)


# ----------------------------------------------------------------------------- derivatives and convexity

CONVEX_SERVERS = [1, 2, 5, 10, 50, 200, 400]
PEAKEDNESS = [1.0, 1.5, 3.0]


def central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("c", [0.5, 1, 2, 5.5, 10, 50, 200])
def test_erlang_b_dload_matches_finite_differences(c):
    e = np.linspace(0.01, 3 * c + 5, 400)
    h = 1e-6 * (1 + e)
    fd = central_difference(lambda x: q.erlang_b(x, c), e, h)
    np.testing.assert_allclose(q.erlang_b_dload(e, c), fd, rtol=1e-6, atol=1e-9)
    assert q.erlang_b_dload(0.0, 1) == 1.0
    assert q.erlang_b_dload(0.0, 3) == 0.0
    assert q.erlang_b_dload(0.0, 0) == 0.0


@pytest.mark.parametrize("c", CONVEX_SERVERS)
@pytest.mark.parametrize("z", PEAKEDNESS)
def test_lost_traffic_derivative_and_convexity(c, z):
    e = np.linspace(0.0, 3 * c + 20, 2001)
    lost = q.lost_traffic(e, c, z)
    np.testing.assert_allclose(lost, e * q.erlang_b(e / z, c / z), rtol=1e-15)
    assert np.diff(lost, 2).min() >= -1e-12
    inner = e[1:]
    h = 1e-6 * (1 + inner)
    fd = central_difference(lambda x: q.lost_traffic(x, c, z), inner, h)
    np.testing.assert_allclose(q.lost_traffic_dload(inner, c, z), fd, rtol=1e-6, atol=1e-9)
    # slope runs from 0 towards 1 and never decreases (convexity again, exactly)
    slope = q.lost_traffic_dload(e, c, z)
    assert slope[0] == 0.0
    assert np.all(np.diff(slope) >= -1e-12)
    assert slope.min() >= 0.0 and slope.max() <= 1.0


@pytest.mark.parametrize("c", [1, 2, 3.5, 10, 50, 200])
def test_erlang_c_dload_matches_finite_differences(c):
    e = np.linspace(0.01, 0.97 * c, 300)
    h = 1e-7 * (1 + e)
    fd = central_difference(lambda x: q.erlang_c(x, c), e, h)
    np.testing.assert_allclose(q.erlang_c_dload(e, c), fd, rtol=1e-5, atol=1e-9)
    fdw = central_difference(lambda x: q.waiting_load(x, c), e, h)
    np.testing.assert_allclose(q.waiting_load_dload(e, c), fdw, rtol=1e-5, atol=1e-9)
    assert q.erlang_c_dload(c + 1.0, c) == 0.0
    assert q.waiting_load_dload(c + 1.0, c) == 1.0


@pytest.mark.parametrize("c", CONVEX_SERVERS)
def test_waiting_load_is_convex_below_saturation(c):
    e = np.linspace(0.0, 0.95 * c, 2001)
    w = q.waiting_load(e, c)
    np.testing.assert_allclose(w, e * q.erlang_c(e, c), rtol=1e-15)
    assert np.diff(w, 2).min() >= -1e-12
    assert np.all(np.diff(q.waiting_load_dload(e, c)) >= -1e-12)


# ----------------------------------------------------------------------------- Erlang C and M/M/c


@pytest.mark.parametrize("c", [1, 2, 5, 20])
@pytest.mark.parametrize("rho", [0.3, 0.8, 0.9])
def test_erlang_c_and_mmc_metrics_match_brute_force_chain(c, rho):
    mu = 0.25
    lam = rho * c * mu
    pi = mmc_stationary(lam, mu, c, c + 500)
    j = np.arange(pi.size)
    p_wait = pi[c:].sum()
    lq = ((j - c).clip(0) * pi).sum()
    assert q.erlang_c(lam / mu, c) == pytest.approx(p_wait, rel=1e-9)
    m = q.mmc_metrics(lam, mu, c)
    assert m["utilisation"] == pytest.approx(rho, rel=1e-14)
    assert m["p_wait"] == pytest.approx(p_wait, rel=1e-9)
    assert m["mean_queue_length"] == pytest.approx(lq, rel=1e-9)
    assert m["mean_wait"] == pytest.approx(lq / lam, rel=1e-9)  # Little
    assert m["mean_in_system"] == pytest.approx((j * pi).sum(), rel=1e-9)
    assert m["mean_time_in_system"] == pytest.approx((j * pi).sum() / lam, rel=1e-9)


def test_mm1_closed_forms():
    lam = np.array([0.1, 0.5, 0.9, 2.5])
    mu = np.array([1.0, 1.0, 1.0, 3.0])
    rho = lam / mu
    m = q.mmc_metrics(lam, mu, 1)
    np.testing.assert_allclose(m["p_wait"], rho, rtol=1e-14)
    np.testing.assert_allclose(m["mean_wait"], rho / (mu - lam), rtol=1e-13)
    np.testing.assert_allclose(m["mean_queue_length"], rho**2 / (1 - rho), rtol=1e-13)
    np.testing.assert_allclose(m["mean_in_system"], rho / (1 - rho), rtol=1e-13)
    np.testing.assert_allclose(m["mean_time_in_system"], 1 / (mu - lam), rtol=1e-13)


def test_erlang_c_edge_cases():
    assert q.erlang_c(0.0, 3) == 0.0
    assert q.erlang_c(3.0, 3) == 1.0
    assert q.erlang_c(5.0, 3) == 1.0
    assert q.erlang_c(0.0, 0) == 1.0
    assert q.erlang_c(2.0, 0) == 1.0
    assert q.erlang_c(2.0, 3) == pytest.approx(4 / 9, rel=1e-14)  # c B / (c - E(1-B)), B = 4/19
    m = q.mmc_metrics(3.0, 1.0, [2, 0])
    assert np.all(np.isinf(m["mean_wait"])) and np.all(m["p_wait"] == 1.0)
    assert np.isinf(m["utilisation"][1])
    z = q.mmc_metrics(0.0, 1.0, 0)
    assert z["utilisation"] == 0.0
    with pytest.raises(ValueError):
        q.mmc_metrics(1.0, 0.0, 2)


def test_call_centre_measures_match_tagged_caller_computation():
    # a caller who finds m others queueing waits an Erlang(m+1, c mu) time
    for lam_h, c, aht, t in [
        (60, 2, 90, 20),
        (120, 12, 300, 20),
        (400, 40, 300, 30),
        (5, 1, 600, 60),
    ]:
        mu = 1 / aht
        lam = lam_h / 3600
        pi = mmc_stationary(lam, mu, c, c + 600)
        m = np.arange(pi.size - c)
        queue = pi[c:]
        sl = pi[:c].sum() + queue @ stats.gamma.cdf(t, a=m + 1, scale=1 / (c * mu))
        asa = queue @ ((m + 1) / (c * mu))
        assert q.service_level(lam_h, c, aht, t) == pytest.approx(sl, rel=1e-9)
        assert q.average_speed_of_answer(lam_h, c, aht) == pytest.approx(asa, rel=1e-9)
        with np.errstate(all="raise"):
            a = q.erlang_a_metrics(lam_h, c, aht, np.inf, t)
        assert a["service_level"] == pytest.approx(sl, rel=1e-9)
        assert a["asa_seconds"] == pytest.approx(asa, rel=1e-9)
        assert a["abandonment_share"] == 0.0
    assert q.service_level(120, 10, 300, 20) == 0.0  # E = c: unstable
    assert q.average_speed_of_answer(120, 10, 300) == math.inf
    assert q.service_level(0, 1, 300, 20) == 1.0
    with pytest.raises(ValueError):
        q.service_level(10, 1, 0, 20)


# ----------------------------------------------------------------------------- Erlang A

ERLANG_A_CASES = [
    # arrivals/h, agents, AHT s, patience s, answer within s
    (120, 10, 300, 180, 20),
    (120, 12, 300, 60, 20),
    (120, 5, 300, 120, 30),  # overloaded: E = 2c
    (30, 3, 600, 300, 60),
    (10, 1, 300, 30, 10),
    (120, 20, 300, 3600, 20),  # long patience, light load: power series
    (120, 14, 300, 36000, 20),
    (1000, 80, 300, 600, 20),
    (200, 18, 300, 3000, 20),
    (2, 1, 600, 1e5, 60),
    (5000, 450, 300, 600, 20),  # large, heavily loaded
]


@pytest.mark.parametrize("case", ERLANG_A_CASES)
def test_erlang_a_matches_birth_death_chain(case):
    lam_h, n, aht, patience, t = case
    ref = erlang_a_reference(*case, n_max=n + 600)
    with np.errstate(all="raise"):
        got = q.erlang_a_metrics(*case)
    for key in ("p_wait", "service_level", "abandonment_share"):
        assert got[key] == pytest.approx(ref[key], rel=1e-9), key
    assert got["asa_seconds"] == pytest.approx(ref["asa_seconds"], rel=1e-8)
    assert got["mean_wait_seconds"] == pytest.approx(ref["abandonment_share"] * patience, rel=1e-9)
    assert q.abandonment_share(lam_h, n, aht, patience) == got["abandonment_share"]


def test_erlang_a_vectorised_equals_elementwise():
    cases = np.array(ERLANG_A_CASES, dtype=float)
    got = q.erlang_a_metrics(*cases.T)
    for i, case in enumerate(ERLANG_A_CASES):
        one = q.erlang_a_metrics(*case)
        for key, v in one.items():
            assert got[key][i] == pytest.approx(v, rel=1e-13)


def test_erlang_a_limits():
    # very patient callers: Erlang C
    a = q.erlang_a_metrics(100, 10, 300, 1e9, 20)
    assert a["p_wait"] == pytest.approx(q.erlang_c(100 * 300 / 3600, 10), rel=1e-5)
    assert a["service_level"] == pytest.approx(q.service_level(100, 10, 300, 20), rel=1e-5)
    assert a["asa_seconds"] == pytest.approx(q.average_speed_of_answer(100, 10, 300), rel=1e-5)
    # no patience at all: Erlang B, nobody waits
    b = q.erlang_a_metrics(100, 10, 300, 0.0, 20)
    blocking = q.erlang_b(100 * 300 / 3600, 10)
    assert b["abandonment_share"] == pytest.approx(blocking, rel=1e-14)
    assert b["service_level"] == pytest.approx(1 - blocking, rel=1e-14)
    assert b["asa_seconds"] == 0.0
    # stable under overload, where Erlang C has no steady state
    c = q.erlang_a_metrics(600, 10, 300, 120, 20)
    assert 0 < c["service_level"] < 0.5 and 0.5 < c["abandonment_share"] < 1
    assert math.isfinite(c["asa_seconds"])
    # no handlers: nobody answered
    d = q.erlang_a_metrics(60, 0, 300, 120, 20)
    assert d["abandonment_share"] == 1.0 and d["service_level"] == 0.0
    # monotone: more handlers, better service
    n = np.arange(1, 40)
    m = q.erlang_a_metrics(300, n, 300, 90, 20)
    assert np.all(np.diff(m["service_level"]) > 0)
    assert np.all(np.diff(m["abandonment_share"]) < 0)
    with pytest.raises(ValueError):
        q.erlang_a_metrics(60, 2, 300, -1.0, 20)


# ----------------------------------------------------------------------------- loss systems and sizing


def test_loss_system():
    r = q.loss_system(arrivals_per_day=2.0, mean_los_days=30.0, servers=70)
    assert r.offered_load == 60.0
    assert r.blocked_share == pytest.approx(exact_erlang_b("60", 70), rel=1e-12)
    assert r.occupancy == pytest.approx(r.carried_load / 70, rel=1e-15)
    # admitted arrivals x length of stay = occupied beds (Little's law)
    admitted = 2.0 - r.blocked_per_day
    assert admitted * 30.0 == pytest.approx(r.carried_load, rel=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.occupancy = 0.5  # type: ignore[misc]
    beds = np.array([0, 10, 50, 70, 100])
    v = q.loss_system(2.0, 30.0, beds, peakedness=2.0)
    assert v.occupancy[0] == 0.0 and v.blocked_share[0] == 1.0
    assert np.all(np.diff(v.blocked_share) < 0)
    assert np.all(v.blocked_share[1:] > q.loss_system(2.0, 30.0, beds).blocked_share[1:])


def test_servers_for_blocking_is_the_smallest_meeting_the_target():
    loads = np.array([0.0, 0.01, 0.153, 1.0, 4.46, 37.9, 84.1, 250.0, 1500.0])
    for z in (1.0, 1.7):
        for target in (0.001, 0.01, 0.05, 0.3):
            c = q.servers_for_blocking(loads, target, z)
            for e, n in zip(loads, c, strict=True):
                if e == 0:
                    assert n == 0
                    continue
                assert n == int(n)
                assert q.erlang_b_peaked(e, n, z) <= target
                assert n == 0 or q.erlang_b_peaked(e, n - 1, z) > target
    assert q.servers_for_blocking(4.46, 0.0101) == 10
    assert q.servers_for_blocking(5.0, 1.0) == 0
    with pytest.raises(ValueError):
        q.servers_for_blocking(5.0, 0.0)


def test_servers_for_service_level_is_the_smallest_meeting_the_target():
    calls = np.array([0.0, 5.0, 60.0, 240.0, 1200.0])
    for patience in (None, 90.0):
        c = q.servers_for_service_level(calls, 300.0, 20.0, 0.9, patience)
        for lam, n in zip(calls, c, strict=True):
            if lam == 0:
                assert n == 0
                continue

            def sl(k, lam=lam, patience=patience):
                if patience is None:
                    return q.service_level(lam, k, 300.0, 20.0)
                return q.erlang_a_metrics(lam, k, 300.0, patience, 20.0)["service_level"]

            assert sl(n) >= 0.9 > sl(n - 1)
    with pytest.raises(ValueError):
        q.servers_for_service_level(10, 300, 20, 1.0)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(
    load=st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False),
    servers=st.integers(min_value=1, max_value=300),
)
def test_erlang_b_properties(load, servers):
    b = q.erlang_b(load, servers)
    assert 0.0 <= b <= 1.0
    assert q.erlang_b(load, servers + 1) <= b
    assert q.erlang_b(load * 1.01, servers) >= b
    pooled = q.erlang_b(2 * load, 2 * servers)
    assert pooled <= b
    if b > 1e-290:
        assert q.erlang_b(load, servers + 1) < b
        assert q.erlang_b(load * 1.01, servers) > b
        assert pooled < b
