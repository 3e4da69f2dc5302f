"""Routing through the tiers: flow conservation and the two presets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathways.pathway import admission_share, coefficients, route
from pathways.scenario import (
    CRISIS_NOW_ROUTING,
    NHS_DEFAULT_ROUTING,
    ROUTING_TARGETS,
    PathwayParams,
)


@st.composite
def routings(draw):
    out = {}
    for node, targets in ROUTING_TARGETS.items():
        raw = np.array(
            draw(st.lists(st.floats(0.0, 1.0), min_size=len(targets), max_size=len(targets)))
        )
        if raw.sum() <= 1e-9:
            raw = np.ones(len(targets))
        shares = raw / raw.sum()
        row = {t: float(x) for t, x in zip(targets, shares, strict=True)}
        # make the row sum to exactly 1 in floating point
        last = targets[-1]
        row[last] = max(0.0, 1.0 - sum(v for k, v in row.items() if k != last))
        out[node] = row
    return out


@settings(max_examples=200, deadline=None)
@given(
    routing=routings(),
    episodes=st.lists(st.floats(0.0, 1e5), min_size=1, max_size=20),
    served=st.floats(0.0, 1.0),
    full_adm=st.floats(0.0, 1.0),
    oap=st.floats(0.0, 1.0),
)
def test_every_episode_ends_somewhere(routing, episodes, served, full_adm, oap):
    params = PathwayParams(
        routing=routing, crisis_house_full_to_inpatient_share=full_adm, preset="custom"
    )
    e = np.array(episodes)
    f = route(e, params, served, oap)
    np.testing.assert_allclose(f.terminal_total(), e, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(
        f.crisis_house_served + f.crisis_house_turned_away,
        f.crisis_house_referrals,
        rtol=1e-9,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        f.admitted_local + f.admitted_out_of_area, f.admissions, rtol=1e-9, atol=1e-9
    )
    for arr in (f.resolved, f.home_treatment, f.admitted_local, f.admitted_out_of_area):
        assert (arr >= -1e-9).all()
    # the linear coefficients used by the optimiser agree with the routed flows
    c = coefficients(params)
    np.testing.assert_allclose(
        f.admissions.sum(), e.sum() * admission_share(params, served), rtol=1e-9, atol=1e-6
    )
    # and, area by area, each linear coefficient times the episodes gives the routed flow
    for flow, coef in (
        (f.mobile_team, c.to_mobile),
        (f.place_of_safety, c.to_place_of_safety),
        (f.crisis_house_referrals, c.to_crisis_house),
    ):
        np.testing.assert_allclose(flow, e * coef, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(
        f.admissions,
        e * c.direct_admission
        + f.crisis_house_referrals
        * (served * c.ch_to_inpatient + (1 - served) * c.full_to_inpatient),
        rtol=1e-9,
        atol=1e-6,
    )


def test_more_crisis_house_places_served_lowers_admissions_when_house_diverts():
    p = PathwayParams()
    shares = [admission_share(p, s) for s in np.linspace(0, 1, 11)]
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))


def test_crisis_now_preset_matches_calculator_ratios():
    p = PathwayParams(routing=CRISIS_NOW_ROUTING, preset="crisis_now")
    # Crisis Now: 14% ED -> 100% inpatient; facility (54% + 32% x 30%) -> 35% short-term bed -> 25% inpatient
    expected = 0.14 + (0.54 + 0.32 * 0.30) * 0.35 * 0.25
    assert admission_share(p, 1.0) == pytest.approx(expected)


def test_default_routing_rows_sum_to_one():
    for node, row in NHS_DEFAULT_ROUTING.items():
        assert sum(row.values()) == pytest.approx(1.0), node
