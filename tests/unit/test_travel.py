"""Road travel-time model and user travel matrices (uses the bundled model file)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from pathways import travel
from pathways.errors import InputError
from pathways.travel import TravelModel, load_matrix, straight_line_km, travel_matrix

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "travel_pairs.csv"

# a few places (EPSG:27700 metres)
BRIGHTON = (531_000.0, 104_500.0)
LEEDS = (430_000.0, 433_500.0)
LINCOLNSHIRE_FIELD = (512_345.0, 371_234.0)


@pytest.fixture(scope="module")
def model() -> TravelModel:
    return TravelModel.load()


@pytest.fixture(scope="module")
def real_pairs() -> pd.DataFrame:
    return pd.read_csv(FIXTURE, comment="#")


def tiny_model(log_factor: float = 0.0, grid: np.ndarray | None = None) -> TravelModel:
    """Two LSOAs on a 30 km grid (flat unless given): minutes = exp(curve + 2 * log_factor)."""
    return TravelModel(
        codes=np.array(["A", "B"], dtype=object),
        centroids=np.array([[0.0, 0.0], [50_000.0, 0.0]]),
        log_factor=np.array([log_factor, log_factor]),
        knots_km=np.array([10.0]),
        curve_coef=np.array([np.log(6.0), 0.9, 0.1]),
        grid_origin=(0.0, 0.0),
        grid_cell_m=10_000.0,
        grid=np.zeros((3, 3)) if grid is None else grid,
        samples=8,
        corridor_half_km=5.0,
    )


# --------------------------------------------------------------------------- the model


def test_straight_line_km_is_euclidean_in_km():
    d = straight_line_km(np.array([[0.0, 0.0], [3_000.0, 0.0]]), np.array([[0.0, 4_000.0]]))
    assert d.shape == (2, 1)
    np.testing.assert_allclose(d[:, 0], [4.0, 5.0])


def test_travel_matrix_shape_index_and_columns(model):
    codes = model.codes[[100, 2_000, 15_000, 30_000]]
    rows = np.searchsorted(model.codes, codes)
    areas = pd.DataFrame(
        {"centroid_x": model.centroids[rows, 0], "centroid_y": model.centroids[rows, 1]},
        index=pd.Index(codes, name="area_code"),
    )
    sites = pd.DataFrame(
        {"site_id": ["s1", "s2", "s3"], "x": [BRIGHTON[0], LEEDS[0], 400_000.0]},
    ).assign(y=[BRIGHTON[1], LEEDS[1], 300_000.0])
    mat = travel_matrix(areas, sites, model=model)
    assert mat.shape == (4, 3)
    assert list(mat.index) == list(codes)
    assert list(mat.columns) == ["s1", "s2", "s3"]
    assert np.isfinite(mat.to_numpy()).all()


def test_minutes_are_finite_and_never_below_the_floor(model):
    rng = np.random.default_rng(np.random.SeedSequence(11))
    origins = model.centroids[rng.choice(len(model.codes), 300, replace=False)]
    dests = model.centroids[rng.choice(len(model.codes), 40, replace=False)]
    mins = model.minutes(origins, dests)
    assert mins.shape == (300, 40)
    assert np.isfinite(mins).all()
    assert (mins >= model.floor_minutes).all()
    # long trips are long: nothing over 100 km straight line is under an hour
    assert (mins[straight_line_km(origins, dests) > 100] > 60).all()


def test_distance_curve_is_increasing(model):
    d = np.linspace(0, 600, 601)
    assert np.all(np.diff(model.curve_minutes(d)) > 0)


def test_farther_points_on_a_line_take_longer_on_average(model):
    origin = np.array([LEEDS])
    bands = [(2, 20), (30, 50), (60, 80), (90, 110)]
    for angle in np.deg2rad(np.arange(0, 360, 45)):
        means = []
        for lo, hi in bands:
            r = np.linspace(lo, hi, 21) * 1000
            dest = origin + np.column_stack([r * np.cos(angle), r * np.sin(angle)])
            means.append(model.minutes(origin, dest)[0].mean())
        assert np.all(np.diff(means) > 0), (np.rad2deg(angle), means)


def test_zero_distance_gives_a_few_minutes(model):
    row = int(np.searchsorted(model.codes, model.codes[1234]))
    here = model.centroids[[row]]
    mins = model.minutes(here, here)[0, 0]
    # zero distance: the curve's intercept and the LSOA's factor at both ends
    expected = model.curve_minutes(np.array(0.0)) * np.exp(2 * model.log_factor[row])
    assert mins == pytest.approx(max(expected, model.floor_minutes))
    assert model.floor_minutes <= mins <= 15


def test_floor_applies_when_the_model_would_go_below_it():
    fast = tiny_model(log_factor=-3.0)
    at = np.array([[0.0, 0.0]])
    assert fast.minutes(at, at)[0, 0] == travel.FLOOR_MINUTES
    assert tiny_model().minutes(at, at)[0, 0] == pytest.approx(6.0)


def test_corridor_grid_slows_lines_that_cross_it():
    grid = np.zeros((3, 3))
    grid[1, 1] = np.log(2.0)  # the middle cell (10-20 km east, 10-20 km north) is slow
    slow, flat = tiny_model(grid=grid), tiny_model()
    across = (np.array([[5_000.0, 15_000.0]]), np.array([[25_000.0, 15_000.0]]))
    # 4 of the 8 points along the line are in the slow cell; weight 20 / (20 + 5)
    ratio = slow.minutes(*across)[0, 0] / flat.minutes(*across)[0, 0]
    assert ratio == pytest.approx(2.0 ** (0.5 * 0.8))
    # a line that misses the cell, a trip that goes nowhere, and a line off the grid
    for o, d in [
        ([5_000.0, 5_000.0], [25_000.0, 5_000.0]),
        ([15_000.0, 15_000.0], [15_000.0, 15_000.0]),
        ([-60_000.0, 15_000.0], [-20_000.0, 90_000.0]),
    ]:
        o, d = np.array([o]), np.array([d])
        assert slow.minutes(o, d)[0, 0] == pytest.approx(flat.minutes(o, d)[0, 0])
    # a line leaving the grid still counts the cells it crosses on the way
    out = (np.array([[15_000.0, 15_000.0]]), np.array([[-5_000.0, 15_000.0]]))
    assert slow.minutes(*out)[0, 0] > flat.minutes(*out)[0, 0]


def test_a_new_site_anywhere_gets_plausible_times(model):
    new_site = np.array([LINCOLNSHIRE_FIELD])
    origins = model.centroids[:: len(model.codes) // 500]
    mins = model.minutes(origins, new_site)[:, 0]
    d = straight_line_km(origins, new_site)[:, 0]
    assert np.isfinite(mins).all()
    far = d > 30
    per_km = mins[far] / d[far]
    # road speeds between about 25 and 100 mph straight-line equivalent
    assert per_km.min() > 0.4 and per_km.max() < 2.5
    # a point off the grid (in the sea) still works
    assert np.isfinite(model.minutes(origins[:3], np.array([[-50_000.0, 900_000.0]]))).all()


def test_origin_codes_pick_that_lsoas_factor(model):
    # fastest and slowest mainland LSOA (an island LSOA's trip to Brighton adds its crossing)
    mainland = np.flatnonzero(model.island == 0)
    rows = mainland[np.argsort(model.log_factor[mainland])[[0, -1]]]
    xy = np.repeat(model.centroids[rows[:1]], 2, axis=0)
    dest = np.array([BRIGHTON])
    by_code = model.minutes(xy, dest, origin_codes=model.codes[rows])[:, 0]
    # same point; the slow LSOA's own factor makes its trip longer
    assert by_code[1] > by_code[0]
    ratio = by_code[1] / by_code[0]
    assert ratio == pytest.approx(np.exp(np.diff(model.log_factor[rows])[0]), rel=1e-9)
    # unknown codes fall back to the nearest centroid
    fallback = model.minutes(xy, dest, origin_codes=["nope", "nope"])[:, 0]
    np.testing.assert_allclose(fallback, model.minutes(xy, dest)[:, 0])


def test_model_reproduces_real_held_out_pairs(model, real_pairs):
    assert len(real_pairs) >= 50
    pred = np.array(
        [
            model.minutes(
                [[r.origin_x, r.origin_y]], [[r.dest_x, r.dest_y]], origin_codes=[r.lsoa11cd]
            )[0, 0]
            for r in real_pairs.itertuples()
        ]
    )
    err = np.abs(pred - real_pairs["minutes"].to_numpy())
    assert np.median(err) < 4.0
    assert np.median(err / real_pairs["minutes"].to_numpy()) < 0.10


def test_travel_matrix_from_geodataframes(model):
    areas = gpd.GeoDataFrame(
        {"lsoa11cd": model.codes[:3]},
        geometry=[Point(xy).buffer(200) for xy in model.centroids[:3]],
        crs="EPSG:27700",
        index=pd.Index(["a", "b", "c"]),
    )
    sites = gpd.GeoDataFrame(
        geometry=[Point(BRIGHTON), Point(LEEDS)],
        crs="EPSG:27700",
        index=pd.Index([7, 9], name="site_id"),
    )
    mat = travel_matrix(areas, sites, model=model)
    assert list(mat.columns) == [7, 9]
    expected = model.minutes(model.centroids[:3], np.array([BRIGHTON, LEEDS]))
    np.testing.assert_allclose(mat.to_numpy(), expected, rtol=1e-3)


def test_travel_matrix_rejects_other_crs(model):
    sites = gpd.GeoDataFrame(geometry=[Point(-0.1, 51.5)], crs="EPSG:4326")
    areas = pd.DataFrame({"x": [BRIGHTON[0]], "y": [BRIGHTON[1]]})
    with pytest.raises(InputError, match="sites.*geometry.*EPSG:27700"):
        travel_matrix(areas, sites, model=model)


def test_travel_matrix_names_rows_without_coordinates(model):
    areas = pd.DataFrame({"x": [BRIGHTON[0], np.nan], "y": [BRIGHTON[1], 1.0]})
    sites = pd.DataFrame({"x": [LEEDS[0]], "y": [LEEDS[1]]})
    with pytest.raises(InputError, match=r"areas, row 2, field 'x'"):
        travel_matrix(areas, sites, model=model)


# --------------------------------------------------------------------------- user matrices

AREAS = ["E01000001", "E01000002", "E01000003"]
SITES = ["S1", "S2"]


def write_long(path: Path, rows: list[tuple[object, object, object]]) -> Path:
    lines = ["area_code,site_id,minutes"] + [f"{a},{s},{m}" for a, s, m in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def full_long() -> list[tuple[object, object, object]]:
    return [(a, s, 10 * i + j + 0.5) for i, a in enumerate(AREAS) for j, s in enumerate(SITES)]


def test_load_matrix_long_csv(tmp_path):
    rows = full_long()[::-1]  # order does not matter
    mat = load_matrix(write_long(tmp_path / "m.csv", rows), AREAS, SITES)
    assert list(mat.index) == AREAS and list(mat.columns) == SITES
    assert mat.loc["E01000003", "S2"] == 21.5
    assert mat.loc["E01000001", "S1"] == 0.5


def test_load_matrix_wide_parquet_with_numeric_site_ids(tmp_path):
    wide = pd.DataFrame({"lsoa": AREAS, "101": [1.0, 2.0, 3.0], "102": [4.0, 5.0, 6.0]})
    path = tmp_path / "m.parquet"
    wide.to_parquet(path)
    mat = load_matrix(path, AREAS, [101, 102])
    assert list(mat.columns) == [101, 102]
    np.testing.assert_allclose(mat.to_numpy(), wide[["101", "102"]].to_numpy())


def test_load_matrix_wide_csv(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("code,S2,S1\nE01000002,5,6\nE01000001,1,2\nE01000003,7,8\n")
    mat = load_matrix(path, AREAS, SITES)
    assert mat.loc["E01000002", "S1"] == 6
    assert mat.loc["E01000003", "S2"] == 7


def _problem_text(err: pytest.ExceptionInfo[InputError]) -> str:
    return str(err.value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda r: r[:2] + [("E09999999", "S1", 3)] + r[3:],
            r"m\.csv, row 4, field 'area_code'.*unknown area code 'E09999999'",
        ),
        (
            lambda r: [*r[:-1], ("E01000003", "S9", 3)],
            r"m\.csv, row 7, field 'site_id'.*unknown site id 'S9'",
        ),
        (
            lambda r: [r[0], ("E01000001", "S2", -4), *r[2:]],
            r"m\.csv, row 3, field 'minutes'.*must not be negative",
        ),
        (
            lambda r: [r[0], ("E01000001", "S2", "ten"), *r[2:]],
            r"m\.csv, row 3, field 'minutes'.*not a number",
        ),
        (
            lambda r: [r[0], ("E01000001", "S2", ""), *r[2:]],
            r"m\.csv, row 3, field 'minutes'.*missing minutes",
        ),
        (
            lambda r: [*r, ("E01000002", "S1", 9)],
            r"m\.csv, row 8, field 'site_id'.*duplicate pair.*first on row 4",
        ),
        (
            lambda r: r[:-2],
            r"m\.csv: 2 area-site pair\(s\) missing.*\(E01000003, S1\), \(E01000003, S2\)",
        ),
    ],
    ids=[
        "unknown-area",
        "unknown-site",
        "negative",
        "non-numeric",
        "empty",
        "duplicate",
        "missing-pairs",
    ],
)
def test_load_matrix_long_problems_name_file_row_field(tmp_path, edit, expected):
    path = write_long(tmp_path / "m.csv", edit(full_long()))
    with pytest.raises(InputError, match=expected) as err:
        load_matrix(path, AREAS, SITES)
    assert len(err.value.problems) == 1


def test_load_matrix_lists_every_problem(tmp_path):
    rows = full_long()
    rows[0] = ("E01000001", "S1", "x")
    rows[5] = ("E01000003", "S2", -1)
    with pytest.raises(InputError) as err:
        load_matrix(write_long(tmp_path / "m.csv", rows), AREAS, SITES)
    assert [(p.row, p.field) for p in err.value.problems] == [(2, "minutes"), (7, "minutes")]


def test_load_matrix_wide_problems(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("code,S1,S3\nE01000001,1,2\nE01000001,3,4\nE01000003,-1,6\n")
    with pytest.raises(InputError) as err:
        load_matrix(path, AREAS, SITES)
    text = _problem_text(err)
    assert "w.csv, row 1, field 'S3': unknown site id 'S3'" in text
    assert "w.csv, row 1: no column for site(s) S2" in text
    assert "w.csv, row 3, field 'code': duplicate area 'E01000001' (first on row 2)" in text
    assert "w.csv, row 4, field 'S1': must not be negative" in text
    assert "w.csv, field 'code': 1 area(s) have no row, e.g. E01000002" in text


def test_load_matrix_parquet_rows_count_records(tmp_path):
    df = pd.DataFrame(full_long(), columns=["area_code", "site_id", "minutes"])
    df.loc[2, "minutes"] = np.nan
    path = tmp_path / "m.parquet"
    df.to_parquet(path)
    with pytest.raises(InputError, match=r"m\.parquet, row 3, field 'minutes'.*missing minutes"):
        load_matrix(path, AREAS, SITES)


def test_load_matrix_unsupported_format(tmp_path):
    path = tmp_path / "m.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=r"m\.xlsx: unsupported travel matrix format"):
        load_matrix(path, AREAS, SITES)


def test_load_matrix_ambiguous_columns(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("area_code,site_id\nE01000001,S1\n")
    with pytest.raises(InputError, match=r"m\.csv, row 1, field 'minutes'.*missing column"):
        load_matrix(path, AREAS, SITES)
