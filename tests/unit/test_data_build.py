"""The bundled tables built by data/build/build_data.py: counts, joins, geometry, size."""

from __future__ import annotations

import importlib.util
import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from pathways import geography as geo
from pathways._paths import data_dir

# Sum of "Total population: mid 2015 (excluding prisoners)" over the 32,844
# English rows of IoD2019 File 6 (imd2019_file6_population.csv.gz), computed
# from the raw file; the test reads only the bundled table.
ENGLAND_POP_MID2015 = 54_728_204
SUSSEX = "E54000053"
DATA = data_dir()


@pytest.fixture(scope="module")
def lsoas() -> gpd.GeoDataFrame:
    return gpd.read_parquet(DATA / geo.LSOA_FILE)


@pytest.fixture(scope="module")
def sites() -> gpd.GeoDataFrame:
    return gpd.read_parquet(DATA / geo.MH_SITES_FILE)


@pytest.fixture(scope="module")
def build_info() -> dict:
    return json.loads((DATA / "build_info.json").read_text())


def test_one_row_per_english_lsoa(lsoas):
    assert len(lsoas) == geo.N_ENGLISH_LSOAS == 32_844
    assert lsoas[geo.LSOA11CD].is_unique
    assert lsoas[geo.LSOA11CD].str.match(r"^E01\d{6}$").all()


def test_columns_are_the_documented_ones(lsoas):
    assert tuple(lsoas.columns) == geo.LSOA_COLUMNS


def test_every_lsoa_joins_to_icb_population_and_imd(lsoas):
    assert lsoas.drop(columns="geometry").notna().all().all()
    assert lsoas[geo.ICB_CD].nunique() == 42
    assert lsoas[geo.ICB_CD].str.match(r"^E54\d{6}$").all()
    assert lsoas[geo.SICBL_CD].str.match(r"^E38\d{6}$").all()
    assert lsoas[geo.MSOA11CD].str.match(r"^E02\d{6}$").all()
    assert lsoas[geo.LAD19CD].str.match(r"^E0[6-9]\d{6}$").all()
    for col in (geo.IMD_DECILE, *geo.DOMAIN_DECILES):
        assert lsoas[col].between(1, 10).all(), col
        assert set(lsoas[col]) == set(range(1, 11)), col
    assert (lsoas[geo.IMD_QUINTILE] == (lsoas[geo.IMD_DECILE] + 1) // 2).all()
    assert lsoas[geo.IMD_RANK].between(1, 32_844).all()
    # IoD2019 File 1 itself has 26 tied ranks, so ranks are nearly (not fully) unique.
    assert lsoas[geo.IMD_RANK].nunique() > 32_800


def test_imd_decile_matches_rank_cut_points(lsoas):
    derived = geo.imd_decile_from_rank(lsoas[geo.IMD_RANK].to_numpy())
    assert (derived == lsoas[geo.IMD_DECILE].to_numpy()).all()


def test_population_total_and_age_bands(lsoas, build_info):
    assert lsoas[geo.POP_TOTAL].sum() == ENGLAND_POP_MID2015
    assert build_info["facts"]["population_mid2015"] == ENGLAND_POP_MID2015
    bands = lsoas[list(geo.POP_AGE_COLUMNS)].sum(axis=1)
    assert (bands == lsoas[geo.POP_TOTAL]).all()
    assert (lsoas[geo.POP_TOTAL] > 0).all()


def test_sussex_measured_facts(lsoas):
    sussex = lsoas[lsoas[geo.ICB_CD] == SUSSEX]
    assert len(sussex) == 995
    assert sussex[geo.POP_TOTAL].sum() == 1_659_921
    assert set(sussex[geo.ICB_NM]) == {"NHS Sussex Integrated Care Board"}
    assert set(sussex[geo.ICB_SHORT]) == {"Sussex"}
    assert set(sussex[geo.IMD_DECILE]) == set(range(1, 11))


def test_icb_short_names_are_stripped(lsoas):
    shorts = lsoas[geo.ICB_SHORT].unique()
    assert len(shorts) == 42
    for short in shorts:
        assert not short.startswith("NHS ")
        assert not short.endswith(("Integrated Care Board", "ICB"))


def test_rural_flag_follows_output_area_share(lsoas):
    share = lsoas[geo.RURAL_OA_SHARE]
    assert share.between(0, 1).all()
    assert (lsoas[geo.RURAL] == (share >= 0.5)).all()
    rural = lsoas[geo.RURAL]
    assert 0 < rural.sum() < len(lsoas) / 2
    # Rural LSOAs are far less dense than urban ones.
    density = lsoas[geo.POP_TOTAL] / lsoas[geo.AREA_KM2]
    assert density[rural].median() * 10 < density[~rural].median()


def test_geometry_valid_simplified_in_bng(lsoas):
    assert lsoas.crs.to_epsg() == 27700
    geoms = lsoas.geometry.values
    assert not shapely.is_empty(geoms).any()
    assert shapely.is_valid(geoms).all()
    assert set(lsoas.geom_type) <= {"Polygon", "MultiPolygon"}
    coords = shapely.get_coordinates(geoms)
    assert np.array_equal(coords, np.round(coords)), "coordinates are rounded to 1 m"
    xmin, ymin, xmax, ymax = lsoas.total_bounds
    assert 80_000 < xmin < xmax < 660_000
    assert 0 < ymin < ymax < 660_000


def test_centroids_lie_in_their_polygons(lsoas):
    pts = shapely.points(lsoas[geo.CENTROID_X], lsoas[geo.CENTROID_Y])
    # Rounded to 1 m, so allow the point to sit on (or 1 m beyond) the edge.
    dist = shapely.distance(lsoas.geometry.values, pts)
    assert (dist <= 1.5).all()


def test_area_is_england_sized(lsoas):
    # England is about 130,300 km2; the clipped boundaries exclude the sea.
    assert 128_000 < lsoas[geo.AREA_KM2].sum() < 132_000
    assert (lsoas[geo.AREA_KM2] > 0).all()


def test_sites_deduplicated_english_and_joined(sites, lsoas):
    assert sites[geo.SITE_ID].is_unique
    assert not sites.duplicated([geo.SITE_NAME, geo.X, geo.Y]).any()
    assert tuple(sites.columns) == geo.MH_SITE_COLUMNS
    assert sites.crs.to_epsg() == 27700
    assert set(sites[geo.LSOA11CD]) <= set(lsoas[geo.LSOA11CD])
    assert sites[[geo.ICB_CD, geo.TRUST_CODE, geo.SITE_NAME]].notna().all().all()
    by_code = lsoas.set_index(geo.LSOA11CD)
    assert (sites[geo.ICB_CD].to_numpy() == by_code.loc[sites[geo.LSOA11CD], geo.ICB_CD]).all()
    # Each site lies in (or, if off the clipped coast, next to) its LSOA.
    polys = by_code.loc[sites[geo.LSOA11CD]].geometry.values
    assert (shapely.distance(polys, sites.geometry.values) < 2_000).all()
    assert (sites.geometry.x == sites[geo.X]).all()
    assert not sites[geo.SITE_NAME].str.contains("\u00c2").any(), "no mis-decoded bytes"


def test_sussex_has_seven_sites(sites):
    assert (sites[geo.ICB_CD] == SUSSEX).sum() == 7


def test_build_info_describes_the_tables(build_info):
    version = build_info["data_version"]
    assert len(version) == 12 and int(version, 16) >= 0
    files = {s["file"] for s in build_info["sources"]}
    assert {"LSOA.geojson.gz", "imd2019_file6_population.csv.gz"} <= files
    assert set(build_info["outputs"]) == {geo.LSOA_FILE, geo.MH_SITES_FILE}
    assert build_info["facts"]["mh_sites_england"] == len(
        gpd.read_parquet(DATA / geo.MH_SITES_FILE)
    )


def test_content_hash_matches_bundled_tables(lsoas, sites, build_info):
    """The tables are the ones the recorded build produced (no hand edits)."""
    spec = importlib.util.spec_from_file_location("build_data", DATA / "build" / "build_data.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    outputs = build_info["outputs"]
    assert build.content_hash(lsoas) == outputs[geo.LSOA_FILE]["content_sha256"]
    assert build.content_hash(sites) == outputs[geo.MH_SITES_FILE]["content_sha256"]


def test_data_folder_is_small():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 40 * 1024**2
    assert (DATA / geo.LSOA_FILE).stat().st_size < 25 * 1024**2
