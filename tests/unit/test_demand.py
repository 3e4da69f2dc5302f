"""Demand per area: age weighting, deprivation gradient, England totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pathways import demand
from pathways.geography import load_lsoas
from pathways.scenario import DemandParams, QueueParams


def test_england_constants_match_bundled_table():
    lsoa = load_lsoas(columns=["pop_total", "pop_0_15", "pop_16_59", "pop_60_plus"])
    assert int(lsoa["pop_total"].sum()) == demand.ENGLAND_POP
    assert int(lsoa["pop_0_15"].sum()) == demand.ENGLAND_POP_0_15
    assert int(lsoa["pop_16_59"].sum()) == demand.ENGLAND_POP_16_59
    assert int(lsoa["pop_60_plus"].sum()) == demand.ENGLAND_POP_60_PLUS


def test_base_rate_is_per_100k_at_england_mix():
    p = DemandParams()
    areas = pd.DataFrame(
        {
            "pop_total": [demand.ENGLAND_POP],
            "pop_0_15": [demand.ENGLAND_POP_0_15],
            "pop_16_59": [demand.ENGLAND_POP_16_59],
            "pop_60_plus": [demand.ENGLAND_POP_60_PLUS],
            "imd_decile": [5.5],
        }
    )
    eps = demand.episodes_per_year(areas, p)
    # decile 5.5 is the geometric middle of the gradient; normalisation is over deciles
    assert eps[0] == pytest.approx(
        p.episodes_per_100k_per_year * demand.ENGLAND_POP / 1e5, rel=0.15
    )
    assert demand.weighted_population(areas, p)[0] == pytest.approx(demand.ENGLAND_POP)


def test_deprivation_gradient_ratio_and_mean():
    m = demand.deprivation_multiplier(np.arange(1, 11), 3.5)
    assert m[0] / m[-1] == pytest.approx(3.5)
    assert m.mean() == pytest.approx(1.0)
    assert (np.diff(m) < 0).all()
    assert demand.deprivation_multiplier(np.arange(1, 11), 1.0) == pytest.approx(np.ones(10))


def test_growth_scales_everything_linearly():
    areas = pd.DataFrame(
        {
            "pop_total": [1000, 2000],
            "pop_0_15": [200, 400],
            "pop_16_59": [600, 1200],
            "pop_60_plus": [200, 400],
            "imd_decile": [1, 10],
        }
    )
    a = demand.episodes_per_year(areas, DemandParams())
    b = demand.episodes_per_year(areas, DemandParams(growth_factor=1.3))
    np.testing.assert_allclose(b, 1.3 * a)
    assert demand.calls_per_hour(1e5, DemandParams()).sum() * 365 / 7 == pytest.approx(4286.0)
    assert demand.s136_per_year(1e5, DemandParams(), QueueParams()) == pytest.approx(52.0)


def test_missing_age_bands_fall_back_to_total():
    areas = pd.DataFrame(
        {
            "pop_total": [1000.0],
            "pop_0_15": [np.nan],
            "pop_16_59": [np.nan],
            "pop_60_plus": [np.nan],
            "imd_decile": [3],
        }
    )
    assert demand.weighted_population(areas, DemandParams())[0] == 1000.0


def test_week_profile_combines_day_and_hour():
    p = DemandParams()
    w = demand.week_profile(p)
    assert w.shape == (168,)
    assert w.sum() == pytest.approx(1.0)
    # Monday 00:00 = Monday share x share of midnight hour
    assert w[0] == pytest.approx(p.weekday_profile[0] * p.hourly_profile[0])
    assert demand.hour_of_day(np.array([0, 23, 24, 167])).tolist() == [0, 23, 0, 23]
    # a flat week gives the same hourly rate every day
    flat = DemandParams(weekday_profile=(1 / 7,) * 7)
    rate = demand.per_hour_rate(365.0, flat)
    assert rate.reshape(7, 24)[0] == pytest.approx(rate.reshape(7, 24)[6])
    assert rate.sum() * 365 / 7 == pytest.approx(365.0)
