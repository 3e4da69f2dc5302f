"""The app's figure functions: pure, typed, and calm on empty input."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import pytest
from shapely.geometry import box, mapping

from dashapp import figures
from dashapp.state import MapGeometry


def _geometry(n: int = 3) -> MapGeometry:
    polys = [box(-0.5 + 0.1 * i, 50.8, -0.45 + 0.1 * i, 50.9) for i in range(n)]
    ids = tuple(f"A{i}" for i in range(n))
    gj = {"type": "FeatureCollection",
          "features": [{"type": "Feature", "id": i, "properties": {}, "geometry": mapping(p)}
                       for i, p in zip(ids, polys, strict=True)]}  # fmt: skip
    return MapGeometry("polygons", ids, gj, tuple(p.centroid.x for p in polys),
                       tuple(p.centroid.y for p in polys), (-0.5, 50.8, -0.45 + 0.1 * (n - 1), 50.9))  # fmt: skip


def _sites() -> pd.DataFrame:
    return pd.DataFrame([
        {"site_id": "S1", "name": "Ward", "status": "existing", "services": ("inpatient", "mobile_team"),
         "lon": -0.4, "lat": 50.85, "inpatient": 40, "crisis_house": 0, "mobile_team": 2, "place_of_safety": 0,
         "inpatient_now": 30, "crisis_house_now": 0, "mobile_team_now": 2, "place_of_safety_now": 0},
        {"site_id": "C1", "name": "Candidate", "status": "candidate", "services": ("crisis_house",),
         "lon": -0.3, "lat": 50.86, "inpatient": 0, "crisis_house": 0, "mobile_team": 0, "place_of_safety": 0,
         "inpatient_now": 0, "crisis_house_now": 0, "mobile_team_now": 0, "place_of_safety_now": 0},
    ])  # fmt: skip


def test_area_map_draws_polygons_and_sites_on_a_blank_style():
    geo = _geometry()
    values = pd.Series([1.0, 2.0, 3.0], index=list(geo.ids))
    fig = figures.area_map(geo, values, ["a", "b", "c"], colorbar_title="people", sites=_sites())
    assert isinstance(fig, go.Figure)
    kinds = [type(t).__name__ for t in fig.data]
    assert kinds[0] == "Choroplethmap"
    assert list(fig.data[0].locations) == list(geo.ids)
    assert list(fig.data[0].z) == [1.0, 2.0, 3.0]
    names = [t.name for t in fig.data[1:]]
    assert names == ["Inpatient beds", "Mobile crisis teams", "Site with nothing open"]
    assert fig.layout.map.style == "white-bg"
    assert not fig.layout.map.layers  # no tiles: works offline
    json.dumps(fig.to_plotly_json(), default=str)  # serialisable


def test_area_map_uses_tiles_only_when_given():
    geo = _geometry()
    fig = figures.area_map(geo, tile_url="http://tiles.example/{z}/{x}/{y}.png")
    assert fig.layout.map.layers[0].source == ("http://tiles.example/{z}/{x}/{y}.png",)


def test_area_map_aligns_values_by_area_code():
    geo = _geometry()
    values = pd.Series({"A2": 30.0, "A0": 10.0})  # unordered, one missing
    fig = figures.area_map(geo, values)
    z = list(fig.data[0].z)
    assert z[0] == 10.0 and z[2] == 30.0 and pd.isna(z[1])


def test_area_map_points_when_areas_are_points():
    geo = MapGeometry(
        "points", ("P1", "P2"), None, (-0.1, 0.0), (51.0, 51.1), (-0.1, 51.0, 0.0, 51.1)
    )
    fig = figures.area_map(geo, pd.Series({"P1": 1.0, "P2": 2.0}))
    assert type(fig.data[0]).__name__ == "Scattermap"
    assert list(fig.data[0].marker.color) == [1.0, 2.0]


@pytest.mark.parametrize("geo", [None, MapGeometry("points", (), None, (), (), (0, 50, 1, 51))])
def test_area_map_empty_says_so(geo):
    fig = figures.area_map(geo)
    assert not fig.data
    assert "No areas" in fig.layout.annotations[0].text


def test_site_markers_nest_inpatient_around_mobile_and_scale_with_capacity():
    traces = figures.site_traces(_sites(), with_change=True)
    by_name = {t.name: t for t in traces}
    inpatient = by_name["Inpatient beds"].marker.size
    mobile = by_name["Mobile crisis teams"].marker.size
    assert min(inpatient) > max(mobile)
    assert "today 30" in by_name["Inpatient beds"].hovertext[0]
    assert figures.site_traces(pd.DataFrame()) == []


def test_fit_view_zooms_in_on_small_areas():
    c1, z1 = figures.fit_view((-0.5, 50.8, 0.5, 51.2))
    c2, z2 = figures.fit_view((-0.1, 50.9, 0.0, 51.0))
    assert z2 > z1
    assert c1["lon"] == pytest.approx(0.0)
    assert 50.8 < c1["lat"] < 51.2


def test_scorecard_chart_colours_by_verdict():
    fig = figures.scorecard_chart([
        {"label": "Admissions", "pct": -10.0, "verdict": "better"},
        {"label": "Cost", "pct": 5.0, "verdict": "worse"},
    ])  # fmt: skip
    bar = fig.data[0]
    colours = dict(zip(bar.y, bar.marker.color, strict=True))
    assert colours["Admissions: -10.0%"] == figures.NHS_GREEN
    assert colours["Cost: +5.0%"] == figures.NHS_RED
    assert figures.scorecard_chart([]).layout.annotations


def test_scorecard_chart_caps_long_bars_but_labels_the_true_change():
    fig = figures.scorecard_chart([
        {"label": "Crisis-house stays", "pct": 786.0, "verdict": "better"},
        {"label": "Admissions", "pct": -26.0, "verdict": "better"},
    ], cap_pct=100)  # fmt: skip
    bar = fig.data[0]
    shown = dict(zip(bar.y, bar.x, strict=True))
    assert shown["Crisis-house stays: +786.0%"] == 100
    assert shown["Admissions: -26.0%"] == -26.0
    assert list(bar.marker.pattern.shape) == ["", "/"]  # rows run bottom-up


def test_equity_chart_per_100k_divides_by_quintile_population():
    bq = {"admissions_per_year": {str(q): 10.0 * q for q in range(1, 6)},
          "population": {str(q): 1000.0 for q in range(1, 6)}}  # fmt: skip
    fig = figures.equity_chart({"Today": bq}, "admissions_per_year", per_100k=True)
    assert list(fig.data[0].y) == pytest.approx([1000.0 * q for q in range(1, 6)])
    share = {"mobile_response_within_standard_share": {str(q): 0.5 for q in range(1, 6)}}
    fig = figures.equity_chart(
        {"Today": share}, "mobile_response_within_standard_share", per_100k=False
    )
    assert list(fig.data[0].y) == pytest.approx([50.0] * 5)
    assert figures.equity_chart({}, "admissions_per_year", True).layout.annotations


def test_frontier_chart_handles_missing_and_infeasible_rows():
    assert figures.frontier_chart(None).layout.annotations
    df = pd.DataFrame({"budget_gbp_per_year": [1e6, 2e6, 3e6], "oap_bed_days_per_year": [None, 50.0, 40.0],
                       "admissions_per_year": [None, 10.0, 9.0]})  # fmt: skip
    fig = figures.frontier_chart(df, current_budget=2e6)
    assert list(fig.data[0].x) == [2.0, 3.0]
    assert fig.data[1].yaxis == "y2"
    assert list(fig.data[0].marker.symbol) == ["circle", "circle"]  # no status: taken as proven
    df["status"] = ["INFEASIBLE", "OPTIMAL", "FEASIBLE"]
    df["gap"] = [None, 0.001, 0.2]
    fig = figures.frontier_chart(df)
    assert list(fig.data[0].marker.symbol) == ["circle", "circle-open"]
    assert "gap 20.0%" in fig.data[0].customdata[1]
    infeasible = pd.DataFrame({"budget_gbp_per_year": [1e6], "oap_bed_days_per_year": [None]})
    assert "No budget" in figures.frontier_chart(infeasible).layout.annotations[0].text


def test_compare_chart_scales_each_measure_to_its_largest_value():
    cards = {"A": {"admissions_per_year": 100.0, "hub_service_level": 0.5},
             "B": {"admissions_per_year": 80.0, "hub_service_level": 0.8}}  # fmt: skip
    fig = figures.compare_chart(cards, ["admissions_per_year", "hub_service_level"])
    by_name = {t.name: t for t in fig.data}
    assert [t.name for t in fig.data] == ["B", "A"]  # drawn last-first: A on top of each group
    # rows run bottom-up: hub service level first
    assert list(by_name["A"].x) == pytest.approx([62.5, 100.0])
    assert list(by_name["B"].x) == pytest.approx([100.0, 80.0])
    assert list(by_name["B"].text) == ["80.0%", "80.0"]
    assert figures.compare_chart({}, []).layout.annotations


def test_capacity_chart_and_empty_figure():
    fig = figures.capacity_chart({"Today": {"inpatient": 300, "mobile_team": 8}})
    assert list(fig.data[0].y)[0] == 300
    assert figures.capacity_chart({}).layout.annotations
    assert figures.empty_figure("hello").layout.annotations[0].text == "hello"


def test_each_plan_role_has_one_colour_everywhere():
    assert figures.plan_colours(["current", "optimised", "optimised"]) == [
        figures.PLAN_ROLE_COLOURS["current"],
        figures.PLAN_ROLE_COLOURS["optimised"],
        figures.OPTIMISED_SHADES[1],
    ]
    cards = {"a plan": {"admissions_per_year": 80.0}, "b today": {"admissions_per_year": 100.0}}
    fig = figures.compare_chart(
        cards, ["admissions_per_year"], {"a plan": "optimised", "b today": "current"}
    )
    colours = {t.name: t.marker.color for t in fig.data}
    equity = figures.equity_chart({"Today": {"admissions_per_year": {"1": 1.0}}, "Optimised": {"admissions_per_year": {"1": 1.0}}},
                                  "admissions_per_year", per_100k=False)  # fmt: skip
    assert colours["b today"] == equity.data[0].marker.color == figures.PLAN_ROLE_COLOURS["current"]
    assert (
        colours["a plan"] == equity.data[1].marker.color == figures.PLAN_ROLE_COLOURS["optimised"]
    )


def test_areas_without_a_value_get_their_own_colour_and_legend_entry():
    geo = _geometry()
    values = pd.Series([1.0, float("nan"), 3.0], index=list(geo.ids))
    fig = figures.area_map(geo, values, ["a", "b", "c"], missing_label="Beyond reach")
    beyond = [t for t in fig.data if t.name == "Beyond reach"]
    assert len(beyond) == 1 and list(beyond[0].locations) == ["A1"] and beyond[0].showlegend
    assert beyond[0].colorscale[0][1] == figures.BEYOND_REACH_COLOUR
    assert not [
        t
        for t in figures.area_map(geo, values.fillna(2.0), missing_label="x").data
        if t.name == "x"
    ]


def test_map_colour_bar_and_legend_sit_under_the_map_and_the_view_refits():
    fig = figures.area_map(_geometry(), sites=_sites())
    bar = fig.data[0].colorbar
    # the bar hangs from the map's lower edge; the legend sits on the figure's foot, in the
    # margin kept under the map
    assert bar.orientation == "h" and (bar.yref, bar.y, bar.yanchor) == ("paper", 0, "top")
    assert (fig.layout.legend.yref, fig.layout.legend.y, fig.layout.legend.yanchor) == (
        "container",
        0,
        "bottom",
    )
    assert fig.layout.margin.b >= 150 and not fig.layout.margin.autoexpand
    assert list(fig.layout.meta["fit_bounds"]) == list(_geometry().bounds)


def test_marker_size_key_matches_the_markers():
    key = figures.marker_size_key(_sites())
    assert [k["service"] for k in key] == ["inpatient", "mobile_team"]
    beds = key[0]
    assert beds["sizes"][-1] == (40.0, figures.MARKER_SIZES["inpatient"][1])
    marker = next(t for t in figures.site_traces(_sites()) if t.name == "Inpatient beds")
    assert max(marker.marker.size) == beds["sizes"][-1][1]
    assert figures.marker_size_key(None) == []


def test_change_chart_labels_sit_above_the_bars_so_they_never_clip():
    fig = figures.scorecard_chart([{"label": "Crisis-line calls answered within target", "pct": 2.0,
                                    "verdict": "better"}])  # fmt: skip
    assert fig.layout.yaxis.showticklabels is False
    assert fig.layout.annotations[0].text == "Crisis-line calls answered within target: +2.0%"
    assert fig.layout.annotations[0].xanchor == "left"


def test_frontier_chart_marks_each_outcome():
    df = pd.DataFrame({"budget_gbp_per_year": [1e6, 2e6, 3e6, 4e6], "status": ["INFEASIBLE", "HEURISTIC", "TIME_LIMIT", "OPTIMAL"],
                       "gap": [None, None, 0.05, 0.0], "oap_bed_days_per_year": [None, 60.0, 50.0, 40.0],
                       "admissions_per_year": [None, 11.0, 10.0, 9.0], "worse_than_today": [False, True, False, False],
                       "what": ["no plan meets the standards at this budget", "", "", ""]})  # fmt: skip
    fig = figures.frontier_chart(df)
    assert list(fig.data[0].marker.symbol) == ["square-open", "circle-open", "circle"]
    assert list(fig.data[0].marker.line.color) == [
        figures.NHS_RED,
        figures.NHS_BLUE,
        figures.NHS_BLUE,
    ]
    assert "worse than today" in fig.data[0].customdata[0]
    none = next(t for t in fig.data if t.name == "No plan at this budget")
    assert list(none.x) == [1.0] and "no plan meets" in none.customdata[0]


def test_empty_figure_text_wraps_for_a_phone():
    text = (
        figures.empty_figure("Run the optimiser to compare a plan with today.")
        .layout.annotations[0]
        .text
    )
    assert "<br>" in text and max(len(part) for part in text.split("<br>")) <= 34
