"""pathways.geography: bundled tables, ICB look-up, MSOA aggregation, uploads."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from pathways import geography as geo
from pathways.errors import InputError, Problem

SUSSEX = "E54000053"
# A point in central Brighton and one in central London (EPSG:27700).
BRIGHTON_XY = (531_000.0, 104_500.0)
LONDON_XY = (530_000.0, 180_000.0)


def problems_of(excinfo: pytest.ExceptionInfo[InputError]) -> list[Problem]:
    return excinfo.value.problems


def find_problem(
    excinfo: pytest.ExceptionInfo[InputError], file: str, row: int | None, field: str, text: str
) -> Problem:
    """The problem at file/row/field whose message contains ``text`` (case-insensitive)."""
    for p in problems_of(excinfo):
        if (
            p.file == file
            and p.row == row
            and p.field == field
            and text.lower() in p.message.lower()
        ):
            assert file in str(excinfo.value)
            return p
    listed = "\n".join(map(str, problems_of(excinfo)))
    raise AssertionError(f"no problem {file}/{row}/{field} containing {text!r} in:\n{listed}")


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_geojson(
    path: Path, features: list[tuple[dict, dict | None]], crs: str | None = None
) -> Path:
    """Write features as raw GeoJSON (so invalid or empty geometries survive)."""
    doc: dict = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": p, "geometry": g} for p, g in features],
    }
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def sussex_sample(sussex: gpd.GeoDataFrame, n: int = 4) -> gpd.GeoDataFrame:
    """A few real Sussex LSOAs laid out as an upload: area_code, population, geometry."""
    sample = sussex.iloc[:n]
    return gpd.GeoDataFrame(
        {
            "area_code": sample.index.to_numpy(),
            "population": sample[geo.POP_TOTAL].to_numpy(),
        },
        geometry=sample.geometry.values,
        crs=geo.BNG,
    )


# --------------------------------------------------------------------------- bundled tables


def test_list_icbs():
    icbs = geo.list_icbs()
    assert len(icbs) == 42
    assert list(icbs.columns) == [geo.ICB_CD, geo.ICB_NM, geo.ICB_SHORT, geo.N_LSOAS, geo.POP_TOTAL]
    assert icbs[geo.ICB_CD].is_unique and icbs[geo.ICB_SHORT].is_unique
    assert icbs[geo.N_LSOAS].sum() == geo.N_ENGLISH_LSOAS
    sussex = icbs.set_index(geo.ICB_CD).loc[SUSSEX]
    assert (sussex[geo.ICB_SHORT], sussex[geo.N_LSOAS], sussex[geo.POP_TOTAL]) == (
        "Sussex",
        995,
        1_659_921,
    )


def test_all_icbs_load_and_add_up_to_england():
    icbs = geo.list_icbs()
    england = geo.load_lsoas(columns=[geo.POP_TOTAL])
    total = 0
    seen: set[str] = set()
    for code, n, pop in icbs[[geo.ICB_CD, geo.N_LSOAS, geo.POP_TOTAL]].itertuples(index=False):
        fp = geo.load_footprint(code, columns=[geo.POP_TOTAL, geo.ICB_CD])
        assert len(fp) == n and fp[geo.POP_TOTAL].sum() == pop
        assert (fp[geo.ICB_CD] == code).all()
        assert seen.isdisjoint(fp.index)
        seen |= set(fp.index)
        total += fp[geo.POP_TOTAL].sum()
    assert seen == set(england.index)
    assert total == england[geo.POP_TOTAL].sum()


def test_footprint_shape(sussex_footprint):
    fp = sussex_footprint
    assert isinstance(fp, gpd.GeoDataFrame)
    assert fp.crs.to_epsg() == 27700
    assert fp.index.name == geo.AREA_CODE and fp.index.is_unique
    assert (fp.index == fp[geo.LSOA11CD]).all()
    assert (fp[geo.AREA_NAME] == fp[geo.LSOA11NM]).all()
    assert set(geo.AREA_COLUMNS) <= set(fp.columns)
    assert list(fp.index) == sorted(fp.index)
    geo.validate_areas(fp)


def test_footprint_by_name_equals_by_code(sussex_footprint):
    by_name = geo.load_footprint("NHS Sussex Integrated Care Board")
    pd.testing.assert_frame_equal(pd.DataFrame(by_name), pd.DataFrame(sussex_footprint))


def test_footprint_column_selection():
    fp = geo.load_footprint("sussex", columns=[geo.POP_TOTAL])
    assert set(fp.columns) == {geo.LSOA11CD, geo.POP_TOTAL, geo.GEOMETRY}
    with pytest.raises(InputError, match="pop_tota"):
        geo.load_footprint("sussex", columns=["pop_tota"])


def test_load_lsoas_returns_a_copy():
    first = geo.load_lsoas(columns=[geo.POP_TOTAL])
    assert len(first) == geo.N_ENGLISH_LSOAS
    first.loc[first.index[:10], geo.POP_TOTAL] = -1
    again = geo.load_lsoas(columns=[geo.POP_TOTAL])
    assert len(again) == geo.N_ENGLISH_LSOAS and (again[geo.POP_TOTAL] > 0).all()


@pytest.mark.parametrize(
    "text",
    [
        "E54000053",
        "e54000053",
        "Sussex",
        "SUSSEX",
        "  sussex ",
        "NHS Sussex Integrated Care Board",
        "nhs sussex integrated care board",
        "NHS Sussex ICB",
    ],
)
def test_resolve_icb_accepts_codes_and_names(text):
    assert geo.resolve_icb(text) == SUSSEX


def test_resolve_icb_names_with_commas():
    icbs = geo.list_icbs().set_index(geo.ICB_CD)
    code = "E54000040"
    assert "," in icbs.loc[code, geo.ICB_NM]
    assert geo.resolve_icb(icbs.loc[code, geo.ICB_NM]) == code
    assert geo.resolve_icb(icbs.loc[code, geo.ICB_SHORT].upper()) == code


def test_resolve_icb_unknown_suggests_close_matches():
    with pytest.raises(InputError) as excinfo:
        geo.resolve_icb("Susex")
    assert "Susex" in str(excinfo.value)
    assert "did you mean" in str(excinfo.value) and "'Sussex'" in str(excinfo.value)
    with pytest.raises(InputError) as excinfo:
        geo.resolve_icb("Narnia")
    assert "pathways scenario list" in str(excinfo.value)


def test_resolve_icb_lists_every_icb_a_partial_name_fits_and_takes_ods_codes():
    with pytest.raises(InputError) as excinfo:
        geo.resolve_icb("London")
    message = str(excinfo.value)
    for part in ("North Central", "North East", "North West", "South East", "South West"):
        assert f"'{part} London'" in message
    assert geo.resolve_icb("QKS") == "E54000032"  # ODS code of Kent and Medway
    assert geo.resolve_icb("qnx") == SUSSEX


def test_mh_sites():
    sites = geo.load_mh_sites()
    assert sites.index.name == geo.SITE_ID and sites.index.is_unique
    sussex = geo.load_mh_sites("Sussex")
    assert len(sussex) == 7 and (sussex[geo.ICB_CD] == SUSSEX).all()
    assert set(sussex.index) <= set(sites.index)
    sussex[geo.SITE_NAME] = "changed"
    assert (geo.load_mh_sites("Sussex")[geo.SITE_NAME] != "changed").all()


def test_to_wgs84(sussex_footprint):
    wgs = geo.to_wgs84(sussex_footprint.iloc[:20])
    assert wgs.crs.to_epsg() == 4326
    xmin, ymin, xmax, ymax = wgs.total_bounds
    assert -1.5 < xmin < xmax < 1.0 and 50.5 < ymin < ymax < 51.5
    assert sussex_footprint.crs.to_epsg() == 27700, "input left unchanged"


def test_imd_decile_from_rank_cut_points():
    ranks = [1, 3284, 3285, 6568, 6569, 29559, 29560, 32844]
    assert list(geo.imd_decile_from_rank(ranks)) == [1, 1, 2, 2, 3, 9, 10, 10]
    assert list(geo.quintile_from_decile([1, 2, 3, 9, 10])) == [1, 1, 2, 5, 5]


def test_icb_short_name():
    assert geo.icb_short_name("NHS Sussex Integrated Care Board") == "Sussex"
    assert geo.icb_short_name("NHS Black Country ICB") == "Black Country"


# --------------------------------------------------------------------------- MSOA


def test_msoa_aggregation_conserves_population(sussex):
    msoa = geo.aggregate_to_msoa(sussex)
    assert msoa.index.name == geo.AREA_CODE
    assert msoa.index.is_unique and set(msoa.index) == set(sussex[geo.MSOA11CD])
    for col in geo.POP_COLUMNS:
        assert msoa[col].sum() == sussex[col].sum()
    assert msoa[geo.N_LSOAS].sum() == len(sussex)
    assert msoa[geo.AREA_KM2].sum() == pytest.approx(sussex[geo.AREA_KM2].sum())
    assert msoa.area.sum() == pytest.approx(sussex.area.sum(), rel=1e-3)
    assert msoa.crs.to_epsg() == 27700
    geo.validate_areas(msoa)


def test_msoa_imd_is_population_weighted(sussex):
    msoa = geo.aggregate_to_msoa(sussex)
    code = sussex[geo.MSOA11CD].iloc[0]
    members = sussex[sussex[geo.MSOA11CD] == code]
    weighted = np.average(members[geo.IMD_RANK], weights=members[geo.POP_TOTAL])
    row = msoa.loc[code]
    assert row[geo.IMD_RANK] == pytest.approx(weighted, abs=0.05)
    assert row[geo.IMD_DECILE] == geo.imd_decile_from_rank(weighted)
    assert row[geo.IMD_QUINTILE] == (row[geo.IMD_DECILE] + 1) // 2
    assert members[geo.IMD_DECILE].min() <= row[geo.IMD_DECILE] <= members[geo.IMD_DECILE].max()


def test_msoa_rural_when_most_people_rural(sussex):
    code = sussex[geo.MSOA11CD].iloc[0]
    members = sussex.index[sussex[geo.MSOA11CD] == code]
    sussex[geo.RURAL] = False
    biggest = sussex.loc[members, geo.POP_TOTAL].sort_values(ascending=False)
    # Most LSOAs rural but a minority of people: still urban.
    sussex.loc[biggest.index[1:], geo.POP_TOTAL] = 1
    sussex.loc[biggest.index[1:], geo.RURAL] = True
    assert not geo.aggregate_to_msoa(sussex).loc[code, geo.RURAL]
    sussex.loc[biggest.index[0], geo.RURAL] = True
    assert geo.aggregate_to_msoa(sussex).loc[code, geo.RURAL]


def test_msoa_aggregation_needs_msoa_column(sussex):
    with pytest.raises(InputError, match="msoa11cd"):
        geo.aggregate_to_msoa(sussex.drop(columns=geo.MSOA11CD))


# --------------------------------------------------------------------------- uploads: happy paths


def test_csv_with_bng_coordinates(tmp_path):
    path = write_csv(
        tmp_path / "areas.csv",
        [
            {
                "Area_Code": "A1",
                "Population": "1,200",
                "imd_decile": 3,
                "rural": "no",
                "x": 531000,
                "y": 104500,
            },
            {
                "Area_Code": "A2",
                "Population": "800",
                "imd_decile": 9,
                "rural": "yes",
                "x": 520000,
                "y": 110000,
            },
        ],
    )
    areas = geo.load_areas(path)
    assert areas.index.name == geo.AREA_CODE and list(areas.index) == ["A1", "A2"]
    assert list(areas[geo.POP_TOTAL]) == [1200, 800]
    assert list(areas[geo.IMD_QUINTILE]) == [2, 5]
    assert list(areas[geo.RURAL]) == [False, True]
    assert list(areas[geo.CENTROID_X]) == [531000, 520000]
    assert areas[geo.AREA_KM2].isna().all()
    assert areas.crs.to_epsg() == 27700
    geo.validate_areas(areas)


def test_csv_with_lon_lat_fills_from_footprint(tmp_path, sussex_footprint):
    lsoa = sussex_footprint.iloc[10]
    lon, lat = (
        gpd.GeoSeries([Point(lsoa[geo.CENTROID_X], lsoa[geo.CENTROID_Y])], crs=geo.BNG)
        .to_crs(geo.WGS84)
        .iloc[0]
        .coords[0]
    )
    path = write_csv(
        tmp_path / "points.csv",
        [
            {
                "area_code": "P1",
                "population": 50,
                "name": "Clinic area",
                "longitude": lon,
                "latitude": lat,
            }
        ],
    )
    areas = geo.load_areas(path, footprint=sussex_footprint)
    row = areas.loc["P1"]
    assert row[geo.AREA_NAME] == "Clinic area"
    assert row[geo.IMD_DECILE] == lsoa[geo.IMD_DECILE]
    assert row[geo.RURAL] == lsoa[geo.RURAL]
    assert row[geo.CENTROID_X] == pytest.approx(lsoa[geo.CENTROID_X], abs=2)


def test_zipped_shapefile(tmp_path, sussex_footprint):
    sample = sussex_sample(sussex_footprint)
    sample["imd_decile"] = sussex_footprint[geo.IMD_DECILE].iloc[:4].to_numpy()
    sample["rural"] = 0
    folder = tmp_path / "shp"
    folder.mkdir()
    sample.to_file(folder / "areas.shp")
    zpath = tmp_path / "areas.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    areas = geo.load_areas(zpath)
    assert list(areas.index) == list(sample["area_code"])
    assert list(areas[geo.POP_TOTAL]) == list(sample["population"])
    assert list(areas[geo.IMD_DECILE]) == list(sample["imd_decile"])
    assert areas.area.to_numpy() == pytest.approx(sample.area.to_numpy(), rel=1e-6)
    assert areas.attrs["source"] == "areas.zip"


def test_geojson_wgs84_polygons_fill_imd_from_footprint(tmp_path, sussex_footprint):
    sample = sussex_sample(sussex_footprint)
    path = tmp_path / "areas.geojson"
    geo.to_wgs84(sample).to_file(path, driver="GeoJSON")
    areas = geo.load_areas(path, footprint=sussex_footprint)
    expected = sussex_footprint.loc[sample["area_code"]]
    assert list(areas[geo.IMD_DECILE]) == list(expected[geo.IMD_DECILE])
    assert list(areas[geo.RURAL]) == list(expected[geo.RURAL])
    assert areas[geo.AREA_KM2].to_numpy() == pytest.approx(
        expected[geo.AREA_KM2].to_numpy(), rel=0.01
    )


def test_sites_csv_happy_path(tmp_path, sussex_footprint):
    path = write_csv(
        tmp_path / "sites.csv",
        [
            {
                "site_id": "S1",
                "name": "Hub",
                "services": "inpatient; Mobile Team",
                "inpatient_beds": 20,
                "mobile_teams": 2,
                "status": "existing",
                "x": BRIGHTON_XY[0],
                "y": BRIGHTON_XY[1],
            },
            {
                "site_id": "S2",
                "name": "New house",
                "services": "crisis_house",
                "inpatient_beds": "",
                "mobile_teams": "",
                "status": "Candidate",
                "x": 520000,
                "y": 110000,
            },
        ],
    )
    sites = geo.load_sites(path, footprint=sussex_footprint)
    assert sites.index.name == geo.SITE_ID and list(sites.index) == ["S1", "S2"]
    assert list(sites[geo.SERVICES]) == ["inpatient;mobile_team", "crisis_house"]
    assert sites.loc["S1", "inpatient_beds"] == 20 and pd.isna(sites.loc["S2", "inpatient_beds"])
    assert sites["crisis_house_places"].isna().all()
    assert list(sites[geo.STATUS]) == ["existing", "candidate"]
    assert sites.loc["S1", geo.X] == BRIGHTON_XY[0]


def test_sites_services_from_capacity_when_no_services_column(tmp_path):
    path = write_csv(
        tmp_path / "sites.csv",
        [
            {
                "site_id": "S1",
                "name": "A",
                "place_of_safety_suites": 1,
                "crisis_house_places": 0,
                "lon": -0.14,
                "lat": 50.83,
            }
        ],
    )
    sites = geo.load_sites(path)
    assert sites.loc["S1", geo.SERVICES] == "place_of_safety"
    assert sites.loc["S1", geo.STATUS] == geo.DEFAULT_SITE_STATUS


# --------------------------------------------------------------------------- uploads: malformed


def test_missing_required_column(tmp_path):
    path = write_csv(tmp_path / "areas.csv", [{"area_code": "A1", "x": 531000, "y": 104500}])
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "areas.csv", None, "population", "required column is missing")


def test_duplicate_area_code_names_both_rows(tmp_path):
    rows = [
        {"area_code": c, "population": 10, "imd_decile": 5, "rural": "no", "x": 531000, "y": 104500}
        for c in ("A1", "A2", "A1")
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(write_csv(tmp_path / "dupes.csv", rows))
    p = find_problem(excinfo, "dupes.csv", 4, "area_code", "duplicate code 'A1'")
    assert "rows 2 and 4" in p.message
    assert len(problems_of(excinfo)) == 1


@pytest.mark.parametrize(
    ("value", "text"),
    [("-5", "negative"), ("", "missing"), ("lots", "not a number")],
    ids=["negative", "missing", "non-numeric"],
)
def test_bad_population(tmp_path, value, text):
    rows = [
        {
            "area_code": "A1",
            "population": "10",
            "imd_decile": 5,
            "rural": "no",
            "x": 531000,
            "y": 104500,
        },
        {
            "area_code": "A2",
            "population": value,
            "imd_decile": 5,
            "rural": "no",
            "x": 531000,
            "y": 104500,
        },
    ]
    path = write_csv(tmp_path / "pop.csv", rows)
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "pop.csv", 3, "population", text)
    assert len(problems_of(excinfo)) == 1


def test_bow_tie_polygon_is_reported_not_repaired(tmp_path):
    bow_tie = {
        "type": "Polygon",
        "coordinates": [
            [[-0.15, 50.83], [-0.10, 50.86], [-0.10, 50.83], [-0.15, 50.86], [-0.15, 50.83]]
        ],
    }
    good = shapely.geometry.mapping(box(-0.2, 50.82, -0.19, 50.83))
    path = write_geojson(
        tmp_path / "bowtie.geojson",
        [
            ({"area_code": "G", "population": 5, "imd_decile": 4, "rural": False}, good),
            ({"area_code": "B", "population": 5, "imd_decile": 4, "rural": False}, bow_tie),
        ],
    )
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    p = find_problem(excinfo, "bowtie.geojson", 2, "geometry", "crosses itself")
    assert "Self-intersection" in p.message and "make_valid was not applied" in p.message


def test_missing_and_empty_geometry(tmp_path):
    props = {"population": 5, "imd_decile": 4, "rural": False}
    path = write_geojson(
        tmp_path / "empty_geom.geojson",
        [
            ({"area_code": "A", **props}, None),
            ({"area_code": "B", **props}, {"type": "Polygon", "coordinates": []}),
            ({"area_code": "C", **props}, shapely.geometry.mapping(box(-0.2, 50.82, -0.19, 50.83))),
        ],
    )
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "empty_geom.geojson", 1, "geometry", "geometry is missing")
    find_problem(excinfo, "empty_geom.geojson", 2, "geometry", "geometry is empty")
    assert len(problems_of(excinfo)) == 2


def test_geopackage_without_crs(tmp_path, sussex_footprint):
    sample = sussex_sample(sussex_footprint).set_crs(None, allow_override=True)
    sample["imd_decile"] = 5
    sample["rural"] = False
    path = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        sample.to_file(path, driver="GPKG")
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "nocrs.gpkg", None, "geometry", "no coordinate reference system")


def test_lon_lat_values_in_x_y_columns(tmp_path):
    rows = [
        {
            "area_code": "A1",
            "population": 10,
            "imd_decile": 5,
            "rural": "no",
            "x": 531000,
            "y": 104500,
        },
        {
            "area_code": "A2",
            "population": 10,
            "imd_decile": 5,
            "rural": "no",
            "x": -0.14,
            "y": 50.83,
        },
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(write_csv(tmp_path / "xy.csv", rows))
    find_problem(excinfo, "xy.csv", 3, "x", "look like longitude/latitude")


def test_metres_in_geojson_without_crs(tmp_path):
    square = shapely.geometry.mapping(box(530000, 104000, 531000, 105000))
    path = write_geojson(
        tmp_path / "metres.geojson",
        [({"area_code": "A", "population": 5, "imd_decile": 4, "rural": False}, square)],
    )
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "metres.geojson", None, "geometry", "look like metres")


def test_geojson_with_declared_bng_crs_is_accepted(tmp_path):
    square = shapely.geometry.mapping(box(530000, 104000, 531000, 105000))
    path = write_geojson(
        tmp_path / "bng.geojson",
        [({"area_code": "A", "population": 5, "imd_decile": 4, "rural": False}, square)],
        crs="urn:ogc:def:crs:EPSG::27700",
    )
    areas = geo.load_areas(path)
    assert areas.loc["A", geo.AREA_KM2] == pytest.approx(1.0)


def test_point_outside_footprint(tmp_path, sussex_footprint):
    rows = [
        {"area_code": "IN", "population": 10, "x": BRIGHTON_XY[0], "y": BRIGHTON_XY[1]},
        {"area_code": "OUT", "population": 10, "x": LONDON_XY[0], "y": LONDON_XY[1]},
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(write_csv(tmp_path / "far.csv", rows), footprint=sussex_footprint)
    find_problem(excinfo, "far.csv", 3, "x", "outside the Sussex footprint")
    assert len(problems_of(excinfo)) == 1


def test_polygon_outside_footprint(tmp_path, sussex_footprint):
    london = gpd.GeoDataFrame(
        {"area_code": ["L"], "population": [100]},
        geometry=[Point(LONDON_XY).buffer(500)],
        crs=geo.BNG,
    )
    path = tmp_path / "london.gpkg"
    london.to_file(path, driver="GPKG")
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path, footprint=sussex_footprint)
    find_problem(excinfo, "london.gpkg", 1, "geometry", "0% of the area is inside")


def test_point_outside_great_britain(tmp_path):
    rows = [
        {
            "area_code": "A",
            "population": 1,
            "imd_decile": 5,
            "rural": "no",
            "lon": 2.35,
            "lat": 48.85,
        }
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(write_csv(tmp_path / "paris.csv", rows))
    find_problem(excinfo, "paris.csv", 2, "lon", "outside Great Britain")


@pytest.mark.parametrize("name", ["areas.xlsx", "areas"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not really a spreadsheet")
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    (p,) = problems_of(excinfo)
    assert p.file == name and p.row is None and "unsupported file type" in p.message
    assert "GeoJSON" in p.message and "CSV" in p.message


@pytest.mark.parametrize("name", ["empty.csv", "empty.geojson", "empty.gpkg"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    (p,) = problems_of(excinfo)
    assert (p.file, p.row) == (name, None) and "empty" in p.message


def test_header_only_csv(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("area_code,population,x,y\n")
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    (p,) = problems_of(excinfo)
    assert p.file == "header.csv" and "no rows" in p.message


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.gpkg"
    path.write_bytes(b"this is not a GeoPackage at all" * 10)
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    (p,) = problems_of(excinfo)
    assert p.file == "broken.gpkg" and "could not read the file as GeoPackage" in p.message


def test_csv_without_coordinates(tmp_path):
    path = write_csv(tmp_path / "nocoords.csv", [{"area_code": "A", "population": 3}])
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "nocoords.csv", None, "x, y", "no coordinate columns")


def test_imd_decile_out_of_range_and_missing_without_footprint(tmp_path):
    rows = [
        {
            "area_code": "A",
            "population": 3,
            "imd_decile": 11,
            "rural": "no",
            "x": 531000,
            "y": 104500,
        },
        {
            "area_code": "B",
            "population": 3,
            "imd_decile": "",
            "rural": "maybe",
            "x": 531000,
            "y": 104500,
        },
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(write_csv(tmp_path / "imd.csv", rows))
    find_problem(excinfo, "imd.csv", 2, "imd_decile", "1-10")
    find_problem(excinfo, "imd.csv", 3, "imd_decile", "no footprint")
    find_problem(excinfo, "imd.csv", 3, "rural", "'maybe' is not true/false")


def test_all_problems_reported_together(tmp_path):
    rows = [
        {
            "area_code": "A",
            "population": -1,
            "imd_decile": 5,
            "rural": "no",
            "x": 531000,
            "y": 104500,
        },
        {"area_code": "A", "population": "x", "imd_decile": 5, "rural": "no", "x": 531000, "y": ""},
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(write_csv(tmp_path / "many.csv", rows))
    fields = {(p.row, p.field) for p in problems_of(excinfo)}
    assert fields == {(2, "population"), (3, "population"), (3, "area_code"), (3, "y")}
    assert str(excinfo.value).startswith("4 problems found")


def test_sites_unknown_service(tmp_path):
    rows = [
        {
            "site_id": "S1",
            "name": "A",
            "services": "inpatient;crisis_cafe",
            "x": 531000,
            "y": 104500,
        },
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_sites(write_csv(tmp_path / "sites.csv", rows))
    p = find_problem(excinfo, "sites.csv", 2, "services", "unknown service 'crisis_cafe'")
    assert "place_of_safety" in p.message


def test_sites_negative_and_fractional_capacity(tmp_path):
    rows = [
        {
            "site_id": "S1",
            "name": "A",
            "services": "inpatient",
            "inpatient_beds": -3,
            "x": 531000,
            "y": 104500,
        },
        {
            "site_id": "S2",
            "name": "B",
            "services": "inpatient",
            "inpatient_beds": 2.5,
            "x": 531000,
            "y": 104500,
        },
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_sites(write_csv(tmp_path / "sites.csv", rows))
    find_problem(excinfo, "sites.csv", 2, "inpatient_beds", "negative")
    find_problem(excinfo, "sites.csv", 3, "inpatient_beds", "not a whole number")


def test_sites_other_problems(tmp_path, sussex_footprint):
    rows = [
        {
            "site_id": "S1",
            "name": "A",
            "services": "crisis_house",
            "inpatient_beds": 4,
            "status": "planned",
            "x": BRIGHTON_XY[0],
            "y": BRIGHTON_XY[1],
        },
        {
            "site_id": "S1",
            "name": "",
            "services": "",
            "inpatient_beds": "",
            "status": "",
            "x": LONDON_XY[0],
            "y": LONDON_XY[1],
        },
    ]
    with pytest.raises(InputError) as excinfo:
        geo.load_sites(write_csv(tmp_path / "sites.csv", rows), footprint=sussex_footprint)
    find_problem(excinfo, "sites.csv", 2, "inpatient_beds", "do not include 'inpatient'")
    find_problem(excinfo, "sites.csv", 2, "status", "'planned' is not one of existing, candidate")
    find_problem(excinfo, "sites.csv", 3, "site_id", "duplicate code 'S1'")
    find_problem(excinfo, "sites.csv", 3, "name", "missing")
    find_problem(excinfo, "sites.csv", 3, "x", "outside the Sussex footprint")


def test_sites_must_be_points(tmp_path):
    path = write_geojson(
        tmp_path / "sites.geojson",
        [
            (
                {"site_id": "S1", "name": "A"},
                shapely.geometry.mapping(box(-0.2, 50.82, -0.19, 50.83)),
            )
        ],
    )
    with pytest.raises(InputError) as excinfo:
        geo.load_sites(path)
    find_problem(excinfo, "sites.geojson", 1, "geometry", "expected Point")


def test_validate_areas_reports_rows(sussex):
    broken = sussex.iloc[:3].copy()
    broken.iloc[1, broken.columns.get_loc(geo.POP_TOTAL)] = -4
    broken.iloc[2, broken.columns.get_loc("geometry")] = Polygon()
    with pytest.raises(InputError) as excinfo:
        geo.validate_areas(broken, source="mine")
    find_problem(excinfo, "mine", 2, geo.POP_TOTAL, ">= 0")
    find_problem(excinfo, "mine", 3, geo.GEOMETRY, "empty")


def test_missing_imd_and_rural_columns_without_footprint(tmp_path):
    path = write_csv(
        tmp_path / "bare.csv", [{"area_code": "A", "population": 3, "x": 531000, "y": 104500}]
    )
    with pytest.raises(InputError) as excinfo:
        geo.load_areas(path)
    find_problem(excinfo, "bare.csv", None, "imd_decile", "column is missing and no footprint")
    find_problem(excinfo, "bare.csv", None, "rural", "column is missing and no footprint")
    assert len(problems_of(excinfo)) == 2
