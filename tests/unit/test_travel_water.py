"""Water crossings in the leave-destination-out scores: the land mask, the lines that cross
water and the estuary each crossing belongs to.

Synthetic geometry only, no raw-data folder: two 10 km squares with a 2 km gap between them.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

WEST = shapely.box(0.0, 0.0, 10_000.0, 10_000.0)
EAST = shapely.box(12_000.0, 0.0, 22_000.0, 10_000.0)  # the gap is x 10-12 km
GAP_BOX = (9_500.0, 0.0, 12_500.0, 10_000.0)
ELSEWHERE_BOX = (0.0, 20_000.0, 5_000.0, 25_000.0)


@pytest.fixture(scope="module")
def mask(ft):
    return ft.land_mask(np.array([WEST, EAST]), cell_m=1_000.0)


def test_mask_covers_the_polygons_in_whole_cells(mask):
    assert mask.origin == (0.0, 0.0)
    assert mask.cell_m == 1_000.0
    assert mask.water.shape == (10, 22)  # (ny, nx)


def test_gap_between_the_squares_is_water_and_inside_is_land(mask):
    # the cells centred at x 10.5 and 11.5 km are in the gap, on every row
    assert mask.water[:, 10].all() and mask.water[:, 11].all()
    assert mask.water.sum() == 2 * 10
    assert not mask.water[:, :10].any() and not mask.water[:, 12:].any()
    assert not mask.is_water(np.array([5_000.0, 17_000.0]), np.array([5_000.0, 2_500.0])).any()
    assert mask.is_water(np.array([11_000.0]), np.array([5_000.0])).all()


def test_points_outside_the_grid_are_water(mask):
    x = np.array([-5_000.0, 30_000.0, 5_000.0])
    y = np.array([5_000.0, 5_000.0, 50_000.0])
    assert mask.is_water(x, y).all()


def test_line_across_the_gap_crosses_water_and_one_within_a_square_is_dry(ft, mask):
    origins = np.array([[2_000.0, 5_000.0], [1_000.0, 1_000.0]])
    dests = np.array([[20_000.0, 5_000.0], [9_000.0, 9_000.0]])
    water, in_box = ft.water_counts(mask, origins, dests, boxes={"gap": GAP_BOX}, samples=64)
    assert water.shape == (2, 2) and in_box.shape == (1, 2, 2)
    # 2 km of an 18 km line: 8 of 64 midpoints (x = 2 + 18 (i + 0.5) / 64 km in 10-12 km, i = 28-35)
    assert water[0, 0] == 8
    assert water[1, 1] == 0  # diagonal inside the west square
    groups = ft.water_groups(water, in_box, names=("gap",), samples=64)
    assert groups["gap"][0, 0] and groups["any water line"][0, 0]  # 8 / 64 >= 10 %
    assert groups["dry line"][1, 1]
    assert not groups["gap"][1, 1] and not groups["any water line"][1, 1]


def test_rules_count_points(ft):
    # 2 points on water cross; 6 of 64 (9.4 %) is not a water line, 7 (10.9 %) is; 1 is not dry
    water = np.array([[1, 2, 6, 7, 0]], dtype=np.int16)
    in_box = water[None].copy()
    g = ft.water_groups(water, in_box, names=("box",), samples=64)
    assert g["box"].tolist() == [[False, True, True, True, False]]
    assert g["any water line"].tolist() == [[False, False, False, True, False]]
    assert g["dry line"].tolist() == [[False, False, False, False, True]]


def test_crossing_inside_a_box_goes_to_that_estuary(ft, mask):
    origins = np.array([[2_000.0, 5_000.0]])
    dests = np.array([[20_000.0, 5_000.0]])
    boxes = {"elsewhere": ELSEWHERE_BOX, "gap": GAP_BOX}
    water, in_box = ft.water_counts(mask, origins, dests, boxes=boxes, samples=64)
    groups = ft.water_groups(water, in_box, names=tuple(boxes), samples=64)
    assert in_box[:, 0, 0].tolist() == [0, 8]
    assert groups["gap"][0, 0] and not groups["elsewhere"][0, 0]


def test_water_outside_every_box_is_a_crossing_of_no_estuary(ft, mask):
    origins = np.array([[2_000.0, 5_000.0]])
    dests = np.array([[20_000.0, 5_000.0]])
    boxes = {"elsewhere": ELSEWHERE_BOX}
    water, in_box = ft.water_counts(mask, origins, dests, boxes=boxes, samples=64)
    groups = ft.water_groups(water, in_box, names=tuple(boxes), samples=64)
    assert water[0, 0] == 8 and in_box[0, 0, 0] == 0
    assert not groups["elsewhere"][0, 0] and groups["any water line"][0, 0]


def test_chunks_do_not_change_the_counts(ft, mask):
    rng = np.random.default_rng(0)
    origins = rng.uniform([0, 0], [22_000, 10_000], size=(30, 2))
    dests = rng.uniform([0, 0], [22_000, 10_000], size=(7, 2))
    boxes = {"gap": GAP_BOX}
    one = ft.water_counts(mask, origins, dests, boxes=boxes, chunk=1)
    all_at_once = ft.water_counts(mask, origins, dests, boxes=boxes, chunk=7)
    assert np.array_equal(one[0], all_at_once[0]) and np.array_equal(one[1], all_at_once[1])
    # the same points, one by one
    frac = (np.arange(64) + 0.5) / 64
    px = origins[:, None, 0, None] + (dests[None, :, 0, None] - origins[:, None, 0, None]) * frac
    py = origins[:, None, 1, None] + (dests[None, :, 1, None] - origins[:, None, 1, None]) * frac
    assert np.array_equal(one[0], mask.is_water(px, py).sum(axis=-1))


def test_pair_tables_score_pair_masks(ft):
    obs = np.array([[10.0, 50.0, 100.0], [20.0, np.nan, 30.0]])
    pred = obs + np.array([[1.0, -2.0, 3.0], [4.0, 0.0, -5.0]])
    groups = {"first column": np.array([[True, False, False], [True, False, False]])}
    t = ft.ldo_pair_tables(pred, obs, groups)
    s60 = t["first column"]["< 60 min"]
    assert s60["pairs"] == 2 and s60["max_abs_min"] == 4.0 and s60["median_abs_min"] == 2.5
    every = ft.ldo_pair_tables(pred, obs, {"all": np.ones(obs.shape, dtype=bool)})
    assert every["all"] == ft.ldo_tables(pred, obs)["all"]


def test_compact_table_has_a_column_block_per_limit(ft):
    head = ft._compact_head("pairs", ("< 60 min", "< 120 min"))
    assert head.splitlines()[0] == (
        "| pairs | pairs < 60 | median abs | p90 abs | max abs "
        "| pairs < 120 | median abs | p90 abs | max abs |"
    )
    stats = {"pairs": 1234.0, "median_abs_min": 2.5, "p90_abs_min": 6.0, "max_abs_min": 19.25}
    row = ft._compact_row("dry line", {"< 60 min": stats, "< 120 min": stats})
    assert row == "| dry line | 1,234 | 2.50 | 6.00 | 19.2 | 1,234 | 2.50 | 6.00 | 19.2 |"
