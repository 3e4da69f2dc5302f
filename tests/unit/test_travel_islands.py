"""Island crossings in the travel model: land components, the fitted crossing minutes, and
the shipped model's pricing of trips to and on the Isle of Wight.

The synthetic checks need no raw-data folder: geography and times are made up here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely

from pathways import travel as tr
from pathways.travel import TravelModel

NEWPORT_IOW = (450_000.0, 89_000.0)  # St Mary's Hospital area, Isle of Wight
RYDE = (459_000.0, 92_000.0)  # on the island, 10 km from Newport
SOUTHAMPTON = (442_000.0, 112_000.0)  # mainland, across the Solent


@pytest.fixture(scope="module")
def model() -> TravelModel:
    return TravelModel.load()


# --------------------------------------------------------------------------- pieces


def test_island_term_pays_each_crossed_end():
    cost = np.array([0.0, 40.0, 3.0])  # mainland, island 1, island 2
    got = tr.island_term(np.array([0, 1, 2]), np.array([0, 1, 2]), cost)
    expected = np.array(
        [
            [0.0, 40.0, 3.0],  # mainland -> mainland, island 1, island 2
            [40.0, 0.0, 43.0],  # island 1 -> ...: on its own island nothing; island 2: both
            [3.0, 43.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(got, expected)


def test_land_components_split_islands_and_join_touching_parts(ft):
    def square(x0, y0, size=1_000.0):
        return shapely.box(x0, y0, x0 + size, y0 + size)

    geoms = np.array(
        [
            square(0, 0),
            square(1_000, 0),  # shares an edge with the first: mainland
            square(2_000.5, 0),  # 0.5 m gap: touching, still mainland
            square(10_000, 0),  # an island of two areas
            square(11_000, 0),
            shapely.MultiPolygon(
                [square(20_000, 0), square(3_000, 0)]
            ),  # point on its mainland part
            square(30_000, 0),  # an island of one area
        ]
    )
    points = shapely.point_on_surface(geoms)
    points[5] = shapely.Point(3_500, 500)
    comp = ft.land_components(geoms, points)
    # mainland (largest, 4 areas) is 0; the two-area island 1; the one-area island 2
    np.testing.assert_array_equal(comp, [0, 0, 0, 1, 1, 0, 2])


def test_island_names_number_repeated_districts(ft):
    names = np.array(["Alpha 001A", "Isle 001A", "Isle 002A", "Isle 003A", "Beta 001A"])
    island = np.array([0, 1, 1, 2, 3])
    assert ft.island_names(names, island) == ("Isle", "Isle 2", "Beta")


# --------------------------------------------------------------------------- fitting


def two_component_matrix(crossing_min: float = 40.0):
    """A 10 x 10 mainland of origins 4 km apart, a 5 x 5 island 24 km east of it, far origins.

    Minutes follow ``6 (1 + d)^0.8`` (a curve the model's basis holds exactly) plus
    ``crossing_min`` for every pair with one end on the island; every place has
    average roads (true factors 0). Destinations: six on the mainland, one on the island.
    """
    rng = np.random.default_rng(11)
    g = np.arange(10) * 4_000.0 + 50_000.0
    mainland = np.array([(x, y) for y in g for x in g])
    gi = np.arange(5) * 4_000.0 + 110_000.0
    island = np.array([(x, y) for y in gi[:5] - 50_000.0 for x in gi])
    far = rng.uniform(150_000.0, 690_000.0, size=(60, 2))
    row_xy = np.vstack([mainland, island, far])
    row_island = np.r_[np.zeros(100), np.ones(25), np.zeros(60)].astype(np.intp)
    site_row = np.array([0, 9, 44, 55, 90, 99, 112])  # the last is on the island
    site_xy = row_xy[site_row]
    d = tr.straight_line_km(row_xy, site_xy)
    minutes = 6.0 * (1.0 + d) ** 0.8
    minutes += crossing_min * (row_island[:, None] != row_island[site_row][None, :])
    return row_xy, site_xy, site_row, minutes, row_island


def test_fit_recovers_the_crossing_minutes_and_flat_island_roads(ft, monkeypatch):
    # unshrunk: this tiny island (25 origins) would otherwise be pulled well towards 0
    monkeypatch.setattr(ft, "ISLAND_RIDGE", 0.0)
    row_xy, site_xy, site_row, minutes, row_island = two_component_matrix(40.0)
    fit = ft.fit_model(
        row_xy, site_xy, site_row, minutes, use_grid=False, row_island=row_island, n_islands=1
    )
    assert fit.island_minutes[0] == 0.0
    assert fit.island_minutes[1] == pytest.approx(40.0, rel=0.1)
    # the crossing is not in the island's factors: they average about 0, like the mainland's
    assert abs(fit.row_factor[row_island == 1].mean()) < 0.05
    assert abs(fit.row_factor[row_island == 0].mean()) < 0.05


def test_the_crossing_ridge_shrinks_a_small_island_towards_0(ft):
    row_xy, site_xy, site_row, minutes, row_island = two_component_matrix(40.0)
    fit = ft.fit_model(
        row_xy, site_xy, site_row, minutes, use_grid=False, row_island=row_island, n_islands=1
    )
    assert 0.0 < fit.island_minutes[1] < 36.0


def test_without_the_island_term_the_crossing_goes_into_the_island_factors(ft):
    row_xy, site_xy, site_row, minutes, row_island = two_component_matrix(40.0)
    fit = ft.fit_model(row_xy, site_xy, site_row, minutes, use_grid=False)
    # the old failure, for contrast: island factors far above the mainland's
    assert fit.row_factor[row_island == 1].mean() - fit.row_factor[row_island == 0].mean() > 0.05


def test_a_bridged_island_gets_no_crossing(ft):
    row_xy, site_xy, site_row, minutes, row_island = two_component_matrix(0.0)
    fit = ft.fit_model(
        row_xy, site_xy, site_row, minutes, use_grid=False, row_island=row_island, n_islands=1
    )
    assert fit.island_minutes[1] < 0.5


def test_crossing_minutes_round_trip_through_the_model_files(ft, tmp_path, model):
    small = dataclasses.replace(model, island_minutes=model.island_minutes + 0.0)
    ft.write_model(small, tmp_path, 10, 2)
    again = TravelModel.load(tmp_path)
    np.testing.assert_array_equal(again.island, model.island)
    np.testing.assert_array_equal(again.island_minutes, model.island_minutes)
    assert again.island_names == model.island_names


# --------------------------------------------------------------------------- the shipped model


def test_shipped_model_knows_the_isle_of_wight(model):
    wight = int(model.point_islands(np.array([NEWPORT_IOW]))[0])
    assert wight > 0 and model.island_names[wight - 1] == "Isle of Wight"
    assert int(model.point_islands(np.array([SOUTHAMPTON]))[0]) == 0
    assert 30.0 < model.island_minutes[wight] < 120.0  # a ferry
    assert np.bincount(model.island)[wight] == 89  # its LSOAs


def test_bridged_islands_get_at_most_a_few_minutes(model):
    for name in ("Isle of Anglesey", "Isle of Anglesey 2"):
        k = model.island_names.index(name) + 1
        assert model.island_minutes[k] < 5.0


def test_island_to_mainland_trip_pays_the_ferry_and_an_island_trip_does_not(model):
    wight = int(model.point_islands(np.array([NEWPORT_IOW]))[0])
    ferry = model.island_minutes[wight]
    roads_only = dataclasses.replace(model, island_minutes=np.zeros_like(model.island_minutes))
    pts = np.array([NEWPORT_IOW, RYDE, SOUTHAMPTON])
    with_ferry = model.minutes(pts, pts)
    without = roads_only.minutes(pts, pts)
    # across the Solent, both ways: road minutes plus the ferry
    assert with_ferry[0, 2] == pytest.approx(without[0, 2] + ferry)
    assert with_ferry[2, 0] == pytest.approx(without[2, 0] + ferry)
    # on the island and on the mainland: no ferry
    assert with_ferry[0, 1] == pytest.approx(without[0, 1])
    assert with_ferry[2, 2] == pytest.approx(without[2, 2])
    # Newport to Ryde (10 km by road) is a short island trip, not a ferry trip
    assert 10.0 < with_ferry[0, 1] < 30.0
    assert with_ferry[0, 2] > 60.0
