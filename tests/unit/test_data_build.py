"""The bundled tables built by data/build/build_data.py: counts, joins, geometry, size."""

from __future__ import annotations

import gzip
import importlib.util
import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box

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


# --------------------------------------------------------------------------- build on tiny raw data


def _load_build_module():
    spec = importlib.util.spec_from_file_location("build_data", DATA / "build" / "build_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_gz(path, text: str) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(text)


def _tiny_raw(raw) -> None:
    """Four English LSOAs (2 x 2 squares of 1 km near Brighton, two MSOAs, one ICB)
    and one Welsh LSOA, with every raw file the build reads."""
    to_wgs = Transformer.from_crs(geo.BNG, "EPSG:4326", always_xy=True)
    squares = {
        "E01000001": box(530000, 104000, 531000, 105000),
        "E01000002": box(531000, 104000, 532000, 105000),
        "E01000003": box(530000, 105000, 531000, 106000),
        "E01000004": box(531000, 105000, 532000, 106000),
        "W01000001": box(318000, 176000, 319000, 177000),
    }
    features = []
    for code, poly in squares.items():
        ring = [list(to_wgs.transform(x, y)) for x, y in poly.exterior.coords]
        props = {"LSOA11CD": code, "LSOA11NM": f"Area {code[-1]}{code[0]}"}
        features.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    _write_gz(
        raw / "LSOA.geojson.gz", json.dumps({"type": "FeatureCollection", "features": features})
    )
    eng = [c for c in squares if c.startswith("E")]
    _write_gz(
        raw / "regions_lsoa_ew.csv.gz",
        "lsoa,lsoa_code,region,region_code,region_type\n"
        + "".join(f"Area {c[-1]},{c},NHS Test ICB - 00X,E38000001,SICBL\n" for c in eng)
        + "Cardiff 1,W01000001,Cardiff Health Board,W11000001,LHB\n",
    )
    _write_gz(
        raw / "regions_ew.csv.gz",
        "region,region_code,region_type,short_code,country,icb,icb_code,isdn\n"
        "NHS Test ICB - 00X,E38000001,SICBL,TT,England,NHS Test Integrated Care Board,E54000001,T\n"
        "Cardiff Health Board,W11000001,LHB,CA,Wales,,,\n",
    )
    ranks = {
        "E01000001": (1, 1),
        "E01000002": (5000, 2),
        "E01000003": (20000, 7),
        "E01000004": (32844, 10),
    }
    lad = "E06000043,Brighton and Hove"
    _write_gz(
        raw / "imd2019_file1_imd.csv.gz",
        "\ufeffLSOA code (2011),LSOA name (2011),Local Authority District code (2019),"
        "Local Authority District name (2019),Index of Multiple Deprivation (IMD) Rank,"
        "Index of Multiple Deprivation (IMD) Decile\n"
        + "".join(f'{c},x,{lad},"{r:,}",{d}\n' for c, (r, d) in ranks.items()),
    )
    domains = [
        "Income",
        "Employment",
        "Education, Skills and Training",
        "Health Deprivation",
        "Crime",
        "Barriers to Housing and Services",
        "Living Environment",
    ]
    header = [
        "LSOA code (2011)",
        "LSOA name (2011)",
        "LAD code",
        "LAD name",
        "IMD Rank",
        "IMD Decile",
    ]
    for d in domains:
        header += [
            f'"{d} Rank (where 1 is most deprived)"',
            f'"{d} Decile (where 1 is most deprived)"',
        ]
    rows = [
        ",".join([c, "x", lad, str(r), str(d)] + [f"{r},{(d + i) % 10 + 1}" for i in range(7)])
        for c, (r, d) in ranks.items()
    ]
    _write_gz(
        raw / "imd2019_file2_domains.csv.gz",
        "\ufeff" + ",".join(header) + "\n" + "\n".join(rows) + "\n",
    )
    pops = {
        "E01000001": (1500, 300, 900, 300),
        "E01000002": (1200, 200, 700, 300),
        "E01000003": (800, 100, 400, 300),
        "E01000004": (1000, 150, 550, 300),
    }
    _write_gz(
        raw / "imd2019_file6_population.csv.gz",
        "\ufeffLSOA code (2011),LSOA name (2011),LAD code,LAD name,Total,0-15,16-59,60+,Working age\n"
        + "".join(f'{c},x,{lad},"{t:,}",{a},{b},{o},0\n' for c, (t, a, b, o) in pops.items()),
    )
    # OAC supergroup "1" = Rural Residents: E..03 has 2 of 3 rural OAs, E..04 1 of 3.
    oac = {
        "E01000001": "2a1 3b2 4c1",
        "E01000002": "5a1 6a2 7a1",
        "E01000003": "1a1 1b2 6a1",
        "E01000004": "1a2 8a1 8b1",
    }
    msoa = {
        "E01000001": "E02000001",
        "E01000002": "E02000001",
        "E01000003": "E02000002",
        "E01000004": "E02000002",
    }
    lines = ["\ufeffOA11CD,OAC11CD,OAC11NM,LSOA11CD,LSOA11NM,MSOA11CD,MSOA11NM,CTRY11NM"]
    n = 0
    for code, groups in oac.items():
        for g in groups.split():
            n += 1
            lines.append(f"E00{n:06d},{g},x,{code},x,{msoa[code]},Test {msoa[code][-1]},England")
    _write_gz(raw / "oa11_lsoa11_msoa11_lookup.csv.gz", "\n".join(lines) + "\n")

    to_ll = Transformer.from_crs(geo.BNG, "EPSG:4326", always_xy=True)

    def site(code, name, sub, x, y):
        lon, lat = to_ll.transform(x, y)
        return "¬".join([code, sub, name, "Trust", "TR1", "bn1  1aa", f"{lat:.9f}", f"{lon:.9f}"])

    hosp = [
        "OrganisationCode¬SubType¬OrganisationName¬ParentName¬ParentODSCode¬Postcode¬Latitude¬Longitude"
    ]
    hosp += [
        site("AA1", "Mill\xa0View", "Mental Health Hospital", 530500, 104500),
        site("AA1", "Mill\xa0View", "Mental Health Hospital", 530500, 104500),  # same ODS code
        site("AA9", "Mill View", "Mental Health Hospital", 530500, 104500),  # same name and place
        site(
            "BB1", "Seaside", "Mental Health Hospital", 531500, 103700
        ),  # in the sea: nearest LSOA
        site("CC1", "General", "Hospital", 531500, 105500),  # not mental health
        site("WW1", "Cardiff MH", "Mental Health Hospital", 318500, 176500),  # Wales
    ]
    _write_gz(raw / "nhs_choices_hospitals_2014.csv.gz", "\n".join(hosp) + "\n")


def test_build_on_tiny_raw_data_is_correct_and_repeatable(tmp_path):
    build = _load_build_module()
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    _tiny_raw(raw)
    info = build.build(raw, out)

    lsoas = gpd.read_parquet(out / geo.LSOA_FILE).set_index(geo.LSOA11CD)
    assert list(lsoas.index) == ["E01000001", "E01000002", "E01000003", "E01000004"]
    assert tuple(lsoas.reset_index().columns) == geo.LSOA_COLUMNS
    assert lsoas[geo.POP_TOTAL].sum() == 4500
    assert list(lsoas[geo.IMD_DECILE]) == [1, 2, 7, 10]
    assert list(lsoas[geo.IMD_QUINTILE]) == [1, 1, 4, 5]
    assert list(lsoas[geo.IMD_RANK]) == [1, 5000, 20000, 32844]
    assert list(lsoas[geo.INCOME_DECILE]) == [2, 3, 8, 1]
    assert list(lsoas[geo.RURAL]) == [False, False, True, False]
    assert list(lsoas[geo.MSOA11CD]) == ["E02000001"] * 2 + ["E02000002"] * 2
    assert set(lsoas[geo.ICB_SHORT]) == {"Test"}
    assert lsoas[geo.AREA_KM2].to_numpy() == pytest.approx(1.0, rel=1e-3)
    assert lsoas.loc["E01000001", [geo.CENTROID_X, geo.CENTROID_Y]].tolist() == [530500, 104500]
    assert shapely.is_valid(lsoas.geometry.values).all()

    sites = gpd.read_parquet(out / geo.MH_SITES_FILE).set_index(geo.SITE_ID)
    assert list(sites.index) == ["AA1", "BB1"]
    assert sites.loc["AA1", geo.SITE_NAME] == "Mill View"
    assert sites.loc["AA1", geo.POSTCODE] == "BN1 1AA"
    assert sites.loc["AA1", geo.LSOA11CD] == "E01000001"
    assert sites.loc["BB1", geo.LSOA11CD] == "E01000002"
    assert info["facts"]["mh_sites_outside_england"] == 1
    assert info["facts"]["mh_sites_joined_to_nearest_lsoa"] == 1

    first = {p.name: p.read_bytes() for p in out.iterdir()}
    again = build.build(raw, out)
    assert again["data_version"] == info["data_version"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
