"""The frontier table hides small OAP counts and every figure that would give them back."""

from __future__ import annotations

import pandas as pd

from pathways.optimise.run import FRONTIER_HIDDEN, frontier_figure, marginal_cost, suppress_frontier


def frontier_rows() -> pd.DataFrame:
    df = pd.DataFrame({
        "budget_gbp_per_year": [56e6, 58e6, 60e6, 62e6],
        "status": ["OPTIMAL"] * 4,
        "objective": [30000.0, 25000.0, 22000.0, 21900.0],
        "oap_bed_days_per_year": [900.0, 40.0, 3.2, 0.0],
        "admissions_per_year": [3100.0, 2600.0, 2200.0, 2150.0],
        "total_cost_gbp_per_year": [55.9e6, 57.8e6, 59.9e6, 61.7e6],
    })
    df["marginal_gbp_per_oap_bed_day_avoided"] = marginal_cost(df)
    return df


def test_a_small_oap_count_is_hidden_with_what_reveals_it():
    out = suppress_frontier(frontier_rows())
    row = out.iloc[2]
    for col in ("oap_bed_days_per_year", "total_cost_gbp_per_year",
                "marginal_gbp_per_oap_bed_day_avoided"):
        assert row[col] == FRONTIER_HIDDEN, col
    # the objective adds the travel burden, which the frontier does not publish
    assert row["objective"] == 22000.0
    # the next row's marginal cost is a difference with the hidden row
    assert out.iloc[3]["marginal_gbp_per_oap_bed_day_avoided"] == FRONTIER_HIDDEN
    # a zero discloses nothing and is shown; so are the other rows
    assert out.iloc[3]["oap_bed_days_per_year"] == 0.0
    assert out.iloc[1]["oap_bed_days_per_year"] == 40.0
    assert out.iloc[1]["total_cost_gbp_per_year"] == 57.8e6
    assert out.iloc[2]["admissions_per_year"] == 2200.0


def test_no_hidden_value_reaches_the_chart():
    fig = frontier_figure(suppress_frontier(frontier_rows()))
    oap = list(fig.data[0].y)
    assert 3.2 not in oap and oap[0] == 900.0
