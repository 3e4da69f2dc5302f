"""Build the bundled geography tables from the raw open data.

Usage (from the repository root)::

    python data/build/build_data.py --raw RAW [--out data]

``RAW`` is the raw-data folder: the unchanged open data files, downloaded from the
publishers listed in ``data/SOURCES.md`` under the file names given there. The build
reads them and writes:

- ``lsoa.parquet``: one row per English LSOA 2011 (32,844) with names, the
  LSOA -> MSOA -> LAD and LSOA -> sub-ICB -> ICB lookups, mid-2015 population,
  IMD 2019 rank, deciles and domain deciles, a rural flag, area, a centroid and a
  simplified polygon in EPSG:27700 (GeoParquet, zstd).
- ``mh_sites_2014.parquet``: the English mental health hospital sites of the
  NHS Choices 2014 hospital list, deduplicated, located in EPSG:27700 and joined
  to their LSOA and ICB (GeoParquet, zstd).
- ``build_info.json``: ``data_version`` (a short hash of the tables' content),
  the build date, the build command, the source files with their sha256 and
  counts measured during the build.

The build is deterministic: running it twice on the same inputs, with the same
library versions, writes byte-identical files (``built_on`` keeps the date of
the first build that produced the same ``data_version``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import logging
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

REPO_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_DIR))

from pathways import geography as geo  # noqa: E402

log = logging.getLogger("build_data")

# Raw input files (names as in the raw data folder).
RAW_LSOA_BOUNDARIES = "LSOA.geojson.gz"
RAW_LSOA_TO_SICBL = "regions_lsoa_ew.csv.gz"
RAW_SICBL_TO_ICB = "regions_ew.csv.gz"
RAW_IMD = "imd2019_file1_imd.csv.gz"
RAW_IMD_DOMAINS = "imd2019_file2_domains.csv.gz"
RAW_POPULATION = "imd2019_file6_population.csv.gz"
RAW_OA_LOOKUP = "oa11_lsoa11_msoa11_lookup.csv.gz"
RAW_HOSPITALS = "nhs_choices_hospitals_2014.csv.gz"
RAW_FILES = (
    RAW_LSOA_BOUNDARIES,
    RAW_LSOA_TO_SICBL,
    RAW_SICBL_TO_ICB,
    RAW_IMD,
    RAW_IMD_DOMAINS,
    RAW_POPULATION,
    RAW_OA_LOOKUP,
    RAW_HOSPITALS,
)

#: Simplification tolerance in metres (coverage-preserving, so neighbours still
#: share their edges). The source boundaries are already "super generalised".
SIMPLIFY_TOLERANCE_M = 20.0
#: Coordinates are snapped to this grid (metres).
PRECISION_M = 1.0
#: OAC 2011 supergroup code for "Rural Residents".
OAC_RURAL_SUPERGROUP = "1"
#: An LSOA is rural when at least this share of its output areas is "Rural Residents".
RURAL_OA_SHARE_THRESHOLD = 0.5
#: Rows per parquet row group; the table is sorted by ICB so that reading one
#: ICB with a filter touches only a few row groups.
ROW_GROUP_SIZE = 1024
MH_SUBTYPE = "Mental Health Hospital"

LSOA_FILE = geo.LSOA_FILE
SITES_FILE = geo.MH_SITES_FILE
BUILD_INFO_FILE = "build_info.json"


# --------------------------------------------------------------------------- reading


def _read_csv(raw: Path, name: str, **kwargs) -> pd.DataFrame:
    # utf-8-sig drops the byte-order mark that the IoD and ONS files start with.
    return pd.read_csv(raw / name, encoding="utf-8-sig", **kwargs)


def read_boundaries(raw: Path) -> gpd.GeoDataFrame:
    """All LSOA 2011 boundaries (England and Wales) in EPSG:27700, made valid."""
    gdf = gpd.read_file(f"/vsigzip/{raw / RAW_LSOA_BOUNDARIES}")
    gdf = gdf.rename(columns={"LSOA11CD": geo.LSOA11CD, "LSOA11NM": geo.LSOA11NM})
    gdf = gdf[[geo.LSOA11CD, geo.LSOA11NM, "geometry"]].to_crs(geo.BNG)
    invalid = ~gdf.is_valid
    if invalid.any():
        # Three source polygons have "nested shells"; make_valid turns them into
        # multipolygons without changing their area.
        log.info(
            "repairing %d invalid source polygons: %s",
            invalid.sum(),
            list(gdf.loc[invalid, geo.LSOA11CD]),
        )
        gdf.loc[invalid, "geometry"] = _polygonal(shapely.make_valid(gdf.geometry[invalid].values))
    return gdf.sort_values(geo.LSOA11CD).reset_index(drop=True)


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal parts of each geometry (drops stray lines/points)."""
    out = []
    for g in geoms:
        if g.geom_type in ("Polygon", "MultiPolygon"):
            out.append(g)
            continue
        parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
        out.append(shapely.union_all(parts))
    return np.asarray(out, dtype=object)


def read_icb_lookup(raw: Path) -> pd.DataFrame:
    """LSOA -> sub-ICB location -> ICB for English LSOAs."""
    lsoa = pd.read_csv(raw / RAW_LSOA_TO_SICBL)
    lsoa = lsoa[lsoa["region_type"] == "SICBL"]
    regions = pd.read_csv(raw / RAW_SICBL_TO_ICB)
    regions = regions[regions["region_type"] == "SICBL"]
    out = lsoa.merge(
        regions[["region_code", "icb", "icb_code"]], on="region_code", how="left", validate="m:1"
    )
    out = out.rename(
        columns={
            "lsoa_code": geo.LSOA11CD,
            "region_code": geo.SICBL_CD,
            "region": geo.SICBL_NM,
            "icb_code": geo.ICB_CD,
            "icb": geo.ICB_NM,
        }
    )
    out[geo.ICB_SHORT] = out[geo.ICB_NM].map(geo.icb_short_name)
    return out[[geo.LSOA11CD, geo.SICBL_CD, geo.SICBL_NM, geo.ICB_CD, geo.ICB_NM, geo.ICB_SHORT]]


def read_imd(raw: Path) -> pd.DataFrame:
    """IMD 2019 rank and decile, LAD 2019, and the seven domain deciles."""
    f1 = _read_csv(raw, RAW_IMD, thousands=",")
    f1 = f1.iloc[:, :6]
    f1.columns = [geo.LSOA11CD, "_nm", geo.LAD19CD, geo.LAD19NM, geo.IMD_RANK, geo.IMD_DECILE]
    f2 = _read_csv(raw, RAW_IMD_DOMAINS, thousands=",")
    # File 2 lists, after code/name/LAD and the IMD rank+decile, seven
    # (rank, decile) pairs in the order of geo.DOMAIN_DECILES.
    domain_cols = {f2.columns[7 + 2 * i]: col for i, col in enumerate(geo.DOMAIN_DECILES)}
    expected_words = ["Income", "Employment", "Education", "Health", "Crime", "Housing", "Living"]
    for (src, _), word in zip(domain_cols.items(), expected_words, strict=True):
        if word not in src or "Decile" not in src:
            raise ValueError(f"unexpected column order in {RAW_IMD_DOMAINS}: {src!r}")
    f2 = f2.rename(columns={f2.columns[0]: geo.LSOA11CD, **domain_cols})
    out = f1.drop(columns="_nm").merge(
        f2[[geo.LSOA11CD, *geo.DOMAIN_DECILES]], on=geo.LSOA11CD, how="outer", validate="1:1"
    )
    return out


def read_population(raw: Path) -> pd.DataFrame:
    """Mid-2015 population (excluding prisoners) in total and by age band."""
    f6 = _read_csv(raw, RAW_POPULATION, thousands=",")
    f6 = f6.iloc[:, [0, 4, 5, 6, 7]]
    f6.columns = [geo.LSOA11CD, geo.POP_TOTAL, geo.POP_0_15, geo.POP_16_59, geo.POP_60_PLUS]
    bands = f6[[geo.POP_0_15, geo.POP_16_59, geo.POP_60_PLUS]].sum(axis=1)
    if not (bands == f6[geo.POP_TOTAL]).all():
        raise ValueError(f"{RAW_POPULATION}: age bands do not add up to the total")
    return f6


def read_oa_lookup(raw: Path) -> pd.DataFrame:
    """MSOA and rural share (OAC 2011 "Rural Residents" output areas) per LSOA."""
    oa = _read_csv(
        raw, RAW_OA_LOOKUP, usecols=["OA11CD", "OAC11CD", "LSOA11CD", "MSOA11CD", "MSOA11NM"]
    )
    oa = oa[oa["LSOA11CD"].str.startswith("E")]
    oa["_rural"] = oa["OAC11CD"].str[0].eq(OAC_RURAL_SUPERGROUP)
    grouped = oa.groupby("LSOA11CD", sort=True)
    if (grouped["MSOA11CD"].nunique() != 1).any():
        raise ValueError(f"{RAW_OA_LOOKUP}: an LSOA lies in more than one MSOA")
    out = grouped.agg(
        **{
            geo.MSOA11CD: ("MSOA11CD", "first"),
            geo.MSOA11NM: ("MSOA11NM", "first"),
            geo.RURAL_OA_SHARE: ("_rural", "mean"),
        }
    ).reset_index(names=geo.LSOA11CD)
    out[geo.RURAL] = out[geo.RURAL_OA_SHARE] >= RURAL_OA_SHARE_THRESHOLD
    return out


# --------------------------------------------------------------------------- building


def representative_points(geoms: np.ndarray) -> np.ndarray:
    """Centroid, or a point on the surface where the centroid falls outside."""
    cent = shapely.centroid(geoms)
    inside = shapely.intersects(geoms, cent)
    return np.where(inside, cent, shapely.point_on_surface(geoms))


def build_lsoa_table(raw: Path, boundaries: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Join all English LSOA attributes onto simplified boundaries."""
    eng = boundaries[boundaries[geo.LSOA11CD].str.startswith("E")].reset_index(drop=True)
    geoms = eng.geometry.values
    area_km2 = np.round(shapely.area(geoms) / 1e6, 4)
    simple = shapely.coverage_simplify(geoms, SIMPLIFY_TOLERANCE_M)
    simple = shapely.set_precision(simple, PRECISION_M)
    bad = ~shapely.is_valid(simple) | shapely.is_empty(simple)
    if bad.any():
        log.info("repairing %d polygons after simplification", bad.sum())
        simple[bad] = _polygonal(shapely.make_valid(simple[bad]))
    pts = representative_points(simple)

    table = pd.DataFrame(
        {
            geo.LSOA11CD: eng[geo.LSOA11CD].to_numpy(),
            geo.LSOA11NM: eng[geo.LSOA11NM].to_numpy(),
        }
    )
    n = len(table)
    for part in (read_imd(raw), read_oa_lookup(raw), read_icb_lookup(raw), read_population(raw)):
        table = table.merge(part, on=geo.LSOA11CD, how="left", validate="1:1")
    if len(table) != n:
        raise ValueError("joins changed the number of LSOAs")
    table[geo.IMD_QUINTILE] = geo.quintile_from_decile(table[geo.IMD_DECILE].to_numpy())
    table[geo.AREA_KM2] = area_km2
    table[geo.CENTROID_X] = np.round(shapely.get_x(pts))
    table[geo.CENTROID_Y] = np.round(shapely.get_y(pts))

    missing = table.isna().any(axis=1)
    if missing.any():
        raise ValueError(
            f"{missing.sum()} English LSOAs lack a join, e.g. {table.loc[missing, geo.LSOA11CD].head().tolist()}"
        )
    int_cols = [
        geo.POP_TOTAL,
        geo.POP_0_15,
        geo.POP_16_59,
        geo.POP_60_PLUS,
        geo.IMD_RANK,
        geo.IMD_DECILE,
        *geo.DOMAIN_DECILES,
        geo.IMD_QUINTILE,
    ]
    table[int_cols] = table[int_cols].astype("int64")
    table[geo.RURAL] = table[geo.RURAL].astype(bool)
    table[geo.RURAL_OA_SHARE] = table[geo.RURAL_OA_SHARE].round(4)
    gdf = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(simple, crs=geo.BNG))
    gdf = gdf[list(geo.LSOA_COLUMNS)]
    return gdf.sort_values([geo.ICB_CD, geo.LSOA11CD]).reset_index(drop=True)


def _clean_text(s: pd.Series) -> pd.Series:
    return (
        s.fillna("")
        .astype(str)
        .str.replace("\xa0", " ", regex=False)
        .str.replace("\x92", "'", regex=False)
        .str.split()
        .str.join(" ")
    )


def build_sites(
    raw: Path, boundaries: gpd.GeoDataFrame, lsoas: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, dict]:
    """English mental health hospital sites of the 2014 list, deduplicated."""
    # The file is UTF-8 (its separator is the two bytes of U+00AC in UTF-8);
    # reading it as latin-1 would leave a stray "Â" at the end of every field.
    hosp = pd.read_csv(
        raw / RAW_HOSPITALS,
        sep="\u00ac",
        engine="python",
        encoding="utf-8",
        dtype=str,
        keep_default_na=False,
    )
    facts: dict = {"hospital_rows": int(len(hosp))}
    mh = hosp[hosp["SubType"] == MH_SUBTYPE].copy()
    facts["mh_rows"] = int(len(mh))
    for col in ("OrganisationCode", "OrganisationName", "ParentODSCode", "ParentName", "Postcode"):
        mh[col] = _clean_text(mh[col])
    mh["Postcode"] = mh["Postcode"].str.upper()
    mh["lat"] = pd.to_numeric(mh["Latitude"], errors="coerce")
    mh["lon"] = pd.to_numeric(mh["Longitude"], errors="coerce")
    facts["mh_rows_without_coordinates"] = int(mh[["lat", "lon"]].isna().any(axis=1).sum())
    mh = mh.dropna(subset=["lat", "lon"])
    mh = mh.drop_duplicates("OrganisationCode", keep="first")
    facts["mh_unique_ods_codes"] = int(len(mh))
    mh = mh.sort_values("OrganisationCode").drop_duplicates(
        ["OrganisationName", "lat", "lon"], keep="first"
    )
    facts["mh_unique_sites"] = int(len(mh))

    to_bng = Transformer.from_crs("EPSG:4326", geo.BNG, always_xy=True)
    x, y = to_bng.transform(mh["lon"].to_numpy(), mh["lat"].to_numpy())
    sites = pd.DataFrame(
        {
            geo.SITE_ID: mh["OrganisationCode"].to_numpy(),
            geo.SITE_NAME: mh["OrganisationName"].to_numpy(),
            geo.TRUST_CODE: mh["ParentODSCode"].to_numpy(),
            geo.TRUST_NAME: mh["ParentName"].to_numpy(),
            geo.POSTCODE: mh["Postcode"].to_numpy(),
            geo.X: np.round(x),
            geo.Y: np.round(y),
        }
    )
    pts = gpd.GeoDataFrame(
        sites, geometry=gpd.points_from_xy(sites[geo.X], sites[geo.Y]), crs=geo.BNG
    )

    # Country from the England and Wales boundaries (nearest one if the point
    # falls in none, e.g. on a coast that the generalised boundary clips).
    ew = boundaries[[geo.LSOA11CD, "geometry"]]
    country = gpd.sjoin_nearest(pts[["geometry"]], ew, how="left")
    country = country[~country.index.duplicated(keep="first")]
    english = country[geo.LSOA11CD].str.startswith("E").reindex(pts.index).to_numpy()
    facts["mh_sites_outside_england"] = int((~english).sum())
    pts = pts[english].copy()

    joined = gpd.sjoin(pts, lsoas[[geo.LSOA11CD, "geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    outside = joined[geo.LSOA11CD].isna()
    facts["mh_sites_joined_to_nearest_lsoa"] = int(outside.sum())
    if outside.any():
        near = gpd.sjoin_nearest(pts.loc[outside, ["geometry"]], lsoas[[geo.LSOA11CD, "geometry"]])
        near = near[~near.index.duplicated(keep="first")]
        joined.loc[outside, geo.LSOA11CD] = near[geo.LSOA11CD]
    pts[geo.LSOA11CD] = joined[geo.LSOA11CD]
    icb = lsoas.set_index(geo.LSOA11CD)[[geo.ICB_CD, geo.ICB_NM]]
    pts = pts.join(icb, on=geo.LSOA11CD)
    pts = gpd.GeoDataFrame(pts[list(geo.MH_SITE_COLUMNS)], geometry="geometry", crs=geo.BNG)
    pts = pts.sort_values(geo.SITE_ID).reset_index(drop=True)
    facts["mh_sites_england"] = int(len(pts))
    return pts, facts


# --------------------------------------------------------------------------- writing


def content_hash(gdf: gpd.GeoDataFrame) -> str:
    """sha256 of a table's content (columns, values and WKB geometry)."""
    h = hashlib.sha256()
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    h.update(json.dumps([[c, str(t)] for c, t in attrs.dtypes.items()]).encode())
    buf = io.StringIO()
    attrs.to_csv(buf, index=False, lineterminator="\n", float_format="%.6f")
    h.update(buf.getvalue().encode())
    for wkb in shapely.to_wkb(gdf.geometry.values, output_dimension=2):
        h.update(wkb)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_geoparquet(gdf: gpd.GeoDataFrame, path: Path) -> None:
    gdf.to_parquet(path, index=False, compression="zstd", row_group_size=ROW_GROUP_SIZE)


def write_build_info(out: Path, hashes: dict[str, str], raw: Path, facts: dict) -> dict:
    combined = hashlib.sha256("".join(f"{k}:{v};" for k, v in sorted(hashes.items())).encode())
    version = combined.hexdigest()[:12]
    path = out / BUILD_INFO_FILE
    built_on = dt.date.today().isoformat()
    if path.exists():
        try:
            old = json.loads(path.read_text())
            if old.get("data_version") == version:
                built_on = old.get("built_on", built_on)
        except (OSError, ValueError):
            pass
    info = {
        "data_version": version,
        "built_on": built_on,
        "build_command": "python data/build/build_data.py",
        "sources": [{"file": name, "sha256": file_sha256(raw / name)} for name in RAW_FILES],
        "outputs": {name: {"content_sha256": h} for name, h in sorted(hashes.items())},
        "facts": facts,
    }
    path.write_text(json.dumps(info, indent=2, sort_keys=False) + "\n")
    return info


def build(raw: Path, out: Path) -> dict:
    """Build every bundled table from ``raw`` into ``out``; returns build info."""
    missing = [name for name in RAW_FILES if not (raw / name).exists()]
    if missing:
        raise FileNotFoundError(f"raw data folder {raw} lacks: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    boundaries = read_boundaries(raw)
    lsoas = build_lsoa_table(raw, boundaries)
    sites, facts = build_sites(raw, boundaries, lsoas)
    facts = {
        "lsoas": int(len(lsoas)),
        "icbs": int(lsoas[geo.ICB_CD].nunique()),
        "population_mid2015": int(lsoas[geo.POP_TOTAL].sum()),
        "rural_lsoas": int(lsoas[geo.RURAL].sum()),
        "lsoa_coordinates": int(shapely.get_num_coordinates(lsoas.geometry.values).sum()),
        "simplify_tolerance_m": SIMPLIFY_TOLERANCE_M,
        **facts,
    }
    write_geoparquet(lsoas, out / LSOA_FILE)
    write_geoparquet(sites, out / SITES_FILE)
    hashes = {LSOA_FILE: content_hash(lsoas), SITES_FILE: content_hash(sites)}
    info = write_build_info(out, hashes, raw, facts)
    log.info("data_version %s: %s", info["data_version"], json.dumps(facts))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--raw",
        type=Path,
        required=True,
        help="the raw-data folder: the unchanged open data files (see data/SOURCES.md)",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_DIR / "data", help="output folder (default: data)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.raw.resolve(), args.out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
